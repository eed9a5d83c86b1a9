// TfSwapResourceApplyAdagradSwap and TfSwapResourceSparseApplyAdagradSwap:
// Adagrad-SWAP (SPEC section 1) on resource variables. The kernel is
// swap_apply.h's; this file registers the ops and names the rule's slot,
// inputs and Rust exports. The math is in rust/kernels/adagrad_swap.rs.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "swap_apply.h"
#include "table_apply.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tf_swap.h"

namespace tensorflow::tf_swap {
namespace {

absl::Status AdagradSwapShapeFn(shape_inference::InferenceContext* c,
                                bool is_sparse) {
  return SwapApplyShapeFn(c, /*slots=*/1, is_sparse,
                          {"lr", "epsilon", "step", "decay_rate",
                           "decay_period", "accumulator_floor"});
}

}  // namespace

REGISTER_OP("TfSwapResourceApplyAdagradSwap")
    .Input("var: resource")
    .Input("accum: resource")
    .Input("power: resource")
    .Input("lr: T")
    .Input("epsilon: T")
    .Input("grad: T")
    .Input("step: int64")
    .Input("decay_rate: T")
    .Input("decay_period: int64")
    .Input("accumulator_floor: T")
    .Attr("T: {float, double}")
    .Attr("decay_mode: {'exact', 'once_per_update'} = 'exact'")
    .Attr("epsilon_placement: {'after_sqrt', 'inside_sqrt'} = 'after_sqrt'")
    .Attr("use_locking: bool = false")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      return AdagradSwapShapeFn(c, /*is_sparse=*/false);
    })
    .Doc(R"doc(
Adagrad-SWAP update of every row: the accumulator of a row is multiplied by
decay_rate once per decay_period steps (floored at accumulator_floor), then
accum += grad^2 and var -= lr * grad / (sqrt(accum) + epsilon) (or
sqrt(accum + epsilon) with epsilon_placement='inside_sqrt').
power: int64, one per row of var: the periods applied to that row.
step: the 1-based number of this update.
)doc");

REGISTER_OP("TfSwapResourceSparseApplyAdagradSwap")
    .Input("var: resource")
    .Input("accum: resource")
    .Input("power: resource")
    .Input("lr: T")
    .Input("epsilon: T")
    .Input("grad: T")
    .Input("indices: Tindices")
    .Input("step: int64")
    .Input("decay_rate: T")
    .Input("decay_period: int64")
    .Input("accumulator_floor: T")
    .Attr("T: {float, double}")
    .Attr("Tindices: {int32, int64}")
    .Attr("decay_mode: {'exact', 'once_per_update'} = 'exact'")
    .Attr("epsilon_placement: {'after_sqrt', 'inside_sqrt'} = 'after_sqrt'")
    .Attr("use_locking: bool = false")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      return AdagradSwapShapeFn(c, /*is_sparse=*/true);
    })
    .Doc(R"doc(
Adagrad-SWAP update of the rows of var named by indices. The gradient rows
of a repeated index are summed first (in order of position), so the row gets
one update whatever the thread count.
)doc");

REGISTER_OP("TfSwapDynamicTableApplyAdagradSwap")
    .Input("table: resource")
    .Input("grad: float")
    .Input("ids: int64")
    .Input("lr: float")
    .Input("epsilon: float")
    .Input("step: int64")
    .Input("decay_rate: float")
    .Input("decay_period: int64")
    .Input("accumulator_floor: float")
    .Attr("decay_mode: {'exact', 'once_per_update'} = 'exact'")
    .Attr("epsilon_placement: {'after_sqrt', 'inside_sqrt'} = 'after_sqrt'")
    .SetShapeFn(TableApplyShapeFn)
    .Doc(R"doc(
Adagrad-SWAP update of the entries of a one-slot TfSwapDynamicTable named by
ids, as TfSwapResourceSparseApplyAdagradSwap updates rows: repeated ids
summed first, each entry brought up to the current period by its power;
ids not stored are skipped. Each entry's last_step becomes step.
)doc");

namespace {

// Overloads that pick the Rust export for an element and index type.
uint32_t RustDense(float* var, float* const* slots, int64_t* power,
                   const float* grad, size_t rows, size_t inner, size_t begin,
                   size_t end, const tf_swap_adagrad_swap_plan* plan,
                   tf_swap_error* error) {
  return tf_swap_adagrad_swap_dense_f32(var, slots[0], power, grad, rows,
                                        inner, begin, end, plan, error);
}
uint32_t RustDense(double* var, double* const* slots, int64_t* power,
                   const double* grad, size_t rows, size_t inner, size_t begin,
                   size_t end, const tf_swap_adagrad_swap_plan* plan,
                   tf_swap_error* error) {
  return tf_swap_adagrad_swap_dense_f64(var, slots[0], power, grad, rows,
                                        inner, begin, end, plan, error);
}

#define TF_SWAP_RUST_SPARSE(T, TI, SUFFIX)                                     \
  uint32_t RustSparse(T* var, T* const* slots, int64_t* power, const T* grad, \
                      const TI* indices, size_t n, size_t rows, size_t inner,  \
                      size_t begin, size_t end,                                \
                      const tf_swap_adagrad_swap_plan* plan,                   \
                      tf_swap_error* error) {                                  \
    return tf_swap_adagrad_swap_sparse_##SUFFIX(var, slots[0], power, grad,    \
                                                indices, n, rows, inner,       \
                                                begin, end, plan, error);      \
  }
TF_SWAP_RUST_SPARSE(float, int32_t, f32_i32)
TF_SWAP_RUST_SPARSE(float, int64_t, f32_i64)
TF_SWAP_RUST_SPARSE(double, int32_t, f64_i32)
TF_SWAP_RUST_SPARSE(double, int64_t, f64_i64)
#undef TF_SWAP_RUST_SPARSE

// Inputs: var, accum, power, lr, epsilon, grad, [indices], step,
// decay_rate, decay_period, accumulator_floor.
struct AdagradSwapRule {
  static constexpr int kSlots = 1;
  static constexpr const char* kSlotNames[] = {"accum"};
  using Plan = tf_swap_adagrad_swap_plan;
  static constexpr int kHyperScalars = 2;  // lr, epsilon

  explicit AdagradSwapRule(OpKernelConstruction* ctx)
      : decay_mode(DecayModeCode(ctx)) {
    std::string placement;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon_placement", &placement));
    epsilon_placement = placement == "after_sqrt" ? 0 : 1;
  }

  static int GradInput(bool /*sparse*/) { return 5; }
  static ScalarInputs Scalars(bool sparse) { return {3, sparse ? 7 : 6}; }

  template <typename T>
  absl::Status Prepare(OpKernelContext* ctx, ScalarInputs inputs,
                       Plan* plan) const {
    tf_swap_adagrad_swap_hyper hyper;
    hyper.epsilon_placement = epsilon_placement;
    TF_RETURN_IF_ERROR(
        ReadFloat<T>(ctx, inputs.hyper, "lr", &hyper.learning_rate));
    TF_RETURN_IF_ERROR(
        ReadFloat<T>(ctx, inputs.hyper + 1, "epsilon", &hyper.epsilon));
    TF_RETURN_IF_ERROR(ReadDiscount<T>(ctx, inputs.discount, decay_mode,
                                       &hyper.discount));
    tf_swap_error error;
    return StatusFromRust(tf_swap_adagrad_swap_prepare(plan, &hyper, &error),
                          error);
  }

  template <typename T>
  static uint32_t Dense(T* var, T* const* slots, int64_t* power, const T* grad,
                        size_t rows, size_t inner, size_t begin, size_t end,
                        const Plan* plan, tf_swap_error* error) {
    return RustDense(var, slots, power, grad, rows, inner, begin, end, plan,
                     error);
  }

  template <typename T, typename I>
  static uint32_t Sparse(T* var, T* const* slots, int64_t* power, const T* grad,
                         const I* indices, size_t n, size_t rows, size_t inner,
                         size_t begin, size_t end, const Plan* plan,
                         tf_swap_error* error) {
    return RustSparse(var, slots, power, grad, indices, n, rows, inner, begin,
                      end, plan, error);
  }

  static uint32_t Table(const tf_swap_table* table, const int64_t* ids,
                        const float* grad, size_t n, size_t begin, size_t end,
                        int64_t step, const Plan* plan, tf_swap_error* error) {
    return tf_swap_table_adagrad_swap_f32(table, ids, grad, n, begin, end, step,
                                          plan, error);
  }

  uint32_t decay_mode = 0;
  uint32_t epsilon_placement = 0;
};

}  // namespace

#define REGISTER_CPU(T)                                                  \
  TF_SWAP_REGISTER_SWAP_APPLY("TfSwapResourceApplyAdagradSwap",          \
                              "TfSwapResourceSparseApplyAdagradSwap",    \
                              AdagradSwapRule, T)
REGISTER_CPU(float)
REGISTER_CPU(double)
#undef REGISTER_CPU
REGISTER_KERNEL_BUILDER(
    Name("TfSwapDynamicTableApplyAdagradSwap").Device(DEVICE_CPU),
    TableApplyOp<AdagradSwapRule>);

}  // namespace tensorflow::tf_swap
