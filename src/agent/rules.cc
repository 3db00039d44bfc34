// Rule files: discovery, filtering and labelling (order documented in rules.h).
#include "agent/rules.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "workspace/text.h"
#include "workspace/workspace.h"

namespace lai::agent {
namespace {

namespace fs = std::filesystem;

constexpr uintmax_t kMaxRuleFileBytes = 256 * 1024;
constexpr int kMaxSymlinkDepth = 5;

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Editor, OS and tool droppings that are never rules.
bool IsNoiseFile(std::string_view name) {
  std::string lower = Lower(name);
  if (lower == ".ds_store" || lower == "thumbs.db" || lower.ends_with("~")) return true;
  for (std::string_view suffix :
       {".lock", ".log", ".bak", ".swp", ".swo", ".tmp", ".temp", ".cache", ".pyc", ".orig"}) {
    if (lower.ends_with(suffix)) return true;
  }
  return false;
}

// The file's text, trimmed; "" when it should be skipped.
std::string ReadRuleFile(const fs::path& path) {
  std::error_code error;
  uintmax_t size = fs::file_size(path, error);
  if (error || size == 0) return {};
  if (size > kMaxRuleFileBytes) {
    spdlog::warn("rule file {} left out: {} bytes, over the {} KiB a rule file may have",
                 path.string(), size, kMaxRuleFileBytes / 1024);
    return {};
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream bytes;
  bytes << in.rdbuf();
  std::string text = bytes.str();
  if (workspace::LooksBinary(std::string_view(text).substr(0, 8192))) return {};
  text = workspace::DecodeText(text).text;
  size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return {};
  size_t end = text.find_last_not_of(" \t\r\n");
  return text.substr(begin, end - begin + 1);
}

// Whether a project rule file or directory may be read: once links are followed it must lie
// inside the workspace, and a link must not lead to a file .kilocodeignore blocks. A cloned
// repository could otherwise link a rule to ~/.ssh/id_rsa or to an ignored .env and have it
// sent to the provider with the first prompt. A rule file that is itself matched by the ignore
// file is still a rule (as in Kilo Code: `*.md` there does not silence AGENTS.md). Global rules
// (`workspace` null) are the user's own.
bool MayRead(const workspace::Workspace* workspace, const fs::path& path) {
  if (workspace == nullptr) return true;
  Result<workspace::ResolvedPath> resolved = workspace->Resolve(path.string());
  const bool is_link =
      resolved.ok() &&
      path.lexically_normal().lexically_relative(workspace->root()).generic_string() !=
          resolved->relative;
  if (resolved.ok() && (!is_link || !workspace->IsBlocked(*resolved))) return true;
  spdlog::warn(
      "rule file {} left out: {}", path.string(),
      resolved.ok() ? "the workspace's .kilocodeignore blocks it" : resolved.error().message());
  return false;
}

bool IsDirectory(const fs::path& path) {
  std::error_code error;
  return fs::is_directory(path, error);
}

bool IsRegularFile(const fs::path& path) {
  std::error_code error;
  return fs::is_regular_file(path, error);
}

// (label, content) of each rule file under `dir`, sorted as documented.
// `workspace`: the workspace the directory belongs to, or null for a global one (see MayRead).
std::vector<std::pair<std::string, std::string>> ReadRuleDirectory(
    const fs::path& dir, const std::string& label_base, const workspace::Workspace* workspace) {
  struct RuleFile {
    std::string relative;  // The path as linked, below `dir`.
    fs::path real;         // What it resolves to.
    std::string content;
  };
  std::vector<RuleFile> found;
  std::error_code error;
  // Symbolic links are followed (shared rules may live elsewhere), but never back into this
  // directory or above it (a link to ".." would pull in other modes' rules, again and again),
  // and a file reached twice is read once, under its first name in the sorted order.
  const fs::path real_dir = fs::weakly_canonical(dir, error);
  auto it = fs::recursive_directory_iterator(dir,
                                             fs::directory_options::follow_directory_symlink |
                                                 fs::directory_options::skip_permission_denied,
                                             error);
  for (; !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (it.depth() >= kMaxSymlinkDepth) it.disable_recursion_pending();
    if (IsNoiseFile(it->path().filename().string()) || !MayRead(workspace, it->path())) {
      if (IsDirectory(it->path())) it.disable_recursion_pending();
      continue;
    }
    std::error_code real_error;
    fs::path real = fs::canonical(it->path(), real_error);
    if (real_error) continue;  // A dangling link.
    if (IsDirectory(it->path())) {
      auto [mismatch, unused] =
          std::mismatch(real.begin(), real.end(), real_dir.begin(), real_dir.end());
      if (mismatch == real.end()) it.disable_recursion_pending();  // real_dir or above it.
      continue;
    }
    if (!IsRegularFile(it->path())) continue;
    std::string content = ReadRuleFile(it->path());
    if (content.empty()) continue;
    found.push_back({it->path().lexically_relative(dir).generic_string(), std::move(real),
                     std::move(content)});
  }
  std::sort(found.begin(), found.end(), [](const RuleFile& a, const RuleFile& b) {
    std::string left = Lower(a.relative), right = Lower(b.relative);
    return left != right ? left < right : a.relative < b.relative;
  });
  std::vector<std::pair<std::string, std::string>> files;  // (label, content)
  std::set<fs::path> seen;
  for (RuleFile& file : found) {
    if (seen.insert(file.real).second) files.emplace_back(file.relative, std::move(file.content));
  }
  for (auto& [relative, content] : files) relative = label_base + "/" + relative;
  return files;
}

class RulesText {
 public:
  void Add(const std::string& label, const std::string& content) {
    if (!text_.empty()) text_ += "\n\n";
    text_ += "# Rules from " + label + ":\n" + content;
  }
  void AddAll(const std::vector<std::pair<std::string, std::string>>& files) {
    for (const auto& [label, content] : files) Add(label, content);
  }
  void AddRaw(const std::string& block) {
    if (!text_.empty()) text_ += "\n\n";
    text_ += block;
  }
  std::string Take() { return std::move(text_); }

 private:
  std::string text_;
};

// The first of `names` (relative to root) that holds rule text; false when none does.
bool AddFirstLegacyFile(RulesText& out, const workspace::Workspace& workspace,
                        std::initializer_list<std::string> names) {
  const fs::path root(workspace.root());
  for (const std::string& name : names) {
    if (!IsRegularFile(root / name) || !MayRead(&workspace, root / name)) continue;
    std::string content = ReadRuleFile(root / name);
    if (content.empty()) continue;
    out.Add(name, content);
    return true;
  }
  return false;
}

// Rule files of the first directory among `candidates` (relative to root) that has any (an
// empty .kilocode/rules/ hid .roo/rules/).
std::vector<std::pair<std::string, std::string>> ReadFirstDirectory(
    const workspace::Workspace& workspace, std::initializer_list<std::string> candidates) {
  const fs::path root(workspace.root());
  for (const std::string& candidate : candidates) {
    if (IsDirectory(root / candidate) && MayRead(&workspace, root / candidate)) {
      auto rules = ReadRuleDirectory(root / candidate, candidate, &workspace);
      if (!rules.empty()) return rules;
    }
  }
  return {};
}

}  // namespace

std::string LoadRules(const workspace::Workspace* workspace, std::string_view mode_slug,
                      std::string_view global_rules_dir) {
  RulesText out;
  std::string mode(mode_slug);
  if (!global_rules_dir.empty()) {
    fs::path global = fs::path(global_rules_dir).lexically_normal();
    if (!global.has_filename()) global = global.parent_path();  // Drop a trailing '/'.
    if (IsDirectory(global)) out.AddAll(ReadRuleDirectory(global, global.string(), nullptr));
    fs::path global_mode = global.parent_path() / ("rules-" + mode);
    if (!mode.empty() && IsDirectory(global_mode)) {
      out.AddAll(ReadRuleDirectory(global_mode, global_mode.string(), nullptr));
    }
  }
  if (workspace == nullptr) return out.Take();
  fs::path root(workspace->root());

  auto generic = ReadFirstDirectory(*workspace, {".kilocode/rules", ".roo/rules"});
  if (!generic.empty()) {
    out.AddAll(generic);
  } else {
    (void)AddFirstLegacyFile(out, *workspace, {".kilocoderules", ".roorules", ".clinerules"});
  }

  if (!mode.empty()) {
    std::string dir = "rules-" + mode;
    if (IsDirectory(root / ".kilocode" / dir) || IsDirectory(root / ".roo" / dir)) {
      out.AddAll(ReadFirstDirectory(*workspace, {".kilocode/" + dir, ".roo/" + dir}));
    } else {
      (void)AddFirstLegacyFile(
          out, *workspace, {".kilocoderules-" + mode, ".roorules-" + mode, ".clinerules-" + mode});
    }
  }

  for (const std::string name : {".kilocodeignore", ".rooignore"}) {
    if (!IsRegularFile(root / name) || !MayRead(workspace, root / name)) continue;
    std::string content = ReadRuleFile(root / name);
    if (content.empty()) continue;
    out.AddRaw("# " + name + "\n\n(The user's root-level " + name +
               " lists files and directories that must not be accessed. Tools refuse to read, "
               "list or search paths it matches; do not try to reach them another way, e.g. "
               "with shell commands.)\n" +
               content + "\n" + name);
    break;
  }

  // AGENT.md only when there is no AGENTS.md: not when that one was left out (a link out of the
  // workspace), which let a stale AGENT.md take its place.
  std::error_code error;
  const bool has_agents =
      fs::symlink_status(root / "AGENTS.md", error).type() != fs::file_type::not_found;
  (void)AddFirstLegacyFile(out, *workspace, {has_agents ? "AGENTS.md" : "AGENT.md"});
  return out.Take();
}

}  // namespace lai::agent
