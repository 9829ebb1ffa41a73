//! What the hub reads of an uploaded bundle before RAUC sees it: the frame (length, squashfs
//! head, trailer), the CMS signature walked to its signer, the signer against a keyring, the
//! version order. None of it may panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchpost_update::bundle::{self, HEAD_LEN, Keyring, TRAILER_LEN};
use watchpost_update::version;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let head = &data[..data.len().min(HEAD_LEN)];
    let trailer = if data.len() >= TRAILER_LEN as usize {
        &data[data.len() - TRAILER_LEN as usize..]
    } else {
        &[][..]
    };
    if let Ok(l) = bundle::layout(len, head, trailer) {
        let start = l.payload_len as usize;
        let end = start + l.signature_len as usize;
        if let Some(cms) = data.get(start..end)
            && let Ok(signer) = bundle::signer(cms)
        {
            let _ = Keyring::from_pem(cms).trusts(&signer);
        }
    }
    // The input as a signature on its own, and as two versions.
    if let Ok(signer) = bundle::signer(data) {
        let _ = Keyring::default().trusts(&signer);
    }
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\n').unwrap_or((&text, "0.1.0"));
    let _ = version::compare(a, b);
});
