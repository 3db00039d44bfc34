#include "ipc/frame.h"

#include <bit>
#include <cstring>
#include <string>

namespace lai::ipc {
namespace {

// x86-64 and aarch64 Linux are little-endian; the static_assert keeps it honest.
static_assert(std::endian::native == std::endian::little, "frames are little-endian");

template <typename T>
void Store(std::byte* out, T v) {
  std::memcpy(out, &v, sizeof(T));
}
template <typename T>
T Load(const std::byte* in) {
  T v;
  std::memcpy(&v, in, sizeof(T));
  return v;
}

}  // namespace

void EncodeFrameHeader(const FrameHeader& header, std::byte* out) {
  Store<uint32_t>(out + 0, kFrameMagic);
  out[4] = std::byte{kProtocolVersion};
  out[5] = std::byte{header.flags};
  Store<uint16_t>(out + 6, header.type);
  Store<uint32_t>(out + 8, header.message_bytes);
  Store<uint64_t>(out + 16, header.request_id);
  Store<uint32_t>(out + 12, FrameCheck(out));
}

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
    default: return {};
  }
}

}  // namespace lai::ipc
