// EventJournal: the session store's write-ahead file for the changes a running session makes
// (events, messages, its row). A transaction in SQLite costs 100-200 µs and a dozen system calls;
// appending here costs one write(2), and what write(2) returned survives kill -9 of the process
// (it is in the page cache). The store folds the journal into SQLite on a background thread and,
// after a crash, when the next process opens the store (SessionStore in store.h).
//
// One journal per open store per process: `<dir>/<pid>-<random>.log`, mode 0600, in a 0700
// directory. Its owner holds an exclusive flock on it for as long as it is open, which is how
// other processes tell a live journal from one a crashed process left behind.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lai::agent {

// What a record asks the store to do; the meaning of kind and payload_json depends on it.
enum class JournalOp : uint32_t {
  kEvent = 1,    // AppendEvent: kind, payload_json, time_ms.
  kMessage = 2,  // AppendMessage: kind = the message's other columns as JSON, payload = content.
  kSession = 3,  // UpdateSession: payload_json = the record as JSON.
};

struct JournalRecord {
  JournalOp op = JournalOp::kEvent;
  uint64_t number = 0;  // 1, 2, 3… in append order, never reused within one journal.
  int64_t time_ms = 0;
  std::string session_id;
  std::string kind;
  std::string payload_json;
};

class EventJournal {
 public:
  // Creates a new journal in `directory` (made 0700 if missing).
  static Result<EventJournal> Create(const std::string& directory);

  EventJournal(EventJournal&&) = default;
  EventJournal& operator=(EventJournal&&) = default;
  // Closes the file; the owner removes it with Remove() once everything is folded.
  ~EventJournal() = default;

  const std::string& path() const { return path_; }
  // The file name without its directory: the journal's name in the store's progress table.
  std::string name() const;

  // Appends the records (their numbers are set here) with a single write(2). Not thread-safe.
  Status Append(std::vector<JournalRecord>& records);
  // Empties the file (records already folded); numbering continues. Not thread-safe.
  Status Truncate();
  // Bytes in the file (appended since it was made or last truncated).
  uint64_t size() const { return size_; }
  // Removes the file: a clean close.
  void Remove();

  // The complete records of a journal file, in order; a torn or corrupt tail (a crash in the
  // middle of a write, or a damaged disk) ends the list and is reported through *torn.
  static Result<std::vector<JournalRecord>> Read(const std::string& path, bool* torn = nullptr);

  // A journal another process left behind: opened and locked, so no one else replays it.
  struct Orphan {
    std::string path;
    UniqueFd lock;
  };
  // The journals in `directory` whose owners are gone (their lock is free). Files that are not
  // journals are left alone; a missing directory has none.
  static Result<std::vector<Orphan>> FindOrphans(const std::string& directory);

 private:
  EventJournal(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  std::string path_;
  UniqueFd fd_;
  uint64_t next_number_ = 1;
  uint64_t size_ = 0;
  std::string buffer_;  // Reused for encoding.
};

}  // namespace lai::agent
