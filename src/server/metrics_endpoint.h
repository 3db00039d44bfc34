// MetricsEndpoint: serves GET (and HEAD) /metrics (Prometheus text) over HTTP/1.1 on a loopback TCP
// address.
// One background thread; Start/Stop are called from one thread (thread-compatible).
//
// A deliberately small server: one route, `Connection: close`, requests capped at 8 KiB. The
// Debian build of cpp-httplib is a shared library linked against OpenSSL, which alone would add
// more resident memory to the engine than the whole IPC server uses.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lai::server {

class MetricsEndpoint {
 public:
  // `render` produces the exposition text; it is called on the endpoint's thread.
  explicit MetricsEndpoint(std::function<std::string()> render);
  ~MetricsEndpoint();

  // Binds `address` ("host:port", IPv4 or [IPv6]) and starts serving. kInvalidArgument for a
  // malformed address, kUnavailable when the port is taken.
  Status Start(const std::string& address);
  void Stop();
  // The bound port (useful with port 0).
  int port() const { return port_; }

 private:
  void Serve();
  void Answer(int client, std::string_view request);

  std::function<std::string()> render_;
  UniqueFd listen_;
  UniqueFd stop_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace lai::server
