// Listener: the accepting side of IPC connections with the shape of a Unix listener: bind a
// socket path, accept Streams. For simple servers and tests; the engine's Server uses worker
// threads instead. Thread-compatible.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include "base/result.h"
#include "ipc/stream.h"

namespace lai::ipc {

struct ListenerOptions {
  uint32_t max_message_bytes = 10u << 20;
  uid_t allowed_uid = ::getuid();
  std::chrono::milliseconds handshake_timeout{1000};
  std::chrono::nanoseconds max_spin{20'000};
};

class Listener {
 public:
  // Takes the server lock for `socket_path` (kUnavailable while a live server holds it), replaces
  // a stale socket file, and listens.
  static Result<Listener> Bind(const std::string& socket_path, const ListenerOptions& options = {});

  Listener();
  Listener(Listener&&) noexcept;
  Listener& operator=(Listener&&) noexcept;
  ~Listener();  // Removes the socket file.

  // Waits up to `timeout` for a client and completes its handshake. A refused handshake (wrong
  // uid, bad hello) is answered with the reason and returned as an error.
  Result<Stream> Accept(std::chrono::milliseconds timeout = std::chrono::milliseconds(-1));

  const std::string& path() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace lai::ipc
