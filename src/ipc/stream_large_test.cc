// Large messages through a Stream with the default (1 KiB) ring: tens of thousands of fragments
// and park/wake cycles, so the run time depends on the machine's load (integration label).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "ipc/listener.h"
#include "ipc/stream.h"
#include "ipc/test_support.h"

namespace lai::ipc {
namespace {

using std::chrono::milliseconds;
using test_support::BindOrDie;
using test_support::EchoServer;
using test_support::ExpectEcho;
using test_support::Pattern;
using test_support::TempDir;

constexpr milliseconds kLargeDeadline{20'000};

TEST(StreamLargeTest, TenMiBMessageThroughTheDefaultRing) {
  TempDir dir;
  Listener listener = BindOrDie(dir.Join("s.sock"));
  EchoServer server(listener, kLargeDeadline);
  Result<Stream> client = Stream::Connect(listener.path());  // Default options: 1 KiB ring.
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  const std::vector<std::byte> payload = Pattern(size_t{10} << 20, 10);
  // Both directions: the server's reply also streams through a full ring.
  ASSERT_NO_FATAL_FAILURE(ExpectEcho(*client, 1, payload, kLargeDeadline));
  ASSERT_NO_FATAL_FAILURE(ExpectEcho(*client, 2, Pattern(size_t{3} << 20, 11), kLargeDeadline));
  client->Close();
  Error end = server.Join();
  EXPECT_EQ(end.code(), ErrorCode::kUnavailable) << end.ToString();
  EXPECT_EQ(server.echoed(), 2u);
}

TEST(StreamLargeTest, ManySmallRoundTrips) {
  TempDir dir;
  Listener listener = BindOrDie(dir.Join("s.sock"));
  EchoServer server(listener, kLargeDeadline);
  Result<Stream> client = Stream::Connect(listener.path());
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  for (uint64_t i = 0; i < 20'000; ++i) {
    ASSERT_NO_FATAL_FAILURE(
        ExpectEcho(*client, i, Pattern(i % 600, static_cast<uint32_t>(i)), kLargeDeadline));
  }
  client->Close();
  EXPECT_EQ(server.Join().code(), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace lai::ipc
