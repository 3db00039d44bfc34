#include "base/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <regex>
#include <string>
#include <system_error>
#include <vector>

namespace lai {
namespace {

// Each test gets its own temp dir and an explicit environment, so the real user's config file
// and LAPCE_AI_* variables never leak in.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "lai-config-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Writes `contents` to dir_/relative (creating directories) and returns the path.
  std::string WriteFile(const std::string& relative, const std::string& contents) {
    std::filesystem::path path = std::filesystem::path(dir_) / relative;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << contents;
    return path.string();
  }

  // Loads with `environment` as the whole process environment.
  Result<Config> Load(const std::string& file, std::vector<std::string> environment = {},
                      std::vector<std::string> overrides = {}) {
    environment_ = std::move(environment);
    pointers_.clear();
    for (const std::string& entry : environment_) pointers_.push_back(entry.c_str());
    pointers_.push_back(nullptr);
    ConfigSources sources;
    sources.file = file;
    sources.overrides = std::move(overrides);
    sources.environ = pointers_.data();
    return LoadConfig(sources);
  }

  // The error message of loading a file with `contents`.
  std::string FileError(const std::string& contents) {
    Result<Config> config = Load(WriteFile("config.toml", contents));
    EXPECT_FALSE(config.ok());
    if (config.ok()) return "";
    EXPECT_EQ(config.error().code(), ErrorCode::kInvalidArgument);
    return config.error().message();
  }

  std::string Path() const { return dir_ + "/config.toml"; }

  std::string dir_;
  std::vector<std::string> environment_;
  std::vector<const char*> pointers_;
};

TEST_F(ConfigTest, DefaultsWithoutAnySource) {
  Result<Config> config = Load("");
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->log.level, "info");
  EXPECT_EQ(config->log.file, "");
  EXPECT_EQ(config->file, "");  // No file was read.
  EXPECT_EQ(config->ipc.runtime_dir, "/tmp/lapce-ai-" + std::to_string(::getuid()));
  EXPECT_EQ(config->ipc.socket_name, "engine.sock");
  EXPECT_EQ(config->ipc.ring_bytes, 1024u);
  EXPECT_EQ(config->ipc.max_message_bytes, 10u << 20);
  EXPECT_EQ(config->ipc.connect_timeout_ms, 1000u);
  EXPECT_EQ(config->ipc.request_timeout_ms, 30000u);
  EXPECT_EQ(config->server.workers, 1u);
  EXPECT_EQ(config->server.max_connections, 4096u);
  EXPECT_EQ(config->server.metrics_addr, "127.0.0.1:9464");
}

TEST_F(ConfigTest, RuntimeDirFollowsXdgRuntimeDir) {
  Result<Config> config = Load("", {"XDG_RUNTIME_DIR=/run/user/1234"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->ipc.runtime_dir, "/run/user/1234/lapce-ai");

  config = Load("", {"XDG_RUNTIME_DIR=/run/user/1234"}, {"ipc.runtime_dir=/srv/lai"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->ipc.runtime_dir, "/srv/lai");
}

TEST_F(ConfigTest, FileOverridesDefaults) {
  std::string path = WriteFile("config.toml", R"(# comment
[log]
level = "debug"
file = "/var/log/lai.log"

[ipc]
ring_bytes = 4096
max_message_bytes = 1073741824
request_timeout_ms = 5

[server]
workers = 8
metrics_addr = ""
)");
  Result<Config> config = Load(path);
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->log.level, "debug");
  EXPECT_EQ(config->log.file, "/var/log/lai.log");
  EXPECT_EQ(config->ipc.ring_bytes, 4096u);
  EXPECT_EQ(config->ipc.max_message_bytes, uint64_t{1} << 30);
  EXPECT_EQ(config->ipc.request_timeout_ms, 5u);
  EXPECT_EQ(config->ipc.connect_timeout_ms, 1000u);  // Untouched keys keep their default.
  EXPECT_EQ(config->server.workers, 8u);
  EXPECT_EQ(config->server.metrics_addr, "");
}

// `config show` prints every key of the table, agent.* and approvals.* included, as TOML that
// loads back to the same values (strings with quotes and backslashes too).
TEST_F(ConfigTest, FormattedValuesCoverEveryKeyAndLoadBack) {
  Result<Config> config = Load(WriteFile(
      "config.toml",
      "[agent]\nmistake_limit = 2\ncustom_instructions = 'say \"hi\" \\ bye'\n"
      "[approvals]\nauto_approve = \"read,write\"\nmax_cost_usd = 1.5\n[ipc]\nring_bytes = 512\n"));
  ASSERT_TRUE(config.ok()) << config.error().message();
  std::string shown = FormatConfigValues(*config);
  EXPECT_NE(shown.find("agent.mistake_limit = 2\n"), std::string::npos) << shown;
  EXPECT_NE(shown.find("approvals.auto_approve = \"read,write\"\n"), std::string::npos) << shown;
  EXPECT_NE(shown.find("ipc.ring_bytes = 512\n"), std::string::npos) << shown;
  // The keys are the lines before the blank one (the tables' description follows it).
  const std::string all_described = DescribeKeys();
  const std::string described = all_described.substr(0, all_described.find("\n\n") + 1);
  EXPECT_EQ(std::count(shown.begin(), shown.end(), '\n'),
            std::count(described.begin(), described.end(), '\n'))
      << "one line per key\n" << shown << "\n" << described;
  Result<Config> again = Load(WriteFile("again.toml", shown));
  ASSERT_TRUE(again.ok()) << again.error().message() << "\n" << shown;
  EXPECT_EQ(FormatConfigValues(*again), shown);
  EXPECT_EQ(again->agent.custom_instructions, "say \"hi\" \\ bye");
}

// Profiles are shown as the tables they came from, every field but the secrets: an api_key and
// header values (an Authorization header is one) appear only as set. The tables load back.
TEST_F(ConfigTest, FormattedProfilesLoadBackWithoutTheirSecrets) {
  std::string path = WriteFile(
      "config.toml",
      "[profiles.main]\nprovider = \"openai\"\nmodel = \"gpt-4.1\"\nbase_url = "
      "\"http://127.0.0.1:8080/v1\"\napi_key = \"sk-SECRET\"\nheaders = { Authorization = "
      "\"Bearer TOKEN\" }\nrate_limit_per_minute = 3\nfallback = \"spare\"\nidle_timeout_ms "
      "= 5000\n[profiles.spare]\nprovider = \"ollama\"\nmodel = \"qwen\\\"3\"\n");
  ::chmod(path.c_str(), 0600);
  Result<Config> config = Load(path);
  ASSERT_TRUE(config.ok()) << config.error().message();
  std::string shown = FormatProfiles(*config);
  EXPECT_EQ(shown.find("SECRET"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("TOKEN"), std::string::npos) << shown;
  EXPECT_NE(shown.find("# api_key is set\n# header Authorization is set\n"), std::string::npos)
      << shown;
  EXPECT_NE(shown.find("rate_limit_per_minute = 3\nfallback = \"spare\"\n"), std::string::npos)
      << shown;
  EXPECT_NE(shown.find("idle_timeout_ms = 5000\n"), std::string::npos) << shown;
  Result<Config> again = Load(WriteFile("again.toml", shown));
  ASSERT_TRUE(again.ok()) << again.error().message() << "\n" << shown;
  ASSERT_EQ(again->profiles.size(), 2u);
  EXPECT_EQ(again->profiles[1].model, "qwen\"3");
  EXPECT_EQ(FormatProfiles(*again),
            std::regex_replace(shown, std::regex("# (api_key|header Authorization) is set\n"), ""));
}

TEST_F(ConfigTest, DottedKeysAndInlineTablesWork) {
  Result<Config> config =
      Load(WriteFile("config.toml", "ipc.ring_bytes = 512\nserver = { workers = 3 }\n"));
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->ipc.ring_bytes, 512u);
  EXPECT_EQ(config->server.workers, 3u);
}

TEST_F(ConfigTest, DefaultPathUsesXdgConfigHomeBeforeHome) {
  WriteFile("xdg/lapce-ai/config.toml", "[server]\nworkers = 2\n");
  WriteFile("home/.config/lapce-ai/config.toml", "[server]\nworkers = 3\n");
  Result<Config> config = Load("", {"HOME=" + dir_ + "/home", "XDG_CONFIG_HOME=" + dir_ + "/xdg"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->server.workers, 2u);
  EXPECT_EQ(config->directory, dir_ + "/xdg/lapce-ai");
}

TEST_F(ConfigTest, DefaultPathFallsBackToHome) {
  WriteFile("home/.config/lapce-ai/config.toml", "[server]\nworkers = 3\n");
  // A relative XDG_CONFIG_HOME is invalid per the XDG spec and ignored.
  Result<Config> config = Load("", {"HOME=" + dir_ + "/home", "XDG_CONFIG_HOME=relative"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->server.workers, 3u);
}

TEST_F(ConfigTest, MissingDefaultFileIsFine) {
  Result<Config> config = Load("", {"HOME=" + dir_ + "/nobody"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->server.workers, 1u);
  // The directory is still where the user's modes, rules and MCP servers would be.
  EXPECT_EQ(config->directory, dir_ + "/nobody/.config/lapce-ai");
}

TEST_F(ConfigTest, DefaultConfigPathEndsInLapceAi) {
  std::string path = DefaultConfigPath();
  if (std::getenv("HOME") == nullptr && std::getenv("XDG_CONFIG_HOME") == nullptr) {
    EXPECT_EQ(path, "");
  } else {
    EXPECT_TRUE(path.ends_with("/lapce-ai/config.toml")) << path;
  }
}

TEST_F(ConfigTest, EnvironmentOverridesFile) {
  std::string path = WriteFile("config.toml", "[ipc]\nring_bytes = 4096\nsocket_name = \"a\"\n");
  Result<Config> config = Load(path, {"LAPCE_AI_IPC_RING_BYTES=2048", "PATH=/bin"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->ipc.ring_bytes, 2048u);
  EXPECT_EQ(config->ipc.socket_name, "a");
}

TEST_F(ConfigTest, EmptyEnvironmentValueSetsEmptyString) {
  Result<Config> config = Load("", {"LAPCE_AI_SERVER_METRICS_ADDR="});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->server.metrics_addr, "");
}

TEST_F(ConfigTest, OverrideBeatsEnvironmentAndFile) {
  std::string path = WriteFile("config.toml", "[ipc]\nring_bytes = 4096\n");
  Result<Config> config =
      Load(path, {"LAPCE_AI_IPC_RING_BYTES=2048", "LAPCE_AI_LOG_LEVEL=warn"},
           {"ipc.ring_bytes=256", "log.file=/tmp/x=y.log", "ipc.ring_bytes=512"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->ipc.ring_bytes, 512u);  // The last override wins.
  EXPECT_EQ(config->log.level, "warn");
  EXPECT_EQ(config->log.file, "/tmp/x=y.log");  // Only the first '=' splits.
}

TEST_F(ConfigTest, FileValueErrorNamesPathLineColumnAndKey) {
  EXPECT_EQ(FileError("[log]\nlevel = \"info\"\n\n[ipc]\nring_bytes = 1000\n"),
            Path() +
                ":5:14: ipc.ring_bytes: expected a power of two between 256 and 1048576, "
                "got 1000");
}

TEST_F(ConfigTest, FileReportsTheFirstErrorInFileOrder) {
  // toml++ sorts keys by name; the error must still be the one on the earliest line.
  EXPECT_EQ(FileError("[server]\nworkers = 0\n[ipc]\nring_bytes = 3\n"),
            Path() + ":2:11: server.workers: expected an integer between 1 and 64, got 0");
}

TEST_F(ConfigTest, FileUnknownKeySuggestsTheClosestKey) {
  EXPECT_EQ(FileError("[ipc]\nsocket_name = \"x\"\nring_byte = 2048\n"),
            Path() + ":3: unknown key 'ipc.ring_byte' (did you mean 'ipc.ring_bytes'?)");
  // Same field name in the wrong section.
  EXPECT_EQ(FileError("[server]\nring_bytes = 2048\n"),
            Path() + ":2: unknown key 'server.ring_bytes' (did you mean 'ipc.ring_bytes'?)");
}

TEST_F(ConfigTest, FileUnknownKeyListsTheSectionKeys) {
  EXPECT_EQ(FileError("[log]\ncolour = true\n"),
            Path() + ":2: unknown key 'log.colour' (known keys: log.level, log.file)");
}

TEST_F(ConfigTest, FileUnknownSectionAndTopLevelKey) {
  EXPECT_EQ(FileError("\n[plugins]\nx = 1\n"),
            Path() + ":2: unknown section 'plugins' (known sections: log, ipc, server, tools, llm, "
                     "agent, approvals)");
  EXPECT_EQ(FileError("level = \"debug\"\n"),
            Path() + ":1: unknown key 'level' (did you mean 'log.level'?)");
  EXPECT_EQ(FileError("ipc = 5\n"), Path() + ":1:7: ipc: expected a table, got integer 5");
}

TEST_F(ConfigTest, FileWrongTypeIsAnError) {
  EXPECT_EQ(FileError("[ipc]\nring_bytes = \"2048\"\n"),
            Path() +
                ":2:14: ipc.ring_bytes: expected a power of two between 256 and 1048576, "
                "got string '2048'");
  EXPECT_EQ(FileError("[log]\nlevel = 3\n"),
            Path() +
                ":2:9: log.level: expected one of trace, debug, info, warn, error, off, got "
                "integer 3");
  EXPECT_EQ(FileError("[server]\nworkers = 2.5\n"),
            Path() +
                ":2:11: server.workers: expected an integer between 1 and 64, got "
                "floating-point 2.5");
  EXPECT_EQ(FileError("[ipc]\nsocket_name = [\"a\"]\n"),
            Path() + ":2:15: ipc.socket_name: expected a file name without '/', got an array");
}

TEST_F(ConfigTest, FileSyntaxErrorCarriesLineAndColumn) {
  std::string message = FileError("[ipc]\nring_bytes = 1024\nworkers 3\n");
  // The wording after the position is toml++'s.
  EXPECT_TRUE(message.starts_with(Path() + ":3:9: ")) << message;
  EXPECT_NE(message.find("expected '='"), std::string::npos) << message;
}

TEST_F(ConfigTest, ExplicitMissingFileIsNotFound) {
  Result<Config> config = Load(dir_ + "/missing.toml");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(config.error().message(),
            "read config '" + dir_ + "/missing.toml': No such file or directory");
}

TEST_F(ConfigTest, UnreadableFileIsIo) {
  // A directory opens but cannot be read, even for root.
  std::filesystem::create_directory(dir_ + "/config.toml");
  Result<Config> config = Load(Path());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().code(), ErrorCode::kIo);
  EXPECT_EQ(config.error().message(), "read config '" + Path() + "': Is a directory");
  // Also when it sits at the default path: only a missing default file is fine.
  std::filesystem::create_directories(dir_ + "/home/.config/lapce-ai/config.toml");
  config = Load("", {"HOME=" + dir_ + "/home"});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().code(), ErrorCode::kIo);
}

TEST_F(ConfigTest, EnvironmentBadValueNamesTheVariable) {
  Result<Config> config = Load("", {"LAPCE_AI_IPC_RING_BYTES=1000"});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(config.error().message(),
            "environment LAPCE_AI_IPC_RING_BYTES: expected a power of two between 256 and "
            "1048576, got 1000");

  config = Load("", {"LAPCE_AI_SERVER_WORKERS=four"});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().message(),
            "environment LAPCE_AI_SERVER_WORKERS: expected an integer between 1 and 64, got "
            "'four'");
}

TEST_F(ConfigTest, EnvironmentUnknownKeyInKnownSectionIsAnError) {
  Result<Config> config = Load("", {"LAPCE_AI_IPC_RING_BYTE=2048"});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(config.error().message(),
            "environment LAPCE_AI_IPC_RING_BYTE: unknown key 'ipc.ring_byte' (did you mean "
            "'ipc.ring_bytes'?)");

  config = Load("", {"LAPCE_AI_IPC_FOO=1"});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().message(),
            "environment LAPCE_AI_IPC_FOO: unknown key 'ipc.foo' (known keys: ipc.runtime_dir, "
            "ipc.socket_name, ipc.ring_bytes, ipc.max_message_bytes, ipc.connect_timeout_ms, "
            "ipc.request_timeout_ms)");
}

TEST_F(ConfigTest, EnvironmentOutsideKnownSectionsIsIgnored) {
  Result<Config> config = Load("", {"LAPCE_AI_SOMETHING=1", "LAPCE_AI_IPCX_FOO=2", "LAPCE_AI_LOG=3",
                                    "lapce_ai_ipc_ring_bytes=4", "LAPCE_AI_IPC_RING_BYTESX"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->ipc.ring_bytes, 1024u);
}

TEST_F(ConfigTest, OverrideErrorsNameTheOverride) {
  Result<Config> config = Load("", {}, {"ipc.ring_bytes=x"});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(config.error().message(),
            "--set ipc.ring_bytes=x: expected a power of two between 256 and 1048576, got 'x'");

  config = Load("", {}, {"ipc.ring_bytes"});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().message(),
            "--set ipc.ring_bytes: expected key=value, e.g. ipc.ring_bytes=2048");

  config = Load("", {}, {"ipc.ring_byte=2048"});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().message(),
            "--set ipc.ring_byte=2048: unknown key 'ipc.ring_byte' (did you mean "
            "'ipc.ring_bytes'?)");

  config = Load("", {}, {"log.level=verbose"});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().message(),
            "--set log.level=verbose: expected one of trace, debug, info, warn, error, off, got "
            "'verbose'");

  config = Load("", {}, {"ipc.max_message_bytes=99999999999999999999"});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().message(),
            "--set ipc.max_message_bytes=99999999999999999999: expected an integer between 1024 "
            "and 1073741824, got '99999999999999999999'");
}

TEST_F(ConfigTest, RingBytesMustBeAPowerOfTwoInRange) {
  for (const char* good : {"256", "512", "1024", "65536", "1048576"}) {
    Result<Config> config = Load("", {}, {std::string("ipc.ring_bytes=") + good});
    ASSERT_TRUE(config.ok()) << good << ": " << config.error().ToString();
    EXPECT_EQ(config->ipc.ring_bytes, std::stoul(good));
  }
  for (const char* bad :
       {"0", "-256", "128", "255", "257", "1000", "1536", "2097152", "1e3", " 512", ""}) {
    Result<Config> config = Load("", {}, {std::string("ipc.ring_bytes=") + bad});
    ASSERT_FALSE(config.ok()) << bad;
    EXPECT_EQ(config.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST_F(ConfigTest, IntegerRangesAreInclusive) {
  Result<Config> config =
      Load("", {},
           {"server.workers=64", "server.max_connections=100000", "ipc.connect_timeout_ms=600000",
            "ipc.request_timeout_ms=3600000", "ipc.max_message_bytes=1024"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->server.workers, 64u);
  EXPECT_EQ(config->ipc.max_message_bytes, 1024u);
  for (const char* bad : {"server.workers=65", "server.max_connections=0",
                          "ipc.connect_timeout_ms=600001", "ipc.request_timeout_ms=0",
                          "ipc.max_message_bytes=1023", "ipc.max_message_bytes=1073741825"}) {
    EXPECT_FALSE(Load("", {}, {bad}).ok()) << bad;
  }
}

TEST_F(ConfigTest, MaxConnectionsPerHostFromEverySource) {
  std::string path = WriteFile("config.toml", "[llm]\nmax_connections_per_host = 64\n");
  Result<Config> from_file = Load(path);
  ASSERT_TRUE(from_file.ok()) << from_file.error().ToString();
  EXPECT_EQ(from_file->llm.max_connections_per_host, 64u);
  Result<Config> from_env = Load(path, {"LAPCE_AI_LLM_MAX_CONNECTIONS_PER_HOST=200"});
  ASSERT_TRUE(from_env.ok()) << from_env.error().ToString();
  EXPECT_EQ(from_env->llm.max_connections_per_host, 200u);
  for (const char* bad : {"llm.max_connections_per_host=0", "llm.max_connections_per_host=10001",
                          "llm.max_connections_per_host=many"}) {
    Result<Config> config = Load("", {}, {bad});
    ASSERT_FALSE(config.ok()) << bad;
    EXPECT_NE(config.error().message().find("llm.max_connections_per_host"), std::string::npos)
        << config.error().message();
  }
}

TEST_F(ConfigTest, MetricsAddrMustBeHostPortOrEmpty) {
  for (const char* good : {"", "127.0.0.1:9464", "localhost:1", "metrics.example-host:65535",
                           "[::1]:9464", "0.0.0.0:80"}) {
    Result<Config> config = Load("", {}, {std::string("server.metrics_addr=") + good});
    ASSERT_TRUE(config.ok()) << good << ": " << config.error().ToString();
    EXPECT_EQ(config->server.metrics_addr, good);
  }
  for (const char* bad : {"localhost", "localhost:", ":9464", "localhost:0", "localhost:65536",
                          "localhost:http", "::1:9464", "[]:80", "host name:80", "h:123456"}) {
    Result<Config> config = Load("", {}, {std::string("server.metrics_addr=") + bad});
    ASSERT_FALSE(config.ok()) << bad;
    EXPECT_EQ(config.error().message(),
              std::string("--set server.metrics_addr=") + bad +
                  ": expected host:port with a port between 1 and 65535, or empty, got '" + bad +
                  "'");
  }
}

TEST_F(ConfigTest, PathKeysAreValidated) {
  Result<Config> config = Load("", {}, {"ipc.runtime_dir=relative/dir"});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().message(),
            "--set ipc.runtime_dir=relative/dir: expected an absolute path or empty, got "
            "'relative/dir'");
  EXPECT_FALSE(Load("", {}, {"ipc.socket_name=a/b"}).ok());
  EXPECT_FALSE(Load("", {}, {"ipc.socket_name="}).ok());
}

TEST_F(ConfigTest, ToolsSectionFromEverySource) {
  Result<Config> defaults = Load("");
  ASSERT_TRUE(defaults.ok()) << defaults.error().ToString();
  EXPECT_EQ(defaults->tools.read_line_limit, 500);
  EXPECT_EQ(defaults->tools.diff_fuzzy_threshold, 1.0);
  EXPECT_EQ(defaults->tools.command_timeout_seconds, 0);
  Result<Config> config = Load(WriteFile("config.toml",
                                         "[tools]\nread_line_limit = -1\ndiff_fuzzy_threshold = "
                                         "0.9\nlist_files_limit = 50\n"),
                               {"LAPCE_AI_TOOLS_COMMAND_TIMEOUT_SECONDS=30",
                                "LAPCE_AI_TOOLS_DIFF_BUFFER_LINES=20"},
                               {"tools.search_max_results=10", "tools.command_output_line_limit=99"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->tools.read_line_limit, -1);
  EXPECT_DOUBLE_EQ(config->tools.diff_fuzzy_threshold, 0.9);
  EXPECT_EQ(config->tools.list_files_limit, 50);
  EXPECT_EQ(config->tools.command_timeout_seconds, 30);
  EXPECT_EQ(config->tools.diff_buffer_lines, 20);
  EXPECT_EQ(config->tools.search_max_results, 10);
  EXPECT_EQ(config->tools.command_output_line_limit, 99);
  // An integer is a fine number in the file.
  Result<Config> whole = Load(WriteFile("config.toml", "[tools]\ndiff_fuzzy_threshold = 1\n"));
  ASSERT_TRUE(whole.ok()) << whole.error().ToString();
  EXPECT_EQ(whole->tools.diff_fuzzy_threshold, 1.0);
}

TEST_F(ConfigTest, AgentAndApprovalsFromEverySource) {
  Result<Config> defaults = Load("");
  ASSERT_TRUE(defaults.ok()) << defaults.error().ToString();
  EXPECT_EQ(defaults->agent.mode, "code");
  EXPECT_EQ(defaults->agent.tool_protocol, "auto");
  EXPECT_EQ(defaults->agent.mistake_limit, 3);
  EXPECT_EQ(defaults->approvals.auto_approve, "read");
  EXPECT_EQ(defaults->approvals.allowed_commands, "git log,git diff,git show");
  Result<Config> config =
      Load(WriteFile("config.toml",
                     "[agent]\nmode = \"architect\"\ntool_protocol = \"xml\"\n"
                     "[approvals]\nauto_approve = \"read, write,execute\"\n"
                     "denied_commands = \"git push,rm -rf\"\nmax_cost_usd = 2.5\n"),
           {"LAPCE_AI_AGENT_MISTAKE_LIMIT=0"}, {"approvals.max_requests=20"});
  ASSERT_TRUE(config.ok()) << config.error().ToString();
  EXPECT_EQ(config->agent.mode, "architect");
  EXPECT_EQ(config->agent.tool_protocol, "xml");
  EXPECT_EQ(config->agent.mistake_limit, 0);
  EXPECT_EQ(config->approvals.auto_approve, "read, write,execute");
  EXPECT_EQ(config->approvals.denied_commands, "git push,rm -rf");
  EXPECT_DOUBLE_EQ(config->approvals.max_cost_usd, 2.5);
  EXPECT_EQ(config->approvals.max_requests, 20);
}

TEST_F(ConfigTest, AgentAndApprovalsValuesAreValidated) {
  std::string error = FileError("[approvals]\nauto_approve = \"read,everything\"\n");
  EXPECT_NE(error.find("approvals.auto_approve: expected comma-separated categories"),
            std::string::npos)
      << error;
  error = FileError("[agent]\ntool_protocol = \"json\"\n");
  EXPECT_NE(error.find("agent.tool_protocol"), std::string::npos) << error;
  EXPECT_NE(error.find("native"), std::string::npos) << error;
  error = FileError("[agent]\ncondense_threshold_percent = 2\n");
  EXPECT_NE(error.find("between 5 and 100"), std::string::npos) << error;
  EXPECT_FALSE(Load("", {"LAPCE_AI_AGENT_AUTO_CONDENSE=maybe"}).ok());
}

TEST_F(ConfigTest, ToolsValuesAreValidated) {
  EXPECT_EQ(FileError("[tools]\ndiff_fuzzy_threshold = 0.4\n"),
            Path() + ":2:24: tools.diff_fuzzy_threshold: expected a number between 0.5 and 1, got "
                     "0.4");
  EXPECT_EQ(FileError("[tools]\ndiff_fuzzy_threshold = \"high\"\n"),
            Path() + ":2:24: tools.diff_fuzzy_threshold: expected a number between 0.5 and 1, got "
                     "string 'high'");
  EXPECT_EQ(FileError("[tools]\nread_line_limit = -2\n"),
            Path() + ":2:19: tools.read_line_limit: expected an integer between -1 and 1000000, "
                     "got -2");
  Result<Config> bad_env = Load("", {"LAPCE_AI_TOOLS_DIFF_FUZZY_THRESHOLD=0.9x"});
  ASSERT_FALSE(bad_env.ok());
  EXPECT_EQ(bad_env.error().message(),
            "environment LAPCE_AI_TOOLS_DIFF_FUZZY_THRESHOLD: expected a number between 0.5 and 1, "
            "got '0.9x'");
  Result<Config> bad_set = Load("", {}, {"tools.list_files_limit=0"});
  ASSERT_FALSE(bad_set.ok());
  EXPECT_EQ(bad_set.error().message(),
            "--set tools.list_files_limit=0: expected an integer between 1 and 100000, got 0");
  EXPECT_TRUE(Load("", {}, {"tools.diff_fuzzy_threshold=0.5"}).ok());
  EXPECT_FALSE(Load("", {}, {"tools.diff_fuzzy_threshold=1.01"}).ok());
  EXPECT_FALSE(Load("", {}, {"tools.command_timeout_seconds=-1"}).ok());
}

TEST(DescribeKeysTest, OneLinePerKeyWithTypeDefaultAndHelp) {
  std::string text = DescribeKeys();
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t end = text.find('\n'); end != std::string::npos; end = text.find('\n', start)) {
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  EXPECT_EQ(start, text.size());  // Ends with a newline.
  // The keys, one line each; then, after a blank line, the tables only the file holds.
  auto blank = std::find(lines.begin(), lines.end(), "");
  ASSERT_EQ(blank - lines.begin(), 33) << text;
  for (const char* field :
       {"[profiles.NAME]", "api_key_env", "headers", "fallback", "first_byte_timeout_ms",
        "[models.\"PROVIDER/ID\"]", "cache_read_price"}) {
    EXPECT_NE(text.find(field), std::string::npos) << field;
  }
  EXPECT_TRUE(lines[0].starts_with("log.level ")) << lines[0];
  EXPECT_NE(lines[0].find("string"), std::string::npos);
  EXPECT_NE(lines[0].find("\"info\""), std::string::npos);
  EXPECT_NE(lines[0].find("one of trace, debug, info, warn, error, off"), std::string::npos);
  const std::string& ring = lines[4];
  EXPECT_TRUE(ring.starts_with("ipc.ring_bytes ")) << ring;
  EXPECT_NE(ring.find("integer"), std::string::npos) << ring;
  EXPECT_NE(ring.find(" 1024 "), std::string::npos) << ring;
  EXPECT_NE(ring.find("a power of two between 256 and 1048576"), std::string::npos) << ring;
}

TEST_F(ConfigTest, ProfilesAndModelOverridesAreReadInFileOrder) {
  Result<Config> config = Load(WriteFile("config.toml", R"([llm]
default_profile = "fast"

[profiles.main]
provider = "anthropic"
model = "claude-sonnet-4-5"
api_key_env = "WORK_ANTHROPIC_KEY"
headers = { "X-Team" = "infra" }
fallback = "fast"
idle_timeout_ms = 30000
thinking_budget_tokens = 4096

[profiles.fast]
provider = "openai"
model = "gpt-4.1-mini"
base_url = "http://127.0.0.1:8080/v1/"
rate_limit_per_minute = 60
reasoning_effort = "high"

[models."openrouter/acme/coder-1"]
context_window = 65536
input_price = 1
output_price = 2.5
supports_images = false
)"));
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->llm.default_profile, "fast");
  EXPECT_EQ(config->llm.max_connections_per_host, 32u);  // The default.
  ASSERT_EQ(config->profiles.size(), 2u);
  const Config::Profile& main = config->profiles[0];
  EXPECT_EQ(main.name, "main");
  EXPECT_EQ(main.provider, "anthropic");
  EXPECT_EQ(main.api_key_env, "WORK_ANTHROPIC_KEY");
  ASSERT_EQ(main.headers.size(), 1u);
  EXPECT_EQ(main.headers[0].first, "X-Team");
  EXPECT_EQ(main.fallback, "fast");
  EXPECT_EQ(main.idle_timeout_ms, 30000u);
  EXPECT_EQ(main.origin, Path() + ":4");
  EXPECT_EQ(config->profiles[1].base_url, "http://127.0.0.1:8080/v1");
  EXPECT_EQ(config->profiles[1].rate_limit_per_minute, 60u);
  EXPECT_EQ(main.thinking_budget_tokens, 4096u);
  EXPECT_EQ(config->profiles[1].reasoning_effort, "high");
  ASSERT_EQ(config->models.size(), 1u);
  EXPECT_EQ(config->models[0].provider, "openrouter");
  EXPECT_EQ(config->models[0].id, "acme/coder-1");
  EXPECT_EQ(config->models[0].context_window, 65536);
  EXPECT_EQ(config->models[0].output_price, 2.5);
  EXPECT_EQ(config->models[0].supports_images, false);
  EXPECT_FALSE(config->models[0].max_output_tokens.has_value());
}

// A base URL that libcurl would refuse (or send somewhere odd) is a configuration error, not
// five failed attempts later.
TEST(BaseUrlTest, AcceptsHostsAndPortsAndRefusesTheRest) {
  for (std::string_view good :
       {"https://api.openai.com/v1", "http://127.0.0.1:8080/v1", "http://localhost:11434",
        "http://[::1]:1234/v1", "https://openrouter.ai/api/v1", "http://my_host.lan"}) {
    EXPECT_EQ(BaseUrlProblem(good), "") << good;
  }
  EXPECT_EQ(BaseUrlProblem("http://"),
            "expected a URL with a host name after the scheme, got 'http://'");
  EXPECT_EQ(BaseUrlProblem("http:///v1"),
            "expected a URL with a host name after the scheme, got 'http:///v1'");
  EXPECT_NE(BaseUrlProblem("http://host:port/v1").find("port is a number"), std::string::npos);
  EXPECT_NE(BaseUrlProblem("http://host:0/v1").find("from 1 to 65535"), std::string::npos);
  EXPECT_NE(BaseUrlProblem("http://host:99999/v1").find("from 1 to 65535"), std::string::npos);
  EXPECT_EQ(BaseUrlProblem("http://host:65535/v1"), "");
  EXPECT_NE(BaseUrlProblem("http://host/v1?api-version=1").find("without ?query"),
            std::string::npos);
  EXPECT_NE(BaseUrlProblem("http://host:/v1").find("a port number after"), std::string::npos);
  EXPECT_NE(BaseUrlProblem("http://[::1/v1").find("[IPv6 host] is closed"), std::string::npos);
  // The error quotes the URL without its credentials or query: errors are pasted into reports.
  EXPECT_EQ(BaseUrlProblem("http://bob:pw-SECRET7@host/v1"),
            "expected a URL without user:password@ (put credentials in api_key or headers), got "
            "'http://***@host/v1'");
  EXPECT_EQ(BaseUrlProblem("https://host/v1?api-key=qk-SECRET8").find("SECRET"), std::string::npos);
  EXPECT_NE(BaseUrlProblem("https://host/v1?api-key=qk-SECRET8").find("'https://host/v1?***'"),
            std::string::npos);
  EXPECT_EQ(BaseUrlProblem("http://u:SECRET9@ho st/v1?k=SECRET9#f").find("SECRET"),
            std::string::npos);
  EXPECT_NE(BaseUrlProblem("http://host/v1\n").find("control characters"), std::string::npos);
  EXPECT_NE(BaseUrlProblem("localhost:8080").find("starting with http://"), std::string::npos);
}

TEST_F(ConfigTest, ProfileErrorsNameFileLineProfileAndField) {
  EXPECT_EQ(FileError("[profiles.a]\nprovider = \"openai\"\nmodel = \"m\"\nbase_url = \"ftp://x\"\n"),
            Path() + ":4: profiles.a.base_url: expected a URL starting with http:// or https://, "
                     "got 'ftp://x'");
  EXPECT_EQ(FileError("[profiles.a]\nprovider = \"openai\"\nmodel = \"m\"\nbase_url = "
                      "\"http://exa mple.com/v1\"\n"),
            Path() +
                ":4: profiles.a.base_url: expected a URL without spaces or control "
                "characters, got 'http://exa mple.com/v1'");
  EXPECT_EQ(FileError("[profiles.a]\nprovider = \"openai\"\nmodel = \"m\"\nretries = 3\n"),
            Path() +
                ":4: profiles.a.retries: unknown field (known fields: provider, model, "
                "base_url, api_key_env, api_key, headers, rate_limit_per_minute, fallback, "
                "connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms, "
                "reasoning_effort, thinking_budget_tokens)");
  EXPECT_EQ(FileError("[profiles.a]\nprovider = \"openai\"\nmodel = \"m\"\nreasoning_effort = "
                      "\"max\"\n"),
            Path() +
                ":4: profiles.a.reasoning_effort: expected \"low\", \"medium\" or \"high\", "
                "got 'max'");
  EXPECT_EQ(FileError("[profiles.a]\nprovider = \"anthropic\"\nmodel = \"m\"\n"
                      "thinking_budget_tokens = 500\n"),
            Path() +
                ":4: profiles.a.thinking_budget_tokens: expected 0 (none) or at least 1024 "
                "tokens, got 500");
  EXPECT_EQ(FileError("[profiles.a]\nprovider = \"openai\"\n"),
            Path() + ":1: profiles.a: 'provider' and 'model' are required, e.g. provider = "
                     "\"anthropic\" and model = \"claude-sonnet-4-5\"");
  EXPECT_EQ(FileError("[profiles.a]\nprovider = \"openai\"\nmodel = \"m\"\nfallback = \"b\"\n"),
            Path() + ":4: profiles.a.fallback: 'b' names no profile in this file");
  EXPECT_EQ(FileError("[models.gpt]\ninput_price = 1\n"),
            Path() + ":1: models.'gpt': expected a table named \"<provider>/<model id>\", e.g. "
                     "[models.\"openai/gpt-4.1\"]");
}

// A key pasted where a variable name or a header belongs is not echoed in the error.
TEST_F(ConfigTest, ErrorsDoNotEchoWhatMayBeAKey) {
  const std::string profile = "[profiles.a]\nprovider = \"openai\"\nmodel = \"m\"\n";
  std::string error = FileError(profile + "api_key_env = \"sk-proj-SECRET123456\"\n");
  EXPECT_TRUE(error.starts_with(Path() + ":4: profiles.a.api_key_env: expected the name of an "
                                         "environment variable"))
      << error;
  EXPECT_NE(error.find("put it in that variable, or in api_key"), std::string::npos) << error;
  for (const std::string& headers :
       {std::string("headers = { \"X-Key\" = \"SECRET1\\nmore\" }\n"),
        std::string("headers = { \"Bad Name\" = \"SECRET2\" }\n"),
        std::string("headers = \"Authorization: Bearer SECRET3\"\n")}) {
    error = FileError(profile + headers);
    EXPECT_NE(error.find("profiles.a.headers"), std::string::npos) << error;
    EXPECT_EQ(error.find("SECRET"), std::string::npos) << error;
  }
}

TEST_F(ConfigTest, ApiKeyInAFileOthersCanReadIsRefused) {
  std::string path =
      WriteFile("config.toml", "[profiles.a]\nprovider = \"openai\"\nmodel = \"m\"\napi_key = "
                               "\"sk-file-secret\"\n");
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  Result<Config> config = Load(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(config.error().message().starts_with(path + ":4: profiles.a.api_key: "))
      << config.error().message();  // The key's own line, not the table's.
  EXPECT_NE(config.error().message().find("chmod 600 " + path), std::string::npos)
      << config.error().message();
  EXPECT_EQ(config.error().message().find("sk-file-secret"), std::string::npos);
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  config = Load(path);
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->profiles[0].api_key, "sk-file-secret");
  EXPECT_EQ(config->file, path);
  EXPECT_EQ(config->directory, dir_);  // Where modes.yaml, rules/ and mcp.json are looked for.
}

}  // namespace
}  // namespace lai
