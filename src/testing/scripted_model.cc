#include "testing/scripted_model.h"

#include <nlohmann/json.hpp>

namespace lai::testing {
namespace {

using nlohmann::json;

std::string Event(const json& choice_delta, const char* finish_reason) {
  json chunk = {{"id", "chatcmpl-scripted"},
                {"object", "chat.completion.chunk"},
                {"created", 1},
                {"model", "scripted"},
                {"choices",
                 {{{"index", 0},
                   {"delta", choice_delta},
                   {"finish_reason", finish_reason ? json(finish_reason) : json(nullptr)}}}}};
  return "data: " + chunk.dump() + "\n\n";
}

void AddSplit(std::vector<std::string>& chunks, const std::string& text, int parts,
              const char* field) {
  if (text.empty()) return;
  size_t count = parts < 1 ? 1 : static_cast<size_t>(parts);
  size_t step = (text.size() + count - 1) / count;
  for (size_t start = 0; start < text.size(); start += step) {
    chunks.push_back(Event({{field, text.substr(start, step)}}, nullptr));
  }
}

}  // namespace

FakeResponse OpenAiTurn(const ScriptedTurn& turn) {
  FakeResponse response;
  response.headers = {{"Content-Type", "text/event-stream"}};
  std::vector<std::string>& chunks = response.body_chunks;
  chunks.push_back(Event({{"role", "assistant"}, {"content", ""}}, nullptr));
  AddSplit(chunks, turn.reasoning, 2, "reasoning_content");
  AddSplit(chunks, turn.text, turn.text_chunks, "content");
  for (size_t i = 0; i < turn.calls.size(); ++i) {
    const ScriptedCall& call = turn.calls[i];
    json start = {{"tool_calls",
                   {{{"index", i},
                     {"id", call.id},
                     {"type", "function"},
                     {"function", {{"name", call.name}, {"arguments", ""}}}}}}};
    chunks.push_back(Event(start, nullptr));
    // The arguments in two fragments, as providers stream them.
    size_t half = call.arguments_json.size() / 2;
    for (const std::string& part :
         {call.arguments_json.substr(0, half), call.arguments_json.substr(half)}) {
      chunks.push_back(
          Event({{"tool_calls", {{{"index", i}, {"function", {{"arguments", part}}}}}}}, nullptr));
    }
  }
  const char* finish = !turn.finish_reason.empty() ? turn.finish_reason.c_str()
                       : turn.calls.empty()        ? "stop"
                                                   : "tool_calls";
  chunks.push_back(Event(json::object(), finish));
  json usage = {{"id", "chatcmpl-scripted"},
                {"object", "chat.completion.chunk"},
                {"created", 1},
                {"model", "scripted"},
                {"choices", json::array()},
                {"usage",
                 {{"prompt_tokens", turn.input_tokens},
                  {"completion_tokens", turn.output_tokens},
                  {"total_tokens", turn.input_tokens + turn.output_tokens}}}};
  chunks.push_back("data: " + usage.dump() + "\n\n");
  chunks.push_back("data: [DONE]\n\n");
  return response;
}

FakeResponse OpenAiText(std::string_view text) {
  ScriptedTurn turn;
  turn.text = std::string(text);
  return OpenAiTurn(turn);
}

FakeResponse OpenAiToolCall(std::string_view id, std::string_view name,
                            std::string_view arguments_json, std::string_view text) {
  ScriptedTurn turn;
  turn.text = std::string(text);
  turn.calls.push_back({std::string(id), std::string(name), std::string(arguments_json)});
  return OpenAiTurn(turn);
}

FakeResponse OpenAiContextTooLong() {
  json body = {{"error",
                {{"message",
                  "This model's maximum context length is 8192 tokens. However, your messages "
                  "resulted in 9000 tokens. Please reduce the length of the messages."},
                 {"type", "invalid_request_error"},
                 {"param", "messages"},
                 {"code", "context_length_exceeded"}}}};
  return MakeResponse(400, body.dump());
}

FakeResponse OpenAiStalledText(std::string_view text, std::chrono::milliseconds stall) {
  ScriptedTurn turn;
  turn.text = std::string(text);
  turn.text_chunks = 2;
  FakeResponse response = OpenAiTurn(turn);
  response.fault.stall_after_bytes =
      response.body_chunks[0].size() + response.body_chunks[1].size();
  response.fault.stall_for = stall;
  return response;
}

}  // namespace lai::testing
