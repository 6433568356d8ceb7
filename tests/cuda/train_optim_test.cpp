// The loss and optimizer kernels (backend/cuda/train_optim.h) against plain host loops:
// cross entropy over fp32 and bf16 logits (bf16 also in place, dlogits over the logits), with
// ignored rows and a vocabulary that is not a multiple of the block; the gradient sum of squares;
// AdamW with decay on a prefix, clipping, and counts that are not multiples of 4 (the vectorised
// kernel's tail); the fixed-order partial sums (partials.h) and the grouped embedding backward.
// Outputs poisoned with 0xff bytes (NaN) first. Skips cleanly without a CUDA build or a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cuda_test_util.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/memory.h"
#include "backend/cuda/partials.h"
#include "backend/cuda/train_ops.h"
#include "backend/cuda/train_optim.h"
#include "core/dtype.h"
#endif

namespace vila {
namespace {

#ifdef VILA_WITH_CUDA

using testing::download;
using testing::poisoned;
using testing::upload;

// Host cross entropy in double over the logits as the kernel sees them (bf16-rounded or not).
void host_cross_entropy(const std::vector<float>& z, const std::vector<int32_t>& y, int64_t rows,
                        int64_t vocab, float scale, std::vector<float>* dz,
                        std::vector<float>* loss) {
  dz->assign(static_cast<size_t>(rows * vocab), 0.0f);
  loss->assign(static_cast<size_t>(rows), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    if (y[r] == cuda::kTrainIgnoreIndex) continue;
    const float* zr = z.data() + r * vocab;
    double mx = -INFINITY, sum = 0.0;
    for (int64_t j = 0; j < vocab; ++j) mx = std::max(mx, static_cast<double>(zr[j]));
    for (int64_t j = 0; j < vocab; ++j) sum += std::exp(zr[j] - mx);
    (*loss)[r] = static_cast<float>(mx + std::log(sum) - zr[y[r]]);
    for (int64_t j = 0; j < vocab; ++j) {
      const double p = std::exp(zr[j] - mx) / sum;
      (*dz)[r * vocab + j] = static_cast<float>(scale * (p - (j == y[r] ? 1.0 : 0.0)));
    }
  }
}

void check_cross_entropy(DType dtype, bool in_place) {
  constexpr int64_t kRows = 7, kVocab = 1003;
  constexpr float kScale = 1.0f / 5.0f;
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> z(kRows * kVocab);
  for (float& x : z) x = dist(rng);
  std::vector<uint16_t> z16(z.size());
  if (dtype == DType::kBF16) {
    for (size_t i = 0; i < z.size(); ++i) z16[i] = f32_to_bf16(z[i]), z[i] = bf16_to_f32(z16[i]);
  }
  std::vector<int32_t> y = {5, cuda::kTrainIgnoreIndex, 0, 1002, 77, cuda::kTrainIgnoreIndex, 500};
  cuda::DeviceBuffer zd = dtype == DType::kBF16 ? upload(z16) : upload(z);
  cuda::DeviceBuffer yd = upload(y);
  cuda::DeviceBuffer dzd = in_place ? cuda::DeviceBuffer() : poisoned(z.size() * 2);
  cuda::DeviceBuffer lossd = poisoned(kRows * sizeof(float));
  void* dz = in_place ? zd.data() : dzd.data();
  ASSERT_TRUE(cuda::train_cross_entropy(dz, lossd.as<float>(), zd.data(), dtype, yd.as<int32_t>(),
                                        kRows, kVocab, kScale, nullptr)
                  .ok());
  std::vector<float> ref_dz, ref_loss;
  host_cross_entropy(z, y, kRows, kVocab, kScale, &ref_dz, &ref_loss);
  const std::vector<uint16_t> got_dz =
      download<uint16_t>(in_place ? zd : dzd, static_cast<size_t>(kRows * kVocab));
  const std::vector<float> got_loss = download<float>(lossd, kRows);
  for (int64_t r = 0; r < kRows; ++r) {
    EXPECT_NEAR(got_loss[r], ref_loss[r], 1e-4 * std::max(1.0f, std::fabs(ref_loss[r])))
        << "row " << r;
  }
  for (size_t i = 0; i < ref_dz.size(); ++i) {
    const float got = bf16_to_f32(got_dz[i]);
    ASSERT_NEAR(got, ref_dz[i], 1e-2 * std::fabs(ref_dz[i]) + 1e-7) << "element " << i;
  }
}

TEST(TrainOptimCuda, CrossEntropyF32Logits) {
  VILA_SKIP_WITHOUT_GPU();
  check_cross_entropy(DType::kF32, false);
}

TEST(TrainOptimCuda, CrossEntropyBf16Logits) {
  VILA_SKIP_WITHOUT_GPU();
  check_cross_entropy(DType::kBF16, false);
}

TEST(TrainOptimCuda, CrossEntropyBf16InPlace) {
  VILA_SKIP_WITHOUT_GPU();
  check_cross_entropy(DType::kBF16, true);
}

TEST(TrainOptimCuda, CrossEntropyRejectsF32InPlace) {
  VILA_SKIP_WITHOUT_GPU();
  cuda::DeviceBuffer z = poisoned(64 * 4), y = poisoned(4), loss = poisoned(4);
  const Status s = cuda::train_cross_entropy(z.data(), loss.as<float>(), z.data(), DType::kF32,
                                             y.as<int32_t>(), 1, 64, 1.0f, nullptr);
  EXPECT_FALSE(s.ok());
}

// PyTorch's AdamW (train/optimizer.h's order) on the host in float, clipping folded in.
void host_adamw(std::vector<float>& p, std::vector<float>& m, std::vector<float>& v,
                const std::vector<float>& g, int64_t n_decay, const cuda::AdamWStep& st,
                double sumsq) {
  float clip = 1.0f;
  if (st.max_norm > 0.0) {
    const double scale = st.max_norm / (std::sqrt(sumsq) + 1e-6);
    if (scale < 1.0) clip = static_cast<float>(scale);
  }
  const double t = static_cast<double>(st.step);
  const auto decay_mul = static_cast<float>(1.0 - st.lr * st.weight_decay);
  const auto bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(st.beta2, t)));
  const auto neg_step = static_cast<float>(-st.lr / (1.0 - std::pow(st.beta1, t)));
  for (size_t i = 0; i < p.size(); ++i) {
    const float gi = clip < 1.0f ? g[i] * clip : g[i];
    if (static_cast<int64_t>(i) < n_decay) p[i] *= decay_mul;
    m[i] = std::fma(static_cast<float>(1.0 - st.beta1), gi - m[i], m[i]);
    v[i] = v[i] * static_cast<float>(st.beta2) + (static_cast<float>(1.0 - st.beta2) * gi) * gi;
    const float denom = std::sqrt(v[i]) / bc2_sqrt + static_cast<float>(st.eps);
    p[i] = p[i] + (neg_step * m[i]) / denom;
  }
}

TEST(TrainOptimCuda, AdamWAndSumSqMatchHostWithTails) {
  VILA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(12);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{4099}, int64_t{100003}}) {
    std::vector<float> p(n), g(n), m(n), v(n);
    for (int64_t i = 0; i < n; ++i) {
      p[i] = dist(rng), g[i] = dist(rng), m[i] = 0.1f * dist(rng);
      v[i] = 0.01f * std::fabs(dist(rng));
    }
    const int64_t n_decay = n / 3 + 1;  // not a multiple of 4
    double sumsq_ref = 0.0;
    for (const float x : g) sumsq_ref += static_cast<double>(x) * x;
    cuda::DeviceBuffer pd = upload(p), gd = upload(g), md = upload(m), vd = upload(v);
    cuda::DeviceBuffer p16 = poisoned(static_cast<size_t>(n) * 2);
    cuda::DeviceBuffer sumsq = upload(std::vector<double>{0.0});
    ASSERT_TRUE(cuda::train_grad_sumsq(sumsq.as<double>(), gd.as<float>(), n, nullptr).ok());
    const double sumsq_got = download<double>(sumsq, 1)[0];
    EXPECT_NEAR(sumsq_got, sumsq_ref, 1e-5 * sumsq_ref) << "n " << n;
    cuda::AdamWStep st;
    st.lr = 1e-3, st.weight_decay = 0.1, st.step = 3;
    st.max_norm = 0.5 * std::sqrt(sumsq_ref);  // clips
    st.sumsq = sumsq.as<double>();
    ASSERT_TRUE(cuda::train_adamw(pd.as<float>(), p16.data(), gd.as<float>(), md.as<float>(),
                                  vd.as<float>(), n, n_decay, st, nullptr)
                    .ok());
    host_adamw(p, m, v, g, n_decay, st, sumsq_got);
    const std::vector<float> pg = download<float>(pd, n), mg = download<float>(md, n),
                             vg = download<float>(vd, n);
    const std::vector<uint16_t> p16g = download<uint16_t>(p16, n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(pg[i], p[i], 1e-6f * std::max(1.0f, std::fabs(p[i]))) << "n " << n << " i " << i;
      ASSERT_NEAR(mg[i], m[i], 1e-6f * std::max(1.0f, std::fabs(m[i]))) << "i " << i;
      ASSERT_NEAR(vg[i], v[i], 1e-6f * std::max(1.0f, std::fabs(v[i]))) << "i " << i;
      ASSERT_EQ(p16g[i], f32_to_bf16(pg[i])) << "i " << i;
    }
  }
}

TEST(TrainOptimCuda, AdamWRejectsMisalignedBuffers) {
  VILA_SKIP_WITHOUT_GPU();
  cuda::DeviceBuffer b = poisoned(64 * 4), b16 = poisoned(64 * 2);
  cuda::AdamWStep st;
  st.lr = 1e-3;
  const Status s = cuda::train_adamw(b.as<float>() + 1, b16.data(), b.as<float>(), b.as<float>(),
                                     b.as<float>(), 8, 0, st, nullptr);
  EXPECT_FALSE(s.ok());
}

// partials.h: the fixed-order sum of per-block partials, against a double host sum, and bitwise
// the same on a second call (what makes the training step reproducible).
TEST(TrainOptimCuda, AddPartialsIsExactlyRepeatable) {
  VILA_SKIP_WITHOUT_GPU();
  constexpr int64_t kGroups = 1001, kN = 77;
  std::mt19937 rng(13);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> parts(kGroups * kN), base(kN);
  for (float& x : parts) x = dist(rng);
  for (float& x : base) x = dist(rng);
  cuda::DeviceBuffer pd = upload(parts), o1 = upload(base), o2 = upload(base);
  ASSERT_TRUE(cuda::add_partials(o1.as<float>(), pd.as<float>(), kGroups, kN, true, nullptr).ok());
  ASSERT_TRUE(cuda::add_partials(o2.as<float>(), pd.as<float>(), kGroups, kN, true, nullptr).ok());
  const std::vector<float> r1 = download<float>(o1, kN), r2 = download<float>(o2, kN);
  for (int64_t c = 0; c < kN; ++c) {
    double ref = base[c];
    for (int64_t g = 0; g < kGroups; ++g) ref += parts[g * kN + c];
    EXPECT_NEAR(r1[c], ref, 1e-4) << "column " << c;
    EXPECT_EQ(r1[c], r2[c]) << "column " << c;
  }
  EXPECT_FALSE(cuda::add_partials(o1.as<float>(), pd.as<float>(), 0, kN, true, nullptr).ok());
}

// The embedding backward's row groups (host) and the grouped scatter (device) against a host sum.
TEST(TrainOptimCuda, EmbeddingBackwardByGroups) {
  VILA_SKIP_WITHOUT_GPU();
  const std::vector<int32_t> ids = {3, 1, 3, 0, 1, 3};
  cuda::EmbeddingGroups groups;
  cuda::embedding_groups(ids.data(), static_cast<int64_t>(ids.size()), &groups);
  EXPECT_EQ(groups.order, (std::vector<int32_t>{3, 1, 4, 0, 2, 5}));
  EXPECT_EQ(groups.seg_start, (std::vector<int32_t>{0, 1, 3, 6}));
  EXPECT_EQ(groups.seg_id, (std::vector<int32_t>{0, 1, 3}));
  constexpr int64_t kVocab = 5, kCols = 7;
  const auto rows = static_cast<int64_t>(ids.size());
  std::mt19937 rng(14);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> dx(rows * kCols), table(kVocab * kCols);
  for (float& x : dx) x = dist(rng);
  for (float& x : table) x = dist(rng);
  std::vector<float> ref = table;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < kCols; ++c) ref[ids[r] * kCols + c] += dx[r * kCols + c];
  }
  cuda::DeviceBuffer td = upload(table), dxd = upload(dx), od = upload(groups.order),
                     sd = upload(groups.seg_start), idd = upload(groups.seg_id);
  ASSERT_TRUE(cuda::train_embedding_backward(
                  td.as<float>(), dxd.as<float>(), od.as<int32_t>(), sd.as<int32_t>(),
                  idd.as<int32_t>(), static_cast<int64_t>(groups.seg_id.size()), kCols, nullptr)
                  .ok());
  const std::vector<float> got = download<float>(td, table.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], ref[i], 1e-5) << "element " << i;
}

#else
TEST(TrainOptimCuda, SkippedWithoutCuda) { GTEST_SKIP() << "no CUDA build"; }
#endif

}  // namespace
}  // namespace vila
