//! The QueryExecutor job payloads (spec §6.2, §6.4): exactly what the backend POSTs to QueryExecutor for
//! a count, a global count, a feasibility study, a cohort creation or a FHIR virtual cohort, and how
//! QE's immediate answer is read. Pure: the worker prefixes `QUERY_EXECUTOR_URL` to [`Job::path`] and
//! sends [`Job::body`].
//!
//! `cohortDefinitionSyntax` is the snapshot's query re-serialised from the typed model below, as the
//! original's model does: keys by alias, in the declaration order of each struct's fields (that order
//! is part of the payload: it is the original's, and golden tests pin it), null values dropped, keys
//! the model does not know dropped (`version`, a criterion's `name`, `providerCohortList`…).
use std::fmt;

use serde::{
    de::{self, Deserializer, MapAccess, SeqAccess, Visitor},
    ser::{SerializeMap, Serializer},
    Deserialize, Serialize,
};
use uuid::Uuid;

use super::cohort::JobStatus;

/// Path and query of a count submission (modes `count`, `count_all`, `count_with_details`).
pub const COUNT_PATH: &str =
    "/jobs?appName=omop-spark-job&classPath=fr.aphp.id.eds.requester.CountQuery&context=shared";
/// Path and query of a creation submission (mode `create`).
pub const CREATE_PATH: &str =
    "/jobs?appName=omop-spark-job&classPath=fr.aphp.id.eds.requester.CreateQuery&context=shared&sync=false";
/// `input.cohortDefinitionName` of every job.
pub const COHORT_DEFINITION_NAME: &str = "Created from C360 backend";
/// The owner of FHIR virtual cohorts (spec §6.4).
pub const VIRTUAL_COHORT_OWNER: &str = "admin";

/// `input.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Count,
    CountAll,
    CountWithDetails,
    Create,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::CountAll => "count_all",
            Self::CountWithDetails => "count_with_details",
            Self::Create => "create",
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Self::Create => CREATE_PATH,
            Self::Count | Self::CountAll | Self::CountWithDetails => COUNT_PATH,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Not JSON, or not of the query's shape (no `sourcePopulation` or `request`, an unknown
    /// `resourceType`, a non-numeric perimeter cohort id…).
    #[error("Invalid JSON query - {0}")]
    InvalidQuery(String),
    /// The root perimeter's cohort id given for `count_all` / `count_with_details` is not an integer.
    #[error("Invalid root perimeter cohort id: {0:?}")]
    InvalidRootCohortId(String),
    #[error("Invalid QueryExecutor answer - {0}")]
    InvalidAnswer(String),
    /// The wording of the original.
    #[error("Invalid status value, got `{0}`")]
    InvalidStatus(String),
}

/// `_type` of the query and of its criteria.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CriteriaType {
    BasicResource,
    AndGroup,
    OrGroup,
    NAmongM,
    Request,
}

/// `resourceType`: read case-insensitively, written in its canonical case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceType {
    Patient,
    Condition,
    Composition,
    Claim,
    Procedure,
    Specimen,
    Observation,
    Encounter,
    MedicationRequest,
    MedicationAdministration,
    DocumentReference,
    ImagingStudy,
    QuestionnaireResponse,
    IppList,
}

impl ResourceType {
    pub const ALL: [Self; 14] = [
        Self::Patient,
        Self::Condition,
        Self::Composition,
        Self::Claim,
        Self::Procedure,
        Self::Specimen,
        Self::Observation,
        Self::Encounter,
        Self::MedicationRequest,
        Self::MedicationAdministration,
        Self::DocumentReference,
        Self::ImagingStudy,
        Self::QuestionnaireResponse,
        Self::IppList,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "Patient",
            Self::Condition => "Condition",
            Self::Composition => "Composition",
            Self::Claim => "Claim",
            Self::Procedure => "Procedure",
            Self::Specimen => "Specimen",
            Self::Observation => "Observation",
            Self::Encounter => "Encounter",
            Self::MedicationRequest => "MedicationRequest",
            Self::MedicationAdministration => "MedicationAdministration",
            Self::DocumentReference => "DocumentReference",
            Self::ImagingStudy => "ImagingStudy",
            Self::QuestionnaireResponse => "QuestionnaireResponse",
            Self::IppList => "IPPList",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(value))
    }
}

impl Serialize for ResourceType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ResourceType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::parse(&value).ok_or_else(|| de::Error::custom(format!("unknown resourceType `{value}`")))
    }
}

/// The query (spec §5.2) as sent to QueryExecutor. The field order is the key order of the payload:
/// `instance_id`, `cohortName`, `sourcePopulation`, `resourceType`, `_type`, `request`, `temporalConstraints`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CohortQuery {
    /// The job's DM / cohort / study uuid, set by [`Job::new`]; a stored `instance_id` is ignored.
    #[serde(rename = "instance_id", skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort_name: Option<String>,
    pub source_population: SourcePopulation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<ResourceType>,
    #[serde(rename = "_type", default, skip_serializing_if = "Option::is_none")]
    pub criteria_type: Option<CriteriaType>,
    pub request: Criteria,
    #[serde(default, deserialize_with = "list_or_null")]
    pub temporal_constraints: Vec<TemporalConstraint>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourcePopulation {
    /// Perimeter cohort ids: integers or numeric strings in, integers out.
    #[serde(default, deserialize_with = "cohort_ids")]
    pub caresite_cohort_list: Vec<i64>,
}

/// A criterion or a group. Key order: `_type`, `_id`, `isInclusive`, `resourceType`, `filterSolr`,
/// `filterFhir`, `patientAge`, `criteria`, `occurrence`, `dateRange`, `dateRangeList`, `encounterDateRange`,
/// `temporalConstraints`, `nAmongMOptions`; the three lists are always written, even empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Criteria {
    #[serde(rename = "_type", default, skip_serializing_if = "Option::is_none")]
    pub criteria_type: Option<CriteriaType>,
    #[serde(rename = "_id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_inclusive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<ResourceType>,
    /// Filled by the Solr formatting (§6.3) when `USE_SOLR` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_solr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_fhir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_age: Option<PatientAge>,
    #[serde(default, deserialize_with = "list_or_null")]
    pub criteria: Vec<Criteria>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrence: Option<Occurrence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_range: Option<DateRange>,
    #[serde(default, deserialize_with = "list_or_null")]
    pub date_range_list: Vec<DateRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter_date_range: Option<DateRange>,
    #[serde(default, deserialize_with = "list_or_null")]
    pub temporal_constraints: Vec<TemporalConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_among_m_options: Option<NAmongMOptions>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientAge {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_age: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_is_not_null: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_preference: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DateRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_preference: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_is_not_null: Option<bool>,
}

/// `n` and `operator` are required, as in the original's model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Occurrence {
    pub n: i64,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_delay_min: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_delay_max: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_encounter: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_day: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NAmongMOptions {
    pub n: i64,
    pub operator: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TemporalConstraintDuration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub months: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<i64>,
}

/// The lists are untyped in the original's model (`["All"]`, ids, `{"_id", …}` objects): kept as
/// they come, objects in their key order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemporalConstraint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_list: Option<Vec<JsonItem>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_preference_list: Option<Vec<JsonItem>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_relation_min_duration: Option<TemporalConstraintDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_relation_max_duration: Option<TemporalConstraintDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrence_choice_list: Option<Vec<JsonItem>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_is_not_null_list: Option<Vec<JsonItem>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filtered_criteria_id_list: Option<Vec<JsonItem>>,
}

/// Any JSON value whose objects keep their key order (serde_json's map would sort them).
#[derive(Clone, Debug, PartialEq)]
pub enum JsonItem {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<JsonItem>),
    Object(Vec<(String, JsonItem)>),
}

impl Serialize for JsonItem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Number(n) => n.serialize(serializer),
            Self::String(s) => serializer.serialize_str(s),
            Self::Array(items) => items.serialize(serializer),
            Self::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for JsonItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonItemVisitor)
    }
}

struct JsonItemVisitor;

impl<'de> Visitor<'de> for JsonItemVisitor {
    type Value = JsonItem;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<JsonItem, E> {
        Ok(JsonItem::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<JsonItem, E> {
        Ok(JsonItem::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<JsonItem, D::Error> {
        JsonItem::deserialize(deserializer)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<JsonItem, E> {
        Ok(JsonItem::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<JsonItem, E> {
        Ok(JsonItem::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<JsonItem, E> {
        Ok(JsonItem::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<JsonItem, E> {
        // JSON text has no NaN nor infinity.
        Ok(serde_json::Number::from_f64(v).map_or(JsonItem::Null, JsonItem::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<JsonItem, E> {
        Ok(JsonItem::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<JsonItem, E> {
        Ok(JsonItem::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonItem, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(JsonItem::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonItem, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, JsonItem>()? {
            entries.push(entry);
        }
        Ok(JsonItem::Object(entries))
    }
}

/// The front writes empty lists, but a `null` one means the same.
fn list_or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// The front writes perimeter cohort ids as strings, QueryExecutor reads integers.
fn cohort_ids<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<i64>, D::Error> {
    let ids: Vec<JsonItem> = list_or_null(deserializer)?;
    ids.into_iter()
        .map(|id| {
            match &id {
                JsonItem::Number(n) => n.as_i64(),
                JsonItem::String(s) => s.parse().ok(),
                _ => None,
            }
            .ok_or_else(|| de::Error::custom(format!("invalid perimeter cohort id: {}", item_text(&id))))
        })
        .collect()
}

fn item_text(item: &JsonItem) -> String {
    serde_json::to_string(item).unwrap_or_default()
}

impl CohortQuery {
    pub fn parse(serialized_query: &str) -> Result<Self, QueryError> {
        serde_json::from_str(serialized_query).map_err(|e| QueryError::InvalidQuery(e.to_string()))
    }

    /// The `basicResource` criteria, depth first: those the Solr formatting (§6.3) fills. The
    /// criteria of a `basicResource` are not visited, as in the original.
    pub fn basic_resources_mut(&mut self) -> Vec<&mut Criteria> {
        fn collect<'a>(criteria: &'a mut Criteria, out: &mut Vec<&'a mut Criteria>) {
            if criteria.criteria_type == Some(CriteriaType::BasicResource) {
                out.push(criteria);
                return;
            }
            for child in &mut criteria.criteria {
                collect(child, out);
            }
        }
        let mut out = Vec::new();
        collect(&mut self.request, &mut out);
        out
    }

    /// The compact JSON text of `cohortDefinitionSyntax`, after the textual replacements QueryExecutor
    /// expects (`["All"]` → `"all"`, `[true]` → `true`, `[false]` → `false`, anywhere in the text).
    pub fn syntax(&self) -> Result<String, QueryError> {
        let text = serde_json::to_string(self).map_err(|e| QueryError::InvalidQuery(e.to_string()))?;
        Ok(text.replace(r#"["All"]"#, r#""all""#).replace("[true]", "true").replace("[false]", "false"))
    }
}

/// `input.modeOptions`: both keys always written, `null` when not given.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModeOptions {
    pub sampling: Option<f64>,
    pub details: Option<String>,
}

/// What a job is for; each kind fixes the mode, the uuid QE reports to and the options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum JobKind<'a> {
    /// A count (§5.6); `stage_details` is the POST's `stageDetails`.
    Count { dated_measure: Uuid, stage_details: Option<&'a str> },
    /// The Global count of a cohort created with `global_estimate` (§5.7), on the whole hospital:
    /// `root_cohort_id` is the `cohort_id` of the root perimeter (level 1, no parent).
    CountAll { dated_measure: Uuid, root_cohort_id: &'a str },
    /// A feasibility study (§5.8), on the root perimeter as `CountAll`, reported to its own callback.
    CountWithDetails { study: Uuid, root_cohort_id: &'a str },
    /// A cohort creation (§5.7); `sampling_ratio` for samples.
    Create { cohort: Uuid, sampling_ratio: Option<f64> },
    /// The virtual cohort of a perimeter (§6.4), with [`virtual_cohort_query`] and
    /// [`VIRTUAL_COHORT_OWNER`]: no uuid (the original sends `None`), reported to `/fhir-perimeters/<id>/`.
    VirtualCohort { perimeter_id: i64 },
}

/// A job ready to be sent. `query` stays open to the Solr formatting (§6.3) until [`Job::body`].
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub mode: Mode,
    pub owner: String,
    pub query: CohortQuery,
    pub callback_path: Option<String>,
    pub mode_options: Option<ModeOptions>,
}

impl Job {
    /// Reads the snapshot's `serialized_query` (or a query of §6.4) for a job of `kind`.
    pub fn new(kind: JobKind<'_>, owner: &str, serialized_query: &str) -> Result<Self, QueryError> {
        let mut query = CohortQuery::parse(serialized_query)?;
        let root = |id: &str| id.parse::<i64>().map_err(|_| QueryError::InvalidRootCohortId(id.to_owned()));
        // Python truthiness in the original: an empty `stageDetails` or a zero ratio sends no options.
        let (mode, instance_id, callback_path, mode_options) = match kind {
            JobKind::Count { dated_measure, stage_details } => {
                let options = stage_details
                    .filter(|d| !d.is_empty())
                    .map(|d| ModeOptions { sampling: None, details: Some(d.to_owned()) });
                (Mode::Count, Some(dated_measure), None, options)
            }
            JobKind::CountAll { dated_measure, root_cohort_id } => {
                query.source_population.caresite_cohort_list = vec![root(root_cohort_id)?];
                (Mode::CountAll, Some(dated_measure), None, None)
            }
            JobKind::CountWithDetails { study, root_cohort_id } => {
                query.source_population.caresite_cohort_list = vec![root(root_cohort_id)?];
                (Mode::CountWithDetails, Some(study), Some(format!("/cohort/feasibility-studies/{study}/")), None)
            }
            JobKind::Create { cohort, sampling_ratio } => {
                let options =
                    sampling_ratio.filter(|r| *r != 0.0).map(|r| ModeOptions { sampling: Some(r), details: None });
                (Mode::Create, Some(cohort), None, options)
            }
            JobKind::VirtualCohort { perimeter_id } => {
                (Mode::Create, None, Some(format!("/fhir-perimeters/{perimeter_id}/")), None)
            }
        };
        query.instance_id = instance_id;
        Ok(Self { mode, owner: owner.to_owned(), query, callback_path, mode_options })
    }

    pub fn path(&self) -> &'static str {
        self.mode.path()
    }

    /// The one-line body (no JSON content type: QueryExecutor reads it as HOCON).
    pub fn body(&self) -> Result<String, QueryError> {
        let uuid = self.query.instance_id.map_or_else(|| "None".to_owned(), |u| u.to_string());
        let mut body = format!(
            "input.cohortDefinitionName = {COHORT_DEFINITION_NAME},input.cohortDefinitionSyntax = {},\
             input.ownerEntityId = {},input.mode = {},input.cohortUuid = {uuid}",
            json_string_literal(&self.query.syntax()?),
            self.owner,
            self.mode.as_str(),
        );
        if let Some(path) = self.callback_path.as_deref().filter(|p| !p.is_empty()) {
            body.push_str(",input.callbackPath = ");
            body.push_str(path);
        }
        if let Some(options) = &self.mode_options {
            let options = serde_json::to_string(options).map_err(|e| QueryError::InvalidQuery(e.to_string()))?;
            body.push_str(",input.modeOptions = ");
            body.push_str(&options);
        }
        Ok(body)
    }
}

/// A JSON string literal with every non-ASCII or control character `\u`-escaped, as Python's
/// `json.dumps` writes it (the original's encoding of `cohortDefinitionSyntax`): the body stays ASCII.
pub fn json_string_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// The query of a sample (`resource_type` `Patient`, empty filter) or of an export subset (the FHIR
/// filter's resource and filter), on the patients of the source cohort's `group_id` (spec §6.4).
pub fn single_criterion_query(source_group_id: &str, resource_type: &str, filter_fhir: &str) -> String {
    format!(
        concat!(
            r#"{{"_type":"request","resourceType":{resource},"sourcePopulation":{{"caresiteCohortList":[{group}]}},"#,
            r#""request":{{"_id":0,"_type":"basicResource","isInclusive":true,"filterFhir":{filter},"#,
            r#""resourceType":{resource}}}}}"#,
        ),
        resource = json_string_literal(resource_type),
        group = json_string_literal(source_group_id),
        filter = json_string_literal(filter_fhir),
    )
}

/// The query of a sample cohort of the cohort `source_group_id` (spec §5.7, §6.4).
pub fn sample_query(source_group_id: &str) -> String {
    single_criterion_query(source_group_id, "Patient", "")
}

/// The query of a perimeter's virtual cohort (spec §6.4): the patients of the encounters of the
/// perimeter and of its descendants.
pub fn virtual_cohort_query(perimeter_id: i64, descendant_ids: &[i64]) -> String {
    let ids: Vec<String> = std::iter::once(&perimeter_id).chain(descendant_ids).map(i64::to_string).collect();
    format!(
        concat!(
            r#"{{"_type":"request","request":{{"_id":0,"_type":"andGroup","criteria":[{{"_id":1,"_type":"basicResource","#,
            r#""criteria":[],"dateRangeList":[],"filterFhir":"service-provider={ids}","isInclusive":true,"#,
            r#""resourceType":"Encounter","temporalConstraints":[]}}],"dateRangeList":[],"isInclusive":true,"#,
            r#""temporalConstraints":[]}},"sourcePopulation":{{}},"temporalConstraints":[]}}"#,
        ),
        ids = ids.join(","),
    )
}

/// QueryExecutor's immediate answer to a submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// `request_job_id`; absent from QE's error answers.
    pub job_id: Option<String>,
    pub status: JobStatus,
    /// QE's error message, if any.
    pub message: Option<String>,
}

/// Reads `{"status": "<STATUS>", "jobId": "<id>", ...}`; the status is mapped as callbacks' are.
pub fn parse_answer(body: &str) -> Result<Answer, QueryError> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        status: Option<String>,
        #[serde(default, rename = "jobId")]
        job_id: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    let raw: Raw = serde_json::from_str(body).map_err(|e| QueryError::InvalidAnswer(e.to_string()))?;
    let status = raw.status.unwrap_or_default();
    let mapped = JobStatus::from_callback(&status).ok_or(QueryError::InvalidStatus(status))?;
    Ok(Answer { job_id: raw.job_id, status: mapped, message: raw.message })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Cohort360 query of the app's shape: strings for perimeter ids, a lower-case resource type,
    /// unknown keys (`version`, `name`, `timeDelayMin` of nAmongM), nested groups, temporal constraints.
    const FIXTURE: &str = include_str!("testdata/qe_query.json");
    const DM: Uuid = uuid::uuid!("5b7e1f0a-9d3c-4e2b-8a61-0c4f2d9e7a13");
    const STUDY: Uuid = uuid::uuid!("c0a8e4d2-3f6b-4b1e-9e7d-2a5c8f1b6d04");
    const COHORT: Uuid = uuid::uuid!("e3d9b2a1-7c4f-4a8e-b5d6-1f0c9e8a7b62");
    const OWNER: &str = "4212345";
    const ROOT: &str = "8312002244";

    fn golden(text: &str) -> &str {
        text.trim_end()
    }

    fn body(kind: JobKind<'_>, owner: &str, query: &str) -> String {
        Job::new(kind, owner, query).unwrap().body().unwrap()
    }

    /// The JSON text of `cohortDefinitionSyntax`, decoded from the body.
    fn syntax_of(body: &str) -> String {
        let start = body.find("input.cohortDefinitionSyntax = ").unwrap() + "input.cohortDefinitionSyntax = ".len();
        let end = body.find(",input.ownerEntityId = ").unwrap();
        serde_json::from_str(&body[start..end]).unwrap()
    }

    /// Compact text of a JSON document, keys kept in their order.
    fn compact(json: &str) -> String {
        serde_json::to_string(&serde_json::from_str::<JsonItem>(json).unwrap()).unwrap()
    }

    #[test]
    fn count_body_is_the_golden_one() {
        let job = Job::new(JobKind::Count { dated_measure: DM, stage_details: None }, OWNER, FIXTURE).unwrap();
        assert_eq!(job.path(), COUNT_PATH);
        assert_eq!(job.body().unwrap(), golden(include_str!("testdata/qe_body_count.txt")));
    }

    #[test]
    fn stage_details_add_mode_options_with_a_null_sampling() {
        let count = golden(include_str!("testdata/qe_body_count.txt"));
        let with_details = body(JobKind::Count { dated_measure: DM, stage_details: Some("all") }, OWNER, FIXTURE);
        assert_eq!(with_details, format!(r#"{count},input.modeOptions = {{"sampling":null,"details":"all"}}"#));
        // An empty stageDetails is falsy in the original: no options.
        assert_eq!(body(JobKind::Count { dated_measure: DM, stage_details: Some("") }, OWNER, FIXTURE), count);
    }

    #[test]
    fn count_all_counts_on_the_root_perimeter() {
        let job = Job::new(JobKind::CountAll { dated_measure: DM, root_cohort_id: ROOT }, OWNER, FIXTURE).unwrap();
        assert_eq!(job.path(), COUNT_PATH);
        assert_eq!(job.query.source_population.caresite_cohort_list, [8312002244]);
        assert_eq!(job.body().unwrap(), golden(include_str!("testdata/qe_body_count_all.txt")));
    }

    #[test]
    fn feasibility_studies_count_on_the_root_perimeter_with_their_callback() {
        let job = Job::new(JobKind::CountWithDetails { study: STUDY, root_cohort_id: ROOT }, OWNER, FIXTURE).unwrap();
        assert_eq!(job.path(), COUNT_PATH);
        let body = job.body().unwrap();
        assert_eq!(body, golden(include_str!("testdata/qe_body_feasibility.txt")));
        assert!(body.ends_with(
            ",input.mode = count_with_details,input.cohortUuid = c0a8e4d2-3f6b-4b1e-9e7d-2a5c8f1b6d04,\
             input.callbackPath = /cohort/feasibility-studies/c0a8e4d2-3f6b-4b1e-9e7d-2a5c8f1b6d04/"
        ));
    }

    #[test]
    fn a_sample_is_created_from_its_parent_cohort_with_its_ratio() {
        let query = sample_query("123456");
        assert_eq!(
            query,
            r#"{"_type":"request","resourceType":"Patient","sourcePopulation":{"caresiteCohortList":["123456"]},"request":{"_id":0,"_type":"basicResource","isInclusive":true,"filterFhir":"","resourceType":"Patient"}}"#
        );
        let job = Job::new(JobKind::Create { cohort: COHORT, sampling_ratio: Some(0.25) }, OWNER, &query).unwrap();
        assert_eq!(job.path(), CREATE_PATH);
        assert_eq!(
            job.body().unwrap(),
            r#"input.cohortDefinitionName = Created from C360 backend,input.cohortDefinitionSyntax = "{\"instance_id\":\"e3d9b2a1-7c4f-4a8e-b5d6-1f0c9e8a7b62\",\"sourcePopulation\":{\"caresiteCohortList\":[123456]},\"resourceType\":\"Patient\",\"_type\":\"request\",\"request\":{\"_type\":\"basicResource\",\"_id\":0,\"isInclusive\":true,\"resourceType\":\"Patient\",\"filterFhir\":\"\",\"criteria\":[],\"dateRangeList\":[],\"temporalConstraints\":[]},\"temporalConstraints\":[]}",input.ownerEntityId = 4212345,input.mode = create,input.cohortUuid = e3d9b2a1-7c4f-4a8e-b5d6-1f0c9e8a7b62,input.modeOptions = {"sampling":0.25,"details":null}"#
        );
    }

    #[test]
    fn an_export_subset_filters_its_source_cohort() {
        let query =
            single_criterion_query("123456", "DocumentReference", "type:not=doc-impor&contenttype=text%2Fplain");
        assert_eq!(
            query,
            r#"{"_type":"request","resourceType":"DocumentReference","sourcePopulation":{"caresiteCohortList":["123456"]},"request":{"_id":0,"_type":"basicResource","isInclusive":true,"filterFhir":"type:not=doc-impor&contenttype=text%2Fplain","resourceType":"DocumentReference"}}"#
        );
        assert_eq!(
            body(JobKind::Create { cohort: COHORT, sampling_ratio: None }, OWNER, &query),
            r#"input.cohortDefinitionName = Created from C360 backend,input.cohortDefinitionSyntax = "{\"instance_id\":\"e3d9b2a1-7c4f-4a8e-b5d6-1f0c9e8a7b62\",\"sourcePopulation\":{\"caresiteCohortList\":[123456]},\"resourceType\":\"DocumentReference\",\"_type\":\"request\",\"request\":{\"_type\":\"basicResource\",\"_id\":0,\"isInclusive\":true,\"resourceType\":\"DocumentReference\",\"filterFhir\":\"type:not=doc-impor&contenttype=text%2Fplain\",\"criteria\":[],\"dateRangeList\":[],\"temporalConstraints\":[]},\"temporalConstraints\":[]}",input.ownerEntityId = 4212345,input.mode = create,input.cohortUuid = e3d9b2a1-7c4f-4a8e-b5d6-1f0c9e8a7b62"#
        );
    }

    #[test]
    fn a_fhir_virtual_cohort_has_no_uuid_and_reports_to_its_perimeter() {
        let query = virtual_cohort_query(8312002244, &[8312016825, 8312016826]);
        assert_eq!(
            query,
            r#"{"_type":"request","request":{"_id":0,"_type":"andGroup","criteria":[{"_id":1,"_type":"basicResource","criteria":[],"dateRangeList":[],"filterFhir":"service-provider=8312002244,8312016825,8312016826","isInclusive":true,"resourceType":"Encounter","temporalConstraints":[]}],"dateRangeList":[],"isInclusive":true,"temporalConstraints":[]},"sourcePopulation":{},"temporalConstraints":[]}"#
        );
        let job = Job::new(JobKind::VirtualCohort { perimeter_id: 8312002244 }, VIRTUAL_COHORT_OWNER, &query).unwrap();
        assert_eq!(job.path(), CREATE_PATH);
        assert_eq!(
            job.body().unwrap(),
            r#"input.cohortDefinitionName = Created from C360 backend,input.cohortDefinitionSyntax = "{\"sourcePopulation\":{\"caresiteCohortList\":[]},\"_type\":\"request\",\"request\":{\"_type\":\"andGroup\",\"_id\":0,\"isInclusive\":true,\"criteria\":[{\"_type\":\"basicResource\",\"_id\":1,\"isInclusive\":true,\"resourceType\":\"Encounter\",\"filterFhir\":\"service-provider=8312002244,8312016825,8312016826\",\"criteria\":[],\"dateRangeList\":[],\"temporalConstraints\":[]}],\"dateRangeList\":[],\"temporalConstraints\":[]},\"temporalConstraints\":[]}",input.ownerEntityId = admin,input.mode = create,input.cohortUuid = None,input.callbackPath = /fhir-perimeters/8312002244/"#
        );
        assert_eq!(virtual_cohort_query(7, &[]).matches("service-provider=7\"").count(), 1);
    }

    #[test]
    fn the_encoded_syntax_decodes_to_the_expected_query() {
        let body = body(JobKind::Count { dated_measure: DM, stage_details: None }, OWNER, FIXTURE);
        let syntax = syntax_of(&body);
        // Key order included: the expected file lists keys in the payload's order.
        assert_eq!(syntax, compact(include_str!("testdata/qe_syntax_count.json")));
        for dropped in ["version", "\"name\"", "timeDelayMin", "maxDate\":null", "\"All\"", "[true]", "[false]"] {
            assert!(!syntax.contains(dropped), "{dropped} in {syntax}");
        }
        // The stored order of `{"occurrenceChoice", "_id"}` is kept, not sorted.
        assert!(syntax.contains(r#""occurrenceChoiceList":[{"occurrenceChoice":"first","_id":1}]"#));
        assert!(syntax.contains(r#""resourceType":"Procedure""#), "resource types get their canonical case");
    }

    #[test]
    fn textual_replacements_apply_to_the_whole_json_text() {
        let query = r#"{"sourcePopulation": {"caresiteCohortList": []}, "request": {"_type": "andGroup",
            "temporalConstraints": [
                {"idList": ["All"], "dateIsNotNullList": [true]},
                {"idList": [1, 2], "dateIsNotNullList": [false], "filteredCriteriaIdList": [true, false]}]}}"#;
        let syntax = CohortQuery::parse(query).unwrap().syntax().unwrap();
        assert!(syntax.contains(r#"{"idList":"all","dateIsNotNullList":true}"#), "{syntax}");
        assert!(syntax.contains(r#"{"idList":[1,2],"dateIsNotNullList":false,"filteredCriteriaIdList":[true,false]}"#));
        // Inside strings too when the text matches: `[true]` does, `["All"]` (escaped quotes) does not.
        // Non-ASCII and control characters are \u-escaped in the body, as Python's json.dumps does.
        let tricky = r#"{"sourcePopulation": {}, "cohortName": "Cohorte \"été\" \\ 😀\n",
            "request": {"_type": "basicResource", "filterFhir": "x=[true]&y=[\"All\"]"}}"#;
        assert_eq!(
            body(JobKind::Count { dated_measure: DM, stage_details: None }, "u", tricky),
            r#"input.cohortDefinitionName = Created from C360 backend,input.cohortDefinitionSyntax = "{\"instance_id\":\"5b7e1f0a-9d3c-4e2b-8a61-0c4f2d9e7a13\",\"cohortName\":\"Cohorte \\\"\u00e9t\u00e9\\\" \\\\ \ud83d\ude00\\n\",\"sourcePopulation\":{\"caresiteCohortList\":[]},\"request\":{\"_type\":\"basicResource\",\"filterFhir\":\"x=true&y=[\\\"All\\\"]\",\"criteria\":[],\"dateRangeList\":[],\"temporalConstraints\":[]},\"temporalConstraints\":[]}",input.ownerEntityId = u,input.mode = count,input.cohortUuid = 5b7e1f0a-9d3c-4e2b-8a61-0c4f2d9e7a13"#
        );
    }

    #[test]
    fn string_literals_are_ascii_like_python_json_dumps() {
        assert_eq!(json_string_literal("a\"b\\c\t\u{1}\u{7f}é😀"), r#""a\"b\\c\t\u0001\u007f\u00e9\ud83d\ude00""#);
        let round_trip: String = serde_json::from_str(&json_string_literal("x\u{8}\u{c}\r\n€")).unwrap();
        assert_eq!(round_trip, "x\u{8}\u{c}\r\n€");
    }

    #[test]
    fn nulls_are_dropped_and_null_lists_are_empty() {
        let query = r#"{"sourcePopulation": {"caresiteCohortList": null}, "resourceType": null,
            "request": {"_type": "basicResource", "_id": 1, "occurrence": null, "criteria": null,
                        "patientAge": {"minAge": null, "maxAge": "18-0-0"}}}"#;
        assert_eq!(
            CohortQuery::parse(query).unwrap().syntax().unwrap(),
            concat!(
                r#"{"sourcePopulation":{"caresiteCohortList":[]},"request":{"_type":"basicResource","_id":1,"#,
                r#""patientAge":{"maxAge":"18-0-0"},"criteria":[],"dateRangeList":[],"temporalConstraints":[]},"#,
                r#""temporalConstraints":[]}"#
            )
        );
    }

    #[test]
    fn queries_that_do_not_fit_the_model_are_errors() {
        let count = |query: &str| Job::new(JobKind::Count { dated_measure: DM, stage_details: None }, OWNER, query);
        let message = |query: &str| match count(query) {
            Err(QueryError::InvalidQuery(message)) => message,
            other => panic!("{query}: {other:?}"),
        };
        assert!(message("not json").starts_with("expected ident"));
        assert!(message(r#"{"request": {}}"#).starts_with("missing field `sourcePopulation`"));
        assert!(message(r#"{"sourcePopulation": {}}"#).starts_with("missing field `request`"));
        assert!(message(r#"{"sourcePopulation": null, "request": {}}"#).starts_with("invalid type: null"));
        let population =
            |ids: &str| format!(r#"{{"sourcePopulation": {{"caresiteCohortList": {ids}}}, "request": {{}}}}"#);
        assert!(message(&population(r#"["12a"]"#)).starts_with(r#"invalid perimeter cohort id: "12a""#));
        assert!(message(&population("[1.5]")).starts_with("invalid perimeter cohort id: 1.5"));
        assert_eq!(
            CohortQuery::parse(&population(r#"["12", 34]"#)).unwrap().source_population.caresite_cohort_list,
            [12, 34]
        );
        assert!(message(r#"{"sourcePopulation": {}, "request": {"resourceType": "Patients"}}"#)
            .starts_with("unknown resourceType `Patients`"));
        assert!(message(r#"{"sourcePopulation": {}, "request": {"_type": "group"}}"#)
            .starts_with("unknown variant `group`"));
        assert!(message(r#"{"sourcePopulation": {}, "request": {"occurrence": {"operator": ">="}}}"#)
            .starts_with("missing field `n`"));
        assert_eq!(
            Job::new(JobKind::CountAll { dated_measure: DM, root_cohort_id: "root" }, OWNER, FIXTURE),
            Err(QueryError::InvalidRootCohortId("root".into()))
        );
        assert_eq!(
            count("1").unwrap_err().to_string(),
            "Invalid JSON query - invalid type: integer `1`, expected struct CohortQuery at line 1 column 1"
        );
    }

    /// Spec §6.3: every `basicResource`, nested ones included, gets `filterSolr` (written between
    /// `resourceType` and `filterFhir`, as the original's model orders them); `filterFhir` is kept.
    /// The golden text was derived from the count's golden body by inserting the fields in Python.
    #[test]
    fn solr_filters_go_to_every_basic_resource_before_the_fhir_filter() {
        let mut job = Job::new(JobKind::Count { dated_measure: DM, stage_details: None }, OWNER, FIXTURE).unwrap();
        let resources = job.query.basic_resources_mut();
        assert_eq!(resources.iter().map(|c| c.id.unwrap_or_default()).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        for criterion in resources {
            let lookup = crate::domain::solr::lookup(criterion).unwrap();
            let fq = format!(r#"fq=collection:{}&fq=text:"x y""#, lookup.resource.as_str());
            criterion.filter_solr = Some(crate::domain::solr::filter_solr(&fq, lookup.ipps.as_deref()));
        }
        assert_eq!(job.body().unwrap(), golden(include_str!("testdata/qe_body_count_solr.txt")));
    }

    #[test]
    fn answers_give_the_job_id_and_the_mapped_status() {
        assert_eq!(
            parse_answer(r#"{"status": "STARTED", "jobId": "5c1d-77", "context": "shared"}"#),
            Ok(Answer { job_id: Some("5c1d-77".into()), status: JobStatus::Started, message: None })
        );
        assert_eq!(parse_answer(r#"{"status": "long_pending", "jobId": "j"}"#).unwrap().status, JobStatus::LongPending);
        assert_eq!(
            parse_answer(r#"{"status": "ERROR", "message": "boom", "stack": "…"}"#),
            Ok(Answer { job_id: None, status: JobStatus::Failed, message: Some("boom".into()) })
        );
        assert_eq!(parse_answer(r#"{"status": "DONE"}"#), Err(QueryError::InvalidStatus("DONE".into())));
        assert_eq!(parse_answer(r#"{"jobId": "j"}"#).unwrap_err().to_string(), "Invalid status value, got ``");
        assert!(matches!(parse_answer("<html>"), Err(QueryError::InvalidAnswer(_))));
    }

    #[test]
    fn modes_name_their_endpoint() {
        assert_eq!(
            [Mode::Count, Mode::CountAll, Mode::CountWithDetails, Mode::Create]
                .map(|m| (m.as_str(), m.path() == COUNT_PATH)),
            [("count", true), ("count_all", true), ("count_with_details", true), ("create", false)]
        );
        assert!(CREATE_PATH.ends_with("classPath=fr.aphp.id.eds.requester.CreateQuery&context=shared&sync=false"));
    }
}
