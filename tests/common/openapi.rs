//! A minimal JSON-Schema validator over the vendored subset of Discord's OpenAPI spec
//! (`tests/fixtures/discord-openapi.subset.json`): checks that a REST body the bot sends is one
//! Discord documents as accepted, with Discord's limits (embed title 256, 25 fields, …).
//!
//! Handled keywords: `$ref` (local JSON pointers), `type` (a name or an array of names),
//! `nullable`, `enum`, `const`, `properties`, `required`, `additionalProperties`,
//! `minProperties`/`maxProperties`, `items`, `minItems`/`maxItems`, `uniqueItems`,
//! `minLength`/`maxLength`, `minimum`/`maximum`, `exclusiveMinimum`/`exclusiveMaximum`,
//! `allOf`/`anyOf`/`oneOf`, and `format` for `snowflake`, `int32`, `int64`, `uri`, `date-time`.
//! Other keywords (`pattern`, `title`, `x-discord-union`, …) are ignored; `format: snowflake`
//! covers the one `pattern`, and also admits a non-negative integer, as Discord does.
#![allow(dead_code)]

use std::sync::OnceLock;

use serde_json::Value;

/// Compiled in, so the tests do not depend on where the full spec lives.
const SUBSET: &str = include_str!("../fixtures/discord-openapi.subset.json");

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| serde_json::from_str(SUBSET).expect("discord-openapi.subset.json is JSON"))
}

/// Check `body` against the request schema of `method` `path`, a concrete path as sent
/// (`/api/v10/...` prefix and `?query` allowed). Each error names a JSON pointer and a rule.
pub fn validate(method: &str, path: &str, body: &Value) -> Result<(), Vec<String>> {
    let Some((_, schema)) = schema_for(method, path) else {
        return Err(vec![format!(
            "no schema for {} {path}",
            method.to_uppercase()
        )]);
    };
    let mut issues = Vec::new();
    check(spec(), schema, body, "#", &mut issues);
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues
            .into_iter()
            .map(|i| format!("{}: {}", i.ptr, i.msg))
            .collect())
    }
}

/// The spec's path template matching `path`, and its `application/json` request schema.
pub fn schema_for(method: &str, path: &str) -> Option<(&'static str, &'static Value)> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let path = path.strip_prefix("/api/v10").unwrap_or(path);
    let method = method.to_lowercase();
    let concrete: Vec<&str> = path.split('/').collect();
    // Most literal segments wins: `.../messages/@original` over `.../messages/{message_id}`.
    let mut best: Option<(usize, &'static str, &'static Value)> = None;
    for (template, ops) in spec()["paths"].as_object()? {
        let Some(schema) = ops
            .get(&method)
            .and_then(|op| op.pointer("/requestBody/content/application~1json/schema"))
        else {
            continue;
        };
        let segs: Vec<&str> = template.split('/').collect();
        if segs.len() != concrete.len() {
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
        if fits && best.is_none_or(|(n, _, _)| literal > n) {
            best = Some((literal, template.as_str(), schema));
        }
    }
    best.map(|(_, t, s)| (t, s))
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

fn issue(out: &mut Vec<Issue>, ptr: &str, msg: String, kind: Kind) {
    out.push(Issue {
        ptr: ptr.to_string(),
        msg,
        kind,
    });
}

/// RFC 6901 escaping of one reference token.
fn child(ptr: &str, key: &str) -> String {
    format!("{ptr}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn check(root: &Value, schema: &Value, v: &Value, ptr: &str, out: &mut Vec<Issue>) {
    let Some(s) = schema.as_object() else {
        // `true`/`false` schemas.
        if schema == &Value::Bool(false) {
            issue(
                out,
                ptr,
                "schema `false` allows no value".into(),
                Kind::Type,
            );
        }
        return;
    };
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
            Some(target) => check(root, target, v, ptr, out),
            None => issue(out, ptr, format!("$ref {r} does not resolve"), Kind::Other),
        }
    }
    let format = s.get("format").and_then(Value::as_str);
    let nullable = s.get("nullable") == Some(&Value::Bool(true));
    if let Some(t) = s.get("type") {
        let names: Vec<&str> = match t {
            Value::String(n) => vec![n.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = (nullable && v.is_null()) || names.iter().any(|n| has_type(v, n, format));
        if !ok {
            issue(
                out,
                ptr,
                format!(
                    "type: expected {}, got {}",
                    names.join(" or "),
                    type_name(v)
                ),
                Kind::Type,
            );
            // The other rules of this schema assume the type; their errors would only be noise.
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.iter().any(|x| same(x, v)) {
            issue(
                out,
                ptr,
                format!("enum: {v} is not one of {}", Value::Array(e.clone())),
                Kind::Value,
            );
        }
    }
    if let Some(c) = s.get("const") {
        if !same(c, v) {
            issue(
                out,
                ptr,
                format!("const: expected {c}, got {v}"),
                Kind::Value,
            );
        }
    }
    if let Some(f) = format {
        check_format(f, v, ptr, out);
    }
    match v {
        Value::String(text) => {
            let n = text.chars().count();
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
                if n as u64 > max {
                    issue(
                        out,
                        ptr,
                        format!("maxLength {max}: string has {n} characters"),
                        Kind::Other,
                    );
                }
            }
            if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
                if (n as u64) < min {
                    issue(
                        out,
                        ptr,
                        format!("minLength {min}: string has {n} characters"),
                        Kind::Other,
                    );
                }
            }
        }
        Value::Number(_) => check_bounds(s, v, ptr, out),
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
                if n > max {
                    issue(
                        out,
                        ptr,
                        format!("maxItems {max}: array has {n} items"),
                        Kind::Other,
                    );
                }
            }
            if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
                if n < min {
                    issue(
                        out,
                        ptr,
                        format!("minItems {min}: array has {n} items"),
                        Kind::Other,
                    );
                }
            }
            if s.get("uniqueItems") == Some(&Value::Bool(true)) {
                for (i, a) in items.iter().enumerate() {
                    if let Some(j) = items[..i].iter().position(|b| same(a, b)) {
                        issue(
                            out,
                            &child(ptr, &i.to_string()),
                            format!("uniqueItems: same as item {j}"),
                            Kind::Other,
                        );
                    }
                }
            }
            if let Some(item) = s.get("items").filter(|i| i.is_object() || i.is_boolean()) {
                for (i, x) in items.iter().enumerate() {
                    check(root, item, x, &child(ptr, &i.to_string()), out);
                }
            }
        }
        Value::Object(map) => {
            let n = map.len() as u64;
            if let Some(max) = s.get("maxProperties").and_then(Value::as_u64) {
                if n > max {
                    issue(
                        out,
                        ptr,
                        format!("maxProperties {max}: object has {n} properties"),
                        Kind::Other,
                    );
                }
            }
            if let Some(min) = s.get("minProperties").and_then(Value::as_u64) {
                if n < min {
                    issue(
                        out,
                        ptr,
                        format!("minProperties {min}: object has {n} properties"),
                        Kind::Other,
                    );
                }
            }
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = r.as_str().filter(|name| !map.contains_key(*name)) {
                    issue(
                        out,
                        ptr,
                        format!("required: missing property {name:?}"),
                        Kind::Other,
                    );
                }
            }
            let props = s.get("properties").and_then(Value::as_object);
            for (k, x) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(ps) => check(root, ps, x, &child(ptr, k), out),
                    None => match s.get("additionalProperties") {
                        Some(Value::Bool(false)) => issue(
                            out,
                            &child(ptr, k),
                            "additionalProperties: property not allowed".into(),
                            Kind::Other,
                        ),
                        Some(extra @ Value::Object(_)) => {
                            check(root, extra, x, &child(ptr, k), out)
                        }
                        _ => {}
                    },
                }
            }
        }
        _ => {}
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            check(root, sub, v, ptr, out);
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        let tries = branches(root, any, v, ptr);
        if !tries.iter().any(|(_, errs)| errs.is_empty()) {
            closest("anyOf", any, &tries, v, ptr, out);
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let tries = branches(root, one, v, ptr);
        let matched: Vec<&str> = tries
            .iter()
            .filter(|(_, errs)| errs.is_empty())
            .map(|(name, _)| name.as_str())
            .collect();
        match matched.len() {
            1 => {}
            0 => closest("oneOf", one, &tries, v, ptr, out),
            _ => issue(
                out,
                ptr,
                format!(
                    "oneOf: {} branches match ({}), exactly one must",
                    matched.len(),
                    matched.join(", ")
                ),
                Kind::Other,
            ),
        }
    }
}

/// Each branch's name (its `$ref` target, title, or index) and its issues for `v`.
fn branches(root: &Value, subs: &[Value], v: &Value, ptr: &str) -> Vec<(String, Vec<Issue>)> {
    subs.iter()
        .enumerate()
        .map(|(i, sub)| {
            let name = sub
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit('/').next())
                .or_else(|| sub.get("title").and_then(Value::as_str))
                .map_or_else(|| format!("branch {i}"), str::to_string);
            let mut errs = Vec::new();
            check(root, sub, v, ptr, &mut errs);
            (name, errs)
        })
        .collect()
}

/// Report the branch nearest to matching. Discord's unions are keyed by a `type` property, so
/// rank by: the value itself of another JSON type than the branch's, then an `enum`/`const`
/// mismatch on `<value>/type`, then the `{"type": "null"}` of an optional value last (its
/// other branch says what was expected), then the number of issues.
fn closest(
    keyword: &str,
    subs: &[Value],
    tries: &[(String, Vec<Issue>)],
    v: &Value,
    ptr: &str,
    out: &mut Vec<Issue>,
) {
    // A list of constants (Discord's enums, e.g. InteractionCallbackTypes) has no closest branch.
    let consts: Option<Vec<Value>> = subs.iter().map(|b| b.get("const").cloned()).collect();
    if let Some(values) = consts {
        let msg = format!("{keyword}: {v} is not one of {}", Value::Array(values));
        issue(out, ptr, msg, Kind::Value);
        return;
    }
    let discriminator = child(ptr, "type");
    let score = |errs: &[Issue]| {
        let wrong_type = errs
            .iter()
            .filter(|i| i.kind == Kind::Type && i.ptr == ptr)
            .count();
        let wrong_kind = errs
            .iter()
            .filter(|i| i.kind != Kind::Other && i.ptr == discriminator)
            .count();
        (wrong_type, wrong_kind)
    };
    let null_only = |b: &Value| {
        b.as_object()
            .is_some_and(|o| o.len() == 1 && o.get("type") == Some(&Value::from("null")))
    };
    let Some(((name, errs), _)) = tries
        .iter()
        .zip(subs)
        .min_by_key(|((_, errs), b)| (score(errs), null_only(b), errs.len()))
    else {
        return;
    };
    let (wrong_type, wrong_kind) = score(errs);
    // To an enclosing union, a value no branch describes is of another kind altogether.
    let kind = if wrong_type + wrong_kind > 0 {
        Kind::Type
    } else {
        Kind::Other
    };
    issue(
        out,
        ptr,
        format!("{keyword}: no branch matches; closest is {name}"),
        kind,
    );
    out.extend(errs.iter().cloned());
}

fn check_bounds(s: &serde_json::Map<String, Value>, v: &Value, ptr: &str, out: &mut Vec<Issue>) {
    let rules: [(&str, fn(&Value, &Value) -> bool, &str); 4] = [
        (
            "minimum",
            |x, m| num_cmp(x, m).is_some_and(|o| o.is_ge()),
            "<",
        ),
        (
            "maximum",
            |x, m| num_cmp(x, m).is_some_and(|o| o.is_le()),
            ">",
        ),
        (
            "exclusiveMinimum",
            |x, m| num_cmp(x, m).is_some_and(|o| o.is_gt()),
            "<=",
        ),
        (
            "exclusiveMaximum",
            |x, m| num_cmp(x, m).is_some_and(|o| o.is_lt()),
            ">=",
        ),
    ];
    for (rule, ok, op) in rules {
        if let Some(limit) = s.get(rule).filter(|l| l.is_number()) {
            if !ok(v, limit) {
                issue(
                    out,
                    ptr,
                    format!("{rule} {limit}: {v} {op} {limit}"),
                    Kind::Other,
                );
            }
        }
    }
}

/// Exact for integers (Discord's limits go past 2^53), through f64 otherwise.
fn num_cmp(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    let as_i128 = |v: &Value| {
        v.as_i64()
            .map(i128::from)
            .or_else(|| v.as_u64().map(i128::from))
    };
    match (as_i128(a), as_i128(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// JSON equality where numbers compare by value (`5` equals `5.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => num_cmp(a, b).is_some_and(|o| o.is_eq()),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| same(a, b)))
        }
        _ => a == b,
    }
}

fn is_integer(v: &Value) -> bool {
    v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn has_type(v: &Value, name: &str, format: Option<&str>) -> bool {
    match name {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        // Discord's own docs send new attachment ids as integers (`"id": 0`), and serenity does too:
        // a snowflake may be a non-negative JSON integer as well as a string.
        "string" => v.is_string() || (format == Some("snowflake") && v.is_u64()),
        "integer" => is_integer(v),
        "number" => v.is_number(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) if is_integer(v) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_format(format: &str, v: &Value, ptr: &str, out: &mut Vec<Issue>) {
    let ok = match (format, v) {
        ("snowflake", Value::String(s)) => {
            // Decimal digits without a leading zero (the spec's pattern), and within u64.
            (s == "0" || (!s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit())))
                && s.parse::<u64>().is_ok()
        }
        // As for `type: integer`, `1.0` is an integer (poise sends option bounds as floats).
        ("int32", Value::Number(_)) => {
            is_integer(v)
                && v.as_f64()
                    .is_some_and(|f| (i32::MIN as f64..=i32::MAX as f64).contains(&f))
        }
        ("int64", Value::Number(_)) => {
            v.is_i64()
                || (is_integer(v)
                    && v.as_f64()
                        .is_some_and(|f| (i64::MIN as f64..i64::MAX as f64).contains(&f)))
        }
        ("uri", Value::String(s)) => is_uri(s),
        ("date-time", Value::String(s)) => is_date_time(s),
        _ => true,
    };
    if !ok {
        issue(
            out,
            ptr,
            format!("format {format}: {v} is not one"),
            Kind::Other,
        );
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

/// RFC 3339: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !(digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10))
        || !matches!(b[10], b'T' | b't' | b' ')
        || !(digits(11..13) && b[13] == b':' && digits(14..16) && b[16] == b':' && digits(17..19))
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', ..] => {
            b.len() == i + 6 && digits(i + 1..i + 3) && b[i + 3] == b':' && digits(i + 4..i + 6)
        }
        _ => false,
    }
}
