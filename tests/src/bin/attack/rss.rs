//! The server's resident memory, read from `/proc/<pid>/status` (what the kernel charges the
//! process, allocator caches included: not what the program thinks it allocated).

/// One reading, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// `VmRSS`: resident now.
    pub(crate) rss_kib: u64,
    /// `VmHWM`: the most ever resident ("high water mark").
    pub(crate) hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid`; `None` once the process is gone.
pub(crate) fn sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
    };
    // A zombie has no memory fields left.
    Some(Sample { rss_kib: field("VmRSS:")?, hwm_kib: field("VmHWM:")? })
}

/// The readings of one run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Track {
    /// The highest `VmHWM` seen (the true peak, even between samples).
    pub(crate) peak_kib: u64,
    /// The latest `VmRSS`.
    pub(crate) last_kib: u64,
}

impl Track {
    /// Takes a reading of `pid`; returns it, or `None` if the process is gone.
    pub(crate) fn update(&mut self, pid: u32) -> Option<Sample> {
        let s = sample(pid)?;
        self.peak_kib = self.peak_kib.max(s.hwm_kib).max(s.rss_kib);
        self.last_kib = s.rss_kib;
        Some(s)
    }
}

/// `kib` as MiB, for the table.
pub(crate) fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}
