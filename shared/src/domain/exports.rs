//! Exports (spec §7): formats, the export record with its tables, the permission step and the
//! exporter validation of `POST /exports/`, the completion of a new export, the Export API request
//! (§7.5) and its status mapping. Pure: callers load the cohorts and rights these rules read.
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::macros::format_description;
use uuid::Uuid;

use super::{
    access_rules::DataRight,
    cohort::{CohortResult, Job, JobStatus, Stamps},
    rights::{Right, RightSet},
    time::DateTime,
};

/// The table every export starts from (spec §7.5).
pub const REQUIRED_TABLE: &str = "person";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Csv,
    Xlsx,
    Hive,
}

impl OutputFormat {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "csv" => Some(Self::Csv),
            "xlsx" => Some(Self::Xlsx),
            "hive" => Some(Self::Hive),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
            Self::Hive => "hive",
        }
    }

    /// csv and xlsx are zip files the owner downloads and the cleanup deletes; hive is a database.
    pub fn is_downloadable(self) -> bool {
        matches!(self, Self::Csv | Self::Xlsx)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExportTable {
    pub name: String,
    #[serde(default = "yes")]
    pub respect_table_relationships: bool,
    #[serde(default)]
    pub fhir_filter: Option<Uuid>,
    #[serde(default)]
    pub cohort_result_source: Option<Uuid>,
    #[serde(default)]
    pub cohort_result_subset: Option<Uuid>,
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    #[serde(default)]
    pub pivot_merge: bool,
    #[serde(default)]
    pub pivot_merge_columns: Option<Vec<String>>,
    #[serde(default)]
    pub pivot_merge_ids: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

/// What the list shows of the source cohort and the owner, copied at creation so that a page of
/// exports reads the export items only (spec §7.2 list serializer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExportSummary {
    /// The owner's display name and the words the `owner` filter and `search` match.
    pub owner_display: String,
    #[serde(default)]
    pub owner_firstname: String,
    #[serde(default)]
    pub owner_lastname: String,
    /// Group id, name and measure of the first table's source cohort.
    #[serde(default)]
    pub cohort_id: Option<String>,
    #[serde(default)]
    pub cohort_name: Option<String>,
    #[serde(default)]
    pub patients_count: Option<i64>,
    #[serde(default)]
    pub datalab_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Export {
    pub uuid: Uuid,
    pub owner: String,
    pub output_format: OutputFormat,
    #[serde(default)]
    pub datalab: Option<Uuid>,
    #[serde(default)]
    pub nominative: bool,
    #[serde(default)]
    pub shift_dates: bool,
    #[serde(default)]
    pub group_tables: bool,
    #[serde(default)]
    pub motivation: Option<String>,
    pub target_name: String,
    pub target_location: String,
    #[serde(default)]
    pub is_user_notified: bool,
    #[serde(default, with = "super::time::iso_format::option")]
    pub clean_datetime: Option<DateTime>,
    #[serde(default)]
    pub retried: bool,
    /// When the current run was sent to the Export API: polls stop after the wait bound, and the
    /// duration is measured from it.
    #[serde(default, with = "super::time::iso_format::option")]
    pub launched_at: Option<DateTime>,
    /// Set while the export (`pending`) waits for its cohort subsets (spec §7.4): nothing launches it
    /// but the end of the last one, which clears it with a write conditioned on `rev`.
    #[serde(default)]
    pub awaiting_subsets: bool,
    /// How far a hive export's current run went (spec §7.5); `None` for csv/xlsx and before a run.
    #[serde(default)]
    pub hive_stage: Option<super::export_run::HiveStage>,
    /// Embedded: a handful per export, always read and written with it.
    #[serde(default)]
    pub tables: Vec<ExportTable>,
    pub summary: ExportSummary,
    /// Bumped by every write: each write requires the revision it read (no lost update, and a late
    /// poll cannot move an export another write ended).
    #[serde(default)]
    pub rev: i64,
    #[serde(flatten)]
    pub job: Job,
    #[serde(flatten)]
    pub stamps: Stamps,
}

impl Export {
    /// Where the Export API writes a downloadable export (spec §7.5: `<target_location>/<target_name>.zip`).
    pub fn file_path(&self) -> String {
        format!("{}/{}.zip", self.target_location, self.target_name)
    }

    /// Whether the files are still kept (spec §3.4: created_at + `DAYS_TO_KEEP_EXPORTED_FILES` > now).
    pub fn available_for_download(&self, days_to_keep: i64, now: DateTime) -> bool {
        self.stamps.created_at + time::Duration::days(days_to_keep) > now
    }

    /// The name the browser saves a download under (spec §7.6).
    pub fn download_name(&self) -> String {
        format!("export_{}.zip", self.summary.cohort_id.as_deref().unwrap_or("None"))
    }
}

/// `s3://<bucket>/<key>` as `(bucket, key)`: where a csv/xlsx export's file is.
pub fn s3_location(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix("s3://")?.split_once('/').filter(|(b, k)| !b.is_empty() && !k.is_empty())
}

/// A place exports to Jupyter land (spec §3.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Datalab {
    pub uuid: Uuid,
    pub name: String,
    pub infrastructure_provider: Uuid,
    #[serde(flatten)]
    pub stamps: Stamps,
}

/// §3.4: a datalab name is a Hive user and database prefix.
pub fn datalab_name_error(name: &str) -> Option<&'static str> {
    name.contains(' ').then_some("No spaces allowed")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InfrastructureProvider {
    pub uuid: Uuid,
    pub name: String,
    #[serde(flatten)]
    pub stamps: Stamps,
}

/// A figure about an export's result (spec §3.4 ExportResultStat), posted by whoever measured it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportResultStat {
    pub uuid: Uuid,
    pub export: Uuid,
    /// The export's owner and target name, copied so the list reads the stats only.
    pub export_owner: String,
    pub export_target: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    #[serde(flatten)]
    pub stamps: Stamps,
}

/// The types a stat's value may have.
pub const STAT_TYPES: [&str; 3] = ["Integer", "Text", "SizeBytes"];

/// A table as `POST /exports/` sends it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableRequest {
    pub table_name: String,
    /// Kept as sent: an id that is not a uuid names no cohort (a validation message, not a 500).
    pub cohort_result_source: Option<String>,
    pub fhir_filter: Option<Uuid>,
    pub columns: Option<Vec<String>>,
    pub respect_table_relationships: bool,
    pub pivot_merge: bool,
    pub pivot_merge_columns: Option<Vec<String>>,
    pub pivot_merge_ids: Option<Vec<String>>,
}

impl TableRequest {
    pub fn source(&self) -> Option<Uuid> {
        self.cohort_result_source.as_deref().and_then(|s| Uuid::parse_str(s).ok())
    }

    pub fn table(&self) -> ExportTable {
        ExportTable {
            name: self.table_name.clone(),
            respect_table_relationships: self.respect_table_relationships,
            fhir_filter: self.fhir_filter,
            cohort_result_source: self.source(),
            cohort_result_subset: None,
            columns: self.columns.clone(),
            pivot_merge: self.pivot_merge,
            pivot_merge_columns: self.pivot_merge_columns.clone(),
            pivot_merge_ids: self.pivot_merge_ids.clone(),
        }
    }
}

/// The body of `POST /exports/` once its fields are typed. `output_format` stays raw: an unknown
/// format passes the permission step and fails the exporter validation (spec §7.3).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExportRequest {
    pub output_format: String,
    pub nominative: bool,
    pub motivation: Option<String>,
    pub datalab: Option<Uuid>,
    pub shift_dates: bool,
    pub group_tables: bool,
    pub tables: Vec<TableRequest>,
}

impl ExportRequest {
    /// The source cohorts named by the tables, in order, each once.
    pub fn source_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        for id in self.tables.iter().filter_map(|t| t.cohort_result_source.as_deref()).filter(|s| !s.is_empty()) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }
}

/// §7.3.1: the 403 `detail` when the caller's global rights do not allow this kind of export.
pub fn permission_refusal(output_format: &str, nominative: bool, rights: RightSet) -> Option<&'static str> {
    match (OutputFormat::parse(output_format)?, nominative) {
        (OutputFormat::Csv | OutputFormat::Xlsx, true) => (!rights.has(Right::EXPORT_CSV_XLSX_NOMINATIVE))
            .then_some("Vous n'avez pas le droit d'export CSV/Excel nominatif"),
        (OutputFormat::Hive, true) => (!rights.has(Right::EXPORT_JUPYTER_NOMINATIVE))
            .then_some("Vous n'avez pas le droit d'export Jupyter nominatif"),
        (OutputFormat::Csv | OutputFormat::Xlsx, false) => {
            Some("Vous n'avez pas le droit d'export CSV/Excel pseudonymisé")
        }
        (OutputFormat::Hive, false) => (!rights.has(Right::EXPORT_JUPYTER_PSEUDONYMIZED))
            .then_some("Vous n'avez pas le droit d'export Jupyter pseudonymisé"),
    }
}

/// The prefix every exporter validation failure carries in its 400 body.
pub fn invalid(reason: impl std::fmt::Display) -> String {
    format!("Invalid export data: {reason}")
}

/// §7.3.2, the per-format checks on the tables: the source cohorts the export reads, or why the
/// request is invalid. `cohorts` holds the named cohorts that exist (any owner).
pub fn check_tables(
    request: &ExportRequest,
    caller: &str,
    cohorts: &HashMap<Uuid, CohortResult>,
) -> Result<OutputFormat, String> {
    let format = OutputFormat::parse(&request.output_format)
        .ok_or_else(|| format!("Missing exporter configuration for type `{}`", request.output_format))?;
    let ids = request.source_ids();
    let found = |id: &str| Uuid::parse_str(id).ok().and_then(|u| cohorts.get(&u));
    match format {
        OutputFormat::Csv | OutputFormat::Xlsx => {
            if !request.nominative {
                return Err("Export must be in `nominative` mode".into());
            }
            let [id] = ids.as_slice() else {
                return Err("All export tables must have the same source cohort".into());
            };
            if !found(id).is_some_and(|c| c.owner == caller && !c.is_subset) {
                return Err(format!("Missing cohort with id {id}"));
            }
        }
        OutputFormat::Hive => {
            let mut has_person = false;
            for table in &request.tables {
                let source = table.cohort_result_source.as_deref().filter(|s| !s.is_empty());
                if table.table_name == REQUIRED_TABLE {
                    has_person = true;
                    if source.is_none() {
                        return Err(format!(
                            "The `{REQUIRED_TABLE}` table can not be exported without a source cohort"
                        ));
                    }
                }
                if let Some(id) = source {
                    if !found(id).is_some_and(|c| c.job.request_job_status == JobStatus::Finished) {
                        return Err(format!("Cohort `{id}` not found or did not finish successfully"));
                    }
                }
            }
            if !has_person && ids.is_empty() {
                return Err(format!(
                    "`{REQUIRED_TABLE}` table was not specified; must then provide source cohort for all tables"
                ));
            }
        }
    }
    Ok(format)
}

/// Tables never filtered through a cohort subset (spec §7.4).
const TABLES_WITHOUT_SUBSET: [&str; 4] =
    ["imaging_series", "questionnaire__item", "questionnaireresponse__item", "questionnaireresponse__item__answer"];

/// The table whose rows are filtered even without a FHIR filter: an auto-generated one leaves out
/// the imported documents (spec §7.4).
pub const NOTE_TABLE: &str = "note";
pub const NOTE_FILTER_RESOURCE: &str = "DocumentReference";
pub const NOTE_FILTER: &str =
    "type:not=https%3A%2F%2Fterminology.eds.aphp.fr%2Faphp-orbis-document-textuel-hospitalier\
                               %7Cdoc-impor&contenttype=text%2Fplain";
/// The FHIR version of the auto-generated filter (the one the apps save their filters with).
pub const NOTE_FILTER_FHIR_VERSION: &str = "4.0";

/// `<first 8 characters of the export's uuid>_note_(auto generated)`.
pub fn note_filter_name(export: Uuid) -> String {
    let uuid = export.to_string();
    format!("{}_{NOTE_TABLE}_(auto generated)", &uuid[..8])
}

/// A subset cohort is named `<table>_<source cohort's group id>`.
pub fn subset_name(table: &str, source_group_id: &str) -> String {
    format!("{table}_{source_group_id}")
}

/// `request_job_fail_msg` of an export whose subsets did not all finish.
pub const SUBSETS_FAILED: &str = "One or multiple cohort subsets has failed";

/// §7.4: whether a table is exported through a cohort subset of its source cohort (a FHIR filter, or
/// the `note` table's auto-generated one).
pub fn needs_subset(table: &TableRequest) -> bool {
    table.source().is_some()
        && (table.fhir_filter.is_some() || table.table_name == NOTE_TABLE)
        && !TABLES_WITHOUT_SUBSET.contains(&table.table_name.as_str())
}

/// Where the cohort subsets of a waiting export stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subsets {
    /// At least one is still being built: the export waits.
    Building,
    /// One ended without finishing (or is gone): it can never finish, the export fails.
    Failed,
    /// All finished: the export is launched.
    Finished,
}

/// §7.4 over the subsets' statuses (`None`: the subset is gone). The original waits on a subset
/// that ended `cancelled` or `unknown`, forever; here any end other than `finished` fails the export.
pub fn subsets_state(statuses: impl IntoIterator<Item = Option<JobStatus>>) -> Subsets {
    let mut building = false;
    for status in statuses {
        match status {
            Some(JobStatus::Finished) => {}
            Some(s) if !s.is_final() => building = true,
            _ => return Subsets::Failed,
        }
    }
    if building {
        Subsets::Building
    } else {
        Subsets::Finished
    }
}

/// §7.3.2 data-right check: over the §4.10 rights of the source cohorts' perimeters, the reading
/// right of the export's mode, then its export right. Perimeters without any reading right are
/// absent from `rights` and so not checked (the original's quirk, kept).
pub fn missing_data_right(rights: &[DataRight], format: OutputFormat, nominative: bool) -> Option<String> {
    let read: (&str, fn(&DataRight) -> bool) = if nominative {
        ("right_read_patient_nominative", |r| r.read_nominative)
    } else {
        ("right_read_patient_pseudonymized", |r| r.read_pseudonymized)
    };
    let export: (&str, fn(&DataRight) -> bool) = match (format, nominative) {
        (OutputFormat::Csv | OutputFormat::Xlsx, _) => {
            ("right_export_csv_xlsx_nominative", |r| r.export_csv_xlsx_nominative)
        }
        (OutputFormat::Hive, true) => ("right_export_jupyter_nominative", |r| r.export_jupyter_nominative),
        (OutputFormat::Hive, false) => ("right_export_jupyter_pseudonymized", |r| r.export_jupyter_pseudonymized),
    };
    [read, export].into_iter().find_map(|(name, holds)| {
        let wrong: Vec<String> = rights.iter().filter(|r| !holds(r)).map(|r| r.perimeter_id.to_string()).collect();
        (!wrong.is_empty())
            .then(|| format!("The user is missing `{name}` on the following perimeters: [{}].", wrong.join(", ")))
    })
}

/// §7.3.3: `<prefix>_<YYYYmmdd_HHMMSSffffff>` (the owner's username, or the datalab's name for hive).
pub fn target_name(prefix: &str, now: DateTime) -> String {
    let stamp = now
        .to_offset(time::UtcOffset::UTC)
        .format(format_description!("[year][month][day]_[hour][minute][second][subsecond digits:6]"))
        .unwrap_or_default();
    format!("{prefix}_{stamp}")
}

/// §7.3.3: the motivation's newlines become ` - `.
pub fn clean_motivation(motivation: &str) -> String {
    motivation.replace("\r\n", "\n").replace('\n', " - ")
}

/// §7.5: an Export API / Hadoop API `task_status` as a job status.
pub fn api_status(task_status: &str) -> JobStatus {
    match task_status {
        "Received" => JobStatus::New,
        "Pending" | "Retry" => JobStatus::Pending,
        "Running" => JobStatus::Started,
        "FinishedSuccessfully" => JobStatus::Finished,
        "FinishedWithError" | "FinishedWithTimeout" | "flowerNotAccessible" | "Failure" | "NotFound" => {
            JobStatus::Failed
        }
        "Revoked" => JobStatus::Cancelled,
        _ => JobStatus::Unknown,
    }
}

/// Why an export cannot be sent: a missing `person` table, or a pseudonymised export without a
/// datalab (the original's task crashed on both; here the export fails with this message).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("Missing {REQUIRED_TABLE} table from export")]
    MissingPersonTable,
    #[error("export.datalab is required when nominative is False")]
    MissingDatalab,
    /// Never sent unfiltered: a subset without group id is one that did not finish (a retry while
    /// it was being built).
    #[error("the cohort subset of the `{0}` table has no group id")]
    SubsetWithoutGroup(String),
}

/// What the params read besides the export: the group ids of the tables' cohorts by uuid, the
/// datalab's name and `DISABLE_DATA_TRANSLATION`.
pub struct ParamsContext<'a> {
    pub group_ids: &'a HashMap<Uuid, String>,
    pub datalab_name: Option<&'a str>,
    pub disable_terminology: bool,
}

/// A YAML document whose maps keep their insertion order (the Export API reads the keys as written).
#[derive(Clone, Debug, PartialEq)]
pub enum Yaml {
    Null,
    Bool(bool),
    Text(String),
    List(Vec<Yaml>),
    Map(Vec<(&'static str, Yaml)>),
}

impl Yaml {
    fn text(value: &str) -> Self {
        Self::Text(value.to_owned())
    }

    fn texts(values: &[String]) -> Self {
        Self::List(values.iter().map(|v| Self::text(v)).collect())
    }

    /// The value of a map's key.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Self::Map(entries) => entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Block style, keys in insertion order (PyYAML's `default_flow_style=False, sort_keys=False`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        match self {
            Self::Map(entries) => yaml_map(entries, 0, &mut out),
            other => {
                out.push_str(&other.scalar());
                out.push('\n');
            }
        }
        out
    }

    fn scalar(&self) -> String {
        match self {
            Self::Null => "null".into(),
            Self::Bool(b) => b.to_string(),
            Self::Text(s) if is_plain(s) => s.clone(),
            Self::Text(s) => format!("'{}'", s.replace('\'', "''")),
            Self::List(_) => "[]".into(),
            Self::Map(_) => "{}".into(),
        }
    }
}

/// §7.5: the Export API parameters of an export, in the order they are written to the YAML file.
pub fn export_params(export: &Export, ctx: &ParamsContext) -> Result<Yaml, ParamsError> {
    let mut params: Vec<(&'static str, Yaml)> = Vec::new();
    match export.output_format {
        OutputFormat::Csv | OutputFormat::Xlsx => {
            params.push(("joinOnPrimaryKey", Yaml::Bool(export.group_tables)));
            params.push((
                "output",
                Yaml::Map(vec![
                    ("type", Yaml::text(export.output_format.as_str())),
                    ("filePath", Yaml::Text(export.file_path())),
                ]),
            ));
            let merged: Vec<Yaml> = export
                .tables
                .iter()
                .filter(|t| t.pivot_merge_columns.is_some() || t.pivot_merge_ids.is_some())
                .map(|t| {
                    let mut entry = vec![("tableName", Yaml::text(&t.name))];
                    if let Some(columns) = t.pivot_merge_columns.as_ref().filter(|c| !c.is_empty()) {
                        entry.push(("pivotedColumnsToKeep", Yaml::texts(columns)));
                    }
                    if let Some(ids) = t.pivot_merge_ids.as_ref().filter(|c| !c.is_empty()) {
                        entry.push(("idsToMerge", Yaml::texts(ids)));
                    }
                    Yaml::Map(entry)
                })
                .collect();
            let flagged: Vec<Yaml> =
                export.tables.iter().filter(|t| t.pivot_merge).map(|t| Yaml::text(&t.name)).collect();
            if !merged.is_empty() {
                params.push(("pivotMerge", Yaml::List(merged)));
            } else if !flagged.is_empty() {
                params.push(("pivotMerge", Yaml::List(flagged)));
            }
        }
        OutputFormat::Hive => {
            params.push((
                "output",
                Yaml::Map(vec![("type", Yaml::text("hive")), ("databaseName", Yaml::text(&export.target_name))]),
            ));
        }
    }
    params.push(("overwrite", Yaml::Bool(true)));
    let unbuilt = |t: &&ExportTable| t.cohort_result_subset.is_some_and(|u| !ctx.group_ids.contains_key(&u));
    if let Some(table) = export.tables.iter().find(unbuilt) {
        return Err(ParamsError::SubsetWithoutGroup(table.name.clone()));
    }
    let group = |uuid: Option<Uuid>| uuid.and_then(|u| ctx.group_ids.get(&u)).map_or(Yaml::Null, |g| Yaml::text(g));
    let person = export.tables.iter().find(|t| t.name == REQUIRED_TABLE).ok_or(ParamsError::MissingPersonTable)?;
    let mut first = vec![
        ("tableName", Yaml::text(REQUIRED_TABLE)),
        ("cohortId", group(person.cohort_result_subset.or(person.cohort_result_source))),
        ("relation", Yaml::Bool(true)),
    ];
    if let Some(columns) = person.columns.as_ref().filter(|c| !c.is_empty()) {
        first.push(("columnsToExport", Yaml::texts(columns)));
    }
    let mut tables = vec![Yaml::Map(first)];
    for table in export.tables.iter().filter(|t| t.name != REQUIRED_TABLE) {
        let mut entry = vec![("tableName", Yaml::text(&table.name)), ("relation", Yaml::Bool(true))];
        if table.cohort_result_subset.is_some() {
            entry.push(("cohortId", group(table.cohort_result_subset)));
        }
        if let Some(columns) = table.columns.as_ref().filter(|c| !c.is_empty()) {
            entry.push(("columnsToExport", Yaml::texts(columns)));
        }
        tables.push(Yaml::Map(entry));
    }
    params.push(("tablesToExport", Yaml::List(tables)));
    params.push(("noDateShift", Yaml::Bool(export.nominative || !export.shift_dates)));
    params.push(("disableTerminology", Yaml::Bool(ctx.disable_terminology)));
    if !export.nominative {
        params.push(("pseudo", Yaml::text(ctx.datalab_name.ok_or(ParamsError::MissingDatalab)?)));
    }
    Ok(Yaml::Map(params))
}

fn yaml_map(entries: &[(&'static str, Yaml)], indent: usize, out: &mut String) {
    for (i, (key, value)) in entries.iter().enumerate() {
        // The first key of a list item shares the `- ` line.
        if !(i == 0 && out.ends_with("- ")) {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&Yaml::text(key).scalar());
        out.push(':');
        match value {
            Yaml::Map(inner) if !inner.is_empty() => {
                out.push('\n');
                yaml_map(inner, indent + 2, out);
            }
            Yaml::List(items) if !items.is_empty() => {
                out.push('\n');
                for item in items {
                    out.push_str(&" ".repeat(indent));
                    out.push_str("- ");
                    match item {
                        Yaml::Map(inner) if !inner.is_empty() => yaml_map(inner, indent + 2, out),
                        other => {
                            out.push_str(&other.scalar());
                            out.push('\n');
                        }
                    }
                }
            }
            other => {
                out.push(' ');
                out.push_str(&other.scalar());
                out.push('\n');
            }
        }
    }
}

/// Whether a string can be written unquoted and still read back as the same string.
fn is_plain(s: &str) -> bool {
    const RESERVED: [&str; 15] =
        ["true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", ".inf", "-.inf", ".nan", "=", "<<"];
    let first_ok = s.chars().next().is_some_and(|c| c.is_alphanumeric() || c == '/' || c == '_' || c == '.');
    first_ok
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && s.chars().all(|c| c.is_alphanumeric() || " _./:@+-".contains(c))
        && !RESERVED.contains(&s.to_lowercase().as_str())
        && s.parse::<f64>().is_err()
        && !s.bytes().all(|b| b.is_ascii_digit() || b == b'_' || b == b':')
}

/// An export of alice's as the unit tests build them.
#[cfg(test)]
pub(crate) fn test_export(format: OutputFormat, tables: Vec<ExportTable>) -> Export {
    let now = crate::domain::time::parse("2025-03-04T05:06:07.089Z").unwrap();
    Export {
        uuid: Uuid::nil(),
        owner: "alice".into(),
        output_format: format,
        datalab: None,
        nominative: true,
        shift_dates: false,
        group_tables: true,
        motivation: Some("m".into()),
        target_name: target_name("alice", now),
        target_location: "s3://bucket/exports".into(),
        is_user_notified: false,
        clean_datetime: None,
        retried: false,
        launched_at: None,
        awaiting_subsets: false,
        hive_stage: None,
        tables,
        summary: ExportSummary::default(),
        rev: 0,
        job: Job::new(),
        stamps: Stamps::new(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::parse;
    use serde_json::json;

    fn export(format: OutputFormat, tables: Vec<ExportTable>) -> Export {
        test_export(format, tables)
    }

    fn table(name: &str, source: Option<Uuid>) -> ExportTable {
        ExportTable { name: name.into(), cohort_result_source: source, ..Default::default() }
    }

    #[test]
    fn the_permission_step_refuses_with_the_exact_french_details() {
        let none = RightSet::default();
        let csv = RightSet::of(&[Right::EXPORT_CSV_XLSX_NOMINATIVE]);
        let jupyter = RightSet::of(&[Right::EXPORT_JUPYTER_NOMINATIVE, Right::EXPORT_JUPYTER_PSEUDONYMIZED]);
        let cases = [
            ("csv", true, none, Some("Vous n'avez pas le droit d'export CSV/Excel nominatif")),
            ("xlsx", true, none, Some("Vous n'avez pas le droit d'export CSV/Excel nominatif")),
            ("csv", true, csv, None),
            ("xlsx", false, RightSet::ALL, Some("Vous n'avez pas le droit d'export CSV/Excel pseudonymisé")),
            ("hive", true, csv, Some("Vous n'avez pas le droit d'export Jupyter nominatif")),
            ("hive", true, jupyter, None),
            ("hive", false, none, Some("Vous n'avez pas le droit d'export Jupyter pseudonymisé")),
            ("hive", false, jupyter, None),
            ("parquet", true, none, None),
        ];
        for (format, nominative, rights, expected) in cases {
            assert_eq!(permission_refusal(format, nominative, rights), expected, "{format} {nominative}");
        }
    }

    fn cohort(owner: &str, status: JobStatus) -> CohortResult {
        let mut c: CohortResult = serde_json::from_value(json!({
            "uuid": Uuid::new_v4(), "owner": owner, "request_job_status": "new",
            "created_at": "2025-01-01T00:00:00.000000Z", "modified_at": "2025-01-01T00:00:00.000000Z",
        }))
        .unwrap();
        c.job.request_job_status = status;
        c
    }

    fn request(format: &str, nominative: bool, sources: &[(&str, Option<String>)]) -> ExportRequest {
        ExportRequest {
            output_format: format.into(),
            nominative,
            tables: sources
                .iter()
                .map(|(name, source)| TableRequest {
                    table_name: (*name).into(),
                    cohort_result_source: source.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn csv_exports_need_nominative_mode_and_one_own_source_cohort() {
        let mine = cohort("alice", JobStatus::Finished);
        let theirs = cohort("bob", JobStatus::Finished);
        let cohorts = HashMap::from([(mine.uuid, mine.clone()), (theirs.uuid, theirs.clone())]);
        let id = |c: &CohortResult| Some(c.uuid.to_string());
        let check = |r: ExportRequest| check_tables(&r, "alice", &cohorts);
        assert_eq!(check(request("csv", true, &[("person", id(&mine)), ("note", id(&mine))])), Ok(OutputFormat::Csv));
        assert_eq!(
            check(request("csv", false, &[("person", id(&mine))])),
            Err("Export must be in `nominative` mode".into())
        );
        let two = request("xlsx", true, &[("person", id(&mine)), ("note", id(&theirs))]);
        assert_eq!(check(two), Err("All export tables must have the same source cohort".into()));
        assert_eq!(
            check(request("csv", true, &[("person", None)])),
            Err("All export tables must have the same source cohort".into())
        );
        assert_eq!(
            check(request("csv", true, &[("person", id(&theirs))])),
            Err(format!("Missing cohort with id {}", theirs.uuid))
        );
        assert_eq!(
            check(request("csv", true, &[("person", Some("not-a-uuid".into()))])),
            Err("Missing cohort with id not-a-uuid".into())
        );
        assert_eq!(
            check(request("parquet", true, &[])),
            Err("Missing exporter configuration for type `parquet`".into())
        );
    }

    #[test]
    fn hive_exports_need_finished_source_cohorts_and_a_sourced_person_table() {
        let done = cohort("bob", JobStatus::Finished);
        let running = cohort("alice", JobStatus::Started);
        let cohorts = HashMap::from([(done.uuid, done.clone()), (running.uuid, running.clone())]);
        let id = |c: &CohortResult| Some(c.uuid.to_string());
        let check = |r: ExportRequest| check_tables(&r, "alice", &cohorts);
        assert_eq!(check(request("hive", false, &[("person", id(&done))])), Ok(OutputFormat::Hive));
        assert_eq!(
            check(request("hive", true, &[("person", None)])),
            Err("The `person` table can not be exported without a source cohort".into())
        );
        assert_eq!(
            check(request("hive", true, &[("person", id(&running))])),
            Err(format!("Cohort `{}` not found or did not finish successfully", running.uuid))
        );
        assert_eq!(
            check(request("hive", true, &[("note", None)])),
            Err("`person` table was not specified; must then provide source cohort for all tables".into())
        );
        assert_eq!(check(request("hive", true, &[("note", id(&done))])), Ok(OutputFormat::Hive));
    }

    #[test]
    fn filtered_tables_and_notes_need_a_subset_except_the_excluded_ones() {
        let source = Some(Uuid::nil().to_string());
        let table = |name: &str, filter: bool, source: Option<String>| TableRequest {
            table_name: name.into(),
            cohort_result_source: source,
            fhir_filter: filter.then(Uuid::nil),
            ..Default::default()
        };
        assert!(needs_subset(&table("note", false, source.clone())));
        assert!(needs_subset(&table("condition_occurrence", true, source.clone())));
        assert!(!needs_subset(&table("condition_occurrence", false, source.clone())));
        assert!(!needs_subset(&table("imaging_series", true, source.clone())));
        assert!(!needs_subset(&table("note", false, None)));
    }

    #[test]
    fn subsets_launch_when_all_finished_and_fail_on_any_other_end() {
        use JobStatus::*;
        assert_eq!(subsets_state([Some(Finished), Some(Finished)]), Subsets::Finished);
        assert_eq!(subsets_state([Some(Finished), Some(LongPending)]), Subsets::Building);
        assert_eq!(subsets_state([Some(New), Some(Failed)]), Subsets::Failed, "a failure does not wait");
        assert_eq!(subsets_state([Some(Finished), Some(Cancelled)]), Subsets::Failed);
        assert_eq!(subsets_state([Some(Unknown)]), Subsets::Failed);
        assert_eq!(subsets_state([Some(Started), None]), Subsets::Failed, "a subset that is gone");
    }

    #[test]
    fn the_notes_filter_and_the_subsets_are_named_as_the_original_names_them() {
        let export = Uuid::parse_str("1a2b3c4d-0000-4000-8000-000000000000").unwrap();
        assert_eq!(note_filter_name(export), "1a2b3c4d_note_(auto generated)");
        assert_eq!(subset_name("note", "123456"), "note_123456");
    }

    #[test]
    fn the_data_right_check_names_the_first_missing_right_and_its_perimeters() {
        let right = |perimeter_id, read_nominative, export_csv_xlsx_nominative| DataRight {
            perimeter_id,
            read_nominative,
            read_pseudonymized: true,
            export_csv_xlsx_nominative,
            ..Default::default()
        };
        let rights = [right(1, true, true), right(2, false, false), right(3, false, true)];
        assert_eq!(
            missing_data_right(&rights, OutputFormat::Csv, true).as_deref(),
            Some("The user is missing `right_read_patient_nominative` on the following perimeters: [2, 3].")
        );
        assert_eq!(
            missing_data_right(&rights[..1], OutputFormat::Hive, false).as_deref(),
            Some("The user is missing `right_export_jupyter_pseudonymized` on the following perimeters: [1].")
        );
        assert_eq!(missing_data_right(&rights[..1], OutputFormat::Xlsx, true), None);
        assert_eq!(missing_data_right(&[], OutputFormat::Hive, true), None, "nothing to check");
    }

    #[test]
    fn completion_names_the_target_and_flattens_the_motivation() {
        let now = parse("2025-03-04T05:06:07.089Z").unwrap();
        assert_eq!(target_name("alice", now), "alice_20250304_050607089000");
        assert_eq!(clean_motivation("a\nb\r\nc"), "a - b - c");
    }

    #[test]
    fn task_statuses_map_as_the_spec_says() {
        let cases = [
            ("Received", JobStatus::New),
            ("Pending", JobStatus::Pending),
            ("Retry", JobStatus::Pending),
            ("Running", JobStatus::Started),
            ("FinishedSuccessfully", JobStatus::Finished),
            ("FinishedWithError", JobStatus::Failed),
            ("FinishedWithTimeout", JobStatus::Failed),
            ("flowerNotAccessible", JobStatus::Failed),
            ("Failure", JobStatus::Failed),
            ("NotFound", JobStatus::Failed),
            ("Revoked", JobStatus::Cancelled),
            ("Whatever", JobStatus::Unknown),
        ];
        for (raw, status) in cases {
            assert_eq!(api_status(raw), status, "{raw}");
        }
    }

    #[test]
    fn a_csv_export_request_matches_the_golden_yaml() {
        let (person, note) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut e = export(
            OutputFormat::Csv,
            vec![
                ExportTable { columns: Some(vec!["note_id".into()]), ..table("note", Some(person)) },
                ExportTable {
                    columns: Some(vec!["person_id".into(), "birth_date".into()]),
                    ..table("person", Some(person))
                },
                ExportTable {
                    pivot_merge_columns: Some(vec!["value".into()]),
                    pivot_merge_ids: Some(vec!["a'b".into()]),
                    ..table("measurement", None)
                },
            ],
        );
        e.tables[0].cohort_result_subset = Some(note);
        let groups = HashMap::from([(person, "123".to_owned()), (note, "456".to_owned())]);
        let ctx = ParamsContext { group_ids: &groups, datalab_name: None, disable_terminology: false };
        let yaml = export_params(&e, &ctx).unwrap().render();
        let golden = "\
joinOnPrimaryKey: true
output:
  type: csv
  filePath: s3://bucket/exports/alice_20250304_050607089000.zip
pivotMerge:
- tableName: measurement
  pivotedColumnsToKeep:
  - value
  idsToMerge:
  - 'a''b'
overwrite: true
tablesToExport:
- tableName: person
  cohortId: '123'
  relation: true
  columnsToExport:
  - person_id
  - birth_date
- tableName: note
  relation: true
  cohortId: '456'
  columnsToExport:
  - note_id
- tableName: measurement
  relation: true
noDateShift: true
disableTerminology: false
";
        assert_eq!(yaml, golden);
        let without_subset = HashMap::from([(person, "123".to_owned())]);
        let ctx = ParamsContext { group_ids: &without_subset, ..ctx };
        assert_eq!(export_params(&e, &ctx).unwrap_err(), ParamsError::SubsetWithoutGroup("note".into()));
    }

    #[test]
    fn a_pseudonymised_hive_export_request_matches_the_golden_yaml() {
        let person = Uuid::from_u128(1);
        let mut e = export(OutputFormat::Hive, vec![table("person", Some(person)), table("visit_occurrence", None)]);
        e.tables[1].pivot_merge = true;
        e.nominative = false;
        e.shift_dates = true;
        e.target_name = "lab1_20250304_050607089000".into();
        let groups = HashMap::from([(person, "123".to_owned())]);
        let ctx = ParamsContext { group_ids: &groups, datalab_name: Some("lab1"), disable_terminology: true };
        let golden = "\
output:
  type: hive
  databaseName: lab1_20250304_050607089000
overwrite: true
tablesToExport:
- tableName: person
  cohortId: '123'
  relation: true
- tableName: visit_occurrence
  relation: true
noDateShift: false
disableTerminology: true
pseudo: lab1
";
        assert_eq!(export_params(&e, &ctx).unwrap().render(), golden);
        let no_lab = ParamsContext { datalab_name: None, ..ctx };
        assert_eq!(export_params(&e, &no_lab).unwrap_err(), ParamsError::MissingDatalab);
        e.tables.remove(0);
        assert_eq!(export_params(&e, &no_lab).unwrap_err(), ParamsError::MissingPersonTable);
    }

    #[test]
    fn csv_pivot_merge_flags_list_the_table_names() {
        let mut e = export(OutputFormat::Xlsx, vec![table("person", Some(Uuid::nil())), table("condition", None)]);
        e.tables[1].pivot_merge = true;
        let groups = HashMap::new();
        let ctx = ParamsContext { group_ids: &groups, datalab_name: None, disable_terminology: false };
        let params = export_params(&e, &ctx).unwrap();
        assert_eq!(params.get("pivotMerge"), Some(&Yaml::List(vec![Yaml::text("condition")])));
        let Some(Yaml::List(tables)) = params.get("tablesToExport") else { panic!("a list of tables") };
        assert_eq!(tables[0].get("cohortId"), Some(&Yaml::Null), "a source without group id");
    }

    #[test]
    fn yaml_quotes_what_would_read_back_as_another_type() {
        for (raw, written) in [
            ("123", "'123'"),
            ("true", "'true'"),
            ("", "''"),
            ("1.5", "'1.5'"),
            ("a: b", "'a: b'"),
            ("lab 1", "lab 1"),
            ("-x", "'-x'"),
        ] {
            assert_eq!(Yaml::text(raw).scalar(), written, "{raw}");
        }
    }

    #[test]
    fn s3_paths_split_into_bucket_and_key() {
        assert_eq!(s3_location("s3://b/exports/x.zip"), Some(("b", "exports/x.zip")));
        assert_eq!(s3_location("/user/hive/x.zip"), None);
        assert_eq!(s3_location("s3://b/"), None);
    }

    #[test]
    fn retention_counts_whole_days_from_creation() {
        let e = export(OutputFormat::Csv, vec![]);
        let created = e.stamps.created_at;
        assert!(e.available_for_download(7, created + ::time::Duration::days(7) - time::Duration::seconds(1)));
        assert!(!e.available_for_download(7, created + ::time::Duration::days(7)));
        assert_eq!(e.file_path(), "s3://bucket/exports/alice_20250304_050607089000.zip");
    }
}
