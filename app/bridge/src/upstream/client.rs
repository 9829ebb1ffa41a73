//! One MQTT connection to an upstream broker, 3.1.1 or 5, through `rumqttc`.
//!
//! Each connection attempt gets a fresh `rumqttc` client and event loop: the event loop runs in
//! its own task (its `poll` is not safe to cancel while it connects) and ends at the first
//! error, so reconnecting, back-off and everything that must survive a reconnect (the queue,
//! messages in flight) stay with the caller ([`super::link`]). The task forwards what the
//! caller needs as [`LinkEvent`]s, in the order `rumqttc` reports them: the n-th
//! [`LinkEvent::Sent`] with a packet id belongs to the n-th QoS 1 publish handed to the client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use watchpost_config::upstream::{MqttVersion, Qos, UpstreamConfig, UpstreamTls};

/// The system trust store used when `tls.ca_file` is not set (Debian and the image's
/// `ca-certificates`).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why the TLS settings of an upstream cannot be used. Carries the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading CA certificates from {path}: {source}")]
    ReadCa {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no CA certificate that can be used: {reason}")]
    NoCa { path: PathBuf, reason: String },
    #[error("reading the client certificate {path}: {source}")]
    ReadCert {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("reading the client key {path}: {source}")]
    ReadKey {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("the client certificate {cert} and key {key} cannot be used together: {source}")]
    ClientAuth {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS protocol versions: {source}")]
    Versions { source: rustls::Error },
}

/// The rustls client configuration of `tls` (ring provider, as the hub and reqwest use).
pub fn tls_config(tls: &UpstreamTls) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let ca_path = tls
        .ca_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE));
    let mut roots = rustls::RootCertStore::empty();
    let certs = read_certs(&ca_path).map_err(|source| TlsError::ReadCa {
        path: ca_path.clone(),
        source,
    })?;
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::NoCa {
            path: ca_path,
            reason: "no parsable certificate".into(),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Versions { source })?
        .with_root_certificates(roots);
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert).map_err(|source| TlsError::ReadCert {
                path: cert.clone(),
                source,
            })?;
            let private =
                PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::ReadKey {
                    path: key.clone(),
                    source,
                })?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|source| TlsError::ClientAuth {
                    cert: cert.clone(),
                    key: key.clone(),
                    source,
                })?
        }
        // The configuration refuses one without the other.
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, rustls_pki_types::pem::Error> {
    CertificateDer::pem_file_iter(path)?.collect()
}

/// What the connection reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// The broker accepted the connection. `receive_max`: MQTT 5's limit of QoS 1 messages in
    /// flight.
    ConnAck {
        session_present: bool,
        receive_max: Option<u16>,
    },
    /// A publish was written; `pkid` 0 for QoS 0.
    Sent { pkid: u16 },
    /// The broker acknowledged a QoS 1 publish; `refused` names an MQTT 5 reason code that is
    /// not success (the broker will not deliver it).
    Acked { pkid: u16, refused: Option<String> },
    /// A message arrived on a subscription.
    Message {
        topic: String,
        payload: Bytes,
        retain: bool,
    },
}

/// The connection is gone (or never came up).
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error(transparent)]
    V311(#[from] rumqttc::ConnectionError),
    #[error(transparent)]
    V5(#[from] v5::ConnectionError),
}

enum Client {
    V311(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

/// One connection attempt: the client handle and the event loop's task.
pub struct Conn {
    client: Client,
    task: JoinHandle<()>,
    /// Room in the client's request channel.
    pub capacity: usize,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

/// The client's request channel holds the publishes in flight plus this much.
const CHANNEL_SLACK: usize = 64;

impl Conn {
    /// Starts connecting. Events (and finally the error that ends the connection) arrive on
    /// the returned receiver.
    pub fn start(
        cfg: &UpstreamConfig,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> (Conn, mpsc::Receiver<Result<LinkEvent, ConnError>>) {
        let (tx, rx) = mpsc::channel(256);
        let capacity = usize::from(cfg.inflight) + CHANNEL_SLACK;
        let connect_timeout_s = cfg.connect_timeout_ms.div_ceil(1000).max(1);
        let keepalive = Duration::from_secs(cfg.keepalive_s);
        let password = cfg
            .password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        let transport = match tls {
            Some(c) => rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(c)),
            None => rumqttc::Transport::Tcp,
        };
        let mut net = rumqttc::NetworkOptions::new();
        net.set_connection_timeout(connect_timeout_s);
        net.set_tcp_nodelay(true);
        let (client, task) = match cfg.mqtt_version {
            MqttVersion::V311 => {
                let mut o = rumqttc::MqttOptions::new(
                    cfg.client_id(),
                    cfg.broker.host(),
                    cfg.broker.port(),
                );
                o.set_keep_alive(keepalive)
                    .set_clean_session(cfg.clean_session)
                    .set_inflight(cfg.inflight.saturating_add(1))
                    .set_max_packet_size(1024 * 1024, 1024 * 1024)
                    .set_transport(transport);
                if let Some(user) = &cfg.username {
                    o.set_credentials(user.clone(), password);
                }
                let (client, mut ev) = rumqttc::AsyncClient::new(o, capacity);
                ev.set_network_options(net);
                let task = tokio::spawn(async move {
                    loop {
                        let out = match ev.poll().await {
                            Ok(e) => match v311_event(e) {
                                Some(e) => Ok(e),
                                None => continue,
                            },
                            Err(e) => Err(ConnError::from(e)),
                        };
                        let end = out.is_err();
                        if tx.send(out).await.is_err() || end {
                            return;
                        }
                    }
                });
                (Client::V311(client), task)
            }
            MqttVersion::V5 => {
                let mut o =
                    v5::MqttOptions::new(cfg.client_id(), cfg.broker.host(), cfg.broker.port());
                o.set_keep_alive(keepalive)
                    .set_clean_start(cfg.clean_session)
                    .set_outgoing_inflight_upper_limit(cfg.inflight.saturating_add(1))
                    .set_max_packet_size(Some(1024 * 1024))
                    .set_network_options(net)
                    .set_transport(transport);
                if !cfg.clean_session {
                    o.set_session_expiry_interval(Some(u32::MAX));
                }
                if let Some(user) = &cfg.username {
                    o.set_credentials(user.clone(), password);
                }
                let (client, mut ev) = v5::AsyncClient::new(o, capacity);
                let task = tokio::spawn(async move {
                    loop {
                        let out = match ev.poll().await {
                            Ok(e) => match v5_event(e) {
                                Some(e) => Ok(e),
                                None => continue,
                            },
                            Err(e) => Err(ConnError::from(e)),
                        };
                        let end = out.is_err();
                        if tx.send(out).await.is_err() || end {
                            return;
                        }
                    }
                });
                (Client::V5(client), task)
            }
        };
        (
            Conn {
                client,
                task,
                capacity,
            },
            rx,
        )
    }

    /// Hands a publish to the client without waiting. `false`: the request channel is full or
    /// closed (the caller keeps the message).
    pub fn publish(&self, topic: &str, qos: Qos, retain: bool, payload: Bytes) -> bool {
        match &self.client {
            Client::V311(c) => c.try_publish(topic, v311_qos(qos), retain, payload).is_ok(),
            Client::V5(c) => c.try_publish(topic, v5_qos(qos), retain, payload).is_ok(),
        }
    }

    /// Subscribes to `filters`; with MQTT 5, `no_local` ones do not receive this client's own
    /// publishes.
    pub fn subscribe(&self, filters: &[(String, Qos, bool)]) -> bool {
        if filters.is_empty() {
            return true;
        }
        match &self.client {
            Client::V311(c) => c
                .try_subscribe_many(
                    filters
                        .iter()
                        .map(|(f, q, _)| rumqttc::SubscribeFilter::new(f.clone(), v311_qos(*q))),
                )
                .is_ok(),
            Client::V5(c) => c
                .try_subscribe_many(filters.iter().map(|(f, q, no_local)| {
                    let mut filter = v5::mqttbytes::v5::Filter::new(f.clone(), v5_qos(*q));
                    filter.nolocal = *no_local;
                    filter
                }))
                .is_ok(),
        }
    }

    /// Whether the protocol has no_local (MQTT 5).
    pub fn has_no_local(&self) -> bool {
        matches!(self.client, Client::V5(_))
    }

    /// Asks for a clean MQTT disconnect (the event loop sends it, then ends).
    pub fn disconnect(&self) {
        let _ = match &self.client {
            Client::V311(c) => c.try_disconnect().is_ok(),
            Client::V5(c) => c.try_disconnect().is_ok(),
        };
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn v311_qos(q: Qos) -> rumqttc::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
    }
}

fn v5_qos(q: Qos) -> v5::mqttbytes::QoS {
    match q {
        Qos::AtMostOnce => v5::mqttbytes::QoS::AtMostOnce,
        Qos::AtLeastOnce => v5::mqttbytes::QoS::AtLeastOnce,
    }
}

fn v311_event(e: rumqttc::Event) -> Option<LinkEvent> {
    use rumqttc::{Event, Outgoing, Packet};
    match e {
        Event::Incoming(Packet::ConnAck(c)) => Some(LinkEvent::ConnAck {
            session_present: c.session_present,
            receive_max: None,
        }),
        Event::Incoming(Packet::PubAck(a)) => Some(LinkEvent::Acked {
            pkid: a.pkid,
            refused: None,
        }),
        Event::Incoming(Packet::Publish(p)) => Some(LinkEvent::Message {
            topic: p.topic,
            payload: p.payload,
            retain: p.retain,
        }),
        Event::Outgoing(Outgoing::Publish(pkid)) => Some(LinkEvent::Sent { pkid }),
        _ => None,
    }
}

fn v5_event(e: v5::Event) -> Option<LinkEvent> {
    use rumqttc::Outgoing;
    use v5::mqttbytes::v5::{Packet, PubAckReason};
    match e {
        v5::Event::Incoming(Packet::ConnAck(c)) => Some(LinkEvent::ConnAck {
            session_present: c.session_present,
            receive_max: c.properties.and_then(|p| p.receive_max),
        }),
        v5::Event::Incoming(Packet::PubAck(a)) => Some(LinkEvent::Acked {
            pkid: a.pkid,
            refused: match a.reason {
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                other => Some(format!("{other:?}")),
            },
        }),
        v5::Event::Incoming(Packet::Publish(p)) => Some(LinkEvent::Message {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload,
            retain: p.retain,
        }),
        v5::Event::Outgoing(Outgoing::Publish(pkid)) => Some(LinkEvent::Sent { pkid }),
        _ => None,
    }
}
