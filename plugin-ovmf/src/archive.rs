//! Unpacking a verified `.tar.xz` safely: every entry must be a plain file or folder below the
//! archive's one top folder (which is stripped); `..`, absolute paths, links of any kind and
//! device files are refused, and the sizes are capped.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

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
            tar_bytes: 512 << 20,
            file_bytes: 256 << 20,
            entries: 1000,
        }
    }
}

/// The most memory the xz decoder may take (its dictionary, mostly; xz's strongest preset needs
/// 64 MiB), in KiB.
const DECODER_MEMORY_KIB: u32 = 128 << 10;

/// One file unpacked from an archive, with its size and the sha256 of the bytes the archive
/// held (computed as they were written, not read back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Its path below the destination (the archive's top folder stripped).
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The sha256 of its content, lowercase hex.
    pub sha256: String,
}

/// Unpacks the `.tar.xz` at `archive` into the existing, empty folder `dest` and returns the
/// files written (relative paths, top folder stripped). The archive is decompressed as the tar
/// reader consumes it, so memory stays at the decoder's dictionary whatever the archive's size.
/// On an error `dest` may hold part of the archive: the caller removes it.
pub fn unpack(archive: &Path, dest: &Path, caps: Caps) -> Result<Vec<Unpacked>, Error> {
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
    let mut stream = Capped {
        inner: lzma_rust2::XzReader::new_mem_limit(BufReader::new(file), false, DECODER_MEMORY_KIB),
        read: 0,
        cap: caps.tar_bytes,
    };
    let result = unpack_tar(&mut stream, dest, caps, &fail).and_then(|written| {
        // The rest (the tar's end blocks, the xz index and check) is read too: a damaged end
        // of the archive is noticed.
        std::io::copy(&mut stream, &mut std::io::sink())
            .map_err(|e| fail(format!("not a valid .tar.xz ({e})")))?;
        Ok(written)
    });
    if stream.read > stream.cap {
        return Err(fail(format!(
            "it unpacks to more than {} bytes",
            stream.cap
        )));
    }
    result
}

/// Unpacks the tar stream `reader` into `dest` (see [`unpack`]).
fn unpack_tar(
    reader: impl Read,
    dest: &Path,
    caps: Caps,
    fail: &dyn Fn(String) -> Error,
) -> Result<Vec<Unpacked>, Error> {
    let mut tar = tar::Archive::new(reader);
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
        let rel = checked_path(&raw).map_err(fail)?;
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
        let mut hashed = Hashing {
            inner: &mut out,
            hasher: Sha256::new(),
        };
        let copied = std::io::copy(&mut (&mut entry).take(size), &mut hashed)
            .map_err(|e| fail(format!("entry `{raw}`: {e}")))?;
        if copied != size {
            return Err(fail(format!("entry `{raw}` is cut short")));
        }
        let sha256 = crate::download::hex(&hashed.hasher.finalize());
        out.flush().map_err(|e| Error::io("write", &path, e))?;
        written.push(Unpacked {
            path: inner,
            size,
            sha256,
        });
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

/// A writer that hashes what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that fails once more than `cap` bytes came through it.
struct Capped<R> {
    inner: R,
    read: u64,
    cap: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let exceeded =
            || std::io::Error::other(format!("it unpacks to more than {} bytes", self.cap));
        if self.read > self.cap {
            return Err(exceeded());
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.cap {
            return Err(exceeded());
        }
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A raw tar header, so entries no well-behaved writer would make (`..`, absolute paths,
    /// links out) can be tested.
    fn header(name: &str, kind: u8, size: u64, link: &str) -> [u8; 512] {
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        header[100..107].copy_from_slice(b"0000644");
        header[108..115].copy_from_slice(b"0000000");
        header[116..123].copy_from_slice(b"0000000");
        let size = format!("{size:011o}");
        header[124..135].copy_from_slice(size.as_bytes());
        header[136..147].copy_from_slice(b"00000000000");
        header[156] = kind;
        header[157..157 + link.len()].copy_from_slice(link.as_bytes());
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        header
    }

    /// A `.tar.xz` of raw tar headers (see [`header`]) and their data.
    pub(crate) fn tar_xz(entries: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
        let mut tar = Vec::new();
        for (name, kind, data, link) in entries {
            tar.extend_from_slice(&header(name, *kind, data.len() as u64, link));
            tar.extend_from_slice(data);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
        }
        tar.resize(tar.len() + 1024, 0);
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut tar.as_slice(), &mut xz).unwrap();
        xz
    }

    /// A `KiB` field (`VmRSS`, `VmHWM`, …) of this process's `/proc/self/status`.
    #[cfg(target_os = "linux")]
    fn status_kib(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
        line.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// Set, to the folder holding the archive `a.tar.xz` and the empty folder `out`, in the
    /// child process [`a_large_archive_is_unpacked_as_a_stream_in_little_memory`] starts to do
    /// the unpacking.
    #[cfg(target_os = "linux")]
    const MEMORY_CHILD: &str = "IMAGE_RUNNER_OVMF_TEST_UNPACK_CHILD";

    /// The line the child prints: how much its peak memory rose above its use before unpacking.
    #[cfg(target_os = "linux")]
    const GROWN_KIB: &str = "UNPACK-PEAK-GROWTH-KIB ";

    /// Peak memory is measured in a child process of the test binary, running only this test:
    /// the peak of this process would count whatever other tests do at the same time in other
    /// threads. The test starts the child, which finds [`MEMORY_CHILD`] set and unpacks.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_large_archive_is_unpacked_as_a_stream_in_little_memory() {
        const SIZE: u64 = 128 << 20;
        if let Some(dir) = std::env::var_os(MEMORY_CHILD) {
            let caps = Caps {
                file_bytes: SIZE,
                ..Caps::default()
            };
            let (archive, dest) = (
                Path::new(&dir).join("a.tar.xz"),
                Path::new(&dir).join("out"),
            );
            // A new process, nothing else running: its peak so far is its own, and the peak
            // after the unpacking less the use before it bounds what the unpacking took.
            let before = status_kib("VmRSS");
            let files = unpack(&archive, &dest, caps).unwrap();
            let peak = status_kib("VmHWM");
            let paths: Vec<PathBuf> = files.into_iter().map(|f| f.path).collect();
            assert_eq!(paths, [PathBuf::from("x64/code.fd")]);
            println!("{GROWN_KIB}{}", peak.saturating_sub(before));
            return;
        }

        // The tar is made as it is compressed, never whole in memory here either.
        let mut tar = std::io::Cursor::new(header("r/x64/code.fd", b'0', SIZE, ""))
            .chain(std::io::repeat(0).take(SIZE))
            .chain(std::io::repeat(0).take(1024));
        let mut xz =
            lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1)).unwrap();
        std::io::copy(&mut tar, &mut xz).unwrap();
        let xz = xz.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.xz");
        std::fs::write(&archive, &xz).unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();

        // This test's name as the test harness knows it (its module path, crate left out).
        let (_crate, module) = module_path!().split_once("::").unwrap();
        let name = format!("{module}::a_large_archive_is_unpacked_as_a_stream_in_little_memory");
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([&name, "--exact", "--nocapture", "--test-threads=1"])
            .env(MEMORY_CHILD, dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&child.stdout);
        let report = format!(
            "{}\nstdout:\n{stdout}\nstderr:\n{}",
            child.status,
            String::from_utf8_lossy(&child.stderr)
        );
        assert!(child.status.success(), "the child process failed: {report}");
        // Also a check that the child ran this very test, not none. The harness may have put
        // `test <name> ... ` before the line.
        let grown_kib: u64 = stdout
            .lines()
            .find_map(|l| Some(l.split_once(GROWN_KIB)?.1))
            .unwrap_or_else(|| panic!("the child process did not report: {report}"))
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            std::fs::metadata(dest.join("x64/code.fd")).unwrap().len(),
            SIZE
        );
        // The tar alone is 128 MiB: holding it in memory would show.
        let grown_mib = grown_kib >> 10;
        assert!(grown_mib < 48, "unpacking took {grown_mib} MiB more memory");
    }

    #[test]
    fn a_damaged_end_of_the_archive_is_noticed() {
        let mut xz = tar_xz(&[("r/x64/code.fd", b'0', b"code", "")]);
        // The last bytes are the xz stream footer, after everything tar reads.
        let at = xz.len() - 6;
        xz[at] ^= 0xFF;
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.xz");
        std::fs::write(&archive, &xz).unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        let err = unpack(&archive, &dest, Caps::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a valid .tar.xz"), "{err}");
    }

    fn try_unpack(entries: &[(&str, u8, &[u8], &str)]) -> Result<Vec<PathBuf>, String> {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.xz");
        std::fs::write(&archive, tar_xz(entries)).unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        let result = unpack(&archive, &dest, Caps::default())
            .map(|files| files.into_iter().map(|f| f.path).collect())
            .map_err(|e| e.to_string());
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
    fn each_file_comes_with_the_sha256_of_what_the_archive_held() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.xz");
        std::fs::write(&archive, tar_xz(&[("r/x64/code.fd", b'0', b"code", "")])).unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        let files = unpack(&archive, &dest, Caps::default()).unwrap();
        assert_eq!(
            files,
            [Unpacked {
                path: PathBuf::from("x64/code.fd"),
                size: 4,
                sha256: crate::download::hex(&Sha256::digest(b"code")),
            }]
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
