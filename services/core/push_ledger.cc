#include "services/core/push_ledger.h"

#include <algorithm>
#include <random>

namespace hips {

int64_t NewIncarnation() {
  std::random_device entropy;
  const uint64_t bits = (uint64_t{entropy()} << 32) ^ uint64_t{entropy()};
  const int64_t drawn = static_cast<int64_t>(bits >> 1);  // 63 bits, >= 0
  return drawn == 0 ? 1 : drawn;
}

PushLedger::Seen PushLedger::Look(const std::string& sender, int64_t incarnation,
                                  int64_t sequence) const {
  if (sequence <= 0) return Seen::kNew;  // unnumbered
  if (ticket_of_.count({sender, incarnation, sequence}) > 0) return Seen::kPending;
  if (auto it = answered_.find(sender); it != answered_.end() &&
                                        it->second.incarnation == incarnation &&
                                        it->second.sequence == sequence) {
    return Seen::kAnswered;
  }
  auto it = numbers_.find(sender);
  if (it == numbers_.end()) return Seen::kNew;
  const Numbers& n = it->second;
  if (incarnation == n.incarnation) return sequence <= n.sequence ? Seen::kSuperseded : Seen::kNew;
  const bool retired =
      std::find(n.retired.begin(), n.retired.end(), incarnation) != n.retired.end();
  return retired ? Seen::kSuperseded : Seen::kNew;
}

PushLedger::Answer PushLedger::Answered(const std::string& sender) const {
  auto it = answered_.find(sender);
  if (it == answered_.end()) return absl::NotFoundError("no settled push of " + sender);
  return it->second.answer;
}

std::optional<PushLedger::Answer> PushLedger::AnswerRepeat(const std::string& sender,
                                                           int64_t incarnation, int64_t sequence,
                                                           bool wait, Callback& done,
                                                           const PushResult& otherwise) {
  const Seen seen = Look(sender, incarnation, sequence);
  if (seen == Seen::kAnswered) {
    Answer first = Answered(sender);
    if (first.ok()) first->duplicate = true;
    return first;
  }
  if (seen != Seen::kPending || !wait) return otherwise;
  Wait(TicketOf(sender, incarnation, sequence), [done = std::move(done)](Answer a) {
    if (a.ok()) a->duplicate = true;
    done(std::move(a));
  });
  return std::nullopt;
}

bool PushLedger::Forget(const std::string& sender) {
  for (const auto& [ticket, push] : open_) {
    if (std::get<0>(push.name) == sender) return false;
  }
  numbers_.erase(sender);
  answered_.erase(sender);
  return true;
}

void PushLedger::Record(const std::string& sender, int64_t incarnation, int64_t sequence) {
  if (sequence <= 0) return;
  auto [it, fresh] = numbers_.try_emplace(sender);
  Numbers& n = it->second;
  if (fresh || incarnation == n.incarnation) {
    n.incarnation = incarnation;
    n.sequence = std::max(n.sequence, sequence);
    return;
  }
  if (std::find(n.retired.begin(), n.retired.end(), incarnation) != n.retired.end()) return;
  // A new process of the sender: the one before is retired.
  n.retired.push_back(n.incarnation);
  if (n.retired.size() > kRetiredIncarnations) n.retired.erase(n.retired.begin());
  n.incarnation = incarnation;
  n.sequence = sequence;
}

void PushLedger::Restore(const std::string& sender, Numbers numbers) {
  if (numbers.sequence <= 0) return;
  if (numbers.retired.size() > kRetiredIncarnations) {
    numbers.retired.erase(numbers.retired.begin(),
                          numbers.retired.end() - kRetiredIncarnations);
  }
  numbers_[sender] = std::move(numbers);
}

int64_t PushLedger::Open(const std::string& sender, int64_t incarnation, int64_t sequence) {
  Record(sender, incarnation, sequence);
  const int64_t ticket = next_ticket_++;
  open_[ticket] = OpenPush{{sender, incarnation, sequence}, {}};
  if (sequence > 0) ticket_of_[{sender, incarnation, sequence}] = ticket;
  return ticket;
}

int64_t PushLedger::TicketOf(const std::string& sender, int64_t incarnation,
                             int64_t sequence) const {
  auto it = ticket_of_.find({sender, incarnation, sequence});
  return it == ticket_of_.end() ? 0 : it->second;
}

void PushLedger::Wait(int64_t ticket, Callback done) {
  auto it = open_.find(ticket);
  if (it != open_.end()) it->second.waiting.push_back(std::move(done));
}

std::vector<PushLedger::Callback> PushLedger::Settle(int64_t ticket, const Answer& answer) {
  auto it = open_.find(ticket);
  if (it == open_.end()) return {};
  OpenPush push = std::move(it->second);
  open_.erase(it);
  const auto& [sender, incarnation, sequence] = push.name;
  if (sequence > 0) {
    ticket_of_.erase(push.name);
    // (A retired process's push settling late is not its sender's newest.)
    if (auto n = numbers_.find(sender); n != numbers_.end() && n->second.incarnation == incarnation) {
      answered_[sender] = Settled{incarnation, sequence, answer};
    }
  }
  return std::move(push.waiting);
}
std::vector<PushLedger::Callback> PushLedger::SettleAll(const Answer& answer) {
  std::vector<Callback> all;
  while (!open_.empty()) {
    std::vector<Callback> waiting = Settle(open_.begin()->first, answer);
    for (Callback& c : waiting) all.push_back(std::move(c));
  }
  return all;
}

}  // namespace hips
