//! CPU time and memory of processes, read from `/proc` (Linux).

use std::{fs, time::Duration};

/// How many clock ticks a second `/proc/<pid>/stat` counts in (`getconf CLK_TCK`).
fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|ticks| *ticks > 0)
        .unwrap_or(100)
}

/// The fields of `/proc/<pid>/stat` after the command name, which may hold spaces.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &text[text.rfind(')')? + 2..];
    // Index i is field i + 3 of `man 5 proc` (ppid at 1, utime at 11); field 3, the state,
    // is a letter and reads as 0.
    Some(
        after_name
            .split_whitespace()
            .map(|field| field.parse().unwrap_or(0))
            .collect(),
    )
}

/// Reads CPU time of a set of processes.
#[derive(Debug, Clone)]
pub struct CpuClock {
    ticks: u64,
}

/// Which processes one figure covers.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// One process, all its threads.
    Process(u32),
    /// A PostgreSQL server: the postmaster, its live children (backends, WAL writer...), and
    /// the children it already reaped.
    Postgres(u32),
    /// Nothing: a figure that is not available.
    Nothing,
}

impl CpuClock {
    /// A clock for this machine.
    pub fn new() -> Self {
        Self {
            ticks: ticks_per_second(),
        }
    }

    /// CPU time (user + system) used so far by `target`.
    pub fn used(&self, target: Target) -> Duration {
        let ticks = match target {
            Target::Nothing => 0,
            Target::Process(pid) => stat_fields(pid).map_or(0, |f| f[11] + f[12]),
            Target::Postgres(postmaster) => {
                let own = stat_fields(postmaster).map_or(0, |f| f[11] + f[12] + f[13] + f[14]);
                own + children(postmaster)
                    .into_iter()
                    .filter_map(stat_fields)
                    .map(|f| f[11] + f[12])
                    .sum::<u64>()
            }
        };
        Duration::from_millis(ticks * 1000 / self.ticks)
    }
}

impl Default for CpuClock {
    fn default() -> Self {
        Self::new()
    }
}

/// The live children of `parent`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat_fields(*pid).is_some_and(|f| f[1] == u64::from(parent)))
        .collect()
}

/// Resident memory of a process, in bytes.
pub fn rss(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
