//! Every response decoder (MID 0 is Error): the first two bytes (little-endian) pick the MID,
//! the rest is the payload. Decoding never panics; whatever decodes obeys
//! the round-trip properties of `lisafs_fuzz::codec`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lisafs_wire::Mid;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let mid = Mid(u16::from_le_bytes([data[0], data[1]]));
    lisafs_fuzz::codec::check_response(mid, &data[2..]);
});
