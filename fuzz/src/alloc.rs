//! A counting global allocator: the runner's check that no input makes a target allocate
//! more than a bound fixed by the input's length and the configured limits.
//!
//! Counts are per thread (a target runs on one thread), so tests running in parallel do not
//! see each other's allocations. Install it in the binary or test crate that runs targets:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: ringcast_fuzz::alloc::CountingAlloc = ringcast_fuzz::alloc::CountingAlloc;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting the bytes each thread holds and the most it held.
pub struct CountingAlloc;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grow(bytes: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrink(bytes: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(bytes)));
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are thread-local cells
// with constant initialisers and no destructors, so touching them never allocates or re-enters.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            grow(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            grow(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = System.realloc(ptr, layout, new_size);
        if !new.is_null() {
            shrink(layout.size());
            grow(new_size);
        }
        new
    }
}

/// Runs `f` and returns the most heap bytes this thread held during it beyond what it held
/// before. Panics when [`CountingAlloc`] is not the global allocator (the bound would then be
/// checked against nothing).
pub fn peak_during(f: impl FnOnce()) -> usize {
    let probe_start = reset_peak();
    drop(std::hint::black_box(vec![0u8; 64]));
    assert!(
        PEAK.with(Cell::get) >= probe_start + 64,
        "CountingAlloc is not the global allocator; install it with #[global_allocator]"
    );
    let start = reset_peak();
    f();
    PEAK.with(Cell::get) - start
}

/// Sets the peak to what is live now and returns that.
fn reset_peak() -> usize {
    let live = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(live));
    live
}
