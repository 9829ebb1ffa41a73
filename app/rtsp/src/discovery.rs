//! The WS-Discovery responder: a UDP socket on the discovery port (joined to the multicast
//! group on the configured interface) that answers matching Probes unicast, announces Hello
//! on start and Bye on stop. The message logic is `watchpost_onvif::discovery`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use watchpost_onvif::discovery::{self, AppSequence, Identity, Message};
use watchpost_runtime::Registry;

use crate::RtspError;

pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
/// Probes answered per second at most (a probe costs a bigger reply: bound the amplification).
const MAX_REPLIES_PER_S: u32 = 50;

/// A bound responder, not yet running.
#[derive(Debug)]
pub struct Responder {
    socket: UdpSocket,
    identity: Identity,
    multicast: bool,
    port: u16,
    instance_id: u64,
    counter: u64,
}

fn message_id() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

impl Responder {
    /// Binds the socket (address reuse on, so other discovery peers on the host coexist).
    pub fn bind(
        bind: Ipv4Addr,
        port: u16,
        interface: Ipv4Addr,
        multicast: bool,
        identity: Identity,
    ) -> Result<Self, RtspError> {
        let addr = SocketAddr::V4(SocketAddrV4::new(bind, port));
        let err = |source: std::io::Error| RtspError::BindDiscovery { addr, source };
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
        s.set_reuse_address(true).map_err(err)?;
        s.set_nonblocking(true).map_err(err)?;
        s.bind(&addr.into()).map_err(err)?;
        if multicast {
            s.join_multicast_v4(&GROUP, &interface).map_err(err)?;
            s.set_multicast_if_v4(&interface).map_err(err)?;
            s.set_multicast_ttl_v4(1).map_err(err)?;
        }
        let std_socket: std::net::UdpSocket = s.into();
        let socket = UdpSocket::from_std(std_socket).map_err(err)?;
        let instance_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        Ok(Self {
            socket,
            identity,
            multicast,
            port,
            instance_id,
            counter: 0,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }

    fn seq(&mut self) -> AppSequence {
        self.counter += 1;
        AppSequence {
            instance_id: self.instance_id,
            message_number: self.counter,
        }
    }

    async fn announce(&mut self, hello: bool) {
        if !self.multicast {
            return;
        }
        let seq = self.seq();
        let msg = if hello {
            discovery::hello(&self.identity, &message_id(), seq)
        } else {
            discovery::bye(&self.identity, &message_id(), seq)
        };
        let to = SocketAddr::V4(SocketAddrV4::new(GROUP, self.port));
        if let Err(e) = self.socket.send_to(&msg, to).await {
            tracing::warn!(error = %e, "cannot send WS-Discovery {}", if hello { "Hello" } else { "Bye" });
        }
    }

    /// Answers probes until `shutdown`, then says Bye.
    pub async fn run(mut self, registry: Registry, shutdown: CancellationToken) {
        self.announce(true).await;
        let probes = registry.counter(
            "watchpost_rtsp_discovery_probes_total",
            "WS-Discovery probes received",
            &[],
        );
        let matched = registry.counter(
            "watchpost_rtsp_discovery_matches_total",
            "WS-Discovery probes answered with ProbeMatches",
            &[],
        );
        let mut buf = vec![0u8; discovery::MAX_DATAGRAM + 1];
        let mut window = Instant::now();
        let mut replies = 0u32;
        loop {
            let (n, from) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "WS-Discovery receive failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(Message::Probe(probe)) = discovery::parse(&buf[..n]) else {
                continue;
            };
            probes.inc();
            if !discovery::matches(&probe, &self.identity) {
                continue;
            }
            if window.elapsed() >= Duration::from_secs(1) {
                window = Instant::now();
                replies = 0;
            }
            if replies >= MAX_REPLIES_PER_S {
                continue;
            }
            replies += 1;
            let seq = self.seq();
            let reply =
                discovery::probe_matches(&self.identity, &probe.message_id, &message_id(), seq);
            match self.socket.send_to(&reply, from).await {
                Ok(_) => matched.inc(),
                Err(e) => tracing::debug!(error = %e, %from, "cannot answer a probe"),
            }
        }
        self.announce(false).await;
    }
}
