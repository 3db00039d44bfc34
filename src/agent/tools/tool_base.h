// ToolBase: the name, description and schema every tool carries as constants, and the file
// helpers the editing tools share. Internal to agent/tools; thread-safe (immutable).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "agent/tools/tool.h"
#include "base/result.h"
#include "workspace/text.h"
#include "workspace/workspace.h"

namespace lai::agent {

class ToolBase : public Tool {
 public:
  // The views must point at static storage.
  ToolBase(std::string_view name, std::string_view description, std::string_view schema)
      : name_(name), description_(description), schema_(schema) {}
  std::string_view name() const override { return name_; }
  std::string_view description() const override { return description_; }
  std::string_view parameters_schema() const override { return schema_; }

 private:
  std::string_view name_;
  std::string_view description_;
  std::string_view schema_;
};

// The largest file the tools read or edit (they hold it whole).
inline constexpr size_t kMaxFileBytes = size_t{256} << 20;
// Whole file as bytes (workspace::ReadFileBytes: a FIFO or device is refused, never waited on).
// Errors: kNotFound, kInvalidArgument (a directory, not a regular file), kResourceExhausted
// (over kMaxFileBytes), kIo.
Result<std::string> ReadFileBytes(const std::string& absolute_path);
// The same through the editor (context.files) when it has one: an existing file's text as the
// editor holds it, unsaved changes included.
Result<std::string> ReadFileBytes(const ToolContext& context, const std::string& absolute_path);
// Writes a file atomically, or through the editor when it has one.
Status WriteFileBytes(const ToolContext& context, const std::string& absolute_path,
                      const std::string& bytes);

// The <file_write_result> text the editing tools return.
std::string FileWriteResult(std::string_view path, bool is_new_file, std::string_view feedback);

// A file an editing tool is about to change: its decoded text, or none when it does not exist.
struct EditTarget {
  workspace::ResolvedPath path;
  bool exists = false;
  workspace::TextFile file;  // LF text; line ending and BOM to restore.
};

// Reads the target. Errors (message = the model's text): a directory, a binary file, I/O.
Result<EditTarget> LoadEditTarget(const ToolContext& context, const workspace::ResolvedPath& path);
// ResolveToolPath(…, PathUse::kWrite) then LoadEditTarget: the errors of either.
Result<EditTarget> ResolveEditTarget(ToolContext& context, std::string_view tool,
                                     std::string_view raw_path);

// The byte offset `lines` lines after `offset` in a '\n' text (the end of the text at the most;
// `offset` itself when lines <= 0).
size_t AdvanceLines(std::string_view text, size_t offset, int64_t lines);

// Asks approval to change the target to `new_text` (kWrite, or kProtected for protected paths;
// the request carries both texts), then writes it with the target's line ending and BOM.
// nullopt when written, with the user's words in *feedback; else the denial or failure result.
std::optional<ToolResult> ApproveAndWrite(ToolContext& context, std::string_view tool,
                                          const EditTarget& target, std::string_view new_text,
                                          std::string* feedback);

// ApproveAndWrite, then the <file_write_result> text.
ToolResult CommitEdit(ToolContext& context, std::string_view tool, const EditTarget& target,
                      std::string_view new_text);

}  // namespace lai::agent
