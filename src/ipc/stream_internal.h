// Private state of a Stream, shared by stream.cc and listener.cc. Confined like Stream.
#pragma once

#include <cstdint>
#include <memory>
#include <map>
#include <optional>
#include <vector>

#include "base/unique_fd.h"
#include "ipc/channel.h"
#include "ipc/shm.h"
#include "ipc/stream.h"
#include "ipc/wait.h"

namespace lai::ipc {

// A client process's shared file, cut into connection blocks.
struct ArenaChunk {
  UniqueFd fd;
  Mapping mapping;
  size_t used = 0;
  std::map<size_t, std::vector<uint64_t>> free_blocks;  // By block size; guarded by the arena.
};

struct ArenaBlock {
  std::shared_ptr<ArenaChunk> chunk;
  uint64_t offset = 0;
  size_t bytes = 0;
  std::byte* data() const { return chunk->mapping.data() + offset; }
};

struct Stream::State {
  UniqueFd socket;
  UniqueFd own_eventfd;   // The peer writes it to wake us.
  UniqueFd peer_eventfd;  // We write it to wake the peer (client side: the worker's).
  ArenaBlock block;                  // Client side: our rings.
  std::shared_ptr<Mapping> peer_file;  // Server side: the client's rings.
  Mapping doorbell;
  uint32_t* own_sleeping = nullptr;  // Server side: our doorbell's sleeping flag.
  std::optional<Channel> channel;
  SpinBudget spin;
  bool holding = false;
};

}  // namespace lai::ipc
