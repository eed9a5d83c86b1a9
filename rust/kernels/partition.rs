//! How many threads an op should use, and which rows each one gets. The
//! C++ kernels shard with TensorFlow's thread pool; this decides the split.

/// Elements one thread should have before a second one pays off. Measured
/// on 2-core machines with benchmarks/bench_adagrad_swap.py: with 2^15 a
/// dense [1e5] update (two threads) beats TensorFlow's, 2^13 splits [3e4]
/// and loses 20% to thread hand-off, 2^18 left [1e5] on one thread, 10%
/// behind TensorFlow's two.
pub const MIN_ELEMENTS_PER_THREAD: usize = 1 << 15;

/// Number of row blocks for an op touching `elements` elements.
pub fn partition_count(elements: usize, max_threads: usize) -> usize {
    (elements / MIN_ELEMENTS_PER_THREAD).clamp(1, max_threads.max(1))
}

/// Rows `[begin, end)` of block `part` when `rows` are cut into `parts`
/// nearly equal blocks.
pub fn block_rows(rows: usize, parts: usize, part: usize) -> (usize, usize) {
    let parts = parts.max(1) as u128;
    let cut = |k: usize| ((rows as u128 * (k as u128).min(parts)) / parts) as usize;
    (cut(part), cut(part.saturating_add(1)))
}
