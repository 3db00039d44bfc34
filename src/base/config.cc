#include "base/config.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

// toml++ reports syntax errors by throwing toml::parse_error. Debian ships it as a shared library
// built with exceptions, so TOML_EXCEPTIONS=0 would not link; ParseToml catches them instead.
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <exception>
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
using Field = std::variant<StringField, Uint32Field, Uint64Field>;

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
using Rule = std::variant<AnyString, StringCheck, OneOf, IntegerRange>;

struct KeyDescriptor {
  std::string_view name;  // "<section>.<field>"; the section contains no '_'.
  Field field;
  Rule rule;  // IntegerRange for integer fields, any other rule for string fields.
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
};

#undef LAI_CONFIG_FIELD

// ---------------------------------------------------------------------------------------------
// Key lookup and validation.

std::string_view SectionOf(std::string_view name) { return name.substr(0, name.find('.')); }

std::string_view LeafOf(std::string_view name) {
  size_t dot = name.rfind('.');
  return dot == std::string_view::npos ? name : name.substr(dot + 1);
}

bool IsInteger(const KeyDescriptor& key) { return !std::holds_alternative<StringField>(key.field); }

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

// For the environment and overrides: integers in decimal, strings verbatim.
Status SetFromText(const KeyDescriptor& key, Config& config, std::string_view text) {
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
    Config scratch;
    Status status;
    if (range != nullptr) {
      int64_t field_max = std::holds_alternative<Uint32Field>(key.field)
                              ? int64_t{std::numeric_limits<uint32_t>::max()}
                              : std::numeric_limits<int64_t>::max();
      LAI_CHECK(range->min >= 0 && range->min <= range->max && range->max <= field_max)
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
  if (IsInteger(key)) {
    if (const auto* integer = node.as_integer()) return SetInteger(key, config, integer->get());
  } else if (const auto* string = node.as_string()) {
    return SetString(key, config, string->get());
  }
  return InvalidValue(key, DescribeNode(node));
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
    Result<std::string> contents = ReadConfigFile(path);
    if (contents.ok()) {
      ASSIGN_OR_RETURN(toml::table root, ParseToml(path, *contents));
      RETURN_IF_ERROR(ApplyFile(path, root, config));
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
    Row row{key.name, IsInteger(key) ? "integer" : "string", "", std::string(key.help)};
    if (IsInteger(key)) {
      row.value = std::to_string(GetInteger(key, defaults));
    } else {
      row.value = "\"" + (*std::get_if<StringField>(&key.field))(defaults) + "\"";
    }
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
  return out;
}

}  // namespace lai
