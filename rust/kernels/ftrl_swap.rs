//! FTRL-SWAP: FTRL-proximal (McMahan et al. 2013) whose accumulator `n` is
//! discounted once per sampling period, the linear term `z` re-anchored so
//! that no weight changes at a discount (SPEC section 4).
//!
//! At `decay_rate = 1` and staleness scale 1 the float operations per
//! element are TensorFlow's `ApplyFtrlV2` / `SparseApplyFtrlV2`
//! (`multiply_linear_by_lr=False`) in their order: the `sqrt` path at
//! `lr_power = -0.5`, Eigen's vectorized `pow` (see `tf_pow`) for elements
//! TensorFlow evaluates in SIMD packets and the C library's `pow` for the
//! others, and the scalar formula TensorFlow's sparse kernel uses for
//! variables with one element per row.

use std::ops::Range;

use super::KernelError;
use super::discount::{Discount, DiscountArgs, require};
use super::dynamic_table::DynamicTable;
use super::rows::{self, Lanes, UpdateRule};
use super::simd::multiversion;
use super::sparse_rows::RowIndex;
use super::tf_pow::{PowLane, is_non_integer, non_integer_pow, packet_pow};

/// The hyper-parameters of one apply, as the op receives them: every float
/// widened to `f64` (exact for `f32` values).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FtrlSwapArgs {
    /// Step size, `> 0`.
    pub learning_rate: f64,
    /// L1 strength, `>= 0`.
    pub l1: f64,
    /// L2 strength, `>= 0`.
    pub l2: f64,
    /// L2 shrinkage strength (on the gradient), `>= 0`.
    pub l2_shrinkage: f64,
    /// `p <= 0`: the learning rate decays as `n ** p`.
    pub lr_power: f64,
    /// Keras' `beta`, `>= 0`, folded in as `l2 += beta / (2 lr)`.
    pub beta: f64,
    /// Staleness scale `s` in `(0, 1]` of the gradient's contribution to `z`.
    pub staleness_scale: f64,
    /// The period discount.
    pub discount: DiscountArgs,
}

/// Checked hyper-parameters, made once per op call and shared by every
/// block of rows it applies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FtrlSwapPlan {
    /// As in [`FtrlSwapArgs`], checked.
    pub learning_rate: f64,
    /// L1 strength.
    pub l1: f64,
    /// L2 strength.
    pub l2: f64,
    /// L2 shrinkage strength.
    pub l2_shrinkage: f64,
    /// Learning rate power.
    pub lr_power: f64,
    /// Keras' `beta`.
    pub beta: f64,
    /// Staleness scale.
    pub staleness_scale: f64,
    /// The period discount.
    pub discount: Discount,
}

fn non_negative(name: &'static str, value: f64) -> Result<(), KernelError> {
    require(
        name,
        value,
        value.is_finite() && value >= 0.0,
        "finite and >= 0",
    )
}

impl FtrlSwapPlan {
    /// Checks every hyper-parameter against its domain (TensorFlow's FTRL
    /// ops accept the same, plus `beta` and the SWAP arguments).
    pub fn new(args: &FtrlSwapArgs) -> Result<Self, KernelError> {
        let lr = args.learning_rate;
        require(
            "learning_rate",
            lr,
            lr.is_finite() && lr > 0.0,
            "finite and > 0",
        )?;
        non_negative("l1", args.l1)?;
        non_negative("l2", args.l2)?;
        non_negative("l2_shrinkage", args.l2_shrinkage)?;
        let p = args.lr_power;
        require("lr_power", p, p.is_finite() && p <= 0.0, "finite and <= 0")?;
        non_negative("beta", args.beta)?;
        let s = args.staleness_scale;
        require("staleness_scale", s, s > 0.0 && s <= 1.0, "in (0, 1]")?;
        Ok(Self {
            learning_rate: lr,
            l1: args.l1,
            l2: args.l2,
            l2_shrinkage: args.l2_shrinkage,
            lr_power: p,
            beta: args.beta,
            staleness_scale: s,
            discount: Discount::new(&args.discount)?,
        })
    }
}

/// The rule in the kernel's element type.
struct FtrlSwap<T> {
    learning_rate: T,
    l1: T,
    /// `2 * (l2 + beta / (2 lr))`.
    two_l2: T,
    /// `2 * l2_shrinkage`.
    two_l2_shrinkage: T,
    /// `-lr_power`.
    exponent: T,
    /// `lr_power == -0.5` in `T`: TensorFlow's `sqrt` path.
    sqrt_path: bool,
    /// `-lr_power` is not an integer: Eigen's `pow` takes one path for
    /// every element.
    non_integer_exponent: bool,
    staleness_scale: T,
    /// `rho` rounded to `T`, widened.
    decay_rate: f64,
    accumulator_floor: T,
    discount: Discount,
}

impl<T: PowLane> FtrlSwap<T> {
    fn new(plan: &FtrlSwapPlan) -> Self {
        let learning_rate = T::from_f64(plan.learning_rate);
        let two = T::from_f64(2.0);
        // In T, as tf_keras' and Keras 3's Ftrl fold it (exactly l2 at beta = 0).
        let l2 = T::from_f64(plan.l2) + T::from_f64(plan.beta) / (two * learning_rate);
        let lr_power = T::from_f64(plan.lr_power);
        Self {
            learning_rate,
            l1: T::from_f64(plan.l1),
            two_l2: two * l2,
            two_l2_shrinkage: two * T::from_f64(plan.l2_shrinkage),
            exponent: T::ZERO - lr_power,
            sqrt_path: lr_power == T::from_f64(-0.5),
            non_integer_exponent: is_non_integer(T::ZERO - lr_power),
            staleness_scale: T::from_f64(plan.staleness_scale),
            decay_rate: T::from_f64(plan.discount.decay_rate).to_f64(),
            accumulator_floor: T::from_f64(plan.discount.accumulator_floor),
            discount: plan.discount,
        }
    }

    /// `n ** -lr_power` as TensorFlow's kernel computes it at this lane.
    #[inline(always)]
    fn power_of(&self, n: T, in_packet: bool) -> T {
        if self.sqrt_path {
            n.sqrt()
        } else if in_packet {
            packet_pow(n, self.exponent)
        } else {
            n.libm_pow(self.exponent)
        }
    }

    /// `(clip(z, -l1, l1) - z) / d`, TensorFlow's sparse form (its dense
    /// form selects 0 where `|z| <= l1`: the same values).
    #[inline(always)]
    fn weight(&self, z: T, d: T) -> T {
        let l1 = self.l1;
        let upper = if z < l1 { z } else { l1 };
        let minus_l1 = T::ZERO - l1;
        let clipped = if upper > minus_l1 { upper } else { minus_l1 };
        (clipped - z) / d
    }
}

impl<T: PowLane> UpdateRule<T, 2> for FtrlSwap<T> {
    const SLOT_NAMES: [&'static str; 2] = ["accum", "linear"];

    fn discount(&self) -> &Discount {
        &self.discount
    }

    #[inline(always)]
    fn catch_up(&self, var: &[T], [n, z]: [&mut [T]; 2], power: &mut i64, lanes: Lanes) {
        let missed = self.discount.catch_up(power);
        if self.decay_rate == 1.0 {
            return; // rho = 1: nothing is rewritten
        }
        let factor = T::from_f64(self.decay_rate.powf(missed as f64));
        let z_factor = T::from_f64(self.decay_rate.powf(self.exponent.to_f64() * missed as f64));
        let floor = self.accumulator_floor;
        for (k, ((&w, n), z)) in var.iter().zip(n.iter_mut()).zip(z.iter_mut()).enumerate() {
            let decayed = *n * factor;
            *n = if decayed < floor { floor } else { decayed };
            if w == T::ZERO {
                // |z| <= l1 stays so: the weight stays exactly 0.
                *z = *z * z_factor;
            } else {
                // The z that gives back w with the discounted n.
                let d = self.power_of(*n, !lanes.scalar_rows && lanes.in_packet(k))
                    / self.learning_rate
                    + self.two_l2;
                let signed_l1 = if w > T::ZERO {
                    self.l1
                } else {
                    T::ZERO - self.l1
                };
                *z = (T::ZERO - w) * d - signed_l1;
            }
        }
    }

    #[inline(always)]
    fn update(&self, var: &mut [T], [n, z]: [&mut [T]; 2], grad: &[T], lanes: Lanes) {
        if lanes.scalar_rows {
            let (lr, s) = (self.learning_rate, self.staleness_scale);
            let elements = var.iter_mut().zip(n.iter_mut()).zip(z.iter_mut()).zip(grad);
            // TensorFlow's sparse kernel at one element per row: `pow` for
            // sigma even at lr_power = -0.5, and `(z + g) - sigma * w`.
            for (((w, n), z), &g) in elements {
                let g_s = g + self.two_l2_shrinkage * *w;
                let n_new = *n + g * g;
                let sigma = (n_new.libm_pow(self.exponent) - n.libm_pow(self.exponent)) / lr;
                let z_new = (*z + s * g_s) - sigma * *w;
                let d = self.power_of(n_new, false) / lr + self.two_l2;
                *w = self.weight(z_new, d);
                *n = n_new;
                *z = z_new;
            }
            return;
        }
        // One loop per root, each free of per-element branches so that it
        // vectorizes: TensorFlow's packets are a prefix of the elements.
        if self.sqrt_path {
            return self.update_elements(var, n, z, grad, SqrtRoot);
        }
        let packets = lanes.packet_end.saturating_sub(lanes.first).min(var.len());
        let (var_packets, var_tail) = var.split_at_mut(packets);
        let (n_packets, n_tail) = n.split_at_mut(packets);
        let (z_packets, z_tail) = z.split_at_mut(packets);
        let (grad_packets, grad_tail) = grad.split_at(packets);
        let exponent = self.exponent;
        if self.non_integer_exponent {
            let root = NonIntegerPowRoot(exponent);
            self.update_elements(var_packets, n_packets, z_packets, grad_packets, root);
        } else {
            let root = PacketPowRoot(exponent);
            self.update_elements(var_packets, n_packets, z_packets, grad_packets, root);
        }
        self.update_elements(var_tail, n_tail, z_tail, grad_tail, LibmPowRoot(exponent));
    }
}

/// `n ** -lr_power` one way TensorFlow computes it. A trait rather than a
/// closure: closures are not inlined into the AVX copies of the kernel,
/// which would keep the loop from vectorizing.
trait Root<T> {
    fn root(&self, n: T) -> T;
}

struct SqrtRoot;
struct PacketPowRoot<T>(T);
struct NonIntegerPowRoot<T>(T);
struct LibmPowRoot<T>(T);

impl<T: PowLane> Root<T> for SqrtRoot {
    #[inline(always)]
    fn root(&self, n: T) -> T {
        n.sqrt()
    }
}

impl<T: PowLane> Root<T> for PacketPowRoot<T> {
    #[inline(always)]
    fn root(&self, n: T) -> T {
        packet_pow(n, self.0)
    }
}

impl<T: PowLane> Root<T> for NonIntegerPowRoot<T> {
    #[inline(always)]
    fn root(&self, n: T) -> T {
        non_integer_pow(n, self.0)
    }
}

impl<T: PowLane> Root<T> for LibmPowRoot<T> {
    #[inline(always)]
    fn root(&self, n: T) -> T {
        n.libm_pow(self.0)
    }
}

impl<T: PowLane> FtrlSwap<T> {
    /// TensorFlow's dense FTRL step on contiguous elements, `root(n)` being
    /// its `n ** -lr_power` at these elements.
    #[inline(always)]
    fn update_elements(
        &self,
        var: &mut [T],
        n: &mut [T],
        z: &mut [T],
        grad: &[T],
        root: impl Root<T>,
    ) {
        let (lr, s) = (self.learning_rate, self.staleness_scale);
        let elements = var.iter_mut().zip(n.iter_mut()).zip(z.iter_mut()).zip(grad);
        for (((w, n), z), &g) in elements {
            let g_s = g + self.two_l2_shrinkage * *w;
            let n_new = *n + g * g;
            let root_new = root.root(n_new);
            let root_old = root.root(*n);
            *z += s * g_s - (root_new - root_old) / lr * *w;
            let d = root_new / lr + self.two_l2;
            *w = self.weight(*z, d);
            *n = n_new;
        }
    }
}

/// [`apply_dense`] as the baseline x86-64 build runs it (the tests compare
/// it with the dispatched build: same bits).
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[inline(always)]
pub fn apply_dense_baseline<T: PowLane>(
    var: &mut [T],
    accum: &mut [T],
    linear: &mut [T],
    power: &mut [i64],
    grad: &[T],
    inner: usize,
    first_row: usize,
    total_rows: usize,
    plan: &FtrlSwapPlan,
) -> Result<(), KernelError> {
    let rule = FtrlSwap::<T>::new(plan);
    rows::apply_dense(
        var,
        [accum, linear],
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
pub fn apply_sparse_baseline<T: PowLane, I: RowIndex>(
    var: &mut [T],
    accum: &mut [T],
    linear: &mut [T],
    power: &mut [i64],
    first_row: usize,
    grad: &[T],
    indices: &[I],
    inner: usize,
    plan: &FtrlSwapPlan,
) -> Result<(), KernelError> {
    let rule = FtrlSwap::<T>::new(plan);
    rows::apply_sparse(
        var,
        [accum, linear],
        power,
        first_row,
        grad,
        indices,
        inner,
        &rule,
    )
}

multiversion! {
    /// Dense FTRL-SWAP of the rows `[first_row, first_row + power.len())`
    /// of a variable of `total_rows` rows of `inner` elements: `var`,
    /// `accum` (`n`), `linear` (`z`) and `grad` hold those rows.
    pub fn apply_dense<T: PowLane>(
        var: &mut [T],
        accum: &mut [T],
        linear: &mut [T],
        power: &mut [i64],
        grad: &[T],
        inner: usize,
        first_row: usize,
        total_rows: usize,
        plan: &FtrlSwapPlan,
    ) -> Result<(), KernelError> => apply_dense_baseline;
}

multiversion! {
    /// Sparse FTRL-SWAP of the gradient rows whose index falls in the block
    /// of rows `[first_row, first_row + power.len())` that `var`, `accum`,
    /// `linear` and `power` hold; other indices are skipped. `indices` must
    /// not repeat a row.
    pub fn apply_sparse<T: PowLane, I: RowIndex>(
        var: &mut [T],
        accum: &mut [T],
        linear: &mut [T],
        power: &mut [i64],
        first_row: usize,
        grad: &[T],
        indices: &[I],
        inner: usize,
        plan: &FtrlSwapPlan,
    ) -> Result<(), KernelError> => apply_sparse_baseline;
}

/// [`apply_table`] as the baseline x86-64 build runs it.
#[inline(always)]
pub fn apply_table_baseline<T: PowLane>(
    table: &DynamicTable<T>,
    stripes: Range<usize>,
    ids: &[i64],
    grad: &[T],
    step: i64,
    plan: &FtrlSwapPlan,
) -> Result<(), KernelError> {
    table.apply_rule(stripes, ids, grad, step, &FtrlSwap::<T>::new(plan))
}

multiversion! {
    /// FTRL-SWAP of the entries of `ids` (in order of position) in the
    /// stripes `stripes` of a dynamic table of two slots (`n`, `z`); see
    /// [`DynamicTable::apply_rule`].
    pub fn apply_table<T: PowLane>(
        table: &DynamicTable<T>,
        stripes: Range<usize>,
        ids: &[i64],
        grad: &[T],
        step: i64,
        plan: &FtrlSwapPlan,
    ) -> Result<(), KernelError> => apply_table_baseline;
}
