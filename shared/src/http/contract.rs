//! One description of each operation (issue 14): the types a handler reads its body with and
//! renders its answer from also write the operation into the OpenAPI document.
//!
//! - A **form** ([`form!`](crate::form)) is a request body. Each field's type reads the client's
//!   JSON the way DRF serializers do (same messages, every field's errors collected before the
//!   400) and gives the field's schema, so validation and documentation cannot drift apart.
//! - A **view** is a response body: a `Serialize` + [`utoipa::ToSchema`] struct.
//! - A [`Doc`] names an operation's form, views, query parameters and status codes; it is attached
//!   to its route in the function's `Api` list, which also builds the router and the inventory.
//!
//! Routes without a `Doc` are still listed with a generic answer: the migration is in progress
//! (docs/architecture.md, "Contracts").
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::fields::{self, Fields};
use crate::domain::time::{self, DateTime};

/// A JSON Schema (OpenAPI 3.1 dialect).
pub type Schema = Value;

// ---------------------------------------------------------------------------------------------
// Forms: request bodies
// ---------------------------------------------------------------------------------------------

/// A body field's type: how DRF reads it, and its schema.
pub trait FormField: Sized {
    /// The value the client sent (never absent: absence is the form's business), or DRF's message.
    fn read(value: &Value) -> Result<Self, String>;
    fn schema() -> Schema;
}

/// POST validates a whole object (required fields must be there); PATCH only what it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Create,
    Update,
}

/// A request body declared with [`form!`](crate::form).
pub trait Form: Sized {
    /// The schema's name in the document (`Patched<name>` for PATCH bodies).
    fn name() -> &'static str;
    /// Reads every field, recording each field's errors in `fields`.
    fn read(fields: &mut Fields, mode: Mode) -> Self;
    fn schema(mode: Mode) -> Schema;
}

/// Declares a request body: a struct of `Option<field type>` (absent = `None`), its DRF reading and
/// its schema. Each field is `required` (on POST) or `optional`; `as "wire"` names a field whose
/// JSON name is not a Rust identifier. Doc comments become the schema's descriptions.
///
/// ```ignore
/// c360::form! {
///     /// A folder as POST and PATCH write it.
///     pub struct FolderForm {
///         /// Shown in the folder list.
///         required name: Text<50>,
///         optional description: Option<BlankText>,
///     }
/// }
/// ```
#[macro_export]
macro_rules! form {
    (
        $(#[doc = $doc:literal])*
        $vis:vis struct $name:ident {
            $( $(#[doc = $fdoc:literal])* $presence:ident $field:ident $(as $wire:literal)? : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Clone, Debug, Default, PartialEq)]
        $vis struct $name {
            $( $(#[doc = $fdoc])* pub $field: Option<$ty>, )*
        }

        impl $crate::http::contract::Form for $name {
            fn name() -> &'static str {
                stringify!($name)
            }

            fn read(fields: &mut $crate::http::fields::Fields, mode: $crate::http::contract::Mode) -> Self {
                let creating = mode == $crate::http::contract::Mode::Create;
                Self {
                    $( $field: fields.field::<$ty>(
                        $crate::form!(@wire $field $($wire)?),
                        creating && $crate::form!(@required $presence),
                    ), )*
                }
            }

            fn schema(mode: $crate::http::contract::Mode) -> $crate::http::contract::Schema {
                let creating = mode == $crate::http::contract::Mode::Create;
                let mut object = $crate::http::contract::ObjectSchema::new(concat!($($doc, "\n"),*));
                $( object.property(
                    $crate::form!(@wire $field $($wire)?),
                    <$ty as $crate::http::contract::FormField>::schema(),
                    concat!($($fdoc, "\n"),*),
                    creating && $crate::form!(@required $presence),
                ); )*
                object.build()
            }
        }
    };
    (@wire $field:ident $wire:literal) => { $wire };
    (@wire $field:ident) => { stringify!($field) };
    (@required required) => { true };
    (@required optional) => { false };
}

/// An object schema built field by field (what [`form!`](crate::form) expands to).
pub struct ObjectSchema {
    description: String,
    properties: Map<String, Value>,
    required: Vec<Value>,
}

fn doc_text(doc: &str) -> String {
    doc.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

impl ObjectSchema {
    pub fn new(doc: &str) -> Self {
        Self { description: doc_text(doc), properties: Map::new(), required: Vec::new() }
    }

    pub fn property(&mut self, name: &str, mut schema: Schema, doc: &str, required: bool) {
        let description = doc_text(doc);
        if !description.is_empty() {
            schema["description"] = json!(description);
        }
        self.properties.insert(name.to_owned(), schema);
        if required {
            self.required.push(json!(name));
        }
    }

    pub fn build(self) -> Schema {
        let mut schema = json!({"type": "object", "properties": self.properties});
        if !self.required.is_empty() {
            schema["required"] = Value::Array(self.required);
        }
        if !self.description.is_empty() {
            schema["description"] = json!(self.description);
        }
        schema
    }
}

/// DRF `CharField(max_length=MAX, min_length=MIN)` (`MAX` 0: no limit): trimmed, never blank; a
/// number is taken as its text, as DRF does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text<const MAX: usize = 0, const MIN: usize = 0>(pub String);

/// [`Text`] that may be blank (`allow_blank=True`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlankText<const MAX: usize = 0>(pub String);

fn text_schema(max: usize, min: usize) -> Schema {
    let mut schema = json!({"type": "string"});
    if max > 0 {
        schema["maxLength"] = json!(max);
    }
    if min > 0 {
        schema["minLength"] = json!(min);
    }
    schema
}

impl<const MAX: usize, const MIN: usize> FormField for Text<MAX, MIN> {
    fn read(value: &Value) -> Result<Self, String> {
        let rules = fields::Text { max: (MAX > 0).then_some(MAX), min: (MIN > 0).then_some(MIN), ..Default::default() };
        fields::read_text(value, rules).map(|t| Self(t.unwrap_or_default()))
    }
    fn schema() -> Schema {
        text_schema(MAX, MIN.max(1))
    }
}

impl<const MAX: usize> FormField for BlankText<MAX> {
    fn read(value: &Value) -> Result<Self, String> {
        let rules = fields::Text { max: (MAX > 0).then_some(MAX), ..Default::default() }.blank();
        fields::read_text(value, rules).map(|t| Self(t.unwrap_or_default()))
    }
    fn schema() -> Schema {
        text_schema(MAX, 0)
    }
}

/// The accepted values of a [`Choice`] field.
pub trait Choices {
    const VALUES: &'static [&'static str];
}

/// DRF `ChoiceField`: one of `C::VALUES` (a number is taken as its text).
pub struct Choice<C>(pub String, std::marker::PhantomData<fn() -> C>);

// By hand: derives would require `C` itself to be `Clone`, `Debug`, `PartialEq`.
impl<C> Clone for Choice<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), std::marker::PhantomData)
    }
}

impl<C> std::fmt::Debug for Choice<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Choice").field(&self.0).finish()
    }
}

impl<C> PartialEq for Choice<C> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<C: Choices> FormField for Choice<C> {
    fn read(value: &Value) -> Result<Self, String> {
        fields::read_choice(value, C::VALUES).map(|text| Self(text, std::marker::PhantomData))
    }
    fn schema() -> Schema {
        json!({"type": "string", "enum": C::VALUES})
    }
}

/// A nullable field: `null` is `None`.
impl<T: FormField> FormField for Option<T> {
    fn read(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::read(other).map(Some),
        }
    }
    fn schema() -> Schema {
        nullable(T::schema())
    }
}

/// DRF `BooleanField`: true/false, 1/0 and their usual spellings.
impl FormField for bool {
    fn read(value: &Value) -> Result<Self, String> {
        fields::read_bool(value)
    }
    fn schema() -> Schema {
        json!({"type": "boolean"})
    }
}

/// DRF `IntegerField` (a numeric string is accepted).
impl FormField for i64 {
    fn read(value: &Value) -> Result<Self, String> {
        fields::read_integer(value)
    }
    fn schema() -> Schema {
        json!({"type": "integer"})
    }
}

/// DRF `FloatField` (a numeric string is accepted).
impl FormField for f64 {
    fn read(value: &Value) -> Result<Self, String> {
        fields::read_float(value)
    }
    fn schema() -> Schema {
        json!({"type": "number"})
    }
}

/// A relation (DRF `PrimaryKeyRelatedField` over uuids): whether the object exists and may be
/// referenced is the handler's check, with the same message.
impl FormField for Uuid {
    fn read(value: &Value) -> Result<Self, String> {
        fields::read_pk(value)
    }
    fn schema() -> Schema {
        json!({"type": "string", "format": "uuid"})
    }
}

/// A relation as sent: its uuid, and its text for DRF's "object does not exist" message, which
/// quotes what the client sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pk {
    pub uuid: Uuid,
    pub raw: String,
}

impl FormField for Pk {
    fn read(value: &Value) -> Result<Self, String> {
        let uuid = fields::read_pk(value)?;
        Ok(Self { uuid, raw: value.as_str().unwrap_or_default().to_owned() })
    }
    fn schema() -> Schema {
        Uuid::schema()
    }
}

impl Pk {
    /// Records DRF's message on `field` unless the uuid names an object the caller may reference.
    pub fn check(&self, fields: &mut Fields, field: &str, exists: impl FnOnce(Uuid) -> bool) -> Option<Uuid> {
        if exists(self.uuid) {
            Some(self.uuid)
        } else {
            fields.error(field, fields::unknown_pk(&self.raw));
            None
        }
    }
}

/// DRF `DateTimeField`.
impl FormField for DateTime {
    fn read(value: &Value) -> Result<Self, String> {
        match value {
            Value::String(s) => time::parse(s).ok_or_else(|| DATETIME_FORMAT.to_owned()),
            _ => Err(DATETIME_FORMAT.to_owned()),
        }
    }
    fn schema() -> Schema {
        json!({"type": "string", "format": "date-time"})
    }
}

const DATETIME_FORMAT: &str =
    "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].";

/// The schema that also admits `null`.
pub fn nullable(mut schema: Schema) -> Schema {
    match schema.get("type").cloned() {
        Some(Value::String(kind)) => {
            schema["type"] = json!([kind, "null"]);
            schema
        }
        _ => json!({"oneOf": [schema, {"type": "null"}]}),
    }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// The schemas the document's operations refer to, by name.
#[derive(Default)]
pub struct Components {
    pub schemas: BTreeMap<String, Schema>,
}

fn reference(name: &str) -> Schema {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

impl Components {
    /// A response type's schema, registered with the schemas it refers to.
    pub fn view<T: ToSchema>(&mut self) -> Schema {
        let name = T::name().into_owned();
        if !self.schemas.contains_key(&name) {
            self.schemas.insert(name.clone(), to_json(T::schema()));
            let mut nested = Vec::new();
            T::schemas(&mut nested);
            for (nested_name, schema) in nested {
                self.schemas.entry(nested_name).or_insert_with(|| to_json(schema));
            }
        }
        reference(&name)
    }

    /// A request body's schema (`Patched<name>`, nothing required, for PATCH).
    pub fn form<F: Form>(&mut self, mode: Mode) -> Schema {
        let name = match mode {
            Mode::Create => F::name().to_owned(),
            Mode::Update => format!("Patched{}", F::name()),
        };
        self.schemas.entry(name.clone()).or_insert_with(|| F::schema(mode));
        reference(&name)
    }

    /// A body documented by a `ToSchema` struct, as PATCH takes it: `Patched<name>`, nothing required.
    pub fn patched<T: ToSchema>(&mut self) -> Schema {
        let name = format!("Patched{}", T::name());
        if !self.schemas.contains_key(&name) {
            self.view::<T>();
            let mut schema = self.schemas[T::name().as_ref()].clone();
            if let Some(object) = schema.as_object_mut() {
                object.remove("required");
            }
            self.schemas.insert(name.clone(), schema);
        }
        reference(&name)
    }

    /// A named schema written by hand (the error bodies).
    fn named(&mut self, name: &str, schema: impl FnOnce() -> Schema) -> Schema {
        self.schemas.entry(name.to_owned()).or_insert_with(schema);
        reference(name)
    }

    /// The error bodies of spec §0.5–§0.6: DRF field errors, a bare string or list of strings, or
    /// an object with `detail` (or the original's `error` / `message`).
    pub fn error(&mut self, status: u16) -> Schema {
        let detail = self.named(
            "Detail",
            || json!({"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}),
        );
        let other = self.named("ErrorMessage", || {
            json!({"type": "object", "description": "The original's `error` or `message` bodies.",
                   "properties": {"error": {"type": "string"}, "message": {"type": "string"}}})
        });
        match status {
            400 => {
                let field_errors = self.named("FieldErrors", || {
                    json!({"type": "object", "description": "DRF validation errors: each field's messages.",
                           "additionalProperties": {"type": "array", "items": {"type": "string"}}})
                });
                json!({"anyOf": [field_errors, detail, other,
                                 {"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
            }
            // `NotFoundString` and a few of the original's answers are a bare string.
            _ => json!({"anyOf": [detail, other, {"type": "string"}]}),
        }
    }
}

fn to_json(schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) -> Schema {
    serde_json::to_value(schema).unwrap_or_else(|_| json!({}))
}

/// Writes a schema into the document's components and answers the schema (or its reference).
pub type SchemaFn = fn(&mut Components) -> Schema;

/// One documented answer of an operation.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub description: &'static str,
    pub body: Option<SchemaFn>,
    /// `application/json`, or the type of a file answered as it is.
    pub media_type: &'static str,
}

const JSON: &str = "application/json";

fn binary(_: &mut Components) -> Schema {
    json!({"type": "string", "format": "binary"})
}

/// One documented query parameter.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub description: String,
    pub schema: Schema,
}

/// How a list pages (spec §0.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// `?limit=&offset=`.
    Limit,
    /// `?page=` (20 per page).
    Page,
}

/// What the document says of an operation beyond its method, path and exposure.
#[derive(Clone, Debug, Default)]
pub struct Doc {
    pub body: Option<SchemaFn>,
    /// Media types the body is also documented in, besides JSON (`http::Body` reads them all).
    pub body_media: Vec<&'static str>,
    pub query: Vec<Param>,
    pub replies: Vec<Reply>,
    /// Error statuses particular to the operation, with their description.
    pub errors: Vec<(u16, &'static str)>,
}

fn view_schema<T: ToSchema>(components: &mut Components) -> Schema {
    components.view::<T>()
}

fn create_form_schema<F: Form>(components: &mut Components) -> Schema {
    components.form::<F>(Mode::Create)
}

fn update_form_schema<F: Form>(components: &mut Components) -> Schema {
    components.form::<F>(Mode::Update)
}

fn patched_body_schema<T: ToSchema>(components: &mut Components) -> Schema {
    components.patched::<T>()
}

fn any_object(_: &mut Components) -> Schema {
    json!({"type": "object"})
}

fn list_schema<T: ToSchema>(components: &mut Components) -> Schema {
    json!({"type": "array", "items": components.view::<T>()})
}

fn page_schema<T: ToSchema>(components: &mut Components) -> Schema {
    let link = json!({"type": ["string", "null"], "format": "uri"});
    json!({
        "type": "object",
        "required": ["count", "next", "previous", "results"],
        "properties": {
            "count": {"type": "integer", "minimum": 0},
            "next": link,
            "previous": link,
            "results": {"type": "array", "items": components.view::<T>()},
        },
    })
}

impl Doc {
    pub fn new() -> Self {
        Self::default()
    }

    /// The request body of a POST (`Mode::Create`) or PATCH (`Mode::Update`).
    pub fn form<F: Form>(mut self, mode: Mode) -> Self {
        self.body = Some(match mode {
            Mode::Create => create_form_schema::<F>,
            Mode::Update => update_form_schema::<F>,
        });
        self
    }

    /// A request body read by hand, described by a `ToSchema` type that says what it accepts.
    /// Prefer [`Doc::form`], whose reading is the documentation.
    pub fn body<T: ToSchema>(mut self) -> Self {
        self.body = Some(view_schema::<T>);
        self
    }

    /// [`Doc::body`] as PATCH takes it: `Patched<name>`, the same properties, none required.
    pub fn patched_body<T: ToSchema>(mut self) -> Self {
        self.body = Some(patched_body_schema::<T>);
        self
    }

    /// The body may also come as `media` (e.g. a url-encoded form, as login forms post it).
    pub fn accepts(mut self, media: &'static str) -> Self {
        self.body_media.push(media);
        self
    }

    fn answer(mut self, status: u16, description: &'static str, body: Option<SchemaFn>) -> Self {
        self.replies.push(Reply { status, description, body, media_type: JSON });
        self
    }

    /// A JSON answer of type `T`.
    pub fn reply<T: ToSchema>(self, status: u16, description: &'static str) -> Self {
        self.answer(status, description, Some(view_schema::<T>))
    }

    /// A JSON array of `T`.
    pub fn reply_list<T: ToSchema>(self, status: u16, description: &'static str) -> Self {
        self.answer(status, description, Some(list_schema::<T>))
    }

    /// An answer without a body (204).
    pub fn empty(self, status: u16, description: &'static str) -> Self {
        self.answer(status, description, None)
    }

    /// A file answered as it is (`media_type`: `application/zip`, `text/html`…).
    pub fn file(mut self, status: u16, media_type: &'static str, description: &'static str) -> Self {
        self.replies.push(Reply { status, description, body: Some(binary), media_type });
        self
    }

    /// A JSON document no view describes (the OpenAPI document itself): any object.
    pub fn document(self, status: u16, description: &'static str) -> Self {
        self.answer(status, description, Some(any_object))
    }

    /// An error answer beyond those every typed operation documents (see `openapi::responses`).
    pub fn error(mut self, status: u16, description: &'static str) -> Self {
        self.errors.push((status, description));
        self
    }

    /// A paged list of `T` (200) and its paging parameters.
    pub fn paged<T: ToSchema>(mut self, paging: Paging) -> Self {
        let integer = json!({"type": "integer"});
        match paging {
            Paging::Limit => {
                self = self.param("limit", "Rows per page (default 20; negative: all, capped).", integer.clone());
                self = self.param("offset", "Rows skipped.", integer);
            }
            Paging::Page => {
                self =
                    self.param("page", "1-based page number, or `last` (20 rows per page).", json!({"type": "string"}));
                self = self.error(404, "`Invalid page.`: no such page.");
            }
        }
        self.answer(200, "One page of the list.", Some(page_schema::<T>))
    }

    /// `ordering`: the fields a list sorts on, `-` before one for descending order; comma-separated.
    pub fn ordering(self, fields: &[&str]) -> Self {
        let choices: Vec<String> = fields.iter().flat_map(|f| [f.to_string(), format!("-{f}")]).collect();
        let description = format!("Sort order, comma-separated among: {}.", choices.join(", "));
        self.param("ordering", &description, json!({"type": "string"}))
    }

    /// `search`: words matched against the listed text fields.
    pub fn search(self, over: &[&str]) -> Self {
        let description = format!("Words looked for in: {}.", over.join(", "));
        self.param("search", &description, json!({"type": "string"}))
    }

    /// `min_<field>` / `max_<field>`: an inclusive date-time range.
    pub fn date_range(self, field: &str) -> Self {
        let datetime = json!({"type": "string", "format": "date-time"});
        self.param(format!("min_{field}"), &format!("{field} on or after."), datetime.clone()).param(
            format!("max_{field}"),
            &format!("{field} on or before."),
            datetime,
        )
    }

    /// Any other query parameter.
    pub fn param(mut self, name: impl Into<String>, description: &str, schema: Schema) -> Self {
        self.query.push(Param { name: name.into(), description: description.to_owned(), schema });
        self
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;
    use crate::error::AppError;

    crate::form! {
        /// A thing.
        pub struct ThingForm {
            /// Its name.
            required name: Text<5>,
            optional note: Option<BlankText>,
            optional size as "type": i64,
            optional active: bool,
        }
    }

    fn read(body: Value, mode: Mode) -> (ThingForm, Result<(), AppError>) {
        let body = body.as_object().cloned().unwrap_or_default();
        let mut fields = Fields::new(&body);
        let form = fields.form::<ThingForm>(mode);
        (form, fields.finish())
    }

    fn errors(result: Result<(), AppError>) -> Value {
        match result {
            Err(AppError::Invalid(errors)) => json!(errors),
            other => panic!("field errors expected, got {other:?}"),
        }
    }

    #[test]
    fn a_form_reads_its_fields_the_drf_way() {
        let (form, result) =
            read(json!({"name": " ab ", "note": "", "type": "12", "active": "yes", "unknown": 1}), Mode::Create);
        assert!(result.is_ok());
        assert_eq!(form.name, Some(Text("ab".into())));
        assert_eq!(form.note, Some(Some(BlankText(String::new()))));
        assert_eq!(form.size, Some(12));
        assert_eq!(form.active, Some(true));
        let (form, result) = read(json!({"note": null}), Mode::Update);
        assert!(result.is_ok());
        assert_eq!((form.name, form.note), (None, Some(None)));
    }

    #[test]
    fn every_field_error_is_collected_with_drf_messages() {
        let (_, result) = read(json!({"note": 3.5, "type": "x", "active": "maybe"}), Mode::Create);
        assert_eq!(
            errors(result),
            json!({
                "name": ["This field is required."],
                "type": ["A valid integer is required."],
                "active": ["Must be a valid boolean."],
            })
        );
        let (_, result) = read(json!({"name": "toolong", "note": []}), Mode::Update);
        assert_eq!(
            errors(result),
            json!({"name": ["Ensure this field has no more than 5 characters."], "note": ["Not a valid string."]})
        );
        let (_, result) = read(json!({"name": null}), Mode::Update);
        assert_eq!(errors(result), json!({"name": ["This field may not be null."]}));
        let short: Result<Text<5, 2>, String> = Text::read(&json!("a"));
        assert_eq!(short, Err("Ensure this field has at least 2 characters.".into()));
        assert_eq!(<Text<5, 2>>::schema(), json!({"type": "string", "maxLength": 5, "minLength": 2}));
        let (_, result) = read(json!({"name": "  "}), Mode::Update);
        assert_eq!(errors(result), json!({"name": ["This field may not be blank."]}));
    }

    #[test]
    fn a_form_schema_says_what_its_reading_accepts() {
        let created = ThingForm::schema(Mode::Create);
        assert_eq!(created["description"], "A thing.");
        assert_eq!(created["required"], json!(["name"]));
        assert_eq!(
            created["properties"]["name"],
            json!({"type": "string", "maxLength": 5, "minLength": 1, "description": "Its name."})
        );
        assert_eq!(created["properties"]["note"], json!({"type": ["string", "null"]}));
        assert_eq!(created["properties"]["type"], json!({"type": "integer"}));
        let patched = ThingForm::schema(Mode::Update);
        assert!(patched.get("required").is_none(), "PATCH requires nothing: {patched}");
    }

    struct Colours;
    impl Choices for Colours {
        const VALUES: &'static [&'static str] = &["red", "1"];
    }

    #[test]
    fn a_choice_accepts_its_values_only() {
        assert_eq!(Choice::<Colours>::read(&json!("red")).map(|c| c.0), Ok("red".into()));
        assert_eq!(Choice::<Colours>::read(&json!(1)).map(|c| c.0), Ok("1".into()));
        assert_eq!(Choice::<Colours>::read(&json!("blue")), Err("\"blue\" is not a valid choice.".into()));
        assert_eq!(Choice::<Colours>::schema(), json!({"type": "string", "enum": ["red", "1"]}));
    }

    #[derive(Serialize, ToSchema)]
    struct Shown {
        id: Uuid,
        label: Option<String>,
    }

    #[test]
    fn an_operation_documents_its_types_once_in_the_components() {
        let doc = Doc::new().form::<ThingForm>(Mode::Update).paged::<Shown>(Paging::Limit).reply::<Shown>(201, "x");
        let mut components = Components::default();
        let body = (doc.body.expect("a body"))(&mut components);
        assert_eq!(body, json!({"$ref": "#/components/schemas/PatchedThingForm"}));
        for reply in &doc.replies {
            (reply.body.expect("a body"))(&mut components);
        }
        assert_eq!(components.schemas.keys().collect::<Vec<_>>(), ["PatchedThingForm", "Shown"]);
        assert_eq!(components.schemas["Shown"]["properties"]["id"]["format"], "uuid");
        assert_eq!(doc.query.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["limit", "offset"]);
    }

    /// A body validated by hand, documented by a struct.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    struct Sent {
        name: String,
        note: Option<String>,
    }

    #[test]
    fn a_hand_validated_body_is_documented_by_its_struct_patch_requiring_nothing() {
        let mut components = Components::default();
        let created = (Doc::new().body::<Sent>().body.expect("a body"))(&mut components);
        assert_eq!(created, json!({"$ref": "#/components/schemas/Sent"}));
        let patched = (Doc::new().patched_body::<Sent>().body.expect("a body"))(&mut components);
        assert_eq!(patched, json!({"$ref": "#/components/schemas/PatchedSent"}));
        assert_eq!(components.schemas["Sent"]["required"], json!(["name"]));
        assert!(components.schemas["PatchedSent"].get("required").is_none());
        assert_eq!(components.schemas["PatchedSent"]["properties"], components.schemas["Sent"]["properties"]);
    }

    #[test]
    fn files_and_documents_are_described_by_their_media_type() {
        let doc = Doc::new().file(200, "text/html", "page").document(201, "document").reply::<Shown>(202, "x");
        let mut components = Components::default();
        let media: Vec<_> = doc.replies.iter().map(|r| r.media_type).collect();
        assert_eq!(media, ["text/html", JSON, JSON]);
        let bodies: Vec<_> = doc.replies.iter().map(|r| (r.body.expect("a body"))(&mut components)).collect();
        assert_eq!(bodies[0], json!({"type": "string", "format": "binary"}));
        assert_eq!(bodies[1], json!({"type": "object"}));
    }

    #[test]
    fn a_body_may_be_documented_in_other_media_types() {
        let doc = Doc::new().body::<Sent>().accepts("application/x-www-form-urlencoded");
        assert_eq!(doc.body_media, ["application/x-www-form-urlencoded"]);
    }

    #[test]
    fn a_page_numbered_list_documents_its_invalid_page() {
        let doc = Doc::new().paged::<Shown>(Paging::Page);
        assert_eq!(doc.errors.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [404]);
        assert!(Doc::new().paged::<Shown>(Paging::Limit).errors.is_empty());
    }

    #[test]
    fn nullable_schemas_keep_their_type() {
        assert_eq!(nullable(json!({"type": "integer"})), json!({"type": ["integer", "null"]}));
        let reference = json!({"$ref": "#/components/schemas/X"});
        assert_eq!(nullable(reference.clone()), json!({"oneOf": [reference, {"type": "null"}]}));
    }
}
