//! Reading a bearer token from a request's `Authorization` header (RFC 6750 section 2.1).

use crate::proto::handshake::Request;

/// What the `Authorization` header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Authorization<'a> {
    /// No `Authorization` header.
    Absent,
    /// `Bearer TOKEN` (the scheme case-insensitive), with the token.
    Bearer(&'a str),
    /// Something else: another scheme, no token, several headers, or bytes that are not text.
    Other,
}

/// The request's `Authorization`.
pub(crate) fn authorization(request: &Request) -> Authorization<'_> {
    let mut values = request.header_values("authorization");
    let (Some(value), None) = (values.next(), values.next()) else {
        return match request.header("authorization") {
            None => Authorization::Absent,
            Some(_) => Authorization::Other,
        };
    };
    let Ok(value) = std::str::from_utf8(value) else {
        return Authorization::Other;
    };
    match value.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Authorization::Bearer(token.trim())
        }
        _ => Authorization::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::test_get;

    fn of(headers: &str) -> Request {
        test_get("/", headers)
    }

    #[test]
    fn bearer_tokens_are_read_and_anything_else_is_told_apart() {
        assert_eq!(authorization(&of("")), Authorization::Absent);
        assert_eq!(
            authorization(&of("Authorization: Bearer abc.def\r\n")),
            Authorization::Bearer("abc.def")
        );
        assert_eq!(
            authorization(&of("authorization: bearer  abc \r\n")),
            Authorization::Bearer("abc")
        );
        for other in [
            "Authorization: Basic dXNlcjpwYXNz\r\n",
            "Authorization: Bearer\r\n",
            "Authorization: Bearer \r\n",
            "Authorization: abc\r\n",
            "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n",
        ] {
            assert_eq!(authorization(&of(other)), Authorization::Other, "{other:?}");
        }
    }
}
