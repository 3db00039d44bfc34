#include "agent/approval_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace lai::agent {
namespace {

ApprovalRequest Request(ApprovalKind kind, std::string tool, std::string target = "a.txt") {
  return ApprovalRequest{kind, std::move(tool), std::move(target), ""};
}

AutoApproveSettings NothingApproved() {
  AutoApproveSettings settings;
  settings.read = false;
  return settings;
}

// ---- The approval table -----------------------------------------------------------------------

TEST(DecideTest, DefaultsApproveOnlyReadsInsideTheWorkspace) {
  AutoApproveSettings settings;
  EXPECT_EQ(Decide(Request(ApprovalKind::kRead, "read_file"), settings), Decision::kApprove);
  EXPECT_EQ(Decide(Request(ApprovalKind::kOutsideWorkspace, "read_file", "/etc/hosts"), settings),
            Decision::kAsk);
  EXPECT_EQ(Decide(Request(ApprovalKind::kWrite, "write_to_file"), settings), Decision::kAsk);
  EXPECT_EQ(Decide(Request(ApprovalKind::kDelete, "delete_file"), settings), Decision::kAsk);
  EXPECT_EQ(Decide(Request(ApprovalKind::kProtected, "write_to_file"), settings), Decision::kAsk);
  EXPECT_EQ(Decide(Request(ApprovalKind::kCommand, "execute_command", "git log"), settings),
            Decision::kAsk);
}

TEST(DecideTest, EachCategoryHasItsSwitch) {
  struct Row {
    ApprovalKind kind;
    std::string tool;
    bool AutoApproveSettings::*flag;
  };
  const std::vector<Row> rows = {
      {ApprovalKind::kRead, "read_file", &AutoApproveSettings::read},
      {ApprovalKind::kRead, "list_files", &AutoApproveSettings::read},
      {ApprovalKind::kWrite, "write_to_file", &AutoApproveSettings::write},
      {ApprovalKind::kWrite, "apply_diff", &AutoApproveSettings::write},
      {ApprovalKind::kDelete, "delete_file", &AutoApproveSettings::delete_files},
  };
  for (const Row& row : rows) {
    AutoApproveSettings settings = NothingApproved();
    ApprovalRequest request = Request(row.kind, row.tool);
    EXPECT_EQ(Decide(request, settings), Decision::kAsk) << row.tool;
    settings.*row.flag = true;
    EXPECT_EQ(Decide(request, settings), Decision::kApprove) << row.tool;
    settings.enabled = false;  // The master switch turns every category off.
    EXPECT_EQ(Decide(request, settings), Decision::kAsk) << row.tool;
  }
}

TEST(DecideTest, ProtectedPathsNeedTheirOwnSwitch) {
  AutoApproveSettings settings = NothingApproved();
  ApprovalRequest write = Request(ApprovalKind::kProtected, "write_to_file", ".kilocodemodes");
  ApprovalRequest remove = Request(ApprovalKind::kProtected, "delete_file", ".kilocode/rules/a");
  settings.write = true;
  EXPECT_EQ(Decide(write, settings), Decision::kAsk);
  settings.write_protected = true;
  EXPECT_EQ(Decide(write, settings), Decision::kApprove);
  EXPECT_EQ(Decide(remove, settings), Decision::kAsk);  // Deleting also needs delete_files.
  settings.delete_files = true;
  EXPECT_EQ(Decide(remove, settings), Decision::kApprove);
  settings.write_protected = false;
  EXPECT_EQ(Decide(remove, settings), Decision::kAsk);
}

TEST(DecideTest, OutsideTheWorkspaceDependsOnWhatTheToolDoes) {
  AutoApproveSettings settings = NothingApproved();
  ApprovalRequest read = Request(ApprovalKind::kOutsideWorkspace, "read_file", "/tmp/x");
  ApprovalRequest search = Request(ApprovalKind::kOutsideWorkspace, "search_files", "/tmp");
  ApprovalRequest write = Request(ApprovalKind::kOutsideWorkspace, "write_to_file", "/tmp/x");
  ApprovalRequest remove = Request(ApprovalKind::kOutsideWorkspace, "delete_file", "/tmp/x");
  ApprovalRequest unknown = Request(ApprovalKind::kOutsideWorkspace, "mystery_tool", "/tmp/x");

  settings.read_outside_workspace = true;
  EXPECT_EQ(Decide(read, settings), Decision::kAsk);  // Needs read as well.
  settings.read = true;
  EXPECT_EQ(Decide(read, settings), Decision::kApprove);
  EXPECT_EQ(Decide(search, settings), Decision::kApprove);
  EXPECT_EQ(Decide(write, settings), Decision::kAsk);

  settings.write = true;
  EXPECT_EQ(Decide(write, settings), Decision::kAsk);
  settings.write_outside_workspace = true;
  EXPECT_EQ(Decide(write, settings), Decision::kApprove);
  EXPECT_EQ(Decide(unknown, settings), Decision::kApprove);  // Held to the write rule.
  EXPECT_EQ(Decide(remove, settings), Decision::kAsk);
  settings.delete_files = true;
  EXPECT_EQ(Decide(remove, settings), Decision::kApprove);

  settings.write = false;
  EXPECT_EQ(Decide(unknown, settings), Decision::kAsk);
}

TEST(DecideTest, CommandsNeedExecuteThenFollowTheLists) {
  AutoApproveSettings settings = NothingApproved();
  settings.denied_commands = {"rm"};
  ApprovalRequest log = Request(ApprovalKind::kCommand, "execute_command", "git log -5");
  ApprovalRequest rm = Request(ApprovalKind::kCommand, "execute_command", "rm -rf build");
  ApprovalRequest make = Request(ApprovalKind::kCommand, "execute_command", "make");
  EXPECT_EQ(Decide(log, settings), Decision::kAsk);
  EXPECT_EQ(Decide(rm, settings), Decision::kAsk);  // Like Kilo: the lists need execute on.
  settings.execute = true;
  EXPECT_EQ(Decide(log, settings), Decision::kApprove);  // default allow list
  EXPECT_EQ(Decide(rm, settings), Decision::kDeny);
  EXPECT_EQ(Decide(make, settings), Decision::kAsk);
}

// An allowed command that writes outside the workspace or to a protected file still asks,
// unless that kind of write is auto-approved too; a denied one stays denied.
TEST(DecideTest, CommandsWritingOutsideOrProtectedPathsNeedThoseSwitches) {
  AutoApproveSettings settings = NothingApproved();
  settings.execute = true;
  settings.allowed_commands = {"echo"};
  settings.denied_commands = {"rm"};
  ApprovalRequest out = Request(ApprovalKind::kCommand, "execute_command", "echo a > /tmp/x");
  out.outside_paths = {"/tmp/x"};
  ApprovalRequest modes = Request(ApprovalKind::kCommand, "execute_command", "echo a > .roomodes");
  modes.protected_paths = {".roomodes"};
  ApprovalRequest rm = Request(ApprovalKind::kCommand, "execute_command", "rm x > /tmp/y");
  rm.outside_paths = {"/tmp/y"};
  EXPECT_EQ(Decide(out, settings), Decision::kAsk);
  EXPECT_EQ(Decide(modes, settings), Decision::kAsk);
  EXPECT_EQ(Decide(rm, settings), Decision::kDeny);
  settings.write_outside_workspace = true;
  settings.write_protected = true;
  EXPECT_EQ(Decide(out, settings), Decision::kApprove);
  EXPECT_EQ(Decide(modes, settings), Decision::kApprove);
  // Workspace files it writes need `write` (`git log --output=package.json`, then an allowed
  // `npm test`, ran anything unasked); paths outside it names need read_outside.
  settings.allowed_commands = {"git log", "cat"};
  ApprovalRequest output =
      Request(ApprovalKind::kCommand, "execute_command", "git log --output=package.json");
  output.written_paths = {"package.json"};
  ApprovalRequest key = Request(ApprovalKind::kCommand, "execute_command", "cat ~/.ssh/id_rsa");
  key.outside_reads = {"/home/u/.ssh/id_rsa"};
  EXPECT_EQ(Decide(output, settings), Decision::kAsk);
  EXPECT_EQ(Decide(key, settings), Decision::kAsk);
  settings.write = true;
  settings.read = settings.read_outside_workspace = true;
  EXPECT_EQ(Decide(output, settings), Decision::kApprove);
  EXPECT_EQ(Decide(key, settings), Decision::kApprove);
}

TEST(DecideTest, SessionKinds) {
  AutoApproveSettings settings = NothingApproved();
  EXPECT_EQ(Decide(SessionApprovalKind::kModeSwitch, settings), Decision::kAsk);
  EXPECT_EQ(Decide(SessionApprovalKind::kSubtask, settings), Decision::kAsk);
  EXPECT_EQ(Decide(SessionApprovalKind::kFinishSubtask, settings), Decision::kAsk);
  EXPECT_EQ(Decide(SessionApprovalKind::kFollowupQuestion, settings), Decision::kAsk);
  EXPECT_EQ(Decide(SessionApprovalKind::kTodoUpdate, settings), Decision::kApprove);

  settings.mode_switch = settings.subtasks = settings.followup_questions = true;
  EXPECT_EQ(Decide(SessionApprovalKind::kModeSwitch, settings), Decision::kApprove);
  EXPECT_EQ(Decide(SessionApprovalKind::kSubtask, settings), Decision::kApprove);
  EXPECT_EQ(Decide(SessionApprovalKind::kFinishSubtask, settings), Decision::kApprove);
  EXPECT_EQ(Decide(SessionApprovalKind::kFollowupQuestion, settings), Decision::kApprove);
  settings.followup_timeout_ms = 0;  // No wait configured: the user answers.
  EXPECT_EQ(Decide(SessionApprovalKind::kFollowupQuestion, settings), Decision::kAsk);

  settings.enabled = false;
  EXPECT_EQ(Decide(SessionApprovalKind::kModeSwitch, settings), Decision::kAsk);
  EXPECT_EQ(Decide(SessionApprovalKind::kTodoUpdate, settings), Decision::kAsk);
}

// ---- Commands ---------------------------------------------------------------------------------

using Commands = std::vector<std::string>;

TEST(SplitCommandTest, SplitsChainsOutsideQuotes) {
  EXPECT_EQ(SplitCommand("git log && npm test; ls | wc -l"),
            (Commands{"git log", "npm test", "ls", "wc -l"}));
  EXPECT_EQ(SplitCommand("a || b\nc & d |& e"), (Commands{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(SplitCommand(R"(echo "a && b; c" && ls)"), (Commands{R"(echo "a && b; c")", "ls"}));
  EXPECT_EQ(SplitCommand("echo 'x | y' ; pwd"), (Commands{"echo 'x | y'", "pwd"}));
  EXPECT_EQ(SplitCommand(R"(echo "say \"hi\" | there")"),
            (Commands{R"(echo "say \"hi\" | there")"}));
  EXPECT_EQ(SplitCommand(R"(echo a\;b)"), (Commands{R"(echo a\;b)"}));
  EXPECT_EQ(SplitCommand("make \\\n  all"), (Commands{"make    all"}));
  EXPECT_EQ(SplitCommand("(cd sub && make)"), (Commands{"cd sub", "make"}));
  EXPECT_EQ(SplitCommand("   ;; \n "), Commands{});
}

TEST(SplitCommandTest, RedirectionsAreNotSeparators) {
  EXPECT_EQ(SplitCommand("make 2>&1 | tee log"), (Commands{"make 2>&1", "tee log"}));
  EXPECT_EQ(SplitCommand("make &> log"), (Commands{"make &> log"}));
  EXPECT_EQ(SplitCommand("cat <&3 >&2"), (Commands{"cat <&3 >&2"}));
}

TEST(SplitCommandTest, SubstitutedCommandsAreCommandsToo) {
  Commands commands = SplitCommand("echo $(rm -rf /tmp/x; id) done");
  EXPECT_NE(std::find(commands.begin(), commands.end(), "rm -rf /tmp/x"), commands.end());
  EXPECT_NE(std::find(commands.begin(), commands.end(), "id"), commands.end());
  EXPECT_NE(std::find(commands.begin(), commands.end(), "echo $(rm -rf /tmp/x; id) done"),
            commands.end());
  commands = SplitCommand("diff <(sort a) `which b`");
  EXPECT_NE(std::find(commands.begin(), commands.end(), "sort a"), commands.end());
  EXPECT_NE(std::find(commands.begin(), commands.end(), "which b"), commands.end());
}

TEST(DangerousSubstitutionTest, DetectsCodeThatPrefixesCannotVouchFor) {
  EXPECT_TRUE(HasDangerousSubstitution("echo $(whoami)"));
  EXPECT_TRUE(HasDangerousSubstitution("echo `whoami`"));
  EXPECT_TRUE(HasDangerousSubstitution("echo \"$(whoami)\""));  // runs inside double quotes
  EXPECT_TRUE(HasDangerousSubstitution("diff <(ls a) <(ls b)"));
  EXPECT_TRUE(HasDangerousSubstitution("ls > >(tee out)"));
  EXPECT_TRUE(HasDangerousSubstitution("cat <<< $(id)"));
  EXPECT_TRUE(HasDangerousSubstitution("echo ${PS1@P}"));
  EXPECT_TRUE(HasDangerousSubstitution("echo ${x@Q}"));
  EXPECT_TRUE(HasDangerousSubstitution("echo ${!name}"));
  EXPECT_TRUE(HasDangerousSubstitution("echo ${x:-\\140id\\140}"));
  EXPECT_TRUE(HasDangerousSubstitution("cat =(id)"));
  EXPECT_TRUE(HasDangerousSubstitution("ls *(e:whoami:)"));

  EXPECT_FALSE(HasDangerousSubstitution("echo '$(whoami)' '`id`' '${x@P}'"));  // literal
  EXPECT_FALSE(HasDangerousSubstitution("echo ${HOME} $PATH"));
  EXPECT_FALSE(HasDangerousSubstitution("git log --oneline | head -5 2>&1"));
}

TEST(DecideCommandTest, LongestPrefixWins) {
  Commands allowed = {"git", "git push --dry-run", "npm test"};
  Commands denied = {"git push"};
  EXPECT_EQ(DecideCommand("git status", allowed, denied), Decision::kApprove);
  EXPECT_EQ(DecideCommand("git push origin main", allowed, denied), Decision::kDeny);
  EXPECT_EQ(DecideCommand("git push --dry-run origin", allowed, denied), Decision::kApprove);
  EXPECT_EQ(DecideCommand("GIT STATUS", allowed, denied), Decision::kApprove);  // any case
  EXPECT_EQ(DecideCommand("make", allowed, denied), Decision::kAsk);
  // Equal length: deny wins.
  EXPECT_EQ(DecideCommand("npm test", {"npm test"}, {"npm test"}), Decision::kDeny);
  // Defaults of the settings.
  AutoApproveSettings defaults;
  EXPECT_EQ(DecideCommand("git diff HEAD~1", defaults.allowed_commands, {}), Decision::kApprove);
  EXPECT_EQ(DecideCommand("git commit -m x", defaults.allowed_commands, {}), Decision::kAsk);
}

// A substitution is asked about under any prefix list, "*" too (as in Kilo Code), but not under
// --yes (`substitutions`) when no command is denied: that user has approved everything.
TEST(DecideCommandTest, SubstitutionsAreApprovedOnlyWhenEverythingIs) {
  AutoApproveSettings settings;
  settings.execute = true;
  settings.allowed_commands = {"*"};
  ApprovalRequest request{ApprovalKind::kCommand, "execute_command", "git commit -m \"$(date)\"",
                          "git commit -m \"$(date)\""};
  EXPECT_EQ(Decide(request, settings), Decision::kAsk);
  settings.substitutions = true;
  EXPECT_EQ(Decide(request, settings), Decision::kApprove);
  settings.allowed_commands = {"git commit"};
  EXPECT_EQ(Decide(request, settings), Decision::kAsk);
  settings.allowed_commands = {"*"};
  settings.denied_commands = {"rm"};
  EXPECT_EQ(Decide(request, settings), Decision::kAsk);
  request.target = "echo $(rm x)";
  EXPECT_EQ(Decide(request, settings), Decision::kDeny);
}

// A denied prefix cannot be dodged by writing the same command another way; an allowed one
// covers whole words only.
TEST(DecideCommandTest, DenialsSeeThroughQuotingSpacingPathsAndWrappers) {
  Commands allowed = {"*"};
  Commands denied = {"git push", "rm"};
  for (const char* command : {"git  push origin",
                              "git\tpush",
                              "'git' push",
                              "g\\it push",
                              "GIT PUSH",
                              "\\rm victim",
                              "'rm' victim",
                              "\"rm\" victim",
                              "/bin/rm victim",
                              "./rm x",
                              "FOO=1 rm x",
                              "sudo rm -rf /",
                              "sudo -u me rm x",
                              "env A=b rm x",
                              "nice -n 5 rm x",
                              "timeout 10 rm x",
                              "command rm x",
                              "xargs rm < list",
                              "ls && /usr/bin/rm x",
                              "bash -c 'rm x'",
                              "sh -c \"echo hi; rm x\"",
                              "bash -lc 'git push'",
                              "eval rm x",
                              "sh -c \"sh -c 'rm x'\"",
                              "/usr/bin/env rm x",
                              "/usr/bin/timeout 5 rm x",
                              "timeout -s KILL 5 rm x",
                              "timeout --signal=KILL 5 rm x",
                              "env -C . rm x",
                              "stdbuf -o 0 rm x",
                              "xargs -a list rm",
                              "setsid rm x",
                              "find . -exec rm {} +",
                              "bash -o pipefail -c 'rm x'",
                              "bash -O extglob -c 'rm x'",
                              "env -S 'rm /tmp/a/x'",
                              "env --split-string='rm x'",
                              "script -qc 'rm /tmp/x' /dev/null",
                              "ssh-agent rm x",
                              "dbus-run-session rm x",
                              "echo 'rm x' | sh",
                              "sh <<< 'rm x'",
                              "{ rm x; }",
                              "if true; then rm x; fi",
                              "for f in x; do rm $f; done",
                              "! rm x",
                              "git -C . push o",
                              "git --no-pager push o",
                              "git -c a.b=c push",
                              "echo ${X:=$(rm x)}",
                              "echo \"${X:-`rm x`}\"",
                              "$'rm' -f x",
                              "$'\\x72m' x",
                              "$'\\162\\155' x",
                              "/usr/bin/r[m] -f x",
                              "r? x",
                              "{rm,-f,x}",
                              "r{m,} -f x",
                              "${x:-rm} -f x",
                              "function g { rm -f x; }; g",
                              "git --work-tree . push",
                              "git --git-dir .git push",
                              "env -S'rm /tmp/a/x'",
                              "env -vS'rm x'",
                              "script --command='rm x' /dev/null",
                              "bash --rcfile /dev/null -c 'rm x'",
                              "bash --init-file f -c 'rm x'",
                              "trap 'rm x' EXIT",
                              "trap -- 'rm x' EXIT",
                              "watch -g 'rm x'",
                              "watch -n 1 -g 'rm x'"}) {
    EXPECT_EQ(DecideCommand(command, allowed, denied), Decision::kDeny) << command;
  }
  // Not the denied program: a word that merely starts or holds the name.
  EXPECT_EQ(DecideCommand("echo rm", allowed, denied), Decision::kApprove);
  EXPECT_EQ(DecideCommand("find . -name rmlist.txt", allowed, denied), Decision::kApprove);
  EXPECT_EQ(DecideCommand("timeout 5 cat rm_notes.txt", allowed, denied), Decision::kApprove);
  EXPECT_EQ(DecideCommand("nice -n 1 ls rm_dir", allowed, denied), Decision::kApprove);
  EXPECT_EQ(DecideCommand("bash -c 'echo hi'", allowed, denied), Decision::kApprove);
  EXPECT_EQ(DecideCommand("bash build.sh", allowed, denied), Decision::kApprove);
  EXPECT_EQ(DecideCommand("git -C sub status", allowed, denied), Decision::kApprove);
  EXPECT_EQ(DecideCommand("timeout 5 make", allowed, denied), Decision::kApprove);
  // Without a deny list, a shell reading stdin is decided by the prefixes as before.
  EXPECT_EQ(DecideCommand("echo hi | sh", {"*"}, {}), Decision::kApprove);
  EXPECT_EQ(DecideCommand("git pull", allowed, denied), Decision::kApprove);
  // An allowed prefix ends where a word ends: "echo" does not approve "echoX".
  EXPECT_EQ(DecideCommand("echo hi", {"echo"}, {}), Decision::kApprove);
  EXPECT_EQ(DecideCommand("echoX hi", {"echo"}, {}), Decision::kAsk);
  EXPECT_EQ(DecideCommand("git log --oneline", {"git log "}, {}), Decision::kApprove);
  EXPECT_EQ(DecideCommand("git  log", {"git log"}, {}), Decision::kApprove);  // Spacing.
}

// "Always" is for what was asked: a read outside the workspace is no write there, and a
// command's "always" approves its parts without switching on the configured allowed list.
TEST(GrantAlwaysTest, GrantsOnlyWhatWasAsked) {
  AutoApproveSettings settings;
  GrantAlways(settings, Request(ApprovalKind::kOutsideWorkspace, "read_file", "/tmp/o.txt"));
  EXPECT_EQ(Decide(Request(ApprovalKind::kOutsideWorkspace, "read_file", "/tmp/x"), settings),
            Decision::kApprove);
  settings.write = true;
  EXPECT_EQ(
      Decide(Request(ApprovalKind::kOutsideWorkspace, "write_to_file", "/tmp/o.txt"), settings),
      Decision::kAsk);
  GrantAlways(settings, Request(ApprovalKind::kOutsideWorkspace, "apply_diff", "/tmp/o.txt"));
  EXPECT_EQ(
      Decide(Request(ApprovalKind::kOutsideWorkspace, "write_to_file", "/tmp/o.txt"), settings),
      Decision::kApprove);

  auto command = [](std::string line) {
    return Request(ApprovalKind::kCommand, "execute_command", std::move(line));
  };
  settings.denied_commands = {"rm"};
  GrantAlways(settings, command("echo one && echo two"));
  EXPECT_EQ(Decide(command("echo one && echo two"), settings), Decision::kApprove);
  EXPECT_EQ(Decide(command("echo two"), settings), Decision::kApprove);
  EXPECT_EQ(Decide(command("git log -1"), settings), Decision::kAsk);  // Not granted.
  EXPECT_EQ(Decide(command("echo one; rm x"), settings), Decision::kDeny);
  GrantAlways(settings, command("ls | sh"));
  EXPECT_EQ(Decide(command("ls"), settings), Decision::kApprove);
  EXPECT_NE(Decide(command("echo x | sh"), settings), Decision::kApprove);
  EXPECT_NE(Decide(command("sh -c 'touch pwned'"), settings), Decision::kApprove);
}

TEST(DecideCommandTest, ChainsAreDecidedPerSubCommand) {
  Commands allowed = {"git", "ls"};
  Commands denied = {"rm"};
  EXPECT_EQ(DecideCommand("git status && ls -la", allowed, denied), Decision::kApprove);
  EXPECT_EQ(DecideCommand("git status && rm -rf .", allowed, denied), Decision::kDeny);
  EXPECT_EQ(DecideCommand("git status; make", allowed, denied), Decision::kAsk);
  EXPECT_EQ(DecideCommand("ls | rm x", allowed, denied), Decision::kDeny);
  EXPECT_EQ(DecideCommand("git log 'a && rm b'", allowed, denied), Decision::kApprove);
}

TEST(DecideCommandTest, WildcardAllowsWhatIsNotDenied) {
  Commands allowed = {"*"};
  EXPECT_EQ(DecideCommand("anything --at all", allowed, {}), Decision::kApprove);
  EXPECT_EQ(DecideCommand("rm -rf /", allowed, {"rm"}), Decision::kDeny);
  EXPECT_EQ(DecideCommand("make && rm x", allowed, {"rm"}), Decision::kDeny);
  // "*" counts as one character: a one-letter deny prefix ties it and wins.
  EXPECT_EQ(DecideCommand("x", allowed, {"x"}), Decision::kDeny);
}

TEST(DecideCommandTest, SubstitutionsAlwaysAskUnlessDenied) {
  Commands allowed = {"echo", "git log"};
  EXPECT_EQ(DecideCommand("echo $(date)", allowed, {}), Decision::kAsk);
  EXPECT_EQ(DecideCommand("echo `date`", allowed, {}), Decision::kAsk);
  EXPECT_EQ(DecideCommand("git log ${x@P}", allowed, {}), Decision::kAsk);
  EXPECT_EQ(DecideCommand("echo $(date)", {"*"}, {}), Decision::kAsk);
  // A denied command inside a substitution denies the line.
  EXPECT_EQ(DecideCommand("git log $(rm -rf /)", allowed, {"rm"}), Decision::kDeny);
  EXPECT_EQ(DecideCommand("echo '$(date)'", allowed, {}), Decision::kApprove);
  // Arithmetic runs nothing, unless a substitution is inside it.
  EXPECT_EQ(DecideCommand("echo $((3>2)) $(( 1 + (2 * 3) ))", allowed, {}), Decision::kApprove);
  EXPECT_EQ(DecideCommand("echo $(( $(date +%s) + 1 ))", allowed, {}), Decision::kAsk);
  EXPECT_EQ(DecideCommand("echo $(( `rm x` ))", allowed, {"rm"}), Decision::kDeny);
}

TEST(DecideCommandTest, RedirectionsBlanksAndEmptyCommands) {
  EXPECT_EQ(DecideCommand("npm test 2>&1", {"npm test"}, {}), Decision::kApprove);
  EXPECT_EQ(DecideCommand("npm test 2>&1 | tail -5", {"npm test", "tail"}, {}), Decision::kApprove);
  EXPECT_EQ(DecideCommand("ls", {"", "  "}, {}), Decision::kAsk);  // blank entries match nothing
  EXPECT_EQ(DecideCommand("", {"*"}, {}), Decision::kAsk);
  EXPECT_EQ(DecideCommand("  ;  ", {"*"}, {}), Decision::kAsk);
}

// ---- Limits -----------------------------------------------------------------------------------

TEST(ApprovalLimitsTest, RequestLimit) {
  AutoApproveSettings settings;
  settings.max_requests = 2;
  ApprovalLimits limits;
  EXPECT_FALSE(limits.Check(settings).has_value());
  limits.RecordRequest();
  EXPECT_FALSE(limits.Check(settings).has_value());
  limits.RecordRequest();
  std::optional<LimitReached> reached = limits.Check(settings);
  ASSERT_TRUE(reached.has_value());
  EXPECT_EQ(reached->kind, LimitReached::Kind::kRequests);
  EXPECT_NE(reached->message.find("limit of 2 model requests"), std::string::npos);
  limits.Reset();
  EXPECT_FALSE(limits.Check(settings).has_value());
}

TEST(ApprovalLimitsTest, CostLimitCountsFromTheLastReset) {
  AutoApproveSettings settings;
  settings.max_cost_usd = 1.0;
  ApprovalLimits limits;
  limits.RecordCost(0.5);
  EXPECT_FALSE(limits.Check(settings).has_value());
  limits.RecordCost(0.5);
  EXPECT_FALSE(limits.Check(settings).has_value());
  limits.RecordCost(0.5);
  std::optional<LimitReached> reached = limits.Check(settings);
  ASSERT_TRUE(reached.has_value());
  EXPECT_EQ(reached->kind, LimitReached::Kind::kCost);
  EXPECT_NE(reached->message.find("$1.00"), std::string::npos);
  EXPECT_NE(reached->message.find("$1.50"), std::string::npos);
  limits.Reset();
  limits.RecordCost(0.5);
  EXPECT_FALSE(limits.Check(settings).has_value());
  limits.RecordCost(0.6);
  EXPECT_TRUE(limits.Check(settings).has_value());

  // A limit under a dollar is shown as set, not rounded to "$0.00".
  settings.max_cost_usd = 0.001;
  ApprovalLimits spent;
  spent.RecordCost(0.0123);
  std::optional<LimitReached> small = spent.Check(settings);
  ASSERT_TRUE(small.has_value());
  EXPECT_NE(small->message.find("limit of $0.0010 (spent $0.0123"), std::string::npos)
      << small->message;
}

TEST(ApprovalLimitsTest, ZeroMeansUnlimited) {
  AutoApproveSettings settings;
  ApprovalLimits limits;
  for (int i = 0; i < 1000; ++i) limits.RecordRequest();
  limits.RecordCost(1e9);
  EXPECT_FALSE(limits.Check(settings).has_value());
}

// ---- Turn-loop counters -----------------------------------------------------------------------

TEST(ToolRepetitionDetectorTest, RefusesTheFourthIdenticalCallInARow) {
  ToolRepetitionDetector detector(3);
  EXPECT_TRUE(detector.Check("read_file", R"({"path":"a"})"));
  EXPECT_TRUE(detector.Check("read_file", R"({"path":"a"})"));
  EXPECT_TRUE(detector.Check("read_file", R"({ "path" : "a" })"));  // whitespace is irrelevant
  EXPECT_FALSE(detector.Check("read_file", R"({"path":"a"})"));
  // The detector starts afresh after refusing.
  EXPECT_TRUE(detector.Check("read_file", R"({"path":"a"})"));
}

TEST(ToolRepetitionDetectorTest, DifferentCallsResetTheRun) {
  ToolRepetitionDetector detector(2);
  EXPECT_TRUE(detector.Check("search_files", R"({"path":".","regex":"x"})"));
  EXPECT_TRUE(detector.Check("search_files", R"({"regex":"x","path":"."})"));  // key order
  EXPECT_TRUE(detector.Check("search_files", R"({"regex":"y","path":"."})"));
  EXPECT_TRUE(detector.Check("list_files", R"({"regex":"y","path":"."})"));
  EXPECT_TRUE(detector.Check("list_files", R"({"regex":"y","path":"."})"));
  EXPECT_FALSE(detector.Check("list_files", R"({"regex":"y","path":"."})"));
  // Arguments that are not JSON are compared as text.
  EXPECT_TRUE(detector.Check("x", "not json"));
  EXPECT_TRUE(detector.Check("x", "not json "));
  EXPECT_FALSE(detector.Check("x", "not json"));

  ToolRepetitionDetector off(0);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(off.Check("read_file", "{}"));
  EXPECT_NE(ToolRepetitionText("read_file").find("read_file"), std::string::npos);
}

TEST(MistakeCounterTest, ReachesTheLimitAndResets) {
  MistakeCounter counter;
  counter.Record();
  counter.Record();
  EXPECT_FALSE(counter.IsLimitReached());
  counter.Record();
  EXPECT_TRUE(counter.IsLimitReached());
  counter.Reset();
  EXPECT_FALSE(counter.IsLimitReached());
  MistakeCounter unlimited(0);
  for (int i = 0; i < 10; ++i) unlimited.Record();
  EXPECT_FALSE(unlimited.IsLimitReached());
}

}  // namespace
}  // namespace lai::agent
