#include "services/net/address.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace hips {
namespace {

bool IsHostName(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (char c : host) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '.' && c != '_') return false;
  }
  return host.front() != '-' && host.front() != '.';
}

bool IsBracketedV6(absl::string_view host) {
  if (host.size() < 4 || host.front() != '[' || host.back() != ']') return false;
  for (char c : host.substr(1, host.size() - 2)) {
    if (!absl::ascii_isxdigit(c) && c != ':' && c != '.') return false;
  }
  return true;
}

}  // namespace

absl::Status CheckDialAddress(absl::string_view flag, absl::string_view address) {
  auto bad = [&](absl::string_view why) {
    // "--hq=VALUE" for a flag, "hips health VALUE" for an argument.
    return absl::InvalidArgumentError(absl::StrCat(flag, absl::StartsWith(flag, "--") ? "=" : " ",
                                                   address, ": ", why,
                                                   " (expected HOST:PORT or unix:PATH)"));
  };
  if (absl::StartsWith(address, "unix:")) {
    return address.size() > 5 ? absl::OkStatus() : bad("no socket path");
  }
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return bad("no port");
  const absl::string_view host = address.substr(0, colon);
  const absl::string_view port = address.substr(colon + 1);
  if (!IsHostName(host) && !IsBracketedV6(host)) return bad("not a host name or address");
  int value = 0;
  if (port.empty() || !absl::ascii_isdigit(port.front()) || !absl::SimpleAtoi(port, &value) ||
      value < 1 || value > 65535) {
    return bad("the port must be in [1, 65535]");
  }
  return absl::OkStatus();
}

absl::Status CheckListenPort(absl::string_view flag, int port, bool none_allowed) {
  if (port >= (none_allowed ? -1 : 0) && port <= 65535) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(flag, "=", port, ": must be a port in [0, 65535]",
                                                 none_allowed ? ", or -1 for none" : ""));
}

}  // namespace hips
