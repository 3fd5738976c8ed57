//! The resolved description of a run: what each connection does, where it goes, and when.
//!
//! Built once from the command line and shared read-only by every core. New scenarios (a
//! server-push fan-out scenario, for example) add a [`Scenario`] variant and, if connections
//! behave differently, a [`Traffic`] variant; the core loop dispatches on both.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::{ChurnArgs, CommonArgs, ConnectArgs, EchoArgs, MessageArgs, WindowArgs};
use crate::target::{Targets, WsUrl};

/// The scenario being run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Ramp connections up, hold them idle, close them.
    Connect,
    /// Long-lived connections exchanging echo messages.
    Echo,
    /// Short-lived connections: connect, one echo, close, repeat.
    Churn,
}

impl Scenario {
    /// The name used on the command line and in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Connect => "connect",
            Scenario::Echo => "echo",
            Scenario::Churn => "churn",
        }
    }

    /// Whether connections stay open for the whole run (as opposed to being reopened in loops).
    pub fn long_lived(self) -> bool {
        !matches!(self, Scenario::Churn)
    }
}

/// How a connection paces the messages it sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Send nothing (idle connections).
    Idle,
    /// Keep this many messages outstanding; send the next when an echo returns.
    ClosedLoop(u32),
    /// Send at this many messages per second over the whole run (all processes).
    OpenLoop(f64),
}

/// What each connection sends once the load phase starts.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// Pacing of sends.
    pub pacing: Pacing,
    /// The payload of every message.
    pub payload: Vec<u8>,
    /// Binary (true) or text messages.
    pub binary: bool,
    /// Messages per connection before it closes (`None`: until the window ends).
    pub per_conn: Option<u64>,
}

/// Timeouts bounding every wait.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// HTTP upgrade.
    pub handshake: Duration,
    /// Final drain and close handshake (per loop in churn).
    pub close: Duration,
}

/// Everything a core needs to know about the run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Which scenario.
    pub scenario: Scenario,
    /// The URL as given.
    pub url_text: String,
    /// The parsed URL.
    pub url: WsUrl,
    /// Where connections go.
    pub targets: Targets,
    /// Total connections (or churn loops) over all processes.
    pub conns_total: u64,
    /// Message behaviour.
    pub traffic: Traffic,
    /// New connections per second over all processes while ramping (0 = unpaced).
    pub ramp_rate: f64,
    /// Connection attempts in progress at once, per core.
    pub max_pending: usize,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Extra upgrade request headers, each "Name: value".
    pub headers: Vec<String>,
    /// Unmeasured time after the load starts.
    pub warmup: Duration,
    /// The measured window (echo, churn) or the hold time (connect).
    pub window: Duration,
}

impl Plan {
    /// Builds the plan for `connect`.
    pub fn connect(args: &ConnectArgs) -> Result<Plan, String> {
        let traffic = Traffic {
            pacing: Pacing::Idle,
            payload: Vec::new(),
            binary: false,
            per_conn: None,
        };
        Plan::build(Scenario::Connect, &args.common, traffic, Duration::ZERO, args.hold)
    }

    /// Builds the plan for `echo`.
    pub fn echo(args: &EchoArgs) -> Result<Plan, String> {
        let pacing = match args.rate {
            Some(rate) if rate.is_finite() && rate > 0.0 => Pacing::OpenLoop(rate),
            Some(rate) => return Err(format!("--rate must be a positive number, got {rate}")),
            None if args.in_flight == 0 => return Err("--in-flight must be at least 1".into()),
            None => Pacing::ClosedLoop(args.in_flight),
        };
        let traffic = Traffic {
            pacing,
            payload: payload(&args.message),
            binary: args.message.binary,
            per_conn: None,
        };
        Plan::build(
            Scenario::Echo,
            &args.common,
            traffic,
            args.window.warmup,
            window(&args.window)?,
        )
    }

    /// Builds the plan for `churn`.
    pub fn churn(args: &ChurnArgs) -> Result<Plan, String> {
        let traffic = Traffic {
            pacing: Pacing::ClosedLoop(1),
            payload: payload(&args.message),
            binary: args.message.binary,
            per_conn: Some(1),
        };
        Plan::build(
            Scenario::Churn,
            &args.common,
            traffic,
            args.window.warmup,
            window(&args.window)?,
        )
    }

    fn build(
        scenario: Scenario,
        common: &CommonArgs,
        traffic: Traffic,
        warmup: Duration,
        window: Duration,
    ) -> Result<Plan, String> {
        let url = WsUrl::parse(&common.url)?;
        let ip = url.resolve()?;
        let ports = common.ports.as_ref().map_or_else(|| vec![url.port], |p| p.0.clone());
        let sources = common.source_addrs.as_ref().map_or_else(Vec::new, |s| s.0.clone());
        if let Some(bad) = sources.iter().find(|s| s.is_ipv4() != ip.is_ipv4()) {
            return Err(format!("source address {bad} is not of the same family as {ip}"));
        }
        if common.conns == 0 {
            return Err("--conns must be at least 1".into());
        }
        if common.max_pending == 0 {
            return Err("--max-pending must be at least 1".into());
        }
        if !(common.ramp_rate.is_finite() && common.ramp_rate >= 0.0) {
            return Err("--ramp-rate must be 0 or a positive number".into());
        }
        for header in &common.headers {
            if !header.contains(':') || header.contains(['\r', '\n']) {
                return Err(format!("--header {header:?}: expected \"Name: value\""));
            }
        }
        Ok(Plan {
            scenario,
            url_text: common.url.clone(),
            url,
            targets: Targets {
                dests: ports.into_iter().map(|p| SocketAddr::new(ip, p)).collect(),
                sources,
            },
            conns_total: common.conns,
            traffic,
            ramp_rate: common.ramp_rate,
            max_pending: common.max_pending,
            timeouts: Timeouts {
                connect: common.connect_timeout,
                handshake: common.handshake_timeout,
                close: common.close_timeout,
            },
            headers: common.headers.clone(),
            warmup,
            window,
        })
    }

    /// Largest payload a server frame may carry before the connection is failed.
    pub fn max_message_size(&self) -> usize {
        (self.traffic.payload.len() * 2).max(16 << 20)
    }
}

fn window(args: &WindowArgs) -> Result<Duration, String> {
    if args.duration.is_zero() {
        return Err("--duration must be greater than zero".into());
    }
    Ok(args.duration)
}

/// The payload every message carries: printable ASCII, valid as text and easy to spot in a dump.
fn payload(args: &MessageArgs) -> Vec<u8> {
    (0..args.size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// One core's share of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    /// The CPU to pin to.
    pub core: usize,
    /// This lane's number over all processes.
    pub index: usize,
    /// How many lanes the whole run has.
    pub total: usize,
}

impl Lane {
    /// The global numbers of the connections this lane runs: every `total`-th from `index`.
    pub fn conns(&self, conns_total: u64) -> impl Iterator<Item = u64> {
        (self.index as u64..conns_total).step_by(self.total)
    }

    /// How many connections this lane runs.
    pub fn conn_count(&self, conns_total: u64) -> u64 {
        let (total, index) = (self.total as u64, self.index as u64);
        conns_total / total + u64::from(index < conns_total % total)
    }
}

/// Splits `cores` over `procs` processes and returns process `worker`'s lanes.
///
/// With at least as many cores as processes each process gets a contiguous block of cores;
/// otherwise processes share cores round-robin, one core each.
pub fn lanes(cores: &[usize], procs: usize, worker: usize) -> Vec<Lane> {
    let per_proc: Vec<Vec<usize>> = if cores.len() >= procs {
        (0..procs)
            .map(|p| cores[p * cores.len() / procs..(p + 1) * cores.len() / procs].to_vec())
            .collect()
    } else {
        (0..procs).map(|p| vec![cores[p % cores.len()]]).collect()
    };
    let total = per_proc.iter().map(Vec::len).sum();
    let first: usize = per_proc[..worker].iter().map(Vec::len).sum();
    per_proc[worker]
        .iter()
        .enumerate()
        .map(|(i, &core)| Lane {
            core,
            index: first + i,
            total,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_cover_every_connection_once() {
        for (cores, procs) in [(vec![0, 1, 2, 3], 2), (vec![5], 3), (vec![0, 1, 2], 2)] {
            let all: Vec<Lane> = (0..procs).flat_map(|w| lanes(&cores, procs, w)).collect();
            let mut seen: Vec<u64> = all.iter().flat_map(|l| l.conns(101)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..101).collect::<Vec<_>>());
            for lane in &all {
                assert_eq!(lane.conns(101).count() as u64, lane.conn_count(101));
            }
        }
        let split = lanes(&[0, 1, 2, 3], 2, 1);
        assert_eq!(split.iter().map(|l| l.core).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(lanes(&[7], 2, 1)[0].core, 7);
    }
}
