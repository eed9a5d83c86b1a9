//! Safe kernels on slices. Each validates its inputs before its first write
//! and returns a [`KernelError`] instead of panicking on bad input.

pub mod adagrad_swap;
pub mod batch_norm;
mod error;
pub mod partition;
mod real;
pub mod sparse_rows;

pub use error::KernelError;
use error::expect_len;
pub use real::Real;
