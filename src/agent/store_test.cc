// SessionStore against real SQLite files in a fresh temporary directory per test.
#include "agent/store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace lai::agent {
namespace {

using Kind = llm::ContentPart::Kind;

// Under /dev/shm when it exists: the tests check behaviour, and tmpfs keeps the fsyncs SQLite does
// on open, close and checkpoint from making them slow on a busy disk.
class TempDir {
 public:
  TempDir() {
    std::string pattern = std::string(::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") +
                          "/lai-store-test-XXXXXX";
    const char* made = ::mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = made != nullptr ? made : "/tmp";
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

unsigned Mode(const std::string& path) {
  struct stat info;
  EXPECT_EQ(::stat(path.c_str(), &info), 0) << path;
  return info.st_mode & 07777;
}

// Runs one SQL statement on a separate raw connection and returns the first column of the first
// row as text ("" when there is none).
std::string RawQuery(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK &&
      sqlite3_step(statement) == SQLITE_ROW && sqlite3_column_text(statement, 0) != nullptr) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
  }
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return out;
}

void WriteFile(const std::string& path, const std::string& contents, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, contents.data(), contents.size()), static_cast<ssize_t>(contents.size()));
  ::fchmod(fd, mode);
  ::close(fd);
}

SessionRecord FullRecord(const std::string& id) {
  SessionRecord record;
  record.id = id;
  record.title = "Fix the failing test | now";
  record.workspace = "/home/u/project";
  record.mode = "code";
  record.profile = "work";
  record.model = "claude-sonnet-4";
  record.tool_protocol = ToolProtocol::kXml;
  record.status = SessionStatus::kWaiting;
  record.created_ms = 1'764'000'000'123;
  record.updated_ms = 1'764'000'100'456;
  record.totals = SessionTotals{1200, 340, 56, 78, 0.0421, 3};
  record.todos_json = R"([{"content":"read","status":"completed"}])";
  record.extra_json = R"({"awaiting_child":"c1"})";
  return record;
}

void ExpectSameRecord(const SessionRecord& a, const SessionRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.parent_id, b.parent_id);
  EXPECT_EQ(a.title, b.title);
  EXPECT_EQ(a.workspace, b.workspace);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.profile, b.profile);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.tool_protocol, b.tool_protocol);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.created_ms, b.created_ms);
  EXPECT_EQ(a.updated_ms, b.updated_ms);
  EXPECT_EQ(a.totals.input_tokens, b.totals.input_tokens);
  EXPECT_EQ(a.totals.output_tokens, b.totals.output_tokens);
  EXPECT_EQ(a.totals.cache_read_tokens, b.totals.cache_read_tokens);
  EXPECT_EQ(a.totals.cache_write_tokens, b.totals.cache_write_tokens);
  EXPECT_DOUBLE_EQ(a.totals.cost_usd, b.totals.cost_usd);
  EXPECT_EQ(a.totals.requests, b.totals.requests);
  EXPECT_EQ(a.todos_json, b.todos_json);
  EXPECT_EQ(a.extra_json, b.extra_json);
}

HistoryMessage TextMessage(int64_t seq, llm::Role role, const std::string& text) {
  HistoryMessage message;
  message.seq = seq;
  message.time_ms = 1'764'000'000'000 + seq;
  message.message.role = role;
  llm::ContentPart part;
  part.text = text;
  message.message.parts.push_back(part);
  message.token_estimate = static_cast<int64_t>(text.size() / 4);
  return message;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path() + "/data/lapce-ai/sessions.db";
    Result<std::unique_ptr<SessionStore>> store = SessionStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.error().ToString();
    store_ = std::move(*store);
  }

  SessionRecord Create(const std::string& id, int64_t updated_ms = 1,
                       const std::string& parent = "", const std::string& workspace = "/w") {
    SessionRecord record;
    record.id = id;
    record.parent_id = parent;
    record.workspace = workspace;
    record.created_ms = updated_ms;
    record.updated_ms = updated_ms;
    Status status = store_->CreateSession(record);
    EXPECT_TRUE(status.ok()) << status.ToString();
    return record;
  }

  std::vector<std::string> Ids(const ListOptions& options) {
    Result<std::vector<SessionRecord>> list = store_->ListSessions(options);
    EXPECT_TRUE(list.ok()) << list.error().ToString();
    std::vector<std::string> ids;
    if (list.ok()) {
      for (const SessionRecord& record : *list) ids.push_back(record.id);
    }
    return ids;
  }

  TempDir dir_;
  std::string path_;
  std::unique_ptr<SessionStore> store_;
};

// A workspace filter names the directory however it is written: with a trailing '/', through
// "..", or through a link to it (sessions keep the canonical root).
TEST_F(StoreTest, AWorkspaceFilterIsMadeCanonical) {
  std::string root = dir_.path() + "/ws";
  std::filesystem::create_directories(root + "/sub");
  std::filesystem::create_directory_symlink(root, dir_.path() + "/link");
  std::string canonical = std::filesystem::canonical(root).string();
  Create("a", 1, "", canonical);
  Create("b", 2, "", "/elsewhere");
  for (const std::string& spelling :
       {canonical, root + "/", root + "/sub/..", dir_.path() + "/link"}) {
    ListOptions options;
    options.workspace = spelling;
    EXPECT_EQ(Ids(options), std::vector<std::string>{"a"}) << spelling;
  }
}

TEST_F(StoreTest, CreatesPrivateDirectoriesAndFileInWalMode) {
  EXPECT_EQ(Mode(dir_.path() + "/data"), 0700u);
  EXPECT_EQ(Mode(dir_.path() + "/data/lapce-ai"), 0700u);
  EXPECT_EQ(Mode(path_), 0600u);
  Create("s1");
  EXPECT_EQ(Mode(path_ + "-wal"), 0600u);
  EXPECT_EQ(RawQuery(path_, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), "3");
}

TEST_F(StoreTest, ReopenKeepsDataAndSchema) {
  Create("s1");
  store_.reset();
  // The -wal and -shm files stay (private) for the next process, so it need not create them.
  EXPECT_EQ(Mode(path_ + "-wal"), 0600u);
  EXPECT_EQ(Mode(path_ + "-shm"), 0600u);
  Result<std::unique_ptr<SessionStore>> again = SessionStore::Open(path_);
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  Result<std::optional<SessionRecord>> found = (*again)->FindSession("s1");
  ASSERT_TRUE(found.ok());
  EXPECT_TRUE(found->has_value());
}

TEST(StoreOpenTest, RefusesAFileOtherUsersCanRead) {
  TempDir dir;
  std::string path = dir.path() + "/sessions.db";
  WriteFile(path, "", 0644);
  Result<std::unique_ptr<SessionStore>> store = SessionStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(store.error().message().find("mode 0644"), std::string::npos);
  EXPECT_NE(store.error().message().find("chmod 600"), std::string::npos);
}

TEST(StoreOpenTest, CorruptFileIsAnErrorNamingThePathAndTheRemedy) {
  TempDir dir;
  std::string path = dir.path() + "/sessions.db";
  WriteFile(path, std::string(8192, 'x'), 0600);
  Result<std::unique_ptr<SessionStore>> store = SessionStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kIo);  // Not the command line's fault.
  EXPECT_NE(store.error().message().find(path), std::string::npos) << store.error().message();
  EXPECT_NE(store.error().message().find("move it away"), std::string::npos);
  // With its log and index, which would be read with a new store beside them.
  EXPECT_NE(store.error().message().find("-wal and -shm"), std::string::npos);
}

TEST(StoreOpenTest, FileFromANewerLapceAiIsRefused) {
  TempDir dir;
  std::string path = dir.path() + "/sessions.db";
  WriteFile(path, "", 0600);
  RawQuery(path, "PRAGMA user_version = 7");
  Result<std::unique_ptr<SessionStore>> store = SessionStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(store.error().message().find("schema version 7, made by a newer lapce-ai"),
            std::string::npos)
      << store.error().message();
}

TEST(StoreOpenTest, EmptyPathAndDirectoryInTheWay) {
  Result<std::unique_ptr<SessionStore>> store = SessionStore::Open("");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kInvalidArgument);

  TempDir dir;
  WriteFile(dir.path() + "/file", "", 0600);
  store = SessionStore::Open(dir.path() + "/file/sessions.db");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message().find("not a directory"), std::string::npos);
}

TEST(StoreOpenTest, DefaultPathFollowsXdg) {
  const char* xdg[] = {"HOME=/home/u", "XDG_DATA_HOME=/data", nullptr};
  EXPECT_EQ(*SessionStore::DefaultPath(xdg), "/data/lapce-ai/sessions.db");
  const char* relative_xdg[] = {"XDG_DATA_HOME=rel", "HOME=/home/u", nullptr};
  EXPECT_EQ(*SessionStore::DefaultPath(relative_xdg), "/home/u/.local/share/lapce-ai/sessions.db");
  const char* none[] = {"PATH=/bin", nullptr};
  Result<std::string> path = SessionStore::DefaultPath(none);
  ASSERT_FALSE(path.ok());
  EXPECT_NE(path.error().message().find("HOME"), std::string::npos);

  TempDir dir;
  std::string home = "HOME=" + dir.path();
  const char* env[] = {home.c_str(), nullptr};
  Result<std::unique_ptr<SessionStore>> store = SessionStore::OpenDefault(env);
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  EXPECT_EQ((*store)->path(), dir.path() + "/.local/share/lapce-ai/sessions.db");
  EXPECT_EQ(Mode(dir.path() + "/.local"), 0700u);
}

// `doctor`'s check reads every page: a store that opens and lists but has a damaged page (which
// a run then trips over) fails it, with the remedy.
TEST_F(StoreTest, CheckFindsADamagedPageThatListingMisses) {
  for (int i = 0; i < 50; ++i) {
    SessionRecord record = Create("s" + std::to_string(i), i);
    for (int seq = 1; seq <= 4; ++seq) {
      ASSERT_TRUE(store_
                      ->AppendMessage(record.id, TextMessage(seq, llm::Role::kUser,
                                                             std::string(2000, 'a' + seq)))
                      .ok());
    }
  }
  EXPECT_TRUE(store_->Check().ok()) << store_->Check().ToString();
  store_.reset();
  RawQuery(path_, "PRAGMA wal_checkpoint(TRUNCATE)");
  ASSERT_GT(std::filesystem::file_size(path_), 40u * 4096);
  {
    std::fstream file(path_, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(30 * 4096 + 100);
    std::string garbage(2000, '\x5a');
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  Result<std::unique_ptr<SessionStore>> reopened = SessionStore::Open(path_);
  ASSERT_TRUE(reopened.ok()) << reopened.error().ToString();
  Status checked = (*reopened)->Check();
  ASSERT_FALSE(checked.ok());
  EXPECT_NE(checked.error().message().find("part of the store is damaged"), std::string::npos)
      << checked.error().message();
}

TEST_F(StoreTest, SessionRoundTripsEveryField) {
  Create("parent");
  SessionRecord record = FullRecord("child-1");
  record.parent_id = "parent";
  ASSERT_TRUE(store_->CreateSession(record).ok());
  Result<std::optional<SessionRecord>> found = store_->FindSession("child-1");
  ASSERT_TRUE(found.ok() && found->has_value());
  ExpectSameRecord(record, **found);

  SessionRecord changed = record;
  changed.title = "t2";
  changed.workspace = "/w2";
  changed.mode = "architect";
  changed.profile = "p2";
  changed.model = "m2";
  changed.tool_protocol = ToolProtocol::kNative;
  changed.status = SessionStatus::kCompleted;
  changed.updated_ms = record.updated_ms + 5;
  changed.totals = SessionTotals{1, 2, 3, 4, 5.5, 6};
  changed.todos_json = "[]";
  changed.extra_json = R"({"k":[1]})";
  ASSERT_TRUE(store_->UpdateSession(changed).ok());
  found = store_->FindSession("child-1");
  ASSERT_TRUE(found.ok() && found->has_value());
  ExpectSameRecord(changed, **found);

  for (SessionStatus status :
       {SessionStatus::kActive, SessionStatus::kCancelled, SessionStatus::kFailed,
        SessionStatus::kWaiting, SessionStatus::kStopped}) {
    changed.status = status;
    ASSERT_TRUE(store_->UpdateSession(changed).ok());
    EXPECT_EQ((*store_->FindSession("child-1"))->status, status);
  }
}

// A file from the version before 'stopped' existed (schema 2, whose CHECK refused it) is
// migrated when opened: its sessions are kept and may then be stopped.
TEST_F(StoreTest, SchemaTwoFileIsMigratedAndKeepsItsSessions) {
  Create("old", 5);
  store_.reset();
  // Turn the file back into what schema 2 made: the status CHECK without 'stopped'.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  const char* downgrade =
      "PRAGMA writable_schema = ON;"
      "UPDATE sqlite_master SET sql = replace(sql, ', ''stopped''', '') WHERE name = 'sessions';"
      "PRAGMA writable_schema = OFF;"
      "PRAGMA user_version = 2;";
  ASSERT_EQ(sqlite3_exec(db, downgrade, nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  ASSERT_EQ(RawQuery(path_,
                     "SELECT instr(sql, 'stopped') FROM sqlite_master "
                     "WHERE name = 'sessions'"),
            "0");

  Result<std::unique_ptr<SessionStore>> store = SessionStore::Open(path_);
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  store_ = std::move(*store);
  EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), "3");
  Result<std::optional<SessionRecord>> found = store_->FindSession("old");
  ASSERT_TRUE(found.ok() && found->has_value());
  SessionRecord record = **found;
  record.status = SessionStatus::kStopped;
  Status updated = store_->UpdateSession(record);
  ASSERT_TRUE(updated.ok()) << updated.ToString();
  EXPECT_EQ((*store_->FindSession("old"))->status, SessionStatus::kStopped);
  EXPECT_EQ(RawQuery(path_, "PRAGMA integrity_check"), "ok");
  // Any other status is still refused.
  EXPECT_EQ(RawQuery(path_, "UPDATE sessions SET status = 'bogus' RETURNING id"), "");
  EXPECT_EQ(RawQuery(path_, "SELECT status FROM sessions WHERE id = 'old'"), "stopped");
}

TEST_F(StoreTest, InvalidSessionWritesAreRejected) {
  SessionRecord record = FullRecord("");
  EXPECT_EQ(store_->CreateSession(record).code(), ErrorCode::kInvalidArgument);
  record.id = "s";
  record.todos_json = "[unclosed";
  Status status = store_->CreateSession(record);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.ToString().find("todos is not valid JSON"), std::string::npos);
  record.todos_json = "[]";
  record.extra_json = "";
  EXPECT_EQ(store_->CreateSession(record).code(), ErrorCode::kInvalidArgument);
  record.extra_json = "{}";
  record.parent_id = "missing";
  status = store_->CreateSession(record);
  EXPECT_EQ(status.code(), ErrorCode::kNotFound);
  EXPECT_NE(status.ToString().find("parent session 'missing' not found"), std::string::npos);
  record.parent_id = "s";
  EXPECT_EQ(store_->CreateSession(record).code(), ErrorCode::kInvalidArgument);
  record.parent_id = "";
  ASSERT_TRUE(store_->CreateSession(record).ok());
  status = store_->CreateSession(record);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.ToString().find("already exists"), std::string::npos);
  record.id = "other";
  EXPECT_EQ(store_->UpdateSession(record).code(), ErrorCode::kNotFound);
}

TEST_F(StoreTest, MessagesRoundTripEveryField) {
  Create("s");
  HistoryMessage first = TextMessage(1, llm::Role::kUser, "<task>fix it</task>");
  HistoryMessage second;
  second.seq = 2;
  second.time_ms = 99;
  second.message.role = llm::Role::kAssistant;
  llm::ContentPart reasoning;
  reasoning.kind = Kind::kReasoning;
  reasoning.text = "hmm";
  reasoning.signature = "sig";
  llm::ContentPart call;
  call.kind = Kind::kToolCall;
  call.tool_call_id = "t1";
  call.tool_name = "read_file";
  call.arguments_json = R"({"path":"a"})";
  second.message.parts = {reasoning, call};
  second.token_estimate = 42;
  second.is_summary = true;
  second.condensed_by = 7;
  second.truncated_by = 8;
  HistoryMessage marker = TextMessage(3, llm::Role::kUser, "[Sliding window truncation]");
  marker.is_truncation_marker = true;
  for (const HistoryMessage& message : {first, second, marker}) {
    Status status = store_->AppendMessage("s", message);
    ASSERT_TRUE(status.ok()) << status.ToString();
  }
  Result<std::vector<HistoryMessage>> loaded = store_->LoadMessages("s");
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  ASSERT_EQ(loaded->size(), 3u);
  const HistoryMessage& got = (*loaded)[1];
  EXPECT_EQ(got.seq, 2);
  EXPECT_EQ(got.time_ms, 99);
  EXPECT_EQ(got.token_estimate, 42);
  EXPECT_TRUE(got.is_summary);
  EXPECT_FALSE(got.is_truncation_marker);
  EXPECT_EQ(got.condensed_by, 7);
  EXPECT_EQ(got.truncated_by, 8);
  EXPECT_EQ(got.message.role, llm::Role::kAssistant);
  ASSERT_EQ(got.message.parts.size(), 2u);
  EXPECT_EQ(got.message.parts[0].signature, "sig");
  EXPECT_EQ(got.message.parts[1].arguments_json, R"({"path":"a"})");
  EXPECT_EQ((*loaded)[0].message.parts[0].text, "<task>fix it</task>");
  EXPECT_TRUE((*loaded)[2].is_truncation_marker);
  EXPECT_EQ((*loaded)[2].time_ms, marker.time_ms);
}

TEST_F(StoreTest, MessageErrors) {
  Create("s");
  ASSERT_TRUE(store_->AppendMessage("s", TextMessage(1, llm::Role::kUser, "a")).ok());
  Status status = store_->AppendMessage("s", TextMessage(1, llm::Role::kUser, "b"));
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.ToString().find("already stored"), std::string::npos);
  EXPECT_EQ(store_->AppendMessage("s", TextMessage(0, llm::Role::kUser, "c")).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->AppendMessage("nope", TextMessage(1, llm::Role::kUser, "c")).code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(store_->LoadMessages("nope").error().code(), ErrorCode::kNotFound);
  Create("empty");
  Result<std::vector<HistoryMessage>> none = store_->LoadMessages("empty");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(StoreTest, VisibilityUpdatesSingleAndBatchAtomically) {
  Create("s");
  for (int64_t seq = 1; seq <= 4; ++seq) {
    ASSERT_TRUE(store_->AppendMessage("s", TextMessage(seq, llm::Role::kUser, "m")).ok());
  }
  ASSERT_TRUE(store_->UpdateMessageVisibility("s", 2, 4, 0).ok());
  EXPECT_EQ(store_->UpdateMessageVisibility("s", 9, 4, 0).code(), ErrorCode::kNotFound);
  // The batch fails on seq 9, so seq 3's change is rolled back too.
  Status status = store_->UpdateMessageVisibility("s", {{3, 0, 4}, {9, 0, 4}});
  EXPECT_EQ(status.code(), ErrorCode::kNotFound);
  ASSERT_TRUE(store_->UpdateMessageVisibility("s", {{1, 0, 4}, {2, 0, 0}}).ok());
  Result<std::vector<HistoryMessage>> loaded = store_->LoadMessages("s");
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ((*loaded)[0].truncated_by, 4);
  EXPECT_TRUE((*loaded)[1].is_visible());
  EXPECT_TRUE((*loaded)[2].is_visible());
}

TEST_F(StoreTest, EventsGetConsecutiveSeqsPerSession) {
  Create("a");
  Create("b");
  EXPECT_EQ(*store_->AppendEvent("a", "text", R"({"text":"he"})", 10), 1);
  EXPECT_EQ(*store_->AppendEvent("a", "text", R"({"text":"llo"})", 11), 2);
  EXPECT_EQ(*store_->AppendEvent("b", "usage", "{}", 12), 1);
  EXPECT_EQ(*store_->AppendEvent("a", "done", "null", 13), 3);
  Result<std::vector<StoredEvent>> events = store_->LoadEvents("a");
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[1].seq, 2);
  EXPECT_EQ((*events)[1].time_ms, 11);
  EXPECT_EQ((*events)[1].kind, "text");
  EXPECT_EQ((*events)[1].payload_json, R"({"text":"llo"})");
  events = store_->LoadEvents("a", 2);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].kind, "done");
  events = store_->LoadEvents("a", 3);
  ASSERT_TRUE(events.ok());
  EXPECT_TRUE(events->empty());
}

TEST_F(StoreTest, EventErrors) {
  Create("a");
  Result<int64_t> seq = store_->AppendEvent("a", "text", "{not json", 1);
  ASSERT_FALSE(seq.ok());
  EXPECT_EQ(seq.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(seq.error().message().find("payload is not valid JSON"), std::string::npos);
  EXPECT_EQ(store_->AppendEvent("a", "", "{}", 1).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->AppendEvent("zz", "text", "{}", 1).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->LoadEvents("zz").error().code(), ErrorCode::kNotFound);
}

TEST_F(StoreTest, FindsByUniquePrefixAndListsAmbiguousCandidates) {
  Create("abc123");
  Create("abd456");
  Create("abc");
  Create("xyz");
  EXPECT_EQ((*store_->FindSession("abd"))->id, "abd456");
  EXPECT_EQ((*store_->FindSession("abc"))->id, "abc");  // Exact match wins over a prefix.
  EXPECT_EQ((*store_->FindSession("abc1"))->id, "abc123");
  EXPECT_FALSE(store_->FindSession("q")->has_value());
  Result<std::optional<SessionRecord>> ambiguous = store_->FindSession("ab");
  ASSERT_FALSE(ambiguous.ok());
  EXPECT_EQ(ambiguous.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(ambiguous.error().message().find("abc, abc123, abd456"), std::string::npos)
      << ambiguous.error().message();
  EXPECT_EQ(store_->FindSession("").error().code(), ErrorCode::kInvalidArgument);
  // A prefix is matched literally: no LIKE/GLOB wildcards.
  EXPECT_FALSE(store_->FindSession("a%")->has_value());
}

TEST_F(StoreTest, ListsNewestFirstWithFilters) {
  Create("old", 100, "", "/w1");
  Create("new", 300, "", "/w2");
  Create("mid", 200, "", "/w1");
  Create("child", 400, "mid", "/w1");
  EXPECT_EQ(Ids({}), (std::vector<std::string>{"new", "mid", "old"}));
  EXPECT_EQ(Ids({.include_children = true}),
            (std::vector<std::string>{"child", "new", "mid", "old"}));
  EXPECT_EQ(Ids({.workspace = "/w1"}), (std::vector<std::string>{"mid", "old"}));
  EXPECT_EQ(Ids({.limit = 1, .workspace = "/w1", .include_children = true}),
            (std::vector<std::string>{"child"}));
  EXPECT_EQ(Ids({.limit = 0}).size(), 3u);
  // An update moves a session to the front.
  SessionRecord old = *store_->FindSession("old").value();
  old.updated_ms = 500;
  ASSERT_TRUE(store_->UpdateSession(old).ok());
  EXPECT_EQ(Ids({}).front(), "old");
}

TEST_F(StoreTest, DeleteCascadesToChildrenMessagesAndEvents) {
  Create("root");
  Create("child", 2, "root");
  Create("grandchild", 3, "child");
  Create("other");
  for (const char* id : {"root", "child", "grandchild", "other"}) {
    ASSERT_TRUE(store_->AppendMessage(id, TextMessage(1, llm::Role::kUser, "m")).ok());
    ASSERT_TRUE(store_->AppendEvent(id, "text", "{}", 1).ok());
  }
  ASSERT_TRUE(store_->DeleteSession("root").ok());
  EXPECT_EQ(Ids({.include_children = true}), (std::vector<std::string>{"other"}));
  EXPECT_EQ(RawQuery(path_, "SELECT COUNT(*) FROM messages"), "1");
  EXPECT_EQ(RawQuery(path_, "SELECT COUNT(*) FROM events"), "1");
  EXPECT_EQ(store_->DeleteSession("root").code(), ErrorCode::kNotFound);
}

// A deleted session's words are gone from the files, the write-ahead log included (a secret the
// user pasted stayed readable in free pages and in the -wal file).
TEST_F(StoreTest, DeletedTextLeavesNoTraceInTheFiles) {
  Create("secret");
  Create("kept");
  ASSERT_TRUE(
      store_->AppendMessage("secret", TextMessage(1, llm::Role::kUser, "PASTED-SECRET-77")).ok());
  ASSERT_TRUE(store_->AppendMessage("kept", TextMessage(1, llm::Role::kUser, "ordinary")).ok());
  ASSERT_TRUE(store_->DeleteSession("secret").ok());
  for (const std::string& file : {path_, path_ + "-wal"}) {
    std::ifstream in(file, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find("PASTED-SECRET-77"), std::string::npos) << file;
  }
  EXPECT_EQ(Ids({}), std::vector<std::string>{"kept"});
}

// The file shrinks once much of it is deleted sessions (free pages were kept for ever), and not
// for a little.
TEST_F(StoreTest, CompactGivesBackTheSpaceOfDeletedSessions) {
  Create("big");
  Create("kept");
  for (int i = 1; i <= 40; ++i) {
    ASSERT_TRUE(store_
                    ->AppendMessage(
                        "big", TextMessage(i, llm::Role::kUser, std::string(100'000, 'a' + i % 26)))
                    .ok());
  }
  ASSERT_TRUE(store_->AppendMessage("kept", TextMessage(1, llm::Role::kUser, "small")).ok());
  Result<bool> early = store_->Compact();
  ASSERT_TRUE(early.ok()) << early.error().ToString();
  EXPECT_FALSE(*early) << "nothing is free yet";
  ASSERT_TRUE(store_->DeleteSession("big").ok());
  const auto before = std::filesystem::file_size(path_);
  Result<bool> compacted = store_->Compact();
  ASSERT_TRUE(compacted.ok()) << compacted.error().ToString();
  EXPECT_TRUE(*compacted);
  const auto after = std::filesystem::file_size(path_);
  EXPECT_LT(after * 10, before) << before << " -> " << after;
  EXPECT_EQ(Ids({}), std::vector<std::string>{"kept"});
}

// A session is open in one place at a time: a second lock (another process, or a second Session
// here) is refused naming the holder, and an open session cannot be deleted.
TEST_F(StoreTest, ASessionIsOpenInOnePlaceAtATime) {
  Create("s1");
  EXPECT_FALSE(store_->IsSessionOpen("s1"));
  {
    Result<SessionLock> held = store_->LockSession("s1");
    ASSERT_TRUE(held.ok()) << held.error().ToString();
    EXPECT_TRUE(store_->IsSessionOpen("s1"));
    Result<SessionLock> second = store_->LockSession("s1");
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.error().code(), ErrorCode::kUnavailable);
    EXPECT_NE(second.error().message().find("is open in another lapce-ai process (pid " +
                                            std::to_string(::getpid()) + ")"),
              std::string::npos)
        << second.error().message();
    EXPECT_EQ(store_->DeleteSession("s1").code(), ErrorCode::kUnavailable);
    EXPECT_EQ(Ids({}), (std::vector<std::string>{"s1"}));
    struct stat info {};
    ASSERT_EQ(::stat((path_ + ".open/s1.lock").c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);
  }
  EXPECT_FALSE(store_->IsSessionOpen("s1"));  // Released with the lock.
  EXPECT_NE(::access((path_ + ".open/s1.lock").c_str(), F_OK), 0) << "and its file removed";
  ASSERT_TRUE(store_->LockSession("s1").ok());
  ASSERT_TRUE(store_->DeleteSession("s1").ok());
  EXPECT_NE(::access((path_ + ".open/s1.lock").c_str(), F_OK), 0) << "the lock file goes too";
  EXPECT_EQ(store_->LockSession("../x").status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(StoreTest, TransactionCommitsTogetherOrNotAtAll) {
  Create("s");
  Status status = store_->Transaction([](SessionStore::Writer& writer) -> Status {
    RETURN_IF_ERROR(writer.AppendMessage("s", TextMessage(1, llm::Role::kAssistant, "done")));
    RETURN_IF_ERROR(writer.AppendEvent("s", "message", "{}", 5).status());
    SessionRecord record;
    record.id = "s";
    record.updated_ms = 5;
    record.totals.requests = 1;
    return writer.UpdateSession(record);
  });
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ((*store_->FindSession("s"))->totals.requests, 1);

  status = store_->Transaction([](SessionStore::Writer& writer) -> Status {
    RETURN_IF_ERROR(writer.AppendMessage("s", TextMessage(2, llm::Role::kUser, "lost")));
    RETURN_IF_ERROR(writer.AppendEvent("s", "message", "{}", 6).status());
    return Error(ErrorCode::kCancelled, "changed my mind");
  });
  EXPECT_EQ(status.code(), ErrorCode::kCancelled);
  EXPECT_EQ(store_->LoadMessages("s")->size(), 1u);
  EXPECT_EQ(store_->LoadEvents("s")->size(), 1u);
  // The store is usable after a rollback.
  EXPECT_EQ(*store_->AppendEvent("s", "message", "{}", 7), 2);
}

TEST_F(StoreTest, CallingTheStoreInsideItsTransactionAborts) {
  Create("s");
  // The default ("fast") style forks here, so the child shares this test's directory.
  EXPECT_DEATH((void)store_->Transaction([this](SessionStore::Writer&) -> Status {
    return store_->AppendEvent("s", "x", "{}", 1).status();
  }),
               "inside its own Transaction");
}

TEST_F(StoreTest, TwoConnectionsOnOneFileSeeEachOthersCommits) {
  Result<std::unique_ptr<SessionStore>> other_or = SessionStore::Open(path_);
  ASSERT_TRUE(other_or.ok()) << other_or.error().ToString();
  SessionStore& other = **other_or;
  Create("s");
  ASSERT_TRUE(other.FindSession("s")->has_value());
  ASSERT_TRUE(other.AppendEvent("s", "text", "{}", 1).ok());
  EXPECT_EQ(*store_->AppendEvent("s", "text", "{}", 2), 2);
  EXPECT_EQ(other.LoadEvents("s")->size(), 2u);

  // Concurrent writers on both connections: every seq once, none lost.
  constexpr int kPerThread = 50;
  std::vector<int64_t> seqs_a;
  std::vector<int64_t> seqs_b;
  auto writer = [](SessionStore& store, std::vector<int64_t>& seqs) {
    for (int i = 0; i < kPerThread; ++i) {
      Result<int64_t> seq = store.AppendEvent("s", "text", "{}", i);
      ASSERT_TRUE(seq.ok()) << seq.error().ToString();
      seqs.push_back(*seq);
    }
  };
  std::thread a(writer, std::ref(*store_), std::ref(seqs_a));
  std::thread b(writer, std::ref(other), std::ref(seqs_b));
  a.join();
  b.join();
  std::set<int64_t> all(seqs_a.begin(), seqs_a.end());
  all.insert(seqs_b.begin(), seqs_b.end());
  EXPECT_EQ(all.size(), 2u * kPerThread);
  EXPECT_EQ(*all.begin(), 3);
  EXPECT_EQ(*all.rbegin(), 2 + 2 * kPerThread);
  EXPECT_EQ(store_->LoadEvents("s")->size(), 2u + 2 * kPerThread);
}

TEST_F(StoreTest, OneStoreIsSafeAcrossThreads) {
  Create("s");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this] {
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_TRUE(store_->AppendEvent("s", "text", "{}", i).ok());
        ASSERT_TRUE(store_->LoadEvents("s", 0).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  Result<std::vector<StoredEvent>> events = store_->LoadEvents("s");
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(events->back().seq, kThreads * kPerThread);
}

}  // namespace
}  // namespace lai::agent
