//! The downloaded releases in the user cache, one folder per archive sha256:
//!
//! ```text
//! <cache>/ovmf/
//!   <sha256>/               a published release: x64/code.fd, aarch64/vars.fd, ...
//!     MANIFEST              written last: the release, then "<sha256> <size> <path>" per file
//!   <tag>-bin.tar.xz        an archive placed by hand (for offline machines), verified on use
//!   .lock                   held while downloading and publishing
//!   .<name>.tmp-<pid>       a download or an unpacking in progress
//! ```
//!
//! A release is unpacked into a temporary folder and renamed into place with its manifest, so
//! a folder under its sha256 is always whole; readers need no lock. An entry whose files do not
//! match its manifest is damaged: it is fetched again into a temporary folder, which then takes
//! the entry's place in one atomic exchange (`renameat2` with `RENAME_EXCHANGE` on Linux); only
//! then is the old folder, now under the temporary name, removed. So the paths of an entry never
//! stop existing: a run that checked its files and copies the variable store or starts QEMU a
//! moment later finds them (the same bytes, from the new folder), and files it already opened
//! stay readable. Where the exchange is unsupported the old folder is renamed aside just before
//! the new one is renamed in, which leaves a gap of two renames.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use image_runner_core::fs::{PendingTemporary, remove_stale_temporaries, temp_path};
use image_runner_core::{Arch, Error};

use crate::archive::{self, Caps};
use crate::download::{self, DownloadOptions};
use crate::release::{self, Release};

const MANIFEST: &str = "MANIFEST";

/// How closely a cache entry is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Sizes, and the sha256 of any file changed since the entry was published.
    Quick,
    /// The sha256 of every file.
    Full,
}

/// The releases under `<cache>/ovmf`.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// A published release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its folder.
    pub dir: PathBuf,
    /// The release tag it was published for.
    pub tag: String,
    /// The archive's sha256.
    pub sha256: String,
    /// Its files (relative paths) with their size and sha256.
    pub files: Vec<(PathBuf, u64, String)>,
}

/// The firmware of one architecture in a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchFiles {
    /// Firmware code (padded for pflash where the board needs it).
    pub code: PathBuf,
    /// The variable store template.
    pub vars: PathBuf,
    /// The release's UEFI shell, when it has one.
    pub shell: Option<PathBuf>,
}

impl Entry {
    /// The files for `arch`, or an error saying which architectures the release has.
    pub fn arch(&self, arch: Arch) -> Result<ArchFiles, Error> {
        let dir = release::arch_dir(arch).unwrap_or("?");
        let has = |name: &str| {
            self.files
                .iter()
                .any(|(p, _, _)| *p == Path::new(dir).join(name))
        };
        if !has("code.fd") || !has("vars.fd") {
            let mut archs: Vec<String> = self
                .files
                .iter()
                .filter_map(|(p, _, _)| p.parent().map(|d| d.display().to_string()))
                .filter(|d| !d.is_empty())
                .collect();
            archs.dedup();
            return Err(Error::plugin(
                "ovmf",
                format!(
                    "the firmware release {} ({}) has no `{dir}/code.fd` and `{dir}/vars.fd` for {arch} (it has: {}); install your distribution's firmware for {arch} or set `ovmf.code` and `ovmf.vars`",
                    self.tag,
                    self.dir.display(),
                    archs.join(", ")
                ),
            ));
        }
        let base = self.dir.join(dir);
        Ok(ArchFiles {
            code: base.join("code.fd"),
            vars: base.join("vars.fd"),
            shell: has("shell.efi").then(|| base.join("shell.efi")),
        })
    }
}

/// What the network may be used for.
#[derive(Debug, Clone, Default)]
pub struct Net {
    /// Never download (`--offline`, `CARGO_NET_OFFLINE`).
    pub offline: bool,
    /// How to download.
    pub download: DownloadOptions,
}

impl Cache {
    /// The releases under `cache_dir/ovmf`.
    pub fn new(cache_dir: &Path) -> Cache {
        Cache {
            root: cache_dir.join("ovmf"),
        }
    }

    /// `<cache>/ovmf`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the release with archive sha256 `sha256` is published.
    pub fn entry_dir(&self, sha256: &str) -> PathBuf {
        self.root.join(sha256)
    }

    /// Where an archive placed by hand is looked for (for machines without network).
    pub fn placed_archive(&self, release: &Release) -> PathBuf {
        self.root.join(release.file_name())
    }

    /// The published entry with archive sha256 `sha256`, checked for `arch` (every file when
    /// `None`); the reason it is unusable otherwise.
    pub fn check(&self, sha256: &str, arch: Option<Arch>, how: Check) -> Result<Entry, String> {
        let dir = self.entry_dir(sha256);
        let manifest = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&manifest) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => {
                return Err("it was never downloaded".into());
            }
            Err(e) => {
                return Err(format!(
                    "its manifest {} is unreadable: {e}",
                    manifest.display()
                ));
            }
        };
        let published = std::fs::metadata(&manifest).and_then(|m| m.modified()).ok();
        let entry = parse_manifest(&dir, sha256, &text)
            .ok_or_else(|| format!("its manifest {} is damaged", manifest.display()))?;
        let prefix = arch.and_then(release::arch_dir).map(PathBuf::from);
        for (rel, size, sum) in &entry.files {
            if let Some(prefix) = &prefix
                && !rel.starts_with(prefix)
            {
                continue;
            }
            let path = dir.join(rel);
            let meta = std::fs::metadata(&path)
                .map_err(|e| format!("{} is unreadable: {e}", path.display()))?;
            if meta.len() != *size {
                return Err(format!(
                    "{} has {} bytes instead of {size}",
                    path.display(),
                    meta.len()
                ));
            }
            let changed = match (meta.modified().ok(), published) {
                (Some(modified), Some(published)) => modified > published,
                _ => true,
            };
            if how == Check::Full || changed {
                let actual = download::sha256_file(&path)
                    .map_err(|e| format!("{} is unreadable: {e}", path.display()))?;
                if actual != *sum {
                    return Err(format!(
                        "{} was changed since it was unpacked",
                        path.display()
                    ));
                }
            }
        }
        Ok(entry)
    }

    /// Every published release, each with the problem a full check found, if any.
    pub fn list(&self) -> Vec<(Entry, Option<String>)> {
        let Ok(dir) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut found: Vec<(Entry, Option<String>)> = dir
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|sha| match self.check(&sha, None, Check::Full) {
                Ok(entry) => (entry, None),
                Err(problem) => (
                    Entry {
                        dir: self.entry_dir(&sha),
                        tag: "?".into(),
                        sha256: sha.clone(),
                        files: Vec::new(),
                    },
                    Some(problem),
                ),
            })
            .collect();
        found.sort_by(|a, b| a.0.tag.cmp(&b.0.tag));
        found
    }

    fn lock(&self) -> Result<File, Error> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| Error::io("create the cache folder", &self.root, e))?;
        let path = self.root.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open the lock file", &path, e))?;
        file.lock().map_err(|e| Error::io("lock", &path, e))?;
        Ok(file)
    }
}

/// The release `release` from the cache, downloading and publishing it when it is missing or
/// damaged; `arch` says which files must be sound (every file when `None`).
pub fn acquire(
    cache: &Cache,
    release: &Release,
    arch: Option<Arch>,
    how: Check,
    net: &Net,
) -> Result<Entry, Error> {
    let first = match cache.check(&release.sha256, arch, how) {
        Ok(entry) => return Ok(entry),
        Err(problem) => problem,
    };
    let placed = cache.placed_archive(release);
    if net.offline && !placed.is_file() {
        return Err(offline_error(cache, release, &first));
    }
    let _lock = cache.lock()?;
    // Another process may have published it while this one waited.
    if let Ok(entry) = cache.check(&release.sha256, arch, how) {
        return Ok(entry);
    }
    // Only the lock holder writes temporaries: any left are from processes that died.
    remove_stale_temporaries(&cache.root);
    let dir = cache.entry_dir(&release.sha256);
    if dir.exists() {
        // Left in place until the new copy replaces it: other runs may be using its files.
        eprintln!(
            "warning: the cached UEFI firmware {} was damaged ({first}); fetching it again",
            dir.display()
        );
    }
    let download_temp = temp_path(&cache.root.join("archive"));
    let _download_pending = PendingTemporary::register(&download_temp);
    let result = (|| {
        let placed_sum = if placed.is_file() {
            let sum = download::sha256_file(&placed).map_err(|e| Error::io("read", &placed, e))?;
            if sum != release.sha256 && !net.offline {
                // A wrong archive placed by hand must not block downloads for good: it is
                // set aside, under a name the warning gives, and the release downloaded.
                let rejected = rejected_path(&placed);
                std::fs::rename(&placed, &rejected)
                    .map_err(|e| Error::io("move the mismatched archive aside", &placed, e))?;
                eprintln!(
                    "warning: the archive {} has sha256 {sum}, but {} must have {}; it was moved to {} and the release is downloaded instead",
                    placed.display(),
                    release.tag,
                    release.sha256,
                    rejected.display()
                );
                None
            } else {
                Some(sum)
            }
        } else {
            None
        };
        let (archive, sum) = if let Some(sum) = placed_sum {
            (placed.clone(), sum)
        } else if net.offline {
            return Err(offline_error(cache, release, &first));
        } else {
            eprintln!(
                "    Fetching UEFI firmware {} from {}",
                release.tag, release.url
            );
            let sum = download::download(&release.url, &download_temp, &net.download)?;
            (download_temp.clone(), sum)
        };
        if sum != release.sha256 {
            let (from, hint) = if archive == placed {
                (
                    format!("the archive {}", placed.display()),
                    format!(
                        "Replace it with {} (sha256 {}), or remove it and download while online",
                        release.url, release.sha256
                    ),
                )
            } else {
                (
                    format!("the archive downloaded from {}", release.url),
                    "Check `ovmf.url`/`ovmf.release` and `ovmf.sha256`".to_owned(),
                )
            };
            return Err(Error::plugin(
                "ovmf",
                format!(
                    "{from} has sha256 {sum}, but {} must have {}; it was not unpacked and nothing was cached. {hint}",
                    release.tag, release.sha256
                ),
            ));
        }
        publish(cache, release, &archive)
    })();
    let _ = std::fs::remove_file(&download_temp);
    result?;
    cache
        .check(&release.sha256, arch, Check::Quick)
        .map_err(|problem| {
            Error::plugin(
                "ovmf",
                format!(
                    "the firmware release {} was unpacked to {}, but {problem}",
                    release.tag,
                    dir.display()
                ),
            )
        })
}

/// Unpacks the verified `archive` into a temporary folder, pads the pflash images, writes the
/// manifest and renames the folder into place.
fn publish(cache: &Cache, release: &Release, archive: &Path) -> Result<(), Error> {
    let dir = cache.entry_dir(&release.sha256);
    let temp = temp_path(&dir);
    let pending = PendingTemporary::register(&temp);
    let _ = std::fs::remove_dir_all(&temp);
    std::fs::create_dir_all(&temp).map_err(|e| Error::io("create the directory", &temp, e))?;
    let result = (|| {
        let files = archive::unpack(archive, &temp, Caps::default())?;
        let mut manifest = format!("release {}\nurl {}\n", release.tag, release.url);
        for rel in &files {
            let path = temp.join(rel);
            pad_pflash(rel, &path)?;
            let size = std::fs::metadata(&path)
                .map_err(|e| Error::io("read the metadata of", &path, e))?
                .len();
            let sum = download::sha256_file(&path).map_err(|e| Error::io("read", &path, e))?;
            let name = rel.to_str().filter(|n| !n.contains(['\n', '\r']));
            let Some(name) = name else {
                return Err(Error::plugin(
                    "ovmf",
                    format!(
                        "the firmware archive has a file named `{}`; refused",
                        rel.display()
                    ),
                ));
            };
            manifest.push_str(&format!("{sum} {size} {name}\n"));
        }
        let path = temp.join(MANIFEST);
        let mut file = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
        file.write_all(manifest.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("write", &path, e))?;
        pending
            .publish(|| put_in_place(&temp, &dir))
            .map_err(|e| Error::io("rename the unpacked release into", &dir, e))
    })();
    // After an exchange, `temp` is the damaged entry: no path leads readers there any more.
    let _ = std::fs::remove_dir_all(&temp);
    result
}

/// Renames the folder `new` to `dir`. A folder already at `dir` is exchanged with `new` in one
/// step where the system can (it is then at `new`), so `dir`'s paths never stop existing.
fn put_in_place(new: &Path, dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return std::fs::rename(new, dir);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
        };
        let (from, to) = (c(new)?, c(dir)?);
        // SAFETY: both are valid NUL-terminated paths that outlive the call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        // Only a file system or kernel without the exchange falls back.
        if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
            return Err(e);
        }
    }
    let aside = temp_path(&dir.with_extension("damaged"));
    std::fs::rename(dir, &aside)?;
    if let Err(e) = std::fs::rename(new, dir) {
        let _ = std::fs::rename(&aside, dir);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&aside);
    Ok(())
}

/// Pads `<arch>/code.fd` and `<arch>/vars.fd` with zeros to the size the board's pflash needs.
fn pad_pflash(rel: &Path, path: &Path) -> Result<(), Error> {
    let (Some(dir), Some(name)) = (rel.parent().and_then(Path::to_str), rel.file_name()) else {
        return Ok(());
    };
    if name != "code.fd" && name != "vars.fd" {
        return Ok(());
    }
    let size = [Arch::Aarch64, Arch::Riscv64, Arch::LoongArch64]
        .into_iter()
        .find(|a| release::arch_dir(*a) == Some(dir))
        .and_then(release::pflash_size);
    let Some(size) = size else {
        return Ok(());
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("read the metadata of", path, e))?
        .len();
    if len < size {
        file.set_len(size)
            .map_err(|e| Error::io("pad to the pflash size", path, e))?;
    }
    Ok(())
}

/// Where a placed archive with the wrong sha256 is moved: `<name>.rejected`.
fn rejected_path(placed: &Path) -> PathBuf {
    let mut name = placed.file_name().unwrap_or_default().to_os_string();
    name.push(".rejected");
    placed.with_file_name(name)
}

fn parse_manifest(dir: &Path, sha256: &str, text: &str) -> Option<Entry> {
    let mut lines = text.lines();
    let tag = lines.next()?.strip_prefix("release ")?.to_owned();
    lines.next()?.strip_prefix("url ")?;
    let mut files = Vec::new();
    for line in lines {
        let mut parts = line.splitn(3, ' ');
        let sum = parts.next()?.to_owned();
        let size = parts.next()?.parse().ok()?;
        let rel = PathBuf::from(parts.next()?);
        if sum.len() != 64 || rel.is_absolute() || rel.components().any(|c| c.as_os_str() == "..") {
            return None;
        }
        files.push((rel, size, sum));
    }
    (!files.is_empty()).then(|| Entry {
        dir: dir.to_path_buf(),
        tag,
        sha256: sha256.to_owned(),
        files,
    })
}

fn offline_error(cache: &Cache, release: &Release, problem: &str) -> Error {
    Error::plugin(
        "ovmf",
        format!(
            "the UEFI firmware release {} is not in the cache ({problem}), and offline mode (`--offline`, CARGO_NET_OFFLINE or `offline = true`) forbids downloading it. Either download {} (sha256 {}) on another machine and place it at {}, or run `cargo-image-runner ovmf fetch` once while online, or install your distribution's firmware package",
            release.tag,
            release.url,
            release.sha256,
            cache.placed_archive(release).display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::tests::tar_xz;

    fn release_of(archive: &[u8]) -> Release {
        Release {
            tag: "edk2-test-r1".into(),
            url: "http://127.0.0.1:9/edk2-test-r1-bin.tar.xz".into(),
            sha256: download::hex(&<sha2::Sha256 as sha2::Digest>::digest(archive)),
        }
    }

    #[test]
    fn a_placed_archive_is_published_offline_padded_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let archive = tar_xz(&[
            ("r/x64/code.fd", b'0', b"code", ""),
            ("r/x64/vars.fd", b'0', b"vars", ""),
            ("r/aarch64/code.fd", b'0', b"aa", ""),
            ("r/aarch64/vars.fd", b'0', b"av", ""),
        ]);
        let release = release_of(&archive);
        let offline = Net {
            offline: true,
            ..Net::default()
        };
        let err = acquire(&cache, &release, None, Check::Quick, &offline)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&cache.placed_archive(&release).display().to_string())
                && err.contains(&release.url),
            "{err}"
        );
        std::fs::create_dir_all(cache.root()).unwrap();
        std::fs::write(cache.placed_archive(&release), &archive).unwrap();
        let entry = acquire(&cache, &release, None, Check::Full, &offline).unwrap();
        let x64 = entry.arch(Arch::X86_64).unwrap();
        assert_eq!(std::fs::read(&x64.code).unwrap(), b"code");
        assert_eq!(x64.shell, None);
        let aa = entry.arch(Arch::Aarch64).unwrap();
        assert_eq!(std::fs::metadata(&aa.code).unwrap().len(), 64 << 20);
        let err = entry.arch(Arch::Riscv64).unwrap_err().to_string();
        assert!(err.contains("riscv64") && err.contains("x64"), "{err}");

        // Same size, other bytes: a quick check sees the newer file, a full one its sum. The
        // file's time is set past the manifest's, whatever the file system clock's resolution.
        std::fs::write(&x64.vars, b"VARS").unwrap();
        let published = std::fs::metadata(cache.entry_dir(&release.sha256).join(MANIFEST))
            .unwrap()
            .modified()
            .unwrap();
        let later = published + std::time::Duration::from_secs(10);
        File::options()
            .write(true)
            .open(&x64.vars)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let modified = std::fs::metadata(&x64.vars).unwrap().modified().unwrap();
        assert!(
            modified > published,
            "{modified:?} is not after {published:?}"
        );
        let problem = cache
            .check(&release.sha256, Some(Arch::X86_64), Check::Quick)
            .unwrap_err();
        assert!(problem.contains("changed"), "{problem}");
        // Another architecture's files are not looked at.
        cache
            .check(&release.sha256, Some(Arch::Aarch64), Check::Quick)
            .unwrap();
        let entry = acquire(&cache, &release, Some(Arch::X86_64), Check::Quick, &offline).unwrap();
        assert_eq!(
            std::fs::read(entry.arch(Arch::X86_64).unwrap().vars).unwrap(),
            b"vars"
        );
    }

    #[test]
    fn a_reader_keeps_its_files_while_another_fetches_a_damaged_entry_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let code = vec![0xC0u8; 512 << 10];
        let vars = vec![0x5Au8; 128 << 10];
        let archive = tar_xz(&[
            ("r/x64/code.fd", b'0', &code, ""),
            ("r/x64/vars.fd", b'0', &vars, ""),
            ("r/README", b'0', b"readme", ""),
        ]);
        let release = release_of(&archive);
        let offline = Net {
            offline: true,
            ..Net::default()
        };
        std::fs::create_dir_all(cache.root()).unwrap();
        std::fs::write(cache.placed_archive(&release), &archive).unwrap();
        acquire(&cache, &release, None, Check::Quick, &offline).unwrap();

        let done = std::sync::atomic::AtomicBool::new(false);
        let (reads, failures) = std::thread::scope(|scope| {
            // A run: checks the x64 files, then reads them by path, as the copy of the
            // variable store and QEMU do a moment later.
            let reader = scope.spawn(|| {
                let (mut reads, mut failures) = (0, Vec::new());
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let result = cache
                        .check(&release.sha256, Some(Arch::X86_64), Check::Quick)
                        .and_then(|entry| {
                            let files = entry.arch(Arch::X86_64).map_err(|e| e.to_string())?;
                            let read = |p: &Path| {
                                std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
                            };
                            Ok((read(&files.code)?, read(&files.vars)?))
                        });
                    match result {
                        Ok((c, v)) => {
                            assert!(c == code && v == vars, "the files changed under a reader");
                            reads += 1;
                        }
                        Err(problem) => failures.push(problem),
                    }
                }
                (reads, failures)
            });
            // Another process damages a file the reader does not use, and fetches again.
            for round in 0..20 {
                let readme = cache.entry_dir(&release.sha256).join("README");
                std::fs::write(&readme, format!("damaged {round}")).unwrap();
                acquire(&cache, &release, None, Check::Quick, &offline).unwrap();
                assert_eq!(std::fs::read(&readme).unwrap(), b"readme");
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            reader.join().unwrap()
        });
        assert!(reads > 0);
        assert!(
            failures.is_empty(),
            "{} reads failed, first: {:?}",
            failures.len(),
            failures.first()
        );
        // The damaged copies are gone: only the entry, the placed archive and the lock remain.
        let mut names: Vec<_> = std::fs::read_dir(cache.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut expected = [".lock", "edk2-test-r1-bin.tar.xz", release.sha256.as_str()];
        expected.sort_unstable();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_placed_archive_with_another_sum_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let archive = tar_xz(&[("r/x64/code.fd", b'0', b"code", "")]);
        let mut release = release_of(&archive);
        release.sha256 = "0".repeat(64);
        std::fs::create_dir_all(cache.root()).unwrap();
        std::fs::write(cache.placed_archive(&release), &archive).unwrap();
        let offline = Net {
            offline: true,
            ..Net::default()
        };
        let err = acquire(&cache, &release, None, Check::Quick, &offline)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nothing was cached"), "{err}");
        // The error names the file and the sha256 it must have.
        assert!(
            err.contains(&cache.placed_archive(&release).display().to_string())
                && err.contains(&release.sha256),
            "{err}"
        );
        assert!(!cache.entry_dir(&release.sha256).exists());
        // Offline, the placed file stays where its owner put it.
        assert!(cache.placed_archive(&release).is_file());
    }
}
