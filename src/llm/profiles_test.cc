// Profiles from config and environment, catalog overrides, and pool construction.

#include "llm/internal/profiles.h"

#include <gtest/gtest.h>

#include "llm/pool.h"

namespace lai::llm::internal {
namespace {

// A NULL-terminated environment the test controls.
class Environment {
 public:
  explicit Environment(std::vector<std::string> entries) : entries_(std::move(entries)) {
    for (const std::string& entry : entries_) pointers_.push_back(entry.c_str());
    pointers_.push_back(nullptr);
  }
  const char* const* get() const { return pointers_.data(); }

 private:
  std::vector<std::string> entries_;
  std::vector<const char*> pointers_;
};

Config::Profile MakeProfile(std::string name, std::string provider, std::string model) {
  Config::Profile profile;
  profile.name = std::move(name);
  profile.provider = std::move(provider);
  profile.model = std::move(model);
  profile.origin = "/etc/lai.toml:7";
  return profile;
}

TEST(ResolveProfilesTest, ImplicitProfilesFollowTheKeysInTheEnvironment) {
  Environment environment({"ANTHROPIC_API_KEY=sk-ant-1", "GEMINI_API_KEY=g-1", "PATH=/bin"});
  Result<ResolvedProfiles> resolved = ResolveProfiles(Config{}, environment.get());
  ASSERT_TRUE(resolved.ok()) << resolved.error().message();
  std::vector<std::string> names;
  for (const ResolvedProfile& profile : resolved->profiles) names.push_back(profile.info.name);
  EXPECT_EQ(names, (std::vector<std::string>{"anthropic", "gemini", "ollama"}));
  EXPECT_EQ(resolved->default_profile, "anthropic");
  const ResolvedProfile& anthropic = resolved->profiles[0];
  EXPECT_EQ(anthropic.info.model, "claude-sonnet-4-5");
  EXPECT_EQ(anthropic.info.base_url, "https://api.anthropic.com");
  EXPECT_EQ(anthropic.info.api_key_source, "env ANTHROPIC_API_KEY");
  EXPECT_TRUE(anthropic.info.has_api_key);
  EXPECT_EQ(anthropic.endpoint.api_key, "sk-ant-1");
  const ResolvedProfile& ollama = resolved->profiles[2];
  EXPECT_EQ(ollama.info.api_key_source, "none");
  EXPECT_FALSE(ollama.info.has_api_key);
  EXPECT_EQ(ollama.info.base_url, "http://localhost:11434");
  EXPECT_EQ(ollama.setup_hint, "");  // Something else is configured.
}

// With no key and no profile, only the local Ollama is left: its failure says how to set up.
TEST(ResolveProfilesTest, AnOllamaTriedForWantOfAnythingElseCarriesASetupHint) {
  Environment environment({"PATH=/bin"});
  Config config;
  config.file = "/home/u/.config/lapce-ai/config.toml";
  Result<ResolvedProfiles> resolved = ResolveProfiles(config, environment.get());
  ASSERT_TRUE(resolved.ok()) << resolved.error().message();
  ASSERT_EQ(resolved->profiles.size(), 1u);
  const std::string& hint = resolved->profiles[0].setup_hint;
  EXPECT_NE(hint.find("OPENAI_API_KEY"), std::string::npos) << hint;
  EXPECT_NE(hint.find("to /home/u/.config/lapce-ai/config.toml"), std::string::npos) << hint;
  EXPECT_NE(hint.find("lapce-ai doctor"), std::string::npos) << hint;
}

TEST(ResolveProfilesTest, ConfiguredProfilesTakeKeysFromTheirVariableOrTheFile) {
  Config config;
  Config::Profile work = MakeProfile("work", "openai", "gpt-4.1");
  work.api_key_env = "WORK_OPENAI";
  work.headers = {{"OpenAI-Organization", "org-1"}};
  work.idle_timeout_ms = 5000;
  work.fallback = "home";
  Config::Profile home = MakeProfile("home", "anthropic", "claude-haiku-4-5");
  home.api_key = "sk-from-file";
  home.base_url = "http://127.0.0.1:9000";
  config.profiles = {work, home};
  config.llm.default_profile = "home";
  Environment environment({"WORK_OPENAI=sk-work", "OPENAI_API_KEY=sk-ignored"});
  Result<ResolvedProfiles> resolved = ResolveProfiles(config, environment.get());
  ASSERT_TRUE(resolved.ok()) << resolved.error().message();
  ASSERT_EQ(resolved->profiles.size(), 2u);
  EXPECT_EQ(resolved->default_profile, "home");
  const ResolvedProfile& first = resolved->profiles[0];
  EXPECT_EQ(first.endpoint.api_key, "sk-work");
  EXPECT_EQ(first.info.api_key_source, "env WORK_OPENAI");
  EXPECT_EQ(first.endpoint.idle_timeout, std::chrono::milliseconds(5000));
  EXPECT_EQ(first.fallback, "home");
  ASSERT_EQ(first.endpoint.headers.size(), 1u);
  EXPECT_EQ(first.endpoint.headers[0].name, "OpenAI-Organization");
  const ResolvedProfile& second = resolved->profiles[1];
  EXPECT_EQ(second.endpoint.api_key, "sk-from-file");
  EXPECT_EQ(second.info.api_key_source, "config file");
  EXPECT_EQ(second.info.base_url, "http://127.0.0.1:9000");
}

TEST(ResolveProfilesTest, MissingKeyIsReportedNotFatal) {
  Config config;
  config.profiles = {MakeProfile("a", "openai", "gpt-4.1")};
  Environment environment({});
  Result<ResolvedProfiles> resolved = ResolveProfiles(config, environment.get());
  ASSERT_TRUE(resolved.ok());
  EXPECT_FALSE(resolved->profiles[0].info.has_api_key);
  EXPECT_EQ(resolved->profiles[0].info.api_key_source, "env OPENAI_API_KEY");
}

// A pasted key often comes with a line break or spaces around it: they are dropped (the newline
// made every request fail as a malformed header, retried five times). One inside the key is
// refused at once, saying where the key came from and never showing it.
TEST(ResolveProfilesTest, SpacesAroundAKeyAreDroppedAndOnesInsideRefused) {
  Environment pasted({"OPENAI_API_KEY=  sk-pasted\n", "GROQ_API_KEY=\tgsk-1 "});
  Result<ResolvedProfiles> resolved = ResolveProfiles(Config{}, pasted.get());
  ASSERT_TRUE(resolved.ok()) << resolved.error().message();
  ASSERT_GE(resolved->profiles.size(), 2u);
  EXPECT_EQ(resolved->profiles[0].info.name, "openai");
  EXPECT_EQ(resolved->profiles[0].endpoint.api_key, "sk-pasted");
  EXPECT_EQ(resolved->profiles[1].info.name, "groq");  // Groq, Mistral and xAI keys count too.
  EXPECT_EQ(resolved->profiles[1].endpoint.api_key, "gsk-1");

  Environment broken({"OPENAI_API_KEY=sk-first\nsk-second"});
  resolved = ResolveProfiles(Config{}, broken.get());
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(resolved.error().message().find("from OPENAI_API_KEY has a space, line break"),
            std::string::npos)
      << resolved.error().message();
  EXPECT_EQ(resolved.error().message().find("sk-"), std::string::npos) << "the key is shown";

  Config config;
  config.profiles = {MakeProfile("a", "openai", "gpt-4.1")};
  config.profiles[0].api_key = "sk-in file";
  resolved = ResolveProfiles(config, pasted.get());
  ASSERT_FALSE(resolved.ok());
  EXPECT_NE(resolved.error().message().find("profile 'a': the API key from the config file"),
            std::string::npos)
      << resolved.error().message();
}

TEST(ResolveProfilesTest, ErrorsNameFileLineProfileAndField) {
  Config config;
  config.profiles = {MakeProfile("x", "openia", "gpt-4.1")};
  Environment environment({});
  Result<ResolvedProfiles> resolved = ResolveProfiles(config, environment.get());
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(resolved.error().message(),
            "/etc/lai.toml:7: profiles.x.provider: unknown provider 'openia' (known: " +
                ProviderNames() + ")");

  Config wrong_default;
  wrong_default.llm.default_profile = "fast";
  resolved = ResolveProfiles(wrong_default, environment.get());
  ASSERT_FALSE(resolved.ok());
  EXPECT_NE(resolved.error().message().find("llm.default_profile: 'fast' names no profile "
                                            "(profiles: ollama)"),
            std::string::npos)
      << resolved.error().message();
}

TEST(ResolveProfilesTest, AdHocProfileFromFlags) {
  Environment environment({"OPENROUTER_API_KEY=or-1"});
  ProfileInfo flags{.provider = "openrouter", .model = "openai/gpt-5"};
  Result<ResolvedProfile> profile = ResolveAdHocProfile(flags, environment.get());
  ASSERT_TRUE(profile.ok());
  EXPECT_EQ(profile->info.name, "ad-hoc");
  EXPECT_EQ(profile->endpoint.base_url, "https://openrouter.ai/api/v1");
  EXPECT_EQ(profile->endpoint.api_key, "or-1");
  flags.provider = "nope";
  EXPECT_FALSE(ResolveAdHocProfile(flags, environment.get()).ok());
  flags = {.provider = "vllm", .model = "m", .base_url = "localhost:8000"};
  Result<ResolvedProfile> bad_url = ResolveAdHocProfile(flags, environment.get());
  ASSERT_FALSE(bad_url.ok());
  EXPECT_NE(bad_url.error().message().find("--base-url"), std::string::npos);
}

// A base URL given with the API's own version path, as other tools document it, is not doubled
// (…/v1/v1/messages was a 404 blamed on the model); OpenAI-style bases keep their /v1.
TEST(ResolveProfilesTest, ABaseWithTheApisOwnPathIsNotDoubled) {
  Environment environment({"ANTHROPIC_API_KEY=a", "GEMINI_API_KEY=g", "OPENAI_API_KEY=o"});
  struct Case {
    const char* provider;
    const char* base_url;
    const char* expected;
  };
  for (const Case& c :
       {Case{"anthropic", "http://127.0.0.1:9/v1/", "http://127.0.0.1:9"},
        Case{"anthropic", "https://proxy.lan/anthropic", "https://proxy.lan/anthropic"},
        Case{"gemini", "http://127.0.0.1:9/v1beta", "http://127.0.0.1:9"},
        Case{"ollama", "http://127.0.0.1:11434/v1", "http://127.0.0.1:11434"},
        Case{"ollama", "http://127.0.0.1:11434/api", "http://127.0.0.1:11434"},
        Case{"openai", "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"},
        Case{"openai", "http://127.0.0.1:9/v1/chat/completions", "http://127.0.0.1:9/v1"}}) {
    ProfileInfo flags{.provider = c.provider, .model = "m", .base_url = c.base_url};
    Result<ResolvedProfile> profile = ResolveAdHocProfile(flags, environment.get());
    ASSERT_TRUE(profile.ok()) << profile.error().message();
    EXPECT_EQ(profile->endpoint.base_url, c.expected) << c.provider << " " << c.base_url;
  }
}

TEST(CatalogFromConfigTest, OverridesChangeOnlyTheGivenFields) {
  Config config;
  Config::ModelOverride price{.provider = "openai", .id = "gpt-4.1"};
  price.input_price = 1.5;
  Config::ModelOverride added{.provider = "openrouter", .id = "acme/coder-1"};
  added.context_window = 65536;
  added.output_price = 4;
  config.models = {price, added};
  Result<Catalog> catalog = CatalogFromConfig(config);
  ASSERT_TRUE(catalog.ok());
  const ModelInfo* gpt = catalog->Find("openai", "gpt-4.1");
  EXPECT_DOUBLE_EQ(gpt->input_price, 1.5);
  EXPECT_DOUBLE_EQ(gpt->output_price, 8.0);
  EXPECT_EQ(gpt->context_window, 1047576);
  const ModelInfo* coder = catalog->Find("openrouter", "acme/coder-1");
  ASSERT_NE(coder, nullptr);
  EXPECT_EQ(coder->context_window, 65536);
  EXPECT_TRUE(coder->supports_tools);

  Config bad;
  bad.models = {Config::ModelOverride{.provider = "acme", .id = "x", .origin = "f.toml:3"}};
  Result<Catalog> refused = CatalogFromConfig(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("f.toml:3: models.\"acme/x\": unknown provider"),
            std::string::npos);
}

TEST(ProviderPoolTest, CreateListsProfilesAndRejectsUnknownNames) {
  Environment environment({"OPENAI_API_KEY=sk-1"});
  PoolOptions options;
  options.environ = environment.get();
  Result<std::unique_ptr<ProviderPool>> pool = ProviderPool::Create(Config{}, nullptr, options);
  ASSERT_TRUE(pool.ok()) << pool.error().message();
  std::vector<ProfileInfo> profiles = (*pool)->Profiles();
  ASSERT_EQ(profiles.size(), 2u);
  EXPECT_EQ(profiles[0].name, "openai");
  EXPECT_EQ((*pool)->default_profile(), "openai");
  EXPECT_NE((*pool)->catalog().Find("openai", "gpt-4.1"), nullptr);
  auto stream = (*pool)->Stream("nope", CompletionRequest{}, [](const StreamEvent&) {});
  ASSERT_FALSE(stream.ok());
  EXPECT_EQ(stream.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(stream.error().message(), "no profile 'nope' (profiles: openai, ollama)");
}

}  // namespace
}  // namespace lai::llm::internal
