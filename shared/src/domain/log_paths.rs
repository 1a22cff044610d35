//! Route templates against `path_contains` and `search` on the request audit log: which routes'
//! rows certainly, possibly or never match, from the template text, the views that served it and
//! the characters its parameters took (`docs/data-model.md`, "Request logs", point 5).
use std::collections::HashSet;

use super::request_log::RequestLog;

/// `path_contains` and `search`, lower case: the route index answers them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathFilter {
    pub path_contains: Option<String>,
    pub terms: Vec<String>,
}

impl PathFilter {
    pub fn new(path_contains: Option<&str>, terms: &[String]) -> Self {
        Self {
            path_contains: path_contains.map(str::to_lowercase),
            terms: terms.iter().map(|t| t.to_lowercase()).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.path_contains.is_none() && self.terms.is_empty()
    }

    /// The path contains `path_contains`, and each term is in a literal run of the row's route
    /// template (its path when it has none), in its view or in its user, case-insensitively.
    pub fn matches(&self, log: &RequestLog) -> bool {
        let path = log.path.to_lowercase();
        if self.path_contains.as_ref().is_some_and(|w| !path.contains(w.as_str())) {
            return false;
        }
        let route = log.route.as_deref().map(Template::parse);
        let (view, user) = (log.view.to_lowercase(), log.user.as_deref().map(str::to_lowercase));
        self.terms.iter().all(|t| {
            route.as_ref().map_or(path.contains(t.as_str()), |r| r.literal_contains(t))
                || view.contains(t.as_str())
                || user.as_ref().is_some_and(|u| u.contains(t.as_str()))
        })
    }
}

/// How the rows of a route stand against a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Every row matches.
    Certain,
    /// Some rows may match: they are checked.
    Possible,
    Impossible,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    Param,
}

/// A route template, lower case: literal characters and parameters (one path segment or less each).
pub struct Template {
    tokens: Vec<Token>,
}

impl Template {
    pub fn parse(route: &str) -> Self {
        let mut tokens = Vec::new();
        let mut chars = route.chars();
        while let Some(c) = chars.next() {
            if c == '{' {
                chars.by_ref().find(|&c| c == '}');
                tokens.push(Token::Param);
            } else {
                tokens.extend(c.to_lowercase().map(Token::Char));
            }
        }
        Self { tokens }
    }

    pub fn literal_contains(&self, wanted: &str) -> bool {
        self.tokens.split(|t| *t == Token::Param).any(|run| {
            let run: String = run.iter().filter_map(|t| if let Token::Char(c) = t { Some(*c) } else { None }).collect();
            run.contains(wanted)
        })
    }

    /// Whether `wanted` is in every path of the route, in none, or may be, when parameter values
    /// use only `chars` (sorted; any character but `/` when `None`): a walk of the template's automaton.
    pub fn fit(&self, wanted: &str, chars: Option<&[char]>) -> Fit {
        if self.literal_contains(wanted) {
            return Fit::Certain;
        }
        let allowed = |c: char| c != '/' && chars.is_none_or(|set| set.binary_search(&c).is_ok());
        let n = self.tokens.len();
        // (next token, inside a parameter that has taken a character): the match may start anywhere.
        let mut states: HashSet<(usize, bool)> = (0..=n).map(|i| (i, false)).collect();
        states.extend((0..n).filter(|&i| self.tokens[i] == Token::Param).map(|i| (i, true)));
        for c in wanted.chars() {
            let mut next = HashSet::new();
            let at = |j: usize, next: &mut HashSet<(usize, bool)>| match self.tokens.get(j) {
                Some(Token::Char(d)) if *d == c => {
                    next.insert((j + 1, false));
                }
                Some(Token::Param) if allowed(c) => {
                    next.insert((j, true));
                }
                _ => {}
            };
            for &(i, inside) in &states {
                if inside {
                    if allowed(c) {
                        next.insert((i, true));
                    }
                    at(i + 1, &mut next);
                } else {
                    at(i, &mut next);
                }
            }
            if next.is_empty() {
                return Fit::Impossible;
            }
            states = next;
        }
        Fit::Possible
    }
}

/// The paths of a route (lower case) that contain `wanted`, when `wanted` fixes the value of every
/// parameter wherever it lies in such a path: `/accesses/42/` in `/accesses/accesses/{id}/` can only
/// be `/accesses/accesses/42/`. `None` when a placement leaves a parameter free, or when a parameter
/// is not a whole path segment. Such paths are read from the path index instead of the route's rows.
pub fn pinned_paths(route: &str, wanted: &str) -> Option<Vec<String>> {
    let route = route.to_lowercase();
    let segments: Vec<&str> = route.split('/').collect();
    let param = |s: &str| s.starts_with('{') && s.ends_with('}');
    if segments.iter().any(|s| s.contains(['{', '}']) && !param(s)) || !segments.iter().any(|s| param(s)) {
        return None;
    }
    let pieces: Vec<&str> = wanted.split('/').collect();
    let k = pieces.len() - 1;
    let mut paths = Vec::new();
    for j in 0..segments.len().saturating_sub(k) {
        let fits = (0..=k).all(|i| {
            let (segment, piece) = (segments[j + i], pieces[i]);
            match (param(segment), i) {
                (true, _) if i > 0 && i < k => !piece.is_empty(),
                (true, _) => true,
                (false, 0) if k > 0 => segment.ends_with(piece),
                (false, _) if i == k && k > 0 => segment.starts_with(piece),
                (false, _) if k == 0 => segment.contains(piece),
                (false, _) => segment == piece,
            }
        });
        if !fits {
            continue;
        }
        // Every parameter must be one of the pieces `wanted` holds whole.
        let pinned = |p: usize| p > j && p < j + k;
        if (0..segments.len()).any(|p| param(segments[p]) && !pinned(p)) {
            return None;
        }
        let path: Vec<&str> =
            segments.iter().enumerate().map(|(p, s)| if param(s) { pieces[p - j] } else { *s }).collect();
        paths.push(path.join("/"));
    }
    paths.sort_unstable();
    paths.dedup();
    Some(paths)
}

/// The lower-case characters of a path's parameter values (segments matched by a template segment
/// with a parameter), sorted; `None` (any character) when the path does not split like the template.
pub fn param_chars(route: &str, path: &str) -> Option<Vec<char>> {
    let (template, segments): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), path.split('/').collect());
    if template.len() != segments.len() || route.contains("{*") {
        return None;
    }
    let mut chars: Vec<char> = template
        .iter()
        .zip(&segments)
        .filter(|(t, _)| t.contains('{'))
        .flat_map(|(_, s)| s.to_lowercase().chars().collect::<Vec<_>>())
        .collect();
    chars.sort_unstable();
    chars.dedup();
    Some(chars)
}

/// A search term against a route's literal text and the views that served it.
pub fn term_fit(template: &Template, views: &[String], term: &str) -> Fit {
    let matching = views.iter().filter(|v| v.to_lowercase().contains(term)).count();
    if template.literal_contains(term) || (matching > 0 && matching == views.len()) {
        Fit::Certain
    } else if matching > 0 {
        Fit::Possible
    } else {
        Fit::Impossible
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_filter_is_certain_possible_or_impossible_for_a_route() {
        let digits: Vec<char> = "0123456789".chars().collect();
        let mut hex: Vec<char> = "0123456789abcdef-".chars().collect();
        hex.sort_unstable();
        let item = Template::parse("/accesses/accesses/{id}/");
        assert_eq!(item.fit("accesses", None), Fit::Certain);
        assert_eq!(item.fit("/ACCESSES/".to_lowercase().as_str(), Some(&digits[..])), Fit::Certain);
        assert_eq!(item.fit("/accesses/42/", Some(&digits[..])), Fit::Possible);
        assert_eq!(item.fit("/accesses/4a/", Some(&digits[..])), Fit::Impossible, "no such parameter value");
        assert_eq!(item.fit("roles", Some(&digits[..])), Fit::Impossible);
        assert_eq!(item.fit("roles", None), Fit::Possible, "a parameter value may hold it");
        assert_eq!(item.fit("/42/close/", None), Fit::Impossible, "the template has no close");
        let close = Template::parse("/accesses/accesses/{id}/close/");
        assert_eq!(close.fit("/accesses/42/", Some(&digits[..])), Fit::Possible);
        assert_eq!(close.fit("42/close", Some(&digits[..])), Fit::Possible);
        let nested = Template::parse("/cohort/folders/{parent_folder}/requests/{uuid}/");
        assert_eq!(nested.fit("roles", Some(&hex[..])), Fit::Impossible);
        assert_eq!(nested.fit("/requests/", Some(&hex[..])), Fit::Certain);
        assert_eq!(nested.fit("s/abc/req", Some(&hex[..])), Fit::Possible);
        assert_eq!(nested.fit("s/abc/x", Some(&hex[..])), Fit::Impossible);
        assert_eq!(Template::parse("/users/").fit("", None), Fit::Certain);
        assert!(!Template::parse("/users/{username}/").literal_contains("username"));
    }

    #[test]
    fn a_path_filter_pins_the_parameters_it_holds_whole() {
        let pinned = |route: &str, wanted: &str| pinned_paths(route, wanted);
        let paths = |p: &[&str]| Some(p.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        // The Portail's history of one access.
        assert_eq!(pinned("/accesses/accesses/{id}/", "/accesses/42/"), paths(&["/accesses/accesses/42/"]));
        assert_eq!(pinned("/accesses/accesses/{id}/close/", "/accesses/42/"), paths(&["/accesses/accesses/42/close/"]));
        assert_eq!(
            pinned("/accesses/accesses/{id}/", "/ACCESSES/42/".to_lowercase().as_str()),
            paths(&["/accesses/accesses/42/"])
        );
        // Only part of a value, or a parameter outside the text: free.
        assert_eq!(pinned("/accesses/accesses/{id}/", "/accesses/42"), None);
        assert_eq!(pinned("/accesses/accesses/{id}/", "s/4"), None);
        assert_eq!(pinned("/accesses/accesses/{id}/", "accesses"), None);
        assert_eq!(
            pinned("/cohort/folders/{parent}/requests/{uuid}/", "/abc/requests/def/"),
            paths(&["/cohort/folders/abc/requests/def/"])
        );
        assert_eq!(pinned("/cohort/folders/{parent}/requests/{uuid}/", "/abc/requests/"), None);
        // No placement at all: no path.
        assert_eq!(pinned("/accesses/roles/{id}/", "/accesses/42/"), paths(&[]));
        // Without parameters, or with one inside a segment: the route index answers.
        assert_eq!(pinned("/users/", "/users/"), None);
        assert_eq!(pinned("/files/{name}.zip/", "/files/a.zip/"), None);
        // The text holds the first value whole, the second only from its start.
        assert_eq!(pinned("/a/{x}/a/{y}/", "/a/1/a/"), None);
        assert_eq!(pinned("/a/{x}/a/{y}/", "/a/1/a/2/"), paths(&["/a/1/a/2/"]));
    }

    #[test]
    fn parameter_characters_come_from_the_parameter_segments() {
        assert_eq!(param_chars("/accesses/accesses/{id}/", "/accesses/accesses/402/"), Some(vec!['0', '2', '4']));
        assert_eq!(param_chars("/users/", "/users/"), Some(vec![]));
        assert_eq!(param_chars("/users/{username}/", "/users/a/b/"), None);
        assert_eq!(param_chars("/users/{username}/", "/users/AbA/"), Some(vec!['a', 'b']));
    }

    #[test]
    fn a_search_term_is_certain_when_the_route_text_or_every_view_holds_it() {
        let route = Template::parse("/accesses/accesses/{id}/");
        let views = |v: &[&str]| v.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        assert_eq!(term_fit(&route, &[], "accesses"), Fit::Certain);
        assert_eq!(term_fit(&route, &views(&["AccessViewSet"]), "viewset"), Fit::Certain);
        assert_eq!(term_fit(&route, &views(&["AccessViewSet", "close"]), "viewset"), Fit::Possible);
        assert_eq!(term_fit(&route, &views(&["close"]), "roles"), Fit::Impossible);
    }

    #[test]
    fn search_terms_match_the_route_text_the_view_or_the_user() {
        let log = |route: Option<&str>, path: &str, user: Option<&str>| RequestLog {
            id: 1,
            user: user.map(str::to_owned),
            username_persistent: None,
            requested_at: crate::domain::time::now(),
            response_ms: 0,
            path: path.to_owned(),
            route: route.map(str::to_owned),
            view: "accesses".into(),
            view_method: "partial_update".into(),
            remote_addr: None,
            host: None,
            method: "PATCH".into(),
            user_agent: None,
            query_params: String::new(),
            data: None,
            data_size: None,
            data_sha256: None,
            status_code: None,
        };
        let row = log(Some("/accesses/accesses/{id}/"), "/accesses/accesses/42/", Some("Alice"));
        let search = |terms: &[&str]| PathFilter::new(None, &terms.iter().map(|t| t.to_string()).collect::<Vec<_>>());
        assert!(search(&["ACCESSES", "alice"]).matches(&row));
        assert!(!search(&["42"]).matches(&row), "parameter values are not searched");
        assert!(search(&["42"]).matches(&log(None, "/accesses/accesses/42/", None)), "without a route, the path is");
        assert!(PathFilter::new(Some("/Accesses/42/"), &[]).matches(&row));
        assert!(!PathFilter::new(Some("roles"), &[]).matches(&row));
    }
}
