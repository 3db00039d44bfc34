// A stdio MCP server for tests: newline-delimited JSON-RPC on stdin/stdout, logs on stderr.
// Tools: echo {text} → "echo: <text>"; add {a, b} → the sum; fail → isError; slow → never
// answers (its cancellation is logged); big → 300,000 bytes; crash → exits; env {name} → the
// variable's value or "<unset>"; strays → the methods received that MCP does not have ("$/…").
// Resources: memo://greeting (text) and memo://logo (a blob).
// Flags: --version V (the protocolVersion it answers), --exit-at-start (writes to stderr and
// exits 3), --no-resources, --resources-fail (offers resources, but resources/list fails),
// --paginate (tools/list in pages of one), --notify-early (a
// notifications/tools/list_changed before the initialize answer, as some servers do).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

namespace {

using Json = nlohmann::json;

void Send(const Json& message) {
  std::string line = message.dump() + "\n";
  (void)!::write(1, line.data(), line.size());
}

void Answer(const Json& id, const Json& result) {
  Send({{"jsonrpc", "2.0"}, {"id", id}, {"result", result}});
}

void Fail(const Json& id, int code, const std::string& message) {
  Send({{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}});
}

Json Tools() {
  auto text_schema = [](const char* field) {
    return Json{
        {"type", "object"}, {"properties", {{field, {{"type", "string"}}}}}, {"required", {field}}};
  };
  return Json::array(
      {{{"name", "echo"},
        {"description", "Repeats the text."},
        {"inputSchema", text_schema("text")}},
       {{"name", "add"},
        {"description", "Adds two numbers."},
        {"inputSchema",
         {{"type", "object"},
          {"properties", {{"a", {{"type", "number"}}}, {"b", {{"type", "number"}}}}}}}},
       {{"name", "fail"}, {"description", "Always fails."}, {"inputSchema", {{"type", "object"}}}},
       {{"name", "slow"}, {"description", "Takes 30 s."}, {"inputSchema", {{"type", "object"}}}},
       {{"name", "big"}, {"description", "A long answer."}, {"inputSchema", {{"type", "object"}}}},
       {{"name", "crash"}, {"description", "Exits."}, {"inputSchema", {{"type", "object"}}}},
       {{"name", "env"},
        {"description", "The value of an environment variable, or <unset>."},
        {"inputSchema", text_schema("name")}},
       {{"name", "strays"},
        {"description", "The methods received that MCP does not have, space-separated."},
        {"inputSchema", {{"type", "object"}}}}});
}

}  // namespace

int main(int argc, char** argv) {
  std::string version = "2025-11-25";
  bool resources = true;
  bool paginate = false;
  bool notify_early = false;
  bool resources_fail = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--version" && i + 1 < argc) version = argv[++i];
    if (arg == "--exit-at-start") {
      std::fprintf(stderr, "fake-mcp: refusing to start (as asked)\n");
      return 3;
    }
    if (arg == "--no-resources") resources = false;
    if (arg == "--resources-fail") resources_fail = true;
    if (arg == "--paginate") paginate = true;
    if (arg == "--notify-early") notify_early = true;
  }
  std::fprintf(stderr, "fake-mcp: started\n");
  Json slow_id;  // The pending slow call, answered when cancelled.
  std::string strays;
  std::string line;
  while (std::getline(std::cin, line)) {
    Json message = Json::parse(line, nullptr, false);
    if (!message.is_object()) continue;
    const std::string method = message.value("method", "");
    const Json id = message.value("id", Json());
    const Json params = message.value("params", Json::object());
    if (method.starts_with("$/")) strays += (strays.empty() ? "" : " ") + method;
    if (method == "initialize") {
      if (notify_early) Send({{"jsonrpc", "2.0"}, {"method", "notifications/tools/list_changed"}});
      Json capabilities = {{"tools", Json::object()}};
      if (resources) capabilities["resources"] = Json::object();
      Answer(id, {{"protocolVersion", version},
                  {"capabilities", capabilities},
                  {"serverInfo", {{"name", "fake-mcp"}, {"version", "1"}}},
                  {"instructions", "Use echo to repeat text."}});
    } else if (method == "tools/list") {
      Json tools = Tools();
      if (!paginate) {
        Answer(id, {{"tools", tools}});
      } else {
        size_t at = params.contains("cursor") ? std::stoul(params["cursor"].get<std::string>()) : 0;
        Json page = {{"tools", Json::array({tools[at]})}};
        if (at + 1 < tools.size()) page["nextCursor"] = std::to_string(at + 1);
        Answer(id, page);
      }
    } else if (method == "resources/list" && resources_fail) {
      Fail(id, -32601, "Method not found");
    } else if (method == "resources/list") {
      Answer(id, {{"resources",
                   {{{"uri", "memo://greeting"}, {"name", "greeting"}, {"mimeType", "text/plain"}},
                    {{"uri", "memo://logo"}, {"name", "logo"}, {"mimeType", "image/png"}}}}});
    } else if (method == "resources/read") {
      std::string uri = params.value("uri", "");
      if (uri == "memo://greeting") {
        Answer(id, {{"contents", {{{"uri", uri}, {"text", "hello from the fake server"}}}}});
      } else if (uri == "memo://logo") {
        Answer(id, {{"contents",
                     {{{"uri", uri}, {"mimeType", "image/png"}, {"blob", "iVBORw0KGgo="}}}}});
      } else {
        Fail(id, -32002, "Resource not found: " + uri);
      }
    } else if (method == "tools/call") {
      std::string name = params.value("name", "");
      Json arguments = params.value("arguments", Json::object());
      if (name == "echo") {
        Answer(id, {{"content",
                     {{{"type", "text"}, {"text", "echo: " + arguments.value("text", "")}}}}});
      } else if (name == "add") {
        double sum = arguments.value("a", 0.0) + arguments.value("b", 0.0);
        Answer(id, {{"content", {{{"type", "text"}, {"text", Json(sum).dump()}}}}});
      } else if (name == "fail") {
        Answer(id, {{"content", {{{"type", "text"}, {"text", "it failed"}}}}, {"isError", true}});
      } else if (name == "slow") {
        slow_id = id;  // Answered on notifications/cancelled (or never).
      } else if (name == "big") {
        Answer(id, {{"content", {{{"type", "text"}, {"text", std::string(300'000, 'x')}}}}});
      } else if (name == "env") {
        const char* value = std::getenv(arguments.value("name", "").c_str());
        Answer(id, {{"content", {{{"type", "text"}, {"text", value ? value : "<unset>"}}}}});
      } else if (name == "strays") {
        Answer(id, {{"content", {{{"type", "text"}, {"text", strays}}}}});
      } else if (name == "crash") {
        std::fprintf(stderr, "fake-mcp: crashing (as asked)\n");
        return 1;
      } else {
        Fail(id, -32602, "Unknown tool: " + name);
      }
    } else if (method == "notifications/cancelled") {
      std::fprintf(stderr, "fake-mcp: cancelled %s\n", params.dump().c_str());
      slow_id = Json();
    } else if (method == "ping") {
      Answer(id, Json::object());
    } else if (!id.is_null()) {
      Fail(id, -32601, "Method not found: " + method);
    }
  }
  std::fprintf(stderr, "fake-mcp: end of input\n");
  return 0;
}
