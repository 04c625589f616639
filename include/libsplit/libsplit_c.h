/* libsplit's C API: the device side for firmware written in C. The C++ API (libsplit.h) is the
 * primary one; this is a thin layer over it.
 *
 * Conventions: opaque handles made by the _open, _connect and _create calls and released by the
 * matching _close or _destroy (NULL is accepted there); every fallible call returns an ls_status, and
 * ls_last_error() gives that thread's message for the last failure; results go into buffers the
 * caller provides, with their capacities passed in. Times are microseconds, sizes bytes.
 * Thread safety: handles may be used from any thread; calls on one client or session take turns.
 */
#ifndef LIBSPLIT_LIBSPLIT_C_H
#define LIBSPLIT_LIBSPLIT_C_H

#include <stddef.h>
#include <stdint.h>

#include "libsplit/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The same codes as libsplit::StatusCode and the wire protocol's error frames. */
typedef enum ls_status {
  LS_OK = 0,
  LS_INVALID_ARGUMENT = 1,
  LS_NOT_FOUND = 2,
  LS_DEADLINE_EXCEEDED = 3,
  LS_RESOURCE_EXHAUSTED = 4,
  LS_UNAVAILABLE = 5,
  LS_INTERNAL = 6,
  LS_DATA_LOSS = 7,
  LS_FAILED_PRECONDITION = 8,
  LS_UNAUTHENTICATED = 9
} ls_status;

typedef enum ls_log_level {
  LS_LOG_TRACE = 0,
  LS_LOG_DEBUG = 1,
  LS_LOG_INFO = 2,
  LS_LOG_WARN = 3,
  LS_LOG_ERROR = 4,
  LS_LOG_OFF = 5
} ls_log_level;

typedef struct ls_bundle ls_bundle;   /* a loaded model bundle (heads and full model) */
typedef struct ls_client ls_client;   /* a connection to split-server */
typedef struct ls_session ls_session; /* bundle + optional client: one inference per call */

typedef struct ls_class_score {
  uint32_t index; /* class index; its label is ls_bundle_label(bundle, index) */
  float score;    /* softmax probability in [0, 1] */
} ls_class_score;

typedef struct ls_timings {
  double head_us, encode_us, network_us, server_queue_us, tail_us, total_us;
  size_t request_bytes; /* whole request frame on the wire (0 when run locally) */
} ls_timings;

/* Short stable name of a status, e.g. "unavailable". */
LIBSPLIT_API const char* ls_status_name(ls_status status);
/* This thread's message for its last failed call ("" if none). Valid until its next failure. */
LIBSPLIT_API const char* ls_last_error(void);

/* Log records at `min_level` and above go to `fn` (from any libsplit thread; it must not call
 * back into libsplit). fn = NULL restores the default (stderr). */
typedef void (*ls_log_fn)(ls_log_level level, const char* message, void* user);
LIBSPLIT_API void ls_set_log_callback(ls_log_fn fn, void* user, ls_log_level min_level);

/* Opens the bundle directory `dir` for the device: heads and full model (no tails).
 * threads > 0 sets LibTorch's intra-op thread count (process-wide). */
LIBSPLIT_API ls_status ls_bundle_open(const char* dir, int threads, ls_bundle** out);
LIBSPLIT_API void ls_bundle_close(ls_bundle* bundle);
/* The model's name (the manifest's "name", what ls_client_connect asks the server for); owned
 * by the bundle. */
LIBSPLIT_API const char* ls_bundle_name(const ls_bundle* bundle);
/* The input the bundle takes: height, width, channels of the pixel buffer. */
LIBSPLIT_API ls_status ls_bundle_input(const ls_bundle* bundle, uint32_t* height, uint32_t* width, uint32_t* channels);
LIBSPLIT_API size_t ls_bundle_split_count(const ls_bundle* bundle);
/* Copies split `i`'s id (NUL-terminated) into buf; LS_RESOURCE_EXHAUSTED if it does not fit. */
LIBSPLIT_API ls_status ls_bundle_split_id(const ls_bundle* bundle, size_t i, char* buf, size_t buf_size);
/* The manifest's default split id, or "" (NUL-terminated) when it names none. */
LIBSPLIT_API ls_status ls_bundle_default_split(const ls_bundle* bundle, char* buf, size_t buf_size);
/* Label of class `index` ("" when out of range); owned by the bundle. */
LIBSPLIT_API const char* ls_bundle_label(const ls_bundle* bundle, uint32_t index);

/* Connects to split-server at "HOST:PORT" for model `model` (the bundle's name), within
 * timeout_ms. The connection is caller-driven: no thread of its own. */
LIBSPLIT_API ls_status ls_client_connect(const char* server, const char* model, uint32_t timeout_ms, ls_client** out);
LIBSPLIT_API void ls_client_close(ls_client* client);

/* `client` may be NULL if only "local" will be run. Both must outlive the session. */
LIBSPLIT_API ls_status ls_session_create(const ls_bundle* bundle, ls_client* client, ls_session** out);
LIBSPLIT_API void ls_session_destroy(ls_session* session);

/* One inference on 8-bit pixels (height x width x channels, row-major, interleaved channels,
 * in the bundle's channel order; the input's height and width, or any size when the manifest
 * resizes and crops, input.preprocess). strategy: a split id, "local", a local model id (e.g.
 * "pruned50"), "offload", or NULL for the bundle's default split. Writes the best min(k, classes)
 * classes, best first, to top[0..] and their number to *count; timings may be NULL. deadline_ms 0 = 5000. */
LIBSPLIT_API ls_status ls_session_run(ls_session* session, const char* strategy, const uint8_t* pixels, uint32_t height,
                                      uint32_t width, uint32_t channels, uint32_t deadline_ms, ls_class_score* top,
                                      size_t k, size_t* count, ls_timings* timings);

#ifdef __cplusplus
}
#endif

#endif /* LIBSPLIT_LIBSPLIT_C_H */
