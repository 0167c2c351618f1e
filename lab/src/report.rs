//! The report of a run: the arithmetic over the samples the runner took (per-tunnel state and
//! transmit counters from the appliance, per-flow counters from the sites' LANs), as text, JSON
//! and a PNG plot of packets per second per tunnel.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::schedule::Step;
use crate::spec::{ExpectSpec, FaultKind};

/// One tunnel in one sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TunnelSample {
    pub state: String,
    /// Data packets the appliance sent into the tunnel: counted by the gateway when it can
    /// (every sample), else the appliance's `tx_packets` (refreshed twice a second).
    pub tx: u64,
}

/// A tunnel's state change, from the appliance's log (or seen between samples).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub t: f64,
    pub tunnel: String,
    pub from: String,
    pub to: String,
}

/// The appliance's tunnels at one time (seconds since traffic started; negative before).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub t: f64,
    pub tunnels: BTreeMap<String, TunnelSample>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measurements {
    pub samples: Vec<Sample>,
    /// State changes with their exact times; when empty, those seen between samples count.
    pub changes: Vec<Change>,
    /// Other events of the run for the timeline.
    pub notes: Vec<TimelineEntry>,
    /// The appliance's drops by reason over the run (summed over restarts).
    pub appliance_drops: BTreeMap<String, u64>,
    /// Steps as applied: the time each one took effect.
    pub steps: Vec<Step>,
    /// Flow index -> class name.
    pub flow_class: Vec<String>,
    pub sent: Vec<u64>,
    /// Per site: received packets per flow index.
    pub received: BTreeMap<String, Vec<u64>>,
    /// Site name -> tunnel name.
    pub site_tunnel: BTreeMap<String, String>,
    /// Tunnel -> the tunnels that share a route prefix with it (who may take over).
    pub alternatives: BTreeMap<String, Vec<String>>,
    pub duration_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub t: f64,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultFigures {
    pub at: f64,
    pub fault: String,
    pub tunnel: String,
    /// Fault to the tunnel's first state change away from healthy.
    pub detect_s: Option<f64>,
    /// Fault to the last sample in which the appliance still sent into the tunnel.
    pub steer_s: Option<f64>,
    /// Detection to steer: the appliance's reaction to its own verdict (table swap and the
    /// runner's 100 ms sampling; negative when the last packet left before the log line).
    pub detect_to_steer_s: Option<f64>,
    /// Tunnels whose rate rose after the steer.
    pub taken_over_by: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreFigures {
    pub at: f64,
    pub tunnel: String,
    /// Restore to the tunnel's return to healthy.
    pub healthy_s: Option<f64>,
    /// Restore to the first sample in which the tunnel carried traffic again.
    pub traffic_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassLoss {
    pub class: String,
    pub flows: usize,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub loss_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub duration_s: f64,
    pub timeline: Vec<TimelineEntry>,
    pub faults: Vec<FaultFigures>,
    pub restores: Vec<RestoreFigures>,
    pub loss: Vec<ClassLoss>,
    /// Share of packets per tunnel (percent) before the first fault.
    pub ecmp_spread: BTreeMap<String, f64>,
    /// Flows seen per site (a flow that moved counts at every site it reached).
    pub flows_per_site: BTreeMap<String, usize>,
    /// The appliance's drops by reason.
    pub appliance_drops: BTreeMap<String, u64>,
    /// Changes to a worse state of a tunnel whose site had no fault in force: the machine (a
    /// stalled process on a busy host) rather than the schedule.
    pub unprovoked: Vec<TimelineEntry>,
    /// Bounds missed (empty when every `expect` bound held).
    pub violations: Vec<String>,
    pub plot: Option<String>,
}

/// Packets per second per tunnel at each sample's time, over the last `window` seconds (at
/// least the step from the previous sample). A counter that went backwards (an appliance
/// restart) restarts from zero.
pub fn pps(samples: &[Sample], window: f64) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for j in 1..samples.len() {
        let t = samples[j].t;
        let mut i = j - 1;
        while i > 0 && samples[i].t > t - window {
            i -= 1;
        }
        let dt = t - samples[i].t;
        if dt <= 0.0 {
            continue;
        }
        for name in samples[j].tunnels.keys() {
            let mut n = 0u64;
            for k in i + 1..=j {
                let now = samples[k].tunnels.get(name).map_or(0, |s| s.tx);
                let before = samples[k - 1].tunnels.get(name).map_or(0, |s| s.tx);
                n += if now >= before { now - before } else { now };
            }
            out.entry(name.clone())
                .or_default()
                .push((t, n as f64 / dt));
        }
    }
    out
}

/// State changes seen between consecutive samples.
pub fn state_changes(samples: &[Sample]) -> Vec<(f64, String, String, String)> {
    let mut out = Vec::new();
    for w in samples.windows(2) {
        for (name, now) in &w[1].tunnels {
            if let Some(before) = w[0].tunnels.get(name) {
                if before.state != now.state {
                    out.push((
                        w[1].t,
                        name.clone(),
                        before.state.clone(),
                        now.state.clone(),
                    ));
                }
            }
        }
    }
    out
}

/// Changes to a worse state while the tunnel's site had no fault in force.
fn unprovoked(m: &Measurements, changes: &[(f64, String, String, String)]) -> Vec<TimelineEntry> {
    let site_of: BTreeMap<&str, &str> = m
        .site_tunnel
        .iter()
        .map(|(s, t)| (t.as_str(), s.as_str()))
        .collect();
    let mut out = Vec::new();
    for (t, tunnel, from, to) in changes {
        if !worse(to, from) {
            continue;
        }
        let Some(site) = site_of.get(tunnel.as_str()) else {
            continue;
        };
        // The site's last fault or restore before the change decides whether a fault was on.
        let faulted = m
            .steps
            .iter()
            .rfind(|s| {
                s.at <= *t
                    && match &s.site {
                        Some(x) => x == site,
                        None => s.fault == FaultKind::Restore,
                    }
            })
            .is_some_and(|s| s.fault != FaultKind::Restore);
        if !faulted {
            out.push(TimelineEntry {
                t: *t,
                what: format!("{tunnel}: {from} -> {to}"),
            });
        }
    }
    out
}

/// Whether state `a` is worse than `b` (healthy < degraded < down; admin-down routes as down).
fn worse(a: &str, b: &str) -> bool {
    let rank = |s: &str| match s {
        "degraded" => 1,
        "down" | "admin-down" => 2,
        _ => 0,
    };
    rank(a) > rank(b)
}

/// Times (of the later sample) at which `tunnel`'s transmit counter rose.
fn increases(samples: &[Sample], tunnel: &str) -> Vec<f64> {
    let mut out = Vec::new();
    for w in samples.windows(2) {
        if let (Some(a), Some(b)) = (w[0].tunnels.get(tunnel), w[1].tunnels.get(tunnel)) {
            if b.tx > a.tx || b.tx < a.tx && b.tx > 0 {
                out.push(w[1].t);
            }
        }
    }
    out
}

fn packets_between(samples: &[Sample], tunnel: &str, t0: f64, t1: f64) -> u64 {
    let mut n = 0;
    for w in samples.windows(2) {
        if w[0].t >= t0 && w[1].t <= t1 {
            if let (Some(a), Some(b)) = (w[0].tunnels.get(tunnel), w[1].tunnels.get(tunnel)) {
                n += if b.tx >= a.tx { b.tx - a.tx } else { b.tx };
            }
        }
    }
    n
}

impl Report {
    pub fn compute(m: &Measurements, expect: &ExpectSpec, expect_ecmp: &[String]) -> Report {
        let changes: Vec<(f64, String, String, String)> = if m.changes.is_empty() {
            state_changes(&m.samples)
        } else {
            m.changes
                .iter()
                .map(|c| (c.t, c.tunnel.clone(), c.from.clone(), c.to.clone()))
                .collect()
        };
        let mut timeline: Vec<TimelineEntry> = m
            .steps
            .iter()
            .map(|s| TimelineEntry {
                t: s.at,
                what: format!("fault  {}", s.describe()),
            })
            .collect();
        timeline.extend(changes.iter().map(|(t, n, a, b)| TimelineEntry {
            t: *t,
            what: format!("state  {n}: {a} -> {b}"),
        }));
        timeline.extend(m.notes.iter().cloned());
        timeline.sort_by(|a, b| a.t.total_cmp(&b.t));

        let end = m.duration_s;
        // A site's fault lasts until the next restore of that site (or of all sites).
        let restore_after = |site: &str, t: f64| -> f64 {
            m.steps
                .iter()
                .filter(|s| {
                    s.at > t
                        && s.fault == FaultKind::Restore
                        && s.site.as_deref().is_none_or(|x| x == site)
                })
                .map(|s| s.at)
                .fold(end, f64::min)
        };
        let mut faults = Vec::new();
        let mut restores = Vec::new();
        for s in &m.steps {
            let site = match &s.site {
                Some(x) => x.as_str(),
                None if s.fault == FaultKind::Restore => "",
                None => continue,
            };
            let tunnels: Vec<String> = if site.is_empty() {
                m.site_tunnel.values().cloned().collect()
            } else {
                m.site_tunnel.get(site).cloned().into_iter().collect()
            };
            for tunnel in tunnels {
                if s.fault == FaultKind::Restore {
                    // Only a tunnel that was not healthy at the restore has something to recover.
                    let was_bad = changes
                        .iter()
                        .rfind(|c| c.1 == tunnel && c.0 <= s.at)
                        .is_some_and(|c| c.3 != "healthy");
                    if !was_bad {
                        continue;
                    }
                    let healthy_s = changes
                        .iter()
                        .find(|c| c.1 == tunnel && c.0 > s.at && c.3 == "healthy")
                        .map(|c| c.0 - s.at);
                    let traffic_s = increases(&m.samples, &tunnel)
                        .into_iter()
                        .find(|&t| t > s.at)
                        .map(|t| t - s.at);
                    restores.push(RestoreFigures {
                        at: s.at,
                        tunnel,
                        healthy_s,
                        traffic_s,
                    });
                    continue;
                }
                let until = restore_after(site, s.at);
                let detect_s = changes
                    .iter()
                    .find(|c| c.1 == tunnel && c.0 >= s.at && c.0 <= until && worse(&c.3, &c.2))
                    .map(|c| c.0 - s.at);
                let steer_s = if matches!(s.fault, FaultKind::SiteDown | FaultKind::Blackhole) {
                    let inc: Vec<f64> = increases(&m.samples, &tunnel)
                        .into_iter()
                        .filter(|&t| t > s.at && t <= until)
                        .collect();
                    // Traffic that never stopped until the restore was never steered away.
                    match inc.last() {
                        None => Some(0.0),
                        Some(&last) if until - last > 0.5 => Some(last - s.at),
                        Some(_) => None,
                    }
                } else {
                    None
                };
                let taken_over_by = match steer_s {
                    Some(st) => {
                        let t_steer = s.at + st;
                        let rate = |name: &str, a: f64, b: f64| {
                            packets_between(&m.samples, name, a, b) as f64 / (b - a).max(1e-9)
                        };
                        let win = 1.0;
                        m.site_tunnel
                            .values()
                            .filter(|n| **n != tunnel)
                            .filter(|n| {
                                m.alternatives
                                    .get(&tunnel)
                                    .is_none_or(|alt| alt.contains(n))
                            })
                            .filter(|n| {
                                rate(n, t_steer + 0.2, (t_steer + 0.2 + win).min(until))
                                    > rate(n, (s.at - win).max(0.0), s.at) * 1.2 + 1.0
                            })
                            .cloned()
                            .collect()
                    }
                    None => Vec::new(),
                };
                faults.push(FaultFigures {
                    at: s.at,
                    fault: s.describe(),
                    tunnel,
                    detect_s,
                    steer_s,
                    detect_to_steer_s: detect_s.zip(steer_s).map(|(d, st)| st - d),
                    taken_over_by,
                });
            }
        }

        // Loss per class: what was sent against what any site received.
        let mut loss: BTreeMap<String, ClassLoss> = BTreeMap::new();
        for (i, class) in m.flow_class.iter().enumerate() {
            let sent = m.sent.get(i).copied().unwrap_or(0);
            let received: u64 = m
                .received
                .values()
                .map(|v| v.get(i).copied().unwrap_or(0))
                .sum();
            let e = loss.entry(class.clone()).or_insert(ClassLoss {
                class: class.clone(),
                flows: 0,
                sent: 0,
                received: 0,
                lost: 0,
                loss_percent: 0.0,
            });
            e.flows += 1;
            e.sent += sent;
            e.received += received;
            e.lost += sent.saturating_sub(received);
        }
        let mut loss: Vec<ClassLoss> = loss.into_values().collect();
        for l in &mut loss {
            l.loss_percent = if l.sent == 0 {
                0.0
            } else {
                100.0 * l.lost as f64 / l.sent as f64
            };
        }

        let first_fault = m
            .steps
            .iter()
            .filter(|s| s.fault != FaultKind::Restore)
            .map(|s| s.at)
            .fold(end, f64::min);
        let mut ecmp_spread = BTreeMap::new();
        let per: Vec<(String, u64)> = m
            .site_tunnel
            .values()
            .map(|n| (n.clone(), packets_between(&m.samples, n, 0.0, first_fault)))
            .collect();
        let total: u64 = per.iter().map(|p| p.1).sum();
        for (n, p) in per {
            if p > 0 || expect_ecmp.contains(&n) {
                ecmp_spread.insert(n, 100.0 * p as f64 / total.max(1) as f64);
            }
        }
        let flows_per_site = m
            .received
            .iter()
            .map(|(s, v)| (s.clone(), v.iter().filter(|&&n| n > 0).count()))
            .collect();

        let mut r = Report {
            duration_s: m.duration_s,
            timeline,
            faults,
            restores,
            loss,
            ecmp_spread,
            flows_per_site,
            appliance_drops: m.appliance_drops.clone(),
            unprovoked: unprovoked(m, &changes),
            violations: Vec::new(),
            plot: None,
        };
        r.violations = r.check(expect, expect_ecmp);
        r
    }

    /// The `expect` bounds this report misses.
    pub fn check(&self, expect: &ExpectSpec, ecmp: &[String]) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(max) = expect.max_steer_s {
            for f in &self.faults {
                if !f.fault.starts_with("site down") && !f.fault.starts_with("tunnel blackholed") {
                    continue;
                }
                match f.steer_s {
                    Some(s) if s <= max => {}
                    Some(s) => v.push(format!(
                        "{} at {:.1}s: traffic left {} after {s:.2}s (> {max}s)",
                        f.fault, f.at, f.tunnel
                    )),
                    None => v.push(format!(
                        "{} at {:.1}s: traffic never left {}",
                        f.fault, f.at, f.tunnel
                    )),
                }
            }
        }
        if let Some(max) = expect.max_loss_percent {
            for l in &self.loss {
                if l.loss_percent > max {
                    v.push(format!(
                        "class {}: {:.2}% lost (> {max}%)",
                        l.class, l.loss_percent
                    ));
                }
            }
        }
        if let Some(min) = expect.min_ecmp_share_percent {
            for n in ecmp {
                let share = self.ecmp_spread.get(n).copied().unwrap_or(0.0);
                if share < min {
                    v.push(format!("ECMP: {n} carried {share:.1}% (< {min}%)"));
                }
            }
        }
        v
    }

    pub fn text(&self) -> String {
        let mut o = String::new();
        let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}s"));
        let _ = writeln!(o, "== report ({:.0} s of traffic) ==", self.duration_s);
        let _ = writeln!(o, "timeline (s since traffic started):");
        for e in &self.timeline {
            let _ = writeln!(o, "  {:>7.2}  {}", e.t, e.what);
        }
        let _ = writeln!(
            o,
            "faults: detection = fault -> state change; steer = fault -> last data packet into the tunnel:"
        );
        for f in &self.faults {
            let _ = writeln!(
                o,
                "  {:>7.2}  {:<28} {:<12} detect {:>6}  steer {:>6} ({:>6} after detection)  taken over by {}",
                f.at,
                f.fault,
                f.tunnel,
                opt(f.detect_s),
                opt(f.steer_s),
                opt(f.detect_to_steer_s),
                if f.taken_over_by.is_empty() {
                    "-".to_string()
                } else {
                    f.taken_over_by.join(", ")
                }
            );
        }
        for r in &self.restores {
            let _ = writeln!(
                o,
                "  {:>7.2}  restore {:<20} {:<12} healthy after {:>6}  traffic back after {:>6}",
                r.at,
                "",
                r.tunnel,
                opt(r.healthy_s),
                opt(r.traffic_s)
            );
        }
        let _ = writeln!(o, "loss per flow class:");
        for l in &self.loss {
            let _ = writeln!(
                o,
                "  {:<12} {:>4} flows  sent {:>7}  received {:>7}  lost {:>6} ({:.2}%)",
                l.class, l.flows, l.sent, l.received, l.lost, l.loss_percent
            );
        }
        let _ = writeln!(o, "ECMP spread before the first fault (share of packets):");
        for (n, s) in &self.ecmp_spread {
            let _ = writeln!(o, "  {n:<16} {s:>5.1}%");
        }
        let _ = writeln!(o, "flows seen per site: {:?}", self.flows_per_site);
        let _ = writeln!(o, "appliance drops by reason: {:?}", self.appliance_drops);
        if !self.unprovoked.is_empty() {
            let _ = writeln!(
                o,
                "state changes without a fault (a stalled process on a busy machine?):"
            );
            for e in &self.unprovoked {
                let _ = writeln!(o, "  {:>7.2}  {}", e.t, e.what);
            }
        }
        if self.violations.is_empty() {
            let _ = writeln!(o, "expectations: all met");
        } else {
            let _ = writeln!(o, "expectations MISSED:");
            for v in &self.violations {
                let _ = writeln!(o, "  {v}");
            }
        }
        if let Some(p) = &self.plot {
            let _ = writeln!(o, "plot: {p}");
        }
        o
    }
}

/// Draws packets per second per tunnel over time, with the schedule's steps as vertical lines.
pub fn plot(m: &Measurements, path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    crate::font::register()?;
    let series = pps(&m.samples, 0.5);
    let t_min = m.samples.first().map(|s| s.t).unwrap_or(0.0).min(0.0);
    let t_max = m
        .samples
        .last()
        .map(|s| s.t)
        .unwrap_or(1.0)
        .max(t_min + 1.0);
    let y_max = series
        .values()
        .flat_map(|v| v.iter().map(|p| p.1))
        .fold(10.0f64, f64::max)
        * 1.15;
    let root = BitMapBackend::new(path, (1100, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("packets per second per tunnel", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(t_min..t_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since traffic started")
        .y_desc("pps")
        .label_style(("sans-serif", 14))
        .draw()?;
    for s in &m.steps {
        let c = if s.fault == FaultKind::Restore {
            GREEN.mix(0.6)
        } else {
            RED.mix(0.6)
        };
        chart.draw_series(LineSeries::new(
            [(s.at, 0.0), (s.at, y_max)],
            c.stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            s.describe(),
            (s.at, y_max * 0.97),
            ("sans-serif", 12).into_font().color(&BLACK),
        )))?;
    }
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        // The tunnel's state changes: a marker on the time axis, the new state above it.
        for c in m.changes.iter().filter(|c| &c.tunnel == name) {
            let y = y_max * (0.04 + 0.05 * i as f64);
            chart.draw_series(std::iter::once(TriangleMarker::new(
                (c.t, 0.0),
                6,
                color.filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                c.to.clone(),
                (c.t, y),
                ("sans-serif", 11).into_font().color(&color),
            )))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, rows: &[(&str, &str, u64)]) -> Sample {
        Sample {
            t,
            tunnels: rows
                .iter()
                .map(|(n, s, tx)| {
                    (
                        n.to_string(),
                        TunnelSample {
                            state: s.to_string(),
                            tx: *tx,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Two ECMP tunnels at 100 pps each; `a` is blackholed at 2.0 s, goes down at 2.5 s and its
    /// traffic moves to `b` by 2.6 s; everything is restored at 4.0 s and `a` is healthy and
    /// carrying again at 5.0 s.
    fn run() -> Measurements {
        let mut samples = Vec::new();
        let (mut a, mut b) = (0u64, 0u64);
        for i in 0..=60 {
            let t = f64::from(i) * 0.1;
            let a_state = if (2.5..5.0).contains(&t) {
                "down"
            } else {
                "healthy"
            };
            if i > 0 {
                if !(2.6..5.0).contains(&t) {
                    a += 10;
                    b += 10;
                } else {
                    b += 20;
                }
            }
            samples.push(sample(t, &[("a", a_state, a), ("b", "healthy", b)]));
        }
        Measurements {
            samples,
            changes: Vec::new(),
            notes: Vec::new(),
            appliance_drops: BTreeMap::new(),
            steps: vec![
                Step {
                    at: 2.0,
                    fault: FaultKind::Blackhole,
                    site: Some("sa".into()),
                    percent: None,
                    rate: None,
                },
                Step {
                    at: 4.0,
                    fault: FaultKind::Restore,
                    site: None,
                    percent: None,
                    rate: None,
                },
            ],
            flow_class: vec!["x".into(), "x".into(), "y".into()],
            sent: vec![100, 100, 50],
            received: [
                ("sa".to_string(), vec![60, 0, 0]),
                ("sb".to_string(), vec![30, 100, 50]),
            ]
            .into_iter()
            .collect(),
            site_tunnel: [("sa", "a"), ("sb", "b")]
                .iter()
                .map(|(s, t)| (s.to_string(), t.to_string()))
                .collect(),
            alternatives: BTreeMap::new(),
            duration_s: 6.0,
        }
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-6)
    }

    #[test]
    fn pps_is_delta_over_time_and_survives_counter_reset() {
        let s = vec![
            sample(0.0, &[("a", "healthy", 0)]),
            sample(0.5, &[("a", "healthy", 50)]),
            sample(1.0, &[("a", "healthy", 7)]),
        ];
        let p = pps(&s, 0.0);
        assert_eq!(p["a"], vec![(0.5, 100.0), (1.0, 14.0)]);
        let p = pps(&s, 1.0);
        assert_eq!(p["a"], vec![(0.5, 100.0), (1.0, 57.0)]);
    }

    #[test]
    fn detection_steer_takeover_and_recovery() {
        let m = run();
        let r = Report::compute(&m, &ExpectSpec::default(), &[]);
        assert_eq!(r.faults.len(), 1);
        let f = &r.faults[0];
        assert_eq!(f.tunnel, "a");
        assert!(close(f.detect_s, 0.5), "{f:?}");
        // The last increase of a's counter is at the 2.5 s sample.
        assert!(close(f.steer_s, 0.5), "{f:?}");
        assert_eq!(f.taken_over_by, vec!["b".to_string()]);
        assert_eq!(r.restores.len(), 1);
        assert!(close(r.restores[0].healthy_s, 1.0), "{:?}", r.restores);
        assert!(close(r.restores[0].traffic_s, 1.0), "{:?}", r.restores);
        assert_eq!(r.timeline.len(), 4);
    }

    #[test]
    fn loss_per_class_and_ecmp_spread() {
        let m = run();
        let r = Report::compute(&m, &ExpectSpec::default(), &[]);
        let x = &r.loss[0];
        assert_eq!(
            (x.class.as_str(), x.flows, x.sent, x.received, x.lost),
            ("x", 2, 200, 190, 10)
        );
        assert!((x.loss_percent - 5.0).abs() < 1e-9);
        assert_eq!(r.loss[1].lost, 0);
        assert!((r.ecmp_spread["a"] - 50.0).abs() < 1e-9);
        assert_eq!(r.flows_per_site["sa"], 1);
        assert_eq!(r.flows_per_site["sb"], 3);
    }

    #[test]
    fn state_changes_without_a_fault_are_flagged() {
        let mut m = run();
        assert!(Report::compute(&m, &ExpectSpec::default(), &[])
            .unprovoked
            .is_empty());
        m.changes = vec![
            Change {
                t: 1.0,
                tunnel: "b".into(),
                from: "healthy".into(),
                to: "down".into(),
            },
            Change {
                t: 2.5,
                tunnel: "a".into(),
                from: "healthy".into(),
                to: "down".into(),
            },
            Change {
                t: 4.5,
                tunnel: "a".into(),
                from: "healthy".into(),
                to: "degraded".into(),
            },
        ];
        let r = Report::compute(&m, &ExpectSpec::default(), &[]);
        let got: Vec<f64> = r.unprovoked.iter().map(|e| e.t).collect();
        assert_eq!(got, vec![1.0, 4.5]);
    }

    #[test]
    fn expectations_are_checked() {
        let m = run();
        let strict = ExpectSpec {
            max_steer_s: Some(0.4),
            max_loss_percent: Some(1.0),
            min_ecmp_share_percent: Some(60.0),
            ecmp_tunnels: None,
        };
        let r = Report::compute(&m, &strict, &["a".into(), "b".into()]);
        assert_eq!(r.violations.len(), 4, "{:?}", r.violations);
        let loose = ExpectSpec {
            max_steer_s: Some(1.0),
            max_loss_percent: Some(10.0),
            min_ecmp_share_percent: Some(40.0),
            ecmp_tunnels: None,
        };
        let r = Report::compute(&m, &loose, &["a".into(), "b".into()]);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
    }

    #[test]
    fn a_tunnel_that_kept_sending_was_not_steered() {
        let mut m = run();
        for s in &mut m.samples {
            let i = (s.t * 10.0).round() as u64;
            s.tunnels.get_mut("a").unwrap().tx = i * 10;
        }
        let r = Report::compute(&m, &ExpectSpec::default(), &[]);
        assert_eq!(r.faults[0].steer_s, None);
    }
}
