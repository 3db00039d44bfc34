// A client process for the integration tests, started with fork+exec so it owns its own shared
// file (a forked copy of the test process would share the test's arena file).
//
//   ipc_test_helper connect SOCKET N
//     Opens N connections, does one echo round trip on each, writes "ready\n" to fd 3 and waits
//     to be killed (exits by itself after 60 s so it can never outlive a broken test for long).
//   ipc_test_helper echo-forever SOCKET BYTES
//     One connection echoing BYTES-byte messages back to back; "ready\n" on fd 3 after the first
//     round trip, so a kill soon after lands in the middle of a message.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "ipc/client.h"
#include "ipc/frame.h"

namespace {

int Connect(const char* socket_path, int count) {
  std::vector<std::unique_ptr<lai::ipc::Client>> clients;
  for (int i = 0; i < count; ++i) {
    lai::ipc::ClientOptions options;
    options.socket_path = socket_path;
    options.request_timeout = std::chrono::milliseconds(5'000);
    auto client = std::make_unique<lai::ipc::Client>(options);
    std::string payload =
        "helper " + std::to_string(::getpid()) + " connection " + std::to_string(i);
    lai::Result<lai::ipc::Response> r = client->Call(
        static_cast<uint16_t>(lai::ipc::MessageType::kEcho), std::as_bytes(std::span(payload)));
    if (!r.ok()) {
      std::fprintf(stderr, "ipc_test_helper: echo on connection %d: %s\n", i,
                   r.error().ToString().c_str());
      return 1;
    }
    if (r->payload.size() != payload.size()) {
      std::fprintf(stderr, "ipc_test_helper: echo on connection %d came back altered\n", i);
      return 1;
    }
    clients.push_back(std::move(client));
  }
  ssize_t n = ::write(3, "ready\n", 6);
  (void)n;
  ::close(3);
  ::alarm(60);
  for (;;) ::pause();
}

// One connection echoing BYTES-byte messages back to back; "ready" after the first round trip.
int EchoForever(const char* socket_path, size_t bytes) {
  lai::ipc::ClientOptions options;
  options.socket_path = socket_path;
  options.request_timeout = std::chrono::milliseconds(10'000);
  lai::ipc::Client client(options);
  std::vector<std::byte> payload(bytes, std::byte{0x5a});
  ::alarm(60);
  for (bool first = true;; first = false) {
    lai::Result<lai::ipc::Response> r =
        client.Call(static_cast<uint16_t>(lai::ipc::MessageType::kEcho), payload);
    if (!r.ok() || r->payload.size() != bytes) {
      std::fprintf(stderr, "ipc_test_helper: echo of %zu bytes failed\n", bytes);
      return 1;
    }
    if (first) {
      ssize_t n = ::write(3, "ready\n", 6);
      (void)n;
      ::close(3);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "connect") {
    return Connect(argv[2], std::atoi(argv[3]));
  }
  if (argc == 4 && std::string(argv[1]) == "echo-forever") {
    return EchoForever(argv[2], static_cast<size_t>(std::atoll(argv[3])));
  }
  std::fprintf(stderr, "usage: ipc_test_helper connect SOCKET N | echo-forever SOCKET BYTES\n");
  return 2;
}
