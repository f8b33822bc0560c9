//! One attempt of a request: merge fields, the before hooks, auth, pacing, the send through the egress
//! policy, and the reading of the answer (recovery rules, the after hooks, paging) into what happens next.

use std::sync::Arc;

use portcullis_core::{Error, ErrorCode};
use serde_json::{Map, Value, json};

use crate::builtins::body_value;
use crate::credentials::{Attach, Sandbox};
use crate::definition::{Auth, Connector, Method, PagingKind, RecoveryAction};
use crate::egress::{self, Body, Outbound, SendError};
use crate::script::{self, Budget, Event, Outcome};

use super::rate_limits::retry_after;
use super::request_headers;
use super::templates::{as_text, fill_path, fill_value, parameters};
use super::{
    Attempt, CallRequest, CallResult, ConnectorRuntime, Loaded, Recovery, Transaction, egress_refused, err, origin_of,
    recover_or_fail, redacted_script_error, secrets,
};

impl ConnectorRuntime {
    /// Sends the request once and says what the call does next: done, recover, retry or wait.
    pub(super) async fn attempt(
        &self,
        connector: &Connector,
        method: &Method,
        request: &CallRequest,
        loaded: &Loaded,
        tx: &mut Transaction,
        budget: &Arc<Budget>,
    ) -> Result<Attempt, Error> {
        let Transaction { action_data, mergefields, pages, unreplayable } = tx;
        let levels: Vec<String> = [connector.script.clone(), method.script.clone(), request.script.clone()]
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        let secrets = secrets(connector, &loaded.credentials);
        let base_url = Self::connector_url(connector, &loaded.credentials, &connector.base_url)?;
        let attach =
            Attach::new(origin_of(&base_url), Self::auth_header(connector, &loaded.credentials), secrets.clone());
        let sandbox = Sandbox {
            secrets: secrets.clone(),
            auth_value: loaded.credentials.auth_value.clone().filter(|_| matches!(connector.auth, Auth::ApiKey { .. })),
        };
        let host = self.host(attach, Some(self.storage(&loaded.record)), budget, sandbox);
        let paging = method.paging.as_ref();
        let mut outcome = "success";
        let mut last: Option<(u16, Map<String, Value>)> = None;
        let (status, mut globals) = loop {
            let mut page_fields = mergefields.clone();
            pages.vars(paging, &mut page_fields);
            let fields = Self::fields(connector, &loaded.credentials, &page_fields);
            let mut headers = parameters(&connector.headers, &method.headers, &fields);
            headers.extend(request.headers.clone());
            let mut query = parameters(&connector.query, &method.query, &fields);
            query.extend(request.query.clone());
            let body = request
                .body
                .clone()
                .or_else(|| method.body.as_ref().map(|b| fill_value(b, &fields)))
                .unwrap_or(Value::Null);
            let endpoint = format!("{}{}", base_url.trim_end_matches('/'), fill_path(&method.path, &fields)?);
            let mut globals = Map::new();
            globals.insert("method_request".to_owned(), body);
            globals.insert("method_request_headers".to_owned(), Value::Object(headers));
            globals.insert("method_request_parameters".to_owned(), Value::Object(query));
            globals.insert("method_request_mergefields".to_owned(), Value::Object(page_fields));
            globals.insert("method_endpoint".to_owned(), Value::String(endpoint.clone()));
            globals.insert("action_data".to_owned(), action_data.clone());
            globals.insert("script_parameters".to_owned(), Value::Object(Map::new()));
            globals.insert("cycle_variables".to_owned(), Value::Object(Map::new()));
            globals.insert("script_execution_context".to_owned(), Value::String("RUNNING_TRANSACTION".to_owned()));
            let transaction = uuid::Uuid::now_v7().to_string();
            for name in ["cycle_id", "transaction_id", "cycle_step_id"] {
                globals.insert(name.to_owned(), Value::String(transaction.clone()));
            }
            globals.insert("cyclr_account_id".to_owned(), Value::String(loaded.record.organization_id.clone()));
            globals.insert("external_account_id".to_owned(), Value::String(loaded.record.id.clone()));
            if matches!(connector.auth, Auth::ApiKey { .. }) {
                globals.insert(
                    "method_auth_value".to_owned(),
                    loaded.credentials.auth_value.clone().map_or(Value::Null, Value::String),
                );
            }

            *unreplayable = None;
            let run = self.hooks(Event::BeforeAction, &levels, globals, &host).await?;
            let mut globals = run.globals;
            *action_data = globals.get("action_data").cloned().unwrap_or(Value::Null);
            if let Some(Value::Object(m)) = globals.get("method_request_mergefields") {
                mergefields.clone_from(m);
                mergefields.retain(|k, _| !k.starts_with("CYCLR_PAGE_"));
            }
            match run.outcome {
                Outcome::Continue => {}
                Outcome::Abort if last.is_some() => {
                    tracing::info!(connector = %connector.name, "before_action returned false; paging stopped");
                    if let Some(previous) = last.take() {
                        break previous;
                    }
                }
                Outcome::Abort => {
                    tracing::warn!(connector = %connector.name, "before_action returned false; call aborted");
                    return Ok(Attempt::Done(CallResult {
                        outcome: "aborted",
                        status: 0,
                        data: Value::Null,
                        condition: None,
                        recoveries: 0,
                        steps: Vec::new(),
                    }));
                }
                other => return recover_or_fail(Event::BeforeAction, other, &secrets),
            }

            // Merge fields may have changed in before_action.
            let mut page_fields = mergefields.clone();
            pages.vars(paging, &mut page_fields);
            let fields = Self::fields(connector, &loaded.credentials, &page_fields);
            let base = base_url.trim_end_matches('/');
            let url = match (&pages.next, paging.map(|p| p.kind)) {
                (Some(next), Some(PagingKind::NextUrl)) if next.starts_with("http") => next.clone(),
                (Some(next), Some(PagingKind::NextUrl)) => format!("{base}{next}"),
                _ => format!("{base}{}", fill_path(&method.path, &fields)?),
            };
            let following_next_url = pages.next.is_some() && paging.is_some_and(|p| p.kind == PagingKind::NextUrl);
            let mut url = url::Url::parse(&url)
                .map_err(|e| err(ErrorCode::ConnectorInvalid, format!("method endpoint {url:?} is not a URL: {e}")))?;
            // A before_action may move the request (Cyclr's `method_endpoint`), but not off the API's origin:
            // the account's credentials go with it.
            if let Some(moved) = globals.get("method_endpoint").and_then(Value::as_str).filter(|m| *m != endpoint)
                && !following_next_url
            {
                let target = url::Url::parse(moved).map_err(|e| {
                    err(
                        ErrorCode::ScriptError,
                        format!("before_action set method_endpoint to {moved:?}, not a URL: {e}"),
                    )
                })?;
                if target.origin() != url.origin() {
                    return Err(err(
                        ErrorCode::ScriptError,
                        format!(
                            "before_action moved method_endpoint to another origin ({}); a request stays on the API's \
                             origin ({})",
                            target.origin().ascii_serialization(),
                            url.origin().ascii_serialization()
                        ),
                    ));
                }
                url = target;
            }
            if let Some(Value::Object(q)) = globals.get("method_request_parameters")
                && !q.is_empty()
                && !following_next_url
            {
                let mut pairs = url.query_pairs_mut();
                for (k, v) in q {
                    pairs.append_pair(k, &as_text(v));
                }
            }
            let http_method = reqwest::Method::from_bytes(method.http_method.as_bytes())
                .map_err(|e| err(ErrorCode::ConnectorInvalid, e.to_string()))?;
            let headers: Vec<(String, String)> = match globals.get("method_request_headers") {
                Some(Value::Object(h)) => {
                    if let Some(problem) = request_headers::invalid_header(h) {
                        return Err(err(ErrorCode::ConnectorInvalid, format!("A script set a header: {problem}.")));
                    }
                    h.iter().map(|(k, v)| (k.clone(), as_text(v))).collect()
                }
                _ => Vec::new(),
            };
            let body = match globals.get("method_request") {
                None | Some(Value::Null) => Body::Empty,
                Some(Value::Object(fields)) if method.multipart => {
                    Body::Multipart(fields.iter().map(|(k, v)| (k.clone(), as_text(v))).collect())
                }
                Some(Value::String(s)) => Body::Bytes(s.clone().into_bytes(), None),
                Some(other) => Body::Bytes(other.to_string().into_bytes(), Some("application/json")),
            };
            let outbound = Outbound { method: http_method, url, headers, body, timeout: None };

            self.pace(loaded, connector.rate_limit.as_ref(), "").await?;
            self.pace(loaded, method.rate_limit.as_ref(), &request.method).await?;
            let sent = egress::send(&self.client, &self.egress, &host.attach, outbound).await;
            let (status, reason, response_headers, text) = match sent {
                Ok(response) => {
                    let status = response.status();
                    if status.as_u16() == 429 {
                        if method.multipart {
                            *unreplayable = Some((429, "Too Many Requests".to_owned()));
                        }
                        return Ok(Attempt::RateLimited(retry_after(response.headers(), self.clock.now())));
                    }
                    let headers: Map<String, Value> = response
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.to_str().unwrap_or_default().to_owned())))
                        .collect();
                    let reason = response
                        .extensions()
                        .get::<hyper::ext::ReasonPhrase>()
                        .and_then(|phrase| std::str::from_utf8(phrase.as_bytes()).ok())
                        .unwrap_or_else(|| status.canonical_reason().unwrap_or_default())
                        .to_owned();
                    let text = response.text().await.unwrap_or_default();
                    (status.as_u16(), reason, headers, text)
                }
                Err(SendError::Refused(refused)) => return Err(egress_refused(&refused)),
                Err(SendError::Http(e)) if e.is_builder() => {
                    return Err(err(ErrorCode::ConnectorInvalid, "The request could not be built.").with_internal(e));
                }
                Err(e) => {
                    tracing::warn!(connector = %connector.name, error = %e, "connector request failed");
                    (0, if e.is_timeout() { "Timeout" } else { "Network Error" }.to_owned(), Map::new(), e.to_string())
                }
            };
            if method.multipart {
                *unreplayable = Some((status, reason.clone()));
            }
            let retry_after_header =
                response_headers.get("retry-after").and_then(Value::as_str).and_then(|v| v.trim().parse().ok());
            globals.insert("method_response_headers".to_owned(), Value::Object(response_headers));
            globals.insert("statusCode".to_owned(), json!(status));
            globals.insert("reasonPhrase".to_owned(), Value::String(reason.clone()));
            let matched = connector.recovery.iter().chain(&method.recovery).find(|r| r.matches(status, &text));
            match matched.map(|r| r.action) {
                None => {}
                Some(RecoveryAction::RefreshThenRetry) => return Ok(Attempt::Recover(Recovery::Refresh)),
                Some(RecoveryAction::ReloginThenRetry) => return Ok(Attempt::Recover(Recovery::Session)),
                Some(RecoveryAction::Retry) => return Ok(Attempt::Retry { status, reason }),
                Some(RecoveryAction::RateLimited) => return Ok(Attempt::RateLimited(retry_after_header)),
                Some(RecoveryAction::Ignore) => {
                    globals.insert("method_response".to_owned(), body_value(&text));
                    pages.fetched.push(body_value(&text));
                    break (status, globals);
                }
                Some(RecoveryAction::Fail) => {
                    return Err(err(
                        ErrorCode::UpstreamError,
                        format!("The third-party API answered {status} {reason}."),
                    ));
                }
            }
            if (200..300).contains(&status) {
                globals.insert("method_response".to_owned(), body_value(&text));
                let run = self.hooks(Event::AfterAction, &levels, globals, &host).await?;
                globals = run.globals;
                if run.outcome != Outcome::Continue {
                    return recover_or_fail(Event::AfterAction, run.outcome, &secrets);
                }
                *action_data = globals.get("action_data").cloned().unwrap_or(Value::Null);
                let page = globals.get("method_response").cloned().unwrap_or(Value::Null);
                let more = pages.advance(paging, &page);
                if more {
                    last = Some((status, globals));
                    continue;
                }
                break (status, globals);
            } else {
                globals.insert("method_response".to_owned(), Value::Null);
                globals.insert("method_error".to_owned(), script::method_error(status, &reason, &text));
                let run = self.hooks(Event::AfterError, &levels, globals, &host).await?;
                globals = run.globals;
                if run.outcome != Outcome::Continue {
                    return recover_or_fail(Event::AfterError, run.outcome, &secrets);
                }
                let flag = |name: &str| {
                    globals.get("method_error").and_then(|e| e.get(name)).and_then(Value::as_bool).unwrap_or(false)
                };
                let content =
                    globals.get("method_error").and_then(|e| e.get("content")).map(as_text).unwrap_or_default();
                if flag("isSuccess") {
                    globals.insert("method_response".to_owned(), body_value(&content));
                    pages.fetched.push(body_value(&content));
                    break (status, globals);
                } else if flag("isWarning") || !flag("isError") {
                    outcome = "warning";
                    globals.insert("method_response".to_owned(), body_value(&content));
                    pages.fetched.push(body_value(&content));
                    break (status, globals);
                } else {
                    *action_data = globals.get("action_data").cloned().unwrap_or(Value::Null);
                    let error = if status == 0 {
                        err(ErrorCode::UpstreamError, format!("The third-party API could not be reached: {reason}."))
                    } else {
                        err(ErrorCode::UpstreamError, format!("The third-party API answered {status} {reason}."))
                    };
                    return Err(if reason == "Timeout" { error.with_status(504) } else { error });
                }
            }
        };
        if let Some(paging) = paging {
            globals.insert("method_response".to_owned(), pages.combined(paging));
        }
        let run = self.hooks(Event::AfterActionPaging, &levels, globals, &host).await?;
        globals = run.globals;
        if run.outcome != Outcome::Continue {
            return Err(redacted_script_error(Event::AfterActionPaging, run.outcome, &secrets));
        }
        *action_data = globals.get("action_data").cloned().unwrap_or(Value::Null);
        let defines_condition = levels.iter().any(|l| l.contains(Event::ActionCondition.name()));
        let data = globals.get("method_response").cloned().unwrap_or(Value::Null);
        let condition = if defines_condition {
            let run = self.hooks(Event::ActionCondition, &levels, globals, &host).await?;
            match run.outcome {
                Outcome::Condition(c) => Some(c),
                other => return recover_or_fail(Event::ActionCondition, other, &secrets),
            }
        } else {
            None
        };
        Ok(Attempt::Done(CallResult { outcome, status, data, condition, recoveries: 0, steps: Vec::new() }))
    }
}
