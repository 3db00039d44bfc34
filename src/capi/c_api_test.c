/* Exercises liblapce_ai_client.so through its C header, as a C99 program, against a running
 * `lapce-ai serve` whose socket path is argv[1] (run_c_api_test.sh starts one). Exit status 0 when
 * every check passed. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lapce_ai/client.h"

static int g_failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                            \
    }                                                                          \
  } while (0)

#define CHECK_STATUS(expr, expected)                                                          \
  do {                                                                                        \
    lai_status check_status_ = (expr);                                                        \
    if (check_status_ != (expected)) {                                                        \
      fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s\n", __FILE__, __LINE__, #expr, \
              (int)check_status_, lai_status_string(check_status_), #expected);               \
      ++g_failures;                                                                           \
    }                                                                                         \
  } while (0)

/* Stops the program: later checks would only repeat the failure. */
#define REQUIRE(cond)                                                            \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

static int contains(const char* text, const char* part) {
  return text != NULL && strstr(text, part) != NULL;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static lai_client_options test_options(void) {
  lai_client_options options = LAI_CLIENT_OPTIONS_INIT;
  options.request_timeout_ms = 5000;
  return options;
}

/* The server may still be starting (socket file bound, not yet listening): retry "unavailable"
 * for up to 5 s. */
static lai_client* connect_or_die(const char* path, const lai_client_options* options) {
  double deadline = now_seconds() + 5.0;
  for (;;) {
    lai_client* client = NULL;
    lai_status status = lai_client_connect(path, options, &client);
    if (status == LAI_OK) {
      REQUIRE(client != NULL);
      return client;
    }
    if (status != LAI_ERR_UNAVAILABLE || now_seconds() > deadline) {
      fprintf(stderr, "connect '%s': %s: %s\n", path, lai_status_string(status),
              lai_thread_error());
      exit(1);
    }
    struct timespec pause = {0, 10 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

static void test_version_and_status_strings(void) {
  int s;
  CHECK(lai_abi_version() == LAPCE_AI_CLIENT_ABI_VERSION);
  CHECK(strcmp(lai_status_string(LAI_OK), "ok") == 0);
  CHECK(strcmp(lai_status_string(LAI_ERR_INVALID_ARGUMENT), "invalid argument") == 0);
  CHECK(strcmp(lai_status_string(LAI_ERR_UNAVAILABLE), "unavailable") == 0);
  CHECK(strcmp(lai_status_string(LAI_ERR_INTERNAL), "internal error") == 0);
  for (s = LAI_OK; s <= LAI_ERR_INTERNAL; ++s) {
    const char* text = lai_status_string((lai_status)s);
    CHECK(text != NULL && text[0] != '\0' && strcmp(text, "unknown status") != 0);
  }
  CHECK(strcmp(lai_status_string((lai_status)77), "unknown status") == 0);
}

static void test_null_arguments(const char* path) {
  lai_response response;
  uint64_t id = 0;
  CHECK_STATUS(lai_client_connect(path, NULL, NULL), LAI_ERR_INVALID_ARGUMENT);
  CHECK(contains(lai_thread_error(), "out_client"));
  CHECK_STATUS(lai_client_request(NULL, LAI_MESSAGE_ECHO, "x", 1, &id), LAI_ERR_INVALID_ARGUMENT);
  CHECK(contains(lai_thread_error(), "lai_client_request: client is NULL"));
  CHECK_STATUS(lai_client_receive(NULL, 1, 10, &response), LAI_ERR_INVALID_ARGUMENT);
  CHECK(contains(lai_thread_error(), "lai_client_receive"));
  CHECK_STATUS(lai_client_call(NULL, LAI_MESSAGE_ECHO, "x", 1, 10, &response),
               LAI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(lai_client_cancel(NULL, 1), LAI_ERR_INVALID_ARGUMENT);
  CHECK(!lai_client_is_connected(NULL));
  CHECK(lai_client_last_error(NULL) != NULL);
  lai_client_close(NULL); /* Ignored, like free(NULL). */
}

static void test_missing_socket(const char* path) {
  char missing[512];
  lai_client* client = (lai_client*)&missing; /* Must be overwritten with NULL. */
  snprintf(missing, sizeof(missing), "%s.missing", path);
  CHECK_STATUS(lai_client_connect(missing, NULL, &client), LAI_ERR_UNAVAILABLE);
  CHECK(client == NULL);
  CHECK(contains(lai_thread_error(), missing));
  CHECK(contains(lai_thread_error(), "lapce-ai serve"));
  printf("missing socket: %s\n", lai_thread_error());

  /* NULL path: the default under $XDG_RUNTIME_DIR. */
  REQUIRE(setenv("XDG_RUNTIME_DIR", "/nonexistent-lai-capi-test", 1) == 0);
  CHECK_STATUS(lai_client_connect(NULL, NULL, &client), LAI_ERR_UNAVAILABLE);
  CHECK(client == NULL);
  CHECK(contains(lai_thread_error(), "/nonexistent-lai-capi-test/lapce-ai/engine.sock"));
}

static void test_bad_options(const char* path) {
  /* A caller built against a newer header with one more field. */
  struct newer_options {
    lai_client_options base;
    uint32_t future_field;
  } newer;
  lai_client_options options = test_options();
  lai_client* client = NULL;

  options.struct_size = 0;
  CHECK_STATUS(lai_client_connect(path, &options, &client), LAI_ERR_INVALID_ARGUMENT);
  CHECK(client == NULL);
  CHECK(contains(lai_thread_error(), "struct_size"));

  options = test_options();
  options.max_message_bytes = 0x80000000u;
  CHECK_STATUS(lai_client_connect(path, &options, &client), LAI_ERR_INVALID_ARGUMENT);
  CHECK(contains(lai_thread_error(), "max_message_bytes"));

  CHECK_STATUS(lai_client_connect("", NULL, &client), LAI_ERR_INVALID_ARGUMENT);
  CHECK(contains(lai_thread_error(), "empty"));

  memset(&newer, 0, sizeof(newer));
  newer.base = test_options();
  newer.base.struct_size = (uint32_t)sizeof(newer);
  newer.future_field = 7;
  CHECK_STATUS(lai_client_connect(path, &newer.base, &client), LAI_ERR_INVALID_ARGUMENT);
  CHECK(contains(lai_thread_error(), "does not know"));

  newer.future_field = 0; /* Unknown but zero: accepted. */
  client = connect_or_die(path, &newer.base);
  CHECK(lai_client_is_connected(client));
  CHECK(strcmp(lai_thread_error(), "") == 0);
  lai_client_close(client);
}

static void test_call_echo(lai_client* client) {
  static const char kHello[] = "hello";
  lai_response response;
  CHECK_STATUS(lai_client_call(client, LAI_MESSAGE_ECHO, kHello, 5, 0, &response), LAI_OK);
  CHECK(strcmp(lai_client_last_error(client), "") == 0);
  CHECK(response.request_id != 0);
  CHECK(response.type == LAI_MESSAGE_ECHO);
  CHECK(response.is_final);
  CHECK(response.length == 5);
  CHECK(response.data != NULL && memcmp(response.data, kHello, 5) == 0);

  /* Empty payload, NULL pointer. */
  CHECK_STATUS(lai_client_call(client, LAI_MESSAGE_ECHO, NULL, 0, 0, &response), LAI_OK);
  CHECK(response.length == 0);
  CHECK(response.is_final);
}

/* Much larger than the 256-byte ring: travels in fragments both ways. */
static void test_large_echo(lai_client* client) {
  size_t length = 200 * 1000, i;
  unsigned char* payload = malloc(length);
  lai_response response;
  REQUIRE(payload != NULL);
  for (i = 0; i < length; ++i) payload[i] = (unsigned char)(i * 131u + 7u);
  CHECK_STATUS(lai_client_call(client, LAI_MESSAGE_ECHO, payload, length, 0, &response), LAI_OK);
  CHECK(response.length == length);
  CHECK(response.data != NULL && memcmp(response.data, payload, length) == 0);
  free(payload);
}

/* Notifications get no reply: many of them (more than the replies a default ring holds) leave
   the connection as it was, and the next call gets its own reply. */
static void test_notify(lai_client* client) {
  lai_response response;
  for (int i = 0; i < 100; ++i) {
    CHECK_STATUS(lai_client_notify(client, LAI_MESSAGE_ECHO, "note", 4), LAI_OK);
  }
  CHECK_STATUS(lai_client_notify(client, 6, NULL, 0), LAI_ERR_INVALID_ARGUMENT);
  CHECK(contains(lai_client_last_error(client), "lai_client_notify"));
  CHECK_STATUS(lai_client_call(client, LAI_MESSAGE_ECHO, "after", 5, 0, &response), LAI_OK);
  CHECK(response.length == 5 && memcmp(response.data, "after", 5) == 0);
  CHECK_STATUS(lai_client_notify(NULL, LAI_MESSAGE_ECHO, NULL, 0), LAI_ERR_INVALID_ARGUMENT);
}

static void test_request_receive(lai_client* client) {
  uint64_t first = 0, second = 0;
  lai_response response;
  CHECK_STATUS(lai_client_request(client, LAI_MESSAGE_ECHO, "one", 3, &first), LAI_OK);
  CHECK_STATUS(lai_client_request(client, LAI_MESSAGE_ECHO, "two!", 4, &second), LAI_OK);
  CHECK(first != 0 && second > first);

  /* Out of order: the first reply is kept aside while waiting for the second. */
  CHECK_STATUS(lai_client_receive(client, second, 0, &response), LAI_OK);
  CHECK(response.request_id == second && response.is_final);
  CHECK(response.length == 4 && memcmp(response.data, "two!", 4) == 0);
  CHECK_STATUS(lai_client_receive(client, first, 0, &response), LAI_OK);
  CHECK(response.request_id == first && response.is_final);
  CHECK(response.length == 3 && memcmp(response.data, "one", 3) == 0);

  /* Nothing more comes for an answered request: said at once (it waited out the timeout). */
  CHECK_STATUS(lai_client_receive(client, first, 0, &response), LAI_ERR_INVALID_ARGUMENT);
  CHECK(contains(lai_client_last_error(client), "has had its final reply already"));
  CHECK(response.data == NULL && response.length == 0);

  CHECK_STATUS(lai_client_receive(client, second + 1000, 50, &response), LAI_ERR_INVALID_ARGUMENT);
  CHECK(contains(lai_client_last_error(client), "never sent"));
  CHECK_STATUS(lai_client_receive(client, 0, 50, &response), LAI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(lai_client_receive(client, first, 50, NULL), LAI_ERR_INVALID_ARGUMENT);
  CHECK(contains(lai_client_last_error(client), "out_response"));
  CHECK_STATUS(lai_client_request(client, LAI_MESSAGE_ECHO, "x", 1, NULL),
               LAI_ERR_INVALID_ARGUMENT);
}

static void test_health_and_metrics(lai_client* client) {
  lai_response response;
  char text[512];
  CHECK_STATUS(lai_client_call(client, LAI_MESSAGE_HEALTH, NULL, 0, 0, &response), LAI_OK);
  REQUIRE(response.length < sizeof(text));
  memcpy(text, response.data, response.length);
  text[response.length] = '\0';
  CHECK(contains(text, "\"status\":\"ok\""));
  CHECK(contains(text, "\"pid\":"));
  printf("health: %s\n", text);

  CHECK_STATUS(lai_client_call(client, LAI_MESSAGE_METRICS, NULL, 0, 0, &response), LAI_OK);
  CHECK(response.length > 0);
  if (response.length >= 13) CHECK(memcmp(response.data, "# HELP lapce_", 13) == 0);
}

static void test_errors(lai_client* client) {
  lai_response response;
  uint64_t id = 0;
  /* No handler for type 200: the server's error reply becomes the status and message. */
  CHECK_STATUS(lai_client_call(client, 200, "{}", 2, 0, &response), LAI_ERR_INVALID_ARGUMENT);
  CHECK(contains(lai_client_last_error(client), "200"));
  CHECK(response.data == NULL && response.length == 0);
  printf("type 200: %s\n", lai_client_last_error(client));

  /* Types outside 1..255 are refused locally (the server would drop the connection). */
  CHECK_STATUS(lai_client_request(client, 0, "x", 1, &id), LAI_ERR_INVALID_ARGUMENT);
  CHECK(id == 0);
  CHECK(contains(lai_client_last_error(client), "out of range"));
  CHECK_STATUS(lai_client_request(client, 256, "x", 1, &id), LAI_ERR_INVALID_ARGUMENT);
  /* So are the transport's control frames (error, cancel, shutdown). */
  const uint16_t controls[] = {1, 5, 6};
  for (size_t i = 0; i < sizeof(controls) / sizeof(controls[0]); ++i) {
    CHECK_STATUS(lai_client_request(client, controls[i], "x", 1, &id), LAI_ERR_INVALID_ARGUMENT);
    CHECK(contains(lai_client_last_error(client), "transport control frame"));
  }
  CHECK_STATUS(lai_client_request(client, LAI_MESSAGE_ECHO, NULL, 3, &id),
               LAI_ERR_INVALID_ARGUMENT);

  /* The connection survived all of that. */
  CHECK(lai_client_is_connected(client));
  CHECK_STATUS(lai_client_call(client, LAI_MESSAGE_ECHO, "still", 5, 0, &response), LAI_OK);
  CHECK(response.length == 5 && memcmp(response.data, "still", 5) == 0);
  CHECK(strcmp(lai_client_last_error(client), "") == 0);
}

static void test_cancel(lai_client* client) {
  uint64_t id = 0;
  lai_response response;
  /* Echo does not stream: cancelling it is harmless and its reply still arrives. */
  CHECK_STATUS(lai_client_request(client, LAI_MESSAGE_ECHO, "abc", 3, &id), LAI_OK);
  CHECK_STATUS(lai_client_cancel(client, id), LAI_OK);
  CHECK_STATUS(lai_client_receive(client, id, 0, &response), LAI_OK);
  CHECK(response.is_final && response.length == 3 && memcmp(response.data, "abc", 3) == 0);
  /* Already answered. */
  CHECK_STATUS(lai_client_cancel(client, id), LAI_OK);
  CHECK_STATUS(lai_client_cancel(client, 0), LAI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(lai_client_call(client, LAI_MESSAGE_ECHO, "ok", 2, 0, &response), LAI_OK);
  CHECK(response.length == 2);
}

static void test_message_limit(const char* path) {
  lai_client_options options = test_options();
  lai_client* client;
  lai_response response;
  char payload[5000];
  options.max_message_bytes = 4096;
  client = connect_or_die(path, &options);
  memset(payload, 'z', sizeof(payload));
  CHECK_STATUS(lai_client_call(client, LAI_MESSAGE_ECHO, payload, sizeof(payload), 0, &response),
               LAI_ERR_INVALID_ARGUMENT);
  CHECK(contains(lai_client_last_error(client), "max_message_bytes"));
  CHECK_STATUS(lai_client_call(client, LAI_MESSAGE_ECHO, payload, 4096, 0, &response), LAI_OK);
  CHECK(response.length == 4096);
  lai_client_close(client);
}

/* Two handles on one thread: ids and replies are per handle. */
static void test_two_handles(const char* path) {
  lai_client_options options = test_options();
  lai_client* a = connect_or_die(path, &options);
  lai_client* b = connect_or_die(path, &options);
  uint64_t id_a = 0, id_b = 0;
  lai_response response;
  CHECK_STATUS(lai_client_request(a, LAI_MESSAGE_ECHO, "from a", 6, &id_a), LAI_OK);
  CHECK_STATUS(lai_client_request(b, LAI_MESSAGE_ECHO, "from b", 6, &id_b), LAI_OK);
  CHECK(id_a == id_b); /* Both first requests of their handle. */
  CHECK_STATUS(lai_client_receive(b, id_b, 0, &response), LAI_OK);
  CHECK(response.length == 6 && memcmp(response.data, "from b", 6) == 0);
  lai_client_close(b);
  CHECK_STATUS(lai_client_receive(a, id_a, 0, &response), LAI_OK);
  CHECK(response.length == 6 && memcmp(response.data, "from a", 6) == 0);
  lai_client_close(a);
}

int main(int argc, char** argv) {
  const char* path;
  lai_client_options options = test_options();
  lai_client* client;
  if (argc != 2) {
    fprintf(stderr, "usage: %s SOCKET_PATH  (of a running `lapce-ai serve`)\n", argv[0]);
    return 2;
  }
  path = argv[1];

  test_version_and_status_strings();
  test_null_arguments(path);

  options.ring_bytes = 256; /* Small, to force fragmentation. */
  client = connect_or_die(path, &options);
  CHECK(lai_client_is_connected(client));
  CHECK(strcmp(lai_thread_error(), "") == 0);
  test_call_echo(client);
  test_large_echo(client);
  test_request_receive(client);
  test_notify(client);
  test_health_and_metrics(client);
  test_errors(client);
  test_cancel(client);
  lai_client_close(client);

  test_bad_options(path);
  test_message_limit(path);
  test_two_handles(path);
  test_missing_socket(path); /* Last: it changes XDG_RUNTIME_DIR. */

  if (g_failures != 0) {
    fprintf(stderr, "c_api_test: %d check(s) failed\n", g_failures);
    return 1;
  }
  printf("c_api_test: all checks passed\n");
  return 0;
}
