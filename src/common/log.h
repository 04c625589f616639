// The library's own spdlog logger ("libsplit"). It is never registered in spdlog's registry and
// never replaces the application's default logger; see include/libsplit/log.h.
#pragma once
#include <memory>

#include <spdlog/spdlog.h>

namespace libsplit::detail {
std::shared_ptr<spdlog::logger> logger();
}
