use std::io::Cursor;

use super::*;
use crate::mbr::{self, Chs};

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

const TOTAL: u64 = 8192;

fn sample() -> (Guid, Vec<Entry>) {
    let disk = Guid::from_fields(1, 2, 3, [4; 8]);
    let partitions = vec![
        Entry::new(
            types::BIOS_BOOT,
            Guid::from_fields(5, 6, 7, [8; 8]),
            2048,
            4095,
            "BIOS boot",
        ),
        Entry {
            attributes: 1 << 2,
            ..Entry::new(
                types::EFI_SYSTEM,
                Guid::from_fields(9, 10, 11, [12; 8]),
                4096,
                last_usable(TOTAL),
                "EFI System ☃",
            )
        },
    ];
    (disk, partitions)
}

/// A disk image with the sample tables written over a non-zero background.
fn sample_disk() -> (Tables, Cursor<Vec<u8>>) {
    let (disk, partitions) = sample();
    let tables = Tables::new(TOTAL, disk, &partitions).unwrap();
    let mut image = Cursor::new(vec![0xA5u8; (TOTAL * SECTOR) as usize]);
    tables.write_to(&mut image).unwrap();
    (tables, image)
}

#[test]
fn type_guids_read_as_the_specification_writes_them() {
    for (guid, text) in [
        (types::EFI_SYSTEM, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
        (types::BIOS_BOOT, "21686148-6449-6E6F-744E-656564454649"),
        (
            types::MICROSOFT_BASIC_DATA,
            "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
        ),
        (
            types::MICROSOFT_RESERVED,
            "E3C9E316-0B5C-4DB8-817D-F92DF00215AE",
        ),
        (
            types::LINUX_FILESYSTEM,
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        ),
        (types::LINUX_SWAP, "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"),
    ] {
        assert_eq!(guid.to_string(), text);
        assert_eq!(Guid::parse(text).unwrap(), guid);
    }
}

/// Checks the written bytes at the specification's offsets, without the decoder.
#[test]
fn primary_and_backup_point_at_each_other_with_valid_crcs() {
    let (tables, image) = sample_disk();
    let image = image.into_inner();
    assert_eq!(tables.backup_lba(), TOTAL - 33);
    let at = |lba: u64| &image[(lba * SECTOR) as usize..];
    let primary = &at(1)[..512];
    let backup = &at(TOTAL - 1)[..512];
    let array_len = 128 * 128;
    for (header, own, other, array_lba) in [
        (primary, 1, TOTAL - 1, 2),
        (backup, TOTAL - 1, 1, TOTAL - 33),
    ] {
        let array = &at(array_lba)[..array_len];
        assert_eq!(&header[..8], b"EFI PART");
        assert_eq!(u32_at(header, 8), 0x0001_0000);
        assert_eq!(u32_at(header, 12), 92);
        assert_eq!(u64_at(header, 24), own);
        assert_eq!(u64_at(header, 32), other);
        assert_eq!(u64_at(header, 40), 34);
        assert_eq!(u64_at(header, 48), TOTAL - 34);
        assert_eq!(
            &header[56..72],
            &Guid::from_fields(1, 2, 3, [4; 8]).to_bytes()
        );
        assert_eq!(u64_at(header, 72), array_lba);
        assert_eq!((u32_at(header, 80), u32_at(header, 84)), (128, 128));
        assert_eq!(u32_at(header, 88), crc32(array));
        let mut zeroed = header[..92].to_vec();
        zeroed[16..20].fill(0);
        assert_eq!(u32_at(header, 16), crc32(&zeroed));
        assert!(header[92..].iter().all(|&b| b == 0));
    }
    let entry = &at(2)[128..256];
    assert_eq!(&entry[..16], &types::EFI_SYSTEM.to_bytes());
    assert_eq!(
        (u64_at(entry, 32), u64_at(entry, 40), u64_at(entry, 48)),
        (4096, TOTAL - 34, 4)
    );
    assert_eq!(&entry[56..78], b"E\0F\0I\0 \0S\0y\0s\0t\0e\0m\0 \0");
    assert_eq!(&entry[78..82], &[0x03, 0x26, 0, 0], "U+2603, then NUL");
    assert!(at(2)[256..array_len].iter().all(|&b| b == 0), "two entries");
    // Sector 0 is the protective MBR; nothing between the tables was written.
    assert_eq!(&image[450..451], &[0xEE]);
    assert_eq!(&image[510..512], &[0x55, 0xAA]);
    assert!(
        image[34 * 512..(TOTAL as usize - 33) * 512]
            .iter()
            .all(|&b| b == 0xA5)
    );
}

#[test]
fn both_copies_decode_to_what_was_encoded() {
    let (tables, mut image) = sample_disk();
    let (disk, partitions) = sample();
    let primary = read(&mut image, 1).unwrap();
    assert_eq!(primary.header, tables.primary);
    assert_eq!(primary.header.disk_guid, disk);
    assert_eq!(primary.entries.len(), 128);
    assert_eq!(&primary.entries[..2], &partitions[..]);
    assert!(primary.entries[2..].iter().all(|e| *e == Entry::default()));
    let numbered: Vec<(usize, &str)> = primary
        .partitions()
        .map(|(n, e)| (n, e.name.as_str()))
        .collect();
    assert_eq!(numbered, [(1, "BIOS boot"), (2, "EFI System ☃")]);
    assert_eq!(primary.entries[0].sectors(), 2048);

    let backup = read(&mut image, primary.header.alternate_lba).unwrap();
    assert_eq!(backup.header, tables.backup);
    assert_eq!(backup.entries, primary.entries);

    let mbr = Mbr::decode(&image.get_ref()[..512]).unwrap();
    assert!(mbr.is_protective());
    assert_eq!(mbr, Mbr::protective(TOTAL));
    assert_eq!(mbr.entries[0].last_chs, Chs::from_lba(TOTAL - 1));
}

#[test]
fn headers_and_arrays_of_other_shapes_round_trip() {
    // What an installer leaves after shrinking the array, with a larger header and entries.
    let entries = vec![
        Entry::new(
            types::LINUX_FILESYSTEM,
            Guid::from_bytes([7; 16]),
            40,
            99,
            "",
        ),
        Entry::default(),
        Entry::new(
            types::LINUX_SWAP,
            Guid::from_bytes([8; 16]),
            100,
            100,
            "x".repeat(NAME_UNITS),
        ),
    ];
    let array = encode_array(&entries, 4, 256).unwrap();
    assert_eq!(array.len(), 1024);
    let header = Header {
        revision: REVISION,
        header_size: 120,
        my_lba: 1,
        alternate_lba: 999,
        first_usable_lba: 40,
        last_usable_lba: 900,
        disk_guid: Guid::from_bytes([3; 16]),
        entries_lba: 2,
        entry_count: 4,
        entry_size: 256,
        entries_crc32: crc32(&array),
    };
    let sector = header.encode();
    assert_eq!(Header::decode(&sector).unwrap(), header);
    assert_eq!(Header::decode(&sector[..120]).unwrap(), header);
    assert_eq!(header.array_sectors(), 2);
    let decoded = header.decode_array(&array).unwrap();
    assert_eq!(decoded.len(), 4);
    assert_eq!(&decoded[..3], &entries[..]);
    assert_eq!(decoded[2].name.len(), NAME_UNITS, "a full name has no NUL");
}

#[test]
fn a_corrupted_header_is_reported_with_both_crcs() {
    let (tables, mut image) = sample_disk();
    // One bit of the disk GUID in the primary header.
    image.get_mut()[512 + 60] ^= 0x10;
    let error = read(&mut image, 1).unwrap_err();
    let GptError::HeaderCrc { stored, computed } = error else {
        panic!("{error:?}")
    };
    assert_eq!(stored, u32_at(&tables.primary.encode(), 16));
    assert_ne!(stored, computed);
    let text = read(&mut image, 1).unwrap_err().to_string();
    assert!(
        text.contains("header is corrupt") && text.contains(&format!("{stored:#010x}")),
        "{text}"
    );
    // The backup is still good.
    assert!(read(&mut image, TOTAL - 1).is_ok());
}

#[test]
fn a_corrupted_array_is_reported() {
    let (tables, mut image) = sample_disk();
    // The last slot of the backup array: unused, but covered by the CRC.
    let at = ((TOTAL - 2) * SECTOR + 500) as usize;
    image.get_mut()[at] = 1;
    assert!(read(&mut image, 1).is_ok());
    let error = read(&mut image, TOTAL - 1).unwrap_err();
    let GptError::ArrayCrc { stored, computed } = error else {
        panic!("{error:?}")
    };
    assert_eq!(stored, tables.backup.entries_crc32);
    assert_ne!(stored, computed);
    assert!(
        tables
            .backup
            .check_array(&image.get_ref()[(TOTAL - 33) as usize * 512..])
            .is_err()
    );
}

#[test]
fn other_decode_errors_name_the_problem() {
    let (tables, mut image) = sample_disk();
    // No GPT at all.
    let error = Header::decode(&[0u8; 512]).unwrap_err();
    assert!(matches!(error, GptError::Signature { found } if found == [0; 8]));
    assert!(error.to_string().contains("EFI PART"), "{error}");
    // Too short to be a header.
    assert!(matches!(
        Header::decode(b"EFI PART"),
        Err(GptError::Truncated {
            needed: 92,
            got: 8,
            ..
        })
    ));
    // Valid CRCs around invalid sizes.
    let odd_entries = Header {
        entry_size: 100,
        ..tables.primary.clone()
    };
    assert!(matches!(
        Header::decode(&odd_entries.encode()),
        Err(GptError::EntrySize { size: 100 })
    ));
    let mut big = tables.primary.encode();
    big[12..16].copy_from_slice(&513u32.to_le_bytes());
    assert!(matches!(
        Header::decode(&big),
        Err(GptError::HeaderSize { size: 513 })
    ));
    // A header read from the wrong sector.
    let backup_sector = image.get_ref()[(TOTAL as usize - 1) * 512..].to_vec();
    image.get_mut()[512..1024].copy_from_slice(&backup_sector);
    assert!(matches!(
        read(&mut image, 1),
        Err(GptError::MisplacedHeader { lba: 1, my_lba }) if my_lba == TOTAL - 1
    ));
    // A disk cut short before the backup array ends.
    let mut short = Cursor::new(image.get_ref()[..(TOTAL as usize - 10) * 512].to_vec());
    let mut header = tables.backup.clone();
    header.my_lba = 1;
    short.get_mut()[512..1024].copy_from_slice(&header.encode());
    assert!(matches!(
        read(&mut short, 1),
        Err(GptError::Truncated { what: "the GPT entry array", needed: 16384, got }) if got == 23 * 512
    ));
    // An array claimed to be enormous is refused without allocating it.
    let mut huge = tables.primary.clone();
    huge.entry_count = u32::MAX;
    short.get_mut()[512..1024].copy_from_slice(&huge.encode());
    assert!(matches!(
        read(&mut short, 1),
        Err(GptError::Truncated { .. })
    ));
}

#[test]
fn tables_refuse_what_does_not_fit() {
    let (disk, partitions) = sample();
    let err = |total, parts: &[Entry]| Tables::new(total, disk, parts).unwrap_err();
    assert!(matches!(
        err(MIN_SECTORS - 1, &[]),
        GptError::DiskTooSmall { minimum: 68, .. }
    ));
    assert!(Tables::new(MIN_SECTORS, disk, &[]).is_ok());
    assert!(matches!(
        err(TOTAL - 1, &partitions),
        GptError::PartitionRange { number: 2, .. }
    ));
    let early = Entry {
        first_lba: 33,
        ..partitions[0].clone()
    };
    assert!(matches!(
        err(TOTAL, &[early]),
        GptError::PartitionRange {
            number: 1,
            first_usable: 34,
            ..
        }
    ));
    let overlapping = Entry {
        first_lba: 4095,
        ..partitions[1].clone()
    };
    let text = err(TOTAL, &[partitions[0].clone(), overlapping]).to_string();
    assert_eq!(text, "GPT partition 2 overlaps partition 1");
    let unused = Entry {
        type_guid: Guid::NIL,
        ..partitions[0].clone()
    };
    assert!(matches!(
        err(TOTAL, &[unused]),
        GptError::NilType { number: 1 }
    ));
    let long = Entry {
        name: "n".repeat(NAME_UNITS + 1),
        ..partitions[0].clone()
    };
    assert!(matches!(err(TOTAL, &[long]), GptError::NameTooLong { .. }));
    let many: Vec<Entry> = (0..129u64)
        .map(|i| Entry::new(types::LINUX_FILESYSTEM, Guid::NIL, 34 + i, 34 + i, ""))
        .collect();
    assert!(matches!(
        err(TOTAL, &many),
        GptError::TooManyPartitions {
            count: 129,
            max: 128
        }
    ));
}

#[test]
fn a_protective_mbr_can_carry_a_signature_and_another_end_address() {
    let (disk, partitions) = sample();
    let mut tables = Tables::new(TOTAL, disk, &partitions).unwrap();
    tables.protective_mbr.disk_signature = 0x1234_5678;
    tables.protective_mbr.entries[0].last_chs = Chs::UNREPRESENTABLE;
    let mut image = Cursor::new(vec![0u8; (TOTAL * SECTOR) as usize]);
    tables.write_to(&mut image).unwrap();
    let sector0 = &image.get_ref()[..512];
    assert_eq!(&sector0[440..444], &0x1234_5678u32.to_le_bytes());
    assert_eq!(&sector0[451..454], &[0xFF; 3]);
    assert_eq!(sector0[450], mbr::kind::GPT_PROTECTIVE);
}
