//! Delivery of login emails over SMTP (lettre, async, rustls). Without an SMTP host nothing is sent;
//! the dev outbox is the only other way a code reaches a person.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use portcullis_core::login::model::OutboxMessage;
use portcullis_core::{Error, ErrorCode};

use crate::config::{ConfigError, SmtpSecurity, SmtpSettings};

/// The configured SMTP transport.
#[derive(Debug, Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// Builds the transport; `None` when no host is configured. Connections are made per message.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the bad key.
    pub fn from_settings(settings: &SmtpSettings) -> Result<Option<Self>, ConfigError> {
        if settings.host.is_empty() {
            return Ok(None);
        }
        let from: Mailbox =
            settings.from.parse().map_err(|e| ConfigError(format!("`smtp.from` is not an email address: {e}")))?;
        let host = settings.host.as_str();
        let builder = match settings.security {
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
            SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)),
        }
        .map_err(|e| ConfigError(format!("`smtp.host`: {e}")))?;
        let mut builder = builder.port(settings.port).timeout(Some(Duration::from_secs(settings.timeout_secs)));
        if !settings.username.is_empty() {
            builder =
                builder.credentials(Credentials::new(settings.username.clone(), settings.password.expose().to_owned()));
        }
        Ok(Some(Self { transport: builder.build(), from }))
    }

    /// Sends one message.
    ///
    /// # Errors
    /// `genericError` (503) when the server refuses or cannot be reached; the detail goes to the log.
    pub async fn send(&self, message: &OutboxMessage) -> Result<(), Error> {
        let unavailable = |detail: String| {
            Error::new(ErrorCode::GenericError)
                .with_status(503)
                .with_message("We could not send the email. Please try again in a moment.")
                .with_retry_after(30)
                .with_internal(detail)
        };
        let to: Mailbox = message.to.parse().map_err(|e| unavailable(format!("recipient: {e}")))?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .body(message.body.clone())
            .map_err(|e| unavailable(format!("message: {e}")))?;
        self.transport.send(email).await.map_err(|e| unavailable(format!("SMTP: {e}")))?;
        Ok(())
    }
}
