//! IPsec from the control side: the SAs the packet path gets
//! ([`conduit_packet::esp::sa::IpsecConfig`], built by [`SaRegistry`]) and the boot epoch that
//! makes this start's IVs differ from every earlier start's ([`next_boot_epoch`]).
//!
//! # SA identity across reloads
//!
//! Workers keep a cipher session (and, inbound, a replay window) per SA and recognise an SA by
//! its `Arc<SaShared>`; the outbound sequence number lives in it too. The registry therefore
//! hands out the same `Arc` again for an SA that a reload leaves unchanged:
//!
//! - an **inbound** SA is the same when its tunnel (by name), SPI, key and replay window are
//!   (a new window must reach the workers, which rebuild a slot only for a new `Arc`);
//! - an **outbound** SA is the same whenever its key is, and the registry never forgets an
//!   outbound key while the process runs. The IV is instance ‖ boot epoch ‖ sequence number,
//!   so an outbound key that started again from sequence number 1 in the same boot (moved to
//!   another tunnel or SPI, or removed and put back by two reloads) would repeat nonces. Kept,
//!   it continues where it stopped.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use conduit_packet::esp::iv::IvPrefix;
use conduit_packet::esp::sa::{InboundSa, IpsecConfig, OutboundSa, SaKey, SaShared, TunnelSas};
use conduit_packet::pipeline::TunnelKind;
use conduit_packet::route::TunnelId;

use crate::config::Config;

/// Hands out the shared state of SAs so that it survives reloads (see the module docs). A clone
/// shares the SAs handed out so far (build on a clone to try a config that may be refused).
#[derive(Clone)]
pub struct SaRegistry {
    writers: usize,
    /// Every outbound key seen since start, by its bytes.
    outbound: HashMap<KeyBytes, Arc<SaShared>>,
    /// The inbound SAs of the last build.
    inbound: HashMap<InboundId, Arc<SaShared>>,
}

type KeyBytes = [u8; 36];

#[derive(Clone, PartialEq, Eq, Hash)]
struct InboundId {
    tunnel: String,
    spi: u32,
    key: KeyBytes,
    replay_window: u32,
}

fn key_bytes(k: &SaKey) -> KeyBytes {
    let mut b = [0u8; 36];
    b[..32].copy_from_slice(&k.key);
    b[32..].copy_from_slice(&k.salt);
    b
}

impl std::fmt::Debug for SaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaRegistry")
            .field("writers", &self.writers)
            .field("outbound", &self.outbound.len())
            .field("inbound", &self.inbound.len())
            .finish()
    }
}

impl SaRegistry {
    /// A registry for `workers` worker threads: SA counters get `workers + 1` writer slots,
    /// index `workers` being the control thread (it sends health probes through the tunnels).
    pub fn new(workers: usize) -> Self {
        SaRegistry {
            writers: workers + 1,
            outbound: HashMap::new(),
            inbound: HashMap::new(),
        }
    }

    /// The writer index of the control thread.
    pub fn control_writer(&self) -> usize {
        self.writers - 1
    }

    /// The packet path's IPsec configuration for `config` (a validated one): every IPsec
    /// tunnel, by its id (its position in `tunnels`), with its SAs. `boot_epoch` is this
    /// start's [`next_boot_epoch`]; `None` (no persisted epoch) leaves every IPsec tunnel
    /// without SAs, so nothing is sent or accepted rather than risk a repeated IV.
    ///
    /// Inbound SAs that `config` no longer has are forgotten; outbound ones never are.
    pub fn build(&mut self, config: &Config, boot_epoch: Option<u16>) -> IpsecConfig {
        let instance_id = config
            .ipsec
            .as_ref()
            .and_then(|s| s.instance_id)
            .unwrap_or(0);
        let iv_prefix = IvPrefix {
            instance_id,
            epoch: boot_epoch.unwrap_or(0),
        };
        let writers = self.writers;
        let mut inbound_now = HashMap::new();
        let mut tunnels = Vec::new();
        for (i, t) in config.tunnels.iter().enumerate() {
            if t.kind != TunnelKind::Ipsec {
                continue;
            }
            let id = TunnelId(i as u32);
            let (Some(sas), Some(_)) = (&t.ipsec, boot_epoch) else {
                tunnels.push((id, TunnelSas::default()));
                continue;
            };
            let outbound = sas.outbound.as_ref().and_then(|o| {
                let key = config.sa_key(o)?.clone();
                let shared = self
                    .outbound
                    .entry(key_bytes(&key))
                    .or_insert_with(|| SaShared::new(writers))
                    .clone();
                Some(OutboundSa {
                    spi: o.spi,
                    key,
                    shared,
                })
            });
            let inbound = sas
                .inbound
                .iter()
                .filter_map(|s| {
                    let key = config.sa_key(s)?.clone();
                    let id = InboundId {
                        tunnel: t.name.clone(),
                        spi: s.spi,
                        key: key_bytes(&key),
                        replay_window: sas.replay_window,
                    };
                    let shared = self
                        .inbound
                        .remove(&id)
                        .unwrap_or_else(|| SaShared::new(writers));
                    inbound_now.insert(id, shared.clone());
                    Some(InboundSa {
                        spi: s.spi,
                        key,
                        replay_window: sas.replay_window,
                        shared,
                    })
                })
                .collect();
            tunnels.push((
                id,
                TunnelSas {
                    outbound,
                    inbound,
                    nat_t: sas.nat_t,
                },
            ));
        }
        self.inbound = inbound_now;
        IpsecConfig { iv_prefix, tunnels }
    }
}

/// The file in `state_dir` that holds the boot epoch.
pub const BOOT_EPOCH_FILE: &str = "boot-epoch";

/// Why the boot epoch could not be advanced. The appliance must not send ESP without one.
#[derive(Debug, thiserror::Error)]
pub enum BootEpochError {
    #[error("{path}: cannot read the boot epoch: {error}")]
    Read { path: PathBuf, error: io::Error },
    #[error("{path}: {content:?} is not a boot epoch (a number 0..=65535); repair or remove it only after rekeying every IPsec tunnel")]
    Corrupt { path: PathBuf, content: String },
    #[error("{path}: cannot persist the boot epoch ({error}); without it IVs of this start could repeat those of an earlier one")]
    Write { path: PathBuf, error: io::Error },
}

/// Advances the boot epoch kept in `state_dir/boot-epoch` and returns the new value: reads it
/// (a missing file counts as 0), adds 1 (65535 wraps to 0, with a warning: every key must have
/// been replaced by then), and writes it back atomically (a temporary file, fsync, rename,
/// fsync of the directory) before returning, so that no two starts can use one epoch. Call it
/// once per start, before the dataplane sends anything, when the config has IPsec tunnels.
pub fn next_boot_epoch(state_dir: &Path) -> Result<u16, BootEpochError> {
    let path = state_dir.join(BOOT_EPOCH_FILE);
    let previous = match fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u16>()
            .map_err(|_| BootEpochError::Corrupt {
                path: path.clone(),
                content: text.chars().take(32).collect(),
            })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(error) => return Err(BootEpochError::Read { path, error }),
    };
    let (epoch, wrapped) = previous.overflowing_add(1);
    if wrapped {
        log::warn!(
            "{}: the boot epoch wrapped to 0: IVs repeat those of 65536 starts ago unless every IPsec key was replaced since",
            path.display()
        );
    }
    write_atomically(state_dir, &path, format!("{epoch}\n").as_bytes())
        .map_err(|error| BootEpochError::Write { path, error })?;
    Ok(epoch)
}

fn write_atomically(dir: &Path, path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{BOOT_EPOCH_FILE}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    // The rename is durable only once the directory is.
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
