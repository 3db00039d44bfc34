#include "llm/internal/profiles.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace lai::llm::internal {
namespace {

std::string_view GetEnv(const char* const* environment, std::string_view name) {
  for (const char* const* entry = environment; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    if (text.size() > name.size() && text.starts_with(name) && text[name.size()] == '=') {
      return text.substr(name.size() + 1);
    }
  }
  return {};
}

// Fills info.api_key_source/has_api_key and the endpoint's key from the file or the environment.
// Spaces and line breaks around the key are dropped (a pasted key often ends in one); one inside
// it, or any other control character, is refused, naming where the key came from and not the key.
Status ResolveKey(const ProviderSpec& spec, const std::string& file_key, const std::string& key_env,
                  const char* const* environment, ResolvedProfile& profile) {
  std::string variable = key_env.empty() ? std::string(spec.default_key_env) : key_env;
  std::string_view key;
  if (!file_key.empty()) {
    key = file_key;
    profile.endpoint.api_key_source = "the config file";
    profile.info.api_key_source = "config file";
  } else if (!variable.empty()) {
    key = GetEnv(environment, variable);
    profile.endpoint.api_key_source = variable;
    profile.info.api_key_source = "env " + variable;
  } else {
    profile.info.api_key_source = "none";
  }
  constexpr std::string_view kSpace = " \t\r\n";
  key.remove_prefix(std::min(key.size(), key.find_first_not_of(kSpace)));
  key = key.substr(0, key.find_last_not_of(kSpace) + 1);
  if (std::any_of(key.begin(), key.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; })) {
    return Error(
        ErrorCode::kInvalidArgument,
        fmt::format("profile '{}': the API key from {} has a space, line break or other "
                    "control character inside it; set it again without them",
                    profile.info.name, file_key.empty() ? variable : "the config file (api_key)"));
  }
  profile.endpoint.api_key = std::string(key);
  profile.info.has_api_key = !key.empty();
  return OkStatus();
}

ResolvedProfile MakeProfile(const ProviderSpec& spec, std::string name, std::string model,
                            std::string base_url) {
  ResolvedProfile profile;
  profile.spec = &spec;
  profile.info.name = std::move(name);
  profile.info.provider = std::string(spec.name);
  profile.info.model = std::move(model);
  profile.info.base_url = base_url.empty() ? std::string(spec.default_base_url) : base_url;
  while (profile.info.base_url.ends_with('/')) profile.info.base_url.pop_back();
  // A base written with the API's own path, as other tools' docs give it (Anthropic's …/v1,
  // Gemini's …/v1beta, Ollama's OpenAI-compatible …/v1, a whole …/v1/chat/completions): the
  // request paths add it again.
  std::vector<std::string_view> added;
  switch (spec.wire) {
    case WireFormat::kAnthropic:
      added = {"/v1"};
      break;
    case WireFormat::kGemini:
      added = {"/v1beta", "/v1"};
      break;
    case WireFormat::kOllama:
      added = {"/v1", "/api"};
      break;
    case WireFormat::kOpenAiChat:
      added = {"/chat/completions"};  // The whole endpoint, pasted from a curl example.
      break;
  }
  for (std::string_view suffix : added) {
    if (profile.info.base_url.ends_with(suffix)) {
      profile.info.base_url.resize(profile.info.base_url.size() - suffix.size());
      break;
    }
  }
  profile.endpoint.provider = profile.info.provider;
  profile.endpoint.base_url = profile.info.base_url;
  return profile;
}

}  // namespace

std::string_view DefaultModel(std::string_view provider) {
  if (provider == "anthropic") return "claude-sonnet-4-5";
  if (provider == "openai") return "gpt-4.1";
  if (provider == "gemini") return "gemini-2.5-flash";
  if (provider == "openrouter") return "anthropic/claude-sonnet-4.5";
  if (provider == "deepseek") return "deepseek-chat";
  if (provider == "groq") return "llama-3.3-70b-versatile";
  if (provider == "mistral") return "mistral-large-latest";
  if (provider == "xai") return "grok-4";
  if (provider == "ollama") return "qwen3:8b";
  return {};
}

Result<ResolvedProfiles> ResolveProfiles(const Config& config, const char* const* environment) {
  ResolvedProfiles out;
  for (const Config::Profile& entry : config.profiles) {
    const ProviderSpec* spec = FindProvider(entry.provider);
    if (spec == nullptr) {
      return Error(ErrorCode::kInvalidArgument,
                   fmt::format("{}: profiles.{}.provider: unknown provider '{}' (known: {})",
                               entry.origin, entry.name, entry.provider, ProviderNames()));
    }
    ResolvedProfile profile = MakeProfile(*spec, entry.name, entry.model, entry.base_url);
    profile.is_configured = true;
    RETURN_IF_ERROR(ResolveKey(*spec, entry.api_key, entry.api_key_env, environment, profile));
    for (const auto& [name, value] : entry.headers)
      profile.endpoint.headers.push_back({name, value});
    profile.endpoint.connect_timeout = std::chrono::milliseconds(entry.connect_timeout_ms);
    profile.endpoint.first_byte_timeout = std::chrono::milliseconds(entry.first_byte_timeout_ms);
    profile.endpoint.idle_timeout = std::chrono::milliseconds(entry.idle_timeout_ms);
    profile.rate_limit_per_minute = entry.rate_limit_per_minute;
    profile.fallback = entry.fallback;
    profile.reasoning_effort = entry.reasoning_effort;
    profile.thinking_budget_tokens = entry.thinking_budget_tokens;
    out.profiles.push_back(std::move(profile));
  }
  if (config.profiles.empty()) {
    // Implicit profiles: every cloud provider with a key in the environment, then local ollama.
    for (std::string_view provider :
         {"anthropic", "openai", "gemini", "openrouter", "deepseek", "groq", "mistral", "xai"}) {
      const ProviderSpec* spec = FindProvider(provider);
      if (GetEnv(environment, spec->default_key_env).empty()) continue;
      ResolvedProfile profile =
          MakeProfile(*spec, std::string(provider), std::string(DefaultModel(provider)), "");
      profile.info.is_implicit = true;
      RETURN_IF_ERROR(ResolveKey(*spec, "", "", environment, profile));
      out.profiles.push_back(std::move(profile));
    }
    ResolvedProfile ollama =
        MakeProfile(*FindProvider("ollama"), "ollama", std::string(DefaultModel("ollama")), "");
    ollama.info.is_implicit = true;
    RETURN_IF_ERROR(ResolveKey(*ollama.spec, "", "", environment, ollama));
    if (out.profiles.empty()) {
      ollama.setup_hint =
          "no provider is configured, so a local Ollama was tried: set a key such as "
          "OPENAI_API_KEY or ANTHROPIC_API_KEY, add a [profiles.<name>] table to " +
          (config.file.empty() ? DefaultConfigPath() : config.file) +
          ", or start Ollama (`lapce-ai doctor` checks the setup)";
    }
    out.profiles.push_back(std::move(ollama));
  }
  const std::string& wanted = config.llm.default_profile;
  if (wanted.empty()) {
    out.default_profile = out.profiles.front().info.name;
  } else {
    auto it = std::find_if(out.profiles.begin(), out.profiles.end(),
                           [&](const ResolvedProfile& p) { return p.info.name == wanted; });
    if (it == out.profiles.end()) {
      std::string names;
      for (const ResolvedProfile& p : out.profiles) {
        names += (names.empty() ? "" : ", ") + p.info.name;
      }
      return Error(ErrorCode::kInvalidArgument,
                   fmt::format("llm.default_profile: '{}' names no profile (profiles: {}); add a "
                               "[profiles.{}] table or pick one of those",
                               wanted, names, wanted));
    }
    out.default_profile = wanted;
  }
  return out;
}

Status CheckProfileName(const ResolvedProfiles& resolved, std::string_view name) {
  std::string names;
  for (const ResolvedProfile& p : resolved.profiles) {
    if (p.info.name == name) return OkStatus();
    names += (names.empty() ? "" : ", ") + p.info.name;
  }
  return Error(ErrorCode::kInvalidArgument,
               fmt::format("no profile '{}'; the profiles are: {} (`lapce-ai doctor` lists "
                           "them)",
                           name, names));
}

Result<ResolvedProfile> ResolveAdHocProfile(const ProfileInfo& info,
                                            const char* const* environment) {
  const ProviderSpec* spec = FindProvider(info.provider);
  if (spec == nullptr) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("--provider: unknown provider '{}' (known: {})", info.provider,
                             ProviderNames()));
  }
  std::string model = info.model.empty() ? std::string(DefaultModel(spec->name)) : info.model;
  if (model.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("--model: {} has no default model; name one", spec->name));
  }
  if (std::string problem = info.base_url.empty() ? "" : BaseUrlProblem(info.base_url);
      !problem.empty()) {
    return Error(ErrorCode::kInvalidArgument, "--base-url: " + problem);
  }
  ResolvedProfile profile =
      MakeProfile(*spec, info.name.empty() ? "ad-hoc" : info.name, model, info.base_url);
  RETURN_IF_ERROR(ResolveKey(*spec, "", "", environment, profile));
  return profile;
}

Result<Catalog> CatalogFromConfig(const Config& config) {
  Catalog catalog = Catalog::BuiltIn();
  for (const Config::ModelOverride& entry : config.models) {
    if (FindProvider(entry.provider) == nullptr) {
      return Error(
          ErrorCode::kInvalidArgument,
          fmt::format("{}: models.\"{}/{}\": unknown provider '{}' (known: {})", entry.origin,
                      entry.provider, entry.id, entry.provider, ProviderNames()));
    }
    const ModelInfo* existing = catalog.Find(entry.provider, entry.id);
    ModelInfo model = existing != nullptr ? *existing : catalog.Resolve(entry.provider, entry.id);
    model.id = entry.id;
    if (entry.context_window) model.context_window = *entry.context_window;
    if (entry.max_output_tokens) model.max_output_tokens = *entry.max_output_tokens;
    if (entry.supports_tools) model.supports_tools = *entry.supports_tools;
    if (entry.supports_images) model.supports_images = *entry.supports_images;
    if (entry.supports_reasoning) model.supports_reasoning = *entry.supports_reasoning;
    if (entry.supports_prompt_cache) model.supports_prompt_cache = *entry.supports_prompt_cache;
    if (entry.input_price) model.input_price = *entry.input_price;
    if (entry.output_price) model.output_price = *entry.output_price;
    if (entry.cache_write_price) model.cache_write_price = *entry.cache_write_price;
    if (entry.cache_read_price) model.cache_read_price = *entry.cache_read_price;
    catalog.Override(std::move(model));
  }
  return catalog;
}

}  // namespace lai::llm::internal
