// Profiles resolved from config and the environment: provider, endpoint (with the API key),
// rate limit and fallback; and the catalog with config overrides applied. Thread-compatible.
#pragma once

#include <string>
#include <vector>

#include "base/config.h"
#include "base/result.h"
#include "llm/catalog.h"
#include "llm/internal/adapter.h"
#include "llm/pool.h"

namespace lai::llm::internal {

struct ResolvedProfile {
  ProfileInfo info;
  const ProviderSpec* spec = nullptr;
  Endpoint endpoint;
  uint32_t rate_limit_per_minute = 0;
  std::string fallback;  // Empty: none.
  // Thinking asked of the model when a request does not say (Config::Profile).
  std::string reasoning_effort;
  int64_t thinking_budget_tokens = 0;
  // Set on the implicit ollama profile when nothing else is configured: said, and not retried,
  // when it cannot be reached (a first run with no key and no config file).
  std::string setup_hint;
  // From a [profiles.<name>] table of the config file, where api_key_env and api_key can be set
  // (not an implicit profile, nor one from command-line flags).
  bool is_configured = false;
};

struct ResolvedProfiles {
  std::vector<ResolvedProfile> profiles;
  std::string default_profile;  // Names one of `profiles`.
};

// From [profiles.*] or, when there are none, one implicit profile per provider whose key variable
// is set in `environment` (NULL-terminated "NAME=value" array) plus ollama. Errors
// (kInvalidArgument) name the profile's file:line and field: an unknown provider, a
// llm.default_profile naming no profile.
Result<ResolvedProfiles> ResolveProfiles(const Config& config, const char* const* environment);

// OK when `name` is one of `resolved`'s profiles, else kInvalidArgument: "no profile 'X'; the
// profiles are: …".
Status CheckProfileName(const ResolvedProfiles& resolved, std::string_view name);

// One profile from flags; provider must be known, model non-empty; an empty base_url means the
// provider's default. The key comes from the provider's default variable.
Result<ResolvedProfile> ResolveAdHocProfile(const ProfileInfo& profile,
                                            const char* const* environment);

// The built-in catalog with config.models applied. Errors: kInvalidArgument for an override of
// an unknown provider, naming its file:line.
Result<Catalog> CatalogFromConfig(const Config& config);

// The model an implicit profile of `provider` uses.
std::string_view DefaultModel(std::string_view provider);

}  // namespace lai::llm::internal
