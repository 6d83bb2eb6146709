#ifndef HIPS_CLI_COMMANDS_H_
#define HIPS_CLI_COMMANDS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "cli/run_summary.h"
#include "services/net/security.h"

// The subcommands of the hips CLI, one file each (cli/*_command.cc), and
// what they share. Each returns the process's exit code; a usage error
// exits with 2 on the spot (ExitWithUsageError).

namespace hips {

int RunLocalCommand();                             // local_command.cc
int RunStatusCommand();                            // status_command.cc
int RunModeCommand(const std::string& mode);       // mode_command.cc
int RunHealthCommand(const std::string& address);  // health_command.cc
int RunTokenCommand();                             // token_command.cc
// hips train --monolith and hips export link LibTorch: they run in
// hips-train (train_command.cc); hips runs hips-train for them.
int RunTrainCommand();
int RunExportCommand();

// The directory this program is in (where hips local finds the daemons).
std::string OwnDirectory();
// workers x batch_size, the global batch of a sync round (a usage error
// unless positive).
int64_t GlobalBatchFromFlags();
// --epochs over the training set, in samples (a usage error for a bad
// budget or unreadable data).
int64_t SampleBudgetFromFlags();
// The exit code of a run HQ stopped because it diverged (docs/faults.md).
inline constexpr int kExitDiverged = 3;
// Prints the run's accounting and final line (and writes --summary_json):
// the exit code (kExitDiverged, after a line saying where and why).
int FinishRun(const RunSummary& summary);
// The checkpoint `path` names: the file itself, or the newest
// checkpoint-<version>.pt of a directory (their names sort by version).
absl::StatusOr<std::string> CheckpointFile(const std::string& path);
// What hips status and hips mode present to HQ at `hq`: the security
// flags, or the files of the hips local run in --run_dir. A usage error if
// neither names a token, or for plaintext to another machine without
// --insecure.
ClientCredentials OperatorCredentialsOrExit(bool admin, const std::string& hq);

}  // namespace hips

#endif  // HIPS_CLI_COMMANDS_H_
