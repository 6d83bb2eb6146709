#ifndef HIPS_SERVICES_RUNTIME_PROCESS_SETUP_H_
#define HIPS_SERVICES_RUNTIME_PROCESS_SETUP_H_

#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"

// Start-up and shut-down plumbing shared by the hips binaries.

namespace hips {

// What --help shows for one command: a daemon (empty `name`), or a
// subcommand of `hips` ("local").
struct CommandHelp {
  std::string name;
  std::string usage;    // usage line(s), starting with the program's name
  std::string summary;  // what it does, in a line or two
  // The flags it takes: these names, and every flag defined in a source file
  // whose path ends with one of `flag_files` ("*": every flag the program
  // defines itself, Abseil's own excluded).
  std::vector<std::string> flags;
  std::vector<std::string> flag_files;
};

// A program's commands: one with an empty name for a daemon, the
// subcommands for `hips`.
struct ProgramHelp {
  std::string name;     // "hips"
  std::string summary;  // what the program is
  std::vector<CommandHelp> commands;
};

// Parses the flags (--name=value, --name value, --name and --noname for a
// boolean, --flagfile=PATH[,PATH] with a flag per line, "--" before
// positional arguments; dashes in flag names count as underscores, so
// --summary-json works; an unknown flag or a value that does not parse exits
// with code 2, naming the flag),
// sends glog to stderr, tunes glibc's allocator so that big freed buffers
// are reused instead of returned to the kernel (raised trim and mmap
// thresholds, no mmap: fresh pages fault on every first touch;
// docs/performance.md; HIPS_DEFAULT_MALLOC=1 in the environment keeps
// glibc's defaults, for measuring), and returns the positional arguments.
// --help (or -h, --helpfull, --helpshort) prints the help of the subcommand
// named by the first positional argument (or of the program) to stdout and
// exits 0. Call first thing in main.
std::vector<char*> InitProcess(int argc, char** argv, const ProgramHelp& help);

// InitProcess for a daemon, which takes no positional argument: one is a
// usage error.
void InitDaemonProcess(int argc, char** argv, const ProgramHelp& help);

// InitProcess's flag parsing alone, of `args` (argv without argv[0]):
// returns the positional arguments; a usage error exits with code 2.
std::vector<std::string> ParseFlagsOrExit(const std::vector<std::string>& args);

// The help text InitProcess prints for `command` (empty: the program's).
std::string HelpText(const ProgramHelp& help, const std::string& command);

// For a subcommand `help` does not know: prints the subcommands to stderr
// and exits with code 2.
[[noreturn]] void ExitWithUnknownCommand(const ProgramHelp& help, const std::string& command);

// Prints "<program>: <message>" to stderr and exits with code 2: for bad
// flags and other configuration errors.
[[noreturn]] void ExitWithUsageError(const std::string& message);

// --check_flags (every binary): parse and check the flags as a start would,
// then exit without reading the files they name, listening or dialling: 0
// and "<program>: flags ok" on stdout, or 2 and the reason. For deployment
// manifests, whose files exist only where they run (deploy/k8s/check.sh).
bool CheckingFlagsOnly();

// Whether flag `name` was given (on the command line or in a flag file), not
// left at its default.
bool FlagGiven(const std::string& name);

// Under --check_flags, the end of the check: exits 0 when `status` is OK,
// else as ExitWithUsageError with its message.
[[noreturn]] void ExitAfterFlagCheck(const absl::Status& status);

// For a daemon that failed to start: exits with code 2 (INVALID_ARGUMENT, a
// configuration error) or 1 (anything else), printing the status.
[[noreturn]] void ExitOnStartFailure(const absl::Status& status);

// Blocks SIGINT and SIGTERM in the calling thread and every thread started
// after it (call before starting any thread of its own), then waits for them
// in a thread of its own. The first calls `on_signal`, on a thread of its
// own (it may block: a daemon's shutdown); a second one cuts that short: a
// line "<program>: second SIGTERM: the shutdown was cut short" on stderr and
// _exit(128 + signal) (hips local's children die with it: they have
// PR_SET_PDEATHSIG). A signal that reaches a thread started earlier (a
// library's, as it loaded) is handed to the watcher. Stop() (or the
// destructor) waits for `on_signal` to return, then ends the wait; until
// then a second signal still forces the exit. One at a time per process.
// Thread-safe.
class TerminationWatcher {
 public:
  explicit TerminationWatcher(std::function<void(int signal)> on_signal);
  ~TerminationWatcher();
  TerminationWatcher(const TerminationWatcher&) = delete;
  TerminationWatcher& operator=(const TerminationWatcher&) = delete;

  void Stop();

 private:
  std::function<void(int)> on_signal_;
  std::thread thread_;
  void JoinHandler();

  std::mutex handler_mu_;
  std::thread handler_;  // runs on_signal_ (started by thread_, joined by Stop)
  std::once_flag stop_once_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_RUNTIME_PROCESS_SETUP_H_
