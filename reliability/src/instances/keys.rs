//! Key rotation across instances: a key rotated on one instance is in every instance's JWKS before any
//! instance signs with it (each re-reads the ring every half publish lead; the key signs after the lead).

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Cluster, INSTANCES};
use crate::server::ADMIN_TOKEN;
use crate::workload::{answer, json};

fn kid_of(jwt: &str) -> Option<String> {
    let header = URL_SAFE_NO_PAD.decode(jwt.split('.').next()?).ok()?;
    serde_json::from_slice::<Value>(&header).ok()?["kid"].as_str().map(str::to_owned)
}

async fn publishes(cluster: &Cluster, instance: usize, kid: &str) -> bool {
    let request = cluster.http.get(format!("{}/.well-known/jwks.json", cluster.url(instance)));
    answer(request).await.is_some_and(|(status, body)| {
        status == 200 && json(&body)["keys"].as_array().is_some_and(|keys| keys.iter().any(|k| k["kid"] == kid))
    })
}

async fn signing_kid(cluster: &Cluster, instance: usize) -> Option<String> {
    let request = cluster
        .http
        .post(format!("{}/api/v1/sessions", cluster.url(instance)))
        .bearer_auth(&cluster.tenant.api_key)
        .json(&json!({ "userId": "key-watcher" }));
    let (_, body) = answer(request).await?;
    kid_of(json(&body)["accessToken"].as_str()?)
}

pub(super) async fn published_everywhere_before_signing(cluster: &Cluster, lead_secs: u64) -> Result<String, String> {
    let rotate = cluster.http.post(format!("{}/admin/v1/keys/rotate", cluster.url(0))).bearer_auth(ADMIN_TOKEN);
    let Some((201, body)) = answer(rotate).await else { return Err("rotation refused".to_owned()) };
    let Some(kid) = json(&body)["kid"].as_str().map(str::to_owned) else { return Err(format!("no kid in {body}")) };
    let rotated = Instant::now();
    let mut published: [Option<Duration>; INSTANCES] = [None; INSTANCES];
    let mut signed: [Option<Duration>; INSTANCES] = [None; INSTANCES];
    let give_up = Duration::from_secs(lead_secs * 4);
    while signed.iter().any(Option::is_none) {
        if rotated.elapsed() > give_up {
            return Err(format!(
                "the new key did not sign everywhere within {} s: signed {signed:?}",
                give_up.as_secs()
            ));
        }
        for instance in 0..INSTANCES {
            if published[instance].is_none() && publishes(cluster, instance, &kid).await {
                published[instance] = Some(rotated.elapsed());
            }
            if signed[instance].is_none() && signing_kid(cluster, instance).await.as_deref() == Some(kid.as_str()) {
                signed[instance] = Some(rotated.elapsed());
                if let Some(missing) = published.iter().position(Option::is_none) {
                    return Err(format!(
                        "instance {instance} signed with the new key before instance {missing} published it"
                    ));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ms = |times: &[Option<Duration>]| {
        times.iter().map(|t| t.map_or("-".to_owned(), |t| t.as_millis().to_string())).collect::<Vec<_>>().join(", ")
    };
    Ok(format!(
        "publish lead {lead_secs} s: the new key was in the JWKS of the instances after [{}] ms and signed first \
         after [{}] ms",
        ms(&published),
        ms(&signed)
    ))
}
