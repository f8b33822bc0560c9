use cookie::{Cookie, CookieBuilder};
use http::header::{ACCESS_CONTROL_EXPOSE_HEADERS, SET_COOKIE};
use http::{HeaderMap, HeaderValue};
use time::{Duration, OffsetDateTime};

use crate::{
    ACCESS_TOKEN_COOKIE, ACCESS_TOKEN_HEADER, CORS_EXPOSE_HEADERS, FRONT_TOKEN_HEADER, LEGACY_ID_REFRESH_COOKIE,
    REFRESH_TOKEN_COOKIE, REFRESH_TOKEN_HEADER, TokenTransfer,
};

/// `SameSite` of the session cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Same-site requests and top-level navigations.
    Lax,
    /// Same-site only.
    Strict,
    /// Cross-site too (needs `Secure`).
    None,
}

impl SameSite {
    /// The lowercase name (`lax`, `strict`, `none`), as configured.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Lax => "lax",
            Self::Strict => "strict",
            Self::None => "none",
        }
    }

    /// The value named by [`as_str`](Self::as_str).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Lax, Self::Strict, Self::None].into_iter().find(|s| s.as_str() == name)
    }
}

/// Where and how session cookies are set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSettings {
    /// `Domain` attribute; `None` for a host-only cookie.
    pub domain: Option<String>,
    /// Domains of earlier deployments whose cookies are expired when duplicates arrive (`None`: host-only).
    pub older_domains: Vec<Option<String>>,
    /// `Secure` attribute.
    pub secure: bool,
    /// `SameSite` attribute.
    pub same_site: SameSite,
    /// Path of the refresh cookie: the refresh endpoint as the browser sees it, such as
    /// `/auth/session/refresh`.
    pub refresh_path: String,
}

/// Tokens to hand to the client.
#[derive(Debug, Clone, Copy)]
pub struct IssuedTokens<'a> {
    /// The access token.
    pub access_token: &'a str,
    /// The refresh token with its expiry (Unix ms), when one was minted.
    pub refresh_token: Option<(&'a str, i64)>,
    /// The `front-token` value.
    pub front_token: &'a str,
}

/// Writes the session headers of a response. Every `Set-Cookie` is appended, so one response can expire
/// an older domain's cookies and set new ones.
#[derive(Debug, Clone, Copy)]
pub struct TokenResponse<'a> {
    settings: &'a CookieSettings,
}

/// Access cookies outlive the token by a year so an expired token still arrives and gets "try refresh".
const ACCESS_COOKIE_LIFETIME: Duration = Duration::days(365);

impl<'a> TokenResponse<'a> {
    /// For these cookie settings.
    #[must_use]
    pub const fn new(settings: &'a CookieSettings) -> Self {
        Self { settings }
    }

    /// Hands out tokens in `mode`, and clears the other mode's tokens when the request carried them.
    pub fn attach(
        &self,
        headers: &mut HeaderMap,
        mode: TokenTransfer,
        tokens: &IssuedTokens<'_>,
        clear_other_mode: bool,
    ) {
        match mode {
            TokenTransfer::Cookie => {
                let expires = OffsetDateTime::now_utc() + ACCESS_COOKIE_LIFETIME;
                self.set_cookie(
                    headers,
                    ACCESS_TOKEN_COOKIE,
                    tokens.access_token,
                    "/",
                    expires,
                    self.settings.domain.as_deref(),
                );
                if let Some((refresh, expires_ms)) = tokens.refresh_token {
                    let expires = OffsetDateTime::from_unix_timestamp_nanos(i128::from(expires_ms) * 1_000_000)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                    let path = self.settings.refresh_path.clone();
                    self.set_cookie(
                        headers,
                        REFRESH_TOKEN_COOKIE,
                        refresh,
                        &path,
                        expires,
                        self.settings.domain.as_deref(),
                    );
                }
                if clear_other_mode {
                    insert(headers, ACCESS_TOKEN_HEADER, "");
                    insert(headers, REFRESH_TOKEN_HEADER, "");
                }
            }
            TokenTransfer::Header => {
                insert(headers, ACCESS_TOKEN_HEADER, tokens.access_token);
                if let Some((refresh, _)) = tokens.refresh_token {
                    insert(headers, REFRESH_TOKEN_HEADER, refresh);
                }
                if clear_other_mode {
                    self.expire_cookies(headers, self.settings.domain.as_deref());
                }
            }
        }
        insert(headers, FRONT_TOKEN_HEADER, tokens.front_token);
        Self::expose(headers);
    }

    /// The protocol's "clear": expired cookies, empty token headers and `front-token: remove`.
    pub fn clear(&self, headers: &mut HeaderMap) {
        self.expire_cookies(headers, self.settings.domain.as_deref());
        insert(headers, ACCESS_TOKEN_HEADER, "");
        insert(headers, REFRESH_TOKEN_HEADER, "");
        insert(headers, FRONT_TOKEN_HEADER, "remove");
        Self::expose(headers);
    }

    /// Expires the session cookies of every older domain (duplicate-cookie resolution).
    pub fn clear_older_domains(&self, headers: &mut HeaderMap) {
        for domain in &self.settings.older_domains {
            if domain.as_deref() != self.settings.domain.as_deref() {
                self.expire_cookies(headers, domain.as_deref());
            }
        }
    }

    /// Expires the legacy `sIdRefreshToken` cookie.
    pub fn clear_legacy(&self, headers: &mut HeaderMap) {
        self.set_cookie(
            headers,
            LEGACY_ID_REFRESH_COOKIE,
            "",
            "/",
            OffsetDateTime::UNIX_EPOCH,
            self.settings.domain.as_deref(),
        );
    }

    /// `Access-Control-Expose-Headers` with every header the SDK reads.
    pub fn expose(headers: &mut HeaderMap) {
        headers.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("front-token, anti-csrf, st-access-token, st-refresh-token"),
        );
        debug_assert_eq!(CORS_EXPOSE_HEADERS.join(", "), "front-token, anti-csrf, st-access-token, st-refresh-token");
    }

    fn expire_cookies(&self, headers: &mut HeaderMap, domain: Option<&str>) {
        let epoch = OffsetDateTime::UNIX_EPOCH;
        self.set_cookie(headers, ACCESS_TOKEN_COOKIE, "", "/", epoch, domain);
        let path = self.settings.refresh_path.clone();
        self.set_cookie(headers, REFRESH_TOKEN_COOKIE, "", &path, epoch, domain);
    }

    fn set_cookie(
        &self,
        headers: &mut HeaderMap,
        name: &str,
        value: &str,
        path: &str,
        expires: OffsetDateTime,
        domain: Option<&str>,
    ) {
        let mut builder: CookieBuilder<'_> = Cookie::build((name.to_owned(), value.to_owned()))
            .path(path.to_owned())
            .http_only(true)
            .secure(self.settings.secure)
            .same_site(match self.settings.same_site {
                SameSite::Lax => cookie::SameSite::Lax,
                SameSite::Strict => cookie::SameSite::Strict,
                SameSite::None => cookie::SameSite::None,
            })
            .expires(expires);
        if let Some(domain) = domain {
            builder = builder.domain(domain.to_owned());
        }
        let text = builder.build().encoded().to_string();
        if let Ok(value) = HeaderValue::from_str(&text) {
            headers.append(SET_COOKIE, value);
        }
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CookieSettings {
        CookieSettings {
            domain: None,
            older_domains: vec![Some(".example.com".to_owned())],
            secure: false,
            same_site: SameSite::Lax,
            refresh_path: "/auth/session/refresh".to_owned(),
        }
    }

    fn cookies(headers: &HeaderMap) -> Vec<String> {
        headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    }

    #[test]
    fn cookie_mode_sets_both_cookies_and_the_front_token() {
        let s = settings();
        let mut h = HeaderMap::new();
        let tokens = IssuedTokens {
            access_token: "a.b.c",
            refresh_token: Some(("v1.x y", 4_102_444_800_000)),
            front_token: "ft",
        };
        TokenResponse::new(&s).attach(&mut h, TokenTransfer::Cookie, &tokens, false);
        let set = cookies(&h);
        assert_eq!(set.len(), 2);
        assert!(
            set[0].starts_with("sAccessToken=a.b.c;") && set[0].contains("Path=/") && set[0].contains("HttpOnly"),
            "{}",
            set[0]
        );
        assert!(set[0].contains("SameSite=Lax"));
        assert!(
            set[1].starts_with("sRefreshToken=v1.x%20y;") && set[1].contains("Path=/auth/session/refresh"),
            "{}",
            set[1]
        );
        assert!(set[1].contains("Expires=Fri, 01 Jan 2100 00:00:00 GMT"), "{}", set[1]);
        assert_eq!(h.get("front-token").and_then(|v| v.to_str().ok()), Some("ft"));
        assert!(h.get("access-control-expose-headers").is_some());
        assert!(h.get("st-access-token").is_none());
    }

    #[test]
    fn header_mode_uses_headers_and_clears_cookies_when_asked() {
        let s = settings();
        let mut h = HeaderMap::new();
        let tokens = IssuedTokens { access_token: "a.b.c", refresh_token: Some(("rt", 0)), front_token: "ft" };
        TokenResponse::new(&s).attach(&mut h, TokenTransfer::Header, &tokens, true);
        assert_eq!(h.get("st-access-token").and_then(|v| v.to_str().ok()), Some("a.b.c"));
        assert_eq!(h.get("st-refresh-token").and_then(|v| v.to_str().ok()), Some("rt"));
        let set = cookies(&h);
        assert_eq!(set.len(), 2);
        assert!(set.iter().all(|c| c.contains("Expires=Thu, 01 Jan 1970 00:00:00 GMT")));
    }

    #[test]
    fn clear_removes_everything_in_one_response() {
        let s = settings();
        let mut h = HeaderMap::new();
        let wire = TokenResponse::new(&s);
        wire.clear(&mut h);
        wire.clear_older_domains(&mut h);
        let set = cookies(&h);
        assert_eq!(set.len(), 4);
        assert_eq!(set.iter().filter(|c| c.contains("Domain=example.com")).count(), 2, "{set:?}");
        assert_eq!(h.get("front-token").and_then(|v| v.to_str().ok()), Some("remove"));
        assert_eq!(h.get("st-access-token").and_then(|v| v.to_str().ok()), Some(""));
    }
}
