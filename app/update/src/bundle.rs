//! What the hub reads from a RAUC bundle itself, before RAUC is asked: sans-IO, bytes in.
//!
//! A bundle is `[squashfs payload][CMS signature (DER)][signature length: u64 big-endian]`
//! (RAUC's `plain` and `verity` formats share this frame). [`layout`] checks the frame from the
//! file's length, its first bytes and its last eight: a cut-off upload or a file that is no
//! bundle is refused here with the reason, where RAUC 1.8's `Info` over D-Bus only says
//! "rauc info error". [`signer`] walks the CMS `SignedData` to the certificate that signed it,
//! and [`Keyring::trusts`] checks that certificate's chain against the appliance's keyring, so
//! a bundle signed by a stranger is refused naming who signed it. RAUC still verifies the
//! signature over the content itself (the only judge of that); these checks only make the
//! refusal early and clear.

use x509_parser::prelude::{FromDer, X509Certificate};

/// Bytes at the end of a bundle that hold the signature's length.
pub const TRAILER_LEN: u64 = 8;
/// The largest signature RAUC accepts (`MAX_BUNDLE_SIGNATURE_SIZE`, 64 KiB).
pub const MAX_SIGNATURE_LEN: u64 = 64 * 1024;
/// Bytes of the payload's start that [`layout`] needs (the squashfs superblock's fields used).
pub const HEAD_LEN: usize = 48;

const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";

/// Why the bytes are not a complete RAUC bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("the file has {len} bytes, too few for a RAUC bundle")]
    TooShort { len: u64 },
    #[error(
        "the signature length in the trailer ({signature_len} bytes) does not fit a {len}-byte file: the bundle is truncated or not a RAUC bundle"
    )]
    SignatureLength { signature_len: u64, len: u64 },
    #[error("the bundle's payload is not a squashfs image: not a RAUC bundle")]
    NotSquashfs,
    #[error(
        "the squashfs payload needs {needed} bytes but the bundle holds {have}: the bundle is truncated"
    )]
    PayloadTruncated { needed: u64, have: u64 },
    #[error("the bundle's signature is not a CMS SignedData structure ({element})")]
    Cms { element: &'static str },
    #[error("the bundle's signature carries no certificate of its signer")]
    NoSignerCertificate,
}

impl BundleError {
    /// True for the errors that mean "cut off" rather than "not a bundle at all".
    pub fn is_truncation(&self) -> bool {
        matches!(
            self,
            BundleError::TooShort { .. }
                | BundleError::SignatureLength { .. }
                | BundleError::PayloadTruncated { .. }
        )
    }
}

/// Where the parts of a bundle lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The squashfs payload: bytes `0..payload_len`.
    pub payload_len: u64,
    /// The CMS signature: `payload_len..payload_len + signature_len`.
    pub signature_len: u64,
}

/// Checks a bundle's frame from its length, its first [`HEAD_LEN`] bytes (fewer when the
/// file is shorter) and its last [`TRAILER_LEN`] bytes.
pub fn layout(len: u64, head: &[u8], trailer: &[u8]) -> Result<Layout, BundleError> {
    if len < TRAILER_LEN + HEAD_LEN as u64 || trailer.len() != TRAILER_LEN as usize {
        return Err(BundleError::TooShort { len });
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(trailer);
    let signature_len = u64::from_be_bytes(t);
    if signature_len == 0
        || signature_len > MAX_SIGNATURE_LEN
        || signature_len > len - TRAILER_LEN - HEAD_LEN as u64
    {
        return Err(BundleError::SignatureLength { signature_len, len });
    }
    let payload_len = len - TRAILER_LEN - signature_len;
    if head.len() < HEAD_LEN || &head[..4] != SQUASHFS_MAGIC {
        return Err(BundleError::NotSquashfs);
    }
    // Superblock: bytes_used (u64 little-endian) at offset 40 is the image's length.
    let mut b = [0u8; 8];
    b.copy_from_slice(&head[40..48]);
    let needed = u64::from_le_bytes(b);
    if needed > payload_len {
        return Err(BundleError::PayloadTruncated {
            needed,
            have: payload_len,
        });
    }
    Ok(Layout {
        payload_len,
        signature_len,
    })
}

/// Who signed a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The signer certificate's subject, as `O=…, CN=…`.
    pub subject: String,
    /// Its issuer.
    pub issuer: String,
    /// The signer certificate (DER) first, then the other certificates the signature carries.
    pub chain: Vec<Vec<u8>>,
}

/// One DER element: its tag, its content, and what follows it.
fn tlv<'a>(buf: &'a [u8], element: &'static str) -> Result<(u8, &'a [u8], &'a [u8]), BundleError> {
    let err = BundleError::Cms { element };
    let (&tag, rest) = buf.split_first().ok_or(err.clone())?;
    if tag & 0x1f == 0x1f {
        return Err(err);
    }
    let (&first, rest) = rest.split_first().ok_or(err.clone())?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(err);
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(err);
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect<'a>(
    buf: &'a [u8],
    want: u8,
    element: &'static str,
) -> Result<(&'a [u8], &'a [u8]), BundleError> {
    let (tag, content, rest) = tlv(buf, element)?;
    if tag != want {
        return Err(BundleError::Cms { element });
    }
    Ok((content, rest))
}

/// The `signedData` content type, 1.2.840.113549.1.7.2, as DER content octets.
const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];

/// The signer of a CMS `SignedData` (the bundle's signature bytes).
pub fn signer(cms: &[u8]) -> Result<Signer, BundleError> {
    let (content_info, _) = expect(cms, 0x30, "ContentInfo")?;
    let (oid, rest) = expect(content_info, 0x06, "contentType")?;
    if oid != OID_SIGNED_DATA {
        return Err(BundleError::Cms {
            element: "contentType is not signedData",
        });
    }
    let (explicit, _) = expect(rest, 0xa0, "content")?;
    let (signed_data, _) = expect(explicit, 0x30, "SignedData")?;
    let (_, rest) = expect(signed_data, 0x02, "version")?;
    let (_, rest) = expect(rest, 0x31, "digestAlgorithms")?;
    let (_, mut rest) = expect(rest, 0x30, "encapContentInfo")?;
    let mut certs: Vec<&[u8]> = Vec::new();
    let (tag, content, after) = tlv(rest, "certificates")?;
    if tag == 0xa0 {
        let mut c = content;
        while !c.is_empty() {
            let (tag, _, next) = tlv(c, "certificate")?;
            let whole = &c[..c.len() - next.len()];
            if tag == 0x30 {
                certs.push(whole);
            }
            c = next;
        }
        rest = after;
    }
    let (tag, _, after) = tlv(rest, "crls")?;
    if tag == 0xa1 {
        rest = after;
    }
    let (signer_infos, _) = expect(rest, 0x31, "signerInfos")?;
    let (signer_info, _) = expect(signer_infos, 0x30, "SignerInfo")?;
    let (_, sid) = expect(signer_info, 0x02, "SignerInfo version")?;
    let (tag, sid_content, _) = tlv(sid, "sid")?;
    let parsed: Vec<(usize, X509Certificate<'_>)> = certs
        .iter()
        .enumerate()
        .filter_map(|(i, der)| X509Certificate::from_der(der).ok().map(|(_, c)| (i, c)))
        .collect();
    let found = match tag {
        // IssuerAndSerialNumber
        0x30 => {
            let (_, _, rest) = tlv(sid_content, "sid issuer")?;
            let issuer_raw = &sid_content[..sid_content.len() - rest.len()];
            let (serial, _) = expect(rest, 0x02, "sid serial")?;
            parsed.iter().find(|(_, c)| {
                c.issuer().as_raw() == issuer_raw
                    && strip_zeros(c.tbs_certificate.raw_serial()) == strip_zeros(serial)
            })
        }
        // [0] SubjectKeyIdentifier
        0x80 => parsed.iter().find(|(_, c)| {
            c.extensions().iter().any(|e| {
                matches!(
                    e.parsed_extension(),
                    x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) if k.0 == sid_content
                )
            })
        }),
        _ => return Err(BundleError::Cms { element: "sid" }),
    };
    let Some((index, cert)) = found else {
        return Err(BundleError::NoSignerCertificate);
    };
    let mut chain = vec![certs[*index].to_vec()];
    chain.extend(
        certs
            .iter()
            .enumerate()
            .filter(|(i, _)| i != index)
            .map(|(_, d)| d.to_vec()),
    );
    Ok(Signer {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        chain,
    })
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|&&x| x == 0).count();
    &b[n..]
}

/// The certificate authorities the appliance trusts (RAUC's `[keyring] path`, PEM).
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    cas: Vec<Vec<u8>>,
}

/// Why a signer is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("signed by '{subject}', issued by '{issuer}', which is not in the appliance's keyring")]
    UnknownIssuer { subject: String, issuer: String },
    #[error("the certificate of '{subject}' does not verify against its issuer '{issuer}'")]
    BadCertificateSignature { subject: String, issuer: String },
    #[error("the signer's certificate cannot be read")]
    Unreadable,
}

fn parse(d: &[u8]) -> Option<X509Certificate<'_>> {
    X509Certificate::from_der(d).ok().map(|(_, c)| c)
}

impl Keyring {
    /// Every certificate of a PEM file (other PEM blocks are skipped).
    pub fn from_pem(pem: &[u8]) -> Keyring {
        let cas = x509_parser::pem::Pem::iter_from_buffer(pem)
            .filter_map(Result::ok)
            .filter(|p| p.label == "CERTIFICATE")
            .filter(|p| X509Certificate::from_der(&p.contents).is_ok())
            .map(|p| p.contents)
            .collect();
        Keyring { cas }
    }

    pub fn is_empty(&self) -> bool {
        self.cas.is_empty()
    }

    /// Walks from the signer through the certificates the signature carries to a CA of the
    /// keyring, checking each certificate's signature on the way (at most four steps).
    /// Validity periods and key usage are RAUC's to check.
    pub fn trusts(&self, signer: &Signer) -> Result<(), TrustError> {
        let cas: Vec<X509Certificate<'_>> = self.cas.iter().filter_map(|d| parse(d)).collect();
        let others: Vec<X509Certificate<'_>> = signer
            .chain
            .iter()
            .skip(1)
            .filter_map(|d| parse(d))
            .collect();
        let first = signer.chain.first().ok_or(TrustError::Unreadable)?;
        let mut current = parse(first).ok_or(TrustError::Unreadable)?;
        for _ in 0..4 {
            let issuer = current.issuer().as_raw();
            let by_ca = cas.iter().filter(|c| c.subject().as_raw() == issuer);
            let mut named = false;
            for ca in by_ca {
                named = true;
                if current.verify_signature(Some(ca.public_key())).is_ok() {
                    return Ok(());
                }
            }
            if named {
                return Err(TrustError::BadCertificateSignature {
                    subject: current.subject().to_string(),
                    issuer: current.issuer().to_string(),
                });
            }
            let next = others.iter().find(|c| {
                c.subject().as_raw() == issuer
                    && c.subject().as_raw() != current.subject().as_raw()
                    && current.verify_signature(Some(c.public_key())).is_ok()
            });
            match next {
                Some(n) => current = n.clone(),
                None => break,
            }
        }
        Err(TrustError::UnknownIssuer {
            subject: signer.subject.clone(),
            issuer: signer.issuer.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes_used: u64) -> Vec<u8> {
        let mut h = vec![0u8; HEAD_LEN];
        h[..4].copy_from_slice(SQUASHFS_MAGIC);
        h[40..48].copy_from_slice(&bytes_used.to_le_bytes());
        h
    }

    #[test]
    fn a_well_framed_bundle_has_its_parts() {
        let l = layout(10_000, &head(4096), &1000u64.to_be_bytes()).expect("layout");
        assert_eq!(
            l,
            Layout {
                payload_len: 8992,
                signature_len: 1000
            }
        );
    }

    #[test]
    fn a_cut_bundle_is_a_truncation() {
        // Cut in the middle: the last eight bytes are payload, read as a huge length.
        let e = layout(5000, &head(4096), &[0x8a, 1, 2, 3, 4, 5, 6, 7]).expect_err("cut");
        assert!(e.is_truncation(), "{e}");
        // A length that fits but leaves too little for the payload.
        let e = layout(5000, &head(8192), &1000u64.to_be_bytes()).expect_err("short payload");
        assert!(matches!(e, BundleError::PayloadTruncated { .. }), "{e}");
        assert!(layout(10, &[], &[0; 8]).expect_err("tiny").is_truncation());
    }

    #[test]
    fn not_squashfs_is_not_a_bundle() {
        let mut h = head(10);
        h[0] = b'X';
        let e = layout(10_000, &h, &100u64.to_be_bytes()).expect_err("magic");
        assert_eq!(e, BundleError::NotSquashfs);
        assert!(!e.is_truncation());
    }

    #[test]
    fn garbage_is_not_cms() {
        assert!(signer(&[]).is_err());
        assert!(signer(&[0x30, 0x03, 0x06, 0x01, 0x00]).is_err());
        assert!(signer(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
