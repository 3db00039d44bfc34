// Helpers shared by the `lapce-ai bench` subcommands: latency percentiles, report rows and a
// loopback listener. Free functions; thread-safe (each touches only its arguments and stdout).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "base/unique_fd.h"

namespace lai::cli {

struct Percentiles {
  uint64_t p50 = 0;
  uint64_t p99 = 0;
  uint64_t max = 0;
};

// Sorts `samples` in place; all zero when empty.
inline Percentiles Summarize(std::vector<uint64_t>& samples) {
  if (samples.empty()) return {};
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) { return samples[static_cast<size_t>(q * (samples.size() - 1))]; };
  return {at(0.50), at(0.99), samples.back()};
}

// One aligned row of a human-readable report: name, value, note.
inline void PrintRow(const std::string& name, const std::string& value, const std::string& note) {
  std::printf("  %-34s %16s   %s\n", name.c_str(), value.c_str(), note.c_str());
}

// A TCP socket listening on 127.0.0.1 at an ephemeral port, which `port` receives; invalid, with
// errno set, when a step fails.
inline UniqueFd ListenOnLoopback(int backlog, uint16_t* port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (!fd.is_valid() ||
      ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::listen(fd.get(), backlog) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return UniqueFd();
  }
  *port = ntohs(address.sin_port);
  return fd;
}

}  // namespace lai::cli
