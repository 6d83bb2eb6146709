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

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cli/child_process.h"

namespace hips {
namespace {

std::string TlsPath(const std::string& run_dir, const std::string& file) {
  return absl::StrCat(run_dir, "/", kTlsDir, "/", file);
}

// `contents` into a new file `path` that only this user may read (an
// earlier file there is replaced, whatever its permissions were).
absl::Status WritePrivateFile(const std::string& path, const std::string& contents) {
  unlink(path.c_str());
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  const ssize_t n = write(fd, contents.data(), contents.size());
  const bool ok = n == static_cast<ssize_t>(contents.size()) && close(fd) == 0;
  if (!ok) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
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
    s = OpenSsl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
                 absl::StrCat("/CN=", name), "-keyout", key, "-out", csr},
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

std::vector<std::string> RunIdentities(int aggregators, int workers) {
  std::vector<std::string> ids = {"hq"};
  for (int a = 0; a < aggregators; ++a) ids.push_back(absl::StrCat("agg-", a));
  for (int k = 0; k < workers; ++k) ids.push_back(absl::StrCat("worker-", k));
  return ids;
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
  if (!tls) return absl::OkStatus();
  std::vector<std::string> all = names;
  all.push_back(kCliIdentity);
  return WriteCertificates(run_dir, all);
}

absl::StatusOr<ClientCredentials> PrepareRunCredentials(const std::string& run_dir, bool tls,
                                                        int aggregators, int workers) {
  if (absl::Status s = WriteRunCredentials(run_dir, tls, RunIdentities(aggregators, workers));
      !s.ok()) {
    return s;
  }
  return OperatorCredentials(SecurityOptions(), run_dir, /*admin=*/false);
}

std::vector<std::string> RunSecurityArgs(const std::string& run_dir, const std::string& name,
                                         bool tls, bool admin) {
  std::vector<std::string> args = {absl::StrCat("--token_file=", run_dir, "/", kClusterTokenFile)};
  if (admin) args.push_back(absl::StrCat("--admin_token_file=", run_dir, "/", kAdminTokenFile));
  if (tls) {
    args.push_back(absl::StrCat("--tls_cert=", TlsPath(run_dir, name + ".pem")));
    args.push_back(absl::StrCat("--tls_key=", TlsPath(run_dir, name + ".key")));
    args.push_back(absl::StrCat("--tls_ca=", TlsPath(run_dir, "ca.pem")));
  }
  return args;
}

absl::StatusOr<ClientCredentials> OperatorCredentials(const SecurityOptions& flags,
                                                      const std::string& run_dir, bool admin) {
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
  return MakeClientCredentials(security);
}

}  // namespace hips
