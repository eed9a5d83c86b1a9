use std::ops::{Add, AddAssign, Div, Mul, Sub, SubAssign};

/// The floating-point element types the kernels support (`f32`, `f64`).
pub trait Real:
    Copy
    + PartialOrd
    + Send
    + Sync
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + AddAssign
    + SubAssign
    + 'static
{
    /// Additive identity.
    const ZERO: Self;
    /// Elements in one SIMD packet of TensorFlow's CPU kernels (the pip
    /// wheel is built for AVX: 8 floats, 4 doubles); see `tf_pow`.
    const TF_PACKET: usize;
    /// Correctly rounded square root (IEEE 754), as Eigen's `sqrt`.
    fn sqrt(self) -> Self;
    /// The C library's `pow` (what `std::pow` calls in TensorFlow).
    fn libm_pow(self, exponent: Self) -> Self;

    /// Rounds an `f64` to this type (exact for values that came from it).
    fn from_f64(value: f64) -> Self;
    /// Widens (exactly) to `f64`.
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const TF_PACKET: usize = 8;
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn libm_pow(self, exponent: Self) -> Self {
        self.powf(exponent)
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const TF_PACKET: usize = 4;
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn libm_pow(self, exponent: Self) -> Self {
        self.powf(exponent)
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}
