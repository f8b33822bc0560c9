use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use crate::{
    ACCESS_TOKEN_COOKIE, AUTH_MODE_HEADER, LEGACY_ID_REFRESH_COOKIE, REFRESH_TOKEN_COOKIE, REFRESH_TOKEN_HEADER,
    RID_HEADER,
};

/// Cookie or header transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTransfer {
    /// `sAccessToken` / `sRefreshToken` cookies.
    Cookie,
    /// `Authorization: Bearer` in, `st-access-token` / `st-refresh-token` out.
    Header,
}

impl TokenTransfer {
    /// The mode a session-creating request asks for: `st-auth-mode: cookie`, else header (SuperTokens'
    /// default for an absent or unknown value).
    #[must_use]
    pub fn requested(headers: &HeaderMap) -> Self {
        match headers.get(AUTH_MODE_HEADER).and_then(|v| v.to_str().ok()).map(str::trim) {
            Some(mode) if mode.eq_ignore_ascii_case("cookie") => Self::Cookie,
            _ => Self::Header,
        }
    }
}

/// The session tokens a request carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestTokens {
    /// Every `sAccessToken` cookie value (more than one after a cookie-domain change).
    pub access_cookies: Vec<String>,
    /// Every `sRefreshToken` cookie value.
    pub refresh_cookies: Vec<String>,
    /// `Authorization: Bearer` value.
    pub bearer: Option<String>,
    /// `st-refresh-token` request header (accepted as well as the bearer on refresh).
    pub refresh_header: Option<String>,
    /// Whether the legacy `sIdRefreshToken` cookie came along.
    pub legacy_id_refresh: bool,
    /// Whether `rid` was sent (anti-CSRF by custom header).
    pub has_rid: bool,
}

impl RequestTokens {
    /// Reads the tokens. Cookie values are URL-decoded; duplicates are kept.
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut tokens = Self {
            bearer: headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            refresh_header: headers
                .get(REFRESH_TOKEN_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            has_rid: headers.contains_key(RID_HEADER),
            ..Self::default()
        };
        for header in headers.get_all(COOKIE) {
            let Ok(header) = header.to_str() else {
                continue;
            };
            for cookie in cookie::Cookie::split_parse_encoded(header).flatten() {
                match cookie.name() {
                    ACCESS_TOKEN_COOKIE if !cookie.value().is_empty() => {
                        tokens.access_cookies.push(cookie.value().to_owned())
                    }
                    REFRESH_TOKEN_COOKIE if !cookie.value().is_empty() => {
                        tokens.refresh_cookies.push(cookie.value().to_owned());
                    }
                    LEGACY_ID_REFRESH_COOKIE => tokens.legacy_id_refresh = true,
                    _ => {}
                }
            }
        }
        tokens
    }

    /// Whether the browser sent session cookies for more than one domain.
    #[must_use]
    pub fn has_duplicate_cookies(&self) -> bool {
        self.access_cookies.len() > 1 || self.refresh_cookies.len() > 1
    }

    /// The access token to verify and where it came from: a bearer value that looks like a JWT wins
    /// (the SDK sends the header-mode token there), else the single access cookie.
    #[must_use]
    pub fn access_token(&self) -> Option<(&str, TokenTransfer)> {
        if let Some(bearer) = self.bearer.as_deref().filter(|b| b.split('.').count() == 3) {
            return Some((bearer, TokenTransfer::Header));
        }
        match self.access_cookies.as_slice() {
            [single] => Some((single.as_str(), TokenTransfer::Cookie)),
            _ => None,
        }
    }

    /// The refresh token(s) to try, with the mode to answer in: `Authorization: Bearer` first, then
    /// `st-refresh-token`, then the cookie(s).
    #[must_use]
    pub fn refresh_candidates(&self) -> (Vec<&str>, TokenTransfer) {
        if let Some(token) = self.bearer.as_deref().or(self.refresh_header.as_deref()) {
            return (vec![token], TokenTransfer::Header);
        }
        (self.refresh_cookies.iter().map(String::as_str).collect(), TokenTransfer::Cookie)
    }

    /// Whether tokens of `mode` came with the request (so that answering in the other mode clears them).
    #[must_use]
    pub fn carries(&self, mode: TokenTransfer) -> bool {
        match mode {
            TokenTransfer::Cookie => !self.access_cookies.is_empty() || !self.refresh_cookies.is_empty(),
            TokenTransfer::Header => self.bearer.is_some() || self.refresh_header.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    #[test]
    fn cookies_are_decoded_and_duplicates_counted() {
        let t = RequestTokens::from_headers(&headers(&[
            ("cookie", "sAccessToken=a.b.c; sRefreshToken=v1.x%2By; other=1"),
            ("cookie", "sAccessToken=d.e.f"),
        ]));
        assert_eq!(t.access_cookies, ["a.b.c", "d.e.f"]);
        assert_eq!(t.refresh_cookies, ["v1.x+y"]);
        assert!(t.has_duplicate_cookies());
        assert_eq!(t.access_token(), None, "duplicates are not guessed between");
    }

    #[test]
    fn bearer_jwt_wins_for_access_and_bearer_wins_for_refresh() {
        let t = RequestTokens::from_headers(&headers(&[
            ("authorization", "Bearer h.e.ader"),
            ("cookie", "sAccessToken=c.o.okie; sRefreshToken=rt"),
            ("rid", "session"),
        ]));
        assert_eq!(t.access_token(), Some(("h.e.ader", TokenTransfer::Header)));
        assert_eq!(t.refresh_candidates(), (vec!["h.e.ader"], TokenTransfer::Header));
        assert!(t.has_rid);
        let t = RequestTokens::from_headers(&headers(&[
            ("authorization", "Bearer opaque"),
            ("cookie", "sAccessToken=c.o.okie"),
        ]));
        assert_eq!(
            t.access_token(),
            Some(("c.o.okie", TokenTransfer::Cookie)),
            "a non-JWT bearer is not a session token"
        );
    }

    #[test]
    fn st_refresh_token_header_is_accepted() {
        let t = RequestTokens::from_headers(&headers(&[("st-refresh-token", "rt")]));
        assert_eq!(t.refresh_candidates(), (vec!["rt"], TokenTransfer::Header));
    }

    #[test]
    fn auth_mode_defaults_to_header() {
        assert_eq!(TokenTransfer::requested(&headers(&[("st-auth-mode", "cookie")])), TokenTransfer::Cookie);
        assert_eq!(TokenTransfer::requested(&headers(&[("st-auth-mode", "bogus")])), TokenTransfer::Header);
        assert_eq!(TokenTransfer::requested(&HeaderMap::new()), TokenTransfer::Header);
    }
}
