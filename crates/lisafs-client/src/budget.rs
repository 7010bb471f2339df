//! How long a caller that must not block (an event-loop thread) should poll
//! for a reply before handing the wait to another thread.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Misses in a row after which the budget is skipped: a server that needs
/// the polling thread itself (a backend running on the same event loop)
/// can never answer within it ...
const MISS_STREAK: u32 = 8;
/// ... except every this many calls: a server that merely went cold (its
/// thread asleep after a slow call) answers the next probe.
const PROBE_EVERY: u32 = 4;

/// The poll budget for [`Client::start`](crate::Client::start), adapted to
/// what recent calls did: the full budget while replies come within it;
/// after [`MISS_STREAK`] misses in a row, zero (hand off at once) except
/// for a full probe every [`PROBE_EVERY`] calls; a hit restores it.
#[derive(Debug)]
pub struct SyncBudget {
    full: Duration,
    misses: AtomicU32,
    skipped: AtomicU32,
}

impl SyncBudget {
    /// A budget of at most `full` per call.
    pub const fn new(full: Duration) -> Self {
        SyncBudget {
            full,
            misses: AtomicU32::new(0),
            skipped: AtomicU32::new(0),
        }
    }

    /// The configured budget; zero means every call is handed off.
    pub fn full(&self) -> Duration {
        self.full
    }

    /// The budget for the next call.
    pub fn next(&self) -> Duration {
        if self.misses.load(Ordering::Relaxed) < MISS_STREAK {
            return self.full;
        }
        if self
            .skipped
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PROBE_EVERY)
        {
            self.full
        } else {
            Duration::ZERO
        }
    }

    /// The reply came within the budget.
    pub fn hit(&self) {
        self.misses.store(0, Ordering::Relaxed);
    }

    /// The reply did not come within the budget.
    pub fn miss(&self) {
        let _ = self
            .misses
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                Some(m.saturating_add(1))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_in_a_row_skip_the_budget_with_probes_and_a_hit_restores_it() {
        let full = Duration::from_micros(50);
        let b = SyncBudget::new(full);
        for _ in 0..MISS_STREAK {
            assert_eq!(b.next(), full);
            b.miss();
        }
        let budgets: Vec<Duration> = (0..PROBE_EVERY * 3).map(|_| b.next()).collect();
        let probes = budgets.iter().filter(|d| **d == full).count();
        assert_eq!(probes, 3, "one full probe every {PROBE_EVERY} calls");
        assert!(budgets.iter().all(|d| *d == full || d.is_zero()));
        b.hit();
        assert_eq!(b.next(), full);
    }
}
