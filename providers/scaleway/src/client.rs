//! The one request path of the adapter: the core's [`HttpClient`] with `X-Auth-Token`, Scaleway's
//! error parser and no rate-limit headers (a 429 gets the retry loop's jittered backoff), bound
//! to one project and zone; typed helpers for the Instance, Block and Marketplace APIs under one
//! base URL, and both pagination styles.
//!
//! Nothing here retries or sleeps: the core's flows do.

use std::sync::RwLock;

use bootstrap_core::http::{Auth, Body, HttpClient, RateLimitStyle};
use bootstrap_core::{Error, ErrorKind, Result, Secret};
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Scaleway's public API base URL.
pub const DEFAULT_ENDPOINT: &str = "https://api.scaleway.com";
/// Largest page of the Instance API (`per_page`) and of Block/IAM (`page_size`).
pub(crate) const PAGE_SIZE: usize = 100;

/// Scaleway's APIs for one project, in one zone.
#[derive(Debug)]
pub(crate) struct Client {
    http: HttpClient,
    /// The project resources are made in and listed from.
    pub project: String,
    zone: RwLock<String>,
}

impl Client {
    /// A client for `endpoint` (default [`DEFAULT_ENDPOINT`]).
    pub(crate) fn new(
        secret: Secret,
        project: String,
        zone: String,
        endpoint: Option<&str>,
    ) -> Result<Self> {
        Ok(Self {
            http: HttpClient::new(
                HttpClient::default_client()?,
                endpoint.unwrap_or(DEFAULT_ENDPOINT),
                Auth::Header("X-Auth-Token", secret),
                "scaleway",
                crate::error::parse,
            )?
            .with_rate_limit_style(RateLimitStyle::None),
            project,
            zone: RwLock::new(zone),
        })
    }

    /// The zone requests go to.
    pub(crate) fn zone(&self) -> String {
        self.zone.read().map(|z| z.clone()).unwrap_or_default()
    }

    /// Points later requests at `zone` (`create --location`).
    pub(crate) fn set_zone(&self, zone: &str) {
        if let Ok(mut z) = self.zone.write() {
            zone.clone_into(&mut z);
        }
    }

    /// An Instance API path in the zone.
    pub(crate) fn inst(&self, path: &str) -> String {
        format!("/instance/v1/zones/{}{path}", self.zone())
    }

    /// A Block API path in the zone.
    pub(crate) fn block(&self, path: &str) -> String {
        format!("/block/v1/zones/{}{path}", self.zone())
    }

    /// The region of the zone (`fr-par-1` -> `fr-par`): Serverless Jobs and Secret Manager
    /// are regional.
    pub(crate) fn region(&self) -> String {
        region_of(&self.zone()).to_owned()
    }

    /// A Serverless Jobs API path in the zone's region (v1alpha2: the version Scaleway's own
    /// Terraform provider uses, with the job's secret references under `/secrets`).
    pub(crate) fn jobs(&self, path: &str) -> String {
        format!("/serverless-jobs/v1alpha2/regions/{}{path}", self.region())
    }

    /// A Secret Manager API path in the zone's region.
    pub(crate) fn secrets(&self, path: &str) -> String {
        format!("/secret-manager/v1beta1/regions/{}{path}", self.region())
    }

    /// GET `path` with `query`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T> {
        self.http.get(path, query).await
    }

    /// How long a request sent now would wait for the rate budget: Scaleway sends no rate
    /// headers, so this stays zero and a 429 gets the retry loop's backoff.
    pub(crate) fn queue_wait(&self) -> std::time::Duration {
        self.http.queue_wait()
    }

    /// GET `path`; `None` on 404.
    pub(crate) async fn get_opt<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        ok_if_missing(self.http.get(path, &[]).await)
    }

    /// POST JSON.
    pub(crate) async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.http.post(path, body).await
    }

    /// PATCH JSON.
    pub(crate) async fn patch<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.http.send(Method::PATCH, path, &[], Some(body)).await
    }

    /// PATCH `text` as `text/plain` (user-data; JSON is refused).
    pub(crate) async fn patch_text(&self, path: &str, text: &str) -> Result<()> {
        let _: serde_json::Value = self
            .http
            .send_text(Method::PATCH, path, "text/plain", text)
            .await?;
        Ok(())
    }

    /// DELETE; a missing resource is already gone.
    pub(crate) async fn delete(&self, path: &str) -> Result<()> {
        let r: Result<serde_json::Value> = self.http.delete(path).await;
        ok_if_missing(r).map(|_| ())
    }

    /// Every item of an Instance list (`page`/`per_page`, total in `X-Total-Count`).
    pub(crate) async fn list_instance<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        query: Vec<(&str, String)>,
    ) -> Result<Vec<T>> {
        self.list_paged(path, key, query, "per_page", |headers, _| {
            headers
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok())
        })
        .await
    }

    /// Every item of a Block or IAM list (`page`/`page_size`, `total_count` in the body).
    pub(crate) async fn list_counted<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        query: Vec<(&str, String)>,
    ) -> Result<Vec<T>> {
        self.list_paged(path, key, query, "page_size", |_, body| {
            body.get("total_count")
                .and_then(serde_json::Value::as_u64)
                .and_then(|t| usize::try_from(t).ok())
        })
        .await
    }

    /// Every item of a paged list: the first page tells the total (`total`), and the pages
    /// after it are read side by side, a few at a time (a job's snapshot check over 1,000
    /// volumes read 10 pages one after another: a second a round at 100 ms a call); without a
    /// total, one page after another until a short one.
    async fn list_paged<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        query: Vec<(&str, String)>,
        size_param: &'static str,
        total: fn(&reqwest::header::HeaderMap, &serde_json::Value) -> Option<usize>,
    ) -> Result<Vec<T>> {
        let get = |page: usize| {
            let mut q = query.clone();
            q.push((size_param, PAGE_SIZE.to_string()));
            q.push(("page", page.to_string()));
            async move {
                let resp = self
                    .http
                    .send_full::<serde_json::Value>(Method::GET, path, &q, Body::Empty)
                    .await?;
                let t = total(&resp.headers, &resp.body);
                Ok::<_, Error>((t, take_items::<T>(resp.body, key, path)?))
            }
        };
        // More to read: a page came back with items and the total (if told) is not reached,
        // or without a total, the page was full.
        let more = |have: usize, n: usize, t: Option<usize>| {
            n > 0 && t.map_or(n >= PAGE_SIZE, |t| have < t)
        };
        let (mut total, mut out) = get(1).await?;
        let per = out.len();
        let (mut page, mut n) = (1, per);
        if let Some(t) = total
            && more(out.len(), n, total)
        {
            // The server may give fewer than asked a page: count pages by what it gave.
            let pages = t.div_ceil(per);
            let rest: Vec<(Option<usize>, Vec<T>)> = futures::stream::iter((2..=pages).map(get))
                .buffered(bootstrap_core::http::CALLS_AT_ONCE)
                .try_collect()
                .await?;
            for (t, items) in rest {
                page += 1;
                n = items.len();
                total = t.or(total);
                out.extend(items);
            }
        }
        // No total, or entries added while the pages were read: one page after another.
        while more(out.len(), n, total) {
            page += 1;
            let (t, items) = get(page).await?;
            n = items.len();
            total = t.or(total);
            out.extend(items);
        }
        Ok(out)
    }
}

/// The array under `key` of a list answer.
fn take_items<T: DeserializeOwned>(
    mut body: serde_json::Value,
    key: &str,
    path: &str,
) -> Result<Vec<T>> {
    let items = body
        .get_mut(key)
        .map(serde_json::Value::take)
        .unwrap_or(serde_json::Value::Array(Vec::new()));
    serde_json::from_value(items).map_err(|e| {
        Error::new(
            ErrorKind::Other,
            format!("scaleway GET {path}: unexpected {key}: {e}"),
        )
    })
}

/// The region of a zone: the zone without its number (`fr-par-1` -> `fr-par`).
pub(crate) fn region_of(zone: &str) -> &str {
    zone.rsplit_once('-').map_or(zone, |(r, _)| r)
}

/// Treats "not found" as "already gone".
pub(crate) fn ok_if_missing<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `s` is a UUID (Scaleway's ids; image labels are not).
pub(crate) fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Refuses an id that is not a UUID before it goes into a path.
pub(crate) fn uuid(id: &str) -> Result<&str> {
    if is_uuid(id) {
        Ok(id)
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("not a Scaleway id: {id:?}"),
        ))
    }
}
