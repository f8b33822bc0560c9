//! Sessions across instances: concurrent refreshes of one token, and a revocation reaching an SDK that
//! talks to another instance.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, Method};
use serde_json::json;

use super::{Cluster, INSTANCES};
use crate::workload::refresh::{RefreshClient, refresh};
use crate::workload::{answer, json};

/// Concurrent refreshes sent with one token.
const RACERS: usize = 16;

/// 16 refreshes of one token at once, spread over the instances: every one answers 200 (one rotation,
/// the rest siblings within the grace window), none is taken for theft, and afterwards the original token
/// is still the previous one (a second rotation would make it theft).
pub(super) async fn concurrent_refreshes(cluster: &Cluster) -> Result<String, String> {
    let client = RefreshClient::create(&cluster.target(0), "race-user").await?;
    let original = client.token;
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let target = cluster.target(i);
            let token = original.clone();
            tokio::spawn(async move { refresh(&target, &token).await })
        })
        .collect();
    let mut refused = Vec::new();
    for task in tasks {
        match task.await.map_err(|e| e.to_string())? {
            Some((200, _)) => {}
            other => refused.push(format!("{other:?}")),
        }
    }
    if !refused.is_empty() {
        return Err(format!("{} of {RACERS} concurrent refreshes were refused: {}", refused.len(), refused.join("; ")));
    }
    match refresh(&cluster.target(1), &original).await {
        Some((200, _)) => Ok(format!(
            "{RACERS} concurrent refreshes of one token over {INSTANCES} instances: all 200, one rotation, no theft"
        )),
        other => Err(format!("after the race the original token answered {other:?}: more than one rotation")),
    }
}

/// A session revoked through instance 1 is refused by a Rust SDK that polls instance 2's deny-list feed,
/// within twice its poll interval.
pub(super) async fn revocation_reaches_the_sdk(cluster: &Cluster) -> Result<String, String> {
    let poll = Duration::from_secs(1);
    let sdk = portcullis_sdk::Portcullis::builder(cluster.url(2), &cluster.tenant.api_key)
        .revocation_check(poll, Duration::from_secs(3600))
        .build()
        .await
        .map_err(|e| format!("SDK: {e}"))?;
    let created = cluster
        .http
        .post(format!("{}/api/v1/sessions", cluster.url(0)))
        .bearer_auth(&cluster.tenant.api_key)
        .json(&json!({ "userId": "revoked-user" }));
    let Some((201, body)) = answer(created).await else { return Err("could not create a session".to_owned()) };
    let body = json(&body);
    let (Some(access), Some(handle)) = (body["accessToken"].as_str(), body["session"]["handle"].as_str()) else {
        return Err(format!("no access token or handle in {body}"));
    };
    let mut headers = HeaderMap::new();
    let bearer = HeaderValue::from_str(&format!("Bearer {access}")).map_err(|e| e.to_string())?;
    headers.insert("authorization", bearer);
    sdk.verify_request(&Method::GET, &headers, &[]).await.map_err(|e| format!("before revocation: {e:?}"))?;

    let revoke = cluster
        .http
        .delete(format!("{}/api/v1/sessions/{handle}", cluster.url(1)))
        .bearer_auth(&cluster.tenant.api_key);
    match answer(revoke).await {
        Some((200, body)) if json(&body)["revoked"] == true => {}
        other => return Err(format!("revocation answered {other:?}")),
    }
    let revoked = Instant::now();
    let bound = poll * 2;
    while sdk.verify_request(&Method::GET, &headers, &[]).await.is_ok() {
        if revoked.elapsed() > bound {
            return Err(format!(
                "the SDK still accepted the revoked session after {} ms",
                revoked.elapsed().as_millis()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(format!(
        "revoked on instance 1, refused by the SDK on instance 2 after {} ms (poll every {} ms; bound {} ms)",
        revoked.elapsed().as_millis(),
        poll.as_millis(),
        bound.as_millis()
    ))
}
