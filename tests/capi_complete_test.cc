// A completion over IPC from the C ABI: starts the fake provider server and `lapce-ai serve` with
// a config whose only profile points at it, then runs the C program c_api_complete_test
// (src/capi/c_api_complete_test.c) against the server and checks what the provider saw.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "run_process.h"
#include "testing/fake_provider_server.h"

namespace lai {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

testing::FakeResponse OpenAiStream(const std::vector<std::string>& pieces) {
  testing::FakeResponse response;
  response.headers.push_back({"Content-Type", "text/event-stream"});
  for (const std::string& piece : pieces) {
    Json chunk = {{"id", "c"},
                  {"object", "chat.completion.chunk"},
                  {"choices", {{{"index", 0}, {"delta", {{"content", piece}}}}}}};
    response.body_chunks.push_back("data: " + chunk.dump() + "\n\n");
  }
  response.body_chunks.push_back(
      R"(data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})"
      "\n\n");
  response.body_chunks.push_back(
      R"(data: {"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3}})"
      "\n\n");
  response.body_chunks.push_back("data: [DONE]\n\n");
  return response;
}

TEST(CapiCompleteTest, StreamsTextAndDoneAndCancelStopsTheProvider) {
  Result<std::unique_ptr<testing::FakeProviderServer>> started =
      testing::FakeProviderServer::Start();
  ASSERT_TRUE(started.ok()) << started.error().message();
  testing::FakeProviderServer& fake = **started;
  fake.Enqueue("/v1/chat/completions", OpenAiStream({"Hel", "lo", ", wor", "ld"}));
  testing::FakeResponse slow = OpenAiStream(std::vector<std::string>(100, "slow "));
  slow.fault.chunk_delay = milliseconds(100);  // 10 s unless cancelled.
  fake.Enqueue("/v1/chat/completions", slow);

  char dir_template[] = "/tmp/lai-capi-complete.XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  std::string dir = dir_template;
  std::string config = dir + "/config.toml";
  {
    std::ofstream file(config);
    file << "[profiles.fake]\nprovider = \"vllm\"\nmodel = \"test-model\"\nbase_url = \""
         << fake.base_url() << "/v1\"\n";
  }
  ::chmod(config.c_str(), 0600);
  std::string socket = dir + "/engine.sock";
  std::vector<std::string> env = {"HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "XDG_RUNTIME_DIR=" + dir,
                                  "PATH=/usr/bin:/bin"};

  lai::test::ServerProcess server(
      {LAPCE_AI_BIN, "--config", config, "serve", "--socket", socket, "--metrics-addr", ""}, env,
      dir + "/server.log", milliseconds(10'000));
  auto server_log = [&] { return server.log(); };
  const bool is_ready = server.is_ready();
  if (is_ready) {
    lai::test::ProcessResult run =
        lai::test::RunProcess({C_API_COMPLETE_TEST_BIN, socket}, env,
                              {.deadline = std::chrono::seconds(30), .merge_stderr = true});
    const std::string& output = run.out;
    EXPECT_EQ(run.exit_code, 0) << output << "\nserver log:\n" << server_log();
    EXPECT_NE(output.find("ok\n"), std::string::npos) << output;
    // The provider saw both requests; the cancelled one's connection was closed by the engine.
    std::vector<testing::RecordedRequest> requests = fake.requests();
    ASSERT_EQ(requests.size(), 2u);
    Json body = Json::parse(requests[0].body);
    EXPECT_EQ(body["model"], "test-model");
    EXPECT_EQ(body["messages"].back()["content"], "Say hello");
    EXPECT_TRUE(fake.WaitForConnectionsClosed(1, milliseconds(3000)));
  } else {
    ADD_FAILURE() << "lapce-ai serve did not become ready:\n" << server_log();
  }
  const int status = server.Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << server_log();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lai
