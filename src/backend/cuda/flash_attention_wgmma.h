// The Hopper path of flash_attention_dense (flash_attention.h): the same attention on warpgroup
// MMAs (wgmma) instead of mma.sync, for SigLIP's shape: full (non-causal) attention, head_dim 72,
// bf16 / f16, no log-sum-exp output. Internal to the CUDA backend; flash_attention_dense picks it.
#pragma once

#include "backend/cuda/flash_attention.h"

namespace vila::cuda {

// Whether flash_attention_dense_wgmma can run args: the shape is one it implements, the build
// has the sm_90a kernels and the current device is a compute-capability 9.x GPU.
bool flash_wgmma_supports(const DenseAttentionArgs& args);
// args already checked by flash_attention_dense; flash_wgmma_supports(args) must hold.
Status flash_attention_dense_wgmma(const DenseAttentionArgs& args, void* stream);

}  // namespace vila::cuda
