#include "common/log.h"

#include <mutex>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "libsplit/log.h"

namespace libsplit {
namespace {

class CallbackSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void set(LogCallback cb) {
    std::lock_guard<std::mutex> lock(mutex_);
    cb_ = std::move(cb);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (cb_) {
      cb_(LogLevel(int(msg.level)), std::string(msg.payload.data(), msg.payload.size()));
    } else {
      spdlog::memory_buf_t buf;
      formatter_->format(msg, buf);
      std::fwrite(buf.data(), 1, buf.size(), stderr);
    }
  }
  void flush_() override { std::fflush(stderr); }

 private:
  LogCallback cb_;
};

struct State {
  std::shared_ptr<CallbackSink> sink = std::make_shared<CallbackSink>();
  std::shared_ptr<spdlog::logger> logger;
  State() {
    sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [libsplit] [%l] %v");
    logger = std::make_shared<spdlog::logger>("libsplit", sink);
    logger->set_level(spdlog::level::warn);
  }
};
State& state() {
  static State s;
  return s;
}

}  // namespace

void set_log_level(LogLevel level) { state().logger->set_level(spdlog::level::level_enum(int(level))); }
void set_log_callback(LogCallback cb) { state().sink->set(std::move(cb)); }

bool parse_log_level(const std::string& name, LogLevel* out) {
  static const std::pair<const char*, LogLevel> kNames[] = {
      {"trace", LogLevel::kTrace}, {"debug", LogLevel::kDebug}, {"info", LogLevel::kInfo},
      {"warn", LogLevel::kWarn},   {"error", LogLevel::kError}, {"off", LogLevel::kOff}};
  for (const auto& [n, l] : kNames)
    if (name == n) {
      *out = l;
      return true;
    }
  return false;
}

namespace detail {
std::shared_ptr<spdlog::logger> logger() { return state().logger; }
}  // namespace detail

}  // namespace libsplit
