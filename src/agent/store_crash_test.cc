// kill -9 durability: a child process appends to the store (single events, journaled events, and
// message + event + totals, as a transaction or journaled together) and reports each append through
// a pipe after the call returned; it is SIGKILLed at a random moment. Everything it reported must
// be in the store after reopening, once and in order, and every transaction must be whole.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "agent/store.h"

namespace lai::agent {
namespace {

struct Report {
  int64_t event_seq = 0;
  int64_t message_seq = 0;  // 0: a plain event.
  int64_t round = 0;
  int64_t iteration = 0;
};

std::string Payload(int64_t round, int64_t iteration) {
  return "{\"round\":" + std::to_string(round) + ",\"i\":" + std::to_string(iteration) + "}";
}

// The child: appends until killed. Never returns.
[[noreturn]] void AppendForever(const std::string& path, int round, int report_fd) {
  Result<std::unique_ptr<SessionStore>> store_or = SessionStore::Open(path);
  if (!store_or.ok()) _exit(2);
  SessionStore& store = **store_or;
  Result<std::vector<HistoryMessage>> existing = store.LoadMessages("s");
  if (!existing.ok()) _exit(3);
  int64_t message_seq = static_cast<int64_t>(existing->size());
  for (int64_t i = 0;; ++i) {
    Report report{0, 0, round, i};
    if (i % 4 == 0) {
      Result<int64_t> seq = store.AppendEvent("s", "text", Payload(round, i), i);
      if (!seq.ok()) _exit(4);
      report.event_seq = *seq;
    } else if (i % 4 == 2) {
      if (!store.JournalEvent("s", "text", Payload(round, i), i).ok()) _exit(7);
    } else if (i % 4 == 3) {
      // The journaled form of the transaction below: message, event and totals in one write.
      ++message_seq;
      HistoryMessage message;
      message.seq = message_seq;
      message.message.parts.push_back(llm::ContentPart{});
      message.message.parts.back().text = Payload(round, i);
      SessionRecord record;
      record.id = "s";
      record.updated_ms = i;
      record.totals.requests = message_seq;
      SessionStore::Changes changes;
      if (!changes.AppendMessage("s", message).ok() ||
          !changes.AppendEvent("s", "message", Payload(round, i), i).ok() ||
          !changes.UpdateSession(record).ok() || !store.Journal(std::move(changes)).ok()) {
        _exit(8);
      }
      report.message_seq = message_seq;
    } else {
      ++message_seq;
      Status status = store.Transaction([&](SessionStore::Writer& writer) -> Status {
        HistoryMessage message;
        message.seq = message_seq;
        message.message.parts.push_back(llm::ContentPart{});
        message.message.parts.back().text = Payload(round, i);
        RETURN_IF_ERROR(writer.AppendMessage("s", message));
        ASSIGN_OR_RETURN(report.event_seq,
                         writer.AppendEvent("s", "message", Payload(round, i), i));
        SessionRecord record;
        record.id = "s";
        record.updated_ms = i;
        record.totals.requests = message_seq;
        return writer.UpdateSession(record);
      });
      if (!status.ok()) _exit(5);
      report.message_seq = message_seq;
    }
    if (write(report_fd, &report, sizeof(report)) != static_cast<ssize_t>(sizeof(report))) {
      _exit(6);
    }
  }
}

// Reads one report; false at end of file. Fails the test after a 10 s silence.
bool ReadReport(int fd, Report& report) {
  size_t got = 0;
  auto* bytes = reinterpret_cast<char*>(&report);
  while (got < sizeof(report)) {
    pollfd poll_fd{fd, POLLIN, 0};
    int ready = poll(&poll_fd, 1, 10'000);
    EXPECT_EQ(ready, 1) << "the child reported nothing for 10 s";
    if (ready != 1) return false;
    ssize_t n = read(fd, bytes + got, sizeof(report) - got);
    if (n == 0) {
      EXPECT_EQ(got, 0u) << "torn report";
      return false;
    }
    if (n < 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

// Removes the directory when the test ends, failed or not.
struct DirectoryRemover {
  ~DirectoryRemover() { std::filesystem::remove_all(path); }
  std::string path;
};

TEST(StoreCrashTest, EverythingReportedBeforeSigkillSurvives) {
  char pattern[] = "/tmp/lai-store-crash-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  DirectoryRemover remover{dir};
  const std::string path = dir + "/sessions.db";
  {
    Result<std::unique_ptr<SessionStore>> store = SessionStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.error().ToString();
    SessionRecord record;
    record.id = "s";
    ASSERT_TRUE((*store)->CreateSession(record).ok());
  }
  std::mt19937 random(std::random_device{}());
  std::map<int64_t, Report> reported;  // By event seq.
  std::vector<Report> journaled;       // Their seq is given when they are folded.
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const int kill_after = std::uniform_int_distribution<int>(1, 300)(random);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      close(fds[0]);
      AppendForever(path, round, fds[1]);
    }
    close(fds[1]);
    // Should an assertion below return early, the child must not outlive the test.
    struct ChildReaper {
      ~ChildReaper() {
        if (pid > 0) {
          kill(pid, SIGKILL);
          waitpid(pid, nullptr, 0);
        }
      }
      pid_t pid;
    } reaper{child};
    Report report;
    int count = 0;
    auto note = [&] {
      if (report.event_seq == 0) {
        journaled.push_back(report);
      } else {
        reported[report.event_seq] = report;
      }
    };
    while (count < kill_after && ReadReport(fds[0], report)) {
      note();
      ++count;
    }
    ASSERT_EQ(count, kill_after) << "the child stopped early";
    ASSERT_EQ(kill(child, SIGKILL), 0);
    // Reports written before the kill are still in the pipe.
    while (ReadReport(fds[0], report)) note();
    close(fds[0]);
    int wait_status = 0;
    ASSERT_EQ(waitpid(child, &wait_status, 0), child);
    reaper.pid = 0;
    ASSERT_TRUE(WIFSIGNALED(wait_status)) << "child exit status " << WEXITSTATUS(wait_status);
  }

  Result<std::unique_ptr<SessionStore>> store = SessionStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  Result<std::vector<StoredEvent>> events = (*store)->LoadEvents("s");
  ASSERT_TRUE(events.ok());
  std::map<int64_t, StoredEvent> by_seq;
  for (const StoredEvent& event : *events) by_seq[event.seq] = event;
  int64_t reported_messages = 0;
  for (const auto& [seq, report] : reported) {
    auto it = by_seq.find(seq);
    ASSERT_NE(it, by_seq.end()) << "event " << seq << " was reported but is lost";
    EXPECT_EQ(it->second.payload_json, Payload(report.round, report.iteration));
    if (report.message_seq != 0) ++reported_messages;
  }
  // Journaled events: each exactly once.
  std::map<std::string, int> payload_count;
  for (const StoredEvent& event : *events) ++payload_count[event.payload_json];
  for (const Report& report : journaled) {
    EXPECT_EQ(payload_count[Payload(report.round, report.iteration)], 1)
        << "journaled event " << report.round << "/" << report.iteration;
  }
  ASSERT_FALSE(journaled.empty());
  // In the order they were appended, with seqs 1, 2, 3…
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].seq, static_cast<int64_t>(i + 1));
    if (i == 0) continue;
    nlohmann::json before = nlohmann::json::parse((*events)[i - 1].payload_json);
    nlohmann::json after = nlohmann::json::parse((*events)[i].payload_json);
    EXPECT_LT(std::make_pair(before["round"].get<int>(), before["i"].get<int>()),
              std::make_pair(after["round"].get<int>(), after["i"].get<int>()))
        << "events " << i << " and " << i + 1 << " are out of order";
  }
  // Whole transactions only: one "message" event and one request per stored message.
  Result<std::vector<HistoryMessage>> messages = (*store)->LoadMessages("s");
  ASSERT_TRUE(messages.ok());
  int64_t message_events = 0;
  for (const StoredEvent& event : *events) message_events += event.kind == "message" ? 1 : 0;
  EXPECT_EQ(static_cast<int64_t>(messages->size()), message_events);
  EXPECT_GE(static_cast<int64_t>(messages->size()), reported_messages);
  EXPECT_EQ((*(*store)->FindSession("s"))->totals.requests, static_cast<int64_t>(messages->size()));
  for (size_t i = 0; i < messages->size(); ++i) EXPECT_EQ((*messages)[i].seq, int64_t(i + 1));
  store->reset();

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* check = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &check, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(check), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(check, 0)), "ok");
  sqlite3_finalize(check);
  sqlite3_close(db);
}

}  // namespace
}  // namespace lai::agent
