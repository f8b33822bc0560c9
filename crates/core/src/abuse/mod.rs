//! Abuse protection: rate limits kept in the store (so every instance on one PostgreSQL shares them) and
//! the audit log of security events.

pub mod audit;
pub mod captcha;
pub mod rate_limit;

pub use audit::{AuditEvent, AuditFilter, AuditKind, AuditLog};
pub use captcha::CaptchaService;
pub use rate_limit::{RateLimit, RateLimiter};
