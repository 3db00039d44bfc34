#include "server/metrics_endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <vector>

namespace lai::server {
namespace {

constexpr size_t kMaxRequestBytes = 8192;
constexpr int kClientTimeoutMs = 2000;  // For the whole request, from the connect.
constexpr size_t kMaxClients = 64;      // Served at once; more wait in the listen queue.

void WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// `with_body` false answers a HEAD: the same headers, no body.
std::string Response(std::string_view status, std::string_view content_type, std::string_view body,
                     bool with_body = true) {
  std::string out = "HTTP/1.1 ";
  out += status;
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\nContent-Length: " + std::to_string(body.size());
  if (status.starts_with("405")) out += "\r\nAllow: GET, HEAD";
  out += "\r\nConnection: close\r\n\r\n";
  if (with_body) out += body;
  return out;
}

}  // namespace

MetricsEndpoint::MetricsEndpoint(std::function<std::string()> render)
    : render_(std::move(render)) {}

MetricsEndpoint::~MetricsEndpoint() { Stop(); }

Status MetricsEndpoint::Start(const std::string& address) {
  size_t colon = address.rfind(':');
  int port = -1;
  if (colon != std::string::npos) {
    std::string_view digits(address.data() + colon + 1, address.size() - colon - 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ec != std::errc() || end != digits.data() + digits.size()) port = -1;
  }
  if (port < 0 || port > 65535) {
    return Error(ErrorCode::kInvalidArgument,
                 "metrics address '" + address + "' is not host:port (e.g. 127.0.0.1:9464)");
  }
  std::string host = address.substr(0, colon);
  bool v6 = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (v6) host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  sockaddr_storage storage{};
  socklen_t length;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&storage);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET6, host.c_str(), &a->sin6_addr) != 1) host.clear();
    length = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&storage);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1) host.clear();
    length = sizeof(sockaddr_in);
  }
  if (host.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "metrics address '" + address + "': the host must be an IP address");
  }
  listen_.Reset(::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listen_.is_valid()) return ErrnoError("metrics socket", errno);
  int one = 1;
  ::setsockopt(listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(listen_.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    Error e = ErrnoError("bind metrics address '" + address + "'", errno);
    if (errno == EADDRINUSE) e = Error(ErrorCode::kUnavailable, e.message());
    listen_.Reset();
    return e;
  }
  if (::listen(listen_.get(), 16) != 0) return ErrnoError("listen metrics", errno);
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof(bound);
  ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&bound), &bound_length);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  stop_.Reset(::eventfd(0, EFD_CLOEXEC));
  if (!stop_.is_valid()) return ErrnoError("eventfd", errno);
  thread_ = std::thread([this] { Serve(); });
  return OkStatus();
}

void MetricsEndpoint::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  ssize_t n = ::write(stop_.get(), &one, sizeof(one));
  (void)n;
  thread_.join();
  listen_.Reset();
}

// Clients are served together, each within kClientTimeoutMs of connecting: one that is slow
// or silent holds up no other scrape (one at a time, with a 2 s wait per read, a client sending
// a byte a second held the endpoint for as long as it liked).
void MetricsEndpoint::Serve() {
  struct Client {
    UniqueFd fd;
    std::string request;
    std::chrono::steady_clock::time_point deadline;
  };
  std::vector<Client> clients;
  for (;;) {
    std::vector<pollfd> pfds = {{listen_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    const auto now = std::chrono::steady_clock::now();
    int timeout = -1;
    for (const Client& client : clients) {
      pfds.push_back({client.fd.get(), POLLIN, 0});
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(client.deadline - now);
      int left_ms = static_cast<int>(std::max<int64_t>(left.count(), 0)) + 1;
      timeout = timeout < 0 ? left_ms : std::min(timeout, left_ms);
    }
    if (::poll(pfds.data(), pfds.size(), timeout) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (pfds[1].revents != 0) return;
    std::vector<Client> waiting;
    for (size_t i = 0; i < clients.size(); ++i) {
      Client& client = clients[i];
      bool done = std::chrono::steady_clock::now() >= client.deadline;  // It gets nothing.
      if (!done && pfds[i + 2].revents != 0) {
        char buffer[1024];
        ssize_t n = ::recv(client.fd.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
        if (n > 0) client.request.append(buffer, static_cast<size_t>(n));
        done = n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
        if (!done && (client.request.find("\r\n\r\n") != std::string::npos ||
                      client.request.size() >= kMaxRequestBytes)) {
          Answer(client.fd.get(), client.request);
          done = true;
        }
      }
      if (!done) waiting.push_back(std::move(client));
    }
    clients = std::move(waiting);
    if ((pfds[0].revents & POLLIN) != 0 && clients.size() < kMaxClients) {
      UniqueFd accepted(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (accepted.is_valid()) {
        // The answer is written at once; a client that does not read it is left after a while.
        timeval send_timeout{kClientTimeoutMs / 1000, 0};
        ::setsockopt(accepted.get(), SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
        clients.push_back(
            {std::move(accepted),
             {},
             std::chrono::steady_clock::now() + std::chrono::milliseconds(kClientTimeoutMs)});
      }
    }
  }
}

void MetricsEndpoint::Answer(int client, std::string_view request) {
  size_t line_end = request.find("\r\n");
  std::string_view line(request.data(), line_end == std::string::npos ? 0 : line_end);
  const bool is_head = line.starts_with("HEAD ");
  if (!is_head && !line.starts_with("GET ")) {
    WriteAll(client,
             Response("405 Method Not Allowed", "text/plain", "only GET and HEAD are served\n"));
    return;
  }
  const size_t start = is_head ? 5 : 4;
  std::string_view target = line.substr(start, line.find(' ', start) - start);
  if (target != "/metrics" && target.substr(0, 9) != "/metrics?") {
    WriteAll(client,
             Response("404 Not Found", "text/plain", "metrics are at /metrics\n", !is_head));
    return;
  }
  WriteAll(client,
           Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", render_(), !is_head));
}

}  // namespace lai::server
