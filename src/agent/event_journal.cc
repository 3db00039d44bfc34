#include "agent/event_journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/file_io.h"

namespace lai::agent {
namespace {

// A record on disk, little-endian (the journal never leaves the machine that wrote it):
//   u32 size of the whole record   u32 magic   u32 op
//   u32 session bytes   u32 kind bytes   u32 payload bytes   u64 number   i64 time_ms
//   the three strings   u64 FNV-1a of everything before it
constexpr uint32_t kMagic = 0x314A414C;  // "LAJ1"
constexpr size_t kHeaderBytes = 4 + 4 + 4 + 4 + 4 + 4 + 8 + 8;
constexpr size_t kChecksumBytes = 8;
constexpr uint32_t kMaxRecordBytes = 64u << 20;  // Far above any event; a bigger size is damage.
constexpr std::string_view kSuffix = ".log";

uint64_t Fnv1a(std::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

template <typename T>
void Put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

template <typename T>
T Get(const char* at) {
  T value;
  std::memcpy(&value, at, sizeof(T));
  return value;
}

Status MakeDirectory(const std::string& directory) {
  if (::mkdir(directory.c_str(), 0700) == 0 || errno == EEXIST) {
    struct stat info;
    if (::stat(directory.c_str(), &info) != 0) return ErrnoError("stat '" + directory + "'", errno);
    if (!S_ISDIR(info.st_mode)) {
      return Error(ErrorCode::kInvalidArgument,
                   "'" + directory + "' is not a directory; move it away");
    }
    return OkStatus();
  }
  return ErrnoError("create journal directory '" + directory + "'", errno);
}

}  // namespace

Result<EventJournal> EventJournal::Create(const std::string& directory) {
  RETURN_IF_ERROR(MakeDirectory(directory));
  uint64_t random = 0;
  while (::getrandom(&random, sizeof(random), 0) != static_cast<ssize_t>(sizeof(random))) {
  }
  char name[64];
  std::snprintf(name, sizeof(name), "%d-%016llx", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(random));
  // Created and locked under a name FindOrphans leaves alone while this process lives, then
  // renamed: nobody can take the journal for an orphan before its owner holds the lock.
  const std::string temp = directory + "/" + name + ".tmp";
  const std::string path = directory + "/" + name + std::string(kSuffix);
  UniqueFd fd(::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600));
  if (!fd.is_valid()) return ErrnoError("create journal '" + temp + "'", errno);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0 || ::rename(temp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    return ErrnoError("set up journal '" + path + "'", err);
  }
  return EventJournal(path, std::move(fd));
}

std::string EventJournal::name() const { return path_.substr(path_.rfind('/') + 1); }

Status EventJournal::Append(std::vector<JournalRecord>& records) {
  buffer_.clear();
  uint64_t number = next_number_;
  for (JournalRecord& record : records) {
    const size_t size = kHeaderBytes + record.session_id.size() + record.kind.size() +
                        record.payload_json.size() + kChecksumBytes;
    if (size > kMaxRecordBytes) {
      return Error(ErrorCode::kInvalidArgument,
                   "a change of " + std::to_string(size) + " bytes is too large for the journal");
    }
    const size_t start = buffer_.size();
    record.number = number++;
    Put(buffer_, static_cast<uint32_t>(size));
    Put(buffer_, kMagic);
    Put(buffer_, static_cast<uint32_t>(record.op));
    Put(buffer_, static_cast<uint32_t>(record.session_id.size()));
    Put(buffer_, static_cast<uint32_t>(record.kind.size()));
    Put(buffer_, static_cast<uint32_t>(record.payload_json.size()));
    Put(buffer_, record.number);
    Put(buffer_, record.time_ms);
    buffer_ += record.session_id;
    buffer_ += record.kind;
    buffer_ += record.payload_json;
    Put(buffer_, Fnv1a(std::string_view(buffer_).substr(start)));
  }
  RETURN_IF_ERROR(WriteAll(fd_.get(), buffer_, "journal '" + path_ + "'"));
  next_number_ = number;
  size_ += buffer_.size();
  return OkStatus();
}

Status EventJournal::Truncate() {
  if (::ftruncate(fd_.get(), 0) != 0) return ErrnoError("truncate journal '" + path_ + "'", errno);
  size_ = 0;
  return OkStatus();
}

void EventJournal::Remove() {
  ::unlink(path_.c_str());
  fd_ = UniqueFd();
}

Result<std::vector<JournalRecord>> EventJournal::Read(const std::string& path, bool* torn) {
  if (torn != nullptr) *torn = false;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.is_valid()) return ErrnoError("open journal '" + path + "'", errno);
  std::string bytes;
  char chunk[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read journal '" + path + "'", errno);
    if (n == 0) break;
    bytes.append(chunk, static_cast<size_t>(n));
  }
  std::vector<JournalRecord> records;
  size_t at = 0;
  while (at < bytes.size()) {
    const size_t left = bytes.size() - at;
    const char* p = bytes.data() + at;
    bool ok = left >= kHeaderBytes + kChecksumBytes;
    uint32_t size = ok ? Get<uint32_t>(p) : 0;
    ok = ok && Get<uint32_t>(p + 4) == kMagic && size >= kHeaderBytes + kChecksumBytes &&
         size <= left;
    if (ok) {
      const uint32_t op = Get<uint32_t>(p + 8);
      const uint64_t lengths =
          uint64_t{Get<uint32_t>(p + 12)} + Get<uint32_t>(p + 16) + Get<uint32_t>(p + 20);
      ok = op >= static_cast<uint32_t>(JournalOp::kEvent) &&
           op <= static_cast<uint32_t>(JournalOp::kSession) &&
           kHeaderBytes + lengths + kChecksumBytes == size &&
           Get<uint64_t>(p + size - kChecksumBytes) ==
               Fnv1a(std::string_view(p, size - kChecksumBytes));
    }
    if (!ok) {
      if (torn != nullptr) *torn = true;
      break;
    }
    JournalRecord record;
    record.op = static_cast<JournalOp>(Get<uint32_t>(p + 8));
    const uint32_t session_bytes = Get<uint32_t>(p + 12);
    const uint32_t kind_bytes = Get<uint32_t>(p + 16);
    const uint32_t payload_bytes = Get<uint32_t>(p + 20);
    record.number = Get<uint64_t>(p + 24);
    record.time_ms = Get<int64_t>(p + 32);
    const char* text = p + kHeaderBytes;
    record.session_id.assign(text, session_bytes);
    record.kind.assign(text + session_bytes, kind_bytes);
    record.payload_json.assign(text + session_bytes + kind_bytes, payload_bytes);
    records.push_back(std::move(record));
    at += size;
  }
  return records;
}

Result<std::vector<EventJournal::Orphan>> EventJournal::FindOrphans(const std::string& directory) {
  std::vector<Orphan> orphans;
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return orphans;
    return ErrnoError("open journal directory '" + directory + "'", errno);
  }
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name.ends_with(kSuffix) || name.ends_with(".tmp")) names.emplace_back(name);
  }
  ::closedir(dir);
  for (const std::string& name : names) {
    const std::string path = directory + "/" + name;
    // A journal being created is unlocked between its open and its flock: one whose creator
    // (the pid its name starts with) lives is not a leftover, whatever its lock says.
    if (name.ends_with(".tmp")) {
      int creator = std::atoi(name.c_str());
      if (creator > 0 && (::kill(creator, 0) == 0 || errno == EPERM)) continue;
    }
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.is_valid()) continue;  // Removed meanwhile, or not ours to touch.
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // Its owner is alive.
    if (name.ends_with(".tmp")) {
      ::unlink(path.c_str());  // Its owner died before writing anything.
      continue;
    }
    orphans.push_back({path, std::move(fd)});
  }
  return orphans;
}

}  // namespace lai::agent
