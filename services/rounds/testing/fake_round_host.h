#ifndef HIPS_SERVICES_ROUNDS_TESTING_FAKE_ROUND_HOST_H_
#define HIPS_SERVICES_ROUNDS_TESTING_FAKE_ROUND_HOST_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "services/rounds/round_policy.h"

namespace hips {

// A tier for the policies' tests: its members (leases that never run out)
// and newest version are set by the test, and what the policy emits is
// kept (and handed to `on_emit` first, where a test plays HQ publishing its
// next version). `waits_for`, when set, narrows the members a round waits
// for (HQ's aggregators with workers). Not thread-safe.
class FakeRoundHost : public RoundHost {
 public:
  const Membership& members() const override { return *members_; }
  bool WaitsFor(const std::string& id) const override { return !waits_for_ || waits_for_(id); }
  int64_t newest_version() const override { return newest_; }
  void Emit(RoundOutput output) override {
    if (on_emit_) on_emit_(output);
    outputs_.push_back(std::move(output));
  }

  // Forming: the tier waits for more members than will ever join, until
  // set_forming(false).
  void set_forming(bool forming) {
    if (!forming) return members_->EndForming();
    const std::vector<std::string> live = members_->Live();
    members_ = std::make_unique<Membership>(absl::InfiniteDuration(), /*expected=*/1000);
    for (const std::string& id : live) members_->Touch(id, absl::UnixEpoch());
  }
  void set_live(const std::set<std::string>& live) {
    for (const std::string& id : members_->Live()) {
      if (live.count(id) == 0) members_->Leave(id);
    }
    for (const std::string& id : live) members_->Touch(id, absl::UnixEpoch());
  }
  void set_newest(int64_t version) { newest_ = version; }
  void set_on_emit(std::function<void(const RoundOutput&)> f) { on_emit_ = std::move(f); }
  void set_waits_for(std::function<bool(const std::string&)> f) { waits_for_ = std::move(f); }
  std::vector<RoundOutput>& outputs() { return outputs_; }

 private:
  std::unique_ptr<Membership> members_ =
      std::make_unique<Membership>(absl::InfiniteDuration(), /*expected=*/0);
  int64_t newest_ = 0;
  std::function<void(const RoundOutput&)> on_emit_;
  std::function<bool(const std::string&)> waits_for_;
  std::vector<RoundOutput> outputs_;
};

// Makes contributions and keeps their values (a Contribution only views
// them) for as long as it lives.
class Contributions {
 public:
  // A worker's gradient: its values are a mean over `samples`, summed with
  // that weight.
  Contribution Gradient(const std::string& sender, int64_t version, std::vector<float> values,
                        int64_t samples = 1) {
    values_.push_back(std::move(values));
    Contribution c;
    c.sender = sender;
    c.version = version;
    c.samples = samples;
    c.loss_sum = 0.5 * static_cast<double>(samples);
    c.scale = static_cast<float>(samples);
    c.values = values_.back();
    return c;
  }

 private:
  std::deque<std::vector<float>> values_;
};

// A Take that records the senders it was called for, in order, and hands
// out refs numbered from 1.
class Taker {
 public:
  RoundPolicy::Take For(const std::string& sender, int64_t version = 0) {
    return [this, sender, version] {
      taken_.push_back(sender);
      ContributorRef ref;
      ref.worker = sender;
      ref.version = version;
      ref.ticket = static_cast<int64_t>(taken_.size());
      return ref;
    };
  }
  const std::vector<std::string>& taken() const { return taken_; }

 private:
  std::vector<std::string> taken_;
};

inline std::vector<std::string> RefWorkers(const RoundOutput& o) {
  std::vector<std::string> ids;
  for (const ContributorRef& r : o.refs) ids.push_back(r.worker);
  return ids;
}

}  // namespace hips

#endif  // HIPS_SERVICES_ROUNDS_TESTING_FAKE_ROUND_HOST_H_
