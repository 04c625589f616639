// "HOST:PORT" parsing shared by the server and the client (IPv6 as "[::1]:7070").
#pragma once
#include <cstdint>
#include <string>

#include "libsplit/status.h"

namespace libsplit::net {
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
Result<HostPort> parse_host_port(const std::string& text);
}  // namespace libsplit::net
