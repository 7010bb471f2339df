//! Bounds-checked cursors over byte slices. All integers are little-endian
//! (gVisor marshals in host order and only builds for little-endian targets).

use crate::error::{DecodeError, EncodeError};

/// A read cursor. Every accessor checks the remaining length first, so a
/// hostile buffer can only ever produce a [`DecodeError`].
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `buf`.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not yet consumed.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The unconsumed tail.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Fails unless at least `n` bytes remain.
    #[inline]
    pub fn need(&self, what: &'static str, n: usize) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated {
                what,
                needed: n,
                remaining: self.buf.len(),
            });
        }
        Ok(())
    }

    /// Consumes `n` bytes.
    #[inline]
    pub fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        self.need(what, n)?;
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        match self.buf.split_first_chunk::<N>() {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(*head)
            }
            None => Err(DecodeError::Truncated {
                what,
                needed: N,
                remaining: self.buf.len(),
            }),
        }
    }

    /// Consumes a u8.
    #[inline]
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    /// Consumes a little-endian u16.
    #[inline]
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.array(what).map(u16::from_le_bytes)
    }
    /// Consumes a little-endian u32.
    #[inline]
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.array(what).map(u32::from_le_bytes)
    }
    /// Consumes a little-endian u64.
    #[inline]
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        self.array(what).map(u64::from_le_bytes)
    }
    /// Consumes a little-endian i32.
    #[inline]
    pub fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        self.array(what).map(i32::from_le_bytes)
    }
    /// Consumes a little-endian i64.
    #[inline]
    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        self.array(what).map(i64::from_le_bytes)
    }
}

/// A write cursor over a caller-provided buffer. Never allocates.
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    /// A cursor at the start of `buf`.
    #[inline(always)]
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes written so far.
    #[inline(always)]
    pub fn written(&self) -> usize {
        self.pos
    }

    /// Appends `src`.
    #[inline(always)]
    pub fn put(&mut self, src: &[u8]) -> Result<(), EncodeError> {
        let end = self.pos + src.len();
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => {
                dst.copy_from_slice(src);
                self.pos = end;
                Ok(())
            }
            None => Err(EncodeError::BufferTooSmall {
                needed: end,
                available: self.buf.len(),
            }),
        }
    }

    /// Appends `n` zero bytes (padding).
    #[inline(always)]
    pub fn zeros(&mut self, n: usize) -> Result<(), EncodeError> {
        let end = self.pos + n;
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => {
                dst.fill(0);
                self.pos = end;
                Ok(())
            }
            None => Err(EncodeError::BufferTooSmall {
                needed: end,
                available: self.buf.len(),
            }),
        }
    }

    /// Appends a u8.
    #[inline(always)]
    pub fn u8(&mut self, v: u8) -> Result<(), EncodeError> {
        self.put(&[v])
    }
    /// Appends a little-endian u16.
    #[inline(always)]
    pub fn u16(&mut self, v: u16) -> Result<(), EncodeError> {
        self.put(&v.to_le_bytes())
    }
    /// Appends a little-endian u32.
    #[inline(always)]
    pub fn u32(&mut self, v: u32) -> Result<(), EncodeError> {
        self.put(&v.to_le_bytes())
    }
    /// Appends a little-endian u64.
    #[inline(always)]
    pub fn u64(&mut self, v: u64) -> Result<(), EncodeError> {
        self.put(&v.to_le_bytes())
    }
    /// Appends a little-endian i32.
    #[inline(always)]
    pub fn i32(&mut self, v: i32) -> Result<(), EncodeError> {
        self.put(&v.to_le_bytes())
    }
    /// Appends a little-endian i64.
    #[inline(always)]
    pub fn i64(&mut self, v: i64) -> Result<(), EncodeError> {
        self.put(&v.to_le_bytes())
    }
}
