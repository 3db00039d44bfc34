#include "agent/events.h"

#include <array>
#include <nlohmann/json.hpp>

#include "base/json_text.h"
#include "llm/json_string.h"

namespace lai::agent {
namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 10> kToolKinds = {
    "read",    "edit",  "delete", "move",        "search",
    "execute", "think", "fetch",  "switch_mode", "other"};
constexpr std::array<std::string_view, 4> kToolStatuses = {"pending", "in_progress", "completed",
                                                           "failed"};
constexpr std::array<std::string_view, 3> kPlanStatuses = {"pending", "in_progress", "completed"};
constexpr std::array<std::string_view, 9> kUpdateKinds = {
    "user_message_chunk",  "agent_message_chunk", "agent_thought_chunk",
    "tool_call",           "tool_call_update",    "plan",
    "current_mode_update", "usage_update",        "session_info_update"};

template <size_t N>
int IndexOf(const std::array<std::string_view, N>& names, std::string_view name) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == name) return static_cast<int>(i);
  }
  return -1;
}

json ToolJson(const ToolCallInfo& tool, bool is_update) {
  json out = {{"toolCallId", tool.id}};
  if (!tool.title.empty() || !is_update) out["title"] = tool.title;
  if (tool.kind) out["kind"] = kToolKinds[static_cast<size_t>(*tool.kind)];
  if (tool.status) out["status"] = kToolStatuses[static_cast<size_t>(*tool.status)];
  if (!tool.locations.empty()) {
    json locations = json::array();
    for (const ToolLocation& location : tool.locations) {
      json entry = {{"path", location.path}};
      if (location.line > 0) entry["line"] = location.line;
      locations.push_back(std::move(entry));
    }
    out["locations"] = std::move(locations);
  }
  if (!tool.content.empty()) {
    json content = json::array();
    for (const ToolCallContent& item : tool.content) {
      switch (item.kind) {
        case ToolCallContent::Kind::kText:
          content.push_back(
              {{"type", "content"}, {"content", {{"type", "text"}, {"text", item.text}}}});
          break;
        case ToolCallContent::Kind::kDiff:
          content.push_back({{"type", "diff"},
                             {"path", item.path},
                             {"oldText", item.old_text ? json(*item.old_text) : json(nullptr)},
                             {"newText", item.new_text}});
          break;
        case ToolCallContent::Kind::kTerminal:
          content.push_back({{"type", "terminal"}, {"terminalId", item.terminal_id}});
          break;
      }
    }
    out["content"] = std::move(content);
  }
  if (!tool.raw_input_json.empty()) {
    json input = json::parse(tool.raw_input_json, nullptr, /*allow_exceptions=*/false);
    out["rawInput"] = input.is_discarded() ? json(tool.raw_input_json) : std::move(input);
  }
  if (!tool.raw_output.empty()) out["rawOutput"] = tool.raw_output;
  return out;
}

Error Bad(std::string_view what) {
  return Error(ErrorCode::kInvalidArgument, "session update: " + std::string(what));
}

Result<ToolCallInfo> ToolFromJson(const json& in) {
  ToolCallInfo tool;
  if (!in.contains("toolCallId") || !in["toolCallId"].is_string()) return Bad("toolCallId missing");
  tool.id = in["toolCallId"].get<std::string>();
  tool.title = in.value("title", "");
  if (in.contains("kind")) {
    int kind = IndexOf(kToolKinds, in["kind"].get<std::string>());
    if (kind < 0) return Bad("unknown tool kind");
    tool.kind = static_cast<ToolKind>(kind);
  }
  if (in.contains("status")) {
    int status = IndexOf(kToolStatuses, in["status"].get<std::string>());
    if (status < 0) return Bad("unknown tool status");
    tool.status = static_cast<ToolStatus>(status);
  }
  for (const json& location : in.value("locations", json::array())) {
    tool.locations.push_back({location.value("path", ""), location.value("line", int64_t{0})});
  }
  for (const json& item : in.value("content", json::array())) {
    ToolCallContent content;
    std::string type = item.value("type", "");
    if (type == "content") {
      content.text = item["content"].value("text", "");
    } else if (type == "diff") {
      content.kind = ToolCallContent::Kind::kDiff;
      content.path = item.value("path", "");
      if (item.contains("oldText") && item["oldText"].is_string()) {
        content.old_text = item["oldText"].get<std::string>();
      }
      content.new_text = item.value("newText", "");
    } else if (type == "terminal") {
      content.kind = ToolCallContent::Kind::kTerminal;
      content.terminal_id = item.value("terminalId", "");
    } else {
      return Bad("unknown tool content type '" + type + "'");
    }
    tool.content.push_back(std::move(content));
  }
  if (in.contains("rawInput")) {
    tool.raw_input_json =
        in["rawInput"].is_string() ? in["rawInput"].get<std::string>() : in["rawInput"].dump();
  }
  tool.raw_output = in.value("rawOutput", "");
  return tool;
}

}  // namespace

std::string_view ToolKindName(ToolKind kind) { return kToolKinds[static_cast<size_t>(kind)]; }

std::string_view UpdateKindName(SessionUpdate::Kind kind) {
  return kUpdateKinds[static_cast<size_t>(kind)];
}

std::string ToAcpJson(const SessionUpdate& update) {
  using Kind = SessionUpdate::Kind;
  if (update.kind == Kind::kUserMessageChunk || update.kind == Kind::kAgentMessageChunk ||
      update.kind == Kind::kAgentThoughtChunk) {
    // Every streamed chunk comes here: written directly, as the tree below would print it (keys
    // in order), without building the tree.
    std::string out = R"({"content":{"text":)";
    llm::AppendJsonString(out, update.text);
    out += R"(,"type":"text"},"sessionUpdate":")";
    out += UpdateKindName(update.kind);
    out += R"("})";
    return out;
  }
  json out = {{"sessionUpdate", UpdateKindName(update.kind)}};
  switch (update.kind) {
    case Kind::kUserMessageChunk:
    case Kind::kAgentMessageChunk:
    case Kind::kAgentThoughtChunk:
      break;  // Above.
    case Kind::kToolCall:
    case Kind::kToolCallUpdate:
      out.update(ToolJson(update.tool, update.kind == Kind::kToolCallUpdate));
      break;
    case Kind::kPlan: {
      json entries = json::array();
      for (const PlanEntry& entry : update.plan) {
        entries.push_back({{"content", entry.content},
                           {"priority", "medium"},
                           {"status", kPlanStatuses[static_cast<size_t>(entry.status)]}});
      }
      out["entries"] = std::move(entries);
      break;
    }
    case Kind::kCurrentModeUpdate:
      out["currentModeId"] = update.text;
      break;
    case Kind::kUsageUpdate:
      out["used"] = update.used_tokens;
      out["size"] = update.context_window;
      out["cost"] = {{"amount", RoundForJson(update.cost_usd)}, {"currency", "USD"}};
      break;
    case Kind::kSessionInfoUpdate:
      out["title"] = update.text;
      break;
  }
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<SessionUpdate> SessionUpdateFromAcpJson(std::string_view text) {
  using Kind = SessionUpdate::Kind;
  json in = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!in.is_object()) return Bad("not a JSON object");
  try {
    int kind = IndexOf(kUpdateKinds, in.value("sessionUpdate", ""));
    if (kind < 0) return Bad("unknown sessionUpdate");
    SessionUpdate update;
    update.kind = static_cast<Kind>(kind);
    switch (update.kind) {
      case Kind::kUserMessageChunk:
      case Kind::kAgentMessageChunk:
      case Kind::kAgentThoughtChunk:
        update.text = in.at("content").value("text", "");
        break;
      case Kind::kToolCall:
      case Kind::kToolCallUpdate: {
        ASSIGN_OR_RETURN(update.tool, ToolFromJson(in));
        break;
      }
      case Kind::kPlan:
        for (const json& entry : in.at("entries")) {
          int status = IndexOf(kPlanStatuses, entry.value("status", "pending"));
          update.plan.push_back({entry.value("content", ""),
                                 static_cast<PlanEntry::Status>(status < 0 ? 0 : status)});
        }
        break;
      case Kind::kCurrentModeUpdate:
        update.text = in.value("currentModeId", "");
        break;
      case Kind::kUsageUpdate:
        update.used_tokens = in.value("used", int64_t{0});
        update.context_window = in.value("size", int64_t{0});
        if (in.contains("cost")) update.cost_usd = in["cost"].value("amount", 0.0);
        break;
      case Kind::kSessionInfoUpdate:
        update.text = in.value("title", "");
        break;
    }
    return update;
  } catch (const json::exception& error) {
    return Bad(error.what());
  }
}

}  // namespace lai::agent
