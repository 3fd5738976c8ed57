//! The admin token (`admin_token`): the bearer token `POST /publish` and the observability
//! endpoints require when it is set, compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::bearer::{authorization, Authorization};
use super::{Denied, DenyReason};
use crate::proto::handshake::Request;

/// The shortest admin token accepted.
pub(crate) const MIN_ADMIN_TOKEN: usize = 16;

/// The configured admin token, kept as its SHA-256 digest: comparing digests takes the same
/// time whatever the presented token is, its length included.
pub(crate) struct AdminToken {
    digest: [u8; 32],
}

impl AdminToken {
    /// The token `token` (at least [`MIN_ADMIN_TOKEN`] bytes).
    pub fn new(token: &str) -> Result<AdminToken, String> {
        if token.len() < MIN_ADMIN_TOKEN {
            return Err(format!("must be at least {MIN_ADMIN_TOKEN} characters"));
        }
        Ok(AdminToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Admits a request that carries `Authorization: Bearer TOKEN`; else 401 with
    /// `WWW-Authenticate: Bearer`.
    pub fn check(&self, request: &Request) -> Result<(), Denied> {
        let refuse = |reason: &'static str| {
            Err(Denied::new(DenyReason::AdminToken, 401, reason).with_header("WWW-Authenticate", "Bearer"))
        };
        match authorization(request) {
            Authorization::Bearer(token) => {
                let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                match bool::from(presented.ct_eq(&self.digest)) {
                    true => Ok(()),
                    false => refuse("wrong admin token"),
                }
            }
            Authorization::Absent => refuse("this endpoint needs the admin token (Authorization: Bearer)"),
            Authorization::Other => refuse("expected Authorization: Bearer with the admin token"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::test_get;

    fn with(authorization: &str) -> Request {
        test_get("/metrics", authorization)
    }

    #[test]
    fn only_the_exact_token_is_admitted() {
        let admin = AdminToken::new("0123456789abcdef-secret").unwrap();
        assert!(admin
            .check(&with("Authorization: Bearer 0123456789abcdef-secret\r\n"))
            .is_ok());
        for wrong in [
            "",
            "Authorization: Bearer 0123456789abcdef-secreT\r\n",
            "Authorization: Bearer 0123456789abcdef-secret2\r\n",
            "Authorization: Bearer 0123\r\n",
            "Authorization: Basic 0123456789abcdef-secret\r\n",
        ] {
            let refusal = admin.check(&with(wrong)).unwrap_err();
            assert_eq!(refusal.error.status, 401, "{wrong:?}");
            assert_eq!(refusal.reason, DenyReason::AdminToken);
            assert!(refusal.error.headers.contains(&("WWW-Authenticate", "Bearer".into())));
        }
        assert!(AdminToken::new("short").is_err());
    }
}
