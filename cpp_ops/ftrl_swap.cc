// TfSwapResourceApplyFtrlSwap and TfSwapResourceSparseApplyFtrlSwap:
// FTRL-SWAP (SPEC section 4) on resource variables. The kernel is
// swap_apply.h's; this file registers the ops and names the rule's slots,
// inputs and Rust exports. The math is in rust/kernels/ftrl_swap.rs.

#include <cstdint>

#include "absl/status/status.h"
#include "swap_apply.h"
#include "table_apply.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tf_swap.h"

namespace tensorflow::tf_swap {
namespace {

absl::Status FtrlSwapShapeFn(shape_inference::InferenceContext* c,
                             bool is_sparse) {
  return SwapApplyShapeFn(
      c, /*slots=*/2, is_sparse,
      {"lr", "l1", "l2", "l2_shrinkage", "lr_power", "beta", "staleness_scale",
       "step", "decay_rate", "decay_period", "accumulator_floor"});
}

}  // namespace

REGISTER_OP("TfSwapResourceApplyFtrlSwap")
    .Input("var: resource")
    .Input("accum: resource")
    .Input("linear: resource")
    .Input("power: resource")
    .Input("grad: T")
    .Input("lr: T")
    .Input("l1: T")
    .Input("l2: T")
    .Input("l2_shrinkage: T")
    .Input("lr_power: T")
    .Input("beta: T")
    .Input("staleness_scale: T")
    .Input("step: int64")
    .Input("decay_rate: T")
    .Input("decay_period: int64")
    .Input("accumulator_floor: T")
    .Attr("T: {float, double}")
    .Attr("decay_mode: {'exact', 'once_per_update'} = 'exact'")
    .Attr("use_locking: bool = false")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      return FtrlSwapShapeFn(c, /*is_sparse=*/false);
    })
    .Doc(R"doc(
FTRL-SWAP update of every row (ResourceApplyFtrlV2 with
multiply_linear_by_lr=False, plus the period discount): once per
decay_period steps a row's accum is multiplied by decay_rate (floored at
accumulator_floor) and its linear re-anchored so that var is unchanged;
staleness_scale scales the gradient's contribution to linear; beta adds
beta / (2 lr) to l2. power: int64, one per row of var. step: the 1-based
number of this update.
)doc");

REGISTER_OP("TfSwapResourceSparseApplyFtrlSwap")
    .Input("var: resource")
    .Input("accum: resource")
    .Input("linear: resource")
    .Input("power: resource")
    .Input("grad: T")
    .Input("indices: Tindices")
    .Input("lr: T")
    .Input("l1: T")
    .Input("l2: T")
    .Input("l2_shrinkage: T")
    .Input("lr_power: T")
    .Input("beta: T")
    .Input("staleness_scale: T")
    .Input("step: int64")
    .Input("decay_rate: T")
    .Input("decay_period: int64")
    .Input("accumulator_floor: T")
    .Attr("T: {float, double}")
    .Attr("Tindices: {int32, int64}")
    .Attr("decay_mode: {'exact', 'once_per_update'} = 'exact'")
    .Attr("use_locking: bool = false")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      return FtrlSwapShapeFn(c, /*is_sparse=*/true);
    })
    .Doc(R"doc(
FTRL-SWAP update of the rows of var named by indices. The gradient rows of
a repeated index are summed first (in order of position), so the row gets
one update whatever the thread count.
)doc");

REGISTER_OP("TfSwapDynamicTableApplyFtrlSwap")
    .Input("table: resource")
    .Input("grad: float")
    .Input("ids: int64")
    .Input("lr: float")
    .Input("l1: float")
    .Input("l2: float")
    .Input("l2_shrinkage: float")
    .Input("lr_power: float")
    .Input("beta: float")
    .Input("staleness_scale: float")
    .Input("step: int64")
    .Input("decay_rate: float")
    .Input("decay_period: int64")
    .Input("accumulator_floor: float")
    .Attr("decay_mode: {'exact', 'once_per_update'} = 'exact'")
    .SetShapeFn(TableApplyShapeFn)
    .Doc(R"doc(
FTRL-SWAP update of the entries of a two-slot (n, z) TfSwapDynamicTable
named by ids, as TfSwapResourceSparseApplyFtrlSwap updates rows; ids not
stored are skipped. Each entry's last_step becomes step.
)doc");

namespace {

// Overloads that pick the Rust export for an element and index type.
uint32_t RustDense(float* var, float* const* slots, int64_t* power,
                   const float* grad, size_t rows, size_t inner, size_t begin,
                   size_t end, const tf_swap_ftrl_swap_plan* plan,
                   tf_swap_error* error) {
  return tf_swap_ftrl_swap_dense_f32(var, slots[0], slots[1], power, grad,
                                     rows, inner, begin, end, plan, error);
}
uint32_t RustDense(double* var, double* const* slots, int64_t* power,
                   const double* grad, size_t rows, size_t inner, size_t begin,
                   size_t end, const tf_swap_ftrl_swap_plan* plan,
                   tf_swap_error* error) {
  return tf_swap_ftrl_swap_dense_f64(var, slots[0], slots[1], power, grad,
                                     rows, inner, begin, end, plan, error);
}

#define TF_SWAP_RUST_SPARSE(T, TI, SUFFIX)                                     \
  uint32_t RustSparse(T* var, T* const* slots, int64_t* power, const T* grad, \
                      const TI* indices, size_t n, size_t rows, size_t inner,  \
                      size_t begin, size_t end,                                \
                      const tf_swap_ftrl_swap_plan* plan,                      \
                      tf_swap_error* error) {                                  \
    return tf_swap_ftrl_swap_sparse_##SUFFIX(var, slots[0], slots[1], power,   \
                                             grad, indices, n, rows, inner,    \
                                             begin, end, plan, error);         \
  }
TF_SWAP_RUST_SPARSE(float, int32_t, f32_i32)
TF_SWAP_RUST_SPARSE(float, int64_t, f32_i64)
TF_SWAP_RUST_SPARSE(double, int32_t, f64_i32)
TF_SWAP_RUST_SPARSE(double, int64_t, f64_i64)
#undef TF_SWAP_RUST_SPARSE

// Inputs: var, accum, linear, power, grad, [indices], lr, l1, l2,
// l2_shrinkage, lr_power, beta, staleness_scale, step, decay_rate,
// decay_period, accumulator_floor.
struct FtrlSwapRule {
  static constexpr int kSlots = 2;
  static constexpr const char* kSlotNames[] = {"accum", "linear"};
  using Plan = tf_swap_ftrl_swap_plan;
  // lr, l1, l2, l2_shrinkage, lr_power, beta, staleness_scale
  static constexpr int kHyperScalars = 7;

  explicit FtrlSwapRule(OpKernelConstruction* ctx)
      : decay_mode(DecayModeCode(ctx)) {}

  static int GradInput(bool /*sparse*/) { return 4; }
  static ScalarInputs Scalars(bool sparse) {
    const int first = sparse ? 6 : 5;
    return {first, first + kHyperScalars};
  }

  template <typename T>
  absl::Status Prepare(OpKernelContext* ctx, ScalarInputs inputs,
                       Plan* plan) const {
    tf_swap_ftrl_swap_hyper hyper;
    const std::pair<const char*, double*> floats[] = {
        {"lr", &hyper.learning_rate},
        {"l1", &hyper.l1},
        {"l2", &hyper.l2},
        {"l2_shrinkage", &hyper.l2_shrinkage},
        {"lr_power", &hyper.lr_power},
        {"beta", &hyper.beta},
        {"staleness_scale", &hyper.staleness_scale}};
    for (int i = 0; i < kHyperScalars; ++i) {
      TF_RETURN_IF_ERROR(ReadFloat<T>(ctx, inputs.hyper + i, floats[i].first,
                                      floats[i].second));
    }
    TF_RETURN_IF_ERROR(
        ReadDiscount<T>(ctx, inputs.discount, decay_mode, &hyper.discount));
    tf_swap_error error;
    return StatusFromRust(tf_swap_ftrl_swap_prepare(plan, &hyper, &error),
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
    return tf_swap_table_ftrl_swap_f32(table, ids, grad, n, begin, end, step,
                                       plan, error);
  }

  uint32_t decay_mode = 0;
};

}  // namespace

#define REGISTER_CPU(T)                                                  \
  TF_SWAP_REGISTER_SWAP_APPLY("TfSwapResourceApplyFtrlSwap",             \
                              "TfSwapResourceSparseApplyFtrlSwap",       \
                              FtrlSwapRule, T)
REGISTER_CPU(float)
REGISTER_CPU(double)
#undef REGISTER_CPU
REGISTER_KERNEL_BUILDER(Name("TfSwapDynamicTableApplyFtrlSwap").Device(DEVICE_CPU),
                        TableApplyOp<FtrlSwapRule>);

}  // namespace tensorflow::tf_swap
