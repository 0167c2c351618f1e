//! Health-check probes on the wire: the inner ICMP echo the control thread sends through a tunnel
//! ([`write_probe`], then [`encapsulate`](super::encapsulate)) and what a worker reads back from a
//! returning one ([`read_probe_echo`]) before handing a [`ProbeReply`] to the control thread.
//!
//! A probe is an ICMP echo (docs/behaviour.md §4) with identifier [`Context::probe_ident`] and
//! sequence number chosen by the control thread, carrying [`PROBE_DATA_LEN`] bytes of data:
//!
//! | bytes | content |
//! |---|---|
//! | 0..4 | [`PROBE_MAGIC`] (`CNDT`) |
//! | 4..8 | tunnel id, big endian |
//! | 8..16 | send timestamp (sender's TSC), big endian; echoed back, used for the RTT |
//! | 16..24 | MAC: SipHash-2-4 under the [`ProbeKey`] of tunnel id, sequence, identifier and send timestamp, big endian |
//!
//! Echo replies carry the request's identifier, sequence number and data unchanged (RFC 792), so
//! the same layout identifies `request` probes' replies and bounced `reply` probes. The MAC makes
//! a reply unforgeable by anyone who did not see the probe (docs/behaviour.md §4): the key is
//! drawn at start-up and never leaves the process. It is checked by the control thread, on the
//! few packets the workers classified as probe replies.
//!
//! [`Context::probe_ident`]: super::Context::probe_ident

use core::hash::Hasher;
use core::net::Ipv4Addr;

use siphasher::sip::SipHasher24;

use super::context::PROBE_MAGIC;
use crate::route::TunnelId;
use crate::wire::{icmp, ipv4, IcmpPacket, IcmpRepr, IpProtocol, Ipv4Repr};

/// Bytes of ICMP data in a probe.
pub const PROBE_DATA_LEN: usize = 24;
/// Length of a [`ProbeKey`].
pub const PROBE_KEY_LEN: usize = 16;

/// The secret of the probes' MAC. Its `Debug` never shows the bytes, so it cannot end up in a
/// log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ProbeKey([u8; PROBE_KEY_LEN]);

impl core::fmt::Debug for ProbeKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ProbeKey(..)")
    }
}

impl ProbeKey {
    pub const fn new(bytes: [u8; PROBE_KEY_LEN]) -> Self {
        ProbeKey(bytes)
    }

    /// The MAC of a probe: everything that identifies it and that its reply echoes.
    pub fn tag(&self, tunnel: TunnelId, seq: u16, ident: u16, sent_tsc: u64) -> u64 {
        let mut h = SipHasher24::new_with_key(&self.0);
        let mut msg = [0u8; 16];
        msg[..4].copy_from_slice(&tunnel.0.to_be_bytes());
        msg[4..6].copy_from_slice(&seq.to_be_bytes());
        msg[6..8].copy_from_slice(&ident.to_be_bytes());
        msg[8..].copy_from_slice(&sent_tsc.to_be_bytes());
        h.write(&msg);
        h.finish()
    }

    /// Whether `echo` carries the MAC of its own contents (a reply to a probe we sent).
    pub fn verify(&self, tunnel: TunnelId, echo: &ProbeEcho) -> bool {
        // Fold the difference so the comparison does not stop at the first differing byte.
        self.tag(tunnel, echo.seq, echo.ident, echo.sent_tsc) ^ echo.mac == 0
    }
}
/// Length of the inner IPv4 packet of a probe.
pub const PROBE_PACKET_LEN: usize = ipv4::HEADER_LEN + icmp::HEADER_LEN + PROBE_DATA_LEN;

/// ICMP echo type of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// An echo *reply*: the customer router routes it back to its destination, us.
    Reply,
    /// An echo *request*: the target answers it.
    Request,
}

/// What one probe looks like (derived from a tunnel's health-check settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpec {
    pub kind: ProbeKind,
    /// Inner source address.
    pub src: Ipv4Addr,
    /// Inner destination address.
    pub dst: Ipv4Addr,
    /// Inner TTL.
    pub ttl: u8,
}

/// What a probe echo carries, read by [`read_probe_echo`]: nothing of it is trusted before
/// [`ProbeKey::verify`] accepted the MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeEcho {
    pub seq: u16,
    /// ICMP identifier.
    pub ident: u16,
    /// The timestamp the probe carried (the sender's TSC at send time).
    pub sent_tsc: u64,
    pub mac: u64,
    /// Inner source and destination of the echo.
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

/// A probe echo identified in the dataplane, queued for the control thread. `Copy` and
/// allocation-free so that workers can hand it over through a bounded lock-free queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeReply {
    /// The tunnel named in the echo's data (a configured one; unauthenticated).
    pub tunnel: TunnelId,
    pub echo: ProbeEcho,
    /// The tunnel it was decapsulated from; `None` when it arrived plain.
    pub via: Option<TunnelId>,
    /// The worker's TSC when the burst holding the reply was received.
    pub rx_tsc: u64,
}

/// Writes the inner IPv4 packet of a probe, MAC'ed under `key`, into `buf` and returns its
/// length ([`PROBE_PACKET_LEN`]); `None` if `buf` is shorter.
#[allow(clippy::too_many_arguments)]
pub fn write_probe(
    buf: &mut [u8],
    spec: &ProbeSpec,
    key: &ProbeKey,
    ident: u16,
    ip_ident: u16,
    tunnel: TunnelId,
    seq: u16,
    sent_tsc: u64,
) -> Option<usize> {
    let pkt = buf.get_mut(..PROBE_PACKET_LEN)?;
    let (ip, message) = pkt.split_at_mut(ipv4::HEADER_LEN);
    Ipv4Repr {
        src_addr: spec.src,
        dst_addr: spec.dst,
        protocol: IpProtocol::Icmp,
        payload_len: (icmp::HEADER_LEN + PROBE_DATA_LEN) as u16,
        ttl: spec.ttl,
        tos: 0,
        ident: ip_ident,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(ip)
    .ok()?;
    let data = message.get_mut(icmp::HEADER_LEN..)?;
    data[..4].copy_from_slice(&PROBE_MAGIC);
    data[4..8].copy_from_slice(&tunnel.0.to_be_bytes());
    data[8..16].copy_from_slice(&sent_tsc.to_be_bytes());
    data[16..24].copy_from_slice(&key.tag(tunnel, seq, ident, sent_tsc).to_be_bytes());
    let echo = match spec.kind {
        ProbeKind::Reply => IcmpRepr::EchoReply { ident, seq_no: seq },
        ProbeKind::Request => IcmpRepr::EchoRequest { ident, seq_no: seq },
    };
    echo.emit(message).ok()?;
    Some(PROBE_PACKET_LEN)
}

/// What a probe echo whose buffer starts at its IPv4 header carries (as
/// [`Control::Probe`](super::Control::Probe) hands it over: the pipeline has already validated
/// the IPv4 header, the ICMP checksum, the identifier, the magic and the tunnel id). `None` if
/// the packet is too short to carry it all (a probe of another sender's format).
pub fn read_probe_echo(packet: &[u8]) -> Option<ProbeEcho> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let addr = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = packet.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let (src, dst) = (addr(12)?, addr(16)?);
    let echo = IcmpPacket::new_checked(packet.get(ihl..)?).ok()?;
    let data = echo.data();
    let word = |at: usize| -> Option<u64> {
        Some(u64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
    };
    Some(ProbeEcho {
        seq: echo.echo_seq_no(),
        ident: echo.echo_ident(),
        sent_tsc: word(8)?,
        mac: word(16)?,
        src,
        dst,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::icmp::{IcmpMessage, IcmpPacket};
    use crate::wire::ipv4::Ipv4Packet;

    fn spec(kind: ProbeKind) -> ProbeSpec {
        ProbeSpec {
            kind,
            src: Ipv4Addr::new(10, 200, 0, 1),
            dst: Ipv4Addr::new(203, 0, 113, 1),
            ttl: 64,
        }
    }

    const KEY: ProbeKey = ProbeKey::new([7; PROBE_KEY_LEN]);

    #[test]
    fn probe_is_a_valid_echo_with_our_payload() {
        for (kind, msg) in [
            (ProbeKind::Reply, IcmpMessage::EchoReply),
            (ProbeKind::Request, IcmpMessage::EchoRequest),
        ] {
            let mut buf = [0u8; 64];
            let n = write_probe(
                &mut buf,
                &spec(kind),
                &KEY,
                0xC0DE,
                7,
                TunnelId(3),
                41,
                0x0102_0304,
            )
            .expect("fits");
            assert_eq!(n, PROBE_PACKET_LEN);
            let ip = Ipv4Packet::new_checked(&buf[..n]).expect("valid IPv4");
            assert!(ip.verify_checksum());
            assert_eq!(ip.src_addr(), Ipv4Addr::new(10, 200, 0, 1));
            assert_eq!(ip.dst_addr(), Ipv4Addr::new(203, 0, 113, 1));
            assert_eq!(ip.ident(), 7);
            let icmp = IcmpPacket::new_checked(&buf[20..n]).expect("valid ICMP");
            assert!(icmp.verify_checksum());
            assert_eq!(icmp.msg_type(), msg);
            assert_eq!(icmp.echo_ident(), 0xC0DE);
            assert_eq!(icmp.echo_seq_no(), 41);
            assert_eq!(&icmp.data()[..4], b"CNDT");
            assert_eq!(&icmp.data()[4..8], &3u32.to_be_bytes());
            let echo = read_probe_echo(&buf[..n]).expect("readable");
            assert_eq!(
                (echo.seq, echo.ident, echo.sent_tsc),
                (41, 0xC0DE, 0x0102_0304)
            );
            assert_eq!(echo.src, Ipv4Addr::new(10, 200, 0, 1));
            assert_eq!(echo.dst, Ipv4Addr::new(203, 0, 113, 1));
            assert!(KEY.verify(TunnelId(3), &echo));
        }
    }

    #[test]
    fn the_mac_covers_tunnel_sequence_identifier_and_time() {
        let mut buf = [0u8; 64];
        let n = write_probe(
            &mut buf,
            &spec(ProbeKind::Reply),
            &KEY,
            0xC0DE,
            1,
            TunnelId(3),
            41,
            99,
        )
        .unwrap();
        let echo = read_probe_echo(&buf[..n]).unwrap();
        assert!(KEY.verify(TunnelId(3), &echo));
        assert!(!KEY.verify(TunnelId(4), &echo), "another tunnel");
        for forged in [
            ProbeEcho { seq: 42, ..echo },
            ProbeEcho {
                ident: 0xC0DF,
                ..echo
            },
            ProbeEcho {
                sent_tsc: 98,
                ..echo
            },
            ProbeEcho {
                mac: echo.mac ^ 1,
                ..echo
            },
        ] {
            assert!(!KEY.verify(TunnelId(3), &forged), "{forged:?}");
        }
        assert!(
            !ProbeKey::new([8; PROBE_KEY_LEN]).verify(TunnelId(3), &echo),
            "another key"
        );
        assert_eq!(
            format!("{KEY:?}"),
            "ProbeKey(..)",
            "the key is never printed"
        );
    }

    #[test]
    fn short_buffers_are_refused() {
        let mut buf = [0u8; PROBE_PACKET_LEN - 1];
        assert_eq!(
            write_probe(
                &mut buf,
                &spec(ProbeKind::Reply),
                &KEY,
                1,
                1,
                TunnelId(0),
                1,
                1
            ),
            None
        );
        let mut full = [0u8; PROBE_PACKET_LEN];
        write_probe(
            &mut full,
            &spec(ProbeKind::Reply),
            &KEY,
            1,
            1,
            TunnelId(0),
            9,
            5,
        )
        .unwrap();
        for cut in 0..PROBE_PACKET_LEN {
            assert_eq!(read_probe_echo(&full[..cut]), None, "cut at {cut}");
        }
        let echo = read_probe_echo(&full).unwrap();
        assert_eq!((echo.seq, echo.sent_tsc), (9, 5));
    }
}
