// The control-socket handshake: the client's Hello (with its shared file and eventfd) and the
// server's Welcome (with the worker's doorbell file and eventfd) or Refusal. Fixed-size
// little-endian structs sent as one SOCK_SEQPACKET datagram each. Pure functions; thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>

#include "base/result.h"
#include "base/unique_fd.h"
#include "ipc/shm.h"

namespace lai::ipc {

inline constexpr uint32_t kHelloMagic = 0x48494c4c;    // "LLIH"
inline constexpr uint32_t kWelcomeMagic = 0x57494c4c;  // "LLIW"
inline constexpr uint16_t kMinCellsPerRing = 4;
inline constexpr uint32_t kMaxCellsPerRing = 1u << 20;  // 64 MiB per direction.

struct Hello {
  uint32_t magic = kHelloMagic;
  uint16_t min_version = 1;
  uint16_t max_version = 1;
  uint32_t c2s_cells = 0;  // Power of two.
  uint32_t s2c_cells = 0;  // Power of two.
  uint64_t block_offset = 0;  // Offset of the connection block in the shared file.
  uint64_t c2s_salt = 0;
  uint64_t s2c_salt = 0;
  uint32_t max_message_bytes = 0;  // The client's limit; the connection uses the smaller one.
  uint32_t reserved = 0;
};
static_assert(std::is_trivially_copyable_v<Hello> && sizeof(Hello) == 48);

struct Welcome {
  uint32_t magic = kWelcomeMagic;
  uint16_t version = 0;  // Chosen version; 0 in a refusal.
  uint16_t refused = 0;  // Non-zero: `reason` says why, and no descriptors are attached.
  uint32_t slot = 0;     // The connection's bit in the doorbell.
  uint32_t doorbell_bytes = 0;
  uint32_t max_message_bytes = 0;  // Agreed limit.
  uint32_t error_code = 0;         // lai::ErrorCode of a refusal.
  char reason[232] = {};           // NUL-terminated.
};
static_assert(std::is_trivially_copyable_v<Welcome> && sizeof(Welcome) == 256);

// Checks a Hello against the server's limits (versions overlap, ring sizes are powers of two in
// range, the block lies inside a file of `file_bytes`). Errors are kProtocol or kInvalidArgument
// with a message for the client.
Status ValidateHello(const Hello& hello, uint64_t file_bytes);

Welcome MakeRefusal(const Error& error);


// Maps each client shared file once, however many connections arrive with it (one file holds all
// of a client process's connections). Thread-safe.
class SharedFileCache {
 public:
  Result<std::shared_ptr<Mapping>> Map(int fd, size_t min_size_bytes);

 private:
  std::mutex mutex_;
  std::map<std::pair<uint64_t, uint64_t>, std::weak_ptr<Mapping>> files_;  // Guarded by mutex_.
};

// The server's half of a handshake that succeeded so far.
struct AcceptedHello {
  Hello hello;
  std::shared_ptr<Mapping> file;
  UniqueFd client_eventfd;
  uint32_t max_message_bytes = 0;  // Agreed: the smaller of both sides' limits.

  std::byte* block() const { return file->data() + hello.block_offset; }
};

// Reads and checks the client's Hello on a freshly accepted control socket: the peer's uid must
// be `allowed_uid`, the Hello valid, and its descriptors a sealed memfd and an eventfd. On error
// the caller sends a refusal (SendRefusal) and closes the socket.
Result<AcceptedHello> ReceiveHello(int sock, uid_t allowed_uid, uint32_t server_max_message_bytes,
                                   SharedFileCache& files, std::chrono::milliseconds timeout);

Status SendWelcome(int sock, const Welcome& welcome, int doorbell_fd, int worker_eventfd);
void SendRefusal(int sock, const Error& error);

}  // namespace lai::ipc
