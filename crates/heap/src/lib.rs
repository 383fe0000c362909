//! fleetmq-heap: how many heap bytes the process has in use, for
//! Mosquitto's `memory_limit` (`limits.memory_limit` in fleetmq.toml).
//!
//! [`Counting`] wraps the system allocator; the `fleetmq` binary installs
//! it with `#[global_allocator]`. Each thread adds what it allocates and
//! frees to a thread-local balance and moves the balance to one shared
//! counter only once it reaches [`FLUSH_BYTES`] either way, so the shared
//! cache line is touched about once per 64 KiB allocated, not once per
//! allocation. [`in_use`] is therefore exact to within `FLUSH_BYTES` per
//! thread, which is ample for a limit in megabytes.
//!
//! Owns: the counter, the allocator wrapper and the call that gives free
//! pages back. Must not, inside the allocator: allocate, lock,
//! log or panic (it runs inside the allocator, on every thread), nor decide
//! what is refused when the limit is reached (the engine does).
//!
//! [`release_free_pages`] hands the free pages inside the heap back to the
//! operating system (after a storm of connections; decision 0181).
//!
//! Without the wrapper installed (the core's unit tests, a library user)
//! [`in_use`] stays 0 and [`installed`] says so.
#![deny(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// The thread-local balance moved to the shared counter at this size.
pub const FLUSH_BYTES: i64 = 64 * 1024;

/// Bytes in use, as far as the threads have reported them.
static IN_USE: AtomicI64 = AtomicI64::new(0);
/// The highest value [`IN_USE`] has reached.
static PEAK: AtomicI64 = AtomicI64::new(0);
/// Set by the first allocation through [`Counting`].
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    // No destructor and a constant initialiser: reading it never
    // allocates and works until the thread is gone.
    static BALANCE: Cell<i64> = const { Cell::new(0) };
}

/// The system allocator, counted.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counting;

/// Heap bytes in use by the process (0 when [`Counting`] is not the
/// global allocator).
pub fn in_use() -> u64 {
    u64::try_from(IN_USE.load(Ordering::Relaxed)).unwrap_or(0)
}

/// The most heap bytes in use at once since the start.
pub fn peak() -> u64 {
    u64::try_from(PEAK.load(Ordering::Relaxed)).unwrap_or(0)
}

/// Whether [`Counting`] is the global allocator of this process.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Whether a limit of `limit` bytes (0: none) is exceeded now.
pub fn exceeds(limit: u64) -> bool {
    limit != 0 && in_use() > limit
}

/// Adds `delta` bytes to this thread's balance, moving it to the shared
/// counter when it is large enough.
#[inline]
fn note(delta: i64) {
    let moved = BALANCE.try_with(|balance| {
        let now = balance.get() + delta;
        if now >= FLUSH_BYTES || now <= -FLUSH_BYTES {
            balance.set(0);
            now
        } else {
            balance.set(now);
            0
        }
    });
    // While a thread is torn down its balance may be gone: count directly.
    let moved = moved.unwrap_or(delta);
    if moved != 0 {
        let total = IN_USE.fetch_add(moved, Ordering::Relaxed) + moved;
        if moved > 0 {
            PEAK.fetch_max(total, Ordering::Relaxed);
            if !INSTALLED.load(Ordering::Relaxed) {
                INSTALLED.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Gives the operating system back the free pages inside the heap.
///
/// glibc returns freed memory only from the top of its heaps; a page in the
/// middle stays resident although nothing lives in it. A storm of TLS
/// handshakes leaves many such pages: each handshake allocates tens of KiB
/// for a few milliseconds, between the small allocations of the
/// connections that stay. `malloc_trim` (glibc 2.8 and later) walks the
/// free chunks and releases the whole pages among them (`MADV_DONTNEED`);
/// they come back, zeroed, when used again. It holds each arena's lock
/// while it walks it: call it off the async workers, and rarely. A no-op
/// where the C library is not glibc. Returns whether memory was released.
pub fn release_free_pages() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim takes only a padding size, locks
        // the arenas itself and is safe to call from any thread at any
        // time; it does not touch live allocations.
        #[allow(unsafe_code)]
        let released = unsafe { malloc_trim(0) };
        released == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

fn size(layout: Layout) -> i64 {
    i64::try_from(layout.size()).unwrap_or(i64::MAX)
}

// SAFETY: every method forwards to `System` with the caller's own
// arguments, so `System`'s guarantees are the caller's; the bookkeeping
// around it only adds numbers and never allocates, unwinds or touches the
// memory.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            note(size(layout));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            note(size(layout));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (so from `System`) with
        // `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        note(-size(layout));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` is the caller's.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            note(i64::try_from(new_size).unwrap_or(i64::MAX) - size(layout));
        }
        new
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[global_allocator]
    static HEAP: Counting = Counting;

    #[test]
    fn a_large_buffer_is_counted_and_its_release_too() {
        // Flush this thread's balance first so the figures are its own.
        let before = in_use();
        let buffer: Vec<u8> = vec![7; 8 * 1024 * 1024];
        let during = in_use();
        assert!(installed());
        assert!(
            during >= before + 8 * 1024 * 1024 - FLUSH_BYTES as u64,
            "before {before}, during {during}"
        );
        assert!(peak() >= during);
        assert!(exceeds(during / 2));
        assert!(!exceeds(0), "0 is no limit");
        drop(buffer);
        let after = in_use();
        assert!(
            after + 8 * 1024 * 1024 - 2 * FLUSH_BYTES as u64 <= during,
            "during {during}, after {after}"
        );
    }

    #[test]
    fn releasing_free_pages_keeps_live_memory() {
        let kept: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 100]).collect();
        let freed: Vec<Vec<u8>> = (0..64).map(|_| vec![0u8; 64 * 1024]).collect();
        drop(freed);
        let _ = release_free_pages();
        for (i, small) in kept.iter().enumerate() {
            assert!(small.iter().all(|byte| *byte == i as u8));
        }
    }

    #[test]
    fn growing_by_realloc_counts_the_difference() {
        let mut grown: Vec<u8> = Vec::with_capacity(1024);
        let before = in_use();
        grown.reserve_exact(4 * 1024 * 1024);
        grown.push(1);
        let after = in_use();
        assert!(
            after + FLUSH_BYTES as u64 >= before + 4 * 1024 * 1024,
            "{before} → {after}"
        );
    }
}
