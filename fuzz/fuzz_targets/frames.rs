//! Transport framing: byte 0 chooses the socket stream (even; bits 1.. pick
//! the payload limit) or a flipcall channel datagram (odd; then a u32
//! announced length and the datagram). See `lisafs_fuzz::frames`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lisafs_fuzz::frames::run(data);
});
