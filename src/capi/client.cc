// The C ABI of include/lapce_ai/client.h, implemented over lai::ipc::Client. No C++ exception
// leaves these functions. Handles are thread-compatible; the free functions are thread-safe.
#include "lapce_ai/client.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "base/result.h"
#include "ipc/client.h"
#include "ipc/frame.h"
#include "ipc/socket.h"
#include "server/services.h"

// A connection handle. Thread-compatible (see the header).
struct lai_client {
  explicit lai_client(lai::ipc::ClientOptions options)
      : max_message_bytes(options.stream.max_message_bytes), client(std::move(options)) {}

  const uint32_t max_message_bytes;
  lai::ipc::Client client;
  std::string last_error;
  const char* fallback_error = nullptr;  // Used when recording `last_error` ran out of memory.
};

namespace {

using lai::Error;
using lai::ErrorCode;

// The transport's message types, as the C header numbers them.
using lai::ipc::MessageType;
static_assert(LAI_MESSAGE_ECHO == static_cast<int>(MessageType::kEcho));
static_assert(LAI_MESSAGE_HEALTH == static_cast<int>(MessageType::kHealth));
static_assert(LAI_MESSAGE_METRICS == static_cast<int>(MessageType::kMetrics));
static_assert(LAI_MESSAGE_CHECKSUM == static_cast<int>(MessageType::kChecksum));
static_assert(LAI_MESSAGE_COMPLETE == lai::server::ToWire(lai::server::ServiceType::kComplete));
static_assert(LAI_MESSAGE_RPC_OPEN == lai::server::ToWire(lai::server::ServiceType::kRpcOpen));
static_assert(LAI_MESSAGE_RPC_MESSAGE ==
              lai::server::ToWire(lai::server::ServiceType::kRpcMessage));

// The C enum mirrors lai::ErrorCode value for value, so a code converts with a cast.
static_assert(LAI_OK == static_cast<int>(ErrorCode::kOk));
static_assert(LAI_ERR_INVALID_ARGUMENT == static_cast<int>(ErrorCode::kInvalidArgument));
static_assert(LAI_ERR_NOT_FOUND == static_cast<int>(ErrorCode::kNotFound));
static_assert(LAI_ERR_PERMISSION_DENIED == static_cast<int>(ErrorCode::kPermissionDenied));
static_assert(LAI_ERR_UNAVAILABLE == static_cast<int>(ErrorCode::kUnavailable));
static_assert(LAI_ERR_TIMEOUT == static_cast<int>(ErrorCode::kTimeout));
static_assert(LAI_ERR_IO == static_cast<int>(ErrorCode::kIo));
static_assert(LAI_ERR_PROTOCOL == static_cast<int>(ErrorCode::kProtocol));
static_assert(LAI_ERR_CANCELLED == static_cast<int>(ErrorCode::kCancelled));
static_assert(LAI_ERR_RESOURCE_EXHAUSTED == static_cast<int>(ErrorCode::kResourceExhausted));
static_assert(LAI_ERR_INTERNAL == static_cast<int>(ErrorCode::kInternal));

// The ABI: these layouts are part of the contract with already-compiled callers.
static_assert(sizeof(lai_client_options) == 20 && alignof(lai_client_options) == 4);
static_assert(offsetof(lai_client_options, connect_timeout_ms) == 16);
static_assert(offsetof(lai_response, type) == 8 && offsetof(lai_response, is_final) == 10);
static_assert(offsetof(lai_response, data) == 16 && offsetof(lai_response, length) == 24);
static_assert(sizeof(lai_response) == 32);
static_assert(lai::ipc::kMaxMessageTypes == 256, "lai_client_request documents types 1..255");

// The first version of lai_client_options: every caller passes at least this much.
constexpr uint32_t kOptionsV1Bytes = 20;
// Larger struct_size values are garbage, not a future version.
constexpr uint32_t kMaxOptionsBytes = 4096;
// Reassembly buffers are capped at 1 GiB (the client buffer pool's limit).
constexpr uint32_t kMaxMessageBytesLimit = 1u << 30;
constexpr const char* kOutOfMemoryText = "out of memory while recording an error";

thread_local std::string t_error;
thread_local const char* t_fallback_error = nullptr;

lai_status ToStatus(ErrorCode code) { return static_cast<lai_status>(code); }

void Record(std::string& text, const char*& fallback, std::string_view message,
            std::string_view more = {}) noexcept {
  try {
    text.assign(message);
    text.append(more);
    fallback = nullptr;
  } catch (...) {
    fallback = kOutOfMemoryText;
  }
}

lai_status ClientError(lai_client* client, lai_status status, std::string_view message) noexcept {
  Record(client->last_error, client->fallback_error, message);
  return status;
}

lai_status ClientError(lai_client* client, const Error& error) noexcept {
  return ClientError(client, ToStatus(error.code()), error.message());
}

lai_status ClientOk(lai_client* client) noexcept {
  client->last_error.clear();
  client->fallback_error = nullptr;
  return LAI_OK;
}

lai_status ThreadError(lai_status status, std::string_view message,
                       std::string_view more = {}) noexcept {
  Record(t_error, t_fallback_error, message, more);
  return status;
}

lai_status NullHandle(const char* function) noexcept {
  return ThreadError(LAI_ERR_INVALID_ARGUMENT, function, ": client is NULL");
}

// Runs `body`, turning any exception into a status that `on_error(status, function, text)`
// records without throwing.
template <typename Body, typename OnError>
lai_status Guard(const char* function, Body&& body, OnError&& on_error) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return on_error(LAI_ERR_RESOURCE_EXHAUSTED, function, ": out of memory");
  } catch (...) {
    // what() is deliberately not shown: it may quote input bytes.
    return on_error(LAI_ERR_INTERNAL, function, ": unexpected C++ exception (a lapce-ai bug)");
  }
}

template <typename Body>
lai_status GuardClient(lai_client* client, const char* function, Body&& body) noexcept {
  return Guard(function, std::forward<Body>(body),
               [client](lai_status status, const char* prefix, const char* text) noexcept {
                 Record(client->last_error, client->fallback_error, prefix, text);
                 return status;
               });
}

std::string DefaultSocketPath() { return lai::ipc::RuntimeDir("") + "/engine.sock"; }

lai::Result<lai::ipc::ClientOptions> MakeOptions(const char* socket_path,
                                                 const lai_client_options* given) {
  lai_client_options o{};
  if (given != nullptr) {
    uint32_t size = given->struct_size;
    if (size < kOptionsV1Bytes || size > kMaxOptionsBytes) {
      return Error(ErrorCode::kInvalidArgument, "options.struct_size is " + std::to_string(size) +
                                                    "; set it to sizeof(lai_client_options)");
    }
    std::memcpy(&o, given, std::min<size_t>(size, sizeof(o)));
    // A newer caller may pass fields this library does not know; fine while they are left 0.
    const auto* extra = reinterpret_cast<const unsigned char*>(given) + sizeof(o);
    for (size_t i = 0; i + sizeof(o) < size; ++i) {
      if (extra[i] != 0) {
        return Error(ErrorCode::kInvalidArgument,
                     "options set fields that this liblapce_ai_client (ABI version " +
                         std::to_string(LAPCE_AI_CLIENT_ABI_VERSION) +
                         ") does not know; leave them 0 or use a newer library");
      }
    }
  }
  if (o.max_message_bytes > kMaxMessageBytesLimit) {
    return Error(ErrorCode::kInvalidArgument,
                 "options.max_message_bytes is " + std::to_string(o.max_message_bytes) +
                     "; the maximum is " + std::to_string(kMaxMessageBytesLimit));
  }
  if (socket_path != nullptr && socket_path[0] == '\0') {
    return Error(ErrorCode::kInvalidArgument,
                 "socket path is empty; pass NULL for the default path");
  }

  lai::ipc::ClientOptions options;
  options.socket_path = socket_path != nullptr ? std::string(socket_path) : DefaultSocketPath();
  if (o.ring_bytes != 0) options.stream.ring_bytes = o.ring_bytes;
  if (o.max_message_bytes != 0) options.stream.max_message_bytes = o.max_message_bytes;
  if (o.request_timeout_ms != 0) {
    options.request_timeout = std::chrono::milliseconds(o.request_timeout_ms);
  }
  if (o.connect_timeout_ms != 0) {
    options.stream.handshake_timeout = std::chrono::milliseconds(o.connect_timeout_ms);
  }
  return options;
}

// Arguments shared by request and call. LAI_OK when they are usable.
lai_status CheckRequest(lai_client* client, const char* function, uint16_t type,
                        const void* payload, size_t length) {
  if (type == 0 || type >= lai::ipc::kMaxMessageTypes) {
    // The server would treat such a frame as a protocol violation and drop the connection.
    return ClientError(client, LAI_ERR_INVALID_ARGUMENT,
                       std::string(function) + ": message type " + std::to_string(type) +
                           " is out of range 1.." + std::to_string(lai::ipc::kMaxMessageTypes - 1));
  }
  using lai::ipc::MessageType;
  if (type == static_cast<uint16_t>(MessageType::kError) ||
      type == static_cast<uint16_t>(MessageType::kCancel) ||
      type == static_cast<uint16_t>(MessageType::kShutdown)) {
    // Control frames of the transport: a client sending one would end its own connection.
    return ClientError(client, LAI_ERR_INVALID_ARGUMENT,
                       std::string(function) + ": message type " + std::to_string(type) +
                           " is a transport control frame, not a request (cancel with "
                           "lai_client_cancel)");
  }
  if (payload == nullptr && length != 0) {
    return ClientError(
        client, LAI_ERR_INVALID_ARGUMENT,
        std::string(function) + ": payload is NULL but length is " + std::to_string(length));
  }
  if (length > client->max_message_bytes) {
    return ClientError(client, LAI_ERR_INVALID_ARGUMENT,
                       std::string(function) + ": payload of " + std::to_string(length) +
                           " bytes exceeds max_message_bytes (" +
                           std::to_string(client->max_message_bytes) + ")");
  }
  return LAI_OK;
}

std::span<const std::byte> PayloadSpan(const void* payload, size_t length) {
  if (length == 0) return {};
  return {static_cast<const std::byte*>(payload), length};
}

void Fill(const lai::ipc::Response& from, lai_response* to) {
  to->request_id = from.request_id;
  to->type = from.type;
  to->is_final = from.is_final;
  to->data = from.payload.empty() ? nullptr : reinterpret_cast<const uint8_t*>(from.payload.data());
  to->length = from.payload.size();
}

void Clear(lai_response* response) { *response = lai_response{}; }

lai_status TakeResponse(lai_client* client, lai::Result<lai::ipc::Response> result,
                        lai_response* out) {
  if (!result.ok()) return ClientError(client, result.error());
  Fill(*result, out);
  return ClientOk(client);
}

}  // namespace

extern "C" {

uint32_t lai_abi_version(void) { return LAPCE_AI_CLIENT_ABI_VERSION; }

const char* lai_status_string(lai_status status) {
  // A C caller may pass any int: switch on the integer, not on the enum's (narrower) value range.
  int value = static_cast<int>(status);
  switch (value) {
    case LAI_OK:
    case LAI_ERR_INVALID_ARGUMENT:
    case LAI_ERR_NOT_FOUND:
    case LAI_ERR_PERMISSION_DENIED:
    case LAI_ERR_UNAVAILABLE:
    case LAI_ERR_TIMEOUT:
    case LAI_ERR_IO:
    case LAI_ERR_PROTOCOL:
    case LAI_ERR_CANCELLED:
    case LAI_ERR_RESOURCE_EXHAUSTED:
    case LAI_ERR_INTERNAL:
      // ErrorCodeName returns views of string literals, so data() is NUL-terminated.
      return lai::ErrorCodeName(static_cast<ErrorCode>(value)).data();
  }
  return "unknown status";
}

lai_status lai_client_connect(const char* socket_path, const lai_client_options* options,
                              lai_client** out_client) {
  auto on_error = [](lai_status status, const char* prefix, const char* text) noexcept {
    return ThreadError(status, prefix, text);
  };
  return Guard(
      "lai_client_connect",
      [&]() -> lai_status {
        if (out_client == nullptr) {
          return ThreadError(LAI_ERR_INVALID_ARGUMENT, "lai_client_connect: out_client is NULL");
        }
        *out_client = nullptr;
        lai::Result<lai::ipc::ClientOptions> client_options = MakeOptions(socket_path, options);
        if (!client_options.ok()) {
          const Error& e = client_options.error();
          return ThreadError(ToStatus(e.code()), "lai_client_connect: ", e.message());
        }
        auto client = std::make_unique<lai_client>(std::move(client_options).value());
        if (lai::Status status = client->client.Connect(); !status.ok()) {
          return ThreadError(ToStatus(status.code()), status.error().message());
        }
        t_error.clear();
        t_fallback_error = nullptr;
        *out_client = client.release();
        return LAI_OK;
      },
      on_error);
}

lai_status lai_client_notify(lai_client* client, uint16_t type, const void* payload,
                             size_t length) {
  constexpr const char* kFunction = "lai_client_notify";
  if (client == nullptr) return NullHandle(kFunction);
  return GuardClient(client, kFunction, [&]() -> lai_status {
    if (lai_status s = CheckRequest(client, kFunction, type, payload, length); s != LAI_OK) {
      return s;
    }
    lai::Status sent = client->client.Notify(type, PayloadSpan(payload, length));
    if (!sent.ok()) return ClientError(client, sent.error());
    return ClientOk(client);
  });
}

lai_status lai_client_request(lai_client* client, uint16_t type, const void* payload, size_t length,
                              uint64_t* out_request_id) {
  constexpr const char* kFunction = "lai_client_request";
  if (client == nullptr) return NullHandle(kFunction);
  return GuardClient(client, kFunction, [&]() -> lai_status {
    if (out_request_id == nullptr) {
      return ClientError(client, LAI_ERR_INVALID_ARGUMENT,
                         "lai_client_request: out_request_id is NULL");
    }
    *out_request_id = 0;
    if (lai_status s = CheckRequest(client, kFunction, type, payload, length); s != LAI_OK) {
      return s;
    }
    lai::Result<uint64_t> id = client->client.Send(type, PayloadSpan(payload, length));
    if (!id.ok()) return ClientError(client, id.error());
    *out_request_id = *id;
    return ClientOk(client);
  });
}

lai_status lai_client_receive(lai_client* client, uint64_t request_id, uint32_t timeout_ms,
                              lai_response* out_response) {
  constexpr const char* kFunction = "lai_client_receive";
  if (client == nullptr) return NullHandle(kFunction);
  return GuardClient(client, kFunction, [&]() -> lai_status {
    if (out_response == nullptr) {
      return ClientError(client, LAI_ERR_INVALID_ARGUMENT,
                         "lai_client_receive: out_response is NULL");
    }
    Clear(out_response);
    if (request_id == 0) {
      return ClientError(client, LAI_ERR_INVALID_ARGUMENT,
                         "lai_client_receive: request id 0 is never used");
    }
    return TakeResponse(client,
                        client->client.Next(request_id, std::chrono::milliseconds(timeout_ms)),
                        out_response);
  });
}

lai_status lai_client_call(lai_client* client, uint16_t type, const void* payload, size_t length,
                           uint32_t timeout_ms, lai_response* out_response) {
  constexpr const char* kFunction = "lai_client_call";
  if (client == nullptr) return NullHandle(kFunction);
  return GuardClient(client, kFunction, [&]() -> lai_status {
    if (out_response == nullptr) {
      return ClientError(client, LAI_ERR_INVALID_ARGUMENT, "lai_client_call: out_response is NULL");
    }
    Clear(out_response);
    if (lai_status s = CheckRequest(client, kFunction, type, payload, length); s != LAI_OK) {
      return s;
    }
    return TakeResponse(client,
                        client->client.Call(type, PayloadSpan(payload, length),
                                            std::chrono::milliseconds(timeout_ms)),
                        out_response);
  });
}

lai_status lai_client_cancel(lai_client* client, uint64_t request_id) {
  constexpr const char* kFunction = "lai_client_cancel";
  if (client == nullptr) return NullHandle(kFunction);
  return GuardClient(client, kFunction, [&]() -> lai_status {
    if (request_id == 0) {
      return ClientError(client, LAI_ERR_INVALID_ARGUMENT,
                         "lai_client_cancel: request id 0 is never used");
    }
    if (lai::Status status = client->client.Cancel(request_id); !status.ok()) {
      return ClientError(
          client, ToStatus(status.code()),
          "cancel request " + std::to_string(request_id) + ": " + status.error().message());
    }
    return ClientOk(client);
  });
}

bool lai_client_is_connected(const lai_client* client) {
  return client != nullptr && client->client.is_connected();
}

void lai_client_close(lai_client* client) {
  // Destruction closes the stream; nothing in it throws.
  delete client;
}

const char* lai_client_last_error(const lai_client* client) {
  if (client == nullptr) return "lai_client_last_error: client is NULL";
  return client->fallback_error != nullptr ? client->fallback_error : client->last_error.c_str();
}

const char* lai_thread_error(void) {
  return t_fallback_error != nullptr ? t_fallback_error : t_error.c_str();
}

}  // extern "C"
