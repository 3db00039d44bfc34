// `store_benchmark [count [directory ...]]`: µs per SessionStore::JournalEvent (the call on the
// path of every streamed chunk) and per AppendEvent (straight to SQLite) in each directory, beside
// two baselines measured in the same run:
// the same INSERT through the raw SQLite API (same pragmas, no validation, no mutex) and a plain
// write() of the same bytes to an O_APPEND file. Each figure is wall time and CPU time (user +
// sys of this process) per call: on a shared, loaded machine the CPU time is the steadier one.
// Build Release.
#include <fcntl.h>
#include <sqlite3.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "agent/store.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Cost {
  double wall_us = 0;  // Per call.
  double cpu_us = 0;   // Per call.
};

// Wall and CPU time since construction, per call.
class Timer {
 public:
  Timer() : wall_start_(Clock::now()), cpu_start_(CpuNow()) {}
  Cost PerCall(int count) const {
    return Cost{
        std::chrono::duration<double, std::micro>(Clock::now() - wall_start_).count() / count,
        (CpuNow() - cpu_start_) / count};
  }

 private:
  static double CpuNow() {  // µs.
    timespec now;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) * 1e6 + static_cast<double>(now.tv_nsec) / 1e3;
  }
  Clock::time_point wall_start_;
  double cpu_start_;
};

const std::string kPayload =
    R"({"type":"text","text":"Let me read the parser first, then run the failing test."})";

// journal: JournalEvent (its time includes the background folding it causes, as CPU time).
Cost BenchStore(const std::string& path, int count, bool journal) {
  auto store = lai::agent::SessionStore::Open(path);
  if (!store.ok()) {
    std::fprintf(stderr, "open: %s\n", store.error().ToString().c_str());
    std::exit(1);
  }
  lai::agent::SessionRecord record;
  record.id = "bench";
  if (!(*store)->CreateSession(record).ok()) std::exit(1);
  Timer timer;
  for (int i = 0; i < count; ++i) {
    bool ok = journal ? (*store)->JournalEvent("bench", "text", kPayload, i).ok()
                      : (*store)->AppendEvent("bench", "text", kPayload, i).ok();
    if (!ok) std::exit(1);
  }
  Cost cost = timer.PerCall(count);
  store->reset();  // Folds what is left: counted in neither figure.
  return cost;
}

Cost BenchRawSqlite(const std::string& path, int count) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) std::exit(1);
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE events ("
               "session_id TEXT NOT NULL, seq INTEGER NOT NULL, time_ms INTEGER NOT NULL, "
               "kind TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (session_id, seq)) "
               "WITHOUT ROWID",
               nullptr, nullptr, nullptr);
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO events VALUES ('bench', ?1, ?2, 'text', ?3)", -1, &insert,
                     nullptr);
  Timer timer;
  for (int i = 0; i < count; ++i) {
    sqlite3_bind_int64(insert, 1, i + 1);
    sqlite3_bind_int64(insert, 2, i);
    sqlite3_bind_text(insert, 3, kPayload.data(), static_cast<int>(kPayload.size()), SQLITE_STATIC);
    if (sqlite3_step(insert) != SQLITE_DONE) std::exit(1);
    sqlite3_reset(insert);
  }
  Cost cost = timer.PerCall(count);
  sqlite3_finalize(insert);
  sqlite3_close(db);
  return cost;
}

Cost BenchWrite(const std::string& path, int count) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) std::exit(1);
  const std::string line = kPayload + "\n";
  Timer timer;
  for (int i = 0; i < count; ++i) {
    if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::exit(1);
  }
  Cost cost = timer.PerCall(count);
  close(fd);
  return cost;
}

}  // namespace

int main(int argc, char** argv) {
  int count = argc > 1 ? std::atoi(argv[1]) : 20'000;
  std::vector<std::string> directories;
  for (int i = 2; i < argc; ++i) directories.push_back(argv[i]);
  if (directories.empty()) directories = {"/dev/shm", "/tmp"};
  std::printf("AppendEvent, %d calls of a %zu-byte payload, µs per call (wall / CPU):\n", count,
              kPayload.size());
  for (const std::string& directory : directories) {
    const std::string base = directory + "/lai-store-bench-" + std::to_string(getpid());
    std::filesystem::create_directories(base);
    Cost journal = BenchStore(base + "/journal.db", count, /*journal=*/true);
    Cost store = BenchStore(base + "/sessions.db", count, /*journal=*/false);
    Cost raw = BenchRawSqlite(base + "/raw.db", count);
    Cost plain = BenchWrite(base + "/events.jsonl", count);
    std::printf(
        "  %s\n    SessionStore::JournalEvent    %7.2f / %6.2f\n"
        "    SessionStore::AppendEvent     %7.2f / %6.2f\n"
        "    baseline raw sqlite3 INSERT   %7.2f / %6.2f\n"
        "    baseline write() O_APPEND     %7.2f / %6.2f\n",
        directory.c_str(), journal.wall_us, journal.cpu_us, store.wall_us, store.cpu_us,
        raw.wall_us, raw.cpu_us, plain.wall_us, plain.cpu_us);
    std::filesystem::remove_all(base);
  }
  return 0;
}
