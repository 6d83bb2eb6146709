// hips-bench-net: the network benchmarks' C++ side (bench/run drives it and
// computes the ratios). Torch-free. Each role prints one JSON object:
//
//   --role=tcp      the raw-TCP reference: K floats between two processes
//                   {"bytes", "tcp_seconds": [...]}
//   --role=push     the raw-TCP reference, then a worker pushing K floats to
//                   a real aggregator (its gRPC service and summation) in a
//                   forked process whose HQ answers at once
//                   {"bytes", "tcp_seconds": [...], "push_seconds": [...]}
//                   With --tls_cert, --tls_key and --tls_ca both sides
//                   speak mutual TLS (the same certificate).
//   --role=workers  --workers synthetic workers (threads, a connection
//                   each) training against --aggregator in sync rounds
//                   {"workers": [{"id", "floats", "round_seconds",
//                   "push_seconds"}, ...]}

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "aggregator/aggregator_daemon.h"
#include "aggregator/testing/fake_hq_client.h"
#include "bench/synthetic_worker.h"
#include "bench/tcp_transfer.h"
#include "services/numeric/chunk_codec.h"
#include "services/numeric/parallel.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/security_flags.h"
#include "worker/grpc_aggregator_client.h"

ABSL_FLAG(std::string, role, "", "tcp, push or workers.");
ABSL_FLAG(int64_t, floats, 10'000'000, "Floats per transfer or gradient (K; tcp and push).");
ABSL_FLAG(int, repeats, 10, "Timed transfers, pushes or rounds.");
ABSL_FLAG(int, warmup, 2, "Untimed pushes or rounds first.");
ABSL_FLAG(int, chunk_bytes, static_cast<int>(hips::kDefaultChunkBytes),
          "Payload bytes per streamed chunk.");
ABSL_FLAG(std::string, aggregator, "", "workers: the aggregator's address.");
ABSL_FLAG(int, workers, 1, "workers: how many (one thread and connection each).");
ABSL_FLAG(std::string, id_prefix, "bench-worker-", "workers: ids are this plus an index.");
ABSL_FLAG(std::string, unix_socket, "",
          "push: the aggregator also listens on this Unix socket and the worker uses it.");

namespace hips::bench {
namespace {

std::string JsonList(const std::vector<double>& values) {
  return absl::StrCat("[", absl::StrJoin(values, ", "), "]");
}

std::string WorkerJson(const std::string& id, const SyntheticWorkerResult& r) {
  return absl::StrCat("{\"id\": \"", id, "\", \"floats\": ", r.floats,
                      ", \"round_seconds\": ", JsonList(r.round_seconds),
                      ", \"push_seconds\": ", JsonList(r.push_seconds), "}");
}

[[noreturn]] void Fail(const absl::Status& status) {
  std::fprintf(stderr, "hips-bench-net: %s\n", status.ToString().c_str());
  std::exit(1);
}

// The security flags; the push role's two sides share a token of their own
// unless --token_file gives one.
SecurityOptions SecurityOrDie(bool own_token) {
  SecurityOptions security = SecurityOptionsFromFlagsOrExit();
  if (own_token && security.cluster_token.empty()) {
    security.cluster_token = "hips-bench-net-push-token";
  }
  return security;
}

ClientCredentials ClientCredentialsOrDie(const SecurityOptions& security) {
  absl::StatusOr<ClientCredentials> credentials = MakeClientCredentials(ClusterClient(security));
  if (!credentials.ok()) Fail(credentials.status());
  return *std::move(credentials);
}

// The forked sink aggregator: serves until `stop_fd` reaches end of file.
[[noreturn]] void ServeSinkAggregator(int64_t floats, int port_fd, int stop_fd) {
  SetSummationThreads(2);  // as hips-aggregator --sum_threads
  AggregatorDaemonOptions options;
  options.aggregator.id = "agg-bench";
  options.aggregator.lease = absl::Seconds(60);
  options.chunk_bytes = absl::GetFlag(FLAGS_chunk_bytes);
  // An HQ that answers at once: the hop below it is what is measured.
  options.make_hq_client = [floats]() -> std::unique_ptr<HqClient> {
    auto hq = std::make_unique<FakeHqClient>(/*keep_pushes=*/false);
    hq->Publish(ZeroWeights(floats, 0, {Mode::kAsync, 0}));
    return hq;
  };
  options.serve.unix_socket = absl::GetFlag(FLAGS_unix_socket);
  options.serve.security = SecurityOrDie(/*own_token=*/true);
  absl::StatusOr<std::unique_ptr<AggregatorDaemon>> daemon =
      AggregatorDaemon::Start(std::move(options));
  if (!daemon.ok()) Fail(daemon.status());
  const int port = (*daemon)->port();
  if (write(port_fd, &port, sizeof(port)) != sizeof(port)) _exit(1);
  char c;
  while (read(stop_fd, &c, 1) != 0 && errno == EINTR) {
  }
  (*daemon)->Shutdown();
  _exit(0);
}

double CpuSeconds(int who) {
  rusage usage{};
  getrusage(who, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

std::vector<double> TcpSecondsOrDie(int64_t bytes, int repeats) {
  absl::StatusOr<std::vector<double>> tcp = TimeTcpTransfers(bytes, repeats);
  if (!tcp.ok()) Fail(tcp.status());
  return *std::move(tcp);
}

int Push() {
  const int64_t floats = absl::GetFlag(FLAGS_floats);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  const std::vector<double> tcp = TcpSecondsOrDie(floats * 4, repeats);

  int port_pipe[2], stop_pipe[2];
  if (pipe(port_pipe) != 0 || pipe(stop_pipe) != 0) Fail(absl::InternalError("pipe"));
  const pid_t child = fork();
  if (child < 0) Fail(absl::InternalError("fork"));
  if (child == 0) {
    close(stop_pipe[1]);
    ServeSinkAggregator(floats, port_pipe[1], stop_pipe[0]);
  }
  close(stop_pipe[0]);
  int port = 0;
  if (read(port_pipe[0], &port, sizeof(port)) != sizeof(port)) {
    Fail(absl::InternalError("the aggregator process did not start"));
  }
  absl::StatusOr<SyntheticWorkerResult> result;
  const double worker_cpu_before = CpuSeconds(RUSAGE_SELF);
  const double children_cpu_before = CpuSeconds(RUSAGE_CHILDREN);
  {
    const std::string address = absl::GetFlag(FLAGS_unix_socket).empty()
                                    ? absl::StrCat("127.0.0.1:", port)
                                    : absl::StrCat("unix:", absl::GetFlag(FLAGS_unix_socket));
    std::unique_ptr<AggregatorClient> client =
        CreateGrpcAggregatorClient(address, "bench-worker", absl::GetFlag(FLAGS_chunk_bytes),
                                   ClientCredentialsOrDie(SecurityOrDie(/*own_token=*/true)));
    SyntheticWorkerOptions options;
    options.id = "bench-worker";
    options.rounds = repeats;
    options.warmup = absl::GetFlag(FLAGS_warmup);
    options.wait_for_next_version = false;
    result = RunSyntheticWorker(client.get(), options);
  }
  close(stop_pipe[1]);
  int wstatus = 0;
  const double worker_cpu = CpuSeconds(RUSAGE_SELF) - worker_cpu_before;
  while (waitpid(child, &wstatus, 0) < 0 && errno == EINTR) {
  }
  const double aggregator_cpu = CpuSeconds(RUSAGE_CHILDREN) - children_cpu_before;
  if (!result.ok()) Fail(result.status());
  // CPU seconds of both sides over all pushes (warm-up and start-up
  // included): on 2 cores, CPU per byte matters as much as goodput.
  std::printf(
      "{\"bytes\": %lld, \"tcp_seconds\": %s, \"push_seconds\": %s, "
      "\"worker_cpu_seconds\": %.3f, \"aggregator_cpu_seconds\": %.3f, \"pushes\": %d}\n",
      static_cast<long long>(floats * 4), JsonList(tcp).c_str(),
      JsonList(result->push_seconds).c_str(), worker_cpu, aggregator_cpu,
      repeats + absl::GetFlag(FLAGS_warmup));
  return 0;
}

int Workers() {
  const int n = absl::GetFlag(FLAGS_workers);
  const std::string address = absl::GetFlag(FLAGS_aggregator);
  if (address.empty() || n <= 0) ExitWithUsageError("--aggregator and --workers >= 1 needed");
  const ClientCredentials credentials = ClientCredentialsOrDie(SecurityOrDie(/*own_token=*/false));
  std::vector<std::string> ids(n);
  std::vector<absl::StatusOr<SyntheticWorkerResult>> results(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    ids[i] = absl::StrCat(absl::GetFlag(FLAGS_id_prefix), i);
    threads.emplace_back([&, i] {
      std::unique_ptr<AggregatorClient> client = CreateGrpcAggregatorClient(
          address, ids[i], absl::GetFlag(FLAGS_chunk_bytes), credentials);
      SyntheticWorkerOptions options;
      options.id = ids[i];
      options.rounds = absl::GetFlag(FLAGS_repeats);
      options.warmup = absl::GetFlag(FLAGS_warmup);
      results[i] = RunSyntheticWorker(client.get(), options);
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<std::string> json;
  for (int i = 0; i < n; ++i) {
    if (!results[i].ok()) Fail(results[i].status());
    json.push_back(WorkerJson(ids[i], *results[i]));
  }
  std::printf("{\"workers\": [%s]}\n", absl::StrJoin(json, ", ").c_str());
  return 0;
}

}  // namespace
}  // namespace hips::bench

int main(int argc, char** argv) {
  hips::InitProcess(argc, argv,
                    {"hips-bench-net",
                     "what bench/run measures the network with",
                     {{"",
                       "hips-bench-net --role=tcp|push|workers [flags]",
                       "One side of a benchmark of bench/run (bench/README.md).",
                       {},
                       {"*"}}}});
  const std::string role = absl::GetFlag(FLAGS_role);
  if (role == "tcp") {
    const int64_t bytes = absl::GetFlag(FLAGS_floats) * 4;
    std::printf(
        "{\"bytes\": %lld, \"tcp_seconds\": %s}\n", static_cast<long long>(bytes),
        hips::bench::JsonList(hips::bench::TcpSecondsOrDie(bytes, absl::GetFlag(FLAGS_repeats)))
            .c_str());
    return 0;
  }
  if (role == "push") return hips::bench::Push();
  if (role == "workers") return hips::bench::Workers();
  hips::ExitWithUsageError("--role must be tcp, push or workers");
}
