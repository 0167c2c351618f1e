//! One worker's ESP state for the SAs of the current [`Context`]: a cipher session per SA (made
//! by the worker's [`CipherFactory`]), the anti-replay window of each inbound SA, and the
//! writer index under which the worker counts into the SAs' shared counters.
//!
//! The context lists every SA in a flat slot list; the runtime holds one entry per slot, in the
//! same order, so the packet path reaches an SA's session by the slot index the context's lookup
//! returned. [`EspRuntime::sync`] realigns the runtime after a table swap: O(1) when the context's
//! SAs did not change (same [`Context::ipsec_generation`]); otherwise it rebuilds the entries,
//! keeping the session and window of every SA whose [`SaShared`] is the same object (the SA
//! survived the reload), and asking the factory for the others. That is the only place sessions
//! are made and memory allocated: never per packet.

use std::fmt;
use std::sync::Arc;

use super::cipher::{Cipher, CipherFactory};
use super::replay::ReplayWindow;
use super::sa::{SaDirection, SaKey, SaShared, SALT_LEN};
use crate::pipeline::Context;

/// One SA as the worker holds it.
pub(crate) struct SaRuntime {
    pub shared: Arc<SaShared>,
    pub direction: SaDirection,
    pub salt: [u8; SALT_LEN],
    /// `None` when the factory could not make a session (or there is no factory): packets on
    /// this SA drop `esp_no_session`.
    pub cipher: Option<Box<dyn Cipher>>,
    /// Inbound SAs only (`None` for outbound).
    pub replay: Option<Box<ReplayWindow>>,
    /// What the session was made from, to tell a reused `SaShared` under a new key apart.
    key_check: KeyCheck,
}

/// The SA fields a session and window depend on, compared on a sync.
#[derive(PartialEq, Eq)]
struct KeyCheck {
    spi: u32,
    key: SaKey,
    replay_window: u32,
}

/// A worker's sessions and replay windows for the SAs of one context.
pub struct EspRuntime {
    factory: Option<Box<dyn CipherFactory>>,
    writer: usize,
    /// The `ipsec_generation` of the context `slots` was built for (0: none yet; contexts
    /// start at 1).
    generation: u64,
    slots: Vec<SaRuntime>,
    /// Sessions the factory failed to make, over the runtime's life.
    session_errors: u64,
}

impl Default for EspRuntime {
    /// No factory: every ESP packet drops `esp_no_session`.
    fn default() -> Self {
        EspRuntime {
            factory: None,
            writer: 0,
            generation: 0,
            slots: Vec::new(),
            session_errors: 0,
        }
    }
}

impl fmt::Debug for EspRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EspRuntime")
            .field("factory", &self.factory.is_some())
            .field("writer", &self.writer)
            .field("generation", &self.generation)
            .field("slots", &self.slots.len())
            .field("session_errors", &self.session_errors)
            .finish()
    }
}

impl EspRuntime {
    /// A runtime that counts as `writer` (the worker's index; the control thread that sends
    /// probes is the number of workers) and makes sessions with `factory`.
    pub fn new(writer: usize, factory: Box<dyn CipherFactory>) -> Self {
        EspRuntime {
            factory: Some(factory),
            writer,
            ..Self::default()
        }
    }

    /// The writer index of the SA counters.
    #[inline]
    pub fn writer(&self) -> usize {
        self.writer
    }

    /// Sessions the factory failed to make so far (their SAs drop `esp_no_session`).
    pub fn session_errors(&self) -> u64 {
        self.session_errors
    }

    /// Aligns the runtime with `ctx`'s SAs. Cheap (one compare) when they did not change since
    /// the last call; call it once per burst.
    #[inline]
    pub fn sync(&mut self, ctx: &Context) {
        if self.generation != ctx.ipsec_generation() {
            self.rebuild(ctx);
        }
    }

    #[cold]
    #[inline(never)]
    fn rebuild(&mut self, ctx: &Context) {
        let mut old: Vec<Option<SaRuntime>> = std::mem::take(&mut self.slots)
            .into_iter()
            .map(Some)
            .collect();
        let mut slots = Vec::with_capacity(ctx.sa_slots().len());
        for sa in ctx.sa_slots() {
            let check = KeyCheck {
                spi: sa.spi,
                key: sa.key.clone(),
                replay_window: sa.replay_window,
            };
            let reused = old
                .iter()
                .position(|o| {
                    o.as_ref().is_some_and(|r| {
                        Arc::ptr_eq(&r.shared, &sa.shared)
                            && r.direction == sa.direction
                            && r.key_check == check
                    })
                })
                .and_then(|i| old[i].take());
            let rt = match reused {
                Some(r) => r,
                None => {
                    let cipher = match self.factory.as_mut() {
                        Some(f) => match f.session(&sa.key, sa.direction) {
                            Ok(c) => Some(c),
                            Err(_) => {
                                self.session_errors += 1;
                                None
                            }
                        },
                        None => None,
                    };
                    SaRuntime {
                        shared: Arc::clone(&sa.shared),
                        direction: sa.direction,
                        salt: sa.key.salt,
                        cipher,
                        replay: (sa.direction == SaDirection::Inbound)
                            .then(|| Box::new(ReplayWindow::new(sa.replay_window))),
                        key_check: check,
                    }
                }
            };
            slots.push(rt);
        }
        self.slots = slots;
        self.generation = ctx.ipsec_generation();
    }

    /// The SA in slot `i` of the context last synced.
    #[inline]
    pub(crate) fn slot(&mut self, i: u32) -> Option<&mut SaRuntime> {
        self.slots.get_mut(i as usize)
    }
}
