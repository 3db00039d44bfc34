#include "workspace/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "workspace/internal/spawn.h"
#include "workspace/test_support.h"
#include "workspace/workspace.h"

namespace lai::workspace {
namespace {

using namespace std::chrono_literals;
using testing::ProcessEnds;
using testing::WaitForPidFile;

CommandOptions InTmp() {
  CommandOptions options;
  options.cwd = "/tmp";
  options.timeout = 30s;  // Bounds every test; the ones about timeouts set their own.
  return options;
}

// A program that cannot be started names what is missing: the program, or the directory (it
// named both, for a directory that was there).
TEST(SpawnTest, AMissingProgramOrDirectoryIsNamed) {
  testing::TempTree tree;
  internal::SpawnOptions options;
  options.argv = {"/nonexistent/program"};
  options.cwd = tree.root();
  options.discards_output = true;
  Result<internal::SpawnedChild> missing = internal::Spawn(options);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message(), "start '/nonexistent/program': program not found");
  options.argv = {"true"};
  options.cwd = tree.root() + "/gone";
  Result<internal::SpawnedChild> elsewhere = internal::Spawn(options);
  ASSERT_FALSE(elsewhere.ok());
  EXPECT_EQ(elsewhere.error().message(),
            "start 'true': working directory '" + tree.root() + "/gone' not found");
}

TEST(RunCommandTest, CapturesOutputAndExitCode) {
  CommandOptions options = InTmp();
  std::string streamed;
  options.on_output = [&](std::string_view chunk) { streamed.append(chunk); };
  auto outcome = RunCommand("echo out; echo err >&2; pwd; exit 3", options);
  ASSERT_TRUE(outcome.ok()) << outcome.error().ToString();
  EXPECT_EQ(outcome->exit_code, 3);
  EXPECT_EQ(outcome->signal, 0);
  EXPECT_FALSE(outcome->timed_out);
  EXPECT_EQ(outcome->output, "out\nerr\n/tmp\n");
  EXPECT_EQ(streamed, outcome->output);
}

TEST(RunCommandTest, StdinIsDevNull) {
  auto outcome = RunCommand("cat; echo done", InTmp());
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->output, "done\n");
}

TEST(RunCommandTest, BinaryOutputIsKeptByteForByte) {
  auto outcome = RunCommand("printf 'a\\000b\\377c'", InTmp());
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->output, std::string("a\0b\xff"
                                         "c",
                                         5));
}

// A flood keeps its start and end, keep_bytes in all; the middle is counted, not kept (a command
// printing without end filled memory).
TEST(RunCommandTest, FloodOfOutputKeepsItsStartAndEnd) {
  CommandOptions options = InTmp();
  std::string streamed_end;
  size_t streamed = 0;
  options.on_output = [&](std::string_view chunk) {
    streamed += chunk.size();
    streamed_end = std::string(chunk.substr(chunk.size() > 16 ? chunk.size() - 16 : 0));
  };
  auto outcome = RunCommand("seq 1 1000000", options);  // 6,888,896 bytes.
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->exit_code, 0);
  EXPECT_EQ(streamed, 6888896u);  // on_output sees everything.
  EXPECT_EQ(outcome->output.size(), options.keep_bytes);
  EXPECT_EQ(outcome->output.size() + outcome->dropped_bytes, 6888896u);
  EXPECT_TRUE(outcome->output.starts_with("1\n2\n3\n"));
  EXPECT_TRUE(outcome->output.ends_with("999999\n1000000\n"));
  uint64_t kept_lines =
      static_cast<uint64_t>(std::count(outcome->output.begin(), outcome->output.end(), '\n'));
  EXPECT_EQ(kept_lines + outcome->dropped_lines, 1000000u);

  options.keep_bytes = 1 << 30;  // Room for all of it.
  outcome = RunCommand("seq 1 1000000", options);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->output.size(), 6888896u);
  EXPECT_EQ(outcome->dropped_bytes, 0u);
}

TEST(RunCommandTest, MissingCwdIsNotFound) {
  CommandOptions options = InTmp();
  options.cwd = "/nonexistent/lai-test";
  EXPECT_EQ(RunCommand("true", options).status().code(), ErrorCode::kNotFound);
}

TEST(RunCommandTest, TimeoutKillsTheWholeGroup) {
  CommandOptions options = InTmp();
  options.timeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  auto outcome = RunCommand("sleep 30 & echo $$ $!; wait", options);
  ASSERT_TRUE(outcome.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_TRUE(outcome->timed_out);
  EXPECT_EQ(outcome->exit_code, -1);
  EXPECT_EQ(outcome->signal, SIGTERM);
  std::istringstream pids(outcome->output);
  pid_t shell = 0;
  pid_t grandchild = 0;
  ASSERT_TRUE(pids >> shell >> grandchild) << outcome->output;
  EXPECT_TRUE(ProcessEnds(grandchild));
  // Our own child, the shell, was reaped: it is no child of this process any more.
  EXPECT_EQ(::waitpid(shell, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(RunCommandTest, IgnoredSigtermGetsSigkill) {
  CommandOptions options = InTmp();
  options.timeout = 200ms;
  auto outcome = RunCommand("trap '' TERM; echo ready; while :; do sleep 0.05; done", options);
  ASSERT_TRUE(outcome.ok());
  EXPECT_TRUE(outcome->timed_out);
  EXPECT_EQ(outcome->signal, SIGKILL);
}

// A background job that keeps the command's output (`npm run dev &`) does not hold the command
// up, and runs on, as in a terminal (it was killed 250 ms later): its writes do not block.
TEST(RunCommandTest, ABackgroundJobHoldingTheOutputRunsOn) {
  testing::TempTree tree;
  const std::string ticks = tree.root() + "/ticks";
  auto start = std::chrono::steady_clock::now();
  auto outcome = RunCommand(
      "(while :; do echo tick; echo x >> '" + ticks + "'; sleep 0.02; done) & echo $!", InTmp());
  ASSERT_TRUE(outcome.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(outcome->exit_code, 0);
  EXPECT_TRUE(outcome->left_running);
  // The job's first ticks may come before the shell's line with its pid.
  pid_t job = 0;
  std::istringstream lines(outcome->output);
  for (std::string line; job == 0 && std::getline(lines, line);) {
    if (!line.empty() && line.find_first_not_of("0123456789") == std::string::npos) {
      job = static_cast<pid_t>(std::stol(line));
    }
  }
  ASSERT_GT(job, 0) << outcome->output;
  auto count = [&] {
    std::ifstream in(ticks);
    return std::count(std::istreambuf_iterator<char>(in), {}, '\n');
  };
  const auto before = count();
  std::this_thread::sleep_for(300ms);
  EXPECT_GT(count(), before) << "the job stopped (or blocked writing its output)";
  ::kill(-job, SIGKILL);  // Its group: the subshell's pid leads it.
  ::kill(job, SIGKILL);
  EXPECT_TRUE(ProcessEnds(job));
}

TEST(RunCommandTest, CancellationStopsTheCommand) {
  std::atomic<bool> cancelled{false};
  CommandOptions options = InTmp();
  options.cancelled = &cancelled;
  options.on_output = [&](std::string_view) { cancelled.store(true); };
  auto outcome = RunCommand("echo started; sleep 30", options);
  ASSERT_TRUE(outcome.ok());
  EXPECT_TRUE(outcome->cancelled);
  EXPECT_FALSE(outcome->timed_out);
  EXPECT_EQ(outcome->output, "started\n");
}

// What a front end does before it exits: the group of every running command gets the signal,
// including what the shell left in the background; once the command has returned it is no longer
// listed, so signalling again reaches nothing.
TEST(RunCommandTest, SignalRunningCommandsReachesEveryRunningGroup) {
  std::atomic<int> started{0};
  auto run = [&](Result<CommandOutcome>* outcome) {
    CommandOptions options = InTmp();
    options.on_output = [&](std::string_view) { started.fetch_add(1); };
    *outcome = RunCommand("sleep 30 & echo $!; wait", options);
  };
  Result<CommandOutcome> first = Error(ErrorCode::kInternal, "not run");
  Result<CommandOutcome> second = Error(ErrorCode::kInternal, "not run");
  auto start = std::chrono::steady_clock::now();
  std::thread a(run, &first);
  std::thread b(run, &second);
  while (started.load() < 2 && std::chrono::steady_clock::now() - start < 10s) {
    std::this_thread::sleep_for(5ms);  // Polling with a deadline, not synchronisation.
  }
  EXPECT_EQ(SignalRunningCommands(SIGTERM), 2u);
  a.join();
  b.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  for (Result<CommandOutcome>* outcome : {&first, &second}) {
    ASSERT_TRUE(outcome->ok()) << outcome->error().message();
    EXPECT_EQ((*outcome)->signal, SIGTERM);
    EXPECT_FALSE((*outcome)->timed_out);
    EXPECT_TRUE(ProcessEnds(static_cast<pid_t>(std::stol((*outcome)->output))));
  }
  EXPECT_EQ(SignalRunningCommands(SIGKILL), 0u);  // Nothing is listed any more.
}

// The child of `parent` whose command line holds `needle`; 0 when there is none.
pid_t ChildWith(pid_t parent, const std::string& needle) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    if (!(rest >> state >> ppid) || ppid != parent) continue;
    std::ifstream cmdline_file(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(cmdline_file)), {});
    if (cmdline.find(needle) != std::string::npos) return std::stoi(name);
  }
  return 0;
}

// A process that ran commands and holds a child is killed with SIGKILL, although each leads a
// session of its own: what a finished command left in the background, the child, and a running
// command all end. The running command's shell gets SIGTERM and its 2 s to finish (it writes a
// file from its trap; a write to its output would end it with SIGPIPE, its reader being gone); a
// job in its group that ignores SIGTERM gets SIGKILL after them. The
// process's watcher was killed on the way: it is started again, and told every group. The
// process is forked from this one, so it also shows that a fork starts a watcher of its own.
TEST(RunCommandTest, CommandsAndChildrenEndWhenTheirProcessIsKilled) {
  testing::TempTree tree;
  auto file = [&](const char* name) { return tree.root() + "/" + name; };
  ASSERT_TRUE(RunCommand("true", InTmp()).ok());  // This process has its watcher now.
  pid_t engine = ::fork();
  ASSERT_GE(engine, 0);
  if (engine == 0) {
    (void)RunCommand("sleep 300 >/dev/null 2>&1 & echo $! > '" + file("background.pid") + "'",
                     InTmp());
    while (!std::filesystem::exists(file("go"))) std::this_thread::sleep_for(10ms);
    ChildOptions sleeper;
    sleeper.argv = {"sleep", "300"};
    auto child = Child::Start(sleeper);
    std::ofstream(file("child.pid")) << (child.ok() ? (*child)->pid() : -1) << "\n";
    // The job's pid is written once the command's output comes, which is after the watcher was
    // told of its group. (SIGKILL between the spawn and that line, microseconds apart, would
    // leave the command unwatched; the test would find that window on a loaded machine.)
    CommandOptions options = InTmp();
    std::string line;
    options.on_output = [&](std::string_view chunk) {
      line.append(chunk);
      if (line.ends_with('\n')) std::ofstream(file("command.pid")) << line;
    };
    (void)RunCommand("trap 'echo cleaned > \"" + file("cleaned") + "\"; exit 0' TERM; " +
                         "(trap '' TERM; exec sleep 300) & echo $!; wait",
                     options);
    ::_exit(0);
  }
  pid_t background = WaitForPidFile(file("background.pid"));
  pid_t watcher = 0;
  for (int i = 0; i < 500 && watcher == 0; ++i) {  // Bounded: 5 s.
    watcher = ChildWith(engine, "read -r line");
    if (watcher == 0) std::this_thread::sleep_for(10ms);
  }
  EXPECT_GT(watcher, 0) << "no watcher";
  if (watcher > 0) ::kill(watcher, SIGKILL);
  std::ofstream(file("go")).close();
  pid_t child = WaitForPidFile(file("child.pid"));
  pid_t command = WaitForPidFile(file("command.pid"));
  ::kill(engine, SIGKILL);
  ::waitpid(engine, nullptr, 0);
  ASSERT_GT(background, 0);
  ASSERT_GT(child, 0);
  ASSERT_GT(command, 0);
  EXPECT_TRUE(ProcessEnds(background)) << "a background job outlived its process";
  EXPECT_TRUE(ProcessEnds(child)) << "the child outlived its process";
  EXPECT_TRUE(ProcessEnds(command)) << "the command outlived its process";
  std::ifstream cleaned(file("cleaned"));
  std::string word;
  EXPECT_TRUE(cleaned >> word && word == "cleaned") << "the command had no time to clean up";
  for (pid_t pid : {background, child, command}) ::kill(pid, SIGKILL);  // Should a check fail.
}

// The variables named in hidden_env are not inherited; the rest are.
TEST(RunCommandTest, HiddenVariablesAreNotInherited) {
  ::setenv("LAI_TEST_HIDDEN_KEY", "secret", 1);
  ::setenv("LAI_TEST_KEPT", "kept", 1);
  CommandOptions options = InTmp();
  options.hidden_env = {"LAI_TEST_HIDDEN_KEY"};
  auto outcome = RunCommand("echo ${LAI_TEST_HIDDEN_KEY:-unset} $LAI_TEST_KEPT", options);
  ::unsetenv("LAI_TEST_HIDDEN_KEY");
  ::unsetenv("LAI_TEST_KEPT");
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->output, "unset kept\n");
}

// Makes `tree` a git repository whose first commit holds `paths`; returns the words that run
// git there ("cd '<root>' && git -c … "), followed by a subcommand.
std::string CommitIn(const testing::TempTree& tree, const std::string& paths) {
  std::string git = "cd '" + tree.root() + "' && git -c user.name=t -c user.email=t@t ";
  EXPECT_EQ(
      std::system(
          (git + "init -q && " + git + "add " + paths + " && " + git + "commit -q -m one").c_str()),
      0);
  return git;
}

// git diff, git show and git log -p show the changes of tracked files: a tracked blocked file
// among those they cover refuses them (git diff printed its old and new lines).
TEST(GitGrepTest, PatchesOfTrackedBlockedFilesRefuseTheCommand) {
  testing::TempTree tree;
  tree.File(".kilocodeignore", "*.env\n");
  tree.File("src/main.c", "int main;\n");
  tree.File("local.env", "SECRET=1\n");
  // .kilocodeignore itself is tracked, as projects do: its patterns are no secret.
  const std::string git = CommitIn(tree, "src .kilocodeignore");
  auto workspace = Workspace::Open(tree.root());
  ASSERT_TRUE(workspace.ok());
  const std::string& cwd = tree.root();
  // Untracked: no patch of git's shows it.
  EXPECT_EQ((*workspace)->FindBlockedPathInCommand("git diff", cwd), std::nullopt);
  EXPECT_EQ((*workspace)->FindBlockedPathInCommand("git log -p", cwd), std::nullopt);
  ASSERT_EQ(std::system((git + "add -f local.env && " + git + "commit -q -m two").c_str()), 0);
  for (const char* command :
       {"git diff", "git diff HEAD~1", "git show", "git log -p", "git log --patch -3",
        "git format-patch -1 --stdout", "git stash show -p", "git archive HEAD -o /tmp/a.zip"}) {
    EXPECT_EQ((*workspace)->FindBlockedPathInCommand(command, cwd), "./local.env") << command;
  }
  for (const char* command : {"git blame local.env", "git annotate local.env",
                              "git log -L1,1:local.env", "rev local.env"}) {
    EXPECT_EQ((*workspace)->FindBlockedPathInCommand(command, cwd), "local.env") << command;
  }
  // Paths that leave it out, and commands that show no file's content, go.
  EXPECT_EQ((*workspace)->FindBlockedPathInCommand("git diff -- src", cwd), std::nullopt);
  EXPECT_EQ((*workspace)->FindBlockedPathInCommand("git log -p src/main.c", cwd), std::nullopt);
  EXPECT_EQ((*workspace)->FindBlockedPathInCommand("git log --oneline", cwd), std::nullopt);
  EXPECT_EQ((*workspace)->FindBlockedPathInCommand("git status", cwd), std::nullopt);
}

// A command inherits nothing of the engine but its three standard streams: not a descriptor some
// library opened without close-on-exec (libcurl's provider connections were readable and
// writable by every command).
TEST(RunCommandTest, ACommandInheritsOnlyItsStandardStreams) {
  int leaked = ::open("/dev/null", O_RDONLY);  // Without O_CLOEXEC, on purpose.
  ASSERT_GE(leaked, 3);
  auto outcome = RunCommand(
      "test -e /proc/$$/fd/" + std::to_string(leaked) + " && echo inherited || echo closed",
      InTmp());
  ::close(leaked);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->output, "closed\n");
}

// git grep reads the files git tracks (asked of git itself), not every file in the directory:
// an untracked blocked file does not refuse it, a tracked one does, and --untracked reads all.
TEST(GitGrepTest, OnlyTrackedBlockedFilesRefuseIt) {
  testing::TempTree tree;
  tree.File(".kilocodeignore", "*.env\n");
  tree.File("notes.txt", "hello\n");
  tree.File("local.env", "SECRET=1\n");
  const std::string git = CommitIn(tree, "notes.txt");
  auto workspace = Workspace::Open(tree.root());
  ASSERT_TRUE(workspace.ok());
  const std::string& cwd = tree.root();
  EXPECT_EQ((*workspace)->FindBlockedPathInCommand("git grep hello", cwd), std::nullopt);
  EXPECT_EQ((*workspace)->FindBlockedPathInCommand("git grep hello HEAD", cwd), std::nullopt);
  EXPECT_EQ((*workspace)->FindBlockedPathInCommand("git grep --untracked hello", cwd),
            "./local.env");
  ASSERT_EQ(std::system((git + "add -f local.env").c_str()), 0);
  EXPECT_EQ((*workspace)->FindBlockedPathInCommand("git grep hello", cwd), "./local.env");
  EXPECT_EQ((*workspace)->FindBlockedPathInCommand("git grep hello -- notes.txt", cwd),
            std::nullopt);
  ASSERT_EQ(std::system((git + "commit -q -m two").c_str()), 0);
  ASSERT_EQ(std::system((git + "rm -q --cached local.env").c_str()), 0);
  EXPECT_EQ((*workspace)->FindBlockedPathInCommand("git grep SECRET HEAD", cwd), "./local.env");
}

}  // namespace
}  // namespace lai::workspace
