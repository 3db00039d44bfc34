#include "server/resident.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>

namespace lai::server {

namespace {

struct Range {
  uintptr_t start = 0;
  uintptr_t end = 0;
};

void Drop(const Range* ranges, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    void* address = reinterpret_cast<void*>(ranges[i].start);
    size_t bytes = ranges[i].end - ranges[i].start;
    ::madvise(address, bytes, MADV_RANDOM);
    ::madvise(address, bytes, MADV_DONTNEED);
  }
}

}  // namespace

void TrimResidentMemory() {
  ::malloc_trim(0);
  // Walk /proc/self/smaps (no allocation, no iostream) for the executable's and every shared
  // library's mappings. The ranges are collected first and dropped together at the end: reading
  // smaps runs libc code (stdio, scanf) that dropping libc's pages halfway would only map back in.
  FILE* smaps = std::fopen("/proc/self/smaps", "re");
  if (smaps == nullptr) return;
  static constexpr size_t kMaxRanges = 256;  // This process has ~90 such mappings.
  Range ranges[kMaxRanges];
  size_t count = 0;
  char line[1024];
  Range current;
  bool droppable = false;
  while (std::fgets(line, sizeof(line), smaps) != nullptr) {
    uintptr_t start = 0;
    uintptr_t end = 0;
    char perms[8] = {};
    int path_at = 0;
    if (std::sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &start, &end, perms, &path_at) >= 3 &&
        path_at > 0) {
      current = Range{start, end};
      droppable = line[path_at] == '/' && perms[1] != 'w' && perms[3] == 'p' && end > start;
      continue;
    }
    // A private mapping never written holds only the file's own pages, which the kernel reads
    // back on the next touch. One with anonymous pages was written (RELRO: the GOT and vtables
    // after relocation, or text relocations): dropping those would lose the writes.
    unsigned long anonymous_kb = 0;
    if (droppable && std::sscanf(line, "Anonymous: %lu kB", &anonymous_kb) == 1) {
      if (anonymous_kb == 0) ranges[count++] = current;
      if (count == kMaxRanges) {
        Drop(ranges, count);
        count = 0;
      }
      droppable = false;
    }
  }
  std::fclose(smaps);
  Drop(ranges, count);
}

}  // namespace lai::server
