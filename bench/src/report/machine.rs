//! What the machine a run measured on is (CPU, cores, memory, kernel, the
//! open-files limit), read from `/proc` for the report's first section.
//!
//! It only reads; anything it cannot read shows as "unknown", empty or 0,
//! never as an error.

use std::fs;

use super::Machine;

/// What this machine is, for the report.
pub fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let memory_gib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let nofile = fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| {
                    let parts: Vec<&str> = l.split_whitespace().collect();
                    format!(
                        "{}/{}",
                        parts.get(3).unwrap_or(&"?"),
                        parts.get(4).unwrap_or(&"?")
                    )
                })
        })
        .unwrap_or_default();
    Machine {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib,
        kernel,
        nofile,
    }
}
