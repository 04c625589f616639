#include "net/endpoint.h"

#include "common/errors.h"

namespace libsplit::net {

Result<HostPort> parse_host_port(const std::string& text) {
  HostPort hp;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return detail::invalid_argument("address \"", text, "\": expected [IPv6]:PORT");
    hp.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0)
      return detail::invalid_argument("address \"", text, "\": expected HOST:PORT, e.g. 127.0.0.1:7070");
    hp.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535)
    return detail::invalid_argument("address \"", text, "\": port must be a number in [0, 65535]");
  hp.port = uint16_t(std::stoul(port));
  return hp;
}

}  // namespace libsplit::net
