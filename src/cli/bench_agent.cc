// `lapce-ai bench agent`: the agent's targets from issue 5, measured on the real paths against
// providers on loopback that answer at once:
// (a) `lapce-ai --version`, spawn to exit, beside spawning /bin/true;
// (b) `lapce-ai acp`: spawn → `initialize` answer, `session/new`, and the idle RSS after it;
// (c) a one-shot `lapce-ai run "say hello" --yes`: wall, peak RSS, model requests;
// (d) engine overhead per tool turn, in this process: from the provider writing the last byte of
//     a read_file call to the next request arriving (the tool runs, the turn is persisted, the
//     next request is built and sent);
// (e) a provider chunk reaching an ACP client (a child `lapce-ai acp` on pipes), beside the same
//     hops without the engine (a line over loopback TCP to a child process that copies it to a
//     pipe) and a line's round trip through `cat`; and the child's peak RSS during that task;
// (f) 100 concurrent sessions in this process.
// Codex CLI's numbers from the issue are printed as static reference text.
#include "cli/bench_agent.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/session.h"
#include "agent/store.h"
#include "base/unique_fd.h"
#include "cli/bench_util.h"
#include "cli/server_process.h"
#include "ipc/wait.h"
#include "llm/pool.h"
#include "server/agent_setup.h"
#include "testing/fake_provider_server.h"
#include "testing/scripted_model.h"

namespace lai::cli {
namespace {

using Json = nlohmann::json;
using ipc::NowNs;
using std::chrono::milliseconds;

struct BenchAgentFlags {
  bool json = false;
  bool quick = false;
};

[[noreturn]] void Fail(const std::string& what, const std::string& message) {
  std::fprintf(stderr, "lapce-ai bench agent: %s: %s\n", what.c_str(), message.c_str());
  std::exit(1);
}

// A "Vm…:" line of /proc/<pid>/status in bytes; pid 0 = this process. 0 when unreadable.
uint64_t ProcStatusBytes(pid_t pid, const char* field) {
  std::ifstream status(pid == 0 ? std::string("/proc/self/status")
                                : "/proc/" + std::to_string(pid) + "/status");
  std::string line;
  size_t length = std::strlen(field);
  while (std::getline(status, line)) {
    if (line.compare(0, length, field) == 0) {
      return std::strtoull(line.c_str() + length, nullptr, 10) * 1024;
    }
  }
  return 0;
}

double Ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }
double Mb(uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

uint64_t Median(std::vector<uint64_t> samples) { return Summarize(samples).p50; }

// ---------------------------------------------------------------------------------------------
// Child processes: this executable (or another program) with pipes or /dev/null, an exact
// environment, and a watchdog that SIGKILLs a child that overstays.

// SIGKILLs the armed child when its deadline passes. Thread-safe.
class Watchdog {
 public:
  Watchdog() : thread_([this] { Loop(); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      is_stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  void Arm(pid_t pid, milliseconds timeout) {
    std::lock_guard lock(mutex_);
    pid_ = pid;
    deadline_ = std::chrono::steady_clock::now() + timeout;
    changed_.notify_all();
  }
  void Disarm() {
    std::lock_guard lock(mutex_);
    pid_ = -1;
  }

 private:
  void Loop() {
    std::unique_lock lock(mutex_);
    while (!is_stopping_) {
      if (pid_ <= 0) {
        changed_.wait(lock);
        continue;
      }
      if (changed_.wait_until(lock, deadline_) == std::cv_status::timeout && pid_ > 0 &&
          std::chrono::steady_clock::now() >= deadline_) {
        ::kill(pid_, SIGKILL);
        std::fprintf(stderr, "lapce-ai bench agent: child %d overstayed; killed\n", pid_);
        pid_ = -1;
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  bool is_stopping_ = false;
  pid_t pid_ = -1;
  std::chrono::steady_clock::time_point deadline_;
  std::thread thread_;
};

// Thread-compatible.
class Child {
 public:
  // stdin and stdout are pipes when `pipes`, else /dev/null; stderr goes to /dev/null.
  static Result<std::unique_ptr<Child>> Start(const std::string& program,
                                              const std::vector<std::string>& argv,
                                              const std::vector<std::string>& env, bool pipes) {
    auto child = std::unique_ptr<Child>(new Child());
    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
    if (pipes && (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0)) {
      return ErrnoError("bench agent: pipe", errno);
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (pipes) {
      posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
      posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    } else {
      posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
      posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    }
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    std::vector<char*> c_argv, c_env;
    for (const std::string& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
    c_argv.push_back(nullptr);
    for (const std::string& e : env) c_env.push_back(const_cast<char*>(e.c_str()));
    c_env.push_back(nullptr);
    int rc = ::posix_spawn(&child->pid_, program.c_str(), &actions, nullptr, c_argv.data(),
                           c_env.data());
    posix_spawn_file_actions_destroy(&actions);
    if (pipes) {
      ::close(in_pipe[0]);
      ::close(out_pipe[1]);
      child->in_.Reset(in_pipe[1]);
      child->out_.Reset(out_pipe[0]);
    }
    if (rc != 0) {
      child->pid_ = -1;
      return ErrnoError("bench agent: spawn " + program, rc);
    }
    return child;
  }

  ~Child() {
    in_.Reset();
    if (pid_ > 0 && !is_reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const { return pid_; }

  bool WriteLine(const std::string& line) {
    std::string data = line + "\n";
    std::string_view rest = data;
    while (!rest.empty()) {
      ssize_t n = ::write(in_.get(), rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      rest.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // The next stdout line (without '\n'); nullopt at end of file or when `deadline_ns` passes.
  std::optional<std::string> ReadLine(uint64_t deadline_ns) {
    for (;;) {
      size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      uint64_t now = NowNs();
      if (now >= deadline_ns) return std::nullopt;
      pollfd fd{out_.get(), POLLIN, 0};
      int ready = ::poll(&fd, 1, static_cast<int>((deadline_ns - now) / 1'000'000 + 1));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return std::nullopt;
      char chunk[65536];
      ssize_t n = ::read(out_.get(), chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  void CloseStdin() { in_.Reset(); }

  // Waits for the exit; the watchdog kills a child that takes longer than `timeout`. Returns the
  // wait status; `usage` gets the child's resource usage.
  int Wait(Watchdog& watchdog, milliseconds timeout, rusage* usage = nullptr) {
    watchdog.Arm(pid_, timeout);
    int status = 0;
    rusage ignored{};
    while (::wait4(pid_, &status, 0, usage != nullptr ? usage : &ignored) < 0 && errno == EINTR) {
    }
    watchdog.Disarm();
    is_reaped_ = true;
    return status;
  }

 private:
  Child() = default;
  pid_t pid_ = -1;
  bool is_reaped_ = false;
  UniqueFd in_;
  UniqueFd out_;
  std::string buffer_;
};

// ---------------------------------------------------------------------------------------------
// The timed provider: an OpenAI-compatible server on 127.0.0.1 that serves queued replies and
// records when each request arrived and when each reply's last byte was written. A reply may
// stream "t=<NowNs()>;" content deltas stamped as they are written. Thread-safe; a thread per
// connection.
class TimedProvider {
 public:
  struct Reply {
    std::vector<std::string> head;  // SSE events before the timed chunks.
    int timed_chunks = 0;
    std::chrono::microseconds interval{0};
    std::vector<std::string> tail;  // SSE events after them.
  };
  struct Timing {
    uint64_t arrived_ns = 0;    // The whole request was read.
    uint64_t last_byte_ns = 0;  // The reply's last byte was written.
  };

  TimedProvider() {
    listen_ = ListenOnLoopback(64, &port_);
    if (!listen_.is_valid()) Fail("timed provider", std::strerror(errno));
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~TimedProvider() {
    {
      std::lock_guard lock(mutex_);
      is_stopping_ = true;
      for (int fd : connections_) ::shutdown(fd, SHUT_RDWR);
    }
    ::shutdown(listen_.get(), SHUT_RDWR);
    accept_thread_.join();
    for (std::thread& thread : threads_) thread.join();
  }

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

  void Enqueue(Reply reply) {
    std::lock_guard lock(mutex_);
    replies_.push_back(std::move(reply));
  }
  // The timings recorded so far, after waiting up to 5 s for `expected` of them: the client can
  // see a reply's end before this server has noted it.
  std::vector<Timing> TakeTimings(size_t expected) {
    std::unique_lock lock(mutex_);
    recorded_.wait_for(lock, std::chrono::seconds(5), [&] { return timings_.size() >= expected; });
    return std::exchange(timings_, {});
  }

 private:
  void AcceptLoop() {
    for (;;) {
      int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      std::lock_guard lock(mutex_);
      if (is_stopping_) {
        if (fd >= 0) ::close(fd);
        return;
      }
      if (fd < 0) continue;
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      connections_.push_back(fd);
      threads_.emplace_back([this, fd] {
        Serve(fd);
        std::lock_guard connections_lock(mutex_);
        std::erase(connections_, fd);
        ::close(fd);
      });
    }
  }

  static bool SendAll(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  static bool SendChunk(int fd, std::string_view event) {
    char size[32];
    int n = std::snprintf(size, sizeof(size), "%zx\r\n", event.size());
    std::string framed(size, static_cast<size_t>(n));
    framed.append(event).append("\r\n");
    return SendAll(fd, framed);
  }

  void Serve(int fd) {
    std::string buffer;
    char chunk[65536];
    for (;;) {
      size_t head_end;
      while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
        if (n <= 0) return;
        buffer.append(chunk, static_cast<size_t>(n));
      }
      size_t content_length = 0;
      std::string head = buffer.substr(0, head_end);
      for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (size_t at = head.find("content-length:"); at != std::string::npos) {
        content_length = std::strtoull(head.c_str() + at + 15, nullptr, 10);
      }
      while (buffer.size() < head_end + 4 + content_length) {
        ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
        if (n <= 0) return;
        buffer.append(chunk, static_cast<size_t>(n));
      }
      uint64_t arrived = NowNs();
      buffer.erase(0, head_end + 4 + content_length);
      Reply reply;
      {
        std::lock_guard lock(mutex_);
        if (!replies_.empty()) {
          reply = std::move(replies_.front());
          replies_.pop_front();
        }
      }
      if (reply.head.empty() && reply.tail.empty() && reply.timed_chunks == 0) {
        SendAll(fd,
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: "
                "47\r\n\r\n{\"error\":{\"message\":\"no reply queued (bench)\"}}");
        continue;
      }
      if (!SendAll(fd,
                   "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: "
                   "chunked\r\n\r\n")) {
        return;
      }
      for (const std::string& event : reply.head) {
        if (!SendChunk(fd, event)) return;
      }
      auto next = std::chrono::steady_clock::now();
      for (int i = 0; i < reply.timed_chunks; ++i) {
        next += reply.interval;
        std::this_thread::sleep_until(next);
        std::string event =
            "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,"
            "\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t=" +
            std::to_string(NowNs()) + ";\"},\"finish_reason\":null}]}\n\n";
        if (!SendChunk(fd, event)) return;
      }
      for (const std::string& event : reply.tail) {
        if (!SendChunk(fd, event)) return;
      }
      if (!SendAll(fd, "0\r\n\r\n")) return;
      uint64_t last_byte = NowNs();
      std::lock_guard lock(mutex_);
      timings_.push_back({arrived, last_byte});
      recorded_.notify_all();
    }
  }

  UniqueFd listen_;
  uint16_t port_ = 0;
  std::thread accept_thread_;
  std::mutex mutex_;
  // Guarded by mutex_.
  bool is_stopping_ = false;
  std::deque<Reply> replies_;
  std::vector<Timing> timings_;
  std::condition_variable recorded_;
  std::vector<int> connections_;
  std::vector<std::thread> threads_;
};

// A scripted turn's SSE events as a TimedProvider reply.
TimedProvider::Reply ReplyOf(const testing::FakeResponse& response) {
  return {response.body_chunks, 0, {}, {}};
}

// ---------------------------------------------------------------------------------------------
// The environment the children run in: a private HOME and XDG directories, a dummy key.

std::vector<std::string> ChildEnv(const std::string& home) {
  const char* path = std::getenv("PATH");
  return {"HOME=" + home,
          "XDG_CONFIG_HOME=" + home + "/config",
          "XDG_DATA_HOME=" + home + "/data",
          "XDG_RUNTIME_DIR=" + home,
          std::string("PATH=") + (path != nullptr ? path : "/usr/bin:/bin"),
          "OPENAI_API_KEY=bench"};
}

std::vector<std::string> ProviderArgs(const std::string& base_url) {
  return {"--provider", "openai", "--model", "gpt-4o", "--base-url", base_url};
}

// A workspace with a 200-line file for read_file.
std::string MakeWorkspace(const std::string& root) {
  std::string workspace = root + "/workspace";
  std::filesystem::create_directories(workspace);
  std::ofstream lines(workspace + "/lines.txt");
  for (int i = 1; i <= 200; ++i) lines << "line " << i << " of the benchmark file\n";
  return workspace;
}

// ---------------------------------------------------------------------------------------------
// (a) --version

struct VersionResult {
  uint64_t engine_ns = 0;
  uint64_t true_ns = 0;
};

VersionResult MeasureVersion(Watchdog& watchdog, const std::vector<std::string>& env, int runs) {
  auto spawn_to_exit = [&](const std::string& program, std::vector<std::string> argv) {
    std::vector<uint64_t> samples;
    for (int i = 0; i < runs; ++i) {
      uint64_t start = NowNs();
      Result<std::unique_ptr<Child>> child = Child::Start(program, argv, env, false);
      if (!child.ok()) Fail("--version", child.error().message());
      int status = (*child)->Wait(watchdog, milliseconds(10'000));
      samples.push_back(NowNs() - start);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        Fail("--version", program + " exited with status " + std::to_string(status));
      }
    }
    return Median(samples);
  };
  VersionResult result;
  result.true_ns = spawn_to_exit("/bin/true", {"true"});
  result.engine_ns = spawn_to_exit("/proc/self/exe", {"lapce-ai", "--version"});
  return result;
}

// ---------------------------------------------------------------------------------------------
// (b) acp: spawn → initialize, session/new, idle RSS

struct AcpStartResult {
  uint64_t initialize_ns = 0;
  uint64_t new_session_ns = 0;
  uint64_t idle_rss_bytes = 0;
};

// Reads lines until the response with `id`; returns it (Fail on timeout or an error answer).
Json AwaitResponse(Child& child, int id, const char* what,
                   const std::function<void(const Json&, uint64_t)>& on_notification = {}) {
  uint64_t deadline = NowNs() + 30'000'000'000ULL;
  for (;;) {
    std::optional<std::string> line = child.ReadLine(deadline);
    uint64_t now = NowNs();
    if (!line) Fail(what, "no answer from `lapce-ai acp` (it exited or took over 30 s)");
    Json message = Json::parse(*line, nullptr, false);
    if (!message.is_object()) Fail(what, "not JSON: " + *line);
    if (message.contains("id") && message["id"] == id && !message.contains("method")) {
      if (message.contains("error")) Fail(what, message["error"].dump());
      return message;
    }
    if (on_notification) on_notification(message, now);
  }
}

std::string Request(int id, const char* method, const Json& params) {
  return Json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}.dump();
}

const Json kInitialize = {
    {"protocolVersion", 1},
    {"clientCapabilities",
     {{"fs", {{"readTextFile", false}, {"writeTextFile", false}}}, {"terminal", false}}}};

AcpStartResult MeasureAcpStart(Watchdog& watchdog, const std::vector<std::string>& env,
                               const std::string& base_url, const std::string& workspace,
                               int runs) {
  std::vector<uint64_t> initialize, new_session, rss;
  std::vector<std::string> argv = {"lapce-ai", "acp"};
  for (const std::string& a : ProviderArgs(base_url)) argv.push_back(a);
  for (int i = 0; i < runs; ++i) {
    uint64_t start = NowNs();
    Result<std::unique_ptr<Child>> child = Child::Start("/proc/self/exe", argv, env, true);
    if (!child.ok()) Fail("acp", child.error().message());
    (*child)->WriteLine(Request(1, "initialize", kInitialize));
    AwaitResponse(**child, 1, "acp initialize");
    uint64_t initialized = NowNs();
    (*child)->WriteLine(
        Request(2, "session/new", {{"cwd", workspace}, {"mcpServers", Json::array()}}));
    AwaitResponse(**child, 2, "acp session/new");
    uint64_t created = NowNs();
    initialize.push_back(initialized - start);
    new_session.push_back(created - initialized);
    rss.push_back(ProcStatusBytes((*child)->pid(), "VmRSS:"));
    (*child)->CloseStdin();
    (*child)->Wait(watchdog, milliseconds(10'000));
  }
  return {Median(initialize), Median(new_session), Median(rss)};
}

// ---------------------------------------------------------------------------------------------
// (c) a one-shot run

struct RunResult {
  uint64_t wall_ns = 0;
  uint64_t peak_rss_bytes = 0;  // Median of the runs' ru_maxrss.
  size_t min_requests = 0;
  size_t max_requests = 0;
};

RunResult MeasureRun(Watchdog& watchdog, const std::vector<std::string>& env,
                     testing::FakeProviderServer& fake, const std::string& workspace, int runs) {
  fake.SetDefault(
      testing::OpenAiToolCall("call_1", "attempt_completion", R"({"result":"Hello!"})", "Hello."));
  std::vector<std::string> argv = {"lapce-ai", "run", "say hello", "--yes", "--cwd", workspace};
  for (const std::string& a : ProviderArgs(fake.base_url() + "/v1")) argv.push_back(a);
  std::vector<uint64_t> wall, peak;
  RunResult result;
  result.min_requests = SIZE_MAX;
  for (int i = 0; i < runs; ++i) {
    size_t before = fake.requests().size();
    uint64_t start = NowNs();
    Result<std::unique_ptr<Child>> child = Child::Start("/proc/self/exe", argv, env, false);
    if (!child.ok()) Fail("run", child.error().message());
    rusage usage{};
    int status = (*child)->Wait(watchdog, milliseconds(30'000), &usage);
    wall.push_back(NowNs() - start);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      Fail("run",
           "`lapce-ai run \"say hello\" --yes` exited with status " + std::to_string(status));
    }
    peak.push_back(static_cast<uint64_t>(usage.ru_maxrss) * 1024);
    size_t requests = fake.requests().size() - before;
    result.min_requests = std::min(result.min_requests, requests);
    result.max_requests = std::max(result.max_requests, requests);
  }
  result.wall_ns = Median(wall);
  result.peak_rss_bytes = Median(peak);
  return result;
}

// ---------------------------------------------------------------------------------------------
// In-process engines for (d) and (f).

// Approves nothing interactively (everything is auto-approved) and notes nothing.
class QuietClient : public agent::SessionClient {
 public:
  void OnUpdate(const std::string&, const agent::SessionUpdate&, std::string_view) override {}
  agent::PermissionReply RequestPermission(const std::string&, const agent::PermissionRequest&,
                                           const std::atomic<bool>&) override {
    return {agent::PermissionOutcome::kAllowOnce, {}};
  }
};

// `store_path` empty: sessions are not persisted (the engine without its store, for comparison).
std::unique_ptr<server::AgentStack> InProcessStack(const std::string& base_url,
                                                   const std::string& store_path) {
  static const char* const kEnviron[] = {"OPENAI_API_KEY=bench", nullptr};
  llm::ProfileInfo profile;
  profile.name = "bench";
  profile.provider = "openai";
  profile.model = "gpt-4o";
  profile.base_url = base_url;
  llm::PoolOptions options;
  options.environ = kEnviron;
  options.max_attempts = 1;
  Result<std::unique_ptr<llm::ProviderPool>> pool =
      llm::ProviderPool::CreateAdHoc(Config{}, profile, nullptr, options);
  if (!pool.ok()) Fail("provider pool", pool.error().message());
  agent::AgentSettings settings;
  server::ApproveEverything(settings.approvals);
  settings.max_requests_per_turn = 10'000;
  if (store_path.empty()) {
    auto stack = std::make_unique<server::AgentStack>();
    stack->pool = std::move(*pool);
    stack->engine = std::make_unique<agent::Engine>(*stack->pool, nullptr, std::move(settings));
    return stack;
  }
  Result<std::unique_ptr<server::AgentStack>> stack =
      server::MakeAgentStack(std::move(*pool), std::move(settings), store_path);
  if (!stack.ok()) Fail("agent engine", stack.error().message());
  return std::move(*stack);
}

// (d) Engine overhead per tool turn: sessions whose model calls read_file `turns` times (each a
// different line, so no call repeats) and then completes.
// `persist` false: the same without the session store.
Percentiles MeasureToolTurns(const std::string& root, const std::string& workspace, int sessions,
                             int turns, bool persist) {
  TimedProvider provider;
  std::unique_ptr<server::AgentStack> stack =
      InProcessStack(provider.base_url(), persist ? root + "/turns.db" : "");
  std::vector<uint64_t> gaps;
  QuietClient client;
  for (int s = 0; s < sessions; ++s) {
    for (int t = 0; t < turns; ++t) {
      std::string range = std::to_string(t % 200 + 1) + "-" + std::to_string(t % 200 + 1);
      provider.Enqueue(ReplyOf(testing::OpenAiToolCall(
          "call_" + std::to_string(t), "read_file",
          R"({"files":[{"path":"lines.txt","line_ranges":[")" + range + R"("]}]})")));
    }
    provider.Enqueue(ReplyOf(
        testing::OpenAiToolCall("call_done", "attempt_completion", R"({"result":"Read."})")));
    agent::SessionOptions options;
    options.workspace = workspace;
    Result<std::shared_ptr<agent::Session>> session = stack->engine->NewSession(options);
    if (!session.ok()) Fail("tool turns", session.error().message());
    Result<agent::StopReason> stop = (*session)->Prompt("read the file line by line", client);
    if (!stop.ok()) Fail("tool turns", stop.error().message());
    std::vector<TimedProvider::Timing> timings = provider.TakeTimings(turns + 1);
    if (timings.size() != static_cast<size_t>(turns) + 1) {
      Fail("tool turns", "expected " + std::to_string(turns + 1) + " requests, the provider saw " +
                             std::to_string(timings.size()));
    }
    for (size_t i = 0; i + 1 < timings.size(); ++i) {
      gaps.push_back(timings[i + 1].arrived_ns - timings[i].last_byte_ns);
    }
    stack->engine->Close((*session)->id());
  }
  return Summarize(gaps);
}

// ---------------------------------------------------------------------------------------------
// (e) chunk → ACP client, beside the same hops without the engine and a line through `cat`

struct ChunkResult {
  Percentiles engine;
  Percentiles relay;
  Percentiles cat;
  size_t samples = 0;
  uint64_t task_peak_rss_bytes = 0;
};

// "t=<ns>;" stamps in `text`, each turned into now - ns.
void CollectStamps(std::string_view text, uint64_t now, std::vector<uint64_t>& out) {
  size_t at = 0;
  while ((at = text.find("t=", at)) != std::string_view::npos) {
    uint64_t stamp = 0;
    auto [end, error] = std::from_chars(text.data() + at + 2, text.data() + text.size(), stamp);
    if (error == std::errc() && stamp <= now) out.push_back(now - stamp);
    at = static_cast<size_t>(end - text.data());
  }
}

// The chunk's hops without the engine: stamped lines, one every `interval`, sent over loopback
// TCP to a child process that copies whatever it receives to a pipe this process reads. Each
// line's latency is its stamp to the read that completes it.
std::vector<uint64_t> RelayLatencies(int lines, std::chrono::microseconds interval) {
  uint16_t port = 0;
  UniqueFd listener = ListenOnLoopback(1, &port);
  if (!listener.is_valid()) {
    Fail("relay baseline", std::string("loopback listener: ") + std::strerror(errno));
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) Fail("relay baseline", std::strerror(errno));
  UniqueFd read_end(ends[0]);
  UniqueFd write_end(ends[1]);
  pid_t child = ::fork();
  if (child < 0) Fail("relay baseline", std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    // Async-signal-safe calls only: this process has other threads.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      ::_exit(1);
    }
    char buffer[4096];
    for (;;) {
      ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) ::_exit(0);
      for (ssize_t done = 0; done < n;) {
        ssize_t written = ::write(write_end.get(), buffer + done, static_cast<size_t>(n - done));
        if (written <= 0) ::_exit(1);
        done += written;
      }
    }
  }
  write_end.Reset();
  pollfd incoming{listener.get(), POLLIN, 0};
  UniqueFd connection;
  if (::poll(&incoming, 1, 5000) == 1) {
    connection.Reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }
  if (!connection.is_valid()) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    Fail("relay baseline", "the relay process did not connect");
  }
  int one = 1;
  ::setsockopt(connection.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::thread sender([&] {
    auto next = std::chrono::steady_clock::now();
    for (int i = 0; i < lines; ++i) {
      next += interval;
      std::this_thread::sleep_until(next);
      std::string line = "t=" + std::to_string(NowNs()) + ";\n";
      if (::send(connection.get(), line.data(), line.size(), MSG_NOSIGNAL) < 0) break;
    }
    ::shutdown(connection.get(), SHUT_WR);
  });
  std::vector<uint64_t> latencies;
  std::string pending;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(read_end.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    uint64_t now = NowNs();
    pending.append(buffer, static_cast<size_t>(n));
    size_t complete = pending.rfind('\n');
    if (complete == std::string::npos) continue;
    CollectStamps(std::string_view(pending).substr(0, complete), now, latencies);
    pending.erase(0, complete + 1);
  }
  sender.join();
  ::waitpid(child, nullptr, 0);
  if (latencies.size() != static_cast<size_t>(lines)) {
    Fail("relay baseline",
         "read " + std::to_string(latencies.size()) + " of " + std::to_string(lines) + " lines");
  }
  return latencies;
}

ChunkResult MeasureChunks(Watchdog& watchdog, const std::vector<std::string>& env,
                          const std::string& workspace, int chunks) {
  ChunkResult result;
  TimedProvider provider;
  TimedProvider::Reply reply;
  testing::FakeResponse completion =
      testing::OpenAiToolCall("call_1", "attempt_completion", R"({"result":"Streamed."})");
  reply.head = {completion.body_chunks.front()};
  reply.timed_chunks = chunks;
  reply.interval = std::chrono::microseconds(1000);
  reply.tail.assign(completion.body_chunks.begin() + 1, completion.body_chunks.end());
  provider.Enqueue(reply);

  std::vector<std::string> argv = {"lapce-ai", "acp", "--yes"};
  for (const std::string& a : ProviderArgs(provider.base_url())) argv.push_back(a);
  Result<std::unique_ptr<Child>> child = Child::Start("/proc/self/exe", argv, env, true);
  if (!child.ok()) Fail("chunk latency", child.error().message());
  (*child)->WriteLine(Request(1, "initialize", kInitialize));
  AwaitResponse(**child, 1, "acp initialize");
  (*child)->WriteLine(
      Request(2, "session/new", {{"cwd", workspace}, {"mcpServers", Json::array()}}));
  Json created = AwaitResponse(**child, 2, "acp session/new");
  std::string session_id = created["result"].value("sessionId", "");
  (*child)->WriteLine(
      Request(3, "session/prompt",
              {{"sessionId", session_id},
               {"prompt", Json::array({{{"type", "text"}, {"text", "stream something"}}})}}));
  std::vector<uint64_t> latencies;
  AwaitResponse(**child, 3, "acp session/prompt", [&](const Json& message, uint64_t now) {
    if (message.value("method", "") != "session/update") return;
    const Json& update = message["params"]["update"];
    if (update.value("sessionUpdate", "") != "agent_message_chunk") return;
    CollectStamps(update["content"].value("text", ""), now, latencies);
  });
  result.task_peak_rss_bytes = ProcStatusBytes((*child)->pid(), "VmHWM:");
  (*child)->CloseStdin();
  (*child)->Wait(watchdog, milliseconds(10'000));
  result.samples = latencies.size();
  if (latencies.size() < static_cast<size_t>(chunks)) {
    Fail("chunk latency", "the ACP client saw " + std::to_string(latencies.size()) + " of " +
                              std::to_string(chunks) + " chunks");
  }
  result.engine = Summarize(latencies);
  std::vector<uint64_t> relayed = RelayLatencies(chunks, reply.interval);
  result.relay = Summarize(relayed);

  // Baseline: a stamped line through `cat` and back, at the same pace.
  Result<std::unique_ptr<Child>> cat = Child::Start("/bin/cat", {"cat"}, env, true);
  if (!cat.ok()) Fail("cat baseline", cat.error().message());
  std::vector<uint64_t> round_trips;
  for (int i = 0; i < chunks; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(1000));
    (*cat)->WriteLine("t=" + std::to_string(NowNs()) + ";");
    std::optional<std::string> line = (*cat)->ReadLine(NowNs() + 5'000'000'000ULL);
    if (!line) Fail("cat baseline", "no echo");
    CollectStamps(*line, NowNs(), round_trips);
  }
  (*cat)->CloseStdin();
  (*cat)->Wait(watchdog, milliseconds(5000));
  result.cat = Summarize(round_trips);
  return result;
}

// ---------------------------------------------------------------------------------------------
// (f) concurrent sessions in one process

struct ConcurrentResult {
  int completed = 0;
  uint64_t wall_ns = 0;
  size_t requests = 0;
  uint64_t rss_growth_bytes = 0;
};

ConcurrentResult MeasureConcurrent(testing::FakeProviderServer& fake, const std::string& root,
                                   const std::string& workspace, int count) {
  fake.SetDefault(
      testing::OpenAiToolCall("call_1", "attempt_completion", R"({"result":"Hello!"})", "Hello."));
  std::unique_ptr<server::AgentStack> stack =
      InProcessStack(fake.base_url() + "/v1", root + "/concurrent.db");
  uint64_t rss_before = ProcStatusBytes(0, "VmRSS:");
  size_t requests_before = fake.requests().size();
  std::atomic<int> completed{0};
  std::atomic<uint64_t> rss_peak{0};
  uint64_t start = NowNs();
  std::vector<std::thread> threads;
  for (int i = 0; i < count; ++i) {
    threads.emplace_back([&] {
      QuietClient client;
      agent::SessionOptions options;
      options.workspace = workspace;
      Result<std::shared_ptr<agent::Session>> session = stack->engine->NewSession(options);
      if (!session.ok()) return;
      Result<agent::StopReason> stop = (*session)->Prompt("say hello", client);
      uint64_t rss = ProcStatusBytes(0, "VmRSS:");
      uint64_t seen = rss_peak.load();
      while (rss > seen && !rss_peak.compare_exchange_weak(seen, rss)) {
      }
      if (stop.ok() && *stop == agent::StopReason::kEndTurn) completed.fetch_add(1);
    });
  }
  for (std::thread& thread : threads) thread.join();
  ConcurrentResult result;
  result.wall_ns = NowNs() - start;
  result.completed = completed.load();
  result.requests = fake.requests().size() - requests_before;
  result.rss_growth_bytes = rss_peak.load() > rss_before ? rss_peak.load() - rss_before : 0;
  return result;
}

// ---------------------------------------------------------------------------------------------

int BenchAgent(const BenchAgentFlags& flags) {
  ::signal(SIGPIPE, SIG_IGN);
  const bool quick = flags.quick;
  auto progress = [&](const char* what) {
    if (!flags.json) std::fprintf(stderr, "  measuring %s...\n", what);
  };
  TempDir dir;
  const std::string home = dir.path() + "/home";
  std::filesystem::create_directories(home);
  const std::vector<std::string> env = ChildEnv(home);
  const std::string workspace = MakeWorkspace(dir.path());
  Result<std::unique_ptr<testing::FakeProviderServer>> fake = testing::FakeProviderServer::Start();
  if (!fake.ok()) Fail("fake provider", fake.error().message());
  Watchdog watchdog;

  progress("lapce-ai --version");
  VersionResult version = MeasureVersion(watchdog, env, quick ? 20 : 100);
  progress("lapce-ai acp: initialize, session/new, idle RSS");
  AcpStartResult acp =
      MeasureAcpStart(watchdog, env, (*fake)->base_url() + "/v1", workspace, quick ? 5 : 20);
  progress("lapce-ai run \"say hello\" --yes");
  RunResult run = MeasureRun(watchdog, env, **fake, workspace, quick ? 5 : 20);
  progress("engine overhead per tool turn");
  Percentiles turns = MeasureToolTurns(dir.path(), workspace, quick ? 3 : 10, 20, true);
  Percentiles turns_unstored = MeasureToolTurns(dir.path(), workspace, quick ? 3 : 10, 20, false);
  progress("provider chunk -> ACP client");
  ChunkResult chunks = MeasureChunks(watchdog, env, workspace, quick ? 300 : 2000);
  progress("100 concurrent sessions");
  ConcurrentResult concurrent = MeasureConcurrent(**fake, dir.path(), workspace, 100);

  bool ok = run.min_requests == 1 && run.max_requests == 1 && concurrent.completed == 100 &&
            concurrent.requests == 100;
  if (flags.json) {
    Json out = {
        {"version_ms", Ms(version.engine_ns)},
        {"true_spawn_ms", Ms(version.true_ns)},
        {"acp_initialize_ms", Ms(acp.initialize_ns)},
        {"acp_session_new_ms", Ms(acp.new_session_ns)},
        {"acp_idle_rss_bytes", acp.idle_rss_bytes},
        {"run_wall_ms", Ms(run.wall_ns)},
        {"run_peak_rss_bytes", run.peak_rss_bytes},
        {"run_requests_min", run.min_requests},
        {"run_requests_max", run.max_requests},
        {"tool_turn_overhead_p50_us", static_cast<double>(turns.p50) / 1000},
        {"tool_turn_overhead_p99_us", static_cast<double>(turns.p99) / 1000},
        {"tool_turn_overhead_unstored_p50_us", static_cast<double>(turns_unstored.p50) / 1000},
        {"chunk_to_acp_p50_us", static_cast<double>(chunks.engine.p50) / 1000},
        {"chunk_to_acp_p99_us", static_cast<double>(chunks.engine.p99) / 1000},
        {"relay_p50_us", static_cast<double>(chunks.relay.p50) / 1000},
        {"relay_p99_us", static_cast<double>(chunks.relay.p99) / 1000},
        {"cat_round_trip_p50_us", static_cast<double>(chunks.cat.p50) / 1000},
        {"cat_round_trip_p99_us", static_cast<double>(chunks.cat.p99) / 1000},
        {"chunk_samples", chunks.samples},
        {"task_peak_rss_bytes", chunks.task_peak_rss_bytes},
        {"concurrent_sessions_completed", concurrent.completed},
        {"concurrent_sessions_ms", Ms(concurrent.wall_ns)},
        {"concurrent_sessions_rss_growth_bytes", concurrent.rss_growth_bytes},
        {"codex_cli",
         {{"version_ms", 15},
          {"initialize_ms", 158},
          {"session_new_ms", 45},
          {"idle_rss_mb", 114},
          {"one_shot_ms", 374},
          {"one_shot_peak_mb", 138}}}};
    std::printf("%s\n", out.dump().c_str());
    return ok ? 0 : 1;
  }
  char a[64], b[160];
  auto ms = [](uint64_t ns) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.2f ms", Ms(ns));
    return std::string(text);
  };
  auto us = [](uint64_t ns) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.1f us", static_cast<double>(ns) / 1000);
    return std::string(text);
  };
  auto mb = [](uint64_t bytes) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.1f MB", Mb(bytes));
    return std::string(text);
  };
  std::printf(
      "lapce-ai bench agent%s: fake providers on loopback that answer at once; Codex CLI "
      "figures are the issue's measurements (same kind of fake), not re-run here\n",
      quick ? " --quick" : "");
  PrintRow("--version, spawn to exit (median)", ms(version.engine_ns),
           "target <= 5 ms; /bin/true " + ms(version.true_ns) + "; Codex CLI 15 ms");
  PrintRow("acp spawn -> initialize answer", ms(acp.initialize_ns),
           "target <= 20 ms; Codex CLI 158 ms");
  PrintRow("acp session/new", ms(acp.new_session_ns), "target <= 5 ms; Codex CLI 45 ms");
  PrintRow("acp idle RSS after session/new", mb(acp.idle_rss_bytes),
           "target <= 15 MB; Codex CLI 114 MB");
  PrintRow("run \"say hello\" --yes, wall (median)", ms(run.wall_ns),
           "target <= 50 ms; Codex CLI 374 ms");
  PrintRow("run \"say hello\" --yes, peak RSS", mb(run.peak_rss_bytes),
           "target <= 30 MB; Codex CLI 138 MB");
  std::snprintf(a, sizeof(a), "%zu..%zu", run.min_requests, run.max_requests);
  PrintRow("run \"say hello\", model requests per run", a, "target exactly 1");
  PrintRow("engine overhead per tool turn p50", us(turns.p50),
           "target <= 1 ms (last reply byte -> next request, read_file)");
  PrintRow("engine overhead per tool turn p99", us(turns.p99),
           "without the session store p50 " + us(turns_unstored.p50));
  PrintRow("provider chunk -> ACP client p50", us(chunks.engine.p50),
           "same hops without the engine p50 " + us(chunks.relay.p50) +
               "; a line through `cat` and back p50 " + us(chunks.cat.p50));
  PrintRow("provider chunk -> ACP client p99", us(chunks.engine.p99),
           "target <= 100 us; same hops without the engine p99 " + us(chunks.relay.p99) +
               "; `cat` p99 " + us(chunks.cat.p99));
  PrintRow("acp peak RSS during a streamed task", mb(chunks.task_peak_rss_bytes),
           "target <= 40 MB");
  std::snprintf(a, sizeof(a), "%d/100", concurrent.completed);
  std::snprintf(b, sizeof(b), "in %.1f ms, %zu model requests; this process grew %.1f MB",
                Ms(concurrent.wall_ns), concurrent.requests, Mb(concurrent.rss_growth_bytes));
  PrintRow("concurrent sessions in one process", a, b);
  if (!ok)
    std::fprintf(stderr,
                 "lapce-ai bench agent: a run made other than one request, or a "
                 "concurrent session did not complete\n");
  return ok ? 0 : 1;
}

}  // namespace

void AddBenchAgentCommand(CLI::App& bench, CommandRun& run) {
  auto flags = std::make_shared<BenchAgentFlags>();
  CLI::App* cmd = bench.add_subcommand(
      "agent",
      "Agent: --version and ACP start-up, a one-shot run, engine overhead per tool turn, "
      "chunk latency to an ACP client and 100 concurrent sessions, with baselines");
  cmd->add_flag("--json", flags->json, "Print one JSON object instead of a table");
  cmd->add_flag("--quick", flags->quick, "Fewer samples (for CI)");
  cmd->callback([&run, flags] { run = [flags](const Config&) { return BenchAgent(*flags); }; });
}

}  // namespace lai::cli
