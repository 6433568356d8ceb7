#include "data/sample_order.h"

#include "data/random.h"

namespace vila::data {

namespace {

using nlohmann::json;

StatusOr<uint64_t> get_u64(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer() ||
      (!it->is_number_unsigned() && it->get<int64_t>() < 0)) {
    return invalid_argument(where + ": field '" + key + "' missing or not a non-negative integer");
  }
  return it->get<uint64_t>();
}

}  // namespace

json LoaderState::to_json() const {
  return {{"seed", seed},
          {"epoch", epoch},
          {"position", position},
          {"dataset_size", dataset_size},
          {"shuffle", shuffle}};
}

StatusOr<LoaderState> LoaderState::from_json(const json& j, const std::string& where) {
  if (!j.is_object()) return invalid_argument(where + ": the loader state must be an object");
  LoaderState s;
  VILA_ASSIGN_OR_RETURN(s.seed, get_u64(j, "seed", where));
  VILA_ASSIGN_OR_RETURN(s.epoch, get_u64(j, "epoch", where));
  VILA_ASSIGN_OR_RETURN(s.position, get_u64(j, "position", where));
  VILA_ASSIGN_OR_RETURN(s.dataset_size, get_u64(j, "dataset_size", where));
  auto sh = j.find("shuffle");
  if (sh != j.end()) {
    if (!sh->is_boolean()) return invalid_argument(where + ": field 'shuffle' must be a bool");
    s.shuffle = sh->get<bool>();
  }
  return s;
}

StatusOr<SampleOrder> SampleOrder::create(size_t dataset_size, uint64_t seed, bool shuffle) {
  if (dataset_size == 0) return invalid_argument("sample order: the dataset is empty");
  SampleOrder order;
  order.state_.seed = seed;
  order.state_.dataset_size = dataset_size;
  order.state_.shuffle = shuffle;
  order.build_permutation();
  return order;
}

StatusOr<SampleOrder> SampleOrder::restore(const LoaderState& state, size_t dataset_size) {
  if (dataset_size == 0) return invalid_argument("sample order: the dataset is empty");
  if (state.dataset_size != dataset_size) {
    return invalid_argument("sample order: the saved state is for " +
                            std::to_string(state.dataset_size) + " samples but the dataset has " +
                            std::to_string(dataset_size) + "; the data changed since the save");
  }
  if (state.position > state.dataset_size) {
    return invalid_argument("sample order: saved position " + std::to_string(state.position) +
                            " is past the dataset size " + std::to_string(state.dataset_size));
  }
  SampleOrder order;
  order.state_ = state;
  order.build_permutation();
  return order;
}

void SampleOrder::build_permutation() {
  permutation_.resize(state_.dataset_size);
  for (size_t i = 0; i < permutation_.size(); ++i) permutation_[i] = i;
  if (state_.shuffle) {
    DataRng rng(derive_seed(state_.seed, state_.epoch));
    rng.shuffle(permutation_);
  }
}

size_t SampleOrder::next() {
  if (state_.position >= permutation_.size()) {
    ++state_.epoch;
    state_.position = 0;
    build_permutation();
  }
  return permutation_[state_.position++];
}

}  // namespace vila::data
