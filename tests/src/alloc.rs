//! A counting global allocator that measures the peak memory of one thread.
//!
//! Each test binary that checks memory installs it:
//!
//! ```text
//! #[global_allocator]
//! static ALLOC: rpc_tests::alloc::CountingAlloc = rpc_tests::alloc::CountingAlloc;
//! ```
//!
//! Counting is per thread, so tests running in parallel on other threads do not disturb each
//! other. A [`MemScope`] measures the net bytes allocated by its thread since it started, and the
//! peak of that. With a current-thread Tokio runtime, the client's and the server's tasks all
//! run on the test's thread, so the scope sees every allocation the scenario makes. Memory freed
//! on another thread is not subtracted, which can only over-estimate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Forwards to the system allocator and counts the bytes of the current thread.
#[derive(Debug)]
pub struct CountingAlloc;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn record(delta: isize) {
    // `try_with`: the allocator is called while thread-locals are being torn down too.
    let _ = CURRENT.try_with(|c| {
        let now = c.get() + delta;
        c.set(now);
        let _ = PEAK.try_with(|p| {
            if now > p.get() {
                p.set(now);
            }
        });
    });
}

// SAFETY: every method forwards to `System` with the same arguments; the counting touches only
// const-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            record(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            record(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        record(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            record(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Measures the peak net allocation of the current thread from its creation on.
#[derive(Debug)]
pub struct MemScope {
    start: isize,
}

impl MemScope {
    /// Starts measuring (the peak restarts from the current level).
    pub fn start() -> MemScope {
        let start = CURRENT.with(Cell::get);
        PEAK.with(|p| p.set(start));
        MemScope { start }
    }

    /// The highest net allocation since [`MemScope::start`], in bytes.
    pub fn peak(&self) -> usize {
        (PEAK.with(Cell::get) - self.start).max(0) as usize
    }

    /// Panics unless the peak stayed within `budget` bytes; `what` names the scenario.
    pub fn assert_within(&self, budget: usize, what: &str) {
        let peak = self.peak();
        assert!(
            peak <= budget,
            "{what}: peak allocation {peak} bytes exceeds the budget of {budget} bytes (counting allocator installed?)"
        );
    }

    /// Whether this binary's global allocator is [`CountingAlloc`] (a scope in a binary without
    /// it would measure nothing and pass every budget).
    pub fn is_counting() -> bool {
        let before = CURRENT.with(Cell::get);
        let v = std::hint::black_box(vec![0u8; 4096]);
        let during = CURRENT.with(Cell::get);
        drop(v);
        during - before >= 4096
    }
}

/// One mebibyte, for budgets.
pub const MIB: usize = 1024 * 1024;
