//! Validation before any write (SPEC section 1): every bad hyper-parameter,
//! index and length is refused with an error naming it, and a refused call
//! leaves every buffer exactly as it was.

mod common;

use common::{bad_hypers, bits_of, hyper_args, plan_of, valid_hyper};
use tf_swap::ffi::TfSwapAdagradSwapHyper;
use tf_swap::kernels::KernelError;
use tf_swap::kernels::adagrad_swap::{AdagradSwapPlan, apply_dense, apply_sparse};
use tf_swap::kernels::sparse_rows::{check_indices, sum_duplicates};

#[test]
fn each_bad_hyper_parameter_is_rejected_by_name() {
    for (name, bad) in bad_hypers() {
        let args = hyper_args(&bad);
        // One check for both element types: the plan is made once per op call.
        let errors = [AdagradSwapPlan::new(&args).err()];
        for error in errors {
            let error = error.unwrap_or_else(|| panic!("{name} accepted in {args:?}"));
            assert!(
                matches!(error, KernelError::InvalidHyperParameter { name: n, .. } if n == name),
                "{args:?}: wrong error {error:?}"
            );
            let text = error.to_string();
            assert!(
                text.contains(name),
                "{args:?}: message {text:?} lacks {name}"
            );
        }
    }
}

type Edit = fn(&mut TfSwapAdagradSwapHyper);

#[test]
fn boundary_hyper_parameters_are_accepted() {
    let edits: [(&str, Edit); 6] = [
        ("learning_rate 0", |h| h.learning_rate = 0.0),
        ("epsilon 0", |h| h.epsilon = 0.0),
        ("decay_rate 1", |h| h.discount.decay_rate = 1.0),
        ("accumulator_floor 0", |h| {
            h.discount.accumulator_floor = 0.0
        }),
        ("decay_period 1", |h| h.discount.decay_period = 1),
        ("step 1", |h| h.discount.step = 1),
    ];
    for (what, edit) in edits {
        let mut hyper = valid_hyper();
        edit(&mut hyper);
        let args = hyper_args(&hyper);
        assert!(AdagradSwapPlan::new(&args).is_ok(), "rejects {what}");
    }
}

fn expect_index_error<I>(indices: &[I], rows: usize, position: usize, index: i64)
where
    I: tf_swap::kernels::sparse_rows::RowIndex + std::fmt::Debug,
{
    let error = check_indices(indices, rows).expect_err("bad index accepted");
    assert_eq!(
        error,
        KernelError::IndexOutOfRange {
            position,
            index,
            rows
        },
        "{indices:?} rows={rows}"
    );
    let text = error.to_string();
    let needle = format!("indices[{position}] = {index}");
    assert!(text.contains(&needle), "{text:?} lacks {needle:?}");
}

#[test]
fn out_of_range_indices_are_rejected_with_position_and_value() {
    expect_index_error::<i64>(&[0, 1, -1], 4, 2, -1);
    expect_index_error::<i64>(&[4], 4, 0, 4);
    expect_index_error::<i64>(&[3, 2, 9, -7], 4, 2, 9);
    expect_index_error::<i64>(&[i64::MIN], 4, 0, i64::MIN);
    expect_index_error::<i64>(&[0], 0, 0, 0);
    // Past u32: a truncating comparison would let it through.
    expect_index_error::<i64>(&[1 << 32], 4, 0, 1 << 32);
    expect_index_error::<i32>(&[1, 1, -1], 4, 2, -1);
    expect_index_error::<i32>(&[5], 5, 0, 5);
    expect_index_error::<i32>(&[i32::MAX], 5, 0, i64::from(i32::MAX));
    assert_eq!(check_indices::<i64>(&[0, 3, 3], 4), Ok(true));
    assert_eq!(check_indices::<i32>(&[3, 0], 4), Ok(false));
    assert_eq!(check_indices::<i64>(&[], 0), Ok(false));
}

/// Duplicate detection switches strategy with the table size; both sides
/// of the switch must agree.
#[test]
fn duplicates_are_found_in_small_and_huge_tables() {
    for rows in [2, 64, 65, 10_000, 1 << 40] {
        let last = rows as i64 - 1;
        assert_eq!(check_indices::<i64>(&[last, 0, last], rows), Ok(true));
        assert_eq!(check_indices::<i64>(&[last, 0], rows), Ok(false));
    }
}

/// A 3x2 table, a full-rank gradient and hyper-parameters that decay it: any
/// write a failed call made would show.
struct Table {
    var: Vec<f64>,
    acc: Vec<f64>,
    power: Vec<i64>,
    grad: Vec<f64>,
}

const ROWS: usize = 3;
const INNER: usize = 2;

impl Table {
    fn new() -> Self {
        Self {
            var: vec![0.5, -0.25, 1.0, 2.0, -3.0, 0.125],
            acc: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            power: vec![0, 1, 2],
            grad: vec![0.5, 1.5, -1.0, 0.25, 2.0, -0.75],
        }
    }

    fn snapshot(&self) -> (Vec<u64>, Vec<u64>, Vec<i64>) {
        (bits_of(&self.var), bits_of(&self.acc), self.power.clone())
    }
}

fn hyper() -> AdagradSwapPlan {
    plan_of(&valid_hyper())
}

fn assert_length_error(result: Result<(), KernelError>, what: &str) {
    let error = result.expect_err("length mismatch accepted");
    assert!(
        matches!(&error, KernelError::LengthMismatch { what: w, .. } if *w == what),
        "expected a length error about {what}, got {error:?}"
    );
    assert!(error.to_string().contains(what), "{error} lacks {what}");
}

#[test]
fn dense_length_mismatches_write_nothing() {
    let h = hyper();
    let mut control = Table::new();
    let before = control.snapshot();
    let t = &mut control;
    apply_dense(
        &mut t.var,
        &mut t.acc,
        &mut t.power,
        &t.grad,
        INNER,
        0,
        ROWS,
        &h,
    )
    .expect("valid");
    let after = control.snapshot();
    assert!(
        after.0 != before.0 && after.1 != before.1 && after.2 != before.2,
        "the valid call must change every buffer for the checks below to mean anything"
    );

    let mut t = Table::new();
    let n = ROWS * INNER;
    let result = apply_dense(
        &mut t.var[..n - 1],
        &mut t.acc,
        &mut t.power,
        &t.grad,
        INNER,
        0,
        ROWS,
        &h,
    );
    assert_length_error(result, "var");
    let result = apply_dense(
        &mut t.var,
        &mut t.acc[..n - 2],
        &mut t.power,
        &t.grad,
        INNER,
        0,
        ROWS,
        &h,
    );
    assert_length_error(result, "accum");
    let result = apply_dense(
        &mut t.var,
        &mut t.acc,
        &mut t.power,
        &t.grad[1..],
        INNER,
        0,
        ROWS,
        &h,
    );
    assert_length_error(result, "grad");
    let result = apply_dense(
        &mut t.var,
        &mut t.acc,
        &mut t.power[1..],
        &t.grad,
        INNER,
        0,
        ROWS,
        &h,
    );
    assert_length_error(result, "var");
    let result = apply_dense(
        &mut t.var,
        &mut t.acc,
        &mut t.power,
        &t.grad,
        INNER + 1,
        0,
        ROWS,
        &h,
    );
    assert_length_error(result, "var");
    assert_eq!(t.snapshot(), before, "a refused dense call wrote");
}

#[test]
fn sparse_length_mismatches_write_nothing() {
    let h = hyper();
    let indices: [i64; 2] = [2, 0];
    let g = ROWS * INNER - INNER;
    let mut control = Table::new();
    let before = control.snapshot();
    let t = &mut control;
    let (var, acc, power) = (&mut t.var, &mut t.acc, &mut t.power);
    apply_sparse(var, acc, power, 0, &t.grad[..g], &indices, INNER, &h).expect("valid");
    assert_ne!(control.snapshot(), before, "the valid call must write");

    let mut t = Table::new();
    let (var, acc, power) = (&mut t.var, &mut t.acc, &mut t.power);
    let result = apply_sparse(var, acc, power, 0, &t.grad, &indices, INNER, &h);
    assert_length_error(result, "grad");
    let result = apply_sparse(var, acc, power, 0, &t.grad[..g - 1], &indices, INNER, &h);
    assert_length_error(result, "grad");
    let result = apply_sparse(
        &mut var[1..],
        acc,
        power,
        0,
        &t.grad[..g],
        &indices,
        INNER,
        &h,
    );
    assert_length_error(result, "var");
    let result = apply_sparse(
        var,
        &mut acc[2..],
        power,
        0,
        &t.grad[..g],
        &indices,
        INNER,
        &h,
    );
    assert_length_error(result, "accum");
    assert_eq!(t.snapshot(), before, "a refused sparse call wrote");
}

#[test]
fn sum_duplicates_length_mismatches_write_nothing() {
    let indices: [i32; 3] = [1, 0, 1];
    let grad = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let mut unique = [-9i64; 3];
    let mut summed = [-9.0f32; 6];
    let fresh = (unique, summed);
    let result = sum_duplicates(&indices, &grad[..5], 2, &mut unique, &mut summed);
    assert_length_error(result.map(drop), "grad");
    let result = sum_duplicates(&indices, &grad, 2, &mut unique[..2], &mut summed);
    assert_length_error(result.map(drop), "unique_indices");
    let result = sum_duplicates(&indices, &grad, 2, &mut unique, &mut summed[..4]);
    assert_length_error(result.map(drop), "summed_grad");
    assert_eq!((unique, summed), fresh, "a refused sum_duplicates wrote");

    let count = sum_duplicates(&indices, &grad, 2, &mut unique, &mut summed).expect("valid");
    assert_eq!(count, 2);
    assert_eq!(unique[..2], [0, 1]);
    assert_eq!(summed[..4], [3.0, 4.0, 1.0 + 5.0, 2.0 + 6.0]);
}
