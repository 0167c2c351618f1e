//! ECMP: the flow hash and the ways a hash picks one member of an equal-cost set.
//!
//! # Flow hash (seed `003`)
//!
//! The hash always covers the source and destination IPv4 addresses; for TCP and UDP it also
//! covers the source and destination ports. Fragments (first and later: MF set or offset ≠ 0) and
//! every other protocol hash on the addresses only, so a datagram never splits across tunnels.
//! The protocol number itself is not hashed (the seed does not list it).
//!
//! Every anycast appliance must pick the same tunnel for the same packet (docs/behaviour.md §1), so
//! the hash has no per-process seed: it is a fixed function of the tuple, pinned by golden tests.
//! Inputs are host-order values (`10.0.0.1` is `0x0A00_0001`, port 443 is `443`).
//!
//! The function is a multiply-xorshift mixer: the 96-bit tuple is folded into 64 bits (addresses
//! as one word, the 32 port bits spread by a multiply with the golden-ratio constant
//! [`PORT_KEY`]) and finished with MurmurHash3's `fmix64` ([`FMIX_C1`], [`FMIX_C2`]), a bijection
//! with full avalanche, so every input bit affects every output bit and the low bits used by
//! `hash % n` and by bucket indexing are as good as the high ones. It costs three multiplies and
//! a few shifts (~4 cycles of throughput per packet, ~15 of latency), in plain Rust with identical
//! results on any architecture. CRC32C (SSE4.2) would be about as fast on x86 but needs a
//! software fallback elsewhere and is linear over GF(2): structured inputs (sequential ports or
//! addresses) give structured outputs, which shows in `hash % n`.
//!
//! # Selection
//!
//! * [`EcmpMode::Modulo`] (default, the seed's rule): `hash % n` over the members, sorted by
//!   tunnel id. Weights are ignored. Any change of `n` remaps most flows.
//! * [`EcmpMode::Weighted`]: a table of buckets (the table's count, [`BUCKETS`] by default)
//!   filled in proportion to the weights (VPP `load_balance` style); `bucket = hash % buckets`.
//! * [`EcmpMode::Resilient`]: the same bucket table, but each bucket is owned by the member with
//!   the highest weighted rendezvous (HRW) score for that bucket. The owner is a pure function of
//!   (bucket, member set), so two appliances with the same config agree and a rebuild from
//!   scratch gives the same table without any history; and since a bucket's owner is the argmax
//!   of per-member scores, removing a member moves only the buckets it owned, and bringing it
//!   back returns exactly those buckets. The bucket count is fixed: it must not depend on the
//!   member set, or every flow would move whenever the set changes.

use crate::wire::{ipv4, IpProtocol};

/// Multiplier that spreads the 32 port bits over the 64-bit word (2^64 / φ, odd).
pub const PORT_KEY: u64 = 0x9E37_79B9_7F4A_7C15;
/// MurmurHash3 `fmix64` first multiplier.
pub const FMIX_C1: u64 = 0xFF51_AFD7_ED55_8CCD;
/// MurmurHash3 `fmix64` second multiplier.
pub const FMIX_C2: u64 = 0xC4CE_B9FE_1A85_EC53;
/// Salt that separates rendezvous scores from flow hashes ("HRW-rndv" in ASCII).
pub const HRW_SALT: u64 = 0x4852_572D_726E_6476;

/// Buckets in a weighted or resilient group unless the table is built with another count
/// ([`BUCKET_RANGE`], a power of two, so `hash % buckets` is a mask). 4096 gives weights a
/// precision of 1/4096; resilient buckets are drawn by hashing, so a member's share of `n`
/// equal members deviates from `1/n` by a relative `sqrt((n - 1) / buckets)` (1 sd): about 1.6%
/// at n = 2 and 6% at n = 16 with 4096. More buckets balance better but cost 2 bytes each per
/// distinct group.
pub const BUCKETS: usize = 4096;

/// The bucket counts a table may be built with (powers of two only).
pub const BUCKET_RANGE: std::ops::RangeInclusive<usize> = 64..=65536;

/// Smallest and largest route weight.
pub const WEIGHT_RANGE: std::ops::RangeInclusive<u16> = 1..=256;

/// How a hash picks one member of an equal-cost group: the config file's `ecmp.mode`
/// (`modulo`, `weighted`, `resilient`) and the forwarding table's rule alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum EcmpMode {
    /// `hash % n` over the members (the seed's rule); weights ignored.
    #[default]
    Modulo,
    /// Bucket table filled in proportion to the weights.
    Weighted,
    /// Bucket table assigned by weighted rendezvous hashing: a member that leaves moves only its
    /// own flows, and one that returns takes back only those.
    Resilient,
}

/// MurmurHash3's 64-bit finaliser: a bijection with full avalanche.
#[inline]
const fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(FMIX_C1);
    h ^= h >> 33;
    h = h.wrapping_mul(FMIX_C2);
    h ^= h >> 33;
    h
}

/// Whether an IPv4 packet is a fragment, from the 16-bit flags/fragment-offset field (host
/// order): MF set (first and middle fragments) or a non-zero offset (later fragments).
#[inline]
pub const fn is_fragment(flags_and_offset: u16) -> bool {
    flags_and_offset & (ipv4::FLAG_MF | ipv4::OFFSET_MASK) != 0
}

/// The fields the flow hash covers, after the seed rule has dropped what it must ignore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source IPv4 address, host order.
    pub src: u32,
    /// Destination IPv4 address, host order.
    pub dst: u32,
    /// Source port; zero when ports are not hashed.
    pub src_port: u16,
    /// Destination port; zero when ports are not hashed.
    pub dst_port: u16,
}

impl FlowKey {
    /// A key of the addresses and the ports.
    #[inline]
    pub const fn new(src: u32, dst: u32, src_port: u16, dst_port: u16) -> Self {
        Self {
            src,
            dst,
            src_port,
            dst_port,
        }
    }

    /// A key of the addresses only.
    #[inline]
    pub const fn addresses(src: u32, dst: u32) -> Self {
        Self {
            src,
            dst,
            src_port: 0,
            dst_port: 0,
        }
    }

    /// The flow hash. Fixed forever: appliances and releases must agree (see module docs).
    #[inline]
    pub const fn hash(&self) -> u32 {
        let ips = ((self.src as u64) << 32) | self.dst as u64;
        let ports = ((self.src_port as u64) << 16) | self.dst_port as u64;
        fmix64(ips ^ ports.wrapping_mul(PORT_KEY)) as u32
    }
}

/// The seed rule: whether a packet's ports are hashed. Only for TCP and UDP packets that are not
/// fragments (a later fragment has no L4 header; the first must hash like the rest).
/// `protocol` is the header's raw number: the packet path tests the byte it read, with no
/// conversion to [`IpProtocol`] in between.
#[inline]
pub const fn hashes_ports(protocol: u8, fragment: bool) -> bool {
    const TCP: u8 = IpProtocol::Tcp.value();
    const UDP: u8 = IpProtocol::Udp.value();
    !fragment && matches!(protocol, TCP | UDP)
}

/// The flow hash of a packet's fields by the seed rule ([`hashes_ports`]; for a later fragment
/// pass any ports, e.g. zero). `protocol` is an [`IpProtocol`] or the header's raw number.
#[inline]
pub fn flow_hash(
    src: u32,
    dst: u32,
    protocol: impl Into<u8>,
    fragment: bool,
    src_port: u16,
    dst_port: u16,
) -> u32 {
    let key = if hashes_ports(protocol.into(), fragment) {
        FlowKey::new(src, dst, src_port, dst_port)
    } else {
        FlowKey::addresses(src, dst)
    };
    key.hash()
}

/// Lemire's "fastmod" multiplier for the divisor `n` (`n` = 0 is taken as 1): with it,
/// [`fastmod`] computes `hash % n` with two multiplications instead of a division, which costs
/// about 25 cycles on the packet path. Computed once per group, when a table is built.
pub const fn fastmod_multiplier(n: u32) -> u64 {
    let n = if n == 0 { 1 } else { n };
    (u64::MAX / n as u64).wrapping_add(1)
}

/// `hash % n`, given `multiplier` = [`fastmod_multiplier`]`(n)` and `n` ≥ 1: the one way the
/// modulo mode reduces a flow hash, exact for every 32-bit `hash` and `n` (Lemire, Kaser and
/// Kurz, "Faster remainder by direct computation", 2019; `n` = 1 gives 0, which is right too).
#[inline(always)]
pub const fn fastmod(hash: u32, n: u32, multiplier: u64) -> u32 {
    let low = multiplier.wrapping_mul(hash as u64);
    ((low as u128 * n as u128) >> 64) as u32
}

/// The bucket a hash falls in among `buckets` (a power of two; weighted and resilient modes).
#[inline]
pub const fn bucket_of(hash: u32, buckets: usize) -> usize {
    hash as usize & (buckets - 1)
}

/// Fills `buckets` with member indices in proportion to `weights` (largest-remainder rounding,
/// ties to the lower index), each member's buckets contiguous as in VPP's `load_balance`.
///
/// A member gets no bucket only if its share is below one bucket (possible only with far more
/// than a thousand members).
///
/// # Panics
/// If `weights` is empty, longer than `buckets`, or contains a zero.
pub fn fill_weighted(weights: &[u16], buckets: &mut [u16]) {
    let n = buckets.len();
    assert!(
        !weights.is_empty() && weights.len() <= n,
        "1..=buckets members"
    );
    assert!(weights.iter().all(|&w| w > 0), "weights must be positive");
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let b = n as u64;
    let mut counts: Vec<usize> = weights
        .iter()
        .map(|&w| (b * u64::from(w) / total) as usize)
        .collect();
    let assigned: usize = counts.iter().sum();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    // Stable sort: equal remainders keep index order.
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(b * u64::from(weights[i]) % total));
    for &i in by_remainder.iter().take(n - assigned) {
        counts[i] += 1;
    }
    let mut next = 0;
    for (member, &count) in counts.iter().enumerate() {
        buckets[next..next + count].fill(member as u16);
        next += count;
    }
    debug_assert_eq!(next, n);
}

/// The rendezvous score hash of a member for a bucket. A bijection of (member, bucket), so two
/// members never tie.
#[inline]
fn hrw_hash(member: u32, bucket: u32) -> u64 {
    fmix64(((u64::from(member) << 32) | u64::from(bucket)) ^ HRW_SALT)
}

/// Fractional bits of [`neg_log2`].
const LOG_FRAC_BITS: u32 = 24;

/// `-log2(x / 2^64)` in fixed point with [`LOG_FRAC_BITS`] fractional bits, for `x` read as a
/// uniform value in (0, 1). Integer-only so every machine computes the same bits (a libm `ln`
/// may differ in the last place between platforms), and non-increasing in `x`, so it orders
/// scores exactly like `x` does.
fn neg_log2(x: u64) -> u64 {
    let x = x | 1;
    let int = 63 - u64::from(x.leading_zeros()); // floor(log2(x))
                                                 // Mantissa in [1, 2) as Q1.31, then the fraction
                                                 // bits of its log2 by repeated squaring.
    let mut m = (x << x.leading_zeros()) >> 32;
    let mut frac = 0u64;
    for _ in 0..LOG_FRAC_BITS {
        m = (m * m) >> 31;
        frac <<= 1;
        if m >= 1 << 32 {
            m >>= 1;
            frac |= 1;
        }
    }
    ((64 - int) << LOG_FRAC_BITS) - frac
}

/// Assigns every bucket to the member with the best weighted rendezvous score for it: member `i`
/// with weight `w` and uniform score `u = hrw_hash(key, bucket) / 2^64` scores `-log2(u) / w`,
/// lowest wins (so bucket shares are proportional to weights); ties fall to the higher raw hash.
/// With equal weights that order is exactly "highest raw hash", which is used directly (and is
/// the same answer, so a member joining with another weight never reshuffles the others).
///
/// `members` are `(key, weight)` with distinct keys (tunnel ids); `buckets[b]` receives the
/// index into `members` of bucket `b`'s owner. The result does not depend on member order.
///
/// # Panics
/// If `members` is empty, longer than `u16::MAX + 1`, or a weight is zero.
pub fn fill_resilient(members: &[(u32, u16)], buckets: &mut [u16]) {
    assert!(
        !members.is_empty() && members.len() <= 1 << 16,
        "1..=65536 members"
    );
    assert!(
        members.iter().all(|&(_, w)| w > 0),
        "weights must be positive"
    );
    let equal = members.iter().all(|&(_, w)| w == members[0].1);
    for (bucket, owner) in buckets.iter_mut().enumerate() {
        let bucket = bucket as u32;
        let mut best = 0usize;
        let mut best_hash = hrw_hash(members[0].0, bucket);
        if equal {
            for (i, &(key, _)) in members.iter().enumerate().skip(1) {
                let h = hrw_hash(key, bucket);
                if h > best_hash {
                    best = i;
                    best_hash = h;
                }
            }
        } else {
            let mut best_cost = neg_log2(best_hash);
            let mut best_weight = u64::from(members[0].1);
            for (i, &(key, w)) in members.iter().enumerate().skip(1) {
                let h = hrw_hash(key, bucket);
                let cost = neg_log2(h);
                let w = u64::from(w);
                // cost / w < best_cost / best_weight, exactly (both products < 2^39).
                let (lhs, rhs) = (cost * best_weight, best_cost * w);
                if lhs < rhs || (lhs == rhs && h > best_hash) {
                    best = i;
                    best_hash = h;
                    best_cost = cost;
                    best_weight = w;
                }
            }
        }
        *owner = best as u16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    /// Flow hashes pinned forever. Anycast appliances (and every release) must agree on them: a
    /// change here moves live flows between tunnels. Computed once by this implementation.
    #[rustfmt::skip]
    const GOLDEN_HASHES: [(&str, &str, IpProtocol, bool, u16, u16, u32); 5] = [
        // src            dst             protocol     fragment sport  dport  hash
        ("198.51.100.7", "203.0.113.10", IpProtocol::Tcp,  false, 40000, 443, 0x7B60_BBD2),
        ("198.51.100.7", "203.0.113.10", IpProtocol::Udp,  false, 53000, 53,  0x033F_38FF),
        ("198.51.100.7", "203.0.113.10", IpProtocol::Icmp, false, 0,     0,   0x24D6_A182),
        ("10.0.0.1",     "10.0.0.2",     IpProtocol::Udp,  true,  0,     0,   0x98A5_D7EB), // fragment
        ("0.0.0.0",      "0.0.0.0",      IpProtocol::Tcp,  false, 0,     0,   0x0000_0000),
    ];

    #[test]
    fn golden_hashes_never_change() {
        for (src, dst, proto, frag, sp, dp, want) in GOLDEN_HASHES {
            let got = flow_hash(ip(src), ip(dst), proto, frag, sp, dp);
            assert_eq!(got, want, "{src} -> {dst} {proto:?}: got {got:#010X}");
        }
    }

    #[test]
    fn ports_count_only_for_unfragmented_tcp_and_udp() {
        let (s, d) = (ip("192.0.2.1"), ip("203.0.113.5"));
        let ips_only = FlowKey::addresses(s, d).hash();
        // TCP and UDP: ports matter.
        for proto in [IpProtocol::Tcp, IpProtocol::Udp] {
            assert_ne!(
                flow_hash(s, d, proto, false, 1234, 80),
                flow_hash(s, d, proto, false, 1235, 80)
            );
            assert_ne!(
                flow_hash(s, d, proto, false, 1234, 80),
                flow_hash(s, d, proto, false, 1234, 81)
            );
            assert_ne!(flow_hash(s, d, proto, false, 1234, 80), ips_only);
            // Fragments (first with ports, later without): addresses only, same tunnel.
            assert_eq!(flow_hash(s, d, proto, true, 1234, 80), ips_only);
            assert_eq!(flow_hash(s, d, proto, true, 0, 0), ips_only);
        }
        // ICMP, ESP, GRE, anything else: addresses only, whatever the "ports" bytes are.
        for proto in [1, 47, 50, 132, 255] {
            assert_eq!(flow_hash(s, d, proto, false, 1234, 80), ips_only);
        }
        // Addresses always matter.
        assert_ne!(FlowKey::addresses(d, s).hash(), ips_only);
        assert_ne!(FlowKey::addresses(s, d + 1).hash(), ips_only);
    }

    #[test]
    fn fragment_detection() {
        assert!(!is_fragment(0)); // no flags
        assert!(!is_fragment(0x4000)); // DF only
        assert!(is_fragment(0x2000)); // MF, offset 0: first fragment
        assert!(is_fragment(0x0001)); // last fragment
        assert!(is_fragment(0x2005)); // middle fragment
    }

    #[test]
    fn fastmod_is_the_remainder() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let divisors = (1..=300u32)
            .chain([1 << 16, (1 << 31) - 1, 1 << 31, u32::MAX - 1, u32::MAX])
            .chain((0..200).map(|_| next() as u32 | 1));
        for n in divisors.collect::<Vec<_>>() {
            let m = fastmod_multiplier(n);
            for hash in [
                0u32,
                1,
                2,
                n - 1,
                n,
                n.wrapping_add(1),
                u32::MAX,
                u32::MAX - 1,
            ]
            .into_iter()
            .chain((0..200).map(|_| next() as u32))
            {
                assert_eq!(fastmod(hash, n, m), hash % n, "{hash} % {n}");
            }
        }
        assert_eq!(fastmod_multiplier(0), fastmod_multiplier(1));
    }

    proptest::proptest! {
        #[test]
        fn fastmod_agrees_with_the_remainder(hash: u32, n in 1u32..) {
            proptest::prop_assert_eq!(fastmod(hash, n, fastmod_multiplier(n)), hash % n);
        }
    }

    /// Low bits must be uniform for `% n` and `% BUCKETS`: a chi-square over 4096 buckets of
    /// sequential (worst-case structured) tuples.
    #[test]
    fn low_bits_uniform_for_structured_input() {
        let mut counts = vec![0u32; BUCKETS];
        let n = 1 << 20;
        for i in 0..n {
            let h = flow_hash(
                0x0A00_0000 + (i >> 10),
                0xC000_0201,
                IpProtocol::Tcp,
                false,
                i as u16,
                443,
            );
            counts[bucket_of(h, BUCKETS)] += 1;
        }
        let expected = f64::from(n) / BUCKETS as f64;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum();
        // 4095 degrees of freedom: mean 4095, sd ≈ 90.5; allow ~5 sd.
        assert!(chi2 < 4550.0, "chi-square {chi2}");
    }

    #[test]
    fn neg_log2_is_monotone_and_accurate() {
        let one = 1u64 << LOG_FRAC_BITS;
        assert!(neg_log2(u64::MAX) <= 1); // truncation leaves at most one unit
        assert_eq!(neg_log2(1 << 63), one); // -log2(1/2) = 1
        assert_eq!(neg_log2(1 << 62), 2 * one);
        assert_eq!(neg_log2(0), 64 * one);
        let mut x = 12345u64;
        let mut prev = (0u64, u64::MAX);
        let mut samples: Vec<u64> = (0..10_000)
            .map(|_| {
                x = fmix64(x.wrapping_add(PORT_KEY));
                x
            })
            .collect();
        samples.sort_unstable();
        for &s in &samples {
            let v = neg_log2(s);
            assert!(v <= prev.1, "not monotone at {s:#x} after {:#x}", prev.0);
            let exact = -((s as f64) / 2f64.powi(64)).log2();
            assert!((v as f64 / one as f64 - exact).abs() < 1e-5, "{s:#x}");
            prev = (s, v);
        }
    }

    #[test]
    fn weighted_fill_is_proportional() {
        let mut b = [0u16; BUCKETS];
        fill_weighted(&[1, 1], &mut b);
        assert_eq!(b.iter().filter(|&&m| m == 0).count(), BUCKETS / 2);
        fill_weighted(&[1, 2, 3, 256], &mut b);
        let counts: Vec<usize> = (0..4)
            .map(|m| b.iter().filter(|&&x| x == m).count())
            .collect();
        // 4096 * w / 262 with largest-remainder rounding.
        assert_eq!(counts, vec![16, 31, 47, 4002]);
        fill_weighted(&[7], &mut b);
        assert!(b.iter().all(|&m| m == 0));
    }

    #[test]
    fn resilient_fill_is_order_independent_and_minimally_disruptive() {
        let members: Vec<(u32, u16)> = (0..8).map(|k| (k * 3 + 1, 1)).collect();
        let owners = |m: &[(u32, u16)]| {
            let mut b = [0u16; BUCKETS];
            fill_resilient(m, &mut b);
            b.map(|i| m[usize::from(i)].0)
        };
        let all = owners(&members);
        let mut reversed = members.clone();
        reversed.reverse();
        assert_eq!(owners(&reversed), all);
        for gone in 0..members.len() {
            let mut rest = members.clone();
            let left = rest.remove(gone).0;
            let after = owners(&rest);
            for (b, (&before, &now)) in all.iter().zip(&after).enumerate() {
                if before != left {
                    assert_eq!(before, now, "bucket {b} moved though its owner stayed");
                } else {
                    assert_ne!(now, left);
                }
            }
        }
    }

    #[test]
    fn resilient_weighted_path_agrees_with_equal_path() {
        // The weighted comparison with equal weights must give the same owners as the fast path,
        // and mixed weights must still only move the leaving member's buckets.
        let equal: Vec<(u32, u16)> = (10..16).map(|k| (k, 5)).collect();
        let mut fast = [0u16; BUCKETS];
        fill_resilient(&equal, &mut fast);
        let mut mixed = equal.clone();
        mixed.push((99, 7)); // forces the weighted path
        let mut slow = [0u16; BUCKETS];
        fill_resilient(&mixed, &mut slow);
        for (b, (&f, &s)) in fast.iter().zip(&slow).enumerate() {
            if usize::from(s) != mixed.len() - 1 {
                assert_eq!(f, s, "bucket {b}");
            }
        }
    }

    #[test]
    fn resilient_fill_follows_weights() {
        let members = [(1, 1), (2, 2), (3, 4), (4, 8)];
        let mut b = [0u16; BUCKETS];
        fill_resilient(&members, &mut b);
        for (i, &(_, w)) in members.iter().enumerate() {
            let share = b.iter().filter(|&&m| usize::from(m) == i).count() as f64 / BUCKETS as f64;
            let ideal = f64::from(w) / 15.0;
            assert!(
                (share - ideal).abs() < 0.03,
                "member {i}: share {share:.3}, ideal {ideal:.3}"
            );
        }
    }
}
