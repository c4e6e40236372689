//! glibc malloc settings for a process that recycles megabyte buffers all day.

/// Keep freed large blocks in the heap instead of unmapping them (glibc only).
///
/// By default glibc serves blocks of 128 KiB and more (the bound rises on its own up to
/// 32 MiB) with fresh mmaps, and gives a freed heap top back at once. Every 2 MiB chunk and
/// every PutRecords body then pays page faults to map and zero its memory again: about a sixth
/// of the agent's CPU when tail ships a big file (bench/e2e.sh). What the heap keeps is bounded
/// by the peak of live buffers, which `Mem_Buf_Limit` bounds. `MALLOC_MMAP_THRESHOLD_` or
/// `MALLOC_TRIM_THRESHOLD_` in the environment still win.
pub fn keep_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |var: &str| std::env::var_os(var).is_some();
        if !set("MALLOC_MMAP_THRESHOLD_") {
            // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20) };
        }
        if !set("MALLOC_TRIM_THRESHOLD_") {
            // SAFETY: as above.
            unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20) };
        }
    }
}
