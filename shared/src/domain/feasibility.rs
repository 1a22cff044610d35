//! Feasibility reports (spec §5.8): the counts by perimeter a QueryExecutor sends back, bucketed
//! over the perimeter tree, as a JSON document and an HTML page, each zipped.
use std::collections::BTreeMap;

use serde_json::Value;

use super::{time::DateTime, tree::PerimeterTree};

/// `0` → "0", 1–9 → "< 10", n ≥ 10 → "20-30" style decades (spec §5.8).
pub fn bucket(count: i64) -> String {
    match count {
        i64::MIN..=0 => "0".to_owned(),
        1..=9 => "< 10".to_owned(),
        n => {
            let low = n / 10 * 10;
            format!("{low}-{}", low + 10)
        }
    }
}

/// A count of the callback's `extra` (QueryExecutor sends strings).
fn count_of(extra: &serde_json::Map<String, Value>, cohort_id: &str) -> i64 {
    match extra.get(cohort_id) {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The report body: `{cohort_id: bucket}` and the nested HTML list, walking from the roots and
/// descending into children whose type is one of `reporting_types`.
pub fn report(
    tree: &PerimeterTree,
    extra: &serde_json::Map<String, Value>,
    reporting_types: &[String],
) -> (BTreeMap<String, String>, String) {
    let mut json = BTreeMap::new();
    let mut html = String::new();
    let roots: Vec<i64> = tree.roots().map(|p| p.id).collect();
    walk(tree, &roots, extra, reporting_types, &mut json, &mut html);
    (json, html)
}

fn walk(
    tree: &PerimeterTree,
    ids: &[i64],
    extra: &serde_json::Map<String, Value>,
    reporting_types: &[String],
    json: &mut BTreeMap<String, String>,
    html: &mut String,
) {
    html.push_str("<ul class=\"perimeters-tree\">");
    for perimeter in ids.iter().filter_map(|id| tree.get(*id)) {
        let cohort_id = perimeter.cohort_id().unwrap_or_default().to_owned();
        let count = bucket(count_of(extra, &cohort_id));
        let cid = escape(&cohort_id);
        html.push_str(&format!(
            "<li class=\"item\"><input type=\"checkbox\" id=\"p{cid}\"><div class=\"label-count\"><label for=\"p{cid}\">{}</label><span id=\"count_p{cid}\">{}</span></div>",
            escape(perimeter.name()),
            escape(&count)
        ));
        json.insert(cohort_id, count);
        let children: Vec<i64> = tree
            .children(perimeter.id)
            .filter(|c| c.type_source_value().is_some_and(|t| reporting_types.iter().any(|r| r == t)))
            .map(|c| c.id)
            .collect();
        if !children.is_empty() {
            walk(tree, &children, extra, reporting_types, json, html);
        }
        html.push_str("</li>");
    }
    html.push_str("</ul>");
}

/// The report page (template `feasibility_report.html`) around the tree's HTML list.
pub fn page(request_name: &str, version: i64, date: &str, request_url: &str, tree_html: &str) -> String {
    include_str!("../../templates/feasibility_report.html")
        .replace("{request_name}", &escape(request_name))
        .replace("{request_version}", &version.to_string())
        .replace("{request_date}", &escape(date))
        .replace("{request_url}", &escape(request_url))
        .replace("{html_content}", tree_html)
}

/// `Rapport_<dd-mm-YYYY>_<first 4 words of the request name>` (spec §5.8), safe as a file name.
pub fn file_name(created_at: DateTime, request_name: &str) -> String {
    let words: Vec<String> = request_name
        .split_whitespace()
        .take(4)
        .map(|w| w.chars().filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_').collect::<String>())
        .filter(|w| !w.is_empty())
        .collect();
    format!(
        "Rapport_{:02}-{:02}-{}_{}",
        created_at.day(),
        u8::from(created_at.month()),
        created_at.year(),
        words.join("_")
    )
}

/// `Content-Disposition` of a download: header values are ASCII, so accented names go in
/// `filename*` (RFC 6266) with an ASCII `filename` for older clients.
pub fn attachment(file_name: &str) -> String {
    let ascii: String =
        file_name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' { c } else { '_' }).collect();
    let encoded: String = file_name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// A zip archive holding one file, stored without compression (every unzip tool reads it).
pub fn zip_one(name: &str, content: &[u8]) -> Vec<u8> {
    let crc = crc32fast::hash(content);
    let size = content.len() as u32;
    let name_bytes = name.as_bytes();
    let mut out = Vec::with_capacity(content.len() + 2 * name_bytes.len() + 100);
    let header = |out: &mut Vec<u8>, signature: u32, central: bool| {
        out.extend_from_slice(&signature.to_le_bytes());
        if central {
            out.extend_from_slice(&20u16.to_le_bytes()); // made by
        }
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0x0800u16.to_le_bytes()); // flags: UTF-8 name
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&0u32.to_le_bytes()); // DOS time and date
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&(name_bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // extra field length
    };
    header(&mut out, 0x0403_4b50, false);
    out.extend_from_slice(name_bytes);
    out.extend_from_slice(content);
    let central_offset = out.len() as u32;
    header(&mut out, 0x0201_4b50, true);
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out.extend_from_slice(&0u16.to_le_bytes()); // disk
    out.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
    out.extend_from_slice(&0u32.to_le_bytes()); // external attributes
    out.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    out.extend_from_slice(name_bytes);
    let central_size = out.len() as u32 - central_offset;
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // disk numbers
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tree::tests::demo_tree;

    #[test]
    fn counts_are_bucketed_by_decade() {
        let cases = [(0, "0"), (1, "< 10"), (9, "< 10"), (10, "10-20"), (25, "20-30"), (1234, "1230-1240")];
        for (n, expected) in cases {
            assert_eq!(bucket(n), expected, "{n}");
        }
    }

    #[test]
    fn the_report_walks_the_reporting_levels_only() {
        let tree = demo_tree();
        let extra = serde_json::json!({"9999": "125", "0": 7, "2": "0"});
        let (json, html) = report(&tree, extra.as_object().unwrap(), &["hospital".to_owned()]);
        assert_eq!(json.get("9999").map(String::as_str), Some("120-130"));
        assert_eq!(json.get("0").map(String::as_str), Some("< 10"));
        assert_eq!(json.get("2").map(String::as_str), Some("0"));
        assert!(!json.contains_key("3"), "services are not a reporting level: {json:?}");
        assert!(
            html.starts_with("<ul class=\"perimeters-tree\"><li class=\"item\"><input type=\"checkbox\" id=\"p9999\">")
        );
        assert!(html.contains("<label for=\"p0\">P0</label><span id=\"count_p0\">&lt; 10</span>"));
    }

    #[test]
    fn file_names_take_the_date_and_four_words() {
        let at = time::macros::datetime!(2025-03-07 10:00 UTC);
        assert_eq!(file_name(at, "Diabète type 2 chez l'enfant"), "Rapport_07-03-2025_Diabète_type_2_chez");
    }

    #[test]
    fn accented_file_names_are_sent_as_rfc_6266_attachments() {
        assert_eq!(
            attachment("Rapport_07-03-2025_Diabète.zip"),
            "attachment; filename=\"Rapport_07-03-2025_Diab_te.zip\"; filename*=UTF-8''Rapport_07-03-2025_Diab%C3%A8te.zip"
        );
    }

    #[test]
    fn a_stored_zip_has_the_layout_unzip_expects() {
        let zip = zip_one("r.json", b"{}");
        assert_eq!(&zip[..4], b"PK\x03\x04");
        assert_eq!(&zip[zip.len() - 22..zip.len() - 18], b"PK\x05\x06");
        assert_eq!(u32::from_le_bytes(zip[14..18].try_into().unwrap()), crc32fast::hash(b"{}"));
        assert!(zip.windows(6).any(|w| w == b"r.json"));
    }
}
