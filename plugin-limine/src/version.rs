//! Telling which Limine release a set of binaries is: from the files themselves, else from the
//! name of the branch or tag they came from.

use std::fmt;
use std::path::Path;

/// A Limine release version, as far as it is known: always the major version; minor and patch
/// when a file or a release tag says them.
///
/// The major version decides the `limine.conf` syntax (see [`crate::conf`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LimineVersion {
    /// Major version (`8` in 8.2.0).
    pub major: u32,
    /// Minor version, when known.
    pub minor: Option<u32>,
    /// Patch version, when known.
    pub patch: Option<u32>,
}

impl LimineVersion {
    /// A version with only the major number known.
    pub fn major_only(major: u32) -> Self {
        LimineVersion {
            major,
            minor: None,
            patch: None,
        }
    }

    /// Parses `8`, `8.x`, `8.2`, `8.2.0` (and the same with a leading `v`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let mut parts = text.split('.');
        let major = parse_number(parts.next()?)?;
        let mut version = LimineVersion::major_only(major);
        match parts.next() {
            None | Some("x") => {}
            Some(minor) => version.minor = Some(parse_number(minor)?),
        }
        match parts.next() {
            None | Some("x") => {}
            Some(patch) => version.patch = Some(parse_number(patch)?),
        }
        if parts.next().is_some() || (version.minor.is_none() && version.patch.is_some()) {
            return None;
        }
        Some(version)
    }

    /// The version a binary-release ref name stands for: `v8.x-binary` → 8.x, `v8.2.0-binary`
    /// → 8.2.0, `v6.x-branch-binary` → 6.x; `refs/heads/` and `refs/tags/` prefixes are allowed.
    /// Other names (source branches, commit ids) give `None`.
    pub fn from_ref_name(name: &str) -> Option<Self> {
        let name = name
            .strip_prefix("refs/heads/")
            .or_else(|| name.strip_prefix("refs/tags/"))
            .unwrap_or(name);
        let stem = name.strip_suffix("-binary")?;
        let stem = stem.strip_suffix("-branch").unwrap_or(stem);
        if !stem.starts_with('v') {
            return None;
        }
        LimineVersion::parse(stem)
    }

    /// The version the files in `dir` carry: the `LIMINE_VERSION` define of the host tool's
    /// source `limine.c` (shipped on the binary branches), else the `Limine X.Y.Z` banner inside
    /// `limine-bios.sys` or `BOOTX64.EFI` (what a distribution's `share/limine` has).
    pub fn from_dir(dir: &Path) -> Option<Self> {
        if let Ok(source) = std::fs::read(dir.join("limine.c"))
            && let Some(version) = from_define(&source)
        {
            return Some(version);
        }
        ["limine-bios.sys", "BOOTX64.EFI"]
            .iter()
            .filter_map(|name| std::fs::read(dir.join(name)).ok())
            .find_map(|bytes| from_banner(&bytes))
    }
}

impl fmt::Display for LimineVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.minor, self.patch) {
            (Some(minor), Some(patch)) => write!(f, "{}.{minor}.{patch}", self.major),
            (Some(minor), None) => write!(f, "{}.{minor}.x", self.major),
            _ => write!(f, "{}.x", self.major),
        }
    }
}

fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `#define LIMINE_VERSION "8.2.0"`.
fn from_define(source: &[u8]) -> Option<LimineVersion> {
    let text = String::from_utf8_lossy(source);
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("#define")?.trim_start();
        let value = rest.strip_prefix("LIMINE_VERSION")?.trim();
        LimineVersion::parse(value.strip_prefix('"')?.strip_suffix('"')?)
    })
}

/// The first `Limine <digits>.<digits>[.<digits>]` in a binary.
fn from_banner(bytes: &[u8]) -> Option<LimineVersion> {
    const MARK: &[u8] = b"Limine ";
    let mut start = 0;
    while let Some(pos) = find(&bytes[start..], MARK) {
        let after = start + pos + MARK.len();
        let end = bytes[after..]
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'.'))
            .map_or(bytes.len(), |n| after + n);
        if let Ok(text) = std::str::from_utf8(&bytes[after..end]) {
            let text = text.trim_end_matches('.');
            if text.contains('.')
                && let Some(version) = LimineVersion::parse(text)
            {
                return Some(version);
            }
        }
        start = after;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names_of_binary_releases() {
        let v = |s| LimineVersion::from_ref_name(s).map(|v| v.to_string());
        assert_eq!(v("v8.x-binary").as_deref(), Some("8.x"));
        assert_eq!(v("refs/heads/v10.x-binary").as_deref(), Some("10.x"));
        assert_eq!(v("refs/tags/v8.2.0-binary").as_deref(), Some("8.2.0"));
        assert_eq!(v("v6.x-branch-binary").as_deref(), Some("6.x"));
        assert_eq!(v("v8.x"), None);
        assert_eq!(v("trunk"), None);
        assert_eq!(v("1dbdf77f-binary"), None);
        assert_eq!(v("vx-binary"), None);
    }

    #[test]
    fn versions_from_file_contents() {
        let source = b"...\n#define LIMINE_VERSION \"8.2.0\"\n...";
        assert_eq!(from_define(source), LimineVersion::parse("8.2.0"));
        let banner = b"\0\0Limine \0Limine 1\0Limine 9.3.1 (x86-64, BIOS)\0";
        assert_eq!(from_banner(banner), LimineVersion::parse("9.3.1"));
        assert_eq!(from_banner(b"Limine Limine."), None);
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(LimineVersion::parse("v8").unwrap().to_string(), "8.x");
        assert_eq!(LimineVersion::parse("8.1").unwrap().to_string(), "8.1.x");
        assert!(LimineVersion::parse("8.1.2.3").is_none());
        assert!(LimineVersion::parse("8.x.2").is_none());
        assert!(LimineVersion::parse("").is_none());
        assert!(LimineVersion::parse("8.2.0").unwrap() > LimineVersion::parse("8.1.9").unwrap());
    }
}
