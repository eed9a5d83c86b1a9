//! The C ABI as C++ calls it: NULL and empty buffers, overlapping and
//! misaligned pointers, bad ranges, codes and indices. Every refused call
//! must return its status, explain itself in a NUL-terminated message, and
//! leave every buffer untouched.

mod common;

use std::ffi::{CStr, c_char};
use std::ptr::{null, null_mut};

use common::{abi_plan, bad_hypers, bits_of, plan_of, prepare, valid_hyper};
use tf_swap::ffi::*;
use tf_swap::kernels::adagrad_swap::{apply_dense, apply_sparse};
use tf_swap::kernels::partition::{block_rows, partition_count};
use tf_swap::kernels::sparse_rows::sum_duplicates;

/// An error slot with no NUL in it, so an unterminated message shows.
fn error_slot() -> TfSwapError {
    TfSwapError {
        message: [0x7f as c_char; TF_SWAP_ERROR_MESSAGE_CAPACITY],
    }
}

fn message(error: &TfSwapError) -> String {
    let bytes: Vec<u8> = error.message.iter().map(|&c| c as u8).collect();
    CStr::from_bytes_until_nul(&bytes)
        .expect("message is NUL-terminated inside the buffer")
        .to_str()
        .expect("message is UTF-8")
        .to_owned()
}

fn expect_failure(status: u32, error: &TfSwapError, want: TfSwapStatus, needles: &[&str]) {
    let text = message(error);
    assert_eq!(status, want as u32, "status for {text:?}");
    for needle in needles {
        assert!(text.contains(needle), "{text:?} lacks {needle:?}");
    }
}

const ROWS: usize = 4;
const INNER: usize = 3;
const N: usize = ROWS * INNER;

/// A variable whose every buffer a successful apply with [`valid_hyper`]
/// changes, so "nothing written" checks cannot pass by accident.
#[derive(Clone)]
struct Table {
    var: Vec<f32>,
    acc: Vec<f32>,
    power: Vec<i64>,
    grad: Vec<f32>,
}

impl Table {
    fn new() -> Self {
        let ramp = |scale: f32, shift: f32| (0..N).map(|i| i as f32 * scale + shift).collect();
        Self {
            var: ramp(0.25, -1.0),
            acc: ramp(0.5, 0.5),
            power: vec![0, 1, 2, 3],
            grad: ramp(-0.125, 0.75),
        }
    }

    fn snapshot(&self) -> (Vec<u64>, Vec<u64>, Vec<i64>, Vec<u64>) {
        let (v, a, g) = (bits_of(&self.var), bits_of(&self.acc), bits_of(&self.grad));
        (v, a, self.power.clone(), g)
    }
}

/// Dense f32 apply over all `ROWS` x `INNER` elements of raw buffers, as
/// the op makes it: the hyper-parameters prepared once, then the apply
/// (not called when the preparation fails).
///
/// # Safety
/// As `tf_swap_adagrad_swap_dense_f32` with `rows = ROWS`, `inner = INNER`;
/// `hyper` is NULL or live.
unsafe fn dense_raw(
    var: *mut f32,
    accum: *mut f32,
    power: *mut i64,
    grad: *const f32,
    hyper: *const TfSwapAdagradSwapHyper,
    error: *mut TfSwapError,
) -> u32 {
    let mut plan = common::empty_plan();
    // SAFETY: forwarded from this function's contract.
    let status = unsafe { tf_swap_adagrad_swap_prepare(&mut plan, hyper, error) };
    if status != 0 {
        return status;
    }
    // SAFETY: forwarded from this function's contract.
    unsafe {
        tf_swap_adagrad_swap_dense_f32(var, accum, power, grad, ROWS, INNER, 0, ROWS, &plan, error)
    }
}

/// Dense f32 apply on `t`'s own buffers over rows `[begin, end)`, prepared
/// as the op prepares it.
fn dense(t: &mut Table, begin: usize, end: usize, hyper: &TfSwapAdagradSwapHyper) -> (u32, String) {
    let (status, error, plan) = prepare(hyper);
    if status != 0 {
        return (status, message(&error));
    }
    let mut error = error_slot();
    // SAFETY: every pointer comes from a live Vec of the length the call
    // derives from ROWS and INNER; the four Vecs are distinct.
    let status = unsafe {
        tf_swap_adagrad_swap_dense_f32(
            t.var.as_mut_ptr(),
            t.acc.as_mut_ptr(),
            t.power.as_mut_ptr(),
            t.grad.as_ptr(),
            ROWS,
            INNER,
            begin,
            end,
            &plan,
            &mut error,
        )
    };
    let text = if status == 0 {
        String::new()
    } else {
        message(&error)
    };
    (status, text)
}

#[test]
fn status_strings() {
    let expected = [
        (TfSwapStatus::Ok, "ok"),
        (TfSwapStatus::NullPointer, "null pointer"),
        (TfSwapStatus::MisalignedPointer, "misaligned pointer"),
        (TfSwapStatus::AliasedBuffers, "aliased buffers"),
        (TfSwapStatus::LengthMismatch, "length mismatch"),
        (TfSwapStatus::IndexOutOfRange, "index out of range"),
        (
            TfSwapStatus::InvalidHyperParameter,
            "invalid hyper-parameter",
        ),
        (TfSwapStatus::UnknownMode, "unknown mode"),
        (TfSwapStatus::InvalidRowRange, "invalid row range"),
        (TfSwapStatus::Panic, "panic"),
    ];
    let text = |code: u32| {
        // SAFETY: tf_swap_status_str returns a static NUL-terminated string
        // for every code.
        unsafe { CStr::from_ptr(tf_swap_status_str(code)) }
            .to_str()
            .expect("UTF-8")
    };
    for (status, want) in expected {
        assert_eq!(text(status as u32), want, "{status:?}");
    }
    // Codes are appended over time, so only far-away ones are unknown.
    for code in [999, u32::MAX] {
        assert_eq!(text(code), "unknown status", "code {code}");
    }
}

#[test]
fn empty_op_with_null_pointers_is_a_no_op() {
    let hyper = valid_hyper();
    let plan = abi_plan(&hyper);
    let mut error = error_slot();
    // SAFETY: every buffer is empty (rows = 0), so NULL is allowed.
    let status = unsafe {
        tf_swap_adagrad_swap_dense_f64(
            null_mut(),
            null_mut(),
            null_mut(),
            null(),
            0,
            INNER,
            0,
            0,
            &plan,
            &mut error,
        )
    };
    assert_eq!(status, 0, "dense on 0 rows");

    // Rows of 0 elements: only `power` has storage, and it stays as it is.
    let mut power = vec![0i64, 5, 7];
    // SAFETY: var/accum/grad hold 3 * 0 elements; power holds 3.
    let status = unsafe {
        tf_swap_adagrad_swap_dense_f32(
            null_mut(),
            null_mut(),
            power.as_mut_ptr(),
            null(),
            3,
            0,
            0,
            3,
            &plan,
            &mut error,
        )
    };
    assert_eq!((status, power), (0, vec![0, 5, 7]), "dense on 0-wide rows");

    let mut t = Table::new();
    let before = t.snapshot();
    // SAFETY: the table buffers are live Vecs of the declared sizes; grad
    // and indices are empty (n = 0), so NULL is allowed.
    let status = unsafe {
        tf_swap_adagrad_swap_sparse_f32_i64(
            t.var.as_mut_ptr(),
            t.acc.as_mut_ptr(),
            t.power.as_mut_ptr(),
            null(),
            null(),
            0,
            ROWS,
            INNER,
            0,
            ROWS,
            &plan,
            &mut error,
        )
    };
    assert_eq!(status, 0, "sparse with no indices");
    assert_eq!(t.snapshot(), before, "sparse with no indices wrote");

    let mut has_duplicates = true;
    // SAFETY: n = 0, so NULL indices are allowed; the flag is a live bool.
    let status =
        unsafe { tf_swap_check_indices_i64(null(), 0, ROWS, &mut has_duplicates, &mut error) };
    assert_eq!((status, has_duplicates), (0, false));

    let mut count = 99usize;
    // SAFETY: n = 0, so every buffer but `unique_count` may be NULL.
    let status = unsafe {
        tf_swap_sum_duplicates_f64_i32(
            null_mut(),
            null_mut(),
            &mut count,
            null(),
            null(),
            0,
            INNER,
            &mut error,
        )
    };
    assert_eq!((status, count), (0, 0));
}

#[test]
fn null_with_nonzero_length_is_refused_by_name() {
    let hyper = valid_hyper();
    for victim in ["var", "accum", "power", "grad", "hyper"] {
        let mut t = Table::new();
        let before = t.snapshot();
        let pick = |name: &str, ptr: *mut f32| if name == victim { null_mut() } else { ptr };
        let var = pick("var", t.var.as_mut_ptr());
        let acc = pick("accum", t.acc.as_mut_ptr());
        let power = if victim == "power" {
            null_mut()
        } else {
            t.power.as_mut_ptr()
        };
        let grad = if victim == "grad" {
            null()
        } else {
            t.grad.as_ptr()
        };
        let hyper: *const _ = if victim == "hyper" { null() } else { &hyper };
        let mut error = error_slot();
        // SAFETY: non-NULL pointers come from live Vecs of the declared
        // sizes; the NULL one is what the call must refuse.
        let status = unsafe { dense_raw(var, acc, power, grad, hyper, &mut error) };
        expect_failure(status, &error, TfSwapStatus::NullPointer, &[victim]);
        assert_eq!(t.snapshot(), before, "NULL {victim}: something was written");
    }

    let mut error = error_slot();
    let mut flag = false;
    // SAFETY: NULL indices with n = 2 is what the call must refuse.
    let status = unsafe { tf_swap_check_indices_i32(null(), 2, ROWS, &mut flag, &mut error) };
    expect_failure(status, &error, TfSwapStatus::NullPointer, &["indices"]);
    // SAFETY: indices is a live array of 2; the NULL flag must be refused.
    let status =
        unsafe { tf_swap_check_indices_i64([0i64, 1].as_ptr(), 2, ROWS, null_mut(), &mut error) };
    expect_failure(
        status,
        &error,
        TfSwapStatus::NullPointer,
        &["has_duplicates"],
    );

    let (indices, grad) = ([1i64, 1], [1.0f32; 2 * INNER]);
    let (mut unique, mut summed) = ([0i64; 2], [0.0f32; 2 * INNER]);
    // SAFETY: all buffers are live arrays of the sizes for n = 2; the NULL
    // count must be refused.
    let status = unsafe {
        tf_swap_sum_duplicates_f32_i64(
            unique.as_mut_ptr(),
            summed.as_mut_ptr(),
            null_mut(),
            indices.as_ptr(),
            grad.as_ptr(),
            2,
            INNER,
            &mut error,
        )
    };
    expect_failure(status, &error, TfSwapStatus::NullPointer, &["unique_count"]);
    assert_eq!(
        (unique, summed),
        ([0; 2], [0.0; 2 * INNER]),
        "refused sum wrote"
    );
}

#[test]
fn overlapping_buffers_are_refused() {
    let hyper = valid_hyper();
    let mut t = Table::new();
    let before = t.snapshot();
    let mut error = error_slot();
    let var = t.var.as_mut_ptr();
    // SAFETY: all pointers are into live Vecs of N elements; var is passed
    // as accum too, which the call must refuse before making slices.
    let status = unsafe {
        dense_raw(
            var,
            var,
            t.power.as_mut_ptr(),
            t.grad.as_ptr(),
            &hyper,
            &mut error,
        )
    };
    expect_failure(
        status,
        &error,
        TfSwapStatus::AliasedBuffers,
        &["var", "accum"],
    );
    assert_eq!(t.snapshot(), before, "var == accum: something was written");

    // grad overlapping var by all but one element.
    let mut both = vec![0.5f32; N + 1];
    let base = both.as_mut_ptr();
    // SAFETY: `both` holds N + 1 elements, so var = base and grad = base + 1
    // each have N in bounds; the overlap is what the call must refuse.
    let status = unsafe {
        dense_raw(
            base,
            t.acc.as_mut_ptr(),
            t.power.as_mut_ptr(),
            base.add(1),
            &hyper,
            &mut error,
        )
    };
    expect_failure(
        status,
        &error,
        TfSwapStatus::AliasedBuffers,
        &["var", "grad"],
    );
    assert!(
        both.iter().all(|&x| x == 0.5),
        "grad/var overlap: var was written"
    );

    // Sparse: grad inside accum.
    let indices = [1i64];
    // SAFETY: var/accum/power are live Vecs of the table's sizes; grad points
    // at INNER elements inside accum, which the call must refuse.
    let status = unsafe {
        tf_swap_adagrad_swap_sparse_f32_i64(
            t.var.as_mut_ptr(),
            t.acc.as_mut_ptr(),
            t.power.as_mut_ptr(),
            t.acc.as_ptr().add(INNER),
            indices.as_ptr(),
            1,
            ROWS,
            INNER,
            0,
            ROWS,
            &abi_plan(&hyper),
            &mut error,
        )
    };
    expect_failure(
        status,
        &error,
        TfSwapStatus::AliasedBuffers,
        &["accum", "grad"],
    );
    assert_eq!(
        t.snapshot(),
        before,
        "sparse grad in accum: something was written"
    );
}

/// Buffers that touch without overlapping are two halves of one tensor
/// allocation, which is legal; an off-by-one overlap test would refuse them.
#[test]
fn adjacent_buffers_are_accepted() {
    let hyper = valid_hyper();
    let mut t = Table::new();
    let mut joined: Vec<f32> = t.var.iter().chain(&t.acc).copied().collect();
    let (var, acc) = joined.split_at_mut(N);
    let mut error = error_slot();
    // SAFETY: var and accum are the two disjoint halves of `joined`, N each;
    // power and grad are live Vecs of the declared sizes.
    let status = unsafe {
        dense_raw(
            var.as_mut_ptr(),
            acc.as_mut_ptr(),
            t.power.as_mut_ptr(),
            t.grad.as_ptr(),
            &hyper,
            &mut error,
        )
    };
    assert_eq!(status, 0, "{}", message(&error));
    let mut want = Table::new();
    let h = plan_of(&hyper);
    let w = &mut want;
    apply_dense(
        &mut w.var,
        &mut w.acc,
        &mut w.power,
        &w.grad,
        INNER,
        0,
        ROWS,
        &h,
    )
    .expect("valid");
    t.var.copy_from_slice(&joined[..N]);
    t.acc.copy_from_slice(&joined[N..]);
    assert_eq!(t.snapshot(), want.snapshot());
}

#[test]
fn misaligned_pointers_are_refused() {
    let hyper = valid_hyper();
    let mut t = Table::new();
    let before = t.snapshot();
    let mut spare = vec![0.0f32; N + 1];
    let mut error = error_slot();
    // SAFETY: the misaligned pointer stays inside `spare` (N + 1 elements,
    // one byte in) and the call must refuse it before reading; the other
    // buffers are live Vecs of the declared sizes.
    let status = unsafe {
        let var = spare.as_mut_ptr().cast::<u8>().add(1).cast::<f32>();
        dense_raw(
            var,
            t.acc.as_mut_ptr(),
            t.power.as_mut_ptr(),
            t.grad.as_ptr(),
            &hyper,
            &mut error,
        )
    };
    expect_failure(status, &error, TfSwapStatus::MisalignedPointer, &["var"]);
    assert_eq!(t.snapshot(), before);
    assert!(
        spare.iter().all(|&x| x == 0.0),
        "misaligned var was written"
    );

    let storage = [0i64; 3];
    let mut flag = false;
    // SAFETY: two misaligned i64 fit inside `storage`; the call must refuse
    // them before reading.
    let status = unsafe {
        let indices = storage.as_ptr().cast::<u8>().add(4).cast::<i64>();
        tf_swap_check_indices_i64(indices, 2, ROWS, &mut flag, &mut error)
    };
    expect_failure(
        status,
        &error,
        TfSwapStatus::MisalignedPointer,
        &["indices"],
    );
}

#[test]
fn bad_row_ranges_are_refused() {
    let hyper = valid_hyper();
    for (begin, end) in [(2, 1), (0, ROWS + 1), (ROWS + 1, ROWS + 1)] {
        let mut t = Table::new();
        let before = t.snapshot();
        let (status, text) = dense(&mut t, begin, end, &hyper);
        assert_eq!(
            status,
            TfSwapStatus::InvalidRowRange as u32,
            "[{begin}, {end}): {text}"
        );
        assert!(text.contains(&format!("[{begin}, {end})")), "{text:?}");
        assert_eq!(
            t.snapshot(),
            before,
            "[{begin}, {end}): something was written"
        );
    }
}

#[test]
fn unknown_mode_codes_are_refused() {
    for (what, code) in [("decay_mode", 0), ("epsilon_placement", 1)] {
        let mut hyper = valid_hyper();
        if code == 0 {
            hyper.discount.decay_mode = 7;
        } else {
            hyper.epsilon_placement = 7;
        }
        let (status, error, _) = prepare(&hyper);
        expect_failure(status, &error, TfSwapStatus::UnknownMode, &[what, "7"]);
        let mut t = Table::new();
        let before = t.snapshot();
        let (status, text) = dense(&mut t, 0, ROWS, &hyper);
        assert_eq!(status, TfSwapStatus::UnknownMode as u32, "{text}");
        assert_eq!(t.snapshot(), before, "{what} 7: something was written");
    }
}

#[test]
fn bad_hyper_parameters_are_refused_before_any_write() {
    for (name, hyper) in bad_hypers() {
        let (status, error, plan) = prepare(&hyper);
        expect_failure(status, &error, TfSwapStatus::InvalidHyperParameter, &[name]);
        assert_eq!(
            format!("{plan:?}"),
            format!("{:?}", common::empty_plan()),
            "bad {name}: the plan was written"
        );

        let mut t = Table::new();
        let before = t.snapshot();
        let (status, text) = dense(&mut t, 0, ROWS, &hyper);
        assert_eq!(status, TfSwapStatus::InvalidHyperParameter as u32, "{text}");
        assert!(text.contains(name), "{text:?} lacks {name}");
        assert_eq!(t.snapshot(), before, "bad {name}: something was written");
    }
}

#[test]
fn out_of_range_index_is_reported_with_its_value() {
    let indices = [0i64, 3, 10, -1];
    let mut flag = true;
    let mut error = error_slot();
    // SAFETY: indices is a live array of 4; flag and error are live locals.
    let status =
        unsafe { tf_swap_check_indices_i64(indices.as_ptr(), 4, ROWS, &mut flag, &mut error) };
    expect_failure(
        status,
        &error,
        TfSwapStatus::IndexOutOfRange,
        &["indices[2]", "10"],
    );
    assert!(flag, "a refused check wrote has_duplicates");

    let indices = [2i32, -4];
    // SAFETY: as above.
    let status =
        unsafe { tf_swap_check_indices_i32(indices.as_ptr(), 2, ROWS, &mut flag, &mut error) };
    expect_failure(
        status,
        &error,
        TfSwapStatus::IndexOutOfRange,
        &["indices[1]", "-4"],
    );

    for (indices, want) in [([1i32, 3, 1], true), ([1, 3, 0], false)] {
        // SAFETY: as above.
        let status =
            unsafe { tf_swap_check_indices_i32(indices.as_ptr(), 3, ROWS, &mut flag, &mut error) };
        assert_eq!((status, flag), (0, want), "{indices:?}");
    }
}

#[test]
fn null_error_pointer_is_allowed() {
    let mut hyper = valid_hyper();
    hyper.discount.step = 0;
    let mut t = Table::new();
    // SAFETY: the table buffers are live Vecs of the declared sizes; error
    // may be NULL.
    let status = unsafe {
        dense_raw(
            t.var.as_mut_ptr(),
            t.acc.as_mut_ptr(),
            t.power.as_mut_ptr(),
            t.grad.as_ptr(),
            &hyper,
            null_mut(),
        )
    };
    assert_eq!(status, TfSwapStatus::InvalidHyperParameter as u32);
    // SAFETY: indices is a live array; flag is a live local; error is NULL.
    let status =
        unsafe { tf_swap_check_indices_i64([9i64].as_ptr(), 1, ROWS, &mut false, null_mut()) };
    assert_eq!(status, TfSwapStatus::IndexOutOfRange as u32);
}

/// The C++ kernel shards one apply into row ranges; the calls together must
/// do what one kernel call does.
#[test]
fn row_range_calls_match_the_kernel() {
    let hyper = valid_hyper();
    let plan = abi_plan(&hyper);
    let h = plan_of(&hyper);
    let mut want = Table::new();
    let w = &mut want;
    apply_dense(
        &mut w.var,
        &mut w.acc,
        &mut w.power,
        &w.grad,
        INNER,
        0,
        ROWS,
        &h,
    )
    .expect("valid");
    let mut got = Table::new();
    for (begin, end) in [(0, 1), (1, 1), (1, ROWS)] {
        let (status, text) = dense(&mut got, begin, end, &hyper);
        assert_eq!(status, 0, "[{begin}, {end}): {text}");
    }
    assert_eq!(got.snapshot(), want.snapshot(), "dense by row ranges");

    let indices = [3i32, 1];
    let grad = &Table::new().grad[..2 * INNER];
    let mut want = Table::new();
    let w = &mut want;
    apply_sparse(
        &mut w.var,
        &mut w.acc,
        &mut w.power,
        0,
        grad,
        &indices,
        INNER,
        &h,
    )
    .expect("valid");
    let mut got = Table::new();
    for (begin, end) in [(0, 2), (2, ROWS)] {
        let mut error = error_slot();
        // SAFETY: table buffers are live Vecs of the declared sizes, grad
        // holds 2 * INNER elements and indices 2; none overlap.
        let status = unsafe {
            tf_swap_adagrad_swap_sparse_f32_i32(
                got.var.as_mut_ptr(),
                got.acc.as_mut_ptr(),
                got.power.as_mut_ptr(),
                grad.as_ptr(),
                indices.as_ptr(),
                2,
                ROWS,
                INNER,
                begin,
                end,
                &plan,
                &mut error,
            )
        };
        assert_eq!(status, 0, "[{begin}, {end}): {}", message(&error));
    }
    assert_eq!(got.snapshot(), want.snapshot(), "sparse by row ranges");
}

#[test]
fn sum_duplicates_matches_the_kernel() {
    let indices = [2i32, 0, 2, 2];
    let grad: Vec<f64> = (0..4 * INNER).map(|i| 0.1 * i as f64 - 0.3).collect();
    let (mut unique, mut summed, mut count) = ([-1i64; 4], [0.0f64; 4 * INNER], 0usize);
    let mut error = error_slot();
    // SAFETY: every buffer is a live array sized for n = 4 rows of INNER.
    let status = unsafe {
        tf_swap_sum_duplicates_f64_i32(
            unique.as_mut_ptr(),
            summed.as_mut_ptr(),
            &mut count,
            indices.as_ptr(),
            grad.as_ptr(),
            4,
            INNER,
            &mut error,
        )
    };
    assert_eq!(status, 0, "{}", message(&error));
    let (mut want_unique, mut want_summed) = ([-1i64; 4], [0.0f64; 4 * INNER]);
    let want_count =
        sum_duplicates(&indices, &grad, INNER, &mut want_unique, &mut want_summed).expect("valid");
    assert_eq!(count, 2);
    assert_eq!(
        (count, unique, bits_of(&summed)),
        (want_count, want_unique, bits_of(&want_summed))
    );
}

#[test]
fn partition_helpers_match_the_kernel() {
    let mut error = error_slot();
    for (elements, threads) in [(0, 4), (1 << 20, 2), (1 << 30, 8), (1 << 30, 0)] {
        let mut got = 0usize;
        // SAFETY: `got` and `error` are live locals.
        let status = unsafe { tf_swap_partition_count(&mut got, elements, threads, &mut error) };
        assert_eq!((status, got), (0, partition_count(elements, threads)));
    }
    for (rows, parts, part) in [(10, 3, 0), (10, 3, 2), (5, 8, 7), (0, 2, 1)] {
        let (mut begin, mut end) = (usize::MAX, usize::MAX);
        // SAFETY: begin, end and error are live locals.
        let status =
            unsafe { tf_swap_block_rows(&mut begin, &mut end, rows, parts, part, &mut error) };
        assert_eq!(status, 0);
        assert_eq!(
            (begin, end),
            block_rows(rows, parts, part),
            "{rows} {parts} {part}"
        );
    }
    // NULL outputs are refused by name, and nothing is written.
    let mut end = 7usize;
    // SAFETY: NULL is allowed and refused.
    let status = unsafe { tf_swap_block_rows(null_mut(), &mut end, 10, 2, 0, &mut error) };
    expect_failure(status, &error, TfSwapStatus::NullPointer, &["begin"]);
    assert_eq!(end, 7, "a refused call wrote end");
    // SAFETY: as above.
    let status = unsafe { tf_swap_partition_count(null_mut(), 10, 2, &mut error) };
    expect_failure(status, &error, TfSwapStatus::NullPointer, &["count"]);
}

#[test]
fn a_plan_is_read_as_prepared() {
    let hyper = valid_hyper();
    let mut t = Table::new();
    let before = t.snapshot();
    let mut error = error_slot();
    // A NULL plan is refused by name.
    // SAFETY: the table's buffers are live; the plan may be NULL.
    let status = unsafe {
        tf_swap_adagrad_swap_dense_f32(
            t.var.as_mut_ptr(),
            t.acc.as_mut_ptr(),
            t.power.as_mut_ptr(),
            t.grad.as_ptr(),
            ROWS,
            INNER,
            0,
            ROWS,
            null(),
            &mut error,
        )
    };
    expect_failure(status, &error, TfSwapStatus::NullPointer, &["plan"]);
    // A plan whose mode code no preparation writes is refused.
    let mut plan = abi_plan(&hyper);
    plan.discount.decay_mode = 9;
    // SAFETY: as above, with a live plan.
    let status = unsafe {
        tf_swap_adagrad_swap_dense_f32(
            t.var.as_mut_ptr(),
            t.acc.as_mut_ptr(),
            t.power.as_mut_ptr(),
            t.grad.as_ptr(),
            ROWS,
            INNER,
            0,
            ROWS,
            &plan,
            &mut error,
        )
    };
    expect_failure(
        status,
        &error,
        TfSwapStatus::UnknownMode,
        &["decay_mode", "9"],
    );
    assert_eq!(t.snapshot(), before, "a refused apply wrote");
    // The plan holds the periods completed at the step.
    let plan = abi_plan(&hyper);
    assert_eq!(
        plan.discount.periods,
        hyper.discount.step / hyper.discount.decay_period
    );
}
