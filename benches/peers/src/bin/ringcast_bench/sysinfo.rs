//! Readings from /proc: process memory, kernel socket counters and a description of the machine.

use std::fs;

/// Resident set size of process `pid`, in bytes (VmRSS in /proc/PID/status).
pub fn rss_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).map_err(|err| format!("cannot read {path}: {err}"))?;
    parse_vm_rss(&status).ok_or_else(|| format!("no VmRSS line in {path}"))
}

/// Extracts VmRSS (reported in kB) from the text of /proc/PID/status, in bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// Memory charged to TCP sockets system-wide, in bytes: the `mem` pages of the TCP line of
/// /proc/net/sockstat times the page size.
pub fn tcp_mem_bytes() -> Result<u64, String> {
    let text =
        fs::read_to_string("/proc/net/sockstat").map_err(|err| format!("cannot read /proc/net/sockstat: {err}"))?;
    parse_tcp_mem_pages(&text)
        .map(|pages| pages * page_size())
        .ok_or_else(|| "no TCP mem field in /proc/net/sockstat".to_owned())
}

/// Parses the `mem` pages of `TCP: inuse N orphan N tw N alloc N mem N` in /proc/net/sockstat.
fn parse_tcp_mem_pages(text: &str) -> Option<u64> {
    let fields: Vec<&str> = text
        .lines()
        .find_map(|line| line.strip_prefix("TCP:"))?
        .split_whitespace()
        .collect();
    let at = fields.iter().position(|field| *field == "mem")?;
    fields.get(at + 1)?.parse().ok()
}

/// Number of open file descriptors of process `pid` (entries of /proc/PID/fd): each accepted
/// connection holds one, so its growth counts the connections a server has accepted.
pub fn open_fds(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/fd");
    let entries = fs::read_dir(&path).map_err(|err| format!("cannot list {path}: {err}"))?;
    Ok(entries.count() as u64)
}

/// The kernel's page size in bytes.
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// One line naming the CPU, the number of online cores and the kernel.
pub fn describe_machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|line| {
                line.strip_prefix("model name")
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores available, Linux {}", kernel.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn parses_tcp_mem_of_sockstat() {
        let text = "sockets: used 170\nTCP: inuse 20005 orphan 0 tw 12 alloc 20010 mem 37\nUDP: inuse 1 mem 0\n";
        assert_eq!(parse_tcp_mem_pages(text), Some(37));
        assert_eq!(parse_tcp_mem_pages("UDP: inuse 1 mem 0\n"), None);
    }

    #[test]
    fn reads_own_rss_fds_and_live_sockstat() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        let before = open_fds(pid).unwrap();
        let file = fs::File::open("/proc/self/status").unwrap();
        assert_eq!(open_fds(pid).unwrap(), before + 1);
        drop(file);
        tcp_mem_bytes().unwrap();
    }
}
