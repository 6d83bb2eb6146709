#ifndef HIPS_SERVICES_RUNTIME_TRAINING_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_TRAINING_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "services/data/dataset.h"
#include "services/models/model.h"
#include "services/models/optimizer.h"

// Flags that every binary touching the model shares (hips, hips-hq,
// hips-worker), parsed into options structs. Only main()s link this.

ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, model_file);
ABSL_DECLARE_FLAG(std::string, loss);
ABSL_DECLARE_FLAG(int, fullmlp_layers);
ABSL_DECLARE_FLAG(int, fullmlp_width);
ABSL_DECLARE_FLAG(std::string, optimizer);
ABSL_DECLARE_FLAG(double, lr);
ABSL_DECLARE_FLAG(double, momentum);
ABSL_DECLARE_FLAG(bool, nesterov);
ABSL_DECLARE_FLAG(std::string, lr_schedule);
ABSL_DECLARE_FLAG(double, weight_decay);
ABSL_DECLARE_FLAG(std::string, data);
ABSL_DECLARE_FLAG(std::string, data_dir);
ABSL_DECLARE_FLAG(std::string, train_data);
ABSL_DECLARE_FLAG(std::string, test_data);
ABSL_DECLARE_FLAG(int64_t, synthetic_examples);
ABSL_DECLARE_FLAG(int64_t, synthetic_test_examples);
ABSL_DECLARE_FLAG(uint64_t, seed);
ABSL_DECLARE_FLAG(int, torch_threads);

namespace hips {

ModelOptions ModelOptionsFromFlags();
OptimizerOptions OptimizerOptionsFromFlags();
// Unchecked: a daemon checks them as it starts (CheckDataOptions).
DataOptions DataOptionsFromFlags();
// Checked (CheckDataOptions: with --data=npz both files are read as far as
// their headers and labels, except under --check_flags): a bad value exits
// with a usage error (code 2). For the CLI.
DataOptions DataOptionsFromFlagsOrExit();

}  // namespace hips

#endif  // HIPS_SERVICES_RUNTIME_TRAINING_FLAGS_H_
