// hips token: member keys and member tokens (docs/security.md, "Member
// tokens").

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/cli_flags.h"
#include "cli/commands.h"
#include "cli/run_credentials.h"
#include "services/net/member_token.h"
#include "services/types/ids.h"
#include "services/net/security.h"
#include "services/runtime/process_setup.h"

namespace hips {
namespace {

int MakeKey(const std::string& path) {
  if (!absl::GetFlag(FLAGS_member).empty() || !absl::GetFlag(FLAGS_role).empty()) {
    ExitWithUsageError("--new_key_file makes a key only: issue tokens with it afterwards");
  }
  absl::StatusOr<MemberKeyPair> keys = NewMemberKeyPair();
  absl::Status written = keys.ok() ? WriteMemberKeyFiles(path, *keys) : keys.status();
  if (!written.ok()) {
    std::fprintf(stderr, "hips token: %s\n", std::string(written.message()).c_str());
    return 1;
  }
  std::printf("secret member key: %s (hips token --key_file)\npublic member key: %s.pub "
              "(the servers' --member_key_file)\n",
              path.c_str(), path.c_str());
  return 0;
}

}  // namespace

int RunTokenCommand() {
  if (const std::string path = absl::GetFlag(FLAGS_new_key_file); !path.empty()) {
    return MakeKey(path);
  }
  const std::string member = absl::GetFlag(FLAGS_member);
  if (member.empty()) ExitWithUsageError("hips token needs --member=ID");
  // An id, or the range of homes one worker process hosts (worker-[0..249]).
  if (absl::Status s = ValidateMemberOrRange(member, "--member"); !s.ok()) {
    ExitWithUsageError(std::string(s.message()));
  }
  absl::StatusOr<MemberRole> role = ParseRole(absl::GetFlag(FLAGS_role));
  if (!role.ok()) ExitWithUsageError(absl::StrCat("--role: ", role.status().message()));
  std::string key_file = absl::GetFlag(FLAGS_key_file);
  if (key_file.empty()) {
    const std::string run_dir = absl::GetFlag(FLAGS_run_dir);
    if (run_dir.empty()) {
      ExitWithUsageError("hips token needs the secret member key: --key_file, or --run_dir of "
                         "the hips local run");
    }
    key_file = absl::StrCat(run_dir, "/", kMemberKeyFile);
  }
  absl::StatusOr<std::string> secret = ReadMemberSecretKeyFile(key_file);
  if (!secret.ok()) ExitWithUsageError(std::string(secret.status().message()));
  absl::StatusOr<std::string> token = IssueMemberToken(*secret, member, *role);
  if (!token.ok()) ExitWithUsageError(std::string(token.status().message()));
  if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) {
    if (absl::Status s = WritePrivateFile(out, *token + "\n"); !s.ok()) {
      std::fprintf(stderr, "hips token: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    return 0;
  }
  std::printf("%s\n", token->c_str());
  return 0;
}

}  // namespace hips
