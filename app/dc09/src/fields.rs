//! Header fields of a DC-09 message: sequence number, receiver and line prefixes, account.

use std::fmt;

use crate::error::Dc09Error;

/// A message sequence number, 0001–9999. After 9999 comes 0001 (0000 only appears in NAKs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(u16);

impl Seq {
    pub const FIRST: Seq = Seq(1);
    pub const LAST: Seq = Seq(9999);

    pub fn new(n: u16) -> Result<Self, Dc09Error> {
        if (1..=9999).contains(&n) {
            Ok(Self(n))
        } else {
            Err(Dc09Error::InvalidField {
                field: "sequence number",
                value: n.to_string(),
                reason: "must be 1..=9999",
            })
        }
    }

    /// The sequence number a counter that only grows maps to: 1, 2, … 9999, 1, …
    pub fn from_counter(counter: u64) -> Self {
        // The remainder is < 9999, so it fits in u16.
        Self((counter.saturating_sub(1) % 9999) as u16 + 1)
    }

    pub fn get(self) -> u16 {
        self.0
    }

    /// The following sequence number, wrapping 9999 to 0001.
    #[must_use]
    pub fn next(self) -> Self {
        if self.0 >= 9999 {
            Self(1)
        } else {
            Self(self.0 + 1)
        }
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

fn all_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The digits of a receiver number (`R…`) or account prefix/line (`L…`): 1 to 6 hex digits,
/// kept in upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Prefix(String);

impl Prefix {
    pub fn new(digits: &str) -> Result<Self, Dc09Error> {
        if (1..=6).contains(&digits.len()) && all_hex(digits) {
            Ok(Self(digits.to_ascii_uppercase()))
        } else {
            Err(Dc09Error::InvalidField {
                field: "receiver/line prefix",
                value: digits.to_string(),
                reason: "must be 1 to 6 hex digits",
            })
        }
    }

    /// `0`, the usual line/receiver when a receiver does not care.
    pub fn zero() -> Self {
        Self("0".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account number: 3 to 16 hex digits, kept in upper case (some receivers match
/// accounts case-sensitively against upper-case digits only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Account(String);

impl Account {
    pub fn new(digits: &str) -> Result<Self, Dc09Error> {
        if (3..=16).contains(&digits.len()) && all_hex(digits) {
            Ok(Self(digits.to_ascii_uppercase()))
        } else {
            Err(Dc09Error::InvalidField {
                field: "account",
                value: digits.to_string(),
                reason: "must be 3 to 16 hex digits",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_wraps_to_one() {
        assert_eq!(Seq::new(9998).unwrap().next().get(), 9999);
        assert_eq!(Seq::LAST.next(), Seq::FIRST);
        assert!(Seq::new(0).is_err());
        assert!(Seq::new(10000).is_err());
        assert_eq!(Seq::new(7).unwrap().to_string(), "0007");
        assert_eq!(Seq::from_counter(0).get(), 1);
        assert_eq!(Seq::from_counter(1).get(), 1);
        assert_eq!(Seq::from_counter(9999).get(), 9999);
        assert_eq!(Seq::from_counter(10000).get(), 1);
    }

    #[test]
    fn prefixes_and_accounts() {
        assert_eq!(Prefix::new("1a").unwrap().as_str(), "1A");
        assert!(Prefix::new("").is_err());
        assert!(Prefix::new("1234567").is_err());
        assert!(Prefix::new("G").is_err());
        assert_eq!(Account::new("abc").unwrap().as_str(), "ABC");
        assert!(Account::new("AB").is_err());
        assert!(Account::new("12345678901234567").is_err());
        assert!(Account::new("12 4").is_err());
    }
}
