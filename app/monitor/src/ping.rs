//! ICMP echo: the packet codec (sans-IO) and the prober of one ping target.
//!
//! Socket: an unprivileged ping socket (`SOCK_DGRAM`, `IPPROTO_ICMP`) where the kernel allows
//! it (`net.ipv4.ping_group_range` includes the worker's group), else a raw socket (root or
//! `CAP_NET_RAW`). Neither available is a fault of the worker (degraded with the reason) and
//! the target is reported down with it; the socket is tried again every few seconds.
//!
//! Echoes go out every `interval_ms` without waiting for each other's reply (as `fping`
//! does), so a lost echo delays nothing; an echo unanswered for `timeout_ms` is lost. A raw
//! socket sees every ICMP packet of the host, so replies are matched by source address,
//! identifier and a per-target token in the payload.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use watchpost_config::monitor::PingTarget;

use crate::stats::PingWindow;
use crate::{Outcome, Report};

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
/// Token (8 bytes) then padding: 32 bytes of payload.
const PAYLOAD_LEN: usize = 32;

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request: ICMPv4 or ICMPv6 header, then the token and padding. The ICMPv6 checksum
/// covers a pseudo-header that the kernel fills in, so it is left zero there.
pub fn echo_request(v6: bool, id: u16, seq: u16, token: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + PAYLOAD_LEN);
    p.push(if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 });
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&token.to_be_bytes());
    p.resize(8 + PAYLOAD_LEN, 0x5a);
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// A received echo reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoReply {
    pub id: u16,
    pub seq: u16,
    pub token: u64,
}

/// Parses what a socket received: `with_ip_header` for an IPv4 raw socket (the kernel hands
/// over the IP header too). `None` for anything that is not an echo reply.
pub fn parse_reply(v6: bool, with_ip_header: bool, packet: &[u8]) -> Option<EchoReply> {
    let icmp = if with_ip_header {
        let ihl = usize::from(packet.first()? & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        packet.get(ihl..)?
    } else {
        packet
    };
    let reply_type = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    if icmp.len() < 16 || icmp[0] != reply_type || icmp[1] != 0 {
        return None;
    }
    Some(EchoReply {
        id: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        token: u64::from_be_bytes(icmp[8..16].try_into().ok()?),
    })
}

/// Which kind of ICMP socket a target uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// `SOCK_DGRAM`: the kernel sets the identifier and matches replies to the socket.
    Ping,
    /// `SOCK_RAW`: every ICMP packet of the host arrives.
    Raw,
}

/// Opens an ICMP socket for `addr`: a ping socket, else a raw one.
pub fn open(addr: IpAddr) -> Result<(UdpSocket, SocketKind), std::io::Error> {
    let (domain, proto) = match addr {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let (socket, kind) = match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => (s, SocketKind::Ping),
        Err(dgram) => match Socket::new(domain, Type::RAW, Some(proto)) {
            Ok(s) => (s, SocketKind::Raw),
            Err(raw) => {
                return Err(std::io::Error::new(
                    raw.kind(),
                    format!(
                        "no ICMP socket: a ping socket is refused ({dgram}; \
                         net.ipv4.ping_group_range) and a raw one too ({raw}; needs CAP_NET_RAW)"
                    ),
                ));
            }
        },
    };
    socket.set_nonblocking(true)?;
    let std: std::net::UdpSocket = socket.into();
    Ok((UdpSocket::from_std(std)?, kind))
}

/// Resolves `host` (an address, or a name through the system resolver).
async fn resolve(host: &str, timeout: Duration) -> Result<IpAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, 0))).await {
        Ok(Ok(mut addrs)) => addrs
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| format!("`{host}` resolves to no address")),
        Ok(Err(e)) => Err(format!("cannot resolve `{host}`: {e}")),
        Err(_) => Err(format!("resolving `{host}` timed out")),
    }
}

/// Runs the prober of `target` until shutdown, sending a report at most every
/// `report_every` (and at every echo when echoes are rarer).
pub async fn run(
    index: usize,
    target: PingTarget,
    tx: mpsc::Sender<Report>,
    shutdown: CancellationToken,
) {
    let id = target.id.to_string();
    let interval = Duration::from_millis(target.interval_ms);
    let timeout = Duration::from_millis(target.timeout_ms);
    let report_every = interval.max(Duration::from_millis(1_000));
    let retry = Duration::from_secs(5);
    loop {
        let setup = async {
            let ip = resolve(&target.host, timeout).await?;
            let (sock, kind) = open(ip).map_err(|e| e.to_string())?;
            Ok::<_, String>((ip, sock, kind))
        };
        let (ip, sock, kind) = match setup.await {
            Ok(v) => v,
            Err(reason) => {
                let report = Report {
                    target: id.clone(),
                    outcome: Outcome::down(reason).fault(true),
                };
                if tx.send(report).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(retry) => continue,
                }
            }
        };
        tracing::info!(target = %id, %ip, socket = ?kind, "pinging");
        let echo_id = (std::process::id() as u16) ^ ((index as u16).wrapping_mul(0x9e37));
        let token = u64::from(echo_id) << 32 | (index as u64) << 16 | 0x7770;
        let v6 = ip.is_ipv6();
        let dest = SocketAddr::new(ip, 0);
        let mut window = PingWindow::new(target.window as usize);
        let mut sent_at: std::collections::HashMap<u16, Instant> = Default::default();
        let started = Instant::now();
        let now_ms = |t: Instant| t.duration_since(started).as_millis() as u64;
        let mut seq: u16 = 0;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut report_tick = tokio::time::interval(report_every);
        report_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut buf = [0u8; 2048];
        let mut send_error: Option<String> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let now = Instant::now();
                    window.expire(now_ms(now), target.timeout_ms);
                    sent_at.retain(|_, t| now.duration_since(*t) < timeout);
                    let packet = echo_request(v6, echo_id, seq, token);
                    match sock.send_to(&packet, dest).await {
                        Ok(_) => {
                            send_error = None;
                        }
                        Err(e) => {
                            // Counted as lost (the network is unreachable, say).
                            send_error = Some(format!("cannot send to {ip}: {e}"));
                        }
                    }
                    window.sent(seq, now_ms(now));
                    sent_at.insert(seq, now);
                    seq = seq.wrapping_add(1);
                }
                r = sock.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { continue };
                    let now = Instant::now();
                    let with_ip = kind == SocketKind::Raw && !v6;
                    let Some(reply) = parse_reply(v6, with_ip, &buf[..n]) else { continue };
                    if from.ip() != ip || reply.token != token {
                        continue;
                    }
                    if kind == SocketKind::Raw && reply.id != echo_id {
                        continue;
                    }
                    if let Some(t) = sent_at.remove(&reply.seq) {
                        let rtt = now.duration_since(t).as_secs_f64() * 1_000.0;
                        window.replied_rtt(reply.seq, rtt);
                    }
                }
                _ = report_tick.tick() => {
                    window.expire(now_ms(Instant::now()), target.timeout_ms);
                    let f = window.figures();
                    let outcome = if f.counted == 0 {
                        Outcome::unknown(f.figures())
                    } else if f.consecutive_lost >= 3 || (f.consecutive_lost as usize >= f.counted) {
                        let reason = send_error.clone().unwrap_or_else(|| {
                            format!("no reply to the last {} echoes", f.consecutive_lost)
                        });
                        Outcome::down(reason).with_figures(f.figures())
                    } else {
                        Outcome::up(f.figures())
                    };
                    if tx.send(Report { target: id.clone(), outcome }).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_known_packet() {
        // RFC 1071's example bytes.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // A packet with its checksum in place sums to zero.
        let p = echo_request(false, 0x1234, 7, 42);
        assert_eq!(checksum(&p), 0);
    }

    #[test]
    fn replies_parse_with_and_without_the_ip_header() {
        let mut reply = echo_request(false, 0x1234, 7, 42);
        reply[0] = ECHO_REPLY_V4;
        let expect = EchoReply {
            id: 0x1234,
            seq: 7,
            token: 42,
        };
        assert_eq!(parse_reply(false, false, &reply), Some(expect));
        let mut with_ip = vec![0x45u8];
        with_ip.resize(20, 0);
        with_ip.extend_from_slice(&reply);
        assert_eq!(parse_reply(false, true, &with_ip), Some(expect));
        // A request (our own, seen on a raw socket to 127.0.0.1) is not a reply.
        assert_eq!(
            parse_reply(false, false, &echo_request(false, 1, 1, 1)),
            None
        );
        assert_eq!(parse_reply(false, true, &[0x45, 0, 0]), None);
        let mut v6 = echo_request(true, 1, 2, 3);
        v6[0] = ECHO_REPLY_V6;
        assert_eq!(parse_reply(true, false, &v6).map(|r| r.seq), Some(2));
    }
}
