// The only translation unit that includes LibTorch: the model zoo and the
// torch::optim wrapper behind the torch-free Model and Optimizer interfaces
// (LibTorch headers cost ~17 s of compile time per translation unit here).

#include <torch/torch.h>

#include <cstring>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/models/model.h"
#include "services/models/optimizer.h"

namespace hips {
namespace {

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

class TorchModel final : public Model {
 public:
  TorchModel(ModelOptions options, torch::nn::Sequential net, ModelLayout layout)
      : options_(std::move(options)), net_(std::move(net)), layout_(std::move(layout)),
        params_(net_->parameters()) {}

  const ModelLayout& layout() const override { return layout_; }

  void GetWeights(absl::Span<float> out) const override {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) {
      const torch::Tensor t = params_[i].contiguous();
      std::memcpy(out.data() + layout_.offset(i), t.data_ptr<float>(), t.numel() * sizeof(float));
    }
  }

  absl::Status SetWeights(absl::Span<const float> weights) override {
    if (static_cast<int64_t>(weights.size()) != layout_.num_floats()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weights have ", weights.size(), " floats, the model has ", layout_.num_floats()));
    }
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) {
      std::memcpy(params_[i].data_ptr<float>(), weights.data() + layout_.offset(i),
                  params_[i].numel() * sizeof(float));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<double> ComputeGradient(absl::Span<const float> features,
                                         absl::Span<const int64_t> labels,
                                         absl::Span<float> grad_out) override {
    const int64_t n = static_cast<int64_t>(labels.size());
    const int64_t example = Product(options_.input_shape);
    if (n == 0 || static_cast<int64_t>(features.size()) != n * example) {
      return absl::InvalidArgumentError(absl::StrCat("batch of ", n, " labels and ",
                                                     features.size(), " feature floats"));
    }
    if (static_cast<int64_t>(grad_out.size()) != layout_.num_floats()) {
      return absl::InvalidArgumentError("gradient buffer has the wrong size");
    }
    std::vector<int64_t> shape = {n};
    shape.insert(shape.end(), options_.input_shape.begin(), options_.input_shape.end());
    // from_blob does not copy; the spans outlive the tensors of this call.
    torch::Tensor x = torch::from_blob(const_cast<float*>(features.data()), shape);
    torch::Tensor y = torch::from_blob(const_cast<int64_t*>(labels.data()), {n}, torch::kInt64);
    for (int64_t label : labels) {
      if (label < 0 || label >= options_.num_classes) {
        return absl::InvalidArgumentError(absl::StrCat("label ", label, " out of range"));
      }
    }
    return Guarded("forward/backward", [&]() -> absl::StatusOr<double> {
      net_->zero_grad();
      torch::Tensor loss = torch::nn::functional::cross_entropy(net_->forward(x), y);
      loss.backward();
      for (size_t i = 0; i < params_.size(); ++i) {
        const torch::Tensor g = params_[i].grad().contiguous();
        std::memcpy(grad_out.data() + layout_.offset(i), g.data_ptr<float>(),
                    g.numel() * sizeof(float));
      }
      return loss.item<double>() * static_cast<double>(n);
    });
  }

  absl::StatusOr<ClassificationMetrics> Evaluate(const Dataset& data) override {
    if (data.example_shape != options_.input_shape) {
      return absl::InvalidArgumentError("data set examples do not fit the model's input");
    }
    return Guarded("evaluation", [&]() -> absl::StatusOr<ClassificationMetrics> {
      torch::NoGradGuard no_grad;
      const int64_t n = data.num_examples();
      std::vector<int64_t> predictions(n);
      constexpr int64_t kBatch = 1000;
      for (int64_t first = 0; first < n; first += kBatch) {
        const int64_t count = std::min(kBatch, n - first);
        std::vector<int64_t> shape = {count};
        shape.insert(shape.end(), options_.input_shape.begin(), options_.input_shape.end());
        torch::Tensor x = torch::from_blob(
            const_cast<float*>(data.features.data() + first * data.example_size()), shape);
        torch::Tensor argmax = net_->forward(x).argmax(1).contiguous();
        std::memcpy(predictions.data() + first, argmax.data_ptr<int64_t>(),
                    count * sizeof(int64_t));
      }
      return ComputeClassificationMetrics(predictions, data.labels, data.num_classes);
    });
  }

  std::vector<torch::Tensor>& params() { return params_; }

 private:
  const ModelOptions options_;
  torch::nn::Sequential net_;
  const ModelLayout layout_;
  std::vector<torch::Tensor> params_;
};

class TorchOptimizer final : public Optimizer {
 public:
  TorchOptimizer(std::unique_ptr<TorchModel> model, std::unique_ptr<torch::optim::Optimizer> optim)
      : model_(std::move(model)), optim_(std::move(optim)) {}

  absl::Status Step(absl::Span<const float> grad, double learning_rate) override {
    if (!(learning_rate > 0)) {
      return absl::InvalidArgumentError(absl::StrCat("learning rate ", learning_rate));
    }
    const ModelLayout& layout = model_->layout();
    if (static_cast<int64_t>(grad.size()) != layout.num_floats()) {
      return absl::InvalidArgumentError(absl::StrCat("gradient has ", grad.size(),
                                                     " floats, the model has ",
                                                     layout.num_floats()));
    }
    std::vector<torch::Tensor>& params = model_->params();
    for (size_t i = 0; i < params.size(); ++i) {
      torch::Tensor& p = params[i];
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      std::memcpy(p.mutable_grad().data_ptr<float>(), grad.data() + layout.offset(i),
                  p.numel() * sizeof(float));
    }
    return Guarded("optimizer step", [&]() -> absl::Status {
      for (torch::optim::OptimizerParamGroup& group : optim_->param_groups()) {
        group.options().set_lr(learning_rate);
      }
      optim_->step();
      return absl::OkStatus();
    });
  }

  absl::Status SetMomentum(double momentum) override {
    if (!(momentum >= 0 && momentum < 1)) {
      return absl::InvalidArgumentError(absl::StrCat("momentum ", momentum));
    }
    for (torch::optim::OptimizerParamGroup& group : optim_->param_groups()) {
      auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&group.options());
      if (sgd == nullptr) return absl::UnimplementedError("this optimizer has no momentum");
      if (sgd->nesterov() && momentum == 0) {
        return absl::InvalidArgumentError("nesterov needs a positive momentum");
      }
      sgd->momentum(momentum);
    }
    return absl::OkStatus();
  }

  void GetWeights(absl::Span<float> out) const override { model_->GetWeights(out); }
  int64_t num_floats() const override { return model_->layout().num_floats(); }

 private:
  std::unique_ptr<TorchModel> model_;
  std::unique_ptr<torch::optim::Optimizer> optim_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> Model::Create(const ModelOptions& options, uint64_t seed) {
  if (absl::Status s = ValidateModelOptions(options); !s.ok()) return s;
  torch::nn::Sequential net;
  {
    // The initial weights come from LibTorch's global generator.
    static std::mutex* const seed_mu = new std::mutex;
    std::lock_guard<std::mutex> lock(*seed_mu);
    torch::manual_seed(seed);
    net = BuildNetwork(options);
  }
  std::vector<TensorSpec> specs;
  for (const auto& item : net->named_parameters()) {
    specs.push_back({item.key(), item.value().sizes().vec()});
  }
  absl::StatusOr<ModelLayout> layout = ModelLayout::Create(std::move(specs));
  if (!layout.ok()) return layout.status();
  return std::unique_ptr<Model>(new TorchModel(options, std::move(net), *std::move(layout)));
}

void SetTorchThreads(int threads) { torch::set_num_threads(threads); }

absl::StatusOr<std::unique_ptr<Optimizer>> CreateTorchOptimizer(const OptimizerOptions& o,
                                                                std::unique_ptr<Model> model) {
  if (absl::Status s = ValidateOptimizerOptions(o); !s.ok()) return s;
  auto* raw = dynamic_cast<TorchModel*>(model.get());
  if (raw == nullptr) return absl::InvalidArgumentError("not a model built by Model::Create");
  model.release();
  std::unique_ptr<TorchModel> torch_model(raw);
  std::unique_ptr<torch::optim::Optimizer> optim;
  if (o.name == "sgd") {
    optim = std::make_unique<torch::optim::SGD>(
        torch_model->params(), torch::optim::SGDOptions(o.learning_rate)
                                   .momentum(o.momentum)
                                   .nesterov(o.nesterov)
                                   .weight_decay(o.weight_decay));
  } else {
    optim = std::make_unique<torch::optim::Adam>(
        torch_model->params(), torch::optim::AdamOptions(o.learning_rate)
                                   .betas({o.beta1, o.beta2})
                                   .eps(o.epsilon)
                                   .weight_decay(o.weight_decay));
  }
  return std::unique_ptr<Optimizer>(
      new TorchOptimizer(std::move(torch_model), std::move(optim)));
}

}  // namespace hips
