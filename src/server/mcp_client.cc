#include "server/mcp_client.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <utility>

#include "base/strings.h"
#include "rpc/peer.h"
#include "rpc/stdio_transport.h"
#include "workspace/process.h"

namespace lai::server {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// What we ask for, and every revision whose handshake we speak.
constexpr std::string_view kProtocolVersion = "2025-11-25";
constexpr std::string_view kKnownVersions[] = {"2025-11-25", "2025-06-18", "2025-03-26",
                                               "2024-11-05"};
constexpr size_t kStderrTailBytes = 4096;
// What a server inherits from the engine's environment (as the MCP SDKs do): enough to find
// programs and a home, never the provider keys. Its configured variables come on top.
constexpr const char* kInheritedEnv[] = {"HOME", "LOGNAME", "PATH", "SHELL",
                                         "TERM", "USER",    "LANG"};
constexpr int kMaxListPages = 100;  // A server that pages forever is cut off here.

Error EntryError(size_t index, std::string_view field, std::string_view problem) {
  std::string where = "mcpServers[" + std::to_string(index) + "]";
  if (!field.empty()) where += "." + std::string(field);
  return Error(ErrorCode::kInvalidArgument, where + ": " + std::string(problem));
}

std::string OptionalString(const Json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The answer of a tools/call (content blocks) or resources/read (contents) as model-readable
// text: text as is, everything else named.
std::string BlockText(const Json& block) {
  if (!block.is_object()) return block.dump();
  const std::string type = OptionalString(block, "type");
  if (block.contains("text") && block["text"].is_string()) return block["text"].get<std::string>();
  if (type == "image" || type == "audio" || block.contains("blob")) {
    std::string data = OptionalString(block, block.contains("blob") ? "blob" : "data");
    std::string what = type.empty() ? std::string("binary content") : type;
    std::string uri = OptionalString(block, "uri");
    size_t padding = data.ends_with("==") ? 2 : data.ends_with('=') ? 1 : 0;
    size_t bytes = data.size() / 4 * 3 - std::min(padding, data.size() / 4 * 3);
    return "[" + what + (uri.empty() ? "" : " " + uri) + ", " + OptionalString(block, "mimeType") +
           ", " + std::to_string(bytes) + " bytes, not shown]";
  }
  if (type == "resource" && block.contains("resource")) return BlockText(block["resource"]);
  if (type == "resource_link") return "[resource: " + OptionalString(block, "uri") + "]";
  return block.dump();
}

std::string JoinBlocks(const Json& blocks) {
  std::string text;
  if (!blocks.is_array()) return text;
  for (const Json& block : blocks) {
    if (!text.empty()) text += "\n";
    text += BlockText(block);
  }
  return text;
}

// `text` with ${env:NAME} replaced by the engine's NAME ("" when unset) and ${workspaceFolder}
// by `workspace` (this process's directory when ""), as Kilo Code expands its MCP settings.
std::string ExpandVariables(const std::string& text, const std::string& workspace) {
  std::string out;
  size_t at = 0;
  for (size_t open; (open = text.find("${", at)) != std::string::npos;) {
    size_t close = text.find('}', open);
    if (close == std::string::npos) break;
    std::string_view name(text.data() + open + 2, close - open - 2);
    out.append(text, at, open - at);
    if (name.starts_with("env:")) {
      const char* value = std::getenv(std::string(name.substr(4)).c_str());
      out += value != nullptr ? value : "";
    } else if (name == "workspaceFolder") {
      std::error_code ec;
      out += workspace.empty() ? std::filesystem::current_path(ec).string() : workspace;
    } else {
      out.append(text, open, close + 1 - open);  // Not ours: kept as written.
    }
    at = close + 1;
  }
  out.append(text, at);
  return out;
}

// `program` found on the PATH in `env` ("NAME=value" entries) when it has no '/' and that PATH
// has it: a server's own PATH (nvm's, volta's node) decides which program runs, not the
// engine's. Else `program`, for the spawn to look up.
std::string ProgramOnPath(const std::string& program, const std::vector<std::string>& env) {
  if (program.find('/') != std::string::npos) return program;
  for (const std::string& entry : env) {
    if (!entry.starts_with("PATH=")) continue;
    std::string found = workspace::FindOnPath(program, std::string_view(entry).substr(5));
    if (!found.empty()) return found;
  }
  return program;
}

// Cuts `text` to `limit` bytes at a UTF-8 character boundary, saying how much was cut.
void Cap(std::string& text, size_t limit) {
  if (text.size() <= limit) return;
  const size_t cut = Utf8CutPosition(text, limit);
  const size_t dropped = text.size() - cut;
  text.resize(cut);
  text += "\n[… " + std::to_string(dropped) + " more bytes of this answer were cut]";
}

}  // namespace

Result<std::vector<McpServerConfig>> ParseAcpMcpServers(std::string_view json_array) {
  Json servers = Json::parse(json_array, nullptr, /*allow_exceptions=*/false);
  if (!servers.is_array()) {
    return Error(ErrorCode::kInvalidArgument, "mcpServers: expected an array of servers");
  }
  std::vector<McpServerConfig> configs;
  for (size_t i = 0; i < servers.size(); ++i) {
    const Json& entry = servers[i];
    if (!entry.is_object()) return EntryError(i, "", "expected an object");
    std::string type = OptionalString(entry, "type");
    if (!type.empty() && type != "stdio") {
      return EntryError(i, "type",
                        "'" + type +
                            "' servers are not supported (this agent's mcpCapabilities has http "
                            "and sse false); give a stdio server: name, command, args, env");
    }
    McpServerConfig config;
    config.name = OptionalString(entry, "name");
    if (config.name.empty()) return EntryError(i, "name", "expected a non-empty string");
    for (const McpServerConfig& earlier : configs) {
      if (earlier.name == config.name) {
        return EntryError(i, "name", "'" + config.name + "' names two servers");
      }
    }
    config.command = OptionalString(entry, "command");
    if (config.command.empty()) return EntryError(i, "command", "expected a non-empty string");
    if (auto args = entry.find("args"); args != entry.end() && !args->is_null()) {
      if (!args->is_array()) return EntryError(i, "args", "expected an array of strings");
      for (const Json& arg : *args) {
        if (!arg.is_string()) return EntryError(i, "args", "expected an array of strings");
        config.args.push_back(arg.get<std::string>());
      }
    }
    if (auto env = entry.find("env"); env != entry.end() && !env->is_null()) {
      if (!env->is_array()) {
        return EntryError(i, "env", "expected an array of {\"name\", \"value\"} objects");
      }
      for (const Json& variable : *env) {
        std::string name = variable.is_object() ? OptionalString(variable, "name") : "";
        if (name.empty() || name.find('=') != std::string::npos || !variable.contains("value") ||
            !variable["value"].is_string()) {
          return EntryError(i, "env",
                            "expected {\"name\", \"value\"} objects with a name without '=' and "
                            "a string value");
        }
        config.env.push_back(name + "=" + variable["value"].get<std::string>());
      }
    }
    configs.push_back(std::move(config));
  }
  return configs;
}

Result<std::vector<McpServerConfig>> LoadMcpSettings(const std::string& path) {
  std::ifstream file(path);
  if (!file) return std::vector<McpServerConfig>();
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  auto fail = [&](std::string_view field, std::string_view problem) {
    return Error(
        ErrorCode::kInvalidArgument,
        path + ": " + std::string(field) + (field.empty() ? "" : ": ") + std::string(problem));
  };
  Json settings;
  try {
    settings = Json::parse(text);
  } catch (const Json::parse_error& error) {
    return fail("", std::string("not valid JSON (") + error.what() + ")");
  }
  if (!settings.is_object()) return fail("", "expected an object with \"mcpServers\"");
  auto servers = settings.find("mcpServers");
  if (servers == settings.end() || servers->is_null()) return std::vector<McpServerConfig>();
  if (!servers->is_object()) return fail("mcpServers", "expected an object of servers by name");
  std::vector<McpServerConfig> configs;
  for (const auto& [name, server] : servers->items()) {
    const std::string field = "mcpServers." + name;
    if (!server.is_object()) return fail(field, "expected an object");
    if (server.value("disabled", false)) continue;
    std::string type = OptionalString(server, "type");
    bool is_remote = (!type.empty() && type != "stdio") ||
                     (type.empty() && !server.contains("command") && server.contains("url"));
    if (is_remote) {
      // Written for other agents too (Kilo Code reads this shape): one we cannot start yet must
      // not stop every session, so it is left out, and said so.
      spdlog::warn("{}: {}: {} servers (with a url) are not supported yet; it is left out (use a "
                   "stdio server: command, args, env)",
                   path, field, type.empty() ? "remote" : "'" + type + "'");
      continue;
    }
    McpServerConfig config;
    config.name = name;
    config.command = OptionalString(server, "command");
    if (config.command.empty()) return fail(field + ".command", "expected a non-empty string");
    if (auto args = server.find("args"); args != server.end() && !args->is_null()) {
      if (!args->is_array()) return fail(field + ".args", "expected an array of strings");
      for (const Json& arg : *args) {
        if (!arg.is_string()) return fail(field + ".args", "expected an array of strings");
        config.args.push_back(arg.get<std::string>());
      }
    }
    if (auto env = server.find("env"); env != server.end() && !env->is_null()) {
      if (!env->is_object()) return fail(field + ".env", "expected an object of strings");
      for (const auto& [variable, value] : env->items()) {
        if (variable.empty() || variable.find('=') != std::string::npos || !value.is_string()) {
          return fail(field + ".env." + variable, "expected a string (and a name without '=')");
        }
        config.env.push_back(variable + "=" + value.get<std::string>());
      }
    }
    if (auto cwd = server.find("cwd"); cwd != server.end() && !cwd->is_null()) {
      if (!cwd->is_string()) return fail(field + ".cwd", "expected a string");
      config.cwd = cwd->get<std::string>();
    }
    for (auto [key, names] : {std::pair{"disabledTools", &config.disabled_tools},
                              std::pair{"alwaysAllow", &config.always_allow}}) {
      auto tools = server.find(key);
      if (tools == server.end() || tools->is_null()) continue;
      if (!tools->is_array()) return fail(field + "." + key, "expected an array of tool names");
      for (const Json& tool : *tools) {
        if (!tool.is_string()) return fail(field + "." + key, "expected an array of tool names");
        names->push_back(tool.get<std::string>());
      }
    }
    if (auto timeout = server.find("timeout"); timeout != server.end() && !timeout->is_null()) {
      // Seconds, as Kilo Code reads it (1 to 3600).
      if (!timeout->is_number() || timeout->get<double>() < 1 || timeout->get<double>() > 3600) {
        return fail(field + ".timeout", "expected a number of seconds from 1 to 3600");
      }
      config.call_timeout = milliseconds(static_cast<int64_t>(timeout->get<double>() * 1000));
    }
    configs.push_back(std::move(config));
  }
  return configs;
}

// One server: its process, the JSON-RPC peer on its pipes, and what it offers. Start() runs on
// `starter`; after `is_started`, `info` and `failure` are read-only.
struct McpHub::Connection {
  McpServerConfig config;
  McpOptions options;

  mutable std::mutex mutex;
  std::condition_variable started_changed;
  bool is_started = false;        // Guarded by mutex.
  bool is_stderr_closed = false;  // Guarded by mutex.
  std::string stderr_tail;        // Guarded by mutex.
  std::atomic<bool> is_connected{false};
  std::string failure;
  agent::McpServerInfo info;

  std::unique_ptr<workspace::Child> child;
  std::unique_ptr<rpc::StdioTransport> transport;
  std::unique_ptr<rpc::Peer> peer;
  std::atomic<bool> is_stopping{false};
  std::thread stderr_reader;
  std::thread starter;

  ~Connection() {
    BeginStop();
    if (child) child->Stop(milliseconds(500));
    if (stderr_reader.joinable()) stderr_reader.join();
  }

  // Disconnects and closes the server's stdin, which tells it to exit (idempotent).
  void BeginStop() {
    is_stopping = true;
    if (starter.joinable()) starter.join();
    if (transport) transport->Stop();  // The reader thread is gone: nothing reaches the peer.
    peer.reset();                      // Pending calls fail with kUnavailable.
    transport.reset();
    if (child) child->CloseStdin();
  }

  // A call the model made, within the server's call timeout.
  Result<Json> CallForModel(std::string_view method, const Json& params,
                            const std::atomic<bool>* cancelled) {
    const milliseconds limit =
        config.call_timeout.count() > 0 ? config.call_timeout : options.call_timeout;
    return Call(method, params, Clock::now() + limit, cancelled,
                fmt::format(" (after {:g} s; a server's \"timeout\" in mcp.json sets its limit, "
                            "in seconds)",
                            limit.count() / 1000.0));
  }

  std::string StderrTail() const {
    std::lock_guard lock(mutex);
    return stderr_tail;
  }

  // Why the server is unusable, with what it last wrote to stderr.
  std::string Explain(std::string_view why) const {
    return WithStderr("MCP server '" + config.name + "': " + std::string(why));
  }
  // `text` and, unless it has them already, the last lines the server wrote to stderr.
  std::string WithStderr(std::string text) const {
    constexpr std::string_view kMarker = "; its stderr ends: ";
    std::string tail = StderrTail();
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
    if (!tail.empty() && text.find(kMarker) == std::string::npos) {
      text += std::string(kMarker) + tail.substr(tail.size() > 500 ? tail.size() - 500 : 0);
    }
    return text;
  }

  void DrainStderr() {
    char buffer[4096];
    while (!is_stopping) {
      pollfd fd{child->stderr_fd(), POLLIN, 0};
      int ready = ::poll(&fd, 1, 100);
      if (ready <= 0) continue;
      ssize_t n = ::read(child->stderr_fd(), buffer, sizeof buffer);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {  // The server and everything it started closed stderr.
        std::lock_guard lock(mutex);
        is_stderr_closed = true;
        started_changed.notify_all();
        return;
      }
      std::lock_guard lock(mutex);
      stderr_tail.append(buffer, static_cast<size_t>(n));
      if (stderr_tail.size() > kStderrTailBytes) {
        stderr_tail.erase(0, stderr_tail.size() - kStderrTailBytes);
      }
    }
  }

  void Start() {
    Status started = Connect();
    if (started.ok()) {
      is_connected = true;
      spdlog::info("MCP server '{}' connected: {} tools, {} resources", config.name,
                   info.tools.size(), info.resources.size());
    } else if (started.error().code() == ErrorCode::kUnavailable && stderr_reader.joinable()) {
      // It exited: what it said on the way out explains it best, so give stderr a moment.
      {
        std::unique_lock lock(mutex);
        started_changed.wait_for(lock, milliseconds(500), [&] { return is_stderr_closed; });
      }
      failure = WithStderr(started.error().message());
    } else {
      failure = started.error().message();
    }
    if (!failure.empty()) spdlog::warn("{}", failure);
    std::lock_guard lock(mutex);
    is_started = true;
    started_changed.notify_all();
  }

  Status Connect() {
    const Clock::time_point deadline = Clock::now() + options.start_timeout;
    workspace::ChildOptions child_options;
    auto expand = [this](const std::string& text) { return ExpandVariables(text, options.cwd); };
    for (const std::string& entry : config.env) child_options.env.push_back(expand(entry));
    auto is_set = [&](std::string_view name) {
      return std::any_of(config.env.begin(), config.env.end(), [&](const std::string& entry) {
        return entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=';
      });
    };
    for (const char* name : kInheritedEnv) {
      const char* value = std::getenv(name);
      if (value != nullptr && !is_set(name)) {
        child_options.env.push_back(std::string(name) + "=" + value);
      }
    }
    child_options.argv.push_back(ProgramOnPath(expand(config.command), child_options.env));
    for (const std::string& arg : config.args) child_options.argv.push_back(expand(arg));
    child_options.cwd = config.cwd.empty() ? options.cwd : expand(config.cwd);
    Result<std::unique_ptr<workspace::Child>> started = workspace::Child::Start(child_options);
    if (!started.ok()) return Error(started.error().code(), Explain(started.error().message()));
    child = std::move(*started);
    stderr_reader = std::thread([this] { DrainStderr(); });
    transport = std::make_unique<rpc::StdioTransport>(child->stdout_fd(), child->stdin_fd());
    rpc::PeerOptions peer_options;
    peer_options.name = "mcp " + config.name;
    peer_options.max_handler_threads = 2;
    peer_options.sends_cancel_requests = false;  // MCP's is notifications/cancelled.
    peer = std::make_unique<rpc::Peer>(*transport, peer_options);
    peer->HandleRequest("ping", [](std::string_view, const rpc::RequestContext&) {
      return Result<std::string>(std::string("{}"));
    });
    peer->OnClose([this] { is_connected = false; });
    RETURN_IF_ERROR(transport->Start(*peer));

    Json initialize = {{"protocolVersion", kProtocolVersion},
                       {"capabilities", Json::object()},
                       {"clientInfo", {{"name", "lapce-ai"}, {"version", options.client_version}}}};
    ASSIGN_OR_RETURN(Json result, Call("initialize", initialize, deadline, nullptr));
    std::string version = OptionalString(result, "protocolVersion");
    if (std::find(std::begin(kKnownVersions), std::end(kKnownVersions), version) ==
        std::end(kKnownVersions)) {
      return Error(ErrorCode::kProtocol, Explain("it speaks MCP version '" + version +
                                                 "'; lapce-ai speaks 2024-11-05 to 2025-11-25"));
    }
    info.name = config.name;
    info.command = config.command;
    for (const std::string& arg : config.args) info.command += " " + arg;
    info.instructions = OptionalString(result, "instructions");
    Status initialized = peer->Notify("notifications/initialized", "");
    if (!initialized.ok())
      return Error(initialized.error().code(), Explain(initialized.error().message()));

    const Json capabilities = result.value("capabilities", Json::object());
    if (capabilities.is_object() && capabilities.contains("tools")) {
      RETURN_IF_ERROR(List("tools/list", "tools", deadline, [&](const Json& tool) {
        if (!tool.is_object() || OptionalString(tool, "name").empty()) return;
        agent::McpTool entry;
        entry.name = tool["name"].get<std::string>();
        const std::vector<std::string>& off = config.disabled_tools;
        if (std::find(off.begin(), off.end(), entry.name) != off.end()) return;
        entry.description = OptionalString(tool, "description");
        auto schema = tool.find("inputSchema");
        entry.input_schema = schema != tool.end() && schema->is_object() ? schema->dump() : "{}";
        const std::vector<std::string>& allowed = config.always_allow;
        entry.always_allow = std::find(allowed.begin(), allowed.end(), entry.name) != allowed.end();
        info.tools.push_back(std::move(entry));
      }));
    }
    if (capabilities.is_object() && capabilities.contains("resources")) {
      // Resources are optional: a server whose list fails keeps its tools, as in Kilo Code.
      Status listed = List("resources/list", "resources", deadline, [&](const Json& resource) {
        if (!resource.is_object() || OptionalString(resource, "uri").empty()) return;
        agent::McpResource entry;
        entry.uri = resource["uri"].get<std::string>();
        entry.name = OptionalString(resource, "name");
        entry.description = OptionalString(resource, "description");
        entry.mime_type = OptionalString(resource, "mimeType");
        info.resources.push_back(std::move(entry));
      });
      if (!listed.ok()) {
        info.resources.clear();
        spdlog::warn("MCP server '{}': {}; its resources are left out", config.name,
                     listed.error().message());
      };
    }
    return OkStatus();
  }

  // Every page of a list method, each item of `field` to `add`.
  template <typename Add>
  Status List(const char* method, const char* field, Clock::time_point deadline, Add&& add) {
    std::string cursor;
    for (int page = 0; page < kMaxListPages; ++page) {
      Json params = Json::object();
      if (!cursor.empty()) params["cursor"] = cursor;
      ASSIGN_OR_RETURN(Json result, Call(method, params, deadline, nullptr));
      if (auto items = result.find(field); items != result.end() && items->is_array()) {
        for (const Json& item : *items) add(item);
      }
      cursor = OptionalString(result, "nextCursor");
      if (cursor.empty()) return OkStatus();
    }
    return OkStatus();
  }

  // One request: its result object, or an error that names the server. Gives up at `deadline`
  // or when `cancelled` turns true, telling the server (notifications/cancelled); a timeout's
  // error says `timeout_note` after "timed out".
  Result<Json> Call(std::string_view method, const Json& params, Clock::time_point deadline,
                    const std::atomic<bool>* cancelled, std::string_view timeout_note = {}) {
    struct Reply {
      std::mutex mutex;
      std::condition_variable arrived;
      std::optional<Result<std::string>> result;
    };
    auto reply = std::make_shared<Reply>();
    int64_t id = peer->RequestAsync(method, params.dump(), [reply](Result<std::string> result) {
      std::lock_guard lock(reply->mutex);
      reply->result = std::move(result);
      reply->arrived.notify_all();
    });
    std::unique_lock lock(reply->mutex);
    while (!reply->result) {
      const bool is_cancelled = (cancelled != nullptr && cancelled->load()) || is_stopping;
      if (is_cancelled || Clock::now() >= deadline) {
        lock.unlock();
        if (id != 0) {
          peer->CancelOutgoing(id);
          (void)peer->Notify("notifications/cancelled",
                             Json{{"requestId", id},
                                  {"reason", is_cancelled ? "cancelled by the user" : "timed out"}}
                                 .dump());
        }
        if (is_cancelled)
          return Error(ErrorCode::kCancelled, Explain(std::string(method) + " cancelled"));
        return Error(ErrorCode::kTimeout,
                     Explain(std::string(method) + " timed out" + std::string(timeout_note)));
      }
      reply->arrived.wait_for(lock, milliseconds(50));
    }
    Result<std::string> text = std::move(*reply->result);
    lock.unlock();
    if (!text.ok()) {
      if (text.error().code() == ErrorCode::kUnavailable) {
        return Error(ErrorCode::kUnavailable,
                     Explain("it stopped before answering " + std::string(method)));
      }
      return Error(text.error().code(), Explain(text.error().message()));
    }
    Json result = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (!result.is_object()) {
      return Error(ErrorCode::kProtocol,
                   Explain(std::string(method) + " answered with something other than an object"));
    }
    return result;
  }
};

namespace {

class CombinedMcpServers final : public agent::McpServers {
 public:
  explicit CombinedMcpServers(std::vector<std::shared_ptr<agent::McpServers>> parts)
      : parts_(std::move(parts)) {}

  std::vector<agent::McpServerInfo> Servers() const override {
    std::call_once(routed_, [this] {
      for (size_t part = 0; part < parts_.size(); ++part) {
        for (agent::McpServerInfo& server : parts_[part]->Servers()) {
          if (std::any_of(servers_.begin(), servers_.end(),
                          [&](const auto& known) { return known.name == server.name; })) {
            continue;
          }
          owners_.push_back(part);
          servers_.push_back(std::move(server));
        }
      }
    });
    return servers_;
  }
  bool IsReady() const override {
    return std::all_of(
        parts_.begin(), parts_.end(),
        [](const std::shared_ptr<agent::McpServers>& part) { return part->IsReady(); });
  }
  std::vector<std::string> Failures() const override {
    std::vector<std::string> failures;
    for (const std::shared_ptr<agent::McpServers>& part : parts_) {
      for (std::string& failure : part->Failures()) failures.push_back(std::move(failure));
    }
    return failures;
  }
  Result<agent::McpOutcome> CallTool(std::string_view server, std::string_view tool,
                                     std::string_view arguments_json,
                                     const std::atomic<bool>* cancelled) override {
    ASSIGN_OR_RETURN(agent::McpServers * owner, Owner(server));
    return owner->CallTool(server, tool, arguments_json, cancelled);
  }
  Result<agent::McpOutcome> ReadResource(std::string_view server, std::string_view uri,
                                         const std::atomic<bool>* cancelled) override {
    ASSIGN_OR_RETURN(agent::McpServers * owner, Owner(server));
    return owner->ReadResource(server, uri, cancelled);
  }

 private:
  Result<agent::McpServers*> Owner(std::string_view server) const {
    Servers();
    for (size_t i = 0; i < servers_.size(); ++i) {
      if (servers_[i].name == server) return parts_[owners_[i]].get();
    }
    return Error(ErrorCode::kNotFound, "no MCP server named '" + std::string(server) + "'");
  }

  const std::vector<std::shared_ptr<agent::McpServers>> parts_;
  mutable std::once_flag routed_;
  mutable std::vector<agent::McpServerInfo> servers_;  // Written once, under routed_.
  mutable std::vector<size_t> owners_;                 // The part of each of servers_.
};

}  // namespace

std::shared_ptr<agent::McpServers> CombineMcpServers(
    std::vector<std::shared_ptr<agent::McpServers>> parts) {
  std::erase(parts, nullptr);
  if (parts.empty()) return nullptr;
  if (parts.size() == 1) return parts[0];
  return std::make_shared<CombinedMcpServers>(std::move(parts));
}

std::shared_ptr<McpHub> McpHub::Start(std::vector<McpServerConfig> configs, McpOptions options) {
  std::shared_ptr<McpHub> hub(new McpHub());
  hub->options_ = options;
  for (McpServerConfig& config : configs) {
    auto connection = std::make_unique<Connection>();
    connection->config = std::move(config);
    connection->options = options;
    hub->connections_.push_back(std::move(connection));
  }
  for (const std::unique_ptr<Connection>& connection : hub->connections_) {
    connection->starter = std::thread([raw = connection.get()] { raw->Start(); });
  }
  return hub;
}

McpHub::~McpHub() {
  // Every server hears end of input before any is waited for, so they exit together.
  for (const std::unique_ptr<Connection>& connection : connections_) connection->BeginStop();
  connections_.clear();
}

std::vector<agent::McpServerInfo> McpHub::Servers() const {
  std::vector<agent::McpServerInfo> servers;
  for (const std::unique_ptr<Connection>& connection : connections_) {
    std::unique_lock lock(connection->mutex);
    connection->started_changed.wait(lock, [&] { return connection->is_started; });
    if (connection->is_connected) servers.push_back(connection->info);
  }
  return servers;
}

bool McpHub::IsReady() const {
  for (const std::unique_ptr<Connection>& connection : connections_) {
    std::lock_guard lock(connection->mutex);
    if (!connection->is_started) return false;
  }
  return true;
}

std::vector<std::string> McpHub::Failures() const {
  std::vector<std::string> failures;
  for (const std::unique_ptr<Connection>& connection : connections_) {
    std::lock_guard lock(connection->mutex);
    if (connection->is_started && !connection->failure.empty()) {
      failures.push_back(connection->failure);
    }
  }
  return failures;
}

Result<McpHub::Connection*> McpHub::Connected(std::string_view name) const {
  for (const std::unique_ptr<Connection>& connection : connections_) {
    if (connection->config.name != name) continue;
    std::string failure;
    {
      std::unique_lock lock(connection->mutex);
      connection->started_changed.wait(lock, [&] { return connection->is_started; });
      failure = connection->failure;
    }
    if (connection->is_connected) return connection.get();
    if (!failure.empty()) return Error(ErrorCode::kUnavailable, failure);
    return Error(ErrorCode::kUnavailable,
                 connection->Explain("it stopped earlier and is not running; it starts again "
                                     "with the next editor connection or lapce-ai command"));
  }
  return Error(ErrorCode::kNotFound, "no MCP server named '" + std::string(name) + "'");
}

Result<agent::McpOutcome> McpHub::CallTool(std::string_view server, std::string_view tool,
                                           std::string_view arguments_json,
                                           const std::atomic<bool>* cancelled) {
  ASSIGN_OR_RETURN(Connection * connection, Connected(server));
  Json arguments = Json::parse(arguments_json, nullptr, /*allow_exceptions=*/false);
  if (!arguments.is_object()) {
    return Error(ErrorCode::kInvalidArgument, "MCP tool arguments must be a JSON object");
  }
  ASSIGN_OR_RETURN(Json result,
                   connection->CallForModel("tools/call",
                                            {{"name", tool}, {"arguments", arguments}}, cancelled));
  agent::McpOutcome outcome;
  outcome.is_error = result.value("isError", false);
  outcome.text = JoinBlocks(result.value("content", Json::array()));
  if (outcome.text.empty() && result.contains("structuredContent")) {
    outcome.text = result["structuredContent"].dump();
  }
  Cap(outcome.text, options_.max_result_bytes);
  return outcome;
}

Result<agent::McpOutcome> McpHub::ReadResource(std::string_view server, std::string_view uri,
                                               const std::atomic<bool>* cancelled) {
  ASSIGN_OR_RETURN(Connection * connection, Connected(server));
  ASSIGN_OR_RETURN(Json result,
                   connection->CallForModel("resources/read", {{"uri", uri}}, cancelled));
  agent::McpOutcome outcome;
  outcome.text = JoinBlocks(result.value("contents", Json::array()));
  Cap(outcome.text, options_.max_result_bytes);
  return outcome;
}

}  // namespace lai::server
