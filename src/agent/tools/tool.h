// The tool interface: what the agent (and `lapce-ai tool run`) calls to act on a workspace.
// A Tool is stateless and thread-safe; one Run() call is confined to its caller's thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "workspace/process.h"
#include "workspace/workspace.h"

namespace lai::agent {

// Categories the user auto-approves (or not) one by one.
enum class ApprovalKind { kRead, kWrite, kDelete, kOutsideWorkspace, kProtected, kCommand };

struct ApprovalRequest {
  ApprovalKind kind;
  std::string tool;    // "write_to_file"
  std::string target;  // Path relative to the workspace (absolute when outside), or the command.
  std::string detail;  // What will happen (the command, the file to delete); empty for edits.
  // Edits: the whole text before (nullopt for a new file) and after, for hosts that show a diff
  // view (ACP `diff` content). Valid only during ToolHost::Ask.
  bool has_texts = false;
  std::optional<std::string_view> old_text;
  std::string_view new_text;
  // kCommand: where the command reaches beyond what its prefix lists decide: paths outside the
  // workspace it runs in or writes to (redirections), protected paths it writes to, and other
  // workspace files it writes. Each needs its own setting (write_outside_workspace,
  // write_protected, write) or the user's answer, even for a command the allowed list approves:
  // `git log --output=package.json` then `npm test` ran anything.
  std::vector<std::string> outside_paths;
  std::vector<std::string> protected_paths;
  std::vector<std::string> written_paths;
  // kCommand: existing paths outside the workspace its words name, which it may read (`cat
  // ~/.ssh/id_rsa`): read_outside's, as for read_file.
  std::vector<std::string> outside_reads;
};

// What a host that shows text puts before the user: the detail, or for an edit a unified diff of
// the two texts (a new file's whole content).
std::string ApprovalText(const ApprovalRequest& request);

struct ApprovalReply {
  bool approved = false;
  std::string feedback;  // Optional words from the user; reaches the model with the result.
  bool cancelled = false;  // Not approved because the turn was cancelled: nobody said no.
  // Not approved, and not by the user's answer (a mode the user switched to meanwhile forbids
  // it): the reason, said to the model as it is.
  std::string refusal;
};

// What a tool may ask of whoever runs it (a session, or the CLI). Must outlive the Run() call.
class ToolHost {
 public:
  virtual ~ToolHost() = default;
  // Blocks until the user answers. A session answers at once when the kind is auto-approved.
  virtual ApprovalReply Ask(const ApprovalRequest& request) = 0;
  // Output of a running command as it arrives (any thread the tool chooses, one at a time).
  virtual void OnOutput(std::string_view chunk) { (void)chunk; }
  // Whether a file a command writes (`relative_path` from the workspace root, "../…" outside)
  // is one the session's mode may edit; the refusal is worded for the model. Default: any.
  virtual Status MayWrite(std::string_view relative_path) {
    (void)relative_path;
    return OkStatus();
  }
};

// Every knob is also a config key under [tools] (see base/config.h).
struct ToolSettings {
  int read_line_limit = 500;            // read_file: lines per file; -1 = whole file.
  size_t read_byte_limit = 262144;      // read_file: content bytes per call, then a notice.
  double diff_fuzzy_threshold = 1.0;    // apply_diff: 1.0 = exact match only.
  int diff_buffer_lines = 40;           // apply_diff: search window around a :start_line: hint.
  int list_files_limit = 200;           // list_files: entries before the truncation notice.
  int search_max_results = 300;         // search_files: matches before the truncation notice.
  int command_timeout_seconds = 0;      // execute_command: 0 = no timeout.
  int command_output_line_limit = 500;  // execute_command: head+tail kept beyond this.
  // Bytes of a tool's result that fit the room left in the model's window (set for each call;
  // SIZE_MAX: not known). Command output is cut to it too. Not a config key.
  size_t room_bytes = SIZE_MAX;
  // execute_command: variables a command does not inherit: those the provider keys came from
  // (a command the model writes could otherwise print or send them). Not a config key.
  std::vector<std::string> hidden_env;
};

// The editor's view of files (ACP fs/*): reads see unsaved buffers, writes land in them.
// Paths are absolute. Called from the tool's thread.
class FileAccess {
 public:
  virtual ~FileAccess() = default;
  virtual Result<std::string> ReadTextFile(const std::string& absolute_path) = 0;
  virtual Status WriteTextFile(const std::string& absolute_path, std::string_view content) = 0;
};

// The editor's terminal (ACP terminal/*): commands run where the user watches them. Same contract
// as workspace::RunCommand. Called from the tool's thread.
class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  virtual Result<workspace::CommandOutcome> Run(std::string_view command,
                                                const workspace::CommandOptions& options,
                                                std::string_view call_id) = 0;
};

struct ToolContext {
  const workspace::Workspace& workspace;
  const ToolSettings& settings;
  ToolHost& host;
  // Set by another thread to stop a running tool (a command is killed, its group too).
  const std::atomic<bool>* cancelled = nullptr;
  // Reads and writes of existing files go through the editor when set; nullptr = local files.
  FileAccess* files = nullptr;
  // Commands run in the editor's terminal when set; nullptr = a local child process.
  CommandRunner* commands = nullptr;
  std::string_view call_id;  // The id the client knows this call by (ACP toolCallId); may be "".
};

struct ToolResult {
  bool is_error = false;
  std::string text;  // Exactly what the model receives.
};

class Tool {
 public:
  virtual ~Tool() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view description() const = 0;
  // JSON Schema (draft 2020-12 subset) of the arguments object, for native tool calling.
  virtual std::string_view parameters_schema() const = 0;
  // `arguments_json` comes from a model: anything may be wrong with it. Validation failures
  // return is_error with a message the model can act on (which parameter, what was expected).
  virtual ToolResult Run(std::string_view arguments_json, ToolContext& context) const = 0;
};

// Every workspace tool, in a stable order (read_file, write_to_file, apply_diff, insert_content,
// search_and_replace, delete_file, list_files, search_files, execute_command).
const std::vector<std::unique_ptr<Tool>>& WorkspaceTools();
// nullptr when there is no such tool.
const Tool* FindWorkspaceTool(std::string_view name);

}  // namespace lai::agent
