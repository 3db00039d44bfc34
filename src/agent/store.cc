#include "agent/store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "agent/event_journal.h"
#include "agent/message_json.h"
#include "base/check.h"
#include "base/log.h"

extern char** environ;

namespace lai::agent {

// Schema versions this build knows; Migrate() brings older files up to kSchemaVersion.
constexpr int kSchemaVersion = 3;
constexpr int kBusyTimeoutMs = 5'000;
// How long journaled changes wait to be folded into SQLite: a burst of streamed chunks becomes one
// transaction, and another process's `sessions show` is this far behind at most.
constexpr std::chrono::milliseconds kFoldDelay{20};
// The journal is emptied once everything in it is folded and it is larger than this.
constexpr uint64_t kJournalBytes = 4u << 20;

namespace internal {

struct StoreConnection {
  ~StoreConnection() {
    for (auto& [sql, statement] : statements) sqlite3_finalize(statement);
    sqlite3_close_v2(db);
  }

  std::mutex mutex;
  // The thread inside Transaction(), to catch a callback calling the store (a self-deadlock).
  std::atomic<std::thread::id> transaction_thread{};
  // Guarded by mutex.
  sqlite3* db = nullptr;
  std::unordered_map<const char*, sqlite3_stmt*> statements;  // Keyed by the SQL literal.
  std::string path;

  // The journal (Journal()). Guarded by journal_mutex, which is taken after mutex or alone, never
  // the other way round.
  std::mutex journal_mutex;
  std::condition_variable journal_wake;
  std::optional<EventJournal> journal;  // Made on the first Journal().
  bool journal_failed = false;          // Could not be made: changes go straight to SQLite.
  std::vector<JournalRecord> pending;   // In the journal, not yet in SQLite.
  bool stopping = false;
  std::thread folder;
  std::atomic<bool> has_pending{false};  // pending is not empty (read without the lock).
};

}  // namespace internal

namespace {

using Connection = internal::StoreConnection;

std::string Quote(std::string_view text) { return "'" + std::string(text) + "'"; }

// An SQLite failure as an Error whose code says what the caller can do about it.
// How to move a store away: with its write-ahead log and shared-memory index, which belong to
// it (a new store beside them would read them).
std::string MoveAwayCommand(std::string_view path) {
  return "mv " + Quote(path) + " " + Quote(std::string(path) + ".broken") +
         ", and its -wal and -shm files beside it likewise when they exist";
}

Error SqlError(sqlite3* db, int rc, std::string_view path, std::string_view what) {
  std::string message = "session store " + Quote(path) + ": " + std::string(what) + ": " +
                        (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Error(ErrorCode::kUnavailable,
                   message + " (another lapce-ai process kept the store busy for " +
                       std::to_string(kBusyTimeoutMs / 1000) + " s; retry)");
    case SQLITE_NOTADB:
      return Error(ErrorCode::kIo, message +
                                       "; the file is not a lapce-ai session store, or its "
                                       "start is damaged: move it away (" +
                                       MoveAwayCommand(path) +
                                       ") and lapce-ai will start a new one");
    case SQLITE_CORRUPT:
      // Often one page: most sessions still read. What to save comes first.
      return Error(ErrorCode::kIo,
                   message +
                       "; part of the store is damaged. Sessions that still show can be "
                       "exported (lapce-ai sessions export ID). To recover what it holds: "
                       "sqlite3 " +
                       Quote(path) +
                       " .recover | sqlite3 recovered.db; then move the store away (" +
                       MoveAwayCommand(path) +
                       ") and put recovered.db in its place, or leave it moved away and "
                       "lapce-ai starts a new one");
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return Error(ErrorCode::kPermissionDenied, message + " (make the store writable: chmod u+w " +
                                                     Quote(path) + " and its directory)");
    case SQLITE_FULL:
      return Error(ErrorCode::kIo,
                   message + " (the disk is full: free some space, then try again)");
    case SQLITE_IOERR:
      return Error(ErrorCode::kIo,
                   message +
                       " (is the disk full, or the file over a size limit? free some space, "
                       "then try again)");
    case SQLITE_CANTOPEN:
      return Error(ErrorCode::kIo, message);
    case SQLITE_NOMEM:
      return Error(ErrorCode::kResourceExhausted, message);
    case SQLITE_CONSTRAINT:
      return Error(ErrorCode::kInvalidArgument, message);
    default:
      return Error(ErrorCode::kInternal, message);
  }
}

Error SqlError(Connection& connection, int rc, std::string_view what) {
  return SqlError(connection.db, rc, connection.path, what);
}

// A cached prepared statement, reset and unbound when the scope ends. Binds text without copying:
// bound views must outlive the scope.
class Statement {
 public:
  explicit Statement(sqlite3_stmt* statement) : statement_(statement) {}
  ~Statement() {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void Bind(int index, std::string_view text) {
    sqlite3_bind_text(statement_, index, text.data() != nullptr ? text.data() : "",
                      static_cast<int>(text.size()), SQLITE_STATIC);
  }
  void BindNullIfEmpty(int index, std::string_view text) {
    if (text.empty()) {
      sqlite3_bind_null(statement_, index);
    } else {
      Bind(index, text);
    }
  }
  void Bind(int index, int64_t value) { sqlite3_bind_int64(statement_, index, value); }
  void Bind(int index, double value) { sqlite3_bind_double(statement_, index, value); }
  void Bind(int index, bool value) { sqlite3_bind_int(statement_, index, value ? 1 : 0); }

  int Step() { return sqlite3_step(statement_); }

  std::string Text(int column) const {
    const unsigned char* text = sqlite3_column_text(statement_, column);
    if (text == nullptr) return std::string();
    return std::string(reinterpret_cast<const char*>(text),
                       static_cast<size_t>(sqlite3_column_bytes(statement_, column)));
  }
  int64_t Int(int column) const { return sqlite3_column_int64(statement_, column); }
  double Double(int column) const { return sqlite3_column_double(statement_, column); }

 private:
  sqlite3_stmt* statement_;
};

Result<sqlite3_stmt*> Prepare(Connection& connection, const char* sql) {
  auto it = connection.statements.find(sql);
  if (it != connection.statements.end()) return it->second;
  sqlite3_stmt* statement = nullptr;
  int rc =
      sqlite3_prepare_v3(connection.db, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement, nullptr);
  if (rc != SQLITE_OK) return SqlError(connection, rc, "prepare statement");
  connection.statements.emplace(sql, statement);
  return statement;
}

// Runs a statement that returns no rows.
Status Execute(Connection& connection, const char* sql, std::string_view what) {
  ASSIGN_OR_RETURN(sqlite3_stmt * raw, Prepare(connection, sql));
  Statement statement(raw);
  int rc = statement.Step();
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return SqlError(connection, rc, what);
  return OkStatus();
}

// Runs a script of several statements (schema creation).
Status ExecuteScript(Connection& connection, const char* sql, std::string_view what) {
  char* message = nullptr;
  int rc = sqlite3_exec(connection.db, sql, nullptr, nullptr, &message);
  sqlite3_free(message);
  if (rc != SQLITE_OK) return SqlError(connection, rc, what);
  return OkStatus();
}

Result<int64_t> QueryInt(Connection& connection, const char* sql, std::string_view what) {
  ASSIGN_OR_RETURN(sqlite3_stmt * raw, Prepare(connection, sql));
  Statement statement(raw);
  int rc = statement.Step();
  if (rc != SQLITE_ROW) return SqlError(connection, rc, what);
  return statement.Int(0);
}

Status ValidateRecord(const SessionRecord& record) {
  if (record.id.empty()) {
    return Error(ErrorCode::kInvalidArgument, "session record: the id is empty");
  }
  if (!IsValidJson(record.todos_json)) {
    return Error(ErrorCode::kInvalidArgument,
                 "session " + Quote(record.id) + ": todos is not valid JSON");
  }
  if (!IsValidJson(record.extra_json)) {
    return Error(ErrorCode::kInvalidArgument,
                 "session " + Quote(record.id) + ": extra is not valid JSON");
  }
  return OkStatus();
}

// events is WITHOUT ROWID: one b-tree instead of table + primary-key index, so the append on the
// path of every streamed chunk writes fewer pages (about 15% less CPU per AppendEvent).
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE sessions (
  id TEXT PRIMARY KEY NOT NULL,
  parent_id TEXT REFERENCES sessions(id) ON DELETE CASCADE,
  title TEXT NOT NULL DEFAULT '',
  workspace TEXT NOT NULL DEFAULT '',
  mode TEXT NOT NULL DEFAULT '',
  profile TEXT NOT NULL DEFAULT '',
  model TEXT NOT NULL DEFAULT '',
  tool_protocol TEXT NOT NULL DEFAULT 'native' CHECK (tool_protocol IN ('native', 'xml')),
  status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'completed', 'cancelled', 'failed', 'waiting')),
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  tokens_in INTEGER NOT NULL DEFAULT 0,
  tokens_out INTEGER NOT NULL DEFAULT 0,
  cache_reads INTEGER NOT NULL DEFAULT 0,
  cache_writes INTEGER NOT NULL DEFAULT 0,
  cost_usd REAL NOT NULL DEFAULT 0,
  requests INTEGER NOT NULL DEFAULT 0,
  todos TEXT NOT NULL DEFAULT '[]',
  extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX sessions_by_updated ON sessions(updated_ms);
CREATE INDEX sessions_by_workspace ON sessions(workspace, updated_ms);
CREATE INDEX sessions_by_parent ON sessions(parent_id);
CREATE TABLE messages (
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL CHECK (seq > 0),
  time_ms INTEGER NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
  content TEXT NOT NULL,
  token_estimate INTEGER NOT NULL DEFAULT 0,
  is_summary INTEGER NOT NULL DEFAULT 0,
  is_truncation_marker INTEGER NOT NULL DEFAULT 0,
  condensed_by INTEGER NOT NULL DEFAULT 0,
  truncated_by INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (session_id, seq)
);
CREATE TABLE events (
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL CHECK (seq > 0),
  time_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  payload TEXT NOT NULL,
  PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
)sql";

// Version 2: how far each journal has been folded in, so that a journal folded partly before a
// crash is not folded twice.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE IF NOT EXISTS journal_progress (
  journal TEXT PRIMARY KEY,
  folded INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

// Version 3: a session's status may be 'stopped' (a limit ended its turn). SQLite cannot alter a
// CHECK constraint, and rebuilding the table would mean dropping the one its messages and events
// reference; a constraint that only widens, which every stored row already meets, may be edited
// in place (SQLite's documented procedure: writable_schema, then a new schema_version so that
// every connection reads the table's definition again).
Status WidenSessionStatuses(Connection& connection) {
  ASSIGN_OR_RETURN(int64_t cookie,
                   QueryInt(connection, "PRAGMA schema_version", "read the schema cookie"));
  RETURN_IF_ERROR(Execute(connection, "PRAGMA writable_schema = ON", "allow a schema edit"));
  Status edited = Execute(connection,
                          "UPDATE sqlite_master SET sql = replace(sql, '''failed'', ''waiting'')', "
                          "'''failed'', ''waiting'', ''stopped'')') "
                          "WHERE type = 'table' AND name = 'sessions' "
                          "AND instr(sql, '''stopped''') = 0",
                          "widen the session statuses");
  if (edited.ok()) {
    const std::string bump = "PRAGMA schema_version = " + std::to_string(cookie + 1);
    edited = Execute(connection, bump.c_str(), "set the schema cookie");
  }
  Status restored = Execute(connection, "PRAGMA writable_schema = OFF", "end the schema edit");
  return edited.ok() ? restored : edited;
}

// Brings the schema up to kSchemaVersion, in one transaction so that concurrent openers of a new
// file migrate it once.
Status Migrate(Connection& connection) {
  ASSIGN_OR_RETURN(int64_t version,
                   QueryInt(connection, "PRAGMA user_version", "read the schema version"));
  auto newer_error = [&](int64_t found) {
    return Error(ErrorCode::kInvalidArgument,
                 "session store " + Quote(connection.path) + " has schema version " +
                     std::to_string(found) + ", made by a newer lapce-ai (this one knows up to " +
                     std::to_string(kSchemaVersion) +
                     "); upgrade lapce-ai, or point it at another file");
  };
  if (version > kSchemaVersion) return newer_error(version);
  if (version == kSchemaVersion) return OkStatus();

  RETURN_IF_ERROR(Execute(connection, "BEGIN IMMEDIATE", "begin schema migration"));
  Status status = [&]() -> Status {
    ASSIGN_OR_RETURN(int64_t current,
                     QueryInt(connection, "PRAGMA user_version", "read the schema version"));
    if (current > kSchemaVersion) return newer_error(current);
    if (current < 1) {
      RETURN_IF_ERROR(ExecuteScript(connection, kSchemaV1, "create schema version 1"));
    }
    if (current < 2) {
      RETURN_IF_ERROR(ExecuteScript(connection, kSchemaV2, "create schema version 2"));
    }
    if (current < 3) RETURN_IF_ERROR(WidenSessionStatuses(connection));
    // Later versions: if (current < 4) { ALTER TABLE … } and so on, each step idempotent.
    RETURN_IF_ERROR(ExecuteScript(connection, "PRAGMA user_version = 3", "set schema version"));
    return Execute(connection, "COMMIT", "commit schema migration");
  }();
  if (!status.ok()) (void)Execute(connection, "ROLLBACK", "roll back schema migration");
  return status;
}

// Creates the missing directories of `directory` with mode 0700 (existing ones are left alone).
Status CreateDirectories(const std::string& directory) {
  if (directory.empty()) return OkStatus();
  struct stat info;
  if (::stat(directory.c_str(), &info) == 0) {
    if (!S_ISDIR(info.st_mode)) {
      return Error(ErrorCode::kInvalidArgument, "session store directory " + Quote(directory) +
                                                    " exists but is not a directory");
    }
    return OkStatus();
  }
  size_t slash = directory.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    RETURN_IF_ERROR(CreateDirectories(directory.substr(0, slash)));
  }
  if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoError("create session store directory " + Quote(directory), errno);
  }
  return OkStatus();
}

// Creates the file 0600 if it is missing; refuses an existing one others can read.
Status PrepareFile(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) == 0) {
    if (!S_ISREG(info.st_mode)) {
      return Error(ErrorCode::kInvalidArgument,
                   "session store " + Quote(path) + " is not a regular file; move it away");
    }
    if ((info.st_mode & 077) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(info.st_mode & 07777));
      return Error(ErrorCode::kPermissionDenied,
                   "session store " + Quote(path) + " is accessible by other users (mode " + mode +
                       "); it holds your code and conversations: run chmod 600 " + Quote(path));
    }
    return OkStatus();
  }
  if (errno != ENOENT) return ErrnoError("stat session store " + Quote(path), errno);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return PrepareFile(path);  // Another process created it meanwhile.
    return ErrnoError("create session store " + Quote(path), errno);
  }
  int rc = ::fchmod(fd, 0600);
  int saved_errno = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError("chmod 600 session store " + Quote(path), saved_errno);
  return OkStatus();
}

std::string_view GetEnv(const char* const* environment, std::string_view name) {
  for (const char* const* entry = environment; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    if (text.size() > name.size() && text.substr(0, name.size()) == name &&
        text[name.size()] == '=') {
      return text.substr(name.size() + 1);
    }
  }
  return {};
}

// Column list shared by every SELECT that builds a SessionRecord (ReadSession's order).
#define LAI_SESSION_COLUMNS                                                                    \
  "id, parent_id, title, workspace, mode, profile, model, tool_protocol, status, created_ms, " \
  "updated_ms, tokens_in, tokens_out, cache_reads, cache_writes, cost_usd, requests, todos, "  \
  "extra"

SessionRecord ReadSession(const Statement& row) {
  SessionRecord record;
  record.id = row.Text(0);
  record.parent_id = row.Text(1);
  record.title = row.Text(2);
  record.workspace = row.Text(3);
  record.mode = row.Text(4);
  record.profile = row.Text(5);
  record.model = row.Text(6);
  record.tool_protocol = row.Text(7) == "xml" ? ToolProtocol::kXml : ToolProtocol::kNative;
  record.status = ParseSessionStatus(row.Text(8)).value_or(SessionStatus::kActive);
  record.created_ms = row.Int(9);
  record.updated_ms = row.Int(10);
  record.totals.input_tokens = row.Int(11);
  record.totals.output_tokens = row.Int(12);
  record.totals.cache_read_tokens = row.Int(13);
  record.totals.cache_write_tokens = row.Int(14);
  record.totals.cost_usd = row.Double(15);
  record.totals.requests = row.Int(16);
  record.todos_json = row.Text(17);
  record.extra_json = row.Text(18);
  return record;
}

}  // namespace

void AddTotalsJson(const SessionTotals& totals, nlohmann::json& object) {
  object["tokens_in"] = totals.input_tokens;
  object["tokens_out"] = totals.output_tokens;
  object["cache_reads"] = totals.cache_read_tokens;
  object["cache_writes"] = totals.cache_write_tokens;
  object["cost_usd"] = totals.cost_usd;
  object["requests"] = totals.requests;
}

SessionTotals TotalsFromJson(const nlohmann::json& object) {
  SessionTotals totals;
  if (!object.is_object()) return totals;
  totals.input_tokens = object.value("tokens_in", int64_t{0});
  totals.output_tokens = object.value("tokens_out", int64_t{0});
  totals.cache_read_tokens = object.value("cache_reads", int64_t{0});
  totals.cache_write_tokens = object.value("cache_writes", int64_t{0});
  totals.cost_usd = object.value("cost_usd", 0.0);
  totals.requests = object.value("requests", int64_t{0});
  return totals;
}

namespace {

// A session row as the journal keeps it (JournalOp::kSession), and back.
std::string SessionRecordToJson(const SessionRecord& record) {
  nlohmann::json json = {{"id", record.id},
                         {"title", record.title},
                         {"workspace", record.workspace},
                         {"mode", record.mode},
                         {"profile", record.profile},
                         {"model", record.model},
                         {"tool_protocol", ToolProtocolName(record.tool_protocol)},
                         {"status", SessionStatusName(record.status)},
                         {"updated_ms", record.updated_ms},
                         {"todos", record.todos_json},
                         {"extra", record.extra_json}};
  AddTotalsJson(record.totals, json);
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);  // Never throws.
}

Result<SessionRecord> SessionRecordFromJson(std::string_view text) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("id")) {
    return Error(ErrorCode::kInvalidArgument, "a journaled session row is not valid");
  }
  SessionRecord record;
  record.id = json.value("id", "");
  record.title = json.value("title", "");
  record.workspace = json.value("workspace", "");
  record.mode = json.value("mode", "");
  record.profile = json.value("profile", "");
  record.model = json.value("model", "");
  record.tool_protocol =
      json.value("tool_protocol", "native") == "xml" ? ToolProtocol::kXml : ToolProtocol::kNative;
  record.status =
      ParseSessionStatus(json.value("status", "active")).value_or(SessionStatus::kActive);
  record.updated_ms = json.value("updated_ms", int64_t{0});
  record.totals = TotalsFromJson(json);
  record.todos_json = json.value("todos", "[]");
  record.extra_json = json.value("extra", "{}");
  return record;
}

// Reads every row of a SELECT of LAI_SESSION_COLUMNS.
Result<std::vector<SessionRecord>> ReadSessions(Connection& connection, Statement& statement,
                                                std::string_view what) {
  std::vector<SessionRecord> records;
  for (;;) {
    int rc = statement.Step();
    if (rc == SQLITE_DONE) return records;
    if (rc != SQLITE_ROW) return SqlError(connection, rc, what);
    records.push_back(ReadSession(statement));
  }
}

Result<bool> SessionExists(Connection& connection, std::string_view id) {
  ASSIGN_OR_RETURN(sqlite3_stmt * raw, Prepare(connection, "SELECT 1 FROM sessions WHERE id = ?1"));
  Statement statement(raw);
  statement.Bind(1, id);
  int rc = statement.Step();
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqlError(connection, rc, "look up session " + Quote(id));
}

Error SessionNotFound(std::string_view id) {
  return Error(ErrorCode::kNotFound, "session " + Quote(id) + " not found");
}

// The write operations, with the connection's mutex held.

Status CreateSessionLocked(Connection& connection, const SessionRecord& record) {
  RETURN_IF_ERROR(ValidateRecord(record));
  if (record.parent_id == record.id) {
    return Error(ErrorCode::kInvalidArgument,
                 "session " + Quote(record.id) + " cannot be its own parent");
  }
  ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                   Prepare(connection, "INSERT INTO sessions (" LAI_SESSION_COLUMNS
                                       ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                                       "?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"));
  Statement statement(raw);
  statement.Bind(1, record.id);
  statement.BindNullIfEmpty(2, record.parent_id);
  statement.Bind(3, record.title);
  statement.Bind(4, record.workspace);
  statement.Bind(5, record.mode);
  statement.Bind(6, record.profile);
  statement.Bind(7, record.model);
  statement.Bind(8, ToolProtocolName(record.tool_protocol));
  statement.Bind(9, SessionStatusName(record.status));
  statement.Bind(10, record.created_ms);
  statement.Bind(11, record.updated_ms);
  statement.Bind(12, record.totals.input_tokens);
  statement.Bind(13, record.totals.output_tokens);
  statement.Bind(14, record.totals.cache_read_tokens);
  statement.Bind(15, record.totals.cache_write_tokens);
  statement.Bind(16, record.totals.cost_usd);
  statement.Bind(17, record.totals.requests);
  statement.Bind(18, record.todos_json);
  statement.Bind(19, record.extra_json);
  int rc = statement.Step();
  if (rc == SQLITE_DONE) return OkStatus();
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return Error(ErrorCode::kInvalidArgument, "session " + Quote(record.id) + " already exists");
  }
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
    return Error(ErrorCode::kNotFound, "create session " + Quote(record.id) + ": parent session " +
                                           Quote(record.parent_id) + " not found");
  }
  return SqlError(connection, rc, "create session " + Quote(record.id));
}

Status UpdateSessionLocked(Connection& connection, const SessionRecord& record) {
  RETURN_IF_ERROR(ValidateRecord(record));
  ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                   Prepare(connection,
                           "UPDATE sessions SET title = ?2, workspace = ?3, mode = ?4, "
                           "profile = ?5, model = ?6, tool_protocol = ?7, status = ?8, "
                           "updated_ms = ?9, tokens_in = ?10, tokens_out = ?11, "
                           "cache_reads = ?12, cache_writes = ?13, cost_usd = ?14, "
                           "requests = ?15, todos = ?16, extra = ?17 WHERE id = ?1"));
  Statement statement(raw);
  statement.Bind(1, record.id);
  statement.Bind(2, record.title);
  statement.Bind(3, record.workspace);
  statement.Bind(4, record.mode);
  statement.Bind(5, record.profile);
  statement.Bind(6, record.model);
  statement.Bind(7, ToolProtocolName(record.tool_protocol));
  statement.Bind(8, SessionStatusName(record.status));
  statement.Bind(9, record.updated_ms);
  statement.Bind(10, record.totals.input_tokens);
  statement.Bind(11, record.totals.output_tokens);
  statement.Bind(12, record.totals.cache_read_tokens);
  statement.Bind(13, record.totals.cache_write_tokens);
  statement.Bind(14, record.totals.cost_usd);
  statement.Bind(15, record.totals.requests);
  statement.Bind(16, record.todos_json);
  statement.Bind(17, record.extra_json);
  int rc = statement.Step();
  if (rc != SQLITE_DONE) return SqlError(connection, rc, "update session " + Quote(record.id));
  if (sqlite3_changes(connection.db) == 0) return SessionNotFound(record.id);
  return OkStatus();
}

Status ValidateMessage(std::string_view session_id, const HistoryMessage& message) {
  if (message.seq <= 0) {
    return Error(ErrorCode::kInvalidArgument, "append message to session " + Quote(session_id) +
                                                  ": seq " + std::to_string(message.seq) +
                                                  " is not positive");
  }
  return OkStatus();
}

// A row of `messages` but its session and content.
struct MessageColumns {
  int64_t seq = 0;
  int64_t time_ms = 0;
  std::string role;  // "user" or "assistant".
  int64_t token_estimate = 0;
  bool is_summary = false;
  bool is_truncation_marker = false;
  int64_t condensed_by = 0;
  int64_t truncated_by = 0;
};

MessageColumns ColumnsOf(const HistoryMessage& message) {
  return {message.seq,
          message.time_ms,
          message.message.role == llm::Role::kUser ? "user" : "assistant",
          message.token_estimate,
          message.is_summary,
          message.is_truncation_marker,
          message.condensed_by,
          message.truncated_by};
}

// The columns as the journal keeps them (JournalOp::kMessage's kind).
std::string MessageColumnsJson(const HistoryMessage& message) {
  const MessageColumns columns = ColumnsOf(message);
  return nlohmann::json{{"seq", columns.seq},
                        {"role", columns.role},
                        {"token_estimate", columns.token_estimate},
                        {"is_summary", columns.is_summary},
                        {"is_truncation_marker", columns.is_truncation_marker},
                        {"condensed_by", columns.condensed_by},
                        {"truncated_by", columns.truncated_by}}
      .dump();
}

Status InsertMessageRow(Connection& connection, std::string_view session_id,
                        const MessageColumns& columns, std::string_view content) {
  ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                   Prepare(connection,
                           "INSERT INTO messages (session_id, seq, time_ms, role, content, "
                           "token_estimate, is_summary, is_truncation_marker, condensed_by, "
                           "truncated_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
  Statement statement(raw);
  statement.Bind(1, session_id);
  statement.Bind(2, columns.seq);
  statement.Bind(3, columns.time_ms);
  statement.Bind(4, std::string_view(columns.role));
  statement.Bind(5, content);
  statement.Bind(6, columns.token_estimate);
  statement.Bind(7, columns.is_summary);
  statement.Bind(8, columns.is_truncation_marker);
  statement.Bind(9, columns.condensed_by);
  statement.Bind(10, columns.truncated_by);
  int rc = statement.Step();
  if (rc == SQLITE_DONE) return OkStatus();
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return Error(ErrorCode::kInvalidArgument, "message seq " + std::to_string(columns.seq) +
                                                  " of session " + Quote(session_id) +
                                                  " is already stored");
  }
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return SessionNotFound(session_id);
  return SqlError(connection, rc, "append message to session " + Quote(session_id));
}

Status AppendMessageLocked(Connection& connection, std::string_view session_id,
                           const HistoryMessage& message) {
  RETURN_IF_ERROR(ValidateMessage(session_id, message));
  return InsertMessageRow(connection, session_id, ColumnsOf(message),
                          MessageToJson(message.message));
}

// A journaled message: its columns as MessageColumnsJson wrote them, and its content.
Status InsertMessageLocked(Connection& connection, std::string_view session_id,
                           std::string_view columns_json, std::string_view content,
                           int64_t time_ms) {
  nlohmann::json parsed = nlohmann::json::parse(columns_json, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) {
    return Error(ErrorCode::kInvalidArgument,
                 "journaled message of session " + Quote(session_id) + " has no columns");
  }
  MessageColumns columns;
  columns.seq = parsed.value("seq", int64_t{0});
  columns.time_ms = time_ms;
  columns.role = parsed.value("role", "user");
  columns.token_estimate = parsed.value("token_estimate", int64_t{0});
  columns.is_summary = parsed.value("is_summary", false);
  columns.is_truncation_marker = parsed.value("is_truncation_marker", false);
  columns.condensed_by = parsed.value("condensed_by", int64_t{0});
  columns.truncated_by = parsed.value("truncated_by", int64_t{0});
  return InsertMessageRow(connection, session_id, columns, content);
}

Status UpdateVisibilityLocked(Connection& connection, std::string_view session_id,
                              const MessageVisibility& change) {
  ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                   Prepare(connection,
                           "UPDATE messages SET condensed_by = ?3, truncated_by = ?4 "
                           "WHERE session_id = ?1 AND seq = ?2"));
  Statement statement(raw);
  statement.Bind(1, session_id);
  statement.Bind(2, change.seq);
  statement.Bind(3, change.condensed_by);
  statement.Bind(4, change.truncated_by);
  int rc = statement.Step();
  if (rc != SQLITE_DONE) {
    return SqlError(connection, rc, "update message visibility in session " + Quote(session_id));
  }
  if (sqlite3_changes(connection.db) == 0) {
    return Error(ErrorCode::kNotFound, "message seq " + std::to_string(change.seq) +
                                           " of session " + Quote(session_id) + " not found");
  }
  return OkStatus();
}

Status ValidateEvent(std::string_view session_id, std::string_view kind,
                     std::string_view payload_json) {
  if (kind.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "append event to session " + Quote(session_id) + ": the kind is empty");
  }
  if (!IsValidJson(payload_json)) {
    return Error(ErrorCode::kInvalidArgument, "append event " + Quote(kind) + " to session " +
                                                  Quote(session_id) +
                                                  ": the payload is not valid JSON");
  }
  return OkStatus();
}

// Inserts an event ValidateEvent accepted, with the session's next seq. (No RETURNING clause: it
// costs SQLite a temporary table per row, and the journal fold inserts a row per streamed chunk.)
Status InsertEventLocked(Connection& connection, std::string_view session_id, std::string_view kind,
                         std::string_view payload_json, int64_t time_ms) {
  ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                   Prepare(connection,
                           "INSERT INTO events (session_id, seq, time_ms, kind, payload) VALUES "
                           "(?1, (SELECT IFNULL(MAX(seq), 0) + 1 FROM events WHERE session_id = "
                           "?1), ?2, ?3, ?4)"));
  Statement statement(raw);
  statement.Bind(1, session_id);
  statement.Bind(2, time_ms);
  statement.Bind(3, kind);
  statement.Bind(4, payload_json);
  int rc = statement.Step();
  if (rc == SQLITE_DONE) return OkStatus();
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return SessionNotFound(session_id);
  return SqlError(connection, rc, "append event to session " + Quote(session_id));
}

// Validates and inserts an event; returns its seq. Runs inside a transaction, so the seq read
// back is the one just inserted.
Result<int64_t> AppendEventLocked(Connection& connection, std::string_view session_id,
                                  std::string_view kind, std::string_view payload_json,
                                  int64_t time_ms) {
  RETURN_IF_ERROR(ValidateEvent(session_id, kind, payload_json));
  RETURN_IF_ERROR(InsertEventLocked(connection, session_id, kind, payload_json, time_ms));
  ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                   Prepare(connection, "SELECT MAX(seq) FROM events WHERE session_id = ?1"));
  Statement statement(raw);
  statement.Bind(1, session_id);
  int rc = statement.Step();
  if (rc != SQLITE_ROW) return SqlError(connection, rc, "read the seq of a new event");
  return statement.Int(0);
}

// Applies journaled records (validated when they were journaled) inside the open transaction and
// notes how far `journal_name` (when not empty) is folded. A record the database refuses (its
// session is gone, a message seq is taken) is dropped and logged; records at or below a non-zero
// `done` were folded before (records written without a journal have no number: all apply).
// Returns the number of records applied.
Result<size_t> ApplyRecordsLocked(Connection& connection, const std::string& journal_name,
                                  const std::vector<JournalRecord>& records, uint64_t done) {
  size_t applied = 0;
  uint64_t last = done;
  for (const JournalRecord& record : records) {
    if (done != 0 && record.number <= done) continue;
    last = record.number;
    Status status;
    switch (record.op) {
      case JournalOp::kEvent:
        status = InsertEventLocked(connection, record.session_id, record.kind, record.payload_json,
                                   record.time_ms);
        break;
      case JournalOp::kMessage:
        status = InsertMessageLocked(connection, record.session_id, record.kind,
                                     record.payload_json, record.time_ms);
        break;
      case JournalOp::kSession: {
        Result<SessionRecord> row = SessionRecordFromJson(record.payload_json);
        status = row.ok() ? UpdateSessionLocked(connection, *row) : Status(row.error());
        break;
      }
    }
    if (status.ok()) {
      ++applied;
    } else if (status.code() == ErrorCode::kNotFound ||
               status.code() == ErrorCode::kInvalidArgument) {
      spdlog::warn("session store: dropped a journaled change: {}", status.error().message());
    } else {
      return status.error();
    }
  }
  if (journal_name.empty()) return applied;
  ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                   Prepare(connection,
                           "INSERT INTO journal_progress (journal, folded) VALUES (?1, ?2) "
                           "ON CONFLICT (journal) DO UPDATE SET folded = excluded.folded"));
  Statement statement(raw);
  statement.Bind(1, journal_name);
  statement.Bind(2, static_cast<int64_t>(last));
  int rc = statement.Step();
  if (rc != SQLITE_DONE) return SqlError(connection, rc, "note the journal's progress");
  return applied;
}

// Runs `body` inside BEGIN IMMEDIATE … COMMIT; rolls back when it fails.
template <typename Body>
auto InTransaction(Connection& connection, std::string_view what, Body body) -> decltype(body()) {
  RETURN_IF_ERROR(Execute(connection, "BEGIN IMMEDIATE", "begin " + std::string(what)));
  auto result = body();
  if (result.ok()) {
    Status committed = Execute(connection, "COMMIT", "commit " + std::string(what));
    if (committed.ok()) return result;
    result = committed.error();
  }
  // A failed statement may already have ended the transaction; ROLLBACK then fails harmlessly.
  if (!sqlite3_get_autocommit(connection.db)) {
    (void)Execute(connection, "ROLLBACK", "roll back " + std::string(what));
  }
  return result;
}

// This process's journaled events not yet in SQLite, taken out of `pending` to be folded by the
// caller (who holds connection.mutex), which hands them back with Folded().
struct PendingBatch {
  std::vector<JournalRecord> records;
  std::string journal_name;
};

PendingBatch TakePending(Connection& connection) {
  PendingBatch batch;
  if (!connection.has_pending.load(std::memory_order_acquire)) return batch;
  std::lock_guard lock(connection.journal_mutex);
  batch.records.swap(connection.pending);
  connection.has_pending.store(false, std::memory_order_relaxed);
  if (connection.journal) batch.journal_name = connection.journal->name();
  return batch;
}

// After the transaction that folded `batch`: on failure its records go back ahead of what arrived
// meanwhile (all of them are in the journal file too).
void Folded(Connection& connection, PendingBatch& batch, bool committed) {
  if (batch.records.empty()) return;
  std::lock_guard lock(connection.journal_mutex);
  if (!committed) {
    batch.records.insert(batch.records.end(), std::make_move_iterator(connection.pending.begin()),
                         std::make_move_iterator(connection.pending.end()));
    connection.pending.swap(batch.records);
    connection.has_pending.store(true, std::memory_order_release);
    return;
  }
  // Folded records stay in the file (the progress table says they are folded) until it grows
  // past kJournalBytes: truncating costs more than the fold on ext4.
  if (connection.pending.empty() && connection.journal &&
      connection.journal->size() > kJournalBytes) {
    Status truncated = connection.journal->Truncate();
    if (!truncated.ok()) spdlog::warn("session store: {}", truncated.error().message());
  }
}

// Moves this process's pending journaled events into SQLite. Caller holds connection.mutex.
Status FoldPendingLocked(Connection& connection) {
  PendingBatch batch = TakePending(connection);
  if (batch.records.empty()) return OkStatus();
  Result<size_t> folded = InTransaction(connection, "folding the event journal", [&] {
    return ApplyRecordsLocked(connection, batch.journal_name, batch.records, 0);
  });
  Folded(connection, batch, folded.ok());
  return folded.status();
}

// Folds the journals of processes that stopped without folding theirs (kill -9, a crash, power
// loss after the write reached the disk). A journal that cannot be folded now stays for the
// next Open.
void FoldOrphanJournals(Connection& connection, const std::string& directory) {
  Result<std::vector<EventJournal::Orphan>> orphans = EventJournal::FindOrphans(directory);
  if (!orphans.ok()) {
    spdlog::warn("session store: {}", orphans.error().message());
    return;
  }
  for (const EventJournal::Orphan& orphan : *orphans) {
    bool torn = false;
    Result<std::vector<JournalRecord>> records = EventJournal::Read(orphan.path, &torn);
    if (!records.ok()) {
      spdlog::warn("session store: {}", records.error().message());
      continue;
    }
    const std::string name = orphan.path.substr(orphan.path.rfind('/') + 1);
    uint64_t done = 0;
    {
      Result<sqlite3_stmt*> raw =
          Prepare(connection, "SELECT folded FROM journal_progress WHERE journal = ?1");
      if (!raw.ok()) continue;
      Statement statement(*raw);
      statement.Bind(1, name);
      if (statement.Step() == SQLITE_ROW) done = static_cast<uint64_t>(statement.Int(0));
    }
    Result<size_t> folded = InTransaction(connection, "folding an event journal", [&] {
      return ApplyRecordsLocked(connection, name, *records, done);
    });
    if (!folded.ok()) {
      spdlog::warn("session store: journal '{}' left for later: {}", orphan.path,
                   folded.error().message());
      continue;
    }
    if (torn) {
      spdlog::warn(
          "session store: journal '{}' ended in a partly written event (a crash while "
          "writing it); the events before it were kept",
          orphan.path);
    }
    if (*folded > 0) {
      // Debug only: it is the next command's stderr (a `run --json` line reader's) that says it.
      spdlog::debug("session store: recovered {} events from '{}', left by a process that stopped",
                    *folded, orphan.path);
    }
    ::unlink(orphan.path.c_str());
    if (Result<sqlite3_stmt*> raw =
            Prepare(connection, "DELETE FROM journal_progress WHERE journal = ?1");
        raw.ok()) {
      Statement statement(*raw);
      statement.Bind(1, name);
      (void)statement.Step();
    }
  }
}

}  // namespace

std::string_view SessionStatusName(SessionStatus status) {
  switch (status) {
    case SessionStatus::kActive:
      return "active";
    case SessionStatus::kCompleted:
      return "completed";
    case SessionStatus::kCancelled:
      return "cancelled";
    case SessionStatus::kFailed:
      return "failed";
    case SessionStatus::kWaiting:
      return "waiting";
    case SessionStatus::kStopped:
      return "stopped";
  }
  return "active";
}

std::optional<SessionStatus> ParseSessionStatus(std::string_view name) {
  for (SessionStatus status :
       {SessionStatus::kActive, SessionStatus::kCompleted, SessionStatus::kCancelled,
        SessionStatus::kFailed, SessionStatus::kWaiting, SessionStatus::kStopped}) {
    if (SessionStatusName(status) == name) return status;
  }
  return std::nullopt;
}

std::string_view ToolProtocolName(ToolProtocol protocol) {
  return protocol == ToolProtocol::kXml ? "xml" : "native";
}

// Writer: the connection's mutex is held by Transaction().

Status SessionStore::Writer::CreateSession(const SessionRecord& record) {
  return CreateSessionLocked(*store_.connection_, record);
}
Status SessionStore::Writer::UpdateSession(const SessionRecord& record) {
  return UpdateSessionLocked(*store_.connection_, record);
}
Status SessionStore::Writer::AppendMessage(std::string_view session_id,
                                           const HistoryMessage& message) {
  return AppendMessageLocked(*store_.connection_, session_id, message);
}
Status SessionStore::Writer::UpdateMessageVisibility(std::string_view session_id,
                                                     const MessageVisibility& change) {
  return UpdateVisibilityLocked(*store_.connection_, session_id, change);
}
Result<int64_t> SessionStore::Writer::AppendEvent(std::string_view session_id,
                                                  std::string_view kind,
                                                  std::string_view payload_json, int64_t time_ms) {
  return AppendEventLocked(*store_.connection_, session_id, kind, payload_json, time_ms);
}

SessionStore::SessionStore(std::string path, std::unique_ptr<Connection> connection)
    : path_(std::move(path)), connection_(std::move(connection)) {}

SessionStore::~SessionStore() {
  Connection& connection = *connection_;
  {
    std::lock_guard lock(connection.journal_mutex);
    connection.stopping = true;
  }
  connection.journal_wake.notify_all();
  if (connection.folder.joinable()) connection.folder.join();
  std::lock_guard lock(connection.mutex);
  Status folded = FoldPendingLocked(connection);
  if (!folded.ok()) {
    // The journal stays on disk; the next Open folds it.
    spdlog::warn("session store: events left in the journal: {}", folded.error().message());
    return;
  }
  if (connection.journal) {
    const std::string name = connection.journal->name();
    connection.journal->Remove();
    if (Result<sqlite3_stmt*> raw =
            Prepare(connection, "DELETE FROM journal_progress WHERE journal = ?1");
        raw.ok()) {
      Statement statement(*raw);
      statement.Bind(1, name);
      (void)statement.Step();
    }
  }
}

namespace {

// Where a store's event journals live: beside it, "<store>.events/".
std::string JournalDirectory(const std::string& store_path) { return store_path + ".events"; }

}  // namespace

Result<std::unique_ptr<SessionStore>> SessionStore::Open(const std::string& path) {
  if (path.empty()) {
    return Error(ErrorCode::kInvalidArgument, "session store path is empty");
  }
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    RETURN_IF_ERROR(CreateDirectories(path.substr(0, slash)));
  }
  RETURN_IF_ERROR(PrepareFile(path));

  auto connection = std::make_unique<Connection>();
  connection->path = path;
  int rc = sqlite3_open_v2(path.c_str(), &connection->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) return SqlError(connection->db, rc, path, "open");
  sqlite3_extended_result_codes(connection->db, 1);
  sqlite3_busy_timeout(connection->db, kBusyTimeoutMs);
  // The -wal and -shm files stay when the last connection closes (checkpointed, not deleted):
  // every lapce-ai process opens the store, and creating two files costs more than the rest of
  // opening it on a busy ext4. No journal_size_limit: truncating the WAL makes the next process's
  // first write sync the WAL header and the directory (5 ms here); the WAL restarts from its
  // beginning after each checkpoint, so it stays about the auto-checkpoint size (4 MiB).
  int persist_wal = 1;
  sqlite3_file_control(connection->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist_wal);
  // Nor does the last one to close checkpoint (two fsyncs, 2-5 ms at every exit): checkpoints
  // happen as the WAL grows, and the next process reads the WAL where it is.
  sqlite3_db_config(connection->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);

  // The first statement reads the file header: a file that is not a database fails here.
  {
    ASSIGN_OR_RETURN(sqlite3_stmt * raw, Prepare(*connection, "PRAGMA journal_mode = WAL"));
    Statement statement(raw);
    rc = statement.Step();
    if (rc != SQLITE_ROW) return SqlError(*connection, rc, "switch to WAL mode");
    std::string mode = statement.Text(0);
    if (mode != "wal") {
      return Error(ErrorCode::kIo, "session store " + Quote(path) +
                                       ": the file system does not support WAL mode (journal "
                                       "mode stayed '" +
                                       mode + "'); put the store on a local disk");
    }
  }
  RETURN_IF_ERROR(ExecuteScript(
      *connection,
      // secure_delete: a deleted session's text is overwritten, not left in free pages.
      "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON",
      "set pragmas"));
  RETURN_IF_ERROR(Migrate(*connection));
  FoldOrphanJournals(*connection, JournalDirectory(path));
  return std::unique_ptr<SessionStore>(new SessionStore(path, std::move(connection)));
}

Result<std::string> SessionStore::DefaultPath(const char* const* environment) {
  if (environment == nullptr) environment = ::environ;
  std::string_view data_home = GetEnv(environment, "XDG_DATA_HOME");
  if (!data_home.empty() && data_home.front() == '/') {
    return std::string(data_home) + "/lapce-ai/sessions.db";
  }
  std::string_view home = GetEnv(environment, "HOME");
  if (!home.empty() && home.front() == '/') {
    return std::string(home) + "/.local/share/lapce-ai/sessions.db";
  }
  return Error(ErrorCode::kInvalidArgument,
               "cannot place the session store: neither XDG_DATA_HOME nor HOME is set to an "
               "absolute path; set HOME (or XDG_DATA_HOME)");
}

Result<std::unique_ptr<SessionStore>> SessionStore::OpenDefault(const char* const* environment) {
  ASSIGN_OR_RETURN(std::string path, DefaultPath(environment));
  return Open(path);
}

namespace {

// Locks the connection and folds the journaled events first, so that every call sees them and
// events keep their order. Aborts when the calling thread is inside this store's Transaction().
std::unique_lock<std::mutex> Lock(Connection& connection, bool fold = true) {
  LAI_CHECK(connection.transaction_thread.load(std::memory_order_relaxed) !=
            std::this_thread::get_id())
      << "SessionStore method called inside its own Transaction(); use the Writer";
  std::unique_lock<std::mutex> lock(connection.mutex);
  if (!fold) return lock;
  Status folded = FoldPendingLocked(connection);
  if (!folded.ok()) spdlog::warn("session store: {}", folded.error().message());
  return lock;
}

// Folds the journal kFoldDelay after the first event of a burst, until the store closes. A fold
// that fails (a full disk) is tried again less and less often, up to every 5 s, and said once
// until one succeeds (it was said every 20 ms, flooding the terminal the user types in).
void FoldLoop(Connection& connection) {
  constexpr std::chrono::milliseconds kMaxRetryDelay{5000};
  std::chrono::milliseconds delay = kFoldDelay;
  bool has_told = false;
  std::unique_lock lock(connection.journal_mutex);
  while (!connection.stopping) {
    connection.journal_wake.wait(
        lock, [&] { return connection.stopping || !connection.pending.empty(); });
    connection.journal_wake.wait_for(lock, delay, [&] { return connection.stopping; });
    if (connection.stopping) break;
    lock.unlock();
    {
      std::lock_guard store_lock(connection.mutex);
      Status folded = FoldPendingLocked(connection);
      if (folded.ok()) {
        if (has_told) spdlog::info("session store: the event journal is folded again");
        delay = kFoldDelay;
        has_told = false;
      } else {
        if (!has_told) {
          spdlog::warn("session store: {} (trying again; the events are kept in the journal)",
                       folded.error().message());
        }
        has_told = true;
        delay = std::min(kMaxRetryDelay, delay * 2);
      }
    }
    lock.lock();
  }
}

}  // namespace

Status SessionStore::CreateSession(const SessionRecord& record) {
  auto lock = Lock(*connection_);
  return CreateSessionLocked(*connection_, record);
}

Status SessionStore::UpdateSession(const SessionRecord& record) {
  auto lock = Lock(*connection_);
  return UpdateSessionLocked(*connection_, record);
}

Status SessionStore::AppendMessage(std::string_view session_id, const HistoryMessage& message) {
  auto lock = Lock(*connection_);
  return AppendMessageLocked(*connection_, session_id, message);
}

Status SessionStore::UpdateMessageVisibility(std::string_view session_id, int64_t seq,
                                             int64_t condensed_by, int64_t truncated_by) {
  auto lock = Lock(*connection_);
  return UpdateVisibilityLocked(*connection_, session_id,
                                MessageVisibility{seq, condensed_by, truncated_by});
}

Status SessionStore::UpdateMessageVisibility(std::string_view session_id,
                                             const std::vector<MessageVisibility>& changes) {
  return Transaction([&](Writer& writer) -> Status {
    for (const MessageVisibility& change : changes) {
      RETURN_IF_ERROR(writer.UpdateMessageVisibility(session_id, change));
    }
    return OkStatus();
  });
}

Result<int64_t> SessionStore::AppendEvent(std::string_view session_id, std::string_view kind,
                                          std::string_view payload_json, int64_t time_ms) {
  auto lock = Lock(*connection_);
  return InTransaction(*connection_, "append an event", [&] {
    return AppendEventLocked(*connection_, session_id, kind, payload_json, time_ms);
  });
}

Status SessionStore::Changes::AppendMessage(std::string_view session_id,
                                            const HistoryMessage& message) {
  RETURN_IF_ERROR(ValidateMessage(session_id, message));
  JournalRecord record;
  record.op = JournalOp::kMessage;
  record.time_ms = message.time_ms;
  record.session_id = session_id;
  record.kind = MessageColumnsJson(message);
  record.payload_json = MessageToJson(message.message);
  records_.push_back(std::move(record));
  return OkStatus();
}

Status SessionStore::Changes::AppendEvent(std::string_view session_id, std::string_view kind,
                                          std::string_view payload_json, int64_t time_ms) {
  RETURN_IF_ERROR(ValidateEvent(session_id, kind, payload_json));
  records_.push_back({JournalOp::kEvent, 0, time_ms, std::string(session_id), std::string(kind),
                      std::string(payload_json)});
  return OkStatus();
}

Status SessionStore::Changes::UpdateSession(const SessionRecord& record) {
  RETURN_IF_ERROR(ValidateRecord(record));
  records_.push_back(
      {JournalOp::kSession, 0, record.updated_ms, record.id, "", SessionRecordToJson(record)});
  return OkStatus();
}

Status SessionStore::Flush() {
  auto lock = Lock(*connection_, /*fold=*/false);
  return FoldPendingLocked(*connection_);
}

Status SessionStore::JournalEvent(std::string_view session_id, std::string_view kind,
                                  std::string_view payload_json, int64_t time_ms) {
  Changes changes;
  RETURN_IF_ERROR(changes.AppendEvent(session_id, kind, payload_json, time_ms));
  return Journal(std::move(changes));
}

Status SessionStore::Journal(Changes changes) {
  if (changes.empty()) return OkStatus();
  Connection& connection = *connection_;
  {
    std::lock_guard lock(connection.journal_mutex);
    if (!connection.journal && !connection.journal_failed) {
      Result<EventJournal> journal = EventJournal::Create(JournalDirectory(path_));
      if (journal.ok()) {
        connection.journal.emplace(std::move(*journal));
        connection.folder = std::thread([&connection] {
          log::NameThisThread("lai-store-fold");
          FoldLoop(connection);
        });
      } else {
        connection.journal_failed = true;
        spdlog::warn("session store: no journal ({}); changes are written to SQLite directly",
                     journal.error().message());
      }
    }
    if (connection.journal) {
      RETURN_IF_ERROR(connection.journal->Append(changes.records_));
      const bool was_empty = connection.pending.empty();
      for (JournalRecord& record : changes.records_) {
        connection.pending.push_back(std::move(record));
      }
      connection.has_pending.store(true, std::memory_order_release);
      if (was_empty) connection.journal_wake.notify_one();
      return OkStatus();
    }
  }
  auto lock = Lock(connection);
  return InTransaction(connection, "write changes",
                       [&] { return ApplyRecordsLocked(connection, "", changes.records_, 0); })
      .status();
}

Status SessionStore::Transaction(const std::function<Status(Writer& writer)>& fn) {
  Connection& connection = *connection_;
  auto lock = Lock(connection, /*fold=*/false);
  // The journaled events go first, in the same transaction: one commit instead of two.
  PendingBatch batch = TakePending(connection);
  Status status = InTransaction(connection, "transaction", [&]() -> Status {
    if (!batch.records.empty()) {
      RETURN_IF_ERROR(
          ApplyRecordsLocked(connection, batch.journal_name, batch.records, 0).status());
    }
    connection.transaction_thread.store(std::this_thread::get_id(), std::memory_order_relaxed);
    Writer writer(*this);
    Status written = fn(writer);
    connection.transaction_thread.store(std::thread::id(), std::memory_order_relaxed);
    return written;
  });
  Folded(connection, batch, status.ok());
  return status;
}

Result<std::optional<SessionRecord>> SessionStore::FindSession(std::string_view id_or_prefix) {
  if (id_or_prefix.empty()) {
    return Error(ErrorCode::kInvalidArgument, "find session: the id is empty");
  }
  auto lock = Lock(*connection_);
  Connection& connection = *connection_;
  {
    ASSIGN_OR_RETURN(sqlite3_stmt * raw, Prepare(connection, "SELECT " LAI_SESSION_COLUMNS
                                                             " FROM sessions WHERE id = ?1"));
    Statement statement(raw);
    statement.Bind(1, id_or_prefix);
    ASSIGN_OR_RETURN(std::vector<SessionRecord> exact,
                     ReadSessions(connection, statement, "find session " + Quote(id_or_prefix)));
    if (!exact.empty()) return std::optional<SessionRecord>(std::move(exact.front()));
  }
  constexpr int kMaxCandidates = 10;
  ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                   Prepare(connection, "SELECT " LAI_SESSION_COLUMNS
                                       " FROM sessions WHERE substr(id, 1, length(?1)) = ?1 "
                                       "ORDER BY id LIMIT 11"));
  Statement statement(raw);
  statement.Bind(1, id_or_prefix);
  ASSIGN_OR_RETURN(std::vector<SessionRecord> matches,
                   ReadSessions(connection, statement, "find session " + Quote(id_or_prefix)));
  if (matches.empty()) return std::optional<SessionRecord>();
  if (matches.size() == 1) return std::optional<SessionRecord>(std::move(matches.front()));
  std::string candidates;
  for (size_t i = 0; i < matches.size() && i < kMaxCandidates; ++i) {
    candidates += (i == 0 ? "" : ", ") + matches[i].id;
  }
  if (matches.size() > kMaxCandidates) candidates += ", …";
  return Error(ErrorCode::kInvalidArgument, "session id prefix " + Quote(id_or_prefix) +
                                                " is ambiguous: it matches " + candidates +
                                                "; give more characters");
}

Result<std::vector<SessionRecord>> SessionStore::ListSessions(const ListOptions& options) {
  auto lock = Lock(*connection_);
  Connection& connection = *connection_;
  ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                   Prepare(connection, "SELECT " LAI_SESSION_COLUMNS
                                       " FROM sessions WHERE (?1 = '' OR workspace = ?1) AND "
                                       "(?2 OR parent_id IS NULL) ORDER BY updated_ms DESC, "
                                       "rowid DESC LIMIT ?3"));
  Statement statement(raw);
  // Sessions keep their workspace's canonical root: "ws/", "./ws" or a link to it name the same.
  std::string workspace = options.workspace;
  if (!workspace.empty()) {
    std::error_code ignored;
    std::filesystem::path canonical = std::filesystem::weakly_canonical(workspace, ignored);
    if (!ignored && !canonical.empty()) {
      workspace = canonical.string();
      while (workspace.size() > 1 && workspace.back() == '/') workspace.pop_back();
    }
  }
  statement.Bind(1, workspace);
  statement.Bind(2, options.include_children);
  statement.Bind(3, static_cast<int64_t>(options.limit > 0 ? options.limit : -1));
  return ReadSessions(connection, statement, "list sessions");
}

Result<std::vector<HistoryMessage>> SessionStore::LoadMessages(std::string_view session_id) {
  auto lock = Lock(*connection_);
  Connection& connection = *connection_;
  ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                   Prepare(connection,
                           "SELECT seq, time_ms, content, token_estimate, is_summary, "
                           "is_truncation_marker, condensed_by, truncated_by FROM messages "
                           "WHERE session_id = ?1 ORDER BY seq"));
  Statement statement(raw);
  statement.Bind(1, session_id);
  std::vector<HistoryMessage> messages;
  for (;;) {
    int rc = statement.Step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      return SqlError(connection, rc, "load messages of session " + Quote(session_id));
    }
    HistoryMessage message;
    message.seq = statement.Int(0);
    message.time_ms = statement.Int(1);
    Result<llm::Message> content = MessageFromJson(statement.Text(2));
    if (!content.ok()) {
      return std::move(content).error().WithContext("session store " + Quote(path_) + ": session " +
                                                    Quote(session_id) + " message seq " +
                                                    std::to_string(message.seq));
    }
    message.message = std::move(*content);
    message.token_estimate = statement.Int(3);
    message.is_summary = statement.Int(4) != 0;
    message.is_truncation_marker = statement.Int(5) != 0;
    message.condensed_by = statement.Int(6);
    message.truncated_by = statement.Int(7);
    messages.push_back(std::move(message));
  }
  if (messages.empty()) {
    ASSIGN_OR_RETURN(bool exists, SessionExists(connection, session_id));
    if (!exists) return SessionNotFound(session_id);
  }
  return messages;
}

Result<std::vector<StoredEvent>> SessionStore::LoadEvents(std::string_view session_id,
                                                          int64_t after_seq) {
  auto lock = Lock(*connection_);
  Connection& connection = *connection_;
  ASSIGN_OR_RETURN(sqlite3_stmt * raw, Prepare(connection,
                                               "SELECT seq, time_ms, kind, payload FROM events "
                                               "WHERE session_id = ?1 AND seq > ?2 ORDER BY seq"));
  Statement statement(raw);
  statement.Bind(1, session_id);
  statement.Bind(2, after_seq);
  std::vector<StoredEvent> events;
  for (;;) {
    int rc = statement.Step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      return SqlError(connection, rc, "load events of session " + Quote(session_id));
    }
    events.push_back(
        StoredEvent{statement.Int(0), statement.Int(1), statement.Text(2), statement.Text(3)});
  }
  if (events.empty()) {
    ASSIGN_OR_RETURN(bool exists, SessionExists(connection, session_id));
    if (!exists) return SessionNotFound(session_id);
  }
  return events;
}

namespace {

// Where a store's session locks live: beside it, "<store>.open/<id>.lock".
std::string SessionLockPath(const std::string& store_path, std::string_view session_id) {
  return store_path + ".open/" + std::string(session_id) + ".lock";
}

}  // namespace

Result<SessionLock> SessionStore::LockSession(std::string_view session_id) {
  if (session_id.empty() || session_id.find_first_of("/.") != std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument, "session id " + Quote(session_id) +
                                                  " cannot name a lock file");
  }
  RETURN_IF_ERROR(CreateDirectories(path_ + ".open"));
  std::string path = SessionLockPath(path_, session_id);
  Result<LockFile> lock = LockFile::Take(path);
  if (lock.ok() || lock.error().code() != ErrorCode::kUnavailable) return lock;
  std::string pid = LockFile::HolderOf(path);
  // An editor's agent keeps the sessions it opened until it exits (ACP cannot close one):
  // "let it finish" would wait forever.
  std::string command;
  if (!pid.empty()) {
    std::FILE* file = std::fopen(("/proc/" + pid + "/cmdline").c_str(), "rb");
    if (file != nullptr) {
      char buffer[256] = {};
      size_t n = std::fread(buffer, 1, sizeof(buffer) - 1, file);
      std::fclose(file);
      std::string_view args(buffer, n);
      size_t second = args.find('\0');
      std::string_view program = args.substr(0, second);
      if (second != std::string_view::npos &&
          program.substr(program.rfind('/') + 1) == "lapce-ai") {
        std::string_view verb = args.substr(second + 1);
        command = std::string(verb.substr(0, verb.find('\0')));
      }
    }
  }
  // `serve` gives a session up when the editor's channel that opened it closes; `acp` only when
  // it exits.
  std::string why = "; let that one finish or stop it, then try again";
  if (command == "acp") {
    why =
        "; an editor's agent keeps the sessions it opened until it exits: continue it in that "
        "editor, or close the editor's agent, then try again";
  } else if (command == "serve") {
    why =
        "; the editor connected to that server keeps it open until it disconnects: continue it "
        "in that editor, or close its agent connection, then try again";
  }
  return Error(
      ErrorCode::kUnavailable,
      "session " + Quote(session_id) + " is open in another lapce-ai process" +
          (pid.empty() ? std::string()
                       : " (pid " + pid + (command.empty() ? "" : ", lapce-ai " + command) + ")") +
          why);
}

bool SessionStore::IsSessionOpen(std::string_view session_id) {
  return LockFile::IsHeld(SessionLockPath(path_, session_id));
}

Status SessionStore::DeleteSession(std::string_view session_id) {
  // Held while deleting: a session open somewhere must not vanish under it, nor be loaded
  // half-deleted. The lock file goes with the lock.
  ASSIGN_OR_RETURN(SessionLock open_lock, LockSession(session_id));
  return DeleteSessionRows(session_id);
}

Status SessionStore::DeleteSession(std::string_view session_id, const SessionLock& held) {
  LAI_CHECK(held.is_held()) << "DeleteSession of " << session_id << " without its lock";
  return DeleteSessionRows(session_id);
}

Status SessionStore::DeleteSessionRows(std::string_view session_id) {
  auto lock = Lock(*connection_);
  Connection& connection = *connection_;
  ASSIGN_OR_RETURN(sqlite3_stmt * raw, Prepare(connection, "DELETE FROM sessions WHERE id = ?1"));
  Statement statement(raw);
  statement.Bind(1, session_id);
  int rc = statement.Step();
  if (rc != SQLITE_DONE) return SqlError(connection, rc, "delete session " + Quote(session_id));
  if (sqlite3_changes(connection.db) == 0) return SessionNotFound(session_id);
  // The write-ahead log still holds the deleted pages' old contents until a checkpoint: fold it
  // into the (overwritten) database and empty it. Readers elsewhere may hold part of it back.
  int rc_checkpoint = sqlite3_wal_checkpoint_v2(connection.db, nullptr, SQLITE_CHECKPOINT_TRUNCATE,
                                                nullptr, nullptr);
  if (rc_checkpoint != SQLITE_OK && rc_checkpoint != SQLITE_BUSY) {
    spdlog::warn("delete session {}: checkpoint: {}", session_id, sqlite3_errmsg(connection.db));
  }
  return OkStatus();
}

Result<bool> SessionStore::Compact() {
  auto lock = Lock(*connection_);
  Connection& connection = *connection_;
  ASSIGN_OR_RETURN(int64_t free_pages,
                   QueryInt(connection, "PRAGMA freelist_count", "count the free pages"));
  ASSIGN_OR_RETURN(int64_t pages, QueryInt(connection, "PRAGMA page_count", "count the pages"));
  // Worth rewriting the file for: a quarter of it, and at least 256 pages (1 MiB at 4 KiB).
  if (free_pages < 256 || free_pages * 4 < pages) return false;
  char* message = nullptr;
  int rc = sqlite3_exec(connection.db, "VACUUM", nullptr, nullptr, &message);
  sqlite3_free(message);
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) return false;  // In use elsewhere: next time.
  if (rc != SQLITE_OK) return SqlError(connection, rc, "compact the store (VACUUM)");
  // The rewritten pages are in the write-ahead log: the file shrinks when they are folded in.
  rc = sqlite3_wal_checkpoint_v2(connection.db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr,
                                 nullptr);
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
    return SqlError(connection, rc, "compact the store (checkpoint)");
  }
  return true;
}

Status SessionStore::Check() {
  auto lock = Lock(*connection_);
  Connection& connection = *connection_;
  {
    ASSIGN_OR_RETURN(sqlite3_stmt * raw, Prepare(connection, "PRAGMA quick_check"));
    Statement statement(raw);
    int rc;
    while ((rc = statement.Step()) == SQLITE_ROW) {
      if (statement.Text(0) != "ok") {
        std::string found = statement.Text(0).substr(0, 200);
        return SqlError(nullptr, SQLITE_CORRUPT, connection.path, "check found \"" + found + "\"");
      }
    }
    if (rc != SQLITE_DONE) return SqlError(connection, rc, "check the pages");
  }
  char* message = nullptr;
  int rc = sqlite3_exec(connection.db, "BEGIN IMMEDIATE", nullptr, nullptr, &message);
  sqlite3_free(message);
  if (rc != SQLITE_OK) return SqlError(connection, rc, "begin a write");
  sqlite3_exec(connection.db, "ROLLBACK", nullptr, nullptr, nullptr);
  return OkStatus();
}

std::string_view SessionStore::ShownStatus(const SessionRecord& record) {
  if (record.status == SessionStatus::kActive && !IsSessionOpen(record.id)) return "interrupted";
  return SessionStatusName(record.status);
}

}  // namespace lai::agent
