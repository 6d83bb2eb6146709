#ifndef HIPS_SERVICES_CORE_PUSH_LEDGER_H_
#define HIPS_SERVICES_CORE_PUSH_LEDGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "services/types/payloads.h"

namespace hips {

// A sender's incarnation: a random positive 63-bit number drawn as it
// starts, never the clock, so that a restarted sender is told from its
// predecessor whatever either's clock said (also a number distinct within
// the process, for several tiers of one test).
int64_t NewIncarnation();

// The exactly-once bookkeeping of one tier (docs/faults.md). Every sender
// names its pushes (incarnation, sequence): its incarnation (NewIncarnation;
// 0 for a sender that says none) and within it increasing sequence numbers,
// 1, 2, 3...; a retry repeats both (sequence 0 means unnumbered: never taken
// for a repeat). Per sender the ledger keeps its newest incarnation with the
// newest sequence taken in of it, the last kRetiredIncarnations incarnations
// it had before, the pushes taken in whose outcome is not known yet, and
// the outcome of its newest settled push, so that a push seen before is
// answered as its first attempt was, never counted twice:
//
//   Look(sender, inc, seq)  kNew         take it in: Open (an outcome to
//                                        come) or Record (settled at once)
//                           kPending     its first attempt awaits its
//                                        outcome: Wait for the same one
//                           kAnswered    the sender's newest settled push:
//                                        the same answer (Answered)
//                           kSuperseded  older than what the sender pushed
//                                        since, or of an incarnation it
//                                        retired (a process that died): a
//                                        duplicate
//
// A push of an incarnation the ledger has not seen is new and retires the
// sender's current one: the newest process of a member is the last one
// heard from, whatever numbers either drew.
//
// An aggregator opens each push and settles it when HQ answers the
// aggregate carrying it; HQ records each aggregate (per aggregator) and each
// worker gradient inside (per worker) as it applies them. Not thread-safe:
// the owner serializes access; callbacks are handed back, never called here,
// so the owner can call them without its locks held.
class PushLedger {
 public:
  using Answer = absl::StatusOr<PushResult>;
  using Callback = std::function<void(Answer)>;

  // How many incarnations of a sender it keeps besides the current one: a
  // push of one retired longer ago than this many restarts would be new.
  static constexpr size_t kRetiredIncarnations = 4;

  // What the ledger keeps of a sender's numbers (and a checkpoint of it).
  struct Numbers {
    int64_t incarnation = 0;
    int64_t sequence = 0;          // the newest taken in of `incarnation`
    std::vector<int64_t> retired;  // the ones before, oldest first
  };

  enum class Seen { kNew, kPending, kAnswered, kSuperseded };
  Seen Look(const std::string& sender, int64_t incarnation, int64_t sequence) const;
  // The answer of the sender's newest settled push (Look said kAnswered).
  Answer Answered(const std::string& sender) const;
  // Answers a push taken in before (Look: kPending, kAnswered or
  // kSuperseded) as its first attempt, marked a duplicate: now (returned),
  // or, while the first attempt is pending and `wait`, through `done` once
  // it settles (nullopt; `done` is taken). `otherwise` answers a superseded
  // push, and a pending one without `wait`.
  std::optional<Answer> AnswerRepeat(const std::string& sender, int64_t incarnation,
                                     int64_t sequence, bool wait, Callback& done,
                                     const PushResult& otherwise);

  // Takes in a push whose outcome comes later; returns its ticket (also for
  // an unnumbered push, which is then only known by its ticket).
  int64_t Open(const std::string& sender, int64_t incarnation, int64_t sequence);
  // `done` is handed back by Settle of the ticket (a push Look found
  // kPending: TicketOf).
  void Wait(int64_t ticket, Callback done);
  // Whether the ticket's push is still open (not settled).
  bool IsOpen(int64_t ticket) const { return open_.count(ticket) > 0; }
  // The ticket of a pending numbered push.
  int64_t TicketOf(const std::string& sender, int64_t incarnation, int64_t sequence) const;
  // The outcome of an open push: it becomes its sender's newest answer (if
  // numbered and of the sender's current incarnation). Returns the callbacks waiting for it, each to be called with
  // `answer`; none for an unknown ticket.
  std::vector<Callback> Settle(int64_t ticket, const Answer& answer);
  // Settles every open push with `answer` (a shutdown): the callbacks and
  // answers to call.
  std::vector<Callback> SettleAll(const Answer& answer);

  // Takes in a push that is settled at once (no answer kept).
  void Record(const std::string& sender, int64_t incarnation, int64_t sequence);

  int64_t open() const { return static_cast<int64_t>(open_.size()); }
  // Whether it holds anything of `sender` (a sequence taken in).
  bool Knows(const std::string& sender) const { return numbers_.contains(sender); }
  // Forgets `sender` (Retention), unless one of its pushes is still open
  // (then false: it is forgotten at a later sweep, once settled).
  bool Forget(const std::string& sender);
  // Senders it holds something of.
  size_t senders() const { return numbers_.size(); }
  // Per sender, its numbers (for checkpoints; Restore puts them back).
  const absl::flat_hash_map<std::string, Numbers>& numbers() const { return numbers_; }
  void Restore(const std::string& sender, Numbers numbers);

 private:
  // A numbered push of a sender: (sender, incarnation, sequence).
  using PushName = std::tuple<std::string, int64_t, int64_t>;
  struct OpenPush {
    PushName name;
    std::vector<Callback> waiting;
  };
  struct Settled {
    int64_t incarnation = 0;
    int64_t sequence = 0;
    Answer answer;
  };

  absl::flat_hash_map<std::string, Numbers> numbers_;
  std::map<int64_t, OpenPush> open_;     // by ticket
  std::map<PushName, int64_t> ticket_of_;  // numbered open pushes
  absl::flat_hash_map<std::string, Settled> answered_;
  int64_t next_ticket_ = 1;
};

}  // namespace hips

#endif  // HIPS_SERVICES_CORE_PUSH_LEDGER_H_
