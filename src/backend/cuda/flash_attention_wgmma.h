// The Hopper paths of flash_attention_dense and flash_attention_paged (flash_attention.h): the
// same attention on warpgroup MMAs (wgmma) instead of mma.sync, for SigLIP's dense attention
// (non-causal, head_dim 72, no log-sum-exp output) and the LLM's paged causal prefill (head_dim
// 128). bf16 / f16. Internal to the CUDA backend (included by .cu files only); the two entry
// points pick them.
#pragma once

#include "backend/cuda/flash_attention.h"
#include "backend/cuda/flash_params.cuh"

namespace vila::cuda {

// Whether the wgmma kernel can run args: the shape is one it implements, the build has the
// sm_90a kernels and the current device is a compute-capability 9.x GPU.
bool flash_wgmma_supports(const DenseAttentionArgs& args);
bool flash_wgmma_supports(const PagedPrefillArgs& args);
// p: the forward parameters the entry point built from args it checked, for which
// flash_wgmma_supports held. Dense: batch sequences of p.seq rows; paged: max_q_len bounds the
// sequences' query counts.
Status flash_attention_dense_wgmma(const flash::FwdParams& p, DType dtype, int batch, void* stream);
Status flash_attention_paged_wgmma(const flash::FwdParams& p, DType dtype, int max_q_len, int batch,
                                   void* stream);

}  // namespace vila::cuda
