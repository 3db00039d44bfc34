#include "testing/fake_provider_server.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "http/client.h"

namespace lai::testing {
namespace {

TEST(GoldenResponseTest, LoadsSseChunkedPerEvent) {
  auto r = LoadGoldenResponse("fake_server", "text");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(http::FindHeader(r->headers, "content-type"), "text/event-stream");
  ASSERT_EQ(r->body_chunks.size(), 4u);
  EXPECT_EQ(r->body_chunks[0], "event: message_start\ndata: {\"type\":\"message_start\"}\n\n");
  EXPECT_EQ(r->body_chunks[1], ": keep-alive\n\n");
  EXPECT_TRUE(r->chunked);
}

TEST(GoldenResponseTest, LoadsStatusAndHeaders) {
  auto r = LoadGoldenResponse("fake_server", "rate_limited");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(http::FindHeader(r->headers, "Retry-After"), "7");
  EXPECT_EQ(http::FindHeader(r->headers, "request-id"), "req_fake_1");
  EXPECT_EQ(http::FindHeader(r->headers, "Content-Type"), "application/json");
  ASSERT_EQ(r->body_chunks.size(), 1u);
  EXPECT_NE(r->body().find("rate_limit_error"), std::string::npos);
}

TEST(GoldenResponseTest, NdjsonChunkedPerLineAndRechunk) {
  auto r = LoadGoldenResponse("fake_server", "chat");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(http::FindHeader(r->headers, "Content-Type"), "application/x-ndjson");
  ASSERT_EQ(r->body_chunks.size(), 3u);
  std::string body = r->body();
  r->Rechunk(1);
  EXPECT_EQ(r->body_chunks.size(), body.size());
  EXPECT_EQ(r->body(), body);
}

TEST(GoldenResponseTest, ErrorsSayWhatIsWrong) {
  auto missing = LoadGoldenResponse("fake_server", "no_such_case");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message().find("no_such_case"), std::string::npos);

  auto bad_status = LoadGoldenResponse("fake_server", "bad_status");
  ASSERT_FALSE(bad_status.ok());
  EXPECT_EQ(bad_status.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad_status.error().message().find("bad_status.status: line 1"), std::string::npos);

  auto bad_headers = LoadGoldenResponse("fake_server", "bad_headers");
  ASSERT_FALSE(bad_headers.ok());
  EXPECT_NE(bad_headers.error().message().find("bad_headers.headers: line 2"), std::string::npos)
      << bad_headers.error().message();
}

// Every golden case checked in (by any layer) must follow the format in the README.
TEST(GoldenResponseTest, EveryCheckedInCaseLoads) {
  namespace fs = std::filesystem;
  int cases = 0;
  for (const fs::directory_entry& provider : fs::directory_iterator(ProvidersTestdataDir())) {
    if (!provider.is_directory()) continue;
    for (const fs::directory_entry& file : fs::directory_iterator(provider.path())) {
      std::string ext = file.path().extension().string();
      std::string stem = file.path().stem().string();
      if (ext != ".sse" && ext != ".ndjson" && ext != ".json") continue;
      if (stem.starts_with("bad_")) continue;
      auto r = LoadGoldenResponse(provider.path().filename().string(), stem);
      EXPECT_TRUE(r.ok()) << r.error().ToString();
      ++cases;
    }
  }
  EXPECT_GT(cases, 0);
}

TEST(FakeProviderServerTest, ServesQueuedThenDefaultAndRecords) {
  auto server = FakeProviderServer::Start();
  ASSERT_TRUE(server.ok()) << server.error().ToString();
  auto client = http::Client::Create();
  ASSERT_TRUE(client.ok());
  auto golden = LoadGoldenResponse("fake_server", "rate_limited");
  ASSERT_TRUE(golden.ok());
  (*server)->Enqueue("/v1/messages", *golden);
  (*server)->Enqueue("/v1/messages", MakeResponse(200, "{\"ok\":true}"));

  http::Request request;
  request.url = (*server)->base_url() + "/v1/messages";
  request.body = "{\"n\":1}";
  auto first = http::Fetch(**client, request, std::chrono::seconds(5));
  auto second = http::Fetch(**client, request, std::chrono::seconds(5));
  auto third = http::Fetch(**client, request, std::chrono::seconds(5));
  ASSERT_TRUE(first.ok() && second.ok() && third.ok());
  EXPECT_EQ(first->status, 429);
  EXPECT_EQ(first->body, golden->body());
  EXPECT_EQ(http::FindHeader(first->headers, "retry-after"), "7");
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(second->body, "{\"ok\":true}");
  EXPECT_EQ(third->status, 404);

  auto requests = (*server)->requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[2].method, "POST");
  EXPECT_EQ(requests[2].body, "{\"n\":1}");
  EXPECT_EQ(requests[2].connection, 1);
  EXPECT_EQ((*server)->connections_accepted(), 1);
}

}  // namespace
}  // namespace lai::testing
