/* tf_swap C ABI: the kernels in rust/ called by the TensorFlow ops in this
 * folder. tests/header_matches_exports.rs fails when this header and the
 * Rust exports disagree.
 *
 * Conventions: the caller (TensorFlow) owns every buffer. Mutable buffers
 * come first, then read-only inputs, then scalars, then `error`. A pointer
 * may be NULL only when its length is 0. A buffer a call writes must not
 * overlap any other buffer of that call. Each function returns a
 * tf_swap_status code and, on failure, writes a message to `error` when it
 * is not NULL; a failed call has written nothing else. A panic inside the
 * library is reported as TF_SWAP_PANIC, never unwound into C. */
#ifndef TF_SWAP_H_
#define TF_SWAP_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Codes are never renumbered or reused; new ones are appended. */
typedef enum tf_swap_status {
  TF_SWAP_OK = 0,
  TF_SWAP_NULL_POINTER = 1,
  TF_SWAP_MISALIGNED_POINTER = 2,
  TF_SWAP_ALIASED_BUFFERS = 3,
  TF_SWAP_LENGTH_MISMATCH = 4,
  TF_SWAP_INDEX_OUT_OF_RANGE = 5,
  TF_SWAP_INVALID_HYPER_PARAMETER = 6,
  TF_SWAP_UNKNOWN_MODE = 7,
  TF_SWAP_INVALID_ROW_RANGE = 8,
  TF_SWAP_PANIC = 9,
  TF_SWAP_EMPTY_BATCH = 10,
  TF_SWAP_DUPLICATE_ID = 11,
} tf_swap_status;

/* Where a failing call describes what went wrong (NUL-terminated UTF-8). */
typedef struct tf_swap_error {
  char message[256];
} tf_swap_error;

/* The period discount of one apply (SPEC sections 1 and 4). Floats are
 * widened to double, which is exact for float32 values.
 * decay_mode: 0 exact, 1 once per update. */
typedef struct tf_swap_discount {
  double decay_rate;
  double accumulator_floor;
  int64_t step;
  int64_t decay_period;
  uint32_t decay_mode;
} tf_swap_discount;

/* A checked discount: the periods completed at the step (step /
 * decay_period) replace step and decay_period. */
typedef struct tf_swap_discount_plan {
  double decay_rate;
  double accumulator_floor;
  int64_t periods;
  uint32_t decay_mode;
} tf_swap_discount_plan;

/* Hyper-parameters of one Adagrad-SWAP apply.
 * epsilon_placement: 0 sqrt(acc) + epsilon (TensorFlow),
 *                    1 sqrt(acc + epsilon) (Keras). */
typedef struct tf_swap_adagrad_swap_hyper {
  double learning_rate;
  double epsilon;
  uint32_t epsilon_placement;
  tf_swap_discount discount;
} tf_swap_adagrad_swap_hyper;

/* Checked Adagrad-SWAP hyper-parameters (tf_swap_adagrad_swap_prepare). */
typedef struct tf_swap_adagrad_swap_plan {
  double learning_rate;
  double epsilon;
  uint32_t epsilon_placement;
  tf_swap_discount_plan discount;
} tf_swap_adagrad_swap_plan;

/* Hyper-parameters of one FTRL-SWAP apply: lr > 0; l1, l2, l2_shrinkage,
 * beta >= 0 (beta adds beta / (2 lr) to l2, as Keras' Ftrl); lr_power <= 0;
 * staleness_scale in (0, 1] scales the gradient's contribution to linear. */
typedef struct tf_swap_ftrl_swap_hyper {
  double learning_rate;
  double l1;
  double l2;
  double l2_shrinkage;
  double lr_power;
  double beta;
  double staleness_scale;
  tf_swap_discount discount;
} tf_swap_ftrl_swap_hyper;

/* Checked FTRL-SWAP hyper-parameters (tf_swap_ftrl_swap_prepare). */
typedef struct tf_swap_ftrl_swap_plan {
  double learning_rate;
  double l1;
  double l2;
  double l2_shrinkage;
  double lr_power;
  double beta;
  double staleness_scale;
  tf_swap_discount_plan discount;
} tf_swap_ftrl_swap_plan;

/* A static description of a status code; never freed. */
const char *tf_swap_status_str(uint32_t status);

/* Writes to *count the threads to use for an op touching `elements`
 * elements (1 when small). */
uint32_t tf_swap_partition_count(size_t *count, size_t elements,
                                 size_t max_threads, tf_swap_error *error);

/* Writes rows [*begin, *end) of block `part` of `parts` near-equal blocks. */
uint32_t tf_swap_block_rows(size_t *begin, size_t *end, size_t rows,
                            size_t parts, size_t part, tf_swap_error *error);

/* Checks hyper-parameters once per op call and writes the plan every apply
 * of that call reads. */
uint32_t tf_swap_adagrad_swap_prepare(tf_swap_adagrad_swap_plan *plan,
                                      const tf_swap_adagrad_swap_hyper *hyper,
                                      tf_swap_error *error);

/* Dense Adagrad-SWAP on rows [row_begin, row_end) of a variable of `rows`
 * rows of `inner` elements: var, accum, grad hold rows * inner elements,
 * power holds rows. Concurrent calls on one variable use disjoint rows. */
uint32_t tf_swap_adagrad_swap_dense_f32(
    float *var, float *accum, int64_t *power, const float *grad, size_t rows,
    size_t inner, size_t row_begin, size_t row_end,
    const tf_swap_adagrad_swap_plan *plan, tf_swap_error *error);
uint32_t tf_swap_adagrad_swap_dense_f64(
    double *var, double *accum, int64_t *power, const double *grad,
    size_t rows, size_t inner, size_t row_begin, size_t row_end,
    const tf_swap_adagrad_swap_plan *plan, tf_swap_error *error);

/* Sparse Adagrad-SWAP of n gradient rows (grad: n * inner) at `indices`
 * into rows [row_begin, row_end) of the variable; indices outside that
 * range are skipped. Indices must be in range and distinct (see
 * tf_swap_check_indices_* and tf_swap_sum_duplicates_*). */
uint32_t tf_swap_adagrad_swap_sparse_f32_i32(
    float *var, float *accum, int64_t *power, const float *grad,
    const int32_t *indices, size_t n, size_t rows, size_t inner,
    size_t row_begin, size_t row_end, const tf_swap_adagrad_swap_plan *plan,
    tf_swap_error *error);
uint32_t tf_swap_adagrad_swap_sparse_f32_i64(
    float *var, float *accum, int64_t *power, const float *grad,
    const int64_t *indices, size_t n, size_t rows, size_t inner,
    size_t row_begin, size_t row_end, const tf_swap_adagrad_swap_plan *plan,
    tf_swap_error *error);
uint32_t tf_swap_adagrad_swap_sparse_f64_i32(
    double *var, double *accum, int64_t *power, const double *grad,
    const int32_t *indices, size_t n, size_t rows, size_t inner,
    size_t row_begin, size_t row_end, const tf_swap_adagrad_swap_plan *plan,
    tf_swap_error *error);
uint32_t tf_swap_adagrad_swap_sparse_f64_i64(
    double *var, double *accum, int64_t *power, const double *grad,
    const int64_t *indices, size_t n, size_t rows, size_t inner,
    size_t row_begin, size_t row_end, const tf_swap_adagrad_swap_plan *plan,
    tf_swap_error *error);

/* FTRL-SWAP, as Adagrad-SWAP: prepare once per op call, then dense or
 * sparse applies on blocks of rows. accum is FTRL's n, linear its z. */
uint32_t tf_swap_ftrl_swap_prepare(tf_swap_ftrl_swap_plan *plan,
                                   const tf_swap_ftrl_swap_hyper *hyper,
                                   tf_swap_error *error);
uint32_t tf_swap_ftrl_swap_dense_f32(
    float *var, float *accum, float *linear, int64_t *power, const float *grad,
    size_t rows, size_t inner, size_t row_begin, size_t row_end,
    const tf_swap_ftrl_swap_plan *plan, tf_swap_error *error);
uint32_t tf_swap_ftrl_swap_dense_f64(
    double *var, double *accum, double *linear, int64_t *power,
    const double *grad, size_t rows, size_t inner, size_t row_begin,
    size_t row_end, const tf_swap_ftrl_swap_plan *plan, tf_swap_error *error);
uint32_t tf_swap_ftrl_swap_sparse_f32_i32(
    float *var, float *accum, float *linear, int64_t *power, const float *grad,
    const int32_t *indices, size_t n, size_t rows, size_t inner,
    size_t row_begin, size_t row_end, const tf_swap_ftrl_swap_plan *plan,
    tf_swap_error *error);
uint32_t tf_swap_ftrl_swap_sparse_f32_i64(
    float *var, float *accum, float *linear, int64_t *power, const float *grad,
    const int64_t *indices, size_t n, size_t rows, size_t inner,
    size_t row_begin, size_t row_end, const tf_swap_ftrl_swap_plan *plan,
    tf_swap_error *error);
uint32_t tf_swap_ftrl_swap_sparse_f64_i32(
    double *var, double *accum, double *linear, int64_t *power,
    const double *grad, const int32_t *indices, size_t n, size_t rows,
    size_t inner, size_t row_begin, size_t row_end,
    const tf_swap_ftrl_swap_plan *plan, tf_swap_error *error);
uint32_t tf_swap_ftrl_swap_sparse_f64_i64(
    double *var, double *accum, double *linear, int64_t *power,
    const double *grad, const int64_t *indices, size_t n, size_t rows,
    size_t inner, size_t row_begin, size_t row_end,
    const tf_swap_ftrl_swap_plan *plan, tf_swap_error *error);

/* Checks every index is in [0, rows); sets *has_duplicates. */
uint32_t tf_swap_check_indices_i32(const int32_t *indices, size_t n,
                                   size_t rows, bool *has_duplicates,
                                   tf_swap_error *error);
uint32_t tf_swap_check_indices_i64(const int64_t *indices, size_t n,
                                   size_t rows, bool *has_duplicates,
                                   tf_swap_error *error);

/* Sums the gradient rows of repeated indices, in order of position: the
 * distinct rows go, ascending, to unique_indices (n slots), their sums to
 * summed_grad (n * inner slots), their number to *unique_count. */
uint32_t tf_swap_sum_duplicates_f32_i32(int64_t *unique_indices,
                                        float *summed_grad,
                                        size_t *unique_count,
                                        const int32_t *indices,
                                        const float *grad, size_t n,
                                        size_t inner, tf_swap_error *error);
uint32_t tf_swap_sum_duplicates_f32_i64(int64_t *unique_indices,
                                        float *summed_grad,
                                        size_t *unique_count,
                                        const int64_t *indices,
                                        const float *grad, size_t n,
                                        size_t inner, tf_swap_error *error);
uint32_t tf_swap_sum_duplicates_f64_i32(int64_t *unique_indices,
                                        double *summed_grad,
                                        size_t *unique_count,
                                        const int32_t *indices,
                                        const double *grad, size_t n,
                                        size_t inner, tf_swap_error *error);
uint32_t tf_swap_sum_duplicates_f64_i64(int64_t *unique_indices,
                                        double *summed_grad,
                                        size_t *unique_count,
                                        const int64_t *indices,
                                        const double *grad, size_t n,
                                        size_t inner, tf_swap_error *error);

/* ---- Local Batch Normalization (SPEC section 3) ----
 * x is [rows, channels], row-major, channels last. Each op is two phases.
 * Phase 1 reduces fixed blocks of whole rows (the cut depends only on the
 * shape: tf_swap_local_batch_norm_stat_blocks) into the caller's double
 * `partials` (blocks may be shared among threads), then one call combines
 * them in block order into the op's per-channel outputs and the caller's
 * double `plan` (planes of `channels` values: plan[k * channels + c]).
 * Phase 2 runs per block of rows and reads the plan. Training forward:
 * partials, finish, normalize. Backward: grad_partials, grad_finish,
 * grad_apply. Results do not depend on how blocks or rows are split.
 * (Inference is stock TensorFlow ops, so exported models need no tf_swap
 * library.) */

/* Writes to *blocks the statistics blocks of `rows` rows of `channels`
 * elements (0 if no rows). */
uint32_t tf_swap_local_batch_norm_stat_blocks(size_t *blocks, size_t rows,
                                              size_t channels,
                                              tf_swap_error *error);

/* Forward phase 1a, blocks [block_begin, block_end): each block's means,
 * then sums of squared deviations, at partials + 2 * channels * block.
 * partials holds 2 * channels * stat_blocks elements, x rows * channels. */
uint32_t tf_swap_local_batch_norm_partials_f32(double *partials,
                                               const float *x, size_t rows,
                                               size_t channels,
                                               size_t block_begin,
                                               size_t block_end,
                                               tf_swap_error *error);
uint32_t tf_swap_local_batch_norm_partials_f64(double *partials,
                                               const double *x, size_t rows,
                                               size_t channels,
                                               size_t block_begin,
                                               size_t block_end,
                                               tf_swap_error *error);

/* Forward phase 1b: batch_mean, batch_inv_std = 1 / sqrt(var + epsilon),
 * batch_variance = var (biased) and plan (3 * channels: mean, scale,
 * offset) from all the blocks' partials. gamma, beta, batch_mean,
 * batch_inv_std, batch_variance hold channels. TF_SWAP_EMPTY_BATCH when rows == 0; epsilon must be finite and
 * > 0. */
uint32_t tf_swap_local_batch_norm_finish_f32(
    float *batch_mean, float *batch_inv_std, float *batch_variance, double *plan,
    const double *partials, const float *gamma, const float *beta,
    size_t rows, size_t channels, double epsilon, tf_swap_error *error);
uint32_t tf_swap_local_batch_norm_finish_f64(
    double *batch_mean, double *batch_inv_std, double *batch_variance,
    double *plan,
    const double *partials, const double *gamma, const double *beta,
    size_t rows, size_t channels, double epsilon, tf_swap_error *error);

/* Forward phase 2 on rows [row_begin, row_end): y = (x - mean) * scale +
 * offset, in double, from a filled 3 * channels plan. */
uint32_t tf_swap_local_batch_norm_normalize_f32(float *y, const float *x,
                                                const double *plan,
                                                size_t rows, size_t channels,
                                                size_t row_begin,
                                                size_t row_end,
                                                tf_swap_error *error);
uint32_t tf_swap_local_batch_norm_normalize_f64(double *y, const double *x,
                                                const double *plan,
                                                size_t rows, size_t channels,
                                                size_t row_begin,
                                                size_t row_end,
                                                tf_swap_error *error);

/* Backward phase 1a, blocks [block_begin, block_end): each block's sums of
 * dy, dy * d and d (d = x - batch_mean) at partials + 3 * channels * block.
 * partials holds 3 * channels * stat_blocks elements. */
uint32_t tf_swap_local_batch_norm_grad_partials_f32(
    double *partials, const float *dy, const float *x,
    const float *batch_mean, size_t rows, size_t channels, size_t block_begin,
    size_t block_end, tf_swap_error *error);
uint32_t tf_swap_local_batch_norm_grad_partials_f64(
    double *partials, const double *dy, const double *x,
    const double *batch_mean, size_t rows, size_t channels,
    size_t block_begin, size_t block_end, tf_swap_error *error);

/* Backward phase 1b: dbeta = sum dy, dgamma = sum dy * xhat and plan
 * (4 * channels) from all the blocks' sums; batch_mean and batch_inv_std
 * are the forward's outputs (the mean is refined in double).
 * TF_SWAP_EMPTY_BATCH when rows == 0. */
uint32_t tf_swap_local_batch_norm_grad_finish_f32(
    float *dgamma, float *dbeta, double *plan, const double *partials,
    const float *gamma, const float *batch_mean, const float *batch_inv_std,
    size_t rows, size_t channels, tf_swap_error *error);
uint32_t tf_swap_local_batch_norm_grad_finish_f64(
    double *dgamma, double *dbeta, double *plan, const double *partials,
    const double *gamma, const double *batch_mean,
    const double *batch_inv_std, size_t rows, size_t channels,
    tf_swap_error *error);

/* Backward phase 2 on rows [row_begin, row_end):
 * dx = gamma * inv_std / N * (N * dy - dbeta - xhat * dgamma), in double,
 * from a filled 4 * channels plan. */
uint32_t tf_swap_local_batch_norm_grad_apply_f32(
    float *dx, const float *dy, const float *x, const double *plan,
    size_t rows, size_t channels, size_t row_begin, size_t row_end,
    tf_swap_error *error);
uint32_t tf_swap_local_batch_norm_grad_apply_f64(
    double *dx, const double *dy, const double *x, const double *plan,
    size_t rows, size_t channels, size_t row_begin, size_t row_end,
    tf_swap_error *error);

/* Dynamic embedding tables (SPEC section 5): int64 id -> entry (float32
 * row, the update rule's slots, power, count, last_step). A table is
 * opaque; calls on one table may run at the same time from any thread.
 * Work on stripes [stripe_begin, stripe_end) (tf_swap_table_stripes of
 * them) touches only the ids of those stripes, so disjoint ranges run in
 * parallel with results that do not depend on the split. */
typedef struct tf_swap_table tf_swap_table;
typedef struct tf_swap_table_export tf_swap_table_export;

/* init: 0 zeros, 1 uniform [init_a, init_b), 2 normal (mean init_a, stddev
 * init_b), 3 truncated normal (the same, redrawn beyond 2 stddev).
 * slots: 1 (Adagrad-SWAP's accumulator) or 2 (FTRL-SWAP's n and z), each
 * starting at slot_init. steps_to_live < 0: entries never expire. */
typedef struct tf_swap_table_config {
  size_t dim;
  size_t slots;
  double slot_init[2];
  uint32_t init;
  double init_a;
  double init_b;
  uint64_t seed;
  int64_t min_count;
  int64_t steps_to_live;
} tf_swap_table_config;

typedef struct tf_swap_table_stats {
  size_t slots;
  size_t entries;
  size_t pending;
  size_t bytes;
} tf_swap_table_stats;

/* The lengths of a snapshot's arrays: ids, power, count, last_step hold
 * entries; values entries * dim; slots slots * entries * dim (slot-major);
 * the pending_* arrays pending; evicted_ids evicted. */
typedef struct tf_swap_table_export_sizes {
  size_t slots;
  size_t entries;
  size_t pending;
  size_t evicted;
} tf_swap_table_export_sizes;

uint32_t tf_swap_table_new_f32(tf_swap_table **table,
                               const tf_swap_table_config *config,
                               tf_swap_error *error);
/* NULL: nothing. No call may use the table any more. */
uint32_t tf_swap_table_free(tf_swap_table *table);
uint32_t tf_swap_table_stripes(size_t *stripes);
/* What new entries' slots start at, as the rule training the table says;
 * their number (1 or 2) may change only while the table stores no entry. */
uint32_t tf_swap_table_set_slot_init(const tf_swap_table *table,
                                     const double *slot_init, size_t slots,
                                     tf_swap_error *error);

/* A training lookup is admit (counts the ids, stores those reaching
 * min_count with power = step / decay_period, last_step = step) then
 * gather; an inference lookup is gather alone (zeros for ids not stored,
 * never inserts). */
uint32_t tf_swap_table_admit(const tf_swap_table *table, const int64_t *ids,
                             size_t n, size_t stripe_begin, size_t stripe_end,
                             int64_t step, int64_t decay_period,
                             tf_swap_error *error);
uint32_t tf_swap_table_gather_f32(const tf_swap_table *table, float *out,
                                  const int64_t *ids, size_t n,
                                  tf_swap_error *error);

/* One step of the rule on the entries of n ids, grad holding n * dim; the
 * rows of a repeated id are summed first (in order of position); ids not
 * stored are skipped; each entry's last_step becomes step. */
uint32_t tf_swap_table_adagrad_swap_f32(
    const tf_swap_table *table, const int64_t *ids, const float *grad,
    size_t n, size_t stripe_begin, size_t stripe_end, int64_t step,
    const tf_swap_adagrad_swap_plan *plan, tf_swap_error *error);
uint32_t tf_swap_table_ftrl_swap_f32(const tf_swap_table *table,
                                     const int64_t *ids, const float *grad,
                                     size_t n, size_t stripe_begin,
                                     size_t stripe_end, int64_t step,
                                     const tf_swap_ftrl_swap_plan *plan,
                                     tf_swap_error *error);

uint32_t tf_swap_table_size(const tf_swap_table *table,
                            tf_swap_table_stats *size_out,
                            tf_swap_error *error);
/* Removes entries with step - last_step > steps_to_live. */
uint32_t tf_swap_table_evict(const tf_swap_table *table, size_t *evicted,
                             int64_t step, tf_swap_error *error);

/* since < 0: every entry and pending count (a checkpoint); else the
 * entries with last_step > since and the ids evicted after since (a
 * serving delta). Ascending ids. Read, then free, the snapshot. */
uint32_t tf_swap_table_export_begin_f32(const tf_swap_table *table,
                                        tf_swap_table_export **snapshot,
                                        tf_swap_table_export_sizes *sizes,
                                        int64_t since, tf_swap_error *error);
uint32_t tf_swap_table_export_read_f32(
    const tf_swap_table_export *snapshot, int64_t *ids, float *values,
    float *slots, int64_t *power, int64_t *count, int64_t *last_step,
    int64_t *pending_ids, int64_t *pending_count, int64_t *pending_last_step,
    int64_t *evicted_ids, tf_swap_error *error);
uint32_t tf_swap_table_export_free(tf_swap_table_export *snapshot);

/* Replaces the table's content with the entries and pending counts (laid
 * out as a snapshot) whose id is shard mod num_shards. */
uint32_t tf_swap_table_import_f32(
    const tf_swap_table *table, const int64_t *ids, const float *values,
    const float *slots, const int64_t *power, const int64_t *count,
    const int64_t *last_step, size_t n, const int64_t *pending_ids,
    const int64_t *pending_count, const int64_t *pending_last_step,
    size_t pending, int64_t shard, int64_t num_shards, tf_swap_error *error);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // TF_SWAP_H_
