//! Event endpoints, the outbox and deliveries on SQLite.

use async_trait::async_trait;
use portcullis_core::clock::Timestamp;
use portcullis_core::events::{Delivery, DeliveryState, DueDelivery, Event, EventEndpoint};
use portcullis_core::store::{EventStore, StoreError};
use rusqlite::types::Type;
use rusqlite::{Connection, Row, params};

use crate::{SqliteStore, store_error};

const ENDPOINT_COLUMNS: &str =
    "id, organization_id, url, description, event_types, enabled, sealed_secrets, created_at, updated_at";

const EVENT_COLUMNS: &str = "seq, id, organization_id, event_type, subject, payload, created_at";

const DELIVERY_COLUMNS: &str = "d.id, d.event_id, d.event_seq, d.event_type, d.endpoint_id, d.organization_id, \
                                d.state, d.attempts, d.next_attempt_at, d.last_attempt_at, d.last_status, \
                                d.last_error, d.created_at, d.delivered_at";

fn decode(index: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e))
}

fn endpoint_from_row(row: &Row<'_>) -> rusqlite::Result<EventEndpoint> {
    let types: String = row.get(4)?;
    Ok(EventEndpoint {
        id: row.get(0)?,
        organization_id: row.get(1)?,
        url: row.get(2)?,
        description: row.get(3)?,
        event_types: serde_json::from_str(&types).map_err(|e| decode(4, e))?,
        enabled: row.get(5)?,
        sealed_secrets: row.get(6)?,
        created_at: Timestamp::from_unix_millis(row.get(7)?),
        updated_at: Timestamp::from_unix_millis(row.get(8)?),
    })
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<(i64, Event)> {
    Ok((
        row.get(0)?,
        Event {
            id: row.get(1)?,
            organization_id: row.get(2)?,
            event_type: row.get(3)?,
            subject: row.get(4)?,
            payload: row.get(5)?,
            created_at: Timestamp::from_unix_millis(row.get(6)?),
        },
    ))
}

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let state: String = row.get(6)?;
    let millis = |i: usize| row.get::<_, Option<i64>>(i).map(|v| v.map(Timestamp::from_unix_millis));
    Ok(Delivery {
        id: row.get(0)?,
        event_id: row.get(1)?,
        event_seq: row.get(2)?,
        event_type: row.get(3)?,
        endpoint_id: row.get(4)?,
        organization_id: row.get(5)?,
        state: DeliveryState::parse(&state).map_err(|e| decode(6, e))?,
        attempts: row.get(7)?,
        next_attempt_at: Timestamp::from_unix_millis(row.get(8)?),
        last_attempt_at: millis(9)?,
        last_status: row.get(10)?,
        last_error: row.get(11)?,
        created_at: Timestamp::from_unix_millis(row.get(12)?),
        delivered_at: millis(13)?,
    })
}

/// Appends an event inside the caller's transaction: the state changes that cause events call this.
pub(crate) fn append_event(c: &Connection, event: &Event) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO events (id, organization_id, event_type, subject, payload, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            event.id,
            event.organization_id,
            event.event_type,
            event.subject,
            event.payload,
            event.created_at.unix_millis(),
        ])
    })
    .map(|_| ())
    .map_err(store_error)
}

fn insert_delivery(c: &Connection, d: &Delivery) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO event_deliveries (id, event_id, event_seq, event_type, endpoint_id, organization_id, state, \
         attempts, next_attempt_at, last_attempt_at, last_status, last_error, created_at, delivered_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )
    .and_then(|mut s| {
        s.execute(params![
            d.id,
            d.event_id,
            d.event_seq,
            d.event_type,
            d.endpoint_id,
            d.organization_id,
            d.state.as_str(),
            d.attempts,
            d.next_attempt_at.unix_millis(),
            d.last_attempt_at.map(Timestamp::unix_millis),
            d.last_status,
            d.last_error,
            d.created_at.unix_millis(),
            d.delivered_at.map(Timestamp::unix_millis),
        ])
    })
    .map(|_| ())
    .map_err(store_error)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn insert_event_endpoint(&self, endpoint: &EventEndpoint) -> Result<(), StoreError> {
        let e = endpoint.clone();
        let types = serde_json::to_string(&e.event_types).map_err(|err| StoreError::Backend(err.to_string()))?;
        self.writer
            .run(move |c| {
                c.prepare_cached(&format!(
                    "INSERT INTO event_endpoints ({ENDPOINT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ))
                .and_then(|mut s| {
                    s.execute(params![
                        e.id,
                        e.organization_id,
                        e.url,
                        e.description,
                        types,
                        e.enabled,
                        e.sealed_secrets,
                        e.created_at.unix_millis(),
                        e.updated_at.unix_millis(),
                    ])
                })
                .map(|_| ())
                .map_err(store_error)
            })
            .await
    }

    async fn event_endpoint(&self, organization_id: &str, id: &str) -> Result<Option<EventEndpoint>, StoreError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM event_endpoints WHERE organization_id = ?1 AND id = ?2");
        self.organization_row(sql, organization_id, id, endpoint_from_row).await
    }

    async fn event_endpoints(&self, organization_id: Option<&str>) -> Result<Vec<EventEndpoint>, StoreError> {
        let org = organization_id.map(str::to_owned);
        self.readers
            .run(move |c| {
                let mut s = c
                    .prepare_cached(&format!(
                        "SELECT {ENDPOINT_COLUMNS} FROM event_endpoints \
                         WHERE ?1 IS NULL OR organization_id = ?1 ORDER BY created_at, id"
                    ))
                    .map_err(store_error)?;
                let rows = s.query_map(params![org], endpoint_from_row).map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await
    }

    async fn update_event_endpoint(&self, endpoint: &EventEndpoint) -> Result<bool, StoreError> {
        let e = endpoint.clone();
        let types = serde_json::to_string(&e.event_types).map_err(|err| StoreError::Backend(err.to_string()))?;
        self.writer
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE event_endpoints SET url = ?1, description = ?2, event_types = ?3, enabled = ?4, \
                     sealed_secrets = ?5, updated_at = ?6 WHERE organization_id = ?7 AND id = ?8",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        e.url,
                        e.description,
                        types,
                        e.enabled,
                        e.sealed_secrets,
                        e.updated_at.unix_millis(),
                        e.organization_id,
                        e.id,
                    ])
                })
                .map(|n| n == 1)
                .map_err(store_error)
            })
            .await
    }

    async fn delete_event_endpoint(&self, organization_id: &str, id: &str) -> Result<bool, StoreError> {
        let (org, id) = (organization_id.to_owned(), id.to_owned());
        self.writer
            .run(move |c| {
                let tx = c.transaction().map_err(store_error)?;
                tx.execute(
                    "DELETE FROM event_deliveries WHERE organization_id = ?1 AND endpoint_id = ?2",
                    params![org, id],
                )
                .map_err(store_error)?;
                let n = tx
                    .execute("DELETE FROM event_endpoints WHERE organization_id = ?1 AND id = ?2", params![org, id])
                    .map_err(store_error)?;
                tx.commit().map_err(store_error)?;
                Ok(n == 1)
            })
            .await
    }

    async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        let event = event.clone();
        self.writer.run(move |c| append_event(c, &event)).await
    }

    async fn undispatched_events(&self, limit: usize) -> Result<Vec<(i64, Event)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.readers
            .run(move |c| {
                let mut s = c
                    .prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE dispatched = 0 ORDER BY seq LIMIT ?1"
                    ))
                    .map_err(store_error)?;
                let rows = s.query_map(params![limit], event_from_row).map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await
    }

    async fn dispatch_event(&self, event_id: &str, deliveries: &[Delivery]) -> Result<bool, StoreError> {
        let (event_id, deliveries) = (event_id.to_owned(), deliveries.to_vec());
        self.writer
            .run(move |c| {
                let tx = c.transaction().map_err(store_error)?;
                let marked = tx
                    .execute("UPDATE events SET dispatched = 1 WHERE id = ?1 AND dispatched = 0", params![event_id])
                    .map_err(store_error)?;
                if marked != 1 {
                    return Ok(false);
                }
                for delivery in &deliveries {
                    insert_delivery(&tx, delivery)?;
                }
                tx.commit().map_err(store_error)?;
                Ok(true)
            })
            .await
    }

    async fn due_deliveries(&self, now: Timestamp, limit: usize) -> Result<Vec<DueDelivery>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.readers
            .run(move |c| {
                let mut s = c
                    .prepare_cached(&format!(
                        "SELECT {DELIVERY_COLUMNS}, e.payload, p.url, p.sealed_secrets \
                         FROM event_deliveries d JOIN events e ON e.id = d.event_id \
                         JOIN event_endpoints p ON p.id = d.endpoint_id \
                         WHERE d.state = 'pending' AND d.next_attempt_at <= ?1 AND NOT EXISTS ( \
                             SELECT 1 FROM event_deliveries b WHERE b.endpoint_id = d.endpoint_id \
                             AND b.state = 'pending' \
                             AND (b.event_seq < d.event_seq OR (b.event_seq = d.event_seq AND b.id < d.id))) \
                         ORDER BY d.event_seq LIMIT ?2"
                    ))
                    .map_err(store_error)?;
                let rows = s
                    .query_map(params![now.unix_millis(), limit], |row| {
                        Ok(DueDelivery {
                            delivery: delivery_from_row(row)?,
                            payload: row.get(14)?,
                            url: row.get(15)?,
                            sealed_secrets: row.get(16)?,
                        })
                    })
                    .map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await
    }

    async fn record_delivery_attempt(&self, d: &Delivery, expected_attempts: u32) -> Result<bool, StoreError> {
        let d = d.clone();
        self.writer
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE event_deliveries SET state = ?1, attempts = ?2, next_attempt_at = ?3, \
                     last_attempt_at = ?4, last_status = ?5, last_error = ?6, delivered_at = ?7 \
                     WHERE id = ?8 AND attempts = ?9 AND state = 'pending'",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        d.state.as_str(),
                        d.attempts,
                        d.next_attempt_at.unix_millis(),
                        d.last_attempt_at.map(Timestamp::unix_millis),
                        d.last_status,
                        d.last_error,
                        d.delivered_at.map(Timestamp::unix_millis),
                        d.id,
                        expected_attempts,
                    ])
                })
                .map(|n| n == 1)
                .map_err(store_error)
            })
            .await
    }

    async fn delivery(&self, organization_id: &str, id: &str) -> Result<Option<Delivery>, StoreError> {
        let sql =
            format!("SELECT {DELIVERY_COLUMNS} FROM event_deliveries d WHERE d.organization_id = ?1 AND d.id = ?2");
        self.organization_row(sql, organization_id, id, delivery_from_row).await
    }

    async fn deliveries(
        &self,
        organization_id: &str,
        endpoint_id: Option<&str>,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let (org, endpoint) = (organization_id.to_owned(), endpoint_id.map(str::to_owned));
        let state = state.map(DeliveryState::as_str);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.readers
            .run(move |c| {
                let mut s = c
                    .prepare_cached(&format!(
                        "SELECT {DELIVERY_COLUMNS} FROM event_deliveries d WHERE d.organization_id = ?1 \
                         AND (?2 IS NULL OR d.endpoint_id = ?2) AND (?3 IS NULL OR d.state = ?3) \
                         ORDER BY d.created_at DESC, d.id DESC LIMIT ?4"
                    ))
                    .map_err(store_error)?;
                let rows = s.query_map(params![org, endpoint, state, limit], delivery_from_row).map_err(store_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(store_error)
            })
            .await
    }

    async fn insert_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let delivery = delivery.clone();
        self.writer.run(move |c| insert_delivery(c, &delivery)).await
    }
}
