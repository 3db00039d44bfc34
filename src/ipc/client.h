// Client: request/response (and streamed responses) over a Stream, with request ids, deadlines
// and automatic reconnection. Thread-compatible: one thread at a time per Client; open one Client
// per thread for parallel calls (connections are cheap: one shared file per process).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "ipc/stream.h"

namespace lai::ipc {

struct ClientOptions {
  std::string socket_path;
  StreamOptions stream;
  std::chrono::milliseconds request_timeout{30'000};
  // Reconnection backoff after the server went away: first retry at once, then doubling from
  // `reconnect_min` up to `reconnect_max` between attempts.
  std::chrono::microseconds reconnect_min{500};
  std::chrono::microseconds reconnect_max{4'000};
};

// One response frame. `payload` stays valid until the next call on the Client.
struct Response {
  uint64_t request_id = 0;
  uint16_t type = 0;
  bool is_final = true;  // False for an item of a streamed reply.
  std::span<const std::byte> payload;
};

class Client {
 public:
  explicit Client(ClientOptions options);

  // Connects now (otherwise the first request does). Errors as in Stream::Connect.
  Status Connect();

  // Sends a request and returns its id. When disconnected, first tries to reconnect (rate
  // limited by the backoff); fails fast with kUnavailable while the server is away.
  Result<uint64_t> Send(uint16_t type, std::span<const std::byte> payload);

  // Sends a notification: the server handles it but sends no reply (kFlagNoReply).
  Status Notify(uint16_t type, std::span<const std::byte> payload);

  // The next response frame for `request_id`. An error reply becomes its Error (code and message
  // as the server sent them). kTimeout after `timeout` (default: request_timeout), however many
  // frames for other requests keep arriving meanwhile (they are kept for their own Next; the
  // clock starts at the first of them, so the wait is at most twice `timeout`); kUnavailable when
  // the connection was lost before the reply came.
  Result<Response> Next(uint64_t request_id, std::chrono::milliseconds timeout = {});

  // Send + Next until the final reply (stream items are skipped). A request that a server shutting
  // down never handled is sent once more, after reconnecting. One that times out is abandoned:
  // the server is asked to stop it, and whatever it still sends for it is dropped on arrival.
  Result<Response> Call(uint16_t type, std::span<const std::byte> payload,
                        std::chrono::milliseconds timeout = {});

  // Asks the server to stop a streamed reply; its final frame still arrives.
  Status Cancel(uint64_t request_id);

  // Whether the connection is open and the server has not closed its end (one poll() of the
  // control socket): a server that stopped or died reads false at once, before any receive.
  bool is_connected() const { return stream_.is_open() && !stream_.HasPeerHungUp(); }
  // Frames received for requests nobody has taken with Next yet (kept until then).
  size_t stashed_frames() const { return stash_.size(); }
  uint64_t reconnect_count() const { return reconnects_; }
  void Close() { stream_.Close(); }

 private:
  Result<uint64_t> SendWithFlags(uint16_t type, uint8_t flags, std::span<const std::byte> payload);
  Status EnsureConnected();
  void Disconnected();
  Result<Response> Deliver(const FrameHeader& header, std::span<const std::byte> payload);
  // Keeps a frame that is not the one being waited for: in the stash for its own Next, or
  // dropped for an abandoned request. A shutdown or connection-level error disconnects and is
  // returned.
  Status Keep(const Message& message);
  // Keeps every frame that has arrived (Keep), without waiting: a server whose replies fill
  // our ring reads no more of our requests until we read them.
  Status KeepArrived();

  struct Stashed {
    FrameHeader header;
    std::vector<std::byte> payload;
  };

  ClientOptions options_;
  Stream stream_;
  uint64_t next_id_ = 1;
  uint64_t first_id_of_connection_ = 1;
  uint64_t reconnects_ = 0;
  bool ever_connected_ = false;
  // After this long without sending, look at the control socket before trusting the link.
  static constexpr uint64_t kIdleCheckNs = 10'000'000;
  uint64_t last_activity_ = 0;  // CoarseNowNs() of the last send.
  bool shutdown_seen_ = false;  // The server said goodbye before answering.
  uint64_t next_attempt_ns_ = 0;
  uint64_t backoff_ns_ = 0;
  std::string last_error_;
  // Whether each of the last kFinishedWindow requests has had its final reply taken (bit id %
  // kFinishedWindow, cleared when the id is sent): a receive for one fails at once instead of
  // waiting out its timeout. No allocation on the hot path.
  static constexpr uint64_t kFinishedWindow = 4096;
  std::array<uint64_t, kFinishedWindow / 64> finished_{};
  void SetFinished(uint64_t id, bool is_finished) {
    uint64_t bit = uint64_t{1} << (id % 64);
    uint64_t& word = finished_[(id % kFinishedWindow) / 64];
    word = is_finished ? word | bit : word & ~bit;
  }
  bool IsFinished(uint64_t id) const {
    return id + kFinishedWindow >= next_id_ &&
           (finished_[(id % kFinishedWindow) / 64] >> (id % 64) & 1) != 0;
  }
  std::deque<Stashed> stash_;         // Frames for other requests that arrived first.
  std::vector<uint64_t> abandoned_;   // Requests Call gave up on; their frames are dropped.
  std::vector<std::byte> delivered_;  // Backing store of a Response taken from the stash.
};

// Parses an error reply's payload ({"code":...,"message":...}) back into an Error.
Error ParseErrorPayload(std::span<const std::byte> payload);

}  // namespace lai::ipc
