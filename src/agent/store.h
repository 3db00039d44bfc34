// SessionStore: sessions, their messages and their events in one SQLite file (WAL mode) under the
// user's data directory, shared by every lapce-ai process of the user. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/event_journal.h"
#include "agent/history.h"
#include "base/lock_file.h"
#include "base/result.h"

namespace lai::agent {

// A session's totals as the store's JSON names them ("tokens_in", "cost_usd", …), and back
// (a missing field is 0).
void AddTotalsJson(const SessionTotals& totals, nlohmann::json& object);
SessionTotals TotalsFromJson(const nlohmann::json& object);

namespace internal {
struct StoreConnection;  // The SQLite connection and its statement cache (store.cc).
}  // namespace internal

// "active", "completed", "cancelled", "failed", "waiting" (the store's spelling).
std::string_view SessionStatusName(SessionStatus status);
std::optional<SessionStatus> ParseSessionStatus(std::string_view name);
std::string_view ToolProtocolName(ToolProtocol protocol);  // "native", "xml".

// One row of `sessions`: what `sessions list` shows and what a resume needs besides the history.
struct SessionRecord {
  std::string id;         // Non-empty; the caller generates it.
  std::string parent_id;  // "" = top level; else an existing session (new_task children).
  std::string title;      // Usually the first prompt, shortened.
  std::string workspace;  // Absolute workspace root.
  std::string mode;
  std::string profile;
  std::string model;
  ToolProtocol tool_protocol = ToolProtocol::kNative;
  SessionStatus status = SessionStatus::kActive;
  int64_t created_ms = 0;  // Unix epoch milliseconds.
  int64_t updated_ms = 0;
  SessionTotals totals;
  std::string todos_json = "[]";  // The todo list; any valid JSON.
  std::string extra_json = "{}";  // Anything else the session wants kept; any valid JSON.
};

struct StoredEvent {
  int64_t seq = 0;  // 1-based, per session, assigned by AppendEvent.
  int64_t time_ms = 0;
  std::string kind;
  std::string payload_json;
};

// Hides (or shows again, with zeros) one stored message; see HistoryMessage.
struct MessageVisibility {
  int64_t seq = 0;
  int64_t condensed_by = 0;
  int64_t truncated_by = 0;
};

struct ListOptions {
  int limit = 50;                 // <= 0: no limit.
  std::string workspace;          // "" = every workspace; else this root (made canonical).
  bool include_children = false;  // Also list new_task children.
};

// Durability: every call below is one transaction (Journal() one write to the journal) and is
// on disk (in the OS page cache) when it returns, so it survives kill -9 of the process.
// synchronous=NORMAL does not fsync each commit: a power loss or kernel crash may lose the last
// transactions (never corrupts).
//
// Many processes may open the same file; writers wait up to 5 s for one another, then fail with
// kUnavailable.
//
// Errors common to all calls: kUnavailable (the file stayed locked), kIo (disk full, I/O error),
// kInvalidArgument (the file is corrupt: the message names it and says to move it away).
// Held while a session is open (loaded by a Session) in this process; see LockSession.
using SessionLock = LockFile;

class SessionStore {
 public:
  // Write operations inside Transaction(); the same contracts as the SessionStore methods of the
  // same names. Valid only during the callback; confined to the thread running it.
  class Writer {
   public:
    Status CreateSession(const SessionRecord& record);
    Status UpdateSession(const SessionRecord& record);
    Status AppendMessage(std::string_view session_id, const HistoryMessage& message);
    Status UpdateMessageVisibility(std::string_view session_id, const MessageVisibility& change);
    Result<int64_t> AppendEvent(std::string_view session_id, std::string_view kind,
                                std::string_view payload_json, int64_t time_ms);

   private:
    friend class SessionStore;
    explicit Writer(SessionStore& store) : store_(store) {}
    SessionStore& store_;
  };

  // Opens (creating if needed) the store at `path`: missing parent directories are created 0700,
  // a new file 0600. An existing file readable by group or others is refused (kPermissionDenied,
  // says to chmod 600). Migrates the schema; a file made by a newer lapce-ai is refused
  // (kInvalidArgument). A file that is not an SQLite database: kInvalidArgument naming it.
  static Result<std::unique_ptr<SessionStore>> Open(const std::string& path);

  // $XDG_DATA_HOME/lapce-ai/sessions.db, else $HOME/.local/share/lapce-ai/sessions.db.
  // `environ`: NULL-terminated "NAME=value" array; nullptr = the process environment.
  static Result<std::string> DefaultPath(const char* const* environ = nullptr);
  static Result<std::unique_ptr<SessionStore>> OpenDefault(const char* const* environ = nullptr);

  ~SessionStore();
  SessionStore(const SessionStore&) = delete;
  SessionStore& operator=(const SessionStore&) = delete;

  const std::string& path() const { return path_; }

  // Errors: kInvalidArgument (empty id, invalid todos/extra JSON, id already stored), kNotFound
  // (parent_id names no session).
  Status CreateSession(const SessionRecord& record);
  // Writes every column except id, parent_id and created_ms. kNotFound when the session does not
  // exist; kInvalidArgument for invalid todos/extra JSON.
  Status UpdateSession(const SessionRecord& record);

  // Stores message at message.seq (> 0, chosen by the caller). kInvalidArgument when that seq is
  // already stored; kNotFound when the session does not exist.
  Status AppendMessage(std::string_view session_id, const HistoryMessage& message);
  // kNotFound when the message does not exist. The batch form is one transaction.
  Status UpdateMessageVisibility(std::string_view session_id, int64_t seq, int64_t condensed_by,
                                 int64_t truncated_by);
  Status UpdateMessageVisibility(std::string_view session_id,
                                 const std::vector<MessageVisibility>& changes);

  // Appends an event and returns its seq (last seq of the session + 1). `kind` must be non-empty
  // and `payload_json` valid JSON (kInvalidArgument). kNotFound when the session does not exist.
  Result<int64_t> AppendEvent(std::string_view session_id, std::string_view kind,
                              std::string_view payload_json, int64_t time_ms);

  // Changes for the hot path (every streamed chunk, every message of a turn), validated as the
  // methods of the same names validate them, when they are added.
  class Changes {
   public:
    Status AppendMessage(std::string_view session_id, const HistoryMessage& message);
    Status AppendEvent(std::string_view session_id, std::string_view kind,
                       std::string_view payload_json, int64_t time_ms);
    Status UpdateSession(const SessionRecord& record);
    bool empty() const { return records_.empty(); }

   private:
    friend class SessionStore;
    std::vector<JournalRecord> records_;
  };

  // Writes `changes` to this process's journal with one write(2) (a few µs instead of a
  // transaction's 100-200) and folds them into SQLite together, in order, kFoldDelay (20 ms)
  // later on a background thread, or earlier when any other call on this store needs it: every
  // call sees them, and events and messages keep the order they were journaled in. What this
  // returned survives kill -9: the next Open of the store, in any process, folds a dead
  // process's journal. Another process reads them up to kFoldDelay late. Errors: kIo when the
  // journal cannot be written. A change the database refuses when it is folded (its session is
  // gone, a message seq is taken) is dropped and logged. Without a journal (it could not be
  // made) the changes are one transaction here.
  Status Journal(Changes changes);
  // Folds this process's journaled changes into SQLite now (kUnavailable or kIo when it cannot;
  // they stay journaled).
  Status Flush();
  // Journal() of one AppendEvent.
  Status JournalEvent(std::string_view session_id, std::string_view kind,
                      std::string_view payload_json, int64_t time_ms);

  // Runs fn inside one write transaction: committed when fn returns OK, rolled back when it
  // returns an error (which is returned) — e.g. a finished message, its event and the new totals
  // together. fn must use `writer`, never this store's own methods (that aborts: it would
  // deadlock), and should be short: other threads and processes wait for it.
  Status Transaction(const std::function<Status(Writer& writer)>& fn);

  // The session with this id, else the one session whose id starts with `id_or_prefix`;
  // std::nullopt when none. kInvalidArgument for an empty argument, or for a prefix several ids
  // share (the message lists them).
  Result<std::optional<SessionRecord>> FindSession(std::string_view id_or_prefix);
  // Newest (updated_ms) first.
  Result<std::vector<SessionRecord>> ListSessions(const ListOptions& options = {});
  // Every message, hidden ones included, by seq. kNotFound when the session does not exist.
  Result<std::vector<HistoryMessage>> LoadMessages(std::string_view session_id);
  // Events with seq > after_seq, by seq. kNotFound when the session does not exist.
  Result<std::vector<StoredEvent>> LoadEvents(std::string_view session_id, int64_t after_seq = 0);
  // Deletes the session, its messages and events, and its children (recursively). kNotFound when
  // it does not exist; kUnavailable while it is open (LockSession).
  Status DeleteSession(std::string_view session_id);
  // The same for a session whose lock the caller holds (`held`, from LockSession(session_id)).
  Status DeleteSession(std::string_view session_id, const SessionLock& held);

  // Gives the space of deleted sessions back to the file system (VACUUM) when a quarter of the
  // file, and at least 1 MiB, is free; true when it did. Not while another connection uses the
  // store (false then). Takes as long as rewriting the whole store.
  Result<bool> Compact();

  // For `doctor`: whether every page of the store reads back whole (PRAGMA quick_check) and it
  // can be written (a write transaction begun and rolled back). The error says what to do.
  Status Check();

  // Marks the session open for the life of the returned lock (an flock on
  // "<store>.open/<id>.lock"), so that no other process, nor a second Session here, loads it and
  // writes the same history: kUnavailable, naming the holder's pid, while another holds it.
  Result<SessionLock> LockSession(std::string_view session_id);
  // Whether a lock from LockSession is held on the session now, in any process.
  bool IsSessionOpen(std::string_view session_id);
  // The status to show: "interrupted" for an active session no process has open (its engine was
  // killed), else SessionStatusName.
  std::string_view ShownStatus(const SessionRecord& record);

 private:
  SessionStore(std::string path, std::unique_ptr<internal::StoreConnection> connection);
  Status DeleteSessionRows(std::string_view session_id);

  // Immutable after construction.
  const std::string path_;
  // Owns the connection and the mutex that guards it (one thread at a time uses it).
  const std::unique_ptr<internal::StoreConnection> connection_;
};

}  // namespace lai::agent
