//! Transport headers: the 8-byte socket header and the 4-byte channel header.

use crate::types::Mid;
use crate::wire::wire_struct;

wire_struct! {
    /// Precedes every message on the socket communicator.
    pub struct SockHeader {
        /// Payload bytes after this header.
        pub payload_len: u32,
        /// Request MID, or the response's (0 for Error).
        pub mid: Mid,
    }
    pad = 2;
}

impl SockHeader {
    /// Encoded size.
    pub const LEN: usize = 8;

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..4].copy_from_slice(&self.payload_len.to_le_bytes());
        out[4..6].copy_from_slice(&self.mid.0.to_le_bytes());
        out
    }

    /// Parses a header; the padding is ignored, as gVisor does.
    pub fn from_bytes(b: &[u8; Self::LEN]) -> Self {
        Self {
            payload_len: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            mid: Mid(u16::from_le_bytes([b[4], b[5]])),
        }
    }
}

wire_struct! {
    /// Starts every datagram in a channel's packet window (offset 16).
    pub struct ChannelHeader {
        pub mid: Mid,
        /// FDs sent on the channel's FD socket for this message.
        pub num_fds: u8,
    }
    pad = 1;
}

impl ChannelHeader {
    /// Encoded size.
    pub const LEN: usize = 4;

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let m = self.mid.0.to_le_bytes();
        [m[0], m[1], self.num_fds, 0]
    }

    /// Parses a header; the padding is ignored.
    pub fn from_bytes(b: &[u8; Self::LEN]) -> Self {
        Self {
            mid: Mid(u16::from_le_bytes([b[0], b[1]])),
            num_fds: b[2],
        }
    }
}
