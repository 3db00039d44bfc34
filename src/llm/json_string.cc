#include "llm/json_string.h"

#include <simdjson.h>

#include <nlohmann/json.hpp>

#include "base/json_text.h"

namespace lai::llm {

void AppendJsonString(std::string& out, std::string_view text) {
  if (!simdjson::validate_utf8(text.data(), text.size())) {
    // Invalid UTF-8 (from a provider or a file): U+FFFD in place of each bad sequence.
    out += nlohmann::json(std::string(text))
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return;
  }
  AppendJsonEscaped(out, text);
}

}  // namespace lai::llm
