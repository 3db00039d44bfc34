#include "base/config.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

// toml++ reports syntax errors by throwing toml::parse_error. Debian ships it as a shared library
// built with exceptions, so TOML_EXCEPTIONS=0 would not link; ParseToml catches them instead.
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "base/check.h"
#include "base/log.h"

namespace lai {
namespace {

// ---------------------------------------------------------------------------------------------
// The key table: every source (file, environment, overrides) is validated against it.

using StringField = std::string& (*)(Config&);
using Uint32Field = uint32_t& (*)(Config&);
using Uint64Field = uint64_t& (*)(Config&);
using Int32Field = int32_t& (*)(Config&);
using DoubleField = double& (*)(Config&);
using Field = std::variant<StringField, Uint32Field, Uint64Field, Int32Field, DoubleField>;

struct AnyString {};
struct StringCheck {
  std::string_view expected;  // Completes "expected ...".
  bool (*is_valid)(std::string_view value);
};
struct OneOf {
  std::span<const std::string_view> choices;
};
struct IntegerRange {
  int64_t min;
  int64_t max;
  bool is_power_of_two = false;
};
struct NumberRange {  // For DoubleField keys.
  double min;
  double max;
};
using Rule = std::variant<AnyString, StringCheck, OneOf, IntegerRange, NumberRange>;

struct KeyDescriptor {
  std::string_view name;  // "<section>.<field>"; the section contains no '_'.
  Field field;
  Rule rule;  // IntegerRange for integer fields, NumberRange for double fields, any other rule
              // for string fields.
  std::string_view help;
};

bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAsciiAlnum(char c) {
  return IsAsciiDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool IsAsciiHexDigit(char c) {
  return IsAsciiDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool IsAbsolutePathOrEmpty(std::string_view value) { return value.empty() || value.front() == '/'; }

bool IsFileName(std::string_view value) {
  return !value.empty() && value != "." && value != ".." &&
         value.find('/') == std::string_view::npos;
}

// "host:port", "[ipv6]:port" or empty.
bool IsHostPortOrEmpty(std::string_view value) {
  if (value.empty()) return true;
  size_t colon = value.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = value.substr(0, colon);
  std::string_view port = value.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    std::string_view address = host.substr(1, host.size() - 2);
    if (address.find(':') == std::string_view::npos) return false;
    if (!std::all_of(address.begin(), address.end(),
                     [](char c) { return IsAsciiHexDigit(c) || c == ':' || c == '.'; })) {
      return false;
    }
  } else if (host.empty() || !std::all_of(host.begin(), host.end(), [](char c) {
               return IsAsciiAlnum(c) || c == '.' || c == '-' || c == '_';
             })) {
    return false;
  }
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), IsAsciiDigit)) {
    return false;
  }
  int number = 0;
  std::from_chars(port.data(), port.data() + port.size(), number);
  return number >= 1 && number <= 65535;
}

constexpr std::string_view kToolProtocols[] = {"auto", "native", "xml"};
constexpr std::string_view kOnOff[] = {"on", "off"};
constexpr std::string_view kApprovalCategories[] = {
    "read",   "read_outside", "write",       "write_outside", "write_protected",
    "delete", "execute",      "mode_switch", "subtasks",      "mcp",
    "all"};

// "read,write" with every item a known approval category (or empty).
bool IsApprovalList(std::string_view value) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (std::find(std::begin(kApprovalCategories), std::end(kApprovalCategories), item) ==
        std::end(kApprovalCategories)) {
      return false;
    }
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return true;
}

// Profile names: letters, digits, '-' and '_'.
bool IsProfileName(std::string_view value) {
  return !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
    return IsAsciiAlnum(c) || c == '-' || c == '_';
  });
}

bool IsProfileNameOrEmpty(std::string_view value) { return value.empty() || IsProfileName(value); }

// The dotted name and an accessor for the field it names, so the two cannot disagree.
// clang-format off
#define LAI_CONFIG_FIELD(path) #path, [](Config& c) -> auto& { return c.path; }
// clang-format on

// Adding a key: add the field to Config and one entry here.
constexpr KeyDescriptor kKeys[] = {
    {LAI_CONFIG_FIELD(log.level), OneOf{log::kLevelNames}, "Minimum severity written to the log."},
    {LAI_CONFIG_FIELD(log.file), AnyString{},
     "Also append the log to this file (created 0600); empty = stderr only."},
    {LAI_CONFIG_FIELD(ipc.runtime_dir),
     StringCheck{"an absolute path or empty", IsAbsolutePathOrEmpty},
     "Directory for sockets and shared memory; empty = $XDG_RUNTIME_DIR/lapce-ai, else "
     "/tmp/lapce-ai-<uid>."},
    {LAI_CONFIG_FIELD(ipc.socket_name), StringCheck{"a file name without '/'", IsFileName},
     "Engine socket file name inside ipc.runtime_dir."},
    {LAI_CONFIG_FIELD(ipc.ring_bytes), IntegerRange{256, 1 << 20, /*is_power_of_two=*/true},
     "Data bytes of each per-direction shared-memory ring."},
    {LAI_CONFIG_FIELD(ipc.max_message_bytes), IntegerRange{1024, 1 << 30},
     "Largest message accepted, in bytes."},
    {LAI_CONFIG_FIELD(ipc.connect_timeout_ms), IntegerRange{1, 600000},
     "Time allowed to connect to the engine, in milliseconds."},
    {LAI_CONFIG_FIELD(ipc.request_timeout_ms), IntegerRange{1, 3600000},
     "Time allowed for one request, in milliseconds."},
    {LAI_CONFIG_FIELD(server.workers), IntegerRange{1, 64}, "Worker threads serving requests."},
    {LAI_CONFIG_FIELD(server.max_connections), IntegerRange{1, 100000},
     "Client connections served at the same time."},
    {LAI_CONFIG_FIELD(server.metrics_addr),
     StringCheck{"host:port with a port between 1 and 65535, or empty", IsHostPortOrEmpty},
     "Listen address of the metrics endpoint; empty disables it."},
    {LAI_CONFIG_FIELD(tools.read_line_limit), IntegerRange{-1, 1000000},
     "read_file: lines returned per file before a truncation notice; -1 = the whole file."},
    {LAI_CONFIG_FIELD(tools.read_byte_limit), IntegerRange{1024, 1 << 30},
     "read_file: content bytes one call returns at most (less when the model's context has "
     "less room), then a notice."},
    {LAI_CONFIG_FIELD(tools.diff_fuzzy_threshold), NumberRange{0.5, 1.0},
     "apply_diff: similarity a fuzzy match needs; 1.0 = exact matches only."},
    {LAI_CONFIG_FIELD(tools.diff_buffer_lines), IntegerRange{0, 10000},
     "apply_diff: lines searched either side of a :start_line: hint."},
    {LAI_CONFIG_FIELD(tools.list_files_limit), IntegerRange{1, 100000},
     "list_files: entries listed before the truncation notice."},
    {LAI_CONFIG_FIELD(tools.search_max_results), IntegerRange{1, 100000},
     "search_files: matches shown before the truncation notice."},
    {LAI_CONFIG_FIELD(tools.command_timeout_seconds), IntegerRange{0, 86400},
     "execute_command: seconds before the command's process group is killed; 0 = no timeout."},
    {LAI_CONFIG_FIELD(tools.command_output_line_limit), IntegerRange{1, 1000000},
     "execute_command: output lines kept (first 20% and last 80%) beyond this."},
    {LAI_CONFIG_FIELD(llm.default_profile),
     StringCheck{"a profile name (letters, digits, '-', '_') or empty", IsProfileNameOrEmpty},
     "Profile used when a request names none; empty = the first [profiles.<name>] table."},
    {LAI_CONFIG_FIELD(llm.max_connections_per_host), IntegerRange{1, 10000},
     "HTTP connections open at once to one provider host; further requests wait for one. An "
     "HTTP/1.1 provider (Ollama, vLLM) needs one per concurrent stream."},
    {LAI_CONFIG_FIELD(agent.mode), StringCheck{"a mode slug", IsProfileName},
     "Mode of new sessions: code, architect, ask, debug, orchestrator or a custom mode."},
    {LAI_CONFIG_FIELD(agent.tool_protocol), OneOf{kToolProtocols},
     "How models call tools: native function calls, XML tags in text, or auto (the model "
     "catalog decides)."},
    {LAI_CONFIG_FIELD(agent.mistake_limit), IntegerRange{0, 100},
     "Consecutive model mistakes before the user is asked how to go on; 0 = unlimited."},
    {LAI_CONFIG_FIELD(agent.max_requests_per_turn), IntegerRange{1, 100000},
     "Model requests one prompt may make before the turn stops."},
    {LAI_CONFIG_FIELD(agent.condense_threshold_percent), IntegerRange{5, 100},
     "Condense the conversation when it fills this share of the context window."},
    {LAI_CONFIG_FIELD(agent.auto_condense), OneOf{kOnOff},
     "Summarise older turns with the model when the context is full (else truncate)."},
    {LAI_CONFIG_FIELD(agent.custom_instructions), AnyString{},
     "Instructions added to the system prompt of every mode."},
    {LAI_CONFIG_FIELD(approvals.auto_approve),
     StringCheck{"comma-separated categories: read, read_outside, write, write_outside, "
                 "write_protected, delete, execute, mode_switch, subtasks, mcp or all",
                 IsApprovalList},
     "Tool categories approved without asking."},
    {LAI_CONFIG_FIELD(approvals.allowed_commands), AnyString{},
     "Comma-separated command prefixes run without asking when execute is auto-approved; * = "
     "any."},
    {LAI_CONFIG_FIELD(approvals.denied_commands), AnyString{},
     "Comma-separated command prefixes never run (the longer matching prefix wins)."},
    {LAI_CONFIG_FIELD(approvals.max_requests), IntegerRange{0, 1000000},
     "Model requests per task before asking to continue; 0 = unlimited."},
    {LAI_CONFIG_FIELD(approvals.max_cost_usd), NumberRange{0, 1000000},
     "Task cost in USD before asking to continue; 0 = unlimited."},
};

#undef LAI_CONFIG_FIELD

// ---------------------------------------------------------------------------------------------
// Key lookup and validation.

std::string_view SectionOf(std::string_view name) { return name.substr(0, name.find('.')); }

std::string_view LeafOf(std::string_view name) {
  size_t dot = name.rfind('.');
  return dot == std::string_view::npos ? name : name.substr(dot + 1);
}

bool IsInteger(const KeyDescriptor& key) {
  return !std::holds_alternative<StringField>(key.field) &&
         !std::holds_alternative<DoubleField>(key.field);
}
bool IsNumber(const KeyDescriptor& key) { return std::holds_alternative<DoubleField>(key.field); }

const KeyDescriptor* FindKey(std::string_view name) {
  for (const KeyDescriptor& key : kKeys) {
    if (key.name == name) return &key;
  }
  return nullptr;
}

std::vector<std::string_view> Sections() {
  std::vector<std::string_view> sections;
  for (const KeyDescriptor& key : kKeys) {
    std::string_view section = SectionOf(key.name);
    if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
      sections.push_back(section);
    }
  }
  return sections;
}

bool IsSection(std::string_view name) {
  std::vector<std::string_view> sections = Sections();
  return std::find(sections.begin(), sections.end(), name) != sections.end();
}

template <typename Range>
std::string Join(const Range& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

std::string Quote(std::string_view text) {
  std::string out = "'";
  out += text;
  out += "'";
  return out;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" when a key is close (same field name, or at most two edits away),
// else " (known keys: ...)" listing the keys of the named section, or all keys.
std::string UnknownKeyHint(std::string_view name) {
  const KeyDescriptor* best = nullptr;
  for (const KeyDescriptor& key : kKeys) {
    if (LeafOf(key.name) == LeafOf(name)) {
      best = &key;
      break;
    }
  }
  size_t best_distance = 3;
  for (const KeyDescriptor& key : kKeys) {
    if (best != nullptr) break;
    size_t distance = EditDistance(name, key.name);
    if (distance < best_distance) {
      best = &key;
      best_distance = distance;
    }
  }
  if (best != nullptr) return " (did you mean " + Quote(best->name) + "?)";
  bool is_known_section = IsSection(SectionOf(name));
  std::vector<std::string_view> names;
  for (const KeyDescriptor& key : kKeys) {
    if (!is_known_section || SectionOf(key.name) == SectionOf(name)) names.push_back(key.name);
  }
  return " (known keys: " + Join(names) + ")";
}

// Completes "expected ...": "a power of two between 256 and 1048576".
std::string Expected(const KeyDescriptor& key) {
  if (const auto* range = std::get_if<IntegerRange>(&key.rule)) {
    return fmt::format("{} between {} and {}",
                       range->is_power_of_two ? "a power of two" : "an integer", range->min,
                       range->max);
  }
  if (const auto* number = std::get_if<NumberRange>(&key.rule)) {
    return fmt::format("a number between {} and {}", number->min, number->max);
  }
  if (const auto* one_of = std::get_if<OneOf>(&key.rule)) return "one of " + Join(one_of->choices);
  if (const auto* check = std::get_if<StringCheck>(&key.rule)) return std::string(check->expected);
  return "a string";
}

Error InvalidValue(const KeyDescriptor& key, std::string_view got) {
  return Error(ErrorCode::kInvalidArgument,
               "expected " + Expected(key) + ", got " + std::string(got));
}

// Validates and stores; errors are "expected ..., got ..." without location.
Status SetInteger(const KeyDescriptor& key, Config& config, int64_t value) {
  const auto* range = std::get_if<IntegerRange>(&key.rule);
  LAI_CHECK(range != nullptr) << key.name;
  bool is_valid = value >= range->min && value <= range->max &&
                  (!range->is_power_of_two || (value & (value - 1)) == 0);
  if (!is_valid) return InvalidValue(key, std::to_string(value));
  if (const auto* field = std::get_if<Uint32Field>(&key.field)) {
    (*field)(config) = static_cast<uint32_t>(value);
  } else if (const auto* wide_field = std::get_if<Uint64Field>(&key.field)) {
    (*wide_field)(config) = static_cast<uint64_t>(value);
  } else if (const auto* signed_field = std::get_if<Int32Field>(&key.field)) {
    (*signed_field)(config) = static_cast<int32_t>(value);
  } else {
    LAI_CHECK(false) << key.name << " is not an integer key";
  }
  return OkStatus();
}

Status SetString(const KeyDescriptor& key, Config& config, std::string_view value) {
  const auto* field = std::get_if<StringField>(&key.field);
  LAI_CHECK(field != nullptr) << key.name << " is not a string key";
  bool is_valid = true;
  if (const auto* one_of = std::get_if<OneOf>(&key.rule)) {
    is_valid =
        std::find(one_of->choices.begin(), one_of->choices.end(), value) != one_of->choices.end();
  } else if (const auto* check = std::get_if<StringCheck>(&key.rule)) {
    is_valid = check->is_valid(value);
  }
  if (!is_valid) return InvalidValue(key, Quote(value));
  (*field)(config) = std::string(value);
  return OkStatus();
}

Status SetNumber(const KeyDescriptor& key, Config& config, double value) {
  const auto* range = std::get_if<NumberRange>(&key.rule);
  const auto* field = std::get_if<DoubleField>(&key.field);
  LAI_CHECK(range != nullptr && field != nullptr) << key.name << " is not a number key";
  if (!(value >= range->min && value <= range->max)) {
    return InvalidValue(key, fmt::format("{}", value));
  }
  (*field)(config) = value;
  return OkStatus();
}

// For the environment and overrides: numbers in decimal, strings verbatim.
Status SetFromText(const KeyDescriptor& key, Config& config, std::string_view text) {
  if (IsNumber(key)) {
    double number = 0;
    const char* text_end = text.data() + text.size();
    auto [number_end, number_error] = std::from_chars(text.data(), text_end, number);
    if (text.empty() || number_error != std::errc() || number_end != text_end) {
      return InvalidValue(key, Quote(text));
    }
    return SetNumber(key, config, number);
  }
  if (!IsInteger(key)) return SetString(key, config, text);
  int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [parsed_end, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || parsed_end != end) {
    return InvalidValue(key, Quote(text));
  }
  return SetInteger(key, config, value);
}

int64_t GetInteger(const KeyDescriptor& key, Config& config) {
  if (const auto* field = std::get_if<Uint32Field>(&key.field)) return (*field)(config);
  if (const auto* signed_field = std::get_if<Int32Field>(&key.field))
    return (*signed_field)(config);
  return static_cast<int64_t>((*std::get_if<Uint64Field>(&key.field))(config));
}

// The table is code; a broken entry is a bug, caught the first time it is used.
void CheckKeyTable() {
  Config defaults;
  for (size_t i = 0; i < std::size(kKeys); ++i) {
    const KeyDescriptor& key = kKeys[i];
    size_t dot = key.name.find('.');
    LAI_CHECK(dot != std::string_view::npos && dot > 0 && dot + 1 < key.name.size() &&
              key.name.find('.', dot + 1) == std::string_view::npos)
        << key.name << ": expected <section>.<field>";
    LAI_CHECK(SectionOf(key.name).find('_') == std::string_view::npos)
        << key.name << ": '_' in a section name makes environment names ambiguous";
    for (size_t j = 0; j < i; ++j) LAI_CHECK(kKeys[j].name != key.name) << "duplicate " << key.name;
    const auto* range = std::get_if<IntegerRange>(&key.rule);
    LAI_CHECK(IsInteger(key) == (range != nullptr)) << key.name << ": rule does not fit the field";
    const auto* number_range = std::get_if<NumberRange>(&key.rule);
    LAI_CHECK(IsNumber(key) == (number_range != nullptr))
        << key.name << ": rule does not fit the field";
    Config scratch;
    Status status;
    if (number_range != nullptr) {
      LAI_CHECK(number_range->min <= number_range->max) << key.name << ": empty range";
      status = SetNumber(key, scratch, (*std::get_if<DoubleField>(&key.field))(defaults));
    } else if (range != nullptr) {
      bool is_signed = std::holds_alternative<Int32Field>(key.field);
      int64_t field_min = is_signed ? int64_t{std::numeric_limits<int32_t>::min()} : 0;
      int64_t field_max = std::holds_alternative<Uint32Field>(key.field)
                              ? int64_t{std::numeric_limits<uint32_t>::max()}
                          : is_signed ? int64_t{std::numeric_limits<int32_t>::max()}
                                      : std::numeric_limits<int64_t>::max();
      LAI_CHECK(range->min >= field_min && range->min <= range->max && range->max <= field_max)
          << key.name << ": range does not fit the field";
      status = SetInteger(key, scratch, GetInteger(key, defaults));
    } else {
      status = SetString(key, scratch, (*std::get_if<StringField>(&key.field))(defaults));
    }
    LAI_CHECK(status.ok()) << key.name << ": the default is invalid: " << status.ToString();
  }
}

void EnsureKeyTableChecked() {
  static const bool is_checked = (CheckKeyTable(), true);
  (void)is_checked;
}

// ---------------------------------------------------------------------------------------------
// Environment.

constexpr std::string_view kEnvPrefix = "LAPCE_AI_";

// Value of `name` in a NULL-terminated "NAME=value" array; empty when unset.
std::string_view GetEnv(const char* const* environment, std::string_view name) {
  for (const char* const* entry = environment; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    if (text.size() > name.size() && text.starts_with(name) && text[name.size()] == '=') {
      return text.substr(name.size() + 1);
    }
  }
  return {};
}

std::string ToUpper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c == '.') c = '_';
  }
  return out;
}

std::string ToLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string EnvName(const KeyDescriptor& key) {
  return std::string(kEnvPrefix) + ToUpper(key.name);
}

std::string DefaultConfigPathFrom(const char* const* environment) {
  std::string_view config_home = GetEnv(environment, "XDG_CONFIG_HOME");
  if (!config_home.empty() && config_home.front() == '/') {
    return std::string(config_home) + "/lapce-ai/config.toml";
  }
  std::string_view home = GetEnv(environment, "HOME");
  if (!home.empty()) return std::string(home) + "/.config/lapce-ai/config.toml";
  return {};
}

std::string DefaultRuntimeDir(const char* const* environment) {
  std::string_view runtime_dir = GetEnv(environment, "XDG_RUNTIME_DIR");
  if (!runtime_dir.empty() && runtime_dir.front() == '/') {
    return std::string(runtime_dir) + "/lapce-ai";
  }
  return "/tmp/lapce-ai-" + std::to_string(::getuid());
}

Status ApplyEnvironment(const char* const* environment, Config& config) {
  for (const char* const* entry = environment; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    size_t equals = text.find('=');
    if (!text.starts_with(kEnvPrefix) || equals == std::string_view::npos) continue;
    std::string_view variable = text.substr(0, equals);
    std::string context = "environment " + std::string(variable);
    const KeyDescriptor* found = nullptr;
    for (const KeyDescriptor& key : kKeys) {
      if (EnvName(key) == variable) found = &key;
    }
    if (found != nullptr) {
      Status status = SetFromText(*found, config, text.substr(equals + 1));
      if (!status.ok()) return std::move(status).error().WithContext(context);
      continue;
    }
    // Not a key: a typo inside a known section is an error, anything else is not ours.
    std::string_view rest = variable.substr(kEnvPrefix.size());
    for (std::string_view section : Sections()) {
      std::string section_prefix = ToUpper(section) + "_";
      if (!rest.starts_with(section_prefix)) continue;
      std::string name = std::string(section) + "." + ToLower(rest.substr(section_prefix.size()));
      return Error(ErrorCode::kInvalidArgument,
                   context + ": unknown key " + Quote(name) + UnknownKeyHint(name));
    }
  }
  return OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Command-line overrides.

Status ApplyOverrides(const std::vector<std::string>& overrides, Config& config) {
  for (const std::string& entry : overrides) {
    std::string context = "--set " + entry;
    size_t equals = entry.find('=');
    if (equals == std::string::npos || equals == 0) {
      return Error(ErrorCode::kInvalidArgument,
                   context + ": expected key=value, e.g. ipc.ring_bytes=2048");
    }
    std::string_view name = std::string_view(entry).substr(0, equals);
    const KeyDescriptor* key = FindKey(name);
    if (key == nullptr) {
      return Error(ErrorCode::kInvalidArgument,
                   context + ": unknown key " + Quote(name) + UnknownKeyHint(name));
    }
    Status status = SetFromText(*key, config, std::string_view(entry).substr(equals + 1));
    if (!status.ok()) return std::move(status).error().WithContext(context);
  }
  return OkStatus();
}

// ---------------------------------------------------------------------------------------------
// TOML file.

constexpr size_t kMaxConfigFileBytes = 1 << 20;

// kNotFound when the file (or a directory above it) is missing, kIo for other failures.
Result<std::string> ReadConfigFile(const std::string& path) {
  std::string what = "read config " + Quote(path);
  auto file_error = [&what](int err) {
    Error error = ErrnoError(what, err);
    ErrorCode code = err == ENOENT || err == ENOTDIR ? ErrorCode::kNotFound : ErrorCode::kIo;
    return Error(code, error.message());
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return file_error(errno);
  std::string contents;
  char buffer[4096];
  while (true) {
    ssize_t count = ::read(fd, buffer, sizeof buffer);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) {
      int err = errno;
      ::close(fd);
      return file_error(err);
    }
    if (count == 0) break;
    contents.append(buffer, static_cast<size_t>(count));
    if (contents.size() > kMaxConfigFileBytes) {
      ::close(fd);
      return Error(ErrorCode::kInvalidArgument,
                   what + ": larger than " + std::to_string(kMaxConfigFileBytes) + " bytes");
    }
  }
  ::close(fd);
  return contents;
}

Result<toml::table> ParseToml(const std::string& path, std::string_view contents) {
  try {
    return toml::parse(contents, path);
  } catch (const toml::parse_error& e) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("{}:{}:{}: {}", path, e.source().begin.line, e.source().begin.column,
                             e.description()));
  } catch (const std::exception& e) {
    return Error(ErrorCode::kInternal, "parse config " + Quote(path) + ": " + e.what());
  }
}

// "string 'x'", "integer 5", "a table": what a wrong-typed value was.
std::string DescribeNode(const toml::node& node) {
  if (const auto* string = node.as_string()) return "string " + Quote(string->get());
  if (const auto* integer = node.as_integer()) return "integer " + std::to_string(integer->get());
  if (const auto* number = node.as_floating_point()) {
    return fmt::format("floating-point {}", number->get());
  }
  if (const auto* boolean = node.as_boolean()) {
    return boolean->get() ? "boolean true" : "boolean false";
  }
  if (node.is_table()) return "a table";
  if (node.is_array()) return "an array";
  return "a date or time";
}

Status SetFromNode(const KeyDescriptor& key, Config& config, const toml::node& node) {
  if (IsNumber(key)) {
    if (const auto* number = node.as_floating_point()) return SetNumber(key, config, number->get());
    if (const auto* integer = node.as_integer()) {
      return SetNumber(key, config, static_cast<double>(integer->get()));
    }
  } else if (IsInteger(key)) {
    if (const auto* integer = node.as_integer()) return SetInteger(key, config, integer->get());
  } else if (const auto* string = node.as_string()) {
    return SetString(key, config, string->get());
  }
  return InvalidValue(key, DescribeNode(node));
}

// ---------------------------------------------------------------------------------------------
// [profiles.<name>] and [models."<provider>/<id>"]: tables of free names, so outside kKeys.

std::string Where(const std::string& path, const toml::node& node) {
  return fmt::format("{}:{}", path, node.source().begin.line);
}

Error FieldError(const std::string& path, const toml::node& node, std::string_view table,
                 std::string_view field, std::string_view problem) {
  return Error(ErrorCode::kInvalidArgument,
               fmt::format("{}: {}.{}: {}", Where(path, node), table, field, problem));
}

Result<std::string> GetStringField(const std::string& path, const toml::node& node,
                                   std::string_view table, std::string_view field) {
  if (const auto* value = node.as_string()) return value->get();
  return FieldError(path, node, table, field, "expected a string, got " + DescribeNode(node));
}

Result<uint32_t> BoundedInteger(const std::string& path, const toml::node& node,
                                std::string_view table, std::string_view field, int64_t min,
                                int64_t max) {
  const auto* value = node.as_integer();
  if (value == nullptr || value->get() < min || value->get() > max) {
    return FieldError(
        path, node, table, field,
        fmt::format("expected an integer between {} and {}, got {}", min, max, DescribeNode(node)));
  }
  return static_cast<uint32_t>(value->get());
}

bool IsEnvName(std::string_view value) {
  return !value.empty() && !IsAsciiDigit(value.front()) &&
         std::all_of(value.begin(), value.end(), [](char c) {
           return IsAsciiDigit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
         });
}

bool IsHeaderName(std::string_view value) {
  return !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
    return IsAsciiAlnum(c) || c == '-' || c == '_';
  });
}

constexpr std::string_view kProfileFields[] = {"provider",
                                               "model",
                                               "base_url",
                                               "api_key_env",
                                               "api_key",
                                               "headers",
                                               "rate_limit_per_minute",
                                               "fallback",
                                               "connect_timeout_ms",
                                               "first_byte_timeout_ms",
                                               "idle_timeout_ms",
                                               "reasoning_effort",
                                               "thinking_budget_tokens"};

// A key in a file that others may read is a leak waiting to happen; refuse it (at the key's line).
Status CheckKeyFileIsPrivate(const std::string& path, const toml::node& key,
                             std::string_view table) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return ErrnoError("stat config " + Quote(path), errno);
  if ((info.st_mode & 077) == 0) return OkStatus();
  Error error = FieldError(path, key, table, "api_key",
                           fmt::format("the file holds an API key but is readable by group or "
                                       "others (mode {:o}); run `chmod 600 {}`, or move the key "
                                       "to an environment variable named by api_key_env",
                                       info.st_mode & 0777, path));
  return Error(ErrorCode::kPermissionDenied, error.message());
}

Status ApplyProfileField(const std::string& path, std::string_view table, std::string_view field,
                         const toml::node& node, Config::Profile& profile) {
  if (field == "provider" || field == "model" || field == "base_url" || field == "api_key_env" ||
      field == "api_key" || field == "fallback") {
    ASSIGN_OR_RETURN(std::string value, GetStringField(path, node, table, field));
    if (field == "provider") {
      if (value.empty() || !std::all_of(value.begin(), value.end(), [](char c) {
            return IsAsciiDigit(c) || (c >= 'a' && c <= 'z') || c == '-';
          })) {
        return FieldError(path, node, table, field,
                          "expected a provider name such as openai, anthropic, gemini, ollama or "
                          "openrouter, got " +
                              Quote(value));
      }
      profile.provider = value;
    } else if (field == "model") {
      if (value.empty()) return FieldError(path, node, table, field, "must not be empty");
      profile.model = value;
    } else if (field == "base_url") {
      if (std::string problem = BaseUrlProblem(value); !problem.empty()) {
        return FieldError(path, node, table, field, problem);
      }
      while (value.ends_with('/')) value.pop_back();
      profile.base_url = value;
    } else if (field == "api_key_env") {
      if (!IsEnvName(value)) {
        // The value is not echoed: it is often the key itself, pasted here by mistake.
        return FieldError(path, node, table, field,
                          "expected the name of an environment variable such as OPENAI_API_KEY "
                          "(letters, digits and '_'); if the value given is the key itself, put "
                          "it in that variable, or in api_key");
      }
      profile.api_key_env = value;
    } else if (field == "api_key") {
      if (value.empty()) return FieldError(path, node, table, field, "must not be empty");
      RETURN_IF_ERROR(CheckKeyFileIsPrivate(path, node, table));
      profile.api_key = value;
    } else {
      if (!IsProfileName(value)) {
        return FieldError(
            path, node, table, field,
            "expected a profile name (letters, digits, '-', '_'), got " + Quote(value));
      }
      profile.fallback = value;
      profile.fallback_origin = Where(path, node);
    }
    return OkStatus();
  }
  if (field == "headers") {
    const auto* headers = node.as_table();
    // Header values are not echoed in errors: they are often keys.
    if (headers == nullptr) {
      return FieldError(path, node, table, field,
                        "expected a table of strings such as { \"X-Team\" = \"infra\" }, got " +
                            std::string(node.is_string() ? "a string" : DescribeNode(node)));
    }
    for (auto&& [name, value] : *headers) {
      const auto* text = value.as_string();
      std::string header(name.str());
      if (!IsHeaderName(header)) {
        return FieldError(path, value, table, "headers." + header,
                          "a header name takes letters, digits and '-' only");
      }
      if (text == nullptr || text->get().find_first_of("\r\n") != std::string::npos) {
        return FieldError(path, value, table, "headers." + header,
                          text == nullptr ? "expected a string value, got " + DescribeNode(value)
                                          : std::string("the value must be one line"));
      }
      profile.headers.emplace_back(header, text->get());
    }
    return OkStatus();
  }
  if (field == "rate_limit_per_minute") {
    ASSIGN_OR_RETURN(profile.rate_limit_per_minute,
                     BoundedInteger(path, node, table, field, 0, 100000));
    return OkStatus();
  }
  if (field == "connect_timeout_ms") {
    ASSIGN_OR_RETURN(profile.connect_timeout_ms,
                     BoundedInteger(path, node, table, field, 1, 600000));
    return OkStatus();
  }
  if (field == "first_byte_timeout_ms") {
    ASSIGN_OR_RETURN(profile.first_byte_timeout_ms,
                     BoundedInteger(path, node, table, field, 1, 3600000));
    return OkStatus();
  }
  if (field == "idle_timeout_ms") {
    ASSIGN_OR_RETURN(profile.idle_timeout_ms, BoundedInteger(path, node, table, field, 1, 3600000));
    return OkStatus();
  }
  if (field == "reasoning_effort") {
    ASSIGN_OR_RETURN(std::string value, GetStringField(path, node, table, field));
    if (value != "low" && value != "medium" && value != "high") {
      return FieldError(path, node, table, field,
                        "expected \"low\", \"medium\" or \"high\", got " + Quote(value));
    }
    profile.reasoning_effort = value;
    return OkStatus();
  }
  if (field == "thinking_budget_tokens") {
    // Anthropic takes at least 1024; 0 turns a budget off.
    ASSIGN_OR_RETURN(profile.thinking_budget_tokens,
                     BoundedInteger(path, node, table, field, 0, 1000000));
    if (profile.thinking_budget_tokens != 0 && profile.thinking_budget_tokens < 1024) {
      return FieldError(path, node, table, field,
                        "expected 0 (none) or at least 1024 tokens, got " +
                            std::to_string(profile.thinking_budget_tokens));
    }
    return OkStatus();
  }
  return FieldError(path, node, table, field,
                    "unknown field (known fields: " + Join(kProfileFields) + ")");
}

Status ApplyProfiles(const std::string& path, const toml::table& profiles, Config& config) {
  std::vector<std::pair<const toml::key*, const toml::node*>> ordered;
  for (auto&& [name, node] : profiles) ordered.emplace_back(&name, &node);
  std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
    return a.first->source().begin.line < b.first->source().begin.line;
  });
  for (const auto& [name_key, node] : ordered) {
    std::string name(name_key->str());
    std::string table = "profiles." + name;
    const auto* fields = node->as_table();
    if (fields == nullptr) {
      return Error(ErrorCode::kInvalidArgument,
                   fmt::format("{}: {}: expected a table, got {}", Where(path, *node), table,
                               DescribeNode(*node)));
    }
    if (!IsProfileName(name)) {
      return Error(ErrorCode::kInvalidArgument,
                   fmt::format("{}: {}: a profile name may hold only letters, digits, '-' and '_'",
                               Where(path, *node), table));
    }
    Config::Profile profile;
    profile.name = name;
    profile.origin = fmt::format("{}:{}", path, name_key->source().begin.line);
    for (auto&& [field, value] : *fields) {
      RETURN_IF_ERROR(ApplyProfileField(path, table, field.str(), value, profile));
    }
    if (profile.provider.empty() || profile.model.empty()) {
      return Error(ErrorCode::kInvalidArgument,
                   fmt::format("{}: {}: 'provider' and 'model' are required, e.g. provider = "
                               "\"anthropic\" and model = \"claude-sonnet-4-5\"",
                               profile.origin, table));
    }
    config.profiles.push_back(std::move(profile));
  }
  for (const Config::Profile& profile : config.profiles) {
    if (profile.fallback.empty()) continue;
    bool is_known =
        std::any_of(config.profiles.begin(), config.profiles.end(),
                    [&](const Config::Profile& p) { return p.name == profile.fallback; });
    if (!is_known || profile.fallback == profile.name) {
      return Error(ErrorCode::kInvalidArgument,
                   fmt::format("{}: profiles.{}.fallback: {} names {}", profile.fallback_origin,
                               profile.name, Quote(profile.fallback),
                               is_known ? "the profile itself" : "no profile in this file"));
    }
  }
  return OkStatus();
}

constexpr std::string_view kModelFields[] = {
    "context_window",     "max_output_tokens",     "supports_tools", "supports_images",
    "supports_reasoning", "supports_prompt_cache", "input_price",    "output_price",
    "cache_write_price",  "cache_read_price"};

Status ApplyModelOverrides(const std::string& path, const toml::table& models, Config& config) {
  for (auto&& [name_key, node] : models) {
    std::string name(name_key.str());
    std::string table = "models." + Quote(name);
    size_t slash = name.find('/');
    const auto* fields = node.as_table();
    if (slash == std::string::npos || slash == 0 || slash + 1 == name.size() || fields == nullptr) {
      return Error(ErrorCode::kInvalidArgument,
                   fmt::format("{}: {}: expected a table named \"<provider>/<model id>\", e.g. "
                               "[models.\"openai/gpt-4.1\"]",
                               Where(path, node), table));
    }
    Config::ModelOverride model;
    model.provider = name.substr(0, slash);
    model.id = name.substr(slash + 1);
    model.origin = Where(path, node);
    for (auto&& [field_key, value] : *fields) {
      std::string_view field = field_key.str();
      if (field == "context_window" || field == "max_output_tokens") {
        const auto* integer = value.as_integer();
        if (integer == nullptr || integer->get() < 0) {
          return FieldError(path, value, table, field,
                            "expected a non-negative integer, got " + DescribeNode(value));
        }
        (field == "context_window" ? model.context_window : model.max_output_tokens) =
            integer->get();
      } else if (field.starts_with("supports_") &&
                 std::find(std::begin(kModelFields), std::end(kModelFields), field) !=
                     std::end(kModelFields)) {
        const auto* boolean = value.as_boolean();
        if (boolean == nullptr) {
          return FieldError(path, value, table, field,
                            "expected true or false, got " + DescribeNode(value));
        }
        std::optional<bool>& target = field == "supports_tools"       ? model.supports_tools
                                      : field == "supports_images"    ? model.supports_images
                                      : field == "supports_reasoning" ? model.supports_reasoning
                                                                      : model.supports_prompt_cache;
        target = boolean->get();
      } else if (field.ends_with("_price") &&
                 std::find(std::begin(kModelFields), std::end(kModelFields), field) !=
                     std::end(kModelFields)) {
        std::optional<double> price;
        if (const auto* number = value.as_floating_point()) price = number->get();
        if (const auto* integer = value.as_integer()) price = static_cast<double>(integer->get());
        if (!price || *price < 0) {
          return FieldError(path, value, table, field,
                            "expected a non-negative number of USD per million tokens, got " +
                                DescribeNode(value));
        }
        std::optional<double>& target = field == "input_price"         ? model.input_price
                                        : field == "output_price"      ? model.output_price
                                        : field == "cache_write_price" ? model.cache_write_price
                                                                       : model.cache_read_price;
        target = price;
      } else {
        return FieldError(path, value, table, field,
                          "unknown field (known fields: " + Join(kModelFields) + ")");
      }
    }
    config.models.push_back(std::move(model));
  }
  return OkStatus();
}

Status ApplyFile(const std::string& path, const toml::table& root, Config& config) {
  struct Entry {
    toml::source_position position;  // Of the key.
    std::string name;                // Dotted for entries inside a section table.
    const toml::node* value;
  };
  std::vector<Entry> entries;
  for (auto&& [key, node] : root) {
    std::string name(key.str());
    if (name == "profiles" && node.is_table()) {
      RETURN_IF_ERROR(ApplyProfiles(path, *node.as_table(), config));
      continue;
    }
    if (name == "models" && node.is_table()) {
      RETURN_IF_ERROR(ApplyModelOverrides(path, *node.as_table(), config));
      continue;
    }
    if (IsSection(name) && node.is_table()) {
      for (auto&& [field, value] : *node.as_table()) {
        entries.push_back({field.source().begin, name + "." + std::string(field.str()), &value});
      }
    } else {
      entries.push_back({key.source().begin, name, &node});
    }
  }
  // toml++ tables are sorted by name; report the first problem in file order.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::pair(a.position.line, a.position.column) <
           std::pair(b.position.line, b.position.column);
  });
  for (const Entry& entry : entries) {
    std::string line = fmt::format("{}:{}", path, entry.position.line);
    const toml::source_position& value_position = entry.value->source().begin;
    const KeyDescriptor* key = FindKey(entry.name);
    if (key != nullptr) {
      Status status = SetFromNode(*key, config, *entry.value);
      if (!status.ok()) {
        return std::move(status).error().WithContext(fmt::format(
            "{}:{}:{}: {}", path, value_position.line, value_position.column, key->name));
      }
    } else if (IsSection(entry.name)) {
      return Error(ErrorCode::kInvalidArgument,
                   fmt::format("{}:{}:{}: {}: expected a table, got {}", path, value_position.line,
                               value_position.column, entry.name, DescribeNode(*entry.value)));
    } else if (entry.name.find('.') == std::string::npos && entry.value->is_table()) {
      return Error(ErrorCode::kInvalidArgument, line + ": unknown section " + Quote(entry.name) +
                                                    " (known sections: " + Join(Sections()) + ")");
    } else {
      return Error(ErrorCode::kInvalidArgument,
                   line + ": unknown key " + Quote(entry.name) + UnknownKeyHint(entry.name));
    }
  }
  return OkStatus();
}

}  // namespace

Result<Config> LoadConfig(const ConfigSources& sources) {
  EnsureKeyTableChecked();
  const char* const* environment = sources.environ != nullptr ? sources.environ : ::environ;
  Config config;
  bool is_explicit_file = !sources.file.empty();
  std::string path = is_explicit_file ? sources.file : DefaultConfigPathFrom(environment);
  if (!path.empty()) {
    std::error_code ignored;
    config.directory =
        std::filesystem::absolute(std::filesystem::path(path), ignored).parent_path().string();
    Result<std::string> contents = ReadConfigFile(path);
    if (contents.ok()) {
      ASSIGN_OR_RETURN(toml::table root, ParseToml(path, *contents));
      RETURN_IF_ERROR(ApplyFile(path, root, config));
      config.file = path;
    } else if (is_explicit_file || contents.error().code() != ErrorCode::kNotFound) {
      return std::move(contents).error();
    }
  }
  RETURN_IF_ERROR(ApplyEnvironment(environment, config));
  RETURN_IF_ERROR(ApplyOverrides(sources.overrides, config));
  if (config.ipc.runtime_dir.empty()) config.ipc.runtime_dir = DefaultRuntimeDir(environment);
  return config;
}

std::string DefaultConfigPath() { return DefaultConfigPathFrom(::environ); }

namespace {

// A key's value in `config` as TOML writes it: an integer, a number or a quoted string.
// A TOML basic string: quotes, backslashes and control characters escaped.
std::string TomlString(std::string_view text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      quoted += fmt::format("\\u{:04x}", c);
    } else {
      quoted += c;
    }
  }
  return quoted + "\"";
}

std::string ValueText(const KeyDescriptor& key, Config& config) {
  if (IsInteger(key)) return std::to_string(GetInteger(key, config));
  if (IsNumber(key)) return fmt::format("{}", (*std::get_if<DoubleField>(&key.field))(config));
  return TomlString((*std::get_if<StringField>(&key.field))(config));
}

}  // namespace

std::string FormatConfigValues(const Config& config) {
  EnsureKeyTableChecked();
  Config copy = config;  // The accessors hand out references into a mutable Config.
  std::string out;
  for (const KeyDescriptor& key : kKeys) {
    out += std::string(key.name) + " = " + ValueText(key, copy) + "\n";
  }
  return out;
}

std::string FormatProfiles(const Config& config) {
  std::string out;
  for (const Config::Profile& p : config.profiles) {
    out += "\n[profiles." + p.name + "]\n";
    out += "provider = " + TomlString(p.provider) + "\nmodel = " + TomlString(p.model) + "\n";
    if (!p.base_url.empty()) out += "base_url = " + TomlString(p.base_url) + "\n";
    if (!p.api_key_env.empty()) out += "api_key_env = " + TomlString(p.api_key_env) + "\n";
    if (!p.api_key.empty()) out += "# api_key is set\n";
    for (const auto& header : p.headers) out += "# header " + header.first + " is set\n";
    if (p.rate_limit_per_minute != 0) {
      out += fmt::format("rate_limit_per_minute = {}\n", p.rate_limit_per_minute);
    }
    if (!p.fallback.empty()) out += "fallback = " + TomlString(p.fallback) + "\n";
    out +=
        fmt::format("connect_timeout_ms = {}\nfirst_byte_timeout_ms = {}\nidle_timeout_ms = {}\n",
                    p.connect_timeout_ms, p.first_byte_timeout_ms, p.idle_timeout_ms);
    if (!p.reasoning_effort.empty()) {
      out += "reasoning_effort = " + TomlString(p.reasoning_effort) + "\n";
    }
    if (p.thinking_budget_tokens != 0) {
      out += fmt::format("thinking_budget_tokens = {}\n", p.thinking_budget_tokens);
    }
  }
  return out;
}

namespace {

// `url` as an error may quote it: a user:password@ and a query or fragment (where keys are put
// too) as ***. Errors are pasted into bug reports.
std::string ShownUrl(std::string_view url) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  size_t end = std::min(url.size(), url.find_first_of("/?#", start));
  std::string shown(url.substr(0, start));
  std::string_view authority = url.substr(start, end - start);
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    shown += "***@";
    authority.remove_prefix(at + 1);
  }
  shown += authority;
  std::string_view rest = url.substr(end);
  size_t query = rest.find_first_of("?#");
  shown += rest.substr(0, query);
  if (query != std::string_view::npos) shown += std::string(1, rest[query]) + "***";
  return shown;
}

}  // namespace

std::string BaseUrlProblem(std::string_view url) {
  auto problem = [&](std::string_view expected) {
    return "expected " + std::string(expected) + ", got " + Quote(ShownUrl(url));
  };
  size_t scheme = url.starts_with("http://") ? 7 : url.starts_with("https://") ? 8 : 0;
  if (scheme == 0) return problem("a URL starting with http:// or https://");
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return problem("a URL without spaces or control characters");
    }
  }
  std::string_view authority = url.substr(scheme, url.find_first_of("/?#", scheme) - scheme);
  if (authority.find('@') != std::string_view::npos) {
    return problem("a URL without user:password@ (put credentials in api_key or headers)");
  }
  std::string_view host = authority;
  std::string_view port;
  if (host.starts_with('[')) {  // [IPv6]:port
    size_t close = host.find(']');
    if (close == std::string_view::npos) return problem("a URL whose [IPv6 host] is closed");
    port = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!port.empty() && !port.starts_with(':')) return problem("a URL with host[:port]");
    if (!port.empty()) port.remove_prefix(1);
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
    if (port.empty()) return problem("a URL with a port number after ':'");
  }
  bool is_host = !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
    return IsAsciiDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
           c == '-' || c == ':' || c == '_';
  });
  if (!is_host) return problem("a URL with a host name after the scheme");
  if (!std::all_of(port.begin(), port.end(), IsAsciiDigit) || port.size() > 5 ||
      (!port.empty() &&
       (std::stoi(std::string(port)) == 0 || std::stoi(std::string(port)) > 65535))) {
    return problem("a URL whose port is a number from 1 to 65535");
  }
  if (url.find_first_of("?#", scheme) != std::string_view::npos) {
    return problem("a URL without ?query or #fragment (request paths are appended to it)");
  }
  return "";
}

std::string DescribeKeys() {
  EnsureKeyTableChecked();
  Config defaults;
  struct Row {
    std::string_view name;
    std::string_view type;
    std::string value;
    std::string help;
  };
  std::vector<Row> rows;
  size_t name_width = 0;
  size_t value_width = 0;
  for (const KeyDescriptor& key : kKeys) {
    Row row{key.name,
            IsInteger(key)  ? "integer"
            : IsNumber(key) ? "number"
                            : "string",
            "", std::string(key.help)};
    row.value = ValueText(key, defaults);
    if (!std::holds_alternative<AnyString>(key.rule)) row.help += " Must be " + Expected(key) + ".";
    name_width = std::max(name_width, row.name.size());
    value_width = std::max(value_width, row.value.size());
    rows.push_back(std::move(row));
  }
  std::string out;
  for (const Row& row : rows) {
    out += fmt::format("{:<{}}  {:<7}  {:<{}}  {}\n", row.name, name_width, row.type, row.value,
                       value_width, row.help);
  }
  // The tables, which only the file holds (each field checked as the keys above are).
  out +=
      "\n[profiles.NAME]: a provider profile (choose it with --profile NAME)\n"
      "  provider (string, required): openai, anthropic, gemini, ollama, openrouter, deepseek, "
      "groq, mistral, xai, lmstudio, vllm, llamacpp\n"
      "  model (string, required); base_url (string: the provider's default when absent)\n"
      "  api_key_env (string: the variable holding the key; the provider's default when absent)\n"
      "  api_key (string: the key itself; the file must then be private, chmod 600)\n"
      "  headers (table of strings: extra HTTP headers; values never shown)\n"
      "  rate_limit_per_minute (integer, 0 = unlimited); fallback (string: a profile to use "
      "when this one is unavailable)\n"
      "  connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms (integers, milliseconds)\n"
      "  reasoning_effort (string: low, medium or high, for models that think);\n"
      "  thinking_budget_tokens (integer: 0 = none, else at least 1024; Anthropic and Gemini)\n"
      "\n[models.\"PROVIDER/ID\"]: overrides of the model catalog (`lapce-ai models`)\n"
      "  context_window, max_output_tokens (integers); supports_tools, supports_images,\n"
      "  supports_reasoning, supports_prompt_cache (booleans); input_price, output_price,\n"
      "  cache_write_price, cache_read_price (numbers, USD per million tokens)\n";
  return out;
}

}  // namespace lai
