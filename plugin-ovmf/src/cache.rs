//! The downloaded releases in the user cache, one folder per archive sha256:
//!
//! ```text
//! <cache>/ovmf/
//!   <sha256>/               a published release: x64/code.fd, aarch64/vars.fd, ...
//!     MANIFEST              written last: the release, a line per file, the seal (below)
//!   <tag>-bin.tar.xz        an archive placed by hand (for offline machines), verified on use
//!   .lock                   held while downloading and publishing
//!   .<name>.tmp-<pid>       a download or an unpacking in progress
//! ```
//!
//! A release is unpacked into a temporary folder and renamed into place with its manifest, so
//! a folder under its sha256 is always whole; readers need no lock.
//!
//! The manifest ties the files to the archive the folder is named after: for each file, the
//! sha256 of the bytes the verified archive held (hashed as they were unpacked), their length,
//! and the size after padding for pflash (zeros); and last a seal, the sha256 of the archive's
//! sha256 followed by every line above it, so that a manifest edited alone no longer matches
//! its folder. Every use re-hashes the files it hands out (about 3 ms for a 4 MiB firmware
//! file; the padding of the 64 MiB aarch64 images is only compared with zeros), so neither a
//! file's time nor its size can hide a change.
//!
//! An entry whose files do not match its manifest is damaged: it is fetched again into a
//! temporary folder, which then takes the entry's place in one atomic exchange (`renameat2`
//! with `RENAME_EXCHANGE` on Linux); only then is the old folder, now under the temporary
//! name, removed. So the paths of an entry never stop existing: a run that checked its files
//! and copies the variable store or starts QEMU a moment later finds them (the same bytes,
//! from the new folder), and files it already opened stay readable. Where the exchange is
//! unsupported the old folder is renamed aside just before the new one is renamed in, which
//! leaves a gap of two renames.
//!
//! What is not covered: someone able to write the cache can plant a file and write a manifest
//! and seal to match it (nothing secret goes into the seal). The seal guards against damage and
//! a manifest edited alone, the re-hash against a file changed behind the manifest's back.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use image_runner_core::fs::{PendingTemporary, remove_stale_temporaries, temp_path};
use image_runner_core::{Arch, Error};

use crate::archive::{self, Caps};
use crate::download::{self, DownloadOptions};
use crate::release::{self, Release};

const MANIFEST: &str = "MANIFEST";

/// The manifest's first line; a manifest of another format (an older runner's) is damaged.
const MANIFEST_FORMAT: &str = "cargo-image-runner ovmf cache 2";

/// How much of a cache entry is checked. Either way the manifest's seal, and the size and
/// sha256 of every file checked, whatever the files' times say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The files of the architecture asked for (all when none is): what a run uses.
    Quick,
    /// Every file of the release.
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
    /// Its files (relative paths) with their size and the sha256 of the content the archive
    /// held (for a file padded for pflash, of its first bytes, before the zeros).
    pub files: Vec<(PathBuf, u64, String)>,
    /// The length of the archive's content of each file padded for pflash.
    padded: Vec<(PathBuf, u64)>,
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
        let files: Vec<&Path> = self.files.iter().map(|(p, _, _)| p.as_path()).collect();
        if !has_firmware(&files, arch) {
            return Err(Error::plugin(
                "ovmf",
                format!(
                    "{}; install your distribution's firmware for {arch} or set `ovmf.code` and `ovmf.vars`",
                    lacking(&self.tag, &self.dir, &files, Some(arch))
                ),
            ));
        }
        let dir = release::arch_dir(arch).unwrap_or("?");
        let has = |name: &str| files.iter().any(|p| *p == Path::new(dir).join(name));
        let base = self.dir.join(dir);
        Ok(ArchFiles {
            code: base.join("code.fd"),
            vars: base.join("vars.fd"),
            shell: has("shell.efi").then(|| base.join("shell.efi")),
        })
    }

    /// The length of the archive's content of `rel` (its size when it was not padded).
    fn content_len(&self, rel: &Path, size: u64) -> u64 {
        self.padded
            .iter()
            .find(|(p, _)| p == rel)
            .map_or(size, |(_, len)| *len)
    }
}

/// Whether `files` (paths in a release) hold the code and variable store of `arch`.
fn has_firmware(files: &[&Path], arch: Arch) -> bool {
    let Some(dir) = release::arch_dir(arch) else {
        return false;
    };
    ["code.fd", "vars.fd"]
        .iter()
        .all(|name| files.iter().any(|p| *p == Path::new(dir).join(name)))
}

/// Why a release (tag `tag`, in `dir`) with `files` does not do for `arch` (for any
/// architecture when `None`): what it lacks, and what it has.
fn lacking(tag: &str, dir: &Path, files: &[&Path], arch: Option<Arch>) -> String {
    let has: Vec<String> = crate::ARCHES
        .into_iter()
        .filter(|a| has_firmware(files, *a))
        .map(|a| a.to_string())
        .collect();
    let what = if has.is_empty() {
        let mut names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        names.sort();
        let more = names.len().saturating_sub(10);
        names.truncate(10);
        let listed = if names.is_empty() {
            "none".to_owned()
        } else if more > 0 {
            format!("{} and {more} more", names.join(", "))
        } else {
            names.join(", ")
        };
        format!(
            "it has no firmware for any architecture (`<arch>/code.fd` and `<arch>/vars.fd`); its files: {listed}"
        )
    } else {
        format!("it has firmware for {} only", has.join(", "))
    };
    match arch {
        Some(arch) => {
            let folder = release::arch_dir(arch).unwrap_or("?");
            format!(
                "the firmware release {tag} ({}) has no `{folder}/code.fd` and `{folder}/vars.fd` for {arch}: {what}",
                dir.display()
            )
        }
        None => format!(
            "the firmware release {tag} ({}) is of no use: {what}",
            dir.display()
        ),
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
    /// `None` or `how` is [`Check::Full`]); the reason it is unusable otherwise. The manifest
    /// must carry the seal of `sha256`, and every file checked must have its recorded size and
    /// content, re-hashed now (see the module's notes).
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
        let entry = parse_manifest(&dir, sha256, &text)
            .map_err(|why| format!("its manifest {} {why}", manifest.display()))?;
        let prefix = match how {
            Check::Quick => arch.and_then(release::arch_dir).map(PathBuf::from),
            Check::Full => None,
        };
        for (rel, size, sum) in &entry.files {
            if let Some(prefix) = &prefix
                && !rel.starts_with(prefix)
            {
                continue;
            }
            verify_file(&dir.join(rel), *size, entry.content_len(rel, *size), sum)?;
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
                        padded: Vec::new(),
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
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
        }
        // Another run is downloading or unpacking (bounded by `ovmf.download-timeout`): say why
        // this one waits.
        eprintln!(
            "    Waiting for another process to finish downloading UEFI firmware into {} (it holds {})",
            self.root.display(),
            path.display()
        );
        file.lock().map_err(|e| Error::io("lock", &path, e))?;
        Ok(file)
    }
}

/// The release `release` from the cache, downloading and publishing it when it is missing or
/// damaged; `arch` says which files must be sound (every file when `None`). The release must
/// hold the firmware of `arch` (of some architecture when `None`): one that does not is an
/// error, and is not published.
pub fn acquire(
    cache: &Cache,
    release: &Release,
    arch: Option<Arch>,
    how: Check,
    net: &Net,
) -> Result<Entry, Error> {
    let first = match cache.check(&release.sha256, arch, how) {
        Ok(entry) => return usable(entry, arch),
        Err(problem) => problem,
    };
    let placed = cache.placed_archive(release);
    if net.offline && !placed.is_file() {
        return Err(offline_error(cache, release, &first));
    }
    let _lock = cache.lock()?;
    // Another process may have published it while this one waited.
    if let Ok(entry) = cache.check(&release.sha256, arch, how) {
        return usable(entry, arch);
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
        publish(cache, release, &archive, arch)
    })();
    let _ = std::fs::remove_file(&download_temp);
    result?;
    let entry = cache
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
        })?;
    usable(entry, arch)
}

/// `entry` when it holds the firmware of `arch`; the error saying what it has otherwise.
fn usable(entry: Entry, arch: Option<Arch>) -> Result<Entry, Error> {
    match arch {
        Some(arch) => entry.arch(arch).map(|_| entry),
        None => Ok(entry),
    }
}

/// Unpacks the verified `archive` into a temporary folder, pads the pflash images, writes the
/// sealed manifest and renames the folder into place. A release without the firmware of `arch`
/// (of any architecture when `None`) is refused before anything is published.
fn publish(
    cache: &Cache,
    release: &Release,
    archive: &Path,
    arch: Option<Arch>,
) -> Result<(), Error> {
    let dir = cache.entry_dir(&release.sha256);
    let temp = temp_path(&dir);
    let pending = PendingTemporary::register(&temp);
    let _ = std::fs::remove_dir_all(&temp);
    std::fs::create_dir_all(&temp).map_err(|e| Error::io("create the directory", &temp, e))?;
    let result = (|| {
        let files = archive::unpack(archive, &temp, Caps::default())?;
        let paths: Vec<&Path> = files.iter().map(|f| f.path.as_path()).collect();
        let fits = match arch {
            Some(arch) => has_firmware(&paths, arch),
            None => crate::ARCHES.into_iter().any(|a| has_firmware(&paths, a)),
        };
        if !fits {
            let placed = cache.placed_archive(release);
            let from = if archive == placed {
                placed
            } else {
                PathBuf::from(&release.url)
            };
            return Err(Error::plugin(
                "ovmf",
                format!(
                    "{}; it was not published and nothing was cached. Check `ovmf.release`/`ovmf.url`, or install your distribution's firmware",
                    lacking(&release.tag, &from, &paths, arch)
                ),
            ));
        }
        let mut manifest = format!(
            "{MANIFEST_FORMAT}\nrelease {}\nurl {}\n",
            release.tag, release.url
        );
        for file in &files {
            let rel = &file.path;
            let path = temp.join(rel);
            pad_pflash(rel, &path)?;
            let size = std::fs::metadata(&path)
                .map_err(|e| Error::io("read the metadata of", &path, e))?
                .len();
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
            // The digest of what the verified archive held, computed as it was unpacked.
            manifest.push_str(&format!(
                "file {} {} {size} {name}\n",
                file.sha256, file.size
            ));
        }
        manifest.push_str(&format!("seal {}\n", seal(&release.sha256, &manifest)));
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

/// The seal of a manifest whose lines before the seal are `body`, for the archive `sha256`.
fn seal(sha256: &str, body: &str) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(MANIFEST_FORMAT.as_bytes());
    hasher.update(b"\nsealed for the archive ");
    hasher.update(sha256.as_bytes());
    hasher.update(b"\n");
    hasher.update(body.as_bytes());
    download::hex(&hasher.finalize())
}

/// Checks that the file at `path` has `size` bytes, that its first `content` bytes have the
/// sha256 `sum` and that the rest are zeros (the pflash padding). One open file is read, so the
/// size and the bytes checked are of the same file.
fn verify_file(path: &Path, size: u64, content: u64, sum: &str) -> Result<(), String> {
    use sha2::Digest;
    use std::io::Read;
    let unreadable = |e: std::io::Error| format!("{} is unreadable: {e}", path.display());
    let mut file = File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    if meta.len() != size {
        return Err(format!(
            "{} has {} bytes instead of {size}",
            path.display(),
            meta.len()
        ));
    }
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut head = (&mut file).take(content);
    loop {
        let n = head.read(&mut buf).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    if download::hex(&hasher.finalize()) != sum {
        return Err(format!(
            "{} does not hold what the release's archive held (its sha256 differs)",
            path.display()
        ));
    }
    // The padding: zeros, compared a buffer at a time (a memory comparison, fast in any build).
    let zeros = vec![0u8; buf.len()];
    loop {
        let n = file.read(&mut buf).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        if buf[..n] != zeros[..n] {
            return Err(format!(
                "{} does not hold what the release's archive held (its padding is not zeros)",
                path.display()
            ));
        }
    }
    Ok(())
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

/// The entry a manifest describes; what is wrong with it otherwise ("is ...", following the
/// manifest's path in the message).
fn parse_manifest(dir: &Path, sha256: &str, text: &str) -> Result<Entry, String> {
    let damaged = || "is damaged".to_owned();
    let (body, last) = text
        .strip_suffix('\n')
        .and_then(|t| t.rsplit_once('\n'))
        .ok_or_else(damaged)?;
    let body = &text[..body.len() + 1];
    let mut lines = body.lines();
    if lines.next() != Some(MANIFEST_FORMAT) {
        return Err("is of another format (an older cargo-image-runner's) or damaged".into());
    }
    let Some(sealed) = last.strip_prefix("seal ") else {
        return Err(damaged());
    };
    if sealed != seal(sha256, body) {
        return Err(format!(
            "does not belong to the archive {sha256} the folder is named after (its seal does not match): it was changed"
        ));
    }
    let tag = lines
        .next()
        .and_then(|l| l.strip_prefix("release "))
        .ok_or_else(damaged)?
        .to_owned();
    lines
        .next()
        .and_then(|l| l.strip_prefix("url "))
        .ok_or_else(damaged)?;
    let (mut files, mut padded) = (Vec::new(), Vec::new());
    for line in lines {
        let parse = || -> Option<(PathBuf, u64, u64, String)> {
            let mut parts = line.strip_prefix("file ")?.splitn(4, ' ');
            let sum = parts.next()?.to_owned();
            let content: u64 = parts.next()?.parse().ok()?;
            let size: u64 = parts.next()?.parse().ok()?;
            let rel = PathBuf::from(parts.next()?);
            let plain = rel
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            (sum.len() == 64 && content <= size && plain).then_some((rel, content, size, sum))
        };
        let (rel, content, size, sum) = parse().ok_or_else(damaged)?;
        if content != size {
            padded.push((rel.clone(), content));
        }
        files.push((rel, size, sum));
    }
    if files.is_empty() {
        return Err(damaged());
    }
    Ok(Entry {
        dir: dir.to_path_buf(),
        tag,
        sha256: sha256.to_owned(),
        files,
        padded,
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
        assert!(
            err.contains("riscv64") && err.contains("it has firmware for x86_64, aarch64 only"),
            "{err}"
        );

        // Same size, other bytes, a time past the manifest's: the sum tells.
        std::fs::write(&x64.vars, b"VARS").unwrap();
        let published = std::fs::metadata(cache.entry_dir(&release.sha256).join(MANIFEST))
            .unwrap()
            .modified()
            .unwrap();
        image_runner_test_support::set_mtime(
            &x64.vars,
            published + std::time::Duration::from_secs(10),
        );
        let problem = cache
            .check(&release.sha256, Some(Arch::X86_64), Check::Quick)
            .unwrap_err();
        assert!(problem.contains("does not hold what"), "{problem}");
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

    /// Publishes `archive` into a new cache from a placed archive, offline.
    fn published(archive: &[u8]) -> (tempfile::TempDir, Cache, Release, Net) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let release = release_of(archive);
        let offline = Net {
            offline: true,
            ..Net::default()
        };
        std::fs::create_dir_all(cache.root()).unwrap();
        std::fs::write(cache.placed_archive(&release), archive).unwrap();
        acquire(&cache, &release, None, Check::Full, &offline).unwrap();
        (dir, cache, release, offline)
    }

    /// Replaces the content of `path` with `bytes`, keeping its modification time.
    fn plant(path: &Path, bytes: &[u8]) {
        let modified = image_runner_test_support::mtime(path);
        std::fs::write(path, bytes).unwrap();
        image_runner_test_support::set_mtime(path, modified);
    }

    #[test]
    fn a_planted_file_is_found_whatever_its_time_and_an_edited_manifest_is_refused() {
        let code = vec![0xC0u8; 64 << 10];
        let archive = tar_xz(&[
            ("r/x64/code.fd", b'0', &code, ""),
            ("r/x64/vars.fd", b'0', b"vars", ""),
        ]);
        let (_dir, cache, release, offline) = published(&archive);
        let entry_dir = cache.entry_dir(&release.sha256);
        let path = entry_dir.join("x64/code.fd");
        let zeros = vec![0u8; code.len()];

        // Zeros of the same size, the old time: every check finds it, the next use fetches again.
        plant(&path, &zeros);
        for how in [Check::Quick, Check::Full] {
            let problem = cache
                .check(&release.sha256, Some(Arch::X86_64), how)
                .unwrap_err();
            assert!(problem.contains("x64/code.fd"), "{problem}");
        }
        let (_, problem) = cache.list().remove(0);
        assert!(problem.is_some());
        acquire(&cache, &release, Some(Arch::X86_64), Check::Quick, &offline).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), code);

        // The manifest's line rewritten to the planted file's sum: the seal no longer matches.
        plant(&path, &zeros);
        let manifest = entry_dir.join(MANIFEST);
        let text = std::fs::read_to_string(&manifest).unwrap();
        let sum = |b: &[u8]| download::hex(&<sha2::Sha256 as sha2::Digest>::digest(b));
        let edited = text.replace(&sum(&code), &sum(&zeros));
        assert_ne!(text, edited);
        std::fs::write(&manifest, edited).unwrap();
        for how in [Check::Quick, Check::Full] {
            let problem = cache.check(&release.sha256, None, how).unwrap_err();
            assert!(problem.contains("seal"), "{problem}");
        }
        acquire(&cache, &release, None, Check::Full, &offline).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), code);

        // An older runner's manifest (no format line, no seal) is fetched again too.
        let old = format!(
            "release {}\nurl {}\n{} 4 x64/vars.fd\n",
            release.tag,
            release.url,
            sum(b"vars")
        );
        std::fs::write(&manifest, old).unwrap();
        let problem = cache
            .check(&release.sha256, None, Check::Quick)
            .unwrap_err();
        assert!(problem.contains("another format"), "{problem}");
    }

    #[test]
    fn the_padding_of_pflash_images_must_stay_zeros() {
        let archive = tar_xz(&[
            ("r/aarch64/code.fd", b'0', b"aa code", ""),
            ("r/aarch64/vars.fd", b'0', b"aa vars", ""),
        ]);
        let (_dir, cache, release, _) = published(&archive);
        let path = cache.entry_dir(&release.sha256).join("aarch64/code.fd");
        cache
            .check(&release.sha256, Some(Arch::Aarch64), Check::Quick)
            .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 64 << 20);
        *bytes.last_mut().unwrap() = 1;
        plant(&path, &bytes);
        let problem = cache
            .check(&release.sha256, Some(Arch::Aarch64), Check::Quick)
            .unwrap_err();
        assert!(problem.contains("padding"), "{problem}");
    }

    #[test]
    fn a_release_without_the_firmware_asked_for_is_refused_and_not_published() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let offline = Net {
            offline: true,
            ..Net::default()
        };
        let aarch64_only = tar_xz(&[
            ("r/aarch64/code.fd", b'0', b"aa", ""),
            ("r/aarch64/vars.fd", b'0', b"av", ""),
        ]);
        let nothing = tar_xz(&[("r/doc/README", b'0', b"readme", "")]);
        for (archive, arch, says) in [
            (
                &aarch64_only,
                Some(Arch::X86_64),
                "it has firmware for aarch64 only",
            ),
            (
                &nothing,
                Some(Arch::X86_64),
                "no firmware for any architecture",
            ),
            (&nothing, None, "no firmware for any architecture"),
        ] {
            let release = release_of(archive);
            std::fs::create_dir_all(cache.root()).unwrap();
            std::fs::write(cache.placed_archive(&release), archive).unwrap();
            let err = acquire(&cache, &release, arch, Check::Full, &offline)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(says) && err.contains("nothing was cached"),
                "{err}"
            );
            assert!(!err.contains("(it has: )"), "{err}");
            assert!(!cache.entry_dir(&release.sha256).exists());
        }
        // Published for aarch64, the release is still refused for x86_64.
        let release = release_of(&aarch64_only);
        std::fs::write(cache.placed_archive(&release), &aarch64_only).unwrap();
        acquire(&cache, &release, Some(Arch::Aarch64), Check::Full, &offline).unwrap();
        let err = acquire(&cache, &release, Some(Arch::X86_64), Check::Full, &offline)
            .unwrap_err()
            .to_string();
        assert!(err.contains("aarch64 only"), "{err}");
    }
}
