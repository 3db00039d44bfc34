// Rules: the user's and the project's standing instructions (rule directories, legacy rule
// files, AGENTS.md, .kilocodeignore) gathered into the text that ends the system prompt.
// Pure functions over the file system; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace lai::workspace {
class Workspace;
}

namespace lai::agent {

// Gathers the rules that apply to `mode_slug`, in this order (each source only when present):
//   1. `global_rules_dir` (e.g. ~/.config/lapce-ai/rules/; "" = none): every file, recursively;
//   2. its sibling `rules-<mode>/` directory (e.g. ~/.config/lapce-ai/rules-code/);
//   3. `<workspace>/.kilocode/rules/` (or `.roo/rules/` when that is absent); when neither
//      directory has rule files, the first existing of `.kilocoderules`, `.roorules`,
//      `.clinerules`;
//   4. `<workspace>/.kilocode/rules-<mode>/` (or `.roo/rules-<mode>/`); when absent, the first
//      existing of `.kilocoderules-<mode>`, `.roorules-<mode>`, `.clinerules-<mode>`;
//   5. `<workspace>/.kilocodeignore`, presented as the list of blocked paths;
//   6. `<workspace>/AGENTS.md` (or `AGENT.md` when there is no AGENTS.md).
// Directory files are read recursively (following symlinks to depth 5) and sorted by their path
// below the directory, case-insensitively; binary files, files over 256 KiB, empty files, and
// cache/lock/backup files (.DS_Store, *.lock, *.log, *.bak, *.swp, *~, …) are skipped. Each file
// is headed "# Rules from <path>:" (workspace files by their relative path, global ones by their
// absolute path) and separated by a blank line. Unreadable files are skipped. A project file or
// directory that leads outside the workspace, or a link to a path its .kilocodeignore blocks, is
// left out with a warning, as any tool would refuse it; a global one may lead anywhere.
// `workspace` null: global rules only. Returns "" when there are no rules.
std::string LoadRules(const workspace::Workspace* workspace, std::string_view mode_slug,
                      std::string_view global_rules_dir);

}  // namespace lai::agent
