//! DRF list conventions (spec §0.7, §0.8): query parameters, search, ordering and the PAGE / LIMIT
//! pagination envelopes with absolute `next` / `previous` links.
use std::cmp::Ordering;

use axum::{
    extract::{FromRequestParts, OriginalUri},
    http::request::Parts,
};
use lambda_http::request::RequestContext;
use serde::Serialize;
use serde_json::{json, Value};

use super::state::AppState;
use crate::{
    domain::time::{self, DateTime},
    error::AppError,
};

pub const PAGE_SIZE: usize = 20;
pub const MAX_LIMIT: usize = 30_000;

/// The query string of a list request, and the absolute URL pagination links are built from.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pairs: Vec<(String, String)>,
    base_url: String,
}

impl FromRequestParts<AppState> for ListQuery {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let uri =
            OriginalUri::from_request_parts(parts, state).await.map(|u| u.0).unwrap_or_else(|_| parts.uri.clone());
        // A malformed query string is treated as absent, as Django does.
        let pairs = uri.query().and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
        Ok(Self { pairs, base_url: format!("{}{}", public_base_url(parts, state), uri.path()) })
    }
}

/// Where clients reach the API, for absolute links: `PUBLIC_BASE_URL`, else the API Gateway stage
/// this request came through, else `http://localhost`. Never a client-supplied header
/// (`Host`, `X-Forwarded-*`): a link must not point anywhere a request chose.
fn public_base_url(parts: &Parts, state: &AppState) -> String {
    if let Some(url) = &state.settings.public_base_url {
        return url.clone();
    }
    if let Some(RequestContext::ApiGatewayV1(ctx)) = parts.extensions.get::<RequestContext>() {
        if let (Some(domain), Some(stage)) = (&ctx.domain_name, &ctx.stage) {
            return format!("https://{domain}/{stage}");
        }
    }
    "http://localhost".to_owned()
}

/// One page of rows and its links (serialized as DRF's envelope).
#[derive(Serialize)]
pub struct Page<T> {
    pub count: usize,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

impl<T> Page<T> {
    /// The same page, each row rendered by `render`.
    pub fn map<U>(self, render: impl FnMut(T) -> U) -> Page<U> {
        let results = self.results.into_iter().map(render).collect();
        Page { count: self.count, next: self.next, previous: self.previous, results }
    }

    pub fn envelope(self, render: impl FnMut(T) -> Value) -> Value {
        let results: Vec<Value> = self.results.into_iter().map(render).collect();
        json!({"count": self.count, "next": self.next, "previous": self.previous, "results": results})
    }
}

/// One ordering term: a field alias and its direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub field: String,
    pub descending: bool,
}

/// A value to sort on; `Null` sorts last ascending and first descending, as in PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortValue {
    Bool(bool),
    Int(i64),
    Text(String),
    Null,
}

impl From<Option<&str>> for SortValue {
    fn from(v: Option<&str>) -> Self {
        v.map_or(SortValue::Null, |s| SortValue::Text(s.to_owned()))
    }
}

impl ListQuery {
    pub fn from_pairs(pairs: &[(&str, &str)], base_url: &str) -> Self {
        Self { pairs: pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(), base_url: base_url.into() }
    }

    /// Whether every parameter is one of `keys` (a list read in its index order needs no other).
    pub fn has_only(&self, keys: &[&str]) -> bool {
        self.pairs.iter().all(|(k, _)| keys.contains(&k.as_str()))
    }

    /// No query parameter at all (some endpoints switch mode on "any parameter").
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The last value of a parameter, empty values counting as absent (as django-filter does).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// A boolean filter: `true`/`false`/`1`/`0` in any case; anything else disables the filter.
    pub fn flag(&self, key: &str) -> Option<bool> {
        match self.get(key)?.to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }

    /// A comma-separated "multi" filter.
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }

    /// `search` terms as sent (regex terms keep their case: `\D` is not `\d`); split on whitespace and
    /// commas; every term must match (AND), on any field (OR).
    pub fn search_terms(&self) -> Vec<String> {
        self.get("search")
            .map(|s| {
                s.split(|c: char| c.is_whitespace() || c == ',').filter(|t| !t.is_empty()).map(str::to_owned).collect()
            })
            .unwrap_or_default()
    }

    /// A uuid filter (django-filter `UUIDFilter`): a malformed value is a 400 on the parameter.
    pub fn uuid(&self, key: &str) -> Result<Option<uuid::Uuid>, AppError> {
        self.get(key)
            .map(|raw| uuid::Uuid::parse_str(raw.trim()).map_err(|_| AppError::field(key, "Enter a valid UUID.")))
            .transpose()
    }

    /// A datetime filter (`min_…` / `max_…`): a malformed value is a 400 on the parameter.
    pub fn datetime(&self, key: &str) -> Result<Option<DateTime>, AppError> {
        self.get(key)
            .map(|raw| time::parse(raw).ok_or_else(|| AppError::field(key, "Enter a valid date/time.")))
            .transpose()
    }

    /// The inclusive `min_<field>` / `max_<field>` bounds of a list.
    pub fn date_range(&self, field: &str) -> Result<DateRange, AppError> {
        Ok(DateRange { min: self.datetime(&format!("min_{field}"))?, max: self.datetime(&format!("max_{field}"))? })
    }

    /// Parses `ordering=a,-b` against the accepted aliases.
    pub fn ordering(&self, param: &str, allowed: &[&str]) -> Result<Vec<Order>, AppError> {
        let Some(raw) = self.get(param) else { return Ok(Vec::new()) };
        raw.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|term| {
                let (descending, field) = term.strip_prefix('-').map_or((false, term), |f| (true, f));
                if allowed.contains(&field) {
                    Ok(Order { field: field.to_owned(), descending })
                } else {
                    Err(AppError::field(
                        param,
                        format!("Select a valid choice. {term} is not one of the available choices."),
                    ))
                }
            })
            .collect()
    }

    /// A default ordering when the request gives none.
    pub fn ordering_from(&self, default: &str) -> Vec<Order> {
        let (descending, field) = default.strip_prefix('-').map_or((false, default), |f| (true, f));
        vec![Order { field: field.to_owned(), descending }]
    }

    /// PAGE style: 20 per page, `page` 1-based (or `last`); an invalid page is a 404.
    pub fn page(&self, items: Vec<Value>) -> Result<Value, AppError> {
        Ok(self.page_of(items)?.envelope(|v| v))
    }

    /// PAGE style over any rows: the caller renders only the rows of the page.
    pub fn page_of<T>(&self, items: Vec<T>) -> Result<Page<T>, AppError> {
        let count = items.len();
        let pages = count.div_ceil(PAGE_SIZE).max(1);
        let page = match self.get("page") {
            None => 1,
            Some("last") => pages,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|p| (1..=pages).contains(p))
                .ok_or_else(|| AppError::NotFoundDetail("Invalid page.".into()))?,
        };
        let results: Vec<T> = items.into_iter().skip((page - 1) * PAGE_SIZE).take(PAGE_SIZE).collect();
        let next = (page < pages).then(|| self.link(&[("page", Some((page + 1).to_string()))]));
        let previous = match page {
            1 => None,
            2 => Some(self.link(&[("page", None)])),
            p => Some(self.link(&[("page", Some((p - 1).to_string()))])),
        };
        Ok(Page { count, next, previous, results })
    }

    /// The `(limit, offset)` of LIMIT style: negative = everything (capped), 0 or garbage = 20.
    /// Values beyond any integer type saturate instead of overflowing (a huge offset is an empty page).
    pub fn limit_offset(&self) -> (usize, usize) {
        let limit = match self.get("limit").and_then(whole_number) {
            Some(l) if l < 0 => MAX_LIMIT,
            Some(l) if l > 0 => usize::try_from(l).unwrap_or(usize::MAX).min(MAX_LIMIT),
            _ => PAGE_SIZE,
        };
        let offset = match self.get("offset").and_then(whole_number) {
            Some(o) if o > 0 => usize::try_from(o).unwrap_or(usize::MAX),
            _ => 0,
        };
        (limit, offset)
    }

    /// LIMIT style envelope over an already filtered and sorted list.
    pub fn limited(&self, items: Vec<Value>) -> Value {
        self.limited_of(items).envelope(|v| v)
    }

    /// LIMIT style over any rows: the caller renders only the rows of the page.
    pub fn limited_of<T>(&self, items: Vec<T>) -> Page<T> {
        let count = items.len();
        let (limit, offset) = self.limit_offset();
        self.limited_window(count, items.into_iter().skip(offset).take(limit).collect())
    }

    /// LIMIT style when only the page's rows were read, `count` counting them all.
    pub fn limited_window<T>(&self, count: usize, results: Vec<T>) -> Page<T> {
        let (limit, offset) = self.limit_offset();
        let next = offset
            .checked_add(limit)
            .filter(|end| *end < count)
            .map(|end| self.link(&[("limit", Some(limit.to_string())), ("offset", Some(end.to_string()))]));
        let previous = (offset > 0).then(|| {
            if offset <= limit {
                self.link(&[("limit", Some(limit.to_string())), ("offset", None)])
            } else {
                self.link(&[("limit", Some(limit.to_string())), ("offset", Some((offset - limit).to_string()))])
            }
        });
        Page { count, next, previous, results }
    }

    /// This URL with some parameters replaced (`Some`) or removed (`None`).
    fn link(&self, changes: &[(&str, Option<String>)]) -> String {
        let mut pairs: Vec<(String, String)> =
            self.pairs.iter().filter(|(k, _)| !changes.iter().any(|(c, _)| c == k)).cloned().collect();
        for (key, value) in changes {
            if let Some(v) = value {
                pairs.push(((*key).to_owned(), v.clone()));
            }
        }
        if pairs.is_empty() {
            self.base_url.clone()
        } else {
            format!("{}?{}", self.base_url, serde_urlencoded::to_string(&pairs).unwrap_or_default())
        }
    }
}

/// A whole number as a query parameter spells it (`-5`, `+5`, `0005`), saturated to `i128` instead of
/// failing or overflowing on any number of digits; `None` for anything else.
pub fn whole_number(raw: &str) -> Option<i128> {
    let raw = raw.trim();
    let (negative, digits) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw.strip_prefix('+').unwrap_or(raw)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.parse::<u64>().map_or(i128::from(u64::MAX), i128::from);
    Some(if negative { -magnitude } else { magnitude })
}

/// Inclusive datetime bounds; a value without a date is outside any bound.
#[derive(Clone, Copy, Debug, Default)]
pub struct DateRange {
    pub min: Option<DateTime>,
    pub max: Option<DateTime>,
}

impl DateRange {
    pub fn contains(&self, value: Option<DateTime>) -> bool {
        match value {
            Some(v) => self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m),
            None => self.min.is_none() && self.max.is_none(),
        }
    }
}

/// True when every term is contained (case-insensitively) in at least one of the fields.
pub fn matches_search(terms: &[String], fields: &[Option<&str>]) -> bool {
    terms.iter().all(|term| {
        let term = term.to_lowercase();
        fields.iter().flatten().any(|f| f.to_lowercase().contains(&term))
    })
}

/// `$`-prefixed search fields: case-insensitive regex; an invalid pattern matches nothing.
pub fn matches_regex_search(terms: &[String], fields: &[Option<&str>]) -> bool {
    terms.iter().all(|term| match regex::RegexBuilder::new(term).case_insensitive(true).size_limit(1 << 20).build() {
        Ok(re) => fields.iter().flatten().any(|f| re.is_match(f)),
        Err(_) => false,
    })
}

/// Sorts in place by the ordering terms, each resolved to a value by `value_of`.
pub fn sort_by<T>(items: &mut [T], orders: &[Order], value_of: impl Fn(&T, &str) -> SortValue) {
    if orders.is_empty() {
        return;
    }
    items.sort_by(|a, b| {
        orders
            .iter()
            .map(|o| {
                let ord = value_of(a, &o.field).cmp(&value_of(b, &o.field));
                if o.descending {
                    ord.reverse()
                } else {
                    ord
                }
            })
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<Value> {
        (0..n).map(|i| json!(i)).collect()
    }

    #[test]
    fn page_style_envelope_and_invalid_pages() {
        let q = ListQuery::from_pairs(&[("ordering", "name"), ("page", "2")], "http://h/users/");
        let v = q.page(items(45)).unwrap();
        assert_eq!(v["count"], 45);
        assert_eq!(v["results"][0], 20);
        assert_eq!(v["next"], "http://h/users/?ordering=name&page=3");
        assert_eq!(v["previous"], "http://h/users/?ordering=name");
        for bad in ["0", "4", "x", "-1"] {
            let q = ListQuery::from_pairs(&[("page", bad)], "http://h/users/");
            assert!(matches!(q.page(items(45)), Err(AppError::NotFoundDetail(d)) if d == "Invalid page."), "{bad}");
        }
        let empty = ListQuery::from_pairs(&[], "http://h/u/").page(Vec::new()).unwrap();
        assert_eq!(empty, json!({"count": 0, "next": null, "previous": null, "results": []}));
    }

    #[test]
    fn limit_style_handles_negative_zero_and_garbage() {
        let all = ListQuery::from_pairs(&[("limit", "-1")], "http://h/r/").limited(items(50));
        assert_eq!(all["results"].as_array().unwrap().len(), 50);
        assert_eq!(all["next"], Value::Null);
        for fallback in ["0", "abc"] {
            let v = ListQuery::from_pairs(&[("limit", fallback)], "http://h/r/").limited(items(50));
            assert_eq!(v["results"].as_array().unwrap().len(), 20, "{fallback}");
        }
        let mid = ListQuery::from_pairs(&[("limit", "10"), ("offset", "15")], "http://h/r/").limited(items(50));
        assert_eq!(mid["results"][0], 15);
        assert_eq!(mid["next"], "http://h/r/?limit=10&offset=25");
        assert_eq!(mid["previous"], "http://h/r/?limit=10&offset=5");
        let second = ListQuery::from_pairs(&[("limit", "10"), ("offset", "10")], "http://h/r/").limited(items(50));
        assert_eq!(second["previous"], "http://h/r/?limit=10");
    }

    #[test]
    fn hostile_offsets_and_limits_never_overflow() {
        let at = |limit: &str, offset: &str| {
            ListQuery::from_pairs(&[("limit", limit), ("offset", offset)], "http://h/r/").limited(items(50))
        };
        let huge = at("20", "18446744073709551615");
        assert_eq!(huge["results"], json!([]));
        assert_eq!((huge["count"].as_u64(), &huge["next"]), (Some(50), &Value::Null));
        assert_eq!(huge["previous"], "http://h/r/?limit=20&offset=18446744073709551595");
        let last = at("18446744073709551615", "49");
        assert_eq!((&last["results"], &last["next"]), (&json!([49]), &Value::Null));
        assert_eq!(at("99999999999999999999999999", "-99999999999999999999")["results"].as_array().unwrap().len(), 50);
    }

    proptest::proptest! {
        /// Any `limit` / `offset`, numeric or not, in or beyond every integer range: a page of the
        /// right slice and links that point inside the list.
        #[test]
        fn limit_offset_is_total(limit in limit_or_offset(), offset in limit_or_offset(), n in 0usize..120) {
            let page = ListQuery::from_pairs(&[("limit", &limit), ("offset", &offset)], "http://h/r/").limited_of(
                (0..n).collect::<Vec<_>>(),
            );
            let (limit, offset) =
                ListQuery::from_pairs(&[("limit", &limit), ("offset", &offset)], "u").limit_offset();
            proptest::prop_assert!((1..=MAX_LIMIT).contains(&limit));
            proptest::prop_assert_eq!(page.results.first().copied(), (offset < n).then_some(offset));
            proptest::prop_assert!(page.results.len() <= limit);
            proptest::prop_assert_eq!(page.next.is_some(), offset.saturating_add(limit) < n);
        }
    }

    fn limit_or_offset() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            any::<u64>().prop_map(|v| v.to_string()),
            any::<i64>().prop_map(|v| v.to_string()),
            any::<u128>().prop_map(|v| v.to_string()),
            (0i64..200).prop_map(|v| v.to_string()),
            "[-+]?[0-9]{0,40}",
            "\\PC{0,12}",
        ]
    }

    #[test]
    fn whole_numbers_saturate() {
        assert_eq!(whole_number("18446744073709551615"), Some(i128::from(u64::MAX)));
        assert_eq!(whole_number("1".repeat(60).as_str()), Some(i128::from(u64::MAX)));
        assert_eq!(whole_number("-3"), Some(-3));
        assert_eq!(whole_number("+7"), Some(7));
        for bad in ["", "-", "1e3", "0x10", "3.5", "12a"] {
            assert_eq!(whole_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn ordering_accepts_only_listed_aliases() {
        let q = ListQuery::from_pairs(&[("ordering", "-lastname,username")], "u");
        assert_eq!(
            q.ordering("ordering", &["lastname", "username"]).unwrap(),
            vec![
                Order { field: "lastname".into(), descending: true },
                Order { field: "username".into(), descending: false }
            ]
        );
        let bad =
            ListQuery::from_pairs(&[("ordering", "password")], "u").ordering("ordering", &["lastname"]).unwrap_err();
        assert_eq!(
            bad.status_and_body().1,
            json!({"ordering": ["Select a valid choice. password is not one of the available choices."]})
        );
    }

    #[test]
    fn search_is_and_over_terms_or_over_fields() {
        let q = ListQuery::from_pairs(&[("search", "ada, love")], "u");
        let terms = q.search_terms();
        assert!(matches_search(&terms, &[Some("Ada"), Some("Lovelace")]));
        assert!(!matches_search(&terms, &[Some("Ada"), Some("Byron")]));
        assert!(matches_regex_search(&["^up".into()], &[Some("Upgrade")]));
        assert!(!matches_regex_search(&["(".into()], &[Some("(")]));
    }

    #[test]
    fn sorting_puts_nulls_last_ascending_and_first_descending() {
        let mut v = vec![Some("b"), None, Some("a")];
        sort_by(&mut v, &[Order { field: "x".into(), descending: false }], |s, _| SortValue::from(*s));
        assert_eq!(v, [Some("a"), Some("b"), None]);
        sort_by(&mut v, &[Order { field: "x".into(), descending: true }], |s, _| SortValue::from(*s));
        assert_eq!(v, [None, Some("b"), Some("a")]);
    }

    #[test]
    fn flags_accept_only_boolean_spellings() {
        let q = ListQuery::from_pairs(&[("a", "TRUE"), ("b", "0"), ("c", "yes")], "u");
        assert_eq!((q.flag("a"), q.flag("b"), q.flag("c")), (Some(true), Some(false), None));
    }
}
