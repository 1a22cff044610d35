//! Datetime conventions of the original API (spec §0.9): ISO-8601 in UTC with microseconds and a `Z`.
use time::{
    format_description::well_known::Rfc3339, macros::format_description, Date, OffsetDateTime, PrimitiveDateTime,
    UtcOffset,
};

pub use time::OffsetDateTime as DateTime;

pub fn now() -> DateTime {
    OffsetDateTime::now_utc()
}

/// `2025-01-02T10:11:12.123456Z`: the API rendering, also the stored form (sorts lexicographically).
pub fn iso(dt: DateTime) -> String {
    let f = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    dt.to_offset(UtcOffset::UTC).format(f).unwrap_or_default()
}

/// Python's `datetime.isoformat()` of an aware UTC datetime (`+00:00`, micros only when non-zero),
/// used by the WebSocket maintenance event.
pub fn python_isoformat(dt: DateTime) -> String {
    let dt = dt.to_offset(UtcOffset::UTC);
    let base = dt.format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")).unwrap_or_default();
    match dt.microsecond() {
        0 => format!("{base}+00:00"),
        us => format!("{base}.{us:06}+00:00"),
    }
}

/// Python's `str(datetime)` (`2025-01-01 10:00:00+00:00`), used by a few legacy fields.
pub fn python_str(dt: DateTime) -> String {
    python_isoformat(dt).replacen('T', " ", 1)
}

/// `dd/mm/YYYY, HH:MM:SS`, as in the maintenance 503 message.
pub fn french_datetime(dt: DateTime) -> String {
    dt.to_offset(UtcOffset::UTC)
        .format(format_description!("[day]/[month]/[year], [hour]:[minute]:[second]"))
        .unwrap_or_default()
}

/// Parses what clients send: RFC 3339 with any offset, a naive datetime (taken as UTC), or a date.
pub fn parse(value: &str) -> Option<DateTime> {
    let value = value.trim();
    if let Ok(dt) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some(dt.to_offset(UtcOffset::UTC));
    }
    // Rfc3339 requires seconds and an offset; accept the shorter forms DRF accepts too.
    let normalized = value.replace(' ', "T");
    let with_z =
        if normalized.contains('T') && !has_offset(&normalized) { format!("{normalized}Z") } else { normalized };
    for candidate in [with_z.clone(), insert_seconds(&with_z)] {
        if let Ok(dt) = OffsetDateTime::parse(&candidate, &Rfc3339) {
            return Some(dt.to_offset(UtcOffset::UTC));
        }
    }
    if let Ok(date) = Date::parse(value, format_description!("[year]-[month]-[day]")) {
        return Some(PrimitiveDateTime::new(date, time::Time::MIDNIGHT).assume_utc());
    }
    None
}

fn has_offset(s: &str) -> bool {
    let time_part = s.split_once('T').map(|(_, t)| t).unwrap_or("");
    time_part.ends_with('Z') || time_part.ends_with('z') || time_part.contains('+') || time_part.contains('-')
}

/// `2025-01-01T10:00Z` → `2025-01-01T10:00:00Z`.
fn insert_seconds(s: &str) -> String {
    match s.split_once('T') {
        Some((d, t)) => {
            let (clock, zone) = t.find(['Z', 'z', '+', '-']).map(|i| t.split_at(i)).unwrap_or((t, ""));
            if clock.matches(':').count() == 1 {
                format!("{d}T{clock}:00{zone}")
            } else {
                s.to_owned()
            }
        }
        None => s.to_owned(),
    }
}

/// Serde helpers storing datetimes in the API's ISO form.
pub mod iso_format {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use super::DateTime;

    pub fn serialize<S: Serializer>(dt: &DateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::iso(*dt))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime, D::Error> {
        let raw = String::deserialize(d)?;
        super::parse(&raw).ok_or_else(|| D::Error::custom(format!("invalid datetime {raw:?}")))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(dt: &Option<DateTime>, s: S) -> Result<S::Ok, S::Error> {
            match dt {
                Some(dt) => s.serialize_str(&super::super::iso(*dt)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(raw) => super::super::parse(&raw)
                    .map(Some)
                    .ok_or_else(|| D::Error::custom(format!("invalid datetime {raw:?}"))),
                None => Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn renders_api_and_python_forms() {
        let dt = datetime!(2025-01-02 10:11:12.123456 UTC);
        assert_eq!(iso(dt), "2025-01-02T10:11:12.123456Z");
        assert_eq!(python_isoformat(dt), "2025-01-02T10:11:12.123456+00:00");
        assert_eq!(python_isoformat(datetime!(2025-01-02 10:11:12 UTC)), "2025-01-02T10:11:12+00:00");
        assert_eq!(python_str(datetime!(2025-01-02 10:11:12 UTC)), "2025-01-02 10:11:12+00:00");
        assert_eq!(french_datetime(dt), "02/01/2025, 10:11:12");
    }

    #[test]
    fn parses_client_forms() {
        let expected = datetime!(2025-01-02 09:11:00 UTC);
        assert_eq!(parse("2025-01-02T10:11:00+01:00"), Some(expected));
        assert_eq!(parse("2025-01-02T09:11:00Z"), Some(expected));
        assert_eq!(parse("2025-01-02T09:11:00"), Some(expected));
        assert_eq!(parse("2025-01-02 09:11"), Some(expected));
        assert_eq!(parse("2025-01-02T09:11:00.000Z"), Some(expected));
        assert_eq!(parse("2025-01-02"), Some(datetime!(2025-01-02 00:00 UTC)));
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse("2025-13-02"), None);
    }
}
