#include "http/client.h"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "base/check.h"
#include "base/log.h"
#include "base/unique_fd.h"

namespace lai::http {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often the I/O thread looks whether unsent requests have been sent (see EnforceDeadlines).
constexpr milliseconds kSentPoll{10};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool HasLineBreak(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

// "host" or "host:port" of `url`, for messages (never the path or query: they may hold keys).
Result<std::string> HostOf(const std::string& url) {
  CURLU* u = curl_url();
  LAI_CHECK(u != nullptr) << "curl_url";
  CURLUcode rc = curl_url_set(u, CURLUPART_URL, url.c_str(), 0);
  if (rc != CURLUE_OK) {
    curl_url_cleanup(u);
    return Error(ErrorCode::kInvalidArgument, std::string("http request: the URL is not valid (") +
                                                  curl_url_strerror(rc) +
                                                  "); give an absolute http:// or https:// URL");
  }
  std::string host;
  char* part = nullptr;
  if (curl_url_get(u, CURLUPART_HOST, &part, 0) == CURLUE_OK) {
    host = part;
    curl_free(part);
  }
  if (curl_url_get(u, CURLUPART_PORT, &part, 0) == CURLUE_OK) {
    host += ':';
    host += part;
    curl_free(part);
  }
  curl_url_cleanup(u);
  return host;
}

// " (through the proxy P, from VARIABLE)" when libcurl sends a request for `url` to `host` (no
// port) through a proxy from the environment, by libcurl's own rules: <scheme>_proxy (for https
// also HTTPS_PROXY; HTTP_PROXY is never read), then all_proxy / ALL_PROXY, unless no_proxy /
// NO_PROXY names the host (a suffix at a dot, or "*"). A failure then is often the proxy's; the
// bare message names a port the user never gave. The proxy's user and password are not shown.
std::string ProxyNote(std::string_view url, std::string_view host) {
  const bool is_https = EqualsIgnoreCase(url.substr(0, 6), "https:");
  const char* const names[] = {is_https ? "https_proxy" : "http_proxy",
                               is_https ? "HTTPS_PROXY" : nullptr, "all_proxy", "ALL_PROXY"};
  const char* variable = nullptr;
  std::string_view proxy;
  for (const char* name : names) {
    const char* value = name != nullptr ? std::getenv(name) : nullptr;
    if (value != nullptr && *value != '\0') {
      variable = name;
      proxy = value;
      break;
    }
  }
  if (variable == nullptr) return {};
  const char* no_proxy = std::getenv("no_proxy");
  if (no_proxy == nullptr || *no_proxy == '\0') no_proxy = std::getenv("NO_PROXY");
  for (std::string_view rest = no_proxy != nullptr ? no_proxy : ""; !rest.empty();) {
    size_t end = rest.find_first_of(", ");
    std::string_view entry = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    while (entry.starts_with('.')) entry.remove_prefix(1);
    if (entry.empty()) continue;
    if (entry == "*" || EqualsIgnoreCase(host, entry) ||
        (host.size() > entry.size() && host[host.size() - entry.size() - 1] == '.' &&
         EqualsIgnoreCase(host.substr(host.size() - entry.size()), entry))) {
      return {};
    }
  }
  if (size_t at = proxy.rfind('@'); at != std::string_view::npos) {
    size_t scheme = proxy.find("://");
    size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
    if (at > start)
      return " (through the proxy " + std::string(proxy.substr(0, start)) +
             std::string(proxy.substr(at + 1)) + ", from " + variable + ")";
  }
  return " (through the proxy " + std::string(proxy) + ", from " + variable + ")";
}

struct Transfer {
  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (header_list != nullptr) curl_slist_free_all(header_list);
  }

  Client::TransferId id = 0;
  Request request;
  Handlers handlers;
  std::string host;
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  char error_buffer[CURL_ERROR_SIZE] = {};
  Clock::time_point started;
  Clock::time_point last_activity;
  std::optional<Clock::time_point> request_sent_at;  // First seen by EnforceDeadlines.
  bool saw_response = false;                         // The first header line has arrived.
  bool headers_delivered = false;
  bool cancelled = false;  // Cancel() ran; no handler but on_complete runs any more.
  int status = 0;
  std::vector<Header> response_headers;
};

void DeliverHeaders(Transfer& t) {
  if (t.headers_delivered) return;
  t.headers_delivered = true;
  if (t.status == 0) {
    long code = 0;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &code);
    t.status = static_cast<int>(code);
  }
  if (t.handlers.on_headers) t.handlers.on_headers(t.status, t.response_headers);
}

size_t OnHeaderLine(char* buffer, size_t size, size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  size_t bytes = size * count;
  if (t.cancelled) return 0;
  if (t.headers_delivered) return bytes;  // Trailers after a chunked body: not reported.
  t.saw_response = true;
  t.last_activity = Clock::now();
  std::string_view line(buffer, bytes);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.starts_with("HTTP/")) {
    // A new response (an interim 1xx may come first): "HTTP/1.1 200 OK", "HTTP/2 200".
    t.response_headers.clear();
    t.status = 0;
    if (size_t space = line.find(' ');
        space != std::string_view::npos && space + 4 <= line.size()) {
      int code = 0;
      for (char c : line.substr(space + 1, 3)) {
        if (c < '0' || c > '9') return bytes;
        code = code * 10 + (c - '0');
      }
      t.status = code;
    }
    return bytes;
  }
  if (line.empty()) {
    if (t.status >= 100 && t.status < 200) return bytes;  // Interim response; the real one follows.
    DeliverHeaders(t);
    return t.cancelled ? 0 : bytes;
  }
  if ((line.front() == ' ' || line.front() == '\t') && !t.response_headers.empty()) {
    t.response_headers.back().value += ' ';
    t.response_headers.back().value += TrimSpace(line);  // Obsolete line folding.
    return bytes;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return bytes;
  t.response_headers.push_back(Header{std::string(TrimSpace(line.substr(0, colon))),
                                      std::string(TrimSpace(line.substr(colon + 1)))});
  return bytes;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  size_t bytes = size * count;
  if (t.cancelled) return 0;
  t.last_activity = Clock::now();
  DeliverHeaders(t);
  if (t.cancelled) return 0;
  if (t.handlers.on_data) t.handlers.on_data(std::string_view(data, bytes));
  return t.cancelled ? 0 : bytes;  // 0 makes curl abort the transfer.
}

}  // namespace

std::string_view FindHeader(const std::vector<Header>& headers, std::string_view name) {
  for (const Header& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return h.value;
  }
  return {};
}

// The I/O thread drives curl through its socket interface: curl says which sockets it waits on
// (OnSocket) and when it next needs the clock (OnTimer); one epoll set holds those sockets and an
// eventfd that Start/Cancel/the destructor write. A wake-up then costs curl work for the ready
// socket's transfer only, however many transfers are open (curl_multi_perform would visit them
// all, and curl_multi_poll would poll every socket, on each chunk).
struct Client::Impl {
  ~Impl() {
    if (multi != nullptr) curl_multi_cleanup(multi);
  }

  void Run();
  void Wake() {
    uint64_t one = 1;
    ssize_t n = ::write(wake.get(), &one, sizeof(one));
    (void)n;  // A full counter already means "wake up".
  }
  static int OnSocket(CURL* easy, curl_socket_t socket, int what, void* self, void* socket_data);
  static int OnTimer(CURLM* multi, long timeout_ms, void* self);
  // Lets curl act on `socket` (or on its timers, for CURL_SOCKET_TIMEOUT), then completes what
  // finished.
  void Act(curl_socket_t socket, int events);
  // Configures the easy handle and adds it to the multi; on failure completes the transfer.
  void Admit(std::unique_ptr<Transfer> transfer);
  // Removes the transfer (closing its connection if mid-response) and runs on_complete.
  void Complete(TransferId id, Status status);
  void CompleteCancelled();
  // Fails transfers whose first-byte or idle deadline passed; returns how long until it must
  // look again (the Run loop calls it only then).
  milliseconds EnforceDeadlines(Clock::time_point now);
  void CompleteDone(CURLMsg* message);

  // Immutable after construction.
  ClientOptions options;
  UniqueFd epoll;
  UniqueFd wake;  // eventfd: new transfers, cancellations or stopping.
  CURLM* multi = nullptr;
  std::thread::id io_thread_id;

  std::atomic<TransferId> next_id{1};

  std::mutex mutex;
  // Guarded by mutex.
  std::vector<std::unique_ptr<Transfer>> incoming;
  std::vector<TransferId> cancels;
  bool stopping = false;

  // Confined to the I/O thread.
  std::unordered_map<TransferId, std::unique_ptr<Transfer>> active;
  bool has_cancelled = false;                   // Some active transfer has `cancelled` set.
  std::optional<Clock::time_point> curl_timer;  // When curl wants CURL_SOCKET_TIMEOUT.
  Clock::time_point next_deadline_check;

  std::thread thread;
};

void Client::Impl::Admit(std::unique_ptr<Transfer> owned) {
  Transfer& t = *owned;
  Result<std::string> host = HostOf(t.request.url);
  if (!host.ok()) {
    if (t.handlers.on_complete) t.handlers.on_complete(host.status());
    return;
  }
  t.host = *std::move(host);
  const std::string where = "http " + t.request.method + " to '" + t.host + "'";
  for (const Header& h : t.request.headers) {
    if (h.name.empty() || HasLineBreak(h.name) || HasLineBreak(h.value) ||
        h.name.find(':') != std::string::npos) {
      if (t.handlers.on_complete) {
        t.handlers.on_complete(Error(ErrorCode::kInvalidArgument,
                                     where + ": header '" + (HasLineBreak(h.name) ? "?" : h.name) +
                                         "' has an empty name, a colon in its name or a line "
                                         "break; fix the header (values are not shown)"));
      }
      return;
    }
    std::string line = h.name + (h.value.empty() ? ";" : ": " + h.value);
    t.header_list = curl_slist_append(t.header_list, line.c_str());
  }
  // curl would otherwise send "Expect: 100-continue" for large bodies and wait for the server.
  if (FindHeader(t.request.headers, "Expect").empty()) {
    t.header_list = curl_slist_append(t.header_list, "Expect:");
  }
  LAI_CHECK(t.header_list != nullptr) << "curl_slist_append";

  t.easy = curl_easy_init();
  LAI_CHECK(t.easy != nullptr) << "curl_easy_init";
  CURL* e = t.easy;
  curl_easy_setopt(e, CURLOPT_URL, t.request.url.c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  if (EqualsIgnoreCase(std::string_view(t.request.url).substr(0, 6), "https:")) {
    // Wait for a connection being set up to say (through ALPN) whether it multiplexes HTTP/2
    // streams, rather than opening one connection per transfer. Plain http:// is HTTP/1.1 here,
    // where waiting would only serialise transfers behind a busy connection.
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  }
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(t.request.connect_timeout.count(), 1)));
  curl_easy_setopt(e, CURLOPT_MAXAGE_CONN,
                   static_cast<long>(options.idle_connection_expiry.count()));
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error_buffer);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &OnHeaderLine);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.header_list);
  // No CURLOPT_ACCEPT_ENCODING: streamed bodies stay identity-encoded so each chunk is usable.
  if (t.request.method == "GET") {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (t.request.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else {
    if (t.request.method != "POST") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, t.request.method.c_str());
    }
    if (t.request.method == "POST" || !t.request.body.empty()) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(t.request.body.size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, t.request.body.data());
    }
  }
  t.started = Clock::now();
  t.last_activity = t.started;
  CURLMcode rc = curl_multi_add_handle(multi, e);
  if (rc != CURLM_OK) {
    if (t.handlers.on_complete) {
      t.handlers.on_complete(Error(ErrorCode::kInternal,
                                   where + ": curl_multi_add_handle: " + curl_multi_strerror(rc)));
    }
    return;
  }
  active.emplace(t.id, std::move(owned));
}

void Client::Impl::Complete(TransferId id, Status status) {
  auto it = active.find(id);
  if (it == active.end()) return;
  std::unique_ptr<Transfer> t = std::move(it->second);
  active.erase(it);
  curl_multi_remove_handle(multi, t->easy);
  curl_easy_cleanup(t->easy);  // Closes the connection if the response was not finished.
  t->easy = nullptr;
  if (t->handlers.on_complete) t->handlers.on_complete(std::move(status));
}

void Client::Impl::CompleteCancelled() {
  while (has_cancelled) {
    has_cancelled = false;
    std::vector<TransferId> ids;
    for (auto& [id, t] : active) {
      if (t->cancelled) ids.push_back(id);
    }
    for (TransferId id : ids) {
      Complete(id, Error(ErrorCode::kCancelled, "http request cancelled"));
    }
  }
}

void Client::Impl::CompleteDone(CURLMsg* message) {
  Transfer* t = nullptr;
  curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &t);
  LAI_CHECK(t != nullptr) << "transfer without its private pointer";
  CURLcode code = message->data.result;
  if (t->cancelled) {
    Complete(t->id, Error(ErrorCode::kCancelled, "http request cancelled"));
    return;
  }
  const std::string where = "http " + t->request.method + " to '" + t->host + "'";
  if (code == CURLE_OK) {
    DeliverHeaders(*t);
    Complete(t->id, t->cancelled ? Status(Error(ErrorCode::kCancelled, "http request cancelled"))
                                 : OkStatus());
    return;
  }
  std::string reason = t->error_buffer[0] != '\0' ? t->error_buffer : curl_easy_strerror(code);
  std::string bare_host = t->host.substr(0, t->host.rfind(':'));
  if (bare_host.starts_with('[')) bare_host = t->host.substr(1, t->host.rfind(']') - 1);
  const std::string proxy = ProxyNote(t->request.url, bare_host);
  if (code == CURLE_OPERATION_TIMEDOUT) {
    Complete(t->id,
             Error(ErrorCode::kTimeout, where + ": connect timeout after " +
                                            std::to_string(t->request.connect_timeout.count()) +
                                            " ms (" + reason + ")" + proxy));
    return;
  }
  ErrorCode error_code = ErrorCode::kUnavailable;
  if (code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_URL_MALFORMAT) {
    error_code = ErrorCode::kInvalidArgument;
  }
  Complete(t->id, Error(error_code, where + " failed: " + reason + proxy));
}

milliseconds Client::Impl::EnforceDeadlines(Clock::time_point now) {
  Clock::time_point next = now + milliseconds(10'000);
  std::vector<std::pair<TransferId, Error>> expired;
  for (auto& [id, t] : active) {
    if (t->cancelled) continue;
    auto where = [&transfer = *t] {
      return "http " + transfer.request.method + " to '" + transfer.host + "'";
    };
    if (!t->saw_response) {
      // The first-byte clock starts when the request has been sent: after waiting for a free
      // connection (curl queues transfers beyond the per-host limit) and connecting (which has
      // its own timeout, enforced by curl). curl 7.88 reports the pre-transfer time relative to
      // the end of that queueing, not to our start, so note when it first becomes non-zero,
      // looking every kSentPoll while any request is unsent: the note is late by at most that.
      if (!t->request_sent_at) {
        curl_off_t pretransfer_us = 0;
        curl_easy_getinfo(t->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
        if (pretransfer_us <= 0) {
          next = std::min(next, now + kSentPoll);
          continue;
        }
        t->request_sent_at = now;
      }
      Clock::time_point deadline = *t->request_sent_at + t->request.first_byte_timeout;
      // Should the response begin before the next look, its idle deadline (its last byte +
      // idle_timeout) falls after now + idle_timeout: look again by then at the latest.
      next = std::min(next, now + t->request.idle_timeout);
      if (now >= deadline) {
        expired.emplace_back(id, Error(ErrorCode::kTimeout,
                                       where() + ": no response within " +
                                           std::to_string(t->request.first_byte_timeout.count()) +
                                           " ms of sending the request (first-byte timeout)"));
      } else {
        next = std::min(next, deadline);
      }
    } else {
      Clock::time_point deadline = t->last_activity + t->request.idle_timeout;
      if (now >= deadline) {
        expired.emplace_back(
            id, Error(ErrorCode::kTimeout, where() + ": no data for " +
                                               std::to_string(t->request.idle_timeout.count()) +
                                               " ms in the middle of the response (idle timeout)"));
      } else {
        next = std::min(next, deadline);
      }
    }
  }
  for (auto& [id, error] : expired) Complete(id, std::move(error));
  return std::chrono::ceil<milliseconds>(next - now);
}

int Client::Impl::OnSocket(CURL*, curl_socket_t socket, int what, void* self, void*) {
  auto& impl = *static_cast<Impl*>(self);
  if (what == CURL_POLL_REMOVE || what == CURL_POLL_NONE) {
    // Out of the set rather than in it with no events: epoll reports a hang-up or an error
    // regardless, and a socket curl does not look at would wake the loop again and again. curl
    // may already have closed it, which removed it: nothing to undo then.
    ::epoll_ctl(impl.epoll.get(), EPOLL_CTL_DEL, socket, nullptr);
    return 0;
  }
  epoll_event ev{};
  ev.events = (what == CURL_POLL_IN || what == CURL_POLL_INOUT ? EPOLLIN : 0u) |
              (what == CURL_POLL_OUT || what == CURL_POLL_INOUT ? EPOLLOUT : 0u);
  ev.data.fd = socket;
  if (::epoll_ctl(impl.epoll.get(), EPOLL_CTL_MOD, socket, &ev) != 0 &&
      ::epoll_ctl(impl.epoll.get(), EPOLL_CTL_ADD, socket, &ev) != 0) {
    return -1;  // curl fails the transfers on this socket.
  }
  return 0;
}

int Client::Impl::OnTimer(CURLM*, long timeout_ms, void* self) {
  auto& impl = *static_cast<Impl*>(self);
  if (timeout_ms < 0) {
    impl.curl_timer.reset();
  } else {
    impl.curl_timer = Clock::now() + milliseconds(timeout_ms);
  }
  return 0;
}

void Client::Impl::Act(curl_socket_t socket, int events) {
  int running = 0;
  curl_multi_socket_action(multi, socket, events, &running);
  int queued = 0;
  while (CURLMsg* message = curl_multi_info_read(multi, &queued)) {
    if (message->msg == CURLMSG_DONE) CompleteDone(message);
  }
  CompleteCancelled();
}

void Client::Impl::Run() {
  constexpr int kMaxEvents = 64;
  epoll_event events[kMaxEvents];
  for (;;) {
    std::vector<std::unique_ptr<Transfer>> new_transfers;
    std::vector<TransferId> new_cancels;
    bool stop;
    {
      std::lock_guard lock(mutex);
      new_transfers.swap(incoming);
      new_cancels.swap(cancels);
      stop = stopping;
    }
    for (auto& t : new_transfers) {
      if (stop || std::find(new_cancels.begin(), new_cancels.end(), t->id) != new_cancels.end()) {
        if (t->handlers.on_complete) {
          t->handlers.on_complete(Error(ErrorCode::kCancelled, "http request cancelled"));
        }
        continue;
      }
      Admit(std::move(t));
      next_deadline_check = std::min(next_deadline_check, Clock::now() + kSentPoll);
    }
    for (TransferId id : new_cancels) {
      Complete(id, Error(ErrorCode::kCancelled, "http request cancelled"));
    }
    if (stop) {
      while (!active.empty()) {
        Complete(
            active.begin()->first,
            Error(ErrorCode::kCancelled, "http request cancelled: the client is shutting down"));
      }
      std::lock_guard lock(mutex);
      if (incoming.empty()) return;  // Handlers may have started more; cancel those next round.
      continue;
    }
    Clock::time_point now = Clock::now();
    if (curl_timer && now >= *curl_timer) {
      curl_timer.reset();
      Act(CURL_SOCKET_TIMEOUT, 0);
      now = Clock::now();
    }
    if (now >= next_deadline_check) {
      next_deadline_check = now + EnforceDeadlines(now);
      CompleteCancelled();
    }
    Clock::time_point until = next_deadline_check;
    if (curl_timer) until = std::min(until, *curl_timer);
    auto wait = std::chrono::ceil<milliseconds>(until - now);
    wait = std::clamp(wait, milliseconds(0), milliseconds(10'000));
    int n = ::epoll_wait(epoll.get(), events, kMaxEvents, static_cast<int>(wait.count()));
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == wake.get()) {
        uint64_t count;
        ssize_t r = ::read(wake.get(), &count, sizeof(count));
        (void)r;
        continue;
      }
      const uint32_t e = events[i].events;
      Act(events[i].data.fd, ((e & EPOLLIN) != 0 ? CURL_CSELECT_IN : 0) |
                                 ((e & EPOLLOUT) != 0 ? CURL_CSELECT_OUT : 0) |
                                 ((e & (EPOLLERR | EPOLLHUP)) != 0 ? CURL_CSELECT_ERR : 0));
    }
  }
}

Result<std::unique_ptr<Client>> Client::Create(const ClientOptions& options) {
  static std::once_flag global_init;
  static CURLcode global_rc = CURLE_OK;
  std::call_once(global_init, [] { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (global_rc != CURLE_OK) {
    return Error(ErrorCode::kInternal,
                 std::string("http client: curl_global_init: ") + curl_easy_strerror(global_rc));
  }
  if (options.max_connections_per_host < 1 || options.max_total_connections < 1 ||
      options.idle_connection_expiry.count() < 1) {
    return Error(ErrorCode::kInvalidArgument,
                 "http client: connection limits and idle expiry must be at least 1");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->epoll.Reset(::epoll_create1(EPOLL_CLOEXEC));
  impl->wake.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->epoll.is_valid() || !impl->wake.is_valid()) {
    return Error(ErrorCode::kResourceExhausted,
                 std::string("http client: cannot create its epoll set: ") + std::strerror(errno));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = impl->wake.get();
  if (::epoll_ctl(impl->epoll.get(), EPOLL_CTL_ADD, impl->wake.get(), &ev) != 0) {
    return Error(ErrorCode::kResourceExhausted,
                 std::string("http client: epoll_ctl: ") + std::strerror(errno));
  }
  impl->multi = curl_multi_init();
  if (impl->multi == nullptr) {
    return Error(ErrorCode::kInternal, "http client: curl_multi_init failed");
  }
  curl_multi_setopt(impl->multi, CURLMOPT_MAX_HOST_CONNECTIONS, options.max_connections_per_host);
  curl_multi_setopt(impl->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, options.max_total_connections);
  curl_multi_setopt(impl->multi, CURLMOPT_MAXCONNECTS, options.max_total_connections);
  curl_multi_setopt(impl->multi, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_MULTIPLEX));
  Impl* raw = impl.get();
  curl_multi_setopt(impl->multi, CURLMOPT_SOCKETFUNCTION, &Impl::OnSocket);
  curl_multi_setopt(impl->multi, CURLMOPT_SOCKETDATA, raw);
  curl_multi_setopt(impl->multi, CURLMOPT_TIMERFUNCTION, &Impl::OnTimer);
  curl_multi_setopt(impl->multi, CURLMOPT_TIMERDATA, raw);
  impl->thread = std::thread([raw] {
    log::NameThisThread("lai-http");
    log::MarkThisThreadShared();  // Every stream's events are handled here.
    raw->Run();
  });
  impl->io_thread_id = impl->thread.get_id();
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Client::~Client() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->Wake();
  impl_->thread.join();
}

Client::TransferId Client::Start(Request request, Handlers handlers) {
  auto t = std::make_unique<Transfer>();
  t->id = impl_->next_id.fetch_add(1, std::memory_order_relaxed);
  t->request = std::move(request);
  t->handlers = std::move(handlers);
  TransferId id = t->id;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->incoming.push_back(std::move(t));
  }
  impl_->Wake();  // Also from a handler: the loop must not sleep past it.
  return id;
}

void Client::Cancel(TransferId id) {
  if (std::this_thread::get_id() == impl_->io_thread_id) {
    // Inside a handler: curl forbids removing handles from its callbacks, so mark the transfer;
    // its callbacks stop at once and the loop completes it right after the current call.
    if (auto it = impl_->active.find(id); it != impl_->active.end()) {
      it->second->cancelled = true;
      impl_->has_cancelled = true;
      return;
    }
  }
  {
    std::lock_guard lock(impl_->mutex);
    impl_->cancels.push_back(id);
  }
  impl_->Wake();
}

Result<FullResponse> Fetch(Client& client, Request request, std::chrono::milliseconds total_timeout,
                           size_t max_body_bytes) {
  struct State {
    std::mutex mutex;
    std::condition_variable changed;
    bool done = false;
    bool too_big = false;
    Status status;
    FullResponse response;
  };
  auto state = std::make_shared<State>();
  const std::string method = request.method;
  Handlers handlers;
  handlers.on_headers = [state](int status, const std::vector<Header>& headers) {
    std::lock_guard lock(state->mutex);
    state->response.status = status;
    state->response.headers = headers;
  };
  handlers.on_data = [state, max_body_bytes](std::string_view chunk) {
    std::lock_guard lock(state->mutex);
    if (state->too_big) return;
    if (state->response.body.size() + chunk.size() > max_body_bytes) {
      state->too_big = true;
      state->changed.notify_all();
      return;
    }
    state->response.body.append(chunk);
  };
  handlers.on_complete = [state](Status status) {
    std::lock_guard lock(state->mutex);
    state->status = std::move(status);
    state->done = true;
    state->changed.notify_all();
  };
  Client::TransferId id = client.Start(std::move(request), std::move(handlers));
  std::unique_lock lock(state->mutex);
  bool finished =
      state->changed.wait_for(lock, total_timeout, [&] { return state->done || state->too_big; });
  bool timed_out = !finished;
  if (!state->done) {
    lock.unlock();
    client.Cancel(id);
    lock.lock();
    // Cancellation completes promptly on the I/O thread; the bound is only a safety net.
    state->changed.wait_for(lock, std::chrono::seconds(30), [&] { return state->done; });
    LAI_CHECK(state->done) << "http client did not complete a cancelled transfer";
  }
  if (state->too_big) {
    return Error(ErrorCode::kResourceExhausted, "http " + method +
                                                    ": the response body is larger than " +
                                                    std::to_string(max_body_bytes) + " bytes");
  }
  if (timed_out) {
    return Error(ErrorCode::kTimeout, "http " + method + ": no complete response within " +
                                          std::to_string(total_timeout.count()) + " ms");
  }
  if (!state->status.ok()) return std::move(state->status).error();
  return std::move(state->response);
}

}  // namespace lai::http
