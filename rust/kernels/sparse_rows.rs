//! Index handling shared by sparse kernels: range checks, duplicate
//! detection and deterministic summation of repeated rows.

use super::{KernelError, Real, expect_len};

/// An integer type TensorFlow uses for indices (`int32`, `int64`).
pub trait RowIndex: Copy + Send + Sync + 'static {
    /// The index as `i64` (exact).
    fn to_i64(self) -> i64;
}

impl RowIndex for i32 {
    #[inline(always)]
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
}

impl RowIndex for i64 {
    #[inline(always)]
    fn to_i64(self) -> i64 {
        self
    }
}

/// Checks that every index is in `[0, rows)` and reports whether any row
/// appears more than once.
pub fn check_indices<I: RowIndex>(indices: &[I], rows: usize) -> Result<bool, KernelError> {
    for (position, &index) in indices.iter().enumerate() {
        let row = index.to_i64();
        if row < 0 || row as u64 >= rows as u64 {
            return Err(KernelError::IndexOutOfRange {
                position,
                index: row,
                rows,
            });
        }
    }
    Ok(has_duplicates(indices, rows))
}

/// Bitmap of seen rows while it stays small next to the indices (the common
/// case: a batch into a table of up to ~1e6 rows per 1e3 indices); a sorted
/// copy otherwise, so a 1e9-row table never allocates 125 MB per call.
fn has_duplicates<I: RowIndex>(indices: &[I], rows: usize) -> bool {
    if indices.len() < 2 {
        return false;
    }
    let words = rows.div_ceil(64);
    if words <= indices.len().saturating_mul(16) {
        let mut seen = vec![0u64; words];
        for &index in indices {
            let row = index.to_i64() as usize;
            let (word, bit) = (row / 64, 1u64 << (row % 64));
            if seen[word] & bit != 0 {
                return true;
            }
            seen[word] |= bit;
        }
        false
    } else {
        let mut sorted: Vec<i64> = indices.iter().map(|i| i.to_i64()).collect();
        sorted.sort_unstable();
        sorted.windows(2).any(|pair| pair[0] == pair[1])
    }
}

/// Sums the gradient rows of repeated indices.
///
/// Writes the distinct rows in ascending order to `unique_indices` and their
/// summed gradients to `summed` (both sized for `indices.len()` rows) and
/// returns how many there are. Rows are added in order of position, so the
/// sums are the same whoever calls this, on whatever thread.
pub fn sum_duplicates<T: Real, I: RowIndex>(
    indices: &[I],
    grad: &[T],
    inner: usize,
    unique_indices: &mut [i64],
    summed: &mut [T],
) -> Result<usize, KernelError> {
    let n = indices.len();
    let elements = n.saturating_mul(inner);
    expect_len("grad", grad.len(), elements)?;
    expect_len("unique_indices", unique_indices.len(), n)?;
    expect_len("summed_grad", summed.len(), elements)?;
    let mut order: Vec<(i64, usize)> = indices
        .iter()
        .enumerate()
        .map(|(position, i)| (i.to_i64(), position))
        .collect();
    order.sort_unstable();
    let mut unique = 0;
    for group in order.chunk_by(|a, b| a.0 == b.0) {
        unique_indices[unique] = group[0].0;
        if inner > 0 {
            let out = &mut summed[unique * inner..(unique + 1) * inner];
            out.copy_from_slice(&grad[group[0].1 * inner..][..inner]);
            for &(_, position) in &group[1..] {
                for (o, &g) in out.iter_mut().zip(&grad[position * inner..][..inner]) {
                    *o += g;
                }
            }
        }
        unique += 1;
    }
    Ok(unique)
}
