// Echo, checksum, health and metrics: the transport's own services.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <string>
#include <string_view>

#include "base/alloc_counter.h"
#include "ipc/server.h"

namespace lai::ipc {

void RegisterBuiltinHandlers(Server& server) {
  server.Handle(static_cast<uint16_t>(MessageType::kEcho), "echo",
                [](const Message& request, Reply& reply) { return reply.Send(request.payload); });
  server.Handle(static_cast<uint16_t>(MessageType::kChecksum), "checksum",
                [](const Message& request, Reply& reply) {
                  uint64_t sum = PayloadChecksum(request.payload);
                  return reply.Send(std::as_bytes(std::span(&sum, 1)));
                });

  auto started = std::chrono::steady_clock::now();
  // Formats into a stack buffer with std::to_chars: the reply allocates nothing, so the allocation
  // count it reports is not disturbed by asking for it, and a health check does not pull libc's
  // printf engine back into the resident set of an idle server.
  server.Handle(static_cast<uint16_t>(MessageType::kHealth), "health",
                [&server, started](const Message&, Reply& reply) {
                  uint64_t allocations = AllocationCount();
                  auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started);
                  rusage usage{};
                  ::getrusage(RUSAGE_SELF, &usage);
                  char body[256];
                  char* out = body;
                  char* const end = body + sizeof(body);
                  auto text = [&](std::string_view s) {  // Never more than fits.
                    size_t n = std::min(s.size(), static_cast<size_t>(end - out));
                    out = std::copy_n(s.data(), n, out);
                  };
                  auto number = [&](long long n) {
                    std::to_chars_result r = std::to_chars(out, end, n);
                    if (r.ec == std::errc()) out = r.ptr;
                  };
                  text("{\"status\":\"ok\",\"pid\":");
                  number(::getpid());
                  text(",\"uptime_ms\":");
                  number(uptime.count());
                  text(",\"connections\":");
                  number(static_cast<long long>(server.connection_count()));
                  text(",\"allocations\":");
                  number(static_cast<long long>(allocations));
                  text(",\"max_rss_bytes\":");
                  number(static_cast<long long>(usage.ru_maxrss) * 1024);
                  text("}");
                  return reply.Send(std::as_bytes(std::span(body, out)));
                });

  server.Handle(static_cast<uint16_t>(MessageType::kMetrics), "metrics",
                [&server](const Message&, Reply& reply) {
                  std::string text = server.metrics().RenderPrometheus();
                  return reply.Send(std::as_bytes(std::span(text)));
                });
}

}  // namespace lai::ipc
