// The JSON-value forms behind message_json.h, for code that embeds messages in larger documents
// (exports). Includes nlohmann/json: include only from .cc files. Thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "llm/types.h"

namespace lai::agent::internal {

nlohmann::ordered_json MessageToJsonValue(const llm::Message& message);
Result<llm::Message> MessageFromJsonValue(const nlohmann::ordered_json& value);

// Tool-call arguments as a JSON value: the parsed object, or the raw string when the text is not
// a JSON object.
nlohmann::ordered_json ArgumentsToJsonValue(const std::string& arguments_json);

}  // namespace lai::agent::internal
