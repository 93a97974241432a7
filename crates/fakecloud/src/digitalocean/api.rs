//! The wire side shared by every DigitalOcean endpoint: the request as handlers see it, the two
//! documented error shapes (`{id, message, request_id}`, and `{error, messages}` on the tags
//! endpoints), and lists paged by the kit ([`crate::page`]): `page`/`per_page` (default 20,
//! at most 200), `links.pages` with absolute URLs (none on a single page), `meta.total`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::state::State;
use crate::page::Paging;

/// The request id every answer carries (header `x-request-id` and error bodies).
pub(super) const REQUEST_ID: &str = "fake-req-0001";

/// A request as the handlers see it.
pub(super) struct Req<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path (`/v2/droplets/1`).
    pub path: &'a str,
    /// Its segments (`["v2", "droplets", "1"]`).
    pub seg: Vec<&'a str>,
    /// The decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// The JSON body (`null` when there is none).
    pub body: Value,
}

impl<'a> Req<'a> {
    pub fn new(method: &'a str, path: &'a str, query: &str, body: Option<Value>) -> Req<'a> {
        Req {
            method,
            path,
            seg: path.trim_start_matches('/').split('/').collect(),
            query: form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            body: body.unwrap_or(Value::Null),
        }
    }

    /// The first value of a query parameter.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A status and a JSON body (`null` for 204).
pub(super) type Answer = (StatusCode, Value);

/// The error shape of every endpoint but the tags ones.
pub(super) fn err(status: StatusCode, id: &str, message: &str) -> Answer {
    (
        status,
        json!({"id": id, "message": message, "request_id": REQUEST_ID}),
    )
}

/// 422 `unprocessable_entity`, the API's answer to a body it will not take.
pub(super) fn unprocessable(message: &str) -> Answer {
    err(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable_entity",
        message,
    )
}

/// The tags endpoints' error shape.
pub(super) fn tag_err(status: StatusCode, message: &str) -> Answer {
    (status, json!({"error": message, "messages": [message]}))
}

/// 404 `not_found`.
pub(super) fn not_found() -> Answer {
    err(
        StatusCode::NOT_FOUND,
        "not_found",
        "The resource you requested could not be found.",
    )
}

/// 204 without a body.
pub(super) fn no_content() -> Answer {
    (StatusCode::NO_CONTENT, Value::Null)
}

/// DigitalOcean's error answer for an injected status or the kit's 429.
pub(super) fn kit_error(status: StatusCode, code: &str) -> Response {
    let message = if status == StatusCode::TOO_MANY_REQUESTS {
        "API Rate limit exceeded."
    } else {
        "Server was unable to give you a response."
    };
    let (status, body) = err(status, code, message);
    (status, axum::Json(body)).into_response()
}

/// One page of `items` under `key`, with `links` and `meta` as the API sends them.
pub(super) fn page(s: &State, r: &Req, key: &str, items: Vec<Value>) -> Answer {
    let paging = match Paging::parse(r.q("page"), r.q("per_page"), 20, 200) {
        Ok(p) => p,
        Err(field) => {
            return err(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("{field} must be a positive integer"),
            );
        }
    };
    let p = paging.slice(items);
    let links = p.digitalocean_links(&format!("{}{}", s.base, r.path), &r.query);
    let meta = p.digitalocean_meta();
    (
        StatusCode::OK,
        json!({key: p.items, "links": links, "meta": meta}),
    )
}

/// The id in a path segment, when it is a number.
pub(super) fn num(seg: &str) -> Option<i64> {
    seg.parse().ok()
}
