//! Embeds the setup page's assets (`assets/`): each file is gzipped here with the best
//! compression into `OUT_DIR`, and `OUT_DIR/assets.rs` lists every asset with its
//! content-hashed name (`app-<8 hex of SHA-256>.css`), so the binary carries both forms and a
//! changed file gets a new URL (served `immutable`). See `src/pages/assets.rs`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// The assets, with their content types. A file in `assets/` that is not listed here is not
/// served (and a listed one that is missing fails the build).
const ASSETS: &[(&str, &str)] = &[
    ("app.css", "text/css; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("favicon.svg", "image/svg+xml"),
];

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    let mut table = String::from("pub static ASSETS: &[Asset] = &[\n");
    for (name, mime) in ASSETS {
        let src = Path::new(&manifest).join("assets").join(name);
        println!("cargo::rerun-if-changed={}", src.display());
        let raw = std::fs::read(&src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&raw).expect("gzip in memory");
        let gz = gz.finish().expect("gzip in memory");
        let gz_path = Path::new(&out).join(format!("{name}.gz"));
        std::fs::write(&gz_path, &gz)
            .unwrap_or_else(|e| panic!("writing {}: {e}", gz_path.display()));
        let hash: String = Sha256::digest(&raw)[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (stem, ext) = name
            .rsplit_once('.')
            .expect("asset names have an extension");
        writeln!(
            table,
            "    Asset {{ name: {name:?}, path: \"{stem}-{hash}.{ext}\", content_type: {mime:?}, \
             raw: include_bytes!({src:?}), gzip: include_bytes!({gz:?}) }},",
            src = src.display().to_string(),
            gz = gz_path.display().to_string(),
        )
        .expect("write to a String");
    }
    table.push_str("];\n");
    let table_path = Path::new(&out).join("assets.rs");
    std::fs::write(&table_path, table)
        .unwrap_or_else(|e| panic!("writing {}: {e}", table_path.display()));
}
