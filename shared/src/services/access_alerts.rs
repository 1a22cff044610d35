//! The expiring-access alerts (spec §10.1): every user holding a valid access whose end date is
//! exactly `today + D` (for each configured D, 30 and 2 days by default) gets one e-mail.
use std::collections::{BTreeMap, HashMap, HashSet};

use crate::{
    clients::mail::{render, Mailer},
    domain::time::DateTime,
    error::AppResult,
    store::DynamoStore,
};

pub struct ExpiryAlerts {
    /// `ACCESS_EXPIRY_FIRST_ALERT_IN_DAYS`, `ACCESS_EXPIRY_SECOND_ALERT_IN_DAYS`.
    pub offsets_days: Vec<i64>,
    /// `ACCESS_MANAGERS_LIST_LINK`.
    pub managers_link: String,
    /// `EMAIL_SUPPORT_CONTACT`.
    pub contact: String,
}

pub const SUBJECT: &str = "Expiration de vos accès à Cohort360";

/// Sends the alerts due today; returns how many e-mails were sent. A failed delivery is logged and
/// the others go on.
pub async fn send_expiry_alerts(
    store: &DynamoStore,
    mailer: &impl Mailer,
    alerts: &ExpiryAlerts,
    now: DateTime,
) -> AppResult<usize> {
    let active: HashSet<i64> = store.active_profile_ids().await?;
    // One nightly read of the accesses index (see docs/data-model.md).
    let accesses = store.accesses_under("/").await?;
    let mut due: BTreeMap<String, i64> = BTreeMap::new();
    for days in &alerts.offsets_days {
        let date = (now + ::time::Duration::days(*days)).date();
        for a in accesses.iter().filter(|a| a.is_valid_at(now) && active.contains(&a.profile_id)) {
            if a.end_datetime.is_some_and(|end| end.date() == date) {
                due.entry(a.username.clone()).or_insert(*days);
            }
        }
    }
    let names: Vec<&str> = due.keys().map(String::as_str).collect();
    let users: HashMap<String, crate::domain::user::User> = store.users_by_name(&names).await?;
    let mut sent = 0;
    for (username, days) in &due {
        let Some(user) = users.get(username).filter(|u| u.delete_datetime.is_none()) else { continue };
        let Some(to) = user.email.as_deref() else {
            tracing::warn!(username, "no e-mail address: expiry alert not sent");
            continue;
        };
        let context = BTreeMap::from([
            ("recipient_name", user.full_name()),
            ("expiry_days", days.to_string()),
            ("access_managers_list_link", alerts.managers_link.clone()),
            ("contact_email_address", alerts.contact.clone()),
        ]);
        let Some(email) = render("access_expiry_alert", to, SUBJECT, &context) else { continue };
        match mailer.send(&email).await {
            Ok(()) => sent += 1,
            Err(err) => tracing::warn!(username, error = %err, "expiry alert not delivered"),
        }
    }
    Ok(sent)
}
