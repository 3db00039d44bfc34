// rpc::Peer: one end of a JSON-RPC 2.0 connection (requests both ways, notifications,
// `$/cancel_request`) over any message transport, plus CancelSignal. Both are thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/result.h"

namespace lai::rpc {

// JSON-RPC 2.0 error codes, plus the two ACP adds (protocols.md §1.4).
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;
inline constexpr int kAuthRequired = -32000;
inline constexpr int kResourceNotFound = -32002;
inline constexpr int kRequestCancelled = -32800;

// The JSON-RPC error code an Error is answered with: kInvalidArgument → -32602, kNotFound →
// -32002, kCancelled → -32800, kPermissionDenied → -32000, anything else → -32603.
int ErrorToRpcCode(ErrorCode code);
// The Error a JSON-RPC error reply becomes on our side (the inverse of ErrorToRpcCode; parse and
// invalid-request errors become kProtocol, unknown codes kInternal).
ErrorCode RpcCodeToError(int rpc_code);

// Carries whole messages (one compact JSON text each, never containing a newline) to the other
// peer. Implementations are thread-safe: Send is called from any thread, concurrently, and must
// not interleave two messages.
class Transport {
 public:
  virtual ~Transport() = default;
  // kUnavailable once the other side has gone.
  virtual Status Send(std::string_view message) = 0;
};

// A one-shot cancellation flag with callbacks. Thread-safe.
class CancelSignal {
 public:
  // Idempotent; the first call runs the registered callbacks on this thread.
  void Cancel();
  bool is_cancelled() const;
  // Runs `callback` once on Cancel(), or at once on this thread if already cancelled (then
  // returns 0). Callbacks must be short and must not call back into this signal. Returns an id
  // for RemoveCallback.
  // Const: watching is not cancelling (handlers get a const signal).
  uint64_t AddCallback(std::function<void()> callback) const;
  // After this returns the callback is not running and will not run (so it may capture locals).
  // Waits while Cancel() runs callbacks on another thread.
  void RemoveCallback(uint64_t id) const;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable callbacks_done_;
  bool is_cancelled_ = false;                                    // Guarded by mutex_.
  bool is_running_callbacks_ = false;                            // Guarded by mutex_.
  std::thread::id cancelling_thread_;                            // Guarded by mutex_.
  mutable uint64_t next_id_ = 1;                                 // Guarded by mutex_.
  mutable std::map<uint64_t, std::function<void()>> callbacks_;  // Guarded by mutex_.
};

// What a request handler knows about its request besides the params.
struct RequestContext {
  std::string_view method;
  std::string_view id_json;    // The request id as the peer sent it ("7" or "\"abc\"").
  const CancelSignal& cancel;  // Set by the peer's `$/cancel_request` or by Peer::Close().
};

// Handles one incoming request on a handler thread; it may block for as long as it needs (other
// messages keep flowing). `params_json` is the JSON text of `params` exactly as received (already
// validated; it may contain whitespace), or "null" when the request had none. Returns the compact
// JSON text of the result (empty = null) or an Error, which is answered as a JSON-RPC error
// (ErrorToRpcCode). A handler that stops because of context.cancel returns kCancelled (answered
// with -32800).
using RequestHandler =
    std::function<Result<std::string>(std::string_view params_json, const RequestContext& context)>;
// Handles one incoming notification. Runs on the transport's reader thread, in arrival order, so
// it must not block (hand long work to another thread).
using NotificationHandler = std::function<void(std::string_view params_json)>;
// Receives the outcome of an outgoing request: the result's JSON text as received, or the peer's
// error
// (code mapped by RpcCodeToError, message "<method>: <peer's message> (JSON-RPC error <code>)"),
// or kUnavailable when the peer closed first. Runs on the reader thread or the closing thread;
// must not block.
using ResponseCallback = std::function<void(Result<std::string> result_json)>;

struct PeerOptions {
  std::string name = "rpc";  // Names the connection in log lines.
  // Handler threads are started on demand (one per concurrently running request) up to this
  // many; further requests wait in a queue until one finishes.
  size_t max_handler_threads = 64;
  // Whether a cancelled or timed-out outgoing request is followed by `$/cancel_request` (ACP's);
  // off for peers with their own way, such as MCP's notifications/cancelled.
  bool sends_cancel_requests = true;
};

struct RequestOptions {
  std::chrono::milliseconds timeout{0};  // 0 = no deadline.
  const CancelSignal* cancel = nullptr;  // Borrowed; must outlive the call.
};

// A symmetric JSON-RPC 2.0 endpoint. The transport's reader thread feeds every received message
// to OnMessage(), which never blocks on a handler: requests run on handler threads, responses
// complete waiting callers, notifications run inline. Logs (spdlog) go to stderr, never to the
// transport. Thread-safe. `transport` must outlive the peer.
// What the beginning of a JSON-RPC message (`start`) shows of its top level, so that a message
// too large to read is still answered to its request (an editor waits for the answer to its id),
// and a response too large fails the request it answers.
struct MessageStart {
  std::string id_json = "null";  // "7", "\"abc\"": the "id", when whole in `start`.
  bool has_method = false;       // A request (or a notification, without id).
  bool is_response = false;      // "result" or "error" seen.
};
MessageStart ReadMessageStart(std::string_view start);

class Peer {
 public:
  explicit Peer(Transport& transport, PeerOptions options = {});
  ~Peer();  // Close() and Drain(). Must not run on a handler thread.
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  // Registration replaces an earlier handler of the same method. Register before the transport
  // starts reading, or accept that earlier messages find no handler.
  void HandleRequest(std::string method, RequestHandler handler);
  void HandleNotification(std::string method, NotificationHandler handler);
  // Runs `hook` on the reader thread as each request of `method` arrives, before its handler is
  // queued and before any later message is handled, with the request's cancel signal: so that a
  // notification right behind the request (a cancel) can find it. Must not block.
  using ReceiptHook = std::function<void(std::string_view params_json,
                                         const std::shared_ptr<CancelSignal>& cancel)>;
  void OnRequestReceived(std::string method, ReceiptHook hook);
  // Runs once, on the thread that calls Close() (e.g. the stdio reader at end of input).
  void OnClose(std::function<void()> callback);

  // ---- Called by the transport's reader (one thread at a time) ----
  // One received message (a request, a notification, a response, or garbage: answered with a
  // JSON-RPC error when it deserves one).
  void OnMessage(std::string_view message);
  // A message the transport could not deliver (e.g. an over-long line): answered with an
  // "Invalid Request" error that carries `reason`, with the request's id when `start` (the first
  // bytes the transport kept of it) shows a request with one (ReadMessageStart), else null; a
  // response to a request of ours fails that request instead.
  void RejectMessage(std::string_view reason, std::string_view start = {});

  // ---- Outgoing ----
  // Sends a request and waits for its response. kTimeout after options.timeout and kCancelled
  // when options.cancel fires (both also send `$/cancel_request` and drop the late response);
  // kUnavailable when the peer closes first; kInvalidArgument when `params_json` is not a JSON
  // object or array (empty = no params). Do not call from a notification handler or a response
  // callback (they run on the reader thread that would deliver the response).
  Result<std::string> Request(std::string_view method, std::string_view params_json,
                              const RequestOptions& options = {});
  // Sends a request; `done` receives the outcome exactly once (at once, on this thread, when the
  // request cannot be sent). Returns the request id (for CancelOutgoing), or 0 if not sent.
  int64_t RequestAsync(std::string_view method, std::string_view params_json,
                       ResponseCallback done);
  // Sends `$/cancel_request` for an outgoing request that is still pending; its response (a
  // result or -32800) still arrives through its callback.
  void CancelOutgoing(int64_t id);
  Status Notify(std::string_view method, std::string_view params_json);

  // Stops the peer: pending outgoing requests fail with kUnavailable ("peer closed"), running
  // handlers see their cancel signal, queued ones are dropped, later messages are ignored and
  // sends fail. Runs the OnClose callback. Idempotent; does not wait for handlers.
  void Close();
  // The transport's input ended (the other side closed its end; it may still read ours): no
  // response to our own requests can come, so they fail now; requests already received, running
  // or queued, see their cancel signal but still run and are answered; then the peer closes.
  // So `printf '<request>\n' | lapce-ai acp` gets its answer, and a prompt whose client went
  // away stops instead of going on alone.
  void EndOfInput();
  // Waits until every handler thread has returned. Call after Close(), never from a handler.
  void Drain();
  bool is_closed() const;

  // Requests running or queued right now (for tests and metrics).
  size_t active_requests() const;

 private:
  struct Job {
    std::string id_json;
    std::string method;
    std::string params_json;
    RequestHandler handler;
    std::shared_ptr<CancelSignal> cancel;  // Shared with running_ so `$/cancel_request` finds it.
  };
  struct Pending {
    std::string method;
    ResponseCallback done;
  };

  void DispatchRequest(std::string id_json, const std::string& method, std::string params_json);
  void DispatchNotification(const std::string& method, std::string_view params_json);
  void CancelIncoming(const std::string& id_json);
  // Completes the pending request `id` (false when there is none).
  bool CompletePending(int64_t id, Result<std::string> outcome);
  void HandlerThreadLoop();
  void RunJob(Job& job);
  Status SendError(std::string_view id_json, int code, std::string_view message);
  Status SendCancelRequest(int64_t id);
  // Builds a request or notification (id 0 = notification) and sends it.
  Status SendCall(int64_t id, std::string_view method, std::string_view params_json);

  Transport& transport_;
  const PeerOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable work_ready_;                                // jobs_ grew, or closing.
  bool is_closed_ = false;                                            // Guarded by mutex_.
  std::function<void()> on_close_;                                    // Guarded by mutex_.
  std::unordered_map<std::string, RequestHandler> request_handlers_;  // Guarded by mutex_.
  std::unordered_map<std::string, NotificationHandler> notification_handlers_;  // Likewise.
  std::unordered_map<std::string, ReceiptHook> receipt_hooks_;                  // Likewise.
  std::deque<Job> jobs_;              // Guarded by mutex_.
  std::vector<std::thread> threads_;  // Guarded by mutex_.
  size_t idle_threads_ = 0;           // Guarded by mutex_.
  size_t busy_threads_ = 0;           // Guarded by mutex_: running a job, answer included.
  bool is_input_ended_ = false;       // Guarded by mutex_. See EndOfInput().
  // Incoming requests queued or running, by id JSON text.
  std::unordered_map<std::string, std::shared_ptr<CancelSignal>> running_;  // Guarded by mutex_.
  int64_t next_id_ = 1;                                                     // Guarded by mutex_.
  std::unordered_map<int64_t, Pending> pending_;                            // Guarded by mutex_.
  // Ids of requests we gave up on, whose late responses are dropped quietly.
  std::unordered_set<int64_t> abandoned_;  // Guarded by mutex_.
};

}  // namespace lai::rpc
