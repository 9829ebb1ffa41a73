//! Bundle versions against the running firmware's: "older unless forced" needs an order.
//!
//! RAUC leaves a bundle's `version` free-form. Watchpost's are semantic versions
//! (`MAJOR.MINOR.PATCH[-PRE][+BUILD]`, from the workspace's `version`), which is what this
//! orders: numeric dot-separated components (missing ones are 0), a pre-release before its
//! release, build metadata ignored. A version that is not of that shape cannot be ordered, and
//! the caller refuses it unless forced ([`compare`] returns `None`).

use std::cmp::Ordering;

/// A parsed version: numeric release components and an optional pre-release tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    release: Vec<u64>,
    pre: Option<String>,
}

impl Version {
    /// Parses `1.2.3`, `1.2`, `1.2.3-rc.1`, `1.2.3+git.abc` (a leading `v` is allowed).
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let s = s.split('+').next().unwrap_or(s);
        let (release, pre) = match s.split_once('-') {
            Some((r, p)) if !p.is_empty() => (r, Some(p.to_string())),
            Some(_) => return None,
            None => (s, None),
        };
        if release.is_empty() {
            return None;
        }
        let release = release
            .split('.')
            .map(|c| {
                if c.is_empty() || c.len() > 19 || !c.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    c.parse::<u64>().ok()
                }
            })
            .collect::<Option<Vec<u64>>>()?;
        if release.len() > 8 {
            return None;
        }
        Some(Version { release, pre })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.release.len().max(other.release.len());
        for i in 0..n {
            let a = self.release.get(i).copied().unwrap_or(0);
            let b = other.release.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match (&self.pre, &other.pre) {
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => compare_pre(a, b),
        }
    }
}

/// Semantic-versioning pre-release order: dot-separated identifiers, numeric ones numerically
/// and before alphanumeric ones, a shorter list first when all else is equal.
fn compare_pre(a: &str, b: &str) -> Ordering {
    let mut ai = a.split('.');
    let mut bi = b.split('.');
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// `bundle` against `running`; `None` when either cannot be parsed.
pub fn compare(bundle: &str, running: &str) -> Option<Ordering> {
    Some(Version::parse(bundle)?.cmp(&Version::parse(running)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_releases_and_pre_releases() {
        assert_eq!(compare("0.2.0", "0.1.0"), Some(Ordering::Greater));
        assert_eq!(compare("0.1.0", "0.1"), Some(Ordering::Equal));
        assert_eq!(compare("0.1.10", "0.1.9"), Some(Ordering::Greater));
        assert_eq!(compare("1.0.0-rc.1", "1.0.0"), Some(Ordering::Less));
        assert_eq!(compare("1.0.0-rc.2", "1.0.0-rc.10"), Some(Ordering::Less));
        assert_eq!(compare("1.0.0-alpha", "1.0.0-1"), Some(Ordering::Greater));
        assert_eq!(compare("v1.2.3+git.abc", "1.2.3"), Some(Ordering::Equal));
        assert_eq!(compare("0.0.1", "0.1.0"), Some(Ordering::Less));
    }

    #[test]
    fn refuses_what_is_not_a_version() {
        for bad in [
            "",
            "latest",
            "1..2",
            "1.2.x",
            "1.2.3-",
            "-1",
            "99999999999999999999",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }
}
