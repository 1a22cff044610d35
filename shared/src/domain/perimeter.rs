//! Perimeters: nodes of the care-site tree (spec §3.2), as imported from the original's CSV format.
use serde::{Deserialize, Serialize};

use super::time::DateTime;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Perimeter {
    pub id: i64,
    pub name: String,
    pub short_name: Option<String>,
    pub type_source_value: Option<String>,
    pub source_value: Option<String>,
    pub local_id: Option<String>,
    pub cohort_id: Option<String>,
    pub parent_id: Option<i64>,
    pub level: Option<i64>,
    /// All ancestors, root first.
    pub above_levels_ids: Vec<i64>,
    /// Direct children.
    pub inferior_levels_ids: Vec<i64>,
    #[serde(default)]
    pub full_path: Option<String>,
    #[serde(default)]
    pub cohort_size: Option<String>,
    /// Maintained by the `count_users_on_perimeters` task, not by tree documents.
    #[serde(default)]
    pub allowed_users: AllowedUsers,
    /// When the perimeter entered the tree and when a sync last changed it (not in tree documents).
    #[serde(default, flatten)]
    pub dates: RecordDates,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordDates {
    #[serde(default, with = "crate::domain::time::iso_format::option")]
    pub insert_datetime: Option<DateTime>,
    #[serde(default, with = "crate::domain::time::iso_format::option")]
    pub update_datetime: Option<DateTime>,
}

/// Distinct users holding a valid access: on the perimeter, on a descendant, and on an ancestor
/// through a role whose rights reach inferior levels (spec §10.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedUsers {
    pub on_perimeter: i64,
    pub inferior_levels: i64,
    pub above_levels: i64,
}

impl Perimeter {
    /// The same record as a tree document would give, whatever the maintained counters say.
    pub fn same_record(&self, other: &Perimeter) -> bool {
        Perimeter { allowed_users: other.allowed_users, dates: other.dates, ..self.clone() } == *other
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CsvError {
    #[error("the header must be `{expected}`")]
    Header { expected: &'static str },
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
}

pub const CSV_HEADER: &str =
    "id;name;short_name;type_source_value;source_value;local_id;cohort_id;parent_id;level;above_levels_ids;inferior_levels_ids";

/// Parses the `;`-separated tree file of the original's `load_initial_data --perimeters-conf`.
/// `full_path` is derived from the names along the ancestors (the FHIR sync form, `name/name`).
pub fn parse_csv(text: &str) -> Result<Vec<Perimeter>, CsvError> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, header)) if header.trim() == CSV_HEADER => {}
        _ => return Err(CsvError::Header { expected: CSV_HEADER }),
    }
    let mut perimeters = Vec::new();
    for (index, line) in lines {
        let line_no = index + 1;
        let fail = |reason: String| CsvError::Line { line: line_no, reason };
        let cols: Vec<&str> = line.split(';').map(str::trim).collect();
        if cols.len() != 11 {
            return Err(fail(format!("expected 11 columns, found {}", cols.len())));
        }
        let text = |i: usize| (!cols[i].is_empty()).then(|| cols[i].to_owned());
        let int = |i: usize, name: &str| -> Result<Option<i64>, CsvError> {
            text(i).map(|v| v.parse::<i64>().map_err(|_| fail(format!("{name} {v:?} is not an integer")))).transpose()
        };
        let ids = |i: usize, name: &str| -> Result<Vec<i64>, CsvError> {
            cols[i]
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<i64>().map_err(|_| fail(format!("{name} contains {s:?}, not an integer"))))
                .collect()
        };
        perimeters.push(Perimeter {
            id: int(0, "id")?.ok_or_else(|| fail("id is required".into()))?,
            name: text(1).ok_or_else(|| fail("name is required".into()))?,
            short_name: text(2),
            type_source_value: text(3),
            source_value: text(4),
            local_id: text(5),
            cohort_id: text(6),
            parent_id: int(7, "parent_id")?,
            level: int(8, "level")?,
            above_levels_ids: ids(9, "above_levels_ids")?,
            inferior_levels_ids: ids(10, "inferior_levels_ids")?,
            full_path: None,
            cohort_size: None,
            allowed_users: AllowedUsers::default(),
            dates: RecordDates::default(),
        });
    }
    // Walk the parent links (the ancestor list's order varies between sources).
    let nodes: std::collections::HashMap<i64, (String, Option<i64>)> =
        perimeters.iter().map(|p| (p.id, (p.name.clone(), p.parent_id))).collect();
    for p in &mut perimeters {
        let mut path = vec![p.name.clone()];
        let mut parent = p.parent_id;
        while let Some((name, next)) = parent.and_then(|id| nodes.get(&id)) {
            if path.len() > nodes.len() {
                break; // a cycle in the file; the sync of the accesses issue rejects those
            }
            path.push(name.clone());
            parent = *next;
        }
        path.reverse();
        p.full_path = Some(path.join("/"));
    }
    Ok(perimeters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_demo_tree() {
        let demo = include_str!("../../../infra/data/perimeters.demo.csv");
        let tree = parse_csv(demo).unwrap();
        let root = tree.iter().find(|p| p.parent_id.is_none()).unwrap();
        assert_eq!((root.id, root.level, root.inferior_levels_ids.clone()), (9999, Some(1), vec![0, 1, 2]));
        let p13 = tree.iter().find(|p| p.id == 13).unwrap();
        assert_eq!(p13.above_levels_ids.len(), 3);
        assert_eq!(p13.full_path.as_deref(), Some("APHP/P2/P10/P13"));
    }

    #[test]
    fn reports_the_bad_line() {
        let bad = format!("{CSV_HEADER}\n1;A;A;t;s;l;1;;x;;\n");
        assert_eq!(
            parse_csv(&bad).unwrap_err(),
            CsvError::Line { line: 2, reason: "level \"x\" is not an integer".into() }
        );
    }
}

/// Parses a tree document: the original's CSV, or a JSON array of perimeter objects with the same
/// fields (`above_levels_ids` / `inferior_levels_ids` as arrays or comma strings).
pub fn parse_document(text: &str) -> Result<Vec<Perimeter>, CsvError> {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('[') {
        return parse_csv(text);
    }
    #[derive(Deserialize)]
    struct Row {
        id: i64,
        name: String,
        short_name: Option<String>,
        type_source_value: Option<String>,
        source_value: Option<String>,
        local_id: Option<String>,
        cohort_id: Option<serde_json::Value>,
        parent_id: Option<i64>,
        level: Option<i64>,
    }
    let rows: Vec<Row> =
        serde_json::from_str(trimmed).map_err(|e| CsvError::Line { line: e.line(), reason: e.to_string() })?;
    // Rebuild the CSV the original would have, so both formats share one code path (ancestors,
    // children and full paths are derived from the parent links).
    let children = |id: i64| {
        rows.iter().filter(|r| r.parent_id == Some(id)).map(|r| r.id.to_string()).collect::<Vec<_>>().join(",")
    };
    let parent_of: std::collections::HashMap<i64, Option<i64>> = rows.iter().map(|r| (r.id, r.parent_id)).collect();
    let ancestors = |mut id: Option<i64>| {
        let mut out = Vec::new();
        while let Some(p) = id {
            if out.len() > rows.len() {
                break;
            }
            out.push(p.to_string());
            id = parent_of.get(&p).copied().flatten();
        }
        out.join(",")
    };
    let mut csv = String::from(CSV_HEADER);
    for r in &rows {
        let cohort = r
            .cohort_id
            .as_ref()
            .map(|c| c.as_str().map(str::to_owned).unwrap_or_else(|| c.to_string()))
            .unwrap_or_default();
        let text = |v: &Option<String>| v.clone().unwrap_or_default().replace([';', '\n'], " ");
        csv.push_str(&format!(
            "\n{};{};{};{};{};{};{};{};{};{};{}",
            r.id,
            r.name.replace([';', '\n'], " "),
            text(&r.short_name),
            text(&r.type_source_value),
            text(&r.source_value),
            text(&r.local_id),
            cohort,
            r.parent_id.map(|p| p.to_string()).unwrap_or_default(),
            r.level.map(|l| l.to_string()).unwrap_or_default(),
            ancestors(r.parent_id),
            children(r.id),
        ));
    }
    parse_csv(&csv)
}

#[cfg(test)]
mod document_tests {
    use super::*;

    #[test]
    fn json_documents_give_the_same_tree_as_csv() {
        let json = r#"[{"id": 1, "name": "Root", "parent_id": null, "level": 1, "cohort_id": 11},
                       {"id": 2, "name": "Child", "parent_id": 1, "level": 2, "type_source_value": "hospital"}]"#;
        let tree = parse_document(json).unwrap();
        assert_eq!(tree[1].above_levels_ids, [1]);
        assert_eq!(tree[0].inferior_levels_ids, [2]);
        assert_eq!(tree[0].cohort_id.as_deref(), Some("11"));
        assert_eq!(tree[1].full_path.as_deref(), Some("Root/Child"));
        let csv = include_str!("../../../infra/data/perimeters.demo.csv");
        assert_eq!(parse_document(csv).unwrap(), parse_csv(csv).unwrap());
    }
}
