//! IPv4 fragmentation of an inner packet that exceeds a tunnel's MTU (DF clear, or a `clear_df`
//! tunnel), before encapsulation (docs/behaviour.md §6), as pure functions over byte slices: the
//! worker turns a [`Verdict::NeedsFragmentation`](super::Verdict::NeedsFragmentation) into new
//! buffers with [`FragmentPlan`] and [`write_fragment`], then [`encapsulate`](super::encapsulate)s
//! each.
//!
//! Every fragment but the last carries a multiple of 8 payload bytes, as many as fit the MTU
//! under the first fragment's header (later headers are never longer: they keep only the options
//! whose copied flag is set, RFC 791). Fragments have DF clear, offsets relative to the original
//! datagram (a fragment can be fragmented again), and MF set except on the last fragment of a
//! packet that was itself the last (or only) fragment.

use crate::wire::ipv4::{FLAG_MF, OPTION_COPIED};
use crate::wire::{checksum, ipv4, Error, Ipv4Header, Ipv4Packet};

use super::options::next_option;
use super::verdict::DropReason;

/// One fragment of a plan: a range of the original payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of this fragment's data in the original packet's payload.
    pub offset: usize,
    /// Payload bytes in this fragment.
    pub len: usize,
    /// The first fragment (carries every option).
    pub first: bool,
    /// The last fragment.
    pub last: bool,
}

/// The fragments an IPv4 packet is cut into for an MTU; an iterator of [`Fragment`].
#[derive(Debug, Clone)]
pub struct FragmentPlan {
    payload_len: usize,
    chunk: usize,
    next: usize,
    done: bool,
}

impl FragmentPlan {
    /// Plans the fragments of `packet` (a valid IPv4 packet from its first byte) so that each is
    /// at most `mtu` bytes. `MtuExceeded` if the MTU leaves no room for 8 payload bytes.
    pub fn new(packet: &[u8], mtu: u16) -> Result<Self, DropReason> {
        let ip = Ipv4Packet::new_checked(packet)?;
        let chunk = usize::from(mtu).saturating_sub(ip.header_len()) & !7;
        if chunk == 0 {
            return Err(DropReason::MtuExceeded);
        }
        Ok(FragmentPlan {
            payload_len: ip.payload().len(),
            chunk,
            next: 0,
            done: false,
        })
    }

    /// Payload bytes per fragment (all but the last).
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// Number of fragments.
    pub fn fragments(&self) -> usize {
        self.payload_len.div_ceil(self.chunk).max(1)
    }
}

impl Iterator for FragmentPlan {
    type Item = Fragment;

    fn next(&mut self) -> Option<Fragment> {
        if self.done {
            return None;
        }
        let offset = self.next;
        let len = self.chunk.min(self.payload_len - offset);
        let last = offset + len >= self.payload_len;
        self.next += len;
        self.done = last;
        Some(Fragment {
            offset,
            len,
            first: offset == 0,
            last,
        })
    }
}

/// Writes into `out` the options of a non-first fragment: those with the copied flag, padded
/// with end-of-list to a multiple of 4. Returns their length.
fn copied_options(
    options: &[u8],
    out: &mut [u8; ipv4::MAX_HEADER_LEN - ipv4::HEADER_LEN],
) -> Result<usize, DropReason> {
    let mut at = 0;
    let mut len = 0;
    while let Some(option) = next_option(options, at)? {
        if option.kind & OPTION_COPIED != 0 {
            let bytes = options
                .get(at..at + option.len)
                .ok_or(DropReason::Ipv4BadOptions)?;
            out.get_mut(len..len + option.len)
                .ok_or(DropReason::Ipv4BadOptions)?
                .copy_from_slice(bytes);
            len += option.len;
        }
        at += option.len;
    }
    let padded = len.next_multiple_of(4);
    if let Some(pad) = out.get_mut(len..padded) {
        pad.fill(0);
    }
    Ok(padded)
}

/// Checks that the options of `packet` (a valid IPv4 packet) are well formed enough for
/// [`write_fragment`], so that a packet the pipeline hands out for fragmentation never fails
/// halfway through its fragments.
pub(crate) fn check_options(packet: &[u8]) -> Result<(), DropReason> {
    let ip = Ipv4Packet::new_checked(packet)?;
    let mut scratch = [0u8; ipv4::MAX_HEADER_LEN - ipv4::HEADER_LEN];
    copied_options(ip.options(), &mut scratch).map(|_| ())
}

/// Writes fragment `fragment` of `packet` (the IPv4 packet the plan was made for) into `out`:
/// header (all options on the first fragment, the copied ones on the others), total length,
/// MF, offset, DF clear, checksum, then the payload range. Returns the fragment's length.
pub fn write_fragment(
    packet: &[u8],
    fragment: &Fragment,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let ip = Ipv4Packet::new_checked(packet)?;
    let data = ip
        .payload()
        .get(fragment.offset..fragment.offset + fragment.len)
        .ok_or(Error::BufferTooSmall)?;
    let header_len = if fragment.first {
        ip.header_len()
    } else {
        let mut options = [0u8; ipv4::MAX_HEADER_LEN - ipv4::HEADER_LEN];
        let n = copied_options(ip.options(), &mut options)?;
        if let Some(dst) = out.get_mut(ipv4::HEADER_LEN..ipv4::HEADER_LEN + n) {
            dst.copy_from_slice(&options[..n]);
        }
        ipv4::HEADER_LEN + n
    };
    let total = header_len + fragment.len;
    let offset = usize::from(ip.frag_offset()) + fragment.offset;
    if total > usize::from(u16::MAX) || offset + fragment.len > usize::from(u16::MAX) {
        return Err(Error::Ipv4BadFragmentOffset.into());
    }
    let out = out.get_mut(..total).ok_or(Error::BufferTooSmall)?;
    let copied = if fragment.first {
        header_len
    } else {
        ipv4::HEADER_LEN
    };
    out[..copied].copy_from_slice(&ip.header()[..copied]);
    let mut flags = (offset / 8) as u16;
    if !fragment.last || ip.more_frags() {
        flags |= FLAG_MF;
    }
    let mut h = Ipv4Header::from_prefix_mut(out).ok_or(Error::BufferTooSmall)?;
    h.set_header_len(header_len);
    h.set_total_len(total as u16);
    h.set_flags_offset(flags);
    h.set_checksum(0);
    let ck = checksum::checksum(&out[..header_len]);
    Ipv4Header::from_prefix_mut(out)
        .ok_or(Error::BufferTooSmall)?
        .set_checksum(ck);
    out[header_len..].copy_from_slice(data);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_options_keep_only_copied_ones() {
        // NOP, record route (not copied, len 7), loose source route (copied, len 7), EOL.
        let options = [
            1, 7, 7, 4, 0, 0, 0, 0, 0x83, 7, 4, 1, 2, 3, 4, 0, 0, 0, 0, 0,
        ];
        let mut out = [0xffu8; 40];
        let n = copied_options(&options, &mut out).unwrap();
        assert_eq!(n, 8);
        assert_eq!(&out[..8], &[0x83, 7, 4, 1, 2, 3, 4, 0]);
        assert_eq!(
            copied_options(&[0x83, 1], &mut out),
            Err(DropReason::Ipv4BadOptions)
        );
        assert_eq!(
            copied_options(&[0x83, 9, 0, 0], &mut out),
            Err(DropReason::Ipv4BadOptions)
        );
        assert_eq!(
            copied_options(&[7], &mut out),
            Err(DropReason::Ipv4BadOptions)
        );
    }
}
