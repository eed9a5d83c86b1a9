//! Dynamic embedding tables through the C ABI (proptest), against a model
//! of SPEC section 5 written out here with ordered maps:
//!
//! - random sequences of training lookups, Adagrad-SWAP or FTRL-SWAP
//!   applies and evictions over a small universe of ids (negative ones
//!   included) equal the model after every call: rows bit for bit (an
//!   entry's update is the fixed-table sparse kernel's on one row),
//!   `power`, `count`, `last_step`, pending counts, evictions;
//! - splitting any call into random stripe ranges changes nothing;
//! - a new id's row is the same on any table of the same seed, whatever
//!   came before; delta exports and shard imports select what they say;
//! - every refused call returns its code and leaves the table as it was;
//! - memory per entry stays within 1.5x its payload.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError};
use tf_swap::ffi::*;
use tf_swap::kernels::adagrad_swap::{self, AdagradSwapArgs, AdagradSwapPlan, EpsilonPlacement};
use tf_swap::kernels::discount::{DecayMode, DiscountArgs};
use tf_swap::kernels::ftrl_swap::{self, FtrlSwapArgs, FtrlSwapPlan};

const DECAY_PERIOD: i64 = 3;

fn config() -> ProptestConfig {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_202);
    ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

// ---- The table through the ABI ----

struct Table(*mut TfSwapTable);

impl Drop for Table {
    fn drop(&mut self) {
        // SAFETY: made by tf_swap_table_new_f32, used by no other call.
        unsafe { tf_swap_table_free(self.0) };
    }
}

fn error_slot() -> TfSwapError {
    TfSwapError { message: [0; 256] }
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Export {
    ids: Vec<i64>,
    values: Vec<f32>,
    slots: Vec<f32>,
    power: Vec<i64>,
    count: Vec<i64>,
    last_step: Vec<i64>,
    pending_ids: Vec<i64>,
    pending_count: Vec<i64>,
    pending_last_step: Vec<i64>,
    evicted_ids: Vec<i64>,
}

impl Export {
    /// Bit patterns, so that NaN rows compare equal to themselves.
    fn bits(&self) -> (Vec<u32>, Vec<u32>) {
        (
            self.values.iter().map(|v| v.to_bits()).collect(),
            self.slots.iter().map(|v| v.to_bits()).collect(),
        )
    }
}

fn same_export(got: &Export, want: &Export) -> Result<(), TestCaseError> {
    prop_assert_eq!(&got.ids, &want.ids);
    prop_assert_eq!(got.bits(), want.bits(), "values or slots differ");
    prop_assert_eq!(&got.power, &want.power);
    prop_assert_eq!(&got.count, &want.count);
    prop_assert_eq!(&got.last_step, &want.last_step);
    prop_assert_eq!(&got.pending_ids, &want.pending_ids);
    prop_assert_eq!(&got.pending_count, &want.pending_count);
    prop_assert_eq!(&got.pending_last_step, &want.pending_last_step);
    prop_assert_eq!(&got.evicted_ids, &want.evicted_ids);
    Ok(())
}

/// Stripe ranges cutting `[0, stripes)` at the given fractions.
fn stripe_ranges(cuts: &[f64]) -> Vec<(usize, usize)> {
    let mut stripes = 0usize;
    // SAFETY: `stripes` is a live local.
    assert_eq!(unsafe { tf_swap_table_stripes(&mut stripes) }, 0);
    let mut points: Vec<usize> = cuts.iter().map(|c| (c * stripes as f64) as usize).collect();
    points.push(0);
    points.push(stripes);
    points.sort_unstable();
    points.windows(2).map(|w| (w[0], w[1])).collect()
}

impl Table {
    fn new(config: &TfSwapTableConfig) -> Result<Self, u32> {
        let mut table = std::ptr::null_mut();
        let mut error = error_slot();
        // SAFETY: every pointer is a live local.
        let status = unsafe { tf_swap_table_new_f32(&mut table, config, &mut error) };
        if status == 0 {
            Ok(Self(table))
        } else {
            Err(status)
        }
    }

    fn admit(&self, ids: &[i64], step: i64, period: i64, ranges: &[(usize, usize)]) -> u32 {
        for &(begin, end) in ranges {
            // SAFETY: `ids` is live for its length; the table is live.
            let status = unsafe {
                tf_swap_table_admit(
                    self.0,
                    ids.as_ptr(),
                    ids.len(),
                    begin,
                    end,
                    step,
                    period,
                    std::ptr::null_mut(),
                )
            };
            if status != 0 {
                return status;
            }
        }
        0
    }

    fn gather(&self, ids: &[i64], dim: usize) -> Vec<f32> {
        let mut out = vec![f32::NAN; ids.len() * dim];
        // SAFETY: `out` holds ids * dim elements; the table is live.
        let status = unsafe {
            tf_swap_table_gather_f32(
                self.0,
                out.as_mut_ptr(),
                ids.as_ptr(),
                ids.len(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(status, 0);
        out
    }

    fn apply(
        &self,
        rule: &Rule,
        ids: &[i64],
        grad: &[f32],
        step: i64,
        ranges: &[(usize, usize)],
    ) -> u32 {
        for &(begin, end) in ranges {
            let (ids_ptr, grad_ptr, n) = (ids.as_ptr(), grad.as_ptr(), ids.len());
            let null = std::ptr::null_mut();
            // SAFETY: the buffers are live for their lengths; so is the plan.
            let status = unsafe {
                match rule {
                    Rule::Adagrad(_, plan) => tf_swap_table_adagrad_swap_f32(
                        self.0, ids_ptr, grad_ptr, n, begin, end, step, plan, null,
                    ),
                    Rule::Ftrl(_, plan) => tf_swap_table_ftrl_swap_f32(
                        self.0, ids_ptr, grad_ptr, n, begin, end, step, plan, null,
                    ),
                }
            };
            if status != 0 {
                return status;
            }
        }
        0
    }

    fn evict(&self, step: i64) -> (u32, usize) {
        let mut evicted = 0;
        // SAFETY: live table and local.
        let status =
            unsafe { tf_swap_table_evict(self.0, &mut evicted, step, std::ptr::null_mut()) };
        (status, evicted)
    }

    fn size(&self) -> TfSwapTableStats {
        let mut stats = TfSwapTableStats {
            slots: 0,
            entries: 0,
            pending: 0,
            bytes: 0,
        };
        // SAFETY: live table and local.
        let status = unsafe { tf_swap_table_size(self.0, &mut stats, std::ptr::null_mut()) };
        assert_eq!(status, 0);
        stats
    }

    fn export(&self, since: i64, dim: usize, slots: usize) -> Export {
        let mut snapshot = std::ptr::null_mut();
        let mut sizes = TfSwapTableExportSizes {
            slots: 0,
            entries: 0,
            pending: 0,
            evicted: 0,
        };
        // SAFETY: live table and locals.
        let status = unsafe {
            tf_swap_table_export_begin_f32(
                self.0,
                &mut snapshot,
                &mut sizes,
                since,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(status, 0);
        let n = sizes.entries;
        let mut e = Export {
            ids: vec![0; n],
            values: vec![0.0; n * dim],
            slots: vec![0.0; slots * n * dim],
            power: vec![0; n],
            count: vec![0; n],
            last_step: vec![0; n],
            pending_ids: vec![0; sizes.pending],
            pending_count: vec![0; sizes.pending],
            pending_last_step: vec![0; sizes.pending],
            evicted_ids: vec![0; sizes.evicted],
        };
        // SAFETY: every array is sized as `sizes` says.
        let status = unsafe {
            tf_swap_table_export_read_f32(
                snapshot,
                e.ids.as_mut_ptr(),
                e.values.as_mut_ptr(),
                e.slots.as_mut_ptr(),
                e.power.as_mut_ptr(),
                e.count.as_mut_ptr(),
                e.last_step.as_mut_ptr(),
                e.pending_ids.as_mut_ptr(),
                e.pending_count.as_mut_ptr(),
                e.pending_last_step.as_mut_ptr(),
                e.evicted_ids.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(status, 0);
        // SAFETY: from export_begin, not used again.
        unsafe { tf_swap_table_export_free(snapshot) };
        e
    }

    fn import(&self, e: &Export, shard: i64, num_shards: i64) -> u32 {
        // SAFETY: every array is live for the lengths passed.
        unsafe {
            tf_swap_table_import_f32(
                self.0,
                e.ids.as_ptr(),
                e.values.as_ptr(),
                e.slots.as_ptr(),
                e.power.as_ptr(),
                e.count.as_ptr(),
                e.last_step.as_ptr(),
                e.ids.len(),
                e.pending_ids.as_ptr(),
                e.pending_count.as_ptr(),
                e.pending_last_step.as_ptr(),
                e.pending_ids.len(),
                shard,
                num_shards,
                std::ptr::null_mut(),
            )
        }
    }
}

// ---- The update rules, as the ABI and as the fixed-table kernel take them ----

enum Rule {
    Adagrad(AdagradSwapPlan, TfSwapAdagradSwapPlan),
    Ftrl(FtrlSwapPlan, TfSwapFtrlSwapPlan),
}

fn discount(rho: f64, step: i64) -> (DiscountArgs, TfSwapDiscount) {
    let args = DiscountArgs {
        decay_rate: rho,
        accumulator_floor: 0.01,
        step,
        decay_period: DECAY_PERIOD,
        decay_mode: DecayMode::Exact,
    };
    let ffi = TfSwapDiscount {
        decay_rate: rho,
        accumulator_floor: 0.01,
        step,
        decay_period: DECAY_PERIOD,
        decay_mode: 0,
    };
    (args, ffi)
}

fn rule(ftrl: bool, rho: f64, step: i64) -> Rule {
    let (args, ffi) = discount(rho, step);
    let mut error = error_slot();
    if ftrl {
        let hyper = TfSwapFtrlSwapHyper {
            learning_rate: 0.1,
            l1: 0.01,
            l2: 0.001,
            l2_shrinkage: 0.0,
            lr_power: -0.5,
            beta: 0.0,
            staleness_scale: 1.0,
            discount: ffi,
        };
        let mut plan = std::mem::MaybeUninit::<TfSwapFtrlSwapPlan>::zeroed();
        // SAFETY: live locals.
        let status = unsafe { tf_swap_ftrl_swap_prepare(plan.as_mut_ptr(), &hyper, &mut error) };
        assert_eq!(status, 0);
        let kernel = FtrlSwapPlan::new(&FtrlSwapArgs {
            learning_rate: 0.1,
            l1: 0.01,
            l2: 0.001,
            l2_shrinkage: 0.0,
            lr_power: -0.5,
            beta: 0.0,
            staleness_scale: 1.0,
            discount: args,
        })
        .unwrap();
        // SAFETY: written by a successful prepare.
        Rule::Ftrl(kernel, unsafe { plan.assume_init() })
    } else {
        let hyper = TfSwapAdagradSwapHyper {
            learning_rate: 0.1,
            epsilon: 1e-7,
            epsilon_placement: 0,
            discount: ffi,
        };
        let mut plan = std::mem::MaybeUninit::<TfSwapAdagradSwapPlan>::zeroed();
        // SAFETY: live locals.
        let status = unsafe { tf_swap_adagrad_swap_prepare(plan.as_mut_ptr(), &hyper, &mut error) };
        assert_eq!(status, 0);
        let kernel = AdagradSwapPlan::new(&AdagradSwapArgs {
            learning_rate: 0.1,
            epsilon: 1e-7,
            epsilon_placement: EpsilonPlacement::AfterSqrt,
            discount: args,
        })
        .unwrap();
        // SAFETY: written by a successful prepare.
        Rule::Adagrad(kernel, unsafe { plan.assume_init() })
    }
}

// ---- The model ----

#[derive(Clone, Debug)]
struct Entry {
    row: Vec<f32>,
    slots: Vec<Vec<f32>>,
    power: i64,
    count: i64,
    last_step: i64,
}

#[derive(Default)]
struct Model {
    entries: BTreeMap<i64, Entry>,
    pending: BTreeMap<i64, (i64, i64)>,
    evicted: BTreeMap<i64, i64>,
}

fn table_config(dim: usize, ftrl: bool, min_count: i64, ttl: i64, seed: u64) -> TfSwapTableConfig {
    TfSwapTableConfig {
        dim,
        slots: if ftrl { 2 } else { 1 },
        slot_init: [0.1, 0.0],
        init: 1,
        init_a: -0.05,
        init_b: 0.05,
        seed,
        min_count,
        steps_to_live: ttl,
    }
}

/// A new id's row as any table of this seed makes it: here a fresh one.
fn new_row(config: &TfSwapTableConfig, id: i64) -> Vec<f32> {
    let fresh = Table::new(&TfSwapTableConfig {
        min_count: 1,
        ..*config
    })
    .unwrap();
    assert_eq!(fresh.admit(&[id], 1, DECAY_PERIOD, &[(0, 64)]), 0);
    fresh.gather(&[id], config.dim)
}

impl Model {
    fn admit(&mut self, config: &TfSwapTableConfig, ids: &[i64], step: i64, periods: i64) {
        for &id in ids {
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.count += 1;
                continue;
            }
            let pending = self.pending.entry(id).or_insert((0, step));
            pending.0 += 1;
            pending.1 = pending.1.max(step);
            if pending.0 >= config.min_count {
                let count = pending.0;
                self.pending.remove(&id);
                self.evicted.remove(&id);
                let slots = config.slot_init[..config.slots]
                    .iter()
                    .map(|&v| vec![v as f32; config.dim])
                    .collect();
                let entry = Entry {
                    row: new_row(config, id),
                    slots,
                    power: periods,
                    count,
                    last_step: step,
                };
                self.entries.insert(id, entry);
            }
        }
    }

    fn gather(&self, ids: &[i64], dim: usize) -> Vec<f32> {
        ids.iter()
            .flat_map(|id| {
                self.entries
                    .get(id)
                    .map_or(vec![0.0; dim], |entry| entry.row.clone())
            })
            .collect()
    }

    /// Each entry as a one-row variable through the fixed-table kernel.
    fn apply(&mut self, rule: &Rule, ids: &[i64], grad: &[f32], step: i64) {
        let dim = grad.len() / ids.len().max(1);
        for (k, id) in ids.iter().enumerate() {
            let Some(e) = self.entries.get_mut(id) else {
                continue;
            };
            let g = &grad[k * dim..(k + 1) * dim];
            let mut power = [e.power];
            let result = match rule {
                Rule::Adagrad(plan, _) => adagrad_swap::apply_sparse(
                    &mut e.row,
                    &mut e.slots[0],
                    &mut power,
                    0,
                    g,
                    &[0i64],
                    dim,
                    plan,
                ),
                Rule::Ftrl(plan, _) => {
                    let (n, z) = e.slots.split_at_mut(1);
                    ftrl_swap::apply_sparse(
                        &mut e.row,
                        &mut n[0],
                        &mut z[0],
                        &mut power,
                        0,
                        g,
                        &[0i64],
                        dim,
                        plan,
                    )
                }
            };
            result.unwrap();
            e.power = power[0];
            e.last_step = step;
        }
    }

    fn evict(&mut self, step: i64, ttl: i64) -> usize {
        if ttl < 0 {
            return 0;
        }
        let expired: Vec<i64> = self
            .entries
            .iter()
            .filter(|(_, e)| step - e.last_step > ttl)
            .map(|(&id, _)| id)
            .collect();
        for id in &expired {
            self.entries.remove(id);
            self.evicted.insert(*id, step);
        }
        self.pending.retain(|_, p| step - p.1 <= ttl);
        expired.len()
    }

    fn export(&self, since: i64, slots: usize) -> Export {
        let chosen: Vec<(&i64, &Entry)> = self
            .entries
            .iter()
            .filter(|(_, e)| since < 0 || e.last_step > since)
            .collect();
        let mut out = Export::default();
        for &(&id, e) in &chosen {
            out.ids.push(id);
            out.values.extend_from_slice(&e.row);
            out.power.push(e.power);
            out.count.push(e.count);
            out.last_step.push(e.last_step);
        }
        for slot in 0..slots {
            for (_, e) in &chosen {
                out.slots.extend_from_slice(&e.slots[slot]);
            }
        }
        if since < 0 {
            for (&id, &(count, last)) in &self.pending {
                out.pending_ids.push(id);
                out.pending_count.push(count);
                out.pending_last_step.push(last);
            }
        } else {
            out.evicted_ids = self
                .evicted
                .iter()
                .filter(|&(_, &at)| at > since)
                .map(|(&id, _)| id)
                .collect();
        }
        out
    }
}

// ---- Random histories ----

#[derive(Clone, Debug)]
enum Op {
    Lookup(Vec<i64>),
    Apply(Vec<i64>, Vec<f32>),
    Evict,
}

#[derive(Clone, Debug)]
struct Case {
    dim: usize,
    ftrl: bool,
    min_count: i64,
    ttl: i64,
    rho: f64,
    ops: Vec<(Op, i64)>,
    cuts: Vec<Vec<f64>>,
}

fn op(dim: usize) -> impl Strategy<Value = Op> {
    let id = -6i64..14;
    prop_oneof![
        4 => prop::collection::vec(id.clone(), 0..12).prop_map(Op::Lookup),
        4 => prop::collection::btree_set(id, 0..8).prop_flat_map(move |ids| {
            let n = ids.len();
            (Just(ids.into_iter().collect::<Vec<_>>()), prop::collection::vec(-1.0f32..1.0, n * dim))
        }).prop_map(|(ids, grad)| Op::Apply(ids, grad)),
        1 => Just(Op::Evict),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..6,
        any::<bool>(),
        1i64..4,
        -1i64..8,
        prop_oneof![Just(1.0), Just(0.8)],
    )
        .prop_flat_map(|(dim, ftrl, min_count, ttl, rho)| {
            let ops = prop::collection::vec((op(dim), 0i64..3), 1..24);
            let cuts = prop::collection::vec(prop::collection::vec(0.0f64..1.0, 0..4), 24);
            (
                Just(dim),
                Just(ftrl),
                Just(min_count),
                Just(ttl),
                Just(rho),
                ops,
                cuts,
            )
        })
        .prop_map(|(dim, ftrl, min_count, ttl, rho, ops, cuts)| Case {
            dim,
            ftrl,
            min_count,
            ttl,
            rho,
            ops,
            cuts,
        })
}

fn run_case(c: &Case) -> Result<(), TestCaseError> {
    let config = table_config(c.dim, c.ftrl, c.min_count, c.ttl, 7);
    let slots = config.slots;
    let table = Table::new(&config).unwrap();
    let whole = Table::new(&config).unwrap();
    let mut model = Model::default();
    let mut step = 1;
    let mut exported_at = Vec::new();
    for (k, (op, gap)) in c.ops.iter().enumerate() {
        step += gap;
        let ranges = stripe_ranges(&c.cuts[k]);
        let all = stripe_ranges(&[]);
        match op {
            Op::Lookup(ids) => {
                let periods = step / DECAY_PERIOD;
                prop_assert_eq!(table.admit(ids, step, DECAY_PERIOD, &ranges), 0);
                prop_assert_eq!(whole.admit(ids, step, DECAY_PERIOD, &all), 0);
                model.admit(&config, ids, step, periods);
                let got = table.gather(ids, c.dim);
                let want = model.gather(ids, c.dim);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                prop_assert_eq!(bits(&got), bits(&want), "gather after lookup {}", k);
            }
            Op::Apply(ids, grad) => {
                let r = rule(c.ftrl, c.rho, step);
                prop_assert_eq!(table.apply(&r, ids, grad, step, &ranges), 0);
                prop_assert_eq!(whole.apply(&r, ids, grad, step, &all), 0);
                model.apply(&r, ids, grad, step);
            }
            Op::Evict => {
                let (status, evicted) = table.evict(step);
                prop_assert_eq!(status, 0);
                prop_assert_eq!(whole.evict(step).1, evicted);
                prop_assert_eq!(evicted, model.evict(step, c.ttl));
            }
        }
        exported_at.push(step);
        same_export(&table.export(-1, c.dim, slots), &model.export(-1, slots))?;
    }
    same_export(
        &table.export(-1, c.dim, slots),
        &whole.export(-1, c.dim, slots),
    )?;
    let size = table.size();
    prop_assert_eq!(size.entries, model.entries.len());
    prop_assert_eq!(size.pending, model.pending.len());
    // Deltas select by step; shard imports by id mod shards.
    for &since in exported_at.iter().step_by(3) {
        same_export(
            &table.export(since, c.dim, slots),
            &model.export(since, slots),
        )?;
    }
    let full = table.export(-1, c.dim, slots);
    let mut union = Export::default();
    let mut shards = Vec::new();
    for shard in 0..3 {
        let part = Table::new(&config).unwrap();
        prop_assert_eq!(part.import(&full, shard, 3), 0);
        let e = part.export(-1, c.dim, slots);
        prop_assert!(
            e.ids
                .iter()
                .chain(&e.pending_ids)
                .all(|id| id.rem_euclid(3) == shard)
        );
        shards.push(e);
    }
    let restored = Table::new(&config).unwrap();
    for e in &shards {
        union.ids.extend(&e.ids);
        union.pending_ids.extend(&e.pending_ids);
    }
    union.ids.sort_unstable();
    union.pending_ids.sort_unstable();
    prop_assert_eq!(&union.ids, &full.ids);
    prop_assert_eq!(&union.pending_ids, &full.pending_ids);
    prop_assert_eq!(restored.import(&full, 0, 1), 0);
    same_export(&restored.export(-1, c.dim, slots), &full)?;
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn histories_follow_the_model_for_any_stripe_split(c in case()) {
        run_case(&c)?;
    }
}

// ---- Refusals ----

#[test]
fn bad_configs_are_refused() {
    let good = table_config(4, false, 1, -1, 0);
    let cases: Vec<(TfSwapTableConfig, u32)> = vec![
        (TfSwapTableConfig { dim: 0, ..good }, 6),
        (TfSwapTableConfig { slots: 0, ..good }, 6),
        (TfSwapTableConfig { slots: 3, ..good }, 6),
        (
            TfSwapTableConfig {
                slot_init: [f64::NAN, 0.0],
                ..good
            },
            6,
        ),
        (
            TfSwapTableConfig {
                min_count: 0,
                ..good
            },
            6,
        ),
        (TfSwapTableConfig { init: 9, ..good }, 7),
        (
            TfSwapTableConfig {
                init_b: -1.0,
                ..good
            },
            6,
        ),
        (
            TfSwapTableConfig {
                init: 2,
                init_b: -1.0,
                ..good
            },
            6,
        ),
        (
            TfSwapTableConfig {
                init: 3,
                init_a: f64::INFINITY,
                ..good
            },
            6,
        ),
    ];
    for (config, code) in cases {
        let mut table = std::ptr::null_mut();
        let mut error = error_slot();
        // SAFETY: live locals.
        let status = unsafe { tf_swap_table_new_f32(&mut table, &config, &mut error) };
        assert_eq!(status, code, "{config:?}");
        assert!(table.is_null(), "a refused config made a table");
    }
    let mut table = std::ptr::null_mut();
    // SAFETY: a NULL config is refused.
    let status =
        unsafe { tf_swap_table_new_f32(&mut table, std::ptr::null(), std::ptr::null_mut()) };
    assert_eq!(status, 1);
}

/// A table with entries, pending counts and one eviction.
fn busy_table(ftrl: bool) -> (Table, TfSwapTableConfig) {
    let config = table_config(3, ftrl, 2, 4, 11);
    let table = Table::new(&config).unwrap();
    let all = stripe_ranges(&[]);
    assert_eq!(
        table.admit(&[5, 5, -3, -3, 8, 9, 9], 1, DECAY_PERIOD, &all),
        0
    );
    assert_eq!(table.admit(&[40, 40], 3, DECAY_PERIOD, &all), 0);
    let r = rule(ftrl, 0.8, 6);
    assert_eq!(table.apply(&r, &[-3, 5, 9], &[0.5; 9], 6, &all), 0);
    assert_eq!(table.admit(&[77], 7, DECAY_PERIOD, &all), 0);
    // 40 (made at step 3, never updated) goes, and 8's count (step 1).
    assert_eq!(table.evict(8).1, 1);
    assert_eq!(table.size().pending, 1);
    (table, config)
}

#[test]
fn refused_calls_change_nothing() {
    for ftrl in [false, true] {
        let (table, config) = busy_table(ftrl);
        let (dim, slots) = (config.dim, config.slots);
        let before = table.export(-1, dim, slots);
        let all = stripe_ranges(&[]);
        let r = rule(ftrl, 0.8, 9);
        let other = rule(!ftrl, 0.8, 9);
        // The other rule's slot count.
        assert_eq!(table.apply(&other, &[5], &[1.0; 3], 9, &all), 6);
        // Stripe ranges outside the table, step 0, negative periods.
        assert_eq!(table.apply(&r, &[5], &[1.0; 3], 9, &[(3, 65)]), 8);
        assert_eq!(table.apply(&r, &[5], &[1.0; 3], 9, &[(4, 2)]), 8);
        assert_eq!(table.apply(&r, &[5], &[1.0; 3], 0, &all), 6);
        assert_eq!(table.admit(&[5, 77], 9, 3, &[(0, 65)]), 8);
        assert_eq!(table.admit(&[5, 77], 0, 3, &all), 6);
        assert_eq!(table.admit(&[5, 77], 9, 0, &all), 6);
        assert_eq!(table.admit(&[5, 77], 9, -1, &all), 6);
        assert_eq!(table.evict(0).0, 6);
        // NULL and misaligned buffers with non-zero lengths.
        let null = std::ptr::null_mut();
        let ids = [5i64];
        let grad = [0.25f32; 4];
        // SAFETY: the NULL and misaligned pointers are what is tested; the
        // others are live.
        unsafe {
            let plan = match &r {
                Rule::Adagrad(_, plan) => plan,
                Rule::Ftrl(..) => &std::mem::zeroed(),
            };
            if !ftrl {
                let s = tf_swap_table_adagrad_swap_f32(
                    table.0,
                    ids.as_ptr(),
                    std::ptr::null(),
                    1,
                    0,
                    64,
                    9,
                    plan,
                    null,
                );
                assert_eq!(s, 1);
                let misaligned = grad.as_ptr().cast::<u8>().add(1).cast::<f32>();
                let s = tf_swap_table_adagrad_swap_f32(
                    table.0,
                    ids.as_ptr(),
                    misaligned,
                    1,
                    0,
                    64,
                    9,
                    plan,
                    null,
                );
                assert_eq!(s, 2);
                let s = tf_swap_table_adagrad_swap_f32(
                    table.0,
                    ids.as_ptr(),
                    grad.as_ptr(),
                    1,
                    0,
                    64,
                    9,
                    std::ptr::null(),
                    null,
                );
                assert_eq!(s, 1);
            }
            let s = tf_swap_table_admit(table.0, std::ptr::null(), 2, 0, 64, 9, 3, null);
            assert_eq!(s, 1);
            let s = tf_swap_table_admit(std::ptr::null(), ids.as_ptr(), 1, 0, 64, 9, 3, null);
            assert_eq!(s, 1);
            let mut out = [0f32; 3];
            let s = tf_swap_table_gather_f32(table.0, out.as_mut_ptr(), std::ptr::null(), 1, null);
            assert_eq!(s, 1);
            // The output overlapping the ids.
            let mut both = [5i64; 4];
            let s =
                tf_swap_table_gather_f32(table.0, both.as_mut_ptr().cast(), both.as_ptr(), 1, null);
            assert_eq!(s, 3);
        }
        // Imports: a repeated id, shard outside [0, num_shards).
        let mut twice = before.clone();
        twice.pending_ids[0] = twice.ids[0];
        assert_eq!(table.import(&twice, 0, 1), 11);
        assert_eq!(table.import(&before, 3, 3), 6);
        assert_eq!(table.import(&before, 0, 0), 6);
        same_export(&table.export(-1, dim, slots), &before).unwrap();
    }
}

#[test]
fn new_rows_depend_on_the_seed_and_the_id_only() {
    let config = table_config(8, false, 1, -1, 42);
    let ids: Vec<i64> = vec![-7, 0, 3, i64::MAX, i64::MIN, 1 << 40];
    let forward = Table::new(&config).unwrap();
    let backward = Table::new(&config).unwrap();
    let reversed: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(forward.admit(&ids, 1, DECAY_PERIOD, &stripe_ranges(&[])), 0);
    assert_eq!(
        backward.admit(&reversed, 5, 1, &stripe_ranges(&[0.3, 0.7])),
        0
    );
    let a = forward.gather(&ids, 8);
    assert_eq!(a, backward.gather(&ids, 8));
    assert!(a.iter().all(|v| (-0.05..0.05).contains(v)));
    let rows: Vec<&[f32]> = a.chunks(8).collect();
    for (i, x) in rows.iter().enumerate() {
        for y in &rows[i + 1..] {
            assert_ne!(x, y, "two ids made the same row");
        }
    }
    let reseeded = Table::new(&TfSwapTableConfig { seed: 43, ..config }).unwrap();
    assert_eq!(
        reseeded.admit(&ids, 1, DECAY_PERIOD, &stripe_ranges(&[])),
        0
    );
    assert_ne!(reseeded.gather(&ids, 8), a);
    // Normal rows: finite, about the given spread.
    let normal = Table::new(&TfSwapTableConfig {
        init: 2,
        init_a: 1.0,
        init_b: 0.5,
        dim: 64,
        ..config
    })
    .unwrap();
    let many: Vec<i64> = (0..200).collect();
    assert_eq!(normal.admit(&many, 1, DECAY_PERIOD, &stripe_ranges(&[])), 0);
    let values = normal.gather(&many, 64);
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64;
    let var = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / values.len() as f64;
    assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
    assert!((var.sqrt() - 0.5).abs() < 0.01, "stddev {}", var.sqrt());
}

#[test]
fn inference_lookups_insert_nothing() {
    let (table, config) = busy_table(false);
    let before = table.export(-1, config.dim, config.slots);
    let rows = table.gather(&[5, 123, -3, 77], config.dim);
    assert_eq!(&rows[3..6], &[0.0; 3], "an unknown id gets zeros");
    assert_eq!(&rows[9..12], &[0.0; 3], "an id not admitted gets zeros");
    same_export(&table.export(-1, config.dim, config.slots), &before).unwrap();
}

#[test]
fn memory_per_entry_stays_within_one_and_a_half_payloads() {
    for (dim, ftrl) in [(16, false), (16, true), (64, false)] {
        let config = table_config(dim, ftrl, 1, -1, 0);
        let table = Table::new(&config).unwrap();
        let ids: Vec<i64> = (0..100_000).map(|i| i * 7919 - 300_000).collect();
        assert_eq!(table.admit(&ids, 1, DECAY_PERIOD, &stripe_ranges(&[])), 0);
        let size = table.size();
        assert_eq!(size.entries, ids.len());
        // The row and slots in float32, then id, power, count, last_step.
        let payload = dim * 4 * (1 + config.slots) + 4 * 8;
        let per_entry = size.bytes as f64 / size.entries as f64;
        assert!(
            per_entry <= 1.5 * payload as f64,
            "dim {dim}: {per_entry:.1} bytes per entry, payload {payload}"
        );
    }
}

#[test]
fn slot_layout_changes_only_while_empty() {
    let config = table_config(2, false, 1, -1, 0);
    let table = Table::new(&config).unwrap();
    let set = |values: &[f64]| {
        // SAFETY: live table and slice.
        unsafe {
            tf_swap_table_set_slot_init(
                table.0,
                values.as_ptr(),
                values.len(),
                std::ptr::null_mut(),
            )
        }
    };
    assert_eq!(set(&[0.5, 0.0]), 0, "an empty table takes FTRL's two slots");
    assert_eq!(table.size().slots, 2);
    assert_eq!(table.admit(&[3], 1, DECAY_PERIOD, &stripe_ranges(&[])), 0);
    assert_eq!(table.export(-1, 2, 2).slots, vec![0.5, 0.5, 0.0, 0.0]);
    assert_eq!(set(&[0.1]), 6, "not with an entry stored");
    assert_eq!(set(&[0.25, 0.0]), 0, "new values for new entries");
    assert_eq!(set(&[0.25, f64::NAN]), 6);
    assert_eq!(set(&[]), 6);
    assert_eq!(table.admit(&[4], 2, DECAY_PERIOD, &stripe_ranges(&[])), 0);
    let e = table.export(-1, 2, 2);
    assert_eq!(e.ids, vec![3, 4]);
    assert_eq!(e.slots, vec![0.5, 0.5, 0.25, 0.25, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn repeated_ids_are_summed_first() {
    for ftrl in [false, true] {
        let (summed, config) = busy_table(ftrl);
        let (repeated, _) = busy_table(ftrl);
        let all = stripe_ranges(&[]);
        let r = rule(ftrl, 0.8, 9);
        assert_eq!(
            summed.apply(&r, &[9, 5], &[0.25, 0.25, 0.25, 0.75, 0.75, 0.75], 9, &all),
            0
        );
        let grad = [0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.5, 0.5, 0.5];
        assert_eq!(
            repeated.apply(&r, &[9, 5, 5], &grad, 9, &[(0, 20), (20, 64)]),
            0
        );
        let (dim, slots) = (config.dim, config.slots);
        same_export(
            &repeated.export(-1, dim, slots),
            &summed.export(-1, dim, slots),
        )
        .unwrap();
    }
}
