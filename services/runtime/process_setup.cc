#include "services/runtime/process_setup.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"

ABSL_FLAG(bool, check_flags, false,
          "Check the flags and exit (0: they would start, 2: why not) without reading the "
          "files they name, listening or connecting: for deployment manifests.");

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

const char* SignalName(int sig) {
  switch (sig) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
  }
  return "signal";
}

// The watcher thread that takes SIGINT and SIGTERM, for ForwardToWatcher.
std::atomic<pthread_t> watcher_thread;
std::atomic<bool> watcher_running{false};
// Handlers between their check of watcher_running and their pthread_kill:
// Stop waits for none before it joins the thread.
std::atomic<int> forwarding{0};
// The actions the handlers replaced, restored by Stop.
struct sigaction previous_int, previous_term;

// Threads started before the watcher (a library's pool, started as it
// loads: OpenBLAS, LibTorch) do not block the signals, and the kernel may
// deliver a SIGTERM to any of them: without a handler its default action
// ends the process at once (no last checkpoint, no goodbye). The handler
// hands the signal to the watcher thread, which blocks it and waits for it.
// (pthread_kill is async-signal-safe.)
void ForwardToWatcher(int sig) {
  forwarding.fetch_add(1);
  if (watcher_running.load()) pthread_kill(watcher_thread.load(), sig);
  forwarding.fetch_sub(1);
}

void InstallForwarding() {
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = ForwardToWatcher;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, &previous_int);
  sigaction(SIGTERM, &action, &previous_term);
}

void RemoveForwarding() {
  sigaction(SIGINT, &previous_int, nullptr);
  sigaction(SIGTERM, &previous_term, nullptr);
  watcher_running.store(false);
  // A handler that saw the watcher running is done with it before it goes.
  while (forwarding.load() > 0) std::this_thread::yield();
}

std::string& ProgramName() {
  static std::string* name = new std::string("hips");
  return *name;
}

bool IsHelpFlag(const char* arg) {
  for (const char* help : {"--help", "-help", "-h", "--helpfull", "--helpshort", "--help=true"}) {
    if (std::strcmp(arg, help) == 0) return true;
  }
  return false;
}

// The flags parser of every hips binary: Abseil's exits with code 1 on a
// flag it does not know or a value it cannot parse, and hips's usage errors
// all exit with 2 (docs/architecture.md, "Flags").
class FlagParser {
 public:
  // Sets the flags of `args` (argv without argv[0]); the positional ones
  // are appended to `positional`. Exits 2 naming the flag on an error.
  void Parse(const std::vector<std::string>& args, std::vector<std::string>* positional) {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& arg = args[i];
      if (arg == "--") {
        positional->insert(positional->end(), args.begin() + i + 1, args.end());
        return;
      }
      if (arg.size() < 2 || arg[0] != '-') {
        positional->push_back(arg);
        continue;
      }
      const std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
      const size_t eq = body.find('=');
      std::string name = body.substr(0, eq);
      std::optional<std::string> value;
      if (eq != std::string::npos) value = body.substr(eq + 1);
      if (name == "flagfile") {
        if (!value.has_value()) value = i + 1 < args.size() ? args[++i] : "";
        ReadFlagFiles(*value);
        continue;
      }
      absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
      const bool negated = flag == nullptr && absl::StartsWith(name, "no") && !value.has_value();
      if (negated) {
        flag = absl::FindCommandLineFlag(name.substr(2));
        if (flag != nullptr && flag->IsOfType<bool>()) {
          name = name.substr(2);
          value = "false";
        } else {
          flag = nullptr;
        }
      }
      if (flag == nullptr) ExitWithUsageError(absl::StrCat("unknown flag --", name));
      if (!value.has_value()) {
        if (flag->IsOfType<bool>()) {
          value = "true";
        } else if (i + 1 < args.size()) {
          value = args[++i];
        } else {
          ExitWithUsageError(absl::StrCat("--", name, " needs a value"));
        }
      }
      std::string error;
      if (!flag->ParseFrom(*value, &error)) {
        ExitWithUsageError(absl::StrCat("--", name, "=", *value, ": ", error));
      }
      given_.insert(name);
    }
  }

  const std::set<std::string>& given() const { return given_; }

 private:
  // --flagfile=PATH[,PATH...]: a flag per line ("# ..." lines and blank
  // ones skipped), as if given here.
  void ReadFlagFiles(const std::string& paths) {
    for (absl::string_view path : absl::StrSplit(paths, ',', absl::SkipEmpty())) {
      std::ifstream in{std::string(path)};
      if (!in.is_open()) ExitWithUsageError(absl::StrCat("--flagfile: cannot read ", path));
      std::vector<std::string> lines;
      for (std::string line; std::getline(in, line);) {
        absl::string_view trimmed = absl::StripAsciiWhitespace(line);
        if (trimmed.empty() || trimmed[0] == '#') continue;
        if (trimmed[0] != '-') {
          ExitWithUsageError(absl::StrCat("--flagfile ", path, ": '", trimmed, "' is not a flag"));
        }
        lines.emplace_back(trimmed);
      }
      std::vector<std::string> positional;
      Parse(lines, &positional);
      if (!positional.empty()) {
        ExitWithUsageError(
            absl::StrCat("--flagfile ", path, ": '", positional[0], "' is not a flag"));
      }
    }
  }

  std::set<std::string> given_;
};

// The flags given on the command line (InitProcess).
std::set<std::string>& GivenFlags() {
  static std::set<std::string>* given = new std::set<std::string>();
  return *given;
}

const CommandHelp* FindCommand(const ProgramHelp& help, const std::string& name) {
  for (const CommandHelp& c : help.commands) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

// The flags `command` takes, by name.
std::vector<const absl::CommandLineFlag*> FlagsOf(const CommandHelp& command) {
  std::map<std::string, const absl::CommandLineFlag*> chosen;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    const std::string file = flag->Filename();
    const bool abseil = absl::StrContains(file, "absl/");
    bool wanted =
        std::find(command.flags.begin(), command.flags.end(), name) != command.flags.end();
    for (const std::string& suffix : command.flag_files) {
      wanted = wanted || (suffix == "*" ? !abseil : absl::EndsWith(file, suffix));
    }
    if (wanted) chosen[std::string(name)] = flag;
  }
  std::vector<const absl::CommandLineFlag*> out;
  for (const auto& [name, flag] : chosen) out.push_back(flag);
  return out;
}

// `text` wrapped at word boundaries into lines of at most `width`
// characters (longer words stay whole), each after `indent`.
std::string Wrapped(absl::string_view text, size_t indent, size_t width) {
  std::string out, line;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!line.empty() && indent + line.size() + 1 + word.size() > width) {
      absl::StrAppend(&out, std::string(indent, ' '), line, "\n");
      line.clear();
    }
    absl::StrAppend(&line, line.empty() ? "" : " ", word);
  }
  if (!line.empty()) absl::StrAppend(&out, std::string(indent, ' '), line, "\n");
  return out;
}

std::string CommandList(const ProgramHelp& help) {
  std::string out;
  for (const CommandHelp& c : help.commands) absl::StrAppend(&out, "  ", c.usage, "\n");
  return out;
}

}  // namespace

std::string HelpText(const ProgramHelp& help, const std::string& command) {
  const CommandHelp* c = FindCommand(help, command);
  if (c == nullptr) {
    // A program with subcommands, asked about itself (or an unknown one).
    return absl::StrCat(help.name, ": ", help.summary, "\n\nusage:\n", CommandList(help), "\nRun '",
                        help.name, " SUBCOMMAND --help' for a subcommand's flags.\n");
  }
  std::string out = absl::StrCat("usage: ", c->usage, "\n\n", c->summary, "\n\nflags:\n");
  for (const absl::CommandLineFlag* flag : FlagsOf(*c)) {
    absl::StrAppend(&out, "  --", flag->Name(),
                    " (default: ", flag->DefaultValue().empty() ? "\"\"" : flag->DefaultValue(),
                    ")\n", Wrapped(flag->Help(), 6, 80));
  }
  absl::StrAppend(&out, "\nFlag names take dashes or underscores; values follow '=' or a space.\n");
  return out;
}

void ExitWithUnknownCommand(const ProgramHelp& help, const std::string& command) {
  std::vector<std::string> names;
  for (const CommandHelp& c : help.commands) names.push_back(c.name);
  std::fprintf(stderr, "%s: unknown subcommand '%s'; the subcommands are %s\nusage:\n%s",
               help.name.c_str(), command.c_str(), absl::StrJoin(names, ", ").c_str(),
               CommandList(help).c_str());
  std::exit(2);
}

void InitDaemonProcess(int argc, char** argv, const ProgramHelp& help) {
  const std::vector<char*> args = InitProcess(argc, argv, help);
  if (args.size() > 1) ExitWithUsageError(absl::StrCat("unexpected argument ", args[1]));
}

std::vector<std::string> ParseFlagsOrExit(const std::vector<std::string>& args) {
  FlagParser parser;
  std::vector<std::string> positional;
  parser.Parse(args, &positional);
  GivenFlags().insert(parser.given().begin(), parser.given().end());
  return positional;
}

std::vector<char*> InitProcess(int argc, char** argv, const ProgramHelp& help) {
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
  // Help is ours, per subcommand: Abseil's --help would list every flag of
  // every subcommand and exit 1. The help flags are taken out before the
  // others are parsed (a flag's value may follow it after a space).
  bool wants_help = false;
  static std::vector<char*>* args = new std::vector<char*>();
  bool positional_only = false;  // after "--"
  for (int i = 0; i < argc; ++i) {
    if (i > 0 && !positional_only && IsHelpFlag(argv[i])) {
      wants_help = true;
      continue;
    }
    positional_only = positional_only || std::strcmp(argv[i], "--") == 0;
    args->push_back(argv[i]);
  }
  const std::vector<std::string> positional_args =
      ParseFlagsOrExit(std::vector<std::string>(args->begin() + 1, args->end()));
  // Kept for the life of the process, as argv is (and reachable from here,
  // so that a leak checker does not count them).
  static std::vector<std::string>* kept = new std::vector<std::string>();
  kept->assign(positional_args.begin(), positional_args.end());
  std::vector<char*> positional = {argv[0]};
  for (std::string& a : *kept) positional.push_back(a.data());
  if (wants_help) {
    const std::string command = help.commands.size() == 1 && help.commands[0].name.empty()
                                    ? ""
                                    : (positional.size() > 1 ? positional[1] : "-");
    std::fputs(HelpText(help, command).c_str(), stdout);
    std::exit(0);
  }
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

bool CheckingFlagsOnly() { return absl::GetFlag(FLAGS_check_flags); }

bool FlagGiven(const std::string& name) { return GivenFlags().count(name) > 0; }

void ExitAfterFlagCheck(const absl::Status& status) {
  if (!status.ok()) ExitWithUsageError(std::string(status.message()));
  std::printf("%s: flags ok\n", ProgramName().c_str());
  std::fflush(stdout);
  std::exit(0);
}

void ExitOnStartFailure(const absl::Status& status) {
  if (absl::IsInvalidArgument(status)) ExitWithUsageError(std::string(status.message()));
  LOG(ERROR) << status;
  std::exit(1);
}

TerminationWatcher::TerminationWatcher(std::function<void(int)> on_signal)
    : on_signal_(std::move(on_signal)) {
  sigset_t set = WatchedSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  thread_ = std::thread([this] {
    sigset_t watched = WatchedSignals();
    bool first = true;
    while (true) {
      int sig = 0;
      sigwait(&watched, &sig);
      if (sig == kWakeSignal) return;
      if (first) {
        // The shutdown may take a while (a last checkpoint, an evaluation
        // running): on a thread of its own, so that a second signal is seen.
        first = false;
        std::lock_guard<std::mutex> lock(handler_mu_);
        handler_ = std::thread([this, sig] { on_signal_(sig); });
        continue;
      }
      const std::string line = absl::StrCat(ProgramName(), ": second ", SignalName(sig),
                                            ": the shutdown was cut short\n");
      (void)!write(STDERR_FILENO, line.data(), line.size());
      _exit(128 + sig);
    }
  });
  watcher_thread.store(thread_.native_handle());
  watcher_running.store(true);
  InstallForwarding();
}

TerminationWatcher::~TerminationWatcher() { Stop(); }

void TerminationWatcher::Stop() {
  std::call_once(stop_once_, [this] {
    // A shutdown a signal began ends first; a second signal meanwhile still
    // cuts it short.
    JoinHandler();
    // No forwarding to a thread that is about to end.
    RemoveForwarding();
    pthread_kill(thread_.native_handle(), kWakeSignal);
    thread_.join();
    JoinHandler();  // one a signal started while the watcher stopped
  });
}

void TerminationWatcher::JoinHandler() {
  std::thread handler;
  {
    std::lock_guard<std::mutex> lock(handler_mu_);
    handler = std::move(handler_);
  }
  if (handler.joinable()) handler.join();
}

}  // namespace hips
