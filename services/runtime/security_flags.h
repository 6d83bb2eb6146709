#ifndef HIPS_SERVICES_RUNTIME_SECURITY_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_SECURITY_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/net/security.h"

// --tls_cert, --tls_key, --tls_ca, --token_file, --admin_token_file,
// --member_token_file, --member_key_file and --insecure: how a hips process proves who it is and whom it lets in
// (docs/security.md). Every daemon and the hips CLI take them.

namespace hips {

// The flags, files read and checked (under --check_flags: not read, see
// DeclaredSecurity); a usage error (exit code 2) naming the flag otherwise.
SecurityOptions SecurityOptionsFromFlagsOrExit();

}  // namespace hips

#endif  // HIPS_SERVICES_RUNTIME_SECURITY_FLAGS_H_
