//! Run-time choice of the instruction set, the one pattern every kernel
//! uses, and the only `unsafe` code of `kernels`.
//!
//! [`multiversion!`] wraps a safe `#[inline(always)]` kernel body in a safe
//! function that runs a copy of the body compiled for AVX-512F or AVX2
//! when the CPU has it (checked at run time, cached by the standard
//! library), else the baseline x86-64 copy. Each lane of a vector is
//! another element and no copy fuses a multiply and an add (Rust never
//! contracts `a * b + c`), so every copy gives the baseline's bits.

/// Defines `$vis fn $name(...)` calling `$body(...)` in the widest
/// instruction set the CPU runs. Generic parameters take one bound each.
///
/// ```ignore
/// multiversion! {
///     /// Docs of the safe entry point.
///     pub fn apply<T: Real>(x: &mut [T], y: &[T]) -> Result<(), KernelError> => apply_body;
/// }
/// ```
macro_rules! multiversion {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident <$($gen:ident : $bound:path),* $(,)?>
            ($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty => $body:path;
    ) => {
        $(#[$attr])*
        #[allow(clippy::too_many_arguments, reason = "mirrors the kernel body")]
        $vis fn $name<$($gen: $bound),*>($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments, reason = "mirrors the kernel body")]
                fn avx512<$($gen: $bound),*>($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments, reason = "mirrors the kernel body")]
                fn avx2<$($gen: $bound),*>($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F, checked just above.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

pub(crate) use multiversion;
