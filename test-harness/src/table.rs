//! The test table: the `kernel_tests` section of a kernel's ELF executable, read without
//! booting (protocol section 1). ELF32 and ELF64, either byte order; names are found by mapping
//! their addresses through the section headers.

use std::path::Path;
use std::time::Duration;

use image_runner_core::Error;
use object::{Endianness, Object, ObjectSection};

/// The section that holds the table.
pub const SECTION: &str = "kernel_tests";
/// The first field of every entry: "KT", layout version 1.
pub const MAGIC: u32 = 0x4B54_0001;

const SHOULD_PANIC: u32 = 1;
const IGNORE: u32 = 1 << 1;

/// One registered test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// Its position in the table: the number that names it in the request and on serial.
    pub index: usize,
    /// Its libtest name (`paging::maps_pages`).
    pub name: String,
    /// It passes by panicking.
    pub should_panic: bool,
    /// It is skipped unless ignored tests are asked for.
    pub ignore: bool,
    /// Its own time limit, when it has one.
    pub timeout: Option<Duration>,
}

impl TestCase {
    /// A test, for callers that make tables themselves (unit tests, other front ends).
    pub fn new(index: usize, name: impl Into<String>) -> TestCase {
        TestCase {
            index,
            name: name.into(),
            should_panic: false,
            ignore: false,
            timeout: None,
        }
    }
}

/// Reads the table of the ELF at `path`: `None` when it has no `kernel_tests` section (or is no
/// ELF at all), an error naming the file when the section is there but malformed.
pub fn read(path: &Path) -> Result<Option<Vec<TestCase>>, Error> {
    if !is_elf(path) {
        return Ok(None);
    }
    let data = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    parse(&data).map_err(|reason| Error::kernel(path, reason))
}

/// Whether the file at `path` starts like an ELF file (only its first bytes are read: a large
/// disk image handed over as the "kernel" is not read through).
fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Whether the file at `path` carries a test table.
pub fn has_table(path: &Path) -> bool {
    matches!(read(path), Ok(Some(_)))
}

/// Parses the table out of the ELF bytes `data` (see [`read`]).
pub fn parse(data: &[u8]) -> Result<Option<Vec<TestCase>>, String> {
    if !data.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    // An ELF this reader cannot follow is left to the runner's own checks: no table here.
    let Ok(file) = object::File::parse(data) else {
        return Ok(None);
    };
    let Some(section) = file.section_by_name(SECTION) else {
        return Ok(None);
    };
    let bytes = section
        .data()
        .map_err(|e| format!("cannot read the `{SECTION}` section: {e}"))?;
    let width = if file.is_64() { 8 } else { 4 };
    let big = file.endianness() == Endianness::Big;
    let entry_size = 16 + 5 * width;
    if bytes.len() % entry_size != 0 {
        return Err(format!(
            "the `{SECTION}` section is {} bytes, not a whole number of {entry_size}-byte entries; the kernel and the runner disagree on the test table layout (protocol version 1)",
            bytes.len()
        ));
    }
    let u32_at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    };
    let word_at = |b: &[u8]| -> u64 {
        if width == 4 {
            u64::from(u32_at(b))
        } else {
            let a = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
            if big {
                u64::from_be_bytes(a)
            } else {
                u64::from_le_bytes(a)
            }
        }
    };
    let mut tests = Vec::new();
    for (index, entry) in bytes.chunks_exact(entry_size).enumerate() {
        let magic = u32_at(&entry[0..4]);
        if magic != MAGIC {
            return Err(format!(
                "entry {index} of the `{SECTION}` section starts with {magic:#010x}, not the magic {MAGIC:#010x}; the kernel was built with another version of the test protocol than this runner reads (version 1)"
            ));
        }
        let flags = u32_at(&entry[4..8]);
        let timeout_ms = u32_at(&entry[8..12]);
        let name_ptr = word_at(&entry[16..16 + width]);
        let name_len = word_at(&entry[16 + width..16 + 2 * width]);
        if name_len == 0 {
            return Err(format!(
                "test {index} has an empty name; names are non-empty and without spaces"
            ));
        }
        let name_bytes = bytes_at(&file, name_ptr, name_len).ok_or_else(|| {
            format!(
                "the name of test {index} ({name_len} bytes at {name_ptr:#x}) lies in no section of the file; test names must be link-time constants"
            )
        })?;
        let name = std::str::from_utf8(name_bytes)
            .map_err(|_| format!("the name of test {index} is not UTF-8"))?;
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "test {index} has the name {:?}; names are non-empty, without spaces and control characters",
                name.escape_debug().to_string()
            ));
        }
        tests.push(TestCase {
            index,
            name: name.to_owned(),
            should_panic: flags & SHOULD_PANIC != 0,
            ignore: flags & IGNORE != 0,
            timeout: (timeout_ms > 0).then(|| Duration::from_millis(u64::from(timeout_ms))),
        });
    }
    Ok(Some(tests))
}

/// The `len` bytes at virtual address `addr`, from the section whose address range holds them:
/// a section the kernel has in memory (`SHF_ALLOC`), since a pointer of the running kernel can
/// only point there (a debug or symbol section that happens to cover the address is no test
/// name).
fn bytes_at<'d>(file: &object::File<'d>, addr: u64, len: u64) -> Option<&'d [u8]> {
    if len == 0 {
        return None;
    }
    file.sections()
        .filter(|s| {
            matches!(
                s.flags(),
                object::SectionFlags::Elf { sh_flags, .. } if sh_flags.0 & object::elf::SHF_ALLOC.0 != 0
            )
        })
        .find_map(|s| s.data_range(addr, len).ok().flatten())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ELF with a `.rodata` (names) and a `kernel_tests` section, built by hand.
    pub(crate) fn elf(is64: bool, big: bool, entries: &[(&str, u32, u32)], magic: u32) -> Vec<u8> {
        let w = if is64 { 8 } else { 4 };
        let put16 = |v: &mut Vec<u8>, x: u16| {
            v.extend_from_slice(&if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        let put32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        let putw = |v: &mut Vec<u8>, x: u64| {
            if is64 {
                v.extend_from_slice(&if big {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                });
            } else {
                let x = x as u32;
                v.extend_from_slice(&if big {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                });
            }
        };
        let rodata_addr: u64 = 0x20_0000;
        let mut rodata = Vec::new();
        let mut offsets = Vec::new();
        for (name, _, _) in entries {
            offsets.push(rodata.len() as u64);
            rodata.extend_from_slice(name.as_bytes());
        }
        while rodata.len() % 8 != 0 {
            rodata.push(0);
        }
        let mut table = Vec::new();
        for ((name, flags, timeout), off) in entries.iter().zip(&offsets) {
            put32(&mut table, magic);
            put32(&mut table, *flags);
            put32(&mut table, *timeout);
            put32(&mut table, 0);
            putw(&mut table, rodata_addr + off);
            putw(&mut table, name.len() as u64);
            putw(&mut table, 0);
            putw(&mut table, 0);
            putw(&mut table, 0x10_0000);
        }
        let shstrtab = b"\0.rodata\0kernel_tests\0.shstrtab\0".to_vec();
        let ehsize = if is64 { 64 } else { 52 };
        let shentsize = if is64 { 64 } else { 40 };
        let rodata_off = ehsize as u64;
        let table_off = rodata_off + rodata.len() as u64;
        let shstr_off = table_off + table.len() as u64;
        let mut shoff = shstr_off + shstrtab.len() as u64;
        shoff = shoff.div_ceil(8) * 8;
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF");
        out.push(if is64 { 2 } else { 1 });
        out.push(if big { 2 } else { 1 });
        out.push(1);
        out.extend_from_slice(&[0; 9]);
        put16(&mut out, 2); // ET_EXEC
        put16(&mut out, if is64 { 62 } else { 3 });
        put32(&mut out, 1);
        putw(&mut out, 0x10_0000); // entry
        putw(&mut out, 0); // phoff
        putw(&mut out, shoff);
        put32(&mut out, 0);
        put16(&mut out, ehsize);
        put16(&mut out, if is64 { 56 } else { 32 });
        put16(&mut out, 0);
        put16(&mut out, shentsize);
        put16(&mut out, 4);
        put16(&mut out, 3);
        out.extend_from_slice(&rodata);
        out.extend_from_slice(&table);
        out.extend_from_slice(&shstrtab);
        out.resize(shoff as usize, 0);
        let mut header = |name: u32, kind: u32, addr: u64, off: u64, size: u64, align: u64| {
            put32(&mut out, name);
            put32(&mut out, kind);
            putw(&mut out, if kind == 1 { 2 } else { 0 }); // SHF_ALLOC
            putw(&mut out, addr);
            putw(&mut out, off);
            putw(&mut out, size);
            put32(&mut out, 0);
            put32(&mut out, 0);
            putw(&mut out, align);
            putw(&mut out, 0);
        };
        header(0, 0, 0, 0, 0, 0);
        header(1, 1, rodata_addr, rodata_off, rodata.len() as u64, 8);
        header(9, 1, 0x30_0000, table_off, table.len() as u64, w);
        header(22, 3, 0, shstr_off, shstrtab.len() as u64, 1);
        out
    }

    #[test]
    fn reads_every_class_and_byte_order() {
        let entries = [("paging::maps", 0, 0), ("boom", 1, 0), ("slow", 2, 1500)];
        for is64 in [false, true] {
            for big in [false, true] {
                let tests = parse(&elf(is64, big, &entries, MAGIC))
                    .unwrap()
                    .expect("a table");
                let names: Vec<_> = tests.iter().map(|t| t.name.as_str()).collect();
                assert_eq!(names, ["paging::maps", "boom", "slow"], "{is64} {big}");
                assert!(!tests[0].should_panic && !tests[0].ignore);
                assert!(tests[1].should_panic && !tests[1].ignore);
                assert!(tests[2].ignore);
                assert_eq!(tests[2].timeout, Some(Duration::from_millis(1500)));
                assert_eq!(tests[0].timeout, None);
                assert_eq!(tests[2].index, 2);
            }
        }
    }

    #[test]
    fn a_wrong_magic_is_a_clear_error() {
        let err = parse(&elf(true, false, &[("a", 0, 0)], 0x4B54_0002)).unwrap_err();
        assert!(err.contains("not the magic 0x4b540001"), "{err}");
        assert!(err.contains("entry 0"), "{err}");
    }

    #[test]
    fn files_without_the_section_have_no_table() {
        assert_eq!(parse(b"MZ not an elf").unwrap(), None);
        let mut no_table = elf(true, false, &[("a", 0, 0)], MAGIC);
        // Rename the section: `kernel_tests` → `kernel_tesxs`.
        let at = no_table
            .windows(12)
            .position(|w| w == b"kernel_tests")
            .unwrap();
        no_table[at + 10] = b'x';
        assert_eq!(parse(&no_table).unwrap(), None);
    }

    /// Entry 0's name pointer and length, patched (64-bit little-endian file of one test `a`:
    /// the table follows the 64-byte header and 8 bytes of names).
    fn with_name(ptr: u64, len: u64) -> Vec<u8> {
        let mut file = elf(true, false, &[("a", 0, 0)], MAGIC);
        let entry = 64 + 8;
        file[entry + 16..entry + 24].copy_from_slice(&ptr.to_le_bytes());
        file[entry + 24..entry + 32].copy_from_slice(&len.to_le_bytes());
        file
    }

    /// Issue 18, item 22: an empty name was "in no section"; a pointer that only a section the
    /// kernel never loads covers (here `.shstrtab`, at address 0) was read, control characters
    /// and all.
    #[test]
    fn names_are_non_empty_and_only_read_from_loaded_sections() {
        assert!(parse(&with_name(0x20_0000, 1)).is_ok());
        let err = parse(&with_name(0x20_0000, 0)).unwrap_err();
        assert!(err.contains("test 0 has an empty name"), "{err}");
        let err = parse(&with_name(0, 9)).unwrap_err();
        assert!(err.contains("lies in no section"), "{err}");
        let err = parse(&with_name(1, 7)).unwrap_err();
        assert!(err.contains("lies in no section"), "{err}");
    }
}
