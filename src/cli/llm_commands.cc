// `lapce-ai complete`, `lapce-ai models`, `lapce-ai doctor` and the registration of
// `lapce-ai bench providers`. Confined to the main thread (the provider stream's events arrive on
// the HTTP I/O thread and are handed over through a queue).
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/modes.h"
#include "agent/store.h"
#include "base/log.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "cli/bench_providers.h"
#include "cli/commands.h"
#include "cli/provider_flags.h"
#include "http/client.h"
#include "llm/catalog.h"
#include "llm/internal/adapter.h"
#include "llm/internal/profiles.h"
#include "llm/pool.h"
#include "server/agent_setup.h"
#include "server/ai_protocol.h"
#include "workspace/process.h"

extern char** environ;

namespace lai::cli {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

struct CompleteFlags : ProviderFlags {
  std::string system;
  std::optional<int64_t> max_tokens;  // Set only when given.
  std::optional<double> temperature;
  bool json = false;
  bool show_reasoning = false;
  std::string prompt;
};

struct ModelsFlags {
  std::string provider;
  bool json = false;
};

// Events from the I/O thread to the main thread; the eventfd wakes the main thread's poll.
class EventQueue {
 public:
  EventQueue() : wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  int fd() const { return wake_.get(); }
  bool is_valid() const { return wake_.is_valid(); }
  // I/O thread.
  void Push(const llm::StreamEvent& event) {
    {
      std::lock_guard lock(mutex_);
      events_.push_back(event);
    }
    uint64_t one = 1;
    ssize_t n = ::write(wake_.get(), &one, sizeof(one));
    (void)n;
  }
  // Main thread.
  std::deque<llm::StreamEvent> Take() {
    uint64_t count = 0;
    ssize_t n = ::read(wake_.get(), &count, sizeof(count));
    (void)n;
    std::lock_guard lock(mutex_);
    std::deque<llm::StreamEvent> out;
    out.swap(events_);
    return out;
  }

 private:
  UniqueFd wake_;
  std::mutex mutex_;
  std::deque<llm::StreamEvent> events_;
};

// `cost`: CostText of the usage's cost.
std::string FormatUsage(const llm::Usage& usage, const std::string& cost) {
  std::string out = "tokens: " + std::to_string(usage.input_tokens) + " in, " +
                    std::to_string(usage.output_tokens) + " out";
  if (usage.cache_read_tokens > 0 || usage.cache_write_tokens > 0) {
    out += " (cache: " + std::to_string(usage.cache_read_tokens) + " read, " +
           std::to_string(usage.cache_write_tokens) + " written)";
  }
  if (usage.reasoning_tokens > 0) {
    out += ", " + std::to_string(usage.reasoning_tokens) + " reasoning";
  }
  return out + "; cost " + cost;
}

int Complete(const Config& config, CompleteFlags flags) {
  auto is_blank = [](const std::string& text) {
    return text.find_first_not_of(" \t\r\n") == std::string::npos;
  };
  if (is_blank(flags.prompt)) {
    std::fprintf(stderr, "lapce-ai complete: no prompt; pass it as an argument, or '-' to read "
                         "standard input\n");
    return kExitUsage;
  }
  if (flags.prompt == "-") {
    flags.prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (is_blank(flags.prompt)) {
      std::fprintf(stderr, "lapce-ai complete: standard input held no prompt; nothing to ask\n");
      return kExitUsage;
    }
  }
  if (flags.temperature &&
      (!std::isfinite(*flags.temperature) || *flags.temperature < 0 || *flags.temperature > 2)) {
    std::fprintf(stderr, "lapce-ai complete: --temperature must be between 0 and 2, got %g\n",
                 *flags.temperature);
    return kExitUsage;
  }
  if (flags.max_tokens && *flags.max_tokens <= 0) {
    std::fprintf(stderr,
                 "lapce-ai complete: --max-tokens must be a positive number of tokens, got %lld\n",
                 static_cast<long long>(*flags.max_tokens));
    return kExitUsage;
  }

  // Ctrl-C and SIGTERM arrive through a signalfd, so the one poll below waits for both events and
  // signals. Blocked before the HTTP client starts its thread, which inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  UniqueFd signals(::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK));
  EventQueue queue;
  if (!signals.is_valid() || !queue.is_valid()) {
    std::fprintf(stderr, "lapce-ai complete: cannot create signalfd/eventfd\n");
    return kExitFailure;
  }

  Result<std::unique_ptr<http::Client>> http = http::Client::Create();
  if (!http.ok()) {
    std::fprintf(stderr, "lapce-ai complete: %s\n", http.error().message().c_str());
    return kExitFailure;
  }
  Result<std::unique_ptr<llm::ProviderPool>> pool =
      PoolFor(config, flags, std::shared_ptr<http::Client>(std::move(*http)));
  if (!pool.ok()) {
    std::fprintf(stderr, "lapce-ai complete: %s\n", pool.error().message().c_str());
    return pool.error().code() == ErrorCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }

  llm::CompletionRequest request;
  request.system_prompt = flags.system;
  request.max_tokens = flags.max_tokens;
  request.temperature = flags.temperature;
  llm::Message user;
  llm::ContentPart text;
  text.text = flags.prompt;
  user.parts.push_back(std::move(text));
  request.messages.push_back(std::move(user));

  Result<std::shared_ptr<llm::StreamHandle>> handle = (*pool)->Stream(
      flags.profile, std::move(request), [&queue](const llm::StreamEvent& e) { queue.Push(e); });
  if (!handle.ok()) {
    std::fprintf(stderr, "lapce-ai complete: %s\n", handle.error().message().c_str());
    return handle.error().code() == ErrorCode::kNotFound ? kExitUsage : kExitFailure;
  }

  const bool is_tty_stderr = ::isatty(STDERR_FILENO) == 1;
  const bool colors_stderr = is_tty_stderr && log::WantsColor();
  const bool is_tty_stdout = ::isatty(STDOUT_FILENO) == 1;
  bool interrupted = false;
  bool at_line_start = true;      // Of stdout's text.
  bool in_reasoning = false;
  bool reasoning_at_line_start = true;  // Reasoning is being printed to stderr.
  llm::Usage usage;
  bool has_usage = false;
  int stop_signal = 0;
  int exit_status = -1;
  // The answer is cancelled as on Ctrl-C when a signal comes or its reader goes away (`complete
  // … | head`): it went on to the end, paid for, and exited 0 with the output lost. A closed pipe
  // shows as POLLERR on stdout (asked for nothing), or as a failed write.
  int watched_stdout = STDOUT_FILENO;
  auto stop = [&](int signal) {
    if (interrupted) return;
    interrupted = true;
    stop_signal = signal;
    (*handle)->Cancel();  // The stream ends with kError/kCancelled.
  };
  auto flush_stdout = [&] {
    if (std::fflush(stdout) == EOF) stop(SIGPIPE);
  };
  while (exit_status < 0) {
    pollfd fds[3] = {{queue.fd(), POLLIN, 0}, {signals.get(), POLLIN, 0}, {watched_stdout, 0, 0}};
    if (::poll(fds, 3, -1) < 0) continue;  // EINTR.
    if ((fds[1].revents & POLLIN) != 0) {
      signalfd_siginfo info;
      ssize_t n = ::read(signals.get(), &info, sizeof(info));
      stop(n == sizeof(info) ? static_cast<int>(info.ssi_signo) : SIGINT);
    }
    if ((fds[2].revents & (POLLERR | POLLHUP)) != 0) {
      watched_stdout = -1;  // Reported until the end: poll it no more.
      stop(SIGPIPE);
    }
    if ((fds[0].revents & POLLIN) == 0) continue;
    for (const llm::StreamEvent& event : queue.Take()) {
      using Kind = llm::StreamEvent::Kind;
      if (event.kind == Kind::kUsage) {
        usage = event.usage;
        has_usage = true;
      }
      if (flags.json) {
        std::string line = server::EventJson(event, usage);
        std::fprintf(stdout, "%s\n", line.c_str());
        flush_stdout();
      } else {
        switch (event.kind) {
          case Kind::kTextDelta:
            if (in_reasoning) {
              std::fputs(colors_stderr ? "\033[0m\n" : "\n", stderr);
              in_reasoning = false;
            }
            // On a terminal, what the model says cannot move the cursor, recolour or retitle.
            if (is_tty_stdout) {
              std::fputs(Visible(event.text).c_str(), stdout);
            } else {
              std::fwrite(event.text.data(), 1, event.text.size(), stdout);
            }
            flush_stdout();
            if (!event.text.empty()) at_line_start = event.text.back() == '\n';
            break;
          case Kind::kReasoningDelta:
            if (!flags.show_reasoning) break;
            if (!in_reasoning) {
              if (colors_stderr) std::fputs("\033[2m", stderr);
              in_reasoning = true;
              reasoning_at_line_start = true;
            }
            // Every line marked, so none is taken for the answer.
            for (std::string_view rest = event.text; !rest.empty();) {
              size_t end = rest.find('\n');
              std::string_view line =
                  rest.substr(0, end == std::string_view::npos ? rest.size() : end + 1);
              if (reasoning_at_line_start) std::fputs("[reasoning] ", stderr);
              if (is_tty_stderr) {
                std::fputs(Visible(line).c_str(), stderr);
              } else {
                std::fwrite(line.data(), 1, line.size(), stderr);
              }
              reasoning_at_line_start = line.back() == '\n';
              rest.remove_prefix(line.size());
            }
            break;
          case Kind::kToolCallEnd:
            std::fprintf(stderr, "[tool call %s] %s(%s)\n", Visible(event.tool_call_id).c_str(),
                         Visible(event.tool_name).c_str(), Visible(event.arguments_json).c_str());
            break;
          case Kind::kToolCallStart:
          case Kind::kToolCallDelta:
          case Kind::kUsage:
          case Kind::kError:
          case Kind::kDone:
          case Kind::kRetrying:  // The log's warning says it on stderr.
            break;
        }
      }
      if (event.kind == Kind::kDone || event.kind == Kind::kError) {
        if (in_reasoning) std::fputs(colors_stderr ? "\033[0m\n" : "\n", stderr);
        if (!flags.json && !at_line_start) std::fputc('\n', stdout);
        std::fflush(stdout);
        if (event.kind == Kind::kDone) {
          if (!flags.json && event.text == "length") {
            std::fprintf(stderr,
                         "lapce-ai complete: the answer was cut off at the output limit "
                         "(raise --max-tokens)\n");
          }
          std::fprintf(
              stderr, "%s\n",
              has_usage
                  ? FormatUsage(usage, CostText(**pool, event.profile, usage.cost_usd, 6)).c_str()
                  : "tokens: not reported by the provider; cost unknown");
          const std::string asked =
              flags.profile.empty() ? (*pool)->default_profile() : flags.profile;
          if (!event.profile.empty() && event.profile != asked) {
            std::fprintf(stderr, "(answered by the fallback profile '%s', model %s)\n",
                         event.profile.c_str(), Visible(event.model).c_str());
          }
          exit_status = kExitOk;
          if (event.text == "refusal") {
            std::fprintf(stderr,
                         "lapce-ai complete: the provider declined to answer (the model "
                         "refused, or a content filter stopped it)\n");
            exit_status = kExitFailure;
          }
        } else if (interrupted) {
          std::fprintf(stderr, "lapce-ai complete: cancelled%s\n",
                       stop_signal == SIGPIPE ? ": its output was closed" : "");
          exit_status = 128 + stop_signal;
        } else {
          std::fprintf(stderr, "lapce-ai complete: %s\n", Visible(event.error.message).c_str());
          exit_status = kExitFailure;
        }
        break;
      }
    }
  }
  return exit_status;
}

// Dollars per million tokens: cents, or tenths of a cent below a dollar (0.075, not 0.07).
std::string Price(double usd_per_million) {
  if (usd_per_million == 0) return "-";
  char text[32];
  std::snprintf(text, sizeof(text), usd_per_million < 1 ? "%.3f" : "%.2f", usd_per_million);
  std::string out = text;
  if (usd_per_million < 1 && out.ends_with('0')) out.pop_back();  // 0.250 -> 0.25
  return out;
}

// 128K, 1M, 8.2K (8192, rounded to the nearest hundred), 1.05M (1047576).
std::string Tokens(int64_t count) {
  if (count <= 0) return "-";
  if (count % 1'000'000 == 0) return std::to_string(count / 1'000'000) + "M";
  if (count < 1000) return std::to_string(count);
  if (count >= 1'000'000) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.2fM", static_cast<double>(count) / 1e6);
    return text;
  }
  int64_t hundreds = (count + 50) / 100;
  if (hundreds % 10 == 0) return std::to_string(hundreds / 10) + "K";
  return std::to_string(hundreds / 10) + "." + std::to_string(hundreds % 10) + "K";
}

int Models(const Config& config, const ModelsFlags& flags) {
  // The configured catalog (with overrides) when the profiles load; the built-in one otherwise.
  llm::Catalog catalog = llm::Catalog::BuiltIn();
  std::unique_ptr<llm::ProviderPool> pool;
  if (Result<std::unique_ptr<http::Client>> http = http::Client::Create(); http.ok()) {
    Result<std::unique_ptr<llm::ProviderPool>> created =
        llm::ProviderPool::Create(config, std::shared_ptr<http::Client>(std::move(*http)));
    if (created.ok()) {
      pool = std::move(*created);
    } else {
      std::fprintf(stderr, "lapce-ai models: %s (showing the built-in catalog)\n",
                   created.error().message().c_str());
    }
  }
  const llm::Catalog& shown = pool ? pool->catalog() : catalog;
  if (!flags.provider.empty() && llm::internal::FindProvider(flags.provider) == nullptr) {
    std::fprintf(stderr, "lapce-ai models: --provider '%s' is unknown; expected one of %s\n",
                 flags.provider.c_str(), llm::internal::ProviderNames().c_str());
    return kExitUsage;
  }
  std::vector<const llm::ModelInfo*> models = shown.List(flags.provider);
  if (flags.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const llm::ModelInfo* m : models) {
      out.push_back({{"provider", m->provider},
                     {"id", m->id},
                     {"contextWindow", m->context_window},
                     {"maxOutputTokens", m->max_output_tokens},
                     {"supportsTools", m->supports_tools},
                     {"supportsImages", m->supports_images},
                     {"supportsReasoning", m->supports_reasoning},
                     {"supportsPromptCache", m->supports_prompt_cache},
                     {"inputPrice", m->input_price},
                     {"outputPrice", m->output_price},
                     {"cacheWritePrice", m->cache_write_price},
                     {"cacheReadPrice", m->cache_read_price}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  if (models.empty()) {
    std::printf("no models in the catalog for provider '%s'; any model id the provider serves can "
                "still be used with --model\n",
                flags.provider.c_str());
    return kExitOk;
  }
  size_t id_width = 5;
  for (const llm::ModelInfo* m : models) id_width = std::max(id_width, m->provider.size() + 1 + m->id.size());
  std::printf("%-*s %8s %8s  %-28s %8s %8s %8s %8s\n", static_cast<int>(id_width), "MODEL",
              "CONTEXT", "MAX OUT", "CAPABILITIES", "IN $/M", "OUT $/M", "CW $/M", "CR $/M");
  for (const llm::ModelInfo* m : models) {
    std::string capabilities;
    auto add = [&](bool has, const char* name) {
      if (!has) return;
      if (!capabilities.empty()) capabilities += ",";
      capabilities += name;
    };
    add(m->supports_tools, "tools");
    add(m->supports_images, "images");
    add(m->supports_reasoning, "reasoning");
    add(m->supports_prompt_cache, "cache");
    if (capabilities.empty()) capabilities = "-";
    std::string id = m->provider + "/" + m->id;
    std::printf("%-*s %8s %8s  %-28s %8s %8s %8s %8s\n", static_cast<int>(id_width), id.c_str(),
                Tokens(m->context_window).c_str(), Tokens(m->max_output_tokens).c_str(),
                capabilities.c_str(), Price(m->input_price).c_str(), Price(m->output_price).c_str(),
                Price(m->cache_write_price).c_str(), Price(m->cache_read_price).c_str());
  }
  std::printf("Prices in USD per million tokens (CW/CR: cache write/read).\n");
  return kExitOk;
}

// doctor's lines: "ok"/"FAIL", what was checked, what was found; counts the failures.
class DoctorReport {
 public:
  void Line(bool is_ok, const std::string& what, const std::string& detail) {
    std::printf("%-6s %-28s %s\n", is_ok ? "ok" : "FAIL", what.c_str(), detail.c_str());
    if (!is_ok) ++problems_;
  }
  // The last line, and the exit status.
  int End() const {
    std::printf("%s\n", problems_ == 0 ? "everything looks fine"
                                       : (std::to_string(problems_) + " problem(s) found").c_str());
    return problems_ == 0 ? kExitOk : kExitFailure;
  }

 private:
  int problems_ = 0;
};

// ripgrep: the search tools run `rg`.
// The models a model-list reply names: OpenAI-style (and Anthropic's) data[].id, Ollama's
// models[].name, Gemini's models[].name without "models/". nullopt: the reply is not JSON.
std::optional<std::vector<std::string>> ListedModels(const std::string& body) {
  nlohmann::json reply = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded()) return std::nullopt;
  std::vector<std::string> names;
  if (!reply.is_object()) return names;
  for (const char* list : {"data", "models"}) {
    auto models = reply.find(list);
    if (models == reply.end() || !models->is_array()) continue;
    for (const nlohmann::json& model : *models) {
      for (const char* key : {"id", "name"}) {
        auto field = model.is_object() ? model.find(key) : model.end();
        if (field == model.end() || !field->is_string()) continue;
        std::string name = field->get<std::string>();
        if (name.starts_with("models/")) name.erase(0, 7);
        names.push_back(std::move(name));
        break;
      }
    }
  }
  return names;
}

void CheckRipgrep(DoctorReport& report) {
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    if (std::string rg = workspace::FindOnPath("rg", path); !rg.empty()) {
      return report.Line(true, "ripgrep", rg);
    }
  }
  report.Line(false, "ripgrep", "rg not found in PATH; install it (Debian: apt install ripgrep)");
}

// The session store opens and reads: one that does not (locked by a stuck process, corrupt, on a
// full or read-only disk) stops every `run` and `acp` session.
void CheckSessionStore(DoctorReport& report) {
  Result<std::string> path = agent::SessionStore::DefaultPath();
  if (!path.ok()) return report.Line(false, "session store", path.error().message());
  std::error_code ec;
  if (!std::filesystem::exists(*path, ec)) {
    return report.Line(true, "session store", "none yet; the first session creates " + *path);
  }
  Result<std::unique_ptr<agent::SessionStore>> store = agent::SessionStore::Open(*path);
  if (!store.ok()) return report.Line(false, "session store", store.error().message());
  agent::ListOptions options;
  options.limit = 0;
  options.include_children = true;
  Result<std::vector<agent::SessionRecord>> sessions = (*store)->ListSessions(options);
  if (!sessions.ok()) {
    return report.Line(false, "session store", *path + ": " + sessions.error().message());
  }
  if (Status checked = (*store)->Check(); !checked.ok()) {
    return report.Line(false, "session store", checked.error().message());
  }
  report.Line(true, "session store",
              *path + " (" + std::to_string(sessions->size()) + " sessions)");
}

// agent.mode names a built-in mode or a custom one (the global modes file, then the current
// directory's .kilocodemodes, as `run` would load them here).
void CheckMode(const Config& config, DoctorReport& report) {
  std::error_code ec;
  std::string cwd = std::filesystem::current_path(ec).string();
  agent::LoadedModes loaded =
      agent::LoadModes(server::AgentSettingsFromConfig(config).global_modes_file, cwd);
  for (const std::string& problem : loaded.problems) {
    report.Line(false, "agent modes", problem + " (the file is left out; the other modes work)");
  }
  if (agent::FindMode(loaded.modes, config.agent.mode) != nullptr) {
    return report.Line(true, "agent mode", config.agent.mode);
  }
  report.Line(false, "agent mode",
              "agent.mode: unknown mode '" + config.agent.mode + "' (the modes here are: " +
                  agent::ModeSlugs(loaded.modes) + "); set agent.mode to one of them");
}

// The configuration did not load: say why, and check what needs no configuration.
int DoctorWithoutConfig(const Error& error) {
  DoctorReport report;
  report.Line(false, "config", error.message());
  CheckRipgrep(report);
  CheckSessionStore(report);
  return report.End();
}

int Doctor(const Config& config, const ProviderFlags& flags) {
  DoctorReport report;
  report.Line(true, "config",
              config.file.empty()
                  ? "loaded (defaults and environment; no file at " + DefaultConfigPath() + ")"
                  : "loaded from " + config.file);
  CheckMode(config, report);

  Result<std::unique_ptr<http::Client>> http = http::Client::Create();
  if (!http.ok()) {
    report.Line(false, "http client", http.error().message());
    return report.End();
  }
  std::shared_ptr<http::Client> client(std::move(*http));
  // The profiles `run`, `acp` and `complete` would have with the same flags: the configured ones,
  // or the one-off profile the flags make.
  Result<std::unique_ptr<llm::ProviderPool>> pool = PoolFor(config, flags, client);
  if (!pool.ok()) {
    report.Line(false, "provider profiles", pool.error().message());
  } else {
    std::vector<llm::ProfileInfo> profiles = (*pool)->Profiles();
    const std::string default_profile = (*pool)->default_profile();
    if (profiles.empty()) {
      report.Line(false, "provider profiles",
                  "none configured: add a profile to the config file, or set a provider key such "
                  "as OPENAI_API_KEY or ANTHROPIC_API_KEY");
    }
    // Flags that name a profile ask about that one and the fallbacks it would hand requests
    // to: the others are not in use.
    const bool only_named = NamesAProfile(flags);
    std::vector<std::string> in_use = {default_profile};
    for (size_t i = 0; i < in_use.size(); ++i) {
      for (const Config::Profile& configured : config.profiles) {
        if (configured.name == in_use[i] && !configured.fallback.empty() &&
            std::find(in_use.begin(), in_use.end(), configured.fallback) == in_use.end()) {
          in_use.push_back(configured.fallback);
        }
      }
    }
    for (const llm::ProfileInfo& profile : profiles) {
      const bool is_fallback = profile.name != default_profile;
      if (only_named && std::find(in_use.begin(), in_use.end(), profile.name) == in_use.end()) {
        continue;
      }
      report.Line(true, "profile " + profile.name,
                  profile.provider + " " + profile.model + " at " + profile.base_url +
                      (only_named && is_fallback ? " (a fallback of the one named)"
                       : !only_named && profiles.size() > 1 && !is_fallback
                           ? " (the default: used unless a command names another)"
                           : ""));
      const llm::internal::ProviderSpec* spec = llm::internal::FindProvider(profile.provider);
      bool needs_key = spec == nullptr || !spec->default_key_env.empty();
      if (profile.has_api_key) {
        report.Line(true, "  key", "present (from " + profile.api_key_source + ")");
      } else if (needs_key) {
        report.Line(false, "  key", "missing (expected from " + profile.api_key_source + ")");
      } else {
        report.Line(true, "  key", "none needed");
      }
      // What the pool would send (the trimmed key, the profile's headers), to its model list.
      Result<http::Request> request = (*pool)->ModelListRequest(profile.name);
      if (!request.ok()) {
        report.Line(false, "  reachable", request.error().message());
        continue;
      }
      std::string url = request->url;
      auto start = std::chrono::steady_clock::now();
      Result<http::FullResponse> response =
          http::Fetch(*client, *std::move(request), std::chrono::seconds(8), 1 << 20);
      auto elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count();
      std::string latency = " in " + std::to_string(elapsed_ms) + " ms";
      // The local Ollama tried for want of anything else: not running is no problem when
      // something else is configured (it is used only when named).
      const bool is_spare_ollama = profile.is_implicit && profile.provider == "ollama" &&
                                   profiles.size() > 1 && profile.name != default_profile;
      if (!response.ok()) {
        if (is_spare_ollama) {
          report.Line(true, "  reachable", "not running (used only when named: --profile ollama)");
        } else {
          report.Line(false, "  reachable", "GET " + url + ": " + response.error().message());
        }
      } else if (response->status == 401 || response->status == 403) {
        report.Line(false, "  reachable",
                    "GET " + url + ": HTTP " + std::to_string(response->status) + latency +
                        ": reachable, but the key was rejected" +
                        (profile.has_api_key ? " (check " + profile.api_key_source + ")"
                                             : " (no key sent)"));
      } else if (response->status == 404) {
        const bool may_lack_v1 = spec != nullptr &&
                                 spec->wire == llm::internal::WireFormat::kOpenAiChat &&
                                 !profile.base_url.ends_with("/v1");
        report.Line(false, "  reachable",
                    "GET " + url + ": HTTP 404" + latency + ": the base URL looks wrong" +
                        (may_lack_v1 ? " (an OpenAI-style base URL usually ends in /v1)" : ""));
      } else if (response->status >= 500) {
        report.Line(false, "  reachable",
                    "GET " + url + ": HTTP " + std::to_string(response->status) + latency +
                        ": the server is failing");
      } else if (std::optional<std::vector<std::string>> models = ListedModels(response->body);
                 !models) {
        // A proxy's login page, a web UI at the base URL: requests would get the same.
        std::string begins = Visible(ValidUtf8(response->body.substr(0, 80)));
        std::replace(begins.begin(), begins.end(), '\n', ' ');
        report.Line(false, "  reachable",
                    "GET " + url + ": HTTP " + std::to_string(response->status) + latency +
                        ", but not the API's answer (it begins '" + begins +
                        "'): check the base URL, and any proxy between");
      } else {
        std::string line = "GET " + url + ": HTTP " + std::to_string(response->status) + latency;
        const bool is_ollama = profile.provider == "ollama";
        const bool is_listed =
            models->empty() ||
            std::any_of(models->begin(), models->end(), [&](const std::string& name) {
              return name == profile.model || (is_ollama && name == profile.model + ":latest");
            });
        if (is_listed) {
          report.Line(true, "  reachable", line);
        } else if (is_ollama) {  // Ollama's list is what it can run.
          report.Line(false, "  reachable",
                      line + ", but model '" + profile.model + "' is not pulled: `ollama pull " +
                          profile.model + "`");
        } else {  // Gateways take names they do not list: said, not failed.
          report.Line(true, "  reachable",
                      line + "; model '" + profile.model + "' is not among the " +
                          std::to_string(models->size()) + " it lists");
        }
      }
    }
  }
  CheckRipgrep(report);
  CheckSessionStore(report);
  return report.End();
}

}  // namespace

std::string DescribeProfilesInUse(const Config& config) {
  Result<llm::internal::ResolvedProfiles> resolved =
      llm::internal::ResolveProfiles(config, environ);
  if (!resolved.ok()) return "# profiles: " + resolved.error().message() + "\n";
  if (!config.profiles.empty()) return {};  // The file's, shown above.
  std::string out = "# No profiles are configured: these come from the environment";
  out += resolved->profiles.size() > 1 ? " (the first is the default):\n" : ":\n";
  for (const llm::internal::ResolvedProfile& profile : resolved->profiles) {
    const llm::ProfileInfo& info = profile.info;
    out += "#   " + info.name + ": " + info.provider + " " + info.model + " at " + info.base_url +
           (info.has_api_key ? " (key from " + info.api_key_source + ")" : "") + "\n";
  }
  return out;
}

void AddLlmCommands(CLI::App& app, CLI::App& bench, CommandRun& run, BadConfigRun& on_bad_config) {
  auto complete = std::make_shared<CompleteFlags>();
  CLI::App* complete_cmd = app.add_subcommand(
      "complete", "Send one prompt to a provider and stream the answer to stdout (usage and cost "
                  "to stderr); Ctrl-C cancels");
  complete_cmd->add_option("prompt", complete->prompt, "The prompt; '-' reads standard input");
  AddProviderFlags(*complete_cmd, *complete);
  complete_cmd->add_option("--system", complete->system, "System prompt");
  complete_cmd->add_option_function<int64_t>(
      "--max-tokens", [complete](const int64_t& value) { complete->max_tokens = value; },
      "Largest answer, in tokens");
  complete_cmd->add_option_function<double>(
      "--temperature", [complete](const double& value) { complete->temperature = value; },
      "Sampling temperature: 0-2 (0-1 for Anthropic)");
  complete_cmd->add_flag("--json", complete->json, "Print one JSON event per line instead of text");
  complete_cmd->add_flag("--show-reasoning", complete->show_reasoning,
                         "Print the model's reasoning to stderr (dimmed on a terminal)");
  complete_cmd->callback([&run, complete] {
    run = [complete](const Config& config) { return Complete(config, *complete); };
  });

  auto models = std::make_shared<ModelsFlags>();
  CLI::App* models_cmd = app.add_subcommand(
      "models", "List the model catalog: context window, output limit, capabilities, prices");
  models_cmd->add_option("--provider", models->provider, "Only this provider's models");
  models_cmd->add_flag("--json", models->json, "Print a JSON array instead of a table");
  models_cmd->callback([&run, models] {
    run = [models](const Config& config) { return Models(config, *models); };
  });

  CLI::App* doctor_cmd = app.add_subcommand(
      "doctor", "Check the configuration, provider keys (never printed), provider reachability "
                "and ripgrep; exit 1 when something is wrong");
  auto doctor = std::make_shared<ProviderFlags>();
  AddProviderFlags(*doctor_cmd, *doctor);  // Checks the setup a command with these flags uses.
  doctor_cmd->callback([&run, &on_bad_config, doctor] {
    run = [doctor](const Config& config) { return Doctor(config, *doctor); };
    on_bad_config = DoctorWithoutConfig;
  });

  AddBenchProvidersCommand(bench, run);
}

}  // namespace lai::cli
