// GEMM precision configs and their CPU emulation (see precision.h).
#include "train/precision.h"

#include <string>

namespace vila::train {

namespace {

bool is_round_only_format(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16;
}

bool is_scaled_format(DType dtype) {
  return dtype == DType::kF8E4M3 || dtype == DType::kF8E5M2 || dtype == DType::kI8;
}

const char* granularity_name(Granularity g) {
  switch (g) {
    case Granularity::kPerTensor:
      return "per-tensor";
    case Granularity::kPerRow:
      return "per-row";
    case Granularity::kPerBlock:
      return "per-block";
  }
  return "?";
}

Status check_operand(const OperandFormat& f, const std::string& what) {
  if (is_round_only_format(f.dtype)) return ok_status();
  if (is_scaled_format(f.dtype)) {
    return unimplemented(what + ": " + dtype_name(f.dtype) + " (" +
                         granularity_name(f.granularity) +
                         ") GEMM operands are not implemented yet (fp32, bf16, fp16 are)");
  }
  return invalid_argument(what + ": " + dtype_name(f.dtype) +
                          " is no GEMM operand format (fp32, bf16, fp16, fp8-e4m3, fp8-e5m2, "
                          "int8)");
}

Status check_accum(DType accum, const std::string& what) {
  if (is_round_only_format(accum)) return ok_status();
  return invalid_argument(what + ": accumulator " + dtype_name(accum) +
                          " is not supported (fp32, bf16, fp16)");
}

void round_in_place(float* data, int64_t n, DType dtype) {
  if (dtype == DType::kBF16) {
    for (int64_t i = 0; i < n; ++i) data[i] = bf16_to_f32(f32_to_bf16(data[i]));
  } else if (dtype == DType::kF16) {
    for (int64_t i = 0; i < n; ++i) data[i] = f16_to_f32(f32_to_f16(data[i]));
  }
}

GemmPrecision uniform(DType operands) {
  GemmPrecision p;
  p.a.dtype = operands;
  p.b.dtype = operands;
  p.accum = DType::kF32;
  return p;
}

}  // namespace

StatusOr<LinearPrecision> precision_preset(std::string_view name) {
  DType operands;
  if (name == "fp32") {
    operands = DType::kF32;
  } else if (name == "bf16") {
    operands = DType::kBF16;
  } else {
    return invalid_argument("precision_preset: unknown preset '" + std::string(name) +
                            "' (known: fp32, bf16)");
  }
  LinearPrecision p;
  p.forward = uniform(operands);
  p.input_grad = uniform(operands);
  p.weight_grad = uniform(operands);
  return p;
}

Status check_gemm_precision(const GemmPrecision& p, const std::string& gemm) {
  VILA_RETURN_IF_ERROR(check_operand(p.a, gemm + " GEMM operand A"));
  VILA_RETURN_IF_ERROR(check_operand(p.b, gemm + " GEMM operand B"));
  return check_accum(p.accum, gemm + " GEMM");
}

Status quantize_operand(float* data, int64_t rows, int64_t cols, const OperandFormat& format) {
  VILA_RETURN_IF_ERROR(check_operand(format, "quantize_operand"));
  if (rows < 0 || cols < 0 || (rows * cols > 0 && data == nullptr)) {
    return invalid_argument("quantize_operand: bad operand (" + std::to_string(rows) + ", " +
                            std::to_string(cols) + ")");
  }
  round_in_place(data, rows * cols, format.dtype);
  return ok_status();
}

Status round_to_accum(float* data, int64_t n, DType accum) {
  VILA_RETURN_IF_ERROR(check_accum(accum, "round_to_accum"));
  if (n > 0 && data == nullptr) return invalid_argument("round_to_accum: data is null");
  round_in_place(data, n, accum);
  return ok_status();
}

std::string gemm_precision_name(const GemmPrecision& p) {
  auto operand = [](const OperandFormat& f) {
    std::string s = dtype_name(f.dtype);
    if (is_scaled_format(f.dtype)) s += std::string("[") + granularity_name(f.granularity) + "]";
    return s;
  };
  return operand(p.a) + "/" + operand(p.b) + "->" + dtype_name(p.accum);
}

}  // namespace vila::train
