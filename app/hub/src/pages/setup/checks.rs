//! `POST /setup/{step}/check`: the wizard steps' check buttons. The YoLink step tests the
//! applied source ([`crate::api::setup_checks::yolink`]); the cameras step finds ONVIF
//! cameras ([`crate::api::setup_checks::cameras`]) and lists them, each profile with an "Add"
//! button that posts back here and re-renders the step with the camera appended to the
//! `capture.cameras` editor (not staged: "Save and apply" does that). Plain forms, no script.

use std::time::Duration;

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use watchpost_config::toml;

use super::{step, step_page, step_sections, unknown_step};
use crate::api::setup_checks::{cameras, yolink};
use crate::pages::layout::FlashQuery;
use crate::pages::layout::{self, PageCtx, csrf_input};
use crate::pages::settings::{Edits, back_with};
use crate::state::HubState;

/// The editor field the cameras step's "Add" fills.
const CAMERAS_KEY: &str = "capture.cameras";

/// `POST /setup/{step}/check`.
pub async fn post_check(
    State(state): State<HubState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let Some((index, s)) = step(&id) else {
        return unknown_step(&id);
    };
    let field = |name: &str| {
        form.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mut edits = Edits::default();
    let result = match s.id {
        "yolink" => yolink_result(&state).await,
        "cameras" => match field("add_url") {
            Some(url) => match add_camera(&state, &url, field("add_name").as_deref()).await {
                Ok((text, cam_id)) => {
                    edits.texts.insert(CAMERAS_KEY.to_string(), text);
                    layout::notice(
                        layout::Flash::Info,
                        &format!(
                            "Camera `{cam_id}` is in the form below: check it, then Save and apply."
                        ),
                    )
                }
                Err(e) => layout::notice(layout::Flash::Error, &e),
            },
            None => {
                let req = cameras::DiscoverRequest {
                    hosts: field("hosts")
                        .map(|h| h.split(',').map(|x| x.trim().to_string()).collect())
                        .unwrap_or_default(),
                    user: field("user"),
                    password: form
                        .iter()
                        .find(|(k, _)| k == "password")
                        .map(|(_, v)| v.clone()),
                    ..cameras::DiscoverRequest::default()
                };
                match cameras::run(req).await {
                    Ok(found) => camera_list(&ctx, &found),
                    Err(e) => layout::notice(layout::Flash::Error, &e.message),
                }
            }
        },
        _ => {
            return back_with(
                &format!("/setup/{}", s.id),
                Err(format!("The step `{}` has no check.", s.title)),
            );
        }
    };
    step_page(
        &state,
        &ctx,
        index,
        &edits,
        StatusCode::OK,
        &FlashQuery::default(),
        Some(&result),
    )
    .await
}

async fn yolink_result(state: &HubState) -> Markup {
    match yolink::run(
        state,
        None,
        Duration::from_millis(yolink::DEFAULT_TIMEOUT_MS),
    )
    .await
    {
        Ok(v) if v.ok => html! {
            div class="notice ok" role="status" id="check-result" {
                "Connected: " (v.devices.unwrap_or(0)) " devices, token, API and MQTT answered in " (v.latency_ms) " ms."
            }
        },
        Ok(v) => html! {
            div class="notice error" role="alert" id="check-result" {
                "Failed at the " strong { (stage_name(v.stage)) } " step after " (v.latency_ms) " ms: "
                (v.error.unwrap_or_default())
            }
        },
        Err(e) => html! {
            div class="notice error" role="alert" id="check-result" { (e.message) }
        },
    }
}

fn stage_name(s: yolink::TestStage) -> &'static str {
    match s {
        yolink::TestStage::Token => "token",
        yolink::TestStage::Api => "API",
        yolink::TestStage::Mqtt => "MQTT",
    }
}

/// The found cameras, each profile with an "Add" form.
pub fn camera_list(ctx: &PageCtx, found: &[cameras::DiscoveredCamera]) -> Markup {
    html! {
        section id="check-result" aria-label="Cameras found" {
            @if found.is_empty() {
                p class="notice" role="status" { "No ONVIF camera answered." }
            } @else {
                p role="status" { (found.len()) " camera(s) answered:" }
                ul class="cameras-found" {
                    @for c in found {
                        li {
                            strong { (c.name.as_deref().unwrap_or("(no name)")) }
                            @if let Some(h) = &c.hardware { " (" (h) ")" }
                            " " code { (c.xaddr) }
                            @if let Some(e) = &c.error { p class="error" { (e) } }
                            ul {
                                @for p in &c.profiles {
                                    li {
                                        (p.name) " " (p.encoding.as_deref().unwrap_or(""))
                                        @if let (Some(w), Some(h)) = (p.width, p.height) { " " (w) "×" (h) }
                                        @match &p.stream_uri {
                                            Some(uri) => {
                                                " " code { (uri) }
                                                form method="post" action="/setup/cameras/check" class="inline" {
                                                    (csrf_input(ctx))
                                                    input type="hidden" name="add_url" value=(uri);
                                                    input type="hidden" name="add_name" value=(c.name.as_deref().unwrap_or(&p.name));
                                                    button type="submit" class="secondary" { "Add" }
                                                }
                                            }
                                            None => { " " span class="muted" { "(no stream URL)" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The `capture.cameras` editor text with a camera for `url` appended, and its id.
async fn add_camera(
    state: &HubState,
    url: &str,
    name: Option<&str>,
) -> Result<(String, String), String> {
    if !url.starts_with("rtsp://") && !url.starts_with("rtsps://") {
        return Err(format!("`{url}` is not an RTSP URL."));
    }
    let view = crate::api::settings::load_view(state)
        .await
        .map_err(|e| format!("The settings cannot be read: {}", e.message))?;
    let (_, s) = step("cameras").ok_or("no cameras step")?;
    let current = step_sections(&view.effective, s.keys)
        .into_iter()
        .flat_map(|x| x.fields)
        .find(|f| f.key == CAMERAS_KEY)
        .map(|f| f.text)
        .unwrap_or_default();
    appended(&current, url, name)
}

/// `current` (a TOML document whose key is `cameras`) with one more camera.
pub fn appended(current: &str, url: &str, name: Option<&str>) -> Result<(String, String), String> {
    let mut doc: toml::Table = toml::from_str(current)
        .map_err(|e| format!("The cameras in the form are not valid TOML: {e}"))?;
    let list = doc
        .entry("cameras")
        .or_insert_with(|| toml::Value::Array(Vec::new()));
    let toml::Value::Array(list) = list else {
        return Err("`cameras` in the form is not a list.".to_string());
    };
    let taken: Vec<String> = list
        .iter()
        .filter_map(|c| c.get("id")?.as_str().map(str::to_string))
        .collect();
    let name = name.unwrap_or("camera");
    let base: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let base = if base.is_empty() {
        "camera".to_string()
    } else {
        base
    };
    let id = (1..)
        .map(|n| {
            if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            }
        })
        .find(|c| !taken.contains(c))
        .unwrap_or(base);
    let mut source = toml::Table::new();
    source.insert("type".into(), toml::Value::String("rtsp".into()));
    source.insert("url".into(), toml::Value::String(url.to_string()));
    let mut cam = toml::Table::new();
    cam.insert("id".into(), toml::Value::String(id.clone()));
    cam.insert("name".into(), toml::Value::String(name.to_string()));
    cam.insert("source".into(), toml::Value::Table(source));
    list.push(toml::Value::Table(cam));
    let text = toml::to_string(&doc).map_err(|e| e.to_string())?;
    Ok((text, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_found_camera_is_appended_with_a_free_id() {
        let (text, id) = appended(
            "cameras = []\n",
            "rtsp://10.0.0.5:554/main",
            Some("Front Door"),
        )
        .unwrap();
        assert_eq!(id, "front-door");
        let doc: toml::Table = toml::from_str(&text).unwrap();
        let cams = doc["cameras"].as_array().unwrap();
        assert_eq!(
            cams[0]["source"]["url"].as_str(),
            Some("rtsp://10.0.0.5:554/main")
        );
        assert_eq!(cams[0]["source"]["type"].as_str(), Some("rtsp"));
        let (text, id) = appended(&text, "rtsp://10.0.0.6/x", Some("Front Door")).unwrap();
        assert_eq!(id, "front-door-2");
        assert!(text.contains("rtsp://10.0.0.5:554/main"));
        assert!(appended("cameras = 3", "rtsp://x", None).is_err());
    }
}
