#include "workspace/walker.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <memory>

#include "base/unique_fd.h"
#include "workspace/ignore.h"
#include "workspace/internal/sort.h"

namespace lai::workspace {
namespace {

// Kilo Code's DIRS_TO_IGNORE (src/services/glob/constants.ts) plus the build outputs and tool
// caches the project adds (build, target, .venv, .next, .nuxt, coverage, .cache, .idea, …).
// A listing shows them (and hidden directories) but does not descend into them, unless the
// listed directory is one or inside one; version control's own (.git, …) are not shown.
constexpr std::array<std::string_view, 30> kExcludedDirectories = {
    "node_modules", "__pycache__", "env",           "venv",        ".venv",    "target",
    "build",        "dist",        "out",           "bundle",      "vendor",   "tmp",
    "temp",         "deps",        "pkg",           "Pods",        ".git",     ".svn",
    ".hg",          ".bzr",        ".next",         ".nuxt",       "coverage", ".cache",
    ".idea",        ".gradle",     ".pytest_cache", ".mypy_cache", ".tox",     ".terraform"};

// The .gitignore files that apply to one directory: its own and its ancestors'.
struct GitignoreChain {
  std::shared_ptr<const GitignoreChain> parent;
  IgnoreRules rules;
};

// Reads the ignore file `name` in `dir_fd` (paths in it are relative to `base`). Returns
// `parent` when there is none. Ignore files are the only file content the walk reads.
std::shared_ptr<const GitignoreChain> LoadIgnoreFile(int dir_fd, const char* name,
                                                     const std::string& base,
                                                     std::shared_ptr<const GitignoreChain> parent) {
  UniqueFd fd(::openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW));
  if (!fd.is_valid()) return parent;
  struct stat info;
  if (::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode) || info.st_size > (1 << 20)) {
    return parent;
  }
  std::string content;
  std::array<char, 8192> buffer;
  while (true) {
    ssize_t count = ::read(fd.get(), buffer.data(), buffer.size());
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) break;
    content.append(buffer.data(), static_cast<size_t>(count));
  }
  auto chain = std::make_shared<GitignoreChain>();
  chain->parent = std::move(parent);
  chain->rules.AddPatterns(content, base);
  return chain;
}

std::shared_ptr<const GitignoreChain> LoadGitignore(int dir_fd, const std::string& base,
                                                    std::shared_ptr<const GitignoreChain> parent) {
  return LoadIgnoreFile(dir_fd, ".gitignore", base, std::move(parent));
}

std::shared_ptr<const GitignoreChain> LoadIgnoreFile(const std::string& path,
                                                     std::shared_ptr<const GitignoreChain> parent) {
  size_t slash = path.rfind('/');
  UniqueFd dir_fd(
      ::open(slash == 0 ? "/" : path.substr(0, slash).c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY));
  if (!dir_fd.is_valid()) return parent;
  return LoadIgnoreFile(dir_fd.get(), path.c_str() + slash + 1, "", std::move(parent));
}

// The git repository `root` is in, as git sees its ignore rules: where it starts (`top`), the
// root relative to it, and the rules that apply from outside the root (in git's order of
// precedence, weakest first): the user's global excludes file, .git/info/exclude, and the
// .gitignore files of the directories from `top` down to the root's parent. Outside any
// repository: the root alone, no rules.
struct GitContext {
  std::string top;
  std::string prefix;  // The root relative to `top` ("" when it is the top).
  std::shared_ptr<const GitignoreChain> chain;
};

GitContext FindGitContext(const std::string& root) {
  GitContext git{root, "", nullptr};
  std::string dir = root;
  struct stat info;
  while (::stat((dir + "/.git").c_str(), &info) != 0) {
    if (dir == "/" || dir.empty()) return git;  // Not in a repository.
    size_t slash = dir.rfind('/');
    dir = slash == 0 ? "/" : dir.substr(0, slash);
  }
  git.top = dir;
  git.prefix = root == dir ? "" : root.substr(dir == "/" ? 1 : dir.size() + 1);
  // The user's excludes file (core.excludesFile's default; a configured one is not read).
  const char* config = std::getenv("XDG_CONFIG_HOME");
  const char* home = std::getenv("HOME");
  std::string global = config != nullptr && config[0] == '/' ? std::string(config) + "/git/ignore"
                       : home != nullptr && home[0] == '/'
                           ? std::string(home) + "/.config/git/ignore"
                           : "";
  if (!global.empty()) git.chain = LoadIgnoreFile(global, git.chain);
  // A worktree's .git is a file naming its git directory.
  std::string git_dir = dir + "/.git";
  if (S_ISREG(info.st_mode)) {
    std::ifstream file(git_dir);
    std::string line;
    std::getline(file, line);
    if (line.starts_with("gitdir: ")) {
      std::string named = line.substr(8);
      git_dir = named.starts_with('/') ? named : dir + "/" + named;
    }
    // Its info/exclude is the main repository's: in the directory its commondir names.
    std::ifstream common(git_dir + "/commondir");
    if (std::getline(common, line) && !line.empty()) {
      git_dir = line.starts_with('/') ? line : git_dir + "/" + line;
    }
  }
  git.chain = LoadIgnoreFile(git_dir + "/info/exclude", git.chain);
  // The .gitignore files above the root, from the top down (the root's own is read with it).
  std::string base;
  for (size_t start = 0; start <= git.prefix.size() && !git.prefix.empty();) {
    UniqueFd fd(::open((base.empty() ? dir : dir + "/" + base).c_str(),
                       O_RDONLY | O_CLOEXEC | O_DIRECTORY));
    if (fd.is_valid()) git.chain = LoadGitignore(fd.get(), base, git.chain);
    size_t end = git.prefix.find('/', start);
    if (end == std::string::npos) break;
    base = git.prefix.substr(0, end);
    start = end + 1;
  }
  return git;
}

bool IsGitignored(const GitignoreChain* chain, std::string_view relative, bool is_directory) {
  // Rules in a deeper .gitignore override those above it; within a file the last match wins.
  for (; chain != nullptr; chain = chain->parent.get()) {
    IgnoreMatch match = chain->rules.Match(relative, is_directory);
    if (match != IgnoreMatch::kNone) return match == IgnoreMatch::kIgnored;
  }
  return false;
}

std::string JoinRelative(std::string_view base, std::string_view name) {
  if (base.empty()) return std::string(name);
  std::string joined(base);
  joined.push_back('/');
  joined.append(name);
  return joined;
}

struct Entry {
  std::string name;
  bool is_directory = false;
  bool is_symlink = false;
  bool is_blocked = false;  // Listed (include_blocked) but never entered.
};

// Lists one directory without reading any file: d_type, or fstatat when the file system does
// not fill it in; symlinks are stat()ed only to show a link to a directory as a directory.
Result<std::vector<Entry>> ReadEntries(int dir_fd, const std::string& display_path) {
  int dup_fd = ::dup(dir_fd);
  if (dup_fd < 0) return ErrnoError("list '" + display_path + "'", errno);
  DIR* dir = ::fdopendir(dup_fd);
  if (dir == nullptr) {
    int err = errno;
    ::close(dup_fd);
    return ErrnoError("list '" + display_path + "'", err);
  }
  std::vector<Entry> entries;
  while (true) {
    errno = 0;
    struct dirent* item = ::readdir(dir);
    if (item == nullptr) break;
    std::string_view name = item->d_name;
    if (name == "." || name == "..") continue;
    Entry entry;
    entry.name = std::string(name);
    unsigned char type = item->d_type;
    if (type == DT_UNKNOWN) {
      struct stat info;
      if (::fstatat(dir_fd, item->d_name, &info, AT_SYMLINK_NOFOLLOW) != 0) continue;
      type = S_ISDIR(info.st_mode) ? DT_DIR : S_ISLNK(info.st_mode) ? DT_LNK : DT_REG;
    }
    if (type == DT_LNK) {
      entry.is_symlink = true;
      struct stat target;
      entry.is_directory =
          ::fstatat(dir_fd, item->d_name, &target, 0) == 0 && S_ISDIR(target.st_mode);
    } else {
      entry.is_directory = type == DT_DIR;
    }
    entries.push_back(std::move(entry));
  }
  ::closedir(dir);
  return entries;
}

bool IsVersionControlDirectory(std::string_view name) {
  return name == ".git" || name == ".svn" || name == ".hg" || name == ".bzr";
}

// Whether a listing of `path` (from the workspace root) enters the directories listings skip:
// it is hidden, or excluded, or inside one (listing node_modules/lib on purpose lists it).
bool EntersSkippedDirectories(std::string_view path) {
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view name = path.substr(start, end - start);
    if (!name.empty() && (name[0] == '.' || IsDefaultExcludedDirectory(name))) return true;
    start = end + 1;
  }
  return false;
}

struct PendingDirectory {
  size_t node = 0;       // Its node in the output tree; 0 is the listed directory.
  std::string relative;  // From the listed directory, no trailing '/'.
  std::shared_ptr<const GitignoreChain> gitignore;  // Rules of its parents (its own added when
                                                    // it is read).
};

}  // namespace

bool IsDefaultExcludedDirectory(std::string_view name) {
  return std::find(kExcludedDirectories.begin(), kExcludedDirectories.end(), name) !=
         kExcludedDirectories.end();
}

Result<ListResult> ListFiles(const Workspace& workspace, const ResolvedPath& dir,
                             const ListOptions& options) {
  UniqueFd root_fd(::open(dir.absolute.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY));
  if (!root_fd.is_valid()) {
    int err = errno;
    if (err == ENOENT) {
      return Error(ErrorCode::kNotFound, "list '" + dir.absolute + "': no such directory");
    }
    if (err == ENOTDIR) {
      return Error(ErrorCode::kInvalidArgument,
                   "list '" + dir.absolute + "': not a directory; use read_file for files");
    }
    return ErrnoError("list '" + dir.absolute + "'", err);
  }
  ListResult result;
  if (options.limit == 0 || workspace.IsBlocked(dir)) return result;

  // Paths are matched from the workspace root for a directory inside it (so the root's and
  // intermediate .gitignore files apply), else from the listed directory; gitignore rules from
  // the top of the git repository the root is in (git_prefix + path), so that its ignore files
  // above the root, .git/info/exclude and the user's global one apply as git applies them.
  const bool is_inside = !dir.is_outside;
  const std::string prefix = is_inside ? dir.relative : "";  // Listed dir, relative to top.
  GitContext git = is_inside ? FindGitContext(workspace.root()) : GitContext{};
  auto from_git_top = [&git](std::string path) {
    return git.prefix.empty() ? path : path.empty() ? git.prefix : JoinRelative(git.prefix, path);
  };
  std::shared_ptr<const GitignoreChain> chain = git.chain;
  if (is_inside && !prefix.empty()) {
    UniqueFd top_fd(::open(workspace.root().c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY));
    if (top_fd.is_valid()) chain = LoadGitignore(top_fd.get(), git.prefix, chain);
    std::string base;
    for (size_t start = 0; start < prefix.size();) {
      size_t end = prefix.find('/', start);
      if (end == std::string::npos) end = prefix.size();
      base = prefix.substr(0, end);
      if (end == prefix.size()) break;  // The listed directory itself is loaded below.
      std::string absolute = workspace.root() + "/" + base;
      UniqueFd fd(::open(absolute.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY));
      if (fd.is_valid()) chain = LoadGitignore(fd.get(), from_git_top(base), chain);
      start = end + 1;
    }
  }
  chain = LoadGitignore(root_fd.get(), from_git_top(prefix), chain);

  // Like Kilo Code: hidden and excluded directories are entered only when the listed directory
  // is one (or inside one); unlike it, they are listed, so the model knows they are there.
  std::string_view base_name = std::string_view(dir.absolute).substr(dir.absolute.rfind('/') + 1);
  const bool enters_skipped =
      EntersSkippedDirectories(prefix) || EntersSkippedDirectories(base_name);
  const IgnoreRules& blocking = workspace.blocking_rules();

  // Breadth-first, like Kilo Code's level-by-level listing, so a limit keeps the shallowest
  // entries. Each directory's children are sorted once; the output order (files of a directory,
  // then each subdirectory followed by its contents) is then a pre-order walk of the nodes, the
  // same order CompareListedPaths gives without sorting every path against every other.
  struct Node {
    std::string path;                 // Relative to the listed directory, ending in '/'.
    std::vector<std::string> files;   // Relative paths, in order.
    std::vector<size_t> directories;  // Indices into `nodes`, in order.
  };
  std::vector<Node> nodes(1);
  std::deque<PendingDirectory> queue;
  queue.push_back({0, "", chain});  // The listed directory's own .gitignore is in `chain`.
  size_t found = 0;
  bool is_done = false;
  while (!queue.empty() && !is_done) {
    PendingDirectory current = std::move(queue.front());
    queue.pop_front();
    UniqueFd current_fd;
    if (current.node != 0) {
      // Opened only now (not when queued) so that a wide tree never holds many descriptors.
      current_fd.Reset(::openat(root_fd.get(), current.relative.c_str(),
                                O_RDONLY | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW));
      if (!current_fd.is_valid()) continue;  // Unreadable or gone: skipped, as Kilo Code does.
      current.gitignore =
          LoadGitignore(current_fd.get(), from_git_top(JoinRelative(prefix, current.relative)),
                        current.gitignore);
    }
    int fd = current.node == 0 ? root_fd.get() : current_fd.get();
    Result<std::vector<Entry>> entries = ReadEntries(fd, dir.absolute);
    if (!entries.ok()) {
      if (current.node == 0) return std::move(entries).error();
      continue;
    }
    std::vector<Entry*> kept;
    for (Entry& entry : *entries) {
      // A worktree's .git is a file: left out as the directory is.
      if (IsVersionControlDirectory(entry.name)) continue;
      std::string from_top = JoinRelative(prefix, JoinRelative(current.relative, entry.name));
      if (IsGitignored(current.gitignore.get(), from_git_top(from_top), entry.is_directory)) {
        continue;
      }
      // A listed folder that holds the workspace: its entries in the workspace are blocked too.
      bool is_blocked = is_inside
                            ? blocking.Match(from_top, entry.is_directory) == IgnoreMatch::kIgnored
                            : workspace.IsBlockedAbsolute(
                                  (dir.absolute == "/" ? "" : dir.absolute) + "/" + from_top);
      if (is_blocked) {
        if (!options.include_blocked) continue;
        entry.is_blocked = true;
      }
      if (entry.is_directory) entry.name.push_back('/');  // The sort key: "dir/" vs "file".
      kept.push_back(&entry);
    }
    // Directories count first against the limit, as in Kilo Code: a directory of many files
    // still shows its subdirectories, for the model to list next. (The output puts a
    // directory's files first all the same; see Node.)
    std::sort(kept.begin(), kept.end(), [](const Entry* a, const Entry* b) {
      if (a->is_directory != b->is_directory) return a->is_directory;
      return internal::CompareListedPaths(a->name, b->name) < 0;
    });
    for (Entry* entry : kept) {
      if (found >= options.limit) {
        result.truncated = true;
        is_done = true;
        break;
      }
      ++found;
      std::string relative = JoinRelative(current.relative, entry->name);
      if (!entry->is_directory) {
        nodes[current.node].files.push_back(std::move(relative));
        continue;
      }
      size_t child = nodes.size();
      nodes[current.node].directories.push_back(child);
      nodes.push_back(Node{relative, {}, {}});
      bool is_skipped =
          entry->name[0] == '.' ||
          IsDefaultExcludedDirectory(
              std::string_view(entry->name).substr(0, entry->name.size() - 1));  // Without its '/'.
      if (!options.recursive || entry->is_symlink || entry->is_blocked ||
          (is_skipped && !enters_skipped)) {
        continue;
      }
      relative.pop_back();  // Without the trailing '/'.
      queue.push_back({child, std::move(relative), current.gitignore});
    }
  }

  result.entries.reserve(found);
  std::vector<std::pair<size_t, size_t>> stack = {{0, 0}};  // (node, next directory index)
  for (const std::string& file : nodes[0].files) result.entries.push_back(file);
  while (!stack.empty()) {
    auto& [index, next] = stack.back();
    if (next == nodes[index].directories.size()) {
      stack.pop_back();
      continue;
    }
    Node& child = nodes[nodes[index].directories[next++]];
    result.entries.push_back(std::move(child.path));
    for (std::string& file : child.files) result.entries.push_back(std::move(file));
    stack.push_back({static_cast<size_t>(&child - nodes.data()), 0});
  }
  return result;
}

}  // namespace lai::workspace
