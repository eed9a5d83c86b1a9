// TfSwapLocalBatchNorm and TfSwapLocalBatchNormGrad: training batch
// normalization over the last dimension (SPEC section 3); inference is
// stock TensorFlow ops (python/tf_swap/ops/local_batch_norm.py). These kernels validate shapes and call the
// Rust kernels; the math is in rust/kernels/batch_norm.rs.
//
// Each op runs two sharded phases: phase 1 over fixed blocks of rows
// (per-channel partial sums, combined in block order into a double "plan"),
// phase 2 over blocks of rows (elementwise, from the plan). The block cut
// depends only on the shape, so outputs are identical for any thread count.

#define EIGEN_USE_THREADS

#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rust_call.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tf_swap.h"

namespace tensorflow::tf_swap {
namespace {

using shape_inference::DimensionHandle;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

// x: rank >= 2; each named per-channel input: [C] with C = x's last dim.
absl::Status ChannelsShape(InferenceContext* c, const char* x_name,
                           std::initializer_list<const char*> per_channel,
                           ShapeHandle* x, DimensionHandle* channels) {
  std::vector<ShapeHandle> shapes;
  TF_RETURN_IF_ERROR(c->input(x_name, &shapes));
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(shapes[0], 2, x));
  *channels = c->Dim(*x, -1);
  for (const char* name : per_channel) {
    TF_RETURN_IF_ERROR(c->input(name, &shapes));
    ShapeHandle vector;
    TF_RETURN_IF_ERROR(c->WithRank(shapes[0], 1, &vector));
    TF_RETURN_IF_ERROR(c->Merge(*channels, c->Dim(vector, 0), channels));
  }
  return absl::OkStatus();
}

absl::Status ScalarInput(InferenceContext* c, const char* name) {
  std::vector<ShapeHandle> shapes;
  TF_RETURN_IF_ERROR(c->input(name, &shapes));
  ShapeHandle unused;
  return c->WithRank(shapes[0], 0, &unused);
}

absl::Status ForwardShapeFn(InferenceContext* c) {
  ShapeHandle x;
  DimensionHandle channels;
  TF_RETURN_IF_ERROR(ChannelsShape(c, "x", {"gamma", "beta"}, &x, &channels));
  TF_RETURN_IF_ERROR(ScalarInput(c, "epsilon"));
  c->set_output(0, x);
  c->set_output(1, c->Vector(channels));
  c->set_output(2, c->Vector(channels));
  c->set_output(3, c->Vector(channels));
  return absl::OkStatus();
}

absl::Status GradShapeFn(InferenceContext* c) {
  ShapeHandle x;
  DimensionHandle channels;
  TF_RETURN_IF_ERROR(ChannelsShape(
      c, "x", {"gamma", "batch_mean", "batch_inv_std"}, &x, &channels));
  std::vector<ShapeHandle> dy;
  TF_RETURN_IF_ERROR(c->input("dy", &dy));
  TF_RETURN_IF_ERROR(c->Merge(x, dy[0], &x));
  c->set_output(0, x);
  c->set_output(1, c->Vector(channels));
  c->set_output(2, c->Vector(channels));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("TfSwapLocalBatchNorm")
    .Input("x: T")
    .Input("gamma: T")
    .Input("beta: T")
    .Input("epsilon: T")
    .Output("y: T")
    .Output("batch_mean: T")
    .Output("batch_inv_std: T")
    .Output("batch_variance: T")
    .Attr("T: {float, double}")
    .SetShapeFn(ForwardShapeFn)
    .Doc(R"doc(
Training batch normalization over the last dimension of x ([..., C]) with
this batch's own statistics: mean and biased variance per channel over all
other dimensions, batch_inv_std = 1 / sqrt(var + epsilon),
y = gamma * (x - mean) * batch_inv_std + beta. Accumulates in float64.
batch_variance: the biased variance (for moving statistics).
epsilon: scalar, finite and > 0.
)doc");

REGISTER_OP("TfSwapLocalBatchNormGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("gamma: T")
    .Input("batch_mean: T")
    .Input("batch_inv_std: T")
    .Output("dx: T")
    .Output("dgamma: T")
    .Output("dbeta: T")
    .Attr("T: {float, double}")
    .SetShapeFn(GradShapeFn)
    .Doc(R"doc(
Gradient of TfSwapLocalBatchNorm's y with respect to x, gamma and beta.
batch_mean and batch_inv_std are that op's outputs for the same x.
)doc");

namespace {

// Overloads that pick the Rust export for an element type.
#define TF_SWAP_RUST_BN(T, SUFFIX)                                            \
  uint32_t RustPartials(double* partials, const T* x, size_t rows,            \
                        size_t channels, size_t begin, size_t end,            \
                        tf_swap_error* error) {                               \
    return tf_swap_local_batch_norm_partials_##SUFFIX(partials, x, rows,      \
                                                      channels, begin, end,   \
                                                      error);                 \
  }                                                                           \
  uint32_t RustFinish(T* batch_mean, T* batch_inv_std, T* batch_variance,    \
                      double* plan, const double* partials, const T* gamma,   \
                      const T* beta, size_t rows, size_t channels,            \
                      double epsilon, tf_swap_error* error) {                 \
    return tf_swap_local_batch_norm_finish_##SUFFIX(                          \
        batch_mean, batch_inv_std, batch_variance, plan, partials, gamma,     \
        beta, rows, channels, epsilon, error);                                \
  }                                                                           \
  uint32_t RustNormalize(T* y, const T* x, const double* plan, size_t rows,   \
                         size_t channels, size_t begin, size_t end,           \
                         tf_swap_error* error) {                              \
    return tf_swap_local_batch_norm_normalize_##SUFFIX(                       \
        y, x, plan, rows, channels, begin, end, error);                       \
  }                                                                           \
  uint32_t RustGradPartials(double* partials, const T* dy, const T* x,        \
                            const T* batch_mean, size_t rows,                 \
                            size_t channels, size_t begin, size_t end,        \
                            tf_swap_error* error) {                           \
    return tf_swap_local_batch_norm_grad_partials_##SUFFIX(                   \
        partials, dy, x, batch_mean, rows, channels, begin, end, error);      \
  }                                                                           \
  uint32_t RustGradFinish(T* dgamma, T* dbeta, double* plan,                  \
                          const double* partials, const T* gamma,             \
                          const T* batch_mean, const T* batch_inv_std,        \
                          size_t rows, size_t channels,                       \
                          tf_swap_error* error) {                             \
    return tf_swap_local_batch_norm_grad_finish_##SUFFIX(                     \
        dgamma, dbeta, plan, partials, gamma, batch_mean, batch_inv_std,      \
        rows, channels, error);                                               \
  }                                                                           \
  uint32_t RustGradApply(T* dx, const T* dy, const T* x, const double* plan,  \
                         size_t rows, size_t channels, size_t begin,          \
                         size_t end, tf_swap_error* error) {                  \
    return tf_swap_local_batch_norm_grad_apply_##SUFFIX(                      \
        dx, dy, x, plan, rows, channels, begin, end, error);                  \
  }
TF_SWAP_RUST_BN(float, f32)
TF_SWAP_RUST_BN(double, f64)
#undef TF_SWAP_RUST_BN

// Rows N (the product of all but the last dimension) and channels C.
struct Layout {
  size_t rows;
  size_t channels;
};

// x must be [..., C] with rank >= 2; each per-channel input must be [C].
absl::Status CheckLayout(
    const Tensor& x, std::initializer_list<std::pair<const char*, const Tensor*>>
                         per_channel,
    Layout* layout) {
  if (x.dims() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "x must have rank >= 2 ([N, ..., C], channels last), got shape ",
        x.shape().DebugString()));
  }
  const int64_t channels = x.dim_size(x.dims() - 1);
  for (const auto& [name, t] : per_channel) {
    if (t->dims() != 1 || t->dim_size(0) != channels) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, " must have shape [C] = [", channels,
          "] (the last dimension of x ", x.shape().DebugString(), "), got ",
          t->shape().DebugString()));
    }
  }
  // N is the product of the leading dimensions (also when C is 0).
  int64_t rows = 1;
  for (int d = 0; d + 1 < x.dims(); ++d) rows *= x.dim_size(d);
  layout->rows = static_cast<size_t>(rows);
  layout->channels = static_cast<size_t>(channels);
  return absl::OkStatus();
}

absl::Status RequireNonEmptyBatch(const Tensor& x, const Layout& layout) {
  if (layout.rows > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "x has an empty batch (N == 0): shape ", x.shape().DebugString(),
      "; batch statistics of an empty batch are undefined"));
}

// Rust checks epsilon's value (finite, > 0) when it combines the statistics.
template <typename T>
absl::Status ReadEpsilon(const Tensor& t, double* epsilon) {
  if (!TensorShapeUtils::IsScalar(t.shape())) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon is not a scalar: ", t.shape().DebugString()));
  }
  *epsilon = static_cast<double>(t.scalar<T>()());
  return absl::OkStatus();
}

// Runs `apply` on the statistics blocks of the layout (a fixed cut of the
// rows), sharded over the intra-op pool.
absl::Status ShardStatBlocks(
    OpKernelContext* ctx, const Layout& layout, size_t blocks,
    const std::function<uint32_t(size_t, size_t, tf_swap_error*)>& apply) {
  return ShardRows(ctx, blocks, layout.rows * layout.channels, apply);
}

// The statistics blocks of the layout (a fixed cut of the rows).
absl::Status StatBlocks(const Layout& layout, size_t* blocks) {
  tf_swap_error error;
  return StatusFromRust(tf_swap_local_batch_norm_stat_blocks(
                            blocks, layout.rows, layout.channels, &error),
                        error);
}

// A double temporary of `size` elements (the partials, the plan).
absl::Status AllocateDoubles(OpKernelContext* ctx, size_t size, Tensor* out) {
  return ctx->allocate_temp(
      DT_DOUBLE, TensorShape({static_cast<int64_t>(size)}), out);
}

template <typename T>
class LocalBatchNormOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& gamma = ctx->input(1);
    const Tensor& beta = ctx->input(2);
    Layout layout;
    OP_REQUIRES_OK(ctx, CheckLayout(x, {{"gamma", &gamma}, {"beta", &beta}},
                                    &layout));
    double epsilon = 0;
    OP_REQUIRES_OK(ctx, ReadEpsilon<T>(ctx->input(3), &epsilon));
    OP_REQUIRES_OK(ctx, RequireNonEmptyBatch(x, layout));
    const int64_t channels = static_cast<int64_t>(layout.channels);
    Tensor *y, *batch_mean, *batch_inv_std, *batch_variance;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({channels}),
                                             &batch_mean));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({channels}),
                                             &batch_inv_std));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({channels}),
                                             &batch_variance));
    size_t blocks = 0;
    OP_REQUIRES_OK(ctx, StatBlocks(layout, &blocks));
    Tensor partials, plan;
    OP_REQUIRES_OK(ctx, AllocateDoubles(ctx, 2 * layout.channels * blocks,
                                        &partials));
    OP_REQUIRES_OK(ctx, AllocateDoubles(ctx, 3 * layout.channels, &plan));
    double* partials_data = partials.flat<double>().data();
    double* plan_data = plan.flat<double>().data();
    const T* x_data = x.flat<T>().data();
    T* y_data = y->flat<T>().data();
    OP_REQUIRES_OK(
        ctx, ShardStatBlocks(ctx, layout, blocks,
                             [&](size_t begin, size_t end, tf_swap_error* error) {
                               return RustPartials(partials_data, x_data,
                                                   layout.rows, layout.channels,
                                                   begin, end, error);
                             }));
    tf_swap_error error;
    OP_REQUIRES_OK(
        ctx, StatusFromRust(
                 RustFinish(batch_mean->flat<T>().data(),
                            batch_inv_std->flat<T>().data(),
                            batch_variance->flat<T>().data(), plan_data,
                            partials_data, gamma.flat<T>().data(),
                            beta.flat<T>().data(), layout.rows,
                            layout.channels, epsilon, &error),
                 error));
    OP_REQUIRES_OK(
        ctx, ShardRows(ctx, layout.rows, layout.rows * layout.channels,
                       [&](size_t begin, size_t end, tf_swap_error* error) {
                         return RustNormalize(y_data, x_data, plan_data,
                                              layout.rows, layout.channels,
                                              begin, end, error);
                       }));
  }
};

template <typename T>
class LocalBatchNormGradOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    const Tensor& gamma = ctx->input(2);
    const Tensor& batch_mean = ctx->input(3);
    const Tensor& batch_inv_std = ctx->input(4);
    Layout layout;
    OP_REQUIRES_OK(ctx, CheckLayout(x,
                                    {{"gamma", &gamma},
                                     {"batch_mean", &batch_mean},
                                     {"batch_inv_std", &batch_inv_std}},
                                    &layout));
    OP_REQUIRES(ctx, dy.shape() == x.shape(),
                absl::InvalidArgumentError(absl::StrCat(
                    "dy and x do not have the same shape: ",
                    dy.shape().DebugString(), " ", x.shape().DebugString())));
    OP_REQUIRES_OK(ctx, RequireNonEmptyBatch(x, layout));
    const int64_t channels = static_cast<int64_t>(layout.channels);
    Tensor *dx, *dgamma, *dbeta;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(1, TensorShape({channels}), &dgamma));
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(2, TensorShape({channels}), &dbeta));
    size_t blocks = 0;
    OP_REQUIRES_OK(ctx, StatBlocks(layout, &blocks));
    Tensor partials, plan;
    OP_REQUIRES_OK(ctx, AllocateDoubles(ctx, 3 * layout.channels * blocks,
                                        &partials));
    OP_REQUIRES_OK(ctx, AllocateDoubles(ctx, 4 * layout.channels, &plan));
    double* partials_data = partials.flat<double>().data();
    double* plan_data = plan.flat<double>().data();
    const T* dy_data = dy.flat<T>().data();
    const T* x_data = x.flat<T>().data();
    const T* mean_data = batch_mean.flat<T>().data();
    T* dx_data = dx->flat<T>().data();
    OP_REQUIRES_OK(
        ctx, ShardStatBlocks(ctx, layout, blocks,
                             [&](size_t begin, size_t end, tf_swap_error* error) {
                               return RustGradPartials(
                                   partials_data, dy_data, x_data, mean_data,
                                   layout.rows, layout.channels, begin, end,
                                   error);
                             }));
    tf_swap_error error;
    OP_REQUIRES_OK(
        ctx, StatusFromRust(
                 RustGradFinish(dgamma->flat<T>().data(),
                                dbeta->flat<T>().data(), plan_data,
                                partials_data, gamma.flat<T>().data(),
                                mean_data, batch_inv_std.flat<T>().data(),
                                layout.rows, layout.channels, &error),
                 error));
    OP_REQUIRES_OK(
        ctx, ShardRows(ctx, layout.rows, layout.rows * layout.channels,
                       [&](size_t begin, size_t end, tf_swap_error* error) {
                         return RustGradApply(dx_data, dy_data, x_data,
                                              plan_data, layout.rows,
                                              layout.channels, begin, end,
                                              error);
                       }));
  }
};

}  // namespace

#define REGISTER_CPU(T)                                                   \
  REGISTER_KERNEL_BUILDER(                                                \
      Name("TfSwapLocalBatchNorm").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
      LocalBatchNormOp<T>);                                               \
  REGISTER_KERNEL_BUILDER(Name("TfSwapLocalBatchNormGrad")                \
                              .Device(DEVICE_CPU)                         \
                              .TypeConstraint<T>("T"),                    \
                          LocalBatchNormGradOp<T>);
REGISTER_CPU(float)
REGISTER_CPU(double)
#undef REGISTER_CPU

}  // namespace tensorflow::tf_swap
