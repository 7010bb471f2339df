//! One test per transport behaviour; the scenarios live in `common`.

mod common;

macro_rules! scenario_tests {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            common::$name();
        }
    )*};
}

scenario_tests!(
    round_trip_small,
    round_trip_large,
    donate_one_fd,
    donate_two_fds,
    extra_fds_closed,
    unwanted_fds_not_installed,
    late_fds_dropped,
    byte_by_byte,
    oversized_skipped,
    huge_claim_truncated,
    eof_cases,
    shutdown_unblocks_recv,
    send_errors,
    nonblocking_sockets,
    pipelined_frames,
    read_ahead_within_tiny_limits,
);

#[test]
fn every_scenario_has_a_test() {
    // `ALL` drives the leak test; keep it and the list above in step.
    assert_eq!(common::ALL.len(), 16);
}
