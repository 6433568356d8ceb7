// Hopper (sm_90a) warpgroup MMA building blocks for the fused attention kernels
// (flash_attention_wgmma.cu): shared-memory matrix descriptors, the wgmma fences and the
// generated mma_async wrappers (wgmma_gen.cuh, scripts/gen_wgmma.py).
//
// A warpgroup is 4 consecutive warps (128 threads) issuing one m64nNk16 MMA together: D (64 x N,
// fp32) += A (64 x 16) · B (16 x N). D is spread like mma.sync m16n8 C fragments, warp w of the
// group holding rows 16w .. 16w+15 and register d[n][e] at row 16w + lane/4 + 8·(e/2), column
// 8n + 2·(lane%4) + e%2 (flash_mma.cuh's C layout, one 8-column tile per n). An A operand in
// registers uses the mma.sync m16n8k16 A fragment of the warp's 16 rows.
//
// Shared-memory operands use the no-swizzle ("interleave") canonical layout: 8x8 core matrices of
// 16-bit elements, each 128 contiguous bytes (8 rows of 16 bytes). With T = 8 elements (PTX ISA,
// "Canonical Layouts"):
//   K-major  (row r, k):  (r%8)·T + (r/8)·SBO + k%8 + (k/8)·LBO          (Q, K: row = token)
//   MN-major (n, k):      n%8 + (n/8)·SBO + (k%8)·T + (k/8)·LBO          (V: n = channel, k = key)
// The kernels store a tile of rows as 8-row groups of kChunks core matrices (one per 16-byte
// chunk of the row), so LBO / SBO are 128 bytes or one row group (kChunks · 128 bytes).
#pragma once

#include <cstdint>

#include "backend/cuda/cuda_common.cuh"

namespace vila::cuda::wgmma {

// The 32-bit shared-memory address of a generic pointer into shared memory.
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// The 64-bit descriptor of a no-swizzle operand at smem (16-byte aligned shared address):
// bits 0-13 address >> 4, 16-29 LBO >> 4, 32-45 SBO >> 4, swizzle bits 62-63 zero.
__device__ __forceinline__ uint64_t smem_desc(const void* smem, uint32_t lbo_bytes,
                                              uint32_t sbo_bytes) {
  const uint32_t addr = smem_addr(smem);
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) |
         static_cast<uint64_t>((lbo_bytes & 0x3FFFF) >> 4) << 16 |
         static_cast<uint64_t>((sbo_bytes & 0x3FFFF) >> 4) << 32;
}

// Orders this thread's register writes (accumulators, A fragments) before the next mma_async.
__device__ __forceinline__ void fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
// Waits until at most kPending committed groups of the warpgroup are in flight.
template <int kPending>
__device__ __forceinline__ void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Makes this thread's generic-proxy shared-memory writes (cp.async, st.shared) visible to the
// async proxy that wgmma reads operands through; then a barrier publishes them to the group.
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Tells the compiler an accumulator may change behind its back (between mma_async and wait).
template <int kTiles>
__device__ __forceinline__ void fence_operands(float (&d)[kTiles][4]) {
#pragma unroll
  for (int n = 0; n < kTiles; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[n][e])::"memory");
  }
}

// ---- mbarriers (shared-memory arrival counters with a phase bit) ----
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count)
               : "memory");
}
// One arrival of this thread.
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
// One arrival (counted in the barrier's init count) once every cp.async this thread issued so far
// has landed.
__device__ __forceinline__ void mbar_arrive_cp_async(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smem_addr(bar))
               : "memory");
}
// Waits until the phase with this parity (0 for the first, 1 for the second, ...) completed.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
  } while (done == 0);
}

// d (64 x N) (+)= A · B, A (64 x 16) and B (16 x N) both K-major in shared memory; accumulate 0
// overwrites d. N = 64; T is __nv_bfloat16 or __half.
template <typename T, int N>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 8][4], uint64_t desc_a, uint64_t desc_b,
                                         int accumulate);
// d (64 x N) (+)= A · B, A (64 x 16) from registers (the warp's m16n8k16 A fragment), B (16 x N)
// MN-major ("transposed") in shared memory. N ∈ {72, 128}.
template <typename T, int N>
__device__ __forceinline__ void wgmma_rs_tn(float (&d)[N / 8][4], const uint32_t (&a)[4],
                                            uint64_t desc_b, int accumulate);

#include "backend/cuda/wgmma_gen.cuh"

}  // namespace vila::cuda::wgmma
