//! Whether a bundle may be installed, decided before RAUC writes anything, with a reason an
//! installer can act on.
//!
//! [`inspect_bundle`] stands for the `InspectBundle` RAUC 1.8 lacks: the frame
//! ([`crate::bundle::layout`]: truncated or not a bundle), the signer and its chain against
//! the keyring ([`crate::bundle::signer`], [`crate::bundle::Keyring::trusts`]), then RAUC's
//! `Info`, which verifies the signature over the content and reads the manifest. [`admit`]
//! then compares the result with the system: compatible string, version.

use std::cmp::Ordering;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bundle::{self, BundleError, HEAD_LEN, Keyring, TRAILER_LEN};
use crate::rauc::{Rauc, RaucError};
use crate::version;

/// Why a bundle is refused. [`Refusal::code`] is the API's stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the bundle is truncated: {0}")]
    Truncated(BundleError),
    #[error("not a RAUC bundle: {0}")]
    NotABundle(BundleError),
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("the bundle is for '{bundle}', this appliance is '{system}'")]
    WrongCompatible { bundle: String, system: String },
    #[error(
        "the bundle's version {bundle} is older than the running {running} (force the install to downgrade)"
    )]
    Older { bundle: String, running: String },
    #[error(
        "the bundle's version '{bundle}' cannot be compared with the running {running} (force the install to take it)"
    )]
    UnknownVersion { bundle: String, running: String },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Truncated(_) => "BUNDLE_TRUNCATED",
            Refusal::NotABundle(_) => "NOT_A_BUNDLE",
            Refusal::BadSignature(_) => "BAD_SIGNATURE",
            Refusal::WrongCompatible { .. } => "WRONG_COMPATIBLE",
            Refusal::Older { .. } => "OLDER_VERSION",
            Refusal::UnknownVersion { .. } => "UNKNOWN_VERSION",
        }
    }
}

/// Why a bundle could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("reading the bundle {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Rauc(RaucError),
}

/// What is known of a bundle before it is installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Inspection {
    pub compatible: String,
    pub version: String,
    /// The signer certificate's subject (`O=…, CN=…`).
    pub signer: String,
    pub size: u64,
}

/// The frame and signer of the bundle file at `path` (blocking file reads; small).
pub fn read_signer(path: &Path) -> Result<(u64, bundle::Signer), InspectError> {
    let io = |source| InspectError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut head = vec![0u8; HEAD_LEN.min(usize::try_from(len).unwrap_or(HEAD_LEN))];
    f.read_exact(&mut head).map_err(io)?;
    let mut trailer = [0u8; TRAILER_LEN as usize];
    if len >= TRAILER_LEN {
        f.seek(SeekFrom::Start(len - TRAILER_LEN)).map_err(io)?;
        f.read_exact(&mut trailer).map_err(io)?;
    }
    let refuse = |e: BundleError| {
        if e.is_truncation() {
            Refusal::Truncated(e)
        } else {
            Refusal::NotABundle(e)
        }
    };
    let layout = bundle::layout(len, &head, &trailer).map_err(refuse)?;
    let mut cms = vec![0u8; usize::try_from(layout.signature_len).unwrap_or(0)];
    f.seek(SeekFrom::Start(layout.payload_len)).map_err(io)?;
    f.read_exact(&mut cms).map_err(io)?;
    let signer = bundle::signer(&cms).map_err(refuse)?;
    Ok((len, signer))
}

/// Inspects the bundle at `path`: its frame, its signer against `keyring` (skipped when
/// `None`), then RAUC's `Info`.
pub async fn inspect_bundle(
    rauc: &dyn Rauc,
    path: &Path,
    keyring: Option<&Keyring>,
) -> Result<Inspection, InspectError> {
    let p = path.to_path_buf();
    let (size, signer) = tokio::task::spawn_blocking(move || read_signer(&p))
        .await
        .map_err(|e| InspectError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })??;
    if let Some(k) = keyring.filter(|k| !k.is_empty()) {
        k.trusts(&signer)
            .map_err(|e| Refusal::BadSignature(e.to_string()))?;
    }
    let info = match rauc.info(path.to_path_buf()).await {
        Ok(i) => i,
        // RAUC 1.8 says only "rauc info error": the frame and the chain were fine, so what is
        // left is the signature over the content (or a manifest RAUC cannot read).
        Err(RaucError::Refused { message, .. }) => {
            return Err(Refusal::BadSignature(format!(
                "RAUC could not verify the bundle signed by '{}': its content does not match the signature, or its manifest is invalid ({message})",
                signer.subject
            ))
            .into());
        }
        Err(e) => return Err(InspectError::Rauc(e)),
    };
    Ok(Inspection {
        compatible: info.compatible,
        version: info.version,
        signer: signer.subject,
        size,
    })
}

/// Whether an inspected bundle may be installed on a system with `system_compatible` running
/// `running`; `force` allows an older (or unordered) version, never another compatible.
pub fn admit(
    inspection: &Inspection,
    system_compatible: &str,
    running: &str,
    force: bool,
) -> Result<(), Refusal> {
    if inspection.compatible != system_compatible {
        return Err(Refusal::WrongCompatible {
            bundle: inspection.compatible.clone(),
            system: system_compatible.to_string(),
        });
    }
    if force {
        return Ok(());
    }
    match version::compare(&inspection.version, running) {
        Some(Ordering::Less) => Err(Refusal::Older {
            bundle: inspection.version.clone(),
            running: running.to_string(),
        }),
        Some(_) => Ok(()),
        None => Err(Refusal::UnknownVersion {
            bundle: inspection.version.clone(),
            running: running.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspection(compatible: &str, version: &str) -> Inspection {
        Inspection {
            compatible: compatible.into(),
            version: version.into(),
            signer: "CN=x".into(),
            size: 1,
        }
    }

    #[test]
    fn admits_newer_same_compatible() {
        assert_eq!(
            admit(&inspection("wp", "0.2.0"), "wp", "0.1.0", false),
            Ok(())
        );
        assert_eq!(
            admit(&inspection("wp", "0.1.0"), "wp", "0.1.0", false),
            Ok(())
        );
    }

    #[test]
    fn refuses_other_compatible_even_forced() {
        let r = admit(&inspection("other", "0.2.0"), "wp", "0.1.0", true).expect_err("refused");
        assert_eq!(r.code(), "WRONG_COMPATIBLE");
    }

    #[test]
    fn refuses_older_unless_forced() {
        let r = admit(&inspection("wp", "0.0.9"), "wp", "0.1.0", false).expect_err("older");
        assert_eq!(r.code(), "OLDER_VERSION");
        assert_eq!(
            admit(&inspection("wp", "0.0.9"), "wp", "0.1.0", true),
            Ok(())
        );
        let r = admit(&inspection("wp", "nightly"), "wp", "0.1.0", false).expect_err("unordered");
        assert_eq!(r.code(), "UNKNOWN_VERSION");
    }
}
