//! A scalar Adagrad-SWAP written straight from SPEC section 1, for the
//! tests to compare the kernels and the C ABI with, bit for bit.

use super::{Float, assert_same_floats};
use tf_swap::kernels::adagrad_swap::{AdagradSwapArgs, AdagradSwapPlan, EpsilonPlacement};
use tf_swap::kernels::discount::{DecayMode, DiscountArgs};

/// Hyper-parameters in the element type, as a user of that dtype has them.
#[derive(Clone, Copy, Debug)]
pub struct Params<T> {
    pub lr: T,
    pub eps: T,
    pub rho: T,
    pub floor: T,
    pub period: i64,
    pub mode: DecayMode,
    pub placement: EpsilonPlacement,
}

impl<T: Float> Params<T> {
    pub fn hyper(&self, step: i64) -> AdagradSwapPlan {
        AdagradSwapPlan::new(&AdagradSwapArgs {
            learning_rate: self.lr.to_f64(),
            epsilon: self.eps.to_f64(),
            epsilon_placement: self.placement,
            discount: DiscountArgs {
                decay_rate: self.rho.to_f64(),
                accumulator_floor: self.floor.to_f64(),
                step,
                decay_period: self.period,
                decay_mode: self.mode,
            },
        })
        .unwrap_or_else(|e| panic!("valid hyper-parameters {self:?} rejected: {e}"))
    }
}

#[derive(Clone, Debug)]
pub struct State<T> {
    pub var: Vec<T>,
    pub acc: Vec<T>,
    pub power: Vec<i64>,
    pub inner: usize,
}

impl<T: Float> State<T> {
    pub fn rows(&self) -> usize {
        self.power.len()
    }

    pub fn assert_same(&self, want: &Self, context: &str) {
        assert_same_floats("var", &self.var, &want.var, context);
        assert_same_floats("acc", &self.acc, &want.acc, context);
        assert_eq!(self.power, want.power, "power ({context})");
    }
}

/// np.maximum: NaN in, NaN out (a NaN accumulator must not be "repaired"
/// into the floor, which would hide the divergence).
pub fn maximum<T: Float>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        if a.is_nan() { a } else { b }
    } else if a > b {
        a
    } else {
        b
    }
}

/// SPEC section 1, one row, spelled out.
pub fn reference_row<T: Float>(
    w: &mut [T],
    acc: &mut [T],
    power: &mut i64,
    g: &[T],
    t: i64,
    h: &Params<T>,
) {
    let p = t / h.period;
    if p > *power {
        let m = match h.mode {
            DecayMode::Exact => p - *power,
            DecayMode::OncePerUpdate => 1,
        };
        let factor = T::from_f64(h.rho.to_f64().powf(m as f64));
        for a in acc.iter_mut() {
            *a = maximum(*a * factor, h.floor);
        }
        *power = match h.mode {
            DecayMode::Exact => p,
            DecayMode::OncePerUpdate => *power + 1,
        };
    }
    for i in 0..g.len() {
        acc[i] += g[i] * g[i];
        let denominator = match h.placement {
            EpsilonPlacement::AfterSqrt => acc[i].sqrt() + h.eps,
            EpsilonPlacement::InsideSqrt => (acc[i] + h.eps).sqrt(),
        };
        w[i] -= g[i] * h.lr / denominator;
    }
}

pub fn row_mut<T>(v: &mut [T], r: usize, inner: usize) -> &mut [T] {
    &mut v[r * inner..(r + 1) * inner]
}

// An empty variable (0 rows or rows of 0 elements) is a no-op, `power`
// included (STYLE: "n == 0 is a no-op, as in TF's functors"); with no
// accumulator elements the power of a row has nothing to act on.

pub fn reference_dense<T: Float>(s: &mut State<T>, grad: &[T], t: i64, h: &Params<T>) {
    if s.var.is_empty() {
        return;
    }
    let inner = s.inner;
    for r in 0..s.rows() {
        let g = &grad[r * inner..(r + 1) * inner];
        let (w, a) = (row_mut(&mut s.var, r, inner), row_mut(&mut s.acc, r, inner));
        reference_row(w, a, &mut s.power[r], g, t, h);
    }
}

/// Duplicate rows are summed in order of position, then each distinct row
/// is updated once.
pub fn reference_sparse<T: Float>(
    s: &mut State<T>,
    grad: &[T],
    indices: &[i64],
    t: i64,
    h: &Params<T>,
) {
    if s.var.is_empty() {
        return;
    }
    let inner = s.inner;
    let mut distinct: Vec<(usize, Vec<T>)> = Vec::new();
    for (k, &index) in indices.iter().enumerate() {
        let g = &grad[k * inner..(k + 1) * inner];
        let row = usize::try_from(index).expect("generated indices are in range");
        match distinct.iter_mut().find(|(r, _)| *r == row) {
            Some((_, sum)) => sum.iter_mut().zip(g).for_each(|(s, &x)| *s += x),
            None => distinct.push((row, g.to_vec())),
        }
    }
    for (r, g) in distinct {
        let (w, a) = (row_mut(&mut s.var, r, inner), row_mut(&mut s.acc, r, inner));
        reference_row(w, a, &mut s.power[r], &g, t, h);
    }
}
