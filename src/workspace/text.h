// Text files as tools see them: '\n'-normalised text plus the line ending and BOM to restore on
// write, binary detection, and atomic writes. Thread-safe (no shared state).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace lai::workspace {

enum class LineEnding { kLf, kCrlf };

struct TextFile {
  std::string text;  // UTF-8 without BOM, '\n' line ends.
  LineEnding line_ending = LineEnding::kLf;  // The file's dominant ending (kLf for a new file).
  bool has_bom = false;                      // A UTF-8 byte-order mark was (and will be) there.
  // The bytes were not UTF-8: read as Windows-1252 (whose letters are Latin-1's), and written
  // back in it, so that an edit keeps every other byte as it was.
  bool is_windows_1252 = false;
};

// Whether `bytes` are valid UTF-8 (a sequence cut by the end is not).
bool IsUtf8(std::string_view bytes);

// True when the bytes look binary (a NUL, or too many control bytes / invalid UTF-8 in the
// first 8 KiB). Reads nothing beyond `prefix`.
bool LooksBinary(std::string_view prefix);

// Splits raw bytes into TextFile. Never fails: bytes that are not UTF-8 are read as Windows-1252.
TextFile DecodeText(std::string_view bytes);
// The first character of `text` that `format`'s encoding cannot hold (a Windows-1252 file's):
// its byte offset in `text`; nullopt when all can be written.
std::optional<size_t> FirstUnencodable(std::string_view text, const TextFile& format);
// The bytes to write: BOM if has_bom, '\n' turned into the line ending, in the file's encoding
// (what it cannot hold becomes '?': see FirstUnencodable).
std::string EncodeText(const TextFile& file);
// The same for `text` in place of format.text (format gives the line ending and BOM).
std::string EncodeText(std::string_view text, const TextFile& format);

// Reads a whole regular file; a FIFO, device or socket is refused, never waited on. Errors:
// kNotFound, kInvalidArgument (a directory, not a regular file), kResourceExhausted (larger than
// max_bytes), kIo.
Result<std::string> ReadFileBytes(const std::string& absolute_path, size_t max_bytes);

// Reads a whole text file. Errors: kNotFound, kInvalidArgument ("'x' is a directory", "'x' appears
// to be a binary file"), kResourceExhausted (larger than max_bytes), kIo.
Result<TextFile> ReadTextFile(const std::string& absolute_path, size_t max_bytes = 64 << 20);

// OK when the file may be written by this process, or does not exist; kPermissionDenied saying
// why when it is read-only (by root too: its mode says so) or not this user's to write.
Status CheckWritable(const std::string& absolute_path);

// Writes through a temporary file in the same directory and rename(), so a reader never sees a
// half-written file; keeps an existing file's permissions, owner, group and extended attributes
// (ACLs), new files get 0644 & ~umask. An existing file with other hard links, or whose owner,
// group or attributes a new file cannot be given, or in a directory the user cannot write to, is
// written in place instead (never left cut short: a failed write puts the old bytes back). A
// file CheckWritable refuses is not written, nor anything but a regular file (kInvalidArgument).
// Creates missing parent directories when create_parents. Errors: kIo, kPermissionDenied,
// kInvalidArgument.
Status WriteFileAtomically(const std::string& absolute_path, std::string_view bytes,
                           bool create_parents = true);

// An exclusive flock(2) on the directory holding `absolute_path` (the nearest that exists), held
// for the object's life: lapce-ai's check-then-write of a file, in any session and process, takes
// turns with every other there (two sessions both found the file unchanged, and the second write
// undid the first). Advisory (other programs do not take it); a directory that cannot be opened
// is not locked.
class DirectoryWriteLock {
 public:
  explicit DirectoryWriteLock(const std::string& absolute_path);
  ~DirectoryWriteLock();
  DirectoryWriteLock(const DirectoryWriteLock&) = delete;
  DirectoryWriteLock& operator=(const DirectoryWriteLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace lai::workspace
