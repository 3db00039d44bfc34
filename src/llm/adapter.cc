#include "llm/internal/adapter.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <unordered_map>

#include "base/strings.h"
#include "http/retry.h"
#include "llm/internal/parser_base.h"
#include "llm/json_string.h"

namespace lai::llm::internal {
namespace {

constexpr std::array<ProviderSpec, 12> kProviders = {{
    {"openai", WireFormat::kOpenAiChat, "https://api.openai.com/v1", "OPENAI_API_KEY", true},
    {"anthropic", WireFormat::kAnthropic, "https://api.anthropic.com", "ANTHROPIC_API_KEY"},
    {"gemini", WireFormat::kGemini, "https://generativelanguage.googleapis.com", "GEMINI_API_KEY"},
    {"ollama", WireFormat::kOllama, "http://localhost:11434", ""},
    {"openrouter", WireFormat::kOpenAiChat, "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"},
    {"deepseek", WireFormat::kOpenAiChat, "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"},
    {"groq", WireFormat::kOpenAiChat, "https://api.groq.com/openai/v1", "GROQ_API_KEY"},
    {"mistral", WireFormat::kOpenAiChat, "https://api.mistral.ai/v1", "MISTRAL_API_KEY", false,
     /*refuses_stream_options=*/true},
    {"xai", WireFormat::kOpenAiChat, "https://api.x.ai/v1", "XAI_API_KEY"},
    {"lmstudio", WireFormat::kOpenAiChat, "http://localhost:1234/v1", ""},
    {"vllm", WireFormat::kOpenAiChat, "http://localhost:8000/v1", ""},
    {"llamacpp", WireFormat::kOpenAiChat, "http://localhost:8080/v1", ""},
}};

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::optional<std::chrono::milliseconds> RetryAfterOf(const std::vector<http::Header>& headers) {
  return http::ParseRetryAfter(http::FindHeader(headers, "retry-after-ms"),
                               http::FindHeader(headers, "retry-after"),
                               std::chrono::system_clock::now(),
                               // The value as sent, for the message; the pool caps its waits.
                               std::chrono::hours(24 * 7));
}

}  // namespace

std::string DelayText(std::chrono::milliseconds delay) {
  int64_t ms = delay.count();
  if (ms < 1000) return fmt::format("{} ms", ms);
  if (ms < 120'000) return fmt::format("{} s", (ms + 999) / 1000);
  return fmt::format("{} min", (ms + 59'999) / 60'000);
}

namespace {

std::string KeySource(const Endpoint& endpoint) {
  if (endpoint.api_key_source.empty()) return "";
  if (endpoint.api_key_source == "the config file") return "the config file";
  return endpoint.api_key_source;
}

}  // namespace

const ProviderSpec* FindProvider(std::string_view name) {
  for (const ProviderSpec& spec : kProviders) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

std::span<const ProviderSpec> Providers() { return kProviders; }

std::string ProviderNames() {
  std::string out;
  for (const ProviderSpec& spec : kProviders) {
    if (!out.empty()) out += ", ";
    out += spec.name;
  }
  return out;
}

std::string Redact(std::string text, std::string_view secret) {
  if (secret.empty()) return text;
  for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) {
    text.replace(at, secret.size(), "***");
  }
  return text;
}

std::vector<std::string> SecretsOf(const Endpoint& endpoint) {
  std::vector<std::string> secrets;
  // Stand-in keys that local servers take ("x", "EMPTY", "ollama") are no secrets: redacting
  // them would garble every message that holds their letters.
  constexpr size_t kShortestSecret = 8;
  if (endpoint.api_key.size() >= kShortestSecret) secrets.push_back(endpoint.api_key);
  for (const http::Header& header : endpoint.headers) {
    if (header.value.size() >= kShortestSecret) secrets.push_back(header.value);
  }
  return secrets;
}

std::string RedactAll(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) text = Redact(std::move(text), secret);
  return text;
}

// ---------------------------------------------------------------------------------------------
// JSON helpers.

std::optional<Json> ParseJson(std::string_view text) {
  Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return std::nullopt;
  return value;
}

Result<OrderedJson> ParseJsonObject(std::string_view text, std::string_view what) {
  OrderedJson value = OrderedJson::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) {
    std::string shown(text.substr(0, 80));
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("{}: expected a JSON object, got '{}'{}", what, shown,
                             text.size() > 80 ? "…" : ""));
  }
  return value;
}

Result<OrderedJson> ToolCallArguments(const ContentPart& call) {
  return ParseJsonObject(
      call.arguments_json.empty() ? "{}" : call.arguments_json,
      fmt::format("arguments of tool call '{}' ({})", call.tool_name, call.tool_call_id));
}

std::string GetString(const Json& object, std::string_view key) {
  if (!object.is_object()) return {};
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

int64_t GetInt(const Json& object, std::string_view key) {
  if (!object.is_object()) return 0;
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return 0;
  if (it->is_number_float()) return static_cast<int64_t>(it->get<double>());
  return it->get<int64_t>();
}

const Json* GetObject(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it != object.end() && it->is_object() ? &*it : nullptr;
}

const Json* GetArray(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it != object.end() && it->is_array() ? &*it : nullptr;
}

std::string ErrorMessageOf(const Json& body) {
  if (body.is_array()) return body.empty() ? "" : ErrorMessageOf(body.front());
  if (!body.is_object()) return {};
  auto it = body.find("error");
  if (it == body.end()) return GetString(body, "message");
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    std::string message = GetString(*it, "message");
    return message.empty() ? it->dump() : message;
  }
  return {};
}

ErrorKind KindOfAnswerError(std::string_view type, std::string_view message) {
  ErrorKind kind = KindOfErrorText(type, message);
  return kind == ErrorKind::kUnavailable ? ErrorKind::kInvalidRequest : kind;
}

bool SaysContextTooLong(std::string_view message) {
  std::string lower = Lower(message);
  for (std::string_view phrase :
       {"context length", "context_length", "context window", "prompt is too long",
        "maximum context", "too many tokens", "input token count", "reduce the length",
        "request_too_large", "prompt too long", "exceeds the maximum number of tokens",
        "exceed context limit", "maximum prompt length", "context size", "exceed_context_size"}) {
    if (Contains(lower, phrase)) return true;
  }
  return false;
}

ErrorKind KindOfErrorText(std::string_view type, std::string_view message) {
  std::string lower_type = Lower(type);
  if (Contains(lower_type, "overloaded")) return ErrorKind::kOverloaded;
  if (Contains(lower_type, "rate_limit") || lower_type == "resource_exhausted") {
    return ErrorKind::kRateLimited;
  }
  if (Contains(lower_type, "authentication") || Contains(lower_type, "permission") ||
      lower_type == "unauthenticated" || lower_type == "permission_denied") {
    return ErrorKind::kInvalidKey;
  }
  if (Contains(lower_type, "not_found")) return ErrorKind::kUnknownModel;
  if (SaysContextTooLong(message) || SaysContextTooLong(type)) return ErrorKind::kContextTooLong;
  if (Contains(lower_type, "invalid_request") || lower_type == "invalid_argument") {
    return ErrorKind::kInvalidRequest;
  }
  std::string lower_message = Lower(message);
  if (Contains(lower_message, "overloaded") || Contains(lower_message, "server busy")) {
    return ErrorKind::kOverloaded;
  }
  return ErrorKind::kUnavailable;
}

// ---------------------------------------------------------------------------------------------
// Errors from HTTP responses.

StreamError ErrorFromResponse(const Endpoint& endpoint, std::string_view model, int status,
                              const std::vector<http::Header>& headers, std::string_view body) {
  std::string detail;
  std::string type;
  std::optional<std::chrono::milliseconds> retry_delay;  // Gemini's RetryInfo, in the body.
  if (std::optional<Json> json = ParseJson(body)) {
    detail = ErrorMessageOf(*json);
    const Json& root = json->is_array() && !json->empty() ? json->front() : *json;
    if (const Json* error = GetObject(root, "error")) {
      type = GetString(*error, "type");
      if (type.empty()) type = GetString(*error, "status");
      if (type.empty()) type = GetString(*error, "code");
      // Anthropic: {"details": {"error_code": "enforced_spend_limit_reached"}}; Google:
      // {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}]}.
      auto details = error->find("details");
      if (details != error->end() && details->is_object()) {
        type += " " + GetString(*details, "error_code");
      } else if (details != error->end() && details->is_array()) {
        for (const Json& item : *details) {
          if (!item.is_object() || !GetString(item, "@type").ends_with(".RetryInfo")) continue;
          std::string delay = GetString(item, "retryDelay");
          char* end = nullptr;
          double seconds = std::strtod(delay.c_str(), &end);
          if (end != delay.c_str() && std::string_view(end) == "s" && seconds >= 0 &&
              seconds < 7 * 24 * 3600) {
            retry_delay = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
          }
        }
      }
    }
  }
  // An HTML error page (a proxy's, a load balancer's) is named by its title, not pasted.
  if (size_t title = Lower(body.substr(0, 4096)).find("<title>");
      detail.empty() && title != std::string::npos) {
    size_t end = body.find('<', title + 7);
    std::string_view text = body.substr(
        title + 7, end == std::string_view::npos ? std::string_view::npos : end - title - 7);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
      text.remove_prefix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
      text.remove_suffix(1);
    }
    if (!text.empty()) detail = "an HTML page: " + std::string(text.substr(0, 200));
  }
  if (detail.empty()) {
    std::string_view trimmed = body.substr(0, 300);
    while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.back()))) {
      trimmed.remove_suffix(1);
    }
    detail = std::string(trimmed);
  }
  const std::vector<std::string> secrets = SecretsOf(endpoint);
  detail = RedactAll(std::move(detail), secrets);
  std::string suffix = detail.empty() ? "" : " (" + detail + ")";
  // A detail that only repeats what the message says ("429: rate limited (Rate limited.)") is
  // left out.
  auto unless_said = [&](std::string_view said) {
    std::string_view bare = detail;
    while (!bare.empty() && std::ispunct(static_cast<unsigned char>(bare.back()))) {
      bare.remove_suffix(1);
    }
    return Lower(bare) == said ? std::string() : suffix;
  };
  std::string prefix = fmt::format("{} from {}: ", status, endpoint.provider);

  StreamError error;
  error.http_status = status;
  error.retry_after = RetryAfterOf(headers);
  if (!error.retry_after) error.retry_after = retry_delay;
  std::string source = KeySource(endpoint);
  // Gemini answers a bad key with 400 INVALID_ARGUMENT "API key not valid".
  bool is_key_rejected = status == 401 || status == 403 ||
                         (status == 400 && (Contains(Lower(detail), "api key not valid") ||
                                            Contains(Lower(detail), "api_key_invalid")));
  if (is_key_rejected) {
    error.kind = ErrorKind::kInvalidKey;
    if (source.empty()) {
      error.message = prefix + "the request was refused and no API key was sent" + suffix +
                      "; set api_key_env in the profile to the variable holding the key";
    } else if (source == "the config file") {
      error.message = prefix + "the API key in the config file was rejected" + suffix +
                      "; check the profile's api_key";
    } else {
      error.message =
          fmt::format("{}the API key in {} was rejected{}; check that {} holds a valid key for {}",
                      prefix, source, suffix, source, endpoint.provider);
    }
  } else if (status == 404) {
    error.kind = ErrorKind::kUnknownModel;
    // The usual mistake with a local server: its base URL given without the /v1 its API has.
    const ProviderSpec* spec = FindProvider(endpoint.provider);
    const bool may_lack_v1 = spec != nullptr && spec->wire == WireFormat::kOpenAiChat &&
                             !endpoint.base_url.ends_with("/v1");
    error.message = fmt::format(
        "{}model '{}' was not found{}; check the model name (`lapce-ai models` lists known ones) "
        "and the base URL {}{}",
        prefix, model, suffix, endpoint.base_url,
        may_lack_v1 ? " (an OpenAI-style base URL usually ends in /v1)" : "");
  } else if (status == 413 ||
             (status == 400 && (SaysContextTooLong(detail) || SaysContextTooLong(type)))) {
    // 413 is the request being too large, whoever says it (an nginx in front of vLLM).
    error.kind = ErrorKind::kContextTooLong;
    error.message = fmt::format(
        "{}the prompt is too long for model '{}'{}; shorten the conversation or use a model "
        "with a larger context window",
        prefix, model, suffix);
  } else if (status == 429) {
    std::string lower = Lower(detail + " " + type);
    if (Contains(lower, "insufficient_quota") || Contains(lower, "spend limit") ||
        Contains(lower, "spend_limit")) {
      error.kind = ErrorKind::kInvalidRequest;
      error.message = prefix + "the account's quota or spend limit is exhausted" + suffix +
                      "; check billing with the provider";
      error.retry_after.reset();
    } else {
      error.kind = ErrorKind::kRateLimited;
      error.message = prefix + "rate limited" + unless_said("rate limited") +
                      (error.retry_after ? "; retry after " + DelayText(*error.retry_after)
                                         : std::string("; retry later"));
    }
  } else if (status == 529 || KindOfErrorText(type, detail) == ErrorKind::kOverloaded) {
    error.kind = ErrorKind::kOverloaded;
    error.message =
        prefix + "the provider is overloaded" + unless_said("overloaded") + "; retry later";
  } else if (status == 408) {
    error.kind = ErrorKind::kTimeout;
    error.message = prefix + "the provider timed out the request" + suffix;
  } else if (status >= 500 || status == 409) {
    error.kind = ErrorKind::kUnavailable;
    error.message = prefix + "server error" + suffix + "; retry later";
  } else {
    error.kind = ErrorKind::kInvalidRequest;
    error.message = prefix + "the request was rejected" + suffix;
  }
  error.message = RedactAll(std::move(error.message), secrets);
  return error;
}

// ---------------------------------------------------------------------------------------------
// ParserBase.

void ParserBase::Emit(const StreamEvent& event) {
  if (is_terminated_) return;
  if (event.kind == StreamEvent::Kind::kDone || event.kind == StreamEvent::Kind::kError) {
    is_terminated_ = true;
  }
  has_output_ = true;
  sink_(event);
}

void ParserBase::EmitText(std::string_view text) {
  if (text.empty()) return;
  text_delta_.text.assign(text);
  Emit(text_delta_);
}

void ParserBase::EmitReasoning(std::string_view text, std::string_view signature, int block,
                               bool redacted) {
  if (text.empty() && signature.empty()) return;
  reasoning_delta_.text.assign(text);
  reasoning_delta_.signature.assign(signature);
  reasoning_delta_.index = block;
  reasoning_delta_.redacted = redacted;
  Emit(reasoning_delta_);
}

void ParserBase::EmitToolCallDelta(int index, std::string_view tool_call_id,
                                   std::string_view fragment) {
  if (fragment.empty()) return;
  tool_call_delta_.index = index;
  tool_call_delta_.tool_call_id.assign(tool_call_id);
  tool_call_delta_.text.assign(fragment);
  Emit(tool_call_delta_);
}

void ParserBase::EmitUsage(const Usage& usage) {
  StreamEvent event;
  event.kind = StreamEvent::Kind::kUsage;
  event.usage = usage;
  Emit(std::move(event));
}

void ParserBase::EmitDone(std::string stop_reason) {
  StreamEvent event;
  event.kind = StreamEvent::Kind::kDone;
  event.text = std::move(stop_reason);
  Emit(std::move(event));
}

void ParserBase::EmitError(ErrorKind kind, std::string message, int http_status) {
  StreamEvent event;
  event.kind = StreamEvent::Kind::kError;
  event.error.kind = kind;
  event.error.message = std::move(message);
  event.error.http_status = http_status;
  Emit(std::move(event));
}

void ParserBase::EmitBadResponse(std::string_view what) {
  EmitError(ErrorKind::kBadResponse, fmt::format("bad response from {}: {}", provider_, what));
}

void ParserBase::EmitWholeToolCall(int index, const std::string& id, const std::string& name,
                                   std::string arguments, std::string signature) {
  StreamEvent start;
  start.kind = StreamEvent::Kind::kToolCallStart;
  start.index = index;
  start.tool_call_id = id;
  start.tool_name = name;
  Emit(start);
  StreamEvent delta;
  delta.kind = StreamEvent::Kind::kToolCallDelta;
  delta.index = index;
  delta.tool_call_id = id;
  delta.text = arguments;
  Emit(std::move(delta));
  StreamEvent end;
  end.kind = StreamEvent::Kind::kToolCallEnd;
  end.index = index;
  end.tool_call_id = id;
  end.tool_name = name;
  end.arguments_json = std::move(arguments);
  end.signature = std::move(signature);
  Emit(std::move(end));
}

// ---------------------------------------------------------------------------------------------
// Dispatch and shared request parts.

http::Request BaseRequest(const Endpoint& endpoint, std::string url) {
  http::Request request;
  request.method = "POST";
  request.url = std::move(url);
  request.headers.push_back({"Content-Type", "application/json"});
  request.connect_timeout = endpoint.connect_timeout;
  request.first_byte_timeout = endpoint.first_byte_timeout;
  request.idle_timeout = endpoint.idle_timeout;
  return request;
}

namespace {

void AppendJson(std::string& out, const OrderedJson& value) {
  switch (value.type()) {
    case OrderedJson::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : value.items()) {
        if (!first) out += ',';
        first = false;
        AppendJsonString(out, key);
        out += ':';
        AppendJson(out, item);
      }
      out += '}';
      return;
    }
    case OrderedJson::value_t::array: {
      out += '[';
      bool first = true;
      for (const OrderedJson& item : value) {
        if (!first) out += ',';
        first = false;
        AppendJson(out, item);
      }
      out += ']';
      return;
    }
    case OrderedJson::value_t::string:
      AppendJsonString(out, value.get_ref<const std::string&>());
      return;
    case OrderedJson::value_t::binary: {
      const auto& text = value.get_binary();
      out.append(reinterpret_cast<const char*>(text.data()), text.size());
      return;
    }
    default:  // Numbers, booleans, null: short.
      out += value.dump();
      return;
  }
}

}  // namespace

std::string DumpRequestBody(const OrderedJson& body) {
  std::string out;
  AppendJson(out, body);
  return out;
}

Result<OrderedJson> ToolSchema(const ToolDefinition& tool) {
  if (tool.parameters_schema_json.empty()) {
    return OrderedJson{{"type", "object"}, {"properties", OrderedJson::object()}};
  }
  // An agent sends the same dozen schemas with every request: parse each once. Bounded: a
  // caller with ever-new schemas only ever holds the last kMaxCached.
  static constexpr size_t kMaxCached = 256;
  static std::mutex mutex;
  static std::unordered_map<std::string, OrderedJson> parsed;
  {
    std::lock_guard lock(mutex);
    auto it = parsed.find(tool.parameters_schema_json);
    if (it != parsed.end()) return it->second;
  }
  ASSIGN_OR_RETURN(OrderedJson schema,
                   ParseJsonObject(tool.parameters_schema_json,
                                   fmt::format("parameters schema of tool '{}'", tool.name)));
  // Every provider wants an object schema at the top: one that is a local "$ref" to it (some MCP
  // servers' generated schemas) has it inlined there, its definitions kept for deeper refs.
  if (auto ref = schema.find("$ref"); ref != schema.end() && ref->is_string()) {
    const std::string path = ref->get<std::string>();
    for (std::string_view prefix : {"#/$defs/", "#/definitions/"}) {
      std::string container(prefix.substr(2, prefix.size() - 3));
      if (!path.starts_with(prefix) || !schema.contains(container)) continue;
      const OrderedJson& definitions = schema[container];
      auto target = definitions.find(path.substr(prefix.size()));
      if (target == definitions.end() || !target->is_object()) break;
      OrderedJson inlined = *target;
      inlined[container] = definitions;
      schema = std::move(inlined);
      break;
    }
  }
  if (!schema.contains("type")) schema["type"] = "object";
  std::lock_guard lock(mutex);
  if (parsed.size() >= kMaxCached) parsed.clear();
  parsed.emplace(tool.parameters_schema_json, schema);
  return schema;
}

OrderedJson RawJson(std::string_view text) {
  std::vector<std::uint8_t> bytes(text.size());
  if (!text.empty()) std::memcpy(bytes.data(), text.data(), text.size());
  return OrderedJson::binary(std::move(bytes));
}

OrderedJson FunctionTool(const ToolDefinition& tool, OrderedJson schema) {
  return {{"type", "function"},
          {"function",
           {{"name", tool.name},
            {"description", tool.description},
            {"parameters", std::move(schema)}}}};
}

Result<OrderedJson> CachedToolEntry(std::string_view format, const ToolDefinition& tool,
                                    OrderedJson (*build)(const ToolDefinition& tool,
                                                         OrderedJson schema)) {
  static constexpr size_t kMaxCached = 256;
  static std::mutex mutex;
  static std::unordered_map<std::string, OrderedJson> entries;
  std::string key;
  key.reserve(format.size() + tool.name.size() + tool.description.size() +
              tool.parameters_schema_json.size() + 3);
  key.append(format).append(1, '\0').append(tool.name).append(1, '\0');
  key.append(tool.description).append(1, '\0').append(tool.parameters_schema_json);
  {
    std::lock_guard lock(mutex);
    auto it = entries.find(key);
    if (it != entries.end()) return it->second;
  }
  ASSIGN_OR_RETURN(OrderedJson schema, ToolSchema(tool));
  OrderedJson raw = RawJson(DumpRequestBody(build(tool, std::move(schema))));
  std::lock_guard lock(mutex);
  if (entries.size() >= kMaxCached) entries.clear();
  entries.emplace(std::move(key), raw);
  return raw;
}

std::string EntriesText(const OrderedJson& entries) {
  std::string text;
  for (const OrderedJson& entry : entries) {
    if (!text.empty()) text += ',';
    text += DumpRequestBody(entry);
  }
  return text;
}

namespace {

// A message's identity for CachedMessageJson: every field, each preceded by its length, so no
// two different messages share a key.
std::string MessageKey(std::string_view format, const Message& message) {
  size_t bytes = format.size() + 2;
  for (const ContentPart& part : message.parts) {
    bytes += 2 + 8 * sizeof(uint32_t) + part.text.size() + part.media_type.size() +
             part.data_base64.size() + part.signature.size() + part.tool_call_id.size() +
             part.tool_name.size() + part.arguments_json.size() + part.origin.size();
  }
  std::string key;
  key.reserve(bytes);
  key.append(format).append(1, '\0');
  key += message.role == Role::kUser ? 'u' : 'a';
  auto field = [&key](const std::string& text) {
    uint32_t size = static_cast<uint32_t>(text.size());
    key.append(reinterpret_cast<const char*>(&size), sizeof(size)).append(text);
  };
  for (const ContentPart& part : message.parts) {
    key += static_cast<char>('0' + static_cast<int>(part.kind));
    key += part.is_error ? 'e' : '-';
    for (const std::string* text :
         {&part.text, &part.media_type, &part.data_base64, &part.signature, &part.tool_call_id,
          &part.tool_name, &part.arguments_json, &part.origin}) {
      field(*text);
    }
  }
  return key;
}

}  // namespace

Result<std::shared_ptr<const std::string>> CachedMessageJson(
    std::string_view format, const Message& message,
    const std::function<Status(const Message& message, OrderedJson& entries)>& build) {
  // Keys and entries together hold about twice the conversations' text: 16 MiB keeps several
  // long sessions (a 200k-token conversation is ~1.7 MB here) without letting a long-lived
  // server grow; past it the cache starts over and the next requests rebuild what they need.
  static constexpr size_t kMaxCachedBytes = size_t{16} << 20;
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const std::string>> entries_by_key;
  static size_t cached_bytes = 0;
  std::string key = MessageKey(format, message);
  {
    std::lock_guard lock(mutex);
    auto it = entries_by_key.find(key);
    if (it != entries_by_key.end()) return it->second;
  }
  OrderedJson entries = OrderedJson::array();
  RETURN_IF_ERROR(build(message, entries));
  auto text = std::make_shared<std::string>(EntriesText(entries));
  std::lock_guard lock(mutex);
  if (cached_bytes + key.size() + text->size() > kMaxCachedBytes) {
    entries_by_key.clear();
    cached_bytes = 0;
  }
  const size_t bytes = key.size() + text->size();
  if (entries_by_key.emplace(std::move(key), text).second) cached_bytes += bytes;
  return std::shared_ptr<const std::string>(std::move(text));
}

OrderedJson JoinEntries(const std::vector<std::shared_ptr<const std::string>>& entries) {
  size_t bytes = 2;
  for (const auto& entry : entries) bytes += entry->size() + 1;
  std::string text;
  text.reserve(bytes);
  text += '[';
  for (const auto& entry : entries) {
    if (entry->empty()) continue;
    if (text.size() > 1) text += ',';
    text += *entry;
  }
  text += ']';
  return RawJson(text);
}

Result<std::vector<std::shared_ptr<const std::string>>> EntriesNamingTools(
    std::string_view format, const std::vector<Message>& messages, const NamingBuild& build) {
  std::vector<std::shared_ptr<const std::string>> out;
  out.reserve(messages.size());
  ToolNames tool_names;
  for (const Message& message : messages) {
    bool names_its_tools =
        std::all_of(message.parts.begin(), message.parts.end(), [](const ContentPart& part) {
          return part.kind != ContentPart::Kind::kToolResult || !part.tool_name.empty();
        });
    if (names_its_tools) {
      ASSIGN_OR_RETURN(
          out.emplace_back(),
          CachedMessageJson(format, message, [&build](const Message& m, OrderedJson& e) {
            ToolNames own;  // Every result names its tool: none is looked up.
            return build(m, own, e);
          }));
      for (const ContentPart& part : message.parts) {
        if (part.kind == ContentPart::Kind::kToolCall)
          tool_names[part.tool_call_id] = part.tool_name;
      }
    } else {
      OrderedJson entries = OrderedJson::array();
      RETURN_IF_ERROR(build(message, tool_names, entries));
      out.push_back(std::make_shared<const std::string>(EntriesText(entries)));
    }
  }
  return out;
}

Result<http::Request> BuildRequest(const ProviderSpec& spec, const Endpoint& endpoint,
                                   const CompletionRequest& request, const ModelInfo* model) {
  Result<http::Request> built = Error(ErrorCode::kInternal, "unreachable");
  try {
    switch (spec.wire) {
      case WireFormat::kOpenAiChat:
        built = BuildOpenAiRequest(spec, endpoint, request, model);
        break;
      case WireFormat::kAnthropic:
        built = BuildAnthropicRequest(endpoint, request, model);
        break;
      case WireFormat::kGemini:
        built = BuildGeminiRequest(endpoint, request, model);
        break;
      case WireFormat::kOllama:
        built = BuildOllamaRequest(endpoint, request, model);
        break;
    }
  } catch (const std::exception& e) {
    // nlohmann::json throws on invalid UTF-8 while serialising.
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("build request for {}: {}", endpoint.provider, e.what()));
  }
  if (!built.ok()) {
    return std::move(built).error().WithContext("build request for " + endpoint.provider);
  }
  // Extra profile headers last, replacing defaults of the same name.
  for (const http::Header& extra : endpoint.headers) {
    auto& headers = built->headers;
    headers.erase(
        std::remove_if(headers.begin(), headers.end(),
                       [&](const http::Header& h) { return Lower(h.name) == Lower(extra.name); }),
        headers.end());
    headers.push_back(extra);
  }
  return built;
}

std::unique_ptr<StreamParser> NewStreamParser(const ProviderSpec& spec, std::string provider,
                                              std::string tool_id_prefix, EventSink sink) {
  switch (spec.wire) {
    case WireFormat::kOpenAiChat:
      return NewOpenAiParser(std::move(provider), std::move(tool_id_prefix), std::move(sink));
    case WireFormat::kAnthropic:
      return NewAnthropicParser(std::move(provider), std::move(sink));
    case WireFormat::kGemini:
      return NewGeminiParser(std::move(provider), std::move(tool_id_prefix), std::move(sink));
    case WireFormat::kOllama:
      return NewOllamaParser(std::move(provider), std::move(tool_id_prefix), std::move(sink));
  }
  return nullptr;
}

}  // namespace lai::llm::internal

namespace lai::llm::internal {

void SseParser::Feed(std::string_view bytes) {
  if (is_terminated()) return;
  if (!saw_event_ && head_.size() < kMaxHeadBytes) {
    head_.append(bytes.substr(0, kMaxHeadBytes - head_.size()));
  }
  decoder_.Feed(bytes, [this](const http::SseEvent& event) {
    saw_event_ = true;
    if (!is_terminated()) OnEvent(event.event, event.data);
  });
  if (!decoder_.status().ok() && !is_terminated()) {
    EmitBadResponse(decoder_.status().error().message());
  }
}

void SseParser::Finish() {
  if (is_terminated()) return;
  if (!saw_event_) {
    std::optional<Json> body = ParseJson(head_);
    std::string message = body ? ErrorMessageOf(*body) : std::string();
    if (!message.empty()) {
      const Json* error = GetObject(*body, "error");
      std::string type = error != nullptr ? GetString(*error, "type") : std::string();
      EmitError(
          KindOfAnswerError(type, message),
          fmt::format("{} answered with an error instead of a stream: {}", provider_, message));
      return;
    }
    // Something else answered (a proxy's login page, a web UI at the base URL, a server that
    // ignored "stream": true): sending it again gets the same, so it is not retried. A stream
    // that held only comments (": ping") ended early, as any other.
    size_t start = head_.find_first_not_of(" \t\r\n");
    if (start != std::string::npos && head_[start] != ':') {
      std::string begins = Visible(ValidUtf8(head_.substr(start, 160)));
      for (char& c : begins) {
        if (c == '\n' || c == '\t') c = ' ';
      }
      EmitBadResponse(fmt::format(
          "the answer is not an event stream; it begins '{}'{}: check the base URL, and any "
          "proxy between",
          begins, head_.size() - start > 160 ? "…" : ""));
      return;
    }
  }
  OnFinish();
}

void NdjsonParser::Feed(std::string_view bytes) {
  if (is_terminated()) return;
  decoder_.Feed(bytes, [this](std::string_view line) {
    if (!is_terminated()) OnLine(line);
  });
  if (!decoder_.status().ok() && !is_terminated()) {
    EmitBadResponse(decoder_.status().error().message());
  }
}

void NdjsonParser::Finish() {
  if (is_terminated()) return;
  decoder_.Finish([this](std::string_view line) {
    if (!is_terminated()) OnLine(line);
  });
  if (!is_terminated()) OnEnd();
}

}  // namespace lai::llm::internal
