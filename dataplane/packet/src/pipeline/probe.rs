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
//!
//! Echo replies carry the request's identifier, sequence number and data unchanged (RFC 792), so
//! the same layout identifies `request` probes' replies and bounced `reply` probes.
//!
//! [`Context::probe_ident`]: super::Context::probe_ident

use core::net::Ipv4Addr;

use super::context::PROBE_MAGIC;
use crate::route::TunnelId;
use crate::wire::{icmp, ipv4, IcmpPacket, IcmpRepr, IpProtocol, Ipv4Repr};

/// Bytes of ICMP data in a probe.
pub const PROBE_DATA_LEN: usize = 16;
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

/// A probe echo identified in the dataplane, queued for the control thread. `Copy` and
/// allocation-free so that workers can hand it over through a bounded lock-free queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeReply {
    pub tunnel: TunnelId,
    pub seq: u16,
    /// The timestamp the probe carried (the sender's TSC at send time).
    pub sent_tsc: u64,
    /// The worker's TSC when the burst holding the reply was received.
    pub rx_tsc: u64,
}

/// Writes the inner IPv4 packet of a probe into `buf` and returns its length
/// ([`PROBE_PACKET_LEN`]); `None` if `buf` is shorter.
pub fn write_probe(
    buf: &mut [u8],
    spec: &ProbeSpec,
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
    let echo = match spec.kind {
        ProbeKind::Reply => IcmpRepr::EchoReply { ident, seq_no: seq },
        ProbeKind::Request => IcmpRepr::EchoRequest { ident, seq_no: seq },
    };
    echo.emit(message).ok()?;
    Some(PROBE_PACKET_LEN)
}

/// The sequence number and send timestamp of a probe echo whose buffer starts at its IPv4
/// header (as [`Control::Probe`](super::Control::Probe) hands it over: the pipeline has already
/// validated the IPv4 header, the ICMP checksum, the identifier, the magic and the tunnel id).
/// `None` if the packet is too short to carry them (a probe of another sender's format).
pub fn read_probe_echo(packet: &[u8]) -> Option<(u16, u64)> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let echo = IcmpPacket::new_checked(packet.get(ihl..)?).ok()?;
    let stamp: [u8; 8] = echo.data().get(8..16)?.try_into().ok()?;
    Some((echo.echo_seq_no(), u64::from_be_bytes(stamp)))
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
            assert_eq!(read_probe_echo(&buf[..n]), Some((41, 0x0102_0304)));
        }
    }

    #[test]
    fn short_buffers_are_refused() {
        let mut buf = [0u8; PROBE_PACKET_LEN - 1];
        assert_eq!(
            write_probe(&mut buf, &spec(ProbeKind::Reply), 1, 1, TunnelId(0), 1, 1),
            None
        );
        let mut full = [0u8; PROBE_PACKET_LEN];
        write_probe(&mut full, &spec(ProbeKind::Reply), 1, 1, TunnelId(0), 9, 5).unwrap();
        for cut in 0..PROBE_PACKET_LEN {
            assert_eq!(read_probe_echo(&full[..cut]), None, "cut at {cut}");
        }
        assert_eq!(read_probe_echo(&full), Some((9, 5)));
    }
}
