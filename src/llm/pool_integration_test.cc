// ProviderPool end to end over loopback HTTP against the fake provider server: golden replays,
// what we send, retries, no retry after output, fallback, rate limit, circuit breaker, timeouts,
// dropped connections and cancellation. Every wait is bounded.

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "http/client.h"
#include "llm/pool.h"
#include "llm/test_events.h"
#include "testing/fake_provider_server.h"

namespace lai::llm {
namespace {

using namespace std::chrono_literals;
using lai::testing::FakeProviderServer;
using lai::testing::FakeResponse;
using lai::testing::LoadGoldenResponse;
using lai::testing::MakeResponse;
using test_support::FormatEvents;
using test_support::ProvidersDir;
using test_support::ReadFileOrEmpty;

constexpr char kKey[] = "sk-it-SECRET-777";
constexpr auto kWait = 10s;  // Bound for every wait that should succeed.

// Collects a stream's events; thread-safe.
class Collector {
 public:
  EventSink Sink() {
    return [this](const StreamEvent& event) {
      std::lock_guard lock(mutex_);
      events_.push_back(event);
      if (on_event_) on_event_(event);
      changed_.notify_all();
    };
  }
  void OnEvent(std::function<void(const StreamEvent&)> callback) {
    on_event_ = std::move(callback);
  }

  bool WaitForTerminal(std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return HasTerminal(); });
  }
  std::vector<StreamEvent> events() {
    std::lock_guard lock(mutex_);
    return events_;
  }
  // The formatted events without the cost (checked separately).
  std::string Text() {
    std::string text = FormatEvents(events());
    return std::regex_replace(text, std::regex(" cost=[0-9.]+"), "");
  }
  StreamEvent Last() {
    std::lock_guard lock(mutex_);
    return events_.empty() ? StreamEvent{} : events_.back();
  }

 private:
  bool HasTerminal() const {
    return std::any_of(events_.begin(), events_.end(), [](const StreamEvent& e) {
      return e.kind == StreamEvent::Kind::kDone || e.kind == StreamEvent::Kind::kError;
    });
  }
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<StreamEvent> events_;
  std::function<void(const StreamEvent&)> on_event_;
};

int CountTerminals(const std::vector<StreamEvent>& events) {
  return static_cast<int>(std::count_if(events.begin(), events.end(), [](const StreamEvent& e) {
    return e.kind == StreamEvent::Kind::kDone || e.kind == StreamEvent::Kind::kError;
  }));
}

CompletionRequest Hello() {
  CompletionRequest request;
  Message message;
  message.parts.push_back({.kind = ContentPart::Kind::kText, .text = "Hello"});
  request.messages.push_back(message);
  return request;
}

class PoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = FakeProviderServer::Start();
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(*server);
    auto client = http::Client::Create();
    ASSERT_TRUE(client.ok());
    http_ = std::move(*client);
    environment_ = {std::string("TEST_KEY=") + kKey};
    pointers_ = {environment_[0].c_str(), nullptr};
    options_.environ = pointers_.data();
    options_.backoff_initial = 5ms;
    options_.backoff_max = 20ms;
  }

  // A profile on the fake server; base paths differ per profile so each has its own queue.
  Config::Profile Profile(std::string name, std::string provider, std::string model,
                          std::string base_path) {
    Config::Profile profile;
    profile.name = std::move(name);
    profile.provider = std::move(provider);
    profile.model = std::move(model);
    profile.base_url = server_->base_url() + base_path;
    profile.api_key_env = "TEST_KEY";
    profile.origin = "test.toml:1";
    profile.idle_timeout_ms = 5000;
    profile.first_byte_timeout_ms = 5000;
    return profile;
  }

  std::unique_ptr<ProviderPool> Pool(std::vector<Config::Profile> profiles) {
    Config config;
    config.profiles = std::move(profiles);
    auto pool = ProviderPool::Create(config, http_, options_);
    EXPECT_TRUE(pool.ok()) << pool.error().message();
    return pool.ok() ? std::move(*pool) : nullptr;
  }

  // Profile "primary" (openai gpt-4.1 at /a) whose fallback is `backup` (at /b).
  std::unique_ptr<ProviderPool> PrimaryFallingBackTo(std::string provider, std::string model) {
    Config::Profile primary = Profile("primary", "openai", "gpt-4.1", "/a");
    primary.fallback = "backup";
    return Pool({primary, Profile("backup", std::move(provider), std::move(model), "/b")});
  }

  FakeResponse Golden(std::string_view provider, std::string_view name) {
    auto response = LoadGoldenResponse(provider, name);
    EXPECT_TRUE(response.ok()) << response.error().message();
    return response.ok() ? *response : FakeResponse{};
  }

  static std::string Expected(std::string_view provider, std::string_view name) {
    return ReadFileOrEmpty(ProvidersDir() + "/" + std::string(provider) + "/" + std::string(name) +
                           ".events");
  }

  std::unique_ptr<FakeProviderServer> server_;
  std::shared_ptr<http::Client> http_;
  std::vector<std::string> environment_;
  std::vector<const char*> pointers_;
  PoolOptions options_;
};

struct ReplayCase {
  const char* provider;
  const char* model;
  const char* path;  // Where the request must go, below the base path "/p".
  const char* golden;
};

TEST_F(PoolTest, GoldenTranscriptsReplayEndToEndWithCost) {
  const ReplayCase cases[] = {
      {"openai", "gpt-4.1", "/p/chat/completions", "text"},
      {"openai", "gpt-4.1", "/p/chat/completions", "tool_calls_split"},
      {"anthropic", "claude-sonnet-4-5", "/p/v1/messages", "thinking"},
      {"anthropic", "claude-sonnet-4-5", "/p/v1/messages", "usage_cached"},
      {"gemini", "gemini-2.5-flash",
       "/p/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "text"},
      {"ollama", "qwen3:8b", "/p/api/chat", "thinking"},
  };
  for (const ReplayCase& c : cases) {
    SCOPED_TRACE(std::string(c.provider) + "/" + c.golden);
    auto pool = Pool({Profile("p", c.provider, c.model, "/p")});
    ASSERT_NE(pool, nullptr);
    size_t before = server_->requests().size();
    FakeResponse response = Golden(c.provider, c.golden);
    response.Rechunk(3);  // Events split across writes.
    server_->Enqueue("/p/", response);
    Collector collector;
    ASSERT_TRUE(pool->Stream("", Hello(), collector.Sink()).ok());
    ASSERT_TRUE(collector.WaitForTerminal());
    EXPECT_EQ(collector.Text(), Expected(c.provider, c.golden));
    for (const StreamEvent& event : collector.events()) {
      if (event.kind == StreamEvent::Kind::kUsage && event.usage.input_tokens > 0 &&
          std::string_view(c.provider) != "ollama") {
        EXPECT_GT(event.usage.cost_usd, 0) << "usage events carry the catalog's cost";
      }
    }
    std::vector<lai::testing::RecordedRequest> requests = server_->requests();
    ASSERT_EQ(requests.size(), before + 1);
    const auto& sent = requests.back();
    EXPECT_EQ(sent.method, "POST");
    EXPECT_EQ(sent.path, c.path);
    nlohmann::json body = nlohmann::json::parse(sent.body);
    if (std::string_view(c.provider) != "gemini") {
      EXPECT_EQ(body["model"], c.model);
    }
    std::string_view provider = c.provider;
    if (provider == "openai") {
      EXPECT_EQ(http::FindHeader(sent.headers, "authorization"), std::string("Bearer ") + kKey);
    } else if (provider == "anthropic") {
      EXPECT_EQ(http::FindHeader(sent.headers, "x-api-key"), kKey);
      EXPECT_EQ(http::FindHeader(sent.headers, "anthropic-version"), "2023-06-01");
    } else if (provider == "gemini") {
      EXPECT_EQ(http::FindHeader(sent.headers, "x-goog-api-key"), kKey);
      EXPECT_EQ(sent.path.find(kKey), std::string::npos);
    }
  }
}

// A profile's thinking settings reach requests that do not set their own.
TEST_F(PoolTest, AProfilesThinkingBudgetIsAskedFor) {
  Config::Profile thinking = Profile("p", "anthropic", "claude-sonnet-4-5", "/p");
  thinking.thinking_budget_tokens = 2048;
  auto pool = Pool({thinking});
  ASSERT_NE(pool, nullptr);
  server_->Enqueue("/p/", Golden("anthropic", "thinking"));
  Collector collector;
  ASSERT_TRUE(pool->Stream("", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  nlohmann::json body = nlohmann::json::parse(server_->requests().back().body);
  EXPECT_EQ(body["thinking"]["budget_tokens"], 2048) << body.dump();
}

TEST_F(PoolTest, OneByteAtATimeGivesTheSameEvents) {
  auto pool = Pool({Profile("p", "anthropic", "claude-sonnet-4-5", "/p")});
  FakeResponse response = Golden("anthropic", "tool_calls_split");
  response.fault.drip = true;
  server_->Enqueue("/p/", response);
  Collector collector;
  ASSERT_TRUE(pool->Stream("", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  EXPECT_EQ(collector.Text(), Expected("anthropic", "tool_calls_split"));
}

TEST_F(PoolTest, RetriesA429HonouringRetryAfterThenSucceeds) {
  auto pool = Pool({Profile("p", "openai", "gpt-4.1", "/p")});
  FakeResponse limited =
      MakeResponse(429, R"({"error":{"message":"slow down","type":"requests"}})");
  limited.headers.push_back({"retry-after-ms", "30"});
  server_->Enqueue("/p/", limited);
  server_->Enqueue("/p/", Golden("openai", "text"));
  Collector collector;
  auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(pool->Stream("p", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  EXPECT_GE(std::chrono::steady_clock::now() - started, 30ms) << "retry-after-ms honoured";
  // The caller is told of the wait first (an editor showed nothing for as long).
  EXPECT_EQ(collector.Text(),
            "retrying \"429 from openai: rate limited (slow down); retry after 30 ms; retrying in "
            "30 ms (attempt 2 of 5)\"\n" +
                Expected("openai", "text"));
  EXPECT_EQ(server_->requests().size(), 2u);
}

// A retry-after beyond what the pool waits by itself (max_retry_after) ends the request at
// once, saying how long the provider asked for, instead of minutes of silent capped waits.
TEST_F(PoolTest, ARetryAfterLongerThanThePoolWaitsIsNotRetried) {
  auto pool = Pool({Profile("p", "openai", "gpt-4.1", "/p")});
  FakeResponse limited =
      MakeResponse(429, R"({"error":{"message":"slow down","type":"requests"}})");
  limited.headers.push_back({"retry-after", "3600"});
  server_->Enqueue("/p/", limited);
  Collector collector;
  ASSERT_TRUE(pool->Stream("p", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  const StreamEvent& last = collector.Last();
  ASSERT_EQ(last.kind, StreamEvent::Kind::kError);
  EXPECT_EQ(last.error.kind, ErrorKind::kRateLimited);
  EXPECT_NE(last.error.message.find("retry after 60 min"), std::string::npos)
      << last.error.message;
  EXPECT_NE(last.error.message.find("not retried"), std::string::npos) << last.error.message;
  EXPECT_EQ(server_->requests().size(), 1u);
}

TEST_F(PoolTest, Retries500ThenSucceeds) {
  auto pool = Pool({Profile("p", "gemini", "gemini-2.5-flash", "/p")});
  server_->Enqueue("/p/", MakeResponse(500, R"({"error":{"code":500,"message":"Internal error",)"
                                            R"("status":"INTERNAL"}})"));
  server_->Enqueue("/p/", Golden("gemini", "text"));
  Collector collector;
  ASSERT_TRUE(pool->Stream("p", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  const std::string text = collector.Text();
  ASSERT_TRUE(text.starts_with("retrying \"500 from gemini: server error (Internal error)"))
      << text;
  EXPECT_EQ(text.substr(text.find('\n') + 1), Expected("gemini", "text"));
  EXPECT_EQ(server_->requests().size(), 2u);
}

// x-should-retry: false (the OpenAI and Anthropic SDKs honour it) is not retried, and the
// message does not tell the user to retry either.
TEST_F(PoolTest, AProviderSayingNotToRetryIsNotRetried) {
  auto pool = Pool({Profile("p", "openai", "gpt-4.1", "/p")});
  FakeResponse refused = MakeResponse(500, R"({"error":{"message":"boom","type":"server_error"}})");
  refused.headers.push_back({"x-should-retry", "false"});
  server_->Enqueue("/p/", refused);
  server_->Enqueue("/p/", Golden("openai", "text"));
  Collector collector;
  ASSERT_TRUE(pool->Stream("p", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  EXPECT_EQ(collector.Last().kind, StreamEvent::Kind::kError);
  EXPECT_NE(collector.Last().error.message.find("(the provider says a retry will not help)"),
            std::string::npos)
      << collector.Last().error.message;
  EXPECT_EQ(collector.Last().error.message.find("retry later"), std::string::npos)
      << collector.Last().error.message;
  EXPECT_EQ(server_->requests().size(), 1u);
}

TEST_F(PoolTest, GivesUpAfterMaxAttemptsSayingSo) {
  options_.max_attempts = 3;
  auto pool = Pool({Profile("p", "anthropic", "claude-sonnet-4-5", "/p")});
  for (int i = 0; i < 3; ++i) server_->Enqueue("/p/", Golden("anthropic", "error_overloaded"));
  Collector collector;
  ASSERT_TRUE(pool->Stream("p", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  StreamEvent last = collector.Last();
  EXPECT_EQ(last.error.kind, ErrorKind::kOverloaded);
  EXPECT_NE(last.error.message.find("529 from anthropic"), std::string::npos);
  EXPECT_NE(last.error.message.find("gave up after 3 attempts"), std::string::npos)
      << last.error.message;
  EXPECT_EQ(server_->requests().size(), 3u);
}

TEST_F(PoolTest, NoRetryOnceOutputReachedTheSink) {
  auto pool = Pool({Profile("p", "openai", "gpt-4.1", "/p")});
  FakeResponse response = Golden("openai", "text");
  // Cut the connection after the first two events (role chunk + "Hello").
  response.fault.drop_after_bytes = response.body_chunks[0].size() + response.body_chunks[1].size();
  server_->Enqueue("/p/", response);
  server_->Enqueue("/p/", Golden("openai", "text"));  // Must stay unused.
  Collector collector;
  ASSERT_TRUE(pool->Stream("p", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  std::vector<StreamEvent> events = collector.events();
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(test_support::FormatEvent(events[0]), "text \"Hello\"");
  EXPECT_EQ(events.back().kind, StreamEvent::Kind::kError);
  EXPECT_EQ(events.back().error.kind, ErrorKind::kUnavailable);
  EXPECT_NE(events.back().error.message.find("openai"), std::string::npos);
  EXPECT_EQ(CountTerminals(events), 1);
  EXPECT_EQ(server_->requests().size(), 1u);
}

TEST_F(PoolTest, InvalidKeyIsNotRetriedAndNamesTheVariableNotTheKey) {
  auto pool = Pool({Profile("p", "openai", "gpt-4.1", "/p")});
  server_->Enqueue("/p/", MakeResponse(401, std::string(R"({"error":{"message":"Incorrect API key )"
                                                        R"(provided: )") +
                                                kKey + R"(","code":"invalid_api_key"}})"));
  server_->Enqueue("/p/", Golden("openai", "text"));
  Collector collector;
  ASSERT_TRUE(pool->Stream("p", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  StreamEvent last = collector.Last();
  EXPECT_EQ(last.error.kind, ErrorKind::kInvalidKey);
  EXPECT_NE(last.error.message.find("401 from openai: the API key in TEST_KEY was rejected"),
            std::string::npos)
      << last.error.message;
  EXPECT_EQ(last.error.message.find(kKey), std::string::npos) << last.error.message;
  EXPECT_EQ(server_->requests().size(), 1u);
}

// An error inside a stream that quotes the key (as a proxy or a provider may) has it removed, as
// an HTTP error body has, for every wire format: retried or not, the key reaches no one.
TEST_F(PoolTest, AnErrorInsideTheStreamNeverShowsTheKey) {
  struct Case {
    const char* provider;
    const char* model;
    std::string body;
    const char* content_type;
  };
  const std::string quoted = std::string("bad key ") + kKey;
  const std::vector<Case> cases = {
      {"openai", "gpt-4.1", "data: {\"error\":{\"message\":\"" + quoted + "\"}}\n\n",
       "text/event-stream"},
      {"anthropic", "claude-sonnet-4-5",
       "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"" +
           quoted + "\"}}\n\n",
       "text/event-stream"},
      {"gemini", "gemini-2.5-pro",
       "data: {\"error\":{\"code\":400,\"message\":\"" + quoted + "\"}}\n\n", "text/event-stream"},
      {"ollama", "llama3.1", "{\"error\":\"" + quoted + "\"}\n", "application/x-ndjson"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.provider);
    std::string base = std::string("/") + c.provider;
    auto pool = Pool({Profile("p", c.provider, c.model, base)});
    server_->SetDefault(MakeResponse(200, c.body, c.content_type));
    Collector collector;
    ASSERT_TRUE(pool->Stream("p", Hello(), collector.Sink()).ok());
    ASSERT_TRUE(collector.WaitForTerminal());
    StreamEvent last = collector.Last();
    ASSERT_EQ(last.kind, StreamEvent::Kind::kError);
    EXPECT_NE(last.error.message.find("bad key ***"), std::string::npos) << last.error.message;
    EXPECT_EQ(last.error.message.find(kKey), std::string::npos) << last.error.message;
  }
}

// Some compatible servers and proxies answer 200 with a JSON error instead of a stream: its
// message is the error (it was "ended before the answer was complete", five times over), and
// it is retried only when it says something retryable.
TEST_F(PoolTest, AJsonErrorInsteadOfAStreamIsReportedAsSuch) {
  for (const char* provider : {"openai", "anthropic", "gemini"}) {
    SCOPED_TRACE(provider);
    std::string model = std::string(provider) == "openai"      ? "gpt-4.1"
                        : std::string(provider) == "anthropic" ? "claude-sonnet-4-5"
                                                               : "gemini-2.5-pro";
    auto pool = Pool({Profile("p", provider, model, std::string("/") + provider)});
    size_t before = server_->requests().size();
    server_->SetDefault(MakeResponse(200, R"({"error":{"message":"Invalid model id"}})"));
    Collector collector;
    ASSERT_TRUE(pool->Stream("p", Hello(), collector.Sink()).ok());
    ASSERT_TRUE(collector.WaitForTerminal());
    StreamEvent last = collector.Last();
    EXPECT_EQ(last.error.kind, ErrorKind::kInvalidRequest);
    EXPECT_NE(last.error.message.find(std::string(provider) +
                                      " answered with an error instead of a stream: Invalid "
                                      "model id"),
              std::string::npos)
        << last.error.message;
    EXPECT_EQ(server_->requests().size(), before + 1) << "not retried";
  }
  // Ollama's NDJSON error line, in its object form too.
  auto pool = Pool({Profile("p", "ollama", "llama3.1", "/ollama")});
  size_t before = server_->requests().size();
  server_->SetDefault(MakeResponse(200, "{\"error\":{\"message\":\"Invalid model id\"}}\n",
                                   "application/x-ndjson"));
  Collector collector;
  ASSERT_TRUE(pool->Stream("p", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  EXPECT_EQ(collector.Last().error.kind, ErrorKind::kInvalidRequest);
  EXPECT_NE(collector.Last().error.message.find("Invalid model id"), std::string::npos);
  EXPECT_EQ(server_->requests().size(), before + 1) << "not retried";
}

// A pool that makes its own HTTP client opens as many streams to one host as the configuration
// allows (llm.max_connections_per_host, 32): it kept the client's default of 8, and the ninth
// session of an editor waited, silent, for one of the others to end.
TEST_F(PoolTest, ItsOwnClientOpensTheConfiguredNumberOfStreams) {
  constexpr size_t kStreams = 12;
  for (size_t i = 0; i < kStreams; ++i) {
    FakeResponse held = MakeResponse(200, "data: [DONE]\n\n");
    held.fault.headers_delay = 3s;
    server_->Enqueue("/p/", held);
  }
  std::vector<std::unique_ptr<Collector>> collectors;  // Outlive the pool's streams.
  Config config;
  config.profiles = {Profile("p", "openai", "gpt-4.1", "/p")};
  Result<std::unique_ptr<ProviderPool>> pool = ProviderPool::Create(config, nullptr, options_);
  ASSERT_TRUE(pool.ok()) << pool.error().message();
  for (size_t i = 0; i < kStreams; ++i) {
    collectors.push_back(std::make_unique<Collector>());
    ASSERT_TRUE((*pool)->Stream("p", Hello(), collectors.back()->Sink()).ok());
  }
  const auto deadline = std::chrono::steady_clock::now() + 2500ms;
  while (server_->requests().size() < kStreams && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(server_->requests().size(), kStreams) << "requests sent at once";
  pool->reset();  // Cancels the held streams.
}

TEST_F(PoolTest, MissingKeyFailsBeforeSendingAnything) {
  Config::Profile profile = Profile("p", "openai", "gpt-4.1", "/p");
  profile.api_key_env = "UNSET_VARIABLE";
  auto pool = Pool({profile});
  Collector collector;
  ASSERT_TRUE(pool->Stream("p", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  EXPECT_EQ(collector.Last().error.kind, ErrorKind::kInvalidKey);
  EXPECT_NE(
      collector.Last().error.message.find("UNSET_VARIABLE is not set or empty; export it, or set "
                                          "api_key_env or api_key in [profiles.p]"),
      std::string::npos)
      << collector.Last().error.message;
  EXPECT_TRUE(server_->requests().empty());
  // Said before a stream too, so a command can refuse a task it could not start.
  Status checked = pool->CheckKey("p");
  ASSERT_FALSE(checked.ok());
  EXPECT_EQ(checked.error().message(), collector.Last().error.message);
  EXPECT_TRUE(pool->CheckKey("nosuch").ok());

  // A profile from flags has no [profiles.x] table the user could edit: it is not offered.
  ProfileInfo flags{.name = "command-line",
                    .provider = "deepseek",
                    .model = "deepseek-chat",
                    .base_url = server_->base_url() + "/d"};
  auto ad_hoc = ProviderPool::CreateAdHoc(Config{}, flags, http_, options_);
  ASSERT_TRUE(ad_hoc.ok()) << ad_hoc.error().message();
  Collector other;
  ASSERT_TRUE((*ad_hoc)->Stream("", Hello(), other.Sink()).ok());
  ASSERT_TRUE(other.WaitForTerminal());
  EXPECT_EQ(other.Last().error.kind, ErrorKind::kInvalidKey);
  EXPECT_NE(other.Last().error.message.find("DEEPSEEK_API_KEY is not set or empty; export it"),
            std::string::npos)
      << other.Last().error.message;
  EXPECT_EQ(other.Last().error.message.find("[profiles."), std::string::npos)
      << other.Last().error.message;
}

// Two overloaded replies from `primary` (2 attempts each), then `backup` answers: the caller
// gets the backup's text, asked for with the backup's own model.
TEST_F(PoolTest, FallsBackToTheNextProfileWhenOneIsUnavailable) {
  options_.max_attempts = 2;
  // An overloaded model opens its own circuit, not its host's: a fallback naming another model
  // at the same endpoint is still tried (it was refused: "its circuit is open").
  options_.breaker_failure_threshold = 2;
  options_.breaker_cool_down = 60s;
  struct Case {
    Config::Profile primary, backup;
    const char* backup_path;
  };
  const std::vector<Case> cases = {
      {Profile("primary", "openai", "gpt-4.1", "/a"),
       Profile("backup", "anthropic", "claude-haiku-4-5", "/b"), "/b/v1/messages"},
      {Profile("primary", "anthropic", "claude-opus-4-1", "/c"),
       Profile("backup", "anthropic", "claude-sonnet-4-5", "/c"), "/c/v1/messages"},
  };
  for (Case c : cases) {
    SCOPED_TRACE(c.primary.provider + " -> " + c.backup.model);
    c.primary.fallback = "backup";
    auto pool = Pool({c.primary, c.backup});
    std::string primary_base = c.primary.base_url.substr(server_->base_url().size()) + "/";
    std::string backup_base = c.backup.base_url.substr(server_->base_url().size()) + "/";
    server_->Enqueue(primary_base, Golden(c.primary.provider, "error_overloaded"));
    server_->Enqueue(primary_base, Golden(c.primary.provider, "error_overloaded"));
    server_->Enqueue(backup_base, Golden(c.backup.provider, "text"));
    size_t before = server_->requests().size();
    Collector collector;
    ASSERT_TRUE(pool->Stream("primary", Hello(), collector.Sink()).ok());
    ASSERT_TRUE(collector.WaitForTerminal());
    // Told of the retry, then of the fallback, then the fallback's answer.
    std::string text = collector.Text();
    for (const char* said : {"retrying \"", "retrying \"profile 'primary' is unavailable ("}) {
      ASSERT_TRUE(text.starts_with(said)) << text;
      text.erase(0, text.find('\n') + 1);
    }
    EXPECT_EQ(text, Expected(c.backup.provider, "text")) << collector.Last().error.message;
    std::vector<lai::testing::RecordedRequest> requests = server_->requests();
    ASSERT_EQ(requests.size(), before + 3);
    EXPECT_EQ(requests.back().path, c.backup_path);
    EXPECT_EQ(nlohmann::json::parse(requests.back().body)["model"], c.backup.model);
    // The end says who answered, so a front end can tell the user another model did.
    ASSERT_EQ(collector.Last().kind, StreamEvent::Kind::kDone);
    EXPECT_EQ(collector.Last().profile, "backup");
    EXPECT_EQ(collector.Last().model, c.backup.model);
  }
}

// When the fallback fails too, the error names both profiles and what each said.
TEST_F(PoolTest, AFailedFallbackIsNamedInTheError) {
  options_.max_attempts = 1;
  auto pool = PrimaryFallingBackTo("anthropic", "claude-haiku-4-5");
  server_->Enqueue("/a/", Golden("openai", "error_overloaded"));
  server_->Enqueue("/b/", Golden("anthropic", "error_overloaded"));
  Collector collector;
  ASSERT_TRUE(pool->Stream("primary", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  const std::string& message = collector.Last().error.message;
  EXPECT_EQ(message.rfind("profile 'primary' failed (", 0), 0u) << message;
  EXPECT_NE(message.find("); then its fallback 'backup' failed (529 from anthropic"),
            std::string::npos)
      << message;
}

// A fallback's model gets no more output asked of it than it can give (the first model's limit
// was sent, which the fallback's provider refused).
TEST_F(PoolTest, AFallbackIsAskedForNoMoreOutputThanItsModelGives) {
  options_.max_attempts = 1;
  auto pool = PrimaryFallingBackTo("openai", "gpt-4o");
  server_->Enqueue("/a/", Golden("openai", "error_overloaded"));
  server_->Enqueue("/b/", Golden("openai", "text"));
  CompletionRequest request = Hello();
  request.max_tokens = 40000;
  Collector collector;
  ASSERT_TRUE(pool->Stream("primary", request, collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  std::vector<lai::testing::RecordedRequest> requests = server_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(requests[0].body)["max_completion_tokens"], 40000);
  EXPECT_EQ(nlohmann::json::parse(requests[1].body)["max_completion_tokens"], 16384)
      << "gpt-4o's output limit";
}

// A fallback that breaks after part of its answer is named in the error, so the part is known
// to be the fallback's; attempts are counted per profile.
TEST_F(PoolTest, AFallbackBrokenMidAnswerIsNamedInTheError) {
  options_.max_attempts = 2;
  auto pool = PrimaryFallingBackTo("openai", "gpt-4.1-mini");
  server_->Enqueue("/a/", Golden("openai", "error_overloaded"));
  server_->Enqueue("/a/", Golden("openai", "error_overloaded"));
  FakeResponse cut = Golden("openai", "text");
  cut.fault.drop_after_bytes = cut.body_chunks[0].size() + cut.body_chunks[1].size();
  server_->Enqueue("/b/", cut);
  Collector collector;
  ASSERT_TRUE(pool->Stream("primary", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  const std::string& message = collector.Last().error.message;
  EXPECT_EQ(message.rfind("profile 'primary' failed (", 0), 0u) << message;
  EXPECT_NE(message.find("(gave up after 2 attempts)); then its fallback 'backup' answered in "
                         "part and failed (the stream from openai broke after partial output"),
            std::string::npos)
      << message;
}

// `--model` without `--provider`: the chosen profile (here the default, then a named one) keeps
// its provider, endpoint and key but asks for the model given; a profile that does not exist is
// an error naming it.
TEST_F(PoolTest, AModelChosenForTheRunReplacesTheProfilesModel) {
  std::vector<Config::Profile> profiles = {Profile("first", "openai", "gpt-4.1", "/a"),
                                           Profile("second", "openai", "gpt-4.1", "/b")};
  for (const char* chosen : {"", "second"}) {
    SCOPED_TRACE(std::string("profile '") + chosen + "'");
    options_.model = "gpt-4.1-mini";
    options_.model_profile = chosen;
    auto pool = Pool(profiles);
    ASSERT_NE(pool, nullptr);
    std::string base = *chosen == '\0' ? "/a/" : "/b/";
    server_->Enqueue(base, Golden("openai", "text"));
    Collector collector;
    ASSERT_TRUE(pool->Stream(chosen, Hello(), collector.Sink()).ok());
    ASSERT_TRUE(collector.WaitForTerminal());
    EXPECT_EQ(collector.Text(), Expected("openai", "text"));
    lai::testing::RecordedRequest sent = server_->requests().back();
    EXPECT_EQ(sent.path, base + "chat/completions");
    EXPECT_EQ(nlohmann::json::parse(sent.body)["model"], "gpt-4.1-mini");
  }
  options_.model_profile = "missing";
  Config config;
  config.profiles = profiles;
  auto missing = ProviderPool::Create(config, http_, options_);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(missing.error().message().find("no profile 'missing' to use model 'gpt-4.1-mini'"),
            std::string::npos)
      << missing.error().message();
}

TEST_F(PoolTest, RateLimiterDelaysTheNextRequestAndCancelEndsTheWait) {
  Config::Profile profile = Profile("p", "openai", "gpt-4.1", "/p");
  profile.rate_limit_per_minute = 1;
  auto pool = Pool({profile});
  server_->Enqueue("/p/", Golden("openai", "text"));
  server_->Enqueue("/p/", Golden("openai", "text"));
  Collector first;
  ASSERT_TRUE(pool->Stream("p", Hello(), first.Sink()).ok());
  ASSERT_TRUE(first.WaitForTerminal());
  Collector second;
  std::ostringstream log;
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  auto handle = pool->Stream("p", Hello(), second.Sink());
  ASSERT_TRUE(handle.ok());
  // One request per minute: the second waits (about a minute) instead of being sent, saying so.
  EXPECT_FALSE(server_->WaitForRequests(2, 300ms));
  spdlog::set_default_logger(previous);
  EXPECT_NE(log.str().find("profile 'p' is at its limit of 1 request a minute; waiting "),
            std::string::npos)
      << log.str();
  EXPECT_TRUE(second.events().empty());
  auto cancelled_at = std::chrono::steady_clock::now();
  (*handle)->Cancel();
  ASSERT_TRUE(second.WaitForTerminal(2s));
  EXPECT_LT(std::chrono::steady_clock::now() - cancelled_at, 1s);
  EXPECT_EQ(second.Last().error.kind, ErrorKind::kCancelled);
  EXPECT_EQ(server_->requests().size(), 1u);
}

// Repeated failures open the circuit: retries stop. A new request with no fallback to go to is
// still sent once (after one failed prompt the user's own retry was refused for 30 s), not
// retried while the circuit is open, and its success closes the circuit.
TEST_F(PoolTest, AnOpenCircuitStopsRetriesButANewRequestWithNowhereElseIsTriedOnce) {
  options_.max_attempts = 3;
  options_.breaker_failure_threshold = 2;
  options_.breaker_cool_down = 60s;
  auto pool = Pool({Profile("p", "openai", "gpt-4.1", "/p")});
  server_->SetDefault(MakeResponse(500, R"({"error":{"message":"boom","type":"server_error"}})"));
  auto request = [&](Collector& collector) {
    EXPECT_TRUE(pool->Stream("p", Hello(), collector.Sink()).ok());
    EXPECT_TRUE(collector.WaitForTerminal());
  };
  Collector first, second, third, fourth;
  request(first);  // Two failures open the circuit: the third attempt is refused.
  EXPECT_EQ(first.Last().error.kind, ErrorKind::kUnavailable);
  EXPECT_NE(first.Last().error.message.find("circuit is open"), std::string::npos)
      << first.Last().error.message;
  EXPECT_EQ(server_->requests().size(), 2u);
  request(second);  // Sent once, not retried, with the provider's own words.
  EXPECT_EQ(server_->requests().size(), 3u);
  EXPECT_NE(second.Last().error.message.find("boom"), std::string::npos)
      << second.Last().error.message;
  EXPECT_NE(second.Last().error.message.find("not retried"), std::string::npos)
      << second.Last().error.message;
  server_->SetDefault(Golden("openai", "text"));
  request(third);
  EXPECT_EQ(third.Last().kind, StreamEvent::Kind::kDone);
  EXPECT_EQ(server_->requests().size(), 4u);
  server_->SetDefault(MakeResponse(500, R"({"error":{"message":"boom","type":"server_error"}})"));
  request(fourth);  // Closed again: retried as before.
  EXPECT_EQ(server_->requests().size(), 6u);
}

TEST_F(PoolTest, StallLongerThanTheIdleTimeoutEndsWithATimeoutAfterPartialText) {
  Config::Profile profile = Profile("p", "anthropic", "claude-sonnet-4-5", "/p");
  profile.idle_timeout_ms = 200;
  auto pool = Pool({profile});
  FakeResponse response = Golden("anthropic", "text");
  // Stall after message_start, content_block_start, ping and the first delta.
  size_t bytes = 0;
  for (int i = 0; i < 4; ++i) bytes += response.body_chunks[i].size();
  response.fault.stall_after_bytes = bytes;
  response.fault.stall_for = 5s;
  server_->Enqueue("/p/", response);
  Collector collector;
  auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(pool->Stream("p", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal(4s));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 4s);
  std::vector<StreamEvent> events = collector.events();
  EXPECT_EQ(test_support::FormatEvent(events.front()),
            "usage input=25 output=1 cache_write=0 cache_read=0 reasoning=0 cost=0.000090");
  EXPECT_EQ(test_support::FormatEvent(events[1]), "text \"Hello\"");
  EXPECT_EQ(events.back().error.kind, ErrorKind::kTimeout);
  EXPECT_NE(events.back().error.message.find("anthropic"), std::string::npos);
  EXPECT_EQ(server_->requests().size(), 1u);
}

TEST_F(PoolTest, CancelMidStreamFreesTheTransferAtOnce) {
  auto pool = Pool({Profile("p", "ollama", "qwen3:8b", "/p")});
  FakeResponse response = Golden("ollama", "text");
  response.fault.chunk_delay = 500ms;  // One NDJSON line every half second.
  server_->Enqueue("/p/", response);
  Collector collector;
  std::shared_ptr<StreamHandle> handle;
  std::mutex handle_mutex;
  std::atomic<bool> saw_text{false};
  std::condition_variable text_seen;
  collector.OnEvent([&](const StreamEvent& event) {
    if (event.kind == StreamEvent::Kind::kTextDelta) saw_text = true;
    text_seen.notify_all();
  });
  auto stream = pool->Stream("p", Hello(), collector.Sink());
  ASSERT_TRUE(stream.ok());
  {
    std::unique_lock lock(handle_mutex);
    ASSERT_TRUE(text_seen.wait_for(lock, kWait, [&] { return saw_text.load(); }));
  }
  auto cancelled_at = std::chrono::steady_clock::now();
  (*stream)->Cancel();
  ASSERT_TRUE(collector.WaitForTerminal(2s));
  EXPECT_LT(std::chrono::steady_clock::now() - cancelled_at, 400ms);
  EXPECT_EQ(collector.Last().error.kind, ErrorKind::kCancelled);
  EXPECT_EQ(CountTerminals(collector.events()), 1);
  EXPECT_TRUE(server_->WaitForConnectionsClosed(1, 2s));
  (*stream)->Cancel();  // Idempotent.
  EXPECT_EQ(CountTerminals(collector.events()), 1);
}

TEST_F(PoolTest, ConnectionRefusedIsRetriedThenReportedNamingTheProvider) {
  options_.max_attempts = 2;
  Config::Profile profile = Profile("p", "openai", "gpt-4.1", "");
  profile.base_url = "http://127.0.0.1:1/v1";  // Nothing listens on port 1.
  auto pool = Pool({profile});
  Collector collector;
  ASSERT_TRUE(pool->Stream("p", Hello(), collector.Sink()).ok());
  ASSERT_TRUE(collector.WaitForTerminal());
  EXPECT_EQ(collector.Last().error.kind, ErrorKind::kUnavailable);
  EXPECT_NE(collector.Last().error.message.find("request to openai failed"), std::string::npos)
      << collector.Last().error.message;
  EXPECT_NE(collector.Last().error.message.find("gave up after 2 attempts"), std::string::npos);
}

}  // namespace
}  // namespace lai::llm
