//! Property-based tests of every C ABI export (proptest): random shapes,
//! NULL pointers with zero and non-zero lengths, misaligned and overlapping
//! buffers, indices out of range, negative and repeated (int32 and int64),
//! NaN and infinity in gradients and hyper-parameters, row and channel
//! ranges outside the buffers, random thread splits.
//!
//! Properties, for every call:
//! - no panic escapes, and the status is a documented code;
//! - a call the test's oracle sees no fault in succeeds, and one with a
//!   fault fails with a code of one of its faults;
//! - a failed call leaves every buffer bit for bit as it was;
//! - a successful call equals the reference (SPEC section 1 spelled out for
//!   Adagrad-SWAP, a float64 batch normalization for Local BN), and
//!   splitting its rows (or channels) into random blocks changes nothing.

mod common;

use std::collections::BTreeMap;
use std::ffi::{CStr, c_char};

use common::swap_reference::{Params, State, reference_row, row_mut};
use common::{Float, Index, same_float};
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError};
use tf_swap::ffi::*;
use tf_swap::kernels::adagrad_swap::EpsilonPlacement;
use tf_swap::kernels::discount::DecayMode;

const CASES: u32 = 4000;

/// Thousands of cases per export, from a fixed seed so that CI runs are
/// reproducible (set `PROPTEST_RNG_SEED` to explore others).
fn config() -> ProptestConfig {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_201);
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

// ---- Buffers as C passes them ----

/// How a pointer argument is passed.
#[derive(Clone, Copy, Debug)]
enum Pass {
    Own,
    Null,
    Misaligned,
    /// The start of another argument's buffer.
    Alias(usize),
}

fn pass() -> impl Strategy<Value = Pass> {
    prop_oneof![
        12 => Just(Pass::Own),
        1 => Just(Pass::Null),
        1 => Just(Pass::Misaligned),
        2 => (0usize..8).prop_map(Pass::Alias),
    ]
}

/// The pointer arguments of one call: each owns storage big enough for any
/// argument (so an alias the library failed to refuse stays in bounds), is
/// told `len` elements of `size` bytes, and is written or only read.
struct Args {
    storage: Vec<Vec<u64>>,
    specs: Vec<(usize, usize, bool, Pass)>,
}

impl Args {
    /// `buffers`: (initial bytes, element size, written, how passed).
    fn new(buffers: Vec<(Vec<u8>, usize, bool, Pass)>) -> Self {
        let words = buffers.iter().map(|b| b.0.len()).max().unwrap_or(0) / 8 + 3;
        let mut storage = Vec::new();
        let mut specs = Vec::new();
        let count = buffers.len();
        for (bytes, size, written, how) in buffers {
            let mut words_of = vec![0u64; words];
            // SAFETY: `words_of` holds more than `bytes.len()` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    words_of.as_mut_ptr().cast::<u8>(),
                    bytes.len(),
                );
            }
            let how = match how {
                Pass::Alias(j) if j % count == specs.len() => Pass::Own,
                Pass::Alias(j) => Pass::Alias(j % count),
                other => other,
            };
            specs.push((bytes.len() / size.max(1), size, written, how));
            storage.push(words_of);
        }
        Self { storage, specs }
    }

    fn base(&mut self, i: usize) -> *mut u8 {
        self.storage[i].as_mut_ptr().cast()
    }

    /// The raw pointer argument `i` is passed as.
    fn ptr<T>(&mut self, i: usize) -> *mut T {
        match self.specs[i].3 {
            Pass::Own => self.base(i).cast(),
            Pass::Null => std::ptr::null_mut(),
            // SAFETY: one byte into a buffer of several words.
            Pass::Misaligned => unsafe { self.base(i).add(1) }.cast(),
            Pass::Alias(j) => self.base(j).cast(),
        }
    }

    /// The byte range argument `i` names, from how it is passed.
    fn region(&self, i: usize) -> (usize, usize) {
        let (len, size, _, how) = self.specs[i];
        let start = |k: usize| self.storage[k].as_ptr() as usize;
        let at = match how {
            Pass::Own => start(i),
            Pass::Null => 0,
            Pass::Misaligned => start(i) + 1,
            Pass::Alias(j) => start(j),
        };
        (at, len * size)
    }

    /// The status codes the pointer arguments alone call for.
    fn faults(&self) -> Vec<TfSwapStatus> {
        let mut faults = Vec::new();
        for (i, &(len, size, written, how)) in self.specs.iter().enumerate() {
            match how {
                Pass::Null if len > 0 => faults.push(TfSwapStatus::NullPointer),
                Pass::Misaligned if len > 0 && size > 1 => {
                    faults.push(TfSwapStatus::MisalignedPointer)
                }
                _ => {}
            }
            for j in 0..self.specs.len() {
                if j == i || !(written || self.specs[j].2) {
                    continue;
                }
                let ((a, n), (b, m)) = (self.region(i), self.region(j));
                if n > 0 && m > 0 && a < b + m && b < a + n {
                    faults.push(TfSwapStatus::AliasedBuffers);
                }
            }
        }
        faults
    }

    /// What the call reads through argument `i`: its own elements, or, for
    /// an input passed as an alias of another (allowed between inputs),
    /// that one's bytes.
    fn passed<T: Copy>(&self, i: usize) -> Vec<T> {
        let (len, _, _, how) = self.specs[i];
        let from = match how {
            Pass::Alias(j) => j,
            _ => i,
        };
        // SAFETY: every storage holds more bytes than any argument's
        // `len * size_of::<T>()`, 8-aligned.
        unsafe { std::slice::from_raw_parts(self.storage[from].as_ptr().cast::<T>(), len) }.to_vec()
    }

    /// Argument `i`'s elements where the call wrote them (an output passed
    /// as an alias of an empty buffer overlaps nothing, so it is allowed).
    fn read<T: Copy>(&self, i: usize) -> Vec<T> {
        self.passed(i)
    }
}

fn bytes_of<T: Copy>(values: &[T]) -> Vec<u8> {
    // SAFETY: plain-old-data values viewed as their bytes.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), size_of_val(values)) }
        .to_vec()
}

fn buffer<T: Copy>(values: &[T], written: bool, how: Pass) -> (Vec<u8>, usize, bool, Pass) {
    (bytes_of(values), size_of::<T>(), written, how)
}

// ---- Outcomes ----

fn error_slot() -> TfSwapError {
    TfSwapError {
        message: [0x7f as c_char; TF_SWAP_ERROR_MESSAGE_CAPACITY],
    }
}

fn message(error: &TfSwapError) -> Result<String, TestCaseError> {
    let bytes: Vec<u8> = error.message.iter().map(|&c| c as u8).collect();
    let text = CStr::from_bytes_until_nul(&bytes)
        .map_err(|_| TestCaseError::fail("message not NUL-terminated"))?;
    Ok(text.to_string_lossy().into_owned())
}

/// The common properties: documented code, no panic, OK exactly when
/// there is no fault, a fault's own code otherwise, nothing written on
/// failure. Returns whether the call succeeded.
fn check_outcome(
    status: u32,
    error: &TfSwapError,
    faults: &[TfSwapStatus],
    before: &[Vec<u64>],
    args: &Args,
) -> Result<bool, TestCaseError> {
    prop_assert!(
        status <= TfSwapStatus::EmptyBatch as u32,
        "unknown code {status}"
    );
    prop_assert_ne!(
        status,
        TfSwapStatus::Panic as u32,
        "a panic: {}",
        message(error)?
    );
    if faults.is_empty() {
        prop_assert_eq!(status, 0, "no fault, but {}", message(error)?);
        return Ok(true);
    }
    prop_assert!(
        faults.iter().any(|&f| f as u32 == status),
        "faults {faults:?}, got {status}: {}",
        message(error)?
    );
    prop_assert!(!message(error)?.is_empty());
    prop_assert!(before == &args.storage[..], "a failed call wrote");
    Ok(false)
}

/// One call on fresh arguments built from `buffers`: expects their own
/// faults plus each `extra` fault whose condition holds, makes the call
/// and checks its outcome (`check_outcome`). Returns the arguments, to
/// read what the call wrote, and whether it succeeded.
fn checked_call(
    buffers: Vec<(Vec<u8>, usize, bool, Pass)>,
    extra: &[(bool, TfSwapStatus)],
    call: impl FnOnce(&mut Args, &mut TfSwapError) -> u32,
) -> Result<(Args, bool), TestCaseError> {
    let mut args = Args::new(buffers);
    let mut faults = args.faults();
    faults.extend(extra.iter().filter(|(on, _)| *on).map(|&(_, fault)| fault));
    let before = args.storage.clone();
    let mut error = error_slot();
    let status = call(&mut args, &mut error);
    let succeeded = check_outcome(status, &error, &faults, &before, &args)?;
    Ok((args, succeeded))
}

fn same<T: Float>(got: &[T], want: &[T]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        prop_assert!(same_float(g, w), "element {k}: {g:?} != {w:?}");
    }
    Ok(())
}

fn close<T: Float>(got: &[T], want: &[f64], tol: f64) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g.to_f64();
        prop_assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "element {k}: {g} vs reference {w}"
        );
    }
    Ok(())
}

/// Consecutive blocks covering `[0, len)` cut at `cuts` (fractions).
fn blocks(len: usize, cuts: &[f64]) -> Vec<(usize, usize)> {
    let mut points: Vec<usize> = cuts.iter().map(|c| (c * len as f64) as usize).collect();
    points.extend([0, len]);
    points.sort_unstable();
    points.windows(2).map(|w| (w[0], w[1])).collect()
}

// ---- Adagrad-SWAP hyper-parameters ----

/// Values exactly representable in float32, so a float32 call and its
/// reference see the same numbers.
fn hyper() -> impl Strategy<Value = (TfSwapAdagradSwapHyper, Vec<TfSwapStatus>)> {
    let lr = prop_oneof![8 => (1u32..64).prop_map(|k| k as f64 / 64.0), 1 => Just(0.0),
        1 => Just(-0.5), 1 => Just(f64::NAN), 1 => Just(f64::INFINITY)];
    let eps = prop_oneof![8 => Just(1.0 / 1024.0), 2 => Just(0.0), 1 => Just(f64::NAN),
        1 => Just(-1.0)];
    let rho = prop_oneof![8 => (1u32..=16).prop_map(|k| k as f64 / 16.0), 1 => Just(0.0),
        1 => Just(1.5), 1 => Just(f64::NAN)];
    let floor = prop_oneof![8 => Just(0.125), 2 => Just(0.0), 1 => Just(-1.0),
        1 => Just(f64::INFINITY)];
    let step = prop_oneof![8 => 1i64..200, 1 => Just(0), 1 => Just(-3)];
    let period = prop_oneof![8 => 1i64..20, 1 => Just(0)];
    let mode = prop_oneof![8 => 0u32..2, 1 => Just(7u32)];
    let placement = prop_oneof![8 => 0u32..2, 1 => Just(5u32)];
    (lr, eps, rho, floor, step, period, mode, placement).prop_map(
        |(lr, eps, rho, floor, step, period, mode, placement)| {
            let hyper = TfSwapAdagradSwapHyper {
                learning_rate: lr,
                epsilon: eps,
                epsilon_placement: placement,
                discount: TfSwapDiscount {
                    decay_rate: rho,
                    accumulator_floor: floor,
                    step,
                    decay_period: period,
                    decay_mode: mode,
                },
            };
            let finite_at_least_0 = |v: f64| v.is_finite() && v >= 0.0;
            let valid = finite_at_least_0(lr)
                && finite_at_least_0(eps)
                && finite_at_least_0(floor)
                && rho > 0.0
                && rho <= 1.0
                && step >= 1
                && period >= 1;
            let mut faults = Vec::new();
            if !valid {
                faults.push(TfSwapStatus::InvalidHyperParameter);
            }
            if mode > 1 || placement > 1 {
                faults.push(TfSwapStatus::UnknownMode);
            }
            (hyper, faults)
        },
    )
}

fn params<T: Float>(h: &TfSwapAdagradSwapHyper) -> Params<T> {
    Params {
        lr: T::from_f64(h.learning_rate),
        eps: T::from_f64(h.epsilon),
        rho: T::from_f64(h.discount.decay_rate),
        floor: T::from_f64(h.discount.accumulator_floor),
        period: h.discount.decay_period,
        mode: if h.discount.decay_mode == 0 {
            DecayMode::Exact
        } else {
            DecayMode::OncePerUpdate
        },
        placement: if h.epsilon_placement == 0 {
            EpsilonPlacement::AfterSqrt
        } else {
            EpsilonPlacement::InsideSqrt
        },
    }
}

/// A value of a gradient: mostly ordinary, sometimes NaN or infinite.
fn gradient_value() -> impl Strategy<Value = f64> {
    prop_oneof![20 => -4.0f64..4.0, 1 => Just(f64::NAN), 1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY)]
}

fn range_in(len: usize) -> impl Strategy<Value = (usize, usize)> {
    prop_oneof![
        6 => (0..=len).prop_flat_map(move |b| (Just(b), b..=len)),
        1 => (0..len + 3, 0..len + 3),
    ]
}

type Dense<T> = unsafe extern "C" fn(
    *mut T,
    *mut T,
    *mut i64,
    *const T,
    usize,
    usize,
    usize,
    usize,
    *const TfSwapAdagradSwapPlan,
    *mut TfSwapError,
) -> u32;

/// The op's first step: the hyper-parameters checked once into a plan.
/// `Ok(Some(plan))` when they are valid; `Ok(None)` when the preparation
/// refused them as the oracle expects (no apply follows, nothing is
/// written: the plan stays as it was).
fn prepared(
    hyper: &TfSwapAdagradSwapHyper,
    faults: &[TfSwapStatus],
    null: bool,
) -> Result<Option<TfSwapAdagradSwapPlan>, TestCaseError> {
    let mut faults = faults.to_vec();
    if null {
        faults.push(TfSwapStatus::NullPointer);
    }
    let ptr: *const TfSwapAdagradSwapHyper = if null { std::ptr::null() } else { hyper };
    let mut plan = common::empty_plan();
    let mut error = error_slot();
    // SAFETY: `ptr` is NULL or a live struct; `plan` and `error` are live.
    let status = unsafe { tf_swap_adagrad_swap_prepare(&mut plan, ptr, &mut error) };
    let untouched = format!("{plan:?}") == format!("{:?}", common::empty_plan());
    let args = Args::new(Vec::new());
    if !check_outcome(status, &error, &faults, &[], &args)? {
        prop_assert!(untouched, "a refused preparation wrote the plan");
        return Ok(None);
    }
    Ok(Some(plan))
}

#[derive(Debug, Clone)]
struct DenseCase {
    rows: usize,
    inner: usize,
    values: Vec<f64>,
    powers: Vec<i64>,
    passes: Vec<Pass>,
    hyper: (TfSwapAdagradSwapHyper, Vec<TfSwapStatus>),
    hyper_null: bool,
    range: (usize, usize),
    cuts: Vec<f64>,
}

fn dense_case() -> impl Strategy<Value = DenseCase> {
    (0usize..9, 0usize..5).prop_flat_map(|(rows, inner)| {
        let n = rows * inner;
        (
            Just(rows),
            Just(inner),
            prop::collection::vec(gradient_value(), 3 * n),
            prop::collection::vec(0i64..30, rows),
            prop::collection::vec(pass(), 4),
            hyper(),
            prop::bool::weighted(0.05),
            range_in(rows),
            prop::collection::vec(0.0f64..1.0, 0..4),
        )
            .prop_map(
                |(rows, inner, values, powers, passes, hyper, hyper_null, range, cuts)| DenseCase {
                    rows,
                    inner,
                    values,
                    powers,
                    passes,
                    hyper,
                    hyper_null,
                    range,
                    cuts,
                },
            )
    })
}

fn run_dense<T: Float>(f: Dense<T>, case: &DenseCase) -> Result<(), TestCaseError> {
    let n = case.rows * case.inner;
    let t = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let var = t(&case.values[..n]);
    // Accumulators start positive and finite, as the optimizers make them.
    let acc: Vec<T> = case.values[n..2 * n]
        .iter()
        .map(|x| T::from_f64(if x.is_finite() { 0.1 + x.abs() } else { 0.5 }))
        .collect();
    let grad = t(&case.values[2 * n..]);
    let mut args = Args::new(vec![
        buffer(&var, true, case.passes[0]),
        buffer(&acc, true, case.passes[1]),
        buffer(&case.powers, true, case.passes[2]),
        buffer(&grad, false, case.passes[3]),
    ]);
    let (hyper, hyper_faults) = case.hyper.clone();
    let Some(plan) = prepared(&hyper, &hyper_faults, case.hyper_null)? else {
        return Ok(());
    };
    let mut faults = args.faults();
    let (begin, end) = case.range;
    if !(begin <= end && end <= case.rows) {
        faults.push(TfSwapStatus::InvalidRowRange);
    }
    let before = args.storage.clone();
    let mut error = error_slot();
    // What the call sees (an output may alias an empty buffer).
    let (var, acc, powers) = (args.passed::<T>(0), args.passed::<T>(1), args.passed(2));
    let (p0, p1, p2, p3) = (args.ptr(0), args.ptr(1), args.ptr(2), args.ptr::<T>(3));
    // SAFETY: every buffer holds what the call is told, or is refused by
    // the checks this test exercises (aliases stay inside the storage).
    let status = unsafe {
        f(
            p0, p1, p2, p3, case.rows, case.inner, begin, end, &plan, &mut error,
        )
    };
    if !check_outcome(status, &error, &faults, &before, &args)? {
        return Ok(());
    }
    let grad = args.passed::<T>(3);
    let mut want = State {
        var: var.clone(),
        acc: acc.clone(),
        power: powers.clone(),
        inner: case.inner,
    };
    let p = params::<T>(&hyper);
    if case.inner > 0 {
        for r in begin..end {
            let g = &grad[r * case.inner..(r + 1) * case.inner];
            let (w, a) = (
                row_mut(&mut want.var, r, case.inner),
                row_mut(&mut want.acc, r, case.inner),
            );
            reference_row(w, a, &mut want.power[r], g, hyper.discount.step, &p);
        }
    }
    same(&args.read::<T>(0), &want.var)?;
    same(&args.read::<T>(1), &want.acc)?;
    prop_assert_eq!(args.read::<i64>(2), want.power.clone());
    // The same rows cut into random blocks give the same bits.
    let mut split = Args::new(vec![
        buffer(&var, true, Pass::Own),
        buffer(&acc, true, Pass::Own),
        buffer(&powers, true, Pass::Own),
        buffer(&grad, false, Pass::Own),
    ]);
    for (b, e) in blocks(end - begin, &case.cuts) {
        let (q0, q1, q2, q3) = (split.ptr(0), split.ptr(1), split.ptr(2), split.ptr::<T>(3));
        // SAFETY: own buffers of the told lengths, a range inside them.
        let status = unsafe {
            f(
                q0,
                q1,
                q2,
                q3,
                case.rows,
                case.inner,
                begin + b,
                begin + e,
                &plan,
                &mut error,
            )
        };
        prop_assert_eq!(status, 0);
    }
    same(&split.read::<T>(0), &args.read::<T>(0))?;
    same(&split.read::<T>(1), &args.read::<T>(1))?;
    prop_assert_eq!(split.read::<i64>(2), args.read::<i64>(2));
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn dense_f32(case in dense_case()) {
        run_dense::<f32>(tf_swap_adagrad_swap_dense_f32, &case)?;
    }

    #[test]
    fn dense_f64(case in dense_case()) {
        run_dense::<f64>(tf_swap_adagrad_swap_dense_f64, &case)?;
    }

    #[test]
    fn prepare_hyper(case in hyper(), null in prop::bool::weighted(0.1)) {
        let (hyper, faults) = case;
        if let Some(plan) = prepared(&hyper, &faults, null)? {
            let d = &hyper.discount;
            prop_assert_eq!(plan.discount.periods, d.step / d.decay_period);
            prop_assert_eq!(plan.learning_rate.to_bits(), hyper.learning_rate.to_bits());
        }
    }
}

// ---- Sparse Adagrad-SWAP ----

type Sparse<T, I> = unsafe extern "C" fn(
    *mut T,
    *mut T,
    *mut i64,
    *const T,
    *const I,
    usize,
    usize,
    usize,
    usize,
    usize,
    *const TfSwapAdagradSwapPlan,
    *mut TfSwapError,
) -> u32;

#[derive(Debug, Clone)]
struct SparseCase {
    dense: DenseCase,
    /// Distinct indices (the contract), some negative or past the rows:
    /// those are skipped.
    indices: Vec<i64>,
}

fn sparse_case() -> impl Strategy<Value = SparseCase> {
    dense_case().prop_flat_map(|dense| {
        let rows = dense.rows as i64;
        (
            Just(dense),
            prop::collection::btree_set(-3i64..rows + 3, 0..8)
                .prop_map(|set| set.into_iter().collect::<Vec<_>>())
                .prop_shuffle(),
        )
            .prop_map(|(dense, indices)| SparseCase { dense, indices })
    })
}

fn run_sparse<T: Float, I: Index>(f: Sparse<T, I>, case: &SparseCase) -> Result<(), TestCaseError> {
    let d = &case.dense;
    let (n, table) = (case.indices.len(), d.rows * d.inner);
    let t = |v: f64| T::from_f64(v);
    let values = |k: usize| d.values.get(k).copied().unwrap_or(0.5);
    let var: Vec<T> = (0..table).map(|k| t(values(k))).collect();
    let acc: Vec<T> = (0..table)
        .map(|k| t(0.1 + values(table + k).abs().min(3.0)))
        .collect();
    let grad: Vec<T> = (0..n * d.inner).map(|k| t(values(2 * table + k))).collect();
    let indices: Vec<I> = case.indices.iter().map(|&i| I::from_i64(i)).collect();
    let mut passes = d.passes.clone();
    passes.push(d.passes[0]);
    let mut args = Args::new(vec![
        buffer(&var, true, passes[0]),
        buffer(&acc, true, passes[1]),
        buffer(&d.powers, true, passes[2]),
        buffer(&grad, false, passes[3]),
        buffer(
            &indices,
            false,
            if n % 3 == 0 { Pass::Own } else { passes[4] },
        ),
    ]);
    let (hyper, hyper_faults) = d.hyper.clone();
    let Some(plan) = prepared(&hyper, &hyper_faults, d.hyper_null)? else {
        return Ok(());
    };
    let mut faults = args.faults();
    let (begin, end) = d.range;
    if !(begin <= end && end <= d.rows) {
        faults.push(TfSwapStatus::InvalidRowRange);
    }
    let before = args.storage.clone();
    let mut error = error_slot();
    let (var, acc, powers) = (args.passed::<T>(0), args.passed::<T>(1), args.passed(2));
    let (p0, p1, p2, p3, p4) = (
        args.ptr(0),
        args.ptr(1),
        args.ptr(2),
        args.ptr(3),
        args.ptr(4),
    );
    // SAFETY: as in `run_dense`.
    let status = unsafe {
        f(
            p0, p1, p2, p3, p4, n, d.rows, d.inner, begin, end, &plan, &mut error,
        )
    };
    if !check_outcome(status, &error, &faults, &before, &args)? {
        return Ok(());
    }
    let grad = args.passed::<T>(3);
    let mut want = State {
        var,
        acc,
        power: powers,
        inner: d.inner,
    };
    let p = params::<T>(&hyper);
    for (k, &index) in case.indices.iter().enumerate() {
        let Ok(r) = usize::try_from(index) else {
            continue;
        };
        if r < begin || r >= end || d.inner == 0 {
            continue;
        }
        let g = &grad[k * d.inner..(k + 1) * d.inner];
        let (w, a) = (
            row_mut(&mut want.var, r, d.inner),
            row_mut(&mut want.acc, r, d.inner),
        );
        reference_row(w, a, &mut want.power[r], g, hyper.discount.step, &p);
    }
    same(&args.read::<T>(0), &want.var)?;
    same(&args.read::<T>(1), &want.acc)?;
    prop_assert_eq!(args.read::<i64>(2), want.power.clone());
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sparse_f32_i64(case in sparse_case()) {
        run_sparse::<f32, i64>(tf_swap_adagrad_swap_sparse_f32_i64, &case)?;
    }

    #[test]
    fn sparse_f32_i32(case in sparse_case()) {
        run_sparse::<f32, i32>(tf_swap_adagrad_swap_sparse_f32_i32, &case)?;
    }

    #[test]
    fn sparse_f64_i64(case in sparse_case()) {
        run_sparse::<f64, i64>(tf_swap_adagrad_swap_sparse_f64_i64, &case)?;
    }

    #[test]
    fn sparse_f64_i32(case in sparse_case()) {
        run_sparse::<f64, i32>(tf_swap_adagrad_swap_sparse_f64_i32, &case)?;
    }
}

// ---- FTRL-SWAP ----

/// FTRL-SWAP hyper-parameters (exact in float32) and the faults their
/// preparation must report.
fn ftrl_hyper() -> impl Strategy<Value = (TfSwapFtrlSwapHyper, Vec<TfSwapStatus>)> {
    let positive = prop_oneof![8 => (1u32..64).prop_map(|k| k as f64 / 64.0), 1 => Just(0.0),
        1 => Just(f64::NAN)];
    let strength = prop_oneof![6 => Just(0.0), 4 => (1u32..16).prop_map(|k| k as f64 / 256.0),
        1 => Just(-0.25), 1 => Just(f64::INFINITY)];
    let lr_power = prop_oneof![6 => Just(-0.5), 3 => Just(-0.75), 1 => Just(0.0), 1 => Just(0.5)];
    let scale = prop_oneof![6 => Just(1.0), 3 => Just(0.5), 1 => Just(0.0), 1 => Just(2.0)];
    let rho = prop_oneof![6 => Just(1.0), 4 => (1u32..16).prop_map(|k| k as f64 / 16.0),
        1 => Just(0.0)];
    let step = prop_oneof![8 => 1i64..60, 1 => Just(0)];
    let period = prop_oneof![8 => 1i64..10, 1 => Just(0)];
    let mode = prop_oneof![8 => 0u32..2, 1 => Just(4u32)];
    (
        positive,
        (
            strength.clone(),
            strength.clone(),
            strength.clone(),
            strength,
        ),
        lr_power,
        scale,
        rho,
        step,
        period,
        mode,
    )
        .prop_map(
            |(lr, (l1, l2, l2s, beta), lr_power, scale, rho, step, period, mode)| {
                let hyper = TfSwapFtrlSwapHyper {
                    learning_rate: lr,
                    l1,
                    l2,
                    l2_shrinkage: l2s,
                    lr_power,
                    beta,
                    staleness_scale: scale,
                    discount: TfSwapDiscount {
                        decay_rate: rho,
                        accumulator_floor: 0.125,
                        step,
                        decay_period: period,
                        decay_mode: mode,
                    },
                };
                let ok_strength = |v: f64| v.is_finite() && v >= 0.0;
                let valid = lr.is_finite()
                    && lr > 0.0
                    && [l1, l2, l2s, beta].into_iter().all(ok_strength)
                    && lr_power <= 0.0
                    && scale > 0.0
                    && scale <= 1.0
                    && rho > 0.0
                    && rho <= 1.0
                    && step >= 1
                    && period >= 1;
                let mut faults = Vec::new();
                if !valid {
                    faults.push(TfSwapStatus::InvalidHyperParameter);
                }
                if mode > 1 {
                    faults.push(TfSwapStatus::UnknownMode);
                }
                (hyper, faults)
            },
        )
}

fn ftrl_prepared(
    hyper: &TfSwapFtrlSwapHyper,
    faults: &[TfSwapStatus],
) -> Result<Option<TfSwapFtrlSwapPlan>, TestCaseError> {
    // SAFETY: an all-zero plan is a valid value of this plain C struct.
    let mut plan: TfSwapFtrlSwapPlan = unsafe { std::mem::zeroed() };
    let untouched = format!("{plan:?}");
    let mut error = error_slot();
    // SAFETY: live structs.
    let status = unsafe { tf_swap_ftrl_swap_prepare(&mut plan, hyper, &mut error) };
    if !check_outcome(status, &error, faults, &[], &Args::new(Vec::new()))? {
        prop_assert_eq!(
            format!("{plan:?}"),
            untouched,
            "a refused preparation wrote"
        );
        return Ok(None);
    }
    Ok(Some(plan))
}

/// The kernel's plan of hyper-parameters the ABI accepted.
fn ftrl_kernel_plan(hyper: &TfSwapFtrlSwapHyper) -> tf_swap::kernels::ftrl_swap::FtrlSwapPlan {
    use tf_swap::kernels::discount::DiscountArgs;
    use tf_swap::kernels::ftrl_swap::{FtrlSwapArgs, FtrlSwapPlan};
    let d = &hyper.discount;
    FtrlSwapPlan::new(&FtrlSwapArgs {
        learning_rate: hyper.learning_rate,
        l1: hyper.l1,
        l2: hyper.l2,
        l2_shrinkage: hyper.l2_shrinkage,
        lr_power: hyper.lr_power,
        beta: hyper.beta,
        staleness_scale: hyper.staleness_scale,
        discount: DiscountArgs {
            decay_rate: d.decay_rate,
            accumulator_floor: d.accumulator_floor,
            step: d.step,
            decay_period: d.decay_period,
            decay_mode: if d.decay_mode == 0 {
                DecayMode::Exact
            } else {
                DecayMode::OncePerUpdate
            },
        },
    })
    .expect("accepted by the ABI")
}

type FtrlDense<T> = unsafe extern "C" fn(
    *mut T,
    *mut T,
    *mut T,
    *mut i64,
    *const T,
    usize,
    usize,
    usize,
    usize,
    *const TfSwapFtrlSwapPlan,
    *mut TfSwapError,
) -> u32;

type FtrlSparse<T, I> = unsafe extern "C" fn(
    *mut T,
    *mut T,
    *mut T,
    *mut i64,
    *const T,
    *const I,
    usize,
    usize,
    usize,
    usize,
    usize,
    *const TfSwapFtrlSwapPlan,
    *mut TfSwapError,
) -> u32;

#[derive(Debug, Clone)]
struct FtrlCase {
    rows: usize,
    inner: usize,
    values: Vec<f64>,
    powers: Vec<i64>,
    passes: Vec<Pass>,
    hyper: (TfSwapFtrlSwapHyper, Vec<TfSwapStatus>),
    range: (usize, usize),
    cuts: Vec<f64>,
    indices: Vec<i64>,
}

fn ftrl_case() -> impl Strategy<Value = FtrlCase> {
    (0usize..9, 0usize..11).prop_flat_map(|(rows, inner)| {
        let n = rows * inner;
        (
            (Just(rows), Just(inner)),
            prop::collection::vec(-2.0f64..2.0, 3 * n.max(1)),
            prop::collection::vec(0i64..8, rows),
            prop::collection::vec(pass(), 6),
            ftrl_hyper(),
            range_in(rows),
            prop::collection::vec(0.0f64..1.0, 0..4),
            prop::collection::btree_set(-2i64..rows as i64 + 2, 0..8)
                .prop_map(|set| set.into_iter().collect::<Vec<_>>())
                .prop_shuffle(),
        )
            .prop_map(
                |((rows, inner), values, powers, passes, hyper, range, cuts, indices)| FtrlCase {
                    rows,
                    inner,
                    values,
                    powers,
                    passes,
                    hyper,
                    range,
                    cuts,
                    indices,
                },
            )
    })
}

/// The starting buffers of a case: weights, accumulators (positive), linear.
fn ftrl_buffers<T: Float>(c: &FtrlCase) -> (Vec<T>, Vec<T>, Vec<T>) {
    let n = c.rows * c.inner;
    let t = |k: usize| T::from_f64(c.values.get(k).copied().unwrap_or(0.5) / 8.0);
    let w = (0..n).map(t).collect();
    let acc = (0..n)
        .map(|k| T::from_f64(0.125 + c.values[k % c.values.len()].abs()))
        .collect();
    let z = (0..n).map(|k| t(n + k)).collect();
    (w, acc, z)
}

fn run_ftrl<T: Float + tf_swap::kernels::tf_pow::PowLane, I: Index>(
    dense: FtrlDense<T>,
    sparse: FtrlSparse<T, I>,
    c: &FtrlCase,
    use_sparse: bool,
) -> Result<(), TestCaseError> {
    let (hyper, faults) = c.hyper.clone();
    let Some(plan) = ftrl_prepared(&hyper, &faults)? else {
        return Ok(());
    };
    let (rows, inner) = (c.rows, c.inner);
    let (w, acc, z) = ftrl_buffers::<T>(c);
    let n_idx = c.indices.len();
    let grad_len = if use_sparse {
        n_idx * inner
    } else {
        rows * inner
    };
    let grad: Vec<T> = (0..grad_len)
        .map(|k| T::from_f64(c.values[k % c.values.len()]))
        .collect();
    let indices: Vec<I> = c.indices.iter().map(|&i| I::from_i64(i)).collect();
    let mut buffers = vec![
        buffer(&w, true, c.passes[0]),
        buffer(&acc, true, c.passes[1]),
        buffer(&z, true, c.passes[2]),
        buffer(&c.powers, true, c.passes[3]),
        buffer(&grad, false, c.passes[4]),
    ];
    if use_sparse {
        buffers.push(buffer(&indices, false, c.passes[5]));
    }
    let (begin, end) = c.range;
    let bad_range = !(begin <= end && end <= rows);
    // Sparse indices outside [0, rows) are the C++ op's to refuse; here
    // they are only skipped by the rows that do not own them.
    let (args, ok) = checked_call(
        buffers,
        &[(bad_range, TfSwapStatus::InvalidRowRange)],
        |a, e| {
            // SAFETY: buffers hold what the call is told or are refused.
            unsafe {
                if use_sparse {
                    sparse(
                        a.ptr(0),
                        a.ptr(1),
                        a.ptr(2),
                        a.ptr(3),
                        a.ptr(4),
                        a.ptr(5),
                        n_idx,
                        rows,
                        inner,
                        begin,
                        end,
                        &plan,
                        e,
                    )
                } else {
                    dense(
                        a.ptr(0),
                        a.ptr(1),
                        a.ptr(2),
                        a.ptr(3),
                        a.ptr(4),
                        rows,
                        inner,
                        begin,
                        end,
                        &plan,
                        e,
                    )
                }
            }
        },
    )?;
    if !ok {
        return Ok(());
    }
    // The oracle: the kernel on the same rows, once and cut into blocks.
    let kernel_plan = ftrl_kernel_plan(&hyper);
    let (grad, indices) = (
        args.passed::<T>(4),
        if use_sparse {
            args.passed::<I>(5)
        } else {
            Vec::new()
        },
    );
    let apply = |s: &mut (Vec<T>, Vec<T>, Vec<T>, Vec<i64>), lo: usize, hi: usize| {
        use tf_swap::kernels::ftrl_swap::{apply_dense_baseline, apply_sparse_baseline};
        let span = lo * inner..hi * inner;
        let (w, n, z, p) = s;
        let (w, n, z, p) = (
            &mut w[span.clone()],
            &mut n[span.clone()],
            &mut z[span.clone()],
            &mut p[lo..hi],
        );
        if use_sparse {
            apply_sparse_baseline(w, n, z, p, lo, &grad, &indices, inner, &kernel_plan)
        } else {
            apply_dense_baseline(w, n, z, p, &grad[span], inner, lo, rows, &kernel_plan)
        }
    };
    let mut once = (w.clone(), acc.clone(), z.clone(), c.powers.clone());
    prop_assert!(apply(&mut once, begin, end).is_ok());
    let mut split = (w, acc, z, c.powers.clone());
    for (b, e) in blocks(end - begin, &c.cuts) {
        prop_assert!(apply(&mut split, begin + b, begin + e).is_ok());
    }
    // A written buffer passed as an alias of an empty one (allowed) is
    // read back through the storage it aliases: compare the others.
    if !c.passes[..4].iter().any(|p| matches!(p, Pass::Alias(_))) {
        same(&args.read::<T>(0), &once.0)?;
        same(&args.read::<T>(1), &once.1)?;
        same(&args.read::<T>(2), &once.2)?;
        prop_assert_eq!(args.read::<i64>(3), once.3.clone());
    }
    same(&split.0, &once.0)?;
    same(&split.1, &once.1)?;
    same(&split.2, &once.2)?;
    prop_assert_eq!(split.3, once.3);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES / 4, ..config() })]

    #[test]
    fn ftrl_f32_i64(case in ftrl_case(), sparse in any::<bool>()) {
        run_ftrl::<f32, i64>(tf_swap_ftrl_swap_dense_f32, tf_swap_ftrl_swap_sparse_f32_i64, &case, sparse)?;
    }

    #[test]
    fn ftrl_f32_i32(case in ftrl_case(), sparse in any::<bool>()) {
        run_ftrl::<f32, i32>(tf_swap_ftrl_swap_dense_f32, tf_swap_ftrl_swap_sparse_f32_i32, &case, sparse)?;
    }

    #[test]
    fn ftrl_f64_i64(case in ftrl_case(), sparse in any::<bool>()) {
        run_ftrl::<f64, i64>(tf_swap_ftrl_swap_dense_f64, tf_swap_ftrl_swap_sparse_f64_i64, &case, sparse)?;
    }

    #[test]
    fn ftrl_f64_i32(case in ftrl_case(), sparse in any::<bool>()) {
        run_ftrl::<f64, i32>(tf_swap_ftrl_swap_dense_f64, tf_swap_ftrl_swap_sparse_f64_i32, &case, sparse)?;
    }
}

// ---- Index checks and duplicate sums ----

type CheckIndices<I> =
    unsafe extern "C" fn(*const I, usize, usize, *mut bool, *mut TfSwapError) -> u32;

fn run_check_indices<I: Index>(
    f: CheckIndices<I>,
    rows: usize,
    values: &[i64],
    how: Pass,
    out_null: bool,
) -> Result<(), TestCaseError> {
    let indices: Vec<I> = values.iter().map(|&i| I::from_i64(i)).collect();
    let how = if matches!(how, Pass::Alias(_)) {
        Pass::Own
    } else {
        how
    };
    let mut args = Args::new(vec![buffer(&indices, false, how)]);
    let mut faults = args.faults();
    if values.iter().any(|&i| i < 0 || i >= rows as i64) && faults.is_empty() {
        faults.push(TfSwapStatus::IndexOutOfRange);
    }
    if out_null {
        faults.push(TfSwapStatus::NullPointer);
    }
    let before = args.storage.clone();
    let mut repeated = false;
    let out: *mut bool = if out_null {
        std::ptr::null_mut()
    } else {
        &mut repeated
    };
    let mut error = error_slot();
    // SAFETY: `indices` holds `values.len()` elements or is refused; `out`
    // is NULL or a live bool.
    let status = unsafe { f(args.ptr(0), values.len(), rows, out, &mut error) };
    if check_outcome(status, &error, &faults, &before, &args)? {
        let mut seen = std::collections::BTreeSet::new();
        let dup = values.iter().any(|v| !seen.insert(*v));
        prop_assert_eq!(repeated, dup);
    }
    Ok(())
}

type SumDuplicates<T, I> = unsafe extern "C" fn(
    *mut i64,
    *mut T,
    *mut usize,
    *const I,
    *const T,
    usize,
    usize,
    *mut TfSwapError,
) -> u32;

fn run_sum_duplicates<T: Float, I: Index>(
    f: SumDuplicates<T, I>,
    values: &[i64],
    inner: usize,
    grads: &[f64],
    passes: &[Pass],
) -> Result<(), TestCaseError> {
    let n = values.len();
    let indices: Vec<I> = values.iter().map(|&i| I::from_i64(i)).collect();
    let grad: Vec<T> = (0..n * inner)
        .map(|k| T::from_f64(grads.get(k).copied().unwrap_or(1.0)))
        .collect();
    let mut args = Args::new(vec![
        buffer(&vec![-7i64; n], true, passes[0]),
        buffer(&vec![T::from_f64(-9.0); n * inner], true, passes[1]),
        buffer(&[usize::MAX], true, passes[2]),
        buffer(&indices, false, passes[3]),
        buffer(&grad, false, passes[4]),
    ]);
    let faults = args.faults();
    let before = args.storage.clone();
    let mut error = error_slot();
    let (p0, p1, p2, p3, p4) = (
        args.ptr(0),
        args.ptr(1),
        args.ptr(2),
        args.ptr(3),
        args.ptr(4),
    );
    // SAFETY: as in `run_dense`.
    let status = unsafe { f(p0, p1, p2, p3, p4, n, inner, &mut error) };
    if !check_outcome(status, &error, &faults, &before, &args)? {
        return Ok(());
    }
    let grad = args.passed::<T>(4);
    let values: Vec<i64> = args
        .passed::<I>(3)
        .into_iter()
        .map(|i| i.to_i64())
        .collect();
    let mut sums: BTreeMap<i64, Vec<T>> = BTreeMap::new();
    for (k, &index) in values.iter().enumerate() {
        let g = &grad[k * inner..(k + 1) * inner];
        match sums.get_mut(&index) {
            Some(sum) => sum.iter_mut().zip(g).for_each(|(s, &x)| *s += x),
            None => {
                sums.insert(index, g.to_vec());
            }
        }
    }
    let count = args.read::<usize>(2)[0];
    prop_assert_eq!(count, sums.len());
    let unique: Vec<i64> = sums.keys().copied().collect();
    prop_assert_eq!(&args.read::<i64>(0)[..count], &unique[..]);
    let summed: Vec<T> = sums.into_values().flatten().collect();
    same(&args.read::<T>(1)[..count * inner], &summed)?;
    Ok(())
}

fn index_values() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(
        prop_oneof![8 => 0i64..12, 1 => -5i64..0, 1 => 12i64..20],
        0..12,
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn check_indices_i64(rows in 0usize..14, values in index_values(), how in pass(),
                         null in prop::bool::weighted(0.05)) {
        run_check_indices::<i64>(tf_swap_check_indices_i64, rows, &values, how, null)?;
    }

    #[test]
    fn check_indices_i32(rows in 0usize..14, values in index_values(), how in pass(),
                         null in prop::bool::weighted(0.05)) {
        run_check_indices::<i32>(tf_swap_check_indices_i32, rows, &values, how, null)?;
    }

    #[test]
    fn sum_duplicates_f32_i64(values in prop::collection::vec(0i64..8, 0..10), inner in 0usize..4,
                              grads in prop::collection::vec(gradient_value(), 40),
                              passes in prop::collection::vec(pass(), 5)) {
        run_sum_duplicates::<f32, i64>(tf_swap_sum_duplicates_f32_i64, &values, inner, &grads, &passes)?;
    }

    #[test]
    fn sum_duplicates_f32_i32(values in prop::collection::vec(0i64..8, 0..10), inner in 0usize..4,
                              grads in prop::collection::vec(gradient_value(), 40),
                              passes in prop::collection::vec(pass(), 5)) {
        run_sum_duplicates::<f32, i32>(tf_swap_sum_duplicates_f32_i32, &values, inner, &grads, &passes)?;
    }

    #[test]
    fn sum_duplicates_f64_i64(values in prop::collection::vec(0i64..8, 0..10), inner in 0usize..4,
                              grads in prop::collection::vec(gradient_value(), 40),
                              passes in prop::collection::vec(pass(), 5)) {
        run_sum_duplicates::<f64, i64>(tf_swap_sum_duplicates_f64_i64, &values, inner, &grads, &passes)?;
    }

    #[test]
    fn sum_duplicates_f64_i32(values in prop::collection::vec(0i64..8, 0..10), inner in 0usize..4,
                              grads in prop::collection::vec(gradient_value(), 40),
                              passes in prop::collection::vec(pass(), 5)) {
        run_sum_duplicates::<f64, i32>(tf_swap_sum_duplicates_f64_i32, &values, inner, &grads, &passes)?;
    }

    #[test]
    fn block_rows_tile_the_rows(rows in 0usize..10_000, parts in 1usize..70) {
        let mut next = 0;
        let mut error = error_slot();
        for part in 0..parts {
            let (mut begin, mut end) = (usize::MAX, usize::MAX);
            // SAFETY: two live usizes and a live error slot.
            let status =
                unsafe { tf_swap_block_rows(&mut begin, &mut end, rows, parts, part, &mut error) };
            prop_assert_eq!(status, 0);
            prop_assert_eq!(begin, next);
            prop_assert!(end >= begin && end - begin <= rows / parts + 1);
            next = end;
        }
        prop_assert_eq!(next, rows);
        // NULL outputs are refused, not written.
        let mut end = 3usize;
        // SAFETY: NULL is allowed (and refused).
        let status =
            unsafe { tf_swap_block_rows(std::ptr::null_mut(), &mut end, rows, parts, 0, &mut error) };
        prop_assert_eq!(status, TfSwapStatus::NullPointer as u32);
        prop_assert_eq!(end, 3);
    }

    #[test]
    fn partition_count_is_a_usable_thread_count(elements in 0usize..(1 << 24), threads in 0usize..64) {
        let mut count = 0usize;
        let mut error = error_slot();
        // SAFETY: live outputs.
        let status = unsafe { tf_swap_partition_count(&mut count, elements, threads, &mut error) };
        prop_assert_eq!(status, 0);
        prop_assert!(count >= 1 && count <= threads.max(1));
    }

    #[test]
    fn every_code_has_a_description(code in any::<u32>()) {
        // SAFETY: any code is accepted.
        let text = unsafe { CStr::from_ptr(tf_swap_status_str(code)) };
        prop_assert!(!text.to_bytes().is_empty());
    }
}

// ---- Local Batch Normalization ----

#[derive(Debug, Clone)]
struct BnCase {
    rows: usize,
    channels: usize,
    values: Vec<f64>,
    passes: Vec<Pass>,
    epsilon: f64,
    range: (usize, usize),
    cuts: Vec<f64>,
}

fn bn_case() -> impl Strategy<Value = BnCase> {
    (
        prop_oneof![6 => 0usize..40, 1 => 9000usize..30000],
        0usize..7,
    )
        .prop_flat_map(|(rows, channels)| {
            (
                Just(rows),
                Just(channels),
                prop::collection::vec(-3.0f64..3.0, 2 * rows * channels + 2 * channels),
                prop::collection::vec(pass(), 8),
                prop_oneof![8 => Just(1e-3), 1 => Just(0.0), 1 => Just(f64::NAN),
                1 => Just(f64::INFINITY), 1 => Just(-1.0)],
                range_in(rows.max(channels)),
                prop::collection::vec(0.0f64..1.0, 0..4),
            )
                .prop_map(|(rows, channels, values, passes, epsilon, range, cuts)| {
                    BnCase {
                        rows,
                        channels,
                        values,
                        passes,
                        epsilon,
                        range,
                        cuts,
                    }
                })
        })
}

/// The inputs of a case as `T`: x, dy, gamma, beta.
fn bn_inputs<T: Float>(c: &BnCase) -> (Vec<T>, Vec<T>, Vec<T>, Vec<T>) {
    let n = c.rows * c.channels;
    let t = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    // A per-channel offset keeps the statistics away from zero.
    let x: Vec<T> = (0..n)
        .map(|k| T::from_f64(c.values[k] + (k % c.channels.max(1)) as f64 * 10.0))
        .collect();
    (
        x,
        t(&c.values[n..2 * n]),
        t(&c.values[2 * n..2 * n + c.channels]),
        t(&c.values[2 * n + c.channels..]),
    )
}

/// Float64 batch normalization of `x` ([rows, channels]): y, mean, inv_std,
/// dx, dgamma, dbeta (SPEC section 3).
#[allow(clippy::type_complexity, reason = "six parallel result vectors")]
fn bn_reference<T: Float>(
    x: &[T],
    dy: &[T],
    gamma: &[T],
    beta: &[T],
    rows: usize,
    channels: usize,
    epsilon: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let at = |v: &[T], r: usize, c: usize| v[r * channels + c].to_f64();
    let n = rows as f64;
    let mut out = (
        vec![0.0; rows * channels],
        vec![0.0; channels],
        vec![0.0; channels],
        vec![0.0; rows * channels],
        vec![0.0; channels],
        vec![0.0; channels],
    );
    for c in 0..channels {
        let mean = (0..rows).map(|r| at(x, r, c)).sum::<f64>() / n;
        let var = (0..rows).map(|r| (at(x, r, c) - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var + epsilon).sqrt();
        let xhat = |r| (at(x, r, c) - mean) * inv;
        let dbeta: f64 = (0..rows).map(|r| at(dy, r, c)).sum();
        let dgamma: f64 = (0..rows).map(|r| at(dy, r, c) * xhat(r)).sum();
        let g = gamma[c].to_f64();
        for r in 0..rows {
            out.0[r * channels + c] = g * xhat(r) + beta[c].to_f64();
            out.3[r * channels + c] = g * inv / n * (n * at(dy, r, c) - dbeta - xhat(r) * dgamma);
        }
        (out.1[c], out.2[c], out.4[c], out.5[c]) = (mean, inv, dgamma, dbeta);
    }
    out
}

fn tolerance<T: Float>() -> f64 {
    if size_of::<T>() == 4 { 2e-4 } else { 1e-9 }
}

type Partials<T> =
    unsafe extern "C" fn(*mut f64, *const T, usize, usize, usize, usize, *mut TfSwapError) -> u32;
type Finish<T> = unsafe extern "C" fn(
    *mut T,
    *mut T,
    *mut T,
    *mut f64,
    *const f64,
    *const T,
    *const T,
    usize,
    usize,
    f64,
    *mut TfSwapError,
) -> u32;
type Normalize<T> = unsafe extern "C" fn(
    *mut T,
    *const T,
    *const f64,
    usize,
    usize,
    usize,
    usize,
    *mut TfSwapError,
) -> u32;
type GradPartials<T> = unsafe extern "C" fn(
    *mut f64,
    *const T,
    *const T,
    *const T,
    usize,
    usize,
    usize,
    usize,
    *mut TfSwapError,
) -> u32;
type GradFinish<T> = unsafe extern "C" fn(
    *mut T,
    *mut T,
    *mut f64,
    *const f64,
    *const T,
    *const T,
    *const T,
    usize,
    usize,
    *mut TfSwapError,
) -> u32;
type GradApply<T> = unsafe extern "C" fn(
    *mut T,
    *const T,
    *const T,
    *const f64,
    usize,
    usize,
    usize,
    usize,
    *mut TfSwapError,
) -> u32;

struct BnExports<T> {
    partials: Partials<T>,
    finish: Finish<T>,
    normalize: Normalize<T>,
    grad_partials: GradPartials<T>,
    grad_finish: GradFinish<T>,
    grad_apply: GradApply<T>,
}

fn blocks_of(rows: usize, channels: usize) -> usize {
    let mut blocks = usize::MAX;
    // SAFETY: a live output; the error may be NULL.
    let status = unsafe {
        tf_swap_local_batch_norm_stat_blocks(&mut blocks, rows, channels, std::ptr::null_mut())
    };
    assert_eq!(status, 0);
    blocks
}

/// Runs the forward (partials over block ranges cut at `cuts`, finish,
/// normalize over row blocks) and the backward the same way, on valid
/// buffers; returns y, mean, inv_std, dx, dgamma, dbeta.
#[allow(clippy::type_complexity, reason = "the pipeline's outputs")]
fn bn_pipeline<T: Float>(
    e: &BnExports<T>,
    c: &BnCase,
    epsilon: f64,
) -> Result<(Vec<T>, Vec<T>, Vec<T>, Vec<T>, Vec<T>, Vec<T>), TestCaseError> {
    let (x, dy, gamma, beta) = bn_inputs::<T>(c);
    let (rows, ch) = (c.rows, c.channels);
    let blocks = blocks_of(rows, ch);
    let zero = T::from_f64(0.0);
    let (mut mean, mut inv, mut var) = (vec![zero; ch], vec![zero; ch], vec![zero; ch]);
    let (mut plan, mut bplan) = (vec![0.0; 3 * ch], vec![0.0; 4 * ch]);
    let (mut fp, mut bp) = (vec![0.0; 2 * ch * blocks], vec![0.0; 3 * ch * blocks]);
    let mut error = error_slot();
    for (b, end) in self::blocks(blocks, &c.cuts) {
        // SAFETY: own buffers of the told lengths; blocks in range.
        let s = unsafe { (e.partials)(fp.as_mut_ptr(), x.as_ptr(), rows, ch, b, end, &mut error) };
        prop_assert_eq!(s, 0, "{}", message(&error)?);
    }
    // SAFETY: as above.
    let s = unsafe {
        (e.finish)(
            mean.as_mut_ptr(),
            inv.as_mut_ptr(),
            var.as_mut_ptr(),
            plan.as_mut_ptr(),
            fp.as_ptr(),
            gamma.as_ptr(),
            beta.as_ptr(),
            rows,
            ch,
            epsilon,
            &mut error,
        )
    };
    prop_assert_eq!(s, 0, "{}", message(&error)?);
    // The variance is the one inv_std was made from.
    for (&v, &i) in var.iter().zip(&inv) {
        let from_inv = 1.0 / (i.to_f64() * i.to_f64()) - epsilon;
        prop_assert!(
            (v.to_f64() - from_inv).abs() <= 1e-3 * (1.0 + v.to_f64().abs()),
            "variance {v:?} vs 1/inv^2 - eps = {from_inv}"
        );
    }
    let mut y = vec![zero; rows * ch];
    for (b, end) in self::blocks(rows, &c.cuts) {
        // SAFETY: as above, rows in range.
        let s = unsafe {
            (e.normalize)(
                y.as_mut_ptr(),
                x.as_ptr(),
                plan.as_ptr(),
                rows,
                ch,
                b,
                end,
                &mut error,
            )
        };
        prop_assert_eq!(s, 0, "{}", message(&error)?);
    }
    for (b, end) in self::blocks(blocks, &c.cuts) {
        // SAFETY: as above.
        let s = unsafe {
            (e.grad_partials)(
                bp.as_mut_ptr(),
                dy.as_ptr(),
                x.as_ptr(),
                mean.as_ptr(),
                rows,
                ch,
                b,
                end,
                &mut error,
            )
        };
        prop_assert_eq!(s, 0, "{}", message(&error)?);
    }
    let (mut dgamma, mut dbeta) = (vec![zero; ch], vec![zero; ch]);
    // SAFETY: as above.
    let s = unsafe {
        (e.grad_finish)(
            dgamma.as_mut_ptr(),
            dbeta.as_mut_ptr(),
            bplan.as_mut_ptr(),
            bp.as_ptr(),
            gamma.as_ptr(),
            mean.as_ptr(),
            inv.as_ptr(),
            rows,
            ch,
            &mut error,
        )
    };
    prop_assert_eq!(s, 0, "{}", message(&error)?);
    let mut dx = vec![zero; rows * ch];
    for (b, end) in self::blocks(rows, &c.cuts) {
        // SAFETY: as above.
        let s = unsafe {
            (e.grad_apply)(
                dx.as_mut_ptr(),
                dy.as_ptr(),
                x.as_ptr(),
                bplan.as_ptr(),
                rows,
                ch,
                b,
                end,
                &mut error,
            )
        };
        prop_assert_eq!(s, 0, "{}", message(&error)?);
    }
    Ok((y, mean, inv, dx, dgamma, dbeta))
}

/// Each BN export with faults injected, then (when the case is valid) the
/// whole pipeline against the float64 reference.
fn run_bn<T: Float>(e: &BnExports<T>, c: &BnCase) -> Result<(), TestCaseError> {
    let (x, dy, gamma, beta) = bn_inputs::<T>(c);
    let (rows, ch) = (c.rows, c.channels);
    let blocks = blocks_of(rows, ch);
    let zero = T::from_f64(0.0);
    let (begin, end) = c.range;
    let bad_blocks = !(begin <= end && end <= blocks);
    let bad_rows = !(begin <= end && end <= rows);
    let bad_epsilon = !(c.epsilon.is_finite() && c.epsilon > 0.0);
    let plan = vec![0.5f64; 3 * ch];
    let bplan = vec![0.25f64; 4 * ch];
    let fp = vec![1.5f64; 2 * ch * blocks];
    let bp = vec![0.75f64; 3 * ch * blocks];
    let p = &c.passes;
    let range = (bad_blocks, TfSwapStatus::InvalidRowRange);
    let row_range = (bad_rows, TfSwapStatus::InvalidRowRange);
    let empty = (rows == 0, TfSwapStatus::EmptyBatch);

    // Forward, phase 1a.
    checked_call(
        vec![
            buffer(&vec![0.0f64; 2 * ch * blocks], true, p[0]),
            buffer(&x, false, p[1]),
        ],
        &[range],
        // SAFETY: as in `run_dense`.
        |a, error| unsafe { (e.partials)(a.ptr(0), a.ptr(1), rows, ch, begin, end, error) },
    )?;
    // Forward, phase 1b.
    checked_call(
        vec![
            buffer(&vec![zero; ch], true, p[2]),
            buffer(&vec![zero; ch], true, p[3]),
            buffer(&vec![zero; ch], true, p[3]),
            buffer(&vec![0.0f64; 3 * ch], true, p[4]),
            buffer(&fp, false, p[5]),
            buffer(&gamma, false, p[6]),
            buffer(&beta, false, p[7]),
        ],
        &[(bad_epsilon, TfSwapStatus::InvalidHyperParameter), empty],
        // SAFETY: as in `run_dense`.
        |a, error| unsafe {
            (e.finish)(
                a.ptr(0),
                a.ptr(1),
                a.ptr(2),
                a.ptr(3),
                a.ptr(4),
                a.ptr(5),
                a.ptr(6),
                rows,
                ch,
                c.epsilon,
                error,
            )
        },
    )?;
    // Forward, phase 2.
    checked_call(
        vec![
            buffer(&vec![zero; rows * ch], true, p[6]),
            buffer(&x, false, p[7]),
            buffer(&plan, false, p[0]),
        ],
        &[row_range],
        // SAFETY: as in `run_dense`.
        |a, error| unsafe {
            (e.normalize)(a.ptr(0), a.ptr(1), a.ptr(2), rows, ch, begin, end, error)
        },
    )?;
    // Backward, phase 1a.
    checked_call(
        vec![
            buffer(&vec![0.0f64; 3 * ch * blocks], true, p[1]),
            buffer(&dy, false, p[2]),
            buffer(&x, false, p[3]),
            buffer(&gamma, false, p[4]),
        ],
        &[range],
        // SAFETY: as in `run_dense`.
        |a, error| unsafe {
            (e.grad_partials)(
                a.ptr(0),
                a.ptr(1),
                a.ptr(2),
                a.ptr(3),
                rows,
                ch,
                begin,
                end,
                error,
            )
        },
    )?;
    // Backward, phase 1b.
    checked_call(
        vec![
            buffer(&vec![zero; ch], true, p[5]),
            buffer(&vec![zero; ch], true, p[6]),
            buffer(&vec![0.0f64; 4 * ch], true, p[7]),
            buffer(&bp, false, p[0]),
            buffer(&gamma, false, p[1]),
            buffer(&beta, false, p[2]),
            buffer(&gamma, false, p[3]),
        ],
        &[empty],
        // SAFETY: as in `run_dense`.
        |a, error| unsafe {
            (e.grad_finish)(
                a.ptr(0),
                a.ptr(1),
                a.ptr(2),
                a.ptr(3),
                a.ptr(4),
                a.ptr(5),
                a.ptr(6),
                rows,
                ch,
                error,
            )
        },
    )?;
    // Backward, phase 2.
    checked_call(
        vec![
            buffer(&vec![zero; rows * ch], true, p[5]),
            buffer(&dy, false, p[6]),
            buffer(&x, false, p[7]),
            buffer(&bplan, false, p[4]),
        ],
        &[row_range],
        // SAFETY: as in `run_dense`.
        |a, error| unsafe {
            (e.grad_apply)(
                a.ptr(0),
                a.ptr(1),
                a.ptr(2),
                a.ptr(3),
                rows,
                ch,
                begin,
                end,
                error,
            )
        },
    )?;

    // The whole pipeline, split at random, against the reference.
    if rows == 0 || ch == 0 {
        return Ok(());
    }
    let epsilon = 1e-3;
    let (y, mean, inv, dx, dgamma, dbeta) = bn_pipeline(e, c, epsilon)?;
    let want = bn_reference(
        &x,
        &dy,
        &gamma,
        &beta,
        rows,
        ch,
        T::from_f64(epsilon).to_f64(),
    );
    let tol = tolerance::<T>();
    close(&y, &want.0, tol)?;
    close(&mean, &want.1, tol)?;
    close(&inv, &want.2, tol)?;
    close(&dx, &want.3, tol * 10.0)?;
    close(&dgamma, &want.4, tol * rows as f64)?;
    close(&dbeta, &want.5, tol * rows as f64)?;
    // And bit for bit the same without splits.
    let whole = BnCase {
        cuts: Vec::new(),
        ..c.clone()
    };
    let again = bn_pipeline(e, &whole, epsilon)?;
    same(&again.0, &y)?;
    same(&again.3, &dx)?;
    same(&again.4, &dgamma)?;
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn local_batch_norm_f32(case in bn_case()) {
        run_bn::<f32>(&BnExports {
            partials: tf_swap_local_batch_norm_partials_f32,
            finish: tf_swap_local_batch_norm_finish_f32,
            normalize: tf_swap_local_batch_norm_normalize_f32,
            grad_partials: tf_swap_local_batch_norm_grad_partials_f32,
            grad_finish: tf_swap_local_batch_norm_grad_finish_f32,
            grad_apply: tf_swap_local_batch_norm_grad_apply_f32,
        }, &case)?;
    }

    #[test]
    fn local_batch_norm_f64(case in bn_case()) {
        run_bn::<f64>(&BnExports {
            partials: tf_swap_local_batch_norm_partials_f64,
            finish: tf_swap_local_batch_norm_finish_f64,
            normalize: tf_swap_local_batch_norm_normalize_f64,
            grad_partials: tf_swap_local_batch_norm_grad_partials_f64,
            grad_finish: tf_swap_local_batch_norm_grad_finish_f64,
            grad_apply: tf_swap_local_batch_norm_grad_apply_f64,
        }, &case)?;
    }
}
