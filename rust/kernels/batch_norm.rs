//! Local Batch Normalization (SPEC section 3) on `[rows, channels]`
//! row-major data, channels last.
//!
//! Every op is two phases, each safe to split across threads:
//!
//! 1. a per-channel reduction over all rows for a block of channels
//!    ([`forward_stats`], [`backward_stats`]), which writes the op's per-channel outputs and a *plan*: a few
//!    `f64` coefficients per channel;
//! 2. an elementwise pass over a block of rows ([`normalize`],
//!    [`backward_apply`]) that reads the plan.
//!
//! A channel's statistics never depend on which block it was in, and phase 2
//! is elementwise, so results are bit-identical for any split. Phase 1 walks
//! rows, reading each row's channel block contiguously; phase 2 writes whole
//! rows, so concurrent calls get disjoint, contiguous outputs.
//!
//! Numerics: everything is accumulated and combined in `f64`, and
//! `x - mean` is formed in `f64` from the `f64` mean, so a float32 channel
//! with mean 1e4 and standard deviation 1e-2 still normalizes to unit
//! variance (rounding the mean to float32 first, as TensorFlow's kernels do,
//! shifts it by up to 5e-4, i.e. 1.5e-2 after normalization). The variance
//! is two-pass per chunk of rows that stays in cache (the chunk's mean, then
//! its sum of squared deviations from it), and chunks are combined in order
//! with Chan et al.'s pairwise update, so `x` is read from memory once.

use super::{KernelError, Real, expect_len};

/// `f64`s per channel in a forward plan: the mean, the scale
/// `gamma / sqrt(var + epsilon)` and the offset `beta`, as three planes of
/// `channels` values each.
pub const FORWARD_PLAN_PER_CHANNEL: usize = 3;

/// `f64`s per channel in a backward plan: the batch mean and the
/// coefficients `a`, `b`, `c` of `dx = a*dy + b*(x - mean) + c`, as four
/// planes of `channels` values each.
pub const BACKWARD_PLAN_PER_CHANNEL: usize = 4;

/// Bytes of one chunk of rows in the two-pass variance: small enough to be
/// re-read from L2 by the second pass, big enough that the per-chunk
/// combine costs little.
const CHUNK_BYTES: usize = 128 << 10;

/// Rows per variance chunk. Depends only on the total channel count and
/// element size, never on the channel block, so splits do not change
/// results.
fn chunk_rows<T>(channels: usize) -> usize {
    (CHUNK_BYTES / channels.max(1).saturating_mul(size_of::<T>()).max(1)).max(1)
}

/// An `f64` mean as `hi + lo` in `T`: `x - hi` is exact or has a rounding
/// error relative to the (small) difference, never to the mean, so the
/// elementwise passes can run in `T` (twice the SIMD width for `f32`)
/// without the error of a mean rounded to `T`.
struct SplitMean<T> {
    hi: Vec<T>,
    lo: Vec<T>,
}

impl<T: Real> SplitMean<T> {
    fn new(mean: &[f64]) -> Self {
        let hi: Vec<T> = mean.iter().map(|&m| T::from_f64(m)).collect();
        let lo = mean
            .iter()
            .zip(&hi)
            .map(|(&m, &h)| T::from_f64(m - h.to_f64()))
            .collect();
        Self { hi, lo }
    }
}

/// Checks `epsilon` (finite and > 0).
pub fn check_epsilon(epsilon: f64) -> Result<(), KernelError> {
    if epsilon.is_finite() && epsilon > 0.0 {
        Ok(())
    } else {
        Err(KernelError::InvalidHyperParameter {
            name: "epsilon",
            value: epsilon,
            domain: "finite and > 0",
        })
    }
}

fn elements(rows: usize, channels: usize) -> Result<usize, KernelError> {
    rows.checked_mul(channels)
        .ok_or(KernelError::LengthMismatch {
            what: "rows * channels",
            got: usize::MAX,
            expected: isize::MAX as usize,
        })
}

fn check_channel_range(begin: usize, end: usize, channels: usize) -> Result<(), KernelError> {
    if begin <= end && end <= channels {
        Ok(())
    } else {
        Err(KernelError::InvalidChannelRange {
            begin,
            end,
            channels,
        })
    }
}

/// The part of a forward plan for channels `[begin, end)`:
/// each plane holds `end - begin` values.
#[derive(Debug)]
pub struct ForwardPlanMut<'a> {
    /// Mean subtracted from `x`.
    pub mean: &'a mut [f64],
    /// `gamma / sqrt(var + epsilon)`.
    pub scale: &'a mut [f64],
    /// `beta`.
    pub offset: &'a mut [f64],
}

/// A whole forward plan, read by [`normalize`]: each plane
/// holds `channels` values.
#[derive(Clone, Copy, Debug)]
pub struct ForwardPlan<'a> {
    /// Mean subtracted from `x`.
    pub mean: &'a [f64],
    /// `gamma / sqrt(var + epsilon)`.
    pub scale: &'a [f64],
    /// `beta`.
    pub offset: &'a [f64],
}

/// The part of a backward plan for channels `[begin, end)`.
#[derive(Debug)]
pub struct BackwardPlanMut<'a> {
    /// Batch mean, refined to `f64` from `x`.
    pub mean: &'a mut [f64],
    /// `a = gamma * inv_std`.
    pub dy_scale: &'a mut [f64],
    /// `b = -gamma * inv_std^2 * dgamma / N`.
    pub x_scale: &'a mut [f64],
    /// `c = -gamma * inv_std * dbeta / N`.
    pub bias: &'a mut [f64],
}

/// A whole backward plan, read by [`backward_apply`].
#[derive(Clone, Copy, Debug)]
pub struct BackwardPlan<'a> {
    /// Batch mean, refined to `f64` from `x`.
    pub mean: &'a [f64],
    /// `a = gamma * inv_std`.
    pub dy_scale: &'a [f64],
    /// `b = -gamma * inv_std^2 * dgamma / N`.
    pub x_scale: &'a [f64],
    /// `c = -gamma * inv_std * dbeta / N`.
    pub bias: &'a [f64],
}

/// Rows summed in `T` before the partial sums are added into `f64`: the
/// rounding of a run is at most `FLUSH_ROWS * 2^-24` relative (float32) to
/// the sum of magnitudes of values that are already deviations from a
/// nearby shift, far below what the outputs can show.
const FLUSH_ROWS: usize = 64;

/// Adds `T` partial sums into `f64` ones and clears them.
fn flush<T: Real>(total: &mut [f64], partial: &mut [T]) {
    for (t, p) in total.iter_mut().zip(partial.iter_mut()) {
        *t += p.to_f64();
        *p = T::ZERO;
    }
}

/// Mean and sum of squared deviations (`M2`) of channels `[begin, end)`
/// over all rows, written to `mean` and `m2` (`end - begin` each).
fn moments<T: Real>(x: &[T], channels: usize, begin: usize, mean: &mut [f64], m2: &mut [f64]) {
    let width = mean.len();
    let rows = x.len() / channels;
    let chunk = chunk_rows::<T>(channels);
    let mut sum = vec![0.0f64; width];
    let mut sum_sq = vec![0.0f64; width];
    let mut partial = vec![T::ZERO; width];
    mean.fill(0.0);
    m2.fill(0.0);
    let mut seen = 0.0f64;
    let mut first = 0;
    while first < rows {
        let last = (first + chunk).min(rows);
        let block = &x[first * channels..last * channels];
        let count = (last - first) as f64;
        // Pass 1: the chunk's mean, as shift + mean of (x - shift), with the
        // chunk's first row as the shift.
        let shift: Vec<T> = block[begin..begin + width].to_vec();
        sum.fill(0.0);
        for run in block.chunks(FLUSH_ROWS * channels) {
            for row in run.chunks_exact(channels) {
                let row = &row[begin..begin + width];
                let (p, k) = (&mut partial[..width], &shift[..width]);
                for j in 0..width {
                    p[j] += row[j] - k[j];
                }
            }
            flush(&mut sum, &mut partial);
        }
        for (s, k) in sum.iter_mut().zip(&shift) {
            *s = k.to_f64() + *s / count;
        }
        // Pass 2 (from cache): squared deviations from that mean.
        let chunk_mean = SplitMean::<T>::new(&sum);
        sum_sq.fill(0.0);
        for run in block.chunks(FLUSH_ROWS * channels) {
            for row in run.chunks_exact(channels) {
                let row = &row[begin..begin + width];
                let p = &mut partial[..width];
                let (hi, lo) = (&chunk_mean.hi[..width], &chunk_mean.lo[..width]);
                for j in 0..width {
                    let d = (row[j] - hi[j]) - lo[j];
                    p[j] += d * d;
                }
            }
            flush(&mut sum_sq, &mut partial);
        }
        // Chan, Golub & LeVeque: merge (count, chunk mean, chunk M2).
        let total = seen + count;
        let (w_new, w_cross) = (count / total, seen * count / total);
        for (((m, q), &cm), &cq) in mean.iter_mut().zip(m2.iter_mut()).zip(&sum).zip(&sum_sq) {
            let delta = cm - *m;
            *m += delta * w_new;
            *q += cq + delta * delta * w_cross;
        }
        seen = total;
        first = last;
    }
}

/// Training forward, phase 1, for channels `[channel_begin, channel_end)`:
/// batch mean and inverse standard deviation `1 / sqrt(var + epsilon)`
/// (biased variance) into `batch_mean` and `batch_inv_std`, and the forward
/// plan into `plan`. Those outputs hold `channel_end - channel_begin`
/// values; `x` holds `rows * channels`, `gamma` and `beta` `channels`.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
pub fn forward_stats<T: Real>(
    batch_mean: &mut [T],
    batch_inv_std: &mut [T],
    plan: ForwardPlanMut<'_>,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    rows: usize,
    channels: usize,
    channel_begin: usize,
    channel_end: usize,
    epsilon: f64,
) -> Result<(), KernelError> {
    check_epsilon(epsilon)?;
    expect_len("x", x.len(), elements(rows, channels)?)?;
    expect_len("gamma", gamma.len(), channels)?;
    expect_len("beta", beta.len(), channels)?;
    check_channel_range(channel_begin, channel_end, channels)?;
    let width = channel_end - channel_begin;
    expect_len("batch_mean", batch_mean.len(), width)?;
    expect_len("batch_inv_std", batch_inv_std.len(), width)?;
    expect_len("plan.mean", plan.mean.len(), width)?;
    expect_len("plan.scale", plan.scale.len(), width)?;
    expect_len("plan.offset", plan.offset.len(), width)?;
    if rows == 0 {
        return Err(KernelError::EmptyBatch);
    }
    if width == 0 {
        return Ok(());
    }
    // plan.scale holds M2 until it is turned into the scale below.
    moments(x, channels, channel_begin, plan.mean, plan.scale);
    let n = rows as f64;
    let range = channel_begin..channel_end;
    for (j, (&g, &b)) in gamma[range.clone()].iter().zip(&beta[range]).enumerate() {
        let inv = 1.0 / (plan.scale[j] / n + epsilon).sqrt();
        batch_mean[j] = T::from_f64(plan.mean[j]);
        batch_inv_std[j] = T::from_f64(inv);
        plan.scale[j] = g.to_f64() * inv;
        plan.offset[j] = b.to_f64();
    }
    Ok(())
}

fn check_row_block(
    out: usize,
    inputs: &[(&'static str, usize)],
    channels: usize,
) -> Result<(), KernelError> {
    for &(what, len) in inputs {
        expect_len(what, len, out)?;
    }
    if channels == 0 {
        return expect_len("rows * channels", out, 0);
    }
    if out % channels != 0 {
        return Err(KernelError::LengthMismatch {
            what: "rows * channels",
            got: out,
            expected: out / channels * channels,
        });
    }
    Ok(())
}

/// Phase 2 of the training forward on whole rows:
/// `y = (x - mean) * scale + offset`, in `f64`, rounded once. `y` and `x`
/// hold the same rows of `channels` elements; `plan` covers all channels.
pub fn normalize<T: Real>(
    y: &mut [T],
    x: &[T],
    channels: usize,
    plan: ForwardPlan<'_>,
) -> Result<(), KernelError> {
    check_row_block(y.len(), &[("x", x.len())], channels)?;
    expect_len("plan.mean", plan.mean.len(), channels)?;
    expect_len("plan.scale", plan.scale.len(), channels)?;
    expect_len("plan.offset", plan.offset.len(), channels)?;
    if y.is_empty() {
        return Ok(());
    }
    let mean = SplitMean::<T>::new(plan.mean);
    let scale: Vec<T> = plan.scale.iter().map(|&v| T::from_f64(v)).collect();
    let offset: Vec<T> = plan.offset.iter().map(|&v| T::from_f64(v)).collect();
    let (hi, lo) = (&mean.hi[..channels], &mean.lo[..channels]);
    let (scale, offset) = (&scale[..channels], &offset[..channels]);
    for (y_row, x_row) in y.chunks_exact_mut(channels).zip(x.chunks_exact(channels)) {
        let (y_row, x_row) = (&mut y_row[..channels], &x_row[..channels]);
        for j in 0..channels {
            y_row[j] = ((x_row[j] - hi[j]) - lo[j]) * scale[j] + offset[j];
        }
    }
    Ok(())
}

/// Training backward, phase 1, for channels `[channel_begin,
/// channel_end)`: `dbeta = sum dy`, `dgamma = sum dy * xhat`, and the
/// backward plan. `dy`, `x` hold `rows * channels`; `gamma`, `batch_mean`,
/// `batch_inv_std` hold `channels` (the last two as the forward returned
/// them); `dgamma`, `dbeta` and the plan planes `channel_end -
/// channel_begin`.
///
/// The batch mean is refined from `x` in `f64` (`mean + sum(x - mean) / N`),
/// so the rounding of the saved mean to `T` does not leak into `xhat`.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
pub fn backward_stats<T: Real>(
    dgamma: &mut [T],
    dbeta: &mut [T],
    plan: BackwardPlanMut<'_>,
    dy: &[T],
    x: &[T],
    gamma: &[T],
    batch_mean: &[T],
    batch_inv_std: &[T],
    rows: usize,
    channels: usize,
    channel_begin: usize,
    channel_end: usize,
) -> Result<(), KernelError> {
    let n_elements = elements(rows, channels)?;
    expect_len("dy", dy.len(), n_elements)?;
    expect_len("x", x.len(), n_elements)?;
    expect_len("gamma", gamma.len(), channels)?;
    expect_len("batch_mean", batch_mean.len(), channels)?;
    expect_len("batch_inv_std", batch_inv_std.len(), channels)?;
    check_channel_range(channel_begin, channel_end, channels)?;
    let width = channel_end - channel_begin;
    expect_len("dgamma", dgamma.len(), width)?;
    expect_len("dbeta", dbeta.len(), width)?;
    expect_len("plan.mean", plan.mean.len(), width)?;
    expect_len("plan.dy_scale", plan.dy_scale.len(), width)?;
    expect_len("plan.x_scale", plan.x_scale.len(), width)?;
    expect_len("plan.bias", plan.bias.len(), width)?;
    if rows == 0 {
        return Err(KernelError::EmptyBatch);
    }
    if width == 0 {
        return Ok(());
    }
    let range = channel_begin..channel_end;
    // Sums over rows, with d = x - saved_mean (exact or nearly: the saved
    // mean is close to every x of a well-conditioned channel, and the
    // difference's rounding is relative to itself):
    // dy_scale <- sum dy, x_scale <- sum dy * d, bias <- sum d.
    for (m, &saved) in plan.mean.iter_mut().zip(&batch_mean[range.clone()]) {
        *m = saved.to_f64();
    }
    plan.dy_scale.fill(0.0);
    plan.x_scale.fill(0.0);
    plan.bias.fill(0.0);
    let saved = &batch_mean[range.clone()];
    let mut partial = vec![T::ZERO; 3 * width];
    let (p_dy, rest) = partial.split_at_mut(width);
    let (p_dyd, p_d) = rest.split_at_mut(width);
    let runs = dy
        .chunks(FLUSH_ROWS * channels)
        .zip(x.chunks(FLUSH_ROWS * channels));
    for (dy_run, x_run) in runs {
        for (dy_row, x_row) in dy_run
            .chunks_exact(channels)
            .zip(x_run.chunks_exact(channels))
        {
            let (dy_row, x_row) = (&dy_row[range.clone()], &x_row[range.clone()]);
            let (p_dy, p_dyd, p_d) = (&mut p_dy[..width], &mut p_dyd[..width], &mut p_d[..width]);
            for j in 0..width {
                let (g, d) = (dy_row[j], x_row[j] - saved[j]);
                p_dy[j] += g;
                p_dyd[j] += g * d;
                p_d[j] += d;
            }
        }
        flush(plan.dy_scale, p_dy);
        flush(plan.x_scale, p_dyd);
        flush(plan.bias, p_d);
    }
    let n = rows as f64;
    for j in 0..width {
        let c = channel_begin + j;
        let (sum_dy, sum_dyd, sum_d) = (plan.dy_scale[j], plan.x_scale[j], plan.bias[j]);
        let residual = sum_d / n;
        let inv = batch_inv_std[c].to_f64();
        let g = gamma[c].to_f64();
        let dgamma_f64 = (sum_dyd - residual * sum_dy) * inv;
        dbeta[j] = T::from_f64(sum_dy);
        dgamma[j] = T::from_f64(dgamma_f64);
        plan.mean[j] += residual;
        plan.dy_scale[j] = g * inv;
        plan.x_scale[j] = -g * inv * inv * dgamma_f64 / n;
        plan.bias[j] = -g * inv * sum_dy / n;
    }
    Ok(())
}

/// Phase 2 of the backward on whole rows:
/// `dx = a*dy + b*(x - mean) + c`, in `f64`, rounded once. `dx`, `dy`, `x`
/// hold the same rows of `channels` elements; `plan` covers all channels.
pub fn backward_apply<T: Real>(
    dx: &mut [T],
    dy: &[T],
    x: &[T],
    channels: usize,
    plan: BackwardPlan<'_>,
) -> Result<(), KernelError> {
    check_row_block(dx.len(), &[("dy", dy.len()), ("x", x.len())], channels)?;
    expect_len("plan.mean", plan.mean.len(), channels)?;
    expect_len("plan.dy_scale", plan.dy_scale.len(), channels)?;
    expect_len("plan.x_scale", plan.x_scale.len(), channels)?;
    expect_len("plan.bias", plan.bias.len(), channels)?;
    if dx.is_empty() {
        return Ok(());
    }
    let mean = SplitMean::<T>::new(plan.mean);
    let to_t = |v: &[f64]| -> Vec<T> { v.iter().map(|&v| T::from_f64(v)).collect() };
    let (a, b, c) = (to_t(plan.dy_scale), to_t(plan.x_scale), to_t(plan.bias));
    let (hi, lo) = (&mean.hi[..channels], &mean.lo[..channels]);
    let (a, b, c) = (&a[..channels], &b[..channels], &c[..channels]);
    let rows = dx
        .chunks_exact_mut(channels)
        .zip(dy.chunks_exact(channels))
        .zip(x.chunks_exact(channels));
    for ((dx_row, dy_row), x_row) in rows {
        let (dx_row, dy_row, x_row) = (
            &mut dx_row[..channels],
            &dy_row[..channels],
            &x_row[..channels],
        );
        for j in 0..channels {
            let d = (x_row[j] - hi[j]) - lo[j];
            dx_row[j] = a[j] * dy_row[j] + b[j] * d + c[j];
        }
    }
    Ok(())
}
