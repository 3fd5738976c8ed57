//! Command-line flags of `tungstenite-load`.

use std::time::Duration;

use clap::Parser;

/// Closed-loop WebSocket echo load on tokio (current_thread) and tokio-tungstenite: an
/// independent second client for `ringcast-bench`. Prints one JSON line on stdout.
#[derive(Debug, Parser)]
pub struct Args {
    /// Server to load, `ws://HOST:PORT/PATH`.
    #[arg(long)]
    pub url: String,
    /// Connections.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub conns: u32,
    /// Messages outstanding per connection (1 = ping-pong).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub in_flight: u32,
    /// Payload bytes per text message.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub size: u32,
    /// Load before the measured window, not counted ("1s", "500ms").
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Measured window ("5s", "2500ms").
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Server process whose user+system CPU time over the window is reported.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// Parses `500ms`, `2s` or a bare number of seconds; zero is allowed (no warm-up), but not
/// for `--duration`, which the caller checks.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, scale) = match text.strip_suffix("ms") {
        Some(ms) => (ms, 1e-3),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    match number.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(Duration::from_secs_f64(value * scale)),
        _ => Err(format!("expected a duration such as 2s or 500ms, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_milliseconds() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("fast").is_err());
    }
}
