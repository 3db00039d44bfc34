// Workspace: one root directory and the rules every tool obeys inside it — path resolution (no
// escapes unless allowed), access-blocking ignore files, .gitignore for listing and search, and
// write-protected paths. Immutable after Open(); thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <string_view>

#include "base/result.h"

namespace lai::workspace {

struct ResolvedPath {
  std::string absolute;  // Canonical: symlinks resolved for the part that exists, no "." or "..".
  std::string relative;  // From the root with '/' separators; "" for the root itself; for a path
                         // outside the workspace, the same as `absolute`.
  bool is_outside = false;
};

class IgnoreRules;  // workspace/ignore.h

class Workspace {
 public:
  // `root` must be an existing directory; it is canonicalised. Reads the root's .kilocodeignore
  // (and .rooignore) once. Errors: kNotFound, kInvalidArgument (not a directory), kIo.
  static Result<std::shared_ptr<const Workspace>> Open(std::string_view root);

  // False once an ignore file read by Open() has changed, appeared or gone: the rules are stale,
  // and Open() again reads the current ones. Reads the (small) ignore files.
  bool IsCurrent() const;

  const std::string& root() const { return root_; }

  // Resolves `path` (absolute, or relative to the root) without requiring it to exist: the
  // longest existing prefix is canonicalised (symlinks followed), the rest appended lexically.
  // Errors: kInvalidArgument (empty, NUL byte); kPermissionDenied when the result lies outside
  // the root (via "..", an absolute path or a symlink) and !allow_outside — the message names the
  // path and the root and says that outside access needs the user's approval.
  Result<ResolvedPath> Resolve(std::string_view path, bool allow_outside = false) const;

  // The path as seen from the root: `relative` inside the workspace, "../…" outside it (what a
  // mode's file pattern is matched against).
  std::string FromRoot(const ResolvedPath& path) const;

  // True when .kilocodeignore/.rooignore blocks all access to the path (or one of its parent
  // directories). Paths outside the workspace are never blocked by these files.
  bool IsBlocked(const ResolvedPath& path) const;
  // The same for a path reached from outside (a search or a listing of a folder that holds the
  // workspace): `absolute`, lexically normal, is blocked when it lies in the workspace and
  // IsBlocked says so for it there.
  bool IsBlockedAbsolute(std::string_view absolute) const;

  // Writes to these need explicit approval: .kilocode/**, .roo/**, .vscode/**, AGENTS.md,
  // .kilocoderules, .roorules, .clinerules, .kilocodemodes, .roomodes, .kilocodeignore,
  // .rooignore (Kilo Code's protected set, see workspace/protect.cc for the full list).
  bool IsWriteProtected(const ResolvedPath& path) const;

  // For a shell command about to run in `cwd` (absolute): if it is a file-reading command
  // (cat, head, tail, less, more, grep, rg, sed, awk, …) naming a blocked path (a relative path is
  // taken from `cwd` and from each directory a `cd` earlier in the command names), returns that
  // path as the user wrote it; if it is a recursive search (rg, ag, ack, grep -r) of a tree holding
  // a blocked path (the first 200,000 entries are looked at), returns that path below the search's
  // argument (and sets `*in_tree`, when given); otherwise nullopt. A program that opens files by
  // itself (a script) is not seen.
  std::optional<std::string> FindBlockedPathInCommand(std::string_view command,
                                                      std::string_view cwd,
                                                      bool* in_tree = nullptr) const;

  // The existing paths outside the workspace a shell command about to run in `cwd` (absolute)
  // names in its words (arguments, `--opt=PATH` values, `< file`, the directories a `cd` goes
  // to; "~", braces and globs expanded; relative ones from `cwd` and each `cd`'s directory), in
  // it and in its $(…) commands: what it may read there (`cat ~/.ssh/id_rsa`, `ls ..`), as
  // absolute paths; and, as written with " (known only when it runs)", a path only the shell can
  // tell (`$HOME/.ssh/id_rsa`); anything under /proc (its /proc/self is the shell's). The
  // program's own path and devices (/dev/null, /dev/stdin, …) are not counted.
  std::vector<std::string> CommandOutsidePaths(std::string_view command,
                                               std::string_view cwd) const;

  // The access-blocking rules (for walkers and search, which also apply .gitignore files).
  const IgnoreRules& blocking_rules() const { return *blocking_; }

  ~Workspace();
  Workspace(std::string root, std::unique_ptr<IgnoreRules> blocking);

 private:
  std::string root_;
  std::unique_ptr<IgnoreRules> blocking_;
  std::string stamp_;  // The ignore files as Open() found them (IsCurrent).
};

// One word or control operator of a shell command line.
struct ShellToken {
  std::string text;
  bool is_operator = false;  // |, ||, &&, &, ;, newline, (, ), <, >, >>, and 2>&1, &>, &>>.
};

// Splits a shell command line into words and control operators as the shell would: quotes and
// backslashes are honoured (and removed); expansions are not performed.
std::vector<ShellToken> SplitShellWords(std::string_view command);

// Programs that run the command in their arguments (sudo, env, nice, nohup, timeout, setsid,
// stdbuf, …; `program` without its directory), and words of the shell's grammar before a
// command ("{", "!", "if", "do", "function", …): both are looked through to the program.
bool IsCommandWrapper(std::string_view program);
bool IsShellKeyword(std::string_view word);

// The commands a command line runs inside others: $(…), `…`, <(…) and >(…), outermost first,
// wherever they are: in double quotes (where SplitShellWords keeps them as text), and in single
// quotes too (an unquoted here-document's apostrophes quote nothing), so none is missed.
std::vector<std::string> SubstitutedCommands(std::string_view command);

// The files a shell command about to run in `cwd` (absolute) writes, as far as its words say:
// redirections ("> f", ">> f", ">| f", "&> f", "2> f"; not descriptors like "2>&1", nor
// /dev/null, /dev/stdout, /dev/stderr, /dev/tty, /dev/fd/*), and what common programs write,
// create or remove (tee, touch, truncate, rm, unlink, rmdir, shred, mkdir, cp, mv, ln, install,
// sed -i, dd of=, curl -o, wget -O, git config, any --output=FILE), also inside a script given
// to a shell (sh -c '…') or to eval. Words are expanded as the shell would ("~", braces, globs);
// a relative path is given once per directory it may land in: `cwd`, and each one a `cd` earlier
// in the command names (a bare cd: home). Here-document bodies are data. What programs write on
// their own (a script, a build) is not seen.
struct CommandWrites {
  std::vector<std::string> paths;    // Absolute, not yet normalised.
  std::vector<std::string> unknown;  // As written: only the shell can tell ($VAR, `…`, cd $X).
};
CommandWrites CommandWriteTargets(std::string_view command, std::string_view cwd);

}  // namespace lai::workspace
