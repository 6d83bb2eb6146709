// Process start and stop: the signal watcher (a first SIGTERM begins a
// shutdown on a thread of its own, a second one cuts it short) and
// DaemonRunner's handling of a signal that comes while the daemon starts.

#include "services/runtime/process_setup.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "services/runtime/daemon_runner.h"
#include "services/testing/wait_for.h"

namespace hips {
namespace {

// Death tests fork a process with the watcher's thread in it: re-execute
// instead of forking a threaded parent.
class WatcherTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(WatcherTest, TheFirstSignalRunsTheHandlerOnceAndStopWaitsForIt) {
  std::atomic<int> calls{0};
  std::atomic<int> signal_seen{0};
  absl::Notification started;
  absl::Notification release;
  bool finished = false;
  {
    TerminationWatcher watcher([&](int sig) {
      signal_seen.store(sig);
      calls.fetch_add(1);
      started.Notify();
      // A shutdown that takes a while: Stop must wait for it.
      release.WaitForNotificationWithTimeout(absl::Seconds(30));
      finished = true;
    });
    ASSERT_EQ(kill(getpid(), SIGTERM), 0);
    ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(30)));
    release.Notify();
    watcher.Stop();
    EXPECT_TRUE(finished);
  }
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(signal_seen.load(), SIGTERM);
}

// The whole scenario in a child process: a shutdown that hangs (a slow disk,
// an evaluation that does not end) and the operator's second signal.
[[noreturn]] void SecondSignalDuringAHangingShutdown(int sig) {
  absl::Notification started;
  absl::Notification never;
  TerminationWatcher watcher([&](int) {
    started.Notify();
    never.WaitForNotificationWithTimeout(absl::Seconds(60));  // the hang
  });
  kill(getpid(), sig);
  started.WaitForNotificationWithTimeout(absl::Seconds(30));
  kill(getpid(), sig);
  never.WaitForNotificationWithTimeout(absl::Seconds(30));
  _exit(0);  // not reached when the second signal works
}

TEST_F(WatcherTest, ASecondSigtermCutsTheShutdownShortWith143) {
  EXPECT_EXIT(SecondSignalDuringAHangingShutdown(SIGTERM), ::testing::ExitedWithCode(128 + SIGTERM),
              "second SIGTERM: the shutdown was cut short");
}

TEST_F(WatcherTest, ASecondCtrlCCutsTheShutdownShortWith130) {
  EXPECT_EXIT(SecondSignalDuringAHangingShutdown(SIGINT), ::testing::ExitedWithCode(128 + SIGINT),
              "second SIGINT: the shutdown was cut short");
}

// A daemon for DaemonRunner: Start signals itself (as an operator's SIGTERM
// that arrives while a daemon loads its model), Run returns once Shutdown
// was called.
struct FakeDaemon {
  struct Options {
    bool signal_while_starting = false;
  };
  static absl::Status CheckOptions(const Options&) { return absl::OkStatus(); }
  static absl::StatusOr<std::unique_ptr<FakeDaemon>> Start(Options options) {
    if (options.signal_while_starting) {
      kill(getpid(), SIGTERM);
      // Until the watcher took it, while there is no daemon to shut down.
      EXPECT_TRUE(WaitFor(
          [] {
            sigset_t pending;
            sigpending(&pending);
            return sigismember(&pending, SIGTERM) == 0;
          },
          absl::Seconds(30)));
    }
    return std::make_unique<FakeDaemon>();
  }
  absl::Status Run() {
    return stopped.WaitForNotificationWithTimeout(absl::Seconds(30))
               ? absl::OkStatus()
               : absl::DeadlineExceededError("never shut down");
  }
  void Shutdown() {
    if (!stopped.HasBeenNotified()) stopped.Notify();
  }
  absl::Notification stopped;
};

TEST_F(WatcherTest, ASignalWhileTheDaemonStartsStopsItOnceItExists) {
  DaemonRunner runner;
  bool ran_to_the_end = false;
  const int code = runner.Run<FakeDaemon>(FakeDaemon::Options{true}, [&](FakeDaemon& d) {
    ran_to_the_end = d.stopped.HasBeenNotified();
  });
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(ran_to_the_end);
}

}  // namespace
}  // namespace hips
