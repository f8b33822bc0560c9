//! Event endpoints, the outbox and deliveries on PostgreSQL.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use portcullis_core::clock::Timestamp;
use portcullis_core::events::{Delivery, DeliveryState, DueDelivery, Event, EventEndpoint};
use portcullis_core::store::{EventStore, StoreError};
use tokio_postgres::Row;

use crate::{PostgresStore, decode, store_error};

const ENDPOINT_COLUMNS: &str =
    "id, organization_id, url, description, event_types, enabled, sealed_secrets, created_at, updated_at";

const EVENT_COLUMNS: &str = "seq, id, organization_id, event_type, subject, payload, created_at";

const DELIVERY_COLUMNS: &str = "d.id, d.event_id, d.event_seq, d.event_type, d.endpoint_id, d.organization_id, \
                                d.state, d.attempts, d.next_attempt_at, d.last_attempt_at, d.last_status, \
                                d.last_error, d.created_at, d.delivered_at";

fn endpoint_from_row(row: &Row) -> Result<EventEndpoint, StoreError> {
    let types: String = row.try_get(4).map_err(|e| decode(&e))?;
    Ok(EventEndpoint {
        id: row.try_get(0).map_err(|e| decode(&e))?,
        organization_id: row.try_get(1).map_err(|e| decode(&e))?,
        url: row.try_get(2).map_err(|e| decode(&e))?,
        description: row.try_get(3).map_err(|e| decode(&e))?,
        event_types: serde_json::from_str(&types).map_err(|e| StoreError::Decode(e.to_string()))?,
        enabled: row.try_get(5).map_err(|e| decode(&e))?,
        sealed_secrets: row.try_get(6).map_err(|e| decode(&e))?,
        created_at: Timestamp::from_unix_millis(row.try_get(7).map_err(|e| decode(&e))?),
        updated_at: Timestamp::from_unix_millis(row.try_get(8).map_err(|e| decode(&e))?),
    })
}

fn event_from_row(row: &Row) -> Result<(i64, Event), StoreError> {
    Ok((
        row.try_get(0).map_err(|e| decode(&e))?,
        Event {
            id: row.try_get(1).map_err(|e| decode(&e))?,
            organization_id: row.try_get(2).map_err(|e| decode(&e))?,
            event_type: row.try_get(3).map_err(|e| decode(&e))?,
            subject: row.try_get(4).map_err(|e| decode(&e))?,
            payload: row.try_get(5).map_err(|e| decode(&e))?,
            created_at: Timestamp::from_unix_millis(row.try_get(6).map_err(|e| decode(&e))?),
        },
    ))
}

fn delivery_from_row(row: &Row) -> Result<Delivery, StoreError> {
    let state: String = row.try_get(6).map_err(|e| decode(&e))?;
    let millis =
        |i: usize| row.try_get::<_, Option<i64>>(i).map(|v| v.map(Timestamp::from_unix_millis)).map_err(|e| decode(&e));
    let attempts: i32 = row.try_get(7).map_err(|e| decode(&e))?;
    let status: Option<i32> = row.try_get(10).map_err(|e| decode(&e))?;
    Ok(Delivery {
        id: row.try_get(0).map_err(|e| decode(&e))?,
        event_id: row.try_get(1).map_err(|e| decode(&e))?,
        event_seq: row.try_get(2).map_err(|e| decode(&e))?,
        event_type: row.try_get(3).map_err(|e| decode(&e))?,
        endpoint_id: row.try_get(4).map_err(|e| decode(&e))?,
        organization_id: row.try_get(5).map_err(|e| decode(&e))?,
        state: DeliveryState::parse(&state)?,
        attempts: u32::try_from(attempts).map_err(|e| StoreError::Decode(e.to_string()))?,
        next_attempt_at: Timestamp::from_unix_millis(row.try_get(8).map_err(|e| decode(&e))?),
        last_attempt_at: millis(9)?,
        last_status: status.map(u16::try_from).transpose().map_err(|e| StoreError::Decode(e.to_string()))?,
        last_error: row.try_get(11).map_err(|e| decode(&e))?,
        created_at: Timestamp::from_unix_millis(row.try_get(12).map_err(|e| decode(&e))?),
        delivered_at: millis(13)?,
    })
}

fn int(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Appends an event inside the caller's transaction: the state changes that cause events call this.
pub(crate) async fn append_event(c: &impl GenericClient, event: &Event) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO events (id, organization_id, event_type, subject, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &event.id,
            &event.organization_id,
            &event.event_type,
            &event.subject,
            &event.payload,
            &event.created_at.unix_millis(),
        ],
    )
    .await
    .map(|_| ())
    .map_err(|e| store_error(&e))
}

async fn insert_delivery(c: &impl GenericClient, d: &Delivery) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO event_deliveries (id, event_id, event_seq, event_type, endpoint_id, organization_id, state, \
         attempts, next_attempt_at, last_attempt_at, last_status, last_error, created_at, delivered_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &d.id,
            &d.event_id,
            &d.event_seq,
            &d.event_type,
            &d.endpoint_id,
            &d.organization_id,
            &d.state.as_str(),
            &int(d.attempts),
            &d.next_attempt_at.unix_millis(),
            &d.last_attempt_at.map(Timestamp::unix_millis),
            &d.last_status.map(i32::from),
            &d.last_error,
            &d.created_at.unix_millis(),
            &d.delivered_at.map(Timestamp::unix_millis),
        ],
    )
    .await
    .map(|_| ())
    .map_err(|e| store_error(&e))
}

fn types_text(types: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(types).map_err(|e| StoreError::Backend(e.to_string()))
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn insert_event_endpoint(&self, e: &EventEndpoint) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "INSERT INTO event_endpoints ({ENDPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ),
                &[
                    &e.id,
                    &e.organization_id,
                    &e.url,
                    &e.description,
                    &types_text(&e.event_types)?,
                    &e.enabled,
                    &e.sealed_secrets,
                    &e.created_at.unix_millis(),
                    &e.updated_at.unix_millis(),
                ],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }

    async fn event_endpoint(&self, organization_id: &str, id: &str) -> Result<Option<EventEndpoint>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {ENDPOINT_COLUMNS} FROM event_endpoints WHERE organization_id = $1 AND id = $2"),
                &[&organization_id, &id],
            )
            .await
            .map_err(|e| store_error(&e))?
            .as_ref()
            .map(endpoint_from_row)
            .transpose()
    }

    async fn event_endpoints(&self, organization_id: Option<&str>) -> Result<Vec<EventEndpoint>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM event_endpoints \
                     WHERE $1::TEXT IS NULL OR organization_id = $1 ORDER BY created_at, id"
                ),
                &[&organization_id],
            )
            .await
            .map_err(|e| store_error(&e))?
            .iter()
            .map(endpoint_from_row)
            .collect()
    }

    async fn update_event_endpoint(&self, e: &EventEndpoint) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE event_endpoints SET url = $1, description = $2, event_types = $3, enabled = $4, \
                 sealed_secrets = $5, updated_at = $6 WHERE organization_id = $7 AND id = $8",
                &[
                    &e.url,
                    &e.description,
                    &types_text(&e.event_types)?,
                    &e.enabled,
                    &e.sealed_secrets,
                    &e.updated_at.unix_millis(),
                    &e.organization_id,
                    &e.id,
                ],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn delete_event_endpoint(&self, organization_id: &str, id: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| store_error(&e))?;
        tx.execute(
            "DELETE FROM event_deliveries WHERE organization_id = $1 AND endpoint_id = $2",
            &[&organization_id, &id],
        )
        .await
        .map_err(|e| store_error(&e))?;
        let n = tx
            .execute("DELETE FROM event_endpoints WHERE organization_id = $1 AND id = $2", &[&organization_id, &id])
            .await
            .map_err(|e| store_error(&e))?;
        tx.commit().await.map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        let client = self.client().await?;
        append_event(&client, event).await
    }

    async fn undispatched_events(&self, limit: usize) -> Result<Vec<(i64, Event)>, StoreError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        client
            .query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE NOT dispatched ORDER BY seq LIMIT $1"), &[&limit])
            .await
            .map_err(|e| store_error(&e))?
            .iter()
            .map(event_from_row)
            .collect()
    }

    async fn dispatch_event(&self, event_id: &str, deliveries: &[Delivery]) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| store_error(&e))?;
        let marked = tx
            .execute("UPDATE events SET dispatched = TRUE WHERE id = $1 AND NOT dispatched", &[&event_id])
            .await
            .map_err(|e| store_error(&e))?;
        if marked != 1 {
            return Ok(false);
        }
        for delivery in deliveries {
            insert_delivery(&tx, delivery).await?;
        }
        tx.commit().await.map_err(|e| store_error(&e))?;
        Ok(true)
    }

    async fn due_deliveries(&self, now: Timestamp, limit: usize) -> Result<Vec<DueDelivery>, StoreError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS}, e.payload, p.url, p.sealed_secrets \
                     FROM event_deliveries d JOIN events e ON e.id = d.event_id \
                     JOIN event_endpoints p ON p.id = d.endpoint_id \
                     WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND NOT EXISTS ( \
                         SELECT 1 FROM event_deliveries b WHERE b.endpoint_id = d.endpoint_id \
                         AND b.state = 'pending' \
                         AND (b.event_seq < d.event_seq OR (b.event_seq = d.event_seq AND b.id < d.id))) \
                     ORDER BY d.event_seq LIMIT $2"
                ),
                &[&now.unix_millis(), &limit],
            )
            .await
            .map_err(|e| store_error(&e))?;
        rows.iter()
            .map(|row| {
                Ok(DueDelivery {
                    delivery: delivery_from_row(row)?,
                    payload: row.try_get(14).map_err(|e| decode(&e))?,
                    url: row.try_get(15).map_err(|e| decode(&e))?,
                    sealed_secrets: row.try_get(16).map_err(|e| decode(&e))?,
                })
            })
            .collect()
    }

    async fn record_delivery_attempt(&self, d: &Delivery, expected_attempts: u32) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE event_deliveries SET state = $1, attempts = $2, next_attempt_at = $3, last_attempt_at = $4, \
                 last_status = $5, last_error = $6, delivered_at = $7 \
                 WHERE id = $8 AND attempts = $9 AND state = 'pending'",
                &[
                    &d.state.as_str(),
                    &int(d.attempts),
                    &d.next_attempt_at.unix_millis(),
                    &d.last_attempt_at.map(Timestamp::unix_millis),
                    &d.last_status.map(i32::from),
                    &d.last_error,
                    &d.delivered_at.map(Timestamp::unix_millis),
                    &d.id,
                    &int(expected_attempts),
                ],
            )
            .await
            .map_err(|e| store_error(&e))?;
        Ok(n == 1)
    }

    async fn delivery(&self, organization_id: &str, id: &str) -> Result<Option<Delivery>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM event_deliveries d WHERE d.organization_id = $1 AND d.id = $2"
                ),
                &[&organization_id, &id],
            )
            .await
            .map_err(|e| store_error(&e))?
            .as_ref()
            .map(delivery_from_row)
            .transpose()
    }

    async fn deliveries(
        &self,
        organization_id: &str,
        endpoint_id: Option<&str>,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let client = self.client().await?;
        let state = state.map(DeliveryState::as_str);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        client
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM event_deliveries d WHERE d.organization_id = $1 \
                     AND ($2::TEXT IS NULL OR d.endpoint_id = $2) AND ($3::TEXT IS NULL OR d.state = $3) \
                     ORDER BY d.created_at DESC, d.id DESC LIMIT $4"
                ),
                &[&organization_id, &endpoint_id, &state, &limit],
            )
            .await
            .map_err(|e| store_error(&e))?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    async fn insert_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let client = self.client().await?;
        insert_delivery(&client, delivery).await
    }
}
