#ifndef HIPS_SERVICES_NET_SECURITY_H_
#define HIPS_SERVICES_NET_SECURITY_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "services/net/member_token.h"

// Who may talk to a hips process, and how it proves who it is
// (docs/security.md): TLS through gRPC's own SSL credentials, mutual TLS
// when a CA is given, and bearer tokens in every call's metadata: the
// cluster token for data and status calls, the admin token for admin calls.

namespace hips {

// PEM files; empty paths: none.
struct TlsFiles {
  std::string cert;  // this process's certificate (chain)
  std::string key;   // its private key
  std::string ca;    // the CA that signs the peers' certificates
};

// What a process is configured with: its TLS files, the tokens it presents
// or accepts, and whether it may run without TLS off loopback and without
// any credentials.
struct SecurityOptions {
  TlsFiles tls;
  std::string cluster_token;
  std::string admin_token;
  bool insecure = false;
  // Member tokens (services/net/member_token.h): the token this process
  // presents as a member on its data calls (empty: the cluster token), and
  // the public member key its server checks callers' tokens with (raw
  // bytes; empty: none, and data calls take the cluster token as before).
  std::string member_token;
  std::string member_key;
  // The role of the members whose data calls this server takes (HQ:
  // aggregators, an aggregator: workers); set by the daemon, not a flag.
  MemberRole serves = MemberRole::kWorker;
};

// The smallest token accepted (bytes), so a short guess does not pass.
inline constexpr size_t kMinTokenBytes = 16;
inline constexpr size_t kMaxTokenBytes = 4096;

// Reads a token file: one line, trailing whitespace dropped. The file must
// be readable by its owner only (like ssh's keys), and the token printable
// ASCII of kMinTokenBytes to kMaxTokenBytes bytes. INVALID_ARGUMENT naming
// the file otherwise (never the token).
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// `contents` into a new file `path` that only this user may read (an
// earlier file there is replaced, whatever its permissions were). INTERNAL
// naming the file.
absl::Status WritePrivateFile(const std::string& path, const std::string& contents);

// Why a token file of `owner` and `mode` must not be trusted by a process of
// effective uid `euid`, or "" when it may: a file of the process's own user
// (or of another non-root user) must be owner-only (0600 or less); one of
// root, read by another user, may also be read by its group (0640 or less:
// a Kubernetes Secret mounted with an fsGroup).
std::string TokenFileModeProblem(uid_t owner, mode_t mode, uid_t euid);

// Reads the token files and checks the TLS files exist and go together (a
// key with its certificate; mTLS needs both and a CA). INVALID_ARGUMENT
// naming what is wrong.
absl::StatusOr<SecurityOptions> LoadSecurity(const TlsFiles& tls, const std::string& token_file,
                                             const std::string& admin_token_file, bool insecure);

// What LoadSecurity checks without touching a file, for --check_flags (the
// files of a deployment manifest exist only where it runs): the TLS files go
// together and the two token files differ. Each token given stands in as
// "<token of PATH>", so that CheckServerSecurity sees which credentials are
// configured; such options are for checks only, never for serving.
absl::StatusOr<SecurityOptions> DeclaredSecurity(const TlsFiles& tls, const std::string& token_file,
                                                 const std::string& admin_token_file,
                                                 bool insecure);

// Reads this member's token (a token file holding a member token) and the
// public member key into `security`; empty paths: none. INVALID_ARGUMENT
// naming the file and what is wrong.
absl::Status LoadMemberCredentials(const std::string& member_token_file,
                                   const std::string& member_key_file, SecurityOptions* security);
// The same for --check_flags: nothing is read; each file given stands in as
// "<... of PATH>".
absl::Status DeclareMemberCredentials(const std::string& member_token_file,
                                      const std::string& member_key_file,
                                      SecurityOptions* security);

// A client about to dial `target` (HOST:PORT or unix:PATH, named by `flag`)
// with `security`: refuses plaintext (no --tls_ca) to a host that is not
// this machine, unless --insecure. INVALID_ARGUMENT saying what to pass.
absl::Status CheckPlaintextDial(absl::string_view flag, absl::string_view target,
                                const SecurityOptions& security);

// A client's TLS files go together: a certificate needs its key and the CA
// (TLS to the server). INVALID_ARGUMENT otherwise. Reads nothing.
absl::Status CheckClientTls(const TlsFiles& tls);

// Whether `host` (of host:port, or a "unix:" target) only reaches this
// machine: 127.0.0.0/8, ::1, localhost, or a Unix socket.
bool IsLoopback(absl::string_view host);

// A server is about to listen on `host`: refuses plaintext off loopback,
// and a server nobody could authenticate to (no cluster token, no member
// key and no mTLS; not asked of a `health_only` server: a worker's, whose
// health service needs no credentials), unless `insecure`.
// INVALID_ARGUMENT (a configuration error) saying why and what to pass.
absl::Status CheckServerSecurity(absl::string_view host, const SecurityOptions& security,
                                 bool needs_admin, bool health_only = false);

// gRPC credentials of a server: TLS with the certificate and key (requiring
// and verifying client certificates against the CA when one is given), or
// plaintext. The files are read here; INVALID_ARGUMENT if one cannot be.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const SecurityOptions& security);

// CheckServerSecurity, then ServerCredentials: what a daemon about to listen
// on `host` serves with.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServingCredentials(
    absl::string_view host, const SecurityOptions& security, bool needs_admin,
    bool health_only = false);

// The calls a server tells apart.
enum class Access {
  kData,    // push, pull, heartbeat: the cluster token or an mTLS identity;
            // with a member key, a member token of the role the server
            // serves (or an mTLS identity) and nothing else
  kStatus,  // GetStatus: either token, or an mTLS identity
  kAdmin,   // SetMode and later admin calls: the admin token
};

// Checks the credentials of incoming calls. Tokens are compared in constant
// time and never logged. Thread-safe (immutable after construction but for
// its cache of verified member tokens).
class Authorizer {
 public:
  explicit Authorizer(const SecurityOptions& security);

  // OK, UNAUTHENTICATED (no token, an unknown one or a member token that
  // does not verify, and no verified client certificate), or
  // PERMISSION_DENIED (the cluster token or a certificate on an admin call;
  // with a member key, the cluster token on a data call, a member token of
  // another role, or a member token on a status call). Without any
  // credential configured (--insecure), every call is let in.
  absl::Status Check(const grpc::ServerContextBase& ctx, Access access) const;

  // A member may only speak for itself: with mTLS `member` must be the
  // common name of the peer's certificate, with a member key the member of
  // the caller's token. PERMISSION_DENIED otherwise; OK with neither.
  absl::Status CheckIdentity(const grpc::ServerContextBase& ctx, absl::string_view member) const;

  // Who the call of `ctx` comes from, for per-member limits: its
  // certificate's common name (mTLS) or its member token's id; "" when
  // neither says (the cluster token is every member's).
  std::string Caller(const grpc::ServerContextBase& ctx) const;

  bool mtls() const { return mtls_; }

 private:
  // The member a call's token proves (UNAUTHENTICATED when it does not);
  // only with a member key. A token that verified once is remembered (up
  // to kVerifiedTokens of them): a signature check costs ~40 µs, and every
  // call would make two or three.
  absl::StatusOr<MemberIdentity> Member(absl::string_view token) const;
  static constexpr size_t kVerifiedTokens = 16384;

  const std::string cluster_token_;
  const std::string admin_token_;
  const std::string member_key_;
  const MemberRole serves_;
  const bool mtls_;
  const bool open_;  // no credential configured at all
  mutable absl::Mutex verified_mu_;
  mutable absl::flat_hash_map<std::string, MemberIdentity> verified_
      ABSL_GUARDED_BY(verified_mu_);
};

// Calls a server refused before serving them (no or wrong credentials, a
// peer speaking for another member, a full server, a push that stalled), by
// reason: the status code's name in lower case ("unauthenticated",
// "permission_denied", "resource_exhausted", "deadline_exceeded").
// Thread-safe.
class RefusalCounter {
 public:
  void Count(const absl::Status& refusal);
  std::map<std::string, int64_t> counts() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, int64_t> counts_ ABSL_GUARDED_BY(mu_);
};

// The reason RefusalCounter files `code` under.
std::string RefusalReason(absl::StatusCode code);
// The reasons a call is refused for (the metrics' label values).
const std::vector<std::string>& AllRefusalReasons();

// What a client presents: its TLS files (the CA to verify the server; a
// certificate and key for mTLS) and the token it sends.
struct ClientSecurity {
  TlsFiles tls;
  std::string token;
};

// The same, ready to use: the channel credentials (TLS when a CA is given,
// else plaintext) and the token every call carries.
struct ClientCredentials {
  std::shared_ptr<grpc::ChannelCredentials> channel = grpc::InsecureChannelCredentials();
  std::string token;
};

// Reads the TLS files. INVALID_ARGUMENT if one cannot be read, or for a
// client certificate without a CA.
absl::StatusOr<ClientCredentials> MakeClientCredentials(const ClientSecurity& security);

// A client of the cluster with a process's own security: its TLS files and
// its member token, or else the cluster token.
ClientSecurity ClusterClient(const SecurityOptions& security);

// Adds `token` (if any) to a call's metadata.
void Authenticate(grpc::ClientContext* ctx, const std::string& token);

// The metadata key tokens travel in ("authorization: Bearer <token>").
inline constexpr char kAuthorizationKey[] = "authorization";

}  // namespace hips

#endif  // HIPS_SERVICES_NET_SECURITY_H_
