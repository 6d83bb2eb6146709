#ifndef HIPS_HQ_TESTING_FAKE_SGD_H_
#define HIPS_HQ_TESTING_FAKE_SGD_H_

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/models/optimizer.h"
#include "services/time/clock.h"

namespace hips {

// Plain SGD on a flat buffer: w -= lr · g, for tests of HQ without LibTorch.
// Records every learning rate used in `lrs` (may be null).
class FakeSgd final : public Optimizer {
 public:
  explicit FakeSgd(std::vector<float> w, std::vector<double>* lrs = nullptr)
      : w_(std::move(w)), lrs_(lrs) {}
  absl::Status Step(absl::Span<const float> g, double lr) override {
    if (lrs_ != nullptr) lrs_->push_back(lr);
    steps_from_own_buffer += !own_gradient.empty() && g.data() == own_gradient.data();
    // The step takes this long on the test's clock (without firing its
    // timers: the step runs under the server's lock).
    if (clock != nullptr) clock->Jump(step_time);
    for (size_t i = 0; i < w_.size(); ++i) w_[i] -= static_cast<float>(lr) * g[i];
    return absl::OkStatus();
  }
  // With a buffer of its own here, HQ writes the mean gradient into it.
  absl::Span<float> GradientBuffer() override { return absl::MakeSpan(own_gradient); }
  std::vector<float> own_gradient;
  int steps_from_own_buffer = 0;
  absl::Duration step_time = absl::ZeroDuration();
  SimulatedClock* clock = nullptr;
  absl::Status SetSgd(const SgdSettings& settings) override {
    momenta.push_back(settings.momentum);
    sgd_settings.push_back(settings);
    return absl::OkStatus();
  }
  std::vector<double> momenta;            // every SetSgd's momentum
  std::vector<SgdSettings> sgd_settings;  // every SetSgd
  void GetWeights(absl::Span<float> out) const override {
    std::copy(w_.begin(), w_.end(), out.begin());
  }
  int64_t num_floats() const override { return static_cast<int64_t>(w_.size()); }
  absl::Status SetWeights(absl::Span<const float> w) override {
    w_.assign(w.begin(), w.end());
    return absl::OkStatus();
  }
  absl::StatusOr<OptimizerState> ExportState() const override {
    OptimizerState s;
    s.name = "fake";
    return s;
  }
  absl::Status ImportState(const OptimizerState& s) override {
    if (s.name != "fake") return absl::InvalidArgumentError("not a fake optimizer's state");
    ++imports;
    return absl::OkStatus();
  }
  int imports = 0;  // ImportState calls (a reset of the state is one)

 private:
  std::vector<float> w_;
  std::vector<double>* lrs_;
};

}  // namespace hips

#endif  // HIPS_HQ_TESTING_FAKE_SGD_H_
