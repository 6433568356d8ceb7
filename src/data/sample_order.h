// Deterministic, resumable order over a dataset of n samples.
//
// Epoch e visits every sample once, in the permutation given by a Fisher-Yates shuffle of
// 0..n-1 driven by DataRng(derive_seed(seed, e)) (data/random.h): a fresh order every epoch, the
// same on every machine. The cursor (seed, epoch, position) is a LoaderState that serialises to
// JSON and goes into the training checkpoint; restoring it continues with exactly the sample that
// would have come next.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"

namespace vila::data {

struct LoaderState {
  uint64_t seed = 0;
  uint64_t epoch = 0;
  uint64_t position = 0;      // samples of this epoch already handed out
  uint64_t dataset_size = 0;  // checked on restore: the order is only valid for the same data
  bool shuffle = true;        // false: every epoch is 0, 1, ..., n-1

  // {"seed": s, "epoch": e, "position": p, "dataset_size": n, "shuffle": true}
  nlohmann::json to_json() const;
  // InvalidArgument naming `where` and the field on a missing or mistyped field.
  static StatusOr<LoaderState> from_json(const nlohmann::json& j, const std::string& where);
  bool operator==(const LoaderState& o) const = default;
};

class SampleOrder {
 public:
  // InvalidArgument for an empty dataset.
  static StatusOr<SampleOrder> create(size_t dataset_size, uint64_t seed, bool shuffle = true);
  // Resumes from a saved state over a dataset of `dataset_size` samples; InvalidArgument if the
  // state was saved for another size or its position is past the end of the epoch.
  static StatusOr<SampleOrder> restore(const LoaderState& state, size_t dataset_size);

  // The index of the next sample; after the last sample of an epoch the next epoch begins.
  size_t next();
  // The state after the samples handed out so far.
  LoaderState state() const { return state_; }
  uint64_t epoch() const { return state_.epoch; }
  size_t size() const { return permutation_.size(); }
  // This epoch's order.
  const std::vector<size_t>& permutation() const { return permutation_; }

 private:
  SampleOrder() = default;
  void build_permutation();

  LoaderState state_;
  std::vector<size_t> permutation_;
};

}  // namespace vila::data
