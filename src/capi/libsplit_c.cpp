// The C API over the C++ one: handles own the C++ objects; statuses map one to one; errors keep
// their message in a thread-local string; nothing throws across the boundary.
#include "libsplit/libsplit_c.h"

#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "libsplit/bundle.h"
#include "libsplit/client.h"
#include "libsplit/log.h"
#include "libsplit/preprocess.h"
#include "libsplit/session.h"

struct ls_bundle {
  std::unique_ptr<libsplit::Bundle> bundle;
};
struct ls_client {
  std::unique_ptr<libsplit::Client> client;
};
struct ls_session {
  const ls_bundle* bundle;
  std::unique_ptr<libsplit::SplitSession> session;
  std::mutex mu;  // calls on one session take turns
};

namespace {

thread_local std::string last_error;

ls_status fail(const libsplit::Status& st) {
  last_error = st.to_string();
  return ls_status(int(st.code()));
}
ls_status fail(ls_status code, const std::string& message) {
  last_error = std::string(ls_status_name(code)) + ": " + message;
  return code;
}
ls_status copy_string(const std::string& s, char* buf, size_t size) {
  if (!buf) return fail(LS_INVALID_ARGUMENT, "buffer is NULL");
  if (s.size() + 1 > size)
    return fail(LS_RESOURCE_EXHAUSTED, "buffer of " + std::to_string(size) + " bytes is too small for \"" + s + "\"");
  std::memcpy(buf, s.c_str(), s.size() + 1);
  return LS_OK;
}

// Runs `f`, turning any exception (allocation, a bug) into LS_INTERNAL.
template <typename F>
ls_status guarded(F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return fail(LS_RESOURCE_EXHAUSTED, "out of memory");
  } catch (const std::exception& e) {
    return fail(LS_INTERNAL, e.what());
  } catch (...) {
    return fail(LS_INTERNAL, "unknown exception");
  }
}

}  // namespace

extern "C" {

const char* ls_status_name(ls_status status) {
  return libsplit::status_code_name(libsplit::StatusCode(uint8_t(status)));
}

const char* ls_last_error(void) { return last_error.c_str(); }

void ls_set_log_callback(ls_log_fn fn, void* user, ls_log_level min_level) {
  libsplit::set_log_level(libsplit::LogLevel(int(min_level)));
  if (!fn) return libsplit::set_log_callback(nullptr);
  libsplit::set_log_callback([fn, user](libsplit::LogLevel level, const std::string& message) {
    fn(ls_log_level(int(level)), message.c_str(), user);
  });
}

ls_status ls_bundle_open(const char* dir, int threads, ls_bundle** out) {
  if (!dir || !out) return fail(LS_INVALID_ARGUMENT, "ls_bundle_open: dir and out must not be NULL");
  *out = nullptr;
  return guarded([&] {
    libsplit::BundleOptions o;
    o.load_tails = false;
    o.intra_op_threads = threads > 0 ? threads : 0;
    auto b = libsplit::Bundle::open(dir, o);
    if (!b.ok()) return fail(b.status());
    *out = new ls_bundle{std::move(*b)};
    return LS_OK;
  });
}

void ls_bundle_close(ls_bundle* bundle) { delete bundle; }

const char* ls_bundle_name(const ls_bundle* bundle) { return bundle ? bundle->bundle->manifest().name.c_str() : ""; }

ls_status ls_bundle_input(const ls_bundle* bundle, uint32_t* height, uint32_t* width, uint32_t* channels) {
  if (!bundle || !height || !width || !channels) return fail(LS_INVALID_ARGUMENT, "ls_bundle_input: NULL argument");
  const auto& shape = bundle->bundle->manifest().input.shape;  // [N, C, H, W], validated at open
  *channels = uint32_t(shape.at(1));
  *height = uint32_t(shape.at(2));
  *width = uint32_t(shape.at(3));
  return LS_OK;
}

size_t ls_bundle_split_count(const ls_bundle* bundle) {
  return bundle ? bundle->bundle->manifest().splits.size() : 0;
}

ls_status ls_bundle_split_id(const ls_bundle* bundle, size_t i, char* buf, size_t buf_size) {
  if (!bundle) return fail(LS_INVALID_ARGUMENT, "ls_bundle_split_id: bundle is NULL");
  const auto& splits = bundle->bundle->manifest().splits;
  if (i >= splits.size())
    return fail(LS_INVALID_ARGUMENT, "split index " + std::to_string(i) + " out of range (" +
                                         std::to_string(splits.size()) + " splits)");
  return copy_string(splits[i].id, buf, buf_size);
}

ls_status ls_bundle_default_split(const ls_bundle* bundle, char* buf, size_t buf_size) {
  if (!bundle) return fail(LS_INVALID_ARGUMENT, "ls_bundle_default_split: bundle is NULL");
  return copy_string(bundle->bundle->manifest().default_split, buf, buf_size);
}

const char* ls_bundle_label(const ls_bundle* bundle, uint32_t index) {
  if (!bundle) return "";
  const auto& labels = bundle->bundle->manifest().labels;
  return index < labels.size() ? labels[index].c_str() : "";
}

ls_status ls_client_connect(const char* server, const char* model, uint32_t timeout_ms, ls_client** out) {
  if (!server || !model || !out) return fail(LS_INVALID_ARGUMENT, "ls_client_connect: NULL argument");
  *out = nullptr;
  return guarded([&] {
    libsplit::ClientOptions o;
    o.server = server;
    o.model = model;
    if (timeout_ms) o.connect_timeout_ms = timeout_ms;
    o.io_thread = false;
    auto c = libsplit::Client::connect(o);
    if (!c.ok()) return fail(c.status());
    *out = new ls_client{std::move(*c)};
    return LS_OK;
  });
}

void ls_client_close(ls_client* client) { delete client; }

ls_status ls_session_create(const ls_bundle* bundle, ls_client* client, ls_session** out) {
  if (!bundle || !out) return fail(LS_INVALID_ARGUMENT, "ls_session_create: bundle and out must not be NULL");
  *out = nullptr;
  return guarded([&] {
    auto s = libsplit::SplitSession::create(bundle->bundle.get(), client ? client->client.get() : nullptr);
    if (!s.ok()) return fail(s.status());
    auto* h = new ls_session;
    h->bundle = bundle;
    h->session = std::move(*s);
    *out = h;
    return LS_OK;
  });
}

void ls_session_destroy(ls_session* session) { delete session; }

ls_status ls_session_run(ls_session* session, const char* strategy, const uint8_t* pixels, uint32_t height,
                         uint32_t width, uint32_t channels, uint32_t deadline_ms, ls_class_score* top, size_t k,
                         size_t* count, ls_timings* timings) {
  if (!session || !pixels || !count || (k > 0 && !top))
    return fail(LS_INVALID_ARGUMENT, "ls_session_run: session, pixels, count (and top when k > 0) must not be NULL");
  if (k > 255) return fail(LS_INVALID_ARGUMENT, "k must be at most 255, got " + std::to_string(k));
  *count = 0;
  return guarded([&] {
    std::lock_guard<std::mutex> lock(session->mu);
    const auto& m = session->bundle->bundle->manifest();
    std::string name = strategy ? strategy : m.default_split;
    if (name.empty() && !m.splits.empty()) name = m.splits[0].id;
    auto st = libsplit::Strategy::parse(name, m);
    if (!st.ok()) return fail(st.status());
    auto x = libsplit::pixels_to_tensor(pixels, int(height), int(width), int(channels), m.input);
    if (!x.ok()) return fail(x.status());
    auto r = session->session->run(*x, *st, int(k == 0 ? 1 : k), deadline_ms);
    if (!r.ok()) return fail(r.status());
    const size_t n = std::min(k, r->top.size());
    for (size_t i = 0; i < n; ++i) top[i] = {r->top[i].index, r->top[i].score};
    *count = n;
    if (timings) {
      *timings = {r->head_us, r->encode_us, r->network_us, r->server_queue_us, r->tail_us, r->total_us,
                  r->request_bytes};
    }
    return LS_OK;
  });
}

}  // extern "C"
