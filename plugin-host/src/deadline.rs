//! A hook call's CPU time, measured while a worker thread runs it.
//!
//! Calls are futures (wasmtime's async support): a call that outlives an
//! epoch tick yields to the runtime at that tick, and resumes whenever the
//! runtime polls it again, possibly on another thread. So the CPU a call used
//! is the sum over its polls (its *segments*) of the CPU the polling thread
//! spent in each. [`metered`] marks each segment's start and end on a
//! [`Meter`]; the store's epoch callback asks [`Meter::used`] at each tick.
//!
//! Reading a thread's CPU clock is a system call, too dear to pay on every
//! call, so a segment is measured in wall time unless a tick falls inside it:
//! the first tick of a segment reads the thread's CPU clock and takes the CPU
//! used before it to be the wall time since the segment began, but at most one
//! tick (a thread that was preempted before it ran had run at most that long
//! before the preemption), and the segment's end reads the clock again. Most
//! calls end before any tick and never read the clock; a call preempted on a
//! busy machine is not charged for the time it waited for a CPU.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::budget::now_ns;
use crate::runtime::EPOCH_TICK;

/// The CPU time of one call, shared by the future that polls it and the
/// store's epoch callback (both run on the polling thread, one after the other).
#[derive(Debug, Default)]
pub(crate) struct Meter {
    /// CPU of the finished segments, in nanoseconds.
    done: AtomicU64,
    /// When the current segment began (`now_ns`).
    segment_wall: AtomicU64,
    /// The thread's CPU clock at the start of the current segment, plus one,
    /// once a tick measured it (0: not measured).
    segment_cpu: AtomicU64,
}

impl Meter {
    /// Starts a new call: nothing used yet.
    pub fn reset(&self) {
        self.done.store(0, Ordering::Relaxed);
        self.segment_cpu.store(0, Ordering::Relaxed);
    }

    /// A poll begins.
    fn enter(&self) {
        self.segment_wall
            .store(now_ns(Instant::now()), Ordering::Relaxed);
        self.segment_cpu.store(0, Ordering::Relaxed);
    }

    /// A poll ended: adds its segment to the total.
    fn exit(&self) {
        let used = match self.segment_cpu.swap(0, Ordering::Relaxed) {
            0 => Duration::from_nanos(
                now_ns(Instant::now()).saturating_sub(self.segment_wall.load(Ordering::Relaxed)),
            ),
            start => thread_cpu_time().saturating_sub(Duration::from_nanos(start - 1)),
        };
        self.done
            .fetch_add(used.as_nanos() as u64, Ordering::Relaxed);
    }

    /// CPU the call has used, the running segment included; called at a tick
    /// from inside a poll. `cpu_now` reads the thread's CPU clock.
    pub fn used(&self, now: Instant, cpu_now: impl FnOnce() -> Duration) -> Duration {
        let cpu = cpu_now();
        let start = match self.segment_cpu.load(Ordering::Relaxed) {
            0 => {
                let wall = Duration::from_nanos(
                    now_ns(now).saturating_sub(self.segment_wall.load(Ordering::Relaxed)),
                );
                let start = cpu.saturating_sub(wall.min(EPOCH_TICK));
                self.segment_cpu
                    .store(start.as_nanos() as u64 + 1, Ordering::Relaxed);
                start
            }
            s => Duration::from_nanos(s - 1),
        };
        self.total() + cpu.saturating_sub(start)
    }

    /// CPU of the finished segments (the whole call once it returned).
    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.done.load(Ordering::Relaxed))
    }
}

/// Polls `fut` to completion, recording each poll as a segment on `meter`.
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
}

impl Deadline {
    /// A call starting now, allowed `cpu` of CPU time; its wall cap is 4×
    /// that, at least 50 ms more.
    pub fn start(cpu: Duration) -> Self {
        Deadline {
            cpu,
            wall_cap: Instant::now() + (cpu * 4).max(cpu + Duration::from_millis(50)),
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

    /// A meter whose current segment began at `t0`.
    fn meter_at(t0: Instant) -> Meter {
        let m = Meter::default();
        m.segment_wall.store(now_ns(t0), Ordering::Relaxed);
        m
    }

    #[test]
    fn a_tick_counts_the_segment_in_cpu_from_an_estimated_start() {
        let t0 = Instant::now();
        let m = meter_at(t0);
        // First tick 0.4 ms in, thread CPU at 100.4 ms: start taken as 100 ms.
        assert_eq!(
            m.used(t0 + MS * 2 / 5, || 100 * MS + MS * 2 / 5),
            MS * 2 / 5
        );
        // Running all along: 5 ms later, 5 ms used.
        assert_eq!(m.used(t0 + 5 * MS, || 105 * MS), 5 * MS);
    }

    #[test]
    fn waiting_for_a_cpu_before_the_first_tick_is_not_charged() {
        let t0 = Instant::now();
        let m = meter_at(t0);
        // Preempted right after the start: the first tick comes 8 ms later.
        assert_eq!(m.used(t0 + 8 * MS, || 50 * MS), MS, "one tick, not 8 ms");
    }

    #[test]
    fn finished_segments_add_up() {
        let m = Meter::default();
        m.done.store((3 * MS).as_nanos() as u64, Ordering::Relaxed);
        let t0 = Instant::now();
        m.segment_wall.store(now_ns(t0), Ordering::Relaxed);
        assert_eq!(m.used(t0 + MS / 2, || 20 * MS), 3 * MS + MS / 2);
    }

    #[test]
    fn metered_polls_are_segments() {
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
        let d = Deadline::start(5 * MS);
        assert!(d.wall_cap >= before + 55 * MS);
        let d = Deadline::start(100 * MS);
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
