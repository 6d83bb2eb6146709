#ifndef HIPS_HQ_CONTROL_VARIATES_H_
#define HIPS_HQ_CONTROL_VARIATES_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/models/optimizer.h"

namespace hips {

// HQ's optimizer under SCAFFOLD (--fedavg_algorithm=scaffold;
// services/numeric/scaffold.h): the model's optimizer for the model's
// floats, then the server variate c, `variate_floats` more, that HQ serves
// and checkpoints with the weights (layout WithControlVariates). c's slots
// are buffers: a step sets c to the round's mean of them (the mean variate
// of the homes heard from), as it sets a BatchNorm statistic; the model's
// part is stepped as without variates. c starts at 0.
class ControlVariateOptimizer : public Optimizer {
 public:
  ControlVariateOptimizer(std::unique_ptr<Optimizer> model, int64_t variate_floats);

  absl::Status Step(absl::Span<const float> grad, double learning_rate) override;
  absl::Status SetSgd(const SgdSettings& settings) override { return model_->SetSgd(settings); }
  void GetWeights(absl::Span<float> out) const override;
  int64_t num_floats() const override { return model_->num_floats() + variate_floats(); }
  absl::Span<float> GradientBuffer() override { return absl::MakeSpan(mean_); }
  absl::Status SetWeights(absl::Span<const float> weights) override;
  absl::StatusOr<OptimizerState> ExportState() const override { return model_->ExportState(); }
  absl::Status ImportState(const OptimizerState& state) override {
    return model_->ImportState(state);
  }

  int64_t variate_floats() const { return static_cast<int64_t>(c_.size()); }
  absl::Span<const float> variate() const { return c_; }

 private:
  std::unique_ptr<Optimizer> model_;
  std::vector<float> c_;
  std::vector<float> mean_;  // (the model's floats, then c's)
};

}  // namespace hips

#endif  // HIPS_HQ_CONTROL_VARIATES_H_
