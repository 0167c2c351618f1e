//! Ethernet ports (`rte_ethdev`): configuration, queues, burst I/O, link and statistics.
//!
//! A [`Port`] is configured with N RX and N TX queues (one pair per worker lcore) and hands out
//! each queue exactly once as an [`RxQueue`]/[`TxQueue`] handle, so two workers can never poll
//! the same queue (DPDK queues are single-threaded). RSS over IPv4/TCP/UDP is enabled where the
//! device supports it; devices without RSS (net_ring, net_null, net_pcap) get one queue pair per
//! worker all the same, and the caller decides how to spread load.

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use conduit_packet::wire::EthernetAddress;
use dpdk_sys as sys;

use crate::error::{check, DpdkError, Result};
use crate::mbuf::Burst;
use crate::mempool::Mempool;

/// Bytes a received frame carries beyond its IP MTU, as the PMDs that count most reckon it
/// (i40e, ice): the Ethernet header, two VLAN tags and the CRC.
pub const FRAME_OVERHEAD: u16 = 14 + 2 * 4 + 4;

/// A DPDK port id.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl std::fmt::Debug for PortId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "port{}", self.0)
    }
}

impl std::fmt::Display for PortId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A queue index on a port.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

impl std::fmt::Debug for QueueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "q{}", self.0)
    }
}

/// How to set up a port.
#[derive(Debug, Clone)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Spread received packets over the RX queues by an IPv4/TCP/UDP hash, where supported.
    pub rss: bool,
    /// MTU to set; `None` keeps the device's.
    pub mtu: Option<u16>,
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: true,
            mtu: None,
            promiscuous: true,
        }
    }
}

/// What a device can do (from `rte_eth_dev_info_get`).
#[derive(Debug, Clone)]
pub struct PortInfo {
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub min_mtu: u16,
    pub max_mtu: u16,
    pub rx_offload_capa: u64,
    pub tx_offload_capa: u64,
    pub rss_offloads: u64,
}

impl PortInfo {
    /// Whether the NIC computes outer IPv4 header checksums on transmit.
    pub fn tx_ipv4_checksum(&self) -> bool {
        self.tx_offload_capa & sys::CONDUIT_ETH_TX_OFFLOAD_IPV4_CKSUM != 0
    }
}

/// How [`Port::set_mac`] got a MAC address into the device.
#[derive(Debug)]
pub enum MacProgrammed {
    /// It is the device's default address now (`rte_eth_dev_default_mac_addr_set`).
    Default,
    /// The device keeps its default but also receives for it (`rte_eth_dev_mac_addr_add`).
    Added,
    /// The device refused both (net_pcap's address is fixed, for one): the error of the
    /// first attempt.
    Refused(DpdkError),
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// Counters the device keeps (`rte_eth_stats_get`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Dropped by the NIC because no RX descriptor was free.
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
    /// Per-queue packets, for the first `RTE_ETHDEV_QUEUE_STAT_CNTRS` queues.
    pub q_ipackets: Vec<u64>,
    pub q_opackets: Vec<u64>,
}

/// A configured port. The device is stopped and closed (which flushes pcap output) when the
/// `Port` and every queue handle taken from it are gone, so no queue can outlive its device.
#[derive(Debug)]
pub struct Port {
    id: PortId,
    info: PortInfo,
    rx_taken: Vec<bool>,
    tx_taken: Vec<bool>,
    device: Arc<Device>,
}

/// The open device, shared by the `Port` and its queue handles; the last one closes it.
#[derive(Debug)]
struct Device {
    id: PortId,
    name: String,
    started: AtomicBool,
}

impl Device {
    fn stop(&self) -> Result<()> {
        if self.started.swap(false, Ordering::SeqCst) {
            // SAFETY: the port was started; stopping swaps its fast-path ops for dummies, so a
            // late poll returns nothing instead of touching freed queues.
            check("rte_eth_dev_stop", unsafe {
                sys::rte_eth_dev_stop(self.id.0)
            })?;
        }
        Ok(())
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            log::warn!("{}: {e}", self.name);
        }
        // SAFETY: the port is stopped and no queue handle is left (they hold this Arc).
        let ret = unsafe { sys::rte_eth_dev_close(self.id.0) };
        if ret < 0 {
            log::warn!(
                "{}: rte_eth_dev_close: {}",
                self.name,
                crate::error::strerror(-ret)
            );
        }
    }
}

/// Names of all ports EAL probed, for error messages.
pub fn available_port_names() -> Vec<String> {
    let mut out = Vec::new();
    for id in 0..sys::RTE_MAX_ETHPORTS as u16 {
        // SAFETY: any id may be asked about; EAL is initialised by the caller's contract
        // (ports exist only after Eal::init).
        if unsafe { sys::rte_eth_dev_is_valid_port(id) } != 0 {
            out.push(port_name(PortId(id)).unwrap_or_else(|| format!("port{id}")));
        }
    }
    out
}

fn port_name(id: PortId) -> Option<String> {
    let mut buf = [0 as std::ffi::c_char; 64];
    // SAFETY: buf is 64 bytes (RTE_ETH_NAME_MAX_LEN), DPDK writes a NUL-terminated name.
    let ret = unsafe { sys::rte_eth_dev_get_name_by_port(id.0, buf.as_mut_ptr()) };
    if ret != 0 {
        return None;
    }
    // SAFETY: DPDK wrote a NUL-terminated string into buf.
    Some(
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Finds a probed port by device name (vdev name such as `net_ring0`, or a PCI address).
pub fn find_port(name: &str) -> Result<PortId> {
    let cname = CString::new(name)
        .map_err(|_| DpdkError::InvalidArgument(format!("port name {name:?} has a NUL")))?;
    let mut id: u16 = 0;
    // SAFETY: cname is a valid C string; id is a valid out-pointer.
    let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
    if ret != 0 {
        let avail = available_port_names();
        return Err(DpdkError::PortNotFound {
            name: name.to_string(),
            available: if avail.is_empty() {
                "none".to_string()
            } else {
                avail.join(", ")
            },
        });
    }
    Ok(PortId(id))
}

fn dev_info(id: PortId) -> Result<PortInfo> {
    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: info is a valid out-struct; the port id is checked by DPDK.
    check("rte_eth_dev_info_get", unsafe {
        sys::rte_eth_dev_info_get(id.0, &mut info)
    })?;
    let driver = if info.driver_name.is_null() {
        String::new()
    } else {
        // SAFETY: driver_name points to the driver's static NUL-terminated name.
        unsafe { CStr::from_ptr(info.driver_name) }
            .to_string_lossy()
            .into_owned()
    };
    Ok(PortInfo {
        driver,
        max_rx_queues: info.max_rx_queues,
        max_tx_queues: info.max_tx_queues,
        min_mtu: info.min_mtu,
        max_mtu: info.max_mtu,
        rx_offload_capa: info.rx_offload_capa,
        tx_offload_capa: info.tx_offload_capa,
        rss_offloads: info.flow_type_rss_offloads,
    })
}

/// The IPv4 hash types Conduit asks for.
const RSS_HF: u64 = sys::CONDUIT_ETH_RSS_IPV4
    | sys::CONDUIT_ETH_RSS_FRAG_IPV4
    | sys::CONDUIT_ETH_RSS_NONFRAG_IPV4_TCP
    | sys::CONDUIT_ETH_RSS_NONFRAG_IPV4_UDP
    | sys::CONDUIT_ETH_RSS_NONFRAG_IPV4_OTHER;

impl Port {
    /// Configures port `id` with `cfg`, receiving into `pool`. The port is not started.
    pub fn configure(id: PortId, name: &str, cfg: &PortConfig, pool: &Mempool) -> Result<Port> {
        let info = dev_info(id)?;
        if cfg.rx_queues == 0 || cfg.tx_queues == 0 {
            return Err(DpdkError::InvalidArgument(format!("{name}: zero queues")));
        }
        if cfg.rx_queues > info.max_rx_queues || cfg.tx_queues > info.max_tx_queues {
            return Err(DpdkError::InvalidArgument(format!(
                "{name} ({}) supports at most {} RX / {} TX queues, {} / {} requested",
                info.driver, info.max_rx_queues, info.max_tx_queues, cfg.rx_queues, cfg.tx_queues
            )));
        }
        let mut conf = sys::rte_eth_conf::default();
        let rss_hf = RSS_HF & info.rss_offloads;
        if cfg.rss && rss_hf != 0 {
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        } else if cfg.rss && cfg.rx_queues > 1 {
            log::warn!(
                "{name} ({}): no IPv4 RSS support; {} RX queues get no hash-based spread",
                info.driver,
                cfg.rx_queues
            );
        }
        let mtu = cfg
            .mtu
            .filter(|&mtu| request_mtu(&mut conf, mtu, name, &info, pool));
        if info.tx_offload_capa & sys::CONDUIT_ETH_TX_OFFLOAD_MBUF_FAST_FREE != 0 {
            // All mbufs come from one pool per socket and are never shared (refcnt 1).
            conf.txmode.offloads |= sys::CONDUIT_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
        }
        // SAFETY: conf is a fully initialised rte_eth_conf; DPDK validates the queue counts.
        check("rte_eth_dev_configure", unsafe {
            sys::rte_eth_dev_configure(id.0, cfg.rx_queues, cfg.tx_queues, &conf)
        })?;
        let (mut nrx, mut ntx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid out-pointers; DPDK clamps them to the device limits.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            sys::rte_eth_dev_adjust_nb_rx_tx_desc(id.0, &mut nrx, &mut ntx)
        })?;
        // SAFETY: port id is valid (dev_info succeeded).
        let socket = unsafe { sys::rte_eth_dev_socket_id(id.0) };
        let socket = if socket < 0 {
            sys::SOCKET_ID_ANY
        } else {
            socket
        };
        for q in 0..cfg.rx_queues {
            // SAFETY: NULL rx_conf selects the device defaults; the pool outlives the port
            // (the caller keeps it alive until the port is dropped).
            check("rte_eth_rx_queue_setup", unsafe {
                sys::rte_eth_rx_queue_setup(
                    id.0,
                    q,
                    nrx,
                    socket as u32,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            })?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: NULL tx_conf selects the device defaults plus the port-level offloads.
            check("rte_eth_tx_queue_setup", unsafe {
                sys::rte_eth_tx_queue_setup(id.0, q, ntx, socket as u32, std::ptr::null())
            })?;
        }
        if let Some(mtu) = mtu {
            apply_mtu(id, mtu, name, &info)?;
        }
        if cfg.promiscuous {
            // SAFETY: port configured. Devices without the capability return ENOTSUP: fine.
            unsafe { sys::rte_eth_promiscuous_enable(id.0) };
        }
        Ok(Port {
            id,
            info,
            rx_taken: vec![false; cfg.rx_queues as usize],
            tx_taken: vec![false; cfg.tx_queues as usize],
            device: Arc::new(Device {
                id,
                name: name.to_string(),
                started: AtomicBool::new(false),
            }),
        })
    }

    pub fn id(&self) -> PortId {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.device.name
    }

    pub fn info(&self) -> &PortInfo {
        &self.info
    }

    /// Starts the device.
    pub fn start(&mut self) -> Result<()> {
        // SAFETY: port configured with all its queues set up.
        check("rte_eth_dev_start", unsafe {
            sys::rte_eth_dev_start(self.id.0)
        })?;
        self.device.started.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Stops the device (idempotent); pcap output is flushed. Stop the workers polling it
    /// first: a poll after this returns nothing.
    pub fn stop(&mut self) -> Result<()> {
        self.device.stop()
    }

    /// Takes the handle of RX queue `q`, once.
    pub fn take_rx_queue(&mut self, q: u16) -> Option<RxQueue> {
        let slot = self.rx_taken.get_mut(q as usize)?;
        if std::mem::replace(slot, true) {
            return None;
        }
        Some(RxQueue {
            port: self.id,
            queue: QueueId(q),
            _device: Arc::clone(&self.device),
        })
    }

    /// Takes the handle of TX queue `q`, once.
    pub fn take_tx_queue(&mut self, q: u16) -> Option<TxQueue> {
        let slot = self.tx_taken.get_mut(q as usize)?;
        if std::mem::replace(slot, true) {
            return None;
        }
        Some(TxQueue {
            port: self.id,
            queue: QueueId(q),
            _device: Arc::clone(&self.device),
        })
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<EthernetAddress> {
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid out-struct.
        check("rte_eth_macaddr_get", unsafe {
            sys::rte_eth_macaddr_get(self.id.0, &mut addr)
        })?;
        Ok(EthernetAddress(addr.addr_bytes))
    }

    /// Programs `mac` into the device: as its default address where the driver allows it,
    /// else as an extra receive address. Never fails: a device that refuses both is reported
    /// as [`MacProgrammed::Refused`] and the caller decides (docs/behaviour.md §8).
    pub fn set_mac(&mut self, mac: EthernetAddress) -> MacProgrammed {
        let mut addr = sys::rte_ether_addr { addr_bytes: mac.0 };
        // SAFETY: port configured; DPDK copies the address out of the valid struct.
        let ret = unsafe { sys::rte_eth_dev_default_mac_addr_set(self.id.0, &mut addr) };
        if ret == 0 {
            return MacProgrammed::Default;
        }
        // SAFETY: as above; pool 0 is the default pool of every device.
        if unsafe { sys::rte_eth_dev_mac_addr_add(self.id.0, &mut addr, 0) } == 0 {
            return MacProgrammed::Added;
        }
        MacProgrammed::Refused(DpdkError::from_ret("rte_eth_dev_default_mac_addr_set", ret))
    }

    /// Turns promiscuous mode on (devices without it return ENOTSUP: ignored, they receive
    /// everything anyway or nothing can be done).
    pub fn set_promiscuous(&mut self) {
        // SAFETY: port configured.
        unsafe { sys::rte_eth_promiscuous_enable(self.id.0) };
    }

    /// Link status without waiting for autonegotiation.
    pub fn link(&self) -> Result<LinkStatus> {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid out-struct.
        check("rte_eth_link_get_nowait", unsafe {
            sys::rte_eth_link_get_nowait(self.id.0, &mut link)
        })?;
        Ok(LinkStatus {
            up: link.link_status() as u32 == sys::RTE_ETH_LINK_UP,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() as u32 == sys::RTE_ETH_LINK_FULL_DUPLEX,
        })
    }

    /// The device's counters.
    pub fn stats(&self) -> Result<PortStats> {
        port_stats(self.id, self.rx_taken.len(), self.tx_taken.len())
    }

    /// Zeroes the device's counters.
    pub fn reset_stats(&self) -> Result<()> {
        // SAFETY: valid port.
        check("rte_eth_stats_reset", unsafe {
            sys::rte_eth_stats_reset(self.id.0)
        })?;
        Ok(())
    }
}

fn port_stats(id: PortId, nrxq: usize, ntxq: usize) -> Result<PortStats> {
    let mut s = sys::rte_eth_stats::default();
    // SAFETY: valid out-struct.
    check("rte_eth_stats_get", unsafe {
        sys::rte_eth_stats_get(id.0, &mut s)
    })?;
    let nq = sys::RTE_ETHDEV_QUEUE_STAT_CNTRS as usize;
    Ok(PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
        q_ipackets: s.q_ipackets[..nrxq.min(nq)].to_vec(),
        q_opackets: s.q_opackets[..ntxq.min(nq)].to_vec(),
    })
}

/// Asks for `mtu` in the device configuration (`rte_eth_dev_configure` records it for every PMD)
/// when the device's range allows it, and says whether it did; otherwise warns and keeps the
/// device's MTU. Also warns when one mbuf of `pool` cannot hold such a frame: it would then arrive
/// chained and be dropped as too long.
fn request_mtu(
    conf: &mut sys::rte_eth_conf,
    mtu: u16,
    name: &str,
    info: &PortInfo,
    pool: &Mempool,
) -> bool {
    let frame = u32::from(mtu) + u32::from(FRAME_OVERHEAD);
    if frame > u32::from(pool.data_room()) {
        log::warn!(
            "{name}: a {frame}-byte frame (MTU {mtu}) does not fit one {}-byte packet buffer",
            pool.data_room()
        );
    }
    if !(info.min_mtu..=info.max_mtu).contains(&mtu) {
        log::warn!(
            "{name} ({}): MTU {mtu} is outside the device's {}..={}; keeping the device's MTU",
            info.driver,
            info.min_mtu,
            info.max_mtu
        );
        return false;
    }
    conf.rxmode.mtu = u32::from(mtu);
    true
}

/// Sets the MTU on the configured device too: PMDs that program the NIC at start read the
/// configured value, but some (net_tap sets the kernel interface's) act only on this call. A PMD
/// without the operation keeps what configure recorded.
fn apply_mtu(id: PortId, mtu: u16, name: &str, info: &PortInfo) -> Result<()> {
    // SAFETY: port configured.
    let ret = unsafe { sys::rte_eth_dev_set_mtu(id.0, mtu) };
    if ret == -ENOTSUP {
        log::info!(
            "{name} ({}): no MTU operation; MTU {mtu} recorded at configure",
            info.driver
        );
        return Ok(());
    }
    check("rte_eth_dev_set_mtu", ret)?;
    Ok(())
}

/// ENOTSUP on Linux: what ethdev returns for an operation the PMD lacks.
const ENOTSUP: i32 = 95;

/// The right to poll one RX queue. Not `Clone`: one owner at a time.
#[derive(Debug)]
pub struct RxQueue {
    port: PortId,
    queue: QueueId,
    _device: Arc<Device>,
}

/// The right to transmit on one TX queue. Not `Clone`: one owner at a time.
#[derive(Debug)]
pub struct TxQueue {
    port: PortId,
    queue: QueueId,
    _device: Arc<Device>,
}

impl RxQueue {
    pub fn port(&self) -> PortId {
        self.port
    }

    pub fn queue(&self) -> QueueId {
        self.queue
    }

    /// Receives up to `max` packets (bounded by the burst's free space) at the end of `burst`.
    /// Returns how many arrived.
    #[inline]
    pub fn rx_burst(&mut self, burst: &mut Burst, max: usize) -> usize {
        let (dst, spare) = burst.spare_ptr();
        let want = max.min(spare).min(u16::MAX as usize) as u16;
        // SAFETY: dst has room for `want` pointers; this handle is the queue's only poller.
        let n = unsafe { sys::rte_eth_rx_burst(self.port.0, self.queue.0, dst, want) } as usize;
        // SAFETY: the PMD wrote n valid mbufs, which we now own.
        unsafe { burst.grow(n) };
        n
    }
}

impl TxQueue {
    pub fn port(&self) -> PortId {
        self.port
    }

    pub fn queue(&self) -> QueueId {
        self.queue
    }

    /// Offers the whole burst to the device. The accepted prefix leaves the burst (the device
    /// owns and frees it); what the device refused stays in `burst`, moved to the front, for
    /// the caller to retry or drop. Returns how many were accepted.
    #[inline]
    pub fn tx_burst(&mut self, burst: &mut Burst) -> usize {
        let len = burst.len().min(u16::MAX as usize) as u16;
        if len == 0 {
            return 0;
        }
        // SAFETY: the first len pointers are owned valid mbufs; the PMD takes ownership of
        // exactly the first n it returns; this handle is the queue's only user.
        let n = unsafe { sys::rte_eth_tx_burst(self.port.0, self.queue.0, burst.as_mut_ptr(), len) }
            as usize;
        burst.release_front(n);
        n
    }
}
