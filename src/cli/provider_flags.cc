#include "cli/provider_flags.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "agent/session.h"
#include "http/client.h"
#include "llm/internal/adapter.h"
#include "llm/internal/profiles.h"
#include "llm/pool.h"

namespace lai::cli {

void AddAgentModeFlags(CLI::App& command, AgentModeFlags& flags) {
  command.add_option("--mode", flags.mode, "Mode: code, architect, ask, debug, orchestrator, …");
  command
      .add_option("--tool-protocol", flags.tool_protocol,
                  "How the model calls tools: native or xml (default: the model catalog)")
      ->check(CLI::IsMember({"native", "xml"}));
}

void ApplyAgentModeFlags(const AgentModeFlags& flags, agent::AgentSettings& settings) {
  if (!flags.mode.empty()) settings.default_mode = flags.mode;
  if (flags.tool_protocol == "native") settings.tool_protocol = agent::ToolProtocol::kNative;
  if (flags.tool_protocol == "xml") settings.tool_protocol = agent::ToolProtocol::kXml;
}

void AddProviderFlags(CLI::App& command, ProviderFlags& flags) {
  command.add_option("--profile", flags.profile,
                     "Configured profile (default: the default profile)");
  command.add_option("--provider", flags.provider,
                     "Provider for a one-off profile: " + llm::internal::ProviderNames());
  command.add_option(
      "--model", flags.model,
      "Model id (see `lapce-ai models`); without --provider it replaces the profile's model");
  command.add_option("--base-url", flags.base_url,
                     "Base URL for a one-off profile (default: the provider's)");
}

bool NamesAProfile(const ProviderFlags& flags) {
  return !flags.profile.empty() || !flags.provider.empty() || !flags.base_url.empty();
}

Status CheckProviderFlags(const Config& config, const ProviderFlags& flags) {
  if (!NamesAProfile(flags)) return OkStatus();
  if (flags.provider.empty() && flags.base_url.empty()) {  // --profile P: P must exist.
    ASSIGN_OR_RETURN(llm::internal::ResolvedProfiles resolved,
                     llm::internal::ResolveProfiles(config, ::environ));
    Status named = llm::internal::CheckProfileName(resolved, flags.profile);
    if (!named.ok()) return Error(named.code(), "--profile: " + named.error().message());
    return OkStatus();
  }
  if (!flags.profile.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "--profile cannot be combined with --provider/--base-url; pass one or the other");
  }
  if (flags.provider.empty()) {
    return Error(ErrorCode::kInvalidArgument, "--base-url needs --provider (one of " +
                                                  llm::internal::ProviderNames() + ")");
  }
  if (llm::internal::FindProvider(flags.provider) == nullptr) {
    return Error(ErrorCode::kInvalidArgument, "--provider '" + flags.provider +
                                                  "' is unknown; expected one of " +
                                                  llm::internal::ProviderNames());
  }
  if (flags.model.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "--provider needs --model (see `lapce-ai models --provider " + flags.provider +
                     "`)");
  }
  return OkStatus();
}

Result<std::unique_ptr<llm::ProviderPool>> PoolFor(const Config& config, const ProviderFlags& flags,
                                                   std::shared_ptr<http::Client> http) {
  bool is_ad_hoc = !flags.provider.empty() || !flags.base_url.empty();
  if (!is_ad_hoc) {
    llm::PoolOptions options;
    options.model = flags.model;  // `--model` alone: the chosen profile with another model.
    options.model_profile = flags.profile;
    options.default_profile = flags.profile;
    return llm::ProviderPool::Create(config, std::move(http), options);
  }
  RETURN_IF_ERROR(CheckProviderFlags(config, flags));
  llm::ProfileInfo profile;
  profile.name = std::string(llm::kAdHocProfileName);
  profile.provider = flags.provider;
  profile.model = flags.model;
  profile.base_url = flags.base_url;
  return llm::ProviderPool::CreateAdHoc(config, profile, std::move(http));
}

std::string CostText(const llm::ProviderPool& pool, const std::string& profile, double cost_usd,
                     int decimals) {
  const std::string name = profile.empty() ? pool.default_profile() : profile;
  for (const llm::ProfileInfo& info : pool.Profiles()) {
    if (info.name != name || pool.KnowsCost(info.provider, info.model)) continue;
    const std::string key = info.provider + "/" + info.model;
    return "unknown (no prices for " + key + "; set input_price and output_price under [models.\"" +
           key + "\"] in the config)";
  }
  char text[48];
  std::snprintf(text, sizeof(text), "$%.*f", decimals, cost_usd);
  return text;
}

}  // namespace lai::cli
