#include "base/log.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

namespace lai::log {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "lai-log-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    // Later tests must not write into this test's (deleted) file.
    EXPECT_TRUE(Init({.level = "warn"}).ok());
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  static mode_t Mode(const std::string& path) {
    struct stat info {};
    EXPECT_EQ(::stat(path.c_str(), &info), 0) << path;
    return info.st_mode & 07777;
  }

  static std::string ReadAll(const std::string& path) {
    std::ostringstream out;
    out << std::ifstream(path).rdbuf();
    return out.str();
  }

  std::string dir_;
};

TEST_F(LogTest, FileIsCreated0600InA0700Directory) {
  std::string file = dir_ + "/logs/engine/lapce-ai.log";
  Status status = Init({.level = "debug", .file = file});
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(Mode(file), 0600u);
  EXPECT_EQ(Mode(dir_ + "/logs"), 0700u);
  EXPECT_EQ(Mode(dir_ + "/logs/engine"), 0700u);

  spdlog::debug("debug line {}", 1);
  spdlog::trace("trace line");
  spdlog::default_logger()->flush();
  std::string text = ReadAll(file);
  EXPECT_NE(text.find("debug line 1"), std::string::npos) << text;
  EXPECT_EQ(text.find("trace line"), std::string::npos) << text;
}

TEST_F(LogTest, AppendsToAnExistingFile) {
  std::string file = dir_ + "/lapce-ai.log";
  std::ofstream(file) << "earlier\n";
  ASSERT_TRUE(Init({.level = "info", .file = file}).ok());
  spdlog::info("later");
  spdlog::default_logger()->flush();
  std::string text = ReadAll(file);
  EXPECT_TRUE(text.starts_with("earlier\n")) << text;
  EXPECT_NE(text.find("later"), std::string::npos) << text;
}

TEST_F(LogTest, WritesStderrAndNeverStdout) {
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  Status status = Init({.level = "info"});
  spdlog::warn("to stderr {}", 42);
  spdlog::default_logger()->flush();
  std::string out = ::testing::internal::GetCapturedStdout();
  std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(out, "");
  EXPECT_NE(err.find("to stderr 42"), std::string::npos) << err;
}

TEST_F(LogTest, BadLevelIsInvalidArgumentNamingTheValidLevels) {
  Status status = Init({.level = "verbose"});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(status.error().message(),
            "log level 'verbose': expected one of trace, debug, info, warn, error, off");
  // spdlog's own spellings are not accepted either.
  EXPECT_FALSE(Init({.level = "warning"}).ok());
  EXPECT_FALSE(Init({.level = "INFO"}).ok());
}

TEST_F(LogTest, EveryLevelNameIsAccepted) {
  for (std::string_view level : kLevelNames) {
    EXPECT_TRUE(Init({.level = std::string(level)}).ok()) << level;
  }
  ASSERT_TRUE(Init({.level = "error"}).ok());
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::err);
}

TEST_F(LogTest, UncreatableFileIsAnErrorAndKeepsTheOldLogger) {
  ASSERT_TRUE(Init({.level = "info"}).ok());
  std::shared_ptr<spdlog::logger> before = spdlog::default_logger();
  std::ofstream(dir_ + "/plain") << "not a directory";
  Status status = Init({.level = "info", .file = dir_ + "/plain/sub/x.log"});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().message(),
            "create log directory '" + dir_ + "/plain/sub': Not a directory");
  EXPECT_EQ(spdlog::default_logger(), before);
}

}  // namespace
}  // namespace lai::log
