// Mention scanning and expansion.
#include "agent/mentions.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "agent/tools/responses.h"
#include "base/strings.h"
#include "workspace/process.h"
#include "workspace/text.h"
#include "workspace/walker.h"

namespace lai::agent {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxMentionFileBytes = 8 << 20;
constexpr std::chrono::milliseconds kGitTimeout{10000};
constexpr size_t kMaxGitOutputBytes = 64 * 1024;
constexpr size_t kMaxGitDiffLines = 500;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsTrailingPunctuation(char c) { return std::strchr(".,;:!?", c) != nullptr && c != '\0'; }

enum class MentionKind { kPath, kGitChanges };

struct Mention {
  size_t begin = 0;  // Offset of '@'.
  size_t end = 0;    // One past the mention (punctuation excluded).
  MentionKind kind = MentionKind::kPath;
  std::string path;  // kPath: without the leading '/', "\ " unescaped.
};

// The mention starting at text[at] == '@', if it is one.
std::optional<Mention> ScanMention(std::string_view text, size_t at) {
  if (at > 0 && !IsSpace(text[at - 1]) && text[at - 1] != '(') return std::nullopt;
  size_t start = at + 1;
  size_t end = start;
  while (end < text.size() && !IsSpace(text[end])) {
    if (text[end] == '\\' && end + 1 < text.size() && text[end + 1] == ' ') {
      end += 2;
      continue;
    }
    ++end;
  }
  // A trailing punctuation mark belongs to the sentence, not the mention, and so does a closing
  // parenthesis the mention did not open ("(see @/a.ts)."; "src/(group)/page.tsx" keeps its).
  for (bool is_cut = true; is_cut && end > start + 1;) {
    is_cut = false;
    if (IsTrailingPunctuation(text[end - 1])) {
      --end;
      is_cut = true;
    } else if (text[end - 1] == ')') {
      std::string_view body = text.substr(start, end - start);
      if (std::count(body.begin(), body.end(), ')') > std::count(body.begin(), body.end(), '(')) {
        --end;
        is_cut = true;
      }
    }
  }
  std::string_view body = text.substr(start, end - start);
  Mention mention;
  mention.begin = at;
  mention.end = end;
  if (body == "git-changes") {
    mention.kind = MentionKind::kGitChanges;
    return mention;
  }
  if (body.size() < 2 || body[0] != '/') return std::nullopt;
  mention.kind = MentionKind::kPath;
  for (size_t i = 1; i < body.size(); ++i) {
    if (body[i] == '\\' && i + 1 < body.size() && body[i + 1] == ' ') continue;
    mention.path += body[i];
  }
  return mention;
}

}  // namespace

std::string MentionOf(std::string_view relative_path) {
  if (relative_path.empty() || IsTrailingPunctuation(relative_path.back())) return {};
  std::string mention = "@/";
  for (char c : relative_path) {
    if (c == ' ') {
      mention += "\\ ";
    } else if (IsSpace(c)) {
      return {};
    } else {
      mention += c;
    }
  }
  return mention;
}

namespace {

void AppendBlock(std::string& blocks, std::string_view tag, std::string_view path,
                 std::string_view body) {
  blocks += "\n\n<";
  blocks += tag;
  blocks += " path=\"";
  blocks += path;
  blocks += "\">\n";
  blocks += body;
  if (!body.empty() && body.back() != '\n') blocks += '\n';
  blocks += "</";
  blocks += tag;
  blocks += ">";
}

// The note or content for one mentioned path; sets *is_folder from the file system (or from a
// trailing '/' when the path does not exist).
std::string PathBody(const workspace::Workspace& workspace, const ToolSettings& settings,
                     const std::string& path, bool* is_folder,
                     std::vector<std::string>* folder_files = nullptr) {
  *is_folder = path.ends_with('/');
  Result<workspace::ResolvedPath> resolved = workspace.Resolve(path, /*allow_outside=*/false);
  if (!resolved.ok()) {
    if (resolved.error().code() == ErrorCode::kPermissionDenied) {
      return "(Not included: '" + path +
             "' is outside the workspace; mentions can only include workspace files. Ask for "
             "it with read_file if it is needed.)";
    }
    return "(Not included: " + resolved.error().message() + ")";
  }
  if (workspace.IsBlocked(*resolved)) {
    return "(Not included: '" + path + "' is blocked by the .kilocodeignore file settings.)";
  }
  std::error_code error;
  fs::file_status status = fs::status(resolved->absolute, error);
  if (error || !fs::exists(status)) {
    return "(Not included: '" + path + "' does not exist in the workspace.)";
  }
  if (fs::is_directory(status)) {
    *is_folder = true;
    workspace::ListOptions options;
    options.recursive = false;
    options.limit = static_cast<size_t>(std::max(1, settings.list_files_limit));
    Result<workspace::ListResult> listing = workspace::ListFiles(workspace, *resolved, options);
    if (!listing.ok()) return "(Not included: " + listing.error().message() + ")";
    if (listing->entries.empty()) return "(Empty folder)";
    std::string body;
    for (size_t i = 0; i < listing->entries.size(); ++i) {
      bool is_last = i + 1 == listing->entries.size() && !listing->truncated;
      body += is_last ? "└── " : "├── ";
      body += listing->entries[i];
      body += '\n';
      if (folder_files != nullptr && !listing->entries[i].ends_with('/')) {
        folder_files->push_back(listing->entries[i]);
      }
    }
    if (listing->truncated) {
      body += "└── … (listing cut at " + std::to_string(options.limit) +
              " entries; use list_files for the rest)\n";
    }
    return body;
  }
  *is_folder = false;
  uintmax_t size = fs::file_size(resolved->absolute, error);
  if (error) return "(Not included: cannot read '" + path + "': " + error.message() + ")";
  // A larger file is read as far as its first kMaxMentionFileBytes, whose lines are shown as
  // read_file shows a long file's first lines (nothing was shown of it).
  const bool is_cut = size > kMaxMentionFileBytes;
  std::ifstream in(resolved->absolute, std::ios::binary);
  if (!in) return "(Not included: cannot read '" + path + "'.)";
  // The first 8 KiB tell a binary file, which is read no further (a folder may hold many).
  const size_t wanted = static_cast<size_t>(std::min<uintmax_t>(size, kMaxMentionFileBytes));
  std::string raw(std::min<size_t>(wanted, 8192), '\0');
  in.read(raw.data(), static_cast<std::streamsize>(raw.size()));
  raw.resize(static_cast<size_t>(in.gcount()));
  if (workspace::LooksBinary(raw)) {
    return "(Binary file '" + path + "', " + std::to_string(size) + " bytes: content not shown.)";
  }
  if (size_t have = raw.size(); wanted > have) {
    raw.resize(wanted);
    in.read(raw.data() + have, static_cast<std::streamsize>(wanted - have));
    raw.resize(have + static_cast<size_t>(in.gcount()));
  }
  if (is_cut) raw.resize(raw.rfind('\n') == std::string::npos ? 0 : raw.rfind('\n') + 1);
  std::string text = workspace::DecodeText(raw).text;
  if (text.empty()) {
    return is_cut ? "(Not included: '" + path + "' is " + std::to_string(size) +
                        " bytes in long lines; read the parts you need with search_files or a "
                        "command.)"
                  : "(File is empty)";
  }
  if (text.back() == '\n') text.pop_back();
  size_t total = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  int limit = settings.read_line_limit;
  std::string body;
  if (is_cut && (limit < 0 || total <= static_cast<size_t>(limit))) {
    AppendNumberedLines(body, text, 1, 1);
    body += "\n[Showing the first " + std::to_string(total) + " lines of a " +
            std::to_string(size) + "-byte file. Use read_file with line_ranges to read more.]";
  } else if (limit >= 0 && total > static_cast<size_t>(limit)) {
    size_t cut = 0;
    for (int line = 0; line < limit; ++line) cut = text.find('\n', cut) + 1;
    if (limit > 0) AppendNumberedLines(body, std::string_view(text).substr(0, cut - 1), 1, 1);
    body += is_cut ? "[Showing only the first " + std::to_string(limit) + " lines of a " +
                         std::to_string(size) +
                         "-byte file. Use read_file with line_ranges to read more.]"
                   : "[Showing only " + std::to_string(limit) + " of " + std::to_string(total) +
                         " total lines. Use read_file with line_ranges to read more.]";
  } else {
    AppendNumberedLines(body, text, 1, 1);
  }
  return body;
}

// Cuts a mention's body to `budget` bytes (read_file's byte limit, shared by the prompt's
// mentions), at a line end when one is near, with a note; lowers the budget by what is kept.
void CutToBudget(std::string& body, size_t& budget) {
  if (body.size() <= budget) {
    budget -= body.size();
    return;
  }
  size_t full = body.size();
  if (budget == 0) {
    body = "(Not included: the files mentioned before it already fill what fits the model's "
           "context; read it with read_file.)";
    return;
  }
  size_t cut = budget;
  if (size_t line_end = body.rfind('\n', cut); line_end != std::string::npos && line_end > cut / 2) {
    cut = line_end;
  }
  cut = Utf8CutPosition(body, cut);
  body.resize(cut);
  budget = 0;
  body += "\n[Cut at " + std::to_string(cut) + " of " + std::to_string(full) +
          " bytes to fit the model's context. Use read_file with line_ranges, or search_files, "
          "for the rest.]";
}

std::string RunGit(const workspace::Workspace& workspace, std::string_view command, bool* ok) {
  workspace::CommandOptions options;
  options.cwd = workspace.root();
  options.timeout = kGitTimeout;
  Result<workspace::CommandOutcome> outcome = workspace::RunCommand(command, options);
  *ok = outcome.ok() && outcome->exit_code == 0;
  if (!outcome.ok()) return outcome.error().message();
  std::string output = std::move(outcome->output);
  if (output.size() > kMaxGitOutputBytes) {
    output.resize(kMaxGitOutputBytes);
    output += "\n[output cut at " + std::to_string(kMaxGitOutputBytes) + " bytes]";
  }
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  return output;
}

std::string ShellQuoted(std::string_view text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// `git status --short` and the diff of the workspace's changes, as Kilo Code gives them: the
// diff of the files the ignore rules leave (their contents never reach the model), cut at
// kMaxGitDiffLines. Paths are the workspace's own (a subdirectory of a repository sees its
// changes only, named from its root).
std::string GitWorkingState(const workspace::Workspace& workspace) {
  // Names as they are, taken literally (a file named '*' is no glob), in output the user's
  // configuration does not colour or hand to an external diff.
  constexpr std::string_view kGit = "git -c core.quotepath=off --literal-pathspecs ";
  bool ok = false;
  std::string status =
      RunGit(workspace, std::string(kGit) + "-c color.status=false status --short -- .", &ok);
  if (!ok) {
    return "(Not available: git status failed in the workspace — is it a git repository?)\n" +
           status;
  }
  if (status.empty()) return "No changes in the working directory.";
  std::string body = "Working directory changes:\n\n" + status;
  // -z: names without C quoting (a '"', '\\' or tab in one).
  std::string base = "HEAD ";
  std::string names =
      RunGit(workspace, std::string(kGit) + "diff HEAD --name-only -z --relative -- .", &ok);
  if (!ok) {  // No commit yet: the staged changes.
    base = "--cached ";
    names =
        RunGit(workspace, std::string(kGit) + "diff --cached --name-only -z --relative -- .", &ok);
  }
  if (!ok) return body;
  std::string paths;
  size_t blocked = 0;
  size_t outside = 0;
  for (size_t at = 0; at < names.size();) {
    size_t end = std::min(names.find('\0', at), names.size());
    std::string name = names.substr(at, end - at);
    at = end + 1;
    if (name.empty()) continue;
    Result<workspace::ResolvedPath> resolved = workspace.Resolve(name, /*allow_outside=*/false);
    if (!resolved.ok()) {
      ++outside;  // A link leading out of the workspace.
    } else if (workspace.IsBlocked(*resolved)) {
      ++blocked;
    } else {
      paths += " " + ShellQuoted(name);
    }
  }
  std::string left_out;
  if (blocked > 0) {
    left_out += "\n\n(" + std::to_string(blocked) +
                " changed file(s) left out of the diff: blocked by the .kilocodeignore file "
                "settings.)";
  }
  if (outside > 0) {
    left_out += "\n\n(" + std::to_string(outside) +
                " changed file(s) left out of the diff: links leading outside the workspace.)";
  }
  if (paths.empty()) return body + left_out;
  std::string diff = RunGit(
      workspace,
      std::string(kGit) + "diff --no-color --no-ext-diff " + base + "--relative --" + paths, &ok);
  if (!ok || diff.empty()) return body + left_out;
  size_t lines = 0;
  for (size_t at = 0; at < diff.size(); ++at) {
    if (diff[at] != '\n' || ++lines < kMaxGitDiffLines) continue;
    diff.resize(at);
    diff += "\n[Diff cut at " + std::to_string(kMaxGitDiffLines) +
            " lines. Run git diff for the rest.]";
    break;
  }
  body += "\n\nDiff:\n" + diff + left_out;
  return body;
}

// One key for the ways of naming a path: "@/d", "@/d/" and "@/./d" are one folder.
std::string MentionKey(std::string_view path) {
  std::string key = std::filesystem::path(path).lexically_normal().string();
  if (key.size() > 1 && key.ends_with('/')) key.pop_back();
  return key;
}

}  // namespace

std::string ExpandMentions(std::string_view text, const workspace::Workspace& workspace,
                           const ToolSettings& settings) {
  std::string out;
  std::string blocks;
  std::vector<std::string> seen;
  size_t budget = settings.read_byte_limit;  // For all the prompt's file contents together.
  out.reserve(text.size());
  size_t copied = 0;
  for (size_t at = text.find('@'); at != std::string_view::npos; at = text.find('@', at + 1)) {
    if (at > 0 && text[at - 1] == '\\') continue;
    std::optional<Mention> mention = ScanMention(text, at);
    if (!mention) continue;
    out.append(text.substr(copied, mention->begin - copied));
    copied = mention->end;
    std::string key =
        mention->kind == MentionKind::kGitChanges ? "@git-changes" : MentionKey(mention->path);
    bool is_new = std::find(seen.begin(), seen.end(), key) == seen.end();
    if (is_new) seen.push_back(key);
    if (mention->kind == MentionKind::kGitChanges) {
      out += "Working directory changes (see below for details)";
      if (is_new) {
        blocks +=
            "\n\n<git_working_state>\n" + GitWorkingState(workspace) + "\n</git_working_state>";
      }
    } else {
      bool is_folder = false;
      std::vector<std::string> files;
      std::string body = PathBody(workspace, settings, mention->path, &is_folder, &files);
      if (is_new && !is_folder) CutToBudget(body, budget);
      out +=
          "'" + mention->path + "' (see below for " + (is_folder ? "folder" : "file") + " content)";
      if (!is_new) {
        at = mention->end - 1;
        continue;
      }
      AppendBlock(blocks, is_folder ? "folder_content" : "file_content", mention->path, body);
      // A folder's own text files follow its listing, as Kilo Code gives them, while they fit.
      std::string folder = mention->path.ends_with('/') ? mention->path : mention->path + "/";
      for (const std::string& name : files) {
        std::string file = folder + name;
        std::string file_key = MentionKey(file);
        if (budget == 0 || std::find(seen.begin(), seen.end(), file_key) != seen.end()) continue;
        bool is_file_folder = false;
        std::string content = PathBody(workspace, settings, file, &is_file_folder);
        if (is_file_folder || content.starts_with("(Binary file")) continue;
        seen.push_back(std::move(file_key));
        CutToBudget(content, budget);
        AppendBlock(blocks, "file_content", file, content);
      }
    }
    at = mention->end - 1;
  }
  out.append(text.substr(copied));
  out += blocks;
  return out;
}

}  // namespace lai::agent
