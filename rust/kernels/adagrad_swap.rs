//! Adagrad-SWAP: Adagrad whose accumulator is discounted once per sampling
//! period (SPEC section 1), applied densely or to selected rows.
//!
//! The float operations per element are exactly those of TensorFlow's
//! `ApplyAdagradV2` (epsilon after the square root) or Keras 3's `Adagrad`
//! (epsilon inside it), in the same order, so `decay_rate = 1` reproduces
//! them bit for bit.

use std::ops::Range;

use super::discount::{Discount, DiscountArgs, require};
use super::dynamic_table::DynamicTable;
use super::rows::{self, Lanes, UpdateRule};
use super::simd::multiversion;
use super::sparse_rows::RowIndex;
use super::{KernelError, Real};

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

    /// The ABI code of this placement.
    pub fn code(self) -> u32 {
        match self {
            Self::AfterSqrt => 0,
            Self::InsideSqrt => 1,
        }
    }
}

/// The hyper-parameters of one apply, as the op receives them: every float
/// widened to `f64` (exact for `f32` values).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdagradSwapArgs {
    /// Step size, `>= 0`.
    pub learning_rate: f64,
    /// Denominator guard, `>= 0`.
    pub epsilon: f64,
    /// Epsilon placement.
    pub epsilon_placement: EpsilonPlacement,
    /// The period discount.
    pub discount: DiscountArgs,
}

/// Checked hyper-parameters, made once per op call and shared by every
/// block of rows it applies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdagradSwapPlan {
    /// Step size.
    pub learning_rate: f64,
    /// Denominator guard.
    pub epsilon: f64,
    /// Epsilon placement.
    pub epsilon_placement: EpsilonPlacement,
    /// The period discount.
    pub discount: Discount,
}

impl AdagradSwapPlan {
    /// Checks every hyper-parameter against its domain.
    ///
    /// A learning rate of 0 is accepted (Keras schedules end there); it
    /// still updates the accumulator, as TensorFlow's Adagrad does.
    pub fn new(args: &AdagradSwapArgs) -> Result<Self, KernelError> {
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
        Ok(Self {
            learning_rate: lr,
            epsilon: eps,
            epsilon_placement: args.epsilon_placement,
            discount: Discount::new(&args.discount)?,
        })
    }
}

/// The rule in the kernel's element type.
struct AdagradSwap<T> {
    learning_rate: T,
    epsilon: T,
    epsilon_placement: EpsilonPlacement,
    /// `rho` rounded to `T` (the op's input dtype), widened.
    decay_rate: f64,
    accumulator_floor: T,
    discount: Discount,
}

impl<T: Real> AdagradSwap<T> {
    fn new(plan: &AdagradSwapPlan) -> Self {
        Self {
            learning_rate: T::from_f64(plan.learning_rate),
            epsilon: T::from_f64(plan.epsilon),
            epsilon_placement: plan.epsilon_placement,
            decay_rate: T::from_f64(plan.discount.decay_rate).to_f64(),
            accumulator_floor: T::from_f64(plan.discount.accumulator_floor),
            discount: plan.discount,
        }
    }
}

impl<T: Real> UpdateRule<T, 1> for AdagradSwap<T> {
    const SLOT_NAMES: [&'static str; 1] = ["accum"];

    fn discount(&self) -> &Discount {
        &self.discount
    }

    #[inline(always)]
    fn catch_up(&self, _var: &[T], [acc]: [&mut [T]; 1], power: &mut i64, _lanes: Lanes) {
        let missed = self.discount.catch_up(power);
        // `powf` is libm's `pow`, the same function NumPy and Python use, so
        // the factor matches a float64 reference exactly.
        let factor = T::from_f64(self.decay_rate.powf(missed as f64));
        let floor = self.accumulator_floor;
        for a in acc.iter_mut() {
            let decayed = *a * factor;
            // Written as a comparison so that NaN propagates like np.maximum.
            *a = if decayed < floor { floor } else { decayed };
        }
    }

    #[inline(always)]
    fn update(&self, var: &mut [T], [acc]: [&mut [T]; 1], grad: &[T], _lanes: Lanes) {
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

/// [`apply_dense`] as the baseline x86-64 build runs it (the tests compare
/// it with the dispatched build: same bits).
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[inline(always)]
pub fn apply_dense_baseline<T: Real>(
    var: &mut [T],
    accum: &mut [T],
    power: &mut [i64],
    grad: &[T],
    inner: usize,
    first_row: usize,
    total_rows: usize,
    plan: &AdagradSwapPlan,
) -> Result<(), KernelError> {
    let rule = AdagradSwap::<T>::new(plan);
    rows::apply_dense(
        var,
        [accum],
        power,
        grad,
        inner,
        first_row,
        total_rows,
        &rule,
    )
}

/// [`apply_sparse`] as the baseline x86-64 build runs it.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[inline(always)]
pub fn apply_sparse_baseline<T: Real, I: RowIndex>(
    var: &mut [T],
    accum: &mut [T],
    power: &mut [i64],
    first_row: usize,
    grad: &[T],
    indices: &[I],
    inner: usize,
    plan: &AdagradSwapPlan,
) -> Result<(), KernelError> {
    let rule = AdagradSwap::<T>::new(plan);
    rows::apply_sparse(var, [accum], power, first_row, grad, indices, inner, &rule)
}

multiversion! {
    /// Dense Adagrad-SWAP of the rows `[first_row, first_row + power.len())`
    /// of a variable of `total_rows` rows of `inner` elements: `var`,
    /// `accum` and `grad` hold those rows. The result of a row does not
    /// depend on how rows are split across calls.
    pub fn apply_dense<T: Real>(
        var: &mut [T],
        accum: &mut [T],
        power: &mut [i64],
        grad: &[T],
        inner: usize,
        first_row: usize,
        total_rows: usize,
        plan: &AdagradSwapPlan,
    ) -> Result<(), KernelError> => apply_dense_baseline;
}

multiversion! {
    /// Sparse Adagrad-SWAP of the gradient rows whose index falls in the
    /// block of rows `[first_row, first_row + power.len())` that `var`,
    /// `accum` and `power` hold; other indices are skipped, so disjoint
    /// blocks can run in parallel. `indices` must not repeat a row (sum
    /// duplicates first with [`super::sparse_rows::sum_duplicates`]).
    pub fn apply_sparse<T: Real, I: RowIndex>(
        var: &mut [T],
        accum: &mut [T],
        power: &mut [i64],
        first_row: usize,
        grad: &[T],
        indices: &[I],
        inner: usize,
        plan: &AdagradSwapPlan,
    ) -> Result<(), KernelError> => apply_sparse_baseline;
}

/// [`apply_table`] as the baseline x86-64 build runs it.
#[inline(always)]
pub fn apply_table_baseline<T: Real>(
    table: &DynamicTable<T>,
    stripes: Range<usize>,
    ids: &[i64],
    grad: &[T],
    step: i64,
    plan: &AdagradSwapPlan,
) -> Result<(), KernelError> {
    table.apply_rule(stripes, ids, grad, step, &AdagradSwap::<T>::new(plan))
}

multiversion! {
    /// Adagrad-SWAP of the entries of `ids` (in order of position) in the
    /// stripes `stripes` of a dynamic table of one slot; see
    /// [`DynamicTable::apply_rule`].
    pub fn apply_table<T: Real>(
        table: &DynamicTable<T>,
        stripes: Range<usize>,
        ids: &[i64],
        grad: &[T],
        step: i64,
        plan: &AdagradSwapPlan,
    ) -> Result<(), KernelError> => apply_table_baseline;
}
