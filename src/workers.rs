//! How the appliance and `conduit-perf` build their workers from a [`Config`]: one place for
//! every number a worker needs, so that the benchmark measures exactly the worker that ships.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use conduit_packet::esp::runtime::EspRuntime;
use conduit_packet::esp::sa::MAX_INBOUND;
use conduit_packet::pipeline::Context;
use conduit_packet::publish::Reader;
use control::config::{Config, TunnelKind};
use dataplane::crypto::{DpdkCipherFactory, EspCipherFactories};
use dataplane::eal::Eal;
use dataplane::mempool::Mempool;
use dataplane::worker::pipeline::{data_room_for_mtu, PipelineWorker, WorkerConfig, WorkerQueues};
use dataplane::worker::Workers;

/// Tunnel ids the workers' per-tunnel counters cover at least: room for reloads that add
/// tunnels.
pub const TUNNEL_COUNTER_CAPACITY: usize = 1024;

/// Tunnel ids the workers count (and the control plane accepts) for `cfg`.
pub fn tunnel_capacity(cfg: &Config) -> usize {
    cfg.tunnels.len().max(TUNNEL_COUNTER_CAPACITY)
}

/// The settings every pipeline worker takes from `cfg`, on a TSC of `tsc_hz`.
pub fn worker_config(cfg: &Config, tsc_hz: u64) -> WorkerConfig {
    WorkerConfig {
        burst: cfg.dataplane.burst as usize,
        tsc_hz,
        icmp_rate_per_sec: cfg.icmp.rate_per_sec,
        icmp_burst: cfg.icmp.burst,
        reassembly_max_sets: cfg.reassembly.max_sets as usize,
        reassembly_timeout_ms: cfg.reassembly.timeout_ms,
    }
}

/// SAs the cryptodev's session pool has room for, at least: reloads may add IPsec tunnels
/// beyond those of the start-up config.
pub const MIN_SA_CAPACITY: usize = 256;

/// SAs (outbound and inbound) the cryptodev's session pool is sized for with `cfg`: every IPsec
/// tunnel with its outbound and the most inbound SAs it may have, and at least
/// [`MIN_SA_CAPACITY`]. A reload beyond it gets no sessions for the SAs that do not fit (their
/// packets drop `esp_no_session`).
pub fn sa_capacity(cfg: &Config) -> usize {
    let ipsec = cfg
        .tunnels
        .iter()
        .filter(|t| t.kind == TunnelKind::Ipsec)
        .count();
    (ipsec * (1 + MAX_INBOUND)).max(MIN_SA_CAPACITY)
}

/// The cipher factories of `cfg`'s workers and control thread on the configured cryptodev
/// (`ipsec.crypto_device`, created as a vdev when EAL has no such device); `None` without an
/// `ipsec` section (no cryptodev is opened).
pub fn esp_factories(eal: &Eal, cfg: &Config) -> Result<Option<EspCipherFactories>> {
    let Some(ipsec) = &cfg.ipsec else {
        return Ok(None);
    };
    let factories = EspCipherFactories::open(
        eal,
        &ipsec.crypto_device,
        cfg.dataplane.workers.len(),
        sa_capacity(cfg),
    )
    .with_context(|| format!("opening the crypto device {}", ipsec.crypto_device))?;
    Ok(Some(factories))
}

/// Pipeline worker `index` of a dataplane: the one way the appliance and the benchmark build
/// one. `cipher` is the worker's own cipher factory (its cryptodev queue pair); without one,
/// ESP packets drop `esp_no_session`.
pub fn pipeline_worker(
    config: &WorkerConfig,
    index: usize,
    queues: WorkerQueues,
    reader: Reader<Context>,
    pool: Arc<Mempool>,
    cipher: Option<DpdkCipherFactory>,
) -> PipelineWorker {
    let w = PipelineWorker::new(config, index, queues, reader, pool);
    match cipher {
        Some(f) => w.with_esp(EspRuntime::new(index, Box::new(f))),
        None => w,
    }
}

/// Counters for `cfg`'s workers; none launched yet.
pub fn workers(cfg: &Config) -> Workers {
    Workers::new(cfg.dataplane.workers.len(), tunnel_capacity(cfg))
}

/// The packet pool `name` of `size` mbufs, with `cfg`'s per-lcore cache and buffers that hold
/// a frame of the largest port MTU.
pub fn packet_pool(name: &str, size: u32, cfg: &Config) -> Result<Mempool> {
    let room = data_room_for_mtu(cfg.largest_port_mtu());
    log::info!("packet pool: {size} mbufs of {room} bytes of packet data");
    Mempool::new(name, size, cfg.dataplane.mbuf_cache, room, -1)
        .with_context(|| format!("creating the packet pool ({size} mbufs of {room} bytes)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_config_takes_every_number_from_the_config() {
        let cfg = Config::parse(
            "dataplane:\n  ports:\n    - device: net_ring0\n  workers: [1, 2]\n  mode: io\n  burst: 64\nicmp:\n  rate_per_sec: 200\n  burst: 20\nreassembly:\n  max_sets: 256\n  timeout_ms: 500\n",
            std::path::Path::new("test.yaml"),
        )
        .unwrap();
        assert_eq!(
            worker_config(&cfg, 2_000_000_000),
            WorkerConfig {
                burst: 64,
                tsc_hz: 2_000_000_000,
                icmp_rate_per_sec: 200,
                icmp_burst: 20,
                reassembly_max_sets: 256,
                reassembly_timeout_ms: 500,
            }
        );
        assert_eq!(tunnel_capacity(&cfg), TUNNEL_COUNTER_CAPACITY);
        assert_eq!(workers(&cfg).counters().len(), 2);
    }
}
