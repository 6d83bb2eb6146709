#include "services/net/security.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fstream>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/types/ids.h"

namespace hips {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

absl::Status Readable(const std::string& path, absl::string_view what) {
  if (path.empty()) return absl::OkStatus();
  if (access(path.c_str(), R_OK) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", what, " ", path));
  }
  return absl::OkStatus();
}

// Equal contents in a time that does not depend on where they differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = diff | static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

// The token a call presents ("authorization: Bearer <token>"), or empty.
std::string PresentedToken(const grpc::ServerContextBase& ctx) {
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find(kAuthorizationKey);
  if (it == metadata.end()) return "";
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) return "";
  return std::string(value);
}

// Whether `text` is an IPv4 address of 127.0.0.0/8.
bool IsLoopbackV4(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  if (parts.size() != 4) return false;
  for (absl::string_view p : parts) {
    int octet;
    if (!absl::SimpleAtoi(p, &octet) || octet < 0 || octet > 255) return false;
  }
  return parts[0] == "127";
}

// The member role a verified client certificate names in its subject's
// organizational unit (OU=worker or OU=aggregator), if any. The subject
// comes as RFC 2253 text ("CN=worker-0,OU=worker"); an escaped comma is
// part of a value.
std::optional<MemberRole> CertificateRole(const grpc::AuthContext& auth) {
  for (const grpc::string_ref& subject : auth.FindPropertyValues("x509_subject")) {
    const absl::string_view text(subject.data(), subject.size());
    size_t start = 0;
    for (size_t i = 0; i <= text.size(); ++i) {
      if (i < text.size() && (text[i] != ',' || (i > 0 && text[i - 1] == '\\'))) continue;
      absl::string_view part = absl::StripAsciiWhitespace(text.substr(start, i - start));
      start = i + 1;
      if (absl::ConsumePrefix(&part, "OU=")) {
        if (absl::StatusOr<MemberRole> role = ParseRole(part); role.ok()) return *role;
      }
    }
  }
  return std::nullopt;
}

absl::Status CheckTlsPair(const TlsFiles& tls) {
  if (tls.cert.empty() != tls.key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  return absl::OkStatus();
}

}  // namespace

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

std::string TokenFileModeProblem(uid_t owner, mode_t mode, uid_t euid) {
  if (owner == euid || owner != 0) {
    if ((mode & (S_IRWXG | S_IRWXO)) == 0) return "";
    return "may be read by other users; chmod 600 it";
  }
  // Owned by root, read by another user through its group: how Kubernetes
  // mounts a Secret for a non-root container (root:fsGroup, mode 0440).
  // PostgreSQL accepts its key files the same way.
  if ((mode & (S_IWGRP | S_IXGRP | S_IRWXO)) == 0) return "";
  return "may be read by other users; chmod 640 it (owned by root) or 600";
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the token file ", path));
  }
  if (const std::string problem = TokenFileModeProblem(st.st_uid, st.st_mode, geteuid());
      !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the token file ", path, " ", problem));
  }
  absl::StatusOr<std::string> contents = ReadFile(path, "the token file");
  if (!contents.ok()) return contents.status();
  const absl::string_view token = absl::StripTrailingAsciiWhitespace(*contents);
  if (token.size() < kMinTokenBytes || token.size() > kMaxTokenBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the token in ", path, " must have ",
                                                   kMinTokenBytes, " to ", kMaxTokenBytes,
                                                   " characters"));
  }
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the token in ", path, " must be one line of printable ASCII without spaces"));
    }
  }
  return std::string(token);
}

absl::StatusOr<SecurityOptions> DeclaredSecurity(const TlsFiles& tls, const std::string& token_file,
                                                 const std::string& admin_token_file,
                                                 bool insecure) {
  if (absl::Status s = CheckTlsPair(tls); !s.ok()) return s;
  if (!token_file.empty() && token_file == admin_token_file) {
    return absl::InvalidArgumentError("the admin token must differ from the cluster token");
  }
  SecurityOptions s;
  s.tls = tls;
  s.insecure = insecure;
  if (!token_file.empty()) s.cluster_token = absl::StrCat("<token of ", token_file, ">");
  if (!admin_token_file.empty()) s.admin_token = absl::StrCat("<token of ", admin_token_file, ">");
  return s;
}

absl::StatusOr<SecurityOptions> LoadSecurity(const TlsFiles& tls, const std::string& token_file,
                                             const std::string& admin_token_file, bool insecure) {
  SecurityOptions s;
  s.tls = tls;
  s.insecure = insecure;
  if (absl::Status r = CheckTlsPair(tls); !r.ok()) return r;
  if (absl::Status r = Readable(tls.cert, "the certificate"); !r.ok()) return r;
  if (absl::Status r = Readable(tls.key, "the private key"); !r.ok()) return r;
  if (absl::Status r = Readable(tls.ca, "the CA certificate"); !r.ok()) return r;
  if (!token_file.empty()) {
    absl::StatusOr<std::string> token = ReadTokenFile(token_file);
    if (!token.ok()) return token.status();
    s.cluster_token = *std::move(token);
  }
  if (!admin_token_file.empty()) {
    absl::StatusOr<std::string> token = ReadTokenFile(admin_token_file);
    if (!token.ok()) return token.status();
    s.admin_token = *std::move(token);
  }
  if (!s.cluster_token.empty() && s.cluster_token == s.admin_token) {
    return absl::InvalidArgumentError("the admin token must differ from the cluster token");
  }
  return s;
}

absl::Status LoadMemberCredentials(const std::string& member_token_file,
                                   const std::string& member_key_file, SecurityOptions* s) {
  if (!member_token_file.empty()) {
    absl::StatusOr<std::string> token = ReadTokenFile(member_token_file);
    if (!token.ok()) return token.status();
    if (!IsMemberToken(*token)) {
      return absl::InvalidArgumentError(absl::StrCat(
          member_token_file,
          " does not hold a member token (hips token --member=ID --role=ROLE issues one)"));
    }
    s->member_token = *std::move(token);
  }
  if (!member_key_file.empty()) {
    absl::StatusOr<std::string> key = ReadMemberPublicKeyFile(member_key_file);
    if (!key.ok()) return key.status();
    s->member_key = *std::move(key);
  }
  return absl::OkStatus();
}

absl::Status DeclareMemberCredentials(const std::string& member_token_file,
                                      const std::string& member_key_file, SecurityOptions* s) {
  if (!member_token_file.empty()) s->member_token = "<member token of " + member_token_file + ">";
  if (!member_key_file.empty()) s->member_key = "<member key of " + member_key_file + ">";
  return absl::OkStatus();
}

absl::Status CheckPlaintextDial(absl::string_view flag, absl::string_view target,
                                const SecurityOptions& s) {
  if (s.insecure || !s.tls.ca.empty() || absl::StartsWith(target, "unix:")) {
    return absl::OkStatus();
  }
  const size_t colon = target.rfind(':');
  const absl::string_view host = colon == absl::string_view::npos ? target : target.substr(0, colon);
  if (IsLoopback(host)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "refusing to dial ", flag, "=", target,
      " without TLS: tokens, gradients and weights would cross that network in the clear. "
      "Give --tls_ca (the CA of its certificate), or --insecure on a network you trust"));
}

bool IsLoopback(absl::string_view host) {
  if (absl::StartsWith(host, "unix:")) return true;
  absl::ConsumePrefix(&host, "[");
  absl::ConsumeSuffix(&host, "]");
  return host == "localhost" || host == "::1" || IsLoopbackV4(host);
}

absl::Status CheckServerSecurity(absl::string_view host, const SecurityOptions& s,
                                 bool needs_admin, bool health_only) {
  if (s.insecure) return absl::OkStatus();
  if (s.tls.cert.empty() && !IsLoopback(host)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing to listen on ", host,
        " without TLS: gradients, weights and tokens would cross that network in the clear. "
        "Give --tls_cert and --tls_key (and --tls_ca for mutual TLS), or --insecure on a "
        "network you trust"));
  }
  const bool mtls = !s.tls.cert.empty() && !s.tls.ca.empty();
  if (!health_only && s.cluster_token.empty() && s.member_key.empty() && !mtls) {
    return absl::InvalidArgumentError(
        "no credentials: anyone who reaches this port could push, pull and join. Give "
        "--token_file (or mutual TLS: --tls_cert, --tls_key and --tls_ca), or --insecure to "
        "accept anyone");
  }
  if (needs_admin && s.admin_token.empty()) {
    return absl::InvalidArgumentError(
        "no admin credentials: give --admin_token_file (the token hips mode presents), or "
        "--insecure to let anyone switch the mode");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const SecurityOptions& s) {
  if (s.tls.cert.empty()) return grpc::InsecureServerCredentials();
  absl::StatusOr<std::string> cert = ReadFile(s.tls.cert, "the certificate");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile(s.tls.key, "the private key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options(
      s.tls.ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                       : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_key_cert_pairs.push_back({*key, *cert});
  if (!s.tls.ca.empty()) {
    absl::StatusOr<std::string> ca = ReadFile(s.tls.ca, "the CA certificate");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *std::move(ca);
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServingCredentials(
    absl::string_view host, const SecurityOptions& security, bool needs_admin, bool health_only) {
  if (absl::Status s = CheckServerSecurity(host, security, needs_admin, health_only); !s.ok()) {
    return s;
  }
  return ServerCredentials(security);
}

Authorizer::Authorizer(const SecurityOptions& s)
    : cluster_token_(s.cluster_token),
      admin_token_(s.admin_token),
      member_key_(s.member_key),
      serves_(s.serves),
      mtls_(!s.tls.cert.empty() && !s.tls.ca.empty()),
      open_(s.cluster_token.empty() && s.admin_token.empty() && s.member_key.empty() && !mtls_) {}

absl::StatusOr<MemberIdentity> Authorizer::Member(absl::string_view token) const {
  if (member_key_.empty() || !IsMemberToken(token)) {
    return absl::UnauthenticatedError("not a member token");
  }
  {
    absl::MutexLock lock(&verified_mu_);
    if (auto it = verified_.find(token); it != verified_.end()) return it->second;
  }
  absl::StatusOr<MemberIdentity> member = VerifyMemberToken(member_key_, token);
  if (member.ok()) {
    absl::MutexLock lock(&verified_mu_);
    if (verified_.size() >= kVerifiedTokens) verified_.clear();  // (only valid ones get in)
    verified_.emplace(token, *member);
  }
  return member;
}

absl::Status Authorizer::Check(const grpc::ServerContextBase& ctx, Access access) const {
  if (open_) return absl::OkStatus();
  const std::string token = PresentedToken(ctx);
  const bool admin = !admin_token_.empty() && ConstantTimeEquals(token, admin_token_);
  const bool cluster = !cluster_token_.empty() && ConstantTimeEquals(token, cluster_token_);
  // With mTLS the server only completes handshakes with verified clients.
  const bool certificate =
      mtls_ && ctx.auth_context() != nullptr && ctx.auth_context()->IsPeerAuthenticated();
  const bool member_form = !member_key_.empty() && IsMemberToken(token);
  const absl::StatusOr<MemberIdentity> member =
      member_form ? Member(token) : absl::UnauthenticatedError("");
  switch (access) {
    case Access::kAdmin:
      if (admin) return absl::OkStatus();
      if (cluster || certificate || member.ok()) {
        return absl::PermissionDeniedError("an admin call needs the admin token");
      }
      return absl::UnauthenticatedError("an admin call needs the admin token");
    case Access::kStatus:
      if (admin || cluster || certificate) return absl::OkStatus();
      if (member.ok()) {
        return absl::PermissionDeniedError(
            "a member token does not read the status: the cluster token does");
      }
      break;
    case Access::kData:
      if (member_key_.empty() && !certificate) {
        if (admin || cluster) return absl::OkStatus();
        break;
      }
      if (certificate) {  // (CheckIdentity: its common name)
        const std::optional<MemberRole> role = CertificateRole(*ctx.auth_context());
        if (role == serves_) return absl::OkStatus();
        return absl::PermissionDeniedError(
            role.has_value()
                ? absl::StrCat("the certificate is a ", RoleName(*role),
                               "'s: this server takes the ", RoleName(serves_), "s' data calls")
                : absl::StrCat("the certificate names no member role (OU=worker or "
                               "OU=aggregator): make the cluster's credentials again "
                               "(docs/security.md)"));
      }
      if (member.ok()) {
        if (member->role == serves_) return absl::OkStatus();
        return absl::PermissionDeniedError(absl::StrCat(
            member->member, "'s token is ", RoleName(member->role), "'s: this server takes the ",
            RoleName(serves_), "s' data calls"));
      }
      if (member_form) return member.status();
      if (admin || cluster) {
        return absl::PermissionDeniedError(
            "with member tokens (--member_key_file), a data call needs the caller's own member "
            "token (hips token), not the cluster's");
      }
      break;
  }
  if (member_form) return member.status();
  return absl::UnauthenticatedError(
      token.empty() ? "no credentials: this call needs the cluster token (authorization: Bearer "
                      "<token>) or a client certificate"
                    : "the token is not this cluster's");
}

absl::Status Authorizer::CheckIdentity(const grpc::ServerContextBase& ctx,
                                       absl::string_view member) const {
  if (mtls_) {
    std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
    std::vector<std::string> names;
    if (auth != nullptr) {
      // The common name: the subject alternative names also hold host names
      // (localhost, addresses) that are no member's.
      for (const grpc::string_ref& name : auth->FindPropertyValues("x509_common_name")) {
        if (SpeaksFor(absl::string_view(name.data(), name.size()), member)) {
          return absl::OkStatus();
        }
        names.emplace_back(name.data(), name.size());
      }
    }
    return absl::PermissionDeniedError(absl::StrCat(
        "the peer's certificate is ", absl::StrJoin(names, ", "), "'s, not ", member, "'s"));
  }
  if (member_key_.empty()) return absl::OkStatus();
  absl::StatusOr<MemberIdentity> caller = Member(PresentedToken(ctx));
  if (!caller.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("only ", member, "'s own member token speaks for ", member));
  }
  if (!SpeaksFor(caller->member, member)) {
    return absl::PermissionDeniedError(
        absl::StrCat("the caller's member token is ", caller->member, "'s, not ", member, "'s"));
  }
  return absl::OkStatus();
}

std::string Authorizer::Caller(const grpc::ServerContextBase& ctx) const {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (mtls_ && auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const grpc::string_ref& name : auth->FindPropertyValues("x509_common_name")) {
      return absl::StrCat("certificate ", absl::string_view(name.data(), name.size()));
    }
  }
  if (absl::StatusOr<MemberIdentity> member = Member(PresentedToken(ctx)); member.ok()) {
    return member->member;
  }
  return "";
}

std::string RefusalReason(absl::StatusCode code) {
  return absl::AsciiStrToLower(absl::StatusCodeToString(code));
}

const std::vector<std::string>& AllRefusalReasons() {
  static const auto* reasons =
      new std::vector<std::string>{RefusalReason(absl::StatusCode::kUnauthenticated),
                                   RefusalReason(absl::StatusCode::kPermissionDenied),
                                   RefusalReason(absl::StatusCode::kResourceExhausted),
                                   RefusalReason(absl::StatusCode::kDeadlineExceeded)};
  return *reasons;
}

void RefusalCounter::Count(const absl::Status& refusal) {
  absl::MutexLock lock(&mu_);
  ++counts_[RefusalReason(refusal.code())];
}

std::map<std::string, int64_t> RefusalCounter::counts() const {
  absl::MutexLock lock(&mu_);
  return counts_;
}

absl::StatusOr<ClientCredentials> MakeClientCredentials(const ClientSecurity& s) {
  ClientCredentials out;
  out.token = s.token;
  if (absl::Status r = CheckClientTls(s.tls); !r.ok()) return r;
  if (s.tls.ca.empty()) return out;
  grpc::SslCredentialsOptions options;
  absl::StatusOr<std::string> ca = ReadFile(s.tls.ca, "the CA certificate");
  if (!ca.ok()) return ca.status();
  options.pem_root_certs = *std::move(ca);
  if (!s.tls.cert.empty()) {
    absl::StatusOr<std::string> cert = ReadFile(s.tls.cert, "the certificate");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFile(s.tls.key, "the private key");
    if (!key.ok()) return key.status();
    options.pem_cert_chain = *std::move(cert);
    options.pem_private_key = *std::move(key);
  }
  out.channel = grpc::SslCredentials(options);
  return out;
}

absl::Status CheckClientTls(const TlsFiles& tls) {
  if (absl::Status s = CheckTlsPair(tls); !s.ok()) return s;
  if (!tls.cert.empty() && tls.ca.empty()) {
    return absl::InvalidArgumentError("a client certificate needs --tls_ca (TLS to the server)");
  }
  return absl::OkStatus();
}

ClientSecurity ClusterClient(const SecurityOptions& s) {
  return {s.tls, s.member_token.empty() ? s.cluster_token : s.member_token};
}

void Authenticate(grpc::ClientContext* ctx, const std::string& token) {
  if (!token.empty()) ctx->AddMetadata(kAuthorizationKey, absl::StrCat("Bearer ", token));
}

}  // namespace hips
