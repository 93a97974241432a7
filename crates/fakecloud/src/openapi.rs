//! Checks a fake's answers against the provider's official OpenAPI document (`../shared/specs`),
//! so that a fake sends what the document describes and nothing else. A small checker, not a
//! validator: `$ref`, `type` (a name or, in OpenAPI 3.1, a list), `nullable`, `required`,
//! `properties`, `additionalProperties`, `items`, `enum`, `allOf`/`anyOf`/`oneOf`,
//! `format: date-time` and `minimum`. Properties the schema does not declare are reported too.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The specs directory: `$BOOTSTRAP_SPECS_DIR`, else `shared/specs` beside the repository.
pub fn specs_dir() -> PathBuf {
    match std::env::var_os("BOOTSTRAP_SPECS_DIR") {
        Some(d) if !d.is_empty() => d.into(),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs"),
    }
}

/// An OpenAPI document.
#[derive(Clone, Debug)]
pub struct Spec(Value);

impl Spec {
    /// Reads a JSON (`.json`) or YAML (anything else) document.
    ///
    /// # Errors
    /// The file cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Spec, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let doc = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            serde_saphyr::from_str(&text).map_err(|e| e.to_string())
        };
        doc.map(Spec)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads `name` from [`specs_dir`].
    ///
    /// # Errors
    /// As [`Spec::load`]; the message says to set `BOOTSTRAP_SPECS_DIR`.
    pub fn named(name: &str) -> Result<Spec, String> {
        Spec::load(&specs_dir().join(name)).map_err(|e| format!("{e} (set BOOTSTRAP_SPECS_DIR)"))
    }

    /// The JSON response schema of `method path` (the document's path template, e.g.
    /// `/servers/{id}`) for `status` (`"200"`, `"4xx"`, `"default"`, ...).
    pub fn response_schema(&self, method: &str, path: &str, status: &str) -> Option<&Value> {
        let response = self
            .0
            .get("paths")?
            .get(path)?
            .get(method.to_ascii_lowercase())?
            .get("responses")?
            .get(status)?;
        self.resolve(response)
            .pointer("/content/application~1json/schema")
    }

    /// What is wrong with `body` as the answer `status` of `method path`; an answer the
    /// document does not describe is one error. Tries the status itself, then its class
    /// (`4xx`, `4XX`), then `default`.
    pub fn response_errors(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Vec<String> {
        let class = status / 100;
        let keys = [
            status.to_string(),
            format!("{class}xx"),
            format!("{class}XX"),
            "default".into(),
        ];
        match keys
            .iter()
            .find_map(|k| self.response_schema(method, path, k))
        {
            Some(schema) => self.errors(schema, body),
            None => vec![format!("no response schema for {method} {path} {status}")],
        }
    }

    /// What is wrong with `value` as an instance of `schema` (part of this document).
    pub fn errors(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errs = vec![];
        self.check(schema, value, "$", &mut errs, true);
        errs
    }

    fn resolve<'a>(&'a self, mut s: &'a Value) -> &'a Value {
        while let Some(r) = s.get("$ref").and_then(Value::as_str) {
            match self.0.pointer(r.trim_start_matches('#')) {
                Some(x) => s = x,
                None => break,
            }
        }
        s
    }

    /// The properties `s` and its `allOf` parts declare, or `None` when one of them takes any
    /// (`additionalProperties`).
    fn declared(&self, s: &Value) -> Option<std::collections::BTreeSet<String>> {
        let s = self.resolve(s);
        if s.get("additionalProperties")
            .is_some_and(|a| a.is_object() || a == &Value::Bool(true))
        {
            return None;
        }
        let mut out: std::collections::BTreeSet<String> = s
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        for sub in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.extend(self.declared(sub)?);
        }
        Some(out)
    }

    /// `strict`: report properties the schema does not declare. The parts of an `allOf` are
    /// checked without it; the `allOf` as a whole checks the union of what they declare.
    fn check(&self, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>, strict: bool) {
        let s = self.resolve(schema);
        let types: Vec<&str> = match s.get("type") {
            Some(Value::String(t)) => vec![t],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ if s.get("properties").is_some() => vec!["object"],
            _ => vec![],
        };
        if v.is_null() {
            let nullable =
                s.get("nullable").and_then(Value::as_bool) == Some(true) || types.contains(&"null");
            if !nullable && !types.is_empty() {
                errs.push(format!("{at}: null but not nullable"));
            }
            return;
        }
        for sub in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(sub, v, at, errs, false);
        }
        if strict
            && s.get("allOf").is_some()
            && let (Value::Object(obj), Some(known)) = (v, self.declared(s))
        {
            for k in obj.keys().filter(|k| !known.contains(*k)) {
                errs.push(format!("{at}: property '{k}' is not in the schema"));
            }
        }
        for comb in ["anyOf", "oneOf"] {
            if let Some(alts) = s.get(comb).and_then(Value::as_array) {
                let ok = alts
                    .iter()
                    .filter(|sub| self.errors(sub, v).is_empty())
                    .count();
                if ok == 0 || (comb == "oneOf" && ok > 1) {
                    errs.push(format!("{at}: {ok} alternatives of {comb} match"));
                }
            }
        }
        if let Some(en) = s.get("enum").and_then(Value::as_array)
            && !en.contains(v)
        {
            errs.push(format!("{at}: {v} not in enum {en:?}"));
        }
        if types.is_empty() {
            return;
        }
        let ty = types.iter().copied().find(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => false,
        });
        match (ty, v) {
            (None, _) => errs.push(format!("{at}: expected {}, got {v}", types.join(" or "))),
            (Some("object"), Value::Object(obj)) => self.check_object(s, obj, at, errs, strict),
            (Some("array"), Value::Array(arr)) => {
                if let Some(items) = s.get("items") {
                    for (i, x) in arr.iter().enumerate() {
                        self.check(items, x, &format!("{at}[{i}]"), errs, true);
                    }
                }
            }
            (Some("string"), Value::String(st))
                if s.get("format").and_then(Value::as_str) == Some("date-time")
                    && time::OffsetDateTime::parse(
                        st,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .is_err() =>
            {
                errs.push(format!("{at}: '{st}' is not RFC 3339"));
            }
            (Some("integer" | "number"), _) => {
                if let (Some(min), Some(x)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64())
                    && x < min
                {
                    errs.push(format!("{at}: {v} below minimum {min}"));
                }
            }
            _ => {}
        }
    }

    fn check_object(
        &self,
        s: &Value,
        obj: &serde_json::Map<String, Value>,
        at: &str,
        errs: &mut Vec<String>,
        strict: bool,
    ) {
        let props = s.get("properties").and_then(Value::as_object);
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(r) = r.as_str()
                && !obj.contains_key(r)
            {
                errs.push(format!("{at}: missing required property '{r}'"));
            }
        }
        let combined = ["allOf", "oneOf", "anyOf"]
            .iter()
            .any(|c| s.get(c).is_some());
        for (k, val) in obj {
            match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
                (Some(ps), _) => self.check(ps, val, &format!("{at}.{k}"), errs, true),
                (None, Some(ap)) if ap.is_object() => {
                    self.check(ap, val, &format!("{at}.{k}"), errs, true)
                }
                (None, Some(Value::Bool(true))) => {}
                (None, _) if strict && props.is_some() && !combined => {
                    errs.push(format!("{at}: property '{k}' is not in the schema"));
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_nulls_and_strictness() {
        let spec = Spec(json!({"components": {"schemas": {"T": {
            "type": "object", "required": ["a"],
            "properties": {"a": {"type": "integer", "minimum": 1}, "b": {"type": ["string", "null"], "format": "date-time"},
                           "c": {"type": "string", "nullable": true, "enum": ["x", "y"]}}
        }}}}));
        let t = json!({"$ref": "#/components/schemas/T"});
        assert!(
            spec.errors(&t, &json!({"a": 1, "b": "2016-01-30T23:55:00Z", "c": null}))
                .is_empty()
        );
        assert!(
            spec.errors(&t, &json!({"a": 1, "b": null, "c": "x"}))
                .is_empty()
        );
        let errs = spec.errors(&t, &json!({"a": 0, "b": "yesterday", "c": "z", "d": 1}));
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert_eq!(spec.errors(&t, &json!({"b": 1})).len(), 2);
    }

    #[test]
    fn all_of_checks_the_union_of_its_parts() {
        let spec = Spec(json!({"components": {"schemas": {
            "List": {"allOf": [
                {"type": "object", "properties": {"items": {"type": "array"}}},
                {"$ref": "#/components/schemas/Meta"},
            ]},
            "Meta": {"type": "object", "required": ["meta"], "properties": {"meta": {"type": "object", "properties": {"total": {"type": "integer"}}}}},
        }}}));
        let t = json!({"$ref": "#/components/schemas/List"});
        assert!(
            spec.errors(&t, &json!({"items": [], "meta": {"total": 1}}))
                .is_empty()
        );
        let errs = spec.errors(
            &t,
            &json!({"items": [], "meta": {"total": 1, "x": 1}, "y": 2}),
        );
        assert_eq!(
            errs,
            [
                "$.meta: property 'x' is not in the schema",
                "$: property 'y' is not in the schema"
            ]
        );
        assert_eq!(spec.errors(&t, &json!({"items": []})).len(), 1);
    }

    #[test]
    fn yaml_documents_load() {
        let spec = Spec::named("scaleway-block.yaml").unwrap();
        assert!(spec.0.get("paths").is_some_and(Value::is_object));
    }
}
