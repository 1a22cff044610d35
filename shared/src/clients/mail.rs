//! E-mails (spec §10.2): text + HTML bodies rendered from templates kept in the repository, sent
//! through SES. Sending sits behind [`Mailer`] so the content is testable without a mail server;
//! delivery errors are logged by the callers, never surfaced to users. Every HTML body shows the
//! Cohort360 logo, sent inline with each message (Content-ID `<logo_cohort360.png>`, as the original).
use std::collections::BTreeMap;

/// The logo the HTML templates show as `cid:logo_cohort360.png`.
pub const LOGO: &[u8] = include_bytes!("../../assets/logo_cohort360.png");
pub const LOGO_CONTENT_ID: &str = "logo_cohort360.png";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
#[error("e-mail not sent: {0}")]
pub struct MailError(pub String);

pub trait Mailer {
    fn send(&self, email: &Email) -> impl std::future::Future<Output = Result<(), MailError>> + Send;
}

/// Any mailer behind one cloneable type: SES in the functions, a recording one in tests.
#[derive(Clone)]
pub struct SharedMailer(std::sync::Arc<dyn ErasedMailer>);

type MailFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), MailError>> + Send + 'a>>;

trait ErasedMailer: Send + Sync {
    fn send_boxed<'a>(&'a self, email: &'a Email) -> MailFuture<'a>;
}

impl<M: Mailer + Send + Sync> ErasedMailer for M {
    fn send_boxed<'a>(&'a self, email: &'a Email) -> MailFuture<'a> {
        Box::pin(self.send(email))
    }
}

impl SharedMailer {
    pub fn new(mailer: impl Mailer + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(mailer))
    }
}

impl Mailer for SharedMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        self.0.send_boxed(email).await
    }
}

/// The templates, by name: `(text, html)`, from `shared/templates/<name>.{txt,html}`.
pub fn template(name: &str) -> Option<(&'static str, &'static str)> {
    macro_rules! templates {
        ($($name:literal),* $(,)?) => {
            match name {
                $($name => Some((
                    include_str!(concat!("../../templates/", $name, ".txt")),
                    include_str!(concat!("../../templates/", $name, ".html")),
                )),)*
                _ => None,
            }
        };
    }
    templates![
        "access_expiry_alert",
        "count_request_refreshed",
        "csv_export_received",
        "csv_export_succeeded",
        "export_failed",
        "export_failed_admins",
        "exported_files_deleted",
        "feasibility_report_error",
        "feasibility_report_ready",
        "feasibility_report_requested",
        "hive_export_received",
        "hive_export_succeeded",
        "large_cohort_finished",
        "shared_request",
    ]
}

fn escape_html(value: &str) -> String {
    value.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Renders a template's two bodies; `{key}` placeholders take the context's values (escaped in
/// the HTML body).
pub fn render(name: &str, to: &str, subject: &str, context: &BTreeMap<&str, String>) -> Option<Email> {
    let (text, html) = template(name)?;
    let (mut text, mut html) = (text.to_owned(), html.to_owned());
    for (key, value) in context {
        let placeholder = format!("{{{key}}}");
        text = text.replace(&placeholder, value);
        html = html.replace(&placeholder, &escape_html(value));
    }
    Some(Email { to: to.to_owned(), subject: subject.to_owned(), text, html })
}

pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl SesMailer {
    pub fn new(client: aws_sdk_sesv2::Client, from: impl Into<String>) -> Self {
        Self { client, from: from.into() }
    }
}

/// The SES message of an e-mail: both bodies, and the logo inline when the HTML shows it.
fn ses_message(email: &Email) -> Result<aws_sdk_sesv2::types::Message, MailError> {
    use aws_sdk_sesv2::types::{
        Attachment, AttachmentContentDisposition, AttachmentContentTransferEncoding, Body, Content, Message,
    };
    let failed = |e: aws_sdk_sesv2::error::BuildError| MailError(e.to_string());
    let content = |data: &str| Content::builder().data(data).charset("UTF-8").build().map_err(failed);
    let mut message = Message::builder()
        .subject(content(&email.subject)?)
        .body(Body::builder().text(content(&email.text)?).html(content(&email.html)?).build());
    if email.html.contains(&format!("cid:{LOGO_CONTENT_ID}")) {
        let logo = Attachment::builder()
            .raw_content(aws_sdk_sesv2::primitives::Blob::new(LOGO))
            .file_name(LOGO_CONTENT_ID)
            .content_type("image/png")
            .content_id(LOGO_CONTENT_ID)
            .content_disposition(AttachmentContentDisposition::Inline)
            .content_transfer_encoding(AttachmentContentTransferEncoding::Base64)
            .build()
            .map_err(failed)?;
        message = message.attachments(logo);
    }
    Ok(message.build())
}

impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        use aws_sdk_sesv2::types::{Destination, EmailContent};
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().simple(ses_message(email)?).build())
            .send()
            .await
            .map_err(|e| MailError(format!("{:?}", e.as_service_error().map(|s| s.to_string()))))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sesv2::types::AttachmentContentDisposition;

    use super::*;

    #[test]
    fn the_expiry_alert_renders_both_bodies_and_escapes_html() {
        let context = BTreeMap::from([
            ("recipient_name", "Zoë <D'Arc>".to_owned()),
            ("expiry_days", "30".to_owned()),
            ("access_managers_list_link", "https://portail/managers".to_owned()),
            ("contact_email_address", "support@cohort360.local".to_owned()),
        ]);
        let email = render("access_expiry_alert", "z@x.fr", "Expiration de vos accès à Cohort360", &context).unwrap();
        assert!(email.text.contains("Bonjour Zoë <D'Arc>,") && email.text.contains("dans 30 jours"));
        assert!(email.html.contains("Bonjour Zoë &lt;D&#39;Arc&gt;,"));
        assert!(email.html.contains(r#"href="https://portail/managers""#));
        assert!(!email.text.contains('{') && !email.html.contains("{recipient_name}"));
    }

    #[test]
    fn every_email_template_shows_the_logo_sent_inline() {
        let names = [
            "access_expiry_alert",
            "count_request_refreshed",
            "feasibility_report_error",
            "feasibility_report_ready",
            "feasibility_report_requested",
            "hive_export_received",
            "hive_export_succeeded",
            "large_cohort_finished",
            "shared_request",
        ];
        for name in names {
            let email = render(name, "z@x.fr", "s", &BTreeMap::new()).unwrap();
            let message = ses_message(&email).unwrap();
            let [logo] = message.attachments() else { panic!("{name}: one inline logo") };
            assert_eq!(logo.content_id(), Some(LOGO_CONTENT_ID), "{name}");
            assert_eq!(logo.content_disposition(), Some(&AttachmentContentDisposition::Inline));
            assert_eq!((logo.content_type(), logo.raw_content().as_ref()), (Some("image/png"), LOGO));
        }
        assert!(LOGO.starts_with(b"\x89PNG\r\n\x1a\n"));
        let plain = Email { to: "z@x.fr".into(), subject: "s".into(), text: "t".into(), html: "<p>h</p>".into() };
        assert!(ses_message(&plain).unwrap().attachments().is_empty(), "no logo shown, none attached");
    }
}
