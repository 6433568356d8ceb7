// Conventions and argument checks shared by the training ops (src/train/).
//
// Every op has a forward and a hand-written backward (llm.c style, no autograd):
// - All tensors are fp32 (master weights and activations on the CPU). Shapes are given per
//   argument; a tensor of any rank is read as (rows, last dim) where the comment says (M, C).
// - Backward takes the forward's inputs again plus, where the op needs more, the explicit Saved
//   struct that its forward filled (softmax probabilities, row statistics). Nothing is hidden.
// - Gradients of activations (an op's inputs) are WRITTEN (=). Gradients of parameters (weights,
//   biases, embedding tables) are ACCUMULATED (+=) into caller-zeroed buffers, so that micro-batch
//   accumulation and tied weights need nothing special.
// - An empty gradient view means "not needed" and is skipped.
// - A forward output must not alias an input that the backward reads.
// Bad arguments return InvalidArgument naming the op and the operand.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "core/tensor.h"
#include "ops/cpu/op_check.h"

namespace vila::train {

// `t` is f32 with row_count == rows and last dim == cols.
inline Status check_matrix(const char* op, const char* name, const TensorView& t, int64_t rows,
                           int64_t cols) {
  VILA_RETURN_IF_ERROR(cpu::check_f32(op, name, t));
  if (t.empty() && rows * cols > 0) {
    return invalid_argument(std::string(op) + ": " + name + " is null");
  }
  if (cpu::row_count(t) != rows || cpu::last_dim(t) != cols) {
    return invalid_argument(std::string(op) + ": " + name + " has shape " + t.shape.to_string() +
                            ", expected (" + std::to_string(rows) + ", " + std::to_string(cols) +
                            ")");
  }
  return ok_status();
}

// check_matrix, or OK when `t` is empty (an optional gradient).
inline Status check_optional_matrix(const char* op, const char* name, const TensorView& t,
                                    int64_t rows, int64_t cols) {
  if (t.empty()) return ok_status();
  return check_matrix(op, name, t, rows, cols);
}

// `t` is f32 with exactly `n` elements (a vector such as a bias or norm weight).
inline Status check_vector(const char* op, const char* name, const TensorView& t, int64_t n) {
  return check_matrix(op, name, t, 1, n);
}

}  // namespace vila::train
