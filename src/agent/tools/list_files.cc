// list_files: the files and directories under a path, recursively or not, as Kilo Code lists.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "agent/tools/args.h"
#include "agent/tools/factories.h"
#include "agent/tools/responses.h"
#include "agent/tools/tool_base.h"
#include "workspace/walker.h"

namespace lai::agent {
namespace {

constexpr std::string_view kDescription =
    "List files and directories within a directory. With recursive true, lists everything "
    "below it; otherwise only the top level. Directories end with '/'. .gitignore'd, "
    ".kilocodeignore'd and generated directories (node_modules, .git, build outputs) are "
    "skipped. Do not use it to confirm files you created; the result tells you.";

constexpr std::string_view kSchema = R"json({
  "type": "object",
  "properties": {
    "path": {"type": "string", "description": "Directory to list, relative to the workspace"},
    "recursive": {"type": ["boolean", "null"], "description": "List recursively (default false)"}
  },
  "required": ["path"],
  "additionalProperties": false
})json";

class ListFilesTool final : public ToolBase {
 public:
  ListFilesTool() : ToolBase("list_files", kDescription, kSchema) {}

  ToolResult Run(std::string_view arguments_json, ToolContext& context) const override {
    Result<ToolArgs> args = ToolArgs::Parse(arguments_json);
    if (!args.ok()) return ErrorResult(args.error());
    Result<std::string> path = args->RequiredString("path");
    if (!path.ok()) return ErrorResult(path.error());
    Result<bool> recursive = args->OptionalBool("recursive", false);
    if (!recursive.ok()) return ErrorResult(recursive.error());
    Result<workspace::ResolvedPath> resolved =
        ResolveToolPath(context, name(), path->empty() ? "." : *path, PathUse::kRead);
    if (!resolved.ok()) return ErrorResult(resolved.error());
    // Listing the filesystem root or the home directory would flood the context (Kilo Code
    // answers with the path alone).
    const char* home = std::getenv("HOME");
    if (resolved->absolute == "/" || (home != nullptr && resolved->absolute == home)) {
      return {false, resolved->absolute + (resolved->absolute == "/" ? "" : "/")};
    }
    workspace::ListOptions options;
    options.recursive = *recursive;
    options.limit = static_cast<size_t>(std::max(1, context.settings.list_files_limit));
    Result<workspace::ListResult> listed =
        workspace::ListFiles(context.workspace, *resolved, options);
    if (!listed.ok()) {
      return {true, ToolErrorText("Error listing '" + *path + "': " + listed.error().message())};
    }
    if (listed->entries.empty()) return {false, "No files found."};
    std::string out;
    std::string prefix = resolved->relative.empty() ? "" : resolved->relative + "/";
    for (const std::string& entry : listed->entries) {
      if (!out.empty()) out += '\n';
      if (!resolved->is_outside) {
        Result<workspace::ResolvedPath> entry_path = context.workspace.Resolve(prefix + entry);
        if (entry_path.ok() && context.workspace.IsWriteProtected(*entry_path)) out += "🛡️ ";
      }
      out += entry;
    }
    if (listed->truncated) {
      out +=
          "\n\n(File list truncated. Use list_files on specific subdirectories if you need to "
          "explore further.)";
    }
    return {false, std::move(out)};
  }
};

}  // namespace

std::unique_ptr<Tool> MakeListFilesTool() { return std::make_unique<ListFilesTool>(); }

}  // namespace lai::agent
