//! The SWAP period schedule both update rules share (SPEC sections 1 and
//! 4): which rows are behind the current period, by how many periods, and
//! how their `power` advances.

use super::KernelError;

/// How a row that has missed periods catches up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecayMode {
    /// Discount by `decay_rate ** m` for the `m` periods missed (SPEC).
    Exact,
    /// Discount by `decay_rate` once per update (DeepRec's `AdagradDecayOptimizer`).
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

    /// The ABI code of this mode.
    pub fn code(self) -> u32 {
        match self {
            Self::Exact => 0,
            Self::OncePerUpdate => 1,
        }
    }
}

/// The discount inputs of one apply, as the op receives them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiscountArgs {
    /// Per-period discount `rho`, in `(0, 1]`.
    pub decay_rate: f64,
    /// Lower bound `b >= 0` of a discounted accumulator.
    pub accumulator_floor: f64,
    /// 1-based number of this update (`t >= 1`).
    pub step: i64,
    /// Period `T >= 1`, in steps.
    pub decay_period: i64,
    /// Catch-up rule.
    pub decay_mode: DecayMode,
}

/// A checked discount: the periods completed at this step and how rows
/// catch up to them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Discount {
    /// `step / decay_period`.
    pub periods: i64,
    /// `rho`, as given (each rule rounds it to its element type).
    pub decay_rate: f64,
    /// `b`, as given.
    pub accumulator_floor: f64,
    /// Catch-up rule.
    pub decay_mode: DecayMode,
}

/// `Ok` when `ok` holds and `value` is not NaN, else the error naming it.
pub(crate) fn require(
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

impl Discount {
    /// Checks the discount inputs against their domains.
    pub fn new(args: &DiscountArgs) -> Result<Self, KernelError> {
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
            periods: args.step / period,
            decay_rate: rho,
            accumulator_floor: floor,
            decay_mode: args.decay_mode,
        })
    }

    /// Whether a row with this `power` is behind the current period.
    #[inline(always)]
    pub fn is_behind(&self, power: i64) -> bool {
        power < self.periods
    }

    /// Whether any of these rows is behind the current period.
    #[inline(always)]
    pub fn any_behind(&self, powers: &[i64]) -> bool {
        powers
            .iter()
            .fold(false, |any, &power| any | (power < self.periods))
    }

    /// The periods a row behind the current one is discounted for now
    /// (`m` of the SPEC), and advances its `power`. A row whose `power` is
    /// ahead of this step (an older step arriving late) is never
    /// un-discounted: call only when [`Self::is_behind`].
    #[inline(always)]
    pub fn catch_up(&self, power: &mut i64) -> i64 {
        match self.decay_mode {
            DecayMode::Exact => {
                let missed = self.periods.saturating_sub(*power);
                *power = self.periods;
                missed
            }
            DecayMode::OncePerUpdate => {
                *power += 1;
                1
            }
        }
    }
}
