//! The dense and sparse apply loops every SWAP update rule shares: blocks
//! of rows brought up to the current period (lazily, by `power`) and then
//! updated, each row by exactly one call, so results never depend on how
//! rows are split across threads.

use super::discount::Discount;
use super::sparse_rows::RowIndex;
use super::{KernelError, Real, expect_len};

/// Where TensorFlow's own kernel would evaluate an element: in a full SIMD
/// packet or in the scalar tail (it matters only where TensorFlow's
/// vectorized math differs from the C library's, see `tf_pow`).
#[derive(Clone, Copy, Debug)]
pub struct Lanes {
    /// Index, in TensorFlow's evaluation, of the first element passed.
    pub first: usize,
    /// Elements with an index below this are in full packets.
    pub packet_end: usize,
    /// TensorFlow's sparse kernel of a variable with one element per row
    /// runs a scalar loop with its own formula.
    pub scalar_rows: bool,
}

impl Lanes {
    /// The lanes of a dense apply of `elements` elements, from element
    /// `first`.
    pub fn dense<T: Real>(first: usize, elements: usize) -> Self {
        Self {
            first,
            packet_end: elements - elements % T::TF_PACKET,
            scalar_rows: false,
        }
    }

    /// The lanes of one row of `inner` elements of a sparse apply.
    pub fn sparse_row<T: Real>(inner: usize) -> Self {
        Self {
            first: 0,
            packet_end: inner - inner % T::TF_PACKET,
            scalar_rows: inner == 1,
        }
    }

    /// Whether element `k` of the slice passed is in a full packet.
    #[inline(always)]
    pub fn in_packet(&self, k: usize) -> bool {
        self.first + k < self.packet_end
    }
}

/// An update rule with `N` slots shaped like the variable (Adagrad-SWAP's
/// accumulator; FTRL-SWAP's `n` and `z`) plus the per-row `power`.
pub trait UpdateRule<T: Real, const N: usize>: Sync {
    /// The slots' names, as the op's inputs and error messages give them.
    const SLOT_NAMES: [&'static str; N];

    /// The period schedule of this apply.
    fn discount(&self) -> &Discount;

    /// Brings one row that is behind the current period up to it: its
    /// slots (the weights may be read, never written) and its `power`.
    fn catch_up(&self, var: &[T], slots: [&mut [T]; N], power: &mut i64, lanes: Lanes);

    /// The update of contiguous elements whose rows are up to date.
    fn update(&self, var: &mut [T], slots: [&mut [T]; N], grad: &[T], lanes: Lanes);
}

/// Elements per block of the dense pass: small enough to stay in L1 between
/// the catch-up and the update, large enough to vectorize well.
const BLOCK_ELEMENTS: usize = 2048;

/// Rows a sparse apply loads ahead of updating them.
const TOUCH_AHEAD: usize = 16;
/// Elements per 64-byte cache line at four bytes each (an over-estimate
/// for f64 touches every other line, which the adjacent-line prefetcher
/// covers).
const LINE_ELEMENTS: usize = 16;

fn row_elements(rows: usize, inner: usize) -> Result<usize, KernelError> {
    rows.checked_mul(inner).ok_or(KernelError::LengthMismatch {
        what: "var",
        got: usize::MAX,
        expected: usize::MAX,
    })
}

fn check_slots<T: Real, R: UpdateRule<T, N>, const N: usize>(
    slots: &[&mut [T]; N],
    elements: usize,
) -> Result<(), KernelError> {
    for (slot, name) in slots.iter().zip(R::SLOT_NAMES) {
        expect_len(name, slot.len(), elements)?;
    }
    Ok(())
}

/// Dense apply to the block of rows `[first_row, first_row + power.len())`
/// of a variable of `total_rows` rows of `inner` elements: `var`, each slot
/// and `grad` hold that block, row-major.
///
/// One pass over memory: each block of rows is caught up (when a period has
/// passed) and updated while it is in cache.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[inline(always)]
pub fn apply_dense<T: Real, R: UpdateRule<T, N>, const N: usize>(
    var: &mut [T],
    mut slots: [&mut [T]; N],
    power: &mut [i64],
    grad: &[T],
    inner: usize,
    first_row: usize,
    total_rows: usize,
    rule: &R,
) -> Result<(), KernelError> {
    let rows = power.len();
    let elements = row_elements(rows, inner)?;
    expect_len("var", var.len(), elements)?;
    check_slots::<T, R, N>(&slots, elements)?;
    expect_len("grad", grad.len(), elements)?;
    if elements == 0 {
        return Ok(());
    }
    let lanes_of_all = Lanes::dense::<T>(first_row * inner, row_elements(total_rows, inner)?);
    let block_rows = (BLOCK_ELEMENTS / inner).max(1);
    let discount = rule.discount();
    let mut row = 0;
    while row < rows {
        let end = (row + block_rows).min(rows);
        let span = row * inner..end * inner;
        if discount.any_behind(&power[row..end]) {
            for (r, row_power) in (row..end).zip(&mut power[row..end]) {
                if discount.is_behind(*row_power) {
                    let cells = r * inner..(r + 1) * inner;
                    let row_slots = slots.each_mut().map(|s| &mut s[cells.clone()]);
                    let lanes = Lanes {
                        first: lanes_of_all.first + cells.start,
                        ..lanes_of_all
                    };
                    rule.catch_up(&var[cells.clone()], row_slots, row_power, lanes);
                }
            }
        }
        let lanes = Lanes {
            first: lanes_of_all.first + span.start,
            ..lanes_of_all
        };
        let block_slots = slots.each_mut().map(|s| &mut s[span.clone()]);
        rule.update(&mut var[span.clone()], block_slots, &grad[span], lanes);
        row = end;
    }
    Ok(())
}

/// Sparse apply of the gradient rows whose index falls in the block of rows
/// `[first_row, first_row + power.len())` that `var`, the slots and `power`
/// hold; other indices are skipped, so disjoint blocks can run in parallel.
///
/// `indices` must not repeat a row (sum duplicates first with
/// [`super::sparse_rows::sum_duplicates`]); `grad` holds
/// `indices.len() * inner` elements.
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
#[inline(always)]
pub fn apply_sparse<T: Real, I: RowIndex, R: UpdateRule<T, N>, const N: usize>(
    var: &mut [T],
    mut slots: [&mut [T]; N],
    power: &mut [i64],
    first_row: usize,
    grad: &[T],
    indices: &[I],
    inner: usize,
    rule: &R,
) -> Result<(), KernelError> {
    let block_rows = power.len();
    let elements = row_elements(block_rows, inner)?;
    expect_len("var", var.len(), elements)?;
    check_slots::<T, R, N>(&slots, elements)?;
    expect_len("grad", grad.len(), indices.len().saturating_mul(inner))?;
    if elements == 0 {
        return Ok(());
    }
    let lanes = Lanes::sparse_row::<T>(inner);
    let discount = rule.discount();
    let (lo, hi) = (first_row as i64, (first_row + block_rows) as i64);
    let local_row = |index: &I| {
        let row = index.to_i64();
        (lo..hi).contains(&row).then(|| (row - lo) as usize)
    };
    for (chunk_grad, chunk_indices) in grad
        .chunks(TOUCH_AHEAD * inner)
        .zip(indices.chunks(TOUCH_AHEAD))
    {
        // Random rows miss the cache. Loading every row of the chunk first
        // lets the CPU overlap those misses, which the long sqrt/div chains
        // of the update would otherwise serialize, one row at a time.
        let mut touched = 0i64;
        for index in chunk_indices {
            if let Some(r) = local_row(index) {
                touched ^= power[r];
                for line in (r * inner..(r + 1) * inner).step_by(LINE_ELEMENTS) {
                    let mut sum = var[line].to_f64();
                    for slot in &slots {
                        sum += slot[line].to_f64();
                    }
                    touched ^= sum as i64;
                }
            }
        }
        std::hint::black_box(touched);
        for (g, index) in chunk_grad.chunks_exact(inner).zip(chunk_indices) {
            let Some(r) = local_row(index) else {
                continue;
            };
            let cells = r * inner..(r + 1) * inner;
            if discount.is_behind(power[r]) {
                let row_slots = slots.each_mut().map(|s| &mut s[cells.clone()]);
                rule.catch_up(&var[cells.clone()], row_slots, &mut power[r], lanes);
            }
            let row_slots = slots.each_mut().map(|s| &mut s[cells.clone()]);
            rule.update(&mut var[cells], row_slots, g, lanes);
        }
    }
    Ok(())
}
