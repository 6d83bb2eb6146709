#include "services/data/partition.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "services/data/shard_sampler.h"

namespace hips {

namespace {

// The draws of a split, from SplitMix64 over a counter: the same numbers
// with any compiler and standard library (std::gamma_distribution's are
// not), and easy to repeat in another language.
class Draws {
 public:
  explicit Draws(uint64_t seed) : state_(seed) {}
  uint64_t Next() { return SplitMix64(state_++); }
  // Uniform in (0, 1): never 0, so its logarithm is finite.
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * 0x1.0p-53; }
  // Box-Muller (each draw in its own statement: the order of two calls in
  // one expression is the compiler's choice).
  double Normal() {
    constexpr double kTwoPi = 6.283185307179586;
    const double radius = std::sqrt(-2.0 * std::log(Uniform()));
    return radius * std::cos(kTwoPi * Uniform());
  }
  // Gamma(shape, 1), Marsaglia and Tsang (2000); below shape 1 from
  // Gamma(shape + 1) times U^(1/shape).
  double Gamma(double shape) {
    if (shape < 1.0) {
      const double boosted = Gamma(shape + 1.0);
      return boosted * std::pow(Uniform(), 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0;
    const double c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x, v;
      do {
        x = Normal();
        v = 1.0 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const double u = Uniform();
      if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
    }
  }
  // Fisher-Yates.
  template <typename T>
  void Shuffle(std::vector<T>* v) {
    for (size_t i = v->size(); i > 1; --i) std::swap((*v)[i - 1], (*v)[Next() % i]);
  }

 private:
  uint64_t state_;
};

std::vector<std::vector<int64_t>> Iid(size_t n, int homes) {
  std::vector<std::vector<int64_t>> out(homes);
  for (size_t i = 0; i < n; ++i) out[i % homes].push_back(static_cast<int64_t>(i));
  return out;
}

// One draw of the Dirichlet split.
std::vector<std::vector<int64_t>> Dirichlet(absl::Span<const int64_t> labels, int homes,
                                            double alpha, uint64_t seed) {
  std::map<int64_t, std::vector<int64_t>> by_class;
  for (size_t i = 0; i < labels.size(); ++i) by_class[labels[i]].push_back(static_cast<int64_t>(i));
  Draws draws(seed);
  std::vector<std::vector<int64_t>> out(homes);
  std::vector<double> share(homes);
  for (auto& [label, examples] : by_class) {
    draws.Shuffle(&examples);
    double total = 0;
    for (double& s : share) total += (s = draws.Gamma(alpha));
    if (!(total > 0)) {  // (every draw underflowed: the class goes to one home)
      std::fill(share.begin(), share.end(), 0.0);
      share[draws.Next() % homes] = total = 1.0;
    }
    // Home h gets the examples between the rounded cumulative shares.
    double cumulative = 0;
    size_t begin = 0;
    for (int h = 0; h < homes; ++h) {
      cumulative += share[h];
      const size_t end = h + 1 == homes ? examples.size()
                                        : static_cast<size_t>(std::llround(
                                              cumulative / total * examples.size()));
      for (size_t i = begin; i < std::max(begin, end); ++i) out[h].push_back(examples[i]);
      begin = std::max(begin, end);
    }
  }
  for (auto& home : out) std::sort(home.begin(), home.end());
  return out;
}

// The Dirichlet split drawn per home: each home, in an order drawn first,
// draws its class mix q ~ Dir(alpha, ..., alpha) and takes `size` examples
// (the class counts q·size rounded by largest remainder), each class's from
// its examples in a drawn order; what a class no longer has is taken from
// the home's other classes in the order of its q (then of the label).
std::vector<std::vector<int64_t>> DirichletPerHome(absl::Span<const int64_t> labels, int homes,
                                                   double alpha, uint64_t seed) {
  std::map<int64_t, std::vector<int64_t>> by_class;
  for (size_t i = 0; i < labels.size(); ++i) by_class[labels[i]].push_back(static_cast<int64_t>(i));
  Draws draws(seed);
  std::vector<std::vector<int64_t>*> classes;
  for (auto& [label, examples] : by_class) {
    draws.Shuffle(&examples);
    classes.push_back(&examples);
  }
  const size_t c = classes.size();
  std::vector<size_t> taken(c, 0);  // from the front of each class's order
  const size_t size = labels.size() / static_cast<size_t>(homes);
  std::vector<int> order(homes);
  std::iota(order.begin(), order.end(), 0);
  draws.Shuffle(&order);
  std::vector<std::vector<int64_t>> out(homes);
  std::vector<double> q(c);
  std::vector<size_t> want(c);
  std::vector<size_t> by_q(c);
  for (int h : order) {
    double total = 0;
    for (double& x : q) total += (x = draws.Gamma(alpha));
    if (!(total > 0)) {  // (every draw underflowed: the home is of one class)
      std::fill(q.begin(), q.end(), 0.0);
      q[draws.Next() % c] = total = 1.0;
    }
    size_t assigned = 0;
    std::vector<std::pair<double, size_t>> remainders;
    for (size_t k = 0; k < c; ++k) {
      const double exact = q[k] / total * static_cast<double>(size);
      want[k] = static_cast<size_t>(std::floor(exact));
      assigned += want[k];
      remainders.push_back({-(exact - static_cast<double>(want[k])), k});
    }
    std::sort(remainders.begin(), remainders.end());
    for (size_t i = 0; assigned < size; ++i, ++assigned) ++want[remainders[i % c].second];
    std::iota(by_q.begin(), by_q.end(), size_t{0});
    std::stable_sort(by_q.begin(), by_q.end(), [&](size_t a, size_t b) { return q[a] > q[b]; });
    std::vector<int64_t>& home = out[h];
    auto take = [&](size_t k, size_t n) {
      const size_t got = std::min(n, classes[k]->size() - taken[k]);
      home.insert(home.end(), classes[k]->begin() + taken[k],
                  classes[k]->begin() + taken[k] + got);
      taken[k] += got;
      return got;
    };
    size_t short_by = 0;
    for (size_t k = 0; k < c; ++k) short_by += want[k] - take(k, want[k]);
    for (size_t i = 0; i < c && short_by > 0; ++i) short_by -= take(by_q[i], short_by);
  }
  for (auto& home : out) std::sort(home.begin(), home.end());
  return out;
}

absl::StatusOr<std::vector<std::vector<int64_t>>> Shards(absl::Span<const int64_t> labels,
                                                         int homes, int per_home, uint64_t seed) {
  const size_t count = static_cast<size_t>(homes) * static_cast<size_t>(per_home);
  const size_t size = labels.size() / count;
  if (size == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        labels.size(), " examples cannot be cut into ", homes, " homes x ", per_home,
        " shards (--shards_per_home)"));
  }
  std::vector<int64_t> sorted(labels.size());
  std::iota(sorted.begin(), sorted.end(), int64_t{0});
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](int64_t a, int64_t b) { return labels[a] < labels[b]; });
  std::vector<size_t> shard(count);
  std::iota(shard.begin(), shard.end(), size_t{0});
  Draws(seed).Shuffle(&shard);
  std::vector<std::vector<int64_t>> out(homes);
  for (size_t k = 0; k < count; ++k) {
    std::vector<int64_t>& home = out[k / per_home];
    home.insert(home.end(), sorted.begin() + shard[k] * size,
                sorted.begin() + (shard[k] + 1) * size);
  }
  for (auto& home : out) std::sort(home.begin(), home.end());
  return out;
}

}  // namespace

absl::StatusOr<Partition> ParsePartition(absl::string_view kind, double alpha,
                                         int shards_per_home, absl::string_view dirichlet_draw) {
  Partition p;
  if (kind == "iid") {
    p.kind = Partition::Kind::kIid;
  } else if (kind == "dirichlet") {
    p.kind = Partition::Kind::kDirichlet;
  } else if (kind == "shards") {
    p.kind = Partition::Kind::kShards;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--partition must be iid, dirichlet or shards, got \"", absl::CHexEscape(kind), "\""));
  }
  if (!(alpha > 0 && alpha <= 1000)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--dirichlet_alpha must be in (0, 1000], got ", alpha));
  }
  if (shards_per_home < 1 || shards_per_home > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shards_per_home must be in [1, 1000], got ", shards_per_home));
  }
  if (dirichlet_draw == "per_class") {
    p.dirichlet_draw = Partition::Draw::kPerClass;
  } else if (dirichlet_draw == "per_home") {
    p.dirichlet_draw = Partition::Draw::kPerHome;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--dirichlet_draw must be per_class or per_home, got \"",
                     absl::CHexEscape(dirichlet_draw), "\""));
  }
  p.dirichlet_alpha = alpha;
  p.shards_per_home = shards_per_home;
  return p;
}

std::string DescribePartition(const Partition& p) {
  switch (p.kind) {
    case Partition::Kind::kIid:
      return "iid";
    case Partition::Kind::kDirichlet:
      return absl::StrCat("dirichlet(", p.dirichlet_alpha,
                          p.dirichlet_draw == Partition::Draw::kPerHome ? ",per_home" : "", ")");
    case Partition::Kind::kShards:
      return absl::StrCat("shards(", p.shards_per_home, ")");
  }
  return "iid";
}

absl::StatusOr<std::vector<std::vector<int64_t>>> PartitionExamples(
    absl::Span<const int64_t> labels, int homes, const Partition& p, uint64_t seed,
    int64_t min_examples) {
  if (homes < 1) return absl::InvalidArgumentError(absl::StrCat("no homes to split among"));
  switch (p.kind) {
    case Partition::Kind::kIid:
      return Iid(labels.size(), homes);
    case Partition::Kind::kShards:
      return Shards(labels, homes, p.shards_per_home, SplitMix64(seed));
    case Partition::Kind::kDirichlet:
      break;
  }
  if (p.dirichlet_draw == Partition::Draw::kPerHome) {
    if (static_cast<int64_t>(labels.size()) / homes < std::max<int64_t>(min_examples, 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          labels.size(), " examples give each of ", homes, " homes ",
          static_cast<int64_t>(labels.size()) / homes, ", fewer than ", min_examples,
          " (a batch): use fewer homes or a smaller batch"));
    }
    return DirichletPerHome(labels, homes, p.dirichlet_alpha, SplitMix64(seed));
  }
  constexpr int kDraws = 100;
  for (int draw = 0; draw < kDraws; ++draw) {
    std::vector<std::vector<int64_t>> out =
        Dirichlet(labels, homes, p.dirichlet_alpha,
                  SplitMix64(seed ^ SplitMix64(static_cast<uint64_t>(draw) + 1)));
    if (std::all_of(out.begin(), out.end(), [&](const std::vector<int64_t>& home) {
          return static_cast<int64_t>(home.size()) >= min_examples;
        })) {
      return out;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--partition=dirichlet with --dirichlet_alpha=", p.dirichlet_alpha, " left some of ",
      homes, " homes fewer than ", min_examples, " examples (a batch) in each of ", kDraws,
      " draws: use fewer homes, a larger alpha, a smaller batch or --dirichlet_draw=per_home "
      "(homes of equal size)"));
}

std::string DescribeLabelSpread(absl::Span<const int64_t> labels,
                                const std::vector<std::vector<int64_t>>& homes) {
  std::vector<int64_t> sizes;
  std::vector<int64_t> classes;
  for (const std::vector<int64_t>& home : homes) {
    std::map<int64_t, int64_t> counts;
    for (int64_t i : home) ++counts[labels[i]];
    int64_t major = 0;
    for (const auto& [label, n] : counts) major += 20 * n >= static_cast<int64_t>(home.size());
    sizes.push_back(static_cast<int64_t>(home.size()));
    classes.push_back(major);
  }
  auto spread = [](std::vector<int64_t> v) {
    if (v.empty()) return std::string("-");
    std::sort(v.begin(), v.end());
    return absl::StrCat(v.front(), "/", v[v.size() / 2], "/", v.back());
  };
  return absl::StrCat(homes.size(), " homes: examples min/median/max ", spread(sizes),
                      ", classes holding 5% or more of a home's examples min/median/max ",
                      spread(classes));
}

absl::StatusOr<DataShard> HomeShard(const DataOptions& data, const Partition& p, int index,
                                    int homes, uint64_t seed, int64_t min_examples) {
  absl::StatusOr<std::vector<DataShard>> one =
      HomeShards(data, p, index, 1, homes, seed, min_examples);
  if (!one.ok()) return one.status();
  return std::move(one->front());
}

absl::StatusOr<std::vector<DataShard>> HomeShards(const DataOptions& data, const Partition& p,
                                                  int first, int count, int homes, uint64_t seed,
                                                  int64_t min_examples) {
  if (homes < 1 || count < 1 || first < 0 || first > homes - count) {
    return absl::InvalidArgumentError(absl::StrCat("homes ", first, " to ", first + count - 1,
                                                   " of ", homes, " do not exist"));
  }
  std::vector<DataShard> out;
  if (p.kind == Partition::Kind::kIid) {
    for (int i = first; i < first + count; ++i) out.emplace_back(i, homes);
    return out;
  }
  absl::StatusOr<std::vector<int64_t>> labels = LoadTrainingLabels(data);
  if (!labels.ok()) {
    return absl::Status(labels.status().code(),
                        absl::StrCat("--partition=", DescribePartition(p), ": ",
                                     labels.status().message()));
  }
  absl::StatusOr<std::vector<std::vector<int64_t>>> parts =
      PartitionExamples(*labels, homes, p, seed, min_examples);
  if (!parts.ok()) return parts.status();
  for (int i = first; i < first + count; ++i) {
    std::vector<int64_t>& mine = (*parts)[i];
    if (static_cast<int64_t>(mine.size()) < min_examples) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--partition=", DescribePartition(p), " gives home ", i, " of ", homes, " only ",
          mine.size(), " examples, fewer than a batch of ", min_examples));
    }
    out.emplace_back(i, homes, std::move(mine));
  }
  return out;
}

DataShard UnionOfShards(const std::vector<DataShard>& homes, int64_t whole) {
  if (homes.size() == 1) return homes.front();
  std::vector<int64_t> all;
  for (const DataShard& h : homes) {
    if (h.explicit_list()) {
      all.insert(all.end(), h.examples.begin(), h.examples.end());
    } else {
      for (int64_t i = h.index; i < whole; i += h.count) all.push_back(i);
    }
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  return DataShard(0, 1, std::move(all));
}

}  // namespace hips
