// Environment details text.
#include "agent/environment.h"

#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "agent/internal/markdown.h"
#include "workspace/walker.h"

namespace lai::agent {
namespace {

std::string IsoUtc(std::chrono::system_clock::time_point now) {
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  time_t seconds = static_cast<time_t>(millis.count() / 1000);
  int64_t remainder = millis.count() % 1000;
  if (remainder < 0) {
    remainder += 1000;
    --seconds;
  }
  struct tm utc {};
  gmtime_r(&seconds, &utc);
  char buffer[96];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(remainder));
  return buffer;
}

std::string OffsetText(std::chrono::minutes offset) {
  int64_t minutes = offset.count();
  char sign = minutes < 0 ? '-' : '+';
  if (minutes < 0) minutes = -minutes;
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "UTC%c%d:%02d", sign, static_cast<int>(minutes / 60),
                static_cast<int>(minutes % 60));
  return buffer;
}

std::string CostText(double cost_usd) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "$%.2f", cost_usd);
  return buffer;
}

std::string FileListing(const EnvironmentInputs& inputs) {
  const workspace::Workspace& ws = *inputs.workspace;
  const char* home = std::getenv("HOME");
  if (ws.root() == "/" || (home != nullptr && ws.root() == home)) {
    return "(The workspace is the home or root directory, so its files are not listed "
           "automatically. Use list_files to explore it.)";
  }
  Result<workspace::ResolvedPath> root = ws.Resolve(".");
  if (!root.ok()) return "(File listing not available: " + root.error().message() + ")";
  workspace::ListOptions options;
  options.recursive = true;
  options.limit = inputs.listing_limit;
  Result<workspace::ListResult> listing = workspace::ListFiles(ws, *root, options);
  if (!listing.ok()) return "(File listing not available: " + listing.error().message() + ")";
  if (listing->entries.empty()) return "No files found.";
  std::string out;
  for (const std::string& entry : listing->entries) {
    out += entry;
    out += '\n';
  }
  if (listing->truncated) {
    out +=
        "\n(File list truncated. Use list_files on specific subdirectories if you need to "
        "explore further.)";
  } else {
    out.pop_back();
  }
  return out;
}

std::string ProtocolName(ToolProtocol protocol) {
  return protocol == ToolProtocol::kXml ? "xml" : "native";
}

}  // namespace

std::string FormatReminderSection(const std::vector<TodoItem>& todos, bool has_todo_tool) {
  if (todos.empty()) {
    if (!has_todo_tool) return "You have not created a todo list yet.";
    return "You have not created a todo list yet. Create one with `update_todo_list` if your "
           "task is complicated or involves multiple steps.";
  }
  std::string out =
      "====\n\nREMINDERS\n\nBelow is your current list of reminders for this task. Keep them "
      "updated as you progress.\n\n| # | Content | Status |\n|---|---------|--------|\n";
  for (size_t i = 0; i < todos.size(); ++i) {
    out += "| " + std::to_string(i + 1) + " | " + internal::MarkdownTableCell(todos[i].text) +
           " | " + std::string(TodoStatusLabel(todos[i].status)) + " |\n";
  }
  out +=
      "\n\nIMPORTANT: When task status changes, remember to call the `update_todo_list` tool "
      "to update your progress.\n";
  return out;
}

std::string BuildEnvironmentDetails(const EnvironmentInputs& inputs) {
  std::string out = "<environment_details>\n";
  out += "# Current Time\nCurrent time in ISO 8601 UTC format: " + IsoUtc(inputs.now) + "\n";
  out += "User time zone: " + (inputs.time_zone.empty() ? std::string("UTC") : inputs.time_zone) +
         ", " + OffsetText(inputs.utc_offset) + "\n\n";
  out += "# Current Cost\n" + CostText(inputs.cost_usd) + "\n\n";
  out += "# Current Mode\n<slug>" + inputs.mode_slug + "</slug>\n<name>" + inputs.mode_name +
         "</name>\n<model>" + inputs.model_id + "</model>\n<tool_format>" +
         ProtocolName(inputs.protocol) + "</tool_format>\n";
  if (inputs.include_file_listing && inputs.workspace != nullptr) {
    out += "\n# Current Workspace Directory (" + inputs.workspace->root() + ") Files\n" +
           FileListing(inputs) + "\n";
  }
  out += "\n" + FormatReminderSection(inputs.todos, inputs.has_todo_tool);
  if (out.back() != '\n') out += '\n';
  out += "</environment_details>";
  return out;
}

LocalZone CurrentLocalZone(std::chrono::system_clock::time_point now) {
  LocalZone zone;
  time_t seconds = std::chrono::system_clock::to_time_t(now);
  struct tm local {};
  if (localtime_r(&seconds, &local) != nullptr) {
    zone.utc_offset = std::chrono::minutes(local.tm_gmtoff / 60);
  }
  const char* tz = std::getenv("TZ");
  if (tz != nullptr && *tz != '\0') {
    zone.name = tz[0] == ':' ? tz + 1 : tz;
    return zone;
  }
  std::ifstream file("/etc/timezone");
  if (file && std::getline(file, zone.name) && !zone.name.empty()) return zone;
  std::error_code error;
  std::filesystem::path target = std::filesystem::read_symlink("/etc/localtime", error);
  std::string text = target.string();
  size_t at = text.find("zoneinfo/");
  if (!error && at != std::string::npos) {
    zone.name = text.substr(at + 9);
    return zone;
  }
  zone.name = "UTC";
  return zone;
}

}  // namespace lai::agent
