//! E-mails (spec §10.2): text + HTML bodies rendered from templates kept in the repository, sent
//! through SES. Sending sits behind [`Mailer`] so the content is testable without a mail server;
//! delivery errors are logged by the callers, never surfaced to users.
use std::collections::BTreeMap;

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

/// The templates, by name: `(text, html)`, from `shared/templates/<name>.{txt,html}`.
pub fn template(name: &str) -> Option<(&'static str, &'static str)> {
    macro_rules! templates {
        ($($name:literal),* $(,)?) => {
            match name {
                $($name => Some((
                    include_str!(concat!("../templates/", $name, ".txt")),
                    include_str!(concat!("../templates/", $name, ".html")),
                )),)*
                _ => None,
            }
        };
    }
    templates![
        "access_expiry_alert",
        "count_request_refreshed",
        "feasibility_report_error",
        "feasibility_report_ready",
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

impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
        let content =
            |data: &str| Content::builder().data(data).charset("UTF-8").build().map_err(|e| MailError(e.to_string()));
        let message = Message::builder()
            .subject(content(&email.subject)?)
            .body(Body::builder().text(content(&email.text)?).html(content(&email.html)?).build())
            .build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| MailError(format!("{:?}", e.as_service_error().map(|s| s.to_string()))))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
}
