//! One lock's worth of a table: the stored entries of the ids that hash to
//! it, the counts of ids not admitted yet and the log of evicted ids.
//!
//! Entries live in fixed-size chunks (an entry's row, then each slot,
//! contiguous) with their metadata beside them, so memory grows by one
//! chunk at a time rather than doubling; a removed entry's place is filled
//! by the last entry, so the chunks stay dense.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::super::Real;
use super::init::mix;

/// Entries per chunk.
const CHUNK_ENTRIES: usize = 256;

/// The bookkeeping of one stored entry (SPEC section 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// The id.
    pub id: i64,
    /// The last period the entry's slots were brought up to.
    pub power: i64,
    /// Training lookups of the id.
    pub count: i64,
    /// The step of its last update (of its creation before one).
    pub last_step: i64,
}

/// An id seen by training lookups but not admitted yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Training lookups so far.
    pub count: i64,
    /// The step of the last one.
    pub last_step: i64,
}

/// Hashes an `i64` key with SplitMix64's finalizer (ids are not chosen by
/// an adversary; SipHash would cost more than the lookup).
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = mix(self.0 ^ u64::from(byte));
        }
    }
    fn write_i64(&mut self, id: i64) {
        self.0 = mix(id as u64);
    }
}

pub(crate) type IdMap<V> = HashMap<i64, V, BuildHasherDefault<IdHasher>>;

struct Chunk<T> {
    values: Box<[T]>,
    meta: Vec<EntryMeta>,
}

/// The entries of one stripe.
pub(crate) struct Stripe<T> {
    dim: usize,
    /// What a new entry's slots start at (their number sets the stride).
    pub(crate) slot_init: Vec<T>,
    /// Elements per entry: the row and each slot.
    stride: usize,
    chunks: Vec<Chunk<T>>,
    len: usize,
    /// id -> position among the entries.
    positions: IdMap<u32>,
    pub(crate) pending: IdMap<Pending>,
    /// id -> the step it was evicted at (dropped when the id comes back).
    pub(crate) evicted: IdMap<i64>,
}

impl<T: Real> Stripe<T> {
    pub(crate) fn new(dim: usize, slot_init: Vec<T>) -> Self {
        Self {
            dim,
            stride: dim * (1 + slot_init.len()),
            slot_init,
            chunks: Vec::new(),
            len: 0,
            positions: IdMap::default(),
            pending: IdMap::default(),
            evicted: IdMap::default(),
        }
    }

    /// Stored entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The position of an id's entry.
    pub(crate) fn find(&self, id: i64) -> Option<usize> {
        self.positions.get(&id).map(|&p| p as usize)
    }

    /// The entry at a position: its values (row, then slots) and metadata.
    pub(crate) fn entry_mut(&mut self, position: usize) -> (&mut [T], &mut EntryMeta) {
        let stride = self.stride;
        let chunk = &mut self.chunks[position / CHUNK_ENTRIES];
        let at = position % CHUNK_ENTRIES;
        (
            &mut chunk.values[at * stride..(at + 1) * stride],
            &mut chunk.meta[at],
        )
    }

    /// As [`Self::entry_mut`], read-only.
    pub(crate) fn entry(&self, position: usize) -> (&[T], &EntryMeta) {
        let stride = self.stride;
        let chunk = &self.chunks[position / CHUNK_ENTRIES];
        let at = position % CHUNK_ENTRIES;
        (
            &chunk.values[at * stride..(at + 1) * stride],
            &chunk.meta[at],
        )
    }

    /// Reads a word of every cache line of these entries (values and
    /// metadata), so that their misses overlap before they are used.
    pub(crate) fn touch(&self, positions: impl Iterator<Item = usize>) {
        const LINE_ELEMENTS: usize = 64 / 4;
        let mut touched = 0i64;
        for at in positions {
            let (values, meta) = self.entry(at);
            touched ^= meta.power;
            for k in (0..values.len()).step_by(LINE_ELEMENTS) {
                touched ^= values[k].to_f64() as i64;
            }
        }
        std::hint::black_box(touched);
    }

    /// Appends an entry for an id that has none; `fill` writes its values.
    pub(crate) fn insert(&mut self, meta: EntryMeta, fill: impl FnOnce(&mut [T])) -> usize {
        let position = self.len;
        if position / CHUNK_ENTRIES == self.chunks.len() {
            self.chunks.push(Chunk {
                values: vec![T::ZERO; CHUNK_ENTRIES * self.stride].into_boxed_slice(),
                meta: Vec::with_capacity(CHUNK_ENTRIES),
            });
        }
        let stride = self.stride;
        let chunk = &mut self.chunks[position / CHUNK_ENTRIES];
        let at = position % CHUNK_ENTRIES;
        chunk.meta.push(meta);
        fill(&mut chunk.values[at * stride..(at + 1) * stride]);
        self.positions.insert(meta.id, position as u32);
        self.evicted.remove(&meta.id);
        self.len += 1;
        position
    }

    /// Removes the entry at a position, moving the last entry into it.
    pub(crate) fn remove(&mut self, position: usize) {
        let last = self.len - 1;
        let id = self.entry(position).1.id;
        if position != last {
            let stride = self.stride;
            let (from_chunk, from_at) = (last / CHUNK_ENTRIES, last % CHUNK_ENTRIES);
            let moved_meta = self.chunks[from_chunk].meta[from_at];
            let mut moved = vec![T::ZERO; stride];
            moved.copy_from_slice(
                &self.chunks[from_chunk].values[from_at * stride..(from_at + 1) * stride],
            );
            let (values, meta) = self.entry_mut(position);
            values.copy_from_slice(&moved);
            *meta = moved_meta;
            self.positions.insert(moved_meta.id, position as u32);
        }
        self.positions.remove(&id);
        let chunk = &mut self.chunks[last / CHUNK_ENTRIES];
        chunk.meta.pop();
        if chunk.meta.is_empty() {
            self.chunks.pop();
        }
        self.len = last;
    }

    /// Removes every entry, count and eviction record.
    pub(crate) fn clear(&mut self) {
        *self = Self::new(self.dim, std::mem::take(&mut self.slot_init));
    }

    /// New slots' initial values; their number may change only while the
    /// stripe is empty (the caller checks).
    pub(crate) fn set_slot_init(&mut self, slot_init: Vec<T>) {
        debug_assert!(self.len == 0 || slot_init.len() == self.slot_init.len());
        self.stride = self.dim * (1 + slot_init.len());
        self.slot_init = slot_init;
    }

    /// Bytes held, counting the hash maps' buckets and the chunks' slack.
    pub(crate) fn bytes(&self) -> usize {
        let chunk = CHUNK_ENTRIES * (self.stride * size_of::<T>() + size_of::<EntryMeta>());
        // A map of usable capacity c has about 8c/7 buckets of one control
        // byte and one key-value pair.
        let buckets = |capacity: usize, pair: usize| capacity * 8 / 7 * (pair + 1);
        self.chunks.len() * chunk
            + buckets(self.positions.capacity(), size_of::<(i64, u32)>())
            + buckets(self.pending.capacity(), size_of::<(i64, Pending)>())
            + buckets(self.evicted.capacity(), size_of::<(i64, i64)>())
    }
}
