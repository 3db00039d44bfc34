// `lapce-ai bench providers`: (a) SSE + JSON decoding throughput of the real adapter parsers on
// large generated OpenAI and Anthropic streams, beside a naive decoder; (b) the latency the engine
// adds between a provider chunk leaving a loopback HTTP server and its frame reaching an IPC
// client, beside a plain loopback HTTP read of the same chunks; (c) the same with 200 concurrent
// streams, whose chunks arrive spread over each interval as independent streams' do, and again
// with every stream's chunk arriving at the same instant; (d) resident memory per idle open
// stream. Everything runs in this process: a small
// chunk server (below) plays the provider, a real ipc::Server with the CompletionService and a
// real ProviderPool/HTTP client form the engine, and ipc::Clients read the frames.
#include "cli/bench_providers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "cli/bench_util.h"
#include "cli/server_process.h"
#include "http/client.h"
#include "ipc/client.h"
#include "ipc/server.h"
#include "ipc/wait.h"
#include "llm/bench_decode.h"
#include "llm/pool.h"
#include "server/completion_service.h"
#include "server/services.h"

namespace lai::cli {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

struct BenchProvidersFlags {
  bool json = false;
  bool quick = false;
};

[[noreturn]] void Fail(const std::string& what, const std::string& message) {
  std::fprintf(stderr, "lapce-ai bench providers: %s: %s\n", what.c_str(), message.c_str());
  std::exit(1);
}

uint64_t SelfRssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// The chunk server: plays an OpenAI-compatible provider on 127.0.0.1. Each streamed chunk carries
// the NowNs() at which it is written ("t=<ns>;"), so a reader computes the chunk's latency.

class ChunkServer {
 public:
  // Each response sends `chunks` chunks, one per `interval`. Responses keep a common beat: the
  // n-th response of a script sends at epoch + k * interval + its phase, where the phase is
  // (n % streams) * interval / streams when `spread` (independent streams, whose chunks arrive
  // at unrelated moments) and 0 otherwise (a burst: every stream's chunk at the same instant).
  struct Script {
    int chunks = 0;  // Timed chunks per response; 0 = idle (headers, then nothing).
    std::chrono::microseconds interval{1000};
    int streams = 1;
    bool spread = true;
  };

  ChunkServer() {
    listener_ = ListenOnLoopback(1024, &port_);
    if (!listener_.is_valid()) Fail("chunk server", "cannot listen on 127.0.0.1");
    acceptor_ = std::thread([this] { Accept(); });
  }

  ~ChunkServer() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    stop_.notify_all();
    ::shutdown(listener_.get(), SHUT_RDWR);
    acceptor_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

  void SetScript(Script script) {
    std::lock_guard lock(mutex_);
    script_ = script;
    epoch_ = std::chrono::steady_clock::now();
    responses_ = 0;
  }
  // Releases the idle responses: they finish at once.
  void ReleaseIdle() {
    {
      std::lock_guard lock(mutex_);
      ++generation_;
    }
    stop_.notify_all();
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  uint16_t port() const { return port_; }
  int responding() const { return responding_.load(); }

 private:
  void Accept() {
    for (;;) {
      int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      std::lock_guard lock(mutex_);
      if (stopping_) {
        ::close(fd);
        return;
      }
      open_fds_.push_back(fd);
      threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  static bool WriteAll(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  static std::string Chunk(std::string_view payload) {
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", payload.size());
    return size + std::string(payload) + "\r\n";
  }

  static std::string Sse(std::string_view content) {
    return "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":"
           "1732665600,\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" +
           std::string(content) + "\"},\"finish_reason\":null}]}\n\n";
  }

  // One connection: requests one after another (keep-alive), each answered per the script.
  void Serve(int fd) {
    std::string buffer;
    char read_buffer[16384];
    for (;;) {
      size_t header_end;
      while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::recv(fd, read_buffer, sizeof(read_buffer), 0);
        if (n <= 0) return Close(fd);
        buffer.append(read_buffer, static_cast<size_t>(n));
      }
      size_t body_bytes = 0;
      std::string head = buffer.substr(0, header_end);
      for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (size_t at = head.find("content-length:"); at != std::string::npos) {
        body_bytes = std::strtoull(head.c_str() + at + 15, nullptr, 10);
      }
      while (buffer.size() < header_end + 4 + body_bytes) {
        ssize_t n = ::recv(fd, read_buffer, sizeof(read_buffer), 0);
        if (n <= 0) return Close(fd);
        buffer.append(read_buffer, static_cast<size_t>(n));
      }
      buffer.erase(0, header_end + 4 + body_bytes);
      Script script;
      uint64_t generation;
      std::chrono::steady_clock::time_point next;
      {
        std::lock_guard lock(mutex_);
        script = script_;
        generation = generation_;
        if (script.chunks > 0) {
          // The first beat after now, plus this response's phase. With many streams, not before
          // the fourth beat: by then every stream has started, so what is measured is streams in
          // flight, not streams being opened while others send.
          auto beats = (std::chrono::steady_clock::now() - epoch_) / script.interval + 1;
          if (script.streams > 1) beats = std::max<decltype(beats)>(beats, 4);
          next = epoch_ + beats * script.interval;
          if (script.spread) next += responses_ % script.streams * script.interval / script.streams;
          ++responses_;
        }
      }
      if (!WriteAll(fd,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n")) {
        return Close(fd);
      }
      ++responding_;
      if (script.chunks == 0) {
        std::unique_lock lock(mutex_);
        stop_.wait(lock, [&] { return stopping_ || generation_ != generation; });
        if (stopping_) return Close(fd);
      } else {
        for (int i = 0; i < script.chunks; ++i, next += script.interval) {
          {
            std::unique_lock lock(mutex_);
            if (stop_.wait_until(lock, next, [&] { return stopping_; })) return Close(fd);
          }
          if (!WriteAll(fd, Chunk(Sse("t=" + std::to_string(ipc::NowNs()) + ";"))))
            return Close(fd);
        }
      }
      --responding_;
      std::string tail =
          "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"choices\":[{"
          "\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
      if (!WriteAll(fd, Chunk(tail) + "0\r\n\r\n")) return Close(fd);
    }
  }

  void Close(int fd) {
    std::lock_guard lock(mutex_);
    open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
    ::close(fd);
  }

  UniqueFd listener_;
  uint16_t port_ = 0;
  std::thread acceptor_;
  std::atomic<int> responding_{0};
  std::mutex mutex_;
  std::condition_variable stop_;
  bool stopping_ = false;                        // Guarded by mutex_.
  uint64_t generation_ = 0;                      // Guarded by mutex_.
  Script script_;                                // Guarded by mutex_.
  std::chrono::steady_clock::time_point epoch_;  // Guarded by mutex_.
  int responses_ = 0;                 // Responses started under script_; guarded by mutex_.
  std::vector<int> open_fds_;         // Guarded by mutex_.
  std::vector<std::thread> threads_;  // Guarded by mutex_.
};

// Latency of each "t=<ns>;" marker in `bytes`, at `now`.
void CollectMarkers(std::string_view bytes, uint64_t now, std::vector<uint64_t>& samples) {
  for (size_t at = bytes.find("t="); at != std::string_view::npos; at = bytes.find("t=", at + 2)) {
    uint64_t sent = 0;
    auto [end, ec] = std::from_chars(bytes.data() + at + 2, bytes.data() + bytes.size(), sent);
    if (ec == std::errc() && end < bytes.data() + bytes.size() && *end == ';' && sent <= now) {
      samples.push_back(now - sent);
    }
  }
}

// The baseline reader: a plain loopback HTTP request, read() as the bytes come.
void RawHttpStream(uint16_t port, std::vector<uint64_t>& samples) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    Fail("baseline", "connect to the chunk server");
  }
  std::string body =
      R"({"model":"bench","stream":true,"messages":[{"role":"user","content":"go"}]})";
  std::string request =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) < 0) Fail("baseline", "send");
  char buffer[16384];
  std::string seen;
  for (;;) {
    ssize_t n = ::recv(fd.get(), buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    uint64_t now = ipc::NowNs();
    std::string_view bytes(buffer, static_cast<size_t>(n));
    CollectMarkers(bytes, now, samples);
    seen.append(bytes);
    if (seen.size() > 64 && seen.find("0\r\n\r\n", seen.size() - 64) != std::string::npos) break;
    if (seen.size() > 4096) seen.erase(0, seen.size() - 64);
  }
}

std::string CompleteRequest() {
  return R"({"messages":[{"role":"user","content":"go"}],"stream":true})";
}

// The engine path: one completion over IPC; the latency of each text frame at its arrival.
void EngineStream(const std::string& socket, std::vector<uint64_t>& samples) {
  ipc::ClientOptions options;
  options.socket_path = socket;
  options.request_timeout = milliseconds(30'000);
  ipc::Client client(options);
  std::string request = CompleteRequest();
  Result<uint64_t> id = client.Send(server::ToWire(server::ServiceType::kComplete),
                                    std::as_bytes(std::span(request)));
  if (!id.ok()) Fail("complete", id.error().message());
  for (;;) {
    Result<ipc::Response> r = client.Next(*id);
    if (!r.ok()) Fail("complete", r.error().message());
    uint64_t now = ipc::NowNs();
    CollectMarkers({reinterpret_cast<const char*>(r->payload.data()), r->payload.size()}, now,
                   samples);
    if (r->is_final) break;
  }
}

// Runs `streams` concurrent copies of `one` (each on its own thread) and merges their samples.
template <typename Fn>
std::vector<uint64_t> Concurrent(int streams, Fn one) {
  std::vector<std::vector<uint64_t>> per(static_cast<size_t>(streams));
  std::vector<std::thread> threads;
  for (int i = 0; i < streams; ++i)
    threads.emplace_back([&, i] { one(per[static_cast<size_t>(i)]); });
  for (std::thread& t : threads) t.join();
  std::vector<uint64_t> all;
  for (auto& p : per) all.insert(all.end(), p.begin(), p.end());
  return all;
}

// The engine under test: HTTP client + pool + IPC server + completion service, in this process.
struct Engine {
  std::unique_ptr<llm::ProviderPool> pool;
  std::unique_ptr<ipc::Server> server;
  std::unique_ptr<server::CompletionService> service;
  std::string socket;

  Engine(const std::string& dir, const std::string& base_url) {
    http::ClientOptions http_options;
    http_options.max_connections_per_host = 1024;  // 200 concurrent HTTP/1.1 streams.
    http_options.max_total_connections = 2048;
    Result<std::unique_ptr<http::Client>> http = http::Client::Create(http_options);
    if (!http.ok()) Fail("http client", http.error().message());
    llm::ProfileInfo profile;
    profile.name = "bench";
    profile.provider = "vllm";
    profile.model = "bench";
    profile.base_url = base_url;
    Result<std::unique_ptr<llm::ProviderPool>> created = llm::ProviderPool::CreateAdHoc(
        Config{}, profile, std::shared_ptr<http::Client>(std::move(*http)));
    if (!created.ok()) Fail("provider pool", created.error().message());
    pool = std::move(*created);
    socket = dir + "/bench.sock";
    ipc::ServerOptions options;
    options.socket_path = socket;
    server = std::make_unique<ipc::Server>(options);
    service = std::make_unique<server::CompletionService>(pool.get(), "");
    service->Register(*server);
    if (Status s = server->Start(); !s.ok()) Fail("ipc server", s.error().message());
  }
  ~Engine() {
    server->Shutdown();
    service.reset();
    server.reset();
    pool.reset();
  }
};

struct LatencyResult {
  Percentiles engine;
  Percentiles baseline;
  size_t samples = 0;
};

LatencyResult MeasureLatency(ChunkServer& chunks, const std::string& socket, int streams,
                             int chunks_per_stream, std::chrono::microseconds interval,
                             bool spread = true) {
  const ChunkServer::Script script{chunks_per_stream, interval, streams, spread};
  LatencyResult result;
  chunks.SetScript(script);
  std::vector<uint64_t> baseline =
      Concurrent(streams, [&](std::vector<uint64_t>& s) { RawHttpStream(chunks.port(), s); });
  chunks.SetScript(script);
  std::vector<uint64_t> engine =
      Concurrent(streams, [&](std::vector<uint64_t>& s) { EngineStream(socket, s); });
  size_t expected = static_cast<size_t>(streams) * static_cast<size_t>(chunks_per_stream);
  if (engine.size() != expected || baseline.size() != expected) {
    Fail("latency", "expected " + std::to_string(expected) + " chunks, the engine delivered " +
                        std::to_string(engine.size()) + " and the baseline read " +
                        std::to_string(baseline.size()));
  }
  result.samples = engine.size();
  result.engine = Summarize(engine);
  result.baseline = Summarize(baseline);
  return result;
}

// Bytes of resident memory per idle open stream: `streams` completions whose provider sent its
// headers and then nothing, beside the same number of plain idle HTTP connections to the same
// server. Both include the chunk server's thread per connection, which lives in this process
// too: an upper bound. (Subtracting the plain connections' cost is no better: thread stacks the
// first measurement touched may be reused by the second.)
struct IdleResult {
  double engine_per_stream = 0;
  double baseline_per_stream = 0;
};

IdleResult MeasureIdle(ChunkServer& chunks, Engine& engine, int streams) {
  chunks.SetScript({.chunks = 0});
  auto settle = [] { std::this_thread::sleep_for(milliseconds(200)); };
  auto wait_responding = [&](int count) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (chunks.responding() < count) {
      if (std::chrono::steady_clock::now() > deadline)
        Fail("idle streams", "responses never started");
      std::this_thread::sleep_for(milliseconds(5));
    }
  };
  IdleResult result;
  // Baseline: plain idle HTTP connections.
  settle();
  uint64_t before = SelfRssBytes();
  std::vector<UniqueFd> raw;
  std::string body = R"({"model":"bench"})";
  std::string request =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  for (int i = 0; i < streams; ++i) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(chunks.port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) < 0) {
      Fail("idle baseline", "connect");
    }
    raw.push_back(std::move(fd));
  }
  wait_responding(streams);
  settle();
  result.baseline_per_stream =
      (static_cast<double>(SelfRssBytes()) - static_cast<double>(before)) / streams;
  chunks.ReleaseIdle();
  raw.clear();
  wait_responding(0);
  settle();

  // The engine: completions over one IPC connection, left open.
  before = SelfRssBytes();
  ipc::ClientOptions options;
  options.socket_path = engine.socket;
  ipc::Client client(options);
  std::string complete = CompleteRequest();
  std::vector<uint64_t> ids;
  for (int i = 0; i < streams; ++i) {
    Result<uint64_t> id = client.Send(server::ToWire(server::ServiceType::kComplete),
                                      std::as_bytes(std::span(complete)));
    if (!id.ok()) Fail("idle streams", id.error().message());
    ids.push_back(*id);
  }
  wait_responding(streams);
  settle();
  result.engine_per_stream =
      (static_cast<double>(SelfRssBytes()) - static_cast<double>(before)) / streams;
  chunks.ReleaseIdle();
  for (uint64_t id : ids) {
    for (;;) {
      Result<ipc::Response> r = client.Next(id);
      if (!r.ok() || r->is_final) break;
    }
  }
  return result;
}

int BenchProviders(const BenchProvidersFlags& flags) {
  ::signal(SIGPIPE, SIG_IGN);
  const bool quick = flags.quick;
  auto progress = [&](const char* what) {
    if (!flags.json) std::fprintf(stderr, "  measuring %s...\n", what);
  };

  progress("decoding throughput");
  // The real path: SseDecoder + each adapter's stream parser → StreamEvents, beside a getline +
  // nlohmann DOM decoder doing the same work (see llm/bench_decode.h).
  const llm::DecodeThroughput decode =
      llm::MeasureStreamDecoding(16 * 1024, std::chrono::milliseconds(quick ? 300 : 1000));
  const double openai_mbps = decode.openai_mb_per_s;
  const double anthropic_mbps = decode.anthropic_mb_per_s;
  const double naive_openai_mbps = decode.baseline_openai_mb_per_s;
  const double naive_anthropic_mbps = decode.baseline_anthropic_mb_per_s;

  TempDir dir;
  ChunkServer chunks;
  IdleResult idle;
  LatencyResult one, many, burst;
  {
    Engine engine(dir.path(), chunks.base_url());
    progress("latency, 1 stream");
    one = MeasureLatency(chunks, engine.socket, 1, quick ? 300 : 2000,
                         std::chrono::microseconds(1000));
    progress("latency, 200 streams");
    many = MeasureLatency(chunks, engine.socket, 200, quick ? 10 : 50,
                          std::chrono::microseconds(50'000));
    progress("latency, 200 streams in step");
    burst = MeasureLatency(chunks, engine.socket, 200, quick ? 10 : 30,
                           std::chrono::microseconds(50'000), /*spread=*/false);
    progress("memory per idle stream");
    idle = MeasureIdle(chunks, engine, quick ? 100 : 200);
  }

  auto added = [](uint64_t engine, uint64_t baseline) {
    return engine > baseline ? engine - baseline : 0;
  };
  auto latency_json = [&](const LatencyResult& r) {
    return Json{{"engine_p50_ns", r.engine.p50},
                {"engine_p99_ns", r.engine.p99},
                {"baseline_p50_ns", r.baseline.p50},
                {"baseline_p99_ns", r.baseline.p99},
                {"added_p50_ns", added(r.engine.p50, r.baseline.p50)},
                {"added_p99_ns", added(r.engine.p99, r.baseline.p99)},
                {"samples", r.samples}};
  };
  if (flags.json) {
    Json out = {{"decode_openai_mb_per_s", openai_mbps},
                {"decode_anthropic_mb_per_s", anthropic_mbps},
                {"naive_decode_openai_mb_per_s", naive_openai_mbps},
                {"naive_decode_anthropic_mb_per_s", naive_anthropic_mbps},
                {"one_stream", latency_json(one)},
                {"streams_200", latency_json(many)},
                {"streams_200_in_step", latency_json(burst)},
                {"idle_stream_rss_bytes", idle.engine_per_stream},
                {"idle_http_connection_rss_bytes", idle.baseline_per_stream}};
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  char a[64], b[128];
  auto us = [](uint64_t ns) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.1f us", static_cast<double>(ns) / 1000);
    return std::string(text);
  };
  auto latency_rows = [&](const std::string& name, const LatencyResult& r, const char* note) {
    PrintRow(name + " p50", us(r.engine.p50), "plain loopback HTTP read p50 " + us(r.baseline.p50));
    PrintRow(name + " p99", us(r.engine.p99), "plain loopback HTTP read p99 " + us(r.baseline.p99));
    PrintRow(
        "  added by the engine p50 / p99",
        us(added(r.engine.p50, r.baseline.p50)) + " / " + us(added(r.engine.p99, r.baseline.p99)),
        note);
  };
  std::printf(
      "lapce-ai bench providers%s: provider on loopback, engine and IPC client in this "
      "process\n",
      quick ? " --quick" : "");
  std::snprintf(a, sizeof(a), "%.0f MB/s", openai_mbps);
  std::snprintf(b, sizeof(b), "target >= 200 MB/s; naive decoder %.0f MB/s", naive_openai_mbps);
  PrintRow("decode OpenAI stream", a, b);
  std::snprintf(a, sizeof(a), "%.0f MB/s", anthropic_mbps);
  std::snprintf(b, sizeof(b), "target >= 200 MB/s; naive decoder %.0f MB/s", naive_anthropic_mbps);
  PrintRow("decode Anthropic stream", a, b);
  latency_rows("chunk -> IPC frame, 1 stream", one, "target p99 <= 50 us");
  latency_rows("chunk -> IPC frame, 200 streams", many, "target p99 <= 50 us");
  latency_rows("same, every chunk at once,", burst, "200 chunks queue at one I/O thread");
  std::snprintf(a, sizeof(a), "%.1f KiB", idle.engine_per_stream / 1024);
  std::snprintf(b, sizeof(b),
                "target <= 64 KiB; a plain idle HTTP connection %.1f KiB (both with the "
                "provider's thread)",
                idle.baseline_per_stream / 1024);
  PrintRow("RSS per idle open stream", a, b);
  return 0;
}

}  // namespace

void AddBenchProvidersCommand(CLI::App& bench, CommandRun& run) {
  auto flags = std::make_shared<BenchProvidersFlags>();
  CLI::App* cmd = bench.add_subcommand(
      "providers",
      "Provider stack: SSE+JSON decoding MB/s, chunk-to-IPC-frame latency (1 and 200 "
      "streams) and memory per idle stream, with loopback baselines in the same run");
  cmd->add_flag("--json", flags->json, "Print one JSON object instead of a table");
  cmd->add_flag("--quick", flags->quick, "Fewer samples (for CI)");
  cmd->callback([&run, flags] { run = [flags](const Config&) { return BenchProviders(*flags); }; });
}

}  // namespace lai::cli
