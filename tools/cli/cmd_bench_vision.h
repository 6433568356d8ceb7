// vila bench --device cuda, the vision part (cmd_bench_vision.cpp): NVILA-8B's vision side on
// random weights, 17 tiles of 448 (one 16:9 image under dynamic S2) through SigLIP-so400m, the
// S2 merge and the 2x2 projector, rows left on the device (encode_device).
#pragma once

#include <nlohmann/json.hpp>

#include "cmd_bench_cuda.h"
#include "core/status.h"

namespace vila::cli {

// Prints one line and fills out["vision"]: ms per call, tiles/s, pixel upload, SigLIP device
// time and TFLOP/s against `peak_tflops` (the measured cuBLASLt bf16 peak of the same run),
// S2 + projector. Unimplemented for shapes without a vision geometry here (nvila-lite-2b).
Status bench_vision(const CudaBenchArgs& args, double peak_tflops, nlohmann::json& out);

}  // namespace vila::cli
