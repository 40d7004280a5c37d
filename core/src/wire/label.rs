//! [`Label`]: a pool or display name held inline, so that the server's events are made without allocating.
use std::fmt;
use std::ops::Deref;

use super::{MAX_NAME_BYTES, MAX_POOL_BYTES};

/// Bytes a [`Label`] holds: the longer of the wire's pool and name limits.
pub const LABEL_BYTES: usize = if MAX_POOL_BYTES > MAX_NAME_BYTES {
    MAX_POOL_BYTES
} else {
    MAX_NAME_BYTES
};

/// A short text as the server reports it ([`crate::ServerEvent`]'s pools and names): UTF-8 of at most
/// [`LABEL_BYTES`] (64) bytes, the wire's limit for both, stored inline instead of in a `String` (a pairing
/// reports three of them; they cost no allocation). It dereferences to `str`, prints and serializes as
/// one, and compares with `str`:
///
/// ```
/// use punch_core::wire::Label;
///
/// let pool = Label::from("7");
/// assert_eq!(pool, "7");
/// assert_eq!(format!("{pool} / {pool:?}"), "7 / \"7\"");
/// assert_eq!(pool.len(), 1); // any `str` method
/// // Longer text is cut at the last character boundary within 64 bytes (the wire never carries more).
/// assert_eq!(Label::from("é".repeat(40).as_str()).len(), 64);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Label {
    len: u8,
    bytes: [u8; LABEL_BYTES],
}

impl Label {
    /// The text.
    pub fn as_str(&self) -> &str {
        let b = &self.bytes[..usize::from(self.len)];
        // Built only from a `&str` cut at a character boundary (`From<&str>`).
        std::str::from_utf8(b).unwrap_or_default()
    }
}

impl From<&str> for Label {
    /// `s`, cut at the last character boundary within [`LABEL_BYTES`].
    fn from(s: &str) -> Label {
        let mut n = s.len().min(LABEL_BYTES);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        let mut bytes = [0; LABEL_BYTES];
        bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
        Label {
            len: n as u8,
            bytes,
        }
    }
}

impl From<String> for Label {
    fn from(s: String) -> Label {
        Label::from(s.as_str())
    }
}

impl From<Label> for String {
    fn from(l: Label) -> String {
        l.as_str().to_owned()
    }
}

impl Default for Label {
    fn default() -> Label {
        Label::from("")
    }
}

impl Deref for Label {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Label {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Label {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Label {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Label {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialOrd for Label {
    fn partial_cmp(&self, other: &Label) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Label {
    /// The order of the texts (`str`'s).
    fn cmp(&self, other: &Label) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Label {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_keeps_its_text_up_to_the_limit() {
        for s in ["", "7", "alice", &"x".repeat(64), "añ€😀"] {
            assert_eq!(Label::from(s).as_str(), s);
        }
        assert_eq!(
            Label::from("y".repeat(65).as_str()).as_str(),
            "y".repeat(64)
        );
        // 63 bytes of ASCII and a 2-byte character: the character would end past 64, so it is left out.
        let cut = format!("{}é", "z".repeat(63));
        assert_eq!(Label::from(cut.as_str()).as_str(), "z".repeat(63));
        assert!(Label::from("b") > Label::from("aa"), "ordered as text");
    }
}
