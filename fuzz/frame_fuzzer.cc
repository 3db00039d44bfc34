// libFuzzer target: whatever a hostile client writes into its ring, the server's receive path
// (ring records -> frame headers -> fragment reassembly) must reject cleanly: no crash, no read
// outside the ring, no hang.
//
// Input: a sequence of records, each [u16 length][length bytes of body]; the bodies are
// published as ring records (so they reach the frame decoder and reassembly), and a body whose
// first byte is 0xff is instead written raw over the ring's cells, prefix included.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <memory>
#include <span>
#include <vector>

#include "ipc/buffer_pool.h"
#include "ipc/channel.h"
#include "ipc/frame.h"
#include "ipc/ring.h"

namespace {

using lai::ipc::Channel;

struct Rings {
  static constexpr uint32_t kCells = 64;  // 4 KiB: small, so wrap-around is exercised.
  alignas(64) lai::ipc::RingControl in_control{};
  alignas(64) lai::ipc::RingControl out_control{};
  alignas(64) std::byte in_cells[kCells * lai::ipc::kCellBytes]{};
  alignas(64) std::byte out_cells[kCells * lai::ipc::kCellBytes]{};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size >= lai::ipc::kFrameHeaderBytes) {
    (void)lai::ipc::DecodeFrameHeader(reinterpret_cast<const std::byte*>(data), 1u << 20);
  }
  static lai::ipc::BufferPool pool(
      lai::ipc::BufferPoolOptions{.budget_bytes = 4u << 20, .max_message_bytes = 1u << 20});
  auto rings = std::make_unique<Rings>();
  lai::ipc::RingGeometry in{&rings->in_control, rings->in_cells, Rings::kCells, 0x1234};
  lai::ipc::RingGeometry out{&rings->out_control, rings->out_cells, Rings::kCells, 0x5678};
  lai::ipc::RingWriter producer(in);
  // A waker that wakes nobody: eventfd -1 makes write() fail harmlessly.
  Channel channel(out, in, 1u << 20, pool, lai::ipc::PeerWaker::ToClient(-1));

  size_t at = 0;
  while (at + 2 <= size && !channel.is_broken()) {
    uint16_t length;
    std::memcpy(&length, data + at, 2);
    at += 2;
    length = static_cast<uint16_t>(std::min<size_t>(length, size - at));
    const uint8_t* body = data + at;
    at += length;
    if (length > 0 && body[0] == 0xff) {
      std::memcpy(rings->in_cells, body + 1, std::min<size_t>(length - 1, sizeof(rings->in_cells)));
    } else {
      std::span<std::byte> claimed =
          producer.TryClaim(std::min<uint32_t>(length, producer.max_body_bytes()));
      if (!claimed.empty()) {
        std::memcpy(claimed.data(), body, claimed.size());
        producer.Commit();
      }
    }
    // Drain everything the "server" can read now, touching every payload byte.
    for (int guard = 0; guard < 4 * Rings::kCells; ++guard) {
      Channel::Received r = channel.Receive();
      if (r.status != Channel::ReceiveStatus::kMessage) break;
      volatile uint8_t sink = 0;
      for (std::byte b : r.message.payload) sink = sink ^ static_cast<uint8_t>(b);
      channel.Consume();
    }
  }
  return 0;
}
