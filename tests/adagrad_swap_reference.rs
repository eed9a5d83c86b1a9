//! The Adagrad-SWAP kernels against a scalar reference written straight from
//! SPEC section 1, compared bit for bit over random shapes, hyper-parameters
//! and step sequences, and over every way of cutting the rows into blocks
//! and threads (SPEC: "the result never depends on threading"), for the
//! baseline build of the kernels and the widest one the CPU runs.

mod common;

use common::swap_reference::{Params, State, reference_dense, reference_sparse};
use common::{Float, Index, Rng, assert_same_floats};
use tf_swap::kernels::adagrad_swap::{
    AdagradSwapPlan, EpsilonPlacement, apply_dense, apply_dense_baseline, apply_sparse,
    apply_sparse_baseline,
};
use tf_swap::kernels::discount::DecayMode;
use tf_swap::kernels::partition::block_rows;
use tf_swap::kernels::sparse_rows::{RowIndex, check_indices, sum_duplicates};

/// Rows `[first_row, ..)` of a state, as one shard of the op sees them.
struct Block<'a, T> {
    first_row: usize,
    var: &'a mut [T],
    acc: &'a mut [T],
    power: &'a mut [i64],
}

/// Cuts the state with `block_rows`, checking that the blocks tile it.
fn split_blocks<T>(s: &mut State<T>, parts: usize) -> Vec<Block<'_, T>> {
    let (rows, inner) = (s.power.len(), s.inner);
    let (mut var, mut acc, mut power) = (&mut s.var[..], &mut s.acc[..], &mut s.power[..]);
    let mut blocks = Vec::with_capacity(parts);
    let mut next = 0;
    for part in 0..parts {
        let (begin, end) = block_rows(rows, parts, part);
        assert_eq!(
            begin, next,
            "block {part} of {parts} over {rows} rows leaves a gap"
        );
        assert!(
            end >= begin,
            "block {part} of {parts} over {rows} rows is reversed"
        );
        next = end;
        let (v, rest) = std::mem::take(&mut var).split_at_mut((end - begin) * inner);
        var = rest;
        let (a, rest) = std::mem::take(&mut acc).split_at_mut((end - begin) * inner);
        acc = rest;
        let (p, rest) = std::mem::take(&mut power).split_at_mut(end - begin);
        power = rest;
        blocks.push(Block {
            first_row: begin,
            var: v,
            acc: a,
            power: p,
        });
    }
    assert_eq!(next, rows, "{parts} blocks do not cover {rows} rows");
    blocks
}

/// Runs `apply` on every block, round-robin over `threads` OS threads.
fn run_blocks<T: Send, F>(blocks: Vec<Block<'_, T>>, threads: usize, apply: F)
where
    F: Fn(Block<'_, T>) + Sync,
{
    if threads <= 1 {
        blocks.into_iter().for_each(&apply);
        return;
    }
    let mut queues: Vec<Vec<Block<'_, T>>> = (0..threads).map(|_| Vec::new()).collect();
    for (k, block) in blocks.into_iter().enumerate() {
        queues[k % threads].push(block);
    }
    let apply = &apply;
    std::thread::scope(|scope| {
        for queue in queues.into_iter().filter(|q| !q.is_empty()) {
            scope.spawn(move || queue.into_iter().for_each(apply));
        }
    });
}

/// How one apply is run: rows cut into `blocks`, run round-robin on
/// `threads`, by the baseline build or the widest one the CPU runs (what
/// the FFI calls).
#[derive(Clone, Copy, Debug)]
struct Layout {
    blocks: usize,
    threads: usize,
    wide: bool,
}

const fn layout(blocks: usize, threads: usize, wide: bool) -> Layout {
    Layout {
        blocks,
        threads,
        wide,
    }
}

/// Every kernel result must be identical under each of these.
const LAYOUTS: [Layout; 8] = [
    layout(1, 1, false),
    layout(2, 1, false),
    layout(8, 1, false),
    layout(2, 2, false),
    layout(8, 2, false),
    layout(8, 8, false),
    layout(1, 1, true),
    layout(8, 2, true),
];

fn kernel_dense<T: Float>(s: &mut State<T>, grad: &[T], h: &AdagradSwapPlan, layout: Layout) {
    let (inner, total) = (s.inner, s.rows());
    let apply = if layout.wide {
        apply_dense
    } else {
        apply_dense_baseline
    };
    run_blocks(split_blocks(s, layout.blocks), layout.threads, |b| {
        let rows = b.first_row * inner..(b.first_row + b.power.len()) * inner;
        apply(
            b.var,
            b.acc,
            b.power,
            &grad[rows],
            inner,
            b.first_row,
            total,
            h,
        )
        .expect("valid dense apply");
    });
}

/// The op's sparse path: check, sum duplicates if any, apply per block.
fn kernel_sparse<T: Float, I: Index>(
    s: &mut State<T>,
    grad: &[T],
    indices: &[I],
    h: &AdagradSwapPlan,
    layout: Layout,
) {
    let (n, inner) = (indices.len(), s.inner);
    let repeated = check_indices(indices, s.rows()).expect("generated indices are in range");
    let naive = (0..n).any(|i| (0..i).any(|j| indices[i].to_i64() == indices[j].to_i64()));
    assert_eq!(
        repeated, naive,
        "check_indices duplicate flag for {indices:?}"
    );
    if !repeated {
        return apply_blocks(s, grad, indices, h, layout);
    }
    let mut unique = vec![-1i64; n];
    let mut summed = vec![T::ZERO; n * inner];
    let count = sum_duplicates(indices, grad, inner, &mut unique, &mut summed).expect("sum");
    assert!(
        unique[..count].windows(2).all(|w| w[0] < w[1]),
        "unique rows not ascending and distinct: {:?}",
        &unique[..count]
    );
    apply_blocks(s, &summed[..count * inner], &unique[..count], h, layout);
}

fn apply_blocks<T: Float, J: RowIndex>(
    s: &mut State<T>,
    grad: &[T],
    indices: &[J],
    h: &AdagradSwapPlan,
    layout: Layout,
) {
    let inner = s.inner;
    let apply = if layout.wide {
        apply_sparse
    } else {
        apply_sparse_baseline
    };
    run_blocks(split_blocks(s, layout.blocks), layout.threads, |b| {
        apply(b.var, b.acc, b.power, b.first_row, grad, indices, inner, h)
            .expect("valid sparse apply");
    });
}

fn random_params<T: Float>(rng: &mut Rng, a0: T) -> Params<T> {
    let t = T::from_f64;
    let rho = match rng.below(10) {
        0 | 1 => 1.0,
        // Strong decay drives accumulators under the floor.
        2 | 3 => rng.uniform(1e-3, 0.1),
        _ => rng.uniform(0.1, 1.0),
    };
    let floor = match rng.below(4) {
        0 => 0.0,
        1 => a0.to_f64(),
        2 => rng.uniform(0.0, 2.0 * a0.to_f64()),
        // Above anything a decay produces: every decay hits the floor.
        _ => rng.uniform(1.0, 10.0),
    };
    let some_eps = rng.uniform(0.0, 0.1);
    Params {
        lr: t(if rng.chance(0.05) {
            0.0
        } else {
            rng.uniform(1e-3, 1.0)
        }),
        eps: t(rng.pick(&[0.0, 1e-7, 1e-3, some_eps])),
        rho: t(rho),
        floor: t(floor),
        period: match rng.below(8) {
            0 => 1,
            1 => rng.range(7, 50),
            _ => rng.range(2, 6),
        },
        mode: rng.pick(&[DecayMode::Exact, DecayMode::OncePerUpdate]),
        placement: rng.pick(&[EpsilonPlacement::AfterSqrt, EpsilonPlacement::InsideSqrt]),
    }
}

fn random_state<T: Float>(rng: &mut Rng, a0: T) -> State<T> {
    let rows = if rng.chance(0.08) {
        0
    } else {
        rng.range(1, 49) as usize
    };
    let inner = match rng.below(10) {
        0 => 0,
        1..=3 => 1,
        _ => rng.range(2, 19) as usize,
    };
    let n = rows * inner;
    // Mostly a fresh slot; sometimes a restored one with uneven state.
    let restored = rng.chance(0.3);
    let acc = (0..n)
        .map(|_| {
            if restored {
                T::from_f64(rng.uniform(0.0, 3.0))
            } else {
                a0
            }
        })
        .collect();
    let power = (0..rows)
        .map(|_| if restored { rng.range(0, 3) } else { 0 })
        .collect();
    State {
        var: (0..n)
            .map(|_| T::from_f64(rng.uniform(-1.0, 1.0)))
            .collect(),
        acc,
        power,
        inner,
    }
}

/// Next step: usually forward, sometimes by several periods at once,
/// sometimes backwards (a late worker), sometimes repeated.
fn next_step(rng: &mut Rng, t: i64, period: i64) -> i64 {
    match rng.below(20) {
        0..=8 => t + 1,
        9..=12 => t + rng.range(1, period),
        13..=15 => t + period * rng.range(2, 5) + rng.range(0, period - 1),
        16..=18 => rng.range(1, t),
        _ => t,
    }
}

fn random_grad<T: Float>(rng: &mut Rng, rows: usize, inner: usize, poison: bool) -> Vec<T> {
    let mut grad = Vec::with_capacity(rows * inner);
    for _ in 0..rows {
        let zero_row = rng.chance(0.1);
        for _ in 0..inner {
            grad.push(T::from_f64(if zero_row {
                0.0
            } else {
                rng.uniform(-2.0, 2.0)
            }));
        }
    }
    if poison && !grad.is_empty() && rng.chance(0.2) {
        let k = rng.below(grad.len() as u64) as usize;
        grad[k] = T::from_f64(rng.pick(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY]));
    }
    grad
}

fn random_indices(rng: &mut Rng, rows: usize) -> Vec<i64> {
    if rows == 0 {
        return Vec::new();
    }
    let rows = rows as i64;
    match rng.below(3) {
        // Distinct: the path without sum_duplicates.
        0 => {
            let mut all: Vec<i64> = (0..rows).collect();
            for i in (1..all.len()).rev() {
                all.swap(i, rng.below(i as u64 + 1) as usize);
            }
            all.truncate(rng.range(0, rows) as usize);
            all
        }
        1 => (0..rng.range(0, 2 * rows))
            .map(|_| rng.range(0, rows - 1))
            .collect(),
        // A few hot rows, each repeated many times.
        _ => {
            let hot: Vec<i64> = (0..3).map(|_| rng.range(0, rows - 1)).collect();
            (0..rng.range(1, 40)).map(|_| rng.pick(&hot)).collect()
        }
    }
}

const CASES: u64 = 150;

/// One random case: a state and a step sequence, applied by the reference
/// and by the kernel under every layout, compared after every step.
fn check_case<T: Float, I: Index>(seed: u64, sparse: bool) {
    let mut rng = Rng::new(seed);
    let a0 = T::from_f64(rng.uniform(0.01, 1.0));
    let h = random_params::<T>(&mut rng, a0);
    let mut want = random_state::<T>(&mut rng, a0);
    // Spawning threads dominates the run time, so one case in three gets the
    // threaded layouts.
    let layouts: Vec<Layout> = LAYOUTS
        .into_iter()
        .filter(|l| l.threads == 1 || seed.is_multiple_of(3))
        .collect();
    let mut got: Vec<State<T>> = layouts.iter().map(|_| want.clone()).collect();
    let (rows, inner) = (want.rows(), want.inner);
    let poison = rng.chance(0.05);
    let mut t = rng.range(1, 2 * h.period);
    for step in 0..rng.range(1, 24) {
        let hyper = h.hyper(t);
        let indices = if sparse {
            random_indices(&mut rng, rows)
        } else {
            Vec::new()
        };
        let grad_rows = if sparse { indices.len() } else { rows };
        let grad = random_grad::<T>(&mut rng, grad_rows, inner, poison);
        if sparse {
            reference_sparse(&mut want, &grad, &indices, t, &h);
        } else {
            reference_dense(&mut want, &grad, t, &h);
        }
        let typed: Vec<I> = indices.iter().map(|&i| I::from_i64(i)).collect();
        for (state, &layout) in got.iter_mut().zip(&layouts) {
            if sparse {
                kernel_sparse(state, &grad, &typed, &hyper, layout);
            } else {
                kernel_dense(state, &grad, &hyper, layout);
            }
            let context = format!(
                "{} {} seed {seed} step #{step} t={t} rows={rows} inner={inner} \
                 layout {layout:?} {h:?} indices {indices:?}",
                T::NAME,
                if sparse { I::NAME } else { "dense" },
            );
            state.assert_same(&want, &context);
        }
        t = next_step(&mut rng, t, h.period);
    }
}

fn check_cases<T: Float, I: Index>(salt: u64, sparse: bool) {
    for case in 0..CASES {
        check_case::<T, I>(salt.wrapping_mul(1_000_003) + case, sparse);
    }
}

#[test]
fn dense_f32_matches_reference() {
    check_cases::<f32, i64>(1, false);
}

#[test]
fn dense_f64_matches_reference() {
    check_cases::<f64, i64>(2, false);
}

#[test]
fn sparse_f32_i32_matches_reference() {
    check_cases::<f32, i32>(3, true);
}

#[test]
fn sparse_f32_i64_matches_reference() {
    check_cases::<f32, i64>(4, true);
}

#[test]
fn sparse_f64_i32_matches_reference() {
    check_cases::<f64, i32>(5, true);
}

#[test]
fn sparse_f64_i64_matches_reference() {
    check_cases::<f64, i64>(6, true);
}

fn one_row_params(rho: f64, period: i64, mode: DecayMode) -> Params<f64> {
    Params {
        lr: 0.1,
        eps: 0.0,
        rho,
        floor: 0.0,
        period,
        mode,
        placement: EpsilonPlacement::AfterSqrt,
    }
}

/// One-row dense apply; returns (acc, power).
fn step_one_row(acc: f64, power: i64, g: f64, t: i64, h: &Params<f64>) -> (f64, i64) {
    let (mut var, mut acc, mut power) = ([0.0], [acc], [power]);
    apply_dense(&mut var, &mut acc, &mut power, &[g], 1, 0, 1, &h.hyper(t)).expect("apply");
    (acc[0], power[0])
}

#[test]
fn exact_mode_decays_missed_periods_at_once() {
    let h = one_row_params(0.5, 10, DecayMode::Exact);
    // t = 35: 3 periods completed, none applied yet.
    assert_eq!(step_one_row(1.0, 0, 0.0, 35, &h), (0.125, 3));
    // First decay on update number T, not before.
    assert_eq!(step_one_row(1.0, 0, 0.0, 9, &h), (1.0, 0));
    assert_eq!(step_one_row(1.0, 0, 0.0, 10, &h), (0.5, 1));
}

#[test]
fn once_per_update_mode_catches_up_one_period_per_update() {
    let h = one_row_params(0.5, 10, DecayMode::OncePerUpdate);
    let mut state = (1.0, 0);
    let mut seen = Vec::new();
    for _ in 0..4 {
        state = step_one_row(state.0, state.1, 0.0, 35, &h);
        seen.push(state);
    }
    assert_eq!(seen, [(0.5, 1), (0.25, 2), (0.125, 3), (0.125, 3)]);
}

#[test]
fn late_step_never_undecays() {
    let h = one_row_params(0.5, 10, DecayMode::Exact);
    assert_eq!(step_one_row(0.25, 5, 0.0, 12, &h), (0.25, 5));
    assert_eq!(step_one_row(0.25, 5, 3.0, 12, &h), (9.25, 5));
}

#[test]
fn floor_bounds_a_decayed_accumulator() {
    let mut h = one_row_params(0.5, 1, DecayMode::Exact);
    h.floor = 0.3;
    assert_eq!(step_one_row(1.0, 0, 0.0, 2, &h), (0.3, 2));
    // The floor bounds only the decay; g*g is added on top.
    assert_eq!(step_one_row(1.0, 0, 1.0, 2, &h), (0.3 + 1.0, 2));
}

#[test]
fn nan_accumulator_is_not_replaced_by_the_floor() {
    let mut h = one_row_params(0.5, 1, DecayMode::Exact);
    h.floor = 0.3;
    let (acc, power) = step_one_row(f64::NAN, 0, 0.0, 3, &h);
    assert!(acc.is_nan(), "a NaN accumulator became {acc}");
    assert_eq!(power, 3);
}

#[test]
fn step_far_past_the_last_decay_zeroes_down_to_the_floor() {
    let mut h = one_row_params(0.8, 1, DecayMode::Exact);
    h.floor = 0.01;
    assert_eq!(step_one_row(5.0, 0, 0.0, i64::MAX, &h), (0.01, i64::MAX));
    h.floor = 0.0;
    assert_eq!(step_one_row(5.0, 0, 0.0, i64::MAX, &h), (0.0, i64::MAX));
}

/// `rho = 1` is `ApplyAdagradV2`: the same float operations as TF's
/// functor, `acc += g*g; var -= lr*g / (sqrt(acc) + eps)` reordered as the
/// kernel documents (`g * lr`), across period boundaries.
#[test]
fn rho_one_is_plain_adagrad() {
    let mut rng = Rng::new(77);
    for placement in [EpsilonPlacement::AfterSqrt, EpsilonPlacement::InsideSqrt] {
        let (rows, inner) = (7, 5);
        let h = Params::<f32> {
            lr: 0.05,
            eps: 1e-7,
            rho: 1.0,
            floor: 0.1,
            period: 3,
            mode: DecayMode::Exact,
            placement,
        };
        let mut var: Vec<f32> = (0..rows * inner)
            .map(|_| rng.uniform(-1.0, 1.0) as f32)
            .collect();
        let mut acc = vec![0.1f32; rows * inner];
        let mut power = vec![0i64; rows];
        let (mut plain_var, mut plain_acc) = (var.clone(), acc.clone());
        for t in 1..20 {
            let grad: Vec<f32> = (0..rows * inner)
                .map(|_| rng.uniform(-2.0, 2.0) as f32)
                .collect();
            let rows = power.len();
            apply_dense(
                &mut var,
                &mut acc,
                &mut power,
                &grad,
                inner,
                0,
                rows,
                &h.hyper(t),
            )
            .expect("apply");
            for ((w, a), &g) in plain_var.iter_mut().zip(&mut plain_acc).zip(&grad) {
                *a += g * g;
                *w -= g * h.lr
                    / match placement {
                        EpsilonPlacement::AfterSqrt => a.sqrt() + h.eps,
                        EpsilonPlacement::InsideSqrt => (*a + h.eps).sqrt(),
                    };
            }
            let context = format!("{placement:?} t={t}");
            assert_same_floats("var", &var, &plain_var, &context);
            assert_same_floats("acc", &acc, &plain_acc, &context);
        }
    }
}
