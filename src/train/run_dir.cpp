#include "train/run_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/mapped_file.h"

namespace vila::train {

namespace fs = std::filesystem;

namespace {
constexpr const char* kLatest = "latest";
constexpr const char* kModelLink = "model";
constexpr const char* kPrefix = "checkpoint-";

std::string errno_text() { return std::strerror(errno); }

bool is_checkpoint_name(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0 || name.size() == std::strlen(kPrefix)) return false;
  return std::all_of(name.begin() + static_cast<long>(std::strlen(kPrefix)), name.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

// Every file under `dir` and the folders themselves, deepest first.
Status fsync_tree(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> paths;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    paths.push_back(it->path().string());
  }
  if (ec) return data_loss(dir + ": cannot list: " + ec.message());
  std::reverse(paths.begin(), paths.end());
  paths.push_back(dir);
  for (const std::string& p : paths) VILA_RETURN_IF_ERROR(fsync_path(p));
  return ok_status();
}
}  // namespace

std::string checkpoint_name(int64_t step) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%s%06lld", kPrefix, static_cast<long long>(step));
  return buf;
}

Status fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return data_loss(path + ": cannot open for fsync: " + errno_text());
  const int rc = ::fsync(fd);
  const std::string err = rc != 0 ? errno_text() : "";
  ::close(fd);
  if (rc != 0) return data_loss(path + ": fsync failed: " + err);
  return ok_status();
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && is_checkpoint_name(name)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());  // zero-padded steps sort numerically
  std::vector<std::string> out;
  for (const std::string& n : names) out.push_back((fs::path(run_dir) / n).string());
  return out;
}

StatusOr<std::string> latest_checkpoint(const std::string& run_dir) {
  const fs::path latest = fs::path(run_dir) / kLatest;
  std::ifstream in(latest);
  if (!in) return not_found(run_dir + ": no checkpoint yet (no 'latest' file)");
  std::string name;
  std::getline(in, name);
  if (!is_checkpoint_name(name)) {
    return data_loss(latest.string() + ": does not name a checkpoint folder ('" + name + "')");
  }
  const fs::path dir = fs::path(run_dir) / name;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return data_loss(latest.string() + ": names " + name + ", which is missing");
  }
  return dir.string();
}

StatusOr<std::string> commit_checkpoint(
    const std::string& run_dir, int64_t step, int keep,
    const std::function<Status(const std::string&)>& write_contents) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) return data_loss(run_dir + ": cannot create the run folder: " + ec.message());
  // Leftovers of an interrupted commit (ours or a crashed process's).
  for (const auto& e : fs::directory_iterator(run_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(std::string(".") + kPrefix, 0) == 0) fs::remove_all(e.path(), ec);
  }
  const std::string name = checkpoint_name(step);
  const fs::path final_dir = fs::path(run_dir) / name;
  const fs::path tmp_dir = fs::path(run_dir) / ("." + name + ".tmp-" + std::to_string(::getpid()));
  fs::create_directories(tmp_dir, ec);
  if (ec) return data_loss(tmp_dir.string() + ": cannot create: " + ec.message());
  Status written = write_contents(tmp_dir.string());
  if (written.ok()) written = fsync_tree(tmp_dir.string());
  if (!written.ok()) {
    fs::remove_all(tmp_dir, ec);
    return written;
  }
  // A folder of the same step (a run resumed from an earlier step) is replaced: move it aside
  // first so that the rename cannot fail on a non-empty target.
  if (fs::exists(final_dir, ec)) {
    const fs::path old = fs::path(run_dir) / ("." + name + ".old-" + std::to_string(::getpid()));
    fs::rename(final_dir, old, ec);
    if (ec) return data_loss(final_dir.string() + ": cannot move aside: " + ec.message());
  }
  fs::rename(tmp_dir, final_dir, ec);
  if (ec) return data_loss(final_dir.string() + ": rename failed: " + ec.message());
  VILA_RETURN_IF_ERROR(fsync_path(run_dir));
  const std::string latest = name + "\n";
  VILA_RETURN_IF_ERROR(
      write_file_atomic((fs::path(run_dir) / kLatest).string(), latest.data(), latest.size()));
  VILA_RETURN_IF_ERROR(fsync_path(run_dir));
  // model -> checkpoint-N, replaced atomically through a temp link.
  const fs::path link = fs::path(run_dir) / kModelLink;
  const fs::path tmp_link = fs::path(run_dir) / (std::string(".") + kModelLink + ".tmp");
  fs::remove(tmp_link, ec);
  fs::create_directory_symlink(name, tmp_link, ec);
  if (!ec) fs::rename(tmp_link, link, ec);
  if (ec) return data_loss(link.string() + ": cannot update the model link: " + ec.message());
  // Prune: keep the newest `keep`, never the one just committed.
  std::vector<std::string> all = list_checkpoints(run_dir);
  const size_t n_keep = static_cast<size_t>(std::max(keep, 1));
  for (size_t i = 0; i + n_keep < all.size(); ++i) {
    if (fs::path(all[i]).filename() != name) fs::remove_all(all[i], ec);
  }
  for (const auto& e : fs::directory_iterator(run_dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(std::string(".") + kPrefix, 0) == 0) fs::remove_all(e.path(), ec);
  }
  return final_dir.string();
}

}  // namespace vila::train
