// The system prompt: Kilo Code's sections in Kilo Code's order, for either tool protocol, built
// from plain inputs (the caller loads modes and rules and filters tools by mode). Pure
// functions; thread-safe.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/history.h"
#include "agent/mcp.h"
#include "agent/modes.h"

namespace lai::agent {

struct PromptToolSpec {
  std::string name;
  std::string description;
  std::string parameters_schema;  // JSON Schema text.
};

// One tool's documentation for the XML protocol (heading, description, parameters, example), as
// src/agent/xml_tools.h's DescribeToolXml produces it.
using DescribeToolFn = std::function<std::string(
    std::string_view name, std::string_view description, std::string_view schema_json)>;

struct PromptInputs {
  std::string workspace_root;  // Absolute; appears in CAPABILITIES, RULES and SYSTEM INFORMATION.
  ModeConfig mode;
  std::vector<ModeConfig> modes;      // All modes, for the MODES section.
  std::vector<PromptToolSpec> tools;  // The tools offered in this mode, in offer order.
  ToolProtocol protocol = ToolProtocol::kNative;
  // Required for kXml (a fallback listing the raw schema is used when empty).
  DescribeToolFn describe_tool;
  std::string os_name;   // "Linux 6.1.0-18-amd64" (see CurrentSystemInfo()).
  std::string shell;     // "/bin/bash"
  std::string home;      // "/home/alice"
  std::string language;  // Preferred language of replies, e.g. "en" or "de"; "" = unstated.
  std::string global_custom_instructions;
  std::string rules;  // LoadRules() output.
  // Connected MCP servers, when the mode offers their tools: an MCP SERVERS section follows the
  // tool use guidelines.
  std::vector<McpServerInfo> mcp_servers;
};

std::string BuildSystemPrompt(const PromptInputs& inputs);

// The MCP SERVERS section: each server with its command, instructions, tools and resources, and
// how to call them — through use_mcp_tool (XML; tools listed with their input schemas) or as
// functions of their own named by McpFunctionName (native). "" when `servers` is empty.
std::string McpPromptSection(const std::vector<McpServerInfo>& servers, ToolProtocol protocol);

// The section titles in the order BuildSystemPrompt emits them (XML adds "# Tools" after TOOL
// USE). For tests and docs.
inline constexpr std::string_view kPromptSectionOrder[] = {
    "MARKDOWN RULES",     "TOOL USE",  "# Tool Use Guidelines",
    "CAPABILITIES",       "MODES",     "RULES",
    "SYSTEM INFORMATION", "OBJECTIVE", "USER'S CUSTOM INSTRUCTIONS"};

struct SystemInfo {
  std::string os_name;  // From uname: "Linux 6.1.0-18-amd64".
  std::string shell;    // $SHELL, else /bin/sh.
  std::string home;     // $HOME, else the passwd entry.
};
SystemInfo CurrentSystemInfo();

}  // namespace lai::agent
