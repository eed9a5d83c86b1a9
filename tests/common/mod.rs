//! Helpers shared by the integration tests: a seeded PRNG (so every failure
//! reproduces from its printed seed without a `rand` dependency) and
//! element-type plumbing for comparing floats bit for bit.

#![allow(dead_code, reason = "each test crate uses a different subset")]

pub mod swap_reference;

use tf_swap::ffi::{
    TfSwapAdagradSwapHyper, TfSwapAdagradSwapPlan, TfSwapDiscount, TfSwapDiscountPlan, TfSwapError,
    tf_swap_adagrad_swap_prepare,
};
use tf_swap::kernels::Real;
use tf_swap::kernels::adagrad_swap::{AdagradSwapArgs, AdagradSwapPlan, EpsilonPlacement};
use tf_swap::kernels::discount::{DecayMode, DiscountArgs};
use tf_swap::kernels::sparse_rows::RowIndex;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough to
/// drive test-case generation.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`; `n` must be > 0. The modulo bias is irrelevant
    /// for test generation.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        self.next_u64() % n
    }

    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The kernel element types, plus what the tests need to compare them.
pub trait Float: Real + std::fmt::Debug {
    const NAME: &'static str;
    fn bits(self) -> u64;
    fn is_nan(self) -> bool;
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Float for f64 {
    const NAME: &'static str = "f64";
    fn bits(self) -> u64 {
        self.to_bits()
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// The index types, constructible from a row number or a bad value.
pub trait Index: RowIndex + std::fmt::Debug {
    const NAME: &'static str;
    fn from_i64(value: i64) -> Self;
}

impl Index for i32 {
    const NAME: &'static str = "i32";
    fn from_i64(value: i64) -> Self {
        i32::try_from(value).expect("index fits in i32")
    }
}

impl Index for i64 {
    const NAME: &'static str = "i64";
    fn from_i64(value: i64) -> Self {
        value
    }
}

/// Same bits, except that any NaN equals any NaN: IEEE 754 leaves the
/// payload of a propagated NaN open, and LLVM may commute `a * b`.
pub fn same_float<T: Float>(a: T, b: T) -> bool {
    a.bits() == b.bits() || (a.is_nan() && b.is_nan())
}

/// Panics at the first element whose bits differ, naming it.
pub fn assert_same_floats<T: Float>(what: &str, got: &[T], want: &[T], context: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length differs ({context})");
    if let Some(i) = (0..got.len()).find(|&i| !same_float(got[i], want[i])) {
        panic!(
            "{what}[{i}]: got {:?} ({:#x}), want {:?} ({:#x}) ({context})",
            got[i],
            got[i].bits(),
            want[i],
            want[i].bits()
        );
    }
}

/// Bit patterns, for "nothing was written" checks where even a NaN must
/// keep its payload.
pub fn bits_of<T: Float>(values: &[T]) -> Vec<u64> {
    values.iter().map(|v| v.bits()).collect()
}

/// Hyper-parameters that pass validation and decay on every apply
/// (`step / decay_period` is far ahead of any stored power), so a call that
/// wrongly went ahead would visibly change every buffer.
pub fn valid_hyper() -> TfSwapAdagradSwapHyper {
    TfSwapAdagradSwapHyper {
        learning_rate: 0.5,
        epsilon: 1e-7,
        epsilon_placement: 0,
        discount: TfSwapDiscount {
            decay_rate: 0.5,
            accumulator_floor: 0.01,
            step: 1000,
            decay_period: 10,
            decay_mode: 0,
        },
    }
}

/// One hyper-parameter out of its domain at a time, with the name the error
/// must give.
pub fn bad_hypers() -> Vec<(&'static str, TfSwapAdagradSwapHyper)> {
    let with = |edit: fn(&mut TfSwapAdagradSwapHyper)| {
        let mut hyper = valid_hyper();
        edit(&mut hyper);
        hyper
    };
    vec![
        ("learning_rate", with(|h| h.learning_rate = f64::NAN)),
        ("learning_rate", with(|h| h.learning_rate = -0.1)),
        ("learning_rate", with(|h| h.learning_rate = f64::INFINITY)),
        ("epsilon", with(|h| h.epsilon = f64::NAN)),
        ("epsilon", with(|h| h.epsilon = f64::INFINITY)),
        ("epsilon", with(|h| h.epsilon = -1e-7)),
        ("decay_rate", with(|h| h.discount.decay_rate = f64::NAN)),
        ("decay_rate", with(|h| h.discount.decay_rate = 0.0)),
        ("decay_rate", with(|h| h.discount.decay_rate = 1.5)),
        ("decay_rate", with(|h| h.discount.decay_rate = -0.1)),
        (
            "accumulator_floor",
            with(|h| h.discount.accumulator_floor = f64::NAN),
        ),
        (
            "accumulator_floor",
            with(|h| h.discount.accumulator_floor = -1.0),
        ),
        (
            "accumulator_floor",
            with(|h| h.discount.accumulator_floor = f64::INFINITY),
        ),
        ("decay_period", with(|h| h.discount.decay_period = 0)),
        ("decay_period", with(|h| h.discount.decay_period = -3)),
        ("step", with(|h| h.discount.step = 0)),
        ("step", with(|h| h.discount.step = -5)),
    ]
}

/// The ABI struct as the kernel's arguments; mode codes must be valid.
pub fn hyper_args(hyper: &TfSwapAdagradSwapHyper) -> AdagradSwapArgs {
    let d = &hyper.discount;
    AdagradSwapArgs {
        learning_rate: hyper.learning_rate,
        epsilon: hyper.epsilon,
        epsilon_placement: EpsilonPlacement::from_code(hyper.epsilon_placement)
            .expect("valid epsilon_placement"),
        discount: DiscountArgs {
            decay_rate: d.decay_rate,
            accumulator_floor: d.accumulator_floor,
            step: d.step,
            decay_period: d.decay_period,
            decay_mode: DecayMode::from_code(d.decay_mode).expect("valid decay_mode"),
        },
    }
}

/// The kernel's plan for valid hyper-parameters.
pub fn plan_of(hyper: &TfSwapAdagradSwapHyper) -> AdagradSwapPlan {
    AdagradSwapPlan::new(&hyper_args(hyper)).expect("valid hyper-parameters")
}

/// A plan no apply has seen (for "nothing written" checks).
pub fn empty_plan() -> TfSwapAdagradSwapPlan {
    TfSwapAdagradSwapPlan {
        learning_rate: 0.0,
        epsilon: 0.0,
        epsilon_placement: 0,
        discount: TfSwapDiscountPlan {
            decay_rate: 1.0,
            accumulator_floor: 0.0,
            periods: 0,
            decay_mode: 0,
        },
    }
}

/// `tf_swap_adagrad_swap_prepare` of `hyper`: its status, message and plan.
pub fn prepare(hyper: *const TfSwapAdagradSwapHyper) -> (u32, TfSwapError, TfSwapAdagradSwapPlan) {
    let mut plan = empty_plan();
    let mut error = TfSwapError { message: [0; 256] };
    // SAFETY: `hyper` is NULL or a live struct; `plan` and `error` are live.
    let status = unsafe { tf_swap_adagrad_swap_prepare(&mut plan, hyper, &mut error) };
    (status, error, plan)
}

/// The ABI plan of valid hyper-parameters (panics if they are refused).
pub fn abi_plan(hyper: &TfSwapAdagradSwapHyper) -> TfSwapAdagradSwapPlan {
    let (status, _, plan) = prepare(hyper);
    assert_eq!(status, 0, "valid hyper-parameters refused");
    plan
}
