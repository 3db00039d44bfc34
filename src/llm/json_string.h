// JSON text written directly, for hot paths where building a JSON tree would cost more than the
// work around it (a streamed chunk's frame, a request body). Free functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace lai::llm {

// Appends `text` as a JSON string literal, quotes included (base's AppendJsonEscaped), after
// checking it is UTF-8: invalid UTF-8 becomes U+FFFD, as nlohmann's error_handler_t::replace
// would write it.
void AppendJsonString(std::string& out, std::string_view text);

}  // namespace lai::llm
