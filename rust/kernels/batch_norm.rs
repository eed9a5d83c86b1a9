//! Local Batch Normalization (SPEC section 3) on `[rows, channels]`
//! row-major data, channels last.
//!
//! Every op is two phases, each safe to split across threads:
//!
//! 1. per-channel reductions over fixed blocks of whole rows
//!    ([`forward_partials`], [`backward_partials`]; the blocks, from
//!    [`stat_block_rows`], depend only on the shape), then one pass that
//!    combines the blocks' partials in block order ([`forward_finish`],
//!    [`backward_finish`]) into the op's per-channel outputs and a *plan*: a
//!    few `f64` coefficients per channel;
//! 2. an elementwise pass over a block of rows ([`normalize`],
//!    [`backward_apply`]) that reads the plan.
//!
//! The block layout and the combine order never depend on how the blocks
//! are shared among threads, and phase 2 is elementwise, so results are
//! bit-identical for any split. Both phases read whole rows, contiguously,
//! and every call writes its own contiguous part of the outputs.
//!
//! Numerics: everything is accumulated and combined in `f64`, and
//! `x - mean` is formed in `f64` from the `f64` mean, so a float32 channel
//! with mean 1e4 and standard deviation 1e-2 still normalizes to unit
//! variance (rounding the mean to float32 first, as TensorFlow's kernels do,
//! shifts it by up to 5e-4, i.e. 1.5e-2 after normalization). The variance
//! is two-pass per chunk of rows that stays in cache (the chunk's mean, then
//! its sum of squared deviations from it), and chunks are combined in order
//! with Chan et al.'s pairwise update, so `x` is read from memory once.

use super::simd::multiversion;
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

/// The forward plan as phase 1 writes it: each plane holds `channels`
/// values.
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

/// The backward plan as phase 1 writes it: each plane holds `channels`
/// values.
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
#[inline(always)]
fn flush<T: Real>(total: &mut [f64], partial: &mut [T]) {
    for (t, p) in total.iter_mut().zip(partial.iter_mut()) {
        *t += p.to_f64();
        *p = T::ZERO;
    }
}

/// Mean and sum of squared deviations (`M2`) of every channel over the rows
/// of `x`, written to `mean` and `m2` (`channels` each).
#[inline(always)]
fn moments<T: Real>(x: &[T], channels: usize, mean: &mut [f64], m2: &mut [f64]) {
    let begin = 0;
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

/// Most blocks the statistics phase cuts the rows into (its partial results
/// take `blocks * 2 * channels` `f64`s).
const MAX_STAT_BLOCKS: usize = 16;
/// Fewest elements a statistics block holds: below that one thread is
/// faster than two.
const MIN_STAT_BLOCK_ELEMENTS: usize = 1 << 16;

/// Rows per block of the statistics phase: a fixed cut of the rows that
/// depends only on `rows` and `channels`, never on the number of threads,
/// so that every split of the blocks over threads combines to the same bits.
pub fn stat_block_rows(rows: usize, channels: usize) -> usize {
    let min_rows = (MIN_STAT_BLOCK_ELEMENTS / channels.max(1)).max(1);
    min_rows.max(rows.div_ceil(MAX_STAT_BLOCKS))
}

/// Number of statistics blocks of `rows` rows (0 for no rows).
pub fn stat_blocks(rows: usize, channels: usize) -> usize {
    rows.div_ceil(stat_block_rows(rows, channels))
}

/// Rows `[begin, end)` of statistics block `block`.
fn stat_block_range(rows: usize, channels: usize, block: usize) -> (usize, usize) {
    let per = stat_block_rows(rows, channels);
    ((block * per).min(rows), ((block + 1) * per).min(rows))
}

/// `f64`s per channel in a block's forward partial: mean and `M2`.
pub const FORWARD_PARTIAL_PER_CHANNEL: usize = 2;
/// `f64`s per channel in a block's backward partial: the sums of `dy`,
/// `dy * d` and `d`, with `d = x - batch_mean`.
pub const BACKWARD_PARTIAL_PER_CHANNEL: usize = 3;

fn check_block_range(begin: usize, end: usize, blocks: usize) -> Result<(), KernelError> {
    if begin <= end && end <= blocks {
        Ok(())
    } else {
        Err(KernelError::InvalidRowRange {
            begin,
            end,
            rows: blocks,
        })
    }
}

#[inline(always)]
fn forward_partials_body<T: Real>(
    partials: &mut [f64],
    x: &[T],
    rows: usize,
    channels: usize,
    begin: usize,
    end: usize,
) -> Result<(), KernelError> {
    expect_len("x", x.len(), elements(rows, channels)?)?;
    check_block_range(begin, end, stat_blocks(rows, channels))?;
    let per_block = FORWARD_PARTIAL_PER_CHANNEL * channels;
    expect_len("partials", partials.len(), (end - begin) * per_block)?;
    if channels == 0 {
        return Ok(());
    }
    for (block, partial) in (begin..end).zip(partials.chunks_exact_mut(per_block)) {
        let (first, last) = stat_block_range(rows, channels, block);
        let (mean, m2) = partial.split_at_mut(channels);
        moments(&x[first * channels..last * channels], channels, mean, m2);
    }
    Ok(())
}

/// Training forward, phase 1b: merges every block's moments in block order
/// (Chan, Golub & LeVeque) into the batch mean and inverse standard
/// deviation `1 / sqrt(var + epsilon)`, the (biased) batch variance and the
/// forward plan. `partials` holds `stat_blocks(rows, channels)` blocks from
/// [`forward_partials`]; `gamma`, `beta`, `batch_mean`, `batch_inv_std`,
/// `batch_variance` and each plan plane hold `channels` values.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
pub fn forward_finish<T: Real>(
    batch_mean: &mut [T],
    batch_inv_std: &mut [T],
    batch_variance: &mut [T],
    plan: ForwardPlanMut<'_>,
    partials: &[f64],
    gamma: &[T],
    beta: &[T],
    rows: usize,
    channels: usize,
    epsilon: f64,
) -> Result<(), KernelError> {
    check_epsilon(epsilon)?;
    let blocks = stat_blocks(rows, channels);
    let per_block = FORWARD_PARTIAL_PER_CHANNEL * channels;
    expect_len("partials", partials.len(), blocks * per_block)?;
    for (what, len) in [
        ("gamma", gamma.len()),
        ("beta", beta.len()),
        ("batch_mean", batch_mean.len()),
        ("batch_inv_std", batch_inv_std.len()),
        ("batch_variance", batch_variance.len()),
        ("plan.mean", plan.mean.len()),
        ("plan.scale", plan.scale.len()),
        ("plan.offset", plan.offset.len()),
    ] {
        expect_len(what, len, channels)?;
    }
    if rows == 0 {
        return Err(KernelError::EmptyBatch);
    }
    // plan.scale holds M2 until it is turned into the scale below.
    let (mean, m2) = (&mut *plan.mean, &mut *plan.scale);
    let mut seen = 0.0f64;
    for (block, partial) in partials.chunks_exact(per_block.max(1)).enumerate() {
        let (first, last) = stat_block_range(rows, channels, block);
        let count = (last - first) as f64;
        let (block_mean, block_m2) = partial.split_at(channels);
        let total = seen + count;
        let (w_new, w_cross) = (count / total, seen * count / total);
        for j in 0..channels {
            if seen == 0.0 {
                (mean[j], m2[j]) = (block_mean[j], block_m2[j]);
            } else {
                let delta = block_mean[j] - mean[j];
                mean[j] += delta * w_new;
                m2[j] += block_m2[j] + delta * delta * w_cross;
            }
        }
        seen = total;
    }
    let n = rows as f64;
    for j in 0..channels {
        let variance = plan.scale[j] / n;
        let inv = 1.0 / (variance + epsilon).sqrt();
        batch_mean[j] = T::from_f64(plan.mean[j]);
        batch_inv_std[j] = T::from_f64(inv);
        batch_variance[j] = T::from_f64(variance);
        plan.scale[j] = gamma[j].to_f64() * inv;
        plan.offset[j] = beta[j].to_f64();
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
    if !out.is_multiple_of(channels) {
        return Err(KernelError::LengthMismatch {
            what: "rows * channels",
            got: out,
            expected: out / channels * channels,
        });
    }
    Ok(())
}

#[inline(always)]
fn normalize_body<T: Real>(
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

#[inline(always)]
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
fn backward_partials_body<T: Real>(
    partials: &mut [f64],
    dy: &[T],
    x: &[T],
    batch_mean: &[T],
    rows: usize,
    channels: usize,
    begin: usize,
    end: usize,
) -> Result<(), KernelError> {
    let n_elements = elements(rows, channels)?;
    expect_len("dy", dy.len(), n_elements)?;
    expect_len("x", x.len(), n_elements)?;
    expect_len("batch_mean", batch_mean.len(), channels)?;
    check_block_range(begin, end, stat_blocks(rows, channels))?;
    let per_block = BACKWARD_PARTIAL_PER_CHANNEL * channels;
    expect_len("partials", partials.len(), (end - begin) * per_block)?;
    if channels == 0 {
        return Ok(());
    }
    let mut partial = vec![T::ZERO; 3 * channels];
    for (block, sums) in (begin..end).zip(partials.chunks_exact_mut(per_block)) {
        let (first, last) = stat_block_range(rows, channels, block);
        let (dy, x) = (
            &dy[first * channels..last * channels],
            &x[first * channels..last * channels],
        );
        sums.fill(0.0);
        let (sum_dy, rest) = sums.split_at_mut(channels);
        let (sum_dyd, sum_d) = rest.split_at_mut(channels);
        let (p_dy, rest) = partial.split_at_mut(channels);
        let (p_dyd, p_d) = rest.split_at_mut(channels);
        let runs = dy
            .chunks(FLUSH_ROWS * channels)
            .zip(x.chunks(FLUSH_ROWS * channels));
        for (dy_run, x_run) in runs {
            for (dy_row, x_row) in dy_run
                .chunks_exact(channels)
                .zip(x_run.chunks_exact(channels))
            {
                let (dy_row, x_row, saved) = (
                    &dy_row[..channels],
                    &x_row[..channels],
                    &batch_mean[..channels],
                );
                let (p_dy, p_dyd, p_d) = (
                    &mut p_dy[..channels],
                    &mut p_dyd[..channels],
                    &mut p_d[..channels],
                );
                for j in 0..channels {
                    let (g, d) = (dy_row[j], x_row[j] - saved[j]);
                    p_dy[j] += g;
                    p_dyd[j] += g * d;
                    p_d[j] += d;
                }
            }
            flush(sum_dy, p_dy);
            flush(sum_dyd, p_dyd);
            flush(sum_d, p_d);
        }
    }
    Ok(())
}

/// Training backward, phase 1b: adds the blocks' sums in block order into
/// `dbeta = sum dy`, `dgamma = sum dy * xhat` and the backward plan.
/// `partials` holds `stat_blocks(rows, channels)` blocks from
/// [`backward_partials`]; `gamma`, `batch_mean`, `batch_inv_std` (as the
/// forward returned them), `dgamma`, `dbeta` and each plan plane hold
/// `channels` values.
///
/// The batch mean is refined in `f64` (`mean + sum(x - mean) / N`), so the
/// rounding of the saved mean to `T` does not leak into `xhat`.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
pub fn backward_finish<T: Real>(
    dgamma: &mut [T],
    dbeta: &mut [T],
    plan: BackwardPlanMut<'_>,
    partials: &[f64],
    gamma: &[T],
    batch_mean: &[T],
    batch_inv_std: &[T],
    rows: usize,
    channels: usize,
) -> Result<(), KernelError> {
    let blocks = stat_blocks(rows, channels);
    let per_block = BACKWARD_PARTIAL_PER_CHANNEL * channels;
    expect_len("partials", partials.len(), blocks * per_block)?;
    for (what, len) in [
        ("gamma", gamma.len()),
        ("batch_mean", batch_mean.len()),
        ("batch_inv_std", batch_inv_std.len()),
        ("dgamma", dgamma.len()),
        ("dbeta", dbeta.len()),
        ("plan.mean", plan.mean.len()),
        ("plan.dy_scale", plan.dy_scale.len()),
        ("plan.x_scale", plan.x_scale.len()),
        ("plan.bias", plan.bias.len()),
    ] {
        expect_len(what, len, channels)?;
    }
    if rows == 0 {
        return Err(KernelError::EmptyBatch);
    }
    // dy_scale <- sum dy, x_scale <- sum dy * d, bias <- sum d, block by
    // block in order.
    plan.dy_scale.fill(0.0);
    plan.x_scale.fill(0.0);
    plan.bias.fill(0.0);
    for partial in partials.chunks_exact(per_block.max(1)) {
        let (sum_dy, rest) = partial.split_at(channels);
        let (sum_dyd, sum_d) = rest.split_at(channels);
        for j in 0..channels {
            plan.dy_scale[j] += sum_dy[j];
            plan.x_scale[j] += sum_dyd[j];
            plan.bias[j] += sum_d[j];
        }
    }
    let n = rows as f64;
    for j in 0..channels {
        let (sum_dy, sum_dyd, sum_d) = (plan.dy_scale[j], plan.x_scale[j], plan.bias[j]);
        let residual = sum_d / n;
        let inv = batch_inv_std[j].to_f64();
        let g = gamma[j].to_f64();
        let dgamma_f64 = (sum_dyd - residual * sum_dy) * inv;
        dbeta[j] = T::from_f64(sum_dy);
        dgamma[j] = T::from_f64(dgamma_f64);
        plan.mean[j] = batch_mean[j].to_f64() + residual;
        plan.dy_scale[j] = g * inv;
        plan.x_scale[j] = -g * inv * inv * dgamma_f64 / n;
        plan.bias[j] = -g * inv * sum_dy / n;
    }
    Ok(())
}

#[inline(always)]
fn backward_apply_body<T: Real>(
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

// The row loops of both phases, in the widest instruction set the CPU has.

multiversion! {
    /// Training forward, phase 1a: the moments of statistics blocks `[begin,
    /// end)` of `x` (`rows * channels`), one block's `2 * channels` values
    /// (means, then `M2`s) after another into `partials`, which holds those
    /// blocks only. Each block reads whole rows, contiguously.
    pub fn forward_partials<T: Real>(partials: &mut [f64], x: &[T], rows: usize, channels: usize, begin: usize, end: usize) -> Result<(), KernelError> => forward_partials_body;
}

multiversion! {
    /// Phase 2 of the training forward on whole rows:
    /// `y = (x - mean) * scale + offset`, in `f64`, rounded once. `y` and `x`
    /// hold the same rows of `channels` elements; `plan` covers all channels.
    pub fn normalize<T: Real>(y: &mut [T], x: &[T], channels: usize, plan: ForwardPlan<'_>) -> Result<(), KernelError> => normalize_body;
}

multiversion! {
    /// Training backward, phase 1a: for statistics blocks `[begin, end)`, the
    /// per-channel sums of `dy`, `dy * d` and `d` with `d = x - batch_mean`
    /// (the saved mean: `d` is exact or nearly, its rounding relative to itself),
    /// one block's `3 * channels` values after another into `partials`. `dy`
    /// and `x` hold `rows * channels`, `batch_mean` `channels`.
    pub fn backward_partials<T: Real>(partials: &mut [f64], dy: &[T], x: &[T], batch_mean: &[T], rows: usize, channels: usize, begin: usize, end: usize) -> Result<(), KernelError> => backward_partials_body;
}

multiversion! {
    /// Phase 2 of the backward on whole rows:
    /// `dx = a*dy + b*(x - mean) + c`, in `f64`, rounded once. `dx`, `dy`, `x`
    /// hold the same rows of `channels` elements; `plan` covers all channels.
    pub fn backward_apply<T: Real>(dx: &mut [T], dy: &[T], x: &[T], channels: usize, plan: BackwardPlan<'_>) -> Result<(), KernelError> => backward_apply_body;
}
