// The four wire adapters behind ProviderPool: request building, incremental stream parsing and
// HTTP error mapping per provider, plus the provider table. Functions are thread-safe; a
// StreamParser is confined to the thread that feeds it (the HTTP I/O thread).
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "http/client.h"
#include "llm/catalog.h"
#include "llm/types.h"

namespace lai::llm::internal {

enum class WireFormat { kOpenAiChat, kAnthropic, kGemini, kOllama };

// A provider name users write in config ("openai", "groq", …) and how to talk to it.
struct ProviderSpec {
  std::string_view name;
  WireFormat wire;
  std::string_view default_base_url;
  std::string_view default_key_env;  // Empty: no key needed (local servers).
  bool is_openai = false;  // api.openai.com itself: max_completion_tokens, reasoning_effort.
  // Refuses `stream_options` (Mistral: 422 "extra_forbidden"); sends usage at the end anyway.
  bool refuses_stream_options = false;
};

// nullptr for an unknown name.
const ProviderSpec* FindProvider(std::string_view name);
std::span<const ProviderSpec> Providers();
// "openai, anthropic, …" for error messages.
std::string ProviderNames();

// Where and how one request is sent: a resolved profile.
struct Endpoint {
  std::string provider;  // ProviderSpec::name.
  std::string base_url;  // No trailing '/'.
  std::string api_key;   // Empty when none.
  // Where the key came from, for messages: "OPENAI_API_KEY", "the config file", "" (none).
  std::string api_key_source;
  std::vector<http::Header> headers;  // Extra headers from the profile.
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds first_byte_timeout{120'000};
  std::chrono::milliseconds idle_timeout{120'000};
};

// The HTTP request for `request` (whose model is already resolved, never empty). `model` may be
// nullptr (a model the catalog does not know). Errors: kInvalidArgument when a tool schema or
// tool-call arguments in the history are not JSON objects, naming the tool.
Result<http::Request> BuildRequest(const ProviderSpec& spec, const Endpoint& endpoint,
                                   const CompletionRequest& request, const ModelInfo* model);

// Turns the body of a 2xx streaming response into StreamEvents, incrementally: Feed may be given
// any split of the bytes (down to one byte at a time). Exactly one terminal event (kDone or
// kError) is emitted, by Feed or at the latest by Finish; nothing after it.
class StreamParser {
 public:
  virtual ~StreamParser() = default;
  virtual void Feed(std::string_view bytes) = 0;
  // The body ended cleanly. Emits kDone, or kError when the provider's end marker never came.
  virtual void Finish() = 0;
  // Whether the terminal event was emitted.
  virtual bool is_terminated() const = 0;
  // Whether any event was emitted.
  virtual bool has_output() const = 0;
};

// `provider` names the provider in error messages; generated tool-call ids (Gemini, Ollama) are
// "<tool_id_prefix>_<n>".
std::unique_ptr<StreamParser> NewStreamParser(const ProviderSpec& spec, std::string provider,
                                              std::string tool_id_prefix, EventSink sink);

// A wait as people read it: "800 ms", "3 s", "60 min" (rounded up).
std::string DelayText(std::chrono::milliseconds delay);

// Maps a non-2xx response to a StreamError a user can act on. The message names the provider
// (and the key's source for 401/403, the model for 404) and never contains `api_key`.
StreamError ErrorFromResponse(const Endpoint& endpoint, std::string_view model, int status,
                              const std::vector<http::Header>& headers, std::string_view body);

// Replaces every occurrence of `secret` (when non-empty) in `text` with "***".
std::string Redact(std::string text, std::string_view secret);
// What must never be shown of an endpoint: its API key, and its profile's header values of 8
// bytes or more (a header may carry a token, e.g. OpenRouter's or a gateway's).
std::vector<std::string> SecretsOf(const Endpoint& endpoint);
// `text` with every one of `secrets` replaced by "***".
std::string RedactAll(std::string text, const std::vector<std::string>& secrets);

}  // namespace lai::llm::internal
