// Helpers for the workspace tests (and the end-to-end tests that start commands): a temporary
// directory tree removed on destruction; waiting for a process to write its pid and to end.
// Thread-compatible; test-only.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace lai::workspace::testing {

class TempTree {
 public:
  TempTree() {
    std::string pattern = ::testing::TempDir() + "lai-ws-XXXXXX";
    char* made = ::mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    char* real = ::realpath(pattern.c_str(), nullptr);
    root_ = real;
    std::free(real);
  }
  ~TempTree() {
    std::error_code ignored;
    // Make unreadable directories removable again.
    for (auto it = std::filesystem::recursive_directory_iterator(
             root_, std::filesystem::directory_options::skip_permission_denied, ignored);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ignored)) {
      if (it->is_directory(ignored) && !it->is_symlink(ignored)) {
        ::chmod(it->path().c_str(), 0755);
      }
    }
    std::filesystem::remove_all(root_, ignored);
  }
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;

  const std::string& root() const { return root_; }
  std::string Path(const std::string& relative) const { return root_ + "/" + relative; }

  // Creates the file (and its parent directories) with `content`.
  void File(const std::string& relative, const std::string& content = "x\n") const {
    std::filesystem::path path = Path(relative);
    std::filesystem::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out << content;
  }
  void Dir(const std::string& relative) const {
    std::filesystem::create_directories(Path(relative));
  }
  void Symlink(const std::string& target, const std::string& relative) const {
    ASSERT_EQ(::symlink(target.c_str(), Path(relative).c_str()), 0) << relative;
  }

 private:
  std::string root_;
};

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The pid a file holds once a process wrote it (polling up to 15 s); 0 when none came.
inline pid_t WaitForPidFile(const std::string& path) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream file(path);
    pid_t pid = 0;
    if (file >> pid && pid > 0) return pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // Bounded polling.
  }
  return 0;
}

// True when `pid` is gone, or a zombie of someone else (PID 1 reaps it eventually), within 5 s.
inline bool ProcessEnds(pid_t pid) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!stat || !std::getline(stat, line)) return true;
    size_t close = line.rfind(')');
    if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z') {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // Bounded polling.
  }
  return false;
}

}  // namespace lai::workspace::testing
