// Reading an op's scalar inputs, as every tf_swap op does.
#ifndef TF_SWAP_CPP_OPS_OP_INPUTS_H_
#define TF_SWAP_CPP_OPS_OP_INPUTS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace tensorflow::tf_swap {

inline absl::Status RequireScalar(const char* name, const Tensor& t) {
  if (TensorShapeUtils::IsScalar(t.shape())) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(name, " is not a scalar: ", t.shape().DebugString()));
}

// A float scalar input (the op's dtype T), widened to double.
template <typename T>
absl::Status ReadFloat(OpKernelContext* ctx, int input, const char* name,
                       double* out) {
  const Tensor& t = ctx->input(input);
  TF_RETURN_IF_ERROR(RequireScalar(name, t));
  *out = static_cast<double>(t.scalar<T>()());
  return absl::OkStatus();
}

// An int64 scalar input.
inline absl::Status ReadInt(OpKernelContext* ctx, int input, const char* name,
                            int64_t* out) {
  const Tensor& t = ctx->input(input);
  TF_RETURN_IF_ERROR(RequireScalar(name, t));
  *out = t.scalar<int64_t>()();
  return absl::OkStatus();
}

}  // namespace tensorflow::tf_swap

#endif  // TF_SWAP_CPP_OPS_OP_INPUTS_H_
