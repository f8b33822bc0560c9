//! Serving: the listener, background key maintenance, event delivery, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::StartupError;
use crate::app::App;
use crate::config::Config;
use crate::http::router;

/// Binds the configured address.
///
/// # Errors
/// [`StartupError::Bind`] when the address is taken or not allowed.
/// Binds `server.listen` before the application opens, and pins the configuration to the address actually
/// bound: with port 0, the listen address and (when `server.public_url` is unset) the issuer name the real
/// port.
///
/// # Errors
/// [`StartupError::Bind`] when the address is taken or not allowed.
pub async fn bind(config: &mut Config) -> Result<TcpListener, StartupError> {
    let address = config.server.listen.clone();
    let listener =
        TcpListener::bind(&address).await.map_err(|source| StartupError::Bind { address: address.clone(), source })?;
    let bound = listener.local_addr().map_err(|source| StartupError::Bind { address, source })?;
    config.server.listen = bound.to_string();
    Ok(listener)
}

/// Serves until `shutdown` completes, then lets in-flight requests finish for at most
/// `server.shutdown_grace_secs`.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let grace = Duration::from_secs(app.config().server.shutdown_grace_secs);
    let maintenance = tokio::spawn(maintain_keys(Arc::clone(&app)));
    let delivery = if app.config().events.deliver {
        let worker = app
            .event_delivery()
            .map_err(|e| crate::config::ConfigError(format!("events: the delivery client cannot be built: {e}")))?;
        Some(tokio::spawn(worker.run()))
    } else {
        None
    };
    let (stopping, mut stopped) = watch::channel(false);
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stopping.send(true);
    };
    // Connection info gives the rate limits the client address.
    let service = router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(signal);
    let deadline = async move {
        let _ = stopped.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        result = server => result.map_err(|source| StartupError::Serve { source }),
        () = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over; closing the remaining connections");
            Ok(())
        }
    };
    maintenance.abort();
    if let Some(delivery) = delivery {
        delivery.abort();
    }
    result
}

/// Re-reads the key ring often enough that a key rotated elsewhere is published before it signs, and
/// rotates when due; prunes expired rate-limit windows, captcha solutions and passkey ceremonies.
async fn maintain_keys(app: Arc<App>) {
    let lead = app.keys().policy().publish_lead;
    let period = (lead / 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = app.rate_limiter().prune().await {
            tracing::warn!(error = ?e, "pruning rate-limit counters failed; retrying at the next tick");
        }
        if let Err(e) = app.login().prune_passkey_ceremonies().await {
            tracing::warn!(error = ?e, "pruning passkey ceremonies failed; retrying at the next tick");
        }
        let app_rings = app.supertokens_apps().key_rings();
        for family in app.key_families().chain(app_rings.iter().map(AsRef::as_ref)) {
            match family.maintain().await {
                Ok(Some(kid)) => {
                    tracing::info!(%kid, algorithm = family.policy().algorithm.as_str(), "rotated the signing key")
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = ?e, "key maintenance failed; retrying at the next tick")
                }
            }
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
