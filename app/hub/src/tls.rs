//! HTTPS for the hub (`[hub.tls]`, docs/hub.md, docs/decisions/0006-hub-tls.md).
//!
//! Role: owns the serving certificate in `<data_dir>/tls/` (`cert.pem`, `key.pem`, and
//! `ca.pem` while the certificate is self-signed, for `curl --cacert`), serves the hub's
//! router over TLS, and answers the plain listener with redirects when `redirect_http` is on.
//!
//! Design: the certificate is chosen per handshake by [`CertResolver`], which reads the
//! current [`CertifiedKey`] behind a lock, so an upload (`PUT /api/v1/system/tls`) or a return
//! to a self-signed certificate (`DELETE`) takes effect on the next handshake, without a
//! restart and without touching connections already open. A certificate is accepted only
//! when its key matches it (rustls' `keys_match`, comparing the key's public half with the
//! certificate's); files are written atomically (temporary file, fsync, rename, fsync of the
//! directory), the key with mode 0600 from its creation.
//!
//! With no certificate on disk the hub makes a self-signed ECDSA P-256 one (rcgen) for the
//! configured `hostname`, `localhost`, the host's name (and `<name>.local`), its non-loopback
//! addresses, 127.0.0.1 and ::1. Its validity starts at the earlier of now and 2025-01-01 and
//! ends 20 years after the later of the two, so a board that boots with its clock at 1970
//! (no RTC, no NTP yet) serves a certificate that is still valid once the clock is set. A
//! self-signed certificate made here is made again at start when it no longer names the
//! configured or host name, or expires within 30 days.
//!
//! Failure: files on disk that do not parse or whose key does not match (a crash between the
//! two renames of an upload) are moved aside (`*.pem.bad`) with a warning and a fresh
//! self-signed certificate is made; only an I/O failure on the data directory or a failed
//! generation ends the worker. A TLS handshake that fails or takes longer than
//! [`HANDSHAKE_TIMEOUT`] closes that connection only.
//!
//! Shutdown: [`serve`] stops accepting when its token is cancelled and then waits for the
//! connections it serves to finish their requests; the caller bounds that wait with its
//! grace period.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use watchpost_config::core::HubTlsConfig;

/// A client that has not finished its TLS handshake by then is disconnected.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The organization a certificate made here names; with an issuer equal to its subject it
/// marks a certificate as ours to make again.
const GENERATED_ORG: &str = "Watchpost self-signed";

/// A self-signed certificate made here that expires within this is made again at start.
const RENEW_BEFORE_S: i64 = 30 * 24 * 3600;

/// Why a certificate could not be loaded, made, stored or accepted.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("creating the TLS directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating a self-signed certificate for {names:?}: {source}")]
    Generate {
        names: Vec<String>,
        source: rcgen::Error,
    },
    #[error("the certificate is not PEM with at least one CERTIFICATE block: {0}")]
    CertificatePem(rustls_pki_types::pem::Error),
    #[error("the certificate does not parse as X.509: {0}")]
    CertificateParse(String),
    #[error("the certificate expired at {not_after}")]
    CertificateExpired { not_after: String },
    #[error("the private key is not PEM with a PRIVATE KEY block (PKCS#8, PKCS#1 or SEC1): {0}")]
    KeyPem(rustls_pki_types::pem::Error),
    #[error(
        "the private key is not one rustls can sign with (ECDSA P-256/P-384, Ed25519, RSA): {0}"
    )]
    KeyUnsupported(rustls::Error),
    #[error("the private key does not belong to the certificate (their public keys differ)")]
    KeyMismatch,
    #[error("whether the private key belongs to the certificate cannot be checked: {0}")]
    KeyCheck(rustls::Error),
    #[error("building the TLS server configuration: {0}")]
    ServerConfig(rustls::Error),
}

/// What the hub serves, as `GET /api/v1/system/tls` shows it (never the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CertificateInfo {
    /// The subject's distinguished name, e.g. `CN=watchpost.local, O=Watchpost self-signed`.
    pub subject: String,
    /// The issuer's distinguished name (the subject's own for a self-signed certificate).
    pub issuer: String,
    /// Subject alternative names: DNS names and IP addresses.
    pub sans: Vec<String>,
    /// Start of validity, RFC 3339 (UTC).
    pub not_before: String,
    /// End of validity, RFC 3339 (UTC).
    pub not_after: String,
    /// Whether the issuer is the subject.
    pub self_signed: bool,
    /// Whether the hub made this certificate itself (`DELETE` returns to one of these).
    pub generated: bool,
    /// SHA-256 of the certificate's DER encoding, as `openssl x509 -fingerprint -sha256`
    /// prints it (`AB:CD:...`).
    pub sha256_fingerprint: String,
    /// Certificates in the chain served, the leaf first.
    pub chain_length: usize,
}

/// The certificate being served and its description.
#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    info: CertificateInfo,
    /// `info.not_after` as Unix seconds.
    not_after_s: i64,
}

/// Picks the certificate for each handshake: whatever is current at that moment.
#[derive(Debug)]
struct CertResolver {
    current: RwLock<Current>,
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(read_lock(&self.current).key.clone())
    }
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The hub's certificate and the TLS configuration serving it (shared with the API).
#[derive(Debug)]
pub struct TlsHandle {
    dir: PathBuf,
    hostname: Option<String>,
    resolver: Arc<CertResolver>,
    server_config: Arc<rustls::ServerConfig>,
    /// One change of the files at a time.
    edit: Mutex<()>,
}

impl TlsHandle {
    /// Loads `<data_dir>/tls/cert.pem` and `key.pem`, or makes and stores a self-signed
    /// certificate. Blocking (file I/O, fsync): call it off the async threads.
    pub fn load_or_generate(data_dir: &Path, config: &HubTlsConfig) -> Result<Self, TlsError> {
        let dir = data_dir.join("tls");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(|source| TlsError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        let hostname = config.hostname.as_ref().map(|h| h.as_str().to_string());
        let current = match load(&dir)? {
            Some(current) if needs_renewal(&current, hostname.as_deref()) => {
                tracing::info!(
                    sans = ?current.info.sans,
                    not_after = %current.info.not_after,
                    "the self-signed certificate no longer names this host or expires soon; making a new one"
                );
                generate_and_store(&dir, hostname.as_deref())?
            }
            Some(current) => current,
            None => generate_and_store(&dir, hostname.as_deref())?,
        };
        tracing::info!(
            subject = %current.info.subject,
            sans = ?current.info.sans,
            fingerprint = %current.info.sha256_fingerprint,
            "serving HTTPS with this certificate"
        );
        let resolver = Arc::new(CertResolver {
            current: RwLock::new(current),
        });
        let mut server_config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::ServerConfig)?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            dir,
            hostname,
            resolver,
            server_config: Arc::new(server_config),
            edit: Mutex::new(()),
        })
    }

    /// The rustls configuration the listener serves (its certificate follows [`Self::install`]).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config.clone()
    }

    /// The certificate being served now.
    pub fn info(&self) -> CertificateInfo {
        read_lock(&self.resolver.current).info.clone()
    }

    /// The name the certificate is made for and redirects point at: the configured
    /// `hostname`, else the host's name.
    pub fn hostname(&self) -> String {
        self.hostname.clone().unwrap_or_else(host_name)
    }

    /// Accepts an uploaded certificate chain and key (PEM), stores them and serves them from
    /// the next handshake on. Nothing changes when they are refused. Blocking.
    pub fn install(&self, cert_pem: &str, key_pem: &str) -> Result<CertificateInfo, TlsError> {
        let current = parse_pair(cert_pem.as_bytes(), key_pem.as_bytes())?;
        if current.not_after_s < unix_now() {
            return Err(TlsError::CertificateExpired {
                not_after: current.info.not_after.clone(),
            });
        }
        let _edit = self
            .edit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ca = current.info.self_signed.then_some(cert_pem);
        store(&self.dir, cert_pem, key_pem, ca)?;
        Ok(self.swap(current))
    }

    /// Makes, stores and serves a fresh self-signed certificate. Blocking.
    pub fn reset_self_signed(&self) -> Result<CertificateInfo, TlsError> {
        let _edit = self
            .edit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = generate_and_store(&self.dir, self.hostname.as_deref())?;
        Ok(self.swap(current))
    }

    fn swap(&self, current: Current) -> CertificateInfo {
        let info = current.info.clone();
        *self
            .resolver
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = current;
        tracing::info!(
            subject = %info.subject,
            sans = ?info.sans,
            fingerprint = %info.sha256_fingerprint,
            "serving HTTPS with a new certificate"
        );
        info
    }
}

/// rustls with the ring provider (the one reqwest already links).
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Parses and checks a certificate chain and its key.
fn parse_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<Current, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::CertificatePem)?;
    if chain.is_empty() {
        return Err(TlsError::CertificatePem(
            rustls_pki_types::pem::Error::NoItemsFound,
        ));
    }
    let (info, not_after_s) = describe(&chain)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::KeyPem)?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(TlsError::KeyUnsupported)?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch);
        }
        Err(e) => return Err(TlsError::KeyCheck(e)),
    }
    Ok(Current {
        key: Arc::new(certified),
        info,
        not_after_s,
    })
}

/// Describes the chain's leaf; also returns its end of validity in Unix seconds.
fn describe(chain: &[CertificateDer<'static>]) -> Result<(CertificateInfo, i64), TlsError> {
    let leaf = chain.first().ok_or(TlsError::CertificatePem(
        rustls_pki_types::pem::Error::NoItemsFound,
    ))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| TlsError::CertificateParse(e.to_string()))?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => sans.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_from_octets(b) {
                        sans.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let self_signed = cert.subject().as_raw() == cert.issuer().as_raw();
    let generated = self_signed
        && cert
            .subject()
            .iter_organization()
            .any(|o| o.as_str() == Ok(GENERATED_ORG));
    let fingerprint = Sha256::digest(leaf.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let validity = cert.validity();
    let info = CertificateInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        not_before: rfc3339(validity.not_before.timestamp()),
        not_after: rfc3339(validity.not_after.timestamp()),
        self_signed,
        generated,
        sha256_fingerprint: fingerprint,
        chain_length: chain.len(),
    };
    Ok((info, validity.not_after.timestamp()))
}

fn ip_from_octets(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

fn rfc3339(unix_s: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_s)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix_s.to_string())
}

/// Whether a certificate made here should be made again: it no longer names the configured
/// or host name, or it expires within [`RENEW_BEFORE_S`]. Uploaded certificates are kept.
fn needs_renewal(current: &Current, hostname: Option<&str>) -> bool {
    let info = &current.info;
    if !info.generated {
        return false;
    }
    let names_missing = hostname
        .map(str::to_string)
        .into_iter()
        .chain(Some(host_name()))
        .any(|n| !info.sans.iter().any(|s| s.eq_ignore_ascii_case(&n)));
    names_missing || current.not_after_s < unix_now() + RENEW_BEFORE_S
}

/// Loads the stored pair; `None` when there is none or it is unusable (moved aside).
fn load(dir: &Path) -> Result<Option<Current>, TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let read = |p: &Path| match std::fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::ReadFile {
            path: p.to_path_buf(),
            source,
        }),
    };
    let (Some(cert), Some(key)) = (read(&cert_path)?, read(&key_path)?) else {
        return Ok(None);
    };
    match parse_pair(&cert, &key) {
        Ok(current) => Ok(Some(current)),
        Err(e) => {
            tracing::warn!(
                error = %e,
                dir = %dir.display(),
                "the stored certificate cannot be served; moved aside as *.pem.bad, making a self-signed one"
            );
            for p in [&cert_path, &key_path] {
                let mut bad = p.clone().into_os_string();
                bad.push(".bad");
                std::fs::rename(p, &bad).map_err(|source| TlsError::WriteFile {
                    path: PathBuf::from(bad),
                    source,
                })?;
            }
            Ok(None)
        }
    }
}

/// The host's name (`/proc/sys/kernel/hostname`), `watchpost` when it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty() && s.parse::<watchpost_config::core::TlsHostname>().is_ok())
        .unwrap_or_else(|| "watchpost".to_string())
}

/// The names and addresses a self-signed certificate is made for.
fn san_names(hostname: Option<&str>) -> Vec<String> {
    let host = host_name();
    let mut names: Vec<String> = hostname.map(str::to_string).into_iter().collect();
    names.push(host.clone());
    if !host.contains('.') {
        names.push(format!("{host}.local"));
    }
    names.push("localhost".into());
    let mut ips: Vec<IpAddr> = vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()];
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            let Some(addr) = ifa.address else { continue };
            if let Some(v4) = addr.as_sockaddr_in() {
                if !v4.ip().is_loopback() {
                    ips.push(v4.ip().into());
                }
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                let ip = v6.ip();
                if !ip.is_loopback() && !ip.is_unicast_link_local() {
                    ips.push(ip.into());
                }
            }
        }
    }
    names.extend(ips.iter().map(IpAddr::to_string));
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Makes a self-signed ECDSA P-256 certificate and stores it with its key and as `ca.pem`.
fn generate_and_store(dir: &Path, hostname: Option<&str>) -> Result<Current, TlsError> {
    let names = san_names(hostname);
    let generate = |names: &[String]| -> Result<(String, String), rcgen::Error> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())?;
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            rcgen::DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| "watchpost".into()),
        );
        dn.push(rcgen::DnType::OrganizationName, GENERATED_ORG);
        params.distinguished_name = dn;
        let now = time::OffsetDateTime::now_utc();
        let floor = time::macros::datetime!(2025-01-01 0:00 UTC);
        params.not_before = now.min(floor) - time::Duration::days(1);
        params.not_after = now.max(floor) + time::Duration::days(20 * 365);
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.self_signed(&key)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (cert_pem, key_pem) = generate(&names).map_err(|source| TlsError::Generate {
        names: names.clone(),
        source,
    })?;
    let current = parse_pair(cert_pem.as_bytes(), key_pem.as_bytes())?;
    store(dir, &cert_pem, &key_pem, Some(&cert_pem))?;
    tracing::info!(?names, "made a self-signed certificate");
    Ok(current)
}

/// Writes the pair (and `ca.pem`, or removes it when the certificate is not self-signed).
/// The key is renamed into place first: a crash between the renames leaves a pair that does
/// not match, which the next start moves aside.
fn store(dir: &Path, cert_pem: &str, key_pem: &str, ca_pem: Option<&str>) -> Result<(), TlsError> {
    let key_tmp = write_tmp(dir, "key.pem", key_pem.as_bytes(), 0o600)?;
    let cert_tmp = write_tmp(dir, "cert.pem", cert_pem.as_bytes(), 0o644)?;
    let ca_tmp = ca_pem
        .map(|ca| write_tmp(dir, "ca.pem", ca.as_bytes(), 0o644))
        .transpose()?;
    rename(&key_tmp, &dir.join("key.pem"))?;
    rename(&cert_tmp, &dir.join("cert.pem"))?;
    let ca_path = dir.join("ca.pem");
    match ca_tmp {
        Some(tmp) => rename(&tmp, &ca_path)?,
        None => match std::fs::remove_file(&ca_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(TlsError::WriteFile {
                    path: ca_path,
                    source,
                });
            }
        },
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| TlsError::WriteFile {
            path: dir.to_path_buf(),
            source,
        })
}

fn write_tmp(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<PathBuf, TlsError> {
    let path = dir.join(format!(".{name}.tmp"));
    let err = |source| TlsError::WriteFile {
        path: path.clone(),
        source,
    };
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .map_err(err)?;
    // The umask may have taken bits off: the mode is the one asked for.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    Ok(path)
}

fn rename(from: &Path, to: &Path) -> Result<(), TlsError> {
    std::fs::rename(from, to).map_err(|source| TlsError::WriteFile {
        path: to.to_path_buf(),
        source,
    })
}

/// Serves `app` over TLS on `listener` until `stop` is cancelled, then waits for the open
/// connections to finish their requests (bound that wait with the grace period). Each
/// request carries `ConnectInfo<SocketAddr>` of its peer, as on the plain listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: Arc<TlsHandle>,
    app: Router,
    stop: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(handle.server_config());
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting an HTTPS connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let svc = app.map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                // Cookies set on this connection get `Secure`.
                req.extensions_mut().insert(crate::auth::OverTls);
                req
            });
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(svc));
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "HTTPS connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Where the plain listener sends browsers when `redirect_http` is on.
#[derive(Debug, Clone)]
pub struct RedirectTarget {
    /// The HTTPS listener's port.
    pub port: u16,
    /// The host to name when a request has no `Host` header.
    pub hostname: String,
}

/// Wraps the plain listener's router: every request but `/health` and `/metrics` (probes and
/// scrapers that may not speak TLS) is answered `308 Permanent Redirect` to the same path and
/// query on HTTPS, at the host the client asked for.
pub fn redirect_http(app: Router, target: RedirectTarget) -> Router {
    app.layer(axum::middleware::from_fn_with_state(target, redirect))
}

async fn redirect(State(target): State<RedirectTarget>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/health" || path == "/metrics" {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(strip_port)
        .filter(|h| !h.is_empty())
        .unwrap_or(&target.hostname)
        .to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = if target.port == 443 {
        format!("https://{host}{path_and_query}")
    } else {
        format!("https://{host}:{}{path_and_query}", target.port)
    };
    match HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, v)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// `host:port`, `[v6]:port` or `host` → the host part (brackets kept for IPv6).
fn strip_port(host: &str) -> &str {
    if let Some(end) = host.find(']') {
        return &host[..=end];
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(hostname: &str) -> HubTlsConfig {
        HubTlsConfig {
            enabled: true,
            hostname: Some(hostname.parse().unwrap()),
            ..Default::default()
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn generates_stores_and_reloads_the_same_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let h = TlsHandle::load_or_generate(dir.path(), &config("box.example")).unwrap();
        let info = h.info();
        assert!(info.self_signed && info.generated, "{info:?}");
        for name in ["box.example", "localhost", "127.0.0.1", "::1"] {
            assert!(
                info.sans.iter().any(|s| s == name),
                "{name} in {:?}",
                info.sans
            );
        }
        assert!(info.sans.contains(&host_name()), "{:?}", info.sans);
        let tls = dir.path().join("tls");
        assert_eq!(mode(&tls.join("key.pem")), 0o600);
        assert_eq!(mode(&tls.join("cert.pem")), 0o644);
        assert_eq!(
            std::fs::read(tls.join("ca.pem")).unwrap(),
            std::fs::read(tls.join("cert.pem")).unwrap()
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&tls)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");

        // A restart serves the same certificate from disk.
        let again = TlsHandle::load_or_generate(dir.path(), &config("box.example")).unwrap();
        assert_eq!(again.info(), info);

        // A new configured name makes a new self-signed certificate.
        let renamed = TlsHandle::load_or_generate(dir.path(), &config("other.example")).unwrap();
        assert_ne!(renamed.info().sha256_fingerprint, info.sha256_fingerprint);
        assert!(renamed.info().sans.iter().any(|s| s == "other.example"));
    }

    #[test]
    fn install_checks_the_key_and_swaps_the_served_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let h = TlsHandle::load_or_generate(dir.path(), &config("box.example")).unwrap();
        let first = h.info();
        let make = |name: &str| {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let cert = rcgen::CertificateParams::new(vec![name.to_string()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (cert_a, key_a) = make("uploaded.example");
        let (_, key_b) = make("other.example");

        assert!(matches!(
            h.install(&cert_a, &key_b),
            Err(TlsError::KeyMismatch)
        ));
        assert!(matches!(
            h.install("not pem", &key_a),
            Err(TlsError::CertificatePem(_))
        ));
        assert!(matches!(
            h.install(&cert_a, "junk"),
            Err(TlsError::KeyPem(_))
        ));
        assert_eq!(h.info(), first, "a refused upload changes nothing");

        let up = h.install(&cert_a, &key_a).unwrap();
        assert_eq!(up.sans, vec!["uploaded.example".to_string()]);
        assert!(up.self_signed && !up.generated);
        let served = h.resolver.current.read().unwrap().key.cert[0].clone();
        assert_eq!(
            Sha256::digest(served.as_ref()).to_vec(),
            up.sha256_fingerprint
                .split(':')
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect::<Vec<_>>()
        );

        // An uploaded certificate survives a restart even though it does not name the host.
        let again = TlsHandle::load_or_generate(dir.path(), &config("box.example")).unwrap();
        assert_eq!(again.info(), up);

        // Back to a self-signed certificate.
        let fresh = again.reset_self_signed().unwrap();
        assert!(fresh.generated);
        assert_ne!(fresh.sha256_fingerprint, first.sha256_fingerprint);
    }

    #[test]
    fn a_mismatched_pair_on_disk_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let h = TlsHandle::load_or_generate(dir.path(), &config("box.example")).unwrap();
        let tls = dir.path().join("tls");
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(tls.join("key.pem"), other.serialize_pem()).unwrap();
        let again = TlsHandle::load_or_generate(dir.path(), &config("box.example")).unwrap();
        assert_ne!(again.info().sha256_fingerprint, h.info().sha256_fingerprint);
        assert!(tls.join("key.pem.bad").exists() && tls.join("cert.pem.bad").exists());
    }

    #[test]
    fn strip_port_keeps_the_host() {
        assert_eq!(strip_port("box.local:8080"), "box.local");
        assert_eq!(strip_port("box.local"), "box.local");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("10.0.0.2:80"), "10.0.0.2");
    }
}
