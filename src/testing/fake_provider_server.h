// FakeProviderServer: a scripted HTTP/1.1 server on 127.0.0.1 for tests and benchmarks of the
// provider stack, with fault injection and request recording; and a loader for golden provider
// transcripts (tests/testdata/providers/README.md). The server is thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "http/client.h"

namespace lai::testing {

// Misbehaviour injected into one response. Delays are interrupted when the server stops or the
// client closes the connection.
struct FakeFault {
  std::chrono::milliseconds headers_delay{0};  // Before the status line.
  std::chrono::milliseconds chunk_delay{0};    // Before each body chunk (each byte if drip).
  bool drip = false;                           // Send the body one byte per write.
  std::optional<size_t> stall_after_bytes;     // Pause after this many body bytes ...
  std::chrono::milliseconds stall_for{0};      // ... for this long.
  std::optional<size_t> drop_after_bytes;      // Close the connection after this many body bytes.
};

struct FakeResponse {
  int status = 200;
  std::vector<http::Header> headers;     // Content-Length / Transfer-Encoding are added.
  std::vector<std::string> body_chunks;  // Each chunk is one write (and one HTTP chunk).
  bool chunked = true;                   // false: Content-Length, body sent as the chunks say.
  FakeFault fault;

  std::string body() const;
  // Re-splits the body into chunks of `bytes` bytes (the last may be shorter).
  void Rechunk(size_t bytes);
};

// Shorthand for a whole-body response, e.g. an error reply.
FakeResponse MakeResponse(int status, std::string body,
                          std::string content_type = "application/json");

struct RecordedRequest {
  std::string method;
  std::string
      path;  // Request target as sent (absolute-form through a proxy; host:port for CONNECT).
  std::vector<http::Header> headers;
  std::string body;
  int connection = 0;  // 1-based index of the accepted connection that carried it.
};

// Thread-safe. Each accepted connection gets its own thread; destruction stops them all
// (bounded: every wait polls a stop signal).
class FakeProviderServer {
 public:
  // Listens on 127.0.0.1 with an ephemeral port.
  static Result<std::unique_ptr<FakeProviderServer>> Start();
  ~FakeProviderServer();

  uint16_t port() const;
  std::string base_url() const;  // "http://127.0.0.1:<port>"

  // Queues a response for the next request whose path starts with `path_prefix`; queues are
  // consulted in the order their prefixes were first used. Unmatched requests get the default.
  void Enqueue(std::string path_prefix, FakeResponse response);
  // Served when no queue matches (initially 404 with a JSON error body).
  void SetDefault(FakeResponse response);

  std::vector<RecordedRequest> requests() const;
  int connections_accepted() const;
  int connections_closed() const;  // Closed by either side.
  // Block until the condition holds or `timeout` passes; return whether it holds.
  bool WaitForRequests(size_t count, std::chrono::milliseconds timeout) const;
  bool WaitForConnectionsClosed(int count, std::chrono::milliseconds timeout) const;

 private:
  struct State;
  explicit FakeProviderServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// Directory holding the golden provider transcripts (tests/testdata/providers in the source tree).
std::string ProvidersTestdataDir();

// Loads tests/testdata/providers/<provider>/<case>.{sse,ndjson,json} (raw body bytes) with the
// optional <case>.status and <case>.headers files, in the format described in
// tests/testdata/providers/README.md. The body is chunked per SSE event / NDJSON line / whole
// JSON. kNotFound names the files looked for; kInvalidArgument says which line is malformed.
Result<FakeResponse> LoadGoldenResponse(std::string_view provider, std::string_view case_name,
                                        const std::string& root = ProvidersTestdataDir());

}  // namespace lai::testing
