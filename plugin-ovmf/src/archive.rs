//! Unpacking a verified `.tar.xz` safely: every entry must be a plain file or folder below the
//! archive's one top folder (which is stripped); `..`, absolute paths, links of any kind and
//! device files are refused, and the sizes are capped.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use image_runner_core::Error;

/// Limits on what an archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// The most bytes the decompressed tar stream may have.
    pub tar_bytes: u64,
    /// The most bytes one file may have.
    pub file_bytes: u64,
    /// The most entries.
    pub entries: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            tar_bytes: 1 << 30,
            file_bytes: 256 << 20,
            entries: 1000,
        }
    }
}

/// Unpacks the `.tar.xz` at `archive` into the existing, empty folder `dest` and returns the
/// files written (relative paths, top folder stripped). On an error `dest` may hold part of
/// the archive: the caller removes it.
pub fn unpack(archive: &Path, dest: &Path, caps: Caps) -> Result<Vec<PathBuf>, Error> {
    let fail = |why: String| {
        Error::plugin(
            "ovmf",
            format!(
                "the firmware archive {} cannot be unpacked: {why}",
                archive.display()
            ),
        )
    };
    let file = File::open(archive).map_err(|e| Error::io("open", archive, e))?;
    let mut tar_bytes = Capped {
        out: Vec::new(),
        cap: caps.tar_bytes,
    };
    lzma_rs::xz_decompress(&mut BufReader::new(file), &mut tar_bytes)
        .map_err(|e| fail(format!("not a valid .tar.xz ({e})")))?;
    let mut tar = tar::Archive::new(tar_bytes.out.as_slice());
    let entries = tar
        .entries()
        .map_err(|e| fail(format!("not a valid tar archive ({e})")))?;
    let mut top: Option<PathBuf> = None;
    let mut written = Vec::new();
    for (count, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| fail(format!("a damaged tar entry ({e})")))?;
        if count >= caps.entries {
            return Err(fail(format!("more than {} entries", caps.entries)));
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = checked_path(&raw).map_err(&fail)?;
        let mut parts = rel.components();
        let first = parts.next().map(|c| PathBuf::from(c.as_os_str()));
        match (&top, first) {
            (_, None) => continue,
            (None, Some(first)) => top = Some(first),
            (Some(top), Some(first)) if *top == first => {}
            (Some(top), Some(_)) => {
                return Err(fail(format!(
                    "entry `{raw}` is outside the top folder `{}`",
                    top.display()
                )));
            }
        }
        let inner: PathBuf = parts.collect();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            if !inner.as_os_str().is_empty() {
                let dir = dest.join(&inner);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Error::io("create the directory", &dir, e))?;
            }
            continue;
        }
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            return Err(fail(format!(
                "entry `{raw}` is a link (to `{target}`); links are refused"
            )));
        }
        if !kind.is_file() {
            return Err(fail(format!(
                "entry `{raw}` is not a plain file or folder; refused"
            )));
        }
        if inner.as_os_str().is_empty() {
            return Err(fail(format!(
                "entry `{raw}` is a file where the top folder should be"
            )));
        }
        let size = entry
            .header()
            .size()
            .map_err(|e| fail(format!("entry `{raw}` has no size ({e})")))?;
        if size > caps.file_bytes {
            return Err(fail(format!(
                "entry `{raw}` is {size} bytes, more than the {} accepted",
                caps.file_bytes
            )));
        }
        let path = dest.join(&inner);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("create the directory", parent, e))?;
        }
        // A second entry of the same name would replace the first: refused.
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    fail(format!("entry `{raw}` appears twice"))
                } else {
                    Error::io("create", &path, e)
                }
            })?;
        let copied = std::io::copy(&mut (&mut entry).take(size), &mut out)
            .map_err(|e| fail(format!("entry `{raw}`: {e}")))?;
        if copied != size {
            return Err(fail(format!("entry `{raw}` is cut short")));
        }
        out.flush().map_err(|e| Error::io("write", &path, e))?;
        written.push(inner);
    }
    if written.is_empty() {
        return Err(fail("it holds no files".into()));
    }
    Ok(written)
}

/// `raw` as a relative path of plain names; an error for `..`, absolute paths and prefixes.
fn checked_path(raw: &str) -> Result<PathBuf, String> {
    let path = Path::new(raw);
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!("entry `{raw}` climbs out with `..`; refused"));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("entry `{raw}` is an absolute path; refused"));
            }
        }
    }
    Ok(clean)
}

/// A writer into memory that fails past `cap` bytes.
struct Capped {
    out: Vec<u8>,
    cap: u64,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() as u64 + buf.len() as u64 > self.cap {
            return Err(std::io::Error::other(format!(
                "it unpacks to more than {} bytes",
                self.cap
            )));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `.tar.xz` made of raw tar headers, so entries no well-behaved writer would make
    /// (`..`, absolute paths, links out) can be tested.
    pub(crate) fn tar_xz(entries: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
        let mut tar = Vec::new();
        for (name, kind, data, link) in entries {
            let mut header = [0u8; 512];
            header[..name.len()].copy_from_slice(name.as_bytes());
            header[100..107].copy_from_slice(b"0000644");
            header[108..115].copy_from_slice(b"0000000");
            header[116..123].copy_from_slice(b"0000000");
            let size = format!("{:011o}", data.len());
            header[124..135].copy_from_slice(size.as_bytes());
            header[136..147].copy_from_slice(b"00000000000");
            header[156] = *kind;
            header[157..157 + link.len()].copy_from_slice(link.as_bytes());
            header[257..263].copy_from_slice(b"ustar\0");
            header[263..265].copy_from_slice(b"00");
            header[148..156].copy_from_slice(b"        ");
            let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
            header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
            tar.extend_from_slice(&header);
            tar.extend_from_slice(data);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
        }
        tar.resize(tar.len() + 1024, 0);
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut tar.as_slice(), &mut xz).unwrap();
        xz
    }

    fn try_unpack(entries: &[(&str, u8, &[u8], &str)]) -> Result<Vec<PathBuf>, String> {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.xz");
        std::fs::write(&archive, tar_xz(entries)).unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        let result = unpack(&archive, &dest, Caps::default()).map_err(|e| e.to_string());
        // Nothing ever lands outside `dest`.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["a.tar.xz", "out"]);
        result
    }

    #[test]
    fn plain_files_below_the_top_folder_are_unpacked() {
        let files = try_unpack(&[
            ("r-bin/", b'5', b"", ""),
            ("r-bin/x64/", b'5', b"", ""),
            ("r-bin/x64/code.fd", b'0', b"code", ""),
            ("./r-bin/x64/vars.fd", b'0', b"vars", ""),
        ])
        .unwrap();
        assert_eq!(
            files,
            [PathBuf::from("x64/code.fd"), PathBuf::from("x64/vars.fd")]
        );
    }

    #[test]
    fn climbing_absolute_and_linked_entries_are_refused() {
        let err = try_unpack(&[("r-bin/../../evil", b'0', b"x", "")]).unwrap_err();
        assert!(err.contains("`..`"), "{err}");
        let err = try_unpack(&[("/etc/evil", b'0', b"x", "")]).unwrap_err();
        assert!(err.contains("absolute"), "{err}");
        let err = try_unpack(&[
            ("r-bin/x64/code.fd", b'0', b"x", ""),
            ("r-bin/x64/vars.fd", b'2', b"", "../../../etc/passwd"),
        ])
        .unwrap_err();
        assert!(err.contains("link") && err.contains("/etc/passwd"), "{err}");
        let err = try_unpack(&[("r-bin/x64/vars.fd", b'1', b"", "/etc/shadow")]).unwrap_err();
        assert!(err.contains("link"), "{err}");
        let err = try_unpack(&[
            ("a/x64/code.fd", b'0', b"x", ""),
            ("b/x64/code.fd", b'0', b"x", ""),
        ])
        .unwrap_err();
        assert!(err.contains("outside the top folder"), "{err}");
        let err = try_unpack(&[("r-bin/dev", b'3', b"", "")]).unwrap_err();
        assert!(err.contains("not a plain file"), "{err}");
    }

    #[test]
    fn sizes_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.xz");
        std::fs::write(
            &archive,
            tar_xz(&[("r/x64/code.fd", b'0', &[0u8; 4096], "")]),
        )
        .unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        let caps = Caps {
            file_bytes: 1024,
            ..Caps::default()
        };
        let err = unpack(&archive, &dest, caps).unwrap_err().to_string();
        assert!(err.contains("more than the 1024"), "{err}");
        let caps = Caps {
            tar_bytes: 2048,
            ..Caps::default()
        };
        let err = unpack(&archive, &dest, caps).unwrap_err().to_string();
        assert!(err.contains("unpacks to more than 2048"), "{err}");
    }
}
