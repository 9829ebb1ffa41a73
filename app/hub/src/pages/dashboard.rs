//! `/`: the appliance at a glance — worker health and the board LED, sensors (live), the
//! Neasmart zones, the cameras, the latest events, the alarm queues and the system. Each
//! section is the same markup as on its own page.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use watchpost_alarm::ReceiverView;
use watchpost_neasmart::state::ZoneState;
use watchpost_store::Event;

use crate::api::cameras::CameraView;
use crate::pages::alarms::{self, SensorRow};
use crate::pages::layout::{self, PageCtx};
use crate::pages::system::{self, Disk, Supervised};
use crate::pages::{cameras, events, fmt, zones};
use crate::state::HubState;

#[derive(Debug, Clone, Default)]
pub struct DashboardData {
    pub version: String,
    pub supervised: Option<Supervised>,
    pub sensors: Option<Vec<SensorRow>>,
    pub zones: Vec<ZoneState>,
    pub cameras: Vec<CameraView>,
    /// `None`: the event log could not be read.
    pub events: Option<Vec<Event>>,
    pub queues: Vec<ReceiverView>,
    pub disk: Disk,
}

pub async fn gather(state: &HubState) -> DashboardData {
    let (supervised, events, disk) = tokio::join!(
        system::supervised(state),
        events::latest(state, 10),
        system::disk_of(state),
    );
    DashboardData {
        version: state.version.to_string(),
        supervised,
        sensors: alarms::sensor_rows(state),
        zones: zones::visible(state.neasmart.active_zones()),
        cameras: state
            .config
            .capture
            .cameras
            .iter()
            .map(|c| crate::api::cameras::camera_view(state, c))
            .collect(),
        events,
        queues: if state.alarm.running() {
            state.alarm.queues()
        } else {
            Vec::new()
        },
        disk,
    }
}

fn zones_summary(zones: &[ZoneState]) -> Markup {
    html! {
        @if zones.is_empty() {
            p class="muted" { "No zone has reported a temperature yet." }
        } @else {
            (layout::live_scroll_table(
                "Heating zones",
                html! {
                    th scope="col" { "Zone" }
                    th scope="col" class="num" { "Temperature" }
                    th scope="col" class="num" { "Setpoint" }
                    th scope="col" { "State" }
                },
                html! {
                    @for z in zones {
                        @let id = zones::zone_label(z);
                        tr data-zone=(id) {
                            th scope="row" { a href="/zones" { (id) } }
                            td class="num" { span data-field="temperature" { (fmt::opt(z.temperature, "")) } " °C" }
                            td class="num" { span data-field="setpoint" { (fmt::opt(z.setpoint, "")) } " °C" }
                            td data-field="state" { (fmt::label(&z.state_name)) }
                        }
                    }
                },
            ))
        }
    }
}

pub fn render(data: &DashboardData) -> Markup {
    let sup = data.supervised.as_ref();
    html! {
        div class="grid" {
            section class="card" aria-labelledby="health-h" {
                h2 id="health-h" { "Health" }
                (system::board(sup))
                (system::workers_table(sup))
            }
            section class="card" aria-labelledby="sensors-h" {
                h2 id="sensors-h" { a href="/alarms" { "Sensors" } }
                (alarms::sensors_table(data.sensors.as_deref()))
            }
            section class="card" aria-labelledby="zones-h" {
                h2 id="zones-h" { a href="/zones" { "Heating zones" } }
                (zones_summary(&data.zones))
            }
            section class="card" aria-labelledby="queues-h" {
                h2 id="queues-h" { a href="/alarms" { "Alarm delivery" } }
                (alarms::queues_table(&data.queues, None))
            }
        }
        section class="card" aria-labelledby="cams-h" {
            h2 id="cams-h" { a href="/cameras" { "Cameras" } }
            @if data.cameras.is_empty() {
                p class="muted" { "No cameras are configured." }
            } @else {
                div class="cams" { @for c in &data.cameras { (cameras::figure(c, false)) } }
            }
        }
        div class="grid" {
            section class="card" aria-labelledby="ev-h" {
                h2 id="ev-h" { a href="/events" { "Latest events" } }
                @match &data.events {
                    None => p class="muted" { "The event log cannot be read right now." },
                    Some(ev) => (events::table(ev)),
                }
            }
            section class="card" aria-labelledby="sys-h" {
                h2 id="sys-h" { a href="/system" { "System" } }
                (system::summary(&data.version, sup, &data.disk))
            }
        }
    }
}

/// `GET /`.
pub async fn get(State(state): State<HubState>, ctx: PageCtx) -> Response {
    let data = gather(&state).await;
    layout::live_page("Dashboard", &ctx, render(&data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_empty_appliance() {
        let h = render(&DashboardData::default()).into_string();
        for s in [
            "worker health is unknown",
            "sensor states are unknown",
            "No zone has reported",
            "No cameras are configured",
            "cannot be read",
            "No alarm receivers",
        ] {
            assert!(h.contains(s), "{s}");
        }
    }

    #[test]
    fn renders_sensors_and_zones_with_live_hooks() {
        let data = DashboardData {
            sensors: Some(vec![SensorRow {
                id: "d1".into(),
                name: "Front door".into(),
                kind: "door".into(),
                state: "closed".into(),
                alarm: false,
                online: true,
                battery: None,
                changed: None,
            }]),
            zones: vec![crate::pages::zones::tests::zone(1, 2, Some(20.5))],
            events: Some(vec![]),
            ..Default::default()
        };
        let h = render(&data).into_string();
        assert!(h.contains("data-sensor=\"d1\"") && h.contains("data-zone=\"1.2\""));
        assert!(h.contains("aria-live=\"polite\""));
    }
}
