//! The FTRL-SWAP kernels against SPEC section 4 written out plainly in
//! float64, over random shapes, hyper-parameters and step sequences; the
//! SWAP properties (a discount changes no weight, lazy catch-up, staleness
//! scales the step); validation; and results independent of how rows are
//! cut into blocks or which instruction set runs.

mod common;

use common::Rng;
use tf_swap::kernels::KernelError;
use tf_swap::kernels::discount::{DecayMode, DiscountArgs};
use tf_swap::kernels::ftrl_swap::{
    FtrlSwapArgs, FtrlSwapPlan, apply_dense, apply_dense_baseline, apply_sparse,
    apply_sparse_baseline,
};

#[derive(Clone, Copy, Debug)]
struct Hyper {
    lr: f64,
    l1: f64,
    l2: f64,
    l2_shrinkage: f64,
    lr_power: f64,
    beta: f64,
    scale: f64,
    rho: f64,
    floor: f64,
    period: i64,
    mode: DecayMode,
}

impl Hyper {
    fn plan(&self, step: i64) -> FtrlSwapPlan {
        FtrlSwapPlan::new(&FtrlSwapArgs {
            learning_rate: self.lr,
            l1: self.l1,
            l2: self.l2,
            l2_shrinkage: self.l2_shrinkage,
            lr_power: self.lr_power,
            beta: self.beta,
            staleness_scale: self.scale,
            discount: DiscountArgs {
                decay_rate: self.rho,
                accumulator_floor: self.floor,
                step,
                decay_period: self.period,
                decay_mode: self.mode,
            },
        })
        .expect("valid hyper-parameters")
    }
}

#[derive(Clone, Debug)]
struct State {
    w: Vec<f64>,
    n: Vec<f64>,
    z: Vec<f64>,
    power: Vec<i64>,
    inner: usize,
}

/// SPEC section 4, one row, in float64.
fn reference_row(s: &mut State, r: usize, g: &[f64], t: i64, h: &Hyper) {
    let p = h.lr_power;
    let l2 = h.l2 + h.beta / (2.0 * h.lr);
    let d = |n: f64| n.powf(-p) / h.lr + 2.0 * l2;
    let q = t / h.period;
    let span = r * s.inner..(r + 1) * s.inner;
    if q > s.power[r] {
        let m = match h.mode {
            DecayMode::Exact => q - s.power[r],
            DecayMode::OncePerUpdate => 1,
        };
        if h.rho < 1.0 {
            for k in span.clone() {
                s.n[k] = (s.n[k] * h.rho.powf(m as f64)).max(h.floor);
                let w = s.w[k];
                if w != 0.0 {
                    s.z[k] = -w * d(s.n[k]) - w.signum() * h.l1;
                } else {
                    s.z[k] *= h.rho.powf(-p * m as f64);
                }
            }
        }
        s.power[r] = match h.mode {
            DecayMode::Exact => q,
            DecayMode::OncePerUpdate => s.power[r] + 1,
        };
    }
    for (k, &g) in span.zip(g) {
        let w = s.w[k];
        let g_s = g + 2.0 * h.l2_shrinkage * w;
        let n_new = s.n[k] + g * g;
        let sigma = (n_new.powf(-p) - s.n[k].powf(-p)) / h.lr;
        s.z[k] += h.scale * g_s - sigma * w;
        s.w[k] = (s.z[k].clamp(-h.l1, h.l1) - s.z[k]) / d(n_new);
        s.n[k] = n_new;
    }
}

fn random_hyper(rng: &mut Rng) -> Hyper {
    Hyper {
        lr: rng.uniform(0.01, 0.5),
        l1: if rng.chance(0.5) {
            0.0
        } else {
            rng.uniform(0.0, 0.05)
        },
        l2: if rng.chance(0.5) {
            0.0
        } else {
            rng.uniform(0.0, 0.1)
        },
        l2_shrinkage: if rng.chance(0.5) {
            0.0
        } else {
            rng.uniform(0.0, 0.05)
        },
        lr_power: rng.pick(&[-0.5, -0.7, -0.3, 0.0, -1.0]),
        beta: if rng.chance(0.7) {
            0.0
        } else {
            rng.uniform(0.0, 0.5)
        },
        scale: if rng.chance(0.5) {
            1.0
        } else {
            rng.uniform(0.1, 1.0)
        },
        rho: rng.pick(&[1.0, 0.8, 0.5, 0.05]),
        floor: rng.pick(&[0.0, 0.01, 0.1]),
        period: rng.range(1, 6),
        mode: if rng.chance(0.8) {
            DecayMode::Exact
        } else {
            DecayMode::OncePerUpdate
        },
    }
}

fn random_state(rng: &mut Rng, rows: usize, inner: usize) -> State {
    let n = rows * inner;
    State {
        w: (0..n).map(|_| rng.uniform(-0.2, 0.2)).collect(),
        n: (0..n).map(|_| rng.uniform(0.05, 1.0)).collect(),
        z: (0..n).map(|_| rng.uniform(-0.2, 0.2)).collect(),
        power: vec![0; rows],
        inner,
    }
}

fn close(what: &str, got: &[f64], want: &[f64], context: &str) {
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-9 * (1.0 + w.abs()),
            "{what}[{k}]: {g} vs reference {w} ({context})"
        );
    }
}

fn kernel_dense(s: &mut State, grad: &[f64], plan: &FtrlSwapPlan, blocks: usize, wide: bool) {
    let (rows, inner) = (s.power.len(), s.inner);
    let apply = if wide {
        apply_dense::<f64>
    } else {
        apply_dense_baseline::<f64>
    };
    let mut begin = 0;
    for part in 0..blocks {
        let end = rows * (part + 1) / blocks;
        let span = begin * inner..end * inner;
        apply(
            &mut s.w[span.clone()],
            &mut s.n[span.clone()],
            &mut s.z[span.clone()],
            &mut s.power[begin..end],
            &grad[span],
            inner,
            begin,
            rows,
            plan,
        )
        .expect("valid dense apply");
        begin = end;
    }
}

fn kernel_sparse(
    s: &mut State,
    grad: &[f64],
    indices: &[i64],
    plan: &FtrlSwapPlan,
    blocks: usize,
    wide: bool,
) {
    let (rows, inner) = (s.power.len(), s.inner);
    let apply = if wide {
        apply_sparse::<f64, i64>
    } else {
        apply_sparse_baseline::<f64, i64>
    };
    let mut begin = 0;
    for part in 0..blocks {
        let end = rows * (part + 1) / blocks;
        let span = begin * inner..end * inner;
        apply(
            &mut s.w[span.clone()],
            &mut s.n[span.clone()],
            &mut s.z[span],
            &mut s.power[begin..end],
            begin,
            grad,
            indices,
            inner,
            plan,
        )
        .expect("valid sparse apply");
        begin = end;
    }
}

#[test]
fn kernels_follow_the_spec_and_ignore_the_split() {
    let mut rng = Rng::new(20_261_201);
    for case in 0..300 {
        let (rows, inner) = (rng.range(1, 9) as usize, rng.range(1, 20) as usize);
        let h = random_hyper(&mut rng);
        let start = random_state(&mut rng, rows, inner);
        let (mut want, mut got) = (start.clone(), start.clone());
        let mut split = start.clone();
        let sparse = rng.chance(0.5);
        let mut t = 0;
        for _ in 0..6 {
            t += rng.range(1, 2 * h.period.max(1));
            let context = format!("case {case} {h:?} t={t} sparse={sparse}");
            let plan = h.plan(t);
            if sparse {
                let mut indices: Vec<i64> = (0..rows as i64).filter(|_| rng.chance(0.5)).collect();
                if indices.is_empty() {
                    indices.push(0);
                }
                let grad: Vec<f64> = (0..indices.len() * inner)
                    .map(|_| rng.uniform(-2.0, 2.0))
                    .collect();
                for (k, &r) in indices.iter().enumerate() {
                    reference_row(
                        &mut want,
                        r as usize,
                        &grad[k * inner..(k + 1) * inner],
                        t,
                        &h,
                    );
                }
                kernel_sparse(&mut got, &grad, &indices, &plan, 1, false);
                kernel_sparse(&mut split, &grad, &indices, &plan, rows.min(3), true);
            } else {
                let grad: Vec<f64> = (0..rows * inner).map(|_| rng.uniform(-2.0, 2.0)).collect();
                for r in 0..rows {
                    reference_row(&mut want, r, &grad[r * inner..(r + 1) * inner], t, &h);
                }
                kernel_dense(&mut got, &grad, &plan, 1, false);
                kernel_dense(&mut split, &grad, &plan, rows.min(3), true);
            }
            close("w", &got.w, &want.w, &context);
            close("n", &got.n, &want.n, &context);
            close("z", &got.z, &want.z, &context);
            assert_eq!(got.power, want.power, "power ({context})");
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&split.w), bits(&got.w), "split w ({context})");
            assert_eq!(bits(&split.n), bits(&got.n), "split n ({context})");
            assert_eq!(bits(&split.z), bits(&got.z), "split z ({context})");
        }
    }
}

#[test]
fn a_discount_changes_no_weight() {
    let mut rng = Rng::new(7);
    for _ in 0..50 {
        let mut h = random_hyper(&mut rng);
        (h.rho, h.l2_shrinkage, h.mode) = (0.5, 0.0, DecayMode::Exact);
        let mut s = random_state(&mut rng, 4, 5);
        let g: Vec<f64> = (0..20).map(|_| rng.uniform(-1.0, 1.0)).collect();
        kernel_dense(&mut s, &g, &h.plan(1), 1, true);
        let before = s.w.clone();
        // A zero gradient at the step that crosses periods: only the discount.
        kernel_dense(&mut s, &[0.0; 20], &h.plan(3 * h.period), 1, true);
        assert!(s.power.iter().all(|&p| p == 3));
        for (&a, &b) in s.w.iter().zip(&before) {
            assert!(
                (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                "{a} != {b} ({h:?})"
            );
        }
    }
}

#[test]
fn staleness_scales_the_step_without_regularization() {
    let mut rng = Rng::new(9);
    let mut h = random_hyper(&mut rng);
    (h.l1, h.l2, h.l2_shrinkage, h.beta, h.lr_power) = (0.0, 0.0, 0.0, 0.0, -0.5);
    (h.rho, h.scale) = (1.0, 1.0);
    let mut start = random_state(&mut rng, 3, 4);
    // z consistent with w: w = -z lr / sqrt(n).
    for k in 0..12 {
        start.z[k] = -start.w[k] * start.n[k].sqrt() / h.lr;
    }
    let g: Vec<f64> = (0..12).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let mut fresh = start.clone();
    kernel_dense(&mut fresh, &g, &h.plan(1), 1, true);
    for scale in [0.5, 0.25, 0.1] {
        let mut stale = start.clone();
        kernel_dense(&mut stale, &g, &Hyper { scale, ..h }.plan(1), 1, true);
        for k in 0..12 {
            let (moved, unscaled) = (stale.w[k] - start.w[k], fresh.w[k] - start.w[k]);
            assert!(
                (moved - scale * unscaled).abs() <= 1e-12,
                "{moved} vs {scale} x {unscaled}"
            );
        }
        assert_eq!(stale.n, fresh.n, "the accumulator is not scaled");
    }
}

#[test]
fn each_bad_hyper_parameter_is_rejected_by_name() {
    let valid = FtrlSwapArgs {
        learning_rate: 0.1,
        l1: 0.0,
        l2: 0.0,
        l2_shrinkage: 0.0,
        lr_power: -0.5,
        beta: 0.0,
        staleness_scale: 1.0,
        discount: DiscountArgs {
            decay_rate: 0.8,
            accumulator_floor: 0.1,
            step: 1,
            decay_period: 10,
            decay_mode: DecayMode::Exact,
        },
    };
    assert!(FtrlSwapPlan::new(&valid).is_ok());
    type Edit = fn(&mut FtrlSwapArgs);
    let cases: [(&str, Edit); 13] = [
        ("learning_rate", |a| a.learning_rate = 0.0),
        ("learning_rate", |a| a.learning_rate = f64::INFINITY),
        ("l1", |a| a.l1 = -0.1),
        ("l2", |a| a.l2 = f64::NAN),
        ("l2_shrinkage", |a| a.l2_shrinkage = -1.0),
        ("lr_power", |a| a.lr_power = 0.5),
        ("lr_power", |a| a.lr_power = f64::NEG_INFINITY),
        ("beta", |a| a.beta = -1.0),
        ("staleness_scale", |a| a.staleness_scale = 0.0),
        ("staleness_scale", |a| a.staleness_scale = 1.5),
        ("decay_rate", |a| a.discount.decay_rate = 0.0),
        ("decay_period", |a| a.discount.decay_period = 0),
        ("step", |a| a.discount.step = 0),
    ];
    for (name, edit) in cases {
        let mut args = valid;
        edit(&mut args);
        let error = FtrlSwapPlan::new(&args).expect_err(name);
        assert!(
            matches!(error, KernelError::InvalidHyperParameter { name: n, .. } if n == name),
            "{name}: {error:?}"
        );
    }
}

#[test]
fn length_mismatches_name_the_slot_and_write_nothing() {
    let h = Hyper {
        lr: 0.1,
        l1: 0.0,
        l2: 0.0,
        l2_shrinkage: 0.0,
        lr_power: -0.5,
        beta: 0.0,
        scale: 1.0,
        rho: 0.5,
        floor: 0.1,
        period: 1,
        mode: DecayMode::Exact,
    };
    let plan = h.plan(5);
    let (mut w, mut n, mut z, mut power) = (vec![0.5; 6], vec![0.5; 6], vec![0.1; 6], vec![0; 3]);
    let before = (w.clone(), n.clone(), z.clone(), power.clone());
    let grad = vec![1.0; 6];
    let error = apply_dense(
        &mut w,
        &mut n,
        &mut z[..5],
        &mut power,
        &grad,
        2,
        0,
        3,
        &plan,
    )
    .expect_err("short linear");
    assert!(
        matches!(error, KernelError::LengthMismatch { what: "linear", .. }),
        "{error:?}"
    );
    let error = apply_sparse(
        &mut w,
        &mut n[..4],
        &mut z,
        &mut power,
        0,
        &grad[..2],
        &[1i64],
        2,
        &plan,
    )
    .expect_err("short accum");
    assert!(
        matches!(error, KernelError::LengthMismatch { what: "accum", .. }),
        "{error:?}"
    );
    assert_eq!((w, n, z, power), before, "a refused call wrote");
}
