//! The client's IP address: the TCP peer, or, behind a configured reverse proxy, the rightmost
//! `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left can be forged).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, Request};

use crate::app::App;

/// The client address of `request`, if the server was started with connection info.
pub(crate) fn client_ip<B>(request: &Request<B>, trusted_proxies: &[String]) -> Option<IpAddr> {
    client_ip_of(request.extensions(), request.headers(), trusted_proxies)
}

/// The client's address, for handlers: `None` when the server runs without connection info.
#[derive(Debug, Clone)]
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

impl FromRequestParts<Arc<App>> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip_of(&parts.extensions, &parts.headers, &app.config().server.trusted_proxies)))
    }
}

fn client_ip_of(extensions: &Extensions, headers: &HeaderMap, trusted_proxies: &[String]) -> Option<IpAddr> {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())?;
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|p| p.parse::<IpAddr>().is_ok_and(|p| p == *ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|entry| entry.trim().parse().ok())
        .collect();
    Some(forwarded.into_iter().rev().find(|ip| !trusted(ip)).unwrap_or(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().uri("/");
        if let Some(forwarded) = forwarded {
            builder = builder.header("x-forwarded-for", forwarded);
        }
        let mut request = builder.body(()).expect("request");
        request.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().expect("addr")));
        request
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let proxies = vec!["10.0.0.1".to_owned()];
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(client_ip(&request("203.0.113.7:5000", Some("198.51.100.1")), &proxies), Some(ip("203.0.113.7")));
        assert_eq!(
            client_ip(&request("10.0.0.1:5000", Some("1.2.3.4, 198.51.100.1")), &proxies),
            Some(ip("198.51.100.1")),
            "the rightmost untrusted entry, never a forged one to its left"
        );
        assert_eq!(client_ip(&request("10.0.0.1:5000", None), &proxies), Some(ip("10.0.0.1")));
        assert_eq!(client_ip(&Request::new(()), &proxies), None);
    }
}
