//! The egress policy: which addresses outbound connector requests may reach, and the one way they are sent.
//!
//! Every outbound request (method calls, `http_request`, token and lookup requests, paging links) goes through
//! [`send`], which refuses a destination before connecting and follows redirects by hand so that every hop is
//! checked again and gets its credentials from [`Attach`]. Host names are checked in the client's resolver, on
//! the addresses it is about to connect to, so a name that resolves to a public address once and to a private
//! one later (DNS rebinding) is still refused. IP literals never reach the resolver and are checked here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::credentials::Attach;

/// Redirects followed at most, as browsers and reqwest do.
const MAX_REDIRECTS: usize = 10;

/// A destination the policy refuses.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{destination} is a {reason} address, which outbound requests (connectors, events) may not reach")]
pub struct Refused {
    /// The host or address.
    pub destination: String,
    /// Which kind of address it is.
    pub reason: &'static str,
}

impl Refused {
    fn new(destination: impl Into<String>, reason: &'static str) -> Self {
        metrics::counter!("portcullis_connector_egress_refused_total", "reason" => reason).increment(1);
        let refused = Self { destination: destination.into(), reason };
        tracing::warn!(destination = %refused.destination, reason, "outbound request refused");
        refused
    }
}

/// Which addresses outbound requests may reach: public ones, and the allow-listed networks.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allow: Vec<IpNet>,
}

/// Why an address is not public, or `None` for a public one.
fn reserved(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => reserved_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return reserved_v4(v4);
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) embed an IPv4 address that may be private.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                return reserved_v4(Ipv4Addr::new(a, b, c, d));
            }
            if segments[0] == 0x2002 {
                let [a, b] = segments[1].to_be_bytes();
                let [c, d] = segments[2].to_be_bytes();
                return reserved_v4(Ipv4Addr::new(a, b, c, d));
            }
            reserved_v6(v6)
        }
    }
}

fn reserved_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        // 169.254.169.254 is the metadata service of most clouds.
        "link-local"
    } else if ip.is_multicast() {
        "multicast"
    } else if a == 100 && (64..128).contains(&b) {
        // Shared address space; Alibaba Cloud's metadata service is 100.100.100.200.
        "shared (carrier-grade NAT)"
    } else if ip.is_unspecified() || a == 0 {
        "unspecified"
    } else if ip.is_broadcast()
        || a >= 240
        || (a, b, c) == (192, 0, 0)
        || (a == 198 && (b == 18 || b == 19))
        || ip.is_documentation()
    {
        "reserved"
    } else {
        return None;
    })
}

fn reserved_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_multicast() {
        "multicast"
    } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
        "link-local"
    } else if first & 0xfe00 == 0xfc00 {
        // Unique local addresses; AWS's IPv6 metadata service is fd00:ec2::254.
        "private"
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        "reserved"
    } else if ip.segments()[..6] == [0, 0, 0, 0, 0, 0] {
        // IPv4-compatible addresses (deprecated) and other low addresses.
        "reserved"
    } else {
        return None;
    })
}

impl EgressPolicy {
    /// A policy allowing public addresses and these networks.
    #[must_use]
    pub const fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// Whether outbound requests may connect to this address.
    ///
    /// # Errors
    /// The address is reserved and not allow-listed.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        self.refusal(ip).map_or(Ok(()), |reason| Err(Refused::new(ip.to_string(), reason)))
    }

    /// Why this address is refused, if it is.
    fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        reserved(ip).filter(|_| !self.allow.iter().any(|net| net.contains(&ip) || net.contains(&canonical)))
    }

    /// Checks what can be checked before connecting: the scheme, and the address when the host is one.
    ///
    /// # Errors
    /// Another scheme than http(s), no host, or a refused address.
    pub fn check_url(&self, url: &url::Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::new(url.scheme().to_owned() + ":", "non-HTTP"));
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err(Refused::new(url.as_str().to_owned(), "host-less")),
        }
    }

    /// The HTTP client every outbound request uses: this policy in its resolver, no automatic redirects
    /// ([`send`] follows them), no proxy from the environment (it would hide the destination).
    ///
    /// # Errors
    /// The client cannot be built.
    pub fn client(self: &Arc<Self>, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(Resolver(Arc::clone(self))))
            .build()
    }
}

/// Resolves with the system resolver and keeps only the addresses the policy allows.
struct Resolver(Arc<EgressPolicy>);

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.0);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.refusal(addr.ip()) {
                    None => true,
                    Some(reason) => {
                        refused = Some((addr.ip(), reason));
                        false
                    }
                })
                .collect();
            match refused {
                Some((ip, reason)) if allowed.is_empty() => {
                    let refused = Refused::new(format!("{host} ({ip})"), reason);
                    Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// A request body that can be sent again on a redirect that keeps it (307, 308).
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    Empty,
    /// Bytes with an optional content type.
    Bytes(Vec<u8>, Option<&'static str>),
    /// `multipart/form-data`, one text part per field.
    Multipart(Vec<(String, String)>),
}

impl Body {
    fn contains(&self, needle: &str) -> bool {
        match self {
            Self::Empty => false,
            Self::Bytes(bytes, _) => String::from_utf8_lossy(bytes).contains(needle),
            Self::Multipart(fields) => fields.iter().any(|(k, v)| k.contains(needle) || v.contains(needle)),
        }
    }
}

/// One outbound request, before credentials.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The HTTP method.
    pub method: reqwest::Method,
    /// Where to.
    pub url: url::Url,
    /// Headers from the definition and the scripts.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
    /// A timeout for this request only (`http_request`'s remaining budget).
    pub timeout: Option<Duration>,
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The egress policy refused a hop.
    #[error(transparent)]
    Refused(Refused),
    /// Transport failure.
    #[error(transparent)]
    Http(reqwest::Error),
}

impl SendError {
    /// Whether the request timed out.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Http(e) if e.is_timeout())
    }
}

fn refused_in(error: &reqwest::Error) -> Option<Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused.clone());
        }
        source = e.source();
    }
    None
}

/// Sends a request under the egress policy, following up to ten redirects by hand: every hop is checked and
/// gets credentials only when its origin is the API's. A redirect to another origin that would carry a body
/// holding a credential is not followed; its response is the answer.
///
/// # Errors
/// A refused hop, or a transport failure.
pub async fn send(
    client: &reqwest::Client,
    policy: &EgressPolicy,
    attach: &Attach,
    mut request: Outbound,
) -> Result<reqwest::Response, SendError> {
    for _ in 0..=MAX_REDIRECTS {
        policy.check_url(&request.url).map_err(SendError::Refused)?;
        let mut builder = client.request(request.method.clone(), request.url.clone());
        for (name, value) in attach.headers(&request.url, &request.headers) {
            builder = builder.header(name, value);
        }
        if let Some(timeout) = request.timeout {
            builder = builder.timeout(timeout);
        }
        builder = match &request.body {
            Body::Empty => builder,
            Body::Bytes(bytes, content_type) => {
                let builder = builder.body(bytes.clone());
                match content_type {
                    Some(ct) if !request.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) => {
                        builder.header(reqwest::header::CONTENT_TYPE, *ct)
                    }
                    _ => builder,
                }
            }
            Body::Multipart(fields) => builder.multipart(
                fields.iter().fold(reqwest::multipart::Form::new(), |form, (k, v)| form.text(k.clone(), v.clone())),
            ),
        };
        let response =
            builder.send().await.map_err(|e| refused_in(&e).map_or(SendError::Http(e), SendError::Refused))?;
        let status = response.status().as_u16();
        let location = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
        let Some(next) =
            location.filter(|_| matches!(status, 301 | 302 | 303 | 307 | 308)).and_then(|l| request.url.join(l).ok())
        else {
            return Ok(response);
        };
        let keeps_body = matches!(status, 307 | 308);
        if keeps_body && !attach.same_origin(&next) && attach.secrets().iter().any(|s| request.body.contains(s)) {
            return Ok(response);
        }
        if !keeps_body && !matches!(request.method, reqwest::Method::GET | reqwest::Method::HEAD) {
            request.method = reqwest::Method::GET;
        }
        if !keeps_body {
            request.body = Body::Empty;
            request.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        }
        request.url = next;
    }
    Err(SendError::Refused(Refused::new(request.url.to_string(), "redirect loop")))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::EgressPolicy;

    fn refused(policy: &EgressPolicy, ip: &str) -> bool {
        policy.check_ip(ip.parse::<IpAddr>().expect("ip")).is_err()
    }

    #[test]
    fn reserved_addresses_are_refused_unless_allow_listed() {
        let policy = EgressPolicy::default();
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
        ] {
            assert!(refused(&policy, ip), "{ip} is allowed");
        }
        for ip in ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "1.1.1.1"] {
            assert!(!refused(&policy, ip), "{ip} is refused");
        }
        let allowing = EgressPolicy::new(vec!["10.1.0.0/16".parse().expect("net"), "::1/128".parse().expect("net")]);
        assert!(!refused(&allowing, "10.1.2.3"));
        assert!(refused(&allowing, "10.2.0.1"));
        assert!(!refused(&allowing, "::1"));
        assert!(refused(&allowing, "127.0.0.1"));
    }

    #[test]
    fn only_http_urls_with_public_literal_hosts_pass_before_resolution() {
        let policy = EgressPolicy::default();
        let check = |u: &str| policy.check_url(&url::Url::parse(u).expect("url")).is_ok();
        assert!(check("https://api.example.com/v1"));
        assert!(check("http://93.184.215.14/"));
        assert!(!check("http://127.0.0.1:8080/metrics"));
        assert!(!check("http://[::ffff:7f00:1]/"));
        assert!(!check("file:///etc/passwd"));
        assert!(!check("ftp://example.com/"));
    }
}
