// Helpers shared by the ipc tests (test code only): byte patterns, temporary directories,
// deadlines, and an echo server on its own thread. Thread-compatible unless stated.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "base/result.h"
#include "ipc/frame.h"
#include "ipc/listener.h"
#include "ipc/stream.h"
#include "ipc/wait.h"

namespace lai::ipc::test_support {

// Upper bound for anything that should happen at once; only reached when a test fails.
inline constexpr std::chrono::milliseconds kWait{2000};

inline ::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// A deadline on the NowNs() clock, as Stream takes it.
inline uint64_t DeadlineIn(std::chrono::milliseconds from_now) {
  return NowNs() + static_cast<uint64_t>(from_now.count()) * 1'000'000u;
}

// Deterministic pseudo-random bytes.
inline std::vector<std::byte> Pattern(size_t size, uint32_t seed) {
  std::vector<std::byte> bytes(size);
  uint32_t x = seed * 2654435761u + 1;
  for (std::byte& b : bytes) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<std::byte>(x);
  }
  return bytes;
}

inline bool SameBytes(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

// A fresh directory under /tmp (mkdtemp), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/lai-ipc-test-XXXXXX";
    const char* made = ::mkdtemp(name);
    EXPECT_NE(made, nullptr) << "mkdtemp: " << std::strerror(errno);
    path_ = made != nullptr ? made : "/tmp/lai-ipc-test-failed";
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline Listener BindOrDie(const std::string& path, const ListenerOptions& options = {}) {
  Result<Listener> listener = Listener::Bind(path, options);
  EXPECT_TRUE(listener.ok()) << listener.error().ToString();
  return listener.ok() ? std::move(listener).value() : Listener();
}

// Accepts one client on its own thread and echoes every message (adding kFlagResponse) until
// the client goes away or a deadline passes. `listener` must outlive the server.
class EchoServer {
 public:
  explicit EchoServer(Listener& listener, std::chrono::milliseconds deadline = kWait)
      : thread_([this, &listener, deadline] { Run(listener, deadline); }) {}
  ~EchoServer() {
    if (thread_.joinable()) thread_.join();
  }

  // Waits for the session to end; returns the error that ended it (kUnavailable when the
  // client closed).
  Error Join() {
    thread_.join();
    return end_;
  }
  size_t echoed() const { return echoed_.load(); }

 private:
  void Run(Listener& listener, std::chrono::milliseconds deadline) {
    Result<Stream> stream = listener.Accept(kWait);
    if (!stream.ok()) {
      end_ = std::move(stream).error();
      return;
    }
    for (;;) {
      Result<Message> message = stream->Receive(DeadlineIn(deadline));
      if (!message.ok()) {
        end_ = std::move(message).error();
        return;
      }
      FrameHeader reply = message->header;
      reply.flags |= kFlagResponse;
      if (Status sent = stream->Send(reply, message->payload, DeadlineIn(deadline)); !sent.ok()) {
        end_ = std::move(sent).error();
        return;
      }
      ++echoed_;
    }
  }

  Error end_{ErrorCode::kOk, ""};
  std::atomic<size_t> echoed_{0};
  std::thread thread_;  // Last: starts once the members above exist.
};

// Sends `payload` as an echo request and checks the reply.
inline void ExpectEcho(Stream& client, uint64_t request_id, std::span<const std::byte> payload,
                       std::chrono::milliseconds deadline = kWait) {
  SCOPED_TRACE(::testing::Message() << "echo of " << payload.size() << " bytes");
  Status sent = client.Send({.type = 2, .request_id = request_id}, payload, DeadlineIn(deadline));
  ASSERT_TRUE(sent.ok()) << sent.ToString();
  Result<Message> reply = client.Receive(DeadlineIn(deadline));
  ASSERT_TRUE(reply.ok()) << reply.error().ToString();
  EXPECT_EQ(reply->header.type, 2);
  EXPECT_EQ(reply->header.request_id, request_id);
  EXPECT_EQ(reply->header.flags, kFlagResponse);
  EXPECT_EQ(reply->header.message_bytes, payload.size());
  EXPECT_TRUE(SameBytes(reply->payload, payload));
  client.Release();
}

}  // namespace lai::ipc::test_support
