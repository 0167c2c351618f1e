//! The fault schedule: events sorted by time (a fault with `for` gets its own restore), and the
//! faults in force after each step, from which the gateway's nftables ruleset and tc qdiscs are
//! derived.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::spec::{EventSpec, FaultKind};

/// One step of the schedule, at `at` seconds after traffic started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub at: f64,
    pub fault: FaultKind,
    /// The site concerned; `None` for the appliance, or for a restore of every site.
    pub site: Option<String>,
    pub percent: Option<f64>,
    pub rate: Option<String>,
}

impl Step {
    pub fn describe(&self) -> String {
        let what = match self.fault {
            FaultKind::SiteDown => "site down".to_string(),
            FaultKind::Blackhole => "tunnel blackholed".to_string(),
            FaultKind::Loss => format!("{}% loss", self.percent.unwrap_or(0.0)),
            FaultKind::RateLimit => format!("rate limit {}", self.rate.as_deref().unwrap_or("")),
            FaultKind::Restore => "restore".to_string(),
            FaultKind::Reload => "appliance reload (SIGHUP)".to_string(),
            FaultKind::Restart => "appliance restart".to_string(),
        };
        match &self.site {
            Some(s) => format!("{what}: {s}"),
            None if self.fault == FaultKind::Restore => "restore: all sites".to_string(),
            None => what,
        }
    }
}

/// The steps of a schedule in time order; events at the same time keep the file's order, and a
/// fault's own restore (`for`) comes after the faults that start at that time.
pub fn steps(events: &[EventSpec]) -> Vec<Step> {
    let mut out: Vec<(f64, u8, usize, Step)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        out.push((
            e.at.0,
            0,
            i,
            Step {
                at: e.at.0,
                fault: e.fault,
                site: e.site.clone(),
                percent: e.percent,
                rate: e.rate.clone(),
            },
        ));
        if let Some(d) = e.for_ {
            let at = e.at.0 + d.0;
            out.push((
                at,
                1,
                i,
                Step {
                    at,
                    fault: FaultKind::Restore,
                    site: e.site.clone(),
                    percent: None,
                    rate: None,
                },
            ));
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    out.into_iter().map(|(_, _, _, s)| s).collect()
}

/// Faults in force at one site.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteFaults {
    pub down: bool,
    pub blackhole: bool,
    pub loss_percent: Option<f64>,
    pub rate: Option<String>,
}

impl SiteFaults {
    pub fn is_clear(&self) -> bool {
        *self == SiteFaults::default()
    }
}

/// Faults in force, by site name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultState {
    pub sites: BTreeMap<String, SiteFaults>,
}

impl FaultState {
    /// Applies one step; appliance steps (reload, restart) leave the site faults unchanged.
    pub fn apply(&mut self, step: &Step) {
        let site = step.site.clone();
        match step.fault {
            FaultKind::Restore => match site {
                Some(s) => {
                    self.sites.remove(&s);
                }
                None => self.sites.clear(),
            },
            FaultKind::Reload | FaultKind::Restart => {}
            f => {
                let e = self.sites.entry(site.unwrap_or_default()).or_default();
                match f {
                    FaultKind::SiteDown => e.down = true,
                    FaultKind::Blackhole => e.blackhole = true,
                    FaultKind::Loss => e.loss_percent = step.percent,
                    FaultKind::RateLimit => e.rate = step.rate.clone(),
                    _ => {}
                }
            }
        }
        self.sites.retain(|_, f| !f.is_clear());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Secs;

    fn ev(at: f64, fault: FaultKind, site: Option<&str>, for_: Option<f64>) -> EventSpec {
        EventSpec {
            at: Secs(at),
            fault,
            site: site.map(str::to_string),
            percent: (fault == FaultKind::Loss).then_some(5.0),
            rate: None,
            for_: for_.map(Secs),
        }
    }

    #[test]
    fn steps_are_sorted_and_for_becomes_a_restore() {
        let s = steps(&[
            ev(10.0, FaultKind::Blackhole, Some("b"), None),
            ev(2.0, FaultKind::Loss, Some("a"), Some(8.0)),
            ev(10.0, FaultKind::SiteDown, Some("c"), None),
        ]);
        let got: Vec<(f64, FaultKind, Option<&str>)> = s
            .iter()
            .map(|s| (s.at, s.fault, s.site.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (2.0, FaultKind::Loss, Some("a")),
                (10.0, FaultKind::Blackhole, Some("b")),
                (10.0, FaultKind::SiteDown, Some("c")),
                (10.0, FaultKind::Restore, Some("a")),
            ]
        );
    }

    #[test]
    fn fault_state_accumulates_and_restores() {
        let mut st = FaultState::default();
        let all = steps(&[
            ev(1.0, FaultKind::Blackhole, Some("a"), None),
            ev(2.0, FaultKind::Loss, Some("a"), None),
            ev(3.0, FaultKind::SiteDown, Some("b"), None),
            ev(4.0, FaultKind::Reload, None, None),
            ev(5.0, FaultKind::Restore, Some("a"), None),
            ev(6.0, FaultKind::Restore, None, None),
        ]);
        let mut seen = Vec::new();
        for s in &all {
            st.apply(s);
            seen.push(st.sites.keys().cloned().collect::<Vec<_>>().join(","));
        }
        assert_eq!(seen, vec!["a", "a", "a,b", "a,b", "b", ""]);
        st.apply(&all[0]);
        st.apply(&all[1]);
        assert_eq!(
            st.sites["a"],
            SiteFaults {
                down: false,
                blackhole: true,
                loss_percent: Some(5.0),
                rate: None
            }
        );
    }

    #[test]
    fn describe_names_fault_and_site() {
        let s = steps(&[ev(1.0, FaultKind::Loss, Some("a"), Some(1.0))]);
        assert_eq!(s[0].describe(), "5% loss: a");
        assert_eq!(s[1].describe(), "restore: a");
    }
}
