// System prompt: golden prompts for code (native) and architect (XML), section order, the real
// workspace path; session tool specs and the todo checklist.
#include "agent/prompt.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/modes.h"
#include "agent/session_tool_specs.h"

namespace lai::agent {
namespace {

namespace fs = std::filesystem;

const fs::path kPromptsDir = fs::path(LAI_TESTDATA_DIR) / "prompts";

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Compares with tests/testdata/prompts/<name>; LAI_GOLDEN_UPDATE=1 rewrites the file instead.
void ExpectGolden(const std::string& name, const std::string& actual) {
  fs::path path = kPromptsDir / name;
  const char* update = std::getenv("LAI_GOLDEN_UPDATE");
  if (update != nullptr && std::string(update) == "1") {
    fs::create_directories(kPromptsDir);
    std::ofstream(path, std::ios::binary) << actual;
    return;
  }
  ASSERT_TRUE(fs::exists(path)) << path << " is missing; run with LAI_GOLDEN_UPDATE=1";
  EXPECT_EQ(actual, ReadAll(path)) << "golden " << path
                                   << " differs; if the change is intended, rerun with "
                                      "LAI_GOLDEN_UPDATE=1 and review the diff";
}

// A fixed tool set, so the goldens do not change when a tool's own description does.
std::vector<PromptToolSpec> StubTools(const ModeConfig& mode) {
  std::vector<PromptToolSpec> all = {
      {"read_file", "Read files with line numbers.", R"({"type":"object"})"},
      {"write_to_file", "Write a whole file.", R"({"type":"object"})"},
      {"apply_diff", "Apply search/replace blocks to a file.", R"({"type":"object"})"},
      {"list_files", "List a directory.", R"({"type":"object"})"},
      {"search_files", "Regex search over files.", R"({"type":"object"})"},
      {"execute_command", "Run a shell command.", R"({"type":"object"})"},
  };
  for (const SessionToolSpec& spec : SessionToolSpecs()) {
    // Offered only with MCP servers, which these prompts have none of.
    if (spec.name == "use_mcp_tool" || spec.name == "access_mcp_resource") continue;
    all.push_back({std::string(spec.name), std::string(spec.description), "{}"});
  }
  std::vector<std::string> names;
  for (const PromptToolSpec& tool : all) names.push_back(tool.name);
  std::vector<std::string> allowed = ToolsForMode(mode, names);
  std::vector<PromptToolSpec> tools;
  for (const PromptToolSpec& tool : all) {
    if (std::find(allowed.begin(), allowed.end(), tool.name) != allowed.end()) {
      tools.push_back(tool);
    }
  }
  return tools;
}

PromptInputs Inputs(std::string_view slug, ToolProtocol protocol) {
  PromptInputs inputs;
  inputs.workspace_root = "/home/alice/src/lapce-demo";
  inputs.modes = BuiltinModes();
  inputs.mode = *FindMode(inputs.modes, slug);
  inputs.tools = StubTools(inputs.mode);
  inputs.protocol = protocol;
  inputs.describe_tool = [](std::string_view name, std::string_view description,
                            std::string_view schema) {
    return "## " + std::string(name) + "\nDescription: " + std::string(description) +
           "\nSchema: " + std::string(schema) + "\nUsage:\n<" + std::string(name) + ">\n</" +
           std::string(name) + ">";
  };
  inputs.os_name = "Linux 6.1.0-18-amd64";
  inputs.shell = "/bin/bash";
  inputs.home = "/home/alice";
  inputs.language = "en";
  inputs.global_custom_instructions = "Prefer small, focused commits.";
  inputs.rules = "# Rules from .kilocode/rules/style.md:\nIndent with two spaces.";
  return inputs;
}

TEST(PromptTest, CodeNativeGolden) {
  ExpectGolden("code_native.txt", BuildSystemPrompt(Inputs("code", ToolProtocol::kNative)));
}

TEST(PromptTest, ArchitectXmlGolden) {
  ExpectGolden("architect_xml.txt", BuildSystemPrompt(Inputs("architect", ToolProtocol::kXml)));
}

void ExpectSectionOrder(const std::string& prompt) {
  size_t previous = 0;
  for (std::string_view title : kPromptSectionOrder) {
    // Top-level sections follow the "====" separator; the guidelines are a "#" heading.
    std::string marker = title.starts_with("#") ? "\n" + std::string(title) + "\n"
                                                : "====\n\n" + std::string(title) + "\n";
    size_t at = prompt.find(marker);
    ASSERT_NE(at, std::string::npos) << "missing section " << title;
    EXPECT_GT(at, previous) << title << " is out of order";
    EXPECT_EQ(prompt.find(marker, at + 1), std::string::npos) << title << " appears twice";
    previous = at;
  }
}

TEST(PromptTest, SectionsInKiloOrderForBothProtocols) {
  for (ToolProtocol protocol : {ToolProtocol::kNative, ToolProtocol::kXml}) {
    std::string prompt = BuildSystemPrompt(Inputs("code", protocol));
    EXPECT_TRUE(prompt.starts_with("You are Lapce AI, a highly skilled software engineer"));
    ExpectSectionOrder(prompt);
  }
}

TEST(PromptTest, RealWorkspacePathInEverySectionThatNamesIt) {
  std::string prompt = BuildSystemPrompt(Inputs("code", ToolProtocol::kNative));
  EXPECT_NE(prompt.find("current workspace directory ('/home/alice/src/lapce-demo') is included"),
            std::string::npos);
  EXPECT_NE(prompt.find("The project base directory is: /home/alice/src/lapce-demo"),
            std::string::npos);
  EXPECT_NE(prompt.find("Current Workspace Directory: /home/alice/src/lapce-demo\n"),
            std::string::npos);
  EXPECT_EQ(prompt.find("/test/path"), std::string::npos);
}

TEST(PromptTest, NativeOmitsToolCatalogXmlDescribesEachOfferedTool) {
  std::string native = BuildSystemPrompt(Inputs("code", ToolProtocol::kNative));
  EXPECT_EQ(native.find("# Tools\n"), std::string::npos);
  EXPECT_EQ(native.find("<actual_tool_name>"), std::string::npos);
  EXPECT_NE(native.find("exactly one tool per assistant message"), std::string::npos);

  PromptInputs inputs = Inputs("architect", ToolProtocol::kXml);
  std::string xml = BuildSystemPrompt(inputs);
  EXPECT_NE(xml.find("# Tool Use Formatting"), std::string::npos);
  EXPECT_NE(xml.find("ALWAYS wait for the user's confirmation"), std::string::npos);
  for (const PromptToolSpec& tool : inputs.tools) {
    EXPECT_NE(xml.find("## " + tool.name + "\n"), std::string::npos) << tool.name;
  }
  EXPECT_EQ(xml.find("## execute_command"), std::string::npos);  // Not in architect.
}

// Orchestrator has no file or command tools: its capabilities are delegating and switching.
TEST(PromptTest, OrchestratorsCapabilitiesAreDelegation) {
  std::string prompt = BuildSystemPrompt(Inputs("orchestrator", ToolProtocol::kNative));
  EXPECT_NE(prompt.find("CAPABILITIES\n\n- You can delegate each part of a task to a subtask in "
                        "the mode suited to it (new_task), switch to another mode (switch_mode) "
                        "and ask the user follow-up questions. With these you coordinate"),
            std::string::npos)
      << prompt;
  std::string code = BuildSystemPrompt(Inputs("code", ToolProtocol::kNative));
  EXPECT_EQ(code.find("(new_task), switch"), std::string::npos);
}

TEST(PromptTest, ModesListAndFileRestriction) {
  std::string prompt = BuildSystemPrompt(Inputs("architect", ToolProtocol::kNative));
  for (const ModeConfig& mode : BuiltinModes()) {
    EXPECT_NE(prompt.find("* \"" + mode.name + "\" mode (" + mode.slug + ") - " + mode.when_to_use),
              std::string::npos)
        << mode.slug;
  }
  EXPECT_NE(prompt.find("In the current mode (architect), file edits are limited to paths "
                        "matching the regular expression \\.md$ (Markdown files only)."),
            std::string::npos);
  EXPECT_NE(prompt.find("Mode-specific Instructions:\n1. Gather information"), std::string::npos);
}

TEST(PromptTest, CustomInstructionsInOrderAndOmittedWhenEmpty) {
  std::string prompt = BuildSystemPrompt(Inputs("code", ToolProtocol::kNative));
  size_t language = prompt.find("Language Preference:\n");
  size_t global = prompt.find("Global Instructions:\nPrefer small");
  size_t rules = prompt.find("Rules:\n\n# Rules from .kilocode/rules/style.md:");
  ASSERT_NE(language, std::string::npos);
  ASSERT_NE(global, std::string::npos);
  ASSERT_NE(rules, std::string::npos);
  EXPECT_LT(language, global);
  EXPECT_LT(global, rules);

  PromptInputs bare = Inputs("code", ToolProtocol::kNative);
  bare.language.clear();
  bare.global_custom_instructions.clear();
  bare.rules.clear();
  std::string without = BuildSystemPrompt(bare);
  EXPECT_EQ(without.find("USER'S CUSTOM INSTRUCTIONS"), std::string::npos);
  EXPECT_TRUE(without.ends_with("further help.\n"));
}

TEST(SessionToolSpecsTest, SevenToolsWithValidSchemas) {
  std::vector<std::string> names;
  for (const SessionToolSpec& spec : SessionToolSpecs()) {
    names.emplace_back(spec.name);
    const bool is_mcp = spec.name == "use_mcp_tool" || spec.name == "access_mcp_resource";
    EXPECT_EQ(IsAlwaysAvailableTool(spec.name), !is_mcp) << spec.name;
    EXPECT_FALSE(spec.description.empty());
    nlohmann::json schema = nlohmann::json::parse(spec.parameters_schema, nullptr, false);
    ASSERT_FALSE(schema.is_discarded()) << spec.name;
    EXPECT_EQ(schema["type"], "object");
    for (const auto& required : schema["required"]) {
      EXPECT_TRUE(schema["properties"].contains(required.get<std::string>())) << spec.name;
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"ask_followup_question", "attempt_completion",
                                             "switch_mode", "new_task", "update_todo_list",
                                             "use_mcp_tool", "access_mcp_resource"}));
  const SessionToolSpec* ask = FindSessionToolSpec("ask_followup_question");
  ASSERT_NE(ask, nullptr);
  nlohmann::json schema = nlohmann::json::parse(ask->parameters_schema);
  EXPECT_EQ(schema["properties"]["follow_up"]["minItems"], 2);
  EXPECT_EQ(schema["properties"]["follow_up"]["maxItems"], 4);
  EXPECT_EQ(FindSessionToolSpec("read_file"), nullptr);
}

// MCP SERVERS sits between the tool use guidelines and CAPABILITIES, with everything the model
// needs to call a server: its command, instructions, tools and their schemas, resources.
TEST(PromptTest, McpServersSectionFollowsTheToolGuidelines) {
  PromptInputs inputs;
  inputs.workspace_root = "/work/project";
  inputs.modes = BuiltinModes();
  inputs.mode = *FindMode(inputs.modes, "code");
  McpServerInfo server;
  server.name = "files";
  server.command = "npx -y server-files /tmp";
  server.instructions = "  Paths are absolute.\n";
  server.tools = {{"read_text_file", "Read a file.", R"({"type":"object"})"}};
  server.resources = {{"file:///tmp/a.txt", "a.txt", "A note.", "text/plain"}};
  inputs.mcp_servers = {server};
  std::string prompt = BuildSystemPrompt(inputs);
  size_t guidelines = prompt.find("# Tool Use Guidelines");
  size_t mcp = prompt.find("====\n\nMCP SERVERS\n\n");
  size_t capabilities = prompt.find("====\n\nCAPABILITIES");
  ASSERT_NE(mcp, std::string::npos);
  EXPECT_LT(guidelines, mcp);
  EXPECT_LT(mcp, capabilities);
  std::string section = prompt.substr(mcp, capabilities - mcp);
  EXPECT_NE(section.find("## files (`npx -y server-files /tmp`)"), std::string::npos) << section;
  EXPECT_NE(section.find("### Instructions\nPaths are absolute."), std::string::npos);
  // Native: the tools are functions of their own, their schemas in the function definitions.
  EXPECT_NE(section.find("- mcp--files--read_text_file: Read a file.\n"), std::string::npos);
  EXPECT_EQ(section.find("Input Schema"), std::string::npos);
  EXPECT_NE(section.find("- file:///tmp/a.txt (a.txt): A note."), std::string::npos);
  std::string xml = McpPromptSection(inputs.mcp_servers, ToolProtocol::kXml);
  EXPECT_NE(xml.find("use_mcp_tool"), std::string::npos);
  EXPECT_NE(xml.find("- read_text_file: Read a file.\n    Input Schema: {\"type\":\"object\"}"),
            std::string::npos);
  EXPECT_EQ(McpPromptSection({}, ToolProtocol::kNative), "");
  inputs.mcp_servers.clear();
  EXPECT_EQ(BuildSystemPrompt(inputs).find("MCP SERVERS"), std::string::npos);
}

TEST(PromptTest, McpFunctionNamesAreValidProviderNames) {
  EXPECT_EQ(McpFunctionName("weather", "get_forecast"), "mcp--weather--get_forecast");
  // A changed name keeps a hash of the original: these two would otherwise be one function.
  std::string spaced = McpFunctionName("a.b c", "echo");
  EXPECT_TRUE(spaced.starts_with("mcp--a_b_c--echo_")) << spaced;
  EXPECT_EQ(spaced.size(), std::string("mcp--a_b_c--echo_").size() + 8);
  EXPECT_NE(spaced, McpFunctionName("a_b_c", "echo"));
  EXPECT_EQ(McpFunctionName("a_b_c", "echo"), "mcp--a_b_c--echo");
  // Server "a--b" with tool "c" and server "a" with tool "b--c" are two functions.
  EXPECT_EQ(McpFunctionName("a", "b--c"), "mcp--a--b--c");
  EXPECT_NE(McpFunctionName("a--b", "c"), McpFunctionName("a", "b--c"));
  EXPECT_TRUE(McpFunctionName("a--b", "c").starts_with("mcp--a--b--c_"));
  std::string long_tool(100, 't');
  std::string a = McpFunctionName("s", long_tool);
  std::string b = McpFunctionName("s", long_tool + "x");
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(b.size(), 64u);
  EXPECT_NE(a, b);  // Cut names keep a hash of the whole.
  EXPECT_TRUE(a.starts_with("mcp--s--ttt"));
}

TEST(TodoListTest, ParsesChecklistAndIgnoresOtherLines) {
  std::vector<TodoItem> items = ParseTodoList(
      "# Plan\n"
      "[x] Read the failing test\n"
      "- [-] Fix the parser  \n"
      "[ ] Run the tests\r\n"
      "\n"
      "[~] Update docs\n"
      "[X] Done too\n"
      "[?] not an item\n"
      "[ ]\n"
      "plain prose\n"
      "1. [ ] Numbered\n"
      "2) [x] Numbered too\n"
      "3. no box\n");
  EXPECT_EQ(items, (std::vector<TodoItem>{{"Read the failing test", TodoStatus::kCompleted},
                                          {"Fix the parser", TodoStatus::kInProgress},
                                          {"Run the tests", TodoStatus::kPending},
                                          {"Update docs", TodoStatus::kInProgress},
                                          {"Done too", TodoStatus::kCompleted},
                                          {"Numbered", TodoStatus::kPending},
                                          {"Numbered too", TodoStatus::kCompleted}}));
  EXPECT_TRUE(ParseTodoList("no items here").empty());
}

// Stored statuses are read back from their labels, or the snake_case some writers use.
TEST(TodoListTest, StatusLabelsParseBack) {
  for (TodoStatus status :
       {TodoStatus::kPending, TodoStatus::kInProgress, TodoStatus::kCompleted}) {
    EXPECT_EQ(ParseTodoStatus(TodoStatusLabel(status)), status);
  }
  EXPECT_EQ(ParseTodoStatus("in_progress"), TodoStatus::kInProgress);
  EXPECT_EQ(ParseTodoStatus("completed"), TodoStatus::kCompleted);
  EXPECT_EQ(ParseTodoStatus("done?"), TodoStatus::kPending);
}

TEST(TodoListTest, FormatRoundTrips) {
  std::vector<TodoItem> items = {
      {"a", TodoStatus::kCompleted}, {"b", TodoStatus::kInProgress}, {"c", TodoStatus::kPending}};
  EXPECT_EQ(FormatTodoList(items), "[x] a\n[-] b\n[ ] c");
  EXPECT_EQ(ParseTodoList(FormatTodoList(items)), items);
  EXPECT_EQ(FormatTodoList({}), "");
}

}  // namespace
}  // namespace lai::agent
