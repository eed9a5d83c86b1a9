// The kernel every SWAP apply op shares (Adagrad-SWAP, FTRL-SWAP): read
// the scalar inputs and have Rust check them once into a plan, check the
// variable handles, lock, read the variables, check their shapes, then run
// the dense or sparse Rust apply on blocks of rows. A rule (a struct per
// update rule, see adagrad_swap.cc and ftrl_swap.cc) names its slots, its
// inputs and its Rust exports; nothing here depends on the rule's math.
//
// Locking follows TensorFlow's training ops (training_op_helpers.h): var and
// the rule's float slots are locked together in address order; power, a
// variable only these ops touch and of another dtype (the helper's
// copy-on-read step is typed), is locked after them, so every tf_swap op
// takes the locks in one order. With use_locking=false sparse applies take
// shared locks and may run concurrently on one variable (Hogwild, as
// TensorFlow allows); one op never races with itself.
#ifndef TF_SWAP_CPP_OPS_SWAP_APPLY_H_
#define TF_SWAP_CPP_OPS_SWAP_APPLY_H_

// training_op_helpers.h runs Eigen on the thread-pool device.
#define EIGEN_USE_THREADS

#include <array>
#include <initializer_list>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "op_inputs.h"
#include "rust_call.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "tf_swap.h"

namespace tensorflow::tf_swap {

using CPUDevice = Eigen::ThreadPoolDevice;

// The shape of a resource input from its handle data, as TF's
// ShapeOrHandleShape in core/ops/training_ops.cc.
inline shape_inference::ShapeHandle HandleShape(
    shape_inference::InferenceContext* c, int input) {
  auto* handle_data = c->input_handle_shapes_and_types(input);
  if (handle_data != nullptr && handle_data->size() == 1) {
    return (*handle_data)[0].shape;
  }
  return c->UnknownShape();
}

// The shape function of every SWAP apply op: var and its `slots` float
// slots merge, power is [rows], each named scalar has rank 0, grad matches
// var (dense) or has one row per index (sparse).
inline absl::Status SwapApplyShapeFn(shape_inference::InferenceContext* c,
                                     int slots, bool is_sparse,
                                     std::initializer_list<const char*> scalars) {
  using shape_inference::DimensionHandle;
  using shape_inference::ShapeHandle;
  ShapeHandle var = HandleShape(c, 0);
  for (int i = 1; i <= slots; ++i) {
    TF_RETURN_IF_ERROR(c->Merge(var, HandleShape(c, i), &var));
  }
  ShapeHandle unused;
  for (const char* scalar : scalars) {
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
  ShapeHandle power = HandleShape(c, slots + 1);
  if (c->RankKnown(var)) {
    ShapeHandle expected =
        c->Rank(var) == 0 ? c->Scalar() : c->Vector(c->Dim(var, 0));
    TF_RETURN_IF_ERROR(c->Merge(power, expected, &unused));
  }
  return absl::OkStatus();
}

// The discount inputs (step, decay_rate, decay_period, accumulator_floor),
// consecutive from `step_input`, as every SWAP op orders them.
template <typename T>
absl::Status ReadDiscount(OpKernelContext* ctx, int step_input,
                          uint32_t decay_mode, tf_swap_discount* discount) {
  discount->decay_mode = decay_mode;
  TF_RETURN_IF_ERROR(ReadInt(ctx, step_input, "step", &discount->step));
  TF_RETURN_IF_ERROR(ReadFloat<T>(ctx, step_input + 1, "decay_rate",
                                  &discount->decay_rate));
  TF_RETURN_IF_ERROR(ReadInt(ctx, step_input + 2, "decay_period",
                             &discount->decay_period));
  return ReadFloat<T>(ctx, step_input + 3, "accumulator_floor",
                      &discount->accumulator_floor);
}

// The ABI code of the decay_mode attr (its values are checked at
// registration: 'exact' or 'once_per_update').
inline uint32_t DecayModeCode(OpKernelConstruction* ctx) {
  std::string decay_mode;
  const absl::Status status = ctx->GetAttr("decay_mode", &decay_mode);
  if (!status.ok()) ctx->CtxFailure(__FILE__, __LINE__, status);
  return decay_mode == "exact" ? 0 : 1;
}

// Where an op's scalar inputs start: the rule's own hyper-parameters (lr
// first, Rule::kHyperScalars of them in the rule's order) and the discount
// (step, decay_rate, decay_period, accumulator_floor).
struct ScalarInputs {
  int hyper;
  int discount;
};

// The variables of one apply, read under their locks.
template <int kSlots>
struct SwapVariables {
  Tensor var;
  std::array<Tensor, kSlots> slots;
  Tensor power;
};

// Rule requirements (a struct with):
//   static constexpr int kSlots;                 float slots after var
//   static constexpr const char* kSlotNames[];   as in TF's ops
//   using Plan;                                  tf_swap_*_plan
//   static constexpr int kHyperScalars;          lr and the rule's others
//   explicit Rule(OpKernelConstruction*);        reads the rule's attrs
//   static ScalarInputs Scalars(bool sparse);    in the variable ops
//   template <typename T> absl::Status Prepare(OpKernelContext*,
//                                              ScalarInputs, Plan*) const;
//   static int GradInput(bool sparse);           indices follow grad
//   template <typename T> static uint32_t Dense(T* var, T* const* slots,
//       int64_t* power, const T* grad, size_t rows, size_t inner,
//       size_t begin, size_t end, const Plan*, tf_swap_error*);
//   template <typename T, typename I> static uint32_t Sparse(T* var,
//       T* const* slots, int64_t* power, const T* grad, const I* indices,
//       size_t n, size_t rows, size_t inner, size_t begin, size_t end,
//       const Plan*, tf_swap_error*);
template <typename T, typename Rule, bool kSparse>
class SwapApplyOpBase : public OpKernel {
 public:
  static constexpr int kSlots = Rule::kSlots;
  static constexpr int kPowerInput = kSlots + 1;

  explicit SwapApplyOpBase(OpKernelConstruction* ctx)
      : OpKernel(ctx), rule_(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("use_locking", &use_locking_));
  }

  void Compute(OpKernelContext* ctx) final {
    typename Rule::Plan plan;
    OP_REQUIRES_OK(
        ctx, rule_.template Prepare<T>(ctx, Rule::Scalars(kSparse), &plan));
    OP_REQUIRES_OK(ctx, CheckHandles(ctx));
    std::vector<int> float_inputs;
    for (int i = 0; i <= kSlots; ++i) float_inputs.push_back(i);
    auto locks = MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, use_locking_, kSparse, float_inputs);
    auto power_lock = MaybeLockVariableInputMutexesInOrder<CPUDevice, int64_t>(
        ctx, use_locking_, kSparse, {kPowerInput});
    SwapVariables<kSlots> v;
    OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, T>(
                            ctx, 0, use_locking_, kSparse, &v.var));
    for (int i = 0; i < kSlots; ++i) {
      OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, T>(
                              ctx, i + 1, use_locking_, kSparse, &v.slots[i]));
    }
    OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, int64_t>(
                            ctx, kPowerInput, use_locking_, kSparse, &v.power));
    OP_REQUIRES_OK(ctx, CheckSlotShapes(v));
    if constexpr (kSparse) {
      ApplySparse(ctx, v, plan);
    } else {
      ApplyDense(ctx, v, plan);
    }
  }

 private:
  // Before locking: var, the slots and power are distinct variables holding
  // T and int64. TF's lock and copy-on-write helpers copy the buffer as T
  // and would abort on a variable of another dtype, and two inputs naming
  // one variable would get two buffers (the second read copies on write)
  // and a nonsense update. The dtypes come from the handles' metadata,
  // recorded when the variables were created, so the check costs no
  // resource lookup; a handle without metadata is looked up. An
  // uninitialized variable holds an empty tensor of its dtype and fails the
  // shape checks, as with TF's training ops.
  absl::Status CheckHandles(OpKernelContext* ctx) const {
    constexpr int kVariables = kSlots + 2;
    const char* names[kVariables];
    DataType dtypes[kVariables];
    const ResourceHandle* handles[kVariables];
    names[0] = "var";
    for (int i = 0; i < kSlots; ++i) names[i + 1] = Rule::kSlotNames[i];
    names[kPowerInput] = "power";
    for (int i = 0; i < kVariables; ++i) {
      dtypes[i] = i == kPowerInput ? DT_INT64 : DataTypeToEnum<T>::v();
      handles[i] = &HandleFromInput(ctx, i);
    }
    for (int i = 0; i < kVariables; ++i) {
      for (int j = i + 1; j < kVariables; ++j) {
        if (SameVariable(*handles[i], *handles[j])) {
          return absl::InvalidArgumentError(absl::StrCat(
              names[i], " and ", names[j], " are the same variable (",
              handles[i]->name(), "); each needs its own"));
        }
      }
    }
    for (int i = 0; i < kVariables; ++i) {
      DataType dtype;
      TF_RETURN_IF_ERROR(VariableDtype(ctx, *handles[i], &dtype));
      if (dtype != dtypes[i]) {
        return absl::InvalidArgumentError(absl::StrCat(
            names[i], " has dtype ", DataTypeString(dtype),
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

  // After locking: var and the slots of one shape, power one int64 per row.
  static absl::Status CheckSlotShapes(const SwapVariables<kSlots>& v) {
    for (int i = 0; i < kSlots; ++i) {
      if (!v.var.shape().IsSameSize(v.slots[i].shape())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "var and ", Rule::kSlotNames[i], " do not have the same shape",
            v.var.shape().DebugString(), " ", v.slots[i].shape().DebugString()));
      }
    }
    TensorShape expected_power;
    if (v.var.dims() > 0) expected_power.AddDim(v.var.dim_size(0));
    if (!v.power.shape().IsSameSize(expected_power)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "power must have shape ", expected_power.DebugString(),
          " (one int64 per row of var), got ", v.power.shape().DebugString()));
    }
    return absl::OkStatus();
  }

  // Rows (first dimension; 1 for a scalar) and elements per row.
  static std::pair<size_t, size_t> RowsAndInner(const Tensor& var) {
    if (var.dims() == 0) return {1, 1};
    size_t inner = 1;
    for (int d = 1; d < var.dims(); ++d) inner *= var.dim_size(d);
    return {static_cast<size_t>(var.dim_size(0)), inner};
  }

  static std::array<T*, kSlots> SlotData(SwapVariables<kSlots>& v) {
    std::array<T*, kSlots> data;
    for (int i = 0; i < kSlots; ++i) data[i] = v.slots[i].template flat<T>().data();
    return data;
  }

  void ApplyDense(OpKernelContext* ctx, SwapVariables<kSlots>& v,
                  const typename Rule::Plan& plan) {
    const Tensor& grad = ctx->input(Rule::GradInput(false));
    OP_REQUIRES(ctx, v.var.shape().IsSameSize(grad.shape()),
                absl::InvalidArgumentError(absl::StrCat(
                    "var and grad do not have the same shape",
                    v.var.shape().DebugString(), " ",
                    grad.shape().DebugString())));
    const auto [rows, inner] = RowsAndInner(v.var);
    T* var_data = v.var.template flat<T>().data();
    const std::array<T*, kSlots> slots = SlotData(v);
    int64_t* power_data = v.power.template flat<int64_t>().data();
    const T* grad_data = grad.flat<T>().data();
    OP_REQUIRES_OK(
        ctx, ShardRows(ctx, rows, rows * inner,
                       [&](size_t begin, size_t end, tf_swap_error* error) {
                         return Rule::Dense(var_data, slots.data(), power_data,
                                            grad_data, rows, inner, begin, end,
                                            &plan, error);
                       }));
  }

  void ApplySparse(OpKernelContext* ctx, SwapVariables<kSlots>& v,
                   const typename Rule::Plan& plan) {
    OP_REQUIRES(ctx, TensorShapeUtils::IsVectorOrHigher(v.var.shape()),
                absl::InvalidArgumentError("var must be at least 1 dimensional"));
    const int grad_input = Rule::GradInput(true);
    const Tensor& grad = ctx->input(grad_input);
    const Tensor& indices = ctx->input(grad_input + 1);
    OP_REQUIRES(ctx, TensorShapeUtils::IsVector(indices.shape()),
                absl::InvalidArgumentError(absl::StrCat(
                    "indices must be one-dimensional, got ",
                    indices.shape().DebugString())));
    const int64_t n = indices.dim_size(0);
    OP_REQUIRES(ctx, grad.dims() == v.var.dims() && grad.dim_size(0) == n,
                absl::InvalidArgumentError(absl::StrCat(
                    "grad must have the rank of var and as many rows as "
                    "indices: grad ",
                    grad.shape().DebugString(), ", var ",
                    v.var.shape().DebugString(), ", indices ", n)));
    for (int d = 1; d < v.var.dims(); ++d) {
      OP_REQUIRES(ctx, v.var.dim_size(d) == grad.dim_size(d),
                  absl::InvalidArgumentError(absl::StrCat(
                      "var and grad must match in dimension ", d, ": var ",
                      v.var.shape().DebugString(), ", grad ",
                      grad.shape().DebugString())));
    }
    if (indices.dtype() == DT_INT32) {
      ApplySparseRows<int32_t>(ctx, v, plan, grad, indices);
    } else {
      ApplySparseRows<int64_t>(ctx, v, plan, grad, indices);
    }
  }

  template <typename Tindex>
  void ApplySparseRows(OpKernelContext* ctx, SwapVariables<kSlots>& v,
                       const typename Rule::Plan& plan, const Tensor& grad,
                       const Tensor& indices) {
    const auto [rows, inner] = RowsAndInner(v.var);
    const size_t n = static_cast<size_t>(indices.dim_size(0));
    const Tindex* index_data = indices.flat<Tindex>().data();
    bool has_duplicates = false;
    tf_swap_error error;
    OP_REQUIRES_OK(ctx, StatusFromRust(RustCheckIndices(index_data, n, rows,
                                                        &has_duplicates, &error),
                                       error));
    if (n == 0) return;
    if (!has_duplicates) {
      Run(ctx, v, plan, grad.flat<T>().data(), index_data, n, rows, inner);
      return;
    }
    Tensor unique_indices, summed_grad;
    const int64_t n64 = static_cast<int64_t>(n);
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_INT64, TensorShape({n64}),
                                           &unique_indices));
    OP_REQUIRES_OK(
        ctx, ctx->allocate_temp(DataTypeToEnum<T>::v(),
                                TensorShape({n64, static_cast<int64_t>(inner)}),
                                &summed_grad));
    size_t unique_count = 0;
    OP_REQUIRES_OK(
        ctx, StatusFromRust(
                 RustSumDuplicates(unique_indices.flat<int64_t>().data(),
                                   summed_grad.flat<T>().data(), &unique_count,
                                   index_data, grad.flat<T>().data(), n, inner,
                                   &error),
                 error));
    Run(ctx, v, plan, summed_grad.flat<T>().data(),
        unique_indices.flat<int64_t>().data(), unique_count, rows, inner);
  }

  template <typename I>
  static void Run(OpKernelContext* ctx, SwapVariables<kSlots>& v,
                  const typename Rule::Plan& plan, const T* grad,
                  const I* indices, size_t n, size_t rows, size_t inner) {
    T* var_data = v.var.template flat<T>().data();
    const std::array<T*, kSlots> slots = SlotData(v);
    int64_t* power_data = v.power.template flat<int64_t>().data();
    OP_REQUIRES_OK(
        ctx, ShardRows(ctx, rows, n * inner,
                       [&](size_t begin, size_t end, tf_swap_error* error) {
                         return Rule::Sparse(var_data, slots.data(),
                                             power_data, grad, indices, n, rows,
                                             inner, begin, end, &plan, error);
                       }));
  }

  const Rule rule_;
  bool use_locking_ = false;
};

// Registers the CPU kernels of a dense and a sparse SWAP op for one dtype
// (one sparse kernel class reads int32 and int64 indices).
#define TF_SWAP_REGISTER_SWAP_APPLY(DENSE_OP, SPARSE_OP, RULE, T)            \
  REGISTER_KERNEL_BUILDER(                                                  \
      Name(DENSE_OP).Device(DEVICE_CPU).TypeConstraint<T>("T"),             \
      SwapApplyOpBase<T, RULE, false>);                                     \
  REGISTER_KERNEL_BUILDER(Name(SPARSE_OP)                                   \
                              .Device(DEVICE_CPU)                           \
                              .TypeConstraint<T>("T")                       \
                              .TypeConstraint<int32_t>("Tindices"),         \
                          SwapApplyOpBase<T, RULE, true>);                  \
  REGISTER_KERNEL_BUILDER(Name(SPARSE_OP)                                   \
                              .Device(DEVICE_CPU)                           \
                              .TypeConstraint<T>("T")                       \
                              .TypeConstraint<int64_t>("Tindices"),         \
                          SwapApplyOpBase<T, RULE, true>);

}  // namespace tensorflow::tf_swap

#endif  // TF_SWAP_CPP_OPS_SWAP_APPLY_H_
