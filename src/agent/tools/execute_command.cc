// execute_command: run a shell command in the workspace (or a cwd), stream its output, and
// report its exit code and (head+tail truncated) output.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "agent/tools/args.h"
#include "agent/tools/factories.h"
#include "agent/tools/responses.h"
#include "agent/tools/tool_base.h"
#include "base/strings.h"
#include "workspace/process.h"
#include "workspace/text.h"

namespace lai::agent {
namespace {

constexpr std::string_view kDescription =
    "Execute a CLI command on the system through the user's shell, in the workspace directory "
    "unless cwd is given. Explain what the command does. Prefer non-interactive commands; the "
    "command gets no input. Returns the exit code and the output (long output keeps its first "
    "and last lines).";

constexpr std::string_view kSchema = R"json({
  "type": "object",
  "properties": {
    "command": {"type": "string", "description": "The shell command to execute"},
    "cwd": {"type": ["string", "null"], "description": "Working directory (default: the workspace root)"}
  },
  "required": ["command", "cwd"],
  "additionalProperties": false
})json";

constexpr size_t kOutputCharacterLimit = 50000;

std::string SignalName(int signal) {
  const char* name = sigabbrev_np(signal);
  return name != nullptr ? std::string("SIG") + name : "signal " + std::to_string(signal);
}

// Output as a terminal would leave it, for the model: colours and other escape sequences
// removed; after a carriage return (progress bars) the line is written over from its start, its
// tail kept as a terminal keeps it unless erased (ESC [ K); a backspace moves back; NUL separators
// (find -print0) as line ends.
std::string TerminalText(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  size_t line_start = 0;
  size_t cursor = 0;  // Where the next character goes: in the last line, at a character start.
  auto sequence_length = [](unsigned char lead) -> size_t {
    return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
  };
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    char next = i + 1 < raw.size() ? raw[i + 1] : '\0';
    if (c == '\x1b') {
      if (next == '[') {  // CSI: parameters, then a final byte in @..~.
        size_t parameters = i + 2;
        for (i += 2; i < raw.size() && (raw[i] < 0x40 || raw[i] > 0x7E); ++i) {
        }
        if (i < raw.size() && raw[i] == 'K') {  // Erase in line: to its end, or all of it.
          std::string_view which = raw.substr(parameters, i - parameters);
          if (which == "2") cursor = line_start;
          if (which.empty() || which == "0" || which == "2") out.resize(cursor);
        }
      } else if (next == ']' || next == 'P' || next == '_' || next == '^') {
        // OSC (titles, hyperlinks), DCS, APC, PM: to BEL or ESC backslash.
        for (i += 2; i < raw.size() && raw[i] != '\a'; ++i) {
          if (raw[i] == '\x1b' && i + 1 < raw.size() && raw[i + 1] == '\\') {
            ++i;
            break;
          }
        }
      } else if (next == '(' || next == ')') {
        i += 2;  // A character set.
      } else {
        ++i;
      }
    } else if (c == '\r') {
      cursor = line_start;
    } else if (c == '\n' || c == '\0') {
      out += '\n';
      line_start = cursor = out.size();
    } else if (c == '\b') {
      if (cursor == line_start) continue;
      size_t previous = cursor - 1;
      while (previous > line_start && (static_cast<unsigned char>(out[previous]) & 0xC0) == 0x80) {
        --previous;
      }
      cursor = previous;  // The next character writes over the one before.
    } else {
      // One character (a whole UTF-8 sequence) in place of the one under the cursor.
      size_t length = std::min(sequence_length(static_cast<unsigned char>(c)), raw.size() - i);
      size_t replaced = 0;
      if (cursor < out.size()) {
        replaced =
            std::min(sequence_length(static_cast<unsigned char>(out[cursor])), out.size() - cursor);
      }
      out.replace(cursor, replaced, raw.substr(i, length));
      cursor += length;
      i += length - 1;
    }
  }
  return out;
}

// Output as the model sees it (TerminalText): binary output summarised; beyond `line_limit` lines,
// the first fifth of them and the rest from the end; beyond `char_limit` characters (long lines), a
// fifth of those from the start and the rest from the end, cut at line ends where one is near. What
// is left out is said, in lines and characters.
std::string ModelOutput(const workspace::CommandOutcome& outcome, int line_limit,
                        size_t char_limit) {
  const std::string raw = TerminalText(outcome.output);
  if (workspace::LooksBinary(std::string_view(raw).substr(0, 8192))) {
    return "(binary output, " + std::to_string(outcome.output.size() + outcome.dropped_bytes) +
           " bytes, not shown)";
  }
  if (outcome.dropped_bytes == 0) {
    std::string text = TruncateOutputLines(raw, line_limit);
    // (A raw output within the limit is longer after the line cut only by the cut's note.)
    if (text.size() <= char_limit || raw.size() <= char_limit) return text;
  }
  // The runner kept the output's start and end only (its middle is counted in dropped_*), or the
  // kept lines are too long: cut here, around the runner's gap.
  std::string_view all = raw;
  size_t head = 0;
  size_t tail_begin = all.size();
  if (line_limit > 0) {
    size_t head_lines = static_cast<size_t>(line_limit) / 5;
    size_t tail_lines = static_cast<size_t>(line_limit) - head_lines;
    for (size_t n = 0; n < head_lines && head < all.size(); ++n) {
      size_t end = all.find('\n', head);
      head = end == std::string_view::npos ? all.size() : end + 1;
    }
    size_t from = all.size() - (!all.empty() && all.back() == '\n');
    for (size_t n = 0; n < tail_lines && from > 0; ++n) {
      size_t start = all.rfind('\n', from - 1);
      from = start == std::string_view::npos ? 0 : start;
    }
    tail_begin = from == 0 ? 0 : from + 1;
    if (tail_begin < head) tail_begin = head;
  }
  if (line_limit <= 0 || head + (all.size() - tail_begin) > char_limit) {
    head = char_limit / 5;
    tail_begin = all.size() - std::min(all.size(), char_limit - head);
    if (size_t end = all.rfind('\n', head - 1); end != std::string_view::npos && end >= head / 2) {
      head = end + 1;
    }
    if (size_t end = all.find('\n', tail_begin); tail_begin > 0 && all[tail_begin - 1] != '\n' &&
                                                 end != std::string_view::npos &&
                                                 end - tail_begin < (all.size() - tail_begin) / 2) {
      tail_begin = end + 1;
    }
    head = Utf8CutPosition(all, head);
    while (tail_begin < all.size() &&
           (static_cast<unsigned char>(all[tail_begin]) & 0xC0) == 0x80) {
      ++tail_begin;
    }
    if (tail_begin < head) tail_begin = head;
  }
  std::string_view omitted = all.substr(head, tail_begin - head);
  uint64_t lines = static_cast<uint64_t>(std::count(omitted.begin(), omitted.end(), '\n')) +
                   outcome.dropped_lines;
  std::string out(all.substr(0, head));
  if (!out.empty() && out.back() != '\n') out += '\n';
  std::string characters = std::to_string(omitted.size() + outcome.dropped_bytes) + " characters";
  out += lines == 0 ? "[..." + characters + " of one line omitted...]\n"
                    : "[..." + std::to_string(lines) + " lines (" + characters + ") omitted...]\n";
  out += all.substr(tail_begin);
  return out;
}

class ExecuteCommandTool final : public ToolBase {
 public:
  ExecuteCommandTool() : ToolBase("execute_command", kDescription, kSchema) {}

  ToolResult Run(std::string_view arguments_json, ToolContext& context) const override {
    Result<ToolArgs> args = ToolArgs::Parse(arguments_json);
    if (!args.ok()) return ErrorResult(args.error());
    Result<std::string> command = args->RequiredString("command");
    if (!command.ok()) return ErrorResult(command.error());
    Result<std::optional<std::string>> cwd_arg = args->OptionalString("cwd");
    if (!cwd_arg.ok()) return ErrorResult(cwd_arg.error());
    if (command->find_first_not_of(" \t\n") == std::string::npos) {
      return {true, MissingParameterText("command")};
    }
    ApprovalRequest request{ApprovalKind::kCommand, std::string(name()), *command, *command};
    std::string cwd = context.workspace.root();
    if (cwd_arg->has_value() && !(*cwd_arg)->empty()) {
      // A cwd outside the workspace is asked about with the command, in one question.
      Result<workspace::ResolvedPath> resolved =
          context.workspace.Resolve(**cwd_arg, /*allow_outside=*/true);
      if (!resolved.ok()) {
        return {true, ToolErrorText("Invalid working directory '" + **cwd_arg +
                                    "': " + resolved.error().message())};
      }
      if (context.workspace.IsBlocked(*resolved)) {
        return {true, ToolErrorText(BlockedPathText(**cwd_arg))};
      }
      if (resolved->is_outside) request.outside_paths.push_back(resolved->absolute);
      struct stat info {};
      if (::stat(resolved->absolute.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
        return {true, ToolErrorText("Working directory '" + **cwd_arg +
                                    "' does not exist or is not a directory.")};
      }
      cwd = resolved->absolute;
    }
    bool in_tree = false;
    if (std::optional<std::string> blocked =
            context.workspace.FindBlockedPathInCommand(*command, cwd, &in_tree)) {
      std::string text = BlockedPathText(*blocked);
      if (in_tree) {
        text += " The command searches a directory tree that holds it (grep -r, rg read every "
                "file below where they start): use search_files, which skips blocked files, or "
                "search only directories without them.";
      }
      return {true, ToolErrorText(text)};
    }
    request.outside_reads = context.workspace.CommandOutsidePaths(*command, cwd);
    // Files the command writes through redirections: never blocked ones; outside the workspace
    // or protected ones only with the user's leave, whatever the allowed-command list says.
    workspace::CommandWrites writes = workspace::CommandWriteTargets(*command, cwd);
    std::vector<std::string> unknown_targets;  // Only the shell (or the program) knows where.
    for (const std::string& unknown : writes.unknown) {
      // A mode limited to some files cannot vouch for files nobody can name beforehand.
      if (Status may = context.host.MayWrite(unknown); !may.ok()) {
        return {true, ToolErrorText(may.error().message())};
      }
      unknown_targets.push_back(unknown);
    }
    for (const std::string& target : writes.paths) {
      Result<workspace::ResolvedPath> written =
          context.workspace.Resolve(target, /*allow_outside=*/true);
      if (!written.ok()) continue;  // Not a path (the shell will say so).
      if (context.workspace.IsBlocked(*written)) {
        return {true, ToolErrorText(BlockedPathText(DisplayPath(*written)))};
      }
      if (Status may = context.host.MayWrite(context.workspace.FromRoot(*written)); !may.ok()) {
        return {true, ToolErrorText(may.error().message())};
      }
      std::vector<std::string>& list = written->is_outside ? request.outside_paths
                                       : context.workspace.IsWriteProtected(*written)
                                           ? request.protected_paths
                                           : request.written_paths;
      if (std::find(list.begin(), list.end(), DisplayPath(*written)) == list.end()) {
        list.push_back(DisplayPath(*written));
      }
    }
    auto name_paths = [&](std::string_view what, const std::vector<std::string>& paths) {
      if (paths.empty()) return;
      request.detail += "\n" + std::string(what);
      for (size_t i = 0; i < paths.size(); ++i) request.detail += (i ? ", " : " ") + paths[i];
    };
    name_paths("Outside the workspace:", request.outside_paths);
    name_paths("Reads outside the workspace:", request.outside_reads);
    name_paths("Writes protected files:", request.protected_paths);
    name_paths("Writes:", request.written_paths);
    name_paths("Writes files known only when it runs:", unknown_targets);
    // Asked about as a write outside would be: they may be anywhere.
    for (const std::string& unknown : unknown_targets) {
      request.outside_paths.push_back(unknown + " (not known until it runs)");
    }
    Result<ApprovalReply> reply = AskApproval(context, request);
    if (!reply.ok()) return ErrorResult(reply.error());

    workspace::CommandOptions options;
    options.cwd = cwd;
    options.timeout = std::chrono::seconds(std::max(0, context.settings.command_timeout_seconds));
    options.cancelled = context.cancelled;
    options.hidden_env = context.settings.hidden_env;
    options.on_output = [&context](std::string_view chunk) { context.host.OnOutput(chunk); };
    Result<workspace::CommandOutcome> outcome =
        context.commands != nullptr ? context.commands->Run(*command, options, context.call_id)
                                    : workspace::RunCommand(*command, options);
    if (!outcome.ok()) {
      return {true, ToolErrorText("Command could not be started in '" + cwd +
                                  "': " + outcome.error().message())};
    }
    std::string output =
        outcome->output_unknown.empty()
            ? ModelOutput(*outcome, context.settings.command_output_line_limit,
                          std::min(kOutputCharacterLimit, context.settings.room_bytes))
            : "(unavailable: " + outcome->output_unknown + ")";
    std::string head = "Command executed in terminal within working directory '" + cwd + "'. ";
    std::string text;
    bool is_error = false;
    if (outcome->timed_out) {
      text = head +
             "The command was terminated (with its whole process group) after exceeding "
             "the user-configured timeout of " +
             std::to_string(context.settings.command_timeout_seconds) +
             "s. Do not try to re-run the command unchanged; run it in the background or make it "
             "finish sooner.\nOutput:\n" +
             output;
      is_error = true;
    } else if (!outcome->exit_unknown.empty()) {
      text = head + "The command was started, but how it ended is unknown (" +
             outcome->exit_unknown +
             "). It may have run to completion: check its effects before running it again.\n"
             "Output:\n" +
             output;
      is_error = true;
    } else if (outcome->cancelled) {
      text = head + "The command was cancelled by the user before it finished.\nOutput:\n" + output;
      is_error = true;
    } else if (outcome->signal != 0) {
      text = head + "Process terminated by signal " + SignalName(outcome->signal) +
             ". Command execution was not successful, inspect the cause and adjust as needed.\n"
             "Output:\n" +
             output;
      is_error = true;  // As a timeout or a cancel: the command did not run to its end.
    } else if (outcome->exit_code != 0) {
      text = head +
             "Command execution was not successful, inspect the cause and adjust as needed.\n"
             "Exit code: " +
             std::to_string(outcome->exit_code) + "\nOutput:\n" + output;
    } else {
      text = head + "Exit code: 0\nOutput:\n" + output;
    }
    if (outcome->left_running) {
      text +=
          "\n(Something the command started in the background is still running; its later "
          "output is not shown. Redirect it to a file to read it.)";
    }
    return {is_error, text + ApprovedFeedbackText(reply->feedback)};
  }
};

}  // namespace

std::unique_ptr<Tool> MakeExecuteCommandTool() { return std::make_unique<ExecuteCommandTool>(); }

}  // namespace lai::agent
