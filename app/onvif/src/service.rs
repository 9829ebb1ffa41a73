//! [`OnvifService`]: request bytes in, HTTP status and SOAP bytes out.

use std::collections::HashSet;

use crate::auth::{AuthError, Authenticator};
use crate::events::{self, Events};
use crate::model::{DeviceModel, RequestCtx};
use crate::ops::{Category, Operation, is_pre_auth_element, parse_operation};
use crate::soap::{Fault, FaultCode, SoapError, envelope, parse_envelope};
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
    /// What the I/O layer does besides sending `reply`.
    pub then: Then,
}

/// What follows a handled request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// Send the reply.
    Reply,
    /// A PullMessages found nothing queued: wait until [`OnvifService::pull_ready`] or the
    /// timeout, then send [`OnvifService::finish_pull`]'s reply instead (`reply` holds an
    /// empty answer for callers that do not wait).
    WaitForEvents(PullWait),
    /// SystemReboot was accepted: send the reply, then restart the appliance.
    Reboot,
}

/// A PullMessages waiting for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullWait {
    pub subscription: u64,
    /// How long to wait at most (the request's timeout, capped).
    pub timeout_s: i64,
    pub limit: u32,
}

/// The subscription named by an endpoint (`subscription_<n>`, the last path segment of the
/// addresses CreatePullPointSubscription hands out).
pub fn subscription_endpoint(endpoint: &str) -> Option<u64> {
    endpoint
        .strip_prefix("subscription_")
        .and_then(|n| n.parse().ok())
}

/// Largest difference, in seconds, between a SetSystemDateAndTime time and the clock that is
/// answered as "already set".
pub const CLOCK_TOLERANCE_S: i64 = 10;

/// The device and media services over one [`DeviceModel`].
#[derive(Debug)]
pub struct OnvifService {
    model: DeviceModel,
    auth: Authenticator,
    auth_required: bool,
    limits: Limits,
    /// Users with the admin role (SystemReboot, SetSystemDateAndTime).
    admins: HashSet<String>,
    events: Events,
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
            admins: HashSet::new(),
            events: Events::default(),
        }
    }

    /// The users allowed to restart the appliance and set its clock (none by default).
    pub fn set_admins(&mut self, admins: impl IntoIterator<Item = String>) {
        self.admins = admins.into_iter().collect();
    }

    /// The event properties and subscriptions (the worker feeds updates in here).
    pub fn events(&self) -> &Events {
        &self.events
    }

    pub fn events_mut(&mut self) -> &mut Events {
        &mut self.events
    }

    /// Whether a waiting PullMessages can be answered now.
    pub fn pull_ready(&self, wait: &PullWait, now_unix: i64) -> bool {
        self.events.ready(wait.subscription, now_unix)
    }

    /// The answer to a PullMessages that waited: what is queued now (perhaps nothing).
    pub fn finish_pull(&mut self, wait: &PullWait, ctx: &RequestCtx) -> Handled {
        let result = self
            .events
            .pull(wait.subscription, ctx.now_unix, wait.limit)
            .map(|(msgs, expires)| envelope(|w| events::pulled(w, ctx.now_unix, expires, &msgs)));
        let (reply, outcome) = match result {
            Ok(body) => (
                Reply { status: 200, body },
                Outcome::Answered { user: None },
            ),
            Err(f) => (fault_reply(&f), Outcome::Fault(f)),
        };
        Handled {
            reply,
            operation: "PullMessages".into(),
            outcome,
            then: Then::Reply,
        }
    }

    pub fn model(&self) -> &DeviceModel {
        &self.model
    }

    /// Replaces the model (profiles learned from streams, a changed address).
    pub fn set_model(&mut self, model: DeviceModel) {
        self.model = model;
    }

    /// Handles one SOAP request body posted to the device or media endpoint.
    pub fn handle(&mut self, body: &[u8], ctx: &RequestCtx) -> Handled {
        self.handle_endpoint("", body, ctx)
    }

    /// Handles one SOAP request body posted to `/onvif/<endpoint>`. The endpoint matters only
    /// to the pull point and subscription manager operations, which act on the subscription
    /// it names; everything else is routed by the Body's element alone.
    pub fn handle_endpoint(&mut self, endpoint: &str, body: &[u8], ctx: &RequestCtx) -> Handled {
        let env = match parse_envelope(body, self.limits) {
            Ok(env) => env,
            Err(e) => {
                let f = Fault::well_formed(&e);
                return Handled {
                    reply: fault_reply(&f),
                    operation: "-".into(),
                    outcome: Outcome::Malformed(e),
                    then: Then::Reply,
                };
            }
        };
        let fault = |f: Fault, operation: String| Handled {
            reply: fault_reply(&f),
            operation,
            outcome: Outcome::Fault(f),
            then: Then::Reply,
        };
        let element = &env.body;
        // Synology Surveillance Station sends CreateProfile, sometimes without credentials,
        // and treats an auth fault as a wrong password; "no more profiles" lets it go on with
        // the fixed profiles.
        if element.ns == crate::ns::MEDIA && element.name == "CreateProfile" {
            return fault(Fault::max_profiles(), "CreateProfile".into());
        }
        // Authentication comes before arguments: without valid credentials nothing but the
        // pre-authentication getters says more than "not authorized".
        let is_clock = element.ns == crate::ns::DEVICE && element.name == "GetSystemDateAndTime";
        let admin_only = element.ns == crate::ns::DEVICE
            && matches!(
                element.name.as_str(),
                "SystemReboot" | "SetSystemDateAndTime"
            );
        let check = !is_clock
            && (admin_only
                || (self.auth_required
                    && (env.security.is_some() || !is_pre_auth_element(element))));
        let mut user = None;
        if check {
            let verified = self
                .auth
                .verify(env.security.as_ref(), ctx.now_unix)
                .and_then(|u| {
                    if admin_only && !self.admins.contains(&u) {
                        Err(AuthError::NotAdmin { user: u })
                    } else {
                        Ok(u)
                    }
                });
            match verified {
                Ok(u) => user = Some(u),
                Err(e) => {
                    return Handled {
                        reply: fault_reply(&Fault::not_authorized()),
                        operation: element.name.clone(),
                        outcome: Outcome::Unauthorized(e),
                        then: Then::Reply,
                    };
                }
            }
        }
        let op = match parse_operation(element) {
            Ok(op) => op,
            Err(f) => return fault(f, element.name.clone()),
        };
        let operation = op.name().to_string();
        let answered = |body: Vec<u8>, then: Then| Handled {
            reply: Reply { status: 200, body },
            operation: operation.clone(),
            outcome: Outcome::Answered { user: user.clone() },
            then,
        };
        match self.answer_events(&op, endpoint, ctx) {
            Some(Ok((body, then))) => return answered(body, then),
            Some(Err(f)) => return fault(f, operation),
            None => {}
        }
        match self.answer(&op, ctx) {
            Ok(body) => {
                let then = if op == Operation::SystemReboot {
                    Then::Reboot
                } else {
                    Then::Reply
                };
                answered(body, then)
            }
            Err(f) => fault(f, operation),
        }
    }

    /// The event service's operations (`None` for any other).
    fn answer_events(
        &mut self,
        op: &Operation,
        endpoint: &str,
        ctx: &RequestCtx,
    ) -> Option<Result<(Vec<u8>, Then), Fault>> {
        let now = ctx.now_unix;
        let sub = subscription_endpoint(endpoint);
        let need_sub = || sub.ok_or_else(|| events::unknown_subscription(None));
        let done = |body: Vec<u8>| Ok((body, Then::Reply));
        Some(match op {
            Operation::GetEventServiceCapabilities => {
                let limits = *self.events.limits();
                done(envelope(|w| events::service_capabilities(w, &limits)))
            }
            Operation::GetEventProperties => done(envelope(events::event_properties)),
            Operation::CreatePullPointSubscription {
                initial_termination,
            } => self
                .events
                .create(now, initial_termination.as_deref())
                .map(|(id, expires)| {
                    let address = format!("{}/onvif/subscription_{id}", self.model.http_base(ctx));
                    (
                        envelope(|w| events::created(w, &address, now, expires)),
                        Then::Reply,
                    )
                }),
            Operation::PullMessages { timeout_s, limit } => need_sub().and_then(|id| {
                let (msgs, expires) = self.events.pull(id, now, *limit)?;
                let body = envelope(|w| events::pulled(w, now, expires, &msgs));
                let timeout_s = (*timeout_s).min(self.events.limits().max_pull_timeout_s);
                let then = if msgs.is_empty() && timeout_s > 0 {
                    Then::WaitForEvents(PullWait {
                        subscription: id,
                        timeout_s,
                        limit: *limit,
                    })
                } else {
                    Then::Reply
                };
                Ok((body, then))
            }),
            Operation::SetSynchronizationPoint => need_sub().and_then(|id| {
                self.events.synchronize(id, now)?;
                done(envelope(|w| {
                    w.empty("tev:SetSynchronizationPointResponse", &[]);
                }))
            }),
            Operation::Renew { termination } => need_sub().and_then(|id| {
                let expires = self.events.renew(id, now, termination.as_deref())?;
                done(envelope(|w| events::renewed(w, now, expires)))
            }),
            Operation::Unsubscribe => need_sub().and_then(|id| {
                self.events.unsubscribe(id, now)?;
                done(envelope(|w| w.empty("wsnt:UnsubscribeResponse", &[])))
            }),
            _ => return None,
        })
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
                let limits = *self.events.limits();
                write(&|w| device::services(w, m, ctx, *include_capability, &limits))
            }
            Operation::GetDeviceServiceCapabilities => {
                write(&|w| device::device_service_capabilities(w))
            }
            Operation::GetScopes => write(&|w| device::scopes(w, m)),
            Operation::GetNetworkInterfaces => write(&|w| device::network_interfaces(w, m)),
            Operation::GetHostname => write(&|w| device::hostname(w, m)),
            Operation::GetNetworkProtocols => write(&|w| device::network_protocols(w, m)),
            Operation::GetDiscoveryMode => write(&|w| device::discovery_mode(w)),
            Operation::SystemReboot => write(&|w| device::system_reboot(w)),
            Operation::SetSystemDateAndTime { manual, utc } => {
                if let (true, Some(t)) = (*manual, utc) {
                    let off = t - ctx.now_unix;
                    if off.abs() > CLOCK_TOLERANCE_S {
                        return Err(Fault::new(
                            FaultCode::Sender,
                            &["InvalidArgVal", "InvalidDateTime"],
                            format!(
                                "the requested time is {off} s from the device clock, which NTP \
                                 keeps: not changed"
                            ),
                        ));
                    }
                }
                write(&|w| w.empty("tds:SetSystemDateAndTimeResponse", &[]))
            }
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
            Operation::GetEventServiceCapabilities
            | Operation::GetEventProperties
            | Operation::CreatePullPointSubscription { .. }
            | Operation::PullMessages { .. }
            | Operation::SetSynchronizationPoint
            | Operation::Renew { .. }
            | Operation::Unsubscribe => {
                // Answered by answer_events before this point.
                return Err(Fault::action_not_supported(op.name()));
            }
            Operation::Unsupported { name, .. } => return Err(Fault::action_not_supported(name)),
        })
    }
}
