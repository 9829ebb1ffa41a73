//! The recording ingest of RTSP cameras: an RTSP client on the camera's tokio task (the
//! `retina` crate), no GStreamer.
//!
//! When a camera's main stream is only recorded (no detection, or detection from its sub
//! stream), nothing needs it decoded, and GStreamer's `rtspsrc` → depayloader → parser chain
//! costs 1.3–1.6× `ffmpeg -c copy` for RTSP alone (several thread hand-offs and locks per RTP
//! packet; `docs/capture.md`). This client reads the interleaved RTP of the RTSP/TCP
//! connection (or UDP) on one task, depacketises H.264/H.265 straight into access units with
//! 4-byte length prefixes — the form the MP4 writer stores — and hands them to the recorder
//! like the GStreamer path does. Decision: `docs/decisions/0004-rtsp-recording-ingest.md`.
//!
//! Timestamps are the RTP timestamps (presentation time) from the start of the session; a
//! stream whose presentation times go backwards has B-frames, which need a decode order the
//! RTP timestamps do not carry, and is refused with [`Ended::NeedsParser`] so the camera
//! falls back to the GStreamer chain (whose parser derives it).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use retina::client::{
    Credentials, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
    Transport, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};

use percent_encoding::percent_decode_str;

use crate::mp4::{Codec, Sample, TrackInfo};
use crate::pipeline::RtspSource;

/// Where the client delivers access units (the recorder's channel, through the camera task).
pub type OnAccessUnit = Arc<dyn Fn(Sample, Arc<TrackInfo>) + Send + Sync>;

/// What the client needs to reach a camera: the camera's RTSP settings (their `sub_url` and
/// `latency_ms` do not apply) and the longest wait for an answer to each RTSP request and for
/// a frame once playing.
#[derive(Debug, Clone)]
pub struct Target {
    pub source: RtspSource,
    pub timeout: Duration,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The camera or the network failed; the reason is for the camera's status.
    Failed(String),
    /// The stream needs GStreamer's parser (B-frames): use the GStreamer ingest instead.
    NeedsParser(String),
}

/// Splits credentials out of `url` (the client takes them separately), preferring the
/// configured ones.
fn url_and_credentials(t: &RtspSource) -> Result<(url::Url, Option<Credentials>), String> {
    let mut url = url::Url::parse(&t.url).map_err(|e| format!("invalid camera URL: {e}"))?;
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let from_url = (!url.username().is_empty()).then(|| Credentials {
        username: decode(url.username()),
        password: url.password().map(decode).unwrap_or_default(),
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let configured = t.username.as_ref().map(|u| Credentials {
        username: u.clone(),
        password: t.password.clone().unwrap_or_default(),
    });
    Ok((url, configured.or(from_url)))
}

async fn within<T, E: std::fmt::Display>(
    what: &str,
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {} ms", limit.as_millis())),
    }
}

/// The track description of the stream's current parameters.
fn track_of(p: &retina::codec::VideoParameters) -> Option<TrackInfo> {
    let codec = match p.codec_params() {
        VideoParametersCodec::H264 { .. } => Codec::H264,
        VideoParametersCodec::H265 { .. } => Codec::H265,
        _ => return None,
    };
    let (width, height) = p.pixel_dimensions();
    Some(TrackInfo {
        codec,
        width,
        height,
        codec_data: p.extra_data().to_vec(),
    })
}

/// Whether an access unit of 4-byte length-prefixed H.265 NAL units holds an IRAP picture
/// (BLA, IDR or CRA: NAL unit types 16–23).
fn h265_has_irap(mut data: &[u8]) -> bool {
    while data.len() >= 5 {
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let nal_type = (data[4] >> 1) & 0x3f;
        if (16..=23).contains(&nal_type) {
            return true;
        }
        let Some(rest) = data.get(4 + len..) else {
            return false;
        };
        data = rest;
    }
    false
}

/// RTP ticks of a 90 kHz clock (any rate, in general) to nanoseconds.
fn ticks_to_ns(ticks: i64, clock_rate: u32) -> i64 {
    (i128::from(ticks) * 1_000_000_000 / i128::from(clock_rate.max(1))) as i64
}

/// Reads the camera until the session fails; each access unit goes to `on_au`.
pub async fn run(camera: &str, target: &Target, on_au: OnAccessUnit) -> Ended {
    match session(camera, target, &on_au).await {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

async fn session(camera: &str, t: &Target, on_au: &OnAccessUnit) -> Result<Never, Ended> {
    let fail = Ended::Failed;
    let (url, creds) = url_and_credentials(&t.source).map_err(fail)?;
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("Watchpost/{}", env!("CARGO_PKG_VERSION")));
    let mut described = within(
        "DESCRIBE",
        t.timeout,
        Session::describe(url.clone(), options),
    )
    .await
    .map_err(fail)?;
    let Some(index) = described.streams().iter().position(|s| {
        s.media() == "video"
            && (s.encoding_name().eq_ignore_ascii_case("h264")
                || s.encoding_name().eq_ignore_ascii_case("h265"))
    }) else {
        let found: Vec<String> = described
            .streams()
            .iter()
            .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
            .collect();
        return Err(Ended::Failed(format!(
            "no H.264/H.265 video stream (the camera offers {})",
            found.join(", ")
        )));
    };
    let transport = if t.source.tcp {
        Transport::Tcp(TcpTransportOptions::default())
    } else {
        Transport::Udp(UdpTransportOptions::default())
    };
    within(
        "SETUP",
        t.timeout,
        described.setup(
            index,
            SetupOptions::default()
                .transport(transport)
                .frame_format(FrameFormat::MP4),
        ),
    )
    .await
    .map_err(fail)?;
    let playing = within("PLAY", t.timeout, described.play(PlayOptions::default()))
        .await
        .map_err(fail)?;
    let mut demuxed = playing
        .demuxed()
        .map_err(|e| Ended::Failed(format!("camera stream: {e}")))?;
    tracing::info!(camera, %url, tcp = t.source.tcp, "recording ingest playing (RTSP client)");
    let mut track: Option<Arc<TrackInfo>> = None;
    let mut last_pts: Option<i64> = None;
    loop {
        let item = match tokio::time::timeout(t.timeout, demuxed.next()).await {
            Err(_) => {
                return Err(Ended::Failed(format!(
                    "no data from the camera for {} ms",
                    t.timeout.as_millis()
                )));
            }
            Ok(None) => return Err(Ended::Failed("the camera ended the stream".into())),
            Ok(Some(Err(e))) => return Err(Ended::Failed(format!("camera stream: {e}"))),
            Ok(Some(Ok(item))) => item,
        };
        let CodecItem::VideoFrame(frame) = item else {
            continue;
        };
        if track.is_none() || frame.has_new_parameters() {
            track = match demuxed.streams()[index].parameters() {
                Some(ParametersRef::Video(p)) => track_of(p).map(Arc::new),
                _ => None,
            };
        }
        let Some(track) = track.clone() else {
            // No SPS/PPS yet (neither in the SDP nor in the stream): nothing can be recorded.
            continue;
        };
        let ts = frame.timestamp();
        let pts_ns = ticks_to_ns(ts.elapsed(), ts.clock_rate().get());
        if last_pts.is_some_and(|last| pts_ns < last) {
            return Err(Ended::NeedsParser(
                "the stream has B-frames (presentation times go backwards)".into(),
            ));
        }
        last_pts = Some(pts_ns);
        // retina counts only IDR pictures as random access points in H.265; a CRA (what x265
        // and many cameras send after the first keyframe, open GOP) starts a segment too, as
        // with GStreamer's parser.
        let keyframe = frame.is_random_access_point()
            || (track.codec == Codec::H265 && h265_has_irap(frame.data()));
        on_au(
            Sample {
                data: bytes::Bytes::from(frame.into_data()),
                dts_ns: pts_ns,
                pts_ns,
                keyframe,
            },
            track,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, user: Option<&str>) -> RtspSource {
        RtspSource {
            url: url.into(),
            sub_url: None,
            tcp: true,
            latency_ms: 0,
            username: user.map(Into::into),
            password: user.map(|_| "configured".into()),
        }
    }

    #[test]
    fn credentials_leave_the_url() {
        let (url, creds) =
            url_and_credentials(&target("rtsp://adm%40in:p%3Ass@cam:554/s1", None)).unwrap();
        assert_eq!(url.as_str(), "rtsp://cam:554/s1");
        let c = creds.unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("adm@in", "p:ss")
        );
        // Configured credentials win over the URL's.
        let (url, creds) =
            url_and_credentials(&target("rtsp://u:p@cam/s1", Some("admin"))).unwrap();
        assert_eq!(url.as_str(), "rtsp://cam/s1");
        assert_eq!(creds.unwrap().password, "configured");
        let (_, creds) = url_and_credentials(&target("rtsp://cam/s1", None)).unwrap();
        assert!(creds.is_none());
        assert!(url_and_credentials(&target("not a url", None)).is_err());
    }

    #[test]
    fn h265_irap_pictures_are_found() {
        let nal = |t: u8, len: usize| {
            let mut v = (len as u32 + 2).to_be_bytes().to_vec();
            v.extend([t << 1, 1]);
            v.extend(std::iter::repeat_n(0u8, len));
            v
        };
        // TRAIL_R alone: not a keyframe; CRA (21) after an SEI (39): a keyframe; IDR_W_RADL (19).
        assert!(!h265_has_irap(&nal(1, 10)));
        assert!(h265_has_irap(&[nal(39, 3), nal(21, 10)].concat()));
        assert!(h265_has_irap(&nal(19, 0)));
        // A length running past the end stops the scan.
        let mut cut = nal(1, 10);
        cut[3] = 200;
        assert!(!h265_has_irap(&[cut, nal(21, 1)].concat()));
    }

    #[test]
    fn rtp_ticks_become_nanoseconds() {
        assert_eq!(ticks_to_ns(90_000, 90_000), 1_000_000_000);
        assert_eq!(ticks_to_ns(3_000, 90_000), 33_333_333);
        assert_eq!(ticks_to_ns(-90, 90_000), -1_000_000);
    }
}
