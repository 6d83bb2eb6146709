#include "services/runtime/security_flags.h"

#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "services/runtime/process_setup.h"

ABSL_FLAG(std::string, tls_cert, "",
          "TLS: this process's certificate (PEM). With --tls_key a server serves TLS; with "
          "--tls_ca a client presents it (mutual TLS).");
ABSL_FLAG(std::string, tls_key, "", "TLS: the private key of --tls_cert (PEM).");
ABSL_FLAG(std::string, tls_ca, "",
          "TLS: the CA that signs the peers' certificates (PEM). A client verifies servers "
          "against it; a server with it requires and verifies client certificates (mTLS).");
ABSL_FLAG(std::string, token_file, "",
          "The cluster token (a file readable by its owner only): data and status calls "
          "present it, servers accept it.");
ABSL_FLAG(std::string, admin_token_file, "",
          "The admin token (a file readable by its owner only): admin calls (hips mode) "
          "present it, HQ accepts it.");
ABSL_FLAG(std::string, member_token_file, "",
          "This member's own token (hips token --member=ID --role=ROLE; a file readable by its "
          "owner only): its data calls present it instead of the cluster token.");
ABSL_FLAG(std::string, member_key_file, "",
          "The cluster's public member key (KEY.pub of hips token --new_key_file=KEY): this "
          "server then takes data calls only with a member token of the role it serves (or an "
          "mTLS certificate), each member speaking for itself only.");
ABSL_FLAG(bool, insecure, false,
          "Serve without TLS off loopback and without credentials (a network you trust "
          "completely; docs/security.md).");

namespace hips {

SecurityOptions SecurityOptionsFromFlagsOrExit() {
  TlsFiles tls{absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
               absl::GetFlag(FLAGS_tls_ca)};
  // Under --check_flags the files are not read: they exist where the
  // process is deployed, not necessarily where its flags are checked.
  absl::StatusOr<SecurityOptions> security =
      (CheckingFlagsOnly() ? DeclaredSecurity : LoadSecurity)(tls, absl::GetFlag(FLAGS_token_file),
                                                              absl::GetFlag(FLAGS_admin_token_file),
                                                              absl::GetFlag(FLAGS_insecure));
  if (!security.ok()) ExitWithUsageError(std::string(security.status().message()));
  absl::Status members = CheckingFlagsOnly()
                             ? DeclareMemberCredentials(absl::GetFlag(FLAGS_member_token_file),
                                                        absl::GetFlag(FLAGS_member_key_file),
                                                        &*security)
                             : LoadMemberCredentials(absl::GetFlag(FLAGS_member_token_file),
                                                     absl::GetFlag(FLAGS_member_key_file),
                                                     &*security);
  if (!members.ok()) ExitWithUsageError(std::string(members.message()));
  return *std::move(security);
}

}  // namespace hips
