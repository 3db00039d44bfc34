// MCP servers over stdio (MCP 2025-11-25, accepting servers down to 2024-11-05): each server is a
// child process speaking newline-delimited JSON-RPC on its stdin and stdout. McpHub starts a
// session's servers in the background (initialize, tools/list, resources/list) and serves
// agent::McpServers: the servers' listings, tools/call and resources/read. Thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/mcp.h"
#include "base/result.h"

namespace lai::server {

struct McpServerConfig {
  std::string name;
  std::string command;
  std::vector<std::string> args;
  // "NAME=value". A server sees these and, of the engine's environment, only HOME, LOGNAME, PATH,
  // SHELL, TERM, USER and LANG (unless set here: these win): never the provider keys. A command
  // without '/' is looked up on the PATH set here, if any.
  std::vector<std::string> env;
  std::string cwd;                          // "" = the session's workspace.
  std::vector<std::string> disabled_tools;  // Not offered to the model (Kilo's disabledTools).
  std::vector<std::string> always_allow;    // Run without asking (Kilo's alwaysAllow).
  std::chrono::milliseconds call_timeout{0};  // One call's limit; 0 = McpOptions::call_timeout.
};

// ACP's `mcpServers` (session/new, session/load): stdio entries
// {"name", "command", "args": [...], "env": [{"name", "value"}]}. Errors (kInvalidArgument) name
// the entry and the field; http and sse entries are refused, as the agent advertises neither.
Result<std::vector<McpServerConfig>> ParseAcpMcpServers(std::string_view json_array);

// An MCP settings file in Kilo Code's shape (its mcp_settings.json, or .kilocode/mcp.json):
// {"mcpServers": {"<name>": {"command", "args": [...], "env": {"NAME": "value"}, "cwd",
// "disabled", "disabledTools": [...], "alwaysAllow": [...], "timeout": seconds}}}. In command,
// args, env values and cwd, ${env:NAME} is the engine's variable NAME ("" when unset) and
// ${workspaceFolder} the session's workspace, as Kilo Code reads them (when the server starts).
// Disabled servers are skipped; remote ones
// ("type" other than "stdio") are left out with a warning. A missing file is no servers. Errors
// (kInvalidArgument) name the file and the field.
Result<std::vector<McpServerConfig>> LoadMcpSettings(const std::string& path);

struct McpOptions {
  std::string cwd;  // The servers' working directory (the session's workspace); "" = inherit.
  std::chrono::milliseconds start_timeout{15'000};  // Spawn to tools listed.
  std::chrono::milliseconds call_timeout{120'000};  // One tools/call or resources/read.
  size_t max_result_bytes = 256 * 1024;             // Longer answers are cut, with a notice.
  std::string client_version;                       // clientInfo.version in `initialize`.
};

class McpHub final : public agent::McpServers {
 public:
  // Starts every server on its own thread and returns at once. A server that fails to start is
  // logged (with the end of its stderr) and left out of Servers().
  static std::shared_ptr<McpHub> Start(std::vector<McpServerConfig> configs, McpOptions options);
  ~McpHub() override;  // Stops the servers: stdin closed, then SIGTERM, then SIGKILL.

  std::vector<agent::McpServerInfo> Servers() const override;
  bool IsReady() const override;
  Result<agent::McpOutcome> CallTool(std::string_view server, std::string_view tool,
                                     std::string_view arguments_json,
                                     const std::atomic<bool>* cancelled) override;
  Result<agent::McpOutcome> ReadResource(std::string_view server, std::string_view uri,
                                         const std::atomic<bool>* cancelled) override;

  std::vector<std::string> Failures() const override;

 private:
  struct Connection;
  McpHub() = default;
  // The named server once started, when it is connected; kNotFound, or kUnavailable saying why
  // it is not.
  Result<Connection*> Connected(std::string_view name) const;
  McpOptions options_;
  std::vector<std::unique_ptr<Connection>> connections_;
};

// Several sets of servers as one, in priority order: a server name a part already offers hides
// the same name in later parts, and calls go to the part that offers the server. (A session's own
// servers first, then the user's servers that all sessions of a connection share.)
std::shared_ptr<agent::McpServers> CombineMcpServers(
    std::vector<std::shared_ptr<agent::McpServers>> parts);

}  // namespace lai::server
