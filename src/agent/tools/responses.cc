#include "agent/tools/responses.h"

#include <cstring>
#include <vector>

namespace lai::agent {

std::string ToolErrorText(std::string_view error) {
  std::string out = "The tool execution failed with the following error:\n<error>\n";
  out += error;
  out += "\n</error>";
  return out;
}

std::string MissingParameterText(std::string_view parameter) {
  std::string out = "Missing value for required parameter '";
  out += parameter;
  out += "'. Please retry with complete response.\n\n";
  out += kNativeToolUseReminder;
  return out;
}

std::string ForXmlToolUse(std::string text) {
  if (size_t at = text.find(kNativeToolUseReminder); at != std::string::npos) {
    text.replace(at, kNativeToolUseReminder.size(), kXmlToolUseReminder);
  }
  return text;
}

std::string BlockedPathText(std::string_view path) {
  std::string out = "Access to ";
  out += path;
  std::string_view name = path.substr(path.find_last_of('/') + 1);
  if (name == ".kilocodeignore" || name == ".rooignore") {  // The rules themselves.
    out +=
        " is blocked: it holds the rules that keep files out of your reach, and only the user "
        "changes it. Continue without changing it, or ask the user to.";
    return out;
  }
  out +=
      " is blocked by the .kilocodeignore file settings. You must try to continue in the task "
      "without using this file, or ask the user to update the .kilocodeignore file.";
  return out;
}

std::string_view ApprovalCancelledText() {
  return "The user cancelled the turn while this operation awaited approval; it was not run.";
}

std::string DeniedText(std::string_view feedback) {
  if (feedback.empty()) return "The user denied this operation.";
  std::string out =
      "The user denied this operation and provided the following feedback:\n<feedback>\n";
  out += feedback;
  out += "\n</feedback>";
  return out;
}

std::string ApprovedFeedbackText(std::string_view feedback) {
  if (feedback.empty()) return {};
  std::string out =
      "\n\nThe user approved this operation and provided the following context:\n<feedback>\n";
  out += feedback;
  out += "\n</feedback>";
  return out;
}

int DecimalWidth(int64_t number) {
  int width = 1;
  while (number >= 10) {
    number /= 10;
    ++width;
  }
  return width;
}

void AppendNumberedLines(std::string& out, std::string_view text, int64_t first_line, int width) {
  // One resize up front, then memcpy into place: a 1 MB file costs a few passes over memory.
  size_t line_count = 1;
  for (const char *p = text.data(), *end = p + text.size();
       (p = static_cast<const char*>(std::memchr(p, '\n', end - p))) != nullptr; ++p) {
    ++line_count;
  }
  int last_width = DecimalWidth(first_line + static_cast<int64_t>(line_count) - 1);
  if (last_width > width) width = last_width;
  size_t start = out.size();
  out.resize(start + text.size() + line_count * (static_cast<size_t>(width) + 4));
  char* write = out.data() + start;
  int64_t number = first_line;
  size_t position = 0;
  char digits[24];
  while (true) {
    size_t newline = text.find('\n', position);
    size_t line_end = newline == std::string_view::npos ? text.size() : newline;
    int length = 0;
    for (int64_t n = number; n > 0 || length == 0; n /= 10) digits[length++] = char('0' + n % 10);
    for (int pad = width - length; pad > 0; --pad) *write++ = ' ';
    while (length > 0) *write++ = digits[--length];
    std::memcpy(write, " | ", 3);
    write += 3;
    std::memcpy(write, text.data() + position, line_end - position);
    write += line_end - position;
    *write++ = '\n';
    ++number;
    if (newline == std::string_view::npos) break;
    position = newline + 1;
  }
  out.resize(static_cast<size_t>(write - out.data()));
}

std::string TruncateOutputLines(std::string_view text, int line_limit) {
  if (line_limit <= 0) return std::string(text);
  std::vector<size_t> line_starts{0};
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && i + 1 < text.size()) line_starts.push_back(i + 1);
  }
  size_t total = line_starts.size();
  if (total <= static_cast<size_t>(line_limit)) return std::string(text);
  size_t head = static_cast<size_t>(line_limit) / 5;
  size_t tail = static_cast<size_t>(line_limit) - head;
  std::string out(text.substr(0, line_starts[head]));
  out += "\n[..." + std::to_string(total - head - tail) + " lines omitted...]\n\n";
  out += text.substr(line_starts[total - tail]);
  return out;
}

}  // namespace lai::agent
