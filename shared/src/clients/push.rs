//! Server → client WebSocket messages (spec §10.3, client contract §5.8), delivered through the API
//! Gateway Management API (`WS_MANAGEMENT_ENDPOINT`; the dev server plays it locally). A push never
//! fails its caller: delivery problems are logged, and a connection API Gateway reports gone (410)
//! loses its record.
use aws_sdk_apigatewaymanagement::{primitives::Blob, Client};
use serde_json::{json, Value};

use crate::{
    domain::{
        cohort::{CohortResult, DatedMeasure, MeasureMode},
        export_run::HiveStage,
        exports::Export,
        maintenance::due_broadcasts,
        time::DateTime,
    },
    store::{DynamoStore, StoreResult},
};

/// How often the `maintenance_broadcast` schedule runs (template.yaml: `rate(1 minute)`).
pub const MAINTENANCE_BROADCAST_PERIOD: ::time::Duration = ::time::Duration::minutes(1);

/// What became of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// The connection is closed (410 Gone): its record was removed.
    Gone,
    /// Any other failure (logged); the record stays.
    Failed,
    /// No management endpoint is configured: nothing is sent.
    Disabled,
}

#[derive(Clone)]
pub struct Notifier {
    client: Option<Client>,
    store: DynamoStore,
}

impl Notifier {
    /// A notifier posting to `endpoint` (None: pushes are dropped, e.g. a tool without the WebSocket API).
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: Option<&str>, store: DynamoStore) -> Self {
        let client = endpoint.map(|url| {
            Client::from_conf(aws_sdk_apigatewaymanagement::config::Builder::from(sdk).endpoint_url(url).build())
        });
        Self { client, store }
    }

    /// Posts one JSON text frame to one connection.
    pub async fn post(&self, connection_id: &str, message: &Value) -> Delivery {
        let Some(client) = &self.client else { return Delivery::Disabled };
        let sent =
            client.post_to_connection().connection_id(connection_id).data(Blob::new(message.to_string())).send().await;
        match sent {
            Ok(_) => Delivery::Sent,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_gone_exception()) => {
                if let Err(err) = self.store.delete_ws_connection(connection_id).await {
                    tracing::warn!(connection_id, error = %err, "gone connection's record not deleted");
                }
                Delivery::Gone
            }
            Err(err) => {
                tracing::warn!(connection_id, error = ?err.as_service_error(), "websocket push failed");
                Delivery::Failed
            }
        }
    }

    /// Closes a connection (after a refused handshake).
    pub async fn close(&self, connection_id: &str) {
        let Some(client) = &self.client else { return };
        if let Err(err) = client.delete_connection().connection_id(connection_id).send().await {
            if !err.as_service_error().is_some_and(|e| e.is_gone_exception()) {
                tracing::warn!(connection_id, error = ?err.as_service_error(), "websocket close failed");
            }
        }
    }

    /// Sends `message` to every connection of `username`.
    pub async fn to_user(&self, username: &str, message: &Value) {
        if self.client.is_none() {
            return;
        }
        match self.store.ws_connections_of(username).await {
            Ok(connections) => {
                for connection in connections {
                    self.post(&connection.connection_id, message).await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "websocket connections of a user unreadable"),
        }
    }

    /// Sends `message` to every connection; returns how many received it.
    pub async fn to_everyone(&self, message: &Value) -> usize {
        if self.client.is_none() {
            return 0;
        }
        let connections = match self.store.ws_connections().await {
            Ok(connections) => connections,
            Err(err) => {
                tracing::warn!(error = %err, "websocket connections unreadable");
                return 0;
            }
        };
        let mut sent = 0;
        for connection in connections {
            if self.post(&connection.connection_id, message).await == Delivery::Sent {
                sent += 1;
            }
        }
        sent
    }

    /// The `maintenance_broadcast` task at `now`: the due maintenance events to every connection (one
    /// Query of the phases not ended a period ago, one of the connections when something is due).
    /// Returns the number of events and of deliveries.
    pub async fn broadcast_maintenances(&self, now: DateTime) -> StoreResult<(usize, usize)> {
        let phases = self.store.maintenances_not_ended(now - MAINTENANCE_BROADCAST_PERIOD).await?;
        let infos = due_broadcasts(&phases, now, MAINTENANCE_BROADCAST_PERIOD);
        let mut delivered = 0;
        for info in &infos {
            delivered += self.to_everyone(&maintenance_event(info.clone())).await;
        }
        Ok((infos.len(), delivered))
    }

    /// The count's `job_status` to its owner; Global counts are never announced.
    pub async fn count_status(&self, measure: &DatedMeasure) {
        if let Some(event) = count_event(measure) {
            self.to_user(&measure.owner, &event).await;
        }
    }

    /// The export's `job_status` to its owner (beyond the original: the app may show an export's
    /// progress without polling `/exports/`).
    pub async fn export_status(&self, export: &Export, now: DateTime) {
        self.to_user(&export.owner, &export_event(export, now)).await;
    }

    /// The cohort's `job_status` to its owner.
    pub async fn cohort_status(&self, cohort: &CohortResult, result_size: Option<i64>, global: Option<&DatedMeasure>) {
        self.to_user(&cohort.owner, &cohort_event(cohort, result_size, global)).await;
    }
}

/// `{"type": "job_status", "job_name": "count", …}`, or None for a Global count.
pub fn count_event(measure: &DatedMeasure) -> Option<Value> {
    (measure.mode != MeasureMode::Global).then(|| {
        let status = measure.job.request_job_status.as_str();
        json!({
            "type": "job_status",
            "status": status,
            "uuid": measure.uuid,
            "job_name": "count",
            "extra_info": {
                "request_job_status": status,
                "request_job_fail_msg": measure.job.request_job_fail_msg,
                "measure": measure.measure,
                "snapshot_id": measure.request_query_snapshot,
                "extra": measure.extra,
            },
        })
    })
}

/// `{"type": "job_status", "job_name": "create", …}`: `result_size` is the linked count's measure,
/// `global` the bounds of the cohort's Global count when it has one.
pub fn cohort_event(cohort: &CohortResult, result_size: Option<i64>, global: Option<&DatedMeasure>) -> Value {
    let status = cohort.job.request_job_status.as_str();
    let mut extra_info = json!({
        "request_job_status": status,
        "group_id": cohort.group_id,
        "result_size": result_size,
        "request_job_fail_msg": cohort.job.request_job_fail_msg,
    });
    if let Some(global) = global {
        extra_info["global"] = json!({"measure_min": global.measure_min, "measure_max": global.measure_max});
    }
    json!({"type": "job_status", "status": status, "uuid": cohort.uuid, "job_name": "create", "extra_info": extra_info})
}

/// `{"type": "job_status", "job_name": "export", …}`: its status, its stage (a hive export's database
/// preparation: `creating_database`, `database_ready`, `handing_over`) and the time since its launch.
pub fn export_event(export: &Export, now: DateTime) -> Value {
    let status = export.job.request_job_status.as_str();
    let stage = export.hive_stage.as_ref().map(HiveStage::name);
    let elapsed_ms = export.launched_at.map(|at| (now - at).whole_milliseconds().max(0) as i64);
    json!({
        "type": "job_status",
        "status": status,
        "uuid": export.uuid,
        "job_name": "export",
        "extra_info": {
            "request_job_status": status,
            "request_job_fail_msg": export.job.request_job_fail_msg,
            "target_name": export.target_name,
            "stage": stage,
            "elapsed_ms": elapsed_ms,
        },
    })
}

/// `{"type": "maintenance", "info": …}` (`info` as `MaintenancePhase::websocket_info`).
pub fn maintenance_event(info: Value) -> Value {
    json!({"type": "maintenance", "info": info})
}
