//! Operations: the request's Body element turned into a typed [`Operation`]. Dispatch is on the
//! element's namespace and local name only, never on HTTP headers or the endpoint path
//! (clients such as Synology send no SOAP action at all).

use crate::ns;
use crate::soap::Fault;
use crate::xml::Element;

/// `GetCapabilities` categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    All,
    Device,
    Media,
    Events,
    /// A category this device does not offer (PTZ, Imaging, Analytics).
    Other,
}

/// A request this device understands (or knows it does not support).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    // Device service.
    GetSystemDateAndTime,
    GetDeviceInformation,
    GetCapabilities {
        category: Category,
    },
    GetServices {
        include_capability: bool,
    },
    GetDeviceServiceCapabilities,
    GetScopes,
    GetNetworkInterfaces,
    GetHostname,
    GetNetworkProtocols,
    GetDiscoveryMode,
    /// Restarts the appliance (admin only).
    SystemReboot,
    /// The clock is kept by NTP: answered without changing it (admin only).
    SetSystemDateAndTime {
        /// `DateTimeType` is `Manual` (else `NTP`).
        manual: bool,
        /// The requested UTC time, Unix seconds, when one was given.
        utc: Option<i64>,
    },
    // Media service.
    GetMediaServiceCapabilities,
    GetProfiles,
    GetProfile {
        token: String,
    },
    GetStreamUri {
        token: String,
        stream: String,
        protocol: String,
    },
    GetSnapshotUri {
        token: String,
    },
    GetVideoSources,
    GetVideoSourceConfigurations,
    GetVideoSourceConfiguration {
        token: String,
    },
    GetCompatibleVideoSourceConfigurations {
        profile: String,
    },
    GetVideoSourceConfigurationOptions,
    GetVideoEncoderConfigurations,
    GetVideoEncoderConfiguration {
        token: String,
    },
    GetCompatibleVideoEncoderConfigurations {
        profile: String,
    },
    GetVideoEncoderConfigurationOptions {
        config: Option<String>,
        profile: Option<String>,
    },
    GetGuaranteedNumberOfVideoEncoderInstances {
        config: String,
    },
    /// Audio getters: this device has no audio, so each answers with an empty list.
    EmptyAudioList {
        response: &'static str,
        item: &'static str,
    },
    CreateProfile {
        name: String,
    },
    // Event service.
    GetEventServiceCapabilities,
    GetEventProperties,
    CreatePullPointSubscription {
        initial_termination: Option<String>,
    },
    // Pull point and subscription manager (addressed by the subscription's URL).
    PullMessages {
        timeout_s: i64,
        limit: u32,
    },
    SetSynchronizationPoint,
    Renew {
        termination: Option<String>,
    },
    Unsubscribe,
    /// Anything else: answered with an ActionNotSupported fault.
    Unsupported {
        ns: String,
        name: String,
    },
}

impl Operation {
    /// Operations that answer without authentication. GetSystemDateAndTime must (clients
    /// use it to learn the clock offset they need for the digest); the others are the
    /// discovery-time calls NVRs make before they have credentials.
    pub fn is_pre_auth(&self) -> bool {
        matches!(
            self,
            Operation::GetSystemDateAndTime
                | Operation::GetCapabilities { .. }
                | Operation::GetServices { .. }
                | Operation::GetDeviceServiceCapabilities
                | Operation::GetHostname
        )
    }

    /// Operations that change the appliance: only users with the admin role may call them.
    pub fn needs_admin(&self) -> bool {
        matches!(
            self,
            Operation::SystemReboot | Operation::SetSystemDateAndTime { .. }
        )
    }

    /// A short name for logs and metric labels.
    pub fn name(&self) -> &str {
        match self {
            Operation::GetSystemDateAndTime => "GetSystemDateAndTime",
            Operation::GetDeviceInformation => "GetDeviceInformation",
            Operation::GetCapabilities { .. } => "GetCapabilities",
            Operation::GetServices { .. } => "GetServices",
            Operation::GetDeviceServiceCapabilities => "GetServiceCapabilities",
            Operation::GetScopes => "GetScopes",
            Operation::GetNetworkInterfaces => "GetNetworkInterfaces",
            Operation::GetHostname => "GetHostname",
            Operation::GetNetworkProtocols => "GetNetworkProtocols",
            Operation::GetDiscoveryMode => "GetDiscoveryMode",
            Operation::SystemReboot => "SystemReboot",
            Operation::SetSystemDateAndTime { .. } => "SetSystemDateAndTime",
            Operation::GetMediaServiceCapabilities => "GetServiceCapabilities",
            Operation::GetProfiles => "GetProfiles",
            Operation::GetProfile { .. } => "GetProfile",
            Operation::GetStreamUri { .. } => "GetStreamUri",
            Operation::GetSnapshotUri { .. } => "GetSnapshotUri",
            Operation::GetVideoSources => "GetVideoSources",
            Operation::GetVideoSourceConfigurations => "GetVideoSourceConfigurations",
            Operation::GetVideoSourceConfiguration { .. } => "GetVideoSourceConfiguration",
            Operation::GetCompatibleVideoSourceConfigurations { .. } => {
                "GetCompatibleVideoSourceConfigurations"
            }
            Operation::GetVideoSourceConfigurationOptions => "GetVideoSourceConfigurationOptions",
            Operation::GetVideoEncoderConfigurations => "GetVideoEncoderConfigurations",
            Operation::GetVideoEncoderConfiguration { .. } => "GetVideoEncoderConfiguration",
            Operation::GetCompatibleVideoEncoderConfigurations { .. } => {
                "GetCompatibleVideoEncoderConfigurations"
            }
            Operation::GetVideoEncoderConfigurationOptions { .. } => {
                "GetVideoEncoderConfigurationOptions"
            }
            Operation::GetGuaranteedNumberOfVideoEncoderInstances { .. } => {
                "GetGuaranteedNumberOfVideoEncoderInstances"
            }
            Operation::EmptyAudioList { response, .. } => {
                response.strip_suffix("Response").unwrap_or(response)
            }
            Operation::CreateProfile { .. } => "CreateProfile",
            Operation::GetEventServiceCapabilities => "GetServiceCapabilities",
            Operation::GetEventProperties => "GetEventProperties",
            Operation::CreatePullPointSubscription { .. } => "CreatePullPointSubscription",
            Operation::PullMessages { .. } => "PullMessages",
            Operation::SetSynchronizationPoint => "SetSynchronizationPoint",
            Operation::Renew { .. } => "Renew",
            Operation::Unsubscribe => "Unsubscribe",
            Operation::Unsupported { name, .. } => name,
        }
    }
}

fn required(el: &Element, field: &str) -> Result<String, Fault> {
    el.child_text(field)
        .map(str::to_string)
        .ok_or_else(|| Fault::invalid_arg(format!("{} needs {field}", el.name)))
}

/// Whether the Body's element names an operation that answers without authentication (see
/// [`Operation::is_pre_auth`]); decided before any argument is read, so a request without
/// credentials learns nothing from argument checks.
pub fn is_pre_auth_element(body: &Element) -> bool {
    body.ns == ns::DEVICE
        && matches!(
            body.name.as_str(),
            "GetSystemDateAndTime"
                | "GetCapabilities"
                | "GetServices"
                | "GetServiceCapabilities"
                | "GetHostname"
        )
}

fn invalid_date_time(why: impl Into<String>) -> Fault {
    Fault::new(
        crate::soap::FaultCode::Sender,
        &["InvalidArgVal", "InvalidDateTime"],
        why,
    )
}

fn set_date_and_time(body: &Element) -> Result<Operation, Fault> {
    let manual = match body.child_text("DateTimeType") {
        Some("Manual") => true,
        Some("NTP") => false,
        other => {
            return Err(Fault::invalid_arg(format!(
                "DateTimeType must be Manual or NTP, not {:?}",
                other.unwrap_or_default()
            )));
        }
    };
    let utc = match body.child_local("UTCDateTime") {
        None => None,
        Some(dt) => {
            let num = |parent: &str, field: &str| -> Result<i64, Fault> {
                dt.child_local(parent)
                    .and_then(|p| p.child_text(field))
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .ok_or_else(|| invalid_date_time(format!("UTCDateTime needs {parent}/{field}")))
            };
            let year =
                i32::try_from(num("Date", "Year")?).map_err(|_| invalid_date_time("year"))?;
            let month = u8::try_from(num("Date", "Month")?)
                .ok()
                .and_then(|m| time::Month::try_from(m).ok())
                .ok_or_else(|| invalid_date_time("month out of range"))?;
            let day = u8::try_from(num("Date", "Day")?).map_err(|_| invalid_date_time("day"))?;
            let date = time::Date::from_calendar_date(year, month, day)
                .map_err(|e| invalid_date_time(format!("date: {e}")))?;
            let [h, m, sec] = [
                num("Time", "Hour")?,
                num("Time", "Minute")?,
                num("Time", "Second")?,
            ]
            .map(|v| u8::try_from(v).unwrap_or(u8::MAX));
            let t = time::Time::from_hms(h, m, sec)
                .map_err(|e| invalid_date_time(format!("time: {e}")))?;
            Some(date.with_time(t).assume_utc().unix_timestamp())
        }
    };
    if manual && utc.is_none() {
        return Err(invalid_date_time("DateTimeType Manual needs UTCDateTime"));
    }
    Ok(Operation::SetSystemDateAndTime { manual, utc })
}

/// Reads the operation from the Body's first element.
pub fn parse_operation(body: &Element) -> Result<Operation, Fault> {
    let name = body.name.as_str();
    let op = if body.ns == ns::DEVICE {
        match name {
            "GetSystemDateAndTime" => Operation::GetSystemDateAndTime,
            "GetDeviceInformation" => Operation::GetDeviceInformation,
            "GetCapabilities" => {
                // Category may repeat; any of All/Device/Media answers, absent means All.
                let cats: Vec<&str> = body
                    .children
                    .iter()
                    .filter(|c| c.name == "Category")
                    .map(|c| c.text.as_str())
                    .collect();
                let both = cats.contains(&"Device") && cats.contains(&"Media");
                let category = if cats.is_empty() || cats.contains(&"All") || both {
                    Category::All
                } else if cats.contains(&"Device") {
                    Category::Device
                } else if cats.contains(&"Media") {
                    Category::Media
                } else if cats.contains(&"Events") {
                    Category::Events
                } else {
                    Category::Other
                };
                Operation::GetCapabilities { category }
            }
            "GetServices" => Operation::GetServices {
                include_capability: body
                    .child_text("IncludeCapability")
                    .is_some_and(|v| v == "true" || v == "1"),
            },
            "GetServiceCapabilities" => Operation::GetDeviceServiceCapabilities,
            "GetScopes" => Operation::GetScopes,
            "GetNetworkInterfaces" => Operation::GetNetworkInterfaces,
            "GetHostname" => Operation::GetHostname,
            "GetNetworkProtocols" => Operation::GetNetworkProtocols,
            "GetDiscoveryMode" => Operation::GetDiscoveryMode,
            "SystemReboot" => Operation::SystemReboot,
            "SetSystemDateAndTime" => set_date_and_time(body)?,
            _ => unsupported(body),
        }
    } else if body.ns == ns::MEDIA {
        match name {
            "GetServiceCapabilities" => Operation::GetMediaServiceCapabilities,
            "GetProfiles" => Operation::GetProfiles,
            "GetProfile" => Operation::GetProfile {
                token: required(body, "ProfileToken")?,
            },
            "GetStreamUri" => {
                let setup = body.child_local("StreamSetup");
                Operation::GetStreamUri {
                    token: required(body, "ProfileToken")?,
                    stream: setup
                        .and_then(|s| s.child_text("Stream"))
                        .unwrap_or("RTP-Unicast")
                        .to_string(),
                    protocol: setup
                        .and_then(|s| s.child_local("Transport"))
                        .and_then(|t| t.child_text("Protocol"))
                        .unwrap_or("RTSP")
                        .to_string(),
                }
            }
            "GetSnapshotUri" => Operation::GetSnapshotUri {
                token: required(body, "ProfileToken")?,
            },
            "GetVideoSources" => Operation::GetVideoSources,
            "GetVideoSourceConfigurations" => Operation::GetVideoSourceConfigurations,
            "GetVideoSourceConfiguration" => Operation::GetVideoSourceConfiguration {
                token: required(body, "ConfigurationToken")?,
            },
            "GetCompatibleVideoSourceConfigurations" => {
                Operation::GetCompatibleVideoSourceConfigurations {
                    profile: required(body, "ProfileToken")?,
                }
            }
            "GetVideoSourceConfigurationOptions" => Operation::GetVideoSourceConfigurationOptions,
            "GetVideoEncoderConfigurations" => Operation::GetVideoEncoderConfigurations,
            "GetVideoEncoderConfiguration" => Operation::GetVideoEncoderConfiguration {
                token: required(body, "ConfigurationToken")?,
            },
            "GetCompatibleVideoEncoderConfigurations" => {
                Operation::GetCompatibleVideoEncoderConfigurations {
                    profile: required(body, "ProfileToken")?,
                }
            }
            "GetVideoEncoderConfigurationOptions" => {
                Operation::GetVideoEncoderConfigurationOptions {
                    config: body.child_text("ConfigurationToken").map(str::to_string),
                    profile: body.child_text("ProfileToken").map(str::to_string),
                }
            }
            "GetGuaranteedNumberOfVideoEncoderInstances" => {
                Operation::GetGuaranteedNumberOfVideoEncoderInstances {
                    config: required(body, "ConfigurationToken")?,
                }
            }
            "GetAudioSources" => Operation::EmptyAudioList {
                response: "GetAudioSourcesResponse",
                item: "AudioSources",
            },
            "GetAudioSourceConfigurations" => Operation::EmptyAudioList {
                response: "GetAudioSourceConfigurationsResponse",
                item: "Configurations",
            },
            "GetAudioEncoderConfigurations" => Operation::EmptyAudioList {
                response: "GetAudioEncoderConfigurationsResponse",
                item: "Configurations",
            },
            "GetAudioOutputs" => Operation::EmptyAudioList {
                response: "GetAudioOutputsResponse",
                item: "AudioOutputs",
            },
            "CreateProfile" => Operation::CreateProfile {
                name: body.child_text("Name").unwrap_or_default().to_string(),
            },
            _ => unsupported(body),
        }
    } else if body.ns == ns::EVENTS {
        match name {
            "GetServiceCapabilities" => Operation::GetEventServiceCapabilities,
            "GetEventProperties" => Operation::GetEventProperties,
            "CreatePullPointSubscription" => Operation::CreatePullPointSubscription {
                initial_termination: body
                    .child_text("InitialTerminationTime")
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            },
            "PullMessages" => {
                let timeout = required(body, "Timeout")?;
                let timeout_s = crate::events::parse_duration_s(&timeout).ok_or_else(|| {
                    Fault::invalid_arg(format!("Timeout `{timeout}` is not an xs:duration"))
                })?;
                let limit = required(body, "MessageLimit")?;
                let limit = limit.trim().parse::<u32>().map_err(|_| {
                    Fault::invalid_arg(format!("MessageLimit `{limit}` is not a number"))
                })?;
                Operation::PullMessages { timeout_s, limit }
            }
            "SetSynchronizationPoint" => Operation::SetSynchronizationPoint,
            _ => unsupported(body),
        }
    } else if body.ns == ns::WSNT {
        match name {
            "Renew" => Operation::Renew {
                termination: body
                    .child_text("TerminationTime")
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            },
            "Unsubscribe" => Operation::Unsubscribe,
            _ => unsupported(body),
        }
    } else {
        unsupported(body)
    };
    Ok(op)
}

fn unsupported(body: &Element) -> Operation {
    Operation::Unsupported {
        ns: body.ns.clone(),
        name: body.name.clone(),
    }
}
