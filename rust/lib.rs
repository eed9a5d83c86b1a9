//! tf_swap: the numeric kernels behind the tf_swap TensorFlow ops.
//!
//! `kernels` is safe Rust on slices; `ffi` is the C ABI that the C++ op
//! kernels in `cpp_ops/` call (declared in `cpp_ops/tf_swap.h`). All `unsafe`
//! code lives in `ffi`.

pub mod ffi;
pub mod kernels;
