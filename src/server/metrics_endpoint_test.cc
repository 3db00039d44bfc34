// The metrics endpoint's HTTP: GET and HEAD /metrics, 404 elsewhere, 405 (naming what is allowed)
// for other methods; driven over a raw loopback socket.
#include "server/metrics_endpoint.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace lai::server {
namespace {

// A socket connected to 127.0.0.1:`port` (-1 when it cannot connect).
int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) return fd;
  ::close(fd);
  return -1;
}

// Sends `request` to 127.0.0.1:`port` and returns the whole response (the server closes).
std::string Exchange(int port, const std::string& request) {
  int fd = Connect(port);
  std::string response;
  if (fd >= 0 && ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
                     static_cast<ssize_t>(request.size())) {
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0;) {
      response.append(buffer, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return response;
}

TEST(MetricsEndpointTest, AnswersGetAndHeadOfMetricsOnly) {
  MetricsEndpoint endpoint([] { return std::string("lapce_ai_up 1\n"); });
  ASSERT_TRUE(endpoint.Start("127.0.0.1:0").ok());
  const int port = endpoint.port();

  std::string get = Exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(get.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << get;
  EXPECT_NE(get.find("Content-Length: 14\r\n"), std::string::npos) << get;
  EXPECT_TRUE(get.ends_with("\r\n\r\nlapce_ai_up 1\n")) << get;

  // A HEAD gets the GET's headers and no body (it got 405).
  std::string head = Exchange(port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("Content-Length: 14\r\n"), std::string::npos) << head;
  EXPECT_TRUE(head.ends_with("\r\n\r\n")) << head;

  std::string elsewhere = Exchange(port, "GET /other HTTP/1.1\r\n\r\n");
  EXPECT_EQ(elsewhere.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u) << elsewhere;

  std::string post = Exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(post.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u) << post;
  EXPECT_NE(post.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos) << post;
  endpoint.Stop();
}

// A client that connects and says nothing (or drips its request) holds up no other scrape: the
// endpoint answered one client at a time, each read waiting up to 2 s.
TEST(MetricsEndpointTest, ASilentClientHoldsUpNoScrape) {
  MetricsEndpoint endpoint([] { return std::string("lapce_ai_up 1\n"); });
  ASSERT_TRUE(endpoint.Start("127.0.0.1:0").ok());
  int silent = Connect(endpoint.port());
  ASSERT_GE(silent, 0);
  int dripping = Connect(endpoint.port());
  ASSERT_GE(dripping, 0);
  ASSERT_EQ(::send(dripping, "GET /met", 8, MSG_NOSIGNAL), 8);
  std::string get = Exchange(endpoint.port(), "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(get.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << get;
  // Answered while the other two were still waiting (each has 2 s from its connect).
  char byte;
  EXPECT_EQ(::recv(silent, &byte, 1, MSG_DONTWAIT), -1) << "the silent client was let go first";
  EXPECT_EQ(errno, EAGAIN);
  // Each is let go at its deadline, with nothing.
  EXPECT_EQ(::recv(silent, &byte, 1, 0), 0);
  EXPECT_EQ(::recv(dripping, &byte, 1, 0), 0);
  ::close(silent);
  ::close(dripping);
  endpoint.Stop();
}

}  // namespace
}  // namespace lai::server
