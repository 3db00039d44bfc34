// The 24-byte frame header every IPC message starts with, and its validation.
// Plain value types and pure functions; thread-safe. The byte layout is in docs/protocol.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "base/result.h"

namespace lai::ipc {

inline constexpr uint32_t kFrameMagic = 0x3149414c;  // "LAI1" as little-endian bytes.
inline constexpr uint8_t kProtocolVersion = 1;
inline constexpr size_t kFrameHeaderBytes = 24;
inline constexpr size_t kMaxMessageTypes = 256;  // Valid types are 1..255.

// Message types. 1..15 are the transport's own; services start at 16.
enum class MessageType : uint16_t {
  kInvalid = 0,
  kError = 1,     // Server -> client: the request failed; payload is {"code":..., "message":...}.
  kEcho = 2,      // Payload returned unchanged.
  kHealth = 3,    // Payload ignored; reply is a small JSON status object.
  kMetrics = 4,   // Reply is the Prometheus text exposition.
  kCancel = 5,    // Client -> server: cancel the streaming request with this frame's request id.
  kShutdown = 6,  // Server -> client: the server is going away; reconnect later.
};

// Flag bits.
inline constexpr uint8_t kFlagMore = 0x01;      // More frames of this message follow.
inline constexpr uint8_t kFlagResponse = 0x02;  // Server -> client reply.
inline constexpr uint8_t kFlagStream = 0x04;    // One item of a streamed reply; more follow.
inline constexpr uint8_t kFlagError = 0x08;     // Payload is an error object.
inline constexpr uint8_t kFlagNoReply = 0x10;   // Client -> server: a notification; no reply.
inline constexpr uint8_t kKnownFlags = 0x1f;

// Decoded header. `message_bytes` is the size of the whole message; a frame carries
// a contiguous piece of it (the transport says how many bytes).
struct FrameHeader {
  uint8_t flags = 0;
  uint16_t type = 0;
  uint32_t message_bytes = 0;
  uint64_t request_id = 0;
};

// Writes the 24-byte little-endian encoding (magic, version, flags, type, length, check,
// request id) into `out`.
void EncodeFrameHeader(const FrameHeader& header, std::byte* out);

// Validates and decodes 24 bytes. Errors (kProtocol) say which field was wrong:
// bad magic, unsupported version, unknown flags, type out of range, length over
// `max_message_bytes`, or a check mismatch.
Result<FrameHeader> DecodeFrameHeader(const std::byte* in, uint32_t max_message_bytes);

// The check field: a hash of the other 20 header bytes.
uint32_t FrameCheck(const std::byte* header);

std::string_view MessageTypeName(uint16_t type);

}  // namespace lai::ipc
