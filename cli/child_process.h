#ifndef HIPS_CLI_CHILD_PROCESS_H_
#define HIPS_CLI_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hips {

// A daemon started by `hips local`. The child gets its own process group (a
// Ctrl-C reaches only `hips local`, which then stops its children in order)
// and is killed by the kernel if `hips local` itself dies (PR_SET_PDEATHSIG),
// so no run leaves orphans. Its stdout and stderr go to `log_path`.
// Not thread-safe. The destructor kills and reaps a child still running.
class ChildProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(std::string name,
                                                             std::vector<std::string> argv,
                                                             std::string log_path);
  ~ChildProcess();

  const std::string& name() const { return name_; }
  const std::string& log_path() const { return log_path_; }
  pid_t pid() const { return pid_; }

  // Reaps the child if it exited; true once it has.
  bool Exited();
  // "exit code N" or "signal NAME"; only after Exited().
  std::string DescribeExit() const;
  bool ExitedCleanly() const;
  // Exited by itself with an error code in 1..127: not killed by a signal,
  // nor exiting with 128+N as a process does on its way out after signal N.
  bool ExitedWithError() const;

  // Sends SIGTERM (unless the child already exited).
  void Terminate();
  // Waits for the child to exit until `deadline`, then SIGKILLs and reaps it.
  void WaitOrKill(absl::Time deadline);
  // Terminate, then WaitOrKill after `grace`.
  void Stop(absl::Duration grace) {
    Terminate();
    WaitOrKill(absl::Now() + grace);
  }

 private:
  ChildProcess(std::string name, pid_t pid, std::string log_path)
      : name_(std::move(name)), pid_(pid), log_path_(std::move(log_path)) {}

  const std::string name_;
  const pid_t pid_;
  const std::string log_path_;
  std::optional<int> wait_status_;
};

// The last `lines` lines of a text file (for showing a failed child's log).
std::string TailOfFile(const std::string& path, int lines);

}  // namespace hips

#endif  // HIPS_CLI_CHILD_PROCESS_H_
