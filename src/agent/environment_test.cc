// Environment details: the fixed sections, the first-turn file listing and the todo reminders.
#include "agent/environment.h"

#include <gtest/gtest.h>

#include "workspace/test_support.h"

namespace lai::agent {
namespace {

using workspace::testing::TempTree;

class EnvironmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_.File("src/main.cc", "int main() {}\n");
    tree_.File("README.md", "# demo\n");
    tree_.File("secret.txt", "x\n");
    tree_.File(".kilocodeignore", "secret.txt\n");
    Result<std::shared_ptr<const workspace::Workspace>> ws =
        workspace::Workspace::Open(tree_.root());
    ASSERT_TRUE(ws.ok());
    workspace_ = *ws;
    inputs_.workspace = workspace_.get();
    // 2026-01-02T03:04:05.678Z
    inputs_.now = std::chrono::system_clock::time_point(std::chrono::milliseconds(1767323045678));
    inputs_.time_zone = "Europe/Berlin";
    inputs_.utc_offset = std::chrono::minutes(60);
    inputs_.mode_slug = "code";
    inputs_.mode_name = "Code";
    inputs_.model_id = "claude-sonnet-4";
    inputs_.cost_usd = 0.1234;
  }

  TempTree tree_;
  std::shared_ptr<const workspace::Workspace> workspace_;
  EnvironmentInputs inputs_;
};

TEST_F(EnvironmentTest, LaterTurnWithoutListingOrTodos) {
  EXPECT_EQ(BuildEnvironmentDetails(inputs_),
            "<environment_details>\n"
            "# Current Time\n"
            "Current time in ISO 8601 UTC format: 2026-01-02T03:04:05.678Z\n"
            "User time zone: Europe/Berlin, UTC+1:00\n\n"
            "# Current Cost\n$0.12\n\n"
            "# Current Mode\n<slug>code</slug>\n<name>Code</name>\n"
            "<model>claude-sonnet-4</model>\n<tool_format>native</tool_format>\n\n"
            "You have not created a todo list yet. Create one with `update_todo_list` if your "
            "task is complicated or involves multiple steps.\n"
            "</environment_details>");
}

TEST_F(EnvironmentTest, FirstTurnListsFilesIgnoreFiltered) {
  inputs_.include_file_listing = true;
  inputs_.protocol = ToolProtocol::kXml;
  inputs_.utc_offset = std::chrono::minutes(-330);
  inputs_.has_todo_tool = false;
  std::string details = BuildEnvironmentDetails(inputs_);
  EXPECT_NE(details.find("User time zone: Europe/Berlin, UTC-5:30\n"), std::string::npos);
  EXPECT_NE(details.find("<tool_format>xml</tool_format>\n"), std::string::npos);
  EXPECT_NE(details.find("\n# Current Workspace Directory (" + tree_.root() +
                         ") Files\nREADME.md\nsrc/\nsrc/main.cc\n\nYou have not created a todo "
                         "list yet.\n</environment_details>"),
            std::string::npos)
      << details;
  EXPECT_EQ(details.find("secret.txt"), std::string::npos);
}

TEST_F(EnvironmentTest, ListingLimitAddsTruncationNote) {
  inputs_.include_file_listing = true;
  inputs_.listing_limit = 1;
  std::string details = BuildEnvironmentDetails(inputs_);
  EXPECT_NE(details.find("(File list truncated. Use list_files on specific subdirectories if "
                         "you need to explore further.)"),
            std::string::npos)
      << details;
}

TEST_F(EnvironmentTest, TodoTable) {
  inputs_.todos = {{"Read the code", TodoStatus::kCompleted},
                   {"Fix a | b", TodoStatus::kInProgress},
                   {"Run tests", TodoStatus::kPending}};
  std::string details = BuildEnvironmentDetails(inputs_);
  EXPECT_TRUE(details.ends_with(
      "<tool_format>native</tool_format>\n\n"
      "====\n\nREMINDERS\n\n"
      "Below is your current list of reminders for this task. Keep them updated as you "
      "progress.\n\n"
      "| # | Content | Status |\n|---|---------|--------|\n"
      "| 1 | Read the code | Completed |\n"
      "| 2 | Fix a \\| b | In Progress |\n"
      "| 3 | Run tests | Pending |\n\n\n"
      "IMPORTANT: When task status changes, remember to call the `update_todo_list` tool to "
      "update your progress.\n"
      "</environment_details>"))
      << details;
}

TEST(LocalZoneTest, NamesAZone) {
  LocalZone zone = CurrentLocalZone(std::chrono::system_clock::now());
  EXPECT_FALSE(zone.name.empty());
}

}  // namespace
}  // namespace lai::agent
