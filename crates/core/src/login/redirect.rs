//! Where a login may send the browser: whitelisted origins, loopback for development, and `return_to`
//! (CentralAuth's npm library puts the app page to come back to inside the callback URL).
//!
//! Rules (reference §2.3, §5 trap 3, §9):
//! - Whitelist entries are `https://` origins without a path, or `https://*.example.com`, which matches any
//!   depth below `example.com` but never the apex; ports must match. An empty whitelist allows nothing.
//!   A bare domain (`example.com`, `*.example.com`), as CentralAuth's examples write it, means its
//!   `https://` origin and is stored that way.
//! - `http` is accepted only for loopback hosts (`localhost`, `127.0.0.1`, `[::1]`, any port, RFC 8252
//!   §7.3), and only when the organization allows localhost.
//! - A callback URI has no fragment and no credentials.

use url::{Host, Url};

use crate::{Error, ErrorCode};

/// Longest redirect URI accepted.
pub const MAX_REDIRECT_URI_LEN: usize = 2048;

/// An organization's allowed origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whitelist {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Exact { scheme: String, host: String, port: u16 },
    Wildcard { scheme: String, suffix: String, port: u16 },
}

/// A whitelist entry as stored: a bare domain (no scheme) becomes its `https://` origin.
#[must_use]
pub fn normalize_entry(entry: &str) -> String {
    let entry = entry.trim();
    if entry.contains("://") { entry.to_owned() } else { format!("https://{entry}") }
}

impl Whitelist {
    /// Parses and validates entries.
    ///
    /// # Errors
    /// `entityInvalid` naming the first entry that is not an origin or a `*.` wildcard origin.
    pub fn parse(entries: &[String]) -> Result<Self, Error> {
        let invalid = |entry: &str, why: &str| {
            Error::new(ErrorCode::EntityInvalid).with_message(format!("The whitelist entry `{entry}` {why}."))
        };
        let mut parsed = Vec::new();
        for entry in entries {
            let (wildcard, rest) = match entry.split_once("://*.") {
                Some((scheme, rest)) => (true, format!("{scheme}://{rest}")),
                None => (false, entry.clone()),
            };
            let url =
                Url::parse(&rest).map_err(|_| invalid(entry, "is not an origin such as https://app.example.com"))?;
            if url.path() != "/" || rest.ends_with('/') || url.query().is_some() || url.fragment().is_some() {
                return Err(invalid(entry, "must be an origin without a path"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(invalid(entry, "must not carry credentials"));
            }
            let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
                return Err(invalid(entry, "has no host"));
            };
            if url.scheme() != "https" && !is_loopback(&url) {
                return Err(invalid(entry, "must use https (http only for localhost)"));
            }
            let port = url.port_or_known_default().unwrap_or(443);
            let scheme = url.scheme().to_owned();
            parsed.push(if wildcard {
                if host.split('.').count() < 2 {
                    return Err(invalid(entry, "must wildcard below a registrable domain"));
                }
                Entry::Wildcard { scheme, suffix: host, port }
            } else {
                Entry::Exact { scheme, host, port }
            });
        }
        Ok(Self { entries: parsed })
    }

    /// Whether `url`'s origin is allowed (`allow_localhost` admits loopback on any port).
    #[must_use]
    pub fn allows(&self, url: &Url, allow_localhost: bool) -> bool {
        if is_loopback(url) {
            return allow_localhost;
        }
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else { return false };
        let port = url.port_or_known_default().unwrap_or(0);
        self.entries.iter().any(|entry| match entry {
            Entry::Exact { scheme, host: h, port: p } => scheme == url.scheme() && *h == host && *p == port,
            Entry::Wildcard { scheme, suffix, port: p } => {
                scheme == url.scheme()
                    && *p == port
                    && host.len() > suffix.len() + 1
                    && host.ends_with(suffix.as_str())
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
        })
    }

    /// Whether the whitelist is empty (which allows nothing).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Whether the URL's host is a loopback name or address.
#[must_use]
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Validates a login's `redirect_uri`: present, absolute, allowed origin, no fragment or credentials, and
/// a safe `return_to` when it carries one.
///
/// # Errors
/// `callbackUrlMissing` when absent, `callbackUrlInvalid` otherwise. Both mean: show the error page,
/// never redirect.
pub fn validate_redirect_uri(raw: Option<&str>, whitelist: &Whitelist, allow_localhost: bool) -> Result<Url, Error> {
    let raw = raw.map(str::trim).filter(|r| !r.is_empty()).ok_or_else(|| Error::new(ErrorCode::CallbackUrlMissing))?;
    let invalid =
        |why: &str| Error::new(ErrorCode::CallbackUrlInvalid).with_message(format!("The callback URL {why}."));
    if raw.len() > MAX_REDIRECT_URI_LEN {
        return Err(invalid("is too long"));
    }
    let url = Url::parse(raw).map_err(|_| invalid("is not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(invalid("must not contain a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not contain credentials"));
    }
    if !matches!(url.scheme(), "https" | "http") || (url.scheme() == "http" && !is_loopback(&url)) {
        return Err(invalid("must use https (http only for localhost)"));
    }
    if !whitelist.allows(&url, allow_localhost) {
        return Err(invalid("is not on the organization's whitelist"));
    }
    if let Some((_, return_to)) = url.query_pairs().find(|(k, _)| k == "return_to") {
        validate_return_to(&return_to, whitelist, allow_localhost)?;
    }
    Ok(url)
}

/// The strict face's rule (RFC 9700 §2.1): the redirect URI equals a registered one as a string, except
/// that a loopback URI may use any port (RFC 8252 §7.3, native apps bind an ephemeral one).
///
/// # Errors
/// `callbackUrlMissing`, or `callbackUrlInvalid` for an unregistered URI.
pub fn registered_redirect_uri(raw: Option<&str>, registered: &[String]) -> Result<Url, Error> {
    let raw = raw.filter(|r| !r.is_empty()).ok_or_else(|| Error::new(ErrorCode::CallbackUrlMissing))?;
    let unregistered = || {
        Error::new(ErrorCode::CallbackUrlInvalid)
            .with_message("The redirect_uri is not one of the application's registered redirect URIs.")
    };
    if raw.len() > MAX_REDIRECT_URI_LEN {
        return Err(unregistered());
    }
    if registered.iter().any(|r| r == raw) {
        return Url::parse(raw).map_err(|_| unregistered());
    }
    let url = Url::parse(raw).map_err(|_| unregistered())?;
    let without_port = |u: &Url| {
        let mut u = u.clone();
        u.set_port(None).ok().map(|()| u)
    };
    let loopback_match = is_loopback(&url)
        && url.scheme() == "http"
        && registered.iter().filter_map(|r| Url::parse(r).ok()).any(|r| {
            is_loopback(&r) && r.scheme() == "http" && without_port(&r).is_some_and(|r| Some(r) == without_port(&url))
        });
    if loopback_match { Ok(url) } else { Err(unregistered()) }
}

/// `return_to` is an absolute URL with an allowed origin, or a path with exactly one leading `/`.
///
/// # Errors
/// `callbackUrlInvalid`.
pub fn validate_return_to(value: &str, whitelist: &Whitelist, allow_localhost: bool) -> Result<(), Error> {
    let invalid = || {
        Error::new(ErrorCode::CallbackUrlInvalid)
            .with_message("The `return_to` address must be a path on the app or a whitelisted URL.")
    };
    if value.starts_with('/') {
        let safe = !value.starts_with("//") && !value.contains('\\') && !value.chars().any(char::is_control);
        return if safe { Ok(()) } else { Err(invalid()) };
    }
    let url = Url::parse(value).map_err(|_| invalid())?;
    if whitelist.allows(&url, allow_localhost) && matches!(url.scheme(), "https" | "http") {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// The callback URI without its `return_to` parameter, normalised: the compat token step compares this
/// with the authorization request's (npm sends the bare callback URL at the token step).
#[must_use]
pub fn without_return_to(url: &Url) -> String {
    let mut bare = url.clone();
    let kept: Vec<(String, String)> =
        url.query_pairs().filter(|(k, _)| k != "return_to").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    if kept.is_empty() {
        bare.set_query(None);
    } else {
        bare.query_pairs_mut().clear().extend_pairs(kept);
    }
    bare.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whitelist(entries: &[&str]) -> Whitelist {
        Whitelist::parse(&entries.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>()).expect("whitelist")
    }

    fn url(text: &str) -> Url {
        Url::parse(text).expect("url")
    }

    #[test]
    fn exact_and_wildcard_origins() {
        let w = whitelist(&["https://app.example.com", "https://*.corp.example", "https://dev.example.com:8443"]);
        assert!(w.allows(&url("https://app.example.com/cb"), false));
        assert!(w.allows(&url("https://APP.example.com/cb?x=1"), false));
        assert!(!w.allows(&url("http://app.example.com/cb"), false), "scheme must match");
        assert!(!w.allows(&url("https://app.example.com:444/cb"), false), "port must match");
        assert!(!w.allows(&url("https://evil-app.example.com/cb"), false));
        assert!(w.allows(&url("https://a.corp.example/cb"), false));
        assert!(w.allows(&url("https://b.a.corp.example/cb"), false), "any depth below");
        assert!(!w.allows(&url("https://corp.example/cb"), false), "never the apex");
        assert!(!w.allows(&url("https://evilcorp.example/cb"), false));
        assert!(w.allows(&url("https://dev.example.com:8443/"), false));
        assert!(!w.allows(&url("https://dev.example.com/"), false));
    }

    #[test]
    fn an_empty_whitelist_allows_nothing_and_loopback_needs_the_setting() {
        let w = whitelist(&[]);
        assert!(w.is_empty());
        assert!(!w.allows(&url("https://app.example.com/"), false));
        assert!(!w.allows(&url("http://localhost:3000/cb"), false));
        assert!(w.allows(&url("http://localhost:3000/cb"), true));
        assert!(w.allows(&url("http://127.0.0.1:49152/cb"), true));
        assert!(w.allows(&url("http://[::1]:8080/cb"), true));
    }

    #[test]
    fn bad_whitelist_entries_are_refused() {
        for bad in [
            "https://app.example.com/path",
            "app.example.com/path",
            "http://app.example.com",
            "https://*.com",
            "ftp://x.example",
        ] {
            let err = Whitelist::parse(&[bad.to_owned()]).expect_err(bad);
            assert_eq!(err.code(), ErrorCode::EntityInvalid, "{bad}");
        }
    }

    #[test]
    fn bare_domains_mean_their_https_origin() {
        assert_eq!(normalize_entry("example.com"), "https://example.com");
        assert_eq!(normalize_entry(" *.example.com "), "https://*.example.com");
        assert_eq!(normalize_entry("app.example.com:8443"), "https://app.example.com:8443");
        assert_eq!(normalize_entry("http://localhost:3000"), "http://localhost:3000");
        let w = whitelist(&[&normalize_entry("example.com"), &normalize_entry("*.corp.example")]);
        assert!(w.allows(&url("https://example.com/cb"), false));
        assert!(!w.allows(&url("http://example.com/cb"), false), "https only");
        assert!(!w.allows(&url("https://www.example.com/cb"), false), "a bare domain is not a wildcard");
        assert!(w.allows(&url("https://a.corp.example/cb"), false));
    }

    #[test]
    fn redirect_uris_are_validated_before_any_redirect() {
        let w = whitelist(&["https://app.example.com"]);
        assert!(validate_redirect_uri(Some("https://app.example.com/api/auth/callback"), &w, false).is_ok());
        let code = |raw: Option<&str>| validate_redirect_uri(raw, &w, false).map(|_| ()).map_err(|e| e.code());
        assert_eq!(code(None), Err(ErrorCode::CallbackUrlMissing));
        assert_eq!(code(Some("  ")), Err(ErrorCode::CallbackUrlMissing));
        for bad in [
            "https://evil.example/cb",
            "/relative",
            "https://app.example.com/cb#frag",
            "https://user:pw@app.example.com/cb",
            "javascript:alert(1)",
            "http://app.example.com/cb",
        ] {
            assert_eq!(code(Some(bad)), Err(ErrorCode::CallbackUrlInvalid), "{bad}");
        }
    }

    #[test]
    fn registered_redirect_uris_match_exactly() {
        let registered = vec!["https://app.example.com/cb".to_owned(), "http://127.0.0.1:8080/cb".to_owned()];
        assert!(registered_redirect_uri(Some("https://app.example.com/cb"), &registered).is_ok());
        for refused in [
            "https://app.example.com/cb/",
            "https://app.example.com/cb?x=1",
            "https://app.example.com/logout?next=https://evil.example/collect",
            "https://APP.example.com/cb",
            "http://127.0.0.1:9/other",
        ] {
            let error = registered_redirect_uri(Some(refused), &registered).expect_err(refused);
            assert_eq!(error.code(), ErrorCode::CallbackUrlInvalid, "{refused}");
        }
        assert!(registered_redirect_uri(Some("http://127.0.0.1:53121/cb"), &registered).is_ok(), "any loopback port");
        assert_eq!(
            registered_redirect_uri(None, &registered).map_err(|e| e.code()).err(),
            Some(ErrorCode::CallbackUrlMissing)
        );
    }

    #[test]
    fn return_to_cannot_open_a_redirect() {
        let w = whitelist(&["https://app.example.com"]);
        let ok = |rt: &str| {
            let cb = format!("https://app.example.com/cb?return_to={}", urlencode(rt));
            validate_redirect_uri(Some(&cb), &w, false).is_ok()
        };
        assert!(ok("/dashboard?tab=1"));
        assert!(ok("https://app.example.com/settings"));
        assert!(!ok("//evil.example/x"));
        assert!(!ok("/\\evil.example"));
        assert!(!ok("https://evil.example/"));
        assert!(!ok("javascript:alert(1)"));
    }

    fn urlencode(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    #[test]
    fn token_step_compares_without_return_to() {
        let a = url("https://app.example.com/cb?return_to=%2Fhome");
        let b = url("https://app.example.com/cb");
        assert_eq!(without_return_to(&a), without_return_to(&b));
        let c = url("https://app.example.com/cb?x=1&return_to=%2Fhome");
        assert_eq!(without_return_to(&c), "https://app.example.com/cb?x=1");
    }
}
