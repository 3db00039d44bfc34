// llm::Message <-> JSON text in Anthropic-like shape, as the session store keeps messages and as
// exports show them. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "llm/types.h"

namespace lai::agent {

// {"role":"user"|"assistant","content":[part, ...]} with parts
//   {"type":"text","text":…}
//   {"type":"thinking","thinking":…,"signature":…}          (signature only when non-empty)
//   {"type":"tool_use","id":…,"name":…,"input":{…}}          (input is the parsed arguments
//       object; arguments that are not a JSON object are kept as the raw string)
//   {"type":"tool_result","tool_use_id":…,"content":…,"is_error":…,"name":…}  (name when set)
//   {"type":"image","source":{"type":"base64","media_type":…,"data":…}}
// Compact, one line. Tool arguments are re-serialised compactly with their key order kept, so
// whitespace inside arguments_json does not survive a round trip; everything else does.
std::string MessageToJson(const llm::Message& message);

// The inverse. Also accepts "content" as a plain string (one text part). Errors:
// kInvalidArgument naming the offending field, e.g. "message JSON: content[2].tool_use_id: expected
// a string".
Result<llm::Message> MessageFromJson(std::string_view json);

// Whether `text` is exactly one JSON value (RFC 8259: structure, strings, numbers, UTF-8), as
// nlohmann::json::accept judges it, at a tenth of its cost: simdjson validates, and what simdjson
// refuses (invalid text, or integers wider than 64 bits) goes to nlohmann for the verdict.
bool IsValidJson(std::string_view text);

}  // namespace lai::agent
