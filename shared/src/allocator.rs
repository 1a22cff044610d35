//! glibc malloc settings for a container that serves one invocation at a time: what a request
//! allocates for a moment must not stay resident until the container dies.
//!
//! - glibc serves blocks of 128 KiB and more with their own mapping, given back on free, but raises
//!   that threshold to the size of each such block freed (up to 32 MiB): after the first login,
//!   argon2id's 19 MiB block and the buffers of large reads come from the heap, which keeps its peak.
//!   A fixed threshold keeps them mapped, so freeing them returns the memory.
//! - Each thread that allocates may get an arena of its own (up to 8 per core), each keeping its own
//!   free memory. Two arenas suffice for a runtime of one or two worker threads.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters (under the allocator's own lock).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
