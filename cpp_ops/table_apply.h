// The kernel of every rule's dynamic-table apply (Adagrad-SWAP, FTRL-SWAP
// on a TfSwapDynamicTable): the rule's scalar inputs checked once into a
// plan by Rust, then the Rust apply on blocks of the table's stripes (which
// sums the rows of repeated ids first, in order of position). Entries of
// ids not stored (not admitted, or evicted) are skipped. Inputs: table,
// grad [n, dim], ids [n], the rule's hyper-parameters, then step,
// decay_rate, decay_period, accumulator_floor, as in the rule's sparse op.
//
// Rule requirements beyond swap_apply.h's: float rows only, and
//   static uint32_t Table(const tf_swap_table*, const int64_t* ids,
//       const float* grad, size_t n, size_t begin, size_t end, int64_t step,
//       const Plan*, tf_swap_error*);
#ifndef TF_SWAP_CPP_OPS_TABLE_APPLY_H_
#define TF_SWAP_CPP_OPS_TABLE_APPLY_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "dynamic_table.h"
#include "op_inputs.h"
#include "rust_call.h"
#include "swap_apply.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tf_swap.h"

namespace tensorflow::tf_swap {

// grad is [n, dim] for ids [n]; every other input after them a scalar.
inline absl::Status TableApplyShapeFn(shape_inference::InferenceContext* c) {
  shape_inference::ShapeHandle grad, ids, unused;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &grad));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, &ids));
  shape_inference::DimensionHandle n;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(grad, 0), c->Dim(ids, 0), &n));
  for (int i = 3; i < c->num_inputs(); ++i) {
    TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
  }
  return absl::OkStatus();
}

template <typename Rule>
class TableApplyOp : public OpKernel {
 public:
  static constexpr ScalarInputs kScalars = {3, 3 + Rule::kHyperScalars};

  explicit TableApplyOp(OpKernelConstruction* ctx) : OpKernel(ctx), rule_(ctx) {}

  void Compute(OpKernelContext* ctx) final {
    typename Rule::Plan plan;
    OP_REQUIRES_OK(ctx, rule_.template Prepare<float>(ctx, kScalars, &plan));
    int64_t step = 0;
    OP_REQUIRES_OK(ctx, ReadInt(ctx, kScalars.discount, "step", &step));
    core::RefCountPtr<DynamicTableResource> table;
    OP_REQUIRES_OK(ctx, LookupTable(ctx, 0, &table));
    const Tensor& grad = ctx->input(1);
    const Tensor& ids = ctx->input(2);
    const int64_t dim = static_cast<int64_t>(table->dim());
    OP_REQUIRES(ctx, TensorShapeUtils::IsVector(ids.shape()),
                absl::InvalidArgumentError(absl::StrCat(
                    "ids must be one-dimensional, got ",
                    ids.shape().DebugString())));
    const int64_t n = ids.dim_size(0);
    OP_REQUIRES(ctx, grad.shape() == TensorShape({n, dim}),
                absl::InvalidArgumentError(absl::StrCat(
                    "grad must be [", n, ", ", dim, "] for ", n,
                    " ids into rows of ", dim, ", got ",
                    grad.shape().DebugString())));
    if (n == 0) return;
    const int64_t* id_data = ids.flat<int64_t>().data();
    const float* grad_data = grad.flat<float>().data();
    const size_t count = static_cast<size_t>(n);
    OP_REQUIRES_OK(
        ctx, ShardStripes(ctx, count * static_cast<size_t>(dim),
                          [&](size_t begin, size_t end, tf_swap_error* error) {
                            return Rule::Table(table->table(), id_data,
                                               grad_data, count, begin, end,
                                               step, &plan, error);
                          }));
  }

 private:
  const Rule rule_;
};

}  // namespace tensorflow::tf_swap

#endif  // TF_SWAP_CPP_OPS_TABLE_APPLY_H_
