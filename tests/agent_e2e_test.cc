// End to end: `lapce-ai run` and `lapce-ai sessions …` against the fake provider server with
// scripted model turns, in a temporary git repository: a task that reads, edits, tests and
// completes (native and XML tool calls), a denial without --yes, kill -9 mid-stream and resume,
// Ctrl-C, export and delete, and usage errors.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "run_process.h"
#include "testing/fake_provider_server.h"
#include "testing/scripted_model.h"
#include "workspace/test_support.h"

namespace lai {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
using test::ProcessResult;
using workspace::testing::ProcessEnds;
using workspace::testing::WaitForPidFile;

constexpr const char* kChatPath = "/v1/chat/completions";

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// A child lapce-ai whose stdout is read while it runs, for the tests that signal it mid-turn.
// stdin is /dev/null-like (a closed pipe); stderr is collected.
class Child {
 public:
  // `keeps_input`: standard input stays open for Write() (else it is at its end at once).
  Child(std::vector<std::string> argv, std::vector<std::string> env, bool keeps_input = false) {
    int out_pipe[2], err_pipe[2], in_pipe[2];
    EXPECT_EQ(::pipe2(out_pipe, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(err_pipe, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(in_pipe, O_CLOEXEC), 0);
    std::vector<char*> c_argv = test::ExecStrings(argv);
    std::vector<char*> c_env = test::ExecStrings(env);
    pid_ = ::fork();
    if (pid_ == 0) {
      // No controlling terminal: the engine must not ask a developer's terminal (/dev/tty).
      ::setsid();
      ::dup2(in_pipe[0], 0);
      ::dup2(out_pipe[1], 1);
      ::dup2(err_pipe[1], 2);
      ::execve(c_argv[0], c_argv.data(), c_env.data());
      ::_exit(127);
    }
    ::close(in_pipe[0]);
    if (keeps_input) {
      in_fd_ = in_pipe[1];
    } else {
      ::close(in_pipe[1]);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    out_fd_ = out_pipe[0];
    err_fd_ = err_pipe[0];
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(out_fd_);
    ::close(err_fd_);
    if (in_fd_ >= 0) ::close(in_fd_);
  }
  void Write(std::string_view text) {
    ssize_t n = ::write(in_fd_, text.data(), text.size());
    (void)n;
  }

  // Reads until stdout contains `text`; false at the deadline or when the child closes stdout.
  bool WaitForOutput(const std::string& text, milliseconds timeout) {
    Clock::time_point deadline = Clock::now() + timeout;
    while (out_.find(text) == std::string::npos) {
      if (!ReadSome(deadline)) return false;
    }
    return true;
  }
  void Signal(int signal) { ::kill(pid_, signal); }
  // The reader of the child's stdout goes away, as `head` does.
  void CloseOutput() {
    ::close(out_fd_);
    out_fd_ = -1;
    out_open_ = false;
  }
  // Reads both pipes to their end and reaps the child; -1 when killed by a signal or at the
  // deadline (then SIGKILLed).
  int Wait(milliseconds timeout) {
    Clock::time_point deadline = Clock::now() + timeout;
    while (out_open_ || err_open_) {
      if (!ReadSome(deadline) && Clock::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        break;
      }
    }
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  bool ReadSome(Clock::time_point deadline) {
    if (!out_open_ && !err_open_) return false;
    int left =
        static_cast<int>(std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count());
    if (left <= 0) return false;
    pollfd fds[2] = {{out_open_ ? out_fd_ : -1, POLLIN, 0}, {err_open_ ? err_fd_ : -1, POLLIN, 0}};
    if (::poll(fds, 2, left) <= 0) return false;
    char buffer[4096];
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n <= 0) {
        (i == 0 ? out_open_ : err_open_) = false;
      } else {
        (i == 0 ? out_ : err_).append(buffer, static_cast<size_t>(n));
      }
    }
    return true;
  }

  pid_t pid_ = -1;
  int in_fd_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  bool out_open_ = true;
  bool err_open_ = true;
  bool reaped_ = false;
  std::string out_;
  std::string err_;
};

// The scripted task: src/add.sh subtracts instead of adding; test.sh checks it.
constexpr const char* kBuggyAdd = "#!/bin/sh\necho $(( $1 - $2 ))\n";
constexpr const char* kFixedAdd = "#!/bin/sh\necho $(( $1 + $2 ))\n";
constexpr const char* kTestScript =
    "#!/bin/sh\nif [ \"$(sh src/add.sh 2 3)\" = 5 ]; then echo 'add: PASS'; else echo 'add: "
    "FAIL'; exit 1; fi\n";
constexpr const char* kDiff =
    "<<<<<<< SEARCH\n:start_line:2\n-------\necho $(( $1 - $2 ))\n=======\necho $(( $1 + $2 "
    "))\n>>>>>>> REPLACE";
constexpr const char* kAnswer = "Fixed src/add.sh: it added nothing; now the test passes.";

// A child on a pseudo-terminal of its own (its controlling terminal), as from a user's shell:
// what it prints to stdout and stderr arrives on one screen; keys are typed into it.
class PtyChild {
 public:
  // `in_background`: as `… </dev/null &` from the terminal's shell: a process group of its own,
  // not the terminal's foreground, with standard input from /dev/null.
  // `output_file`: standard input from /dev/null and both outputs to this file (in the
  // foreground, unless `in_background`).
  PtyChild(std::vector<std::string> argv, std::vector<std::string> env, bool in_background = false,
           const std::string& output_file = "") {
    std::vector<char*> c_argv = test::ExecStrings(argv);
    std::vector<char*> c_env = test::ExecStrings(env);
    pid_ = ::forkpty(&master_, nullptr, nullptr, nullptr);
    if (pid_ == 0) {
      if (in_background) {
        // The session leader cannot leave its group: a child of it does, as a shell's job would.
        pid_t job = ::fork();
        if (job > 0) {
          int status = 0;
          ::waitpid(job, &status, 0);
          ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
        }
        ::setpgid(0, 0);
        int null = ::open("/dev/null", O_RDONLY);
        ::dup2(null, 0);
      }
      if (!output_file.empty()) {
        int null = ::open("/dev/null", O_RDONLY);
        int out = ::open(output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(null, 0);
        ::dup2(out, 1);
        ::dup2(out, 2);
      }
      ::execve(c_argv[0], c_argv.data(), c_env.data());
      ::_exit(127);
    }
  }
  ~PtyChild() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) ::close(master_);
  }
  // Reads until the screen, after what earlier waits found, shows `text`.
  bool WaitFor(const std::string& text, milliseconds timeout) {
    Clock::time_point deadline = Clock::now() + timeout;
    while (true) {
      if (size_t at = screen_.find(text, seen_); at != std::string::npos) {
        seen_ = at + text.size();
        return true;
      }
      if (!ReadSome(deadline)) return false;
    }
  }
  void Type(std::string_view keys) {
    ssize_t n = ::write(master_, keys.data(), keys.size());
    (void)n;
  }
  // The exit status once the child ends (-1 when killed by a signal, or at the deadline).
  int Wait(milliseconds timeout) {
    Clock::time_point deadline = Clock::now() + timeout;
    while (ReadSome(deadline)) {
    }
    if (Clock::now() >= deadline) ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  const std::string& screen() const { return screen_; }

 private:
  bool ReadSome(Clock::time_point deadline) {
    int left =
        static_cast<int>(std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count());
    pollfd ready = {master_, POLLIN, 0};
    if (left <= 0 || ::poll(&ready, 1, left) <= 0) return false;
    char buffer[4096];
    ssize_t n = ::read(master_, buffer, sizeof(buffer));
    if (n <= 0) return false;  // EIO: the child closed the terminal.
    screen_.append(buffer, static_cast<size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int master_ = -1;
  bool reaped_ = false;
  std::string screen_;
  size_t seen_ = 0;
};

class AgentE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<testing::FakeProviderServer>> fake =
        testing::FakeProviderServer::Start();
    ASSERT_TRUE(fake.ok()) << fake.error().message();
    fake_ = std::move(*fake);
    char home_template[] = "/tmp/lai-agent-e2e.XXXXXX";
    ASSERT_NE(::mkdtemp(home_template), nullptr);
    home_ = home_template;
    repo_ = home_ + "/repo";
    WriteFile(repo_ + "/src/add.sh", kBuggyAdd);
    WriteFile(repo_ + "/test.sh", kTestScript);
    WriteFile(repo_ + "/README.md", "A tiny project. Run `sh test.sh`.\n");
    ProcessResult init = test::RunProcess({"/usr/bin/git", "-C", repo_, "init", "-q"}, Env());
    ASSERT_EQ(init.exit_code, 0) << init.err;
  }
  void TearDown() override { std::filesystem::remove_all(home_); }

  // Exactly this environment: a private HOME and XDG directories, a dummy key.
  std::vector<std::string> Env() const {
    return {"HOME=" + home_,
            "XDG_CONFIG_HOME=" + home_ + "/.config",
            "XDG_DATA_HOME=" + home_ + "/.local/share",
            "XDG_RUNTIME_DIR=" + home_,
            "PATH=/usr/bin:/bin",
            "OPENAI_API_KEY=test"};
  }
  std::vector<std::string> Provider() const {
    return {"--provider", "openai", "--model", "gpt-4o", "--base-url", fake_->base_url() + "/v1"};
  }
  // `lapce-ai run <task> --cwd <repo> <provider> <extra…>`.
  std::vector<std::string> RunArgs(const std::string& task, std::vector<std::string> extra) const {
    std::vector<std::string> argv = {LAPCE_AI_BIN, "run", task, "--cwd", repo_};
    for (const std::string& a : Provider()) argv.push_back(a);
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }
  ProcessResult Lapce(std::vector<std::string> args) const {
    std::vector<std::string> argv = {LAPCE_AI_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::RunProcess(std::move(argv), Env());
  }
  ProcessResult Run(const std::string& task, std::vector<std::string> extra) const {
    return test::RunProcess(RunArgs(task, std::move(extra)), Env());
  }
  // A reply of `text` streamed in `chunks` pieces, 150 ms apart (time to kill the engine midway).
  void EnqueueSlowReply(const std::string& text, int chunks) {
    testing::ScriptedTurn slow;
    slow.text = text;
    slow.text_chunks = chunks;
    testing::FakeResponse response = testing::OpenAiTurn(slow);
    response.fault.chunk_delay = milliseconds(150);
    fake_->Enqueue(kChatPath, response);
  }

  // Initializes `acp` (an `acp` process) and opens a session in the repository: its id.
  std::string OpenAcpSession(Child& acp) {
    acp.Write(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1}})"
              "\n");
    acp.Write(Json{{"jsonrpc", "2.0"},
                   {"id", 2},
                   {"method", "session/new"},
                   {"params", {{"cwd", repo_}, {"mcpServers", Json::array()}}}}
                  .dump() +
              "\n");
    EXPECT_TRUE(acp.WaitForOutput("\"sessionId\"", milliseconds(15'000))) << acp.err();
    size_t at = acp.out().find("\"sessionId\":\"");
    if (at == std::string::npos) return {};
    at += 13;
    return acp.out().substr(at, acp.out().find('"', at) - at);
  }

  Json ListSessions() const {
    ProcessResult list = Lapce({"sessions", "list", "--json"});
    EXPECT_EQ(list.exit_code, 0) << list.err;
    Json parsed = Json::parse(list.out, nullptr, false);
    EXPECT_TRUE(parsed.is_array()) << list.out;
    return parsed;
  }
  // The request bodies the fake received, as JSON.
  std::vector<Json> RequestBodies() const {
    std::vector<Json> bodies;
    for (const testing::RecordedRequest& request : fake_->requests()) {
      bodies.push_back(Json::parse(request.body, nullptr, false));
    }
    return bodies;
  }

  // The model's next call: a command that writes its pid to cmd.pid and sleeps for 30 s.
  void EnqueueSleepingCommand() {
    fake_->Enqueue(kChatPath,
                   testing::OpenAiToolCall("call_1", "execute_command",
                                           R"({"command":"echo $$ > cmd.pid; exec sleep 30"})"));
  }

  // The model writes a.txt, then (told it was not approved) gives up.
  void EnqueueWriteThenGiveUp() {
    fake_->Enqueue(kChatPath,
                   testing::OpenAiToolCall("w1", "write_to_file",
                                           R"({"path":"a.txt","content":"A\n","line_count":1})"));
    fake_->Enqueue(kChatPath, testing::OpenAiToolCall("done", "attempt_completion",
                                                      R"({"result":"Could not write."})"));
  }

  void EnqueueFixTask() {
    fake_->Enqueue(kChatPath, testing::OpenAiToolCall(
                                  "call_1", "read_file",
                                  R"({"files":[{"path":"src/add.sh","line_ranges":null}]})",
                                  "Let me look at the code."));
    fake_->Enqueue(kChatPath,
                   testing::OpenAiToolCall("call_2", "apply_diff",
                                           Json{{"path", "src/add.sh"}, {"diff", kDiff}}.dump(),
                                           "It subtracts; fixing."));
    fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_3", "execute_command",
                                                      R"({"command":"sh test.sh","cwd":null})"));
    fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_4", "attempt_completion",
                                                      Json{{"result", kAnswer}}.dump()));
  }

  std::unique_ptr<testing::FakeProviderServer> fake_;
  std::string home_;
  std::string repo_;
};

TEST_F(AgentE2eTest, FixesTheTestWithNativeToolCalls) {
  EnqueueFixTask();
  ProcessResult run = Run("fix the test", {"--yes"});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(ReadFile(repo_ + "/src/add.sh"), kFixedAdd);
  // The answer and each tool call with its arguments; no terminal escapes into a pipe.
  EXPECT_NE(run.out.find(kAnswer), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("Let me look at the code."), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("Read src/add.sh"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("Edit src/add.sh"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("Run `sh test.sh`"), std::string::npos) << run.out;
  // The command's output is shown as it comes, and not again with its result.
  size_t pass = run.out.find("add: PASS");
  EXPECT_NE(pass, std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("add: PASS", pass + 1), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("Exit code: 0"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find('\033'), std::string::npos) << run.out;
  EXPECT_EQ(run.err.find('\033'), std::string::npos) << run.err;

  // Exactly the scripted requests, each answering the previous tool call with its result.
  std::vector<Json> bodies = RequestBodies();
  ASSERT_EQ(bodies.size(), 4u);
  EXPECT_TRUE(bodies[0].contains("tools")) << bodies[0].dump();
  EXPECT_NE(bodies[0].dump().find("fix the test"), std::string::npos);
  EXPECT_NE(bodies[1].dump().find("echo $(( $1 - $2 ))"), std::string::npos)
      << "read_file's result reaches the model";
  EXPECT_NE(bodies[3].dump().find("add: PASS"), std::string::npos)
      << "the test command's output reaches the model";

  Json sessions = ListSessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0]["status"], "completed");
  EXPECT_EQ(sessions[0]["workspace"], std::filesystem::canonical(repo_).string());
}

// The user's own MCP servers (mcp.json beside config.toml, Kilo Code's shape) in a terminal
// session; a broken mcp.json stops `run` with the file and the field named.
TEST_F(AgentE2eTest, RunUsesTheUsersMcpServers) {
  const std::string path = "/v1/chat/completions";
  fake_->Enqueue(path, testing::OpenAiToolCall("call_1", "use_mcp_tool",
                                               R"({"server_name":"fake","tool_name":"echo",)"
                                               R"("arguments":{"text":"from run"}})"));
  fake_->Enqueue(
      path, testing::OpenAiToolCall("call_2", "attempt_completion", R"({"result":"Echoed."})"));
  const std::string settings = home_ + "/.config/lapce-ai/mcp.json";
  WriteFile(settings, Json{{"mcpServers",
                            {{"fake", {{"command", FAKE_MCP_BIN}, {"args", Json::array()}}},
                             {"off", {{"command", "/nonexistent"}, {"disabled", true}}},
                             {"gone", {{"command", "/nonexistent/mcp"}}}}}}
                          .dump());
  ProcessResult run = Run("echo with the MCP server", {"--yes"});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("fake: echo"), std::string::npos) << run.out;
  // The server that did not start is said on stderr: stdout is the answer.
  EXPECT_EQ(run.out.find("MCP server 'gone'"), std::string::npos) << run.out;
  EXPECT_NE(run.err.find("(MCP server 'gone': start '/nonexistent/mcp': program not found.)\n"
                         "(Their tools are not available in this session.)\n"),
            std::string::npos)
      << run.err;
  std::vector<Json> bodies = RequestBodies();
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_NE(bodies[0].dump().find("## fake"), std::string::npos);
  EXPECT_NE(bodies[1].dump().find("echo: from run"), std::string::npos);

  WriteFile(settings, R"({"mcpServers": {"fake": {"command": "x", "args": "-y"}}})");
  ProcessResult broken = Run("anything", {"--yes"});
  EXPECT_EQ(broken.exit_code, 2);
  EXPECT_NE(broken.err.find(settings + ": mcpServers.fake.args: expected an array of strings"),
            std::string::npos)
      << broken.err;
}

// A missing key is said before the task starts (it failed at the first request, and the failed
// session stayed behind).
TEST_F(AgentE2eTest, RunWithoutTheProvidersKeySaysSoAndKeepsNoSession) {
  std::vector<std::string> env = Env();
  env.back() = "OPENAI_API_KEY=";
  ProcessResult run = test::RunProcess(RunArgs("hi", {"--yes"}), env);
  EXPECT_EQ(run.exit_code, 2) << run.out << run.err;
  EXPECT_EQ(run.err,
            "lapce-ai run: no API key for profile 'command-line' (openai): OPENAI_API_KEY is not "
            "set or empty; export it\n");
  EXPECT_TRUE(fake_->requests().empty());
  EXPECT_TRUE(ListSessions().empty());
}

TEST_F(AgentE2eTest, JsonPrintsOneEventPerLineEndingWithStop) {
  EnqueueFixTask();
  ProcessResult run = Run("fix the test", {"--yes", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::vector<Json> events;
  std::istringstream lines(run.out);
  std::string line;
  while (std::getline(lines, line)) {
    Json event = Json::parse(line, nullptr, false);
    ASSERT_TRUE(event.is_object()) << "not a JSON object: " << line;
    events.push_back(std::move(event));
  }
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["type"], "stop");
  EXPECT_EQ(events.back()["stopReason"], "end_turn");
  EXPECT_EQ(events.back()["usage"]["requests"], 4);
  std::string text;
  int tool_calls = 0;
  std::string output;  // The command's, as it came: before its call's result.
  for (const Json& event : events) {
    if (event["type"] == "output") {
      EXPECT_EQ(event["toolCallId"], "call_3");
      output += event["text"].get<std::string>();
    }
    if (event["type"] != "update") continue;
    const Json& update = event["update"];
    if (update["sessionUpdate"] == "tool_call_update" && update["toolCallId"] == "call_3" &&
        update.value("status", "") == "completed") {
      EXPECT_NE(output.find("add: PASS"), std::string::npos) << "no output before the result";
    }
    if (update["sessionUpdate"] == "agent_message_chunk") {
      text += update["content"]["text"].get<std::string>();
    }
    if (update["sessionUpdate"] == "tool_call") ++tool_calls;
  }
  EXPECT_NE(text.find(kAnswer), std::string::npos) << text;
  EXPECT_EQ(tool_calls, 3);
  EXPECT_EQ(fake_->requests().size(), 4u);
}

// Each model reply's text starts on its own line: "Writing." then, after the reply without a
// tool call is answered, "Done" — never "Writing.Done".
TEST_F(AgentE2eTest, TextOfSeparateRepliesIsNotRunTogether) {
  fake_->Enqueue(kChatPath, testing::OpenAiText("Writing."));
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_1", "attempt_completion",
                                                    R"({"result":"All written."})", "Done"));
  ProcessResult run = Run("write", {"--yes"});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("Writing.\nDone"), std::string::npos) << run.out;
  EXPECT_EQ(fake_->requests().size(), 2u);
}

// --yes does not reach past approvals.max_requests: the run stops there, saying so and how to
// go on (not that there was no terminal to ask on).
TEST_F(AgentE2eTest, TheApprovalRequestLimitStopsAYesRunSayingWhy) {
  EnqueueFixTask();
  ProcessResult run = Run("fix the test", {"--yes", "--set", "approvals.max_requests=1"});
  EXPECT_EQ(run.exit_code, 3) << "3: waits for the user; " << run.err;
  EXPECT_EQ(fake_->requests().size(), 1u);
  EXPECT_NE(run.out.find("Stopped: Reached the limit of 1 model request without asking "
                         "(approvals.max_requests)."),
            std::string::npos)
      << run.out;
  EXPECT_EQ(run.err.find("no terminal to ask on"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("`lapce-ai sessions resume "), std::string::npos) << run.err;
}

// A session run with a one-off --provider/--base-url is resumed with them, never with another
// provider: the hint names them, and a resume without them is refused before anything is sent
// (it went to the configured default, api.openai.com, with the whole conversation).
TEST_F(AgentE2eTest, AResumeUsesTheOneOffProviderOrNone) {
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("q1", "ask_followup_question",
                                                    R"({"question":"Which file?"})"));
  ProcessResult run = Run("tidy up", {"--yes"});
  ASSERT_EQ(run.exit_code, 3) << run.err;
  const std::string hint = "sessions resume ";
  size_t at = run.err.find(hint);
  ASSERT_NE(at, std::string::npos) << run.err;
  std::string id =
      run.err.substr(at + hint.size(), run.err.find(' ', at + hint.size()) - at - hint.size());
  EXPECT_NE(run.err.find(id + " --provider openai --model gpt-4o --base-url " + fake_->base_url() +
                         "/v1 \"your reply\""),
            std::string::npos)
      << run.err;

  ProcessResult bare = Lapce({"sessions", "resume", id, "a.txt", "--yes"});
  EXPECT_EQ(bare.exit_code, 2) << bare.err;
  EXPECT_NE(bare.err.find("one-off --provider/--model/--base-url"), std::string::npos) << bare.err;
  EXPECT_EQ(fake_->requests().size(), 1u) << "nothing is sent without the provider";

  fake_->Enqueue(kChatPath,
                 testing::OpenAiToolCall("c1", "attempt_completion", R"({"result":"Tidied."})"));
  std::vector<std::string> again = {"sessions", "resume", id, "a.txt", "--yes"};
  for (const std::string& a : Provider()) again.push_back(a);
  ProcessResult resumed = Lapce(again);
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(fake_->requests().size(), 2u);
}

// With configured profiles: a resume uses the session's profile, or the one --profile names
// (it used the configured default), and --model alone changes the model of the session's own
// profile (it changed the default's, which this session never used).
TEST_F(AgentE2eTest, AResumeUsesTheProfileItIsGiven) {
  const std::string base = fake_->base_url() + "/v1";
  std::filesystem::create_directories(home_ + "/.config/lapce-ai");
  {
    std::ofstream config(home_ + "/.config/lapce-ai/config.toml");
    config << "[llm]\ndefault_profile = \"main\"\n"
           << "[profiles.main]\nprovider = \"openai\"\nmodel = \"gpt-4o\"\nbase_url = \"" << base
           << "\"\n"
           << "[profiles.other]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\nbase_url = \""
           << base << "\"\n";
  }
  auto ask = [&] {
    fake_->Enqueue(kChatPath, testing::OpenAiToolCall("q", "ask_followup_question",
                                                      R"({"question":"Which?"})"));
  };
  auto last_model = [&] { return RequestBodies().back().value("model", ""); };
  ask();
  ProcessResult run = Lapce({"run", "task", "--cwd", repo_, "--profile", "other", "--yes"});
  ASSERT_EQ(run.exit_code, 3) << run.err;
  EXPECT_EQ(last_model(), "gpt-4o-mini");
  std::string id = ListSessions()[0]["id"];

  ask();
  ProcessResult stored = Lapce({"sessions", "resume", id, "a", "--yes"});
  EXPECT_EQ(stored.exit_code, 3) << stored.err;
  EXPECT_EQ(last_model(), "gpt-4o-mini") << "the session's own profile";

  ask();
  ProcessResult named = Lapce({"sessions", "resume", id, "b", "--yes", "--profile", "main"});
  EXPECT_EQ(named.exit_code, 3) << named.err;
  EXPECT_EQ(last_model(), "gpt-4o") << "the profile named";

  ask();
  ProcessResult model = Lapce({"sessions", "resume", id, "c", "--yes", "--model", "gpt-4.1"});
  EXPECT_EQ(model.exit_code, 3) << model.err;
  EXPECT_EQ(last_model(), "gpt-4.1");

  ProcessResult unknown = Lapce({"sessions", "resume", id, "d", "--yes", "--profile", "nosuch"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.err;
  EXPECT_NE(unknown.err.find("no profile 'nosuch'; the profiles are: "), std::string::npos)
      << unknown.err;
}

// An answer from a fallback profile is said where the answer is read (only a log line said it).
TEST_F(AgentE2eTest, AFallbackProfilesAnswerIsSaidInTheAnswer) {
  const std::string base = fake_->base_url();
  std::filesystem::create_directories(home_ + "/.config/lapce-ai");
  {
    std::ofstream config(home_ + "/.config/lapce-ai/config.toml");
    config << "[profiles.main]\nprovider = \"openai\"\nmodel = \"gpt-4o\"\nbase_url = \"" << base
           << "/main/v1\"\nfallback = \"spare\"\n"
           << "[profiles.spare]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\nbase_url = \""
           << base << "/spare/v1\"\n";
  }
  testing::FakeResponse busy = testing::MakeResponse(529, R"({"error":{"message":"busy"}})");
  busy.headers.push_back({"retry-after-ms", "1"});
  for (int attempt = 0; attempt < 10; ++attempt) fake_->Enqueue("/main/", busy);
  fake_->Enqueue("/spare/",
                 testing::OpenAiToolCall("r1", "read_file", R"({"path":"test.sh"})", "Reading."));
  fake_->Enqueue("/spare/",
                 testing::OpenAiToolCall("c1", "attempt_completion",
                                         R"({"result":"Done by the spare."})", "Almost there."));
  ProcessResult run = Lapce({"run", "task", "--cwd", repo_, "--yes", "--json"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  std::vector<std::string> texts;  // The agent's text chunks, in order.
  std::istringstream lines(run.out);
  for (std::string line; std::getline(lines, line);) {
    Json event = Json::parse(line, nullptr, false);
    if (event.value("type", "") != "update") continue;
    const Json& update = event["update"];
    if (update.value("sessionUpdate", "") == "agent_message_chunk") {
      texts.push_back(update["content"].value("text", ""));
    }
  }
  // The retries and the move to the fallback came first (--json had no word of them).
  ASSERT_FALSE(texts.empty()) << run.out;
  EXPECT_TRUE(texts[0].starts_with("(529 from openai")) << texts[0];
  auto notice = std::find(texts.begin(), texts.end(),
                          "\n\n(Profile 'main' was unavailable; this answer came from its fallback "
                          "'spare', model gpt-4o-mini.)");
  ASSERT_NE(notice, texts.end()) << run.out;
  // What is said next starts a paragraph of its own (it ran on after the notice's bracket).
  ASSERT_NE(notice + 1, texts.end()) << run.out;
  EXPECT_TRUE(notice[1].starts_with("\n\n")) << notice[1];
  // The transcript has it too, where it came (it is in no message).
  ProcessResult show = Lapce({"sessions", "show", ListSessions()[0]["id"].get<std::string>()});
  size_t quoted = show.out.find(
      "> **lapce-ai:** (Profile 'main' was unavailable; this answer "
      "came from its fallback 'spare', model gpt-4o-mini.)");
  ASSERT_NE(quoted, std::string::npos) << show.out;
  EXPECT_LT(show.out.find("Reading."), quoted) << show.out;
  // So are the retries and the move to the fallback, said while the user waited (an editor
  // showed them live, and a reloaded session lost them), before the answer.
  size_t retried = show.out.find("> **lapce-ai:** (529 from openai");
  EXPECT_LT(retried, show.out.find("Reading.")) << show.out;
  EXPECT_NE(show.out.find("its fallback 'spare' (openai gpt-4o-mini) answers instead"),
            std::string::npos)
      << show.out;
}

// A task in another encoding (Latin-1 bytes from a pipe or terminal) is sent with U+FFFD in
// place of the bad bytes; it aborted the process before anything was sent.
TEST_F(AgentE2eTest, ATaskThatIsNotUtf8IsSentWithReplacementCharacters) {
  fake_->Enqueue(kChatPath,
                 testing::OpenAiToolCall("c1", "attempt_completion", R"({"result":"Done."})"));
  ProcessResult run = Run("caf\xe9 \xff task", {"--yes"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  std::vector<Json> bodies = RequestBodies();
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_NE(bodies[0]["messages"].dump().find("caf\xef\xbf\xbd \xef\xbf\xbd task"),
            std::string::npos)
      << bodies[0]["messages"].dump();
  EXPECT_EQ(ListSessions()[0]["title"], "caf\xef\xbf\xbd \xef\xbf\xbd task");
}

// serve and acp refuse a --profile that names nothing, or a mix of flags, at once (serve ran on
// and failed every request; acp answered initialize and exited 0).
TEST_F(AgentE2eTest, ServeRefusesABadProfileAtOnceAndAcpEverySession) {
  ProcessResult serve =
      Lapce({"serve", "--socket", home_ + "/s.sock", "--metrics-addr", "", "--profile", "nosuch"});
  EXPECT_EQ(serve.exit_code, 2) << serve.err;
  EXPECT_NE(serve.err.find("--profile: no profile 'nosuch'; the profiles are: "), std::string::npos)
      << serve.err;
  // acp answers initialize (an editor shows its errors, not a dead agent's stderr), and refuses
  // every session with the problem.
  test::ProcessOptions options;
  options.input = R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1}})"
                  "\n"
                  R"({"jsonrpc":"2.0","id":2,"method":"session/new","params":{"cwd":")" +
                  repo_ + R"(","mcpServers":[]}})" + "\n";
  ProcessResult acp = test::RunProcess(
      {LAPCE_AI_BIN, "acp", "--profile", "x", "--provider", "openai"}, Env(), options);
  EXPECT_EQ(acp.exit_code, 0) << acp.err;
  EXPECT_NE(acp.err.find("--profile cannot be combined with --provider"), std::string::npos)
      << acp.err;
  EXPECT_NE(acp.out.find(R"("id":1,"result")"), std::string::npos) << acp.out;
  EXPECT_NE(acp.out.find("the agent's arguments are wrong: --profile cannot be combined with "
                         "--provider"),
            std::string::npos)
      << acp.out;
  // So with an argument it does not take at all (a typo, another version's flag).
  ProcessResult unknown = test::RunProcess({LAPCE_AI_BIN, "acp", "--bogus"}, Env(), options);
  EXPECT_EQ(unknown.exit_code, 0) << unknown.err;
  EXPECT_NE(unknown.out.find(R"("id":1,"result")"), std::string::npos) << unknown.out;
  EXPECT_NE(unknown.out.find("the agent's arguments are wrong: The following argument was not "
                             "expected: --bogus"),
            std::string::npos)
      << unknown.out;
}

// A configuration with a mistake: `acp` still answers `initialize` (it exited 2 before, and the
// editor saw only an agent that died), and every session request says what is wrong with it.
TEST_F(AgentE2eTest, AcpWithABadConfigurationAnswersAndSaysWhy) {
  std::filesystem::create_directories(home_ + "/.config/lapce-ai");
  WriteFile(home_ + "/.config/lapce-ai/config.toml", "[agent]\nmdoe = \"ask\"\n");
  test::ProcessOptions options;
  options.input = R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1}})"
                  "\n"
                  R"({"jsonrpc":"2.0","id":2,"method":"session/new","params":{"cwd":")" +
                  repo_ + R"(","mcpServers":[]}})" + "\n";
  ProcessResult acp = test::RunProcess({LAPCE_AI_BIN, "acp"}, Env(), options);
  EXPECT_EQ(acp.exit_code, 0) << acp.err;
  // Requests are answered as they finish, not in the order they came (JSON-RPC matches by id).
  std::map<int, Json> replies;
  std::istringstream lines(acp.out);
  for (std::string line; std::getline(lines, line);) {
    Json reply = Json::parse(line, nullptr, false);
    if (reply.is_object() && reply["id"].is_number_integer())
      replies[reply["id"].get<int>()] = reply;
  }
  ASSERT_EQ(replies.size(), 2u) << acp.out << acp.err;
  EXPECT_EQ(replies[1]["result"]["protocolVersion"], 1) << acp.out;
  EXPECT_EQ(replies[2]["error"]["code"], -32603) << acp.out;
  EXPECT_NE(replies[2]["error"]
                .value("message", "")
                .find("config.toml:2: unknown key 'agent.mdoe' (did you mean 'agent.mode'?)"),
            std::string::npos)
      << acp.out;
}

// The agent's commands do not see the variable its provider key came from: a command the model
// wrote (prompt injection, an allowed `curl`) printed it to the model, the editor and the store.
// The rest of the environment is theirs.
TEST_F(AgentE2eTest, CommandsDoNotSeeTheProviderKey) {
  fake_->Enqueue(kChatPath,
                 testing::OpenAiToolCall(
                     "call_1", "execute_command",
                     R"({"command":"echo key=${OPENAI_API_KEY:-hidden}; env | grep -c 7c1"})"));
  fake_->Enqueue(kChatPath,
                 testing::OpenAiToolCall("call_2", "attempt_completion", R"({"result":"Done."})"));
  std::vector<std::string> env = Env();
  std::erase(env, "OPENAI_API_KEY=test");
  env.push_back("OPENAI_API_KEY=sk-e2e-7c1");
  env.push_back("OTHER_SETTING=visible-7c1");  // Not a key: the command sees it.
  ProcessResult run = test::RunProcess(RunArgs("print the key", {"--yes"}), env);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::vector<Json> bodies = RequestBodies();
  ASSERT_EQ(bodies.size(), 2u);
  const std::string told = bodies[1].dump();
  EXPECT_NE(told.find("key=hidden\\n1\\n"), std::string::npos) << told;
  EXPECT_EQ(told.find("sk-e2e"), std::string::npos) << told;
  EXPECT_EQ(run.out.find("sk-e2e"), std::string::npos) << run.out;
}

// `acp --mode nosuch`: the agent's argument is wrong, not the editor's request (-32602 blamed the
// client's params).
TEST_F(AgentE2eTest, AcpWithAnUnknownModeArgumentSaysSo) {
  test::ProcessOptions options;
  options.input = R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1}})"
                  "\n"
                  R"({"jsonrpc":"2.0","id":2,"method":"session/new","params":{"cwd":")" +
                  repo_ + R"(","mcpServers":[]}})" + "\n";
  std::vector<std::string> argv = {LAPCE_AI_BIN, "acp", "--mode", "nosuch"};
  for (const std::string& a : Provider()) argv.push_back(a);
  ProcessResult acp = test::RunProcess(argv, Env(), options);
  EXPECT_EQ(acp.exit_code, 0) << acp.err;
  size_t refused = acp.out.find(R"("id":2,"error":{"code":-32603,)");
  ASSERT_NE(refused, std::string::npos) << acp.out;
  EXPECT_NE(acp.out.find("the default mode 'nosuch' (--mode, or agent.mode in config.toml) is not "
                         "defined for this workspace",
                         refused),
            std::string::npos)
      << acp.out;
}

// Why a turn failed stays with the session: `sessions show` says it (only that run's stderr
// did).
TEST_F(AgentE2eTest, WhyATurnFailedIsKept) {
  fake_->Enqueue(
      kChatPath,
      testing::MakeResponse(
          401,
          R"({"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}})"));
  ProcessResult run = Run("do something", {"--yes"});
  EXPECT_NE(run.exit_code, 0) << run.err;
  Json sessions = ListSessions();
  ASSERT_EQ(sessions.size(), 1u);
  ProcessResult show = Lapce({"sessions", "show", sessions[0]["id"].get<std::string>()});
  EXPECT_NE(show.out.find("> **lapce-ai:** The turn failed: "), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("Incorrect API key provided"), std::string::npos) << show.out;
}

// A store that can no longer be written (a full disk: here the file-size limit, which fails
// writes alike) stops the turn before it runs more than it could record, and says so: the
// commands went on running and the run ended "completed" with most of its history lost.
TEST_F(AgentE2eTest, ATurnStopsWhenItCannotBeSaved) {
  constexpr int kCommands = 60;
  for (int i = 0; i < kCommands; ++i) {
    const std::string command = "echo ran >> ran.txt; seq " + std::to_string(i) + " 900";
    fake_->Enqueue(kChatPath,
                   testing::OpenAiToolCall("call_" + std::to_string(i), "execute_command",
                                           Json{{"command", command}}.dump()));
  }
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_end", "attempt_completion",
                                                    R"({"result":"All done."})"));
  // 400 blocks of 512 bytes: the store's files reach it within the task.
  std::vector<std::string> argv = {"/bin/sh", "-c", "trap '' XFSZ; ulimit -f 400; exec \"$@\"",
                                   "sh"};
  for (const std::string& arg : RunArgs("fill the disk", {"--yes"})) argv.push_back(arg);
  ProcessResult run = test::RunProcess(std::move(argv), Env());
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.err.find("could not be saved"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("lapce-ai sessions resume "), std::string::npos) << run.err;
  EXPECT_EQ(run.out.find("All done."), std::string::npos) << "the task went on to its end";
  const std::string ran = ReadFile(repo_ + "/ran.txt");
  EXPECT_LT(std::count(ran.begin(), ran.end(), '\n'), kCommands) << "every command ran";
}

// A refusal ends the turn and says so: it was counted a mistake, sent twice more (each paid for)
// and ended as "3 mistakes in a row".
TEST_F(AgentE2eTest, ARefusalEndsTheTurnAtOnce) {
  fake_->Enqueue(kChatPath, testing::MakeResponse(200,
                                                  "data: {\"choices\":[{\"index\":0,\"delta\":{},"
                                                  "\"finish_reason\":\"content_filter\"}]}\n\n"
                                                  "data: [DONE]\n\n",
                                                  "text/event-stream"));
  ProcessResult run = Run("something filtered", {"--yes", "--json"});
  EXPECT_EQ(run.exit_code, 3) << "waits for the user's next message; " << run.err;
  EXPECT_EQ(RequestBodies().size(), 1u);
  EXPECT_NE(run.out.find("The provider declined to answer"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find(R"("stopReason":"refusal")"), std::string::npos) << run.out;
}

// After three replies without a tool call the task waits for guidance: --json's stop says so.
TEST_F(AgentE2eTest, AJsonRunWaitingForTheUserSaysSo) {
  fake_->Enqueue(kChatPath, testing::OpenAiText("Thinking aloud."));
  fake_->Enqueue(kChatPath, testing::OpenAiText("Still thinking."));
  fake_->Enqueue(kChatPath, testing::OpenAiText("Hmm."));
  ProcessResult waiting = Run("think", {"--yes", "--json"});
  EXPECT_EQ(waiting.exit_code, 3) << "3: waits for the user; " << waiting.err;
  std::string out = waiting.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  Json stop = Json::parse(out.substr(out.rfind('\n') + 1), nullptr, false);
  EXPECT_EQ(stop.value("type", ""), "stop") << waiting.out;
  EXPECT_EQ(stop.value("status", ""), "waiting") << waiting.out;
}

TEST_F(AgentE2eTest, WithoutYesAnEditIsRejectedAndTheModelToldSo) {
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_1", "write_to_file",
                                                    R"({"path":"NOTES.md","content":"notes\n"})"));
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_2", "attempt_completion",
                                                    R"({"result":"Could not write."})"));
  ProcessResult run = Run("write notes", {});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.err.find("--yes"), std::string::npos) << run.err;
  EXPECT_FALSE(std::filesystem::exists(repo_ + "/NOTES.md"));
  std::vector<Json> bodies = RequestBodies();
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_NE(bodies[1].dump().find("denied"), std::string::npos) << bodies[1].dump();
}

TEST_F(AgentE2eTest, XmlToolProtocol) {
  auto xml_turn = [](const std::string& text) {
    testing::ScriptedTurn turn;
    turn.text = text;
    turn.text_chunks = 7;  // Tags split across chunks.
    return testing::OpenAiTurn(turn);
  };
  fake_->Enqueue(kChatPath, xml_turn("Reading it.\n<read_file>\n<args>\n<file>\n<path>src/add.sh"
                                     "</path>\n</file>\n</args>\n</read_file>"));
  fake_->Enqueue(kChatPath,
                 xml_turn(std::string("<apply_diff>\n<path>src/add.sh</path>\n<diff>\n") + kDiff +
                          "\n</diff>\n</apply_diff>"));
  fake_->Enqueue(kChatPath, xml_turn("<execute_command>\n<command>sh test.sh</command>\n"
                                     "</execute_command>"));
  fake_->Enqueue(kChatPath, xml_turn(std::string("<attempt_completion>\n<result>") + kAnswer +
                                     "</result>\n</attempt_completion>"));
  ProcessResult run = Run("fix the test", {"--yes", "--tool-protocol", "xml"});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(ReadFile(repo_ + "/src/add.sh"), kFixedAdd);
  EXPECT_NE(run.out.find("Reading it."), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("<read_file>"), std::string::npos) << "markup is not shown: " << run.out;
  EXPECT_NE(run.out.find(kAnswer), std::string::npos) << run.out;
  std::vector<Json> bodies = RequestBodies();
  ASSERT_EQ(bodies.size(), 4u);
  EXPECT_FALSE(bodies[0].contains("tools")) << "XML: no native tool definitions";
  EXPECT_NE(bodies[0].dump().find("<read_file>"), std::string::npos)
      << "the system prompt documents the XML form";
  EXPECT_NE(bodies[1].dump().find("[read_file"), std::string::npos) << bodies[1].dump();
  EXPECT_NE(bodies[3].dump().find("add: PASS"), std::string::npos);
}

TEST_F(AgentE2eTest, KillNineMidTurnLosesNothingAndResumes) {
  // A read_file call, then a reply that streams slowly; the engine is SIGKILLed after part of it
  // was printed.
  fake_->Enqueue(kChatPath,
                 testing::OpenAiToolCall("call_1", "read_file",
                                         R"({"files":[{"path":"README.md","line_ranges":null}]})"));
  // 24 chunks, 150 ms apart: the kill comes well before the end on a loaded machine too (with 6,
  // the reply ended first under a parallel test run).
  EnqueueSlowReply("Part one. Part two. Part three. Part four. Part five. Part six.", 24);
  std::string printed;
  {
    Child child(RunArgs("summarise the readme", {"--yes"}), Env());
    ASSERT_TRUE(child.WaitForOutput("Part two.", milliseconds(15'000)))
        << child.out() << child.err();
    // While it runs, the session lists as active and cannot be resumed by a second process.
    Json live = ListSessions();
    ASSERT_EQ(live.size(), 1u);
    EXPECT_EQ(live[0]["status"], "active");
    std::vector<std::string> second = {"sessions", "resume", live[0]["id"], "meanwhile", "--yes"};
    for (const std::string& a : Provider()) second.push_back(a);
    ProcessResult refused = Lapce(second);
    EXPECT_EQ(refused.exit_code, 1) << refused.out;
    EXPECT_NE(refused.err.find("is open in another lapce-ai process (pid "), std::string::npos)
        << refused.err;
    EXPECT_NE(refused.err.find(", lapce-ai run); let that one finish"), std::string::npos)
        << refused.err;
    child.Signal(SIGKILL);
    EXPECT_EQ(child.Wait(milliseconds(5000)), -1);
    // What the user saw of the reply: the text after the tool's result.
    const std::string done_mark = "\u2713 done\n";
    size_t done = child.out().rfind(done_mark);
    ASSERT_NE(done, std::string::npos) << child.out();
    printed = child.out().substr(done + done_mark.size());
  }
  ASSERT_NE(printed.find("Part two."), std::string::npos) << printed;
  ASSERT_EQ(fake_->requests().size(), 2u);

  Json sessions = ListSessions();
  ASSERT_EQ(sessions.size(), 1u);
  std::string id = sessions[0]["id"];
  EXPECT_EQ(sessions[0]["title"], "summarise the readme");
  EXPECT_EQ(sessions[0]["status"], "interrupted");  // Active, and nobody has it open.
  ProcessResult table = Lapce({"sessions", "list"});
  EXPECT_NE(table.out.find("interrupted"), std::string::npos) << table.out;
  EXPECT_EQ(table.err, "");
  ProcessResult cut = Lapce({"sessions", "list", "--limit", "1"});  // All there is: no notice.
  EXPECT_EQ(cut.err, "");
  ProcessResult show = Lapce({"sessions", "show", id});
  EXPECT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("interrupted"), std::string::npos) << "as the list says";
  EXPECT_NE(show.out.find(printed), std::string::npos)
      << "every chunk printed before the kill is stored; printed:\n"
      << printed << "\nshown:\n"
      << show.out;

  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_9", "attempt_completion",
                                                    R"({"result":"Summarised."})"));
  std::vector<std::string> resume = {"sessions", "resume", id.substr(0, 12), "go on", "--yes"};
  for (const std::string& a : Provider()) resume.push_back(a);
  ProcessResult resumed = Lapce(resume);
  EXPECT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_NE(resumed.out.find("Summarised."), std::string::npos) << resumed.out;
  std::vector<Json> bodies = RequestBodies();
  ASSERT_EQ(bodies.size(), 3u);
  std::string sent = bodies[2].dump();
  EXPECT_NE(sent.find("summarise the readme"), std::string::npos) << "the first task";
  EXPECT_NE(sent.find("A tiny project."), std::string::npos) << "the read_file result";
  EXPECT_NE(sent.find(printed), std::string::npos) << "the partial reply; sent: " << sent;
  EXPECT_NE(sent.find("go on"), std::string::npos);
  EXPECT_EQ(ListSessions()[0]["status"], "completed");
}

// A kill -9 during a subtask: the resumed task goes on in the subtask (its model was told only
// that new_task was interrupted, and the subtask's work stayed orphaned), then with its result.
TEST_F(AgentE2eTest, KillNineInASubtaskGoesOnInItWhenResumed) {
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall(
                                "call_task", "new_task",
                                R"({"mode":"code","message":"Paint the fence","todos":null})"));
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("child_read", "read_file",
                                                    R"({"files":[{"path":"README.md"}]})"));
  EnqueueSlowReply("Brush one. Brush two. Brush three. Brush four. Brush five.", 5);
  {
    Child child(RunArgs("delegate the painting", {"--yes", "--mode", "orchestrator"}), Env());
    ASSERT_TRUE(child.WaitForOutput("Brush two.", milliseconds(15'000)))
        << child.out() << child.err();
    child.Signal(SIGKILL);
    EXPECT_EQ(child.Wait(milliseconds(5000)), -1);
  }
  Json sessions = ListSessions();
  ASSERT_EQ(sessions.size(), 1u);  // The task; its subtask is listed with --all.
  std::string id = sessions[0]["id"];
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("child_done", "attempt_completion",
                                                    R"({"result":"The fence is painted."})"));
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_done", "attempt_completion",
                                                    R"({"result":"Delegated and done."})"));
  std::vector<std::string> resume = {"sessions", "resume", id, "go on", "--yes"};
  for (const std::string& a : Provider()) resume.push_back(a);
  ProcessResult resumed = Lapce(resume);
  EXPECT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  std::vector<Json> bodies = RequestBodies();
  ASSERT_EQ(bodies.size(), 5u);
  std::string to_child = bodies[3].dump();
  EXPECT_NE(to_child.find("Paint the fence"), std::string::npos) << to_child;
  EXPECT_NE(to_child.find("Brush two."), std::string::npos) << "its partial reply: " << to_child;
  EXPECT_NE(to_child.find("go on"), std::string::npos) << to_child;
  EXPECT_EQ(to_child.find("delegate the painting"), std::string::npos) << to_child;
  std::string to_parent = bodies[4].dump();
  EXPECT_NE(to_parent.find("The fence is painted."), std::string::npos) << to_parent;
  EXPECT_EQ(to_parent.find("interrupted before this tool call"), std::string::npos) << to_parent;
  EXPECT_NE(resumed.out.find("Delegated and done."), std::string::npos) << resumed.out;
  EXPECT_EQ(ListSessions()[0]["status"], "completed");
  // The task's totals hold all its subtask used, before the kill too (that part was lost).
  ProcessResult all = Lapce({"sessions", "list", "--all", "--json"});
  Json listed = Json::parse(all.out, nullptr, false);
  ASSERT_TRUE(listed.is_array() && listed.size() == 2u) << all.out;
  const Json& task = listed[0]["id"] == id ? listed[0] : listed[1];
  const Json& subtask = listed[0]["id"] == id ? listed[1] : listed[0];
  EXPECT_EQ(task["requests"].get<int64_t>(), 2 + subtask["requests"].get<int64_t>()) << all.out;
  // A list cut short says so, beside the table.
  ProcessResult newest = Lapce({"sessions", "list", "--all", "--limit", "1"});
  EXPECT_EQ(newest.exit_code, 0);
  EXPECT_EQ(std::count(newest.out.begin(), newest.out.end(), '\n'), 2) << newest.out;
  EXPECT_EQ(newest.err, "(the newest 1 are shown; `--limit N` shows more, `--limit 0` all)\n");
  // And the flag it names works: every session, no notice.
  ProcessResult every = Lapce({"sessions", "list", "--all", "--limit", "0"});
  EXPECT_EQ(every.exit_code, 0) << every.err;
  EXPECT_EQ(std::count(every.out.begin(), every.out.end(), '\n'), 3) << every.out;
  EXPECT_EQ(every.err, "");
}

// A kill -9 while a command runs: the command, in a session of its own, does not outlive
// lapce-ai (it lived on, reparented), and what the model's reply cost is kept (the session's row
// was written only with the next user message, so the list said 0).
TEST_F(AgentE2eTest, KillNineDuringACommandEndsItAndKeepsTheReplysCost) {
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall(
                                "call_1", "execute_command",
                                R"({"command":"echo $$ > cmd.pid; echo started; exec sleep 30"})"));
  Child child(RunArgs("wait a while", {"--yes"}), Env());
  // Its output shown, the command's group is known to the watcher (it is told just after the
  // spawn; a SIGKILL in those microseconds would leave the command unwatched).
  ASSERT_TRUE(child.WaitForOutput("started", milliseconds(15'000))) << child.err();
  pid_t command = WaitForPidFile(repo_ + "/cmd.pid");
  ASSERT_GT(command, 0) << child.err();
  child.Signal(SIGKILL);
  EXPECT_EQ(child.Wait(milliseconds(5000)), -1);
  bool ended = ProcessEnds(command);
  EXPECT_TRUE(ended) << "the command (pid " << command << ") outlived lapce-ai";
  if (!ended) {  // This failed now and then under parallel load: what was running, for the log.
    int rc = std::system(
        "ps -eo pid,pgid,ppid,stat,etimes,args | grep -v grep | grep -E 'sleep|g=' >&2");
    (void)rc;
  }
  ::kill(command, SIGKILL);  // Should the check above fail, the command must not outlive the test.
  Json sessions = ListSessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_GT(sessions[0]["costUsd"].get<double>(), 0.0) << sessions.dump();
}

// A kill -9 while an edit awaits the user's answer: resumed, the model is told the edit was not
// run (not that it may have run), and the file is untouched.
TEST_F(AgentE2eTest, KillNineWhileAnEditAwaitsApprovalTellsTheModelItDidNotRun) {
  fake_->Enqueue(kChatPath,
                 testing::OpenAiToolCall("call_w", "write_to_file",
                                         R"({"path":"new.txt","content":"x\n","line_count":1})"));
  std::vector<std::string> argv = {LAPCE_AI_BIN, "acp"};
  for (const std::string& a : Provider()) argv.push_back(a);
  std::string id;
  {
    Child acp(argv, Env(), /*keeps_input=*/true);
    ASSERT_NO_FATAL_FAILURE(id = OpenAcpSession(acp));
    acp.Write(Json{{"jsonrpc", "2.0"},
                   {"id", 3},
                   {"method", "session/prompt"},
                   {"params",
                    {{"sessionId", id}, {"prompt", {{{"type", "text"}, {"text", "write it"}}}}}}}
                  .dump() +
              "\n");
    ASSERT_TRUE(acp.WaitForOutput("session/request_permission", milliseconds(15'000)))
        << acp.out() << acp.err();
    acp.Signal(SIGKILL);
    EXPECT_EQ(acp.Wait(milliseconds(5000)), -1);
  }
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_9", "attempt_completion",
                                                    R"({"result":"Stopped."})"));
  std::vector<std::string> resume = {"sessions", "resume", id, "go on", "--yes"};
  for (const std::string& a : Provider()) resume.push_back(a);
  ProcessResult resumed = Lapce(resume);
  EXPECT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_FALSE(std::filesystem::exists(repo_ + "/new.txt"));
  std::vector<Json> bodies = RequestBodies();
  ASSERT_EQ(bodies.size(), 2u);
  std::string result;
  for (const Json& message : bodies[1]["messages"]) {
    if (message.value("tool_call_id", "") == "call_w") result = message["content"].dump();
  }
  EXPECT_NE(result.find("Not run: lapce-ai stopped while this call awaited the user's approval"),
            std::string::npos)
      << bodies[1]["messages"].dump();
  EXPECT_EQ(result.find("may have run"), std::string::npos) << result;
  // Kept in the session's history as the call's result.
  ProcessResult show = Lapce({"sessions", "show", id});
  EXPECT_NE(show.out.find("Not run: lapce-ai stopped while this call awaited"), std::string::npos)
      << show.out;
}

// A task piped in is taken without the line ends after it (`echo`'s); an empty one is said to
// be empty (the message asked for '-', which was given).
TEST_F(AgentE2eTest, APipedTaskLosesItsTrailingNewlinesAndAnEmptyOneIsSaid) {
  fake_->Enqueue(kChatPath,
                 testing::OpenAiToolCall("c1", "attempt_completion", R"({"result":"Done."})"));
  test::ProcessOptions options;
  options.input = "write c\n\n";
  ProcessResult run = test::RunProcess(RunArgs("-", {"--yes"}), Env(), options);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  std::vector<Json> bodies = RequestBodies();
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_NE(bodies[0]["messages"].dump().find(R"(<task>\nwrite c\n</task>)"), std::string::npos)
      << bodies[0]["messages"].dump();
  options.input = "  \n";
  ProcessResult empty = test::RunProcess(RunArgs("-", {"--yes"}), Env(), options);
  EXPECT_EQ(empty.exit_code, 2);
  EXPECT_NE(empty.err.find("standard input held no task"), std::string::npos) << empty.err;
}

// Piped, reasoning is marked (it read as the answer); a turn whose provider reported no usage
// says so rather than costing $0.0000.
TEST_F(AgentE2eTest, PipedReasoningIsMarkedAndMissingUsageIsNotFree) {
  testing::ScriptedTurn turn;
  turn.reasoning = "Let me think.\nThen some more.";
  turn.calls = {{"call_1", "attempt_completion", R"({"result":"Done."})"}};
  turn.input_tokens = 0;
  turn.output_tokens = 0;
  fake_->Enqueue(kChatPath, testing::OpenAiTurn(turn));
  ProcessResult run = Run("think", {"--yes"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("[reasoning] Let me think.\n[reasoning] Then some more."),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.err.find("usage not reported, cost unknown"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find("$0.0000"), std::string::npos) << run.err;
  ProcessResult table = Lapce({"sessions", "list"});
  EXPECT_EQ(table.out.find("0.0000"), std::string::npos) << "no cost was counted: " << table.out;
  EXPECT_NE(table.out.find("  -  "), std::string::npos) << table.out;
}

// `acp` stopped by SIGTERM (as editors stop agents) gives its sessions up as when the editor
// closes: one opened and never prompted is not kept (it listed as untitled and interrupted).
TEST_F(AgentE2eTest, AcpStoppedBySigtermKeepsNoUnpromptedSession) {
  std::vector<std::string> argv = {LAPCE_AI_BIN, "acp"};
  for (const std::string& a : Provider()) argv.push_back(a);
  Child acp(argv, Env(), /*keeps_input=*/true);
  ASSERT_NO_FATAL_FAILURE(OpenAcpSession(acp));
  EXPECT_EQ(ListSessions().size(), 1u);
  acp.Signal(SIGTERM);
  EXPECT_EQ(acp.Wait(milliseconds(10'000)), 128 + SIGTERM) << acp.err();
  EXPECT_EQ(ListSessions().size(), 0u);
}

// SIGTERM during a turn (as editors stop agents) answers its prompt "cancelled" before the agent
// exits, and the session is stored as cancelled (no answer came, and it stayed interrupted).
TEST_F(AgentE2eTest, AcpStoppedBySigtermAnswersTheRunningPrompt) {
  EnqueueSlowReply("One. Two. Three. Four. Five. Six.", 20);
  std::vector<std::string> argv = {LAPCE_AI_BIN, "acp"};
  for (const std::string& a : Provider()) argv.push_back(a);
  Child acp(argv, Env(), /*keeps_input=*/true);
  std::string id;
  ASSERT_NO_FATAL_FAILURE(id = OpenAcpSession(acp));
  acp.Write(Json{{"jsonrpc", "2.0"},
                 {"id", 3},
                 {"method", "session/prompt"},
                 {"params", {{"sessionId", id}, {"prompt", {{{"type", "text"}, {"text", "go"}}}}}}}
                .dump() +
            "\n");
  ASSERT_TRUE(acp.WaitForOutput("agent_message_chunk", milliseconds(15'000))) << acp.err();
  acp.Signal(SIGTERM);
  EXPECT_EQ(acp.Wait(milliseconds(10'000)), 128 + SIGTERM) << acp.err();
  size_t answer = acp.out().find(R"("id":3,"result")");
  ASSERT_NE(answer, std::string::npos) << acp.out();
  EXPECT_NE(acp.out().find(R"("stopReason":"cancelled")", answer), std::string::npos) << acp.out();
  Json sessions = ListSessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0]["status"], "cancelled");
}

// A session/cancel (or the request's $/cancel_request) right behind its session/prompt, as an
// editor sends it when the user presses Esc at once, stops the turn: it was lost, and the turn
// ran to its end, tool calls included.
TEST_F(AgentE2eTest, AcpCancelRightBehindThePromptStopsIt) {
  for (int i = 0; i < 2; ++i) {
    testing::FakeResponse slow = testing::OpenAiToolCall(
        "call_" + std::to_string(i), "execute_command", R"({"command":"touch ran.txt"})");
    slow.fault.chunk_delay = milliseconds(300);
    fake_->Enqueue(kChatPath, slow);
  }
  std::vector<std::string> argv = {LAPCE_AI_BIN, "acp", "--yes"};
  for (const std::string& a : Provider()) argv.push_back(a);
  Child acp(argv, Env(), /*keeps_input=*/true);
  std::string id;
  ASSERT_NO_FATAL_FAILURE(id = OpenAcpSession(acp));
  auto prompt = [&](int request) {
    return Json{{"jsonrpc", "2.0"},
                {"id", request},
                {"method", "session/prompt"},
                {"params", {{"sessionId", id}, {"prompt", {{{"type", "text"}, {"text", "go"}}}}}}}
               .dump() +
           "\n";
  };
  // One write each: the cancel arrives with its prompt.
  acp.Write(prompt(3) +
            Json{{"jsonrpc", "2.0"}, {"method", "session/cancel"}, {"params", {{"sessionId", id}}}}
                .dump() +
            "\n");
  ASSERT_TRUE(acp.WaitForOutput("\"id\":3,\"result\"", milliseconds(15'000))) << acp.err();
  acp.Write(prompt(4) + R"({"jsonrpc":"2.0","method":"$/cancel_request","params":{"id":4}})" +
            "\n");
  ASSERT_TRUE(acp.WaitForOutput("\"id\":4,\"result\"", milliseconds(15'000))) << acp.err();
  size_t answer = acp.out().find(R"("id":3,"result")");
  ASSERT_NE(answer, std::string::npos) << acp.out();
  EXPECT_NE(acp.out().find(R"("stopReason":"cancelled")", answer), std::string::npos) << acp.out();
  EXPECT_NE(acp.out().find(R"("id":4,"result":{"stopReason":"cancelled"})"), std::string::npos)
      << acp.out();
  EXPECT_FALSE(std::filesystem::exists(repo_ + "/ran.txt")) << "a cancelled turn ran a command";
  acp.Signal(SIGTERM);
  acp.Wait(milliseconds(10'000));
  // The prompts are kept, though nothing was asked of the model.
  ProcessResult show = Lapce({"sessions", "show", id});
  EXPECT_NE(show.out.find("go"), std::string::npos) << show.out;
}

// `sessions resume --mode M` switches the session to M (as session/set_mode does); an unknown
// mode is refused before any request.
TEST_F(AgentE2eTest, ResumeWithModeSwitchesTheMode) {
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_1", "attempt_completion",
                                                    R"({"result":"Looked."})"));
  ProcessResult run = Run("look around", {"--yes"});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  std::string id = ListSessions()[0]["id"];
  auto resume = [&](const std::string& mode) {
    std::vector<std::string> args = {"sessions", "resume", id, "explain", "--yes", "--mode", mode};
    for (const std::string& a : Provider()) args.push_back(a);
    return Lapce(args);
  };
  // A completed session without a message: nothing to send (a request was spent on
  // "[TASK RESUMPTION]" given as feedback).
  std::vector<std::string> bare = {"sessions", "resume", id, "--yes"};
  for (const std::string& a : Provider()) bare.push_back(a);
  ProcessResult nothing = Lapce(bare);
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_NE(nothing.err.find("is completed; say what to do next"), std::string::npos)
      << nothing.err;
  ProcessResult unknown = resume("nosuch");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("--mode: unknown mode 'nosuch'; the modes are: code, architect"),
            std::string::npos)
      << unknown.err;
  EXPECT_EQ(fake_->requests().size(), 1u);

  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_2", "attempt_completion",
                                                    R"({"result":"Explained."})"));
  ProcessResult ask = resume("ask");
  EXPECT_EQ(ask.exit_code, 0) << ask.out << ask.err;
  std::vector<Json> bodies = RequestBodies();
  ASSERT_EQ(bodies.size(), 2u);
  std::string tools = bodies[1]["tools"].dump();
  EXPECT_NE(tools.find("read_file"), std::string::npos) << tools;
  EXPECT_EQ(tools.find("write_to_file"), std::string::npos) << "ask mode edits nothing: " << tools;
  EXPECT_EQ(ListSessions()[0]["mode"], "ask");
}

TEST_F(AgentE2eTest, CtrlCCancelsTheTurnAndExits130) {
  // The first text at once, then a stall only a cancel ends in time.
  fake_->Enqueue(kChatPath, testing::OpenAiStalledText("Thinking about it. And more. And more.",
                                                       milliseconds(30'000)));
  Child child(RunArgs("think", {"--yes"}), Env());
  ASSERT_TRUE(child.WaitForOutput("Thinking", milliseconds(15'000))) << child.err();
  Clock::time_point signalled = Clock::now();
  child.Signal(SIGINT);
  int exit_code = child.Wait(milliseconds(10'000));
  EXPECT_EQ(exit_code, 130) << child.err();
  EXPECT_LT(Clock::now() - signalled, milliseconds(1000));
  EXPECT_NE(child.err().find("cancel"), std::string::npos) << child.err();
  Json sessions = ListSessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0]["status"], "cancelled");
  ProcessResult show = Lapce({"sessions", "show", sessions[0]["id"].get<std::string>()});
  // The text shown before the cancel is kept.
  std::string printed = child.out();
  while (!printed.empty() && printed.back() == '\n') printed.pop_back();
  ASSERT_FALSE(printed.empty());
  EXPECT_NE(show.out.find(printed), std::string::npos) << printed << "\nshown:\n" << show.out;
}

// --json output ends with a stop event even when a signal ends the run mid-turn: cancelled, the
// session interrupted (or cancelled, when the turn ended first); a JSON reader saw none, as if the
// process had crashed.
TEST_F(AgentE2eTest, ASignalMidTurnStillEndsJsonOutputWithAStopEvent) {
  fake_->Enqueue(kChatPath, testing::OpenAiStalledText("Thinking about it.", milliseconds(30'000)));
  Child child(RunArgs("think", {"--yes", "--json"}), Env());
  ASSERT_TRUE(child.WaitForOutput("Thinking", milliseconds(15'000))) << child.err();
  child.Signal(SIGTERM);
  EXPECT_EQ(child.Wait(milliseconds(10'000)), 128 + SIGTERM) << child.err();
  std::string out = child.out();
  while (!out.empty() && out.back() == '\n') out.pop_back();
  Json last = Json::parse(out.substr(out.rfind('\n') + 1), nullptr, false);
  ASSERT_TRUE(last.is_object()) << out;
  EXPECT_EQ(last.value("type", ""), "stop") << out;
  EXPECT_EQ(last.value("stopReason", ""), "cancelled") << out;
  std::string status = last.value("status", "");
  EXPECT_TRUE(status == "interrupted" || status == "cancelled") << out;
  size_t stops = 0;
  for (size_t at = 0; (at = out.find(R"("type":"stop")", at)) != std::string::npos; ++at) ++stops;
  EXPECT_EQ(stops, 1u) << out;
}

// SIGTERM (or a closed terminal) while the agent runs a command: lapce-ai exits at once and the
// command, which runs in a session of its own, does not outlive it.
// The command gets SIGTERM and its 2 s to finish (the watcher's grace, as for kill -9); it was
// SIGKILLed 100 ms later, mid-cleanup. (It writes nothing to its output: with lapce-ai gone, a
// write there would end it with SIGPIPE.)
TEST_F(AgentE2eTest, SigtermStopsTheRunningCommandToo) {
  fake_->Enqueue(
      kChatPath,
      testing::OpenAiToolCall(
          "call_1", "execute_command",
          R"({"command":"exec >/dev/null 2>&1; trap 'sleep 0.4; echo cleaned > cleaned.txt; exit 0' TERM; echo $$ > cmd.pid; sleep 30 & wait"})"));
  // What the model would do next, were the turn to go on once its command is killed.
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall(
                                "call_2", "write_to_file",
                                R"({"path":"after.txt","content":"late\n","line_count":1})"));
  Child child(RunArgs("wait a while", {"--yes"}), Env());
  pid_t command = WaitForPidFile(repo_ + "/cmd.pid");
  ASSERT_GT(command, 0) << child.err();
  child.Signal(SIGTERM);
  EXPECT_EQ(child.Wait(milliseconds(10'000)), 128 + SIGTERM) << child.err();
  EXPECT_TRUE(ProcessEnds(command)) << "the command (pid " << command << ") outlived lapce-ai";
  EXPECT_EQ(ReadFile(repo_ + "/cleaned.txt"), "cleaned\n") << "no time to clean up";
  // The turn stopped with the signal: it did not go on to the next call while exiting.
  EXPECT_FALSE(std::filesystem::exists(repo_ + "/after.txt"));
  // Nor does the session's lock file, although the process ends without destructors.
  const std::filesystem::path locks = home_ + "/.local/share/lapce-ai/sessions.db.open";
  ASSERT_TRUE(std::filesystem::exists(locks)) << "the session was never locked";
  EXPECT_TRUE(std::filesystem::is_empty(locks)) << "a lock file stayed behind";
}

// `lapce-ai run … | head -1`: when the reader of its output goes away, the turn is cancelled
// and the command it runs is stopped (it lived on, reparented, and wrote files), exit 141.
TEST_F(AgentE2eTest, AClosedOutputPipeStopsTheRunAndItsCommand) {
  EnqueueSleepingCommand();
  Child child(RunArgs("wait a while", {"--yes"}), Env());
  pid_t command = WaitForPidFile(repo_ + "/cmd.pid");
  ASSERT_GT(command, 0) << child.err();
  child.CloseOutput();
  EXPECT_EQ(child.Wait(milliseconds(10'000)), 128 + SIGPIPE) << child.err();
  EXPECT_TRUE(ProcessEnds(command)) << "the command (pid " << command << ") outlived lapce-ai";
}

// `lapce-ai complete … | head -c 10`: when the reader goes away the answer is cancelled and the
// exit status says so (it read the whole answer, paid for, and exited 0), even while the model
// is silent.
TEST_F(AgentE2eTest, CompleteStopsWhenItsOutputIsClosed) {
  fake_->Enqueue(kChatPath, testing::OpenAiStalledText("Hello there, a long answer", seconds(20)));
  std::vector<std::string> argv = {LAPCE_AI_BIN, "complete"};
  for (const std::string& arg : Provider()) argv.push_back(arg);
  argv.push_back("hi");
  Child child(argv, Env());
  ASSERT_TRUE(child.WaitForOutput("Hello", milliseconds(10'000))) << child.err();
  const Clock::time_point closed = Clock::now();
  child.CloseOutput();
  EXPECT_EQ(child.Wait(milliseconds(10'000)), 128 + SIGPIPE) << child.err();
  EXPECT_LT(Clock::now() - closed, seconds(5)) << "it waited for the model";
  EXPECT_NE(child.err().find("its output was closed"), std::string::npos) << child.err();
}

// On a terminal: an answer is read in any case and with spaces around it; Ctrl-C at a question
// cancels the turn at once (no Enter needed) and the session waits at its prompt; Ctrl-C there
// exits 130.
TEST_F(AgentE2eTest, ApprovalsOnATerminalTakeAnyCaseAndCtrlCEndsTheQuestion) {
  fake_->Enqueue(kChatPath,
                 testing::OpenAiToolCall("w1", "write_to_file",
                                         R"({"path":"a.txt","content":"A\n","line_count":1})"));
  fake_->Enqueue(kChatPath,
                 testing::OpenAiToolCall("w2", "write_to_file",
                                         R"({"path":"b.txt","content":"B\n","line_count":1})"));
  PtyChild child(RunArgs("write two files", {}), Env());
  ASSERT_TRUE(child.WaitFor("Allow Write a.txt?", milliseconds(15'000))) << child.screen();
  child.Type(" Yes \n");
  ASSERT_TRUE(child.WaitFor("Allow Write b.txt?", milliseconds(15'000))) << child.screen();
  child.Type("\x03");
  ASSERT_TRUE(child.WaitFor("[cancelled", milliseconds(5'000))) << child.screen();
  ASSERT_TRUE(child.WaitFor("> ", milliseconds(5'000))) << child.screen();
  child.Type("\x03");
  EXPECT_EQ(child.Wait(milliseconds(10'000)), 128 + SIGINT) << child.screen();
  EXPECT_EQ(ReadFile(repo_ + "/a.txt"), "A\n");
  EXPECT_FALSE(std::filesystem::exists(repo_ + "/b.txt"));
}

// At the terminal prompt between turns: /mode lists the modes, /mode SLUG switches for the next
// message (its request carries that mode's tools), an unknown command is not sent to the model,
// and a line that only starts with a slash is a message.
TEST_F(AgentE2eTest, TheTerminalPromptSwitchesModes) {
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("c1", "attempt_completion",
                                                    R"({"result":"First done."})"));
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("c2", "attempt_completion",
                                                    R"({"result":"Second done."})"));
  PtyChild child(RunArgs("first task", {}), Env());
  ASSERT_TRUE(child.WaitFor("First done.", milliseconds(15'000))) << child.screen();
  ASSERT_TRUE(child.WaitFor("> ", milliseconds(5'000))) << child.screen();
  child.Type("/mode\n");
  ASSERT_TRUE(child.WaitFor("* code", milliseconds(5'000))) << child.screen();
  ASSERT_TRUE(child.WaitFor("architect", milliseconds(5'000))) << child.screen();
  child.Type("/mode nosuch\n");
  ASSERT_TRUE(child.WaitFor("unknown mode 'nosuch'", milliseconds(5'000))) << child.screen();
  child.Type("/frobnicate\n");
  ASSERT_TRUE(child.WaitFor("unknown command /frobnicate", milliseconds(5'000))) << child.screen();
  child.Type("/mode ask\n");
  ASSERT_TRUE(child.WaitFor("[mode: ask]", milliseconds(5'000))) << child.screen();
  child.Type("/etc/hosts: explain it\n");
  ASSERT_TRUE(child.WaitFor("Second done.", milliseconds(15'000))) << child.screen();
  child.Type("/exit\n");
  EXPECT_EQ(child.Wait(milliseconds(10'000)), 0) << child.screen();

  std::vector<Json> bodies = RequestBodies();
  ASSERT_EQ(bodies.size(), 2u) << "commands are not messages";
  EXPECT_NE(bodies[0]["tools"].dump().find("write_to_file"), std::string::npos);
  EXPECT_EQ(bodies[1]["tools"].dump().find("write_to_file"), std::string::npos)
      << "ask mode edits nothing: " << bodies[1]["tools"].dump();
  EXPECT_NE(bodies[1]["messages"].dump().find("/etc/hosts: explain it"), std::string::npos);
}

// `run -` typed at a terminal (the task ends with Ctrl-D) still takes replies there; lines pasted
// at once are one message, blank lines and a "/exit" line inside it included (each line was a
// paid turn of its own, and the blank line ended the session).
TEST_F(AgentE2eTest, APasteAtTheTerminalPromptIsOneMessage) {
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("c1", "attempt_completion",
                                                    R"({"result":"First done."})"));
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("c2", "attempt_completion",
                                                    R"({"result":"Second done."})"));
  fake_->Enqueue(kChatPath, testing::OpenAiToolCall("c3", "attempt_completion",
                                                    R"({"result":"Third done."})"));
  std::vector<std::string> argv = RunArgs("-", {});
  PtyChild child(argv, Env());
  child.Type("the task, typed\n");
  std::this_thread::sleep_for(milliseconds(100));
  child.Type("\x04");
  ASSERT_TRUE(child.WaitFor("First done.", milliseconds(15'000))) << child.screen();
  ASSERT_TRUE(child.WaitFor("> ", milliseconds(5'000))) << child.screen();
  child.Type(
      "Traceback (most recent call last):\n  File \"a.py\", line 3\n\n/exit\nValueError: bad\n");
  ASSERT_TRUE(child.WaitFor("Second done.", milliseconds(15'000))) << child.screen();
  // Through ssh or tmux a paste comes in bursts tens of milliseconds apart.
  for (std::string_view line : {"alpha\n", "\n", "beta\n"}) {
    child.Type(line);
    std::this_thread::sleep_for(milliseconds(30));
  }
  ASSERT_TRUE(child.WaitFor("Third done.", milliseconds(15'000))) << child.screen();
  child.Type("\n");
  EXPECT_EQ(child.Wait(milliseconds(10'000)), 0) << child.screen();

  std::vector<Json> bodies = RequestBodies();
  ASSERT_EQ(bodies.size(), 3u) << child.screen();
  EXPECT_NE(bodies[2]["messages"].dump().find(R"(alpha\n\nbeta)"), std::string::npos)
      << bodies[2]["messages"].dump();
  EXPECT_NE(bodies[0]["messages"].dump().find("the task, typed"), std::string::npos);
  EXPECT_NE(
      bodies[1]["messages"].dump().find(
          R"(Traceback (most recent call last):\n  File \"a.py\", line 3\n\n/exit\nValueError: bad)"),
      std::string::npos)
      << bodies[1]["messages"].dump();
}

// A run in the background (stdin from /dev/null) is not asked on the terminal it does not own
// (it was stopped by SIGTTOU, waiting for ever): the write is refused, the run ends.
TEST_F(AgentE2eTest, ABackgroundRunIsNotAskedOnTheTerminal) {
  EnqueueWriteThenGiveUp();
  PtyChild child(RunArgs("write a file", {}), Env(), /*in_background=*/true);
  EXPECT_EQ(child.Wait(milliseconds(15'000)), 0) << child.screen();
  EXPECT_NE(child.screen().find("no terminal to ask on"), std::string::npos) << child.screen();
  EXPECT_FALSE(std::filesystem::exists(repo_ + "/a.txt"));
}

// In the foreground with both outputs in a file, a question could not be seen: none is asked
// (it waited on the terminal for a blind answer).
TEST_F(AgentE2eTest, ARunWhoseOutputsAreInAFileIsNotAskedBlind) {
  EnqueueWriteThenGiveUp();
  const std::string log = home_ + "/run.log";
  PtyChild child(RunArgs("write a file", {}), Env(), /*in_background=*/false, log);
  EXPECT_EQ(child.Wait(milliseconds(15'000)), 0) << ReadFile(log);
  EXPECT_NE(ReadFile(log).find("no terminal to ask on"), std::string::npos) << ReadFile(log);
  EXPECT_FALSE(std::filesystem::exists(repo_ + "/a.txt"));
}

// A run that fails says so in an error event, then ends, as every run does, with a stop event
// (status "failed"; a failed run had none); the provider's words reach the terminal with their
// control characters shown, not obeyed.
TEST_F(AgentE2eTest, AJsonRunThatFailsEndsWithAnErrorAndAStop) {
  fake_->Enqueue(
      kChatPath,
      testing::MakeResponse(
          400,
          R"({"error":{"message":"bad \u001b]0;PWNED\u0007 request","type":"invalid_request_error"}})"));
  ProcessResult run = Run("hello", {"--yes", "--json"});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  std::vector<Json> events;
  std::istringstream lines(run.out);
  for (std::string line; std::getline(lines, line);)
    events.push_back(Json::parse(line, nullptr, false));
  ASSERT_GE(events.size(), 2u) << run.out;
  const Json& error = events[events.size() - 2];
  EXPECT_EQ(error["type"], "error") << run.out;
  EXPECT_NE(error.value("message", "").find("bad"), std::string::npos) << run.out;
  EXPECT_EQ(events.back()["type"], "stop") << run.out;
  EXPECT_EQ(events.back()["status"], "failed") << run.out;
  EXPECT_EQ(run.err.find("\x1b]0;"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("^[]0;PWNED^G"), std::string::npos) << run.err;
}

TEST_F(AgentE2eTest, ExportDeleteAndBadIds) {
  for (const char* task : {"say hello", "say goodbye"}) {
    fake_->Enqueue(kChatPath, testing::OpenAiToolCall("call_1", "attempt_completion",
                                                      R"({"result":"Done."})"));
    ProcessResult run = Run(task, {"--yes"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
  }
  Json sessions = ListSessions();
  ASSERT_EQ(sessions.size(), 2u);
  std::string first = sessions[1]["id"];
  std::string second = sessions[0]["id"];
  EXPECT_EQ(sessions[1]["title"], "say hello");

  std::string json_file = home_ + "/export.json";
  ProcessResult exported =
      Lapce({"sessions", "export", first, "--format", "json", "-o", json_file});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  Json document = Json::parse(ReadFile(json_file), nullptr, false);
  ASSERT_TRUE(document.is_object()) << ReadFile(json_file);
  EXPECT_EQ(document["session"]["id"], first);
  EXPECT_FALSE(document["messages"].empty());

  std::string md_file = home_ + "/export.md";
  ProcessResult markdown = Lapce({"sessions", "export", first, "--format", "md", "-o", md_file});
  ASSERT_EQ(markdown.exit_code, 0) << markdown.err;
  std::string md = ReadFile(md_file);
  EXPECT_EQ(md.rfind("# ", 0), 0u) << md;
  EXPECT_NE(md.find("say hello"), std::string::npos) << md;
  EXPECT_EQ(std::filesystem::status(md_file).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  // Not through a link planted where the export goes.
  std::filesystem::create_symlink(home_ + "/victim", home_ + "/link.md");
  ProcessResult linked =
      Lapce({"sessions", "export", first, "--format", "md", "-o", home_ + "/link.md"});
  EXPECT_EQ(linked.exit_code, 1);
  EXPECT_NE(linked.err.find("symbolic link"), std::string::npos) << linked.err;
  EXPECT_FALSE(std::filesystem::exists(home_ + "/victim"));

  // A pipe or device is written to, not replaced by a file.
  ASSERT_EQ(::mkfifo((home_ + "/pipe").c_str(), 0600), 0);
  std::thread reader([&] { ReadFile(home_ + "/pipe"); });
  ProcessResult to_pipe = Lapce({"sessions", "export", first, "-o", home_ + "/pipe"});
  reader.join();
  EXPECT_EQ(to_pipe.exit_code, 0) << to_pipe.err;
  EXPECT_TRUE(std::filesystem::is_fifo(home_ + "/pipe"));

  // A full disk behind stdout is said, and a failure (it exited 0 having written nothing).
  ProcessResult full = test::RunProcess(
      {"/bin/sh", "-c", "exec \"$0\" sessions show \"$1\" > /dev/full", LAPCE_AI_BIN, first},
      Env());
  EXPECT_EQ(full.exit_code, 1) << full.err;
  EXPECT_NE(full.err.find("cannot write the output: No space left on device"), std::string::npos)
      << full.err;

  ProcessResult bad_format = Lapce({"sessions", "export", first, "--format", "pdf"});
  EXPECT_EQ(bad_format.exit_code, 2);
  EXPECT_NE(bad_format.err.find("md or json"), std::string::npos) << bad_format.err;

  // Both ids start with the creation time: their common prefix is ambiguous.
  size_t common = 0;
  while (common < first.size() && first[common] == second[common]) ++common;
  ASSERT_GT(common, 0u);
  ProcessResult ambiguous = Lapce({"sessions", "show", first.substr(0, common)});
  EXPECT_NE(ambiguous.exit_code, 0);
  EXPECT_NE(ambiguous.err.find(first), std::string::npos)
      << "lists the candidates: " << ambiguous.err;
  EXPECT_NE(ambiguous.err.find(second), std::string::npos) << ambiguous.err;

  ProcessResult unknown = Lapce({"sessions", "show", "zzzz"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("no session 'zzzz'"), std::string::npos) << unknown.err;
  EXPECT_NE(unknown.err.find("sessions list"), std::string::npos) << unknown.err;

  ProcessResult deleted = Lapce({"sessions", "delete", first});
  EXPECT_EQ(deleted.exit_code, 0) << deleted.err;
  ProcessResult gone = Lapce({"sessions", "show", first});
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_NE(gone.err.find("no session '" + first + "'"), std::string::npos) << gone.err;
  EXPECT_EQ(ListSessions().size(), 1u);
  // Several ids at once: an unknown one is said, and does not keep the others.
  ProcessResult delete_unknown = Lapce({"sessions", "delete", "zzzz", second});
  EXPECT_EQ(delete_unknown.exit_code, 1);
  EXPECT_NE(delete_unknown.err.find("no session 'zzzz'"), std::string::npos) << delete_unknown.err;
  EXPECT_NE(delete_unknown.out.find("deleted " + second), std::string::npos) << delete_unknown.out;
  EXPECT_EQ(ListSessions().size(), 0u);
}

TEST_F(AgentE2eTest, BadInputExitsWithTwoAndNamesTheProblem) {
  ProcessResult mode = Run("hi", {"--mode", "nosuchmode"});
  EXPECT_EQ(mode.exit_code, 2) << mode.err;
  EXPECT_NE(mode.err.find("nosuchmode"), std::string::npos) << mode.err;
  EXPECT_NE(mode.err.find("code"), std::string::npos) << "lists the modes: " << mode.err;

  ProcessResult profile = Lapce({"run", "hi", "--cwd", repo_, "--profile", "nosuchprofile"});
  EXPECT_EQ(profile.exit_code, 2) << profile.err;
  EXPECT_NE(profile.err.find("nosuchprofile"), std::string::npos) << profile.err;

  std::string missing = home_ + "/does-not-exist";
  std::vector<std::string> argv = {LAPCE_AI_BIN, "run", "hi", "--cwd", missing};
  for (const std::string& a : Provider()) argv.push_back(a);
  ProcessResult cwd = test::RunProcess(argv, Env());
  EXPECT_EQ(cwd.exit_code, 2) << cwd.err;
  EXPECT_NE(cwd.err.find(missing), std::string::npos) << cwd.err;

  ProcessResult no_task = Lapce({"run", "--cwd", repo_});
  EXPECT_EQ(no_task.exit_code, 2) << no_task.err;
  ProcessResult blank_task = Run(" \t\n ", {});  // Nothing to do: no paid request for it.
  EXPECT_EQ(blank_task.exit_code, 2) << blank_task.err;
  EXPECT_NE(blank_task.err.find("give the task"), std::string::npos) << blank_task.err;
  EXPECT_EQ(fake_->requests().size(), 0u);
  EXPECT_TRUE(ListSessions().empty());
}

}  // namespace
}  // namespace lai
