// The fused attention kernels (backend/cuda/flash_attention.h) against the fp32 CPU oracles
// (cpu::attention_causal, cpu::attention_full) fed the same bf16 / f16-rounded q, k, v: paged
// prefill with shuffled pages and NaN-poisoned unused page rows, dense attention (causal or not),
// flash-decoding at many lengths, a captured CUDA graph replayed for new lengths, argument errors,
// and a timing printout (*Timing*). Outputs are poisoned with 0xff bytes (NaN) first. Skips
// cleanly where there is no CUDA build or no GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/attention_full.h"

#ifdef VILA_WITH_CUDA
#include <cuda_runtime.h>

#include "backend/cuda/device.h"
#include "backend/cuda/flash_attention.h"
#include "backend/cuda/kv_pages.h"
#include "backend/cuda/memory.h"
#endif

#include "cuda_test_util.h"

namespace vila {
namespace {

constexpr double kTolerance = 2e-2;     // bf16 output rounding (2^-8) plus P rounded to 16 bits
constexpr uint16_t kPoison16 = 0xffff;  // NaN in bf16 and f16

// max |got - ref| / (1 + |ref|), NaN counting as infinite.
[[maybe_unused]] double max_rel_error(const std::vector<float>& got,
                                      const std::vector<float>& ref) {
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = std::fabs(static_cast<double>(got[i]) - ref[i]) / (1.0 + std::fabs(ref[i]));
    if (!(e <= worst)) worst = std::isnan(e) ? INFINITY : e;
  }
  return worst;
}

// n random N(0, 1) values rounded to dtype: `bits` for the GPU, `values` (exact) for the CPU.
struct Rounded {
  std::vector<uint16_t> bits;
  std::vector<float> values;
};
[[maybe_unused]] Rounded random_rounded(std::mt19937& rng, int64_t n, DType dtype) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> raw(static_cast<size_t>(n));
  for (float& x : raw) x = dist(rng);
  Rounded r{std::vector<uint16_t>(raw.size()), std::vector<float>(raw.size())};
  EXPECT_TRUE(convert_from_f32(raw.data(), dtype, r.bits.data(), n).ok());
  EXPECT_TRUE(convert_to_f32(dtype, r.bits.data(), r.values.data(), n).ok());
  return r;
}

[[maybe_unused]] std::vector<float> to_f32(const std::vector<uint16_t>& bits, DType dtype) {
  std::vector<float> f(bits.size());
  EXPECT_TRUE(convert_to_f32(dtype, bits.data(), f.data(), static_cast<int64_t>(bits.size())).ok());
  return f;
}

// Reference for one sequence: q (t, h, d), k / v (s, hkv, d) as fp32 (rounded) values.
[[maybe_unused]] std::vector<float> reference(const std::vector<float>& q,
                                              const std::vector<float>& k,
                                              const std::vector<float>& v, int64_t t, int64_t s,
                                              int64_t h, int64_t hkv, int64_t d, bool causal,
                                              float scale) {
  std::vector<float> out(static_cast<size_t>(t * h * d));
  const TensorView out_view{out.data(), DType::kF32, {t, h, d}};
  const TensorView q_view{const_cast<float*>(q.data()), DType::kF32, {t, h, d}};
  if (causal) {
    EXPECT_TRUE(cpu::attention_causal(
                    out_view, q_view, {const_cast<float*>(k.data()), DType::kF32, {s, hkv, d}},
                    {const_cast<float*>(v.data()), DType::kF32, {s, hkv, d}}, s - t, scale)
                    .ok());
    return out;
  }
  // attention_full has no GQA: repeat every KV head over its group.
  std::vector<float> ke(static_cast<size_t>(s * h * d)), ve(ke.size());
  for (int64_t j = 0; j < s; ++j) {
    for (int64_t hh = 0; hh < h; ++hh) {
      const int64_t src = (j * hkv + hh / (h / hkv)) * d;
      std::copy_n(k.begin() + src, d, ke.begin() + (j * h + hh) * d);
      std::copy_n(v.begin() + src, d, ve.begin() + (j * h + hh) * d);
    }
  }
  EXPECT_TRUE(cpu::attention_full(out_view, q_view, {ke.data(), DType::kF32, {s, h, d}},
                                  {ve.data(), DType::kF32, {s, h, d}}, scale)
                  .ok());
  return out;
}

#ifdef VILA_WITH_CUDA
template <typename T>
cuda::DeviceBuffer upload(const std::vector<T>& host) {
  auto buf = cuda::DeviceBuffer::create(std::max<size_t>(host.size() * sizeof(T), 16));
  EXPECT_TRUE(buf.ok());
  EXPECT_TRUE(
      cuda::copy_to_device(buf->data(), host.data(), host.size() * sizeof(T), nullptr).ok());
  return std::move(*buf);
}

std::vector<uint16_t> download16(const cuda::DeviceBuffer& buf, size_t count) {
  std::vector<uint16_t> host(count);
  EXPECT_TRUE(cuda::copy_to_host(host.data(), buf.data(), count * 2, nullptr).ok());
  return host;
}

// A paged K/V pool holding the caches of several sequences in shuffled pages; every row that no
// sequence owns (tails of last pages, spare pages) is NaN, so a kernel that reads one fails.
struct PagedPool {
  cuda::DeviceBuffer k, v, table;
  int max_pages = 0;
};
PagedPool make_pool(std::mt19937& rng, const std::vector<std::vector<uint16_t>>& k_bits,
                    const std::vector<std::vector<uint16_t>>& v_bits,
                    const std::vector<int>& kv_len, int hkv, int d, int min_table_pages = 0) {
  const int kPage = cuda::kKvPageSize;
  const int kSpare = 3;
  PagedPool pool;
  pool.max_pages = min_table_pages;
  int total = kSpare;
  for (int len : kv_len) {
    pool.max_pages = std::max(pool.max_pages, (len + kPage - 1) / kPage + 1);
    total += (len + kPage - 1) / kPage;
  }
  std::vector<int32_t> ids(static_cast<size_t>(total));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  const size_t page_elems = static_cast<size_t>(hkv) * kPage * d;
  std::vector<uint16_t> k_pool(total * page_elems, kPoison16), v_pool(k_pool.size(), kPoison16);
  std::vector<int32_t> table(kv_len.size() * pool.max_pages, -1);  // unused entries: invalid
  int next = 0;
  for (size_t b = 0; b < kv_len.size(); ++b) {
    for (int p = 0; p * kPage < kv_len[b]; ++p) table[b * pool.max_pages + p] = ids[next++];
    for (int j = 0; j < kv_len[b]; ++j) {
      const int64_t page = table[b * pool.max_pages + j / kPage];
      for (int hh = 0; hh < hkv; ++hh) {
        const size_t dst = ((page * hkv + hh) * kPage + j % kPage) * d;
        const size_t src = (static_cast<size_t>(j) * hkv + hh) * d;
        std::copy_n(k_bits[b].begin() + src, d, k_pool.begin() + dst);
        std::copy_n(v_bits[b].begin() + src, d, v_pool.begin() + dst);
      }
    }
  }
  pool.k = upload(k_pool);
  pool.v = upload(v_pool);
  pool.table = upload(table);
  return pool;
}
#endif

#ifdef VILA_WITH_CUDA
// The forward kernel's name in messages.
const char* kernel_name(cuda::FlashKernel kernel) {
  return kernel == cuda::FlashKernel::kMma ? "mma" : "wgmma";
}
#endif

struct PrefillCase {
  std::vector<int> q_len, kv_len;
  int h, hkv, d;
  DType dtype;
};

TEST(FlashAttentionCuda, PagedPrefillMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(41);
  const DType kB = DType::kBF16, kH = DType::kF16;
  double worst = 0;
  for (const PrefillCase& cs :
       {PrefillCase{{77}, {77}, 4, 4, 64, kB},
        PrefillCase{{100, 1, 64}, {300, 65, 64}, 14, 2, 128, kB},
        PrefillCase{{130, 5}, {200, 1000}, 4, 2, 16, kH},
        PrefillCase{{33, 128}, {97, 128}, 6, 3, 96, kB}, PrefillCase{{200}, {263}, 2, 1, 72, kH},
        PrefillCase{{65, 7, 1}, {65, 70, 1}, 7, 1, 32, kB},
        PrefillCase{{700}, {700}, 4, 2, 128, kB}, PrefillCase{{400, 3}, {400, 200}, 7, 1, 128, kH},
        PrefillCase{{1, 190}, {129, 193}, 2, 2, 128, kB}}) {
    const int batch = static_cast<int>(cs.q_len.size());
    // q rows as in a fused QKV activation: stride (H + 2 Hkv) D, the tail poisoned.
    const int64_t q_stride = static_cast<int64_t>(cs.h + 2 * cs.hkv) * cs.d;
    const int64_t out_stride = static_cast<int64_t>(cs.h) * cs.d + 8;
    const int64_t row = static_cast<int64_t>(cs.h) * cs.d;
    std::vector<int32_t> q_start{0};
    for (int t : cs.q_len) q_start.push_back(q_start.back() + t);
    const int total_q = q_start.back();
    std::vector<uint16_t> q_host(total_q * q_stride, kPoison16);
    std::vector<Rounded> qs, ks, vs;
    std::vector<std::vector<uint16_t>> k_bits, v_bits;
    for (int b = 0; b < batch; ++b) {
      qs.push_back(random_rounded(rng, int64_t{cs.q_len[b]} * row, cs.dtype));
      ks.push_back(random_rounded(rng, int64_t{cs.kv_len[b]} * cs.hkv * cs.d, cs.dtype));
      vs.push_back(random_rounded(rng, int64_t{cs.kv_len[b]} * cs.hkv * cs.d, cs.dtype));
      k_bits.push_back(ks.back().bits);
      v_bits.push_back(vs.back().bits);
      for (int i = 0; i < cs.q_len[b]; ++i) {
        std::copy_n(qs[b].bits.begin() + i * row, row,
                    q_host.begin() + (q_start[b] + i) * q_stride);
      }
    }
    PagedPool pool = make_pool(rng, k_bits, v_bits, cs.kv_len, cs.hkv, cs.d);
    cuda::DeviceBuffer dq = upload(q_host), dstart = upload(q_start);
    cuda::DeviceBuffer dlen = upload(std::vector<int32_t>(cs.kv_len.begin(), cs.kv_len.end()));
    cuda::DeviceBuffer dout = upload(std::vector<uint16_t>(total_q * out_stride, kPoison16));
    const float scale = 1.0f / std::sqrt(static_cast<float>(cs.d));
    cuda::PagedPrefillArgs args;
    args.out = dout.data();
    args.out_row_stride = out_stride;
    args.q = dq.data();
    args.q_row_stride = q_stride;
    args.kv = {pool.k.data(),  pool.v.data(), pool.table.as<int32_t>(),
               pool.max_pages, cs.hkv,        cs.d};
    args.q_start = dstart.as<int32_t>();
    args.kv_len = dlen.as<int32_t>();
    args.batch = batch;
    args.max_q_len = *std::max_element(cs.q_len.begin(), cs.q_len.end());
    args.n_head = cs.h;
    args.scale = scale;
    args.dtype = cs.dtype;
    std::vector<std::vector<float>> refs;
    refs.reserve(batch);
    for (int b = 0; b < batch; ++b) {
      refs.push_back(reference(qs[b].values, ks[b].values, vs[b].values, cs.q_len[b], cs.kv_len[b],
                               cs.h, cs.hkv, cs.d, /*causal=*/true, scale));
    }
    // Both forward kernels where the Hopper one applies (the LLM's head dim).
    std::vector<cuda::FlashKernel> kernels = {cuda::FlashKernel::kMma};
    if (cs.d == 128) {
      kernels.push_back(cuda::FlashKernel::kWgmma);
    }
    for (const cuda::FlashKernel kernel : kernels) {
      args.kernel = kernel;
      const char* name = kernel_name(kernel);
      const std::vector<uint16_t> poison(total_q * out_stride, kPoison16);
      ASSERT_TRUE(
          cuda::copy_to_device(dout.data(), poison.data(), poison.size() * 2, nullptr).ok());
      const Status st = cuda::flash_attention_paged(args, nullptr);
      if (kernel == cuda::FlashKernel::kWgmma && st.code() == StatusCode::kUnimplemented) {
        std::printf("[flash] paged prefill: no wgmma kernel here (%s)\n", st.to_string().c_str());
        continue;
      }
      ASSERT_TRUE(st.ok()) << st.to_string();
      const std::vector<uint16_t> got_bits = download16(dout, total_q * out_stride);
      for (int b = 0; b < batch; ++b) {
        std::vector<uint16_t> rows(refs[b].size());
        for (int i = 0; i < cs.q_len[b]; ++i) {
          const auto src = got_bits.begin() + (q_start[b] + i) * out_stride;
          std::copy_n(src, row, rows.begin() + i * row);
          for (int64_t c = row; c < out_stride; ++c) {
            ASSERT_EQ(src[c], kPoison16) << name << " wrote past the head columns";
          }
        }
        const double err = max_rel_error(to_f32(rows, cs.dtype), refs[b]);
        worst = std::max(worst, err);
        EXPECT_LE(err, kTolerance)
            << name << " seq " << b << " of case D " << cs.d << " H " << cs.h << " Hkv " << cs.hkv
            << " q_len " << cs.q_len[b] << " kv_len " << cs.kv_len[b];
      }
    }
  }
  std::printf("[flash] paged prefill: max rel err %.3g\n", worst);
#endif
}

struct DenseCase {
  int batch, seq, h, hkv, d;
  bool causal;
  DType dtype;
};

TEST(FlashAttentionCuda, DenseMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(42);
  const DType kB = DType::kBF16, kH = DType::kF16;
  double worst = 0;
  for (const DenseCase& cs :
       {DenseCase{2, 1024, 4, 4, 72, false, kB}, DenseCase{3, 77, 3, 3, 72, false, kH},
        DenseCase{1, 1000, 4, 2, 72, false, kB}, DenseCase{2, 129, 2, 2, 72, false, kH},
        DenseCase{1, 8, 1, 1, 72, false, kB}, DenseCase{1, 300, 8, 2, 128, true, kB},
        DenseCase{2, 65, 2, 2, 32, false, kH}, DenseCase{1, 129, 4, 1, 80, true, kB},
        DenseCase{2, 50, 2, 2, 16, true, kH}, DenseCase{1, 200, 6, 3, 64, false, kB},
        DenseCase{2, 131, 4, 2, 96, true, kH}, DenseCase{1, 257, 2, 2, 96, false, kB}}) {
    // One fused QKV activation: row = [q (H D) | k (Hkv D) | v (Hkv D)], as SigLIP's qkv linear.
    const int64_t hd = int64_t{cs.h} * cs.d, kvd = int64_t{cs.hkv} * cs.d;
    const int64_t stride = hd + 2 * kvd;
    const int64_t rows = int64_t{cs.batch} * cs.seq;
    std::vector<uint16_t> qkv(rows * stride);
    std::vector<Rounded> qs, ks, vs;
    for (int b = 0; b < cs.batch; ++b) {
      qs.push_back(random_rounded(rng, cs.seq * hd, cs.dtype));
      ks.push_back(random_rounded(rng, cs.seq * kvd, cs.dtype));
      vs.push_back(random_rounded(rng, cs.seq * kvd, cs.dtype));
      for (int s = 0; s < cs.seq; ++s) {
        auto dst = qkv.begin() + (int64_t{b} * cs.seq + s) * stride;
        std::copy_n(qs[b].bits.begin() + s * hd, hd, dst);
        std::copy_n(ks[b].bits.begin() + s * kvd, kvd, dst + hd);
        std::copy_n(vs[b].bits.begin() + s * kvd, kvd, dst + hd + kvd);
      }
    }
    cuda::DeviceBuffer dqkv = upload(qkv);
    cuda::DeviceBuffer dout = upload(std::vector<uint16_t>(rows * hd, kPoison16));
    const auto* base = dqkv.as<uint16_t>();
    cuda::DenseAttentionArgs args;
    args.out = dout.data();
    args.out_row_stride = hd;
    args.q = base;
    args.q_row_stride = stride;
    args.k = base + hd;
    args.k_row_stride = stride;
    args.v = base + hd + kvd;
    args.v_row_stride = stride;
    args.batch = cs.batch;
    args.seq = cs.seq;
    args.n_head = cs.h;
    args.n_head_kv = cs.hkv;
    args.head_dim = cs.d;
    args.causal = cs.causal;
    args.scale = 1.0f / std::sqrt(static_cast<float>(cs.d));
    args.dtype = cs.dtype;
    std::vector<std::vector<float>> refs;
    refs.reserve(cs.batch);
    for (int b = 0; b < cs.batch; ++b) {
      refs.push_back(reference(qs[b].values, ks[b].values, vs[b].values, cs.seq, cs.seq, cs.h,
                               cs.hkv, cs.d, cs.causal, args.scale));
    }
    // Both forward kernels where the Hopper one applies (SigLIP's shape).
    std::vector<cuda::FlashKernel> kernels = {cuda::FlashKernel::kMma};
    if (cs.d == 72 && !cs.causal) {
      kernels.push_back(cuda::FlashKernel::kWgmma);
    }
    for (const cuda::FlashKernel kernel : kernels) {
      args.kernel = kernel;
      const char* name = kernel_name(kernel);
      const std::vector<uint16_t> poison(rows * hd, kPoison16);
      ASSERT_TRUE(
          cuda::copy_to_device(dout.data(), poison.data(), poison.size() * 2, nullptr).ok());
      const Status st = cuda::flash_attention_dense(args, nullptr);
      if (kernel == cuda::FlashKernel::kWgmma && st.code() == StatusCode::kUnimplemented) {
        std::printf("[flash] dense: no wgmma kernel here (%s)\n", st.to_string().c_str());
        continue;
      }
      ASSERT_TRUE(st.ok()) << st.to_string();
      const std::vector<float> got = to_f32(download16(dout, rows * hd), cs.dtype);
      for (int b = 0; b < cs.batch; ++b) {
        const int64_t first = int64_t{b} * cs.seq * hd;
        const std::vector<float> mine(got.begin() + first, got.begin() + first + cs.seq * hd);
        const double err = max_rel_error(mine, refs[b]);
        worst = std::max(worst, err);
        EXPECT_LE(err, kTolerance) << name << " batch " << b << " seq " << cs.seq << " D " << cs.d
                                   << " H " << cs.h << " Hkv " << cs.hkv << " causal " << cs.causal;
      }
    }
  }
  std::printf("[flash] dense: max rel err %.3g\n", worst);
#endif
}

#ifdef VILA_WITH_CUDA
// A decode problem on the device: q rows (batch, H D) at a padded stride, the paged pool, the
// lengths and the CPU reference per sequence.
struct DecodeSetup {
  std::vector<Rounded> qs, ks, vs;
  PagedPool pool;
  cuda::DeviceBuffer q, len, out, workspace;
  int64_t q_stride = 0, out_stride = 0;
};

DecodeSetup make_decode(std::mt19937& rng, const std::vector<int>& kv_len, int h, int hkv, int d,
                        int max_kv_len, DType dtype) {
  DecodeSetup s;
  const int64_t row = int64_t{h} * d;
  s.q_stride = row + 16;
  s.out_stride = row + 3;  // out needs no alignment
  const int batch = static_cast<int>(kv_len.size());
  std::vector<uint16_t> q_host(batch * s.q_stride, kPoison16);
  std::vector<std::vector<uint16_t>> k_bits, v_bits;
  for (int b = 0; b < batch; ++b) {
    s.qs.push_back(random_rounded(rng, row, dtype));
    s.ks.push_back(random_rounded(rng, int64_t{kv_len[b]} * hkv * d, dtype));
    s.vs.push_back(random_rounded(rng, int64_t{kv_len[b]} * hkv * d, dtype));
    k_bits.push_back(s.ks.back().bits);
    v_bits.push_back(s.vs.back().bits);
    std::copy_n(s.qs[b].bits.begin(), row, q_host.begin() + b * s.q_stride);
  }
  // The table rows cover max_kv_len (the launcher requires it).
  s.pool = make_pool(rng, k_bits, v_bits, kv_len, hkv, d,
                     (max_kv_len + cuda::kKvPageSize - 1) / cuda::kKvPageSize);
  s.q = upload(q_host);
  s.len = upload(std::vector<int32_t>(kv_len.begin(), kv_len.end()));
  s.out = upload(std::vector<uint16_t>(batch * s.out_stride, kPoison16));
  const size_t ws = cuda::decode_attention_workspace_bytes(batch, h, d, max_kv_len);
  if (ws > 0) s.workspace = upload(std::vector<uint8_t>(ws, 0xff));
  return s;
}

cuda::PagedDecodeArgs decode_args(const DecodeSetup& s, int batch, int h, int hkv, int d,
                                  int max_kv_len, DType dtype) {
  cuda::PagedDecodeArgs args;
  args.out = s.out.data();
  args.out_row_stride = s.out_stride;
  args.q = s.q.data();
  args.q_row_stride = s.q_stride;
  args.kv = {
      s.pool.k.data(), s.pool.v.data(), s.pool.table.as<int32_t>(), s.pool.max_pages, hkv, d};
  args.kv_len = s.len.as<int32_t>();
  args.batch = batch;
  args.max_kv_len = max_kv_len;
  args.n_head = h;
  args.scale = 1.0f / std::sqrt(static_cast<float>(d));
  args.dtype = dtype;
  args.workspace = s.workspace.data();
  return args;
}

// Max relative error of every sequence's output row against the CPU (first `lens[b]` keys).
double decode_error(const DecodeSetup& s, const std::vector<int>& lens, int h, int hkv, int d,
                    DType dtype) {
  const int64_t row = int64_t{h} * d;
  const int batch = static_cast<int>(lens.size());
  const std::vector<uint16_t> bits = download16(s.out, batch * s.out_stride);
  double worst = 0;
  for (int b = 0; b < batch; ++b) {
    const std::vector<float> ref =
        reference(s.qs[b].values, s.ks[b].values, s.vs[b].values, 1, lens[b], h, hkv, d,
                  /*causal=*/true, 1.0f / std::sqrt(static_cast<float>(d)));
    const std::vector<uint16_t> mine(bits.begin() + b * s.out_stride,
                                     bits.begin() + b * s.out_stride + row);
    const double err = max_rel_error(to_f32(mine, dtype), ref);
    EXPECT_LE(err, kTolerance) << "seq " << b << " kv_len " << lens[b] << " D " << d << " H " << h
                               << " Hkv " << hkv;
    worst = std::max(worst, err);
  }
  return worst;
}
#endif

struct DecodeCase {
  std::vector<int> kv_len;
  int h, hkv, d, max_kv_len;
  DType dtype;
};

TEST(FlashAttentionCuda, PagedDecodeMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(43);
  const DType kB = DType::kBF16, kH = DType::kF16;
  double worst = 0;
  for (const DecodeCase& cs :
       {DecodeCase{{1, 63, 64, 65, 1000, 4096}, 28, 4, 128, 4096, kB},
        DecodeCase{{4096}, 28, 4, 128, 4096, kB},
        DecodeCase{{5, 129, 700, 2000}, 8, 8, 64, 2100, kH}, DecodeCase{{100}, 4, 2, 72, 100, kB},
        DecodeCase{{1, 128}, 12, 2, 80, 128, kH}, DecodeCase{{300, 17}, 32, 1, 16, 512, kH},
        DecodeCase{{257, 1, 64}, 6, 3, 96, 300, kB}, DecodeCase{{33, 400}, 4, 4, 32, 400, kB}}) {
    const int batch = static_cast<int>(cs.kv_len.size());
    DecodeSetup s = make_decode(rng, cs.kv_len, cs.h, cs.hkv, cs.d, cs.max_kv_len, cs.dtype);
    const Status st = cuda::decode_attention_paged(
        decode_args(s, batch, cs.h, cs.hkv, cs.d, cs.max_kv_len, cs.dtype), nullptr);
    ASSERT_TRUE(st.ok()) << st.to_string();
    worst = std::max(worst, decode_error(s, cs.kv_len, cs.h, cs.hkv, cs.d, cs.dtype));
    // Untouched columns past H*D stay poisoned.
    const std::vector<uint16_t> bits = download16(s.out, batch * s.out_stride);
    for (int b = 0; b < batch; ++b) {
      for (int64_t c = int64_t{cs.h} * cs.d; c < s.out_stride; ++c) {
        EXPECT_EQ(bits[b * s.out_stride + c], kPoison16);
      }
    }
  }
  std::printf("[flash] decode: max rel err %.3g\n", worst);
#endif
}

// Captured once with some lengths, replayed after the device lengths changed: the kernels must
// read kv_len on the device only.
TEST(FlashAttentionCuda, DecodeGraphReplaysNewLengths) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(44);
  const int h = 28, hkv = 4, d = 128, max_kv_len = 2048;
  const std::vector<int> full = {2048, 1500, 700};
  DecodeSetup s = make_decode(rng, full, h, hkv, d, max_kv_len, DType::kBF16);
  const std::vector<int> first = {10, 1500, 64};
  ASSERT_TRUE(cuda::copy_to_device(s.len.data(), first.data(), first.size() * 4, nullptr).ok());
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.ok());
  auto cs = static_cast<cudaStream_t>(stream->handle());
  const cuda::PagedDecodeArgs args = decode_args(s, 3, h, hkv, d, max_kv_len, DType::kBF16);
  ASSERT_EQ(cudaStreamBeginCapture(cs, cudaStreamCaptureModeGlobal), cudaSuccess);
  const Status st = cuda::decode_attention_paged(args, cs);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(cs, &graph), cudaSuccess);
  ASSERT_TRUE(st.ok()) << st.to_string();
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (const std::vector<int>& lens : {first, std::vector<int>{2048, 1, 700}, full}) {
    ASSERT_TRUE(cuda::copy_to_device(s.len.data(), lens.data(), lens.size() * 4, nullptr).ok());
    ASSERT_EQ(cudaGraphLaunch(exec, cs), cudaSuccess);
    ASSERT_TRUE(stream->synchronize().ok());
    decode_error(s, lens, h, hkv, d, DType::kBF16);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
#endif
}

TEST(FlashAttentionCuda, BadArgumentsReturnErrors) {
#ifndef VILA_WITH_CUDA
  GTEST_SKIP() << "built without CUDA";
#else
  // Checked before anything touches the device: no GPU needed.
  alignas(16) static uint16_t buf[64];
  cuda::DenseAttentionArgs dense;
  dense.out = buf;
  dense.q = dense.k = dense.v = buf;
  dense.out_row_stride = dense.q_row_stride = dense.k_row_stride = dense.v_row_stride = 64;
  dense.batch = 1;
  dense.seq = 1;
  dense.n_head = dense.n_head_kv = 1;
  dense.head_dim = 40;
  dense.scale = 0.1f;
  EXPECT_EQ(cuda::flash_attention_dense(dense, nullptr).code(), StatusCode::kUnimplemented);
  dense.head_dim = 64;
  dense.batch = 0;
  EXPECT_EQ(cuda::flash_attention_dense(dense, nullptr).code(), StatusCode::kInvalidArgument);
  dense.batch = 1;
  dense.q_row_stride = 68;  // rows not 16-byte aligned
  EXPECT_EQ(cuda::flash_attention_dense(dense, nullptr).code(), StatusCode::kInvalidArgument);
  dense.q_row_stride = 64;
  dense.n_head = 3;
  dense.n_head_kv = 2;
  EXPECT_EQ(cuda::flash_attention_dense(dense, nullptr).code(), StatusCode::kInvalidArgument);
  dense.dtype = DType::kF32;
  dense.n_head = 1;
  dense.n_head_kv = 1;
  dense.q_row_stride = dense.out_row_stride = 64;
  EXPECT_EQ(cuda::flash_attention_dense(dense, nullptr).code(), StatusCode::kUnimplemented);
  dense.dtype = DType::kBF16;
  dense.kernel = cuda::FlashKernel::kWgmma;  // head_dim 64: only the mma.sync kernel has it
  EXPECT_EQ(cuda::flash_attention_dense(dense, nullptr).code(), StatusCode::kUnimplemented);

  static int32_t ints[4] = {0, 1, 1, 1};
  cuda::PagedPrefillArgs paged;
  paged.out = buf;
  paged.q = buf;
  paged.out_row_stride = paged.q_row_stride = 64;
  paged.kv = {buf, buf, ints, 1, 1, 40};
  paged.q_start = ints;
  paged.kv_len = ints + 1;
  paged.batch = 1;
  paged.max_q_len = 1;
  paged.n_head = 1;
  paged.scale = 0.1f;
  EXPECT_EQ(cuda::flash_attention_paged(paged, nullptr).code(), StatusCode::kUnimplemented);
  paged.kv.head_dim = 64;
  paged.kernel = cuda::FlashKernel::kWgmma;  // head_dim 64: only the mma.sync kernel has it
  EXPECT_EQ(cuda::flash_attention_paged(paged, nullptr).code(), StatusCode::kUnimplemented);
  paged.kernel = cuda::FlashKernel::kAuto;
  paged.batch = 0;
  EXPECT_EQ(cuda::flash_attention_paged(paged, nullptr).code(), StatusCode::kInvalidArgument);
  paged.batch = 1;
  paged.kv.block_table = nullptr;
  EXPECT_EQ(cuda::flash_attention_paged(paged, nullptr).code(), StatusCode::kInvalidArgument);

  cuda::PagedDecodeArgs decode;
  decode.out = buf;
  decode.q = buf;
  decode.out_row_stride = decode.q_row_stride = 64;
  decode.kv = {buf, buf, ints, 1, 1, 40};
  decode.kv_len = ints + 1;
  decode.batch = 1;
  decode.max_kv_len = 64;
  decode.n_head = 1;
  decode.scale = 0.1f;
  EXPECT_EQ(cuda::decode_attention_paged(decode, nullptr).code(), StatusCode::kUnimplemented);
  decode.kv.head_dim = 64;
  decode.batch = 0;
  EXPECT_EQ(cuda::decode_attention_paged(decode, nullptr).code(), StatusCode::kInvalidArgument);
  decode.batch = 1;
  decode.max_kv_len = 65;  // more than the one page the table names
  EXPECT_EQ(cuda::decode_attention_paged(decode, nullptr).code(), StatusCode::kInvalidArgument);
  decode.kv.max_pages = 4;
  decode.max_kv_len = 200;  // two splits: a workspace is required
  EXPECT_EQ(cuda::decode_attention_paged(decode, nullptr).code(), StatusCode::kInvalidArgument);

  // (batch, head, split) partials of head_dim + 2 floats, splits of 128 keys; one split needs none.
  EXPECT_EQ(cuda::decode_attention_workspace_bytes(2, 28, 128, 4096),
            size_t{2 * 28 * 32 * 130 * 4});
  EXPECT_EQ(cuda::decode_attention_workspace_bytes(1, 28, 128, 128), size_t{0});
  EXPECT_EQ(cuda::decode_attention_workspace_bytes(0, 28, 128, 4096), size_t{0});
#endif
}

#ifdef VILA_WITH_CUDA
// A device buffer of n 16-bit values drawn from N(0, 1) (a random block repeated).
cuda::DeviceBuffer random_device16(std::mt19937& rng, int64_t n, DType dtype) {
  const int64_t block = std::min<int64_t>(n, 1 << 20);
  const Rounded r = random_rounded(rng, block, dtype);
  std::vector<uint16_t> host(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i += block) {
    std::copy_n(r.bits.begin(), std::min(block, n - i), host.begin() + i);
  }
  return upload(host);
}

using testing::time_ms;
#endif

// Prints throughput only (no checks beyond "it runs"): SigLIP-so400m dense attention, an LLM
// prefill and decode steps.
TEST(FlashAttentionCuda, Timing) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(45);
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.ok());
  auto cs = static_cast<cudaStream_t>(stream->handle());
  {  // SigLIP-so400m at 448 px: 17 tiles of 1024 tokens, 16 heads of 72, fused qkv rows.
    const int b = 17, s = 1024, h = 16, d = 72;
    const int64_t hd = int64_t{h} * d, stride = 3 * hd;
    cuda::DeviceBuffer qkv = random_device16(rng, b * s * stride, DType::kBF16);
    cuda::DeviceBuffer out = random_device16(rng, b * s * hd, DType::kBF16);
    const auto* base = qkv.as<uint16_t>();
    cuda::DenseAttentionArgs a;
    a.out = out.data();
    a.out_row_stride = hd;
    a.q = base;
    a.k = base + hd;
    a.v = base + 2 * hd;
    a.q_row_stride = a.k_row_stride = a.v_row_stride = stride;
    a.batch = b;
    a.seq = s;
    a.n_head = a.n_head_kv = h;
    a.head_dim = d;
    a.causal = false;
    a.scale = 1.0f / std::sqrt(72.0f);
    for (const cuda::FlashKernel kernel : {cuda::FlashKernel::kMma, cuda::FlashKernel::kWgmma}) {
      a.kernel = kernel;
      if (!cuda::flash_attention_dense(a, cs).ok()) {
        continue;  // no wgmma kernel here
      }
      const double ms = time_ms(cs, 20, [&] { return cuda::flash_attention_dense(a, cs); });
      std::printf("[flash] dense %s B=%d S=%d H=%d D=%d: %.3f ms, %.1f TFLOP/s\n",
                  kernel_name(kernel), b, s, h, d, ms, 4.0 * b * s * s * h * d / (ms * 1e9));
    }
  }
  for (const int s : {4096, 1024}) {  // Qwen2-7B-like causal prefill: 28 heads, 4 KV heads, D 128
    const int h = 28, hkv = 4, d = 128;
    const int pages = s / cuda::kKvPageSize;
    cuda::DeviceBuffer q = random_device16(rng, int64_t{s} * h * d, DType::kBF16);
    cuda::DeviceBuffer out = random_device16(rng, int64_t{s} * h * d, DType::kBF16);
    cuda::DeviceBuffer k = random_device16(rng, int64_t{s} * hkv * d, DType::kBF16);
    cuda::DeviceBuffer v = random_device16(rng, int64_t{s} * hkv * d, DType::kBF16);
    std::vector<int32_t> table(pages);
    std::iota(table.begin(), table.end(), 0);
    cuda::DeviceBuffer dtable = upload(table), dstart = upload(std::vector<int32_t>{0, s});
    cuda::DeviceBuffer dlen = upload(std::vector<int32_t>{s});
    cuda::PagedPrefillArgs a;
    a.out = out.data();
    a.out_row_stride = a.q_row_stride = int64_t{h} * d;
    a.q = q.data();
    a.kv = {k.data(), v.data(), dtable.as<int32_t>(), pages, hkv, d};
    a.q_start = dstart.as<int32_t>();
    a.kv_len = dlen.as<int32_t>();
    a.batch = 1;
    a.max_q_len = s;
    a.n_head = h;
    a.scale = 1.0f / std::sqrt(128.0f);
    for (const cuda::FlashKernel kernel : {cuda::FlashKernel::kMma, cuda::FlashKernel::kWgmma}) {
      a.kernel = kernel;
      if (!cuda::flash_attention_paged(a, cs).ok()) {
        continue;  // no wgmma kernel here
      }
      const double ms = time_ms(cs, 10, [&] { return cuda::flash_attention_paged(a, cs); });
      std::printf("[flash] paged causal prefill %s S=%d H=%d/%d D=%d: %.3f ms, %.1f TFLOP/s\n",
                  kernel_name(kernel), s, h, hkv, d, ms, 2.0 * s * s * h * d / (ms * 1e9));
    }
  }
  for (const auto& [batch, kv_len] :
       {std::pair{1, 4096}, std::pair{1, 32768}, std::pair{8, 4096}, std::pair{1, 512}}) {
    const int h = 28, hkv = 4, d = 128;
    const int pages = kv_len / cuda::kKvPageSize;
    cuda::DeviceBuffer q = random_device16(rng, int64_t{batch} * h * d, DType::kBF16);
    cuda::DeviceBuffer out = random_device16(rng, int64_t{batch} * h * d, DType::kBF16);
    cuda::DeviceBuffer k = random_device16(rng, int64_t{batch} * kv_len * hkv * d, DType::kBF16);
    cuda::DeviceBuffer v = random_device16(rng, int64_t{batch} * kv_len * hkv * d, DType::kBF16);
    std::vector<int32_t> table(batch * pages);
    std::iota(table.begin(), table.end(), 0);
    cuda::DeviceBuffer dtable = upload(table);
    cuda::DeviceBuffer dlen = upload(std::vector<int32_t>(batch, kv_len));
    auto ws = cuda::DeviceBuffer::create(
        std::max<size_t>(cuda::decode_attention_workspace_bytes(batch, h, d, kv_len), 16));
    ASSERT_TRUE(ws.ok());
    cuda::PagedDecodeArgs a;
    a.out = out.data();
    a.out_row_stride = a.q_row_stride = int64_t{h} * d;
    a.q = q.data();
    a.kv = {k.data(), v.data(), dtable.as<int32_t>(), pages, hkv, d};
    a.kv_len = dlen.as<int32_t>();
    a.batch = batch;
    a.max_kv_len = kv_len;
    a.n_head = h;
    a.scale = 1.0f / std::sqrt(128.0f);
    a.workspace = ws->data();
    const double bytes = 2.0 * batch * kv_len * hkv * d * 2;
    const double ms = time_ms(cs, 200, [&] { return cuda::decode_attention_paged(a, cs); });
    // The same steps replayed from a CUDA graph of 20 calls (no launch overhead).
    constexpr int kCalls = 20;
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaStreamBeginCapture(cs, cudaStreamCaptureModeGlobal), cudaSuccess);
    for (int i = 0; i < kCalls; ++i) EXPECT_TRUE(cuda::decode_attention_paged(a, cs).ok());
    ASSERT_EQ(cudaStreamEndCapture(cs, &graph), cudaSuccess);
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    const double graph_ms = time_ms(cs, 10,
                                    [&] {
                                      return cudaGraphLaunch(exec, cs) == cudaSuccess
                                                 ? Status{}
                                                 : internal_error("graph launch");
                                    }) /
                            kCalls;
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    std::printf(
        "[flash] decode B=%d kv=%d H=%d/%d D=%d: %.2f us (%.0f GB/s), in a graph %.2f us (%.0f "
        "GB/s)\n",
        batch, kv_len, h, hkv, d, ms * 1e3, bytes / (ms * 1e6), graph_ms * 1e3,
        bytes / (graph_ms * 1e6));
  }
#endif
}

}  // namespace
}  // namespace vila
