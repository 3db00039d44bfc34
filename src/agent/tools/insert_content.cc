// insert_content: insert lines before a given line of a file, or append them (line 0).
#include <algorithm>
#include <string>

#include "agent/tools/args.h"
#include "agent/tools/factories.h"
#include "agent/tools/responses.h"
#include "agent/tools/tool_base.h"

namespace lai::agent {
namespace {

constexpr std::string_view kDescription =
    "Insert new lines into a file without changing existing ones: imports, functions, "
    "configuration blocks. 'line' is the 1-based line the content is inserted before; 0 appends "
    "at the end of the file. A file that does not exist yet is created when line is 0 or 1.";

constexpr std::string_view kSchema = R"json({
  "type": "object",
  "properties": {
    "path": {"type": "string", "description": "Path of the file, relative to the workspace"},
    "line": {"type": "integer", "description": "1-based line to insert before; 0 appends at the end", "minimum": 0},
    "content": {"type": "string", "description": "The lines to insert"}
  },
  "required": ["path", "line", "content"],
  "additionalProperties": false
})json";

class InsertContentTool final : public ToolBase {
 public:
  InsertContentTool() : ToolBase("insert_content", kDescription, kSchema) {}

  ToolResult Run(std::string_view arguments_json, ToolContext& context) const override {
    Result<ToolArgs> args = ToolArgs::Parse(arguments_json);
    if (!args.ok()) return ErrorResult(args.error());
    Result<std::string> path = args->RequiredString("path");
    if (!path.ok()) return ErrorResult(path.error());
    Result<int64_t> line = args->RequiredInteger("line");
    if (!line.ok()) return ErrorResult(line.error());
    Result<std::string> content = args->RequiredString("content");
    if (!content.ok()) return ErrorResult(content.error());
    if (*line < 0) {
      return {true, ToolErrorText("Invalid line number " + std::to_string(*line) +
                                  ": use a 1-based line number to insert before, or 0 to append "
                                  "at the end of the file.")};
    }
    Result<EditTarget> target = ResolveEditTarget(context, name(), *path);
    if (!target.ok()) return ErrorResult(target.error());
    const std::string& display = DisplayPath(target->path);
    if (!target->exists && *line > 1) {
      return {true, ToolErrorText("Cannot insert content at line " + std::to_string(*line) +
                                  " into '" + display +
                                  "': the file does not exist. For a new file, 'line' must be 0 "
                                  "(append) or 1 (insert at the beginning).")};
    }
    std::string insert = *content;
    insert.erase(std::remove(insert.begin(), insert.end(), '\r'), insert.end());
    if (!insert.empty() && insert.back() != '\n') insert += '\n';

    const std::string& old_text = target->file.text;
    // Byte offset of the start of line `line` (1-based); past the end appends.
    size_t offset = *line >= 1 ? AdvanceLines(old_text, 0, *line - 1) : old_text.size();
    std::string new_text = old_text.substr(0, offset);
    if (!new_text.empty() && new_text.back() != '\n') new_text += '\n';
    new_text += insert;
    new_text += std::string_view(old_text).substr(offset);
    return CommitEdit(context, name(), *target, new_text);
  }
};

}  // namespace

std::unique_ptr<Tool> MakeInsertContentTool() { return std::make_unique<InsertContentTool>(); }

}  // namespace lai::agent
