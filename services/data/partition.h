#ifndef HIPS_SERVICES_DATA_PARTITION_H_
#define HIPS_SERVICES_DATA_PARTITION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/data/dataset.h"

// How the examples of a run are split among its homes (--partition;
// docs/noniid.md): the standard splits of federated learning's non-IID
// experiments, each deterministic from the seed, over all homes of the run,
// so that every home computes its own part alone and the parts are disjoint
// and cover the examples (but for what a split leaves out: see each).
//   iid        example i goes to home i mod N (what hips always did);
//   dirichlet  per class, the class's examples are dealt to the homes in
//              proportions drawn from Dir(alpha, ..., alpha) (Hsu et al.
//              2019): small alpha gives each home few classes, large alpha
//              nears iid; homes' sizes differ as much as their classes.
//              With --dirichlet_draw=per_home instead each home draws its
//              mix of classes from Dir(alpha, ..., alpha) and takes an equal
//              share of the examples in that mix (as far as the classes
//              last): skew of labels alone, for many homes or a small
//              alpha, where dealing per class leaves homes empty;
//   shards     the examples sorted by label are cut into N x shards_per_home
//              equal shards, and each home gets shards_per_home of them at
//              random (McMahan et al. 2017): about that many classes each.

namespace hips {

struct Partition {
  enum class Kind { kIid, kDirichlet, kShards };
  // What the Dirichlet draws are of: each class's shares of the homes, or
  // each home's shares of the classes (equal sizes).
  enum class Draw { kPerClass, kPerHome };
  static constexpr double kDefaultAlpha = 0.5;
  static constexpr int kDefaultShardsPerHome = 2;
  Kind kind = Kind::kIid;
  double dirichlet_alpha = kDefaultAlpha;      // kDirichlet: in (0, 1000]
  Draw dirichlet_draw = Draw::kPerClass;        // kDirichlet
  int shards_per_home = kDefaultShardsPerHome;  // kShards: in [1, 1000]
};

// From --partition, --dirichlet_alpha, --shards_per_home and
// --dirichlet_draw (per_class, per_home): INVALID_ARGUMENT naming the flag
// for a value out of range.
absl::StatusOr<Partition> ParsePartition(absl::string_view kind, double alpha,
                                         int shards_per_home,
                                         absl::string_view dirichlet_draw = "per_class");
// "iid", "dirichlet(0.5)", "dirichlet(0.5,per_home)", "shards(2)".
std::string DescribePartition(const Partition& p);

// The example indices (ascending) of each of `homes` homes under `p`, from
// the examples' class labels (one per example) and `seed`. dirichlet per
// class draws again (up to 100 times, each draw seeded) until every home
// holds at least `min_examples`; INVALID_ARGUMENT if none does (too many
// homes, or too small an alpha, for the data) or if shards leave a home
// none. dirichlet per home gives every home floor(n / homes) examples
// (INVALID_ARGUMENT if that is below `min_examples`). iid and shards need
// no labels beyond their count.
absl::StatusOr<std::vector<std::vector<int64_t>>> PartitionExamples(
    absl::Span<const int64_t> labels, int homes, const Partition& p, uint64_t seed,
    int64_t min_examples = 1);

// One line on how the labels are spread over the homes: examples per home
// (min, median, max) and classes per home (those holding at least 5% of its
// examples: min, median, max).
std::string DescribeLabelSpread(absl::Span<const int64_t> labels,
                                const std::vector<std::vector<int64_t>>& homes);

// The training examples home `index` of `homes` holds under `p`: iid is
// shard index of homes (no labels read); the others read the training
// split's labels (LoadTrainingLabels) and take the home's part, each home
// at least `min_examples` (a batch). Errors name the flag at fault.
absl::StatusOr<DataShard> HomeShard(const DataOptions& data, const Partition& p, int index,
                                    int homes, uint64_t seed, int64_t min_examples);
// The same for homes first..first+count-1 (one process's, hips-worker
// --homes), the split computed once.
absl::StatusOr<std::vector<DataShard>> HomeShards(const DataOptions& data, const Partition& p,
                                                  int first, int count, int homes, uint64_t seed,
                                                  int64_t min_examples);

// What a process hosting `homes` (HomeShards) keeps in memory: the union of
// their examples as an explicit list (a set of `whole` examples), or the one
// home's shard as it is.
DataShard UnionOfShards(const std::vector<DataShard>& homes, int64_t whole);

}  // namespace hips

#endif  // HIPS_SERVICES_DATA_PARTITION_H_
