//! The panic boundary and raw-buffer checks every export goes through.

use std::ffi::c_char;

use super::status::{FfiError, TfSwapError, TfSwapStatus};

/// Runs `body`, turning its error or panic into a status code and, when
/// `error` is not NULL, a message.
///
/// # Safety
/// `error` is NULL or points to a writable [`TfSwapError`].
pub(crate) unsafe fn run(
    error: *mut TfSwapError,
    body: impl FnOnce() -> Result<(), FfiError>,
) -> u32 {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
        .unwrap_or(Err(FfiError::Panic));
    match outcome {
        Ok(()) => TfSwapStatus::Ok as u32,
        Err(failure) => {
            // SAFETY: forwarded from this function's contract.
            unsafe { write_message(error, &failure.message()) };
            failure.status() as u32
        }
    }
}

/// # Safety
/// `error` is NULL or points to a writable [`TfSwapError`].
unsafe fn write_message(error: *mut TfSwapError, text: &str) {
    // SAFETY: the caller guarantees `error` is NULL or valid for writes.
    let Some(error) = (unsafe { error.as_mut() }) else {
        return;
    };
    let bytes = text.as_bytes();
    let n = bytes.len().min(error.message.len() - 1);
    for (dst, &src) in error.message.iter_mut().zip(&bytes[..n]) {
        *dst = src as c_char;
    }
    error.message[n] = 0;
}

/// A buffer as it arrives: address, element count and element size.
#[derive(Clone, Copy)]
pub(crate) struct Region {
    what: &'static str,
    start: usize,
    bytes: usize,
}

/// Checks a raw buffer (NULL only when empty, aligned) and describes it.
pub(crate) fn region<T>(what: &'static str, ptr: *const T, len: usize) -> Result<Region, FfiError> {
    if len > 0 && ptr.is_null() {
        return Err(FfiError::NullPointer(what));
    }
    if len > 0 && !ptr.is_aligned() {
        return Err(FfiError::Misaligned(what));
    }
    let bytes = len.saturating_mul(size_of::<T>());
    Ok(Region {
        what,
        start: ptr as usize,
        bytes,
    })
}

/// Fails when a written buffer overlaps any other buffer of the call (two
/// live `&mut`, or `&mut` and `&`, to one byte is undefined behaviour).
pub(crate) fn disjoint(written: &[Region], read: &[Region]) -> Result<(), FfiError> {
    let overlap = |a: &Region, b: &Region| {
        a.bytes > 0 && b.bytes > 0 && a.start < b.start + b.bytes && b.start < a.start + a.bytes
    };
    for (i, w) in written.iter().enumerate() {
        for other in written[i + 1..].iter().chain(read) {
            if overlap(w, other) {
                return Err(FfiError::Aliased(w.what, other.what));
            }
        }
    }
    Ok(())
}

/// `count` elements from element `first` of a buffer checked by [`region`].
///
/// # Safety
/// The buffer holds at least `first + count` initialised elements, and
/// nothing else reads or writes that part while the slice lives.
pub(crate) unsafe fn slice_mut<'a, T>(base: *mut T, first: usize, count: usize) -> &'a mut [T] {
    if count == 0 {
        return &mut [];
    }
    // SAFETY: non-NULL and aligned (checked by `region`, count > 0), in
    // bounds and unaliased by this function's contract.
    unsafe { std::slice::from_raw_parts_mut(base.add(first), count) }
}

/// `count` elements from the start of a buffer checked by [`region`].
///
/// # Safety
/// The buffer holds at least `count` initialised elements that nothing
/// writes while the slice lives.
pub(crate) unsafe fn slice<'a, T>(base: *const T, count: usize) -> &'a [T] {
    if count == 0 {
        return &[];
    }
    // SAFETY: non-NULL and aligned (checked by `region`, count > 0), in
    // bounds and not written by this function's contract.
    unsafe { std::slice::from_raw_parts(base, count) }
}

/// Rows times row length, or an error when it overflows.
pub(crate) fn elements(rows: usize, inner: usize) -> Result<usize, FfiError> {
    rows.checked_mul(inner).ok_or(FfiError::Kernel(
        crate::kernels::KernelError::LengthMismatch {
            what: "rows * inner",
            got: usize::MAX,
            expected: isize::MAX as usize,
        },
    ))
}

/// Writes `value` to an output pointer of the call.
///
/// # Safety
/// `out` is NULL or writable.
pub(crate) unsafe fn write<V>(out: *mut V, what: &'static str, value: V) -> Result<(), FfiError> {
    // SAFETY: the caller guarantees `out` is NULL or writable.
    let out = unsafe { out.as_mut() }.ok_or(FfiError::NullPointer(what))?;
    *out = value;
    Ok(())
}
