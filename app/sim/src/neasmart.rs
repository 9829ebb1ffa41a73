//! `watchpost-sim neasmart`: a Rehau Neasmart 2.0 base station on the SysBus, as a Modbus TCP
//! master (what an RS485-to-Ethernet converter forwards from a real base).
//!
//! Every cycle it behaves as the base does: it reads the command registers of the global mode
//! and state and of each simulated zone (FC03); a non-zero command different from its own state
//! is applied (a zone's temperature then drifts towards the new setpoint); it writes its actual
//! status back (FC16 for each zone block: state, setpoint, temperature; FC06 for humidity) and
//! broadcasts the outside temperatures on unit 0, like the base's measurement broadcasts.
//! It reconnects when the gateway goes away. Output: one log line per applied command.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use watchpost_modbus::{Direction, Request, Response, TcpEvent, TcpReceiver, tcp};
use watchpost_neasmart::dpt9;

#[derive(Debug, clap::Args)]
pub struct NeasmartArgs {
    /// The gateway's Modbus TCP server.
    #[arg(long, default_value = "127.0.0.1:5020")]
    gateway: String,
    /// Unit id the base talks to.
    #[arg(long, default_value_t = 240)]
    unit: u8,
    /// Number of bases (1 master + slaves), 1..=5.
    #[arg(long, default_value_t = 1)]
    bases: u8,
    /// Zones per base, 1..=12.
    #[arg(long, default_value_t = 4)]
    zones: u8,
    /// Cycle period.
    #[arg(long, default_value_t = 2000)]
    interval_ms: u64,
}

#[derive(Debug, Clone)]
struct Zone {
    address: u16,
    state: u16,
    setpoint_centi: i64,
    temperature_centi: i64,
    humidity: u16,
}

struct Master {
    stream: TcpStream,
    rx: TcpReceiver,
    transaction: u16,
    unit: u8,
}

impl Master {
    async fn connect(addr: &str, unit: u8) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            rx: TcpReceiver::new(Direction::Responses, Duration::from_secs(2)),
            transaction: 0,
            unit,
        })
    }

    async fn send(&mut self, unit: u8, req: &Request) -> anyhow::Result<u16> {
        self.transaction = self.transaction.wrapping_add(1);
        let frame = tcp::encode_request(self.transaction, unit, req);
        self.stream.write_all(&frame).await?;
        Ok(self.transaction)
    }

    async fn call(&mut self, req: &Request) -> anyhow::Result<Response> {
        let tid = self.send(self.unit, req).await?;
        let mut buf = [0u8; 512];
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            while let Some(ev) = self.rx.poll_event() {
                if let TcpEvent::Frame(adu) = ev
                    && adu.transaction == tid
                {
                    return Ok(Response::decode(&adu.pdu)?);
                }
            }
            let n = tokio::time::timeout_at(deadline.into(), self.stream.read(&mut buf))
                .await
                .context("no answer from the gateway")??;
            if n == 0 {
                bail!("the gateway closed the connection");
            }
            self.rx.push(&buf[..n], Instant::now());
        }
    }

    async fn read(&mut self, address: u16, count: u16) -> anyhow::Result<Vec<u16>> {
        match self
            .call(&Request::ReadHoldingRegisters { address, count })
            .await?
        {
            Response::ReadHoldingRegisters(v) => Ok(v),
            other => bail!("unexpected answer {other:?}"),
        }
    }

    async fn write(&mut self, address: u16, values: Vec<u16>) -> anyhow::Result<()> {
        self.call(&Request::WriteMultipleRegisters { address, values })
            .await
            .map(|_| ())
    }
}

fn encode(centi: i64) -> u16 {
    dpt9::encode_centi(centi).unwrap_or(dpt9::INVALID)
}

async fn cycle(
    m: &mut Master,
    zones: &mut [Zone],
    global: &mut (u16, u16),
    tick: u64,
) -> anyhow::Result<()> {
    // Commands: global mode and state.
    let g = m.read(1, 2).await?;
    if g[0] != 0 && g[0] != global.0 {
        tracing::info!(mode = g[0], "base applies global mode");
        global.0 = g[0];
    }
    if g[1] != 0 && g[1] != global.1 {
        tracing::info!(state = g[1], "base applies global state");
        global.1 = g[1];
    }
    m.write(1, vec![global.0, global.1]).await?;
    for z in zones.iter_mut() {
        let cmd = m.read(z.address, 2).await?;
        if cmd[0] != 0 && cmd[0] != z.state {
            tracing::info!(
                address = z.address,
                state = cmd[0],
                "base applies zone state"
            );
            z.state = cmd[0];
        }
        if cmd[1] != 0 && cmd[1] != dpt9::NOT_APPLICABLE && cmd[1] != encode(z.setpoint_centi) {
            z.setpoint_centi = dpt9::decode_centi(cmd[1]);
            tracing::info!(
                address = z.address,
                setpoint = z.setpoint_centi as f64 / 100.0,
                "base applies zone setpoint"
            );
        }
        // The room drifts towards its setpoint.
        let step = (z.setpoint_centi - z.temperature_centi).clamp(-10, 10);
        z.temperature_centi += step;
        let setpoint = if z.state == 3 {
            dpt9::NOT_APPLICABLE
        } else {
            encode(z.setpoint_centi)
        };
        m.write(
            z.address,
            vec![z.state, setpoint, encode(z.temperature_centi)],
        )
        .await?;
        m.write(z.address + 10, vec![z.humidity]).await?;
    }
    // Measurements broadcast on unit 0: outside and filtered outside temperature.
    let outside = 500 + ((tick % 20) as i64 - 10) * 10;
    let _ = m
        .send(
            0,
            &Request::WriteMultipleRegisters {
                address: 7,
                values: vec![encode(outside), encode(520)],
            },
        )
        .await?;
    Ok(())
}

pub fn run(args: NeasmartArgs) -> anyhow::Result<()> {
    if !(1..=5).contains(&args.bases) || !(1..=12).contains(&args.zones) {
        bail!("--bases must be 1..=5 and --zones 1..=12");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut zones: Vec<Zone> = (1..=args.bases)
            .flat_map(|b| {
                (1..=args.zones).map(move |z| Zone {
                    address: 1200 * (u16::from(b) - 1) + 100 * u16::from(z),
                    state: 1,
                    setpoint_centi: 2100,
                    temperature_centi: 1900 + 30 * i64::from(z),
                    humidity: 40 + u16::from(z),
                })
            })
            .collect();
        let mut global = (1u16, 4u16);
        let mut tick = 0u64;
        println!(
            "{{\"gateway\": \"{}\", \"unit\": {}, \"zones\": {}}}",
            args.gateway,
            args.unit,
            zones.len()
        );
        loop {
            let mut m = match Master::connect(&args.gateway, args.unit).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(error = %e, "gateway not reachable yet");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            tracing::info!(gateway = %args.gateway, "base station connected");
            loop {
                if let Err(e) = cycle(&mut m, &mut zones, &mut global, tick).await {
                    tracing::warn!(error = %e, "cycle failed; reconnecting");
                    break;
                }
                tick += 1;
                tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}
