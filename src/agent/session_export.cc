#include "agent/session_export.h"

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "agent/events.h"
#include "agent/internal/markdown.h"
#include "agent/internal/message_json_value.h"
#include "agent/session_tool_specs.h"
#include "agent/xml_tools.h"
#include "base/strings.h"

namespace lai::agent {
namespace {

using Json = nlohmann::ordered_json;
using Kind = llm::ContentPart::Kind;

// "2026-11-27T04:33:17Z" (UTC, so exports do not depend on the reader's time zone).
std::string FormatTime(int64_t time_ms) {
  time_t seconds = static_cast<time_t>(time_ms / 1000);
  struct tm parts;
  gmtime_r(&seconds, &parts);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

// A fenced block whose fence is longer than any backtick run inside `body`.
std::string Fenced(std::string_view body, std::string_view language) {
  size_t longest = 0;
  size_t run = 0;
  for (char c : body) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  std::string fence(std::max<size_t>(3, longest + 1), '`');
  std::string out = fence + std::string(language) + "\n" + std::string(body);
  if (!body.empty() && body.back() != '\n') out += '\n';
  return out + fence + "\n";
}

// `text` (a model's Markdown) with a code fence it left open closed at its end: an interrupted
// reply often stops inside one, which then swallowed the rest of the document. A fence may
// follow a list marker ("1. ```bash"); a backtick "fence" whose info string holds a backtick
// ("```js```") is inline code, not a fence (CommonMark).
std::string WithFencesClosed(std::string_view text) {
  std::string open;  // The fence of the open block ("```", "~~~~"); empty when none.
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    std::string_view line = text.substr(start, end == std::string_view::npos ? end : end - start);
    start = end == std::string_view::npos ? text.size() : end + 1;
    size_t indent = line.find_first_not_of(' ');
    if (indent == std::string_view::npos) continue;
    line.remove_prefix(indent);
    if (open.empty()) {  // A list item's marker before an opening fence.
      size_t digits = line.find_first_not_of("0123456789");
      if ((line.starts_with("- ") || line.starts_with("* ") || line.starts_with("+ "))) {
        line.remove_prefix(2);
      } else if (digits != 0 && digits != std::string_view::npos && digits < 10 &&
                 digits + 1 < line.size() && (line[digits] == '.' || line[digits] == ')') &&
                 line[digits + 1] == ' ') {
        line.remove_prefix(digits + 2);
      }
      line.remove_prefix(std::min(line.size(), line.find_first_not_of(' ')));
    }
    if (line.empty() || (line[0] != '`' && line[0] != '~')) continue;
    const char mark = line[0];
    size_t run = line.find_first_not_of(mark);
    if (run == std::string_view::npos) run = line.size();
    if (run < 3) continue;
    if (open.empty()) {
      if (mark == '`' && line.find('`', run) != std::string_view::npos) continue;
      open.assign(run, mark);
    } else if (mark == open[0] && run >= open.size() &&
               line.find_first_not_of(" \t\r", run) == std::string_view::npos) {
      open.clear();
    }
  }
  std::string out(text);
  if (!open.empty()) {
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += open + "\n";
  }
  return out;
}

std::string PrettyArguments(const std::string& arguments_json) {
  Json value = internal::ArgumentsToJsonValue(arguments_json);
  if (value.is_string()) return arguments_json;
  return value.dump(2, ' ', false, Json::error_handler_t::replace);
}

// object[key] when it is a string, else "" (todos are written by the session, but never trusted).
std::string StringField(const Json& object, const char* key) {
  if (!object.is_object()) return std::string();
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

void AppendTodos(const std::string& todos_json, std::string& out) {
  Json todos = Json::parse(todos_json, nullptr, /*allow_exceptions=*/false);
  if (todos.is_discarded() || (todos.is_array() && todos.empty()) || todos.is_null()) return;
  out += "## Todo list\n\n";
  if (!todos.is_array()) {
    out += Fenced(todos.dump(2, ' ', false, Json::error_handler_t::replace), "json") + "\n";
    return;
  }
  for (const Json& item : todos) {
    if (item.is_string()) {
      out += "- [ ] " + item.get<std::string>() + "\n";
      continue;
    }
    // As the session writes them ({"text", "status"}); an item under "content" is read too.
    std::string content = StringField(item, "text");
    if (content.empty()) content = StringField(item, "content");
    if (content.empty()) content = item.dump(-1, ' ', false, Json::error_handler_t::replace);
    switch (ParseTodoStatus(StringField(item, "status"))) {
      case TodoStatus::kCompleted:
        out += "- [x] " + content + "\n";
        break;
      case TodoStatus::kInProgress:
        out += "- [ ] " + content + " (in progress)\n";
        break;
      case TodoStatus::kPending:
        out += "- [ ] " + content + "\n";
        break;
    }
  }
  out += "\n";
}

void AppendPart(const llm::ContentPart& part, std::string& out) {
  switch (part.kind) {
    case Kind::kText:
      out += WithFencesClosed(part.text);
      if (!part.text.empty() && out.back() != '\n') out += '\n';
      break;
    case Kind::kReasoning:
      if (part.text.empty() && !part.redacted) break;  // Only its encrypted form.
      out += "<details>\n<summary>Reasoning</summary>\n\n" +
             (part.redacted ? "(redacted by the provider)" : WithFencesClosed(part.text));
      if (out.back() != '\n') out += '\n';
      out += "\n</details>\n";
      break;
    case Kind::kToolCall:
      out += "Tool call `" + part.tool_name + "` (`" + part.tool_call_id + "`):\n\n" +
             Fenced(PrettyArguments(part.arguments_json), "json");
      break;
    case Kind::kToolResult:
      out += "Tool result";
      if (!part.tool_name.empty()) out += " of `" + part.tool_name + "`";
      out += " for `" + part.tool_call_id + "`" + (part.is_error ? " (error)" : "") + ":\n\n" +
             Fenced(part.text, "");
      break;
    case Kind::kImage:
      out += "[image: " + part.media_type + ", " + std::to_string(part.data_base64.size()) +
             " bytes of base64]\n";
      break;
  }
}

// An assistant's text under the XML tool protocol: its tool calls fenced as XML (Markdown
// renderers would swallow the tags), the prose around them as it is.
void AppendXmlText(const std::string& text, std::string& out) {
  XmlToolParser parser(AllXmlSpecs());
  std::vector<XmlEvent> events;
  if (!parser.Feed(text, events).ok()) {  // Over the parser's limit: as it is.
    out += text;
    return;
  }
  parser.Finish(events);
  for (const XmlEvent& event : events) {
    if (event.type == XmlEventType::kText) {
      out += WithFencesClosed(event.text);
    } else if (event.type == XmlEventType::kToolComplete) {
      if (!out.empty() && out.back() != '\n') out += '\n';
      out += "\nTool call `" + event.call.name + "`:\n\n" + Fenced(event.call.raw, "xml");
    }
  }
  if (!out.empty() && out.back() != '\n') out += '\n';
}

void AppendMessage(const HistoryMessage& message, bool is_xml, std::string& out) {
  out += "## " + std::to_string(message.seq) + ". ";
  out += message.message.role == llm::Role::kUser ? "User" : "Assistant";
  if (message.is_summary) out += " — summary of earlier conversation";
  if (message.is_truncation_marker) out += " — truncation marker";
  if (message.time_ms != 0) out += " · " + FormatTime(message.time_ms);
  out += "\n\n";
  if (message.condensed_by != 0) {
    out += "> Hidden from the model: condensed into message " +
           std::to_string(message.condensed_by) + ".\n\n";
  }
  if (message.truncated_by != 0) {
    out += "> Hidden from the model: dropped by truncation marker " +
           std::to_string(message.truncated_by) + ".\n\n";
  }
  for (size_t i = 0; i < message.message.parts.size(); ++i) {
    if (i > 0) out += "\n";
    const llm::ContentPart& part = message.message.parts[i];
    if (is_xml && message.message.role == llm::Role::kAssistant && part.kind == Kind::kText) {
      AppendXmlText(part.text, out);
    } else {
      AppendPart(part, out);
    }
  }
  out += "\n";
}

// The engine's notices in `events` (see kTurnEndEvent), each with the seq of the last message
// stored before it (0: before any).
std::vector<std::pair<int64_t, std::string>> FindNotices(const std::vector<StoredEvent>& events) {
  std::vector<std::pair<int64_t, std::string>> notices;
  int64_t last_message = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    const StoredEvent& event = events[i];
    if (event.kind == kMessageEvent) {
      Json payload = Json::parse(event.payload_json, nullptr, /*allow_exceptions=*/false);
      if (payload.is_object() && payload["seq"].is_number_integer()) {
        last_message = payload["seq"].get<int64_t>();
      }
    } else if (event.kind == kTurnErrorEvent) {
      Json payload = Json::parse(event.payload_json, nullptr, /*allow_exceptions=*/false);
      if (payload.is_object() && payload["message"].is_string()) {
        notices.emplace_back(last_message,
                             "The turn failed: " + payload["message"].get<std::string>());
      }
    } else if (event.kind == kTurnEndEvent && i > 0 &&
               events[i - 1].kind == UpdateKindName(SessionUpdate::Kind::kAgentMessageChunk)) {
      Result<SessionUpdate> said = SessionUpdateFromAcpJson(events[i - 1].payload_json);
      size_t start = said.ok() ? said->text.find_first_not_of("\r\n") : std::string::npos;
      if (start != std::string::npos) notices.emplace_back(last_message, said->text.substr(start));
    }
  }
  return notices;
}

// A notice as a quote, each of its lines marked.
void AppendNotice(std::string_view text, std::string& out) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  out += "> **lapce-ai:** ";
  for (char c : text) {
    out += c;
    if (c == '\n') out += "> ";
  }
  out += "\n\n";
}

Json EmbeddedJson(const std::string& text) {
  Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return Json(text);
  return value;
}

}  // namespace

std::string ExportMarkdown(const SessionRecord& record, const std::vector<HistoryMessage>& messages,
                           const std::vector<StoredEvent>& events, std::string_view status) {
  std::string out =
      "# " +
      (record.title.empty() ? "Session " + record.id : internal::MarkdownTableCell(record.title)) +
      "\n\n";
  out += "| Field | Value |\n|---|---|\n";
  auto row = [&out](std::string_view name, std::string_view value) {
    out += "| " + std::string(name) + " | " + internal::MarkdownTableCell(value) + " |\n";
  };
  auto code = [](std::string_view text) { return "`" + std::string(text) + "`"; };
  row("Session", code(record.id));
  if (!record.parent_id.empty()) row("Parent session", code(record.parent_id));
  if (!record.workspace.empty()) row("Workspace", code(record.workspace));
  if (!record.mode.empty()) row("Mode", record.mode);
  if (!record.profile.empty()) row("Profile", record.profile);
  if (!record.model.empty()) row("Model", record.model);
  row("Tool protocol", ToolProtocolName(record.tool_protocol));
  row("Status", std::string(status.empty() ? SessionStatusName(record.status) : status));
  row("Created", FormatTime(record.created_ms));
  row("Updated", FormatTime(record.updated_ms));
  const SessionTotals& totals = record.totals;
  row("Tokens", std::to_string(totals.input_tokens) + " in, " +
                    std::to_string(totals.output_tokens) + " out");
  row("Cache", std::to_string(totals.cache_read_tokens) + " read, " +
                   std::to_string(totals.cache_write_tokens) + " written");
  char cost[32];
  std::snprintf(cost, sizeof(cost), "$%.4f", totals.cost_usd);
  row("Cost", cost);
  row("Requests", std::to_string(totals.requests));
  out += "\n";
  AppendTodos(record.todos_json, out);
  const bool is_xml = record.tool_protocol == ToolProtocol::kXml;
  const std::vector<std::pair<int64_t, std::string>> notices = FindNotices(events);
  auto notice = notices.begin();
  auto notices_until = [&](int64_t seq) {
    for (; notice != notices.end() && notice->first <= seq; ++notice) {
      AppendNotice(notice->second, out);
    }
  };
  notices_until(0);
  for (const HistoryMessage& message : messages) {
    AppendMessage(message, is_xml, out);
    notices_until(message.seq);
  }
  notices_until(INT64_MAX);
  // Read in a terminal (`cat`, `less -R`, `sessions show | …`) and by grep: what the model, a
  // command or a file said cannot move the cursor or hide text (Visible). CRLF text ends its
  // lines as the rest does.
  std::string lines;
  lines.reserve(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] != '\r' || i + 1 == out.size() || out[i + 1] != '\n') lines += out[i];
  }
  return Visible(lines);
}

std::string ExportJson(const SessionRecord& record, const std::vector<HistoryMessage>& messages,
                       const std::vector<StoredEvent>& events, std::string_view status) {
  Json session = Json::object();
  session["id"] = record.id;
  session["parent_id"] = record.parent_id.empty() ? Json(nullptr) : Json(record.parent_id);
  session["title"] = record.title;
  session["workspace"] = record.workspace;
  session["mode"] = record.mode;
  session["profile"] = record.profile;
  session["model"] = record.model;
  session["tool_protocol"] = ToolProtocolName(record.tool_protocol);
  session["status"] = status.empty() ? SessionStatusName(record.status) : status;
  session["created_ms"] = record.created_ms;
  session["updated_ms"] = record.updated_ms;
  session["tokens_in"] = record.totals.input_tokens;
  session["tokens_out"] = record.totals.output_tokens;
  session["cache_reads"] = record.totals.cache_read_tokens;
  session["cache_writes"] = record.totals.cache_write_tokens;
  session["cost_usd"] = record.totals.cost_usd;
  session["requests"] = record.totals.requests;
  session["todos"] = EmbeddedJson(record.todos_json);
  session["extra"] = EmbeddedJson(record.extra_json);

  Json message_list = Json::array();
  for (const HistoryMessage& message : messages) {
    Json item = Json::object();
    item["seq"] = message.seq;
    item["time_ms"] = message.time_ms;
    item["token_estimate"] = message.token_estimate;
    item["is_summary"] = message.is_summary;
    item["is_truncation_marker"] = message.is_truncation_marker;
    item["condensed_by"] = message.condensed_by;
    item["truncated_by"] = message.truncated_by;
    item["message"] = internal::MessageToJsonValue(message.message);
    message_list.push_back(std::move(item));
  }
  Json event_list = Json::array();
  for (const StoredEvent& event : events) {
    event_list.push_back(Json{{"seq", event.seq},
                              {"time_ms", event.time_ms},
                              {"kind", event.kind},
                              {"payload", EmbeddedJson(event.payload_json)}});
  }
  Json document = Json::object();
  document["format"] = "lapce-ai-session";
  document["version"] = 1;
  document["session"] = std::move(session);
  document["messages"] = std::move(message_list);
  document["events"] = std::move(event_list);
  return document.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace lai::agent
