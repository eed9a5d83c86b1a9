//! Local Batch Normalization exports. A training forward is
//! `tf_swap_local_batch_norm_partials_*` on the statistics blocks (a fixed
//! cut of the rows, `tf_swap_local_batch_norm_stat_blocks`; the blocks may
//! be shared among threads), `..._finish_*` once, then `..._normalize_*` on
//! blocks of rows; a backward is `..._grad_partials_*`, `..._grad_finish_*`,
//! then `..._grad_apply_*`. (Inference is stock TensorFlow ops.) Phase 1
//! leaves per-channel `f64` coefficients in a caller-owned `plan` buffer for
//! phase 2 (3 planes of `channels` values for a forward, 4 for a backward;
//! see `crate::kernels::batch_norm`).

use super::boundary::{disjoint, elements, region, run, slice, slice_mut, write};
use super::status::{FfiError, TfSwapError};
use crate::kernels::batch_norm::{
    BACKWARD_PARTIAL_PER_CHANNEL, BACKWARD_PLAN_PER_CHANNEL, BackwardPlan, BackwardPlanMut,
    FORWARD_PARTIAL_PER_CHANNEL, FORWARD_PLAN_PER_CHANNEL, ForwardPlan, ForwardPlanMut,
    backward_apply, backward_finish, backward_partials, forward_finish, forward_partials,
    normalize, stat_blocks,
};
use crate::kernels::{KernelError, Real};

fn check_range(begin: usize, end: usize, len: usize) -> Result<(), FfiError> {
    if begin <= end && end <= len {
        Ok(())
    } else {
        Err(KernelError::InvalidRowRange {
            begin,
            end,
            rows: len,
        }
        .into())
    }
}

/// # Safety
/// As [`tf_swap_local_batch_norm_partials_f32`].
unsafe fn partials<T: Real>(
    partials: *mut f64,
    x: *const T,
    rows: usize,
    channels: usize,
    block_begin: usize,
    block_end: usize,
) -> Result<(), FfiError> {
    let n = elements(rows, channels)?;
    let blocks = stat_blocks(rows, channels);
    let per_block = elements(FORWARD_PARTIAL_PER_CHANNEL, channels)?;
    check_range(block_begin, block_end, blocks)?;
    disjoint(
        &[region("partials", partials, elements(blocks, per_block)?)?],
        &[region("x", x, n)?],
    )?;
    // SAFETY: lengths per the contract, checked non-overlapping; only the
    // partials of blocks [block_begin, block_end) are borrowed mutably,
    // which no concurrent call touches (contract); `x` is only read.
    let (out, x) = unsafe {
        (
            slice_mut(
                partials,
                block_begin * per_block,
                (block_end - block_begin) * per_block,
            ),
            slice(x, n),
        )
    };
    Ok(forward_partials(
        out,
        x,
        rows,
        channels,
        block_begin,
        block_end,
    )?)
}

/// # Safety
/// As [`tf_swap_local_batch_norm_finish_f32`].
#[allow(clippy::too_many_arguments, reason = "mirrors the C signature")]
unsafe fn finish<T: Real>(
    batch_mean: *mut T,
    batch_inv_std: *mut T,
    batch_variance: *mut T,
    plan: *mut f64,
    partials: *const f64,
    gamma: *const T,
    beta: *const T,
    rows: usize,
    channels: usize,
    epsilon: f64,
) -> Result<(), FfiError> {
    let plan_len = elements(FORWARD_PLAN_PER_CHANNEL, channels)?;
    let partials_len = elements(
        stat_blocks(rows, channels),
        elements(FORWARD_PARTIAL_PER_CHANNEL, channels)?,
    )?;
    disjoint(
        &[
            region("batch_mean", batch_mean, channels)?,
            region("batch_inv_std", batch_inv_std, channels)?,
            region("batch_variance", batch_variance, channels)?,
            region("plan", plan, plan_len)?,
        ],
        &[
            region("partials", partials, partials_len)?,
            region("gamma", gamma, channels)?,
            region("beta", beta, channels)?,
        ],
    )?;
    // SAFETY: lengths per the contract, checked non-overlapping; the plan is
    // split into three disjoint planes; the inputs are only read.
    let (batch_mean, batch_inv_std, batch_variance, plan, partials, gamma, beta) = unsafe {
        (
            slice_mut(batch_mean, 0, channels),
            slice_mut(batch_inv_std, 0, channels),
            slice_mut(batch_variance, 0, channels),
            ForwardPlanMut {
                mean: slice_mut(plan, 0, channels),
                scale: slice_mut(plan, channels, channels),
                offset: slice_mut(plan, 2 * channels, channels),
            },
            slice(partials, partials_len),
            slice(gamma, channels),
            slice(beta, channels),
        )
    };
    Ok(forward_finish(
        batch_mean,
        batch_inv_std,
        batch_variance,
        plan,
        partials,
        gamma,
        beta,
        rows,
        channels,
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
    check_range(row_begin, row_end, rows)?;
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
    let x = &x[first..first + count];
    Ok(normalize(y, x, channels, plan)?)
}

/// # Safety
/// As [`tf_swap_local_batch_norm_grad_partials_f32`].
#[allow(clippy::too_many_arguments, reason = "mirrors the C signature")]
unsafe fn grad_partials<T: Real>(
    partials: *mut f64,
    dy: *const T,
    x: *const T,
    batch_mean: *const T,
    rows: usize,
    channels: usize,
    block_begin: usize,
    block_end: usize,
) -> Result<(), FfiError> {
    let n = elements(rows, channels)?;
    let blocks = stat_blocks(rows, channels);
    let per_block = elements(BACKWARD_PARTIAL_PER_CHANNEL, channels)?;
    check_range(block_begin, block_end, blocks)?;
    disjoint(
        &[region("partials", partials, elements(blocks, per_block)?)?],
        &[
            region("dy", dy, n)?,
            region("x", x, n)?,
            region("batch_mean", batch_mean, channels)?,
        ],
    )?;
    // SAFETY: as in `partials`.
    let (out, dy, x, batch_mean) = unsafe {
        (
            slice_mut(
                partials,
                block_begin * per_block,
                (block_end - block_begin) * per_block,
            ),
            slice(dy, n),
            slice(x, n),
            slice(batch_mean, channels),
        )
    };
    Ok(backward_partials(
        out,
        dy,
        x,
        batch_mean,
        rows,
        channels,
        block_begin,
        block_end,
    )?)
}

/// # Safety
/// As [`tf_swap_local_batch_norm_grad_finish_f32`].
#[allow(clippy::too_many_arguments, reason = "mirrors the C signature")]
unsafe fn grad_finish<T: Real>(
    dgamma: *mut T,
    dbeta: *mut T,
    plan: *mut f64,
    partials: *const f64,
    gamma: *const T,
    batch_mean: *const T,
    batch_inv_std: *const T,
    rows: usize,
    channels: usize,
) -> Result<(), FfiError> {
    let plan_len = elements(BACKWARD_PLAN_PER_CHANNEL, channels)?;
    let partials_len = elements(
        stat_blocks(rows, channels),
        elements(BACKWARD_PARTIAL_PER_CHANNEL, channels)?,
    )?;
    disjoint(
        &[
            region("dgamma", dgamma, channels)?,
            region("dbeta", dbeta, channels)?,
            region("plan", plan, plan_len)?,
        ],
        &[
            region("partials", partials, partials_len)?,
            region("gamma", gamma, channels)?,
            region("batch_mean", batch_mean, channels)?,
            region("batch_inv_std", batch_inv_std, channels)?,
        ],
    )?;
    // SAFETY: as in `finish`, the plan in four planes.
    let (dgamma, dbeta, plan, partials, gamma, batch_mean, batch_inv_std) = unsafe {
        (
            slice_mut(dgamma, 0, channels),
            slice_mut(dbeta, 0, channels),
            BackwardPlanMut {
                mean: slice_mut(plan, 0, channels),
                dy_scale: slice_mut(plan, channels, channels),
                x_scale: slice_mut(plan, 2 * channels, channels),
                bias: slice_mut(plan, 3 * channels, channels),
            },
            slice(partials, partials_len),
            slice(gamma, channels),
            slice(batch_mean, channels),
            slice(batch_inv_std, channels),
        )
    };
    Ok(backward_finish(
        dgamma,
        dbeta,
        plan,
        partials,
        gamma,
        batch_mean,
        batch_inv_std,
        rows,
        channels,
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
    check_range(row_begin, row_end, rows)?;
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
    let (dy, x) = (&dy[span.clone()], &x[span]);
    Ok(backward_apply(dx, dy, x, channels, plan)?)
}

/// Writes to `*blocks` how many statistics blocks the phase-1 functions cut
/// `rows` rows of `channels` elements into (a fixed cut, so that any split
/// of the blocks over threads gives the same results): size the partials
/// buffers with it.
///
/// # Safety
/// `blocks` is NULL or writable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_stat_blocks(
    blocks: *mut usize,
    rows: usize,
    channels: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            write(blocks, "blocks", stat_blocks(rows, channels))
        })
    }
}

/// Training forward, phase 1a, of a float32 `x` of `rows` rows of
/// `channels` elements: the moments (means, then sums of squared
/// deviations, in double) of statistics blocks `[block_begin, block_end)`,
/// block `b` at `partials[2 * channels * b ..]`.
///
/// # Safety
/// `x` holds `rows * channels` elements, `partials` `2 * channels *
/// tf_swap_local_batch_norm_stat_blocks(rows, channels)` (each may be NULL
/// only when empty). Calls running at the same time on the same `partials`
/// use disjoint block ranges. `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_partials_f32(
    partials: *mut f64,
    x: *const f32,
    rows: usize,
    channels: usize,
    block_begin: usize,
    block_end: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            self::partials(partials, x, rows, channels, block_begin, block_end)
        })
    }
}

/// Training forward, phase 1b: merges all the blocks' moments in block
/// order into `batch_mean`, `batch_inv_std = 1 / sqrt(var + epsilon)`
/// (biased variance), the biased variance itself, and the three planes of `plan` (`plan[k * channels +
/// c]`: mean, scale, offset) for `tf_swap_local_batch_norm_normalize_f32`.
/// Fails with `TF_SWAP_EMPTY_BATCH` when `rows == 0` and
/// `TF_SWAP_INVALID_HYPER_PARAMETER` unless `epsilon` is finite and > 0.
///
/// # Safety
/// `partials` holds every block of `tf_swap_local_batch_norm_partials_f32`
/// for the same shape; `gamma`, `beta`, `batch_mean`, `batch_inv_std`,
/// `batch_variance` hold
/// `channels` elements, `plan` `3 * channels` (each may be NULL only when
/// empty). `error` is NULL or writable.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_finish_f32(
    batch_mean: *mut f32,
    batch_inv_std: *mut f32,
    batch_variance: *mut f32,
    plan: *mut f64,
    partials: *const f64,
    gamma: *const f32,
    beta: *const f32,
    rows: usize,
    channels: usize,
    epsilon: f64,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            finish(
                batch_mean,
                batch_inv_std,
                batch_variance,
                plan,
                partials,
                gamma,
                beta,
                rows,
                channels,
                epsilon,
            )
        })
    }
}

/// Float64 version of [`tf_swap_local_batch_norm_partials_f32`].
///
/// # Safety
/// As [`tf_swap_local_batch_norm_partials_f32`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_partials_f64(
    partials: *mut f64,
    x: *const f64,
    rows: usize,
    channels: usize,
    block_begin: usize,
    block_end: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            self::partials(partials, x, rows, channels, block_begin, block_end)
        })
    }
}

/// Float64 version of [`tf_swap_local_batch_norm_finish_f32`].
///
/// # Safety
/// As [`tf_swap_local_batch_norm_finish_f32`].
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_finish_f64(
    batch_mean: *mut f64,
    batch_inv_std: *mut f64,
    batch_variance: *mut f64,
    plan: *mut f64,
    partials: *const f64,
    gamma: *const f64,
    beta: *const f64,
    rows: usize,
    channels: usize,
    epsilon: f64,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            finish(
                batch_mean,
                batch_inv_std,
                batch_variance,
                plan,
                partials,
                gamma,
                beta,
                rows,
                channels,
                epsilon,
            )
        })
    }
}

/// Forward phase 2 on rows `[row_begin, row_end)` of a float32 `x` of
/// `rows` rows of `channels` elements: `y = (x - mean) * scale + offset`
/// with the plan of `tf_swap_local_batch_norm_finish_f32`, computed in
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

/// Training backward, phase 1a: for statistics blocks `[block_begin,
/// block_end)`, the per-channel sums of `dy`, `dy * d` and `d` with
/// `d = x - batch_mean` (in double), block `b` at
/// `partials[3 * channels * b ..]`. `batch_mean` is the forward's.
///
/// # Safety
/// `dy` and `x` hold `rows * channels` elements, `batch_mean` `channels`,
/// `partials` `3 * channels * tf_swap_local_batch_norm_stat_blocks(rows,
/// channels)` (each may be NULL only when empty). Calls running at the
/// same time on the same `partials` use disjoint block ranges. `error` is
/// NULL or writable.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_grad_partials_f32(
    partials: *mut f64,
    dy: *const f32,
    x: *const f32,
    batch_mean: *const f32,
    rows: usize,
    channels: usize,
    block_begin: usize,
    block_end: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            grad_partials(
                partials,
                dy,
                x,
                batch_mean,
                rows,
                channels,
                block_begin,
                block_end,
            )
        })
    }
}

/// Training backward, phase 1b: adds the blocks' sums in block order into
/// `dbeta = sum dy`, `dgamma = sum dy * xhat` and the four planes of
/// `plan` for `tf_swap_local_batch_norm_grad_apply_f32`; the mean is
/// refined from the sums in double. `gamma`, `batch_mean` and
/// `batch_inv_std` are the forward's inputs and outputs. Fails with
/// `TF_SWAP_EMPTY_BATCH` when `rows == 0`.
///
/// # Safety
/// `partials` holds every block of
/// `tf_swap_local_batch_norm_grad_partials_f32` for the same shape;
/// `gamma`, `batch_mean`, `batch_inv_std`, `dgamma`, `dbeta` hold
/// `channels` elements, `plan` `4 * channels` (each may be NULL only when
/// empty). `error` is NULL or writable.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_grad_finish_f32(
    dgamma: *mut f32,
    dbeta: *mut f32,
    plan: *mut f64,
    partials: *const f64,
    gamma: *const f32,
    batch_mean: *const f32,
    batch_inv_std: *const f32,
    rows: usize,
    channels: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            grad_finish(
                dgamma,
                dbeta,
                plan,
                partials,
                gamma,
                batch_mean,
                batch_inv_std,
                rows,
                channels,
            )
        })
    }
}

/// Float64 version of [`tf_swap_local_batch_norm_grad_partials_f32`].
///
/// # Safety
/// As [`tf_swap_local_batch_norm_grad_partials_f32`].
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_grad_partials_f64(
    partials: *mut f64,
    dy: *const f64,
    x: *const f64,
    batch_mean: *const f64,
    rows: usize,
    channels: usize,
    block_begin: usize,
    block_end: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            grad_partials(
                partials,
                dy,
                x,
                batch_mean,
                rows,
                channels,
                block_begin,
                block_end,
            )
        })
    }
}

/// Float64 version of [`tf_swap_local_batch_norm_grad_finish_f32`].
///
/// # Safety
/// As [`tf_swap_local_batch_norm_grad_finish_f32`].
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_local_batch_norm_grad_finish_f64(
    dgamma: *mut f64,
    dbeta: *mut f64,
    plan: *mut f64,
    partials: *const f64,
    gamma: *const f64,
    batch_mean: *const f64,
    batch_inv_std: *const f64,
    rows: usize,
    channels: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        run(error, || {
            grad_finish(
                dgamma,
                dbeta,
                plan,
                partials,
                gamma,
                batch_mean,
                batch_inv_std,
                rows,
                channels,
            )
        })
    }
}

/// Training backward, phase 2, on rows `[row_begin, row_end)`:
/// `dx = gamma * inv_std / N * (N * dy - dbeta - xhat * dgamma)` from the
/// plan of `tf_swap_local_batch_norm_grad_finish_f32`, computed in double.
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
