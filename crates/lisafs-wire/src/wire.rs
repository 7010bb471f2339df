//! The [`Wire`] trait and its implementations for scalars and SizedString,
//! plus the `wire_struct!` macro that lays out fixed-order structs.

use crate::buf::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};

/// A value with a LISAFS wire encoding.
///
/// Decoding borrows from the input (`'a`): strings and arrays are validated
/// views, so decoding never allocates.
pub trait Wire<'a>: Sized {
    /// Smallest possible encoding in bytes. Array decoders multiply a
    /// hostile count by this before looking further, so a count can never
    /// justify more work than the buffer holds.
    const MIN_LEN: usize;
    /// `Some(n)` when every value encodes to exactly `n` bytes.
    const FIXED_LEN: Option<usize>;
    /// Whether the encoding holds padding, which decoding skips and
    /// encoding writes as zeros. A decoded array of such items cannot be
    /// re-encoded by copying its wire bytes: that would echo the peer's
    /// padding instead of writing the canonical zeros.
    const HAS_PADDING: bool = false;
    /// Exact encoded size of this value.
    fn encoded_len(&self) -> usize;
    /// Writes the encoding. Fails only on a short buffer or an unencodable
    /// value (string or array over its u16 limit).
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError>;
    /// Reads one value, consuming exactly its encoding.
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError>;

    /// Appends the encoding to `out` (allocates only to grow `out`); on
    /// failure `out` is left as it was.
    fn append_to(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.resize(start + self.encoded_len(), 0);
        let mut w = Writer::new(&mut out[start..]);
        match self.encode(&mut w) {
            Ok(()) => Ok(()),
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }
}

macro_rules! scalar_wire {
    ($($t:ty => $m:ident),* $(,)?) => {$(
        impl<'a> Wire<'a> for $t {
            const MIN_LEN: usize = core::mem::size_of::<$t>();
            const FIXED_LEN: Option<usize> = Some(core::mem::size_of::<$t>());
            #[inline]
            fn encoded_len(&self) -> usize {
                core::mem::size_of::<$t>()
            }
            #[inline(always)]
            fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                w.$m(*self)
            }
            #[inline]
            fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
                r.$m(stringify!($t))
            }
        }
    )*};
}
scalar_wire!(u8 => u8, u16 => u16, u32 => u32, u64 => u64, i32 => i32, i64 => i64);

/// SizedString: a u16 length then that many raw bytes (no terminator, no
/// encoding check; names may hold any byte, including NUL).
impl<'a> Wire<'a> for &'a [u8] {
    const MIN_LEN: usize = 2;
    const FIXED_LEN: Option<usize> = None;
    #[inline]
    fn encoded_len(&self) -> usize {
        2 + self.len()
    }
    #[inline]
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        let len = u16::try_from(self.len())
            .map_err(|_| EncodeError::StringTooLong { len: self.len() })?;
        w.u16(len)?;
        w.put(self)
    }
    #[inline]
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let len = r.u16("SizedString length")?;
        r.take("SizedString", usize::from(len))
    }
}

/// Sums `FIXED_LEN`s: `None` as soon as one member is variable.
pub(crate) const fn fixed_sum(parts: &[Option<usize>], pad: usize) -> Option<usize> {
    let mut total = pad;
    let mut i = 0;
    while i < parts.len() {
        match parts[i] {
            Some(n) => total += n,
            None => return None,
        }
        i += 1;
    }
    Some(total)
}

/// Defines a struct whose wire form is its fields in declaration order,
/// followed by `pad` zero bytes (written as zero, ignored on receipt).
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident $(<$lt:lifetime>)? {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
        $(pad = $pad:literal;)?
    ) => {
        $(#[$meta])*
        ///
        /// Fields are named as in gVisor's `message.go` and appear on the wire
        /// in this order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        #[allow(missing_docs)]
        pub struct $name $(<$lt>)? {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl<'a> $crate::wire::Wire<'a> for $name $(<$lt>)? {
            const MIN_LEN: usize =
                0 $( + <$ty as $crate::wire::Wire<'a>>::MIN_LEN )* $( + $pad )?;
            const FIXED_LEN: Option<usize> = $crate::wire::fixed_sum(
                &[$( <$ty as $crate::wire::Wire<'a>>::FIXED_LEN ),*],
                0 $( + $pad )?,
            );
            const HAS_PADDING: bool =
                false $( || <$ty as $crate::wire::Wire<'a>>::HAS_PADDING )* $( || $pad > 0 )?;
            #[inline]
            fn encoded_len(&self) -> usize {
                match <Self as $crate::wire::Wire<'a>>::FIXED_LEN {
                    Some(n) => n,
                    None => 0 $( + $crate::wire::Wire::encoded_len(&self.$field) )* $( + $pad )?,
                }
            }
            #[inline(always)]
            fn encode(&self, w: &mut $crate::buf::Writer<'_>) -> Result<(), $crate::error::EncodeError> {
                $( $crate::wire::Wire::encode(&self.$field, w)?; )*
                $( w.zeros($pad)?; )?
                Ok(())
            }
            #[inline]
            fn decode(r: &mut $crate::buf::Reader<'a>) -> Result<Self, $crate::error::DecodeError> {
                // One up-front check for the fixed part, as gVisor's
                // CheckedUnmarshal does, then field by field.
                r.need(stringify!($name), <Self as $crate::wire::Wire<'a>>::MIN_LEN)?;
                $( let $field = <$ty as $crate::wire::Wire<'a>>::decode(r)?; )*
                $( r.take("padding", $pad)?; )?
                Ok(Self { $( $field ),* })
            }
        }
    };
}
pub(crate) use wire_struct;
