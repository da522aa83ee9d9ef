//! Reusing a built image when nothing it depends on changed. A stamp beside the output records
//! the fingerprint of the inputs, each file's content digest by file identity, and the identity
//! of the image that was published, so an unchanged no-op check costs a `stat` per file.
//!
//! The stamp never says where the image is: the format passes the path it writes to, and the
//! image found there is reused only if its identity (device, inode, size, modification and
//! change times) is the one recorded right after it was published. A copied output folder, a
//! stamp edited by hand, an image modified or truncated in place: each is rebuilt.
//!
//! Contents are read as rarely as possible: a file whose identity is unchanged keeps its
//! recorded digest; one whose identity changed is hashed only if it could still be the same
//! (same host path and length as last time, everything else unchanged too), to tell a touched
//! file from a changed one. When the image has to be rebuilt anyway (no stamp, other
//! settings, a new or resized file), nothing is hashed here: the writer computes the missing
//! digests while it copies the files (see [`crate::digest`]), and the stamp is written after
//! the build from them.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use image_runner_core::{BuildRequest, Error, Image, ImageKind, Source, Staging};
use image_runner_disk_layout::content_hash::Hasher;

use crate::digest::Digests;

/// What a stamp file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Stamp {
    /// Everything but file contents: the settings, the boot hints and the staged paths.
    settings: String,
    fingerprint: String,
    /// The published image: its kind and its identity (see [`image_identity`]).
    image: Option<(String, String)>,
    /// File identity (device, inode, size, mtime, path) → content digest, from the last build.
    files: BTreeMap<String, String>,
}

impl Stamp {
    fn read(path: &Path) -> Stamp {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Stamp::default();
        };
        let mut stamp = Stamp::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, '\t');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("settings"), Some(s), None) => stamp.settings = s.to_owned(),
                (Some("fingerprint"), Some(f), None) => stamp.fingerprint = f.to_owned(),
                (Some("image"), Some(kind), Some(id)) => {
                    stamp.image = Some((kind.to_owned(), id.to_owned()))
                }
                (Some("file"), Some(hash), Some(id)) => {
                    stamp.files.insert(id.to_owned(), hash.to_owned());
                }
                _ => return Stamp::default(),
            }
        }
        stamp
    }

    fn render(&self) -> String {
        let mut out = format!(
            "settings\t{}\nfingerprint\t{}\n",
            self.settings, self.fingerprint
        );
        if let Some((kind, id)) = &self.image {
            out.push_str(&format!("image\t{kind}\t{id}\n"));
        }
        for (id, hash) in &self.files {
            out.push_str(&format!("file\t{hash}\t{id}\n"));
        }
        out
    }
}

fn identity(path: &Path) -> Result<String, Error> {
    image_runner_disk_layout::content_hash::file_identity(path)
        .map_err(|e| Error::io("read the metadata of", path, e))
}

/// Device, inode, size and times of one file-system entry (not following a symbolic link).
/// The change time is left out for `shared` entries: files of a directory image are hard links
/// to their sources, whose change time moves whenever another output links them too.
fn entry_identity(meta: &std::fs::Metadata, shared: bool) -> String {
    let nanos = |t: std::io::Result<std::time::SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    };
    let kind = if meta.is_dir() {
        'd'
    } else if meta.is_file() {
        'f'
    } else {
        'o'
    };
    #[cfg(unix)]
    let (dev, ino, ctime) = {
        use std::os::unix::fs::MetadataExt;
        let ctime = if shared {
            0
        } else {
            i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec())
        };
        (meta.dev(), meta.ino(), ctime)
    };
    #[cfg(not(unix))]
    let (dev, ino, ctime) = (0u64, 0u64, {
        let _ = shared;
        0i128
    });
    format!(
        "{kind}:{dev}:{ino}:{}:{}:{ctime}",
        meta.len(),
        nanos(meta.modified())
    )
}

/// The identity of the image at `path`, or `None` when there is none of `kind` (a symbolic
/// link is never an image). A file image: its own identity. A directory image: a hash of the
/// identity and relative path of every entry in the tree, so a file changed deep inside shows.
pub fn image_identity(path: &Path, kind: ImageKind) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if kind != ImageKind::Directory {
        return meta.is_file().then(|| entry_identity(&meta, false));
    }
    if !meta.is_dir() {
        return None;
    }
    let mut hash = Hasher::new();
    hash.text(&entry_identity(&meta, true));
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(path.join(&relative))
            .ok()?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .ok()?;
        entries.sort();
        for name in entries {
            let child = relative.join(&name);
            let meta = std::fs::symlink_metadata(path.join(&child)).ok()?;
            hash.text(&child.to_string_lossy());
            hash.text(&entry_identity(&meta, true));
            if meta.is_dir() {
                pending.push(child);
            }
        }
    }
    Some(format!("tree:{}", hash.finish()))
}

/// The length and host path an identity (`dev:ino:len:mtime:path`) names.
fn length_and_path(identity: &str) -> Option<(&str, &str)> {
    let mut parts = identity.splitn(5, ':');
    let (_dev, _ino, len, _mtime, path) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    Some((len, path))
}

fn digest_text(digest: u64) -> String {
    format!("{digest:016x}")
}

/// The inputs of one image build and what the last build left.
#[derive(Debug)]
pub struct BuildCheck {
    stamp_path: PathBuf,
    old: Stamp,
    settings: String,
    /// Each staged host file (in staging order), its identity before the build, and its digest
    /// when the stamp or this check knows it.
    files: Vec<(PathBuf, String, Option<u64>)>,
    /// Made on demand, for a build: the digests known, for the writer to use and complete.
    digests: OnceLock<Arc<Digests>>,
    /// The inputs' fingerprint, if it was worth computing (the image might be reusable).
    fingerprint: Option<String>,
}

impl BuildCheck {
    /// Fingerprints `staging` and `options` (the format's settings as text), taking the digests
    /// of files whose identity is unchanged since the build recorded in `stamp_path` from it,
    /// and reading files only where that decides whether the image can be reused.
    pub fn new(stamp_path: &Path, staging: &Staging, options: &str) -> Result<BuildCheck, Error> {
        let old = Stamp::read(stamp_path);
        let mut settings = Hasher::new();
        settings.text(options);
        settings.text(&format!("{:?}", staging.hints));
        for (path, source) in &staging.entries {
            settings.text(path.as_str());
            settings.text(match source {
                Source::File(_) => "file",
                _ => "generated",
            });
        }
        let settings = settings.finish();
        let mut files = Vec::new();
        for source in staging.entries.values() {
            if let Source::File(path) = source {
                let id = identity(path)?;
                let digest = old
                    .files
                    .get(&id)
                    .and_then(|d| u64::from_str_radix(d, 16).ok());
                files.push((path.clone(), id, digest));
            }
        }
        let mut check = BuildCheck {
            stamp_path: stamp_path.to_path_buf(),
            old,
            settings,
            files,
            digests: OnceLock::new(),
            fingerprint: None,
        };
        // Only a file at the same place with the same length as last time can have the same
        // content; anything else means a rebuild, and the writer will hash what it copies.
        let could_match = {
            let old = &check.old;
            let mut unknown = check.files.iter().filter(|f| f.2.is_none()).peekable();
            old.settings == check.settings
                && old.image.is_some()
                && (unknown.peek().is_none() || {
                    let before: HashSet<(&str, &str)> = old
                        .files
                        .keys()
                        .filter_map(|id| length_and_path(id))
                        .collect();
                    unknown.all(|f| length_and_path(&f.1).is_some_and(|k| before.contains(&k)))
                })
        };
        if could_match {
            for (path, _, digest) in &mut check.files {
                if digest.is_none() {
                    let mut hash = Hasher::new();
                    hash.file(path).map_err(|e| Error::io("read", path, e))?;
                    *digest = Some(hash.finish64());
                }
            }
            check.fingerprint = Some(check.fingerprint(staging)?);
        }
        Ok(check)
    }

    /// The digests known so far, for the writer to use and complete.
    pub fn digests(&self) -> &Arc<Digests> {
        self.digests.get_or_init(|| {
            let digests = Digests::new();
            for (path, _, digest) in &self.files {
                if let Some(digest) = digest {
                    digests.insert(path, *digest);
                }
            }
            Arc::new(digests)
        })
    }

    /// Settings and every content digest together; reads files whose digest is still unknown.
    fn fingerprint(&self, staging: &Staging) -> Result<String, Error> {
        let mut hash = Hasher::new();
        hash.text(&self.settings);
        let mut files = self.files.iter();
        for source in staging.entries.values() {
            let digest = match source {
                Source::File(_) => match files.next() {
                    Some((path, _, known)) => self.digest_of(path, *known)?,
                    None => Digests::new().get_or_read(source)?,
                },
                source => Digests::new().get_or_read(source)?,
            };
            hash.update(&digest.to_le_bytes());
        }
        Ok(hash.finish())
    }

    /// The digest of the staged file at `path`: known here, computed by the writer, or read now.
    fn digest_of(&self, path: &Path, known: Option<u64>) -> Result<u64, Error> {
        if let Some(digest) = known.or_else(|| self.digests.get().and_then(|d| d.get(path))) {
            return Ok(digest);
        }
        self.digests()
            .get_or_read(&Source::File(path.to_path_buf()))
    }

    /// The image at `path`, if the last build made it from the same inputs and it is still
    /// the very file (or tree) that build published.
    pub fn reusable(&self, path: &Path, kind: ImageKind) -> Option<Image> {
        if self.fingerprint.as_ref() != Some(&self.old.fingerprint) {
            return None;
        }
        let (old_kind, old_id) = self.old.image.as_ref()?;
        if old_kind != kind.name() {
            return None;
        }
        (image_identity(path, kind)? == *old_id).then(|| Image::new(path, kind))
    }

    /// Forgets the last build before a new one starts: if the build is interrupted, no stamp
    /// vouches for a half-finished output.
    pub fn invalidate(&self) -> Result<(), Error> {
        match std::fs::remove_file(&self.stamp_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", &self.stamp_path, e)),
        }
    }

    /// Records `image`, published at its final path, as the output of `staging` (the list this
    /// check was made for). Digests the writer did not compute are read now.
    pub fn record(self, staging: &Staging, image: &Image) -> Result<(), Error> {
        let id = image_identity(&image.path, image.kind).ok_or_else(|| {
            Error::plugin(
                "image",
                format!(
                    "the {} image `{}` vanished right after it was written",
                    image.kind,
                    image.path.display()
                ),
            )
        })?;
        let fingerprint = match &self.fingerprint {
            Some(known) => known.clone(),
            None => self.fingerprint(staging)?,
        };
        let mut files = BTreeMap::new();
        for (path, id, known) in &self.files {
            files.insert(id.clone(), digest_text(self.digest_of(path, *known)?));
        }
        let stamp = Stamp {
            settings: self.settings,
            fingerprint,
            image: Some((image.kind.name().to_owned(), id)),
            files,
        };
        let text = stamp.render();
        image_runner_core::fs::write_atomic(&self.stamp_path, |file, temp| {
            use std::io::Write;
            file.write_all(text.as_bytes())
                .map_err(|e| Error::io("write", temp, e))
        })
    }
}

/// Builds the image of format `name` at `path` through `write` (which writes the file or folder
/// at the temporary path it is given), lets the bootloader finish it, and publishes it; or, when
/// the staging list and every setting the image depends on are unchanged since the last build,
/// reuses that image without writing anything. `write` gets the content digests known so far
/// (see [`Digests`]) and adds those it computes.
pub fn build_or_reuse(
    request: &BuildRequest<'_>,
    name: &str,
    kind: ImageKind,
    path: &Path,
    write: impl FnOnce(&Path, &Arc<Digests>) -> Result<(), Error>,
) -> Result<Image, Error> {
    let ctx = request.ctx;
    let decisions = &ctx.decisions;
    let options = format!(
        "format={name}\nbootloader={}\nboot={}\narch={}\nattach={:?}\nimage={:?}\nrunner-version={}\nsource-date-epoch={}",
        ctx.config.bootloader,
        decisions.boot,
        decisions.arch,
        decisions.attach,
        ctx.config.image,
        env!("CARGO_PKG_VERSION"),
        // Image timestamps come from it, so a different value is a different image.
        ctx.env.get("SOURCE_DATE_EPOCH").map_or("", String::as_str)
    );
    let check = BuildCheck::new(
        &ctx.output_dir.join(format!("{name}.stamp")),
        request.staging,
        &options,
    )?;
    if let Some(image) = check.reusable(path, kind) {
        if ctx.verbose > 0 {
            eprintln!("     Reusing {} (inputs unchanged)", image.path.display());
        }
        return Ok(image);
    }
    check.invalidate()?;
    let digests = Arc::clone(check.digests());
    if kind == ImageKind::Directory {
        crate::directory::publish_tree(path, |temp| {
            write(temp, &digests)?;
            request.finish(&Image::new(temp, kind))
        })?;
    } else {
        write_then_publish(path, |temp| {
            write(temp, &digests)?;
            request.finish(&Image::new(temp, kind))
        })?;
    }
    let image = Image::new(path, kind);
    check.record(request.staging, &image)?;
    Ok(image)
}

/// Lets `write` fill a temporary file beside `path`, then puts it in place; on failure the
/// temporary file is removed and `path` is left as it was.
fn write_then_publish(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), Error>,
) -> Result<(), Error> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create the directory", dir, e))?;
    let temp = image_runner_core::fs::temp_path(path);
    // Removed by the CLI's signal handlers should the build be interrupted.
    let registered = image_runner_core::fs::PendingTemporary::register(&temp);
    let result = std::fs::File::create(&temp)
        .map_err(|e| Error::io("create", &temp, e))
        .and_then(|_| write(&temp))
        .and_then(|()| registered.publish(|| publish(&temp, path)));
    if result.is_err() {
        // Best effort: the error being returned matters more than one about the cleanup.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Moves the finished file `temp` to `path`, replacing what is there.
///
/// A new image takes the old one's place by exchanging the two names, and the old one is then
/// removed: `path` names a whole image throughout, as with a rename. A plain rename over an
/// existing file makes ext4 write the new file's content to the disk first (its `auto_da_alloc`
/// heuristic for programs that replace files without `fsync`): 50 ms for a 64 MiB image, on
/// every rebuild.
fn publish(temp: &Path, path: &Path) -> Result<(), Error> {
    #[cfg(target_os = "linux")]
    if exchange(temp, path).is_ok() {
        // `temp` now names the old image. Best effort: the new one is in place, and a
        // temporary left behind is removed by a later build.
        let _ = std::fs::remove_file(temp);
        return Ok(());
    }
    // No previous image (or no exchange on this file system): a plain rename.
    std::fs::rename(temp, path).map_err(|e| Error::io("rename a finished file into", path, e))
}

/// Swaps the names `a` and `b` (both must exist) in one step.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (c(a)?, c(b)?);
    // Through the system call rather than the C library's wrapper, which older C libraries
    // lack. SAFETY: both are valid NUL-terminated paths that outlive the call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `bytes` to `path` and sets its modification time 10 s past the old one, so the
    /// file's identity changes however coarse the file system's clock is.
    fn rewrite_with_a_later_mtime(path: &Path, bytes: &[u8]) {
        let old = image_runner_test_support::mtime(path);
        std::fs::write(path, bytes).unwrap();
        set_mtime_after(path, old);
    }

    /// Sets the modification time of `path` 10 s past `old` (and checks that it took).
    fn set_mtime_after(path: &Path, old: std::time::SystemTime) {
        image_runner_test_support::set_mtime(path, old + std::time::Duration::from_secs(10));
    }

    #[test]
    fn unchanged_inputs_reuse_changed_inputs_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("kernel");
        std::fs::write(&kernel, b"v1").unwrap();
        let image = dir.path().join("image.fat");
        std::fs::write(&image, b"built").unwrap();
        let stamp = dir.path().join("image.stamp");
        let mut staging = Staging::new();
        staging
            .add_file("boot/kernel", Source::File(kernel.clone()))
            .unwrap();

        let first = BuildCheck::new(&stamp, &staging, "fat").unwrap();
        assert!(first.reusable(&image, ImageKind::Fat).is_none());
        first
            .record(&staging, &Image::new(&image, ImageKind::Fat))
            .unwrap();

        let again = BuildCheck::new(&stamp, &staging, "fat").unwrap();
        assert_eq!(
            again.reusable(&image, ImageKind::Fat),
            Some(Image::new(&image, ImageKind::Fat))
        );
        assert!(
            BuildCheck::new(&stamp, &staging, "fat size=1")
                .unwrap()
                .reusable(&image, ImageKind::Fat)
                .is_none()
        );

        // Same length, other bytes, another modification time.
        rewrite_with_a_later_mtime(&kernel, b"v2");
        assert!(
            BuildCheck::new(&stamp, &staging, "fat")
                .unwrap()
                .reusable(&image, ImageKind::Fat)
                .is_none()
        );
    }

    #[test]
    fn files_are_read_only_when_that_decides_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("kernel");
        std::fs::write(&kernel, b"version 1").unwrap();
        let image = dir.path().join("image.fat");
        std::fs::write(&image, b"built").unwrap();
        let stamp = dir.path().join("image.stamp");
        let mut staging = Staging::new();
        staging
            .add_file("boot/kernel", Source::File(kernel.clone()))
            .unwrap();
        let hashed = |check: &BuildCheck| check.digests().get(&kernel).is_some();

        // No stamp: a rebuild for sure, nothing read (the writer hashes while it copies).
        let cold = BuildCheck::new(&stamp, &staging, "fat").unwrap();
        assert!(cold.reusable(&image, ImageKind::Fat).is_none() && !hashed(&cold));
        cold.record(&staging, &Image::new(&image, ImageKind::Fat))
            .unwrap();
        // Unchanged: the digest comes from the stamp.
        let same = BuildCheck::new(&stamp, &staging, "fat").unwrap();
        assert!(same.reusable(&image, ImageKind::Fat).is_some() && hashed(&same));

        // Another length: changed for sure, not read.
        std::fs::write(&kernel, b"version 1.1").unwrap();
        let grown = BuildCheck::new(&stamp, &staging, "fat").unwrap();
        assert!(grown.reusable(&image, ImageKind::Fat).is_none() && !hashed(&grown));
        // Other settings: not read either.
        let other = BuildCheck::new(&stamp, &staging, "fat label=X").unwrap();
        assert!(other.reusable(&image, ImageKind::Fat).is_none() && !hashed(&other));
        grown
            .record(&staging, &Image::new(&image, ImageKind::Fat))
            .unwrap();

        // Same length, new identity: read, to tell a touched file from a changed one.
        rewrite_with_a_later_mtime(&kernel, b"version 1.2");
        let touched = BuildCheck::new(&stamp, &staging, "fat").unwrap();
        assert!(touched.reusable(&image, ImageKind::Fat).is_none() && hashed(&touched));
    }

    #[test]
    fn a_published_image_replaces_the_old_one_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image.fat");
        for content in ["first", "second"] {
            write_then_publish(&image, |temp| {
                std::fs::write(temp, content).map_err(|e| Error::io("write", temp, e))
            })
            .unwrap();
            assert_eq!(std::fs::read_to_string(&image).unwrap(), content);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
        let err = write_then_publish(&image, |_| Err(Error::Config("no".into())));
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&image).unwrap(), "second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn touched_but_identical_files_still_match() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("kernel");
        std::fs::write(&kernel, b"same").unwrap();
        let image = dir.path().join("image.iso");
        std::fs::write(&image, b"built").unwrap();
        let stamp = dir.path().join("stamp");
        let mut staging = Staging::new();
        staging.add_file("k", Source::File(kernel.clone())).unwrap();
        BuildCheck::new(&stamp, &staging, "")
            .unwrap()
            .record(&staging, &Image::new(&image, ImageKind::Iso))
            .unwrap();
        let before = identity(&kernel).unwrap();
        rewrite_with_a_later_mtime(&kernel, b"same");
        assert_ne!(
            identity(&kernel).unwrap(),
            before,
            "the kernel was not touched"
        );
        assert!(
            BuildCheck::new(&stamp, &staging, "")
                .unwrap()
                .reusable(&image, ImageKind::Iso)
                .is_some()
        );
    }

    /// Builds a stamp for a one-file staging list and `image`, then lets `damage` act.
    fn reused_after(damage: impl FnOnce(&Path, &Path)) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("kernel");
        std::fs::write(&kernel, b"kernel").unwrap();
        let image = dir.path().join("image.iso");
        std::fs::write(&image, b"built image").unwrap();
        let stamp = dir.path().join("iso.stamp");
        let mut staging = Staging::new();
        staging.add_file("k", Source::File(kernel)).unwrap();
        BuildCheck::new(&stamp, &staging, "")
            .unwrap()
            .record(&staging, &Image::new(&image, ImageKind::Iso))
            .unwrap();
        damage(&image, &stamp);
        BuildCheck::new(&stamp, &staging, "")
            .unwrap()
            .reusable(&image, ImageKind::Iso)
            .is_some()
    }

    #[test]
    fn only_the_very_image_that_was_published_is_reused() {
        assert!(reused_after(|_, _| {}));
        // Modified in place, same size and inode.
        assert!(!reused_after(|image, _| {
            use std::io::Write;
            let old = std::fs::metadata(image).unwrap().modified().unwrap();
            let mut f = std::fs::OpenOptions::new().write(true).open(image).unwrap();
            f.write_all(b"B").unwrap();
            drop(f);
            set_mtime_after(image, old);
        }));
        // Truncated.
        assert!(!reused_after(|image, _| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(image)
                .unwrap()
                .set_len(3)
                .unwrap();
        }));
        // Replaced by another file with the same bytes.
        assert!(!reused_after(|image, _| {
            let other = image.with_extension("other");
            std::fs::write(&other, b"built image").unwrap();
            std::fs::rename(&other, image).unwrap();
        }));
        // Replaced by a symbolic link.
        #[cfg(unix)]
        assert!(!reused_after(|image, _| {
            let other = image.with_extension("other");
            std::fs::rename(image, &other).unwrap();
            std::os::unix::fs::symlink(&other, image).unwrap();
        }));
        // A stamp from before identities were recorded names a path: not trusted.
        assert!(!reused_after(|image, stamp| {
            let text = std::fs::read_to_string(stamp).unwrap();
            let text: String = text
                .lines()
                .map(|l| match l.strip_prefix("image\t") {
                    Some(_) => format!("image\tiso\t{}\n", image.display()),
                    None => format!("{l}\n"),
                })
                .collect();
            std::fs::write(stamp, text).unwrap();
        }));
    }

    #[test]
    fn a_directory_image_is_checked_down_to_its_deepest_file() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("image");
        std::fs::create_dir_all(tree.join("EFI/BOOT")).unwrap();
        std::fs::write(tree.join("EFI/BOOT/BOOTX64.EFI"), b"app").unwrap();
        let first = image_identity(&tree, ImageKind::Directory).unwrap();
        assert_eq!(image_identity(&tree, ImageKind::Directory).unwrap(), first);
        assert!(image_identity(&tree, ImageKind::Fat).is_none());
        rewrite_with_a_later_mtime(&tree.join("EFI/BOOT/BOOTX64.EFI"), b"APP");
        assert_ne!(image_identity(&tree, ImageKind::Directory).unwrap(), first);
    }
}
