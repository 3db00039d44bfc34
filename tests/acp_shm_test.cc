// An agent session over the shared-memory transport: `lapce-ai serve` (a real process) with the
// fake provider, driven by an rpc::Peer on an rpc::ShmClientTransport channel — the same ACP
// messages `lapce-ai acp` speaks on stdio: initialize, session/new, session/prompt with a tool
// call and a permission request, session/update notifications, an unknown method.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ipc/client.h"
#include "rpc/peer.h"
#include "rpc/shm_transport.h"
#include "run_process.h"
#include "server/services.h"
#include "testing/fake_provider_server.h"
#include "testing/scripted_model.h"

namespace lai {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

// `lapce-ai serve` on a socket in `dir`, stopped (SIGTERM) on destruction.
class ServeProcess {
 public:
  ServeProcess(const std::string& dir, const std::string& base_url,
               const std::vector<std::string>& extra = {})
      : socket_(dir + "/engine.sock"),
        server_(
            Args({LAPCE_AI_BIN, "serve", "--socket", socket_, "--metrics-addr", "", "--provider",
                  "openai", "--model", "gpt-4o", "--base-url", base_url + "/v1"},
                 extra),
            {"HOME=" + dir, "XDG_CONFIG_HOME=" + dir + "/config", "XDG_DATA_HOME=" + dir + "/data",
             "XDG_RUNTIME_DIR=" + dir, "OPENAI_API_KEY=test", "PATH=/usr/bin:/bin"},
            dir + "/server.log", milliseconds(15'000)) {}
  bool is_ready() const { return server_.is_ready(); }
  const std::string& socket() const { return socket_; }
  std::string log() const { return server_.log(); }
  int Stop() { return server_.Stop(); }  // SIGTERM; the wait status.

 private:
  static std::vector<std::string> Args(std::vector<std::string> args,
                                       const std::vector<std::string>& extra) {
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  std::string socket_;
  test::ServerProcess server_;
};

// Collects the session/update notifications; answers permission requests with allow-once.
struct Client {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<Json> updates;
  int permission_requests = 0;

  void Install(rpc::Peer& peer) {
    peer.HandleNotification("session/update", [this](std::string_view params) {
      std::lock_guard lock(mutex);
      updates.push_back(Json::parse(params));
      changed.notify_all();
    });
    peer.HandleRequest("session/request_permission", [this](std::string_view params,
                                                            const rpc::RequestContext&) {
      Json request = Json::parse(params);
      EXPECT_TRUE(request.contains("toolCall"));
      EXPECT_TRUE(request["options"].is_array());
      std::lock_guard lock(mutex);
      ++permission_requests;
      return Result<std::string>(R"({"outcome":{"outcome":"selected","optionId":"allow-once"}})");
    });
  }
  std::vector<std::string> Kinds() {
    std::lock_guard lock(mutex);
    std::vector<std::string> kinds;
    for (const Json& update : updates) kinds.push_back(update["update"]["sessionUpdate"]);
    return kinds;
  }
};

// `lapce-ai serve` in a temporary directory with the fake provider, and an rpc::Peer connected
// to it over a shared-memory channel.
class AcpShmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<testing::FakeProviderServer>> started =
        testing::FakeProviderServer::Start();
    ASSERT_TRUE(started.ok()) << started.error().message();
    fake_ = std::move(*started);
    char dir_template[] = "/tmp/lai-acp-shm.XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    workspace_ = dir_ + "/ws";
    std::filesystem::create_directories(workspace_);
    timeout_.timeout = std::chrono::seconds(15);
  }
  void TearDown() override {
    Disconnect();
    std::filesystem::remove_all(dir_);
  }

  // `max_message_bytes`: the largest message this client takes (0: the default).
  void Connect(uint32_t max_message_bytes = 0, const std::vector<std::string>& serve_args = {}) {
    serve_.emplace(dir_, fake_->base_url(), serve_args);
    ASSERT_TRUE(serve_->is_ready()) << serve_->log();
    ipc::ClientOptions options;
    options.socket_path = serve_->socket();
    if (max_message_bytes != 0) options.stream.max_message_bytes = max_message_bytes;
    Result<std::unique_ptr<rpc::ShmClientTransport>> transport =
        rpc::ShmClientTransport::Connect(options, server::ToWire(server::ServiceType::kRpcOpen),
                                         server::ToWire(server::ServiceType::kRpcMessage));
    ASSERT_TRUE(transport.ok()) << transport.error().message() << "\n" << serve_->log();
    transport_ = std::move(*transport);
    peer_.emplace(*transport_);
    client_.Install(*peer_);
    transport_->Start(*peer_);
    Result<std::string> init =
        peer_->Request("initialize", R"({"protocolVersion":1,"clientCapabilities":{}})", timeout_);
    ASSERT_TRUE(init.ok()) << init.error().message() << "\n" << serve_->log();
    EXPECT_EQ(Json::parse(*init)["protocolVersion"], 1);
  }
  // Closes the channel and stops the server (idempotent).
  void Disconnect() {
    if (transport_) transport_->Close();
    peer_.reset();
    transport_.reset();
    serve_.reset();
  }
  Result<std::string> Request(std::string_view method, const Json& params) {
    return peer_->Request(method, params.dump(), timeout_);
  }
  std::string Log() const { return serve_ ? serve_->log() : ""; }
  // Connects, opens a session in the workspace and sends it `text`; the turn ends normally.
  void PromptInANewSession(const std::string& text) {
    ASSERT_NO_FATAL_FAILURE(Connect());
    Result<std::string> created =
        Request("session/new", {{"cwd", workspace_}, {"mcpServers", Json::array()}});
    ASSERT_TRUE(created.ok()) << created.error().message() << "\n" << Log();
    Json prompt = {{"sessionId", Json::parse(*created)["sessionId"]},
                   {"prompt", {{{"type", "text"}, {"text", text}}}}};
    Result<std::string> stop = Request("session/prompt", prompt);
    ASSERT_TRUE(stop.ok()) << stop.error().message() << "\n" << Log();
  }

  std::unique_ptr<testing::FakeProviderServer> fake_;
  std::string dir_;
  std::string workspace_;
  std::optional<ServeProcess> serve_;
  std::unique_ptr<rpc::ShmClientTransport> transport_;
  std::optional<rpc::Peer> peer_;
  Client client_;
  rpc::RequestOptions timeout_;
};

constexpr const char* kChatPath = "/v1/chat/completions";

TEST_F(AcpShmTest, SessionOverSharedMemory) {
  fake_->Enqueue(kChatPath,
                 testing::OpenAiToolCall("call_1", "write_to_file",
                                         R"({"path":"out.txt","content":"hi\n","line_count":1})",
                                         "Writing the file."));
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_2", "attempt_completion",
                                                    R"({"result":"Wrote out.txt."})"));
  ASSERT_NO_FATAL_FAILURE(Connect());

  Result<std::string> created =
      Request("session/new", {{"cwd", workspace_}, {"mcpServers", Json::array()}});
  ASSERT_TRUE(created.ok()) << created.error().message() << "\n" << Log();
  std::string session_id = Json::parse(*created)["sessionId"];
  EXPECT_FALSE(session_id.empty());

  Json prompt = {{"sessionId", session_id},
                 {"prompt", {{{"type", "text"}, {"text", "write hi to out.txt"}}}}};
  Result<std::string> stop = Request("session/prompt", prompt);
  ASSERT_TRUE(stop.ok()) << stop.error().message() << "\n" << Log();
  EXPECT_EQ(Json::parse(*stop)["stopReason"], "end_turn");
  EXPECT_EQ(ReadFile(workspace_ + "/out.txt"), "hi\n");
  EXPECT_EQ(client_.permission_requests, 1);  // The write; `serve` was not given --yes.

  // Updates arrive before the prompt's answer, in order.
  std::vector<std::string> kinds = client_.Kinds();
  auto position = [&](const std::string& kind) {
    return std::find(kinds.begin(), kinds.end(), kind) - kinds.begin();
  };
  ASSERT_LT(position("agent_message_chunk"), static_cast<long>(kinds.size()));
  ASSERT_LT(position("tool_call"), static_cast<long>(kinds.size()));
  EXPECT_LT(position("tool_call"), position("tool_call_update"));
  bool has_diff = false;
  {
    std::lock_guard lock(client_.mutex);
    for (const Json& update : client_.updates) {
      EXPECT_EQ(update["sessionId"], session_id);
      const Json& body = update["update"];
      if (body["sessionUpdate"] == "tool_call_update" && body.contains("content")) {
        for (const Json& content : body["content"]) has_diff |= content["type"] == "diff";
      }
    }
  }
  EXPECT_TRUE(has_diff);

  Result<std::string> unknown = Request("_lapce/unknown", Json::object());
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message().find("-32601"), std::string::npos)
      << unknown.error().message();

  Result<std::string> listed = Request("_lapce/sessions/list", Json::object());
  ASSERT_TRUE(listed.ok()) << listed.error().message();
  EXPECT_EQ(Json::parse(*listed)["sessions"][0]["sessionId"], session_id);
  Disconnect();
  EXPECT_EQ(fake_->requests().size(), 2u);
}

// An editor without a terminal (no clientCapabilities.terminal) sees a command's output in the
// call's card as it comes: it saw nothing until the command ended.
TEST_F(AcpShmTest, ACommandsOutputIsShownAsItComes) {
  fake_->Enqueue(kChatPath,
                 testing::OpenAiToolCall("call_1", "execute_command",
                                         R"({"command":"echo first; sleep 0.7; echo second"})"));
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_2", "attempt_completion",
                                                    R"({"result":"Ran it."})"));
  ASSERT_NO_FATAL_FAILURE(PromptInANewSession("run it"));
  std::vector<std::string> shown;  // The text of each of call_1's updates, in order.
  {
    std::lock_guard lock(client_.mutex);
    for (const Json& update : client_.updates) {
      const Json& body = update["update"];
      if (body["sessionUpdate"] != "tool_call_update" || body["toolCallId"] != "call_1" ||
          !body.contains("content")) {
        continue;
      }
      for (const Json& content : body["content"]) shown.push_back(content["content"]["text"]);
    }
  }
  ASSERT_GE(shown.size(), 2u) << Log();
  EXPECT_EQ(shown.front(), "first\n");  // While the command still ran.
  EXPECT_NE(shown.back().find("first\nsecond\n"), std::string::npos) << shown.back();
}

// A rate-limited request is said in the reply while it waits (only the log said it: an editor
// showed nothing for as long as the wait).
TEST_F(AcpShmTest, ARetryIsSaidInTheReply) {
  testing::FakeResponse limited =
      testing::MakeResponse(429, R"({"error":{"message":"slow down","type":"requests"}})");
  limited.headers.push_back({"retry-after-ms", "5"});
  fake_->Enqueue(kChatPath, limited);
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_1", "attempt_completion",
                                                    R"({"result":"Done."})", "Here."));
  ASSERT_NO_FATAL_FAILURE(PromptInANewSession("go"));
  std::string said;
  {
    std::lock_guard lock(client_.mutex);
    for (const Json& update : client_.updates) {
      const Json& body = update["update"];
      if (body["sessionUpdate"] == "agent_message_chunk") said += body["content"]["text"];
    }
  }
  EXPECT_TRUE(
      said.starts_with("(429 from openai: rate limited (slow down); retry after 5 ms; "
                       "retrying in 5 ms (attempt 2 of 5).)\n\nHere."))
      << said;
}

// `serve` stopped (SIGTERM) while a turn runs: the turn is cancelled and the prompt answered
// "cancelled" before the connection closes (the editor waited for an answer that never came).
TEST_F(AcpShmTest, AServerStoppedMidTurnAnswersThePromptCancelled) {
  fake_->Enqueue(kChatPath, testing::OpenAiStalledText("Thinking about it. And more. And more.",
                                                       milliseconds(30'000)));
  ASSERT_NO_FATAL_FAILURE(Connect());
  Result<std::string> created =
      Request("session/new", {{"cwd", workspace_}, {"mcpServers", Json::array()}});
  ASSERT_TRUE(created.ok()) << created.error().message() << "\n" << Log();
  Json prompt = {{"sessionId", Json::parse(*created)["sessionId"]},
                 {"prompt", {{{"type", "text"}, {"text", "think"}}}}};
  std::future<Result<std::string>> answer =
      std::async(std::launch::async, [&] { return Request("session/prompt", prompt); });
  {
    std::unique_lock lock(client_.mutex);
    ASSERT_TRUE(client_.changed.wait_for(lock, milliseconds(15'000), [&] {
      return std::any_of(client_.updates.begin(), client_.updates.end(), [](const Json& u) {
        return u["update"]["sessionUpdate"] == "agent_message_chunk";
      });
    })) << Log();
  }
  int status = serve_->Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << Log();
  Result<std::string> stop = answer.get();
  ASSERT_TRUE(stop.ok()) << stop.error().message() << "\n" << Log();
  EXPECT_EQ(Json::parse(*stop)["stopReason"], "cancelled");
}

// An edit whose diff is larger than the client's connection takes is asked about without the
// diff (the question was lost with the channel, and the session hung); the update that would
// carry it is left out, and the session goes on.
TEST_F(AcpShmTest, AnEditTooLargeForTheConnectionIsAskedWithoutItsDiff) {
  const std::string content(100'000, 'x');
  fake_->Enqueue(kChatPath,
                 testing::OpenAiToolCall(
                     "call_1", "write_to_file",
                     Json{{"path", "big.txt"}, {"content", content}, {"line_count", 1}}.dump()));
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_2", "attempt_completion",
                                                    R"({"result":"Wrote big.txt."})"));
  ASSERT_NO_FATAL_FAILURE(Connect(64 * 1024));
  Result<std::string> created =
      Request("session/new", {{"cwd", workspace_}, {"mcpServers", Json::array()}});
  ASSERT_TRUE(created.ok()) << created.error().message() << "\n" << Log();
  std::string session_id = Json::parse(*created)["sessionId"];
  Json prompt = {{"sessionId", session_id},
                 {"prompt", {{{"type", "text"}, {"text", "write a big file"}}}}};
  Result<std::string> stop = Request("session/prompt", prompt);
  ASSERT_TRUE(stop.ok()) << stop.error().message() << "\n" << Log();
  EXPECT_EQ(Json::parse(*stop)["stopReason"], "end_turn");
  EXPECT_EQ(client_.permission_requests, 1) << Log();
  EXPECT_TRUE(ReadFile(workspace_ + "/big.txt") == content) << "big.txt was not written";
  // Its card began and ended (the updates were too large, and were lost: it spun for ever).
  bool began = false, ended = false;
  {
    std::lock_guard lock(client_.mutex);
    for (const Json& update : client_.updates) {
      const Json& body = update["update"];
      if (body.value("toolCallId", "") != "call_1") continue;
      began |= body["sessionUpdate"] == "tool_call";
      ended |= body.value("status", "") == "completed";
    }
  }
  EXPECT_TRUE(began);
  EXPECT_TRUE(ended);
  Result<std::string> listed = Request("_lapce/sessions/list", Json::object());
  EXPECT_TRUE(listed.ok()) << listed.error().message();
}

// Text larger than the client's connection takes arrives in pieces that fit, whole, live and by
// session/load (it was left out: the completion's result never reached the editor).
TEST_F(AcpShmTest, TextTooLargeForTheConnectionArrivesInPieces) {
  std::string result;
  for (int i = 0; result.size() < 150'000; ++i) result += "line " + std::to_string(i) + " é\n";
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_1", "attempt_completion",
                                                    Json{{"result", result}}.dump()));
  ASSERT_NO_FATAL_FAILURE(Connect(64 * 1024));
  Result<std::string> created =
      Request("session/new", {{"cwd", workspace_}, {"mcpServers", Json::array()}});
  ASSERT_TRUE(created.ok()) << created.error().message() << "\n" << Log();
  std::string session_id = Json::parse(*created)["sessionId"];
  Json prompt = {{"sessionId", session_id}, {"prompt", {{{"type", "text"}, {"text", "say it"}}}}};
  Result<std::string> stop = Request("session/prompt", prompt);
  ASSERT_TRUE(stop.ok()) << stop.error().message() << "\n" << Log();
  auto shown_text = [&] {
    std::string text;
    std::lock_guard lock(client_.mutex);
    for (const Json& update : client_.updates) {
      const Json& body = update["update"];
      if (body["sessionUpdate"] == "agent_message_chunk") text += body["content"]["text"];
    }
    client_.updates.clear();
    return text;
  };
  EXPECT_NE(shown_text().find(result), std::string::npos) << Log();
  Disconnect();
  ASSERT_NO_FATAL_FAILURE(Connect(64 * 1024));
  Result<std::string> loaded =
      Request("session/load",
              {{"sessionId", session_id}, {"cwd", workspace_}, {"mcpServers", Json::array()}});
  ASSERT_TRUE(loaded.ok()) << loaded.error().message() << "\n" << Log();
  EXPECT_NE(shown_text().find(result), std::string::npos) << Log();
}

// A command larger than the client's connection takes is shown and asked about with its title
// cut (the title is the command: the card never came, and the model was told the user said no).
TEST_F(AcpShmTest, ACommandTooLargeForTheConnectionIsStillAskedAbout) {
  const std::string command = "echo " + std::string(100'000, 'x') + " > /dev/null";
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_1", "execute_command",
                                                    Json{{"command", command}}.dump()));
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_2", "attempt_completion",
                                                    R"({"result":"Ran it."})"));
  ASSERT_NO_FATAL_FAILURE(Connect(64 * 1024));
  Result<std::string> created =
      Request("session/new", {{"cwd", workspace_}, {"mcpServers", Json::array()}});
  ASSERT_TRUE(created.ok()) << created.error().message() << "\n" << Log();
  Json prompt = {{"sessionId", Json::parse(*created)["sessionId"]},
                 {"prompt", {{{"type", "text"}, {"text", "run it"}}}}};
  Result<std::string> stop = Request("session/prompt", prompt);
  ASSERT_TRUE(stop.ok()) << stop.error().message() << "\n" << Log();
  EXPECT_EQ(client_.permission_requests, 1) << Log();
  bool carded = false;
  {
    std::lock_guard lock(client_.mutex);
    for (const Json& update : client_.updates) {
      const Json& body = update["update"];
      if (body["sessionUpdate"] == "tool_call" && body.value("toolCallId", "") == "call_1") {
        carded = body.value("title", "").ends_with("…");
      }
    }
  }
  EXPECT_TRUE(carded) << Log();
  std::string result = fake_->requests()[1].body;
  EXPECT_EQ(result.find("denied"), std::string::npos) << result.substr(0, 2000);
}

// `serve` takes the agent's --mode and --tool-protocol, as `acp` does (it refused them).
TEST_F(AcpShmTest, ServeTakesTheAgentsModeAndToolProtocol) {
  fake_->Enqueue(
      kChatPath,
      testing::OpenAiText("<attempt_completion><result>Asked.</result></attempt_completion>"));
  ASSERT_NO_FATAL_FAILURE(Connect(0, {"--mode", "ask", "--tool-protocol", "xml"}));
  Result<std::string> created =
      Request("session/new", {{"cwd", workspace_}, {"mcpServers", Json::array()}});
  ASSERT_TRUE(created.ok()) << created.error().message() << "\n" << Log();
  Json session = Json::parse(*created);
  EXPECT_EQ(session["modes"]["currentModeId"], "ask") << session.dump();
  Json prompt = {{"sessionId", session["sessionId"]},
                 {"prompt", {{{"type", "text"}, {"text", "what is this?"}}}}};
  Result<std::string> stop = Request("session/prompt", prompt);
  ASSERT_TRUE(stop.ok()) << stop.error().message() << "\n" << Log();
  EXPECT_EQ(Json::parse(*stop)["stopReason"], "end_turn");
  ASSERT_EQ(fake_->requests().size(), 1u);
  Json body = Json::parse(fake_->requests()[0].body);
  EXPECT_FALSE(body.contains("tools")) << "XML tool calls: no native tools are sent";
}

// Each editor connection has its own sessions: another connection can neither prompt one nor
// load it while it is open (two windows wrote one history), and once its connection closes the
// session is given up (its lock went only with the server) and another connection may load it.
TEST_F(AcpShmTest, SessionsBelongToTheConnectionThatOpenedThem) {
  fake_->Enqueue(kChatPath,
                 testing::OpenAiToolCall("call_1", "attempt_completion", R"({"result":"Hello."})"));
  ASSERT_NO_FATAL_FAILURE(Connect());
  Result<std::string> created =
      Request("session/new", {{"cwd", workspace_}, {"mcpServers", Json::array()}});
  ASSERT_TRUE(created.ok()) << created.error().message() << "\n" << Log();
  std::string session_id = Json::parse(*created)["sessionId"];
  Json hello = {{"sessionId", session_id}, {"prompt", {{{"type", "text"}, {"text", "hello"}}}}};
  ASSERT_TRUE(Request("session/prompt", hello).ok()) << Log();
  // A session opened and never prompted is not kept when its connection closes.
  Result<std::string> unused =
      Request("session/new", {{"cwd", workspace_}, {"mcpServers", Json::array()}});
  ASSERT_TRUE(unused.ok()) << unused.error().message();
  std::string unused_id = Json::parse(*unused)["sessionId"];

  ipc::ClientOptions options;
  options.socket_path = serve_->socket();
  Result<std::unique_ptr<rpc::ShmClientTransport>> second =
      rpc::ShmClientTransport::Connect(options, server::ToWire(server::ServiceType::kRpcOpen),
                                       server::ToWire(server::ServiceType::kRpcMessage));
  ASSERT_TRUE(second.ok()) << second.error().message();
  rpc::Peer other(**second);
  Client other_client;
  other_client.Install(other);
  (*second)->Start(other);
  ASSERT_TRUE(
      other.Request("initialize", R"({"protocolVersion":1,"clientCapabilities":{}})", timeout_)
          .ok());
  Json prompt = {{"sessionId", session_id}, {"prompt", {{{"type", "text"}, {"text", "hi"}}}}};
  Result<std::string> foreign = other.Request("session/prompt", prompt.dump(), timeout_);
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.error().message().find("on this connection"), std::string::npos)
      << foreign.error().message();
  // Nor cancel its running turn (a notification: nothing is answered, and the turn goes on).
  testing::ScriptedTurn slow;
  slow.text = "one two three four five six";
  slow.text_chunks = 6;
  slow.calls = {{"call_2", "attempt_completion", R"({"result":"Still mine."})"}};
  testing::FakeResponse response = testing::OpenAiTurn(slow);
  response.fault.chunk_delay = milliseconds(100);
  fake_->Enqueue(kChatPath, response);
  std::promise<Result<std::string>> running;
  peer_->RequestAsync("session/prompt", hello.dump(),
                      [&running](Result<std::string> done) { running.set_value(std::move(done)); });
  std::this_thread::sleep_for(milliseconds(250));
  ASSERT_TRUE(other.Notify("session/cancel", Json{{"sessionId", session_id}}.dump()).ok());
  Result<std::string> still = running.get_future().get();
  ASSERT_TRUE(still.ok()) << still.error().message();
  EXPECT_EQ(Json::parse(*still)["stopReason"], "end_turn");
  Json load = {{"sessionId", session_id}, {"cwd", workspace_}, {"mcpServers", Json::array()}};
  Result<std::string> taken = other.Request("session/load", load.dump(), timeout_);
  ASSERT_FALSE(taken.ok());
  EXPECT_NE(taken.error().message().find("open in another editor connection"), std::string::npos)
      << taken.error().message();
  // As for a session open in another process (-32603), not "authentication required" (-32000).
  EXPECT_NE(taken.error().message().find("JSON-RPC error -32603"), std::string::npos)
      << taken.error().message();

  transport_->Close();  // The first window closes.
  // Not from another project's window: its edits would land in this workspace.
  std::filesystem::create_directories(dir_ + "/other");
  Json elsewhere = {
      {"sessionId", session_id}, {"cwd", dir_ + "/other"}, {"mcpServers", Json::array()}};
  Result<std::string> wrong = Error(ErrorCode::kUnavailable, "not tried");
  for (int attempt = 0; attempt < 200; ++attempt) {  // The first window's teardown is async.
    wrong = other.Request("session/load", elsewhere.dump(), timeout_);
    if (wrong.ok() || wrong.error().message().find("belongs to workspace") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message().find("belongs to workspace " + workspace_), std::string::npos)
      << wrong.error().message();
  Result<std::string> loaded = Error(ErrorCode::kUnavailable, "not tried");
  for (int attempt = 0; attempt < 200 && !loaded.ok(); ++attempt) {  // Its teardown is async.
    loaded = other.Request("session/load", load.dump(), timeout_);
    if (!loaded.ok()) std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_TRUE(loaded.ok()) << loaded.error().message() << "\n" << Log();
  Json listed = Json::parse(*other.Request("_lapce/sessions/list", "{}", timeout_));
  ASSERT_EQ(listed["sessions"].size(), 1u) << listed.dump();
  EXPECT_EQ(listed["sessions"][0]["sessionId"], session_id);
  EXPECT_NE(unused_id, session_id);
  (*second)->Close();
}

// session/new with an MCP server (tests' own stdio server): the model sees its tools as functions
// and in the system prompt, calls one after the user allows it, and reads the answer.
// A malformed mcpServers entry is refused with -32602 naming the field.
TEST_F(AcpShmTest, ModelUsesAnMcpServersTool) {
  fake_->Enqueue(kChatPath,
                 testing::OpenAiToolCall("call_1", "mcp--fake--echo", R"({"text":"ping"})"));
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_2", "attempt_completion",
                                                    R"({"result":"Echoed."})"));
  // The user's own server (mcp.json beside config.toml) joins the client's; one the client
  // replaces (same name) is not started at all (it was, and ran for the whole connection).
  std::filesystem::create_directories(dir_ + "/config/lapce-ai");
  std::ofstream(dir_ + "/config/lapce-ai/mcp.json")
      << Json{{"mcpServers",
               {{"mine", {{"command", FAKE_MCP_BIN}}},
                {"fake", {{"command", "/nonexistent/replaced-by-the-client"}}}}}}
             .dump();
  ASSERT_NO_FATAL_FAILURE(Connect());

  Result<std::string> refused =
      Request("session/new",
              {{"cwd", workspace_}, {"mcpServers", {{{"name", "fake"}, {"args", Json::array()}}}}});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("mcpServers[0].command"), std::string::npos)
      << refused.error().message();
  EXPECT_NE(refused.error().message().find("-32602"), std::string::npos);

  Json servers = {{{"name", "fake"},
                   {"command", FAKE_MCP_BIN},
                   {"args", Json::array()},
                   {"env", {{{"name", "FAKE_MCP_MARK"}, {"value", "1"}}}}}};
  Result<std::string> created =
      Request("session/new", {{"cwd", workspace_}, {"mcpServers", servers}});
  ASSERT_TRUE(created.ok()) << created.error().message() << "\n" << Log();
  std::string session_id = Json::parse(*created)["sessionId"];

  Json prompt = {{"sessionId", session_id},
                 {"prompt", {{{"type", "text"}, {"text", "echo ping with the MCP server"}}}}};
  Result<std::string> stop = Request("session/prompt", prompt);
  ASSERT_TRUE(stop.ok()) << stop.error().message() << "\n" << Log();
  EXPECT_EQ(Json::parse(*stop)["stopReason"], "end_turn");
  EXPECT_EQ(client_.permission_requests, 1);  // The MCP call; `serve` was not given --yes.
  bool saw_call = false;
  {
    std::lock_guard lock(client_.mutex);
    for (const Json& update : client_.updates) {
      const Json& body = update["update"];
      saw_call |= body["sessionUpdate"] == "tool_call" && body.value("title", "") == "fake: echo";
    }
  }
  EXPECT_TRUE(saw_call);
  EXPECT_EQ(Log().find("replaced-by-the-client"), std::string::npos) << Log();
  Disconnect();
  std::vector<testing::RecordedRequest> requests = fake_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_NE(requests[0].body.find("MCP SERVERS"), std::string::npos);
  EXPECT_NE(requests[0].body.find("## fake"), std::string::npos);
  EXPECT_NE(requests[0].body.find("## mine"), std::string::npos);
  EXPECT_NE(requests[0].body.find("\"name\":\"mcp--fake--echo\""), std::string::npos);
  EXPECT_NE(requests[0].body.find("access_mcp_resource"), std::string::npos);
  EXPECT_NE(requests[1].body.find("echo: ping"), std::string::npos);
}

}  // namespace
}  // namespace lai
