// Finite-difference gradient checking for the training ops.
//
// Recipe of every check: pick fp32 inputs, a random projection R of the op's output, and the
// scalar loss L = sum_i y_i R_i. The analytic gradients come from the fp32 backward fed with
// dy = R. The numeric ones come from central differences of L computed by a float64 reference
// forward written in the test (independent of the fp32 code), on the same input values:
//   dL/dx_i ≈ (L(x + h e_i) - L(x - h e_i)) / 2h,   h = kFdStep · max(1, |x_i|)
// In float64 that is accurate to ~1e-9, so the comparison measures the fp32 backward alone.
// gradients_match fails when max_i |analytic_i - numeric_i| > tol · max_i |numeric_i|; with
// VILA_GRADCHECK_VERBOSE set in the environment it prints every relative error.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace vila::train::testing {

constexpr double kFdStep = 1e-6;
// fp32 backward against float64 numeric: errors are ~1e-6 of the largest gradient; a wrong
// term is O(1). 1e-4 separates the two with margin both ways.
constexpr double kGradTol = 1e-4;

inline std::vector<float> random_vector(int64_t n, std::mt19937& rng, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

inline std::vector<double> to_f64(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// L = sum_i y_i r_i.
inline double project(const std::vector<double>& y, const std::vector<float>& r) {
  double s = 0.0;
  for (size_t i = 0; i < y.size(); ++i) s += y[i] * r[i];
  return s;
}

// Central differences of `loss` with respect to every element of `x` (perturbed in place and
// restored; `loss` reads x through its capture).
inline std::vector<double> numeric_gradient(std::vector<double>& x,
                                            const std::function<double()>& loss) {
  std::vector<double> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    const double h = kFdStep * std::max(1.0, std::abs(x0));
    x[i] = x0 + h;
    const double plus = loss();
    x[i] = x0 - h;
    const double minus = loss();
    x[i] = x0;
    grad[i] = (plus - minus) / (2.0 * h);
  }
  return grad;
}

// The same at a few elements only (large tensors): entry n of the result is dL/dx[indices[n]].
inline std::vector<double> numeric_gradient_at(std::vector<double>& x,
                                               const std::function<double()>& loss,
                                               const std::vector<size_t>& indices) {
  std::vector<double> grad(indices.size());
  for (size_t n = 0; n < indices.size(); ++n) {
    const size_t i = indices[n];
    const double x0 = x[i];
    const double h = kFdStep * std::max(1.0, std::abs(x0));
    x[i] = x0 + h;
    const double plus = loss();
    x[i] = x0 - h;
    const double minus = loss();
    x[i] = x0;
    grad[n] = (plus - minus) / (2.0 * h);
  }
  return grad;
}

// `count` distinct random indices below n, and the elements of v at them.
inline std::vector<size_t> sample_indices(size_t n, size_t count, std::mt19937& rng) {
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(std::min(n, count));
  return all;
}
inline std::vector<float> gather(const std::vector<float>& v, const std::vector<size_t>& idx) {
  std::vector<float> out(idx.size());
  for (size_t n = 0; n < idx.size(); ++n) out[n] = v[idx[n]];
  return out;
}

// Passes when max_i |a_i - n_i| <= tol · max_i |n_i| and the numeric gradient is not all zero
// (a check of nothing would pass any backward).
inline ::testing::AssertionResult gradients_match(const std::vector<float>& analytic,
                                                  const std::vector<double>& numeric,
                                                  double tol = kGradTol) {
  if (analytic.size() != numeric.size()) {
    return ::testing::AssertionFailure()
           << "sizes differ: " << analytic.size() << " vs " << numeric.size();
  }
  double scale = 0.0, worst = 0.0;
  size_t worst_i = 0;
  for (size_t i = 0; i < numeric.size(); ++i) scale = std::max(scale, std::abs(numeric[i]));
  if (!(scale > 0.0)) return ::testing::AssertionFailure() << "numeric gradient is all zero";
  for (size_t i = 0; i < numeric.size(); ++i) {
    const double err = std::abs(static_cast<double>(analytic[i]) - numeric[i]);
    if (std::isnan(err)) {
      return ::testing::AssertionFailure() << "NaN at element " << i << ": analytic " << analytic[i]
                                           << ", numeric " << numeric[i];
    }
    if (err > worst) {
      worst = err;
      worst_i = i;
    }
  }
  const double rel = worst / scale;
  if (std::getenv("VILA_GRADCHECK_VERBOSE") != nullptr) {
    std::printf("  gradcheck: relative error %.3g over %zu elements\n", rel, numeric.size());
  }
  if (rel <= tol) {
    return ::testing::AssertionSuccess() << "relative error " << rel;
  }
  return ::testing::AssertionFailure()
         << "relative error " << rel << " > " << tol << " at element " << worst_i << ": analytic "
         << analytic[worst_i] << ", numeric " << numeric[worst_i] << " (largest |numeric| " << scale
         << ")";
}

// max_i |a_i - b_i| for a forward comparison (NaN if any difference is NaN).
inline double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - b[i]);
    if (std::isnan(d)) return d;
    worst = std::max(worst, d);
  }
  return worst;
}

}  // namespace vila::train::testing
