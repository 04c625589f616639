// libsplit logs through its own logger, which by default writes warnings and errors to stderr.
// It never touches the application's default spdlog logger. Both calls are thread-safe.
#pragma once

#include "libsplit/export.h"

#include <functional>
#include <string>

LIBSPLIT_PUBLIC_BEGIN
namespace libsplit {

enum class LogLevel { kTrace = 0, kDebug, kInfo, kWarn, kError, kOff };

// Minimum level that reaches the sink (default kWarn).
void set_log_level(LogLevel level);
// Sends every record to `callback` instead of stderr (an empty function restores stderr).
// The callback may be called from any libsplit thread and must not call back into libsplit.
using LogCallback = std::function<void(LogLevel level, const std::string& message)>;
void set_log_callback(LogCallback callback);
// Parses "trace", "debug", "info", "warn", "error", "off"; returns false if unknown.
bool parse_log_level(const std::string& name, LogLevel* out);

}  // namespace libsplit
LIBSPLIT_PUBLIC_END
