//! [`process`]: classify one received frame and rewrite it in place (see the module docs of
//! [`pipeline`](super) for the table of paths). Every layer is validated before it is read;
//! every failure is a [`DropReason`]; all slicing is checked (`get`), so no input can panic.

use core::net::Ipv4Addr;

use crate::route::ecmp::{self, FlowKey};
use crate::route::{NextHop, TunnelId};
use crate::wire::icmp::{self, IcmpError};
use crate::wire::ipv4::{ECN_CE, ECN_MASK, FLAG_DF, FLAG_MF, OFFSET_MASK};
use crate::wire::{
    ethernet, gre, ipv4, ArpOperation, ArpPacket, EtherType, EthernetAddress, EthernetFrame,
    GreHeader, IcmpMessage, IcmpPacket, IpProtocol, Ipv4Header, TcpHeader, TcpPacket, UdpHeader,
};

use super::buf::PacketBuf;
use super::context::{
    Context, Local, TunnelEntry, TunnelKind, ESP_HEADER_LEN, ESP_ICV_LEN, ESP_IV_LEN,
    ESP_TRAILER_LEN, GRE_KEY_LEN, MAX_ENCAP_LEN, NAT_T_PORT, NAT_T_UDP_LEN, OUTER_IPV4_LEN,
    PROBE_MAGIC,
};
use super::fragment::check_options;
use super::options;
use super::state::WorkerState;
use super::verdict::{Control, DropReason, Outcome, Verdict};
use crate::esp::sa::{SaCounter, AAD_LEN, ICV_LEN};
use crate::esp::{iv, padding};

const ETH_LEN: usize = ethernet::HEADER_LEN;
/// Ethernet + outer IPv4 + keyless GRE.
const BASE_ENCAP_LEN: usize = MAX_ENCAP_LEN - GRE_KEY_LEN as usize;

type Result<T> = core::result::Result<T, DropReason>;

// Protocol numbers as the header carries them, for the match on the protocol of a packet to
// a local address (a match on an `IpProtocol` converted from it compiled into a compare chain
// ahead of the match there).
const UDP: u8 = IpProtocol::Udp.value();
const ICMP: u8 = IpProtocol::Icmp.value();
const GRE: u8 = IpProtocol::Gre.value();
const ESP: u8 = IpProtocol::Esp.value();

/// The IPv4 header fields the pipeline decides on, read once after validation.
#[derive(Debug, Clone, Copy)]
struct IpInfo {
    header_len: usize,
    total_len: usize,
    src: u32,
    dst: u32,
    /// Payload protocol number (matched against the constants above; a stored `IpProtocol` cost
    /// a compare chain per packet).
    protocol: u8,
    ttl: u8,
    tos: u8,
    dont_frag: bool,
    fragment: bool,
}

/// Validates the IPv4 packet at the start of `bytes` by exactly [`Ipv4Header::check`]'s rules
/// (those of [`crate::wire::Ipv4Packet::new_checked`]), in its order and with its errors, then
/// the header checksum; and reads the fields the pipeline decides on. Written out over the
/// fixed-size header view rather than calling `check` because it runs once or twice per packet:
/// with `check` returning the view through a `Result`, `scripts/icount.sh` counted 21 more
/// instructions per encapsulated packet. The common header (0x45: version 4, no options) passes
/// the version and length checks in one compare and has its checksum tested over the fixed 20
/// bytes; any other goes through [`parse_ipv4_other`]. A property test pins both to the wire
/// parser.
#[inline(always)]
fn parse_ipv4(bytes: &[u8]) -> Result<IpInfo> {
    use crate::wire::Error as W;
    let h = Ipv4Header::from_prefix(bytes).ok_or(W::Ipv4Truncated)?;
    if h.version_ihl() != 0x45 {
        return parse_ipv4_other(h, bytes);
    }
    let info = ipv4_info(h, bytes, ipv4::HEADER_LEN)?;
    if !h.checksum_ok_no_options() {
        return Err(W::Ipv4BadChecksum.into());
    }
    Ok(info)
}

/// [`parse_ipv4`] for a header other than 0x45: a version other than 4, an IHL under 5, or
/// options. Out of line: options are rare, and the rest are errors.
#[cold]
#[inline(never)]
fn parse_ipv4_other(h: Ipv4Header<&[u8; ipv4::HEADER_LEN]>, bytes: &[u8]) -> Result<IpInfo> {
    use crate::wire::Error as W;
    if h.version() != 4 {
        return Err(W::Ipv4BadVersion.into());
    }
    let header_len = h.header_len();
    if header_len < ipv4::HEADER_LEN {
        return Err(W::Ipv4BadIhl.into());
    }
    if bytes.len() < header_len {
        return Err(W::Ipv4Truncated.into());
    }
    let info = ipv4_info(h, bytes, header_len)?;
    if !h.verify_checksum(bytes) {
        return Err(W::Ipv4BadChecksum.into());
    }
    Ok(info)
}

/// The checks of [`parse_ipv4`] after the header length (total length, fragment end), and the
/// fields, for a header of `header_len` bytes (version and length already checked).
#[inline(always)]
fn ipv4_info(
    h: Ipv4Header<&[u8; ipv4::HEADER_LEN]>,
    bytes: &[u8],
    header_len: usize,
) -> Result<IpInfo> {
    use crate::wire::Error as W;
    let total_len = usize::from(h.total_len());
    if total_len < header_len || total_len > bytes.len() {
        return Err(W::Ipv4BadTotalLength.into());
    }
    let flags = h.flags_offset();
    // Only a fragment at an offset can end past 65535 (a total length is at most that).
    let offset = usize::from(flags & OFFSET_MASK);
    if offset != 0 && offset * 8 + (total_len - header_len) > usize::from(u16::MAX) {
        return Err(W::Ipv4BadFragmentOffset.into());
    }
    Ok(IpInfo {
        header_len,
        total_len,
        src: u32::from(h.src_addr()),
        dst: u32::from(h.dst_addr()),
        protocol: h.protocol_number(),
        ttl: h.ttl(),
        tos: h.tos(),
        dont_frag: flags & FLAG_DF != 0,
        fragment: flags & (FLAG_MF | OFFSET_MASK) != 0,
    })
}

/// Transport fields for the flow hash and the MSS clamp. Word-sized fields on purpose: with
/// `u16`s and a `bool`, the `Result<L4>` was packed into a few bytes, spilled, and reassembled
/// with mismatched loads (a store-forwarding stall per packet).
#[derive(Debug, Clone, Copy, Default)]
struct L4 {
    /// Source port << 16 | destination port.
    ports: u32,
    /// TCP SYN (or SYN-ACK): clamp its MSS.
    syn: bool,
}

impl L4 {
    #[inline(always)]
    fn src_port(&self) -> u16 {
        (self.ports >> 16) as u16
    }

    #[inline(always)]
    fn dst_port(&self) -> u16 {
        self.ports as u16
    }
}

/// Reads and validates the L4 header of the IPv4 packet `ip_bytes` (docs/behaviour.md §7):
/// TCP (20 bytes, a data offset of at least 5 within the packet), UDP (8 bytes, a length field
/// between 8 and the packet's payload) and ICMP (8 bytes); fragments by [`fragment_transport`].
/// Returns the ports and SYN of unfragmented TCP and UDP, zeros otherwise, which is what the
/// seed's hash rule wants for fragments and other protocols.
#[inline(always)]
fn transport(ip_bytes: &[u8], ip: &IpInfo) -> Result<L4> {
    if ip.fragment {
        return fragment_transport(ip_bytes, ip.header_len, ip.total_len, ip.protocol);
    }
    let segment = ip_bytes.get(ip.header_len..ip.total_len).unwrap_or(&[]);
    // `TcpPacket::new_checked` / `UdpPacket::new_checked`'s rules and errors, over fixed arrays.
    match IpProtocol::from(ip.protocol) {
        IpProtocol::Tcp => {
            let h = TcpHeader::check(segment)?;
            Ok(L4 {
                ports: h.ports(),
                syn: h.flags().syn(),
            })
        }
        IpProtocol::Udp => Ok(L4 {
            ports: UdpHeader::check(segment)?.ports(),
            syn: false,
        }),
        IpProtocol::Icmp if segment.len() < icmp::HEADER_LEN => {
            Err(crate::wire::Error::IcmpTruncated.into())
        }
        _ => Ok(L4::default()),
    }
}

/// [`transport`] for a fragment: one with more to follow must carry a multiple of 8 payload
/// bytes (`Ipv4BadFragmentLength`), and a first fragment must hold the whole TCP header, the
/// UDP header (whose length covers the whole datagram) or the ICMP header. Later fragments carry
/// no L4 header. Fragments are neither hashed on ports nor MSS-clamped, so this returns zeros.
///
/// Takes the fields rather than the `IpInfo` and is out of line: fragments are rare, and a
/// reference passed out of line would keep the caller's `IpInfo` in memory.
#[cold]
#[inline(never)]
fn fragment_transport(
    ip_bytes: &[u8],
    header_len: usize,
    total_len: usize,
    protocol: u8,
) -> Result<L4> {
    let flags = Ipv4Header::from_prefix(ip_bytes).map_or(0, |h| h.flags_offset());
    let segment = ip_bytes.get(header_len..total_len).unwrap_or(&[]);
    if flags & FLAG_MF != 0 && segment.len() % 8 != 0 {
        return Err(DropReason::Ipv4BadFragmentLength);
    }
    if flags & OFFSET_MASK != 0 {
        return Ok(L4::default());
    }
    match IpProtocol::from(protocol) {
        IpProtocol::Tcp => {
            TcpHeader::check(segment)?;
        }
        IpProtocol::Udp => {
            UdpHeader::check_first_fragment(segment)?;
        }
        IpProtocol::Icmp if segment.len() < icmp::HEADER_LEN => {
            return Err(crate::wire::Error::IcmpTruncated.into());
        }
        _ => {}
    }
    Ok(L4::default())
}

/// The flow hash's key by the seed rule ([`ecmp::hashes_ports`]).
#[inline(always)]
fn flow_key(ip: &IpInfo, l4: L4) -> FlowKey {
    if ecmp::hashes_ports(ip.protocol, ip.fragment) {
        FlowKey::new(ip.src, ip.dst, l4.src_port(), l4.dst_port())
    } else {
        FlowKey::addresses(ip.src, ip.dst)
    }
}

/// Destinations never forwarded to the internet: 0/8, 127/8, 224/4 (multicast), 240/4
/// (reserved and broadcast).
#[inline]
fn martian(addr: u32) -> bool {
    let first = addr >> 24;
    first == 0 || first == 127 || first >= 224
}

/// Where the packet being routed came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Received plain on a port.
    Plain,
    /// Decapsulated from this tunnel.
    Tunnel(TunnelId),
    /// Generated here (an ICMP error): not TTL-decremented, never answered with an error.
    Local,
}

/// How ESP reaches a local endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EspCarrier {
    /// Directly in IPv4 (protocol 50).
    Ip,
    /// In UDP to port 4500 (NAT traversal, RFC 3948).
    Udp,
}

/// Removes trailing bytes beyond `len` (Ethernet padding, GRE trailer).
#[inline(always)]
fn trim_to<B: PacketBuf>(pkt: &mut B, len: usize) -> Result<()> {
    let excess = pkt.len().saturating_sub(len);
    if excess > 0 {
        let n = u16::try_from(excess).map_err(|_| crate::wire::Error::Ipv4BadTotalLength)?;
        if !pkt.trim(n) {
            return Err(crate::wire::Error::Ipv4BadTotalLength.into());
        }
    }
    Ok(())
}

/// Makes the `have` header bytes in front of the IP packet `need` bytes long, growing into the
/// headroom or cutting from the front; the new header bytes are unspecified.
#[inline(always)]
fn reframe<B: PacketBuf>(pkt: &mut B, have: usize, need: usize) -> Result<()> {
    if need > have {
        let n = u16::try_from(need - have).map_err(|_| DropReason::Headroom)?;
        pkt.prepend(n).ok_or(DropReason::Headroom)?;
    } else if have > need {
        let n = u16::try_from(have - need).map_err(|_| DropReason::Headroom)?;
        if !pkt.adj(n) {
            return Err(DropReason::Headroom);
        }
    }
    Ok(())
}

/// Decrements the TTL of `h` (checksum patched); `TtlExceeded` (and no change) on TTL 0:
/// callers have already dropped TTL <= 1.
#[inline(always)]
fn decrement_ttl(mut h: Ipv4Header<&mut [u8; ipv4::HEADER_LEN]>) -> Result<()> {
    h.decrement_ttl().ok_or(DropReason::TtlExceeded)?;
    Ok(())
}

/// The encapsulation header values of one packet.
#[derive(Clone, Copy)]
struct Outer {
    tos: u8,
    len: u16,
    ident: u16,
    flags: u16,
    checksum: u16,
}

/// Writes `entry`'s header template and `outer`'s fields over the first `L - 20` bytes of `h`
/// (`L` = 58 keyless, 62 with a key) and, if `forwarded`, decrements the TTL of the inner
/// header that follows: one fixed-size array, so the views into it are at constant offsets and
/// unchecked.
#[inline(always)]
fn fill_encap<const L: usize>(
    h: &mut [u8; L],
    entry: &TunnelEntry,
    outer: Outer,
    forwarded: bool,
) -> Result<()> {
    let hlen = L - ipv4::HEADER_LEN;
    h[..hlen].copy_from_slice(&entry.header[..hlen]);
    let mut ip = Ipv4Header::from_prefix_mut(&mut h[ETH_LEN..]).ok_or(DropReason::Headroom)?;
    ip.set_tos(outer.tos);
    ip.set_total_len(outer.len);
    ip.set_ident(outer.ident);
    ip.set_flags_offset(outer.flags);
    ip.set_checksum(outer.checksum);
    if forwarded {
        let inner =
            Ipv4Header::from_prefix_mut(&mut h[hlen..]).ok_or(crate::wire::Error::Ipv4Truncated)?;
        decrement_ttl(inner)?;
    }
    Ok(())
}

/// Puts `entry`'s Ethernet + outer IPv4 + GRE header in front of the IPv4 packet at `ip_off`,
/// decrementing its TTL first if it is being `forwarded`.
#[inline(always)]
fn encap<B: PacketBuf>(
    entry: &TunnelEntry,
    pkt: &mut B,
    ip_off: usize,
    ip: &IpInfo,
    state: &mut WorkerState,
    forwarded: bool,
) -> Result<()> {
    let hlen = entry.header_len;
    let len = u16::try_from(ip.total_len + hlen - ETH_LEN).map_err(|_| DropReason::MtuExceeded)?;
    reframe(pkt, ip_off, hlen)?;
    let ident = state.next_ident();
    let flags = if ip.dont_frag && !entry.tunnel.clear_df {
        FLAG_DF
    } else {
        0
    };
    let outer = Outer {
        tos: ip.tos,
        len,
        ident,
        flags,
        checksum: outer_checksum(entry.ip_sum, ip.tos, len, ident, flags),
    };
    // The packet now holds the header and at least the 20-byte inner IPv4 header.
    let data = pkt.data_mut();
    const KEYLESS: usize = BASE_ENCAP_LEN + ipv4::HEADER_LEN;
    const KEYED: usize = MAX_ENCAP_LEN + ipv4::HEADER_LEN;
    if hlen == MAX_ENCAP_LEN {
        let h: &mut [u8; KEYED] = data
            .get_mut(..KEYED)
            .and_then(|h| h.try_into().ok())
            .ok_or(DropReason::Headroom)?;
        fill_encap(h, entry, outer, forwarded)
    } else {
        let h: &mut [u8; KEYLESS] = data
            .get_mut(..KEYLESS)
            .and_then(|h| h.try_into().ok())
            .ok_or(DropReason::Headroom)?;
        fill_encap(h, entry, outer, forwarded)
    }
}

/// The outer IPv4 header checksum from the template's sum and the four fields patched
/// (one's-complement sum of five 16-bit values: at most 5 * 0xffff, so two folds).
#[inline(always)]
fn outer_checksum(template_sum: u16, tos: u8, len: u16, ident: u16, flags: u16) -> u16 {
    let acc = u32::from(template_sum)
        + u32::from(tos)
        + u32::from(len)
        + u32::from(ident)
        + u32::from(flags);
    let acc = (acc & 0xffff) + (acc >> 16);
    !(((acc & 0xffff) + (acc >> 16)) as u16)
}

/// Encapsulates the IPv4 packet at `ip_off` into tunnel `id` (whose entry is `entry`): GRE, or
/// ESP for an IPsec tunnel.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn encap_to<B: PacketBuf>(
    ctx: &Context,
    id: TunnelId,
    entry: &TunnelEntry,
    pkt: &mut B,
    ip_off: usize,
    ip: &IpInfo,
    state: &mut WorkerState,
    forwarded: bool,
) -> Result<()> {
    if entry.tunnel.kind == TunnelKind::Ipsec {
        encap_esp(
            ctx,
            id,
            pkt,
            ip_off,
            ip.total_len,
            ip.tos,
            ip.dont_frag && !entry.tunnel.clear_df,
            state,
            forwarded,
        )
    } else {
        encap(entry, pkt, ip_off, ip, state, forwarded)
    }
}

/// ESP-encapsulates (RFC 4303 tunnel mode, RFC 4106 AES-GCM) the IPv4 packet of `inner_len`
/// bytes at `ip_off` (exactly trimmed) into IPsec tunnel `id`, decrementing its TTL first if it
/// is being `forwarded`: Ethernet + outer IPv4 (+ UDP 4500 with NAT-T) + SPI, sequence number
/// and IV in front, padding to 4 bytes, pad length, next header 4 and the ICV behind (appended
/// into the tailroom). The sequence number is the SA's next, shared by every worker; the IV is
/// the appliance's prefix and that number (`esp::iv`).
///
/// Out of line: one AEAD call dwarfs the call, and the GRE path stays as it was.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn encap_esp<B: PacketBuf>(
    ctx: &Context,
    id: TunnelId,
    pkt: &mut B,
    ip_off: usize,
    inner_len: usize,
    tos: u8,
    dont_frag: bool,
    state: &mut WorkerState,
    forwarded: bool,
) -> Result<()> {
    let esp = ctx.esp_tunnel(id).ok_or(DropReason::EspNoSa)?;
    let slot = esp.outbound.ok_or(DropReason::EspNoSa)?;
    state.esp.sync(ctx);
    let ident = state.next_ident();
    let writer = state.esp.writer();
    let rt = state.esp.slot(slot).ok_or(DropReason::EspNoSession)?;
    let cipher = rt.cipher.as_mut().ok_or(DropReason::EspNoSession)?;
    let pad = padding::pad_len(inner_len);
    let sealed_len = inner_len + pad + usize::from(ESP_TRAILER_LEN);
    let hlen = esp.header_len;
    let front = hlen + usize::from(ESP_IV_LEN);
    let outer_len = u16::try_from(front - ETH_LEN + sealed_len + usize::from(ESP_ICV_LEN))
        .map_err(|_| DropReason::MtuExceeded)?;
    if forwarded {
        let h = pkt
            .data_mut()
            .get_mut(ip_off..)
            .and_then(Ipv4Header::from_prefix_mut)
            .ok_or(crate::wire::Error::Ipv4Truncated)?;
        decrement_ttl(h)?;
    }
    // Both buffer changes before the sequence number is taken: a packet dropped for room
    // wastes no number.
    pkt.append((pad + usize::from(ESP_TRAILER_LEN) + ICV_LEN) as u16)
        .ok_or(DropReason::Headroom)?;
    reframe(pkt, ip_off, front)?;
    let seq = rt.shared.seq().take().ok_or(DropReason::EspSeqExhausted)?;
    let frame = pkt
        .data_mut()
        .get_mut(..front + sealed_len + ICV_LEN)
        .ok_or(DropReason::Headroom)?;
    let (head, rest) = frame.split_at_mut(front);
    head[..hlen].copy_from_slice(&esp.header[..hlen]);
    let flags = if dont_frag { FLAG_DF } else { 0 };
    {
        let mut h =
            Ipv4Header::from_prefix_mut(&mut head[ETH_LEN..]).ok_or(DropReason::Headroom)?;
        h.set_tos(tos);
        h.set_total_len(outer_len);
        h.set_ident(ident);
        h.set_flags_offset(flags);
        h.set_checksum(outer_checksum(esp.ip_sum, tos, outer_len, ident, flags));
    }
    if esp.nat_t {
        // UDP length; the checksum stays 0 (RFC 3948 §3.1).
        let udp = ETH_LEN + ipv4::HEADER_LEN;
        head[udp + 4..udp + 6].copy_from_slice(&(outer_len - OUTER_IPV4_LEN).to_be_bytes());
    }
    let spi_off = hlen - usize::from(ESP_HEADER_LEN);
    head[spi_off + 4..hlen].copy_from_slice(&seq.to_be_bytes());
    let explicit_iv = ctx.iv_prefix().iv(seq);
    head[hlen..front].copy_from_slice(&explicit_iv);
    let mut aad = [0u8; AAD_LEN];
    aad.copy_from_slice(&head[spi_off..hlen]);
    let nonce = iv::nonce(rt.salt, &explicit_iv);
    let (body, icv) = rest.split_at_mut(sealed_len);
    padding::write_trailer(&mut body[inner_len..], inner_len, IpProtocol::Ipv4.into())
        .ok_or(DropReason::Headroom)?;
    let icv: &mut [u8; ICV_LEN] = icv.try_into().map_err(|_| DropReason::Headroom)?;
    if !cipher.seal(&nonce, &aad, body, icv) {
        return Err(DropReason::EspNoSession);
    }
    rt.shared.add(writer, SaCounter::Packets, 1);
    rt.shared.add(writer, SaCounter::Bytes, inner_len as u64);
    rt.shared.see_seq(writer, seq);
    Ok(())
}

/// Copies an outer CE mark into an ECN-capable inner header (RFC 6040); returns the new TOS.
#[inline]
fn propagate_ce(ip_bytes: &mut [u8], tos: u8) -> u8 {
    let ecn = tos & ECN_MASK;
    if ecn == 0 || ecn == ECN_CE {
        return tos;
    }
    let new = tos | ECN_CE;
    if let Some(mut h) = Ipv4Header::from_prefix_mut(ip_bytes) {
        h.update_tos(new);
    }
    new
}

/// Classifies the frame in `pkt` (received on `rx_port`) and rewrites it in place. `now` is the
/// worker's clock for the ICMP token bucket (same unit as the bucket's `ticks_per_sec`).
///
/// Always inlined, with the hot path under it (classify, route, encapsulate), so that no
/// intermediate result goes through memory: a `Result<Verdict>` returned through the stack is
/// written with narrow stores and read back with wide loads, and the failed store-to-load
/// forwarding cost ~20 cycles per packet.
#[inline(always)]
pub fn process<B: PacketBuf>(
    ctx: &Context,
    rx_port: u16,
    pkt: &mut B,
    state: &mut WorkerState,
    now: u64,
) -> Outcome {
    let mut job = Job {
        ctx,
        pkt,
        state,
        now,
        rx_port,
        rx_tunnel: None,
    };
    let verdict = job.classify().unwrap_or_else(Verdict::Drop);
    Outcome {
        verdict,
        rx_tunnel: job.rx_tunnel,
    }
}

/// Encapsulates the IPv4 packet that `pkt` holds (from its first byte; trailing bytes are
/// trimmed) into `tunnel`, GRE or ESP by its kind, adding the Ethernet header to the gateway:
/// for fragments produced after a [`Verdict::NeedsFragmentation`] and for health-check probes.
/// Fails with `MtuExceeded` if the packet is bigger than the tunnel MTU, `Headroom` (ESP also
/// needs tailroom for its trailer and ICV), a wire error, or for an IPsec tunnel `EspNoSa`,
/// `EspNoSession` or `EspSeqExhausted`.
pub fn encapsulate<B: PacketBuf>(
    ctx: &Context,
    tunnel: TunnelId,
    pkt: &mut B,
    state: &mut WorkerState,
) -> Result<()> {
    let entry = ctx.entry(tunnel).ok_or(DropReason::UnknownTunnel)?;
    let ip = parse_ipv4(pkt.data())?;
    if ip.total_len > usize::from(entry.tunnel.mtu) {
        return Err(DropReason::MtuExceeded);
    }
    trim_to(pkt, ip.total_len)?;
    encap_to(ctx, tunnel, entry, pkt, 0, &ip, state, false)
}

/// One packet's trip through the pipeline.
struct Job<'a, B> {
    ctx: &'a Context,
    pkt: &'a mut B,
    state: &'a mut WorkerState,
    now: u64,
    rx_port: u16,
    rx_tunnel: Option<TunnelId>,
}

impl<B: PacketBuf> Job<'_, B> {
    #[inline(always)]
    fn classify(&mut self) -> Result<Verdict> {
        let port_mac = self
            .ctx
            .port_mac(self.rx_port)
            .ok_or(DropReason::UnknownPort)?;
        // The Ethernet header read over a fixed 14-byte array (named offsets, and a number that
        // is a constant at compile time: through a header view with accessors,
        // `scripts/icount.sh` counted 8 to 19 more instructions per packet), with
        // `EthernetFrame::new_checked`'s errors for short frames.
        const VLAN: u16 = EtherType::Vlan.value();
        use ethernet::field::ETHERTYPE;
        let ethertype = {
            let data = self.pkt.data();
            let h: &[u8; ETH_LEN] = data
                .get(..ETH_LEN)
                .and_then(|h| h.try_into().ok())
                .ok_or(crate::wire::Error::EthernetTruncated)?;
            let ethertype = u16::from_be_bytes([h[ETHERTYPE], h[ETHERTYPE + 1]]);
            if ethertype == VLAN && data.len() < ethernet::VLAN_HEADER_LEN {
                return Err(crate::wire::Error::VlanTruncated.into());
            }
            // The destination address: the first six bytes.
            let [d0, d1, d2, d3, d4, d5, ..] = *h;
            let dst = [d0, d1, d2, d3, d4, d5];
            // Any unicast destination is accepted (the NIC filters unicast in hardware when the
            // port is not promiscuous; replayed captures need not know the port's MAC), plus
            // broadcast for ARP. Other group addresses are not ours.
            if dst[0] & 1 != 0 && dst != EthernetAddress::BROADCAST.0 {
                return Err(DropReason::EthernetNotForUs);
            }
            if ethertype == VLAN {
                return Err(DropReason::VlanTagged);
            }
            ethertype
        };
        // Converted where it is matched, which compiles into the match.
        match EtherType::from(ethertype) {
            EtherType::Ipv4 => self.ipv4(),
            EtherType::Arp => self.arp(port_mac),
            _ => Err(DropReason::UnsupportedEtherType),
        }
    }

    #[inline(always)]
    fn ipv4(&mut self) -> Result<Verdict> {
        let ip = parse_ipv4(self.pkt.data().get(ETH_LEN..).unwrap_or(&[]))?;
        if ip.header_len > ipv4::HEADER_LEN {
            options::check(
                self.pkt.data().get(ETH_LEN..).unwrap_or(&[]),
                self.ctx.ipv4_options(),
            )?;
        }
        trim_to(self.pkt, ETH_LEN + ip.total_len)?;
        match self.ctx.local(ip.dst) {
            None => self.route(ETH_LEN, ip, Source::Plain),
            Some(local) => self.deliver_local(ip, local),
        }
    }

    /// docs/behaviour.md §7's checks of what follows the IPv4 header at `ip_off` (whose options
    /// were checked right after the header itself): the fragment length and the L4 header.
    /// They run before any decision about the packet (local delivery, route, GRE or ESP
    /// acceptance, TTL), so a malformed packet is counted under its own defect. Returns the L4
    /// fields for the routing.
    #[inline(always)]
    fn validate(&self, ip_off: usize, ip: &IpInfo) -> Result<L4> {
        transport(self.pkt.data().get(ip_off..).unwrap_or(&[]), ip)
    }

    /// [`Self::validate`] for the (already validated) IPv4 header at `ip_off` of a packet to one
    /// of our addresses, whose L4 fields are not needed: out of line, re-parsing the header
    /// rather than taking the caller's `IpInfo`, which would keep that in memory on the hot path.
    #[inline(never)]
    fn validate_local(&self, ip_off: usize) -> Result<()> {
        let ip = parse_ipv4(self.pkt.data().get(ip_off..).unwrap_or(&[]))?;
        self.validate(ip_off, &ip).map(|_| ())
    }

    /// A plain packet to one of our addresses.
    #[inline(always)]
    fn deliver_local(&mut self, ip: IpInfo, local: Local) -> Result<Verdict> {
        // Validated (§7) before any of the decisions below, out of line; GRE carries no L4
        // header, so the common packet, unfragmented GRE without options, skips it.
        match ip.protocol {
            GRE if local == Local::Endpoint => {
                if !ip.fragment {
                    self.decap_gre(ip)
                } else {
                    self.validate_local(ETH_LEN)?;
                    if self.ctx.gre_candidates(ip.dst, ip.src).is_empty() {
                        Err(DropReason::GreUnknownRemote)
                    } else {
                        Ok(Verdict::Reassemble)
                    }
                }
            }
            ESP if local == Local::Endpoint => {
                self.validate_local(ETH_LEN)?;
                self.esp(
                    EspCarrier::Ip,
                    ip.src,
                    ip.dst,
                    ip.header_len,
                    ip.fragment,
                    ip.tos,
                )
            }
            UDP if local == Local::Endpoint => {
                self.validate_local(ETH_LEN)?;
                self.esp(
                    EspCarrier::Udp,
                    ip.src,
                    ip.dst,
                    ip.header_len,
                    ip.fragment,
                    ip.tos,
                )
            }
            ICMP => {
                self.validate_local(ETH_LEN)?;
                self.local_icmp(ETH_LEN, local, Source::Plain)
            }
            _ => {
                self.validate_local(ETH_LEN)?;
                Err(DropReason::LocalUnsupported)
            }
        }
    }

    /// ESP (or, `carrier` [`EspCarrier::Udp`], any UDP) to a local endpoint `dst` from `src`
    /// (host order): fragments of a tunnel pair are reassembled (a UDP fragment's port is not
    /// known yet), other fragments dropped (`EspUnknownSpi`; UDP: `LocalUnsupported`); the
    /// rest is decapsulated ([`Self::decap_esp`]), UDP once [`Self::nat_t`] found ESP in it.
    ///
    /// Takes the fields it needs rather than the `IpInfo`: an `IpInfo` passed by value to an
    /// out-of-line function goes through memory, which kept the caller's `IpInfo` on the stack
    /// on every packet.
    #[cold]
    fn esp(
        &mut self,
        carrier: EspCarrier,
        src: u32,
        dst: u32,
        header_len: usize,
        fragment: bool,
        tos: u8,
    ) -> Result<Verdict> {
        if fragment {
            return if self.ctx.has_esp_pair(dst, src) {
                Ok(Verdict::Reassemble)
            } else {
                Err(match carrier {
                    EspCarrier::Ip => DropReason::EspUnknownSpi,
                    EspCarrier::Udp => DropReason::LocalUnsupported,
                })
            };
        }
        let payload_off = ETH_LEN + header_len;
        let esp_off = match carrier {
            EspCarrier::Ip => payload_off,
            EspCarrier::Udp => self.nat_t(payload_off)?,
        };
        self.decap_esp(esp_off, dst, src, tos)
    }

    /// The UDP datagram at `udp_off` (unfragmented, to a local endpoint): ESP in UDP (RFC 3948)
    /// when it is to port 4500 and starts with a non-zero SPI; a zero marker (IKE, not
    /// Conduit's) and NAT keepalives (one 0xFF byte) are dropped `LocalUnsupported`, as is any
    /// other UDP. Trims the packet to the datagram and returns the offset of its ESP header.
    #[inline(always)]
    fn nat_t(&mut self, udp_off: usize) -> Result<usize> {
        // The UDP header was validated: 8 bytes, a length between 8 and the IP payload.
        let udp_end = {
            let seg = self.pkt.data().get(udp_off..).unwrap_or(&[]);
            let (Some(&[_, _, d0, d1, l0, l1]), true) = (seg.get(..6), seg.len() >= 8) else {
                return Err(crate::wire::Error::UdpTruncated.into());
            };
            if u16::from_be_bytes([d0, d1]) != NAT_T_PORT {
                return Err(DropReason::LocalUnsupported);
            }
            let len = usize::from(u16::from_be_bytes([l0, l1]));
            let payload = seg
                .get(usize::from(NAT_T_UDP_LEN)..len)
                .ok_or(crate::wire::Error::UdpBadLength)?;
            match payload {
                [0xff] => return Err(DropReason::LocalUnsupported),
                [0, 0, 0, 0, ..] => return Err(DropReason::LocalUnsupported),
                [_, _, _, _, ..] => {}
                _ => return Err(DropReason::LocalUnsupported),
            }
            udp_off + len
        };
        trim_to(self.pkt, udp_end)?;
        Ok(udp_off + usize::from(NAT_T_UDP_LEN))
    }

    /// Decapsulates the ESP packet at `esp_off` (running to the end of the trimmed packet) sent
    /// from `remote` to the local endpoint `local` (host order), with the outer TOS `tos`, and
    /// routes the inner packet as received from the SA's tunnel. The checks in order: the ESP
    /// header, the inbound SA of (remote, SPI) to this endpoint, the length (IV, ICV and
    /// trailer), the session, the replay window (nothing changes yet), the ICV with the
    /// decryption, then the window moves, then the trailer and the inner IPv4 packet. Nothing
    /// that fails before the ICV verified touches the SA's state.
    #[inline(never)]
    fn decap_esp(&mut self, esp_off: usize, local: u32, remote: u32, tos: u8) -> Result<Verdict> {
        let ctx = self.ctx;
        let (spi, seq) = {
            let esp =
                crate::wire::EspPacket::new_checked(self.pkt.data().get(esp_off..).unwrap_or(&[]))?;
            (esp.spi(), esp.sequence_number())
        };
        let slot = ctx
            .esp_inbound(local, remote, spi)
            .ok_or(DropReason::EspUnknownSpi)?;
        let tunnel = ctx.sa_slot(slot).ok_or(DropReason::EspUnknownSpi)?.tunnel;
        self.rx_tunnel = Some(tunnel);
        let head = usize::from(ESP_HEADER_LEN + ESP_IV_LEN);
        let sealed_len = self
            .pkt
            .len()
            .checked_sub(esp_off + head + ICV_LEN + usize::from(ESP_TRAILER_LEN))
            .ok_or(crate::wire::Error::EspTruncated)?
            + usize::from(ESP_TRAILER_LEN);
        self.state.esp.sync(ctx);
        let writer = self.state.esp.writer();
        let rt = self.state.esp.slot(slot).ok_or(DropReason::EspNoSession)?;
        let (Some(cipher), Some(window)) = (rt.cipher.as_mut(), rt.replay.as_mut()) else {
            return Err(DropReason::EspNoSession);
        };
        if window.check(seq).is_err() {
            rt.shared.add(writer, SaCounter::Replays, 1);
            return Err(DropReason::EspReplay);
        }
        let sealed = self
            .pkt
            .data_mut()
            .get_mut(esp_off..esp_off + head + sealed_len + ICV_LEN)
            .ok_or(crate::wire::Error::EspTruncated)?;
        let (header, rest) = sealed.split_at_mut(head);
        let mut aad = [0u8; AAD_LEN];
        aad.copy_from_slice(&header[..AAD_LEN]);
        let mut explicit_iv = [0u8; iv::EXPLICIT_IV_LEN];
        explicit_iv.copy_from_slice(&header[AAD_LEN..]);
        let (body, icv) = rest.split_at_mut(sealed_len);
        let icv: &[u8; ICV_LEN] = (&*icv)
            .try_into()
            .map_err(|_| crate::wire::Error::EspTruncated)?;
        if !cipher.open(&iv::nonce(rt.salt, &explicit_iv), &aad, body, icv) {
            rt.shared.add(writer, SaCounter::AuthFailures, 1);
            return Err(DropReason::EspAuthFailed);
        }
        window.accept(seq);
        rt.shared.add(writer, SaCounter::Packets, 1);
        rt.shared.see_seq(writer, seq);
        let inner_len = match crate::wire::esp::parse_trailer(body) {
            Ok((inner, IpProtocol::Ipv4)) => inner.len(),
            _ => return Err(DropReason::EspBadTrailer),
        };
        rt.shared.add(writer, SaCounter::Bytes, inner_len as u64);
        let inner_off = esp_off + head;
        trim_to(self.pkt, inner_off + inner_len)?;
        self.route_inner(inner_off, tos, tunnel)
    }

    /// docs/behaviour.md §2's GRE acceptance rules, then the inner packet is routed.
    #[inline(always)]
    fn decap_gre(&mut self, outer: IpInfo) -> Result<Verdict> {
        let ctx = self.ctx;
        let candidates = ctx.gre_candidates(outer.dst, outer.src);
        if candidates.is_empty() {
            return Err(DropReason::GreUnknownRemote);
        }
        let gre_off = ETH_LEN + outer.header_len;
        let (tunnel, inner_off) = {
            let payload = self
                .pkt
                .data()
                .get(gre_off..ETH_LEN + outer.total_len)
                .unwrap_or(&[]);
            let gre = GreHeader::check(payload)?;
            let entry = candidates
                .iter()
                .find(|e| e.key == gre.key)
                .ok_or(match gre.key {
                    Some(_) => DropReason::GreKeyMismatch,
                    None => DropReason::GreKeyMissing,
                })?;
            self.rx_tunnel = Some(entry.tunnel);
            if gre.checksum_present() && !gre::verify_checksum(payload) {
                return Err(crate::wire::Error::GreBadChecksum.into());
            }
            const IPV4: u16 = EtherType::Ipv4.value();
            const IPV6: u16 = EtherType::Ipv6.value();
            match gre.protocol {
                IPV4 => {}
                IPV6 => return Err(DropReason::GreInnerIpv6),
                _ => return Err(DropReason::GreUnsupportedProtocol),
            }
            (entry.tunnel, gre_off + gre.header_len())
        };
        self.route_inner(inner_off, outer.tos, tunnel)
    }

    /// Routes the inner IPv4 packet at `inner_off`, decapsulated from `tunnel` with the outer
    /// TOS `outer_tos`: its header and options checked, the packet trimmed to its total length,
    /// and congestion experienced on the outer header carried to the inner one.
    #[inline(always)]
    fn route_inner(
        &mut self,
        inner_off: usize,
        outer_tos: u8,
        tunnel: TunnelId,
    ) -> Result<Verdict> {
        let mut inner = parse_ipv4(self.pkt.data().get(inner_off..).unwrap_or(&[]))?;
        if inner.header_len > ipv4::HEADER_LEN {
            options::check(
                self.pkt.data().get(inner_off..).unwrap_or(&[]),
                self.ctx.ipv4_options(),
            )?;
        }
        trim_to(self.pkt, inner_off + inner.total_len)?;
        if outer_tos & ECN_MASK == ECN_CE {
            let bytes = self.pkt.data_mut().get_mut(inner_off..).unwrap_or(&mut []);
            inner.tos = propagate_ce(bytes, inner.tos);
        }
        self.route(inner_off, inner, Source::Tunnel(tunnel))
    }

    /// Routes the validated IPv4 packet at `ip_off` (exactly trimmed): customer route →
    /// encapsulate into the selected tunnel; otherwise plain to the gateway (decapsulated and
    /// generated packets) or dropped (plain packets).
    #[inline(always)]
    fn route(&mut self, ip_off: usize, ip: IpInfo, source: Source) -> Result<Verdict> {
        let ctx = self.ctx;
        if source != Source::Plain {
            if let Some(local) = ctx.local(ip.dst) {
                self.validate_local(ip_off)?;
                return match (source, IpProtocol::from(ip.protocol)) {
                    (Source::Tunnel(_), IpProtocol::Icmp) => self.local_icmp(ip_off, local, source),
                    _ => Err(DropReason::LocalUnsupported),
                };
            }
        }
        let l4 = self.validate(ip_off, &ip)?;
        let Some(group) = ctx.table().lookup_group(ip.dst) else {
            return self.no_route(ip_off, ip, l4, source);
        };
        // The flow hash is only computed when the group has a choice to make. The closure owns
        // a copy of the key: one that borrowed `ip` would keep `ip` in memory.
        let key = flow_key(&ip, l4);
        let id = match ctx.select(group, move || key.hash()) {
            NextHop::Tunnel(id) => id,
            NextHop::Gateway => return self.egress_via_route(ip_off, source),
        };
        let entry = ctx.entry(id).ok_or(DropReason::UnknownTunnel)?;
        let t = &entry.tunnel;
        let forwarded = source != Source::Local;
        if forwarded && ip.ttl <= 1 {
            return self.icmp_error(
                ip_off,
                IcmpError::TimeExceeded,
                t.local,
                DropReason::TtlExceeded,
            );
        }
        if t.kind == TunnelKind::Ipsec && ctx.esp_tunnel(id).and_then(|e| e.outbound).is_none() {
            return Err(DropReason::EspNoSa);
        }
        let mss = match source {
            Source::Tunnel(rx) => ctx.tunnel(rx).map_or(t.mss, |r| r.mss.min(t.mss)),
            _ => t.mss,
        };
        if ip.total_len > usize::from(t.mtu) {
            if ip.dont_frag && !t.clear_df && forwarded {
                let kind = IcmpError::FragmentationNeeded {
                    next_hop_mtu: t.mtu,
                };
                return self.icmp_error(ip_off, kind, t.local, DropReason::MtuExceeded);
            }
            if forwarded {
                self.rewrite(ip_off, &ip, l4, mss)?;
            }
            return self.needs_fragmentation(ip_off, ip.header_len, id, t.mtu);
        }
        if forwarded && l4.syn {
            self.clamp_mss(ip_off, ip.header_len, ip.total_len, mss)?;
        }
        encap_to(ctx, id, entry, self.pkt, ip_off, &ip, self.state, forwarded)?;
        Ok(Verdict::Forward {
            port: ctx.gateway_port(),
            tunnel: Some(id),
        })
    }

    /// No customer route: plain packets are dropped; decapsulated ones (internet egress) and
    /// generated ones go plain to the gateway.
    #[inline(always)]
    fn no_route(&mut self, ip_off: usize, ip: IpInfo, l4: L4, source: Source) -> Result<Verdict> {
        if source == Source::Plain {
            return Err(DropReason::NoRoute);
        }
        self.egress(ip_off, ip, l4, source)
    }

    /// [`Self::egress`] for a route whose next hop is the gateway. Out of line, and it reads
    /// the (already validated) IPv4 and transport headers again rather than taking the caller's
    /// `IpInfo`: an `IpInfo` passed to an out-of-line function goes through memory, which cost
    /// the encapsulation path ~20 instructions per packet (`scripts/icount.sh`).
    #[inline(never)]
    fn egress_via_route(&mut self, ip_off: usize, source: Source) -> Result<Verdict> {
        let ip = parse_ipv4(self.pkt.data().get(ip_off..).unwrap_or(&[]))?;
        let l4 = self.validate(ip_off, &ip)?;
        self.egress(ip_off, ip, l4, source)
    }

    /// Plain to the gateway (internet egress, or a route whose next hop is the gateway): TTL − 1
    /// for forwarded packets (plus the MSS clamp of the tunnel a packet came out of), then the
    /// gateway's Ethernet header in front of the IPv4 packet.
    #[inline(always)]
    fn egress(&mut self, ip_off: usize, ip: IpInfo, l4: L4, source: Source) -> Result<Verdict> {
        if martian(ip.dst) {
            return Err(DropReason::MartianDestination);
        }
        let forwarded = match source {
            Source::Tunnel(rx) => {
                let t = self.ctx.tunnel(rx).ok_or(DropReason::UnknownTunnel)?;
                Some((t.local, Some(t.mss)))
            }
            // A plain packet crossed no tunnel, so there is no MSS to clamp to; an ICMP error
            // is sourced from a local endpoint (docs/behaviour.md §6).
            Source::Plain => Some((self.ctx.icmp_source(), None)),
            Source::Local => None,
        };
        if let Some((local, mss)) = forwarded {
            if ip.ttl <= 1 {
                return self.icmp_error(
                    ip_off,
                    IcmpError::TimeExceeded,
                    local,
                    DropReason::TtlExceeded,
                );
            }
            let mut l4 = l4;
            l4.syn &= mss.is_some();
            self.rewrite(ip_off, &ip, l4, mss.unwrap_or(u16::MAX))?;
        }
        reframe(self.pkt, ip_off, ETH_LEN)?;
        let eth = self.ctx.gateway_eth();
        self.pkt
            .data_mut()
            .get_mut(..ETH_LEN)
            .ok_or(DropReason::Headroom)?
            .copy_from_slice(eth);
        Ok(Verdict::Forward {
            port: self.ctx.gateway_port(),
            tunnel: None,
        })
    }

    /// The forwarding rewrite: TTL − 1 and, on a SYN, the MSS clamp (both checksums patched
    /// incrementally).
    #[inline(always)]
    fn rewrite(&mut self, ip_off: usize, ip: &IpInfo, l4: L4, mss: u16) -> Result<()> {
        let h = self
            .pkt
            .data_mut()
            .get_mut(ip_off..)
            .and_then(Ipv4Header::from_prefix_mut)
            .ok_or(crate::wire::Error::Ipv4Truncated)?;
        decrement_ttl(h)?;
        if l4.syn {
            self.clamp_mss(ip_off, ip.header_len, ip.total_len, mss)?;
        }
        Ok(())
    }

    /// Clamps the MSS option of the TCP SYN at `ip_off` to `mss` (checksum patched).
    ///
    /// Takes the lengths rather than `&IpInfo`: a reference passed to an out-of-line function
    /// would keep the caller's `IpInfo` in memory.
    fn clamp_mss(
        &mut self,
        ip_off: usize,
        header_len: usize,
        total_len: usize,
        mss: u16,
    ) -> Result<()> {
        let segment = self
            .pkt
            .data_mut()
            .get_mut(ip_off + header_len..ip_off + total_len)
            .unwrap_or(&mut []);
        TcpPacket::new_checked(segment)?.clamp_mss_and_update_checksum(mss)?;
        Ok(())
    }

    /// The payload of the IP packet at `ip_off` with these lengths (empty if out of range).
    #[inline(always)]
    fn payload(&self, ip_off: usize, header_len: usize, total_len: usize) -> &[u8] {
        self.pkt
            .data()
            .get(ip_off + header_len..ip_off + total_len)
            .unwrap_or(&[])
    }

    /// Removes everything in front of the IP packet at `ip_off`.
    #[inline]
    fn strip(&mut self, ip_off: usize) -> Result<()> {
        reframe(self.pkt, ip_off, 0)
    }

    /// Hands the IP packet at `ip_off` out for fragmentation into `tunnel`: strips the headers in
    /// front of it after checking that its options can be fragmented.
    fn needs_fragmentation(
        &mut self,
        ip_off: usize,
        header_len: usize,
        tunnel: TunnelId,
        mtu: u16,
    ) -> Result<Verdict> {
        if header_len > ipv4::HEADER_LEN {
            check_options(self.pkt.data().get(ip_off..).unwrap_or(&[]))?;
        }
        self.strip(ip_off)?;
        Ok(Verdict::NeedsFragmentation {
            port: self.ctx.gateway_port(),
            tunnel,
            mtu,
        })
    }

    /// ICMP to one of our addresses: echo requests are answered, probe replies go to control.
    ///
    /// Out of line and re-parsing the (already validated) header rather than taking the
    /// caller's `IpInfo`, which would keep that in memory on the hot path.
    #[inline(never)]
    fn local_icmp(&mut self, ip_off: usize, local: Local, source: Source) -> Result<Verdict> {
        let ip = parse_ipv4(self.pkt.data().get(ip_off..).unwrap_or(&[]))?;
        if ip.fragment {
            return Err(DropReason::LocalUnsupported);
        }
        let (msg_type, code, ident) = {
            let icmp = IcmpPacket::new_checked(self.payload(ip_off, ip.header_len, ip.total_len))?;
            (icmp.msg_type(), icmp.msg_code(), icmp.echo_ident())
        };
        match msg_type {
            IcmpMessage::EchoRequest => self.echo_reply(ip_off, ip, source),
            IcmpMessage::EchoReply
                if code == 0
                    && ident == self.ctx.probe_ident()
                    && matches!(local, Local::Endpoint | Local::TunnelInterface(_)) =>
            {
                self.probe_reply(ip_off, ip)
            }
            _ => Err(DropReason::LocalUnsupported),
        }
    }

    /// Turns an echo request into the reply, sent back the way the request came.
    fn echo_reply(&mut self, ip_off: usize, ip: IpInfo, source: Source) -> Result<Verdict> {
        if martian(ip.src) {
            return Err(DropReason::LocalUnsupported);
        }
        let ttl = self.ctx.icmp_ttl();
        icmp::echo_reply_in_place(
            self.pkt.data_mut().get_mut(ip_off..).unwrap_or(&mut []),
            ttl,
        )?;
        match source {
            Source::Plain => {
                let mac = self
                    .ctx
                    .port_mac(self.rx_port)
                    .ok_or(DropReason::UnknownPort)?;
                let mut frame = EthernetFrame::new_checked(self.pkt.data_mut())?;
                let requester = frame.src_addr();
                frame.set_dst_addr(requester);
                frame.set_src_addr(mac);
                Ok(Verdict::Reply {
                    port: self.rx_port,
                    tunnel: None,
                })
            }
            Source::Tunnel(rx) => {
                let ctx = self.ctx;
                let entry = ctx.entry(rx).ok_or(DropReason::UnknownTunnel)?;
                if ip.total_len > usize::from(entry.tunnel.mtu) {
                    return self.needs_fragmentation(ip_off, ip.header_len, rx, entry.tunnel.mtu);
                }
                encap_to(ctx, rx, entry, self.pkt, ip_off, &ip, self.state, false)?;
                Ok(Verdict::Reply {
                    port: ctx.gateway_port(),
                    tunnel: Some(rx),
                })
            }
            Source::Local => Err(DropReason::LocalUnsupported),
        }
    }

    /// An echo reply with our probe identifier: checks the checksum and the payload's magic and
    /// tunnel id, then hands it to control starting at its IPv4 header.
    fn probe_reply(&mut self, ip_off: usize, ip: IpInfo) -> Result<Verdict> {
        let tunnel = {
            let icmp = IcmpPacket::new_checked(self.payload(ip_off, ip.header_len, ip.total_len))?;
            icmp.check_checksum()?;
            let data = icmp.data();
            let (Some(magic), Some(&[a, b, c, d])) = (data.get(..4), data.get(4..8)) else {
                return Err(DropReason::LocalUnsupported);
            };
            let id = TunnelId(u32::from_be_bytes([a, b, c, d]));
            if magic != PROBE_MAGIC || self.ctx.tunnel(id).is_none() {
                return Err(DropReason::LocalUnsupported);
            }
            id
        };
        self.strip(ip_off)?;
        Ok(Verdict::ToControl(Control::Probe(tunnel)))
    }

    /// Replaces the packet at `ip_off` by the ICMP error `kind` about it (from `src`), if the
    /// policy, RFC 1122 and the token bucket allow, and routes the error; otherwise drops the
    /// packet for `reason`.
    #[cold]
    #[inline(never)]
    fn icmp_error(
        &mut self,
        ip_off: usize,
        kind: IcmpError,
        src: Ipv4Addr,
        reason: DropReason,
    ) -> Result<Verdict> {
        if kind == IcmpError::TimeExceeded && !self.ctx.icmp_ttl_exceeded() {
            return Err(reason);
        }
        let mut scratch = [0u8; icmp::MAX_ERROR_LEN];
        let original = self.pkt.data().get(ip_off..).unwrap_or(&[]);
        let n = icmp::emit_error(kind, original, src, self.ctx.icmp_ttl(), &mut scratch)
            .map_err(|_| reason)?;
        if !self.state.icmp.try_take(self.now) {
            return Err(reason);
        }
        let error = scratch.get(..n).ok_or(reason)?;
        let have = self.pkt.len().saturating_sub(ip_off);
        if n > have {
            reframe(self.pkt, 0, n - have)?;
        } else {
            trim_to(self.pkt, ip_off + n)?;
        }
        self.pkt
            .data_mut()
            .get_mut(ip_off..ip_off + n)
            .ok_or(reason)?
            .copy_from_slice(error);
        let info = parse_ipv4(error)?;
        match self.route_generated(ip_off, info) {
            Ok(Verdict::Forward { port, tunnel }) => Ok(Verdict::IcmpError {
                reason,
                port,
                tunnel,
            }),
            _ => Err(reason),
        }
    }

    /// [`Self::route`] for a generated packet: out of line, which also ends the inlining
    /// recursion `route` → `icmp_error` → `route`.
    #[inline(never)]
    fn route_generated(&mut self, ip_off: usize, ip: IpInfo) -> Result<Verdict> {
        self.route(ip_off, ip, Source::Local)
    }

    /// ARP: requests for a local endpoint or an address of the rx port are answered in place;
    /// replies to an address of the rx port go to control (gateway resolution).
    fn arp(&mut self, mac: EthernetAddress) -> Result<Verdict> {
        let (op, sha, spa, tpa) = {
            let arp = ArpPacket::new_checked(self.pkt.data().get(ETH_LEN..).unwrap_or(&[]))?;
            (
                arp.operation(),
                arp.source_hardware_addr(),
                arp.source_protocol_addr(),
                arp.target_protocol_addr(),
            )
        };
        let target = self.ctx.local(u32::from(tpa));
        let on_this_port = matches!(target, Some(Local::Port(p)) if p == self.rx_port);
        match op {
            // A request whose sender claims the target address is an announcement, not a
            // question.
            ArpOperation::Request
                if (on_this_port || target == Some(Local::Endpoint)) && spa != tpa =>
            {
                ArpPacket::new_checked(self.pkt.data_mut().get_mut(ETH_LEN..).unwrap_or(&mut []))?
                    .make_reply(mac)?;
                let mut frame = EthernetFrame::new_checked(self.pkt.data_mut())?;
                frame.set_dst_addr(sha);
                frame.set_src_addr(mac);
                Ok(Verdict::Reply {
                    port: self.rx_port,
                    tunnel: None,
                })
            }
            ArpOperation::Reply if on_this_port => Ok(Verdict::ToControl(Control::Arp)),
            _ => Err(DropReason::ArpNotForUs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, IpProtocol, Ipv4Packet, UdpPacket};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_ipv4_agrees_with_the_wire_parser(
            mut bytes in prop::collection::vec(any::<u8>(), 0..80),
            version_ihl in prop::sample::select(vec![0x45u8, 0x46, 0x44, 0x55, 0x4f]),
            total in any::<Option<u8>>(),
            fix in any::<bool>(),
        ) {
            if let Some(b) = bytes.first_mut() {
                *b = version_ihl;
            }
            if let (Some(t), true) = (total, bytes.len() >= 4) {
                bytes[2] = 0;
                bytes[3] = t;
            }
            if fix && bytes.len() >= 20 {
                let ihl = usize::from(bytes[0] & 0xf) * 4;
                if ihl >= 20 && bytes.len() >= ihl {
                    bytes[10..12].fill(0);
                    let ck = crate::wire::checksum::checksum(&bytes[..ihl]);
                    bytes[10..12].copy_from_slice(&ck.to_be_bytes());
                }
            }
            let wire = Ipv4Packet::new_checked(&bytes[..]).and_then(|p| {
                p.check_checksum()?;
                Ok(p)
            });
            match (parse_ipv4(&bytes), wire) {
                (Ok(info), Ok(p)) => {
                    prop_assert_eq!(info.header_len, p.header_len());
                    prop_assert_eq!(info.total_len, usize::from(p.total_len()));
                    prop_assert_eq!(info.src, u32::from(p.src_addr()));
                    prop_assert_eq!(info.dst, u32::from(p.dst_addr()));
                    prop_assert_eq!(IpProtocol::from(info.protocol), p.protocol());
                    prop_assert_eq!((info.ttl, info.tos), (p.ttl(), p.tos()));
                    prop_assert_eq!((info.dont_frag, info.fragment), (p.dont_frag(), p.is_fragment()));
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, DropReason::Wire(b)),
                (a, b) => prop_assert!(false, "{:?} vs {:?}", a.map(|_| ()), b.map(|_| ())),
            }
        }

        #[test]
        fn flow_key_follows_the_seed_rule(
            segment in prop::collection::vec(any::<u8>(), 0..70),
            protocol in prop::sample::select(vec![1u8, 6, 17, 47, 50, 132]),
            fragment in any::<bool>(),
            (src, dst) in any::<(u32, u32)>(),
        ) {
            let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol];
            ip.resize(20, 0);
            ip.extend_from_slice(&segment);
            let info = IpInfo {
                header_len: 20,
                total_len: ip.len(),
                src,
                dst,
                protocol,
                ttl: 64,
                tos: 0,
                dont_frag: false,
                fragment,
            };
            if let Ok(l4) = transport(&ip, &info) {
                // The ports as the bytes say, whatever the protocol: the rule decides.
                let port = |at: usize| u16::from_be_bytes([segment[at], segment[at + 1]]);
                let (sport, dport) = if segment.len() >= 4 { (port(0), port(2)) } else { (0, 0) };
                prop_assert_eq!(
                    flow_key(&info, l4).hash(),
                    crate::route::flow_hash(src, dst, protocol, fragment, sport, dport)
                );
            }
        }

        #[test]
        fn transport_agrees_with_the_wire_parsers(
            segment in prop::collection::vec(any::<u8>(), 0..70),
            protocol in prop::sample::select(vec![6u8, 17, 1]),
            // Unfragmented, a first fragment (MF, offset 0), a later one (offset 8 bytes).
            fragment in 0u8..3,
        ) {
            let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol];
            ip.resize(20, 0);
            ip[6] = if fragment == 1 { 0x20 } else { 0 };
            ip[7] = if fragment == 2 { 1 } else { 0 };
            ip.extend_from_slice(&segment);
            let info = IpInfo {
                header_len: 20,
                total_len: ip.len(),
                src: 0,
                dst: 0,
                protocol,
                ttl: 64,
                tos: 0,
                dont_frag: false,
                fragment: fragment != 0,
            };
            let got = transport(&ip, &info).map(|l| (l.src_port(), l.dst_port(), l.syn));
            let wire = |r: core::result::Result<(u16, u16, bool), wire::Error>| r.map_err(DropReason::Wire);
            let icmp = || wire(IcmpPacket::new_checked(&segment[..]).map(|_| (0, 0, false)));
            let expected = match (fragment, protocol) {
                (0, 6) => wire(TcpPacket::new_checked(&segment[..])
                    .map(|t| (t.src_port(), t.dst_port(), t.flags().syn()))),
                (0, 17) => wire(UdpPacket::new_checked(&segment[..])
                    .map(|u| (u.src_port(), u.dst_port(), false))),
                (0, _) => icmp(),
                (1, _) if segment.len() % 8 != 0 => Err(DropReason::Ipv4BadFragmentLength),
                (1, 6) => wire(TcpPacket::new_checked(&segment[..]).map(|_| (0, 0, false))),
                (1, 17) if segment.len() < 8 => Err(wire::Error::UdpTruncated.into()),
                (1, 17) => {
                    let len = usize::from(u16::from_be_bytes([segment[4], segment[5]]));
                    if len < 8 || len < segment.len() {
                        Err(wire::Error::UdpBadLength.into())
                    } else {
                        Ok((0, 0, false))
                    }
                }
                (1, _) => icmp(),
                _ => Ok((0, 0, false)),
            };
            prop_assert_eq!(got, expected);
        }
    }
}
