#include "server/acp_agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>
#include <vector>

#include "agent/mentions.h"
#include "agent/modes.h"
#include "agent/session.h"
#include "agent/store.h"
#include "base/json_text.h"
#include "base/strings.h"
#include "llm/pool.h"
#include "rpc/peer.h"
#include "server/ai_protocol.h"
#include "server/mcp_client.h"
#include "workspace/workspace.h"

namespace lai::server {
namespace {

using nlohmann::json;

constexpr int kProtocolVersion = 1;

Error BadParams(std::string_view method, std::string_view what) {
  return Error(ErrorCode::kInvalidArgument, std::string(method) + ": " + std::string(what));
}

// Parses params as an object; nlohmann's exceptions stay here.
Result<json> ParseParams(std::string_view method, std::string_view params_json) {
  json params = json::parse(params_json, nullptr, /*allow_exceptions=*/false);
  if (!params.is_object()) return BadParams(method, "params must be an object");
  return params;
}

Result<std::string> StringField(std::string_view method, const json& params, const char* name) {
  auto it = params.find(name);
  if (it == params.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
    return BadParams(method, std::string("'") + name + "' must be a non-empty string");
  }
  return it->get<std::string>();
}

json ModesJson(const agent::Session& session) {
  json available = json::array();
  const std::string current = session.Info().mode;
  bool has_current = false;
  for (const agent::ModeConfig& mode : session.Modes()) {
    json entry = {{"id", mode.slug}, {"name", mode.name}};
    std::string description = !mode.description.empty() ? mode.description : mode.when_to_use;
    if (!description.empty()) entry["description"] = description;
    available.push_back(std::move(entry));
    has_current = has_current || mode.slug == current;
  }
  // A loaded session may be in a mode its files no longer define: the client is told which, as
  // one of the modes, so its selector shows the state; prompting in it fails until another is
  // chosen.
  if (!has_current) {
    available.push_back({{"id", current},
                         {"name", current + " (not defined)"},
                         {"description",
                          "No longer defined in .kilocodemodes or the global modes file; choose "
                          "another mode to go on."}});
  }
  return {{"currentModeId", current}, {"availableModes", std::move(available)}};
}

// "file:///a/b%20c" → "/a/b c" (also file://localhost/…; a ?query or #L10:20 fragment, as Zed
// sends for a selection, is not part of the path); empty when not a local file URI.
std::string PathOfFileUri(std::string_view uri) {
  constexpr std::string_view kScheme = "file://";
  if (!uri.starts_with(kScheme)) return {};
  uri.remove_prefix(kScheme.size());
  if (uri.starts_with("localhost/")) uri.remove_prefix(std::string_view("localhost").size());
  if (!uri.starts_with('/')) return {};
  uri = uri.substr(0, uri.find_first_of("?#"));
  std::string path;
  for (size_t i = 0; i < uri.size(); ++i) {
    if (uri[i] == '%' && i + 2 < uri.size() && std::isxdigit(uri[i + 1]) &&
        std::isxdigit(uri[i + 2])) {
      path += static_cast<char>(std::stoi(std::string(uri.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      path += uri[i];
    }
  }
  return path;
}

// `path` (absolute) from the workspace root `workspace` (canonical), when it lies inside: also
// through "//", ".." and links (a workspace opened through a linked directory names its files
// through the link). Empty when outside.
std::string InWorkspace(const std::string& path, const std::string& workspace) {
  namespace fs = std::filesystem;
  for (bool canonical : {false, true}) {
    std::error_code error;
    std::string seen = canonical ? fs::weakly_canonical(path, error).string()
                                 : fs::path(path).lexically_normal().string();
    if (error) continue;
    if (seen.starts_with(workspace + "/") && seen.size() > workspace.size() + 1) {
      return seen.substr(workspace.size() + 1);
    }
  }
  return {};
}

// The prompt's content blocks as the text a session takes: text as is, links to files as
// @mentions (expanded by the session), embedded resources inline.
Result<std::string> PromptText(const json& prompt, const std::string& workspace) {
  if (!prompt.is_array()) return BadParams("session/prompt", "'prompt' must be an array");
  std::string text;
  std::optional<Result<std::shared_ptr<const workspace::Workspace>>> rules;  // Opened when needed.
  for (size_t i = 0; i < prompt.size(); ++i) {
    const json& block = prompt[i];
    std::string type = block.is_object() ? block.value("type", "") : "";
    auto separate = [&] {
      if (!text.empty() && text.back() != '\n' && text.back() != ' ') text += ' ';
    };
    if (type == "text") {
      text += block.value("text", "");
    } else if (type == "resource_link") {
      std::string path = PathOfFileUri(block.value("uri", ""));
      separate();
      std::string mention;
      if (std::string relative = path.empty() ? "" : InWorkspace(path, workspace);
          !relative.empty()) {
        mention = agent::MentionOf(relative);
      }
      text += !mention.empty() ? mention : block.value("uri", "");
      text += ' ';
    } else if (type == "resource") {
      const json& resource = block.contains("resource") ? block["resource"] : json::object();
      separate();
      // Named as read_file and @mentions name files: from the workspace root when inside it.
      std::string name = resource.value("uri", "");
      std::string content = resource.value("text", "");
      if (std::string path = PathOfFileUri(name),
          relative = path.empty() ? "" : InWorkspace(path, workspace);
          !relative.empty()) {
        name = std::move(relative);
        // An editor embeds the files the user mentions: .kilocodeignore holds for them as for
        // an @mention typed.
        if (!rules) rules = workspace::Workspace::Open(workspace);
        if (!rules->ok()) return std::move(*rules).error();
        Result<workspace::ResolvedPath> resolved = (**rules)->Resolve(name, false);
        if (resolved.ok() && (**rules)->IsBlocked(*resolved)) {
          content =
              "(Not included: '" + name + "' is blocked by the .kilocodeignore file settings.)";
        }
      }
      text += "\n<file_content path=\"" + name + "\">\n" + content + "\n</file_content>\n";
    } else if (type == "image" || type == "audio") {
      return BadParams("session/prompt", "prompt[" + std::to_string(i) + "] is " + type +
                                             ", which this agent does not accept "
                                             "(promptCapabilities)");
    } else {
      return BadParams("session/prompt",
                       "prompt[" + std::to_string(i) + "] has unknown type '" + type + "'");
    }
  }
  return text;
}

}  // namespace

struct AcpAgent::Impl : agent::SessionClient, agent::FileAccess, agent::CommandRunner {
  EngineSource engine_source;
  rpc::Peer& peer;
  AcpAgentOptions agent_options;
  std::mutex mutex;
  bool client_reads_files = false;       // Guarded by mutex.
  bool client_writes_files = false;      // Guarded by mutex.
  bool client_has_terminal = false;      // Guarded by mutex.
  std::vector<std::string> session_ids;  // Sessions this connection opened; guarded by mutex.
  // The user's servers (mcp.json) started for this connection's sessions, by workspace and by
  // the servers the client replaced: sessions alike share them. Guarded by mutex.
  std::unordered_map<std::string, std::shared_ptr<agent::McpServers>> user_mcp;
  // The running prompt of each session: cancelling it cancels the session's turn and every request
  // the turn has open in the editor (fs/*, terminal/create). Guarded by mutex.
  std::unordered_map<std::string, std::shared_ptr<rpc::CancelSignal>> turns;
  size_t running_prompts = 0;  // session/prompt requests being handled; guarded by mutex.
  // The signal of each session's last session/prompt request, from when it arrived (before its
  // handler runs and registers in `turns`): a session/cancel right behind it was lost. Guarded
  // by mutex.
  std::unordered_map<std::string, std::weak_ptr<rpc::CancelSignal>> received_prompts;
  // Where each session's shown text stands, for separating replies (OnUpdate). Guarded by mutex.
  enum class TextState { kNone, kInReply, kReplyEnded };
  std::unordered_map<std::string, TextState> text_states;
  // The output so far of each command running here (the editor has no terminal), by tool call
  // id, and when its card last showed it (OnToolOutput). Guarded by mutex.
  struct LiveOutput {
    std::string text;
    bool is_cut = false;  // Its start was dropped.
    std::chrono::steady_clock::time_point shown;
  };
  std::unordered_map<std::string, LiveOutput> live_outputs;
  // "<session id>\n<tool call id>" → the editor's terminal that ran the call's command.
  std::unordered_map<std::string, std::string> call_terminals;
  // The session whose turn runs on this thread, and its signal (set around session->Prompt).
  thread_local static const std::string* current_session;
  thread_local static const rpc::CancelSignal* current_cancel;

  Impl(EngineSource engine_in, rpc::Peer& peer_in, AcpAgentOptions options_in)
      : engine_source(std::move(engine_in)), peer(peer_in), agent_options(std::move(options_in)) {}

  // The engine, or why there is none (no usable provider profile, an unusable session store).
  Result<agent::Engine*> Engine() {
    Result<agent::Engine*> engine = engine_source();
    if (!engine.ok()) {
      return Error(ErrorCode::kUnavailable,
                   "the agent is not available: " + engine.error().message());
    }
    return engine;
  }
  // The engine if it is ready and usable, else nullptr (for notifications, which cannot fail).
  agent::Engine* EngineIfAny() {
    Result<agent::Engine*> engine = engine_source();
    return engine.ok() ? *engine : nullptr;
  }

  // Sends one session/update notification of `acp_json` (an update object, as ToAcpJson writes).
  Status NotifyUpdate(const std::string& session_id, std::string_view acp_json) {
    std::string params;
    params.reserve(session_id.size() + acp_json.size() + 32);
    params += R"({"sessionId":)";
    AppendJsonEscaped(params, session_id);  // Ours: ASCII.
    params += R"(,"update":)";
    params += acp_json;
    params += '}';
    return peer.Notify("session/update", params);
  }

  // ---- SessionClient
  void OnUpdate(const std::string& session_id, const agent::SessionUpdate& update,
                std::string_view acp_json) override {
    // The client shows the prompt it sent; echoing it during the turn makes clients that append
    // user chunks to the last user entry (Zed) show it twice. session/load replays send it.
    if (update.kind == agent::SessionUpdate::Kind::kUserMessageChunk &&
        current_session != nullptr) {
      return;
    }
    // The editor shows a turn's text as one message: a reply's text that follows another reply's
    // (no tool call between) starts a paragraph of its own, as in the terminal; they ran
    // together ("…in code(default reply)(default reply)").
    using Kind = agent::SessionUpdate::Kind;
    std::string separated;
    {
      std::lock_guard lock(mutex);
      if (update.kind == Kind::kToolCallUpdate && update.tool.status &&
          (*update.tool.status == agent::ToolStatus::kCompleted ||
           *update.tool.status == agent::ToolStatus::kFailed)) {
        live_outputs.erase(update.tool.id);
        // A command the editor ran keeps its terminal in the card: the final content replaces
        // what the card showed, and the terminal went with it.
        auto terminal = call_terminals.find(session_id + '\n' + update.tool.id);
        if (terminal != call_terminals.end()) {
          if (!update.tool.content.empty()) {
            agent::SessionUpdate copy = update;
            agent::ToolCallContent content;
            content.kind = agent::ToolCallContent::Kind::kTerminal;
            content.terminal_id = terminal->second;
            copy.tool.content.insert(copy.tool.content.begin(), std::move(content));
            separated = agent::ToAcpJson(copy);
            acp_json = separated;
          }
          call_terminals.erase(terminal);
        }
      }
      TextState& state = text_states[session_id];
      if (update.kind == Kind::kAgentMessageChunk && !update.text.empty()) {
        if (state == TextState::kReplyEnded && !update.text.starts_with('\n')) {
          agent::SessionUpdate copy = update;
          copy.text = "\n\n" + update.text;
          separated = agent::ToAcpJson(copy);
          acp_json = separated;
        }
        state = TextState::kInReply;
      } else if (update.kind == Kind::kUsageUpdate) {  // Sent at the end of each reply.
        if (state == TextState::kInReply) state = TextState::kReplyEnded;
      } else if (update.kind != Kind::kAgentThoughtChunk &&
                 update.kind != Kind::kSessionInfoUpdate) {
        state = TextState::kNone;
      }
    }
    Status sent = NotifyUpdate(session_id, acp_json);
    if (!sent.ok() && sent.code() == ErrorCode::kResourceExhausted &&
        (update.kind == Kind::kToolCall || update.kind == Kind::kToolCallUpdate)) {
      // Too large for the editor's connection (the diff or arguments of a big edit): the card
      // still gets its title, status and end, without them.
      json smaller = json::parse(acp_json, nullptr, false);
      if (smaller.is_object()) {
        smaller.erase("rawInput");
        smaller.erase("rawOutput");
        smaller["content"] = json::array(
            {{{"type", "content"},
              {"content",
               {{"type", "text"}, {"text", "(Too large to show over this editor connection.)"}}}}});
        ShortenTitle(smaller);
        json retry = {{"sessionId", session_id}, {"update", std::move(smaller)}};
        sent = peer.Notify("session/update", retry.dump());
      }
    }
    if (!sent.ok() && sent.code() == ErrorCode::kResourceExhausted &&
        (update.kind == Kind::kAgentMessageChunk || update.kind == Kind::kAgentThoughtChunk ||
         update.kind == Kind::kUserMessageChunk)) {
      // Text adds up: sent in pieces that fit (it was dropped, live and by session/load).
      json chunk = json::parse(acp_json, nullptr, false);
      const json* content = chunk.is_object() ? &chunk["content"] : nullptr;
      if (content != nullptr && content->is_object() && content->contains("text") &&
          (*content)["text"].is_string()) {
        sent = NotifyTextInPieces(session_id, update.kind, (*content)["text"].get<std::string>());
      }
    }
    if (!sent.ok()) {
      spdlog::log(
          sent.code() == ErrorCode::kResourceExhausted ? spdlog::level::warn : spdlog::level::debug,
          "acp: session/update not sent: {}", sent.error().message());
    }
  }

  // A tool card's title cut to a line's length (a command's title is the whole command).
  static void ShortenTitle(json& tool) {
    constexpr size_t kLongest = 200;
    auto title = tool.find("title");
    if (title == tool.end() || !title->is_string()) return;
    const std::string& text = title->get_ref<const std::string&>();
    if (text.size() > kLongest) *title = Shortened(text, kLongest);
  }

  // `text` as chunks of `kind`, halved until each fits the connection's message limit.
  Status NotifyTextInPieces(const std::string& session_id, agent::SessionUpdate::Kind kind,
                            std::string_view text) {
    constexpr size_t kSmallest = 1024;  // A limit this small is not a connection's.
    if (text.size() < 2 * kSmallest) {
      return Error(ErrorCode::kResourceExhausted,
                   "a text chunk of " + std::to_string(text.size()) +
                       " bytes is over this connection's message limit");
    }
    const size_t half = Utf8CutPosition(text, text.size() / 2);
    for (std::string_view piece : {text.substr(0, half), text.substr(half)}) {
      agent::SessionUpdate update;
      update.kind = kind;
      update.text = std::string(piece);
      Status sent = NotifyUpdate(session_id, agent::ToAcpJson(update));
      if (!sent.ok() && sent.code() == ErrorCode::kResourceExhausted) {
        sent = NotifyTextInPieces(session_id, kind, piece);
      }
      if (!sent.ok()) return sent;
    }
    return OkStatus();
  }

  agent::PermissionReply RequestPermission(const std::string& session_id,
                                           const agent::PermissionRequest& request,
                                           const std::atomic<bool>& cancelled) override {
    json options = json::array();
    options.push_back({{"optionId", "allow-once"}, {"name", "Allow once"}, {"kind", "allow_once"}});
    if (request.can_always) {
      options.push_back(
          {{"optionId", "allow-always"}, {"name", "Always allow"}, {"kind", "allow_always"}});
    }
    options.push_back({{"optionId", "reject-once"}, {"name", "Reject"}, {"kind", "reject_once"}});
    if (request.can_always) {
      options.push_back(
          {{"optionId", "reject-always"}, {"name", "Always reject"}, {"kind", "reject_always"}});
    }
    agent::SessionUpdate call;
    call.kind = agent::SessionUpdate::Kind::kToolCallUpdate;
    call.tool = request.tool;
    json tool = json::parse(agent::ToAcpJson(call));
    tool.erase("sessionUpdate");
    json params = {{"sessionId", session_id}, {"toolCall", std::move(tool)}, {"options", options}};

    struct Wait {
      std::mutex mutex;
      std::condition_variable done;
      std::optional<Result<std::string>> outcome;
    };
    std::shared_ptr<Wait> wait;
    // Twice at most: a question too large for the editor's connection (the diff of a big file)
    // is asked again without its diff and raw arguments, rather than taken for an answer.
    for (int attempt = 0; attempt < 2; ++attempt) {
      wait = std::make_shared<Wait>();
      int64_t id = peer.RequestAsync("session/request_permission", params.dump(),
                                     [wait](Result<std::string> outcome) {
                                       std::lock_guard lock(wait->mutex);
                                       wait->outcome = std::move(outcome);
                                       wait->done.notify_one();
                                     });
      std::unique_lock lock(wait->mutex);
      while (!wait->outcome) {
        if (cancelled.load()) {
          lock.unlock();
          // The client still answers, with `cancelled`.
          if (id != 0) peer.CancelOutgoing(id);
          return {agent::PermissionOutcome::kCancelled, {}};
        }
        wait->done.wait_for(lock, std::chrono::milliseconds(20));
      }
      if (wait->outcome->ok() || wait->outcome->error().code() != ErrorCode::kResourceExhausted) {
        break;
      }
      params["toolCall"].erase("rawInput");  // The edit's arguments hold the new text too.
      params["toolCall"]["content"] = json::array(
          {{{"type", "content"},
            {"content",
             {{"type", "text"},
              {"text", "(The diff is too large to show over this editor connection.)"}}}}});
      ShortenTitle(params["toolCall"]);  // A command's title is the whole command.
    }
    agent::PermissionReply reply;  // kCancelled.
    if (!wait->outcome->ok()) {
      // The editor has gone: nobody can answer, and the turn ends.
      if (wait->outcome->error().code() == ErrorCode::kUnavailable) return reply;
      // The editor answered with an error (it cannot ask, say): nobody allowed the call, and
      // nobody cancelled the turn either; the model hears that the question failed (it was
      // told the user denied it).
      spdlog::warn("acp: permission request failed: {}", wait->outcome->error().message());
      reply.outcome = agent::PermissionOutcome::kRejectOnce;
      reply.feedback = "(Not the user's answer: the editor could not ask the question (" +
                       wait->outcome->error().message() +
                       "). Make the call smaller, or ask the user how to go on.)";
      return reply;
    }
    json result = json::parse(**wait->outcome, nullptr, false);
    if (!result.is_object() || !result.contains("outcome") || !result["outcome"].is_object()) {
      spdlog::warn("acp: permission reply without an outcome object: {}", **wait->outcome);
      reply.outcome = agent::PermissionOutcome::kRejectOnce;
      return reply;
    }
    const json& outcome = result["outcome"];
    if (outcome.value("outcome", "") != "selected") return reply;
    std::string option = outcome.value("optionId", "");
    if (option == "allow-once")
      reply.outcome = agent::PermissionOutcome::kAllowOnce;
    else if (option == "allow-always")
      reply.outcome = agent::PermissionOutcome::kAllowAlways;
    else if (option == "reject-once")
      reply.outcome = agent::PermissionOutcome::kRejectOnce;
    else if (option == "reject-always")
      reply.outcome = agent::PermissionOutcome::kRejectAlways;
    else
      reply.outcome = agent::PermissionOutcome::kRejectOnce;  // Unknown: the safe answer.
    if (result.contains("_meta") && result["_meta"].is_object()) {
      reply.feedback = result["_meta"].value("feedback", "");
    }
    return reply;
  }

  agent::FileAccess* files() override {
    std::lock_guard lock(mutex);
    return client_reads_files && client_writes_files ? this : nullptr;
  }

  agent::CommandRunner* commands() override {
    std::lock_guard lock(mutex);
    return client_has_terminal ? this : nullptr;
  }

  // A retry or a fallback, said where the user reads the answer (it came only to the editor's
  // log, and the session showed nothing for as long as the wait): a paragraph of the reply,
  // before any of its text.
  void OnRetrying(const std::string& session_id, const std::string& notice) override {
    // As any text of the reply (a paragraph of its own after an earlier reply, as a replay has
    // it; live, it ran on after the text before).
    ShowAsReplyText(session_id, notice);
  }

  // A command run here (the editor has no terminal: with one, it runs there, shown live): its
  // output's last 16 KiB is shown in the call's card as it comes, at most five times a second.
  // Live only, not stored: the card's last update, stored, has the result.
  void OnToolOutput(const std::string& session_id, const std::string& tool_call_id,
                    std::string_view chunk) override {
    constexpr size_t kShownBytes = 16 * 1024;
    agent::ToolCallContent shown;
    {
      std::lock_guard lock(mutex);
      if (client_has_terminal) return;
      LiveOutput& live = live_outputs[tool_call_id];
      live.text.append(chunk);
      if (live.text.size() > 2 * kShownBytes) {
        live.text.erase(0, live.text.size() - kShownBytes);
        live.is_cut = true;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - live.shown < std::chrono::milliseconds(200)) return;
      live.shown = now;
      size_t start = live.text.size() > kShownBytes ? live.text.size() - kShownBytes : 0;
      while (start < live.text.size() &&
             (static_cast<unsigned char>(live.text[start]) & 0xC0) == 0x80) {
        ++start;  // Not inside a character.
      }
      shown.text = (live.is_cut || start > 0 ? "…\n" : "") + ValidUtf8(live.text.substr(start));
    }
    agent::SessionUpdate update;
    update.kind = agent::SessionUpdate::Kind::kToolCallUpdate;
    update.tool.id = tool_call_id;
    update.tool.content.push_back(std::move(shown));
    Status sent = NotifyUpdate(session_id, agent::ToAcpJson(update));
    if (!sent.ok()) spdlog::debug("acp: live output not sent: {}", sent.error().message());
  }

  // ---- CommandRunner through terminal/*: the editor runs the command and shows it live.
  Result<workspace::CommandOutcome> Run(std::string_view command,
                                        const workspace::CommandOptions& options,
                                        std::string_view call_id) override {
    if (current_session == nullptr) return Error(ErrorCode::kInternal, "terminal outside a turn");
    const std::string& session_id = *current_session;
    const char* shell = std::getenv("SHELL");
    json create = {{"sessionId", session_id},
                   {"command", shell != nullptr && shell[0] == '/' ? shell : "/bin/sh"},
                   {"args", {"-c", command}},
                   {"cwd", options.cwd},
                   {"outputByteLimit", 1 << 20}};
    ASSIGN_OR_RETURN(std::string created, CreateTerminal(session_id, create.dump()));
    json created_json = json::parse(created, nullptr, false);
    if (!created_json.is_object() || !created_json.contains("terminalId") ||
        !created_json["terminalId"].is_string()) {
      return Error(ErrorCode::kProtocol, "terminal/create: the editor's reply has no terminalId");
    }
    std::string terminal_id = created_json["terminalId"].get<std::string>();
    json terminal = {{"sessionId", session_id}, {"terminalId", terminal_id}};
    if (!call_id.empty()) {
      {
        std::lock_guard lock(mutex);
        call_terminals[session_id + '\n' + std::string(call_id)] = terminal_id;
      }
      agent::SessionUpdate update;
      update.kind = agent::SessionUpdate::Kind::kToolCallUpdate;
      update.tool.id = std::string(call_id);
      agent::ToolCallContent content;
      content.kind = agent::ToolCallContent::Kind::kTerminal;
      content.terminal_id = terminal_id;
      update.tool.content.push_back(std::move(content));
      OnUpdate(session_id, update, agent::ToAcpJson(update));
    }

    // Wait for the exit; a cancel or the timeout kills the command first. After the kill, the
    // editor has kAfterKill to report the end and the output: a cancelled turn ends promptly even
    // when the editor is slow to answer or never does.
    constexpr auto kAfterKill = std::chrono::seconds(3);
    struct Wait {
      std::mutex mutex;
      std::condition_variable done;
      std::optional<Result<std::string>> outcome;
    };
    auto wait = std::make_shared<Wait>();
    int64_t wait_id = peer.RequestAsync("terminal/wait_for_exit", terminal.dump(),
                                        [wait](Result<std::string> outcome) {
                                          std::lock_guard lock(wait->mutex);
                                          wait->outcome = std::move(outcome);
                                          wait->done.notify_one();
                                        });
    workspace::CommandOutcome outcome;
    using Clock = std::chrono::steady_clock;
    auto deadline =
        options.timeout.count() > 0 ? Clock::now() + options.timeout : Clock::time_point::max();
    bool is_killed = false;
    std::optional<Result<std::string>> exit_reply;
    {
      std::unique_lock lock(wait->mutex);
      while (!wait->outcome) {
        bool is_cancelled = options.cancelled != nullptr && options.cancelled->load();
        bool is_late = Clock::now() >= deadline;
        if (is_killed && is_late) break;
        if (!is_killed && (is_cancelled || is_late)) {
          is_killed = true;
          outcome.cancelled = is_cancelled;
          outcome.timed_out = !is_cancelled;
          deadline = Clock::now() + kAfterKill;
          lock.unlock();  // The reader thread takes the lock to deliver the exit.
          peer.RequestAsync("terminal/kill", terminal.dump(), [](Result<std::string> killed) {
            if (!killed.ok()) spdlog::warn("acp: terminal/kill: {}", killed.error().message());
          });
          lock.lock();
          continue;
        }
        wait->done.wait_for(lock, std::chrono::milliseconds(20));
      }
      exit_reply = std::move(wait->outcome);
    }
    if (!exit_reply) {
      peer.CancelOutgoing(wait_id);
      exit_reply = Error(ErrorCode::kTimeout, "no answer within 3 s of terminal/kill");
    }
    if (exit_reply->ok()) {
      json exit = json::parse(**exit_reply, nullptr, false);
      if (exit.is_object()) {
        if (exit.contains("exitCode") && exit["exitCode"].is_number_integer()) {
          outcome.exit_code = exit["exitCode"].get<int>();
        }
        if (exit.contains("signal") && exit["signal"].is_string()) {
          std::string name = exit["signal"].get<std::string>();
          outcome.signal = name == "SIGKILL" ? SIGKILL : name == "SIGINT" ? SIGINT : SIGTERM;
        }
      }
    }
    // The command was started: from here on a failure is reported in the outcome, never as "could
    // not be started" (the model must not run a command with side effects twice).
    if (!exit_reply->ok() && !is_killed) {
      outcome.exit_unknown = "terminal/wait_for_exit: " + exit_reply->error().message();
    }
    // The output is asked for even after a cancel (no cancel signal): the model learns what ran.
    rpc::RequestOptions request_options;
    request_options.timeout = kEditorTimeout;
    if (is_killed) {
      request_options.timeout =
          std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()),
                   std::chrono::milliseconds(100));
    }
    Result<std::string> output = peer.Request("terminal/output", terminal.dump(), request_options);
    json reply = output.ok() ? json::parse(*output, nullptr, false) : json();
    if (reply.is_object() && reply.contains("output") && reply["output"].is_string()) {
      outcome.output = reply["output"].get<std::string>();
      if (options.on_output) options.on_output(outcome.output);
    } else {
      outcome.output_unknown = output.ok() ? "terminal/output: the editor's reply has no output"
                                           : "terminal/output: " + output.error().message();
    }
    // Nothing waits for the release: it only frees the editor's terminal.
    peer.RequestAsync("terminal/release", terminal.dump(), [](Result<std::string> released) {
      if (!released.ok()) spdlog::warn("acp: terminal/release: {}", released.error().message());
    });
    return outcome;
  }

  // A request the running turn sends the editor: it ends when the editor answers, after
  // kEditorTimeout, or at once when the turn is cancelled.
  static constexpr std::chrono::milliseconds kEditorTimeout{30'000};
  static rpc::RequestOptions TurnRequestOptions() {
    rpc::RequestOptions options;
    options.timeout = kEditorTimeout;
    options.cancel = current_cancel;
    return options;
  }

  // A session/prompt request arrived (on the reader thread, before any later message).
  void PromptReceived(std::string_view params_json,
                      const std::shared_ptr<rpc::CancelSignal>& cancel) {
    json params = json::parse(params_json, nullptr, false);
    if (!params.is_object() || !params.value("sessionId", json()).is_string()) return;
    std::lock_guard lock(mutex);
    received_prompts[params["sessionId"].get<std::string>()] = cancel;
  }

  // Cancels the session's running prompt, if any, and the session. A prompt received but not
  // yet running is cancelled through its request's signal, which its turn checks as it starts.
  void CancelTurn(const std::string& session_id) {
    std::shared_ptr<rpc::CancelSignal> turn;
    std::shared_ptr<rpc::CancelSignal> received;
    {
      std::lock_guard lock(mutex);
      // Only this connection's sessions: another editor window's turn is not ours to stop.
      if (std::find(session_ids.begin(), session_ids.end(), session_id) == session_ids.end()) {
        spdlog::warn("acp: session/cancel of '{}', which is not open on this connection; ignored",
                     session_id);
        return;
      }
      if (auto it = turns.find(session_id); it != turns.end()) turn = it->second;
      if (auto it = received_prompts.find(session_id); it != received_prompts.end()) {
        received = it->second.lock();  // Gone once that request was answered.
      }
    }
    if (received) received->Cancel();
    if (turn) turn->Cancel();
    agent::Engine* engine = EngineIfAny();
    if (engine == nullptr) return;
    if (std::shared_ptr<agent::Session> session = engine->Find(session_id)) session->Cancel();
  }

  // terminal/create for the running turn, given up on when the turn is cancelled (or after
  // kEditorTimeout); a terminal the editor creates anyway, answering late, is killed and released
  // then (its command kept running).
  Result<std::string> CreateTerminal(const std::string& session_id, const std::string& params) {
    struct Wait {
      std::mutex mutex;
      std::condition_variable done;
      std::optional<Result<std::string>> outcome;
      bool is_abandoned = false;
    };
    auto wait = std::make_shared<Wait>();
    rpc::Peer* editor = &peer;
    int64_t id = peer.RequestAsync(
        "terminal/create", params, [wait, editor, session_id](Result<std::string> outcome) {
          std::lock_guard lock(wait->mutex);
          if (!wait->is_abandoned) {
            wait->outcome = std::move(outcome);
            wait->done.notify_one();
            return;
          }
          json created = outcome.ok() ? json::parse(*outcome, nullptr, false) : json();
          if (!created.is_object() || !created.contains("terminalId")) return;
          std::string terminal =
              json{{"sessionId", session_id}, {"terminalId", created["terminalId"]}}.dump();
          editor->RequestAsync("terminal/kill", terminal, [editor, terminal](Result<std::string>) {
            editor->RequestAsync("terminal/release", terminal, [](Result<std::string>) {});
          });
        });
    if (id == 0) {
      std::lock_guard lock(wait->mutex);
      return std::move(*wait->outcome);  // Not sent: the callback has run.
    }
    const rpc::CancelSignal* cancel = current_cancel;
    auto deadline = std::chrono::steady_clock::now() + kEditorTimeout;
    std::unique_lock lock(wait->mutex);
    while (!wait->outcome) {
      bool is_cancelled = cancel != nullptr && cancel->is_cancelled();
      if (is_cancelled || std::chrono::steady_clock::now() >= deadline) {
        wait->is_abandoned = true;
        lock.unlock();
        peer.CancelOutgoing(id);
        return Error(is_cancelled ? ErrorCode::kCancelled : ErrorCode::kTimeout,
                     is_cancelled ? "terminal/create: the turn was cancelled"
                                  : "terminal/create: the editor did not answer within 30 s");
      }
      wait->done.wait_for(lock, std::chrono::milliseconds(20));
    }
    return std::move(*wait->outcome);
  }

  // ---- FileAccess through fs/*: the session id is the one whose turn runs on this thread.
  Result<std::string> ReadTextFile(const std::string& path) override {
    if (current_session == nullptr) return Error(ErrorCode::kInternal, "fs read outside a turn");
    json params = {{"sessionId", *current_session}, {"path", path}};
    ASSIGN_OR_RETURN(std::string result,
                     peer.Request("fs/read_text_file", params.dump(), TurnRequestOptions()));
    json reply = json::parse(result, nullptr, false);
    if (!reply.is_object() || !reply.contains("content") || !reply["content"].is_string()) {
      return Error(ErrorCode::kProtocol, "fs/read_text_file: the editor's reply has no content");
    }
    return reply["content"].get<std::string>();
  }

  Status WriteTextFile(const std::string& path, std::string_view content) override {
    if (current_session == nullptr) return Error(ErrorCode::kInternal, "fs write outside a turn");
    json params = {{"sessionId", *current_session}, {"path", path}, {"content", content}};
    return peer.Request("fs/write_text_file", params.dump(), TurnRequestOptions()).status();
  }

  // ---- Handlers
  Result<std::shared_ptr<agent::Session>> SessionOf(std::string_view method, const json& params) {
    ASSIGN_OR_RETURN(std::string id, StringField(method, params, "sessionId"));
    ASSIGN_OR_RETURN(agent::Engine * engine, Engine());
    std::shared_ptr<agent::Session> session = engine->Find(id);
    bool is_ours;
    {
      std::lock_guard lock(mutex);
      is_ours = std::find(session_ids.begin(), session_ids.end(), id) != session_ids.end();
    }
    // Only the sessions this connection created or loaded: another editor window's stay its own.
    if (!session || !is_ours) {
      return Error(ErrorCode::kNotFound, std::string(method) + ": no session '" + id +
                                             "' on this connection (use session/new or "
                                             "session/load)");
    }
    return session;
  }

  Result<std::string> Initialize(std::string_view params_json) {
    ASSIGN_OR_RETURN(json params, ParseParams("initialize", params_json));
    if (!params.contains("protocolVersion") || !params["protocolVersion"].is_number_integer()) {
      return BadParams("initialize", "'protocolVersion' must be an integer");
    }
    const json capabilities = params.value("clientCapabilities", json::object());
    if (capabilities.is_object() && capabilities.contains("fs") && capabilities["fs"].is_object()) {
      std::lock_guard lock(mutex);
      client_reads_files = capabilities["fs"].value("readTextFile", false);
      client_writes_files = capabilities["fs"].value("writeTextFile", false);
    }
    if (capabilities.is_object() && capabilities.contains("terminal") &&
        capabilities["terminal"].is_boolean()) {
      std::lock_guard lock(mutex);
      client_has_terminal = capabilities["terminal"].get<bool>();
    }
    // We speak version 1 only: echo it, and answer 1 to anything else.
    json result = {
        {"protocolVersion", kProtocolVersion},
        {"agentCapabilities",
         {{"loadSession", true},
          {"promptCapabilities", {{"image", false}, {"audio", false}, {"embeddedContext", true}}},
          {"mcpCapabilities", {{"http", false}, {"sse", false}}}}},
        {"authMethods", json::array()},
        {"agentInfo",
         {{"name", "lapce-ai"}, {"title", "lapce-ai"}, {"version", agent_options.agent_version}}}};
    return result.dump();
  }

  // The stdio MCP servers of a session/new or session/load and the user's own, started in the
  // background (the first prompt waits for them); null when there are none.
  Result<std::shared_ptr<agent::McpServers>> StartMcpServers(std::string_view method,
                                                             const json& params,
                                                             const std::string& cwd) {
    std::vector<McpServerConfig> configs;
    if (auto servers = params.find("mcpServers"); servers != params.end() && !servers->is_null()) {
      Result<std::vector<McpServerConfig>> from_client = ParseAcpMcpServers(servers->dump());
      if (!from_client.ok()) return BadParams(method, from_client.error().message());
      configs = std::move(*from_client);
    }
    // A client's server replaces the user's of the same name, which is then not started at all
    // (the user may have replaced it because it is broken, costly or not to be trusted here).
    std::vector<std::string> replaced;
    for (const McpServerConfig& config : configs) replaced.push_back(config.name);
    McpOptions mcp_options;
    mcp_options.cwd = cwd;
    mcp_options.client_version = agent_options.agent_version;
    std::shared_ptr<agent::McpServers> own;
    if (!configs.empty()) own = McpHub::Start(std::move(configs), mcp_options);
    return CombineMcpServers({own, UserMcp(replaced, cwd)});
  }

  // The user's servers (mcp.json) but those named in `replaced`, in the workspace `cwd`; null
  // when there are none. Started on the first session that needs them, and shared by this
  // connection's later sessions in that workspace that replace the same ones.
  std::shared_ptr<agent::McpServers> UserMcp(const std::vector<std::string>& replaced,
                                             const std::string& cwd) {
    std::vector<McpServerConfig> kept;
    std::string key = cwd;
    for (const McpServerConfig& config : agent_options.mcp_servers) {
      if (std::find(replaced.begin(), replaced.end(), config.name) == replaced.end()) {
        key += '\0' + config.name;
        kept.push_back(config);
      }
    }
    if (kept.empty()) return nullptr;
    McpOptions options;
    options.cwd = cwd;
    options.client_version = agent_options.agent_version;
    std::lock_guard lock(mutex);
    std::shared_ptr<agent::McpServers>& servers = user_mcp[key];
    if (!servers) servers = McpHub::Start(std::move(kept), options);
    return servers;
  }

  Result<std::string> NewSession(std::string_view params_json) {
    ASSIGN_OR_RETURN(json params, ParseParams("session/new", params_json));
    ASSIGN_OR_RETURN(std::string cwd, StringField("session/new", params, "cwd"));
    if (cwd[0] != '/') return BadParams("session/new", "'cwd' must be an absolute path");
    agent::SessionOptions options;
    options.workspace = cwd;
    ASSIGN_OR_RETURN(options.mcp, StartMcpServers("session/new", params, cwd));
    if (params.contains("_meta") && params["_meta"].is_object()) {
      options.mode = params["_meta"].value("mode", "");
      options.profile = params["_meta"].value("profile", "");
    }
    ASSIGN_OR_RETURN(agent::Engine * engine, Engine());
    ASSIGN_OR_RETURN(std::shared_ptr<agent::Session> session, engine->NewSession(options));
    RETURN_IF_ERROR(engine->Claim(session->id(), this));
    {
      std::lock_guard lock(mutex);
      session_ids.push_back(session->id());
    }
    return json{{"sessionId", session->id()}, {"modes", ModesJson(*session)}}.dump();
  }

  Result<std::string> LoadSession(std::string_view params_json) {
    ASSIGN_OR_RETURN(json params, ParseParams("session/load", params_json));
    ASSIGN_OR_RETURN(std::string id, StringField("session/load", params, "sessionId"));
    std::string cwd =
        params.value("cwd", json()).is_string() ? params["cwd"].get<std::string>() : "";
    ASSIGN_OR_RETURN(std::shared_ptr<agent::McpServers> mcp,
                     StartMcpServers("session/load", params, cwd));
    ASSIGN_OR_RETURN(agent::Engine * engine, Engine());
    const bool was_open = engine->Find(id) != nullptr;
    // A session whose custom mode is gone still opens (its history is the user's); its prompts
    // are refused until session/set_mode picks a defined mode.
    ASSIGN_OR_RETURN(std::shared_ptr<agent::Session> session,
                     engine->LoadSession(id, mcp, {}, /*keeps_undefined_mode=*/true,
                                         agent_options.load_profile));
    // The editor says where it works: a session of another project would edit that project.
    if (!cwd.empty()) {
      std::error_code ignored;
      std::string given = std::filesystem::weakly_canonical(cwd, ignored).string();
      while (given.size() > 1 && given.back() == '/') given.pop_back();
      std::string workspace = session->Info().workspace;
      if (given != workspace) {
        if (!was_open) engine->Close(session->id());
        return BadParams("session/load", "session " + session->id() + " belongs to workspace " +
                                             workspace + ", not to the 'cwd' given (" + cwd +
                                             "); open it from that workspace");
      }
    }
    RETURN_IF_ERROR(engine->Claim(session->id(), this));
    {
      std::lock_guard lock(mutex);
      if (std::find(session_ids.begin(), session_ids.end(), session->id()) == session_ids.end()) {
        session_ids.push_back(session->id());
      }
    }
    RETURN_IF_ERROR(session->Replay(*this));
    return json{{"modes", ModesJson(*session)}}.dump();
  }

  Result<std::string> Prompt(std::string_view params_json, const rpc::RequestContext& context) {
    ASSIGN_OR_RETURN(json params, ParseParams("session/prompt", params_json));
    ASSIGN_OR_RETURN(std::shared_ptr<agent::Session> session, SessionOf("session/prompt", params));
    ASSIGN_OR_RETURN(std::string text,
                     PromptText(params.value("prompt", json()), session->Info().workspace));
    if (text.empty()) return BadParams("session/prompt", "the prompt is empty");
    {
      std::lock_guard lock(mutex);
      if (running_prompts >= kAcpMaxRunningPrompts) {
        return Error(ErrorCode::kResourceExhausted,
                     "session/prompt: this connection already runs " +
                         std::to_string(running_prompts) +
                         " prompts, its limit; wait for one to end, or use another connection");
      }
      ++running_prompts;
    }
    struct Ended {
      Impl& impl;
      ~Ended() {
        std::lock_guard lock(impl.mutex);
        --impl.running_prompts;
      }
    } ended{*this};
    // The turn's signal: session/cancel, the request's own `$/cancel_request`, and the editor
    // going away (end of input) all fire it. A second prompt while one runs is refused by the
    // session, and leaves the first one's signal in place.
    auto turn = std::make_shared<rpc::CancelSignal>();
    bool is_registered;
    {
      std::lock_guard lock(mutex);
      is_registered = turns.try_emplace(session->id(), turn).second;
      if (is_registered) text_states[session->id()] = TextState::kNone;  // A new message.
    }
    uint64_t watch = context.cancel.AddCallback([turn] { turn->Cancel(); });
    turn->AddCallback([session] { session->Cancel(); });
    current_session = &session->id();
    current_cancel = turn.get();
    Result<agent::StopReason> stop =
        session->Prompt(text, *this, [&turn] { return turn->is_cancelled(); });
    current_session = nullptr;
    current_cancel = nullptr;
    if (watch != 0) context.cancel.RemoveCallback(watch);
    {
      std::lock_guard lock(mutex);
      if (is_registered) turns.erase(session->id());
      if (auto it = received_prompts.find(session->id());
          it != received_prompts.end() && it->second.expired()) {
        received_prompts.erase(it);
      }
    }
    if (!stop.ok()) return std::move(stop).error();
    return json{{"stopReason", agent::StopReasonName(*stop)}}.dump();
  }

  Result<std::string> SetMode(std::string_view params_json) {
    ASSIGN_OR_RETURN(json params, ParseParams("session/set_mode", params_json));
    ASSIGN_OR_RETURN(std::shared_ptr<agent::Session> session,
                     SessionOf("session/set_mode", params));
    ASSIGN_OR_RETURN(std::string mode, StringField("session/set_mode", params, "modeId"));
    Status status = session->SetMode(mode, this);
    if (!status.ok()) {
      return Error(ErrorCode::kInvalidArgument, "session/set_mode: " + status.error().message());
    }
    return std::string("{}");
  }

  void Cancel(std::string_view params_json) {
    json params = json::parse(params_json, nullptr, false);
    if (!params.is_object() || !params.contains("sessionId") || !params["sessionId"].is_string()) {
      spdlog::warn("acp: session/cancel without a sessionId; ignored");
      return;
    }
    CancelTurn(params["sessionId"].get<std::string>());
  }

  Result<std::string> ListSessions(std::string_view params_json) {
    constexpr std::string_view kMethod = "_lapce/sessions/list";
    json params = json::parse(params_json.empty() ? "{}" : params_json, nullptr, false);
    if (params.is_null()) params = json::object();
    if (!params.is_object()) return BadParams(kMethod, "params must be an object");
    agent::ListOptions options;
    if (auto limit = params.find("limit"); limit != params.end() && !limit->is_null()) {
      if (!limit->is_number_integer() || limit->get<int64_t>() < 1) {
        return BadParams(kMethod, "'limit' must be a positive integer");
      }
      options.limit = static_cast<int>(std::min<int64_t>(limit->get<int64_t>(), 1'000'000));
    }
    if (auto cwd = params.find("cwd"); cwd != params.end() && !cwd->is_null()) {
      if (!cwd->is_string()) return BadParams(kMethod, "'cwd' must be a string");
      options.workspace = cwd->get<std::string>();
    }
    ASSIGN_OR_RETURN(agent::Engine * engine, Engine());
    agent::SessionStore* store = engine->store();
    if (store == nullptr) return json{{"sessions", json::array()}}.dump();
    ASSIGN_OR_RETURN(std::vector<agent::SessionRecord> records, store->ListSessions(options));
    json sessions = json::array();
    for (const agent::SessionRecord& record : records) {
      std::string_view status = store->ShownStatus(record);
      // Loaded here after a kill -9 cut its turn, and no turn runs: still interrupted.
      if (std::shared_ptr<agent::Session> open = engine->Find(record.id);
          status == "active" && open != nullptr && open->was_interrupted()) {
        status = "interrupted";
      }
      sessions.push_back({{"sessionId", record.id},
                          {"title", record.title},
                          {"cwd", record.workspace},
                          {"mode", record.mode},
                          {"model", record.model},
                          {"status", status},
                          {"createdMs", record.created_ms},
                          {"updatedMs", record.updated_ms},
                          {"costUsd", RoundForJson(record.totals.cost_usd)}});
    }
    return json{{"sessions", std::move(sessions)}}.dump();
  }

  Result<std::string> Complete(std::string_view params_json, const rpc::RequestContext& context) {
    ASSIGN_OR_RETURN(AiRequest request, ParseAiRequest(params_json));
    ASSIGN_OR_RETURN(agent::Engine * engine, Engine());
    struct Collect {
      std::mutex mutex;
      std::condition_variable done_signal;
      ReplyCollector collector;
      std::optional<llm::StreamError> error;
      bool done = false;
    };
    auto collect = std::make_shared<Collect>();
    ASSIGN_OR_RETURN(std::shared_ptr<llm::StreamHandle> handle,
                     engine->pool().Stream(request.profile, std::move(request.request),
                                           [collect](const llm::StreamEvent& event) {
                                             std::lock_guard lock(collect->mutex);
                                             collect->collector.Add(event);
                                             if (event.kind == llm::StreamEvent::Kind::kError) {
                                               collect->error = event.error;
                                             }
                                             if (event.kind == llm::StreamEvent::Kind::kError ||
                                                 event.kind == llm::StreamEvent::Kind::kDone) {
                                               collect->done = true;
                                               collect->done_signal.notify_one();
                                             }
                                           }));
    std::unique_lock lock(collect->mutex);
    bool is_cancel_sent = false;
    while (!collect->done) {
      if (!is_cancel_sent && context.cancel.is_cancelled()) {
        is_cancel_sent = true;
        lock.unlock();
        handle->Cancel();
        lock.lock();
        continue;
      }
      collect->done_signal.wait_for(lock, std::chrono::milliseconds(20));
    }
    lock.unlock();
    if (collect->error) return Error(ErrorCodeFor(collect->error->kind), collect->error->message);
    return collect->collector.FinalJson();
  }
};

thread_local const std::string* AcpAgent::Impl::current_session = nullptr;
thread_local const rpc::CancelSignal* AcpAgent::Impl::current_cancel = nullptr;

AcpAgent::AcpAgent(agent::Engine& engine, rpc::Peer& peer, AcpAgentOptions options)
    : AcpAgent([&engine]() -> Result<agent::Engine*> { return &engine; }, peer,
               std::move(options)) {}

AcpAgent::AcpAgent(EngineSource engine, rpc::Peer& peer, AcpAgentOptions options)
    : impl_(std::make_unique<Impl>(std::move(engine), peer, std::move(options))) {
  Impl* impl = impl_.get();
  peer.HandleRequest("initialize", [impl](std::string_view params, const rpc::RequestContext&) {
    return impl->Initialize(params);
  });
  peer.HandleRequest("authenticate", [](std::string_view, const rpc::RequestContext&) {
    return Result<std::string>(std::string("{}"));
  });
  peer.HandleRequest("session/new", [impl](std::string_view params, const rpc::RequestContext&) {
    return impl->NewSession(params);
  });
  peer.HandleRequest("session/load", [impl](std::string_view params, const rpc::RequestContext&) {
    return impl->LoadSession(params);
  });
  peer.HandleRequest("session/prompt",
                     [impl](std::string_view params, const rpc::RequestContext& context) {
                       return impl->Prompt(params, context);
                     });
  peer.OnRequestReceived(
      "session/prompt",
      [impl](std::string_view params, const std::shared_ptr<rpc::CancelSignal>& cancel) {
        impl->PromptReceived(params, cancel);
      });
  peer.HandleRequest("session/set_mode",
                     [impl](std::string_view params, const rpc::RequestContext&) {
                       return impl->SetMode(params);
                     });
  peer.HandleNotification("session/cancel",
                          [impl](std::string_view params) { impl->Cancel(params); });
  // ACP makes it a notification; a client that sends it as a request gets its cancel, and null.
  peer.HandleRequest("session/cancel", [impl](std::string_view params, const rpc::RequestContext&) {
    impl->Cancel(params);
    return Result<std::string>(std::string());
  });
  peer.HandleRequest("_lapce/sessions/list",
                     [impl](std::string_view params, const rpc::RequestContext&) {
                       return impl->ListSessions(params);
                     });
  peer.HandleRequest("_lapce/complete",
                     [impl](std::string_view params, const rpc::RequestContext& context) {
                       return impl->Complete(params, context);
                     });
}

AcpAgent::~AcpAgent() = default;

void AcpAgent::CancelAll() {
  std::vector<std::string> ids;
  {
    std::lock_guard lock(impl_->mutex);
    ids = impl_->session_ids;
  }
  for (const std::string& id : ids) impl_->CancelTurn(id);
}

void AcpAgent::ReleaseAll() {
  std::vector<std::string> ids;
  {
    std::lock_guard lock(impl_->mutex);
    ids = std::exchange(impl_->session_ids, {});
  }
  if (ids.empty()) return;
  Result<agent::Engine*> engine = impl_->Engine();
  if (!engine.ok()) return;
  for (const std::string& id : ids) {
    // A session the editor opened and never prompted (a thread opened and closed) is not kept:
    // it would list as an untitled, interrupted session.
    if (std::shared_ptr<agent::Session> session = (*engine)->Find(id)) session->DiscardIfEmpty();
    (*engine)->Release(id, impl_.get());
  }
}

}  // namespace lai::server
