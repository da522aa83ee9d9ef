//! El Torito: the boot catalogue (a BIOS and/or a UEFI no-emulation entry), how many sectors
//! firmware is told to load, and the boot info table patched into BIOS boot images.

use super::volume::BLOCK;

/// Platform ids of the catalogue.
const PLATFORM_BIOS: u8 = 0;
const PLATFORM_EFI: u8 = 0xEF;

/// A boot image: its first block and how many 512-byte sectors firmware loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) lba: u32,
    pub(super) sectors: u16,
}

/// Boot images below this size are loaded whole when they carry no boot info table: the
/// conventional memory from 0x7C00 up to 0x80000, below the largest extended BIOS data areas.
const MAX_WHOLE_BIOS_LOAD: u64 = 0x8_0000 - 0x7C00;

/// Sectors (512 bytes) the BIOS loads of a no-emulation boot image of `len` bytes.
///
/// Images that want a boot info table (GRUB's `eltorito.img`, Limine's `limine-bios-cd.bin`,
/// ISOLINUX) read the rest of themselves through it, and the convention for them is 4 (one CD
/// block): some BIOSes mishandle other counts. Other images are loaded whole, rounded up to
/// whole CD blocks (mkisofs's default), as long as that fits below the BIOS data areas; a larger
/// image gets 4 and must load the rest itself, as no BIOS could place it in memory anyway (and
/// the 16-bit count could not say it beyond 32 MiB).
pub(super) fn bios_load_sectors(len: u64, boot_info_table: bool) -> u16 {
    if boot_info_table || len > MAX_WHOLE_BIOS_LOAD {
        return 4;
    }
    // At most 0x7_8400 bytes: 964 sectors.
    (len.div_ceil(BLOCK as u64) * 4).max(4) as u16
}

/// Sectors (512 bytes) in the UEFI entry for an ESP image of `len` bytes: its size, as xorriso
/// records it, or 0 when that does not fit the 16-bit count (images over 32 MiB). UEFI reads
/// the FAT file system's own size from its boot sector; EDK II (OVMF) takes a count below 2 to
/// mean "up to the end of the volume", which works because the ESP is the last data written.
pub(super) fn uefi_load_sectors(len: u64) -> u16 {
    u16::try_from(len.div_ceil(512)).unwrap_or(0)
}

/// The boot catalogue: the validation entry, the default entry, and with two images a final
/// section for the second one. The validation entry carries the default entry's platform.
pub(super) fn catalog(bios: Option<Entry>, uefi: Option<Entry>) -> [u8; BLOCK] {
    let mut out = [0u8; BLOCK];
    let (default, default_platform, second) = match (bios, uefi) {
        (Some(bios), uefi) => (Some(bios), PLATFORM_BIOS, uefi),
        (None, Some(uefi)) => (Some(uefi), PLATFORM_EFI, None),
        (None, None) => (None, PLATFORM_BIOS, None),
    };
    validation_entry(&mut out[0..32], default_platform);
    if let Some(entry) = default {
        boot_entry(&mut out[32..64], entry);
    }
    if let Some(entry) = second {
        let header = &mut out[64..96];
        header[0] = 0x91; // final section header
        header[1] = PLATFORM_EFI;
        header[2..4].copy_from_slice(&1u16.to_le_bytes());
        boot_entry(&mut out[96..128], entry);
    }
    out
}

fn validation_entry(out: &mut [u8], platform: u8) {
    out[0] = 1;
    out[1] = platform;
    out[30] = 0x55;
    out[31] = 0xAA;
    // The sixteen little-endian words of the entry sum to zero.
    let sum = out
        .chunks_exact(2)
        .map(|w| u16::from_le_bytes([w[0], w[1]]))
        .fold(0u16, u16::wrapping_add);
    out[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
}

/// A bootable no-emulation entry; load segment 0 means the traditional 0x7C0.
fn boot_entry(out: &mut [u8], entry: Entry) {
    out[0] = 0x88;
    out[6..8].copy_from_slice(&entry.sectors.to_le_bytes());
    out[8..12].copy_from_slice(&entry.lba.to_le_bytes());
}

/// Where the boot info table goes in a boot image, and where its checksum starts.
pub(super) const TABLE_OFFSET: u64 = 8;
pub(super) const TABLE_END: u64 = 64;

/// The 56-byte boot info table: the primary volume descriptor's block, the image's block and
/// length, and the checksum of the image from byte 64; 40 reserved zero bytes.
pub(super) fn boot_info_table(pvd: u32, lba: u32, len: u32, checksum: u32) -> [u8; 56] {
    let mut out = [0u8; 56];
    out[0..4].copy_from_slice(&pvd.to_le_bytes());
    out[4..8].copy_from_slice(&lba.to_le_bytes());
    out[8..12].copy_from_slice(&len.to_le_bytes());
    out[12..16].copy_from_slice(&checksum.to_le_bytes());
    out
}

/// The boot info table checksum, fed the image in pieces of any size: the sum of its
/// little-endian 32-bit words from byte 64 on (a short last word padded with zeros).
#[derive(Debug, Default)]
pub(super) struct Checksum {
    pos: u64,
    sum: u32,
    word: [u8; 4],
    word_len: usize,
}

impl Checksum {
    pub(super) fn update(&mut self, mut bytes: &[u8]) {
        if self.pos < TABLE_END {
            let skip = (TABLE_END - self.pos).min(bytes.len() as u64) as usize;
            self.pos += skip as u64;
            bytes = &bytes[skip..];
        }
        self.pos += bytes.len() as u64;
        if self.word_len > 0 {
            let take = bytes.len().min(4 - self.word_len);
            self.word[self.word_len..self.word_len + take].copy_from_slice(&bytes[..take]);
            self.word_len += take;
            bytes = &bytes[take..];
            if self.word_len < 4 {
                return;
            }
            self.add(self.word);
            self.word_len = 0;
        }
        let (words, rest) = bytes.as_chunks::<4>();
        for word in words {
            self.add(*word);
        }
        self.word[..rest.len()].copy_from_slice(rest);
        self.word_len = rest.len();
    }

    fn add(&mut self, word: [u8; 4]) {
        self.sum = self.sum.wrapping_add(u32::from_le_bytes(word));
    }

    pub(super) fn finish(mut self) -> u32 {
        if self.word_len > 0 {
            self.word[self.word_len..].fill(0);
            self.add(self.word);
        }
        self.sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_sizes_follow_the_rules() {
        assert_eq!(bios_load_sectors(512, false), 4);
        assert_eq!(bios_load_sectors(2049, false), 8);
        assert_eq!(bios_load_sectors(30_000, true), 4);
        assert_eq!(bios_load_sectors(MAX_WHOLE_BIOS_LOAD, false), 964);
        assert_eq!(bios_load_sectors(40 << 20, false), 4);
        assert_eq!(uefi_load_sectors(1 << 20), 2048);
        assert_eq!(uefi_load_sectors(65_535 * 512), 65_535);
        assert_eq!(uefi_load_sectors(32 << 20), 0);
    }

    #[test]
    fn the_catalogue_validates_and_lists_both_images() {
        let bios = Entry {
            lba: 40,
            sectors: 4,
        };
        let uefi = Entry {
            lba: 41,
            sectors: 2880,
        };
        let cat = catalog(Some(bios), Some(uefi));
        let sum = cat[..32]
            .chunks_exact(2)
            .map(|w| u16::from_le_bytes([w[0], w[1]]))
            .fold(0u16, u16::wrapping_add);
        assert_eq!(sum, 0);
        assert_eq!((cat[0], cat[1], cat[30], cat[31]), (1, 0, 0x55, 0xAA));
        assert_eq!(&cat[32..44], &[0x88, 0, 0, 0, 0, 0, 4, 0, 40, 0, 0, 0]);
        assert_eq!(&cat[64..68], &[0x91, 0xEF, 1, 0]);
        assert_eq!(
            &cat[96..108],
            &[0x88, 0, 0, 0, 0, 0, 0x40, 0x0B, 41, 0, 0, 0]
        );
        let only_uefi = catalog(None, Some(uefi));
        assert_eq!(
            (only_uefi[1], only_uefi[32], only_uefi[64]),
            (0xEF, 0x88, 0)
        );
    }

    #[test]
    fn the_checksum_skips_the_first_64_bytes_and_pads_the_last_word() {
        let image: Vec<u8> = (0..1001u32).map(|i| (i * 7) as u8).collect();
        let mut expected = 0u32;
        let mut tail = image[64..].to_vec();
        tail.resize(tail.len().next_multiple_of(4), 0);
        for w in tail.chunks_exact(4) {
            expected = expected.wrapping_add(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        }
        for split in [1, 3, 5, 63, 64, 100, 1001] {
            let mut sum = Checksum::default();
            for chunk in image.chunks(split) {
                sum.update(chunk);
            }
            assert_eq!(sum.finish(), expected, "split {split}");
        }
        let table = boot_info_table(16, 35, 2048, 0xDEAD_BEEF);
        assert_eq!(
            &table[..16],
            &[16, 0, 0, 0, 35, 0, 0, 0, 0, 8, 0, 0, 0xEF, 0xBE, 0xAD, 0xDE]
        );
        assert!(table[16..].iter().all(|&b| b == 0));
    }
}
