//! The commands a subscriber sends after connecting (JSON text frames), parsed into
//! [`Command`]s or a [`CommandError`] that is answered with an `error` notice.

use std::collections::HashMap;

use serde::Deserialize;

use super::query::Since;
use super::topic::validate_topic;

/// A client command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Subscribe to topics, resuming some.
    Subscribe {
        /// Topics with their resume points.
        topics: Vec<(String, Option<Since>)>,
    },
    /// Unsubscribe from topics.
    Unsubscribe {
        /// The topics.
        topics: Vec<String>,
    },
    /// Publish a text message.
    Publish {
        /// The topic.
        topic: String,
        /// The payload.
        data: String,
    },
}

/// A command and the `ref` the client wants echoed in the reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// What to do.
    pub command: Command,
    /// The client's `ref`, if any.
    pub reference: Option<serde_json::Value>,
}

/// Why a command was not carried out; the client gets an `error` notice with `code`.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandError {
    /// The protocol's error code.
    pub code: &'static str,
    /// What was wrong.
    pub message: String,
    /// The topic concerned, if any.
    pub topic: Option<String>,
    /// The command's `ref`, if it could be read.
    pub reference: Option<serde_json::Value>,
}

impl CommandError {
    /// An error about the command as a whole.
    pub fn new(code: &'static str, message: impl Into<String>) -> CommandError {
        CommandError {
            code,
            message: message.into(),
            topic: None,
            reference: None,
        }
    }
}

/// A command as sent, before its fields are checked.
#[derive(Deserialize)]
struct Raw {
    op: Option<String>,
    topics: Option<Vec<String>>,
    topic: Option<String>,
    since: Option<HashMap<String, String>>,
    data: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<serde_json::Value>,
}

/// Parses one command.
pub fn parse_command(text: &str) -> Result<Request, CommandError> {
    let raw: Raw =
        serde_json::from_str(text).map_err(|e| CommandError::new("bad_json", format!("not a command object: {e}")))?;
    let reference = raw.reference.clone();
    let with_ref = |mut error: CommandError| {
        error.reference = reference.clone();
        error
    };
    let command = command_of(raw).map_err(with_ref)?;
    Ok(Request { command, reference })
}

fn command_of(raw: Raw) -> Result<Command, CommandError> {
    let topics = |raw: &Raw| -> Result<Vec<String>, CommandError> {
        let topics = raw
            .topics
            .clone()
            .or_else(|| raw.topic.clone().map(|t| vec![t]))
            .ok_or_else(|| CommandError::new("bad_command", "\"topics\" (a list of topic names) is required"))?;
        for topic in &topics {
            validate_topic(topic).map_err(|e| CommandError {
                topic: Some(topic.clone()),
                ..CommandError::new("bad_topic", e.to_string())
            })?;
        }
        Ok(topics)
    };
    match raw.op.as_deref() {
        Some("subscribe") => {
            let names = topics(&raw)?;
            let mut since = raw.since.unwrap_or_default();
            let mut resumed = Vec::with_capacity(names.len());
            for name in names {
                let point = match since.remove(&name) {
                    None => None,
                    Some(text) => Some(Since::parse(&text).ok_or_else(|| CommandError {
                        topic: Some(name.clone()),
                        ..CommandError::new("bad_command", format!("since {text:?} is not EPOCH:SEQ"))
                    })?),
                };
                resumed.push((name, point));
            }
            if let Some(stray) = since.into_keys().next() {
                return Err(CommandError {
                    topic: Some(stray.clone()),
                    ..CommandError::new("bad_command", "since names a topic not in topics")
                });
            }
            Ok(Command::Subscribe { topics: resumed })
        }
        Some("unsubscribe") => Ok(Command::Unsubscribe { topics: topics(&raw)? }),
        Some("publish") => {
            let topic = raw
                .topic
                .ok_or_else(|| CommandError::new("bad_command", "\"topic\" is required"))?;
            validate_topic(&topic).map_err(|e| CommandError {
                topic: Some(topic.clone()),
                ..CommandError::new("bad_topic", e.to_string())
            })?;
            let data = raw
                .data
                .ok_or_else(|| CommandError::new("bad_command", "\"data\" (a string) is required"))?;
            Ok(Command::Publish { topic, data })
        }
        Some(other) => Err(CommandError::new(
            "unknown_op",
            format!("unknown op {other:?}; expected subscribe, unsubscribe or publish"),
        )),
        None => Err(CommandError::new("bad_command", "\"op\" is required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::envelope::Epoch;

    #[test]
    fn commands_parse_with_their_refs() {
        let request = parse_command(r#"{"op":"subscribe","topics":["a","b"],"since":{"b":"10:4"},"ref":1}"#).unwrap();
        assert_eq!(request.reference, Some(1.into()));
        assert_eq!(
            request.command,
            Command::Subscribe {
                topics: vec![
                    ("a".into(), None),
                    (
                        "b".into(),
                        Some(Since {
                            epoch: Epoch(16),
                            seq: 4
                        })
                    )
                ]
            }
        );
        assert_eq!(
            parse_command(r#"{"op":"unsubscribe","topic":"a"}"#).unwrap().command,
            Command::Unsubscribe {
                topics: vec!["a".into()]
            }
        );
        assert_eq!(
            parse_command(r#"{"op":"publish","topic":"a","data":"x"}"#)
                .unwrap()
                .command,
            Command::Publish {
                topic: "a".into(),
                data: "x".into()
            }
        );
    }

    #[test]
    fn every_bad_command_has_a_code() {
        let code = |text: &str| parse_command(text).unwrap_err().code;
        assert_eq!(code("not json"), "bad_json");
        assert_eq!(code("[1]"), "bad_json");
        assert_eq!(code(r#"{"op":"dance"}"#), "unknown_op");
        assert_eq!(code(r#"{"topics":["a"]}"#), "bad_command");
        assert_eq!(code(r#"{"op":"subscribe"}"#), "bad_command");
        assert_eq!(code(r#"{"op":"subscribe","topics":["a b"]}"#), "bad_topic");
        assert_eq!(
            code(r#"{"op":"subscribe","topics":["a"],"since":{"a":"x"}}"#),
            "bad_command"
        );
        assert_eq!(
            code(r#"{"op":"subscribe","topics":["a"],"since":{"b":"1:1"}}"#),
            "bad_command"
        );
        assert_eq!(code(r#"{"op":"publish","topic":"a"}"#), "bad_command");
        let error = parse_command(r#"{"op":"dance","ref":"r"}"#).unwrap_err();
        assert_eq!(error.reference, Some("r".into()), "the ref comes back with the error");
    }
}
