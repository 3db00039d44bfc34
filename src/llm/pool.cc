#include "llm/pool.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "base/strings.h"
#include "http/client.h"
#include "http/retry.h"
#include "llm/internal/adapter.h"
#include "llm/internal/profiles.h"

namespace lai::llm {

std::vector<std::string> DefaultKeyVariables() {
  std::vector<std::string> variables;
  for (const internal::ProviderSpec& spec : internal::Providers()) {
    if (!spec.default_key_env.empty()) variables.emplace_back(spec.default_key_env);
  }
  return variables;
}

namespace {

using Clock = std::chrono::steady_clock;
using internal::ResolvedProfile;

// The largest error body kept for the error message.
constexpr size_t kMaxErrorBodyBytes = 64 << 10;

// "https://api.openai.com/v1" -> "https://api.openai.com": one circuit per endpoint.
std::string EndpointOf(std::string_view url) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  return std::string(url.substr(0, url.find('/', start)));
}

double Random01() {
  thread_local std::mt19937_64 generator(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(generator);
}

// Worth another attempt (same profile after a delay, or the fallback profile).
bool IsRetryable(ErrorKind kind) {
  return kind == ErrorKind::kRateLimited || kind == ErrorKind::kOverloaded ||
         kind == ErrorKind::kUnavailable || kind == ErrorKind::kTimeout;
}

// Says the endpoint is unhealthy (counts towards opening its circuit).
bool IsEndpointFailure(ErrorKind kind) {
  return kind == ErrorKind::kOverloaded || kind == ErrorKind::kUnavailable ||
         kind == ErrorKind::kTimeout;
}

StreamError TransportError(const std::string& provider, const Status& status, bool after_output) {
  StreamError error;
  error.kind = status.code() == ErrorCode::kTimeout     ? ErrorKind::kTimeout
               : status.code() == ErrorCode::kCancelled ? ErrorKind::kCancelled
                                                        : ErrorKind::kUnavailable;
  std::string reason = status.ok() ? "connection closed" : status.error().message();
  error.message = after_output ? fmt::format("the stream from {} broke after partial output: {}",
                                             provider, reason)
                               : fmt::format("request to {} failed: {}", provider, reason);
  return error;
}

StreamEvent ErrorEvent(StreamError error) {
  StreamEvent event;
  event.kind = StreamEvent::Kind::kError;
  event.error = std::move(error);
  return event;
}

}  // namespace

class StreamImpl;

// What the pool and its streams share; streams keep it alive. It does not own the HTTP client:
// the last reference to a client must never be dropped on the client's own I/O thread (which is
// where stream handlers end), so ProviderPool::Impl owns it and waits until no stream uses it.
struct PoolShared {
  // The HTTP client, or an error: the one given at construction, else made by the first request,
  // so a pool that never streams (an idle agent, `models`) never loads libcurl and TLS.
  Result<http::Client*> Http() {
    std::call_once(http_once, [this] {
      if (http.load() != nullptr) return;
      Result<std::unique_ptr<http::Client>> client = http::Client::Create(http_options);
      if (!client.ok()) {
        http_error = std::move(client).error();
        return;
      }
      http_owned = std::move(*client);
      http.store(http_owned.get());
    });
    if (http_error) return *http_error;
    return http.load();
  }
  std::once_flag http_once;
  std::atomic<http::Client*> http{nullptr};  // Set before or in Http(); then constant.
  std::shared_ptr<http::Client> http_owned;  // Made by Http(); moved out by ~ProviderPool.
  std::optional<Error> http_error;           // Set once in Http().
  http::ClientOptions http_options;

  // Immutable after construction.
  Catalog catalog;
  std::vector<ResolvedProfile> profiles;
  std::string default_profile;
  PoolOptions options;
  std::vector<std::unique_ptr<http::RateLimiter>> limiters;               // One per profile.
  // By endpoint and model: an overloaded model must not close its host to the fallback profile
  // that names another model there (Opus overloaded, Sonnet answering).
  std::map<std::string, std::unique_ptr<http::CircuitBreaker>> breakers;
  std::vector<http::CircuitBreaker*> profile_breakers;                    // One per profile.

  std::mutex streams_mutex;
  std::vector<std::weak_ptr<StreamImpl>> streams;  // Guarded by streams_mutex.

  // Counts work that may still use `http`: transfers not yet completed, retry and delivery
  // threads not yet finished.
  void Hold() {
    std::lock_guard lock(busy_mutex);
    ++busy;
  }
  void Release() {
    std::lock_guard lock(busy_mutex);
    if (--busy == 0) idle.notify_all();
  }
  void WaitUntilIdle() {
    std::unique_lock lock(busy_mutex);
    idle.wait(lock, [&] { return busy == 0; });
  }
  std::mutex busy_mutex;
  std::condition_variable idle;
  int busy = 0;  // Guarded by busy_mutex.

  int FindProfile(std::string_view name) const {
    for (size_t i = 0; i < profiles.size(); ++i) {
      if (profiles[i].info.name == name) return static_cast<int>(i);
    }
    return -1;
  }
};

// Why `profile` cannot make a request (it needs a key it does not have); nullopt when it can.
std::optional<std::string> MissingKey(const ResolvedProfile& profile) {
  if (profile.endpoint.api_key_source.empty() || !profile.endpoint.api_key.empty()) {
    return std::nullopt;
  }
  std::string message =
      fmt::format("no API key for profile '{}' ({}): {} is not set or empty; export it",
                  profile.info.name, profile.info.provider, profile.endpoint.api_key_source);
  if (profile.is_configured) {
    message += fmt::format(", or set api_key_env or api_key in [profiles.{}]", profile.info.name);
  }
  return message;
}

// One completion: attempts on the profile, retries, fallback, and the one terminal event.
// Handlers run on the HTTP I/O thread; delayed retries on a short-lived thread each; Cancel from
// any thread. The sink is called under emit_mutex_, so never concurrently. Thread-safe.
class StreamImpl final : public StreamHandle, public std::enable_shared_from_this<StreamImpl> {
 public:
  StreamImpl(std::shared_ptr<PoolShared> shared, int profile, CompletionRequest request,
             EventSink sink)
      : shared_(std::move(shared)),
        first_profile_(profile),
        request_(std::move(request)),
        sink_(std::move(sink)),
        profile_(profile) {
    visited_.push_back(profile);
  }

  void Start() {
    starting_thread_ = std::this_thread::get_id();
    is_starting_ = true;
    Begin();
    is_starting_ = false;
  }

  void Cancel() override {
    std::optional<http::Client::TransferId> transfer;
    {
      std::lock_guard lock(mutex_);
      if (is_cancelled_) return;
      is_cancelled_ = true;
      transfer = transfer_;
    }
    wake_.notify_all();
    // The transfer's on_complete(kCancelled) emits the terminal event; a stream waiting for a
    // retry wakes up and emits it; a stream between the two sees is_cancelled_.
    if (transfer) shared_->http.load()->Cancel(*transfer);
  }

 private:
  struct Attempt {
    http::Client::TransferId id = 0;
    bool is_completed = false;  // Guarded by StreamImpl::mutex_.
    // Only on the I/O thread, during the transfer:
    int status = 0;
    std::vector<http::Header> headers;
    std::string error_body;
    std::unique_ptr<internal::StreamParser> parser;
    std::optional<StreamError> pending_error;  // A retryable error before any output.
    // Never shown (the key, header values): removed from what the provider's errors say.
    std::vector<std::string> secrets;
    ModelInfo model;
    std::string model_id;
    http::CircuitBreaker* breaker = nullptr;  // Owed one Record call while non-null.
    // Sent while the circuit is open (a new request with nowhere else to go): a success closes
    // it, a failure is not retried.
    bool is_past_open_circuit = false;
  };

  // The fallback profile this request could still move on to, or -1.
  int NextFallback() const {
    const ResolvedProfile& current = profile();
    if (current.fallback.empty() || request_.best_effort) return -1;
    int next = shared_->FindProfile(current.fallback);
    bool is_new = std::find(visited_.begin(), visited_.end(), next) == visited_.end();
    return next >= 0 && is_new ? next : -1;
  }

  const ResolvedProfile& profile() const { return shared_->profiles[profile_]; }

  bool is_cancelled() {
    std::lock_guard lock(mutex_);
    return is_cancelled_;
  }

  // Rate limit, then Send.
  void Begin() {
    if (is_cancelled()) return EmitCancelled();
    const ResolvedProfile& current = profile();
    if (std::optional<std::string> missing = MissingKey(current)) {
      StreamError error;
      error.kind = ErrorKind::kInvalidKey;
      error.message = std::move(*missing);
      return Fail(std::move(error), /*may_retry=*/false);
    }
    auto wait = shared_->limiters[profile_]->Reserve(Clock::now());
    if (wait >= std::chrono::seconds(1)) {  // A silent wait this long looks like a hang.
      spdlog::warn(
          "profile '{}' is at its limit of {} request{} a minute; waiting {}", current.info.name,
          current.rate_limit_per_minute, current.rate_limit_per_minute == 1 ? "" : "s",
          internal::DelayText(std::chrono::duration_cast<std::chrono::milliseconds>(wait)));
    }
    if (wait > std::chrono::nanoseconds(0)) {
      return After(std::chrono::duration_cast<std::chrono::milliseconds>(wait) +
                       std::chrono::milliseconds(1),
                   [](StreamImpl& self) { self.Send(); });
    }
    Send();
  }

  void Send() {
    if (is_cancelled()) return EmitCancelled();
    const ResolvedProfile& current = profile();
    http::CircuitBreaker* breaker = shared_->profile_breakers[profile_];
    Clock::time_point now = Clock::now();
    // An open circuit sends a request on to its fallback at once; one with no fallback still
    // gets its first attempt (the user's own retry was refused for 30 s after one failed
    // prompt), but no retries while the circuit stays open.
    const bool is_past_open_circuit = !breaker->Allow(now);
    if (is_past_open_circuit && (attempt_ > 0 || NextFallback() >= 0 || request_.best_effort)) {
      StreamError error;
      error.kind = ErrorKind::kUnavailable;
      error.message = fmt::format(
          "{} at {} is failing for {}: its circuit is open after repeated failures; next try in "
          "{} s",
          current.info.provider, EndpointOf(current.info.base_url), current.info.model,
          (breaker->RetryIn(now).count() + 999) / 1000);
      return Fail(std::move(error), /*may_retry=*/false);
    }
    auto attempt = std::make_shared<Attempt>();
    attempt->breaker = request_.best_effort ? nullptr : breaker;
    attempt->is_past_open_circuit = is_past_open_circuit;
    is_past_open_circuit_ = is_past_open_circuit;
    attempt->model_id =
        profile_ == first_profile_ && !request_.model.empty() ? request_.model : current.info.model;
    attempt->model = shared_->catalog.Resolve(current.info.provider, attempt->model_id);
    CompletionRequest request = request_;
    request.model = attempt->model_id;
    // A fallback's model has its own output limit: the request's (the first model's) is cut to
    // it, or left to the provider when it is not known (a 40000 sent to gpt-4o was refused).
    if (request.max_tokens && profile_ != first_profile_) {
      if (attempt->model.max_output_tokens > 0) {
        request.max_tokens = std::min(*request.max_tokens, attempt->model.max_output_tokens);
      } else {
        request.max_tokens.reset();
      }
    }
    if (request.reasoning_effort.empty() && !request.reasoning_budget_tokens) {
      request.reasoning_effort = current.reasoning_effort;
      if (current.thinking_budget_tokens > 0) {
        request.reasoning_budget_tokens = current.thinking_budget_tokens;
      }
    }
    Result<http::Request> built =
        internal::BuildRequest(*current.spec, current.endpoint, request,
                               shared_->catalog.Find(current.info.provider, attempt->model_id));
    if (!built.ok()) {
      breaker->RecordSuccess();
      StreamError error;
      error.kind = ErrorKind::kInvalidRequest;
      error.message = built.error().message();
      return Fail(std::move(error), /*may_retry=*/false);
    }
    std::shared_ptr<StreamImpl> self = shared_from_this();
    Attempt* raw = attempt.get();
    attempt->secrets = internal::SecretsOf(current.endpoint);
    attempt->parser = internal::NewStreamParser(
        *current.spec, current.info.provider,
        fmt::format("call_{:08x}", static_cast<uint32_t>(Random01() * 4294967295.0)),
        [this, raw](const StreamEvent& event) { Deliver(*raw, event); });

    http::Handlers handlers;
    handlers.on_headers = [attempt](int status, const std::vector<http::Header>& headers) {
      attempt->status = status;
      attempt->headers = headers;
    };
    handlers.on_data = [attempt](std::string_view chunk) {
      if (attempt->status >= 200 && attempt->status < 300) {
        attempt->parser->Feed(chunk);
      } else if (attempt->error_body.size() < kMaxErrorBodyBytes) {
        attempt->error_body.append(
            chunk.substr(0, kMaxErrorBodyBytes - attempt->error_body.size()));
      }
    };
    handlers.on_complete = [self, attempt](Status status) {
      self->OnComplete(*attempt, std::move(status));
      self->shared_->Release();  // Last: a new attempt started above holds its own.
    };
    Result<http::Client*> client = shared_->Http();
    if (!client.ok()) {
      breaker->RecordSuccess();  // Not the endpoint's fault.
      StreamError error;
      error.kind = ErrorKind::kUnavailable;
      error.message = "HTTP client: " + client.error().message();
      return Fail(std::move(error), /*may_retry=*/false);
    }
    shared_->Hold();
    http::Client::TransferId id = (*client)->Start(std::move(*built), std::move(handlers));
    bool cancel_now = false;
    {
      std::lock_guard lock(mutex_);
      attempt->id = id;
      if (!attempt->is_completed) transfer_ = id;
      cancel_now = is_cancelled_;
    }
    if (cancel_now) (*client)->Cancel(id);
  }

  // Parser output, on the I/O thread.
  void Deliver(Attempt& attempt, const StreamEvent& event) {
    switch (event.kind) {
      case StreamEvent::Kind::kUsage: {
        StreamEvent priced = event;
        priced.usage.cost_usd = CostOf(attempt.model, event.usage);
        std::lock_guard lock(emit_mutex_);
        if (is_terminated_) return;
        // Usage alone is not output: held back, a stream failing now may still be retried.
        if (!has_output_) {
          held_usage_ = std::move(priced);
        } else {
          sink_(priced);
        }
        return;
      }
      case StreamEvent::Kind::kError: {
        // A provider may quote the key back in an error inside the stream, as in an HTTP one.
        if (std::any_of(attempt.secrets.begin(), attempt.secrets.end(),
                        [&](const std::string& secret) {
                          return event.error.message.find(secret) != std::string::npos;
                        })) {
          StreamEvent redacted = event;
          redacted.error.message =
              internal::RedactAll(std::move(redacted.error.message), attempt.secrets);
          return Deliver(attempt, redacted);
        }
        bool has_output = false;
        {
          std::lock_guard lock(emit_mutex_);
          has_output = has_output_;
        }
        if (!has_output && IsRetryable(event.error.kind) && !attempt.pending_error) {
          // Retried (or reported) once the transfer is gone.
          attempt.pending_error = event.error;
          http::Client::TransferId id = 0;
          {
            std::lock_guard lock(mutex_);
            id = attempt.id;
          }
          if (id != 0) shared_->http.load()->Cancel(id);
          return;
        }
        EmitTerminal(event);
        return;
      }
      case StreamEvent::Kind::kDone: {
        // Recorded before the caller hears of it: its next request finds the circuit closed.
        RecordOutcome(attempt, std::nullopt);
        StreamEvent done = event;
        done.profile = profile().info.name;
        done.model = attempt.model_id;
        EmitTerminal(std::move(done));
        return;
      }
      default: {
        std::lock_guard lock(emit_mutex_);
        if (is_terminated_) return;
        if (held_usage_) {
          sink_(*held_usage_);
          held_usage_.reset();
        }
        has_output_ = true;
        sink_(event);
        return;
      }
    }
  }

  void RecordOutcome(Attempt& attempt, std::optional<ErrorKind> failure) {
    if (attempt.breaker == nullptr) return;
    if (failure && IsEndpointFailure(*failure)) {
      // Sent past the open circuit: no probe of it, which stays open as it was.
      if (!attempt.is_past_open_circuit) attempt.breaker->RecordFailure(Clock::now());
    } else {
      attempt.breaker->RecordSuccess();
    }
    attempt.breaker = nullptr;
  }

  void OnComplete(Attempt& attempt, Status status) {
    bool is_cancelled_now = false;
    {
      std::lock_guard lock(mutex_);
      attempt.is_completed = true;
      if (transfer_ && *transfer_ == attempt.id) transfer_.reset();
      is_cancelled_now = is_cancelled_;
    }
    const ResolvedProfile& current = profile();
    if (attempt.pending_error) {
      RecordOutcome(attempt, attempt.pending_error->kind);
      return Fail(*attempt.pending_error, /*may_retry=*/true);
    }
    if (is_cancelled_now || status.code() == ErrorCode::kCancelled) {
      RecordOutcome(attempt, std::nullopt);
      return EmitCancelled();
    }
    bool is_success = attempt.status >= 200 && attempt.status < 300;
    if (is_success && status.ok()) {
      RecordOutcome(attempt, std::nullopt);
      attempt.parser->Finish();
      // A stream that ended early without output (e.g. truncated) may be retried.
      if (attempt.pending_error) return Fail(*attempt.pending_error, /*may_retry=*/true);
      return;
    }
    if (is_success || attempt.status == 0) {
      bool has_output = false;
      {
        std::lock_guard lock(emit_mutex_);
        has_output = has_output_;
      }
      StreamError error = TransportError(current.info.provider, status, has_output);
      RecordOutcome(attempt, error.kind);
      if (!current.setup_hint.empty() && attempt.status == 0) {
        error.message += "; " + current.setup_hint;
        return Fail(std::move(error), /*may_retry=*/false);
      }
      return Fail(std::move(error), /*may_retry=*/true);
    }
    StreamError error = internal::ErrorFromResponse(
        current.endpoint, attempt.model_id, attempt.status, attempt.headers, attempt.error_body);
    RecordOutcome(attempt, error.kind);
    // The provider may say whether a retry can help (the OpenAI and Anthropic SDKs honour it).
    std::string_view should_retry = http::FindHeader(attempt.headers, "x-should-retry");
    if (should_retry == "false") {
      constexpr std::string_view kLater = "; retry later";
      if (error.message.ends_with(kLater))
        error.message.resize(error.message.size() - kLater.size());
      error.message += " (the provider says a retry will not help)";
    }
    Fail(std::move(error), /*may_retry=*/should_retry != "false");
  }

  // Retries, falls back or reports `error`.
  void Fail(StreamError error, bool may_retry) {
    if (is_cancelled()) return EmitCancelled();
    {
      std::lock_guard lock(emit_mutex_);
      if (is_terminated_) return;
      if (has_output_) {
        // Never retried: the caller has seen part of an answer (a fallback's, the note says).
        is_terminated_ = true;
        if (!fallback_note_.empty()) {
          error.message = fallback_note_ + "then its fallback '" + profile().info.name +
                          "' answered in part and failed (" + error.message + ")";
        }
        sink_(ErrorEvent(std::move(error)));
        return;
      }
      held_usage_.reset();  // The next attempt reports its own.
    }
    const PoolOptions& options = shared_->options;
    if (is_past_open_circuit_ && may_retry && IsRetryable(error.kind)) {
      may_retry = false;
      error.message +=
          "; not retried: this endpoint has failed repeatedly, and lapce-ai retries "
          "it again after its cool-down";
    }
    // A provider that asks for a longer wait than we would ever make is not waited on at all:
    // minutes of silence, then the same refusal, help nobody.
    bool is_wait_too_long = error.retry_after && *error.retry_after > options.max_retry_after;
    if (is_wait_too_long) {
      error.message += fmt::format(", longer than lapce-ai waits by itself ({}); not retried",
                                   internal::DelayText(options.max_retry_after));
    }
    if (may_retry && !is_wait_too_long && IsRetryable(error.kind) && !request_.best_effort &&
        attempt_ + 1 < options.max_attempts) {
      std::chrono::milliseconds delay;
      if (error.retry_after) {
        delay = *error.retry_after;
      } else {
        http::BackoffPolicy policy;
        policy.initial = options.backoff_initial;
        policy.max = options.backoff_max;
        delay = http::BackoffDelay(policy, attempt_, Random01());
      }
      ++attempt_;
      // Said where the user sees it (stderr, the editor's log, the caller): a wait is not a
      // hang. The provider's words, as any control characters in them are shown (not obeyed).
      std::string retrying =
          fmt::format("{}; retrying in {} (attempt {} of {})", Visible(error.message),
                      internal::DelayText(delay), attempt_ + 1, options.max_attempts);
      spdlog::warn("{}", retrying);
      EmitRetrying(std::move(retrying));
      return After(delay, [](StreamImpl& self) { self.Begin(); });
    }
    const ResolvedProfile& current = profile();
    if (int next = IsRetryable(error.kind) ? NextFallback() : -1; next >= 0) {
      visited_.push_back(next);
      fallback_note_ += fmt::format("profile '{}' failed ({}{}); ", current.info.name,
                                    error.message, GaveUpAfter());
      // Said where the user sees it: another (maybe weaker, maybe paid) model answers.
      const ResolvedProfile& fallback = shared_->profiles[static_cast<size_t>(next)];
      std::string note =
          fmt::format("profile '{}' is unavailable ({}); its fallback '{}' ({} {}) answers instead",
                      current.info.name, Visible(error.message), fallback.info.name,
                      fallback.info.provider, fallback.info.model);
      spdlog::warn("{}", note);
      EmitRetrying(std::move(note));
      profile_ = next;
      attempt_ = 0;
      return Begin();
    }
    error.message += GaveUpAfter();
    if (!fallback_note_.empty()) {
      error.message = fallback_note_ + "then its fallback '" + current.info.name + "' failed (" +
                      error.message + ")";
    }
    EmitTerminal(ErrorEvent(std::move(error)));
  }

  // " (gave up after N attempts)" on the current profile, when there was more than one.
  std::string GaveUpAfter() const {
    return attempt_ > 0 ? fmt::format(" (gave up after {} attempts)", attempt_ + 1) : "";
  }

  // Runs `step` after `delay` on a thread of its own, or at once when cancelled.
  void After(std::chrono::milliseconds delay, void (*step)(StreamImpl&)) {
    std::shared_ptr<StreamImpl> self = shared_from_this();
    shared_->Hold();
    std::thread([self, delay, step] {
      {
        std::unique_lock lock(self->mutex_);
        self->wake_.wait_for(lock, delay, [&] { return self->is_cancelled_; });
      }
      step(*self);
      self->shared_->Release();
    }).detach();
  }

  void EmitCancelled() {
    StreamError error;
    error.kind = ErrorKind::kCancelled;
    error.message = fmt::format("request to {} cancelled", profile().info.provider);
    EmitTerminal(ErrorEvent(std::move(error)));
  }

  // A retry or a fallback, told to the sink (not output). Never from inside Stream() on the
  // caller's thread, where it may hold its own locks: there the log alone says it. (The I/O
  // thread may decide on a retry before Stream() has returned; it tells the sink.)
  void EmitRetrying(std::string text) {
    if (is_starting_ && std::this_thread::get_id() == starting_thread_) return;
    std::lock_guard lock(emit_mutex_);
    if (is_terminated_) return;
    StreamEvent event;
    event.kind = StreamEvent::Kind::kRetrying;
    event.text = std::move(text);
    sink_(event);
  }

  void EmitTerminal(StreamEvent event) {
    if (is_starting_) {
      // Never call the sink from inside Stream(): the caller may hold its own locks.
      StreamEvent copy = std::move(event);
      std::shared_ptr<StreamImpl> self = shared_from_this();
      shared_->Hold();
      std::thread([self, copy] {
        self->EmitTerminal(copy);
        self->shared_->Release();
      }).detach();
      return;
    }
    std::lock_guard lock(emit_mutex_);
    if (is_terminated_) return;
    is_terminated_ = true;
    if (held_usage_ && event.kind == StreamEvent::Kind::kDone) sink_(*held_usage_);
    held_usage_.reset();
    sink_(event);
  }

  const std::shared_ptr<PoolShared> shared_;
  // The current attempt was sent past an open circuit (Send): it is not retried.
  bool is_past_open_circuit_ = false;
  const int first_profile_;
  const CompletionRequest request_;
  const EventSink sink_;
  // Set only while Start() runs on the caller's thread.
  std::atomic<bool> is_starting_{false};
  std::thread::id starting_thread_;  // Set before is_starting_.

  std::mutex mutex_;
  std::condition_variable wake_;
  bool is_cancelled_ = false;                         // Guarded by mutex_.
  std::optional<http::Client::TransferId> transfer_;  // Guarded by mutex_.

  // Touched by one step at a time (the caller's Start, then the I/O thread or a retry thread).
  int profile_;
  int attempt_ = 0;
  std::vector<int> visited_;
  std::string fallback_note_;

  std::mutex emit_mutex_;
  bool is_terminated_ = false;  // Guarded by emit_mutex_.
  bool has_output_ = false;     // Guarded by emit_mutex_: a non-usage event reached the sink.
  std::optional<StreamEvent> held_usage_;  // Guarded by emit_mutex_.
};

struct ProviderPool::Impl {
  std::shared_ptr<http::Client> http;
  std::shared_ptr<PoolShared> shared;  // shared->http points into `http`.
};

namespace {

Result<std::shared_ptr<PoolShared>> MakeShared(const Config& config,
                                               internal::ResolvedProfiles resolved, Catalog catalog,
                                               std::shared_ptr<http::Client>& http,
                                               const PoolOptions& options) {
  if (options.max_attempts < 1 || options.breaker_failure_threshold < 1) {
    return Error(ErrorCode::kInvalidArgument,
                 "pool options: max_attempts and breaker_failure_threshold must be at least 1");
  }
  auto shared = std::make_shared<PoolShared>();
  shared->http.store(http.get());
  shared->http_options = HttpClientOptions(config);
  shared->catalog = std::move(catalog);
  shared->profiles = std::move(resolved.profiles);
  shared->default_profile = std::move(resolved.default_profile);
  shared->options = options;
  http::CircuitBreakerOptions breaker_options;
  breaker_options.failure_threshold = options.breaker_failure_threshold;
  breaker_options.cool_down = options.breaker_cool_down;
  for (const ResolvedProfile& profile : shared->profiles) {
    shared->limiters.push_back(
        std::make_unique<http::RateLimiter>(static_cast<int>(profile.rate_limit_per_minute)));
    std::unique_ptr<http::CircuitBreaker>& breaker =
        shared->breakers[EndpointOf(profile.info.base_url) + " " + profile.info.model];
    if (breaker == nullptr) breaker = std::make_unique<http::CircuitBreaker>(breaker_options);
    shared->profile_breakers.push_back(breaker.get());
  }
  return shared;
}

const char* const* EnvironmentOf(const PoolOptions& options) {
  return options.environ != nullptr ? options.environ : ::environ;
}

}  // namespace

http::ClientOptions HttpClientOptions(const Config& config) {
  http::ClientOptions options;
  options.max_connections_per_host = config.llm.max_connections_per_host;
  options.max_total_connections =
      std::max<long>(options.max_total_connections, config.llm.max_connections_per_host);
  return options;
}

Result<std::unique_ptr<ProviderPool>> ProviderPool::Create(const Config& config,
                                                           std::shared_ptr<http::Client> http) {
  return Create(config, std::move(http), PoolOptions{});
}

Result<std::unique_ptr<ProviderPool>> ProviderPool::CreateAdHoc(
    const Config& config, const ProfileInfo& profile, std::shared_ptr<http::Client> http) {
  return CreateAdHoc(config, profile, std::move(http), PoolOptions{});
}

Result<std::unique_ptr<ProviderPool>> ProviderPool::Create(const Config& config,
                                                           std::shared_ptr<http::Client> http,
                                                           const PoolOptions& options) {
  ASSIGN_OR_RETURN(internal::ResolvedProfiles resolved,
                   internal::ResolveProfiles(config, EnvironmentOf(options)));
  if (!options.default_profile.empty()) {
    RETURN_IF_ERROR(internal::CheckProfileName(resolved, options.default_profile));
    resolved.default_profile = options.default_profile;
  }
  if (!options.model.empty()) {
    const std::string& name =
        options.model_profile.empty() ? resolved.default_profile : options.model_profile;
    auto it = std::find_if(resolved.profiles.begin(), resolved.profiles.end(),
                           [&](const ResolvedProfile& p) { return p.info.name == name; });
    if (it == resolved.profiles.end()) {
      return Error(ErrorCode::kInvalidArgument, "no profile '" + name + "' to use model '" +
                                                    options.model +
                                                    "' with; `lapce-ai doctor` lists the profiles");
    }
    it->info.model = options.model;
  }
  ASSIGN_OR_RETURN(Catalog catalog, internal::CatalogFromConfig(config));
  auto impl = std::make_unique<Impl>();
  ASSIGN_OR_RETURN(impl->shared,
                   MakeShared(config, std::move(resolved), std::move(catalog), http, options));
  impl->http = std::move(http);
  return std::unique_ptr<ProviderPool>(new ProviderPool(std::move(impl)));
}

Result<std::unique_ptr<ProviderPool>> ProviderPool::CreateAdHoc(const Config& config,
                                                                const ProfileInfo& profile,
                                                                std::shared_ptr<http::Client> http,
                                                                const PoolOptions& options) {
  ASSIGN_OR_RETURN(ResolvedProfile resolved,
                   internal::ResolveAdHocProfile(profile, EnvironmentOf(options)));
  internal::ResolvedProfiles profiles;
  profiles.default_profile = resolved.info.name;
  profiles.profiles.push_back(std::move(resolved));
  ASSIGN_OR_RETURN(Catalog catalog, internal::CatalogFromConfig(config));
  auto impl = std::make_unique<Impl>();
  ASSIGN_OR_RETURN(impl->shared,
                   MakeShared(config, std::move(profiles), std::move(catalog), http, options));
  impl->http = std::move(http);
  return std::unique_ptr<ProviderPool>(new ProviderPool(std::move(impl)));
}

ProviderPool::ProviderPool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ProviderPool::~ProviderPool() {
  std::vector<std::shared_ptr<StreamImpl>> live;
  {
    std::lock_guard lock(impl_->shared->streams_mutex);
    for (const auto& weak : impl_->shared->streams) {
      if (auto stream = weak.lock()) live.push_back(std::move(stream));
    }
  }
  for (const auto& stream : live) stream->Cancel();
  // Cancelled transfers complete and waiting retries wake at once; after this nothing touches
  // the client, which may then be destroyed here (never on its I/O thread).
  impl_->shared->WaitUntilIdle();
  // A client the pool made is destroyed here with the pool, never on its own I/O thread (a
  // stream's last reference to the shared state may drop there).
  if (impl_->shared->http_owned) impl_->http = std::move(impl_->shared->http_owned);
}

Result<std::shared_ptr<StreamHandle>> ProviderPool::Stream(std::string_view profile,
                                                           CompletionRequest request,
                                                           EventSink sink) {
  PoolShared& shared = *impl_->shared;
  std::string_view name = profile.empty() ? std::string_view(shared.default_profile) : profile;
  int index = shared.FindProfile(name);
  if (index < 0) {
    std::string names;
    for (const ResolvedProfile& p : shared.profiles) {
      names += (names.empty() ? "" : ", ") + p.info.name;
    }
    return Error(ErrorCode::kNotFound,
                 fmt::format("no profile {} (profiles: {})", Clipped(name, '\''), names));
  }
  auto stream =
      std::make_shared<StreamImpl>(impl_->shared, index, std::move(request), std::move(sink));
  {
    std::lock_guard lock(shared.streams_mutex);
    std::erase_if(shared.streams,
                  [](const std::weak_ptr<StreamImpl>& weak) { return weak.expired(); });
    shared.streams.push_back(stream);
  }
  stream->Start();
  return std::shared_ptr<StreamHandle>(std::move(stream));
}

Status ProviderPool::CheckKey(std::string_view profile) const {
  const PoolShared& shared = *impl_->shared;
  int index =
      shared.FindProfile(profile.empty() ? std::string_view(shared.default_profile) : profile);
  if (index < 0) return OkStatus();  // Stream says which profiles there are.
  if (std::optional<std::string> missing =
          MissingKey(shared.profiles[static_cast<size_t>(index)])) {
    return Error(ErrorCode::kInvalidArgument, std::move(*missing));
  }
  return OkStatus();
}

Result<http::Request> ProviderPool::ModelListRequest(std::string_view profile) const {
  const PoolShared& shared = *impl_->shared;
  int index = shared.FindProfile(profile);
  if (index < 0) return Error(ErrorCode::kNotFound, "no profile '" + std::string(profile) + "'");
  const ResolvedProfile& resolved = shared.profiles[static_cast<size_t>(index)];
  const internal::Endpoint& endpoint = resolved.endpoint;
  const std::string& key = endpoint.api_key;
  http::Request request;
  request.method = "GET";
  switch (resolved.spec->wire) {
    case internal::WireFormat::kOpenAiChat:
      request.url = endpoint.base_url + "/models";
      if (!key.empty()) request.headers.push_back({"Authorization", "Bearer " + key});
      break;
    case internal::WireFormat::kAnthropic:
      request.url = endpoint.base_url + "/v1/models";
      request.headers.push_back({"anthropic-version", "2023-06-01"});
      if (!key.empty()) request.headers.push_back({"x-api-key", key});
      break;
    case internal::WireFormat::kGemini:
      request.url = endpoint.base_url + "/v1beta/models";
      if (!key.empty()) request.headers.push_back({"x-goog-api-key", key});
      break;
    case internal::WireFormat::kOllama:
      request.url = endpoint.base_url + "/api/tags";
      if (!key.empty()) request.headers.push_back({"Authorization", "Bearer " + key});
      break;
  }
  for (const http::Header& header : endpoint.headers) request.headers.push_back(header);
  request.connect_timeout = std::chrono::seconds(3);
  request.first_byte_timeout = std::chrono::seconds(5);
  request.idle_timeout = std::chrono::seconds(5);
  return request;
}

std::vector<ProfileInfo> ProviderPool::Profiles() const {
  std::vector<ProfileInfo> out;
  for (const ResolvedProfile& profile : impl_->shared->profiles) out.push_back(profile.info);
  return out;
}

const Catalog& ProviderPool::catalog() const { return impl_->shared->catalog; }

bool ProviderPool::KnowsCost(std::string_view provider, std::string_view model) const {
  const internal::ProviderSpec* spec = internal::FindProvider(provider);
  if (spec != nullptr && spec->default_key_env.empty()) return true;  // A local server.
  return impl_->shared->catalog.Find(provider, model) != nullptr;
}

std::string ProviderPool::default_profile() const { return impl_->shared->default_profile; }

}  // namespace lai::llm
