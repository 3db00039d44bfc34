#include "base/lock_file.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

namespace lai {

LockFile& LockFile::operator=(LockFile&& other) noexcept {
  if (this != &other) {
    Reset();
    path_ = std::move(other.path_);
    fd_ = std::move(other.fd_);
  }
  return *this;
}

void LockFile::Reset() {
  if (!fd_.is_valid()) return;
  ::unlink(path_.c_str());  // Still held: nobody can have taken the file being removed.
  fd_.Reset();
}

Result<LockFile> LockFile::Take(std::string path) {
  // Each retry follows a holder that let go, or a probe (IsHeld) of a moment; a path someone
  // keeps holding is reported after a few milliseconds.
  constexpr int kAttempts = 8;
  for (int attempt = 1;; ++attempt) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.is_valid()) return ErrnoError("open lock file '" + path + "'", errno);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) return ErrnoError("lock '" + path + "'", errno);
      if (attempt >= kAttempts) return Error(ErrorCode::kUnavailable, "'" + path + "' is held");
      std::this_thread::sleep_for(std::chrono::milliseconds(attempt));
      continue;
    }
    struct stat locked {};
    struct stat named {};
    if (::fstat(fd.get(), &locked) != 0) return ErrnoError("stat lock file '" + path + "'", errno);
    bool is_same = ::lstat(path.c_str(), &named) == 0 && named.st_dev == locked.st_dev &&
                   named.st_ino == locked.st_ino;
    if (!is_same) {  // Removed by its holder between our open and our lock.
      if (attempt >= kAttempts) return Error(ErrorCode::kUnavailable, "'" + path + "' is held");
      continue;
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd.get(), 0) != 0 ||
        ::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      spdlog::debug("lock file {}: could not record the pid: {}", path, std::strerror(errno));
    }
    return LockFile(std::move(path), std::move(fd));
  }
}

std::string LockFile::HolderOf(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.is_valid()) return "";
  char text[24] = {};
  ssize_t n = ::pread(fd.get(), text, sizeof(text) - 1, 0);
  std::string pid = n > 0 ? std::string(text, static_cast<size_t>(n)) : "";
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  return pid;
}

bool LockFile::IsHeld(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.is_valid()) return false;                             // Never taken, or released.
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return false;  // Unlocked as fd closes.
  return errno == EWOULDBLOCK;
}

}  // namespace lai
