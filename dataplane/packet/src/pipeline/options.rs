//! IPv4 options: the walk over an option list that every user of options shares, and the
//! policy applied to every IPv4 packet that carries options, outer, inner or transit
//! (docs/behaviour.md §6).

use crate::wire::ipv4::{OPTION_END, OPTION_NOP};
use crate::wire::{ipv4, Ipv4Header};

use super::verdict::DropReason;

/// Loose source and record route (RFC 791).
pub const OPTION_LSRR: u8 = 131;
/// Strict source and record route (RFC 791).
pub const OPTION_SSRR: u8 = 137;

/// What happens to an IPv4 packet with options: the config file's `ipv4_options`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Ipv4OptionsPolicy {
    /// Dropped as `ipv4_options`: an edge facing DDoS traffic has no use for them.
    #[default]
    Drop,
    /// Forwarded unchanged, except source routes, which are always dropped (RFC 7126).
    Forward,
}

/// One option of a list: its type and its length (1 for end-of-list and no-operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv4Option {
    pub kind: u8,
    pub len: usize,
}

/// The option starting at `at` in `options`, `None` at the end of the list (its end, or an
/// end-of-list option); `Ipv4BadOptions` if its length is below 2 or runs past the list.
#[inline]
pub(crate) fn next_option(options: &[u8], at: usize) -> Result<Option<Ipv4Option>, DropReason> {
    let Some(&kind) = options.get(at) else {
        return Ok(None);
    };
    let len = match kind {
        OPTION_END => return Ok(None),
        OPTION_NOP => 1,
        _ => {
            let n = usize::from(*options.get(at + 1).ok_or(DropReason::Ipv4BadOptions)?);
            if n < 2 || at + n > options.len() {
                return Err(DropReason::Ipv4BadOptions);
            }
            n
        }
    };
    Ok(Some(Ipv4Option { kind, len }))
}

/// Applies the options policy to `packet`, a validated IPv4 packet whose header is longer than
/// 20 bytes. The options are walked in order, so the first defect decides: a malformed length
/// (`Ipv4BadOptions`) or a source route (`Ipv4SourceRoute`); a well-formed list is then
/// dropped as `Ipv4Options` unless the policy forwards it.
///
/// Out of line and cold: packets with options are rare, and the check costs the common packet
/// one compare of the header length.
#[cold]
#[inline(never)]
pub(crate) fn check(packet: &[u8], policy: Ipv4OptionsPolicy) -> Result<(), DropReason> {
    let header_len = Ipv4Header::from_prefix(packet).map_or(0, |h| h.header_len());
    let options = packet.get(ipv4::HEADER_LEN..header_len).unwrap_or(&[]);
    let mut at = 0;
    while let Some(option) = next_option(options, at)? {
        if option.kind == OPTION_LSRR || option.kind == OPTION_SSRR {
            return Err(DropReason::Ipv4SourceRoute);
        }
        at += option.len;
    }
    match policy {
        Ipv4OptionsPolicy::Drop => Err(DropReason::Ipv4Options),
        Ipv4OptionsPolicy::Forward => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 20-byte header (fields irrelevant to the walk) followed by `options`.
    fn packet(options: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; ipv4::HEADER_LEN];
        p.extend_from_slice(options);
        p[0] = 0x40 | (p.len() / 4) as u8;
        p
    }

    const FORWARD: Ipv4OptionsPolicy = Ipv4OptionsPolicy::Forward;
    const DROP: Ipv4OptionsPolicy = Ipv4OptionsPolicy::Drop;

    #[test]
    fn well_formed_lists_follow_the_policy() {
        for opts in [
            &[OPTION_NOP, OPTION_NOP, OPTION_NOP, OPTION_END][..],
            &[OPTION_END, 0xff, 0xff, 0xff], // garbage after end-of-list
            &[0x94, 4, 0, 0],                // router alert
            &[7, 7, 4, 0, 0, 0, 0, OPTION_END], // record route
            &[0x44, 8, 5, 0, 0, 0, 0, 0, OPTION_END, 0, 0, 0], // timestamp, padded
            &[0x99, 4, 1, 2],                // unknown type
        ] {
            let p = packet(opts);
            assert_eq!(check(&p, FORWARD), Ok(()), "{opts:?}");
            assert_eq!(check(&p, DROP), Err(DropReason::Ipv4Options), "{opts:?}");
        }
    }

    #[test]
    fn source_routes_are_dropped_whatever_the_policy() {
        for kind in [OPTION_LSRR, OPTION_SSRR] {
            for opts in [
                &[kind, 7, 4, 10, 0, 0, 1, OPTION_END][..],
                &[OPTION_NOP, kind, 7, 4, 10, 0, 0, 1],
            ] {
                for policy in [FORWARD, DROP] {
                    assert_eq!(
                        check(&packet(opts), policy),
                        Err(DropReason::Ipv4SourceRoute)
                    );
                }
            }
        }
    }

    #[test]
    fn malformed_lengths_are_their_own_defect() {
        for opts in [
            &[0x94, 0, 0, 0][..],                        // length 0
            &[0x94, 1, 0, 0],                            // length 1
            &[0x94, 5, 0, 0],                            // past the header
            &[OPTION_NOP, OPTION_NOP, OPTION_NOP, 0x94], // no length byte
            &[0x94, 4, 0, 0, 7, 9, 4, 0],                // second option past the header
            &[0x94, 4, 0, 0, OPTION_LSRR, 9, 0, 0],      // a source route whose length is wrong
        ] {
            for policy in [FORWARD, DROP] {
                assert_eq!(
                    check(&packet(opts), policy),
                    Err(DropReason::Ipv4BadOptions),
                    "{opts:?}"
                );
            }
        }
        // The first defect decides: a source route before a malformed option.
        assert_eq!(
            check(&packet(&[OPTION_LSRR, 3, 4, 0x94, 0, 0, 0, 0]), FORWARD),
            Err(DropReason::Ipv4SourceRoute)
        );
    }

    #[test]
    fn next_option_reports_each_option_once() {
        let opts = [OPTION_NOP, 0x94, 4, 0, 0, OPTION_END, 1, 1];
        assert_eq!(
            next_option(&opts, 0),
            Ok(Some(Ipv4Option {
                kind: OPTION_NOP,
                len: 1
            }))
        );
        assert_eq!(
            next_option(&opts, 1),
            Ok(Some(Ipv4Option { kind: 0x94, len: 4 }))
        );
        assert_eq!(next_option(&opts, 5), Ok(None));
        assert_eq!(next_option(&opts, 8), Ok(None));
    }
}
