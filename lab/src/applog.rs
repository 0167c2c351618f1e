//! The appliance's log as a source of exact times: every tunnel state change is one line,
//! stamped by env_logger with the wall-clock time to the millisecond, e.g.
//! `[2026-12-02T06:34:18.870Z WARN  control::plane] tunnel t1: healthy -> down at 0.46s: ...`.

use crate::report::Change;

/// Milliseconds since the Unix epoch of an RFC 3339 UTC stamp `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn unix_ms(stamp: &str) -> Option<i64> {
    let b = stamp.as_bytes();
    if b.len() < 23 || b[4] != b'-' || b[10] != b'T' || b[19] != b'.' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| stamp.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss, ms) = (n(11..13)?, n(14..16)?, n(17..19)?, n(20..23)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

/// The state changes in `log`, in seconds since `t0_unix_ms`.
pub fn changes(log: &str, t0_unix_ms: i64) -> Vec<Change> {
    let mut out = Vec::new();
    for line in log.lines() {
        let Some(rest) = line.strip_prefix('[') else {
            continue;
        };
        let Some(ms) = unix_ms(rest) else { continue };
        let Some(i) = rest.find("] tunnel ") else {
            continue;
        };
        let msg = &rest[i + "] tunnel ".len()..];
        let Some((name, rest)) = msg.split_once(": ") else {
            continue;
        };
        let Some((from, rest)) = rest.split_once(" -> ") else {
            continue;
        };
        let Some(to) = rest.split_whitespace().next() else {
            continue;
        };
        if from.contains(' ') {
            continue;
        }
        out.push(Change {
            t: (ms - t0_unix_ms) as f64 / 1000.0,
            tunnel: name.to_string(),
            from: from.to_string(),
            to: to.to_string(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_to_unix_ms() {
        assert_eq!(unix_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(unix_ms("2000-03-01T00:00:01.250Z"), Some(951_868_801_250));
        assert_eq!(
            unix_ms("2026-12-02T06:34:18.870Z WARN"),
            Some(1_796_193_258_870)
        );
        assert_eq!(unix_ms("garbage"), None);
    }

    #[test]
    fn state_changes_from_log_lines() {
        let log = "\
[2026-12-02T06:34:18.413Z INFO  conduit] lcore1: pipeline over 1 ports
[2026-12-02T06:34:18.870Z WARN  control::plane] tunnel acme-1: healthy -> down at 0.456334443s: 3 consecutive probes failed (penalty 1000000)
[2026-12-02T06:34:25.177Z WARN  control::plane] tunnel acme-1: down -> degraded at 6.763728818s: 3 consecutive probes succeeded (penalty 500000)
";
        let t0 = unix_ms("2026-12-02T06:34:18.000Z").unwrap();
        let c = changes(log, t0);
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].tunnel.as_str(), c[0].from.as_str(), c[0].to.as_str()),
            ("acme-1", "healthy", "down")
        );
        assert!((c[0].t - 0.870).abs() < 1e-9);
        assert!((c[1].t - 7.177).abs() < 1e-9);
    }
}
