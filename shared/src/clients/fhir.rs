//! The FHIR server (`FHIR_URL`): the active `Organization`s the FHIR perimeter sync reads, page after
//! page (`Bundle.link[relation=next]`), with `FHIR_ACCESS_TOKEN` as a bearer token; and the `$query`
//! operation that translates a criterion's filter for Solr (spec §6.3).
use std::collections::HashSet;

use reqwest::Url;
use serde::Deserialize;

use crate::{
    clients::jobs::ForwardedAuth,
    config::Secret,
    domain::{
        fhir_tree::Organization,
        solr::{self, Lookup},
    },
};

/// Organizations asked per page; servers may serve fewer (HAPI caps `_count`), the links say.
const PAGE_SIZE: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    #[error("FHIR_URL is not a valid URL")]
    BadUrl,
    /// Never carries the URL (the links are the server's) nor the token.
    #[error("FHIR server unreachable ({0})")]
    Unreachable(&'static str),
    #[error("FHIR server answered {0}")]
    Status(u16),
    #[error("FHIR server answered an unreadable bundle: {0}")]
    Body(String),
    /// The token goes to `FHIR_URL`'s origin only.
    #[error("FHIR bundle links to another server or back to a page already read")]
    BadLink,
}

pub struct FhirClient {
    base: Url,
    token: Secret,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Bundle {
    #[serde(default)]
    link: Vec<Link>,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Link {
    relation: String,
    url: String,
}

#[derive(Deserialize)]
struct Entry {
    resource: Option<Resource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resource {
    resource_type: String,
    id: Option<String>,
    active: Option<bool>,
    name: Option<String>,
    #[serde(default)]
    alias: Vec<String>,
    #[serde(default)]
    identifier: Vec<Identifier>,
    part_of: Option<Reference>,
}

#[derive(Deserialize)]
struct Identifier {
    value: Option<String>,
}

#[derive(Deserialize)]
struct Reference {
    reference: Option<String>,
}

fn unreachable(err: reqwest::Error) -> FhirError {
    FhirError::Unreachable(if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    })
}

impl FhirClient {
    /// `base_url` is `FHIR_URL` (e.g. `https://fhir.example/fhir`); an empty token sends none.
    pub fn new(base_url: &str, token: Secret, http: reqwest::Client) -> Result<Self, FhirError> {
        let base = Url::parse(&format!("{}/", base_url.trim_end_matches('/'))).map_err(|_| FhirError::BadUrl)?;
        Ok(Self { base, token, http })
    }

    /// The Solr `fq` of one criterion: `GET <resource>/$query?<params>` with the requester's headers
    /// (`None`: the service token, for jobs nobody requested, such as scheduled re-counts). With
    /// `test_first` (`TEST_FHIR_QUERIES`), the search itself is tried first with `_count=0`, since
    /// `$query` does not check the parameters.
    pub async fn solr_fq(
        &self,
        lookup: &Lookup,
        auth: Option<&ForwardedAuth>,
        test_first: bool,
    ) -> Result<String, FhirError> {
        let resource = lookup.resource.as_str();
        if test_first {
            let mut url = self.base.join(resource).map_err(|_| FhirError::BadUrl)?;
            url.query_pairs_mut().extend_pairs(&lookup.params).append_pair("_count", "0");
            self.get(url, auth).await?;
        }
        let mut url = self.base.join(&format!("{resource}/$query")).map_err(|_| FhirError::BadUrl)?;
        url.query_pairs_mut().extend_pairs(&lookup.params);
        let body = self.get(url, auth).await?;
        solr::parameters_fq(&body).map_err(|e| FhirError::Body(e.to_string()))
    }

    async fn get(&self, url: Url, auth: Option<&ForwardedAuth>) -> Result<bytes::Bytes, FhirError> {
        let mut request = self.http.get(url).header("accept", "application/fhir+json");
        match auth {
            Some(auth) => {
                request = request.header("authorization", &auth.authorization);
                if let Some(method) = &auth.authorization_method {
                    request = request.header("authorizationMethod", method);
                }
                if let Some(trace_id) = &auth.trace_id {
                    request = request.header("x-trace-id", trace_id);
                }
            }
            None if !self.token.is_empty() => request = request.bearer_auth(self.token.expose()),
            None => {}
        }
        let response = request.send().await.map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(FhirError::Status(response.status().as_u16()));
        }
        response.bytes().await.map_err(unreachable)
    }

    /// Every active Organization, following the bundles' `next` links.
    pub async fn active_organizations(&self) -> Result<Vec<Organization>, FhirError> {
        let mut url =
            self.base.join(&format!("Organization?active=true&_count={PAGE_SIZE}")).map_err(|_| FhirError::BadLink)?;
        let mut seen = HashSet::new();
        let mut organizations = Vec::new();
        loop {
            if url.origin() != self.base.origin() || !seen.insert(url.to_string()) {
                return Err(FhirError::BadLink);
            }
            let bytes = self.get(url.clone(), None).await?;
            let bundle: Bundle = serde_json::from_slice(&bytes).map_err(|e| FhirError::Body(e.to_string()))?;
            organizations.extend(
                bundle
                    .entry
                    .into_iter()
                    .filter_map(|e| e.resource)
                    .filter(|r| r.resource_type == "Organization" && r.active != Some(false))
                    .filter_map(|r| {
                        Some(Organization {
                            id: r.id?,
                            name: r.name,
                            alias: r.alias.into_iter().next(),
                            identifier: r.identifier.into_iter().find_map(|i| i.value),
                            part_of: r.part_of.and_then(|p| p.reference),
                        })
                    }),
            );
            let Some(next) = bundle.link.into_iter().find(|l| l.relation == "next") else { break };
            url = self.base.join(&next.url).map_err(|_| FhirError::BadLink)?;
        }
        Ok(organizations)
    }
}
