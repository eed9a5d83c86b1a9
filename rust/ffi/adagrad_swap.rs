//! Adagrad-SWAP exports. Each op call is: `tf_swap_adagrad_swap_check_hyper`,
//! (sparse) `tf_swap_check_indices_*` and maybe `tf_swap_sum_duplicates_*`,
//! then one apply call per block of rows, possibly on several threads.

use super::boundary::{disjoint, elements, region, run, slice, slice_mut};
use super::status::{FfiError, TfSwapError};
use crate::kernels::adagrad_swap::{
    DecayMode, EpsilonPlacement, Hyper, HyperArgs, apply_dense, apply_sparse,
};
#[cfg(target_arch = "x86_64")]
use crate::kernels::adagrad_swap::{apply_dense_avx2, apply_sparse_avx2};
use crate::kernels::sparse_rows::RowIndex;
use crate::kernels::{KernelError, Real};

/// Hyper-parameters of one Adagrad-SWAP apply. Floats are widened to
/// double, which is exact for float32 values.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TfSwapAdagradSwapHyper {
    /// Step size, finite and >= 0.
    pub learning_rate: f64,
    /// Denominator guard, finite and >= 0.
    pub epsilon: f64,
    /// Per-period discount, in (0, 1].
    pub decay_rate: f64,
    /// Lower bound of a decayed accumulator, finite and >= 0.
    pub accumulator_floor: f64,
    /// 1-based number of this update, >= 1.
    pub step: i64,
    /// Steps per period, >= 1.
    pub decay_period: i64,
    /// 0: exact; 1: once per update.
    pub decay_mode: u32,
    /// 0: sqrt(acc) + epsilon (TensorFlow); 1: sqrt(acc + epsilon) (Keras).
    pub epsilon_placement: u32,
}

impl TfSwapAdagradSwapHyper {
    fn validate<T: Real>(&self) -> Result<Hyper<T>, KernelError> {
        Hyper::new(&HyperArgs {
            learning_rate: self.learning_rate,
            epsilon: self.epsilon,
            decay_rate: self.decay_rate,
            accumulator_floor: self.accumulator_floor,
            step: self.step,
            decay_period: self.decay_period,
            decay_mode: DecayMode::from_code(self.decay_mode)?,
            epsilon_placement: EpsilonPlacement::from_code(self.epsilon_placement)?,
        })
    }
}

/// # Safety
/// `hyper` is NULL or points to a readable struct.
unsafe fn read_hyper<T: Real>(hyper: *const TfSwapAdagradSwapHyper) -> Result<Hyper<T>, FfiError> {
    // SAFETY: the caller guarantees `hyper` is NULL or valid for reads.
    let hyper = unsafe { hyper.as_ref() }.ok_or(FfiError::NullPointer("hyper"))?;
    Ok(hyper.validate()?)
}

fn check_row_range(begin: usize, end: usize, rows: usize) -> Result<(), FfiError> {
    if begin <= end && end <= rows {
        Ok(())
    } else {
        Err(KernelError::InvalidRowRange { begin, end, rows }.into())
    }
}

/// # Safety
/// As [`tf_swap_adagrad_swap_dense_f32`].
#[allow(clippy::too_many_arguments, reason = "mirrors the C signature")]
unsafe fn dense<T: Real>(
    var: *mut T,
    accum: *mut T,
    power: *mut i64,
    grad: *const T,
    rows: usize,
    inner: usize,
    row_begin: usize,
    row_end: usize,
    hyper: *const TfSwapAdagradSwapHyper,
) -> Result<(), FfiError> {
    // SAFETY: forwarded from this function's contract.
    let hyper = unsafe { read_hyper::<T>(hyper) }?;
    let n = elements(rows, inner)?;
    check_row_range(row_begin, row_end, rows)?;
    disjoint(
        &[
            region("var", var, n)?,
            region("accum", accum, n)?,
            region("power", power, rows)?,
        ],
        &[region("grad", grad, n)?],
    )?;
    let (first, count) = (row_begin * inner, (row_end - row_begin) * inner);
    // SAFETY: the buffers hold `rows` rows (contract) and were checked above;
    // only rows [row_begin, row_end) are borrowed, which no concurrent call
    // touches (contract), and `grad` is only read.
    let (var, accum, power, grad) = unsafe {
        (
            slice_mut(var, first, count),
            slice_mut(accum, first, count),
            slice_mut(power, row_begin, row_end - row_begin),
            &slice(grad, n)[first..first + count],
        )
    };
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return Ok(unsafe { apply_dense_avx2(var, accum, power, grad, inner, &hyper) }?);
    }
    Ok(apply_dense(var, accum, power, grad, inner, &hyper)?)
}

/// # Safety
/// As [`tf_swap_adagrad_swap_sparse_f32_i64`].
#[allow(clippy::too_many_arguments, reason = "mirrors the C signature")]
unsafe fn sparse<T: Real, I: RowIndex>(
    var: *mut T,
    accum: *mut T,
    power: *mut i64,
    grad: *const T,
    indices: *const I,
    n: usize,
    rows: usize,
    inner: usize,
    row_begin: usize,
    row_end: usize,
    hyper: *const TfSwapAdagradSwapHyper,
) -> Result<(), FfiError> {
    // SAFETY: forwarded from this function's contract.
    let hyper = unsafe { read_hyper::<T>(hyper) }?;
    let table = elements(rows, inner)?;
    let gathered = elements(n, inner)?;
    check_row_range(row_begin, row_end, rows)?;
    disjoint(
        &[
            region("var", var, table)?,
            region("accum", accum, table)?,
            region("power", power, rows)?,
        ],
        &[
            region("grad", grad, gathered)?,
            region("indices", indices, n)?,
        ],
    )?;
    let (first, count) = (row_begin * inner, (row_end - row_begin) * inner);
    // SAFETY: as in `dense`; `grad` and `indices` are only read.
    let (var, accum, power, grad, indices) = unsafe {
        (
            slice_mut(var, first, count),
            slice_mut(accum, first, count),
            slice_mut(power, row_begin, row_end - row_begin),
            slice(grad, gathered),
            slice(indices, n),
        )
    };
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return Ok(unsafe {
            apply_sparse_avx2(var, accum, power, row_begin, grad, indices, inner, &hyper)
        }?);
    }
    Ok(apply_sparse(
        var, accum, power, row_begin, grad, indices, inner, &hyper,
    )?)
}

/// Validates Adagrad-SWAP hyper-parameters (call before any apply).
///
/// # Safety
/// `hyper` is NULL or readable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_adagrad_swap_check_hyper(
    hyper: *const TfSwapAdagradSwapHyper,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || read_hyper::<f64>(hyper).map(drop)) }
}

/// Dense Adagrad-SWAP on rows `[row_begin, row_end)` of a float32 variable
/// of `rows` rows of `inner` elements.
///
/// # Safety
/// `var`, `accum`, `grad` hold `rows * inner` elements and `power` `rows`
/// (each may be NULL only when empty). Calls running at the same time on
/// the same buffers use disjoint row ranges. `hyper` is NULL or readable;
/// `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_adagrad_swap_dense_f32(
    var: *mut f32,
    accum: *mut f32,
    power: *mut i64,
    grad: *const f32,
    rows: usize,
    inner: usize,
    row_begin: usize,
    row_end: usize,
    hyper: *const TfSwapAdagradSwapHyper,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            dense(
                var, accum, power, grad, rows, inner, row_begin, row_end, hyper,
            )
        })
    }
}

/// Dense Adagrad-SWAP, float64; as [`tf_swap_adagrad_swap_dense_f32`].
///
/// # Safety
/// As [`tf_swap_adagrad_swap_dense_f32`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_adagrad_swap_dense_f64(
    var: *mut f64,
    accum: *mut f64,
    power: *mut i64,
    grad: *const f64,
    rows: usize,
    inner: usize,
    row_begin: usize,
    row_end: usize,
    hyper: *const TfSwapAdagradSwapHyper,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            dense(
                var, accum, power, grad, rows, inner, row_begin, row_end, hyper,
            )
        })
    }
}

/// Sparse Adagrad-SWAP of `n` gradient rows into the rows `[row_begin,
/// row_end)` of a float32 variable; indices outside that range are skipped.
///
/// # Safety
/// `var`, `accum` hold `rows * inner` elements, `power` `rows`, `grad`
/// `n * inner`, `indices` `n` (each may be NULL only when empty). `indices`
/// do not repeat (see `tf_swap_check_indices_*`). Calls running at the same
/// time on the same buffers use disjoint row ranges. `hyper` is NULL or
/// readable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_adagrad_swap_sparse_f32_i64(
    var: *mut f32,
    accum: *mut f32,
    power: *mut i64,
    grad: *const f32,
    indices: *const i64,
    n: usize,
    rows: usize,
    inner: usize,
    row_begin: usize,
    row_end: usize,
    hyper: *const TfSwapAdagradSwapHyper,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            sparse(
                var, accum, power, grad, indices, n, rows, inner, row_begin, row_end, hyper,
            )
        })
    }
}

/// Sparse Adagrad-SWAP, float32 with int32 indices.
///
/// # Safety
/// As [`tf_swap_adagrad_swap_sparse_f32_i64`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_adagrad_swap_sparse_f32_i32(
    var: *mut f32,
    accum: *mut f32,
    power: *mut i64,
    grad: *const f32,
    indices: *const i32,
    n: usize,
    rows: usize,
    inner: usize,
    row_begin: usize,
    row_end: usize,
    hyper: *const TfSwapAdagradSwapHyper,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            sparse(
                var, accum, power, grad, indices, n, rows, inner, row_begin, row_end, hyper,
            )
        })
    }
}

/// Sparse Adagrad-SWAP, float64 with int64 indices.
///
/// # Safety
/// As [`tf_swap_adagrad_swap_sparse_f32_i64`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_adagrad_swap_sparse_f64_i64(
    var: *mut f64,
    accum: *mut f64,
    power: *mut i64,
    grad: *const f64,
    indices: *const i64,
    n: usize,
    rows: usize,
    inner: usize,
    row_begin: usize,
    row_end: usize,
    hyper: *const TfSwapAdagradSwapHyper,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            sparse(
                var, accum, power, grad, indices, n, rows, inner, row_begin, row_end, hyper,
            )
        })
    }
}

/// Sparse Adagrad-SWAP, float64 with int32 indices.
///
/// # Safety
/// As [`tf_swap_adagrad_swap_sparse_f32_i64`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_adagrad_swap_sparse_f64_i32(
    var: *mut f64,
    accum: *mut f64,
    power: *mut i64,
    grad: *const f64,
    indices: *const i32,
    n: usize,
    rows: usize,
    inner: usize,
    row_begin: usize,
    row_end: usize,
    hyper: *const TfSwapAdagradSwapHyper,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            sparse(
                var, accum, power, grad, indices, n, rows, inner, row_begin, row_end, hyper,
            )
        })
    }
}
