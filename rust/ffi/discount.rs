//! The period discount as it crosses the ABI, shared by both update rules.

use crate::kernels::KernelError;
use crate::kernels::discount::{DecayMode, Discount, DiscountArgs};

/// The period discount of one apply. Floats are widened to double, which
/// is exact for float32 values.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TfSwapDiscount {
    /// Per-period discount, in (0, 1].
    pub decay_rate: f64,
    /// Lower bound of a discounted accumulator, finite and >= 0.
    pub accumulator_floor: f64,
    /// 1-based number of this update, >= 1.
    pub step: i64,
    /// Steps per period, >= 1.
    pub decay_period: i64,
    /// 0: exact; 1: once per update.
    pub decay_mode: u32,
}

/// A checked discount (written by the `*_prepare` functions).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TfSwapDiscountPlan {
    /// Per-period discount.
    pub decay_rate: f64,
    /// Lower bound of a discounted accumulator.
    pub accumulator_floor: f64,
    /// Periods completed at this step (`step / decay_period`).
    pub periods: i64,
    /// 0: exact; 1: once per update.
    pub decay_mode: u32,
}

impl TfSwapDiscount {
    /// The kernel's arguments (decoding the mode; the rule checks the rest).
    pub(crate) fn args(&self) -> Result<DiscountArgs, KernelError> {
        Ok(DiscountArgs {
            decay_rate: self.decay_rate,
            accumulator_floor: self.accumulator_floor,
            step: self.step,
            decay_period: self.decay_period,
            decay_mode: DecayMode::from_code(self.decay_mode)?,
        })
    }
}

impl From<&Discount> for TfSwapDiscountPlan {
    fn from(discount: &Discount) -> Self {
        Self {
            decay_rate: discount.decay_rate,
            accumulator_floor: discount.accumulator_floor,
            periods: discount.periods,
            decay_mode: discount.decay_mode.code(),
        }
    }
}

impl TfSwapDiscountPlan {
    /// The plan's discount (decoding its mode is all that can fail).
    pub(crate) fn discount(&self) -> Result<Discount, KernelError> {
        Ok(Discount {
            periods: self.periods,
            decay_rate: self.decay_rate,
            accumulator_floor: self.accumulator_floor,
            decay_mode: DecayMode::from_code(self.decay_mode)?,
        })
    }
}
