#include "workspace/text.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "base/file_io.h"
#include "base/unique_fd.h"

namespace lai::workspace {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";
constexpr size_t kSniffBytes = 8192;

// Length of the valid UTF-8 sequence starting at text[i], 0 when invalid, -1 when the text ends
// inside a sequence that was valid so far.
int Utf8SequenceLength(std::string_view text, size_t i) {
  unsigned char lead = static_cast<unsigned char>(text[i]);
  int length;
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
  } else {
    return 0;
  }
  for (int k = 1; k < length; ++k) {
    if (i + k >= text.size()) return -1;
    unsigned char next = static_cast<unsigned char>(text[i + k]);
    if ((next & 0xC0) != 0x80) return 0;
    if (k == 1) {
      // Overlong forms, surrogates and code points above U+10FFFF.
      if (lead == 0xE0 && next < 0xA0) return 0;
      if (lead == 0xED && next > 0x9F) return 0;
      if (lead == 0xF0 && next < 0x90) return 0;
      if (lead == 0xF4 && next > 0x8F) return 0;
    }
  }
  return length;
}

// Windows-1252's characters for bytes 0x80-0x9F (the five it leaves undefined stand for the C1
// controls of the same number, as browsers read them); other bytes are their Latin-1 code point.
constexpr char16_t kWindows1252High[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

void AppendUtf8(std::string& out, uint32_t code_point) {
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
}

std::string FromWindows1252(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() + bytes.size() / 8);
  for (char c : bytes) {
    auto byte = static_cast<unsigned char>(c);
    AppendUtf8(out, byte >= 0x80 && byte < 0xA0 ? kWindows1252High[byte - 0x80] : byte);
  }
  return out;
}

// The Windows-1252 byte of the UTF-8 character at text[i] (its length in `length`), or -1.
int Windows1252Byte(std::string_view text, size_t i, int& length) {
  length = std::max(Utf8SequenceLength(text, i), 1);
  auto at = [&](int k) { return static_cast<uint32_t>(static_cast<unsigned char>(text[i + k])); };
  uint32_t code_point = at(0);
  if (length == 2) code_point = ((at(0) & 0x1F) << 6) | (at(1) & 0x3F);
  if (length == 3) code_point = ((at(0) & 0x0F) << 12) | ((at(1) & 0x3F) << 6) | (at(2) & 0x3F);
  if ((length == 1 && code_point >= 0x80) || length == 4) return -1;  // Not UTF-8; beyond.
  if (code_point < 0x80 || (code_point >= 0xA0 && code_point <= 0xFF)) {
    return static_cast<int>(code_point);
  }
  for (int k = 0; k < 32; ++k) {
    if (kWindows1252High[k] == code_point) return 0x80 + k;
  }
  return -1;
}

int ReadUmask() {
  // umask() cannot be read without setting it (a race with other threads); /proc has it.
  FILE* status = std::fopen("/proc/self/status", "re");
  if (status == nullptr) return 022;
  char line[256];
  int mask = 022;
  while (std::fgets(line, sizeof(line), status) != nullptr) {
    if (std::strncmp(line, "Umask:", 6) == 0) {
      mask = static_cast<int>(std::strtol(line + 6, nullptr, 8));
      break;
    }
  }
  std::fclose(status);
  return mask;
}

Status CreateParents(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return OkStatus();
  std::string parent = path.substr(0, slash);
  struct stat info;
  if (::stat(parent.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode)) return OkStatus();
    return Error(ErrorCode::kInvalidArgument,
                 "create directory '" + parent + "': a file with that name exists");
  }
  RETURN_IF_ERROR(CreateParents(parent));
  // 0755 is reduced by the umask as the kernel applies it.
  if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoError("create directory '" + parent + "'", errno);
  }
  return OkStatus();
}

}  // namespace

bool LooksBinary(std::string_view prefix) {
  if (prefix.size() > kSniffBytes) prefix = prefix.substr(0, kSniffBytes);
  if (prefix.empty()) return false;
  size_t suspicious = 0;
  size_t control = 0;
  for (size_t i = 0; i < prefix.size();) {
    unsigned char c = static_cast<unsigned char>(prefix[i]);
    if (c == 0) return true;
    if (c < 0x80) {
      // Tab, newline, form feed, carriage return, backspace and escape appear in text files.
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\b' && c != 0x1B &&
           c != '\v') ||
          c == 0x7F) {
        ++control;
      }
      ++i;
      continue;
    }
    int length = Utf8SequenceLength(prefix, i);
    if (length < 0) break;  // A sequence cut by the 8 KiB window.
    if (length == 0) {
      ++suspicious;  // Not UTF-8: Latin-1 text has a few of these, binary data many.
      ++i;
      continue;
    }
    i += static_cast<size_t>(length);
  }
  // Thresholds: control bytes are rare in any text; stray high bytes are tolerated up to 30 %
  // so that legacy 8-bit encodings still read as text.
  return control * 10 > prefix.size() || (control + suspicious) * 10 > prefix.size() * 3;
}

bool IsUtf8(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    // Eight ASCII bytes at a time: most text is.
    uint64_t word;
    if (i + 8 <= bytes.size() && (std::memcpy(&word, bytes.data() + i, 8), true) &&
        (word & 0x8080808080808080ULL) == 0) {
      i += 8;
      continue;
    }
    int length = Utf8SequenceLength(bytes, i);
    if (length <= 0) return false;
    i += static_cast<size_t>(length);
  }
  return true;
}

namespace {

// More byte sequences that are not UTF-8 than that are (beyond ASCII): a single-byte encoding's
// text. A UTF-8 file with a stray byte or two stays UTF-8 (its characters must not turn into
// mojibake), the stray bytes kept as they are.
bool IsMostlyNotUtf8(std::string_view bytes) {
  size_t valid = 0;
  size_t invalid = 0;
  for (size_t i = 0; i < bytes.size();) {
    if (static_cast<unsigned char>(bytes[i]) < 0x80) {
      ++i;
      continue;
    }
    int length = Utf8SequenceLength(bytes, i);
    if (length > 0) {
      ++valid;
      i += static_cast<size_t>(length);
    } else {
      ++invalid;
      ++i;
    }
  }
  return invalid > valid;
}

}  // namespace

TextFile DecodeText(std::string_view bytes) {
  TextFile file;
  if (bytes.substr(0, kBom.size()) == kBom) {
    file.has_bom = true;
    bytes.remove_prefix(kBom.size());
  }
  std::string transcoded;
  if (!file.has_bom && IsMostlyNotUtf8(bytes)) {
    transcoded = FromWindows1252(bytes);
    bytes = transcoded;
    file.is_windows_1252 = true;
  }
  const size_t newlines = static_cast<size_t>(std::count(bytes.begin(), bytes.end(), '\n'));
  size_t crlf = 0;
  file.text.reserve(bytes.size());
  // Copy the runs between "\r\n" pairs whole: most files have none, and then this is one copy.
  size_t begin = 0;
  for (size_t cr = bytes.find('\r'); cr != std::string_view::npos; cr = bytes.find('\r', cr + 1)) {
    if (cr + 1 < bytes.size() && bytes[cr + 1] == '\n') {
      file.text.append(bytes.substr(begin, cr - begin));
      begin = cr + 1;  // The '\n' starts the next run.
      ++crlf;
    }
  }
  file.text.append(bytes.substr(begin));
  // A mixed file takes its dominant ending (ties go to LF); EncodeText then writes every line
  // with it, so a mixed file comes back uniform.
  file.line_ending = crlf > newlines - crlf ? LineEnding::kCrlf : LineEnding::kLf;
  return file;
}

std::optional<size_t> FirstUnencodable(std::string_view text, const TextFile& format) {
  if (!format.is_windows_1252) return std::nullopt;
  for (size_t i = 0; i < text.size();) {
    int length = 1;
    if (Windows1252Byte(text, i, length) < 0) return i;
    i += static_cast<size_t>(length);
  }
  return std::nullopt;
}

std::string EncodeText(std::string_view text, const TextFile& format) {
  std::string single_byte;
  if (format.is_windows_1252) {
    single_byte.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      int length = 1;
      int byte = Windows1252Byte(text, i, length);
      single_byte += byte < 0 ? '?' : static_cast<char>(byte);
      i += static_cast<size_t>(length);
    }
    text = single_byte;
  }
  std::string bytes;
  bytes.reserve(text.size() + kBom.size() + 64);
  if (format.has_bom) bytes.append(kBom);
  if (format.line_ending == LineEnding::kLf) {
    bytes.append(text);
    return bytes;
  }
  size_t begin = 0;
  for (size_t lf = text.find('\n'); lf != std::string_view::npos; lf = text.find('\n', lf + 1)) {
    bytes.append(text.substr(begin, lf - begin));
    bytes.append("\r\n");
    begin = lf + 1;
  }
  bytes.append(text.substr(begin));
  return bytes;
}

std::string EncodeText(const TextFile& file) { return EncodeText(file.text, file); }

Result<std::string> ReadFileBytes(const std::string& absolute_path, size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  UniqueFd fd(::open(absolute_path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.is_valid()) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return Error(ErrorCode::kNotFound, "read '" + absolute_path + "': no such file");
    }
    if (err == ENXIO) {  // A socket (or a device with nothing behind it).
      return Error(ErrorCode::kInvalidArgument,
                   "'" + absolute_path + "' is not a regular file (a device, FIFO or socket)");
    }
    return ErrnoError("read '" + absolute_path + "'", err);
  }
  struct stat info;
  if (::fstat(fd.get(), &info) != 0) return ErrnoError("stat '" + absolute_path + "'", errno);
  if (S_ISDIR(info.st_mode)) {
    return Error(ErrorCode::kInvalidArgument,
                 "'" + absolute_path + "' is a directory; use list_files to see its contents");
  }
  if (!S_ISREG(info.st_mode)) {
    return Error(ErrorCode::kInvalidArgument,
                 "'" + absolute_path + "' is not a regular file (a device, FIFO or socket)");
  }
  auto too_large = [&] {
    return Error(ErrorCode::kResourceExhausted, "'" + absolute_path + "' is larger than the " +
                                                    std::to_string(max_bytes) + "-byte limit");
  };
  if (static_cast<size_t>(info.st_size) > max_bytes) return too_large();
  std::string bytes;
  bytes.resize(static_cast<size_t>(info.st_size));
  size_t filled = 0;
  while (true) {
    if (filled == bytes.size()) {
      if (bytes.size() >= max_bytes + 1) break;
      bytes.resize(std::min(max_bytes + 1, bytes.size() + 65536));  // The file may have grown.
    }
    ssize_t count = ::read(fd.get(), bytes.data() + filled, bytes.size() - filled);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return ErrnoError("read '" + absolute_path + "'", errno);
    if (count == 0) break;
    filled += static_cast<size_t>(count);
  }
  bytes.resize(filled);
  if (bytes.size() > max_bytes) return too_large();
  return bytes;
}

Result<TextFile> ReadTextFile(const std::string& absolute_path, size_t max_bytes) {
  Result<std::string> read = ReadFileBytes(absolute_path, max_bytes);
  if (!read.ok() && read.error().code() == ErrorCode::kResourceExhausted) {
    return Error(ErrorCode::kResourceExhausted,
                 read.error().message() + "; read a line range instead");
  }
  ASSIGN_OR_RETURN(std::string bytes, std::move(read));
  if (LooksBinary(bytes)) {
    return Error(ErrorCode::kInvalidArgument,
                 "'" + absolute_path + "' appears to be a binary file");
  }
  return DecodeText(bytes);
}

namespace {

// Writes `bytes` over the existing file itself: its inode, links, owner and group stay.
// Writes `bytes` over the existing file itself: its inode, links, owner, group and attributes
// stay. Not atomic, but never leaves it cut short: the room is taken first, and a write that
// fails part-way puts the old bytes back.
Status WriteInPlace(const std::string& absolute_path, std::string_view bytes) {
  ASSIGN_OR_RETURN(std::string old_bytes, ReadFileBytes(absolute_path, SIZE_MAX));
  UniqueFd fd(::open(absolute_path.c_str(), O_WRONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.is_valid()) return ErrnoError("write '" + absolute_path + "'", errno);
  if (bytes.size() > old_bytes.size()) {
    int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(bytes.size()));
    if (err != 0 && err != EOPNOTSUPP && err != EINVAL) {
      return ErrnoError("write '" + absolute_path + "' (it was not changed)", err);
    }
  }
  auto write_at_start = [&](std::string_view data) -> int {
    for (size_t done = 0; done < data.size();) {
      ssize_t n =
          ::pwrite(fd.get(), data.data() + done, data.size() - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return n < 0 ? errno : EIO;
      done += static_cast<size_t>(n);
    }
    return ::ftruncate(fd.get(), static_cast<off_t>(data.size())) == 0 ? 0 : errno;
  };
  if (int err = write_at_start(bytes); err != 0) {
    bool restored = write_at_start(old_bytes) == 0;
    return ErrnoError("write '" + absolute_path + "'" +
                          (restored ? " (it was left as it was)" : " (it may be cut short)"),
                      err);
  }
  if (::close(fd.Release()) != 0) return ErrnoError("close '" + absolute_path + "'", errno);
  return OkStatus();
}

// Copies the extended attributes of `from` (POSIX ACLs, user.* tags, labels) to the new file
// `to`; false when one that matters could not be (a security label the system sets itself
// does not).
bool CopyAttributes(const std::string& from, int to) {
  ssize_t size = ::listxattr(from.c_str(), nullptr, 0);
  if (size <= 0) return size == 0 || errno == ENOTSUP;
  std::string names(static_cast<size_t>(size), '\0');
  size = ::listxattr(from.c_str(), names.data(), names.size());
  if (size < 0) return false;
  names.resize(static_cast<size_t>(size));
  for (size_t at = 0; at < names.size();) {
    const char* name = names.c_str() + at;
    at += std::strlen(name) + 1;
    ssize_t length = ::getxattr(from.c_str(), name, nullptr, 0);
    std::string value(length > 0 ? static_cast<size_t>(length) : 0, '\0');
    if (length < 0 || ::getxattr(from.c_str(), name, value.data(), value.size()) < 0 ||
        ::fsetxattr(to, name, value.data(), value.size(), 0) != 0) {
      if (std::string_view(name).starts_with("security.")) continue;
      return false;
    }
  }
  return true;
}

}  // namespace

Status CheckWritable(const std::string& absolute_path) {
  struct stat info;
  if (::stat(absolute_path.c_str(), &info) != 0) return OkStatus();  // A new file.
  char shown_mode[8];
  std::snprintf(shown_mode, sizeof shown_mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
  // Read-only is the owner's "do not touch" (root passes access(): the mode is looked at).
  if ((info.st_mode & 0222) == 0) {
    return Error(ErrorCode::kPermissionDenied,
                 "'" + absolute_path + "' is read-only (mode " + shown_mode +
                     "); it was not changed. Make it writable first (chmod u+w) if it is to be "
                     "edited");
  }
  if (::access(absolute_path.c_str(), W_OK) != 0) {
    return Error(ErrorCode::kPermissionDenied,
                 "'" + absolute_path + "' may not be written by this user (uid " +
                     std::to_string(::geteuid()) + "; the file is uid " +
                     std::to_string(info.st_uid) + "'s, mode " + shown_mode +
                     "); it was not changed");
  }
  return OkStatus();
}

Status WriteFileAtomically(const std::string& absolute_path, std::string_view bytes,
                           bool create_parents) {
  if (absolute_path.empty() || absolute_path[0] != '/' || absolute_path.back() == '/') {
    return Error(ErrorCode::kInvalidArgument,
                 "write '" + absolute_path + "': need an absolute file path");
  }
  if (create_parents) RETURN_IF_ERROR(CreateParents(absolute_path));

  mode_t mode = static_cast<mode_t>(0644 & ~ReadUmask());
  struct stat existing;
  const bool exists = ::stat(absolute_path.c_str(), &existing) == 0;
  if (exists) {
    if (S_ISDIR(existing.st_mode)) {
      return Error(ErrorCode::kInvalidArgument, "write '" + absolute_path + "': it is a directory");
    }
    if (!S_ISREG(existing.st_mode)) {
      return Error(
          ErrorCode::kInvalidArgument,
          "write '" + absolute_path + "': it is not a regular file (a device, FIFO or socket)");
    }
    RETURN_IF_ERROR(CheckWritable(absolute_path));
    mode = existing.st_mode & 07777;
  }
  // A file with other names (hard links) is written in place: the rename broke the links.
  if (exists && existing.st_nlink > 1) return WriteInPlace(absolute_path, bytes);

  size_t slash = absolute_path.rfind('/');
  std::string temp = absolute_path.substr(0, slash + 1) + "." + absolute_path.substr(slash + 1) +
                     ".lai-tmp-XXXXXX";
  // mkstemp creates the file 0600, so no other user can read it before the rename.
  UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (!fd.is_valid()) {
    // A writable file in a directory the user cannot write to is still theirs to edit.
    if (exists && (errno == EACCES || errno == EPERM)) return WriteInPlace(absolute_path, bytes);
    return ErrnoError("create temporary file for '" + absolute_path + "'", errno);
  }
  // The new file gets the old one's owner, group and attributes (a root engine made itself the
  // owner of the user's files, and ACLs were lost); where that cannot be, the file itself is
  // written instead.
  const bool keeps_owner =
      !exists ||
      ((existing.st_uid == ::geteuid() || ::fchown(fd.get(), existing.st_uid, -1) == 0) &&
       (existing.st_gid == ::getegid() || ::fchown(fd.get(), -1, existing.st_gid) == 0));
  if (!keeps_owner || (exists && !CopyAttributes(absolute_path, fd.get()))) {
    fd.Reset();
    ::unlink(temp.c_str());
    return WriteInPlace(absolute_path, bytes);
  }
  Status status = WriteAll(fd.get(), bytes, "'" + temp + "'");
  if (status.ok() && ::fchmod(fd.get(), mode) != 0)
    status = ErrnoError("chmod '" + temp + "'", errno);
  // No fsync: the rename is what makes the write atomic for every reader and for a crash of
  // lapce-ai (or of the tool's process) at any point. Surviving power loss is the file system's
  // business, as it is for editors (VS Code does not fsync either); ext4 (auto_da_alloc) and btrfs
  // flush a file's data before a rename that replaces another file commits. An fsync here cost 6-18
  // ms per edit on the build machines, more than everything else apply_diff does.
  if (status.ok() && ::close(fd.Release()) != 0) status = ErrnoError("close '" + temp + "'", errno);
  if (status.ok() && ::rename(temp.c_str(), absolute_path.c_str()) != 0) {
    status = ErrnoError("rename '" + temp + "' to '" + absolute_path + "'", errno);
  }
  if (!status.ok()) ::unlink(temp.c_str());
  return status;
}

DirectoryWriteLock::DirectoryWriteLock(const std::string& absolute_path) {
  std::string directory = absolute_path;
  for (;;) {
    size_t slash = directory.find_last_of('/');
    if (slash == std::string::npos) return;
    directory.resize(slash == 0 ? 1 : slash);
    fd_ = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ >= 0 || errno != ENOENT || directory == "/") break;
  }
  if (fd_ < 0) return;
  while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
  }
}

DirectoryWriteLock::~DirectoryWriteLock() {
  if (fd_ >= 0) ::close(fd_);  // Releases the lock.
}

}  // namespace lai::workspace
