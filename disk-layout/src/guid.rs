//! GUIDs as GPT stores them (mixed-endian), their textual form, and content-derived GUIDs that
//! keep images reproducible.

use std::fmt;
use std::str::FromStr;

/// A GUID in its on-disk byte order: the first three fields little-endian, the last eight bytes
/// as written. Displayed in the specification's form, upper case:
/// `C12A7328-F81F-11D2-BA4B-00A0C93EC93B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid([u8; 16]);

impl Guid {
    /// All zeros: an unused GPT entry's type.
    pub const NIL: Guid = Guid([0; 16]);

    /// The GUID written as `{data1:08X}-{data2:04X}-{data3:04X}-{data4[..2]}-{data4[2..]}`.
    pub const fn from_fields(data1: u32, data2: u16, data3: u16, data4: [u8; 8]) -> Self {
        let a = data1.to_le_bytes();
        let b = data2.to_le_bytes();
        let c = data3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], data4[0], data4[1], data4[2], data4[3],
            data4[4], data4[5], data4[6], data4[7],
        ])
    }

    /// The GUID whose on-disk bytes are `bytes`.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Guid(bytes)
    }

    /// The 16 bytes as GPT stores them.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// Whether this is [`Guid::NIL`].
    pub fn is_nil(self) -> bool {
        self == Guid::NIL
    }

    /// The RFC 9562 version: the high nibble of `data3`.
    pub fn version(self) -> u8 {
        // data3 is stored little-endian, so its high nibble is in byte 7.
        self.0[7] >> 4
    }

    /// This GUID marked as RFC 9562 version `version` (low four bits used) with the RFC variant
    /// bits, so tools that check them accept it; the other 122 bits stay.
    pub fn with_version(self, version: u8) -> Self {
        let mut bytes = self.0;
        bytes[7] = (bytes[7] & 0x0F) | ((version & 0x0F) << 4);
        // The variant: the top two bits of data4[0] are 10.
        bytes[8] = (bytes[8] & 0x3F) | 0x80;
        Guid(bytes)
    }

    /// A GUID that depends only on `seed` and `purpose`: the same image content always gets the
    /// same disk and partition GUIDs, and different content (almost always) different ones.
    /// Marked as an RFC 9562 version 8 ("custom") GUID, since it is not random.
    pub fn derive(seed: &GuidSeed, purpose: &str) -> Self {
        let mut seed = seed.clone();
        seed.update(purpose.as_bytes());
        Guid(seed.finish()).with_version(8)
    }

    /// Parses the textual form (case-insensitive, optionally in braces).
    pub fn parse(text: &str) -> Result<Self, GuidParseError> {
        let error = || GuidParseError {
            text: text.to_owned(),
        };
        let inner = text
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(text);
        let groups: Vec<&str> = inner.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        if lengths != [8, 4, 4, 4, 12] {
            return Err(error());
        }
        let hex: String = groups.concat();
        let mut written = [0u8; 16];
        for (i, byte) in written.iter_mut().enumerate() {
            // `get` instead of slicing: a multi-byte character must not panic.
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(error)?;
            if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(error());
            }
            *byte = u8::from_str_radix(pair, 16).map_err(|_| error())?;
        }
        // `written` is in reading order; the first three fields are stored little-endian.
        let w = written;
        Ok(Guid([
            w[3], w[2], w[1], w[0], w[5], w[4], w[7], w[6], w[8], w[9], w[10], w[11], w[12], w[13],
            w[14], w[15],
        ]))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]]),
            b[8],
            b[9]
        )?;
        b[10..].iter().try_for_each(|byte| write!(f, "{byte:02X}"))
    }
}

impl FromStr for Guid {
    type Err = GuidParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Guid::parse(text)
    }
}

/// Text that is not a GUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a GUID; expected 32 hexadecimal digits grouped 8-4-4-4-12, like \
     `C12A7328-F81F-11D2-BA4B-00A0C93EC93B`"
)]
pub struct GuidParseError {
    text: String,
}

/// What derived identifiers are computed from: a 128-bit hash of length-delimited pieces (two
/// FNV-1a-style lanes with different bases and odd multipliers, each finished with a 64-bit
/// avalanche mix so that a one-bit change anywhere moves every output bit). Inputs are small (a
/// boot sector and a path list), so hashing a byte at a time costs nothing measurable.
///
/// Not a cryptographic hash: it only has to make accidental collisions between different
/// images unlikely. The output is part of the images written, so it must never change.
#[derive(Debug, Clone)]
pub struct GuidSeed {
    a: u64,
    b: u64,
}

impl Default for GuidSeed {
    fn default() -> Self {
        GuidSeed::new()
    }
}

impl GuidSeed {
    /// The seed of no input.
    pub fn new() -> Self {
        GuidSeed {
            a: 0xcbf2_9ce4_8422_2325,
            b: 0x6c62_272e_07bb_0142,
        }
    }

    /// Adds `bytes`, prefixed with their length so that ("ab", "c") and ("a", "bc") differ.
    pub fn update(&mut self, bytes: &[u8]) {
        for &byte in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.a = (self.a ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
            self.b = (self.b ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    /// Sixteen well-mixed bytes.
    pub fn finish(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&avalanche(self.a ^ self.b.rotate_left(32)).to_le_bytes());
        out[8..].copy_from_slice(&avalanche(self.b ^ self.a.rotate_left(17)).to_le_bytes());
        out
    }

    /// Four well-mixed bytes, never all zero (an MBR disk signature of 0 means "none").
    pub fn finish32(&self) -> u32 {
        let bytes = self.finish();
        let value = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if value == 0 { 1 } else { value }
    }
}

/// The 64-bit finaliser of MurmurHash3: an invertible mix in which each input bit flips about
/// half of the output bits.
fn avalanche(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ESP_BYTES: [u8; 16] = [
        0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9,
        0x3B,
    ];

    #[test]
    fn fields_are_stored_mixed_endian_and_printed_as_written() {
        let esp = Guid::from_fields(
            0xC12A_7328,
            0xF81F,
            0x11D2,
            [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B],
        );
        assert_eq!(esp.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(esp.to_bytes(), ESP_BYTES);
        assert_eq!(Guid::from_bytes(ESP_BYTES), esp);
    }

    #[test]
    fn text_parses_back_to_the_same_bytes() {
        for text in [
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
            "{C12A7328-F81F-11D2-BA4B-00A0C93EC93B}",
        ] {
            assert_eq!(Guid::parse(text).unwrap().to_bytes(), ESP_BYTES, "{text}");
        }
        let g: Guid = "21686148-6449-6E6F-744E-656564454649".parse().unwrap();
        assert_eq!(&g.to_bytes(), b"Hah!IdontNeedEFI");
        assert_eq!(g.to_string(), "21686148-6449-6E6F-744E-656564454649");
        assert!(
            Guid::parse("00000000-0000-0000-0000-000000000000")
                .unwrap()
                .is_nil()
        );
    }

    #[test]
    fn malformed_text_is_rejected_with_the_text_named() {
        for bad in [
            "",
            "C12A7328F81F11D2BA4B00A0C93EC93B",
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93",
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93BB",
            "C12A732G-F81F-11D2-BA4B-00A0C93EC93B",
            "+12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            "C12A7328-F81F-11D2-BA4B-00A0C93EC9é",
            "{C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        ] {
            let error = Guid::parse(bad).unwrap_err();
            assert!(error.to_string().contains(&format!("`{bad}`")), "{error}");
        }
    }

    #[test]
    fn with_version_sets_the_version_and_variant_only() {
        let g = Guid::from_bytes([0xFF; 16]).with_version(4);
        assert_eq!(g.version(), 4);
        let text = g.to_string();
        assert_eq!(&text[14..15], "4", "{text}");
        assert_eq!(&text[19..20], "B", "{text}");
        let g = Guid::from_bytes([0; 16]).with_version(8);
        assert_eq!(g.to_string(), "00000000-0000-8000-8000-000000000000");
    }

    #[test]
    fn derived_guids_follow_seed_and_purpose_and_carry_version_8() {
        let mut seed = GuidSeed::new();
        seed.update(b"content");
        let disk = Guid::derive(&seed, "disk");
        assert_eq!(disk, Guid::derive(&seed, "disk"));
        assert_ne!(disk, Guid::derive(&seed, "partition 1"));
        let mut other = GuidSeed::new();
        other.update(b"contenu");
        assert_ne!(disk, Guid::derive(&other, "disk"));
        assert_eq!(disk.version(), 8);
        let text = disk.to_string();
        assert_eq!(&text[14..15], "8", "{text}");
        assert!(matches!(&text[19..20], "8" | "9" | "A" | "B"), "{text}");
    }

    #[test]
    fn the_seed_output_is_stable() {
        // Images embed these values: a change here changes every image's ids.
        let mut seed = GuidSeed::new();
        seed.update(b"gpt");
        assert_eq!(
            Guid::derive(&seed, "disk").to_string(),
            "A8476126-0144-8F2E-9829-E53990DDFB04"
        );
        assert_eq!(seed.finish32(), 0x4C64_842E);
    }

    #[test]
    fn pieces_are_length_delimited() {
        let digest = |parts: &[&[u8]]| {
            let mut seed = GuidSeed::new();
            parts.iter().for_each(|p| seed.update(p));
            seed.finish()
        };
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
        assert_eq!(digest(&[b"ab", b"c"]), digest(&[b"ab", b"c"]));
    }
}
