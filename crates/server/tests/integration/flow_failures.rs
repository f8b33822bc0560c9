//! Failures inside the hosted login flow reach the application: an expired, missing or voided attempt
//! and an expired page send the browser to the flow's callback with `error` (the catalog code),
//! `error_description`, `state` and `iss`, as the seed asks; a wrong code with tries left stays on the page;
//! another browser never learns the callback.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Response, StatusCode};
use url::Url;

use portcullis_core::login::model::{AttemptType, LinkMethod};

use crate::harness::Backend;
use crate::login::{CALLBACK, Flow, location, mailed_links, manual_clock};

/// The callback a failure sent the browser to, as its query pairs; fails unless it is the flow's callback.
fn callback_error(response: &Response) -> HashMap<String, String> {
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "the failure goes to the callback");
    let url = Url::parse(&location(response)).expect("an absolute callback URL");
    assert_eq!(url.as_str().split('?').next(), Some(CALLBACK));
    let pairs: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(pairs.get("return_to").map(String::as_str), Some("/home"), "the callback's own query is kept");
    assert_eq!(pairs.get("state").map(String::as_str), Some("0b6f1a4e-8c1e-4f0e-9d3a-2d5c7e9f1a2b"));
    assert!(!pairs.contains_key("code"));
    pairs
}

async fn wrong_codes_end_the_flow_after_the_last_try(backend: Backend) {
    let flow = Flow::start(backend).await;
    let (flow_path, binding, _) = flow.submit_email("guess@example.com").await;
    let code = flow.outbox_code().await;
    let wrong: String = code.chars().map(|c| if c == '0' { '1' } else { '0' }).collect();
    for left in (1..=4).rev() {
        let refused = flow.post_code(&flow_path, &binding, &wrong).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "a wrong code with tries left stays on the page");
        assert!(refused.text().await.expect("html").contains(&format!("{left} tries left")));
    }
    let last = flow.post_code(&flow_path, &binding, &wrong).await;
    let error = callback_error(&last);
    assert_eq!(error["error"], "loginAttemptInvalid");
    assert_eq!(error["error_description"], "Too many wrong codes. Please request a new code.");
    assert_eq!(error["iss"], flow.server.url);
    let after = flow.post_code(&flow_path, &binding, &code).await;
    assert_eq!(callback_error(&after)["error"], "loginAttemptInvalid", "the void attempt takes no code");
}

#[tokio::test]
async fn wrong_codes_end_the_flow_after_the_last_try_sqlite() {
    wrong_codes_end_the_flow_after_the_last_try(Backend::Sqlite).await;
}

#[tokio::test]
async fn wrong_codes_end_the_flow_after_the_last_try_postgres() {
    wrong_codes_end_the_flow_after_the_last_try(Backend::Postgres).await;
}

/// An expired attempt, a code step without an attempt and an expired page all reach the callback.
#[tokio::test]
async fn expired_and_missing_attempts_reach_the_callback() {
    let clock = manual_clock();
    let flow = Flow::with_clock(&clock).await;
    let (flow_path, binding, _) = flow.submit_email("late@example.com").await;
    clock.advance(Duration::from_secs(15 * 60 + 1));
    let late = flow.post_code(&flow_path, &binding, "123456").await;
    let error = callback_error(&late);
    assert_eq!(error["error"], "loginAttemptExpired");
    assert!(error["error_description"].contains("expired"), "{error:?}");

    let started = flow.client.get(flow.url("/login")).query(&flow.standard_query()).send().await.expect("login");
    let (fresh_path, fresh_binding) = crate::login::begun(&started);
    let premature = flow.post_code(&fresh_path, &fresh_binding, "123456").await;
    assert_eq!(callback_error(&premature)["error"], "loginAttemptMissing");

    clock.advance(Duration::from_secs(31 * 60));
    let page = flow.get(&fresh_path, Some(&fresh_binding)).await;
    let error = callback_error(&page);
    assert_eq!(
        (error["error"].as_str(), error["error_description"].contains("expired")),
        ("loginAttemptExpired", true)
    );
}

/// Another browser (no binding cookie) gets the error page, never a redirect to the callback.
#[tokio::test]
async fn another_browser_never_learns_the_callback() {
    let flow = Flow::start(Backend::Sqlite).await;
    let (flow_path, _binding, _) = flow.submit_email("ada@example.com").await;
    let stranger = flow.client.post(flow.url(&format!("{flow_path}/code"))).form(&[("code", "123456")]);
    let refused = stranger.send().await.expect("code");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.headers().get("location").is_none());
    assert!(refused.text().await.expect("html").contains("loginAttemptMissing"));
}

/// An undo from the mail, and a wrong challenge number, send the waiting browser to the callback.
#[tokio::test]
async fn undone_and_cancelled_attempts_reach_the_callback() {
    let flow = Flow::start(Backend::Sqlite).await;
    flow.use_attempts(AttemptType::Link, LinkMethod::Remote).await;
    let (flow_path, binding, _) = flow.submit_email("undo@example.com").await;
    let undo = mailed_links(&flow).await.into_iter().find(|l| l.starts_with("/login/undo/")).expect("undo link");
    assert_eq!(flow.post(&undo).await.status(), StatusCode::OK);
    let waiting = flow.get(&format!("{flow_path}/wait"), Some(&binding)).await;
    let error = callback_error(&waiting);
    assert_eq!(error["error"], "loginAttemptInvalid");
    assert!(error["error_description"].contains("undone"), "{error:?}");

    flow.use_attempts(AttemptType::Challenge, LinkMethod::Local).await;
    let (flow_path, binding, _) = flow.submit_email("eve@example.com").await;
    let html = flow.get(&format!("{flow_path}/wait"), Some(&binding)).await.text().await.expect("html");
    let wrong = mailed_links(&flow)
        .await
        .into_iter()
        .filter(|l| l.contains("?pick="))
        .find(|l| l.rsplit('=').next().is_some_and(|n| !html.contains(&format!(">{n}</p>"))))
        .expect("a wrong number");
    assert_eq!(flow.post(&wrong).await.status(), StatusCode::BAD_REQUEST, "the mail's device sees the page");
    let waiting = flow.get(&format!("{flow_path}/wait"), Some(&binding)).await;
    assert_eq!(callback_error(&waiting)["error"], "loginAttemptInvalid");
}
