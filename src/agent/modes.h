// Modes: the built-in modes (code, architect, ask, debug, orchestrator), custom modes from the
// global modes file and the project's .kilocodemodes, and which tools (and, for edits, which
// files) a mode allows. Value types and pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace lai::agent {

// Kilo Code's tool groups that lapce-ai implements ("browser" entries in mode files are accepted
// and ignored: there is no browser tool).
enum class ToolGroup { kRead, kEdit, kCommand, kMcp, kModes };

struct GroupEntry {
  ToolGroup group = ToolGroup::kRead;
  std::string file_regex;   // Edit group only: PCRE pattern a path must match; "" = any file.
  std::string description;  // Human words for file_regex ("Markdown files only").
};

enum class ModeSource { kBuiltin, kGlobal, kProject };

struct ModeConfig {
  std::string slug;  // [a-zA-Z0-9-]+
  std::string name;
  std::string role_definition;
  std::string when_to_use;  // May be empty.
  std::string description;  // May be empty.
  std::string custom_instructions;
  std::vector<GroupEntry> groups;
  ModeSource source = ModeSource::kBuiltin;
};

inline constexpr std::string_view kDefaultModeSlug = "code";

// code, architect, ask, debug, orchestrator, in that order.
const std::vector<ModeConfig>& BuiltinModes();

// nullptr when no mode has the slug.
const ModeConfig* FindMode(const std::vector<ModeConfig>& modes, std::string_view slug);
// "code, architect, ask, …": the slugs of `modes` in order, for messages naming them.
std::string ModeSlugs(const std::vector<ModeConfig>& modes);

// Built-in modes, then the modes of `global_modes_file` (e.g. $XDG_CONFIG_HOME/lapce-ai/
// modes.yaml; "" = none), then `<workspace_root>/.kilocodemodes`; a later mode replaces an
// earlier one with the same slug, new slugs are appended. Both files are YAML or JSON holding
// `customModes: [...]` with Kilo Code's field names (slug, name, roleDefinition, whenToUse,
// description, customInstructions, groups); a missing file is no error. A file that cannot be
// read or is not valid is left out whole, as Kilo Code does, and its problem is kept: naming the
// file, the entry and the field ("<file>: customModes[1] (slug 'docs'): 'groups' must be a
// list"). The other modes work; only a session in a mode of that file cannot go on.
struct LoadedModes {
  std::vector<ModeConfig> modes;
  std::vector<std::string> problems;  // One per file left out.
};
LoadedModes LoadModes(std::string_view global_modes_file, std::string_view workspace_root);

// The problems of `loaded` as sentences for a message ("" when none).
std::string ModeProblemsText(const LoadedModes& loaded);
// "code, architect, …, docs" and then the problems, for a message naming the modes there are.
std::string ModeNames(const LoadedModes& loaded);

// Parses one modes file's text; `label` names it in errors. Exposed for tests.
Result<std::vector<ModeConfig>> ParseCustomModes(std::string_view text, std::string_view label,
                                                 ModeSource source);

// The group a tool belongs to; nullopt for the always-available tools and unknown names.
std::optional<ToolGroup> GroupOfTool(std::string_view tool);
// ask_followup_question, attempt_completion, switch_mode, new_task, update_todo_list.
bool IsAlwaysAvailableTool(std::string_view tool);
std::string_view ToolGroupName(ToolGroup group);

// OK when `mode` may run `tool`; for edit tools with a file restriction, `relative_path` (the
// target path as the model gave it; "" when not known yet) must match the pattern.
// Errors, worded for the model: kPermissionDenied (group not in the mode, or a file the mode may
// not edit), kInvalidArgument (unknown tool).
Status CheckToolAllowed(const ModeConfig& mode, std::string_view tool,
                        std::string_view relative_path);

// For a file a shell command writes (`relative_path` from the workspace root, "../…" outside it):
// kPermissionDenied, worded for the model, when the mode's edit group restricts edits to a file
// pattern the path does not match. A mode without that restriction (or without the edit group,
// whose commands are its own group) may: OK.
Status CheckCommandWrite(const ModeConfig& mode, std::string_view relative_path);

// The subset of `all_tools` the mode offers, in the given order.
std::vector<std::string> ToolsForMode(const ModeConfig& mode,
                                      const std::vector<std::string>& all_tools);

}  // namespace lai::agent
