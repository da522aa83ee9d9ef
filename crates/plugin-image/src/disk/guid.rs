//! GUIDs as GPT stores them, and the content-derived ones that keep disk images reproducible.

use std::fmt;

/// A GUID in its on-disk byte order: the first three fields little-endian, the rest as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid([u8; 16]);

impl Guid {
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

    /// The 16 bytes as GPT stores them.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// A GUID that depends only on `seed` and `purpose`: the same image content always gets the
    /// same disk and partition GUIDs, and different content (almost always) different ones.
    /// Marked as an RFC 9562 version 8 ("custom") GUID, since it is not random.
    pub(super) fn derive(seed: &Seed, purpose: &str) -> Self {
        let mut seed = seed.clone();
        seed.update(purpose.as_bytes());
        let mut bytes = seed.finish();
        // The version is the high nibble of data3, stored little-endian: byte 7.
        bytes[7] = (bytes[7] & 0x0F) | 0x80;
        // The RFC variant: the top two bits of data4[0] are 10.
        bytes[8] = (bytes[8] & 0x3F) | 0x80;
        Guid(bytes)
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

/// What derived identifiers are computed from: a 128-bit hash of length-delimited pieces (two
/// FNV-1a-style lanes with different bases and odd multipliers, each finished with a 64-bit
/// avalanche mix so that a one-bit change anywhere moves every output bit). Inputs are small (a
/// boot sector and the staged path list), so hashing a byte at a time costs nothing measurable.
#[derive(Debug, Clone)]
pub(super) struct Seed {
    a: u64,
    b: u64,
}

impl Seed {
    pub(super) fn new() -> Self {
        Seed {
            a: 0xcbf2_9ce4_8422_2325,
            b: 0x6c62_272e_07bb_0142,
        }
    }

    /// Adds `bytes`, prefixed with their length so that ("ab", "c") and ("a", "bc") differ.
    pub(super) fn update(&mut self, bytes: &[u8]) {
        for &byte in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.a = (self.a ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
            self.b = (self.b ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    /// Sixteen well-mixed bytes.
    pub(super) fn finish(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&avalanche(self.a ^ self.b.rotate_left(32)).to_le_bytes());
        out[8..].copy_from_slice(&avalanche(self.b ^ self.a.rotate_left(17)).to_le_bytes());
        out
    }

    /// Four well-mixed bytes, never all zero (an MBR disk signature of 0 means "none").
    pub(super) fn finish32(&self) -> u32 {
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

    #[test]
    fn fields_are_stored_mixed_endian_and_printed_as_written() {
        let esp = Guid::from_fields(
            0xC12A_7328,
            0xF81F,
            0x11D2,
            [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B],
        );
        assert_eq!(esp.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(
            esp.to_bytes(),
            [
                0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E,
                0xC9, 0x3B
            ]
        );
    }

    #[test]
    fn derived_guids_follow_seed_and_purpose_and_carry_version_8() {
        let mut seed = Seed::new();
        seed.update(b"content");
        let disk = Guid::derive(&seed, "disk");
        assert_eq!(disk, Guid::derive(&seed, "disk"));
        assert_ne!(disk, Guid::derive(&seed, "partition 1"));
        let mut other = Seed::new();
        other.update(b"contenu");
        assert_ne!(disk, Guid::derive(&other, "disk"));
        let text = disk.to_string();
        assert_eq!(&text[14..15], "8", "{text}");
        assert!(matches!(&text[19..20], "8" | "9" | "A" | "B"), "{text}");
    }

    #[test]
    fn pieces_are_length_delimited() {
        let digest = |parts: &[&[u8]]| {
            let mut seed = Seed::new();
            parts.iter().for_each(|p| seed.update(p));
            seed.finish()
        };
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
        assert_eq!(digest(&[b"ab", b"c"]), digest(&[b"ab", b"c"]));
    }
}
