#include "ops/cpu/vec.h"

#include <atomic>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VILA_VEC_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace vila::cpu {

// ---------------------------------------------------------------------------------------------
// Level selection
// ---------------------------------------------------------------------------------------------

SimdLevel simd_detect() {
#ifdef VILA_VEC_X86
  __builtin_cpu_init();
  // clang 14 knows no "f16c" feature string for __builtin_cpu_supports: read CPUID leaf 1 instead.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) {
    return SimdLevel::kAvx2;
  }
#endif
  return SimdLevel::kScalar;
}

namespace {
std::atomic<SimdLevel>& level_slot() {
  static std::atomic<SimdLevel> level{simd_detect()};
  return level;
}
}  // namespace

SimdLevel simd_level() { return level_slot().load(std::memory_order_relaxed); }

void simd_set_level(SimdLevel level) {
  if (level == SimdLevel::kAvx2 && simd_detect() != SimdLevel::kAvx2) level = SimdLevel::kScalar;
  level_slot().store(level, std::memory_order_relaxed);
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar:
      return "scalar";
    case SimdLevel::kAvx2:
      return "avx2";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Scalar versions: the readable definitions
// ---------------------------------------------------------------------------------------------

namespace {

template <DType kType>
inline float load_scalar(const void* base, int64_t i) {
  if constexpr (kType == DType::kF32) {
    return static_cast<const float*>(base)[i];
  } else if constexpr (kType == DType::kBF16) {
    return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
  } else {
    return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
  }
}

float dot_scalar(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void axpy_scalar(float* y, float alpha, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <DType kType>
void to_f32_scalar(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = load_scalar<kType>(src, i);
}

template <DType kType>
void gemv_rows_scalar(const void* w, int64_t k, int64_t n_begin, int64_t n_end, const float* in,
                      int64_t in_stride, int n_in, float* out, int64_t out_stride) {
  const int64_t row_elems = k;
  for (int64_t n = n_begin; n < n_end; ++n) {
    const auto* row = static_cast<const uint8_t*>(w) + dtype_bytes(kType, n * row_elems);
    for (int m = 0; m < n_in; ++m) {
      const float* x = in + m * in_stride;
      float sum = 0.0f;
      for (int64_t i = 0; i < k; ++i) sum += x[i] * load_scalar<kType>(row, i);
      out[m * out_stride + n] = sum;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA + F16C versions
// ---------------------------------------------------------------------------------------------

#ifdef VILA_VEC_X86
#define VILA_AVX2 __attribute__((target("avx2,fma,f16c")))

VILA_AVX2 inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 shuf = _mm_movehdup_ps(lo);
  __m128 sums = _mm_add_ps(lo, shuf);
  shuf = _mm_movehl_ps(shuf, sums);
  sums = _mm_add_ss(sums, shuf);
  return _mm_cvtss_f32(sums);
}

// Loads 8 elements of dtype kType starting at element i, as fp32.
template <DType kType>
VILA_AVX2 inline __m256 load8(const void* base, int64_t i) {
  if constexpr (kType == DType::kF32) {
    return _mm256_loadu_ps(static_cast<const float*>(base) + i);
  } else if constexpr (kType == DType::kBF16) {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
    return _mm256_cvtph_ps(h);
  }
}

VILA_AVX2 float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3);
  }
  for (; i + 8 <= n; i += 8) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  }
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

VILA_AVX2 void axpy_avx2(float* y, float alpha, const float* x, int64_t n) {
  const __m256 a = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += alpha * x[i];
}

template <DType kType>
VILA_AVX2 void to_f32_avx2(const void* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8<kType>(src, i));
  for (; i < n; ++i) dst[i] = load_scalar<kType>(src, i);
}

// One weight row against kInputs input rows; kUnroll vectors of 8 per step to hide FMA latency.
template <DType kType, int kInputs>
VILA_AVX2 void gemv_rows_avx2(const void* w, int64_t k, int64_t n_begin, int64_t n_end,
                              const float* in, int64_t in_stride, float* out, int64_t out_stride) {
  constexpr int kUnroll = kInputs == 1 ? 4 : 2;
  constexpr int64_t kStep = 8 * kUnroll;
  for (int64_t n = n_begin; n < n_end; ++n) {
    const auto* row = static_cast<const uint8_t*>(w) + dtype_bytes(kType, n * k);
    __m256 acc[kInputs][kUnroll];
    for (int m = 0; m < kInputs; ++m) {
      for (int u = 0; u < kUnroll; ++u) acc[m][u] = _mm256_setzero_ps();
    }
    int64_t i = 0;
    for (; i + kStep <= k; i += kStep) {
      for (int u = 0; u < kUnroll; ++u) {
        const __m256 wv = load8<kType>(row, i + 8 * u);
        for (int m = 0; m < kInputs; ++m) {
          acc[m][u] =
              _mm256_fmadd_ps(_mm256_loadu_ps(in + m * in_stride + i + 8 * u), wv, acc[m][u]);
        }
      }
    }
    for (; i + 8 <= k; i += 8) {
      const __m256 wv = load8<kType>(row, i);
      for (int m = 0; m < kInputs; ++m) {
        acc[m][0] = _mm256_fmadd_ps(_mm256_loadu_ps(in + m * in_stride + i), wv, acc[m][0]);
      }
    }
    for (int m = 0; m < kInputs; ++m) {
      __m256 total = acc[m][0];
      for (int u = 1; u < kUnroll; ++u) total = _mm256_add_ps(total, acc[m][u]);
      float sum = hsum(total);
      for (int64_t j = i; j < k; ++j) sum += in[m * in_stride + j] * load_scalar<kType>(row, j);
      out[m * out_stride + n] = sum;
    }
  }
}

template <DType kType>
void gemv_rows_avx2_any(const void* w, int64_t k, int64_t n_begin, int64_t n_end, const float* in,
                        int64_t in_stride, int n_in, float* out, int64_t out_stride) {
  switch (n_in) {
    case 1:
      return gemv_rows_avx2<kType, 1>(w, k, n_begin, n_end, in, in_stride, out, out_stride);
    case 2:
      return gemv_rows_avx2<kType, 2>(w, k, n_begin, n_end, in, in_stride, out, out_stride);
    case 3:
      return gemv_rows_avx2<kType, 3>(w, k, n_begin, n_end, in, in_stride, out, out_stride);
    default:
      return gemv_rows_avx2<kType, 4>(w, k, n_begin, n_end, in, in_stride, out, out_stride);
  }
}
#endif  // VILA_VEC_X86

bool use_avx2() {
#ifdef VILA_VEC_X86
  return simd_level() == SimdLevel::kAvx2;
#else
  return false;
#endif
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------

float vec_dot_f32(const float* a, const float* b, int64_t n) {
#ifdef VILA_VEC_X86
  if (use_avx2()) return dot_avx2(a, b, n);
#endif
  return dot_scalar(a, b, n);
}

void vec_axpy_f32(float* y, float alpha, const float* x, int64_t n) {
#ifdef VILA_VEC_X86
  if (use_avx2()) return axpy_avx2(y, alpha, x, n);
#endif
  axpy_scalar(y, alpha, x, n);
}

void vec_scale_f32(float* y, float alpha, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] *= alpha;  // auto-vectorised at any level
}

void vec_to_f32(DType src_dtype, const void* src, float* dst, int64_t n) {
  switch (src_dtype) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kBF16:
#ifdef VILA_VEC_X86
      if (use_avx2()) return to_f32_avx2<DType::kBF16>(src, dst, n);
#endif
      return to_f32_scalar<DType::kBF16>(src, dst, n);
    case DType::kF16:
#ifdef VILA_VEC_X86
      if (use_avx2()) return to_f32_avx2<DType::kF16>(src, dst, n);
#endif
      return to_f32_scalar<DType::kF16>(src, dst, n);
    default:
      return;  // callers validate dtypes first
  }
}

void vec_gemv_rows(DType w_dtype, const void* w, int64_t k, int64_t n_begin, int64_t n_end,
                   const float* in, int64_t in_stride, int n_in, float* out, int64_t out_stride) {
  if (n_in <= 0) return;
#ifdef VILA_VEC_X86
  if (use_avx2()) {
    switch (w_dtype) {
      case DType::kF32:
        return gemv_rows_avx2_any<DType::kF32>(w, k, n_begin, n_end, in, in_stride, n_in, out,
                                               out_stride);
      case DType::kBF16:
        return gemv_rows_avx2_any<DType::kBF16>(w, k, n_begin, n_end, in, in_stride, n_in, out,
                                                out_stride);
      case DType::kF16:
        return gemv_rows_avx2_any<DType::kF16>(w, k, n_begin, n_end, in, in_stride, n_in, out,
                                               out_stride);
      default:
        return;
    }
  }
#endif
  switch (w_dtype) {
    case DType::kF32:
      return gemv_rows_scalar<DType::kF32>(w, k, n_begin, n_end, in, in_stride, n_in, out,
                                           out_stride);
    case DType::kBF16:
      return gemv_rows_scalar<DType::kBF16>(w, k, n_begin, n_end, in, in_stride, n_in, out,
                                            out_stride);
    case DType::kF16:
      return gemv_rows_scalar<DType::kF16>(w, k, n_begin, n_end, in, in_stride, n_in, out,
                                           out_stride);
    default:
      return;
  }
}

}  // namespace vila::cpu
