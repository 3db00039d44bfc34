// delete_file: delete a file or a directory tree inside the workspace, after approval.
#include <sys/stat.h>

#include <filesystem>
#include <optional>
#include <string>

#include "agent/tools/args.h"
#include "agent/tools/factories.h"
#include "agent/tools/responses.h"
#include "agent/tools/tool_base.h"

namespace lai::agent {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kDescription =
    "Delete a file or directory (with everything in it) inside the workspace. The user must "
    "approve; directories show how many files they hold first. Refused for paths outside the "
    "workspace, and for directories holding protected or .kilocodeignore'd files.";

constexpr std::string_view kSchema = R"json({
  "type": "object",
  "properties": {
    "path": {"type": "string", "description": "Path of the file or directory, relative to the workspace"}
  },
  "required": ["path"],
  "additionalProperties": false
})json";

struct TreeStats {
  size_t files = 0;
  size_t directories = 0;
  uintmax_t bytes = 0;
  std::string blocked;         // First .kilocodeignore'd path inside, if any.
  std::string protected_path;  // First write-protected path inside, if any.
};

Result<TreeStats> Survey(const workspace::Workspace& workspace, const std::string& root) {
  TreeStats stats;
  std::error_code error;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, error);
  if (error) return Error(ErrorCode::kIo, "cannot list '" + root + "': " + error.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (error) return Error(ErrorCode::kIo, "cannot list '" + root + "': " + error.message());
    const fs::directory_entry& entry = *it;
    Result<workspace::ResolvedPath> path = workspace.Resolve(entry.path().string(), true);
    if (path.ok()) {
      if (stats.blocked.empty() && workspace.IsBlocked(*path)) stats.blocked = path->relative;
      if (stats.protected_path.empty() && workspace.IsWriteProtected(*path)) {
        stats.protected_path = path->relative;
      }
    }
    if (entry.is_directory(error) && !entry.is_symlink(error)) {
      ++stats.directories;
    } else {
      ++stats.files;
      if (entry.is_regular_file(error)) stats.bytes += entry.file_size(error);
    }
  }
  return stats;
}

// `path` when its last component is a symbolic link in a workspace directory: the link itself,
// which delete_file removes, never what it points to.
std::optional<workspace::ResolvedPath> LinkAt(const workspace::Workspace& workspace,
                                              const std::string& path) {
  fs::path raw(path);
  std::string name = raw.filename().string();
  if (name.empty() || name == "." || name == "..") return std::nullopt;
  std::string parent = raw.parent_path().string();
  Result<workspace::ResolvedPath> directory = workspace.Resolve(parent.empty() ? "." : parent);
  if (!directory.ok()) return std::nullopt;
  workspace::ResolvedPath link;
  link.absolute = directory->absolute + "/" + name;
  link.relative = directory->relative.empty() ? name : directory->relative + "/" + name;
  struct stat info {};
  if (::lstat(link.absolute.c_str(), &info) != 0 || !S_ISLNK(info.st_mode)) return std::nullopt;
  return link;
}

class DeleteFileTool final : public ToolBase {
 public:
  DeleteFileTool() : ToolBase("delete_file", kDescription, kSchema) {}

  ToolResult Run(std::string_view arguments_json, ToolContext& context) const override {
    Result<ToolArgs> args = ToolArgs::Parse(arguments_json);
    if (!args.ok()) return ErrorResult(args.error());
    Result<std::string> path = args->RequiredString("path");
    if (!path.ok()) return ErrorResult(path.error());
    // Deleting is workspace-only: no approval can widen it. A link is deleted itself (a link to a
    // directory took the directory's files with it; one pointing out could not be deleted).
    std::optional<workspace::ResolvedPath> link = LinkAt(context.workspace, *path);
    Result<workspace::ResolvedPath> resolved =
        link ? Result<workspace::ResolvedPath>(*link) : context.workspace.Resolve(*path);
    if (!resolved.ok()) {
      if (resolved.error().code() == ErrorCode::kPermissionDenied) {
        return {true, ToolErrorText("Cannot delete '" + *path + "': it is outside the workspace (" +
                                    context.workspace.root() +
                                    "). delete_file only deletes inside the workspace.")};
      }
      return {true, ToolErrorText("Cannot delete '" + *path + "': " + resolved.error().message())};
    }
    if (resolved->relative.empty()) {
      return {true, ToolErrorText("Cannot delete the workspace root.")};
    }
    if (context.workspace.IsBlocked(*resolved)) {
      return {true, ToolErrorText(BlockedPathText(*path))};
    }
    const std::string& display = resolved->relative;
    struct stat info {};
    if (::lstat(resolved->absolute.c_str(), &info) != 0) {
      return {true, ToolErrorText("File or directory not found: '" + display + "'.")};
    }
    bool is_directory = S_ISDIR(info.st_mode);
    std::string detail;
    std::string summary;
    if (link) {
      std::error_code ignored;
      detail = "Delete the link " + display + " (to " +
               fs::read_symlink(resolved->absolute, ignored).string() +
               "; what it points to stays)";
    } else if (is_directory) {
      Result<TreeStats> stats = Survey(context.workspace, resolved->absolute);
      if (!stats.ok()) return {true, ToolErrorText(stats.error().message())};
      if (!stats->blocked.empty()) {
        return {true, ToolErrorText("Cannot delete directory '" + display + "': it contains '" +
                                    stats->blocked +
                                    "', which is blocked by the .kilocodeignore file settings.")};
      }
      if (!stats->protected_path.empty()) {
        return {true, ToolErrorText("Cannot delete directory '" + display + "': it contains '" +
                                    stats->protected_path +
                                    "', which is write-protected. Delete the other files one by "
                                    "one, or ask the user to do it.")};
      }
      summary = std::to_string(stats->files) + " files, " + std::to_string(stats->directories) +
                " subdirectories, " + std::to_string(stats->bytes) + " bytes";
      detail = "Delete directory " + display + "/ and everything in it (" + summary + ")";
    } else {
      detail = "Delete file " + display + " (" + std::to_string(info.st_size) + " bytes)";
    }
    ApprovalKind kind = ActionApprovalKind(context, *resolved, ApprovalKind::kDelete);
    Result<ApprovalReply> reply = AskApproval(context, kind, name(), display, detail);
    if (!reply.ok()) return ErrorResult(reply.error());
    std::error_code error;
    fs::remove_all(resolved->absolute, error);
    if (error) {
      return {true, ToolErrorText("Error deleting '" + display + "': " + error.message())};
    }
    std::string text = link           ? "Deleted the link '" + display + "'."
                       : is_directory ? "Deleted directory '" + display + "' (" + summary + ")."
                                      : "Deleted file '" + display + "'.";
    return {false, text + ApprovedFeedbackText(reply->feedback)};
  }
};

}  // namespace

std::unique_ptr<Tool> MakeDeleteFileTool() { return std::make_unique<DeleteFileTool>(); }

}  // namespace lai::agent
