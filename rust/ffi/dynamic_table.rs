//! Dynamic embedding table exports (float32 rows, int64 ids): a table is an
//! opaque `tf_swap_table` the caller creates, shares between threads and
//! frees. Training lookups are `tf_swap_table_admit` (per stripe range)
//! then `tf_swap_table_gather_f32` (per range of positions); inference
//! lookups the gather alone. Applies sum the rows of repeated ids first
//! and take the plan of the rule's `*_prepare`, per stripe range; disjoint
//! stripe ranges may run in parallel. An export is a snapshot the caller sizes, reads and frees.

use super::adagrad_swap::TfSwapAdagradSwapPlan;
use super::boundary::{Region, disjoint, elements, region, run, slice, slice_mut, write};
use super::ftrl_swap::TfSwapFtrlSwapPlan;
use super::status::{FfiError, TfSwapError};
use crate::kernels::discount::require;
use crate::kernels::dynamic_table::{
    DynamicTable, RowInit, STRIPES, TableConfig, TableData, TableExport,
};
use crate::kernels::{adagrad_swap, ftrl_swap};

/// A table of float32 rows (opaque to C).
pub struct TfSwapTable(DynamicTable<f32>);

/// An export snapshot (opaque to C).
pub struct TfSwapTableExport(TableExport<f32>);

/// A table's settings.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TfSwapTableConfig {
    /// Row width, >= 1.
    pub dim: usize,
    /// Slots of the update rule: 1 (Adagrad-SWAP) or 2 (FTRL-SWAP).
    pub slots: usize,
    /// Each slot's initial value (the second unused with one slot).
    pub slot_init: [f64; 2],
    /// A new row's distribution: 0 zeros, 1 uniform [a, b), 2 normal
    /// (mean a, stddev b), 3 truncated normal (mean a, stddev b).
    pub init: u32,
    /// The distribution's first parameter.
    pub init_a: f64,
    /// The distribution's second parameter.
    pub init_b: f64,
    /// The seed of every new row.
    pub seed: u64,
    /// Training lookups before an id is stored, >= 1.
    pub min_count: i64,
    /// Steps an entry lives without an update; < 0: forever.
    pub steps_to_live: i64,
}

/// How many ids a table holds, and its layout now.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TfSwapTableStats {
    /// Slots per entry.
    pub slots: usize,
    /// Stored entries.
    pub entries: usize,
    /// Ids counted but not admitted yet.
    pub pending: usize,
    /// Bytes the table holds.
    pub bytes: usize,
}

/// The lengths of an export snapshot's arrays.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TfSwapTableExportSizes {
    /// Slots per entry.
    pub slots: usize,
    /// Entries (`values` holds entries * dim, `slots` slots * entries * dim).
    pub entries: usize,
    /// Ids counted but not admitted (full export only).
    pub pending: usize,
    /// Ids evicted after the export's step (delta export only).
    pub evicted: usize,
}

impl TfSwapTableConfig {
    fn config(&self) -> Result<TableConfig, FfiError> {
        let slots = self.slots;
        let at_most_two = slots <= self.slot_init.len();
        require(
            "slots",
            slots as f64,
            at_most_two,
            "1 (Adagrad-SWAP) or 2 (FTRL-SWAP)",
        )?;
        Ok(TableConfig {
            dim: self.dim,
            slot_init: self.slot_init[..slots].to_vec(),
            init: RowInit::from_code(self.init, self.init_a, self.init_b)?,
            seed: self.seed,
            min_count: self.min_count,
            steps_to_live: (self.steps_to_live >= 0).then_some(self.steps_to_live),
        })
    }
}

/// # Safety
/// `table` is NULL or a live table from [`tf_swap_table_new_f32`].
unsafe fn table_ref<'a>(table: *const TfSwapTable) -> Result<&'a DynamicTable<f32>, FfiError> {
    // SAFETY: the caller guarantees `table` is NULL or live.
    let table = unsafe { table.as_ref() }.ok_or(FfiError::NullPointer("table"))?;
    Ok(&table.0)
}

/// # Safety
/// As [`tf_swap_table_new_f32`].
unsafe fn new_table(
    table: *mut *mut TfSwapTable,
    config: *const TfSwapTableConfig,
) -> Result<(), FfiError> {
    // SAFETY: the caller guarantees `config` is NULL or readable.
    let config = unsafe { config.as_ref() }.ok_or(FfiError::NullPointer("config"))?;
    let made = DynamicTable::new(config.config()?)?;
    if table.is_null() {
        return Err(FfiError::NullPointer("table"));
    }
    // SAFETY: non-NULL (checked) and writable by the contract.
    unsafe { write(table, "table", Box::into_raw(Box::new(TfSwapTable(made)))) }
}

/// Creates an empty table.
///
/// # Safety
/// `table` is NULL or writable; `config` is NULL or readable; `error` is
/// NULL or writable. On success `*table` is a table to free with
/// [`tf_swap_table_free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_table_new_f32(
    table: *mut *mut TfSwapTable,
    config: *const TfSwapTableConfig,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || new_table(table, config)) }
}

/// Frees a table (NULL: nothing).
///
/// # Safety
/// `table` is NULL or a table from [`tf_swap_table_new_f32`] that no call
/// uses any more; it must not be used after this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_table_free(table: *mut TfSwapTable) -> u32 {
    if !table.is_null() {
        // SAFETY: made by Box::into_raw and unused from now on (contract).
        drop(unsafe { Box::from_raw(table) });
    }
    0
}

/// # Safety
/// As [`tf_swap_table_set_slot_init`].
unsafe fn set_slot_init(
    table: *const TfSwapTable,
    slot_init: *const f64,
    slots: usize,
) -> Result<(), FfiError> {
    // SAFETY: forwarded.
    let table = unsafe { table_ref(table) }?;
    region("slot_init", slot_init, slots)?;
    // SAFETY: checked above; `slots` readable elements by the contract.
    let values = unsafe { slice(slot_init, slots) };
    Ok(table.set_slot_init(values)?)
}

/// Sets the initial values of new entries' slots (1 or 2 of them, as the
/// rule training the table has); their number may change only while the
/// table stores no entry.
///
/// # Safety
/// `table` is NULL or live; `slot_init` holds `slots` readable elements
/// (NULL only when 0); `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_table_set_slot_init(
    table: *const TfSwapTable,
    slot_init: *const f64,
    slots: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || set_slot_init(table, slot_init, slots)) }
}

/// The number of stripes of every table (`stripe_end` is at most this).
///
/// # Safety
/// `stripes` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_table_stripes(stripes: *mut usize) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe { run(std::ptr::null_mut(), || write(stripes, "stripes", STRIPES)) }
}

/// # Safety
/// As [`tf_swap_table_admit`].
unsafe fn admit(
    table: *const TfSwapTable,
    stripes: std::ops::Range<usize>,
    ids: *const i64,
    n: usize,
    step: i64,
    decay_period: i64,
) -> Result<(), FfiError> {
    // SAFETY: forwarded.
    let table = unsafe { table_ref(table) }?;
    region("ids", ids, n)?;
    // SAFETY: checked above; `n` readable elements by the contract.
    let ids = unsafe { slice(ids, n) };
    Ok(table.admit(stripes, ids, step, decay_period)?)
}

/// Training lookups of `n` ids at `step` of the rule training the table
/// (`decay_period` its T; a new entry gets `power = step / T`) for the ids
/// of stripes
/// `[stripe_begin, stripe_end)`: counts them and stores the ids admitted.
///
/// # Safety
/// `table` is NULL or live; `ids` holds `n` elements (NULL only when 0);
/// `error` is NULL or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
pub unsafe extern "C" fn tf_swap_table_admit(
    table: *const TfSwapTable,
    ids: *const i64,
    n: usize,
    stripe_begin: usize,
    stripe_end: usize,
    step: i64,
    decay_period: i64,
    error: *mut TfSwapError,
) -> u32 {
    let stripes = stripe_begin..stripe_end;
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || admit(table, stripes, ids, n, step, decay_period)) }
}

/// # Safety
/// As [`tf_swap_table_gather_f32`].
unsafe fn gather(
    table: *const TfSwapTable,
    out: *mut f32,
    ids: *const i64,
    n: usize,
) -> Result<(), FfiError> {
    // SAFETY: forwarded.
    let table = unsafe { table_ref(table) }?;
    let len = elements(n, table.config().dim)?;
    disjoint(
        &[region("out", out.cast_const(), len)?],
        &[region("ids", ids, n)?],
    )?;
    // SAFETY: checked above; lengths are the caller's contract.
    let (out, ids) = unsafe { (slice_mut(out, 0, len), slice(ids, n)) };
    Ok(table.gather(ids, out)?)
}

/// The rows of `n` ids into `out` (`n * dim` elements), zeros for ids not
/// stored; inserts nothing.
///
/// # Safety
/// `table` is NULL or live; `out` holds `n * dim` writable elements and
/// `ids` `n` readable ones (NULL only when empty), not overlapping;
/// `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_table_gather_f32(
    table: *const TfSwapTable,
    out: *mut f32,
    ids: *const i64,
    n: usize,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || gather(table, out, ids, n)) }
}

/// A table and one apply's ids and gradient rows, borrowed.
type Borrowed<'a> = (&'a DynamicTable<f32>, &'a [i64], &'a [f32]);

/// One apply's inputs as they cross the ABI.
struct ApplyInputs {
    table: *const TfSwapTable,
    stripes: std::ops::Range<usize>,
    ids: *const i64,
    grad: *const f32,
    n: usize,
}

impl ApplyInputs {
    /// # Safety
    /// As [`tf_swap_table_adagrad_swap_f32`].
    unsafe fn borrow<'a>(&self) -> Result<Borrowed<'a>, FfiError> {
        // SAFETY: forwarded.
        let table = unsafe { table_ref(self.table) }?;
        let len = elements(self.n, table.config().dim)?;
        region("ids", self.ids, self.n)?;
        region("grad", self.grad, len)?;
        // SAFETY: checked above; lengths are the caller's contract.
        Ok(unsafe { (table, slice(self.ids, self.n), slice(self.grad, len)) })
    }
}

/// # Safety
/// As [`tf_swap_table_adagrad_swap_f32`].
unsafe fn apply_adagrad(
    inputs: ApplyInputs,
    step: i64,
    plan: *const TfSwapAdagradSwapPlan,
) -> Result<(), FfiError> {
    // SAFETY: the caller guarantees `plan` is NULL or readable.
    let plan = unsafe { plan.as_ref() }.ok_or(FfiError::NullPointer("plan"))?;
    let plan = plan.plan()?;
    // SAFETY: forwarded.
    let (table, ids, grad) = unsafe { inputs.borrow() }?;
    Ok(adagrad_swap::apply_table(
        table,
        inputs.stripes,
        ids,
        grad,
        step,
        &plan,
    )?)
}

/// # Safety
/// As [`tf_swap_table_ftrl_swap_f32`].
unsafe fn apply_ftrl(
    inputs: ApplyInputs,
    step: i64,
    plan: *const TfSwapFtrlSwapPlan,
) -> Result<(), FfiError> {
    // SAFETY: the caller guarantees `plan` is NULL or readable.
    let plan = unsafe { plan.as_ref() }.ok_or(FfiError::NullPointer("plan"))?;
    let plan = plan.plan()?;
    // SAFETY: forwarded.
    let (table, ids, grad) = unsafe { inputs.borrow() }?;
    Ok(ftrl_swap::apply_table(
        table,
        inputs.stripes,
        ids,
        grad,
        step,
        &plan,
    )?)
}

/// Adagrad-SWAP (repeated ids' rows summed first) on the entries of `n` ids in stripes
/// `[stripe_begin, stripe_end)` of a one-slot table, `grad` holding a row
/// per id, with a plan from `tf_swap_adagrad_swap_prepare`; ids not stored
/// are skipped. Each entry's `last_step` becomes `step`.
///
/// # Safety
/// `table` is NULL or live; `ids` holds `n` and `grad` `n * dim` readable
/// elements (NULL only when empty); `plan` is NULL or readable; `error` is
/// NULL or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
pub unsafe extern "C" fn tf_swap_table_adagrad_swap_f32(
    table: *const TfSwapTable,
    ids: *const i64,
    grad: *const f32,
    n: usize,
    stripe_begin: usize,
    stripe_end: usize,
    step: i64,
    plan: *const TfSwapAdagradSwapPlan,
    error: *mut TfSwapError,
) -> u32 {
    let stripes = stripe_begin..stripe_end;
    let inputs = ApplyInputs {
        table,
        stripes,
        ids,
        grad,
        n,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || apply_adagrad(inputs, step, plan)) }
}

/// FTRL-SWAP (repeated ids' rows summed first) on the entries of `n` ids in stripes
/// `[stripe_begin, stripe_end)` of a two-slot table, with a plan from
/// `tf_swap_ftrl_swap_prepare`.
///
/// # Safety
/// As [`tf_swap_table_adagrad_swap_f32`].
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments, reason = "mirrors the op's inputs")]
pub unsafe extern "C" fn tf_swap_table_ftrl_swap_f32(
    table: *const TfSwapTable,
    ids: *const i64,
    grad: *const f32,
    n: usize,
    stripe_begin: usize,
    stripe_end: usize,
    step: i64,
    plan: *const TfSwapFtrlSwapPlan,
    error: *mut TfSwapError,
) -> u32 {
    let stripes = stripe_begin..stripe_end;
    let inputs = ApplyInputs {
        table,
        stripes,
        ids,
        grad,
        n,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || apply_ftrl(inputs, step, plan)) }
}

/// # Safety
/// As [`tf_swap_table_size`].
unsafe fn size(table: *const TfSwapTable, size: *mut TfSwapTableStats) -> Result<(), FfiError> {
    // SAFETY: forwarded.
    let table = unsafe { table_ref(table) }?;
    let (got, table_slots) = (table.size(), table.slots());
    let value = TfSwapTableStats {
        slots: table_slots,
        entries: got.entries,
        pending: got.pending,
        bytes: got.bytes,
    };
    // SAFETY: forwarded.
    unsafe { write(size, "size", value) }
}

/// Writes how many ids the table holds.
///
/// # Safety
/// `table` is NULL or live; `size` is NULL or writable; `error` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_table_size(
    table: *const TfSwapTable,
    size_out: *mut TfSwapTableStats,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || size(table, size_out)) }
}

/// # Safety
/// As [`tf_swap_table_evict`].
unsafe fn evict(table: *const TfSwapTable, step: i64, evicted: *mut usize) -> Result<(), FfiError> {
    if evicted.is_null() {
        return Err(FfiError::NullPointer("evicted"));
    }
    // SAFETY: forwarded.
    let count = unsafe { table_ref(table) }?.evict(step)?;
    // SAFETY: non-NULL (checked) and writable by the contract.
    unsafe { write(evicted, "evicted", count) }
}

/// Removes the entries not updated for more than `steps_to_live` steps
/// before `step` (and counts of ids not admitted as old); writes how many
/// entries went.
///
/// # Safety
/// `table` is NULL or live; `evicted` is NULL or writable; `error` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_table_evict(
    table: *const TfSwapTable,
    evicted: *mut usize,
    step: i64,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || evict(table, step, evicted)) }
}

/// # Safety
/// As [`tf_swap_table_export_begin_f32`].
unsafe fn export_begin(
    table: *const TfSwapTable,
    since: i64,
    snapshot: *mut *mut TfSwapTableExport,
    sizes: *mut TfSwapTableExportSizes,
) -> Result<(), FfiError> {
    // SAFETY: forwarded.
    let table = unsafe { table_ref(table) }?;
    if snapshot.is_null() {
        return Err(FfiError::NullPointer("snapshot"));
    }
    if sizes.is_null() {
        return Err(FfiError::NullPointer("sizes"));
    }
    let export = table.export((since >= 0).then_some(since));
    let value = TfSwapTableExportSizes {
        slots: table.slots(),
        entries: export.ids.len(),
        pending: export.pending_ids.len(),
        evicted: export.evicted_ids.len(),
    };
    // SAFETY: both non-NULL (checked) and writable by the contract.
    unsafe {
        write(sizes, "sizes", value)?;
        let boxed = Box::into_raw(Box::new(TfSwapTableExport(export)));
        write(snapshot, "snapshot", boxed)
    }
}

/// Takes a snapshot of the table: every entry and pending count when
/// `since < 0` (a checkpoint), else the entries updated after step `since`
/// and the ids evicted after it (a serving delta); writes its sizes.
///
/// # Safety
/// `table` is NULL or live; `snapshot` and `sizes` are NULL or writable;
/// `error` is NULL or writable. On success `*snapshot` is to be freed with
/// [`tf_swap_table_export_free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_table_export_begin_f32(
    table: *const TfSwapTable,
    snapshot: *mut *mut TfSwapTableExport,
    sizes: *mut TfSwapTableExportSizes,
    since: i64,
    error: *mut TfSwapError,
) -> u32 {
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || export_begin(table, since, snapshot, sizes)) }
}

/// The buffers of a snapshot's arrays, as the caller gives them.
struct ExportBuffers {
    ids: *mut i64,
    values: *mut f32,
    slots: *mut f32,
    power: *mut i64,
    count: *mut i64,
    last_step: *mut i64,
    pending_ids: *mut i64,
    pending_count: *mut i64,
    pending_last_step: *mut i64,
    evicted_ids: *mut i64,
}

/// # Safety
/// As [`tf_swap_table_export_read_f32`].
unsafe fn read_export(
    snapshot: *const TfSwapTableExport,
    out: &ExportBuffers,
) -> Result<(), FfiError> {
    // SAFETY: the caller guarantees `snapshot` is NULL or live.
    let data = &unsafe { snapshot.as_ref() }
        .ok_or(FfiError::NullPointer("snapshot"))?
        .0;
    let int_arrays: [(&'static str, *mut i64, &[i64]); 8] = [
        ("ids", out.ids, &data.ids),
        ("power", out.power, &data.power),
        ("count", out.count, &data.count),
        ("last_step", out.last_step, &data.last_step),
        ("pending_ids", out.pending_ids, &data.pending_ids),
        ("pending_count", out.pending_count, &data.pending_count),
        (
            "pending_last_step",
            out.pending_last_step,
            &data.pending_last_step,
        ),
        ("evicted_ids", out.evicted_ids, &data.evicted_ids),
    ];
    let float_arrays: [(&'static str, *mut f32, &[f32]); 2] = [
        ("values", out.values, &data.values),
        ("slots", out.slots, &data.slots),
    ];
    let mut written: Vec<Region> = Vec::new();
    for (what, ptr, from) in &int_arrays {
        written.push(region(what, ptr.cast_const(), from.len())?);
    }
    for (what, ptr, from) in &float_arrays {
        written.push(region(what, ptr.cast_const(), from.len())?);
    }
    disjoint(&written, &[])?;
    for (_, ptr, from) in int_arrays {
        // SAFETY: checked above; sized by the snapshot's sizes (contract).
        unsafe { slice_mut(ptr, 0, from.len()) }.copy_from_slice(from);
    }
    for (_, ptr, from) in float_arrays {
        // SAFETY: as above.
        unsafe { slice_mut(ptr, 0, from.len()) }.copy_from_slice(from);
    }
    Ok(())
}

/// Copies a snapshot's arrays out, each sized by its
/// [`TfSwapTableExportSizes`]: `ids`, `power`, `count`, `last_step` hold
/// `entries`, `values` `entries * dim`, `slots` `slots * entries * dim`
/// (slot-major), the `pending_*` arrays `pending`, `evicted_ids` `evicted`.
///
/// # Safety
/// `snapshot` is NULL or live; every array is writable for its size (NULL
/// only when empty) and none overlaps another; `error` is NULL or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments, reason = "one buffer per array")]
pub unsafe extern "C" fn tf_swap_table_export_read_f32(
    snapshot: *const TfSwapTableExport,
    ids: *mut i64,
    values: *mut f32,
    slots: *mut f32,
    power: *mut i64,
    count: *mut i64,
    last_step: *mut i64,
    pending_ids: *mut i64,
    pending_count: *mut i64,
    pending_last_step: *mut i64,
    evicted_ids: *mut i64,
    error: *mut TfSwapError,
) -> u32 {
    let out = ExportBuffers {
        ids,
        values,
        slots,
        power,
        count,
        last_step,
        pending_ids,
        pending_count,
        pending_last_step,
        evicted_ids,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || read_export(snapshot, &out)) }
}

/// Frees a snapshot (NULL: nothing).
///
/// # Safety
/// `snapshot` is NULL or from [`tf_swap_table_export_begin_f32`], unused
/// from now on.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tf_swap_table_export_free(snapshot: *mut TfSwapTableExport) -> u32 {
    if !snapshot.is_null() {
        // SAFETY: made by Box::into_raw and unused from now on (contract).
        drop(unsafe { Box::from_raw(snapshot) });
    }
    0
}

/// The arrays of an import, as the caller gives them.
struct ImportBuffers {
    ids: *const i64,
    values: *const f32,
    slots: *const f32,
    power: *const i64,
    count: *const i64,
    last_step: *const i64,
    n: usize,
    pending_ids: *const i64,
    pending_count: *const i64,
    pending_last_step: *const i64,
    pending: usize,
}

/// # Safety
/// As [`tf_swap_table_import_f32`].
unsafe fn import(
    table: *const TfSwapTable,
    from: &ImportBuffers,
    shard: i64,
    num_shards: i64,
) -> Result<(), FfiError> {
    // SAFETY: forwarded.
    let table = unsafe { table_ref(table) }?;
    let (n, pending) = (from.n, from.pending);
    let rows = elements(n, table.config().dim)?;
    let slot_len = elements(rows, table.slots())?;
    for (what, ptr, len) in [
        ("ids", from.ids, n),
        ("power", from.power, n),
        ("count", from.count, n),
        ("last_step", from.last_step, n),
        ("pending_ids", from.pending_ids, pending),
        ("pending_count", from.pending_count, pending),
        ("pending_last_step", from.pending_last_step, pending),
    ] {
        region(what, ptr, len)?;
    }
    region("values", from.values, rows)?;
    region("slots", from.slots, slot_len)?;
    // SAFETY: checked above; lengths are the caller's contract.
    let data = unsafe {
        TableData {
            ids: slice(from.ids, n),
            values: slice(from.values, rows),
            slots: slice(from.slots, slot_len),
            power: slice(from.power, n),
            count: slice(from.count, n),
            last_step: slice(from.last_step, n),
            pending_ids: slice(from.pending_ids, pending),
            pending_count: slice(from.pending_count, pending),
            pending_last_step: slice(from.pending_last_step, pending),
        }
    };
    Ok(table.import(&data, shard, num_shards)?)
}

/// Replaces the table's content with the `n` entries and `pending` counts
/// given (laid out as an export) whose id is `shard` mod `num_shards`
/// (non-negative remainder). Nothing changes when a check fails.
///
/// # Safety
/// `table` is NULL or live; `ids`, `power`, `count`, `last_step` hold `n`
/// readable elements, `values` `n * dim`, `slots` `slots * n * dim`, the
/// `pending_*` arrays `pending` (NULL only when empty); `error` is NULL or
/// writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments, reason = "one buffer per array")]
pub unsafe extern "C" fn tf_swap_table_import_f32(
    table: *const TfSwapTable,
    ids: *const i64,
    values: *const f32,
    slots: *const f32,
    power: *const i64,
    count: *const i64,
    last_step: *const i64,
    n: usize,
    pending_ids: *const i64,
    pending_count: *const i64,
    pending_last_step: *const i64,
    pending: usize,
    shard: i64,
    num_shards: i64,
    error: *mut TfSwapError,
) -> u32 {
    let from = ImportBuffers {
        ids,
        values,
        slots,
        power,
        count,
        last_step,
        n,
        pending_ids,
        pending_count,
        pending_last_step,
        pending,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { run(error, || import(table, &from, shard, num_shards)) }
}
