#include "services/net/member_token.h"

#include <sodium.h>

#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/net/security.h"
#include "services/types/ids.h"

namespace hips {
namespace {

constexpr char kTokenPrefix[] = "hips-member-1";
constexpr char kSecretPrefix[] = "hips-member-key-1:secret:";
constexpr char kPublicPrefix[] = "hips-member-key-1:public:";
// A public key file is one short line; anything much longer is not one.
constexpr std::streamsize kMaxPublicKeyFileBytes = 4096;

absl::Status StartSodium() {
  static const int started = sodium_init();  // 0 first, 1 after; -1: failed
  if (started < 0) return absl::InternalError("libsodium could not start (sodium_init)");
  return absl::OkStatus();
}

// The signed text of a token: everything before its signature.
std::string SignedText(MemberRole role, absl::string_view member) {
  return absl::StrCat(kTokenPrefix, ":", RoleName(role), ":", member);
}

// `text` (one line of a key file) as `prefix` and `bytes` raw bytes.
absl::StatusOr<std::string> ParseKeyLine(absl::string_view text, absl::string_view prefix,
                                         size_t bytes, const std::string& path) {
  text = absl::StripTrailingAsciiWhitespace(text);
  std::string raw;
  if (!absl::ConsumePrefix(&text, prefix) || !absl::WebSafeBase64Unescape(text, &raw) ||
      raw.size() != bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a ", absl::StrContains(prefix, "secret") ? "secret" : "public",
                     " member key (hips token --new_key_file writes one)"));
  }
  return raw;
}

}  // namespace

absl::string_view RoleName(MemberRole role) {
  return role == MemberRole::kAggregator ? "aggregator" : "worker";
}

absl::StatusOr<MemberRole> ParseRole(absl::string_view name) {
  if (name == "worker") return MemberRole::kWorker;
  if (name == "aggregator") return MemberRole::kAggregator;
  return absl::InvalidArgumentError(
      absl::StrCat("a member role is worker or aggregator, got \"", absl::CHexEscape(name), "\""));
}

absl::StatusOr<MemberKeyPair> NewMemberKeyPair() {
  if (absl::Status s = StartSodium(); !s.ok()) return s;
  MemberKeyPair keys;
  keys.public_key.resize(crypto_sign_PUBLICKEYBYTES);
  keys.secret_key.resize(crypto_sign_SECRETKEYBYTES);
  crypto_sign_keypair(reinterpret_cast<unsigned char*>(keys.public_key.data()),
                      reinterpret_cast<unsigned char*>(keys.secret_key.data()));
  return keys;
}

absl::Status WriteMemberKeyFiles(const std::string& path, const MemberKeyPair& keys) {
  if (absl::Status s = WritePrivateFile(
          path, absl::StrCat(kSecretPrefix, absl::WebSafeBase64Escape(keys.secret_key), "\n"));
      !s.ok()) {
    return s;
  }
  const std::string pub = path + ".pub";
  std::ofstream out(pub, std::ios::trunc);
  out << kPublicPrefix << absl::WebSafeBase64Escape(keys.public_key) << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", pub));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadMemberSecretKeyFile(const std::string& path) {
  // The same rules as a token's file: owner-only, one printable line.
  absl::StatusOr<std::string> line = ReadTokenFile(path);
  if (!line.ok()) return line.status();
  return ParseKeyLine(*line, kSecretPrefix, crypto_sign_SECRETKEYBYTES, path);
}

absl::StatusOr<std::string> ReadMemberPublicKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read the member key ", path));
  std::string text(kMaxPublicKeyFileBytes, '\0');
  in.read(text.data(), kMaxPublicKeyFileBytes);
  text.resize(static_cast<size_t>(in.gcount()));
  return ParseKeyLine(text, kPublicPrefix, crypto_sign_PUBLICKEYBYTES, path);
}

absl::StatusOr<std::string> IssueMemberToken(absl::string_view secret_key,
                                             absl::string_view member, MemberRole role) {
  if (absl::Status s = ValidateMemberOrRange(member, "--member"); !s.ok()) return s;
  if (role != MemberRole::kWorker && member.find('[') != absl::string_view::npos) {
    return absl::InvalidArgumentError("only a worker's token may name a range of homes");
  }
  if (secret_key.size() != crypto_sign_SECRETKEYBYTES) {
    return absl::InvalidArgumentError("a secret member key has 64 bytes");
  }
  if (absl::Status s = StartSodium(); !s.ok()) return s;
  const std::string text = SignedText(role, member);
  unsigned char signature[crypto_sign_BYTES];
  crypto_sign_detached(signature, nullptr, reinterpret_cast<const unsigned char*>(text.data()),
                       text.size(), reinterpret_cast<const unsigned char*>(secret_key.data()));
  return absl::StrCat(
      text, ":",
      absl::WebSafeBase64Escape(absl::string_view(reinterpret_cast<char*>(signature),
                                                  sizeof(signature))));
}

bool IsMemberToken(absl::string_view token) {
  return absl::StartsWith(token, absl::StrCat(kTokenPrefix, ":"));
}

absl::StatusOr<MemberIdentity> VerifyMemberToken(absl::string_view public_key,
                                                 absl::string_view token) {
  const std::vector<absl::string_view> fields = absl::StrSplit(token, ':');
  absl::StatusOr<MemberRole> role =
      fields.size() == 4 ? ParseRole(fields[1]) : absl::InvalidArgumentError("fields");
  std::string signature;
  if (fields.size() != 4 || fields[0] != kTokenPrefix || !role.ok() ||
      !ValidateMemberOrRange(fields[2], "member").ok() ||
      (*role != MemberRole::kWorker && fields[2].find('[') != absl::string_view::npos) ||
      !absl::WebSafeBase64Unescape(fields[3], &signature) ||
      signature.size() != crypto_sign_BYTES) {
    return absl::UnauthenticatedError("a malformed member token");
  }
  if (public_key.size() != crypto_sign_PUBLICKEYBYTES || !StartSodium().ok()) {
    return absl::UnauthenticatedError("no member key to check a member token with");
  }
  const std::string text = SignedText(*role, fields[2]);
  if (crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(signature.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()),
                                  text.size(),
                                  reinterpret_cast<const unsigned char*>(public_key.data())) != 0) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the member token of ", fields[2], " is not signed by this cluster's member key"));
  }
  return MemberIdentity{std::string(fields[2]), *role};
}

}  // namespace hips
