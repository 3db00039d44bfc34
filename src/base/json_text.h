// JSON string literals written directly, for hot paths where a JSON library would cost more than
// the work around it. Free functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace lai {

// Appends `text` as a JSON string literal, quotes included: '"', '\\' and control bytes are
// escaped (\n, \t, … or \u00XX), every other byte is copied as it is, eight bytes per step where
// nothing needs escaping. The result is valid JSON when `text` is valid UTF-8; text that may not
// be goes through llm::AppendJsonString, which checks first.
void AppendJsonEscaped(std::string& out, std::string_view text);

// `value` rounded to 12 significant digits, so that a JSON writer printing the shortest form
// writes 0.000925 rather than 0.0009249999999999999 (a cost summed from prices carries float
// noise no one should see).
double RoundForJson(double value);

}  // namespace lai
