#ifndef HIPS_SERVICES_NET_ADDRESS_H_
#define HIPS_SERVICES_NET_ADDRESS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

// Checks of the addresses and ports flags take, so that a typo is a usage
// error at start (and under --check_flags) rather than a peer that is dialled
// forever.

namespace hips {

// A target to dial: HOST:PORT (HOST a name, an IPv4 address or a bracketed
// IPv6 one; PORT in [1, 65535]) or unix:PATH. INVALID_ARGUMENT naming `flag`
// and the value otherwise.
absl::Status CheckDialAddress(absl::string_view flag, absl::string_view address);

// A port to listen on: [0, 65535] (0: any free one), and -1 (none) when
// `none_allowed`.
absl::Status CheckListenPort(absl::string_view flag, int port, bool none_allowed);

}  // namespace hips

#endif  // HIPS_SERVICES_NET_ADDRESS_H_
