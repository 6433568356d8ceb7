// Checkpoint: every tensor of a model folder, whether one model.safetensors, shards listed in
// model.safetensors.index.json, or (without either) all *.safetensors files in the folder.
#include <algorithm>
#include <filesystem>
#include <system_error>

#include "format/json_config.h"
#include "format/safetensors.h"

namespace vila {

namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

// A shard named by an index must stay inside the checkpoint folder.
bool is_safe_relative_path(const std::string& name) {
  if (name.empty() || name.front() == '/') return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string::npos) slash = name.size();
    const std::string_view part(name.data() + start, slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = slash + 1;
  }
  return true;
}

}  // namespace

Status Checkpoint::add_file(std::unique_ptr<SafetensorsFile> file) {
  for (const auto& [name, entry] : file->entries()) {
    auto [it, inserted] = entries_.emplace(name, &entry);
    if (!inserted) {
      return data_loss(dir_ + ": tensor '" + name + "' appears in both " + it->second->file +
                       " and " + entry.file);
    }
  }
  files_.push_back(std::move(file));
  return ok_status();
}

StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::open_file(const std::string& path) {
  VILA_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::open(path));
  auto checkpoint = std::unique_ptr<Checkpoint>(new Checkpoint());
  checkpoint->dir_ = path;
  VILA_RETURN_IF_ERROR(checkpoint->add_file(std::move(file)));
  return checkpoint;
}

StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::open_dir(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    if (!std::filesystem::exists(dir, ec)) return not_found(dir + ": no such folder");
    return invalid_argument(dir + ": not a folder");
  }
  const std::string index_path = path_join(dir, kIndexFile);
  if (file_exists(index_path)) return open_index(dir, index_path);

  auto checkpoint = std::unique_ptr<Checkpoint>(new Checkpoint());
  checkpoint->dir_ = dir;
  const std::string single = path_join(dir, kSingleFile);
  if (file_exists(single)) {
    VILA_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::open(single));
    VILA_RETURN_IF_ERROR(checkpoint->add_file(std::move(file)));
    return checkpoint;
  }

  // No index and no model.safetensors: take every *.safetensors file, in name order.
  std::vector<std::string> paths;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() > 12 && name.ends_with(".safetensors") && it->is_regular_file(ec)) {
      paths.push_back(path_join(dir, name));
    }
  }
  if (ec) return invalid_argument(dir + ": cannot list folder: " + ec.message());
  if (paths.empty()) {
    return not_found(dir + ": no " + kSingleFile + ", " + kIndexFile +
                     " or other *.safetensors file");
  }
  std::sort(paths.begin(), paths.end());
  for (const std::string& path : paths) {
    VILA_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::open(path));
    VILA_RETURN_IF_ERROR(checkpoint->add_file(std::move(file)));
  }
  return checkpoint;
}

StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::open_index(const std::string& dir,
                                                             const std::string& index_path) {
  StatusOr<JsonFile> loaded = load_json_file(index_path);
  if (!loaded.ok()) {
    if (loaded.status().code() != StatusCode::kInvalidArgument) return loaded.status();
    return data_loss(loaded.status().message());  // a malformed index is a corrupt checkpoint
  }
  const JsonFile& index = *loaded;
  if (!index.json.is_object() || !index.json.contains("weight_map")) {
    return data_loss(index_path + ": no 'weight_map' object");
  }
  const nlohmann::json& weight_map = index.json["weight_map"];
  if (!weight_map.is_object()) {
    return data_loss(index_path + ": 'weight_map' must be an object, got " +
                     std::string(weight_map.type_name()));
  }
  // Shard name -> tensors the index places there. std::map keeps shard opening order stable.
  std::map<std::string, std::vector<std::string>> shards;
  for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
    if (!it.value().is_string()) {
      return data_loss(index_path + ": weight_map entry for tensor '" + it.key() +
                       "' must be a file name, got " + std::string(it.value().type_name()));
    }
    const std::string& shard = it.value().get_ref<const std::string&>();
    if (!is_safe_relative_path(shard)) {
      return data_loss(index_path + ": tensor '" + it.key() + "' maps to shard '" + shard +
                       "', which is not a file inside " + dir);
    }
    shards[shard].push_back(it.key());
  }

  auto checkpoint = std::unique_ptr<Checkpoint>(new Checkpoint());
  checkpoint->dir_ = dir;
  for (const auto& [shard, names] : shards) {
    const std::string shard_path = path_join(dir, shard);
    StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::open(shard_path);
    if (!file.ok()) {
      if (file.status().code() == StatusCode::kNotFound) {
        return not_found(index_path + ": shard " + shard_path + " (holding tensor '" +
                         names.front() + "') does not exist");
      }
      return file.status();
    }
    for (const std::string& name : names) {
      if ((*file)->entries().count(name) == 0) {
        return not_found(index_path + ": tensor '" + name + "' is listed in " + shard +
                         " but missing from " + shard_path);
      }
    }
    VILA_RETURN_IF_ERROR(checkpoint->add_file(std::move(file).value()));
  }
  return checkpoint;
}

StatusOr<const SafetensorsEntry*> Checkpoint::get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return not_found(dir_ + ": missing tensor '" + name + "'");
  return it->second;
}

StatusOr<const SafetensorsEntry*> Checkpoint::get(const std::string& name,
                                                  const Shape& expected) const {
  VILA_ASSIGN_OR_RETURN(const SafetensorsEntry* entry, get(name));
  if (entry->shape != expected) {
    return invalid_argument(entry->file + ": tensor '" + name + "' has shape " +
                            entry->shape.to_string() + ", expected " + expected.to_string());
  }
  return entry;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;
}

int64_t Checkpoint::total_parameters() const {
  int64_t total = 0;
  for (const auto& [name, entry] : entries_) total += entry->shape.numel();
  return total;
}

}  // namespace vila
