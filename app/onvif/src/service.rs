//! [`OnvifService`]: request bytes in, HTTP status and SOAP bytes out.

use crate::auth::{AuthError, Authenticator};
use crate::model::{DeviceModel, RequestCtx};
use crate::ops::{Category, Operation, parse_operation};
use crate::soap::{Fault, SoapError, envelope, parse_envelope};
use crate::xml::{Limits, XmlWriter};
use crate::{device, media};

/// Content type of every reply.
pub const CONTENT_TYPE: &str = "application/soap+xml; charset=utf-8";

/// What to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// How a request ended, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered; `user` is the authenticated user, if the request carried a valid token.
    Answered { user: Option<String> },
    /// The request could not be read.
    Malformed(SoapError),
    /// Authentication was missing or wrong.
    Unauthorized(AuthError),
    /// Answered with a fault (unsupported operation, bad argument, unknown token).
    Fault(Fault),
}

/// One handled request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub reply: Reply,
    /// Operation name (`-` when the request could not be read).
    pub operation: String,
    pub outcome: Outcome,
}

/// The device and media services over one [`DeviceModel`].
#[derive(Debug)]
pub struct OnvifService {
    model: DeviceModel,
    auth: Authenticator,
    auth_required: bool,
    limits: Limits,
}

fn fault_reply(f: &Fault) -> Reply {
    Reply {
        status: f.http_status(),
        body: f.to_xml(),
    }
}

impl OnvifService {
    /// `auth_required = false` answers every request without checking tokens (for a closed
    /// network where the NVR has no credentials to give).
    pub fn new(model: DeviceModel, auth: Authenticator, auth_required: bool) -> Self {
        Self {
            model,
            auth,
            auth_required,
            limits: Limits::default(),
        }
    }

    pub fn model(&self) -> &DeviceModel {
        &self.model
    }

    /// Replaces the model (profiles learned from streams, a changed address).
    pub fn set_model(&mut self, model: DeviceModel) {
        self.model = model;
    }

    /// Handles one SOAP request body.
    pub fn handle(&mut self, body: &[u8], ctx: &RequestCtx) -> Handled {
        let env = match parse_envelope(body, self.limits) {
            Ok(env) => env,
            Err(e) => {
                let f = Fault::well_formed(&e);
                return Handled {
                    reply: fault_reply(&f),
                    operation: "-".into(),
                    outcome: Outcome::Malformed(e),
                };
            }
        };
        let op = match parse_operation(&env.body) {
            Ok(op) => op,
            Err(f) => {
                return Handled {
                    reply: fault_reply(&f),
                    operation: env.body.name.clone(),
                    outcome: Outcome::Fault(f),
                };
            }
        };
        let operation = op.name().to_string();
        // Synology Surveillance Station sends CreateProfile, sometimes without credentials,
        // and treats an auth fault as a wrong password; "no more profiles" lets it go on with
        // the fixed profiles.
        if let Operation::CreateProfile { .. } = op {
            let f = Fault::max_profiles();
            return Handled {
                reply: fault_reply(&f),
                operation,
                outcome: Outcome::Fault(f),
            };
        }
        let mut user = None;
        if self.auth_required
            && op != Operation::GetSystemDateAndTime
            && (env.security.is_some() || !op.is_pre_auth())
        {
            match self.auth.verify(env.security.as_ref(), ctx.now_unix) {
                Ok(u) => user = Some(u),
                Err(e) => {
                    return Handled {
                        reply: fault_reply(&Fault::not_authorized()),
                        operation,
                        outcome: Outcome::Unauthorized(e),
                    };
                }
            }
        }
        match self.answer(&op, ctx) {
            Ok(body) => Handled {
                reply: Reply { status: 200, body },
                operation,
                outcome: Outcome::Answered { user },
            },
            Err(f) => Handled {
                reply: fault_reply(&f),
                operation,
                outcome: Outcome::Fault(f),
            },
        }
    }

    fn answer(&self, op: &Operation, ctx: &RequestCtx) -> Result<Vec<u8>, Fault> {
        let m = &self.model;
        let profile = |token: &str| {
            m.profile(token)
                .ok_or_else(|| Fault::no_such("NoProfile", token))
        };
        let by_source_config = |token: &str| {
            m.profiles
                .iter()
                .find(|p| p.source_config_token() == token)
                .ok_or_else(|| Fault::no_such("NoConfig", token))
        };
        let by_encoder = |token: &str| {
            m.profiles
                .iter()
                .find(|p| p.encoder_token() == token)
                .ok_or_else(|| Fault::no_such("NoConfig", token))
        };
        let write = |f: &dyn Fn(&mut XmlWriter)| envelope(|w| f(w));
        Ok(match op {
            Operation::GetSystemDateAndTime => {
                write(&|w| device::system_date_and_time(w, ctx.now_unix))
            }
            Operation::GetDeviceInformation => write(&|w| device::device_information(w, m)),
            Operation::GetCapabilities { category } => {
                if *category == Category::Other {
                    return Err(Fault::new(
                        crate::soap::FaultCode::Receiver,
                        &["ActionNotSupported", "NoSuchService"],
                        "the requested capability category is not offered",
                    ));
                }
                write(&|w| device::capabilities(w, m, ctx, *category))
            }
            Operation::GetServices { include_capability } => {
                write(&|w| device::services(w, m, ctx, *include_capability))
            }
            Operation::GetDeviceServiceCapabilities => {
                write(&|w| device::device_service_capabilities(w))
            }
            Operation::GetScopes => write(&|w| device::scopes(w, m)),
            Operation::GetNetworkInterfaces => write(&|w| device::network_interfaces(w, m)),
            Operation::GetHostname => write(&|w| device::hostname(w, m)),
            Operation::GetNetworkProtocols => write(&|w| device::network_protocols(w, m)),
            Operation::GetDiscoveryMode => write(&|w| device::discovery_mode(w)),
            Operation::GetMediaServiceCapabilities => write(&|w| media::service_capabilities(w, m)),
            Operation::GetProfiles => write(&|w| media::profiles(w, m)),
            Operation::GetProfile { token } => {
                let p = profile(token)?;
                write(&|w| media::single_profile(w, m, p))
            }
            Operation::GetStreamUri {
                token,
                stream,
                protocol,
            } => {
                let p = profile(token)?;
                if stream != "RTP-Unicast" {
                    return Err(Fault::new(
                        crate::soap::FaultCode::Sender,
                        &["InvalidArgVal", "InvalidStreamSetup"],
                        format!("stream type {stream} is not offered (only RTP-Unicast)"),
                    ));
                }
                if !matches!(protocol.as_str(), "RTSP" | "UDP" | "TCP") {
                    return Err(Fault::new(
                        crate::soap::FaultCode::Sender,
                        &["InvalidArgVal", "InvalidStreamSetup"],
                        format!("transport {protocol} is not offered (only RTSP)"),
                    ));
                }
                write(&|w| media::stream_uri(w, m, p, ctx))
            }
            Operation::GetSnapshotUri { token } => {
                let p = profile(token)?;
                write(&|w| media::snapshot_uri(w, m, p, ctx))
            }
            Operation::GetVideoSources => write(&|w| media::video_sources(w, m)),
            Operation::GetVideoSourceConfigurations => write(&|w| {
                media::source_configs(
                    w,
                    m,
                    "trt:GetVideoSourceConfigurationsResponse",
                    m.sources(),
                )
            }),
            Operation::GetVideoSourceConfiguration { token } => {
                let p = by_source_config(token)?;
                write(&|w| media::source_config_single(w, m, p))
            }
            Operation::GetCompatibleVideoSourceConfigurations { profile: token } => {
                let p = profile(token)?;
                write(&|w| {
                    media::source_configs(
                        w,
                        m,
                        "trt:GetCompatibleVideoSourceConfigurationsResponse",
                        [p],
                    )
                })
            }
            Operation::GetVideoSourceConfigurationOptions => {
                write(&|w| media::source_config_options(w, m))
            }
            Operation::GetVideoEncoderConfigurations => write(&|w| {
                media::encoder_configs(w, "trt:GetVideoEncoderConfigurationsResponse", &m.profiles)
            }),
            Operation::GetVideoEncoderConfiguration { token } => {
                let p = by_encoder(token)?;
                write(&|w| media::encoder_config_single(w, p))
            }
            Operation::GetCompatibleVideoEncoderConfigurations { profile: token } => {
                let p = profile(token)?;
                write(&|w| {
                    media::encoder_configs(
                        w,
                        "trt:GetCompatibleVideoEncoderConfigurationsResponse",
                        [p],
                    )
                })
            }
            Operation::GetVideoEncoderConfigurationOptions {
                config,
                profile: ptoken,
            } => {
                let list: Vec<_> = match (config, ptoken) {
                    (Some(c), _) => vec![by_encoder(c)?],
                    (None, Some(p)) => vec![profile(p)?],
                    (None, None) => m.profiles.iter().collect(),
                };
                write(&|w| media::encoder_options(w, &list))
            }
            Operation::GetGuaranteedNumberOfVideoEncoderInstances { config } => {
                // The token must name a source configuration.
                by_source_config(config)?;
                write(&|w| media::guaranteed_instances(w))
            }
            Operation::EmptyAudioList { response, .. } => {
                write(&|w| media::empty_list(w, response))
            }
            Operation::CreateProfile { .. } => return Err(Fault::max_profiles()),
            Operation::Unsupported { name, .. } => return Err(Fault::action_not_supported(name)),
        })
    }
}
