//! The bundle checks on a real RAUC bundle (tests/fixtures/README.md) and the install flow
//! against the twin, through the crate's public API.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use watchpost_update::bundle::{Keyring, TrustError};
use watchpost_update::check::{self, InspectError, Refusal};
use watchpost_update::twin::TwinRauc;
use watchpost_update::{InstallArgs, MarkState, Rauc, RaucEvent, SlotRef};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn the_signer_of_a_real_bundle_is_read_and_trusted_by_its_ca_only() {
    let (size, signer) =
        check::read_signer(&fixture("dev-signed.raucb")).expect("the fixture is a bundle");
    assert_eq!(size, 5499);
    assert!(
        signer.subject.contains("CN=Dev signer"),
        "{}",
        signer.subject
    );
    assert!(signer.issuer.contains("CN=Dev CA"), "{}", signer.issuer);
    let ca = Keyring::from_pem(&std::fs::read(fixture("dev-ca.pem")).expect("ca"));
    assert!(!ca.is_empty());
    ca.trusts(&signer).expect("the dev CA issued the signer");
    let other = Keyring::from_pem(&std::fs::read(fixture("other-ca.pem")).expect("ca"));
    match other.trusts(&signer) {
        Err(TrustError::UnknownIssuer { subject, issuer }) => {
            assert!(subject.contains("Dev signer") && issuer.contains("Dev CA"));
        }
        other => panic!("expected an unknown issuer, got {other:?}"),
    }
}

#[test]
fn a_cut_bundle_is_refused_as_truncated() {
    let bytes = std::fs::read(fixture("dev-signed.raucb")).expect("fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    for cut in [bytes.len() - 1, bytes.len() / 2, 100, 10] {
        let p = dir.path().join("cut.raucb");
        std::fs::write(&p, &bytes[..cut]).expect("write");
        match check::read_signer(&p) {
            Err(InspectError::Refused(Refusal::Truncated(_))) => {}
            other => panic!("cut at {cut}: expected truncated, got {other:?}"),
        }
    }
    let p = dir.path().join("text.raucb");
    std::fs::write(&p, vec![b'x'; 1000]).expect("write");
    assert!(matches!(
        check::read_signer(&p),
        Err(InspectError::Refused(_))
    ));
}

#[tokio::test]
async fn the_twin_installs_into_the_other_slot_with_progress_to_100() {
    let rauc = TwinRauc::new("wp");
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good");
    std::fs::write(&good, TwinRauc::bundle_text("wp", "0.2.0", true)).expect("write");
    let info = rauc.info(good.clone()).await.expect("info");
    assert_eq!(
        (info.compatible.as_str(), info.version.as_str()),
        ("wp", "0.2.0")
    );
    let mut events = rauc.events().await.expect("events");
    rauc.install_bundle(good, InstallArgs::default())
        .await
        .expect("install starts");
    let mut last = 0;
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = events.next().await {
            match e {
                RaucEvent::Progress(p) => last = p.percent,
                RaucEvent::Completed(r) => return r,
                _ => {}
            }
        }
        -1
    })
    .await
    .expect("completed");
    assert_eq!(result, 0);
    assert_eq!(last, 100);
    assert_eq!(rauc.primary().await.expect("primary"), "rootfs.1");
    rauc.reboot_into("B");
    let m = rauc
        .mark(MarkState::Good, SlotRef::Booted)
        .await
        .expect("mark");
    assert_eq!(m.slot, "rootfs.1");
}

#[tokio::test]
async fn the_twin_refuses_a_bad_signature_and_another_compatible() {
    let rauc = TwinRauc::new("wp");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad");
    std::fs::write(&bad, TwinRauc::bundle_text("wp", "0.2.0", false)).expect("write");
    assert!(rauc.info(bad).await.is_err());
    let other = dir.path().join("other");
    std::fs::write(&other, TwinRauc::bundle_text("x", "0.2.0", true)).expect("write");
    let mut events = rauc.events().await.expect("events");
    rauc.install_bundle(other, InstallArgs::default())
        .await
        .expect("install starts");
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = events.next().await {
            if let RaucEvent::Completed(r) = e {
                return r;
            }
        }
        -1
    })
    .await
    .expect("completed");
    assert_eq!(r, 1);
    assert!(
        rauc.last_error()
            .await
            .expect("last error")
            .contains("Compatible mismatch")
    );
    assert_eq!(rauc.primary().await.expect("primary"), "rootfs.0");
}
