//! FHIR → Solr criteria formatting (spec §6.3, `USE_SOLR`), the pure part: what to ask the FHIR
//! server's `$query` operation for each `basicResource` criterion, how to read its `Parameters`
//! answer and what `filterSolr` becomes. The HTTP calls live in [`crate::clients::fhir`].
use percent_encoding::percent_decode_str;
use serde::Deserialize;

use super::query_executor::{Criteria, ResourceType};

const IDENTIFIER_VALUE: &str = "identifier.value";

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum SolrError {
    #[error("Resource type does not exist for criterion {0}")]
    NoResourceType(i64),
    #[error("filterFhir parameter `{0}` has no value")]
    NoValue(String),
    #[error("FHIR $query answered no parameters")]
    EmptyParameters,
    #[error("FHIR $query answered no `fq` parameter")]
    NoFq,
    #[error("FHIR $query answered an unreadable Parameters resource: {0}")]
    Unreadable(String),
}

/// One `$query` call: the resource asked, its search parameters (decoded, in the filter's order;
/// a repeated key is sent repeated) and, for IPP lists, the patient identifiers kept aside.
#[derive(Clone, Debug, PartialEq)]
pub struct Lookup {
    pub resource: ResourceType,
    pub params: Vec<(String, String)>,
    pub ipps: Option<Vec<String>>,
}

/// The `$query` call of a criterion. An `IPPList` with `identifier.value` parameters is asked as a
/// `Patient` query without them; its identifiers are added to the answer's `fq` (see [`filter_solr`]).
pub fn lookup(criterion: &Criteria) -> Result<Lookup, SolrError> {
    let resource = criterion.resource_type.ok_or(SolrError::NoResourceType(criterion.id.unwrap_or_default()))?;
    let mut params = fhir_params(criterion.filter_fhir.as_deref().unwrap_or_default())?;
    let is_ipp_list = resource == ResourceType::IppList && params.iter().any(|(k, _)| k == IDENTIFIER_VALUE);
    if !is_ipp_list {
        return Ok(Lookup { resource, params, ipps: None });
    }
    let ipps = params
        .iter()
        .filter(|(k, _)| k == IDENTIFIER_VALUE)
        .flat_map(|(_, v)| v.split(',').map(str::trim).filter(|ipp| !ipp.is_empty()).map(str::to_owned))
        .collect();
    params.retain(|(k, _)| k != IDENTIFIER_VALUE);
    Ok(Lookup { resource: ResourceType::Patient, params, ipps: Some(ipps) })
}

/// `k=v&k2=v2` (values URL-encoded, as the front end writes them) → decoded pairs. Empty segments
/// are skipped; a value may contain `=`.
pub fn fhir_params(filter_fhir: &str) -> Result<Vec<(String, String)>, SolrError> {
    filter_fhir
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').ok_or_else(|| SolrError::NoValue(segment.to_owned()))?;
            Ok((key.to_owned(), percent_decode_str(value).decode_utf8_lossy().into_owned()))
        })
        .collect()
}

/// `filterSolr`: the answer's `fq`, plus `&fq=identifier.value:(<ipp> <ipp>…)` for an IPP list.
pub fn filter_solr(fq: &str, ipps: Option<&[String]>) -> String {
    match ipps {
        Some(ipps) => format!("{fq}&fq={IDENTIFIER_VALUE}:({})", ipps.join(" ")),
        None => fq.to_owned(),
    }
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    parameter: Vec<Parameter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Parameter {
    name: String,
    value_string: Option<String>,
}

/// The `fq` of a FHIR `Parameters` answer (`{"resourceType": "Parameters", "parameter": [{"name":
/// "collection", "valueString": …}, {"name": "fq", "valueString": …}]}`).
pub fn parameters_fq(body: &[u8]) -> Result<String, SolrError> {
    let parameters: Parameters = serde_json::from_slice(body).map_err(|e| SolrError::Unreadable(e.to_string()))?;
    if parameters.parameter.is_empty() {
        return Err(SolrError::EmptyParameters);
    }
    parameters.parameter.into_iter().find(|p| p.name == "fq").and_then(|p| p.value_string).ok_or(SolrError::NoFq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criterion(resource: &str, filter: &str) -> Criteria {
        serde_json::from_value(serde_json::json!({
            "_type": "basicResource", "_id": 3, "isInclusive": true, "resourceType": resource, "filterFhir": filter
        }))
        .unwrap()
    }

    #[test]
    fn filters_become_decoded_parameters_in_order_with_repeats() {
        let params =
            fhir_params("code=I10%2CE11&subject.active=true&&date=ge2020-01-01&date=le2021-01-01&q=a%3Db").unwrap();
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("code", "I10,E11"),
                ("subject.active", "true"),
                ("date", "ge2020-01-01"),
                ("date", "le2021-01-01"),
                ("q", "a=b")
            ]
        );
        assert_eq!(fhir_params("").unwrap(), []);
        assert_eq!(fhir_params("gender").unwrap_err(), SolrError::NoValue("gender".into()));
    }

    #[test]
    fn ipp_lists_are_asked_as_patients_and_keep_their_identifiers_for_solr() {
        let lookup = lookup(&criterion("IPPList", "identifier.value=8000001,8000002&gender=female")).unwrap();
        assert_eq!(lookup.resource, ResourceType::Patient);
        assert_eq!(lookup.params, [("gender".to_owned(), "female".to_owned())]);
        let ipps = lookup.ipps.unwrap();
        assert_eq!(ipps, ["8000001", "8000002"]);
        assert_eq!(
            filter_solr("fq=gender:female", Some(&ipps)),
            "fq=gender:female&fq=identifier.value:(8000001 8000002)"
        );
        // An IPP list without identifiers, and any other resource, are asked as they are.
        let plain = super::lookup(&criterion("IPPList", "gender=male")).unwrap();
        assert_eq!((plain.resource, plain.ipps), (ResourceType::IppList, None));
        assert_eq!(filter_solr("fq=x", None), "fq=x");
    }

    #[test]
    fn a_criterion_without_resource_type_cannot_be_asked() {
        let mut c = criterion("Patient", "gender=female");
        c.resource_type = None;
        assert_eq!(lookup(&c).unwrap_err(), SolrError::NoResourceType(3));
    }

    #[test]
    fn parameters_answers_give_their_fq_or_fail() {
        let answer = br#"{"resourceType": "Parameters", "parameter": [
            {"name": "collection", "valueString": "patientAphp"}, {"name": "fq", "valueString": "fq=gender:female"}]}"#;
        assert_eq!(parameters_fq(answer).unwrap(), "fq=gender:female");
        let empty = br#"{"resourceType": "Parameters", "parameter": []}"#;
        assert_eq!(parameters_fq(empty).unwrap_err(), SolrError::EmptyParameters);
        let no_fq = br#"{"resourceType": "Parameters", "parameter": [{"name": "collection", "valueString": "x"}]}"#;
        assert_eq!(parameters_fq(no_fq).unwrap_err(), SolrError::NoFq);
        assert!(matches!(parameters_fq(b"<html>").unwrap_err(), SolrError::Unreadable(_)));
    }
}
