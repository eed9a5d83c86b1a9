//! Adagrad-SWAP exports. Each op call is: `tf_swap_adagrad_swap_prepare`
//! (the one check of the hyper-parameters), (sparse)
//! `tf_swap_check_indices_*` and maybe `tf_swap_sum_duplicates_*`, then one
//! apply call per block of rows, possibly on several threads, each given
//! the prepared plan.

use super::boundary::run;
use super::discount::{TfSwapDiscount, TfSwapDiscountPlan};
use super::rows::{self, Buffers};
use super::status::{FfiError, TfSwapError};
use crate::kernels::adagrad_swap::{
    AdagradSwapArgs, AdagradSwapPlan, EpsilonPlacement, apply_dense, apply_sparse,
};
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
    /// 0: sqrt(acc) + epsilon (TensorFlow); 1: sqrt(acc + epsilon) (Keras).
    pub epsilon_placement: u32,
    /// The period discount.
    pub discount: TfSwapDiscount,
}

/// Checked Adagrad-SWAP hyper-parameters, written by
/// [`tf_swap_adagrad_swap_prepare`] and read by every apply of the op call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TfSwapAdagradSwapPlan {
    /// Step size.
    pub learning_rate: f64,
    /// Denominator guard.
    pub epsilon: f64,
    /// As in [`TfSwapAdagradSwapHyper`].
    pub epsilon_placement: u32,
    /// The checked discount.
    pub discount: TfSwapDiscountPlan,
}

impl TfSwapAdagradSwapHyper {
    fn check(&self) -> Result<AdagradSwapPlan, KernelError> {
        AdagradSwapPlan::new(&AdagradSwapArgs {
            learning_rate: self.learning_rate,
            epsilon: self.epsilon,
            epsilon_placement: EpsilonPlacement::from_code(self.epsilon_placement)?,
            discount: self.discount.args()?,
        })
    }
}

impl TfSwapAdagradSwapPlan {
    pub(crate) fn plan(&self) -> Result<AdagradSwapPlan, KernelError> {
        Ok(AdagradSwapPlan {
            learning_rate: self.learning_rate,
            epsilon: self.epsilon,
            epsilon_placement: EpsilonPlacement::from_code(self.epsilon_placement)?,
            discount: self.discount.discount()?,
        })
    }
}

/// # Safety
/// `plan` is NULL or points to a readable struct.
unsafe fn read_plan(plan: *const TfSwapAdagradSwapPlan) -> Result<AdagradSwapPlan, FfiError> {
    // SAFETY: the caller guarantees `plan` is NULL or valid for reads.
    let plan = unsafe { plan.as_ref() }.ok_or(FfiError::NullPointer("plan"))?;
    Ok(plan.plan()?)
}

/// # Safety
/// As [`tf_swap_adagrad_swap_dense_f32`].
unsafe fn dense<T: Real>(
    buffers: &Buffers<T, 1>,
    plan: *const TfSwapAdagradSwapPlan,
) -> Result<(), FfiError> {
    // SAFETY: forwarded from this function's contract.
    let plan = unsafe { read_plan(plan) }?;
    // SAFETY: forwarded from this function's contract.
    let (rows, grad) = unsafe { rows::dense(buffers) }?;
    let [accum] = rows.slots;
    Ok(apply_dense(
        rows.var,
        accum,
        rows.power,
        grad,
        buffers.inner,
        buffers.row_begin,
        buffers.rows,
        &plan,
    )?)
}

/// # Safety
/// As [`tf_swap_adagrad_swap_sparse_f32_i64`].
unsafe fn sparse<T: Real, I: RowIndex>(
    buffers: &Buffers<T, 1>,
    indices: *const I,
    n: usize,
    plan: *const TfSwapAdagradSwapPlan,
) -> Result<(), FfiError> {
    // SAFETY: forwarded from this function's contract.
    let plan = unsafe { read_plan(plan) }?;
    // SAFETY: forwarded from this function's contract.
    let (rows, grad, indices) = unsafe { rows::sparse(buffers, indices, n) }?;
    let [accum] = rows.slots;
    Ok(apply_sparse(
        rows.var,
        accum,
        rows.power,
        buffers.row_begin,
        grad,
        indices,
        buffers.inner,
        &plan,
    )?)
}

/// # Safety
/// As the `*_prepare` export.
unsafe fn prepare(
    plan: *mut TfSwapAdagradSwapPlan,
    hyper: *const TfSwapAdagradSwapHyper,
) -> Result<(), FfiError> {
    // SAFETY: the caller guarantees `hyper` is NULL or readable.
    let hyper = unsafe { hyper.as_ref() }.ok_or(FfiError::NullPointer("hyper"))?;
    let checked = hyper.check()?;
    // SAFETY: the caller guarantees `plan` is NULL or writable.
    let out = unsafe { plan.as_mut() }.ok_or(FfiError::NullPointer("plan"))?;
    *out = TfSwapAdagradSwapPlan {
        learning_rate: checked.learning_rate,
        epsilon: checked.epsilon,
        epsilon_placement: checked.epsilon_placement.code(),
        discount: (&checked.discount).into(),
    };
    Ok(())
}

/// Checks Adagrad-SWAP hyper-parameters once per op call and writes the
/// plan every apply of that call reads.
///
/// # Safety
/// `hyper` is NULL or readable; `plan` is NULL or writable; `error` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_adagrad_swap_prepare(
    plan: *mut TfSwapAdagradSwapPlan,
    hyper: *const TfSwapAdagradSwapHyper,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || prepare(plan, hyper)) }
}

/// Dense Adagrad-SWAP on rows `[row_begin, row_end)` of a float32 variable
/// of `rows` rows of `inner` elements, with a plan from
/// [`tf_swap_adagrad_swap_prepare`].
///
/// # Safety
/// `var`, `accum`, `grad` hold `rows * inner` elements and `power`
/// `rows` (each may be NULL only when empty). Calls running at the same
/// time on the same buffers use disjoint row ranges. `plan` is NULL or
/// readable; `error` is NULL or writable.
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
    plan: *const TfSwapAdagradSwapPlan,
    error: *mut TfSwapError,
) -> u32 {
    let buffers = Buffers {
        var,
        slots: [("accum", accum)],
        power,
        grad,
        rows,
        inner,
        row_begin,
        row_end,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || dense(&buffers, plan)) }
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
    plan: *const TfSwapAdagradSwapPlan,
    error: *mut TfSwapError,
) -> u32 {
    let buffers = Buffers {
        var,
        slots: [("accum", accum)],
        power,
        grad,
        rows,
        inner,
        row_begin,
        row_end,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || dense(&buffers, plan)) }
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
    plan: *const TfSwapAdagradSwapPlan,
    error: *mut TfSwapError,
) -> u32 {
    let buffers = Buffers {
        var,
        slots: [("accum", accum)],
        power,
        grad,
        rows,
        inner,
        row_begin,
        row_end,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || sparse(&buffers, indices, n, plan)) }
}

/// Sparse Adagrad-SWAP of `n` gradient rows into the rows `[row_begin,
/// row_end)` of a float32 variable; indices outside that range are skipped.
///
/// # Safety
/// `var`, `accum` hold `rows * inner` elements, `power` `rows`, `grad`
/// `n * inner`, `indices` `n` (each may be NULL only when empty). `indices`
/// are in range and do not repeat (see `tf_swap_check_indices_*`). Calls
/// running at the same time on the same buffers use disjoint row ranges.
/// `plan` is NULL or readable; `error` is NULL or writable.
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
    plan: *const TfSwapAdagradSwapPlan,
    error: *mut TfSwapError,
) -> u32 {
    let buffers = Buffers {
        var,
        slots: [("accum", accum)],
        power,
        grad,
        rows,
        inner,
        row_begin,
        row_end,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || sparse(&buffers, indices, n, plan)) }
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
    plan: *const TfSwapAdagradSwapPlan,
    error: *mut TfSwapError,
) -> u32 {
    let buffers = Buffers {
        var,
        slots: [("accum", accum)],
        power,
        grad,
        rows,
        inner,
        row_begin,
        row_end,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || sparse(&buffers, indices, n, plan)) }
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
    plan: *const TfSwapAdagradSwapPlan,
    error: *mut TfSwapError,
) -> u32 {
    let buffers = Buffers {
        var,
        slots: [("accum", accum)],
        power,
        grad,
        rows,
        inner,
        row_begin,
        row_end,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || sparse(&buffers, indices, n, plan)) }
}
