// Request building (what we send each provider) and HTTP error mapping.

#include "llm/internal/adapter.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <tuple>

#include "llm/internal/parser_base.h"

namespace lai::llm::internal {
namespace {

using nlohmann::json;

constexpr char kKey[] = "sk-test-SECRET-key-42";

Endpoint EndpointFor(std::string_view provider, std::string base_url = "") {
  const ProviderSpec* spec = FindProvider(provider);
  Endpoint endpoint;
  endpoint.provider = std::string(provider);
  endpoint.base_url = base_url.empty() ? std::string(spec->default_base_url) : base_url;
  if (!spec->default_key_env.empty()) {
    endpoint.api_key = kKey;
    endpoint.api_key_source = std::string(spec->default_key_env);
  }
  return endpoint;
}

// A conversation with every part kind: system prompt, user text + image, assistant reasoning +
// text + tool call, user tool result + text; one tool.
CompletionRequest Conversation(std::string model) {
  CompletionRequest request;
  request.model = std::move(model);
  request.system_prompt = "You are a coding agent.";
  Message user;
  user.parts.push_back({.kind = ContentPart::Kind::kText, .text = "What is in a.txt?"});
  user.parts.push_back(
      {.kind = ContentPart::Kind::kImage, .media_type = "image/png", .data_base64 = "iVBORw0K"});
  Message assistant;
  assistant.role = Role::kAssistant;
  assistant.parts.push_back(
      {.kind = ContentPart::Kind::kReasoning, .text = "Read it.", .signature = "sig-1"});
  assistant.parts.push_back({.kind = ContentPart::Kind::kText, .text = "Reading."});
  assistant.parts.push_back({.kind = ContentPart::Kind::kToolCall,
                             .tool_call_id = "call_1",
                             .tool_name = "read_file",
                             .arguments_json = R"({"path":"a.txt"})"});
  Message result;
  result.parts.push_back(
      {.kind = ContentPart::Kind::kToolResult, .text = "hello", .tool_call_id = "call_1"});
  result.parts.push_back({.kind = ContentPart::Kind::kText, .text = "Summarise it."});
  request.messages = {user, assistant, result};
  request.tools.push_back(
      {"read_file", "Read a file.",
       R"({"$schema":"x","type":"object","properties":{"path":{"type":"string"}},)"
       R"("required":["path"],"additionalProperties":false})"});
  request.temperature = 0.2;
  request.max_tokens = 1000;
  return request;
}

// Anthropic's ReasoningOrigin: its thinking goes back to it (and lets it think again).
std::string AnthropicOrigin() {
  return ReasoningOrigin("anthropic", EndpointFor("anthropic").base_url);
}

http::Request Build(std::string_view provider, const CompletionRequest& request,
                    std::string base_url = "") {
  Result<http::Request> built =
      BuildRequest(*FindProvider(provider), EndpointFor(provider, base_url), request, nullptr);
  EXPECT_TRUE(built.ok()) << built.error().message();
  return built.ok() ? *built : http::Request{};
}

TEST(OpenAiRequestTest, UrlHeadersAndBody) {
  http::Request request = Build("openai", Conversation("gpt-4.1"));
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.url, "https://api.openai.com/v1/chat/completions");
  EXPECT_EQ(http::FindHeader(request.headers, "authorization"), std::string("Bearer ") + kKey);
  EXPECT_EQ(http::FindHeader(request.headers, "content-type"), "application/json");
  json body = json::parse(request.body);
  EXPECT_EQ(body["model"], "gpt-4.1");
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
  // Mistral refuses the field (422 "extra_forbidden") and sends usage anyway.
  EXPECT_FALSE(json::parse(Build("mistral", Conversation("mistral-large-latest")).body)
                   .contains("stream_options"));
  EXPECT_EQ(body["max_completion_tokens"], 1000);
  EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 0.2);
  json messages = body["messages"];
  ASSERT_EQ(messages.size(), 5u) << messages.dump();
  EXPECT_EQ(messages[0], json({{"role", "system"}, {"content", "You are a coding agent."}}));
  EXPECT_EQ(messages[1]["content"][1]["image_url"]["url"], "data:image/png;base64,iVBORw0K");
  EXPECT_EQ(messages[2]["role"], "assistant");
  EXPECT_EQ(messages[2]["content"], "Reading.");
  EXPECT_EQ(messages[2]["tool_calls"][0],
            json::parse(R"({"id":"call_1","type":"function","function":{"name":"read_file",)"
                        R"("arguments":"{\"path\":\"a.txt\"}"}})"));
  EXPECT_EQ(messages[3],
            json({{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "hello"}}));
  EXPECT_EQ(messages[4], json({{"role", "user"}, {"content", "Summarise it."}}));
  EXPECT_EQ(body["tools"][0]["type"], "function");
  EXPECT_EQ(body["tools"][0]["function"]["name"], "read_file");
  EXPECT_EQ(body["tools"][0]["function"]["parameters"]["required"][0], "path");
}

// Each message's entries are built once and then copied from a cache: a second request for the
// same conversation is byte-identical, and a message whose content changed is built anew.
TEST(OpenAiRequestTest, RepeatedMessagesAreCopiedAndChangedOnesRebuilt) {
  CompletionRequest request = Conversation("gpt-4.1");
  const std::string first = Build("openai", request).body;
  EXPECT_EQ(Build("openai", request).body, first);
  request.messages[2].parts[0].text = "hello again";  // The tool result.
  request.messages[2].parts[0].is_error = true;
  json changed = json::parse(Build("openai", request).body)["messages"];
  EXPECT_EQ(changed[3]["content"], "hello again");
  request.messages[2].parts[0].text = "hello";
  request.messages[2].parts[0].is_error = false;
  EXPECT_EQ(Build("openai", request).body, first);
  // The same text under another role, or as another kind of part, is another message.
  request.messages[0].role = Role::kAssistant;
  json as_assistant = json::parse(Build("openai", request).body)["messages"];
  EXPECT_EQ(as_assistant[1]["role"], "assistant");
  EXPECT_EQ(as_assistant[1]["content"], "What is in a.txt?");
  // A reasoning model gets the same system prompt as a developer message.
  request = Conversation("o3");
  EXPECT_EQ(json::parse(Build("openai", request).body)["messages"][0]["role"], "developer");
  EXPECT_EQ(json::parse(Build("openai", Conversation("gpt-4.1")).body)["messages"][0]["role"],
            "system");
}

TEST(OpenAiRequestTest, ReasoningModelsTakeEffortNotTemperature) {
  CompletionRequest conversation = Conversation("o4-mini");
  conversation.reasoning_effort = "high";
  json body = json::parse(Build("openai", conversation).body);
  EXPECT_EQ(body["reasoning_effort"], "high");
  EXPECT_FALSE(body.contains("temperature"));
  EXPECT_EQ(body["messages"][0]["role"], "developer");
}

TEST(OpenAiRequestTest, CompatibleServersAndOpenRouter) {
  http::Request local = Build("lmstudio", Conversation("qwen"), "http://127.0.0.1:1234/v1");
  EXPECT_EQ(local.url, "http://127.0.0.1:1234/v1/chat/completions");
  EXPECT_EQ(http::FindHeader(local.headers, "authorization"), "");
  EXPECT_EQ(json::parse(local.body)["max_tokens"], 1000);

  CompletionRequest conversation = Conversation("anthropic/claude-sonnet-4.5");
  conversation.reasoning_effort = "medium";
  http::Request router = Build("openrouter", conversation);
  EXPECT_EQ(router.url, "https://openrouter.ai/api/v1/chat/completions");
  EXPECT_EQ(http::FindHeader(router.headers, "x-title"), "lapce-ai");
  EXPECT_FALSE(http::FindHeader(router.headers, "http-referer").empty());
  EXPECT_EQ(json::parse(router.body)["reasoning"]["effort"], "medium");
}

// Messages come from the cache, but the cache breakpoints move with the conversation: always on
// the last two user messages, never left on a cached copy of an earlier one.
TEST(AnthropicRequestTest, CacheBreakpointsFollowTheLastTwoUserMessages) {
  CompletionRequest request = Conversation("claude-sonnet-4-5");
  const std::string first = Build("anthropic", request).body;
  EXPECT_EQ(Build("anthropic", request).body, first);
  json messages = json::parse(first)["messages"];
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[0]["content"].back()["cache_control"]["type"], "ephemeral");
  EXPECT_FALSE(messages[1]["content"].back().contains("cache_control"));
  EXPECT_EQ(messages[2]["content"].back()["cache_control"]["type"], "ephemeral");
  Message reply;
  reply.role = Role::kAssistant;
  reply.parts.push_back({.kind = ContentPart::Kind::kText, .text = "It says hello."});
  Message next;
  next.parts.push_back({.kind = ContentPart::Kind::kText, .text = "Thanks."});
  request.messages.push_back(reply);
  request.messages.push_back(next);
  messages = json::parse(Build("anthropic", request).body)["messages"];
  ASSERT_EQ(messages.size(), 5u);
  EXPECT_FALSE(messages[0]["content"].back().contains("cache_control")) << messages[0].dump();
  EXPECT_EQ(messages[2]["content"].back()["cache_control"]["type"], "ephemeral");
  EXPECT_EQ(messages[4]["content"].back()["cache_control"]["type"], "ephemeral");
  EXPECT_EQ(messages[4]["content"].back()["text"], "Thanks.");
}

// Gemini and Ollama name the tool a result answers. A result that names its tool comes from the
// message cache; one that does not is built with the name of the call it answers: the same text.
TEST(RequestTest, ToolResultsNamedOrLookedUpGiveTheSameBody) {
  for (std::string_view provider : {"gemini", "ollama"}) {
    CompletionRequest request = Conversation(provider == "gemini" ? "gemini-2.5-pro" : "qwen3");
    const std::string looked_up = Build(provider, request).body;
    request.messages[2].parts[0].tool_name = "read_file";
    const std::string named = Build(provider, request).body;
    EXPECT_EQ(named, looked_up) << provider;
    EXPECT_EQ(Build(provider, request).body, named) << provider;
    EXPECT_NE(named.find("read_file"), std::string::npos) << provider;
  }
}

TEST(AnthropicRequestTest, UrlHeadersCachingAndThinking) {
  CompletionRequest conversation = Conversation("claude-sonnet-4-5");
  conversation.reasoning_budget_tokens = 2048;
  // Thinking Anthropic made goes back to it (as the session records who made it).
  conversation.messages[1].parts[0].origin =
      ReasoningOrigin("anthropic", EndpointFor("anthropic").base_url);
  http::Request request = Build("anthropic", conversation);
  EXPECT_EQ(request.url, "https://api.anthropic.com/v1/messages");
  EXPECT_EQ(http::FindHeader(request.headers, "x-api-key"), kKey);
  EXPECT_EQ(http::FindHeader(request.headers, "anthropic-version"), "2023-06-01");
  EXPECT_EQ(http::FindHeader(request.headers, "authorization"), "");
  json body = json::parse(request.body);
  EXPECT_EQ(body["system"][0]["text"], "You are a coding agent.");
  EXPECT_EQ(body["system"][0]["cache_control"]["type"], "ephemeral");
  EXPECT_EQ(body["thinking"], json({{"type", "enabled"}, {"budget_tokens", 2048}}));
  EXPECT_FALSE(body.contains("temperature"));  // Thinking needs the default temperature.
  EXPECT_GT(body["max_tokens"].get<int>(), 2048);
  json messages = body["messages"];
  ASSERT_EQ(messages.size(), 3u);
  // The last two user messages carry a cache breakpoint on their last block.
  EXPECT_EQ(messages[0]["content"].back()["cache_control"]["type"], "ephemeral");
  EXPECT_EQ(messages[2]["content"].back()["cache_control"]["type"], "ephemeral");
  EXPECT_EQ(messages[0]["content"][1]["source"],
            json({{"type", "base64"}, {"media_type", "image/png"}, {"data", "iVBORw0K"}}));
  json assistant = messages[1]["content"];
  EXPECT_EQ(assistant[0],
            json({{"type", "thinking"}, {"thinking", "Read it."}, {"signature", "sig-1"}}));
  EXPECT_EQ(assistant[2], json::parse(R"({"type":"tool_use","id":"call_1","name":"read_file",)"
                                      R"("input":{"path":"a.txt"}})"));
  // tool_result first in its user message.
  EXPECT_EQ(messages[2]["content"][0]["type"], "tool_result");
  EXPECT_EQ(messages[2]["content"][0]["tool_use_id"], "call_1");
  EXPECT_EQ(body["tools"][0]["input_schema"]["type"], "object");
}

TEST(GeminiRequestTest, KeyInHeaderNeverInUrl) {
  CompletionRequest conversation = Conversation("gemini-2.5-pro");
  conversation.reasoning_budget_tokens = 512;
  http::Request request = Build("gemini", conversation);
  EXPECT_EQ(request.url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:"
            "streamGenerateContent?alt=sse");
  EXPECT_EQ(request.url.find(kKey), std::string::npos);
  EXPECT_EQ(http::FindHeader(request.headers, "x-goog-api-key"), kKey);
  json body = json::parse(request.body);
  EXPECT_EQ(body["systemInstruction"]["parts"][0]["text"], "You are a coding agent.");
  json contents = body["contents"];
  ASSERT_EQ(contents.size(), 3u);
  EXPECT_EQ(contents[1]["role"], "model");
  EXPECT_EQ(contents[0]["parts"][1]["inlineData"]["mimeType"], "image/png");
  EXPECT_EQ(contents[1]["parts"][1]["functionCall"],
            json({{"name", "read_file"}, {"args", {{"path", "a.txt"}}}}));
  EXPECT_EQ(contents[2]["parts"][0]["functionResponse"]["name"], "read_file");
  json parameters = body["tools"][0]["functionDeclarations"][0]["parameters"];
  EXPECT_FALSE(parameters.contains("$schema"));
  EXPECT_FALSE(parameters.contains("additionalProperties"));
  EXPECT_EQ(body["generationConfig"]["maxOutputTokens"], 1000);
  EXPECT_EQ(body["generationConfig"]["thinkingConfig"]["thinkingBudget"], 512);
}

// Gemini's function declarations take an OpenAPI subset: a type list, "const", "$ref" or
// "additionalProperties" anywhere makes it refuse the whole request.
TEST(GeminiRequestTest, ToolSchemasAreWhatGeminiTakes) {
  CompletionRequest conversation = Conversation("gemini-2.5-pro");
  conversation.tools = {
      {"read_file", "Read files.",
       R"({"type":"object","properties":{"files":{"type":"array","items":{"type":"object",)"
       R"("properties":{"path":{"type":"string"},"line_ranges":{"type":["array","null"],)"
       R"("items":{"type":"string","pattern":"^[0-9]+-[0-9]+$"}}},"required":["path",)"
       R"("line_ranges","gone"],"additionalProperties":false}},"kind":{"const":"all"},)"
       R"("where":{"$ref":"#/$defs/place"},"uri":{"type":"string","format":"uri"},)"
       R"("either":{"oneOf":[{"type":"string"},{"type":"null"}]}},"required":["files"],)"
       R"("$defs":{"place":{"type":"object","properties":{"x":{"type":"integer"}}}}})"},
      {"list_modes", "No parameters.", R"({"type":"object","properties":{}})"}};
  json body = json::parse(Build("gemini", conversation).body);
  json declarations = body["tools"][0]["functionDeclarations"];
  json files = declarations[0]["parameters"]["properties"]["files"];
  json path_item = files["items"];
  EXPECT_FALSE(path_item.contains("additionalProperties"));
  EXPECT_EQ(path_item["properties"]["line_ranges"]["type"], "array");
  EXPECT_EQ(path_item["properties"]["line_ranges"]["nullable"], true);
  EXPECT_EQ(path_item["properties"]["line_ranges"]["items"]["pattern"], "^[0-9]+-[0-9]+$");
  // A required name without a property is left out, as Gemini refuses it.
  EXPECT_EQ(path_item["required"], json({"path", "line_ranges"}));
  json properties = declarations[0]["parameters"]["properties"];
  EXPECT_EQ(properties["kind"], json({{"type", "string"}, {"enum", {"all"}}}));
  EXPECT_EQ(properties["where"]["properties"]["x"]["type"], "integer");
  EXPECT_EQ(properties["uri"], json({{"type", "string"}}));
  EXPECT_EQ(properties["either"], json({{"nullable", true}, {"type", "string"}}));
  EXPECT_FALSE(declarations[0]["parameters"].contains("$defs"));
  EXPECT_FALSE(declarations[1].contains("parameters")) << declarations[1].dump();
}

// What else Gemini refuses: enums of numbers or with null, arrays without items, keywords of
// another type beside a type list; and a recursive $ref grew the request to tens of MB.
TEST(GeminiRequestTest, SchemaValuesAndRecursionAreMadeAcceptable) {
  CompletionRequest conversation = Conversation("gemini-2.5-pro");
  conversation.tools = {
      {"filter", "An MCP tool with awkward types.",
       R"({"type":"object","properties":{)"
       R"("level":{"type":"integer","enum":[1,2,3]},"mode":{"const":2},)"
       R"("flag":{"enum":["on","off",null]},"tags":{"type":"array"},)"
       R"("paths":{"type":["string","array"],"items":{"type":"string"}},)"
       R"("where":{"$ref":"#/$defs/F"}},)"
       R"("$defs":{"F":{"type":"object","properties":{"and":{"type":"array",)"
       R"("items":{"$ref":"#/$defs/F"}},"not":{"$ref":"#/$defs/F"},"field":{"type":"string"}}}}})"}};
  std::string body_text = Build("gemini", conversation).body;
  EXPECT_LT(body_text.size(), 8000u);
  json properties =
      json::parse(body_text)["tools"][0]["functionDeclarations"][0]["parameters"]["properties"];
  EXPECT_EQ(properties["level"],
            json({{"type", "integer"}, {"description", "(One of: 1, 2, 3.)"}}));
  EXPECT_EQ(properties["mode"], json({{"description", "(One of: 2.)"}, {"type", "integer"}}));
  EXPECT_EQ(properties["flag"],
            json({{"nullable", true}, {"type", "string"}, {"enum", {"on", "off"}}}));
  EXPECT_EQ(properties["tags"], json({{"type", "array"}, {"items", {{"type", "string"}}}}));
  EXPECT_EQ(properties["paths"],
            json({{"anyOf",
                   {{{"type", "string"}}, {{"type", "array"}, {"items", {{"type", "string"}}}}}}}));
  // Inlined once; below that, any value.
  json where = properties["where"];
  EXPECT_EQ(where["properties"]["field"]["type"], "string");
  EXPECT_EQ(where["properties"]["not"], json::object());
  EXPECT_EQ(where["properties"]["and"]["items"], json({{"type", "string"}}));
}

// A property made required by an allOf part of its own is kept required; a $ref's description
// is kept.
TEST(GeminiRequestTest, RequiredInAllOfAndRefDescriptionsAreKept) {
  CompletionRequest conversation = Conversation("gemini-2.5-pro");
  conversation.tools = {
      {"merge", "allOf parts.",
       R"({"type":"object","required":["b"],"allOf":[{"properties":{"a":{"type":"string"},)"
       R"("b":{"$ref":"#/$defs/B","description":"The b."}}},{"required":["a"]}],)"
       R"("$defs":{"B":{"type":"integer"}}})"}};
  json parameters = json::parse(
      Build("gemini", conversation).body)["tools"][0]["functionDeclarations"][0]["parameters"];
  EXPECT_EQ(parameters["required"], json({"b", "a"})) << parameters.dump();
  EXPECT_EQ(parameters["properties"]["b"], json({{"type", "integer"}, {"description", "The b."}}));
}

// Gemini 3 refuses a function call of the conversation without the thoughtSignature it came
// with; one made elsewhere (another endpoint) is not sent, and such a call gets the value Google
// documents for skipping the check.
TEST(GeminiRequestTest, CallSignaturesGoBackToTheirEndpointOnly) {
  const std::string own = ReasoningOrigin("gemini", EndpointFor("gemini").base_url);
  CompletionRequest conversation = Conversation("gemini-3-pro-preview");
  ContentPart& call = conversation.messages[1].parts[2];
  call.signature = "GSIG";
  call.origin = own;
  json contents = json::parse(Build("gemini", conversation).body)["contents"];
  EXPECT_EQ(contents[1]["parts"][1]["thoughtSignature"], "GSIG");
  call.origin = "anthropic https://api.anthropic.com";
  contents = json::parse(Build("gemini", conversation).body)["contents"];
  EXPECT_EQ(contents[1]["parts"][1]["thoughtSignature"], "skip_thought_signature_validator");
  // Older models take calls without one.
  conversation.model = "gemini-2.5-pro";
  contents = json::parse(Build("gemini", conversation).body)["contents"];
  EXPECT_FALSE(contents[1]["parts"][1].contains("thoughtSignature"));
}

// A reply that was only thought adds nothing for Gemini: the user turns around it become one.
TEST(GeminiRequestTest, TurnsAlternateWhenAReplyWasOnlyThought) {
  CompletionRequest conversation = Conversation("gemini-2.5-pro");
  Message thought;
  thought.role = Role::kAssistant;
  thought.parts.push_back({.kind = ContentPart::Kind::kReasoning, .text = "Hmm."});
  Message again;
  again.parts.push_back({.kind = ContentPart::Kind::kText, .text = "Use a tool."});
  conversation.messages.push_back(thought);
  conversation.messages.push_back(again);
  json contents = json::parse(Build("gemini", conversation).body)["contents"];
  ASSERT_EQ(contents.size(), 3u) << contents.dump();
  EXPECT_EQ(contents[2]["role"], "user");
  ASSERT_EQ(contents[2]["parts"].size(), 3u);
  EXPECT_EQ(contents[2]["parts"][0]["functionResponse"]["name"], "read_file");
  EXPECT_EQ(contents[2]["parts"][2]["text"], "Use a tool.");
}

// Servers that think and call tools (DeepSeek, Kimi) want the reasoning of an assistant
// message with tool calls back; reasoning another endpoint made is not sent.
TEST(OpenAiRequestTest, ReasoningGoesBackWithToolCallsToItsOwnEndpoint) {
  const std::string base = "https://api.deepseek.com/v1";
  CompletionRequest conversation = Conversation("deepseek-reasoner");
  ContentPart& reasoning = conversation.messages[1].parts[0];
  reasoning.signature.clear();
  reasoning.origin = ReasoningOrigin("openai", base);
  json messages = json::parse(Build("openai", conversation, base).body)["messages"];
  EXPECT_EQ(messages[2]["reasoning_content"], "Read it.");
  messages = json::parse(Build("openai", conversation).body)["messages"];
  EXPECT_FALSE(messages[2].contains("reasoning_content")) << messages[2].dump();
  reasoning.origin.clear();  // Not known: not sent (it may be another server's).
  messages = json::parse(Build("openai", conversation, base).body)["messages"];
  EXPECT_FALSE(messages[2].contains("reasoning_content"));
  // Groq streams reasoning too, and refuses the field in a request.
  const std::string groq = EndpointFor("groq").base_url;
  reasoning.origin = ReasoningOrigin("groq", groq);
  messages = json::parse(Build("groq", conversation).body)["messages"];
  EXPECT_FALSE(messages[2].contains("reasoning_content")) << messages[2].dump();
}

// A reasoning effort (a profile's reasoning_effort) turns on extended thinking with the budget
// it stands for; the temperature is then left out, as Anthropic requires.
TEST(AnthropicRequestTest, AnEffortAsksForThinking) {
  CompletionRequest conversation = Conversation("claude-sonnet-4-5");
  conversation.messages[1].parts[0].origin = AnthropicOrigin();
  conversation.reasoning_effort = "medium";
  json body = json::parse(Build("anthropic", conversation).body);
  EXPECT_EQ(body["thinking"], json({{"type", "enabled"}, {"budget_tokens", 8192}}));
  EXPECT_FALSE(body.contains("temperature"));
  EXPECT_GT(body["max_tokens"].get<int64_t>(), 8192);
}

// A server that numbers its calls per reply ("call_0" each time) made ids Anthropic refuses as
// repeated: each is sent unique, and its result follows it.
TEST(AnthropicRequestTest, RepeatedToolIdsAreSentUnique) {
  CompletionRequest conversation = Conversation("claude-sonnet-4-5");
  conversation.messages[1].parts[2].tool_call_id = "call_0";
  conversation.messages[2].parts[0].tool_call_id = "call_0";
  conversation.messages.push_back(conversation.messages[1]);
  conversation.messages.push_back(conversation.messages[2]);
  json messages = json::parse(Build("anthropic", conversation).body)["messages"];
  ASSERT_EQ(messages.size(), 5u) << messages.dump();
  EXPECT_EQ(messages[1]["content"].back()["id"], "call_0");
  EXPECT_EQ(messages[2]["content"][0]["tool_use_id"], "call_0");
  EXPECT_EQ(messages[3]["content"].back()["id"], "call_0_2");
  EXPECT_EQ(messages[4]["content"][0]["tool_use_id"], "call_0_2");
}

// Thinking only for a model that can (the catalog says), and within its output limit.
TEST(AnthropicRequestTest, ThinkingFitsTheModel) {
  CompletionRequest conversation = Conversation("claude-3-5-haiku-20241022");
  conversation.messages[1].parts[0].origin = AnthropicOrigin();
  conversation.reasoning_effort = "high";
  ModelInfo haiku;
  haiku.max_output_tokens = 8192;
  Result<http::Request> built =
      BuildRequest(*FindProvider("anthropic"), EndpointFor("anthropic"), conversation, &haiku);
  ASSERT_TRUE(built.ok());
  json body = json::parse(built->body);
  EXPECT_FALSE(body.contains("thinking")) << body.dump();
  EXPECT_EQ(body["max_tokens"], 1000);  // The request's own.
  ModelInfo sonnet;
  sonnet.max_output_tokens = 64000;
  sonnet.supports_reasoning = true;
  conversation.reasoning_budget_tokens = 60000;
  built = BuildRequest(*FindProvider("anthropic"), EndpointFor("anthropic"), conversation, &sonnet);
  ASSERT_TRUE(built.ok());
  body = json::parse(built->body);
  EXPECT_EQ(body["max_tokens"], 64000);
  EXPECT_EQ(body["thinking"]["budget_tokens"], 64000 - 4096);
}

TEST(AnthropicRequestTest, ATemperatureOverOneIsRefusedBeforeSending) {
  CompletionRequest conversation = Conversation("claude-sonnet-4-5");
  conversation.temperature = 1.5;
  Result<http::Request> built =
      BuildRequest(*FindProvider("anthropic"), EndpointFor("anthropic"), conversation, nullptr);
  ASSERT_FALSE(built.ok());
  EXPECT_NE(built.error().message().find("temperature 1.5 is out of range"), std::string::npos)
      << built.error().message();
}

// The events `provider`'s parser makes of a whole response `body`.
std::vector<StreamEvent> Parse(std::string_view provider, std::string_view body) {
  std::vector<StreamEvent> events;
  auto parser = NewStreamParser(*FindProvider(provider), std::string(provider), "call",
                                [&](const StreamEvent& event) { events.push_back(event); });
  parser->Feed(body);
  parser->Finish();
  return events;
}

// OpenRouter streams reasoning_details in pieces; they go back merged, as they came (its Gemini 3
// models refuse tool calls without the encrypted part), and Claude through it is marked for
// caching (it was never cached: the whole prompt paid for each time).
TEST(OpenRouterTest, ReasoningDetailsGoBackAndClaudeIsCached) {
  std::vector<StreamEvent> events =
      Parse("openrouter",
            "data: {\"choices\":[{\"delta\":{\"reasoning\":\"Think\",\"reasoning_details\":[{"
            "\"type\":\"reasoning.text\",\"text\":\"Think\",\"index\":0,\"format\":\"g\"}]}}]}\n\n"
            "data: {\"choices\":[{\"delta\":{\"reasoning_details\":[{\"type\":\"reasoning.text\","
            "\"text\":\"ing.\",\"index\":0},{\"type\":\"reasoning.encrypted\",\"data\":\"ENC\","
            "\"index\":1}]}}]}\n\n"
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
  std::string signature;
  for (const StreamEvent& event : events) {
    if (event.kind == StreamEvent::Kind::kReasoningDelta && !event.signature.empty()) {
      signature = event.signature;
    }
  }
  EXPECT_EQ(json::parse(signature),
            json::parse(R"([{"type":"reasoning.text","text":"Thinking.","index":0,"format":"g"},)"
                        R"({"type":"reasoning.encrypted","data":"ENC","index":1}])"));

  const std::string base = EndpointFor("openrouter").base_url;
  CompletionRequest conversation = Conversation("anthropic/claude-sonnet-4.5");
  ContentPart& reasoning = conversation.messages[1].parts[0];
  reasoning.signature = signature;
  reasoning.origin = ReasoningOrigin("openrouter", base);
  json body = json::parse(Build("openrouter", conversation).body);
  json messages = body["messages"];
  EXPECT_EQ(messages[2]["reasoning_details"], json::parse(signature)) << messages[2].dump();
  EXPECT_FALSE(messages[2].contains("reasoning_content"));
  EXPECT_EQ(messages[0]["content"][0]["cache_control"]["type"], "ephemeral");
  EXPECT_EQ(messages[1]["content"][0]["cache_control"]["type"], "ephemeral");  // Its text.
  EXPECT_EQ(messages[4]["content"][0]["cache_control"]["type"], "ephemeral");
  EXPECT_EQ(messages[4]["content"][0]["text"], "Summarise it.");
  // Other models through it are not marked.
  conversation.model = "openai/gpt-4.1";
  messages = json::parse(Build("openrouter", conversation).body)["messages"];
  EXPECT_TRUE(messages[0]["content"].is_string());
}

// Mistral's reasoning models stream content as blocks (their thinking, then text): the reply
// was dropped.
TEST(OpenAiStreamTest, ContentBlocksAreTextAndThought) {
  std::vector<StreamEvent> events = Parse(
      "mistral",
      "data: {\"choices\":[{\"delta\":{\"content\":[{\"type\":\"thinking\",\"thinking\":[{"
      "\"type\":\"text\",\"text\":\"Hmm.\"}]}]}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":[{\"type\":\"text\",\"text\":\"Hello \"}]}}]}"
      "\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"there\"},\"finish_reason\":\"stop\"}]}"
      "\n\ndata: [DONE]\n\n");
  std::string text, thought;
  for (const StreamEvent& event : events) {
    if (event.kind == StreamEvent::Kind::kTextDelta) text += event.text;
    if (event.kind == StreamEvent::Kind::kReasoningDelta) thought += event.text;
  }
  EXPECT_EQ(thought, "Hmm.");
  EXPECT_EQ(text, "Hello there");
}

// Some compatible servers send a call's arguments as an object, not as its text: they were
// dropped, and the model was told a parameter was missing.
TEST(OpenAiStreamTest, ArgumentsSentAsAnObjectAreKept) {
  std::vector<StreamEvent> events =
      Parse("openai",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\","
            "\"function\":{\"name\":\"list_files\",\"arguments\":{\"path\":\".\","
            "\"recursive\":true}}}]},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n");
  std::string arguments;
  for (const StreamEvent& event : events) {
    if (event.kind == StreamEvent::Kind::kToolCallEnd) arguments = event.arguments_json;
  }
  EXPECT_EQ(json::parse(arguments), json({{"path", "."}, {"recursive", true}})) << arguments;
}

// A summary merged with the reply after it (two text parts of one assistant message) is not
// run together into one sentence.
TEST(OpenAiRequestTest, AnAssistantsTextPartsStayApart) {
  CompletionRequest conversation = Conversation("gpt-4.1");
  conversation.messages[1].parts.insert(conversation.messages[1].parts.begin() + 1,
                                        {.kind = ContentPart::Kind::kText, .text = "Summary."});
  json messages = json::parse(Build("openai", conversation).body)["messages"];
  EXPECT_EQ(messages[2]["content"], "Summary.\n\nReading.") << messages[2].dump();
}

// Claude's thinking blocks, a redacted one among them, go back as they came.
TEST(AnthropicTest, RedactedAndInterleavedThinkingGoBackAsTheyCame) {
  std::vector<StreamEvent> events =
      Parse("anthropic",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
            "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"A\"}}\n\n"
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
            "\"delta\":{\"type\":\"signature_delta\",\"signature\":\"S0\"}}\n\n"
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,"
            "\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"R1\"}}\n\n"
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,"
            "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n"
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,"
            "\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"B\"}}\n\n"
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
  std::vector<std::tuple<int, std::string, std::string, bool>> reasoning;
  for (const StreamEvent& event : events) {
    if (event.kind != StreamEvent::Kind::kReasoningDelta) continue;
    reasoning.emplace_back(event.index, event.text, event.signature, event.redacted);
  }
  using R = std::tuple<int, std::string, std::string, bool>;
  EXPECT_EQ(reasoning, (std::vector<R>{R{0, "A", "", false}, R{0, "", "S0", false},
                                       R{1, "", "R1", true}, R{2, "B", "", false}}));

  CompletionRequest conversation = Conversation("claude-sonnet-4-5");
  ContentPart redacted{.kind = ContentPart::Kind::kReasoning, .signature = "R1"};
  redacted.redacted = true;
  redacted.origin = ReasoningOrigin("anthropic", EndpointFor("anthropic").base_url);
  conversation.messages[1].parts[0].origin = redacted.origin;
  conversation.messages[1].parts.insert(conversation.messages[1].parts.begin() + 1, redacted);
  json content = json::parse(Build("anthropic", conversation).body)["messages"][1]["content"];
  EXPECT_EQ(content[0]["signature"], "sig-1");
  EXPECT_EQ(content[1], json({{"type", "redacted_thinking"}, {"data", "R1"}}));
  // Elsewhere a redacted block is sent nowhere.
  json openai = json::parse(Build("openai", conversation).body)["messages"][2];
  EXPECT_EQ(openai.dump().find("R1"), std::string::npos) << openai.dump();
}

// An MCP tool whose schema is a "$ref" to its definition: providers want an object at the top.
TEST(RequestTest, ARootRefSchemaIsInlined) {
  CompletionRequest conversation = Conversation("gpt-4.1");
  conversation.tools = {{"args", "A generated schema.",
                         R"({"$ref":"#/$defs/Args","$defs":{"Args":{"type":"object",)"
                         R"("properties":{"n":{"type":"integer"}},"required":["n"]}}})"}};
  json parameters =
      json::parse(Build("openai", conversation).body)["tools"][0]["function"]["parameters"];
  EXPECT_EQ(parameters["type"], "object");
  EXPECT_EQ(parameters["properties"]["n"]["type"], "integer");
}

// Anthropic refuses thinking signed elsewhere, and tool ids outside ^[a-zA-Z0-9_-]+$ (other
// providers' ids, in a session resumed on Anthropic).
TEST(AnthropicRequestTest, ForeignSignaturesAndIdsAreMadeAcceptable) {
  CompletionRequest conversation = Conversation("claude-sonnet-4-5");
  conversation.messages[1].parts[0].origin = "gemini https://generativelanguage.googleapis.com";
  conversation.messages[1].parts[2].tool_call_id = "functions.read_file:0";
  conversation.messages[2].parts[0].tool_call_id = "functions.read_file:0";
  json messages = json::parse(Build("anthropic", conversation).body)["messages"];
  EXPECT_EQ(messages[1]["content"][0]["type"], "text") << messages[1].dump();
  EXPECT_EQ(messages[1]["content"][1]["id"], "functions_read_file_0");
  EXPECT_EQ(messages[2]["content"][0]["tool_use_id"], "functions_read_file_0");
  conversation.messages[1].parts[0].origin =
      ReasoningOrigin("anthropic", EndpointFor("anthropic").base_url);
  messages = json::parse(Build("anthropic", conversation).body)["messages"];
  EXPECT_EQ(messages[1]["content"][0]["signature"], "sig-1");
}

// Thinking asked of a conversation whose last tool calls were made without it (thinking was off,
// or another endpoint answered) is refused by Anthropic: that request goes without.
TEST(AnthropicRequestTest, ThinkingWaitsForATurnThatCanHaveIt) {
  CompletionRequest conversation = Conversation("claude-sonnet-4-5");
  conversation.reasoning_budget_tokens = 2048;
  conversation.max_tokens = 8000;
  conversation.messages[1].parts[0].origin =
      ReasoningOrigin("anthropic", EndpointFor("anthropic").base_url);
  auto ends_in_results = [](CompletionRequest request) {
    request.messages[2].parts.pop_back();  // Only the tool result.
    return request;
  };
  EXPECT_TRUE(
      json::parse(Build("anthropic", ends_in_results(conversation)).body).contains("thinking"));
  CompletionRequest elsewhere = conversation;
  elsewhere.messages[1].parts[0].origin = "openai https://api.openai.com/v1";
  EXPECT_FALSE(
      json::parse(Build("anthropic", ends_in_results(elsewhere)).body).contains("thinking"));
  // A message of the user's own (no tool results): the new turn thinks.
  elsewhere.messages[2].parts.erase(elsewhere.messages[2].parts.begin());
  EXPECT_TRUE(json::parse(Build("anthropic", elsewhere).body).contains("thinking"));
}

TEST(OllamaRequestTest, ArgumentsAreObjectsAndOptionsNested) {
  http::Request request = Build("ollama", Conversation("qwen3:8b"));
  EXPECT_EQ(request.url, "http://localhost:11434/api/chat");
  EXPECT_EQ(http::FindHeader(request.headers, "authorization"), "");
  json body = json::parse(request.body);
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["options"]["num_predict"], 1000);
  EXPECT_EQ(body["options"]["num_ctx"], kAssumedOllamaContextWindow);  // An unknown model.
  ModelInfo known;
  known.context_window = 40960;
  Result<http::Request> with_window = BuildRequest(*FindProvider("ollama"), EndpointFor("ollama"),
                                                   Conversation("qwen3:8b"), &known);
  ASSERT_TRUE(with_window.ok());
  EXPECT_EQ(json::parse(with_window->body)["options"]["num_ctx"], 40960);
  // Thinking only for a model that can: Ollama refuses it of one that cannot.
  CompletionRequest thinking = Conversation("llama3.1:8b");
  thinking.reasoning_effort = "high";
  EXPECT_FALSE(
      json::parse(
          BuildRequest(*FindProvider("ollama"), EndpointFor("ollama"), thinking, &known)->body)
          .contains("think"));
  known.supports_reasoning = true;
  EXPECT_EQ(
      json::parse(BuildRequest(*FindProvider("ollama"), EndpointFor("ollama"), thinking, &known)
                      ->body)["think"],
      true);
  thinking.model = "gpt-oss:20b";  // It takes a level.
  EXPECT_EQ(
      json::parse(BuildRequest(*FindProvider("ollama"), EndpointFor("ollama"), thinking, &known)
                      ->body)["think"],
      "high");
  json messages = body["messages"];
  ASSERT_EQ(messages.size(), 5u) << messages.dump();
  EXPECT_EQ(messages[1]["images"][0], "iVBORw0K");
  EXPECT_EQ(messages[2]["tool_calls"][0]["function"]["arguments"], json({{"path", "a.txt"}}));
  EXPECT_EQ(messages[3],
            json({{"role", "tool"}, {"content", "hello"}, {"tool_name", "read_file"}}));
}

TEST(RequestTest, ProfileHeadersAreAddedAndReplaceDefaults) {
  Endpoint endpoint = EndpointFor("openai");
  endpoint.headers = {{"X-Team", "infra"}, {"accept", "application/json"}};
  Result<http::Request> request =
      BuildRequest(*FindProvider("openai"), endpoint, Conversation("gpt-4.1"), nullptr);
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(http::FindHeader(request->headers, "x-team"), "infra");
  EXPECT_EQ(http::FindHeader(request->headers, "Accept"), "application/json");
}

TEST(RequestTest, BrokenHistoryOrSchemaIsRejectedNamingTheTool) {
  CompletionRequest bad_arguments = Conversation("gpt-4.1");
  bad_arguments.messages[1].parts[2].arguments_json = "{\"path\":";
  for (std::string_view provider : {"openai", "anthropic", "gemini", "ollama"}) {
    Result<http::Request> request =
        BuildRequest(*FindProvider(provider), EndpointFor(provider), bad_arguments, nullptr);
    ASSERT_FALSE(request.ok()) << provider;
    EXPECT_EQ(request.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(request.error().message().find("tool call 'read_file' (call_1)"), std::string::npos)
        << request.error().message();
  }
  CompletionRequest bad_schema = Conversation("gpt-4.1");
  bad_schema.tools[0].parameters_schema_json = "[1]";
  Result<http::Request> request =
      BuildRequest(*FindProvider("openai"), EndpointFor("openai"), bad_schema, nullptr);
  ASSERT_FALSE(request.ok());
  EXPECT_NE(request.error().message().find("parameters schema of tool 'read_file'"),
            std::string::npos);
}

TEST(RequestBodyTest, SameTextAsNlohmannAndInvalidUtf8IsReplacedNotThrown) {
  nlohmann::ordered_json body = {
      {"model", "m"},
      {"stream", true},
      {"temperature", 0.25},
      {"max_tokens", 42},
      {"none", nullptr},
      {"messages",
       {{{"role", "user"},
         {"content",
          "quote \" backslash \\ tab\t nl\n cr\r bs\b ff\f ctl\x01\x1f del\x7f "
          "unicode \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 </end>"}}}},
      {"k\"ey", nlohmann::ordered_json::array()}};
  EXPECT_EQ(DumpRequestBody(body), body.dump());

  // Every byte that needs escaping, at every offset of an 8-byte word, beside multi-byte UTF-8
  // and the bytes next to the escaped ranges (0x1f/0x20, '!'/'#', '['/']').
  for (std::string special : {"\"", "\\", "\n", "\x01", "\x1f", "\x7f", "\x20", "!", "#", "[", "]",
                              "\xc3\xa9", "\xe2\x82\xac"}) {
    for (size_t offset = 0; offset < 17; ++offset) {
      std::string text = std::string(offset, 'a') + special +
                         "\xc3\xa9"
                         "bcdefgh" +
                         special;
      nlohmann::ordered_json value = {{"t", text}};
      EXPECT_EQ(DumpRequestBody(value), value.dump()) << offset;
    }
  }

  nlohmann::ordered_json broken = {{"content", std::string("ok \xff\xfe bad")}};
  std::string text;
  EXPECT_NO_THROW(text = DumpRequestBody(broken));
  EXPECT_EQ(text, "{\"content\":\"ok \xef\xbf\xbd\xef\xbf\xbd bad\"}");
  EXPECT_TRUE(nlohmann::json::parse(text).is_object());
}

TEST(ErrorFromResponseTest, InvalidKeyNamesTheVariableAndNeverTheKey) {
  std::string body = std::string(R"({"error":{"message":"Incorrect API key provided: )") + kKey +
                     R"(.","type":"invalid_request_error","code":"invalid_api_key"}})";
  StreamError error = ErrorFromResponse(EndpointFor("openai"), "gpt-4.1", 401, {}, body);
  EXPECT_EQ(error.kind, ErrorKind::kInvalidKey);
  EXPECT_EQ(error.http_status, 401);
  EXPECT_NE(error.message.find("401 from openai"), std::string::npos) << error.message;
  EXPECT_NE(error.message.find("OPENAI_API_KEY"), std::string::npos) << error.message;
  EXPECT_EQ(error.message.find(kKey), std::string::npos) << error.message;
}

// A profile header may carry a token (a gateway's, OpenRouter's): a provider quoting it back is
// redacted as the key is; short header values are not secrets.
TEST(ErrorFromResponseTest, HeaderValuesAreRedactedToo) {
  Endpoint endpoint = EndpointFor("openai");
  endpoint.headers = {{"X-Gateway-Token", "gw-SECRET-789"}, {"X-Title", "lapce"}};
  std::string body = R"({"error":{"message":"token gw-SECRET-789 refused for lapce"}})";
  StreamError error = ErrorFromResponse(endpoint, "gpt-4.1", 400, {}, body);
  EXPECT_EQ(error.message.find("gw-SECRET-789"), std::string::npos) << error.message;
  EXPECT_NE(error.message.find("token *** refused for lapce"), std::string::npos) << error.message;
}

// A 404 from an OpenAI-style server whose base URL lacks /v1 (a local server's usual mistake)
// says so; one whose base has it, or another wire format's, does not.
TEST(ErrorFromResponseTest, A404SaysWhenAnOpenAiBaseLacksV1) {
  Endpoint endpoint = EndpointFor("openai");
  endpoint.base_url = "http://127.0.0.1:8080";
  StreamError lacking = ErrorFromResponse(endpoint, "m", 404, {}, "not found");
  EXPECT_NE(lacking.message.find("(an OpenAI-style base URL usually ends in /v1)"),
            std::string::npos)
      << lacking.message;
  endpoint.base_url = "http://127.0.0.1:8080/v1";
  EXPECT_EQ(ErrorFromResponse(endpoint, "m", 404, {}, "").message.find("/v1)"), std::string::npos);
  Endpoint anthropic = EndpointFor("anthropic");
  EXPECT_EQ(ErrorFromResponse(anthropic, "m", 404, {}, "").message.find("/v1)"), std::string::npos);
}

TEST(ErrorFromResponseTest, StatusesMapToWhatTheUserCanDo) {
  Endpoint endpoint = EndpointFor("anthropic");
  auto kind = [&](int status, std::string body, std::vector<http::Header> headers = {}) {
    return ErrorFromResponse(endpoint, "m", status, headers, body);
  };
  EXPECT_EQ(kind(403, "{}").kind, ErrorKind::kInvalidKey);
  EXPECT_EQ(kind(404, "not found").kind, ErrorKind::kUnknownModel);
  EXPECT_EQ(kind(400, R"({"error":{"message":"bad tool"}})").kind, ErrorKind::kInvalidRequest);
  EXPECT_EQ(kind(413, R"({"error":{"type":"request_too_large","message":"x"}})").kind,
            ErrorKind::kContextTooLong);
  // The prompt and max_tokens together over the window: the context is reduced, as for a
  // prompt too long.
  EXPECT_EQ(kind(400, R"({"type":"error","error":{"type":"invalid_request_error","message":)"
                      R"("input length and `max_tokens` exceed context limit: 137000 + 64000 > )"
                      R"(200000, decrease input length or `max_tokens` and try again"}})")
                .kind,
            ErrorKind::kContextTooLong);
  StreamError limited = kind(429, "{}", {{"retry-after-ms", "1500"}, {"retry-after", "9"}});
  EXPECT_EQ(limited.kind, ErrorKind::kRateLimited);
  EXPECT_EQ(limited.retry_after, std::chrono::milliseconds(1500));
  EXPECT_NE(limited.message.find("retry after 2 s"), std::string::npos) << limited.message;
  // The wait asked for is kept as sent (the pool decides what to do with a long one).
  EXPECT_EQ(kind(429, "{}", {{"retry-after", "7200"}}).retry_after, std::chrono::hours(2));
  EXPECT_EQ(DelayText(std::chrono::milliseconds(800)), "800 ms");
  EXPECT_EQ(DelayText(std::chrono::milliseconds(1001)), "2 s");
  EXPECT_EQ(DelayText(std::chrono::milliseconds(119'000)), "119 s");
  EXPECT_EQ(DelayText(std::chrono::hours(1)), "60 min");
  EXPECT_EQ(kind(429, R"({"error":{"code":"insufficient_quota","message":"q"}})").kind,
            ErrorKind::kInvalidRequest);
  // Anthropic's spend limit says so in details, not in the message: not retried either.
  StreamError spent = kind(429, R"({"type":"error","error":{"type":"rate_limit_error",)"
                                R"("message":"You have reached your specified API usage limits.",)"
                                R"("details":{"error_code":"enforced_spend_limit_reached"}}})");
  EXPECT_EQ(spent.kind, ErrorKind::kInvalidRequest) << spent.message;
  EXPECT_FALSE(spent.retry_after.has_value());
  // Gemini says when to retry in the body (RetryInfo), not in a header; a header wins.
  const std::string gemini_429 =
      R"({"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED",)"
      R"("details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure"},)"
      R"({"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"3.5s"}]}})";
  StreamError quota = kind(429, gemini_429);
  EXPECT_EQ(quota.kind, ErrorKind::kRateLimited);
  EXPECT_EQ(quota.retry_after, std::chrono::milliseconds(3500)) << quota.message;
  EXPECT_EQ(kind(429, gemini_429, {{"retry-after", "9"}}).retry_after, std::chrono::seconds(9));
  EXPECT_FALSE(kind(429, R"({"error":{"details":[{"@type":"x.RetryInfo","retryDelay":"soon"}]}})")
                   .retry_after.has_value());
  EXPECT_EQ(kind(529, "").kind, ErrorKind::kOverloaded);
  EXPECT_EQ(kind(500, "<html>oops</html>").kind, ErrorKind::kUnavailable);
  EXPECT_EQ(kind(408, "").kind, ErrorKind::kTimeout);
  EXPECT_EQ(kind(500, "<html>oops</html>").message,
            "500 from anthropic: server error (<html>oops</html>); retry later");
  // A detail that only repeats the message is not said twice.
  EXPECT_EQ(kind(429, R"({"error":{"message":"Rate limited."}})").message,
            "429 from anthropic: rate limited; retry later");
  EXPECT_EQ(
      kind(529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})")
          .message,
      "529 from anthropic: the provider is overloaded; retry later");
  EXPECT_EQ(kind(429, "Too Many Requests").message,
            "429 from anthropic: rate limited (Too Many Requests); retry later");
}

TEST(ProviderTableTest, KnownProvidersAndDefaults) {
  EXPECT_EQ(FindProvider("openai")->default_key_env, "OPENAI_API_KEY");
  EXPECT_EQ(FindProvider("anthropic")->default_base_url, "https://api.anthropic.com");
  EXPECT_TRUE(FindProvider("ollama")->default_key_env.empty());
  EXPECT_EQ(FindProvider("groq")->wire, WireFormat::kOpenAiChat);
  EXPECT_EQ(FindProvider("nope"), nullptr);
  EXPECT_EQ(Redact("a KEY b KEY", "KEY"), "a *** b ***");
  EXPECT_EQ(Redact("unchanged", ""), "unchanged");
}

}  // namespace
}  // namespace lai::llm::internal
