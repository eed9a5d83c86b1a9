// The dynamic embedding table as a TensorFlow resource: a ResourceBase
// owning one Rust table (tf_swap_table), created by the TfSwapDynamicTable
// op on the device the op is placed on (a parameter server under
// ParameterServerStrategy or replica_device_setter) and found by the other
// table ops through its handle. The Rust table locks its own stripes, so
// ops on one table run concurrently without a lock here.
#ifndef TF_SWAP_CPP_OPS_DYNAMIC_TABLE_H_
#define TF_SWAP_CPP_OPS_DYNAMIC_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rust_call.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tf_swap.h"

namespace tensorflow::tf_swap {

class DynamicTableResource : public ResourceBase {
 public:
  DynamicTableResource(tf_swap_table* table, const tf_swap_table_config& config)
      : table_(table), config_(config) {}
  ~DynamicTableResource() override { tf_swap_table_free(table_); }

  DynamicTableResource(const DynamicTableResource&) = delete;
  DynamicTableResource& operator=(const DynamicTableResource&) = delete;

  std::string DebugString() const override {
    return absl::StrCat("tf_swap dynamic table, dim ", config_.dim, ", ",
                        config_.slots, " slot(s)");
  }

  int64_t MemoryUsed() const override {
    tf_swap_table_stats stats{};
    return Stats(&stats).ok() ? static_cast<int64_t>(stats.bytes) : 0;
  }

  const tf_swap_table* table() const { return table_; }
  // As made (the slots' initial values may change since, see
  // TfSwapDynamicTableSetSlotInit).
  const tf_swap_table_config& config() const { return config_; }
  size_t dim() const { return config_.dim; }

  // The table's stats now: its slot count, entries, pending ids, bytes.
  absl::Status Stats(tf_swap_table_stats* stats) const {
    tf_swap_error error;
    return StatusFromRust(tf_swap_table_size(table_, stats, &error), error);
  }

 private:
  tf_swap_table* const table_;
  const tf_swap_table_config config_;
};

// The table of input `input` (a resource handle), with a reference the
// caller owns.
inline absl::Status LookupTable(OpKernelContext* ctx, int input,
                                core::RefCountPtr<DynamicTableResource>* out) {
  return LookupResource(ctx, HandleFromInput(ctx, input), out);
}

// Fails unless the op's `dim` attr (used by its shape function) is the
// table's row width.
inline absl::Status CheckDim(const DynamicTableResource& table, int64_t dim) {
  if (dim == static_cast<int64_t>(table.dim())) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "the op expects rows of ", dim, " but the table's dim is ", table.dim()));
}

// Fails unless the op's `slots_count` attr is the table's slot count now.
inline absl::Status CheckSlots(int64_t expected, size_t slots) {
  if (expected == static_cast<int64_t>(slots)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "the op expects ", expected, " slot(s) but the table has ", slots));
}

// Runs `apply(begin, end, error)` on blocks of the table's stripes in
// TensorFlow's intra-op pool (`elements` sizes the work): each stripe is
// handled by one call, so results never depend on the thread count.
inline absl::Status ShardStripes(
    OpKernelContext* ctx, size_t elements,
    const std::function<uint32_t(size_t, size_t, tf_swap_error*)>& apply) {
  size_t stripes = 0;
  tf_swap_table_stripes(&stripes);
  return ShardRows(ctx, stripes, elements, apply);
}

}  // namespace tensorflow::tf_swap

#endif  // TF_SWAP_CPP_OPS_DYNAMIC_TABLE_H_
