// A 10 MB JSON-RPC message over a pipe pair: whole-line writes and reassembly across many reads.
// Its run time depends on the build type and load, hence the integration label.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "base/unique_fd.h"
#include "rpc/stdio_transport.h"
#include "rpc/test_support.h"

namespace lai::rpc {
namespace {

TEST(StdioLargeTest, TenMegabyteMessagesBothWays) {
  int a_to_b[2], b_to_a[2];
  ASSERT_EQ(::pipe2(a_to_b, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(b_to_a, O_CLOEXEC), 0);
  UniqueFd fds[4] = {UniqueFd(a_to_b[0]), UniqueFd(a_to_b[1]), UniqueFd(b_to_a[0]),
                     UniqueFd(b_to_a[1])};
  StdioTransport a_transport(b_to_a[0], a_to_b[1]);
  StdioTransport b_transport(a_to_b[0], b_to_a[1]);
  Peer a(a_transport, {.name = "a"});
  Peer b(b_transport, {.name = "b"});
  b.HandleRequest("echo",
                  [](std::string_view params, const RequestContext&) -> Result<std::string> {
                    return std::string(params);
                  });
  ASSERT_TRUE(a_transport.Start(a).ok());
  ASSERT_TRUE(b_transport.Start(b).ok());
  // {"blob":"zzz…\nzzz…"}: 10 MB with an escaped newline, still one line.
  std::string params =
      R"({"blob":")" + std::string(5'000'000, 'z') + "\\n" + std::string(5'000'000, 'z') + R"("})";
  Result<std::string> echo = a.Request("echo", params, {.timeout = std::chrono::seconds(30)});
  ASSERT_TRUE(echo.ok()) << echo.error().ToString();
  EXPECT_TRUE(*echo == params) << "the echo differs from the 10 MB request";
  a_transport.Stop();
  b_transport.Stop();
}

}  // namespace
}  // namespace lai::rpc
