#include "agent/tools/tool_base.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "agent/tools/args.h"
#include "agent/tools/responses.h"
#ifdef LAI_HAS_WORKSPACE_UNIFIED_DIFF
#include "workspace/unified_diff.h"
#endif

namespace lai::agent {

Result<std::string> ReadFileBytes(const std::string& absolute_path) {
  int fd = ::open(absolute_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return Error(ErrorCode::kNotFound, "File not found: " + absolute_path);
    }
    return ErrnoError("open '" + absolute_path + "'", err);
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError("stat '" + absolute_path + "'", err);
  }
  if (S_ISDIR(info.st_mode)) {
    ::close(fd);
    return Error(ErrorCode::kInvalidArgument, "'" + absolute_path + "' is a directory");
  }
  std::string bytes;
  bytes.resize(static_cast<size_t>(info.st_size));
  size_t filled = 0;
  while (true) {
    if (filled == bytes.size()) bytes.resize(bytes.size() + 65536);  // Grown since fstat.
    ssize_t count = ::read(fd, bytes.data() + filled, bytes.size() - filled);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) {
      int err = errno;
      ::close(fd);
      return ErrnoError("read '" + absolute_path + "'", err);
    }
    if (count == 0) break;
    filled += static_cast<size_t>(count);
  }
  ::close(fd);
  bytes.resize(filled);
  return bytes;
}

namespace {

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t position = 0;
  while (position < text.size()) {
    size_t newline = text.find('\n', position);
    if (newline == std::string_view::npos) newline = text.size();
    lines.push_back(text.substr(position, newline - position));
    position = newline + 1;
  }
  return lines;
}

}  // namespace

std::string UnifiedDiff(std::string_view path, std::string_view before, std::string_view after) {
#ifdef LAI_HAS_WORKSPACE_UNIFIED_DIFF
  return workspace::UnifiedDiff(path, before, after);
#endif
  if (before == after) return {};
  std::vector<std::string_view> a = SplitLines(before);
  std::vector<std::string_view> b = SplitLines(after);
  size_t prefix = 0;
  while (prefix < a.size() && prefix < b.size() && a[prefix] == b[prefix]) ++prefix;
  size_t suffix = 0;
  while (suffix < a.size() - prefix && suffix < b.size() - prefix &&
         a[a.size() - 1 - suffix] == b[b.size() - 1 - suffix]) {
    ++suffix;
  }
  constexpr size_t kContext = 3;
  size_t start = prefix > kContext ? prefix - kContext : 0;
  size_t a_end = std::min(a.size(), a.size() - suffix + kContext);
  size_t b_end = std::min(b.size(), b.size() - suffix + kContext);
  std::string out = "--- a/" + std::string(path) + "\n+++ b/" + std::string(path) + "\n";
  size_t a_count = a_end - start;
  size_t b_count = b_end - start;
  out += "@@ -" + std::to_string(a_count == 0 ? start : start + 1) + "," + std::to_string(a_count) +
         " +" + std::to_string(b_count == 0 ? start : start + 1) + "," + std::to_string(b_count) +
         " @@\n";
  for (size_t i = start; i < prefix; ++i) out.append(" ").append(a[i]).append("\n");
  for (size_t i = prefix; i < a.size() - suffix; ++i) out.append("-").append(a[i]).append("\n");
  for (size_t i = prefix; i < b.size() - suffix; ++i) out.append("+").append(b[i]).append("\n");
  for (size_t i = a.size() - suffix; i < a_end; ++i) out.append(" ").append(a[i]).append("\n");
  return out;
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

Result<EditTarget> LoadEditTarget(const workspace::ResolvedPath& path) {
  EditTarget target{path, false, {}};
  Result<std::string> bytes = ReadFileBytes(path.absolute);
  if (!bytes.ok()) {
    if (bytes.error().code() == ErrorCode::kNotFound) return target;
    return Error(bytes.error().code(), ToolErrorText("Cannot edit '" + DisplayPath(path) +
                                                     "': " + bytes.error().message()));
  }
  if (workspace::LooksBinary(std::string_view(*bytes).substr(0, 8192))) {
    return Error(ErrorCode::kInvalidArgument, ToolErrorText("Cannot edit '" + DisplayPath(path) +
                                                            "': it appears to be a binary file."));
  }
  target.exists = true;
  target.file = workspace::DecodeText(*bytes);
  return target;
}

ToolResult CommitEdit(ToolContext& context, std::string_view tool, const EditTarget& target,
                      std::string_view new_text) {
  const std::string& display = DisplayPath(target.path);
  std::string detail = target.exists ? UnifiedDiff(display, target.file.text, new_text)
                                     : "New file " + display + ":\n" + std::string(new_text);
  ApprovalKind kind = ActionApprovalKind(context, target.path, ApprovalKind::kWrite);
  Result<ApprovalReply> reply = AskApproval(context, kind, tool, display, std::move(detail));
  if (!reply.ok()) return ErrorResult(reply.error());
  workspace::TextFile output = target.file;
  output.text = std::string(new_text);
  Status written =
      workspace::WriteFileAtomically(target.path.absolute, workspace::EncodeText(output));
  if (!written.ok()) {
    return {true,
            ToolErrorText("Error writing file '" + display + "': " + written.error().message())};
  }
  return {false, FileWriteResult(display, !target.exists, reply->feedback)};
}

}  // namespace lai::agent
