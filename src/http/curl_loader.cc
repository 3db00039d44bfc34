// libcurl, loaded on first use. The engine's executable does not link libcurl: these definitions
// of the few curl functions client.cc calls forward to libcurl.so.4, opened with dlopen() the
// first time one of them runs. A server that never talks to a provider then never maps libcurl
// and the ~35 libraries it needs (TLS, HTTP/2, Kerberos, LDAP, …), which would otherwise be most
// of its resident memory. Thread-safe (the library is opened under std::call_once).
#define CURL_DISABLE_TYPECHECK  // Define the real functions, not curl.h's checking macros.
#include <curl/curl.h>
#include <dlfcn.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace {

struct CurlApi {
  decltype(&curl_global_init) global_init;
  decltype(&curl_easy_init) easy_init;
  decltype(&curl_easy_cleanup) easy_cleanup;
  decltype(&curl_easy_setopt) easy_setopt;
  decltype(&curl_easy_getinfo) easy_getinfo;
  decltype(&curl_easy_strerror) easy_strerror;
  decltype(&curl_free) free;
  decltype(&curl_slist_append) slist_append;
  decltype(&curl_slist_free_all) slist_free_all;
  decltype(&curl_multi_init) multi_init;
  decltype(&curl_multi_cleanup) multi_cleanup;
  decltype(&curl_multi_setopt) multi_setopt;
  decltype(&curl_multi_add_handle) multi_add_handle;
  decltype(&curl_multi_remove_handle) multi_remove_handle;
  decltype(&curl_multi_socket_action) multi_socket_action;
  decltype(&curl_multi_info_read) multi_info_read;
  decltype(&curl_multi_strerror) multi_strerror;
  decltype(&curl_url) url;
  decltype(&curl_url_cleanup) url_cleanup;
  decltype(&curl_url_get) url_get;
  decltype(&curl_url_set) url_set;
  decltype(&curl_url_strerror) url_strerror;
};

template <typename F>
void Bind(void* library, F& function, const char* name) {
  function = reinterpret_cast<F>(::dlsym(library, name));
  if (function == nullptr) {
    std::fprintf(stderr,
                 "lapce-ai: libcurl.so.4 has no %s; install Debian's libcurl4 (7.88 or newer)\n",
                 name);
    std::abort();
  }
}

// libcurl is a dependency of the package (scripts/setup installs it): its absence is a broken
// installation, not an input error, so it stops the process with a message saying what to do.
const CurlApi& Api() {
  static CurlApi api;
  static std::once_flag once;
  std::call_once(once, [] {
    void* library = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      std::fprintf(stderr, "lapce-ai: cannot load libcurl: %s; install Debian's libcurl4\n",
                   ::dlerror());
      std::abort();
    }
    Bind(library, api.global_init, "curl_global_init");
    Bind(library, api.easy_init, "curl_easy_init");
    Bind(library, api.easy_cleanup, "curl_easy_cleanup");
    Bind(library, api.easy_setopt, "curl_easy_setopt");
    Bind(library, api.easy_getinfo, "curl_easy_getinfo");
    Bind(library, api.easy_strerror, "curl_easy_strerror");
    Bind(library, api.free, "curl_free");
    Bind(library, api.slist_append, "curl_slist_append");
    Bind(library, api.slist_free_all, "curl_slist_free_all");
    Bind(library, api.multi_init, "curl_multi_init");
    Bind(library, api.multi_cleanup, "curl_multi_cleanup");
    Bind(library, api.multi_setopt, "curl_multi_setopt");
    Bind(library, api.multi_add_handle, "curl_multi_add_handle");
    Bind(library, api.multi_remove_handle, "curl_multi_remove_handle");
    Bind(library, api.multi_socket_action, "curl_multi_socket_action");
    Bind(library, api.multi_info_read, "curl_multi_info_read");
    Bind(library, api.multi_strerror, "curl_multi_strerror");
    Bind(library, api.url, "curl_url");
    Bind(library, api.url_cleanup, "curl_url_cleanup");
    Bind(library, api.url_get, "curl_url_get");
    Bind(library, api.url_set, "curl_url_set");
    Bind(library, api.url_strerror, "curl_url_strerror");
  });
  return api;
}

// The variadic setters take one argument whose type the option's number range names
// (CURLOPTTYPE_*): long, a pointer, a function pointer or curl_off_t. Read it as that type and
// pass it on as that type.
template <typename Handle, typename Option, typename Function>
auto ForwardOption(Function function, Handle* handle, Option option, va_list args) {
  const long kind = static_cast<long>(option) / 10000 * 10000;
  if (kind == CURLOPTTYPE_LONG) return function(handle, option, va_arg(args, long));
  if (kind == CURLOPTTYPE_FUNCTIONPOINT) return function(handle, option, va_arg(args, void (*)()));
  if (kind == CURLOPTTYPE_OFF_T) return function(handle, option, va_arg(args, curl_off_t));
  return function(handle, option, va_arg(args, void*));  // Object pointers, strings, blobs.
}

}  // namespace

extern "C" {

CURLcode curl_global_init(long flags) { return Api().global_init(flags); }
CURL* curl_easy_init(void) { return Api().easy_init(); }
void curl_easy_cleanup(CURL* handle) { Api().easy_cleanup(handle); }
CURLcode curl_easy_setopt(CURL* handle, CURLoption option, ...) {
  va_list args;
  va_start(args, option);
  CURLcode rc = ForwardOption(Api().easy_setopt, handle, option, args);
  va_end(args);
  return rc;
}
CURLcode curl_easy_getinfo(CURL* handle, CURLINFO info, ...) {
  va_list args;
  va_start(args, info);
  CURLcode rc = Api().easy_getinfo(handle, info, va_arg(args, void*));  // Always a pointer.
  va_end(args);
  return rc;
}
const char* curl_easy_strerror(CURLcode code) { return Api().easy_strerror(code); }
void curl_free(void* p) { Api().free(p); }
curl_slist* curl_slist_append(curl_slist* list, const char* text) {
  return Api().slist_append(list, text);
}
void curl_slist_free_all(curl_slist* list) { Api().slist_free_all(list); }
CURLM* curl_multi_init(void) { return Api().multi_init(); }
CURLMcode curl_multi_cleanup(CURLM* multi) { return Api().multi_cleanup(multi); }
CURLMcode curl_multi_setopt(CURLM* multi, CURLMoption option, ...) {
  va_list args;
  va_start(args, option);
  CURLMcode rc = ForwardOption(Api().multi_setopt, multi, option, args);
  va_end(args);
  return rc;
}
CURLMcode curl_multi_add_handle(CURLM* multi, CURL* handle) {
  return Api().multi_add_handle(multi, handle);
}
CURLMcode curl_multi_remove_handle(CURLM* multi, CURL* handle) {
  return Api().multi_remove_handle(multi, handle);
}
CURLMcode curl_multi_socket_action(CURLM* multi, curl_socket_t socket, int events, int* running) {
  return Api().multi_socket_action(multi, socket, events, running);
}
CURLMsg* curl_multi_info_read(CURLM* multi, int* queued) {
  return Api().multi_info_read(multi, queued);
}
const char* curl_multi_strerror(CURLMcode code) { return Api().multi_strerror(code); }
CURLU* curl_url(void) { return Api().url(); }
void curl_url_cleanup(CURLU* url) { Api().url_cleanup(url); }
CURLUcode curl_url_get(CURLU* url, CURLUPart part, char** out, unsigned flags) {
  return Api().url_get(url, part, out, flags);
}
CURLUcode curl_url_set(CURLU* url, CURLUPart part, const char* text, unsigned flags) {
  return Api().url_set(url, part, text, flags);
}
const char* curl_url_strerror(CURLUcode code) { return Api().url_strerror(code); }

}  // extern "C"
