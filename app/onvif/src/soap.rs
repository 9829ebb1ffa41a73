//! SOAP envelopes: reading a request (security header and body element) and writing a
//! response or a SOAP 1.2 fault.

use crate::ns;
use crate::xml::{self, Element, Limits, XmlError, XmlWriter};

/// The password form a UsernameToken carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordType {
    Digest,
    Text,
}

/// A WS-Security UsernameToken as it appeared in the header (values not yet checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameToken {
    pub username: String,
    pub password: String,
    pub password_type: PasswordType,
    /// Base64 text of the nonce.
    pub nonce: Option<String>,
    /// The `wsu:Created` string exactly as sent.
    pub created: Option<String>,
}

/// A parsed request envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub security: Option<UsernameToken>,
    /// The first element inside the Body: the operation.
    pub body: Element,
}

/// Why a request envelope could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoapError {
    #[error("parsing the request XML: {0}")]
    Xml(#[from] XmlError),
    #[error("root element is {{{ns}}}{name}, not a SOAP envelope")]
    NotEnvelope { ns: String, name: String },
    #[error("the envelope has no Body")]
    NoBody,
    #[error("the Body is empty")]
    EmptyBody,
    #[error("the UsernameToken has no {field}")]
    TokenField { field: &'static str },
    #[error("unknown password type `{type_uri}`")]
    PasswordType { type_uri: String },
}

/// Reads a SOAP 1.2 (or 1.1) request envelope.
pub fn parse_envelope(input: &[u8], limits: Limits) -> Result<Envelope, SoapError> {
    let root = xml::parse(input, limits)?;
    let Some(env_ns) = envelope_ns(&root) else {
        return Err(SoapError::NotEnvelope {
            ns: root.ns,
            name: root.name,
        });
    };
    let security = match root
        .child(env_ns, "Header")
        .and_then(|h| h.child(ns::WSSE, "Security"))
        .and_then(|s| s.child(ns::WSSE, "UsernameToken"))
    {
        Some(token) => Some(parse_token(token)?),
        None => None,
    };
    let body = root.child(env_ns, "Body").ok_or(SoapError::NoBody)?;
    let op = body.children.first().ok_or(SoapError::EmptyBody)?.clone();
    Ok(Envelope { security, body: op })
}

fn parse_token(token: &Element) -> Result<UsernameToken, SoapError> {
    let username = token
        .child(ns::WSSE, "Username")
        .ok_or(SoapError::TokenField { field: "Username" })?
        .text
        .clone();
    let pw = token
        .child(ns::WSSE, "Password")
        .ok_or(SoapError::TokenField { field: "Password" })?;
    // The Type attribute is optional and defaults to PasswordText.
    let password_type = match pw.attr("Type") {
        None => PasswordType::Text,
        Some(t) if t == ns::PASSWORD_DIGEST || t.ends_with("#PasswordDigest") => {
            PasswordType::Digest
        }
        Some(t) if t == ns::PASSWORD_TEXT || t.ends_with("#PasswordText") => PasswordType::Text,
        Some(t) => {
            return Err(SoapError::PasswordType {
                type_uri: t.to_string(),
            });
        }
    };
    Ok(UsernameToken {
        username,
        password: pw.text.clone(),
        password_type,
        nonce: token.child(ns::WSSE, "Nonce").map(|n| n.text.clone()),
        created: token.child(ns::WSU, "Created").map(|c| c.text.clone()),
    })
}

/// The top-level fault code (SOAP 1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    Sender,
    Receiver,
    VersionMismatch,
}

/// A SOAP 1.2 fault with ONVIF subcodes (`ter:` local names, outermost first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: FaultCode,
    pub subcodes: Vec<&'static str>,
    pub reason: String,
}

impl Fault {
    pub fn new(code: FaultCode, subcodes: &[&'static str], reason: impl Into<String>) -> Self {
        Self {
            code,
            subcodes: subcodes.to_vec(),
            reason: reason.into(),
        }
    }

    /// Authentication missing or wrong.
    pub fn not_authorized() -> Self {
        Self::new(
            FaultCode::Sender,
            &["NotAuthorized"],
            "Sender not Authorized",
        )
    }

    /// An operation this device does not implement.
    pub fn action_not_supported(op: &str) -> Self {
        Self::new(
            FaultCode::Receiver,
            &["ActionNotSupported"],
            format!("Optional Action Not Implemented: {op}"),
        )
    }

    /// The request could not be read.
    pub fn well_formed(why: impl std::fmt::Display) -> Self {
        Self::new(
            FaultCode::Sender,
            &["WellFormed"],
            format!("Well-formed Error: {why}"),
        )
    }

    /// A required argument is missing or has a bad value.
    pub fn invalid_arg(why: impl Into<String>) -> Self {
        Self::new(FaultCode::Sender, &["InvalidArgVal"], why)
    }

    /// An argument names a profile, configuration or source that does not exist.
    pub fn no_such(subcode: &'static str, token: &str) -> Self {
        Self::new(
            FaultCode::Sender,
            &["InvalidArgVal", subcode],
            format!("no such token: {token}"),
        )
    }

    /// Creating profiles is not possible (all profiles are fixed).
    pub fn max_profiles() -> Self {
        Self::new(
            FaultCode::Receiver,
            &["Action", "MaxNVTProfiles"],
            "Max profile number reached",
        )
    }

    /// SOAP 1.2 over HTTP: Sender faults are 400, everything else 500.
    pub fn http_status(&self) -> u16 {
        match self.code {
            FaultCode::Sender => 400,
            FaultCode::Receiver | FaultCode::VersionMismatch => 500,
        }
    }

    /// The fault as a SOAP 1.2 envelope.
    pub fn to_xml(&self) -> Vec<u8> {
        envelope(|w| self.write(w))
    }

    fn write(&self, w: &mut XmlWriter) {
        w.open("s:Fault", &[]);
        w.open("s:Code", &[]);
        w.leaf(
            "s:Value",
            match self.code {
                FaultCode::Sender => "s:Sender",
                FaultCode::Receiver => "s:Receiver",
                FaultCode::VersionMismatch => "s:VersionMismatch",
            },
        );
        for sub in &self.subcodes {
            w.open("s:Subcode", &[]);
            w.leaf("s:Value", &format!("ter:{sub}"));
        }
        for _ in &self.subcodes {
            w.close("s:Subcode");
        }
        w.close("s:Code");
        w.open("s:Reason", &[]);
        w.leaf_with("s:Text", &[("xml:lang", "en")], &self.reason);
        w.close("s:Reason");
        w.close("s:Fault");
    }
}

/// The envelope namespace of a parsed document: SOAP 1.2 or 1.1, `None` when the root is not
/// an `Envelope` of either.
pub fn envelope_ns(root: &Element) -> Option<&'static str> {
    if root.is(ns::SOAP12, "Envelope") {
        Some(ns::SOAP12)
    } else if root.is(ns::SOAP11, "Envelope") {
        Some(ns::SOAP11)
    } else {
        None
    }
}

/// Writes an `s:Envelope` declaring `decls` (which must bind `s` to SOAP 1.2) around what
/// `content` writes (the Header, if any, and the Body).
pub(crate) fn write_envelope(
    decls: &[(&str, &str)],
    content: impl FnOnce(&mut XmlWriter),
) -> Vec<u8> {
    let mut w = XmlWriter::new();
    w.open("s:Envelope", decls);
    content(&mut w);
    w.close("s:Envelope");
    w.finish()
}

/// Writes a SOAP 1.2 envelope whose Body is written by `body`.
pub fn envelope(body: impl FnOnce(&mut XmlWriter)) -> Vec<u8> {
    write_envelope(ns::ENVELOPE_DECLS, |w| {
        w.open("s:Body", &[]);
        body(w);
        w.close("s:Body");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_round_trip() {
        let f = Fault::no_such("NoProfile", "p<1>");
        let out = f.to_xml();
        let root = xml::parse(&out, Limits::default()).unwrap();
        let fault = root
            .child(ns::SOAP12, "Body")
            .unwrap()
            .child(ns::SOAP12, "Fault")
            .unwrap();
        let code = fault.child(ns::SOAP12, "Code").unwrap();
        assert_eq!(code.child_text("Value"), Some("s:Sender"));
        let sub = code.child(ns::SOAP12, "Subcode").unwrap();
        assert_eq!(sub.child_text("Value"), Some("ter:InvalidArgVal"));
        let v = sub.child_local("Value").unwrap();
        assert_eq!(
            v.resolve_qname(&v.text),
            Some((ns::ERROR.to_string(), "InvalidArgVal".to_string()))
        );
        let inner = sub.child(ns::SOAP12, "Subcode").unwrap();
        assert_eq!(inner.child_text("Value"), Some("ter:NoProfile"));
        let reason = fault.child(ns::SOAP12, "Reason").unwrap();
        assert_eq!(reason.child_text("Text"), Some("no such token: p<1>"));
        assert_eq!(f.http_status(), 400);
        assert_eq!(Fault::max_profiles().http_status(), 500);
    }

    #[test]
    fn reads_token_and_body() {
        let req = br#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">
<s:Header><Security xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"><UsernameToken>
<Username>admin</Username>
<Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">abc=</Password>
<Nonce>bm9uY2U=</Nonce>
<Created xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">2026-11-22T14:31:19Z</Created>
</UsernameToken></Security></s:Header>
<s:Body><GetProfiles xmlns="http://www.onvif.org/ver10/media/wsdl"/></s:Body></s:Envelope>"#;
        let env = parse_envelope(req, Limits::default()).unwrap();
        assert!(env.body.is(ns::MEDIA, "GetProfiles"));
        let t = env.security.unwrap();
        assert_eq!(t.username, "admin");
        assert_eq!(t.password_type, PasswordType::Digest);
        assert_eq!(t.nonce.as_deref(), Some("bm9uY2U="));
        assert_eq!(t.created.as_deref(), Some("2026-11-22T14:31:19Z"));
        assert!(matches!(
            parse_envelope(b"<a/>", Limits::default()),
            Err(SoapError::NotEnvelope { .. })
        ));
        assert_eq!(
            parse_envelope(
                br#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>"#,
                Limits::default()
            ),
            Err(SoapError::EmptyBody)
        );
    }
}
