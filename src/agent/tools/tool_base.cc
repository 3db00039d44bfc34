#include "agent/tools/tool_base.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>

#include "agent/tools/args.h"
#include "agent/tools/responses.h"
#include "workspace/unified_diff.h"

namespace lai::agent {

Result<std::string> ReadFileBytes(const std::string& absolute_path) {
  Result<std::string> bytes = workspace::ReadFileBytes(absolute_path, kMaxFileBytes);
  if (bytes.ok()) return bytes;
  if (bytes.error().code() == ErrorCode::kNotFound) {
    return Error(ErrorCode::kNotFound, "File not found: " + absolute_path);
  }
  if (bytes.error().code() == ErrorCode::kResourceExhausted) {
    return Error(ErrorCode::kResourceExhausted,
                 bytes.error().message() +
                     "; use search_files, or a command such as grep, head, tail or sed -n, to "
                     "read the parts you need");
  }
  return bytes;
}

std::string FileWriteResult(std::string_view path, bool is_new_file, std::string_view feedback) {
  std::string out = "<file_write_result>\n<path>";
  out += path;
  out += "</path>\n<operation>";
  out += is_new_file ? "created" : "modified";
  out +=
      "</operation>\n<notice>\n<i>You do not need to re-read the file, as you have seen all "
      "changes</i>\n<i>Proceed with the task using these changes as the new baseline.</i>\n"
      "</notice>\n</file_write_result>";
  out += ApprovedFeedbackText(feedback);
  return out;
}

Result<std::string> ReadFileBytes(const ToolContext& context, const std::string& absolute_path) {
  Result<std::string> local = ReadFileBytes(absolute_path);
  // The editor only knows files that exist; a missing or unreadable one fails the same either way.
  if (context.files == nullptr || !local.ok()) return local;
  return context.files->ReadTextFile(absolute_path);
}

Status WriteFileBytes(const ToolContext& context, const std::string& absolute_path,
                      const std::string& bytes) {
  if (context.files != nullptr) return context.files->WriteTextFile(absolute_path, bytes);
  return workspace::WriteFileAtomically(absolute_path, bytes);
}

Result<EditTarget> LoadEditTarget(const ToolContext& context, const workspace::ResolvedPath& path) {
  EditTarget target{path, false, {}};
  Result<std::string> bytes = ReadFileBytes(context, path.absolute);
  if (!bytes.ok()) {
    if (bytes.error().code() == ErrorCode::kNotFound) return target;
    return Error(bytes.error().code(), ToolErrorText("Cannot edit '" + DisplayPath(path) +
                                                     "': " + bytes.error().message()));
  }
  if (workspace::LooksBinary(std::string_view(*bytes).substr(0, 8192))) {
    return Error(ErrorCode::kInvalidArgument, ToolErrorText("Cannot edit '" + DisplayPath(path) +
                                                            "': it appears to be a binary file."));
  }
  // A file that will not be written is said before the user is asked about the edit (they were
  // asked, said yes, and were then told).
  if (context.files == nullptr) {
    if (Status writable = workspace::CheckWritable(path.absolute); !writable.ok()) {
      return Error(writable.code(), ToolErrorText("Cannot edit '" + DisplayPath(path) +
                                                  "': " + writable.error().message()));
    }
  }
  target.exists = true;
  target.file = workspace::DecodeText(*bytes);
  return target;
}

Result<EditTarget> ResolveEditTarget(ToolContext& context, std::string_view tool,
                                     std::string_view raw_path) {
  if (raw_path.ends_with('/')) {  // Else "dir/" would be written as a file named "dir".
    return Error(ErrorCode::kInvalidArgument,
                 "'" + std::string(raw_path) +
                     "' names a directory; give the path of a file in it (e.g. '" +
                     std::string(raw_path) + "name.ext')");
  }
  ASSIGN_OR_RETURN(workspace::ResolvedPath resolved,
                   ResolveToolPath(context, tool, raw_path, PathUse::kWrite));
  return LoadEditTarget(context, resolved);
}

size_t AdvanceLines(std::string_view text, size_t offset, int64_t lines) {
  for (int64_t n = 0; n < lines && offset < text.size(); ++n) {
    size_t newline = text.find('\n', offset);
    offset = newline == std::string_view::npos ? text.size() : newline + 1;
  }
  return offset;
}

std::string ApprovalText(const ApprovalRequest& request) {
  if (!request.has_texts) return request.detail;
  if (!request.old_text)
    return "New file " + request.target + ":\n" + std::string(request.new_text);
  return workspace::UnifiedDiff(request.target, *request.old_text, request.new_text);
}

std::optional<ToolResult> ApproveAndWrite(ToolContext& context, std::string_view tool,
                                          const EditTarget& target, std::string_view new_text,
                                          std::string* feedback) {
  const std::string& display = DisplayPath(target.path);
  if (std::optional<size_t> at = workspace::FirstUnencodable(new_text, target.file)) {
    size_t end = *at + 1;
    while (end < new_text.size() && (static_cast<unsigned char>(new_text[end]) & 0xC0) == 0x80) {
      ++end;
    }
    int64_t line = std::count(new_text.begin(), new_text.begin() + *at, '\n') + 1;
    return ToolResult{
        true, ToolErrorText("'" + display +
                            "' is in Windows-1252 (Latin-1), not UTF-8, and the new text has a "
                            "character it cannot hold ('" +
                            std::string(new_text.substr(*at, end - *at)) + "' on line " +
                            std::to_string(line) +
                            "). Nothing was written. Use characters the file's encoding has "
                            "(or plain ASCII), or ask the user to convert the file to UTF-8.")};
  }
  ApprovalKind kind = ActionApprovalKind(context, target.path, ApprovalKind::kWrite);
  // No detail: hosts that show text build it from the two texts (ApprovalText).
  ApprovalRequest request{kind, std::string(tool), display, {}};
  request.has_texts = true;
  if (target.exists) request.old_text = target.file.text;
  request.new_text = new_text;
  Result<ApprovalReply> reply = AskApproval(context, request);
  if (!reply.ok()) return ErrorResult(reply.error());
  // The user (or a formatter, a build, another session) may have changed the file since it was
  // read for this edit: writing now would silently undo that. The model redoes the edit on what
  // is there. Sessions check and write one at a time (DirectoryWriteLock).
  workspace::DirectoryWriteLock lock(target.path.absolute);
  Result<EditTarget> now = LoadEditTarget(context, target.path);
  if (!now.ok() || now->exists != target.exists || now->file.text != target.file.text) {
    return ToolResult{true, ToolErrorText("'" + display +
                                          "' changed after it was read for this edit (by the "
                                          "user, another task or a program), so it was not "
                                          "written (that would undo the change). Read the file "
                                          "again and redo the edit on its current content.")};
  }
  Status written =
      WriteFileBytes(context, target.path.absolute, workspace::EncodeText(new_text, target.file));
  if (!written.ok()) {
    return ToolResult{
        true, ToolErrorText("Error writing file '" + display + "': " + written.error().message())};
  }
  *feedback = std::move(reply->feedback);
  return std::nullopt;
}

ToolResult CommitEdit(ToolContext& context, std::string_view tool, const EditTarget& target,
                      std::string_view new_text) {
  std::string feedback;
  if (std::optional<ToolResult> failed =
          ApproveAndWrite(context, tool, target, new_text, &feedback)) {
    return *std::move(failed);
  }
  return {false, FileWriteResult(DisplayPath(target.path), !target.exists, feedback)};
}

}  // namespace lai::agent
