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
    /// A category this device does not offer (Events, PTZ, Imaging, Analytics).
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
            Operation::Unsupported { name, .. } => name,
        }
    }
}

fn required(el: &Element, field: &str) -> Result<String, Fault> {
    el.child_text(field)
        .map(str::to_string)
        .ok_or_else(|| Fault::invalid_arg(format!("{} needs {field}", el.name)))
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
