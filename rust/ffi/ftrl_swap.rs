//! FTRL-SWAP exports, called as the Adagrad-SWAP ones are:
//! `tf_swap_ftrl_swap_prepare` once per op call, then one apply call per
//! block of rows given the prepared plan.

use super::boundary::run;
use super::discount::{TfSwapDiscount, TfSwapDiscountPlan};
use super::rows::{self, Buffers};
use super::status::{FfiError, TfSwapError};
use crate::kernels::KernelError;
use crate::kernels::ftrl_swap::{FtrlSwapArgs, FtrlSwapPlan, apply_dense, apply_sparse};
use crate::kernels::sparse_rows::RowIndex;
use crate::kernels::tf_pow::PowLane;

/// Hyper-parameters of one FTRL-SWAP apply. Floats are widened to double,
/// which is exact for float32 values.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TfSwapFtrlSwapHyper {
    /// Step size, finite and > 0.
    pub learning_rate: f64,
    /// L1 strength, finite and >= 0.
    pub l1: f64,
    /// L2 strength, finite and >= 0.
    pub l2: f64,
    /// L2 shrinkage strength, finite and >= 0.
    pub l2_shrinkage: f64,
    /// Learning rate power, finite and <= 0.
    pub lr_power: f64,
    /// Keras' beta (added to l2 as beta / (2 lr)), finite and >= 0.
    pub beta: f64,
    /// Staleness scale of the gradient's contribution to `linear`, in (0, 1].
    pub staleness_scale: f64,
    /// The period discount.
    pub discount: TfSwapDiscount,
}

/// Checked FTRL-SWAP hyper-parameters, written by
/// [`tf_swap_ftrl_swap_prepare`] and read by every apply of the op call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TfSwapFtrlSwapPlan {
    /// Step size.
    pub learning_rate: f64,
    /// L1 strength.
    pub l1: f64,
    /// L2 strength.
    pub l2: f64,
    /// L2 shrinkage strength.
    pub l2_shrinkage: f64,
    /// Learning rate power.
    pub lr_power: f64,
    /// Keras' beta.
    pub beta: f64,
    /// Staleness scale.
    pub staleness_scale: f64,
    /// The checked discount.
    pub discount: TfSwapDiscountPlan,
}

impl TfSwapFtrlSwapHyper {
    fn check(&self) -> Result<FtrlSwapPlan, KernelError> {
        FtrlSwapPlan::new(&FtrlSwapArgs {
            learning_rate: self.learning_rate,
            l1: self.l1,
            l2: self.l2,
            l2_shrinkage: self.l2_shrinkage,
            lr_power: self.lr_power,
            beta: self.beta,
            staleness_scale: self.staleness_scale,
            discount: self.discount.args()?,
        })
    }
}

impl TfSwapFtrlSwapPlan {
    pub(crate) fn plan(&self) -> Result<FtrlSwapPlan, KernelError> {
        Ok(FtrlSwapPlan {
            learning_rate: self.learning_rate,
            l1: self.l1,
            l2: self.l2,
            l2_shrinkage: self.l2_shrinkage,
            lr_power: self.lr_power,
            beta: self.beta,
            staleness_scale: self.staleness_scale,
            discount: self.discount.discount()?,
        })
    }
}

/// # Safety
/// `plan` is NULL or points to a readable struct.
unsafe fn read_plan(plan: *const TfSwapFtrlSwapPlan) -> Result<FtrlSwapPlan, FfiError> {
    // SAFETY: the caller guarantees `plan` is NULL or valid for reads.
    let plan = unsafe { plan.as_ref() }.ok_or(FfiError::NullPointer("plan"))?;
    Ok(plan.plan()?)
}

/// # Safety
/// As [`tf_swap_ftrl_swap_dense_f32`].
unsafe fn dense<T: PowLane>(
    buffers: &Buffers<T, 2>,
    plan: *const TfSwapFtrlSwapPlan,
) -> Result<(), FfiError> {
    // SAFETY: forwarded from this function's contract.
    let plan = unsafe { read_plan(plan) }?;
    // SAFETY: forwarded from this function's contract.
    let (rows, grad) = unsafe { rows::dense(buffers) }?;
    let [accum, linear] = rows.slots;
    Ok(apply_dense(
        rows.var,
        accum,
        linear,
        rows.power,
        grad,
        buffers.inner,
        buffers.row_begin,
        buffers.rows,
        &plan,
    )?)
}

/// # Safety
/// As [`tf_swap_ftrl_swap_sparse_f32_i64`].
unsafe fn sparse<T: PowLane, I: RowIndex>(
    buffers: &Buffers<T, 2>,
    indices: *const I,
    n: usize,
    plan: *const TfSwapFtrlSwapPlan,
) -> Result<(), FfiError> {
    // SAFETY: forwarded from this function's contract.
    let plan = unsafe { read_plan(plan) }?;
    // SAFETY: forwarded from this function's contract.
    let (rows, grad, indices) = unsafe { rows::sparse(buffers, indices, n) }?;
    let [accum, linear] = rows.slots;
    Ok(apply_sparse(
        rows.var,
        accum,
        linear,
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
    plan: *mut TfSwapFtrlSwapPlan,
    hyper: *const TfSwapFtrlSwapHyper,
) -> Result<(), FfiError> {
    // SAFETY: the caller guarantees `hyper` is NULL or readable.
    let hyper = unsafe { hyper.as_ref() }.ok_or(FfiError::NullPointer("hyper"))?;
    let checked = hyper.check()?;
    // SAFETY: the caller guarantees `plan` is NULL or writable.
    let out = unsafe { plan.as_mut() }.ok_or(FfiError::NullPointer("plan"))?;
    *out = TfSwapFtrlSwapPlan {
        learning_rate: checked.learning_rate,
        l1: checked.l1,
        l2: checked.l2,
        l2_shrinkage: checked.l2_shrinkage,
        lr_power: checked.lr_power,
        beta: checked.beta,
        staleness_scale: checked.staleness_scale,
        discount: (&checked.discount).into(),
    };
    Ok(())
}

/// Checks FTRL-SWAP hyper-parameters once per op call and writes the plan
/// every apply of that call reads.
///
/// # Safety
/// `hyper` is NULL or readable; `plan` is NULL or writable; `error` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_ftrl_swap_prepare(
    plan: *mut TfSwapFtrlSwapPlan,
    hyper: *const TfSwapFtrlSwapHyper,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || prepare(plan, hyper)) }
}

/// Dense FTRL-SWAP on rows `[row_begin, row_end)` of a float32 variable
/// of `rows` rows of `inner` elements, with a plan from
/// [`tf_swap_ftrl_swap_prepare`].
///
/// # Safety
/// `var`, `accum`, `linear`, `grad` hold `rows * inner` elements and `power`
/// `rows` (each may be NULL only when empty). Calls running at the same
/// time on the same buffers use disjoint row ranges. `plan` is NULL or
/// readable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_ftrl_swap_dense_f32(
    var: *mut f32,
    accum: *mut f32,
    linear: *mut f32,
    power: *mut i64,
    grad: *const f32,
    rows: usize,
    inner: usize,
    row_begin: usize,
    row_end: usize,
    plan: *const TfSwapFtrlSwapPlan,
    error: *mut TfSwapError,
) -> u32 {
    let buffers = Buffers {
        var,
        slots: [("accum", accum), ("linear", linear)],
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

/// Dense FTRL-SWAP, float64; as [`tf_swap_ftrl_swap_dense_f32`].
///
/// # Safety
/// As [`tf_swap_ftrl_swap_dense_f32`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_ftrl_swap_dense_f64(
    var: *mut f64,
    accum: *mut f64,
    linear: *mut f64,
    power: *mut i64,
    grad: *const f64,
    rows: usize,
    inner: usize,
    row_begin: usize,
    row_end: usize,
    plan: *const TfSwapFtrlSwapPlan,
    error: *mut TfSwapError,
) -> u32 {
    let buffers = Buffers {
        var,
        slots: [("accum", accum), ("linear", linear)],
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

/// Sparse FTRL-SWAP, float32 with int32 indices.
///
/// # Safety
/// As [`tf_swap_ftrl_swap_sparse_f32_i64`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_ftrl_swap_sparse_f32_i32(
    var: *mut f32,
    accum: *mut f32,
    linear: *mut f32,
    power: *mut i64,
    grad: *const f32,
    indices: *const i32,
    n: usize,
    rows: usize,
    inner: usize,
    row_begin: usize,
    row_end: usize,
    plan: *const TfSwapFtrlSwapPlan,
    error: *mut TfSwapError,
) -> u32 {
    let buffers = Buffers {
        var,
        slots: [("accum", accum), ("linear", linear)],
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

/// Sparse FTRL-SWAP of `n` gradient rows into the rows `[row_begin,
/// row_end)` of a float32 variable; indices outside that range are skipped.
///
/// # Safety
/// `var`, `accum`, `linear` hold `rows * inner` elements, `power` `rows`, `grad`
/// `n * inner`, `indices` `n` (each may be NULL only when empty). `indices`
/// are in range and do not repeat (see `tf_swap_check_indices_*`). Calls
/// running at the same time on the same buffers use disjoint row ranges.
/// `plan` is NULL or readable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_ftrl_swap_sparse_f32_i64(
    var: *mut f32,
    accum: *mut f32,
    linear: *mut f32,
    power: *mut i64,
    grad: *const f32,
    indices: *const i64,
    n: usize,
    rows: usize,
    inner: usize,
    row_begin: usize,
    row_end: usize,
    plan: *const TfSwapFtrlSwapPlan,
    error: *mut TfSwapError,
) -> u32 {
    let buffers = Buffers {
        var,
        slots: [("accum", accum), ("linear", linear)],
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

/// Sparse FTRL-SWAP, float64 with int32 indices.
///
/// # Safety
/// As [`tf_swap_ftrl_swap_sparse_f32_i64`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_ftrl_swap_sparse_f64_i32(
    var: *mut f64,
    accum: *mut f64,
    linear: *mut f64,
    power: *mut i64,
    grad: *const f64,
    indices: *const i32,
    n: usize,
    rows: usize,
    inner: usize,
    row_begin: usize,
    row_end: usize,
    plan: *const TfSwapFtrlSwapPlan,
    error: *mut TfSwapError,
) -> u32 {
    let buffers = Buffers {
        var,
        slots: [("accum", accum), ("linear", linear)],
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

/// Sparse FTRL-SWAP, float64 with int64 indices.
///
/// # Safety
/// As [`tf_swap_ftrl_swap_sparse_f32_i64`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_ftrl_swap_sparse_f64_i64(
    var: *mut f64,
    accum: *mut f64,
    linear: *mut f64,
    power: *mut i64,
    grad: *const f64,
    indices: *const i64,
    n: usize,
    rows: usize,
    inner: usize,
    row_begin: usize,
    row_end: usize,
    plan: *const TfSwapFtrlSwapPlan,
    error: *mut TfSwapError,
) -> u32 {
    let buffers = Buffers {
        var,
        slots: [("accum", accum), ("linear", linear)],
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
