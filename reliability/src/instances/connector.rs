//! Connector single flight across instances: 50 concurrent calls spread over the instances, all finding
//! the access token expired, make one token request (in-process lock, then the database lease, then the
//! version check) and all succeed.

use super::{Cluster, INSTANCES};
use crate::workload::connector::{call, succeeded};

const CALLS: usize = 50;

pub(super) async fn one_refresh_for_concurrent_calls(cluster: &Cluster) -> Result<String, String> {
    for instance in 0..INSTANCES {
        match call(&cluster.target(instance)).await {
            Some((200, body)) if succeeded(&body) => {}
            other => return Err(format!("warm-up call on instance {instance} answered {other:?}")),
        }
    }
    cluster.upstream.expire_access_token();
    let before = cluster.upstream.observed().token_requests();
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let target = cluster.target(i);
            tokio::spawn(async move { call(&target).await })
        })
        .collect();
    let mut failed = Vec::new();
    for task in tasks {
        match task.await.map_err(|e| e.to_string())? {
            Some((200, body)) if succeeded(&body) => {}
            other => failed.push(format!("{other:?}")),
        }
    }
    let observed = cluster.upstream.observed();
    let requests = observed.token_requests() - before;
    if !failed.is_empty() {
        return Err(format!("{} of {CALLS} calls failed: {}", failed.len(), failed.join("; ")));
    }
    if requests != 1 || !observed.violations.is_empty() {
        return Err(format!("{requests} token requests (expected 1); upstream violations {:?}", observed.violations));
    }
    Ok(format!(
        "{CALLS} concurrent calls over {INSTANCES} instances with an expired token: all succeeded, 1 token request"
    ))
}
