#include "workspace/bench_workspace.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <vector>

#include "workspace/internal/spawn.h"
#include "workspace/search.h"
#include "workspace/walker.h"
#include "workspace/workspace.h"

namespace lai::workspace {
namespace {

constexpr std::string_view kLiteral = "needle_benchmark_7f3a";

Status WriteFile(const std::string& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) return Error(ErrorCode::kIo, "bench: write '" + path + "' failed");
  return OkStatus();
}

std::string SourceText(size_t index) {
  std::string text;
  text += "// generated file " + std::to_string(index) + "\n";
  text += "import { helper } from \"../util\";\n\n";
  for (int line = 0; line < 16; ++line) {
    text += "export function f" + std::to_string(index) + "_" + std::to_string(line) +
            "(x: number): number {\n  return helper(x) + " + std::to_string(line) + ";\n}\n";
  }
  if (index % 300 == 7) text += "const marker = \"" + std::string(kLiteral) + "\";\n";
  return text;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

template <typename F>
double TimeMs(int repetitions, F&& body) {
  std::vector<double> samples;
  for (int i = 0; i < std::max(repetitions, 1); ++i) {
    auto start = std::chrono::steady_clock::now();
    body();
    samples.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
  }
  return Median(samples);
}

// Runs a program, returns the number of lines it printed.
Result<size_t> CountOutputLines(std::vector<std::string> argv, const std::string& cwd) {
  internal::SpawnOptions spawn;
  spawn.argv = std::move(argv);
  spawn.cwd = cwd;
  spawn.merges_stderr = true;
  ASSIGN_OR_RETURN(internal::SpawnedChild child, internal::Spawn(spawn));
  int flags = ::fcntl(child.stdout_fd.get(), F_GETFL);
  ::fcntl(child.stdout_fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  size_t lines = 0;
  char buffer[65536];
  ssize_t count;
  while ((count = ::read(child.stdout_fd.get(), buffer, sizeof(buffer))) != 0) {
    if (count < 0) {
      if (errno == EINTR) continue;
      break;
    }
    lines += static_cast<size_t>(std::count(buffer, buffer + count, '\n'));
  }
  int status = 0;
  ::waitpid(child.pid, &status, 0);
  return lines;
}

}  // namespace

Status CreateBenchTree(const std::string& directory, size_t file_count) {
  namespace fs = std::filesystem;
  std::error_code error;
  fs::create_directories(directory, error);
  if (error) return Error(ErrorCode::kIo, "bench: create '" + directory + "': " + error.message());
  RETURN_IF_ERROR(WriteFile(directory + "/.gitignore", "generated/\n*.log\n"));
  RETURN_IF_ERROR(WriteFile(directory + "/README.md", "# bench tree\n"));
  // 85 % sources, 10 % node_modules, 5 % git-ignored generated files.
  size_t node_modules = file_count / 10;
  size_t generated = file_count / 20;
  size_t sources = file_count - node_modules - generated;
  for (size_t i = 0; i < file_count; ++i) {
    std::string dir;
    std::string name;
    if (i < sources) {
      dir = directory + "/src/pkg_" + std::to_string(i / 1700) + "/mod_" +
            std::to_string((i / 50) % 34);
      name = "file_" + std::to_string(i % 50) + ".ts";
    } else if (i < sources + node_modules) {
      size_t k = i - sources;
      dir = directory + "/node_modules/lib_" + std::to_string(k / 100);
      name = "index_" + std::to_string(k % 100) + ".js";
    } else {
      size_t k = i - sources - node_modules;
      dir = directory + "/generated/g_" + std::to_string(k / 100);
      name = "out_" + std::to_string(k % 100) + ".ts";
    }
    if (i % 50 == 0 || i == sources || i == sources + node_modules) {
      fs::create_directories(dir, error);
      if (error) return Error(ErrorCode::kIo, "bench: create '" + dir + "': " + error.message());
    }
    RETURN_IF_ERROR(WriteFile(dir + "/" + name, SourceText(i)));
  }
  return OkStatus();
}

Result<WorkspaceBenchResult> RunWorkspaceBench(const WorkspaceBenchOptions& options) {
  namespace fs = std::filesystem;
  std::string directory = options.directory;
  bool is_temporary = directory.empty();
  if (is_temporary) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && tmp[0] != '\0' ? tmp : "/tmp") + "/lai-bench-tools-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return ErrnoError("bench: mkdtemp", errno);
    directory = pattern;
  }
  struct Cleanup {
    std::string path;
    bool is_enabled;
    ~Cleanup() {
      std::error_code ignored;
      if (is_enabled) fs::remove_all(path, ignored);
    }
  } cleanup{directory, is_temporary};

  WorkspaceBenchResult result;
  result.file_count = options.file_count;
  auto start = std::chrono::steady_clock::now();
  if (is_temporary || !fs::exists(directory + "/.lai-bench-tree")) {
    RETURN_IF_ERROR(CreateBenchTree(directory, options.file_count));
    RETURN_IF_ERROR(WriteFile(directory + "/.lai-bench-tree", std::to_string(options.file_count)));
  }
  result.create_tree_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  ASSIGN_OR_RETURN(auto workspace, Workspace::Open(directory));
  ASSIGN_OR_RETURN(ResolvedPath root, workspace->Resolve("."));

  // (a) Listing.
  Status status;
  ListOptions list_options{.recursive = true, .limit = options.list_limit};
  result.list_files_ms = TimeMs(options.repetitions, [&] {
    Result<ListResult> listed = ListFiles(*workspace, root, list_options);
    if (!listed.ok()) {
      status = listed.status();
      return;
    }
    result.list_entries = listed->entries.size();
  });
  RETURN_IF_ERROR(status);
  ListOptions all_options{.recursive = true, .limit = static_cast<size_t>(-1)};
  result.list_all_ms = TimeMs(options.repetitions, [&] {
    Result<ListResult> listed = ListFiles(*workspace, root, all_options);
    if (!listed.ok()) {
      status = listed.status();
      return;
    }
    result.list_all_entries = listed->entries.size();
  });
  RETURN_IF_ERROR(status);
  result.list_baseline_ms = TimeMs(options.repetitions, [&] {
    size_t files = 0;
    std::error_code error;
    for (auto it = fs::recursive_directory_iterator(directory, error);
         it != fs::recursive_directory_iterator(); it.increment(error)) {
      if (error) break;
      if (it->is_regular_file(error)) {
        (void)it->file_size(error);
        ++files;
      }
    }
    result.list_baseline_files = files;
  });
  result.rg_files_ms = TimeMs(options.repetitions, [&] {
    Result<size_t> lines = CountOutputLines({"rg", "--files", "--no-require-git"}, directory);
    if (lines.ok()) result.rg_files = *lines;
  });

  // (b) Searching.
  SearchOptions search_options;
  search_options.regex = std::string(kLiteral);
  search_options.context_lines = 1;
  result.search_ms = TimeMs(options.repetitions, [&] {
    Result<SearchResult> found = SearchFiles(*workspace, root, search_options);
    if (!found.ok()) {
      status = found.status();
      return;
    }
    result.search_matches = found->match_count;
  });
  RETURN_IF_ERROR(status);
  result.search_naive_ms = TimeMs(options.repetitions, [&] {
    size_t matches = 0;
    std::error_code error;
    std::string content;
    for (auto it = fs::recursive_directory_iterator(directory, error);
         it != fs::recursive_directory_iterator(); it.increment(error)) {
      if (error) break;
      if (!it->is_regular_file(error)) continue;
      std::ifstream in(it->path(), std::ios::binary);
      content.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (content.find(kLiteral) != std::string::npos) ++matches;
    }
    result.search_naive_matches = matches;
  });
  result.rg_search_ms = TimeMs(options.repetitions, [&] {
    (void)CountOutputLines(
        {"rg", "--no-require-git", "-F", "--count-matches", std::string(kLiteral), "."}, directory);
  });
  return result;
}

}  // namespace lai::workspace
