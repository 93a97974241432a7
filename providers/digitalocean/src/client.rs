//! The one request path of the adapter: the core's [`HttpClient`] bound to DigitalOcean's
//! origin, bearer token, error parser and `ratelimit-*` reading, with typed helpers that every
//! resource module uses.
//!
//! Lists ask for `per_page=200` (the maximum) and follow `links.pages.next`, an absolute URL on
//! the API's own origin (the core's client refuses any other). Nothing here retries or sleeps:
//! the core's flows do.

use bootstrap_core::http::{Auth, Body, HttpClient, RateLimitStyle};
use bootstrap_core::{Error, ErrorKind, Result, Secret};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::DEFAULT_ENDPOINT;
use crate::schema::Links;

/// Largest page DigitalOcean serves (`per_page` maximum).
pub(crate) const PER_PAGE: u32 = 200;
/// A bound on pages followed, against a server that keeps pointing onwards.
const MAX_PAGES: usize = 1000;

/// DigitalOcean's API at one origin with one token.
#[derive(Debug)]
pub(crate) struct Client {
    http: HttpClient,
}

impl Client {
    /// A client for `endpoint` (the origin, default [`DEFAULT_ENDPOINT`]; paths carry `/v2`).
    pub(crate) fn new(token: Secret, endpoint: Option<&str>) -> Result<Self> {
        let base = endpoint.unwrap_or(DEFAULT_ENDPOINT).trim_end_matches('/');
        // doctl's api-url is the origin; accept one given with the version too.
        let base = base.strip_suffix("/v2").unwrap_or(base);
        Ok(Self {
            http: HttpClient::new(
                HttpClient::default_client()?,
                base,
                Auth::Bearer(token),
                "digitalocean",
                crate::error::parse,
            )?
            .with_rate_limit_style(RateLimitStyle::ResetNextToken),
        })
    }

    /// How long a request sent now would wait for the rate budget (the job's admission
    /// follows it).
    pub(crate) fn queue_wait(&self) -> std::time::Duration {
        self.http.queue_wait()
    }

    /// GET `path` with `query`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T> {
        self.http.get(path, query).await
    }

    /// GET `path`; `None` when it does not exist (404).
    pub(crate) async fn get_opt<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        ok_if_missing(self.http.get(path, &[]).await)
    }

    /// POST `body` as JSON to `path`.
    pub(crate) async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.http.post(path, body).await
    }

    /// DELETE `path`; fine when it was already gone (404).
    pub(crate) async fn delete(&self, path: &str) -> Result<()> {
        ok_if_missing(self.http.delete::<serde_json::Value>(path).await).map(|_| ())
    }

    /// DELETE `path` with a JSON body (firewall rules, tag resources).
    pub(crate) async fn delete_with<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<()> {
        self.http
            .send::<serde_json::Value, B>(Method::DELETE, path, &[], Some(body))
            .await
            .map(|_| ())
    }

    /// GET every page of a list whose items are under `key`, following `links.pages.next`.
    pub(crate) async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        query: Vec<(&str, String)>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let complete = self
            .list_while(path, key, query, MAX_PAGES, |page: Vec<T>| {
                out.extend(page);
                true
            })
            .await?;
        if complete {
            Ok(out)
        } else {
            Err(Error::new(
                ErrorKind::Other,
                format!("digitalocean GET {path}: more than {MAX_PAGES} pages"),
            ))
        }
    }

    /// GETs the pages of a list whose items are under `key` one by one, handing each to `page`,
    /// until `page` says it has seen enough (`false`), the list ends, or `max_pages` were read.
    /// Returns whether the list ended (or `page` stopped it) within `max_pages`.
    pub(crate) async fn list_while<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        mut query: Vec<(&str, String)>,
        max_pages: usize,
        mut page: impl FnMut(Vec<T>) -> bool,
    ) -> Result<bool> {
        query.push(("per_page", PER_PAGE.to_string()));
        let mut next: Option<String> = None;
        for _ in 0..max_pages {
            let resp = match &next {
                None => {
                    self.http
                        .send_full::<serde_json::Value>(Method::GET, path, &query, Body::Empty)
                        .await?
                }
                Some(url) => {
                    self.http
                        .send_full::<serde_json::Value>(Method::GET, url, &[], Body::Empty)
                        .await?
                }
            };
            let mut body = resp.body;
            let items = body.get_mut(key).map(serde_json::Value::take);
            let items: Vec<T> = match items.filter(|i| !i.is_null()) {
                Some(items) => serde_json::from_value(items).map_err(|e| {
                    Error::new(
                        ErrorKind::Other,
                        format!("digitalocean GET {path}: unexpected {key} in the answer: {e}"),
                    )
                })?,
                None => Vec::new(),
            };
            if !page(items) {
                return Ok(true);
            }
            let links: Links = body
                .get_mut("links")
                .map(serde_json::Value::take)
                .and_then(|l| serde_json::from_value(l).ok())
                .unwrap_or_default();
            match links.pages.and_then(|p| p.next) {
                Some(n) if next.as_ref() != Some(&n) => next = Some(n),
                _ => return Ok(true),
            }
        }
        Ok(false)
    }
}

/// A DigitalOcean numeric id from the core model's string id, refused before any request when
/// it is not one.
pub(crate) fn id_of(id: &str) -> Result<i64> {
    id.parse().map_err(|_| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("not a DigitalOcean id: {id:?}"),
        )
    })
}

/// Treats "not found" as "already gone".
pub(crate) fn ok_if_missing<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}
