// The write-protected set: Kilo Code's RooProtectedController patterns, and git's own files
// (.git/config and .git/hooks run commands: a write there is a way to run any command, as Codex
// CLI's sandbox knows in keeping .git read-only; so does a .git file pointing git at a directory
// the model wrote), husky's hooks and direnv's .envrc, matched with gitignore semantics on the
// path relative to the workspace root.
#include "workspace/ignore.h"
#include "workspace/workspace.h"

namespace lai::workspace {
namespace {

constexpr const char* kProtectedPatterns =
    ".kilocodeignore\n"
    ".kilocodemodes\n"
    ".kilocoderules*\n"
    ".kilocode/**\n"
    ".kilocodeprotected\n"
    ".rooignore\n"
    ".roomodes\n"
    ".roorules*\n"
    ".clinerules*\n"
    ".roo/**\n"
    ".vscode/**\n"
    "*.code-workspace\n"
    ".rooprotected\n"
    "AGENTS.md\n"
    "AGENT.md\n"
    "**/.git\n"  // A .git file (gitdir: pointer) makes a directory a repository of its own.
    "**/.git/**\n"
    ".husky/**\n"  // Hooks git runs where core.hooksPath names it (husky sets it so).
    ".envrc\n";    // direnv runs it when the user enters the directory.

const IgnoreRules& ProtectedRules() {
  static const IgnoreRules* rules = [] {
    auto* built = new IgnoreRules();
    built->AddPatterns(kProtectedPatterns);
    return built;
  }();
  return *rules;
}

}  // namespace

bool Workspace::IsWriteProtected(const ResolvedPath& path) const {
  if (path.is_outside || path.relative.empty()) return false;
  // Kilo Code matches these as files (the `ignore` package without a trailing '/').
  return ProtectedRules().IsIgnored(path.relative, false);
}

}  // namespace lai::workspace
