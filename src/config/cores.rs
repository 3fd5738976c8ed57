//! Which CPU cores the engine runs on: "all", a count, or a list such as "0,2-3".

use std::str::FromStr;

use serde::Deserialize;

/// The `cores` setting, before it is matched against the cores this process may use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum CoreSelection {
    /// Every core in the process's affinity mask.
    All,
    /// The first N allowed cores.
    Count(usize),
    /// Exactly these core ids.
    List(Vec<usize>),
}

/// A core selection that cannot be satisfied or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CoreSelectionError(String);

impl FromStr for CoreSelection {
    type Err = CoreSelectionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text == "all" {
            return Ok(CoreSelection::All);
        }
        if !text.contains([',', '-']) {
            return match text.parse::<usize>() {
                Ok(0) | Err(_) => Err(CoreSelectionError(format!(
                    "invalid cores {text:?}: use \"all\", a count such as 2, or a list such as 0,2-3 (core 0 alone: 0-0)"
                ))),
                Ok(n) => Ok(CoreSelection::Count(n)),
            };
        }
        let mut ids = Vec::new();
        for part in text.split(',') {
            let bad = || CoreSelectionError(format!("invalid core list {text:?} near {part:?}"));
            match part.trim().split_once('-') {
                Some((a, b)) => {
                    let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                    if a > b {
                        return Err(bad());
                    }
                    ids.extend(a..=b);
                }
                None => ids.push(part.trim().parse().map_err(|_| bad())?),
            }
        }
        Ok(CoreSelection::List(ids))
    }
}

impl TryFrom<String> for CoreSelection {
    type Error = CoreSelectionError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl CoreSelection {
    /// Resolves the selection against the cores this process may run on (`allowed` ids).
    pub fn resolve(&self, allowed: &[usize]) -> Result<Vec<usize>, CoreSelectionError> {
        if allowed.is_empty() {
            return Err(CoreSelectionError("no CPU core is available to this process".into()));
        }
        match self {
            CoreSelection::All => Ok(allowed.to_vec()),
            CoreSelection::Count(n) if *n <= allowed.len() => Ok(allowed[..*n].to_vec()),
            CoreSelection::Count(n) => Err(CoreSelectionError(format!(
                "{n} cores requested but only {} are available ({allowed:?})",
                allowed.len()
            ))),
            CoreSelection::List(ids) => {
                if let Some(id) = ids.iter().find(|id| !allowed.contains(id)) {
                    return Err(CoreSelectionError(format!(
                        "core {id} is not available (allowed: {allowed:?})"
                    )));
                }
                if let Some(id) = ids
                    .iter()
                    .enumerate()
                    .find_map(|(i, id)| ids[..i].contains(id).then_some(id))
                {
                    return Err(CoreSelectionError(format!("core {id} is listed twice")));
                }
                Ok(ids.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves() {
        assert_eq!("all".parse(), Ok(CoreSelection::All));
        assert_eq!("2".parse(), Ok(CoreSelection::Count(2)));
        assert_eq!("0,2-3".parse(), Ok(CoreSelection::List(vec![0, 2, 3])));
        assert!("0".parse::<CoreSelection>().is_err());
        assert!("3-1".parse::<CoreSelection>().is_err());
        assert_eq!(CoreSelection::Count(1).resolve(&[4, 5]), Ok(vec![4]));
        assert!(CoreSelection::Count(3).resolve(&[0, 1]).is_err());
        assert!(CoreSelection::List(vec![7]).resolve(&[0, 1]).is_err());
        assert_eq!(CoreSelection::All.resolve(&[0, 1]), Ok(vec![0, 1]));
        assert_eq!("0-0".parse::<CoreSelection>().unwrap().resolve(&[0, 1]), Ok(vec![0]));
        assert!("0,0".parse::<CoreSelection>().unwrap().resolve(&[0, 1]).is_err());
    }
}
