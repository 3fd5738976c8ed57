//! The subscription a client asks for when it connects: `?topics=a,b&since=a:EPOCH:SEQ,...`.

use super::envelope::Epoch;
use super::topic::{validate_topic, TopicError};

/// Where a client resumes a topic: the last message it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Since {
    /// The epoch of that message.
    pub epoch: Epoch,
    /// Its sequence number.
    pub seq: u64,
}

impl Since {
    /// Parses `EPOCH:SEQ`.
    pub fn parse(text: &str) -> Option<Since> {
        let (epoch, seq) = text.split_once(':')?;
        Some(Since {
            epoch: epoch.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// The topics a connection subscribes to at once, with where to resume each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitialTopics {
    /// Topics in the order asked, without repeats, each with its resume point.
    pub topics: Vec<(String, Option<Since>)>,
}

/// Why the connection query was refused (answered with 400 before the upgrade).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A topic name is invalid.
    #[error("invalid topic in ?topics=: {0}")]
    Topic(#[from] TopicError),
    /// More topics than `push_max_topics_per_connection`.
    #[error("{0} topics asked; at most {1} per connection")]
    TooMany(usize, usize),
    /// A `since` entry is not `TOPIC:EPOCH:SEQ`.
    #[error("invalid since entry {0:?}: expected TOPIC:EPOCH:SEQ (EPOCH in hex)")]
    BadSince(String),
    /// A `since` entry names a topic not in `topics`.
    #[error("since names topic {0:?}, which is not in ?topics=")]
    SinceWithoutTopic(String),
}

/// Parses the query string of an upgrade request (`None`: no query).
pub fn parse_initial_topics(query: Option<&str>, max_topics: usize) -> Result<InitialTopics, QueryError> {
    let mut topics: Vec<(String, Option<Since>)> = Vec::new();
    let mut since = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "topics" => {
                for topic in value.split(',').filter(|t| !t.is_empty()) {
                    validate_topic(topic)?;
                    if !topics.iter().any(|(t, _)| t == topic) {
                        topics.push((topic.to_owned(), None));
                    }
                }
            }
            "since" => {
                for entry in value.split(',').filter(|e| !e.is_empty()) {
                    let (topic, rest) = entry
                        .split_once(':')
                        .ok_or_else(|| QueryError::BadSince(entry.to_owned()))?;
                    let point = Since::parse(rest).ok_or_else(|| QueryError::BadSince(entry.to_owned()))?;
                    since.push((topic.to_owned(), point));
                }
            }
            _ => {}
        }
    }
    if topics.len() > max_topics {
        return Err(QueryError::TooMany(topics.len(), max_topics));
    }
    for (topic, point) in since {
        let slot = topics
            .iter_mut()
            .find(|(t, _)| *t == topic)
            .ok_or(QueryError::SinceWithoutTopic(topic))?;
        slot.1 = Some(point);
    }
    Ok(InitialTopics { topics })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_resume_points_are_read() {
        let parsed = parse_initial_topics(Some("x=1&topics=a,b,a&since=b:00000000000000ff:12"), 8).unwrap();
        assert_eq!(
            parsed.topics,
            vec![
                ("a".to_owned(), None),
                (
                    "b".to_owned(),
                    Some(Since {
                        epoch: Epoch(255),
                        seq: 12
                    })
                ),
            ]
        );
        assert_eq!(parse_initial_topics(None, 8).unwrap(), InitialTopics::default());
    }

    #[test]
    fn bad_queries_are_refused_with_a_reason() {
        assert!(matches!(
            parse_initial_topics(Some("topics=a:b"), 8),
            Err(QueryError::Topic(_))
        ));
        assert_eq!(
            parse_initial_topics(Some("topics=a,b,c"), 2),
            Err(QueryError::TooMany(3, 2))
        );
        assert_eq!(
            parse_initial_topics(Some("topics=a&since=a:zz:1"), 8),
            Err(QueryError::BadSince("a:zz:1".into()))
        );
        assert_eq!(
            parse_initial_topics(Some("topics=a&since=b:1:1"), 8),
            Err(QueryError::SinceWithoutTopic("b".into()))
        );
    }
}
