//! JWT authentication of upgrades: HS256 with `jwt_secret`, RS256 with the PEM public key in
//! `jwt_public_key`, checked before the `101`.
//!
//! The token comes from `Authorization: Bearer TOKEN` or, when that header is absent, from the
//! query parameter `jwt_query_param` (`?token=`; browsers cannot set headers on a WebSocket).
//! The key is chosen by the token's `alg`: HS256 is checked with the secret only, RS256 with the
//! public key only, so one can never stand in for the other; any other `alg` (`none`
//! included) is refused. `exp` is required and `nbf` honoured when present, both with
//! `jwt_leeway` of slack; `aud`, when present, must be one of `jwt_audience` (a token with an
//! audience is refused where none is configured, as RFC 7519 section 4.1.3 requires).

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;

use super::bearer::{authorization, Authorization};
use super::grants::{TokenGrants, TopicPatterns};
use super::{Denied, DenyReason};
use crate::proto::handshake::Request;

/// The shortest HS256 secret accepted: the hash's output size (RFC 7518 section 3.2).
pub(crate) const MIN_SECRET: usize = 32;

/// The smallest RSA modulus accepted, in bits.
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// Verifies upgrade tokens with the configured keys.
pub(crate) struct TokenVerifier {
    hs256: Option<DecodingKey>,
    rs256: Option<DecodingKey>,
    query_param: String,
    leeway_secs: u64,
    audience: Vec<String>,
}

/// The keys and rules of a [`TokenVerifier`], as configured.
pub(crate) struct TokenSettings<'a> {
    /// The HS256 secret (empty: HS256 refused).
    pub secret: &'a str,
    /// The RS256 public key, PEM (`None`: RS256 refused).
    pub public_key_pem: Option<&'a [u8]>,
    pub query_param: &'a str,
    pub leeway_secs: u64,
    pub audience: &'a [String],
}

/// The claims read from a token (the time claims are checked by `jsonwebtoken`).
#[derive(Deserialize)]
struct Claims {
    exp: Option<u64>,
    sub: Option<String>,
    sub_topics: Option<Vec<String>>,
    pub_topics: Option<Vec<String>>,
}

impl TokenVerifier {
    /// A verifier, or which setting cannot work and why.
    pub fn new(settings: TokenSettings<'_>) -> Result<TokenVerifier, (&'static str, String)> {
        if !settings.secret.is_empty() && settings.secret.len() < MIN_SECRET {
            return Err((
                "jwt_secret",
                format!("is {} bytes; HS256 needs at least {MIN_SECRET}", settings.secret.len()),
            ));
        }
        let rs256 = settings
            .public_key_pem
            .map(rsa_key)
            .transpose()
            .map_err(|e| ("jwt_public_key", e))?;
        Ok(TokenVerifier {
            hs256: (!settings.secret.is_empty()).then(|| DecodingKey::from_secret(settings.secret.as_bytes())),
            rs256,
            query_param: settings.query_param.to_owned(),
            leeway_secs: settings.leeway_secs,
            audience: settings.audience.to_vec(),
        })
    }

    /// The slack given to `exp` and `nbf`, in seconds.
    pub fn leeway_secs(&self) -> u64 {
        self.leeway_secs
    }

    /// Verifies the request's token; its grants, or 401 with the reason and
    /// `WWW-Authenticate: Bearer`.
    pub fn verify(&self, request: &Request) -> Result<TokenGrants, Denied> {
        let token = match authorization(request) {
            Authorization::Bearer(token) => token,
            Authorization::Other => {
                return Err(refuse(DenyReason::TokenInvalid, "Authorization is not a Bearer token"))
            }
            Authorization::Absent => query_value(request.query.as_deref(), &self.query_param).ok_or_else(|| {
                refuse(
                    DenyReason::TokenMissing,
                    format!("a token is required (Authorization: Bearer, or ?{}=)", self.query_param),
                )
            })?,
        };
        let alg = decode_header(token)
            .map_err(|_| refuse(DenyReason::TokenInvalid, "malformed token"))?
            .alg;
        let key = match alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            _ => None,
        };
        let key = key.ok_or_else(|| {
            let accepted = [(self.hs256.is_some(), "HS256"), (self.rs256.is_some(), "RS256")]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect::<Vec<_>>()
                .join(", ");
            refuse(
                DenyReason::TokenInvalid,
                format!("token algorithm {alg:?} is not accepted (accepted: {accepted})"),
            )
        })?;
        let claims = decode::<Claims>(token, key, &self.validation(alg))
            .map_err(|e| token_error(e.kind()))?
            .claims;
        let patterns = |claim: &str, entries: Option<Vec<String>>| {
            entries
                .map(|e| TopicPatterns::parse(&e))
                .transpose()
                .map_err(|problem| refuse(DenyReason::TokenInvalid, format!("token claim {claim}: {problem}")))
        };
        let subscribe = patterns("sub_topics", claims.sub_topics)?;
        let publish = patterns("pub_topics", claims.pub_topics)?;
        let exp = claims
            .exp
            .ok_or_else(|| refuse(DenyReason::TokenInvalid, "token has no exp claim"))?;
        Ok(TokenGrants::new(exp, claims.sub, subscribe, publish))
    }

    /// What `jsonwebtoken` checks for a token signed with `alg`: only that algorithm, `exp`
    /// required, `nbf` if present, the audience.
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        if !self.audience.is_empty() {
            validation.set_audience(&self.audience);
            validation.set_required_spec_claims(&["exp", "aud"]);
        }
        validation
    }

    /// `query` without the token parameter (`None` if nothing else was in it), so that the
    /// connection neither keeps nor hands the token to its handler.
    pub fn strip_token(&self, query: &str) -> Option<String> {
        let rest: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(self.query_param.as_str()))
            .collect();
        (!rest.is_empty()).then(|| rest.join("&"))
    }
}

/// Parses an RSA public key (PKCS#1 or SPKI PEM) of at least [`MIN_RSA_BITS`].
fn rsa_key(pem: &[u8]) -> Result<DecodingKey, String> {
    let key = DecodingKey::from_rsa_pem(pem).map_err(|e| format!("is not an RSA public key in PEM: {e}"))?;
    let jsonwebtoken::DecodingKeyKind::SecretOrDer(der) = key.kind() else {
        return Err("is not an RSA public key in PEM".into());
    };
    let parsed = rsa::RsaPublicKey::from_pkcs1_der(der).map_err(|e| format!("is not a usable RSA public key: {e}"))?;
    let bits = parsed.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(format!("is a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits"));
    }
    Ok(key)
}

/// The value of parameter `name` in `query` (the first, taken as it is: a JWT needs no escaping).
fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value)
}

/// A 401 for a token problem.
fn refuse(reason: DenyReason, message: impl Into<std::borrow::Cow<'static, str>>) -> Denied {
    Denied::new(reason, 401, message).with_header("WWW-Authenticate", "Bearer")
}

/// The 401 for what `jsonwebtoken` found wrong.
fn token_error(kind: &ErrorKind) -> Denied {
    match kind {
        ErrorKind::ExpiredSignature => refuse(DenyReason::TokenExpired, "token expired"),
        ErrorKind::ImmatureSignature => refuse(DenyReason::TokenInvalid, "token not valid yet (nbf)"),
        ErrorKind::InvalidSignature => refuse(DenyReason::TokenInvalid, "bad token signature"),
        ErrorKind::InvalidAudience => refuse(DenyReason::TokenInvalid, "token audience (aud) not accepted"),
        ErrorKind::InvalidAlgorithm => refuse(DenyReason::TokenInvalid, "token algorithm not accepted"),
        ErrorKind::MissingRequiredClaim(claim) => {
            refuse(DenyReason::TokenInvalid, format!("token has no {claim} claim"))
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            refuse(DenyReason::TokenInvalid, format!("token claim {claim} is malformed"))
        }
        ErrorKind::Json(_) => refuse(DenyReason::TokenInvalid, "malformed token claims"),
        _ => refuse(DenyReason::TokenInvalid, "malformed token"),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{encode, get_current_timestamp, EncodingKey, Header};
    use serde_json::{json, Value};

    use super::*;
    use crate::proto::handshake::test_get;

    const SECRET: &str = "an HS256 secret of at least 32 bytes";

    fn verifier(audience: &[&str]) -> TokenVerifier {
        let audience: Vec<String> = audience.iter().map(|a| a.to_string()).collect();
        TokenVerifier::new(TokenSettings {
            secret: SECRET,
            public_key_pem: None,
            query_param: "token",
            leeway_secs: 5,
            audience: &audience,
        })
        .unwrap()
    }

    fn hs256(claims: Value, secret: &str) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn request(target: &str, headers: &str) -> Request {
        test_get(target, headers)
    }

    fn with_bearer(token: &str) -> Request {
        request("/", &format!("Authorization: Bearer {token}\r\n"))
    }

    fn refusal(verifier: &TokenVerifier, request: &Request) -> (DenyReason, String) {
        let denied = verifier.verify(request).unwrap_err();
        assert_eq!(denied.error.status, 401);
        assert!(denied.error.headers.contains(&("WWW-Authenticate", "Bearer".into())));
        (denied.reason, denied.error.reason.into_owned())
    }

    fn now() -> u64 {
        get_current_timestamp()
    }

    #[test]
    fn a_valid_token_grants_its_claims_from_the_header_or_the_query() {
        let v = verifier(&[]);
        let token = hs256(
            json!({"exp": now() + 60, "sub": "u1", "sub_topics": ["news", "chat/*"]}),
            SECRET,
        );
        for request in [with_bearer(&token), request(&format!("/ws?topics=a&token={token}"), "")] {
            let grants = v.verify(&request).unwrap();
            assert_eq!(grants.subject(), Some("u1"));
            assert!(grants.may_subscribe("chat/x") && !grants.may_subscribe("secret"));
            assert!(grants.may_publish("anything"), "no pub_topics claim");
        }
    }

    #[test]
    fn missing_malformed_and_badly_signed_tokens_are_refused() {
        let v = verifier(&[]);
        assert_eq!(refusal(&v, &request("/ws?topics=a", "")).0, DenyReason::TokenMissing);
        assert_eq!(refusal(&v, &request("/ws?token=", "")).0, DenyReason::TokenMissing);
        let basic = request("/", "Authorization: Basic dXNlcjpwYXNz\r\n");
        assert_eq!(
            refusal(&v, &basic),
            (DenyReason::TokenInvalid, "Authorization is not a Bearer token".into())
        );
        assert_eq!(refusal(&v, &with_bearer("not.a.token")).0, DenyReason::TokenInvalid);
        let forged = hs256(json!({"exp": now() + 60}), "another secret of at least 32 bytes!");
        assert_eq!(refusal(&v, &with_bearer(&forged)).1, "bad token signature");
        let bad_claim = hs256(json!({"exp": now() + 60, "sub_topics": ["a*b"]}), SECRET);
        assert!(refusal(&v, &with_bearer(&bad_claim)).1.contains("sub_topics"));
        let not_a_list = hs256(json!({"exp": now() + 60, "pub_topics": "news"}), SECRET);
        assert_eq!(refusal(&v, &with_bearer(&not_a_list)).1, "malformed token claims");
    }

    #[test]
    fn exp_is_required_and_honoured_with_the_leeway_and_nbf_too() {
        let v = verifier(&[]);
        let no_exp = hs256(json!({"sub": "u1"}), SECRET);
        assert_eq!(refusal(&v, &with_bearer(&no_exp)).1, "token has no exp claim");
        let expired = hs256(json!({"exp": now() - 30}), SECRET);
        assert_eq!(
            refusal(&v, &with_bearer(&expired)),
            (DenyReason::TokenExpired, "token expired".into())
        );
        let within_leeway = hs256(json!({"exp": now() - 2}), SECRET);
        assert!(v.verify(&with_bearer(&within_leeway)).is_ok());
        let later = hs256(json!({"exp": now() + 600, "nbf": now() + 300}), SECRET);
        assert_eq!(refusal(&v, &with_bearer(&later)).1, "token not valid yet (nbf)");
        let started = hs256(json!({"exp": now() + 600, "nbf": now() - 1}), SECRET);
        assert!(v.verify(&with_bearer(&started)).is_ok());
    }

    #[test]
    fn only_configured_algorithms_are_accepted_and_none_never() {
        let v = verifier(&[]);
        let header = |alg: &str| {
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
            )
        };
        let claims = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            format!(r#"{{"exp":{}}}"#, now() + 60),
        );
        for alg in ["none", "None"] {
            let unsigned = format!("{}.{claims}.", header(alg));
            assert_eq!(
                refusal(&v, &with_bearer(&unsigned)).0,
                DenyReason::TokenInvalid,
                "{alg}"
            );
        }
        let rs256 = format!("{}.{claims}.c2ln", header("RS256"));
        assert_eq!(
            refusal(&v, &with_bearer(&rs256)).1,
            "token algorithm RS256 is not accepted (accepted: HS256)"
        );
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &json!({"exp": now() + 60}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(refusal(&v, &with_bearer(&hs512)).1.contains("HS512 is not accepted"));
    }

    #[test]
    fn an_audience_must_be_configured_to_be_accepted() {
        let token = hs256(json!({"exp": now() + 60, "aud": "ringcast"}), SECRET);
        assert_eq!(
            refusal(&verifier(&[]), &with_bearer(&token)).1,
            "token audience (aud) not accepted"
        );
        assert!(verifier(&["ringcast"]).verify(&with_bearer(&token)).is_ok());
        assert!(refusal(&verifier(&["other"]), &with_bearer(&token))
            .1
            .contains("audience"));
        let without = hs256(json!({"exp": now() + 60}), SECRET);
        assert_eq!(
            refusal(&verifier(&["ringcast"]), &with_bearer(&without)).1,
            "token has no aud claim"
        );
    }

    #[test]
    fn the_token_parameter_is_not_kept_in_the_query() {
        let v = verifier(&[]);
        assert_eq!(
            v.strip_token("topics=a&token=x.y.z&since=a:1:2").as_deref(),
            Some("topics=a&since=a:1:2")
        );
        assert_eq!(v.strip_token("token=x.y.z"), None);
        assert_eq!(v.strip_token("tokens=1").as_deref(), Some("tokens=1"));
        assert_eq!(query_value(Some("a=1&token=t&token=u"), "token"), Some("t"));
    }

    #[test]
    fn weak_keys_are_refused() {
        let settings = |secret| TokenSettings {
            secret,
            public_key_pem: None,
            query_param: "token",
            leeway_secs: 0,
            audience: &[],
        };
        assert_eq!(
            TokenVerifier::new(settings("short")).err().map(|e| e.0),
            Some("jwt_secret")
        );
        let garbage = TokenSettings {
            public_key_pem: Some(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
            ..settings("")
        };
        assert_eq!(TokenVerifier::new(garbage).err().map(|e| e.0), Some("jwt_public_key"));
    }
}
