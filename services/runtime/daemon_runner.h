#ifndef HIPS_SERVICES_RUNTIME_DAEMON_RUNNER_H_
#define HIPS_SERVICES_RUNTIME_DAEMON_RUNNER_H_

#include <functional>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "glog/logging.h"
#include "services/runtime/process_setup.h"

namespace hips {

// What every daemon's main() does once its flags are parsed: the signal
// watcher (create it before any thread of the process's own starts), then
// Run<Daemon>(options):
//   --check_flags  Daemon::CheckOptions, then exit (0, or 2 and why);
//   start          Daemon::Start (exit 2 for a configuration error, 1 for
//                  anything else, with the status);
//   run            Daemon::Run until it ends by itself or SIGTERM/SIGINT
//                  calls Daemon::Shutdown. A signal while Start runs is
//                  kept: the daemon shuts down as soon as it exists (a
//                  daemon may say it listens before Start returns). A
//                  second signal, at any time until the daemon is gone,
//                  cuts the shutdown short: exit 128 + signal
//                  (TerminationWatcher);
//   exit code      0 when Run returned OK or CANCELLED, 1 with its error.
// A Daemon has static CheckOptions(const Options&) and
// Start(Options) -> StatusOr<unique_ptr<Daemon>>, and Run(), Shutdown()
// (thread-safe, idempotent) and `on_stop`, said once Run returned.
class DaemonRunner {
 public:
  DaemonRunner()
      : watcher_([this](int sig) {
          absl::MutexLock lock(&mu_);
          if (stop_) {
            stop_();
          } else {
            early_signal_ = sig;
          }
        }) {}

  template <typename Daemon, typename Options>
  int Run(Options options, const std::function<void(Daemon&)>& on_stop = nullptr) {
    if (CheckingFlagsOnly()) ExitAfterFlagCheck(Daemon::CheckOptions(options));
    absl::StatusOr<std::unique_ptr<Daemon>> daemon = Daemon::Start(std::move(options));
    if (!daemon.ok()) ExitOnStartFailure(daemon.status());
    Daemon* d = daemon->get();
    {
      absl::MutexLock lock(&mu_);
      stop_ = [d] { d->Shutdown(); };
      if (early_signal_ != 0) stop_();
    }
    const absl::Status status = d->Run();
    if (on_stop) on_stop(*d);
    {
      // (Waits for a shutdown a signal began.)
      absl::MutexLock lock(&mu_);
      stop_ = nullptr;
    }
    d->Shutdown();
    daemon->reset();
    // Only now: a second signal can cut the shutdown short until here.
    watcher_.Stop();
    if (status.ok() || absl::IsCancelled(status)) return 0;
    LOG(ERROR) << status;
    return 1;
  }

 private:
  absl::Mutex mu_;
  std::function<void()> stop_ ABSL_GUARDED_BY(mu_);
  int early_signal_ ABSL_GUARDED_BY(mu_) = 0;
  TerminationWatcher watcher_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_RUNTIME_DAEMON_RUNNER_H_
