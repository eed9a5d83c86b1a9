use std::ffi::{CStr, c_char};

use crate::kernels::KernelError;

/// Result codes of every `tf_swap_*` function. Codes are never renumbered
/// or reused; new ones are appended.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TfSwapStatus {
    /// Success.
    Ok = 0,
    /// A pointer was NULL while its length was not 0.
    NullPointer = 1,
    /// A pointer was not aligned for its element type.
    MisalignedPointer = 2,
    /// A buffer the call writes overlaps another buffer of the call.
    AliasedBuffers = 3,
    /// Buffer lengths do not match the shapes.
    LengthMismatch = 4,
    /// An index is negative or not below the number of rows.
    IndexOutOfRange = 5,
    /// A hyper-parameter is NaN or outside its domain.
    InvalidHyperParameter = 6,
    /// An enum code is not known.
    UnknownMode = 7,
    /// A row (or channel) range is outside the buffers.
    InvalidRowRange = 8,
    /// The kernel panicked (a bug in tf_swap); nothing is known to be written.
    Panic = 9,
    /// A batch normalization input has no rows (N == 0).
    EmptyBatch = 10,
    /// An id appears twice in a table import.
    DuplicateId = 11,
}

/// Capacity, including the terminating NUL, of [`TfSwapError::message`].
pub const TF_SWAP_ERROR_MESSAGE_CAPACITY: usize = 256;

/// Where a failing call describes what went wrong.
#[repr(C)]
pub struct TfSwapError {
    /// NUL-terminated UTF-8 message, truncated to fit.
    pub message: [c_char; 256],
}

/// Why a call failed: a kernel's refusal, or a problem with the raw buffers.
#[derive(Debug)]
pub(crate) enum FfiError {
    Kernel(KernelError),
    NullPointer(&'static str),
    Misaligned(&'static str),
    Aliased(&'static str, &'static str),
    Panic,
}

impl From<KernelError> for FfiError {
    fn from(error: KernelError) -> Self {
        Self::Kernel(error)
    }
}

impl FfiError {
    pub(crate) fn status(&self) -> TfSwapStatus {
        match self {
            Self::Kernel(KernelError::LengthMismatch { .. }) => TfSwapStatus::LengthMismatch,
            Self::Kernel(KernelError::IndexOutOfRange { .. }) => TfSwapStatus::IndexOutOfRange,
            Self::Kernel(KernelError::InvalidHyperParameter { .. }) => {
                TfSwapStatus::InvalidHyperParameter
            }
            Self::Kernel(KernelError::UnknownMode { .. }) => TfSwapStatus::UnknownMode,
            Self::Kernel(KernelError::InvalidRowRange { .. }) => TfSwapStatus::InvalidRowRange,
            // A channel range is the row range of the per-channel phase.
            Self::Kernel(KernelError::InvalidChannelRange { .. }) => TfSwapStatus::InvalidRowRange,
            Self::Kernel(KernelError::EmptyBatch) => TfSwapStatus::EmptyBatch,
            Self::Kernel(KernelError::DuplicateId { .. }) => TfSwapStatus::DuplicateId,
            Self::NullPointer(_) => TfSwapStatus::NullPointer,
            Self::Misaligned(_) => TfSwapStatus::MisalignedPointer,
            Self::Aliased(..) => TfSwapStatus::AliasedBuffers,
            Self::Panic => TfSwapStatus::Panic,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            Self::Kernel(error) => error.to_string(),
            Self::NullPointer(what) => format!("{what} is NULL but not empty"),
            Self::Misaligned(what) => format!("{what} is not aligned for its element type"),
            Self::Aliased(a, b) => format!("{a} and {b} overlap"),
            Self::Panic => "internal error: a tf_swap kernel panicked".to_owned(),
        }
    }
}

static STATUS_TEXT: [&CStr; 12] = [
    c"ok",
    c"null pointer",
    c"misaligned pointer",
    c"aliased buffers",
    c"length mismatch",
    c"index out of range",
    c"invalid hyper-parameter",
    c"unknown mode",
    c"invalid row range",
    c"panic",
    c"empty batch",
    c"duplicate id",
];

/// A static, NUL-terminated description of a status code.
///
/// # Safety
/// Always safe to call; the result lives for the whole program and must not
/// be freed. Unknown codes give "unknown status".
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_status_str(status: u32) -> *const c_char {
    STATUS_TEXT
        .get(status as usize)
        .copied()
        .unwrap_or(c"unknown status")
        .as_ptr()
}
