//! `x ** e` exactly as TensorFlow's CPU kernels compute it, so that FTRL at
//! `lr_power != -0.5` reproduces `ResourceApplyFtrlV2` bit for bit.
//!
//! TensorFlow evaluates `tensor.pow(e)` with Eigen: elements that fall in a
//! full SIMD packet (8 floats or 4 doubles: the pip wheel is built for AVX
//! without FMA) go through Eigen's own vectorized algorithm, the remaining
//! tail through the C library's `pow`. The two differ in the last bit for
//! about a quarter of float inputs (measured), so [`packet_pow`] reproduces
//! the vectorized algorithm lane by lane and [`Real::libm_pow`] is the C
//! library's. The algorithm (Eigen 3.4's `generic_pow`, MPL-2.0): split `x`
//! into mantissa and exponent, `log2` of the mantissa in double-word
//! arithmetic, `y * log2(x)` split into integer and fraction, `exp2` of the
//! fraction by the Cephes `exp` polynomial, scaled by the integer power of
//! two. Every step below is one IEEE operation of Eigen's, in its order;
//! a multiply-add is a multiply then an add (no FMA in that build).

use super::Real;

/// The per-type pieces of the algorithm.
pub trait PowLane: Real {
    /// Bits of the significand, without the hidden one.
    const MANTISSA_BITS: u32;
    /// `std::numeric_limits<T>::max_exponent`.
    const MAX_EXPONENT: i32;
    /// `std::numeric_limits<T>::digits`.
    const DIGITS: i32;
    /// The largest value below 0.5 (the rounding constant of `pround`).
    const BELOW_HALF: Self;
    /// `1 / sqrt(2)` in this type.
    const SQRT_HALF: Self;
    /// `ln(2)` in this type.
    const LN2: Self;
    /// `2 ** ((DIGITS + 1) / 2) + 1`, Veltkamp's splitting factor.
    const SPLITTER: Self;
    /// Machine epsilon.
    const EPSILON: Self;
    /// Smallest positive normal value.
    const MIN_POSITIVE: Self;
    /// The bit pattern, widened.
    fn bits(self) -> u64;
    /// The value of a bit pattern.
    fn from_bits_u64(bits: u64) -> Self;
    /// Rounds toward zero.
    fn trunc(self) -> Self;
    /// Rounds toward minus infinity.
    fn floor(self) -> Self;
    /// `log2(x)` of a mantissa in `[1/sqrt(2), sqrt(2)]` as a double word.
    fn accurate_log2(x: Self) -> (Self, Self);
    /// Eigen's vectorized `exp`.
    fn packet_exp(x: Self) -> Self;
    /// `a * 2**e` with `2**e` made from bits (Eigen's `pldexp_fast`).
    fn ldexp_fast(a: Self, e: Self) -> Self;
    /// `a * 2**e` in four exact factors (Eigen's `pldexp`).
    fn ldexp(a: Self, e: Self) -> Self;
    /// Converts a small integer.
    fn from_i32(value: i32) -> Self;
    /// Absolute value.
    #[inline(always)]
    fn abs(self) -> Self {
        Self::from_bits_u64(self.bits() & !Self::sign_mask())
    }
    /// `-self` (flips the sign bit, zeros and NaNs included).
    #[inline(always)]
    fn negate(self) -> Self {
        Self::from_bits_u64(self.bits() ^ Self::sign_mask())
    }
    /// The sign bit.
    #[inline(always)]
    fn sign_mask() -> u64 {
        1u64 << (Self::MANTISSA_BITS + Self::exponent_bits())
    }
    /// Bits of the exponent field.
    #[inline(always)]
    fn exponent_bits() -> u32 {
        (size_of::<Self>() as u32) * 8 - Self::MANTISSA_BITS - 1
    }
    /// The exponent bias (127, 1023).
    #[inline(always)]
    fn exponent_bias() -> u64 {
        (1u64 << (Self::exponent_bits() - 1)) - 1
    }
    /// Every bit set: a quiet NaN.
    #[inline(always)]
    fn all_ones() -> Self {
        Self::from_bits_u64(u64::MAX >> (64 - 8 * size_of::<Self>() as u32))
    }
}

/// Whether `x` is NaN.
#[inline(always)]
fn is_nan<T: Real>(x: T) -> bool {
    #[allow(clippy::eq_op, reason = "NaN is the one value unequal to itself")]
    let nan = x != x;
    nan
}

/// `min` / `max` as SSE's `minps` / `maxps` with finite operands.
#[inline(always)]
fn min<T: Real>(a: T, b: T) -> T {
    if a < b { a } else { b }
}

#[inline(always)]
fn max<T: Real>(a: T, b: T) -> T {
    if a > b { a } else { b }
}

/// `x + y = hi + lo` exactly when `|x| >= |y|`.
#[inline(always)]
fn fast_two_sum<T: Real>(x: T, y: T) -> (T, T) {
    let hi = x + y;
    let t = hi - x;
    (hi, y - t)
}

/// Veltkamp's split of `x` into two halves of its significand.
#[inline(always)]
fn split<T: PowLane>(x: T) -> (T, T) {
    let gamma = T::SPLITTER * x;
    let rho = x - gamma;
    let hi = rho + gamma;
    (hi, x - hi)
}

/// Dekker's exact product `x * y = hi + lo`.
#[inline(always)]
fn two_prod<T: PowLane>(x: T, y: T) -> (T, T) {
    let (x_hi, x_lo) = split(x);
    let (y_hi, y_lo) = split(y);
    let hi = x * y;
    let mut lo = x_hi * y_hi + hi.negate();
    lo = x_hi * y_lo + lo;
    lo = x_lo * y_hi + lo;
    lo = x_lo * y_lo + lo;
    (hi, lo)
}

/// Double word plus double word, `|x| >= |y|`.
#[inline(always)]
fn dw_add<T: Real>(x: (T, T), y: (T, T)) -> (T, T) {
    let (r_hi, r_lo) = fast_two_sum(x.0, y.0);
    let s = (y.1 + r_lo) + x.1;
    fast_two_sum(r_hi, s)
}

/// Number plus double word, `|x| >= |y|`.
#[inline(always)]
fn fp_add_dw<T: Real>(x: T, y: (T, T)) -> (T, T) {
    let (r_hi, r_lo) = fast_two_sum(x, y.0);
    fast_two_sum(r_hi, y.1 + r_lo)
}

/// Double word times number.
#[inline(always)]
fn dw_mul_fp<T: PowLane>(x: (T, T), y: T) -> (T, T) {
    let (c_hi, c_lo1) = two_prod(x.0, y);
    let c_lo2 = x.1 * y;
    let (t_hi, t_lo1) = fast_two_sum(c_hi, c_lo2);
    fast_two_sum(t_hi, t_lo1 + c_lo1)
}

/// Double word times double word.
#[inline(always)]
fn dw_mul<T: PowLane>(x: (T, T), y: (T, T)) -> (T, T) {
    dw_add(dw_mul_fp(x, y.0), dw_mul_fp(x, y.1))
}

/// Double word divided by number.
#[inline(always)]
fn dw_div_fp<T: PowLane>(x: (T, T), y: T) -> (T, T) {
    let t_hi = x.0 / y;
    let (pi_hi, pi_lo) = two_prod(t_hi, y);
    let delta = ((x.0 - pi_hi) - pi_lo) + x.1;
    fast_two_sum(t_hi, delta / y)
}

/// Eigen's `pround`: to nearest, ties away from zero.
#[inline(always)]
fn round<T: PowLane>(a: T) -> T {
    let below_half = T::from_bits_u64(T::BELOW_HALF.bits() | (a.bits() & T::sign_mask()));
    (below_half + a).trunc()
}

/// Eigen's `pfrexp`: `x = m * 2**e`, `|m|` in `[0.5, 1)`.
#[inline(always)]
fn frexp<T: PowLane>(a: T) -> (T, T) {
    let mantissa_bits = T::MANTISSA_BITS;
    let exponent_bits = T::exponent_bits();
    let denormal = a.abs() < T::MIN_POSITIVE;
    let scale =
        T::from_bits_u64((T::exponent_bias() + u64::from(mantissa_bits) + 1) << mantissa_bits);
    let normalized = if denormal { a * scale } else { a };
    let mut offset = T::from_i32(-((1i32 << (exponent_bits - 1)) - 2));
    if denormal {
        offset += T::from_i32(-(mantissa_bits as i32 + 1));
    }
    let biased = T::from_i32((normalized.abs().bits() >> mantissa_bits) as i32);
    let non_finite = T::from_i32((1i32 << exponent_bits) - 1);
    if a == T::ZERO || biased == non_finite {
        return (a, T::ZERO);
    }
    let exponent_mask = ((1u64 << exponent_bits) - 1) << mantissa_bits;
    let half = T::from_f64(0.5);
    let m = T::from_bits_u64((normalized.bits() & !exponent_mask) | half.bits());
    (m, biased + offset)
}

/// Eigen's `generic_exp2`.
#[inline(always)]
fn exp2<T: PowLane>(x: T) -> T {
    let max_cap = T::from_i32(T::MAX_EXPONENT + 1);
    let min_cap = T::from_i32(-(T::MAX_EXPONENT + T::DIGITS - 1));
    let x = max(min(x, max_cap), min_cap);
    let (p_hi, p_lo) = two_prod(T::LN2, x);
    T::packet_exp(p_hi) * (T::from_f64(1.0) + p_lo)
}

/// Eigen's `generic_pow_impl`: `x ** y` for `x > 0`.
#[inline(always)]
fn pow_positive<T: PowLane>(x: T, y: T) -> T {
    let (mut m, mut e) = frexp(x);
    if m < T::SQRT_HALF {
        m = T::from_f64(2.0) * m;
        e -= T::from_f64(1.0);
    }
    let rx = T::accurate_log2(m);
    let f1 = two_prod(e, y);
    let f2 = dw_mul_fp(rx, y);
    let (f_hi, f_lo) = dw_add(f1, f2);
    let n_z = round(f_hi);
    let r_z = (f_hi - n_z) + f_lo;
    let n_r = round(r_z);
    let r_z = r_z - n_r;
    let n_z = n_z + n_r;
    let e_r = exp2(r_z);
    if T::from_i32(T::MAX_EXPONENT - 2) < n_z.abs() {
        T::ldexp(e_r, n_z)
    } else {
        T::ldexp_fast(e_r, n_z)
    }
}

/// Eigen's `generic_pow` with its special cases (cppreference's `pow`).
fn pow_general<T: PowLane>(x: T, y: T) -> T {
    let zero = T::ZERO;
    let one = T::from_f64(1.0);
    let inf = T::from_f64(f64::INFINITY);
    let nan = T::from_f64(f64::NAN);
    let x_abs = x.abs();
    let mut pow = pow_positive(x_abs, y);
    let y_abs = y.abs();
    let y_is_inf = y_abs == inf;
    let y_is_int = y.floor() == y && !y_is_inf;
    let half_y = y * T::from_f64(0.5);
    let y_is_odd_int = y_is_int && round(half_y) != half_y;
    let huge = (T::from_i32(T::MAX_EXPONENT) * T::LN2) / T::EPSILON;
    if x < zero && !y_is_int {
        pow = nan;
    }
    if x == zero {
        pow = if y < zero { inf } else { zero };
    }
    if x.bits() & T::sign_mask() != 0 && y_is_odd_int {
        pow = pow.negate();
    }
    if huge <= y_abs {
        let mut value = if (y < zero && x == zero) || ((y < zero) ^ (one < x_abs)) {
            inf
        } else {
            zero
        };
        if x == T::from_f64(-1.0) {
            value = one;
        }
        pow = value;
    }
    if x_abs == inf {
        let positive = if y < zero { zero } else { inf };
        pow = if x < zero && y_is_odd_int {
            positive.negate()
        } else {
            positive
        };
    }
    if is_nan(x) || is_nan(y) {
        pow = nan;
    }
    if y == one {
        x
    } else if x == one || y == zero {
        one
    } else {
        pow
    }
}

/// Eigen's repeated squaring for small integer exponents.
fn int_pow<T: PowLane>(x: T, exponent: T) -> T {
    let one = T::from_f64(1.0);
    if exponent == T::ZERO {
        return one;
    }
    let mut result = if exponent < T::ZERO { one / x } else { x };
    let mut y = one;
    let mut m = exponent.abs().to_f64() as u64;
    while m > 1 {
        if m % 2 == 1 {
            y = y * result;
        }
        result = result * result;
        m /= 2;
    }
    y * result
}

/// `x ** exponent` as a full packet of TensorFlow's `tensor.pow(exponent)`
/// computes it (Eigen's `unary_pow_impl`).
#[inline]
pub fn packet_pow<T: PowLane>(x: T, exponent: T) -> T {
    if is_non_integer(exponent) {
        return non_integer_pow(x, exponent);
    }
    if exponent <= T::from_f64(7.0) && exponent >= T::from_f64(-3.0) {
        return int_pow(x, exponent);
    }
    pow_general(x, exponent)
}

/// Whether [`packet_pow`] takes its non-integer path at `exponent`, the
/// one [`non_integer_pow`] computes.
pub fn is_non_integer<T: PowLane>(exponent: T) -> bool {
    let finite = exponent.abs() < T::from_f64(f64::INFINITY);
    !(finite && round(exponent) == exponent)
}

/// [`packet_pow`] for an exponent that [`is_non_integer`], free of branches
/// a vectorizing compiler cannot turn into selects: a loop over elements
/// calling it runs as SIMD.
#[inline(always)]
pub fn non_integer_pow<T: PowLane>(x: T, exponent: T) -> T {
    non_integer_special_cases(x, pow_positive(x, exponent), exponent)
}

/// Eigen's `handle_nonint_nonint_errors` for a non-integer exponent.
#[inline(always)]
fn non_integer_special_cases<T: PowLane>(x: T, pow: T, exponent: T) -> T {
    let zero = T::ZERO;
    let one = T::from_f64(1.0);
    let inf = T::from_f64(f64::INFINITY);
    let exponent_not_finite = is_nan(exponent) || exponent.abs() == inf;
    let exponent_negative = exponent < zero;
    let exponent_positive = exponent > zero;
    let exponent_inf = exponent_not_finite && (exponent_negative || exponent_positive);
    let exponent_nan = exponent_not_finite && !(exponent_negative || exponent_positive);
    let x_le_zero = x <= zero;
    let x_ge_zero = zero <= x;
    let x_zero = x_le_zero && x_ge_zero;
    let abs_x = x.abs();
    let abs_le_one = abs_x <= one;
    let abs_ge_one = one <= abs_x;
    let abs_inf = abs_x == inf;
    let abs_one = abs_le_one && abs_ge_one;
    let mut result = pow;
    if x_le_zero {
        result = T::all_ones();
    }
    if x_zero || (abs_le_one && exponent_inf) {
        result = if exponent_negative { inf } else { zero };
    }
    if abs_inf || (abs_ge_one && exponent_inf) {
        result = if exponent_positive { inf } else { zero };
    }
    if exponent_nan {
        result = T::all_ones();
    }
    if abs_one && (exponent_inf || x_ge_zero) {
        result = one;
    }
    result
}

impl PowLane for f32 {
    const MANTISSA_BITS: u32 = 23;
    const MAX_EXPONENT: i32 = 128;
    const DIGITS: i32 = 24;
    const BELOW_HALF: Self = f32::from_bits(0x3EFF_FFFF);
    const SQRT_HALF: Self = std::f64::consts::FRAC_1_SQRT_2 as f32;
    const LN2: Self = std::f64::consts::LN_2 as f32;
    const SPLITTER: Self = 4097.0;
    const EPSILON: Self = f32::EPSILON;
    const MIN_POSITIVE: Self = f32::MIN_POSITIVE;

    #[inline(always)]
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
    #[inline(always)]
    fn from_bits_u64(bits: u64) -> Self {
        f32::from_bits(bits as u32)
    }
    #[inline(always)]
    fn trunc(self) -> Self {
        f32::trunc(self)
    }
    #[inline(always)]
    fn floor(self) -> Self {
        f32::floor(self)
    }
    #[inline(always)]
    fn from_i32(value: i32) -> Self {
        value as f32
    }

    /// Eigen's `accurate_log2<float>`: a degree-10 minimax polynomial whose
    /// last two Horner steps run in double-word arithmetic.
    #[inline(always)]
    fn accurate_log2(z: Self) -> (Self, Self) {
        const C0: f64 = 1.442_695_041_742_110_3;
        const C1: f64 = -0.721_347_515_882_686_6;
        const C: [f32; 9] = [
            0.097_010_83,
            -0.168_964_86,
            0.172_008_37,
            -0.178_922_73,
            0.205_053_45,
            -0.240_466_77,
            0.288_575_53,
            -0.360_674_14,
            0.480_897_9,
        ];
        let c0 = (C0 as f32, (C0 - f64::from(C0 as f32)) as f32);
        let c1 = (C1 as f32, (C1 - f64::from(C1 as f32)) as f32);
        let x = z - 1.0;
        let mut p = C[0];
        for &c in &C[1..] {
            p = p * x + c;
        }
        let p = two_prod(x, p);
        let p = dw_add(c1, p);
        let p = dw_mul_fp(p, x);
        let p = dw_add(c0, p);
        dw_mul_fp(p, x)
    }

    /// Eigen's `pexp_float` (Cephes' polynomial of degree 6).
    #[inline(always)]
    fn packet_exp(input: Self) -> Self {
        let x = min(input, 88.723);
        let m = (x * std::f32::consts::LOG2_E + 0.5).floor();
        let mut r = m * -0.693_359_4 + x;
        r += m * 0.000_212_194_44;
        let r2 = r * r;
        let mut p_even = r2 * 0.001_374_496_4 + 0.041_669_652;
        let p_odd = r2 * 0.008_368_945 + 0.166_665_18;
        p_even = r2 * p_even + 0.499_999_88;
        let p_low = r + 1.0;
        let mut y = r * p_odd + p_even;
        y = r2 * y + p_low;
        if x.abs() <= 87.0 {
            return max(Self::ldexp_fast(y, m), input);
        }
        if input < -104.0 {
            0.0
        } else {
            max(Self::ldexp(y, m), input)
        }
    }

    #[inline(always)]
    fn ldexp_fast(a: Self, e: Self) -> Self {
        let biased = min(max(e + 127.0, 0.0), 255.0) as i32;
        a * f32::from_bits((biased as u32) << 23)
    }

    #[inline(always)]
    fn ldexp(a: Self, e: Self) -> Self {
        let e = min(max(e, -278.0), 278.0) as i32;
        let b = e >> 2;
        let c = f32::from_bits(((b + 127) as u32) << 23);
        let out = ((a * c) * c) * c;
        let b = e - 3 * b;
        out * f32::from_bits(((b + 127) as u32) << 23)
    }
}

impl PowLane for f64 {
    const MANTISSA_BITS: u32 = 52;
    const MAX_EXPONENT: i32 = 1024;
    const DIGITS: i32 = 53;
    const BELOW_HALF: Self = f64::from_bits(0x3FDF_FFFF_FFFF_FFFF);
    const SQRT_HALF: Self = std::f64::consts::FRAC_1_SQRT_2;
    const LN2: Self = std::f64::consts::LN_2;
    const SPLITTER: Self = 134_217_729.0;
    const EPSILON: Self = f64::EPSILON;
    const MIN_POSITIVE: Self = f64::MIN_POSITIVE;

    #[inline(always)]
    fn bits(self) -> u64 {
        self.to_bits()
    }
    #[inline(always)]
    fn from_bits_u64(bits: u64) -> Self {
        f64::from_bits(bits)
    }
    #[inline(always)]
    fn trunc(self) -> Self {
        f64::trunc(self)
    }
    #[inline(always)]
    fn floor(self) -> Self {
        f64::floor(self)
    }
    #[inline(always)]
    fn from_i32(value: i32) -> Self {
        f64::from(value)
    }

    /// Eigen's `accurate_log2<double>`: `r = c (x - 1) / (x + 1)` and an
    /// odd polynomial in `r`, its low-order terms in double words.
    #[inline(always)]
    fn accurate_log2(x: Self) -> (Self, Self) {
        let two_log2e = (2.885_390_081_777_926_8, 4.076_600_168_545_496_7e-17);
        let t = dw_mul_fp(two_log2e, x - 1.0);
        let r = dw_div_fp(t, x + 1.0);
        let r2 = dw_mul(r, r);
        let r4 = dw_mul(r2, r2);
        let mut q_even = 2.870_742_554_680_006e-9 * r4.0 + 2.310_320_945_400_146_6e-7;
        let mut q_odd = 2.389_579_809_018_840_8e-8 * r4.0 + 2.272_798_573_985_372_8e-6;
        q_even = q_even * r4.0 + 2.312_710_232_786_256_4e-5;
        q_odd = q_odd * r4.0 + 2.475_567_384_445_355e-4;
        q_even = q_even * r4.0 + 2.885_438_732_289_001_7e-3;
        let q = q_odd * r2.0 + q_even;
        let p = dw_mul_fp(r2, q);
        let p1 = dw_add((0.040_037_751_159_850_116, -4.777_265_822_514_254e-19), p);
        let p2 = dw_mul(r2, p1);
        let p3 = fp_add_dw(1.0, p2);
        dw_mul(p3, r)
    }

    /// Eigen's `pexp_double` (Cephes' rational approximation).
    #[inline(always)]
    fn packet_exp(input: Self) -> Self {
        let x = min(input, 709.784);
        let fx = (std::f64::consts::LOG2_E * x + 0.5).floor();
        let tmp = fx * 0.693_145_751_953_125;
        let z = fx * 1.428_606_820_309_417_2e-6;
        let x = (x - tmp) - z;
        let x2 = x * x;
        let mut px = 1.261_771_930_748_105_8e-4;
        px = px * x2 + 3.029_944_077_074_419_5e-2;
        // Cephes' 9.99999999999999999910e-1 is 1.0 in double.
        px = px * x2 + 1.0;
        px *= x;
        let mut qx = 3.001_985_051_386_644_6e-6;
        qx = qx * x2 + 2.524_483_403_496_841e-3;
        qx = qx * x2 + 2.272_655_482_081_550_3e-1;
        qx = qx * x2 + 2.0;
        let y = px / (qx - px);
        let y = 2.0 * y + 1.0;
        if input.abs() <= 708.0 {
            return max(Self::ldexp_fast(y, fx), input);
        }
        if input < -745.519 {
            0.0
        } else {
            max(Self::ldexp(y, fx), input)
        }
    }

    #[inline(always)]
    fn ldexp_fast(a: Self, e: Self) -> Self {
        let e = min(max(e, -1023.0), 1024.0).round_ties_even() as i64;
        a * f64::from_bits(((e + 1023) as u64) << 52)
    }

    #[inline(always)]
    fn ldexp(a: Self, e: Self) -> Self {
        let e = min(max(e, -2099.0), 2099.0).round_ties_even() as i64;
        let b = e >> 2;
        let c = f64::from_bits(((b + 1023) as u64) << 52);
        let out = ((a * c) * c) * c;
        let b = e - b - b - b;
        out * f64::from_bits(((b + 1023) as u64) << 52)
    }
}
