//! Local Batch Normalization exports. A training forward is
//! `tf_swap_local_batch_norm_stats_*` on blocks of channels (possibly on
//! several threads), then `tf_swap_local_batch_norm_normalize_*` on blocks
//! of rows; a backward is `..._grad_stats_*` then `..._grad_apply_*`.
//! (Inference is stock TensorFlow ops.)
//! Phase 1 leaves per-channel `f64` coefficients in a caller-owned `plan`
//! buffer for phase 2 (3 planes of `channels` values for a forward, 4 for a
//! backward; see `crate::kernels::batch_norm`).

use super::boundary::{disjoint, elements, region, run, slice, slice_mut};
use super::status::{FfiError, TfSwapError};
use crate::kernels::batch_norm::{
    BACKWARD_PLAN_PER_CHANNEL, BackwardPlan, BackwardPlanMut, FORWARD_PLAN_PER_CHANNEL,
    ForwardPlan, ForwardPlanMut, backward_apply, backward_stats, forward_stats, normalize,
};
use crate::kernels::{KernelError, Real};

fn check_range(begin: usize, end: usize, len: usize, rows: bool) -> Result<(), FfiError> {
    if begin <= end && end <= len {
        Ok(())
    } else if rows {
        Err(KernelError::InvalidRowRange {
            begin,
            end,
            rows: len,
        }
        .into())
    } else {
        Err(KernelError::InvalidChannelRange {
            begin,
            end,
            channels: len,
        }
        .into())
    }
}

/// # Safety
/// As [`tf_swap_local_batch_norm_stats_f32`].
#[allow(clippy::too_many_arguments, reason = "mirrors the C signature")]
unsafe fn stats<T: Real>(
    batch_mean: *mut T,
    batch_inv_std: *mut T,
    plan: *mut f64,
    x: *const T,
    gamma: *const T,
    beta: *const T,
    rows: usize,
    channels: usize,
    channel_begin: usize,
    channel_end: usize,
    epsilon: f64,
) -> Result<(), FfiError> {
    let n = elements(rows, channels)?;
    let plan_len = elements(FORWARD_PLAN_PER_CHANNEL, channels)?;
    check_range(channel_begin, channel_end, channels, false)?;
    disjoint(
        &[
            region("batch_mean", batch_mean, channels)?,
            region("batch_inv_std", batch_inv_std, channels)?,
            region("plan", plan, plan_len)?,
        ],
        &[
            region("x", x, n)?,
            region("gamma", gamma, channels)?,
            region("beta", beta, channels)?,
        ],
    )?;
    let (c0, w) = (channel_begin, channel_end - channel_begin);
    // SAFETY: the buffers hold the lengths checked above (contract) and do
    // not overlap; only channels [channel_begin, channel_end) of the outputs
    // and of each plan plane are borrowed mutably, which no concurrent call
    // touches (contract); the inputs are only read.
    let (batch_mean, batch_inv_std, plan, x, gamma, beta) = unsafe {
        (
            slice_mut(batch_mean, c0, w),
            slice_mut(batch_inv_std, c0, w),
            ForwardPlanMut {
                mean: slice_mut(plan, c0, w),
                scale: slice_mut(plan, channels + c0, w),
                offset: slice_mut(plan, 2 * channels + c0, w),
            },
            slice(x, n),
            slice(gamma, channels),
            slice(beta, channels),
        )
    };
    Ok(forward_stats(
        batch_mean,
        batch_inv_std,
        plan,
        x,
        gamma,
        beta,
        rows,
        channels,
        channel_begin,
        channel_end,
        epsilon,
    )?)
}

/// # Safety
/// As [`tf_swap_local_batch_norm_normalize_f32`].
unsafe fn normalize_rows<T: Real>(
    y: *mut T,
    x: *const T,
    plan: *const f64,
    rows: usize,
    channels: usize,
    row_begin: usize,
    row_end: usize,
) -> Result<(), FfiError> {
    let n = elements(rows, channels)?;
    let plan_len = elements(FORWARD_PLAN_PER_CHANNEL, channels)?;
    check_range(row_begin, row_end, rows, true)?;
    disjoint(
        &[region("y", y, n)?],
        &[region("x", x, n)?, region("plan", plan, plan_len)?],
    )?;
    let (first, count) = (row_begin * channels, (row_end - row_begin) * channels);
    // SAFETY: lengths per the contract, checked non-overlapping; only rows
    // [row_begin, row_end) of `y` are borrowed mutably, which no concurrent
    // call touches (contract); `x` and `plan` are only read.
    let (y, x, plan) = unsafe {
        (
            slice_mut(y, first, count),
            slice(x, n),
            slice(plan, plan_len),
        )
    };
    let plan = ForwardPlan {
        mean: &plan[..channels],
        scale: &plan[channels..2 * channels],
        offset: &plan[2 * channels..],
    };
    Ok(normalize(y, &x[first..first + count], channels, plan)?)
}

/// # Safety
/// As [`tf_swap_local_batch_norm_grad_stats_f32`].
#[allow(clippy::too_many_arguments, reason = "mirrors the C signature")]
unsafe fn grad_stats<T: Real>(
    dgamma: *mut T,
    dbeta: *mut T,
    plan: *mut f64,
    dy: *const T,
    x: *const T,
    gamma: *const T,
    batch_mean: *const T,
    batch_inv_std: *const T,
    rows: usize,
    channels: usize,
    channel_begin: usize,
    channel_end: usize,
) -> Result<(), FfiError> {
    let n = elements(rows, channels)?;
    let plan_len = elements(BACKWARD_PLAN_PER_CHANNEL, channels)?;
    check_range(channel_begin, channel_end, channels, false)?;
    disjoint(
        &[
            region("dgamma", dgamma, channels)?,
            region("dbeta", dbeta, channels)?,
            region("plan", plan, plan_len)?,
        ],
        &[
            region("dy", dy, n)?,
            region("x", x, n)?,
            region("gamma", gamma, channels)?,
            region("batch_mean", batch_mean, channels)?,
            region("batch_inv_std", batch_inv_std, channels)?,
        ],
    )?;
    let (c0, w) = (channel_begin, channel_end - channel_begin);
    // SAFETY: as in `stats`.
    let (dgamma, dbeta, plan, dy, x, gamma, batch_mean, batch_inv_std) = unsafe {
        (
            slice_mut(dgamma, c0, w),
            slice_mut(dbeta, c0, w),
            BackwardPlanMut {
                mean: slice_mut(plan, c0, w),
                dy_scale: slice_mut(plan, channels + c0, w),
                x_scale: slice_mut(plan, 2 * channels + c0, w),
                bias: slice_mut(plan, 3 * channels + c0, w),
            },
            slice(dy, n),
            slice(x, n),
            slice(gamma, channels),
            slice(batch_mean, channels),
            slice(batch_inv_std, channels),
        )
    };
    Ok(backward_stats(
        dgamma,
        dbeta,
        plan,
        dy,
        x,
        gamma,
        batch_mean,
        batch_inv_std,
        rows,
        channels,
        channel_begin,
        channel_end,
    )?)
}

/// # Safety
/// As [`tf_swap_local_batch_norm_grad_apply_f32`].
#[allow(clippy::too_many_arguments, reason = "mirrors the C signature")]
unsafe fn grad_apply<T: Real>(
    dx: *mut T,
    dy: *const T,
    x: *const T,
    plan: *const f64,
    rows: usize,
    channels: usize,
    row_begin: usize,
    row_end: usize,
) -> Result<(), FfiError> {
    let n = elements(rows, channels)?;
    let plan_len = elements(BACKWARD_PLAN_PER_CHANNEL, channels)?;
    check_range(row_begin, row_end, rows, true)?;
    disjoint(
        &[region("dx", dx, n)?],
        &[
            region("dy", dy, n)?,
            region("x", x, n)?,
            region("plan", plan, plan_len)?,
        ],
    )?;
    let (first, count) = (row_begin * channels, (row_end - row_begin) * channels);
    // SAFETY: as in `normalize_rows`.
    let (dx, dy, x, plan) = unsafe {
        (
            slice_mut(dx, first, count),
            slice(dy, n),
            slice(x, n),
            slice(plan, plan_len),
        )
    };
    let plan = BackwardPlan {
        mean: &plan[..channels],
        dy_scale: &plan[channels..2 * channels],
        x_scale: &plan[2 * channels..3 * channels],
        bias: &plan[3 * channels..],
    };
    let span = first..first + count;
    Ok(backward_apply(
        dx,
        &dy[span.clone()],
        &x[span],
        channels,
        plan,
    )?)
}

/// Training forward, phase 1, of a float32 `x` of `rows` rows of `channels`
/// elements, for channels `[channel_begin, channel_end)`: writes those
/// channels of `batch_mean`, `batch_inv_std` (`1 / sqrt(var + epsilon)`,
/// biased variance) and of the three planes of `plan` (mean, scale,
/// offset: `plan[k * channels + c]`). Fails with `TF_SWAP_EMPTY_BATCH` when
/// `rows == 0` and `TF_SWAP_INVALID_HYPER_PARAMETER` unless `epsilon` is
/// finite and > 0.
///
/// # Safety
/// `x` holds `rows * channels` elements, `gamma`, `beta`, `batch_mean`,
/// `batch_inv_std` `channels`, `plan` `3 * channels` (each may be NULL only
/// when empty). Calls running at the same time on the same outputs use
/// disjoint channel ranges. `error` is NULL or writable.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_stats_f32(
    batch_mean: *mut f32,
    batch_inv_std: *mut f32,
    plan: *mut f64,
    x: *const f32,
    gamma: *const f32,
    beta: *const f32,
    rows: usize,
    channels: usize,
    channel_begin: usize,
    channel_end: usize,
    epsilon: f64,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            stats(
                batch_mean,
                batch_inv_std,
                plan,
                x,
                gamma,
                beta,
                rows,
                channels,
                channel_begin,
                channel_end,
                epsilon,
            )
        })
    }
}

/// Float64 version of [`tf_swap_local_batch_norm_stats_f32`].
///
/// # Safety
/// As [`tf_swap_local_batch_norm_stats_f32`].
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_stats_f64(
    batch_mean: *mut f64,
    batch_inv_std: *mut f64,
    plan: *mut f64,
    x: *const f64,
    gamma: *const f64,
    beta: *const f64,
    rows: usize,
    channels: usize,
    channel_begin: usize,
    channel_end: usize,
    epsilon: f64,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            stats(
                batch_mean,
                batch_inv_std,
                plan,
                x,
                gamma,
                beta,
                rows,
                channels,
                channel_begin,
                channel_end,
                epsilon,
            )
        })
    }
}

/// Forward phase 2 on rows `[row_begin, row_end)` of a float32 `x` of
/// `rows` rows of `channels` elements: `y = (x - mean) * scale + offset`
/// with the plan of `tf_swap_local_batch_norm_stats_f32`, computed in
/// double.
///
/// # Safety
/// `y` and `x` hold `rows * channels` elements, `plan` `3 * channels`, all
/// channels of it filled (each may be NULL only when empty). Calls running
/// at the same time on the same `y` use disjoint row ranges. `error` is
/// NULL or writable.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_normalize_f32(
    y: *mut f32,
    x: *const f32,
    plan: *const f64,
    rows: usize,
    channels: usize,
    row_begin: usize,
    row_end: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            normalize_rows(y, x, plan, rows, channels, row_begin, row_end)
        })
    }
}

/// Float64 version of [`tf_swap_local_batch_norm_normalize_f32`].
///
/// # Safety
/// As [`tf_swap_local_batch_norm_normalize_f32`].
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_normalize_f64(
    y: *mut f64,
    x: *const f64,
    plan: *const f64,
    rows: usize,
    channels: usize,
    row_begin: usize,
    row_end: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            normalize_rows(y, x, plan, rows, channels, row_begin, row_end)
        })
    }
}

/// Training backward, phase 1, of a float32 batch normalization, for
/// channels `[channel_begin, channel_end)`: writes those channels of
/// `dbeta = sum dy`, `dgamma = sum dy * xhat` and of the four planes of
/// `plan` (`plan[k * channels + c]`). `batch_mean` and `batch_inv_std` are
/// the forward's outputs; the mean is refined from `x` in double. Fails
/// with `TF_SWAP_EMPTY_BATCH` when `rows == 0`.
///
/// # Safety
/// `dy` and `x` hold `rows * channels` elements, `gamma`, `batch_mean`,
/// `batch_inv_std`, `dgamma`, `dbeta` `channels`, `plan` `4 * channels`
/// (each may be NULL only when empty). Calls running at the same time on
/// the same outputs use disjoint channel ranges. `error` is NULL or
/// writable.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_grad_stats_f32(
    dgamma: *mut f32,
    dbeta: *mut f32,
    plan: *mut f64,
    dy: *const f32,
    x: *const f32,
    gamma: *const f32,
    batch_mean: *const f32,
    batch_inv_std: *const f32,
    rows: usize,
    channels: usize,
    channel_begin: usize,
    channel_end: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            grad_stats(
                dgamma,
                dbeta,
                plan,
                dy,
                x,
                gamma,
                batch_mean,
                batch_inv_std,
                rows,
                channels,
                channel_begin,
                channel_end,
            )
        })
    }
}

/// Float64 version of [`tf_swap_local_batch_norm_grad_stats_f32`].
///
/// # Safety
/// As [`tf_swap_local_batch_norm_grad_stats_f32`].
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_grad_stats_f64(
    dgamma: *mut f64,
    dbeta: *mut f64,
    plan: *mut f64,
    dy: *const f64,
    x: *const f64,
    gamma: *const f64,
    batch_mean: *const f64,
    batch_inv_std: *const f64,
    rows: usize,
    channels: usize,
    channel_begin: usize,
    channel_end: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            grad_stats(
                dgamma,
                dbeta,
                plan,
                dy,
                x,
                gamma,
                batch_mean,
                batch_inv_std,
                rows,
                channels,
                channel_begin,
                channel_end,
            )
        })
    }
}

/// Training backward, phase 2, on rows `[row_begin, row_end)`:
/// `dx = gamma * inv_std / N * (N * dy - dbeta - xhat * dgamma)` from the
/// plan of `tf_swap_local_batch_norm_grad_stats_f32`, computed in double.
///
/// # Safety
/// `dx`, `dy` and `x` hold `rows * channels` elements, `plan`
/// `4 * channels`, all channels of it filled (each may be NULL only when
/// empty). Calls running at the same time on the same `dx` use disjoint row
/// ranges. `error` is NULL or writable.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_grad_apply_f32(
    dx: *mut f32,
    dy: *const f32,
    x: *const f32,
    plan: *const f64,
    rows: usize,
    channels: usize,
    row_begin: usize,
    row_end: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            grad_apply(dx, dy, x, plan, rows, channels, row_begin, row_end)
        })
    }
}

/// Float64 version of [`tf_swap_local_batch_norm_grad_apply_f32`].
///
/// # Safety
/// As [`tf_swap_local_batch_norm_grad_apply_f32`].
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_grad_apply_f64(
    dx: *mut f64,
    dy: *const f64,
    x: *const f64,
    plan: *const f64,
    rows: usize,
    channels: usize,
    row_begin: usize,
    row_end: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            grad_apply(dx, dy, x, plan, rows, channels, row_begin, row_end)
        })
    }
}
