#include "testing/fake_provider_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>

#include "base/unique_fd.h"

namespace lai::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Any single read or write waiting longer than this gives up on the connection.
constexpr milliseconds kIoTimeout{30'000};
constexpr size_t kMaxHeadBytes = 1u << 20;
constexpr size_t kMaxBodyBytes = 256u << 20;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 529:
      return "Overloaded";
    default:
      return "Status";
  }
}

int ToMs(Clock::duration d) {
  return static_cast<int>(
      std::clamp<int64_t>(std::chrono::ceil<milliseconds>(d).count(), 0, 1 << 30));
}

}  // namespace

std::string FakeResponse::body() const {
  std::string all;
  for (const std::string& c : body_chunks) all += c;
  return all;
}

void FakeResponse::Rechunk(size_t bytes) {
  std::string all = body();
  body_chunks.clear();
  bytes = std::max<size_t>(bytes, 1);
  for (size_t at = 0; at < all.size(); at += bytes) body_chunks.push_back(all.substr(at, bytes));
}

FakeResponse MakeResponse(int status, std::string body, std::string content_type) {
  FakeResponse r;
  r.status = status;
  r.headers.push_back({"Content-Type", std::move(content_type)});
  r.body_chunks.push_back(std::move(body));
  r.chunked = false;
  return r;
}

struct FakeProviderServer::State {
  // Waits until `fd` is ready for `events`, the server stops or `timeout` passes. True if ready.
  bool WaitFd(int fd, short events, milliseconds timeout) const {
    pollfd fds[2] = {{fd, events, 0}, {stop_read.get(), POLLIN, 0}};
    Clock::time_point deadline = Clock::now() + timeout;
    for (;;) {
      int n = ::poll(fds, 2, ToMs(deadline - Clock::now()));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || fds[1].revents != 0) return false;
      return fds[0].revents != 0;
    }
  }
  // Pauses for `duration`; false if the server stops or the client hangs up meanwhile.
  bool Pause(int fd, milliseconds duration) const {
    if (duration.count() <= 0) return true;
    pollfd fds[2] = {{fd, POLLRDHUP, 0}, {stop_read.get(), POLLIN, 0}};
    Clock::time_point deadline = Clock::now() + duration;
    for (;;) {
      Clock::duration left = deadline - Clock::now();
      if (left <= Clock::duration::zero()) return true;
      int n = ::poll(fds, 2, ToMs(left));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return false;
      if (n > 0) return false;  // Stop signal, or the peer closed / reset the connection.
    }
  }
  bool SendAll(int fd, std::string_view data) const {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && WaitFd(fd, POLLOUT, kIoTimeout)) {
        continue;
      }
      return false;
    }
    return true;
  }
  bool ReadMore(int fd, std::string& buffer) const {
    if (!WaitFd(fd, POLLIN, kIoTimeout)) return false;
    char chunk[16384];
    ssize_t n;
    do {
      n = ::recv(fd, chunk, sizeof(chunk), 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
    return true;
  }

  void AcceptLoop();
  void ServeConnection(UniqueFd fd, int index);
  // Writes `response`; false when the connection must be closed afterwards.
  bool Respond(int fd, const FakeResponse& response, bool is_head);
  FakeResponse Pick(const std::string& path);

  // Immutable after Start.
  UniqueFd listen_fd;
  UniqueFd stop_read;
  UniqueFd stop_write;
  uint16_t port = 0;
  std::thread accept_thread;

  mutable std::mutex mutex;
  mutable std::condition_variable changed;
  // Guarded by mutex.
  std::vector<std::pair<std::string, std::deque<FakeResponse>>> queues;
  FakeResponse default_response;
  std::vector<RecordedRequest> requests;
  int accepted = 0;
  int closed = 0;
  std::vector<std::thread> connection_threads;
  bool stopping = false;
};

void FakeProviderServer::State::AcceptLoop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd.get(), POLLIN, 0}, {stop_read.get(), POLLIN, 0}};
    int n = ::poll(fds, 2, -1);  // Bounded by the stop pipe, written on destruction.
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[1].revents != 0) return;
    int fd = ::accept4(listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::lock_guard lock(mutex);
    if (stopping) {
      ::close(fd);
      return;
    }
    int index = ++accepted;
    connection_threads.emplace_back([this, fd, index] { ServeConnection(UniqueFd(fd), index); });
    changed.notify_all();
  }
}

FakeResponse FakeProviderServer::State::Pick(const std::string& path) {
  std::lock_guard lock(mutex);
  for (auto& [prefix, queue] : queues) {
    if (!queue.empty() && path.starts_with(prefix)) {
      FakeResponse r = std::move(queue.front());
      queue.pop_front();
      return r;
    }
  }
  return default_response;
}

void FakeProviderServer::State::ServeConnection(UniqueFd fd, int index) {
  std::string buffer;
  for (;;) {
    size_t head_end;
    while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
      if (buffer.size() > kMaxHeadBytes || !ReadMore(fd.get(), buffer)) goto done;
    }
    {
      RecordedRequest request;
      request.connection = index;
      std::string_view head(buffer.data(), head_end);
      size_t line_end = head.find("\r\n");
      std::string_view request_line = head.substr(0, line_end);
      size_t sp1 = request_line.find(' ');
      size_t sp2 = request_line.rfind(' ');
      if (sp1 == std::string_view::npos || sp2 <= sp1) goto done;
      request.method = std::string(request_line.substr(0, sp1));
      request.path = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
      size_t content_length = 0;
      bool wants_close = false;
      std::string_view rest =
          line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
      while (!rest.empty()) {
        size_t eol = rest.find("\r\n");
        std::string_view line = rest.substr(0, eol);
        rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        http::Header h{std::string(Trim(line.substr(0, colon))),
                       std::string(Trim(line.substr(colon + 1)))};
        std::vector<http::Header> one{h};
        if (!http::FindHeader(one, "Content-Length").empty()) {
          content_length = std::strtoull(h.value.c_str(), nullptr, 10);
        }
        if (!http::FindHeader(one, "Transfer-Encoding").empty()) goto done;  // Not supported.
        if (!http::FindHeader(one, "Connection").empty() && h.value == "close") wants_close = true;
        request.headers.push_back(std::move(h));
      }
      if (content_length > kMaxBodyBytes) goto done;
      size_t body_start = head_end + 4;
      while (buffer.size() < body_start + content_length) {
        if (!ReadMore(fd.get(), buffer)) goto done;
      }
      request.body = buffer.substr(body_start, content_length);
      buffer.erase(0, body_start + content_length);
      FakeResponse response = Pick(request.path);
      bool is_head = request.method == "HEAD";
      {
        std::lock_guard lock(mutex);
        requests.push_back(std::move(request));
        changed.notify_all();
      }
      if (!Respond(fd.get(), response, is_head) || wants_close) goto done;
    }
  }
done:
  ::shutdown(fd.get(), SHUT_RDWR);
  fd.Reset();
  std::lock_guard lock(mutex);
  ++closed;
  changed.notify_all();
}

bool FakeProviderServer::State::Respond(int fd, const FakeResponse& response, bool is_head) {
  const FakeFault& fault = response.fault;
  if (!Pause(fd, fault.headers_delay)) return false;
  std::string head =
      "HTTP/1.1 " + std::to_string(response.status) + " " + ReasonPhrase(response.status) + "\r\n";
  for (const http::Header& h : response.headers) head += h.name + ": " + h.value + "\r\n";
  size_t total = 0;
  for (const std::string& c : response.body_chunks) total += c.size();
  head += response.chunked ? "Transfer-Encoding: chunked\r\n"
                           : "Content-Length: " + std::to_string(total) + "\r\n";
  head += "\r\n";
  if (!SendAll(fd, head)) return false;
  if (is_head) return true;

  size_t sent = 0;
  bool stalled = false;
  // Applies the byte-count faults before the next write; false when the connection is dropped.
  auto checkpoints = [&]() {
    if (fault.stall_after_bytes && !stalled && sent >= *fault.stall_after_bytes) {
      stalled = true;
      if (!Pause(fd, fault.stall_for)) return false;
    }
    return !(fault.drop_after_bytes && sent >= *fault.drop_after_bytes);
  };
  auto write_segment = [&](std::string_view segment) {
    if (!response.chunked) return SendAll(fd, segment);
    char size_line[32];
    int n = std::snprintf(size_line, sizeof(size_line), "%zx\r\n", segment.size());
    std::string framed(size_line, static_cast<size_t>(n));
    framed.append(segment);
    framed += "\r\n";
    return SendAll(fd, framed);
  };
  for (const std::string& chunk : response.body_chunks) {
    std::string_view piece = chunk;
    while (!piece.empty()) {
      size_t n = fault.drip ? 1 : piece.size();
      if (fault.drop_after_bytes) n = std::min(n, *fault.drop_after_bytes - sent);
      if (fault.stall_after_bytes && !stalled) n = std::min(n, *fault.stall_after_bytes - sent);
      if (!checkpoints()) return false;
      if (n == 0) continue;  // A checkpoint was reached and passed; recompute the segment.
      if (!Pause(fd, fault.chunk_delay)) return false;
      if (!write_segment(piece.substr(0, n))) return false;
      sent += n;
      piece.remove_prefix(n);
    }
  }
  if (!checkpoints()) return false;
  if (response.chunked && !SendAll(fd, "0\r\n\r\n")) return false;
  return true;
}

Result<std::unique_ptr<FakeProviderServer>> FakeProviderServer::Start() {
  auto state = std::make_unique<State>();
  state->default_response =
      MakeResponse(404, R"({"error":{"message":"fake provider server: no scripted response"}})");
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoError("fake provider server: pipe", errno);
  state->stop_read.Reset(pipe_fds[0]);
  state->stop_write.Reset(pipe_fds[1]);
  state->listen_fd.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!state->listen_fd.is_valid()) return ErrnoError("fake provider server: socket", errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(state->listen_fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoError("fake provider server: bind 127.0.0.1:0", errno);
  }
  if (::listen(state->listen_fd.get(), 512) != 0) {
    return ErrnoError("fake provider server: listen", errno);
  }
  socklen_t len = sizeof(addr);
  ::getsockname(state->listen_fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  state->port = ntohs(addr.sin_port);
  State* raw = state.get();
  state->accept_thread = std::thread([raw] { raw->AcceptLoop(); });
  return std::unique_ptr<FakeProviderServer>(new FakeProviderServer(std::move(state)));
}

FakeProviderServer::FakeProviderServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

FakeProviderServer::~FakeProviderServer() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  char byte = 1;
  while (::write(state_->stop_write.get(), &byte, 1) < 0 && errno == EINTR) {
  }
  state_->accept_thread.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(state_->mutex);
    threads.swap(state_->connection_threads);
  }
  for (std::thread& t : threads) t.join();
}

uint16_t FakeProviderServer::port() const { return state_->port; }

std::string FakeProviderServer::base_url() const {
  return "http://127.0.0.1:" + std::to_string(state_->port);
}

void FakeProviderServer::Enqueue(std::string path_prefix, FakeResponse response) {
  std::lock_guard lock(state_->mutex);
  for (auto& [prefix, queue] : state_->queues) {
    if (prefix == path_prefix) {
      queue.push_back(std::move(response));
      return;
    }
  }
  state_->queues.emplace_back(std::move(path_prefix), std::deque<FakeResponse>{});
  state_->queues.back().second.push_back(std::move(response));
}

void FakeProviderServer::SetDefault(FakeResponse response) {
  std::lock_guard lock(state_->mutex);
  state_->default_response = std::move(response);
}

std::vector<RecordedRequest> FakeProviderServer::requests() const {
  std::lock_guard lock(state_->mutex);
  return state_->requests;
}

int FakeProviderServer::connections_accepted() const {
  std::lock_guard lock(state_->mutex);
  return state_->accepted;
}

int FakeProviderServer::connections_closed() const {
  std::lock_guard lock(state_->mutex);
  return state_->closed;
}

bool FakeProviderServer::WaitForRequests(size_t count, milliseconds timeout) const {
  std::unique_lock lock(state_->mutex);
  return state_->changed.wait_for(lock, timeout, [&] { return state_->requests.size() >= count; });
}

bool FakeProviderServer::WaitForConnectionsClosed(int count, milliseconds timeout) const {
  std::unique_lock lock(state_->mutex);
  return state_->changed.wait_for(lock, timeout, [&] { return state_->closed >= count; });
}

std::string ProvidersTestdataDir() { return LAI_SOURCE_DIR "/tests/testdata/providers"; }

namespace {

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return std::move(out).str();
}

// Splits after each blank line (LF LF, or LF CR LF), so every chunk holds whole SSE events.
std::vector<std::string> SplitEvents(const std::string& body) {
  std::vector<std::string> chunks;
  size_t start = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '\n') continue;
    size_t j = i + 1;
    if (j < body.size() && body[j] == '\r') ++j;
    if (j < body.size() && body[j] == '\n') {
      chunks.push_back(body.substr(start, j + 1 - start));
      start = j + 1;
      i = j;
    }
  }
  if (start < body.size()) chunks.push_back(body.substr(start));
  return chunks;
}

std::vector<std::string> SplitLines(const std::string& body) {
  std::vector<std::string> chunks;
  size_t start = 0;
  while (start < body.size()) {
    size_t nl = body.find('\n', start);
    size_t end = nl == std::string::npos ? body.size() : nl + 1;
    chunks.push_back(body.substr(start, end - start));
    start = end;
  }
  return chunks;
}

}  // namespace

Result<FakeResponse> LoadGoldenResponse(std::string_view provider, std::string_view case_name,
                                        const std::string& root) {
  const std::string base = root + "/" + std::string(provider) + "/" + std::string(case_name);
  struct Kind {
    const char* extension;
    const char* content_type;
  };
  static constexpr Kind kKinds[] = {{".sse", "text/event-stream"},
                                    {".ndjson", "application/x-ndjson"},
                                    {".json", "application/json"}};
  FakeResponse response;
  std::optional<std::string> body;
  const Kind* kind = nullptr;
  for (const Kind& k : kKinds) {
    body = ReadFile(base + k.extension);
    if (body) {
      kind = &k;
      break;
    }
  }
  if (!body) {
    return Error(ErrorCode::kNotFound, "golden response '" + base +
                                           "': none of .sse, .ndjson, .json exists; see "
                                           "tests/testdata/providers/README.md");
  }
  if (std::string_view(kind->extension) == ".sse") {
    response.body_chunks = SplitEvents(*body);
  } else if (std::string_view(kind->extension) == ".ndjson") {
    response.body_chunks = SplitLines(*body);
  } else {
    response.body_chunks.push_back(*body);
  }
  if (std::optional<std::string> status = ReadFile(base + ".status")) {
    std::string_view text = Trim(*status);
    while (!text.empty() && text.back() == '\n') text = Trim(text.substr(0, text.size() - 1));
    int code = 0;
    bool valid = text.size() == 3;
    for (char c : text) {
      valid = valid && c >= '0' && c <= '9';
      code = code * 10 + (c - '0');
    }
    if (!valid || code < 100 || code > 599) {
      return Error(ErrorCode::kInvalidArgument,
                   base + ".status: line 1: expected a three-digit HTTP status (100-599)");
    }
    response.status = code;
  }
  if (std::optional<std::string> headers = ReadFile(base + ".headers")) {
    std::istringstream lines(*headers);
    std::string line;
    for (int number = 1; std::getline(lines, line); ++number) {
      std::string_view text = Trim(line);
      if (text.empty() || text.front() == '#') continue;
      size_t colon = text.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        return Error(ErrorCode::kInvalidArgument,
                     base + ".headers: line " + std::to_string(number) +
                         ": expected 'Name: value' (or a '#' comment)");
      }
      response.headers.push_back(
          {std::string(Trim(text.substr(0, colon))), std::string(Trim(text.substr(colon + 1)))});
    }
  }
  if (http::FindHeader(response.headers, "Content-Type").empty()) {
    response.headers.push_back({"Content-Type", kind->content_type});
  }
  return response;
}

}  // namespace lai::testing
