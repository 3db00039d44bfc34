// read_file: up to five files, whole or by line ranges, numbered "N | line".
#include <cstring>
#include <string>
#include <vector>

#include "agent/tools/args.h"
#include "agent/tools/factories.h"
#include "agent/tools/responses.h"
#include "agent/tools/tool_base.h"
#include "base/strings.h"
#include "workspace/text.h"

namespace lai::agent {
namespace {

constexpr size_t kMaxFiles = 5;

constexpr std::string_view kDescription =
    "Read one or more files and return their contents with line numbers (\"N | line\") for "
    "diffing and discussion. Up to 5 files per call; request related files together. Use "
    "line_ranges to read parts of large files. Long files are cut at the configured line limit, "
    "and what one call returns at a size that fits the context, with a notice. Binary files are "
    "not shown.";

constexpr std::string_view kSchema = R"json({
  "type": "object",
  "properties": {
    "files": {
      "type": "array",
      "description": "Files to read (at most 5)",
      "minItems": 1,
      "items": {
        "type": "object",
        "properties": {
          "path": {"type": "string", "description": "Path relative to the workspace"},
          "line_ranges": {
            "type": ["array", "null"],
            "description": "Optional 1-based inclusive ranges like \"1-50\"",
            "items": {"type": "string", "pattern": "^[0-9]+-[0-9]+$"}
          }
        },
        "required": ["path", "line_ranges"],
        "additionalProperties": false
      }
    }
  },
  "required": ["files"],
  "additionalProperties": false
})json";

struct FileRequest {
  std::string path;
  std::vector<ToolArgs::LineRange> ranges;
};

void AppendFileError(std::string& out, std::string_view path, std::string_view tag,
                     std::string_view message) {
  out += "<file><path>";
  out += path;
  out += "</path><";
  out += tag;
  out += ">";
  out += message;
  out += "</";
  out += tag;
  out += "></file>\n";
}

// The number of lines of `text` (a last line without a newline counts; a final newline does not
// start another).
size_t CountLines(std::string_view text) {
  size_t lines = 1;
  for (const char *at = text.data(), *end = text.data() + text.size();;) {
    const void* newline = std::memchr(at, '\n', static_cast<size_t>(end - at));
    if (newline == nullptr) break;
    at = static_cast<const char*>(newline) + 1;
    if (at == end) break;
    ++lines;
  }
  return lines;
}

// Where lines [first, last + 1] (1-based) start, as far as `text` has them: memory for the
// lines asked for only (a 200 MB file of short lines cost 1 GB for all of its offsets).
class LineWindow {
 public:
  LineWindow(std::string_view text, size_t first, size_t last) : text_(text), first_(first) {
    size_t line = 1;
    size_t at = 0;
    while (line <= last + 1) {
      if (line >= first) starts_.push_back(at);
      const void* newline = std::memchr(text.data() + at, '\n', text.size() - at);
      if (newline == nullptr) break;
      at = static_cast<size_t>(static_cast<const char*>(newline) - text.data()) + 1;
      if (at >= text.size()) break;
      ++line;
    }
  }
  // Line k's bytes with its newline; k in [first, last].
  size_t Begin(size_t k) const { return starts_[k - first_]; }
  size_t End(size_t k) const {
    return k - first_ + 1 < starts_.size() ? starts_[k - first_ + 1] : text_.size();
  }
  // Lines [from, to] without the final newline.
  std::string_view Lines(size_t from, size_t to) const {
    size_t begin = Begin(from);
    size_t end = End(to);
    if (end > begin && text_[end - 1] == '\n') --end;
    return text_.substr(begin, end - begin);
  }

 private:
  std::string_view text_;
  size_t first_;
  std::vector<size_t> starts_;
};

// Appends lines [first, last] (1-based) as a <content> block, as many whole lines as fit in
// `budget` bytes of output, their "N | " numbers included (it lowers the budget by what it used);
// a first line larger than the budget is cut at it. When not everything fits, a notice says
// what was shown and how to read the rest, and it returns false.
// `total`: the file's lines, when no range was asked for (the notice counts them, not a
// range's); 0 otherwise.
bool AppendContent(std::string& out, std::string_view text, size_t first, size_t last,
                   size_t& budget, size_t total = 0) {
  // Each numbered line costs its bytes, its number padded to the widest, " | " and a newline.
  size_t overhead = std::to_string(last).size() + 4;
  if (budget <= overhead) {
    budget = 0;
    out += "<notice>Lines " + std::to_string(first) + "-" + std::to_string(last) +
           " not shown: this call already returned as much as fits the model's context. Read "
           "them in a call of their own.</notice>\n";
    return false;
  }
  const LineWindow window(text, first, last);
  size_t used = 0;
  size_t shown_last = first - 1;
  for (size_t k = first; k <= last; ++k) {
    size_t cost = window.End(k) - window.Begin(k) + overhead;
    if (used + cost > budget) break;
    used += cost;
    shown_last = k;
  }
  std::string_view lines;
  bool is_line_cut = false;
  if (shown_last >= first) {
    lines = window.Lines(first, shown_last);
  } else {  // One line longer than the budget: its first bytes, at a character boundary.
    shown_last = first;
    lines = window.Lines(first, first);
    const size_t cut = Utf8CutPosition(lines, budget - overhead);
    lines = lines.substr(0, cut);
    used = cut + overhead;
    is_line_cut = true;
  }
  budget -= std::min(budget, used);
  out += "<content lines=\"" + std::to_string(first) + "-" + std::to_string(shown_last) + "\">\n";
  AppendNumberedLines(out, lines, static_cast<int64_t>(first), 1);
  out += "</content>\n";
  if (is_line_cut) {
    out += "<notice>Line " + std::to_string(first) + " is " +
           std::to_string(window.Lines(first, first).size()) + " bytes long; only its first " +
           std::to_string(lines.size()) +
           " are shown, to keep the conversation within the model's context. Use search_files "
           "or a command (e.g. head -c, cut) to find what you need in it.</notice>\n";
  } else if (shown_last < last) {
    std::string of =
        total != 0 ? std::to_string(total) + " total lines"
                   : "the " + std::to_string(first) + "-" + std::to_string(last) + " requested";
    out += "<notice>Showing lines " + std::to_string(first) + "-" + std::to_string(shown_last) +
           " of " + of +
           ", to keep the conversation within the model's context. Use line_ranges to read the "
           "rest in parts, or search_files to find what you need.</notice>\n";
  }
  return !is_line_cut && shown_last == last;
}

// Returns false when the file could not be read (the error is already in `out`).
// `budget`: bytes of numbered content this call may still return (ToolSettings::read_byte_limit).
bool ReadOne(ToolContext& context, const FileRequest& request, std::string& out, size_t& budget) {
  Result<workspace::ResolvedPath> resolved =
      context.workspace.Resolve(request.path, /*allow_outside=*/true);
  if (!resolved.ok()) {
    AppendFileError(out, request.path, "error",
                    "Error reading file: " + resolved.error().message());
    return false;
  }
  if (context.workspace.IsBlocked(*resolved)) {
    AppendFileError(out, request.path, "error", BlockedPathText(request.path));
    return false;
  }
  ApprovalKind kind = resolved->is_outside ? ApprovalKind::kOutsideWorkspace : ApprovalKind::kRead;
  ApprovalReply reply =
      context.host.Ask({kind, "read_file", DisplayPath(*resolved), "Read " + resolved->absolute});
  if (!reply.approved) {
    AppendFileError(out, request.path, "status",
                    reply.cancelled          ? std::string(ApprovalCancelledText())
                    : !reply.refusal.empty() ? reply.refusal
                    : reply.feedback.empty() ? "Denied by user"
                                             : "Denied by user. Feedback: " + reply.feedback);
    return false;
  }
  Result<std::string> bytes = ReadFileBytes(context, resolved->absolute);
  if (!bytes.ok()) {
    std::string message = bytes.error().code() == ErrorCode::kNotFound
                              ? "File not found: " + request.path
                              : bytes.error().message();
    AppendFileError(out, request.path, "error", "Error reading file: " + message);
    return false;
  }
  std::string_view prefix(*bytes);
  if (workspace::LooksBinary(prefix.substr(0, 8192))) {
    out += "<file><path>" + request.path + "</path>\n<notice>Binary file (" +
           std::to_string(bytes->size()) +
           " bytes): content not shown. Use a command-line tool suited to the format to inspect "
           "it.</notice>\n</file>\n";
    return true;
  }
  // Most files are UTF-8 with neither CR nor a BOM: number the bytes as read, without a
  // decoded copy.
  workspace::TextFile file;
  std::string_view text = *bytes;
  if (text.starts_with("\xEF\xBB\xBF") || std::memchr(text.data(), '\r', text.size()) != nullptr ||
      !workspace::IsUtf8(text)) {
    file = workspace::DecodeText(*bytes);
    text = file.text;
  }
  out += "<file><path>" + request.path + "</path>\n";
  if (file.is_windows_1252) {
    out +=
        "<notice>This file is not UTF-8: it was read as Windows-1252 (Latin-1), and edits keep "
        "that encoding.</notice>\n";
  }
  if (text.empty()) {
    out += "<content/><notice>File is empty</notice>\n</file>\n";
    return true;
  }
  const size_t total = CountLines(text);
  if (!request.ranges.empty()) {
    for (const ToolArgs::LineRange& range : request.ranges) {
      if (static_cast<size_t>(range.start) > total) {
        out += "<error>Line range " + std::to_string(range.start) + "-" +
               std::to_string(range.end) + " is past the end of the file (it has " +
               std::to_string(total) + " lines).</error>\n";
        continue;
      }
      size_t last = std::min(static_cast<size_t>(range.end), total);
      AppendContent(out, text, static_cast<size_t>(range.start), last, budget);
    }
  } else {
    int limit = context.settings.read_line_limit;
    if (limit >= 0 && total > static_cast<size_t>(limit)) {
      // One notice: the budget's, when it cut the first lines shorter still.
      if (limit == 0 || AppendContent(out, text, 1, static_cast<size_t>(limit), budget, total)) {
        out += "<notice>Showing only " + std::to_string(limit) + " of " + std::to_string(total) +
               " total lines. Use line_ranges if you need to read more lines</notice>\n";
      }
    } else {
      AppendContent(out, text, 1, total, budget, total);
    }
  }
  out += "</file>\n";
  return true;
}

class ReadFileTool final : public ToolBase {
 public:
  ReadFileTool() : ToolBase("read_file", kDescription, kSchema) {}

  ToolResult Run(std::string_view arguments_json, ToolContext& context) const override {
    Result<ToolArgs> args = ToolArgs::Parse(arguments_json);
    if (!args.ok()) return ErrorResult(args.error());
    std::vector<FileRequest> requests;
    if (args->Has("files") || !args->Has("path")) {
      Result<std::vector<ToolArgs>> files = args->ObjectArray("files");
      if (!files.ok()) return ErrorResult(files.error());
      if (files->empty()) return {true, MissingParameterText("files")};
      for (const ToolArgs& file : *files) {
        Result<std::string> path = file.RequiredString("path");
        if (!path.ok()) return ErrorResult(path.error());
        Result<std::vector<ToolArgs::LineRange>> ranges = file.LineRanges("line_ranges");
        if (!ranges.ok()) return ErrorResult(ranges.error());
        requests.push_back({std::move(*path), std::move(*ranges)});
      }
    } else {
      // The legacy form: path with optional start_line/end_line.
      Result<std::string> path = args->RequiredString("path");
      if (!path.ok()) return ErrorResult(path.error());
      Result<std::optional<int64_t>> start = args->OptionalInteger("start_line");
      if (!start.ok()) return ErrorResult(start.error());
      Result<std::optional<int64_t>> end = args->OptionalInteger("end_line");
      if (!end.ok()) return ErrorResult(end.error());
      FileRequest request{std::move(*path), {}};
      if (start->has_value() || end->has_value()) {
        int64_t first = start->value_or(1);
        int64_t last = end->value_or(INT32_MAX);
        if (first < 1 || last < first) {
          return {true, ToolErrorText("Invalid line range " + std::to_string(first) + "-" +
                                      std::to_string(last) +
                                      ": lines are 1-based and end_line must not be before "
                                      "start_line.")};
        }
        request.ranges.push_back({first, last});
      }
      requests.push_back(std::move(request));
    }
    if (requests.size() > kMaxFiles) {
      return {true, ToolErrorText("Too many files requested: " + std::to_string(requests.size()) +
                                  ". You can read at most " + std::to_string(kMaxFiles) +
                                  " files at a time; split the request into several calls.")};
    }
    std::string out = "<files>\n";
    size_t failures = 0;
    size_t budget = context.settings.read_byte_limit;
    for (const FileRequest& request : requests) {
      if (!ReadOne(context, request, out, budget)) ++failures;
    }
    out += "</files>";
    return {failures == requests.size(), std::move(out)};
  }
};

}  // namespace

std::unique_ptr<Tool> MakeReadFileTool() { return std::make_unique<ReadFileTool>(); }

}  // namespace lai::agent
