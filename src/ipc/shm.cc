#include "ipc/shm.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <utility>

namespace lai::ipc {

Mapping::Mapping(Mapping&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Mapping::~Mapping() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

Result<UniqueFd> CreateSharedFile(std::string_view name, size_t size_bytes) {
  std::string n(name);
  UniqueFd fd(::memfd_create(n.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.is_valid()) return ErrnoError("memfd_create '" + n + "'", errno);
  if (::ftruncate(fd.get(), static_cast<off_t>(size_bytes)) != 0) {
    return ErrnoError("size shared file '" + n + "' to " + std::to_string(size_bytes), errno);
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return ErrnoError("seal shared file '" + n + "'", errno);
  }
  return fd;
}

Result<Mapping> MapOwnFile(int fd, size_t size_bytes) {
  void* p = ::mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return ErrnoError("mmap shared file", errno);
  return Mapping(static_cast<std::byte*>(p), size_bytes);
}

Result<Mapping> MapPeerFile(int fd, size_t min_size_bytes) {
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    return Error(ErrorCode::kProtocol, "peer's shared file is not a memfd (cannot read its seals)");
  }
  if ((seals & F_SEAL_SHRINK) == 0) {
    return Error(ErrorCode::kProtocol, "peer's shared file is not sealed against shrinking");
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError("fstat peer shared file", errno);
  if (static_cast<size_t>(st.st_size) < min_size_bytes) {
    return Error(ErrorCode::kProtocol, "peer's shared file has " + std::to_string(st.st_size) +
                                           " bytes, needs at least " +
                                           std::to_string(min_size_bytes));
  }
  return MapOwnFile(fd, static_cast<size_t>(st.st_size));
}

uint64_t RandomU64() {
  uint64_t v = 0;
  while (::getrandom(&v, sizeof(v), 0) != static_cast<ssize_t>(sizeof(v))) {
  }
  return v;
}

}  // namespace lai::ipc
