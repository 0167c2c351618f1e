//! Publication of immutable forwarding state to the workers: one atomic pointer swap per update,
//! quiescent-state-based reclamation (QSBR) of the old value.
//!
//! The control thread owns a [`Publisher`]; each worker lcore owns one [`Reader`]. At the start of
//! a burst the worker calls [`Reader::read`] (one `Acquire` load of the current pointer) and uses
//! the returned reference for the whole burst; at the end of the burst (or the top of the next
//! loop iteration) it calls [`Reader::quiescent`] (one `Acquire` load of the global epoch and, only
//! when the epoch moved, one `Release` store into the reader's own cache-line-padded slot). The
//! read side has no read-modify-write, no lock, no allocation and never waits, so a swap never
//! delays or loses a packet: a burst is processed entirely with the table it started with.
//!
//! [`Publisher::publish`] swaps in a new value, bumps the global epoch (which is also the
//! publication *generation*) and puts the old value on a bounded retire list tagged with that
//! epoch. [`Publisher::reclaim`] frees every retired value whose epoch is `<=` the minimum epoch
//! reported by the online readers. When the retire list is full, `publish` first reclaims and, if
//! still full, hands the value back ([`RetireListFull`]); [`Publisher::publish_wait`] retries on
//! the control thread. Workers are never made to wait.
//!
//! # Contract for workers
//!
//! Call `quiescent()` at least once per loop iteration, or `offline()` before blocking or idling
//! (an offline reader holds no reference and does not hold back reclamation; the next `read()`
//! brings it back online). A dropped reader releases its slot, so a dead worker does not stall
//! reclamation either. References returned by `read()` borrow the reader mutably, so the borrow
//! checker forbids calling `quiescent()`/`offline()` (or dropping the reader) while one is alive.
//!
//! # Why a retired value is unused once every reader's epoch is `>=` its retire epoch
//!
//! The publisher does, in program order: (W1) `current.swap(new)`, (W2) `epoch.store(t)` with
//! `Release`, and later in `reclaim` (W3) a `SeqCst` fence, (W4) `Acquire` loads of every slot, and
//! (W5) frees the values retired at an epoch `<= min(slots)`. A reader's quiescent point is (R1)
//! `e = epoch.load(Acquire)` followed by (R2) `slot.store(e, Release)`.
//!
//! * Accesses *before* the quiescent point: every access through a reference from `read()` is
//!   sequenced before R2 (the borrow ends before `quiescent` can be called). If W4 reads a value
//!   `e >= t` from the slot, W4 synchronises with R2, so those accesses happen before the free.
//! * Loads *after* the quiescent point: `e >= t` means R1 read W2 or a later epoch store of the same
//!   (single) publisher thread, each sequenced after W1; R1 synchronises with that store, so W1
//!   happens before every later `current.load` of the reader, which by coherence returns the value
//!   stored by W1 or a newer one, never the retired pointer. So a pointer loaded after the
//!   quiescent point has a retire epoch `> e`, and skipping the store when `e` did not change is
//!   sound.
//! * Going online (registration, `online()`, the implicit online in `read()`) is the store-buffer
//!   case: the reader stores its epoch, issues a `SeqCst` fence and only then loads `current`; the
//!   publisher swaps `current`, issues the `SeqCst` fence W3 and then loads the slot. Both fences
//!   are in the single total order `S`; if the reader's fence comes first, W4 sees the online
//!   epoch (which is `< t` unless the reader already saw W2, as above); if the publisher's comes
//!   first, the reader's load of `current` sees W1 or later. Either way the reader never uses a
//!   value the publisher frees. An offline slot (`u64::MAX`) is written with `Release` after the
//!   reader's last access, so freeing after reading it is ordered like a quiescent point.
//!
//! Retire epochs increase monotonically, so the retire list is a FIFO and `reclaim` pops from the
//! front. Values are dropped on the control thread (in `reclaim`, `publish`, or when the publisher
//! drops), never on a worker — unless the publisher is dropped before the last reader, in which
//! case the last owner of the shared state drops what is left.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default number of reader slots: DPDK's `RTE_MAX_LCORE`.
pub const MAX_READERS: usize = 128;
/// Default retire-list capacity: how many superseded values may await quiescence at once.
pub const DEFAULT_RETIRE_CAPACITY: usize = 64;

/// Slot epoch of a free or offline reader: never holds back reclamation (it is the maximum).
const OFFLINE: u64 = u64::MAX;

/// A published value and the generation that published it (0 for the initial value).
struct Node<T> {
    generation: u64,
    value: T,
}

/// One reader's slot. 128-byte aligned so two workers never share a cache line, including the
/// adjacent-line prefetch pair on x86 (as crossbeam's `CachePadded`).
#[repr(align(128))]
struct Slot {
    /// Epoch of the reader's last quiescent point, or [`OFFLINE`]. Written only by the reader.
    epoch: AtomicU64,
    /// Generation of the value the reader last read (for swap-to-effect latency; statistics only).
    seen: AtomicU64,
    /// Whether a [`Reader`] owns this slot.
    claimed: AtomicBool,
}

/// A value taken out of `current`, waiting until no reader can still hold it.
struct Retired<T> {
    node: NonNull<Node<T>>,
    epoch: u64,
}

// SAFETY: a `Retired<T>` uniquely owns a `Box<Node<T>>` that readers may still reference through
// `&T` on other threads until it is freed; moving it to another thread (which may then drop the
// `T`) is sound when `T` is `Send` and shared references to it are when `T` is `Sync`.
unsafe impl<T: Send + Sync> Send for Retired<T> {}

impl<T> Retired<T> {
    /// Drops the retired value.
    ///
    /// # Safety
    /// No reader may hold a reference to the value any more (its epoch was passed by every online
    /// reader, or no reader exists).
    unsafe fn free(self) {
        // SAFETY: `node` came from `Box::into_raw` in `publish`/`Publisher::new` and was swapped
        // out of `current`, so this is the only owner; the caller guarantees no reader uses it.
        drop(unsafe { Box::from_raw(self.node.as_ptr()) });
    }
}

/// State shared by the publisher and its readers.
struct Shared<T> {
    current: AtomicPtr<Node<T>>,
    /// Global epoch == number of publications so far (the current generation).
    epoch: AtomicU64,
    slots: Box<[Slot]>,
    /// Values still retired when the publisher was dropped; freed with the shared state.
    orphans: Mutex<Vec<Retired<T>>>,
    /// `Shared<T>` owns `Box<Node<T>>`s: Send/Sync only as far as `T` allows.
    _owns: PhantomData<Box<Node<T>>>,
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // No `Reader` or `Publisher` is left (each holds an `Arc`), so nothing references any node.
        let orphans = std::mem::take(self.orphans.get_mut().unwrap_or_else(|e| e.into_inner()));
        for r in orphans {
            // SAFETY: no reader exists any more.
            unsafe { r.free() };
        }
        let cur = *self.current.get_mut();
        // SAFETY: `current` always holds a pointer from `Box::into_raw`, owned by the shared state.
        drop(unsafe { Box::from_raw(cur) });
    }
}

/// `publish` found the retire list full even after reclaiming: some online reader has not passed
/// a quiescent point since an old value was retired. The value is handed back unpublished.
pub struct RetireListFull<T> {
    /// The value that was not published.
    pub value: T,
    /// The retire list's capacity.
    pub capacity: usize,
}

impl<T> fmt::Debug for RetireListFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetireListFull")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for RetireListFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "retire list full: {} superseded values await a quiescent point of every online reader",
            self.capacity
        )
    }
}

impl<T> std::error::Error for RetireListFull<T> {}

/// Every reader slot is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all {capacity} reader slots are registered")]
pub struct ReaderSlotsFull {
    /// Number of reader slots.
    pub capacity: usize,
}

/// The control-thread side: owns the current value and the retire list.
pub struct Publisher<T: Send + Sync> {
    shared: Arc<Shared<T>>,
    retired: VecDeque<Retired<T>>,
    retire_capacity: usize,
}

impl<T: Send + Sync> Publisher<T> {
    /// A publisher of `initial` with [`MAX_READERS`] reader slots and a retire list of
    /// [`DEFAULT_RETIRE_CAPACITY`].
    pub fn new(initial: T) -> Self {
        Self::with_capacity(initial, MAX_READERS, DEFAULT_RETIRE_CAPACITY)
    }

    /// A publisher with `readers` reader slots and room for `retire_capacity` superseded values
    /// (both at least 1). All memory is allocated here; `publish` allocates only the new node.
    pub fn with_capacity(initial: T, readers: usize, retire_capacity: usize) -> Self {
        let slots = (0..readers.max(1))
            .map(|_| Slot {
                epoch: AtomicU64::new(OFFLINE),
                seen: AtomicU64::new(0),
                claimed: AtomicBool::new(false),
            })
            .collect();
        let node = Box::into_raw(Box::new(Node {
            generation: 0,
            value: initial,
        }));
        let retire_capacity = retire_capacity.max(1);
        Publisher {
            shared: Arc::new(Shared {
                current: AtomicPtr::new(node),
                epoch: AtomicU64::new(0),
                slots,
                orphans: Mutex::new(Vec::new()),
                _owns: PhantomData,
            }),
            retired: VecDeque::with_capacity(retire_capacity),
            retire_capacity,
        }
    }

    /// Registers a reader (one per worker), online from the start. Not for the packet path.
    pub fn reader(&self) -> Result<Reader<T>, ReaderSlotsFull> {
        let slots = &self.shared.slots;
        let index = slots
            .iter()
            .position(|s| {
                s.claimed
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or(ReaderSlotsFull {
                capacity: slots.len(),
            })?;
        slots[index].seen.store(0, Ordering::Relaxed);
        let mut reader = Reader {
            shared: Arc::clone(&self.shared),
            index,
            epoch: OFFLINE,
            seen: 0,
        };
        reader.online();
        Ok(reader)
    }

    /// Publishes `value` with one pointer swap and retires the previous value; returns the new
    /// generation. Reclaims first if the retire list is full, and hands `value` back if it is still
    /// full (some online reader has not passed a quiescent point).
    pub fn publish(&mut self, value: T) -> Result<u64, RetireListFull<T>> {
        if self.retired.len() >= self.retire_capacity {
            self.reclaim();
            if self.retired.len() >= self.retire_capacity {
                return Err(RetireListFull {
                    value,
                    capacity: self.retire_capacity,
                });
            }
        }
        // Only this thread writes the epoch, so a load + store is the increment.
        let generation = self.shared.epoch.load(Ordering::Relaxed) + 1;
        let node = Box::into_raw(Box::new(Node { generation, value }));
        // W1: after this, new `read()`s return the new value.
        let old = self.shared.current.swap(node, Ordering::AcqRel);
        // W2: readers that see this epoch at a quiescent point see the swap too (module docs).
        self.shared.epoch.store(generation, Ordering::Release);
        self.retired.push_back(Retired {
            node: NonNull::new(old).expect("current is never null"),
            epoch: generation,
        });
        Ok(generation)
    }

    /// [`publish`](Self::publish), retrying on this (control) thread until the retire list has
    /// room or `timeout` has passed. Workers are never waited for actively: they only need to
    /// keep passing quiescent points.
    pub fn publish_wait(&mut self, value: T, timeout: Duration) -> Result<u64, RetireListFull<T>> {
        let start = Instant::now();
        let mut value = value;
        let mut spins = 0u32;
        loop {
            match self.publish(value) {
                Ok(g) => return Ok(g),
                Err(full) if start.elapsed() >= timeout => return Err(full),
                Err(full) => value = full.value,
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(10));
            }
        }
    }

    /// Frees every retired value that no online reader can still hold; returns how many.
    pub fn reclaim(&mut self) -> usize {
        if self.retired.is_empty() {
            return 0;
        }
        // W3: orders the swaps before the slot loads against readers coming online (module docs).
        fence(Ordering::SeqCst);
        let min = self.min_reader_epoch();
        let mut freed = 0;
        while let Some(r) = self.retired.front() {
            if r.epoch > min {
                break;
            }
            let r = self.retired.pop_front().expect("front exists");
            // SAFETY: every online reader reported a quiescent point at epoch >= `r.epoch` (or is
            // offline/unregistered), so none holds the value (module docs).
            unsafe { r.free() };
            freed += 1;
        }
        freed
    }

    /// W4: the minimum epoch over online readers ([`OFFLINE`] = `u64::MAX` if none).
    fn min_reader_epoch(&self) -> u64 {
        self.shared
            .slots
            .iter()
            .map(|s| s.epoch.load(Ordering::Acquire))
            .min()
            .unwrap_or(OFFLINE)
    }

    /// The current generation: the number of values published so far (0 = the initial value).
    pub fn generation(&self) -> u64 {
        self.shared.epoch.load(Ordering::Relaxed)
    }

    /// The current value, as the control thread sees it.
    pub fn current(&self) -> &T {
        let p = self.shared.current.load(Ordering::Acquire);
        // SAFETY: only `publish`/`reclaim` (which take `&mut self`) retire and free nodes, so the
        // node stays allocated while this `&self` borrow lives.
        unsafe { &(*p).value }
    }

    /// Superseded values not yet freed (at most [`retire_capacity`](Self::retire_capacity)).
    pub fn pending(&self) -> usize {
        self.retired.len()
    }

    /// Capacity of the retire list.
    pub fn retire_capacity(&self) -> usize {
        self.retire_capacity
    }

    /// The lowest generation read by any online reader, or `None` if no reader is online. The
    /// swap-to-effect latency of generation `g` is the time from `publish` until this is `>= g`.
    pub fn min_seen_generation(&self) -> Option<u64> {
        self.shared
            .slots
            .iter()
            .filter(|s| s.epoch.load(Ordering::Acquire) != OFFLINE)
            .map(|s| s.seen.load(Ordering::Relaxed))
            .min()
    }

    /// Number of registered readers (online or offline).
    pub fn readers(&self) -> usize {
        self.shared
            .slots
            .iter()
            .filter(|s| s.claimed.load(Ordering::Relaxed))
            .count()
    }
}

impl<T: Send + Sync> Drop for Publisher<T> {
    fn drop(&mut self) {
        self.reclaim();
        if !self.retired.is_empty() {
            // Readers may still hold these; they go with the shared state, freed by its last owner.
            let mut orphans = self
                .shared
                .orphans
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            orphans.extend(self.retired.drain(..));
        }
    }
}

impl<T: Send + Sync> fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("generation", &self.generation())
            .field("pending", &self.retired.len())
            .field("readers", &self.readers())
            .finish()
    }
}

/// A worker's handle: `read()` at the start of a burst, `quiescent()` at its end. `Send` (move it
/// to its lcore), not `Clone`; dropping it deregisters the slot.
pub struct Reader<T> {
    shared: Arc<Shared<T>>,
    index: usize,
    /// Copy of this reader's slot epoch (the slot is written only by this reader).
    epoch: u64,
    /// Generation of the value last read.
    seen: u64,
}

impl<T> Reader<T> {
    fn slot(&self) -> &Slot {
        &self.shared.slots[self.index]
    }

    /// The current value, valid until the next [`quiescent`](Self::quiescent),
    /// [`offline`](Self::offline) or drop (the borrow enforces it). One `Acquire` load; brings an
    /// offline reader back online first.
    #[inline]
    pub fn read(&mut self) -> &T {
        if self.epoch == OFFLINE {
            self.online();
        }
        let p = self.shared.current.load(Ordering::Acquire);
        // SAFETY: this reader is online, and the node loaded now has a retire epoch greater than
        // the epoch in its slot (module docs), so `reclaim` cannot free it before this reader's
        // next quiescent point, offline or drop, all of which need the `&mut self` borrowed here.
        let node = unsafe { &*p };
        if node.generation != self.seen {
            self.seen = node.generation;
            self.slot().seen.store(node.generation, Ordering::Relaxed);
        }
        &node.value
    }

    /// Reports a quiescent point: this reader holds no reference from an earlier `read()`.
    /// No read-modify-write, no lock; a store only when the epoch moved. No-op while offline.
    #[inline]
    pub fn quiescent(&mut self) {
        if self.epoch == OFFLINE {
            return;
        }
        // R1, R2.
        let e = self.shared.epoch.load(Ordering::Acquire);
        if e != self.epoch {
            self.epoch = e;
            self.slot().epoch.store(e, Ordering::Release);
        }
    }

    /// Stops holding back reclamation, e.g. before the worker sleeps or blocks. The next `read()`
    /// (or [`online`](Self::online)) resumes.
    pub fn offline(&mut self) {
        if self.epoch != OFFLINE {
            self.epoch = OFFLINE;
            self.slot().epoch.store(OFFLINE, Ordering::Release);
        }
    }

    /// Resumes after [`offline`](Self::offline) (`read()` does this implicitly). Costs a `SeqCst`
    /// fence, so call it on state changes, not per burst.
    pub fn online(&mut self) {
        if self.epoch != OFFLINE {
            return;
        }
        let e = self.shared.epoch.load(Ordering::Acquire);
        self.epoch = e;
        self.slot().epoch.store(e, Ordering::Release);
        // Store-buffer ordering against the publisher's fence in `reclaim` (module docs).
        fence(Ordering::SeqCst);
    }

    /// Whether this reader is online (holds back reclamation until its next quiescent point).
    pub fn is_online(&self) -> bool {
        self.epoch != OFFLINE
    }

    /// Generation of the value this reader last read (0 = the initial value).
    pub fn seen_generation(&self) -> u64 {
        self.seen
    }

    /// Index of this reader's slot.
    pub fn slot_index(&self) -> usize {
        self.index
    }
}

impl<T> Drop for Reader<T> {
    fn drop(&mut self) {
        self.offline();
        self.slot().claimed.store(false, Ordering::Release);
    }
}

impl<T> fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("slot", &self.index)
            .field("online", &self.is_online())
            .field("seen_generation", &self.seen)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    use std::thread;

    const ALIVE: u64 = 0x00C0_FFEE_D00D_F00D;

    /// Per-id drop counters, to check "dropped exactly once".
    #[derive(Clone)]
    struct Drops(Arc<Vec<AtomicUsize>>);

    impl Drops {
        fn new(n: usize) -> Self {
            Drops(Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect()))
        }
        fn count(&self, id: usize) -> usize {
            self.0[id].load(Ordering::SeqCst)
        }
        fn total(&self) -> usize {
            self.0.iter().map(|c| c.load(Ordering::SeqCst)).sum()
        }
        fn assert_each_once(&self, upto: usize) {
            for id in 0..upto {
                assert_eq!(
                    self.count(id),
                    1,
                    "value {id} dropped {} times",
                    self.count(id)
                );
            }
        }
    }

    /// A value that checks its own integrity and poisons itself on drop.
    struct Tracked {
        id: usize,
        words: [u64; 8],
        alive: u64,
        drops: Drops,
    }

    impl Tracked {
        fn new(id: usize, drops: &Drops) -> Self {
            Tracked {
                id,
                words: [id as u64; 8],
                alive: ALIVE,
                drops: drops.clone(),
            }
        }
        fn check(&self) -> usize {
            assert_eq!(
                std::hint::black_box(self.alive),
                ALIVE,
                "use after free of {}",
                self.id
            );
            assert!(self.words.iter().all(|&w| w == self.id as u64));
            self.id
        }
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            assert_eq!(self.alive, ALIVE, "double drop of {}", self.id);
            // SAFETY: plain write through `&mut self`; volatile so it is not elided as dead.
            unsafe { std::ptr::write_volatile(&mut self.alive, 0) };
            self.drops.0[self.id].fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn held_value_survives_publish_until_quiescent() {
        let drops = Drops::new(3);
        let mut p = Publisher::with_capacity(Tracked::new(0, &drops), 4, 4);
        let mut r = p.reader().unwrap();
        assert_eq!(r.read().check(), 0);
        // The reference is dead here (borrow), but the reader has not passed a quiescent point.
        assert_eq!(p.publish(Tracked::new(1, &drops)).unwrap(), 1);
        assert_eq!(p.reclaim(), 0);
        assert_eq!(drops.count(0), 0);
        r.quiescent();
        assert_eq!(p.reclaim(), 1);
        assert_eq!(drops.count(0), 1);
        assert_eq!(r.read().check(), 1);
        assert_eq!(r.seen_generation(), 1);
        drop(r);
        drop(p);
        drops.assert_each_once(2);
    }

    #[test]
    fn reader_thread_holds_reference_across_publish() {
        let drops = Drops::new(3);
        let mut p = Publisher::with_capacity(Tracked::new(0, &drops), 4, 4);
        let mut r = p.reader().unwrap();
        let (to_main, from_reader) = mpsc::channel();
        let (to_reader, from_main) = mpsc::channel::<()>();
        let t = thread::spawn(move || {
            let v = r.read();
            assert_eq!(v.check(), 0);
            to_main.send(()).unwrap();
            from_main.recv().unwrap(); // main published and tried to reclaim
            assert_eq!(v.check(), 0, "held value changed under the reader");
            r.quiescent();
            to_main.send(()).unwrap();
            from_main.recv().unwrap();
            assert_eq!(r.read().check(), 1);
            r
        });
        from_reader.recv().unwrap();
        p.publish(Tracked::new(1, &drops)).unwrap();
        assert_eq!(p.reclaim(), 0);
        assert_eq!(drops.count(0), 0);
        to_reader.send(()).unwrap();
        from_reader.recv().unwrap();
        assert_eq!(p.reclaim(), 1);
        assert_eq!(drops.count(0), 1);
        to_reader.send(()).unwrap();
        let r = t.join().unwrap();
        drop(r);
        drop(p);
        drops.assert_each_once(2);
    }

    #[test]
    fn dropped_reader_does_not_block_reclaim() {
        let drops = Drops::new(4);
        let mut p = Publisher::with_capacity(Tracked::new(0, &drops), 2, 4);
        let mut stuck = p.reader().unwrap();
        let mut live = p.reader().unwrap();
        stuck.read().check();
        live.read().check();
        p.publish(Tracked::new(1, &drops)).unwrap();
        live.quiescent();
        assert_eq!(p.reclaim(), 0, "stuck reader still online");
        // A worker thread that dies drops its reader.
        thread::spawn(move || drop(stuck)).join().unwrap();
        assert_eq!(p.reclaim(), 1);
        assert_eq!(p.readers(), 1);
        // Its slot is reusable.
        let mut again = p.reader().unwrap();
        assert_eq!(again.read().check(), 1);
        drop((again, live, p));
        drops.assert_each_once(2);
    }

    #[test]
    fn offline_reader_does_not_block_reclaim_and_resumes_on_read() {
        let drops = Drops::new(4);
        let mut p = Publisher::with_capacity(Tracked::new(0, &drops), 2, 4);
        let mut r = p.reader().unwrap();
        r.read().check();
        r.offline();
        assert!(!r.is_online());
        p.publish(Tracked::new(1, &drops)).unwrap();
        p.publish(Tracked::new(2, &drops)).unwrap();
        assert_eq!(p.reclaim(), 2);
        assert_eq!(p.min_seen_generation(), None);
        r.quiescent(); // no-op while offline
        assert!(!r.is_online());
        assert_eq!(r.read().check(), 2);
        assert!(r.is_online());
        p.publish(Tracked::new(3, &drops)).unwrap();
        assert_eq!(p.reclaim(), 0, "online again: holds back reclamation");
        r.offline();
        r.online();
        assert_eq!(
            p.reclaim(),
            1,
            "online() after the retire is a quiescent point"
        );
        drop((r, p));
        drops.assert_each_once(4);
    }

    #[test]
    fn retire_list_is_bounded() {
        let drops = Drops::new(8);
        let mut p = Publisher::with_capacity(Tracked::new(0, &drops), 2, 2);
        let mut r = p.reader().unwrap();
        r.read().check();
        p.publish(Tracked::new(1, &drops)).unwrap();
        p.publish(Tracked::new(2, &drops)).unwrap();
        assert_eq!(p.pending(), 2);
        let full = p.publish(Tracked::new(3, &drops)).unwrap_err();
        assert_eq!(full.capacity, 2);
        assert_eq!(full.value.check(), 3, "value handed back intact");
        assert!(full.to_string().contains("retire list full"));
        assert_eq!(p.generation(), 2, "nothing was published");
        assert_eq!(p.current().check(), 2);
        let full = p
            .publish_wait(full.value, Duration::from_millis(5))
            .unwrap_err();
        assert_eq!(p.pending(), 2);
        r.quiescent();
        // `publish` reclaims by itself when full.
        assert_eq!(p.publish(full.value).unwrap(), 3);
        assert_eq!(p.pending(), 1);
        assert_eq!(drops.total(), 2);
        drop((r, p));
        drops.assert_each_once(4);
    }

    #[test]
    fn publish_wait_succeeds_once_reader_passes_quiescent_point() {
        let drops = Drops::new(4);
        let mut p = Publisher::with_capacity(Tracked::new(0, &drops), 2, 1);
        let mut r = p.reader().unwrap();
        r.read().check();
        p.publish(Tracked::new(1, &drops)).unwrap();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            r.quiescent();
            r
        });
        let g = p
            .publish_wait(Tracked::new(2, &drops), Duration::from_secs(10))
            .unwrap();
        assert_eq!(g, 2);
        drop((t.join().unwrap(), p));
        drops.assert_each_once(3);
    }

    #[test]
    fn reader_slots_are_bounded() {
        let p = Publisher::with_capacity(0u32, 2, 2);
        let a = p.reader().unwrap();
        let _b = p.reader().unwrap();
        assert_eq!(p.reader().unwrap_err(), ReaderSlotsFull { capacity: 2 });
        drop(a);
        assert!(p.reader().is_ok());
    }

    #[test]
    fn generation_and_seen_generation() {
        let mut p = Publisher::with_capacity(10u32, 4, 4);
        let mut a = p.reader().unwrap();
        let mut b = p.reader().unwrap();
        assert_eq!(p.generation(), 0);
        assert_eq!(*a.read(), 10);
        assert_eq!(p.publish(11).unwrap(), 1);
        assert_eq!(p.generation(), 1);
        assert_eq!(p.min_seen_generation(), Some(0));
        a.quiescent();
        assert_eq!(*a.read(), 11);
        assert_eq!(a.seen_generation(), 1);
        assert_eq!(p.min_seen_generation(), Some(0), "b has not read yet");
        b.quiescent();
        assert_eq!(*b.read(), 11);
        assert_eq!(p.min_seen_generation(), Some(1));
    }

    #[test]
    fn readers_outliving_publisher_keep_values_alive() {
        let drops = Drops::new(4);
        let mut p = Publisher::with_capacity(Tracked::new(0, &drops), 2, 4);
        let mut r = p.reader().unwrap();
        r.read().check();
        p.publish(Tracked::new(1, &drops)).unwrap();
        drop(p);
        assert_eq!(drops.total(), 0, "reader may still hold value 0");
        r.quiescent();
        assert_eq!(r.read().check(), 1);
        drop(r);
        drops.assert_each_once(2);
    }

    /// Many publications against 3 reader threads that read in a loop; every value is checked for
    /// integrity on every burst, the retire list stays bounded, every value is dropped once.
    #[test]
    fn stress_publish_against_reader_threads() {
        const READERS: usize = 3;
        let publishes: usize = if cfg!(debug_assertions) {
            30_000
        } else {
            100_000
        };
        let budget = Duration::from_secs(2);
        let drops = Drops::new(publishes + 1);
        let mut p = Publisher::with_capacity(Tracked::new(0, &drops), 8, 16);
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..READERS)
            .map(|i| {
                let mut r = p.reader().unwrap();
                let stop = Arc::clone(&stop);
                thread::spawn(move || {
                    let mut bursts = 0u64;
                    let mut last = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let v = r.read();
                        let id = v.check();
                        assert!(id >= last, "went back in time: {id} < {last}");
                        last = id;
                        // Simulate a burst of work with the table held.
                        for _ in 0..(i * 8) {
                            std::hint::black_box(v.check());
                        }
                        r.quiescent();
                        bursts += 1;
                        if i == 2 && bursts % 1024 == 0 {
                            r.offline();
                            thread::yield_now();
                        }
                    }
                    bursts
                })
            })
            .collect();
        let start = Instant::now();
        let mut published = 0;
        let mut max_pending = 0;
        for id in 1..=publishes {
            if start.elapsed() > budget {
                break;
            }
            p.publish_wait(Tracked::new(id, &drops), Duration::from_secs(10))
                .expect("readers keep passing quiescent points");
            published = id;
            max_pending = max_pending.max(p.pending());
            if id % 4 == 0 {
                p.reclaim();
            }
        }
        stop.store(true, Ordering::Relaxed);
        let bursts: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(max_pending <= p.retire_capacity());
        assert!(bursts.iter().all(|&b| b > 0), "{bursts:?}");
        // All readers are gone: everything retired can go.
        p.reclaim();
        assert_eq!(p.pending(), 0);
        assert_eq!(drops.total(), published);
        assert_eq!(p.current().check(), published);
        drop(p);
        drops.assert_each_once(published + 1);
        assert!(published > 1000, "only {published} publications");
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Publish,
            Reclaim,
            Read(usize),
            Quiescent(usize),
            Offline(usize),
            Drop(usize),
            Register,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => Just(Op::Publish),
                2 => Just(Op::Reclaim),
                3 => (0..4usize).prop_map(Op::Read),
                3 => (0..4usize).prop_map(Op::Quiescent),
                1 => (0..4usize).prop_map(Op::Offline),
                1 => (0..4usize).prop_map(Op::Drop),
                1 => Just(Op::Register),
            ]
        }

        proptest! {
            /// Single-threaded model: a value a reader read since its last quiescent point is
            /// never dropped; the current value is never dropped; pending stays bounded; after
            /// all readers go, everything is dropped exactly once.
            #[test]
            fn never_frees_held_value(ops in proptest::collection::vec(op(), 0..200)) {
                let drops = Drops::new(256);
                let mut p = Publisher::with_capacity(Tracked::new(0, &drops), 4, 3);
                // (reader, id it last read and may still hold)
                let mut readers: Vec<Option<(Reader<Tracked>, Option<usize>)>> =
                    (0..4).map(|_| None).collect();
                let mut next = 1;
                for op in ops {
                    match op {
                        Op::Publish => {
                            if next < 256 {
                                match p.publish(Tracked::new(next, &drops)) {
                                    Ok(g) => { prop_assert_eq!(g as usize, next); next += 1; }
                                    Err(e) => {
                                        // Only when some online reader holds back reclamation.
                                        prop_assert!(readers.iter().flatten().any(|(r, _)| r.is_online()));
                                        prop_assert_eq!(e.value.id, next);
                                        drop(e);
                                        // Id `next` is reused by the next publication.
                                        drops.0[next].store(0, Ordering::SeqCst);
                                    }
                                }
                            }
                        }
                        Op::Reclaim => { p.reclaim(); }
                        Op::Read(i) => if let Some((r, held)) = &mut readers[i] {
                            let id = r.read().check();
                            prop_assert_eq!(id, next - 1);
                            held.get_or_insert(id);
                        },
                        Op::Quiescent(i) => if let Some((r, held)) = &mut readers[i] {
                            r.quiescent();
                            if r.is_online() { *held = None; }
                        },
                        Op::Offline(i) => if let Some((r, held)) = &mut readers[i] {
                            r.offline();
                            *held = None;
                        },
                        Op::Drop(i) => { readers[i] = None; }
                        Op::Register => if let Some(free) = readers.iter().position(Option::is_none) {
                            readers[free] = Some((p.reader().unwrap(), None));
                        },
                    }
                    prop_assert!(p.pending() <= p.retire_capacity());
                    prop_assert_eq!(drops.count(next - 1), 0);
                    for (_, held) in readers.iter().flatten() {
                        if let Some(id) = held {
                            // The oldest value it may hold, and all newer ones, are alive.
                            for v in *id..next { prop_assert_eq!(drops.count(v), 0, "value {} freed while held", v); }
                        }
                    }
                }
                drop(readers);
                drop(p);
                drops.assert_each_once(next);
            }
        }
    }
}
