//! The process's memory: the global allocator, and how memory freed after a burst goes back to
//! the kernel.
//!
//! Why: a gateway's memory follows its connections. Opening 10,000 keep-alive connections at
//! once holds hyper's buffers (16 KiB each) until the connections go idle and are parked
//! (`server/keep_alive.rs`); then the buffers are freed, but the memory stayed in the process,
//! and grew back by itself: `bench/run`'s idle group read 39 to 118 MiB for the same 10,000
//! parked connections, depending on when it looked (docs/benchmarks.md, "Issue 10, tenth
//! round"). Two causes, one fix each:
//!
//! - Transparent huge pages. mimalloc asks for them on its arenas (`MADV_HUGEPAGE`), and the
//!   kernel's `khugepaged` then gathers a 2 MiB region holding a single live 4 KiB page into a
//!   whole huge page, every 10 s, until most of what the burst touched is resident again (+10 MiB
//!   every 10 s, to 150 MiB of huge pages). [`keep_huge_pages_off`] turns them off for the
//!   process, as Redis does for the same reason (its `disable-thp`).
//! - Freed memory kept. mimalloc returns a freed page to the kernel once it has been free for its
//!   purge delay (1 s), but only when some later free or collection runs the purge: after a burst
//!   the workers go idle, nothing runs it, and the burst's pages stay resident. The thread of
//!   [`release_in_background`] runs it once a second. It hands back only what has been free for
//!   the whole delay, as mimalloc would on a busy process, and wakes no worker. Not done: having
//!   each worker also collect its own heap as it parks (blocks another thread freed into its
//!   pages): it held 48 MiB on two cores instead of 63, but it hands the worker's empty pages,
//!   which mimalloc keeps for reuse, back to the arenas, and in two runs at 5,000 requests/s the
//!   full chain's median CPU per request was 13 % higher with it (spreads overlapping; docs/
//!   benchmarks.md, "Issue 10, tenth round").

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often the memory freed for longer than mimalloc's purge delay (1 s) is handed back.
/// Shorter only wakes the thread more often; longer leaves a burst's memory resident longer.
#[cfg(feature = "mimalloc")]
pub(crate) const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Turns transparent huge pages off for the whole process (every thread, and memory already
/// mapped). Linux only; an error (a kernel without the call) leaves them as the system has them.
pub(crate) fn keep_huge_pages_off() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let (on, unused): (libc::c_ulong, libc::c_ulong) = (1, 0);
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only (unsigned long, the unused
        // ones zero, as prctl(2) requires), touches no memory of ours and sets one flag of the
        // process.
        #[allow(unsafe_code)]
        let done = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, on, unused, unused, unused) };
        if done != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Starts the thread that hands memory freed for longer than the purge delay back to the kernel,
/// every [`RELEASE_EVERY`], for the life of the process. Without mimalloc (the system allocator),
/// nothing to do.
pub(crate) fn release_in_background() -> std::io::Result<()> {
    #[cfg(feature = "mimalloc")]
    std::thread::Builder::new()
        .name("rampart-memory".into())
        .spawn(|| {
            // SAFETY: mi_thread_init takes nothing and has no precondition; it sets up this
            // thread's heap, without which mi_collect returns before reaching the purge (this
            // thread allocates nothing of its own that would set it up).
            #[allow(unsafe_code)]
            unsafe {
                libmimalloc_sys::mi_thread_init();
            }
            loop {
                std::thread::sleep(RELEASE_EVERY);
                release_expired();
            }
        })
        .map(drop)?;
    Ok(())
}

/// Runs mimalloc's purge of the process's freed memory whose delay has expired (the arenas are
/// shared by every thread), as a free on a busy thread would.
#[cfg(feature = "mimalloc")]
fn release_expired() {
    // SAFETY: mi_collect takes no pointer and has no precondition. Not forced, it collects the
    // calling thread's heap (this thread's, empty) and purges the arenas' expired ranges under a
    // try-only guard (a second caller skips the purge rather than waiting); it calls back into
    // nothing of ours (no deferred-free hook is set).
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_collect(false);
    }
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;

    #[test]
    fn huge_pages_are_off_for_the_process_once_turned_off() {
        keep_huge_pages_off().expect("prctl");
        // SAFETY: as in `keep_huge_pages_off`; PR_GET_THP_DISABLE only reads the flag.
        #[allow(unsafe_code)]
        let off = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(off, 1);
    }

    /// Resident bytes of this process (`VmRSS` of `/proc/self/status`).
    #[cfg(feature = "mimalloc")]
    fn resident_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kib * 1024
    }

    #[cfg(feature = "mimalloc")]
    #[test]
    fn memory_freed_after_a_burst_goes_back_to_the_kernel_with_no_free_after_it_on_its_thread() {
        const BURST: u64 = 64 << 20;
        keep_huge_pages_off().expect("prctl");
        release_in_background().expect("thread");
        // A burst of small blocks, as connections' buffers are, every page touched, then freed;
        // this thread then only reads its RSS (a few small allocations, no purge of the burst).
        let blocks: Vec<Box<[u8]>> = (0..BURST / 4096)
            .map(|_| vec![1; 4096].into_boxed_slice())
            .collect();
        let held = resident_bytes();
        drop(blocks);
        // Without the background thread, mimalloc keeps the whole burst resident until a later
        // free or collection runs its purge (measured: the 10,000 connections' buffers stayed
        // for minutes). With it, within the purge delay and a release period or two.
        let deadline = std::time::Instant::now() + RELEASE_EVERY * 5;
        let mut released = resident_bytes();
        while released > held - BURST / 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
            released = resident_bytes();
        }
        assert!(
            released <= held - BURST / 2,
            "resident with the burst {held}, after it was freed and released {released}"
        );
    }
}
