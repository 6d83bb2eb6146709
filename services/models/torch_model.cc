// The model zoo, the user's TorchScript modules and the torch::optim wrapper
// behind the torch-free Model and Optimizer interfaces. One of the two translation units that
// include LibTorch (with torch_checkpoint.cc): its headers cost ~17 s of compile time per
// translation unit here.

#include <dlfcn.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"
#include "services/models/model.h"
#include "services/models/optimizer.h"

namespace hips {
namespace {

// Held by whoever seeds LibTorch's default generator and draws from it
// (one generator per process).
std::mutex& GeneratorMutex() {
  static std::mutex* const mu = new std::mutex;
  return *mu;
}

// LibTorch reports errors by throwing; hips speaks absl::Status.
template <typename Fn>
auto Guarded(const char* what, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  }
}

int64_t Product(const std::vector<int64_t>& v) {
  int64_t n = 1;
  for (int64_t d : v) n *= d;
  return n;
}

torch::nn::Sequential BuildNetwork(const ModelOptions& o) {
  torch::nn::Sequential net;
  const int64_t in = Product(o.input_shape);
  if (o.name == "mlp") {
    net->push_back(torch::nn::Flatten());
    net->push_back(torch::nn::Linear(in, 256));
    net->push_back(torch::nn::ReLU());
    net->push_back(torch::nn::Linear(256, 256));
    net->push_back(torch::nn::ReLU());
    net->push_back(torch::nn::Linear(256, o.num_classes));
  } else if (o.name == "cnn") {
    const int64_t channels = o.input_shape[0];
    net->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 32, 3).padding(1)));
    net->push_back(torch::nn::ReLU());
    net->push_back(torch::nn::MaxPool2d(2));
    net->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3).padding(1)));
    net->push_back(torch::nn::ReLU());
    net->push_back(torch::nn::MaxPool2d(2));
    net->push_back(torch::nn::Flatten());
    net->push_back(torch::nn::Linear(64 * (o.input_shape[1] / 4) * (o.input_shape[2] / 4), 128));
    net->push_back(torch::nn::ReLU());
    net->push_back(torch::nn::Linear(128, o.num_classes));
  } else {  // fullmlp
    net->push_back(torch::nn::Flatten());
    int64_t width = in;
    for (int i = 0; i < o.fullmlp_layers; ++i) {
      const bool last = i + 1 == o.fullmlp_layers;
      const int64_t out = last ? o.num_classes : o.fullmlp_width;
      net->push_back(torch::nn::Linear(width, out));
      if (!last) net->push_back(torch::nn::ReLU());
      width = out;
    }
  }
  return net;
}

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// What TorchModel needs of a network: a forward pass, the train/eval switch
// and the parameters and buffers by name, in a fixed order.
class Net {
 public:
  virtual ~Net() = default;
  virtual torch::Tensor Forward(const torch::Tensor& x) = 0;
  virtual void Train(bool on) = 0;
  virtual NamedTensors NamedParameters() = 0;
  virtual NamedTensors NamedBuffers() = 0;
};

// The zoo's networks.
class SequentialNet final : public Net {
 public:
  explicit SequentialNet(torch::nn::Sequential net) : net_(std::move(net)) {}
  torch::Tensor Forward(const torch::Tensor& x) override { return net_->forward(x); }
  void Train(bool on) override { net_->train(on); }
  NamedTensors NamedParameters() override {
    NamedTensors out;
    for (const auto& item : net_->named_parameters()) out.emplace_back(item.key(), item.value());
    return out;
  }
  NamedTensors NamedBuffers() override {
    NamedTensors out;
    for (const auto& item : net_->named_buffers()) out.emplace_back(item.key(), item.value());
    return out;
  }

 private:
  torch::nn::Sequential net_;
};

// A module the user saved with torch.jit.script(m).save(PATH).
class ScriptNet final : public Net {
 public:
  explicit ScriptNet(torch::jit::Module module) : module_(std::move(module)) {}
  torch::Tensor Forward(const torch::Tensor& x) override { return module_.forward({x}).toTensor(); }
  void Train(bool on) override { module_.train(on); }
  NamedTensors NamedParameters() override {
    NamedTensors out;
    for (const auto& item : module_.named_parameters(/*recurse=*/true)) {
      out.emplace_back(item.name, item.value);
    }
    return out;
  }
  NamedTensors NamedBuffers() override {
    NamedTensors out;
    for (const auto& item : module_.named_buffers(/*recurse=*/true)) {
      out.emplace_back(item.name, item.value);
    }
    return out;
  }
  torch::jit::Module& module() { return module_; }

 private:
  torch::jit::Module module_;
};

// `tensors` are the layout's: the parameters, then the float32 buffers.
class TorchModel final : public Model {
 public:
  TorchModel(ModelOptions options, std::unique_ptr<Net> net, ModelLayout layout,
             std::vector<torch::Tensor> tensors)
      : options_(std::move(options)),
        net_(std::move(net)),
        layout_(std::move(layout)),
        tensors_(std::move(tensors)) {
    size_t params = 0;
    while (params < tensors_.size() && !layout_.tensors()[params].buffer) ++params;
    params_.assign(tensors_.begin(), tensors_.begin() + params);
  }

  const ModelLayout& layout() const override { return layout_; }

  void GetWeights(absl::Span<float> out) const override {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < tensors_.size(); ++i)
      CopyOut(tensors_[i], out.data() + layout_.offset(i));
  }

  absl::Status SetWeights(absl::Span<const float> weights) override {
    if (static_cast<int64_t>(weights.size()) != layout_.num_floats()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weights have ", weights.size(), " floats, the model has ", layout_.num_floats()));
    }
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      CopyIn(weights.data() + layout_.offset(i), &tensors_[i]);
    }
    return absl::OkStatus();
  }

  // One tensor's floats out of / into its slice of a flat buffer.
  static void CopyOut(const torch::Tensor& tensor, float* to) {
    const torch::Tensor t = tensor.contiguous();
    std::memcpy(to, t.data_ptr<float>(), t.numel() * sizeof(float));
  }
  static void CopyIn(const float* from, torch::Tensor* tensor) {
    torch::Tensor& t = *tensor;
    if (t.is_contiguous()) {
      std::memcpy(t.data_ptr<float>(), from, t.numel() * sizeof(float));
    } else {  // a user's module may hold a strided view as a parameter
      t.copy_(torch::from_blob(const_cast<float*>(from), t.sizes(), torch::kFloat));
    }
  }

  using Model::ComputeGradient;
  absl::StatusOr<double> ComputeGradient(absl::Span<const float> features,
                                         absl::Span<const int64_t> labels,
                                         absl::Span<const float> targets,
                                         absl::Span<float> grad_out) override {
    const bool mse = options_.loss == "mse";
    const int64_t outputs = options_.num_classes;
    const int64_t n = static_cast<int64_t>(mse ? targets.size() / outputs : labels.size());
    const int64_t example = Product(options_.input_shape);
    if (n == 0 || static_cast<int64_t>(features.size()) != n * example ||
        (mse && static_cast<int64_t>(targets.size()) != n * outputs)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "batch of ", mse ? targets.size() : labels.size(), mse ? " target floats" : " labels",
          " and ", features.size(), " feature floats"));
    }
    if (static_cast<int64_t>(grad_out.size()) != layout_.num_floats()) {
      return absl::InvalidArgumentError("gradient buffer has the wrong size");
    }
    std::vector<int64_t> shape = {n};
    shape.insert(shape.end(), options_.input_shape.begin(), options_.input_shape.end());
    // from_blob does not copy; the spans outlive the tensors of this call.
    torch::Tensor x = torch::from_blob(const_cast<float*>(features.data()), shape);
    for (int64_t label : labels) {
      if (label < 0 || label >= options_.num_classes) {
        return absl::InvalidArgumentError(absl::StrCat("label ", label, " out of range"));
      }
    }
    return Guarded("forward/backward", [&]() -> absl::StatusOr<double> {
      // Train mode (dropout, batch statistics); the grads zeroed in place,
      // as Module::zero_grad does (a TorchScript module has no zero_grad).
      net_->Train(true);
      for (torch::Tensor& p : params_) {
        if (p.grad().defined()) {
          p.mutable_grad().detach_();
          p.mutable_grad().zero_();
        }
      }
      // Seeded draws hold LibTorch's generator (one per process) for the
      // whole pass: models of other threads (workers of a test cluster in
      // one process) cannot draw in between.
      std::unique_lock<std::mutex> seeded;
      if (next_seed_.has_value()) {
        seeded = std::unique_lock<std::mutex>(GeneratorMutex());
        torch::manual_seed(*next_seed_);
        next_seed_.reset();
      }
      torch::Tensor out = net_->Forward(x);
      torch::Tensor loss;
      if (mse) {
        // Summed over an example's outputs, averaged over the examples.
        const torch::Tensor y = torch::from_blob(const_cast<float*>(targets.data()), {n, outputs});
        loss = (out.reshape({n, outputs}) - y).pow(2).sum() / static_cast<double>(n);
      } else {
        const torch::Tensor y =
            torch::from_blob(const_cast<int64_t*>(labels.data()), {n}, torch::kInt64);
        loss = torch::nn::functional::cross_entropy(out, y);
      }
      loss.backward();
      for (size_t i = 0; i < params_.size(); ++i) {
        float* into = grad_out.data() + layout_.offset(i);
        if (!params_[i].grad().defined()) {  // a frozen parameter (requires_grad false)
          std::fill(into, into + params_[i].numel(), 0.0f);
          continue;
        }
        CopyOut(params_[i].grad(), into);
      }
      // A buffer's slot carries its value after this forward pass (HQ keeps
      // the sample-weighted mean: docs/models.md).
      for (size_t i = params_.size(); i < tensors_.size(); ++i) {
        CopyOut(tensors_[i], grad_out.data() + layout_.offset(i));
      }
      return loss.item<double>() * static_cast<double>(n);
    });
  }

  absl::StatusOr<EvalMetrics> Evaluate(const Dataset& data) override {
    if (data.example_shape != options_.input_shape) {
      return absl::InvalidArgumentError("data set examples do not fit the model's input");
    }
    return Guarded("evaluation", [&]() -> absl::StatusOr<EvalMetrics> {
      torch::NoGradGuard no_grad;
      net_->Train(false);  // eval mode: dropout off, running statistics
      const int64_t n = data.num_examples();
      const int64_t outputs = options_.num_classes;
      std::vector<int64_t> predictions(data.regression() ? 0 : n);
      std::vector<float> values(data.regression() ? n * outputs : 0);
      constexpr int64_t kBatch = 1000;
      for (int64_t first = 0; first < n; first += kBatch) {
        const int64_t count = std::min(kBatch, n - first);
        std::vector<int64_t> shape = {count};
        shape.insert(shape.end(), options_.input_shape.begin(), options_.input_shape.end());
        torch::Tensor x = torch::from_blob(
            const_cast<float*>(data.features.data() + first * data.example_size()), shape);
        const torch::Tensor out = net_->Forward(x);
        if (data.regression()) {
          CopyOut(out.reshape({count * outputs}), values.data() + first * outputs);
          continue;
        }
        torch::Tensor argmax = out.argmax(1).contiguous();
        std::memcpy(predictions.data() + first, argmax.data_ptr<int64_t>(),
                    count * sizeof(int64_t));
      }
      if (data.regression()) return ComputeRegressionMetrics(values, data.targets, n);
      return ComputeClassificationMetrics(predictions, data.labels, data.num_classes);
    });
  }

  void SeedNextGradient(uint64_t seed) override { next_seed_ = seed; }

  // The parameters (the layout's first tensors) and all of its tensors.
  std::vector<torch::Tensor>& params() { return params_; }
  const std::vector<torch::Tensor>& params() const { return params_; }
  std::vector<torch::Tensor>& tensors() { return tensors_; }

 private:
  const ModelOptions options_;
  std::unique_ptr<Net> net_;
  const ModelLayout layout_;
  std::vector<torch::Tensor> tensors_;
  std::vector<torch::Tensor> params_;
  std::optional<uint64_t> next_seed_;  // SeedNextGradient's, for one pass
};

// torch::optim keeps its per-parameter state under the address of the
// parameter's TensorImpl (torch/optim/serialize.h does the same lookup).
std::string StateKey(const torch::Tensor& param) {
  return c10::guts::to_string(param.unsafeGetTensorImpl());
}

// The buffers each optimizer keeps per parameter (OptimizerState keys).
std::vector<std::string> BufferNames(const std::string& optimizer) {
  if (optimizer == "sgd") return {"momentum_buffer"};
  return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
}

void ExportBuffer(const std::string& tensor, const char* buffer, const torch::Tensor& values,
                  OptimizerState* state) {
  if (!values.defined()) return;
  const torch::Tensor t = values.to(torch::kFloat).contiguous();
  const float* data = t.data_ptr<float>();
  state->buffers[absl::StrCat(tensor, "/", buffer)].assign(data, data + t.numel());
}

// A buffer of `param`'s shape holding a copy of `values` (sizes checked by
// the caller).
torch::Tensor ImportBuffer(const std::vector<float>& values, const torch::Tensor& param) {
  return torch::from_blob(const_cast<float*>(values.data()), param.sizes(), torch::kFloat).clone();
}

class TorchOptimizer final : public Optimizer {
 public:
  TorchOptimizer(std::string name, std::unique_ptr<TorchModel> model,
                 std::unique_ptr<torch::optim::Optimizer> optim)
      : name_(std::move(name)), model_(std::move(model)), optim_(std::move(optim)) {}

  absl::Status Step(absl::Span<const float> grad, double learning_rate) override {
    if (!(learning_rate > 0)) {
      return absl::InvalidArgumentError(absl::StrCat("learning rate ", learning_rate));
    }
    const ModelLayout& layout = model_->layout();
    if (static_cast<int64_t>(grad.size()) != layout.num_floats()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gradient has ", grad.size(), " floats, the model has ", layout.num_floats()));
    }
    absl::Span<float> flat = GradientBuffer();
    // Given anything but GradientBuffer() itself, the gradient is copied in.
    if (grad.data() != flat.data()) std::copy(grad.begin(), grad.end(), flat.begin());
    // Each parameter's grad is its slice of the flat buffer. (Re-pointed if
    // anything replaced it, so the optimizer never reads a stale tensor.)
    std::vector<torch::Tensor>& params = model_->params();
    for (size_t i = 0; i < params.size(); ++i) {
      torch::Tensor& p = params[i];
      float* slice = flat.data() + layout.offset(i);
      if (!p.grad().defined() || p.grad().data_ptr<float>() != slice) {
        p.mutable_grad() = flat_grad_.narrow(0, layout.offset(i), p.numel()).view(p.sizes());
      }
    }
    // A buffer's slot holds its new value, not a gradient.
    std::vector<torch::Tensor>& tensors = model_->tensors();
    {
      torch::NoGradGuard no_grad;
      for (size_t i = params.size(); i < tensors.size(); ++i) {
        TorchModel::CopyIn(flat.data() + layout.offset(i), &tensors[i]);
      }
    }
    return Guarded("optimizer step", [&]() -> absl::Status {
      for (torch::optim::OptimizerParamGroup& group : optim_->param_groups()) {
        group.options().set_lr(learning_rate);
      }
      optim_->step();
      return absl::OkStatus();
    });
  }

  absl::Status SetSgd(const SgdSettings& settings) override {
    if (!(settings.momentum >= 0 && settings.momentum < 1)) {
      return absl::InvalidArgumentError(absl::StrCat("momentum ", settings.momentum));
    }
    if (!(settings.weight_decay >= 0)) {
      return absl::InvalidArgumentError(absl::StrCat("weight decay ", settings.weight_decay));
    }
    if (settings.nesterov && settings.momentum == 0) {
      return absl::InvalidArgumentError("nesterov needs a positive momentum");
    }
    for (torch::optim::OptimizerParamGroup& group : optim_->param_groups()) {
      auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&group.options());
      if (sgd == nullptr) return absl::UnimplementedError("this optimizer is not SGD");
      sgd->momentum(settings.momentum);
      sgd->nesterov(settings.nesterov);
      sgd->weight_decay(settings.weight_decay);
    }
    return absl::OkStatus();
  }

  void GetWeights(absl::Span<float> out) const override { model_->GetWeights(out); }
  int64_t num_floats() const override { return model_->layout().num_floats(); }

  absl::Span<float> GradientBuffer() override {
    if (!flat_grad_.defined()) flat_grad_ = torch::empty({num_floats()}, torch::kFloat);
    return absl::MakeSpan(flat_grad_.data_ptr<float>(), static_cast<size_t>(num_floats()));
  }

  // The parameters keep their TensorImpls (the weights are copied into
  // them), so the optimizer state stays attached to them.
  absl::Status SetWeights(absl::Span<const float> weights) override {
    return model_->SetWeights(weights);
  }

  absl::StatusOr<OptimizerState> ExportState() const override {
    return Guarded("exporting the optimizer state", [&]() -> absl::StatusOr<OptimizerState> {
      OptimizerState state;
      state.name = name_;
      const std::vector<torch::Tensor>& params = model_->params();
      for (size_t i = 0; i < params.size(); ++i) {
        const auto it = optim_->state().find(StateKey(params[i]));
        if (it == optim_->state().end()) continue;
        const std::string& tensor = model_->layout().tensors()[i].name;
        const torch::optim::OptimizerParamState* param_state = it->second.get();
        if (auto* sgd = dynamic_cast<const torch::optim::SGDParamState*>(param_state)) {
          ExportBuffer(tensor, "momentum_buffer", sgd->momentum_buffer(), &state);
        } else if (auto* adam = dynamic_cast<const torch::optim::AdamParamState*>(param_state)) {
          state.steps[tensor] = adam->step();
          ExportBuffer(tensor, "exp_avg", adam->exp_avg(), &state);
          ExportBuffer(tensor, "exp_avg_sq", adam->exp_avg_sq(), &state);
          ExportBuffer(tensor, "max_exp_avg_sq", adam->max_exp_avg_sq(), &state);
        } else {
          return absl::InternalError(absl::StrCat("unexpected optimizer state for ", tensor));
        }
      }
      return state;
    });
  }

  absl::Status ImportState(const OptimizerState& state) override {
    if (absl::Status s = CheckImport(state); !s.ok()) return s;
    return Guarded("importing the optimizer state", [&]() -> absl::Status {
      // Built aside and swapped in, so that a failure leaves the old state.
      std::remove_reference_t<decltype(optim_->state())> fresh;
      const std::vector<torch::Tensor>& params = model_->params();
      for (size_t i = 0; i < params.size(); ++i) {
        const std::string& tensor = model_->layout().tensors()[i].name;
        const auto buffer = [&](const char* name) -> const std::vector<float>* {
          const auto it = state.buffers.find(absl::StrCat(tensor, "/", name));
          return it == state.buffers.end() ? nullptr : &it->second;
        };
        if (name_ == "sgd") {
          const std::vector<float>* momentum = buffer("momentum_buffer");
          if (momentum == nullptr) continue;
          auto param_state = std::make_unique<torch::optim::SGDParamState>();
          param_state->momentum_buffer(ImportBuffer(*momentum, params[i]));
          fresh[StateKey(params[i])] = std::move(param_state);
        } else {
          const auto step = state.steps.find(tensor);
          if (step == state.steps.end()) continue;
          auto param_state = std::make_unique<torch::optim::AdamParamState>();
          param_state->step(step->second);
          param_state->exp_avg(ImportBuffer(*buffer("exp_avg"), params[i]));
          param_state->exp_avg_sq(ImportBuffer(*buffer("exp_avg_sq"), params[i]));
          if (const std::vector<float>* max = buffer("max_exp_avg_sq")) {
            param_state->max_exp_avg_sq(ImportBuffer(*max, params[i]));
          }
          fresh[StateKey(params[i])] = std::move(param_state);
        }
      }
      optim_->state() = std::move(fresh);
      return absl::OkStatus();
    });
  }

 private:
  // Everything ImportState needs to hold, checked before it changes anything.
  absl::Status CheckImport(const OptimizerState& state) const {
    if (state.name != name_) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer state of '", state.name, "' given to a '", name_, "' optimizer"));
    }
    const ModelLayout& layout = model_->layout();
    std::map<std::string, int64_t> sizes;  // tensor name -> floats
    for (const TensorSpec& spec : layout.tensors()) sizes[spec.name] = spec.NumElements();
    const std::vector<std::string> allowed = BufferNames(name_);
    for (const auto& [key, values] : state.buffers) {
      const size_t slash = key.rfind('/');
      const std::string tensor = key.substr(0, slash == std::string::npos ? 0 : slash);
      const std::string buffer = slash == std::string::npos ? key : key.substr(slash + 1);
      const auto size = sizes.find(tensor);
      if (size == sizes.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimizer buffer '", key, "' names no tensor of ", layout.DebugString()));
      }
      if (std::find(allowed.begin(), allowed.end(), buffer) == allowed.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimizer buffer '", key, "': '", name_, "' keeps no '", buffer, "'"));
      }
      if (static_cast<int64_t>(values.size()) != size->second) {
        return absl::InvalidArgumentError(absl::StrCat("optimizer buffer '", key, "' has ",
                                                       values.size(), " floats, the tensor ",
                                                       size->second));
      }
    }
    if (name_ == "sgd") {
      if (!state.steps.empty()) return absl::InvalidArgumentError("sgd keeps no step counts");
      return absl::OkStatus();
    }
    // Adam's state of a tensor is all or nothing: a step count with both
    // moments (and optionally the amsgrad maximum).
    for (const auto& [tensor, step] : state.steps) {
      if (sizes.count(tensor) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("adam step count of unknown tensor '", tensor, "'"));
      }
      if (step < 0) {
        return absl::InvalidArgumentError(absl::StrCat("adam step count ", step, " of ", tensor));
      }
      for (const char* moment : {"exp_avg", "exp_avg_sq"}) {
        if (state.buffers.count(absl::StrCat(tensor, "/", moment)) == 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("adam state of ", tensor, " lacks its ", moment));
        }
      }
    }
    for (const auto& [key, values] : state.buffers) {
      const std::string tensor = key.substr(0, key.rfind('/'));
      if (state.steps.count(tensor) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("adam buffer '", key, "' without a step count for ", tensor));
      }
    }
    return absl::OkStatus();
  }

  const std::string name_;
  std::unique_ptr<TorchModel> model_;
  std::unique_ptr<torch::optim::Optimizer> optim_;
  // Every parameter's gradient, in layout order; the grads are views of it.
  torch::Tensor flat_grad_;
};

}  // namespace

namespace {

// The line of a LibTorch exception that says what went wrong: the first for
// a C++ error, the last for an error inside the TorchScript interpreter
// (whose message is a traceback ending in Python's "RuntimeError: ...").
std::string ErrorLine(const std::exception& e) {
  const std::vector<std::string> lines = absl::StrSplit(e.what(), '\n', absl::SkipWhitespace());
  if (lines.empty()) return "unknown error";
  if (absl::StrContains(lines.front(), "TorchScript interpreter")) {
    return std::string(absl::StripAsciiWhitespace(lines.back()));
  }
  return std::string(absl::StripAsciiWhitespace(lines.front()));
}

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Loads and checks the user's module: a TorchScript file whose forward maps
// a batch of `o.input_shape` to [n, num_classes], with float parameters.
absl::StatusOr<std::unique_ptr<ScriptNet>> LoadScriptNet(const ModelOptions& o) {
  const std::string& path = o.model_file;
  std::unique_ptr<ScriptNet> net;
  try {
    net = std::make_unique<ScriptNet>(torch::jit::load(path, torch::kCPU));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model_file ", path, ": not a TorchScript module (", ErrorLine(e), ")"));
  }
  torch::jit::Module& m = net->module();
  if (!m.find_method("forward").has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("--model_file ", path, ": no forward method"));
  }
  for (const auto& item : m.named_parameters(/*recurse=*/true)) {
    if (item.value.scalar_type() != torch::kFloat) {
      return absl::InvalidArgumentError(
          absl::StrCat("--model_file ", path, ": parameter '", item.name, "' is ",
                       std::string(item.value.dtype().name()), ", hips trains float32 parameters"));
    }
  }
  // One example through it, in eval mode: the output must be [1, classes].
  std::vector<int64_t> shape = {1};
  shape.insert(shape.end(), o.input_shape.begin(), o.input_shape.end());
  std::string out_shape;
  try {
    torch::NoGradGuard no_grad;
    net->Train(false);
    const torch::Tensor y = net->Forward(torch::zeros(shape));
    if (y.dim() == 2 && y.size(0) == 1 && y.size(1) == o.num_classes &&
        y.scalar_type() == torch::kFloat) {
      return net;
    }
    out_shape = absl::StrCat("a ", std::string(y.dtype().name()), " tensor of shape ",
                             ShapeString(y.sizes().vec()));
  } catch (const std::exception& e) {
    out_shape = absl::StrCat("an error (", ErrorLine(e), ")");
  }
  const bool mse = o.loss == "mse";
  return absl::InvalidArgumentError(absl::StrCat(
      "--model_file ", path, ": its forward maps a batch of shape ", ShapeString(shape), " to ",
      out_shape, "; hips needs float ", mse ? "outputs" : "logits", " of shape [1, ", o.num_classes,
      "] (", o.num_classes, mse ? " targets per example" : " classes", " in the data)"));
}

}  // namespace

namespace {

// The layout of `net` and its tensors in layout order: the parameters, then
// the float32 buffers (other buffers, like BatchNorm's integer batch
// counter, stay as the module has them).
absl::StatusOr<ModelLayout> LayoutOf(Net& net, std::vector<torch::Tensor>* tensors) {
  std::vector<TensorSpec> specs;
  for (auto& [name, value] : net.NamedParameters()) {
    specs.push_back({name, value.sizes().vec()});
    tensors->push_back(value);
  }
  for (auto& [name, value] : net.NamedBuffers()) {
    if (value.scalar_type() != torch::kFloat) continue;
    specs.push_back({name, value.sizes().vec(), /*buffer=*/true});
    tensors->push_back(value);
  }
  return ModelLayout::Create(std::move(specs));
}

}  // namespace

absl::Status ExportTorchScript(const ModelLayout& layout, absl::Span<const float> weights,
                               const std::string& model_file, const std::string& out) {
  if (static_cast<int64_t>(weights.size()) != layout.num_floats()) {
    return absl::InvalidArgumentError(absl::StrCat("the checkpoint has ", weights.size(),
                                                   " weights, its layout ", layout.num_floats()));
  }
  std::unique_ptr<ScriptNet> net;
  try {
    net = std::make_unique<ScriptNet>(torch::jit::load(model_file, torch::kCPU));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--model_file ", model_file, ": not a TorchScript module (", ErrorLine(e), ")"));
  }
  std::vector<torch::Tensor> tensors;
  absl::StatusOr<ModelLayout> theirs = LayoutOf(*net, &tensors);
  if (!theirs.ok()) return theirs.status();
  if (*theirs != layout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--model_file ", model_file, " is another model than the checkpoint's: ",
        ModelLayout::FirstDifference(layout, *theirs, "in the checkpoint", "in the file")));
  }
  return Guarded("exporting the module", [&]() -> absl::Status {
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < tensors.size(); ++i) {
        TorchModel::CopyIn(weights.data() + layout.offset(i), &tensors[i]);
      }
    }
    // Saved for inference; module.train() switches it back.
    net->Train(false);
    const std::string tmp = absl::StrCat(out, ".tmp");
    try {
      net->module().save(tmp);
    } catch (const std::exception& e) {
      std::remove(tmp.c_str());
      return absl::UnavailableError(absl::StrCat("cannot write ", tmp, ": ", ErrorLine(e)));
    }
    if (std::rename(tmp.c_str(), out.c_str()) != 0) {
      const std::string error = std::strerror(errno);
      std::remove(tmp.c_str());
      return absl::UnavailableError(absl::StrCat("cannot write ", out, ": ", error));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::unique_ptr<Model>> Model::Create(const ModelOptions& options, uint64_t seed) {
  if (absl::Status s = ValidateModelOptions(options); !s.ok()) return s;
  std::unique_ptr<Net> net;
  if (options.name == "torchscript") {
    absl::StatusOr<std::unique_ptr<ScriptNet>> script = LoadScriptNet(options);
    if (!script.ok()) return script.status();
    net = *std::move(script);
  } else {
    // The initial weights come from LibTorch's global generator.
    std::lock_guard<std::mutex> lock(GeneratorMutex());
    torch::manual_seed(seed);
    net = std::make_unique<SequentialNet>(BuildNetwork(options));
  }
  std::vector<torch::Tensor> tensors;
  absl::StatusOr<ModelLayout> layout = LayoutOf(*net, &tensors);
  if (!layout.ok()) return layout.status();
  return std::unique_ptr<Model>(
      new TorchModel(options, std::move(net), *std::move(layout), std::move(tensors)));
}

void SetTorchThreads(int threads) {
  torch::set_num_threads(threads);
  // LibTorch on Debian runs its matrix products on OpenBLAS, whose own
  // thread pool ignores the setting above and busy-waits (sched_yield) for
  // work: with several hips processes on few cores that spinning took more
  // CPU than the products (docs/performance.md).
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(threads);
  }
}

absl::StatusOr<std::unique_ptr<Optimizer>> CreateTorchOptimizer(const OptimizerOptions& o,
                                                                std::unique_ptr<Model> model) {
  if (absl::Status s = ValidateOptimizerOptions(o); !s.ok()) return s;
  auto* raw = dynamic_cast<TorchModel*>(model.get());
  if (raw == nullptr) return absl::InvalidArgumentError("not a model built by Model::Create");
  model.release();
  std::unique_ptr<TorchModel> torch_model(raw);
  std::unique_ptr<torch::optim::Optimizer> optim;
  if (o.name == "sgd") {
    optim = std::make_unique<torch::optim::SGD>(torch_model->params(),
                                                torch::optim::SGDOptions(o.learning_rate)
                                                    .momentum(o.momentum)
                                                    .nesterov(o.nesterov)
                                                    .weight_decay(o.weight_decay));
  } else {
    optim = std::make_unique<torch::optim::Adam>(torch_model->params(),
                                                 torch::optim::AdamOptions(o.learning_rate)
                                                     .betas({o.beta1, o.beta2})
                                                     .eps(o.epsilon)
                                                     .weight_decay(o.weight_decay));
  }
  return std::unique_ptr<Optimizer>(
      new TorchOptimizer(o.name, std::move(torch_model), std::move(optim)));
}

}  // namespace hips
