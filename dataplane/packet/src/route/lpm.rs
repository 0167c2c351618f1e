//! IPv4 longest-prefix match: an immutable DIR-24-8 table.
//!
//! The first level (`tbl24`) has one `u32` entry per /24 (2^24 entries, 64 MiB). An entry either
//! holds a value directly (every prefix of length ≤ 24 is expanded over the /24s it covers) or
//! points at a 256-entry second-level group (`tbl8`) that resolves the last octet for /24s that
//! contain longer prefixes. A lookup is one load, or two for addresses under a /25../32.
//!
//! # Why a Rust DIR-24-8 and not DPDK's `rte_lpm`
//!
//! `rte_lpm` is the same algorithm, but it is a mutable-in-place structure living in EAL
//! (hugepage) memory: updates happen with `rte_lpm_add`/`rte_lpm_delete` while workers read it,
//! which needs RCU-style care per entry, and it cannot be built or tested without initialising the
//! EAL. Conduit instead builds a complete new table off the packet path on every configuration or
//! health change and publishes it with one pointer swap (docs/behaviour.md §5), so the table here
//! is immutable after [`Lpm::build`]: plain `Box<[u32]>` slices, `Send + Sync`, shared read-only by
//! every worker, unit-tested and fuzzed with `cargo test` and no EAL, and free of `unsafe`.
//!
//! # Entry encoding
//!
//! `0` = no route; bit 31 set = index of a `tbl8` group in bits 0..31; otherwise `value + 1`.
//! Values are therefore limited to [`Lpm::MAX_VALUE`].
//!
//! # Build
//!
//! Prefixes are sorted by (address, length), deduplicated, and then painted with one linear sweep
//! over the address space using a stack of enclosing prefixes, so each `tbl24` entry is written at
//! most once: the build is `O(n log n + 2^24)`, independent of how much prefixes overlap. Entries
//! without a route are never written (the table comes from zeroed memory).

use std::net::Ipv4Addr;

use thiserror::Error;

/// Number of first-level entries (one per /24).
const TBL24_LEN: usize = 1 << 24;
/// Entries in one second-level group (one per address of a /24).
const TBL8_GROUP_LEN: usize = 256;
/// Entry flag: the low 31 bits index a `tbl8` group.
const EXT: u32 = 1 << 31;
/// Entry meaning "no route".
const EMPTY: u32 = 0;

/// Why a prefix set cannot become a table.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LpmError {
    /// Prefix length above 32.
    #[error("{prefix}/{len}: prefix length must be 0..=32")]
    InvalidLength { prefix: Ipv4Addr, len: u8 },
    /// Bits set beyond the prefix length (e.g. `10.0.0.1/8`).
    #[error("{prefix}/{len}: address has bits set beyond the prefix length")]
    HostBitsSet { prefix: Ipv4Addr, len: u8 },
    /// Value does not fit the entry encoding.
    #[error("{prefix}/{len}: value {value} exceeds the maximum {max}", max = Lpm::MAX_VALUE)]
    ValueTooLarge {
        prefix: Ipv4Addr,
        len: u8,
        value: u32,
    },
    /// The same prefix appears twice with different values.
    #[error("{prefix}/{len}: listed twice with different values ({first} and {second})")]
    Conflict {
        prefix: Ipv4Addr,
        len: u8,
        first: u32,
        second: u32,
    },
}

/// An immutable IPv4 longest-prefix-match table mapping addresses to `u32` values.
///
/// Addresses and prefixes are host-order `u32` (`10.1.2.3` is `0x0A01_0203`).
pub struct Lpm {
    tbl24: Box<[u32; TBL24_LEN]>,
    tbl8: Box<[u32]>,
    prefixes: usize,
}

impl std::fmt::Debug for Lpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lpm")
            .field("prefixes", &self.prefixes)
            .field("tbl8_groups", &self.tbl8_groups())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

/// Network mask of a prefix length (`len` ≤ 32).
#[inline]
pub fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

/// Fills `table[from..to]` with `entry`, skipping the (already zeroed) empty entries.
#[inline]
fn paint(table: &mut [u32], from: usize, to: usize, entry: u32) {
    if entry != EMPTY && from < to {
        table[from..to].fill(entry);
    }
}

/// Paints nested-or-disjoint intervals `(start, end, entry)`, sorted by start and then by
/// decreasing size, over `table[base..limit]` whose background is `background`: each slot gets the
/// entry of the innermost interval covering it. One pass, each slot written at most once.
fn sweep(
    table: &mut [u32],
    base: usize,
    limit: usize,
    background: u32,
    intervals: impl Iterator<Item = (usize, usize, u32)>,
) {
    let mut stack: Vec<(usize, u32)> = Vec::with_capacity(33);
    stack.push((limit, background));
    let mut pos = base;
    for (start, end, entry) in intervals {
        // Close every enclosing interval that ends before this one starts. The background entry
        // ends at `limit` > `start`, so the stack never empties here.
        while let Some(&(top_end, top_entry)) = stack.last() {
            if top_end > start {
                break;
            }
            paint(table, pos, top_end, top_entry);
            pos = top_end;
            stack.pop();
        }
        let top_entry = stack.last().map_or(background, |&(_, e)| e);
        paint(table, pos, start, top_entry);
        pos = start;
        stack.push((end, entry));
    }
    while let Some((top_end, top_entry)) = stack.pop() {
        paint(table, pos, top_end, top_entry);
        pos = top_end;
    }
}

impl Lpm {
    /// Largest value a prefix can map to (the encoding reserves 0 and bit 31).
    pub const MAX_VALUE: u32 = EXT - 2;

    /// Builds a table from `(prefix, len, value)` triples, in any order.
    ///
    /// A prefix listed twice with the same value is accepted once; with different values it is
    /// an [`LpmError::Conflict`]. Prefixes must have no host bits set.
    pub fn build(entries: &[(u32, u8, u32)]) -> Result<Self, LpmError> {
        let mut sorted: Vec<(u32, u8, u32)> = Vec::with_capacity(entries.len());
        for &(prefix, len, value) in entries {
            let addr = Ipv4Addr::from(prefix);
            if len > 32 {
                return Err(LpmError::InvalidLength { prefix: addr, len });
            }
            if prefix & !mask(len) != 0 {
                return Err(LpmError::HostBitsSet { prefix: addr, len });
            }
            if value > Self::MAX_VALUE {
                return Err(LpmError::ValueTooLarge {
                    prefix: addr,
                    len,
                    value,
                });
            }
            sorted.push((prefix, len, value));
        }
        // By address, then shorter (enclosing) prefixes first: the order `sweep` needs.
        sorted.sort_unstable();
        let mut unique: Vec<(u32, u8, u32)> = Vec::with_capacity(sorted.len());
        for entry in sorted {
            match unique.last() {
                Some(&(p, l, v)) if p == entry.0 && l == entry.1 => {
                    if v != entry.2 {
                        return Err(LpmError::Conflict {
                            prefix: Ipv4Addr::from(p),
                            len: l,
                            first: v.min(entry.2),
                            second: v.max(entry.2),
                        });
                    }
                }
                _ => unique.push(entry),
            }
        }

        // `vec!` of zeroes comes from zeroed (lazily mapped) memory; `sweep` skips empty slots.
        let mut tbl24: Box<[u32; TBL24_LEN]> = vec![EMPTY; TBL24_LEN]
            .into_boxed_slice()
            .try_into()
            .expect("length is TBL24_LEN");

        // Level 1: every prefix of length ≤ 24, expanded over the /24s it covers.
        sweep(
            &mut tbl24[..],
            0,
            TBL24_LEN,
            EMPTY,
            unique.iter().filter(|e| e.1 <= 24).map(|&(p, l, v)| {
                let start = (p >> 8) as usize;
                (start, start + (1usize << (24 - l)), v + 1)
            }),
        );

        // Level 2: one group per /24 holding longer prefixes, seeded with that /24's level-1 entry
        // so the enclosing shorter prefix still answers for the uncovered addresses. `unique` is
        // sorted by address, so the long prefixes of one /24 are contiguous.
        let long: Vec<(u32, u8, u32)> = unique.iter().copied().filter(|e| e.1 > 24).collect();
        let mut tbl8: Vec<u32> = Vec::new();
        let mut i = 0;
        while i < long.len() {
            let slot = (long[i].0 >> 8) as usize;
            let mut j = i;
            while j < long.len() && (long[j].0 >> 8) as usize == slot {
                j += 1;
            }
            let group = tbl8.len() / TBL8_GROUP_LEN;
            let base = tbl8.len();
            let background = tbl24[slot];
            tbl8.resize(base + TBL8_GROUP_LEN, background);
            sweep(
                &mut tbl8,
                base,
                base + TBL8_GROUP_LEN,
                background,
                long[i..j].iter().map(|&(p, l, v)| {
                    let start = base + (p & 0xff) as usize;
                    (start, start + (1usize << (32 - l)), v + 1)
                }),
            );
            // At most 2^24 groups exist (one per /24), so the index always fits in 31 bits.
            tbl24[slot] = EXT | group as u32;
            i = j;
        }

        Ok(Self {
            tbl24,
            tbl8: tbl8.into_boxed_slice(),
            prefixes: unique.len(),
        })
    }

    /// The value of the longest prefix containing `addr`, if any.
    #[inline]
    pub fn lookup(&self, addr: u32) -> Option<u32> {
        // The index is < 2^24 by construction, so this load has no bounds check.
        let mut entry = self.tbl24[(addr >> 8) as usize];
        if entry & EXT != 0 {
            let index = (((entry & !EXT) as usize) << 8) | (addr & 0xff) as usize;
            entry = self.tbl8[index];
        }
        entry.checked_sub(1)
    }

    /// Looks up a burst: `out[i] = self.lookup(addrs[i])`.
    ///
    /// The lookups of a burst are independent, so the CPU overlaps their cache and TLB misses;
    /// an explicit two-pass version (all first-level loads, then all second-level) measured
    /// slower, as the extra staging stores cost more than they hid.
    ///
    /// # Panics
    /// If `addrs` and `out` differ in length.
    #[inline]
    pub fn lookup_bulk(&self, addrs: &[u32], out: &mut [Option<u32>]) {
        assert_eq!(
            addrs.len(),
            out.len(),
            "lookup_bulk: input and output lengths differ"
        );
        for (o, &addr) in out.iter_mut().zip(addrs) {
            *o = self.lookup(addr);
        }
    }

    /// Number of distinct prefixes in the table.
    pub fn len(&self) -> usize {
        self.prefixes
    }

    /// Whether the table holds no prefix at all.
    pub fn is_empty(&self) -> bool {
        self.prefixes == 0
    }

    /// Number of 256-entry second-level groups (one per /24 holding a prefix longer than /24).
    pub fn tbl8_groups(&self) -> usize {
        self.tbl8.len() / TBL8_GROUP_LEN
    }

    /// Bytes of table memory (both levels). The first level is always 64 MiB of address space;
    /// pages never written (no route under them) stay unbacked zero pages.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&self.tbl24[..]) + std::mem::size_of_val(&self.tbl8[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious reference: scan every prefix, keep the longest that matches.
    fn reference(entries: &[(u32, u8, u32)], addr: u32) -> Option<u32> {
        entries
            .iter()
            .filter(|&&(p, l, _)| addr & mask(l) == p)
            .max_by_key(|&&(_, l, _)| l)
            .map(|&(_, _, v)| v)
    }

    fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
        u32::from(Ipv4Addr::new(a, b, c, d))
    }

    /// Addresses worth probing for a prefix set: each prefix's first and last address and their
    /// neighbours, plus the extremes of the address space.
    fn probes(entries: &[(u32, u8, u32)]) -> Vec<u32> {
        let mut out = vec![0, 1, u32::MAX, u32::MAX - 1, 0x8000_0000, 0x7fff_ffff];
        for &(p, l, _) in entries {
            let last = p | !mask(l);
            out.extend([
                p,
                p.wrapping_sub(1),
                last,
                last.wrapping_add(1),
                p | (!mask(l) >> 1),
            ]);
        }
        out
    }

    fn check(entries: &[(u32, u8, u32)], extra: &[u32]) {
        let lpm = Lpm::build(entries).expect("valid prefixes");
        let mut addrs = probes(entries);
        addrs.extend_from_slice(extra);
        let mut bulk = vec![None; addrs.len()];
        lpm.lookup_bulk(&addrs, &mut bulk);
        for (&addr, &b) in addrs.iter().zip(&bulk) {
            let want = reference(entries, addr);
            assert_eq!(lpm.lookup(addr), want, "lookup {}", Ipv4Addr::from(addr));
            assert_eq!(b, want, "lookup_bulk {}", Ipv4Addr::from(addr));
        }
    }

    #[test]
    fn empty_table_has_no_route() {
        let lpm = Lpm::build(&[]).unwrap();
        assert!(lpm.is_empty());
        assert_eq!(lpm.lookup(0), None);
        assert_eq!(lpm.lookup(u32::MAX), None);
        assert_eq!(lpm.tbl8_groups(), 0);
        assert_eq!(lpm.memory_bytes(), 4 << 24);
    }

    #[test]
    fn default_route_and_host_routes() {
        let entries = [
            (0, 0, 7),
            (ip(10, 0, 0, 0), 8, 1),
            (ip(10, 1, 0, 0), 16, 2),
            (ip(10, 1, 2, 0), 24, 3),
            (ip(10, 1, 2, 128), 25, 4),
            (ip(10, 1, 2, 200), 32, 5),
            (ip(255, 255, 255, 255), 32, 6),
            (0, 32, 8),
        ];
        check(&entries, &[]);
        let lpm = Lpm::build(&entries).unwrap();
        assert_eq!(lpm.lookup(ip(10, 1, 2, 200)), Some(5));
        assert_eq!(lpm.lookup(ip(10, 1, 2, 201)), Some(4));
        assert_eq!(lpm.lookup(ip(10, 1, 2, 127)), Some(3));
        assert_eq!(lpm.lookup(ip(10, 1, 3, 0)), Some(2));
        assert_eq!(lpm.lookup(ip(10, 2, 0, 0)), Some(1));
        assert_eq!(lpm.lookup(ip(11, 0, 0, 0)), Some(7));
        assert_eq!(lpm.lookup(u32::MAX), Some(6));
        assert_eq!(lpm.lookup(0), Some(8));
        assert_eq!(lpm.lookup(1), Some(7));
        assert_eq!(lpm.len(), entries.len());
        assert_eq!(lpm.tbl8_groups(), 3); // 10.1.2/24, 255.255.255/24 and 0.0.0/24
    }

    #[test]
    fn long_prefix_without_covering_prefix_leaves_rest_of_slash24_empty() {
        let entries = [(ip(192, 0, 2, 64), 26, 9)];
        check(&entries, &[]);
        let lpm = Lpm::build(&entries).unwrap();
        assert_eq!(lpm.lookup(ip(192, 0, 2, 63)), None);
        assert_eq!(lpm.lookup(ip(192, 0, 2, 64)), Some(9));
        assert_eq!(lpm.lookup(ip(192, 0, 2, 127)), Some(9));
        assert_eq!(lpm.lookup(ip(192, 0, 2, 128)), None);
    }

    #[test]
    fn max_value_round_trips() {
        let lpm = Lpm::build(&[(0, 0, Lpm::MAX_VALUE), (ip(1, 2, 3, 4), 32, 0)]).unwrap();
        assert_eq!(lpm.lookup(5), Some(Lpm::MAX_VALUE));
        assert_eq!(lpm.lookup(ip(1, 2, 3, 4)), Some(0));
        assert_eq!(lpm.lookup(ip(1, 2, 3, 5)), Some(Lpm::MAX_VALUE));
    }

    #[test]
    fn duplicates_dedupe_and_conflicts_fail() {
        let lpm = Lpm::build(&[(ip(10, 0, 0, 0), 8, 1), (ip(10, 0, 0, 0), 8, 1)]).unwrap();
        assert_eq!(lpm.len(), 1);
        let err = Lpm::build(&[(ip(10, 0, 0, 0), 8, 2), (ip(10, 0, 0, 0), 8, 1)]).unwrap_err();
        assert_eq!(
            err,
            LpmError::Conflict {
                prefix: Ipv4Addr::new(10, 0, 0, 0),
                len: 8,
                first: 1,
                second: 2
            }
        );
        assert_eq!(
            err.to_string(),
            "10.0.0.0/8: listed twice with different values (1 and 2)"
        );
        // Same address, different lengths: distinct prefixes, no conflict.
        Lpm::build(&[(ip(10, 0, 0, 0), 8, 1), (ip(10, 0, 0, 0), 9, 2)]).unwrap();
    }

    #[test]
    fn invalid_input_is_rejected() {
        assert!(matches!(
            Lpm::build(&[(0, 33, 1)]),
            Err(LpmError::InvalidLength { len: 33, .. })
        ));
        assert!(matches!(
            Lpm::build(&[(ip(10, 0, 0, 1), 8, 1)]),
            Err(LpmError::HostBitsSet { len: 8, .. })
        ));
        assert!(matches!(
            Lpm::build(&[(0, 0, Lpm::MAX_VALUE + 1)]),
            Err(LpmError::ValueTooLarge { .. })
        ));
    }

    #[test]
    #[should_panic(expected = "lengths differ")]
    fn bulk_length_mismatch_panics() {
        let lpm = Lpm::build(&[]).unwrap();
        lpm.lookup_bulk(&[1, 2], &mut [None]);
    }

    /// Random prefix sets that nest: a few random "roots" of any length 0..=32, each with random
    /// more-specifics inside it (so /0, /32, /24-/25 boundaries and deep nesting all occur).
    fn prefix_set() -> impl Strategy<Value = Vec<(u32, u8, u32)>> {
        let root = (any::<u32>(), 0u8..=32);
        let child = (any::<u32>(), 0u8..=32, 0u32..1000);
        prop::collection::vec(
            (root, prop::collection::vec(child, 0..8), 0u32..1000),
            1..12,
        )
        .prop_map(|roots| {
            let mut out = Vec::new();
            for ((addr, len), children, value) in roots {
                let p = addr & mask(len);
                out.push((p, len, value));
                for (bits, extra, v) in children {
                    let l = (len + extra % (33 - len)).min(32);
                    // Keep the root's bits, randomise the rest, then trim to the child length.
                    let c = (p | (bits & !mask(len))) & mask(l);
                    out.push((c, l, v));
                }
            }
            // A prefix listed twice must carry one value; keep the first of each.
            let mut seen = std::collections::HashSet::new();
            out.retain(|&(p, l, _)| seen.insert((p, l)));
            out
        })
    }

    proptest! {
        // Every case builds a 64 MiB table in an unoptimised test build; a few dozen suffice.
        #![proptest_config(ProptestConfig::with_cases(40))]

        #[test]
        fn matches_reference(entries in prefix_set(), extra in prop::collection::vec(any::<u32>(), 256)) {
            check(&entries, &extra);
        }
    }
}
