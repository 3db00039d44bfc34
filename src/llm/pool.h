// ProviderPool: the configured profiles, each with its adapter, rate limiter and circuit breaker,
// over one shared HTTP client. Routes a request by profile name, retries what may be retried
// (never after output reached the sink), and falls back to the next profile when one is
// unavailable. Thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/config.h"
#include "base/result.h"
#include "llm/catalog.h"
#include "llm/types.h"

namespace lai::http {
class Client;
struct ClientOptions;
struct Request;
}

namespace lai::llm {

class StreamHandle;  // Cancels its stream on Cancel() (the sink then gets kError/kCancelled).

struct ProfileInfo {
  std::string name;
  std::string provider;  // "openai", "anthropic", "gemini", "ollama", "openrouter", …
  std::string model;
  std::string base_url;
  std::string api_key_source;  // "env OPENAI_API_KEY", "config file", "none" — never the key.
  bool has_api_key = false;
  // Made for a key in the environment, or the local Ollama tried for want of any profile.
  bool is_implicit = false;
};

// The environment variables the known providers' keys are read from by default
// (OPENAI_API_KEY, ANTHROPIC_API_KEY, …).
std::vector<std::string> DefaultKeyVariables();

// Tuning and test seams; the defaults suit production.
struct PoolOptions {
  // NULL-terminated "NAME=value" array the API keys are read from; nullptr = the process
  // environment.
  const char* const* environ = nullptr;
  int max_attempts = 5;  // Per profile, including the first.
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{8'000};
  // The longest retry-after waited on; a provider asking for more fails the attempt at once.
  std::chrono::milliseconds max_retry_after{60'000};
  // Consecutive failures that open the circuit of an endpoint and model.
  int breaker_failure_threshold = 5;
  std::chrono::milliseconds breaker_cool_down{30'000};
  // A model chosen for one run (`--model` without `--provider`): it replaces the configured model
  // of profile `model_profile`, or of the default profile when that is empty. Empty: none.
  std::string model;
  std::string model_profile;
  // The profile used where none is named (`--profile P` for one run): it replaces the configured
  // default. Empty: the configured one.
  std::string default_profile;
};

// The HTTP client options the configuration asks for (llm.max_connections_per_host): a pool's
// own client is made with them; a caller that makes the client passes them too.
http::ClientOptions HttpClientOptions(const Config& config);

// The name of a one-off profile made from command-line flags (CreateAdHoc).
inline constexpr std::string_view kAdHocProfileName = "command-line";

class ProviderPool {
 public:
  // Builds the profiles from config (and environment keys). Errors: kInvalidArgument naming the
  // profile and field; kPermissionDenied for a config file holding a key that others can read.
  static Result<std::unique_ptr<ProviderPool>> Create(const Config& config,
                                                      std::shared_ptr<http::Client> http);
  // A one-off profile from flags (`complete --provider X --model M --base-url U`), by convention
  // named kAdHocProfileName.
  static Result<std::unique_ptr<ProviderPool>> CreateAdHoc(const Config& config,
                                                           const ProfileInfo& profile,
                                                           std::shared_ptr<http::Client> http);
  // As above with explicit options. `http` may be null: the pool then creates its own client.
  static Result<std::unique_ptr<ProviderPool>> Create(const Config& config,
                                                      std::shared_ptr<http::Client> http,
                                                      const PoolOptions& options);
  static Result<std::unique_ptr<ProviderPool>> CreateAdHoc(const Config& config,
                                                           const ProfileInfo& profile,
                                                           std::shared_ptr<http::Client> http,
                                                           const PoolOptions& options);
  // Cancels every stream still running (each sink gets kError/kCancelled) and waits until their
  // transfers have completed. Must not run inside a sink. A StreamHandle may outlive the pool
  // (its Cancel is then a no-op).
  ~ProviderPool();

  // Empty name = the default profile. The sink receives every event of the stream, ending with
  // kDone or kError. Errors here only for an unknown profile (kNotFound).
  Result<std::shared_ptr<StreamHandle>> Stream(std::string_view profile, CompletionRequest request,
                                               EventSink sink);

  std::vector<ProfileInfo> Profiles() const;
  // kInvalidArgument, with the message Stream's requests would fail with, when the profile
  // (empty = the default) needs an API key it has not got: a command can say so before it starts
  // a task. OK for an unknown profile (Stream names the known ones).
  Status CheckKey(std::string_view profile) const;
  // A GET of the profile's model list, authenticated as its completions are (its key, its
  // headers), short timeouts: whether the provider answers, for `doctor`. kNotFound for an
  // unknown profile.
  Result<http::Request> ModelListRequest(std::string_view profile) const;
  // Name of the profile an empty name selects.
  std::string default_profile() const;
  const Catalog& catalog() const;
  // Whether a cost computed for this model means something: the catalog (or config) has its
  // prices, or its provider is a local server (free). False: a cost of 0 is unknown, not free.
  bool KnowsCost(std::string_view provider, std::string_view model) const;

 private:
  struct Impl;
  explicit ProviderPool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class StreamHandle {
 public:
  virtual ~StreamHandle() = default;
  virtual void Cancel() = 0;
};

}  // namespace lai::llm
