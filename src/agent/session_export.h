// `sessions export`: a stored session as Markdown for people or as one JSON document for tools.
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "agent/history.h"
#include "agent/store.h"

namespace lai::agent {

// Title, a metadata table, the todo list, then every message (hidden ones too, marked): user and
// assistant headings, text, reasoning in a <details> block, tool calls and results fenced. The
// engine's own notices (a fallback answered, a limit stopped the turn, why a turn failed), found in
// `events`, are quoted after the message they followed. `status`: as shown
// (SessionStore::ShownStatus); "" = the record's.
std::string ExportMarkdown(const SessionRecord& record, const std::vector<HistoryMessage>& messages,
                           const std::vector<StoredEvent>& events, std::string_view status = {});

// {"format":"lapce-ai-session","version":1,"session":{…},"messages":[…],"events":[…]}, indented.
// Messages use MessageToJson's shape; todos, extra and event payloads are embedded as JSON.
std::string ExportJson(const SessionRecord& record, const std::vector<HistoryMessage>& messages,
                       const std::vector<StoredEvent>& events, std::string_view status = {});

}  // namespace lai::agent
