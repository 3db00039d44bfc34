#include "base/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
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
            Path() + ":2: unknown section 'plugins' (known sections: log, ipc, server)");
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

TEST(DescribeKeysTest, OneLinePerKeyWithTypeDefaultAndHelp) {
  std::string text = DescribeKeys();
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t end = text.find('\n'); end != std::string::npos; end = text.find('\n', start)) {
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  EXPECT_EQ(start, text.size());  // Ends with a newline.
  ASSERT_EQ(lines.size(), 11u) << text;
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

}  // namespace
}  // namespace lai
