// End to end: the `lapce-ai complete` binary against the fake provider server, in each of the four
// wire formats, checking stdout, stderr, the exit status and what the provider received.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http/client.h"
#include "run_process.h"
#include "testing/fake_provider_server.h"
#include "testing/scripted_model.h"

namespace lai {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

using RunResult = lai::test::ProcessResult;

// Runs lapce-ai with `args` and exactly the environment `env` (plus HOME/XDG_* in a private
// directory so no user configuration is read), feeding `input` to stdin; kills it after 20 s.
RunResult RunLapceAi(const std::vector<std::string>& args, std::vector<std::string> env,
                     const std::string& input = "", int signal_after_first_output = 0) {
  char home_template[] = "/tmp/lai-e2e.XXXXXX";
  std::string home = ::mkdtemp(home_template);
  env.push_back("HOME=" + home);
  env.push_back("XDG_CONFIG_HOME=" + home + "/.config");
  env.push_back("XDG_RUNTIME_DIR=" + home);
  env.push_back("PATH=/usr/bin:/bin");
  std::vector<std::string> argv = {LAPCE_AI_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult result = lai::test::RunProcess(
      std::move(argv), std::move(env),
      {.input = input, .signal_after_first_output = signal_after_first_output});
  std::filesystem::remove_all(home);
  return result;
}

// "Hello, world" with 7 input and 3 output tokens, in each provider's wire format.
testing::FakeResponse Answer(const std::string& provider) {
  testing::FakeResponse r;
  r.headers.push_back({"Content-Type", provider == "ollama" ? "application/x-ndjson" : "text/event-stream"});
  if (provider == "openai") {
    r.body_chunks = {
        R"(data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"}}]})" "\n\n",
        R"(data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":", world"}}]})" "\n\n",
        R"(data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})" "\n\n",
        R"(data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}})" "\n\n",
        "data: [DONE]\n\n"};
  } else if (provider == "anthropic") {
    r.body_chunks = {
        "event: message_start\n"
        R"(data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"usage":{"input_tokens":7,"output_tokens":1}}})" "\n\n",
        "event: content_block_start\n"
        R"(data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})" "\n\n",
        "event: ping\n" R"(data: {"type":"ping"})" "\n\n",
        "event: content_block_delta\n"
        R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}})" "\n\n",
        "event: content_block_delta\n"
        R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", world"}})" "\n\n",
        "event: content_block_stop\n" R"(data: {"type":"content_block_stop","index":0})" "\n\n",
        "event: message_delta\n"
        R"(data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":3}})" "\n\n",
        "event: message_stop\n" R"(data: {"type":"message_stop"})" "\n\n"};
  } else if (provider == "gemini") {
    r.body_chunks = {
        R"(data: {"candidates":[{"content":{"parts":[{"text":"Hello"}],"role":"model"},"index":0}]})" "\r\n\r\n",
        R"(data: {"candidates":[{"content":{"parts":[{"text":", world"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":3,"totalTokenCount":10}})" "\r\n\r\n"};
  } else {
    r.body_chunks = {
        R"({"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"Hello"},"done":false})" "\n",
        R"({"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":", world"},"done":false})" "\n",
        R"({"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":7,"eval_count":3})" "\n"};
  }
  return r;
}

struct WireCase {
  std::string provider;
  std::string model;
  std::string base_suffix;  // Appended to the fake server's URL (OpenAI-style bases end in /v1).
  std::string key_env;      // Empty: no key.
  std::string path_prefix;
  std::string key_header;   // Where the key must arrive ("" for none).
  std::string key_prefix;
};

class CompleteE2eTest : public ::testing::TestWithParam<WireCase> {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<testing::FakeProviderServer>> fake = testing::FakeProviderServer::Start();
    ASSERT_TRUE(fake.ok()) << fake.error().message();
    fake_ = std::move(*fake);
  }
  std::vector<std::string> Args(const WireCase& c, std::vector<std::string> extra) {
    std::vector<std::string> args = {"complete", "--provider", c.provider, "--model", c.model,
                                     "--base-url", fake_->base_url() + c.base_suffix};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  std::vector<std::string> Env(const WireCase& c) {
    if (c.key_env.empty()) return {};
    return {c.key_env + "=sk-e2e-secret-4242"};
  }
  std::unique_ptr<testing::FakeProviderServer> fake_;
};

TEST_P(CompleteE2eTest, StreamsTheAnswerAndReportsUsage) {
  const WireCase& c = GetParam();
  fake_->Enqueue(c.path_prefix, Answer(c.provider));
  RunResult run = RunLapceAi(Args(c, {"--system", "Be brief.", "--max-tokens", "50", "Say hi"}), Env(c));
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "Hello, world\n");
  EXPECT_NE(run.err.find("tokens: 7 in, 3 out"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("cost $"), std::string::npos) << run.err;

  std::vector<testing::RecordedRequest> requests = fake_->requests();
  ASSERT_EQ(requests.size(), 1u);
  const testing::RecordedRequest& sent = requests[0];
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.path.rfind(c.path_prefix, 0), 0u) << sent.path;
  if (!c.key_header.empty()) {
    EXPECT_EQ(http::FindHeader(sent.headers, c.key_header), c.key_prefix + "sk-e2e-secret-4242");
  }
  std::string body = sent.body;
  EXPECT_NE(body.find("Say hi"), std::string::npos) << body;
  EXPECT_NE(body.find("Be brief."), std::string::npos) << body;
  EXPECT_NE(body.find("50"), std::string::npos) << body;  // max tokens, whatever the field's name.
}

TEST_P(CompleteE2eTest, JsonPrintsOneEventPerLine) {
  const WireCase& c = GetParam();
  fake_->Enqueue(c.path_prefix, Answer(c.provider));
  RunResult run = RunLapceAi(Args(c, {"--json", "Say hi"}), Env(c));
  EXPECT_EQ(run.exit_code, 0) << run.err;
  std::string text;
  std::vector<std::string> types;
  size_t start = 0;
  while (start < run.out.size()) {
    size_t end = run.out.find('\n', start);
    ASSERT_NE(end, std::string::npos) << "unterminated line in: " << run.out;
    Json event = Json::parse(run.out.substr(start, end - start));
    types.push_back(event["type"]);
    if (event["type"] == "text") text += event["text"].get<std::string>();
    start = end + 1;
  }
  EXPECT_EQ(text, "Hello, world");
  ASSERT_FALSE(types.empty());
  EXPECT_EQ(types.back(), "done");
}

INSTANTIATE_TEST_SUITE_P(
    Wire, CompleteE2eTest,
    ::testing::Values(
        WireCase{"openai", "gpt-4o", "/v1", "OPENAI_API_KEY", "/v1/chat/completions",
                 "Authorization", "Bearer "},
        WireCase{"anthropic", "claude-sonnet-4-5", "", "ANTHROPIC_API_KEY", "/v1/messages",
                 "x-api-key", ""},
        WireCase{"gemini", "gemini-2.5-flash", "", "GEMINI_API_KEY",
                 "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "x-goog-api-key", ""},
        WireCase{"ollama", "llama3.2", "", "", "/api/chat", "", ""}),
    [](const ::testing::TestParamInfo<WireCase>& param_info) { return param_info.param.provider; });

class CompleteCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<testing::FakeProviderServer>> fake = testing::FakeProviderServer::Start();
    ASSERT_TRUE(fake.ok()) << fake.error().message();
    fake_ = std::move(*fake);
  }
  std::vector<std::string> OpenAi(std::vector<std::string> extra) {
    std::vector<std::string> args = {"complete", "--provider", "openai", "--model", "gpt-4o",
                                     "--base-url", fake_->base_url() + "/v1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  std::unique_ptr<testing::FakeProviderServer> fake_;
};

TEST_F(CompleteCliTest, RejectedKeyIsActionableAndNeverPrinted) {
  fake_->SetDefault(testing::MakeResponse(
      401, R"({"error":{"message":"Incorrect API key provided: sk-e2e-secret-4242","type":"invalid_request_error","code":"invalid_api_key"}})"));
  RunResult run = RunLapceAi(OpenAi({"Say hi"}), {"OPENAI_API_KEY=sk-e2e-secret-4242"});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_EQ(run.out, "");
  EXPECT_NE(run.err.find("OPENAI_API_KEY"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("401"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find("sk-e2e-secret-4242"), std::string::npos) << run.err;
  EXPECT_EQ(fake_->requests().size(), 1u);  // An invalid key is not retried.
}

// What a provider says reaches the terminal with its control characters shown, not obeyed.
TEST_F(CompleteCliTest, AnErrorsControlCharactersAreShownNotObeyed) {
  fake_->SetDefault(testing::MakeResponse(
      400, R"({"error":{"message":"bad ]0;PWNED request","type":"invalid_request_error"}})"));
  RunResult run = RunLapceAi(OpenAi({"Say hi"}), {"OPENAI_API_KEY=k"});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_EQ(run.err.find("\x1b]0;"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("^[]0;PWNED^G"), std::string::npos) << run.err;
}

// --show-reasoning marks every line of the reasoning (only the first was: the rest read as the
// answer).
TEST_F(CompleteCliTest, EveryLineOfShownReasoningIsMarked) {
  testing::ScriptedTurn turn;
  turn.reasoning = "Alpha one.\nBeta two";
  turn.text = "Answer here.";
  fake_->Enqueue("/v1/chat/completions", testing::OpenAiTurn(turn));
  RunResult run = RunLapceAi(OpenAi({"hi", "--show-reasoning"}), {"OPENAI_API_KEY=k"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.err.find("[reasoning] Alpha one.\n[reasoning] Beta two"), std::string::npos)
      << run.err;
  EXPECT_NE(run.out.find("Answer here."), std::string::npos) << run.out;
}

TEST_F(CompleteCliTest, PromptFromStandardInput) {
  fake_->Enqueue("/v1/chat/completions", Answer("openai"));
  RunResult run = RunLapceAi(OpenAi({"-"}), {"OPENAI_API_KEY=k"}, "question from stdin");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "Hello, world\n");
  ASSERT_EQ(fake_->requests().size(), 1u);
  EXPECT_NE(fake_->requests()[0].body.find("question from stdin"), std::string::npos);
}

// A model the catalog has no prices for: its cost is unknown, not $0 (a local server's is $0).
TEST_F(CompleteCliTest, ACostWithoutPricesIsUnknownNotFree) {
  fake_->Enqueue("/v1/chat/completions", Answer("openai"));
  RunResult run = RunLapceAi({"complete", "--provider", "openai", "--model", "my-custom-model",
                              "--base-url", fake_->base_url() + "/v1", "hi"},
                             {"OPENAI_API_KEY=k"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.err.find("tokens: 7 in, 3 out; cost unknown (no prices for "
                         "openai/my-custom-model; set input_price and output_price under "
                         "[models.\"openai/my-custom-model\"] in the config)"),
            std::string::npos)
      << run.err;
  fake_->Enqueue("/v1/chat/completions", Answer("openai"));
  RunResult priced = RunLapceAi(OpenAi({"hi"}), {"OPENAI_API_KEY=k"});
  EXPECT_NE(priced.err.find("; cost $0.0000"), std::string::npos) << priced.err;
}

TEST_F(CompleteCliTest, UsageErrorsExitWithTwo) {
  RunResult no_model = RunLapceAi({"complete", "--provider", "openai", "hi"}, {});
  EXPECT_EQ(no_model.exit_code, 2);
  EXPECT_NE(no_model.err.find("--model"), std::string::npos) << no_model.err;
  RunResult unknown = RunLapceAi({"complete", "--provider", "nosuch", "--model", "m", "hi"}, {});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("openai"), std::string::npos) << unknown.err;  // Lists the known ones.
  RunResult no_prompt = RunLapceAi({"complete", "--provider", "openai", "--model", "m"}, {});
  EXPECT_EQ(no_prompt.exit_code, 2);
  RunResult bogus = RunLapceAi({"--bogus"}, {});
  EXPECT_EQ(bogus.exit_code, 2);
  EXPECT_NE(bogus.err.find("'--bogus' is not a command or option; run lapce-ai --help"),
            std::string::npos)
      << bogus.err;
  // What the command-line parser refuses exits 2 too (CLI11's own codes are 105–115); help
  // and version succeed.
  for (std::vector<std::string> args :
       {std::vector<std::string>{"complete", "--no-such-flag", "hi"}, {"tool", "run"},
        {"nosuch"}, {"ping", "--count", "0"}, {"complete", "--max-tokens", "x", "hi"}}) {
    RunResult bad = RunLapceAi(args, {});
    EXPECT_EQ(bad.exit_code, 2) << args[0] << " " << args[1 % args.size()] << ": " << bad.err;
    EXPECT_FALSE(bad.err.empty());
  }
  // Values out of range are refused, not silently dropped; a blank prompt is no prompt.
  RunResult cold = RunLapceAi(OpenAi({"--temperature", "-1", "hi"}), {});
  EXPECT_EQ(cold.exit_code, 2);
  EXPECT_NE(cold.err.find("--temperature must be between 0 and 2, got -1"), std::string::npos)
      << cold.err;
  RunResult none = RunLapceAi(OpenAi({"--max-tokens", "0", "hi"}), {});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("--max-tokens must be a positive number of tokens, got 0"),
            std::string::npos)
      << none.err;
  RunResult blank = RunLapceAi(OpenAi({"-"}), {"OPENAI_API_KEY=k"}, "  \n\t\n");
  EXPECT_EQ(blank.exit_code, 2);
  EXPECT_NE(blank.err.find("standard input held no prompt"), std::string::npos) << blank.err;
  EXPECT_EQ(fake_->requests().size(), 0u);
  EXPECT_EQ(RunLapceAi({"--help"}, {}).exit_code, 0);
  EXPECT_EQ(RunLapceAi({"complete", "--help"}, {}).exit_code, 0);
  EXPECT_EQ(RunLapceAi({"--version"}, {}).exit_code, 0);
  EXPECT_EQ(fake_->requests().size(), 0u);
}

TEST_F(CompleteCliTest, InterruptCancelsTheStream) {
  testing::FakeResponse slow = Answer("openai");
  // The first piece at once, then a long stall: only a cancel ends it in time.
  slow.fault.stall_after_bytes = slow.body_chunks[0].size();
  slow.fault.stall_for = milliseconds(30'000);
  fake_->Enqueue("/v1/chat/completions", slow);
  auto start = std::chrono::steady_clock::now();
  RunResult run = RunLapceAi(OpenAi({"Say hi"}), {"OPENAI_API_KEY=k"}, "", SIGINT);
  EXPECT_EQ(run.exit_code, 130) << run.err;
  EXPECT_EQ(run.out, "Hello\n");
  EXPECT_NE(run.err.find("cancelled"), std::string::npos) << run.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_TRUE(fake_->WaitForConnectionsClosed(1, milliseconds(5000)));
  // SIGTERM ends it the same way, with the status a shell expects of it (128 + 15).
  fake_->Enqueue("/v1/chat/completions", slow);
  RunResult terminated = RunLapceAi(OpenAi({"Say hi"}), {"OPENAI_API_KEY=k"}, "", SIGTERM);
  EXPECT_EQ(terminated.exit_code, 143) << terminated.err;
}

// An answer cut at the output limit says so, and a provider that reports no usage is not
// reported as having used 0 tokens for free.
TEST_F(CompleteCliTest, ACutAnswerAndMissingUsageAreSaid) {
  fake_->Enqueue("/v1/chat/completions",
                 testing::MakeResponse(
                     200,
                     "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Once upon\"}}]}\n\n"
                     "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}"
                     "\n\ndata: [DONE]\n\n",
                     "text/event-stream"));
  RunResult run = RunLapceAi(OpenAi({"--max-tokens", "2", "Tell a story"}), {"OPENAI_API_KEY=k"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "Once upon\n");
  EXPECT_NE(run.err.find("the answer was cut off at the output limit (raise --max-tokens)"),
            std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("tokens: not reported by the provider; cost unknown"), std::string::npos)
      << run.err;
}

// A content filter's or the model's refusal is said, and is not a success (it exited 0, silent).
TEST_F(CompleteCliTest, ARefusalIsSaidAndFails) {
  fake_->Enqueue(
      "/v1/chat/completions",
      testing::MakeResponse(200,
                            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
                            "\"content_filter\"}]}\n\ndata: [DONE]\n\n",
                            "text/event-stream"));
  RunResult run = RunLapceAi(OpenAi({"Say something"}), {"OPENAI_API_KEY=k"});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_NE(run.err.find("the provider declined to answer"), std::string::npos) << run.err;
  EXPECT_EQ(fake_->requests().size(), 1u) << "a refusal is not retried";
}

// A reply that is not a stream (a proxy's login page, a server that ignored "stream": true) is
// quoted and not sent again: it was retried 5 times as "ended before the answer was complete".
TEST_F(CompleteCliTest, AnAnswerThatIsNotAStreamIsQuotedAndNotRetried) {
  fake_->Enqueue(
      "/v1/chat/completions",
      testing::MakeResponse(200, "<html><body>Please log in to the corporate proxy</body></html>\n",
                            "text/html"));
  RunResult run = RunLapceAi(OpenAi({"Say something"}), {"OPENAI_API_KEY=k"});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_NE(run.err.find("the answer is not an event stream; it begins '<html><body>Please log in"),
            std::string::npos)
      << run.err;
  EXPECT_EQ(fake_->requests().size(), 1u);
}

// A config file in its own private directory, removed with the object.
class ConfigFile {
 public:
  explicit ConfigFile(const std::string& text) {
    char dir_template[] = "/tmp/lai-e2e-config.XXXXXX";
    dir_ = ::mkdtemp(dir_template);
    path_ = dir_ + "/config.toml";
    FILE* file = std::fopen(path_.c_str(), "w");
    std::fputs(text.c_str(), file);
    std::fclose(file);
  }
  ~ConfigFile() { std::filesystem::remove_all(dir_); }
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

// doctor reports each check on a line: what it read, the mode, each profile's key and
// reachability; any FAIL makes the exit status 1.
TEST_F(CompleteCliTest, DoctorReportsTheFileItReadAndAnUnknownMode) {
  fake_->Enqueue("/v1/models", testing::MakeResponse(200, R"({"data":[]})"));
  ConfigFile config(
      "[agent]\nmode = \"nosuch\"\n\n[profiles.work]\nprovider = \"openai\"\n"
      "model = \"gpt-4o\"\nbase_url = \"" +
      fake_->base_url() + "/v1\"\n");
  RunResult run = RunLapceAi({"--config", config.path(), "doctor"}, {"OPENAI_API_KEY=sk-doc-1"});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.out.find("ok     config                       loaded from " + config.path()),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("FAIL   agent mode                   agent.mode: unknown mode 'nosuch' "
                         "(the modes here are: code, architect, ask, debug, orchestrator)"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("ok       key                        present (from env OPENAI_API_KEY)"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("ok       reachable                  GET " + fake_->base_url() +
                         "/v1/models: HTTP 200"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("ok     session store                none yet; the first session "
                         "creates /tmp/lai-e2e."),
            std::string::npos)
      << run.out;
  EXPECT_EQ(run.out.find("sk-doc-1"), std::string::npos);
  ASSERT_EQ(fake_->requests().size(), 1u);
  EXPECT_EQ(fake_->requests()[0].path, "/v1/models");
}

// A session store that does not open (here not a database at all) is a problem doctor names,
// with the file; one that opens is counted.
TEST_F(CompleteCliTest, DoctorChecksTheSessionStore) {
  ConfigFile config("");
  const std::string data = std::filesystem::path(config.path()).parent_path().string() + "/data";
  std::filesystem::create_directories(data + "/lapce-ai");
  std::ofstream(data + "/lapce-ai/sessions.db") << "not a database, but long enough to be read "
                                                   "as one: sqlite looks at the first 100 bytes "
                                                   "of the file for its header";
  RunResult broken = RunLapceAi({"--config", config.path(), "doctor"}, {"XDG_DATA_HOME=" + data});
  EXPECT_EQ(broken.exit_code, 1);
  EXPECT_NE(broken.out.find("FAIL   session store                "), std::string::npos)
      << broken.out;
  EXPECT_NE(broken.out.find(data + "/lapce-ai/sessions.db"), std::string::npos) << broken.out;
  std::filesystem::remove(data + "/lapce-ai/sessions.db");
  RunResult empty =
      RunLapceAi({"--config", config.path(), "sessions", "list"}, {"XDG_DATA_HOME=" + data});
  EXPECT_EQ(empty.exit_code, 0) << empty.err;  // Creates the store.
  RunResult good = RunLapceAi({"--config", config.path(), "doctor"}, {"XDG_DATA_HOME=" + data});
  EXPECT_NE(good.out.find("ok     session store                " + data +
                          "/lapce-ai/sessions.db (0 sessions)"),
            std::string::npos)
      << good.out;
}

// doctor takes the flags `run`, `acp` and `complete` take: it checks the one-off profile they
// make (it refused them), and among several profiles it marks the default.
TEST_F(CompleteCliTest, DoctorChecksTheProfileTheFlagsMakeAndMarksTheDefault) {
  fake_->Enqueue("/v1/models", testing::MakeResponse(200, R"({"data":[]})"));
  ConfigFile empty("");
  RunResult one_off = RunLapceAi({"--config", empty.path(), "doctor", "--provider", "openai",
                                  "--model", "gpt-4o", "--base-url", fake_->base_url() + "/v1"},
                                 {"OPENAI_API_KEY=sk-doc-2"});
  EXPECT_EQ(one_off.exit_code, 0) << one_off.out << one_off.err;
  EXPECT_NE(one_off.out.find("profile command-line         openai gpt-4o at " + fake_->base_url() +
                             "/v1"),
            std::string::npos)
      << one_off.out;
  EXPECT_NE(one_off.out.find("/v1/models: HTTP 200"), std::string::npos) << one_off.out;

  ConfigFile two(
      "[llm]\ndefault_profile = \"b\"\n[profiles.a]\nprovider = \"ollama\"\n"
      "model = \"m\"\nbase_url = \"http://127.0.0.1:1\"\n[profiles.b]\n"
      "provider = \"ollama\"\nmodel = \"m\"\nbase_url = \"http://127.0.0.1:1\"\n");
  RunResult both = RunLapceAi({"--config", two.path(), "doctor"}, {});
  EXPECT_NE(both.out.find("profile b                    ollama m at http://127.0.0.1:1 (the "
                          "default: used unless a command names another)"),
            std::string::npos)
      << both.out;
  EXPECT_EQ(both.out.find("profile a                    ollama m at http://127.0.0.1:1 (the"),
            std::string::npos)
      << both.out;
  // --profile asks about that one alone: the others are not in use.
  RunResult named = RunLapceAi({"--config", two.path(), "doctor", "--profile", "a"}, {});
  EXPECT_NE(named.out.find("profile a "), std::string::npos) << named.out;
  EXPECT_EQ(named.out.find("profile b "), std::string::npos) << named.out;
  EXPECT_EQ(named.out.find("(the default"), std::string::npos) << "a is not: " << named.out;
  // …and the fallbacks it would hand requests to.
  ConfigFile chain(
      "[profiles.a]\nprovider = \"ollama\"\nmodel = \"m\"\nbase_url = \"http://127.0.0.1:1\"\n"
      "fallback = \"c\"\n[profiles.b]\nprovider = \"ollama\"\nmodel = \"m\"\n"
      "base_url = \"http://127.0.0.1:1\"\n[profiles.c]\nprovider = \"ollama\"\nmodel = \"m\"\n"
      "base_url = \"http://127.0.0.1:1\"\n");
  RunResult with_fallback = RunLapceAi({"--config", chain.path(), "doctor", "--profile", "a"}, {});
  EXPECT_NE(with_fallback.out.find("profile a "), std::string::npos) << with_fallback.out;
  EXPECT_NE(with_fallback.out.find("profile c                    ollama m at "
                                   "http://127.0.0.1:1 (a fallback of the one named)"),
            std::string::npos)
      << with_fallback.out;
  EXPECT_EQ(with_fallback.out.find("profile b "), std::string::npos) << with_fallback.out;
}

// doctor asks as completions do: the key as trimmed, the profile's headers (a gateway refused it,
// "the key was rejected"); a 404 fails, saying the base URL looks wrong (it read "ok"); the local
// Ollama tried for want of anything else is no problem when something else is configured.
TEST_F(CompleteCliTest, DoctorAsksAsCompletionsDoAndA404Fails) {
  ConfigFile config("[profiles.gw]\nprovider = \"openai\"\nmodel = \"gpt-4o\"\nbase_url = \"" +
                    fake_->base_url() + "\"\nheaders = { \"X-Gate\" = \"gate-1\" }\n");
  RunResult run = RunLapceAi({"--config", config.path(), "doctor"}, {"OPENAI_API_KEY=sk-doc-3\n"});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.out.find("HTTP 404"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find(": the base URL looks wrong (an OpenAI-style base URL usually ends in "
                         "/v1)"),
            std::string::npos)
      << run.out;
  ASSERT_EQ(fake_->requests().size(), 1u);
  const testing::RecordedRequest sent = fake_->requests()[0];
  EXPECT_EQ(http::FindHeader(sent.headers, "Authorization"), "Bearer sk-doc-3");
  EXPECT_EQ(http::FindHeader(sent.headers, "X-Gate"), "gate-1");

  ConfigFile none("");
  RunResult spare = RunLapceAi({"--config", none.path(), "doctor"}, {"DEEPSEEK_API_KEY=sk-doc-4"});
  EXPECT_NE(spare.out.find("not running (used only when named: --profile ollama)"),
            std::string::npos)
      << spare.out;
}

// A 200 that is not the API's answer (a proxy's login page) fails doctor, which said
// "everything looks fine"; a model Ollama has not pulled fails, one a gateway does not list is
// said.
TEST_F(CompleteCliTest, DoctorLooksAtWhatTheModelListSays) {
  ConfigFile config("[profiles.gw]\nprovider = \"openai\"\nmodel = \"gpt-4o\"\nbase_url = \"" +
                    fake_->base_url() + "/v1\"\n");
  fake_->Enqueue("/v1/models", testing::MakeResponse(200, "<html>Log in</html>", "text/html"));
  RunResult proxy = RunLapceAi({"--config", config.path(), "doctor"}, {"OPENAI_API_KEY=k"});
  EXPECT_EQ(proxy.exit_code, 1) << proxy.out;
  EXPECT_NE(proxy.out.find("HTTP 200"), std::string::npos) << proxy.out;
  EXPECT_NE(proxy.out.find(", but not the API's answer (it begins '<html>Log in</html>'): check "
                           "the base URL, and any proxy between"),
            std::string::npos)
      << proxy.out;

  fake_->Enqueue("/v1/models", testing::MakeResponse(200, R"({"data":[{"id":"gpt-4.1"}]})"));
  RunResult unlisted = RunLapceAi({"--config", config.path(), "doctor"}, {"OPENAI_API_KEY=k"});
  EXPECT_EQ(unlisted.exit_code, 0) << unlisted.out;
  EXPECT_NE(unlisted.out.find("; model 'gpt-4o' is not among the 1 it lists"), std::string::npos)
      << unlisted.out;

  ConfigFile ollama(
      "[profiles.local]\nprovider = \"ollama\"\nmodel = \"qwen2.5-coder:14b\"\n"
      "base_url = \"" +
      fake_->base_url() + "\"\n");
  const std::string tags = R"({"models":[{"name":"llama3:latest","model":"llama3:latest"}]})";
  fake_->Enqueue("/api/tags", testing::MakeResponse(200, tags));
  RunResult missing = RunLapceAi({"--config", ollama.path(), "doctor"}, {});
  EXPECT_EQ(missing.exit_code, 1) << missing.out;
  EXPECT_NE(missing.out.find("but model 'qwen2.5-coder:14b' is not pulled: `ollama pull "
                             "qwen2.5-coder:14b`"),
            std::string::npos)
      << missing.out;
  ConfigFile llama(
      "[profiles.local]\nprovider = \"ollama\"\nmodel = \"llama3\"\n"
      "base_url = \"" +
      fake_->base_url() + "\"\n");
  fake_->Enqueue("/api/tags", testing::MakeResponse(200, tags));
  RunResult pulled = RunLapceAi({"--config", llama.path(), "doctor"}, {});
  EXPECT_EQ(pulled.exit_code, 0) << pulled.out;
}

// A profile that fails hands the request to its fallback: the user is told which profile and
// model answered (it read as the first profile's answer), on the terminal and in --json's done.
TEST_F(CompleteCliTest, AFallbacksAnswerSaysWhoAnswered) {
  ConfigFile config("[profiles.main]\nprovider = \"openai\"\nmodel = \"gpt-4o\"\nbase_url = \"" +
                    fake_->base_url() + "/main/v1\"\nfallback = \"spare\"\n\n[profiles.spare]\n" +
                    "provider = \"openai\"\nmodel = \"gpt-4o-mini\"\nbase_url = \"" +
                    fake_->base_url() + "/spare/v1\"\n");
  for (bool json : {false, true}) {
    SCOPED_TRACE(json ? "--json" : "text");
    // Overloaded for every attempt, each asking for a 1 ms wait.
    testing::FakeResponse busy = testing::MakeResponse(529, R"({"error":{"message":"busy"}})");
    busy.headers.push_back({"retry-after-ms", "1"});
    for (int attempt = 0; attempt < 5; ++attempt) fake_->Enqueue("/main/", busy);
    fake_->Enqueue("/spare/", testing::OpenAiText("From the spare."));
    std::vector<std::string> args = {"--config", config.path(), "complete", "hi"};
    if (json) args.push_back("--json");
    RunResult run = RunLapceAi(args, {"OPENAI_API_KEY=sk-fb"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_NE(run.out.find(json ? "pare." : "From the spare."), std::string::npos) << run.out;
    EXPECT_NE(run.err.find("its fallback 'spare' (openai gpt-4o-mini) answers instead"),
              std::string::npos)
        << run.err;
    if (json) {
      EXPECT_NE(run.out.find(R"("model":"gpt-4o-mini","profile":"spare")"), std::string::npos)
          << run.out;
    } else {
      EXPECT_NE(run.err.find("(answered by the fallback profile 'spare', model gpt-4o-mini)"),
                std::string::npos)
          << run.err;
    }
  }
}

// `config keys`, the reference that helps fix a configuration, works when the file does not load.
TEST_F(CompleteCliTest, ConfigKeysWorksWithABrokenConfig) {
  ConfigFile config(
      "[profiles.main]\nprovider = \"openai\"\nmodel = \"gpt-4o\"\n"
      "fallback = \"ghost\"\n");
  RunResult keys = RunLapceAi({"--config", config.path(), "config", "keys"}, {});
  EXPECT_EQ(keys.exit_code, 0) << keys.err;
  EXPECT_NE(keys.out.find("llm.default_profile"), std::string::npos) << keys.out;
  EXPECT_NE(keys.err.find("'ghost' names no profile"), std::string::npos) << keys.err;
  RunResult show = RunLapceAi({"--config", config.path(), "config", "show"}, {});
  EXPECT_EQ(show.exit_code, 2) << show.err;
}

// `config show` says which file it read and, when the file has no profiles, the ones made from
// the environment (which the error for an unknown profile lists): provider, model, URL and where
// the key comes from, never the key.
TEST_F(CompleteCliTest, ConfigShowNamesItsFileAndTheProfilesInUse) {
  ConfigFile config("[agent]\nmode = \"ask\"\n");
  RunResult show =
      RunLapceAi({"--config", config.path(), "config", "show"}, {"OPENAI_API_KEY=sk-show-1"});
  EXPECT_EQ(show.exit_code, 0) << show.err;
  EXPECT_TRUE(show.out.starts_with("# from " + config.path() + "\n")) << show.out;
  EXPECT_NE(show.out.find("# No profiles are configured: these come from the environment (the "
                          "first is the default):\n#   openai: openai gpt-4.1 at "
                          "https://api.openai.com/v1 (key from env OPENAI_API_KEY)\n"),
            std::string::npos)
      << show.out;
  EXPECT_NE(show.out.find("#   ollama: ollama"), std::string::npos) << show.out;
  EXPECT_EQ(show.out.find("sk-show-1"), std::string::npos);
}

// A configuration that does not load is doctor's first finding, not a bare error.
TEST_F(CompleteCliTest, DoctorReportsAConfigThatFailsToLoad) {
  ConfigFile config("[ipc]\nring_bytes = \"big\"\n");
  RunResult run = RunLapceAi({"--config", config.path(), "doctor"}, {});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_TRUE(run.out.starts_with("FAIL   config                       " + config.path() +
                                  ":2:14: ipc.ring_bytes: "))
      << run.out;
  EXPECT_NE(run.out.find("problem(s) found\n"), std::string::npos) << run.out;
  // Every other command still refuses to start with it, exit status 2.
  RunResult models = RunLapceAi({"--config", config.path(), "models"}, {});
  EXPECT_EQ(models.exit_code, 2);
  EXPECT_NE(models.err.find(config.path() + ":2:14: ipc.ring_bytes"), std::string::npos)
      << models.err;
}

// A first run with no key and no config file tries the local Ollama once and says how to set up.
TEST_F(CompleteCliTest, AFirstRunWithNothingConfiguredSaysHowToSetUp) {
  // Only meaningful when no Ollama listens here (a machine running one would answer).
  Result<http::FullResponse> probe = [] {
    Result<std::unique_ptr<http::Client>> client = http::Client::Create();
    http::Request request;
    request.url = "http://localhost:11434/api/tags";
    request.connect_timeout = std::chrono::seconds(1);
    return http::Fetch(**client, std::move(request), std::chrono::seconds(2), 1 << 16);
  }();
  if (probe.ok()) GTEST_SKIP() << "something answers on localhost:11434";
  auto start = std::chrono::steady_clock::now();
  RunResult run = RunLapceAi({"complete", "hi"}, {});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_NE(run.err.find("no provider is configured"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("OPENAI_API_KEY"), std::string::npos) << run.err;
  // Not retried: a first-time user learns this at once, not after the backoff schedule.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace lai
