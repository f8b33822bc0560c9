//! One organization set up over the admin API, as an operator would: a whitelisted application, a client
//! secret, an API key and a connector account on the fake upstream.

use serde_json::{Value, json};

use crate::server::ADMIN_TOKEN;
use crate::upstream::Upstream;

/// The application the logins return to.
pub(crate) const APP: &str = "https://app.example.com";
/// The connector and account the connector load calls.
pub(crate) const CONNECTOR: &str = "upstream";
pub(crate) const ACCOUNT: &str = "crash-account";

/// What the clients authenticate with.
#[derive(Debug, Clone)]
pub(crate) struct Tenant {
    pub(crate) org: String,
    pub(crate) api_key: String,
    pub(crate) secret: String,
}

/// The connector definition for the fake upstream: OAuth 2, refresh on 401.
pub(crate) fn connector_definition(upstream: &Upstream) -> String {
    format!(
        "name: {CONNECTOR}\nbase_url: {url}\nauth:\n  type: oauth2\n  grant: authorization_code\n  \
         authorize_url: {url}/authorize\n  token_url: {url}/token\n  client_id: reliability\n  \
         client_secret: reliability-secret\nrecovery:\n  - http_codes: [401]\n    action: refresh_then_retry\n\
         methods:\n  items:\n    path: /items\n",
        url = upstream.url
    )
}

async fn admin(
    client: &reqwest::Client,
    url: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Result<Value, String> {
    let response = client
        .request(method.clone(), format!("{url}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("{method} {path}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{method} {path}: {status} {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{method} {path}: {e}: {text}"))
}

fn field(value: &Value, name: &str) -> Result<String, String> {
    value[name].as_str().map(str::to_owned).ok_or_else(|| format!("no `{name}` in {value}"))
}

/// Creates the organization and its credentials on the server at `url`.
pub(crate) async fn tenant(client: &reqwest::Client, url: &str) -> Result<Tenant, String> {
    use reqwest::Method;
    let org =
        field(&admin(client, url, Method::POST, "/admin/v1/organizations", json!({ "name": "Crash" })).await?, "id")?;
    let base = format!("/admin/v1/organizations/{org}");
    admin(client, url, Method::PUT, &format!("{base}/login"), json!({ "whitelist": [APP] })).await?;
    let api_key = field(&admin(client, url, Method::POST, &format!("{base}/api-keys"), json!({})).await?, "key")?;
    let secret = field(&admin(client, url, Method::POST, &format!("{base}/secret"), json!({})).await?, "secret")?;
    let account = json!({ "id": ACCOUNT, "connector": CONNECTOR, "authValue": Upstream::initial_auth_value() });
    admin(client, url, Method::POST, &format!("{base}/connector-accounts"), account).await?;
    Ok(Tenant { org, api_key, secret })
}
