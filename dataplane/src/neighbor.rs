//! Gateway MAC resolution at start-up: ARP requests out of the gateway port until the gateway
//! answers.
//!
//! It runs on the main lcore before the workers are launched, borrowing a worker's queue pair
//! on the gateway port, so it needs no queue of its own. Frames that arrive meanwhile and are
//! not the awaited reply are freed (and counted in the return value): the dataplane is not
//! forwarding yet. A configured static MAC skips this entirely.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::mbuf::Burst;
use crate::mempool::Mempool;
use crate::port::{RxQueue, TxQueue};
use conduit_packet::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
};

/// Result of a resolution attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    pub mac: Option<EthernetAddress>,
    pub requests_sent: u32,
    pub frames_discarded: u64,
}

/// Builds the Ethernet + ARP request for `target` from `(our_mac, our_ip)`.
pub fn arp_request(our_mac: EthernetAddress, our_ip: Ipv4Addr, target: Ipv4Addr) -> [u8; 42] {
    let mut frame = [0u8; 42];
    let eth = EthernetRepr {
        src_addr: our_mac,
        dst_addr: EthernetAddress::BROADCAST,
        vlan_tci: None,
        ethertype: EtherType::Arp,
    };
    let arp = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: our_mac,
        source_protocol_addr: our_ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    // Both fit by construction (14 + 28 bytes); a failure would leave zeros, never panic.
    if let Ok(n) = eth.emit(&mut frame) {
        let _ = arp.emit(&mut frame[n..]);
    }
    frame
}

/// The sender MAC if `frame` is an ARP reply (or request) from `target` to `our_ip`.
pub fn arp_answer(frame: &[u8], our_ip: Ipv4Addr, target: Ipv4Addr) -> Option<EthernetAddress> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Arp {
        return None;
    }
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?);
    // A request from the gateway for us tells its MAC just as well as a reply.
    (arp.source_protocol_addr == target
        && arp.target_protocol_addr == our_ip
        && arp.source_hardware_addr.is_unicast())
    .then_some(arp.source_hardware_addr)
}

/// What to resolve, from where, and how patiently.
#[derive(Debug, Clone, Copy)]
pub struct ArpQuery {
    pub our_mac: EthernetAddress,
    pub our_ip: Ipv4Addr,
    pub target: Ipv4Addr,
    /// Time between requests.
    pub interval: Duration,
    /// Give up after this long.
    pub timeout: Duration,
}

/// Sends an ARP request every `query.interval` until the target answers or the timeout passes.
/// `rx` holds every receive queue of the port: the answer is not IP, so RSS (or the kernel's
/// fanout under net_af_packet) may steer it to any of them.
pub fn resolve(
    rx: &mut [&mut RxQueue],
    tx: &mut TxQueue,
    pool: &Mempool,
    query: ArpQuery,
) -> Resolution {
    let ArpQuery {
        our_mac,
        our_ip,
        target,
        interval,
        timeout,
    } = query;
    let request = arp_request(our_mac, our_ip, target);
    let start = Instant::now();
    let mut last_sent: Option<Instant> = None;
    let mut res = Resolution {
        mac: None,
        requests_sent: 0,
        frames_discarded: 0,
    };
    let mut burst = Burst::new();
    while start.elapsed() < timeout {
        if last_sent.is_none_or(|t| t.elapsed() >= interval) {
            if let Some(mut m) = pool.alloc() {
                if m.set_data(&request) && burst.push(m).is_ok() {
                    tx.tx_burst(&mut burst);
                    res.requests_sent += 1;
                }
                burst.clear();
            }
            last_sent = Some(Instant::now());
        }
        // One frame per poll: whatever follows the answer stays queued for the workers.
        if !rx.iter_mut().any(|q| q.rx_burst(&mut burst, 1) > 0) {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        for m in burst.drain() {
            match arp_answer(m.data(), our_ip, target) {
                Some(mac) if res.mac.is_none() => res.mac = Some(mac),
                _ => res.frames_discarded += 1,
            }
        }
        if res.mac.is_some() {
            break;
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_answer_round_trip() {
        let ours = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let gw = EthernetAddress([2, 0, 0, 0, 0, 0xfe]);
        let our_ip = Ipv4Addr::new(192, 0, 2, 10);
        let gw_ip = Ipv4Addr::new(192, 0, 2, 1);
        let req = arp_request(ours, our_ip, gw_ip);
        assert_eq!(&req[..6], &[0xff; 6]);
        assert_eq!(&req[12..14], &[0x08, 0x06]);
        // The request is not an answer to itself (its sender is us).
        assert_eq!(arp_answer(&req, our_ip, gw_ip), None);
        // The gateway's reply, built with the wire layer's own reply logic.
        let eth = EthernetFrame::new_checked(&req[..]).unwrap();
        let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap());
        let reply = arp.reply(gw).unwrap();
        let mut frame = [0u8; 42];
        let n = EthernetRepr {
            src_addr: gw,
            dst_addr: ours,
            vlan_tci: None,
            ethertype: EtherType::Arp,
        }
        .emit(&mut frame)
        .unwrap();
        reply.emit(&mut frame[n..]).unwrap();
        assert_eq!(arp_answer(&frame, our_ip, gw_ip), Some(gw));
        // From someone else, or for someone else: not the answer.
        assert_eq!(
            arp_answer(&frame, our_ip, Ipv4Addr::new(192, 0, 2, 2)),
            None
        );
        assert_eq!(
            arp_answer(&frame, Ipv4Addr::new(192, 0, 2, 11), gw_ip),
            None
        );
        assert_eq!(arp_answer(&frame[..30], our_ip, gw_ip), None);
    }
}
