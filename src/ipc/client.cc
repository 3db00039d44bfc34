#include "ipc/client.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

#include "ipc/wait.h"

namespace lai::ipc {

Error ParseErrorPayload(std::span<const std::byte> payload) {
  std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("message") || !j["message"].is_string()) {
    return Error(ErrorCode::kProtocol, "the server sent a malformed error reply");
  }
  ErrorCode code = ErrorCode::kInternal;
  if (j.contains("code") && j["code"].is_string()) {
    std::string name = j["code"].get<std::string>();
    for (int c = 0; c <= static_cast<int>(ErrorCode::kInternal); ++c) {
      if (ErrorCodeName(static_cast<ErrorCode>(c)) == name) code = static_cast<ErrorCode>(c);
    }
  }
  return Error(code, j["message"].get<std::string>());
}

Client::Client(ClientOptions options) : options_(std::move(options)) {}

Status Client::Connect() {
  Result<Stream> stream = Stream::Connect(options_.socket_path, options_.stream);
  if (!stream.ok()) {
    last_error_ = stream.error().message();
    return std::move(stream).error();
  }
  stream_ = std::move(stream).value();
  shutdown_seen_ = false;
  last_activity_ = CoarseNowNs();
  if (ever_connected_) ++reconnects_;
  ever_connected_ = true;
  first_id_of_connection_ = next_id_;
  backoff_ns_ = 0;
  stash_.clear();
  return OkStatus();
}

Status Client::EnsureConnected() {
  if (stream_.is_open()) return OkStatus();
  uint64_t now = NowNs();
  if (now < next_attempt_ns_) {
    return Error(ErrorCode::kUnavailable, "not connected to the lapce-ai server at '" +
                                              options_.socket_path + "' (" + last_error_ +
                                              "); reconnecting");
  }
  Status status = Connect();
  if (status.ok()) return status;
  uint64_t min_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.reconnect_min).count());
  uint64_t max_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.reconnect_max).count());
  backoff_ns_ = std::clamp(backoff_ns_ * 2, min_ns, max_ns);
  next_attempt_ns_ = now + backoff_ns_;
  return status;
}

void Client::Disconnected() {
  stream_.Close();
  stash_.clear();
  abandoned_.clear();  // Their answers can no longer come.
  next_attempt_ns_ = 0;  // The first reconnection attempt may happen at once.
}

Result<uint64_t> Client::Send(uint16_t type, std::span<const std::byte> payload) {
  return SendWithFlags(type, 0, payload);
}

Status Client::Notify(uint16_t type, std::span<const std::byte> payload) {
  return SendWithFlags(type, kFlagNoReply, payload).status();
}

Result<uint64_t> Client::SendWithFlags(uint16_t type, uint8_t flags,
                                       std::span<const std::byte> payload) {
  if (type == 0 || type >= kMaxMessageTypes) {
    return Error(ErrorCode::kInvalidArgument, "message type " + std::to_string(type) +
                                                  " is out of range 1.." +
                                                  std::to_string(kMaxMessageTypes - 1));
  }
  if (payload.size() > options_.stream.max_message_bytes) {
    return Error(ErrorCode::kInvalidArgument,
                 "message of " + std::to_string(payload.size()) + " bytes exceeds the maximum of " +
                     std::to_string(options_.stream.max_message_bytes) +
                     " (ipc.max_message_bytes)");
  }
  // A connection idle for a while may belong to a server that has since died or restarted:
  // look at the control socket (one poll) before trusting it. Busy links skip this.
  uint64_t now = CoarseNowNs();
  const bool was_idle = now - last_activity_ > kIdleCheckNs;
  last_activity_ = now;
  if (was_idle || !stream_.is_open()) {
    if (was_idle && stream_.is_open() && stream_.HasPeerHungUp()) Disconnected();
    RETURN_IF_ERROR(EnsureConnected());
  }
  uint64_t id = next_id_++;
  SetFinished(id, false);
  FrameHeader header{.flags = flags, .type = type, .request_id = id};
  std::span<std::byte> out = stream_.TryBeginSend(header, static_cast<uint32_t>(payload.size()));
  if (out.data() != nullptr) {
    if (!payload.empty()) std::memcpy(out.data(), payload.data(), payload.size());
    stream_.FinishSend();
    return id;
  }
  uint64_t deadline =
      NowNs() + static_cast<uint64_t>(std::chrono::nanoseconds(options_.request_timeout).count());
  Status status = stream_.Send(header, payload, deadline, [this] { return KeepArrived(); });
  if (!status.ok()) {
    if (!stream_.is_open() || status.code() == ErrorCode::kUnavailable) Disconnected();
    return std::move(status).error();
  }
  return id;
}

Result<Response> Client::Deliver(const FrameHeader& header, std::span<const std::byte> payload) {
  const bool is_final = (header.flags & kFlagStream) == 0 || (header.flags & kFlagError) != 0;
  if (is_final) SetFinished(header.request_id, true);
  if ((header.flags & kFlagError) != 0) return ParseErrorPayload(payload);
  return Response{header.request_id, header.type, (header.flags & kFlagStream) == 0, payload};
}

Result<Response> Client::Next(uint64_t request_id, std::chrono::milliseconds timeout) {
  if (request_id < first_id_of_connection_ || request_id >= next_id_) {
    return Error(request_id >= next_id_ ? ErrorCode::kInvalidArgument : ErrorCode::kUnavailable,
                 request_id >= next_id_
                     ? "request " + std::to_string(request_id) + " was never sent"
                     : "the connection was lost before request " + std::to_string(request_id) +
                           " was answered");
  }
  if (IsFinished(request_id)) {
    return Error(ErrorCode::kInvalidArgument,
                 "request " + std::to_string(request_id) + " has had its final reply already");
  }
  for (auto it = stash_.begin(); it != stash_.end(); ++it) {
    if (it->header.request_id == request_id) {
      FrameHeader header = it->header;
      delivered_ = std::move(it->payload);
      stash_.erase(it);
      return Deliver(header, delivered_);
    }
  }
  if (!stream_.is_open()) {
    return Error(ErrorCode::kUnavailable, "the connection was lost before request " +
                                              std::to_string(request_id) + " was answered");
  }
  if (timeout.count() <= 0) timeout = options_.request_timeout;
  // Frames for other requests must not restart the timeout, or a busy stream would keep this
  // wait alive for ever. The first receive reads no clock (the reply is usually there at once);
  // a deadline is set when the first other frame arrives.
  uint64_t deadline = 0;
  for (;;) {
    Result<Message> message =
        deadline == 0 ? stream_.ReceiveWithin(timeout) : stream_.Receive(deadline);
    if (!message.ok()) {
      if (message.error().code() != ErrorCode::kTimeout) Disconnected();
      return std::move(message).error().WithContext("waiting for request " +
                                                    std::to_string(request_id));
    }
    const FrameHeader& h = message->header;
    if (h.request_id == request_id && h.type != static_cast<uint16_t>(MessageType::kShutdown)) {
      return Deliver(h, message->payload);
    }
    RETURN_IF_ERROR(Keep(*message));
    if (deadline == 0) {
      deadline = NowNs() + static_cast<uint64_t>(std::chrono::nanoseconds(timeout).count());
    }
  }
}

Status Client::Keep(const Message& message) {
  const FrameHeader& h = message.header;
  if (h.type == static_cast<uint16_t>(MessageType::kShutdown)) {
    Disconnected();
    shutdown_seen_ = true;
    return Error(ErrorCode::kUnavailable, "the lapce-ai server is shutting down");
  }
  if (h.request_id == 0 && (h.flags & kFlagError) != 0) {
    // A connection-level error (the server is about to close the connection).
    Error error = ParseErrorPayload(message.payload);
    Disconnected();
    return error;
  }
  if (auto it = std::find(abandoned_.begin(), abandoned_.end(), h.request_id);
      it != abandoned_.end()) {
    if ((h.flags & kFlagStream) == 0) abandoned_.erase(it);  // Its last frame.
    return OkStatus();
  }
  stash_.push_back({h, std::vector<std::byte>(message.payload.begin(), message.payload.end())});
  return OkStatus();
}

Status Client::KeepArrived() {
  for (;;) {
    ASSIGN_OR_RETURN(std::optional<Message> message, stream_.TryReceive());
    if (!message) return OkStatus();
    RETURN_IF_ERROR(Keep(*message));
  }
}

Result<Response> Client::Call(uint16_t type, std::span<const std::byte> payload,
                              std::chrono::milliseconds timeout) {
  for (int attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(uint64_t id, Send(type, payload));
    for (;;) {
      Result<Response> response = Next(id, timeout);
      if (!response.ok()) {
        // A server that said goodbye before answering never handled the request: it is safe to
        // send it again, once, to the server that replaces it.
        if (attempt == 0 && shutdown_seen_) break;
        if (response.error().code() == ErrorCode::kTimeout && stream_.is_open()) {
          // Nobody will ask for this one again: stop it, and drop what still comes for it.
          abandoned_.push_back(id);
          (void)Cancel(id);
        }
        return response;
      }
      if (response->is_final) return response;
    }
  }
}

Status Client::Cancel(uint64_t request_id) {
  if (!stream_.is_open()) return Error(ErrorCode::kUnavailable, "not connected");
  FrameHeader header{.flags = kFlagNoReply,
                     .type = static_cast<uint16_t>(MessageType::kCancel),
                     .request_id = request_id};
  return stream_.Send(
      header, {},
      NowNs() + static_cast<uint64_t>(std::chrono::nanoseconds(options_.request_timeout).count()));
}

}  // namespace lai::ipc
