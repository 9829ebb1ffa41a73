//! Validating newtypes: a value of one of these types is valid by construction, and a bad
//! value in the file is rejected at deserialization, so the error carries the key and line.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Declares `Deserialize` through `FromStr` (so errors keep the TOML span) and `Serialize`
/// through `Display`.
macro_rules! string_newtype_serde {
    ($t:ty) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}
pub(crate) use string_newtype_serde;

/// A TCP/UDP listen address `IP:PORT`. Port 0 asks the system for a free port (the supervisor
/// resolves it once at start and reports the real address in `run/listeners.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenAddr(SocketAddr);

impl ListenAddr {
    pub fn new(addr: SocketAddr) -> Self {
        Self(addr)
    }
    pub fn addr(&self) -> SocketAddr {
        self.0
    }
    pub fn port(&self) -> u16 {
        self.0.port()
    }
    pub fn ip(&self) -> IpAddr {
        self.0.ip()
    }
    pub fn is_loopback(&self) -> bool {
        self.0.ip().is_loopback()
    }
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Self(a));
        }
        // Give a precise reason for the common mistakes.
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}` is not an address of the form IP:PORT"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.parse::<IpAddr>().is_err() {
            return Err(format!(
                "`{host}` in `{s}` is not an IP address (use e.g. 127.0.0.1 or 0.0.0.0)"
            ));
        }
        match port.parse::<u64>() {
            Ok(p) if p > 65535 => Err(format!("port {p} in `{s}` is out of range (0..=65535)")),
            _ => Err(format!(
                "`{port}` in `{s}` is not a port number (0..=65535)"
            )),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
string_newtype_serde!(ListenAddr);

/// A network endpoint to connect to: `HOST:PORT` where HOST may be a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    host: String,
    port: u16,
}

impl Endpoint {
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}` is not an endpoint of the form HOST:PORT"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!(
                "`{host}` in `{s}` is not a host name or IP address"
            ));
        }
        let port = match port.parse::<u64>() {
            Ok(p) if (1..=65535).contains(&p) => p as u16,
            Ok(p) => return Err(format!("port {p} in `{s}` is out of range (1..=65535)")),
            Err(_) => return Err(format!("`{port}` in `{s}` is not a port number")),
        };
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}
string_newtype_serde!(Endpoint);

impl From<ListenAddr> for Endpoint {
    fn from(a: ListenAddr) -> Self {
        Self {
            host: a.ip().to_string(),
            port: a.port(),
        }
    }
}

/// An MQTT topic name to publish to: non-empty, no wildcards, no NUL, at most 65535 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MqttTopic(String);

impl MqttTopic {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for MqttTopic {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("an MQTT topic cannot be empty".into());
        }
        if s.len() > 65535 {
            return Err("an MQTT topic is at most 65535 bytes".into());
        }
        if s.contains(['+', '#']) {
            return Err(format!(
                "`{s}` contains a wildcard (+ or #), which a topic to publish to cannot"
            ));
        }
        if s.contains('\0') {
            return Err("an MQTT topic cannot contain NUL".into());
        }
        Ok(Self(s.to_string()))
    }
}

impl fmt::Display for MqttTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype_serde!(MqttTopic);

/// A short identifier used in topics, paths and metric labels: 1–64 chars of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Ident {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 64 {
            return Err(format!("`{s}` must be 1 to 64 characters long"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "`{s}` may contain only letters, digits, `_` and `-`"
            ));
        }
        Ok(Self(s.to_string()))
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype_serde!(Ident);

/// A host name label (RFC 1123): 1–63 letters, digits and `-`, not starting or ending with
/// `-`. `[system] hostname`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hostname(String);

impl Hostname {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_label(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err(format!("`{s}` must be 1 to 63 characters long"));
    }
    if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(format!("`{s}` may contain only letters, digits and `-`"));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(format!("`{s}` must not start or end with `-`"));
    }
    Ok(())
}

impl FromStr for Hostname {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_label(s).map_err(|e| format!("not a host name (RFC 1123 label): {e}"))?;
        Ok(Self(s.to_string()))
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype_serde!(Hostname);

/// Where the system's time zone database is; when it exists, a [`TimeZone`] must name a file
/// in it.
pub const ZONEINFO_DIR: &str = "/usr/share/zoneinfo";

/// An IANA time zone name such as `Europe/Berlin` or `UTC`: `[system] timezone`. Checked
/// against [`ZONEINFO_DIR`] when the machine has one, else by its form only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimeZone(String);

impl TimeZone {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form of a zone name: `/`-separated parts of letters, digits, `_`, `-`, `+`.
    fn check_form(s: &str) -> Result<(), String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.split('/').all(|p| {
                !p.is_empty()
                    && p != "."
                    && p != ".."
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))
            });
        if ok {
            Ok(())
        } else {
            Err(format!(
                "`{s}` is not a time zone name (like `Europe/Berlin` or `UTC`)"
            ))
        }
    }

    /// Checks `s` against the zone database in `dir` when there is one.
    pub fn parse_in(s: &str, dir: &std::path::Path) -> Result<Self, String> {
        Self::check_form(s)?;
        if dir.is_dir() && !dir.join(s).is_file() {
            return Err(format!("`{s}` is not a time zone of {}", dir.display()));
        }
        Ok(Self(s.to_string()))
    }
}

impl FromStr for TimeZone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_in(s, std::path::Path::new(ZONEINFO_DIR))
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype_serde!(TimeZone);

/// An NTP server: a host name (dot-separated RFC 1123 labels) or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NtpServer(String);

impl NtpServer {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NtpServer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.parse::<IpAddr>().is_ok() {
            return Ok(Self(s.to_string()));
        }
        if s.len() > 253 {
            return Err(format!("`{s}` is longer than 253 characters"));
        }
        for label in s.trim_end_matches('.').split('.') {
            check_label(label).map_err(|e| format!("`{s}` is not a host name: {e}"))?;
        }
        Ok(Self(s.to_string()))
    }
}

impl fmt::Display for NtpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype_serde!(NtpServer);

/// A time of day written `HH:MM` (24-hour clock), from `00:00` to `24:00`; `24:00` is the end
/// of the day, for a window that runs to midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// `hour:minute`; `None` outside `00:00..=24:00`.
    pub fn new(hour: u8, minute: u8) -> Option<Self> {
        ((hour < 24 && minute < 60) || (hour == 24 && minute == 0))
            .then(|| Self(u16::from(hour) * 60 + u16::from(minute)))
    }

    /// Minutes after midnight, `0..=1440`.
    pub fn minutes(self) -> u32 {
        u32::from(self.0)
    }
}

impl FromStr for TimeOfDay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let not_hhmm = || format!("`{s}` is not a time of the form HH:MM");
        let (h, m) = s.split_once(':').ok_or_else(not_hhmm)?;
        let digits = |x: &str| (1..=2).contains(&x.len()) && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(h) || m.len() != 2 || !digits(m) {
            return Err(not_hhmm());
        }
        let (h, m) = (
            h.parse().map_err(|_| not_hhmm())?,
            m.parse().map_err(|_| not_hhmm())?,
        );
        Self::new(h, m).ok_or_else(|| format!("`{s}` is not a time between 00:00 and 24:00"))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}
string_newtype_serde!(TimeOfDay);

/// One entry of a day list: a day of the week (`mon`..`sun`) or a group of them (`daily`,
/// `weekdays`, `weekends`). Read without regard to case (`Mon` is `mon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DayName {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
    Daily,
    Weekdays,
    Weekends,
}

impl DayName {
    pub const ALL: [DayName; 10] = [
        DayName::Mon,
        DayName::Tue,
        DayName::Wed,
        DayName::Thu,
        DayName::Fri,
        DayName::Sat,
        DayName::Sun,
        DayName::Daily,
        DayName::Weekdays,
        DayName::Weekends,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DayName::Mon => "mon",
            DayName::Tue => "tue",
            DayName::Wed => "wed",
            DayName::Thu => "thu",
            DayName::Fri => "fri",
            DayName::Sat => "sat",
            DayName::Sun => "sun",
            DayName::Daily => "daily",
            DayName::Weekdays => "weekdays",
            DayName::Weekends => "weekends",
        }
    }

    /// The days meant, as a bit set (bit 0 = Monday … bit 6 = Sunday).
    pub fn mask(self) -> u8 {
        match self {
            DayName::Mon => 1,
            DayName::Tue => 1 << 1,
            DayName::Wed => 1 << 2,
            DayName::Thu => 1 << 3,
            DayName::Fri => 1 << 4,
            DayName::Sat => 1 << 5,
            DayName::Sun => 1 << 6,
            DayName::Daily => 0x7f,
            DayName::Weekdays => 0x1f,
            DayName::Weekends => 0x60,
        }
    }
}

impl FromStr for DayName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("`{s}` is not a day (mon..sun, daily, weekdays, weekends)"))
    }
}

impl fmt::Display for DayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
string_newtype_serde!(DayName);

/// A non-empty list of [`DayName`]s, written `["mon", "tue"]` or `["weekdays"]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Days(Vec<DayName>);

impl Days {
    /// `None` for an empty list.
    pub fn new(days: Vec<DayName>) -> Option<Self> {
        (!days.is_empty()).then_some(Self(days))
    }

    /// The days meant, as a bit set (bit 0 = Monday … bit 6 = Sunday); never 0.
    pub fn mask(&self) -> u8 {
        self.0.iter().fold(0, |m, d| m | d.mask())
    }

    pub fn names(&self) -> &[DayName] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Days {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let days = Vec::<DayName>::deserialize(d)?;
        Self::new(days).ok_or_else(|| serde::de::Error::custom("needs at least one day"))
    }
}

/// A secret from the configuration: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret's value, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_time_zones_and_ntp_servers() {
        assert!("watchpost-1".parse::<Hostname>().is_ok());
        for bad in ["", "-a", "a-", "a.b", "a_b", &"x".repeat(64)] {
            assert!(bad.parse::<Hostname>().is_err(), "{bad}");
        }
        let none = std::path::Path::new("/nonexistent-zoneinfo");
        assert!(TimeZone::parse_in("Europe/Berlin", none).is_ok());
        assert!(TimeZone::parse_in("UTC", none).is_ok());
        for bad in ["", "Europe/../etc", "/etc/passwd", "Europe Berlin", "a//b"] {
            assert!(TimeZone::parse_in(bad, none).is_err(), "{bad}");
        }
        let db = std::env::temp_dir().join(format!("wp-zoneinfo-{}", std::process::id()));
        std::fs::create_dir_all(db.join("Europe")).unwrap();
        std::fs::write(db.join("Europe/Berlin"), b"TZif").unwrap();
        assert!(TimeZone::parse_in("Europe/Berlin", &db).is_ok());
        assert!(TimeZone::parse_in("Europe/Atlantis", &db).is_err());
        std::fs::remove_dir_all(&db).unwrap();
        for ok in [
            "pool.ntp.org",
            "ntp1.example.com.",
            "192.0.2.1",
            "2001:db8::1",
        ] {
            assert!(ok.parse::<NtpServer>().is_ok(), "{ok}");
        }
        for bad in ["", "ntp..org", "ntp_1.org", "a b"] {
            assert!(bad.parse::<NtpServer>().is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_addr_reasons() {
        assert_eq!("127.0.0.1:8080".parse::<ListenAddr>().unwrap().port(), 8080);
        assert!("[::1]:0".parse::<ListenAddr>().is_ok());
        let e = "127.0.0.1:70000".parse::<ListenAddr>().unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = "localhost:80".parse::<ListenAddr>().unwrap_err();
        assert!(e.contains("not an IP address"), "{e}");
        assert!("8080".parse::<ListenAddr>().is_err());
    }

    #[test]
    fn endpoint_and_topic() {
        let e: Endpoint = "broker.local:1883".parse().unwrap();
        assert_eq!((e.host(), e.port()), ("broker.local", 1883));
        assert!("x:0".parse::<Endpoint>().is_err());
        assert!("a/+/b".parse::<MqttTopic>().is_err());
        assert!("watchpost/x".parse::<MqttTopic>().is_ok());
        assert!("cam 1".parse::<Ident>().is_err());
        assert_eq!(format!("{:?}", Secret::new("pw")), "Secret(***)");
    }

    #[test]
    fn times_of_day() {
        let t: TimeOfDay = "07:30".parse().unwrap();
        assert_eq!((t.minutes(), t.to_string()), (450, "07:30".to_string()));
        assert_eq!("24:00".parse::<TimeOfDay>().unwrap().minutes(), 1440);
        assert_eq!("7:05".parse::<TimeOfDay>().unwrap().to_string(), "07:05");
        for bad in [
            "25:00", "24:01", "12:60", "7", "07:5", "07:30:00", "-1:00", "ab:cd", "",
        ] {
            assert!(bad.parse::<TimeOfDay>().is_err(), "{bad}");
        }
        let e = "25:00".parse::<TimeOfDay>().unwrap_err();
        assert!(e.contains("between 00:00 and 24:00"), "{e}");
    }

    #[test]
    fn day_lists() {
        let d: Days = serde_json::from_str(r#"["Mon", "sun"]"#).unwrap();
        assert_eq!(d.mask(), 0b100_0001);
        assert_eq!(serde_json::to_string(&d).unwrap(), r#"["mon","sun"]"#);
        let d: Days = serde_json::from_str(r#"["weekdays", "SAT"]"#).unwrap();
        assert_eq!(d.mask(), 0b011_1111);
        let all: Days = serde_json::from_str(r#"["daily"]"#).unwrap();
        assert_eq!(all.mask(), 0x7f);
        let e = serde_json::from_str::<Days>(r#"["Mon", "Funday"]"#).unwrap_err();
        assert!(e.to_string().contains("`Funday` is not a day"), "{e}");
        let e = serde_json::from_str::<Days>("[]").unwrap_err();
        assert!(e.to_string().contains("at least one day"), "{e}");
        for d in DayName::ALL {
            assert_eq!(d.as_str().parse::<DayName>(), Ok(d));
        }
    }
}
