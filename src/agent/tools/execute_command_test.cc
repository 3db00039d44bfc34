// execute_command against real child processes: exit codes, streaming, timeouts that kill the
// whole group, binary output, floods, cancellation. Labelled integration (timing-dependent).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/tools/tool.h"
#include "workspace/workspace.h"

namespace lai::agent {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

class RecordingHost : public ToolHost {
 public:
  ApprovalReply Ask(const ApprovalRequest& request) override {
    last_kind = request.kind;
    last_request = request;
    return {approve, ""};
  }
  void OnOutput(std::string_view chunk) override {
    std::lock_guard<std::mutex> lock(mutex);
    streamed += chunk;
    if (cancel_on != nullptr && streamed.find("ready") != std::string::npos) cancel_on->store(true);
  }
  bool approve = true;
  ApprovalKind last_kind = ApprovalKind::kRead;
  ApprovalRequest last_request{ApprovalKind::kRead, "", "", ""};
  std::mutex mutex;
  std::string streamed;
  std::atomic<bool>* cancel_on = nullptr;
};

class ExecuteCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lai-exec-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto ws = workspace::Workspace::Open(dir_.string());
    ASSERT_TRUE(ws.ok()) << ws.error().ToString();
    workspace_ = *ws;
  }
  void TearDown() override {
    std::error_code error;
    fs::remove_all(dir_, error);
  }
  ToolResult Run(const std::string& command, const std::atomic<bool>* cancelled = nullptr) {
    const Tool* tool = FindWorkspaceTool("execute_command");
    ToolContext context{*workspace_, settings_, host_, cancelled};
    std::string args = "{\"command\": " + Quote(command) + "}";
    return tool->Run(args, context);
  }
  static std::string Quote(const std::string& text) {
    std::string out = "\"";
    for (char c : text) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    return out + "\"";
  }
  // Polls (bounded) until no process `pid` exists any more.
  static bool WaitGone(pid_t pid) {
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
      std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
      std::string line;
      std::getline(stat, line);
      // A zombie whose parent is not ours (reparented to init) counts as gone once reaped.
      if (line.find(") Z ") != std::string::npos) return true;
      std::this_thread::yield();
    }
    return false;
  }

  fs::path dir_;
  std::shared_ptr<const workspace::Workspace> workspace_;
  ToolSettings settings_;
  RecordingHost host_;
};

TEST_F(ExecuteCommandTest, ReportsExitCodeAndOutput) {
  ToolResult ok = Run("echo hello");
  EXPECT_FALSE(ok.is_error);
  EXPECT_EQ(ok.text, "Command executed in terminal within working directory '" +
                         workspace_->root() + "'. Exit code: 0\nOutput:\nhello\n");
  EXPECT_EQ(host_.last_kind, ApprovalKind::kCommand);
  ToolResult failed = Run("echo oops >&2; exit 3");
  EXPECT_NE(failed.text.find("Command execution was not successful"), std::string::npos);
  EXPECT_NE(failed.text.find("Exit code: 3\nOutput:\noops\n"), std::string::npos);
  EXPECT_NE(host_.streamed.find("oops"), std::string::npos);
}

// A command ended by a signal did not run to its end: a failed call, as a timeout or a cancel
// (it showed as done); a non-zero exit is the command's own answer, for the model to read.
TEST_F(ExecuteCommandTest, ACommandKilledByASignalFails) {
  ToolResult killed = Run("kill -TERM $$");
  EXPECT_TRUE(killed.is_error);
  EXPECT_NE(killed.text.find("Process terminated by signal SIGTERM"), std::string::npos)
      << killed.text;
  EXPECT_FALSE(Run("exit 3").is_error);
}

// A command that leaves a job running in the background holding its output: the model is told
// the job runs on and that its later output is not shown.
TEST_F(ExecuteCommandTest, AJobLeftRunningIsSaid) {
  ToolResult result = Run("sleep 30 & echo $! > job.pid; echo started");
  EXPECT_FALSE(result.is_error);
  EXPECT_NE(result.text.find("started in the background is still running"), std::string::npos)
      << result.text;
  std::ifstream pid_file(dir_ / "job.pid");
  pid_t job = 0;
  pid_file >> job;
  ASSERT_GT(job, 0);
  ::kill(job, SIGKILL);
}

TEST_F(ExecuteCommandTest, DeniedCommandDoesNotRun) {
  host_.approve = false;
  ToolResult result = Run("touch ran");
  EXPECT_TRUE(result.is_error);
  EXPECT_EQ(result.text, "The user denied this operation.");
  EXPECT_FALSE(fs::exists(dir_ / "ran"));
}

TEST_F(ExecuteCommandTest, TimeoutKillsTheWholeGroup) {
  settings_.command_timeout_seconds = 1;
  auto start = Clock::now();
  ToolResult result = Run("sleep 30 & echo $! > child.pid; echo started; wait");
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(15));
  EXPECT_TRUE(result.is_error);
  EXPECT_NE(result.text.find("timeout of 1s"), std::string::npos) << result.text;
  EXPECT_NE(result.text.find("started"), std::string::npos);
  std::ifstream pid_file(dir_ / "child.pid");
  pid_t child = 0;
  pid_file >> child;
  ASSERT_GT(child, 0);
  EXPECT_TRUE(WaitGone(child)) << "background child " << child << " survived the timeout";
}

TEST_F(ExecuteCommandTest, SpawnedChildrenOutputIsCollected) {
  ToolResult result = Run("sh -c 'echo from-child; sh -c \"echo grandchild\"'");
  EXPECT_NE(result.text.find("from-child\ngrandchild\n"), std::string::npos) << result.text;
}

TEST_F(ExecuteCommandTest, BinaryOutputIsSummarised) {
  ToolResult result = Run("printf 'a\\000b\\001c\\002'");
  EXPECT_NE(result.text.find("(binary output, 6 bytes, not shown)"), std::string::npos)
      << result.text;
}

// The model reads output as a terminal would show it: no colour codes, a progress line as last
// drawn, NUL-separated names one per line (one NUL hid a whole error message as "binary").
TEST_F(ExecuteCommandTest, OutputIsReadAsATerminalShowsIt) {
  ToolResult result =
      Run("printf '\\033[1;31mred\\033[0m \\033]0;title\\007ok\\n'; "
          "printf 'get 10%%\\rget 100%%\\r\\n'; printf 'a.txt\\000b.txt\\000'; "
          "printf 'ab\\bc\\n'; printf 'downloading...\\rdone\\n'; "
          "printf 'long progress\\r\\033[Kshort\\n'; printf 'caf\\303\\251s\\r\\303\\251\\n'; "
          "printf 'abc\\b\\bX\\n'; echo important error >&2; exit 2");
  // A carriage return writes over the line from its start: the tail stays unless erased.
  EXPECT_NE(result.text.find("Output:\nred ok\nget 100%\na.txt\nb.txt\nac\ndoneloading...\n"
                             "short\n\u00e9af\u00e9s\naXc\nimportant error\n"),
            std::string::npos)
      << result.text;
}

// Commands cannot wait for an editor, a pager or a password nobody will type, and `cd -` does
// not lead out of the checked directories.
TEST_F(ExecuteCommandTest, InteractiveHelpersGiveWayAtOnce) {
  ToolResult result =
      Run("echo $GIT_EDITOR $PAGER $GIT_PAGER $GIT_TERMINAL_PROMPT ${OLDPWD:-none}");
  EXPECT_NE(result.text.find("Output:\ntrue cat cat 0 none\n"), std::string::npos) << result.text;
}

// Lines so long that the kept ones exceed the character limit: what is left out is still said,
// in lines (the note of the line cut used to be cut out with the middle).
TEST_F(ExecuteCommandTest, LongLinesKeepHeadTailAndTheOmittedCount) {
  ToolResult result = Run("seq -f %099g 1 40000");  // 100 bytes a line.
  EXPECT_NE(result.text.find("Output:\n" + std::string(98, '0') + "1\n"), std::string::npos);
  EXPECT_NE(result.text.find(" lines ("), std::string::npos) << result.text.substr(0, 200);
  EXPECT_TRUE(result.text.ends_with(std::string(94, '0') + "40000\n"));
  // Whole lines are kept and counted: 100 at the start, 400 at the end.
  size_t kept = static_cast<size_t>(std::count(result.text.begin(), result.text.end(), '\n'));
  EXPECT_NE(result.text.find("[..." + std::to_string(40000 - 500) + " lines (3950000 characters)"),
            std::string::npos)
      << "kept " << kept << " lines";
  EXPECT_LT(result.text.size(), 51000u);
}

TEST_F(ExecuteCommandTest, FloodKeepsHeadAndTail) {
  settings_.command_output_line_limit = 100;
  ToolResult result = Run("seq 1 200000");
  EXPECT_NE(result.text.find("Output:\n1\n2\n"), std::string::npos);
  EXPECT_NE(result.text.find("[...199900 lines omitted...]"), std::string::npos);
  EXPECT_TRUE(result.text.ends_with("199999\n200000\n"))
      << result.text.substr(result.text.size() - 50);
  EXPECT_LT(result.text.size(), 2000u);
}

// Output larger than the runner keeps (its middle dropped) is still cut to the line limit: it
// kept 50,000 characters of short lines, over 10,000 tokens, which alone filled a small model's
// window.
TEST_F(ExecuteCommandTest, AHugeFloodKeepsTheLineLimit) {
  ToolResult result = Run("seq 1 3000000");  // 20 MB.
  EXPECT_NE(result.text.find("Output:\n1\n2\n"), std::string::npos);
  EXPECT_NE(result.text.find("[...2999500 lines ("), std::string::npos)
      << result.text.substr(0, 1500);
  EXPECT_TRUE(result.text.ends_with("2999999\n3000000\n"));
  EXPECT_LT(result.text.size(), 5000u);
}

// Output is cut to the room left in the model's window, as read_file's is.
TEST_F(ExecuteCommandTest, OutputFitsTheRoomLeft) {
  settings_.room_bytes = 4096;
  ToolResult result = Run("seq -f %099g 1 1000");  // 100 KB, 1,000 lines.
  EXPECT_LT(result.text.size(), 4096u + 200u) << result.text.size();
  EXPECT_NE(result.text.find(" lines ("), std::string::npos);
  EXPECT_TRUE(result.text.ends_with(std::string(95, '0') + "1000\n"));
}

TEST_F(ExecuteCommandTest, CancelStopsTheCommand) {
  std::atomic<bool> cancelled{false};
  host_.cancel_on = &cancelled;
  auto start = Clock::now();
  ToolResult result = Run("echo ready; sleep 30", &cancelled);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(15));
  EXPECT_TRUE(result.is_error);
  EXPECT_NE(result.text.find("cancelled"), std::string::npos) << result.text;
}

TEST_F(ExecuteCommandTest, BlockedFileReadIsRefused) {
  std::ofstream(dir_ / ".kilocodeignore") << "secret.txt\n";
  std::ofstream(dir_ / "secret.txt") << "s3cret\n";
  auto ws = workspace::Workspace::Open(dir_.string());
  ASSERT_TRUE(ws.ok());
  workspace_ = *ws;
  ToolResult result = Run("cat secret.txt");
  EXPECT_TRUE(result.is_error);
  EXPECT_NE(result.text.find("Access to secret.txt is blocked by the .kilocodeignore"),
            std::string::npos)
      << result.text;
  EXPECT_EQ(result.text.find("s3cret"), std::string::npos);
  // The rules file itself is refused as what it is, not as a file its own rules block.
  ToolResult rules = Run("echo '' > .kilocodeignore");
  EXPECT_TRUE(rules.is_error);
  EXPECT_NE(rules.text.find("Access to .kilocodeignore is blocked: it holds the rules"),
            std::string::npos)
      << rules.text;
  EXPECT_EQ(rules.text.find("blocked by the .kilocodeignore"), std::string::npos) << rules.text;
}

// What a command writes through redirections is named in its approval request, so that the
// policy asks for writes outside the workspace or to protected files whatever the allowed list
// says; a blocked file is never written. (An allowed `echo` wrote ~/.bashrc without a question.)
TEST_F(ExecuteCommandTest, RedirectionTargetsReachTheApprovalRequest) {
  std::ofstream(dir_ / ".kilocodeignore") << "secret.txt\n";
  auto ws = workspace::Workspace::Open(dir_.string());
  ASSERT_TRUE(ws.ok());
  workspace_ = *ws;
  fs::path outside = dir_.string() + "-outside.txt";
  host_.approve = false;  // Nothing runs: only the questions are looked at.
  Run("echo a1 > " + outside.string());
  EXPECT_EQ(host_.last_request.outside_paths, std::vector<std::string>{outside.string()});
  EXPECT_NE(host_.last_request.detail.find("Outside the workspace: " + outside.string()),
            std::string::npos)
      << host_.last_request.detail;
  EXPECT_FALSE(fs::exists(outside));
  Run("echo '{}' >> .kilocodemodes 2>&1");
  EXPECT_TRUE(host_.last_request.outside_paths.empty());
  EXPECT_EQ(host_.last_request.protected_paths, std::vector<std::string>{".kilocodemodes"});
  Run("echo hi > out.txt 2> /dev/null");
  EXPECT_TRUE(host_.last_request.outside_paths.empty());
  EXPECT_TRUE(host_.last_request.protected_paths.empty());
  EXPECT_EQ(host_.last_request.written_paths, std::vector<std::string>{"out.txt"});
  EXPECT_NE(host_.last_request.detail.find("Writes: out.txt"), std::string::npos)
      << host_.last_request.detail;
  // What it names outside the workspace, it may read: named too.
  Run("cat " + outside.parent_path().string() + " < /dev/null");
  EXPECT_EQ(host_.last_request.outside_reads,
            std::vector<std::string>{outside.parent_path().string()});
  EXPECT_NE(host_.last_request.detail.find("Reads outside the workspace: "), std::string::npos)
      << host_.last_request.detail;
  Run("ls src; cat notes.txt 2>/dev/null");
  EXPECT_TRUE(host_.last_request.outside_reads.empty());
  // Where only the shell can tell is asked about like outside.
  Run("echo a1 >> $HOME/.bashrc");
  EXPECT_EQ(host_.last_request.outside_paths,
            std::vector<std::string>{"$HOME/.bashrc (not known until it runs)"});
  EXPECT_NE(host_.last_request.detail.find("Writes files known only when it runs: $HOME/.bashrc"),
            std::string::npos)
      << host_.last_request.detail;
  EXPECT_EQ(host_.last_request.detail.find("Outside the workspace"), std::string::npos)
      << host_.last_request.detail;

  host_.approve = true;
  host_.last_request.target.clear();
  ToolResult blocked = Run("echo pwned > secret.txt");
  EXPECT_TRUE(blocked.is_error);
  EXPECT_NE(blocked.text.find("secret.txt is blocked"), std::string::npos) << blocked.text;
  EXPECT_TRUE(host_.last_request.target.empty()) << "a blocked write is refused before asking";
  EXPECT_FALSE(fs::exists(dir_ / "secret.txt"));
}

// A cwd outside the workspace is part of the command's one question (there were two).
TEST_F(ExecuteCommandTest, AnOutsideCwdIsAskedWithTheCommand) {
  const Tool* tool = FindWorkspaceTool("execute_command");
  int asked = 0;
  struct CountingHost : ToolHost {
    int* asked;
    ApprovalRequest* last;
    ApprovalReply Ask(const ApprovalRequest& request) override {
      ++*asked;
      *last = request;
      return {true, ""};
    }
  };
  ApprovalRequest last{ApprovalKind::kRead, "", "", ""};
  CountingHost counting;
  counting.asked = &asked;
  counting.last = &last;
  ToolContext counted{*workspace_, settings_, counting, nullptr};
  ToolResult result = tool->Run(R"({"command": "pwd", "cwd": "/tmp"})", counted);
  EXPECT_FALSE(result.is_error) << result.text;
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(last.kind, ApprovalKind::kCommand);
  EXPECT_EQ(last.outside_paths, std::vector<std::string>{"/tmp"});
}

}  // namespace
}  // namespace lai::agent
