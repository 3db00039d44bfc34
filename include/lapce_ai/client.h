/* lapce_ai/client.h: the C ABI of the lapce-ai engine client, for editors in any language
 * (Lapce links it from Rust through bindgen). Plain C99; one handle is used by one thread at a
 * time.
 *
 * A client connects to a running engine (`lapce-ai serve`) over its Unix control socket and then
 * exchanges messages through shared-memory rings. Requests carry a message type (1..255) and a
 * payload of bytes; replies come back per request id: zero or more stream items, then one final
 * reply or an error. The wire format is in docs/protocol.md.
 *
 * Ownership
 *   - lai_client_connect() creates a handle; lai_client_close() frees it. Nothing else allocates
 *     memory the caller must free.
 *   - The library never keeps the caller's pointers: payloads and paths are copied (or written to
 *     the ring) before a call returns.
 *   - Strings and payload bytes the library returns are owned by the library. The caller must not
 *     free or modify them.
 *
 * Lifetimes
 *   - lai_response.data stays valid until the next call on the same handle (any function taking
 *     the handle except lai_client_last_error() and lai_client_is_connected()), or until
 *     lai_client_close(). Copy the bytes to keep them.
 *   - lai_client_last_error() stays valid until the next call on the same handle.
 *   - lai_thread_error() stays valid until the next lai_ call on the same thread that records a
 *     thread error (a connect, or a call given a NULL handle).
 *   - lai_status_string() returns static strings.
 *
 * Threads
 *   - A handle is thread-compatible: use it from one thread at a time (it may move between threads
 *     with external synchronisation). Different handles are independent and may be used from
 *     different threads at once; open one handle per thread for parallel calls (connections are
 *     cheap: all of a process's connections share one mapped file).
 *   - lai_status_string(), lai_thread_error() and lai_abi_version() are thread-safe.
 *
 * Errors
 *   - Every function that can fail returns an lai_status; LAI_OK (0) is success. The codes say
 *     what the caller should do (LAI_ERR_UNAVAILABLE: retry later; LAI_ERR_INVALID_ARGUMENT: the
 *     same call will fail again).
 *   - A NULL pointer where a pointer is required returns LAI_ERR_INVALID_ARGUMENT.
 *   - Error messages, the library's own and those the engine sends in error replies, name the
 *     operation and its inputs (socket path, request id, message type, sizes) in UTF-8. They never
 *     contain payload bytes, credentials or other secrets, so they are safe to log and to show.
 *   - No C++ exception crosses this interface, and the library never raises SIGPIPE.
 *
 * Reconnection
 *   - When the engine goes away, calls fail fast with LAI_ERR_UNAVAILABLE; the next request on the
 *     handle reconnects (with a short capped backoff, a few milliseconds), so a restarted engine is
 *     picked up without reopening the handle. Replies to requests sent on the lost connection never
 *     arrive: receiving them returns LAI_ERR_UNAVAILABLE.
 *   - A handle idle for more than 10 ms checks its connection before sending, so its first call
 *     after the engine restarted goes to the new engine. Within 10 ms of its last request a call
 *     can still reach the old connection and fail with LAI_ERR_UNAVAILABLE; calling again
 *     reconnects. lai_client_call re-sends (once) a request the engine announced it was shutting
 *     down without handling.
 */
#ifndef LAPCE_AI_CLIENT_H_
#define LAPCE_AI_CLIENT_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Incompatible changes bump the ABI version (and the shared library's soname,
 * liblapce_ai_client.so.<ABI version>). Compatible additions (new functions, new option fields
 * at the end of lai_client_options) keep it. */
#define LAPCE_AI_CLIENT_ABI_VERSION 1

#if defined(__GNUC__) || defined(__clang__)
#define LAI_CLIENT_API __attribute__((visibility("default")))
#else
#define LAI_CLIENT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Mirrors lai::ErrorCode (src/base/result.h) value for value. Future versions may add codes: treat
 * an unknown value like LAI_ERR_INTERNAL. */
typedef enum lai_status {
  LAI_OK = 0,
  LAI_ERR_INVALID_ARGUMENT = 1,   /* The input is wrong; retrying the same call fails again. */
  LAI_ERR_NOT_FOUND = 2,          /* The named thing does not exist. */
  LAI_ERR_PERMISSION_DENIED = 3,  /* Not allowed for this user (the server runs as another). */
  LAI_ERR_UNAVAILABLE = 4,        /* Transient: no server, or the connection was lost. Retry. */
  LAI_ERR_TIMEOUT = 5,            /* The deadline passed before a reply came. */
  LAI_ERR_IO = 6,                 /* The operating system refused an I/O operation. */
  LAI_ERR_PROTOCOL = 7,           /* The peer broke the wire protocol; the connection closed. */
  LAI_ERR_CANCELLED = 8,          /* The request was cancelled. */
  LAI_ERR_RESOURCE_EXHAUSTED = 9, /* A limit was reached (memory, connections, message size). */
  LAI_ERR_INTERNAL = 10           /* A bug in lapce-ai. */
} lai_status;

/* Message types 1..15 belong to the transport; engine services use 16..255. (Plain integers, so
 * that bindgen turns them into constants.) */
#define LAI_MESSAGE_ECHO 2    /* The payload comes back unchanged. */
#define LAI_MESSAGE_HEALTH 3  /* Reply: JSON {"status":"ok","pid":..,...}. */
#define LAI_MESSAGE_METRICS 4 /* Reply: Prometheus text exposition. */
#define LAI_MESSAGE_CHECKSUM 7 /* Reply: 8 bytes, the sum modulo 2^64 of the payload read as
                                  little-endian 64-bit words (a last partial word zero-padded). */
#define LAI_MESSAGE_COMPLETE 16 /* Request: an AIRequest (JSON). Stream items: one JSON event each
                                   ({"type":"text",...}); final reply: {"type":"done",...}. See
                                   docs/protocol.md. */
#define LAI_MESSAGE_RPC_OPEN                                               \
  17 /* Request (empty): opens a JSON-RPC channel (ACP). Stream items: the \
        8-byte channel token, then one server -> client JSON-RPC message   \
        each; the final reply ends the channel. docs/protocol.md §13. */
#define LAI_MESSAGE_RPC_MESSAGE                                       \
  18 /* Notification (lai_client_notify): the channel token, then one \
        client -> server JSON-RPC message (nothing after the token    \
        closes the channel). */

/* Connection options. Zero-initialise, set struct_size, then set the fields you need: every field
 * left 0 takes its default. Fields added in later versions go at the end, so a program built
 * against an older header keeps working (the library treats the missing fields as 0), and a newer
 * program works with an older library as long as it leaves the fields that library does not know
 * at 0 (otherwise connect returns LAI_ERR_INVALID_ARGUMENT). */
typedef struct lai_client_options {
  uint32_t struct_size;        /* sizeof(lai_client_options). Required. */
  uint32_t ring_bytes;         /* Ring data bytes per direction. Default 1024; clamped to 256
                                  bytes .. 64 MiB and made a power of two of 64-byte cells.
                                  Larger messages stream through the ring in fragments. */
  uint32_t max_message_bytes;  /* Largest message in either direction. Default 10 MiB; at most
                                  1 GiB. The server may agree on a smaller limit. */
  uint32_t request_timeout_ms; /* Default wait for a reply or for ring space. Default 30000. */
  uint32_t connect_timeout_ms; /* Wait for the server's handshake reply. Default 1000. */
} lai_client_options;

#define LAI_CLIENT_OPTIONS_INIT \
  { sizeof(lai_client_options), 0, 0, 0, 0 }

/* One reply frame. `data` points into library-owned memory (see Lifetimes above); it may be NULL
 * when `length` is 0. */
typedef struct lai_response {
  uint64_t request_id;
  uint16_t type; /* The request's message type. */
  bool is_final; /* true: the request's final reply; false: one item of a streamed reply. */
  const uint8_t* data;
  size_t length;
} lai_response;

/* Opaque connection handle. */
typedef struct lai_client lai_client;

/* The LAPCE_AI_CLIENT_ABI_VERSION the library was built with; compare it with the macro to detect
 * a header/library mismatch at run time. */
LAI_CLIENT_API uint32_t lai_abi_version(void);

/* "ok", "invalid argument", "unavailable", ...; "unknown status" for values this library does not
 * know. Never NULL. */
LAI_CLIENT_API const char* lai_status_string(lai_status status);

/* Connects to the engine listening on `socket_path` and stores a new handle in *out_client.
 * `socket_path` NULL means the default: $XDG_RUNTIME_DIR/lapce-ai/engine.sock when
 * XDG_RUNTIME_DIR is an absolute path, else /tmp/lapce-ai-<uid>/engine.sock. (The engine's
 * configuration file is not read: pass the path when the engine uses another one.)
 * `options` NULL means all defaults.
 * Errors: LAI_ERR_UNAVAILABLE when no server listens there; LAI_ERR_PERMISSION_DENIED when the
 * server runs as another user; LAI_ERR_TIMEOUT when it does not answer the handshake;
 * LAI_ERR_INVALID_ARGUMENT for bad options or a path longer than 107 bytes; the server's code
 * when it refuses the connection. On error *out_client is set to NULL and lai_thread_error()
 * says why. */
LAI_CLIENT_API lai_status lai_client_connect(const char* socket_path,
                                             const lai_client_options* options,
                                             lai_client** out_client);

/* Sends a request of message type `type` (1..255) with `length` bytes at `payload` (NULL allowed
 * when `length` is 0) and stores its id in *out_request_id. Ids are unique per handle and never
 * 0. Receive every request's final reply: a reply that arrives while you wait for another request
 * is kept in memory until received or until the connection closes. Reconnects first when the
 * connection was lost. Waits for ring space at most the request timeout.
 * Errors: LAI_ERR_INVALID_ARGUMENT (type out of range or one of the transport's control frames
 * 1, 5 and 6, payload over max_message_bytes),
 * LAI_ERR_UNAVAILABLE (no server; retry later), LAI_ERR_TIMEOUT (the server did not drain the
 * ring in time; when part of a large message had been sent, the connection is closed too). */
LAI_CLIENT_API lai_status lai_client_request(lai_client* client, uint16_t type, const void* payload,
                                             size_t length, uint64_t* out_request_id);

/* Sends a notification of message type `type`: the engine handles it and sends no reply (there is
 * nothing to receive), as JSON-RPC channel messages (LAI_MESSAGE_RPC_MESSAGE) need. Otherwise as
 * lai_client_request, with the same errors. */
LAI_CLIENT_API lai_status lai_client_notify(lai_client* client, uint16_t type, const void* payload,
                                            size_t length);

/* Waits for the next reply frame of `request_id` and stores it in *out_response: a stream item
 * (is_final false) or the final reply (is_final true). Replies to other requests that arrive
 * meanwhile are kept for their own receive. `timeout_ms` 0 means the request timeout.
 * Errors: the server's error reply as its status, with its message in lai_client_last_error();
 * LAI_ERR_TIMEOUT when nothing came in time (the request stays pending: receive again, or cancel
 * it); LAI_ERR_UNAVAILABLE when the connection was lost before the reply came;
 * LAI_ERR_INVALID_ARGUMENT for an id this handle never sent, or whose final reply it has received
 * (of its last 4096 requests). */
LAI_CLIENT_API lai_status lai_client_receive(lai_client* client, uint64_t request_id,
                                             uint32_t timeout_ms, lai_response* out_response);

/* lai_client_request followed by lai_client_receive until the final reply (stream items are
 * skipped). `timeout_ms` (0: the request timeout) bounds each wait for a reply frame. */
LAI_CLIENT_API lai_status lai_client_call(lai_client* client, uint16_t type, const void* payload,
                                          size_t length, uint32_t timeout_ms,
                                          lai_response* out_response);

/* Asks the server to stop the streamed reply of `request_id`. The request's final reply (or error)
 * still arrives and should be received. Cancelling a request that does not stream, or that has
 * finished, is harmless and returns LAI_OK. LAI_ERR_UNAVAILABLE when not connected. */
LAI_CLIENT_API lai_status lai_client_cancel(lai_client* client, uint64_t request_id);

/* True while the handle holds a connection that neither it nor the server has closed: a server
 * that shut down or died reads false at once, without a receive (one poll() of the connection's
 * socket). When false, the next request reconnects. False for NULL. */
LAI_CLIENT_API bool lai_client_is_connected(const lai_client* client);

/* Closes the connection and frees the handle. NULL is ignored. The handle must not be used
 * afterwards. Waits at most 100 ms for the server to acknowledge the close. */
LAI_CLIENT_API void lai_client_close(lai_client* client);

/* The error message of the last call on `client`, or "" when that call succeeded. Never NULL. */
LAI_CLIENT_API const char* lai_client_last_error(const lai_client* client);

/* This thread's last error that has no handle to live on: why the last lai_client_connect on this
 * thread failed ("" after a successful one), or which argument was NULL when a function was given
 * a NULL handle. Never NULL. */
LAI_CLIENT_API const char* lai_thread_error(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LAPCE_AI_CLIENT_H_ */
