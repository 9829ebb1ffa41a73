//! WS-Discovery (the April 2005 draft ONVIF uses): reading Probe messages, deciding whether
//! they match this device, and writing ProbeMatches, Hello and Bye.
//!
//! Sans-IO: the caller owns the UDP socket, generates message ids and keeps the
//! [`AppSequence`] counter.

use crate::ns;
use crate::soap::{envelope_ns, write_envelope};
use crate::xml::{self, Limits, XmlError, XmlWriter};

/// Discovery messages are single datagrams; anything larger is not a probe we answer.
pub const MAX_DATAGRAM: usize = 8 * 1024;

const STRCMP0: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/strcmp0";
const RFC3986: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc3986";

/// The qualified types this device announces (namespace, local name, prefix used on the wire).
pub const DEVICE_TYPES: &[(&str, &str, &str)] = &[
    (ns::NETWORK, "NetworkVideoTransmitter", "dn"),
    (ns::DEVICE, "Device", "tds"),
];

/// What the device announces about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Stable endpoint reference, `urn:uuid:…`.
    pub endpoint: String,
    pub scopes: Vec<String>,
    /// Device service URLs, space-separated on the wire.
    pub xaddrs: Vec<String>,
    pub metadata_version: u32,
}

/// The `AppSequence` header: instance id (changes each start) and a message counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppSequence {
    pub instance_id: u64,
    pub message_number: u64,
}

/// A received Probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub message_id: String,
    /// Requested types as (namespace, local name); the namespace is empty when the prefix
    /// could not be resolved.
    pub types: Vec<(String, String)>,
    pub scopes: Vec<String>,
    pub match_by: Option<String>,
}

/// A datagram read from the discovery port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Probe(Probe),
    /// Any other discovery message (Hello/Bye of other devices, Resolve…): ignored.
    Other {
        name: String,
    },
}

/// Why a datagram was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("parsing the datagram: {0}")]
    Xml(#[from] XmlError),
    #[error("not a SOAP envelope")]
    NotEnvelope,
    #[error("the envelope has no Body element")]
    NoBody,
    #[error("the Probe has no MessageID")]
    NoMessageId,
}

/// Reads one discovery datagram.
pub fn parse(datagram: &[u8]) -> Result<Message, DiscoveryError> {
    let root = xml::parse(
        datagram,
        Limits {
            max_bytes: MAX_DATAGRAM,
            max_depth: 12,
            max_elements: 256,
        },
    )?;
    let env_ns = envelope_ns(&root).ok_or(DiscoveryError::NotEnvelope)?;
    let body = root
        .child(env_ns, "Body")
        .and_then(|b| b.children.first())
        .ok_or(DiscoveryError::NoBody)?;
    if !body.is(ns::WSD, "Probe") {
        return Ok(Message::Other {
            name: body.name.clone(),
        });
    }
    let message_id = root
        .child(env_ns, "Header")
        .and_then(|h| h.child(ns::WSA, "MessageID"))
        .map(|m| m.text.clone())
        .filter(|m| !m.is_empty())
        .ok_or(DiscoveryError::NoMessageId)?;
    let types = body
        .child(ns::WSD, "Types")
        .map(|t| {
            t.text
                .split_whitespace()
                .map(|q| {
                    t.resolve_qname(q).unwrap_or_else(|| {
                        let local = q.rsplit(':').next().unwrap_or(q);
                        (String::new(), local.to_string())
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let scopes_el = body.child(ns::WSD, "Scopes");
    let scopes = scopes_el
        .map(|s| s.text.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let match_by = scopes_el
        .and_then(|s| s.attr("MatchBy"))
        .map(str::to_string);
    Ok(Message::Probe(Probe {
        message_id,
        types,
        scopes,
        match_by,
    }))
}

/// Splits `scheme://authority/path` into lower-cased scheme and authority and the path
/// segments (trailing empty segment dropped).
fn split_uri(uri: &str) -> (String, Vec<&str>) {
    let (head, path) = match uri.find("://") {
        Some(i) => {
            let after = &uri[i + 3..];
            match after.find('/') {
                Some(j) => (&uri[..i + 3 + j], &after[j + 1..]),
                None => (uri, ""),
            }
        }
        None => ("", uri),
    };
    let mut segs: Vec<&str> = path.split('/').collect();
    if segs.last() == Some(&"") {
        segs.pop();
    }
    (head.to_ascii_lowercase(), segs)
}

/// RFC 3986 prefix matching as WS-Discovery defines it: same scheme and authority, and the
/// requested path segments are a prefix of the device's.
fn scope_matches(requested: &str, ours: &str, match_by: Option<&str>) -> bool {
    match match_by {
        None | Some(RFC3986) => {
            let (rh, rs) = split_uri(requested);
            let (oh, os) = split_uri(ours);
            rh == oh && rs.len() <= os.len() && rs.iter().zip(&os).all(|(a, b)| a == b)
        }
        Some(STRCMP0) => requested == ours,
        Some(_) => false,
    }
}

/// Whether `probe` asks for a device like this one.
pub fn matches(probe: &Probe, id: &Identity) -> bool {
    let types_ok = probe.types.iter().all(|(ns, local)| {
        DEVICE_TYPES
            .iter()
            .any(|(tns, tlocal, _)| local == tlocal && (ns.is_empty() || ns == tns))
    });
    let scopes_ok = probe.scopes.iter().all(|s| {
        id.scopes
            .iter()
            .any(|ours| scope_matches(s, ours, probe.match_by.as_deref()))
    });
    types_ok && scopes_ok
}

fn types_text() -> String {
    DEVICE_TYPES
        .iter()
        .map(|(_, local, prefix)| format!("{prefix}:{local}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_header(
    w: &mut XmlWriter,
    message_id: &str,
    relates_to: Option<&str>,
    to: &str,
    action: &str,
    seq: AppSequence,
) {
    w.open("s:Header", &[]);
    w.leaf("a:MessageID", message_id);
    if let Some(r) = relates_to {
        w.leaf("a:RelatesTo", r);
    }
    w.leaf("a:To", to);
    w.leaf("a:Action", &format!("{}/{action}", ns::WSD));
    let (instance, number) = (seq.instance_id.to_string(), seq.message_number.to_string());
    w.empty(
        "d:AppSequence",
        &[
            ("InstanceId", instance.as_str()),
            ("MessageNumber", number.as_str()),
        ],
    );
    w.close("s:Header");
}

fn write_endpoint(w: &mut XmlWriter, id: &Identity, full: bool) {
    w.open("a:EndpointReference", &[]);
    w.leaf("a:Address", &id.endpoint);
    w.close("a:EndpointReference");
    if full {
        w.leaf("d:Types", &types_text());
        w.leaf("d:Scopes", &id.scopes.join(" "));
        w.leaf("d:XAddrs", &id.xaddrs.join(" "));
        w.num("d:MetadataVersion", id.metadata_version);
    }
}

fn message(content: impl FnOnce(&mut XmlWriter)) -> Vec<u8> {
    const DECLS: &[(&str, &str)] = &[
        ("xmlns:s", ns::SOAP12),
        ("xmlns:a", ns::WSA),
        ("xmlns:d", ns::WSD),
        ("xmlns:dn", ns::NETWORK),
        ("xmlns:tds", ns::DEVICE),
    ];
    write_envelope(DECLS, content)
}

/// The unicast answer to a matching probe.
pub fn probe_matches(id: &Identity, probe_id: &str, message_id: &str, seq: AppSequence) -> Vec<u8> {
    message(|w| {
        write_header(
            w,
            message_id,
            Some(probe_id),
            ns::WSA_ANONYMOUS,
            "ProbeMatches",
            seq,
        );
        w.open("s:Body", &[]);
        w.open("d:ProbeMatches", &[]);
        w.open("d:ProbeMatch", &[]);
        write_endpoint(w, id, true);
        w.close("d:ProbeMatch");
        w.close("d:ProbeMatches");
        w.close("s:Body");
    })
}

/// The multicast announcement on start.
pub fn hello(id: &Identity, message_id: &str, seq: AppSequence) -> Vec<u8> {
    message(|w| {
        write_header(w, message_id, None, ns::WSD_URN, "Hello", seq);
        w.open("s:Body", &[]);
        w.open("d:Hello", &[]);
        write_endpoint(w, id, true);
        w.close("d:Hello");
        w.close("s:Body");
    })
}

/// The multicast farewell on stop.
pub fn bye(id: &Identity, message_id: &str, seq: AppSequence) -> Vec<u8> {
    message(|w| {
        write_header(w, message_id, None, ns::WSD_URN, "Bye", seq);
        w.open("s:Body", &[]);
        w.open("d:Bye", &[]);
        write_endpoint(w, id, false);
        w.close("d:Bye");
        w.close("s:Body");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            endpoint: "urn:uuid:6b1a3c2e-0000-4000-8000-000000000001".into(),
            scopes: crate::model::DeviceModel::default_scopes("Watchpost", "WP-1", "lab", ""),
            xaddrs: vec!["http://127.0.0.1:8000/onvif/device_service".into()],
            metadata_version: 1,
        }
    }

    // The shape the WSDiscovery Python package sends.
    const PROBE: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<soap-env:Envelope xmlns:soap-env="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<soap-env:Header><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action><a:MessageID>urn:uuid:abc</a:MessageID><a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></soap-env:Header>
<soap-env:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>onvif://www.onvif.org/Profile/Streaming</d:Scopes></d:Probe></soap-env:Body></soap-env:Envelope>"#;

    #[test]
    fn probe_is_read_and_matched() {
        let Message::Probe(p) = parse(PROBE).unwrap() else {
            panic!("not a probe")
        };
        assert_eq!(p.message_id, "urn:uuid:abc");
        assert_eq!(
            p.types,
            vec![(
                ns::NETWORK.to_string(),
                "NetworkVideoTransmitter".to_string()
            )]
        );
        assert!(matches(&p, &identity()));
        let mut other = p.clone();
        other.scopes = vec!["onvif://www.onvif.org/Profile/G".into()];
        assert!(!matches(&other, &identity()));
        let mut prefix = p.clone();
        prefix.scopes = vec!["onvif://www.onvif.org/Profile".into()];
        assert!(matches(&prefix, &identity()));
        let mut printer = p.clone();
        printer.types = vec![("urn:x".into(), "Printer".into())];
        assert!(!matches(&printer, &identity()));
        let mut empty = p;
        empty.types.clear();
        empty.scopes.clear();
        assert!(matches(&empty, &identity()));
    }

    #[test]
    fn probe_matches_round_trip() {
        let seq = AppSequence {
            instance_id: 7,
            message_number: 3,
        };
        let out = probe_matches(&identity(), "urn:uuid:abc", "urn:uuid:def", seq);
        let root = xml::parse(&out, Limits::default()).unwrap();
        let header = root.child(ns::SOAP12, "Header").unwrap();
        assert_eq!(
            header.child(ns::WSA, "RelatesTo").unwrap().text,
            "urn:uuid:abc"
        );
        let m = root
            .child(ns::SOAP12, "Body")
            .unwrap()
            .child(ns::WSD, "ProbeMatches")
            .unwrap()
            .child(ns::WSD, "ProbeMatch")
            .unwrap();
        let types = m.child(ns::WSD, "Types").unwrap();
        let resolved: Vec<_> = types
            .text
            .split_whitespace()
            .filter_map(|q| types.resolve_qname(q))
            .collect();
        assert!(resolved.contains(&(ns::NETWORK.into(), "NetworkVideoTransmitter".into())));
        assert!(
            m.child_text("Scopes")
                .unwrap()
                .contains("onvif://www.onvif.org/Profile/Streaming")
        );
        // Hello and Bye parse as "other" discovery messages.
        assert_eq!(
            parse(&hello(&identity(), "urn:uuid:1", seq)).unwrap(),
            Message::Other {
                name: "Hello".into()
            }
        );
        assert_eq!(
            parse(&bye(&identity(), "urn:uuid:2", seq)).unwrap(),
            Message::Other { name: "Bye".into() }
        );
        assert!(parse(b"<x/>").is_err());
    }
}
