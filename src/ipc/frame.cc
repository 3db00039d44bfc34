#include "ipc/frame.h"

#include <cstring>
#include <string>

namespace lai::ipc {
namespace {

template <typename T>
T Load(const std::byte* in) {
  T v;
  std::memcpy(&v, in, sizeof(T));
  return v;
}

}  // namespace

Result<FrameHeader> DecodeFrameHeader(const std::byte* in, uint32_t max_message_bytes) {
  auto fail = [](std::string what) { return Error(ErrorCode::kProtocol, "bad frame: " + what); };
  uint32_t magic = Load<uint32_t>(in);
  if (magic != kFrameMagic) return fail("bad magic " + std::to_string(magic));
  uint8_t version = static_cast<uint8_t>(in[4]);
  if (version != kProtocolVersion) {
    return fail("unsupported version " + std::to_string(version) + " (this side speaks " +
                std::to_string(kProtocolVersion) + ")");
  }
  FrameHeader h;
  h.flags = static_cast<uint8_t>(in[5]);
  h.type = Load<uint16_t>(in + 6);
  h.message_bytes = Load<uint32_t>(in + 8);
  h.request_id = Load<uint64_t>(in + 16);
  if ((h.flags & ~kKnownFlags) != 0) return fail("unknown flags " + std::to_string(h.flags));
  if (h.type == 0 || h.type >= kMaxMessageTypes) {
    return fail("message type " + std::to_string(h.type) + " out of range 1.." +
                std::to_string(kMaxMessageTypes - 1));
  }
  if (h.message_bytes > max_message_bytes) {
    return fail("message of " + std::to_string(h.message_bytes) + " bytes exceeds the maximum of " +
                std::to_string(max_message_bytes));
  }
  if (Load<uint32_t>(in + 12) != FrameCheck(in)) return fail("header check mismatch");
  return h;
}

std::string_view MessageTypeName(uint16_t type) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::kError: return "error";
    case MessageType::kEcho: return "echo";
    case MessageType::kHealth: return "health";
    case MessageType::kMetrics: return "metrics";
    case MessageType::kCancel: return "cancel";
    case MessageType::kShutdown: return "shutdown";
    case MessageType::kChecksum: return "checksum";
    default: return {};
  }
}

uint64_t PayloadChecksum(std::span<const std::byte> payload) {
  uint64_t sum = 0;
  size_t i = 0;
  for (; i + sizeof(uint64_t) <= payload.size(); i += sizeof(uint64_t)) {
    uint64_t word;
    std::memcpy(&word, payload.data() + i, sizeof(word));
    sum += word;
  }
  if (i < payload.size()) {
    uint64_t word = 0;
    std::memcpy(&word, payload.data() + i, payload.size() - i);
    sum += word;
  }
  return sum;
}

}  // namespace lai::ipc
