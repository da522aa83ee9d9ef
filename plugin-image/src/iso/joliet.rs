//! Joliet names: UCS-2, at most 64 characters with the `;1` version, none of `* / : ; ? \`,
//! unique within a directory ignoring case (as Windows looks them up). Longer or clashing names
//! are shortened deterministically; Rock Ridge keeps the original.

use super::tree::numbered;

/// Most UCS-2 units in a Joliet identifier, version included.
const MAX_UNITS: usize = 64;
/// Extensions longer than this are treated as part of the name when shortening.
const MAX_EXTENSION: usize = 16;

/// A Joliet name split for shortening: the stem, and the extension with its dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Name {
    stem: Vec<u16>,
    extension: Vec<u16>,
    is_dir: bool,
}

impl Name {
    /// Maps an original name: characters outside the BMP and the ones Joliet forbids become
    /// `_`.
    pub(super) fn new(original: &str, is_dir: bool) -> Self {
        let units: Vec<u16> = original.chars().map(unit).collect();
        let dot = units
            .iter()
            .rposition(|&u| u == u16::from(b'.'))
            .filter(|&i| !is_dir && i > 0 && units.len() - i <= MAX_EXTENSION);
        let (stem, extension) = match dot {
            Some(i) => (units[..i].to_vec(), units[i..].to_vec()),
            None => (units, Vec::new()),
        };
        Name {
            stem,
            extension,
            is_dir,
        }
    }

    /// The `n`th candidate (0: the name itself, shortened to fit), without the version.
    pub(super) fn candidate(&self, n: u32) -> Vec<u16> {
        let max = if self.is_dir {
            MAX_UNITS
        } else {
            MAX_UNITS - 2
        };
        let mut id = numbered(&self.stem, max - self.extension.len(), n);
        id.extend_from_slice(&self.extension);
        id
    }
}

fn unit(c: char) -> u16 {
    match c {
        '*' | '/' | ':' | ';' | '?' | '\\' => u16::from(b'_'),
        c => u16::try_from(u32::from(c)).unwrap_or(u16::from(b'_')),
    }
}

/// What two names must not share within a directory: the name folded to lowercase.
pub(super) fn clash_key(id: &[u16]) -> Vec<u16> {
    char::decode_utf16(id.iter().copied())
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .flat_map(char::to_lowercase)
        .map(unit)
        .collect()
}

/// The identifier as recorded: UCS-2 big-endian, files with `;1`.
pub(super) fn record_id(id: &[u16], is_dir: bool) -> Vec<u8> {
    let version: &[u16] = if is_dir {
        &[]
    } else {
        &[b';' as u16, b'1' as u16]
    };
    id.iter()
        .chain(version)
        .flat_map(|u| u.to_be_bytes())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(units: &[u16]) -> String {
        String::from_utf16_lossy(units)
    }

    #[test]
    fn names_keep_case_and_lose_forbidden_characters() {
        let name = Name::new("Kernel: v1?.ELF", false);
        assert_eq!(text(&name.candidate(0)), "Kernel_ v1_.ELF");
        assert_eq!(
            text(&Name::new("🦀 crab.txt", false).candidate(0)),
            "_ crab.txt"
        );
        assert_eq!(
            record_id(&Name::new("a", false).candidate(0), false),
            [0, b'a', 0, b';', 0, b'1']
        );
        assert_eq!(
            record_id(&Name::new("a", true).candidate(0), true),
            [0, b'a']
        );
    }

    #[test]
    fn long_names_are_shortened_keeping_the_extension() {
        let long = format!("{}.conf", "x".repeat(100));
        let name = Name::new(&long, false);
        let first = text(&name.candidate(0));
        assert_eq!(first.chars().count(), 62);
        assert!(first.ends_with("x.conf"), "{first}");
        let third = text(&name.candidate(12));
        assert_eq!(third.chars().count(), 62);
        assert!(third.ends_with("x_12.conf"), "{third}");
        let dir = Name::new(&"d".repeat(70), true);
        assert_eq!(dir.candidate(0).len(), 64);
        // A dot in a directory name is just a character.
        assert_eq!(text(&Name::new("v1.2", true).candidate(0)), "v1.2");
    }

    #[test]
    fn clashes_ignore_case() {
        assert_eq!(
            clash_key(&Name::new("Kernel.ELF", false).candidate(0)),
            clash_key(&Name::new("kernel.elf", false).candidate(0))
        );
    }
}
