// Session tool specs and the todo checklist format.
#include "agent/session_tool_specs.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "agent/prompt.h"
#include "agent/tools/tool.h"
#include "agent/xml_tools.h"
#include "base/check.h"

namespace lai::agent {
namespace {

constexpr SessionToolSpec kSpecs[] = {
    {"ask_followup_question",
     "Ask the user a question to get information you need to continue. Use it only when you "
     "cannot find the answer with your other tools (for example by reading files or searching). "
     "Give 2-4 suggested answers, each a complete, specific reply the user could send as is, "
     "ordered by priority or logic; a suggestion may name a mode to switch to when it is chosen.",
     R"json({
  "type": "object",
  "properties": {
    "question": {
      "type": "string",
      "description": "A clear, specific question about the information you need"
    },
    "follow_up": {
      "type": "array",
      "description": "2-4 suggested answers",
      "minItems": 2,
      "maxItems": 4,
      "items": {
        "type": "object",
        "properties": {
          "text": {"type": "string", "description": "A complete suggested answer"},
          "mode": {
            "type": ["string", "null"],
            "description": "Optional slug of a mode to switch to when this answer is chosen"
          }
        },
        "required": ["text", "mode"],
        "additionalProperties": false
      }
    }
  },
  "required": ["question", "follow_up"],
  "additionalProperties": false
})json"},
    {"attempt_completion",
     "Present the final result of your work to the user once the task is done. Use it only after "
     "every earlier tool use has succeeded (wait for the user's confirmation of each). Write the "
     "result as a final statement: do not end it with a question or an offer of further help.",
     R"json({
  "type": "object",
  "properties": {
    "result": {
      "type": "string",
      "description": "The final result of the task, written so that it needs no reply"
    }
  },
  "required": ["result"],
  "additionalProperties": false
})json"},
    {"switch_mode",
     "Ask to switch to another mode, for example to Code mode when a planned change is ready to "
     "implement or to Architect mode to plan. The user must approve the switch.",
     R"json({
  "type": "object",
  "properties": {
    "mode_slug": {"type": "string", "description": "Slug of the mode to switch to (e.g. code, ask, architect)"},
    "reason": {"type": "string", "description": "Why the switch is needed"}
  },
  "required": ["mode_slug", "reason"],
  "additionalProperties": false
})json"},
    {"new_task",
     "Start a subtask in the given mode with complete instructions. The subtask runs on its own "
     "and its attempt_completion result comes back to you as this tool's result.",
     R"json({
  "type": "object",
  "properties": {
    "mode": {"type": "string", "description": "Slug of the mode the subtask runs in (e.g. code, debug, architect)"},
    "message": {"type": "string", "description": "The subtask's complete instructions and context"},
    "todos": {
      "type": ["string", "null"],
      "description": "Optional initial todo list for the subtask as a Markdown checklist"
    }
  },
  "required": ["mode", "message", "todos"],
  "additionalProperties": false
})json"},
    {"update_todo_list",
     "Replace the task's todo list with an updated Markdown checklist that reflects the current "
     "progress. Always send the whole list. One item per line: \"[ ] \" pending, \"[-] \" in "
     "progress, \"[x] \" completed. Mark items done as soon as they are, add items you discover, "
     "and keep the order of execution.",
     R"json({
  "type": "object",
  "properties": {
    "todos": {
      "type": "string",
      "description": "The full checklist, one item per line: [ ] pending, [-] in progress, [x] completed"
    }
  },
  "required": ["todos"],
  "additionalProperties": false
})json"},
    {"use_mcp_tool",
     "Call a tool of a connected MCP server. The MCP SERVERS section lists each server's tools "
     "and the input schema their arguments must follow. One call at a time; wait for its result.",
     R"json({
  "type": "object",
  "properties": {
    "server_name": {"type": "string", "description": "The server, as named in MCP SERVERS"},
    "tool_name": {"type": "string", "description": "The tool on that server"},
    "arguments": {
      "type": "object",
      "description": "The tool's arguments, following its input schema ({} when it takes none)"
    }
  },
  "required": ["server_name", "tool_name", "arguments"],
  "additionalProperties": false
})json"},
    {"access_mcp_resource",
     "Read a resource of a connected MCP server (a file, a database schema, an API response) by "
     "its URI, as listed in the MCP SERVERS section.",
     R"json({
  "type": "object",
  "properties": {
    "server_name": {"type": "string", "description": "The server, as named in MCP SERVERS"},
    "uri": {"type": "string", "description": "The resource's URI"}
  },
  "required": ["server_name", "uri"],
  "additionalProperties": false
})json"},
};

std::string_view Trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\r");
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(" \t\r");
  return text.substr(begin, end - begin + 1);
}

}  // namespace

std::span<const SessionToolSpec> SessionToolSpecs() { return kSpecs; }

const SessionToolSpec* FindSessionToolSpec(std::string_view name) {
  for (const SessionToolSpec& spec : kSpecs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

const std::vector<PromptToolSpec>& AllToolSpecs() {
  static const std::vector<PromptToolSpec> specs = [] {
    std::vector<PromptToolSpec> all;
    for (const std::unique_ptr<Tool>& tool : WorkspaceTools()) {
      all.push_back({std::string(tool->name()), std::string(tool->description()),
                     std::string(tool->parameters_schema())});
    }
    for (const SessionToolSpec& spec : SessionToolSpecs()) {
      all.push_back({std::string(spec.name), std::string(spec.description),
                     std::string(spec.parameters_schema)});
    }
    return all;
  }();
  return specs;
}

const std::vector<XmlToolSpec>& AllXmlSpecs() {
  static const std::vector<XmlToolSpec> specs = [] {
    std::vector<XmlToolSpec> all;
    for (const PromptToolSpec& spec : AllToolSpecs()) {
      Result<XmlToolSpec> xml = XmlToolSpec::FromSchema(spec.name, spec.parameters_schema);
      LAI_CHECK(xml.ok()) << spec.name << ": " << xml.error().message();
      all.push_back(std::move(*xml));
    }
    return all;
  }();
  return specs;
}

std::vector<TodoItem> ParseTodoList(std::string_view markdown) {
  std::vector<TodoItem> items;
  while (!markdown.empty()) {
    size_t newline = markdown.find('\n');
    std::string_view line = Trim(markdown.substr(0, newline));
    markdown =
        newline == std::string_view::npos ? std::string_view() : markdown.substr(newline + 1);
    if (line.starts_with("-") || line.starts_with("*")) line = Trim(line.substr(1));
    // "1. [ ] task", "2) [x] task": a numbered list's numbers go.
    size_t digits = line.find_first_not_of("0123456789");
    if (digits != 0 && digits != std::string_view::npos && digits + 1 < line.size() &&
        (line[digits] == '.' || line[digits] == ')')) {
      line = Trim(line.substr(digits + 1));
    }
    if (line.size() < 3 || line[0] != '[') continue;
    size_t close = line.find(']');
    if (close == std::string_view::npos) continue;
    std::string_view mark = Trim(line.substr(1, close - 1));
    std::string_view text = Trim(line.substr(close + 1));
    if (text.empty() || mark.size() > 1) continue;
    TodoItem item;
    if (mark.empty()) {
      item.status = TodoStatus::kPending;
    } else if (mark == "x" || mark == "X") {
      item.status = TodoStatus::kCompleted;
    } else if (mark == "-" || mark == "~") {
      item.status = TodoStatus::kInProgress;
    } else {
      continue;
    }
    item.text = std::string(text);
    items.push_back(std::move(item));
  }
  return items;
}

std::string FormatTodoList(const std::vector<TodoItem>& items) {
  std::string out;
  for (const TodoItem& item : items) {
    if (!out.empty()) out += '\n';
    switch (item.status) {
      case TodoStatus::kPending:
        out += "[ ] ";
        break;
      case TodoStatus::kInProgress:
        out += "[-] ";
        break;
      case TodoStatus::kCompleted:
        out += "[x] ";
        break;
    }
    out += item.text;
  }
  return out;
}

std::string_view TodoStatusLabel(TodoStatus status) {
  switch (status) {
    case TodoStatus::kPending:
      return "Pending";
    case TodoStatus::kInProgress:
      return "In Progress";
    case TodoStatus::kCompleted:
      return "Completed";
  }
  return "Pending";
}

TodoStatus ParseTodoStatus(std::string_view label) {
  if (label == TodoStatusLabel(TodoStatus::kCompleted) || label == "completed") {
    return TodoStatus::kCompleted;
  }
  if (label == TodoStatusLabel(TodoStatus::kInProgress) || label == "in_progress") {
    return TodoStatus::kInProgress;
  }
  return TodoStatus::kPending;
}

}  // namespace lai::agent
