//! Exports shared by sparse ops: index checks, duplicate summation, and the
//! thread split.

use super::boundary::{disjoint, elements, region, run, slice, slice_mut, write};
use super::status::{FfiError, TfSwapError};
use crate::kernels::Real;
use crate::kernels::partition::{block_rows, partition_count};
use crate::kernels::sparse_rows::{RowIndex, check_indices, sum_duplicates};

/// # Safety
/// As [`tf_swap_check_indices_i64`].
unsafe fn check<I: RowIndex>(
    indices: *const I,
    n: usize,
    rows: usize,
    has_duplicates: *mut bool,
) -> Result<(), FfiError> {
    region("indices", indices, n)?;
    // SAFETY: checked above; the caller guarantees `n` readable elements.
    let indices = unsafe { slice(indices, n) };
    let repeated = check_indices(indices, rows)?;
    // SAFETY: the caller guarantees `has_duplicates` is NULL or writable.
    let out = unsafe { has_duplicates.as_mut() }.ok_or(FfiError::NullPointer("has_duplicates"))?;
    *out = repeated;
    Ok(())
}

/// # Safety
/// As [`tf_swap_sum_duplicates_f32_i64`].
unsafe fn sum<T: Real, I: RowIndex>(
    unique_indices: *mut i64,
    summed_grad: *mut T,
    unique_count: *mut usize,
    indices: *const I,
    grad: *const T,
    n: usize,
    inner: usize,
) -> Result<(), FfiError> {
    let gathered = elements(n, inner)?;
    disjoint(
        &[
            region("unique_indices", unique_indices, n)?,
            region("summed_grad", summed_grad, gathered)?,
            region("unique_count", unique_count, 1)?,
        ],
        &[
            region("indices", indices, n)?,
            region("grad", grad, gathered)?,
        ],
    )?;
    // SAFETY: checked above (non-NULL where non-empty, aligned, disjoint);
    // lengths are the caller's contract.
    let (unique_indices, summed_grad, unique_count, indices, grad) = unsafe {
        (
            slice_mut(unique_indices, 0, n),
            slice_mut(summed_grad, 0, gathered),
            &mut *unique_count,
            slice(indices, n),
            slice(grad, gathered),
        )
    };
    *unique_count = sum_duplicates(indices, grad, inner, unique_indices, summed_grad)?;
    Ok(())
}

/// Checks that each of the `n` indices is in `[0, rows)` and sets
/// `*has_duplicates` to whether a row repeats.
///
/// # Safety
/// `indices` holds `n` elements (NULL only when `n == 0`);
/// `has_duplicates` is writable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_check_indices_i64(
    indices: *const i64,
    n: usize,
    rows: usize,
    has_duplicates: *mut bool,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || check(indices, n, rows, has_duplicates)) }
}

/// int32 form of [`tf_swap_check_indices_i64`].
///
/// # Safety
/// As [`tf_swap_check_indices_i64`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_check_indices_i32(
    indices: *const i32,
    n: usize,
    rows: usize,
    has_duplicates: *mut bool,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || check(indices, n, rows, has_duplicates)) }
}

/// Sums the float32 gradient rows of repeated indices: writes the distinct
/// rows, ascending, to `unique_indices`, their summed rows to `summed_grad`
/// and their number to `*unique_count`. Sums run in order of position.
///
/// # Safety
/// `unique_indices` and `indices` hold `n` elements, `summed_grad` and
/// `grad` `n * inner` (NULL only when empty), `unique_count` is writable,
/// written buffers overlap nothing; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_sum_duplicates_f32_i64(
    unique_indices: *mut i64,
    summed_grad: *mut f32,
    unique_count: *mut usize,
    indices: *const i64,
    grad: *const f32,
    n: usize,
    inner: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            sum(
                unique_indices,
                summed_grad,
                unique_count,
                indices,
                grad,
                n,
                inner,
            )
        })
    }
}

/// float32 gradients with int32 indices; as [`tf_swap_sum_duplicates_f32_i64`].
///
/// # Safety
/// As [`tf_swap_sum_duplicates_f32_i64`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_sum_duplicates_f32_i32(
    unique_indices: *mut i64,
    summed_grad: *mut f32,
    unique_count: *mut usize,
    indices: *const i32,
    grad: *const f32,
    n: usize,
    inner: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            sum(
                unique_indices,
                summed_grad,
                unique_count,
                indices,
                grad,
                n,
                inner,
            )
        })
    }
}

/// float64 gradients with int64 indices; as [`tf_swap_sum_duplicates_f32_i64`].
///
/// # Safety
/// As [`tf_swap_sum_duplicates_f32_i64`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_sum_duplicates_f64_i64(
    unique_indices: *mut i64,
    summed_grad: *mut f64,
    unique_count: *mut usize,
    indices: *const i64,
    grad: *const f64,
    n: usize,
    inner: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            sum(
                unique_indices,
                summed_grad,
                unique_count,
                indices,
                grad,
                n,
                inner,
            )
        })
    }
}

/// float64 gradients with int32 indices; as [`tf_swap_sum_duplicates_f32_i64`].
///
/// # Safety
/// As [`tf_swap_sum_duplicates_f32_i64`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_sum_duplicates_f64_i32(
    unique_indices: *mut i64,
    summed_grad: *mut f64,
    unique_count: *mut usize,
    indices: *const i32,
    grad: *const f64,
    n: usize,
    inner: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            sum(
                unique_indices,
                summed_grad,
                unique_count,
                indices,
                grad,
                n,
                inner,
            )
        })
    }
}

/// Writes to `*count` how many row blocks (threads) an op touching
/// `elements` elements should use, given `max_threads` available: 1 below
/// the size where a second thread stops paying for itself.
///
/// # Safety
/// `count` is NULL or writable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_partition_count(
    count: *mut usize,
    elements: usize,
    max_threads: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            write(count, "count", partition_count(elements, max_threads))
        })
    }
}

/// Writes to `*begin`, `*end` the rows of block `part` of `parts` nearly
/// equal blocks of `rows` rows (`part >= parts` gives an empty block at
/// the end).
///
/// # Safety
/// `begin` and `end` are NULL or writable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_block_rows(
    begin: *mut usize,
    end: *mut usize,
    rows: usize,
    parts: usize,
    part: usize,
    error: *mut TfSwapError,
) -> u32 {
    let (first, last) = block_rows(rows, parts, part);
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            if begin.is_null() || end.is_null() {
                return Err(FfiError::NullPointer(if begin.is_null() {
                    "begin"
                } else {
                    "end"
                }));
            }
            write(begin, "begin", first)?;
            write(end, "end", last)
        })
    }
}
