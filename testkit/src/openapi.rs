//! Request bodies checked against the vendored subset of Discord's OpenAPI spec
//! (`testkit/fixtures/discord-openapi.subset.json`) with the `jsonschema` crate (JSON Schema
//! 2020-12, which OpenAPI 3.1 uses; formats asserted): a body the bot sends must be one Discord
//! documents as accepted, within Discord's limits (embed title 256, 25 fields, …).
//!
//! OpenAPI's own formats are turned into JSON Schema once, when the spec is loaded: `int32` and
//! `int64` into `minimum`/`maximum`; `snowflake` (a decimal string within u64) also admits a
//! JSON integer within u64, as Discord does (its upload example sends `"id": 0`, and so does
//! serenity). A `uri` is what Discord accepts as one: a scheme, a colon, and no whitespace or
//! control characters; a `date-time` is RFC 3339 with a real calendar date. Errors read `#/pointer: rule: detail`; for a `oneOf`/`anyOf` that no
//! branch matches, only the closest branch's errors are given (see [`closest`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Draft, Keyword, ValidationError, Validator};
use serde_json::{json, Value};

/// Compiled in, so the tests do not depend on where the full spec lives.
const SUBSET: &str = include_str!("../fixtures/discord-openapi.subset.json");

/// Where an endpoint's request schema sits in the spec, under `paths./template.method`.
const BODY: &str = "requestBody/content/application~1json/schema";

struct Spec {
    /// The spec, its OpenAPI formats turned into JSON Schema.
    doc: Value,
    /// One validator per (method, path template).
    validators: HashMap<(String, String), Validator>,
}

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let mut doc: Value = serde_json::from_str(SUBSET).expect("the subset is JSON");
        openapi_formats(&mut doc);
        let mut validators = HashMap::new();
        for (template, ops) in doc["paths"].as_object().expect("spec has paths") {
            for method in ops.as_object().expect("path item is an object").keys() {
                // A URI fragment: the template's braces percent-encoded.
                let token = escape(template).replace('{', "%7B").replace('}', "%7D");
                let pointer = format!("#/paths/{token}/{method}/{BODY}");
                // The whole spec is the root, so that `#/components/...` references resolve
                // and error locations are pointers into it.
                let mut root = doc.clone();
                root["$ref"] = json!(pointer);
                let validator = jsonschema::options()
                    .with_draft(Draft::Draft202012)
                    .should_validate_formats(true)
                    .with_format("snowflake", |s: &str| s.parse::<u64>().is_ok())
                    .with_format("uri", is_uri)
                    .with_keyword(SNOWFLAKE_INTEGER, |_, _, _| Ok(Box::new(SnowflakeInteger)))
                    .build(&root)
                    .unwrap_or_else(|e| {
                        panic!("{method} {template}: schema does not compile: {e}")
                    });
                validators.insert((method.clone(), template.clone()), validator);
            }
        }
        Spec { doc, validators }
    })
}

/// OpenAPI's numeric and snowflake formats as JSON Schema keywords (see the module doc).
fn openapi_formats(v: &mut Value) {
    match v {
        Value::Object(o) => {
            match o.get("format").and_then(Value::as_str) {
                Some("int32") => bound(o, i32::MIN.into(), i32::MAX.into()),
                Some("int64") => bound(o, i64::MIN.into(), i64::MAX.into()),
                Some("snowflake") if o.get("type") == Some(&json!("string")) => {
                    o.insert("type".into(), json!(["string", "integer"]));
                    o.insert(SNOWFLAKE_INTEGER.into(), json!(true));
                }
                _ => {}
            }
            o.values_mut().for_each(openapi_formats);
        }
        Value::Array(a) => a.iter_mut().for_each(openapi_formats),
        _ => {}
    }
}

/// The keyword that holds a snowflake given as a JSON number to a u64 (`1.0`, which JSON Schema
/// counts as an integer, is not one).
const SNOWFLAKE_INTEGER: &str = "x-chops-snowflake-integer";

struct SnowflakeInteger;

impl<'i> Keyword<'i> for SnowflakeInteger {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if self.is_valid(instance) {
            Ok(())
        } else {
            Err(ValidationError::custom(format!(
                "{instance} is not a snowflake (an integer within u64)"
            )))
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        !instance.is_number() || instance.is_u64()
    }
}

/// An absolute URI: a scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`), a colon, and no
/// whitespace or control characters (Discord rejects "Not a well formed URL").
fn is_uri(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut b = scheme.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Narrow `minimum`/`maximum` of `o` to `[lo, hi]`.
fn bound(o: &mut serde_json::Map<String, Value>, lo: i128, hi: i128) {
    let get = |k: &str| o.get(k).and_then(Value::as_i64).map(i128::from);
    let min = get("minimum").map_or(lo, |m| m.max(lo));
    let max = get("maximum").map_or(hi, |m| m.min(hi));
    o.insert("minimum".into(), json!(min as i64));
    o.insert("maximum".into(), json!(max as i64));
}

/// RFC 6901 escaping of one reference token.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Check `body` against the request schema of `method` `path`, a concrete path as sent
/// (`/api/v10/...` prefix and `?query` allowed). Each error names a JSON pointer and a rule.
pub fn validate(method: &str, path: &str, body: &Value) -> Result<(), Vec<String>> {
    let Some(template) = template_for(method, path) else {
        return Err(vec![format!(
            "no schema for {} {path}",
            method.to_uppercase()
        )]);
    };
    let validator = &spec().validators[&(method.to_lowercase(), template.to_string())];
    let errors: Vec<ValidationError> = validator.iter_errors(body).collect();
    let issues = issues_of(&errors);
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues
            .into_iter()
            .map(|i| format!("{}: {}", i.ptr, i.msg))
            .collect())
    }
}

/// The spec's path template matching `path`, if it documents a request body for `method`.
pub fn template_for(method: &str, path: &str) -> Option<&'static str> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let path = path.strip_prefix("/api/v10").unwrap_or(path);
    let method = method.to_lowercase();
    let concrete: Vec<&str> = path.split('/').collect();
    // Most literal segments wins: `.../messages/@original` over `.../messages/{message_id}`.
    let mut best: Option<(usize, &'static str)> = None;
    for (m, template) in spec().validators.keys() {
        let segs: Vec<&str> = template.split('/').collect();
        if *m != method || segs.len() != concrete.len() {
            continue;
        }
        let mut literal = 0;
        let fits = segs.iter().zip(&concrete).all(|(t, c)| {
            if t.starts_with('{') && t.ends_with('}') {
                !c.is_empty()
            } else {
                literal += 1;
                t == c
            }
        });
        if fits && best.is_none_or(|(n, _)| literal > n) {
            best = Some((literal, template.as_str()));
        }
    }
    best.map(|(_, t)| t)
}

/// One failed rule at a JSON pointer.
#[derive(Debug, Clone)]
struct Issue {
    ptr: String,
    msg: String,
    kind: Kind,
}

/// What a failure says about a `oneOf`/`anyOf` branch (used to pick the closest one).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// The value is of another JSON type than the schema's (or matches none of a union's kinds).
    Type,
    /// An `enum`/`const` mismatch: on a `type` property, the branch describes another kind.
    Value,
    /// A limit or a missing/extra property: the branch fits, the value breaks one of its rules.
    Other,
}

/// The issues of the errors of one schema. Where a value is of the wrong JSON type, that is all
/// that is said of it: the schema's other rules (`enum`, `oneOf`, …) assume the type, their
/// errors would only be noise.
fn issues_of(errors: &[ValidationError]) -> Vec<Issue> {
    let is_type = |e: &ValidationError| matches!(e.kind(), ValidationErrorKind::Type { .. });
    let mistyped: Vec<&str> = errors
        .iter()
        .filter(|e| is_type(e))
        .map(|e| e.instance_path().as_str())
        .collect();
    errors
        .iter()
        .filter(|e| is_type(e) || !mistyped.contains(&e.instance_path().as_str()))
        .flat_map(issues)
        .collect()
}

/// The issues one error of the validator stands for, in this module's words.
fn issues(e: &ValidationError) -> Vec<Issue> {
    let ptr = format!("#{}", e.instance_path().as_str());
    let v: &Value = e.instance();
    let one = |msg: String, kind: Kind| {
        vec![Issue {
            ptr: ptr.clone(),
            msg,
            kind,
        }]
    };
    let count = || match v {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => 0,
    };
    match e.kind() {
        ValidationErrorKind::Type { kind } => {
            // In the schema's order ("integer or null"), read where the error points.
            let names: Vec<String> = match spec().doc.pointer(e.schema_path().as_str()) {
                Some(Value::String(t)) => vec![t.clone()],
                Some(Value::Array(ts)) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect(),
                _ => match kind {
                    TypeKind::Single(t) => vec![t.to_string()],
                    TypeKind::Multiple(ts) => ts.iter().map(|t| t.to_string()).collect(),
                },
            };
            let msg = format!(
                "type: expected {}, got {}",
                names.join(" or "),
                type_name(v)
            );
            one(msg, Kind::Type)
        }
        ValidationErrorKind::FalseSchema => {
            one("schema `false` allows no value".into(), Kind::Type)
        }
        ValidationErrorKind::Enum { options } => {
            one(format!("enum: {v} is not one of {options}"), Kind::Value)
        }
        ValidationErrorKind::Constant { expected_value } => one(
            format!("const: expected {expected_value}, got {v}"),
            Kind::Value,
        ),
        ValidationErrorKind::MaxLength { limit } => one(
            format!("maxLength {limit}: string has {} characters", count()),
            Kind::Other,
        ),
        ValidationErrorKind::MinLength { limit } => one(
            format!("minLength {limit}: string has {} characters", count()),
            Kind::Other,
        ),
        ValidationErrorKind::MaxItems { limit } => one(
            format!("maxItems {limit}: array has {} items", count()),
            Kind::Other,
        ),
        ValidationErrorKind::MinItems { limit } => one(
            format!("minItems {limit}: array has {} items", count()),
            Kind::Other,
        ),
        ValidationErrorKind::MaxProperties { limit } => one(
            format!("maxProperties {limit}: object has {} properties", count()),
            Kind::Other,
        ),
        ValidationErrorKind::MinProperties { limit } => one(
            format!("minProperties {limit}: object has {} properties", count()),
            Kind::Other,
        ),
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            one(format!("required: missing property {name:?}"), Kind::Other)
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|k| Issue {
                ptr: format!("{ptr}/{}", escape(k)),
                msg: "additionalProperties: property not allowed".into(),
                kind: Kind::Other,
            })
            .collect(),
        ValidationErrorKind::Minimum { limit } => {
            one(format!("minimum {limit}: {v} < {limit}"), Kind::Other)
        }
        ValidationErrorKind::Maximum { limit } => {
            one(format!("maximum {limit}: {v} > {limit}"), Kind::Other)
        }
        ValidationErrorKind::ExclusiveMinimum { limit } => one(
            format!("exclusiveMinimum {limit}: {v} <= {limit}"),
            Kind::Other,
        ),
        ValidationErrorKind::ExclusiveMaximum { limit } => one(
            format!("exclusiveMaximum {limit}: {v} >= {limit}"),
            Kind::Other,
        ),
        ValidationErrorKind::Format { format } => {
            one(format!("format {format}: {v} is not one"), Kind::Other)
        }
        ValidationErrorKind::OneOfNotValid { context } => {
            closest("oneOf", branches(e, context), v, &ptr)
        }
        ValidationErrorKind::AnyOf { context } => closest("anyOf", branches(e, context), v, &ptr),
        ValidationErrorKind::OneOfMultipleValid { context } => {
            let matched: Vec<String> = branches(e, context)
                .into_iter()
                .filter(|b| b.issues.is_empty())
                .map(|b| b.name)
                .collect();
            let msg = format!(
                "oneOf: {} branches match ({}), exactly one must",
                matched.len(),
                matched.join(", ")
            );
            one(msg, Kind::Other)
        }
        other => one(format!("{}: {e}", other.keyword()), Kind::Other),
    }
}

/// One branch of a `oneOf`/`anyOf`: its schema, its name (`$ref` target, title, or index)
/// and its issues for the value.
struct Branch {
    schema: Value,
    name: String,
    issues: Vec<Issue>,
}

/// The branches of the `oneOf`/`anyOf` that raised `e`, found in the spec by the error's
/// schema location, with each one's errors (`context`) in this module's words.
fn branches(e: &ValidationError, context: &[Vec<ValidationError<'static>>]) -> Vec<Branch> {
    let subs = spec()
        .doc
        .pointer(e.schema_path().as_str())
        .and_then(Value::as_array);
    context
        .iter()
        .enumerate()
        .map(|(i, errors)| {
            let schema = subs.and_then(|s| s.get(i)).cloned().unwrap_or(Value::Null);
            let name = schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit('/').next())
                .or_else(|| schema.get("title").and_then(Value::as_str))
                .map_or_else(|| format!("branch {i}"), str::to_string);
            Branch {
                schema,
                name,
                issues: issues_of(errors),
            }
        })
        .collect()
}

/// Report the branch nearest to matching. Discord's unions are keyed by a `type` property, so
/// rank by: the value itself of another JSON type than the branch's, then an `enum`/`const`
/// mismatch on `<value>/type`, then the `{"type": "null"}` of an optional value last (its
/// other branch says what was expected), then the number of issues.
fn closest(keyword: &str, branches: Vec<Branch>, v: &Value, ptr: &str) -> Vec<Issue> {
    // A list of constants (Discord's enums, e.g. InteractionCallbackTypes) has no closest branch.
    let consts: Option<Vec<Value>> = branches
        .iter()
        .map(|b| b.schema.get("const").cloned())
        .collect();
    if let Some(values) = consts {
        return vec![Issue {
            ptr: ptr.to_string(),
            msg: format!("{keyword}: {v} is not one of {}", Value::Array(values)),
            kind: Kind::Value,
        }];
    }
    let discriminator = format!("{ptr}/type");
    let score = |issues: &[Issue]| {
        let wrong_type = issues
            .iter()
            .filter(|i| i.kind == Kind::Type && i.ptr == ptr)
            .count();
        let wrong_kind = issues
            .iter()
            .filter(|i| i.kind != Kind::Other && i.ptr == discriminator)
            .count();
        (wrong_type, wrong_kind)
    };
    let null_only = |b: &Value| {
        b.as_object()
            .is_some_and(|o| o.len() == 1 && o.get("type") == Some(&Value::from("null")))
    };
    let Some(best) = branches
        .into_iter()
        .min_by_key(|b| (score(&b.issues), null_only(&b.schema), b.issues.len()))
    else {
        return Vec::new();
    };
    let (wrong_type, wrong_kind) = score(&best.issues);
    // To an enclosing union, a value no branch describes is of another kind altogether.
    let kind = if wrong_type + wrong_kind > 0 {
        Kind::Type
    } else {
        Kind::Other
    };
    let mut out = vec![Issue {
        ptr: ptr.to_string(),
        msg: format!("{keyword}: no branch matches; closest is {}", best.name),
        kind,
    }];
    out.extend(best.issues);
    out
}

/// The JSON type of `v`, as JSON Schema names it (`1.0` is an integer).
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() && n.as_f64().is_some_and(|f| f.fract() != 0.0) => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
