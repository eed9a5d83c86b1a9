// The dynamic embedding table's ops (SPEC section 5) other than the rule
// applies (those are registered with each rule, see table_apply.h):
// creation, training and inference lookups, size, eviction, export and
// import. Each validates its tensors here and has Rust check the rest; the
// table itself is rust/kernels/dynamic_table.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "dynamic_table.h"
#include "op_inputs.h"
#include "rust_call.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tf_swap.h"

namespace tensorflow::tf_swap {
namespace {

using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

// ids of any shape -> rows of ids.shape + [dim].
absl::Status RowsShapeFn(InferenceContext* c) {
  int64_t dim = 0;
  TF_RETURN_IF_ERROR(c->GetAttr("dim", &dim));
  ShapeHandle rows;
  TF_RETURN_IF_ERROR(c->Concatenate(c->input(1), c->Vector(dim), &rows));
  c->set_output(0, rows);
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("TfSwapDynamicTable")
    .Output("table: resource")
    .Attr("dim: int >= 1")
    .Attr("slots: int = 1")
    .Attr("slot_init: list(float)")
    .Attr("init: {'zeros', 'uniform', 'normal', 'truncated_normal'} = 'uniform'")
    .Attr("init_a: float = -0.05")
    .Attr("init_b: float = 0.05")
    .Attr("seed: int = 0")
    .Attr("min_count: int = 1")
    .Attr("steps_to_live: int = -1")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape)
    .Doc(R"doc(
A dynamic embedding table on this op's device: int64 id -> row of dim
floats with its update rule's slots (1: Adagrad-SWAP, 2: FTRL-SWAP), each
starting at slot_init. A new id's row is init(seed, id) (uniform in
[init_a, init_b), or normal / truncated normal with mean init_a and stddev
init_b); an id is stored from its min_count-th training lookup; entries not
updated for more than steps_to_live steps are evicted (-1: never). Made on
the first run; later runs (and other ops naming shared_name) find it.
)doc");

REGISTER_OP("TfSwapDynamicTableSetSlotInit")
    .Input("table: resource")
    .Input("slot_init: double")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle unused;
      return c->WithRank(c->input(1), 1, &unused);
    })
    .Doc(R"doc(
Sets what new entries' slots start at, as the rule training the table says;
their number (1 or 2) may change only while the table stores no entry.
)doc");

REGISTER_OP("TfSwapDynamicTableLookup")
    .Input("table: resource")
    .Input("ids: int64")
    .Input("step: int64")
    .Input("decay_period: int64")
    .Output("rows: float")
    .Attr("dim: int >= 1")
    .SetIsStateful()
    .SetShapeFn(RowsShapeFn)
    .Doc(R"doc(
A training lookup: counts each id, stores the ids reaching min_count (power
step / decay_period, last_step step) and returns their rows, zeros for ids
not stored.
)doc");

REGISTER_OP("TfSwapDynamicTableFind")
    .Input("table: resource")
    .Input("ids: int64")
    .Output("rows: float")
    .Attr("dim: int >= 1")
    .SetIsStateful()
    .SetShapeFn(RowsShapeFn)
    .Doc(R"doc(
An inference lookup: the rows of stored ids, zeros for others; inserts
nothing.
)doc");

REGISTER_OP("TfSwapDynamicTableSize")
    .Input("table: resource")
    .Output("entries: int64")
    .Output("pending: int64")
    .Output("bytes: int64")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      for (int i = 0; i < 3; ++i) c->set_output(i, c->Scalar());
      return absl::OkStatus();
    })
    .Doc("Entries stored, ids counted but not admitted, bytes held.");

REGISTER_OP("TfSwapDynamicTableEvict")
    .Input("table: resource")
    .Input("step: int64")
    .Output("evicted: int64")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape)
    .Doc(R"doc(
Removes the entries with step - last_step > steps_to_live (and counts of
ids not admitted as old); returns how many entries went.
)doc");

REGISTER_OP("TfSwapDynamicTableExport")
    .Input("table: resource")
    .Input("since: int64")
    .Output("ids: int64")
    .Output("values: float")
    .Output("slots: float")
    .Output("power: int64")
    .Output("count: int64")
    .Output("last_step: int64")
    .Output("pending_ids: int64")
    .Output("pending_count: int64")
    .Output("pending_last_step: int64")
    .Output("evicted_ids: int64")
    .Attr("dim: int >= 1")
    .Attr("slots_count: int >= 1")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int64_t dim = 0, slots = 0;
      TF_RETURN_IF_ERROR(c->GetAttr("dim", &dim));
      TF_RETURN_IF_ERROR(c->GetAttr("slots_count", &slots));
      const auto n = c->UnknownDim();
      c->set_output(0, c->Vector(n));
      c->set_output(1, c->Matrix(n, dim));
      c->set_output(2, c->MakeShape({c->MakeDim(slots), n, c->MakeDim(dim)}));
      for (int i = 3; i < 10; ++i) c->set_output(i, c->Vector(c->UnknownDim()));
      return absl::OkStatus();
    })
    .Doc(R"doc(
since < 0: every entry and pending count (a checkpoint); else the entries
updated after step since and the ids evicted after it (a serving delta).
Ascending ids; slots is [slots, entries, dim].
)doc");

REGISTER_OP("TfSwapDynamicTableImport")
    .Input("table: resource")
    .Input("ids: int64")
    .Input("values: float")
    .Input("slots: float")
    .Input("power: int64")
    .Input("count: int64")
    .Input("last_step: int64")
    .Input("pending_ids: int64")
    .Input("pending_count: int64")
    .Input("pending_last_step: int64")
    .Input("shard: int64")
    .Input("num_shards: int64")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs)
    .Doc(R"doc(
Replaces the table's content with the entries and pending counts given (as
TfSwapDynamicTableExport writes them) whose id is shard mod num_shards
(non-negative remainder): a checkpoint restored into any number of shards.
Nothing changes when a check fails.
)doc");

namespace {

uint32_t InitCode(const std::string& init) {
  if (init == "zeros") return 0;
  if (init == "uniform") return 1;
  if (init == "normal") return 2;
  return 3;  // truncated_normal (the attr's values are checked at registration)
}

bool SameConfig(const tf_swap_table_config& a, const tf_swap_table_config& b) {
  return a.dim == b.dim && a.slots == b.slots &&
         a.slot_init[0] == b.slot_init[0] && a.slot_init[1] == b.slot_init[1] &&
         a.init == b.init && a.init_a == b.init_a && a.init_b == b.init_b &&
         a.seed == b.seed && a.min_count == b.min_count &&
         a.steps_to_live == b.steps_to_live;
}

class DynamicTableOp : public OpKernel {
 public:
  explicit DynamicTableOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    int64_t dim = 0, slots = 0;
    std::vector<float> slot_init;
    std::string init;
    float init_a = 0, init_b = 0;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("dim", &dim));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("slots", &slots));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("slot_init", &slot_init));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("init", &init));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("init_a", &init_a));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("init_b", &init_b));
    int64_t seed = 0;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("seed", &seed));
    config_.seed = static_cast<uint64_t>(seed);
    OP_REQUIRES_OK(ctx, ctx->GetAttr("min_count", &config_.min_count));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("steps_to_live", &config_.steps_to_live));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("container", &container_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("shared_name", &name_));
    OP_REQUIRES(ctx, slots >= 0 && static_cast<size_t>(slots) == slot_init.size(),
                absl::InvalidArgumentError(absl::StrCat(
                    "slot_init has ", slot_init.size(), " values for ", slots,
                    " slot(s)")));
    if (name_.empty()) name_ = ctx->def().name();
    config_.dim = static_cast<size_t>(dim);
    config_.slots = static_cast<size_t>(slots);
    for (size_t i = 0; i < 2; ++i) {
      config_.slot_init[i] = i < slot_init.size() ? slot_init[i] : 0.0;
    }
    config_.init = InitCode(init);
    config_.init_a = init_a;
    config_.init_b = init_b;
  }

  void Compute(OpKernelContext* ctx) override {
    const ResourceHandle handle =
        MakeResourceHandle<DynamicTableResource>(ctx, container_, name_);
    DynamicTableResource* resource = nullptr;
    OP_REQUIRES_OK(ctx, LookupOrCreateResource<DynamicTableResource>(
                            ctx, handle, &resource,
                            [this](DynamicTableResource** made) {
                              tf_swap_table* table = nullptr;
                              tf_swap_error error;
                              TF_RETURN_IF_ERROR(StatusFromRust(
                                  tf_swap_table_new_f32(&table, &config_, &error),
                                  error));
                              *made = new DynamicTableResource(table, config_);
                              return absl::OkStatus();
                            }));
    core::ScopedUnref unref(resource);
    OP_REQUIRES(ctx, SameConfig(resource->config(), config_),
                absl::InvalidArgumentError(absl::StrCat(
                    "a dynamic table named '", name_,
                    "' exists on this device with other settings")));
    Tensor* out = nullptr;
    AllocatorAttributes host;
    host.set_on_host(true);
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &out, host));
    out->scalar<ResourceHandle>()() = handle;
  }

 private:
  tf_swap_table_config config_{};
  std::string container_;
  std::string name_;
};

// The lookups: a training lookup admits then gathers; an inference lookup
// only gathers.
template <bool kTraining>
class LookupOp : public OpKernel {
 public:
  explicit LookupOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("dim", &dim_));
  }

  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<DynamicTableResource> table;
    OP_REQUIRES_OK(ctx, LookupTable(ctx, 0, &table));
    OP_REQUIRES_OK(ctx, CheckDim(*table, dim_));
    const Tensor& ids = ctx->input(1);
    const size_t n = static_cast<size_t>(ids.NumElements());
    const int64_t* id_data = ids.flat<int64_t>().data();
    if constexpr (kTraining) {
      int64_t step = 0, decay_period = 0;
      OP_REQUIRES_OK(ctx, ReadInt(ctx, 2, "step", &step));
      OP_REQUIRES_OK(ctx, ReadInt(ctx, 3, "decay_period", &decay_period));
      OP_REQUIRES_OK(
          ctx, ShardStripes(ctx, n, [&](size_t begin, size_t end,
                                        tf_swap_error* error) {
            return tf_swap_table_admit(table->table(), id_data, n, begin, end,
                                       step, decay_period, error);
          }));
    }
    TensorShape shape = ids.shape();
    shape.AddDim(dim_);
    Tensor* rows = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, shape, &rows));
    float* row_data = rows->flat<float>().data();
    const size_t dim = table->dim();
    OP_REQUIRES_OK(
        ctx, ShardRows(ctx, n, n * dim,
                       [&](size_t begin, size_t end, tf_swap_error* error) {
                         return tf_swap_table_gather_f32(
                             table->table(), row_data + begin * dim,
                             id_data + begin, end - begin, error);
                       }));
  }

 private:
  int64_t dim_ = 0;
};

class SetSlotInitOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<DynamicTableResource> table;
    OP_REQUIRES_OK(ctx, LookupTable(ctx, 0, &table));
    const Tensor& slot_init = ctx->input(1);
    OP_REQUIRES(ctx, TensorShapeUtils::IsVector(slot_init.shape()),
                absl::InvalidArgumentError("slot_init must be a vector"));
    tf_swap_error error;
    OP_REQUIRES_OK(
        ctx, StatusFromRust(tf_swap_table_set_slot_init(
                                table->table(), slot_init.flat<double>().data(),
                                static_cast<size_t>(slot_init.NumElements()),
                                &error),
                            error));
  }
};

class SizeOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<DynamicTableResource> table;
    OP_REQUIRES_OK(ctx, LookupTable(ctx, 0, &table));
    tf_swap_table_stats stats{};
    OP_REQUIRES_OK(ctx, table->Stats(&stats));
    const size_t values[] = {stats.entries, stats.pending, stats.bytes};
    for (int i = 0; i < 3; ++i) {
      Tensor* out = nullptr;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(i, TensorShape({}), &out));
      out->scalar<int64_t>()() = static_cast<int64_t>(values[i]);
    }
  }
};

class EvictOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<DynamicTableResource> table;
    OP_REQUIRES_OK(ctx, LookupTable(ctx, 0, &table));
    int64_t step = 0;
    OP_REQUIRES_OK(ctx, ReadInt(ctx, 1, "step", &step));
    size_t evicted = 0;
    tf_swap_error error;
    OP_REQUIRES_OK(
        ctx, StatusFromRust(
                 tf_swap_table_evict(table->table(), &evicted, step, &error),
                 error));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &out));
    out->scalar<int64_t>()() = static_cast<int64_t>(evicted);
  }
};

class ExportOp : public OpKernel {
 public:
  explicit ExportOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("dim", &dim_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("slots_count", &slots_));
  }

  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<DynamicTableResource> table;
    OP_REQUIRES_OK(ctx, LookupTable(ctx, 0, &table));
    OP_REQUIRES_OK(ctx, CheckDim(*table, dim_));
    int64_t since = 0;
    OP_REQUIRES_OK(ctx, ReadInt(ctx, 1, "since", &since));
    tf_swap_table_export* snapshot = nullptr;
    tf_swap_table_export_sizes sizes{};
    tf_swap_error error;
    OP_REQUIRES_OK(ctx, StatusFromRust(
                            tf_swap_table_export_begin_f32(
                                table->table(), &snapshot, &sizes, since, &error),
                            error));
    // Freed on every path out.
    std::unique_ptr<tf_swap_table_export, uint32_t (*)(tf_swap_table_export*)>
        owned(snapshot, tf_swap_table_export_free);
    OP_REQUIRES_OK(ctx, CheckSlots(slots_, sizes.slots));
    const int64_t n = static_cast<int64_t>(sizes.entries);
    const int64_t pending = static_cast<int64_t>(sizes.pending);
    const TensorShape shapes[] = {
        TensorShape({n}),          TensorShape({n, dim_}),
        TensorShape({slots_, n, dim_}), TensorShape({n}),
        TensorShape({n}),          TensorShape({n}),
        TensorShape({pending}),    TensorShape({pending}),
        TensorShape({pending}),    TensorShape({static_cast<int64_t>(sizes.evicted)})};
    Tensor* out[10];
    for (int i = 0; i < 10; ++i) {
      OP_REQUIRES_OK(ctx, ctx->allocate_output(i, shapes[i], &out[i]));
    }
    auto ints = [&](int i) { return out[i]->flat<int64_t>().data(); };
    auto floats = [&](int i) { return out[i]->flat<float>().data(); };
    OP_REQUIRES_OK(
        ctx, StatusFromRust(tf_swap_table_export_read_f32(
                                snapshot, ints(0), floats(1), floats(2), ints(3),
                                ints(4), ints(5), ints(6), ints(7), ints(8),
                                ints(9), &error),
                            error));
  }

 private:
  int64_t dim_ = 0;
  int64_t slots_ = 0;
};

class ImportOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<DynamicTableResource> table;
    OP_REQUIRES_OK(ctx, LookupTable(ctx, 0, &table));
    const Tensor& ids = ctx->input(1);
    const Tensor& pending_ids = ctx->input(7);
    OP_REQUIRES(ctx, TensorShapeUtils::IsVector(ids.shape()) &&
                         TensorShapeUtils::IsVector(pending_ids.shape()),
                absl::InvalidArgumentError("ids and pending_ids must be vectors"));
    const int64_t n = ids.dim_size(0);
    const int64_t pending = pending_ids.dim_size(0);
    const int64_t dim = static_cast<int64_t>(table->dim());
    tf_swap_table_stats stats{};
    OP_REQUIRES_OK(ctx, table->Stats(&stats));
    const int64_t slots = static_cast<int64_t>(stats.slots);
    const std::pair<const char*, TensorShape> expected[] = {
        {"values", TensorShape({n, dim})},
        {"slots", TensorShape({slots, n, dim})},
        {"power", TensorShape({n})},
        {"count", TensorShape({n})},
        {"last_step", TensorShape({n})},
        {"pending_ids", TensorShape({pending})},
        {"pending_count", TensorShape({pending})},
        {"pending_last_step", TensorShape({pending})},
        {"shard", TensorShape({})},
        {"num_shards", TensorShape({})}};
    for (int i = 0; i < 10; ++i) {
      const Tensor& t = ctx->input(i + 2);
      OP_REQUIRES(ctx, t.shape() == expected[i].second,
                  absl::InvalidArgumentError(absl::StrCat(
                      expected[i].first, " must have shape ",
                      expected[i].second.DebugString(), " for ", n,
                      " entries of dim ", dim, " and ", slots,
                      " slot(s), got ", t.shape().DebugString())));
    }
    auto ints = [&](int i) { return ctx->input(i).flat<int64_t>().data(); };
    auto floats = [&](int i) { return ctx->input(i).flat<float>().data(); };
    tf_swap_error error;
    OP_REQUIRES_OK(
        ctx, StatusFromRust(
                 tf_swap_table_import_f32(
                     table->table(), ints(1), floats(2), floats(3), ints(4),
                     ints(5), ints(6), static_cast<size_t>(n), ints(7), ints(8),
                     ints(9), static_cast<size_t>(pending),
                     ctx->input(10).scalar<int64_t>()(),
                     ctx->input(11).scalar<int64_t>()(), &error),
                 error));
  }
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("TfSwapDynamicTable").Device(DEVICE_CPU),
                        DynamicTableOp);
REGISTER_KERNEL_BUILDER(Name("TfSwapDynamicTableLookup").Device(DEVICE_CPU),
                        LookupOp<true>);
REGISTER_KERNEL_BUILDER(Name("TfSwapDynamicTableFind").Device(DEVICE_CPU),
                        LookupOp<false>);
REGISTER_KERNEL_BUILDER(
    Name("TfSwapDynamicTableSetSlotInit").Device(DEVICE_CPU), SetSlotInitOp);
REGISTER_KERNEL_BUILDER(Name("TfSwapDynamicTableSize").Device(DEVICE_CPU),
                        SizeOp);
REGISTER_KERNEL_BUILDER(Name("TfSwapDynamicTableEvict").Device(DEVICE_CPU),
                        EvictOp);
REGISTER_KERNEL_BUILDER(Name("TfSwapDynamicTableExport").Device(DEVICE_CPU),
                        ExportOp);
REGISTER_KERNEL_BUILDER(Name("TfSwapDynamicTableImport").Device(DEVICE_CPU),
                        ImportOp);

}  // namespace tensorflow::tf_swap
