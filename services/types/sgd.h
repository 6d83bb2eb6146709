#ifndef HIPS_SERVICES_TYPES_SGD_H_
#define HIPS_SERVICES_TYPES_SGD_H_

#include "absl/status/status.h"

namespace hips {

// What an SGD optimizer's steps use besides the learning rate.
struct SgdSettings {
  double momentum = 0;
  bool nesterov = false;
  double weight_decay = 0;

  friend bool operator==(const SgdSettings& a, const SgdSettings& b) {
    return a.momentum == b.momentum && a.nesterov == b.nesterov && a.weight_decay == b.weight_decay;
  }
};

// The optimizer a worker runs for its local steps in fedavg mode (plain SGD
// as torch::optim::SGD computes it, dampening 0). HQ sends it with each
// version's weights: the learning rate its schedule gives that version, and
// its --momentum, --nesterov and --weight_decay, so that no worker can train
// with settings of its own.
struct LocalSgd {
  double lr = 0;
  double momentum = 0;
  bool nesterov = false;
  double weight_decay = 0;

  friend bool operator==(const LocalSgd& a, const LocalSgd& b) {
    return a.lr == b.lr && a.momentum == b.momentum && a.nesterov == b.nesterov &&
           a.weight_decay == b.weight_decay;
  }
  friend bool operator!=(const LocalSgd& a, const LocalSgd& b) { return !(a == b); }
};

// INVALID_ARGUMENT unless lr is finite and >= 0, momentum in [0, 1),
// weight decay finite and >= 0, and nesterov comes with a positive momentum.
absl::Status ValidateLocalSgd(const LocalSgd& sgd);

}  // namespace hips

#endif  // HIPS_SERVICES_TYPES_SGD_H_
