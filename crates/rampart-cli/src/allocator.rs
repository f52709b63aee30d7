//! The process's memory: the global allocator, and how memory freed after a burst goes back to
//! the kernel.
//!
//! Why: a gateway's memory follows its connections. Opening 10,000 keep-alive connections at
//! once holds hyper's buffers (16 KiB each) until the connections go idle and are parked
//! (`server/keep_alive.rs`); then the buffers are freed, but the memory stayed in the process,
//! and grew back by itself: measured with `bench/run`'s idle group, 40 to 118 MiB held by the
//! same 10,000 parked connections, depending on when it was read (docs/benchmarks.md, "Issue 10,
//! tenth round"). Two causes, one fix each:
//!
//! - Transparent huge pages. mimalloc asks for them on its arenas (`MADV_HUGEPAGE`), and the
//!   kernel's `khugepaged` then gathers a 2 MiB region holding a single live 4 KiB page into a
//!   whole huge page, every 10 s, until most of what the burst touched is resident again (+10 MiB
//!   every 10 s, to 150 MiB of huge pages). [`keep_huge_pages_off`] turns them off for the
//!   process, as Redis does for the same reason (its `disable-thp`).
//! - Freed memory kept. mimalloc returns freed pages to the kernel only when a later free on the
//!   same thread finds the purge delay expired; a worker that goes idle after the burst frees
//!   nothing more, so its pages stay resident. [`release_when_idle`] runs on each runtime worker
//!   as it parks (goes idle) and, at most once per [`RELEASE_EVERY`], has mimalloc free and purge
//!   what it no longer uses: a busy worker never parks and pays nothing; one that parks after
//!   every request pays one clock read per park.

use std::cell::Cell;
use std::time::{Duration, Instant};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often, at most, an idle worker hands freed memory back (as the tcmalloc-based Envoy's
/// `memory_release_interval` does). Shorter purges pages a busy period would reuse; longer
/// leaves a burst's memory resident for longer.
pub(crate) const RELEASE_EVERY: Duration = Duration::from_secs(1);

/// Turns transparent huge pages off for the whole process (every thread, and memory already
/// mapped). Linux only; an error (a kernel without the call) leaves them as the system has them.
pub(crate) fn keep_huge_pages_off() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only, touches no memory of ours and
        // sets one flag of the process (prctl(2)).
        #[allow(unsafe_code)]
        let done = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if done != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

thread_local! {
    /// When this worker last handed memory back.
    static RELEASED_AT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// For tokio's `on_thread_park`: hands the worker's freed memory back to the kernel, at most once
/// per [`RELEASE_EVERY`].
pub(crate) fn release_when_idle() {
    let now = Instant::now();
    let due = RELEASED_AT.with(|at| match at.get() {
        Some(last) if now.duration_since(last) < RELEASE_EVERY => false,
        _ => {
            at.set(Some(now));
            true
        }
    });
    if due {
        release_now();
    }
}

/// Frees the pages this thread's heap no longer uses and returns every freed page of the process
/// to the kernel, without waiting for mimalloc's purge delay.
fn release_now() {
    #[cfg(feature = "mimalloc")]
    {
        // SAFETY: mi_collect has no preconditions: it walks the calling thread's own heap and the
        // process's arenas under mimalloc's own synchronisation (mimalloc.h).
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_collect(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident bytes of this process (`/proc/self/statm`, in pages of 4 KiB).
    #[cfg(all(target_os = "linux", feature = "mimalloc"))]
    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|field| field.parse().ok())
            .expect("resident pages");
        pages * 4096
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_are_off_for_the_process_once_turned_off() {
        keep_huge_pages_off().expect("prctl");
        // SAFETY: as in `keep_huge_pages_off`; PR_GET_THP_DISABLE only reads the flag.
        #[allow(unsafe_code)]
        let off = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(off, 1);
    }

    #[cfg(all(target_os = "linux", feature = "mimalloc"))]
    #[test]
    fn memory_freed_after_a_burst_goes_back_to_the_kernel_when_the_worker_is_idle() {
        const BURST: usize = 64 << 20;
        // A burst of small blocks, as connections' buffers are, every page touched, then freed.
        let blocks: Vec<Box<[u8]>> = (0..BURST / 4096)
            .map(|_| vec![1; 4096].into_boxed_slice())
            .collect();
        let held = resident_bytes();
        drop(blocks);
        RELEASED_AT.with(|at| at.set(None));
        release_when_idle();
        let released = resident_bytes();
        // Without the release, mimalloc keeps the whole burst resident until a later free on
        // this thread (measured: the 10,000 connections' buffers stayed for minutes).
        assert!(
            released < held - BURST as u64 / 2,
            "resident with the burst {held}, after its release {released}"
        );
    }

    #[test]
    fn an_idle_worker_releases_at_most_once_per_interval() {
        RELEASED_AT.with(|at| at.set(None));
        release_when_idle();
        let first = RELEASED_AT.with(Cell::get).expect("released");
        release_when_idle();
        assert_eq!(
            RELEASED_AT.with(Cell::get),
            Some(first),
            "not again so soon"
        );
        RELEASED_AT.with(|at| at.set(first.checked_sub(RELEASE_EVERY)));
        release_when_idle();
        assert!(RELEASED_AT.with(Cell::get).expect("released") >= first);
    }
}
