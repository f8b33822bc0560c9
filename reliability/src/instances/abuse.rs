//! Abuse counters across instances: the per-IP page limit and the captcha allowance are counted in the
//! store, so a client spreading its requests over the instances gets no more than from one.

use std::time::Duration;

use super::{Cluster, INSTANCES};
use crate::setup::APP;
use crate::workload::answer;

fn authorize(cluster: &Cluster, instance: usize, ip: &str) -> reqwest::RequestBuilder {
    let query = [
        ("client_id", cluster.tenant.org.as_str()),
        ("redirect_uri", &format!("{APP}/callback")),
        ("response_type", "code"),
        ("state", "instances"),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        ("code_challenge_method", "S256"),
    ];
    cluster.http.get(format!("{}/login", cluster.url(instance))).query(&query).header("x-forwarded-for", ip)
}

/// `limit` + 15 page requests from one address, round robin over the instances: exactly `limit` pass.
pub(super) async fn rate_limit_is_shared(cluster: &Cluster, limit: u32) -> Result<String, String> {
    // The window is a calendar minute: start early in one so the burst stays inside it.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?;
    let into_minute = now.as_secs() % 60;
    if into_minute > 45 {
        tokio::time::sleep(Duration::from_secs(61 - into_minute)).await;
    }
    let extra = 15;
    let (mut passed, mut limited) = (0, 0);
    for i in 0..(limit + extra) as usize {
        match answer(authorize(cluster, i, "203.0.113.10")).await {
            Some((303, _)) => passed += 1,
            Some((429, _)) => limited += 1,
            other => return Err(format!("page request {i} answered {other:?}")),
        }
    }
    if passed != limit || limited != extra {
        return Err(format!("{passed} passed and {limited} were limited; expected {limit} and {extra}"));
    }
    Ok(format!(
        "{} page requests from one address over {INSTANCES} instances: {passed} passed, {limited} answered 429",
        limit + extra
    ))
}

/// Email steps from one address, each on the next instance: the first `allowance` pass without a captcha,
/// the next one asks for it.
pub(super) async fn captcha_allowance_is_shared(cluster: &Cluster, allowance: u32) -> Result<String, String> {
    let ip = "203.0.113.20";
    for step in 0..=allowance as usize {
        let Ok(started) = authorize(cluster, step, ip).send().await else { return Err("authorize failed".to_owned()) };
        let headers = started.headers();
        let flow = headers.get("location").and_then(|v| v.to_str().ok()).and_then(|l| l.split('?').next());
        let cookie = headers.get("set-cookie").and_then(|v| v.to_str().ok()).and_then(|c| c.split(';').next());
        let (Some(flow), Some(cookie)) = (flow, cookie) else {
            return Err(format!("authorize answered {} without a flow", started.status()));
        };
        let email = format!("captcha-{step}@example.com");
        let sent = cluster
            .http
            .post(format!("{}{flow}/email", cluster.url(step)))
            .header("cookie", cookie)
            .header("x-forwarded-for", ip)
            .form(&[("email", email.as_str())]);
        let answered = answer(sent).await;
        let last = step == allowance as usize;
        match (&answered, last) {
            (Some((303, _)), false) => {}
            (Some((400, body)), true) if body.contains("checked your browser") => {}
            _ => return Err(format!("email step {step} on instance {} answered {answered:?}", step % INSTANCES)),
        }
    }
    Ok(format!(
        "{allowance} email steps from one address on different instances passed, the next (on instance {}) asked \
         for a captcha",
        allowance as usize % INSTANCES
    ))
}
