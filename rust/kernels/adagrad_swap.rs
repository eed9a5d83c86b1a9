//! Adagrad-SWAP: Adagrad whose accumulator is discounted once per sampling
//! period (SPEC section 1), applied densely or to selected rows.
//!
//! The float operations per element are exactly those of TensorFlow's
//! `ApplyAdagradV2` (epsilon after the square root) or Keras 3's `Adagrad`
//! (epsilon inside it), in the same order, so `decay_rate = 1` reproduces
//! them bit for bit.

use super::sparse_rows::RowIndex;
use super::{KernelError, Real, expect_len};

/// How a row that has missed periods catches up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecayMode {
    /// Decay by `decay_rate ** m` for the `m` periods missed (SPEC).
    Exact,
    /// Decay by `decay_rate` once per update (DeepRec's `AdagradDecayOptimizer`).
    OncePerUpdate,
}

impl DecayMode {
    /// Decodes the ABI code (`0` exact, `1` once per update).
    pub fn from_code(code: u32) -> Result<Self, KernelError> {
        match code {
            0 => Ok(Self::Exact),
            1 => Ok(Self::OncePerUpdate),
            _ => Err(KernelError::UnknownMode {
                what: "decay_mode",
                code,
            }),
        }
    }
}

/// Where epsilon enters the denominator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpsilonPlacement {
    /// `sqrt(acc) + epsilon`, as TensorFlow's `ApplyAdagradV2`.
    AfterSqrt,
    /// `sqrt(acc + epsilon)`, as Keras 3's `Adagrad`.
    InsideSqrt,
}

impl EpsilonPlacement {
    /// Decodes the ABI code (`0` after the square root, `1` inside it).
    pub fn from_code(code: u32) -> Result<Self, KernelError> {
        match code {
            0 => Ok(Self::AfterSqrt),
            1 => Ok(Self::InsideSqrt),
            _ => Err(KernelError::UnknownMode {
                what: "epsilon_placement",
                code,
            }),
        }
    }
}

/// Hyper-parameters as they cross the ABI: every float widened to `f64`
/// (exact for `f32` values) so one struct serves both element types.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HyperArgs {
    /// Step size, `>= 0`.
    pub learning_rate: f64,
    /// Denominator guard, `>= 0`.
    pub epsilon: f64,
    /// Per-period discount `rho`, in `(0, 1]`.
    pub decay_rate: f64,
    /// Lower bound `b >= 0` of a decayed accumulator.
    pub accumulator_floor: f64,
    /// 1-based number of this update (`t >= 1`).
    pub step: i64,
    /// Period `T >= 1`, in steps.
    pub decay_period: i64,
    /// Catch-up rule.
    pub decay_mode: DecayMode,
    /// Epsilon placement.
    pub epsilon_placement: EpsilonPlacement,
}

/// Validated hyper-parameters in the kernel's element type.
#[derive(Clone, Copy, Debug)]
pub struct Hyper<T> {
    learning_rate: T,
    epsilon: T,
    decay_rate: f64,
    accumulator_floor: T,
    /// Periods completed at this step, `step / decay_period`.
    periods: i64,
    decay_mode: DecayMode,
    epsilon_placement: EpsilonPlacement,
}

fn require(
    name: &'static str,
    value: f64,
    ok: bool,
    domain: &'static str,
) -> Result<(), KernelError> {
    if ok && !value.is_nan() {
        Ok(())
    } else {
        Err(KernelError::InvalidHyperParameter {
            name,
            value,
            domain,
        })
    }
}

impl<T: Real> Hyper<T> {
    /// Checks every hyper-parameter against its domain.
    ///
    /// A learning rate of 0 is accepted (Keras schedules end there); it
    /// still updates the accumulator, as TensorFlow's Adagrad does.
    pub fn new(args: &HyperArgs) -> Result<Self, KernelError> {
        let lr = args.learning_rate;
        require(
            "learning_rate",
            lr,
            lr.is_finite() && lr >= 0.0,
            "finite and >= 0",
        )?;
        let eps = args.epsilon;
        require(
            "epsilon",
            eps,
            eps.is_finite() && eps >= 0.0,
            "finite and >= 0",
        )?;
        let rho = args.decay_rate;
        require("decay_rate", rho, rho > 0.0 && rho <= 1.0, "in (0, 1]")?;
        let floor = args.accumulator_floor;
        require(
            "accumulator_floor",
            floor,
            floor.is_finite() && floor >= 0.0,
            "finite and >= 0",
        )?;
        let period = args.decay_period;
        require("decay_period", period as f64, period >= 1, ">= 1")?;
        require("step", args.step as f64, args.step >= 1, ">= 1")?;
        Ok(Self {
            learning_rate: T::from_f64(lr),
            epsilon: T::from_f64(eps),
            decay_rate: T::from_f64(rho).to_f64(),
            accumulator_floor: T::from_f64(floor),
            periods: args.step / period,
            decay_mode: args.decay_mode,
            epsilon_placement: args.epsilon_placement,
        })
    }

    /// Brings one row's accumulator up to the current period (SPEC: never
    /// un-decays a row whose `power` is ahead of this step).
    #[inline(always)]
    fn decay_row(&self, acc: &mut [T], power: &mut i64) {
        if self.periods <= *power {
            return;
        }
        let missed = match self.decay_mode {
            DecayMode::Exact => self.periods.saturating_sub(*power),
            DecayMode::OncePerUpdate => 1,
        };
        // `powf` is libm's `pow`, the same function NumPy and Python use, so
        // the factor matches a float64 reference exactly.
        let factor = T::from_f64(self.decay_rate.powf(missed as f64));
        let floor = self.accumulator_floor;
        for a in acc.iter_mut() {
            let decayed = *a * factor;
            // Written as a comparison so that NaN propagates like np.maximum.
            *a = if decayed < floor { floor } else { decayed };
        }
        *power = match self.decay_mode {
            DecayMode::Exact => self.periods,
            DecayMode::OncePerUpdate => *power + 1,
        };
    }

    /// The Adagrad step on contiguous elements whose rows are up to date.
    #[inline(always)]
    fn update(&self, var: &mut [T], acc: &mut [T], grad: &[T]) {
        let (lr, eps) = (self.learning_rate, self.epsilon);
        let elements = var.iter_mut().zip(acc.iter_mut()).zip(grad);
        match self.epsilon_placement {
            EpsilonPlacement::AfterSqrt => {
                for ((w, a), &g) in elements {
                    *a += g * g;
                    *w -= g * lr / (a.sqrt() + eps);
                }
            }
            EpsilonPlacement::InsideSqrt => {
                for ((w, a), &g) in elements {
                    *a += g * g;
                    *w -= g * lr / (*a + eps).sqrt();
                }
            }
        }
    }
}

/// Elements per block of the dense pass: small enough to stay in L1 between
/// the decay check and the update, large enough to vectorize well.
const BLOCK_ELEMENTS: usize = 2048;

/// Dense apply on whole rows: `var`, `accum` and `grad` hold
/// `power.len() * inner` elements, row-major.
///
/// One pass over memory: each block of rows is decayed (when a period has
/// passed) and updated while it is in cache. The result of a row does not
/// depend on how rows are split across calls.
#[inline(always)]
pub fn apply_dense<T: Real>(
    var: &mut [T],
    accum: &mut [T],
    power: &mut [i64],
    grad: &[T],
    inner: usize,
    hyper: &Hyper<T>,
) -> Result<(), KernelError> {
    let elements = power
        .len()
        .checked_mul(inner)
        .ok_or(KernelError::LengthMismatch {
            what: "var",
            got: var.len(),
            expected: usize::MAX,
        })?;
    expect_len("var", var.len(), elements)?;
    expect_len("accum", accum.len(), elements)?;
    expect_len("grad", grad.len(), elements)?;
    if elements == 0 {
        return Ok(());
    }
    let block_rows = (BLOCK_ELEMENTS / inner).max(1);
    let block = block_rows * inner;
    let blocks = var
        .chunks_mut(block)
        .zip(accum.chunks_mut(block))
        .zip(grad.chunks(block))
        .zip(power.chunks_mut(block_rows));
    for (((w, a), g), p) in blocks {
        let stale = p
            .iter()
            .fold(false, |any, &row| any | (row < hyper.periods));
        if stale {
            for (acc_row, row_power) in a.chunks_exact_mut(inner).zip(p.iter_mut()) {
                hyper.decay_row(acc_row, row_power);
            }
        }
        hyper.update(w, a, g);
    }
    Ok(())
}

/// Sparse apply of the gradient rows whose index falls in the block of rows
/// `[first_row, first_row + power.len())` that `var`, `accum` and `power`
/// hold; other indices are skipped, so disjoint blocks can run in parallel.
///
/// `indices` must not repeat a row (sum duplicates first with
/// [`super::sparse_rows::sum_duplicates`]); `grad` holds
/// `indices.len() * inner` elements.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[inline(always)]
pub fn apply_sparse<T: Real, I: RowIndex>(
    var: &mut [T],
    accum: &mut [T],
    power: &mut [i64],
    first_row: usize,
    grad: &[T],
    indices: &[I],
    inner: usize,
    hyper: &Hyper<T>,
) -> Result<(), KernelError> {
    let block_rows = power.len();
    let elements = block_rows
        .checked_mul(inner)
        .ok_or(KernelError::LengthMismatch {
            what: "var",
            got: var.len(),
            expected: usize::MAX,
        })?;
    expect_len("var", var.len(), elements)?;
    expect_len("accum", accum.len(), elements)?;
    expect_len("grad", grad.len(), indices.len().saturating_mul(inner))?;
    if elements == 0 {
        return Ok(());
    }
    let (lo, hi) = (first_row as i64, (first_row + block_rows) as i64);
    let local_row = |index: &I| {
        let row = index.to_i64();
        (lo..hi).contains(&row).then(|| (row - lo) as usize)
    };
    for (chunk_grad, chunk_indices) in grad
        .chunks(TOUCH_AHEAD * inner)
        .zip(indices.chunks(TOUCH_AHEAD))
    {
        // Random rows miss the cache. Loading every row of the chunk first
        // lets the CPU overlap those misses, which the long sqrt/div chains
        // of the update would otherwise serialize, one row at a time.
        let mut touched = 0i64;
        for index in chunk_indices {
            if let Some(r) = local_row(index) {
                touched ^= power[r];
                for line in (r * inner..(r + 1) * inner).step_by(LINE_ELEMENTS) {
                    touched ^= (var[line].to_f64() + accum[line].to_f64()) as i64;
                }
            }
        }
        std::hint::black_box(touched);
        for (g, index) in chunk_grad.chunks_exact(inner).zip(chunk_indices) {
            let Some(r) = local_row(index) else {
                continue;
            };
            let span = r * inner..(r + 1) * inner;
            hyper.decay_row(&mut accum[span.clone()], &mut power[r]);
            hyper.update(&mut var[span.clone()], &mut accum[span], g);
        }
    }
    Ok(())
}

/// Rows a sparse apply loads ahead of updating them.
const TOUCH_AHEAD: usize = 16;
/// Elements per 64-byte cache line at four bytes each (an over-estimate
/// for f64 touches every other line, which the adjacent-line prefetcher
/// covers).
const LINE_ELEMENTS: usize = 16;

/// [`apply_dense`] compiled for AVX2: twice the vector width of the
/// baseline x86-64 build for the square roots and divisions that bound the
/// update when data is in cache. Same results bit for bit (IEEE operations,
/// no FMA).
///
/// # Safety
/// Call only on a CPU with AVX2 (`is_x86_feature_detected!("avx2")`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub fn apply_dense_avx2<T: Real>(
    var: &mut [T],
    accum: &mut [T],
    power: &mut [i64],
    grad: &[T],
    inner: usize,
    hyper: &Hyper<T>,
) -> Result<(), KernelError> {
    apply_dense(var, accum, power, grad, inner, hyper)
}

/// [`apply_sparse`] compiled for AVX2; see [`apply_dense_avx2`].
///
/// # Safety
/// Call only on a CPU with AVX2 (`is_x86_feature_detected!("avx2")`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
pub fn apply_sparse_avx2<T: Real, I: RowIndex>(
    var: &mut [T],
    accum: &mut [T],
    power: &mut [i64],
    first_row: usize,
    grad: &[T],
    indices: &[I],
    inner: usize,
    hyper: &Hyper<T>,
) -> Result<(), KernelError> {
    apply_sparse(var, accum, power, first_row, grad, indices, inner, hyper)
}
