//! The client side, for finding cameras on the LAN (the hub's setup wizard): a WS-Discovery
//! Probe for `dn:NetworkVideoTransmitter` and its ProbeMatches, then the device and media
//! requests that turn a discovered device into RTSP URLs — `GetCapabilities` (the media
//! service address), `GetProfiles` and `GetStreamUri`, each with a WS-UsernameToken
//! PasswordDigest header when credentials are given.
//!
//! Sans-IO like the rest of the crate: the caller sends the bytes (UDP, HTTP POST with
//! [`crate::CONTENT_TYPE`]) and supplies the nonce and the clock; answers are read through the
//! same bounded XML parser the server uses, and a SOAP fault becomes
//! [`ClientError::Fault`] with its reason.

use crate::auth::password_digest;
use crate::ns;
use crate::soap::{envelope_ns, write_envelope};
use crate::xml::{self, Element, Limits, XmlError, XmlWriter};

/// Largest SOAP answer read from a device.
pub const MAX_RESPONSE: usize = 256 * 1024;

/// Why an answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("reading the {what} answer: {source}")]
    Xml {
        what: &'static str,
        source: XmlError,
    },
    #[error("the {what} answer is not a SOAP envelope with a Body")]
    NotEnvelope { what: &'static str },
    #[error("{what} was refused: {reason}")]
    Fault { what: &'static str, reason: String },
    #[error("the {what} answer lacks `{field}`")]
    Field {
        what: &'static str,
        field: &'static str,
    },
}

/// A user name and password for the device.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// What one request's security header needs: credentials, a fresh random nonce and the
/// current time as `wsu:Created` (`2024-05-01T12:00:00Z`, see [`created`]).
#[derive(Debug, Clone, Copy)]
pub struct Auth<'a> {
    pub credentials: &'a Credentials,
    pub nonce: &'a [u8],
    pub created: &'a str,
}

/// Unix seconds as a `wsu:Created` value.
pub fn created(unix_s: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(unix_s)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// The Probe datagram (sent to `239.255.255.250:3702` or unicast to a device's port 3702).
pub fn probe(message_id: &str) -> Vec<u8> {
    write_envelope(
        &[
            ("xmlns:s", ns::SOAP12),
            ("xmlns:a", ns::WSA),
            ("xmlns:d", ns::WSD),
            ("xmlns:dn", ns::NETWORK),
        ],
        |w| {
            w.open("s:Header", &[]);
            w.leaf(
                "a:Action",
                "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe",
            );
            w.leaf("a:MessageID", message_id);
            w.leaf("a:To", ns::WSD_URN);
            w.close("s:Header");
            w.open("s:Body", &[]);
            w.open("d:Probe", &[]);
            w.leaf("d:Types", "dn:NetworkVideoTransmitter");
            w.close("d:Probe");
            w.close("s:Body");
        },
    )
}

/// One device from a ProbeMatches answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeMatch {
    /// The endpoint reference (`urn:uuid:…`), the device's stable identity.
    pub endpoint: String,
    /// Device service URLs.
    pub xaddrs: Vec<String>,
    pub scopes: Vec<String>,
}

impl ProbeMatch {
    /// The `onvif://www.onvif.org/name/…` scope, percent-decoded.
    pub fn name(&self) -> Option<String> {
        self.scope("name")
    }

    /// The `onvif://www.onvif.org/hardware/…` scope, percent-decoded.
    pub fn hardware(&self) -> Option<String> {
        self.scope("hardware")
    }

    fn scope(&self, kind: &str) -> Option<String> {
        let prefix = format!("onvif://www.onvif.org/{kind}/");
        self.scopes
            .iter()
            .find_map(|s| s.strip_prefix(&prefix))
            .map(percent_decode)
    }
}

/// Reads a discovery datagram: the ProbeMatches answering `probe_id` (others' answers and
/// other messages give an empty list; a datagram that is not XML is an error).
pub fn parse_probe_matches(
    datagram: &[u8],
    probe_id: &str,
) -> Result<Vec<ProbeMatch>, ClientError> {
    const WHAT: &str = "ProbeMatches";
    let root = xml::parse(
        datagram,
        Limits {
            max_bytes: crate::discovery::MAX_DATAGRAM,
            max_depth: 12,
            max_elements: 512,
        },
    )
    .map_err(|source| ClientError::Xml { what: WHAT, source })?;
    let env_ns = envelope_ns(&root).ok_or(ClientError::NotEnvelope { what: WHAT })?;
    let relates_to = root
        .child(env_ns, "Header")
        .and_then(|h| h.child(ns::WSA, "RelatesTo"))
        .map(|r| r.text.as_str());
    let Some(matches) = root
        .child(env_ns, "Body")
        .and_then(|b| b.child(ns::WSD, "ProbeMatches"))
    else {
        return Ok(Vec::new());
    };
    if relates_to != Some(probe_id) {
        return Ok(Vec::new());
    }
    let words = |e: &Element, name: &str| -> Vec<String> {
        e.child(ns::WSD, name)
            .map(|x| x.text.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    Ok(matches
        .children
        .iter()
        .filter(|m| m.is(ns::WSD, "ProbeMatch"))
        .map(|m| ProbeMatch {
            endpoint: m
                .child(ns::WSA, "EndpointReference")
                .and_then(|r| r.child(ns::WSA, "Address"))
                .map(|a| a.text.clone())
                .unwrap_or_default(),
            xaddrs: words(m, "XAddrs"),
            scopes: words(m, "Scopes"),
        })
        .filter(|m| !m.xaddrs.is_empty())
        .collect())
}

/// A request envelope: the security header when `auth` is given, then `body`.
fn request(auth: Option<Auth<'_>>, body: impl FnOnce(&mut XmlWriter)) -> Vec<u8> {
    const DECLS: &[(&str, &str)] = &[
        ("xmlns:s", ns::SOAP12),
        ("xmlns:tt", ns::SCHEMA),
        ("xmlns:tds", ns::DEVICE),
        ("xmlns:trt", ns::MEDIA),
        ("xmlns:wsse", ns::WSSE),
        ("xmlns:wsu", ns::WSU),
    ];
    write_envelope(DECLS, |w| {
        if let Some(a) = auth {
            use base64::Engine as _;
            let nonce = base64::engine::general_purpose::STANDARD.encode(a.nonce);
            w.open("s:Header", &[]);
            w.open("wsse:Security", &[("s:mustUnderstand", "true")]);
            w.open("wsse:UsernameToken", &[]);
            w.leaf("wsse:Username", &a.credentials.user);
            w.leaf_with(
                "wsse:Password",
                &[("Type", ns::PASSWORD_DIGEST)],
                &password_digest(a.nonce, a.created, &a.credentials.password),
            );
            w.leaf_with(
                "wsse:Nonce",
                &[(
                    "EncodingType",
                    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary",
                )],
                &nonce,
            );
            w.leaf("wsu:Created", a.created);
            w.close("wsse:UsernameToken");
            w.close("wsse:Security");
            w.close("s:Header");
        }
        w.open("s:Body", &[]);
        body(w);
        w.close("s:Body");
    })
}

/// `GetCapabilities` (Media) to the device service.
pub fn get_capabilities(auth: Option<Auth<'_>>) -> Vec<u8> {
    request(auth, |w| {
        w.open("tds:GetCapabilities", &[]);
        w.leaf("tds:Category", "Media");
        w.close("tds:GetCapabilities");
    })
}

/// `GetProfiles` to the media service.
pub fn get_profiles(auth: Option<Auth<'_>>) -> Vec<u8> {
    request(auth, |w| w.empty("trt:GetProfiles", &[]))
}

/// `GetStreamUri` (RTP unicast over RTSP) for a profile, to the media service.
pub fn get_stream_uri(auth: Option<Auth<'_>>, profile_token: &str) -> Vec<u8> {
    request(auth, |w| {
        w.open("trt:GetStreamUri", &[]);
        w.open("trt:StreamSetup", &[]);
        w.leaf("tt:Stream", "RTP-Unicast");
        w.open("tt:Transport", &[]);
        w.leaf("tt:Protocol", "RTSP");
        w.close("tt:Transport");
        w.close("trt:StreamSetup");
        w.leaf("trt:ProfileToken", profile_token);
        w.close("trt:GetStreamUri");
    })
}

/// A media profile as `GetProfiles` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub token: String,
    pub name: String,
    /// The video encoder's `Encoding` (`H264`, `H265`, `JPEG`…), when it has one.
    pub encoding: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// The media service address of a `GetCapabilities` answer.
pub fn parse_media_xaddr(body: &[u8]) -> Result<String, ClientError> {
    const WHAT: &str = "GetCapabilities";
    let op = response_body(body, WHAT)?;
    op.child_local("Capabilities")
        .and_then(|c| c.child_local("Media"))
        .and_then(|m| m.child_text("XAddr"))
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .ok_or(ClientError::Field {
            what: WHAT,
            field: "Capabilities/Media/XAddr",
        })
}

/// The profiles of a `GetProfiles` answer.
pub fn parse_profiles(body: &[u8]) -> Result<Vec<Profile>, ClientError> {
    const WHAT: &str = "GetProfiles";
    let op = response_body(body, WHAT)?;
    let num = |e: Option<&Element>, name: &str| e.and_then(|e| e.child_text(name)?.parse().ok());
    Ok(op
        .children
        .iter()
        .filter(|p| p.name == "Profiles")
        .filter_map(|p| {
            let token = p.attr("token").filter(|t| !t.is_empty())?.to_string();
            let encoder = p.child_local("VideoEncoderConfiguration");
            let resolution = encoder.and_then(|e| e.child_local("Resolution"));
            Some(Profile {
                name: p.child_text("Name").unwrap_or(&token).to_string(),
                token,
                encoding: encoder
                    .and_then(|e| e.child_text("Encoding"))
                    .map(str::to_string),
                width: num(resolution, "Width"),
                height: num(resolution, "Height"),
            })
        })
        .collect())
}

/// The URI of a `GetStreamUri` answer.
pub fn parse_stream_uri(body: &[u8]) -> Result<String, ClientError> {
    const WHAT: &str = "GetStreamUri";
    let op = response_body(body, WHAT)?;
    op.child_local("MediaUri")
        .and_then(|m| m.child_text("Uri"))
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .ok_or(ClientError::Field {
            what: WHAT,
            field: "MediaUri/Uri",
        })
}

/// The first element of an answer's Body; a fault is [`ClientError::Fault`].
fn response_body(body: &[u8], what: &'static str) -> Result<Element, ClientError> {
    let root = xml::parse(
        body,
        Limits {
            max_bytes: MAX_RESPONSE,
            max_depth: 24,
            max_elements: 8192,
        },
    )
    .map_err(|source| ClientError::Xml { what, source })?;
    let env_ns = envelope_ns(&root).ok_or(ClientError::NotEnvelope { what })?;
    let op = root
        .child(env_ns, "Body")
        .and_then(|b| b.children.first())
        .ok_or(ClientError::NotEnvelope { what })?;
    if op.is(env_ns, "Fault") {
        // SOAP 1.2: Reason/Text and Code/Subcode/Value; SOAP 1.1: faultstring.
        let reason = op
            .child_local("Reason")
            .and_then(|r| r.child_text("Text"))
            .or_else(|| op.child_text("faultstring"))
            .unwrap_or("")
            .to_string();
        let subcode = op
            .child_local("Code")
            .and_then(|c| c.child_local("Subcode"))
            .and_then(|s| s.child_text("Value"))
            .unwrap_or("");
        let reason = match (reason.is_empty(), subcode.is_empty()) {
            (false, false) => format!("{reason} ({subcode})"),
            (false, true) => reason,
            (true, false) => subcode.to_string(),
            (true, true) => "a SOAP fault without a reason".to_string(),
        };
        return Err(ClientError::Fault { what, reason });
    }
    Ok(op.clone())
}

/// `%XX` sequences decoded (scopes are URIs); invalid sequences are kept as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::{self, AppSequence, Identity};
    use crate::soap::{PasswordType, parse_envelope};

    fn creds() -> Credentials {
        Credentials {
            user: "admin".into(),
            password: "pw".into(),
        }
    }

    #[test]
    fn the_probe_is_one_our_responder_understands() {
        let p = probe("urn:uuid:1");
        match discovery::parse(&p).unwrap() {
            discovery::Message::Probe(p) => {
                assert_eq!(p.message_id, "urn:uuid:1");
                assert_eq!(
                    p.types,
                    vec![(
                        ns::NETWORK.to_string(),
                        "NetworkVideoTransmitter".to_string()
                    )]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn probe_matches_from_our_responder_and_a_camera() {
        let id = Identity {
            endpoint: "urn:uuid:dev".into(),
            scopes: vec![
                "onvif://www.onvif.org/name/Front%20door".into(),
                "onvif://www.onvif.org/hardware/Watchpost".into(),
            ],
            xaddrs: vec!["http://10.0.0.5/onvif/device_service".into()],
            metadata_version: 1,
        };
        let seq = AppSequence {
            instance_id: 1,
            message_number: 1,
        };
        let answer = discovery::probe_matches(&id, "urn:uuid:p", "urn:uuid:m", seq);
        let m = parse_probe_matches(&answer, "urn:uuid:p").unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].endpoint, "urn:uuid:dev");
        assert_eq!(m[0].xaddrs, id.xaddrs);
        assert_eq!(m[0].name().as_deref(), Some("Front door"));
        assert_eq!(m[0].hardware().as_deref(), Some("Watchpost"));
        // An answer to someone else's probe is not ours.
        assert!(
            parse_probe_matches(&answer, "urn:uuid:other")
                .unwrap()
                .is_empty()
        );

        // A camera's answer (SOAP 1.2, other prefixes, two addresses).
        let camera = br#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsdd="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:tdn="http://www.onvif.org/ver10/network/wsdl">
<SOAP-ENV:Header><wsa:MessageID>uuid:x</wsa:MessageID><wsa:RelatesTo>uuid:probe</wsa:RelatesTo></SOAP-ENV:Header>
<SOAP-ENV:Body><wsdd:ProbeMatches><wsdd:ProbeMatch>
<wsa:EndpointReference><wsa:Address>urn:uuid:cam</wsa:Address></wsa:EndpointReference>
<wsdd:Types>tdn:NetworkVideoTransmitter</wsdd:Types>
<wsdd:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/hardware/RLC-810A onvif://www.onvif.org/name/Reolink</wsdd:Scopes>
<wsdd:XAddrs>http://192.168.1.20:8000/onvif/device_service http://[fe80::1]:8000/onvif/device_service</wsdd:XAddrs>
<wsdd:MetadataVersion>1</wsdd:MetadataVersion></wsdd:ProbeMatch></wsdd:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;
        let m = parse_probe_matches(camera, "uuid:probe").unwrap();
        assert_eq!(m[0].xaddrs.len(), 2);
        assert_eq!(m[0].hardware().as_deref(), Some("RLC-810A"));
        assert_eq!(m[0].name().as_deref(), Some("Reolink"));

        assert!(parse_probe_matches(b"not xml", "x").is_err());
        // Our own probe echoed back (multicast loop) is not a match.
        assert!(
            parse_probe_matches(&probe("uuid:probe"), "uuid:probe")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn requests_carry_a_digest_our_server_accepts() {
        let c = creds();
        let created = created(1_700_000_000);
        assert_eq!(created, "2023-11-14T22:13:20Z");
        let nonce = [7u8; 16];
        let auth = Auth {
            credentials: &c,
            nonce: &nonce,
            created: &created,
        };
        let req = get_stream_uri(Some(auth), "main<1>");
        let env = parse_envelope(&req, Limits::default()).unwrap();
        let token = env.security.unwrap();
        assert_eq!(token.username, "admin");
        assert_eq!(token.password_type, PasswordType::Digest);
        assert_eq!(token.password, password_digest(&nonce, &created, "pw"));
        assert_eq!(token.created.as_deref(), Some(created.as_str()));
        assert!(env.body.is(ns::MEDIA, "GetStreamUri"));
        assert_eq!(env.body.child_text("ProfileToken"), Some("main<1>"));
        assert!(!format!("{c:?}").contains("pw"));

        let env = parse_envelope(&get_profiles(None), Limits::default()).unwrap();
        assert!(env.security.is_none());
        assert!(env.body.is(ns::MEDIA, "GetProfiles"));
        let env = parse_envelope(&get_capabilities(None), Limits::default()).unwrap();
        assert!(env.body.is(ns::DEVICE, "GetCapabilities"));
    }

    #[test]
    fn answers_profiles_uri_and_faults() {
        let profiles = br#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body><trt:GetProfilesResponse>
<trt:Profiles token="main" fixed="true"><tt:Name>Main</tt:Name><tt:VideoSourceConfiguration token="vs"><tt:Name>vs</tt:Name></tt:VideoSourceConfiguration>
<tt:VideoEncoderConfiguration token="enc"><tt:Name>enc</tt:Name><tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>1920</tt:Width><tt:Height>1080</tt:Height></tt:Resolution></tt:VideoEncoderConfiguration></trt:Profiles>
<trt:Profiles token="audio"><tt:Name>Audio only</tt:Name></trt:Profiles>
<trt:Profiles><tt:Name>no token</tt:Name></trt:Profiles>
</trt:GetProfilesResponse></s:Body></s:Envelope>"#;
        let p = parse_profiles(profiles).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[0],
            Profile {
                token: "main".into(),
                name: "Main".into(),
                encoding: Some("H264".into()),
                width: Some(1920),
                height: Some(1080),
            }
        );
        assert_eq!((p[1].encoding.as_deref(), p[1].width), (None, None));

        let uri = br#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body><trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>rtsp://10.0.0.5:554/cam1</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect></trt:MediaUri></trt:GetStreamUriResponse></s:Body></s:Envelope>"#;
        assert_eq!(parse_stream_uri(uri).unwrap(), "rtsp://10.0.0.5:554/cam1");

        let caps = br#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body><tds:GetCapabilitiesResponse><tds:Capabilities><tt:Media><tt:XAddr>http://10.0.0.5/onvif/media_service</tt:XAddr></tt:Media></tds:Capabilities></tds:GetCapabilitiesResponse></s:Body></s:Envelope>"#;
        assert_eq!(
            parse_media_xaddr(caps).unwrap(),
            "http://10.0.0.5/onvif/media_service"
        );

        // Our server's own fault for a wrong password.
        let fault = crate::soap::Fault::not_authorized().to_xml();
        let e = parse_profiles(&fault).unwrap_err();
        assert!(
            matches!(&e, ClientError::Fault { what: "GetProfiles", reason } if reason.contains("NotAuthorized")),
            "{e}"
        );
        assert!(matches!(
            parse_stream_uri(b"<x/>"),
            Err(ClientError::NotEnvelope { .. })
        ));
        assert!(matches!(
            parse_media_xaddr(&uri[..]),
            Err(ClientError::Field { .. })
        ));
    }

    #[test]
    fn scopes_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b%2Fc%zz%4"), "a b/c%zz%4");
    }
}
