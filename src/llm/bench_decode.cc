#include "llm/bench_decode.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>

#include "base/check.h"
#include "http/bench_baseline.h"
#include "llm/internal/adapter.h"
#include "llm/types.h"

namespace lai::llm {
namespace {

using nlohmann::json;

// Deterministic pseudo-random words, with the escapes and non-ASCII text real answers carry.
class Words {
 public:
  std::string Next(int count) {
    static constexpr std::string_view kWords[] = {
        "the ",        "function ",    "returns ",     "a ",
        "Result",      "<T>",          " when ",       "the\n",
        "input ",      "is ",          "valid",        ". ",
        "\"quoted\" ", "é ",           "数据 ",        "{",
        "}",           "\t",           "int ",         "x",
        "    ",        "// comment\n", "std::string ", "ok"};
    std::string out;
    for (int i = 0; i < count; ++i) out += kWords[Step() % std::size(kWords)];
    return out;
  }
  uint32_t Step() {
    seed_ = seed_ * 1664525u + 1013904223u;
    return seed_ >> 8;
  }

 private:
  uint32_t seed_ = 12345;
};

std::string Quote(std::string_view text) { return json(std::string(text)).dump(); }

// Splits `text` into pieces of 3–12 bytes (never inside a UTF-8 sequence).
std::vector<std::string> Fragments(std::string_view text, Words& words) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = std::min(text.size(), at + 3 + words.Step() % 10);
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
    out.emplace_back(text.substr(at, end - at));
    at = end;
  }
  return out;
}

// Tool arguments about `bytes` long: a write_to_file call with a long multi-line content.
std::string ToolArguments(size_t bytes, Words& words) {
  std::string content;
  while (content.size() < bytes) content += words.Next(8);
  return json{{"path", "src/main.rs"}, {"content", content}, {"line_count", 42}}.dump();
}

constexpr std::string_view kOpenAiHead =
    R"({"id":"chatcmpl-CFq3Xbench","object":"chat.completion.chunk","created":1764200000,)"
    R"("model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_b3f1157249",)"
    R"("choices":[{"index":0,"delta":)";
constexpr std::string_view kOpenAiTail = R"(,"logprobs":null,"finish_reason":null}],"usage":null})";

std::string Str(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}
int64_t Int(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

// The naive decoders: DOM parse of each event and extraction of the same fields into
// StreamEvents, through the same kind of sink.
class NaiveOpenAi {
 public:
  explicit NaiveOpenAi(EventSink sink) : sink_(std::move(sink)) {}
  void OnEvent(const std::string& data) {
    if (data == "[DONE]") {
      for (auto& [index, arguments] : arguments_) {
        StreamEvent end;
        end.kind = StreamEvent::Kind::kToolCallEnd;
        end.index = index;
        end.arguments_json = json::parse(arguments).dump();
        sink_(end);
      }
      Emit(StreamEvent::Kind::kDone, finish_reason_ == "tool_calls" ? "tool_use" : "stop");
      return;
    }
    json chunk = json::parse(data);
    if (auto choices = chunk.find("choices"); choices != chunk.end() && !choices->empty()) {
      const json& choice = choices->front();
      if (auto delta = choice.find("delta"); delta != choice.end()) {
        Emit(StreamEvent::Kind::kReasoningDelta, Str(*delta, "reasoning_content"));
        Emit(StreamEvent::Kind::kTextDelta, Str(*delta, "content"));
        if (auto calls = delta->find("tool_calls"); calls != delta->end()) {
          for (const json& call : *calls) {
            int index = static_cast<int>(Int(call, "index"));
            const json& function = call["function"];
            if (!arguments_.contains(index)) {
              StreamEvent start;
              start.kind = StreamEvent::Kind::kToolCallStart;
              start.index = index;
              start.tool_call_id = Str(call, "id");
              start.tool_name = Str(function, "name");
              sink_(start);
            }
            std::string fragment = Str(function, "arguments");
            arguments_[index] += fragment;
            if (!fragment.empty()) Emit(StreamEvent::Kind::kToolCallDelta, std::move(fragment));
          }
        }
      }
      if (std::string reason = Str(choice, "finish_reason"); !reason.empty()) {
        finish_reason_ = reason;
      }
    }
    if (auto usage = chunk.find("usage"); usage != chunk.end() && usage->is_object()) {
      StreamEvent event;
      event.kind = StreamEvent::Kind::kUsage;
      event.usage.input_tokens = Int(*usage, "prompt_tokens");
      event.usage.output_tokens = Int(*usage, "completion_tokens");
      event.usage.cache_read_tokens = Int((*usage)["prompt_tokens_details"], "cached_tokens");
      sink_(event);
    }
  }

 private:
  void Emit(StreamEvent::Kind kind, std::string text) {
    if (text.empty()) return;
    StreamEvent event;
    event.kind = kind;
    event.text = std::move(text);
    sink_(event);
  }
  EventSink sink_;
  std::map<int, std::string> arguments_;
  std::string finish_reason_;
};

class NaiveAnthropic {
 public:
  explicit NaiveAnthropic(EventSink sink) : sink_(std::move(sink)) {}
  void OnEvent(const std::string& event, const std::string& data) {
    if (event == "ping") return;
    json payload = json::parse(data);
    std::string type = Str(payload, "type");
    if (type == "message_delta") stop_reason_ = Str(payload["delta"], "stop_reason");
    if (type == "message_start" || type == "message_delta") {
      const json& usage = type == "message_start" ? payload["message"]["usage"] : payload["usage"];
      StreamEvent out;
      out.kind = StreamEvent::Kind::kUsage;
      out.usage.input_tokens = Int(usage, "input_tokens");
      out.usage.output_tokens = Int(usage, "output_tokens");
      out.usage.cache_read_tokens = Int(usage, "cache_read_input_tokens");
      sink_(out);
    } else if (type == "content_block_start") {
      const json& block = payload["content_block"];
      if (Str(block, "type") == "tool_use") {
        StreamEvent start;
        start.kind = StreamEvent::Kind::kToolCallStart;
        start.tool_call_id = Str(block, "id");
        start.tool_name = Str(block, "name");
        sink_(start);
        input_.clear();
      }
    } else if (type == "content_block_delta") {
      const json& delta = payload["delta"];
      std::string delta_type = Str(delta, "type");
      StreamEvent out;
      if (delta_type == "text_delta") {
        out.kind = StreamEvent::Kind::kTextDelta;
        out.text = Str(delta, "text");
      } else if (delta_type == "input_json_delta") {
        out.kind = StreamEvent::Kind::kToolCallDelta;
        out.text = Str(delta, "partial_json");
        input_ += out.text;
      }
      if (!out.text.empty()) sink_(out);
    } else if (type == "content_block_stop") {
      if (!input_.empty()) {
        StreamEvent end;
        end.kind = StreamEvent::Kind::kToolCallEnd;
        end.arguments_json = json::parse(input_).dump();
        sink_(end);
        input_.clear();
      }
    } else if (type == "message_stop") {
      StreamEvent done;
      done.kind = StreamEvent::Kind::kDone;
      done.text = stop_reason_ == "end_turn" ? "stop" : stop_reason_;
      sink_(done);
    }
  }

 private:
  EventSink sink_;
  std::string input_;
  std::string stop_reason_;
};

}  // namespace

std::string MakeOpenAiBenchStream(size_t bytes) {
  Words words;
  std::string out;
  out.reserve(bytes + 4096);
  auto chunk = [&](std::string_view delta) {
    out += "data: ";
    out += kOpenAiHead;
    out += delta;
    out += kOpenAiTail;
    out += "\n\n";
  };
  chunk(R"({"role":"assistant","content":""})");
  // About 80% text deltas of one to three words (OpenAI sends about a token per chunk), then one
  // tool call whose arguments arrive in small fragments.
  while (out.size() < bytes * 8 / 10) {
    chunk(R"({"content":)" + Quote(words.Next(1 + static_cast<int>(words.Step() % 3))) + "}");
  }
  chunk(R"({"tool_calls":[{"index":0,"id":"call_bench01","type":"function","function":)"
        R"({"name":"write_to_file","arguments":""}}]})");
  size_t remaining = bytes > out.size() ? bytes - out.size() : 0;
  // Each fragment costs about 300 bytes of chunk for ~7 bytes of arguments.
  for (const std::string& piece : Fragments(ToolArguments(remaining / 40, words), words)) {
    chunk(R"({"tool_calls":[{"index":0,"function":{"arguments":)" + Quote(piece) + "}}]}");
  }
  out += "data: ";
  out += kOpenAiHead;
  out += R"({},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null})";
  out += "\n\n";
  out +=
      R"(data: {"id":"chatcmpl-CFq3Xbench","object":"chat.completion.chunk","created":1764200000,)"
      R"("model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_b3f1157249",)"
      R"("choices":[],"usage":{"prompt_tokens":18234,"completion_tokens":5120,"total_tokens":23354,)"
      R"("prompt_tokens_details":{"cached_tokens":16384,"audio_tokens":0},)"
      R"("completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,)"
      R"("accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}})"
      "\n\ndata: [DONE]\n\n";
  return out;
}

std::string MakeAnthropicBenchStream(size_t bytes) {
  Words words;
  std::string out;
  out.reserve(bytes + 4096);
  auto event = [&](std::string_view name, std::string_view data) {
    out += "event: ";
    out += name;
    out += "\ndata: ";
    out += data;
    out += "\n\n";
  };
  event(
      "message_start",
      R"({"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVbench","type":"message",)"
      R"("role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,)"
      R"("stop_sequence":null,"usage":{"input_tokens":2095,"cache_creation_input_tokens":0,)"
      R"("cache_read_input_tokens":16384,"cache_creation":{"ephemeral_5m_input_tokens":0,)"
      R"("ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}})");
  event("content_block_start",
        R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})");
  event("ping", R"({"type": "ping"})");
  // Text deltas of two to six words: Claude sends a few tokens per text_delta.
  for (int i = 0; out.size() < bytes * 8 / 10; ++i) {
    event("content_block_delta",
          R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":)" +
              Quote(words.Next(2 + static_cast<int>(words.Step() % 5))) + "}}");
    if (i % 200 == 199) event("ping", R"({"type": "ping"})");
  }
  event("content_block_stop", R"({"type":"content_block_stop","index":0})");
  event("content_block_start",
        R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use",)"
        R"("id":"toolu_01bench","name":"write_to_file","input":{}}})");
  size_t remaining = bytes > out.size() ? bytes - out.size() : 0;
  for (const std::string& piece : Fragments(ToolArguments(remaining / 20, words), words)) {
    event("content_block_delta",
          R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta",)"
          R"("partial_json":)" +
              Quote(piece) + "}}");
  }
  event("content_block_stop", R"({"type":"content_block_stop","index":1})");
  event("message_delta",
        R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},)"
        R"("usage":{"output_tokens":5120}})");
  event("message_stop", R"({"type":"message_stop"})");
  return out;
}

DecodeThroughput MeasureStreamDecoding(size_t chunk_bytes, std::chrono::milliseconds min_time) {
  chunk_bytes = std::max<size_t>(chunk_bytes, 1);
  DecodeThroughput result;
  auto measure = [&](std::string_view provider, const std::string& stream, size_t& events_out,
                     double& ours, double& baseline) {
    const internal::ProviderSpec* spec = internal::FindProvider(provider);
    LAI_CHECK(spec != nullptr) << provider;
    size_t events = 0;
    size_t text_bytes = 0;
    bool is_done = false;
    EventSink sink = [&](const StreamEvent& event) {
      ++events;
      text_bytes += event.text.size() + event.arguments_json.size();
      if (event.kind == StreamEvent::Kind::kDone) is_done = true;
      LAI_CHECK(event.kind != StreamEvent::Kind::kError)
          << "decode benchmark: " << provider << ": " << event.error.message;
    };
    ours = http::MeasureMbPerSecond(stream.size(), min_time, [&] {
      events = 0;
      text_bytes = 0;
      is_done = false;
      auto parser = internal::NewStreamParser(*spec, std::string(provider), "call", sink);
      for (size_t at = 0; at < stream.size(); at += chunk_bytes) {
        parser->Feed(std::string_view(stream).substr(at, chunk_bytes));
      }
      parser->Finish();
    });
    LAI_CHECK(is_done) << "decode benchmark: " << provider << " stream did not end with done";
    events_out = events;
    size_t our_text_bytes = text_bytes;
    size_t baseline_events = 0;
    baseline = http::MeasureMbPerSecond(stream.size(), min_time, [&] {
      events = 0;
      text_bytes = 0;
      http::NaiveSseDecoder decoder;
      if (provider == "openai") {
        NaiveOpenAi naive(sink);
        for (size_t at = 0; at < stream.size(); at += chunk_bytes) {
          decoder.Feed(std::string_view(stream).substr(at, chunk_bytes),
                       [&](const std::string&, const std::string& data) { naive.OnEvent(data); });
        }
      } else {
        NaiveAnthropic naive(sink);
        for (size_t at = 0; at < stream.size(); at += chunk_bytes) {
          decoder.Feed(std::string_view(stream).substr(at, chunk_bytes),
                       [&](const std::string& name, const std::string& data) {
                         naive.OnEvent(name.empty() ? std::string("message") : name, data);
                       });
        }
      }
      baseline_events = events;
    });
    // Same work: the baseline produced the same events carrying the same text.
    LAI_CHECK(baseline_events == events_out && text_bytes == our_text_bytes)
        << "decode benchmark: " << provider << " baseline made " << baseline_events << " events ("
        << text_bytes << " bytes), the adapter " << events_out << " (" << our_text_bytes << ")";
  };
  const std::string openai = MakeOpenAiBenchStream(2u << 20);
  const std::string anthropic = MakeAnthropicBenchStream(2u << 20);
  result.openai_stream_bytes = openai.size();
  result.anthropic_stream_bytes = anthropic.size();
  measure("openai", openai, result.openai_events, result.openai_mb_per_s,
          result.baseline_openai_mb_per_s);
  measure("anthropic", anthropic, result.anthropic_events, result.anthropic_mb_per_s,
          result.baseline_anthropic_mb_per_s);
  return result;
}

}  // namespace lai::llm
