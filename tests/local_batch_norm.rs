//! Local Batch Normalization kernels and exports against a plain float64
//! reference; split- and thread-independence; validation.

#![allow(
    clippy::too_many_arguments,
    reason = "the helpers mirror the C signatures"
)]

use std::ptr;

use tf_swap::ffi::{
    TfSwapError, TfSwapStatus, tf_swap_local_batch_norm_finish_f32,
    tf_swap_local_batch_norm_finish_f64, tf_swap_local_batch_norm_grad_apply_f32,
    tf_swap_local_batch_norm_grad_apply_f64, tf_swap_local_batch_norm_grad_finish_f32,
    tf_swap_local_batch_norm_grad_finish_f64, tf_swap_local_batch_norm_grad_partials_f32,
    tf_swap_local_batch_norm_grad_partials_f64, tf_swap_local_batch_norm_normalize_f32,
    tf_swap_local_batch_norm_normalize_f64, tf_swap_local_batch_norm_partials_f32,
    tf_swap_local_batch_norm_partials_f64, tf_swap_local_batch_norm_stat_blocks,
};
use tf_swap::kernels::KernelError;
use tf_swap::kernels::batch_norm::{
    ForwardPlanMut, check_epsilon, forward_finish, forward_partials, stat_blocks,
};

/// Deterministic pseudo-random numbers in [-1, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
    fn vec(&mut self, n: usize, center: f64, spread: f64) -> Vec<f64> {
        (0..n).map(|_| center + spread * self.next()).collect()
    }
}

struct Reference {
    y: Vec<f64>,
    mean: Vec<f64>,
    inv: Vec<f64>,
    var: Vec<f64>,
    dx: Vec<f64>,
    dgamma: Vec<f64>,
    dbeta: Vec<f64>,
}

/// SPEC section 3, written as plainly as possible, in float64.
fn reference(x: &[f64], dy: &[f64], gamma: &[f64], beta: &[f64], c: usize, eps: f64) -> Reference {
    let n = x.len() / c;
    let nf = n as f64;
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for j in 0..c {
        mean[j] = (0..n).map(|r| x[r * c + j]).sum::<f64>() / nf;
        var[j] = (0..n)
            .map(|r| (x[r * c + j] - mean[j]).powi(2))
            .sum::<f64>()
            / nf;
    }
    let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let xhat = |r: usize, j: usize| (x[r * c + j] - mean[j]) * inv[j];
    let mut y = vec![0.0; x.len()];
    let (mut dgamma, mut dbeta) = (vec![0.0; c], vec![0.0; c]);
    for r in 0..n {
        for j in 0..c {
            y[r * c + j] = gamma[j] * xhat(r, j) + beta[j];
            dbeta[j] += dy[r * c + j];
            dgamma[j] += dy[r * c + j] * xhat(r, j);
        }
    }
    let mut dx = vec![0.0; x.len()];
    for r in 0..n {
        for j in 0..c {
            dx[r * c + j] =
                gamma[j] * inv[j] / nf * (nf * dy[r * c + j] - dbeta[j] - xhat(r, j) * dgamma[j]);
        }
    }
    Reference {
        y,
        mean,
        inv,
        var,
        dx,
        dgamma,
        dbeta,
    }
}

struct Outputs<T> {
    y: Vec<T>,
    mean: Vec<T>,
    inv: Vec<T>,
    var: Vec<T>,
    dx: Vec<T>,
    dgamma: Vec<T>,
    dbeta: Vec<T>,
}

/// The element type's exports, so one driver serves f32 and f64.
trait Exports: Copy + Default + Send + Sync + 'static {
    fn from(v: f64) -> Self;
    fn to(self) -> f64;
    fn bits(self) -> u64;
    unsafe fn partials(
        p: *mut f64,
        x: *const Self,
        rows: usize,
        c: usize,
        b0: usize,
        b1: usize,
        e: *mut TfSwapError,
    ) -> u32;
    unsafe fn finish(
        m: *mut Self,
        i: *mut Self,
        v: *mut Self,
        plan: *mut f64,
        p: *const f64,
        g: *const Self,
        b: *const Self,
        rows: usize,
        c: usize,
        eps: f64,
        e: *mut TfSwapError,
    ) -> u32;
    unsafe fn normalize(
        y: *mut Self,
        x: *const Self,
        p: *const f64,
        rows: usize,
        c: usize,
        r0: usize,
        r1: usize,
        e: *mut TfSwapError,
    ) -> u32;
    unsafe fn grad_partials(
        p: *mut f64,
        dy: *const Self,
        x: *const Self,
        m: *const Self,
        rows: usize,
        c: usize,
        b0: usize,
        b1: usize,
        e: *mut TfSwapError,
    ) -> u32;
    unsafe fn grad_finish(
        dg: *mut Self,
        db: *mut Self,
        plan: *mut f64,
        p: *const f64,
        g: *const Self,
        m: *const Self,
        i: *const Self,
        rows: usize,
        c: usize,
        e: *mut TfSwapError,
    ) -> u32;
    unsafe fn grad_apply(
        dx: *mut Self,
        dy: *const Self,
        x: *const Self,
        p: *const f64,
        rows: usize,
        c: usize,
        r0: usize,
        r1: usize,
        e: *mut TfSwapError,
    ) -> u32;
}

macro_rules! exports {
    ($t:ty, $part:ident, $fin:ident, $norm:ident, $gp:ident, $gf:ident, $ga:ident) => {
        impl Exports for $t {
            fn from(v: f64) -> Self {
                v as $t
            }
            fn to(self) -> f64 {
                self as f64
            }
            fn bits(self) -> u64 {
                self.to_bits() as u64
            }
            unsafe fn partials(
                p: *mut f64,
                x: *const Self,
                rows: usize,
                c: usize,
                b0: usize,
                b1: usize,
                e: *mut TfSwapError,
            ) -> u32 {
                // SAFETY: lengths as stated; concurrent calls use disjoint ranges.
                unsafe { $part(p, x, rows, c, b0, b1, e) }
            }
            unsafe fn finish(
                m: *mut Self,
                i: *mut Self,
                v: *mut Self,
                plan: *mut f64,
                p: *const f64,
                g: *const Self,
                b: *const Self,
                rows: usize,
                c: usize,
                eps: f64,
                e: *mut TfSwapError,
            ) -> u32 {
                // SAFETY: lengths as stated.
                unsafe { $fin(m, i, v, plan, p, g, b, rows, c, eps, e) }
            }
            unsafe fn normalize(
                y: *mut Self,
                x: *const Self,
                p: *const f64,
                rows: usize,
                c: usize,
                r0: usize,
                r1: usize,
                e: *mut TfSwapError,
            ) -> u32 {
                // SAFETY: lengths as stated; concurrent calls use disjoint ranges.
                unsafe { $norm(y, x, p, rows, c, r0, r1, e) }
            }
            unsafe fn grad_partials(
                p: *mut f64,
                dy: *const Self,
                x: *const Self,
                m: *const Self,
                rows: usize,
                c: usize,
                b0: usize,
                b1: usize,
                e: *mut TfSwapError,
            ) -> u32 {
                // SAFETY: lengths as stated; concurrent calls use disjoint ranges.
                unsafe { $gp(p, dy, x, m, rows, c, b0, b1, e) }
            }
            unsafe fn grad_finish(
                dg: *mut Self,
                db: *mut Self,
                plan: *mut f64,
                p: *const f64,
                g: *const Self,
                m: *const Self,
                i: *const Self,
                rows: usize,
                c: usize,
                e: *mut TfSwapError,
            ) -> u32 {
                // SAFETY: lengths as stated.
                unsafe { $gf(dg, db, plan, p, g, m, i, rows, c, e) }
            }
            unsafe fn grad_apply(
                dx: *mut Self,
                dy: *const Self,
                x: *const Self,
                p: *const f64,
                rows: usize,
                c: usize,
                r0: usize,
                r1: usize,
                e: *mut TfSwapError,
            ) -> u32 {
                // SAFETY: lengths as stated; concurrent calls use disjoint ranges.
                unsafe { $ga(dx, dy, x, p, rows, c, r0, r1, e) }
            }
        }
    };
}
exports!(
    f32,
    tf_swap_local_batch_norm_partials_f32,
    tf_swap_local_batch_norm_finish_f32,
    tf_swap_local_batch_norm_normalize_f32,
    tf_swap_local_batch_norm_grad_partials_f32,
    tf_swap_local_batch_norm_grad_finish_f32,
    tf_swap_local_batch_norm_grad_apply_f32
);
exports!(
    f64,
    tf_swap_local_batch_norm_partials_f64,
    tf_swap_local_batch_norm_finish_f64,
    tf_swap_local_batch_norm_normalize_f64,
    tf_swap_local_batch_norm_grad_partials_f64,
    tf_swap_local_batch_norm_grad_finish_f64,
    tf_swap_local_batch_norm_grad_apply_f64
);

/// Raw pointers that may cross threads (each thread writes its own range).
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
impl<T> Shared<T> {
    /// A method, so closures capture the whole `Shared`, not its field.
    fn get(self) -> *mut T {
        self.0
    }
}
// SAFETY: the threads below write disjoint ranges only.
unsafe impl<T> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Shared<T> {}

fn ok(code: u32, error: &TfSwapError) {
    let text: Vec<u8> = error
        .message
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&text));
}

fn new_error() -> TfSwapError {
    TfSwapError { message: [0; 256] }
}

/// Runs forward and backward through the exports, splitting the
/// statistics blocks into `block_parts` and the rows of phase 2 into
/// `row_parts` ranges, each on its own thread when `threads`.
fn run<T: Exports>(
    x: &[T],
    dy: &[T],
    gamma: &[T],
    beta: &[T],
    c: usize,
    eps: f64,
    block_parts: usize,
    row_parts: usize,
    threads: bool,
) -> Outputs<T> {
    let rows = x.len() / c;
    // SAFETY: scalars only.
    let mut blocks = usize::MAX;
    // SAFETY: live locals; the error may be NULL.
    let status =
        unsafe { tf_swap_local_batch_norm_stat_blocks(&mut blocks, rows, c, ptr::null_mut()) };
    assert_eq!(status, 0);
    let mut o = Outputs {
        y: vec![T::default(); x.len()],
        mean: vec![T::default(); c],
        inv: vec![T::default(); c],
        var: vec![T::default(); c],
        dx: vec![T::default(); x.len()],
        dgamma: vec![T::default(); c],
        dbeta: vec![T::default(); c],
    };
    let mut plan = vec![0.0f64; 3 * c];
    let mut bplan = vec![0.0f64; 4 * c];
    let mut partials = vec![0.0f64; 2 * c * blocks];
    let mut bpartials = vec![0.0f64; 3 * c * blocks];
    let cut = |len: usize, parts: usize, k: usize| len * k / parts;
    let (pl, bp) = (Shared(plan.as_mut_ptr()), Shared(bplan.as_mut_ptr()));
    let (fp, gp) = (
        Shared(partials.as_mut_ptr()),
        Shared(bpartials.as_mut_ptr()),
    );
    let (y, dx) = (Shared(o.y.as_mut_ptr()), Shared(o.dx.as_mut_ptr()));
    let phase = |parts: usize, len: usize, body: &(dyn Fn(usize, usize) + Sync)| {
        if threads {
            std::thread::scope(|s| {
                for k in 0..parts {
                    s.spawn(move || body(cut(len, parts, k), cut(len, parts, k + 1)));
                }
            });
        } else {
            for k in 0..parts {
                body(cut(len, parts, k), cut(len, parts, k + 1));
            }
        }
    };
    phase(block_parts, blocks, &|b0, b1| {
        let mut e = new_error();
        // SAFETY: lengths as stated; concurrent calls use disjoint ranges.
        let code = unsafe { T::partials(fp.get(), x.as_ptr(), rows, c, b0, b1, &mut e) };
        ok(code, &e);
    });
    let mut e = new_error();
    // SAFETY: lengths as stated.
    let code = unsafe {
        T::finish(
            o.mean.as_mut_ptr(),
            o.inv.as_mut_ptr(),
            o.var.as_mut_ptr(),
            pl.get(),
            fp.get(),
            gamma.as_ptr(),
            beta.as_ptr(),
            rows,
            c,
            eps,
            &mut e,
        )
    };
    ok(code, &e);
    phase(row_parts, rows, &|r0, r1| {
        let mut e = new_error();
        // SAFETY: lengths as stated; concurrent calls use disjoint ranges.
        let code = unsafe { T::normalize(y.get(), x.as_ptr(), pl.get(), rows, c, r0, r1, &mut e) };
        ok(code, &e);
    });
    let mean = &o.mean;
    phase(block_parts, blocks, &|b0, b1| {
        let mut e = new_error();
        // SAFETY: lengths as stated; concurrent calls use disjoint ranges.
        let code = unsafe {
            T::grad_partials(
                gp.get(),
                dy.as_ptr(),
                x.as_ptr(),
                mean.as_ptr(),
                rows,
                c,
                b0,
                b1,
                &mut e,
            )
        };
        ok(code, &e);
    });
    // SAFETY: lengths as stated.
    let code = unsafe {
        T::grad_finish(
            o.dgamma.as_mut_ptr(),
            o.dbeta.as_mut_ptr(),
            bp.get(),
            gp.get(),
            gamma.as_ptr(),
            o.mean.as_ptr(),
            o.inv.as_ptr(),
            rows,
            c,
            &mut e,
        )
    };
    ok(code, &e);
    phase(row_parts, rows, &|r0, r1| {
        let mut e = new_error();
        // SAFETY: lengths as stated; concurrent calls use disjoint ranges.
        let code = unsafe {
            T::grad_apply(
                dx.get(),
                dy.as_ptr(),
                x.as_ptr(),
                bp.get(),
                rows,
                c,
                r0,
                r1,
                &mut e,
            )
        };
        ok(code, &e);
    });
    o
}

fn close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{what}[{k}]: got {g}, want {w}"
        );
    }
}

fn widen<T: Exports>(v: &[T]) -> Vec<f64> {
    v.iter().map(|t| t.to()).collect()
}

fn check_against_reference<T: Exports>(rows: usize, c: usize, tol: f64, seed: u64) {
    let mut rng = Lcg(seed);
    let x: Vec<T> = rng
        .vec(rows * c, 3.0, 5.0)
        .into_iter()
        .map(T::from)
        .collect();
    let dy: Vec<T> = rng
        .vec(rows * c, 0.0, 1.0)
        .into_iter()
        .map(T::from)
        .collect();
    let gamma: Vec<T> = rng.vec(c, 1.0, 0.5).into_iter().map(T::from).collect();
    let beta: Vec<T> = rng.vec(c, 0.0, 1.0).into_iter().map(T::from).collect();
    let eps = T::from(1e-3).to();
    let want = reference(
        &widen(&x),
        &widen(&dy),
        &widen(&gamma),
        &widen(&beta),
        c,
        eps,
    );
    let got = run(&x, &dy, &gamma, &beta, c, eps, 1, 1, false);
    close("y", &widen(&got.y), &want.y, tol, tol);
    close("mean", &widen(&got.mean), &want.mean, tol, tol);
    close("inv", &widen(&got.inv), &want.inv, tol, tol);
    close("var", &widen(&got.var), &want.var, tol, tol);
    close("dx", &widen(&got.dx), &want.dx, tol, tol);
    close(
        "dgamma",
        &widen(&got.dgamma),
        &want.dgamma,
        tol * rows as f64,
        tol,
    );
    close(
        "dbeta",
        &widen(&got.dbeta),
        &want.dbeta,
        tol * rows as f64,
        tol,
    );
}

#[test]
fn matches_float64_reference() {
    for &(rows, c) in &[(1, 3), (2, 1), (7, 5), (64, 33), (300, 17), (1000, 130)] {
        check_against_reference::<f64>(rows, c, 1e-12, rows as u64);
        check_against_reference::<f32>(rows, c, 2e-5, rows as u64);
    }
}

#[test]
fn rows_beyond_one_chunk_and_flush_run() {
    // 4096 f32 channels make a chunk of 8 rows; 70 rows cross both the chunk
    // and the 64-row flush boundaries.
    check_against_reference::<f32>(70, 4096, 2e-5, 9);
    check_against_reference::<f64>(9000, 3, 1e-12, 10);
}

#[test]
fn single_row_gives_beta_and_zero_dx() {
    let x = [5.0f32, -2.0, 7.5];
    let out = run(
        &x,
        &[1.0, 2.0, 3.0],
        &[2.0; 3],
        &[0.25, 0.5, 0.75],
        3,
        1e-3,
        1,
        1,
        false,
    );
    assert_eq!(out.y, vec![0.25, 0.5, 0.75]);
    assert_eq!(out.mean, x.to_vec());
    assert!(out.dx.iter().all(|&d| d == 0.0));
    assert_eq!(out.dbeta, vec![1.0, 2.0, 3.0]);
    assert_eq!(out.dgamma, vec![0.0; 3]);
}

#[test]
fn ill_conditioned_float32_channel() {
    // mean 1e4, std 1e-2: float32 spacing at 1e4 is ~1e-3, so the float32
    // mean alone is off by up to 5e-4 (1.5e-2 after normalization).
    let rows = 4096;
    let mut rng = Lcg(3);
    let x: Vec<f32> = (0..rows)
        .map(|_| (1e4 + 1e-2 * 1.7320508 * rng.next()) as f32)
        .collect();
    let dy: Vec<f32> = rng
        .vec(rows, 0.0, 1.0)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let eps = 1e-3f32 as f64;
    let want = reference(&widen(&x), &widen(&dy), &[1.0], &[0.0], 1, eps);
    let got = run(&x, &dy, &[1.0], &[0.0], 1, eps, 1, 1, false);
    close("y", &widen(&got.y), &want.y, 1e-5, 1e-5);
    close("dx", &widen(&got.dx), &want.dx, 1e-5, 1e-4);
    close("dgamma", &widen(&got.dgamma), &want.dgamma, 1e-3, 1e-4);
    // Unit variance within 1e-3 of the float64 reference's.
    let var = |y: &[f64]| y.iter().map(|v| v * v).sum::<f64>() / y.len() as f64;
    assert!((var(&widen(&got.y)) - var(&want.y)).abs() < 1e-3);
}

fn assert_bit_identical<T: Exports>(a: &Outputs<T>, b: &Outputs<T>, what: &str) {
    let bits = |v: &[T]| v.iter().map(|t| t.bits()).collect::<Vec<_>>();
    for (name, x, y) in [
        ("y", &a.y, &b.y),
        ("mean", &a.mean, &b.mean),
        ("inv", &a.inv, &b.inv),
        ("var", &a.var, &b.var),
        ("dx", &a.dx, &b.dx),
        ("dgamma", &a.dgamma, &b.dgamma),
        ("dbeta", &a.dbeta, &b.dbeta),
    ] {
        assert_eq!(bits(x), bits(y), "{name} differs with {what}");
    }
}

fn split_independent<T: Exports>(rows: usize, c: usize) {
    let mut rng = Lcg(11);
    let x: Vec<T> = rng
        .vec(rows * c, -4.0, 9.0)
        .into_iter()
        .map(T::from)
        .collect();
    let dy: Vec<T> = rng
        .vec(rows * c, 0.0, 1.0)
        .into_iter()
        .map(T::from)
        .collect();
    let gamma: Vec<T> = rng.vec(c, 1.0, 0.5).into_iter().map(T::from).collect();
    let beta: Vec<T> = rng.vec(c, 0.0, 1.0).into_iter().map(T::from).collect();
    let base = run(&x, &dy, &gamma, &beta, c, 1e-3, 1, 1, false);
    for parts in [2, 3, 8, 70] {
        let split = run(&x, &dy, &gamma, &beta, c, 1e-3, parts, parts, false);
        assert_bit_identical(&base, &split, &format!("{parts} sequential parts"));
        let threaded = run(
            &x,
            &dy,
            &gamma,
            &beta,
            c,
            1e-3,
            parts.min(8),
            parts.min(8),
            true,
        );
        assert_bit_identical(&base, &threaded, &format!("{parts} threads"));
    }
}

#[test]
fn results_do_not_depend_on_the_split() {
    // 257 x 70: one statistics block, rows split in phase 2; 40000 x 5:
    // four blocks (and a short last one) shared among the parts too.
    assert_eq!(stat_blocks(257, 70), 1);
    assert_eq!(stat_blocks(40000, 5), 4);
    for (rows, c) in [(257, 70), (40000, 5)] {
        split_independent::<f32>(rows, c);
        split_independent::<f64>(rows, c);
    }
}

#[test]
fn validation_rejects_bad_input_before_writing() {
    let x = [1.0f32; 6];
    let (g, b) = ([1.0f32; 3], [0.0f32; 3]);
    let mut plan = [7.0f64; 9];
    let (mut m, mut i, mut v) = ([9.0f32; 3], [9.0f32; 3], [9.0f32; 3]);
    let partials = [0.5f64; 6];
    let mut call = |rows: usize, eps: f64| {
        let (pm, rest) = plan.split_at_mut(3);
        let (ps, po) = rest.split_at_mut(3);
        let blocks = stat_blocks(rows, 3);
        forward_finish(
            &mut m,
            &mut i,
            &mut v,
            ForwardPlanMut {
                mean: pm,
                scale: ps,
                offset: po,
            },
            &partials[..6 * blocks],
            &g,
            &b,
            rows,
            3,
            eps,
        )
    };
    for eps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            call(2, eps),
            Err(KernelError::InvalidHyperParameter {
                name: "epsilon",
                ..
            })
        ));
    }
    assert_eq!(call(0, 1e-3), Err(KernelError::EmptyBatch));
    let mut out = [3.0f64; 12];
    assert!(matches!(
        forward_partials(&mut out, &x, 2, 3, 0, 2),
        Err(KernelError::InvalidRowRange {
            end: 2,
            rows: 1,
            ..
        })
    ));
    assert!(matches!(
        forward_partials(&mut out[..5], &x, 2, 3, 0, 1),
        Err(KernelError::LengthMismatch {
            what: "partials",
            ..
        })
    ));
    assert_eq!(m, [9.0; 3], "nothing written");
    assert_eq!(v, [9.0; 3], "nothing written");
    assert!(plan.iter().all(|&p| p == 7.0), "nothing written");
    assert!(out.iter().all(|&p| p == 3.0), "nothing written");
    assert!(check_epsilon(1e-3).is_ok());
    let err = check_epsilon(0.0).unwrap_err().to_string();
    assert!(err.contains("epsilon"), "{err}");
    assert!(KernelError::EmptyBatch.to_string().contains("N == 0"));
}

#[test]
fn exports_report_status_codes() {
    let x = [1.0f32, 2.0];
    let (mut m, mut i, mut v) = ([0.0f32; 2], [0.0f32; 2], [0.0f32; 2]);
    let mut plan = [0.0f64; 6];
    let mut partials = [0.0f64; 4];
    let mut error = new_error();
    // SAFETY: the buffers have the lengths the calls state.
    let empty = unsafe {
        tf_swap_local_batch_norm_finish_f32(
            m.as_mut_ptr(),
            i.as_mut_ptr(),
            v.as_mut_ptr(),
            plan.as_mut_ptr(),
            partials.as_ptr(),
            x.as_ptr(),
            x.as_ptr(),
            0,
            2,
            1e-3,
            &mut error,
        )
    };
    assert_eq!(empty, TfSwapStatus::EmptyBatch as u32);
    // SAFETY: as above; x is NULL while not empty.
    let null = unsafe {
        tf_swap_local_batch_norm_partials_f32(
            partials.as_mut_ptr(),
            ptr::null(),
            1,
            2,
            0,
            1,
            &mut error,
        )
    };
    assert_eq!(null, TfSwapStatus::NullPointer as u32);
    // y aliasing x is refused.
    let mut buf = [1.0f32, 2.0, 3.0, 4.0];
    let p = buf.as_mut_ptr();
    // SAFETY: as above; the call detects the overlap before touching anything.
    let aliased = unsafe {
        tf_swap_local_batch_norm_normalize_f32(p, p, plan.as_ptr(), 2, 2, 0, 2, &mut error)
    };
    assert_eq!(aliased, TfSwapStatus::AliasedBuffers as u32);
    // SAFETY: as above.
    let bad_eps = unsafe {
        tf_swap_local_batch_norm_finish_f32(
            m.as_mut_ptr(),
            i.as_mut_ptr(),
            v.as_mut_ptr(),
            plan.as_mut_ptr(),
            partials.as_ptr(),
            x.as_ptr(),
            x.as_ptr(),
            1,
            2,
            0.0,
            &mut error,
        )
    };
    assert_eq!(bad_eps, TfSwapStatus::InvalidHyperParameter as u32);
    // Empty channels are a no-op, with NULL buffers.
    // SAFETY: every buffer is empty.
    let nothing = unsafe {
        tf_swap_local_batch_norm_grad_apply_f64(
            ptr::null_mut(),
            ptr::null(),
            ptr::null(),
            ptr::null(),
            5,
            0,
            0,
            5,
            &mut error,
        )
    };
    assert_eq!(nothing, 0);
    // SAFETY: as above.
    let nothing = unsafe {
        tf_swap_local_batch_norm_grad_partials_f64(
            ptr::null_mut(),
            ptr::null(),
            ptr::null(),
            ptr::null(),
            5,
            0,
            0,
            0,
            &mut error,
        )
    };
    assert_eq!(nothing, 0);
}
