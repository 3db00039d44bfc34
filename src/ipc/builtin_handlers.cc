// Echo, health and metrics: the transport's own services.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "base/alloc_counter.h"
#include "ipc/server.h"

namespace lai::ipc {

void RegisterBuiltinHandlers(Server& server) {
  server.Handle(static_cast<uint16_t>(MessageType::kEcho), "echo",
                [](const Message& request, Reply& reply) { return reply.Send(request.payload); });

  auto started = std::chrono::steady_clock::now();
  // Formats into a stack buffer: the reply allocates nothing, so the allocation count it reports
  // is not disturbed by asking for it.
  server.Handle(static_cast<uint16_t>(MessageType::kHealth), "health",
                [&server, started](const Message&, Reply& reply) {
                  uint64_t allocations = AllocationCount();
                  auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started);
                  rusage usage{};
                  ::getrusage(RUSAGE_SELF, &usage);
                  char body[256];
                  int n = std::snprintf(
                      body, sizeof(body),
                      "{\"status\":\"ok\",\"pid\":%d,\"uptime_ms\":%lld,\"connections\":%zu,"
                      "\"allocations\":%llu,\"max_rss_bytes\":%lld}",
                      static_cast<int>(::getpid()), static_cast<long long>(uptime.count()),
                      server.connection_count(), static_cast<unsigned long long>(allocations),
                      static_cast<long long>(usage.ru_maxrss) * 1024);
                  return reply.Send(std::as_bytes(std::span(body, static_cast<size_t>(n))));
                });

  server.Handle(static_cast<uint16_t>(MessageType::kMetrics), "metrics",
                [&server](const Message&, Reply& reply) {
                  std::string text = server.metrics().RenderPrometheus();
                  return reply.Send(std::as_bytes(std::span(text)));
                });
}

}  // namespace lai::ipc
