//! Inbound webhooks: a provider POSTs to an account's webhook method; the signature is checked, Cyclr's
//! `before_webhook` and `after_webhook` run, and what they accept goes to the organization's event endpoints
//! as `connector.webhook.received`.

use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_core::events::Event as OutboundEvent;
use portcullis_core::{Error, ErrorCode};
use serde_json::{Map, Value, json};

use super::{ConnectorRuntime, err, origin_of, script_error, secrets};
use crate::credentials::{Attach, Sandbox};
use crate::script::{Budget, Event, Outcome};
use crate::webhook_signature;

/// A webhook request as the server received it.
#[derive(Debug, Clone, Default)]
pub struct InboundWebhook {
    /// The full URL it was sent to (`method_endpoint`).
    pub url: String,
    /// Its headers.
    pub headers: http::HeaderMap,
    /// Its query parameters (`method_request_parameters`).
    pub query: Map<String, Value>,
    /// Its body, as sent.
    pub body: Vec<u8>,
}

/// What to answer the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookReply {
    /// The HTTP status.
    pub status: u16,
    /// Headers (`method_response_headers` of a `before_webhook` that answered itself).
    pub headers: Map<String, Value>,
    /// The body: JSON, or a string sent as text.
    pub body: Value,
}

fn no_such_webhook() -> Error {
    err(ErrorCode::EntityMissing, "There is no such webhook.")
}

impl ConnectorRuntime {
    fn webhook_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.master.derive("portcullis connector webhook urls"))
    }

    /// The secret last segment of an account's webhook URL: an HMAC of organization, account and method
    /// under a key derived from the master key, so URLs need no storage and cannot be guessed.
    #[must_use]
    pub fn webhook_token(&self, org: &str, account: &str, method: &str) -> String {
        let tag = hmac::sign(&self.webhook_key(), format!("{org}\0{account}\0{method}").as_bytes());
        URL_SAFE_NO_PAD.encode(&tag.as_ref()[..24])
    }

    /// The path of an account's webhook method URL (below the public URL).
    #[must_use]
    pub fn webhook_path(&self, org: &str, account: &str, method: &str) -> String {
        format!("/connectors/webhooks/{org}/{account}/{method}/{}", self.webhook_token(org, account, method))
    }

    /// The webhook methods of an account's connector.
    ///
    /// # Errors
    /// `entityMissing` for an unknown account.
    pub async fn webhook_methods(&self, org: &str, account: &str) -> Result<Vec<String>, Error> {
        let record = self.account_record(org, account).await?;
        let connector = self.connector(&record.connector)?;
        Ok(connector.methods.iter().filter(|(_, m)| m.webhook.is_some()).map(|(id, _)| id.clone()).collect())
    }

    /// Receives a webhook for an account's webhook method.
    ///
    /// # Errors
    /// `entityMissing` for a wrong token, account or method (one answer for all, so URLs cannot be probed);
    /// `webhookSignatureInvalid`; the scripts' failures.
    pub async fn receive_webhook(
        &self,
        org: &str,
        account: &str,
        method_id: &str,
        token: &str,
        inbound: InboundWebhook,
    ) -> Result<WebhookReply, Error> {
        let tag = URL_SAFE_NO_PAD.decode(token).map_err(|_| no_such_webhook())?;
        let message = format!("{org}\0{account}\0{method_id}");
        let expected = hmac::sign(&self.webhook_key(), message.as_bytes());
        if tag.len() != 24 || aws_lc_rs::constant_time::verify_slices_are_equal(&tag, &expected.as_ref()[..24]).is_err()
        {
            return Err(no_such_webhook());
        }
        let record = self.account_record(org, account).await.map_err(|_| no_such_webhook())?;
        let connector = self.connector(&record.connector).map_err(|_| no_such_webhook())?;
        let method = connector.methods.get(method_id).filter(|m| m.webhook.is_some()).ok_or_else(no_such_webhook)?;
        let loaded = self.load(org, account, &record.connector).await?;
        if let Some(spec) = method.webhook.as_ref().and_then(|w| w.signature.as_ref()) {
            let secret = loaded.credentials.properties.get(&spec.secret_property).cloned().unwrap_or_default();
            let now = self.clock.now().unix_seconds();
            if let Err(refusal) = webhook_signature::verify(spec, &secret, &inbound.headers, &inbound.body, now) {
                tracing::warn!(organization = %org, account = %account, method = %method_id, why = %refusal,
                    "inbound webhook refused");
                return Err(Error::new(ErrorCode::WebhookSignatureInvalid).with_internal(refusal));
            }
        }

        let body = if inbound.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&inbound.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&inbound.body).into_owned()))
        };
        let headers: Map<String, Value> = inbound
            .headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), Value::String(v.to_owned()))))
            .collect();
        let levels: Vec<String> =
            [connector.script.clone(), method.script.clone()].into_iter().map(Option::unwrap_or_default).collect();
        let budget = Arc::new(Budget::new(self.config.limits.timeout));
        let secrets = secrets(&connector, &loaded.credentials);
        let base_url = Self::connector_url(&connector, &loaded.credentials, &connector.base_url)?;
        let attach =
            Attach::new(origin_of(&base_url), Self::auth_header(&connector, &loaded.credentials), secrets.clone());
        let sandbox = Sandbox { secrets, auth_value: None };
        let host = self.host(attach, Some(self.storage(&loaded.record)), &budget, sandbox);

        let mut globals = Map::new();
        globals.insert("method_endpoint".to_owned(), Value::String(inbound.url));
        globals.insert("method_request_headers".to_owned(), Value::Object(headers));
        globals.insert("method_request".to_owned(), body);
        globals.insert("method_request_parameters".to_owned(), Value::Object(inbound.query));
        globals.insert("method_response_headers".to_owned(), Value::Object(Map::new()));
        globals.insert("method_response".to_owned(), Value::Null);
        globals.insert("script_parameters".to_owned(), Value::Object(Map::new()));
        let run = self.hooks(Event::BeforeWebhook, &levels, globals, &host).await?;
        match run.outcome {
            Outcome::Continue => {}
            Outcome::Abort => {
                let headers = match run.globals.get("method_response_headers") {
                    Some(Value::Object(h)) => h.clone(),
                    _ => Map::new(),
                };
                let body = run.globals.get("method_response").cloned().unwrap_or(Value::Null);
                return Ok(WebhookReply { status: 200, headers, body });
            }
            other => return Err(script_error(Event::BeforeWebhook, other)),
        }

        let posted = run.globals.get("method_request").cloned().unwrap_or(Value::Null);
        let mut globals = Map::new();
        globals.insert("method_response".to_owned(), posted);
        globals.insert("cycle_variables".to_owned(), Value::Object(Map::new()));
        let transaction = uuid::Uuid::now_v7().to_string();
        for name in ["cycle_id", "cycle_step_id"] {
            globals.insert(name.to_owned(), Value::String(transaction.clone()));
        }
        globals.insert("cyclr_account_id".to_owned(), Value::String(org.to_owned()));
        globals.insert("external_account_id".to_owned(), Value::String(account.to_owned()));
        let run = self.hooks(Event::AfterWebhook, &levels, globals, &host).await?;
        match run.outcome {
            Outcome::Continue => {}
            Outcome::Abort => {
                tracing::info!(organization = %org, account = %account, method = %method_id,
                    "after_webhook returned false; the webhook is ignored");
                return Ok(WebhookReply { status: 200, headers: Map::new(), body: json!({ "accepted": false }) });
            }
            other => return Err(script_error(Event::AfterWebhook, other)),
        }
        let payload = run.globals.get("method_response").cloned().unwrap_or(Value::Null);
        let event = OutboundEvent::for_webhook(&loaded.record, method_id, payload, self.clock.now());
        self.store.append_event(&event).await?;
        Ok(WebhookReply { status: 200, headers: Map::new(), body: json!({ "accepted": true, "eventId": event.id }) })
    }
}
