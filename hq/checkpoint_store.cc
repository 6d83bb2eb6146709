#include "hq/checkpoint_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"

namespace hips {
namespace {

namespace fs = std::filesystem;

constexpr absl::string_view kPrefix = "checkpoint-";
constexpr absl::string_view kSuffix = ".pt";
constexpr absl::string_view kTemporarySuffix = ".pt.tmp";
constexpr size_t kVersionDigits = 12;

// The version in a checkpoint file name, nullopt for any other name.
std::optional<int64_t> ParseVersion(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, kPrefix) || !absl::ConsumeSuffix(&name, kSuffix) ||
      name.size() < kVersionDigits ||
      !std::all_of(name.begin(), name.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    return std::nullopt;
  }
  int64_t version;
  if (!absl::SimpleAtoi(name, &version)) return std::nullopt;
  return version;
}

bool IsTemporary(absl::string_view name) {
  return absl::StartsWith(name, kPrefix) && absl::EndsWith(name, kTemporarySuffix);
}

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return absl::ErrnoToStatus(errno, absl::StrCat(what, " ", path));
}

// Writes all of `data` (write(2) may write less than asked, or be interrupted).
absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("cannot write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Writes `data` to a new file `path` and makes it durable.
absl::Status WriteDurably(const std::string& path, absl::string_view data) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create", path);
  absl::Status status = WriteAll(fd, data, path);
  if (status.ok() && fsync(fd) != 0) status = ErrnoError("cannot fsync", path);
  if (close(fd) != 0 && status.ok()) status = ErrnoError("cannot close", path);
  return status;
}

// Makes a rename inside `dir` durable.
absl::Status SyncDirectory(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open directory", dir);
  absl::Status status;
  if (fsync(fd) != 0) status = ErrnoError("cannot fsync directory", dir);
  close(fd);
  return status;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path);
  std::string data;
  absl::Status status;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    status = ErrnoError("cannot stat", path);
  } else {
    data.resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = read(fd, data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = ErrnoError("cannot read", path);
        break;
      }
      if (n == 0) break;  // the file shrank while we read it
      done += static_cast<size_t>(n);
    }
    data.resize(done);
  }
  close(fd);
  if (!status.ok()) return status;
  return data;
}

}  // namespace

absl::Status ValidateCheckpointStoreOptions(const CheckpointStoreOptions& o) {
  if (o.dir.empty()) return absl::InvalidArgumentError("the checkpoint directory is empty");
  if (o.keep < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoints to keep must be >= 1, got ", o.keep));
  }
  return absl::OkStatus();
}

CheckpointStore::CheckpointStore(CheckpointStoreOptions options, CheckpointEncoder encode,
                                 CheckpointDecoder decode)
    : options_(std::move(options)), encode_(std::move(encode)), decode_(std::move(decode)) {}

std::string CheckpointStore::FileName(int64_t version) {
  std::string digits = absl::StrCat(version);
  if (digits.size() < kVersionDigits) digits.insert(0, kVersionDigits - digits.size(), '0');
  return absl::StrCat(kPrefix, digits, kSuffix);
}

absl::StatusOr<std::string> CheckpointStore::Write(const Checkpoint& checkpoint) {
  if (absl::Status s = ValidateCheckpointStoreOptions(options_); !s.ok()) return s;
  if (checkpoint.version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint of negative version ", checkpoint.version));
  }
  absl::StatusOr<std::string> bytes = encode_(checkpoint);
  if (!bytes.ok()) return bytes.status();

  std::error_code ec;
  fs::create_directories(options_.dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create checkpoint directory ", options_.dir, ": ", ec.message()));
  }
  const std::string path = (fs::path(options_.dir) / FileName(checkpoint.version)).string();
  const std::string temporary = absl::StrCat(path, ".tmp");
  // Only a complete, synced file ever carries a checkpoint name.
  absl::Status status = WriteDurably(temporary, *bytes);
  if (status.ok() && rename(temporary.c_str(), path.c_str()) != 0) {
    status = ErrnoError("cannot rename to", path);
  }
  if (!status.ok()) {
    unlink(temporary.c_str());
    return status;
  }
  if (absl::Status s = SyncDirectory(options_.dir); !s.ok()) return s;

  const std::vector<std::string> paths = List();
  for (size_t i = static_cast<size_t>(options_.keep); i < paths.size(); ++i) {
    if (paths[i] == path) continue;  // an older version written after newer ones
    if (!fs::remove(paths[i], ec) && ec) {
      LOG(WARNING) << "Cannot delete old checkpoint " << paths[i] << ": " << ec.message();
    }
  }
  RemoveTemporaryFiles();
  return path;
}

absl::StatusOr<Checkpoint> CheckpointStore::LoadNewest(std::vector<std::string>* rejected) {
  std::error_code ec;
  const fs::file_status dir_status = fs::status(options_.dir, ec);
  if (options_.dir.empty() || !fs::exists(dir_status)) {
    return absl::NotFoundError(absl::StrCat("no checkpoint directory '", options_.dir, "'"));
  }
  if (!fs::is_directory(dir_status)) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint directory ", options_.dir, " is not a directory"));
  }
  RemoveTemporaryFiles();
  const std::vector<std::string> paths = List();
  if (paths.empty()) return absl::NotFoundError(absl::StrCat("no checkpoint in ", options_.dir));

  absl::Status newest_error;
  for (const std::string& path : paths) {
    absl::StatusOr<Checkpoint> checkpoint = [&]() -> absl::StatusOr<Checkpoint> {
      absl::StatusOr<std::string> bytes = ReadFile(path);
      if (!bytes.ok()) return bytes.status();
      absl::StatusOr<Checkpoint> decoded = decode_(*bytes);
      if (!decoded.ok()) return decoded.status();
      const std::optional<int64_t> named = ParseVersion(fs::path(path).filename().string());
      if (decoded->version != named) {
        return absl::DataLossError(
            absl::StrCat("the file holds version ", decoded->version, ", not its name's"));
      }
      return decoded;
    }();
    if (checkpoint.ok()) return checkpoint;
    LOG(WARNING) << "Skipping checkpoint " << path << ": " << checkpoint.status();
    if (rejected != nullptr) rejected->push_back(path);
    if (newest_error.ok()) newest_error = checkpoint.status();
  }
  return absl::NotFoundError(absl::StrCat("none of the ", paths.size(), " checkpoints in ",
                                          options_.dir, " is valid (all rejected; the newest, ",
                                          paths.front(), ": ", newest_error.ToString(), ")"));
}

std::vector<std::string> CheckpointStore::List() const {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (fs::directory_iterator it(options_.dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::optional<int64_t> version = ParseVersion(it->path().filename().string());
    if (version.has_value() && it->is_regular_file(ec)) {
      found.emplace_back(*version, it->path().string());
    }
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a > b; });
  std::vector<std::string> paths;
  paths.reserve(found.size());
  for (auto& [version, path] : found) paths.push_back(std::move(path));
  return paths;
}

// A temporary file is what a crash between create and rename leaves; its
// checkpoint was never complete, so it is garbage.
void CheckpointStore::RemoveTemporaryFiles() const {
  std::vector<fs::path> temporary;
  std::error_code ec;
  for (fs::directory_iterator it(options_.dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (IsTemporary(it->path().filename().string())) temporary.push_back(it->path());
  }
  for (const fs::path& path : temporary) {
    if (fs::remove(path, ec)) LOG(WARNING) << "Removed unfinished checkpoint " << path.string();
  }
}

}  // namespace hips
