//! The wire side shared by every Hetzner endpoint: the request as handlers see it, answers and
//! the documented error shapes (`{error: {code, message, details}}`), reading JSON bodies, and
//! listing (filters, sorting, pages).

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri, header};
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};

use super::labels::{Labels, parse_selector, selector_matches, validate_label};
use crate::page::Paging;

/// A request as the handlers see it.
pub(crate) struct Req {
    pub method: Method,
    /// The path (`/v1/servers/1`).
    pub path: String,
    /// The decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn new(method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Req {
        let query = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        Req {
            method,
            path: uri.path().to_owned(),
            query,
            headers,
            body,
        }
    }

    /// The first value of a query parameter.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a query parameter (`?status=a&status=b`).
    pub fn q_all(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `?id=1&id=2,3` as numbers.
    pub fn ids(&self) -> Vec<u64> {
        self.q_all("id")
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|v| v.trim().parse().ok())
            .collect()
    }

    /// The bearer token, if the `Authorization` header carries one.
    pub fn bearer(&self) -> Option<&str> {
        let h = self.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let tok = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))?;
        Some(tok.trim()).filter(|t| !t.is_empty())
    }

    /// The body as a JSON object (400 `json_error` otherwise).
    pub fn object(&self) -> Result<Map<String, Value>, Resp> {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(error(
                400,
                "json_error",
                "request body must be a JSON object",
            )),
            Err(e) => Err(error(
                400,
                "json_error",
                &format!("invalid JSON input: {e}"),
            )),
        }
    }

    /// The body as a JSON object, an empty body as an empty one (action endpoints).
    pub fn object_or_empty(&self) -> Result<Map<String, Value>, Resp> {
        if self.body.is_empty() {
            Ok(Map::new())
        } else {
            self.object()
        }
    }
}

/// An answer: a status, a JSON body, and the `Link` header of lists.
#[derive(Debug)]
pub(crate) struct Resp {
    pub status: u16,
    pub body: Option<Value>,
    pub link: Option<String>,
}

/// Handlers answer `Ok` or, through `?`, the error answer of whatever check failed.
pub(crate) type Reply = Result<Resp, Resp>;

impl Resp {
    pub fn json(status: u16, body: Value) -> Resp {
        Resp {
            status,
            body: Some(body),
            link: None,
        }
    }

    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            body: None,
            link: None,
        }
    }
}

impl IntoResponse for Resp {
    fn into_response(self) -> Response<Body> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = match self.body {
            Some(b) if status != StatusCode::NO_CONTENT => {
                ([(header::CONTENT_TYPE, "application/json")], b.to_string()).into_response()
            }
            _ => Response::new(Body::empty()),
        };
        *r.status_mut() = status;
        if let Some(link) = self.link.and_then(|l| l.parse().ok()) {
            r.headers_mut().insert(header::LINK, link);
        }
        r
    }
}

/// `{error: {code, message, details: {}}}`.
pub(crate) fn error(status: u16, code: &str, message: &str) -> Resp {
    error_details(status, code, message, json!({}))
}

/// `{error: {code, message, details}}`.
pub(crate) fn error_details(status: u16, code: &str, message: &str, details: Value) -> Resp {
    Resp::json(
        status,
        json!({"error": {"code": code, "message": message, "details": details}}),
    )
}

/// 422 `invalid_input` naming the field.
pub(crate) fn invalid_input(field: &str, msg: &str) -> Resp {
    error_details(
        422,
        "invalid_input",
        &format!("invalid input in field '{field}': {msg}"),
        json!({"fields": [{"name": field, "messages": [msg]}]}),
    )
}

/// 409 `uniqueness_error` naming the field.
pub(crate) fn uniqueness(field: &str, message: &str) -> Resp {
    error_details(
        409,
        "uniqueness_error",
        message,
        json!({"fields": [{"name": field}]}),
    )
}

/// 404 `not_found`.
pub(crate) fn not_found(what: &str) -> Resp {
    error(404, "not_found", &format!("{what} not found"))
}

/// 405 `method_not_allowed`.
pub(crate) fn not_allowed() -> Resp {
    error(
        405,
        "method_not_allowed",
        "the request method is not allowed",
    )
}

/// A required non-empty string field.
pub(crate) fn req_str(body: &Map<String, Value>, field: &str) -> Result<String, Resp> {
    match body.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(invalid_input(field, "must not be empty")),
        None | Some(Value::Null) => Err(invalid_input(field, "is required")),
        Some(_) => Err(invalid_input(field, "must be a string")),
    }
}

/// An optional string field.
pub(crate) fn opt_str(body: &Map<String, Value>, field: &str) -> Result<Option<String>, Resp> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid_input(field, "must be a string")),
    }
}

/// `labels`, checked against the label syntax; absent is `None`.
pub(crate) fn opt_labels(body: &Map<String, Value>) -> Result<Option<Labels>, Resp> {
    let m = match body.get("labels") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid_input("labels", "must be an object")),
    };
    let mut out = Labels::new();
    for (k, v) in m {
        let Some(v) = v.as_str() else {
            let msg = format!("value of label '{k}' must be a string");
            return Err(invalid_input("labels", &msg));
        };
        validate_label(k, v).map_err(|e| invalid_input("labels", &e))?;
        out.insert(k.clone(), v.to_owned());
    }
    Ok(Some(out))
}

/// `labels`, absent being none.
pub(crate) fn labels(body: &Map<String, Value>) -> Result<Labels, Resp> {
    Ok(opt_labels(body)?.unwrap_or_default())
}

/// One resource of a list: what filters and sorting look at, and its JSON.
pub(crate) struct Item {
    pub id: u64,
    pub name: Option<String>,
    pub created: u64,
    pub labels: Labels,
    pub json: Value,
}

/// Lists `items` under `key`: `label_selector` and `name` filters, `sort=field[:asc|:desc]`
/// (repeatable), then the page (`per_page` default 25, max 50) with `meta` and `Link`.
pub(crate) fn list(
    req: &Req,
    query: &[(String, String)],
    key: &str,
    mut items: Vec<Item>,
) -> Reply {
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(sel) = get("label_selector") {
        let sel = parse_selector(sel).map_err(|e| invalid_input("label_selector", &e))?;
        items.retain(|it| selector_matches(&sel, &it.labels));
    }
    if let Some(name) = get("name") {
        items.retain(|it| it.name.as_deref() == Some(name));
    }
    for (_, s) in query.iter().rev().filter(|(k, _)| k == "sort") {
        let (field, desc) = match s.split_once(':') {
            Some((f, "asc")) => (f, false),
            Some((f, "desc")) => (f, true),
            Some(_) => return Err(invalid_input("sort", "invalid sort direction")),
            None => (s.as_str(), false),
        };
        match field {
            "id" => items.sort_by_key(|i| i.id),
            "name" => items.sort_by(|a, b| a.name.cmp(&b.name)),
            "created" => items.sort_by_key(|i| i.created),
            _ => return Err(invalid_input("sort", "invalid sort field")),
        }
        if desc {
            items.reverse();
        }
    }
    let paging = Paging::parse(get("page"), get("per_page"), 25, 50)
        .map_err(|field| invalid_input(field, "must be a positive integer"))?;
    let page = paging.slice(items);
    let host = req
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let link = page.link_header(&format!("http://{host}{}", req.path), query);
    let items: Vec<Value> = page.items.iter().map(|i| i.json.clone()).collect();
    let mut body = Map::new();
    body.insert(key.to_owned(), Value::Array(items));
    body.insert("meta".into(), page.hetzner_meta());
    Ok(Resp {
        link: Some(link),
        ..Resp::json(200, Value::Object(body))
    })
}
