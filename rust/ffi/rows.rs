//! The raw-buffer side of every SWAP apply export: the buffers of a
//! variable, its `N` slots and `power` checked (NULL, alignment, overlap,
//! row range) and borrowed for the rows one call owns.

use super::boundary::{Region, disjoint, elements, region, slice, slice_mut};
use super::status::FfiError;
use crate::kernels::sparse_rows::RowIndex;
use crate::kernels::{KernelError, Real};

/// The buffers of one dense or sparse apply call, as they cross the ABI.
pub(crate) struct Buffers<T, const N: usize> {
    pub var: *mut T,
    /// Each slot and its name in error messages.
    pub slots: [(&'static str, *mut T); N],
    pub power: *mut i64,
    pub grad: *const T,
    pub rows: usize,
    pub inner: usize,
    pub row_begin: usize,
    pub row_end: usize,
}

/// A sparse call's rows, gradient rows and indices, borrowed.
pub(crate) type SparseRows<'a, T, I, const N: usize> = (Rows<'a, T, N>, &'a [T], &'a [I]);

/// The rows one call owns, borrowed.
pub(crate) struct Rows<'a, T, const N: usize> {
    pub var: &'a mut [T],
    pub slots: [&'a mut [T]; N],
    pub power: &'a mut [i64],
}

fn check_row_range(begin: usize, end: usize, rows: usize) -> Result<(), FfiError> {
    if begin <= end && end <= rows {
        Ok(())
    } else {
        Err(KernelError::InvalidRowRange { begin, end, rows }.into())
    }
}

impl<T: Real, const N: usize> Buffers<T, N> {
    fn written(&self) -> Result<Vec<Region>, FfiError> {
        let table = elements(self.rows, self.inner)?;
        let mut written = vec![region("var", self.var.cast_const(), table)?];
        for &(name, slot) in &self.slots {
            written.push(region(name, slot.cast_const(), table)?);
        }
        written.push(region("power", self.power.cast_const(), self.rows)?);
        Ok(written)
    }

    /// # Safety
    /// The buffers hold `rows` rows (checked for NULL, alignment and overlap
    /// before); no concurrent call touches rows `[row_begin, row_end)`.
    unsafe fn borrow<'a>(&self) -> Rows<'a, T, N> {
        let (begin, end, inner) = (self.row_begin, self.row_end, self.inner);
        let (first, count) = (begin * inner, (end - begin) * inner);
        // SAFETY: forwarded from this function's contract; the slices are
        // of disjoint buffers (checked) within their lengths.
        unsafe {
            Rows {
                var: slice_mut(self.var, first, count),
                slots: self.slots.map(|(_, slot)| slice_mut(slot, first, count)),
                power: slice_mut(self.power, begin, end - begin),
            }
        }
    }
}

/// Checks a dense call's buffers and borrows its rows and gradient.
///
/// # Safety
/// `var`, every slot and `grad` hold `rows * inner` elements and `power`
/// `rows` (each may be NULL only when empty); calls running at the same
/// time on the same buffers use disjoint row ranges.
pub(crate) unsafe fn dense<'a, T: Real, const N: usize>(
    buffers: &Buffers<T, N>,
) -> Result<(Rows<'a, T, N>, &'a [T]), FfiError> {
    let table = elements(buffers.rows, buffers.inner)?;
    check_row_range(buffers.row_begin, buffers.row_end, buffers.rows)?;
    disjoint(&buffers.written()?, &[region("grad", buffers.grad, table)?])?;
    let (first, last) = (
        buffers.row_begin * buffers.inner,
        buffers.row_end * buffers.inner,
    );
    // SAFETY: forwarded from this function's contract, buffers checked.
    unsafe { Ok((buffers.borrow(), &slice(buffers.grad, table)[first..last])) }
}

/// Checks a sparse call's buffers (`grad` of `n * inner`, `indices` of `n`)
/// and borrows its rows, the gradient rows and the indices.
///
/// # Safety
/// As [`dense`], with `grad` holding `n * inner` elements and `indices` `n`.
pub(crate) unsafe fn sparse<'a, T: Real, I: RowIndex, const N: usize>(
    buffers: &Buffers<T, N>,
    indices: *const I,
    n: usize,
) -> Result<SparseRows<'a, T, I, N>, FfiError> {
    let gathered = elements(n, buffers.inner)?;
    check_row_range(buffers.row_begin, buffers.row_end, buffers.rows)?;
    disjoint(
        &buffers.written()?,
        &[
            region("grad", buffers.grad, gathered)?,
            region("indices", indices, n)?,
        ],
    )?;
    // SAFETY: forwarded from this function's contract, buffers checked.
    unsafe {
        Ok((
            buffers.borrow(),
            slice(buffers.grad, gathered),
            slice(indices, n),
        ))
    }
}
