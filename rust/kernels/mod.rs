//! Safe kernels on slices. Each validates its inputs before its first write
//! and returns a [`KernelError`] instead of panicking on bad input. The one
//! `unsafe` of this module is the instruction-set dispatch in `simd`.

pub mod adagrad_swap;
pub mod batch_norm;
pub mod discount;
pub mod dynamic_table;
mod error;
pub mod ftrl_swap;
pub mod partition;
mod real;
pub mod rows;
mod simd;
pub mod sparse_rows;
pub mod tf_pow;

pub use error::KernelError;
use error::expect_len;
pub use real::Real;
