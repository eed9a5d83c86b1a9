//! The row of an id that is not stored yet: a pure function of the table's
//! seed and the id (SPEC section 5), so any parameter server, shard count
//! or arrival order creates the same row.
//!
//! The generator is counter-based: element `k` of the row of `id` is drawn
//! from `mix(mix(seed ^ mix(id)) + k)`, `mix` being SplitMix64's finalizer
//! (a bijection of `u64` with full avalanche), so no state is kept and rows
//! can be made in any order, on any thread.

use super::super::discount::require;
use super::super::{KernelError, Real};

/// The distribution of a new row's elements (Keras' initializer names).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowInit {
    /// Every element 0.
    Zeros,
    /// Uniform in `[low, high)`.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound, `> low`.
        high: f64,
    },
    /// Normal with this mean and standard deviation.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation, `>= 0`.
        stddev: f64,
    },
    /// Normal, redrawn until within two standard deviations of the mean
    /// (Keras' `TruncatedNormal`).
    TruncatedNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation, `>= 0`.
        stddev: f64,
    },
}

impl RowInit {
    /// Decodes the ABI code (`0` zeros, `1` uniform, `2` normal, `3`
    /// truncated normal) and its two parameters, checked.
    pub fn from_code(code: u32, a: f64, b: f64) -> Result<Self, KernelError> {
        let finite = |name, value: f64| require(name, value, value.is_finite(), "finite");
        let init = match code {
            0 => Self::Zeros,
            1 => {
                finite("init_low", a)?;
                require(
                    "init_high",
                    b,
                    b.is_finite() && b > a,
                    "finite and > init_low",
                )?;
                Self::Uniform { low: a, high: b }
            }
            2 | 3 => {
                finite("init_mean", a)?;
                require(
                    "init_stddev",
                    b,
                    b.is_finite() && b >= 0.0,
                    "finite and >= 0",
                )?;
                if code == 2 {
                    Self::Normal { mean: a, stddev: b }
                } else {
                    Self::TruncatedNormal { mean: a, stddev: b }
                }
            }
            _ => {
                return Err(KernelError::UnknownMode { what: "init", code });
            }
        };
        Ok(init)
    }

    /// Writes the row of `id` in a table seeded with `seed`.
    pub fn fill<T: Real>(&self, seed: u64, id: i64, row: &mut [T]) {
        let key = mix(seed ^ mix(id as u64));
        let mut counter = 0u64;
        let mut uniform = || {
            let bits = mix(key.wrapping_add(counter));
            counter += 1;
            // 53 random bits: a double in [0, 1).
            (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
        };
        for value in row.iter_mut() {
            let x = match *self {
                Self::Zeros => 0.0,
                Self::Uniform { low, high } => low + (high - low) * uniform(),
                Self::Normal { mean, stddev } => mean + stddev * standard_normal(&mut uniform),
                Self::TruncatedNormal { mean, stddev } => loop {
                    let z = standard_normal(&mut uniform);
                    if z.abs() <= 2.0 {
                        break mean + stddev * z;
                    }
                },
            };
            *value = T::from_f64(x);
        }
    }
}

/// SplitMix64's finalizer.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Box-Muller on two uniforms (the cosine branch only, so each element
/// takes the next two draws whatever came before).
fn standard_normal(uniform: &mut impl FnMut() -> f64) -> f64 {
    let u1 = 1.0 - uniform(); // (0, 1]: ln is finite
    let u2 = uniform();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
