//! The resolved description of a run: what each connection does, where it goes, and when.
//!
//! Built once from the command line and shared read-only by every core. New scenarios add a
//! [`Scenario`] variant and, if connections behave differently, a [`Traffic`] variant; the
//! core loop dispatches on both. The push scenario's own settings are in [`PushPlan`].

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::{ChurnArgs, CommonArgs, ConnectArgs, EchoArgs, PublishVia, PushArgs, WindowArgs};
use crate::push::payload::STAMP_DIGITS;
use crate::push::topic_name;
use crate::target::{Targets, WsUrl};
use crate::tls::{TlsClient, Trust};

/// The scenario being run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Ramp connections up, hold them idle, close them.
    Connect,
    /// Long-lived connections exchanging echo messages.
    Echo,
    /// Short-lived connections: connect, one echo, close, repeat.
    Churn,
    /// Subscriber connections receiving what publishers send to their topics.
    Push,
}

impl Scenario {
    /// The name used on the command line and in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Connect => "connect",
            Scenario::Echo => "echo",
            Scenario::Churn => "churn",
            Scenario::Push => "push",
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
    /// TLS handshake (`wss://`) and HTTP upgrade together.
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
    /// TLS settings (`wss://`).
    pub tls: Option<TlsClient>,
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
    /// The measured window (echo, churn, push) or the hold time (connect).
    pub window: Duration,
    /// The push scenario's settings.
    pub push: Option<PushPlan>,
}

/// What `push` publishes, where, and how it counts.
#[derive(Debug, Clone)]
pub struct PushPlan {
    /// Subscriber connections: numbers `0..subscribers`; any further ones are publishers.
    pub subscribers: u64,
    /// Topics `t0..t{topics-1}`.
    pub topics: u32,
    /// Publishes per second over the whole run.
    pub rate: f64,
    /// How publishes reach the server.
    pub publishing: Publishing,
    /// How long subscribers keep receiving after publishing stops.
    pub drain: Duration,
}

/// How publishes reach the server.
#[derive(Debug, Clone)]
pub enum Publishing {
    /// HTTP requests, one TCP connection each.
    Http(HttpPublishing),
    /// Commands on this many WebSocket publisher connections over the whole run.
    Ws(u64),
}

/// Where and how HTTP publishes go.
#[derive(Debug, Clone)]
pub struct HttpPublishing {
    /// The server's address(es) and the local addresses to spread requests over.
    pub targets: Targets,
    /// The host for the `Host` header and the path prefix of the publish endpoints.
    pub url: WsUrl,
    /// TLS settings (`https://`, or the default target of a `wss://` run).
    pub tls: Option<TlsClient>,
    /// Most publishes per request (more than one: a `POST /publish` batch).
    pub batch: usize,
}

impl PushPlan {
    /// The HTTP settings, when publishing over HTTP.
    pub fn http(&self) -> Option<&HttpPublishing> {
        match &self.publishing {
            Publishing::Http(http) => Some(http),
            Publishing::Ws(_) => None,
        }
    }

    /// The topic subscriber `global` subscribes to.
    pub fn topic_of(&self, global: u64) -> u32 {
        (global % u64::from(self.topics)) as u32
    }
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
            payload: filler(args.message.size),
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
            payload: filler(args.message.size),
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

    /// Builds the plan for `push`.
    pub fn push(args: &PushArgs) -> Result<Plan, String> {
        if args.common.conns == 0 {
            return Err("--conns must be at least 1".into());
        }
        if args.topics == 0 {
            return Err("--topics must be at least 1".into());
        }
        if !(args.publish_rate.is_finite() && args.publish_rate > 0.0) {
            return Err(format!(
                "--publish-rate must be a positive number, got {}",
                args.publish_rate
            ));
        }
        if args.size < STAMP_DIGITS {
            return Err(format!(
                "--size must be at least {STAMP_DIGITS}: every payload starts with its publish time"
            ));
        }
        let publishers = publishers(args)?;
        let traffic = Traffic {
            pacing: Pacing::Idle,
            payload: filler(args.size),
            binary: false,
            per_conn: None,
        };
        let common = CommonArgs {
            conns: args.common.conns + publishers,
            ..args.common.clone()
        };
        let mut plan = Plan::build(
            Scenario::Push,
            &common,
            traffic,
            args.window.warmup,
            window(&args.window)?,
        )?;
        let publishing = match args.publish_via {
            PublishVia::Ws => Publishing::Ws(publishers),
            PublishVia::Http => Publishing::Http(http_publishing(&plan, args)?),
        };
        let http_tls = matches!(&publishing, Publishing::Http(h) if h.tls.is_some());
        if plan.tls.is_none() && !http_tls {
            refuse_unused_trust(&args.common)?;
        }
        plan.push = Some(PushPlan {
            subscribers: args.common.conns,
            topics: args.topics,
            rate: args.publish_rate,
            publishing,
            drain: args.drain,
        });
        Ok(plan)
    }

    fn build(
        scenario: Scenario,
        common: &CommonArgs,
        traffic: Traffic,
        warmup: Duration,
        window: Duration,
    ) -> Result<Plan, String> {
        let url = WsUrl::parse(&common.url)?;
        let tls = tls_for(&common.url, &url, common)?;
        if tls.is_none() && scenario != Scenario::Push {
            refuse_unused_trust(common)?;
        }
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
            tls,
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
            push: None,
        })
    }

    /// The path and query of the upgrade request of connection `global`: push subscribers add
    /// their topic to the URL's query.
    pub fn upgrade_path(&self, global: u64) -> Cow<'_, str> {
        let path = &self.url.path;
        match &self.push {
            Some(push) if global < push.subscribers => {
                let joint = if path.contains('?') { '&' } else { '?' };
                Cow::Owned(format!("{path}{joint}topics={}", topic_name(push.topic_of(global))))
            }
            _ => Cow::Borrowed(path),
        }
    }

    /// How long after the window connections keep receiving before they close (push: --drain).
    pub fn drain(&self) -> Duration {
        self.push.as_ref().map_or(Duration::ZERO, |p| p.drain)
    }

    /// Sockets a lane may hold besides its WebSocket connections (HTTP publish requests).
    pub fn extra_sockets_per_lane(&self) -> u64 {
        match self.push.as_ref().and_then(PushPlan::http) {
            Some(_) => self.max_pending as u64,
            None => 0,
        }
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

/// The payload every message carries (push: after the publish time): lowercase letters, valid as
/// text, safe in JSON strings and easy to spot in a dump.
fn filler(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The WebSocket publisher connections of a push run (none over HTTP); refuses the flags of
/// the other publishing mode.
fn publishers(args: &PushArgs) -> Result<u64, String> {
    if args.publish_batch == 0 {
        return Err("--publish-batch must be at least 1".into());
    }
    let publishers = match (args.publish_via, args.publishers) {
        (PublishVia::Ws, Some(0)) => return Err("--publishers must be at least 1".into()),
        (PublishVia::Ws, n) => n.unwrap_or(1),
        (PublishVia::Http, Some(_)) => return Err("--publishers is for --publish-via ws".into()),
        (PublishVia::Http, None) => 0,
    };
    if args.publish_via == PublishVia::Ws {
        if args.publish_url.is_some() {
            return Err("--publish-url is for --publish-via http".into());
        }
        if args.publish_batch != 1 {
            return Err("--publish-batch is for --publish-via http".into());
        }
    }
    Ok(publishers)
}

/// Where HTTP publishes go: --publish-url, else the --url host on every --ports port.
fn http_publishing(plan: &Plan, args: &PushArgs) -> Result<HttpPublishing, String> {
    let (url, dests, tls) = match &args.publish_url {
        None => {
            let mut url = plan.url.clone();
            url.path = String::new();
            (url, plan.targets.dests.clone(), plan.tls.clone())
        }
        Some(text) => {
            let mut url = WsUrl::parse_http(text)?;
            if url.path.contains('?') {
                return Err(format!("--publish-url {text}: a query is not supported"));
            }
            url.path = url.path.trim_end_matches('/').to_string();
            let ip = url.resolve()?;
            if let Some(bad) = plan.targets.sources.iter().find(|s| s.is_ipv4() != ip.is_ipv4()) {
                return Err(format!("source address {bad} is not of the same family as {ip}"));
            }
            let dest = SocketAddr::new(ip, url.port);
            let tls = tls_for(text, &url, &args.common)?;
            (url, vec![dest], tls)
        }
    };
    Ok(HttpPublishing {
        targets: Targets {
            dests,
            sources: plan.targets.sources.clone(),
        },
        url,
        tls,
        batch: args.publish_batch,
    })
}

/// How --tls-ca / --tls-insecure say to check server certificates, if they do.
fn trust(common: &CommonArgs) -> Option<Trust> {
    match (&common.tls_ca, common.tls_insecure) {
        (Some(path), _) => Some(Trust::CaFile(path.clone())),
        (None, true) => Some(Trust::Insecure),
        (None, false) => None,
    }
}

/// The TLS settings for connections to `url`: none for a plain URL; a TLS URL needs a trust
/// flag (there is no system trust store to fall back on).
fn tls_for(text: &str, url: &WsUrl, common: &CommonArgs) -> Result<Option<TlsClient>, String> {
    if !url.tls {
        return Ok(None);
    }
    let Some(trust) = trust(common) else {
        return Err(format!(
            "{text}: a TLS URL needs --tls-ca FILE (PEM CA certificates to verify the server with) \
             or --tls-insecure (no verification, for self-signed test servers)"
        ));
    };
    TlsClient::new(&url.host, &trust).map(Some)
}

/// Refuses trust flags on a run that makes no TLS connection.
fn refuse_unused_trust(common: &CommonArgs) -> Result<(), String> {
    match trust(common) {
        Some(Trust::CaFile(_)) => Err("--tls-ca is for wss:// (and https:// --publish-url) URLs".into()),
        Some(Trust::Insecure) => Err("--tls-insecure is for wss:// (and https:// --publish-url) URLs".into()),
        None => Ok(()),
    }
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

    fn push_args(extra: &[&str]) -> PushArgs {
        use clap::Parser;
        let mut args = vec!["ringcast-loadgen", "push", "--url", "ws://127.0.0.1:9001/ws?token=x"];
        args.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(args).unwrap().command {
            crate::cli::Command::Push(push) => push,
            _ => unreachable!(),
        }
    }

    #[test]
    fn push_subscribers_carry_their_topic_and_publishers_come_after_them() {
        let plan = Plan::push(&push_args(&[
            "--conns",
            "5",
            "--topics",
            "2",
            "--publish-via",
            "ws",
            "--publishers",
            "3",
        ]))
        .unwrap();
        assert_eq!(plan.conns_total, 8);
        assert_eq!(plan.upgrade_path(0), "/ws?token=x&topics=t0");
        assert_eq!(plan.upgrade_path(3), "/ws?token=x&topics=t1");
        assert_eq!(plan.upgrade_path(5), "/ws?token=x", "a publisher subscribes to nothing");
        assert_eq!(plan.extra_sockets_per_lane(), 0);
        let http = Plan::push(&push_args(&[
            "--publish-url",
            "http://127.0.0.1:8080/api/",
            "--max-pending",
            "7",
        ]))
        .unwrap();
        let publishing = http.push.as_ref().unwrap().http().unwrap();
        assert_eq!(publishing.url.path, "/api");
        assert_eq!(publishing.targets.dests, ["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(http.extra_sockets_per_lane(), 7);
        assert_eq!(http.conns_total, 100);
        let plain = Plan::push(&push_args(&["--ports", "9001-9002"])).unwrap();
        let publishing = plain.push.as_ref().unwrap().http().unwrap();
        assert_eq!((publishing.url.path.as_str(), publishing.targets.dests.len()), ("", 2));
        assert_eq!(plain.drain(), Duration::from_secs(2));
        assert!(Plan::push(&push_args(&["--publish-batch", "0"])).is_err());
        assert!(Plan::push(&push_args(&["--publish-via", "ws", "--publish-batch", "2"])).is_err());
        assert!(Plan::push(&push_args(&["--publish-rate", "0"])).is_err());
    }

    #[test]
    fn tls_goes_with_tls_urls_only() {
        use clap::Parser;
        let echo = |args: &[&str]| {
            let all = [&["ringcast-loadgen", "echo", "--url"][..], args].concat();
            match crate::cli::Cli::try_parse_from(all).unwrap().command {
                crate::cli::Command::Echo(echo) => Plan::echo(&echo),
                _ => unreachable!(),
            }
        };
        let plan = echo(&["wss://127.0.0.1/", "--tls-insecure"]).unwrap();
        assert!(plan.tls.is_some());
        assert_eq!(plan.targets.dests, ["127.0.0.1:443".parse().unwrap()]);
        assert!(echo(&["ws://127.0.0.1/"]).unwrap().tls.is_none());
        assert!(echo(&["wss://127.0.0.1/"]).unwrap_err().contains("--tls-ca FILE"));
        assert!(echo(&["ws://127.0.0.1/", "--tls-insecure"]).is_err());
        // A wss:// push run publishes over TLS by default, and to an https:// --publish-url;
        // a ws:// one may still publish to https://.
        let wss = |extra: &[&str]| {
            let mut args = push_args(&["--tls-insecure"]);
            args.common.url = "wss://127.0.0.1:9443/ws".into();
            if let [url] = extra {
                args.publish_url = Some(url.to_string());
            }
            Plan::push(&args).unwrap()
        };
        let tls_of = |plan: &Plan| plan.push.as_ref().unwrap().http().unwrap().tls.is_some();
        assert!(tls_of(&wss(&[])));
        assert!(!tls_of(&wss(&["http://127.0.0.1:8080"])));
        assert!(tls_of(&wss(&["https://127.0.0.1:8443"])));
        let https = Plan::push(&push_args(&[
            "--publish-url",
            "https://127.0.0.1:8443",
            "--tls-insecure",
        ]))
        .unwrap();
        assert!(https.tls.is_none() && tls_of(&https));
        assert!(Plan::push(&push_args(&["--tls-insecure"])).is_err());
    }
}
