//! Health-check settings of one tunnel: probe rate, timeout, and the windows and thresholds of the
//! state machine, with the defaults of docs/behaviour.md §4.

use std::time::Duration;

use thiserror::Error;

/// How often a tunnel is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProbeRate {
    /// One probe every 10 s.
    Low,
    /// One probe every second (the documented default).
    #[default]
    Mid,
    /// One probe every 100 ms.
    High,
    /// An explicit interval between probes.
    Every(Duration),
}

impl ProbeRate {
    /// Time between two regular probes.
    pub const fn interval(self) -> Duration {
        match self {
            ProbeRate::Low => Duration::from_secs(10),
            ProbeRate::Mid => Duration::from_secs(1),
            ProbeRate::High => Duration::from_millis(100),
            ProbeRate::Every(interval) => interval,
        }
    }
}

/// Upper bound of the default probe timeout: a reply later than one second says the path is
/// unusable for interactive traffic even when probes are 10 s apart.
pub const DEFAULT_TIMEOUT_CAP: Duration = Duration::from_secs(1);

/// A probe may stay outstanding for at most this many probe intervals. It bounds the table of
/// probes in flight (and keeps sequence numbers far from wrapping onto an outstanding probe).
pub const MAX_TIMEOUT_INTERVALS: u32 = 64;

/// Health-check settings of one tunnel. Build with `HealthConfig::default()` (documented defaults)
/// and change fields; [`HealthConfig::validate`] (also run by `TunnelHealth::new`) rejects
/// nonsense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// `false`: no probes are sent and the tunnel always counts as healthy.
    pub enabled: bool,
    /// Interval between regular probes.
    pub rate: ProbeRate,
    /// How long to wait for a reply; `None` means `min(interval, 1 s)`.
    pub timeout: Option<Duration>,
    /// Immediate retries after a failed probe of a healthy tunnel (default: 2).
    pub retries: u32,
    /// Down when this many consecutive probe outcomes failed (default: 3).
    pub down_after_failures: u32,
    /// Length of the loss window of the degraded rule (default: 5 minutes).
    pub loss_window: Duration,
    /// Loss ratio, in parts per million, at or above which a healthy tunnel becomes degraded
    /// (default: 0.1 % = 1000 ppm).
    pub degraded_loss_ppm: u32,
    /// ...provided at least this many probes failed within the loss window (default: 2).
    pub degraded_min_failures: u32,
    /// Down → degraded after this many consecutive successes (default: 3).
    pub successes_to_degraded: u32,
    /// Degraded → healthy after this many consecutive successes... (default: 30)
    pub successes_to_healthy: u32,
    /// ...and at least this long since the last entry into down or degraded (default: 5 minutes).
    pub hold_down: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            rate: ProbeRate::Mid,
            timeout: None,
            retries: 2,
            down_after_failures: 3,
            loss_window: Duration::from_secs(300),
            degraded_loss_ppm: 1000,
            degraded_min_failures: 2,
            successes_to_degraded: 3,
            successes_to_healthy: 30,
            hold_down: Duration::from_secs(300),
        }
    }
}

impl HealthConfig {
    /// Documented defaults with health checking switched off.
    pub fn disabled() -> Self {
        HealthConfig {
            enabled: false,
            ..HealthConfig::default()
        }
    }

    /// Time between two regular probes.
    pub fn probe_interval(&self) -> Duration {
        self.rate.interval()
    }

    /// The effective probe timeout: the configured one, else `min(interval, 1 s)`.
    pub fn probe_timeout(&self) -> Duration {
        self.timeout
            .unwrap_or_else(|| self.probe_interval().min(DEFAULT_TIMEOUT_CAP))
    }

    /// Checks every field; a disabled config is checked too, so enabling it later cannot fail.
    pub fn validate(&self) -> Result<(), HealthConfigError> {
        let interval = self.probe_interval();
        if interval.is_zero() {
            return Err(HealthConfigError::ZeroInterval);
        }
        let timeout = self.probe_timeout();
        if timeout.is_zero() {
            return Err(HealthConfigError::ZeroTimeout);
        }
        let max_timeout = interval.saturating_mul(MAX_TIMEOUT_INTERVALS);
        if timeout > max_timeout {
            return Err(HealthConfigError::TimeoutTooLong {
                timeout,
                max: max_timeout,
            });
        }
        if self.down_after_failures == 0 {
            return Err(HealthConfigError::Zero("down_after_failures"));
        }
        if self.loss_window.is_zero() {
            return Err(HealthConfigError::Zero("loss_window"));
        }
        if self.degraded_loss_ppm > 1_000_000 {
            return Err(HealthConfigError::LossRatioTooHigh(self.degraded_loss_ppm));
        }
        if self.degraded_min_failures == 0 {
            return Err(HealthConfigError::Zero("degraded_min_failures"));
        }
        if self.successes_to_degraded == 0 {
            return Err(HealthConfigError::Zero("successes_to_degraded"));
        }
        if self.successes_to_healthy == 0 {
            return Err(HealthConfigError::Zero("successes_to_healthy"));
        }
        Ok(())
    }
}

/// Why a [`HealthConfig`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HealthConfigError {
    #[error("health check interval must be greater than zero")]
    ZeroInterval,
    #[error("health check timeout must be greater than zero")]
    ZeroTimeout,
    #[error("health check timeout {timeout:?} exceeds {max:?} ({MAX_TIMEOUT_INTERVALS} probe intervals)")]
    TimeoutTooLong { timeout: Duration, max: Duration },
    #[error("health check setting `{0}` must be greater than zero")]
    Zero(&'static str),
    #[error("degraded loss ratio {0} ppm exceeds 1000000 ppm (100 %)")]
    LossRatioTooHigh(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_config_rates_and_default_timeouts() {
        let cases = [
            (
                ProbeRate::Low,
                Duration::from_secs(10),
                Duration::from_secs(1),
            ),
            (
                ProbeRate::Mid,
                Duration::from_secs(1),
                Duration::from_secs(1),
            ),
            (
                ProbeRate::High,
                Duration::from_millis(100),
                Duration::from_millis(100),
            ),
            (
                ProbeRate::Every(Duration::from_millis(250)),
                Duration::from_millis(250),
                Duration::from_millis(250),
            ),
            (
                ProbeRate::Every(Duration::from_secs(5)),
                Duration::from_secs(5),
                Duration::from_secs(1),
            ),
        ];
        for (rate, interval, timeout) in cases {
            let config = HealthConfig {
                rate,
                ..HealthConfig::default()
            };
            assert_eq!(config.probe_interval(), interval, "{rate:?}");
            assert_eq!(config.probe_timeout(), timeout, "{rate:?}");
            assert_eq!(config.validate(), Ok(()), "{rate:?}");
        }
        let explicit = HealthConfig {
            timeout: Some(Duration::from_millis(300)),
            ..HealthConfig::default()
        };
        assert_eq!(explicit.probe_timeout(), Duration::from_millis(300));
        assert_eq!(HealthConfig::default().rate, ProbeRate::Mid);
    }

    #[test]
    fn health_config_validation_rejects_nonsense() {
        let d = HealthConfig::default;
        let cases: Vec<(HealthConfig, HealthConfigError)> = vec![
            (
                HealthConfig {
                    rate: ProbeRate::Every(Duration::ZERO),
                    ..d()
                },
                HealthConfigError::ZeroInterval,
            ),
            (
                HealthConfig {
                    rate: ProbeRate::Every(Duration::ZERO),
                    ..HealthConfig::disabled()
                },
                HealthConfigError::ZeroInterval,
            ),
            (
                HealthConfig {
                    timeout: Some(Duration::ZERO),
                    ..d()
                },
                HealthConfigError::ZeroTimeout,
            ),
            (
                HealthConfig {
                    timeout: Some(Duration::from_secs(65)),
                    ..d()
                },
                HealthConfigError::TimeoutTooLong {
                    timeout: Duration::from_secs(65),
                    max: Duration::from_secs(64),
                },
            ),
            (
                HealthConfig {
                    down_after_failures: 0,
                    ..d()
                },
                HealthConfigError::Zero("down_after_failures"),
            ),
            (
                HealthConfig {
                    loss_window: Duration::ZERO,
                    ..d()
                },
                HealthConfigError::Zero("loss_window"),
            ),
            (
                HealthConfig {
                    degraded_loss_ppm: 1_000_001,
                    ..d()
                },
                HealthConfigError::LossRatioTooHigh(1_000_001),
            ),
            (
                HealthConfig {
                    degraded_min_failures: 0,
                    ..d()
                },
                HealthConfigError::Zero("degraded_min_failures"),
            ),
            (
                HealthConfig {
                    successes_to_degraded: 0,
                    ..d()
                },
                HealthConfigError::Zero("successes_to_degraded"),
            ),
            (
                HealthConfig {
                    successes_to_healthy: 0,
                    ..d()
                },
                HealthConfigError::Zero("successes_to_healthy"),
            ),
        ];
        for (config, err) in cases {
            assert_eq!(config.validate(), Err(err.clone()), "{config:?}");
            assert!(!err.to_string().is_empty());
        }
        // Edges that are allowed: timeout of exactly 64 intervals, no retries, zero hold-down.
        let edge = HealthConfig {
            timeout: Some(Duration::from_secs(64)),
            retries: 0,
            hold_down: Duration::ZERO,
            degraded_loss_ppm: 1_000_000,
            ..d()
        };
        assert_eq!(edge.validate(), Ok(()));
    }
}
