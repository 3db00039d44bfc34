// `lapce-ai bench ipc`: measures the shared-memory transport end to end against a real
// `lapce-ai serve` child process, with a Unix-socket and a Node.js baseline in the same run.
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/alloc_counter.h"
#include "cli/bench_util.h"
#include "cli/commands.h"
#include "cli/node_rtt_script.h"
#include "cli/server_process.h"
#include "ipc/client.h"
#include "ipc/ring.h"
#include "ipc/socket.h"
#include "ipc/wait.h"

namespace lai::cli {
namespace {

// With two or more CPUs, the benchmark keeps the two ends of each link on different CPUs (as
// the kernel does on a quiet machine, but not reliably at start-up): two spinning processes on
// one CPU only measure the scheduler. Both the transport and the Unix-socket baseline get the
// same placement; Node.js runs unpinned (its two processes sleep in epoll, not spin).
struct CpuPlacement {
  bool is_split = false;
  cpu_set_t original;
  int client_cpu = 0;
  int server_cpu = 1;

  CpuPlacement() {
    CPU_ZERO(&original);
    if (::sched_getaffinity(0, sizeof(original), &original) != 0 || CPU_COUNT(&original) < 2) {
      return;
    }
    std::vector<int> cpus;
    for (int i = 0; i < CPU_SETSIZE && cpus.size() < 2; ++i) {
      if (CPU_ISSET(i, &original)) cpus.push_back(i);
    }
    client_cpu = cpus[0];
    server_cpu = cpus[1];
    is_split = true;
  }
  static void Pin(pid_t pid, int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ::sched_setaffinity(pid, sizeof(one), &one);
  }
  void PinClient() const {
    if (is_split) Pin(0, client_cpu);
  }
  // Every thread of process `pid` (sched_setaffinity on a pid moves only its main thread, and
  // the server's worker would float — sometimes onto the client's CPU).
  void PinServer(pid_t pid) const {
    if (!is_split) return;
    if (pid == 0) return Pin(0, server_cpu);
    std::error_code error;
    for (const auto& task :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", error)) {
      Pin(static_cast<pid_t>(std::atoi(task.path().filename().c_str())), server_cpu);
    }
  }
  void Restore() const {
    if (is_split) ::sched_setaffinity(0, sizeof(original), &original);
  }
};

// Read once, before anything is pinned.
const CpuPlacement& Placement() {
  static const CpuPlacement placement;
  return placement;
}

constexpr uint16_t kEcho = static_cast<uint16_t>(ipc::MessageType::kEcho);
constexpr uint16_t kHealth = static_cast<uint16_t>(ipc::MessageType::kHealth);
constexpr uint16_t kChecksum = static_cast<uint16_t>(ipc::MessageType::kChecksum);

[[noreturn]] void Fail(const std::string& what, const Error& error) {
  std::fprintf(stderr, "lapce-ai bench ipc: %s: %s\n", what.c_str(), error.message().c_str());
  std::exit(1);
}

ipc::Client Connect(const std::string& socket, uint32_t ring_bytes) {
  ipc::ClientOptions options;
  options.socket_path = socket;
  options.stream.ring_bytes = ring_bytes;
  options.request_timeout = std::chrono::seconds(10);
  ipc::Client client(options);
  if (Status s = client.Connect(); !s.ok()) Fail("connect", s.error());
  return client;
}

void Echo(ipc::Client& client, std::span<const std::byte> payload) {
  Result<ipc::Response> r = client.Call(kEcho, payload);
  if (!r.ok()) Fail("echo", r.error());
  if (r->payload.size() != payload.size()) {
    Fail("echo", Error(ErrorCode::kInternal, "reply has the wrong size"));
  }
}

// Round trips of `payload`, each timed.
Percentiles RoundTrips(ipc::Client& client, size_t bytes, size_t count) {
  std::vector<std::byte> payload(bytes, std::byte{0x5a});
  for (size_t i = 0; i < count / 10 + 100; ++i) Echo(client, payload);
  std::vector<uint64_t> samples(count);
  for (size_t i = 0; i < count; ++i) {
    uint64_t start = ipc::NowNs();
    Echo(client, payload);
    samples[i] = ipc::NowNs() - start;
  }
  return Summarize(samples);
}

// The first round trip after the server has been idle long enough to sleep in epoll_wait.
Percentiles ColdRoundTrips(ipc::Client& client, size_t count) {
  std::vector<std::byte> payload(64, std::byte{0x5a});
  std::vector<uint64_t> samples(count);
  for (size_t i = 0; i < count; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    uint64_t start = ipc::NowNs();
    Echo(client, payload);
    samples[i] = ipc::NowNs() - start;
  }
  return Summarize(samples);
}

// One-way: checksum notifications, which the server handles (reading every byte) without
// replying, then one echo that, answered in order, proves every notification before it was
// handled. Returns messages per second.
double OneWay(ipc::Client& client, size_t bytes, size_t count) {
  std::vector<std::byte> payload(bytes, std::byte{0x33});
  for (size_t i = 0; i < count / 10; ++i) {
    if (Status s = client.Notify(kChecksum, payload); !s.ok()) Fail("notify", s.error());
  }
  Echo(client, payload);
  uint64_t start = ipc::NowNs();
  for (size_t i = 0; i < count; ++i) {
    if (Status s = client.Notify(kChecksum, payload); !s.ok()) Fail("notify", s.error());
  }
  Echo(client, payload);
  double seconds = static_cast<double>(ipc::NowNs() - start) / 1e9;
  return static_cast<double>(count) / seconds;
}

uint64_t ServerAllocations(ipc::Client& client) {
  Result<ipc::Response> r = client.Call(kHealth, {});
  if (!r.ok()) Fail("health", r.error());
  std::string_view text(reinterpret_cast<const char*>(r->payload.data()), r->payload.size());
  size_t at = text.find("\"allocations\":");
  if (at == std::string_view::npos) return 0;
  return std::strtoull(text.data() + at + 14, nullptr, 10);
}

// Heap allocations per round trip, client and server together, in the steady state.
double AllocationsPerMessage(ipc::Client& client, size_t count) {
  std::vector<std::byte> payload(64, std::byte{0x5a});
  for (size_t i = 0; i < 1000; ++i) Echo(client, payload);
  // Two back-to-back health calls measure what asking costs, so it can be subtracted.
  uint64_t s0 = ServerAllocations(client);
  uint64_t s1 = ServerAllocations(client);
  uint64_t c0 = AllocationCount();
  for (size_t i = 0; i < count; ++i) Echo(client, payload);
  uint64_t c1 = AllocationCount();
  uint64_t s2 = ServerAllocations(client);
  uint64_t server = (s2 - s1) - std::min(s2 - s1, s1 - s0);
  return static_cast<double>((c1 - c0) + server) / static_cast<double>(count);
}

// Time from the restarted server's ready line to the first successful call of a client that
// kept calling through the outage. Median of `rounds` SIGKILL/restart cycles, in ms.
double ReconnectMs(ServerProcess& server, const std::string& socket, int rounds) {
  ipc::Client client = Connect(socket, 1024);
  std::vector<std::byte> payload(64, std::byte{0x5a});
  std::vector<double> results;
  for (int round = 0; round < rounds; ++round) {
    Echo(client, payload);
    server.Stop(SIGKILL);
    std::atomic<uint64_t> success_ns{0};
    std::atomic<bool> give_up{false};
    std::thread caller([&] {
      while (!give_up.load()) {
        if (client.Call(kEcho, payload, std::chrono::milliseconds(1000)).ok()) {
          success_ns = ipc::NowNs();
          return;
        }
      }
    });
    Result<ServerProcess> restarted = ServerProcess::Start(socket);
    if (!restarted.ok()) {
      give_up = true;
      caller.join();
      Fail("restart server", restarted.error());
    }
    server = std::move(restarted).value();
    Placement().PinServer(server.pid());
    uint64_t deadline = ipc::NowNs() + 5'000'000'000ull;
    while (success_ns.load() == 0 && ipc::NowNs() < deadline) std::this_thread::yield();
    give_up = true;
    caller.join();
    if (success_ns.load() == 0) {
      Fail("reconnect", Error(ErrorCode::kTimeout, "no successful call 5 s after the restart"));
    }
    double ms = success_ns.load() > server.ready_ns()
                    ? static_cast<double>(success_ns.load() - server.ready_ns()) / 1e6
                    : 0.0;  // Reconnected before we had even read the ready line.
    results.push_back(ms);
  }
  std::sort(results.begin(), results.end());
  return results[results.size() / 2];
}

// Baseline: ping-pong over a Unix stream socket between two processes.
uint64_t UnixSocketP50(size_t count) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  const CpuPlacement& placement = Placement();
  pid_t child = ::fork();
  if (child == 0) {
    placement.PinServer(0);
    ::close(fds[0]);
    char buffer[64];
    for (;;) {
      size_t got = 0;
      while (got < sizeof(buffer)) {
        ssize_t n = ::read(fds[1], buffer + got, sizeof(buffer) - got);
        if (n <= 0) ::_exit(0);
        got += static_cast<size_t>(n);
      }
      if (::write(fds[1], buffer, sizeof(buffer)) != static_cast<ssize_t>(sizeof(buffer))) {
        ::_exit(1);
      }
    }
  }
  ::close(fds[1]);
  placement.PinClient();
  char buffer[64] = {};
  std::vector<uint64_t> samples;
  samples.reserve(count);
  for (size_t i = 0; i < count + count / 10; ++i) {
    uint64_t start = ipc::NowNs();
    if (::write(fds[0], buffer, sizeof(buffer)) != static_cast<ssize_t>(sizeof(buffer))) break;
    size_t got = 0;
    while (got < sizeof(buffer)) {
      ssize_t n = ::read(fds[0], buffer + got, sizeof(buffer) - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    if (i >= count / 10) samples.push_back(ipc::NowNs() - start);
  }
  ::close(fds[0]);
  ::waitpid(child, nullptr, 0);
  placement.Restore();
  return Summarize(samples).p50;
}

// Context for the hot round trip: the machine's floor, two processes pinned like client and server
// passing a counter back and forth through shared memory (no ring, no frame, no handler). With
// `lines` = 1 each side writes one cache line; with 2 each side writes a data line and then a flag
// line, and the other reads the data once it sees the flag, as a 64-byte message (two cells of
// the ring each way) must. Our round trip moves at least that much, so it cannot beat it.
Percentiles CacheLineFloor(size_t count, int lines) {
  void* shared = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) return {};
  auto* words = static_cast<uint64_t*>(shared);  // One word per 64-byte line: words[8 * k].
  std::atomic_ref<uint64_t> ping(words[0]);
  std::atomic_ref<uint64_t> ping_data(words[8]);
  std::atomic_ref<uint64_t> pong(words[16]);
  std::atomic_ref<uint64_t> pong_data(words[24]);
  const bool with_data = lines == 2;
  const CpuPlacement& placement = Placement();
  pid_t child = ::fork();
  if (child == 0) {
    placement.PinServer(0);
    for (uint64_t i = 1; i <= count; ++i) {
      while (ping.load(std::memory_order_acquire) != i) ipc::CpuRelax();
      if (with_data) {
        pong_data.store(ping_data.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      }
      pong.store(i, std::memory_order_release);
    }
    ::_exit(0);
  }
  placement.PinClient();
  std::vector<uint64_t> samples;
  samples.reserve(count);
  uint64_t answers = 0;
  for (uint64_t i = 1; i <= count; ++i) {
    uint64_t start = ipc::NowNs();
    if (with_data) ping_data.store(i, std::memory_order_relaxed);
    ping.store(i, std::memory_order_release);
    while (pong.load(std::memory_order_acquire) != i) ipc::CpuRelax();
    if (with_data) answers += pong_data.load(std::memory_order_relaxed) == i + 1;
    if (i > count / 10) samples.push_back(ipc::NowNs() - start);
  }
  ::waitpid(child, nullptr, 0);
  placement.Restore();
  ::munmap(shared, 4096);
  if (with_data && answers != count) {
    Fail("two-line floor", Error(ErrorCode::kInternal, "a data line arrived without its flag"));
  }
  return Summarize(samples);
}

// Context for one-way throughput (see OneWayFloor): 64-byte messages, two processes pinned
// like client and server streaming records through a bare 64 KiB ring of 64-byte cells laid out
// as ours (a 16-byte prefix whose sequence word is stored last, a 24-byte header, the payload:
// two cells a record), the producer fencing after each publish as ours must, the consumer
// summing each payload and publishing its position every sixteenth of the ring. No frame
// checks, handler, metrics or wake-up logic. Messages per second of one run.
double OneWayFloorRun(size_t count) {
  constexpr uint64_t kCells = 1024;
  constexpr uint64_t kCellsPerRecord = 2;
  const size_t bytes = (kCells + 1) * 64;
  void* shared = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) return 0;
  auto* base = static_cast<std::byte*>(shared);
  std::atomic_ref<uint64_t> consumed(*reinterpret_cast<uint64_t*>(base));
  std::byte* cells = base + 64;
  auto seq_of = [&](uint64_t position) {
    return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(cells + position % kCells * 64));
  };
  const CpuPlacement& placement = Placement();
  pid_t child = ::fork();
  if (child == 0) {
    placement.PinServer(0);
    uint64_t tail = 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < count; ++i) {
      while (seq_of(tail).load(std::memory_order_acquire) != tail + 1) ipc::CpuRelax();
      for (size_t k = 0; k < 64; k += 8) {
        uint64_t word;
        std::memcpy(&word, cells + tail % kCells * 64 + 40 + k, sizeof(word));
        sum += word;
      }
      tail += kCellsPerRecord;
      if (tail % (kCells / 16) == 0) consumed.store(tail, std::memory_order_release);
    }
    consumed.store(tail, std::memory_order_release);
    ::_exit(sum == 0 ? 1 : 0);
  }
  placement.PinClient();
  std::byte payload[64];
  std::memset(payload, 0x33, sizeof(payload));
  uint64_t head = 0;
  uint64_t known_consumed = 0;
  uint64_t start = ipc::NowNs();
  for (size_t i = 0; i < count; ++i) {
    while (head + kCellsPerRecord - known_consumed > kCells) {
      known_consumed = consumed.load(std::memory_order_acquire);
    }
    std::byte* record = cells + head % kCells * 64;
    std::memcpy(record + 40, payload, sizeof(payload));
    std::memset(record + 8, 0, 32);
    seq_of(head).store(head + 1, std::memory_order_release);
    ipc::FullFence();
    head += kCellsPerRecord;
  }
  while (consumed.load(std::memory_order_acquire) != head) ipc::CpuRelax();
  double seconds = static_cast<double>(ipc::NowNs() - start) / 1e9;
  int status = 0;
  ::waitpid(child, &status, 0);
  placement.Restore();
  ::munmap(shared, bytes);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    Fail("one-way floor", Error(ErrorCode::kInternal, "the consumer read no payload"));
  }
  return static_cast<double>(count) / seconds;
}

// The best of three OneWayFloorRun()s: the rate swings widely from run to run (once the
// consumer catches up with the producer it polls the very line being written, and each record's
// lines then cross between the CPUs more than once), and the floor is what the machine can do.
double OneWayFloor(size_t count) {
  double best = 0;
  for (int run = 0; run < 3; ++run) best = std::max(best, OneWayFloorRun(count / 3 + 1));
  return best;
}

// Context for the cold round trip: the machine's own cost of waking a process asleep in
// epoll_wait (eventfd write -> the sleeper runs and answers through shared memory), measured
// like the cold round trip: after 2 ms of idleness, with the waker spinning for the answer.
uint64_t WakeFloorP50(size_t count) {
  int eventfd_fd = ::eventfd(0, EFD_CLOEXEC);
  void* shared = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (eventfd_fd < 0 || shared == MAP_FAILED) return 0;
  std::atomic_ref<uint64_t> answered(*static_cast<uint64_t*>(shared));
  const CpuPlacement& placement = Placement();
  pid_t child = ::fork();
  if (child == 0) {
    placement.PinServer(0);
    int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, eventfd_fd, &ev);
    for (;;) {
      epoll_event got;
      if (::epoll_wait(epoll_fd, &got, 1, 5000) <= 0) ::_exit(0);
      uint64_t value;
      if (::read(eventfd_fd, &value, sizeof(value)) != sizeof(value) || value > 1) ::_exit(0);
      answered.store(1, std::memory_order_release);
    }
  }
  placement.PinClient();
  std::vector<uint64_t> samples(count);
  for (size_t i = 0; i < count; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    answered.store(0, std::memory_order_relaxed);
    uint64_t start = ipc::NowNs();
    uint64_t one = 1;
    if (::write(eventfd_fd, &one, sizeof(one)) != sizeof(one)) break;
    while (answered.load(std::memory_order_acquire) == 0) ipc::CpuRelax();
    samples[i] = ipc::NowNs() - start;
  }
  uint64_t stop = 2;
  ssize_t n = ::write(eventfd_fd, &stop, sizeof(stop));
  (void)n;
  ::waitpid(child, nullptr, 0);
  placement.Restore();
  ::close(eventfd_fd);
  ::munmap(shared, 4096);
  return Summarize(samples).p50;
}

// Baseline: Node.js `net` over a Unix socket (bench/node_rtt.js, embedded). nullopt without node.
std::optional<uint64_t> NodeP50(const std::string& dir, size_t count) {
  if (std::system("command -v node >/dev/null 2>&1") != 0) return std::nullopt;
  std::string script = dir + "/node_rtt.js";
  std::ofstream(script) << kNodeRttScript;
  std::string command = "node '" + script + "' client '" + dir + "/node.sock' " +
                        std::to_string(count) + " 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  char line[256] = {};
  bool read = std::fgets(line, sizeof(line), pipe) != nullptr;
  ::pclose(pipe);
  const char* p50 = read ? std::strstr(line, "\"p50_ns\":") : nullptr;
  if (p50 == nullptr) return std::nullopt;
  return static_cast<uint64_t>(std::strtod(p50 + 9, nullptr));
}

}  // namespace

int BenchIpc(const Config& config, const BenchIpcFlags& flags) {
  (void)config;
  ::signal(SIGPIPE, SIG_IGN);
  ipc::RaiseFileLimit();
  const bool quick = flags.quick;
  const size_t hot_count = quick ? 200'000 : 2'000'000;
  const size_t cold_count = quick ? 300 : 2'000;
  const size_t one_way_64 = quick ? 2'000'000 : 20'000'000;
  const size_t one_way_1k = quick ? 300'000 : 3'000'000;
  const size_t spread_count = quick ? 100'000 : 1'000'000;
  const int reconnect_rounds = quick ? 3 : 10;
  const size_t baseline_count = quick ? 50'000 : 300'000;
  auto progress = [&](const char* what) {
    if (!flags.json) std::fprintf(stderr, "  measuring %s...\n", what);
  };

  TempDir dir;
  std::string socket = dir.path() + "/bench.sock";
  Result<ServerProcess> started = ServerProcess::Start(socket);
  if (!started.ok()) Fail("start server", started.error());
  ServerProcess server = std::move(started).value();
  const CpuPlacement& placement = Placement();
  placement.PinClient();
  placement.PinServer(server.pid());

  progress("hot round trips");
  ipc::Client client = Connect(socket, 1024);
  Percentiles hot = RoundTrips(client, 64, hot_count);
  ipc::Client big_ring = Connect(socket, 4096);
  Percentiles hot_1k = RoundTrips(big_ring, 1024, hot_count / 2);

  progress("cold round trips");
  Percentiles cold = ColdRoundTrips(client, cold_count);

  progress("one-way throughput");
  // A bulk sender asks for larger rings at connect (64 KiB per direction): with the default
  // 1 KiB ring only eight 64-byte messages fit in flight.
  ipc::Client bulk = Connect(socket, 64 * 1024);
  double msgs_64 = OneWay(bulk, 64, one_way_64);
  double bytes_1k = OneWay(bulk, 1024, one_way_1k) * 1024;
  bulk.Close();

  progress("allocations per message");
  double allocs = AllocationsPerMessage(client, quick ? 50'000 : 500'000);

  progress("1000 connections");
  std::vector<ipc::Client> clients;
  clients.reserve(1000);
  for (int i = 0; i < 1000; ++i) clients.push_back(Connect(socket, 1024));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // Let the server go idle.
  uint64_t rss_1000 = server.RssBytes();
  std::vector<std::byte> payload(64, std::byte{0x5a});
  for (auto& c : clients) Echo(c, payload);
  std::vector<uint64_t> spread(spread_count);
  for (size_t i = 0; i < spread_count; ++i) {
    ipc::Client& c = clients[(i * 7919) % clients.size()];
    uint64_t start = ipc::NowNs();
    Echo(c, payload);
    spread[i] = ipc::NowNs() - start;
  }
  Percentiles conn1000 = Summarize(spread);
  clients.clear();
  client.Close();
  big_ring.Close();

  progress("reconnection after SIGKILL");
  double reconnect = ReconnectMs(server, socket, reconnect_rounds);
  server.Stop(SIGTERM);
  placement.Restore();

  progress("Unix socket and Node.js baselines");
  uint64_t uds = UnixSocketP50(baseline_count);
  uint64_t wake_floor = flags.json ? 0 : WakeFloorP50(cold_count / 2);
  Percentiles line_floor = flags.json ? Percentiles{} : CacheLineFloor(baseline_count * 2, 1);
  Percentiles two_line_floor = flags.json ? Percentiles{} : CacheLineFloor(baseline_count * 2, 2);
  double one_way_floor = flags.json ? 0 : OneWayFloor(one_way_64);
  std::optional<uint64_t> node = NodeP50(dir.path(), baseline_count / 5);

  double ratio_uds = hot.p50 != 0 ? static_cast<double>(uds) / static_cast<double>(hot.p50) : 0;
  double ratio_node =
      node && hot.p50 != 0 ? static_cast<double>(*node) / static_cast<double>(hot.p50) : 0;

  if (flags.json) {
    std::string node_text = node ? std::to_string(*node) : "null";
    char ratio_node_text[32] = "null";
    if (node) std::snprintf(ratio_node_text, sizeof(ratio_node_text), "%.1f", ratio_node);
    std::printf(
        "{\"hot_rtt_p50_ns\":%llu,\"hot_rtt_p99_ns\":%llu,\"hot_rtt_1k_p50_ns\":%llu,"
        "\"cold_rtt_p50_ns\":%llu,\"cold_rtt_p99_ns\":%llu,\"throughput_64b_msgs_per_s\":%.0f,"
        "\"throughput_1k_bytes_per_s\":%.0f,\"conn1000_rtt_p50_ns\":%llu,"
        "\"conn1000_rtt_p99_ns\":%llu,\"reconnect_ms\":%.3f,\"server_rss_bytes_1000_conns\":%llu,"
        "\"allocs_per_msg\":%.4f,\"uds_rtt_p50_ns\":%llu,\"node_rtt_p50_ns\":%s,"
        "\"ratio_vs_uds\":%.1f,\"ratio_vs_node\":%s}\n",
        (unsigned long long)hot.p50, (unsigned long long)hot.p99, (unsigned long long)hot_1k.p50,
        (unsigned long long)cold.p50, (unsigned long long)cold.p99, msgs_64, bytes_1k,
        (unsigned long long)conn1000.p50, (unsigned long long)conn1000.p99, reconnect,
        (unsigned long long)rss_1000, allocs, (unsigned long long)uds, node_text.c_str(), ratio_uds,
        ratio_node_text);
    return 0;
  }
  auto row = PrintRow;
  auto ns = [](uint64_t v) { return std::to_string(v) + " ns"; };
  char buffer[64];
  std::printf("lapce-ai bench ipc%s: client and `lapce-ai serve` in separate processes\n",
              quick ? " --quick" : "");
  row("hot round trip p50 (64 B)", ns(hot.p50), "target <= 300 ns");
  row("hot round trip p99 (64 B)", ns(hot.p99), "target <= 1 us");
  row("  this machine's floor, p50", ns(line_floor.p50),
      "two processes passing one cache line, same CPUs; p99 " + ns(line_floor.p99));
  row("  the same, two lines each way, p50", ns(two_line_floor.p50),
      "a data line, then its flag, as a 64 B message needs; p99 " + ns(two_line_floor.p99));
  row("hot round trip p50 (1 KiB)", ns(hot_1k.p50), "4 KiB rings");
  row("cold round trip p50 (server asleep)", ns(cold.p50), "target <= 10 us");
  row("cold round trip p99", ns(cold.p99), "");
  row("  this machine's wake-up alone, p50", ns(wake_floor),
      "eventfd -> process asleep in epoll_wait, same conditions");
  std::snprintf(buffer, sizeof(buffer), "%.2f M/s", msgs_64 / 1e6);
  row("one-way throughput (64 B)", buffer, "target >= 20 M/s; 64 KiB rings, server sums each");
  std::snprintf(buffer, sizeof(buffer), "%.2f M/s", one_way_floor / 1e6);
  row("  this machine's floor", buffer, "the same records through a bare ring, same CPUs");
  std::snprintf(buffer, sizeof(buffer), "%.2f GB/s", bytes_1k / 1e9);
  row("one-way throughput (1 KiB)", buffer, "64 KiB rings, server sums each");
  row("1000 connections p50", ns(conn1000.p50), "");
  row("1000 connections p99", ns(conn1000.p99), "target <= 1 us");
  std::snprintf(buffer, sizeof(buffer), "%.2f ms", reconnect);
  row("reconnect after SIGKILL", buffer, "target <= 10 ms");
  std::snprintf(buffer, sizeof(buffer), "%.2f MB", static_cast<double>(rss_1000) / 1e6);
  row("server RSS, 1000 idle connections", buffer, "target <= 3 MB");
  std::snprintf(buffer, sizeof(buffer), "%.4f", allocs);
  row("heap allocations per message", buffer, "target 0");
  row("baseline: Unix socket p50", ns(uds), "");
  row("baseline: Node.js net p50", node ? ns(*node) : "n/a", node ? "" : "node not found");
  std::snprintf(buffer, sizeof(buffer), "%.1fx", ratio_uds);
  row("faster than Unix socket", buffer, "target >= 50x");
  std::snprintf(buffer, sizeof(buffer), "%.1fx", ratio_node);
  row("faster than Node.js", node ? buffer : "n/a", "target >= 100x");
  return 0;
}

}  // namespace lai::cli
