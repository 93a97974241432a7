//! Paging a list the way each provider does: one slice ([`Paging::slice`]), three renderings.
//! Hetzner: `page`/`per_page`, `meta.pagination` and a `Link` header. DigitalOcean: absolute
//! `links.pages` URLs (none on a single page) and `meta.total`. Scaleway: `page`/`per_page` and an
//! `X-Total-Count` header (Instance API), or `page`/`page_size` and `total_count` in the body
//! (IAM, Block).

use serde_json::{Value, json};

/// Which page a request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paging {
    /// 1-based page number.
    pub page: u64,
    /// Items per page (clamped to the provider's maximum).
    pub per_page: u64,
}

impl Paging {
    /// Reads the page number and size from their query values (`None`: not given). A size
    /// above `max` is clamped, as the APIs do; `Err` names the field that is not a positive
    /// integer.
    pub fn parse(
        page: Option<&str>,
        per_page: Option<&str>,
        default: u64,
        max: u64,
    ) -> Result<Paging, &'static str> {
        let positive = |v: Option<&str>, field, default| match v.map(str::parse::<u64>) {
            None => Ok(default),
            Some(Ok(n)) if n >= 1 => Ok(n),
            Some(_) => Err(field),
        };
        Ok(Paging {
            page: positive(page, "page", 1)?,
            per_page: positive(per_page, "per_page", default)?.min(max),
        })
    }

    /// This page of `items`.
    pub fn slice<T>(self, mut items: Vec<T>) -> Page<T> {
        let total = items.len() as u64;
        let start = (self.page - 1).saturating_mul(self.per_page).min(total);
        let end = self.page.saturating_mul(self.per_page).min(total);
        // Both bounded by items.len().
        let items = items.drain(start as usize..end as usize).collect();
        Page {
            items,
            page: self.page,
            per_page: self.per_page,
            total,
            last_page: total.div_ceil(self.per_page).max(1),
        }
    }
}

/// One page of a list and where it sits.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// Its 1-based number.
    pub page: u64,
    /// The page size used.
    pub per_page: u64,
    /// Items in the whole list.
    pub total: u64,
    /// The last page's number (1 for an empty list).
    pub last_page: u64,
}

impl<T> Page<T> {
    fn prev(&self) -> Option<u64> {
        (self.page > 1).then(|| self.page - 1)
    }

    fn next(&self) -> Option<u64> {
        (self.page < self.last_page).then(|| self.page + 1)
    }

    /// `url` (absolute, without a query) with `query` minus paging, then `page` and `per_page`.
    pub fn url_of(&self, url: &str, query: &[(String, String)], page: u64) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in query.iter().filter(|(k, _)| k != "page" && k != "per_page") {
            q.append_pair(k, v);
        }
        q.append_pair("page", &page.to_string());
        q.append_pair("per_page", &self.per_page.to_string());
        format!("{url}?{}", q.finish())
    }

    /// Hetzner's `meta`: `{"pagination": {page, per_page, previous_page, next_page, last_page,
    /// total_entries}}`.
    pub fn hetzner_meta(&self) -> Value {
        json!({"pagination": {
            "page": self.page, "per_page": self.per_page, "previous_page": self.prev(),
            "next_page": self.next(), "last_page": self.last_page, "total_entries": self.total,
        }})
    }

    /// The RFC 8288 `Link` header Hetzner sends: `prev` and `next` where they exist, `last`.
    pub fn link_header(&self, url: &str, query: &[(String, String)]) -> String {
        let link = |p: u64, rel: &str| format!("<{}>; rel=\"{rel}\"", self.url_of(url, query, p));
        let mut links: Vec<String> = self.prev().map(|p| link(p, "prev")).into_iter().collect();
        links.extend(self.next().map(|p| link(p, "next")));
        links.push(link(self.last_page, "last"));
        links.join(", ")
    }

    /// DigitalOcean's `links`: `{"pages": {first, prev, next, last}}` with absolute URLs, the
    /// first two only past page 1 and the last two only before the last page; `{}` for a single
    /// page.
    pub fn digitalocean_links(&self, url: &str, query: &[(String, String)]) -> Value {
        let mut pages = serde_json::Map::new();
        if let Some(prev) = self.prev() {
            pages.insert("first".into(), json!(self.url_of(url, query, 1)));
            pages.insert("prev".into(), json!(self.url_of(url, query, prev)));
        }
        if let Some(next) = self.next() {
            pages.insert("next".into(), json!(self.url_of(url, query, next)));
            pages.insert(
                "last".into(),
                json!(self.url_of(url, query, self.last_page)),
            );
        }
        if pages.is_empty() {
            json!({})
        } else {
            json!({ "pages": pages })
        }
    }

    /// DigitalOcean's `meta`: `{"total": n}`.
    pub fn digitalocean_meta(&self) -> Value {
        json!({"total": self.total})
    }

    /// Scaleway's Instance API header: `("X-Total-Count", total)`; IAM and Block put the same
    /// number in the body as `total_count`.
    pub fn total_count_header(&self) -> (&'static str, String) {
        ("X-Total-Count", self.total.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hetzner_pages_and_links() {
        let p = Paging::parse(Some("2"), Some("500"), 25, 50).unwrap();
        assert_eq!(p.per_page, 50);
        let page = p.slice((0..60).collect());
        assert_eq!(page.items.len(), 10);
        assert_eq!(
            page.hetzner_meta()["pagination"],
            json!({"page": 2, "per_page": 50, "previous_page": 1, "next_page": null, "last_page": 2, "total_entries": 60})
        );
        let q = [("name".to_owned(), "a b".to_owned())];
        assert_eq!(
            page.link_header("http://h/v1/ssh_keys", &q),
            "<http://h/v1/ssh_keys?name=a+b&page=1&per_page=50>; rel=\"prev\", <http://h/v1/ssh_keys?name=a+b&page=2&per_page=50>; rel=\"last\""
        );
        assert_eq!(Paging::parse(Some("0"), None, 25, 50), Err("page"));
        assert_eq!(Paging::parse(None, Some("x"), 25, 50), Err("per_page"));
        let empty = Paging::parse(None, None, 25, 50)
            .unwrap()
            .slice(Vec::<u8>::new());
        assert_eq!((empty.last_page, empty.total), (1, 0));
    }

    #[test]
    fn digitalocean_links_only_past_one_page() {
        let one = Paging::parse(None, None, 20, 200)
            .unwrap()
            .slice((0..20).collect());
        assert_eq!(
            one.digitalocean_links("http://h/v2/droplets", &[]),
            json!({})
        );
        assert_eq!(one.digitalocean_meta(), json!({"total": 20}));
        let first = Paging::parse(None, None, 20, 200)
            .unwrap()
            .slice((0..45).collect());
        let links = first.digitalocean_links("http://h/v2/droplets", &[]);
        assert_eq!(
            links,
            json!({"pages": {"next": "http://h/v2/droplets?page=2&per_page=20", "last": "http://h/v2/droplets?page=3&per_page=20"}})
        );
        let mid = Paging::parse(Some("2"), None, 20, 200)
            .unwrap()
            .slice((0..45).collect());
        let links = mid.digitalocean_links("http://h/v2/droplets", &[]);
        assert_eq!(links["pages"].as_object().unwrap().len(), 4);
    }

    #[test]
    fn scaleway_total_count() {
        let p = Paging::parse(Some("3"), Some("2"), 50, 100)
            .unwrap()
            .slice((0..5).collect());
        assert_eq!(p.items, [4]);
        assert_eq!(p.total_count_header(), ("X-Total-Count", "5".into()));
    }
}
