/* A completion over IPC from C: streams a kComplete request (type 16) through
 * liblapce_ai_client.so against a running `lapce-ai serve` (socket path argv[1]) whose default
 * provider profile points at a fake provider (tests/capi_complete_test.cc sets both up). The fake
 * answers the first request with "Hello, world" in pieces and the second one slowly; this program
 * checks the text frames and the done frame of the first, and that cancelling the second ends it
 * promptly with LAI_ERR_CANCELLED. Exit status 0 when every check passed. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lapce_ai/client.h"

static int g_failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                            \
    }                                                                          \
  } while (0)

#define REQUIRE(cond)                                                            \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends the value of the first "text":"..." string of a JSON frame (JSON escapes other than \"
 * and \\ are copied as they are; the test text has none). */
static void append_text(const lai_response* frame, char* out, size_t out_size) {
  const char* key = "\"text\":\"";
  size_t key_length = strlen(key);
  const char* data = (const char*)frame->data;
  size_t i;
  size_t used = strlen(out);
  for (i = 0; i + key_length <= frame->length; ++i) {
    if (memcmp(data + i, key, key_length) == 0) break;
  }
  if (i + key_length > frame->length) return;
  for (i += key_length; i < frame->length && data[i] != '"'; ++i) {
    if (data[i] == '\\' && i + 1 < frame->length) ++i;
    if (used + 1 < out_size) out[used++] = data[i];
  }
  out[used] = '\0';
}

static int frame_has(const lai_response* frame, const char* part) {
  size_t n = strlen(part);
  size_t i;
  for (i = 0; i + n <= frame->length; ++i) {
    if (memcmp(frame->data + i, part, n) == 0) return 1;
  }
  return 0;
}

static const char kRequest[] =
    "{\"messages\":[{\"role\":\"user\",\"content\":\"Say hello\"}],\"maxTokens\":64}";

int main(int argc, char** argv) {
  lai_client_options options = LAI_CLIENT_OPTIONS_INIT;
  lai_client* client = NULL;
  lai_response frame;
  uint64_t id = 0;
  char text[256] = "";
  int text_frames = 0;
  int saw_done = 0;
  lai_status status;
  double cancel_time;

  REQUIRE(argc == 2);
  options.request_timeout_ms = 10000;
  status = lai_client_connect(argv[1], &options, &client);
  if (status != LAI_OK) {
    fprintf(stderr, "connect: %s: %s\n", lai_status_string(status), lai_thread_error());
    return 1;
  }

  /* 1. A streamed completion: text items, then the final done frame. */
  REQUIRE(lai_client_request(client, LAI_MESSAGE_COMPLETE, kRequest, sizeof(kRequest) - 1, &id) ==
          LAI_OK);
  for (;;) {
    status = lai_client_receive(client, id, 10000, &frame);
    if (status != LAI_OK) {
      fprintf(stderr, "receive: %s: %s\n", lai_status_string(status), lai_client_last_error(client));
      return 1;
    }
    printf("frame%s: %.*s\n", frame.is_final ? " (final)" : "", (int)frame.length,
           (const char*)frame.data);
    if (frame_has(&frame, "\"type\":\"text\"")) {
      CHECK(!frame.is_final);
      ++text_frames;
      append_text(&frame, text, sizeof(text));
    }
    if (frame.is_final) {
      saw_done = frame_has(&frame, "\"type\":\"done\"") && frame_has(&frame, "\"stopReason\":\"stop\"");
      break;
    }
  }
  CHECK(text_frames >= 2);
  CHECK(strcmp(text, "Hello, world") == 0);
  CHECK(saw_done);

  /* 2. A slow completion, cancelled after its first frame: the final reply is
   * LAI_ERR_CANCELLED, long before the provider would have finished (10 s). */
  REQUIRE(lai_client_request(client, LAI_MESSAGE_COMPLETE, kRequest, sizeof(kRequest) - 1, &id) ==
          LAI_OK);
  status = lai_client_receive(client, id, 10000, &frame);
  REQUIRE(status == LAI_OK);
  CHECK(!frame.is_final);
  cancel_time = now_seconds();
  CHECK(lai_client_cancel(client, id) == LAI_OK);
  for (;;) {
    status = lai_client_receive(client, id, 5000, &frame);
    if (status != LAI_OK || frame.is_final) break;
  }
  printf("after cancel: %s (%s) in %.3f s\n", lai_status_string(status),
         lai_client_last_error(client), now_seconds() - cancel_time);
  CHECK(status == LAI_ERR_CANCELLED);
  CHECK(now_seconds() - cancel_time < 3.0);

  lai_client_close(client);
  if (g_failures != 0) {
    fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  printf("ok\n");
  return 0;
}
