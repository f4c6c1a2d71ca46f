//! A hook call's deadline, in CPU time, checked on epoch ticks.
//!
//! The deadline counts the CPU time the worker thread spends in the call, not
//! wall time, so a call preempted on a busy machine is not failed for time it
//! did not run. Reading a thread's CPU clock is a system call, too dear to pay
//! on every call, so it is read only when a call outlives an epoch tick: the
//! first check records the baseline, and later checks measure against it.
//! Most calls end before any tick and never read the clock.
//!
//! The CPU a call used before its first check is not known; it is taken to be
//! the wall time since the start, but at most one tick. A running thread
//! reaches its first check within a tick of the start, and a thread that was
//! preempted before it ran at most that tick's worth before the preemption,
//! so the estimate is off by less than a tick, whereas counting all the wall
//! time would fail calls that merely waited for a CPU. A wall-clock cap stops
//! a call that is starved of CPU for long.

use std::time::{Duration, Instant};

use crate::runtime::EPOCH_TICK;

/// The clock of one hook call.
#[derive(Debug, Clone)]
pub(crate) struct CallClock {
    timeout: Duration,
    started: Instant,
    wall_cap: Instant,
    /// The thread's CPU time when the call started, once a tick measured it.
    cpu_start: Option<Duration>,
}

impl CallClock {
    /// A call starting now, allowed `timeout` of CPU time.
    pub fn start(timeout: Duration) -> Self {
        let started = Instant::now();
        CallClock {
            timeout,
            started,
            wall_cap: started + (timeout * 4).max(timeout + Duration::from_millis(50)),
            cpu_start: None,
        }
    }

    /// Epoch ticks until the first check.
    pub const FIRST_CHECK: u64 = 1;

    /// An epoch tick reached the call's deadline: `None` to stop the call, or
    /// the number of ticks until the next check. `cpu_now` reads the thread's
    /// CPU clock.
    pub fn on_tick(&mut self, now: Instant, cpu_now: impl FnOnce() -> Duration) -> Option<u64> {
        let cpu = cpu_now();
        let cpu_start = *self.cpu_start.get_or_insert_with(|| {
            let before_first_check = now.saturating_duration_since(self.started).min(EPOCH_TICK);
            cpu.saturating_sub(before_first_check)
        });
        let used = cpu.saturating_sub(cpu_start);
        if used >= self.timeout || now >= self.wall_cap {
            return None;
        }
        let left = self.timeout - used;
        Some((left.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).max(1))
    }
}

/// CPU time this thread has used.
pub(crate) fn thread_cpu_time() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_running_call_is_stopped_once_it_used_its_cpu_time() {
        let mut clock = CallClock::start(5 * MS);
        let t0 = clock.started;
        // First tick 0.4 ms in: baseline is CPU now minus the wall time so far.
        let next = clock.on_tick(t0 + MS * 2 / 5, || 100 * MS + MS * 2 / 5);
        assert_eq!(next, Some(5), "4.6 ms left: check again in 5 ticks");
        // Running all along: 5 ms of CPU at 5 ms.
        assert_eq!(clock.on_tick(t0 + 5 * MS, || 105 * MS), None);
    }

    #[test]
    fn a_preempted_call_gets_more_wall_time() {
        let mut clock = CallClock::start(5 * MS);
        let t0 = clock.started;
        assert!(clock.on_tick(t0 + MS / 2, || 10 * MS + MS / 2).is_some());
        // 6 ms later the thread has run only 2 ms of it.
        let next = clock.on_tick(t0 + 6 * MS, || 12 * MS + MS / 2);
        assert_eq!(next, Some(3), "2.5 ms used, 2.5 ms left");
        assert_eq!(clock.on_tick(t0 + 9 * MS, || 15 * MS + MS / 2), None);
    }

    #[test]
    fn waiting_for_a_cpu_before_the_first_check_is_not_charged() {
        let mut clock = CallClock::start(5 * MS);
        let t0 = clock.started;
        // Preempted right after the start: the first check comes 8 ms later.
        let next = clock.on_tick(t0 + 8 * MS, || 50 * MS);
        assert_eq!(next, Some(4), "charged one tick, not 8 ms");
        assert_eq!(clock.on_tick(t0 + 12 * MS, || 54 * MS), None);
    }

    #[test]
    fn a_starved_call_is_stopped_at_the_wall_cap() {
        let mut clock = CallClock::start(5 * MS);
        let t0 = clock.started;
        assert!(clock.on_tick(t0 + MS, || MS).is_some());
        // 5 ms timeout: the cap is 55 ms of wall time, however little CPU ran.
        assert!(clock.on_tick(t0 + 54 * MS, || 2 * MS).is_some());
        assert_eq!(clock.on_tick(t0 + 55 * MS, || 2 * MS), None);
    }

    #[test]
    fn a_timeout_shorter_than_the_first_tick_stops_there() {
        let mut clock = CallClock::start(MS / 2);
        let t0 = clock.started;
        assert_eq!(clock.on_tick(t0 + MS, || 7 * MS), None);
    }

    #[test]
    fn the_thread_cpu_clock_advances_while_working() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        while thread_cpu_time() < before + MS {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(thread_cpu_time() - before >= MS);
    }
}
