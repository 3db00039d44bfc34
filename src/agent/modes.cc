// Built-in modes, custom mode files (YAML via yaml-cpp, JSON via nlohmann) and mode checks.
#include "agent/modes.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "workspace/text.h"

namespace lai::agent {
namespace {

using nlohmann::json;

constexpr std::string_view kAlwaysAvailable[] = {"ask_followup_question", "attempt_completion",
                                                 "switch_mode", "new_task", "update_todo_list"};

struct ToolGroupRow {
  std::string_view tool;
  ToolGroup group;
};
constexpr ToolGroupRow kToolGroups[] = {
    {"read_file", ToolGroup::kRead},          {"list_files", ToolGroup::kRead},
    {"search_files", ToolGroup::kRead},       {"write_to_file", ToolGroup::kEdit},
    {"apply_diff", ToolGroup::kEdit},         {"insert_content", ToolGroup::kEdit},
    {"search_and_replace", ToolGroup::kEdit}, {"delete_file", ToolGroup::kEdit},
    {"execute_command", ToolGroup::kCommand}, {"use_mcp_tool", ToolGroup::kMcp},
    {"access_mcp_resource", ToolGroup::kMcp},
};

GroupEntry Group(ToolGroup group) { return GroupEntry{group, "", ""}; }

std::vector<ModeConfig> MakeBuiltinModes() {
  std::vector<ModeConfig> modes;
  modes.push_back(ModeConfig{
      .slug = "code",
      .name = "Code",
      .role_definition =
          "You are Lapce AI, a highly skilled software engineer with broad knowledge of many "
          "programming languages, frameworks, design patterns and best practices.",
      .when_to_use =
          "Use this mode to write, change or refactor code: implementing features, fixing bugs, "
          "creating new files or improving existing code in any language or framework.",
      .description = "Write, modify, and refactor code",
      .custom_instructions = "",
      .groups = {Group(ToolGroup::kRead), Group(ToolGroup::kEdit), Group(ToolGroup::kCommand),
                 Group(ToolGroup::kMcp)},
  });
  modes.push_back(ModeConfig{
      .slug = "architect",
      .name = "Architect",
      .role_definition =
          "You are Lapce AI, an experienced technical leader who is curious and plans well. Your "
          "goal is to gather information and context and produce a detailed plan for the user's "
          "task, which the user reviews and approves before switching to another mode to "
          "implement it.",
      .when_to_use =
          "Use this mode to plan, design or strategise before implementing: breaking down complex "
          "problems, writing technical specifications, designing system architecture, or "
          "brainstorming solutions before coding.",
      .description = "Plan and design before implementation",
      .custom_instructions =
          "1. Gather information with the available tools to understand the task.\n\n"
          "2. Ask the user clarifying questions where the task is unclear.\n\n"
          "3. Once you understand the request, break it into clear, actionable steps and record "
          "them as a todo list with the `update_todo_list` tool. Each item should be specific, "
          "in execution order, focused on one outcome, and clear enough for another mode to "
          "carry out on its own.\n\n"
          "   If `update_todo_list` is not available, write the plan to a Markdown file (for "
          "example `plan.md`) instead.\n\n"
          "4. Update the todo list as you learn more or discover new requirements.\n\n"
          "5. Ask the user whether the plan suits them or what they would change; treat it as a "
          "brainstorming session and refine the list together.\n\n"
          "6. Add Mermaid diagrams where they make a workflow or architecture clearer. Avoid "
          "double quotes (\"\") and parentheses () inside square brackets ([]) in Mermaid, which "
          "break its parser.\n\n"
          "7. Use the switch_mode tool to ask the user to switch to another mode for the "
          "implementation.\n\n"
          "**IMPORTANT: Prefer a clear, actionable todo list over long Markdown documents; the "
          "todo list is your main planning tool.**\n\n"
          "**CRITICAL: Never estimate effort or duration (hours, days, weeks). Only break the "
          "work into clear steps.**\n\n"
          "Unless told otherwise, save plan files in the workspace's plans/ directory.",
      .groups = {Group(ToolGroup::kRead),
                 GroupEntry{ToolGroup::kEdit, "\\.md$", "Markdown files only"},
                 Group(ToolGroup::kMcp)},
  });
  modes.push_back(ModeConfig{
      .slug = "ask",
      .name = "Ask",
      .role_definition =
          "You are Lapce AI, a knowledgeable technical assistant who answers questions and "
          "provides information about software development, technology and related topics.",
      .when_to_use =
          "Use this mode for explanations, documentation or answers to technical questions: "
          "understanding concepts, analysing existing code, getting recommendations or learning "
          "about technologies, without making changes.",
      .description = "Get answers and explanations",
      .custom_instructions =
          "You can analyse code, explain concepts and use the MCP servers' tools and resources "
          "when "
          "there are any. Answer the "
          "user's questions thoroughly and do not start implementing code unless the user "
          "explicitly asks for it. Include Mermaid diagrams when they make an answer clearer.",
      .groups = {Group(ToolGroup::kRead), Group(ToolGroup::kMcp)},
  });
  modes.push_back(ModeConfig{
      .slug = "debug",
      .name = "Debug",
      .role_definition = "You are Lapce AI, an expert software debugger who diagnoses and "
                         "resolves problems systematically.",
      .when_to_use =
          "Use this mode to troubleshoot issues, investigate errors or diagnose problems: "
          "systematic debugging, adding logging, analysing stack traces and finding root causes "
          "before applying fixes.",
      .description = "Diagnose and fix software issues",
      .custom_instructions =
          "Consider 5-7 different possible sources of the problem, narrow them down to the 1-2 "
          "most likely, then add logging to confirm your assumptions. Ask the user to confirm "
          "the diagnosis explicitly before fixing the problem.",
      .groups = {Group(ToolGroup::kRead), Group(ToolGroup::kEdit), Group(ToolGroup::kCommand),
                 Group(ToolGroup::kMcp)},
  });
  modes.push_back(ModeConfig{
      .slug = "orchestrator",
      .name = "Orchestrator",
      .role_definition =
          "You are Lapce AI, a strategic workflow orchestrator who coordinates complex tasks by "
          "delegating them to the right specialised modes. You know what each mode can and "
          "cannot do, so you can split a complex problem into separate tasks for different "
          "specialists.",
      .when_to_use =
          "Use this mode for complex, multi-step projects that need coordination across "
          "specialities: breaking large tasks into subtasks, managing workflows, or work that "
          "spans several domains.",
      .description = "Coordinate tasks across multiple modes",
      .custom_instructions =
          "You coordinate complex work by delegating it to specialised modes. As orchestrator:\n\n"
          "1. Break a complex task into logical subtasks that suit specific modes.\n\n"
          "2. Delegate each subtask with the `new_task` tool. Pick the best mode for its goal "
          "and give complete instructions in the `message` parameter, including:\n"
          "    *   all context from the parent task or earlier subtasks that the work needs;\n"
          "    *   a precise scope saying exactly what the subtask must do;\n"
          "    *   an explicit statement that the subtask must do *only* that work;\n"
          "    *   an instruction to finish with `attempt_completion`, putting a concise but "
          "thorough summary of the outcome in `result` (this summary is the record of what was "
          "done);\n"
          "    *   a statement that these instructions take precedence over conflicting general "
          "instructions of the subtask's mode.\n\n"
          "3. Track every subtask. When one completes, analyse its result and decide the next "
          "step.\n\n"
          "4. Help the user see how the subtasks fit together and explain why each went to the "
          "mode you chose.\n\n"
          "5. When all subtasks are done, summarise what was achieved overall.\n\n"
          "6. Ask clarifying questions when you need them to split the work well.\n\n"
          "7. Suggest workflow improvements based on the subtasks' results.\n\n"
          "Use subtasks to keep things clear: when a request shifts focus or needs a different "
          "expertise (mode), create a subtask instead of overloading the current one.",
      .groups = {},
  });
  return modes;
}

std::optional<ToolGroup> GroupFromName(std::string_view name) {
  if (name == "read") return ToolGroup::kRead;
  if (name == "edit") return ToolGroup::kEdit;
  if (name == "command") return ToolGroup::kCommand;
  if (name == "mcp") return ToolGroup::kMcp;
  if (name == "modes") return ToolGroup::kModes;
  return std::nullopt;
}

bool IsValidSlug(std::string_view slug) {
  return !slug.empty() && std::all_of(slug.begin(), slug.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
  });
}

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

// nullptr and `error` set when the pattern does not compile.
std::unique_ptr<pcre2_code, CodeDeleter> CompilePattern(std::string_view pattern,
                                                        std::string* error) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  std::unique_ptr<pcre2_code, CodeDeleter> code(
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &error_code, &error_offset, nullptr));
  if (code == nullptr && error != nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof message);
    *error = std::string(reinterpret_cast<const char*>(message)) + " at offset " +
             std::to_string(error_offset);
  }
  return code;
}

// YAML and JSON files become one json tree so validation is written once. yaml-cpp gives every
// scalar as a string, which is all a mode's fields hold.
json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence: {
      json array = json::array();
      for (const YAML::Node& item : node) array.push_back(YamlToJson(item));
      return array;
    }
    case YAML::NodeType::Map: {
      json object = json::object();
      for (const auto& item : node) object[item.first.as<std::string>()] = YamlToJson(item.second);
      return object;
    }
    case YAML::NodeType::Scalar:
      return node.Scalar();
    default:
      return nullptr;
  }
}

Result<json> ParseDocument(std::string_view text, std::string_view label) {
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return json(nullptr);
  if (text[first] == '{') {
    try {
      return json::parse(text);
    } catch (const json::exception& e) {
      return Error(ErrorCode::kInvalidArgument,
                   std::string(label) + ": not valid JSON (" + e.what() + "); fix the syntax");
    }
  }
  try {
    return YamlToJson(YAML::Load(std::string(text)));
  } catch (const YAML::Exception& e) {
    return Error(ErrorCode::kInvalidArgument,
                 std::string(label) + ": not valid YAML (" + e.what() + "); fix the syntax");
  }
}

class EntryErrors {
 public:
  EntryErrors(std::string_view label, size_t index) : label_(label), index_(index) {}
  void set_slug(std::string slug) { slug_ = std::move(slug); }
  Error Make(std::string_view what) const {
    std::string message = label_ + ": customModes[" + std::to_string(index_) + "]";
    if (!slug_.empty()) message += " (slug '" + slug_ + "')";
    message += ": ";
    message += what;
    return Error(ErrorCode::kInvalidArgument, std::move(message));
  }

 private:
  std::string label_;
  size_t index_;
  std::string slug_;
};

// Reads an optional string field; a present non-string is an error.
Status ReadString(const json& entry, const char* field, bool required, const EntryErrors& errors,
                  std::string& out) {
  auto it = entry.find(field);
  if (it == entry.end() || it->is_null()) {
    if (required) return errors.Make(std::string("'") + field + "' is required");
    return OkStatus();
  }
  if (!it->is_string()) return errors.Make(std::string("'") + field + "' must be a string");
  out = it->get<std::string>();
  if (required && out.find_first_not_of(" \t\r\n") == std::string::npos) {
    return errors.Make(std::string("'") + field + "' must not be empty");
  }
  return OkStatus();
}

Result<std::vector<GroupEntry>> ReadGroups(const json& entry, const EntryErrors& errors) {
  auto it = entry.find("groups");
  if (it == entry.end() || it->is_null()) return errors.Make("'groups' is required (a list)");
  if (!it->is_array()) return errors.Make("'groups' must be a list");
  std::vector<GroupEntry> groups;
  std::vector<std::string> seen;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& item = (*it)[i];
    std::string where = "groups[" + std::to_string(i) + "]";
    std::string name;
    GroupEntry group;
    if (item.is_string()) {
      name = item.get<std::string>();
    } else if (item.is_array() && !item.empty() && item.size() <= 2 && item[0].is_string()) {
      name = item[0].get<std::string>();
      if (item.size() == 2) {
        const json& options = item[1];
        if (!options.is_object()) {
          return errors.Make("'" + where + "' options must be a map with fileRegex/description");
        }
        if (auto regex = options.find("fileRegex"); regex != options.end() && !regex->is_null()) {
          if (!regex->is_string()) return errors.Make("'" + where + ".fileRegex' must be a string");
          group.file_regex = regex->get<std::string>();
          std::string error;
          if (CompilePattern(group.file_regex, &error) == nullptr) {
            return errors.Make("'" + where +
                               ".fileRegex' is not a valid regular expression: " + error);
          }
        }
        if (auto text = options.find("description"); text != options.end() && !text->is_null()) {
          if (!text->is_string()) {
            return errors.Make("'" + where + ".description' must be a string");
          }
          group.description = text->get<std::string>();
        }
      }
    } else {
      return errors.Make("'" + where +
                         "' must be a group name or [name, {fileRegex, description}]");
    }
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      return errors.Make("'" + where + "' repeats group '" + name + "'");
    }
    seen.push_back(name);
    if (name == "browser") continue;  // Valid in Kilo Code files; lapce-ai has no browser tool.
    std::optional<ToolGroup> known = GroupFromName(name);
    if (!known) {
      return errors.Make("'" + where + "' is unknown group '" + name +
                         "' (use read, edit, command, mcp, modes or browser)");
    }
    group.group = *known;
    groups.push_back(std::move(group));
  }
  return groups;
}

Result<ModeConfig> ParseEntry(const json& entry, std::string_view label, size_t index,
                              ModeSource source) {
  EntryErrors errors(label, index);
  if (!entry.is_object()) return errors.Make("each mode must be a map");
  ModeConfig mode;
  mode.source = source;
  RETURN_IF_ERROR(ReadString(entry, "slug", true, errors, mode.slug));
  if (!IsValidSlug(mode.slug)) {
    return errors.Make("'slug' '" + mode.slug + "' may only contain letters, digits and '-'");
  }
  errors.set_slug(mode.slug);
  RETURN_IF_ERROR(ReadString(entry, "name", true, errors, mode.name));
  RETURN_IF_ERROR(ReadString(entry, "roleDefinition", true, errors, mode.role_definition));
  RETURN_IF_ERROR(ReadString(entry, "whenToUse", false, errors, mode.when_to_use));
  RETURN_IF_ERROR(ReadString(entry, "description", false, errors, mode.description));
  RETURN_IF_ERROR(ReadString(entry, "customInstructions", false, errors, mode.custom_instructions));
  ASSIGN_OR_RETURN(mode.groups, ReadGroups(entry, errors));
  return mode;
}

void Merge(std::vector<ModeConfig>& modes, std::vector<ModeConfig> extra) {
  for (ModeConfig& mode : extra) {
    auto it = std::find_if(modes.begin(), modes.end(),
                           [&](const ModeConfig& m) { return m.slug == mode.slug; });
    if (it != modes.end()) {
      *it = std::move(mode);
    } else {
      modes.push_back(std::move(mode));
    }
  }
}

// nullopt when the file does not exist.
Result<std::optional<std::string>> ReadOptionalFile(const std::string& path,
                                                    std::string_view label) {
  // Not waited on nor read for ever: a FIFO or a link to /dev/zero (a cloned repository's).
  constexpr size_t kMaxModesFileBytes = 1 << 20;
  Result<std::string> text = workspace::ReadFileBytes(path, kMaxModesFileBytes);
  if (text.ok()) return std::optional<std::string>(*std::move(text));
  if (text.error().code() == ErrorCode::kNotFound) return std::optional<std::string>();
  if (text.error().code() == ErrorCode::kResourceExhausted) {
    return Error(ErrorCode::kInvalidArgument,
                 std::string(label) + ": larger than the 1 MiB a modes file may have");
  }
  return Error(text.error().code(),
               std::string(label) + ": cannot be read (" + text.error().message() + ")");
}

}  // namespace

const std::vector<ModeConfig>& BuiltinModes() {
  static const std::vector<ModeConfig>* const modes =
      new std::vector<ModeConfig>(MakeBuiltinModes());
  return *modes;
}

const ModeConfig* FindMode(const std::vector<ModeConfig>& modes, std::string_view slug) {
  for (const ModeConfig& mode : modes) {
    if (mode.slug == slug) return &mode;
  }
  return nullptr;
}

std::string ModeSlugs(const std::vector<ModeConfig>& modes) {
  std::string slugs;
  for (const ModeConfig& mode : modes) slugs += (slugs.empty() ? "" : ", ") + mode.slug;
  return slugs;
}

Result<std::vector<ModeConfig>> ParseCustomModes(std::string_view text, std::string_view label,
                                                 ModeSource source) {
  ASSIGN_OR_RETURN(json document, ParseDocument(text, label));
  std::vector<ModeConfig> modes;
  if (document.is_null()) return modes;
  if (!document.is_object()) {
    return Error(ErrorCode::kInvalidArgument,
                 std::string(label) + ": must be a map with a 'customModes' list");
  }
  auto list = document.find("customModes");
  if (list == document.end() || list->is_null()) return modes;
  if (!list->is_array()) {
    return Error(ErrorCode::kInvalidArgument,
                 std::string(label) + ": 'customModes' must be a list");
  }
  for (size_t i = 0; i < list->size(); ++i) {
    ASSIGN_OR_RETURN(ModeConfig mode, ParseEntry((*list)[i], label, i, source));
    if (FindMode(modes, mode.slug) != nullptr) {
      return Error(ErrorCode::kInvalidArgument,
                   std::string(label) + ": customModes[" + std::to_string(i) + "] (slug '" +
                       mode.slug + "'): the slug is used by an earlier mode in this file");
    }
    modes.push_back(std::move(mode));
  }
  return modes;
}

LoadedModes LoadModes(std::string_view global_modes_file, std::string_view workspace_root) {
  LoadedModes loaded{.modes = BuiltinModes()};
  auto load = [&](const std::string& path, const std::string& label, ModeSource source) {
    Result<std::optional<std::string>> text = ReadOptionalFile(path, label);
    if (!text.ok()) {
      loaded.problems.push_back(text.error().message());
      return;
    }
    if (!*text) return;
    // A no-break space where a space belongs (text pasted from a web page or a chat) is one.
    std::string clean = std::move(**text);
    for (size_t at = 0; (at = clean.find("\xC2\xA0", at)) != std::string::npos;) {
      clean.replace(at, 2, " ");
    }
    Result<std::vector<ModeConfig>> modes = ParseCustomModes(clean, label, source);
    if (!modes.ok()) {
      loaded.problems.push_back(modes.error().message());
      return;
    }
    Merge(loaded.modes, *std::move(modes));
  };
  if (!global_modes_file.empty()) {
    std::string path(global_modes_file);
    load(path, path, ModeSource::kGlobal);
  }
  if (!workspace_root.empty()) {
    load(std::string(workspace_root) + "/.kilocodemodes", ".kilocodemodes", ModeSource::kProject);
  }
  return loaded;
}

std::string ModeNames(const LoadedModes& loaded) {
  std::string names = ModeSlugs(loaded.modes);
  std::string problems = ModeProblemsText(loaded);
  return problems.empty() ? names : names + ". " + problems;
}

std::string ModeProblemsText(const LoadedModes& loaded) {
  std::string text;
  for (const std::string& problem : loaded.problems) {
    text += (text.empty() ? "" : " ") + ("A modes file was left out: " + problem + ".");
  }
  return text;
}

std::optional<ToolGroup> GroupOfTool(std::string_view tool) {
  for (const ToolGroupRow& row : kToolGroups) {
    if (row.tool == tool) return row.group;
  }
  if (tool.starts_with("mcp--")) return ToolGroup::kMcp;
  return std::nullopt;
}

bool IsAlwaysAvailableTool(std::string_view tool) {
  return std::find(std::begin(kAlwaysAvailable), std::end(kAlwaysAvailable), tool) !=
         std::end(kAlwaysAvailable);
}

std::string_view ToolGroupName(ToolGroup group) {
  switch (group) {
    case ToolGroup::kRead:
      return "read";
    case ToolGroup::kEdit:
      return "edit";
    case ToolGroup::kCommand:
      return "command";
    case ToolGroup::kMcp:
      return "mcp";
    case ToolGroup::kModes:
      return "modes";
  }
  return "unknown";
}

namespace {

// `relative_path` against the edit group's file pattern ("" pattern or path: OK). `subject`
// begins the refusal, `got` says what did not match.
Status MatchEditPattern(const GroupEntry& entry, const std::string& subject,
                        std::string_view relative_path, const std::string& got) {
  if (entry.file_regex.empty() || relative_path.empty()) return OkStatus();
  std::string error;
  std::unique_ptr<pcre2_code, CodeDeleter> code = CompilePattern(entry.file_regex, &error);
  bool matches = false;
  if (code != nullptr) {
    std::unique_ptr<pcre2_match_data, MatchDataDeleter> match(
        pcre2_match_data_create_from_pattern(code.get(), nullptr));
    matches = pcre2_match(code.get(), reinterpret_cast<PCRE2_SPTR>(relative_path.data()),
                          relative_path.size(), 0, 0, match.get(), nullptr) >= 0;
  }
  if (matches) return OkStatus();
  std::string message = subject + " can only edit files matching " + entry.file_regex;
  if (!entry.description.empty()) message += " (" + entry.description + ")";
  message += " — " + got + ". Edit a matching file, or ask to switch to a mode that may edit it.";
  return Error(ErrorCode::kPermissionDenied, std::move(message));
}

}  // namespace

Status CheckToolAllowed(const ModeConfig& mode, std::string_view tool,
                        std::string_view relative_path) {
  if (IsAlwaysAvailableTool(tool)) return OkStatus();
  std::optional<ToolGroup> group = GroupOfTool(tool);
  if (!group) {
    return Error(ErrorCode::kInvalidArgument, "Unknown tool '" + std::string(tool) +
                                                  "'. Use one of the tools listed for mode '" +
                                                  mode.slug + "'.");
  }
  const GroupEntry* entry = nullptr;
  for (const GroupEntry& candidate : mode.groups) {
    if (candidate.group == *group) entry = &candidate;
  }
  if (entry == nullptr) {
    return Error(ErrorCode::kPermissionDenied,
                 "Tool '" + std::string(tool) + "' is not allowed in mode '" + mode.slug +
                     "'. Use a tool this mode offers, or ask to switch to a mode that allows it "
                     "with switch_mode.");
  }
  if (entry->group != ToolGroup::kEdit) return OkStatus();
  return MatchEditPattern(*entry, "Tool '" + std::string(tool) + "' in mode '" + mode.slug + "'",
                          relative_path, "got '" + std::string(relative_path) + "'");
}

Status CheckCommandWrite(const ModeConfig& mode, std::string_view relative_path) {
  for (const GroupEntry& entry : mode.groups) {
    if (entry.group != ToolGroup::kEdit) continue;
    return MatchEditPattern(entry, "Mode '" + mode.slug + "'", relative_path,
                            "this command writes '" + std::string(relative_path) + "'");
  }
  return OkStatus();
}

std::vector<std::string> ToolsForMode(const ModeConfig& mode,
                                      const std::vector<std::string>& all_tools) {
  std::vector<std::string> tools;
  for (const std::string& tool : all_tools) {
    bool allowed = IsAlwaysAvailableTool(tool);
    if (!allowed) {
      std::optional<ToolGroup> group = GroupOfTool(tool);
      allowed = group && std::any_of(mode.groups.begin(), mode.groups.end(),
                                     [&](const GroupEntry& g) { return g.group == *group; });
    }
    if (allowed) tools.push_back(tool);
  }
  return tools;
}

}  // namespace lai::agent
