//! Placement, kept bytes, CRCs and refusals on MBR and GPT images built by hand in memory.

use std::io::Cursor;

use super::*;

/// Stages of the real size (Limine 8.2.0: 21503 bytes): stage 1 is 0x11 bytes with 0x55 0xAA
/// at the end, every stage 2 byte names its sector (`n + 1`).
fn stages() -> BiosStages {
    let mut bytes = vec![0x11u8; 21_503];
    bytes[510] = 0x55;
    bytes[511] = 0xAA;
    for (i, b) in bytes.iter_mut().enumerate().skip(512) {
        *b = ((i - 512) / 512 + 1) as u8;
    }
    BiosStages::from_bytes(bytes).unwrap()
}

/// A CRC-32 written bit by bit, independent of the table in the module.
fn crc32_bitwise(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

const MIB: usize = 1 << 20;

/// An MBR disk of `size` bytes with `(status, type, start)` entries and a disk signature.
fn mbr_disk(size: usize, entries: &[(u8, u8, u32)]) -> Vec<u8> {
    let mut disk = vec![0u8; size];
    disk[440..444].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
    for (n, &(status, kind, start)) in entries.iter().enumerate() {
        let e = 446 + 16 * n;
        disk[e] = status;
        disk[e + 4] = kind;
        disk[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
        disk[e + 12..e + 16].copy_from_slice(&1000u32.to_le_bytes());
    }
    disk[218..224].copy_from_slice(b"\x00\x00TIME");
    disk[510] = 0x55;
    disk[511] = 0xAA;
    disk
}

/// A GPT disk of `blocks` blocks of `block` bytes with 128 entries of 128 bytes and partitions
/// in the entry slots `used`, both copies with valid CRCs.
fn gpt_disk(block: usize, blocks: usize, used: &[usize]) -> Vec<u8> {
    gpt_disk_with(block, blocks, 128, used)
}

/// [`gpt_disk`] with `entries` entries.
fn gpt_disk_with(block: usize, blocks: usize, entries: u32, used: &[usize]) -> Vec<u8> {
    let mut disk = vec![0u8; block * blocks];
    // Protective MBR.
    disk[446 + 4] = 0xEE;
    disk[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    disk[510] = 0x55;
    disk[511] = 0xAA;
    let mut array = vec![0u8; entries as usize * 128];
    for (i, &slot) in used.iter().enumerate() {
        let e = &mut array[slot * 128..slot * 128 + 128];
        e[0..16].fill(0xAB);
        e[16..32].fill(i as u8 + 1);
        let first = (2048 * 512 / block + i * 8) as u64;
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&(first + 7).to_le_bytes());
    }
    let array_blocks = array.len().div_ceil(block);
    let last = (blocks - 1) as u64;
    let backup_array = blocks - 1 - array_blocks;
    let header = |own: u64, other: u64, array_lba: u64| {
        let mut h = vec![0u8; 92];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&own.to_le_bytes());
        h[32..40].copy_from_slice(&other.to_le_bytes());
        h[40..48].copy_from_slice(&(2 + array_blocks as u64).to_le_bytes());
        h[48..56].copy_from_slice(&(backup_array as u64 - 1).to_le_bytes());
        h[56..72].fill(0x42);
        h[72..80].copy_from_slice(&array_lba.to_le_bytes());
        h[80..84].copy_from_slice(&entries.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&crc32_bitwise(&array).to_le_bytes());
        let crc = crc32_bitwise(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    disk[block..block + 92].copy_from_slice(&header(1, last, 2));
    disk[2 * block..2 * block + array.len()].copy_from_slice(&array);
    let at = backup_array * block;
    disk[at..at + array.len()].copy_from_slice(&array);
    let at = (blocks - 1) * block;
    disk[at..at + 92].copy_from_slice(&header(last, 1, backup_array as u64));
    disk
}

fn run(disk: Vec<u8>) -> (Result<Installed, InstallError>, Vec<u8>) {
    let mut cursor = Cursor::new(disk);
    let result = install(&mut cursor, &stages());
    (result, cursor.into_inner())
}

fn u16_le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_le(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Checks stage 1 in sector 0 of `after` (kept bytes from `before`) and returns the patch.
fn check_sector0(before: &[u8], after: &[u8]) -> (u16, u16, u64, u64) {
    let s = stages();
    let stage1 = s.stage1();
    assert_eq!(after[..218], stage1[..218], "stage 1 before the timestamp");
    assert_eq!(after[218..224], before[218..224], "timestamp kept");
    assert_eq!(
        after[224..0x1A4],
        stage1[224..0x1A4],
        "stage 1 after the timestamp"
    );
    assert_eq!(
        after[440..510],
        before[440..510],
        "signature and table kept"
    );
    assert_eq!(after[510..512], [0x55, 0xAA]);
    (
        u16_le(after, 0x1A4),
        u16_le(after, 0x1A6),
        u64_le(after, 0x1A8),
        u64_le(after, 0x1B0),
    )
}

fn check_stage2(after: &[u8], loc_a: u64, loc_b: u64) {
    let s = stages();
    let (a, _) = s.half_sizes();
    let stage2 = s.stage2();
    let (loc_a, loc_b) = (loc_a as usize, loc_b as usize);
    assert_eq!(after[loc_a..loc_a + a], stage2[..a], "first half");
    assert_eq!(
        after[loc_b..loc_b + stage2.len() - a],
        stage2[a..],
        "second half"
    );
}

#[test]
fn mbr_gets_stage2_right_after_sector_0() {
    let before = mbr_disk(MIB, &[(0x80, 0x0C, 2048)]);
    let (result, after) = run(before.clone());
    let installed = result.unwrap();
    assert_eq!(installed.table, TableKind::Mbr);
    assert!(!installed.activated_first_partition);
    assert_eq!(installed.gpt_entries, None);
    // 41 stage 2 sectors: 21 + 20.
    let patch = check_sector0(&before, &after);
    assert_eq!(patch, (21 * 512, 20 * 512, 512, 512 + 21 * 512));
    assert_eq!(
        installed.stage2,
        [
            Half {
                offset: 512,
                size: 21 * 512
            },
            Half {
                offset: 512 + 21 * 512,
                size: 20 * 512
            }
        ]
    );
    check_stage2(&after, 512, 512 + 21 * 512);
    // Nothing else changed: the tail of the last stage 2 sector and the rest of the disk.
    let end = 512 + stages().stage2().len();
    assert_eq!(after[end..], before[end..]);
}

#[test]
fn mbr_without_an_active_partition_gets_partition_1_marked() {
    let before = mbr_disk(MIB, &[(0x00, 0x0C, 2048), (0x00, 0x83, 4096)]);
    let (result, after) = run(before.clone());
    assert!(result.unwrap().activated_first_partition);
    assert_eq!(after[446], 0x80);
    assert_eq!(after[462], 0x00);
    assert_eq!(after[447..510], before[447..510]);
}

#[test]
fn mbr_refusals_name_the_reason_and_leave_the_image_alone() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            mbr_disk(MIB, &[(0x80, 0x0C, 1)]),
            "partition 1 starts at LBA 1; Limine needs ≥ 63",
        ),
        (
            mbr_disk(MIB, &[(0x80, 0x0C, 2048), (0x00, 0x83, 62)]),
            "partition 2 starts at LBA 62",
        ),
        (
            mbr_disk(MIB, &[(0x80, 0x0C, 2048), (0x12, 0x00, 0)]),
            "partition entry 2 has status byte 0x12",
        ),
        (
            {
                let mut d = mbr_disk(MIB, &[(0x80, 0x0C, 2048)]);
                d[54..59].copy_from_slice(b"FAT16");
                d
            },
            "FAT12/16 boot sector (\"FAT\" at byte 54)",
        ),
        (
            {
                let mut d = mbr_disk(MIB, &[(0x80, 0x0C, 2048)]);
                d[3..8].copy_from_slice(b"FAT32");
                d
            },
            "(\"FAT32\" at byte 3)",
        ),
        (
            {
                let mut d = mbr_disk(MIB, &[(0x80, 0x0C, 2048)]);
                d[1080..1082].copy_from_slice(&0xEF53u16.to_le_bytes());
                d
            },
            "ext2/3/4 superblock",
        ),
        (
            // A partition at LBA 63, the lowest the tool accepts, leaves room for the real
            // stages (42 sectors with sector 0).
            {
                let mut d = mbr_disk(MIB, &[(0x80, 0x0C, 2048)]);
                d[446 + 16 + 4] = 0x83;
                d[446 + 16 + 8..446 + 16 + 12].copy_from_slice(&63u32.to_le_bytes());
                d
            },
            "",
        ),
    ];
    for (before, expected) in cases {
        let (result, after) = run(before.clone());
        if expected.is_empty() {
            result.unwrap();
            continue;
        }
        let err = result.unwrap_err().to_string();
        assert!(err.contains(expected), "{expected:?} not in: {err}");
        assert_eq!(after, before, "a refusal writes nothing");
    }
}

#[test]
fn mbr_stage2_running_into_a_partition_is_refused() {
    let mut bytes = vec![0u8; 512 + 40_000];
    bytes[510] = 0x55;
    let big = BiosStages::from_bytes(bytes).unwrap();
    let before = mbr_disk(MIB, &[(0x80, 0x0C, 63)]);
    let mut cursor = Cursor::new(before.clone());
    let err = install(&mut cursor, &big).unwrap_err().to_string();
    assert!(err.contains("would overwrite the partition"), "{err}");
    assert_eq!(cursor.into_inner(), before);
}

/// The CRCs of both headers and arrays, checked with the bitwise CRC.
fn check_gpt(after: &[u8], block: usize, entries: u32) {
    let primary = &after[block..block + 92];
    let backup_lba = u64_le(primary, 32) as usize;
    let backup = &after[backup_lba * block..backup_lba * block + 92];
    for header in [primary, backup] {
        assert_eq!(u32_le(header, 80), entries, "entry count");
        let mut zeroed = header.to_vec();
        zeroed[16..20].fill(0);
        assert_eq!(u32_le(header, 16), crc32_bitwise(&zeroed), "header CRC");
        let array_at = u64_le(header, 72) as usize * block;
        let array = &after[array_at..array_at + entries as usize * 128];
        assert_eq!(u32_le(header, 88), crc32_bitwise(array), "array CRC");
    }
}

#[test]
fn gpt_gets_stage2_in_the_tails_of_both_entry_arrays() {
    let blocks = 4 * 2048;
    let before = gpt_disk(512, blocks, &[0, 1]);
    let (result, after) = run(before.clone());
    let installed = result.unwrap();
    assert_eq!(installed.table, TableKind::Gpt { block_size: 512 });
    // The first half (21 sectors) ends the primary array at LBA 34: from LBA 13, leaving 11
    // sectors of 4 entries. The second (20 sectors) ends the backup array.
    let backup_array = (blocks - 33) as u64;
    let loc_b = (backup_array + 32) * 512 - 20 * 512;
    assert_eq!(installed.gpt_entries, Some((128, 44)));
    assert_eq!(installed.stage2[0].offset, 13 * 512);
    assert_eq!(installed.stage2[1].offset, loc_b);
    let patch = check_sector0(&before, &after);
    assert_eq!(patch, (21 * 512, 20 * 512, 13 * 512, loc_b));
    check_stage2(&after, 13 * 512, loc_b);
    check_gpt(&after, 512, 44);
    // The used entries are untouched.
    assert_eq!(after[1024..1024 + 256], before[1024..1024 + 256]);
    // Only the headers' count and CRC fields changed.
    for at in [512, (blocks - 1) * 512] {
        assert_eq!(after[at..at + 16], before[at..at + 16]);
        assert_eq!(after[at + 20..at + 80], before[at + 20..at + 80]);
        assert_eq!(after[at + 84..at + 88], before[at + 84..at + 88]);
        assert_eq!(after[at + 92..at + 512], before[at + 92..at + 512]);
    }
}

#[test]
fn gpt_with_4096_byte_blocks() {
    // The tool takes the arrays to span 32 blocks: 1024 entries on 4096-byte blocks.
    let blocks = 2048;
    let before = gpt_disk_with(4096, blocks, 1024, &[0]);
    let (result, after) = run(before.clone());
    let installed = result.unwrap();
    assert_eq!(installed.table, TableKind::Gpt { block_size: 4096 });
    // 34 × 4096 − 10752 aligned down to a block: block 31; 29 blocks of 32 entries stay.
    assert_eq!(installed.stage2[0].offset, 31 * 4096);
    let backup_array = (blocks - 33) as u64;
    assert_eq!(
        installed.stage2[1].offset,
        ((backup_array + 32) * 4096 - 10240) / 4096 * 4096
    );
    assert_eq!(installed.gpt_entries, Some((1024, 29 * 32)));
    check_sector0(&before, &after);
    check_stage2(
        &after,
        installed.stage2[0].offset,
        installed.stage2[1].offset,
    );
    check_gpt(&after, 4096, 29 * 32);

    // With the usual 128 entries (4 blocks) the backup array's "32 blocks" run past the end
    // of the disk; the tool fails there too.
    let before = gpt_disk(4096, blocks, &[0]);
    let (result, after) = run(before.clone());
    let err = result.unwrap_err().to_string();
    assert!(err.contains("past the end of the image"), "{err}");
    assert_eq!(after, before);
}

#[test]
fn gpt_refusals() {
    // Entry 50 in use: only 44 stay.
    let before = gpt_disk(512, 8192, &[0, 49]);
    let (result, after) = run(before.clone());
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("partition entry 50 is in use") && err.contains("44 entries"),
        "{err}"
    );
    assert_eq!(after, before);

    let mut before = gpt_disk(512, 8192, &[0]);
    let at = 8191 * 512;
    before[at..at + 8].copy_from_slice(b"NOT PART");
    let (result, after) = run(before.clone());
    let err = result.unwrap_err().to_string();
    assert!(err.contains("backup header"), "{err}");
    assert_eq!(after, before);

    let mut before = gpt_disk(512, 8192, &[0]);
    before[512 + 32..512 + 40].copy_from_slice(&100_000u64.to_le_bytes());
    let (result, _) = run(before);
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("too short to hold the backup GPT header"),
        "{err}"
    );
}

#[test]
fn installing_twice_gives_the_same_image() {
    for before in [
        gpt_disk(512, 8192, &[0, 1, 2]),
        mbr_disk(MIB, &[(0x80, 0x0C, 2048)]),
    ] {
        let (first, once) = run(before);
        first.unwrap();
        let (second, twice) = run(once.clone());
        second.unwrap();
        assert!(once == twice, "a second install changed the image");
    }
}
