#include "services/core/push_ledger.h"

#include <algorithm>
#include <atomic>

#include "absl/time/clock.h"

namespace hips {

int64_t FirstSequenceNumber() { return absl::ToUnixMicros(absl::Now()); }

int64_t NewEpoch() {
  static std::atomic<int64_t> last{0};
  const int64_t now = FirstSequenceNumber();
  int64_t prev = last.load();
  while (!last.compare_exchange_weak(prev, std::max(now, prev + 1))) {
  }
  return std::max(now, prev + 1);
}

PushLedger::Seen PushLedger::Look(const std::string& sender, int64_t sequence) const {
  if (sequence <= 0) return Seen::kNew;  // unnumbered
  if (ticket_of_.count({sender, sequence}) > 0) return Seen::kPending;
  if (auto it = answered_.find(sender); it != answered_.end() && it->second.first == sequence) {
    return Seen::kAnswered;
  }
  if (auto it = newest_.find(sender); it != newest_.end() && sequence <= it->second) {
    return Seen::kSuperseded;
  }
  return Seen::kNew;
}

PushLedger::Answer PushLedger::Answered(const std::string& sender) const {
  auto it = answered_.find(sender);
  if (it == answered_.end()) return absl::NotFoundError("no settled push of " + sender);
  return it->second.second;
}

std::optional<PushLedger::Answer> PushLedger::AnswerRepeat(const std::string& sender,
                                                           int64_t sequence, bool wait,
                                                           Callback& done,
                                                           const PushResult& otherwise) {
  const Seen seen = Look(sender, sequence);
  if (seen == Seen::kAnswered) {
    Answer first = Answered(sender);
    if (first.ok()) first->duplicate = true;
    return first;
  }
  if (seen != Seen::kPending || !wait) return otherwise;
  Wait(TicketOf(sender, sequence), [done = std::move(done)](Answer a) {
    if (a.ok()) a->duplicate = true;
    done(std::move(a));
  });
  return std::nullopt;
}

bool PushLedger::Forget(const std::string& sender) {
  for (const auto& [ticket, push] : open_) {
    if (push.sender == sender) return false;
  }
  newest_.erase(sender);
  answered_.erase(sender);
  return true;
}

void PushLedger::Record(const std::string& sender, int64_t sequence) {
  if (sequence <= 0) return;
  int64_t& newest = newest_[sender];
  newest = std::max(newest, sequence);
}

int64_t PushLedger::Open(const std::string& sender, int64_t sequence) {
  Record(sender, sequence);
  const int64_t ticket = next_ticket_++;
  open_[ticket] = OpenPush{sender, sequence, {}};
  if (sequence > 0) ticket_of_[{sender, sequence}] = ticket;
  return ticket;
}

int64_t PushLedger::TicketOf(const std::string& sender, int64_t sequence) const {
  auto it = ticket_of_.find({sender, sequence});
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
  if (push.sequence > 0) {
    ticket_of_.erase({push.sender, push.sequence});
    answered_[push.sender] = {push.sequence, answer};
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
