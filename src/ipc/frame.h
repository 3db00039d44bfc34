// The 24-byte frame header every IPC message starts with, and its validation.
// Plain value types and pure functions; thread-safe. The byte layout is in docs/protocol.md.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>

#include "base/result.h"

namespace lai::ipc {

// x86-64 and aarch64 Linux are little-endian; the encoders below store words as they are.
static_assert(std::endian::native == std::endian::little, "frames are little-endian");

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
  kChecksum = 7,  // Reply is PayloadChecksum() of the payload: 8 bytes, little-endian.
};

// The sum, modulo 2^64, of `payload` read as little-endian 64-bit words (a last partial word
// padded with zeros). What a kChecksum request is answered with: a client can check that bytes
// arrived intact without having them all sent back, and a notification of this type makes the
// server read every byte of it, which is what a one-way throughput measurement needs.
uint64_t PayloadChecksum(std::span<const std::byte> payload);

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

// Validates and decodes 24 bytes. Errors (kProtocol) say which field was wrong:
// bad magic, unsupported version, unknown flags, type out of range, length over
// `max_message_bytes`, or a check mismatch.
Result<FrameHeader> DecodeFrameHeader(const std::byte* in, uint32_t max_message_bytes);

// The check field: a 32-bit multiply-xor mix of the other 20 header bytes, given as the first
// 8 (magic, version, flags, type), the length and the request id. Not a MAC (the peer is the
// same user): it catches garbage and torn headers, and any single flipped bit.
inline uint32_t FrameCheckOf(uint64_t first, uint32_t length, uint64_t request_id) {
  uint64_t x = (first ^ (request_id << 1 | request_id >> 63)) * 0x9e3779b97f4a7c15ull;
  x ^= (uint64_t{length} + 0x632be59bd9b4e019ull) * 0xc2b2ae3d27d4eb4full;
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ull;
  return static_cast<uint32_t>(x ^ (x >> 32));
}

// The check of the 24 header bytes at `header`.
inline uint32_t FrameCheck(const std::byte* header) {
  uint64_t first, request_id;
  uint32_t length;
  std::memcpy(&first, header, 8);
  std::memcpy(&length, header + 8, 4);
  std::memcpy(&request_id, header + 16, 8);
  return FrameCheckOf(first, length, request_id);
}

// Writes the 24-byte little-endian encoding (magic, version, flags, type, length, check,
// request id) into `out`: three 8-byte stores of words built in registers, on every send.
inline void EncodeFrameHeader(const FrameHeader& header, std::byte* out) {
  const uint64_t first = uint64_t{kFrameMagic} | uint64_t{kProtocolVersion} << 32 |
                         uint64_t{header.flags} << 40 | uint64_t{header.type} << 48;
  const uint32_t check = FrameCheckOf(first, header.message_bytes, header.request_id);
  const uint64_t second = uint64_t{header.message_bytes} | uint64_t{check} << 32;
  std::memcpy(out, &first, 8);
  std::memcpy(out + 8, &second, 8);
  std::memcpy(out + 16, &header.request_id, 8);
}

// The hot path of DecodeFrameHeader: the header when every field is valid, nullopt otherwise
// (then DecodeFrameHeader says what was wrong).
inline std::optional<FrameHeader> TryDecodeFrameHeader(const std::byte* in,
                                                       uint32_t max_message_bytes) {
  uint64_t first, second, request_id;
  std::memcpy(&first, in, 8);
  std::memcpy(&second, in + 8, 8);
  std::memcpy(&request_id, in + 16, 8);
  const auto magic = static_cast<uint32_t>(first);
  const auto version = static_cast<uint8_t>(first >> 32);
  const auto flags = static_cast<uint8_t>(first >> 40);
  const auto type = static_cast<uint16_t>(first >> 48);
  const auto length = static_cast<uint32_t>(second);
  const bool valid = magic == kFrameMagic && version == kProtocolVersion &&
                     (flags & ~kKnownFlags) == 0 && type != 0 && type < kMaxMessageTypes &&
                     length <= max_message_bytes &&
                     static_cast<uint32_t>(second >> 32) == FrameCheckOf(first, length, request_id);
  if (!valid) return std::nullopt;
  return FrameHeader{
      .flags = flags, .type = type, .message_bytes = length, .request_id = request_id};
}

std::string_view MessageTypeName(uint16_t type);

}  // namespace lai::ipc
