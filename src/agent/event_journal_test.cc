// EventJournal on disk, and the session store folding journaled events: in order, once, after a
// crash, and never for a live process's journal.
#include "agent/event_journal.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "agent/message_json.h"
#include "agent/store.h"

namespace lai::agent {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = "/tmp/lai-journal-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::vector<std::string> Files(const std::string& directory) {
    std::vector<std::string> names;
    if (!std::filesystem::exists(directory)) return names;
    for (const auto& entry : std::filesystem::directory_iterator(directory)) {
      names.push_back(entry.path().filename().string());
    }
    return names;
  }

  std::string root_;
};

JournalRecord Record(std::string session, std::string kind, std::string payload, int64_t time) {
  return JournalRecord{JournalOp::kEvent, 0, time, std::move(session), std::move(kind),
                       std::move(payload)};
}

// Appends one record and gives back its number.
Status AppendOne(EventJournal& journal, JournalRecord& record) {
  std::vector<JournalRecord> records{record};
  Status status = journal.Append(records);
  record = records[0];
  return status;
}

TEST_F(JournalTest, RecordsComeBackInOrderWithTheirNumbers) {
  Result<EventJournal> journal = EventJournal::Create(root_ + "/events");
  ASSERT_TRUE(journal.ok()) << journal.error().ToString();
  struct stat info;
  ASSERT_EQ(::stat((root_ + "/events").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(journal->path().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);

  JournalRecord a = Record("s1", "agent_message_chunk", R"({"text":"héllo\n"})", 5);
  JournalRecord b = Record("s2", "plan", "[]", 6);
  ASSERT_TRUE(AppendOne(*journal, a).ok());
  ASSERT_TRUE(AppendOne(*journal, b).ok());
  EXPECT_EQ(a.number, 1u);
  EXPECT_EQ(b.number, 2u);
  bool torn = true;
  Result<std::vector<JournalRecord>> read = EventJournal::Read(journal->path(), &torn);
  ASSERT_TRUE(read.ok());
  EXPECT_FALSE(torn);
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ((*read)[0].session_id, "s1");
  EXPECT_EQ((*read)[0].kind, "agent_message_chunk");
  EXPECT_EQ((*read)[0].payload_json, R"({"text":"héllo\n"})");
  EXPECT_EQ((*read)[0].time_ms, 5);
  EXPECT_EQ((*read)[1].number, 2u);

  // Numbering continues after a truncation.
  ASSERT_TRUE(journal->Truncate().ok());
  JournalRecord c = Record("s1", "plan", "{}", 7);
  ASSERT_TRUE(AppendOne(*journal, c).ok());
  read = EventJournal::Read(journal->path());
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->size(), 1u);
  EXPECT_EQ((*read)[0].number, 3u);

  journal->Remove();
  EXPECT_TRUE(Files(root_ + "/events").empty());
}

TEST_F(JournalTest, ATornOrDamagedTailEndsTheRecords) {
  Result<EventJournal> journal = EventJournal::Create(root_ + "/events");
  ASSERT_TRUE(journal.ok());
  JournalRecord a = Record("s", "k", R"({"a":1})", 1);
  JournalRecord b = Record("s", "k", R"({"b":2})", 2);
  ASSERT_TRUE(AppendOne(*journal, a).ok());
  const uintmax_t first_size = std::filesystem::file_size(journal->path());
  ASSERT_TRUE(AppendOne(*journal, b).ok());
  const uintmax_t full_size = std::filesystem::file_size(journal->path());
  std::string bytes(full_size, '\0');
  {
    int fd = ::open(journal->path().c_str(), O_RDONLY);
    ASSERT_EQ(::read(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  }
  const std::string copy = root_ + "/copy.log";
  auto write_copy = [&](const std::string& contents) {
    int fd = ::open(copy.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_EQ(::write(fd, contents.data(), contents.size()), static_cast<ssize_t>(contents.size()));
    ::close(fd);
  };
  // Cut anywhere inside the second record: the first survives, the cut is reported.
  for (uintmax_t cut = first_size + 1; cut < full_size; ++cut) {
    write_copy(bytes.substr(0, cut));
    bool torn = false;
    Result<std::vector<JournalRecord>> read = EventJournal::Read(copy, &torn);
    ASSERT_TRUE(read.ok());
    EXPECT_TRUE(torn) << "cut at " << cut;
    ASSERT_EQ(read->size(), 1u) << "cut at " << cut;
    EXPECT_EQ((*read)[0].payload_json, R"({"a":1})");
  }
  // Any flipped byte of the second record is caught by its checksum or its framing.
  for (uintmax_t at = first_size; at < full_size; ++at) {
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x40);
    write_copy(damaged);
    bool torn = false;
    Result<std::vector<JournalRecord>> read = EventJournal::Read(copy, &torn);
    ASSERT_TRUE(read.ok());
    EXPECT_TRUE(torn) << "flipped byte " << at;
    EXPECT_EQ(read->size(), 1u) << "flipped byte " << at;
  }
}

TEST_F(JournalTest, OnlyJournalsWithoutALiveOwnerAreOrphans) {
  const std::string directory = root_ + "/events";
  Result<EventJournal> live = EventJournal::Create(directory);
  ASSERT_TRUE(live.ok());
  std::string dead_path;
  {
    Result<EventJournal> dead = EventJournal::Create(directory);
    ASSERT_TRUE(dead.ok());
    dead_path = dead->path();
    JournalRecord record = Record("s", "k", "{}", 1);
    ASSERT_TRUE(AppendOne(*dead, record).ok());
  }  // Closed without Remove(): what a killed process leaves.
  // A leftover of a process that died while creating its journal; one a live process is
  // creating now (not locked yet: between its open and its flock); and a file that is not ours.
  pid_t gone = ::fork();
  ASSERT_GE(gone, 0);
  if (gone == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(gone, nullptr, 0), gone);
  const std::string leftover = directory + "/" + std::to_string(gone) + "-00.tmp";
  const std::string creating = directory + "/" + std::to_string(::getpid()) + "-01.tmp";
  for (const std::string& path : {leftover, creating, directory + "/notes.txt"}) {
    ::close(::open(path.c_str(), O_WRONLY | O_CREAT, 0600));
  }
  Result<std::vector<EventJournal::Orphan>> orphans = EventJournal::FindOrphans(directory);
  ASSERT_TRUE(orphans.ok());
  ASSERT_EQ(orphans->size(), 1u);
  EXPECT_EQ((*orphans)[0].path, dead_path);
  EXPECT_FALSE(std::filesystem::exists(leftover));
  EXPECT_TRUE(std::filesystem::exists(creating)) << "a journal being created was taken";
  EXPECT_TRUE(std::filesystem::exists(directory + "/notes.txt"));
  // Whoever holds an orphan holds its lock: a second scan does not hand it out again.
  Result<std::vector<EventJournal::Orphan>> again = EventJournal::FindOrphans(directory);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());

  Result<std::vector<EventJournal::Orphan>> missing =
      EventJournal::FindOrphans(root_ + "/no-such-directory");
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->empty());
}

// --- The store's side ---------------------------------------------------------------------------

// A store at `path` holding one session, "s".
Result<std::unique_ptr<SessionStore>> OpenWithSession(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<SessionStore> store, SessionStore::Open(path));
  SessionRecord record;
  record.id = "s";
  RETURN_IF_ERROR(store->CreateSession(record));
  return store;
}

std::vector<std::string> Payloads(SessionStore& store, const std::string& session) {
  Result<std::vector<StoredEvent>> events = store.LoadEvents(session);
  EXPECT_TRUE(events.ok());
  std::vector<std::string> out;
  if (!events.ok()) return out;
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].seq, static_cast<int64_t>(i + 1));
    out.push_back((*events)[i].payload_json);
  }
  return out;
}

TEST_F(JournalTest, JournaledEventsAreReadInOrderWithDirectOnes) {
  const std::string path = root_ + "/sessions.db";
  {
    Result<std::unique_ptr<SessionStore>> store = OpenWithSession(path);
    ASSERT_TRUE(store.ok()) << store.error().ToString();
    ASSERT_TRUE((*store)->JournalEvent("s", "text", "1", 1).ok());
    ASSERT_TRUE((*store)->JournalEvent("s", "text", "2", 2).ok());
    Result<int64_t> seq = (*store)->AppendEvent("s", "text", "3", 3);
    ASSERT_TRUE(seq.ok());
    EXPECT_EQ(*seq, 3);  // The journaled ones were folded first.
    ASSERT_TRUE((*store)->JournalEvent("s", "text", "4", 4).ok());
    EXPECT_EQ(Payloads(**store, "s"), (std::vector<std::string>{"1", "2", "3", "4"}));

    // Bad input is refused at once; nothing already journaled is affected.
    Status bad = (*store)->JournalEvent("s", "text", "{not json", 5);
    EXPECT_EQ(bad.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ((*store)->JournalEvent("s", "", "{}", 5).code(), ErrorCode::kInvalidArgument);
    // An event of an unknown session is dropped when folded; the others stay.
    ASSERT_TRUE((*store)->JournalEvent("nobody", "text", "5", 5).ok());
    ASSERT_TRUE((*store)->JournalEvent("s", "text", "6", 6).ok());
    EXPECT_EQ(Payloads(**store, "s"), (std::vector<std::string>{"1", "2", "3", "4", "6"}));

    // The background fold gets there without any other call.
    ASSERT_TRUE((*store)->JournalEvent("s", "text", "7", 7).ok());
    std::string count;
    for (int i = 0; i < 200 && count != "6"; ++i) {
      usleep(10'000);
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
      sqlite3_stmt* statement = nullptr;
      ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &statement, nullptr),
                SQLITE_OK);
      ASSERT_EQ(sqlite3_step(statement), SQLITE_ROW);
      count = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
      sqlite3_finalize(statement);
      sqlite3_close(db);
    }
    EXPECT_EQ(count, "6") << "the journal was not folded within 2 s";
  }
  // A clean close folds everything and leaves no journal behind.
  EXPECT_TRUE(Files(path + ".events").empty());
  Result<std::unique_ptr<SessionStore>> store = SessionStore::Open(path);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(Payloads(**store, "s"), (std::vector<std::string>{"1", "2", "3", "4", "6", "7"}));
}

TEST_F(JournalTest, FlushMakesJournaledChangesVisibleToOtherConnectionsAtOnce) {
  const std::string path = root_ + "/sessions.db";
  Result<std::unique_ptr<SessionStore>> store = OpenWithSession(path);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->JournalEvent("s", "text", "1", 1).ok());
  ASSERT_TRUE((*store)->Flush().ok());
  Result<std::unique_ptr<SessionStore>> other = SessionStore::Open(path);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(Payloads(**other, "s"), (std::vector<std::string>{"1"}));
  EXPECT_TRUE((*store)->Flush().ok());  // Nothing pending: nothing to do.
}

TEST_F(JournalTest, ATransactionThatFailsKeepsTheEventsItWouldHaveFolded) {
  Result<std::unique_ptr<SessionStore>> store = OpenWithSession(root_ + "/sessions.db");
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->JournalEvent("s", "text", "1", 1).ok());
  Status failed = (*store)->Transaction([](SessionStore::Writer& writer) -> Status {
    RETURN_IF_ERROR(writer.AppendEvent("s", "text", "2", 2).status());
    return Error(ErrorCode::kInternal, "changed my mind");
  });
  EXPECT_EQ(failed.code(), ErrorCode::kInternal);
  ASSERT_TRUE((*store)->JournalEvent("s", "text", "3", 3).ok());
  Status ok = (*store)->Transaction([](SessionStore::Writer& writer) -> Status {
    return writer.AppendEvent("s", "text", "4", 4).status();
  });
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(Payloads(**store, "s"), (std::vector<std::string>{"1", "3", "4"}));
}

HistoryMessage Message(int64_t seq, std::string text) {
  HistoryMessage message;
  message.seq = seq;
  message.time_ms = 100 + seq;
  message.message.role = seq % 2 == 1 ? llm::Role::kUser : llm::Role::kAssistant;
  message.message.parts.push_back(llm::ContentPart{});
  message.message.parts.back().text = std::move(text);
  message.token_estimate = 7;
  message.condensed_by = seq == 1 ? 9 : 0;
  return message;
}

// Without a journal (its directory cannot be made), changes go to SQLite directly, every one of
// them: a session's messages, events and row (all were dropped, and the run said nothing).
TEST_F(JournalTest, WithoutAJournalEveryChangeGoesToSqlite) {
  const std::string path = root_ + "/sessions.db";
  {
    std::ofstream in_the_way(path + ".events");  // A file where the journal directory goes.
  }
  Result<std::unique_ptr<SessionStore>> store = OpenWithSession(path);
  ASSERT_TRUE(store.ok()) << store.error().message();
  SessionStore::Changes changes;
  ASSERT_TRUE(changes.AppendEvent("s", "text", "\"hello\"", 1).ok());
  ASSERT_TRUE(changes.AppendMessage("s", Message(1, "first")).ok());
  SessionRecord record;
  record.id = "s";
  record.title = "Renamed";
  ASSERT_TRUE(changes.UpdateSession(record).ok());
  ASSERT_TRUE((*store)->Journal(std::move(changes)).ok());
  store->reset();

  Result<std::unique_ptr<SessionStore>> reopened = SessionStore::Open(path);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(Payloads(**reopened, "s"), std::vector<std::string>{"\"hello\""});
  Result<std::vector<HistoryMessage>> messages = (*reopened)->LoadMessages("s");
  ASSERT_TRUE(messages.ok());
  EXPECT_EQ(messages->size(), 1u);
  Result<std::optional<SessionRecord>> row = (*reopened)->FindSession("s");
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->title, "Renamed");
}

TEST_F(JournalTest, MessagesAndSessionRowsGoThroughTheJournalInOrder) {
  const std::string path = root_ + "/sessions.db";
  {
    Result<std::unique_ptr<SessionStore>> store = SessionStore::Open(path);
    ASSERT_TRUE(store.ok());
    SessionRecord record;
    record.id = "s";
    ASSERT_TRUE((*store)->CreateSession(record).ok());

    SessionStore::Changes changes;
    ASSERT_TRUE(changes.AppendEvent("s", "text", "\"hello\"", 1).ok());
    ASSERT_TRUE(changes.AppendMessage("s", Message(1, "first")).ok());
    ASSERT_TRUE(changes.AppendEvent("s", "message", R"({"seq":1})", 2).ok());
    record.title = "Renamed";
    record.status = SessionStatus::kWaiting;
    record.totals.requests = 3;
    record.totals.cost_usd = 0.25;
    record.todos_json = R"([{"content":"x","status":"pending"}])";
    ASSERT_TRUE(changes.UpdateSession(record).ok());
    // Bad changes are refused when added, and leave the others alone.
    EXPECT_EQ(changes.AppendMessage("s", Message(0, "no seq")).code(), ErrorCode::kInvalidArgument);
    SessionRecord bad = record;
    bad.todos_json = "{oops";
    EXPECT_EQ(changes.UpdateSession(bad).code(), ErrorCode::kInvalidArgument);
    ASSERT_TRUE((*store)->Journal(std::move(changes)).ok());

    // A message whose seq is taken is dropped when folded; the rest of its batch is kept.
    SessionStore::Changes clash;
    ASSERT_TRUE(clash.AppendMessage("s", Message(1, "again")).ok());
    ASSERT_TRUE(clash.AppendMessage("s", Message(2, "second")).ok());
    ASSERT_TRUE((*store)->Journal(std::move(clash)).ok());

    Result<std::vector<HistoryMessage>> messages = (*store)->LoadMessages("s");
    ASSERT_TRUE(messages.ok());
    ASSERT_EQ(messages->size(), 2u);
    EXPECT_EQ((*messages)[0].message.parts[0].text, "first");
    EXPECT_EQ((*messages)[0].condensed_by, 9);
    EXPECT_EQ((*messages)[0].token_estimate, 7);
    EXPECT_EQ((*messages)[0].time_ms, 101);
    EXPECT_EQ((*messages)[1].message.role, llm::Role::kAssistant);
    EXPECT_EQ((*messages)[1].message.parts[0].text, "second");
    Result<std::optional<SessionRecord>> row = (*store)->FindSession("s");
    ASSERT_TRUE(row.ok() && row->has_value());
    EXPECT_EQ((*row)->title, "Renamed");
    EXPECT_EQ((*row)->status, SessionStatus::kWaiting);
    EXPECT_EQ((*row)->totals.requests, 3);
    EXPECT_DOUBLE_EQ((*row)->totals.cost_usd, 0.25);
    EXPECT_EQ((*row)->todos_json, record.todos_json);
    EXPECT_EQ(Payloads(**store, "s"), (std::vector<std::string>{"\"hello\"", R"({"seq":1})"}));
  }
  // The same changes from a journal a dead process left.
  const std::string other = root_ + "/other.db";
  {
    Result<std::unique_ptr<SessionStore>> store = OpenWithSession(other);
    ASSERT_TRUE(store.ok());
  }
  {
    Result<EventJournal> journal = EventJournal::Create(other + ".events");
    ASSERT_TRUE(journal.ok());
    std::vector<JournalRecord> records(1);
    records[0].op = JournalOp::kMessage;
    records[0].time_ms = 5;
    records[0].session_id = "s";
    records[0].kind = R"({"seq":1,"role":"assistant","token_estimate":3})";
    records[0].payload_json = MessageToJson(Message(2, "recovered").message);
    ASSERT_TRUE(journal->Append(records).ok());
  }
  Result<std::unique_ptr<SessionStore>> store = SessionStore::Open(other);
  ASSERT_TRUE(store.ok());
  Result<std::vector<HistoryMessage>> messages = (*store)->LoadMessages("s");
  ASSERT_TRUE(messages.ok()) << messages.error().ToString();
  ASSERT_EQ(messages->size(), 1u);
  EXPECT_EQ((*messages)[0].message.parts[0].text, "recovered");
  EXPECT_EQ((*messages)[0].message.role, llm::Role::kAssistant);
  EXPECT_EQ((*messages)[0].time_ms, 5);
}

TEST_F(JournalTest, AJournalLeftByADeadProcessIsFoldedOnceByTheNextOpen) {
  const std::string path = root_ + "/sessions.db";
  {
    Result<std::unique_ptr<SessionStore>> store = OpenWithSession(path);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->AppendEvent("s", "text", "\"before\"", 1).ok());
  }
  // What a killed process leaves: records 1-3 in its journal, of which 1-2 were folded already
  // (their progress noted) before it died.
  std::string name;
  {
    Result<EventJournal> journal = EventJournal::Create(path + ".events");
    ASSERT_TRUE(journal.ok());
    name = journal->name();
    for (const char* payload : {"\"a\"", "\"b\"", "\"c\""}) {
      JournalRecord record = Record("s", "text", payload, 2);
      ASSERT_TRUE(AppendOne(*journal, record).ok());
    }
  }
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    const std::string sql =
        "INSERT INTO events VALUES ('s', 2, 2, 'text', '\"a\"'), ('s', 3, 2, 'text', '\"b\"');"
        "INSERT INTO journal_progress VALUES ('" +
        name + "', 2);";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  Result<std::unique_ptr<SessionStore>> store = SessionStore::Open(path);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(Payloads(**store, "s"),
            (std::vector<std::string>{"\"before\"", "\"a\"", "\"b\"", "\"c\""}));
  EXPECT_TRUE(Files(path + ".events").empty());
  store->reset();
  // Opening again changes nothing.
  store = SessionStore::Open(path);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(Payloads(**store, "s").size(), 4u);
}

TEST_F(JournalTest, ALiveProcesssJournalIsLeftAlone) {
  const std::string path = root_ + "/sessions.db";
  Result<std::unique_ptr<SessionStore>> first = OpenWithSession(path);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE((*first)->JournalEvent("s", "text", "1", 1).ok());
  // A second store (another process, as far as the journal's lock can tell) must not fold the
  // first one's journal, which is still being written.
  Result<std::unique_ptr<SessionStore>> second = SessionStore::Open(path);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(Files(path + ".events").size(), 1u);
  ASSERT_TRUE((*first)->JournalEvent("s", "text", "2", 2).ok());
  EXPECT_EQ(Payloads(**first, "s"), (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(Payloads(**second, "s"), (std::vector<std::string>{"1", "2"}));
}

}  // namespace
}  // namespace lai::agent
