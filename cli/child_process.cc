#include "cli/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace hips {

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(std::string name,
                                                                  std::vector<std::string> argv,
                                                                  std::string log_path) {
  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls are allowed in a multi-threaded parent.
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create ", log_path, ": ", strerror(errno)));
  }
  const pid_t parent = getpid();
  const pid_t child = fork();
  if (child < 0) {
    close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (child == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // hips local blocks SIGINT/SIGTERM
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execv(cargv[0], cargv.data());
    const char msg[] = "exec failed\n";
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(127);
  }
  close(log_fd);
  return std::unique_ptr<ChildProcess>(
      new ChildProcess(std::move(name), child, std::move(log_path)));
}

ChildProcess::~ChildProcess() {
  if (!wait_status_.has_value()) Stop(absl::ZeroDuration());
}

bool ChildProcess::Exited() {
  if (wait_status_.has_value()) return true;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) wait_status_ = status;
  return wait_status_.has_value();
}

bool ChildProcess::ExitedCleanly() const {
  return wait_status_.has_value() && WIFEXITED(*wait_status_) && WEXITSTATUS(*wait_status_) == 0;
}

bool ChildProcess::ExitedWithError() const {
  if (!wait_status_.has_value() || !WIFEXITED(*wait_status_)) return false;
  const int code = WEXITSTATUS(*wait_status_);
  return code != 0 && code < 128;
}

std::string ChildProcess::DescribeExit() const {
  if (!wait_status_.has_value()) return "still running";
  if (WIFEXITED(*wait_status_)) return absl::StrCat("exit code ", WEXITSTATUS(*wait_status_));
  if (WIFSIGNALED(*wait_status_)) {
    return absl::StrCat("signal ", strsignal(WTERMSIG(*wait_status_)));
  }
  return absl::StrCat("wait status ", *wait_status_);
}

void ChildProcess::Terminate() {
  if (!Exited()) kill(pid_, SIGTERM);
}

void ChildProcess::WaitOrKill(absl::Time deadline) {
  while (!Exited()) {
    if (absl::Now() >= deadline) {
      kill(pid_, SIGKILL);
      int status = 0;
      if (waitpid(pid_, &status, 0) == pid_) wait_status_ = status;
      return;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

std::string TailOfFile(const std::string& path, int lines) {
  std::ifstream in(path);
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (static_cast<int>(tail.size()) > lines) tail.pop_front();
  }
  return absl::StrJoin(tail, "\n");
}

}  // namespace hips
