#include "cli/run_credentials.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/strings/match.h"
#include "cli/child_process.h"
#include "services/net/member_token.h"

namespace hips {
namespace {

std::string TlsPath(const std::string& run_dir, const std::string& file) {
  return absl::StrCat(run_dir, "/", kTlsDir, "/", file);
}

absl::StatusOr<std::string> RandomToken() {
  std::ifstream random("/dev/urandom", std::ios::binary);
  std::string bytes(32, '\0');
  if (!random.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
    return absl::InternalError("cannot read /dev/urandom");
  }
  return absl::BytesToHexString(bytes);
}

// The openssl program on PATH.
absl::StatusOr<std::string> FindOpenSsl() {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    if (dir.empty()) continue;
    std::string candidate = absl::StrCat(dir, "/openssl");
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::FailedPreconditionError(
      "--tls needs openssl to make the run's certificates: apt-get install openssl");
}

// Runs openssl with `args` (no shell), its output into `log`.
absl::Status OpenSsl(std::vector<std::string> args, const std::string& log) {
  absl::StatusOr<std::string> openssl = FindOpenSsl();
  if (!openssl.ok()) return openssl.status();
  args.insert(args.begin(), *openssl);
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Spawn("openssl", args, log);
  if (!child.ok()) return child.status();
  (*child)->WaitOrKill(absl::Now() + absl::Seconds(60));
  if (!(*child)->ExitedCleanly()) {
    return absl::InternalError(absl::StrCat("openssl ", args[1], " failed (",
                                            (*child)->DescribeExit(), "):\n", TailOfFile(log, 10)));
  }
  return absl::OkStatus();
}

absl::Status WriteCertificates(const std::string& run_dir, const std::vector<std::string>& names) {
  const std::string dir = absl::StrCat(run_dir, "/", kTlsDir);
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error || chmod(dir.c_str(), 0700) != 0) {
    return absl::InternalError(absl::StrCat("cannot create ", dir));
  }
  const std::string log = TlsPath(run_dir, "openssl.log");
  const std::string ca = TlsPath(run_dir, "ca.pem"), ca_key = TlsPath(run_dir, "ca.key");
  // Keys are created by openssl under this umask: this user's only.
  const mode_t old_umask = umask(077);
  absl::Status s =
      OpenSsl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
               "-days", "30", "-subj", "/CN=hips local CA", "-keyout", ca_key, "-out", ca},
              log);
  // Every certificate: its id as common name, valid for this host's names.
  const std::string extensions = TlsPath(run_dir, "extensions.cnf");
  if (s.ok()) {
    s = WritePrivateFile(extensions,
                         "basicConstraints=CA:FALSE\n"
                         "keyUsage=digitalSignature,keyEncipherment\n"
                         "extendedKeyUsage=serverAuth,clientAuth\n"
                         "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n");
  }
  for (size_t i = 0; s.ok() && i < names.size(); ++i) {
    const std::string& name = names[i];
    const std::string key = TlsPath(run_dir, name + ".key"), csr = TlsPath(run_dir, name + ".csr");
    // A member's role in its organizational unit (docs/security.md).
    const std::optional<MemberRole> role = RunIdentityRole(name);
    const std::string subject = role.has_value()
                                    ? absl::StrCat("/OU=", RoleName(*role), "/CN=", name)
                                    : absl::StrCat("/CN=", name);
    s = OpenSsl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
                 subject, "-keyout", key, "-out", csr},
                log);
    if (s.ok()) {
      s = OpenSsl({"x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                   "-days", "30", "-extfile", extensions, "-out", TlsPath(run_dir, name + ".pem")},
                  log);
    }
    unlink(csr.c_str());
  }
  umask(old_umask);
  return s;
}

}  // namespace

namespace {

// worker-0 .. worker-<workers - 1>: processes of one home each.
std::vector<std::string> OneHomeWorkers(int workers) {
  std::vector<std::string> names;
  for (int k = 0; k < workers; ++k) names.push_back(absl::StrCat("worker-", k));
  return names;
}

}  // namespace

std::vector<std::string> RunIdentities(int aggregators, int workers) {
  return RunIdentities(aggregators, OneHomeWorkers(workers));
}

std::vector<std::string> RunIdentities(int aggregators, const std::vector<std::string>& workers) {
  std::vector<std::string> ids = {"hq"};
  for (int a = 0; a < aggregators; ++a) ids.push_back(absl::StrCat("agg-", a));
  ids.insert(ids.end(), workers.begin(), workers.end());
  return ids;
}

std::optional<MemberRole> RunIdentityRole(absl::string_view name) {
  if (absl::StartsWith(name, "agg-")) return MemberRole::kAggregator;
  if (absl::StartsWith(name, "worker-")) return MemberRole::kWorker;
  return std::nullopt;
}

absl::Status WriteRunCredentials(const std::string& run_dir, bool tls,
                                 const std::vector<std::string>& names) {
  for (const char* file : {kClusterTokenFile, kAdminTokenFile}) {
    absl::StatusOr<std::string> token = RandomToken();
    if (!token.ok()) return token.status();
    if (absl::Status s = WritePrivateFile(absl::StrCat(run_dir, "/", file), *token + "\n");
        !s.ok()) {
      return s;
    }
  }
  // A member key for the run, and each member's own token.
  absl::StatusOr<MemberKeyPair> keys = NewMemberKeyPair();
  if (!keys.ok()) return keys.status();
  if (absl::Status s = WriteMemberKeyFiles(absl::StrCat(run_dir, "/", kMemberKeyFile), *keys);
      !s.ok()) {
    return s;
  }
  for (const std::string& name : names) {
    const std::optional<MemberRole> role = RunIdentityRole(name);
    if (!role.has_value()) continue;
    absl::StatusOr<std::string> token = IssueMemberToken(keys->secret_key, name, *role);
    if (!token.ok()) return token.status();
    if (absl::Status s = WritePrivateFile(MemberTokenPath(run_dir, name), *token + "\n");
        !s.ok()) {
      return s;
    }
  }
  if (!tls) return absl::OkStatus();
  std::vector<std::string> all = names;
  all.push_back(kCliIdentity);
  return WriteCertificates(run_dir, all);
}

absl::StatusOr<ClientCredentials> PrepareRunCredentials(const std::string& run_dir, bool tls,
                                                        int aggregators, int workers) {
  return PrepareRunCredentials(run_dir, tls, aggregators, OneHomeWorkers(workers));
}

absl::StatusOr<ClientCredentials> PrepareRunCredentials(const std::string& run_dir, bool tls,
                                                        int aggregators,
                                                        const std::vector<std::string>& workers) {
  if (absl::Status s = WriteRunCredentials(run_dir, tls, RunIdentities(aggregators, workers));
      !s.ok()) {
    return s;
  }
  return OperatorCredentials(SecurityOptions(), run_dir, /*admin=*/false);
}

std::string MemberTokenPath(const std::string& run_dir, const std::string& name) {
  return absl::StrCat(run_dir, "/", name, ".token");
}

std::vector<std::string> RunSecurityArgs(const std::string& run_dir, const std::string& name,
                                         bool tls, bool admin) {
  const std::optional<MemberRole> role = RunIdentityRole(name);
  std::vector<std::string> args;
  // A home holds its own token only: not the cluster's, which reads every
  // member's status.
  if (role != MemberRole::kWorker) {
    args.push_back(absl::StrCat("--token_file=", run_dir, "/", kClusterTokenFile));
  }
  if (admin) args.push_back(absl::StrCat("--admin_token_file=", run_dir, "/", kAdminTokenFile));
  if (role.has_value()) {
    args.push_back(absl::StrCat("--member_token_file=", MemberTokenPath(run_dir, name)));
  }
  if (role != MemberRole::kWorker) {  // (HQ checks aggregators, aggregators their homes)
    args.push_back(absl::StrCat("--member_key_file=", run_dir, "/", kMemberKeyFile, ".pub"));
  }
  if (tls) {
    args.push_back(absl::StrCat("--tls_cert=", TlsPath(run_dir, name + ".pem")));
    args.push_back(absl::StrCat("--tls_key=", TlsPath(run_dir, name + ".key")));
    args.push_back(absl::StrCat("--tls_ca=", TlsPath(run_dir, "ca.pem")));
  }
  return args;
}

absl::StatusOr<ClientCredentials> OperatorCredentials(const SecurityOptions& flags,
                                                      const std::string& run_dir, bool admin,
                                                      absl::string_view target) {
  ClientSecurity security;
  security.token = admin ? flags.admin_token
                         : (flags.cluster_token.empty() ? flags.admin_token : flags.cluster_token);
  if (security.token.empty() && !run_dir.empty()) {
    absl::StatusOr<std::string> token =
        ReadTokenFile(absl::StrCat(run_dir, "/", admin ? kAdminTokenFile : kClusterTokenFile));
    if (!token.ok()) return token.status();
    security.token = *std::move(token);
  }
  if (security.token.empty() && !flags.insecure) {
    return absl::InvalidArgumentError(
        admin ? "no admin token: pass --admin_token_file, or --run_dir of the hips local run"
              : "no token: pass --token_file, or --run_dir of the hips local run");
  }
  security.tls = flags.tls;
  if (security.tls.ca.empty() && !run_dir.empty() &&
      std::filesystem::exists(TlsPath(run_dir, "ca.pem"))) {
    security.tls = {TlsPath(run_dir, absl::StrCat(kCliIdentity, ".pem")),
                    TlsPath(run_dir, absl::StrCat(kCliIdentity, ".key")),
                    TlsPath(run_dir, "ca.pem")};
  }
  if (!target.empty()) {
    SecurityOptions dialing = flags;
    dialing.tls = security.tls;
    if (absl::Status s = CheckPlaintextDial("--hq", target, dialing); !s.ok()) return s;
  }
  return MakeClientCredentials(security);
}

}  // namespace hips
