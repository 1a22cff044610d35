//! The e-mails of the cohort workspace (spec §10.2), built from the repository's templates. Building
//! is separate from sending so tests read the content; delivery failures are logged, never surfaced.
use std::collections::BTreeMap;

use crate::{
    clients::mail::{render, Email, Mailer},
    config::Settings,
    domain::{
        exports::{Export, OutputFormat},
        user::User,
    },
    store::{DynamoStore, StoreResult},
};

/// "shared_request": a snapshot was shared with `recipient` (spec §5.5).
pub fn shared_request(settings: &Settings, owner: &User, recipient: &User, request_name: &str) -> Option<Email> {
    let to = recipient.email.as_deref()?;
    let subject = format!(
        "{} {} a partagé une requête avec vous",
        owner.firstname.as_deref().unwrap_or(""),
        owner.lastname.as_deref().unwrap_or("")
    );
    let context = BTreeMap::from([
        ("recipient_name", recipient.full_name()),
        ("owner_name", owner.full_name()),
        ("request_name", request_name.to_owned()),
        ("shared_folder_name", settings.shared_folder_name.clone()),
        ("requests_url", format!("{}/researches/requests", settings.frontend_url.trim_end_matches('/'))),
        ("contact_email_address", settings.email_support_contact.clone()),
    ]);
    render("shared_request", to, subject.trim(), &context)
}

/// "count_request_refreshed": a scheduled re-count of the owner's request ended (spec §5.9).
pub fn count_refreshed(
    settings: &Settings,
    owner: &User,
    request: (uuid::Uuid, &str),
    version: i64,
    count: Option<i64>,
) -> Option<Email> {
    let to = owner.email.as_deref()?;
    let count_text = match count {
        Some(n) => format!("{n} patients"),
        None => "le comptage n'a pas abouti".to_owned(),
    };
    let context = BTreeMap::from([
        ("recipient_name", owner.full_name()),
        ("request_name", format!("{} (version {version})", request.1)),
        ("count_text", count_text),
        ("request_url", format!("{}/cohort/new/{}", settings.frontend_url.trim_end_matches('/'), request.0)),
        ("contact_email_address", settings.email_support_contact.clone()),
    ]);
    render("count_request_refreshed", to, "Votre requête a été bien rafraichie", &context)
}

/// "large_cohort_finished": the Solr ETL has built a cohort too large for the executor (spec §5.7).
pub fn large_cohort_ready(settings: &Settings, owner: &User, cohort_name: &str, group_id: &str) -> Option<Email> {
    let to = owner.email.as_deref()?;
    let context = BTreeMap::from([
        ("recipient_name", owner.full_name()),
        ("cohort_name", cohort_name.to_owned()),
        ("cohort_url", format!("{}/cohort?groupId={group_id}", settings.frontend_url.trim_end_matches('/'))),
        ("contact_email_address", settings.email_support_contact.clone()),
    ]);
    render("large_cohort_finished", to, "Votre cohorte est prête", &context)
}

/// What a feasibility study's owner is told (spec §5.8).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReportNews {
    /// The study was launched: "feasibility_report_requested".
    Requested,
    /// The report is stored: "feasibility_report_ready", with the download link.
    Ready(uuid::Uuid),
    /// The launch or the count failed: "feasibility_report_error".
    Failed,
}

pub fn feasibility_report(settings: &Settings, owner: &User, request_name: &str, news: ReportNews) -> Option<Email> {
    let to = owner.email.as_deref()?;
    let mut context = BTreeMap::from([
        ("recipient_name", owner.full_name()),
        ("request_name", request_name.to_owned()),
        ("contact_email_address", settings.email_support_contact.clone()),
    ]);
    match news {
        ReportNews::Requested => render("feasibility_report_requested", to, "Votre demande de rapport", &context),
        ReportNews::Ready(study) => {
            let url = format!("{}/download/feasibility-studies/{study}/", settings.frontend_url.trim_end_matches('/'));
            context.insert("download_url", url);
            render("feasibility_report_ready", to, "Votre rapport est prêt", &context)
        }
        ReportNews::Failed => render("feasibility_report_error", to, "Votre demande de rapport a échoué", &context),
    }
}

/// Sends, logging (without the address) what could not be delivered.
/// What an export's owner is told (spec §10.2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExportNews {
    /// The export was sent to the Export API: "csv_export_received" ("hive_export_received" for hive).
    Received,
    /// The files are ready: "csv_export_succeeded", with the download link and the deletion date; for
    /// hive, "hive_export_succeeded" names the database instead.
    Succeeded,
    /// The export failed: "export_failed".
    Failed,
    /// The cleanup deleted the files: "exported_files_deleted".
    FilesDeleted,
}

pub fn export_news(settings: &Settings, owner: &User, export: &Export, news: ExportNews) -> Option<Email> {
    let to = owner.email.as_deref()?;
    let group = export.summary.cohort_id.clone().unwrap_or_default();
    let name = export.summary.cohort_name.clone().unwrap_or_default();
    let tables: Vec<&str> = export.tables.iter().map(|t| t.name.as_str()).collect();
    let front = settings.frontend_url.trim_end_matches('/');
    let delete_date = crate::domain::time::now() + time::Duration::days(settings.days_to_keep_exported_files);
    let context = BTreeMap::from([
        ("recipient_name", owner.full_name()),
        ("cohort_id", group.clone()),
        ("cohort_name", name.clone()),
        ("selected_tables", tables.join(", ")),
        ("retried", if export.retried { " (nouvelle tentative)".to_owned() } else { String::new() }),
        ("download_url", format!("{front}/download/exports/{}/", export.uuid)),
        (
            "delete_date",
            delete_date.format(time::macros::format_description!("[day] [month repr:long] [year]")).unwrap_or_default(),
        ),
        ("database_name", export.target_name.clone()),
        ("contact_email_address", settings.email_support_contact.clone()),
    ]);
    let hive = export.output_format == OutputFormat::Hive;
    let (template, subject) = match news {
        ExportNews::Received if hive => {
            ("hive_export_received", format!("[Cohorte {group}] Demande reçue de transfert en environnement Jupyter"))
        }
        ExportNews::Received => ("csv_export_received", format!("[Cohorte {group}] Demande d'export `{name}` reçue")),
        ExportNews::Succeeded => (
            if hive { "hive_export_succeeded" } else { "csv_export_succeeded" },
            format!("[Cohorte {group}] Export `{name}` terminé"),
        ),
        ExportNews::Failed => {
            ("export_failed", format!("[Cohorte {group}] Votre demande d'export `{name}` n'a pas abouti"))
        }
        ExportNews::FilesDeleted => {
            ("exported_files_deleted", format!("[Cohorte {group}] Confirmation de suppression de fichiers exportés"))
        }
    };
    render(template, to, &subject, &context)
}

/// What the `ADMINS` are told of a failed export (spec §10.2 "export_failed_admins"): one e-mail each.
pub fn export_failed_admins(settings: &Settings, export: &Export) -> Vec<Email> {
    let host = settings.public_base_url.clone().unwrap_or_else(|| settings.frontend_url.clone());
    let context = BTreeMap::from([
        ("cohort_id", export.summary.cohort_id.clone().unwrap_or_default()),
        ("cohort_name", export.summary.cohort_name.clone().unwrap_or_default()),
        ("error_message", export.job.request_job_fail_msg.clone()),
        ("export_id", export.uuid.to_string()),
        ("export_date", crate::domain::time::iso(export.stamps.created_at)),
        ("job_id", export.job.request_job_id.clone()),
        ("job_duration", export.job.request_job_duration.clone()),
        ("owner", export.owner.clone()),
        ("host", host),
    ]);
    let subject = "Demande d'export échouée";
    settings.admins.iter().filter_map(|(_, to)| render("export_failed_admins", to, subject, &context)).collect()
}

/// E-mails a failed export's owner and the `ADMINS` (delivery as [`deliver`]).
pub async fn tell_export_failure(
    store: &DynamoStore,
    mailer: &impl Mailer,
    settings: &Settings,
    export: &Export,
) -> StoreResult<()> {
    for email in export_failed_admins(settings, export) {
        deliver(mailer, Some(email), "export_failed_admins").await;
    }
    tell_export_owner(store, mailer, settings, export, ExportNews::Failed).await
}

/// E-mails an export's owner about it (an owner who is gone is logged; delivery as [`deliver`]).
pub async fn tell_export_owner(
    store: &DynamoStore,
    mailer: &impl Mailer,
    settings: &Settings,
    export: &Export,
    news: ExportNews,
) -> StoreResult<()> {
    match store.user(&export.owner).await? {
        Some(owner) => deliver(mailer, export_news(settings, &owner, export, news), "export").await,
        None => tracing::warn!(export = %export.uuid, "the export's owner is gone: no e-mail"),
    }
    Ok(())
}

pub async fn deliver(mailer: &impl Mailer, email: Option<Email>, what: &str) {
    match email {
        Some(email) => {
            if let Err(err) = mailer.send(&email).await {
                tracing::warn!(email = what, error = %err, "e-mail not delivered");
            }
        }
        None => tracing::warn!(email = what, "no e-mail address: e-mail not sent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_settings;

    fn user(username: &str, first: &str, last: &str) -> User {
        User::new(username, first, last, Some(&format!("{username}@example.org")), crate::domain::time::now())
    }

    #[test]
    fn refresh_and_large_cohort_emails_carry_their_links() {
        let settings = test_settings("t", &[("FRONTEND_URL", "https://c360.example.org")]);
        let owner = user("u1", "Ada", "Lovelace");
        let request = uuid::Uuid::nil();
        let refreshed = count_refreshed(&settings, &owner, (request, "Diabète"), 3, Some(1234)).unwrap();
        assert_eq!(refreshed.subject, "Votre requête a été bien rafraichie");
        assert!(refreshed.text.contains("« Diabète (version 3) » a été bien rafraichie : 1234 patients."));
        assert!(refreshed.text.contains(&format!("https://c360.example.org/cohort/new/{request}")));
        let failed = count_refreshed(&settings, &owner, (request, "Diabète"), 3, None).unwrap();
        assert!(failed.text.contains("le comptage n'a pas abouti"));
        let ready = large_cohort_ready(&settings, &owner, "Grande <cohorte>", "42").unwrap();
        assert_eq!((ready.to.as_str(), ready.subject.as_str()), ("u1@example.org", "Votre cohorte est prête"));
        assert!(ready.text.contains("https://c360.example.org/cohort?groupId=42"));
        assert!(ready.html.contains("Grande &lt;cohorte&gt;"));
    }

    #[test]
    fn the_shared_request_email_names_owner_request_and_folder() {
        let settings = test_settings("t", &[("FRONTEND_URL", "https://c360.example.org/")]);
        let email =
            shared_request(&settings, &user("u1", "Ada", "Lovelace"), &user("u2", "Alan", "Turing"), "Diabète <2>")
                .expect("the recipient has an address");
        assert_eq!(email.to, "u2@example.org");
        assert_eq!(email.subject, "Ada Lovelace a partagé une requête avec vous");
        assert!(email.text.contains("Bonjour Alan Turing,"));
        assert!(email.text.contains("Ada Lovelace a partagé avec vous la requête « Diabète <2> »"));
        assert!(email.text.contains("« Mes requêtes reçues »"));
        assert!(email.html.contains("Diabète &lt;2&gt;"), "HTML is escaped: {}", email.html);
        assert!(email.html.contains("https://c360.example.org/researches/requests"));
    }

    #[test]
    fn feasibility_emails_follow_the_study() {
        let settings = test_settings("t", &[("FRONTEND_URL", "https://c360.example.org")]);
        let owner = user("u1", "Ada", "Lovelace");
        let study = uuid::Uuid::nil();
        let requested = feasibility_report(&settings, &owner, "Diabète", ReportNews::Requested).unwrap();
        assert_eq!(requested.subject, "Votre demande de rapport");
        assert!(requested.text.contains("« Diabète » a bien été prise en compte"));
        let ready = feasibility_report(&settings, &owner, "Diabète", ReportNews::Ready(study)).unwrap();
        assert_eq!(ready.subject, "Votre rapport est prêt");
        assert!(ready.text.contains(&format!("https://c360.example.org/download/feasibility-studies/{study}/")));
        let failed = feasibility_report(&settings, &owner, "Diabète", ReportNews::Failed).unwrap();
        assert_eq!(
            (failed.to.as_str(), failed.subject.as_str()),
            ("u1@example.org", "Votre demande de rapport a échoué")
        );
    }

    #[test]
    fn a_failed_export_is_told_to_each_admin_with_its_error() {
        let settings = test_settings("t", &[("ADMINS", "Ops,ops@example.org; nobody ;Data Team,data@example.org")]);
        assert_eq!(settings.admins.len(), 2, "an entry without an e-mail is left out");
        let mut export = crate::domain::exports::test_export(OutputFormat::Csv, Vec::new());
        export.job.request_job_fail_msg = "Export terminated with an error: Job `t1` ended with status `failed`".into();
        export.summary.cohort_name = Some("Diabète <T2>".into());
        let emails = export_failed_admins(&settings, &export);
        assert_eq!(emails.iter().map(|e| e.to.as_str()).collect::<Vec<_>>(), ["ops@example.org", "data@example.org"]);
        assert_eq!(emails[0].subject, "Demande d'export échouée");
        assert!(emails[0].text.contains("ended with status `failed`"), "{}", emails[0].text);
        assert!(emails[0].text.contains(&export.uuid.to_string()));
        assert!(emails[0].html.contains("Diabète &lt;T2&gt;"), "{}", emails[0].html);
        assert!(export_failed_admins(&test_settings("t", &[]), &export).is_empty(), "no ADMINS: nobody");
    }
}
