// Shared-memory files (memfd) and their mappings. Thread-compatible value types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lai::ipc {

// A MAP_SHARED read-write mapping, unmapped on destruction.
class Mapping {
 public:
  Mapping() = default;
  Mapping(std::byte* data, size_t size) : data_(data), size_(size) {}
  Mapping(Mapping&& other) noexcept;
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();

  std::byte* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// Creates a sealed memfd of `size_bytes` (zero-filled). The size can never change afterwards
// (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), so a peer can never make our mapping fault.
Result<UniqueFd> CreateSharedFile(std::string_view name, size_t size_bytes);

// Maps a shared file received from a peer after checking it is a sealed memfd of at least
// `min_size_bytes`; returns the mapping of its whole size.
Result<Mapping> MapPeerFile(int fd, size_t min_size_bytes);

// Maps a file this process created.
Result<Mapping> MapOwnFile(int fd, size_t size_bytes);

// 64 random bits from the kernel (getrandom), for ring salts and ids.
uint64_t RandomU64();

}  // namespace lai::ipc
