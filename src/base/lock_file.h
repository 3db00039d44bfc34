// LockFile: an exclusive flock on a file that exists only while it is held.
#pragma once

#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lai {

// Taking one creates `path` (0600; a symbolic link there is refused) and records this process's
// pid in it; releasing it (destruction, Reset, move-assignment) removes the file, then unlocks.
// A taker that opened the file just as its holder removed it sees that the path no longer names
// what it locked, and tries again, so two takers never both hold a path. Thread-compatible.
class LockFile {
 public:
  LockFile() = default;
  LockFile(LockFile&& other) noexcept = default;
  LockFile& operator=(LockFile&& other) noexcept;
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;
  ~LockFile() { Reset(); }

  // Errors: kUnavailable while another open file description holds it (another process, or
  // another LockFile here); its message says only that, and HolderOf names the pid. ErrnoError
  // when the file cannot be opened or locked.
  static Result<LockFile> Take(std::string path);
  // The pid the holder of `path` recorded, or "" when unknown.
  static std::string HolderOf(const std::string& path);
  // Whether someone holds `path` now. A moment's probe: a Take at the same instant waits for it.
  static bool IsHeld(const std::string& path);

  bool is_held() const { return fd_.is_valid(); }
  void Reset();

 private:
  LockFile(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  std::string path_;
  UniqueFd fd_;
};

}  // namespace lai
