//! The one fault vocabulary of every fake: a rule picks requests (the n-th to arrive, or a method
//! and a path pattern, or any predicate) and says what happens to them (a status before or after
//! the work, a dropped connection before or after the work, a delay, a 429). The server applies
//! it around the provider's handler, so no fake implements faults itself.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;

/// What happens to a request picked by a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with the provider's error body for this code, without doing the work
    /// (e.g. `500, "server_error"`, `503, "unavailable"`, `423, "locked"`).
    Status(u16, &'static str),
    /// Do the work, then answer this status and code instead (the client never learns it worked).
    StatusAfter(u16, &'static str),
    /// Read the request, then close the connection without answering or doing the work.
    Drop,
    /// Do the work, then close the connection without answering.
    DropAfter,
    /// Wait this long, then handle the request as usual (for client timeouts and Ctrl-C).
    Delay(Duration),
    /// Answer 429 with the provider's rate-limit error without doing the work; `headers` says
    /// whether the rate-limit headers come with it (Scaleway sends none).
    RateLimited {
        /// Whether the provider's rate-limit headers are sent.
        headers: bool,
    },
}

/// What a rule sees of a request: enough to pick it, nothing to change it.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The HTTP method.
    pub method: &'a Method,
    /// The path below the fake's base path (`/servers/1` for `/v1/servers/1`).
    pub path: &'a str,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// The request body.
    pub body: &'a [u8],
}

/// A predicate over requests, for protocols that name the operation in the body (EC2's `Action`).
pub type Predicate = Arc<dyn Fn(&RequestView<'_>) -> bool + Send + Sync>;

/// Which requests a rule picks.
#[derive(Clone)]
pub enum Matcher {
    /// The n-th request to arrive (1-based, every endpoint counted).
    Nth(u64),
    /// A method (`None`: any) and a path pattern: the pattern's segments must start the path's,
    /// `*` standing for any one segment (`/servers` picks `/servers/7/actions/poweron` too).
    Route {
        /// The method, or any.
        method: Option<Method>,
        /// The pattern's segments.
        segments: Vec<String>,
    },
    /// Any request the predicate accepts.
    When(Predicate),
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Nth(n) => write!(f, "Nth({n})"),
            Matcher::Route { method, segments } => {
                write!(f, "Route({method:?} /{})", segments.join("/"))
            }
            Matcher::When(_) => f.write_str("When(..)"),
        }
    }
}

impl Matcher {
    /// A method (`"*"` or `""` for any) and a path pattern, with or without the fake's base path
    /// (`base`, e.g. `/v1`).
    pub fn route(method: &str, pattern: &str, base: &str) -> Matcher {
        let pattern = pattern.strip_prefix(base).unwrap_or(pattern);
        let method = match method {
            "" | "*" => None,
            m => Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok(),
        };
        Matcher::Route {
            method,
            segments: split(pattern).map(str::to_owned).collect(),
        }
    }

    fn hits(&self, n: u64, req: &RequestView<'_>) -> bool {
        match self {
            Matcher::Nth(k) => *k == n,
            Matcher::Route { method, segments } => {
                let mut path = split(req.path);
                method.as_ref().is_none_or(|m| m == req.method)
                    && segments
                        .iter()
                        .all(|want| path.next().is_some_and(|s| want == "*" || want == s))
            }
            Matcher::When(p) => p(req),
        }
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// A matcher, what it does, and how many more times (`usize::MAX`: for good).
#[derive(Debug, Clone)]
pub struct Rule {
    /// Which requests.
    pub matcher: Matcher,
    /// What happens to them.
    pub fault: Fault,
    /// How many more requests it picks.
    pub remaining: usize,
}

/// The pending rules, first added first asked.
#[derive(Debug, Default)]
pub(crate) struct Rules(Vec<Rule>);

impl Rules {
    pub(crate) fn push(&mut self, rule: Rule) {
        self.0.push(rule);
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    /// The fault for request number `n`, spending one use of the rule that picks it.
    pub(crate) fn pick(&mut self, n: u64, req: &RequestView<'_>) -> Option<Fault> {
        let rule = self
            .0
            .iter_mut()
            .find(|r| r.remaining > 0 && r.matcher.hits(n, req))?;
        rule.remaining -= 1;
        let fault = rule.fault;
        self.0.retain(|r| r.remaining > 0);
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(method: &'a Method, path: &'a str) -> RequestView<'a> {
        RequestView {
            method,
            path,
            query: None,
            body: b"",
        }
    }

    #[test]
    fn routes_match_by_segments_and_rules_run_out() {
        let mut rules = Rules::default();
        rules.push(Rule {
            matcher: Matcher::route("delete", "/v1/servers/*", "/v1"),
            fault: Fault::Drop,
            remaining: 2,
        });
        let del = Method::DELETE;
        assert_eq!(rules.pick(1, &view(&Method::GET, "/servers/1")), None);
        assert_eq!(rules.pick(2, &view(&del, "/servers")), None);
        assert_eq!(rules.pick(3, &view(&del, "/servers_x/1")), None);
        assert_eq!(rules.pick(4, &view(&del, "/servers/1")), Some(Fault::Drop));
        assert_eq!(
            rules.pick(5, &view(&del, "/servers/2/x")),
            Some(Fault::Drop)
        );
        assert_eq!(rules.pick(6, &view(&del, "/servers/3")), None);
        rules.push(Rule {
            matcher: Matcher::Nth(7),
            fault: Fault::Status(500, "x"),
            remaining: 1,
        });
        assert_eq!(
            rules.pick(7, &view(&Method::GET, "/")),
            Some(Fault::Status(500, "x"))
        );
    }
}
