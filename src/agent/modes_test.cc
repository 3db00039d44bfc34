// Modes: built-ins, custom mode files (YAML and JSON, global and project), precise errors for
// bad files, and the tool/file checks.
#include "agent/modes.h"

#include <gtest/gtest.h>

#include "workspace/test_support.h"

namespace lai::agent {
namespace {

using workspace::testing::TempTree;

bool HasGroup(const ModeConfig& mode, ToolGroup group) {
  for (const GroupEntry& entry : mode.groups) {
    if (entry.group == group) return true;
  }
  return false;
}

const std::vector<std::string> kAllTools = {
    "read_file",          "write_to_file",         "apply_diff",         "insert_content",
    "search_and_replace", "delete_file",           "list_files",         "search_files",
    "execute_command",    "ask_followup_question", "attempt_completion", "switch_mode",
    "new_task",           "update_todo_list"};

TEST(ModesTest, BuiltinModes) {
  const std::vector<ModeConfig>& modes = BuiltinModes();
  std::vector<std::string> slugs;
  for (const ModeConfig& mode : modes) {
    slugs.push_back(mode.slug);
    EXPECT_FALSE(mode.name.empty());
    EXPECT_TRUE(mode.role_definition.starts_with("You are Lapce AI, ")) << mode.slug;
    EXPECT_FALSE(mode.when_to_use.empty());
    EXPECT_EQ(mode.source, ModeSource::kBuiltin);
  }
  EXPECT_EQ(slugs, (std::vector<std::string>{"code", "architect", "ask", "debug", "orchestrator"}));
  EXPECT_EQ(FindMode(modes, kDefaultModeSlug)->slug, "code");
  EXPECT_EQ(FindMode(modes, "nope"), nullptr);

  const ModeConfig& architect = *FindMode(modes, "architect");
  ASSERT_TRUE(HasGroup(architect, ToolGroup::kEdit));
  for (const GroupEntry& entry : architect.groups) {
    if (entry.group == ToolGroup::kEdit) {
      EXPECT_EQ(entry.file_regex, "\\.md$");
    }
  }
  const ModeConfig& ask = *FindMode(modes, "ask");
  EXPECT_TRUE(HasGroup(ask, ToolGroup::kRead));
  EXPECT_TRUE(HasGroup(ask, ToolGroup::kMcp));
  EXPECT_FALSE(HasGroup(ask, ToolGroup::kEdit));
  EXPECT_FALSE(HasGroup(ask, ToolGroup::kCommand));
  EXPECT_TRUE(FindMode(modes, "orchestrator")->groups.empty());
  EXPECT_NE(FindMode(modes, "orchestrator")->custom_instructions.find("new_task"),
            std::string::npos);
}

TEST(ModesTest, ToolsForMode) {
  const std::vector<ModeConfig>& modes = BuiltinModes();
  EXPECT_EQ(ToolsForMode(*FindMode(modes, "code"), kAllTools), kAllTools);
  EXPECT_EQ(ToolsForMode(*FindMode(modes, "ask"), kAllTools),
            (std::vector<std::string>{"read_file", "list_files", "search_files",
                                      "ask_followup_question", "attempt_completion", "switch_mode",
                                      "new_task", "update_todo_list"}));
  EXPECT_EQ(ToolsForMode(*FindMode(modes, "orchestrator"), kAllTools),
            (std::vector<std::string>{"ask_followup_question", "attempt_completion", "switch_mode",
                                      "new_task", "update_todo_list"}));
  std::vector<std::string> architect = ToolsForMode(*FindMode(modes, "architect"), kAllTools);
  EXPECT_NE(std::find(architect.begin(), architect.end(), "write_to_file"), architect.end());
  EXPECT_EQ(std::find(architect.begin(), architect.end(), "execute_command"), architect.end());
  EXPECT_EQ(ToolsForMode(*FindMode(modes, "ask"), {"mcp--github--search", "unknown_tool"}),
            (std::vector<std::string>{"mcp--github--search"}));
}

TEST(ModesTest, ArchitectMayEditOnlyMarkdown) {
  const ModeConfig& architect = *FindMode(BuiltinModes(), "architect");
  EXPECT_TRUE(CheckToolAllowed(architect, "write_to_file", "docs/plan.md").ok());
  EXPECT_TRUE(CheckToolAllowed(architect, "apply_diff", "README.md").ok());
  EXPECT_TRUE(CheckToolAllowed(architect, "read_file", "src/a.cc").ok());
  EXPECT_TRUE(CheckToolAllowed(architect, "write_to_file", "").ok());  // Path not known yet.

  Status denied = CheckToolAllowed(architect, "write_to_file", "src/a.cc");
  ASSERT_EQ(denied.code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(denied.error().message(),
            "Tool 'write_to_file' in mode 'architect' can only edit files matching \\.md$ "
            "(Markdown files only) — got 'src/a.cc'. Edit a matching file, or ask to switch to "
            "a mode that may edit it.");
  EXPECT_EQ(CheckToolAllowed(architect, "delete_file", "notes.md.bak").code(),
            ErrorCode::kPermissionDenied);
  EXPECT_EQ(CheckToolAllowed(architect, "execute_command", "").code(),
            ErrorCode::kPermissionDenied);
}

TEST(ModesTest, GroupChecks) {
  const std::vector<ModeConfig>& modes = BuiltinModes();
  Status denied = CheckToolAllowed(*FindMode(modes, "ask"), "execute_command", "");
  ASSERT_EQ(denied.code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(denied.error().message(),
            "Tool 'execute_command' is not allowed in mode 'ask'. Use a tool this mode offers, "
            "or ask to switch to a mode that allows it with switch_mode.");
  const ModeConfig& orchestrator = *FindMode(modes, "orchestrator");
  EXPECT_EQ(CheckToolAllowed(orchestrator, "read_file", "a").code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(CheckToolAllowed(orchestrator, "new_task", "").ok());
  EXPECT_TRUE(CheckToolAllowed(orchestrator, "attempt_completion", "").ok());
  EXPECT_TRUE(CheckToolAllowed(*FindMode(modes, "code"), "write_to_file", "src/a.cc").ok());
  Status unknown = CheckToolAllowed(*FindMode(modes, "code"), "browser_action", "");
  EXPECT_EQ(unknown.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(unknown.error().message(),
            "Unknown tool 'browser_action'. Use one of the tools listed for mode 'code'.");
}

TEST(ModesTest, ProjectYamlOverridesAndExtends) {
  TempTree tree;
  tree.File(".kilocodemodes", R"(customModes:
  - slug: code
    name: Code (house rules)
    roleDefinition: You are our house engineer.
    groups: [read, edit]
  - slug: docs
    name: Docs Writer
    roleDefinition: |
      You write documentation.
      Only docs.
    whenToUse: For documentation.
    customInstructions: Keep it short.
    groups:
      - read
      - - edit
        - fileRegex: \.(md|mdx)$
          description: Documentation files
      - browser
)");
  LoadedModes loaded = LoadModes("", tree.root());
  EXPECT_TRUE(loaded.problems.empty()) << loaded.problems[0];
  const std::vector<ModeConfig>* modes = &loaded.modes;
  ASSERT_EQ(modes->size(), 6u);
  const ModeConfig& code = (*modes)[0];  // Replaced in place.
  EXPECT_EQ(code.slug, "code");
  EXPECT_EQ(code.name, "Code (house rules)");
  EXPECT_EQ(code.source, ModeSource::kProject);
  EXPECT_FALSE(HasGroup(code, ToolGroup::kCommand));
  const ModeConfig& docs = modes->back();
  EXPECT_EQ(docs.slug, "docs");
  EXPECT_EQ(docs.role_definition, "You write documentation.\nOnly docs.\n");
  EXPECT_EQ(docs.when_to_use, "For documentation.");
  EXPECT_EQ(docs.custom_instructions, "Keep it short.");
  ASSERT_EQ(docs.groups.size(), 2u);  // "browser" is accepted and dropped.
  EXPECT_EQ(docs.groups[1].file_regex, "\\.(md|mdx)$");
  EXPECT_EQ(docs.groups[1].description, "Documentation files");
  EXPECT_TRUE(CheckToolAllowed(docs, "write_to_file", "guide.mdx").ok());
  EXPECT_FALSE(CheckToolAllowed(docs, "write_to_file", "guide.txt").ok());
}

TEST(ModesTest, GlobalJsonThenProjectWins) {
  TempTree tree;
  tree.File("config/modes.yaml", R"({
  "customModes": [
    {"slug": "docs", "name": "Global Docs", "roleDefinition": "Global.", "groups": ["read"]},
    {"slug": "review", "name": "Review", "roleDefinition": "You review.",
     "groups": ["read", "command"]}
  ]
})");
  tree.File("project/.kilocodemodes",
            R"({"customModes": [{"slug": "docs", "name": "Project Docs",)"
            R"( "roleDefinition": "Project.", "groups": [["edit", {"fileRegex": "\\.md$"}]]}]})");
  LoadedModes loaded = LoadModes(tree.Path("config/modes.yaml"), tree.Path("project"));
  EXPECT_TRUE(loaded.problems.empty()) << loaded.problems[0];
  const std::vector<ModeConfig>* modes = &loaded.modes;
  ASSERT_EQ(modes->size(), 7u);
  const ModeConfig* docs = FindMode(*modes, "docs");
  ASSERT_NE(docs, nullptr);
  EXPECT_EQ(docs->name, "Project Docs");
  EXPECT_EQ(docs->source, ModeSource::kProject);
  EXPECT_EQ(docs->groups[0].file_regex, "\\.md$");
  const ModeConfig* review = FindMode(*modes, "review");
  ASSERT_NE(review, nullptr);
  EXPECT_EQ(review->source, ModeSource::kGlobal);
  EXPECT_TRUE(HasGroup(*review, ToolGroup::kCommand));
}

TEST(ModesTest, MissingAndEmptyFilesGiveBuiltins) {
  TempTree tree;
  LoadedModes loaded = LoadModes(tree.Path("none.yaml"), tree.root());
  EXPECT_TRUE(loaded.problems.empty());
  EXPECT_EQ(loaded.modes.size(), BuiltinModes().size());
  tree.File(".kilocodemodes", "\n");
  loaded = LoadModes("", tree.root());
  EXPECT_TRUE(loaded.problems.empty());
  EXPECT_EQ(loaded.modes.size(), BuiltinModes().size());
}

// The example in docs/agent.md, as written there, loads.
TEST(ModesTest, TheDocumentedExampleParses) {
  constexpr std::string_view kExample =
      "customModes:\n"
      "  - slug: docs                # letters, digits, '-'\n"
      "    name: Docs Writer\n"
      "    roleDefinition: You write documentation.\n"
      "    whenToUse: For documentation work.     # optional\n"
      "    customInstructions: Keep it short.     # optional\n"
      "    groups: [read, [edit, {fileRegex: '\\.mdx?$', description: Markdown only}]]  # quote "
      "regexes\n";
  Result<std::vector<ModeConfig>> modes =
      ParseCustomModes(kExample, ".kilocodemodes", ModeSource::kProject);
  ASSERT_TRUE(modes.ok()) << modes.error().message();
  ASSERT_EQ(modes->size(), 1u);
  ASSERT_EQ((*modes)[0].groups.size(), 2u);
  EXPECT_EQ((*modes)[0].groups[1].file_regex, "\\.mdx?$");
}

std::string ProjectError(const std::string& text) {
  Result<std::vector<ModeConfig>> modes =
      ParseCustomModes(text, ".kilocodemodes", ModeSource::kProject);
  EXPECT_FALSE(modes.ok()) << text;
  if (modes.ok()) return "";
  EXPECT_EQ(modes.error().code(), ErrorCode::kInvalidArgument);
  return modes.error().message();
}

constexpr std::string_view kGoodEntry =
    "  - slug: ok\n    name: Ok\n    roleDefinition: Fine.\n    groups: [read]\n";

TEST(ModesTest, BadFilesNameFileEntryAndField) {
  EXPECT_EQ(
      ProjectError(std::string("customModes:\n") + std::string(kGoodEntry) +
                   "  - slug: docs\n    name: Docs\n    roleDefinition: x\n    groups: read\n"),
      ".kilocodemodes: customModes[1] (slug 'docs'): 'groups' must be a list");
  EXPECT_EQ(ProjectError("customModes:\n  - slug: docs\n    name: Docs\n    groups: [read]\n"),
            ".kilocodemodes: customModes[0] (slug 'docs'): 'roleDefinition' is required");
  EXPECT_EQ(ProjectError("customModes:\n  - name: Docs\n    roleDefinition: x\n    groups: []\n"),
            ".kilocodemodes: customModes[0]: 'slug' is required");
  EXPECT_EQ(ProjectError("customModes:\n  - slug: my docs\n    name: D\n    roleDefinition: x\n"
                         "    groups: []\n"),
            ".kilocodemodes: customModes[0]: 'slug' 'my docs' may only contain letters, digits "
            "and '-'");
  EXPECT_EQ(ProjectError("customModes:\n  - slug: d\n    name: D\n    roleDefinition: x\n"
                         "    groups: [read, write]\n"),
            ".kilocodemodes: customModes[0] (slug 'd'): 'groups[1]' is unknown group 'write' "
            "(use read, edit, command, mcp, modes or browser)");
  EXPECT_EQ(ProjectError("customModes:\n  - slug: d\n    name: D\n    roleDefinition: x\n"
                         "    groups: [read, read]\n"),
            ".kilocodemodes: customModes[0] (slug 'd'): 'groups[1]' repeats group 'read'");
  EXPECT_EQ(ProjectError("customModes:\n  - slug: d\n    name: D\n    roleDefinition: x\n"
                         "    groups: [[edit, {fileRegex: '(unclosed'}]]\n")
                .rfind(".kilocodemodes: customModes[0] (slug 'd'): 'groups[0].fileRegex' is not a "
                       "valid regular expression: ",
                       0),
            0u);
  EXPECT_EQ(ProjectError("customModes:\n  - slug: d\n    name: [a]\n    roleDefinition: x\n"
                         "    groups: []\n"),
            ".kilocodemodes: customModes[0] (slug 'd'): 'name' must be a string");
  EXPECT_EQ(ProjectError("customModes: {slug: d}\n"),
            ".kilocodemodes: 'customModes' must be a list");
  EXPECT_EQ(ProjectError(std::string("customModes:\n") + std::string(kGoodEntry) +
                         std::string(kGoodEntry)),
            ".kilocodemodes: customModes[1] (slug 'ok'): the slug is used by an earlier mode in "
            "this file");
  EXPECT_EQ(ProjectError("customModes: [\n").rfind(".kilocodemodes: not valid YAML", 0), 0u);
  EXPECT_EQ(ProjectError("{\"customModes\": [}").rfind(".kilocodemodes: not valid JSON", 0), 0u);
}

// A bad modes file is left out whole, named by its path, and the other files' modes and the
// built-in ones still work (as in Kilo Code): one typo does not stop every session.
TEST(ModesTest, ABadFileIsLeftOutAndTheOthersWork) {
  TempTree tree;
  tree.File("modes.yaml",
            "customModes:\n  - slug: x\n    name: X\n    roleDefinition: y\n"
            "    groups: 3\n");
  tree.File(".kilocodemodes", std::string("customModes:\n") + std::string(kGoodEntry));
  LoadedModes loaded = LoadModes(tree.Path("modes.yaml"), tree.root());
  ASSERT_EQ(loaded.problems.size(), 1u);
  EXPECT_EQ(loaded.problems[0],
            tree.Path("modes.yaml") + ": customModes[0] (slug 'x'): 'groups' must be a list");
  EXPECT_EQ(loaded.modes.size(), BuiltinModes().size() + 1);
  EXPECT_NE(FindMode(loaded.modes, "ok"), nullptr);
  EXPECT_EQ(FindMode(loaded.modes, "x"), nullptr);
  EXPECT_NE(ModeNames(loaded).find("orchestrator, ok. A modes file was left out: " +
                                   tree.Path("modes.yaml")),
            std::string::npos)
      << ModeNames(loaded);
}

// A modes file that is a link to a device is left out, not read for ever.
TEST(ModesTest, AModesFileThatIsADeviceIsLeftOut) {
  TempTree tree;
  tree.Symlink("/dev/zero", ".kilocodemodes");
  LoadedModes loaded = LoadModes("", tree.root());
  ASSERT_EQ(loaded.problems.size(), 1u);
  EXPECT_NE(loaded.problems[0].find(".kilocodemodes: cannot be read"), std::string::npos)
      << loaded.problems[0];
  EXPECT_EQ(loaded.modes.size(), BuiltinModes().size());
}

// No-break spaces (text pasted from a web page) indent as spaces do.
TEST(ModesTest, NoBreakSpacesAreSpaces) {
  TempTree tree;
  tree.File(".kilocodemodes",
            "customModes:\n\xC2\xA0 - slug: ok\n\xC2\xA0\xC2\xA0  name: Ok\n"
            "    roleDefinition: Fine.\n    groups: [read]\n");
  LoadedModes loaded = LoadModes("", tree.root());
  EXPECT_TRUE(loaded.problems.empty()) << loaded.problems[0];
  EXPECT_NE(FindMode(loaded.modes, "ok"), nullptr);
}

}  // namespace
}  // namespace lai::agent
