// Ollama /api/chat (NDJSON).

#include <fmt/format.h>

#include <map>

#include "llm/internal/fast_json.h"
#include "llm/internal/parser_base.h"

namespace lai::llm::internal {
namespace {

// The entries one message adds to "messages": its tool results as role "tool" messages (named
// by the part, or else by the earlier call they answer, from `tool_names`, to which this
// message's calls are added), then the message itself.
Status AppendMessageEntries(const Message& message, ToolNames& tool_names, OrderedJson& entries) {
  std::string text;
  OrderedJson images = OrderedJson::array();
  OrderedJson tool_calls = OrderedJson::array();
  for (const ContentPart& part : message.parts) {
    switch (part.kind) {
      case ContentPart::Kind::kText:
        if (!text.empty() && !part.text.empty()) text += "\n\n";
        text += part.text;
        break;
      case ContentPart::Kind::kImage:
        images.push_back(part.data_base64);
        break;
      case ContentPart::Kind::kToolCall: {
        ASSIGN_OR_RETURN(OrderedJson arguments, ToolCallArguments(part));
        tool_names[part.tool_call_id] = part.tool_name;
        tool_calls.push_back(
            {{"function", {{"name", part.tool_name}, {"arguments", std::move(arguments)}}}});
        break;
      }
      case ContentPart::Kind::kToolResult: {
        std::string name = part.tool_name;
        if (name.empty()) {
          auto it = tool_names.find(part.tool_call_id);
          if (it != tool_names.end()) name = it->second;
        }
        OrderedJson tool = {{"role", "tool"}, {"content", part.text}};
        if (!name.empty()) tool["tool_name"] = name;
        entries.push_back(std::move(tool));
        break;
      }
      case ContentPart::Kind::kReasoning:
        break;
    }
  }
  if (text.empty() && images.empty() && tool_calls.empty()) return OkStatus();
  OrderedJson out = {{"role", message.role == Role::kUser ? "user" : "assistant"},
                     {"content", text}};
  if (!images.empty()) out["images"] = std::move(images);
  if (!tool_calls.empty()) out["tool_calls"] = std::move(tool_calls);
  entries.push_back(std::move(out));
  return OkStatus();
}

Result<OrderedJson> BuildMessages(const CompletionRequest& request) {
  ASSIGN_OR_RETURN(auto entries,
                   EntriesNamingTools("ollama", request.messages, &AppendMessageEntries));
  if (!request.system_prompt.empty()) {
    OrderedJson system = {{"role", "system"}, {"content", request.system_prompt}};
    entries.insert(entries.begin(), std::make_shared<const std::string>(DumpRequestBody(system)));
  }
  return JoinEntries(entries);
}

class OllamaParser final : public NdjsonParser {
 public:
  OllamaParser(std::string provider, std::string tool_id_prefix, EventSink sink)
      : NdjsonParser(std::move(provider), std::move(sink)),
        tool_id_prefix_(std::move(tool_id_prefix)) {}

 protected:
  void OnLine(std::string_view line) override {
    if (ReadLine(line) == simdjson::SUCCESS) {
      ApplyLine();
      return;
    }
    OnLineFullParse(line);
  }

  void OnEnd() override {
    EmitError(ErrorKind::kUnavailable,
              fmt::format("the stream from {} ended before \"done\": true", provider_));
  }

 private:
  // The fields of one line the parser uses, read by simdjson into reused members.
  struct Call {
    bool has_function = false;
    std::string id;
    std::string name;
    enum class Arguments { kNone, kObject, kString, kOther } arguments_kind = Arguments::kNone;
    std::string arguments;  // kObject: re-serialised as nlohmann does; kString: the text.
  };
  struct Line {
    bool has_message = false;
    std::string thinking;
    std::string content;
    size_t call_count = 0;
    std::vector<Call> calls;  // The first call_count are this line's.
    bool is_done = false;
    int64_t prompt_eval_count = 0;
    int64_t eval_count = 0;
    std::string done_reason;
  };

  // The hot path: reads the line whole (emitting nothing) or fails, leaving it to
  // OnLineFullParse.
  simdjson::error_code ReadLine(std::string_view text) {
    Line& line = line_;
    line.has_message = false;
    line.call_count = 0;
    line.is_done = false;
    line.prompt_eval_count = 0;
    line.eval_count = 0;
    line.done_reason.clear();
    return json_.ForEachRootField(text, [&](std::string_view key, od::value value) {
      if (key == "message") return ReadMessage(value);
      if (key == "done") return ReadBool(value, line.is_done);
      if (key == "prompt_eval_count") return ReadInt(value, line.prompt_eval_count);
      if (key == "eval_count") return ReadInt(value, line.eval_count);
      if (key == "done_reason") return ReadString(value, line.done_reason);
      if (key == "error") return kUseFullParse;
      return Consume(value);
    });
  }

  simdjson::error_code ReadMessage(od::value value) {
    Line& line = line_;
    line.has_message = false;
    line.call_count = 0;
    if (auto error = IsObject(value, line.has_message); error || !line.has_message) {
      return error;
    }
    line.thinking.clear();
    line.content.clear();
    return ForEachField(value, [&](std::string_view key, od::value field) -> simdjson::error_code {
      if (key == "content") return ReadString(field, line.content);
      if (key == "thinking") return ReadString(field, line.thinking);
      if (key != "tool_calls") return Consume(field);
      line.call_count = 0;
      return ForEachElementIfArray(field,
                                   [&](size_t, od::value element) { return ReadCall(element); });
    });
  }

  simdjson::error_code ReadCall(od::value value) {
    Line& line = line_;
    if (line.calls.size() <= line.call_count) line.calls.emplace_back();
    Call& call = line.calls[line.call_count++];
    call.has_function = false;
    call.id.clear();
    call.name.clear();
    call.arguments_kind = Call::Arguments::kNone;
    call.arguments.clear();
    return ForEachFieldIfObject(
        value, [&](std::string_view key, od::value field) -> simdjson::error_code {
          if (key == "id") return ReadString(field, call.id);
          if (key != "function") return Consume(field);
          call.name.clear();
          call.arguments_kind = Call::Arguments::kNone;
          if (auto error = IsObject(field, call.has_function); error || !call.has_function) {
            return error;
          }
          return ForEachField(field, [&](std::string_view name, od::value item) {
            if (name == "name") return ReadString(item, call.name);
            if (name != "arguments") return Consume(item);
            return ReadArguments(item, call);
          });
        });
  }

  static simdjson::error_code ReadArguments(od::value value, Call& call) {
    od::json_type type;
    if (auto error = value.type().get(type)) return error;
    call.arguments.clear();
    switch (type) {
      case od::json_type::object: {
        std::string_view raw;
        if (auto error = RawObject(value, raw)) return error;
        // Tool calls are rare: nlohmann validates and serialises them as before.
        std::optional<Json> arguments = ParseJson(raw);
        if (!arguments) return kUseFullParse;
        call.arguments_kind = Call::Arguments::kObject;
        call.arguments = arguments->dump();
        return simdjson::SUCCESS;
      }
      case od::json_type::string:
        call.arguments_kind = Call::Arguments::kString;
        return ReadString(value, call.arguments);
      case od::json_type::null:
        call.arguments_kind = Call::Arguments::kNone;
        return Consume(value);
      default:
        call.arguments_kind = Call::Arguments::kOther;
        return Consume(value);
    }
  }

  // Emits what ReadLine read, exactly as OnLineFullParse would.
  void ApplyLine() {
    const Line& line = line_;
    if (line.has_message) {
      EmitReasoning(line.thinking);
      EmitText(line.content);
      for (size_t i = 0; i < line.call_count; ++i) {
        const Call& call = line.calls[i];
        if (!call.has_function) {
          EmitBadResponse("a tool call without \"function\"");
          return;
        }
        std::string arguments = "{}";
        if (call.arguments_kind == Call::Arguments::kObject) {
          arguments = call.arguments;
        } else if (call.arguments_kind == Call::Arguments::kString) {
          Result<OrderedJson> parsed = ParseJsonObject(
              call.arguments, fmt::format("arguments of tool call '{}'", call.name));
          if (!parsed.ok()) {
            EmitBadResponse(parsed.error().message());
            return;
          }
          arguments = parsed->dump();
        } else if (call.arguments_kind == Call::Arguments::kOther) {
          EmitBadResponse(fmt::format("arguments of tool call '{}' are not an object", call.name));
          return;
        }
        EmitCall(call.id, call.name, std::move(arguments));
      }
    }
    if (line.is_done) {
      Usage usage;
      usage.input_tokens = line.prompt_eval_count;
      usage.output_tokens = line.eval_count;
      EmitUsage(usage);
      std::string reason = line.done_reason;
      if (reason.empty() || reason == "stop") reason = tool_count_ > 0 ? "tool_use" : "stop";
      EmitDone(reason);
    }
  }

  // The nlohmann DOM path: error lines, and any line the fast path could not read (it then
  // decides, e.g. that the JSON is malformed, and words the error).
  void OnLineFullParse(std::string_view line) {
    std::optional<Json> chunk = ParseJson(line);
    if (!chunk || !chunk->is_object()) {
      EmitBadResponse(fmt::format("malformed JSON in the stream: '{}'", line.substr(0, 80)));
      return;
    }
    if (chunk->contains("error")) {
      std::string message = ErrorMessageOf(*chunk);
      // In place of an answer it is the server's refusal; after part of one, a failure (the
      // model runner died: "unexpected EOF").
      ErrorKind kind = has_output() ? KindOfErrorText("", message) : KindOfAnswerError("", message);
      if (message.find("not found") != std::string::npos) kind = ErrorKind::kUnknownModel;
      EmitError(kind, fmt::format("error from {} during the stream: {}", provider_, message));
      return;
    }
    if (const Json* message = GetObject(*chunk, "message")) {
      EmitReasoning(GetString(*message, "thinking"));
      EmitText(GetString(*message, "content"));
      if (const Json* calls = GetArray(*message, "tool_calls")) {
        for (const Json& call : *calls) {
          HandleToolCall(call);
          if (is_terminated()) return;
        }
      }
    }
    auto done = chunk->find("done");
    if (done != chunk->end() && done->is_boolean() && done->get<bool>()) {
      Usage usage;
      usage.input_tokens = GetInt(*chunk, "prompt_eval_count");
      usage.output_tokens = GetInt(*chunk, "eval_count");
      EmitUsage(usage);
      std::string reason = GetString(*chunk, "done_reason");
      if (reason.empty() || reason == "stop") reason = tool_count_ > 0 ? "tool_use" : "stop";
      EmitDone(reason);
    }
  }

  void HandleToolCall(const Json& call) {
    const Json* function = GetObject(call, "function");
    if (function == nullptr) {
      EmitBadResponse("a tool call without \"function\"");
      return;
    }
    std::string name = GetString(*function, "name");
    std::string arguments = "{}";
    if (auto it = function->find("arguments"); it != function->end()) {
      if (it->is_object()) {
        arguments = it->dump();
      } else if (it->is_string()) {
        Result<OrderedJson> parsed = ParseJsonObject(
            it->get<std::string>(), fmt::format("arguments of tool call '{}'", name));
        if (!parsed.ok()) {
          EmitBadResponse(parsed.error().message());
          return;
        }
        arguments = parsed->dump();
      } else if (!it->is_null()) {
        EmitBadResponse(fmt::format("arguments of tool call '{}' are not an object", name));
        return;
      }
    }
    EmitCall(GetString(call, "id"), name, std::move(arguments));
  }

  // A whole tool call; an id is generated when the provider sent none.
  void EmitCall(std::string id, const std::string& name, std::string arguments) {
    int index = tool_count_++;
    if (id.empty()) id = fmt::format("{}_{}", tool_id_prefix_, index);
    EmitWholeToolCall(index, id, name, std::move(arguments));
  }

  const std::string tool_id_prefix_;
  int tool_count_ = 0;
  FastJson json_;
  Line line_;
};

}  // namespace

Result<http::Request> BuildOllamaRequest(const Endpoint& endpoint, const CompletionRequest& request,
                                         const ModelInfo* model) {
  OrderedJson body;
  body["model"] = request.model;
  ASSIGN_OR_RETURN(body["messages"], BuildMessages(request));
  body["stream"] = true;
  if (!request.tools.empty()) {
    OrderedJson tools = OrderedJson::array();
    for (const ToolDefinition& tool : request.tools) {
      ASSIGN_OR_RETURN(OrderedJson entry, CachedToolEntry("ollama", tool, &FunctionTool));
      tools.push_back(std::move(entry));
    }
    body["tools"] = std::move(tools);
  }
  // Thinking for models that can (Ollama refuses it of one that cannot, naming it).
  if ((!request.reasoning_effort.empty() || request.reasoning_budget_tokens) &&
      (model == nullptr || model->supports_reasoning)) {
    // gpt-oss takes a level and ignores true.
    if (request.model.starts_with("gpt-oss") && !request.reasoning_effort.empty()) {
      body["think"] = request.reasoning_effort;
    } else {
      body["think"] = true;
    }
  }
  OrderedJson options = OrderedJson::object();
  if (request.temperature) options["temperature"] = *request.temperature;
  if (request.max_tokens) options["num_predict"] = *request.max_tokens;
  // Ollama's own window is small (a few thousand tokens) and it drops the start of a longer
  // prompt without a word: the model gets the window the context is planned with (the
  // catalog's, one [models."ollama/…"] declares, or the one assumed for others).
  options["num_ctx"] = model != nullptr && model->context_window > 0 ? model->context_window
                                                                     : kAssumedOllamaContextWindow;
  if (!options.empty()) body["options"] = std::move(options);

  http::Request out = BaseRequest(endpoint, endpoint.base_url + "/api/chat");
  out.headers.push_back({"Accept", "application/x-ndjson"});
  if (!endpoint.api_key.empty()) {
    out.headers.push_back({"Authorization", "Bearer " + endpoint.api_key});
  }
  out.body = DumpRequestBody(body);
  return out;
}

std::unique_ptr<StreamParser> NewOllamaParser(std::string provider, std::string tool_id_prefix,
                                              EventSink sink) {
  return std::make_unique<OllamaParser>(std::move(provider), std::move(tool_id_prefix),
                                        std::move(sink));
}

}  // namespace lai::llm::internal
