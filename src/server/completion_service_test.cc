// CompletionService end to end inside one process: a real ipc::Server and ipc::Clients, a real
// ProviderPool and HTTP client, and the fake provider server on loopback.
#include "server/completion_service.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "http/client.h"
#include "ipc/client.h"
#include "ipc/server.h"
#include "llm/pool.h"
#include "server/services.h"
#include "testing/fake_provider_server.h"

namespace lai::server {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

constexpr uint16_t kComplete = ToWire(ServiceType::kComplete);

// An OpenAI Chat Completions stream that says `text` in pieces of a few bytes.
testing::FakeResponse OpenAiStream(const std::string& text, size_t piece_bytes = 4) {
  testing::FakeResponse response;
  response.headers.push_back({"Content-Type", "text/event-stream"});
  for (size_t i = 0; i < text.size(); i += piece_bytes) {
    Json chunk = {{"id", "c"}, {"object", "chat.completion.chunk"},
                  {"choices", {{{"index", 0}, {"delta", {{"content", text.substr(i, piece_bytes)}}}}}}};
    response.body_chunks.push_back("data: " + chunk.dump() + "\n\n");
  }
  Json stop = {{"id", "c"}, {"choices", {{{"index", 0}, {"delta", Json::object()}, {"finish_reason", "stop"}}}}};
  response.body_chunks.push_back("data: " + stop.dump() + "\n\n");
  Json usage = {{"id", "c"}, {"choices", Json::array()},
                {"usage", {{"prompt_tokens", 7}, {"completion_tokens", 3}, {"total_tokens", 10}}}};
  response.body_chunks.push_back("data: " + usage.dump() + "\n\n");
  response.body_chunks.push_back("data: [DONE]\n\n");
  return response;
}

std::string Request(const std::string& prompt, bool stream = true) {
  Json request = {{"messages", {{{"role", "user"}, {"content", prompt}}}}, {"stream", stream}};
  return request.dump();
}

std::span<const std::byte> Bytes(const std::string& text) { return std::as_bytes(std::span(text)); }
std::string Text(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

class CompletionServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/lai-svc-test.XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    Result<std::unique_ptr<testing::FakeProviderServer>> fake = testing::FakeProviderServer::Start();
    ASSERT_TRUE(fake.ok()) << fake.error().message();
    fake_ = std::move(*fake);
    Result<std::unique_ptr<http::Client>> http = http::Client::Create();
    ASSERT_TRUE(http.ok()) << http.error().message();
    llm::ProfileInfo profile;
    profile.name = "fake";
    profile.provider = "vllm";  // OpenAI wire format, no key needed.
    profile.model = "test-model";
    profile.base_url = fake_->base_url() + "/v1";
    Result<std::unique_ptr<llm::ProviderPool>> pool = llm::ProviderPool::CreateAdHoc(
        Config{}, profile, std::shared_ptr<http::Client>(std::move(*http)));
    ASSERT_TRUE(pool.ok()) << pool.error().message();
    pool_ = std::move(*pool);
    StartServer(pool_.get(), "");
  }

  void StartServer(llm::ProviderPool* pool, std::string reason) {
    ipc::ServerOptions options;
    options.socket_path = dir_ + "/s.sock";
    options.workers = 2;
    server_ = std::make_unique<ipc::Server>(options);
    service_ = std::make_unique<CompletionService>(pool, std::move(reason));
    service_->Register(*server_);
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.error().message();
  }

  void StopServer() {
    if (server_) server_->Shutdown();
    service_.reset();
    server_.reset();
  }

  void TearDown() override {
    StopServer();
    pool_.reset();
    fake_.reset();
    std::filesystem::remove_all(dir_);
  }

  ipc::Client NewClient() {
    ipc::ClientOptions options;
    options.socket_path = dir_ + "/s.sock";
    options.request_timeout = milliseconds(10'000);
    return ipc::Client(options);
  }

  std::string dir_;
  std::unique_ptr<testing::FakeProviderServer> fake_;
  std::unique_ptr<llm::ProviderPool> pool_;
  std::unique_ptr<ipc::Server> server_;
  std::unique_ptr<CompletionService> service_;
};

TEST_F(CompletionServiceTest, StreamsTextItemsThenDone) {
  fake_->Enqueue("/v1/chat/completions", OpenAiStream("Hello, world"));
  ipc::Client client = NewClient();
  Result<uint64_t> id = client.Send(kComplete, Bytes(Request("hi")));
  ASSERT_TRUE(id.ok()) << id.error().message();
  std::string text;
  std::vector<std::string> types;
  for (;;) {
    Result<ipc::Response> r = client.Next(*id);
    ASSERT_TRUE(r.ok()) << r.error().message();
    Json item = Json::parse(Text(r->payload));
    types.push_back(item["type"]);
    if (item["type"] == "text") text += item["text"].get<std::string>();
    if (r->is_final) {
      EXPECT_EQ(item["type"], "done");
      EXPECT_EQ(item["stopReason"], "stop");
      EXPECT_EQ(item["usage"]["inputTokens"], 7);
      EXPECT_EQ(item["usage"]["outputTokens"], 3);
      break;
    }
  }
  EXPECT_EQ(text, "Hello, world");
  EXPECT_EQ(types.front(), "text");
  EXPECT_NE(std::find(types.begin(), types.end(), "usage"), types.end());
  // What the provider received: the prompt, streamed.
  std::vector<testing::RecordedRequest> requests = fake_->requests();
  ASSERT_EQ(requests.size(), 1u);
  Json body = Json::parse(requests[0].body);
  EXPECT_EQ(body["model"], "test-model");
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["messages"].back()["content"], "hi");
}

TEST_F(CompletionServiceTest, NonStreamingRequestGetsOneReply) {
  fake_->Enqueue("/v1/chat/completions", OpenAiStream("All at once"));
  ipc::Client client = NewClient();
  Result<ipc::Response> r = client.Call(kComplete, Bytes(Request("hi", /*stream=*/false)));
  ASSERT_TRUE(r.ok()) << r.error().message();
  Json reply = Json::parse(Text(r->payload));
  EXPECT_EQ(reply["type"], "done");
  EXPECT_EQ(reply["text"], "All at once");
  EXPECT_EQ(reply["usage"]["outputTokens"], 3);
}

TEST_F(CompletionServiceTest, InvalidRequestIsAnErrorReplyNamingTheField) {
  ipc::Client client = NewClient();
  Result<ipc::Response> r = client.Call(kComplete, Bytes(std::string(R"({"messages":[{"role":"user","content":5}]})")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message(),
            "AIRequest messages[0].content: expected a string or an array of parts, got number");
  EXPECT_EQ(fake_->requests().size(), 0u);
}

TEST_F(CompletionServiceTest, UnknownProfileIsNotFound) {
  ipc::Client client = NewClient();
  Result<ipc::Response> r = client.Call(
      kComplete, Bytes(std::string(R"({"profile":"nope","messages":[{"role":"user","content":"a"}]})")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound) << r.error().message();
}

TEST_F(CompletionServiceTest, ProviderErrorIsAnErrorItemThenAnErrorReply) {
  fake_->Enqueue("/v1/chat/completions",
                 testing::MakeResponse(400, R"({"error":{"message":"bad temperature","type":"invalid_request_error"}})"));
  ipc::Client client = NewClient();
  Result<uint64_t> id = client.Send(kComplete, Bytes(Request("hi")));
  ASSERT_TRUE(id.ok());
  Result<ipc::Response> item = client.Next(*id);
  ASSERT_TRUE(item.ok()) << item.error().message();
  EXPECT_FALSE(item->is_final);
  Json error = Json::parse(Text(item->payload));
  EXPECT_EQ(error["type"], "error");
  EXPECT_EQ(error["kind"], "invalid_request");
  EXPECT_EQ(error["status"], 400);
  Result<ipc::Response> final_reply = client.Next(*id);
  ASSERT_FALSE(final_reply.ok());
  EXPECT_EQ(final_reply.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(final_reply.error().message().find("bad temperature"), std::string::npos);
}

TEST_F(CompletionServiceTest, CancelStopsTheProviderStreamAtOnce) {
  // 100 pieces 100 ms apart: 10 s unless the cancel works.
  testing::FakeResponse slow = OpenAiStream(std::string(400, 'x'));
  slow.fault.chunk_delay = milliseconds(100);
  fake_->Enqueue("/v1/chat/completions", slow);
  ipc::Client client = NewClient();
  Result<uint64_t> id = client.Send(kComplete, Bytes(Request("hi")));
  ASSERT_TRUE(id.ok());
  Result<ipc::Response> first = client.Next(*id);
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_FALSE(first->is_final);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(client.Cancel(*id).ok());
  Result<ipc::Response> r = client.Next(*id, milliseconds(5000));
  while (r.ok() && !r->is_final) r = client.Next(*id, milliseconds(5000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCancelled) << r.error().message();
  // The provider's connection is closed too, long before the stream would have ended.
  EXPECT_TRUE(fake_->WaitForConnectionsClosed(1, milliseconds(3000)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_TRUE(fake_->requests().size() == 1);
}

TEST_F(CompletionServiceTest, TwentyConcurrentCompletionsOverFourConnections) {
  constexpr int kConnections = 4;
  constexpr int kPerConnection = 5;
  std::vector<std::string> expected;
  for (int i = 0; i < kConnections * kPerConnection; ++i) {
    expected.push_back("answer number " + std::to_string(i) + " with some more words");
    fake_->Enqueue("/v1/chat/completions", OpenAiStream(expected.back(), 3));
  }
  std::vector<std::vector<std::string>> got(kConnections);
  std::vector<std::string> failures(kConnections);
  std::vector<std::thread> threads;
  for (int c = 0; c < kConnections; ++c) {
    threads.emplace_back([&, c] {
      ipc::Client client = NewClient();
      std::vector<uint64_t> ids;
      for (int i = 0; i < kPerConnection; ++i) {
        Result<uint64_t> id = client.Send(kComplete, Bytes(Request("q")));
        if (!id.ok()) {
          failures[c] = id.error().message();
          return;
        }
        ids.push_back(*id);
      }
      // Read the streams round-robin: frames of the others are stashed meanwhile.
      std::vector<std::string> texts(ids.size());
      std::vector<bool> finished(ids.size(), false);
      size_t remaining = ids.size();
      while (remaining > 0) {
        for (size_t i = 0; i < ids.size(); ++i) {
          if (finished[i]) continue;
          Result<ipc::Response> r = client.Next(ids[i]);
          if (!r.ok()) {
            failures[c] = r.error().message();
            return;
          }
          Json item = Json::parse(Text(r->payload));
          if (item["type"] == "text") texts[i] += item["text"].get<std::string>();
          if (r->is_final) {
            finished[i] = true;
            --remaining;
          }
        }
      }
      got[c] = texts;
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<std::string> all;
  for (int c = 0; c < kConnections; ++c) {
    EXPECT_EQ(failures[c], "") << "connection " << c;
    all.insert(all.end(), got[c].begin(), got[c].end());
  }
  std::sort(all.begin(), all.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(all, expected);
  EXPECT_EQ(fake_->requests().size(), expected.size());
}

TEST_F(CompletionServiceTest, ASlowClientStallsOnlyItsOwnStream) {
  // The slow client's answer (~6000 items of ~300 bytes) is far more than its ring and its
  // connection's output queue hold, so most of it waits in the service's backlog while the
  // client reads nothing.
  std::string big;
  for (int i = 0; big.size() < (size_t{3} << 19); ++i) big += "<" + std::to_string(i) + ">";
  fake_->Enqueue("/v1/chat/completions", OpenAiStream(big, 256));
  ipc::Client slow = NewClient();
  Result<uint64_t> slow_id = slow.Send(kComplete, Bytes(Request("long")));
  ASSERT_TRUE(slow_id.ok());
  ASSERT_TRUE(fake_->WaitForRequests(1, milliseconds(5000)));
  // Meanwhile another client's completion runs at full speed.
  fake_->Enqueue("/v1/chat/completions", OpenAiStream("quick answer"));
  ipc::Client fast = NewClient();
  auto start = std::chrono::steady_clock::now();
  Result<uint64_t> fast_id = fast.Send(kComplete, Bytes(Request("short")));
  ASSERT_TRUE(fast_id.ok());
  std::string fast_text;
  for (;;) {
    Result<ipc::Response> r = fast.Next(*fast_id, milliseconds(5000));
    ASSERT_TRUE(r.ok()) << r.error().message();
    Json item = Json::parse(Text(r->payload));
    if (item["type"] == "text") fast_text += item["text"].get<std::string>();
    if (r->is_final) break;
  }
  EXPECT_EQ(fast_text, "quick answer");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  // The slow client then reads everything, in order, ending with done.
  std::string slow_text;
  std::string last_type;
  for (;;) {
    Result<ipc::Response> r = slow.Next(*slow_id, milliseconds(5000));
    ASSERT_TRUE(r.ok()) << r.error().message();
    Json item = Json::parse(Text(r->payload));
    last_type = item["type"].get<std::string>();
    if (last_type == "text") slow_text += item["text"].get<std::string>();
    if (r->is_final) break;
  }
  EXPECT_EQ(last_type, "done");
  EXPECT_TRUE(slow_text == big) << "got " << slow_text.size() << " of " << big.size() << " bytes";
}

TEST_F(CompletionServiceTest, WithoutAPoolCompletionsFailClearly) {
  StopServer();
  StartServer(nullptr, "complete: no usable provider profile (add one to the config file)");
  ipc::Client client = NewClient();
  Result<ipc::Response> r = client.Call(kComplete, Bytes(Request("hi")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(r.error().message(), "complete: no usable provider profile (add one to the config file)");
}

}  // namespace
}  // namespace lai::server
