// Client: asynchronous HTTP(S) on libcurl's multi interface, driven by one I/O thread it owns.
// Many concurrent streaming transfers; connection reuse (keep-alive, HTTP/2) per host with a
// bounded pool and idle expiry; system CA store; HTTPS_PROXY/NO_PROXY honoured. Thread-safe.
//
// Proxies come from the environment, read by libcurl for every transfer: `http_proxy` (lower case
// only, a CGI safeguard) for http:// URLs, `https_proxy` or `HTTPS_PROXY` for https:// URLs,
// `all_proxy`/`ALL_PROXY` as fallback, and `no_proxy`/`NO_PROXY` (comma-separated hosts or
// domain suffixes, `*` for all) to bypass. client_test.cc checks HTTPS_PROXY and NO_PROXY.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace lai::http {

struct Header {
  std::string name;
  std::string value;
};

// Case-insensitive lookup; empty when absent.
std::string_view FindHeader(const std::vector<Header>& headers, std::string_view name);

struct Request {
  std::string method = "POST";
  std::string url;
  std::vector<Header> headers;
  std::string body;
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds first_byte_timeout{120'000};  // Request sent -> response headers.
  std::chrono::milliseconds idle_timeout{120'000};        // Longest gap between body chunks.
};

// Called on the client's I/O thread, one at a time per transfer; they must not block.
// on_headers once (status + headers), on_data per body chunk, on_complete exactly once, last.
// A non-2xx status is not an error here: its body arrives through on_data.
// on_complete's errors: kTimeout (which timeout, after how long, which host), kUnavailable
// (DNS, refused, reset, TLS — the message names the host and curl's reason), kCancelled.
struct Handlers {
  std::function<void(int status, const std::vector<Header>& headers)> on_headers;
  std::function<void(std::string_view chunk)> on_data;
  std::function<void(Status status)> on_complete;
};

// The whole reply of a non-streaming call (see Fetch).
struct FullResponse {
  int status = 0;
  std::vector<Header> headers;
  std::string body;
};

struct ClientOptions {
  long max_connections_per_host = 8;
  long max_total_connections = 64;
  std::chrono::seconds idle_connection_expiry{60};
};

class Client {
 public:
  static Result<std::unique_ptr<Client>> Create(const ClientOptions& options = {});
  // Cancels every transfer (their on_complete runs with kCancelled) and joins the I/O thread.
  // Must not run inside a handler.
  ~Client();

  using TransferId = uint64_t;
  // Queues the transfer; returns at once.
  TransferId Start(Request request, Handlers handlers);
  // Frees the transfer at once (its connection too, if mid-response); on_complete(kCancelled)
  // runs on the I/O thread unless the transfer had already completed. Safe from any thread,
  // including inside a handler.
  void Cancel(TransferId id);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Runs `request` to completion and returns the reply, whatever its status (a 404 is a value,
// not an error). Errors are on_complete's, plus kTimeout when the whole exchange takes longer
// than `total_timeout` and kResourceExhausted for a body longer than `max_body_bytes` (both
// cancel the transfer). Blocks the calling thread; never call it from a handler (I/O thread).
Result<FullResponse> Fetch(Client& client, Request request,
                           std::chrono::milliseconds total_timeout = std::chrono::seconds(120),
                           size_t max_body_bytes = 16u << 20);

}  // namespace lai::http
