// The sync-mode contract, end to end over real gRPC on loopback: HQ, 2
// aggregators and 2 workers each run 20 rounds; the final weights must equal
// single-process SGD on the union of the same batches (hips train
// --monolith), tensor by tensor, to 1e-5 relative; for the zoo's mlp and for
// the same mlp as the user's TorchScript module.

#include <cmath>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/monolith.h"
#include "services/data/partition.h"
#include "services/numeric/scaffold.h"
#include "gtest/gtest.h"
#include "tests/in_process_cluster.h"

namespace hips {
namespace {

constexpr int kAggregators = 2;
constexpr int kWorkersPerAggregator = 2;
constexpr int kWorkers = kAggregators * kWorkersPerAggregator;
constexpr int64_t kRounds = 20;
// hips local's default. The margin under 1e-5 depends on whether some ReLU
// sits at its kink in some step: its gradient mask then differs between the
// two reductions' roundings (measured max error: 9e-8 at batch 64 and 16,
// 6e-6 at batch 32).
constexpr int64_t kBatch = 64;
constexpr uint64_t kSeed = 11;

double RelativeError(absl::Span<const float> a, absl::Span<const float> b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    norm += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

struct Case {
  const char* name;
  OptimizerOptions optimizer;
  bool scripted = false;  // the zoo's mlp as a TorchScript module
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

OptimizerOptions Sgd() {
  OptimizerOptions o;
  o.name = "sgd";
  o.learning_rate = 0.05;
  o.momentum = 0.9;
  o.weight_decay = 1e-4;
  o.lr_schedule = "cosine";
  return o;
}

OptimizerOptions Adam() {
  OptimizerOptions o;
  o.name = "adam";
  o.learning_rate = 1e-3;
  // With the default epsilon (1e-8) Adam's step is ~lr·sign(g) for every
  // |g| >> epsilon, so a gradient that cancels to ~1e-9 takes the sign of its
  // float rounding, which differs between a 4x32 and a 1x128 reduction: the
  // runs then drift apart by ~lr per such element (measured: 5e-3 relative
  // after 20 steps at batch 16). epsilon 1e-4 keeps every Adam code path but
  // makes the step a smooth function of g, so equality is a fair check.
  o.epsilon = 1e-4;
  o.lr_schedule = "constant";
  return o;
}

// The zoo's mlp of seed kSeed as the user's TorchScript module: the scripted
// mlp (make_test_modules.py) exported with the zoo's initial weights.
ModelOptions ScriptedZooMlp() {
  static const std::string* const file = [] {
    auto* path = new std::string(absl::StrCat(::testing::TempDir(), "/zoo_mlp.pt"));
    ModelOptions zoo;
    absl::StatusOr<std::unique_ptr<Model>> m = Model::Create(zoo, kSeed);
    EXPECT_TRUE(m.ok()) << m.status();
    std::vector<float> w((*m)->layout().num_floats());
    (*m)->GetWeights(absl::MakeSpan(w));
    const absl::Status s =
        ExportTorchScript((*m)->layout(), w, absl::StrCat(HIPS_TEST_MODULES, "/mlp.pt"), *path);
    EXPECT_TRUE(s.ok()) << s;
    return path;
  }();
  ModelOptions o;
  o.name = "torchscript";
  o.model_file = *file;
  return o;
}

class SyncEqualsMonolithTest : public ::testing::TestWithParam<Case> {
 public:
  static void SetUpTestSuite() {
    absl::StatusOr<Dataset> train = LoadData(DataOptions(), Split::kTrain);
    ASSERT_TRUE(train.ok()) << train.status();
    train_ = new std::shared_ptr<const Dataset>(std::make_shared<const Dataset>(*std::move(train)));
  }

  struct Run {
    std::vector<float> initial;
    std::shared_ptr<const WeightsSnapshot> final_weights;
  };

  // kRounds sync rounds of `model` on the in-process cluster, its accounting
  // checked.
  static Run TrainOnTheCluster(const ModelOptions& model, const OptimizerOptions& optimizer,
                               ModeConfig mode = {}, double server_momentum = 0,
                               Partition partition = {}, int homes_per_worker = 1,
                               bool control_variates = false) {
    InProcessClusterOptions o;
    o.hq.server.control_variates = control_variates;
    o.homes_per_worker = homes_per_worker;
    o.partition = partition;
    o.hq.server.mode = mode;
    o.hq.server.server_momentum = server_momentum;
    o.aggregators = kAggregators;
    o.workers = kWorkers / homes_per_worker;
    o.hq.server.max_versions = kRounds;
    o.hq.model = model;
    o.hq.optimizer = optimizer;
    o.hq.data.name = "synthetic";  // HQ's test set only; training data is the workers'
    o.hq.data.synthetic_test_examples = 16;
    o.hq.eval_every = 0;
    o.hq.seed = kSeed;
    o.worker.batch_size = kBatch;
    o.worker.data_seed = kSeed;
    o.model = model;           // a different init seed: the workers' weights must come from HQ
    o.chunk_bytes = 64 << 10;  // several chunks per tensor stream
    Run run;
    absl::StatusOr<std::unique_ptr<InProcessCluster>> cluster = InProcessCluster::Start(o, *train_);
    EXPECT_TRUE(cluster.ok()) << cluster.status();
    if (!cluster.ok()) return run;
    InProcessCluster& c = **cluster;
    run.initial = c.hq().server().LatestWeights()->weights;
    c.RunWorkers();
    const std::vector<absl::Status> results = c.JoinWorkers();
    for (int k = 0; k < kWorkers / homes_per_worker; ++k) {
      EXPECT_TRUE(results[k].ok()) << "worker " << k << ": " << results[k];
      EXPECT_EQ(c.worker(k).steps(), kRounds * homes_per_worker * mode.local_steps);
      EXPECT_EQ(c.worker(k).pushes(), kRounds * homes_per_worker);
    }
    run.final_weights = c.hq().server().LatestWeights();
    EXPECT_EQ(run.final_weights->version, kRounds);
    EXPECT_TRUE(run.final_weights->training_done);

    // Exact accounting at every tier.
    const ParameterServerStatus status = c.hq().server().status();
    EXPECT_EQ(status.samples_applied, kRounds * kWorkers * kBatch * mode.local_steps);
    EXPECT_EQ(status.gradients_applied, kRounds * kWorkers);
    EXPECT_EQ(status.aggregates_applied, kRounds * kAggregators);
    EXPECT_EQ(status.aggregates_received, kRounds * kAggregators);
    EXPECT_TRUE(status.aggregates_dropped.empty());
    for (int a = 0; a < kAggregators; ++a) {
      const AggregatorCounters counters = c.aggregator(a).aggregator().counters();
      EXPECT_EQ(counters.gradients_received, kRounds * kWorkersPerAggregator);
      EXPECT_EQ(counters.gradients_accepted, kRounds * kWorkersPerAggregator);
      EXPECT_EQ(counters.rounds_closed, kRounds);
    }
    return run;
  }

  static std::shared_ptr<const Dataset>* train_;
};

std::shared_ptr<const Dataset>* SyncEqualsMonolithTest::train_ = nullptr;

// The run's final weights against single-process SGD of `model` and
// `optimizer` on the same batches: within 1e-5 relative, tensor by tensor,
// and each tensor moved far more than that.
void ExpectEqualsTheMonolith(const SyncEqualsMonolithTest::Run& run, const ModelOptions& model,
                             const OptimizerOptions& optimizer, const Dataset& train,
                             Partition partition = {}) {
  ASSERT_NE(run.final_weights, nullptr);
  MonolithOptions mono;
  mono.partition = partition;
  mono.model = model;
  mono.optimizer = optimizer;
  mono.seed = kSeed;
  mono.num_workers = kWorkers;
  mono.batch_size = kBatch;
  mono.steps = kRounds;
  absl::StatusOr<MonolithResult> reference = RunMonolith(mono, train, nullptr);
  ASSERT_TRUE(reference.ok()) << reference.status();
  ASSERT_EQ(reference->layout, run.final_weights->layout);

  const ModelLayout& layout = reference->layout;
  for (size_t t = 0; t < layout.tensors().size(); ++t) {
    const size_t offset = layout.offset(t);
    const size_t n = layout.tensors()[t].NumElements();
    auto got = absl::MakeConstSpan(run.final_weights->weights).subspan(offset, n);
    auto want = absl::MakeConstSpan(reference->weights).subspan(offset, n);
    auto init = absl::MakeConstSpan(run.initial).subspan(offset, n);
    const double error = RelativeError(got, want);
    EXPECT_LE(error, 1e-5) << layout.tensors()[t].name;
    // Training moved every tensor far more than the tolerance.
    EXPECT_GT(RelativeError(init, want), 1e-3) << layout.tensors()[t].name;
    ::testing::Test::RecordProperty(absl::StrCat("rel_error_", layout.tensors()[t].name),
                                    absl::StrFormat("%.3g", error));
  }
}

TEST_P(SyncEqualsMonolithTest, TwentySyncRoundsEqualSingleProcessSgd) {
  const ModelOptions model = GetParam().scripted ? ScriptedZooMlp() : ModelOptions();
  const Run run = TrainOnTheCluster(model, GetParam().optimizer);
  ExpectEqualsTheMonolith(run, model, GetParam().optimizer, **train_);
}

// The zoo's mlp exported as TorchScript trains as the zoo's: the same
// cluster run ends at the same weights.
TEST_F(SyncEqualsMonolithTest, TheZoosMlpAsTorchScriptReproducesTheZoosRun) {
  const Run zoo = TrainOnTheCluster(ModelOptions(), Sgd());
  const Run script = TrainOnTheCluster(ScriptedZooMlp(), Sgd());
  ASSERT_TRUE(zoo.final_weights != nullptr && script.final_weights != nullptr);
  ASSERT_EQ(zoo.final_weights->layout, script.final_weights->layout);
  EXPECT_EQ(zoo.initial, script.initial);
  const ModelLayout& layout = zoo.final_weights->layout;
  for (size_t t = 0; t < layout.tensors().size(); ++t) {
    const size_t offset = layout.offset(t);
    const size_t n = layout.tensors()[t].NumElements();
    const double error =
        RelativeError(absl::MakeConstSpan(script.final_weights->weights).subspan(offset, n),
                      absl::MakeConstSpan(zoo.final_weights->weights).subspan(offset, n));
    EXPECT_LE(error, 1e-6) << layout.tensors()[t].name;
    RecordProperty(absl::StrCat("rel_error_", layout.tensors()[t].name),
                   absl::StrFormat("%.3g", error));
  }
}

// fedavg with one local step and every worker in every round is sync SGD:
// each worker pushes lr·(g + wd·w) (its momentum starts afresh each round),
// and HQ's server momentum on those deltas at server rate 1 is the
// optimizer's momentum on the gradients, as long as lr is constant (with a
// schedule the server momentum would carry earlier rounds' rates).
TEST_F(SyncEqualsMonolithTest, FedAvgWithOneLocalStepEqualsSingleProcessSgd) {
  OptimizerOptions sgd = Sgd();
  sgd.lr_schedule = "constant";
  const Run run =
      TrainOnTheCluster(ModelOptions(), sgd, ModeConfig{Mode::kFedAvg, 0, 1, 1.0}, sgd.momentum);
  ASSERT_NE(run.final_weights, nullptr);
  EXPECT_EQ(run.final_weights->mode, (ModeConfig{Mode::kFedAvg, 0, 1, 1.0}));
  ExpectEqualsTheMonolith(run, ModelOptions(), sgd, **train_);
}

// SCAFFOLD (--fedavg_algorithm=scaffold) with one local step and every
// home in every round is sync SGD too: HQ's variate c is the homes' mean
// variate, so their corrections c − c_i add up to nothing in the round's
// mean delta. The variate itself travels after the weights and moves.
TEST_F(SyncEqualsMonolithTest, ScaffoldWithOneLocalStepEqualsSingleProcessSgd) {
  OptimizerOptions sgd = Sgd();
  sgd.lr_schedule = "constant";
  Run run = TrainOnTheCluster(ModelOptions(), sgd, ModeConfig{Mode::kFedAvg, 0, 1, 1.0},
                              sgd.momentum, {}, 1, /*control_variates=*/true);
  ASSERT_NE(run.final_weights, nullptr);
  std::vector<TensorSpec> model_tensors;
  for (const TensorSpec& t : run.final_weights->layout.tensors()) {
    if (!absl::StartsWith(t.name, "scaffold.c/")) model_tensors.push_back(t);
  }
  const ModelLayout model = *ModelLayout::Create(model_tensors);
  ASSERT_TRUE(HasControlVariates(run.final_weights->layout, model));
  const size_t n = static_cast<size_t>(model.num_floats());
  const absl::Span<const float> c = absl::MakeConstSpan(run.final_weights->weights).subspan(n);
  ASSERT_EQ(c.size(), static_cast<size_t>(ParameterFloats(model)));
  double c_norm = 0;
  for (float x : c) c_norm += static_cast<double>(x) * x;
  EXPECT_GT(c_norm, 1e-6);  // (0 before the first round)
  EXPECT_TRUE(std::isfinite(c_norm));
  // The model's part against the monolith.
  auto weights = std::make_shared<WeightsSnapshot>(*run.final_weights);
  weights->layout = model;
  weights->weights.resize(n);
  run.final_weights = weights;
  run.initial.resize(n);
  ExpectEqualsTheMonolith(run, ModelOptions(), sgd, **train_);

  // With two local steps the corrections do count: the second step is
  // taken from where the corrected first one led.
  const ModeConfig two{Mode::kFedAvg, 0, 2, 1.0};
  const Run fedavg = TrainOnTheCluster(ModelOptions(), sgd, two, sgd.momentum);
  const Run scaffold = TrainOnTheCluster(ModelOptions(), sgd, two, sgd.momentum, {}, 1, true);
  ASSERT_TRUE(fedavg.final_weights != nullptr && scaffold.final_weights != nullptr);
  EXPECT_GT(RelativeError(absl::MakeConstSpan(scaffold.final_weights->weights).first(n),
                          fedavg.final_weights->weights),
            1e-4);
}

// Non-IID homes (--partition): each worker computes its own part from the
// training labels and the seed, the monolith the same parts from its copy
// of the set; the runs agree only if the parts do.
TEST_F(SyncEqualsMonolithTest, PartitionedHomesTrainOnTheMonolithsParts) {
  for (const char* kind : {"dirichlet", "shards"}) {
    const Partition partition = *ParsePartition(kind, 0.5, 2);
    const Run run = TrainOnTheCluster(ModelOptions(), Sgd(), {}, 0, partition);
    ExpectEqualsTheMonolith(run, ModelOptions(), Sgd(), **train_, partition);
    // And not the iid parts: the reference moves with the partition.
    MonolithOptions iid;
    iid.optimizer = Sgd();
    iid.seed = kSeed;
    iid.num_workers = kWorkers;
    iid.batch_size = kBatch;
    iid.steps = kRounds;
    absl::StatusOr<MonolithResult> other = RunMonolith(iid, **train_, nullptr);
    ASSERT_TRUE(other.ok() && run.final_weights != nullptr);
    EXPECT_GT(RelativeError(run.final_weights->weights, other->weights), 1e-3) << kind;
  }
}

// Homes hosted two per process (hips-worker --homes) share a model and the
// channels, yet each computes on its own part and pushes under its own id:
// the run is the monolith's, in sync and in fedavg of one local step, on
// iid and on dirichlet parts.
TEST_F(SyncEqualsMonolithTest, HomesHostedTwoPerProcessTrainAsTheMonolith) {
  const Run sync = TrainOnTheCluster(ModelOptions(), Sgd(), {}, 0, {}, /*homes_per_worker=*/2);
  ExpectEqualsTheMonolith(sync, ModelOptions(), Sgd(), **train_);
  OptimizerOptions sgd = Sgd();
  sgd.lr_schedule = "constant";
  const Partition dirichlet = *ParsePartition("dirichlet", 0.5, 2);
  const Run fedavg = TrainOnTheCluster(ModelOptions(), sgd, ModeConfig{Mode::kFedAvg, 0, 1, 1.0},
                                       sgd.momentum, dirichlet, /*homes_per_worker=*/2);
  ExpectEqualsTheMonolith(fedavg, ModelOptions(), sgd, **train_, dirichlet);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, SyncEqualsMonolithTest,
                         ::testing::Values(Case{"sgd_momentum_wd_cosine", Sgd()},
                                           Case{"adam", Adam()},
                                           Case{"torchscript_sgd", Sgd(), /*scripted=*/true}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace hips
