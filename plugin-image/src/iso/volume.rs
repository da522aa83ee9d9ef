//! Volume descriptors (primary, Joliet supplementary, El Torito boot record, terminator), path
//! tables, the volume id, and the number and date encodings of ECMA-119.

use image_runner_core::Error;

/// The logical block size of every ISO 9660 image written here.
pub(super) const BLOCK: usize = 2048;

/// Where the volume descriptors start: the 32 KiB before are the system area.
pub(super) const FIRST_DESCRIPTOR: u32 = 16;

/// A 16-bit number recorded both little- and big-endian (ECMA-119 7.2.3).
pub(super) fn both16(value: u16) -> [u8; 4] {
    let (le, be) = (value.to_le_bytes(), value.to_be_bytes());
    [le[0], le[1], be[0], be[1]]
}

/// A 32-bit number recorded both little- and big-endian (ECMA-119 7.3.3).
pub(super) fn both32(value: u32) -> [u8; 8] {
    let mut out = [0; 8];
    out[..4].copy_from_slice(&value.to_le_bytes());
    out[4..].copy_from_slice(&value.to_be_bytes());
    out
}

/// The one instant every date in an image carries: `SOURCE_DATE_EPOCH` if set, else
/// 1980-01-01 (the instant the FAT writer uses too), so images do not depend on when they were
/// built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Instant {
    year: i64,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

/// 1980-01-01 00:00:00 UTC in Unix seconds.
const DEFAULT_EPOCH: i64 = 315_532_800;

impl Instant {
    /// The instant for the current environment.
    pub(super) fn from_env() -> Result<Self, Error> {
        let seconds = crate::timestamp::epoch_from_env("iso")?;
        Ok(Self::from_unix(seconds.unwrap_or(DEFAULT_EPOCH)))
    }

    /// The instant for a `SOURCE_DATE_EPOCH` value (`None` or empty: unset).
    #[cfg(test)]
    pub(super) fn parse(source_date_epoch: Option<&str>) -> Result<Self, Error> {
        let seconds = crate::timestamp::parse_epoch(source_date_epoch, "iso")?;
        Ok(Self::from_unix(seconds.unwrap_or(DEFAULT_EPOCH)))
    }

    /// Converts Unix seconds (UTC), clamped to the years a directory record can hold
    /// (1900–2155: one byte counting years since 1900).
    pub(super) fn from_unix(seconds: i64) -> Self {
        const FIRST: i64 = -2_208_988_800; // 1900-01-01 00:00:00
        const LAST: i64 = 5_869_583_999; // 2155-12-31 23:59:59
        let seconds = seconds.clamp(FIRST, LAST);
        let (year, month, day) = crate::timestamp::civil_from_days(seconds.div_euclid(86_400));
        let second_of_day = seconds.rem_euclid(86_400);
        // Every field is within its range, so the casts cannot truncate.
        Instant {
            year,
            month: month as u8,
            day: day as u8,
            hour: (second_of_day / 3600) as u8,
            minute: (second_of_day / 60 % 60) as u8,
            second: (second_of_day % 60) as u8,
        }
    }

    /// The 7-byte form of directory records (ECMA-119 9.1.5): years since 1900, month, day,
    /// hour, minute, second, offset from GMT in 15-minute steps (0: UTC).
    pub(super) fn record_date(&self) -> [u8; 7] {
        [
            (self.year - 1900) as u8,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            0,
        ]
    }

    /// The 17-byte form of volume descriptors (ECMA-119 8.4.26.1): `YYYYMMDDHHMMSScc` in ASCII
    /// digits, then the GMT offset.
    pub(super) fn volume_date(&self) -> [u8; 17] {
        let text = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        let mut out = [0; 17];
        out[..16].copy_from_slice(text.as_bytes());
        out
    }
}

/// "Not specified" in the 17-byte form: sixteen ASCII zeros and a zero offset.
const NO_DATE: [u8; 17] = *b"0000000000000000\0";

/// The default volume id.
pub(super) const DEFAULT_VOLUME_ID: &str = "KERNEL";

/// Checks a volume id: 1 to 32 d-characters (`A`–`Z`, `0`–`9`, `_`); lowercase ASCII letters
/// are taken as uppercase. Returns the id as recorded.
pub(super) fn volume_id(requested: Option<&str>) -> Result<String, Error> {
    let Some(id) = requested else {
        return Ok(DEFAULT_VOLUME_ID.to_owned());
    };
    let bad = |why: String| {
        Error::plugin(
            "iso",
            format!(
                "volume id `{id}` {why}; set `image.label` to 1 to 32 of A-Z, 0-9 and _ \
                 (lowercase letters are stored uppercase)"
            ),
        )
    };
    if let Some(c) = id.chars().find(|c| !c.is_ascii_alphanumeric() && *c != '_') {
        return Err(bad(format!("contains `{}`", c.escape_debug())));
    }
    if id.is_empty() {
        return Err(bad("is empty".into()));
    }
    if id.len() > 32 {
        return Err(bad(format!("is {} characters long", id.len())));
    }
    Ok(id.to_ascii_uppercase())
}

/// What the primary and the Joliet volume descriptor record about one tree.
#[derive(Debug, Clone)]
pub(super) struct TreeInfo {
    /// The root directory's extent and length in bytes.
    pub(super) root: (u32, u32),
    /// Path table length in bytes, then the blocks of its little- and big-endian copies.
    pub(super) path_table: (u32, u32, u32),
}

/// Fields shared by both descriptors.
#[derive(Debug, Clone)]
pub(super) struct VolumeInfo<'a> {
    pub(super) volume_id: &'a str,
    pub(super) joliet_volume_id: &'a str,
    pub(super) blocks: u32,
    pub(super) time: Instant,
}

/// Application identifier recorded in both descriptors (a-characters).
const APPLICATION: &str = "CARGO-IMAGE-RUNNER";

/// The root directory record a volume descriptor embeds (ECMA-119 8.4.18): 34 bytes, no
/// system use field.
fn root_record(root: (u32, u32), time: &Instant) -> [u8; 34] {
    let mut out = [0u8; 34];
    out[0] = 34;
    out[2..10].copy_from_slice(&both32(root.0));
    out[10..18].copy_from_slice(&both32(root.1));
    out[18..25].copy_from_slice(&time.record_date());
    out[25] = 2; // directory
    out[28..32].copy_from_slice(&both16(1));
    out[32] = 1;
    out
}

/// The fields the primary and supplementary descriptors share, at the same offsets.
fn common(kind: u8, volume: &VolumeInfo<'_>, tree: &TreeInfo) -> [u8; BLOCK] {
    let mut d = [0u8; BLOCK];
    d[0] = kind;
    d[1..6].copy_from_slice(b"CD001");
    d[6] = 1;
    d[80..88].copy_from_slice(&both32(volume.blocks));
    d[120..124].copy_from_slice(&both16(1)); // volume set size
    d[124..128].copy_from_slice(&both16(1)); // volume sequence number
    d[128..132].copy_from_slice(&both16(BLOCK as u16));
    let (size, l_table, m_table) = tree.path_table;
    d[132..140].copy_from_slice(&both32(size));
    d[140..144].copy_from_slice(&l_table.to_le_bytes());
    d[148..152].copy_from_slice(&m_table.to_be_bytes());
    d[156..190].copy_from_slice(&root_record(tree.root, &volume.time));
    let date = volume.time.volume_date();
    d[813..830].copy_from_slice(&date); // creation
    d[830..847].copy_from_slice(&date); // modification
    d[847..864].copy_from_slice(&NO_DATE); // expiration
    d[864..881].copy_from_slice(&date); // effective
    d[881] = 1; // file structure version
    d
}

/// The primary volume descriptor (ECMA-119 8.4).
pub(super) fn primary(volume: &VolumeInfo<'_>, tree: &TreeInfo) -> [u8; BLOCK] {
    let mut d = common(1, volume, tree);
    fill(&mut d[8..40], b" "); // system identifier
    put_padded(&mut d[40..72], volume.volume_id.as_bytes(), b' ');
    for range in [190..318, 318..446, 446..574] {
        fill(&mut d[range], b" "); // volume set, publisher, data preparer
    }
    put_padded(&mut d[574..702], APPLICATION.as_bytes(), b' ');
    fill(&mut d[702..813], b" "); // copyright, abstract, bibliographic file ids
    d
}

/// The Joliet supplementary volume descriptor: identifiers in UCS-2 big-endian, escape
/// sequence `%/E` (UCS-2 level 3).
pub(super) fn joliet(volume: &VolumeInfo<'_>, tree: &TreeInfo) -> [u8; BLOCK] {
    let mut d = common(2, volume, tree);
    let space = [0u8, b' '];
    fill(&mut d[8..40], &space);
    let id: Vec<u8> = ucs2_be(volume.joliet_volume_id, 16);
    put_padded_units(&mut d[40..72], &id);
    d[88..91].copy_from_slice(b"%/E");
    for range in [190..318, 318..446, 446..574] {
        fill(&mut d[range], &space);
    }
    put_padded_units(&mut d[574..702], &ucs2_be(APPLICATION, 64));
    // Three 37-byte file identifiers: 18 UCS-2 spaces each and a zero byte.
    for start in [702, 739, 776] {
        fill(&mut d[start..start + 36], &space);
    }
    d
}

/// The El Torito boot record (El Torito 2.0), pointing at the boot catalogue.
pub(super) fn boot_record(catalog: u32) -> [u8; BLOCK] {
    let mut d = [0u8; BLOCK];
    d[1..6].copy_from_slice(b"CD001");
    d[6] = 1;
    d[7..30].copy_from_slice(b"EL TORITO SPECIFICATION");
    d[71..75].copy_from_slice(&catalog.to_le_bytes());
    d
}

/// The volume descriptor set terminator.
pub(super) fn terminator() -> [u8; BLOCK] {
    let mut d = [0u8; BLOCK];
    d[0] = 255;
    d[1..6].copy_from_slice(b"CD001");
    d[6] = 1;
    d
}

/// One directory in path-table order: its identifier, extent, and parent's 1-based number.
#[derive(Debug, Clone, Copy)]
pub(super) struct PathEntry<'b> {
    pub(super) id: &'b [u8],
    pub(super) extent: u32,
    pub(super) parent: u16,
}

/// A path table (ECMA-119 9.4), little- or big-endian.
pub(super) fn path_table(entries: &[PathEntry<'_>], big_endian: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        // Identifiers are at most 128 bytes (Joliet), so the cast cannot truncate.
        out.push(entry.id.len() as u8);
        out.push(0);
        if big_endian {
            out.extend_from_slice(&entry.extent.to_be_bytes());
            out.extend_from_slice(&entry.parent.to_be_bytes());
        } else {
            out.extend_from_slice(&entry.extent.to_le_bytes());
            out.extend_from_slice(&entry.parent.to_le_bytes());
        }
        out.extend_from_slice(entry.id);
        if entry.id.len() % 2 == 1 {
            out.push(0);
        }
    }
    out
}

/// The length of a path table without building it.
pub(super) fn path_table_len<'b>(ids: impl Iterator<Item = &'b [u8]>) -> usize {
    ids.map(|id| 8 + id.len() + id.len() % 2).sum()
}

/// `text` as UCS-2 big-endian, at most `max` units; characters beyond the BMP become `_`.
pub(super) fn ucs2_be(text: &str, max: usize) -> Vec<u8> {
    text.chars()
        .map(|c| u16::try_from(u32::from(c)).unwrap_or(u16::from(b'_')))
        .take(max)
        .flat_map(u16::to_be_bytes)
        .collect()
}

fn fill(field: &mut [u8], pattern: &[u8]) {
    for (i, byte) in field.iter_mut().enumerate() {
        *byte = pattern[i % pattern.len()];
    }
}

fn put_padded(field: &mut [u8], value: &[u8], pad: u8) {
    field.fill(pad);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

fn put_padded_units(field: &mut [u8], value: &[u8]) {
    fill(field, &[0, b' ']);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_recorded_both_ways() {
        assert_eq!(both16(0x1234), [0x34, 0x12, 0x12, 0x34]);
        assert_eq!(both32(0x0102_0304), [4, 3, 2, 1, 1, 2, 3, 4]);
    }

    #[test]
    fn dates_follow_source_date_epoch() {
        let default = Instant::parse(None).unwrap();
        assert_eq!(default.record_date(), [80, 1, 1, 0, 0, 0, 0]);
        assert_eq!(&default.volume_date(), b"1980010100000000\0");
        // 2000-02-29 12:34:56 UTC.
        let leap = Instant::parse(Some(" 951827696 ")).unwrap();
        assert_eq!(leap.record_date(), [100, 2, 29, 12, 34, 56, 0]);
        assert_eq!(&leap.volume_date(), b"2000022912345600\0");
        assert_eq!(Instant::from_unix(i64::MIN).record_date()[0], 0);
        assert_eq!(Instant::from_unix(i64::MAX).record_date()[0], 255);
        let err = Instant::parse(Some("soon")).unwrap_err().to_string();
        assert!(
            err.contains("SOURCE_DATE_EPOCH") && err.contains("soon"),
            "{err}"
        );
    }

    #[test]
    fn volume_ids_are_d_characters() {
        assert_eq!(volume_id(None).unwrap(), "KERNEL");
        assert_eq!(volume_id(Some("my_os2")).unwrap(), "MY_OS2");
        for bad in ["", "my-os", "boot disk", "ÜBER", &"X".repeat(33)] {
            let err = volume_id(Some(bad)).unwrap_err().to_string();
            assert!(
                err.contains("volume id") && err.contains("`image.label`"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn path_tables_pad_odd_identifiers() {
        let entries = [
            PathEntry {
                id: &[0],
                extent: 20,
                parent: 1,
            },
            PathEntry {
                id: b"BOOT",
                extent: 21,
                parent: 1,
            },
        ];
        let le = path_table(&entries, false);
        assert_eq!(le.len(), 10 + 12);
        assert_eq!(le.len(), path_table_len(entries.iter().map(|e| e.id)));
        assert_eq!(&le[..10], &[1, 0, 20, 0, 0, 0, 1, 0, 0, 0]);
        let be = path_table(&entries, true);
        assert_eq!(&be[10..18], &[4, 0, 0, 0, 0, 21, 0, 1]);
    }
}
