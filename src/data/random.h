// A small deterministic random generator for the data layer: the same seed gives the same
// stream on every platform and standard library (std::shuffle and the std distributions are
// implementation-defined, so they are not used).
//
// SplitMix64 (Steele, Lea, Flood 2014): state += 0x9E3779B97F4A7C15, then an invertible mix of
// the state. below(n) is Lemire's unbiased multiply-shift with rejection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace vila::data {

class DataRng {
 public:
  explicit DataRng(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += kGamma);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n); n must be > 0.
  uint64_t below(uint64_t n) {
    __uint128_t m = static_cast<__uint128_t>(next()) * n;
    auto low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<__uint128_t>(next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

  // True with probability 1/2.
  bool coin() { return (next() >> 63) != 0; }

  // Fisher-Yates, last element first.
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) {
      const size_t j = static_cast<size_t>(below(i));
      std::swap(v[i - 1], v[j]);
    }
  }

 private:
  static constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ULL;
  uint64_t state_;
};

// A seed derived from a base seed and a stream number (one stream per epoch, per task, ...).
inline uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  DataRng rng(seed ^ (stream * 0xD1B54A32D192ED03ULL));
  return rng.next();
}

}  // namespace vila::data
