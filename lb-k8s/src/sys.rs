//! How the daemons hand memory back to the system. The crate's one module with `unsafe`
//! (allocator calls, each with its `// SAFETY:` line).
//!
//! A daemon's working set is small next to the transient peaks it goes through: a full
//! re-read of ten thousand Services, a decision over all of them, a metrics scrape of several
//! megabytes. glibc's allocator keeps the pages of such a peak, and by default it also raises
//! its thresholds after each large free, so the next peak lands in the heap instead of in
//! pages of its own and stays resident for good. [`tune`] fixes the thresholds;
//! [`release_free_memory`] returns what a peak left behind. musl's allocator (the release
//! image) returns freed pages by itself: both are no-ops there.

/// Allocations of at least this size get pages of their own, returned to the system as soon
/// as they are freed (glibc's initial value, kept instead of raised after each large free).
pub const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Free memory at the top of the heap beyond this is returned to the system at once.
pub const TRIM_THRESHOLD: i32 = 128 * 1024;

/// Fixes the allocator's thresholds at [`MMAP_THRESHOLD`] and [`TRIM_THRESHOLD`]. Call once,
/// at the start of the process.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` takes two integers and only changes the allocator's own parameters,
    // under its lock; no pointer crosses the call.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Gives freed heap pages back to the system, in every arena (glibc only).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `malloc_trim` takes no pointer; it only walks the allocator's own free lists
    // under the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
