#ifndef HIPS_CLI_RUN_CREDENTIALS_H_
#define HIPS_CLI_RUN_CREDENTIALS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/net/member_token.h"
#include "services/net/security.h"

// The credentials `hips local` makes for each run, in its run directory
// (docs/security.md), readable by this user only:
//   cluster.token, admin.token   fresh random tokens (256 bits, hex)
//   member.key, member.key.pub   a fresh member key (member tokens)
//   NAME.token                   each aggregator's and worker's own member
//                                token (hips token)
//   tls/ca.pem, tls/ca.key       with --tls: a throwaway CA (P-256, 30 days)
//   tls/NAME.pem, tls/NAME.key   a certificate per process, its common name
//                                the process's id (hq, agg-0, worker-3, the
//                                CLI's hips-cli), valid for localhost and
//                                127.0.0.1
// and what `hips status` and `hips mode` read back from there.

namespace hips {

inline constexpr char kClusterTokenFile[] = "cluster.token";
inline constexpr char kAdminTokenFile[] = "admin.token";
// The run's member key (member tokens): the secret half, and the public one
// beside it (kMemberKeyFile + ".pub").
inline constexpr char kMemberKeyFile[] = "member.key";
inline constexpr char kTlsDir[] = "tls";
// The common name of the certificate hips local's own clients (and hips
// status / hips mode against its run) present.
inline constexpr char kCliIdentity[] = "hips-cli";

// The role of a run's member named `name` (agg-<a>: aggregator,
// worker-<k>: worker), none for HQ and the CLI.
std::optional<MemberRole> RunIdentityRole(absl::string_view name);
// Where the run's member token of `name` is.
std::string MemberTokenPath(const std::string& run_dir, const std::string& name);

// The ids of the processes of a run of `aggregators` and `workers`: hq,
// agg-<a>, worker-<k> (each one's certificate bears its id).
std::vector<std::string> RunIdentities(int aggregators, int workers);
// The same with the worker processes' identities given (a process hosting
// several homes is named by their range, HomeRange).
std::vector<std::string> RunIdentities(int aggregators, const std::vector<std::string>& workers);

// Writes fresh tokens into `run_dir` (replacing earlier ones) and, with
// `tls`, a CA and a certificate for each of `names` (openssl from Debian,
// run as a child). INTERNAL naming the file or the command that failed.
absl::Status WriteRunCredentials(const std::string& run_dir, bool tls,
                                 const std::vector<std::string>& names);

// WriteRunCredentials for a run of `aggregators` and `workers`
// (RunIdentities), then what the run's own operator client presents
// (OperatorCredentials from `run_dir`).
absl::StatusOr<ClientCredentials> PrepareRunCredentials(const std::string& run_dir, bool tls,
                                                        int aggregators, int workers);
absl::StatusOr<ClientCredentials> PrepareRunCredentials(const std::string& run_dir, bool tls,
                                                        int aggregators,
                                                        const std::vector<std::string>& workers);

// The flags a process of the run named `name` is started with: the token
// files (the admin one too with `admin`: HQ; a worker gets its member token
// only, an aggregator its own and the cluster's), the public member key
// (HQ and aggregators check their callers' tokens with it) and, with `tls`,
// its certificate, key and the CA.
std::vector<std::string> RunSecurityArgs(const std::string& run_dir, const std::string& name,
                                         bool tls, bool admin);

// What an operator's client (hips status, hips mode, hips local's own
// status reads) presents: `flags` where they name files, else the run's
// files in `run_dir` (the admin token if `admin`, else the cluster token;
// the CLI's certificate if the run has TLS). INVALID_ARGUMENT when a token
// is named nowhere.
// With `target`, plaintext to it is refused unless it is this machine or
// `flags` say --insecure (CheckPlaintextDial).
absl::StatusOr<ClientCredentials> OperatorCredentials(const SecurityOptions& flags,
                                                      const std::string& run_dir, bool admin,
                                                      absl::string_view target = "");

}  // namespace hips

#endif  // HIPS_CLI_RUN_CREDENTIALS_H_
