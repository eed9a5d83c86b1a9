//! Dynamic embedding tables (SPEC section 5): int64 id -> entry (row, the
//! update rule's slots, `power`, `count`, `last_step`), storing only the ids
//! that occur.
//!
//! A table is split into [`STRIPES`] stripes by a hash of the id, each
//! behind its own lock, so lookups and applies from many workers proceed in
//! parallel. Every operation is defined per id, independent of the order
//! ids arrive in and of how stripes are split among threads:
//!
//! - [`DynamicTable::admit`] (training lookups): counts each occurrence;
//!   an id is stored once its count reaches `min_count`, its row made by
//!   [`RowInit`] from the seed and the id, its slots at their initial
//!   values, `power = t // T`, `last_step = t`.
//! - [`DynamicTable::gather`]: the stored rows, zeros for ids not stored;
//!   never inserts (inference lookups are a gather alone).
//! - [`DynamicTable::apply_rule`]: one update rule step on the entries of
//!   distinct ids (duplicates summed first by the caller); gradients of
//!   ids not stored are dropped.
//! - [`DynamicTable::evict`], [`DynamicTable::export`],
//!   [`DynamicTable::import`], [`DynamicTable::size`].
//!
//! Each validates its inputs before its first write.

mod init;
mod stripe;

use std::ops::Range;
use std::sync::{Mutex, MutexGuard};

pub use init::RowInit;
pub use stripe::EntryMeta;
use stripe::{IdMap, Pending, Stripe};

use super::discount::require;
use super::rows::{Lanes, UpdateRule};
use super::{KernelError, Real, expect_len};

/// Stripes (locks) per table: a constant, so no result depends on it.
pub const STRIPES: usize = 64;

/// Entries an apply or gather loads ahead of using them.
const TOUCH_AHEAD: usize = 16;

/// A table's settings, as the op receives them.
#[derive(Clone, Debug, PartialEq)]
pub struct TableConfig {
    /// Row width, `>= 1`.
    pub dim: usize,
    /// The initial value of each slot of the update rule (1 for
    /// Adagrad-SWAP's accumulator, 2 for FTRL-SWAP's `n` and `z`); see
    /// [`DynamicTable::set_slot_init`].
    pub slot_init: Vec<f64>,
    /// A new row's distribution.
    pub init: RowInit,
    /// The seed of every new row.
    pub seed: u64,
    /// Training lookups before an id is stored, `>= 1`.
    pub min_count: i64,
    /// `evict(t)` removes entries with `t - last_step > steps_to_live`;
    /// `None` keeps every entry.
    pub steps_to_live: Option<i64>,
}

/// How many ids a table holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableSize {
    /// Stored entries.
    pub entries: usize,
    /// Ids counted but not admitted yet.
    pub pending: usize,
    /// Bytes the table holds (entries, maps and the chunks' slack).
    pub bytes: usize,
}

/// Entries (and, for a full export, counts of ids not admitted) in
/// ascending id order: what a checkpoint or a serving push holds.
#[derive(Clone, Debug, PartialEq)]
pub struct TableExport<T> {
    /// Ids of the entries.
    pub ids: Vec<i64>,
    /// Their rows, `[ids, dim]`.
    pub values: Vec<T>,
    /// Their slots, slot-major: `[slots, ids, dim]`.
    pub slots: Vec<T>,
    /// Their `power`, `count` and `last_step`.
    pub power: Vec<i64>,
    /// Training lookups of each entry.
    pub count: Vec<i64>,
    /// Step of each entry's last update.
    pub last_step: Vec<i64>,
    /// Ids counted but not admitted (full export only), with their counts
    /// and last lookup steps.
    pub pending_ids: Vec<i64>,
    /// Counts of the pending ids.
    pub pending_count: Vec<i64>,
    /// Last lookup steps of the pending ids.
    pub pending_last_step: Vec<i64>,
    /// Ids evicted after the export's step (delta export only).
    pub evicted_ids: Vec<i64>,
}

/// Borrowed entries to import, laid out as [`TableExport`] (its
/// `evicted_ids` play no part).
#[derive(Clone, Copy, Debug)]
pub struct TableData<'a, T> {
    /// Ids of the entries.
    pub ids: &'a [i64],
    /// Their rows, `[ids, dim]`.
    pub values: &'a [T],
    /// Their slots, `[slots, ids, dim]`.
    pub slots: &'a [T],
    /// Their `power`.
    pub power: &'a [i64],
    /// Their counts.
    pub count: &'a [i64],
    /// Their last update steps.
    pub last_step: &'a [i64],
    /// Ids counted but not admitted.
    pub pending_ids: &'a [i64],
    /// Their counts.
    pub pending_count: &'a [i64],
    /// Their last lookup steps.
    pub pending_last_step: &'a [i64],
}

impl<T> TableExport<T> {
    /// The export as [`DynamicTable::import`] reads it.
    pub fn data(&self) -> TableData<'_, T> {
        TableData {
            ids: &self.ids,
            values: &self.values,
            slots: &self.slots,
            power: &self.power,
            count: &self.count,
            last_step: &self.last_step,
            pending_ids: &self.pending_ids,
            pending_count: &self.pending_count,
            pending_last_step: &self.pending_last_step,
        }
    }
}

/// A dynamic embedding table of `T` rows.
pub struct DynamicTable<T> {
    config: TableConfig,
    /// Each stripe holds the slots' initial values it fills new entries
    /// with (they change only with every stripe locked).
    stripes: Vec<Mutex<Stripe<T>>>,
}

/// The stripe an id belongs to (a hash other than the maps' own, so ids
/// of one stripe still spread over its map).
#[inline]
pub fn stripe_of(id: i64) -> usize {
    const STRIPE_KEY: u64 = 0x5851_F42D_4C95_7F2D;
    (init::mix(id as u64 ^ STRIPE_KEY) % STRIPES as u64) as usize
}

/// Positions of `ids` grouped by stripe, for the stripes in `range`:
/// `positions[starts[s]..starts[s + 1]]` belong to stripe `range.start + s`,
/// in input order.
fn by_stripe(ids: &[i64], range: &Range<usize>) -> (Vec<usize>, Vec<u32>) {
    let stripes: Vec<usize> = ids.iter().map(|&id| stripe_of(id)).collect();
    let mut starts = vec![0usize; range.len() + 1];
    for &s in &stripes {
        if range.contains(&s) {
            starts[s - range.start + 1] += 1;
        }
    }
    for s in 1..starts.len() {
        starts[s] += starts[s - 1];
    }
    let mut next = starts.clone();
    let mut positions = vec![0u32; starts[range.len()]];
    for (position, &s) in stripes.iter().enumerate() {
        if range.contains(&s) {
            let slot = &mut next[s - range.start];
            positions[*slot] = position as u32;
            *slot += 1;
        }
    }
    (starts, positions)
}

fn check_slot_init(slot_init: &[f64]) -> Result<(), KernelError> {
    let slots = slot_init.len();
    require(
        "slots",
        slots as f64,
        (1..=2).contains(&slots),
        "1 (Adagrad-SWAP) or 2 (FTRL-SWAP)",
    )?;
    for &value in slot_init {
        require("slot_init", value, value.is_finite(), "finite")?;
    }
    Ok(())
}

fn check_step(step: i64) -> Result<(), KernelError> {
    require("step", step as f64, step >= 1, ">= 1")
}

impl<T: Real> DynamicTable<T> {
    /// An empty table; fails when a setting is outside its domain.
    pub fn new(config: TableConfig) -> Result<Self, KernelError> {
        require("dim", config.dim as f64, config.dim >= 1, ">= 1")?;
        check_slot_init(&config.slot_init)?;
        require(
            "min_count",
            config.min_count as f64,
            config.min_count >= 1,
            ">= 1",
        )?;
        if let Some(ttl) = config.steps_to_live {
            require("steps_to_live", ttl as f64, ttl >= 0, ">= 0")?;
        }
        let slot_init: Vec<T> = config.slot_init.iter().map(|&v| T::from_f64(v)).collect();
        Ok(Self {
            stripes: (0..STRIPES)
                .map(|_| Mutex::new(Stripe::new(config.dim, slot_init.clone())))
                .collect(),
            config,
        })
    }

    /// The table's settings (`slot_init` as it was made).
    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// Slots per entry now.
    pub fn slots(&self) -> usize {
        self.lock(0).slot_init.len()
    }

    /// Sets the slots' initial values (what new entries start with): the
    /// rule that trains the table decides them. Their number may change
    /// only while no entry is stored.
    pub fn set_slot_init(&self, slot_init: &[f64]) -> Result<(), KernelError> {
        check_slot_init(slot_init)?;
        let mut stripes: Vec<_> = (0..STRIPES).map(|s| self.lock(s)).collect();
        let now = stripes[0].slot_init.len();
        if slot_init.len() != now && stripes.iter().any(|stripe| stripe.len() > 0) {
            return Err(KernelError::InvalidHyperParameter {
                name: "slot_init",
                value: slot_init.len() as f64,
                domain: "of the table's slot count while it holds entries",
            });
        }
        let values: Vec<T> = slot_init.iter().map(|&v| T::from_f64(v)).collect();
        for stripe in &mut stripes {
            stripe.set_slot_init(values.clone());
        }
        Ok(())
    }

    /// A stripe's lock. A panic while it was held (a bug: inputs are checked
    /// before any write) leaves data that is still well-formed.
    fn lock(&self, stripe: usize) -> MutexGuard<'_, Stripe<T>> {
        self.stripes[stripe]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn check_stripes(&self, range: &Range<usize>) -> Result<(), KernelError> {
        if range.start <= range.end && range.end <= STRIPES {
            Ok(())
        } else {
            Err(KernelError::InvalidRowRange {
                begin: range.start,
                end: range.end,
                rows: STRIPES,
            })
        }
    }

    /// Writes a new entry's values: its row, then each slot's initial value.
    fn fill_new(&self, id: i64, slot_init: &[T], values: &mut [T]) {
        let dim = self.config.dim;
        let (row, slots) = values.split_at_mut(dim);
        self.config.init.fill(self.config.seed, id, row);
        for (slot, &initial) in slots.chunks_exact_mut(dim).zip(slot_init) {
            slot.fill(initial);
        }
    }

    /// Training lookups of `ids` (each occurrence counts) at `step` of the
    /// rule that trains the table, whose period is `decay_period` steps,
    /// for the ids of the stripes in `stripes` (others are skipped, so
    /// disjoint ranges can run in parallel).
    pub fn admit(
        &self,
        stripes: Range<usize>,
        ids: &[i64],
        step: i64,
        decay_period: i64,
    ) -> Result<(), KernelError> {
        self.check_stripes(&stripes)?;
        check_step(step)?;
        let period = decay_period;
        require("decay_period", period as f64, period >= 1, ">= 1")?;
        // A new entry is never discounted for periods before it existed.
        let periods = step / period;
        let min_count = self.config.min_count;
        let (starts, positions) = by_stripe(ids, &stripes);
        for (s, stripe_index) in stripes.enumerate() {
            let mut stripe = self.lock(stripe_index);
            for &position in &positions[starts[s]..starts[s + 1]] {
                let id = ids[position as usize];
                if let Some(at) = stripe.find(id) {
                    stripe.entry_mut(at).1.count += 1;
                    continue;
                }
                let pending = stripe.pending.entry(id).or_insert(Pending {
                    count: 0,
                    last_step: step,
                });
                pending.count += 1;
                pending.last_step = pending.last_step.max(step);
                if pending.count < min_count {
                    continue;
                }
                let count = pending.count;
                stripe.pending.remove(&id);
                let meta = EntryMeta {
                    id,
                    power: periods,
                    count,
                    last_step: step,
                };
                let slot_init = stripe.slot_init.clone();
                stripe.insert(meta, |values| self.fill_new(id, &slot_init, values));
            }
        }
        Ok(())
    }

    /// The rows of `ids` into `out` (`[ids, dim]`), zeros for ids not
    /// stored. Never inserts.
    pub fn gather(&self, ids: &[i64], out: &mut [T]) -> Result<(), KernelError> {
        let dim = self.config.dim;
        expect_len("out", out.len(), ids.len().saturating_mul(dim))?;
        let all = 0..STRIPES;
        let (starts, positions) = by_stripe(ids, &all);
        for stripe_index in all {
            let stripe = self.lock(stripe_index);
            let mine = &positions[starts[stripe_index]..starts[stripe_index + 1]];
            // Probes first (their misses overlap), then the copies.
            let found: Vec<Option<usize>> =
                mine.iter().map(|&p| stripe.find(ids[p as usize])).collect();
            for (&position, at) in mine.iter().zip(found) {
                let position = position as usize;
                let row = &mut out[position * dim..(position + 1) * dim];
                match at {
                    Some(at) => row.copy_from_slice(&stripe.entry(at).0[..dim]),
                    None => row.fill(T::ZERO),
                }
            }
        }
        Ok(())
    }

    /// One step of `rule` on the entries of `ids` in the stripes of
    /// `stripes`, `grad` holding one row per id: the rows of a repeated id
    /// are summed first (in order of position), so each entry gets one
    /// update; ids not stored are skipped (their gradient dropped). Each
    /// entry is brought up to the current period (lazily, by `power`) and
    /// updated as a row of a sparse apply; its `last_step` becomes `step`.
    #[inline(always)]
    pub fn apply_rule<R: UpdateRule<T, N>, const N: usize>(
        &self,
        stripes: Range<usize>,
        ids: &[i64],
        grad: &[T],
        step: i64,
        rule: &R,
    ) -> Result<(), KernelError> {
        self.check_stripes(&stripes)?;
        check_step(step)?;
        let slots = self.slots();
        require(
            "slots",
            N as f64,
            N == slots,
            "the table's slot count (a table trained by another rule)",
        )?;
        let dim = self.config.dim;
        expect_len("grad", grad.len(), ids.len().saturating_mul(dim))?;
        let lanes = Lanes::sparse_row::<T>(dim);
        let discount = rule.discount();
        let (starts, positions) = by_stripe(ids, &stripes);
        for (s, stripe_index) in stripes.enumerate() {
            let mine = &positions[starts[s]..starts[s + 1]];
            if mine.is_empty() {
                continue;
            }
            // Per stripe, before its lock: its ids are few, so the map
            // stays in cache; rows of ids seen once are not copied.
            let rows = StripeRows::sum(ids, grad, dim, mine);
            let mut stripe = self.lock(stripe_index);
            // The probes first, free of the update's long sqrt/div chains,
            // so the CPU overlaps their cache misses; then each block of
            // entries is loaded ahead of its updates, for the same reason.
            let found: Vec<(usize, &[T])> = rows
                .iter(grad, dim)
                .filter_map(|(id, row)| stripe.find(id).map(|at| (at, row)))
                .collect();
            for block in found.chunks(TOUCH_AHEAD) {
                stripe.touch(block.iter().map(|&(at, _)| at));
                for &(at, row) in block {
                    let (values, meta) = stripe.entry_mut(at);
                    let (var, slot_values) = values.split_at_mut(dim);
                    let mut slot_rows = slot_values.chunks_exact_mut(dim);
                    let mut slots: [&mut [T]; N] = std::array::from_fn(|_| {
                        slot_rows
                            .next()
                            .expect("an entry holds one row per slot (checked at new)")
                    });
                    if discount.is_behind(meta.power) {
                        let catch_up_slots = slots.each_mut().map(|slot| &mut **slot);
                        rule.catch_up(var, catch_up_slots, &mut meta.power, lanes);
                    }
                    rule.update(var, slots, row, lanes);
                    meta.last_step = step;
                }
            }
        }
        Ok(())
    }

    /// Removes entries with `step - last_step > steps_to_live`, and counts
    /// of ids not admitted whose last lookup is as old; returns how many
    /// entries went. Without `steps_to_live`, removes nothing.
    pub fn evict(&self, step: i64) -> Result<usize, KernelError> {
        check_step(step)?;
        let Some(ttl) = self.config.steps_to_live else {
            return Ok(0);
        };
        let expired = |last_step: i64| step.saturating_sub(last_step) > ttl;
        let mut evicted = 0;
        for stripe_index in 0..STRIPES {
            let mut stripe = self.lock(stripe_index);
            // From the end: the entry moved into a removed place was seen.
            for at in (0..stripe.len()).rev() {
                let meta = *stripe.entry(at).1;
                if expired(meta.last_step) {
                    stripe.remove(at);
                    stripe.evicted.insert(meta.id, step);
                    evicted += 1;
                }
            }
            stripe
                .pending
                .retain(|_, pending| !expired(pending.last_step));
        }
        Ok(evicted)
    }

    /// Stored entries, pending ids and bytes held.
    pub fn size(&self) -> TableSize {
        let mut size = TableSize::default();
        for stripe_index in 0..STRIPES {
            let stripe = self.lock(stripe_index);
            size.entries += stripe.len();
            size.pending += stripe.pending.len();
            size.bytes += stripe.bytes();
        }
        size
    }

    /// Every entry and pending count (`since = None`: a checkpoint), or the
    /// entries updated after step `since` and the ids evicted after it (a
    /// serving delta), in ascending id order.
    pub fn export(&self, since: Option<i64>) -> TableExport<T> {
        let dim = self.config.dim;
        let slots = self.slots();
        let mut entries: Vec<(i64, Vec<T>, EntryMeta)> = Vec::new();
        let mut pending: Vec<(i64, Pending)> = Vec::new();
        let mut evicted: Vec<i64> = Vec::new();
        for stripe_index in 0..STRIPES {
            let stripe = self.lock(stripe_index);
            for at in 0..stripe.len() {
                let (values, meta) = stripe.entry(at);
                if since.is_none_or(|s| meta.last_step > s) {
                    entries.push((meta.id, values.to_vec(), *meta));
                }
            }
            match since {
                None => pending.extend(stripe.pending.iter().map(|(&id, &p)| (id, p))),
                Some(s) => evicted.extend(
                    stripe
                        .evicted
                        .iter()
                        .filter(|&(_, &at)| at > s)
                        .map(|(&id, _)| id),
                ),
            }
        }
        entries.sort_unstable_by_key(|entry| entry.0);
        pending.sort_unstable_by_key(|entry| entry.0);
        evicted.sort_unstable();
        let mut out = TableExport {
            ids: Vec::with_capacity(entries.len()),
            values: Vec::with_capacity(entries.len() * dim),
            slots: vec![T::ZERO; slots * entries.len() * dim],
            power: Vec::with_capacity(entries.len()),
            count: Vec::with_capacity(entries.len()),
            last_step: Vec::with_capacity(entries.len()),
            pending_ids: Vec::with_capacity(pending.len()),
            pending_count: Vec::with_capacity(pending.len()),
            pending_last_step: Vec::with_capacity(pending.len()),
            evicted_ids: evicted,
        };
        for (k, (id, values, meta)) in entries.iter().enumerate() {
            out.ids.push(*id);
            out.values.extend_from_slice(&values[..dim]);
            for slot in 0..slots {
                let from = &values[(1 + slot) * dim..(2 + slot) * dim];
                let to = (slot * entries.len() + k) * dim;
                out.slots[to..to + dim].copy_from_slice(from);
            }
            out.power.push(meta.power);
            out.count.push(meta.count);
            out.last_step.push(meta.last_step);
        }
        for (id, p) in pending {
            out.pending_ids.push(id);
            out.pending_count.push(p.count);
            out.pending_last_step.push(p.last_step);
        }
        out
    }

    /// Replaces the table's content with the entries and pending counts of
    /// `data` (as [`Self::export`] with `since = None` writes them) whose id
    /// is `shard` mod `num_shards` (non-negative remainder): a checkpoint
    /// restored into any number of shards.
    pub fn import(
        &self,
        data: &TableData<'_, T>,
        shard: i64,
        num_shards: i64,
    ) -> Result<(), KernelError> {
        let dim = self.config.dim;
        let n = data.ids.len();
        require("num_shards", num_shards as f64, num_shards >= 1, ">= 1")?;
        require(
            "shard",
            shard as f64,
            (0..num_shards).contains(&shard),
            "in [0, num_shards)",
        )?;
        expect_len("values", data.values.len(), n.saturating_mul(dim))?;
        let slot_elements = n.saturating_mul(dim).saturating_mul(self.slots());
        expect_len("slots", data.slots.len(), slot_elements)?;
        expect_len("power", data.power.len(), n)?;
        expect_len("count", data.count.len(), n)?;
        expect_len("last_step", data.last_step.len(), n)?;
        let pending = data.pending_ids.len();
        expect_len("pending_count", data.pending_count.len(), pending)?;
        expect_len("pending_last_step", data.pending_last_step.len(), pending)?;
        let mut seen: IdMap<()> = IdMap::default();
        for &id in data.ids.iter().chain(data.pending_ids) {
            if seen.insert(id, ()).is_some() {
                return Err(KernelError::DuplicateId { id });
            }
        }
        let mine = |id: i64| id.rem_euclid(num_shards) == shard;
        let mut stripes: Vec<_> = (0..STRIPES).map(|s| self.lock(s)).collect();
        for stripe in &mut stripes {
            stripe.clear();
        }
        for (k, &id) in data.ids.iter().enumerate().filter(|&(_, &id)| mine(id)) {
            let meta = EntryMeta {
                id,
                power: data.power[k],
                count: data.count[k],
                last_step: data.last_step[k],
            };
            stripes[stripe_of(id)].insert(meta, |values| {
                let (row, slots) = values.split_at_mut(dim);
                row.copy_from_slice(&data.values[k * dim..(k + 1) * dim]);
                for (slot, to) in slots.chunks_exact_mut(dim).enumerate() {
                    let from = (slot * n + k) * dim;
                    to.copy_from_slice(&data.slots[from..from + dim]);
                }
            });
        }
        for (k, &id) in data.pending_ids.iter().enumerate() {
            if mine(id) {
                let p = Pending {
                    count: data.pending_count[k],
                    last_step: data.pending_last_step[k],
                };
                stripes[stripe_of(id)].pending.insert(id, p);
            }
        }
        Ok(())
    }
}

/// The gradient rows of one stripe's ids, repeated ids summed (in order of
/// position): each distinct id once, in order of its first position.
struct StripeRows<T> {
    /// (id, its row: a position of `grad`, or a row of `sums`).
    ids: Vec<(i64, RowAt)>,
    sums: Vec<T>,
}

#[derive(Clone, Copy)]
enum RowAt {
    Grad(usize),
    Sum(usize),
}

impl<T: Real> StripeRows<T> {
    fn sum(ids: &[i64], grad: &[T], dim: usize, positions: &[u32]) -> Self {
        let mut first: IdMap<usize> = IdMap::default();
        first.reserve(positions.len());
        let mut out = Self {
            ids: Vec::with_capacity(positions.len()),
            sums: Vec::new(),
        };
        for &position in positions {
            let position = position as usize;
            let id = ids[position];
            let row = &grad[position * dim..(position + 1) * dim];
            let k = *first.entry(id).or_insert_with(|| {
                out.ids.push((id, RowAt::Grad(position)));
                out.ids.len() - 1
            });
            match out.ids[k].1 {
                RowAt::Grad(p) if p == position => {}
                RowAt::Grad(p) => {
                    // A second occurrence: the sum gets a row of its own.
                    let at = out.sums.len() / dim;
                    out.sums.extend_from_slice(&grad[p * dim..(p + 1) * dim]);
                    for (o, &g) in out.sums[at * dim..].iter_mut().zip(row) {
                        *o += g;
                    }
                    out.ids[k].1 = RowAt::Sum(at);
                }
                RowAt::Sum(at) => {
                    for (o, &g) in out.sums[at * dim..(at + 1) * dim].iter_mut().zip(row) {
                        *o += g;
                    }
                }
            }
        }
        out
    }

    fn iter<'a>(&'a self, grad: &'a [T], dim: usize) -> impl Iterator<Item = (i64, &'a [T])> {
        self.ids.iter().map(move |&(id, at)| {
            let row = match at {
                RowAt::Grad(p) => &grad[p * dim..(p + 1) * dim],
                RowAt::Sum(at) => &self.sums[at * dim..(at + 1) * dim],
            };
            (id, row)
        })
    }
}
