// MCP servers as a session sees them: what each connected server offers (tools, resources,
// instructions) and the two calls the model makes through use_mcp_tool and access_mcp_resource.
// The connections themselves live in the server layer (server/mcp_client.h); sessions get them
// through this interface. Implementations are thread-safe.
#pragma once

#include <atomic>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace lai::agent {

struct McpTool {
  std::string name;
  std::string description;
  std::string input_schema;  // JSON Schema text ("{}" when the server gave none).
  bool always_allow = false;  // The user's configuration runs it without asking.
};

struct McpResource {
  std::string uri;
  std::string name;
  std::string description;
  std::string mime_type;
};

struct McpServerInfo {
  std::string name;
  std::string command;       // How it was started ("npx -y server-x"), for the prompt.
  std::string instructions;  // The server's own instructions from `initialize`; may be "".
  std::vector<McpTool> tools;
  std::vector<McpResource> resources;
};

// A tool's or resource's answer as the model receives it: text parts joined, other parts named.
struct McpOutcome {
  bool is_error = false;  // The server said the call failed (tools/call isError).
  std::string text;
};

class McpServers {
 public:
  virtual ~McpServers() = default;
  // The connected servers, in configuration order. Waits for servers still starting (bounded
  // by their start-up timeout); one that failed to start is left out.
  virtual std::vector<McpServerInfo> Servers() const = 0;
  // True once every server has started or failed to (Servers() would not wait).
  virtual bool IsReady() const { return true; }
  // Why each server that failed to start did ("MCP server 'x': …"), once Servers() has returned.
  virtual std::vector<std::string> Failures() const { return {}; }
  // Errors: kNotFound (no such server), kUnavailable (it went away), kTimeout, kCancelled
  // (`cancelled` became true), kProtocol (a reply that is not MCP).
  virtual Result<McpOutcome> CallTool(std::string_view server, std::string_view tool,
                                      std::string_view arguments_json,
                                      const std::atomic<bool>* cancelled) = 0;
  virtual Result<McpOutcome> ReadResource(std::string_view server, std::string_view uri,
                                          const std::atomic<bool>* cancelled) = 0;
};

// The function a native tool call uses for `tool` of `server`: "mcp--<server>--<tool>", with
// characters other than ASCII letters, digits, '_' and '-' replaced by '_' (providers allow no
// others), cut to 64 characters with a hash of the whole name kept at the end.
std::string McpFunctionName(std::string_view server, std::string_view tool);

}  // namespace lai::agent
