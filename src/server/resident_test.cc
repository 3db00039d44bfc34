#include "server/resident.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "server/agent_setup.h"

namespace lai::server {
namespace {

// The engine's environment and memory, where the provider keys are, are not for its commands
// (/proc/$PPID/environ showed them): it is not dumpable.
TEST(KeepKeysTest, TheProcessIsNotDumpable) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    bool was = ::prctl(PR_GET_DUMPABLE) == 1;
    KeepKeysFromOtherProcesses();
    ::_exit(was && ::prctl(PR_GET_DUMPABLE) == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// Resident kB of the mapping that starts at `address`, from /proc/self/smaps; -1 if not found.
long ResidentKb(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in_mapping = false;
  while (std::getline(smaps, line)) {
    uintptr_t start = 0;
    uintptr_t end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &start, &end) == 2 && line.find(' ') != 0 &&
        line.find(':') > line.find('-')) {
      in_mapping = start == reinterpret_cast<uintptr_t>(address);
      continue;
    }
    long kb = 0;
    if (in_mapping && std::sscanf(line.c_str(), "Rss: %ld kB", &kb) == 1) return kb;
  }
  return -1;
}

class TrimResidentMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char path[] = "/tmp/lai-resident-XXXXXX";
    fd_ = ::mkstemp(path);
    ASSERT_GE(fd_, 0);
    ::unlink(path);
    std::string bytes(kBytes, 'f');
    ASSERT_EQ(::write(fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  void TearDown() override {
    if (map_ != MAP_FAILED) ::munmap(map_, kBytes);
    if (fd_ >= 0) ::close(fd_);
  }
  static constexpr size_t kBytes = 256 * 1024;
  int fd_ = -1;
  void* map_ = MAP_FAILED;
};

TEST_F(TrimResidentMemoryTest, DropsReadOnlyFilePagesThatWereNeverWritten) {
  map_ = ::mmap(nullptr, kBytes, PROT_READ, MAP_PRIVATE, fd_, 0);
  ASSERT_NE(map_, MAP_FAILED);
  const volatile char* bytes = static_cast<const char*>(map_);
  unsigned sum = 0;
  for (size_t i = 0; i < kBytes; i += 4096) sum += static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(sum, 'f' * (kBytes / 4096));
  ASSERT_GE(ResidentKb(map_), 256);

  TrimResidentMemory();

  EXPECT_EQ(ResidentKb(map_), 0);
  EXPECT_EQ(bytes[kBytes - 1], 'f');  // Read back from the page cache.
}

TEST_F(TrimResidentMemoryTest, KeepsWrittenPagesOfAPrivateMappingMadeReadOnly) {
  // The shape of RELRO: a private file mapping written (relocated), then made read-only.
  map_ = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd_, 0);
  ASSERT_NE(map_, MAP_FAILED);
  std::memset(map_, 'w', kBytes);
  ASSERT_EQ(::mprotect(map_, kBytes, PROT_READ), 0);

  TrimResidentMemory();

  const char* bytes = static_cast<const char*>(map_);
  for (size_t i = 0; i < kBytes; i += 4096) ASSERT_EQ(bytes[i], 'w') << "offset " << i;
}

// Virtual calls, exceptions and the standard library go through RELRO, code and unwind tables of
// this executable and of libstdc++ and libc: all still work after a trim.
struct Shape {
  virtual ~Shape() = default;
  virtual int Sides() const = 0;
};
struct Square : Shape {
  int Sides() const override { return 4; }
};

TEST_F(TrimResidentMemoryTest, TheProcessKeepsWorking) {
  TrimResidentMemory();
  TrimResidentMemory();
  std::unique_ptr<Shape> shape = std::make_unique<Square>();
  EXPECT_EQ(shape->Sides(), 4);
  try {
    throw std::runtime_error("after trim");
  } catch (const std::exception& e) {
    EXPECT_STREQ(e.what(), "after trim");
  }
  EXPECT_EQ(std::to_string(12345) + "x", "12345x");
}

}  // namespace
}  // namespace lai::server
