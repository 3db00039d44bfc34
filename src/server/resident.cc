#include "server/resident.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

namespace lai::server {

void TrimResidentCode() {
  // Walk the file-backed mappings in /proc/self/maps (no allocation, no iostream): this
  // executable's and every shared library's (libcurl alone pulls in some 35, whose start-up
  // touches ~10 MB of their code that an idle server never runs again).
  FILE* maps = std::fopen("/proc/self/maps", "re");
  if (maps == nullptr) return;
  char line[1024];
  while (std::fgets(line, sizeof(line), maps) != nullptr) {
    uintptr_t start = 0;
    uintptr_t end = 0;
    char perms[8] = {};
    int path_at = 0;
    if (std::sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &start, &end, perms, &path_at) < 3) {
      continue;
    }
    char* path = line + path_at;
    path[std::strcspn(path, "\n")] = '\0';
    // Only code: read-only, executable, private, file-backed pages, which are never written.
    // Never read-only data: after relocation, RELRO pages (GOT, vtables) hold written copies that
    // MADV_DONTNEED would throw away.
    if (path[0] != '/' || perms[1] == 'w' || perms[2] != 'x' || perms[3] != 'p') {
      continue;
    }
    void* address = reinterpret_cast<void*>(start);
    ::madvise(address, end - start, MADV_RANDOM);
    ::madvise(address, end - start, MADV_DONTNEED);
  }
  std::fclose(maps);
}

}  // namespace lai::server
