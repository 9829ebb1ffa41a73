//! Namespace URIs used by ONVIF, SOAP, WS-Security and WS-Discovery.

pub const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const DEVICE: &str = "http://www.onvif.org/ver10/device/wsdl";
pub const MEDIA: &str = "http://www.onvif.org/ver10/media/wsdl";
pub const MEDIA2: &str = "http://www.onvif.org/ver20/media/wsdl";
pub const EVENTS: &str = "http://www.onvif.org/ver10/events/wsdl";
pub const PTZ: &str = "http://www.onvif.org/ver20/ptz/wsdl";
pub const IMAGING: &str = "http://www.onvif.org/ver20/imaging/wsdl";
pub const SCHEMA: &str = "http://www.onvif.org/ver10/schema";
pub const ERROR: &str = "http://www.onvif.org/ver10/error";
pub const NETWORK: &str = "http://www.onvif.org/ver10/network/wsdl";
pub const WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
pub const WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
pub const PASSWORD_DIGEST: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
pub const PASSWORD_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";
pub const WSA: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
pub const WSD: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery";
/// The `To` of multicast discovery messages.
pub const WSD_URN: &str = "urn:schemas-xmlsoap-org:ws:2005:04:discovery";
/// WS-BaseNotification (Renew, Unsubscribe, notification messages).
pub const WSNT: &str = "http://docs.oasis-open.org/wsn/b-2";
/// WS-Topics (the topic set of GetEventProperties).
pub const WSTOP: &str = "http://docs.oasis-open.org/wsn/t-1";
/// WS-Addressing 1.0, the endpoint references of WS-BaseNotification.
pub const WSA10: &str = "http://www.w3.org/2005/08/addressing";
/// The ONVIF topic namespace (`tns1:`).
pub const TOPICS: &str = "http://www.onvif.org/ver10/topics";
pub const XS: &str = "http://www.w3.org/2001/XMLSchema";
pub const WSA_ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";

/// The prefixes every response envelope declares.
pub const ENVELOPE_DECLS: &[(&str, &str)] = &[
    ("xmlns:s", SOAP12),
    ("xmlns:tt", SCHEMA),
    ("xmlns:tds", DEVICE),
    ("xmlns:trt", MEDIA),
    ("xmlns:ter", ERROR),
    ("xmlns:tev", EVENTS),
    ("xmlns:wsnt", WSNT),
    ("xmlns:wstop", WSTOP),
    ("xmlns:wsa5", WSA10),
    ("xmlns:tns1", TOPICS),
    ("xmlns:xs", XS),
];
