// The <environment_details> block appended to each user message: time, cost, mode, the
// workspace's files (first turn only) and the todo list reminder. Pure functions (plus a
// directory listing); thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "agent/history.h"
#include "agent/session_tool_specs.h"
#include "workspace/workspace.h"

namespace lai::agent {

struct EnvironmentInputs {
  const workspace::Workspace* workspace = nullptr;  // Required; borrowed for the call.
  std::chrono::system_clock::time_point now;
  std::string time_zone = "UTC";       // IANA name, e.g. "Europe/Berlin".
  std::chrono::minutes utc_offset{0};  // The zone's offset at `now`.
  std::string mode_slug;
  std::string mode_name;
  std::string model_id;
  ToolProtocol protocol = ToolProtocol::kNative;
  double cost_usd = 0;
  bool include_file_listing = false;  // True on a session's first turn.
  size_t listing_limit = 200;         // Entries of the recursive, ignore-filtered listing.
  std::vector<TodoItem> todos;
  bool has_todo_tool = true;  // update_todo_list is offered (changes the empty-list reminder).
};

// The whole block, from "<environment_details>" to "</environment_details>".
std::string BuildEnvironmentDetails(const EnvironmentInputs& inputs);

// The REMINDERS section alone: a table of the todo items, or the "no todo list yet" reminder.
std::string FormatReminderSection(const std::vector<TodoItem>& todos, bool has_todo_tool);

struct LocalZone {
  std::string name;  // IANA name when known ($TZ, /etc/timezone, /etc/localtime), else "UTC".
  std::chrono::minutes utc_offset{0};
};
// The process's local time zone at `now`.
LocalZone CurrentLocalZone(std::chrono::system_clock::time_point now);

}  // namespace lai::agent
