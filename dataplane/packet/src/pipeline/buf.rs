//! The packet buffer the pipeline rewrites: the operations of an `rte_mbuf` that header
//! rewriting needs (grow at the front into the headroom, cut at the front or the back), as a
//! trait so the same code runs over a DPDK mbuf in the worker (`dataplane::mbuf`) and over a [`VecBuf`] in tests,
//! benches and the fuzzer.

/// A single-segment packet buffer with headroom.
pub trait PacketBuf {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the packet at the front by `len` bytes of headroom and returns them (content
    /// unspecified); `None`, and no change, when the headroom is too small.
    fn prepend(&mut self, len: u16) -> Option<&mut [u8]>;
    /// Grows the packet at the end by `len` bytes of tailroom and returns them (content
    /// unspecified); `None`, and no change, when the tailroom is too small. ESP appends its
    /// trailer and ICV with it.
    fn append(&mut self, len: u16) -> Option<&mut [u8]>;
    /// Removes `len` bytes from the front; `false`, and no change, if the packet is shorter.
    fn adj(&mut self, len: u16) -> bool;
    /// Removes `len` bytes from the end; `false`, and no change, if the packet is shorter.
    fn trim(&mut self, len: u16) -> bool;

    /// Packet length.
    #[inline(always)]
    fn len(&self) -> usize {
        self.data().len()
    }

    /// Whether the packet is empty.
    #[inline]
    fn is_empty(&self) -> bool {
        self.data().is_empty()
    }
}

/// A heap buffer with configurable headroom, behaving like a one-segment mbuf: the packet is
/// `buf[start..end]`, `start` is the headroom and `buf.len() - end` the tailroom.
#[derive(Clone, PartialEq, Eq)]
pub struct VecBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl core::fmt::Debug for VecBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "VecBuf(headroom {}, len {}, tailroom {})",
            self.start,
            self.end - self.start,
            self.tailroom()
        )
    }
}

impl VecBuf {
    /// `data` behind `headroom` free bytes, no tailroom.
    pub fn new(headroom: usize, data: &[u8]) -> Self {
        Self::with_tailroom(headroom, data, 0)
    }

    /// `data` between `headroom` and `tailroom` free bytes.
    pub fn with_tailroom(headroom: usize, data: &[u8], tailroom: usize) -> Self {
        let mut buf = vec![0; headroom + data.len() + tailroom];
        buf[headroom..headroom + data.len()].copy_from_slice(data);
        VecBuf {
            buf,
            start: headroom,
            end: headroom + data.len(),
        }
    }

    /// Makes `data` the packet again, behind `headroom` bytes, reusing the allocation when it is
    /// large enough (the benches reset one buffer per packet).
    #[inline]
    pub fn reset(&mut self, headroom: usize, data: &[u8]) {
        let end = headroom + data.len();
        if end > self.buf.len() {
            self.buf.resize(end, 0);
        }
        self.buf[headroom..end].copy_from_slice(data);
        self.start = headroom;
        self.end = end;
    }

    /// Free bytes before the packet.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Free bytes after the packet.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.end
    }

    /// Headroom + packet + tailroom: constant over the buffer's life.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Grows the packet at the end by `len` bytes of tailroom (zeroed) and returns them.
    pub fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        if self.tailroom() < len {
            return None;
        }
        let old = self.end;
        self.end += len;
        let tail = &mut self.buf[old..self.end];
        tail.fill(0);
        Some(tail)
    }
}

impl PacketBuf for VecBuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    #[inline(always)]
    fn prepend(&mut self, len: u16) -> Option<&mut [u8]> {
        let len = usize::from(len);
        if len > self.start {
            return None;
        }
        self.start -= len;
        Some(&mut self.buf[self.start..self.start + len])
    }

    #[inline(always)]
    fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        VecBuf::append(self, usize::from(len))
    }

    #[inline(always)]
    fn adj(&mut self, len: u16) -> bool {
        let len = usize::from(len);
        if len > self.end - self.start {
            return false;
        }
        self.start += len;
        true
    }

    #[inline(always)]
    fn trim(&mut self, len: u16) -> bool {
        let len = usize::from(len);
        if len > self.end - self.start {
            return false;
        }
        self.end -= len;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vecbuf_behaves_like_an_mbuf() {
        let mut b = VecBuf::with_tailroom(4, &[1, 2, 3], 2);
        assert_eq!(b.data(), &[1, 2, 3]);
        assert_eq!((b.headroom(), b.tailroom(), b.capacity()), (4, 2, 9));
        assert!(b.prepend(5).is_none());
        b.prepend(2).unwrap().copy_from_slice(&[8, 9]);
        assert_eq!(b.data(), &[8, 9, 1, 2, 3]);
        assert!(!b.adj(6));
        assert!(b.adj(3));
        assert_eq!(b.data(), &[2, 3]);
        assert!(!b.trim(3));
        assert!(b.trim(1));
        assert_eq!(b.data(), &[2]);
        assert_eq!(b.append(2).unwrap(), &[0, 0]);
        assert_eq!(b.len(), 3);
        assert_eq!(b.headroom() + b.len() + b.tailroom(), b.capacity());
        b.reset(1, &[7; 20]);
        assert_eq!((b.headroom(), b.len()), (1, 20));
    }
}
