#include "workspace/workspace.h"

#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <ranges>
#include <vector>

#include "workspace/ignore.h"
#include "workspace/process.h"
#include "workspace/text.h"

namespace lai::workspace {
namespace {

// Kilo Code reads .kilocodeignore; .rooignore is honoured too, both merged when both exist.
constexpr std::array<const char*, 2> kBlockingFiles = {".kilocodeignore", ".rooignore"};

constexpr int kMaxSymlinks = 40;  // Linux's MAXSYMLINKS.

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

void PopComponent(std::string* path) {
  size_t slash = path->rfind('/');
  path->resize(slash == 0 ? 1 : slash);
}

void AppendComponent(std::string* path, std::string_view component) {
  if (path->back() != '/') path->push_back('/');
  path->append(component);
}

// Canonicalises an absolute path whose tail may not exist: symlinks are followed for the part
// that exists, the rest is normalised lexically.
Result<std::string> Canonicalize(std::string_view absolute) {
  std::vector<std::string> pending;  // Components still to walk, last one first.
  for (std::string_view part : SplitPath(absolute)) pending.emplace_back(part);
  std::reverse(pending.begin(), pending.end());
  std::string current = "/";
  int missing = 0;  // Components appended that do not exist on disk.
  int links = 0;
  while (!pending.empty()) {
    std::string component = std::move(pending.back());
    pending.pop_back();
    if (component == ".") continue;
    if (component == "..") {
      PopComponent(&current);
      if (missing > 0) --missing;
      continue;
    }
    std::string next = current;
    AppendComponent(&next, component);
    if (missing > 0) {
      current = std::move(next);
      ++missing;
      continue;
    }
    struct stat info;
    if (::lstat(next.c_str(), &info) != 0) {
      // ENOENT (a new file), ENOTDIR, EACCES: the rest cannot be followed, keep it lexical.
      current = std::move(next);
      ++missing;
      continue;
    }
    if (!S_ISLNK(info.st_mode)) {
      current = std::move(next);
      continue;
    }
    if (++links > kMaxSymlinks) {
      return Error(ErrorCode::kInvalidArgument,
                   "resolve '" + std::string(absolute) +
                       "': too many levels of symbolic links (a symlink loop?)");
    }
    std::array<char, PATH_MAX> target;
    ssize_t length = ::readlink(next.c_str(), target.data(), target.size());
    if (length < 0) return ErrnoError("readlink '" + next + "'", errno);
    std::string_view target_view(target.data(), static_cast<size_t>(length));
    if (!target_view.empty() && target_view[0] == '/') current.assign(1, '/');
    std::vector<std::string_view> target_parts = SplitPath(target_view);
    for (auto it = target_parts.rbegin(); it != target_parts.rend(); ++it) {
      pending.emplace_back(*it);
    }
  }
  return current;
}

bool IsDirectory(const std::string& absolute) {
  struct stat info;
  return ::stat(absolute.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

}  // namespace

Workspace::Workspace(std::string root, std::unique_ptr<IgnoreRules> blocking)
    : root_(std::move(root)), blocking_(std::move(blocking)) {}

Workspace::~Workspace() = default;

namespace {

// An ignore file larger than this is refused (a link to /dev/zero would be read for ever).
constexpr size_t kMaxIgnoreFileBytes = 4 << 20;

// What identifies the state of the root's ignore files: each one's content, or its absence.
// Contents, not times: two writes within one tick of the file-time clock (a few ms) would look
// the same by their times.
std::string BlockingFilesStamp(const std::string& root) {
  std::string stamp;
  for (const char* name : kBlockingFiles) {
    std::string path = root == "/" ? std::string() : root;
    path.append("/").append(name);
    Result<std::string> content = ReadFileBytes(path, kMaxIgnoreFileBytes);
    stamp += content.ok() ? '+' + std::to_string(content->size()) + ':' + *content
                          : '-' + content.error().message() + '\n';
  }
  return stamp;
}

}  // namespace

bool Workspace::IsCurrent() const { return BlockingFilesStamp(root_) == stamp_; }

Result<std::shared_ptr<const Workspace>> Workspace::Open(std::string_view root) {
  if (root.empty() || root.find('\0') != std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument,
                 "open workspace: the root must be a non-empty directory path without NUL bytes");
  }
  std::string root_string(root);
  char* real = ::realpath(root_string.c_str(), nullptr);
  if (real == nullptr) return ErrnoError("open workspace '" + root_string + "'", errno);
  std::string canonical(real);
  std::free(real);
  struct stat info;
  if (::stat(canonical.c_str(), &info) != 0) {
    return ErrnoError("open workspace '" + root_string + "'", errno);
  }
  if (!S_ISDIR(info.st_mode)) {
    return Error(ErrorCode::kInvalidArgument,
                 "open workspace '" + root_string + "': not a directory; pass the project folder");
  }

  // Taken before the files are read: a change while they are read shows as stale next time.
  std::string stamp = BlockingFilesStamp(canonical);
  auto blocking = std::make_unique<IgnoreRules>();
  for (const char* name : kBlockingFiles) {
    std::string path = canonical == "/" ? std::string() : canonical;
    path.append("/").append(name);  // Appending avoids GCC 12's false -Wrestrict at -O3.
    // A link to a device or a FIFO (a cloned repository can hold one) is refused, not read for
    // ever or waited on.
    Result<std::string> content = ReadFileBytes(path, kMaxIgnoreFileBytes);
    if (!content.ok() && content.error().code() == ErrorCode::kNotFound) continue;
    if (!content.ok()) {
      return Error(content.error().code(), "open workspace: " + content.error().message() +
                                               "; it must be a file of ignore patterns");
    }
    blocking->AddPatterns(*content);
    // Kilo Code also blocks the ignore file itself once it exists.
    blocking->AddPatterns(name);
    blocking->AddSourceFile(path);
  }
  auto opened = std::make_shared<Workspace>(std::move(canonical), std::move(blocking));
  opened->stamp_ = std::move(stamp);
  return std::shared_ptr<const Workspace>(std::move(opened));
}

namespace {
std::optional<std::string> HomeDirectory();
}  // namespace

Result<ResolvedPath> Workspace::Resolve(std::string_view path, bool allow_outside) const {
  if (path.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "resolve path: the path is empty; give a path relative to the workspace root '" +
                     root_ + "'");
  }
  if (path.find('\0') != std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument,
                 "resolve path: the path contains a NUL byte; remove it");
  }
  std::string joined;
  std::optional<std::string> home;
  if (path[0] == '/') {
    joined = std::string(path);
  } else if ((path == "~" || path.starts_with("~/")) && (home = HomeDirectory())) {
    joined = *home + std::string(path.substr(1));  // The user's home, as a shell reads it.
  } else {
    joined = root_;
    AppendComponent(&joined, path);
  }
  ASSIGN_OR_RETURN(std::string absolute, Canonicalize(joined));

  ResolvedPath resolved;
  if (absolute == root_) {
    resolved.relative = "";
  } else if (root_ == "/") {
    resolved.relative = absolute.substr(1);
  } else if (absolute.size() > root_.size() && absolute.compare(0, root_.size(), root_) == 0 &&
             absolute[root_.size()] == '/') {
    resolved.relative = absolute.substr(root_.size() + 1);
  } else {
    resolved.is_outside = true;
    resolved.relative = absolute;
  }
  resolved.absolute = std::move(absolute);
  if (resolved.is_outside && !allow_outside) {
    return Error(ErrorCode::kPermissionDenied,
                 "path '" + std::string(path) + "' resolves to '" + resolved.absolute +
                     "', outside the workspace '" + root_ +
                     "'; access outside the workspace needs the user's approval");
  }
  return resolved;
}

std::string Workspace::FromRoot(const ResolvedPath& path) const {
  if (!path.is_outside) return path.relative;
  return std::filesystem::path(path.absolute).lexically_relative(root_).generic_string();
}

bool Workspace::IsBlocked(const ResolvedPath& path) const {
  if (path.is_outside || path.relative.empty() || blocking_->empty()) return false;
  bool is_directory = blocking_->has_directory_only_rules() && IsDirectory(path.absolute);
  return blocking_->IsIgnored(path.relative, is_directory);
}

bool Workspace::IsBlockedAbsolute(std::string_view absolute) const {
  if (blocking_->empty()) return false;
  std::string_view relative;
  if (root_ == "/") {
    relative = absolute.substr(std::min<size_t>(1, absolute.size()));
  } else if (absolute.size() > root_.size() && absolute.starts_with(root_) &&
             absolute[root_.size()] == '/') {
    relative = absolute.substr(root_.size() + 1);
  } else {
    return false;
  }
  return IsBlocked(ResolvedPath{
      .absolute = std::string(absolute), .relative = std::string(relative), .is_outside = false});
}

namespace {

// Commands whose file arguments are read (Kilo Code's list plus common text tools, and those
// that send or decode a file they are given).
constexpr std::string_view kReadingCommands[] = {
    "sdiff",   "diff3",   "base32",      "basenc",   "uuencode",
    "curl",    "wget",    "xargs",       "zcat",     "zless",
    "zmore",   "zgrep",   "bzcat",       "xzcat",    "zstdcat",
    "look",    "openssl", "cmp",         "sqlite3",  "gpg",
    "nc",      "ncat",    "socat",       "lua",      "deno",
    "bun",     "shuf",    "dos2unix",    "unix2dos", "tee",
    "link",    "install", "tar",         "zip",      "rsync",
    "scp",     "gzip",    "bzip2",       "xz",       "zstd",
    "ack",     "ln",      "cat",         "head",     "tail",
    "less",    "more",    "grep",        "egrep",    "fgrep",
    "rg",      "ag",      "sed",         "awk",      "gawk",
    "bat",     "batcat",  "nl",          "od",       "xxd",
    "hexdump", "strings", "cut",         "sort",     "uniq",
    "wc",      "diff",    "cp",          "mv",       "base64",
    "tac",     "type",    "get-content", "gc",       "select-string",
    "paste",   "fold",    "comm",        "column",   "join",
    "fmt",     "pr",      "expand",      "unexpand", "iconv",
    "split",   "csplit",  "source",      ".",        "vim",
    "vi",      "view",    "nano",        "emacs",    "ed",
    "ex",      "perl",    "python",      "python3",  "ruby",
    "node",    "php",     "jq",          "rev"};

// Searches that read whole directory trees: always (rg, ag, ack), or with a recursive flag (grep).
bool IsTreeSearch(std::string_view name) { return name == "rg" || name == "ag" || name == "ack"; }
// Commands that copy or pack whole trees when told to (tar c, zip -r, cp -r, rsync -a, scp -r):
// the blocked files in a tree they name are read, and end up where nothing blocks them.
bool IsTreeCopier(std::string_view name) {
  return name == "tar" || name == "zip" || name == "cp" || name == "rsync" || name == "scp";
}
// Whether `flag` makes `copier` read trees: tar's c (create), the others' r, R (or a: archive).
bool IsTreeCopyFlag(std::string_view copier, std::string_view flag) {
  if (flag.starts_with("--")) {
    return copier == "tar" ? flag == "--create" : flag == "--recursive" || flag == "--archive";
  }
  if (flag.size() < 2 || flag[0] != '-') return false;
  std::string_view letters = copier == "tar"                       ? "c"
                             : copier == "cp" || copier == "rsync" ? "rRa"
                                                                   : "rR";
  return flag.substr(1).find_first_of(letters) != std::string_view::npos;
}
bool IsGrep(std::string_view name) { return name == "grep" || name == "egrep" || name == "fgrep"; }
// -r, -R, -rn, -Rni, --recursive, --dereference-recursive.
bool IsRecursiveGrepFlag(std::string_view flag) {
  if (flag.starts_with("--")) return flag == "--recursive" || flag == "--dereference-recursive";
  return flag.size() > 1 && flag[0] == '-' &&
         flag.substr(1).find_first_of("rR") != std::string_view::npos &&
         flag.substr(1).find_first_not_of("rRnilLIHhcoqsvwxFEGPz") == std::string_view::npos;
}

// How many entries a recursive search's tree is checked for blocked paths at most: a bound on
// the time a command waits (about 0.1 s per 100,000 here). Beyond it the tree is let through.
constexpr size_t kMaxTreeEntriesChecked = 200'000;

// `argument` as a path: itself when absolute, else below `dir`.
std::string PathFrom(const std::string& dir, const std::string& argument) {
  if (!argument.empty() && argument[0] == '/') return argument;
  std::string path = dir;
  AppendComponent(&path, argument);
  return path;
}

// The user's home directory ($HOME, else the password database's); nullopt when unknown.
std::optional<std::string> HomeDirectory() {
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] == '/') return home;
  if (const passwd* entry = ::getpwuid(::getuid()); entry != nullptr && entry->pw_dir != nullptr) {
    return std::string(entry->pw_dir);
  }
  return std::nullopt;
}

// cd's and pushd's options, before the directory: -L, -P, -e, -@, -Pe, and "--".
bool IsCdOption(std::string_view word) {
  return word == "--" || (word.size() > 1 && word[0] == '-' &&
                          word.find_first_not_of("LPe@", 1) == std::string_view::npos);
}

bool IsShellProgram(std::string_view name) {
  return name == "sh" || name == "bash" || name == "zsh" || name == "dash" || name == "ksh" ||
         name == "fish";
}

std::string JoinWords(const std::vector<std::string>& words) {
  std::string joined;
  for (const std::string& word : words) joined += (joined.empty() ? "" : " ") + word;
  return joined;
}

// Brace expansion as the shell does it, "{a,b}c" → "ac", "bc" (nested too; sequences like
// {1..3} are left as they are). At most 256 words.
std::vector<std::string> ExpandBraces(const std::string& word) {
  size_t open = std::string::npos;
  size_t close = std::string::npos;
  std::vector<size_t> commas;
  int depth = 0;
  for (size_t i = 0; i < word.size() && close == std::string::npos; ++i) {
    if (word[i] == '{') {
      if (depth++ == 0) {
        open = i;
        commas.clear();
      }
    } else if (word[i] == '}' && depth > 0) {
      if (--depth == 0) {
        if (commas.empty()) {
          open = std::string::npos;  // "{x}" stays; look further.
        } else {
          close = i;
        }
      }
    } else if (word[i] == ',' && depth == 1) {
      commas.push_back(i);
    }
  }
  if (close == std::string::npos) return {word};
  std::vector<std::string> words;
  std::string prefix = word.substr(0, open);
  std::string suffix = word.substr(close + 1);
  size_t from = open + 1;
  commas.push_back(close);
  for (size_t comma : commas) {
    for (std::string& expanded : ExpandBraces(prefix + word.substr(from, comma - from) + suffix)) {
      if (words.size() < 256) words.push_back(std::move(expanded));
    }
    from = comma + 1;
  }
  return words;
}

// Whether `path` is one of the devices every command may read or write without touching a file:
// /dev/null, the terminal, the standard streams and descriptors, zeros and randomness.
bool IsStandardDevice(std::string_view path) {
  static constexpr std::array<std::string_view, 6> kDevices = {
      "/dev/null", "/dev/tty", "/dev/zero", "/dev/random", "/dev/urandom", "/dev/fd/"};
  return path.starts_with("/dev/std") ||
         std::any_of(kDevices.begin(), kDevices.end(), [&](std::string_view device) {
           return device.ends_with('/') ? path.starts_with(device) : path == device;
         });
}

// The paths a word of a command names once the shell has expanded it: "~" and "~user", braces,
// and globs (a glob matching nothing stays as it is, as in bash); relative ones from `dir`.
// nullopt when only the shell can tell: a variable or command substitution, a relative path
// from a directory the shell decides, an unknown user's home.
std::optional<std::vector<std::string>> ExpandPathWord(const std::string& word,
                                                       const std::optional<std::string>& dir) {
  if (word.find_first_of("$`") != std::string::npos) return std::nullopt;
  std::string expanded = word;
  if (expanded.starts_with('~')) {
    size_t slash = std::min(expanded.find('/'), expanded.size());
    std::string user = expanded.substr(1, slash - 1);
    std::optional<std::string> home;
    if (user.empty()) {
      home = HomeDirectory();
    } else if (const passwd* entry = ::getpwnam(user.c_str()); entry != nullptr) {
      home = entry->pw_dir;
    }
    if (!home) return std::nullopt;
    expanded = *home + expanded.substr(slash);
  }
  std::vector<std::string> paths;
  for (const std::string& alternative : ExpandBraces(expanded)) {
    if (alternative.empty()) continue;
    if (alternative[0] != '/' && !dir) return std::nullopt;
    std::string path = PathFrom(alternative[0] == '/' ? std::string() : *dir, alternative);
    glob_t matches;
    bool matched = alternative.find_first_of("*?[") != std::string::npos &&
                   ::glob(path.c_str(), GLOB_NOSORT, nullptr, &matches) == 0;
    if (matched) {
      for (size_t i = 0; i < matches.gl_pathc; ++i) paths.push_back(matches.gl_pathv[i]);
      ::globfree(&matches);
    } else {
      paths.push_back(std::move(path));
    }
  }
  return paths;
}

std::string Lowercase(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

// Programs that run the command in their arguments ("sudo rm x", "timeout 5 rm x"): how many
// positional arguments of their own come first, and their options that take a separate value.
struct Wrapper {
  std::string_view name;
  int positional;
  std::string_view value_options;  // Letters: "-u user".
};
constexpr Wrapper kWrappers[] = {
    {"sudo", 0, "ugCDhprtU"}, {"doas", 0, "uC"},    {"command", 0, ""},      {"builtin", 0, ""},
    {"exec", 0, "a"},         {"env", 0, "uCS"},    {"nice", 0, "n"},        {"nohup", 0, ""},
    {"time", 0, "fo"},        {"timeout", 1, "sk"}, {"stdbuf", 0, "ioe"},    {"ionice", 0, "cnp"},
    {"setsid", 0, ""},        {"chrt", 1, ""},      {"taskset", 1, ""},      {"unshare", 0, ""},
    {"nsenter", 0, "t"},      {"flock", 1, "wE"},   {"strace", 0, "oepsEu"}, {"ltrace", 0, "oepsu"},
    {"chroot", 1, ""},        {"runuser", 0, "ugG"}};

const Wrapper* FindWrapper(std::string_view name) {
  for (const Wrapper& wrapper : kWrappers) {
    if (wrapper.name == name) return &wrapper;
  }
  return nullptr;
}

}  // namespace

bool IsCommandWrapper(std::string_view program) { return FindWrapper(program) != nullptr; }

bool IsShellKeyword(std::string_view word) {
  for (std::string_view keyword : {"{",    "}",      "!",    "if",    "then",   "else",     "elif",
                                   "fi",   "do",     "done", "while", "until",  "function", "for",
                                   "case", "select", "in",   "esac",  "coproc", "[[",       "]]"}) {
    if (word == keyword) return true;
  }
  return false;
}

namespace {

// Reads the words at the start of a simple command up to the program they run: assignments,
// the grammar's keywords ("{ cat f; }", "if cat f; then", "function f { cat f; }"), and
// wrappers with their options and arguments ("timeout -s KILL 5 cat f") come before it.
class ProgramFinder {
 public:
  // The program `word` names (lowercase, without its directory), or nullopt for a word before
  // it. Feed the words of one command in order; Reset at each separator.
  std::optional<std::string> Feed(const std::string& word) {
    if (skips_rest_) return std::nullopt;
    if (skips_next_) {
      skips_next_ = false;
      return std::nullopt;
    }
    if (wrapper_ != nullptr && word.size() > 1 && word[0] == '-') {
      skips_next_ = word.size() == 2 && wrapper_->value_options.find(word[1]) != std::string::npos;
      return std::nullopt;
    }
    if (positional_ > 0) {
      --positional_;
      return std::nullopt;
    }
    if (IsShellKeyword(word)) {
      skips_next_ = word == "function";                                   // Its name.
      skips_rest_ = word == "for" || word == "case" || word == "select";  // Up to the separator.
      return std::nullopt;
    }
    if (word.find('=') != std::string::npos && word[0] != '=' && word[0] != '-') {
      return std::nullopt;  // An assignment.
    }
    std::string_view name = word;
    if (size_t slash = name.rfind('/'); slash != std::string_view::npos) {
      name.remove_prefix(slash + 1);
    }
    std::string lower = Lowercase(name);
    if (const Wrapper* wrapper = FindWrapper(lower)) {
      wrapper_ = wrapper;
      positional_ = wrapper->positional;
      return std::nullopt;
    }
    return lower;
  }
  void Reset() { *this = ProgramFinder(); }

 private:
  const Wrapper* wrapper_ = nullptr;
  int positional_ = 0;
  bool skips_next_ = false;
  bool skips_rest_ = false;
};

}  // namespace

std::vector<ShellToken> SplitShellWords(std::string_view command) {
  std::vector<ShellToken> tokens;
  std::string word;
  bool has_word = false;
  // Here-documents: after "<<WORD" (or "<<-WORD") the lines after the end of the command line,
  // up to one that is WORD, are data, not commands (a script written with cat > f <<EOF).
  struct HereDocument {
    std::string delimiter;
    bool strips_tabs = false;
  };
  std::vector<HereDocument> here_documents;
  bool expects_delimiter = false;
  bool strips_tabs = false;
  auto flush = [&] {
    if (has_word) {
      if (expects_delimiter) here_documents.push_back({word, strips_tabs});
      expects_delimiter = false;
      tokens.push_back({std::move(word), false});
    }
    word.clear();
    has_word = false;
  };
  // The offset after the bodies of the pending here-documents, which start at `at`.
  auto skip_here_documents = [&](size_t at) {
    for (const HereDocument& document : here_documents) {
      while (at < command.size()) {
        size_t end = std::min(command.find('\n', at), command.size());
        std::string_view line = command.substr(at, end - at);
        if (document.strips_tabs)
          line.remove_prefix(std::min(line.find_first_not_of('\t'), line.size()));
        at = end + 1;
        if (line == document.delimiter) break;
      }
    }
    here_documents.clear();
    return std::min(at, command.size());
  };
  for (size_t i = 0; i < command.size(); ++i) {
    char c = command[i];
    if (c == '$' && i + 1 < command.size() && command[i + 1] == '\'') {
      // ANSI-C quoting, $'...': backslash escapes are decoded ($'\x72m' is "rm").
      has_word = true;
      for (i += 2; i < command.size() && command[i] != '\''; ++i) {
        if (command[i] != '\\' || i + 1 >= command.size()) {
          word.push_back(command[i]);
          continue;
        }
        char e = command[++i];
        auto digits = [&](int base, size_t most) {
          int value = 0;
          size_t taken = 0;
          while (taken < most && i + 1 < command.size()) {
            char d = command[i + 1];
            int digit = d >= '0' && d <= '9'   ? d - '0'
                        : d >= 'a' && d <= 'f' ? d - 'a' + 10
                        : d >= 'A' && d <= 'F' ? d - 'A' + 10
                                               : 99;
            if (digit >= base) break;
            value = value * base + digit;
            ++i;
            ++taken;
          }
          return static_cast<char>(value);
        };
        // \n \t \r \a \b \e \E \f \v; \xHH; \NNN (octal); anything else stands for itself.
        static constexpr std::string_view kLetters = "ntrabeEfv";
        static constexpr std::string_view kMeanings = "\n\t\r\a\b\033\033\f\v";
        if (size_t letter = kLetters.find(e); letter != std::string_view::npos) {
          word.push_back(kMeanings[letter]);
        } else if (e == 'x') {
          word.push_back(digits(16, 2));
        } else if (e >= '0' && e <= '7') {
          --i;
          word.push_back(digits(8, 3));
        } else {
          word.push_back(e);
        }
      }
    } else if (c == '\'') {
      size_t end = command.find('\'', i + 1);
      if (end == std::string_view::npos) end = command.size();
      word.append(command.substr(i + 1, end - i - 1));
      has_word = true;
      i = end;
    } else if (c == '"') {
      has_word = true;
      for (++i; i < command.size() && command[i] != '"'; ++i) {
        if (command[i] == '\\' && i + 1 < command.size() &&
            std::string_view("\"\\$`").find(command[i + 1]) != std::string_view::npos) {
          ++i;
        }
        word.push_back(command[i]);
      }
    } else if (c == '\\' && i + 1 < command.size()) {
      word.push_back(command[++i]);
      has_word = true;
    } else if (c == ' ' || c == '\t') {
      flush();
    } else if (c == '|' || c == '&' || c == ';' || c == '\n' || c == '<' || c == '>' || c == '(' ||
               c == ')') {
      flush();
      std::string op(1, c);
      if (i + 1 < command.size() && command[i + 1] == c && c != ';' && c != '\n') {
        op.push_back(c);
        ++i;
      }
      // Redirections that involve '&' ("2>&1", "&> file", "&>> file") are not separators.
      if (i + 1 < command.size() &&
          ((op.back() == '>' && command[i + 1] == '&') || (op == "&" && command[i + 1] == '>'))) {
        op.push_back(command[++i]);
        if (op == "&>" && i + 1 < command.size() && command[i + 1] == '>')
          op.push_back(command[++i]);
      }
      if (op == "<<" && i + 1 < command.size() && command[i + 1] == '<') {
        op.push_back(command[++i]);  // "<<<": a here-string; its word is data.
      } else if (op == "<<") {
        expects_delimiter = true;
        strips_tabs = i + 1 < command.size() && command[i + 1] == '-';
        if (strips_tabs) op.push_back(command[++i]);
      }
      tokens.push_back({std::move(op), true});
      if (c == '\n' && !here_documents.empty()) i = skip_here_documents(i + 1) - 1;
    } else {
      word.push_back(c);
      has_word = true;
    }
  }
  flush();
  return tokens;
}

std::vector<std::string> SubstitutedCommands(std::string_view command) {
  // Finds $(…), <(…), >(…) and `…` anywhere, quotes or not (an unquoted here-document's
  // apostrophes quote nothing): a command found in a literal is checked needlessly, never
  // missed. Inside one, quotes, comments and nesting are followed to find where it ends.
  struct Scanner {
    std::string_view text;
    size_t BacktickEnd(size_t from) const {
      size_t j = from;
      while (j < text.size() && text[j] != '`') j += text[j] == '\\' ? 2 : 1;
      return std::min(j, text.size());
    }
    size_t DoubleQuoteEnd(size_t from) const {
      for (size_t j = from; j < text.size(); ++j) {
        if (text[j] == '\\') {
          ++j;
        } else if (text[j] == '"') {
          return j;
        } else if (text[j] == '`') {
          j = BacktickEnd(j + 1);
        } else if (text[j] == '$' && j + 1 < text.size() && text[j + 1] == '(') {
          j = Closing(j + 2);
        }
      }
      return text.size();
    }
    // The ')' that closes the '(' before `from` (or the end).
    size_t Closing(size_t from) const {
      int depth = 1;
      for (size_t j = from; j < text.size(); ++j) {
        char c = text[j];
        if (c == '\\') {
          ++j;
        } else if (c == '\'') {
          j = std::min(text.find('\'', j + 1), text.size());
        } else if (c == '"') {
          j = DoubleQuoteEnd(j + 1);
        } else if (c == '`') {
          j = BacktickEnd(j + 1);
        } else if (c == '#' &&
                   (j == from || std::isspace(static_cast<unsigned char>(text[j - 1])) ||
                    text[j - 1] == ';')) {
          j = std::min(text.find('\n', j), text.size());  // A comment, to the line's end.
        } else if (c == '(') {
          ++depth;
        } else if (c == ')' && --depth == 0) {
          return j;
        }
      }
      return text.size();
    }
  };
  const Scanner scanner{command};
  std::vector<std::string> found;
  for (size_t i = 0; i < command.size(); ++i) {
    char c = command[i];
    char next = i + 1 < command.size() ? command[i + 1] : '\0';
    if (c == '\\') {
      ++i;
    } else if (c == '`') {
      size_t end = scanner.BacktickEnd(i + 1);
      // Inside backticks, \` \\ and \$ stand for the character ("echo \`cat f\`" nests).
      std::string inner;
      for (size_t j = i + 1; j < end; ++j) {
        if (command[j] == '\\' && j + 1 < end &&
            std::string_view("`\\$").find(command[j + 1]) != std::string_view::npos) {
          ++j;
        }
        inner += command[j];
      }
      found.push_back(std::move(inner));
      i = end;
    } else if (next == '(' && (c == '$' || c == '<' || c == '>')) {
      // $(( … )) is also read as a command: bash runs "$((cat f) )" as one.
      size_t end = scanner.Closing(i + 2);
      found.emplace_back(command.substr(i + 2, end - i - 2));
      i = end;
    }
  }
  return found;
}

std::optional<std::string> Workspace::FindBlockedPathInCommand(std::string_view command,
                                                               std::string_view cwd,
                                                               bool* in_tree) const {
  if (blocking_->empty()) return std::nullopt;
  // "$(cat f)" and diff <(cat f): the commands inside are read as commands of their own.
  for (const std::string& inner : SubstitutedCommands(command)) {
    if (std::optional<std::string> found = FindBlockedPathInCommand(inner, cwd, in_tree)) {
      return found;
    }
  }
  std::vector<ShellToken> tokens = SplitShellWords(command);
  // The directories relative arguments may name: `cwd`, and each one a `cd` earlier in the
  // command names. All are checked: a cd in a pipeline or a subshell does not change the
  // directory of what follows, and the check must not be led away from where the command runs.
  std::vector<std::string> dirs = {std::string(cwd)};
  auto absolute = PathFrom;
  auto is_blocked_path = [&](const std::string& candidate) {
    Result<ResolvedPath> resolved = Resolve(candidate, /*allow_outside=*/true);
    return resolved.ok() && IsBlocked(*resolved);
  };
  auto is_blocked_argument = [&](const std::string& word) {
    if (word.empty() || word.find('\0') != std::string::npos) return false;
    for (const std::string& argument : ExpandBraces(word)) {
      if (argument.empty()) continue;
      for (const std::string& dir : std::views::reverse(dirs)) {  // The latest first.
        std::string path = absolute(dir, argument);
        if (is_blocked_path(path)) return true;
        // "cat *.env": the shell would expand the glob, so check what it expands to.
        if (argument.find_first_of("*?[") == std::string::npos) continue;
        glob_t matches;
        bool is_blocked = false;
        if (::glob(path.c_str(), GLOB_NOSORT, nullptr, &matches) == 0) {
          for (size_t i = 0; i < matches.gl_pathc && !is_blocked; ++i) {
            is_blocked = is_blocked_path(matches.gl_pathv[i]);
          }
        }
        ::globfree(&matches);
        if (is_blocked) return true;
      }
    }
    return false;
  };

  // A recursive search reads every file below its directory arguments (the working directory
  // when it names none): the first blocked path found there, relative to the search's root.
  auto blocked_in_tree = [&](const std::string& argument) -> std::optional<std::string> {
    for (const std::string& dir : std::views::reverse(dirs)) {  // The latest first.
      std::string root = argument.empty() ? dir : absolute(dir, argument);
      std::error_code error;
      if (!std::filesystem::is_directory(root, error)) continue;
      // Symbolic links to directories are not followed (the iterator's default), as grep -r does.
      auto it = std::filesystem::recursive_directory_iterator(
          root, std::filesystem::directory_options::skip_permission_denied, error);
      size_t seen = 0;
      for (; !error && it != std::filesystem::recursive_directory_iterator();
           it.increment(error)) {
        if (++seen > kMaxTreeEntriesChecked) break;
        std::string name = it->path().filename().string();
        if (name == ".kilocodeignore" || name == ".rooignore") continue;  // Patterns, no secret.
        if (is_blocked_path(it->path().string())) {
          if (in_tree != nullptr) *in_tree = true;
          std::string shown = argument.empty() ? "." : argument;
          if (!shown.ends_with('/')) shown += '/';
          return shown + it->path().lexically_relative(root).string();
        }
      }
    }
    return std::nullopt;
  };
  // git grep reads what git tracks (in the index, or in a revision's tree), not what is merely in
  // the directory: the first blocked file among those (through `git ls-files` / `git ls-tree`),
  // or nullopt when git cannot tell (then the directory tree is looked at instead).
  auto blocked_in_git =
      [&](const std::string& revision,
          const std::vector<std::string>& paths) -> std::optional<std::optional<std::string>> {
    auto quoted = [](const std::string& word) {
      std::string out = "'";
      for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      return out + "'";
    };
    std::string listing = revision.empty() ? "git ls-files -z --"
                                           : "git ls-tree -r -z --name-only " + quoted(revision);
    for (const std::string& path : paths) listing += " " + quoted(path);
    CommandOptions options;
    options.cwd = dirs.back();
    options.timeout = std::chrono::seconds(10);
    Result<CommandOutcome> listed = RunCommand(listing, options);
    if (!listed.ok() || listed->exit_code != 0 || listed->dropped_bytes != 0) return std::nullopt;
    std::string_view names = listed->output;
    while (!names.empty()) {
      size_t end = std::min(names.find('\0'), names.size());
      std::string name(names.substr(0, end));
      names.remove_prefix(std::min(end + 1, names.size()));
      std::string_view base = std::string_view(name).substr(name.rfind('/') + 1);
      if (base == ".kilocodeignore" || base == ".rooignore") continue;  // Patterns, no secret.
      if (!name.empty() && is_blocked_path(PathFrom(dirs.back(), name))) {
        if (in_tree != nullptr) *in_tree = true;
        return std::optional<std::string>("./" + name);
      }
    }
    return std::optional<std::string>();
  };
  bool git_grep_untracked = false;  // git grep --untracked / --no-index: the directory's files.
  // The command being read: a tree search (rg, grep -r, …) and its non-flag words.
  bool is_tree_search = false;
  std::vector<std::string> words;
  // A script given to a shell (sh -c '…') or to eval is read as the commands it holds.
  bool is_shell = false;
  bool expects_script = false;
  bool is_eval = false;
  std::vector<std::string> eval_words;
  std::string git_subcommand;  // Of a git command: "" until read.
  // git diff, show, format-patch, log -p: the changes of the files git tracks are shown.
  bool shows_git_patch = false;
  std::vector<std::string> git_words;  // Their words other than flags.
  std::string tree_copier;             // tar, zip, cp, rsync or scp; "" for other commands.
  bool copies_trees = false;           // It was told to (see IsTreeCopyFlag).
  auto end_command = [&]() -> std::optional<std::string> {
    std::optional<std::string> found;
    if (is_eval && !eval_words.empty()) {
      found = FindBlockedPathInCommand(JoinWords(eval_words), dirs.back(), in_tree);
    }
    is_shell = expects_script = is_eval = false;
    eval_words.clear();
    std::optional<std::optional<std::string>> in_git;
    if (!found && is_tree_search && git_subcommand == "grep" && !git_grep_untracked) {
      std::string revision;
      std::vector<std::string> paths;
      for (size_t i = 1; i < words.size(); ++i) {
        bool is_path = std::filesystem::exists(PathFrom(dirs.back(), words[i]));
        if (is_path) {
          paths.push_back(words[i]);
        } else if (revision.empty()) {
          revision = words[i];
        }
      }
      in_git = blocked_in_git(revision, paths);
      if (in_git) found = *in_git;
    }
    git_grep_untracked = false;
    if (!found && shows_git_patch) {
      // Without paths, every tracked file's changes (git diff) or a commit's (git show): a
      // tracked blocked file among those named (or any, when none is named) refuses it.
      std::vector<std::string> paths;
      for (const std::string& word : git_words) {
        if (std::filesystem::exists(PathFrom(dirs.back(), word))) paths.push_back(word);
      }
      if (std::optional<std::optional<std::string>> tracked = blocked_in_git("", paths)) {
        found = *tracked;
      }
    }
    shows_git_patch = false;
    git_words.clear();
    if (!found && copies_trees) {
      // zip's first word is the archive it writes; cp's, rsync's and scp's last, the target.
      size_t first = tree_copier == "zip" ? 1 : 0;
      size_t end = tree_copier == "tar" || tree_copier == "zip"
                       ? words.size()
                       : std::max<size_t>(words.size(), 1) - 1;
      for (size_t i = first; i < end && !found; ++i) found = blocked_in_tree(words[i]);
    }
    copies_trees = false;
    tree_copier.clear();
    if (!found && !in_git && is_tree_search) {
      // The first word is the pattern; without any further word the search is of cwd.
      if (words.size() <= 1) found = blocked_in_tree("");
      for (size_t i = 1; i < words.size() && !found; ++i) {
        // git grep PATTERN REV searches a commit's whole tree: as committed, a blocked file is
        // there if it is here.
        bool is_revision =
            git_subcommand == "grep" && !std::filesystem::exists(PathFrom(dirs.back(), words[i]));
        found = blocked_in_tree(is_revision ? "" : words[i]);
      }
    }
    is_tree_search = false;
    words.clear();
    return found;
  };

  bool at_command_start = true;
  ProgramFinder finder;
  bool is_reading = false;
  bool is_grep = false;
  bool is_cd = false;  // The command is `cd` or `pushd`: its first word is the new directory.
  bool is_dd = false;  // dd reads its if= file.
  bool is_git = false;
  char git_option = 0;         // 'C' or 'c' after "git -C" / "git -c": the next word is its value.
  bool expects_redirect_target = false;
  bool expects_write_target = false;
  for (const ShellToken& token : tokens) {
    if (token.is_operator) {
      if (is_shell && token.text == "<<<") {
        expects_script = true;  // bash <<< 'cat f': the word is its script.
      } else if (is_shell && token.text.starts_with("<<")) {
        // bash <<EOF: the here-document's lines are its script.
        size_t body = command.find('\n');
        if (body != std::string_view::npos) {
          if (std::optional<std::string> found =
                  FindBlockedPathInCommand(command.substr(body + 1), dirs.back(), in_tree)) {
            return found;
          }
        }
      } else if (token.text == "<") {
        expects_redirect_target = true;  // "cmd < file" reads the file whatever cmd is.
      } else if (token.text.find('>') != std::string::npos) {
        expects_write_target = true;  // "> out", "2>&1", "&> log": the next word is written.
      } else {
        if (std::optional<std::string> found = end_command()) return found;
        at_command_start = true;
        finder.Reset();
        is_reading = false;
        is_cd = false;
        is_dd = false;
        is_git = false;
        git_subcommand.clear();
        git_option = 0;
      }
      continue;
    }
    if (expects_write_target) {
      expects_write_target = false;
      continue;
    }
    if (expects_redirect_target) {
      expects_redirect_target = false;
      if (is_blocked_argument(token.text)) return token.text;
      continue;
    }
    if (at_command_start) {
      std::optional<std::string> program = finder.Feed(token.text);
      if (!program) continue;  // An assignment, a keyword or a wrapper in front of it.
      at_command_start = false;
      const std::string& lower = *program;
      is_reading = std::find(std::begin(kReadingCommands), std::end(kReadingCommands), lower) !=
                   std::end(kReadingCommands);
      is_tree_search = IsTreeSearch(lower);
      is_grep = IsGrep(lower);
      is_cd = lower == "cd" || lower == "pushd";
      is_dd = lower == "dd";
      is_git = lower == "git";
      if (IsTreeCopier(lower)) tree_copier = lower;
      is_shell = IsShellProgram(lower);
      is_eval = lower == "eval";
      continue;
    }
    if (is_eval) {
      eval_words.push_back(token.text);
      continue;
    }
    if (expects_script) {
      expects_script = false;
      if (std::optional<std::string> found =
              FindBlockedPathInCommand(token.text, dirs.back(), in_tree)) {
        return found;
      }
      continue;
    }
    if (is_shell && token.text.starts_with('-') && token.text.find('c') != std::string::npos) {
      expects_script = true;
      continue;
    }
    if (is_cd) {
      // cd's options (-P, -L, -e, --) come before its directory. `cd -` fails (the command's
      // environment has no OLDPWD); cd $X is not followed (only the shell knows X).
      if (IsCdOption(token.text)) continue;
      if (std::optional<std::vector<std::string>> to = ExpandPathWord(token.text, dirs.back())) {
        for (std::string& dir : *to) dirs.push_back(std::move(dir));
      }
      is_cd = false;
      continue;
    }
    if (is_dd) {
      if (token.text.starts_with("if=") && is_blocked_argument(token.text.substr(3))) {
        return token.text.substr(3);
      }
      continue;
    }
    if (is_git && git_subcommand.empty()) {
      if (git_option == 'C') dirs.push_back(absolute(dirs.back(), token.text));
      if (git_option != 0) {
        git_option = 0;
      } else if (token.text == "-C" || token.text == "-c") {
        git_option = token.text[1];
      } else if (token.text[0] != '-') {
        // git grep searches a tree; git diff reads the files it names (--no-index: any file).
        git_subcommand = Lowercase(token.text);
        is_tree_search = git_subcommand == "grep";
        // diff, blame and annotate read the files they name.
        is_reading = is_tree_search || git_subcommand == "diff" || git_subcommand == "blame" ||
                     git_subcommand == "annotate";
        // archive packs every tracked file, as diff and show may show them.
        shows_git_patch = git_subcommand == "diff" || git_subcommand == "show" ||
                          git_subcommand == "format-patch" || git_subcommand == "archive";
      }
      continue;
    }
    if (is_git && git_subcommand == "stash") {
      if (token.text == "-p" || token.text == "-u" || token.text.starts_with("--patch")) {
        shows_git_patch = true;  // git stash show -p: the stashed changes.
      }
      continue;
    }
    if (is_git && (git_subcommand == "log" || git_subcommand == "whatchanged")) {
      // -L<range>:<file> shows that file's history, patches included.
      if (token.text.starts_with("-L") && token.text.find(':') != std::string::npos) {
        std::string path = token.text.substr(token.text.rfind(':') + 1);
        if (is_blocked_path(PathFrom(root_, path)) || is_blocked_argument(path)) return path;
      }
      if (token.text == "-p" || token.text == "-u" || token.text.starts_with("--patch") ||
          token.text == "--cc") {
        shows_git_patch = true;
      } else if (token.text[0] != '-') {
        git_words.push_back(token.text);
      }
      continue;
    }
    if (shows_git_patch && token.text[0] != '-') git_words.push_back(token.text);
    if (is_git && (git_subcommand == "show" || git_subcommand == "cat-file")) {
      // REV:path is a file as committed ("HEAD:secret.env"): from the repository's root, which
      // is taken to be the workspace's, or from the current directory with "./" or "../".
      size_t colon = token.text.find(':');
      if (token.text[0] != '-' && colon != std::string::npos && colon + 1 < token.text.size()) {
        std::string path = token.text.substr(colon + 1);
        bool is_from_here = path.starts_with("./") || path.starts_with("../");
        if (is_from_here ? is_blocked_argument(path) : is_blocked_path(PathFrom(root_, path))) {
          return token.text;
        }
      }
      continue;
    }
    if (!is_reading) continue;
    if (!tree_copier.empty() && tree_copier == "tar" && words.empty() && token.text[0] != '-' &&
        token.text.find_first_not_of("AcdfjJrtuvxzZpPhkmOSW") == std::string::npos &&
        token.text.find('c') != std::string::npos) {
      copies_trees = true;  // "tar czf out.tgz dir": the old form, letters without a dash.
    }
    // A file given as @file (curl -d @f, -F x=@f) or after a long option's = (--post-file=f).
    for (size_t at = token.text.find_first_of("@="); at != std::string::npos;
         at = token.text.find_first_of("@=", at + 1)) {
      if (is_blocked_argument(token.text.substr(at + 1))) return token.text;
    }
    if (token.text[0] == '-') {
      // A short option's value glued to it: "xargs -apath", "grep -fpatterns", "sed -fscript".
      if (token.text.size() > 2 && token.text[1] != '-' &&
          is_blocked_argument(token.text.substr(2))) {
        return token.text;
      }
      if (!tree_copier.empty() && IsTreeCopyFlag(tree_copier, token.text)) copies_trees = true;
      if (is_grep && IsRecursiveGrepFlag(token.text)) is_tree_search = true;
      if (token.text == "--untracked" || token.text == "--no-index") git_grep_untracked = true;
      continue;
    }
    if (is_blocked_argument(token.text)) return token.text;
    words.push_back(token.text);
  }
  return end_command();
}

std::vector<std::string> Workspace::CommandOutsidePaths(std::string_view command,
                                                        std::string_view cwd) const {
  std::vector<std::string> found;
  auto add = [&found](std::string path) {
    if (std::find(found.begin(), found.end(), path) == found.end()) found.push_back(path);
  };
  for (const std::string& inner : SubstitutedCommands(command)) {
    for (std::string& path : CommandOutsidePaths(inner, cwd)) add(std::move(path));
  }
  std::vector<std::string> dirs = {std::string(cwd)};
  auto consider = [&](const std::string& word) {
    if (word.empty() || word.find('\0') != std::string::npos) return;
    // A path only the shell can tell (`$HOME/.ssh/id_rsa`, `${D}/x`) may be anywhere; one from
    // the working directory ($PWD, where a `cd` elsewhere is counted by itself) is not.
    const size_t expansion = word.find_first_of("$`");
    if (expansion != std::string::npos && word.find('/') != std::string::npos) {
      std::string_view rest = std::string_view(word).substr(expansion);
      bool from_cwd = rest.starts_with("$PWD/") || rest.starts_with("${PWD}/");
      if (!from_cwd || rest.find_first_of("$`", 1) != std::string_view::npos) {
        add(word + " (known only when it runs)");
      }
      return;
    }
    for (const std::string& dir : dirs) {
      std::optional<std::vector<std::string>> paths = ExpandPathWord(word, dir);
      if (!paths) continue;
      for (const std::string& path : *paths) {
        if (IsStandardDevice(path)) continue;
        // /proc/self is the shell's, not this process's: whatever it leads to is unknown here.
        if (path.starts_with("/proc/")) {
          add(path);
          continue;
        }
        Result<ResolvedPath> resolved = Resolve(path, /*allow_outside=*/true);
        std::error_code error;
        if (!resolved.ok() || !resolved->is_outside ||
            !std::filesystem::exists(resolved->absolute, error)) {
          continue;
        }
        add(resolved->absolute);
      }
    }
  };
  ProgramFinder finder;
  bool at_command_start = true;
  bool is_cd = false;
  bool expects_target = false;  // After ">" (a write: CommandWriteTargets' concern).
  for (const ShellToken& token : SplitShellWords(command)) {
    if (token.is_operator) {
      expects_target = token.text.find('>') != std::string::npos;
      if (!expects_target && !token.text.starts_with('<')) {  // A separator.
        at_command_start = true;
        is_cd = false;
        finder.Reset();
      }
      continue;
    }
    if (expects_target) {
      expects_target = false;
      continue;
    }
    if (at_command_start) {
      std::optional<std::string> name = finder.Feed(token.text);
      if (!name) continue;
      at_command_start = false;
      is_cd = *name == "cd" || *name == "pushd";
      continue;
    }
    if (token.text.starts_with('-')) {
      if (size_t equals = token.text.find('='); equals != std::string::npos) {
        consider(token.text.substr(equals + 1));
      }
      continue;
    }
    consider(token.text);
    if (is_cd && !IsCdOption(token.text)) {
      if (std::optional<std::vector<std::string>> to = ExpandPathWord(token.text, dirs.back());
          to && to->size() == 1) {
        dirs.push_back(to->front());
      }
      is_cd = false;
    }
  }
  return found;
}

namespace {

// What a git command writes that its words name: `git config` setting a value writes the
// repository's .git/config (or ~/.gitconfig with --global, the --file named), and that file
// runs commands (core.fsmonitor, core.hooksPath); any --output=FILE; what rm and mv name, and
// bundle create's file; the working-tree files checkout, restore, reset, clean, stash, switch,
// merge, rebase, pull, cherry-pick and revert change (those after "--", else unknown). A
// repository or work tree named by --git-dir / --work-tree is unknown (its configuration can
// run commands; its files are anywhere). Relative paths follow -C. `args` follow "git".
std::vector<std::string> GitWrites(const std::vector<std::string>& args,
                                   std::vector<std::string>* unknown) {
  std::vector<std::string> written;
  std::string base;  // Where -C took git.
  size_t k = 0;
  for (; k < args.size() && args[k].starts_with('-'); ++k) {
    // "git -c core.fsmonitor=…": configuration that can run anything; only git can tell.
    if ((args[k] == "-c" || args[k] == "--config-env") && k + 1 < args.size()) {
      unknown->push_back("git " + args[k] + " " + args[k + 1]);
    }
    if (args[k] == "--bare") {  // The directory git runs in is taken for the repository.
      unknown->push_back("git --bare");
      continue;
    }
    if (args[k].starts_with("--git-dir") || args[k].starts_with("--work-tree") ||
        args[k].starts_with("--exec-path")) {
      unknown->push_back(
          "git " + args[k] +
          (args[k].find('=') == std::string::npos && k + 1 < args.size() ? " " + args[k + 1] : ""));
      if (args[k].find('=') == std::string::npos) ++k;
      continue;
    }
    if (args[k] == "-C" && k + 1 < args.size()) {
      const std::string& dir = args[k + 1];
      base = base.empty() || dir.starts_with('/') || dir.starts_with('~') ? dir : base + "/" + dir;
    }
    if (args[k] == "-C" || args[k] == "-c" || args[k] == "--config-env") ++k;  // Their values.
  }
  auto from_base = [&base](const std::string& path) {
    return base.empty() || path.starts_with('/') || path.starts_with('~') ? path
                                                                          : base + "/" + path;
  };
  if (!base.empty()) {
    // The written paths below are relative to where -C took git.
    std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(k), args.end());
    std::vector<std::string> inner = GitWrites(rest, unknown);
    for (std::string& path : inner) written.push_back(from_base(path));
    return written;
  }
  if (k >= args.size()) return written;
  const std::string& subcommand = args[k];
  // Positional words (not options) after the subcommand, and those after "--".
  std::vector<std::string> positional;
  std::vector<std::string> after_dashes;
  bool has_dashes = false;
  for (size_t i = k + 1; i < args.size(); ++i) {
    if (has_dashes) {
      after_dashes.push_back(args[i]);
    } else if (args[i] == "--") {
      has_dashes = true;
    } else if (!args[i].starts_with('-')) {
      positional.push_back(args[i]);
    }
  }
  if (subcommand == "rm" || subcommand == "mv") {
    written.insert(written.end(), positional.begin(), positional.end());
    written.insert(written.end(), after_dashes.begin(), after_dashes.end());
  }
  if (subcommand == "bundle" && positional.size() >= 2 && positional[0] == "create") {
    written.push_back(positional[1]);
  }
  // A new repository given configuration or a template (whose config it copies) runs what that
  // says once used (core.fsmonitor): only git can tell.
  if ((subcommand == "clone" || subcommand == "init") &&
      std::any_of(args.begin() + static_cast<std::ptrdiff_t>(k) + 1, args.end(),
                  [](const std::string& arg) {
                    return arg == "-c" || arg.starts_with("--config") ||
                           arg.starts_with("--template") || arg.starts_with("--separate-git-dir") ||
                           (arg.starts_with("-c") && arg.size() > 2 && arg[2] != '-');
                  })) {
    unknown->push_back("the configuration git " + subcommand + " is given");
  }
  // Plumbing and helpers that write files where their options say (checkout-index --prefix,
  // format-patch -o, read-tree -u, submodule's checkouts): only git can tell.
  static constexpr std::array<std::string_view, 7> kWritesWhereItsOptionsSay = {
      "checkout-index", "read-tree",       "merge-file", "format-patch",
      "submodule",      "sparse-checkout", "bisect"};
  if (std::find(kWritesWhereItsOptionsSay.begin(), kWritesWhereItsOptionsSay.end(), subcommand) !=
      kWritesWhereItsOptionsSay.end()) {
    unknown->push_back("the files git " + subcommand + " writes");
  }
  static constexpr std::array<std::string_view, 11> kChangesWorkTree = {
      "checkout", "restore", "reset",       "clean",  "stash", "switch",
      "merge",    "rebase",  "cherry-pick", "revert", "pull"};
  if (std::find(kChangesWorkTree.begin(), kChangesWorkTree.end(), subcommand) !=
      kChangesWorkTree.end()) {
    auto has = [&](std::initializer_list<std::string_view> options) {
      return std::any_of(args.begin() + static_cast<std::ptrdiff_t>(k) + 1, args.end(),
                         [&](const std::string& arg) {
                           return std::find(options.begin(), options.end(), arg) != options.end();
                         });
    };
    // What changes no file: a new branch where HEAD is, a listing, a soft reset.
    const bool changes_nothing =
        (((subcommand == "checkout" && has({"-b", "-B"})) ||
          (subcommand == "switch" && has({"-c", "-C", "--create", "--force-create"}))) &&
         positional.size() <= 1) ||
        (subcommand == "stash" && !positional.empty() &&
         (positional[0] == "list" || positional[0] == "show")) ||
        (subcommand == "reset" && has({"--soft"}));
    if (has_dashes && subcommand != "stash") {
      written.insert(written.end(), after_dashes.begin(), after_dashes.end());
    } else if (!changes_nothing) {
      unknown->push_back("the working-tree files git " + subcommand + " changes");
    }
  }
  // git apply / am write the files their patches name: only git can tell which.
  if ((subcommand == "apply" || subcommand == "am") &&
      std::none_of(
          args.begin() + static_cast<std::ptrdiff_t>(k), args.end(), [](const std::string& arg) {
            return arg == "--check" || arg == "--stat" || arg == "--numstat" || arg == "--summary";
          })) {
    unknown->push_back("the files the patch names (git " + subcommand + ")");
  }
  std::vector<std::string> operands;
  std::string file = ".git/config";
  bool reads_only = false;
  // The directory git clone, git init and git worktree add make (and fill).
  std::vector<std::string> made;
  for (++k; k < args.size(); ++k) {
    const std::string& arg = args[k];
    if (arg.starts_with("--output=")) written.push_back(arg.substr(9));
    if (arg == "--output" && k + 1 < args.size()) written.push_back(args[++k]);
    if ((subcommand == "clone" || subcommand == "init" || subcommand == "worktree") &&
        !arg.starts_with('-')) {
      made.push_back(arg);
    }
    if (subcommand != "config") continue;
    if (arg == "--global") {
      file = "~/.gitconfig";
    } else if (arg == "--system") {
      file = "/etc/gitconfig";
    } else if ((arg == "-f" || arg == "--file") && k + 1 < args.size()) {
      file = args[++k];
    } else if (arg.starts_with("--file=")) {
      file = arg.substr(7);
    } else if (arg == "-l" || arg == "--list" || arg.starts_with("--get") || arg == "-e" ||
               arg == "--edit" || arg == "get" || arg == "list") {
      reads_only = arg != "-e" && arg != "--edit";
    } else if (!arg.starts_with('-')) {
      operands.push_back(arg);
    }
  }
  // "git config key" reads; "git config key value" (or --unset, --add, …) writes.
  bool has_write_option = std::any_of(args.begin(), args.end(), [](const std::string& arg) {
    return arg.starts_with("--unset") || arg == "--add" || arg.starts_with("--replace") ||
           arg.starts_with("--rename") || arg.starts_with("--remove") || arg == "-e" ||
           arg == "--edit" || arg == "set" || arg == "unset";
  });
  if (subcommand == "config" && !reads_only && (operands.size() >= 2 || has_write_option)) {
    written.push_back(file);
  }
  // clone SOURCE [DIR], init [DIR], worktree add DIR …: (the value of an option such as -b
  // may be taken for the directory; then the question is asked of that word, inside).
  if (subcommand == "clone" && made.size() >= 2) written.push_back(made.back());
  if (subcommand == "init" && !made.empty()) written.push_back(made.back());
  if (subcommand == "worktree" && made.size() >= 2 && made[0] == "add") written.push_back(made[1]);
  return written;
}

// The files a program writes, creates or removes, as its arguments name them, for the common
// programs whose arguments say so: tee, touch, truncate, rm, unlink, rmdir, shred, mkdir (every
// operand); cp, ln, install (the last operand, or -t's directory); mv (every operand); sed -i
// and perl/ruby -i (the files after the script); dd of=; and any program's --output=FILE; patch,
// git apply and git am write what their patches name, and a writing command run by xargs or
// find -exec (or find -delete) what they find: unknown. `args` are the words after the program's
// name.
std::vector<std::string> ProgramWrites(std::string_view program,
                                       const std::vector<std::string>& args,
                                       std::vector<std::string>* unknown) {
  static constexpr std::array<std::string_view, 8> kEveryOperand = {
      "tee", "touch", "truncate", "rm", "unlink", "rmdir", "shred", "mkdir"};
  static constexpr std::array<std::string_view, 4> kLastOperand = {"cp", "ln", "install", "split"};
  // They change what their operands after the first (a mode, an owner) name.
  static constexpr std::array<std::string_view, 3> kAfterFirstOperand = {"chmod", "chown", "chgrp"};
  // They replace each operand with a compressed (or decompressed) file beside it.
  static constexpr std::array<std::string_view, 8> kCompressors = {
      "gzip", "gunzip", "bzip2", "bunzip2", "xz", "unxz", "zstd", "unzstd"};
  auto is_one_of = [](std::string_view word, auto& list) {
    return std::find(list.begin(), list.end(), word) != list.end();
  };
  // The program's options whose value is the next word (so it is no operand).
  struct ValueOptions {
    std::string_view program;
    std::array<std::string_view, 8> options;
  };
  static constexpr std::array<ValueOptions, 12> kWithValue = {{
      {"chmod", {"--reference"}},
      {"chown", {"--reference", "--from"}},
      {"chgrp", {"--reference"}},
      {"truncate", {"-s", "-r", "--size", "--reference"}},
      {"touch", {"-d", "-t", "-r", "--date", "--reference"}},
      {"mkdir", {"-m", "--mode"}},
      {"install", {"-m", "-o", "-g", "-S", "--mode", "--owner", "--group", "--suffix"}},
      {"cp", {"-S", "--suffix"}},
      {"mv", {"-S", "--suffix"}},
      {"ln", {"-S", "--suffix"}},
      {"shred", {"-n", "-s", "--iterations", "--size"}},
      {"sed", {"-l", "--line-length"}},
  }};
  auto takes_value = [&](std::string_view option) {
    for (const ValueOptions& entry : kWithValue) {
      if (entry.program == program) return !option.empty() && is_one_of(option, entry.options);
    }
    return false;
  };
  std::vector<std::string> written;
  if (program == "git") return GitWrites(args, unknown);
  // A command that xargs or find runs on names they find (stdin, the file search): whether it
  // writes is seen by giving it a stand-in name; which files, only the command run can tell.
  auto writes_given_names = [&](const std::string& inner, std::vector<std::string> inner_args) {
    inner_args.push_back("{}");
    std::vector<std::string> inner_unknown;
    std::string name = Lowercase(std::filesystem::path(inner).filename().string());
    return !ProgramWrites(name, inner_args, &inner_unknown).empty() || !inner_unknown.empty();
  };
  if (program == "xargs") {
    static constexpr std::array<std::string_view, 12> kXargsValue = {
        "-a", "-d", "-E",         "-I",          "-L",         "-n",
        "-P", "-s", "--arg-file", "--delimiter", "--max-args", "--max-procs"};
    size_t k = 0;
    for (; k < args.size() && args[k].starts_with('-'); ++k) {
      if (std::find(kXargsValue.begin(), kXargsValue.end(), args[k]) != kXargsValue.end()) ++k;
    }
    if (k < args.size() &&
        writes_given_names(args[k],
                           {args.begin() + static_cast<std::ptrdiff_t>(k) + 1, args.end()})) {
      unknown->push_back("the files xargs gives " + args[k]);
    }
    return written;
  }
  if (program == "find") {
    for (size_t k = 0; k < args.size(); ++k) {
      if (args[k] == "-delete") unknown->push_back("the files find deletes");
      bool is_exec =
          args[k] == "-exec" || args[k] == "-execdir" || args[k] == "-ok" || args[k] == "-okdir";
      if (!is_exec || k + 1 >= args.size()) continue;
      size_t end = k + 2;
      while (end < args.size() && args[end] != ";" && args[end] != "+") ++end;
      std::vector<std::string> inner_args(args.begin() + static_cast<std::ptrdiff_t>(k) + 2,
                                          args.begin() + static_cast<std::ptrdiff_t>(end));
      if (writes_given_names(args[k + 1], inner_args)) {
        unknown->push_back("the files find gives " + args[k + 1]);
      }
      k = end;
    }
    return written;
  }
  // patch writes the files its patch names (and its operand, when given).
  if (program == "patch" && std::none_of(args.begin(), args.end(), [](const std::string& arg) {
        return arg == "--dry-run" || arg == "-C" || arg == "--check";
      })) {
    unknown->push_back("the files the patch names (patch)");
  }
  // perl and ruby -i edit their file operands in place, as sed -i does.
  const bool is_perl = program == "perl" || program == "ruby";
  std::vector<std::string> operands;
  bool in_place = false;    // sed -i, perl -i.
  bool has_script = false;  // sed -e / -f: the first operand is a file, not the script.
  bool options_end = false;
  bool has_target_directory = false;  // cp/mv/ln/install -t DIR: every operand is a source.
  bool to_stdout = false;             // gzip -c, -t, -l: no file is written.
  bool tar_extracts = false;          // tar x: -C's directory is written; tar c: -f's file.
  bool tar_creates = false;
  auto tar_mode = [&](std::string_view letters) {
    tar_extracts = tar_extracts || letters.find('x') != std::string_view::npos;
    tar_creates = tar_creates || letters.find_first_of("cru") != std::string_view::npos;
  };
  std::string tar_directory;
  std::string tar_file;
  for (size_t k = 0; k < args.size(); ++k) {
    const std::string& arg = args[k];
    if (program == "tar") {
      // Old form: "tar czf out.tgz dir", the letters first; f takes the next word.
      if (k == 0 && !arg.empty() && arg[0] != '-' &&
          arg.find_first_not_of("AcdfjJrtuvxzZpPhkmOSW") == std::string::npos) {
        tar_mode(arg);
        if (arg.find('f') != std::string::npos && k + 1 < args.size()) tar_file = args[++k];
        continue;
      }
      if (arg.size() > 1 && arg[0] == '-' && arg[1] != '-') {
        tar_mode(arg.substr(1));
        if (arg.back() == 'f' && k + 1 < args.size()) tar_file = args[++k];
        if (arg == "-C" && k + 1 < args.size()) tar_directory = args[++k];
        continue;
      }
      if (arg == "--extract" || arg == "--get") tar_extracts = true;
      if (arg == "--create" || arg == "--append" || arg == "--update") tar_creates = true;
      if (arg.starts_with("--directory=")) tar_directory = arg.substr(12);
      if (arg == "--directory" && k + 1 < args.size()) tar_directory = args[++k];
      if (arg.starts_with("--file=")) tar_file = arg.substr(7);
      if (arg == "--file" && k + 1 < args.size()) tar_file = args[++k];
      if (arg.starts_with("--")) continue;
    }
    if (program == "unzip" && arg == "-d" && k + 1 < args.size()) {
      written.push_back(args[++k]);
      continue;
    }
    if (program == "sort" && arg == "-o" && k + 1 < args.size()) {
      written.push_back(args[++k]);
      continue;
    }
    if (is_one_of(program, kCompressors) && arg.size() > 1 && arg[0] == '-' && arg[1] != '-' &&
        arg.find_first_of("ctl") != std::string::npos) {
      to_stdout = true;
    }
    if (options_end || arg.empty() || arg[0] != '-' || arg == "-") {
      if (program == "dd" && arg.starts_with("of=")) {
        written.push_back(arg.substr(3));
      } else {
        operands.push_back(arg);
      }
      continue;
    }
    if (arg == "--") {
      options_end = true;
    } else if (arg.starts_with("--output=")) {
      written.push_back(arg.substr(9));
    } else if (arg == "--output" && k + 1 < args.size()) {
      written.push_back(args[++k]);
    } else if (((program == "curl" && arg == "-o") || (program == "wget" && arg == "-O")) &&
               k + 1 < args.size()) {
      written.push_back(args[++k]);
    } else if ((arg == "-t" || arg == "--target-directory") && k + 1 < args.size()) {
      written.push_back(args[++k]);
      has_target_directory = true;
    } else if (arg.starts_with("--target-directory=")) {
      written.push_back(arg.substr(19));
      has_target_directory = true;
    } else if (program == "sed" && (arg.starts_with("-i") || arg.starts_with("--in-place"))) {
      in_place = true;
    } else if (program == "sed" &&
               (arg == "-e" || arg == "-f" || arg == "--expression" || arg == "--file")) {
      has_script = true;
      ++k;
    } else if (is_perl && arg.size() > 1 && arg[1] != '-') {
      // Bundled switches: "-pi", "-i.bak", "-pie" (-i's suffix is what follows it).
      size_t i_at = arg.find('i', 1);
      size_t e_at = arg.find_first_of("eE", 1);
      if (i_at != std::string::npos && (e_at == std::string::npos || i_at < e_at)) {
        in_place = true;
      }
      if (e_at != std::string::npos && (i_at == std::string::npos || e_at < i_at)) {
        has_script = true;  // -e SCRIPT: the script is the next word.
        if (e_at + 1 == arg.size()) ++k;
      }
    } else if (takes_value(arg)) {
      ++k;
    }
  }
  if (program == "tar") {
    if (tar_extracts && !tar_directory.empty()) written.push_back(tar_directory);
    if (tar_creates && !tar_file.empty() && tar_file != "-") written.push_back(tar_file);
  } else if (is_one_of(program, kAfterFirstOperand) && !operands.empty()) {
    // With --reference=FILE there is no mode (owner) operand: every operand is changed.
    bool has_reference = std::any_of(args.begin(), args.end(), [](const std::string& arg) {
      return arg == "--reference" || arg.starts_with("--reference=");
    });
    written.insert(written.end(), operands.begin() + (has_reference ? 0 : 1), operands.end());
  } else if (is_one_of(program, kCompressors) && !to_stdout) {
    written.insert(written.end(), operands.begin(), operands.end());
  } else if (is_one_of(program, kEveryOperand) || program == "mv") {
    written.insert(written.end(), operands.begin(), operands.end());
  } else if (is_one_of(program, kLastOperand) && operands.size() >= 2 && !has_target_directory) {
    written.push_back(operands.back());
  } else if ((program == "sed" || is_perl) && in_place) {
    written.insert(written.end(), operands.begin() + (has_script || operands.empty() ? 0 : 1),
                   operands.end());
  }
  return written;
}

}  // namespace

CommandWrites CommandWriteTargets(std::string_view command, std::string_view cwd) {
  CommandWrites writes;
  for (const std::string& inner : SubstitutedCommands(command)) {  // "$(echo x > f)"
    CommandWrites of_inner = CommandWriteTargets(inner, cwd);
    writes.paths.insert(writes.paths.end(), of_inner.paths.begin(), of_inner.paths.end());
    writes.unknown.insert(writes.unknown.end(), of_inner.unknown.begin(), of_inner.unknown.end());
  }
  std::vector<ShellToken> tokens = SplitShellWords(command);
  // The directories relative paths may be taken from (as in FindBlockedPathInCommand); nullopt
  // for one the shell decides (cd $X).
  std::vector<std::optional<std::string>> dirs = {std::string(cwd)};
  auto add = [&](const std::string& word) {
    if (word.empty() || IsStandardDevice(word)) return;
    for (const std::optional<std::string>& dir : dirs) {
      std::optional<std::vector<std::string>> paths = ExpandPathWord(word, dir);
      if (!paths) {
        writes.unknown.push_back(word);
        break;
      }
      writes.paths.insert(writes.paths.end(), paths->begin(), paths->end());
    }
  };
  std::string program;  // Of the simple command being read, lowercase, without its directory.
  std::vector<std::string> args;
  auto end_command = [&] {
    for (const std::string& written : ProgramWrites(program, args, &writes.unknown)) {
      add(written);
    }
    // git configuration put in the environment of later commands (`export GIT_DIR=evil; git x`)
    // can make them run anything, as it can at a command's start.
    if (program == "export" || program == "declare" || program == "typeset" ||
        program == "readonly" || program == "local") {
      for (const std::string& arg : args) {
        if (arg.starts_with("GIT_")) writes.unknown.push_back(program + " " + arg);
      }
    }
    // A script given to a shell (sh -c '…', eval '…') is read as the commands it holds.
    std::optional<std::string> script;
    if (IsShellProgram(program)) {
      for (size_t k = 0; k + 1 < args.size(); ++k) {
        if (args[k].starts_with('-') && args[k].find('c') != std::string::npos) {
          script = args[k + 1];
          break;
        }
      }
    } else if (program == "eval") {
      script = JoinWords(args);
    }
    if (script && dirs.back()) {
      CommandWrites inner = CommandWriteTargets(*script, *dirs.back());
      writes.paths.insert(writes.paths.end(), inner.paths.begin(), inner.paths.end());
      writes.unknown.insert(writes.unknown.end(), inner.unknown.begin(), inner.unknown.end());
    }
    program.clear();
    args.clear();
  };
  bool expects_target = false;
  bool is_fd_duplication = false;  // After ">&": a number or "-" is a descriptor, not a file.
  bool at_command_start = true;
  ProgramFinder finder;
  bool is_cd = false;
  for (const ShellToken& token : tokens) {
    if (token.is_operator) {
      if (token.text == "|" && expects_target) continue;  // ">|" (clobber) is one redirection.
      expects_target = false;
      if (token.text.find('>') != std::string::npos) {  // >, >>, >&, &>, &>>.
        expects_target = true;
        is_fd_duplication = token.text.ends_with('&') && !token.text.starts_with('&');
      } else if (!token.text.starts_with('<')) {     // A separator; "<", "<<", "<<<" are not.
        if (is_cd) dirs.push_back(HomeDirectory());  // A bare cd goes home.
        end_command();
        at_command_start = true;
        finder.Reset();
        is_cd = false;
      }
      continue;
    }
    if (expects_target) {
      expects_target = false;
      bool is_descriptor =
          is_fd_duplication &&
          (token.text == "-" || token.text.find_first_not_of("0123456789") == std::string::npos);
      if (!is_descriptor) add(token.text);
      continue;
    }
    if (at_command_start) {
      std::optional<std::string> name = finder.Feed(token.text);
      // Configuration given to git in its environment can make it run anything.
      if (!name && token.text.starts_with("GIT_")) writes.unknown.push_back(token.text);
      if (!name) continue;
      at_command_start = false;
      program = *name;
      is_cd = program == "cd" || program == "pushd";
      continue;
    }
    if (is_cd) {  // Every directory a cd names may be where a later write lands.
      if (IsCdOption(token.text)) continue;
      // `cd -` fails (no OLDPWD in the command's environment); taken as unknown all the same.
      std::optional<std::vector<std::string>> to =
          token.text == "-" ? std::nullopt : ExpandPathWord(token.text, dirs.back());
      dirs.push_back(to && to->size() == 1 ? std::optional<std::string>(to->front())
                                           : std::nullopt);
      is_cd = false;
      continue;
    }
    args.push_back(token.text);
  }
  if (is_cd) dirs.push_back(HomeDirectory());
  end_command();
  return writes;
}

}  // namespace lai::workspace
