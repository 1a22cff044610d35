//! The JSON shapes of the accesses app (spec §4.12): roles, perimeters (full and lite), profiles,
//! accesses and expiring accesses.
use c360::domain::{
    perimeter::Perimeter,
    rights::{help_text, Access, Profile, Role},
    time,
    tree::Node,
    user::User,
};
use serde_json::{json, Map, Value};

fn ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

pub fn role(role: &Role) -> Value {
    let mut map = Map::new();
    map.insert("id".into(), json!(role.id));
    map.insert("insert_datetime".into(), json!(time::iso(role.insert_datetime)));
    map.insert("update_datetime".into(), json!(time::iso(role.update_datetime)));
    map.insert("delete_datetime".into(), json!(role.delete_datetime.map(time::iso)));
    map.insert("name".into(), json!(role.name));
    for (name, held) in role.rights.iter() {
        map.insert(name.into(), json!(held));
    }
    map.insert("help_text".into(), json!(help_text(role.rights)));
    Value::Object(map)
}

/// PerimeterFull. The allowed-users counters come from the `count_users_on_perimeters` task; the
/// dates are those of the syncs (removed perimeters leave the tree, so `delete_datetime` is null).
pub fn perimeter_full(p: &Perimeter) -> Value {
    json!({
        "id": p.id,
        "insert_datetime": p.dates.insert_datetime.map(time::iso),
        "update_datetime": p.dates.update_datetime.map(time::iso),
        "delete_datetime": null,
        "local_id": p.local_id,
        "name": p.name,
        "source_value": p.source_value,
        "short_name": p.short_name,
        "type_source_value": p.type_source_value,
        "above_levels_ids": ids(&p.above_levels_ids),
        "inferior_levels_ids": ids(&p.inferior_levels_ids),
        "cohort_id": p.cohort_id,
        "full_path": p.full_path,
        "cohort_size": p.cohort_size,
        "level": p.level,
        "count_allowed_users": p.allowed_users.on_perimeter,
        "count_allowed_users_inferior_levels": p.allowed_users.inferior_levels,
        "count_allowed_users_above_levels": p.allowed_users.above_levels,
        "parent_id": p.parent_id.map(|id| id.to_string()),
        "care_site_id": p.id,
        "care_site_name": p.name,
        "care_site_source_value": p.source_value,
        "care_site_short_name": p.short_name,
        "care_site_type_source_value": p.type_source_value,
        "type": p.type_source_value,
        "names": {"name": p.name, "short": p.short_name, "source_value": p.source_value},
    })
}

/// PerimeterLite: all of it from the tree in memory, no record read.
pub fn perimeter_lite(p: &Node) -> Value {
    json!({
        "id": p.id,
        "name": p.name(),
        "source_value": p.source_value(),
        "parent_id": p.parent_id.map(|id| id.to_string()),
        "type": p.type_source_value(),
        "above_levels_ids": ids(&p.above_levels_ids()),
        "inferior_levels_ids": ids(&p.inferior_levels_ids()),
        "cohort_id": p.cohort_id(),
        "cohort_size": p.cohort_size(),
        "full_path": p.full_path(),
    })
}

pub fn profile(profile: &Profile, user: Option<&User>) -> Value {
    json!({
        "id": profile.id,
        "insert_datetime": time::iso(profile.insert_datetime),
        "update_datetime": time::iso(profile.update_datetime),
        "delete_datetime": profile.delete_datetime.map(time::iso),
        "source": profile.source,
        "is_active": profile.is_active,
        "user": profile.username,
        "user_id": profile.username,
        "firstname": user.and_then(|u| u.firstname.clone()),
        "lastname": user.and_then(|u| u.lastname.clone()),
        "email": user.and_then(|u| u.email.clone()),
        "provider_id": profile.username,
        "provider_name": user.map(User::display_name),
    })
}

/// Everything an access renders with, resolved by the caller.
pub struct AccessContext<'a> {
    pub user: Option<&'a User>,
    pub role: Option<&'a Role>,
    pub perimeter: Option<&'a Perimeter>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    /// Present only in the two list modes that compute it (§0.9: omitted otherwise).
    pub editable: Option<bool>,
}

pub fn access(access: &Access, ctx: AccessContext<'_>, now: time::DateTime) -> Value {
    let iso = |dt: Option<time::DateTime>| dt.map(time::iso);
    let mut value = json!({
        "id": access.id,
        "is_valid": access.is_valid_at(now),
        // The profile's source equals its accesses' source (Manual profiles hold Manual accesses,
        // ORBIS profiles ORBIS ones), so it is read from the access.
        "profile": {
            "id": access.profile_id,
            "provider_id": access.username,
            "username": access.username,
            "email": ctx.user.and_then(|u| u.email.clone()),
            "firstname": ctx.user.and_then(|u| u.firstname.clone()),
            "lastname": ctx.user.and_then(|u| u.lastname.clone()),
            "source": access.source,
        },
        "care_site": ctx.perimeter.map(|p| json!({
            "care_site_id": p.id,
            "care_site_name": p.name,
            "care_site_short_name": p.short_name,
            "care_site_type_source_value": p.type_source_value,
            "care_site_source_value": p.source_value,
        })),
        "role": ctx.role.map(role),
        "actual_start_datetime": iso(access.start_datetime),
        "actual_end_datetime": iso(access.end_datetime),
        "start_datetime": iso(access.start_datetime),
        "end_datetime": iso(access.end_datetime),
        "perimeter": ctx.perimeter.map(perimeter_full),
        "perimeter_id": access.perimeter_id,
        "created_by": ctx.created_by,
        "updated_by": ctx.updated_by,
    });
    if let (Some(editable), Some(map)) = (ctx.editable, value.as_object_mut()) {
        map.insert("editable".into(), json!(editable));
    }
    value
}

pub fn expiring_access(access: &Access, user: Option<&User>, perimeter: Option<Node>) -> Value {
    json!({
        "start_datetime": access.start_datetime.map(time::iso),
        "end_datetime": access.end_datetime.map(time::iso),
        "profile": user.map(User::display_name),
        "perimeter": perimeter.map(|p| p.name()),
    })
}
