// Helpers every tf_swap op uses around calls into the Rust kernels.
#ifndef TF_SWAP_CPP_OPS_RUST_CALL_H_
#define TF_SWAP_CPP_OPS_RUST_CALL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/util/work_sharder.h"
#include "tf_swap.h"

namespace tensorflow::tf_swap {

// Maps a Rust status code and message to a TensorFlow status. Bad input is
// InvalidArgument; a panic is a tf_swap bug, hence Internal.
inline absl::Status StatusFromRust(uint32_t code, const tf_swap_error& error) {
  if (code == TF_SWAP_OK) return absl::OkStatus();
  if (code == TF_SWAP_PANIC) return absl::InternalError(error.message);
  return absl::InvalidArgumentError(error.message);
}

// Cuts `rows` into as many blocks as the Rust policy asks for `elements`
// (one below the size where a second thread pays off) and runs `apply` on
// each block in TensorFlow's intra-op pool. Each row is handled by exactly
// one call, so results never depend on the thread count.
inline absl::Status ShardRows(
    OpKernelContext* ctx, size_t rows, size_t elements,
    const std::function<uint32_t(size_t, size_t, tf_swap_error*)>& apply) {
  const DeviceBase::CpuWorkerThreads* workers =
      ctx->device()->tensorflow_cpu_worker_threads();
  size_t parts = 1;
  tf_swap_error error;
  TF_RETURN_IF_ERROR(StatusFromRust(
      tf_swap_partition_count(&parts, elements,
                              static_cast<size_t>(workers->num_threads),
                              &error),
      error));
  if (parts == 1) {  // the common small case: no task, no allocation
    return StatusFromRust(apply(0, rows, &error), error);
  }
  std::vector<uint32_t> codes(parts, TF_SWAP_OK);
  std::vector<tf_swap_error> errors(parts);
  auto run_parts = [&](int64_t first, int64_t last) {
    for (int64_t part = first; part < last; ++part) {
      size_t begin = 0, end = 0;
      codes[part] = tf_swap_block_rows(&begin, &end, rows, parts, part,
                                       &errors[part]);
      if (codes[part] == TF_SWAP_OK) {
        codes[part] = apply(begin, end, &errors[part]);
      }
    }
  };
  // One unit per block, each costed far above the sharder's minimum so that
  // every block becomes its own task.
  const int64_t cost_per_block = static_cast<int64_t>(elements / parts) * 8;
  Shard(workers->num_threads, workers->workers, static_cast<int64_t>(parts),
        cost_per_block, run_parts);
  for (size_t part = 0; part < parts; ++part) {
    TF_RETURN_IF_ERROR(StatusFromRust(codes[part], errors[part]));
  }
  return absl::OkStatus();
}

// Overloads that pick the Rust export for an index (and element) type.
inline uint32_t RustCheckIndices(const int32_t* indices, size_t n, size_t rows,
                                 bool* has_duplicates, tf_swap_error* error) {
  return tf_swap_check_indices_i32(indices, n, rows, has_duplicates, error);
}
inline uint32_t RustCheckIndices(const int64_t* indices, size_t n, size_t rows,
                                 bool* has_duplicates, tf_swap_error* error) {
  return tf_swap_check_indices_i64(indices, n, rows, has_duplicates, error);
}

#define TF_SWAP_RUST_SUM_DUPLICATES(T, TI, SUFFIX)                           \
  inline uint32_t RustSumDuplicates(int64_t* unique_indices, T* summed,      \
                                    size_t* unique_count, const TI* indices, \
                                    const T* grad, size_t n, size_t inner,   \
                                    tf_swap_error* error) {                  \
    return tf_swap_sum_duplicates_##SUFFIX(unique_indices, summed,           \
                                           unique_count, indices, grad, n,   \
                                           inner, error);                    \
  }
TF_SWAP_RUST_SUM_DUPLICATES(float, int32_t, f32_i32)
TF_SWAP_RUST_SUM_DUPLICATES(float, int64_t, f32_i64)
TF_SWAP_RUST_SUM_DUPLICATES(double, int32_t, f64_i32)
TF_SWAP_RUST_SUM_DUPLICATES(double, int64_t, f64_i64)
#undef TF_SWAP_RUST_SUM_DUPLICATES

}  // namespace tensorflow::tf_swap

#endif  // TF_SWAP_CPP_OPS_RUST_CALL_H_
