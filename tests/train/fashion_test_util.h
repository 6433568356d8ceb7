// A synthetic Fashion-MNIST split for the training data tests (no dataset package needed).
#pragma once

#include <cstdint>
#include <random>

#include "data/fashion_mnist.h"

namespace vila::testing {

// `count` random 28 x 28 images, labels i % 10.
inline data::FashionSplit synthetic_split(int64_t count, uint32_t seed) {
  data::FashionSplit split;
  split.name = "synthetic";
  split.count = count;
  std::mt19937 rng(seed);
  split.pixels.resize(static_cast<size_t>(count) * data::kFashionSide * data::kFashionSide);
  for (uint8_t& p : split.pixels) p = static_cast<uint8_t>(rng() & 255);
  for (int64_t i = 0; i < count; ++i) {
    split.labels.push_back(static_cast<uint8_t>(i % data::kFashionClasses));
  }
  return split;
}

}  // namespace vila::testing
