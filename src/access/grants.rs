//! What a verified token grants a connection: when it expires, and the topics it may subscribe
//! and publish to (its `sub_topics` and `pub_topics` claims).

/// Topic patterns from a token claim: exact topic names, or prefixes ending in `*` (`chat/*`
/// matches every topic that starts with `chat/`; `*` alone matches every topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPatterns {
    exact: Box<[Box<str>]>,
    prefixes: Box<[Box<str>]>,
}

impl TopicPatterns {
    /// Parses a claim's entries; a `*` anywhere but at the end of an entry, or an empty entry,
    /// is refused (naming it).
    pub fn parse(entries: &[String]) -> Result<TopicPatterns, String> {
        let (mut exact, mut prefixes) = (Vec::new(), Vec::new());
        for entry in entries {
            match entry.strip_suffix('*') {
                _ if entry.is_empty() => return Err("an empty topic pattern".into()),
                Some(prefix) if !prefix.contains('*') => prefixes.push(prefix.into()),
                None if !entry.contains('*') => exact.push(entry.as_str().into()),
                _ => return Err(format!("topic pattern {entry:?} has a * that is not at its end")),
            }
        }
        Ok(TopicPatterns {
            exact: exact.into(),
            prefixes: prefixes.into(),
        })
    }

    /// Whether `topic` matches one of the patterns.
    pub fn allows(&self, topic: &str) -> bool {
        self.exact.iter().any(|t| **t == *topic) || self.prefixes.iter().any(|p| topic.starts_with(&**p))
    }
}

/// What a connection's token grants, kept with its metadata for as long as it is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrants {
    expires_at: u64,
    subject: Option<Box<str>>,
    subscribe: Option<TopicPatterns>,
    publish: Option<TopicPatterns>,
}

impl TokenGrants {
    /// Grants of a token that expires at `expires_at` (Unix seconds, its `exp` claim), for
    /// `subject` (its `sub` claim), restricted to the `subscribe` and `publish` patterns where
    /// they are given (`None`: that claim was absent, so no restriction).
    pub fn new(
        expires_at: u64,
        subject: Option<String>,
        subscribe: Option<TopicPatterns>,
        publish: Option<TopicPatterns>,
    ) -> TokenGrants {
        TokenGrants {
            expires_at,
            subject: subject.map(String::into_boxed_str),
            subscribe,
            publish,
        }
    }

    /// The token's `exp` claim, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The token's `sub` claim (who it was issued to), if it had one.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// Whether the token lets the connection subscribe to `topic` (any topic without a
    /// `sub_topics` claim).
    pub fn may_subscribe(&self, topic: &str) -> bool {
        self.subscribe.as_ref().is_none_or(|p| p.allows(topic))
    }

    /// Whether the token lets the connection publish to `topic` (any topic without a
    /// `pub_topics` claim).
    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish.as_ref().is_none_or(|p| p.allows(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(entries: &[&str]) -> Result<TopicPatterns, String> {
        TopicPatterns::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn exact_names_and_trailing_star_prefixes_match() {
        let p = patterns(&["news", "chat/*"]).unwrap();
        for allowed in ["news", "chat/a", "chat/a/b", "chat/"] {
            assert!(p.allows(allowed), "{allowed}");
        }
        for refused in ["news2", "new", "chat", "chats/a", "x/chat/a"] {
            assert!(!p.allows(refused), "{refused}");
        }
        assert!(patterns(&["*"]).unwrap().allows("anything"));
        assert!(
            !patterns(&[]).unwrap().allows("anything"),
            "an empty claim allows nothing"
        );
    }

    #[test]
    fn a_star_elsewhere_or_an_empty_pattern_is_refused() {
        for bad in ["a*b", "*a", "a**", ""] {
            assert!(patterns(&["ok", bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_absent_claim_restricts_nothing() {
        let only_subscribe = TokenGrants::new(10, None, Some(patterns(&["a"]).unwrap()), None);
        assert!(only_subscribe.may_subscribe("a") && !only_subscribe.may_subscribe("b"));
        assert!(only_subscribe.may_publish("b"));
        assert_eq!(only_subscribe.expires_at(), 10);
    }
}
