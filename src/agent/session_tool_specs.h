// The session-level tools a session (not the workspace) carries out — ask_followup_question,
// attempt_completion, switch_mode, new_task, update_todo_list, and use_mcp_tool and
// access_mcp_resource (offered only when MCP servers are connected) — as specs (name, description, JSON
// schema), and the todo list's Markdown checklist format. Constants and pure functions;
// thread-safe.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lai::agent {

struct SessionToolSpec {
  std::string_view name;
  std::string_view description;
  std::string_view parameters_schema;  // JSON Schema of the arguments object.
};

// In the order above.
std::span<const SessionToolSpec> SessionToolSpecs();

struct PromptToolSpec;
struct XmlToolSpec;
// Every tool a model may be offered: the workspace tools, then the session tools.
const std::vector<PromptToolSpec>& AllToolSpecs();
// The same as XML-protocol specs, for parsing an assistant's text (xml_tools.h).
const std::vector<XmlToolSpec>& AllXmlSpecs();
// nullptr when `name` is not a session tool.
const SessionToolSpec* FindSessionToolSpec(std::string_view name);

enum class TodoStatus { kPending, kInProgress, kCompleted };

struct TodoItem {
  std::string text;
  TodoStatus status = TodoStatus::kPending;

  bool operator==(const TodoItem&) const = default;
};

// Parses update_todo_list's checklist: one item per line, "[ ] text" pending, "[-] text" (or
// "[~]") in progress, "[x] text" (or "[X]") completed, optionally after a "- " bullet. Other
// lines (headings, blank lines, prose) are ignored, so an empty result means "no items".
std::vector<TodoItem> ParseTodoList(std::string_view markdown);
// The checklist ParseTodoList reads: "[x] a\n[-] b\n[ ] c" (no trailing newline).
std::string FormatTodoList(const std::vector<TodoItem>& items);
// "Pending", "In Progress", "Completed".
std::string_view TodoStatusLabel(TodoStatus status);
// The inverse, as stored todos are read back: a label, or its snake_case form ("in_progress",
// "completed"); anything else is pending.
TodoStatus ParseTodoStatus(std::string_view label);

}  // namespace lai::agent
