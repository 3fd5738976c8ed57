//! Command-line interface. Other tools script against these flag names: keep them stable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use ringcast::config::{parse_duration, IoMode};

use crate::plot::Label;
use crate::target::{IpList, PortList};

/// Thread-per-core WebSocket load generator for ringcast and any RFC 6455 server.
#[derive(Debug, Parser)]
#[command(name = "ringcast-loadgen", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// A scenario to run, `compare` to put two earlier runs side by side, or `plot` to draw
/// percentile files.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open --conns connections (at --ramp-rate), hold them idle for --hold, close them.
    Connect(ConnectArgs),
    /// Keep --conns connections echoing --size byte messages, closed-loop or at a fixed --rate.
    Echo(EchoArgs),
    /// Run --conns loops of: connect, handshake, one echo, close handshake; report connections/s.
    Churn(ChurnArgs),
    /// Subscribe --conns connections to --topics topics, publish to them at --publish-rate and
    /// report publish-to-receive latency, losses, duplicates and reordering.
    Push(PushArgs),
    /// Print two summary.json files side by side.
    Compare(CompareArgs),
    /// Draw .hgrm percentile files as one SVG chart, a line per file.
    ///
    /// Percentiles run along HdrHistogram's log scale of 1/(1-p) (0%, 90%, 99%, ... 99.999%,
    /// then max), latency (the files' values, in microseconds) up a log scale; the legend gives
    /// each file's p50, p99 and max.
    Plot(PlotArgs),
}

/// Flags shared by every scenario.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Server URL, ws://HOST:PORT/PATH or wss://HOST:PORT/PATH (TLS: the host is the SNI name
    /// and the name the certificate must be valid for; needs --tls-ca or --tls-insecure; every
    /// connection makes a full handshake, and handshake latency counts TCP connect, TLS
    /// handshake and upgrade).
    #[arg(long)]
    pub url: String,
    /// wss:// (and https:// --publish-url): verify the server's certificate against the CA
    /// certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// wss:// (and https:// --publish-url): do not verify the server's certificate, for
    /// self-signed benchmarking targets (one warning line on stderr).
    #[arg(long, conflicts_with = "tls_ca")]
    pub tls_insecure: bool,
    /// Connections (connect, echo), concurrent loops (churn) or subscribers (push).
    #[arg(long, default_value_t = 100)]
    pub conns: u64,
    /// Use the first N allowed cores (default: all allowed cores).
    #[arg(long, conflicts_with = "core_list")]
    pub cores: Option<usize>,
    /// Use exactly these cores, e.g. 1,2.
    #[arg(long, value_delimiter = ',')]
    pub core_list: Option<Vec<usize>>,
    /// Worker processes; connections and cores are split between them and results merged.
    #[arg(long, default_value_t = 1)]
    pub procs: usize,
    /// Local source addresses to spread connections over, e.g. 127.0.0.1-127.0.0.200.
    #[arg(long)]
    pub source_addrs: Option<IpList>,
    /// Destination ports to spread connections over (overrides the URL's port), e.g. 9001-9004.
    #[arg(long)]
    pub ports: Option<PortList>,
    /// New connections per second while ramping up (0 = as fast as --max-pending allows).
    #[arg(long, default_value_t = 0.0)]
    pub ramp_rate: f64,
    /// Most connection attempts in progress at once, per core (push over HTTP: also the most
    /// publish requests in flight per core).
    #[arg(long, default_value_t = 256)]
    pub max_pending: usize,
    /// TCP connect timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Timeout for the TLS handshake (wss://) and the HTTP upgrade after the TCP connection is
    /// up (push over HTTP: for each publish request's TLS handshake and reply).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// Time for the final drain and close handshake (in churn: for each loop's echo and close).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub close_timeout: Duration,
    /// Extra request header for the upgrade, "Name: value" (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Server process to charge CPU time to (utime+stime over the measured window).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Directory for summary.json and HdrHistogram .hgrm percentile files.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// I/O driver: auto (io_uring, else epoll with one line on stderr), uring, or epoll.
    #[arg(long, value_enum, default_value_t = IoMode::Auto)]
    pub io: IoMode,
    /// Exit with status 1 when more than N errors happened.
    #[arg(long, default_value_t = 0)]
    pub max_errors: u64,
    /// No live progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Print the summary as JSON on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Internal: this process is worker N of a --procs run.
    #[arg(long, hide = true, requires = "worker_count")]
    pub worker_index: Option<usize>,
    /// Internal: how many workers the --procs run has.
    #[arg(long, hide = true, requires = "worker_index")]
    pub worker_count: Option<usize>,
}

/// Measurement window flags (echo, churn).
#[derive(Debug, Clone, Args)]
pub struct WindowArgs {
    /// Measured duration.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured load before the window starts.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
}

/// Message shape flags (echo, churn).
#[derive(Debug, Clone, Args)]
pub struct MessageArgs {
    /// Payload bytes per message.
    #[arg(long, default_value_t = 20)]
    pub size: usize,
    /// Send binary messages instead of text.
    #[arg(long)]
    pub binary: bool,
}

/// `connect` flags.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// How long to hold the connections idle once all are up.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub hold: Duration,
}

/// `echo` flags.
#[derive(Debug, Clone, Args)]
pub struct EchoArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub message: MessageArgs,
    /// Messages outstanding per connection (closed loop).
    #[arg(long, default_value_t = 1)]
    pub in_flight: u32,
    /// Open loop: total messages per second over all connections; latency counts from each
    /// message's intended send time.
    #[arg(long)]
    pub rate: Option<f64>,
}

/// `churn` flags.
#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub message: MessageArgs,
}

/// How `push` publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PublishVia {
    /// POST /publish/{topic} (or POST /publish batches), one TCP connection per request.
    Http,
    /// {"op":"publish"} commands on dedicated WebSocket connections (the server needs
    /// --push-ws-publish).
    Ws,
}

/// `push` flags.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    /// Topics t0..t{N-1}; subscriber i subscribes to t{i mod N} with ?topics= on the upgrade URL.
    #[arg(long, default_value_t = 1)]
    pub topics: u32,
    /// Publishes per second over all topics and processes, round-robin over the topics, paced on
    /// the intended schedule (open loop); latency counts from each publish's intended time.
    #[arg(long, default_value_t = 100.0)]
    pub publish_rate: f64,
    /// Payload bytes per publish, text; at least 20 (the intended publish time in nanoseconds
    /// since the UNIX epoch leads every payload).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// How publishes reach the server.
    #[arg(long, value_enum, default_value_t = PublishVia::Http)]
    pub publish_via: PublishVia,
    /// HTTP publishing: base URL, http[s]://HOST:PORT[/PREFIX] (default: the --url host, spread
    /// over --ports, over TLS when --url is wss://).
    #[arg(long)]
    pub publish_url: Option<String>,
    /// HTTP publishing: at most N due publishes per request; N > 1 sends them as one
    /// POST /publish JSON batch. Publishes are never held back to fill a batch.
    #[arg(long, default_value_t = 1)]
    pub publish_batch: usize,
    /// WebSocket publishing: publisher connections over all processes, opened with the
    /// subscribers and sharing the publish rate [default: 1].
    #[arg(long)]
    pub publishers: Option<u64>,
    /// After publishing stops, how long subscribers keep receiving messages still in flight
    /// before losses are counted and connections close (within --close-timeout).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub drain: Duration,
}

/// `compare` arguments.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The baseline summary.json.
    pub a: PathBuf,
    /// The summary.json to compare with it.
    pub b: PathBuf,
}

/// `plot` arguments.
#[derive(Debug, Clone, Args)]
pub struct PlotArgs {
    /// HdrHistogram percentile-distribution files (.hgrm, as --out writes them), one line each.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Write the SVG to this file instead of stdout.
    #[arg(long, value_name = "FILE.svg")]
    pub output: Option<PathBuf>,
    /// Chart title.
    #[arg(long, value_name = "T", default_value = "Latency by percentile")]
    pub title: String,
    /// Legend name for one of the FILEs, written as it is among them (repeatable; default: the
    /// file name without its extension).
    #[arg(long = "label", value_name = "NAME=FILE")]
    pub labels: Vec<Label>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_command_lines_parse() {
        let cli = Cli::try_parse_from([
            "ringcast-loadgen",
            "echo",
            "--url",
            "ws://127.0.0.1:9001/",
            "--conns",
            "50",
            "--in-flight",
            "16",
            "--rate",
            "1000",
            "--core-list",
            "0,1",
            "--source-addrs",
            "127.0.0.1-127.0.0.4",
            "--ports",
            "9001-9002",
            "--json",
        ])
        .unwrap();
        let Command::Echo(echo) = cli.command else {
            panic!("not echo")
        };
        assert_eq!(echo.in_flight, 16);
        assert_eq!(echo.common.core_list, Some(vec![0, 1]));
        assert_eq!(echo.common.source_addrs.unwrap().0.len(), 4);
        assert!(Cli::try_parse_from([
            "ringcast-loadgen",
            "connect",
            "--url",
            "ws://h/",
            "--cores",
            "1",
            "--core-list",
            "1"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["ringcast-loadgen", "compare", "a.json", "b.json"]).is_ok());
    }

    #[test]
    fn the_plot_command_line_parses() {
        let cli = Cli::try_parse_from([
            "ringcast-loadgen",
            "plot",
            "--output",
            "cores.svg",
            "--title",
            "echo, 16 in flight",
            "--label",
            "core 0=runs/a/latency_core0.hgrm",
            "runs/a/latency_core0.hgrm",
            "runs/a/latency_core1.hgrm",
        ])
        .unwrap();
        let Command::Plot(plot) = cli.command else {
            panic!("not plot")
        };
        assert_eq!(plot.files.len(), 2);
        assert_eq!(plot.output, Some(PathBuf::from("cores.svg")));
        assert_eq!(plot.title, "echo, 16 in flight");
        assert_eq!(plot.labels[0].name, "core 0");
        assert!(Cli::try_parse_from(["ringcast-loadgen", "plot"]).is_err());
        assert!(Cli::try_parse_from(["ringcast-loadgen", "plot", "--label", "x.hgrm", "x.hgrm"]).is_err());
    }

    #[test]
    fn the_push_command_line_parses() {
        let cli = Cli::try_parse_from([
            "ringcast-loadgen",
            "push",
            "--url",
            "ws://127.0.0.1:9001/ws",
            "--conns",
            "1000",
            "--topics",
            "10",
            "--publish-rate",
            "500",
            "--duration",
            "5s",
            "--size",
            "128",
            "--publish-via",
            "ws",
            "--publishers",
            "2",
            "--drain",
            "500ms",
        ])
        .unwrap();
        let Command::Push(push) = cli.command else {
            panic!("not push")
        };
        assert_eq!((push.topics, push.size, push.publishers), (10, 128, Some(2)));
        assert_eq!(push.publish_via, PublishVia::Ws);
        assert_eq!(push.drain, Duration::from_millis(500));
        assert_eq!(push.window.duration, Duration::from_secs(5));
        let http = Cli::try_parse_from([
            "ringcast-loadgen",
            "push",
            "--url",
            "ws://h/ws",
            "--publish-url",
            "http://h:8080",
            "--publish-batch",
            "16",
        ])
        .unwrap();
        let Command::Push(http) = http.command else {
            panic!("not push")
        };
        assert_eq!(http.publish_via, PublishVia::Http);
        assert_eq!(
            (http.publish_url.as_deref(), http.publish_batch),
            (Some("http://h:8080"), 16)
        );
        assert!(Cli::try_parse_from(["ringcast-loadgen", "push", "--url", "ws://h/", "--publish-via", "udp"]).is_err());
    }
}
