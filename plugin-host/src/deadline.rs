//! A hook call's CPU time, measured while a worker thread runs it.
//!
//! Calls are futures (wasmtime's async support): a call that outlives an
//! epoch tick yields to the runtime at that tick, and resumes whenever the
//! runtime polls it again, possibly on another thread. So the CPU a call used
//! is the sum over its polls (its *turns*) of the CPU the polling thread
//! spent in each. [`metered`] reads the thread's CPU clock when each turn
//! begins; the store's epoch callback, and every import, ask
//! [`Meter::used`] for the total so far. Reading the clock is a system call
//! (about 0.5 µs here), so a turn that lasted at most one tick of wall time
//! is counted in wall time when it ends (most calls are one such turn: one
//! clock read per call); a longer one reads the clock again. Estimating the
//! start instead could be fooled by a guest that does a long uncheckable step
//! (a large argument copied by an import, one huge `memory.fill`) right
//! before a check. A call preempted on a busy machine for longer than a tick
//! is not charged for the time it waited for a CPU.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::budget::now_ns;
use crate::runtime::EPOCH_TICK;

/// The CPU time of one call, shared by the future that polls it and the
/// store's epoch callback (both run on the polling thread, one after the other).
#[derive(Debug, Default)]
pub(crate) struct Meter {
    /// CPU of the finished turns, in nanoseconds.
    done: AtomicU64,
    /// When the current turn began (`now_ns`).
    turn_wall: AtomicU64,
    /// The thread's CPU clock when the current turn began, in nanoseconds.
    turn_cpu: AtomicU64,
}

impl Meter {
    /// Starts a new call: nothing used yet.
    pub fn reset(&self) {
        self.done.store(0, Ordering::Relaxed);
    }

    /// A poll begins.
    fn enter(&self) {
        self.turn_cpu
            .store(thread_cpu_time().as_nanos() as u64, Ordering::Relaxed);
        self.turn_wall
            .store(now_ns(Instant::now()), Ordering::Relaxed);
    }

    /// A poll ended: adds its turn to the total (in wall time when it was
    /// short, see the module docs).
    fn exit(&self) {
        let wall = now_ns(Instant::now()).saturating_sub(self.turn_wall.load(Ordering::Relaxed));
        let used = if wall <= EPOCH_TICK.as_nanos() as u64 {
            wall
        } else {
            (thread_cpu_time().as_nanos() as u64)
                .saturating_sub(self.turn_cpu.load(Ordering::Relaxed))
        };
        self.done.fetch_add(used, Ordering::Relaxed);
    }

    /// CPU the call has used, the running turn included; called from inside
    /// a poll. `cpu_now` reads the thread's CPU clock.
    pub fn used(&self, cpu_now: impl FnOnce() -> Duration) -> Duration {
        let turn =
            (cpu_now().as_nanos() as u64).saturating_sub(self.turn_cpu.load(Ordering::Relaxed));
        self.total() + Duration::from_nanos(turn)
    }

    /// Whether the current turn began more than `d` ago (wall time: cheap).
    pub fn turn_longer_than(&self, now: Instant, d: Duration) -> bool {
        now_ns(now).saturating_sub(self.turn_wall.load(Ordering::Relaxed)) > d.as_nanos() as u64
    }

    /// CPU of the finished turns (the whole call once it returned).
    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.done.load(Ordering::Relaxed))
    }
}

/// Polls `fut` to completion, recording each poll as a turn on `meter`.
pub(crate) async fn metered<F: Future>(meter: &Meter, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        meter.enter();
        let polled = fut.as_mut().poll(cx);
        meter.exit();
        polled
    })
    .await
}

/// When a call must stop, in CPU time and (for a call starved of CPU) in wall time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// CPU the call may use.
    pub cpu: Duration,
    /// Wall-clock instant after which the call stops however little it ran.
    pub wall_cap: Instant,
    /// `cpu` is what was left of the request's budget, not the binding's timeout.
    pub from_request: bool,
}

impl Deadline {
    /// A call starting now, allowed `cpu` of CPU time; its wall cap is 4×
    /// that, at least 50 ms more.
    pub fn start(cpu: Duration, from_request: bool) -> Self {
        Deadline {
            cpu,
            wall_cap: Instant::now() + (cpu * 4).max(cpu + Duration::from_millis(50)),
            from_request,
        }
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
    fn the_running_turn_counts_from_its_start() {
        let m = Meter::default();
        m.done.store((3 * MS).as_nanos() as u64, Ordering::Relaxed);
        m.turn_cpu
            .store((20 * MS).as_nanos() as u64, Ordering::Relaxed);
        assert_eq!(m.used(|| 22 * MS), 5 * MS);
    }

    #[test]
    fn a_turn_is_long_once_its_wall_time_passes() {
        let m = Meter::default();
        let t0 = Instant::now();
        m.turn_wall.store(now_ns(t0), Ordering::Relaxed);
        assert!(!m.turn_longer_than(t0 + MS / 2, MS));
        assert!(m.turn_longer_than(t0 + 2 * MS, MS));
    }

    #[test]
    fn metered_polls_are_turns() {
        let m = Meter::default();
        let spin = |d: Duration| {
            let until = thread_cpu_time() + d;
            while thread_cpu_time() < until {}
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(metered(&m, async {
            spin(2 * MS);
            tokio::task::yield_now().await;
            spin(2 * MS);
        }));
        let total = m.total();
        assert!(total >= 4 * MS, "{total:?}");
        assert!(total < 40 * MS, "{total:?}");
    }

    #[test]
    fn the_wall_cap_is_generous_for_a_starved_call() {
        let before = Instant::now();
        let d = Deadline::start(5 * MS, false);
        assert!(d.wall_cap >= before + 55 * MS);
        let d = Deadline::start(100 * MS, false);
        assert!(d.wall_cap >= before + 400 * MS);
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
