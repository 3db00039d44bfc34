// The message types of the engine's IPC services (16..255; 1..15 belong to the transport, see
// ipc/frame.h). The one place they are numbered; docs/protocol.md §11 documents their payloads.
#pragma once

#include <cstdint>

namespace lai::server {

enum class ServiceType : uint16_t {
  // Request: an AIRequest (JSON). Streamed reply: one JSON event per item (text, reasoning, tool
  // calls, usage, error); the final reply is the `done` event. See completion_service.h.
  kComplete = 16,
  // JSON-RPC over shared memory (docs/protocol.md §13, rpc/shm_transport.h). Request (empty
  // payload): opens a channel; the streamed reply's first item is the 8-byte channel token, each
  // later item one server → client JSON-RPC message; the final reply ends the channel.
  kRpcOpen = 17,
  // Notification: the 8-byte channel token, then one client → server JSON-RPC message (nothing
  // after the token = close the channel).
  kRpcMessage = 18,
};

inline constexpr uint16_t ToWire(ServiceType type) { return static_cast<uint16_t>(type); }

}  // namespace lai::server
