#include "services/runtime/process_setup.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "glog/logging.h"
#include "services/net/grpc_util.h"

namespace hips {
namespace {

// SIGUSR2 only ever wakes the watcher thread from Stop().
constexpr int kWakeSignal = SIGUSR2;

sigset_t WatchedSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, kWakeSignal);
  return set;
}

std::string& ProgramName() {
  static std::string* name = new std::string("hips");
  return *name;
}

}  // namespace

std::vector<char*> InitProcess(int argc, char** argv, const char* usage) {
  ProgramName() = argv[0];
  // Accept --summary-json as well as --summary_json: Abseil names flags with
  // underscores, people (and the issues' interfaces) often write dashes.
  for (int i = 1; i < argc; ++i) {
    char* arg = argv[i];
    if (std::strcmp(arg, "--") == 0) break;  // the rest is positional
    if (std::strncmp(arg, "--", 2) != 0) continue;
    for (char* c = arg + 2; *c != '\0' && *c != '='; ++c) {
      if (*c == '-') *c = '_';
    }
  }
  absl::SetProgramUsageMessage(usage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  // HIPS_DEFAULT_MALLOC=1 keeps glibc's defaults, to measure what this buys
  // (docs/performance.md).
  const char* keep_default = std::getenv("HIPS_DEFAULT_MALLOC");
  if (keep_default == nullptr || std::strcmp(keep_default, "1") != 0) {
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_MMAP_THRESHOLD, 16 << 20);
    // No mmap at all: a tensor-sized buffer (40 MB for 10M floats) is above
    // the largest mmap threshold glibc allows (32 MiB), so without this every
    // such buffer is a fresh mapping that page-faults on each first touch;
    // from the heap, a freed buffer is reused as is. It doubled push goodput.
    mallopt(M_MMAP_MAX, 0);
  }
  return positional;
}

void ExitWithUsageError(const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", ProgramName().c_str(), message.c_str());
  std::exit(2);
}

void ExitOnStartFailure(const absl::Status& status) {
  if (absl::IsInvalidArgument(status)) ExitWithUsageError(std::string(status.message()));
  LOG(ERROR) << status;
  std::exit(1);
}

void WritePortFileOrExit(const std::string& path, int port) {
  if (path.empty()) return;
  if (absl::Status s = WritePortFile(path, port); !s.ok()) {
    LOG(ERROR) << s;
    std::exit(1);
  }
}

TerminationWatcher::TerminationWatcher(std::function<void(int)> on_signal)
    : on_signal_(std::move(on_signal)) {
  sigset_t set = WatchedSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  thread_ = std::thread([this] {
    sigset_t watched = WatchedSignals();
    int sig = 0;
    sigwait(&watched, &sig);
    if (sig != kWakeSignal) on_signal_(sig);
  });
}

TerminationWatcher::~TerminationWatcher() { Stop(); }

void TerminationWatcher::Stop() {
  std::call_once(stop_once_, [this] {
    pthread_kill(thread_.native_handle(), kWakeSignal);
    thread_.join();
  });
}

}  // namespace hips
