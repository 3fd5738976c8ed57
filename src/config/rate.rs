//! Rates in configuration: "10/s", "30/m", "0" (off).

use serde::{Deserialize, Deserializer};

/// Parses `N/s` or `N/m` (N may have a fraction) into events per second; `0` means off.
pub fn parse(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, per) = match text.split_once('/') {
        Some((number, unit)) => match unit.trim() {
            "s" => (number, 1.0),
            "m" => (number, 60.0),
            other => return Err(format!("invalid rate unit {other:?} in {text:?}: use /s or /m")),
        },
        None if text == "0" => ("0", 1.0),
        None => return Err(format!("invalid rate {text:?}: expected e.g. 10/s or 30/m (0: off)")),
    };
    let value: f64 = number
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("invalid rate {text:?}: expected e.g. 10/s or 30/m (0: off)"))?;
    Ok(value / per)
}

/// serde adapter for `#[serde(with = "rate")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_second_per_minute_and_off() {
        assert_eq!(parse("10/s"), Ok(10.0));
        assert_eq!(parse("30/m"), Ok(0.5));
        assert_eq!(parse("0.5/s"), Ok(0.5));
        assert_eq!(parse("0"), Ok(0.0));
        assert_eq!(parse("0/s"), Ok(0.0));
        for bad in ["10", "10/h", "-1/s", "x/s", "/s", "inf/s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
