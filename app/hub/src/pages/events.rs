//! `/events`: the event log, filtered (kind prefix, source, least severity, time range) with a
//! plain GET form and paginated, through the store's query (as `GET /api/v1/events`). Times
//! are UTC, as the log stores them.

use std::num::NonZeroU32;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use watchpost_store::{Event, EventFilter, EventQuery, Order, Page, Severity};

use crate::pages::fmt;
use crate::pages::layout::{self, PageCtx};
use crate::state::HubState;

/// Events a page.
pub const PER_PAGE: u32 = 50;

/// The filter form's fields, as typed (empty fields are no filter).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventsForm {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub page: Option<u32>,
}

impl EventsForm {
    /// The store query of the form, and the problems with fields that do not parse (those are
    /// left out of the filter).
    pub fn query(&self, limit: u32) -> (EventQuery, Vec<String>) {
        let mut problems = Vec::new();
        let mut time = |label: &str, s: &str| {
            if s.trim().is_empty() {
                return None;
            }
            let t = fmt::parse_datetime_local(s);
            if t.is_none() {
                problems.push(format!("{label} `{s}` is not a date and time"));
            }
            t
        };
        let since_us = time("From", &self.since);
        let until_us = time("Until", &self.until);
        let min_severity = match self.severity.trim() {
            "" => None,
            s => match s.parse::<Severity>() {
                Ok(v) => Some(v),
                Err(_) => {
                    problems.push(format!("unknown severity `{s}`"));
                    None
                }
            },
        };
        let nonempty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let query = EventQuery {
            filter: EventFilter {
                since_us,
                until_us,
                kind_prefix: nonempty(&self.kind),
                source: nonempty(&self.source),
                min_severity,
            },
            order: Order::NewestFirst,
            page: NonZeroU32::new(self.page.unwrap_or(1).clamp(1, 1_000_000))
                .unwrap_or(NonZeroU32::MIN),
            limit: NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN),
        };
        (query, problems)
    }

    /// The query string of page `page` with the same filter.
    pub fn page_href(&self, page: u64) -> String {
        let mut q = format!("/events?page={page}");
        for (k, v) in [
            ("kind", &self.kind),
            ("source", &self.source),
            ("severity", &self.severity),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !v.trim().is_empty() {
                q.push_str(&format!("&{k}={}", layout::url_encode(v.trim())));
            }
        }
        q
    }
}

/// The latest `n` events, newest first (dashboard).
pub async fn latest(state: &HubState, n: u32) -> Option<Vec<Event>> {
    let query = EventQuery {
        limit: NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN),
        ..EventQuery::default()
    };
    state
        .blocking(move |store| store.events().query(&query))
        .await
        .ok()
        .map(|p| p.items)
}

fn severity_class(s: Severity) -> &'static str {
    match s {
        Severity::Info | Severity::Notice => "",
        Severity::Warning => "warn",
        Severity::Alarm | Severity::Critical => "bad",
    }
}

/// A table of events (this page and the dashboard).
pub fn table(events: &[Event]) -> Markup {
    html! {
        @if events.is_empty() {
            p class="muted" { "No events." }
        } @else {
            (layout::scroll_table(
                "Events, newest first",
                html! {
                    th scope="col" { "Time (UTC)" }
                    th scope="col" { "Severity" }
                    th scope="col" { "Kind" }
                    th scope="col" { "Source" }
                },
                html! {
                    @for e in events {
                        tr {
                            th scope="row" { (fmt::time_us(e.ts_us).trim_end_matches(" UTC")) }
                            td class=(severity_class(e.severity)) { (e.severity.as_str()) }
                            td { (e.kind) }
                            td { (e.source) }
                        }
                    }
                },
            ))
        }
    }
}

pub fn render(form: &EventsForm, page: Option<&Page<Event>>, problems: &[String]) -> Markup {
    html! {
        form method="get" action="/events" class="card" aria-label="Filter events" {
            div class="filters" {
                (layout::field("Kind starts with", "kind", "text", &form.kind, None))
                (layout::field("Source", "source", "text", &form.source, None))
                div class="field" {
                    label for="f-severity" { "At least" }
                    select id="f-severity" name="severity" {
                        option value="" selected[form.severity.is_empty()] { "any severity" }
                        @for s in Severity::ALL {
                            option value=(s.as_str()) selected[form.severity == s.as_str()] { (s.as_str()) }
                        }
                    }
                }
                (layout::field("From (UTC)", "since", "datetime-local", &form.since, None))
                (layout::field("Until (UTC)", "until", "datetime-local", &form.until, None))
                div class="field" { button type="submit" { "Filter" } }
            }
        }
        @for p in problems { (layout::notice(layout::Flash::Error, p)) }
        @match page {
            None => (layout::notice(layout::Flash::Error, "The event log cannot be read right now.")),
            Some(p) => {
                p { (p.pagination.total) " events" @if p.pagination.total_pages > 1 {
                    ", page " (p.pagination.page) " of " (p.pagination.total_pages) } }
                (table(&p.items))
                nav class="pager" aria-label="Pages" {
                    @if p.pagination.page > 1 {
                        a href=(form.page_href(u64::from(p.pagination.page) - 1)) rel="prev" { "← Newer" }
                    }
                    @if u64::from(p.pagination.page) < p.pagination.total_pages {
                        a href=(form.page_href(u64::from(p.pagination.page) + 1)) rel="next" { "Older →" }
                    }
                }
            }
        }
    }
}

/// `GET /events`.
pub async fn get(
    State(state): State<HubState>,
    ctx: PageCtx,
    form: Result<Query<EventsForm>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // A query that does not parse (a page number that is not one) shows the unfiltered log.
    let form = form.map(|q| q.0).unwrap_or_default();
    let (query, problems) = form.query(PER_PAGE);
    let page = state
        .blocking(move |store| store.events().query(&query))
        .await
        .ok();
    layout::page("Events", &ctx, render(&form, page.as_ref(), &problems))
}

#[cfg(test)]
mod tests {
    use watchpost_store::Pagination;

    use super::*;

    #[test]
    fn the_form_becomes_a_store_query() {
        let f = EventsForm {
            kind: " alarm.".into(),
            severity: "warning".into(),
            since: "2026-12-07T18:20".into(),
            until: "soon".into(),
            page: Some(3),
            ..Default::default()
        };
        let (q, problems) = f.query(50);
        assert_eq!(q.filter.kind_prefix.as_deref(), Some("alarm."));
        assert_eq!(q.filter.source, None);
        assert_eq!(q.filter.min_severity, Some(Severity::Warning));
        assert_eq!(q.filter.since_us, Some(1_796_667_600_000_000));
        assert_eq!(q.filter.until_us, None);
        assert_eq!(problems.len(), 1);
        assert_eq!(q.page.get(), 3);
        assert_eq!(
            f.page_href(4),
            "/events?page=4&kind=alarm.&severity=warning&since=2026-12-07T18%3A20&until=soon"
        );
    }

    #[test]
    fn renders_empty_and_failed_logs() {
        let empty = Page {
            items: vec![],
            pagination: Pagination {
                page: 1,
                limit: 50,
                total: 0,
                total_pages: 0,
            },
        };
        let h = render(&EventsForm::default(), Some(&empty), &[]).into_string();
        assert!(h.contains("No events.") && h.contains("<label for=\"f-kind\">"));
        let h = render(&EventsForm::default(), None, &[]).into_string();
        assert!(h.contains("cannot be read"));
    }
}
