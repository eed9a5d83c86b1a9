// TfSwapResourceApplyAdagradSwap and TfSwapResourceSparseApplyAdagradSwap:
// Adagrad-SWAP (SPEC section 1) on resource variables. These kernels lock,
// validate shapes and dtypes, and call the Rust kernels; the math is in
// rust/kernels/adagrad_swap.rs.
//
// Locking follows TensorFlow's training ops (training_op_helpers.h): var and
// accum are locked together in address order; power, a variable only these
// ops touch and of another dtype (the helper's copy-on-read step is typed),
// is locked after them, so every tf_swap op takes the locks in one order.
// With use_locking=false sparse applies take shared locks and may run
// concurrently on one variable (Hogwild, as TensorFlow allows); one op never
// races with itself.

// training_op_helpers.h runs Eigen on the thread-pool device.
#define EIGEN_USE_THREADS

#include <cstdint>
#include <string>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rust_call.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "tf_swap.h"

namespace tensorflow::tf_swap {
namespace {

using CPUDevice = Eigen::ThreadPoolDevice;
using shape_inference::DimensionHandle;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

// The shape of a resource input from its handle data, as TF's
// ShapeOrHandleShape in core/ops/training_ops.cc.
ShapeHandle HandleShape(InferenceContext* c, int input) {
  auto* handle_data = c->input_handle_shapes_and_types(input);
  if (handle_data != nullptr && handle_data->size() == 1) {
    return (*handle_data)[0].shape;
  }
  return c->UnknownShape();
}

template <bool is_sparse>
absl::Status AdagradSwapShapeFn(InferenceContext* c) {
  ShapeHandle var = HandleShape(c, 0);
  TF_RETURN_IF_ERROR(c->Merge(var, HandleShape(c, 1), &var));
  ShapeHandle unused;
  for (const char* scalar : {"lr", "epsilon", "step", "decay_rate",
                             "decay_period", "accumulator_floor"}) {
    std::vector<ShapeHandle> shapes;
    TF_RETURN_IF_ERROR(c->input(scalar, &shapes));
    TF_RETURN_IF_ERROR(c->WithRank(shapes[0], 0, &unused));
  }
  std::vector<ShapeHandle> grads;
  TF_RETURN_IF_ERROR(c->input("grad", &grads));
  ShapeHandle grad = grads[0];
  if (is_sparse) {
    std::vector<ShapeHandle> index_shapes;
    TF_RETURN_IF_ERROR(c->input("indices", &index_shapes));
    ShapeHandle indices;
    TF_RETURN_IF_ERROR(c->WithRank(index_shapes[0], 1, &indices));
    DimensionHandle n;
    TF_RETURN_IF_ERROR(c->Merge(c->Dim(indices, 0), c->Dim(grad, 0), &n));
    ShapeHandle var_rows_tail, grad_tail;
    TF_RETURN_IF_ERROR(c->Subshape(var, 1, &var_rows_tail));
    TF_RETURN_IF_ERROR(c->Subshape(grad, 1, &grad_tail));
    TF_RETURN_IF_ERROR(c->Merge(var_rows_tail, grad_tail, &unused));
  } else {
    TF_RETURN_IF_ERROR(c->Merge(var, grad, &var));
  }
  // power holds one int64 per row of var (a scalar for a scalar var).
  ShapeHandle power = HandleShape(c, 2);
  if (c->RankKnown(var)) {
    ShapeHandle expected =
        c->Rank(var) == 0 ? c->Scalar() : c->Vector(c->Dim(var, 0));
    TF_RETURN_IF_ERROR(c->Merge(power, expected, &unused));
  }
  return absl::OkStatus();
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
    .SetShapeFn(AdagradSwapShapeFn</*is_sparse=*/false>)
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
    .SetShapeFn(AdagradSwapShapeFn</*is_sparse=*/true>)
    .Doc(R"doc(
Adagrad-SWAP update of the rows of var named by indices. The gradient rows
of a repeated index are summed first (in order of position), so the row gets
one update whatever the thread count.
)doc");

namespace {

// Overloads that pick the Rust export for an element and index type.
uint32_t RustDense(float* var, float* accum, int64_t* power, const float* grad,
                   size_t rows, size_t inner, size_t begin, size_t end,
                   const tf_swap_adagrad_swap_hyper* hyper,
                   tf_swap_error* error) {
  return tf_swap_adagrad_swap_dense_f32(var, accum, power, grad, rows, inner,
                                        begin, end, hyper, error);
}
uint32_t RustDense(double* var, double* accum, int64_t* power,
                   const double* grad, size_t rows, size_t inner, size_t begin,
                   size_t end, const tf_swap_adagrad_swap_hyper* hyper,
                   tf_swap_error* error) {
  return tf_swap_adagrad_swap_dense_f64(var, accum, power, grad, rows, inner,
                                        begin, end, hyper, error);
}

#define TF_SWAP_RUST_SPARSE(T, TI, SUFFIX)                                   \
  uint32_t RustSparse(T* var, T* accum, int64_t* power, const T* grad,      \
                      const TI* indices, size_t n, size_t rows, size_t inner, \
                      size_t begin, size_t end,                              \
                      const tf_swap_adagrad_swap_hyper* hyper,               \
                      tf_swap_error* error) {                                \
    return tf_swap_adagrad_swap_sparse_##SUFFIX(var, accum, power, grad,     \
                                                indices, n, rows, inner,     \
                                                begin, end, hyper, error);   \
  }                                                                          \
  uint32_t RustSumDuplicates(int64_t* unique_indices, T* summed,             \
                             size_t* unique_count, const TI* indices,        \
                             const T* grad, size_t n, size_t inner,          \
                             tf_swap_error* error) {                         \
    return tf_swap_sum_duplicates_##SUFFIX(unique_indices, summed,           \
                                           unique_count, indices, grad, n,   \
                                           inner, error);                    \
  }
TF_SWAP_RUST_SPARSE(float, int32_t, f32_i32)
TF_SWAP_RUST_SPARSE(float, int64_t, f32_i64)
TF_SWAP_RUST_SPARSE(double, int32_t, f64_i32)
TF_SWAP_RUST_SPARSE(double, int64_t, f64_i64)
#undef TF_SWAP_RUST_SPARSE

uint32_t RustCheckIndices(const int32_t* indices, size_t n, size_t rows,
                          bool* has_duplicates, tf_swap_error* error) {
  return tf_swap_check_indices_i32(indices, n, rows, has_duplicates, error);
}
uint32_t RustCheckIndices(const int64_t* indices, size_t n, size_t rows,
                          bool* has_duplicates, tf_swap_error* error) {
  return tf_swap_check_indices_i64(indices, n, rows, has_duplicates, error);
}

// State and checks both Adagrad-SWAP kernels share.
template <typename T>
class AdagradSwapOpBase : public OpKernel {
 public:
  explicit AdagradSwapOpBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("use_locking", &use_locking_));
    std::string decay_mode, epsilon_placement;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decay_mode", &decay_mode));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon_placement", &epsilon_placement));
    decay_mode_ = decay_mode == "exact" ? 0 : 1;
    epsilon_placement_ = epsilon_placement == "after_sqrt" ? 0 : 1;
  }

 protected:
  // Reads the scalar inputs and has Rust validate them. `first_scalar` is
  // the index of lr; the sparse op has `indices` between grad and step.
  // Inputs are read by index: by name each costs a lookup in the op's
  // input map, on every call.
  absl::Status ReadHyper(OpKernelContext* ctx, int step_input,
                         tf_swap_adagrad_swap_hyper* hyper) const {
    hyper->decay_mode = decay_mode_;
    hyper->epsilon_placement = epsilon_placement_;
    const std::tuple<int, const char*, double*> floats[] = {
        {3, "lr", &hyper->learning_rate},
        {4, "epsilon", &hyper->epsilon},
        {step_input + 1, "decay_rate", &hyper->decay_rate},
        {step_input + 3, "accumulator_floor", &hyper->accumulator_floor}};
    for (const auto& [input, name, field] : floats) {
      const Tensor& t = ctx->input(input);
      TF_RETURN_IF_ERROR(RequireScalar(name, t));
      *field = static_cast<double>(t.scalar<T>()());
    }
    const std::tuple<int, const char*, int64_t*> ints[] = {
        {step_input, "step", &hyper->step},
        {step_input + 2, "decay_period", &hyper->decay_period}};
    for (const auto& [input, name, field] : ints) {
      const Tensor& t = ctx->input(input);
      TF_RETURN_IF_ERROR(RequireScalar(name, t));
      *field = t.scalar<int64_t>()();
    }
    tf_swap_error error;
    return StatusFromRust(tf_swap_adagrad_swap_check_hyper(hyper, &error),
                          error);
  }

  // Before locking: var, accum and power are three different variables
  // holding T, T and int64. TF's lock and copy-on-write helpers copy the
  // buffer as T and would abort on a variable of another dtype, and two
  // inputs naming one variable would get two buffers (the second read
  // copies on write) and a nonsense update. The dtypes come from the
  // handles' metadata, recorded when the variables were created, so the
  // check costs no resource lookup (the locks and reads below make the
  // lookups TF's own ops make); a handle without metadata is looked up. An
  // uninitialized variable holds an empty tensor of its dtype and fails the
  // shape checks, as with TF's training ops.
  absl::Status CheckHandles(OpKernelContext* ctx) const {
    static constexpr const char* kNames[] = {"var", "accum", "power"};
    const DataType dtypes[] = {DataTypeToEnum<T>::v(), DataTypeToEnum<T>::v(),
                               DT_INT64};
    const ResourceHandle* handles[3];
    for (int i = 0; i < 3; ++i) handles[i] = &HandleFromInput(ctx, i);
    for (int i = 0; i < 3; ++i) {
      for (int j = i + 1; j < 3; ++j) {
        if (SameVariable(*handles[i], *handles[j])) {
          return absl::InvalidArgumentError(absl::StrCat(
              kNames[i], " and ", kNames[j], " are the same variable (",
              handles[i]->name(), "); each needs its own"));
        }
      }
    }
    for (int i = 0; i < 3; ++i) {
      DataType dtype;
      TF_RETURN_IF_ERROR(VariableDtype(ctx, *handles[i], &dtype));
      if (dtype != dtypes[i]) {
        return absl::InvalidArgumentError(absl::StrCat(
            kNames[i], " has dtype ", DataTypeString(dtype),
            " but the op expects ", DataTypeString(dtypes[i])));
      }
    }
    return absl::OkStatus();
  }

  static absl::Status VariableDtype(OpKernelContext* ctx,
                                    const ResourceHandle& handle,
                                    DataType* dtype) {
    if (!handle.dtypes_and_shapes().empty()) {
      *dtype = handle.dtypes_and_shapes()[0].dtype;
      return absl::OkStatus();
    }
    core::RefCountPtr<Var> variable;
    TF_RETURN_IF_ERROR(LookupResource(ctx, handle, &variable));
    tf_shared_lock lock(*variable->mu());
    *dtype = variable->tensor()->dtype();
    return absl::OkStatus();
  }

  static bool SameVariable(const ResourceHandle& a, const ResourceHandle& b) {
    if (a.IsRefCounting() && b.IsRefCounting()) {
      return a.resource().get() == b.resource().get();
    }
    return a.device() == b.device() && a.container() == b.container() &&
           a.name() == b.name() && a.hash_code() == b.hash_code();
  }

  // After locking: var and accum of one shape, power one int64 per row.
  static absl::Status CheckSlotShapes(const Tensor& var, const Tensor& accum,
                                      const Tensor& power) {
    if (!var.shape().IsSameSize(accum.shape())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "var and accum do not have the same shape", var.shape().DebugString(),
          " ", accum.shape().DebugString()));
    }
    TensorShape expected_power;
    if (var.dims() > 0) expected_power.AddDim(var.dim_size(0));
    if (!power.shape().IsSameSize(expected_power)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "power must have shape ", expected_power.DebugString(),
          " (one int64 per row of var), got ", power.shape().DebugString()));
    }
    return absl::OkStatus();
  }

  static absl::Status RequireScalar(const char* name, const Tensor& t) {
    if (TensorShapeUtils::IsScalar(t.shape())) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(name, " is not a scalar: ", t.shape().DebugString()));
  }

  // Rows (first dimension; 1 for a scalar) and elements per row.
  static std::pair<size_t, size_t> RowsAndInner(const Tensor& var) {
    if (var.dims() == 0) return {1, 1};
    size_t inner = 1;
    for (int d = 1; d < var.dims(); ++d) inner *= var.dim_size(d);
    return {static_cast<size_t>(var.dim_size(0)), inner};
  }

  bool use_locking_ = false;
  uint32_t decay_mode_ = 0;
  uint32_t epsilon_placement_ = 0;
};

template <typename T>
class ApplyAdagradSwapOp : public AdagradSwapOpBase<T> {
 public:
  using AdagradSwapOpBase<T>::AdagradSwapOpBase;

  void Compute(OpKernelContext* ctx) override {
    tf_swap_adagrad_swap_hyper hyper;
    OP_REQUIRES_OK(ctx, this->ReadHyper(ctx, /*step_input=*/6, &hyper));
    OP_REQUIRES_OK(ctx, this->CheckHandles(ctx));
    const bool lock = this->use_locking_;
    auto locks = MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, lock, /*sparse=*/false, {0, 1});
    auto power_lock = MaybeLockVariableInputMutexesInOrder<CPUDevice, int64_t>(
        ctx, lock, /*sparse=*/false, {2});
    Tensor var, accum, power;
    OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, T>(
                            ctx, 0, lock, /*sparse=*/false, &var));
    OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, T>(
                            ctx, 1, lock, /*sparse=*/false, &accum));
    OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, int64_t>(
                            ctx, 2, lock, /*sparse=*/false, &power));
    OP_REQUIRES_OK(ctx, this->CheckSlotShapes(var, accum, power));
    const Tensor& grad = ctx->input(5);
    OP_REQUIRES(ctx, var.shape().IsSameSize(grad.shape()),
                absl::InvalidArgumentError(absl::StrCat(
                    "var and grad do not have the same shape",
                    var.shape().DebugString(), " ", grad.shape().DebugString())));
    const auto [rows, inner] = this->RowsAndInner(var);
    T* var_data = var.flat<T>().data();
    T* accum_data = accum.flat<T>().data();
    int64_t* power_data = power.flat<int64_t>().data();
    const T* grad_data = grad.flat<T>().data();
    OP_REQUIRES_OK(
        ctx, ShardRows(ctx, rows, rows * inner,
                       [&](size_t begin, size_t end, tf_swap_error* error) {
                         return RustDense(var_data, accum_data, power_data,
                                          grad_data, rows, inner, begin, end,
                                          &hyper, error);
                       }));
  }
};

template <typename T, typename Tindex>
class SparseApplyAdagradSwapOp : public AdagradSwapOpBase<T> {
 public:
  using AdagradSwapOpBase<T>::AdagradSwapOpBase;

  void Compute(OpKernelContext* ctx) override {
    tf_swap_adagrad_swap_hyper hyper;
    OP_REQUIRES_OK(ctx, this->ReadHyper(ctx, /*step_input=*/7, &hyper));
    OP_REQUIRES_OK(ctx, this->CheckHandles(ctx));
    const bool lock = this->use_locking_;
    auto locks = MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, lock, /*sparse=*/true, {0, 1});
    auto power_lock = MaybeLockVariableInputMutexesInOrder<CPUDevice, int64_t>(
        ctx, lock, /*sparse=*/true, {2});
    Tensor var, accum, power;
    OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, T>(
                            ctx, 0, lock, /*sparse=*/true, &var));
    OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, T>(
                            ctx, 1, lock, /*sparse=*/true, &accum));
    OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, int64_t>(
                            ctx, 2, lock, /*sparse=*/true, &power));
    OP_REQUIRES_OK(ctx, this->CheckSlotShapes(var, accum, power));
    OP_REQUIRES(ctx, TensorShapeUtils::IsVectorOrHigher(var.shape()),
                absl::InvalidArgumentError("var must be at least 1 dimensional"));
    const Tensor& grad = ctx->input(5);
    const Tensor& indices = ctx->input(6);
    OP_REQUIRES(ctx, TensorShapeUtils::IsVector(indices.shape()),
                absl::InvalidArgumentError(absl::StrCat(
                    "indices must be one-dimensional, got ",
                    indices.shape().DebugString())));
    const int64_t n = indices.dim_size(0);
    OP_REQUIRES(ctx, grad.dims() == var.dims() && grad.dim_size(0) == n,
                absl::InvalidArgumentError(absl::StrCat(
                    "grad must have the rank of var and as many rows as "
                    "indices: grad ",
                    grad.shape().DebugString(), ", var ",
                    var.shape().DebugString(), ", indices ", n)));
    for (int d = 1; d < var.dims(); ++d) {
      OP_REQUIRES(ctx, var.dim_size(d) == grad.dim_size(d),
                  absl::InvalidArgumentError(absl::StrCat(
                      "var and grad must match in dimension ", d, ": var ",
                      var.shape().DebugString(), ", grad ",
                      grad.shape().DebugString())));
    }
    const auto [rows, inner] = this->RowsAndInner(var);
    const Tindex* index_data = indices.flat<Tindex>().data();
    bool has_duplicates = false;
    tf_swap_error error;
    OP_REQUIRES_OK(ctx, StatusFromRust(RustCheckIndices(index_data, n, rows,
                                                        &has_duplicates, &error),
                                       error));
    if (n == 0) return;
    if (!has_duplicates) {
      Apply(ctx, var, accum, power, grad.flat<T>().data(), index_data, n, rows,
            inner, hyper);
      return;
    }
    Tensor unique_indices, summed_grad;
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_temp(DT_INT64, TensorShape({n}), &unique_indices));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DataTypeToEnum<T>::v(),
                                           TensorShape({n, static_cast<int64_t>(inner)}),
                                           &summed_grad));
    size_t unique_count = 0;
    OP_REQUIRES_OK(
        ctx, StatusFromRust(
                 RustSumDuplicates(unique_indices.flat<int64_t>().data(),
                                   summed_grad.flat<T>().data(), &unique_count,
                                   index_data, grad.flat<T>().data(), n, inner,
                                   &error),
                 error));
    Apply(ctx, var, accum, power, summed_grad.flat<T>().data(),
          unique_indices.flat<int64_t>().data(), unique_count, rows, inner,
          hyper);
  }

 private:
  template <typename I>
  static void Apply(OpKernelContext* ctx, Tensor& var, Tensor& accum,
                    Tensor& power, const T* grad, const I* indices, size_t n,
                    size_t rows, size_t inner,
                    const tf_swap_adagrad_swap_hyper& hyper) {
    T* var_data = var.flat<T>().data();
    T* accum_data = accum.flat<T>().data();
    int64_t* power_data = power.flat<int64_t>().data();
    OP_REQUIRES_OK(
        ctx, ShardRows(ctx, rows, n * inner,
                       [&](size_t begin, size_t end, tf_swap_error* error) {
                         return RustSparse(var_data, accum_data, power_data,
                                           grad, indices, n, rows, inner,
                                           begin, end, &hyper, error);
                       }));
  }
};

}  // namespace

#define REGISTER_CPU(T)                                                    \
  REGISTER_KERNEL_BUILDER(Name("TfSwapResourceApplyAdagradSwap")           \
                              .Device(DEVICE_CPU)                          \
                              .HostMemory("var")                           \
                              .HostMemory("accum")                         \
                              .HostMemory("power")                         \
                              .TypeConstraint<T>("T"),                     \
                          ApplyAdagradSwapOp<T>);                          \
  REGISTER_KERNEL_BUILDER(Name("TfSwapResourceSparseApplyAdagradSwap")     \
                              .Device(DEVICE_CPU)                          \
                              .TypeConstraint<T>("T")                      \
                              .TypeConstraint<int32_t>("Tindices"),        \
                          SparseApplyAdagradSwapOp<T, int32_t>);           \
  REGISTER_KERNEL_BUILDER(Name("TfSwapResourceSparseApplyAdagradSwap")     \
                              .Device(DEVICE_CPU)                          \
                              .TypeConstraint<T>("T")                      \
                              .TypeConstraint<int64_t>("Tindices"),        \
                          SparseApplyAdagradSwapOp<T, int64_t>);
REGISTER_CPU(float)
REGISTER_CPU(double)
#undef REGISTER_CPU

}  // namespace tensorflow::tf_swap
