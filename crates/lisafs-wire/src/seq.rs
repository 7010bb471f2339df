//! Length-prefixed arrays (`u16 count` then the items back to back).
//!
//! A decoded [`Seq`] is a validated view of the wire bytes: decoding checks
//! the count against the bytes before looking at any item, validates every
//! item once, and allocates nothing. Iterating re-reads items from the
//! validated bytes. To encode, build one from a slice of items.

use core::fmt;

use crate::buf::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};
use crate::types::{Dirent64, FdId, Inode, Mid, Statx};
use crate::wire::Wire;

/// A `u16`-counted array of `T`.
pub enum Seq<'a, T> {
    /// Decoded from the wire: `count` items validated in `bytes`.
    Encoded {
        /// Number of items.
        count: u16,
        /// Exactly the items' encodings, without the count prefix.
        bytes: &'a [u8],
    },
    /// Items to encode (or compare).
    Items(&'a [T]),
}

/// SizedStrings (`u16 count` + SizedString × count).
pub type StringArray<'a> = Seq<'a, &'a [u8]>;
/// FDIDs (`u16 count` + u64 × count, unaligned).
pub type FdArray<'a> = Seq<'a, FdId>;
/// MIDs (`u16 count` + u16 × count).
pub type MidList<'a> = Seq<'a, Mid>;
/// Inodes (`u16 count` + 152 bytes × count).
pub type Inodes<'a> = Seq<'a, Inode>;
/// Statxs (`u16 count` + 144 bytes × count).
pub type Statxs<'a> = Seq<'a, Statx>;
/// Directory entries (`u16 count` + variable entries).
pub type Dirents<'a> = Seq<'a, Dirent64<'a>>;

impl<'a, T> Seq<'a, T> {
    /// A sequence that encodes `items`.
    pub const fn from_items(items: &'a [T]) -> Self {
        Seq::Items(items)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        match self {
            Seq::Encoded { count, .. } => usize::from(*count),
            Seq::Items(items) => items.len(),
        }
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a, T: Wire<'a> + Copy> Seq<'a, T> {
    /// Iterates the items in order.
    pub fn iter(&self) -> SeqIter<'a, T> {
        match *self {
            Seq::Encoded { count, bytes } => SeqIter::Encoded {
                r: Reader::new(bytes),
                left: count,
            },
            Seq::Items(items) => SeqIter::Items(items.iter()),
        }
    }
}

impl<T> Clone for Seq<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Seq<'_, T> {}

impl<T> Default for Seq<'_, T> {
    fn default() -> Self {
        Seq::Items(&[])
    }
}

impl<'a, T: Wire<'a> + Copy + PartialEq> PartialEq for Seq<'a, T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}
impl<'a, T: Wire<'a> + Copy + Eq> Eq for Seq<'a, T> {}

impl<'a, T: Wire<'a> + Copy + fmt::Debug> fmt::Debug for Seq<'a, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T: Wire<'a> + Copy> IntoIterator for Seq<'a, T> {
    type Item = T;
    type IntoIter = SeqIter<'a, T>;
    fn into_iter(self) -> SeqIter<'a, T> {
        self.iter()
    }
}

/// Iterator over a [`Seq`].
pub enum SeqIter<'a, T> {
    #[doc(hidden)]
    Encoded { r: Reader<'a>, left: u16 },
    #[doc(hidden)]
    Items(core::slice::Iter<'a, T>),
}

impl<'a, T: Wire<'a> + Copy> Iterator for SeqIter<'a, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            SeqIter::Encoded { r, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                // The bytes were validated when the Seq was decoded, so this
                // cannot fail; if it somehow did, end the iteration.
                T::decode(r).ok()
            }
            SeqIter::Items(it) => it.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match self {
            SeqIter::Encoded { left, .. } => usize::from(*left),
            SeqIter::Items(it) => it.len(),
        };
        (n, Some(n))
    }
}

impl<'a, T: Wire<'a> + Copy> ExactSizeIterator for SeqIter<'a, T> {}

impl<'a, T: Wire<'a> + Copy> Wire<'a> for Seq<'a, T> {
    const MIN_LEN: usize = 2;
    const FIXED_LEN: Option<usize> = None;

    fn encoded_len(&self) -> usize {
        match self {
            Seq::Encoded { bytes, .. } => 2 + bytes.len(),
            Seq::Items(items) => match T::FIXED_LEN {
                Some(n) => 2 + n * items.len(),
                None => 2 + items.iter().map(Wire::encoded_len).sum::<usize>(),
            },
        }
    }

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            Seq::Encoded { count, bytes } => {
                w.u16(*count)?;
                if T::HAS_PADDING {
                    // Re-encode item by item so the peer's padding bytes
                    // become zeros, as for the same item decoded alone.
                    self.iter().try_for_each(|item| item.encode(w))
                } else {
                    w.put(bytes)
                }
            }
            Seq::Items(items) => {
                let count = u16::try_from(items.len())
                    .map_err(|_| EncodeError::TooManyItems { count: items.len() })?;
                w.u16(count)?;
                items.iter().try_for_each(|item| item.encode(w))
            }
        }
    }

    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let count = r.u16("array count")?;
        let n = usize::from(count);
        // Bound the count by the bytes before touching any item.
        r.need("array items", n * T::MIN_LEN)?;
        let len = match T::FIXED_LEN {
            Some(size) => n * size,
            None => {
                let mut scan = r.clone();
                for _ in 0..n {
                    T::decode(&mut scan)?;
                }
                r.remaining() - scan.remaining()
            }
        };
        let bytes = r.take("array items", len)?;
        Ok(Seq::Encoded { count, bytes })
    }
}
