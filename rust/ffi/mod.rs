//! The C ABI declared in `cpp_ops/tf_swap.h`.
//!
//! Conventions (also in the README): TensorFlow owns every buffer; mutable
//! buffers come first, then read-only ones, then scalars. A pointer may be
//! NULL only when its length is 0. Buffers written by a call must not overlap
//! any other buffer of that call. Every function returns a [`TfSwapStatus`]
//! code as `u32` and, on failure, writes a message to `error` when it is not
//! NULL. A panic never crosses the boundary: it becomes
//! [`TfSwapStatus::Panic`]. Nothing is written when a call fails validation.

mod adagrad_swap;
mod batch_norm;
mod boundary;
mod discount;
mod dynamic_table;
mod ftrl_swap;
mod rows;
mod sparse_rows;
mod status;

pub use adagrad_swap::*;
pub use batch_norm::*;
pub use discount::*;
pub use dynamic_table::*;
pub use ftrl_swap::*;
pub use sparse_rows::*;
pub use status::*;
