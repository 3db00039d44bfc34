#include "rpc/peer.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "base/check.h"
#include "base/json_text.h"

namespace lai::rpc {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kCancelMethod = "$/cancel_request";
// Late responses to requests we gave up on are dropped quietly; beyond this many remembered ids
// the set is forgotten (a peer that never answers them then only costs log lines).
constexpr size_t kMaxAbandoned = 1024;
// A thread's JSON validator keeps its buffers for messages up to this size.
constexpr size_t kKeepParserBytes = size_t{1} << 20;

// JSON text of a string, escaped; never throws (invalid UTF-8 is replaced).
std::string Quote(std::string_view text) {
  return Json(std::string(text)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

// In valid JSON a raw CR or LF can only be whitespace between tokens (strings must escape
// them), so blanking them keeps the value and makes the text one line.
void BlankNewlines(std::string& text, size_t from) {
  std::replace_if(
      text.begin() + static_cast<std::ptrdiff_t>(from), text.end(),
      [](char c) { return c == '\n' || c == '\r'; }, ' ');
}

// Full RFC 8259 validation (UTF-8 included) by simdjson, which is fast even in a debug build of
// ours. The error says what was wrong.
Status ValidateJson(std::string_view text) {
  // One parser per thread, reused while messages are small; big documents do not keep theirs.
  thread_local simdjson::dom::parser parser;
  simdjson::error_code error = parser.parse(text.data(), text.size(), true).error();
  if (text.size() > kKeepParserBytes) parser = simdjson::dom::parser();
  if (error) return Error(ErrorCode::kInvalidArgument, simdjson::error_message(error));
  return OkStatus();
}

char FirstChar(std::string_view text) {
  size_t first = text.find_first_not_of(" \t\r\n");
  return first == std::string_view::npos ? '\0' : text[first];
}

const char* KindName(char first) {
  switch (first) {
    case '{':
      return "an object";
    case '[':
      return "an array";
    case '"':
      return "a string";
    case 't':
    case 'f':
      return "a boolean";
    case 'n':
      return "null";
    default:
      return "a number";
  }
}

// The members of a JSON-RPC message, as raw JSON text slices of the message.
struct Members {
  std::optional<std::string_view> jsonrpc, id, method, params, result, error;
  std::optional<std::string_view> request_id;  // `$/cancel_request` params: ACP's `requestId`.
};

// Index just past the string whose opening quote is at `at`. Precondition: valid JSON.
size_t SkipString(std::string_view text, size_t at) {
  size_t pos = at + 1;
  for (;;) {
    const void* quote = std::memchr(text.data() + pos, '"', text.size() - pos);
    LAI_CHECK(quote != nullptr) << "unterminated string in validated JSON";
    size_t end = static_cast<size_t>(static_cast<const char*>(quote) - text.data());
    size_t backslashes = 0;
    while (end - backslashes > at + 1 && text[end - backslashes - 1] == '\\') ++backslashes;
    if (backslashes % 2 == 0) return end + 1;
    pos = end + 1;
  }
}

// Index just past the value starting at `at`. Precondition: valid JSON.
size_t SkipValue(std::string_view text, size_t at) {
  char first = text[at];
  if (first == '"') return SkipString(text, at);
  if (first != '{' && first != '[') {
    size_t end = text.find_first_of(",}] \t\r\n", at);
    return end == std::string_view::npos ? text.size() : end;
  }
  size_t depth = 0;
  size_t pos = at;
  for (;;) {
    pos = text.find_first_of("\"{}[]", pos);
    LAI_CHECK(pos != std::string_view::npos) << "unbalanced validated JSON";
    char c = text[pos];
    if (c == '"') {
      pos = SkipString(text, pos);
      continue;
    }
    if (c == '{' || c == '[') {
      ++depth;
    } else if (--depth == 0) {
      return pos + 1;
    }
    ++pos;
  }
}

size_t SkipSpace(std::string_view text, size_t pos) {
  while (pos < text.size() &&
         (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' || text[pos] == '\r')) {
    ++pos;
  }
  return pos;
}

// The value of a JSON string token (small ones only: keys, methods, versions).
std::string DecodeString(std::string_view token) {
  if (token.size() >= 2 && token.find('\\') == std::string_view::npos) {
    return std::string(token.substr(1, token.size() - 2));
  }
  Json value = Json::parse(token, nullptr, /*allow_exceptions=*/false);
  return value.is_string() ? value.get<std::string>() : std::string();
}

// The top-level members of a validated JSON object (later duplicates win, as in most parsers).
Members ScanObject(std::string_view text) {
  Members members;
  size_t pos = SkipSpace(text, 0) + 1;  // Past '{'.
  for (;;) {
    pos = SkipSpace(text, pos);
    if (pos >= text.size() || text[pos] == '}') return members;
    if (text[pos] == ',') {
      ++pos;
      continue;
    }
    size_t key_end = SkipString(text, pos);
    std::string key = DecodeString(text.substr(pos, key_end - pos));
    pos = SkipSpace(text, key_end) + 1;  // Past ':'.
    pos = SkipSpace(text, pos);
    size_t value_end = SkipValue(text, pos);
    std::string_view value = text.substr(pos, value_end - pos);
    pos = value_end;
    if (key == "jsonrpc")
      members.jsonrpc = value;
    else if (key == "id")
      members.id = value;
    else if (key == "method")
      members.method = value;
    else if (key == "params")
      members.params = value;
    else if (key == "result")
      members.result = value;
    else if (key == "error")
      members.error = value;
    else if (key == "requestId")
      members.request_id = value;
  }
}

bool IsInteger(std::string_view number) {
  if (number.empty()) return false;
  size_t start = number[0] == '-' ? 1 : 0;
  return start < number.size() &&
         number.find_first_not_of("0123456789", start) == std::string_view::npos;
}

std::optional<int64_t> ParseInt64(std::string_view number) {
  if (!IsInteger(number)) return std::nullopt;
  int64_t value = 0;
  auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (error != std::errc() || end != number.data() + number.size()) return std::nullopt;
  return value;
}

// A peer's text for a log line, cut short.
std::string Clip(std::string_view text) {
  constexpr size_t kMax = 200;
  if (text.size() <= kMax) return std::string(text);
  return std::string(text.substr(0, kMax)) + "...";
}

// The Error an error response's `error` member becomes. Precondition: valid JSON.
Error ParseRpcError(std::string_view error_json) {
  Json error = Json::parse(error_json, nullptr, /*allow_exceptions=*/false);
  auto code = error.is_object() ? error.find("code") : error.end();
  auto text = error.is_object() ? error.find("message") : error.end();
  if (!error.is_object() || code == error.end() || !code->is_number_integer() ||
      text == error.end() || !text->is_string()) {
    return Error(ErrorCode::kProtocol,
                 "the peer sent a malformed error (want {\"code\":int,\"message\":string}): " +
                     Clip(error_json));
  }
  int rpc_code = code->get<int>();
  return Error(RpcCodeToError(rpc_code),
               text->get<std::string>() + " (JSON-RPC error " + std::to_string(rpc_code) + ")");
}

bool IsStructuredJson(std::string_view text) {
  char first = FirstChar(text);
  return (first == '{' || first == '[') && ValidateJson(text).ok();
}

Status CheckParams(std::string_view method, std::string_view params_json) {
  if (params_json.empty() || IsStructuredJson(params_json)) return OkStatus();
  return Error(ErrorCode::kInvalidArgument,
               "params of '" + std::string(method) +
                   "' must be the JSON text of an object or an array (or empty for none)");
}

}  // namespace

int ErrorToRpcCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return kInvalidParams;
    case ErrorCode::kNotFound:
      return kResourceNotFound;
    case ErrorCode::kCancelled:
      return kRequestCancelled;
    case ErrorCode::kPermissionDenied:
      return kAuthRequired;
    default:
      return kInternalError;
  }
}

ErrorCode RpcCodeToError(int rpc_code) {
  switch (rpc_code) {
    case kParseError:
    case kInvalidRequest:
      return ErrorCode::kProtocol;
    case kMethodNotFound:
    case kResourceNotFound:
      return ErrorCode::kNotFound;
    case kInvalidParams:
      return ErrorCode::kInvalidArgument;
    case kRequestCancelled:
      return ErrorCode::kCancelled;
    case kAuthRequired:
      return ErrorCode::kPermissionDenied;
    default:
      return ErrorCode::kInternal;
  }
}

// ---- CancelSignal ----

void CancelSignal::Cancel() {
  std::map<uint64_t, std::function<void()>> callbacks;
  {
    std::lock_guard lock(mutex_);
    if (is_cancelled_) return;
    is_cancelled_ = true;
    is_running_callbacks_ = true;
    cancelling_thread_ = std::this_thread::get_id();
    callbacks.swap(callbacks_);
  }
  for (auto& [id, callback] : callbacks) callback();
  std::lock_guard lock(mutex_);
  is_running_callbacks_ = false;
  callbacks_done_.notify_all();
}

bool CancelSignal::is_cancelled() const {
  std::lock_guard lock(mutex_);
  return is_cancelled_;
}

uint64_t CancelSignal::AddCallback(std::function<void()> callback) const {
  {
    std::lock_guard lock(mutex_);
    if (!is_cancelled_) {
      uint64_t id = next_id_++;
      callbacks_.emplace(id, std::move(callback));
      return id;
    }
  }
  callback();
  return 0;
}

void CancelSignal::RemoveCallback(uint64_t id) const {
  std::unique_lock lock(mutex_);
  callbacks_.erase(id);
  if (cancelling_thread_ == std::this_thread::get_id()) return;  // From inside a callback.
  callbacks_done_.wait(lock, [this] { return !is_running_callbacks_; });
}

// ---- Peer ----

Peer::Peer(Transport& transport, PeerOptions options)
    : transport_(transport), options_(std::move(options)) {
  LAI_CHECK(options_.max_handler_threads > 0) << "PeerOptions::max_handler_threads must be > 0";
}

Peer::~Peer() {
  Close();
  Drain();
}

void Peer::HandleRequest(std::string method, RequestHandler handler) {
  std::lock_guard lock(mutex_);
  request_handlers_[std::move(method)] = std::move(handler);
}

void Peer::HandleNotification(std::string method, NotificationHandler handler) {
  std::lock_guard lock(mutex_);
  notification_handlers_[std::move(method)] = std::move(handler);
}

void Peer::OnRequestReceived(std::string method, ReceiptHook hook) {
  std::lock_guard lock(mutex_);
  receipt_hooks_[std::move(method)] = std::move(hook);
}

void Peer::OnClose(std::function<void()> callback) {
  std::lock_guard lock(mutex_);
  on_close_ = std::move(callback);
}

bool Peer::is_closed() const {
  std::lock_guard lock(mutex_);
  return is_closed_;
}

size_t Peer::active_requests() const {
  std::lock_guard lock(mutex_);
  return running_.size();
}

void Peer::OnMessage(std::string_view message) {
  if (is_closed()) return;
  if (Status valid = ValidateJson(message); !valid.ok()) {
    (void)SendError("null", kParseError,
                    "Parse error: the message is not valid JSON (" + valid.error().message() + ")");
    return;
  }
  char kind = FirstChar(message);
  if (kind == '[') {
    (void)SendError("null", kInvalidRequest,
                    "Invalid Request: batches are not supported; send one JSON-RPC message at a "
                    "time");
    return;
  }
  if (kind != '{') {
    (void)SendError("null", kInvalidRequest,
                    std::string("Invalid Request: a JSON-RPC message must be an object, got ") +
                        KindName(kind));
    return;
  }
  Members doc = ScanObject(message);
  bool has_id = doc.id.has_value();
  char id_kind = has_id ? FirstChar(*doc.id) : 0;
  bool is_id_valid = has_id && (id_kind == '"' || IsInteger(*doc.id));
  std::string id_json = is_id_valid ? std::string(*doc.id) : "null";
  bool is_version_ok = doc.jsonrpc.has_value() && FirstChar(*doc.jsonrpc) == '"' &&
                       DecodeString(*doc.jsonrpc) == "2.0";

  if (!doc.method.has_value()) {
    if (!doc.result.has_value() && !doc.error.has_value()) {
      (void)SendError(id_json, kInvalidRequest,
                      "Invalid Request: a message needs \"method\" (request or notification) or "
                      "\"result\"/\"error\" (response)");
      return;
    }
    // A response. Never answered, whatever is wrong with it (that could ping-pong).
    if (!is_version_ok) {
      spdlog::warn("{}: dropped a response without \"jsonrpc\":\"2.0\"", options_.name);
      return;
    }
    std::optional<int64_t> response_id = has_id ? ParseInt64(*doc.id) : std::nullopt;
    if (!response_id.has_value()) {
      if (doc.error.has_value()) {
        spdlog::warn("{}: the peer reported an error for id {}: {}", options_.name,
                     has_id ? std::string(*doc.id) : "(none)", Clip(*doc.error));
      } else {
        spdlog::warn("{}: dropped a response with id {}: we only send integer ids", options_.name,
                     has_id ? Clip(*doc.id) : "(none)");
      }
      return;
    }
    Result<std::string> outcome = std::string();
    if (doc.error.has_value()) {
      outcome = ParseRpcError(*doc.error);
    } else {
      outcome = std::string(*doc.result);
    }
    if (!CompletePending(*response_id, std::move(outcome))) {
      bool was_abandoned;
      {
        std::lock_guard lock(mutex_);
        was_abandoned = abandoned_.erase(*response_id) > 0;
      }
      if (!was_abandoned) {
        spdlog::warn("{}: dropped a response to id {}, which names no pending request",
                     options_.name, *response_id);
      }
    }
    return;
  }

  // A request or a notification.
  if (!is_version_ok) {
    (void)SendError(id_json, kInvalidRequest, "Invalid Request: \"jsonrpc\" must be \"2.0\"");
    return;
  }
  if (FirstChar(*doc.method) != '"') {
    (void)SendError(id_json, kInvalidRequest,
                    std::string("Invalid Request: \"method\" must be a string, got ") +
                        KindName(FirstChar(*doc.method)));
    return;
  }
  if (has_id && !is_id_valid) {
    (void)SendError(
        "null", kInvalidRequest,
        std::string("Invalid Request: \"id\" must be a string or an integer, got ") +
            (id_kind == '-' || (id_kind >= '0' && id_kind <= '9') ? "a non-integer number"
                                                                  : KindName(id_kind)));
    return;
  }
  char params_kind = doc.params.has_value() ? FirstChar(*doc.params) : '{';
  if (params_kind != '{' && params_kind != '[') {
    (void)SendError(id_json, kInvalidRequest,
                    std::string("Invalid Request: \"params\" must be an object or an array, got ") +
                        KindName(params_kind));
    return;
  }
  std::string_view params_json = doc.params.value_or("null");
  std::string name = DecodeString(*doc.method);
  if (!has_id) {
    if (name == kCancelMethod) {
      std::optional<std::string_view> target;
      if (params_kind == '{' && doc.params.has_value()) {
        // ACP names the request `requestId`; plain `id` is accepted too.
        Members cancel = ScanObject(*doc.params);
        target = cancel.request_id ? cancel.request_id : cancel.id;
      }
      if (target.has_value()) {
        CancelIncoming(std::string(*target));
      } else {
        spdlog::warn("{}: ignored a $/cancel_request without params.requestId", options_.name);
      }
      return;
    }
    DispatchNotification(name, params_json);
    return;
  }
  DispatchRequest(std::move(id_json), name, std::string(params_json));
}

MessageStart ReadMessageStart(std::string_view start) {
  MessageStart read;
  // A scan of the object's top level: strings are skipped whole, nesting counted.
  int depth = 0;
  for (size_t i = 0; i < start.size(); ++i) {
    char c = start[i];
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == '"') {
      size_t end = i + 1;
      while (end < start.size() && start[end] != '"') end += start[end] == '\\' ? 2 : 1;
      if (end >= start.size()) return read;
      std::string_view key = start.substr(i + 1, end - i - 1);
      i = end;
      if (depth != 1) continue;
      size_t value = start.find_first_not_of(" \t\r\n", i + 1);
      if (value == std::string_view::npos) return read;
      if (start[value] != ':') continue;  // A value, not a key.
      if (key == "method") read.has_method = true;
      if (key == "result" || key == "error") read.is_response = true;
      if (key != "id") continue;
      value = start.find_first_not_of(" \t\r\n", value + 1);
      if (value == std::string_view::npos) return read;
      size_t value_end = value;
      if (start[value] == '"') {
        value_end = value + 1;
        while (value_end < start.size() && start[value_end] != '"') {
          value_end += start[value_end] == '\\' ? 2 : 1;
        }
        if (value_end >= start.size()) return read;
        ++value_end;
      } else {
        value_end = start.find_first_of(",} \t\r\n", value);
        if (value_end == std::string_view::npos) return read;
      }
      Json parsed = Json::parse(start.substr(value, value_end - value), nullptr,
                                /*allow_exceptions=*/false);
      if (parsed.is_string() || parsed.is_number_integer()) read.id_json = parsed.dump();
    }
  }
  return read;
}

void Peer::RejectMessage(std::string_view reason, std::string_view start) {
  if (is_closed()) return;
  MessageStart read = ReadMessageStart(start);
  if (read.is_response && !read.has_method) {
    // The other side's answer to one of ours: that request fails now (answering it with an
    // error would reach a request of theirs with the same number).
    Json id = Json::parse(read.id_json, nullptr, /*allow_exceptions=*/false);
    if (id.is_number_integer()) {
      CompletePending(id.get<int64_t>(), Error(ErrorCode::kResourceExhausted,
                                               "the reply was not read: " + std::string(reason)));
    }
    return;
  }
  (void)SendError(read.has_method ? read.id_json : "null", kInvalidRequest,
                  "Invalid Request: " + std::string(reason));
}

void Peer::DispatchNotification(const std::string& method, std::string_view params_json) {
  NotificationHandler handler;
  {
    std::lock_guard lock(mutex_);
    auto it = notification_handlers_.find(method);
    if (it == notification_handlers_.end()) return;  // Unknown notifications are ignored.
    handler = it->second;
  }
  try {
    handler(params_json);
  } catch (const std::exception& e) {
    spdlog::error("{}: the handler of notification '{}' threw: {}", options_.name, method,
                  e.what());
  }
}

void Peer::CancelIncoming(const std::string& id_json) {
  std::shared_ptr<CancelSignal> signal;
  {
    std::lock_guard lock(mutex_);
    auto it = running_.find(id_json);
    if (it == running_.end()) return;  // Finished already, or never ours: nothing to do.
    signal = it->second;
  }
  signal->Cancel();
}

void Peer::DispatchRequest(std::string id_json, const std::string& method,
                           std::string params_json) {
  std::string refusal;
  int refusal_code = 0;
  RequestHandler handler;
  ReceiptHook hook;
  auto signal = std::make_shared<CancelSignal>();
  {
    std::lock_guard lock(mutex_);
    if (is_closed_) return;
    auto found = request_handlers_.find(method);
    if (found == request_handlers_.end()) {
      refusal_code = kMethodNotFound;
      refusal = "Method not found: " + method;
    } else if (running_.contains(id_json)) {
      refusal_code = kInvalidRequest;
      refusal = "Invalid Request: id " + id_json + " is already used by a request still running";
    } else {
      handler = found->second;
      running_.emplace(id_json, signal);
      if (auto it = receipt_hooks_.find(method); it != receipt_hooks_.end()) hook = it->second;
    }
  }
  if (refusal_code != 0) {
    (void)SendError(id_json, refusal_code, refusal);
    return;
  }
  if (hook) hook(params_json, signal);  // Before the handler can run, and before the next message.
  {
    std::lock_guard lock(mutex_);
    if (is_closed_) {
      running_.erase(id_json);
      return;
    }
    jobs_.push_back(
        Job{std::move(id_json), method, std::move(params_json), handler, std::move(signal)});
    if (idle_threads_ < jobs_.size() && threads_.size() < options_.max_handler_threads) {
      threads_.emplace_back([this] { HandlerThreadLoop(); });
    }
  }
  work_ready_.notify_one();
}

void Peer::HandlerThreadLoop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    ++idle_threads_;
    work_ready_.wait(lock, [this] { return is_closed_ || !jobs_.empty(); });
    --idle_threads_;
    if (is_closed_) return;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    ++busy_threads_;
    lock.unlock();
    RunJob(job);
    lock.lock();
    --busy_threads_;
    if (is_input_ended_ && jobs_.empty() && busy_threads_ == 0) {
      lock.unlock();
      Close();  // The last answer after the end of input is sent.
      return;
    }
  }
}

void Peer::RunJob(Job& job) {
  RequestContext context{job.method, job.id_json, *job.cancel};
  Result<std::string> outcome = std::string();
  try {
    outcome = job.handler(job.params_json, context);
  } catch (const std::exception& e) {
    outcome = Error(ErrorCode::kInternal, "the handler of '" + job.method + "' threw: " + e.what());
  }
  {
    // Before answering: the peer may reuse the id as soon as it has the response.
    std::lock_guard lock(mutex_);
    running_.erase(job.id_json);
  }
  if (outcome.ok() && !outcome->empty() && !ValidateJson(*outcome).ok()) {
    outcome = Error(ErrorCode::kInternal,
                    "the handler of '" + job.method + "' returned a result that is not JSON");
  }
  if (!outcome.ok()) {
    const Error& error = outcome.error();
    int code = ErrorToRpcCode(error.code());
    std::string message = error.message();
    if (code == kInvalidParams) message = "Invalid params: " + message;
    Status sent = SendError(job.id_json, code, message);
    if (!sent.ok() && !is_closed()) {
      spdlog::warn("{}: could not answer '{}': {}", options_.name, job.method,
                   sent.error().message());
    }
    return;
  }
  std::string response;
  response.reserve(48 + job.id_json.size() + outcome->size());
  response += R"({"jsonrpc":"2.0","id":)";
  response += job.id_json;
  response += R"(,"result":)";
  size_t result_at = response.size();
  response += outcome->empty() ? std::string_view("null") : std::string_view(*outcome);
  response += '}';
  BlankNewlines(response, result_at);
  Status sent = transport_.Send(response);
  if (!sent.ok() && sent.code() == ErrorCode::kResourceExhausted) {
    // Too large for the transport: the caller gets an error instead of waiting for ever.
    sent = SendError(job.id_json, kInternalError, sent.error().message());
  }
  if (!sent.ok() && !is_closed()) {
    spdlog::warn("{}: could not answer '{}': {}", options_.name, job.method,
                 sent.error().message());
  }
}

Status Peer::SendError(std::string_view id_json, int code, std::string_view message) {
  std::string text = R"({"jsonrpc":"2.0","id":)";
  text += id_json;
  text += R"(,"error":{"code":)";
  text += std::to_string(code);
  text += R"(,"message":)";
  text += Quote(message);
  text += "}}";
  return transport_.Send(text);
}

Status Peer::SendCall(int64_t id, std::string_view method, std::string_view params_json) {
  std::string text;
  text.reserve(64 + method.size() + params_json.size());
  text += R"({"jsonrpc":"2.0",)";
  if (id != 0) {
    text += R"("id":)";
    text += std::to_string(id);
    text += ',';
  }
  text += R"("method":)";
  AppendJsonEscaped(text, method);  // Method names are the engine's own, ASCII.
  if (!params_json.empty()) {
    text += R"(,"params":)";
    size_t params_at = text.size();
    text += params_json;
    BlankNewlines(text, params_at);
  }
  text += '}';
  return transport_.Send(text);
}

Status Peer::SendCancelRequest(int64_t id) {
  if (!options_.sends_cancel_requests) return OkStatus();
  return SendCall(0, kCancelMethod, R"({"requestId":)" + std::to_string(id) + "}");
}

bool Peer::CompletePending(int64_t id, Result<std::string> outcome) {
  Pending pending;
  {
    std::lock_guard lock(mutex_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return false;
    pending = std::move(it->second);
    pending_.erase(it);
  }
  if (!outcome.ok()) {
    outcome = Error(outcome.error().code(), pending.method + ": " + outcome.error().message());
  }
  pending.done(std::move(outcome));
  return true;
}

int64_t Peer::RequestAsync(std::string_view method, std::string_view params_json,
                           ResponseCallback done) {
  if (Status valid = CheckParams(method, params_json); !valid.ok()) {
    done(std::move(valid).error());
    return 0;
  }
  int64_t id;
  {
    std::lock_guard lock(mutex_);
    if (is_closed_ || is_input_ended_) {  // No response could come.
      id = 0;
    } else {
      id = next_id_++;
      pending_.emplace(id, Pending{std::string(method), std::move(done)});
    }
  }
  if (id == 0) {
    done(Error(ErrorCode::kUnavailable,
               "peer closed: cannot send request '" + std::string(method) + "'"));
    return 0;
  }
  Status sent = SendCall(id, method, params_json);
  if (sent.ok()) return id;
  Pending pending;
  {
    std::lock_guard lock(mutex_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return 0;  // Close() answered it already.
    pending = std::move(it->second);
    pending_.erase(it);
  }
  pending.done(std::move(sent).error().WithContext("send request '" + pending.method + "'"));
  return 0;
}

void Peer::CancelOutgoing(int64_t id) {
  {
    std::lock_guard lock(mutex_);
    if (is_closed_ || !pending_.contains(id)) return;
  }
  (void)SendCancelRequest(id);
}

Result<std::string> Peer::Request(std::string_view method, std::string_view params_json,
                                  const RequestOptions& options) {
  struct Waiter {
    std::mutex mutex;
    std::condition_variable changed;
    std::optional<Result<std::string>> outcome;
    bool is_cancelled = false;
  };
  auto waiter = std::make_shared<Waiter>();  // Shared with callbacks that may outlive this call.
  int64_t id = RequestAsync(method, params_json, [waiter](Result<std::string> outcome) {
    std::lock_guard lock(waiter->mutex);
    waiter->outcome.emplace(std::move(outcome));
    waiter->changed.notify_all();
  });
  uint64_t callback_id = 0;
  if (id != 0 && options.cancel != nullptr) {
    callback_id = options.cancel->AddCallback([waiter] {
      std::lock_guard lock(waiter->mutex);
      waiter->is_cancelled = true;
      waiter->changed.notify_all();
    });
  }
  {
    std::unique_lock lock(waiter->mutex);
    auto done = [&] { return waiter->outcome.has_value() || waiter->is_cancelled; };
    if (options.timeout.count() > 0) {
      waiter->changed.wait_for(lock, options.timeout, done);
    } else {
      waiter->changed.wait(lock, done);
    }
  }
  // Not under waiter->mutex: RemoveCallback waits for a running callback, which takes it.
  if (options.cancel != nullptr && callback_id != 0) options.cancel->RemoveCallback(callback_id);
  bool is_cancelled;
  {
    std::lock_guard lock(waiter->mutex);
    if (waiter->outcome.has_value()) return std::move(*waiter->outcome);
    is_cancelled = waiter->is_cancelled;
  }
  // Give up: unless the response is being delivered right now, forget the request.
  bool was_pending;
  {
    std::lock_guard lock(mutex_);
    was_pending = pending_.erase(id) > 0;
    if (was_pending) {
      if (abandoned_.size() >= kMaxAbandoned) abandoned_.clear();
      abandoned_.insert(id);
    }
  }
  if (!was_pending) {
    // The callback was taken by the reader or by Close(): its outcome is moments away.
    std::unique_lock lock(waiter->mutex);
    waiter->changed.wait(lock, [&] { return waiter->outcome.has_value(); });
    return std::move(*waiter->outcome);
  }
  (void)SendCancelRequest(id);
  std::string what = "request '" + std::string(method) + "' (id " + std::to_string(id) + ")";
  if (is_cancelled) return Error(ErrorCode::kCancelled, what + " was cancelled");
  return Error(ErrorCode::kTimeout,
               what + " got no response within " + std::to_string(options.timeout.count()) + " ms");
}

Status Peer::Notify(std::string_view method, std::string_view params_json) {
  RETURN_IF_ERROR(CheckParams(method, params_json));
  if (is_closed()) {
    return Error(ErrorCode::kUnavailable,
                 "peer closed: cannot send notification '" + std::string(method) + "'");
  }
  return SendCall(0, method, params_json);
}

void Peer::Close() {
  std::unordered_map<int64_t, Pending> pending;
  std::vector<std::shared_ptr<CancelSignal>> running;
  std::function<void()> on_close;
  {
    std::lock_guard lock(mutex_);
    if (is_closed_) return;
    is_closed_ = true;
    pending.swap(pending_);
    for (auto& [id, signal] : running_) running.push_back(signal);
    jobs_.clear();
    on_close = std::move(on_close_);
  }
  work_ready_.notify_all();
  for (auto& signal : running) signal->Cancel();
  for (auto& [id, request] : pending) {
    request.done(Error(ErrorCode::kUnavailable, "peer closed: request '" + request.method +
                                                    "' (id " + std::to_string(id) +
                                                    ") got no response"));
  }
  if (on_close) on_close();
}

void Peer::EndOfInput() {
  std::unordered_map<int64_t, Pending> pending;
  std::vector<std::shared_ptr<CancelSignal>> received;
  bool is_idle;
  {
    std::lock_guard lock(mutex_);
    if (is_closed_ || is_input_ended_) return;
    is_input_ended_ = true;
    pending.swap(pending_);
    for (auto& [id, signal] : running_) received.push_back(signal);
    is_idle = jobs_.empty() && busy_threads_ == 0;
  }
  for (auto& signal : received) signal->Cancel();
  for (auto& [id, request] : pending) {
    request.done(Error(ErrorCode::kUnavailable, "peer closed its input: request '" +
                                                    request.method + "' (id " +
                                                    std::to_string(id) + ") got no response"));
  }
  if (is_idle) Close();
}

void Peer::Drain() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    LAI_CHECK(is_closed_) << "Peer::Drain() before Close()";
    threads.swap(threads_);
  }
  for (std::thread& thread : threads) {
    LAI_CHECK(thread.get_id() != std::this_thread::get_id())
        << "Peer::Drain() on a handler thread of the same peer";
    thread.join();
  }
}

}  // namespace lai::rpc
