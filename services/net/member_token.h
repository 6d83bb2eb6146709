#ifndef HIPS_SERVICES_NET_MEMBER_TOKEN_H_
#define HIPS_SERVICES_NET_MEMBER_TOKEN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// Member tokens (docs/security.md, "Member tokens"): a credential bound to
// one member id and one role, checked by any tier without a table. The
// cluster's member key (an Ed25519 key pair, libsodium) signs
//
//   hips-member-1:<role>:<member id>
//
// and the token is that text, ':', and the signature (64 bytes, URL-safe
// base64 without padding). Servers hold the public half only: an aggregator
// that checks its homes' tokens cannot mint any. Member ids never contain
// ':' (services/types/ids.h), so a token has exactly four fields.

namespace hips {

enum class MemberRole { kWorker, kAggregator };

absl::string_view RoleName(MemberRole role);
// "worker" or "aggregator"; INVALID_ARGUMENT otherwise.
absl::StatusOr<MemberRole> ParseRole(absl::string_view name);

// What a verified member token says.
struct MemberIdentity {
  std::string member;
  MemberRole role = MemberRole::kWorker;
};

// The two halves of a member key, raw bytes (32 public, 64 secret).
struct MemberKeyPair {
  std::string public_key;
  std::string secret_key;
};

// A fresh key pair (libsodium's randomness). INTERNAL if libsodium cannot
// start.
absl::StatusOr<MemberKeyPair> NewMemberKeyPair();

// Writes the secret half to `path` (readable by this user only, replacing a
// file there) and the public half to `path`.pub. INTERNAL naming the file.
absl::Status WriteMemberKeyFiles(const std::string& path, const MemberKeyPair& keys);

// Reads the secret half from a file WriteMemberKeyFiles wrote (owner-only
// permissions, as a token file). INVALID_ARGUMENT naming the file.
absl::StatusOr<std::string> ReadMemberSecretKeyFile(const std::string& path);
// Reads the public half (any permissions). INVALID_ARGUMENT naming the file.
absl::StatusOr<std::string> ReadMemberPublicKeyFile(const std::string& path);

// The token of `member` in `role`, signed with `secret_key`.
// INVALID_ARGUMENT for a member id that is not one, or a key of the wrong
// size.
absl::StatusOr<std::string> IssueMemberToken(absl::string_view secret_key,
                                             absl::string_view member, MemberRole role);

// Whether `token` is a member token by its form (it may still be forged).
bool IsMemberToken(absl::string_view token);

// The identity `token` proves under `public_key`; UNAUTHENTICATED for a
// malformed token or a signature that does not verify (never echoing the
// token).
absl::StatusOr<MemberIdentity> VerifyMemberToken(absl::string_view public_key,
                                                 absl::string_view token);

}  // namespace hips

#endif  // HIPS_SERVICES_NET_MEMBER_TOKEN_H_
