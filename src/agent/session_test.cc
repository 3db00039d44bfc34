// Agent sessions end to end, in process: the turn loop against scripted OpenAI streams served by
// the fake provider server, the real workspace tools in a temporary git repository, and the
// SQLite store. Integration (child processes, loopback HTTP, threads).
#include "agent/session.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/context.h"
#include "agent/events.h"
#include "agent/mcp.h"
#include "agent/modes.h"
#include "agent/store.h"
#include "agent/xml_tools.h"
#include "base/check.h"
#include "base/config.h"
#include "llm/pool.h"
#include "testing/fake_provider_server.h"
#include "testing/scripted_model.h"

namespace lai::agent {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::FakeProviderServer;
using testing::FakeResponse;
using testing::OpenAiStalledText;
using testing::OpenAiToolCall;
using testing::OpenAiTurn;
using testing::RecordedRequest;
using testing::ScriptedTurn;
using Clock = std::chrono::steady_clock;

// ---- Reading what the engine sent --------------------------------------------------------------

json Body(const RecordedRequest& request) {
  json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(body.is_discarded()) << "request body is not JSON: " << request.body;
  return body.is_discarded() ? json::object() : body;
}

std::string ContentText(const json& message) {
  auto it = message.find("content");
  if (it == message.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  std::string text;
  for (const json& part : *it) text += part.value("text", "");
  return text;
}

// Every message's text (and tool-call arguments), unescaped, for "does the model see X" checks.
std::string MessagesText(const json& body) {
  std::string text;
  for (const json& message : body.value("messages", json::array())) {
    text += ContentText(message);
    text += "\n";
    for (const json& call : message.value("tool_calls", json::array())) {
      text += call["function"].value("arguments", "");
      text += "\n";
    }
  }
  return text;
}

std::string SystemPromptOf(const json& body) {
  const json& messages = body.value("messages", json::array());
  if (messages.empty() || messages[0].value("role", "") != "system") return {};
  return ContentText(messages[0]);
}

// The content of the role "tool" message answering `call_id`; nullopt when there is none.
std::optional<std::string> ToolResultOf(const json& body, std::string_view call_id) {
  for (const json& message : body.value("messages", json::array())) {
    if (message.value("role", "") == "tool" && message.value("tool_call_id", "") == call_id) {
      return ContentText(message);
    }
  }
  return std::nullopt;
}

std::string LastUserText(const json& body) {
  std::string text;
  for (const json& message : body.value("messages", json::array())) {
    if (message.value("role", "") == "user") text = ContentText(message);
  }
  return text;
}

std::vector<std::string> ToolNames(const json& body) {
  std::vector<std::string> names;
  for (const json& tool : body.value("tools", json::array())) {
    names.push_back(tool["function"].value("name", ""));
  }
  return names;
}

bool Contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// ---- A client that records and answers ---------------------------------------------------------

std::string_view StatusName(ToolStatus status) {
  switch (status) {
    case ToolStatus::kPending:
      return "pending";
    case ToolStatus::kInProgress:
      return "in_progress";
    case ToolStatus::kCompleted:
      return "completed";
    case ToolStatus::kFailed:
      return "failed";
  }
  return "?";
}

// Records every update, answers permission requests from a script, and can cancel its session
// when a given update arrives. Thread-safe.
class TestClient : public SessionClient {
 public:
  struct Answer {
    PermissionOutcome outcome = PermissionOutcome::kAllowOnce;
    std::string feedback;
    bool wait_for_cancel = false;  // A user who never answers: kCancelled once cancelled.
    std::function<void()> before;  // What the user does before answering.
  };

  void OnUpdate(const std::string& session_id, const SessionUpdate& update,
                std::string_view acp_json) override {
    EXPECT_EQ(acp_json, ToAcpJson(update));
    Session* to_cancel = nullptr;
    {
      std::lock_guard lock(mutex_);
      session_ids_.push_back(session_id);
      updates_.push_back(update);
      if (cancel_session_ != nullptr && update.kind == cancel_on_) {
        to_cancel = cancel_session_;
        cancel_session_ = nullptr;
        cancelled_at_ = Clock::now();
      }
    }
    if (to_cancel != nullptr) to_cancel->Cancel();
    std::function<void()> action;
    {
      std::lock_guard lock(mutex_);
      if (action_ && update.kind == action_on_) action.swap(action_);
    }
    if (action) action();
  }
  // Runs `action` once, when the first update of `kind` arrives.
  void DoOn(SessionUpdate::Kind kind, std::function<void()> action) {
    std::lock_guard lock(mutex_);
    action_on_ = kind;
    action_ = std::move(action);
  }

  PermissionReply RequestPermission(const std::string&, const PermissionRequest& request,
                                    const std::atomic<bool>& cancelled) override {
    Answer answer;
    {
      std::lock_guard lock(mutex_);
      permissions_.push_back(request);
      asked_.notify_all();
      if (answers_.empty()) {
        ADD_FAILURE() << "unexpected permission request: " << request.tool.title;
        return {PermissionOutcome::kRejectOnce, {}};
      }
      answer = answers_.front();
      answers_.pop_front();
    }
    if (answer.before) answer.before();
    if (answer.wait_for_cancel) {
      // Polls the session's flag (it has no notification), bounded.
      Clock::time_point deadline = Clock::now() + 5s;
      while (!cancelled.load() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
      EXPECT_TRUE(cancelled.load()) << "the permission request was never cancelled";
      return {PermissionOutcome::kCancelled, {}};
    }
    return {answer.outcome, answer.feedback};
  }

  void AnswerNext(PermissionOutcome outcome, std::string feedback = {}) {
    std::lock_guard lock(mutex_);
    answers_.push_back({outcome, std::move(feedback)});
  }
  void AnswerNextAfter(std::function<void()> before, PermissionOutcome outcome) {
    std::lock_guard lock(mutex_);
    answers_.push_back({outcome, {}, false, std::move(before)});
  }
  void AnswerWhenCancelled() {
    std::lock_guard lock(mutex_);
    answers_.push_back({PermissionOutcome::kCancelled, {}, true});
  }
  // Whether `count` permission requests arrived within `timeout`.
  bool WaitForPermissions(size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return asked_.wait_for(lock, timeout, [&] { return permissions_.size() >= count; });
  }
  void CancelOn(SessionUpdate::Kind kind, Session& session) {
    std::lock_guard lock(mutex_);
    cancel_on_ = kind;
    cancel_session_ = &session;
  }
  std::optional<Clock::time_point> cancelled_at() const {
    std::lock_guard lock(mutex_);
    return cancelled_at_;
  }
  std::vector<SessionUpdate> updates() const {
    std::lock_guard lock(mutex_);
    return updates_;
  }
  std::vector<PermissionRequest> permissions() const {
    std::lock_guard lock(mutex_);
    return permissions_;
  }
  size_t unused_answers() const {
    std::lock_guard lock(mutex_);
    return answers_.size();
  }

  // The updates in short form: usage updates left out, runs of agent_message_chunk as one.
  std::vector<std::string> Trace() const {
    std::vector<std::string> trace;
    for (const SessionUpdate& update : updates()) {
      std::string line(UpdateKindName(update.kind));
      switch (update.kind) {
        case SessionUpdate::Kind::kUsageUpdate:
          continue;
        case SessionUpdate::Kind::kAgentMessageChunk:
        case SessionUpdate::Kind::kAgentThoughtChunk:
          if (!trace.empty() && trace.back() == line) continue;
          break;
        case SessionUpdate::Kind::kToolCall:
          line += " ";
          line += update.tool.kind ? ToolKindName(*update.tool.kind) : "?";
          line += " ";
          line += update.tool.status ? StatusName(*update.tool.status) : "?";
          break;
        case SessionUpdate::Kind::kToolCallUpdate:
          line += " ";
          line += update.tool.status ? StatusName(*update.tool.status) : "?";
          for (const ToolCallContent& content : update.tool.content) {
            if (content.kind == ToolCallContent::Kind::kDiff) line += " +diff";
          }
          break;
        default:
          break;
      }
      trace.push_back(std::move(line));
    }
    return trace;
  }

  // Everything shown as the agent's message text.
  std::string AgentText() const {
    std::string text;
    for (const SessionUpdate& update : updates()) {
      if (update.kind == SessionUpdate::Kind::kAgentMessageChunk) text += update.text;
    }
    return text;
  }

  std::vector<std::string> AcpJson() const {
    std::vector<std::string> out;
    for (const SessionUpdate& update : updates()) out.push_back(ToAcpJson(update));
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable asked_;
  std::vector<std::string> session_ids_;
  std::vector<SessionUpdate> updates_;
  std::vector<PermissionRequest> permissions_;
  std::deque<Answer> answers_;
  SessionUpdate::Kind cancel_on_ = SessionUpdate::Kind::kAgentMessageChunk;
  SessionUpdate::Kind action_on_ = SessionUpdate::Kind::kUserMessageChunk;
  std::function<void()> action_;
  Session* cancel_session_ = nullptr;
  std::optional<Clock::time_point> cancelled_at_;
};

// ---- Fixture -----------------------------------------------------------------------------------

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void WriteFile(const std::string& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

constexpr std::string_view kOriginal = "hello world\n";
constexpr std::string_view kDiff =
    "<<<<<<< SEARCH\n:start_line:1\n-------\nhello world\n=======\nhello lapce\n>>>>>>> REPLACE";

std::string ReadArgs(std::string_view path) {
  return json{{"files", {{{"path", path}, {"line_ranges", nullptr}}}}}.dump();
}
std::string CompletionArgs(std::string_view result) { return json{{"result", result}}.dump(); }

// A scripted model's execute_command call of `command` in the workspace.
testing::FakeResponse CommandCall(std::string_view id, std::string_view command) {
  return testing::OpenAiToolCall(id, "execute_command",
                                 json{{"command", command}, {"cwd", nullptr}}.dump());
}

// A scripted model's write_to_file call of one line to `path`.
testing::FakeResponse WriteCall(std::string_view id, std::string_view path, std::string_view line) {
  return testing::OpenAiToolCall(
      id, "write_to_file",
      json{{"path", path}, {"content", std::string(line) + "\n"}, {"line_count", 1}}.dump());
}

// A big prose file whose lines all carry `word` (to tell later which files the model still sees).
std::string BigFile(std::string_view word, int lines) {
  std::string text;
  for (int i = 1; i <= lines; ++i) {
    text += std::string(word) + " line " + std::to_string(i) +
            " the quick brown fox jumps over the lazy dog and keeps running far away\n";
  }
  return text;
}

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<FakeProviderServer>> server = FakeProviderServer::Start();
    ASSERT_TRUE(server.ok()) << server.error().ToString();
    server_ = std::move(*server);

    std::string pattern = ::testing::TempDir() + "/lai-session-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = std::filesystem::canonical(pattern).string();  // TempDir() may end in '/'.
    workspace_ = root_ + "/ws";
    std::filesystem::create_directories(workspace_);
    std::string git = "git init -q '" + workspace_ + "' >/dev/null 2>&1";
    ASSERT_EQ(std::system(git.c_str()), 0);
    WriteFile(workspace_ + "/src.txt", kOriginal);
    WriteFile(workspace_ + "/test.sh", "grep -q 'hello lapce' src.txt && echo TESTS PASS\n");

    Result<std::unique_ptr<SessionStore>> store = SessionStore::Open(root_ + "/sessions.db");
    ASSERT_TRUE(store.ok()) << store.error().ToString();
    store_ = std::move(*store);
  }

  void TearDown() override {
    engines_.clear();
    pools_.clear();
    store_.reset();
    server_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  // A pool with one openai profile per name, each at base URL <server>/<name>/v1 (its own
  // response queue). `context_window` overrides the model's window (with 1000 output tokens).
  llm::ProviderPool& MakePool(std::vector<std::string> names, std::string model = "gpt-4o",
                              std::optional<int64_t> context_window = std::nullopt,
                              std::string provider = "openai") {
    Config config;
    for (const std::string& name : names) {
      Config::Profile profile;
      profile.name = name;
      profile.provider = provider;
      profile.model = model;
      profile.base_url = server_->base_url() + "/" + name + "/v1";
      profile.api_key_env = "OPENAI_API_KEY";
      profile.origin = "session_test";
      profile.connect_timeout_ms = 2000;
      profile.first_byte_timeout_ms = 5000;
      profile.idle_timeout_ms = 5000;
      config.profiles.push_back(std::move(profile));
    }
    if (context_window) {
      Config::ModelOverride override_model;
      override_model.provider = "openai";
      override_model.id = model;
      override_model.context_window = *context_window;
      override_model.max_output_tokens = 1000;
      config.models.push_back(std::move(override_model));
    }
    llm::PoolOptions options;
    options.environ = kEnviron;
    options.max_attempts = 1;  // A missing scripted reply fails at once, never retried.
    Result<std::unique_ptr<llm::ProviderPool>> pool =
        llm::ProviderPool::Create(config, nullptr, options);
    LAI_CHECK(pool.ok()) << pool.error().ToString();
    pools_.push_back(std::move(*pool));
    return *pools_.back();
  }

  static AgentSettings Settings() {
    AgentSettings settings;
    settings.approvals.write = true;
    settings.approvals.execute = true;
    settings.approvals.allowed_commands = {"*"};
    return settings;
  }

  // Closes `session` in `first` (as its process would at exit) and loads it in a new engine over
  // `pool`, as another process would; null, with a failure, when it does not load.
  std::shared_ptr<Session> Reopen(Engine& first, std::shared_ptr<Session>& session,
                                  llm::ProviderPool& pool) {
    std::string id = session->id();
    first.Close(id);
    session.reset();
    Result<std::shared_ptr<Session>> loaded = MakeEngine(pool).LoadSession(id);
    EXPECT_TRUE(loaded.ok()) << loaded.error().ToString();
    return loaded.ok() ? *loaded : nullptr;
  }

  Engine& MakeEngine(llm::ProviderPool& pool, AgentSettings settings = Settings(),
                     SessionStore* store = nullptr) {
    engines_.push_back(
        std::make_unique<Engine>(pool, store != nullptr ? store : store_.get(), settings));
    return *engines_.back();
  }

  std::shared_ptr<Session> NewSession(Engine& engine, std::string profile = {},
                                      std::string mode = {},
                                      std::shared_ptr<McpServers> mcp = nullptr) {
    SessionOptions options;
    options.workspace = workspace_;
    options.profile = std::move(profile);
    options.mode = std::move(mode);
    options.mcp = std::move(mcp);
    Result<std::shared_ptr<Session>> session = engine.NewSession(options);
    LAI_CHECK(session.ok()) << session.error().ToString();
    return *session;
  }

  void Enqueue(FakeResponse response, std::string_view profile = "p") {
    server_->Enqueue("/" + std::string(profile) + "/v1/chat/completions", std::move(response));
  }

  // A new_task call (id "call_task") handing `message` to a code-mode subtask.
  static FakeResponse NewTaskCall(const std::string& message) {
    return OpenAiToolCall("call_task", "new_task",
                          json{{"mode", "code"}, {"message", message}, {"todos", nullptr}}.dump());
  }

  // The new_task call's result (id "call_task") in the request `body` holds `text`.
  static void ExpectTaskResult(const json& body, std::string_view text) {
    std::optional<std::string> result = ToolResultOf(body, "call_task");
    ASSERT_TRUE(result.has_value()) << body["messages"].dump();
    EXPECT_NE(result->find(text), std::string::npos) << *result;
  }

  std::vector<json> Bodies() const {
    std::vector<json> bodies;
    for (const RecordedRequest& request : server_->requests()) bodies.push_back(Body(request));
    return bodies;
  }

  static StopReason MustPrompt(Session& session, std::string_view text, TestClient& client) {
    Result<StopReason> stop = session.Prompt(text, client);
    EXPECT_TRUE(stop.ok()) << stop.error().ToString();
    return stop.ok() ? *stop : StopReason::kRefusal;
  }

  static constexpr const char* kEnvironValues[] = {"OPENAI_API_KEY=test", nullptr};
  static constexpr const char* const* kEnviron = kEnvironValues;

  std::unique_ptr<FakeProviderServer> server_;
  std::string root_;
  std::string workspace_;
  std::unique_ptr<SessionStore> store_;
  std::vector<std::unique_ptr<llm::ProviderPool>> pools_;
  std::vector<std::unique_ptr<Engine>> engines_;
};

// ---- 1. Native protocol: read, edit, test, complete -------------------------------------------

TEST_F(SessionTest, NativeReadEditRunComplete) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  EXPECT_EQ(session->Info().protocol, ToolProtocol::kNative);
  ScriptedTurn first;
  first.reasoning = "The file has to be read before editing.";
  first.text = "Let me read the file.";
  first.calls.push_back({"call_1", "read_file", ReadArgs("src.txt")});
  Enqueue(OpenAiTurn(first));
  Enqueue(
      OpenAiToolCall("call_2", "apply_diff", json{{"path", "src.txt"}, {"diff", kDiff}}.dump()));
  Enqueue(OpenAiToolCall("call_3", "execute_command",
                         json{{"command", "sh test.sh"}, {"cwd", nullptr}}.dump()));
  Enqueue(OpenAiToolCall("call_4", "attempt_completion", CompletionArgs("Greeting changed.")));

  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Change the greeting in src.txt to hello lapce", client),
            StopReason::kEndTurn);

  EXPECT_EQ(ReadFile(workspace_ + "/src.txt"), "hello lapce\n");
  EXPECT_EQ(client.Trace(), (std::vector<std::string>{
                                "session_info_update",
                                "user_message_chunk",
                                "agent_thought_chunk",
                                "agent_message_chunk",
                                "tool_call read pending",
                                "tool_call_update in_progress",
                                "tool_call_update completed",
                                "tool_call edit pending",
                                "tool_call_update in_progress",
                                "tool_call_update completed +diff",
                                "tool_call execute pending",
                                "tool_call_update in_progress",
                                "tool_call_update completed",
                                "agent_message_chunk",
                            }));
  EXPECT_NE(client.AgentText().find("Let me read the file."), std::string::npos);
  EXPECT_NE(client.AgentText().find("Greeting changed."), std::string::npos);
  for (const SessionUpdate& update : client.updates()) {
    if (update.kind != SessionUpdate::Kind::kToolCallUpdate) continue;
    for (const ToolCallContent& content : update.tool.content) {
      if (content.kind != ToolCallContent::Kind::kDiff) continue;
      EXPECT_EQ(content.path, workspace_ + "/src.txt");
      EXPECT_EQ(content.old_text.value_or("<none>"), kOriginal);
      EXPECT_EQ(content.new_text, "hello lapce\n");
    }
  }
  EXPECT_TRUE(client.permissions().empty());
  for (const SessionUpdate& update : client.updates()) {
    if (update.kind != SessionUpdate::Kind::kToolCall) continue;
    ASSERT_FALSE(update.tool.raw_input_json.empty());
    if (update.tool.id == "call_1") {
      EXPECT_EQ(update.tool.title, "Read src.txt");
      ASSERT_EQ(update.tool.locations.size(), 1u);
      EXPECT_EQ(update.tool.locations[0].path, workspace_ + "/src.txt");
    }
    if (update.tool.id == "call_3") {
      EXPECT_EQ(update.tool.title, "Run `sh test.sh`");
    }
  }

  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 4u);
  for (const json& body : bodies) {
    std::vector<std::string> tools = ToolNames(body);
    EXPECT_TRUE(Contains(tools, "read_file") && Contains(tools, "apply_diff") &&
                Contains(tools, "execute_command") && Contains(tools, "attempt_completion"))
        << body["tools"].dump();
    EXPECT_FALSE(SystemPromptOf(body).empty());
  }
  EXPECT_NE(LastUserText(bodies[0]).find("<task>\nChange the greeting"), std::string::npos);
  // The answer is asked for no longer than the context plan leaves room for (a fifth of the
  // window at most).
  const int64_t window = session->Info().context_window;
  EXPECT_GT(bodies[0].value("max_completion_tokens", int64_t{0}), 0) << bodies[0].dump();
  EXPECT_LE(bodies[0].value("max_completion_tokens", int64_t{0}), (window + 4) / 5);
  // Reasoning goes back only to servers that want it (DeepSeek's; Groq refuses the field).
  const json& assistant = bodies[1]["messages"][2];
  EXPECT_FALSE(assistant.contains("reasoning_content")) << assistant.dump();
  std::optional<std::string> read = ToolResultOf(bodies[1], "call_1");
  ASSERT_TRUE(read.has_value()) << bodies[1]["messages"].dump();
  EXPECT_NE(read->find("hello world"), std::string::npos) << *read;
  std::optional<std::string> edit = ToolResultOf(bodies[2], "call_2");
  ASSERT_TRUE(edit.has_value());
  EXPECT_NE(edit->find("src.txt"), std::string::npos) << *edit;
  std::optional<std::string> run = ToolResultOf(bodies[3], "call_3");
  ASSERT_TRUE(run.has_value());
  EXPECT_NE(run->find("TESTS PASS"), std::string::npos) << *run;
  // Every earlier tool result is still there, right after its call.
  EXPECT_TRUE(ToolResultOf(bodies[3], "call_1").has_value());
  EXPECT_TRUE(ToolResultOf(bodies[3], "call_2").has_value());

  SessionInfo info = session->Info();
  EXPECT_EQ(info.totals.requests, 4);
  EXPECT_EQ(info.totals.input_tokens, 400);
  EXPECT_EQ(info.totals.output_tokens, 80);
  EXPECT_GT(info.totals.cost_usd, 0);
  std::optional<SessionUpdate> usage;
  int usage_updates = 0;
  for (const SessionUpdate& update : client.updates()) {
    if (update.kind != SessionUpdate::Kind::kUsageUpdate) continue;
    usage = update;
    ++usage_updates;
  }
  EXPECT_EQ(usage_updates, 4) << "one after each reply";
  ASSERT_TRUE(usage.has_value());
  EXPECT_GT(usage->context_window, 100000);
  EXPECT_EQ(usage->context_window, info.context_window);
  EXPECT_GT(usage->used_tokens, 0);
  EXPECT_DOUBLE_EQ(usage->cost_usd, info.totals.cost_usd);
  Result<std::optional<SessionRecord>> record = store_->FindSession(session->id());
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->status, SessionStatus::kCompleted);
}

// A thinking model that calls tools (DeepSeek's) gets the reasoning of its tool-calling message
// back: the session records which endpoint made it.
TEST_F(SessionTest, ReasoningGoesBackToTheEndpointThatMadeIt) {
  Engine& engine = MakeEngine(MakePool({"p"}, "deepseek-reasoner", std::nullopt, "deepseek"));
  std::shared_ptr<Session> session = NewSession(engine);
  ScriptedTurn first;
  first.reasoning = "Read the file first.";
  first.calls.push_back({"call_1", "read_file", ReadArgs("src.txt")});
  Enqueue(OpenAiTurn(first));
  Enqueue(OpenAiToolCall("call_2", "attempt_completion", CompletionArgs("Read.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Read src.txt", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  const json& assistant = bodies[1]["messages"][2];
  EXPECT_EQ(assistant.value("reasoning_content", ""), first.reasoning) << assistant.dump();
}

// Claude's reply with two thinking blocks (interleaved thinking) and a redacted one: each goes
// back as it came, in order, with its own signature (one merged block fails verification, and a
// dropped redacted block makes the next request in a tool loop fail).
TEST_F(SessionTest, ThinkingBlocksGoBackAsTheyCame) {
  Engine& engine = MakeEngine(MakePool({"p"}, "claude-sonnet-4-5", std::nullopt, "anthropic"));
  std::shared_ptr<Session> session = NewSession(engine);
  auto event = [](const json& data) {
    return "event: " + data["type"].get<std::string>() + "\ndata: " + data.dump() + "\n\n";
  };
  auto delta = [&](int index, json change) {
    return event({{"type", "content_block_delta"}, {"index", index}, {"delta", change}});
  };
  auto start = [&](int index, json block) {
    return event({{"type", "content_block_start"}, {"index", index}, {"content_block", block}});
  };
  auto stop = [&](int index) { return event({{"type", "content_block_stop"}, {"index", index}}); };
  std::string body =
      event({{"type", "message_start"}, {"message", {{"usage", {{"input_tokens", 10}}}}}}) +
      start(0, {{"type", "thinking"}, {"thinking", ""}}) +
      delta(0, {{"type", "thinking_delta"}, {"thinking", "First."}}) +
      delta(0, {{"type", "signature_delta"}, {"signature", "SIG-A"}}) + stop(0) +
      start(1, {{"type", "redacted_thinking"}, {"data", "REDACTED-B"}}) + stop(1) +
      start(2, {{"type", "text"}, {"text", "Reading."}}) + stop(2) +
      start(3, {{"type", "thinking"}, {"thinking", "Then"}}) +
      delta(3, {{"type", "thinking_delta"}, {"thinking", " read."}}) +
      delta(3, {{"type", "signature_delta"}, {"signature", "SIG-C"}}) + stop(3) +
      start(4, {{"type", "tool_use"},
                {"id", "toolu_1"},
                {"name", "read_file"},
                {"input", json::object()}}) +
      delta(4, {{"type", "input_json_delta"}, {"partial_json", ReadArgs("src.txt")}}) + stop(4) +
      event({{"type", "message_delta"}, {"delta", {{"stop_reason", "tool_use"}}}}) +
      event({{"type", "message_stop"}});
  FakeResponse first;
  first.headers = {{"content-type", "text/event-stream"}};
  first.body_chunks = {body};
  first.Rechunk(37);
  server_->Enqueue("/p/", std::move(first));
  std::string done =
      start(0, {{"type", "tool_use"},
                {"id", "toolu_2"},
                {"name", "attempt_completion"},
                {"input", json::object()}}) +
      delta(0, {{"type", "input_json_delta"}, {"partial_json", CompletionArgs("Read.")}}) +
      stop(0) + event({{"type", "message_delta"}, {"delta", {{"stop_reason", "tool_use"}}}}) +
      event({{"type", "message_stop"}});
  server_->Enqueue("/p/", testing::MakeResponse(200, done, "text/event-stream"));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Read src.txt", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  const json& content = bodies[1]["messages"][1]["content"];
  ASSERT_EQ(content.size(), 5u) << content.dump();
  EXPECT_EQ(content[0],
            json({{"type", "thinking"}, {"thinking", "First."}, {"signature", "SIG-A"}}));
  EXPECT_EQ(content[1], json({{"type", "redacted_thinking"}, {"data", "REDACTED-B"}}));
  EXPECT_EQ(content[2],
            json({{"type", "thinking"}, {"thinking", "Then read."}, {"signature", "SIG-C"}}));
  EXPECT_EQ(content[3]["text"], "Reading.");
  EXPECT_EQ(content[4]["id"], "toolu_1");
}

// ---- 2. XML protocol ---------------------------------------------------------------------------

FakeResponse XmlTurn(std::string text) {
  ScriptedTurn turn;
  turn.text = std::move(text);
  turn.text_chunks = 7;  // Splits the markup at arbitrary points.
  return OpenAiTurn(turn);
}

// A long first line becomes a title of at most 80 bytes, cut between characters (a title in
// Japanese was cut inside one, and stored with U+FFFD).
TEST_F(SessionTest, ALongTitleIsCutBetweenCharacters) {
  llm::ProviderPool& pool = MakePool({"p"});
  Engine& engine = MakeEngine(pool);
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiToolCall("call_1", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  std::string task;
  for (int i = 0; i < 40; ++i) task += "\xe6\x97\xa5";  // 日 × 40: 120 bytes.
  EXPECT_EQ(MustPrompt(*session, task + "\nmore", client), StopReason::kEndTurn);
  const std::string title = session->Info().title;
  EXPECT_LE(title.size(), 80u);
  EXPECT_EQ(title, task.substr(0, 75) + "...");  // 25 whole characters.
}

TEST_F(SessionTest, XmlReadEditRunComplete) {
  AgentSettings settings = Settings();
  settings.tool_protocol = ToolProtocol::kXml;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine);
  EXPECT_EQ(session->Info().protocol, ToolProtocol::kXml);
  Enqueue(
      XmlTurn("Reading it first.\n<read_file>\n<args>\n<file>\n<path>src.txt</path>\n</file>\n"
              "</args>\n</read_file>"));
  Enqueue(XmlTurn("Now the edit.\n<apply_diff>\n<path>src.txt</path>\n<diff>\n" +
                  std::string(kDiff) + "\n</diff>\n</apply_diff>"));
  Enqueue(XmlTurn("<execute_command>\n<command>sh test.sh</command>\n</execute_command>"));
  Enqueue(
      XmlTurn("All good.\n<attempt_completion>\n<result>Greeting changed.</result>\n"
              "</attempt_completion>"));

  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Change the greeting in src.txt to hello lapce", client),
            StopReason::kEndTurn);
  EXPECT_EQ(ReadFile(workspace_ + "/src.txt"), "hello lapce\n");

  std::string shown = client.AgentText();
  for (std::string_view markup :
       {"<read_file", "</read_file", "<args", "<path", "<apply_diff", "<diff", "SEARCH",
        "<execute_command", "<command", "<attempt_completion", "<result"}) {
    EXPECT_EQ(shown.find(markup), std::string::npos) << markup << " shown in: " << shown;
  }
  EXPECT_NE(shown.find("Reading it first."), std::string::npos) << shown;
  EXPECT_NE(shown.find("Now the edit."), std::string::npos) << shown;
  EXPECT_NE(shown.find("Greeting changed."), std::string::npos) << shown;
  std::vector<std::string> trace = client.Trace();
  EXPECT_EQ(std::count(trace.begin(), trace.end(), "tool_call_update completed"), 2);
  EXPECT_EQ(std::count(trace.begin(), trace.end(), "tool_call_update completed +diff"), 1);

  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 4u);
  for (const json& body : bodies) {
    EXPECT_FALSE(body.contains("tools")) << body["tools"].dump();
    EXPECT_NE(SystemPromptOf(body).find("<read_file>"), std::string::npos)
        << "the XML system prompt documents the tools";
    for (const json& message : body["messages"]) EXPECT_FALSE(message.contains("tool_calls"));
  }
  EXPECT_TRUE(LastUserText(bodies[1]).starts_with("[read_file] Result:"))
      << LastUserText(bodies[1]);
  EXPECT_NE(LastUserText(bodies[1]).find("hello world"), std::string::npos);
  EXPECT_TRUE(LastUserText(bodies[2]).starts_with("[apply_diff] Result:"));
  EXPECT_TRUE(LastUserText(bodies[3]).starts_with("[execute_command] Result:"));
  EXPECT_NE(LastUserText(bodies[3]).find("TESTS PASS"), std::string::npos);
  // The model's own markup stays in its messages.
  EXPECT_NE(MessagesText(bodies[3]).find("<apply_diff>\n<path>src.txt</path>"), std::string::npos);
}

// <thinking>…</thinking> in the model's text is shown as thought, without the tags, in either
// protocol; the model's message keeps it as written.
TEST_F(SessionTest, ThinkingTagsAreShownAsThought) {
  for (ToolProtocol protocol : {ToolProtocol::kNative, ToolProtocol::kXml}) {
    AgentSettings settings = Settings();
    settings.tool_protocol = protocol;
    Engine& engine = MakeEngine(MakePool({"p"}), settings);
    std::shared_ptr<Session> session = NewSession(engine);
    const std::string said = "<thinking>The file is small; read it.</thinking>Reading.";
    if (protocol == ToolProtocol::kXml) {
      Enqueue(XmlTurn(said + "\n<read_file>\n<args>\n<file>\n<path>src.txt</path>\n</file>\n"
                             "</args>\n</read_file>"));
      Enqueue(XmlTurn("<attempt_completion>\n<result>Read.</result>\n</attempt_completion>"));
    } else {
      Enqueue(OpenAiToolCall("call_1", "read_file", ReadArgs("src.txt"), said));
      Enqueue(OpenAiToolCall("call_2", "attempt_completion", CompletionArgs("Read.")));
    }
    TestClient client;
    EXPECT_EQ(MustPrompt(*session, "Read src.txt", client), StopReason::kEndTurn);
    std::string thought;
    for (const SessionUpdate& update : client.updates()) {
      if (update.kind == SessionUpdate::Kind::kAgentThoughtChunk) thought += update.text;
    }
    EXPECT_EQ(thought, "The file is small; read it.");
    std::string shown = client.AgentText();
    EXPECT_NE(shown.find("Reading."), std::string::npos) << shown;
    EXPECT_EQ(shown.find("thinking"), std::string::npos) << shown;
    EXPECT_EQ(shown.find("The file is small"), std::string::npos) << shown;
    EXPECT_NE(MessagesText(Bodies().back()).find(said), std::string::npos)
        << "the model's message keeps its thinking";
  }
}

TEST_F(SessionTest, XmlSecondToolCallOfAMessageIsNotRun) {
  AgentSettings settings = Settings();
  settings.tool_protocol = ToolProtocol::kXml;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(
      XmlTurn("<read_file>\n<args>\n<file>\n<path>src.txt</path>\n</file>\n</args>\n"
              "</read_file>\nAnd then:\n<execute_command>\n<command>touch ran.txt</command>\n"
              "</execute_command>"));
  Enqueue(XmlTurn("<attempt_completion>\n<result>Read.</result>\n</attempt_completion>"));

  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Read src.txt", client), StopReason::kEndTurn);
  EXPECT_FALSE(std::filesystem::exists(workspace_ + "/ran.txt"));
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  std::string results = LastUserText(bodies[1]);
  EXPECT_TRUE(results.starts_with("[read_file] Result:")) << results;
  EXPECT_NE(results.find("[execute_command] Result:\nTool [execute_command] was not executed"),
            std::string::npos)
      << results;
}

// An XML call that cannot run says why, and its card shows what arrived: a parameter over the
// limit was reported missing (the model was told to send it again whole), and a call cut short
// showed an empty card.
TEST_F(SessionTest, XmlCallsThatCannotRunSayWhyAndShowWhatArrived) {
  AgentSettings settings = Settings();
  settings.tool_protocol = ToolProtocol::kXml;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine);
  std::string big(XmlToolParser::kMaxParamBytes + 10, 'A');
  Enqueue(XmlTurn("<write_to_file><path>big.txt</path><content>" + big +
                  "</content><line_count>1</line_count></write_to_file>"));
  Enqueue(XmlTurn("Doing <execute_command><command>echo hi"));
  Enqueue(XmlTurn("<attempt_completion>\n<result>Gave up.</result>\n</attempt_completion>"));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Write it", client), StopReason::kEndTurn);
  EXPECT_FALSE(std::filesystem::exists(workspace_ + "/big.txt"));
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 3u);
  std::string refused = LastUserText(bodies[1]);
  EXPECT_NE(refused.find("The <content> of this write_to_file call is over 512 KiB"),
            std::string::npos)
      << refused.substr(0, 500);
  EXPECT_EQ(refused.find("Missing value"), std::string::npos) << refused.substr(0, 500);
  std::vector<std::string> titles;
  for (const SessionUpdate& update : client.updates()) {
    if (update.kind == SessionUpdate::Kind::kToolCall) titles.push_back(update.tool.title);
  }
  ASSERT_EQ(titles.size(), 2u);
  EXPECT_NE(titles[0].find("big.txt"), std::string::npos) << titles[0];
  EXPECT_NE(titles[1].find("echo hi"), std::string::npos) << titles[1];
}

// A model getting the XML form wrong is reminded of the XML form (it was told of the native
// call's arguments object, which it has not got).
// A reasoning model's leading <think> block is thought: a tool call written in it is not run
// (it was, and the call the model then made was refused), and it is not sent back.
TEST_F(SessionTest, AnXmlCallInsideALeadingThinkBlockIsNotRun) {
  AgentSettings settings = Settings();
  settings.tool_protocol = ToolProtocol::kXml;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine);
  ScriptedTurn turn;
  turn.text =
      "<think>\nMaybe <execute_command><command>touch INSIDE</command></execute_command>, "
      "no.\n</think>\n<list_files>\n<path>.</path>\n</list_files>";
  turn.text_chunks = 7;
  Enqueue(OpenAiTurn(turn));
  Enqueue(XmlTurn("<attempt_completion>\n<result>Listed.</result>\n</attempt_completion>"));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "List the files", client), StopReason::kEndTurn);
  EXPECT_FALSE(std::filesystem::exists(workspace_ + "/INSIDE"));
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  const std::string sent = bodies[1]["messages"].dump();
  EXPECT_EQ(sent.find("touch INSIDE"), std::string::npos) << "the thought is not sent back";
  EXPECT_NE(sent.find("<list_files>"), std::string::npos) << sent;
  EXPECT_NE(LastUserText(bodies[1]).find("[list_files] Result:"), std::string::npos)
      << LastUserText(bodies[1]);
  std::string thought;
  for (const SessionUpdate& update : client.updates()) {
    if (update.kind == SessionUpdate::Kind::kAgentThoughtChunk) thought += update.text;
  }
  EXPECT_NE(thought.find("touch INSIDE"), std::string::npos) << thought;
}

TEST_F(SessionTest, XmlMistakesAreAnsweredWithTheXmlForm) {
  AgentSettings settings = Settings();
  settings.tool_protocol = ToolProtocol::kXml;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(XmlTurn("I would write the file now."));
  Enqueue(XmlTurn("<write_to_file><path>m.txt</path></write_to_file>"));
  Enqueue(XmlTurn("<attempt_completion>\n<result>Done.</result>\n</attempt_completion>"));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Write m.txt", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 3u);
  for (size_t i : {1u, 2u}) {
    std::string said = LastUserText(bodies[i]);
    EXPECT_NE(said.find("<tool_name>\n<parameter_name>value</parameter_name>\n</tool_name>"),
              std::string::npos)
        << said;
    EXPECT_EQ(said.find("arguments object"), std::string::npos) << said;
  }
  EXPECT_NE(LastUserText(bodies[1]).find("You did not use a tool"), std::string::npos);
  EXPECT_NE(LastUserText(bodies[2]).find("Missing value for required parameter"),
            std::string::npos);
  // The user's card says what the model was told.
  std::string shown;
  for (const SessionUpdate& update : client.updates()) {
    if (update.kind != SessionUpdate::Kind::kToolCallUpdate) continue;
    for (const ToolCallContent& content : update.tool.content) shown += content.text;
  }
  EXPECT_NE(shown.find("<parameter_name>value</parameter_name>"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("arguments object"), std::string::npos) << shown;
}

// ---- 3. Denial with feedback -------------------------------------------------------------------

// A large file's edit is shown (and stored) as its changed lines with a few around them, each
// context line cut short: not the whole file twice, and never without the change itself.
TEST_F(SessionTest, ALargeFilesDiffShowsTheChangeNotTheFile) {
  AgentSettings settings = Settings();
  settings.approvals.write = false;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine);
  std::string big =
      "// header\nconst data = [" + std::string(600'000, '1') + "];\n// footer\nend\n";
  std::ofstream(workspace_ + "/min.js") << big;
  Enqueue(OpenAiToolCall(
      "call_e", "search_and_replace",
      json{{"path", "min.js"}, {"search", "// footer"}, {"replace", "// FOOTER"}}.dump()));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  client.AnswerNext(PermissionOutcome::kAllowOnce);
  EXPECT_EQ(MustPrompt(*session, "Shout the footer", client), StopReason::kEndTurn);
  std::vector<PermissionRequest> asked = client.permissions();
  ASSERT_EQ(asked.size(), 1u);
  bool has_diff = false;
  for (const ToolCallContent& content : asked[0].tool.content) {
    if (content.kind != ToolCallContent::Kind::kDiff) continue;
    has_diff = true;
    std::string old_text = content.old_text.value_or("");
    EXPECT_LT(old_text.size() + content.new_text.size(), 8192u);
    EXPECT_NE(old_text.find("// footer\n"), std::string::npos) << old_text;
    EXPECT_NE(content.new_text.find("// FOOTER\n"), std::string::npos) << content.new_text;
    EXPECT_NE(content.new_text.find("// header\n"), std::string::npos);
    EXPECT_NE(content.new_text.find(" […]\n"), std::string::npos);  // The long line, cut.
  }
  EXPECT_TRUE(has_diff);
}

TEST_F(SessionTest, DeniedWriteSendsFeedbackAndLeavesFile) {
  AgentSettings settings = Settings();
  settings.approvals.write = false;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiToolCall(
      "call_w", "write_to_file",
      json{{"path", "src.txt"}, {"content", "  hello lapce\n"}, {"line_count", 1}}.dump()));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Stopped.")));

  TestClient client;
  client.AnswerNext(PermissionOutcome::kRejectOnce, "use tabs");
  EXPECT_EQ(MustPrompt(*session, "Indent src.txt", client), StopReason::kEndTurn);

  EXPECT_EQ(ReadFile(workspace_ + "/src.txt"), kOriginal);
  std::vector<PermissionRequest> asked = client.permissions();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].tool.id, "call_w");
  EXPECT_EQ(asked[0].tool.kind, ToolKind::kEdit);
  bool has_diff = false;
  for (const ToolCallContent& content : asked[0].tool.content) {
    if (content.kind != ToolCallContent::Kind::kDiff) continue;
    has_diff = true;
    EXPECT_EQ(content.new_text, "  hello lapce\n");
    EXPECT_EQ(content.old_text.value_or("<none>"), kOriginal);
  }
  EXPECT_TRUE(has_diff) << "the permission request shows the diff";
  std::vector<std::string> trace = client.Trace();
  EXPECT_NE(std::find(trace.begin(), trace.end(), "tool_call_update failed"), trace.end());

  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  std::optional<std::string> result = ToolResultOf(bodies[1], "call_w");
  ASSERT_TRUE(result.has_value());
  EXPECT_NE(result->find("denied"), std::string::npos) << *result;
  EXPECT_NE(result->find("<feedback>\nuse tabs\n</feedback>"), std::string::npos) << *result;
}

// MCP servers as the session sees them, in process (the stdio client has its own tests).
class FakeMcp : public McpServers {
 public:
  std::vector<McpServerInfo> Servers() const override {
    McpServerInfo server;
    server.name = "notes";
    server.command = "notes-server";
    server.tools = {{"search", "Search the notes.", R"({"type":"object"})", search_always_allowed},
                    {"forget", "Forget a note.", R"({"type":"object"})"}};
    return {server};
  }
  Result<McpOutcome> CallTool(std::string_view server, std::string_view tool,
                              std::string_view arguments_json, const std::atomic<bool>*) override {
    calls.push_back(std::string(server) + "/" + std::string(tool) + " " +
                    std::string(arguments_json));
    return answer;
  }
  Result<McpOutcome> ReadResource(std::string_view, std::string_view,
                                  const std::atomic<bool>*) override {
    return Error(ErrorCode::kNotFound, "no resources");
  }
  std::vector<std::string> Failures() const override { return failures; }
  std::vector<std::string> calls;
  std::vector<std::string> failures;
  McpOutcome answer{false, "3 notes mention lapce"};
  bool search_always_allowed = false;
};

// A tool's error says so in the text too: only some providers take a result's error flag.
TEST_F(SessionTest, AnMcpToolsErrorIsSaidInItsResult) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  auto mcp = std::make_shared<FakeMcp>();
  mcp->answer = McpOutcome{true, "no note named x"};
  std::shared_ptr<Session> session = NewSession(engine, {}, {}, mcp);
  Enqueue(OpenAiToolCall("call_1", "mcp--notes--forget", R"({"name":"x"})"));
  Enqueue(OpenAiToolCall("call_2", "attempt_completion", CompletionArgs("No such note.")));
  TestClient client;
  client.AnswerNext(PermissionOutcome::kAllowOnce);
  EXPECT_EQ(MustPrompt(*session, "forget x", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_EQ(ToolResultOf(bodies[1], "call_1").value_or(""), "Error:\nno note named x");
}

// A server that did not start is said to the user once (only a log line said it: an editor
// showed nothing), and to a model calling its tools, with the servers there are.
TEST_F(SessionTest, AnMcpServerThatDidNotStartIsSaid) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  auto mcp = std::make_shared<FakeMcp>();
  mcp->failures = {"MCP server 'bad': start '/nowhere/mcp': program not found"};
  std::shared_ptr<Session> session = NewSession(engine, {}, {}, mcp);
  Enqueue(OpenAiToolCall("call_1", "mcp--bad--echo", R"({"text":"x"})"));
  Enqueue(OpenAiToolCall("call_2", "attempt_completion", CompletionArgs("No echo.")));
  Enqueue(OpenAiToolCall("call_3", "attempt_completion", CompletionArgs("Again.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "echo x", client), StopReason::kEndTurn);
  EXPECT_EQ(MustPrompt(*session, "and again", client), StopReason::kEndTurn);
  std::string shown = client.AgentText();
  const std::string notice =
      "(MCP server 'bad': start '/nowhere/mcp': program not found.)\n"
      "(Their tools are not available in this session.)";
  EXPECT_TRUE(shown.starts_with(notice)) << shown;
  EXPECT_EQ(shown.find(notice, 1), std::string::npos) << "once: " << shown;
  std::optional<std::string> refused = ToolResultOf(Bodies()[1], "call_1");
  ASSERT_TRUE(refused.has_value());
  EXPECT_NE(refused->find("Unknown tool 'mcp--bad--echo'. No connected MCP server has it. "
                          "Connected servers: notes. MCP server 'bad': start '/nowhere/mcp': "
                          "program not found."),
            std::string::npos)
      << *refused;
  EXPECT_TRUE(mcp->calls.empty());
}

// "Always allow" on an MCP tool allows that tool, not every tool of every server.
TEST_F(SessionTest, AlwaysAllowingAnMcpToolAllowsOnlyThatTool) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  auto mcp = std::make_shared<FakeMcp>();
  std::shared_ptr<Session> session = NewSession(engine, {}, {}, mcp);
  Enqueue(OpenAiToolCall("call_1", "mcp--notes--search", R"({"q":"a"})"));
  Enqueue(OpenAiToolCall("call_2", "mcp--notes--search", R"({"q":"b"})"));
  Enqueue(OpenAiToolCall("call_3", "mcp--notes--forget", R"({"id":1})"));
  Enqueue(OpenAiToolCall("call_4", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  client.AnswerNext(PermissionOutcome::kAllowAlways);
  client.AnswerNext(PermissionOutcome::kRejectOnce);
  EXPECT_EQ(MustPrompt(*session, "search, then forget", client), StopReason::kEndTurn);
  std::vector<PermissionRequest> asked = client.permissions();
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_EQ(asked[0].tool.id, "call_1");
  EXPECT_EQ(asked[1].tool.id, "call_3");
  EXPECT_EQ(mcp->calls.size(), 2u);
}

// A tool the user's mcp.json always allows (alwaysAllow) runs unasked; the others still ask.
TEST_F(SessionTest, AToolTheConfigurationAlwaysAllowsRunsUnasked) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  auto mcp = std::make_shared<FakeMcp>();
  mcp->search_always_allowed = true;
  std::shared_ptr<Session> session = NewSession(engine, {}, {}, mcp);
  Enqueue(OpenAiToolCall("call_1", "mcp--notes--search", R"({"q":"a"})"));
  Enqueue(OpenAiToolCall("call_2", "mcp--notes--forget", R"({"id":1})"));
  Enqueue(OpenAiToolCall("call_3", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  client.AnswerNext(PermissionOutcome::kRejectOnce);
  EXPECT_EQ(MustPrompt(*session, "search, then forget", client), StopReason::kEndTurn);
  std::vector<PermissionRequest> asked = client.permissions();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].tool.id, "call_2");
  EXPECT_EQ(mcp->calls, std::vector<std::string>{R"(notes/search {"q":"a"})"});
}

// "Always reject" on an MCP tool holds for that tool (it was asked again, and could be run).
TEST_F(SessionTest, AlwaysRejectingAnMcpToolRefusesItUnasked) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  auto mcp = std::make_shared<FakeMcp>();
  std::shared_ptr<Session> session = NewSession(engine, {}, {}, mcp);
  Enqueue(OpenAiToolCall("call_1", "mcp--notes--forget", R"({"name":"a"})"));
  Enqueue(OpenAiToolCall("call_2", "mcp--notes--forget", R"({"name":"b"})"));
  Enqueue(OpenAiToolCall("call_3", "mcp--notes--search", R"({"q":"c"})"));
  Enqueue(OpenAiToolCall("call_4", "attempt_completion", CompletionArgs("Kept them.")));
  TestClient client;
  client.AnswerNext(PermissionOutcome::kRejectAlways);
  client.AnswerNext(PermissionOutcome::kAllowOnce);
  EXPECT_EQ(MustPrompt(*session, "forget a and b", client), StopReason::kEndTurn);
  std::vector<PermissionRequest> asked = client.permissions();
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_EQ(asked[1].tool.title, "notes: search");
  EXPECT_EQ(mcp->calls, std::vector<std::string>{R"(notes/search {"q":"c"})"});
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 4u);
  EXPECT_NE(ToolResultOf(bodies[2], "call_2").value_or("").find("denied"), std::string::npos)
      << ToolResultOf(bodies[2], "call_2").value_or("");
}

// Native calls: each MCP tool is a function of its own (no use_mcp_tool, and no
// access_mcp_resource: no server has resources) with the server in the prompt; use_mcp_tool
// naming a wrong server is a mistake that names the right one; a call asks the user, and its
// answer reaches the model.
TEST_F(SessionTest, ModelUsesAnMcpTool) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  auto mcp = std::make_shared<FakeMcp>();
  std::shared_ptr<Session> session = NewSession(engine, {}, {}, mcp);
  Enqueue(OpenAiToolCall("call_1", "use_mcp_tool",
                         R"({"server_name":"wiki","tool_name":"search","arguments":{}})"));
  Enqueue(OpenAiToolCall("call_2", "mcp--notes--search", R"({"q":"lapce"})"));
  Enqueue(OpenAiToolCall("call_3", "attempt_completion", CompletionArgs("Found them.")));

  TestClient client;
  client.AnswerNext(PermissionOutcome::kAllowOnce);
  EXPECT_EQ(MustPrompt(*session, "search my notes", client), StopReason::kEndTurn);
  EXPECT_EQ(mcp->calls, std::vector<std::string>{R"(notes/search {"q":"lapce"})"});
  std::vector<PermissionRequest> asked = client.permissions();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].tool.title, "notes: search");

  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 3u);
  std::vector<std::string> tools = ToolNames(bodies[0]);
  EXPECT_TRUE(Contains(tools, "mcp--notes--search"));
  EXPECT_FALSE(Contains(tools, "use_mcp_tool"));
  EXPECT_FALSE(Contains(tools, "access_mcp_resource"));
  EXPECT_NE(bodies[0].dump().find("## notes (`notes-server`)"), std::string::npos);
  EXPECT_NE(bodies[0].dump().find("- mcp--notes--search: Search the notes."), std::string::npos);
  std::optional<std::string> wrong = ToolResultOf(bodies[1], "call_1");
  ASSERT_TRUE(wrong.has_value());
  EXPECT_NE(wrong->find("No MCP server named 'wiki'. Connected servers: notes."), std::string::npos)
      << *wrong;
  std::optional<std::string> found = ToolResultOf(bodies[2], "call_2");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, "3 notes mention lapce");
}

TEST_F(SessionTest, AllowAlwaysCoversLaterCommandsAndCancelledAnswerStopsTurn) {
  AgentSettings settings = Settings();
  settings.approvals.execute = false;
  settings.approvals.write = false;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiToolCall("call_1", "execute_command",
                         json{{"command", "sh test.sh"}, {"cwd", nullptr}}.dump()));
  Enqueue(OpenAiToolCall("call_2", "execute_command",
                         json{{"command", "sh test.sh --again"}, {"cwd", nullptr}}.dump()));
  Enqueue(OpenAiToolCall(
      "call_w", "write_to_file",
      json{{"path", "src.txt"}, {"content", "changed\n"}, {"line_count", 1}}.dump()));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Stopped.")));

  TestClient client;
  client.AnswerNext(PermissionOutcome::kAllowAlways);
  client.AnswerNext(PermissionOutcome::kCancelled);
  EXPECT_EQ(MustPrompt(*session, "Run the tests, then change src.txt", client),
            StopReason::kCancelled);
  std::vector<PermissionRequest> asked = client.permissions();
  ASSERT_EQ(asked.size(), 2u) << "the second command was allowed by the first answer";
  EXPECT_EQ(asked[0].tool.id, "call_1");
  EXPECT_EQ(asked[1].tool.id, "call_w");
  EXPECT_EQ(ReadFile(workspace_ + "/src.txt"), kOriginal);
  EXPECT_EQ(server_->requests().size(), 3u);
  Result<std::optional<SessionRecord>> record = store_->FindSession(session->id());
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->status, SessionStatus::kCancelled);

  // The next prompt continues; the cancelled call has its result.
  EXPECT_EQ(MustPrompt(*session, "Never mind", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 4u);
  // Cancelled, not denied: the user did not say no to the edit.
  EXPECT_EQ(ToolResultOf(bodies[3], "call_w").value_or(""),
            "The user cancelled the turn while this operation awaited approval; it was not run.")
      << bodies[3]["messages"].dump();
  EXPECT_NE(ToolResultOf(bodies[2], "call_2").value_or("").find("Exit code"), std::string::npos)
      << ToolResultOf(bodies[2], "call_2").value_or("");
}

// "Always allow" is not offered for a command that would be asked again anyway: one holding a
// substitution, or a bare shell, which "always" cannot cover.
TEST_F(SessionTest, AlwaysIsOfferedOnlyWhereItWouldHold) {
  AgentSettings settings = Settings();
  settings.approvals.execute = false;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(CommandCall("call_1", "echo $(date)"));
  Enqueue(CommandCall("call_2", "sh"));
  Enqueue(CommandCall("call_3", "ls"));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  client.AnswerNext(PermissionOutcome::kAllowOnce);
  client.AnswerNext(PermissionOutcome::kAllowOnce);
  client.AnswerNext(PermissionOutcome::kAllowOnce);
  EXPECT_EQ(MustPrompt(*session, "Run them", client), StopReason::kEndTurn);
  std::vector<PermissionRequest> asked = client.permissions();
  ASSERT_EQ(asked.size(), 3u);
  EXPECT_FALSE(asked[0].can_always);
  EXPECT_FALSE(asked[1].can_always);
  EXPECT_TRUE(asked[2].can_always);
  EXPECT_EQ(asked[2].tool.title.find("(reaches"), std::string::npos) << asked[2].tool.title;
}

// An allowed command asked because it reaches outside the workspace, or writes a protected
// file, says why in its title (where editors show the question), as a file tool's does.
TEST_F(SessionTest, ACommandAskedForWhereItReachesSaysSoInItsTitle) {
  AgentSettings settings = Settings();
  settings.approvals.execute = true;
  settings.approvals.allowed_commands = {"cat", "echo"};
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(CommandCall("call_1", "cat /etc/passwd"));
  Enqueue(CommandCall("call_2", "echo x > .kilocodemodes"));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  client.AnswerNext(PermissionOutcome::kRejectOnce);
  client.AnswerNext(PermissionOutcome::kRejectOnce);
  EXPECT_EQ(MustPrompt(*session, "Run them", client), StopReason::kEndTurn);
  std::vector<PermissionRequest> asked = client.permissions();
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_NE(asked[0].tool.title.find("(reaches outside the workspace)"), std::string::npos)
      << asked[0].tool.title;
  EXPECT_FALSE(asked[0].can_always);
  EXPECT_NE(asked[1].tool.title.find("(writes a protected file"), std::string::npos)
      << asked[1].tool.title;
}

// "Always" answers are kept with the session: after a reload (the editor's next process), an
// always-allowed command runs unasked and an always-rejected write is refused unasked.
TEST_F(SessionTest, AlwaysAnswersHoldAfterAReload) {
  AgentSettings settings = Settings();
  settings.approvals.execute = false;
  settings.approvals.write = false;
  llm::ProviderPool& pool = MakePool({"p"});
  Engine& first = MakeEngine(pool, settings);
  std::shared_ptr<Session> session = NewSession(first);
  Enqueue(CommandCall("call_1", "sh test.sh"));
  Enqueue(WriteCall("call_w", "src.txt", "changed"));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  client.AnswerNext(PermissionOutcome::kAllowAlways);
  client.AnswerNext(PermissionOutcome::kRejectAlways);
  EXPECT_EQ(MustPrompt(*session, "Test, then edit", client), StopReason::kEndTurn);
  ASSERT_EQ(client.permissions().size(), 2u);

  std::string id = session->id();
  first.Close(id);
  session.reset();
  Result<std::shared_ptr<Session>> loaded = MakeEngine(pool, settings).LoadSession(id);
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  Enqueue(CommandCall("call_2", "sh test.sh --again"));
  Enqueue(WriteCall("call_w2", "src.txt", "again"));
  Enqueue(OpenAiToolCall("call_done2", "attempt_completion", CompletionArgs("Done again.")));
  TestClient later;  // Asks fail the test: none is expected.
  EXPECT_EQ(MustPrompt(**loaded, "Once more", later), StopReason::kEndTurn);
  EXPECT_TRUE(later.permissions().empty());
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 6u);
  EXPECT_NE(ToolResultOf(bodies[4], "call_2").value_or("").find("Exit code"), std::string::npos);
  EXPECT_NE(ToolResultOf(bodies[5], "call_w2").value_or("").find("denied"), std::string::npos)
      << ToolResultOf(bodies[5], "call_w2").value_or("");
  EXPECT_EQ(ReadFile(workspace_ + "/src.txt"), kOriginal);
}

// "Always reject" holds whatever the auto-approval settings: a rejected command is refused
// unasked (only that one), and a rejected write refuses every write, protected ones and ones
// outside the workspace included.
TEST_F(SessionTest, AlwaysRejectRefusesThatCommandAndEveryWrite) {
  AgentSettings settings = Settings();
  settings.approvals.execute = false;
  settings.approvals.write = false;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(CommandCall("c1", "echo bad"));
  Enqueue(WriteCall("w1", "a.txt", "x"));
  Enqueue(CommandCall("c2", "echo bad"));
  Enqueue(CommandCall("c3", "echo good"));
  Enqueue(WriteCall("w2", ".kilocodemodes", "x"));
  Enqueue(WriteCall("w3", workspace_ + "-outside.txt", "x"));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  client.AnswerNext(PermissionOutcome::kRejectAlways);  // echo bad
  client.AnswerNext(PermissionOutcome::kRejectAlways);  // a.txt
  client.AnswerNext(PermissionOutcome::kAllowOnce);     // echo good
  EXPECT_EQ(MustPrompt(*session, "Try things", client), StopReason::kEndTurn);
  std::vector<PermissionRequest> asked = client.permissions();
  ASSERT_EQ(asked.size(), 3u);
  EXPECT_EQ(asked[2].tool.id, "c3");
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 7u);
  EXPECT_NE(ToolResultOf(bodies[3], "c2").value_or("").find("rejected this command"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(workspace_ + "/.kilocodemodes"));
  EXPECT_FALSE(std::filesystem::exists(workspace_ + "-outside.txt"));
}

// The session's own "always" answers (mode switches, subtasks, an MCP tool) are kept too.
TEST_F(SessionTest, AlwaysAllowedModeSwitchesHoldAfterAReload) {
  llm::ProviderPool& pool = MakePool({"p"});
  Engine& first = MakeEngine(pool);
  std::shared_ptr<Session> session = NewSession(first);
  auto to = [](const char* id, const char* mode) {
    return OpenAiToolCall(id, "switch_mode", json{{"mode_slug", mode}, {"reason", "r"}}.dump());
  };
  Enqueue(to("m1", "debug"));
  Enqueue(OpenAiToolCall("d1", "attempt_completion", CompletionArgs("Switched.")));
  TestClient client;
  client.AnswerNext(PermissionOutcome::kAllowAlways);
  EXPECT_EQ(MustPrompt(*session, "Debug it", client), StopReason::kEndTurn);
  std::shared_ptr<Session> loaded = Reopen(first, session, pool);
  ASSERT_NE(loaded, nullptr);
  Enqueue(to("m2", "code"));
  Enqueue(OpenAiToolCall("d2", "attempt_completion", CompletionArgs("Back.")));
  TestClient later;  // An ask fails the test.
  EXPECT_EQ(MustPrompt(*loaded, "Now fix it", later), StopReason::kEndTurn);
  EXPECT_TRUE(later.permissions().empty());
  EXPECT_EQ(loaded->Info().mode, "code");
}

TEST_F(SessionTest, CancelWhilePermissionIsPending) {
  AgentSettings settings = Settings();
  settings.approvals.write = false;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiToolCall(
      "call_w", "write_to_file",
      json{{"path", "src.txt"}, {"content", "changed\n"}, {"line_count", 1}}.dump()));

  TestClient client;
  client.AnswerWhenCancelled();
  Result<StopReason> stop = Error(ErrorCode::kInternal, "not run");
  std::thread turn([&] { stop = session->Prompt("Change src.txt", client); });
  bool asked = client.WaitForPermissions(1, 5s);
  EXPECT_TRUE(asked);
  EXPECT_TRUE(session->is_running());
  TestClient other;
  Result<StopReason> second = session->Prompt("Another", other);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kUnavailable);
  Clock::time_point cancelled = Clock::now();
  session->Cancel();
  turn.join();
  EXPECT_LT(Clock::now() - cancelled, 1s);
  ASSERT_TRUE(stop.ok()) << stop.error().ToString();
  EXPECT_EQ(*stop, StopReason::kCancelled);
  EXPECT_EQ(ReadFile(workspace_ + "/src.txt"), kOriginal);
  EXPECT_EQ(server_->requests().size(), 1u);
}

// A prompt sent right after a cancel, without waiting for the cancelled turn's answer (the user
// typed on while the agent worked), waits for that turn to end and runs: it was refused as
// "already running a turn".
TEST_F(SessionTest, APromptRightAfterACancelWaitsForTheTurnToEnd) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(
      OpenAiToolCall("call_s", "execute_command",
                     json{{"command", "touch started.txt; sleep 20"}, {"cwd", nullptr}}.dump()));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  Result<StopReason> stop = Error(ErrorCode::kInternal, "not run");
  std::thread turn([&] { stop = session->Prompt("Wait a while", client); });
  for (int i = 0; i < 500 && !std::filesystem::exists(workspace_ + "/started.txt"); ++i) {
    std::this_thread::sleep_for(10ms);  // Bounded: 5 s for the command to start.
  }
  session->Cancel();
  TestClient next_client;
  Result<StopReason> next = session->Prompt("Something else", next_client);
  turn.join();
  ASSERT_TRUE(stop.ok()) << stop.error().ToString();
  EXPECT_EQ(*stop, StopReason::kCancelled);
  ASSERT_TRUE(next.ok()) << next.error().ToString();
  EXPECT_EQ(*next, StopReason::kEndTurn);
}

// The editor follows the agent through every file a call works on: each file of a read_file
// (with its first range's line), insert_content's line, apply_diff's :start_line:.
TEST_F(SessionTest, ToolCallsLocateEveryFileAndLine) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiToolCall(
      "call_r", "read_file",
      json{{"files", {{{"path", "src.txt"}, {"line_ranges", {"2-3"}}}, {{"path", "b.txt"}}}}}
          .dump()));
  Enqueue(OpenAiToolCall("call_i", "insert_content",
                         json{{"path", "src.txt"}, {"line", 1}, {"content", "first\n"}}.dump()));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Read and insert", client), StopReason::kEndTurn);
  int seen = 0;
  for (const SessionUpdate& update : client.updates()) {
    if (update.kind != SessionUpdate::Kind::kToolCall) continue;
    const std::vector<ToolLocation>& at = update.tool.locations;
    if (update.tool.id == "call_r") {
      ++seen;
      EXPECT_EQ(update.tool.title, "Read src.txt, b.txt");
      ASSERT_EQ(at.size(), 2u);
      EXPECT_EQ(at[0].path, workspace_ + "/src.txt");
      EXPECT_EQ(at[0].line, 2);
      EXPECT_EQ(at[1].path, workspace_ + "/b.txt");
      EXPECT_EQ(at[1].line, 0);
    }
    if (update.tool.id == "call_i") {
      ++seen;
      ASSERT_EQ(at.size(), 1u);
      EXPECT_EQ(at[0].line, 1);
    }
  }
  EXPECT_EQ(seen, 2);
}

TEST_F(SessionTest, OnlyTheFirstToolCallOfAMessageRuns) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  ScriptedTurn both;
  both.calls.push_back({"call_a", "read_file", ReadArgs("src.txt")});
  both.calls.push_back(
      {"call_b", "execute_command", json{{"command", "touch ran.txt"}, {"cwd", nullptr}}.dump()});
  Enqueue(OpenAiTurn(both));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Read.")));

  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Read src.txt", client), StopReason::kEndTurn);
  EXPECT_FALSE(std::filesystem::exists(workspace_ + "/ran.txt"));
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_NE(ToolResultOf(bodies[1], "call_a").value_or("").find("hello world"), std::string::npos);
  std::optional<std::string> skipped = ToolResultOf(bodies[1], "call_b");
  ASSERT_TRUE(skipped.has_value()) << "every call of the message gets a result";
  EXPECT_NE(skipped->find("was not executed"), std::string::npos) << *skipped;
  // The second call is shown too, as not run (the editor never showed the model's call).
  std::vector<std::string> trace = client.Trace();
  auto second = std::find(trace.begin(), trace.end(), "tool_call execute pending");
  ASSERT_NE(second, trace.end()) << ::testing::PrintToString(trace);
  ASSERT_NE(second + 1, trace.end());
  EXPECT_EQ(second[1], "tool_call_update failed") << ::testing::PrintToString(trace);
  EXPECT_EQ(std::count_if(trace.begin(), trace.end(),
                          [](const std::string& line) { return line.starts_with("tool_call "); }),
            2);
}

TEST_F(SessionTest, RequestLimitEndsTurnAndNextPromptContinues) {
  AgentSettings settings = Settings();
  settings.max_requests_per_turn = 2;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiToolCall("call_1", "read_file", ReadArgs("src.txt")));
  Enqueue(OpenAiToolCall("call_2", "read_file", ReadArgs("test.sh")));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Read both.")));

  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Read both files", client), StopReason::kMaxTurnRequests);
  EXPECT_EQ(server_->requests().size(), 2u);
  EXPECT_NE(client.AgentText().find("Stopped: this turn made 2 model requests, its limit "
                                    "(agent.max_requests_per_turn)"),
            std::string::npos)
      << client.AgentText();
  EXPECT_EQ(MustPrompt(*session, "Go on", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 3u);
  EXPECT_NE(ToolResultOf(bodies[2], "call_2").value_or("").find("grep"), std::string::npos)
      << "the last result of the cut turn reaches the model";
  EXPECT_NE(LastUserText(bodies[2]).find("Go on"), std::string::npos);
  // One block of environment details per request that followed: the task's, call_1's result's
  // and "Go on"'s; the cut turn's last result brings none of its own (it used to, and the model
  // got two blocks in one message).
  std::string sent = bodies[2]["messages"].dump();
  size_t blocks = 0;
  for (size_t at = sent.find("<environment_details>"); at != std::string::npos;
       at = sent.find("<environment_details>", at + 1)) {
    ++blocks;
  }
  EXPECT_EQ(blocks, 3u) << sent;
}

// The user's limits count the whole task: a model that keeps delegating stops at the limit
// (each subtask counted afresh, so a limit of 3 requests let 42 through).
TEST_F(SessionTest, TheUsersLimitsCountTheSubtasksRequests) {
  AgentSettings settings = Settings();
  settings.approvals.max_requests = 3;
  settings.approvals.subtasks = true;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine, {}, "orchestrator");
  for (int i = 0; i < 6; ++i) Enqueue(NewTaskCall("go deeper"));
  TestClient client;
  client.AnswerNext(PermissionOutcome::kRejectOnce);  // The limit's question: stop.
  Result<StopReason> stop = session->Prompt("recurse", client);
  ASSERT_TRUE(stop.ok()) << stop.error().ToString();
  EXPECT_EQ(Bodies().size(), 3u);
  std::vector<PermissionRequest> asked = client.permissions();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_TRUE(asked[0].is_question);
  EXPECT_NE(asked[0].tool.title.find("limit of 3 model requests"), std::string::npos)
      << asked[0].tool.title;
}

// At approvals.max_requests the user is asked whether to go on (a question, with no "always");
// words typed instead of an answer mean go on, and reach the model; a no stops with a sentence
// saying why.
TEST_F(SessionTest, ApprovalRequestLimitAsksAndFeedbackGoesOn) {
  AgentSettings settings = Settings();
  settings.approvals.max_requests = 1;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiToolCall("call_1", "read_file", ReadArgs("src.txt")));
  Enqueue(OpenAiToolCall("call_2", "read_file", ReadArgs("test.sh")));
  TestClient client;
  client.AnswerNext(PermissionOutcome::kRejectOnce, "keep going, but be quick");
  client.AnswerNext(PermissionOutcome::kRejectOnce);
  EXPECT_EQ(MustPrompt(*session, "Read both files", client), StopReason::kMaxTurnRequests);
  std::vector<PermissionRequest> asked = client.permissions();
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_TRUE(asked[0].is_question);
  EXPECT_FALSE(asked[0].can_always);
  EXPECT_EQ(asked[0].tool.title,
            "Reached the limit of 1 model request without asking (approvals.max_requests). "
            "Continue the task and start counting again?");
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_NE(MessagesText(bodies[1]).find("<feedback>\nkeep going, but be quick\n</feedback>"),
            std::string::npos)
      << MessagesText(bodies[1]);
  EXPECT_NE(client.AgentText().find("Stopped: Reached the limit of 1 model request"),
            std::string::npos)
      << client.AgentText();
  // Each question's card ends with its answer: went on, then stopped.
  std::vector<ToolStatus> ends;
  for (const SessionUpdate& update : client.updates()) {
    if (update.kind == SessionUpdate::Kind::kToolCallUpdate &&
        update.tool.id.starts_with("limit_")) {
      ends.push_back(update.tool.status.value_or(ToolStatus::kPending));
    }
  }
  EXPECT_EQ(ends, (std::vector<ToolStatus>{ToolStatus::kCompleted, ToolStatus::kFailed}));
  // The user's next prompt starts counting again: its first request is not asked about (an
  // unexpected question fails the test).
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Read both.")));
  EXPECT_EQ(MustPrompt(*session, "Go on", client), StopReason::kEndTurn);
  EXPECT_EQ(client.permissions().size(), 2u);
}

// The engine's notice at a stop ("Stopped: this turn made 2 model requests…") is not a reply the
// model was writing: a reload does not hand it to the model as an interrupted reply of its own.
TEST_F(SessionTest, AStopNoticeIsNotTakenForAnInterruptedReplyAfterAReload) {
  AgentSettings settings = Settings();
  settings.max_requests_per_turn = 2;
  llm::ProviderPool& pool = MakePool({"p"});
  Engine& first = MakeEngine(pool, settings);
  std::shared_ptr<Session> session = NewSession(first);
  Enqueue(OpenAiToolCall("call_1", "read_file", ReadArgs("src.txt")));
  Enqueue(OpenAiToolCall("call_2", "read_file", ReadArgs("test.sh")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Read both files", client), StopReason::kMaxTurnRequests);
  // Stopped, not active: `sessions list` showed such a session as interrupted (killed mid-turn)
  // while `run --json` said active.
  EXPECT_EQ(session->Info().status, SessionStatus::kStopped);
  std::shared_ptr<Session> loaded = Reopen(first, session, pool);
  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ(loaded->Info().status, SessionStatus::kStopped);
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Read both.")));
  TestClient later;
  EXPECT_EQ(MustPrompt(*loaded, "Go on", later), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 3u);
  std::string sent = MessagesText(bodies[2]);
  EXPECT_EQ(sent.find("Response interrupted"), std::string::npos) << sent;
  EXPECT_EQ(sent.find("Stopped: this turn made"), std::string::npos) << sent;
  EXPECT_EQ(loaded->Info().status, SessionStatus::kCompleted);
}

// A server that numbers calls per reply ("call_0" each time): each call of the session gets an id
// of its own, in the editor's cards and in the history the model reads back.
TEST_F(SessionTest, ToolCallIdsAServerRepeatsAreMadeUnique) {
  WriteFile(workspace_ + "/a.txt", "a\n");
  WriteFile(workspace_ + "/b.txt", "b\n");
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiToolCall("call_0", "read_file", json{{"path", "a.txt"}}.dump()));
  Enqueue(OpenAiToolCall("call_0", "read_file", json{{"path", "b.txt"}}.dump()));
  Enqueue(OpenAiToolCall("call_0", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Read both", client), StopReason::kEndTurn);
  std::vector<std::string> ids;
  for (const SessionUpdate& update : client.updates()) {
    if (update.kind == SessionUpdate::Kind::kToolCall) ids.push_back(update.tool.id);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"call_0", "call_0_2"}));
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 3u);
  EXPECT_NE(ToolResultOf(bodies[2], "call_0").value_or("").find("a"), std::string::npos);
  EXPECT_NE(ToolResultOf(bodies[2], "call_0_2").value_or("").find("b.txt"), std::string::npos)
      << bodies[2].dump();
}

// The model asks to edit f.py and the user switches to ask mode at the moment `arrange` sets up;
// the edit must not be made. Returns what the model was told of it.
class ModeSwitchTest : public SessionTest {
 protected:
  std::string EditAfterSwitchToAsk(bool auto_approve_writes,
                                   const std::function<void(Session&, TestClient&)>& arrange) {
    WriteFile(workspace_ + "/f.py", "a = 1\n");
    AgentSettings settings = Settings();
    settings.approvals.write = auto_approve_writes;
    Engine& engine = MakeEngine(MakePool({"p"}), settings);
    std::shared_ptr<Session> session = NewSession(engine);
    Enqueue(WriteCall("w1", "f.py", "a = 3"));
    Enqueue(OpenAiToolCall("done", "attempt_completion", CompletionArgs("Done.")));
    TestClient client;
    arrange(*session, client);
    EXPECT_EQ(MustPrompt(*session, "Change it", client), StopReason::kEndTurn);
    EXPECT_EQ(ReadFile(workspace_ + "/f.py"), "a = 1\n");
    std::vector<json> bodies = Bodies();
    EXPECT_EQ(bodies.size(), 2u);
    return bodies.size() < 2 ? "" : ToolResultOf(bodies[1], "w1").value_or("");
  }
};

// The switch comes while the edit awaits approval, and then the user allows it: the switch wins,
// and the model is told why, not that the user denied it.
TEST_F(ModeSwitchTest, ASwitchToAModeWithoutTheToolWhileItAwaitsApprovalStopsIt) {
  const std::string result = EditAfterSwitchToAsk(false, [](Session& session, TestClient& client) {
    client.AnswerNextAfter([&] { ASSERT_TRUE(session.SetMode("ask", &client).ok()); },
                           PermissionOutcome::kAllowOnce);
  });
  EXPECT_NE(result.find("switched to mode 'ask'"), std::string::npos) << result;
  EXPECT_EQ(result.find("The user denied"), std::string::npos) << result;
}

// A call the user would not be asked about (auto-approved) is not run either when the switch
// comes during the model's reply, as an editor's set_mode would; the refusal is not the model's
// mistake.
TEST_F(ModeSwitchTest, ASwitchDuringTheReplyStopsAnAutoApprovedCall) {
  const std::string result = EditAfterSwitchToAsk(true, [](Session& session, TestClient& client) {
    client.DoOn(SessionUpdate::Kind::kUserMessageChunk,
                [&] { ASSERT_TRUE(session.SetMode("ask", &client).ok()); });
  });
  EXPECT_NE(result.find("not allowed in mode 'ask'"), std::string::npos) << result;
}

// Mistakes are counted within a turn: two refused calls and a failed request, then one more
// refusal in the next turn, do not make three in a row.
TEST_F(SessionTest, TheMistakeCountStartsAgainWithTheUsersMessage) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine, {}, "ask");
  Enqueue(WriteCall("w1", "a.txt", "a"));
  Enqueue(WriteCall("w2", "a.txt", "a"));
  Enqueue(testing::MakeResponse(400, R"({"error":{"message":"bad request"}})"));
  TestClient client;
  (void)session->Prompt("Write it", client);
  Enqueue(WriteCall("w3", "a.txt", "a"));
  Enqueue(OpenAiToolCall("done", "attempt_completion", CompletionArgs("Explained.")));
  EXPECT_EQ(MustPrompt(*session, "Just explain", client), StopReason::kEndTurn);
  EXPECT_EQ(client.AgentText().find("mistakes in a row"), std::string::npos) << client.AgentText();
}

// ---- 4. Mistake limit --------------------------------------------------------------------------

TEST_F(SessionTest, MistakeLimitEndsTurnAndFeedbackReachesModel) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  for (int i = 0; i < 3; ++i)
    Enqueue(testing::OpenAiText("I think it is fine " + std::to_string(i)));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done now.")));

  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Fix it", client), StopReason::kEndTurn);
  ASSERT_EQ(server_->requests().size(), 3u);
  EXPECT_NE(client.AgentText().find("3 mistakes in a row"), std::string::npos)
      << client.AgentText();
  std::vector<json> bodies = Bodies();
  EXPECT_NE(LastUserText(bodies[1]).find("You did not use a tool"), std::string::npos);
  EXPECT_NE(LastUserText(bodies[2]).find("You did not use a tool"), std::string::npos);

  EXPECT_EQ(MustPrompt(*session, "Just finish", client), StopReason::kEndTurn);
  bodies = Bodies();
  ASSERT_EQ(bodies.size(), 4u);
  std::string last = LastUserText(bodies[3]);
  EXPECT_NE(last.find("<feedback>\nJust finish\n</feedback>"), std::string::npos) << last;
  EXPECT_NE(last.find("trouble proceeding"), std::string::npos) << last;
  // Roles alternate: the model's three plain answers are all there.
  EXPECT_NE(MessagesText(bodies[3]).find("I think it is fine 2"), std::string::npos);
}

// Broken JSON in a native call's arguments (a truncated object) is the model's mistake: the turn
// goes on, the tool result quotes what it sent, and the history keeps {} in its place, which
// every provider's request format accepts.
TEST_F(SessionTest, BrokenToolArgumentsAreAMistakeTheModelIsToldOf) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiToolCall("call_1", "read_file", R"({"path": "notes.txt")"));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));

  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Read it", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  std::optional<std::string> result = ToolResultOf(bodies[1], "call_1");
  ASSERT_TRUE(result.has_value()) << bodies[1].dump();
  EXPECT_NE(result->find(R"(are not a JSON object (you sent: {"path": "notes.txt"))"),
            std::string::npos)
      << *result;
  for (const SessionUpdate& update : client.updates()) {  // Its card is titled by its name.
    if (update.kind == SessionUpdate::Kind::kToolCall) {
      EXPECT_EQ(update.tool.title, "read_file");
    }
  }
  bool found_call = false;
  for (const json& message : bodies[1]["messages"]) {
    for (const json& call : message.value("tool_calls", json::array())) {
      if (call.value("id", "") != "call_1") continue;
      found_call = true;
      EXPECT_EQ(call["function"]["arguments"], "{}");
    }
  }
  EXPECT_TRUE(found_call) << bodies[1].dump();
}

// A call cut off by the output limit (finish_reason "length") is said to be that: the model was
// told its arguments were malformed, and sent the same too-long call again.
TEST_F(SessionTest, ACallCutOffByTheOutputLimitIsSaidToBeCutOff) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  ScriptedTurn cut;
  cut.calls.push_back({"call_1", "write_to_file", R"({"path":"big.txt","content":"aaaa\nbb)"});
  cut.finish_reason = "length";
  Enqueue(OpenAiTurn(cut));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Write it", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  std::string result = ToolResultOf(bodies[1], "call_1").value_or("");
  EXPECT_NE(result.find("Not run: your reply reached the output limit"), std::string::npos)
      << result;
  EXPECT_NE(result.find("while you wrote this write_to_file call, so it arrived incomplete. "
                        "Send less in one call"),
            std::string::npos)
      << result;
  EXPECT_FALSE(std::filesystem::exists(workspace_ + "/big.txt"));
}

// A reply cut off by the output limit with no call stops the task, said so: the session waits
// for "go on" (it was left active, listed as interrupted and resumed as after a crash).
TEST_F(SessionTest, AReplyCutOffByTheOutputLimitStopsTheTaskSayingSo) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  ScriptedTurn cut;
  cut.text = "I was explaining something and got cut";
  cut.finish_reason = "length";
  Enqueue(OpenAiTurn(cut));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Explain", client), StopReason::kMaxTokens);
  EXPECT_EQ(session->Info().status, SessionStatus::kStopped);
  EXPECT_NE(client.AgentText().find("got cut\n\n(The reply was cut off: it reached the model's "
                                    "output limit"),
            std::string::npos)
      << client.AgentText();
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Explained.")));
  EXPECT_EQ(MustPrompt(*session, "go on", client), StopReason::kEndTurn);
  EXPECT_EQ(session->Info().status, SessionStatus::kCompleted);
}

// Calls refused before they run (malformed ones) break a run of identical calls: a read made
// between them is not "the same call several times in a row".
TEST_F(SessionTest, ARefusedCallBreaksARunOfIdenticalCalls) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  WriteFile(workspace_ + "/notes.txt", "the notes\n");
  for (int i = 1; i <= 4; ++i) {
    Enqueue(OpenAiToolCall("read_" + std::to_string(i), "read_file", ReadArgs("notes.txt")));
    if (i < 4) Enqueue(OpenAiToolCall("bad_" + std::to_string(i), "read_file", "{\"path\":"));
  }
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Read the notes", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 8u);
  EXPECT_NE(ToolResultOf(bodies[7], "read_4").value_or("").find("the notes"), std::string::npos)
      << ToolResultOf(bodies[7], "read_4").value_or("");
  EXPECT_EQ(client.AgentText().find("stuck in a loop"), std::string::npos) << client.AgentText();
}

// ---- 5. Cancellation mid-stream ----------------------------------------------------------------

TEST_F(SessionTest, CancelMidStreamKeepsPartialText) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiStalledText("First part of the answer. Second part never arrives.", 20s));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Resumed.")));

  TestClient client;
  client.CancelOn(SessionUpdate::Kind::kAgentMessageChunk, *session);
  EXPECT_EQ(MustPrompt(*session, "Explain", client), StopReason::kCancelled);
  Clock::time_point returned = Clock::now();
  ASSERT_TRUE(client.cancelled_at().has_value());
  EXPECT_LT(returned - *client.cancelled_at(), 1s);
  EXPECT_FALSE(session->is_running());
  std::string shown = client.AgentText();
  ASSERT_FALSE(shown.empty());
  EXPECT_EQ(shown.find("never arrives"), std::string::npos) << shown;
  Result<std::optional<SessionRecord>> record = store_->FindSession(session->id());
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->status, SessionStatus::kCancelled);

  EXPECT_EQ(MustPrompt(*session, "Go on", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_NE(MessagesText(bodies[1]).find(shown), std::string::npos)
      << "the partial reply '" << shown << "' stays in the history";
  EXPECT_NE(LastUserText(bodies[1]).find("Go on"), std::string::npos);
}

TEST_F(SessionTest, CancelStopsARunningCommand) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiToolCall("call_sleep", "execute_command",
                         json{{"command", "sleep 20; touch late.txt"}, {"cwd", nullptr}}.dump()));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Stopped.")));

  TestClient client;
  client.CancelOn(SessionUpdate::Kind::kToolCallUpdate, *session);  // The first is in_progress.
  EXPECT_EQ(MustPrompt(*session, "Run the slow thing", client), StopReason::kCancelled);
  ASSERT_TRUE(client.cancelled_at().has_value());
  EXPECT_LT(Clock::now() - *client.cancelled_at(), 1s);
  EXPECT_FALSE(std::filesystem::exists(workspace_ + "/late.txt"));
  std::vector<std::string> trace = client.Trace();
  ASSERT_FALSE(trace.empty());
  EXPECT_TRUE(trace.back().starts_with("tool_call_update")) << trace.back();

  EXPECT_EQ(MustPrompt(*session, "Finish", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_NE(ToolResultOf(bodies[1], "call_sleep").value_or("").find("cancelled"), std::string::npos)
      << ToolResultOf(bodies[1], "call_sleep").value_or("");
}

TEST_F(SessionTest, StreamDroppedMidReplyIsAnErrorAndKeepsTheText) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  ScriptedTurn cut;
  cut.text = "Here is the first half. And here the second.";
  cut.text_chunks = 2;
  FakeResponse response = OpenAiTurn(cut);
  response.fault.drop_after_bytes = response.body_chunks[0].size() + response.body_chunks[1].size();
  Enqueue(std::move(response));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));

  TestClient client;
  Result<StopReason> stop = session->Prompt("Explain @/src.txt", client);
  ASSERT_FALSE(stop.ok());
  EXPECT_EQ(stop.error().code(), ErrorCode::kUnavailable) << stop.error().ToString();
  EXPECT_FALSE(session->is_running());
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 1u) << "no retry once output was shown";
  EXPECT_NE(LastUserText(bodies[0]).find("hello world"), std::string::npos)
      << "the mention brought the file in: " << LastUserText(bodies[0]);
  // Listed as failed (not still active), until a next turn takes it up again.
  Result<std::optional<SessionRecord>> record = store_->FindSession(session->id());
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->status, SessionStatus::kFailed);

  EXPECT_EQ(MustPrompt(*session, "Try again", client), StopReason::kEndTurn);
  bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  // The shown half (the first of two chunks) stays in the history.
  EXPECT_TRUE(client.AgentText().starts_with("Here is the first half")) << client.AgentText();
  EXPECT_NE(MessagesText(bodies[1]).find("Here is the first half"), std::string::npos);
  EXPECT_EQ(MessagesText(bodies[1]).find("the second"), std::string::npos);
}

// ---- 6. Condensing and truncation on a small window --------------------------------------------

class CondenseTest : public SessionTest {
 protected:
  static constexpr int kFileLines = 100;

  void SetUp() override {
    SessionTest::SetUp();
    if (HasFatalFailure()) return;
    WriteFile(workspace_ + "/alpha.txt", BigFile("ALPHAWORD", kFileLines));
    WriteFile(workspace_ + "/bravo.txt", BigFile("BRAVOWORD", kFileLines));
    WriteFile(workspace_ + "/charlie.txt", BigFile("CHARLIEWORD", kFileLines));
  }

  static FakeResponse Call(std::string id, std::string name, std::string args) {
    ScriptedTurn turn;
    turn.calls.push_back({std::move(id), std::move(name), std::move(args)});
    turn.input_tokens = 0;  // No usage: estimates stay uncalibrated, so the probe predicts.
    turn.output_tokens = 0;
    return OpenAiTurn(turn);
  }

  // The context a request carries with the task alone (P) and what one read of a big file adds
  // (D), measured on a large window.
  void Probe(int64_t& base, int64_t& per_read) {
    Engine& engine = MakeEngine(MakePool({"probe"}), Settings(), nullptr);
    std::shared_ptr<Session> first = NewSession(engine, "probe");
    Enqueue(Call("c1", "attempt_completion", CompletionArgs("ok")), "probe");
    TestClient client;
    EXPECT_EQ(MustPrompt(*first, kTask, client), StopReason::kEndTurn);
    base = first->Info().context_tokens;
    std::shared_ptr<Session> second = NewSession(engine, "probe");
    Enqueue(Call("c1", "read_file", ReadArgs("alpha.txt")), "probe");
    Enqueue(Call("c2", "attempt_completion", CompletionArgs("ok")), "probe");
    EXPECT_EQ(MustPrompt(*second, kTask, client), StopReason::kEndTurn);
    per_read = second->Info().context_tokens - base;
  }

  // A window whose allowed context is between two and three reads.
  int64_t WindowFor(int64_t base, int64_t per_read) {
    int64_t wanted = base + per_read * 5 / 2;
    int64_t window = 1000;
    while (AllowedTokens({window, DefaultMaxOutputTokens(window, 1000)}) < wanted) window += 100;
    return window;
  }

  void EnqueueReads() {
    Enqueue(Call("r1", "read_file", ReadArgs("alpha.txt")), "p");
    Enqueue(Call("r2", "read_file", ReadArgs("bravo.txt")), "p");
    Enqueue(Call("r3", "read_file", ReadArgs("charlie.txt")), "p");
  }

  static constexpr std::string_view kTask = "Read the three files and compare them";
};

// The titles and texts of the context changes shown to `client`: "title\ntext" each, with their
// call finished.
std::string ContextChangeShown(const TestClient& client) {
  std::string shown;
  for (const SessionUpdate& update : client.updates()) {
    if (!update.tool.id.starts_with("context_")) continue;
    if (update.kind == SessionUpdate::Kind::kToolCall) shown += update.tool.title + "\n";
    if (update.kind == SessionUpdate::Kind::kToolCallUpdate) {
      EXPECT_EQ(update.tool.status, ToolStatus::kCompleted);
      for (const ToolCallContent& content : update.tool.content) shown += content.text + "\n";
    }
  }
  return shown;
}

TEST_F(CondenseTest, FullWindowIsCondensedWithTheModel) {
  int64_t base = 0, per_read = 0;
  Probe(base, per_read);
  ASSERT_GT(per_read, 1000) << "a big file read adds real context";
  size_t probe_requests = server_->requests().size();
  Engine& engine = MakeEngine(MakePool({"p"}, "gpt-4o", WindowFor(base, per_read)));
  std::shared_ptr<Session> session = NewSession(engine, "p");
  EnqueueReads();
  Enqueue(testing::OpenAiText("SUMMARYTEXT: the files alpha and bravo were read."), "p");
  Enqueue(Call("r4", "attempt_completion", CompletionArgs("Compared.")), "p");

  TestClient client;
  EXPECT_EQ(MustPrompt(*session, kTask, client), StopReason::kEndTurn);
  std::vector<json> all = Bodies();
  std::vector<json> bodies(all.begin() + static_cast<std::ptrdiff_t>(probe_requests), all.end());
  ASSERT_EQ(bodies.size(), 5u) << "3 reads, the summary, the completion";
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NE(SystemPromptOf(bodies[i]), DefaultCondensePrompt()) << i;
  }
  const json& summary = bodies[3];
  EXPECT_EQ(SystemPromptOf(summary), DefaultCondensePrompt());
  EXPECT_FALSE(summary.contains("tools"));
  EXPECT_NE(LastUserText(summary).find(kCondenseRequestText), std::string::npos);
  EXPECT_NE(MessagesText(summary).find("ALPHAWORD"), std::string::npos) << "alpha is summarised";

  std::string after = MessagesText(bodies[4]);
  EXPECT_NE(after.find("SUMMARYTEXT"), std::string::npos);
  EXPECT_EQ(after.find("ALPHAWORD"), std::string::npos) << "the condensed read is hidden";
  EXPECT_NE(after.find("CHARLIEWORD"), std::string::npos) << "the last messages are kept";
  EXPECT_NE(after.find("<task>\nRead the three files"), std::string::npos)
      << "the first message is kept";
  EXPECT_FALSE(ToolResultOf(bodies[4], "r1").has_value());
  EXPECT_TRUE(ToolResultOf(bodies[4], "r3").has_value());
  EXPECT_EQ(session->Info().totals.requests, 5);
  // The user is shown it, summary included, as a finished call of its own.
  EXPECT_NE(ContextChangeShown(client).find("Condensed "), std::string::npos);
  EXPECT_NE(ContextChangeShown(client).find(" tokens)\nSUMMARYTEXT: the files alpha"),
            std::string::npos)
      << ContextChangeShown(client);

  // The store has the same effective history: a reload sends the same conversation.
  Result<std::vector<HistoryMessage>> stored = store_->LoadMessages(session->id());
  ASSERT_TRUE(stored.ok());
  std::string reloaded;
  for (const llm::Message& message : EffectiveMessages(*stored)) {
    for (const llm::ContentPart& part : message.parts) reloaded += part.text;
  }
  EXPECT_NE(reloaded.find("SUMMARYTEXT"), std::string::npos);
  EXPECT_EQ(reloaded.find("ALPHAWORD"), std::string::npos);
}

TEST_F(CondenseTest, FailedCondenseFallsBackToTruncation) {
  int64_t base = 0, per_read = 0;
  Probe(base, per_read);
  size_t probe_requests = server_->requests().size();
  Engine& engine = MakeEngine(MakePool({"p"}, "gpt-4o", WindowFor(base, per_read)));
  std::shared_ptr<Session> session = NewSession(engine, "p");
  EnqueueReads();
  Enqueue(testing::MakeResponse(400, R"({"error":{"message":"summary refused","type":"x"}})"), "p");
  Enqueue(Call("r4", "attempt_completion", CompletionArgs("Compared.")), "p");

  TestClient client;
  EXPECT_EQ(MustPrompt(*session, kTask, client), StopReason::kEndTurn);
  std::vector<json> all = Bodies();
  std::vector<json> bodies(all.begin() + static_cast<std::ptrdiff_t>(probe_requests), all.end());
  ASSERT_EQ(bodies.size(), 5u);
  EXPECT_EQ(SystemPromptOf(bodies[3]), DefaultCondensePrompt());
  std::string after = MessagesText(bodies[4]);
  EXPECT_NE(after.find("[Sliding window truncation"), std::string::npos) << after.substr(0, 2000);
  EXPECT_EQ(after.find("ALPHAWORD"), std::string::npos);
  EXPECT_NE(after.find("CHARLIEWORD"), std::string::npos);
  EXPECT_EQ(MessagesText(bodies[2]).find("[Sliding window truncation"), std::string::npos);
  EXPECT_NE(ContextChangeShown(client).find(" older messages to fit the context window "
                                            "(condensing failed: "),
            std::string::npos)
      << ContextChangeShown(client);
  EXPECT_NE(ContextChangeShown(client).find("summary refused"), std::string::npos);
}

// A task larger than the model's whole window on its own: nothing can be condensed or dropped to
// make it fit, so the turn fails before any request (none is paid for), saying so.
TEST_F(SessionTest, AMessageLargerThanTheWindowIsRefusedWithoutARequest) {
  Engine& engine = MakeEngine(MakePool({"p"}, "gpt-4o", 8000));
  std::shared_ptr<Session> session = NewSession(engine, "p");
  std::string huge;
  for (int i = 0; i < 4000; ++i) huge += "word" + std::to_string(i) + " lorem ipsum dolor ";
  TestClient client;
  Result<StopReason> stop = session->Prompt(huge, client);
  ASSERT_FALSE(stop.ok());
  EXPECT_EQ(stop.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(stop.error().message().find("8000-token context window of gpt-4o"), std::string::npos)
      << stop.error().message();
  EXPECT_NE(stop.error().message().find("not sent, nor kept"), std::string::npos);
  EXPECT_TRUE(server_->requests().empty());
  // Nothing of it stays: the next, small prompt goes out alone.
  Enqueue(OpenAiToolCall("call_1", "attempt_completion", CompletionArgs("Hi.")), "p");
  EXPECT_EQ(MustPrompt(*session, "say hi", client), StopReason::kEndTurn);
  ASSERT_EQ(Bodies().size(), 1u);
  std::string sent = MessagesText(Bodies()[0]);
  EXPECT_NE(sent.find("say hi"), std::string::npos);
  EXPECT_EQ(sent.find("lorem ipsum"), std::string::npos) << "the refused message was kept";
}

// A session whose only prompt was refused is empty: the front end that made it for that prompt
// can discard it, and nothing is left in the store. One with a message stays.
TEST_F(SessionTest, AnEmptySessionCanBeDiscardedAndOnlyThen) {
  Engine& engine = MakeEngine(MakePool({"p"}, "gpt-4o", 8000));
  std::shared_ptr<Session> refused = NewSession(engine, "p");
  std::string huge;
  for (int i = 0; i < 4000; ++i) huge += "word" + std::to_string(i) + " lorem ipsum dolor ";
  TestClient client;
  ASSERT_FALSE(refused->Prompt(huge, client).ok());
  EXPECT_TRUE(refused->DiscardIfEmpty());
  Result<std::optional<SessionRecord>> gone = store_->FindSession(refused->id());
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value()) << "the empty session is still stored";

  std::shared_ptr<Session> used = NewSession(engine, "p");
  Enqueue(OpenAiToolCall("call_1", "attempt_completion", CompletionArgs("Hi.")), "p");
  EXPECT_EQ(MustPrompt(*used, "say hi", client), StopReason::kEndTurn);
  EXPECT_FALSE(used->DiscardIfEmpty());
  Result<std::optional<SessionRecord>> kept = store_->FindSession(used->id());
  ASSERT_TRUE(kept.ok());
  EXPECT_TRUE(kept->has_value());
}

// read_file returns what fits the room left in the model's window (60% of it), with a notice,
// not the 50 KB its line limit would give nor the whole 300 KB file.
TEST_F(SessionTest, AFileReadIsCutToTheRoomLeftInTheContext) {
  std::string big;
  for (int i = 0; big.size() < 300'000; ++i)
    big += "row " + std::to_string(i) + std::string(90, '.') + "\n";
  WriteFile(workspace_ + "/big.txt", big);
  Engine& engine = MakeEngine(MakePool({"p"}, "gpt-4o", 8000));
  std::shared_ptr<Session> session = NewSession(engine, "p");
  Enqueue(OpenAiToolCall("call_1", "read_file", ReadArgs("big.txt")));
  Enqueue(OpenAiToolCall("call_2", "attempt_completion", CompletionArgs("Read.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "read big.txt", client), StopReason::kEndTurn);
  ASSERT_EQ(Bodies().size(), 2u);
  std::optional<std::string> result = ToolResultOf(Bodies()[1], "call_1");
  ASSERT_TRUE(result.has_value());
  EXPECT_LT(result->size(), 20'000u);  // The line limit alone would give 50 KB.
  EXPECT_NE(result->find("to keep the conversation within the model's context"), std::string::npos)
      << *result;
}

TEST_F(CondenseTest, WithoutAutoCondenseTheWindowSlides) {
  int64_t base = 0, per_read = 0;
  Probe(base, per_read);
  size_t probe_requests = server_->requests().size();
  AgentSettings settings = Settings();
  settings.auto_condense = false;
  Engine& engine = MakeEngine(MakePool({"p"}, "gpt-4o", WindowFor(base, per_read)), settings);
  std::shared_ptr<Session> session = NewSession(engine, "p");
  EnqueueReads();
  Enqueue(Call("r4", "attempt_completion", CompletionArgs("Compared.")), "p");

  TestClient client;
  EXPECT_EQ(MustPrompt(*session, kTask, client), StopReason::kEndTurn);
  std::vector<json> all = Bodies();
  std::vector<json> bodies(all.begin() + static_cast<std::ptrdiff_t>(probe_requests), all.end());
  ASSERT_EQ(bodies.size(), 4u) << "no summary request";
  std::string after = MessagesText(bodies[3]);
  EXPECT_NE(after.find("[Sliding window truncation: 2 messages hidden"), std::string::npos);
  EXPECT_EQ(after.find("ALPHAWORD"), std::string::npos);
  EXPECT_NE(after.find("BRAVOWORD"), std::string::npos);
}

// ---- 7. Overflow recovery ----------------------------------------------------------------------

TEST_F(SessionTest, ContextTooLongIsRecoveredByTruncating) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  for (std::string name : {"a", "b", "c", "d"}) {
    WriteFile(workspace_ + "/" + name + ".txt", name + " content\n");
    Enqueue(OpenAiToolCall("call_" + name, "read_file", ReadArgs(name + ".txt")));
  }
  Enqueue(testing::OpenAiContextTooLong());
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Read them.")));

  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Read a, b, c and d", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 6u);
  EXPECT_EQ(MessagesText(bodies[4]).find("[Sliding window truncation"), std::string::npos);
  std::string retried = MessagesText(bodies[5]);
  EXPECT_NE(retried.find("[Sliding window truncation: 2 messages hidden"), std::string::npos)
      << retried.substr(0, 3000);
  EXPECT_FALSE(ToolResultOf(bodies[5], "call_a").has_value());
  EXPECT_TRUE(ToolResultOf(bodies[5], "call_d").has_value());
  EXPECT_NE(client.AgentText().find("Read them."), std::string::npos);
}

TEST_F(SessionTest, ContextTooLongGivesUpAfterThreeRetries) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  const std::vector<std::string> names = {"a", "b", "c", "d", "e", "f", "g", "h"};
  for (const std::string& name : names) {
    WriteFile(workspace_ + "/" + name + ".txt", name + " content\n");
    Enqueue(OpenAiToolCall("call_" + name, "read_file", ReadArgs(name + ".txt")));
  }
  for (int i = 0; i < 5; ++i) Enqueue(testing::OpenAiContextTooLong());

  TestClient client;
  Result<StopReason> stop = session->Prompt("Read them all", client);
  ASSERT_FALSE(stop.ok());
  EXPECT_NE(stop.error().message().find("context"), std::string::npos) << stop.error().ToString();
  EXPECT_EQ(server_->requests().size(), names.size() + 4) << "the first request and 3 retries";
  EXPECT_FALSE(session->is_running());
  // Every retry sends less than the one before (an earlier marker is not what gets dropped), and
  // the last marker counts everything hidden.
  std::vector<json> bodies = Bodies();
  for (size_t i = names.size() + 1; i < bodies.size(); ++i) {
    EXPECT_LT(bodies[i]["messages"].size(), bodies[i - 1]["messages"].size()) << "retry " << i;
  }
  std::string last = MessagesText(bodies.back());
  size_t hidden = 0;
  for (const std::string& name : names)
    hidden += ToolResultOf(bodies.back(), "call_" + name) ? 0 : 2;
  EXPECT_NE(last.find("[Sliding window truncation: " + std::to_string(hidden) + " messages hidden"),
            std::string::npos)
      << last.substr(0, 3000);
  EXPECT_EQ(last.find("[Sliding window truncation", last.find("[Sliding window truncation") + 1),
            std::string::npos)
      << "one marker stands for all";
}

// With nothing but the task in the history, truncating can drop nothing: the request that was
// too long is not sent again unchanged.
TEST_F(SessionTest, ContextTooLongIsNotRetriedWhenNothingCanBeDropped) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  for (int i = 0; i < 5; ++i) Enqueue(testing::OpenAiContextTooLong());
  TestClient client;
  Result<StopReason> stop = session->Prompt("Do it", client);
  ASSERT_FALSE(stop.ok());
  EXPECT_NE(stop.error().message().find("context"), std::string::npos) << stop.error().ToString();
  EXPECT_EQ(server_->requests().size(), 1u);
}

// A conversation that cannot be made to fit names what fills it: here a window the system prompt
// alone nearly fills (the advice was to shorten a message of a few hundred tokens).
TEST_F(SessionTest, AConversationThatCannotFitSaysWhatFillsIt) {
  Engine& engine = MakeEngine(MakePool({"p"}, "gpt-4o", 5000));
  std::shared_ptr<Session> session = NewSession(engine);
  TestClient client;
  Result<StopReason> stop = session->Prompt("Go", client);
  ASSERT_FALSE(stop.ok());
  EXPECT_NE(stop.error().message().find("the system prompt alone is about "), std::string::npos)
      << stop.error().message();
  EXPECT_NE(stop.error().message().find("use a model with a larger context window"),
            std::string::npos);
  EXPECT_NE(stop.error().message().find("shorten the rules"), std::string::npos);
  EXPECT_EQ(server_->requests().size(), 0u) << "refused before a request (the tools count too)";
}

// ---- 8. Subtask --------------------------------------------------------------------------------

TEST_F(SessionTest, NewTaskRunsChildAndReturnsItsResult) {
  AgentSettings settings = Settings();
  settings.approvals.subtasks = true;
  settings.approvals.write = false;  // The child's write is asked of the parent's client.
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> parent = NewSession(engine);
  Enqueue(NewTaskCall("Create notes.txt"));
  Enqueue(OpenAiToolCall(
      "child_write", "write_to_file",
      json{{"path", "notes.txt"}, {"content", "notes\n"}, {"line_count", 1}}.dump()));
  Enqueue(OpenAiToolCall("child_done", "attempt_completion", CompletionArgs("notes.txt created")));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("All done.")));

  TestClient client;
  client.AnswerNext(PermissionOutcome::kAllowOnce);
  EXPECT_EQ(MustPrompt(*parent, "Delegate creating notes", client), StopReason::kEndTurn);
  EXPECT_EQ(ReadFile(workspace_ + "/notes.txt"), "notes\n");
  ASSERT_EQ(client.permissions().size(), 1u);
  // The child's calls are shown under ids of the parent's own (its first call took the place of
  // the parent's new_task card in the editor when the ids were alike).
  EXPECT_TRUE(client.permissions()[0].tool.id.starts_with("sub_"))
      << client.permissions()[0].tool.id;
  EXPECT_TRUE(client.permissions()[0].tool.id.ends_with("_child_write"));

  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 4u);
  EXPECT_NE(LastUserText(bodies[1]).find("<task>\nCreate notes.txt\n</task>"), std::string::npos)
      << "the child starts with the message as its task";
  EXPECT_EQ(MessagesText(bodies[1]).find("Delegate creating notes"), std::string::npos)
      << "the child does not see the parent's conversation";
  EXPECT_TRUE(ToolResultOf(bodies[2], "child_write").has_value());
  ExpectTaskResult(bodies[3], "notes.txt created");

  ListOptions options;
  options.include_children = true;
  Result<std::vector<SessionRecord>> sessions = store_->ListSessions(options);
  ASSERT_TRUE(sessions.ok());
  ASSERT_EQ(sessions->size(), 2u);
  const SessionRecord* child = nullptr;
  for (const SessionRecord& record : *sessions) {
    if (record.id != parent->id()) child = &record;
  }
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->parent_id, parent->id());
  EXPECT_EQ(child->status, SessionStatus::kCompleted);
  EXPECT_EQ(child->mode, "code");
  // The task's totals include its subtask's, all alike; the child keeps its own.
  EXPECT_EQ(child->totals.requests, 2);
  EXPECT_EQ(parent->Info().totals.requests, 4);
  EXPECT_GT(child->totals.input_tokens, 0);
  EXPECT_GT(parent->Info().totals.input_tokens, child->totals.input_tokens);
  EXPECT_GT(parent->Info().totals.output_tokens, child->totals.output_tokens);
  // The child's tool call was shown in the parent's session.
  std::vector<std::string> trace = client.Trace();
  EXPECT_NE(std::find(trace.begin(), trace.end(), "tool_call edit pending"), trace.end());
  // Its result was shown once, as the child's last words; the new_task call's result says only
  // that it completed (it repeated the whole result).
  std::string shown = client.AgentText();
  size_t said = shown.find("notes.txt created");
  EXPECT_NE(said, std::string::npos) << shown;
  EXPECT_EQ(shown.find("notes.txt created", said + 1), std::string::npos) << shown;
  std::string task_result;
  for (const SessionUpdate& update : client.updates()) {
    if (update.kind == SessionUpdate::Kind::kToolCallUpdate && update.tool.id == "call_task") {
      for (const ToolCallContent& content : update.tool.content) task_result += content.text;
    }
  }
  EXPECT_EQ(task_result, "Subtask " + child->id + " completed.");
  // The new_task card runs while the child works; the task's usage is shown after each of the
  // four replies, the child's two included, its cost never going back.
  std::vector<std::string> task_card;
  std::vector<double> costs;
  for (const SessionUpdate& update : client.updates()) {
    if (update.kind == SessionUpdate::Kind::kUsageUpdate) costs.push_back(update.cost_usd);
    if (update.tool.id == "call_task" && update.tool.status) {
      task_card.emplace_back(StatusName(*update.tool.status));
    }
    if (update.tool.id.ends_with("_child_write") && update.kind == SessionUpdate::Kind::kToolCall) {
      EXPECT_EQ(task_card, (std::vector<std::string>{"pending", "in_progress"}));
    }
  }
  EXPECT_EQ(task_card, (std::vector<std::string>{"pending", "in_progress", "completed"}));
  ASSERT_EQ(costs.size(), 4u);
  EXPECT_TRUE(std::is_sorted(costs.begin(), costs.end()));
  EXPECT_GT(costs[1], costs[0]);
  EXPECT_DOUBLE_EQ(costs.back(), parent->Info().totals.cost_usd);
}

// A subtask that stops before completing (here to ask the user) stops its task too, which made
// more requests as if it had its result; the user's answer goes on in it, in a later process
// too, and the task goes on with its result.
TEST_F(SessionTest, ASubtasksQuestionIsAnsweredInItAndTheTaskGoesOn) {
  AgentSettings settings = Settings();
  settings.approvals.subtasks = true;
  llm::ProviderPool& pool = MakePool({"p"});
  Engine& first = MakeEngine(pool, settings);
  std::shared_ptr<Session> parent = NewSession(first);
  Enqueue(NewTaskCall("Paint it"));
  Enqueue(OpenAiToolCall("child_ask", "ask_followup_question",
                         json{{"question", "Which colour?"}, {"follow_up", nullptr}}.dump()));
  TestClient client;
  EXPECT_EQ(MustPrompt(*parent, "Delegate the painting", client), StopReason::kEndTurn);
  EXPECT_EQ(server_->requests().size(), 2u) << "the task went on without the answer";
  EXPECT_EQ(parent->Info().status, SessionStatus::kWaiting);
  EXPECT_NE(client.AgentText().find("Which colour?"), std::string::npos);
  std::string id = parent->id();
  ListOptions options;
  options.include_children = true;
  Result<std::vector<SessionRecord>> sessions = store_->ListSessions(options);
  ASSERT_TRUE(sessions.ok());
  ASSERT_EQ(sessions->size(), 2u);
  std::string child_id = (*sessions)[0].id == id ? (*sessions)[1].id : (*sessions)[0].id;
  first.Close(child_id);
  first.Close(id);
  parent.reset();  // Its process ends.

  Engine& second = MakeEngine(pool, settings);
  Result<std::shared_ptr<Session>> loaded = second.LoadSession(id);
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  Enqueue(OpenAiToolCall("child_done", "attempt_completion", CompletionArgs("Painted blue.")));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("All painted.")));
  TestClient later;
  EXPECT_EQ(MustPrompt(**loaded, "blue", later), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 4u);
  std::optional<std::string> answer = ToolResultOf(bodies[2], "child_ask");
  ASSERT_TRUE(answer.has_value()) << bodies[2]["messages"].dump();
  EXPECT_NE(answer->find("<answer>\nblue\n</answer>"), std::string::npos) << *answer;
  ExpectTaskResult(bodies[3], "Painted blue.");
  EXPECT_EQ(MessagesText(bodies[3]).find("<answer>"), std::string::npos)
      << "the answer was the subtask's, not the task's";
  EXPECT_EQ((*loaded)->Info().status, SessionStatus::kCompleted);
  EXPECT_EQ((*loaded)->Info().totals.requests, 4);
  // The new_task card ends with the subtask.
  std::vector<std::string> trace = later.Trace();
  EXPECT_NE(std::find(trace.begin(), trace.end(), "tool_call_update completed"), trace.end());
}

// A limit that stops a subtask (the user did not let it go on) stops its task: the task made
// more requests, and ended "completed". The turn's requests count the subtask's: 1 + 2.
TEST_F(SessionTest, ALimitThatStopsASubtaskStopsTheTask) {
  AgentSettings settings = Settings();
  settings.approvals.subtasks = true;
  settings.max_requests_per_turn = 3;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> parent = NewSession(engine);
  Enqueue(NewTaskCall("Read a lot"));
  Enqueue(OpenAiToolCall("r1", "read_file", ReadArgs("src.txt")));
  Enqueue(OpenAiToolCall("r2", "list_files", json{{"path", "."}}.dump()));
  TestClient client;
  EXPECT_EQ(MustPrompt(*parent, "Delegate", client), StopReason::kMaxTurnRequests);
  EXPECT_EQ(server_->requests().size(), 3u);
  EXPECT_EQ(parent->Info().status, SessionStatus::kStopped);
  // Sent on, it goes on in the subtask, then in the task.
  Enqueue(OpenAiToolCall("child_done", "attempt_completion", CompletionArgs("Read it all.")));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  EXPECT_EQ(MustPrompt(*parent, "go on", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 5u);
  EXPECT_TRUE(ToolResultOf(bodies[3], "r2").has_value()) << bodies[3]["messages"].dump();
  ExpectTaskResult(bodies[4], "Read it all.");
}

// An "always" answer holds in the task's subtasks (the user was asked again in each), and one
// given in a subtask holds in the rest of the task.
TEST_F(SessionTest, AlwaysAnswersHoldAcrossSubtasks) {
  AgentSettings settings = Settings();
  settings.approvals.subtasks = true;
  settings.approvals.write = false;
  settings.approvals.execute = false;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> parent = NewSession(engine);
  auto write = [](const char* id, const char* path) {
    return OpenAiToolCall(id, "write_to_file",
                          json{{"path", path}, {"content", "x\n"}, {"line_count", 1}}.dump());
  };
  Enqueue(write("w1", "a.txt"));
  Enqueue(NewTaskCall("Write more"));
  Enqueue(write("w2", "b.txt"));
  Enqueue(OpenAiToolCall("c1", "execute_command", json{{"command", "true"}}.dump()));
  Enqueue(OpenAiToolCall("child_done", "attempt_completion", CompletionArgs("Wrote b.")));
  Enqueue(OpenAiToolCall("c2", "execute_command", json{{"command", "true"}}.dump()));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  client.AnswerNext(PermissionOutcome::kAllowAlways);  // a.txt's write.
  client.AnswerNext(PermissionOutcome::kAllowAlways);  // The subtask's `true`.
  EXPECT_EQ(MustPrompt(*parent, "Write", client), StopReason::kEndTurn);
  EXPECT_EQ(ReadFile(workspace_ + "/b.txt"), "x\n");
  std::vector<PermissionRequest> asked = client.permissions();
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_EQ(asked[0].tool.id, "w1");
  EXPECT_TRUE(asked[1].tool.id.ends_with("_c1")) << asked[1].tool.id;
  EXPECT_EQ(client.unused_answers(), 0u);
}

// A subtask's plan is shown while it runs (it never was), and the task's own again after it.
TEST_F(SessionTest, ASubtasksPlanIsShownWhileItRuns) {
  AgentSettings settings = Settings();
  settings.approvals.subtasks = true;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> parent = NewSession(engine);
  Enqueue(OpenAiToolCall("t1", "update_todo_list", json{{"todos", "[-] delegate"}}.dump()));
  Enqueue(OpenAiToolCall(
      "call_task", "new_task",
      json{{"mode", "code"}, {"message", "Paint"}, {"todos", "[ ] paint\n[ ] dry"}}.dump()));
  Enqueue(OpenAiToolCall("t2", "update_todo_list", json{{"todos", "[x] paint\n[-] dry"}}.dump()));
  Enqueue(OpenAiToolCall("child_done", "attempt_completion", CompletionArgs("Painted.")));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*parent, "Delegate", client), StopReason::kEndTurn);
  std::vector<std::string> plans;
  for (const SessionUpdate& update : client.updates()) {
    if (update.kind != SessionUpdate::Kind::kPlan) continue;
    std::string entries;
    for (const PlanEntry& entry : update.plan) entries += entry.content + ";";
    plans.push_back(entries);
  }
  EXPECT_EQ(plans,
            (std::vector<std::string>{"delegate;", "paint;dry;", "paint;dry;", "delegate;"}));
}

TEST_F(SessionTest, CancelReachesARunningSubtask) {
  AgentSettings settings = Settings();
  settings.approvals.subtasks = true;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> parent = NewSession(engine);
  Enqueue(NewTaskCall("Think slowly"));
  Enqueue(OpenAiStalledText("Child starts talking. And never stops.", 20s));

  TestClient client;
  client.CancelOn(SessionUpdate::Kind::kAgentMessageChunk, *parent);
  EXPECT_EQ(MustPrompt(*parent, "Delegate", client), StopReason::kCancelled);
  ASSERT_TRUE(client.cancelled_at().has_value());
  EXPECT_LT(Clock::now() - *client.cancelled_at(), 1s);
  EXPECT_NE(client.AgentText().find("Child starts"), std::string::npos);
  ListOptions options;
  options.include_children = true;
  Result<std::vector<SessionRecord>> sessions = store_->ListSessions(options);
  ASSERT_TRUE(sessions.ok());
  ASSERT_EQ(sessions->size(), 2u);
  for (const SessionRecord& record : *sessions) {
    EXPECT_EQ(record.status, SessionStatus::kCancelled) << record.id;
  }
  // The cancelled subtask is paused, not abandoned: the next prompt goes on in it.
  Enqueue(OpenAiToolCall("child_done", "attempt_completion", CompletionArgs("Thought it over.")));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  EXPECT_EQ(MustPrompt(*parent, "go on", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 4u);
  EXPECT_NE(MessagesText(bodies[2]).find("Think slowly"), std::string::npos);
  EXPECT_EQ(MessagesText(bodies[2]).find("Delegate"), std::string::npos);
  ExpectTaskResult(bodies[3], "Thought it over.");
}

// A waiting subtask the user finished in its own session: the task takes its result, with the
// user's message (it prompted the finished subtask again, a paid turn).
TEST_F(SessionTest, ASubtaskFinishedOnItsOwnIsNotPromptedAgain) {
  AgentSettings settings = Settings();
  settings.approvals.subtasks = true;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> parent = NewSession(engine);
  Enqueue(NewTaskCall("Paint it"));
  Enqueue(OpenAiToolCall("child_ask", "ask_followup_question",
                         json{{"question", "Which colour?"}, {"follow_up", nullptr}}.dump()));
  TestClient client;
  EXPECT_EQ(MustPrompt(*parent, "Delegate", client), StopReason::kEndTurn);
  ListOptions options;
  options.include_children = true;
  Result<std::vector<SessionRecord>> sessions = store_->ListSessions(options);
  ASSERT_TRUE(sessions.ok());
  ASSERT_EQ(sessions->size(), 2u);
  std::string child_id = (*sessions)[0].id == parent->id() ? (*sessions)[1].id : (*sessions)[0].id;
  std::shared_ptr<Session> child = engine.Find(child_id);
  ASSERT_NE(child, nullptr);
  Enqueue(OpenAiToolCall("child_done", "attempt_completion", CompletionArgs("Painted red.")));
  TestClient direct;
  EXPECT_EQ(MustPrompt(*child, "red", direct), StopReason::kEndTurn);
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("All done.")));
  EXPECT_EQ(MustPrompt(*parent, "carry on", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 4u) << "the finished subtask was prompted again";
  ExpectTaskResult(bodies[3], "Painted red.");
  EXPECT_NE(LastUserText(bodies[3]).find("carry on"), std::string::npos);
  EXPECT_EQ(parent->Info().totals.requests, 4);
}

// ---- 9. Persistence and resume -----------------------------------------------------------------

TEST_F(SessionTest, ReloadedSessionHasSameHistoryAndReplay) {
  llm::ProviderPool& pool = MakePool({"p"});
  Engine& first = MakeEngine(pool);
  std::shared_ptr<Session> session = NewSession(first);
  Enqueue(OpenAiToolCall("call_1", "read_file", ReadArgs("src.txt"), "Reading."));
  Enqueue(OpenAiToolCall("call_2", "attempt_completion", CompletionArgs("It says hello.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "What does src.txt say?", client), StopReason::kEndTurn);
  std::string id = session->id();
  first.Close(id);
  session.reset();  // Its process ends, and with it the session's lock.

  // Another engine (as another process would) over its own connection to the same file.
  Result<std::unique_ptr<SessionStore>> other_store = SessionStore::Open(root_ + "/sessions.db");
  ASSERT_TRUE(other_store.ok()) << other_store.error().ToString();
  Engine& second = MakeEngine(pool, Settings(), other_store->get());
  Result<std::shared_ptr<Session>> loaded = second.LoadSession(id.substr(0, 12));
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  EXPECT_EQ((*loaded)->id(), id);
  SessionInfo info = (*loaded)->Info();
  EXPECT_EQ(info.title, "What does src.txt say?");
  EXPECT_EQ(info.mode, "code");
  EXPECT_EQ(info.totals.requests, 2);

  TestClient replay;
  ASSERT_TRUE((*loaded)->Replay(replay).ok());
  EXPECT_EQ(replay.AcpJson(), client.AcpJson());

  Enqueue(OpenAiToolCall("call_3", "attempt_completion", CompletionArgs("Still hello.")));
  TestClient later;
  EXPECT_EQ(MustPrompt(**loaded, "Check again", later), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 3u);
  // The loaded session sends the same conversation the first one had, then the new turn.
  const json& before = bodies[1]["messages"];
  const json& after = bodies[2]["messages"];
  ASSERT_GT(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(after[i], before[i]) << "message " << i;
  EXPECT_EQ(after[before.size()]["tool_calls"][0]["id"], "call_2");
  // The feedback answers the attempt_completion call, as it would without the reload.
  EXPECT_NE(
      ToolResultOf(bodies[2], "call_2").value_or("").find("<feedback>\nCheck again\n</feedback>"),
      std::string::npos)
      << bodies[2]["messages"].dump();
}

// Two writers of one history corrupt it: a session another engine (another process) has open
// cannot be loaded until that one lets it go.
TEST_F(SessionTest, ASessionOpenInOneEngineCannotBeLoadedByAnother) {
  llm::ProviderPool& pool = MakePool({"p"});
  Engine& first = MakeEngine(pool);
  std::shared_ptr<Session> session = NewSession(first);
  std::string id = session->id();
  Result<std::unique_ptr<SessionStore>> other_store = SessionStore::Open(root_ + "/sessions.db");
  ASSERT_TRUE(other_store.ok()) << other_store.error().ToString();
  Engine& second = MakeEngine(pool, Settings(), other_store->get());
  Result<std::shared_ptr<Session>> refused = second.LoadSession(id);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(refused.error().message().find("is open in another lapce-ai process"),
            std::string::npos)
      << refused.error().message();
  ASSERT_TRUE(first.LoadSession(id).ok()) << "the engine that has it open gets it again";
  first.Close(id);
  session.reset();
  Result<std::shared_ptr<Session>> loaded = second.LoadSession(id);
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
}

// A session whose project has moved away cannot be loaded, and the refusal says what to do.
TEST_F(SessionTest, ASessionWhoseWorkspaceIsGoneSaysHowToKeepIt) {
  llm::ProviderPool& pool = MakePool({"p"});
  Engine& first = MakeEngine(pool);
  std::shared_ptr<Session> session = NewSession(first);
  std::string id = session->id();
  first.Close(id);
  session.reset();
  std::filesystem::rename(workspace_, workspace_ + "-moved");
  Result<std::shared_ptr<Session>> loaded = MakeEngine(pool).LoadSession(id);
  std::filesystem::rename(workspace_ + "-moved", workspace_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message().find(workspace_), std::string::npos)
      << loaded.error().message();
  EXPECT_NE(loaded.error().message().find("`lapce-ai sessions export " + id + "`"),
            std::string::npos)
      << loaded.error().message();
}

TEST_F(SessionTest, ReloadKeepsTextOfAnInterruptedReply) {
  llm::ProviderPool& pool = MakePool({"p"});
  Engine& first = MakeEngine(pool);
  std::shared_ptr<Session> session = NewSession(first);
  Enqueue(OpenAiToolCall("call_1", "read_file", ReadArgs("src.txt")));
  TestClient client;
  // The turn stops on the missing second reply (404), as if the process died after the read.
  Result<StopReason> stop = session->Prompt("Read src.txt", client);
  EXPECT_FALSE(stop.ok());
  // Streamed text that never became a message, as a killed process leaves it.
  SessionUpdate chunk;
  chunk.kind = SessionUpdate::Kind::kAgentMessageChunk;
  chunk.text = "PARTIALREPLY I was halfway through";
  ASSERT_TRUE(
      store_->AppendEvent(session->id(), UpdateKindName(chunk.kind), ToAcpJson(chunk), 1).ok());
  std::string id = session->id();
  first.Close(id);
  session.reset();  // The process dies: the session's lock goes with it.

  Engine& second = MakeEngine(pool);
  Result<std::shared_ptr<Session>> loaded = second.LoadSession(id);
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  Enqueue(OpenAiToolCall("call_2", "attempt_completion", CompletionArgs("Done.")));
  TestClient later;
  EXPECT_EQ(MustPrompt(**loaded, "Continue", later), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 3u);
  std::string text = MessagesText(bodies[2]);
  EXPECT_NE(text.find("PARTIALREPLY I was halfway through"), std::string::npos) << text;
  EXPECT_NE(text.find("[Response interrupted"), std::string::npos);
  EXPECT_TRUE(ToolResultOf(bodies[2], "call_1").has_value());
}

TEST_F(SessionTest, ReloadedSessionTakesTheAnswerToItsQuestion) {
  llm::ProviderPool& pool = MakePool({"p"});
  Engine& first = MakeEngine(pool);
  std::shared_ptr<Session> session = NewSession(first);
  Enqueue(OpenAiToolCall(
      "call_ask", "ask_followup_question",
      json{{"question", "Which file?"}, {"follow_up", {{{"text", "a.txt"}, {"mode", nullptr}}}}}
          .dump()));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Edit a file", client), StopReason::kEndTurn);
  std::shared_ptr<Session> loaded = Reopen(first, session, pool);
  ASSERT_NE(loaded, nullptr);
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient later;
  // "1" picks the first suggestion, which the reloaded session knows from the stored call.
  EXPECT_EQ(MustPrompt(*loaded, "1", later), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  std::optional<std::string> answer = ToolResultOf(bodies[1], "call_ask");
  ASSERT_TRUE(answer.has_value());
  EXPECT_NE(answer->find("<answer>\na.txt\n</answer>"), std::string::npos)
      << "the answer goes back as the question's result, as without the reload: " << *answer;
}

// A suggested answer may name a mode: it is shown with the answer, and choosing the answer
// switches to it (the tool's description promised it; the mode was dropped).
TEST_F(SessionTest, ChoosingASuggestionWithAModeSwitchesToIt) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiToolCall("call_ask", "ask_followup_question",
                         json{{"question", "Plan first?"},
                              {"follow_up",
                               {{{"text", "Plan it"}, {"mode", "architect"}},
                                {{"text", "Just do it"}, {"mode", nullptr}}}}}
                             .dump()));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Build it", client), StopReason::kEndTurn);
  EXPECT_NE(client.AgentText().find("1. Plan it (switches to Architect mode)\n2. Just do it"),
            std::string::npos)
      << client.AgentText();
  // The first text of a turn starts the message: no blank lines before it.
  EXPECT_TRUE(client.AgentText().starts_with("Plan first?")) << client.AgentText();
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Planned.")));
  EXPECT_EQ(MustPrompt(*session, "1", client), StopReason::kEndTurn);
  EXPECT_EQ(session->Info().mode, "architect");
  std::vector<SessionUpdate> updates = client.updates();
  EXPECT_TRUE(std::any_of(updates.begin(), updates.end(), [](const SessionUpdate& update) {
    return update.kind == SessionUpdate::Kind::kCurrentModeUpdate && update.text == "architect";
  }));
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_NE(ToolResultOf(bodies[1], "call_ask").value_or("").find("<answer>\nPlan it\n</answer>"),
            std::string::npos);
  EXPECT_NE(bodies[1].dump().find("Architect"), std::string::npos) << "architect's prompt";
  // Nor when the model's text or question begins with newlines.
  Enqueue(OpenAiToolCall("call_ask2", "ask_followup_question",
                         json{{"question", "\n\nAnd then?"}, {"follow_up", json::array()}}.dump(),
                         "\n\n"));
  TestClient next;
  EXPECT_EQ(MustPrompt(*session, "Go on", next), StopReason::kEndTurn);
  EXPECT_TRUE(next.AgentText().starts_with("And then?")) << next.AgentText();
}

// Guidance asked for after the mistake limit goes back as feedback after a reload too, not as
// the answer to a question the model never asked.
TEST_F(SessionTest, ReloadedSessionTakesGuidanceAfterTheMistakeLimit) {
  llm::ProviderPool& pool = MakePool({"p"});
  Engine& first = MakeEngine(pool);
  std::shared_ptr<Session> session = NewSession(first);
  for (int i = 0; i < 3; ++i) Enqueue(testing::OpenAiText("Hmm " + std::to_string(i)));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Fix it", client), StopReason::kEndTurn);
  std::shared_ptr<Session> loaded = Reopen(first, session, pool);
  ASSERT_NE(loaded, nullptr);
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient later;
  EXPECT_EQ(MustPrompt(*loaded, "Use attempt_completion", later), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 4u);
  std::string last = LastUserText(bodies[3]);
  EXPECT_NE(last.find("trouble proceeding"), std::string::npos) << last;
  EXPECT_NE(last.find("<feedback>\nUse attempt_completion\n</feedback>"), std::string::npos)
      << last;
  EXPECT_EQ(last.find("<answer>"), std::string::npos) << last;
}

// The same call over and over, even one that succeeds, is stopped at the repetition limit and the
// user is asked at once (calls that succeed in between would otherwise reset the mistake count
// and let the model loop until the request limit). The model is told not to repeat itself; the
// user's guidance reaches it as feedback.
TEST_F(SessionTest, ARepeatedCallAsksTheUserForGuidance) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  WriteFile(workspace_ + "/notes.txt", "the notes\n");
  for (int i = 1; i <= 4; ++i)
    Enqueue(OpenAiToolCall("call_" + std::to_string(i), "read_file", ReadArgs("notes.txt")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Read the notes", client), StopReason::kEndTurn);
  EXPECT_EQ(server_->requests().size(), 4u) << "the fourth identical call ends the turn";
  EXPECT_NE(client.AgentText().find("stuck in a loop: it called read_file"), std::string::npos)
      << client.AgentText();

  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  EXPECT_EQ(MustPrompt(*session, "It is read; finish", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 5u);
  std::optional<std::string> refused = ToolResultOf(bodies[4], "call_4");
  ASSERT_TRUE(refused.has_value()) << bodies[4].dump();
  EXPECT_NE(refused->find("it was not run again. Try a different approach"), std::string::npos)
      << *refused;
  EXPECT_NE(LastUserText(bodies[4]).find("<feedback>\nIt is read; finish\n</feedback>"),
            std::string::npos)
      << LastUserText(bodies[4]);
}

TEST_F(SessionTest, NewSessionValidatesItsOptions) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  SessionOptions options;
  options.workspace = "relative/dir";
  Result<std::shared_ptr<Session>> relative = engine.NewSession(options);
  ASSERT_FALSE(relative.ok());
  EXPECT_EQ(relative.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(relative.error().message().find("absolute"), std::string::npos);

  options.workspace = workspace_;
  options.mode = "poet";
  Result<std::shared_ptr<Session>> mode = engine.NewSession(options);
  ASSERT_FALSE(mode.ok());
  EXPECT_NE(mode.error().message().find("the modes are: code, architect"), std::string::npos)
      << mode.error().message();

  options.mode = "ask";
  options.profile = "nope";
  Result<std::shared_ptr<Session>> profile = engine.NewSession(options);
  ASSERT_FALSE(profile.ok());
  EXPECT_NE(profile.error().message().find("the profiles are: p"), std::string::npos)
      << profile.error().message();

  Result<std::shared_ptr<Session>> missing = engine.LoadSession("ffffffff");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

// Calls refused before they run (an edit the mode forbids, a tool that does not exist) are shown
// to the client as failed tool calls carrying the reason, not only told to the model.
TEST_F(SessionTest, RefusedCallsAreShownAsFailedToolCalls) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine, {}, "ask");
  Enqueue(OpenAiToolCall("call_w", "write_to_file",
                         json{{"path", "a.txt"}, {"content", "x"}, {"line_count", 1}}.dump()));
  Enqueue(OpenAiToolCall("call_f", "frobnicate", "{}"));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Write a.txt", client), StopReason::kEndTurn);
  std::vector<std::string> reasons;
  for (const SessionUpdate& update : client.updates()) {
    if (update.kind != SessionUpdate::Kind::kToolCallUpdate || !update.tool.status ||
        *update.tool.status != ToolStatus::kFailed) {
      continue;
    }
    for (const ToolCallContent& content : update.tool.content) reasons.push_back(content.text);
  }
  ASSERT_EQ(reasons.size(), 2u);
  EXPECT_NE(reasons[0].find("ask"), std::string::npos) << reasons[0];
  EXPECT_NE(reasons[1].find("Unknown tool 'frobnicate'"), std::string::npos) << reasons[1];
  EXPECT_FALSE(std::filesystem::exists(workspace_ + "/a.txt"));
}

// architect may edit only Markdown: deleting a directory named like Markdown that holds code
// would edit that code, so it is refused, and nothing is deleted.
TEST_F(SessionTest, ARestrictedModeCannotDeleteADirectoryOfFilesItMayNotEdit) {
  std::filesystem::create_directories(workspace_ + "/guide.md");
  WriteFile(workspace_ + "/guide.md/main.py", "print('keep me')\n");
  WriteFile(workspace_ + "/guide.md/intro.md", "# Intro\n");
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine, {}, "architect");
  Enqueue(OpenAiToolCall("call_d", "delete_file", json{{"path", "guide.md"}}.dump()));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Clean up the guide", client), StopReason::kEndTurn);
  ASSERT_EQ(Bodies().size(), 2u);
  std::optional<std::string> result = ToolResultOf(Bodies()[1], "call_d");
  ASSERT_TRUE(result.has_value());
  EXPECT_NE(result->find("would delete 'guide.md/main.py'"), std::string::npos) << *result;
  EXPECT_TRUE(std::filesystem::exists(workspace_ + "/guide.md/main.py"));
  EXPECT_TRUE(std::filesystem::exists(workspace_ + "/guide.md/intro.md"));
}

// The mode's file restriction applies to the file a path leads to: a Markdown-named link to
// code does not let architect edit the code.
TEST_F(SessionTest, ARestrictedModeCannotEditThroughALink) {
  WriteFile(workspace_ + "/main.py", "print('keep me')\n");
  std::filesystem::create_symlink("main.py", workspace_ + "/notes.md");
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine, {}, "architect");
  Enqueue(
      OpenAiToolCall("call_w", "write_to_file",
                     json{{"path", "notes.md"}, {"content", "x = 1\n"}, {"line_count", 1}}.dump()));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Write the notes", client), StopReason::kEndTurn);
  ASSERT_EQ(Bodies().size(), 2u);
  std::optional<std::string> result = ToolResultOf(Bodies()[1], "call_w");
  ASSERT_TRUE(result.has_value());
  EXPECT_NE(result->find("got 'main.py'"), std::string::npos) << *result;
  EXPECT_EQ(ReadFile(workspace_ + "/main.py"), "print('keep me')\n");
}

// A mode limited to a file pattern edits nothing outside the workspace that the pattern, seen
// from the root, does not match ("docs/../../x" is "../x"), nor what a link there leads to; and
// its commands write only matching files (as far as the command's words say).
TEST_F(SessionTest, AModesFilePatternHoldsOutsideTheWorkspaceAndForCommands) {
  WriteFile(workspace_ + "/.kilocodemodes",
            "customModes:\n"
            "  - slug: docs\n"
            "    name: Docs\n"
            "    roleDefinition: You write documentation.\n"
            "    groups: [read, [edit, {fileRegex: '^docs/'}], command]\n");
  WriteFile(root_ + "/victim.py", "keep = 1\n");
  std::filesystem::create_directories(workspace_ + "/docs");
  std::filesystem::create_symlink("../../victim.py", workspace_ + "/docs/notes.md");
  AgentSettings settings = Settings();
  settings.approvals.write_outside_workspace = true;
  Engine& engine = MakeEngine(MakePool({"p"}), settings);
  std::shared_ptr<Session> session = NewSession(engine, {}, "docs");
  Enqueue(WriteCall("w1", "docs/../../escape.txt", "x"));
  Enqueue(WriteCall("w2", "docs/notes.md", "x"));
  Enqueue(CommandCall("c1", "echo x > code.py"));
  Enqueue(CommandCall("c2", "echo x > docs/ok.md"));
  Enqueue(CommandCall("c3", "echo code.py | xargs sed -i s/a/b/"));
  Enqueue(OpenAiToolCall("done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Write the docs", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 6u);
  // Files only the command can name (xargs, find -exec) are none the mode can vouch for.
  EXPECT_NE(ToolResultOf(bodies[5], "c3")
                .value_or("")
                .find("this command writes 'the files "
                      "xargs gives sed'"),
            std::string::npos)
      << ToolResultOf(bodies[5], "c3").value_or("");
  EXPECT_NE(ToolResultOf(bodies[1], "w1").value_or("").find("got '../escape.txt'"),
            std::string::npos)
      << ToolResultOf(bodies[1], "w1").value_or("");
  EXPECT_FALSE(std::filesystem::exists(root_ + "/escape.txt"));
  EXPECT_NE(ToolResultOf(bodies[2], "w2").value_or("").find("got '../victim.py'"),
            std::string::npos);
  EXPECT_EQ(ReadFile(root_ + "/victim.py"), "keep = 1\n");
  std::string refused = ToolResultOf(bodies[3], "c1").value_or("");
  EXPECT_NE(refused.find("Mode 'docs' can only edit files matching ^docs/ — this command writes "
                         "'code.py'"),
            std::string::npos)
      << refused;
  EXPECT_FALSE(std::filesystem::exists(workspace_ + "/code.py"));
  EXPECT_EQ(ReadFile(workspace_ + "/docs/ok.md"), "x\n");
}

// A mode's file pattern judges the file a path names: "./docs/a.md" and the absolute path are
// "docs/a.md". A model insisting on what its mode forbids makes mistakes: after three in a row
// the user is asked how to go on (it spent a request on each, up to the request limit).
TEST_F(SessionTest, AModesFilePatternSeesThroughThePathsSpellingAndRefusalsAreMistakes) {
  WriteFile(workspace_ + "/.kilocodemodes",
            "customModes:\n"
            "  - slug: docs\n"
            "    name: Docs\n"
            "    roleDefinition: You write documentation.\n"
            "    groups: [read, [edit, {fileRegex: '^docs/'}]]\n");
  std::filesystem::create_directories(workspace_ + "/docs");
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine, {}, "docs");
  Enqueue(WriteCall("w1", "./docs/a.md", "a"));
  Enqueue(WriteCall("w2", workspace_ + "/docs/b.md", "b"));
  for (int i = 0; i < 4; ++i) Enqueue(WriteCall("x" + std::to_string(i), "code.py", "x"));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Write the docs", client), StopReason::kEndTurn);
  EXPECT_EQ(ReadFile(workspace_ + "/docs/a.md"), "a\n");
  EXPECT_EQ(ReadFile(workspace_ + "/docs/b.md"), "b\n");
  EXPECT_FALSE(std::filesystem::exists(workspace_ + "/code.py"));
  EXPECT_EQ(server_->requests().size(), 5u);
  EXPECT_NE(client.AgentText().find("3 mistakes in a row"), std::string::npos)
      << client.AgentText();
}

// A modes file that is not valid is left out, as Kilo Code does: the session in a built-in mode
// works, and the user is told once what is wrong with the file.
TEST_F(SessionTest, ABrokenModesFileIsSaidOnceAndTheOtherModesWork) {
  WriteFile(workspace_ + "/.kilocodemodes", "customModes:\n  - slug: docs\n    name: Docs\n");
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiToolCall("d1", "attempt_completion", CompletionArgs("Done.")));
  Enqueue(OpenAiToolCall("d2", "attempt_completion", CompletionArgs("Done again.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Go", client), StopReason::kEndTurn);
  EXPECT_EQ(MustPrompt(*session, "Again", client), StopReason::kEndTurn);
  const std::string said = client.AgentText();
  const std::string notice =
      "(A modes file was left out: .kilocodemodes: customModes[0] (slug 'docs'): ";
  ASSERT_NE(said.find(notice), std::string::npos) << said;
  EXPECT_EQ(said.find(notice, said.find(notice) + 1), std::string::npos) << "said once: " << said;
}

// Rules, AGENTS.md and the modes are read again for each prompt: what the user changed between
// prompts reaches the model. A session whose custom mode is gone is not moved silently to another
// mode: the prompt is refused, and a reload needs a mode named.
TEST_F(SessionTest, RulesAndModesAreReadAgainForEachPrompt) {
  const std::string modes =
      "customModes:\n"
      "  - slug: docs\n"
      "    name: Docs\n"
      "    roleDefinition: You write documentation.\n"
      "    groups: [read]\n";
  WriteFile(workspace_ + "/.kilocodemodes", modes);
  WriteFile(workspace_ + "/AGENTS.md", "RULE_V1\n");
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine, {}, "docs");
  Enqueue(OpenAiToolCall("d1", "attempt_completion", CompletionArgs("One.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "first", client), StopReason::kEndTurn);
  WriteFile(workspace_ + "/AGENTS.md", "RULE_V2\n");
  WriteFile(workspace_ + "/.kilocodemodes", modes +
                                                "  - slug: extra\n    name: Extra\n"
                                                "    roleDefinition: Extra.\n    groups: []\n");
  // A mode added meanwhile can be chosen at once, before any prompt reads the modes again.
  ASSERT_TRUE(session->SetMode("extra", &client).ok());
  ASSERT_TRUE(session->SetMode("docs", &client).ok());
  Enqueue(OpenAiToolCall("d2", "attempt_completion", CompletionArgs("Two.")));
  EXPECT_EQ(MustPrompt(*session, "second", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_NE(SystemPromptOf(bodies[0]).find("RULE_V1"), std::string::npos);
  EXPECT_NE(SystemPromptOf(bodies[1]).find("RULE_V2"), std::string::npos);
  EXPECT_EQ(SystemPromptOf(bodies[1]).find("RULE_V1"), std::string::npos);
  EXPECT_TRUE(session->SetMode("extra", &client).ok());  // Known since the second prompt.
  ASSERT_TRUE(session->SetMode("docs", &client).ok());

  // A mode whose file has broken since is refused at once, saying what is wrong with the file.
  WriteFile(workspace_ + "/.kilocodemodes", modes + "  - slug: extra\n");
  Status broken = session->SetMode("extra", &client);
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(
      broken.error().message().find("A modes file was left out: .kilocodemodes: customModes[1]"),
      std::string::npos)
      << broken.error().message();
  EXPECT_EQ(session->Info().mode, "docs");

  std::filesystem::remove(workspace_ + "/.kilocodemodes");
  Result<StopReason> refused = session->Prompt("third", client);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("mode 'docs' is no longer defined"), std::string::npos)
      << refused.error().message();
  EXPECT_EQ(Bodies().size(), 2u);
  std::string id = session->id();
  engine.Close(id);
  session.reset();
  Engine& other = MakeEngine(MakePool({"p"}));
  Result<std::shared_ptr<Session>> loaded = other.LoadSession(id);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message().find("is in mode 'docs', which is not defined"),
            std::string::npos)
      << loaded.error().message();
  // An editor (which cannot name a mode on load) opens it in its old mode; prompts are refused
  // until it switches.
  Result<std::shared_ptr<Session>> kept = other.LoadSession(id, nullptr, {}, true);
  ASSERT_TRUE(kept.ok()) << kept.error().ToString();
  EXPECT_EQ((*kept)->Info().mode, "docs");
  EXPECT_FALSE((*kept)->Prompt("fourth", client).ok());
  EXPECT_EQ(Bodies().size(), 2u);
  ASSERT_TRUE((*kept)->SetMode("ask", &client).ok());
  EXPECT_EQ((*kept)->Info().mode, "ask");
}

// A file the user blocks in .kilocodeignore during a session is blocked from the next tool call
// on (the rules were read once, when the session opened its workspace).
TEST_F(SessionTest, IgnoreRulesChangedMidSessionApplyToTheNextCall) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiToolCall("call_1", "read_file", ReadArgs("src.txt")));
  Enqueue(OpenAiToolCall("call_done1", "attempt_completion", CompletionArgs("Read it.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Read src.txt", client), StopReason::kEndTurn);
  WriteFile(workspace_ + "/.kilocodeignore", "src.txt\n");
  Enqueue(OpenAiToolCall("call_2", "read_file", ReadArgs("src.txt")));
  Enqueue(OpenAiToolCall("call_done2", "attempt_completion", CompletionArgs("Blocked.")));
  EXPECT_EQ(MustPrompt(*session, "Read it again", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 4u);
  EXPECT_NE(ToolResultOf(bodies[1], "call_1").value_or("").find("hello"), std::string::npos);
  std::string blocked = ToolResultOf(bodies[3], "call_2").value_or("");
  EXPECT_NE(blocked.find("blocked by the .kilocodeignore"), std::string::npos) << blocked;
  EXPECT_EQ(blocked.find("hello"), std::string::npos) << blocked;
}

TEST_F(SessionTest, SetModeIsShownStoredAndReplayed) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine, {}, "ask");
  TestClient client;
  EXPECT_FALSE(session->SetMode("poet", &client).ok());
  ASSERT_TRUE(session->SetMode("debug", &client).ok());
  EXPECT_EQ(session->Info().mode, "debug");
  ASSERT_EQ(client.updates().size(), 1u);
  EXPECT_EQ(client.updates()[0].kind, SessionUpdate::Kind::kCurrentModeUpdate);
  EXPECT_EQ(client.updates()[0].text, "debug");
  std::string id = session->id();
  engine.Close(id);
  session.reset();

  Engine& other = MakeEngine(MakePool({"p"}));
  Result<std::shared_ptr<Session>> loaded = other.LoadSession(id);
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  EXPECT_EQ((*loaded)->Info().mode, "debug");
  TestClient replay;
  ASSERT_TRUE((*loaded)->Replay(replay).ok());
  EXPECT_EQ(replay.AcpJson(), client.AcpJson());
}

// ---- 10. Session tools -------------------------------------------------------------------------

TEST_F(SessionTest, TodoListModeSwitchAndFollowupQuestion) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(OpenAiToolCall("call_todo", "update_todo_list",
                         json{{"todos", "[x] read\n[-] plan\n[ ] build"}}.dump()));
  Enqueue(OpenAiToolCall("call_mode", "switch_mode",
                         json{{"mode_slug", "architect"}, {"reason", "plan first"}}.dump()));
  Enqueue(OpenAiToolCall(
      "call_ask", "ask_followup_question",
      json{{"question", "Which file?"},
           {"follow_up",
            {{{"text", "a.txt"}, {"mode", nullptr}}, {{"text", "b.txt"}, {"mode", nullptr}}}}}
          .dump()));
  Enqueue(OpenAiToolCall("call_done", "attempt_completion", CompletionArgs("Planned a.txt.")));

  TestClient client;
  client.AnswerNext(PermissionOutcome::kAllowOnce);
  EXPECT_EQ(MustPrompt(*session, "Plan the work", client), StopReason::kEndTurn);
  EXPECT_EQ(server_->requests().size(), 3u) << "the question ends the turn";
  EXPECT_EQ(client.unused_answers(), 0u);
  ASSERT_EQ(client.permissions().size(), 1u);
  EXPECT_EQ(client.permissions()[0].tool.kind, ToolKind::kSwitchMode);

  std::vector<SessionUpdate> updates = client.updates();
  const SessionUpdate* plan = nullptr;
  const SessionUpdate* mode = nullptr;
  for (const SessionUpdate& update : updates) {
    if (update.kind == SessionUpdate::Kind::kPlan) plan = &update;
    if (update.kind == SessionUpdate::Kind::kCurrentModeUpdate) mode = &update;
  }
  ASSERT_NE(plan, nullptr);
  ASSERT_EQ(plan->plan.size(), 3u);
  EXPECT_EQ(plan->plan[0].content, "read");
  EXPECT_EQ(plan->plan[0].status, PlanEntry::Status::kCompleted);
  EXPECT_EQ(plan->plan[1].status, PlanEntry::Status::kInProgress);
  EXPECT_EQ(plan->plan[2].status, PlanEntry::Status::kPending);
  EXPECT_EQ(session->Info().todos.size(), 3u);
  ASSERT_NE(mode, nullptr);
  EXPECT_EQ(mode->text, "architect");
  EXPECT_EQ(session->Info().mode, "architect");
  std::string shown = client.AgentText();
  EXPECT_NE(shown.find("Which file?\n1. a.txt\n2. b.txt"), std::string::npos) << shown;

  std::vector<json> bodies = Bodies();
  EXPECT_NE(ToolResultOf(bodies[1], "call_todo").value_or("").find("Todo list updated"),
            std::string::npos);
  EXPECT_NE(ToolResultOf(bodies[2], "call_mode").value_or("").find("architect"), std::string::npos);
  EXPECT_TRUE(Contains(ToolNames(bodies[1]), "execute_command"));
  EXPECT_FALSE(Contains(ToolNames(bodies[2]), "execute_command"))
      << "architect cannot run commands";
  EXPECT_TRUE(Contains(ToolNames(bodies[2]), "read_file"));

  // A number answers with the suggestion it was shown beside.
  EXPECT_EQ(MustPrompt(*session, " 2 ", client), StopReason::kEndTurn);
  bodies = Bodies();
  ASSERT_EQ(bodies.size(), 4u);
  std::optional<std::string> answer = ToolResultOf(bodies[3], "call_ask");
  ASSERT_TRUE(answer.has_value()) << bodies[3]["messages"].dump();
  EXPECT_NE(answer->find("<answer>\nb.txt\n</answer>"), std::string::npos) << *answer;
}

// A first prompt whose request failed leaves the model without the workspace's file listing:
// the next prompt's details (which replace that prompt's) carry it, once.
TEST_F(SessionTest, TheFileListingComesWithThePromptAfterAFailedFirstOne) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(testing::MakeResponse(400, R"({"error":{"message":"bad","type":"x"}})"));
  TestClient client;
  EXPECT_FALSE(session->Prompt("first", client).ok());
  Enqueue(OpenAiToolCall("done", "attempt_completion", CompletionArgs("Done.")));
  EXPECT_EQ(MustPrompt(*session, "second", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  std::string sent = bodies[1]["messages"].dump();
  size_t listing = sent.find("# Current Workspace Directory");
  ASSERT_NE(listing, std::string::npos) << sent;
  EXPECT_EQ(sent.find("# Current Workspace Directory", listing + 1), std::string::npos) << sent;
  EXPECT_NE(sent.find("src.txt"), std::string::npos) << sent;
}

// A todos argument with no checklist item in it is an error the model is told how to mend, and
// the list stays as it was; a JSON array of item strings is a list too.
TEST_F(SessionTest, ATodoListWithoutItemsKeepsTheOldOne) {
  Engine& engine = MakeEngine(MakePool({"p"}));
  std::shared_ptr<Session> session = NewSession(engine);
  Enqueue(
      OpenAiToolCall("t1", "update_todo_list", json{{"todos", "[ ] keep me\n[x] done"}}.dump()));
  Enqueue(OpenAiToolCall("t2", "update_todo_list",
                         json{{"todos", "Set up the project\nWrite tests"}}.dump()));
  Enqueue(OpenAiToolCall("t3", "update_todo_list",
                         json{{"todos", json::array({"[-] keep me", "[x] done"})}}.dump()));
  Enqueue(OpenAiToolCall("done", "attempt_completion", CompletionArgs("Done.")));
  TestClient client;
  EXPECT_EQ(MustPrompt(*session, "Plan", client), StopReason::kEndTurn);
  std::vector<json> bodies = Bodies();
  ASSERT_EQ(bodies.size(), 4u);
  std::string refused = ToolResultOf(bodies[2], "t2").value_or("");
  EXPECT_NE(refused.find("holds no checklist items, so the todo list was left as it was"),
            std::string::npos)
      << refused;
  EXPECT_NE(ToolResultOf(bodies[3], "t3").value_or("").find("updated"), std::string::npos);
  std::vector<PlanEntry> todos = session->Info().todos;
  ASSERT_EQ(todos.size(), 2u);
  EXPECT_EQ(todos[0].content, "keep me");
  EXPECT_EQ(todos[0].status, PlanEntry::Status::kInProgress);
  EXPECT_EQ(todos[1].content, "done");
  EXPECT_EQ(todos[1].status, PlanEntry::Status::kCompleted);
}

// What a killed engine left: a subtask's words after the parent's tool call are not the parent's
// unfinished reply (they became the parent's own words on resume); tool calls started and never
// ended are ended as failed, so an editor's replay does not show them running for ever.
TEST(RecoveryTest, SubtaskWordsAreNotTheParentsReplyAndOpenToolCallsEnd) {
  auto update = [](SessionUpdate value) {
    return StoredEvent{0, 0, std::string(UpdateKindName(value.kind)), ToAcpJson(value)};
  };
  auto text = [&](std::string words) {
    SessionUpdate chunk;
    chunk.kind = SessionUpdate::Kind::kAgentMessageChunk;
    chunk.text = std::move(words);
    return update(chunk);
  };
  auto call = [&](std::string id, std::optional<ToolStatus> status) {
    SessionUpdate value;
    value.kind = status ? SessionUpdate::Kind::kToolCallUpdate : SessionUpdate::Kind::kToolCall;
    value.tool.id = std::move(id);
    value.tool.title = "Subtask";
    value.tool.status = status.value_or(ToolStatus::kPending);
    return update(value);
  };
  std::vector<StoredEvent> events = {text("Delegating."),
                                     {0, 0, "message", "{}"},
                                     call("call_new", std::nullopt),
                                     text("child working"),
                                     call("call_done", std::nullopt),
                                     call("call_done", ToolStatus::kCompleted)};
  EXPECT_FALSE(UnfinishedReply(events).has_value());
  std::vector<UnfinishedCall> endings = UnfinishedToolCalls(events);
  ASSERT_EQ(endings.size(), 1u);
  EXPECT_EQ(endings[0].ending.tool.id, "call_new");
  EXPECT_EQ(endings[0].ending.tool.status, ToolStatus::kFailed);
  EXPECT_FALSE(endings[0].started);
  EXPECT_EQ(endings[0].ending.tool.content[0].text,
            "Not run: lapce-ai stopped while this awaited approval.");
  // Once past pending (approved, running), the call counts as started.
  std::vector<StoredEvent> running = events;
  running.push_back(call("call_new", ToolStatus::kInProgress));
  endings = UnfinishedToolCalls(running);
  ASSERT_EQ(endings.size(), 1u);
  EXPECT_TRUE(endings[0].started);
  EXPECT_EQ(endings[0].ending.tool.content[0].text,
            "Interrupted: lapce-ai stopped before this finished.");

  events.push_back({0, 0, "message", "{}"});
  events.push_back(text("the parent's own words"));
  std::optional<llm::Message> unfinished = UnfinishedReply(events);
  ASSERT_TRUE(unfinished.has_value());
  EXPECT_TRUE(unfinished->parts[0].text.starts_with("the parent's own words"))
      << unfinished->parts[0].text;

  // A context change is shown as a call that ends at once: words after it are the reply's (they
  // were lost when the engine was killed after a condense).
  events.push_back({0, 0, "message", "{}"});
  events.push_back(call("condense_1", std::nullopt));
  events.push_back(call("condense_1", ToolStatus::kCompleted));
  events.push_back(text("Step 5"));
  unfinished = UnfinishedReply(events);
  ASSERT_TRUE(unfinished.has_value());
  EXPECT_TRUE(unfinished->parts[0].text.starts_with("Step 5")) << unfinished->parts[0].text;
}

// ---- 11. Many sessions at once -----------------------------------------------------------------

TEST_F(SessionTest, TwentySessionsRunConcurrently) {
  constexpr int kSessions = 20;
  std::vector<std::string> names;
  for (int i = 0; i < kSessions; ++i) names.push_back("s" + std::to_string(i));
  Engine& engine = MakeEngine(MakePool(names));
  std::vector<std::shared_ptr<Session>> sessions;
  for (const std::string& name : names) {
    sessions.push_back(NewSession(engine, name));
    Enqueue(OpenAiToolCall("call_r", "read_file", ReadArgs("src.txt")), name);
    Enqueue(OpenAiToolCall("call_c", "attempt_completion", CompletionArgs("done " + name)), name);
  }
  for (const auto& session : sessions) {  // Ids are 24 hex digits, whatever the random part.
    EXPECT_EQ(session->id().size(), 24u) << session->id();
    EXPECT_EQ(session->id().find_first_not_of("0123456789abcdef"), std::string::npos);
  }

  std::mutex mutex;
  std::condition_variable all_done;
  int finished = 0;
  std::vector<Result<StopReason>> stops(kSessions, Error(ErrorCode::kInternal, "not run"));
  std::vector<TestClient> clients(kSessions);
  std::vector<std::thread> threads;
  for (int i = 0; i < kSessions; ++i) {
    threads.emplace_back([&, i] {
      Result<StopReason> stop = sessions[i]->Prompt("Read src.txt", clients[i]);
      std::lock_guard lock(mutex);
      stops[i] = std::move(stop);
      ++finished;
      all_done.notify_one();
    });
  }
  {
    std::unique_lock lock(mutex);
    if (!all_done.wait_for(lock, 20s, [&] { return finished == kSessions; })) {
      ADD_FAILURE() << finished << " of " << kSessions << " sessions finished in time";
      lock.unlock();
      for (const std::shared_ptr<Session>& session : sessions) session->Cancel();
    }
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kSessions; ++i) {
    ASSERT_TRUE(stops[i].ok()) << i << ": " << stops[i].error().ToString();
    EXPECT_EQ(*stops[i], StopReason::kEndTurn) << i;
    EXPECT_EQ(sessions[i]->Info().totals.requests, 2) << i;
    EXPECT_NE(clients[i].AgentText().find("done " + names[i]), std::string::npos) << i;
  }
  EXPECT_EQ(server_->requests().size(), 2u * kSessions);
  Result<std::vector<SessionRecord>> stored = store_->ListSessions();
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->size(), static_cast<size_t>(kSessions));
  for (const SessionRecord& record : *stored) {
    EXPECT_EQ(record.status, SessionStatus::kCompleted) << record.id;
  }
}

}  // namespace
}  // namespace lai::agent
