//! The one request path of the adapter: the core's [`HttpClient`] bound to Hetzner's base URL,
//! bearer token and error parser, with typed helpers that every resource module uses.
//!
//! The core's client (not the `hcloud` crate's API functions, which drop response headers) sends
//! the requests, so the `RateLimit-*` headers reach the core's rate-limit gate. Nothing here
//! retries or sleeps: the core's flows do.

use std::collections::HashMap;

use bootstrap_core::http::{Auth, HttpClient};
use bootstrap_core::{Error, ErrorKind, Labels, Result, Secret};
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::DEFAULT_ENDPOINT;
use crate::schema::ListPage;

/// Largest page Hetzner serves (`per_page` maximum).
const PER_PAGE: i64 = 50;

/// Hetzner's API at one base URL with one token.
#[derive(Debug)]
pub(crate) struct Client {
    http: HttpClient,
}

impl Client {
    /// A client for `endpoint` (default [`DEFAULT_ENDPOINT`]) sending `token` as a bearer token.
    pub(crate) fn new(token: Secret, endpoint: Option<&str>) -> Result<Self> {
        Ok(Self {
            http: HttpClient::new(
                HttpClient::default_client()?,
                endpoint.unwrap_or(DEFAULT_ENDPOINT),
                Auth::Bearer(token),
                "hetzner",
                crate::error::parse,
            )?,
        })
    }

    /// How long a request sent now would wait for the rate budget.
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

    /// POST to `path` with no body at all (actions whose document refuses one).
    pub(crate) async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.http.send(Method::POST, path, &[], None::<&()>).await
    }

    /// PUT `body` as JSON to `path`.
    pub(crate) async fn put<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.http.send(Method::PUT, path, &[], Some(body)).await
    }

    /// DELETE `path`; `None` when it was already gone (404).
    pub(crate) async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        ok_if_missing(self.http.delete(path).await)
    }

    /// GET every page of a list: where the first page names the last one, the others side by
    /// side (a few at a time: 1,000 servers are 20 pages, 2 s one after another at 100 ms a
    /// call), else following `meta.pagination.next_page` until the last one.
    pub(crate) async fn list_all<P: ListPage + DeserializeOwned>(
        &self,
        path: &str,
        mut query: Vec<(&str, String)>,
    ) -> Result<Vec<P::Item>> {
        query.push(("per_page", PER_PAGE.to_string()));
        let get = |page: i64| {
            let mut q = query.clone();
            q.push(("page", page.to_string()));
            async move { self.http.get::<P>(path, &q).await }
        };
        let first = get(1).await?;
        let (mut page, mut next, last) = (1, first.next_page(), first.last_page());
        let mut out = first.items();
        if let (Some(2), Some(last)) = (next, last) {
            let rest: Vec<P> = futures::stream::iter((2..=last).map(get))
                .buffered(bootstrap_core::http::CALLS_AT_ONCE)
                .try_collect()
                .await?;
            for p in rest {
                page += 1;
                next = p.next_page();
                out.extend(p.items());
            }
        }
        // Without a last page, or entries added while the pages were read: one after another.
        while let Some(n) = next.filter(|n| *n > page) {
            let p = get(n).await?;
            page = n;
            next = p.next_page();
            out.extend(p.items());
        }
        Ok(out)
    }
}

/// A Hetzner id from the core model's string id, refused before any request when it is not one.
pub(crate) fn id_of(id: &str) -> Result<i64> {
    id.parse()
        .map_err(|_| Error::new(ErrorKind::InvalidInput, format!("not a Hetzner id: {id:?}")))
}

/// Labels as the request models want them.
pub(crate) fn labels_map(l: &Labels) -> HashMap<String, String> {
    l.iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Treats "not found" as "already gone".
fn ok_if_missing<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}
