use std::fmt;

/// Why a kernel refused its input. Nothing was written when one is returned.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelError {
    /// Buffer lengths disagree with the shape they should have.
    LengthMismatch {
        /// Which buffer.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The length the shape implies.
        expected: usize,
    },
    /// An index is negative or not below the number of rows.
    IndexOutOfRange {
        /// Position of the index in `indices`.
        position: usize,
        /// The index value.
        index: i64,
        /// Number of rows of the variable.
        rows: usize,
    },
    /// A hyper-parameter is NaN or outside its domain.
    InvalidHyperParameter {
        /// Its name, as in the Python API.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The allowed domain, in words.
        domain: &'static str,
    },
    /// An enum code (decay mode, epsilon placement) is not known.
    UnknownMode {
        /// The attribute.
        what: &'static str,
        /// The code received.
        code: u32,
    },
    /// A row range is not inside `[0, rows]`.
    InvalidRowRange {
        /// First row.
        begin: usize,
        /// One past the last row.
        end: usize,
        /// Number of rows.
        rows: usize,
    },
    /// A channel range is not inside `[0, channels]`.
    InvalidChannelRange {
        /// First channel.
        begin: usize,
        /// One past the last channel.
        end: usize,
        /// Number of channels.
        channels: usize,
    },
    /// A batch normalization input has no rows (`N == 0`): its batch
    /// statistics are undefined.
    EmptyBatch,
    /// An id appears twice where each must be distinct (an import).
    DuplicateId {
        /// The id.
        id: i64,
    },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LengthMismatch {
                what,
                got,
                expected,
            } => write!(f, "{what} has {got} elements, expected {expected}"),
            Self::IndexOutOfRange {
                position,
                index,
                rows,
            } => write!(f, "indices[{position}] = {index} is not in [0, {rows})"),
            Self::InvalidHyperParameter {
                name,
                value,
                domain,
            } => write!(f, "{name} must be {domain}, got {value}"),
            Self::UnknownMode { what, code } => write!(f, "unknown {what} code {code}"),
            Self::InvalidRowRange { begin, end, rows } => {
                write!(f, "row range [{begin}, {end}) is not inside [0, {rows}]")
            }
            Self::InvalidChannelRange {
                begin,
                end,
                channels,
            } => write!(
                f,
                "channel range [{begin}, {end}) is not inside [0, {channels}]"
            ),
            Self::EmptyBatch => write!(
                f,
                "x has no rows (N == 0): batch statistics of an empty batch are undefined"
            ),
            Self::DuplicateId { id } => write!(f, "id {id} appears more than once"),
        }
    }
}

impl std::error::Error for KernelError {}

/// `Ok` when a buffer has the length its shape implies.
pub(crate) fn expect_len(
    what: &'static str,
    got: usize,
    expected: usize,
) -> Result<(), KernelError> {
    if got == expected {
        Ok(())
    } else {
        Err(KernelError::LengthMismatch {
            what,
            got,
            expected,
        })
    }
}
