// Engine configuration: built-in defaults < TOML file < LAPCE_AI_* environment < --set overrides.
// Config is a value type (thread-compatible); the functions are thread-safe as long as no thread
// modifies the process environment while they read it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace lai {

// Every field is a key "<section>.<field>"; DescribeKeys() documents them all.
struct Config {
  struct Log {
    std::string level = "info";  // trace, debug, info, warn, error or off.
    std::string file;            // Empty = stderr only.
  } log;
  struct Ipc {
    // Absolute. Empty in the defaults, files, env and overrides means "$XDG_RUNTIME_DIR/lapce-ai",
    // else "/tmp/lapce-ai-<uid>"; LoadConfig always returns the resolved directory.
    std::string runtime_dir;
    std::string socket_name = "engine.sock";  // File name inside runtime_dir.
    uint32_t ring_bytes = 1024;               // Per-direction ring data size; a power of two.
    uint64_t max_message_bytes = 10 << 20;
    uint32_t connect_timeout_ms = 1000;
    uint32_t request_timeout_ms = 30000;
  } ipc;
  struct Server {
    uint32_t workers = 1;
    uint32_t max_connections = 4096;
    std::string metrics_addr = "127.0.0.1:9464";  // "host:port"; empty disables metrics.
  } server;
  struct Tools {  // agent::ToolSettings (agent/tools/tool.h) documents each field.
    int32_t read_line_limit = 500;      // -1 = whole file.
    int32_t read_byte_limit = 262144;   // Content bytes one read_file call returns at most.
    double diff_fuzzy_threshold = 1.0;  // 0.5..1.0; 1.0 = exact match only.
    int32_t diff_buffer_lines = 40;
    int32_t list_files_limit = 200;
    int32_t search_max_results = 300;
    int32_t command_timeout_seconds = 0;  // 0 = no timeout.
    int32_t command_output_line_limit = 500;
  } tools;
  struct Llm {
    std::string default_profile;             // Empty: the first profile (see llm/pool.h).
    uint32_t max_connections_per_host = 32;  // HTTP/1.1 providers need one per open stream.
  } llm;

  struct Agent {  // agent::AgentSettings (agent/session.h) documents each field.
    std::string mode = "code";
    std::string tool_protocol = "auto";  // auto (the model catalog decides), native or xml.
    int32_t mistake_limit = 3;           // 0 = unlimited.
    int32_t max_requests_per_turn = 100;
    int32_t condense_threshold_percent = 100;  // 5..100; condense at this share of the window.
    std::string auto_condense = "on";          // on or off.
    std::string custom_instructions;
  } agent;
  struct Approvals {  // agent::AutoApproveSettings (agent/approval_policy.h).
    // Comma-separated categories approved without asking: read, read_outside, write,
    // write_outside, write_protected, delete, execute, mode_switch, subtasks, mcp; "all"; "" =
    // none.
    std::string auto_approve = "read";
    std::string allowed_commands = "git log,git diff,git show";  // Comma-separated prefixes.
    std::string denied_commands;                                 // Comma-separated prefixes.
    int32_t max_requests = 0;  // Model requests per task before asking; 0 = unlimited.
    double max_cost_usd = 0;   // Task cost before asking; 0 = unlimited.
  } approvals;
  // One [profiles.<name>] table of the file (profiles come only from the file, in file order).
  struct Profile {
    std::string name;
    std::string provider;  // "openai", "anthropic", "gemini", "ollama", "openrouter", …
    std::string model;
    std::string base_url;     // Empty: the provider's default. No trailing '/'.
    std::string api_key_env;  // Empty: the provider's default variable.
    std::string api_key;      // From the file, which must then be private (mode 0600).
    std::vector<std::pair<std::string, std::string>> headers;
    uint32_t rate_limit_per_minute = 0;  // 0: unlimited.
    std::string fallback;                // Name of the profile to use when this one is unavailable.
    uint32_t connect_timeout_ms = 10000;
    // Reasoning models can stream nothing for minutes while they think (as Codex CLI does, 5 min).
    uint32_t first_byte_timeout_ms = 300000;
    uint32_t idle_timeout_ms = 300000;
    // Thinking for models that can: "low", "medium" or "high" ("" = the model's default), or a
    // budget in tokens (0 = none; Anthropic's and Gemini's), which wins over the effort.
    std::string reasoning_effort;
    uint32_t thinking_budget_tokens = 0;
    std::string origin;           // "<file>:<line>" of the table, for messages.
    std::string fallback_origin;  // "<file>:<line>" of its fallback key.
  };
  std::vector<Profile> profiles;

  // One [models."<provider>/<id>"] table: catalog overrides; unset fields keep the built-in value.
  struct ModelOverride {
    std::string provider;
    std::string id;
    std::optional<int64_t> context_window;
    std::optional<int64_t> max_output_tokens;
    std::optional<bool> supports_tools;
    std::optional<bool> supports_images;
    std::optional<bool> supports_reasoning;
    std::optional<bool> supports_prompt_cache;
    std::optional<double> input_price;  // USD per million tokens.
    std::optional<double> output_price;
    std::optional<double> cache_write_price;
    std::optional<double> cache_read_price;
    std::string origin;
  };
  std::vector<ModelOverride> models;

  std::string file;  // The file the values were read from; empty when none was.
  // The directory of the configuration (--config's, else the default file's, present or not):
  // the global modes.yaml, rules/ and mcp.json live beside config.toml. Empty when neither
  // XDG_CONFIG_HOME nor HOME is set.
  std::string directory;
};

struct ConfigSources {
  // Empty = DefaultConfigPath(), where a missing file is fine; a given file must exist.
  std::string file;
  // "key=value" from the command line, applied in order, e.g. "ipc.ring_bytes=2048".
  std::vector<std::string> overrides;
  // NULL-terminated "NAME=value" array; nullptr = the process environment. Tests pass their own
  // so they never see the real user's variables or config file (HOME and XDG_* are read here too).
  const char* const* environ = nullptr;
};

// Builds the effective config. Each source is validated against the same key table:
// - File: TOML with one table per section ([log], [ipc], [server]). Unknown sections and keys,
//   wrong value types and out-of-range values are errors.
//   [profiles.<name>] and [models."<provider>/<id>"] tables (fields as in Config::Profile and
//   Config::ModelOverride) are validated field by field; they come only from the file. A file
//   holding a profile api_key must not be readable by group or others (kPermissionDenied,
//   saying to chmod 600 it).
// - Environment: LAPCE_AI_<SECTION>_<KEY>, e.g. LAPCE_AI_IPC_RING_BYTES=2048. A variable that
//   starts with LAPCE_AI_<known section>_ but names no key is an error (a typo must not be
//   silently ignored); other LAPCE_AI_* variables are ignored.
// - Overrides: "key=value" with a dotted key; integers in decimal, strings taken verbatim.
// Errors, whose message names the source and the key:
// - kInvalidArgument: bad value, unknown key, TOML syntax error, malformed override, e.g.
//   "/x/config.toml:3:14: ipc.ring_bytes: expected a power of two between 256 and 1048576, got
//   1000", "environment LAPCE_AI_IPC_RING_BYTES: ...", "--set ipc.ring_bytes=x: ...".
// - kNotFound: sources.file was given and does not exist.
// - kIo: the file exists but cannot be read.
Result<Config> LoadConfig(const ConfigSources& sources);

// "$XDG_CONFIG_HOME/lapce-ai/config.toml" if XDG_CONFIG_HOME is an absolute path, else
// "$HOME/.config/lapce-ai/config.toml"; empty if neither is set. Reads the process environment.
std::string DefaultConfigPath();

// Why `url` cannot be a provider's base URL, as "expected …, got '…'"; empty when it can: http://
// or https://, then a host (name, IPv4 or [IPv6]) with an optional :port, and no spaces or
// control characters anywhere.
std::string BaseUrlProblem(std::string_view url);

// Documents every key, one line each: name, type, default, help (with the accepted values).
std::string DescribeKeys();

// Every key with its value in `config`, one "name = value" line each (TOML), in the order
// DescribeKeys() lists them. Profiles are not keys and are not included.
std::string FormatConfigValues(const Config& config);
// The profiles as [profiles.<name>] tables (TOML). Secrets are never printed: an api_key and
// each header (which may carry one) appear as comments saying they are set.
std::string FormatProfiles(const Config& config);

}  // namespace lai
