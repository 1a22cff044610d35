//! The JSON shapes of the platform endpoints (spec §9), rendered from the domain types.
use std::collections::BTreeMap;

use c360::domain::{
    content::{content_type_label, Content, CONTENT_TYPES},
    maintenance::MaintenancePhase,
    release_note::ReleaseNote,
    request_log::RequestLog,
    time::{self, DateTime},
};
use serde::Serialize;
use users_api::views::UserView;
use utoipa::ToSchema;

/// A maintenance phase (spec §9.1).
#[derive(Serialize, ToSchema)]
pub struct MaintenanceView {
    pub id: i64,
    #[schema(format = DateTime)]
    pub insert_datetime: String,
    #[schema(format = DateTime)]
    pub update_datetime: String,
    #[schema(format = DateTime)]
    pub delete_datetime: Option<String>,
    pub subject: String,
    pub message: Option<String>,
    /// `partial` or `full`.
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(format = DateTime)]
    pub start_datetime: String,
    #[schema(format = DateTime)]
    pub end_datetime: String,
    /// `start_datetime` again (the clients' name).
    #[schema(format = DateTime)]
    pub maintenance_start: String,
    /// `end_datetime` again (the clients' name).
    #[schema(format = DateTime)]
    pub maintenance_end: String,
    /// In progress now.
    pub active: bool,
    pub is_data_saved_message_hidden: bool,
}

impl MaintenanceView {
    pub fn of(p: &MaintenancePhase, now: DateTime) -> Self {
        Self {
            id: p.id,
            insert_datetime: time::iso(p.insert_datetime),
            update_datetime: time::iso(p.update_datetime),
            delete_datetime: p.delete_datetime.map(time::iso),
            subject: p.subject.clone(),
            message: p.message.clone(),
            kind: p.kind.clone(),
            start_datetime: time::iso(p.start_datetime),
            end_datetime: time::iso(p.end_datetime),
            maintenance_start: time::iso(p.start_datetime),
            maintenance_end: time::iso(p.end_datetime),
            active: p.is_active_at(now),
            is_data_saved_message_hidden: p.is_data_saved_message_hidden,
        }
    }
}

/// No phase in progress nor to come: an empty object.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // documented with `additionalProperties: false`: only `{}`.
pub struct NoMaintenance {}

/// `/maintenances/next/`: the phase in progress, else the next one, else `{}`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum NextMaintenanceView {
    Phase(Box<MaintenanceView>),
    Nothing(NoMaintenance),
}

/// A release note (spec §9.3).
#[derive(Serialize, ToSchema)]
pub struct ReleaseNoteView {
    pub id: i64,
    #[schema(format = DateTime)]
    pub insert_datetime: String,
    #[schema(format = DateTime)]
    pub update_datetime: String,
    pub title: String,
    /// Its paragraphs.
    pub message: Vec<String>,
    pub author: Option<String>,
}

impl ReleaseNoteView {
    pub fn of(n: &ReleaseNote) -> Self {
        Self {
            id: n.id,
            insert_datetime: time::iso(n.insert_datetime),
            update_datetime: time::iso(n.update_datetime),
            title: n.title.clone(),
            message: n.message.clone(),
            author: n.author.clone(),
        }
    }
}

/// A web content: a banner or a news item (spec §9.2).
#[derive(Serialize, ToSchema)]
pub struct ContentView {
    pub id: i64,
    pub title: String,
    pub content: String,
    /// The front-end page it is shown on.
    pub page: Option<String>,
    pub content_type: String,
    /// The type's label.
    pub content_type_display: Option<String>,
    /// `order`, `style` and `tags`, as text.
    pub metadata: BTreeMap<String, String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub modified_at: String,
    #[schema(format = DateTime)]
    pub deleted_at: Option<String>,
}

impl ContentView {
    pub fn of(c: &Content) -> Self {
        Self {
            id: c.id,
            title: c.title.clone(),
            content: c.content.clone(),
            page: c.page.clone(),
            content_type: c.content_type.clone(),
            content_type_display: content_type_label(&c.content_type).map(str::to_owned),
            metadata: c.metadata.clone(),
            created_at: time::iso(c.created_at),
            modified_at: time::iso(c.modified_at),
            deleted_at: c.deleted_at.map(time::iso),
        }
    }
}

/// A content type's label and description (they are equal).
#[derive(Serialize, ToSchema)]
pub struct ContentTypeView {
    pub label: String,
    pub description: String,
}

/// Every content type, by its name (`BANNER_WARNING`…).
#[derive(Serialize, ToSchema)]
pub struct ContentTypesView(pub BTreeMap<String, ContentTypeView>);

impl ContentTypesView {
    pub fn all() -> Self {
        Self(
            CONTENT_TYPES
                .iter()
                .map(|(kind, label)| {
                    (
                        (*kind).to_owned(),
                        ContentTypeView { label: (*label).to_owned(), description: (*label).to_owned() },
                    )
                })
                .collect(),
        )
    }
}

/// An entry of the request audit log (spec §9.4).
#[derive(Serialize, ToSchema)]
pub struct LogView {
    pub id: i64,
    pub user: Option<String>,
    pub username_persistent: Option<String>,
    #[schema(format = DateTime)]
    pub requested_at: String,
    pub response_ms: i64,
    pub path: String,
    pub view: String,
    pub view_method: String,
    pub remote_addr: Option<String>,
    pub host: Option<String>,
    pub method: String,
    pub user_agent: Option<String>,
    pub query_params: String,
    /// The masked body as JSON text, cut at 64 KiB.
    pub data: Option<String>,
    /// Set when `data` was cut: the byte size of the whole masked body.
    pub data_size: Option<usize>,
    /// Set when `data` was cut: the SHA-256 (hex) of the whole masked body.
    pub data_sha256: Option<String>,
    /// Never stored: always null.
    pub response: Option<String>,
    /// Never stored: always null.
    pub errors: Option<String>,
    pub status_code: Option<u16>,
    /// Always null.
    pub related_names: Option<String>,
    /// The user of `username_persistent`, if known.
    pub user_details: Option<UserView>,
}

impl LogView {
    pub fn of(l: &RequestLog, user_details: Option<UserView>) -> Self {
        Self {
            id: l.id,
            user: l.user.clone(),
            username_persistent: l.username_persistent.clone(),
            requested_at: time::iso(l.requested_at),
            response_ms: l.response_ms,
            path: l.path.clone(),
            view: l.view.clone(),
            view_method: l.view_method.clone(),
            remote_addr: l.remote_addr.clone(),
            host: l.host.clone(),
            method: l.method.clone(),
            user_agent: l.user_agent.clone(),
            query_params: l.query_params.clone(),
            data: l.data.clone(),
            data_size: l.data_size,
            data_sha256: l.data_sha256.clone(),
            response: None,
            errors: None,
            status_code: l.status_code,
            related_names: None,
            user_details,
        }
    }
}

/// `GET /cache`: each container cache and its size, or with `keys_only` their names.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum CacheView {
    /// With `keys_only`: the names of the caches.
    Keys(Vec<String>),
    /// Each cache and its size.
    Sizes(CacheSizesView),
}

/// The container caches and their sizes.
#[derive(Serialize, ToSchema)]
pub struct CacheSizesView {
    /// `"<n> roles"`.
    pub roles: String,
}
