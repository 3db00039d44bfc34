// System prompt sections. The wording is lapce-ai's; the structure and the facts a model relies
// on (section titles and order, one tool per message, environment_details, file restrictions)
// follow Kilo Code's src/core/prompts/.
#include "agent/prompt.h"

#include <pwd.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace lai::agent {
namespace {

constexpr std::string_view kSeparator = "\n\n====\n\n";

bool HasTool(const PromptInputs& inputs, std::string_view name) {
  return std::any_of(inputs.tools.begin(), inputs.tools.end(),
                     [&](const PromptToolSpec& tool) { return tool.name == name; });
}

bool HasAnyTool(const PromptInputs& inputs, std::initializer_list<std::string_view> names) {
  return std::any_of(names.begin(), names.end(),
                     [&](std::string_view name) { return HasTool(inputs, name); });
}

std::string MarkdownRules() {
  return "MARKDOWN RULES\n\n"
         "In ALL responses, including attempt_completion, write every reference to a "
         "`language construct` or a file name as a clickable link of the form "
         "[`filename OR language.declaration()`](relative/file/path.ext:line). The line number "
         "is required for code constructs and optional for file names.";
}

std::string ToolUseNative() {
  return "TOOL USE\n\n"
         "You have a set of tools that run once the user approves them. Call them through the "
         "provider's native function-calling mechanism; do not write tool calls as XML or as "
         "text. Call exactly one tool per assistant message, and include a tool call in every "
         "message until the task is done (finish with attempt_completion, or ask with "
         "ask_followup_question). Use tools step by step: each call should be informed by the "
         "result of the previous one, which you receive in the user's next message.";
}

std::string ToolUseXml(const PromptInputs& inputs) {
  std::string out =
      "TOOL USE\n\n"
      "You have a set of tools that run once the user approves them. Use exactly one tool per "
      "message, and include a tool use in every message until the task is done (finish with "
      "attempt_completion, or ask with ask_followup_question). Use tools step by step: each "
      "tool use should be informed by the result of the previous one, which you receive in the "
      "user's next message.\n\n"
      "# Tool Use Formatting\n\n"
      "Write a tool use as XML tags: the tool's name is the outer tag and each parameter is "
      "enclosed in a tag of its own name:\n\n"
      "<actual_tool_name>\n"
      "<parameter1_name>value1</parameter1_name>\n"
      "<parameter2_name>value2</parameter2_name>\n"
      "...\n"
      "</actual_tool_name>\n\n"
      "For example, to read src/main.rs:\n\n"
      "<read_file>\n"
      "<path>src/main.rs</path>\n"
      "</read_file>\n\n"
      "Always use the tool's actual name as the tag so the call can be recognised, and write "
      "parameter values as plain text (no escaping, no CDATA).\n\n"
      "# Tools";
  for (const PromptToolSpec& tool : inputs.tools) {
    out += "\n\n";
    if (inputs.describe_tool) {
      out += inputs.describe_tool(tool.name, tool.description, tool.parameters_schema);
    } else {
      out += "## " + tool.name + "\nDescription: " + tool.description +
             "\nParameters (JSON Schema): " + tool.parameters_schema;
    }
  }
  return out;
}

std::string ToolUseGuidelines(const PromptInputs& inputs) {
  bool is_xml = inputs.protocol == ToolProtocol::kXml;
  std::vector<std::string> items = {
      "Think about what information you already have and what you still need to proceed "
      "with the task.",
      "Choose the most appropriate tool for the current step from the tools' descriptions. "
      "Consider whether more information is needed first and which tool gathers it best; for "
      "example, listing files works better than running `ls` in a terminal.",
      "When an action needs several steps, use one tool per message and let the result of "
      "each step inform the next. Never assume the outcome of a tool use.",
  };
  if (is_xml) items.push_back("Write each tool use in the XML format described above.");
  items.push_back(
      "After each tool use the user replies with its result: whether it succeeded or failed "
      "and why, linter errors to fix, new terminal output to react to, or other feedback. Use "
      "it to decide what to do next.");
  if (is_xml) {
    items.push_back(
        "ALWAYS wait for the user's confirmation after each tool use before going on. Never "
        "claim a tool use succeeded without the user's explicit confirmation.");
  }
  std::string out = "# Tool Use Guidelines\n";
  for (size_t i = 0; i < items.size(); ++i) {
    out += "\n" + std::to_string(i + 1) + ". " + items[i];
  }
  out +=
      "\n\nWorking step by step and waiting for each result lets you confirm that each step "
      "worked, fix problems as they appear, and adapt to new information.";
  return out;
}

std::string Capabilities(const PromptInputs& inputs) {
  const std::string& root = inputs.workspace_root;
  std::string out = "CAPABILITIES\n\n";
  std::vector<std::string> parts;
  if (HasTool(inputs, "execute_command"))
    parts.push_back("run CLI commands on the user's computer");
  if (HasAnyTool(inputs, {"list_files", "search_files"})) parts.push_back("list and search files");
  if (HasTool(inputs, "read_file")) parts.push_back("read files");
  if (HasAnyTool(inputs, {"write_to_file", "apply_diff", "insert_content", "search_and_replace",
                          "delete_file"})) {
    parts.push_back("create, edit and delete files");
  }
  // A mode with none of them (orchestrator) works through the others.
  const bool delegates = parts.empty();
  if (delegates && HasTool(inputs, "new_task")) {
    parts.push_back(
        "delegate each part of a task to a subtask in the mode suited to it (new_task)");
  }
  if (delegates && HasTool(inputs, "switch_mode")) {
    parts.push_back("switch to another mode (switch_mode)");
  }
  parts.push_back("ask the user follow-up questions");
  out += "- You can ";
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += i + 1 == parts.size() ? " and " : ", ";
    out += parts[i];
  }
  out += delegates ? ". With these you coordinate work that the other modes do: reading, "
                     "changing and running the code.\n"
                   : ". With these you can accomplish a wide range of tasks: understanding a "
                     "codebase, answering questions about it, and changing it where this mode "
                     "allows.\n";
  out +=
      "- When the user first gives you a task, a recursive list of the files in the current "
      "workspace directory ('" +
      root +
      "') is included in environment_details. It shows the project's structure (folder and "
      "file names hint at how the code is organised and which languages it uses) and guides "
      "which files to explore.";
  if (HasTool(inputs, "list_files")) {
    out +=
        " To look at directories outside the workspace, use list_files: with recursive "
        "'true' it lists everything below a directory, otherwise only the top level (better "
        "for generic directories like the Desktop).";
  }
  if (HasTool(inputs, "search_files")) {
    out +=
        "\n- search_files runs a regular-expression search over the files of a directory and "
        "shows each match with surrounding lines. Use it to find code patterns, TODOs, "
        "function definitions or any text.";
  }
  if (HasTool(inputs, "execute_command")) {
    out +=
        "\n- execute_command runs a command in the user's shell. Explain what each command "
        "does. Prefer running complex CLI commands to writing executable scripts: commands are "
        "more flexible and easier to run. Each command runs in a new shell whose working "
        "directory is the workspace.";
  }
  return out;
}

std::string Modes(const PromptInputs& inputs) {
  std::string out = "MODES\n\n- These are the currently available modes:";
  for (const ModeConfig& mode : inputs.modes) {
    std::string summary = mode.when_to_use;
    if (summary.empty()) {
      summary = mode.role_definition.substr(0, mode.role_definition.find('\n'));
      size_t sentence = summary.find(". ");
      if (sentence != std::string::npos) summary.resize(sentence + 1);
    }
    out += "\n  * \"" + mode.name + "\" mode (" + mode.slug + ") - " + summary;
  }
  out +=
      "\nCustom modes for this project are defined in its .kilocodemodes file (YAML or JSON "
      "with a `customModes` list of slug, name, roleDefinition, whenToUse, groups). That file "
      "is protected: changing it needs the user's approval.";
  return out;
}

std::string FileRestrictions(const ModeConfig& mode) {
  for (const GroupEntry& group : mode.groups) {
    if (group.group != ToolGroup::kEdit || group.file_regex.empty()) continue;
    std::string text = "In the current mode (" + mode.slug +
                       "), file edits are limited to paths matching the regular expression " +
                       group.file_regex;
    if (!group.description.empty()) text += " (" + group.description + ")";
    return text + ".";
  }
  return {};
}

std::string Rules(const PromptInputs& inputs) {
  const std::string& root = inputs.workspace_root;
  bool is_powershell = inputs.shell.find("pwsh") != std::string::npos ||
                       inputs.shell.find("powershell") != std::string::npos;
  std::string chain = is_powershell ? ";" : "&&";
  std::vector<std::string> rules;
  rules.push_back("The project base directory is: " + root);
  rules.push_back(HasTool(inputs, "execute_command")
                      ? "All file paths must be relative to this directory. Commands, however, "
                        "may change directories inside the shell they run in, so respect the "
                        "working directory given with a command's result."
                      : "All file paths must be relative to this directory.");
  rules.push_back(
      "You cannot `cd` into a different directory to complete a task: you are stuck "
      "in '" +
      root +
      "', so pass the correct 'path' parameter to tools that take "
      "one.");
  rules.push_back("Do not use the ~ character or $HOME to refer to the home directory.");
  if (HasTool(inputs, "execute_command")) {
    rules.push_back(
        "Before using execute_command, consider the SYSTEM INFORMATION below to make sure the "
        "command suits the user's system. If a command must run in a directory other than '" +
        root + "', prepend the change of directory to the same command: `cd (path to project) " +
        chain + " (command)`.");
  }
  if (HasTool(inputs, "search_files")) {
    rules.push_back(
        "Craft search_files regular expressions carefully to balance specificity "
        "and flexibility, and read the surrounding context of the matches.");
  }
  rules.push_back(
      "When creating a new project, put its files in a dedicated project directory "
      "unless the user says otherwise, and structure it by the conventions of its "
      "kind of project.");
  if (HasAnyTool(inputs, {"write_to_file", "apply_diff", "insert_content", "search_and_replace"})) {
    std::string editing = "To change existing files prefer the targeted editing tools (";
    bool first = true;
    for (std::string_view tool : {"apply_diff", "search_and_replace", "insert_content"}) {
      if (!HasTool(inputs, tool)) continue;
      if (!first) editing += ", ";
      editing += tool;
      first = false;
    }
    editing += first ? "none in this mode" : "";
    editing += ") over rewriting them";
    if (HasTool(inputs, "write_to_file")) {
      editing +=
          "; write_to_file replaces a whole file, so give it the complete content and "
          "never omit or abbreviate parts";
    }
    rules.push_back(editing + ".");
  }
  rules.push_back(
      "Some modes restrict which files they may edit; an edit outside the allowed "
      "files is rejected with an error naming the allowed pattern." +
      std::string(FileRestrictions(inputs.mode).empty() ? "" : " ") +
      FileRestrictions(inputs.mode));
  rules.push_back(
      "Configuration files of this assistant are write-protected: .kilocodemodes, "
      ".kilocoderules, .kilocodeignore, .kilocode/**, .roomodes, .roorules*, "
      ".rooignore, .roo/**, .clinerules*, .vscode/**, AGENTS.md and AGENT.md. Editing "
      "them always needs the user's explicit approval.");
  rules.push_back(
      "Paths matched by the workspace's .kilocodeignore file are blocked: tools "
      "refuse to read or list them. Do not try to reach them another way, for "
      "example with shell commands.");
  rules.push_back(
      "Consider the type of project (Python, JavaScript, web application, …) when "
      "deciding on structure and files, and keep changes consistent with the "
      "project's existing coding standards and best practices.");
  rules.push_back(
      "Do not ask for more information than you need. Use the tools to work "
      "efficiently, and when the task is done use attempt_completion to present the "
      "result. The user may give feedback you can use to improve it.");
  rules.push_back(
      "Ask the user questions only with ask_followup_question, and only when you "
      "cannot find the answer with your tools. Give 2-4 suggested answers, each a "
      "complete reply the user could send as is." +
      std::string(HasTool(inputs, "list_files")
                      ? " If the user names a file you can find with list_files, do not ask "
                        "for its path."
                      : ""));
  if (HasTool(inputs, "execute_command")) {
    rules.push_back(
        "If a command's output does not appear, assume it succeeded and go on. If "
        "you really need the output, ask the user to paste it with "
        "ask_followup_question.");
  }
  if (HasTool(inputs, "read_file")) {
    rules.push_back(
        "If the user included a file's contents in the message, do not read it again "
        "with read_file.");
  }
  rules.push_back("Your goal is to accomplish the task, not to hold a conversation.");
  rules.push_back(
      "NEVER end attempt_completion's result with a question or an offer of further "
      "help: phrase it as final.");
  rules.push_back(
      "You are STRICTLY FORBIDDEN from starting your messages with \"Great\", "
      "\"Certainly\", \"Okay\" or \"Sure\". Be direct and technical rather than "
      "conversational: say \"I've updated the CSS\", not \"Great, I've updated the "
      "CSS\".");
  rules.push_back(
      "Each user message ends with environment_details. It is generated "
      "automatically to give context about the project and the session; it is not "
      "part of the user's request. Use it to inform your actions, but do not assume "
      "the user refers to it unless they say so.");
  rules.push_back(
      "Wait for the user's reply to each tool use to confirm it succeeded before "
      "going on. For example, when building an app, create a file, wait for the "
      "confirmation, then run it.");
  std::string out = "RULES\n";
  for (const std::string& rule : rules) out += "\n- " + rule;
  return out;
}

std::string SystemInformation(const PromptInputs& inputs) {
  return "SYSTEM INFORMATION\n\n"
         "Operating System: " +
         inputs.os_name + "\nDefault Shell: " + inputs.shell + "\nHome Directory: " + inputs.home +
         "\nCurrent Workspace Directory: " + inputs.workspace_root +
         "\n\nThe Current Workspace Directory is the project the user has open and the default "
         "directory for every tool. Commands start in it. When the user first gives you a task, "
         "a recursive list of the files in the current workspace directory ('" +
         inputs.workspace_root + "') is included in environment_details.";
}

std::string Objective() {
  return "OBJECTIVE\n\n"
         "You accomplish a task iteratively: split it into clear steps and work through them "
         "in order.\n\n"
         "1. Analyse the user's task and set clear, achievable goals, ordered logically.\n"
         "2. Work through the goals one at a time, using one tool per step. Each goal is a "
         "distinct step of your problem solving, and you are told what was done and what "
         "remains as you go.\n"
         "3. You have powerful tools: use them cleverly. Before calling one, reason about it: "
         "look at the file structure in environment_details for context, pick the most relevant "
         "tool, and check that every required parameter is given or can reasonably be inferred. "
         "If a required value is missing, do not call the tool with a placeholder: ask the user "
         "for it with ask_followup_question. Do not ask about optional parameters.\n"
         "4. When the task is done, present the result with attempt_completion. You may show a "
         "command that demonstrates it, for example one that opens a web page you built.\n"
         "5. The user may give feedback to improve the result. Do not continue in pointless "
         "back-and-forth: do not end your replies with questions or offers of further help.";
}

std::string LanguageName(std::string_view code) {
  struct Row {
    std::string_view code;
    std::string_view name;
  };
  static constexpr Row kNames[] = {
      {"en", "English"},    {"de", "Deutsch"},      {"es", "Español"},     {"fr", "Français"},
      {"it", "Italiano"},   {"ja", "日本語"},       {"ko", "한국어"},      {"nl", "Nederlands"},
      {"pl", "Polski"},     {"pt-BR", "Português"}, {"ru", "Русский"},     {"tr", "Türkçe"},
      {"vi", "Tiếng Việt"}, {"zh-CN", "简体中文"},  {"zh-TW", "繁體中文"},
  };
  for (const Row& row : kNames) {
    if (row.code == code) return std::string(row.name);
  }
  return std::string(code);
}

std::string Trimmed(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(begin, end - begin + 1));
}

std::string CustomInstructions(const PromptInputs& inputs) {
  std::vector<std::string> sections;
  if (!inputs.language.empty()) {
    sections.push_back("Language Preference:\nYou should always speak and think in the \"" +
                       LanguageName(inputs.language) + "\" (" + inputs.language +
                       ") language unless the user gives you instructions below to do "
                       "otherwise.");
  }
  if (std::string global = Trimmed(inputs.global_custom_instructions); !global.empty()) {
    sections.push_back("Global Instructions:\n" + global);
  }
  if (std::string mode = Trimmed(inputs.mode.custom_instructions); !mode.empty()) {
    sections.push_back("Mode-specific Instructions:\n" + mode);
  }
  if (std::string rules = Trimmed(inputs.rules); !rules.empty()) {
    sections.push_back("Rules:\n\n" + rules);
  }
  if (sections.empty()) return {};
  std::string out =
      "USER'S CUSTOM INSTRUCTIONS\n\n"
      "The following additional instructions are provided by the user, and should be followed "
      "to the best of your ability.";
  for (const std::string& section : sections) out += "\n\n" + section;
  return out;
}

}  // namespace

std::string BuildSystemPrompt(const PromptInputs& inputs) {
  std::string out = Trimmed(inputs.mode.role_definition);
  out += kSeparator;
  out += MarkdownRules();
  out += kSeparator;
  out += inputs.protocol == ToolProtocol::kXml ? ToolUseXml(inputs) : ToolUseNative();
  out += "\n\n";
  out += ToolUseGuidelines(inputs);
  if (std::string mcp = McpPromptSection(inputs.mcp_servers, inputs.protocol); !mcp.empty()) {
    out += kSeparator;
    out += mcp;
  }
  out += kSeparator;
  out += Capabilities(inputs);
  out += kSeparator;
  out += Modes(inputs);
  out += kSeparator;
  out += Rules(inputs);
  out += kSeparator;
  out += SystemInformation(inputs);
  out += kSeparator;
  out += Objective();
  if (std::string custom = CustomInstructions(inputs); !custom.empty()) {
    out += kSeparator;
    out += custom;
  }
  out += '\n';
  return out;
}

std::string McpFunctionName(std::string_view server, std::string_view tool) {
  const std::string raw = "mcp--" + std::string(server) + "--" + std::string(tool);
  std::string name = raw;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') c = '_';
  }
  constexpr size_t kMaxName = 64;
  // A server name holding "--" could end where its tool's begins: server "a--b" with tool "c"
  // and server "a" with tool "b--c" would be one function.
  const bool is_ambiguous = server.find("--") != std::string_view::npos;
  if (name.size() <= kMaxName && name == raw && !is_ambiguous) return name;
  // A name that had to be changed or cut ends with a hash of the name as given (of the server and
  // tool apart, when ambiguous), so that servers "a.b c" and "a_b_c" (or two long tools) stay
  // distinct.
  uint32_t hash = 2166136261u;  // FNV-1a.
  const std::string hashed = is_ambiguous ? std::string(server) + '\0' + std::string(tool) : raw;
  for (char c : hashed) hash = (hash ^ static_cast<unsigned char>(c)) * 16777619u;
  char suffix[10];
  std::snprintf(suffix, sizeof suffix, "_%08x", hash);
  return name.substr(0, std::min(name.size(), kMaxName - 9)) + suffix;
}

std::string McpPromptSection(const std::vector<McpServerInfo>& servers, ToolProtocol protocol) {
  if (servers.empty()) return {};
  const bool is_native = protocol == ToolProtocol::kNative;
  std::string out =
      "MCP SERVERS\n\n"
      "These Model Context Protocol servers are connected. Each runs on the user's machine and "
      "offers tools and resources beyond your own. ";
  out += is_native ? "Each server's tools are functions of their own, named "
                     "mcp--<server>--<tool> (for example mcp--weather--get_forecast)"
                   : "Call a tool with use_mcp_tool (server_name, tool_name, and arguments that "
                     "follow the tool's input schema)";
  out +=
      "; read a resource with access_mcp_resource (server_name, uri). Make one MCP call at a "
      "time and wait for its result.";
  for (const McpServerInfo& server : servers) {
    out += "\n\n## " + server.name;
    if (!server.command.empty()) out += " (`" + server.command + "`)";
    if (!server.instructions.empty())
      out += "\n\n### Instructions\n" + Trimmed(server.instructions);
    if (!server.tools.empty()) {
      out += "\n\n### Available Tools";
      for (const McpTool& tool : server.tools) {
        out += "\n- " + (is_native ? McpFunctionName(server.name, tool.name) : tool.name) + ": " +
               Trimmed(tool.description);
        if (!is_native) out += "\n    Input Schema: " + tool.input_schema;
      }
    }
    if (!server.resources.empty()) {
      out += "\n\n### Resources";
      for (const McpResource& resource : server.resources) {
        out += "\n- " + resource.uri + " (" + resource.name + ")";
        if (!resource.description.empty()) out += ": " + Trimmed(resource.description);
      }
    }
  }
  return out;
}

SystemInfo CurrentSystemInfo() {
  SystemInfo info;
  struct utsname name {};
  if (uname(&name) == 0) {
    info.os_name = std::string(name.sysname) + " " + name.release;
  } else {
    info.os_name = "Linux";
  }
  const char* shell = std::getenv("SHELL");
  info.shell = shell != nullptr && *shell != '\0' ? shell : "/bin/sh";
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') {
    info.home = home;
  } else {
    struct passwd entry {};
    struct passwd* found = nullptr;
    char buffer[4096];
    if (getpwuid_r(getuid(), &entry, buffer, sizeof buffer, &found) == 0 && found != nullptr) {
      info.home = found->pw_dir;
    }
  }
  return info;
}

}  // namespace lai::agent
