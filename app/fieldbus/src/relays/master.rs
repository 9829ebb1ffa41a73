//! Links to relay modules: Modbus TCP, RTU on a serial line, or the board's own GPIO relays.
//! A Modbus link is connected lazily and dropped on any error, so the next request
//! reconnects; every request has a hard timeout. The board link answers the same coil
//! requests (FC01/FC05/FC15) from the GPIO lines, so board relays are commanded, pulsed,
//! followed, read back and reported by the same code as a Modbus module's coils.

use std::ops::Range;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_serial::{SerialPort, SerialStream};
use watchpost_board::Rs485Direction;
use watchpost_config::Endpoint;
use watchpost_config::fieldbus::SerialConfig;
use watchpost_contract::relay::RelayCode;
use watchpost_modbus::{
    Direction, ExceptionCode, Request, Response, ResponseError, RtuEvent, RtuReceiver, TcpEvent,
    TcpReceiver, UnitSet, rtu, tcp,
};

use crate::rtu_slave;

/// Why a request to a relay module failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("connecting to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("opening {port}: {source}")]
    OpenSerial {
        port: String,
        source: tokio_serial::Error,
    },
    #[error("talking to {peer}: {source}")]
    Io {
        peer: String,
        source: std::io::Error,
    },
    #[error("{peer} closed the connection")]
    Closed { peer: String },
    #[error("no answer from unit {unit} at {peer} within {timeout_ms} ms")]
    Timeout {
        peer: String,
        unit: u8,
        timeout_ms: u64,
    },
    #[error("unit {unit} at {peer}: {source}")]
    Response {
        peer: String,
        unit: u8,
        source: ResponseError,
    },
    #[error("the circuit breaker of module {module} is open")]
    BreakerOpen { module: String },
    #[error("board relay: {source}")]
    Gpio { source: watchpost_board::RelayError },
    #[error("the board's relay outputs are unavailable: {reason}")]
    BoardUnavailable { reason: String },
}

impl RelayError {
    /// The relay area's error code for command replies.
    pub fn code(&self) -> RelayCode {
        match self {
            Self::Connect { .. }
            | Self::OpenSerial { .. }
            | Self::Io { .. }
            | Self::Closed { .. } => RelayCode::RelayUnreachable,
            Self::Timeout { .. } => RelayCode::RelayTimeout,
            Self::Response { .. } => RelayCode::RelayBadResponse,
            Self::BreakerOpen { .. } => RelayCode::RelayBreakerOpen,
            Self::Gpio { .. } => RelayCode::RelayGpioFailed,
            Self::BoardUnavailable { .. } => RelayCode::RelayUnreachable,
        }
    }
}

/// A link to one port (a TCP endpoint or a serial line) shared by the modules on it.
#[derive(Debug)]
pub enum Link {
    Tcp(TcpLink),
    Rtu(RtuLink),
    Board(BoardLink),
}

impl Link {
    pub fn tcp(endpoint: Endpoint) -> Self {
        Link::Tcp(TcpLink {
            endpoint,
            stream: None,
            next_transaction: 1,
        })
    }

    /// A master on a serial line; `board` says how an RS485 line's transceiver is switched.
    pub fn rtu(cfg: SerialConfig, board: Option<watchpost_board::BoardDescription>) -> Self {
        let gap = rtu_slave::gap_of(&cfg);
        Link::Rtu(RtuLink {
            cfg,
            board,
            port: None,
            gap,
            quiet_until: None,
        })
    }

    /// The board's GPIO relays; coil address N is the Nth relay.
    pub fn board(relays: Vec<watchpost_board::Relay<watchpost_board::BoardPin>>) -> Self {
        Link::Board(BoardLink {
            relays,
            unavailable: None,
        })
    }

    /// Board relays that could not be opened: every request fails with `reason`, so the
    /// module reports it (breaker, last error) while the rest of the worker runs.
    pub fn board_unavailable(reason: String) -> Self {
        Link::Board(BoardLink {
            relays: Vec::new(),
            unavailable: Some(reason),
        })
    }

    /// Sends `request` to `unit` and waits at most `timeout` for its response.
    pub async fn request(
        &mut self,
        unit: u8,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, RelayError> {
        match self {
            Link::Tcp(l) => l.request(unit, request, timeout).await,
            Link::Rtu(l) => l.request(unit, request, timeout).await,
            Link::Board(l) => l.request(request),
        }
    }
}

fn check(
    peer: &str,
    unit: u8,
    request: &Request,
    got_unit: u8,
    pdu: &[u8],
) -> Result<Response, RelayError> {
    let fail = |source| RelayError::Response {
        peer: peer.to_string(),
        unit,
        source,
    };
    if got_unit != unit {
        return Err(fail(ResponseError::WrongUnit {
            expected: unit,
            got: got_unit,
        }));
    }
    let resp = Response::decode(pdu).map_err(|e| fail(ResponseError::Decode(e)))?;
    match resp {
        Response::Exception { function, code } => {
            Err(fail(ResponseError::Exception { function, code }))
        }
        r if r.function() != request.function() => Err(fail(ResponseError::WrongFunction {
            expected: request.function(),
            got: r.function(),
        })),
        r => Ok(r),
    }
}

/// The board's relay outputs, answering coil requests locally.
#[derive(Debug)]
pub struct BoardLink {
    relays: Vec<watchpost_board::Relay<watchpost_board::BoardPin>>,
    unavailable: Option<String>,
}

impl BoardLink {
    fn refuse(request: &Request, code: ExceptionCode) -> RelayError {
        RelayError::Response {
            peer: "board".into(),
            unit: 0,
            source: ResponseError::Exception {
                function: request.function(),
                code,
            },
        }
    }

    /// The relays `address .. address + count`, or an illegal-address refusal.
    fn range(
        &self,
        request: &Request,
        address: u16,
        count: usize,
    ) -> Result<Range<usize>, RelayError> {
        let start = usize::from(address);
        match start.checked_add(count) {
            Some(end) if count > 0 && end <= self.relays.len() => Ok(start..end),
            _ => Err(Self::refuse(request, ExceptionCode::IllegalDataAddress)),
        }
    }

    fn request(&mut self, request: &Request) -> Result<Response, RelayError> {
        if let Some(reason) = &self.unavailable {
            return Err(RelayError::BoardUnavailable {
                reason: reason.clone(),
            });
        }
        let gpio = |source| RelayError::Gpio { source };
        match request {
            Request::ReadCoils { address, count } => {
                let r = self.range(request, *address, usize::from(*count))?;
                Ok(Response::ReadCoils(
                    self.relays[r].iter().map(|relay| relay.is_on()).collect(),
                ))
            }
            Request::WriteSingleCoil { address, on } => {
                let r = self.range(request, *address, 1)?;
                self.relays[r.start].set(*on).map_err(gpio)?;
                Ok(Response::WriteSingleCoil {
                    address: *address,
                    on: *on,
                })
            }
            Request::WriteMultipleCoils { address, values } => {
                let r = self.range(request, *address, values.len())?;
                for (relay, on) in self.relays[r].iter_mut().zip(values) {
                    relay.set(*on).map_err(gpio)?;
                }
                Ok(Response::WriteMultipleCoils {
                    address: *address,
                    count: values.len() as u16,
                })
            }
            _ => Err(Self::refuse(request, ExceptionCode::IllegalFunction)),
        }
    }
}

#[derive(Debug)]
pub struct TcpLink {
    endpoint: Endpoint,
    stream: Option<TcpStream>,
    next_transaction: u16,
}

impl TcpLink {
    async fn request(
        &mut self,
        unit: u8,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, RelayError> {
        let peer = self.endpoint.to_string();
        let deadline = Instant::now() + timeout;
        let result = tokio::time::timeout_at(deadline.into(), self.exchange(unit, request)).await;
        match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                Err(RelayError::Timeout {
                    peer,
                    unit,
                    timeout_ms: timeout.as_millis() as u64,
                })
            }
        }
    }

    async fn exchange(&mut self, unit: u8, request: &Request) -> Result<Response, RelayError> {
        let peer = self.endpoint.to_string();
        if self.stream.is_none() {
            let s = TcpStream::connect((self.endpoint.host(), self.endpoint.port()))
                .await
                .map_err(|source| RelayError::Connect {
                    endpoint: peer.clone(),
                    source,
                })?;
            let _ = s.set_nodelay(true);
            self.stream = Some(s);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(RelayError::Closed { peer });
        };
        let tid = self.next_transaction;
        self.next_transaction = self.next_transaction.wrapping_add(1);
        let frame = tcp::encode_request(tid, unit, request);
        stream
            .write_all(&frame)
            .await
            .map_err(|source| RelayError::Io {
                peer: peer.clone(),
                source,
            })?;
        let mut rx = TcpReceiver::new(Direction::Responses, Duration::from_secs(3600));
        let mut buf = [0u8; 512];
        loop {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|source| RelayError::Io {
                    peer: peer.clone(),
                    source,
                })?;
            if n == 0 {
                return Err(RelayError::Closed { peer });
            }
            rx.push(&buf[..n], Instant::now());
            while let Some(ev) = rx.poll_event() {
                if let TcpEvent::Frame(adu) = ev
                    && adu.transaction == tid
                {
                    return check(&peer, unit, request, adu.unit, &adu.pdu);
                }
            }
        }
    }
}

pub struct RtuLink {
    cfg: SerialConfig,
    board: Option<watchpost_board::BoardDescription>,
    /// The line and its transceiver switching, opened together.
    port: Option<(SerialStream, Box<dyn Rs485Direction>)>,
    gap: Duration,
    /// The line must stay quiet until then before the next request (inter-frame silence).
    quiet_until: Option<Instant>,
}

impl std::fmt::Debug for RtuLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtuLink")
            .field("port", &self.cfg.port)
            .field("open", &self.port.is_some())
            .finish_non_exhaustive()
    }
}

impl RtuLink {
    async fn request(
        &mut self,
        unit: u8,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, RelayError> {
        let peer = self.cfg.port.display().to_string();
        if self.port.is_none() {
            let fail = |e| match e {
                crate::error::FieldbusError::OpenSerial { source, .. } => RelayError::OpenSerial {
                    port: peer.clone(),
                    source,
                },
                other => RelayError::Io {
                    peer: peer.clone(),
                    source: std::io::Error::other(other.to_string()),
                },
            };
            let p = rtu_slave::open(&self.cfg).map_err(fail)?;
            let d = rtu_slave::direction_for(&self.cfg, self.board.as_ref()).map_err(fail)?;
            self.port = Some((p, d));
        }
        if let Some(q) = self.quiet_until {
            tokio::time::sleep_until(q.into()).await;
        }
        let deadline = Instant::now() + timeout;
        let result = tokio::time::timeout_at(deadline.into(), self.exchange(unit, request)).await;
        self.quiet_until = Some(Instant::now() + self.gap);
        match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                if matches!(e, RelayError::Io { .. } | RelayError::Closed { .. }) {
                    self.port = None;
                }
                Err(e)
            }
            Err(_) => Err(RelayError::Timeout {
                peer,
                unit,
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    async fn exchange(&mut self, unit: u8, request: &Request) -> Result<Response, RelayError> {
        let peer = self.cfg.port.display().to_string();
        let Some((port, direction)) = self.port.as_mut() else {
            return Err(RelayError::Closed { peer });
        };
        // A late answer to an earlier, timed-out request must not pass for this one's.
        if let Err(e) = port.clear(tokio_serial::ClearBuffer::Input) {
            tracing::debug!(port = %peer, error = %e, "discarding stale input failed");
        }
        let frame = rtu::encode_request(unit, request);
        let io = |source| RelayError::Io {
            peer: peer.clone(),
            source,
        };
        if let Err(e) = direction.begin_transmit() {
            tracing::debug!(error = %e, "RS485 transmit switch failed");
        }
        port.write_all(&frame).await.map_err(io)?;
        port.flush().await.map_err(io)?;
        if let Err(e) = direction.end_transmit() {
            tracing::debug!(error = %e, "RS485 receive switch failed");
        }
        let units: UnitSet = [unit].into_iter().collect();
        let mut rx = RtuReceiver::new(Direction::Responses, units, self.gap);
        let mut buf = [0u8; 512];
        loop {
            let wait = rx.silence_deadline();
            tokio::select! {
                r = port.read(&mut buf) => {
                    let n = r.map_err(|source| RelayError::Io { peer: peer.clone(), source })?;
                    if n == 0 {
                        return Err(RelayError::Closed { peer });
                    }
                    rx.push(&buf[..n], Instant::now());
                }
                _ = async {
                    match wait {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                }, if wait.is_some() => rx.handle_timeout(Instant::now()),
            }
            while let Some(ev) = rx.poll_event() {
                if let RtuEvent::Frame(adu) = ev
                    && adu.unit == unit
                {
                    return check(&peer, unit, request, adu.unit, &adu.pdu);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    use watchpost_config::fieldbus::Parity;

    use super::*;

    /// A relay module on the far end of a pseudo-terminal: answers each FC01 request with the
    /// coil byte `answers[i]`.
    fn module(mut master: std::fs::File, answers: Vec<u8>) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            for bits in answers {
                let mut req = [0u8; 8];
                master.read_exact(&mut req).unwrap();
                assert_eq!(&req[..2], &[1, 1], "{req:?}");
                let mut out = Vec::new();
                rtu::encode_with(1, &mut out, |o| o.extend_from_slice(&[1, 1, bits]));
                master.write_all(&out).unwrap();
            }
        })
    }

    fn coils(r: Response) -> Vec<bool> {
        match r {
            Response::ReadCoils(bits) => bits[..3].to_vec(),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_late_answer_is_not_taken_for_the_next_one() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
        let master = std::fs::File::from(pty.master);
        let mut stale = master.try_clone().unwrap();
        let cfg = SerialConfig {
            port: path,
            baud: Default::default(),
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            rs485: false,
            inter_frame_gap_us: None,
        };
        let mut link = Link::rtu(cfg, None);
        let read = Request::ReadCoils {
            address: 0,
            count: 3,
        };
        let answering = module(master, vec![0b001, 0b100]);
        let first = link
            .request(1, &read, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(coils(first), [true, false, false]);
        // An answer that arrives after its request timed out sits in the input queue...
        let mut late = Vec::new();
        rtu::encode_with(1, &mut late, |o| o.extend_from_slice(&[1, 1, 0b010]));
        stale.write_all(&late).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // ...and must not be read as the answer to the next request.
        let second = link
            .request(1, &read, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(coils(second), [false, false, true]);
        answering.join().unwrap();
    }

    fn board_link(log: &watchpost_board::PinLog, n: usize) -> Link {
        let relays = (0..n)
            .map(|i| {
                let pin = watchpost_board::BoardPin::Sim(log.pin(&format!("relay{i}")));
                watchpost_board::Relay::new(format!("relay{i}"), pin).unwrap()
            })
            .collect();
        Link::board(relays)
    }

    #[tokio::test]
    async fn board_relays_answer_coil_requests_on_their_lines() {
        let log = watchpost_board::PinLog::new();
        let mut link = board_link(&log, 2);
        log.clear();
        let t = Duration::from_secs(1);
        let on = Request::WriteSingleCoil {
            address: 1,
            on: true,
        };
        assert_eq!(
            link.request(1, &on, t).await.unwrap(),
            Response::WriteSingleCoil {
                address: 1,
                on: true
            }
        );
        // The second relay's line went high, the first was not touched.
        let changes: Vec<(String, bool)> = log
            .changes()
            .into_iter()
            .map(|c| (c.pin, c.level))
            .collect();
        assert_eq!(changes, vec![("relay1".to_owned(), true)]);
        let read = Request::ReadCoils {
            address: 0,
            count: 2,
        };
        assert_eq!(
            link.request(1, &read, t).await.unwrap(),
            Response::ReadCoils(vec![false, true])
        );
        let both = Request::WriteMultipleCoils {
            address: 0,
            values: vec![true, false],
        };
        link.request(1, &both, t).await.unwrap();
        assert_eq!(
            link.request(1, &read, t).await.unwrap(),
            Response::ReadCoils(vec![true, false])
        );
        let last = |pin: &str| log.changes_of(pin).last().map(|c| c.0);
        assert_eq!((last("relay0"), last("relay1")), (Some(true), Some(false)));
    }

    #[tokio::test]
    async fn unavailable_board_relays_fail_every_request_with_the_reason() {
        let mut link = Link::board_unavailable("gpiochip0 is busy".into());
        let read = Request::ReadCoils {
            address: 0,
            count: 1,
        };
        let err = link
            .request(1, &read, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(err.code(), RelayCode::RelayUnreachable);
        assert!(err.to_string().contains("gpiochip0 is busy"), "{err}");
    }

    #[tokio::test]
    async fn board_relays_refuse_what_a_module_would_refuse() {
        let log = watchpost_board::PinLog::new();
        let mut link = board_link(&log, 2);
        let t = Duration::from_secs(1);
        let beyond = Request::WriteSingleCoil {
            address: 2,
            on: true,
        };
        let err = link.request(1, &beyond, t).await.unwrap_err();
        assert!(
            matches!(
                err,
                RelayError::Response {
                    source: ResponseError::Exception {
                        code: ExceptionCode::IllegalDataAddress,
                        ..
                    },
                    ..
                }
            ),
            "{err}"
        );
        let holding = Request::ReadHoldingRegisters {
            address: 0,
            count: 1,
        };
        let err = link.request(1, &holding, t).await.unwrap_err();
        assert_eq!(err.code(), RelayCode::RelayBadResponse);
        assert!(err.to_string().contains("board"), "{err}");
        let none = Request::ReadCoils {
            address: 0,
            count: 0,
        };
        assert!(link.request(1, &none, t).await.is_err());
    }
}
