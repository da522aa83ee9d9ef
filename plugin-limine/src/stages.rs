//! Limine's BIOS disk stages (the stage 1 boot sector and stage 2) as `limine bios-install`
//! writes them, read from the `limine-bios-hdd.h` C byte array of a binary release.

use std::fmt;

use crate::error::LimineError;
use crate::files::LimineFiles;

/// The file of a binary release that holds the BIOS disk stages. Limine's host tool compiles
/// it in; distributions install only the tool, so their `share/limine` lacks it.
pub const HDD_STAGES_FILE: &str = "limine-bios-hdd.h";

/// The name of the array in [`HDD_STAGES_FILE`].
const ARRAY_NAME: &str = "binary_limine_hdd_bin_data";

/// Bytes of stage 1: one 512-byte boot sector.
pub const STAGE1_LEN: usize = 512;

/// The BIOS disk stages: a 512-byte stage 1 and the stage 2 after it, checked to fit the
/// installer's layout (stage 2 in two halves of whole sectors, each at most 65535 bytes,
/// because the boot sector records their sizes as 16-bit numbers).
#[derive(Clone, PartialEq, Eq)]
pub struct BiosStages {
    bytes: Vec<u8>,
}

impl fmt::Debug for BiosStages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BiosStages")
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl BiosStages {
    /// The stages from their raw bytes (what `limine-bios-hdd.bin` holds in Limine's build).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        // Stage 2 must be longer than one sector: the installer's first half is the larger
        // one, rounded up to whole sectors, and must be filled from stage 2 itself.
        if bytes.len() <= 2 * STAGE1_LEN {
            return Err(format!(
                "they are {} bytes; a 512-byte stage 1 and a stage 2 of more than 512 bytes were expected",
                bytes.len()
            ));
        }
        let stages = BiosStages { bytes };
        if u16::try_from(stages.half_sizes().0).is_err() {
            return Err(format!(
                "they are {} bytes; stage 2 halves of more than 65535 bytes do not fit the boot sector's 16-bit size fields",
                stages.bytes.len()
            ));
        }
        Ok(stages)
    }

    /// Parses the C array of `limine-bios-hdd.h`: `const uint8_t binary_limine_hdd_bin_data[]
    /// = { 0xeb, 0x3c, ... };` (hexadecimal or decimal items, a trailing comma allowed).
    pub fn parse_c_array(text: &str) -> Result<Self, String> {
        let from = text.find(ARRAY_NAME).unwrap_or(0);
        let open = text[from..]
            .find('{')
            .map(|i| from + i)
            .ok_or("there is no `{` opening the byte array")?;
        let close = text[open..]
            .find('}')
            .map(|i| open + i)
            .ok_or("the byte array is not closed by `}`")?;
        let mut bytes = Vec::with_capacity((close - open) / 6);
        for (index, item) in text[open + 1..close].split(',').enumerate() {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let value = match item.strip_prefix("0x").or_else(|| item.strip_prefix("0X")) {
                Some(hex) => u8::from_str_radix(hex, 16),
                None => item.parse::<u8>(),
            };
            let value = value
                .map_err(|_| format!("item {index} of the byte array, `{item}`, is not a byte"))?;
            bytes.push(value);
        }
        Self::from_bytes(bytes)
    }

    /// Reads [`HDD_STAGES_FILE`] of `files`; the error names the file and the Limine release.
    pub fn load(files: &LimineFiles) -> Result<Self, LimineError> {
        let path = files.dir.join(HDD_STAGES_FILE);
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LimineError::MissingFiles {
                    origin: files.to_string(),
                    missing: vec![HDD_STAGES_FILE.to_owned()],
                    hint: "it holds the BIOS stages that a disk image (or an ISO booted as a disk) needs; binary releases (the `vN.x-binary` branches) ship it, a distribution's share/limine does not: fetch Limine with git (remove `limine.path`), or boot with `boot = \"uefi\"` or from a CD (`format = \"iso\"`)".into(),
                });
            }
            Err(e) => return Err(LimineError::io("read", &path, e)),
        };
        Self::parse_c_array(&text).map_err(|reason| {
            LimineError::Settings(format!(
                "`{}` of {files} is not a byte array Limine's installer could use: {reason}",
                path.display()
            ))
        })
    }

    /// All bytes: stage 1, then stage 2.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The boot sector.
    pub fn stage1(&self) -> &[u8] {
        &self.bytes[..STAGE1_LEN]
    }

    /// Everything after the boot sector.
    pub fn stage2(&self) -> &[u8] {
        &self.bytes[STAGE1_LEN..]
    }

    /// The sizes the installer gives the two halves of stage 2, in bytes: stage 2's sectors
    /// split in two, the first half taking the odd sector. The second half's last sector may
    /// be partly filled; its size still counts the whole sector.
    pub fn half_sizes(&self) -> (usize, usize) {
        let sectors = self.stage2().len().div_ceil(512);
        let b = sectors / 2 * 512;
        let a = b + if sectors % 2 == 1 { 512 } else { 0 };
        (a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_header_format_of_binary_releases() {
        let mut text = String::from("const uint8_t binary_limine_hdd_bin_data[] = {\n");
        for chunk in (0..2000u32).collect::<Vec<_>>().chunks(16) {
            let items: Vec<String> = chunk.iter().map(|i| format!("0x{:02x}", i % 251)).collect();
            text.push_str(&format!("    {},\n", items.join(", ")));
        }
        text.push_str("};\n");
        let stages = BiosStages::parse_c_array(&text).unwrap();
        assert_eq!(stages.as_bytes().len(), 2000);
        assert_eq!(stages.as_bytes()[260], 9);
        assert_eq!(stages.stage1().len(), 512);
        assert_eq!(stages.stage2().len(), 1488);
        // 1488 bytes are 3 sectors: 2 in the first half, 1 in the second.
        assert_eq!(stages.half_sizes(), (1024, 512));
    }

    #[test]
    fn decimal_items_and_other_layouts_are_read() {
        let items: Vec<String> = (0..1100).map(|i| (i % 200).to_string()).collect();
        let text = format!("unsigned char x[] = {{{}}};", items.join(","));
        let stages = BiosStages::parse_c_array(&text).unwrap();
        assert_eq!(stages.as_bytes()[199], 199);
        // 588 bytes of stage 2 are 2 sectors, the second partly filled.
        assert_eq!(stages.half_sizes(), (512, 512));
    }

    #[test]
    fn the_real_release_size_splits_as_the_installer_does() {
        // Limine 8.2.0: 21503 bytes, a stage 2 of 41 sectors.
        let stages = BiosStages::from_bytes(vec![0; 21_503]).unwrap();
        assert_eq!(stages.half_sizes(), (21 * 512, 20 * 512));
    }

    #[test]
    fn bad_arrays_are_refused_with_the_reason() {
        let err = BiosStages::parse_c_array("x[] = { 0x01, 0x100 };").unwrap_err();
        assert!(err.contains("`0x100`") && err.contains("item 1"), "{err}");
        let err = BiosStages::parse_c_array("no array here").unwrap_err();
        assert!(err.contains("no `{`"), "{err}");
        let err = BiosStages::parse_c_array("x[] = { 1, 2, 3 ").unwrap_err();
        assert!(err.contains("not closed"), "{err}");
        let err = BiosStages::parse_c_array("x[] = { 1, 2, 3 };").unwrap_err();
        assert!(err.contains("3 bytes"), "{err}");
        let err = BiosStages::from_bytes(vec![0; 512 + 140_000]).unwrap_err();
        assert!(err.contains("16-bit"), "{err}");
    }
}
