//! WebSocket connections (spec §10.3): one record per handshaken connection, indexed by user
//! (`job_status` pushes) and in one listing (maintenance broadcasts). API Gateway closes a connection
//! after 2 hours at most; the TTL only sweeps records whose `$disconnect` never arrived.
use serde::{Deserialize, Serialize};

use super::{decode, keys, Condition, DynamoStore, Entry, StoreResult};
use crate::domain::time::{self, DateTime};

/// How long a connection record outlives its handshake.
pub const CONNECTION_TTL: ::time::Duration = ::time::Duration::hours(24);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsConnection {
    pub connection_id: String,
    pub username: String,
    pub connected_at: String,
}

impl DynamoStore {
    /// Records (or renews, on a second handshake) a connection of `username`.
    pub async fn put_ws_connection(&self, connection_id: &str, username: &str, now: DateTime) -> StoreResult<()> {
        let record = WsConnection {
            connection_id: connection_id.to_owned(),
            username: username.to_owned(),
            connected_at: time::iso(now),
        };
        let entry = Entry::new("ws_connection", &keys::ws_connection(connection_id), &record)?
            .gsi1(&keys::ws_connection_of_user(username, connection_id))
            .gsi2(&keys::ws_connection_listing(connection_id))
            .expires_at((now + CONNECTION_TTL).unix_timestamp());
        self.put(entry, Condition::None).await
    }

    pub async fn delete_ws_connection(&self, connection_id: &str) -> StoreResult<()> {
        self.delete(&keys::ws_connection(connection_id), Condition::None).await
    }

    /// The connections of one user (one Query of `gsi1`).
    pub async fn ws_connections_of(&self, username: &str) -> StoreResult<Vec<WsConnection>> {
        let items = self.query_index(keys::GSI1, &keys::ws_user_partition(username), None, true).await?;
        items.into_iter().map(decode).collect()
    }

    /// Every live connection (one Query of `gsi2`, all pages).
    pub async fn ws_connections(&self) -> StoreResult<Vec<WsConnection>> {
        let items = self.query_index(keys::GSI2, keys::WS_CONNECTIONS_PK, None, true).await?;
        items.into_iter().map(decode).collect()
    }
}
