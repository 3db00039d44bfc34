// Client-side cost of many concurrent idle streams on the one I/O thread:
//   http_streams_benchmark [streams]
// The fake provider server runs in a child process so that only the client's memory is counted.
// Each stream POSTs 2 KB, gets its headers and a first SSE event, then the server stalls.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>

#include "http/client.h"
#include "testing/fake_provider_server.h"

namespace {

using Clock = std::chrono::steady_clock;

long ResidentKib() {
  std::ifstream statm("/proc/self/statm");
  long size_pages = 0, resident_pages = 0;
  statm >> size_pages >> resident_pages;
  return resident_pages * sysconf(_SC_PAGESIZE) / 1024;
}

// Runs the server in a child until the parent closes the pipe; returns its port (0 on failure).
uint16_t StartServerProcess(pid_t* child) {
  int to_parent[2], to_child[2];
  if (::pipe(to_parent) != 0 || ::pipe(to_child) != 0) return 0;
  *child = ::fork();
  if (*child == 0) {
    auto server = lai::testing::FakeProviderServer::Start();
    uint16_t port = server.ok() ? (*server)->port() : 0;
    if (server.ok()) {
      lai::testing::FakeResponse stalled;
      stalled.headers.push_back({"Content-Type", "text/event-stream"});
      stalled.body_chunks = {"data: {\"a\":1}\n\n", "data: [DONE]\n\n"};
      stalled.fault.stall_after_bytes = stalled.body_chunks[0].size();
      stalled.fault.stall_for = std::chrono::seconds(60);
      (*server)->SetDefault(stalled);
    }
    (void)!::write(to_parent[1], &port, sizeof(port));
    char byte;
    (void)!::read(to_child[0], &byte, 1);  // Returns when the parent exits or closes the pipe.
    ::_exit(0);
  }
  ::close(to_child[0]);
  uint16_t port = 0;
  if (::read(to_parent[0], &port, sizeof(port)) != sizeof(port)) return 0;
  return port;
}

}  // namespace

int main(int argc, char** argv) {
  const int streams = argc > 1 ? std::atoi(argv[1]) : 200;
  pid_t child = 0;
  const uint16_t port = StartServerProcess(&child);
  if (port == 0) {
    std::fprintf(stderr, "http_streams_benchmark: could not start the fake server\n");
    return 1;
  }
  auto client = lai::http::Client::Create(
      {.max_connections_per_host = streams + 1, .max_total_connections = streams + 1});
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.error().ToString().c_str());
    return 1;
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1/chat/completions";
  std::mutex mutex;
  std::condition_variable changed;
  int first_events = 0;
  auto start_stream = [&] {
    lai::http::Request request;
    request.url = url;
    request.body = std::string(2000, 'x');
    lai::http::Handlers handlers;
    handlers.on_data = [&](std::string_view) {
      std::lock_guard lock(mutex);
      ++first_events;
      changed.notify_all();
    };
    return (*client)->Start(std::move(request), std::move(handlers));
  };
  auto wait_for = [&](int count) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, std::chrono::seconds(30), [&] { return first_events >= count; });
  };
  // Warm-up: the first transfer initialises curl's and OpenSSL's global state.
  lai::http::Client::TransferId warm = start_stream();
  if (!wait_for(1)) return 1;
  (*client)->Cancel(warm);

  const long before_kib = ResidentKib();
  Clock::time_point started = Clock::now();
  std::vector<lai::http::Client::TransferId> ids;
  for (int i = 0; i < streams; ++i) ids.push_back(start_stream());
  const bool all = wait_for(streams + 1);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
  const long after_kib = ResidentKib();
  std::printf("%d streams: first event on all of them %s in %.1f ms\n", streams,
              all ? "received" : "NOT received", ms);
  std::printf("client RSS %ld KiB -> %ld KiB: %.1f KiB per idle stream (plain HTTP/1.1, one "
              "connection each)\n",
              before_kib, after_kib, static_cast<double>(after_kib - before_kib) / streams);
  for (auto id : ids) (*client)->Cancel(id);
  client->reset();
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  return all ? 0 : 1;
}
