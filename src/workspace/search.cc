#include "workspace/search.h"

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "workspace/ignore.h"
#include "workspace/internal/spawn.h"

namespace lai::workspace {
namespace {

// Kilo Code cuts longer lines and marks them (src/services/ripgrep/index.ts).
constexpr size_t kMaxLineCharacters = 500;
constexpr std::string_view kTruncatedMarker = " [truncated...]";

std::string DecodeBase64(std::string_view encoded) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string decoded;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : encoded) {
    int v = value(c);
    if (v < 0) continue;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      decoded.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return decoded;
}

// ripgrep's "arbitrary data" object: {"text": "..."} or {"bytes": "<base64>"}.
std::string ArbitraryData(const nlohmann::json& data) {
  if (auto it = data.find("text"); it != data.end() && it->is_string())
    return it->get<std::string>();
  if (auto it = data.find("bytes"); it != data.end() && it->is_string()) {
    return DecodeBase64(it->get<std::string>());
  }
  return "";
}

// Cuts after kMaxLineCharacters code points (Kilo counts UTF-16 units; close enough). A match
// that starts past the cut (minified code, a long log line) is shown: the cut then starts a
// little before it, marked with "[...] ". `match_at`: the byte offset of the match.
std::string TruncateLine(std::string line, size_t match_at = 0) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  constexpr size_t kBefore = 100;  // Characters of context shown before a late match.
  auto cut_after = [](std::string_view text, size_t characters) {
    size_t count = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
      if (count++ == characters) return i;
    }
    return text.size();
  };
  std::string_view text = line;
  std::string out;
  if (match_at < text.size() && cut_after(text, kMaxLineCharacters) <= match_at) {
    // Start kBefore characters before the match, at a character boundary.
    size_t start = match_at;
    for (size_t back = 0; start > 0 && back < kBefore;) {
      --start;
      if ((static_cast<unsigned char>(text[start]) & 0xC0) != 0x80) ++back;
    }
    out = "[...] ";
    text.remove_prefix(start);
  }
  size_t end = cut_after(text, kMaxLineCharacters);
  out.append(text.substr(0, end));
  if (end < text.size()) out.append(kTruncatedMarker);
  return out;
}

class OutputParser {
 public:
  OutputParser(const Workspace& workspace, const ResolvedPath& dir, size_t max_results,
               SearchResult* result)
      : workspace_(workspace), dir_(dir), max_results_(max_results), result_(*result) {}

  // Returns false once the cap is reached (the caller stops ripgrep).
  bool ParseLine(std::string_view line) {
    nlohmann::json message;
    try {
      message = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      return true;  // Not a JSON line: ignore it, as Kilo Code does.
    }
    const std::string type = message.value("type", "");
    if (type != "match" && type != "context") return true;
    const nlohmann::json& data = message["data"];
    if (!data.is_object() || !data.contains("path") || !data.contains("lines")) return true;
    std::string path = ArbitraryData(data["path"]);
    if (path.rfind("./", 0) == 0) path.erase(0, 2);
    if (!IsVisible(path)) return true;
    if (type == "match") {
      if (result_.match_count == max_results_) {
        result_.truncated = true;
        return false;
      }
      ++result_.match_count;
    }
    if (result_.files.empty() || result_.files.back().path != path) {
      result_.files.push_back(SearchFileResult{path, {}});
    }
    SearchLine search_line;
    search_line.number = data.value("line_number", 0);
    size_t match_at = 0;
    if (auto submatches = data.find("submatches"); type == "match" && submatches != data.end() &&
                                                   submatches->is_array() && !submatches->empty() &&
                                                   (*submatches)[0].is_object()) {
      match_at = (*submatches)[0].value("start", size_t{0});
    }
    search_line.text = TruncateLine(ArbitraryData(data["lines"]), match_at);
    search_line.is_match = type == "match";
    result_.files.back().lines.push_back(std::move(search_line));
    return true;
  }

 private:
  bool IsVisible(const std::string& path) {
    auto [it, is_new] = visible_.try_emplace(path, true);
    if (is_new && dir_.is_outside) {
      // A folder that holds the workspace: its files in the workspace are blocked there too.
      it->second = !workspace_.IsBlockedAbsolute(path);
    } else if (is_new) {
      ResolvedPath resolved;
      resolved.relative = path;
      resolved.absolute = workspace_.root() == "/" ? "/" + path : workspace_.root() + "/" + path;
      it->second = !workspace_.IsBlocked(resolved);
    }
    return it->second;
  }

  const Workspace& workspace_;
  const ResolvedPath& dir_;
  const size_t max_results_;
  SearchResult& result_;
  std::unordered_map<std::string, bool> visible_;
};

}  // namespace

Result<SearchResult> SearchFiles(const Workspace& workspace, const ResolvedPath& dir,
                                 const SearchOptions& options) {
  if (options.regex.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "the regex is empty; give a pattern in Rust regex syntax");
  }
  struct stat info;
  if (::stat(dir.absolute.c_str(), &info) != 0) {
    if (errno == ENOENT) {
      return Error(ErrorCode::kNotFound, "directory '" + dir.absolute + "' does not exist");
    }
    return ErrnoError("stat '" + dir.absolute + "'", errno);
  }
  SearchResult result;
  if (workspace.IsBlocked(dir)) return result;
  // ripgrep waits forever on a named pipe it is given, and says "0 results" for a directory it
  // cannot read: both are said here.
  if (!S_ISDIR(info.st_mode) && !S_ISREG(info.st_mode)) {
    return Error(
        ErrorCode::kInvalidArgument,
        "'" + dir.absolute + "' is not a directory or a regular file (a pipe, socket or device)");
  }
  if (::access(dir.absolute.c_str(), S_ISDIR(info.st_mode) ? R_OK | X_OK : R_OK) != 0) {
    return ErrnoError("read '" + dir.absolute + "'", errno);
  }

  internal::SpawnOptions spawn;
  spawn.argv = {"rg", "--json", "--no-config", "--no-require-git", "--regexp", options.regex};
  if (!options.file_glob.empty()) {
    spawn.argv.push_back("--glob");
    spawn.argv.push_back(options.file_glob);
  }
  spawn.argv.push_back("--context");
  spawn.argv.push_back(std::to_string(std::max(options.context_lines, 0)));
  // The blocking files' patterns are relative to the root, which is ripgrep's working directory.
  for (const std::string& file :
       dir.is_outside ? std::vector<std::string>{} : workspace.blocking_rules().source_files()) {
    spawn.argv.push_back("--ignore-file");
    spawn.argv.push_back(file);
  }
  spawn.argv.push_back("--");
  spawn.argv.push_back(dir.is_outside ? dir.absolute : (dir.relative.empty() ? "." : dir.relative));
  spawn.cwd = workspace.root();
  // Only what ripgrep needs of the engine's environment, which holds the provider keys: while it
  // runs, a command of another session could read them in its /proc/<pid>/environ.
  spawn.clears_env = true;
  for (const char* name : {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE"}) {
    if (const char* value = std::getenv(name))
      spawn.extra_env.push_back(std::string(name) + "=" + value);
  }

  Result<internal::SpawnedChild> spawned = internal::Spawn(spawn);
  if (!spawned.ok()) {
    if (spawned.error().code() == ErrorCode::kNotFound) {
      return Error(ErrorCode::kUnavailable,
                   "ripgrep (rg) was not found on PATH; install the `ripgrep` "
                   "package");
    }
    return std::move(spawned).error().WithContext("start ripgrep");
  }
  internal::SpawnedChild child = std::move(spawned).value();

  OutputParser parser(workspace, dir, options.max_results, &result);
  std::string pending;
  std::string errors;
  bool is_stopped = false;
  std::array<char, 65536> buffer;
  while (child.stdout_fd.is_valid() || child.stderr_fd.is_valid()) {
    std::array<pollfd, 2> fds = {pollfd{child.stdout_fd.get(), POLLIN, 0},
                                 pollfd{child.stderr_fd.get(), POLLIN, 0}};
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int index = 0; index < 2; ++index) {
      if (fds[index].fd < 0 || fds[index].revents == 0) continue;
      UniqueFd& fd = index == 0 ? child.stdout_fd : child.stderr_fd;
      ssize_t count = ::read(fd.get(), buffer.data(), buffer.size());
      if (count < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (count <= 0) {
        fd.Reset();
        continue;
      }
      if (index == 1) {
        if (errors.size() < 65536) errors.append(buffer.data(), static_cast<size_t>(count));
        continue;
      }
      if (is_stopped) continue;
      pending.append(buffer.data(), static_cast<size_t>(count));
      size_t start = 0;
      for (size_t end; (end = pending.find('\n', start)) != std::string::npos; start = end + 1) {
        if (!parser.ParseLine(std::string_view(pending).substr(start, end - start))) {
          is_stopped = true;
          ::kill(child.pid, SIGTERM);  // Enough results: stop ripgrep, drain until EOF.
          break;
        }
      }
      if (is_stopped) {
        pending.clear();
      } else {
        pending.erase(0, start);
      }
    }
  }
  if (!is_stopped && !pending.empty()) parser.ParseLine(pending);

  int status = 0;
  while (::waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
  }
  // Exit 2 with a regex or glob complaint is the caller's input; other errors (an unreadable
  // file) leave partial results, which are returned.
  if (!is_stopped && WIFEXITED(status) && WEXITSTATUS(status) == 2 &&
      (errors.find("regex") != std::string::npos || errors.find("glob") != std::string::npos)) {
    // ripgrep's advice is for its own flags ("Consider enabling PCRE2 with the --pcre2 flag"),
    // which the model cannot pass: ours instead.
    std::string advice;
    if (size_t consider = errors.find("\nConsider enabling"); consider != std::string::npos) {
      advice = errors.find("multiline", consider) != std::string::npos
                   ? " Matches are found within one line: search for one line of the text."
                   : " Look-around and backreferences are not supported: match the text "
                     "itself, and narrow with file_pattern or a second search.";
      errors.resize(consider);
    }
    while (!errors.empty() && (errors.back() == '\n' || errors.back() == ' ')) errors.pop_back();
    return Error(ErrorCode::kInvalidArgument, "ripgrep rejected the search: " + errors + advice);
  }
  return result;
}

}  // namespace lai::workspace
