//! Checks run before any connection is opened: enough file descriptors per process, and
//! enough ephemeral ports per (source address, destination) pair.

use std::io;

/// Descriptors kept free beyond one per connection: runtimes, timers, stdio, output files.
pub fn fd_margin(cores: usize) -> u64 {
    64 + 8 * cores as u64
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns (soft, hard) afterwards.
pub fn raise_nofile() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: valid pointer; failure leaves the old limit in place.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Refuses when one process would need more descriptors than it may open.
pub fn check_nofile(conns_per_proc: u64, conns_total: u64, cores: usize) -> Result<(), String> {
    let (soft, hard) = raise_nofile().map_err(|e| format!("cannot read RLIMIT_NOFILE: {e}"))?;
    nofile_verdict(conns_per_proc, conns_total, cores, soft, hard)
}

fn nofile_verdict(conns_per_proc: u64, conns_total: u64, cores: usize, soft: u64, hard: u64) -> Result<(), String> {
    let margin = fd_margin(cores);
    let needed = conns_per_proc + margin;
    if needed <= soft {
        return Ok(());
    }
    let usable = soft.saturating_sub(margin).max(1);
    let procs = conns_total.div_ceil(usable);
    Err(format!(
        "too many connections for one process: {conns_per_proc} connections need {needed} open files \
         ({margin} spare), but the open-file limit is {soft} (hard limit {hard}). \
         Use --procs {procs} (or more) to split them over processes, or raise the limit (ulimit -n, LimitNOFILE)."
    ))
}

/// The ephemeral port range `(low, high)` from `/proc/sys/net/ipv4/ip_local_port_range`.
pub fn ephemeral_range() -> io::Result<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")?;
    parse_range(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad port range {text:?}")))
}

fn parse_range(text: &str) -> Option<(u16, u16)> {
    let mut parts = text.split_ascii_whitespace().map(str::parse::<u16>);
    let (low, high) = (parts.next()?.ok()?, parts.next()?.ok()?);
    (low <= high).then_some((low, high))
}

/// Refuses when some (source address, destination) pair would need more ports than exist.
pub fn check_ports(conns_total: u64, pairs: usize) -> Result<(), String> {
    let range = ephemeral_range().map_err(|e| format!("cannot read the ephemeral port range: {e}"))?;
    ports_verdict(conns_total, pairs, range)
}

fn ports_verdict(conns_total: u64, pairs: usize, (low, high): (u16, u16)) -> Result<(), String> {
    let ports = u64::from(high - low) + 1;
    let per_pair = conns_total.div_ceil(pairs.max(1) as u64);
    if per_pair <= ports {
        return Ok(());
    }
    let pairs_needed = conns_total.div_ceil(ports);
    Err(format!(
        "not enough ephemeral ports: {per_pair} connections per (source address, destination address:port) \
         pair, but the range {low}-{high} (/proc/sys/net/ipv4/ip_local_port_range) has only {ports} ports. \
         Spread the connections over at least {pairs_needed} pairs with --source-addrs (e.g. \
         --source-addrs 127.0.0.1-127.0.0.{}) and/or --ports (server listening on several ports).",
        pairs_needed.min(254)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nofile_refusal_says_what_is_needed() {
        assert!(nofile_verdict(1000, 1000, 2, 20_000, 20_000).is_ok());
        let msg = nofile_verdict(30_000, 30_000, 2, 20_000, 20_000).unwrap_err();
        assert!(msg.contains("30080 open files"), "{msg}");
        assert!(msg.contains("limit is 20000"), "{msg}");
        assert!(msg.contains("--procs 2"), "{msg}");
    }

    #[test]
    fn port_refusal_names_the_remedies() {
        assert!(ports_verdict(28_000, 1, (32768, 60999)).is_ok());
        let msg = ports_verdict(60_000, 1, (32768, 60999)).unwrap_err();
        assert!(msg.contains("--source-addrs") && msg.contains("--ports"), "{msg}");
        assert!(msg.contains("28232 ports"), "{msg}");
        assert!(ports_verdict(60_000, 3, (32768, 60999)).is_ok());
        assert_eq!(parse_range("32768\t60999\n"), Some((32768, 60999)));
        assert!(raise_nofile().unwrap().0 > 0);
    }
}
