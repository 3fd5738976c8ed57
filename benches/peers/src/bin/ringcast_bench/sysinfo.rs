//! Readings from /proc: process memory and tree, listening sockets, kernel socket counters and a
//! description of the machine.

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

/// Whether process `pid` has an io_uring instance open (a descriptor linking to
/// `anon_inode:[io_uring]`): how a ringcast started with `--io auto` shows it did not fall back.
pub fn has_io_uring(pid: u32) -> Result<bool, String> {
    let path = format!("/proc/{pid}/fd");
    let entries = fs::read_dir(&path).map_err(|err| format!("cannot list {path}: {err}"))?;
    Ok(entries
        .flatten()
        .filter_map(|entry| fs::read_link(entry.path()).ok())
        .any(|target| target.as_os_str() == "anon_inode:[io_uring]"))
}

/// The fields of /proc/PID/stat after the command name (state, ppid, ...); the name in
/// parentheses may itself contain spaces and parentheses.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Whether process `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|fields| fields.first().is_some_and(|state| state != "Z"))
}

/// Every descendant of process `pid` (children, their children, ...), found through the parent
/// field of /proc/*/stat.
pub fn descendants(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|child| Some((child, stat_fields(child)?.get(1)?.parse().ok()?)))
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (child, _) in parents.iter().filter(|(_, ppid)| *ppid == parent) {
            found.push(*child);
            frontier.push(*child);
        }
    }
    found
}

/// The process among `candidates` that holds a TCP socket listening on `port` (IPv4 or IPv6):
/// the server itself when it was started through a shell or another wrapper. Fails as well when
/// a socket listening on `port` is bound to anything but a loopback address.
pub fn listener_pid(port: u16, candidates: &[u32]) -> Result<u32, String> {
    let mut listeners = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            listeners.extend(listening_sockets(&text, port));
        }
    }
    if let Some(exposed) = listeners.iter().find(|listener| !listener.loopback) {
        return Err(format!(
            "port {port} is bound to {} (hex, as in /proc/net/tcp*), not to the loopback only; \
             listen on 127.0.0.1 ({{addr}})",
            exposed.local
        ));
    }
    let sockets: Vec<String> = listeners
        .iter()
        .map(|listener| format!("socket:[{}]", listener.inode))
        .collect();
    let holds_one = |pid: u32| {
        fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|entries| {
            entries
                .flatten()
                .filter_map(|entry| fs::read_link(entry.path()).ok())
                .any(|target| sockets.iter().any(|socket| target.as_os_str() == socket.as_str()))
        })
    };
    candidates
        .iter()
        .copied()
        .find(|pid| holds_one(*pid))
        .ok_or_else(|| format!("no process among {candidates:?} holds a socket listening on port {port}"))
}

/// A socket in LISTEN state, from /proc/net/tcp or /proc/net/tcp6.
#[derive(Debug, PartialEq, Eq)]
struct Listener {
    /// Local address in the table's hex form (without the port).
    local: String,
    /// Whether that address is 127.0.0.0/8, ::1 or an IPv4-mapped 127.x address.
    loopback: bool,
    /// Socket inode, as in the `socket:[INODE]` links of /proc/PID/fd.
    inode: u64,
}

/// The sockets in LISTEN state (`0A`) on local `port` in the text of /proc/net/tcp or
/// /proc/net/tcp6. Addresses there are 32-bit words in host (little-endian) order, so
/// 127.0.0.1 reads `0100007F`.
fn listening_sockets(text: &str, port: u16) -> Vec<Listener> {
    let wanted = format!("{port:04X}");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, local_port) = fields.get(1)?.split_once(':')?;
            if local_port != wanted || *fields.get(3)? != "0A" {
                return None;
            }
            let loopback = match local.len() {
                8 => local.ends_with("7F"),
                _ => {
                    local == "00000000000000000000000001000000"
                        || (local.starts_with("0000000000000000FFFF0000") && local.ends_with("7F"))
                }
            };
            Some(Listener {
                local: local.to_owned(),
                loopback,
                inode: fields.get(9)?.parse().ok()?,
            })
        })
        .collect()
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
    fn finds_listening_sockets_by_port_and_tells_loopback_from_exposed() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2329 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4711 1 0 100 0 0 10 0
   1: 0100007F:2329 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4712 1 0 20 4 30 10 -1
   2: 00000000:232A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4713 1 0 100 0 0 10 0
";
        let listener = |local: &str, loopback, inode| Listener {
            local: local.to_owned(),
            loopback,
            inode,
        };
        assert_eq!(listening_sockets(v4, 9001), [listener("0100007F", true, 4711)]);
        assert_eq!(listening_sockets(v4, 9002), [listener("00000000", false, 4713)]);
        assert!(listening_sockets(v4, 80).is_empty());
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:2329 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5001 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:232A 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5002 1 0 100 0 0 10 0
   2: 00000000000000000000000000000000:232B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5003 1 0 100 0 0 10 0
";
        assert!(listening_sockets(v6, 9001)[0].loopback);
        assert!(listening_sockets(v6, 9002)[0].loopback);
        assert!(!listening_sockets(v6, 9003)[0].loopback);
    }

    #[test]
    fn finds_the_listener_among_a_process_tree() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = std::process::id();
        assert_eq!(listener_pid(port, &[u32::MAX, me]), Ok(me));
        assert!(!has_io_uring(me).unwrap());
        drop(listener);
        assert!(listener_pid(port, &[me]).is_err());
    }

    #[test]
    fn sees_a_child_as_a_live_descendant() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        assert!(descendants(std::process::id()).contains(&child.id()));
        assert!(is_alive(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!is_alive(child.id()));
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
