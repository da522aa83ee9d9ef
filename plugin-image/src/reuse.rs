//! Reusing a built image when nothing it depends on changed. A stamp beside the output records
//! the fingerprint of the inputs and the identity of the image that was published; file
//! contents are hashed only when their metadata changed, so an unchanged no-op check costs a
//! `stat` per file.
//!
//! The stamp never says where the image is: the format passes the path it writes to, and the
//! image found there is reused only if its identity (device, inode, size, modification and
//! change times) is the one recorded right after it was published. A copied output folder, a
//! stamp edited by hand, an image modified or truncated in place: each is rebuilt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image_runner_core::{BuildRequest, Error, Image, ImageKind, Source, Staging};
use image_runner_disk_layout::content_hash::Hasher;

/// What a stamp file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Stamp {
    fingerprint: String,
    /// The published image: its kind and its identity (see [`image_identity`]).
    image: Option<(String, String)>,
    /// File identity (device, inode, size, mtime) → content hash, from the last build.
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
        let mut out = format!("fingerprint\t{}\n", self.fingerprint);
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

/// The inputs of one image build and what the last build left.
#[derive(Debug)]
pub struct BuildCheck {
    stamp_path: PathBuf,
    new: Stamp,
    old: Stamp,
}

impl BuildCheck {
    /// Fingerprints `staging` and `options` (the format's settings as text), reusing content
    /// hashes of files whose identity is unchanged since the build recorded in `stamp_path`.
    pub fn new(stamp_path: &Path, staging: &Staging, options: &str) -> Result<BuildCheck, Error> {
        let old = Stamp::read(stamp_path);
        let mut files = BTreeMap::new();
        let mut hash = Hasher::new();
        hash.text(options);
        hash.text(&format!("{:?}", staging.hints));
        for (path, source) in &staging.entries {
            hash.text(path.as_str());
            match source {
                Source::File(file) => {
                    let id = identity(file)?;
                    let content = match old.files.get(&id) {
                        Some(known) => known.clone(),
                        None => {
                            let mut h = Hasher::new();
                            h.file(file).map_err(|e| Error::io("read", file, e))?;
                            h.finish()
                        }
                    };
                    hash.text(&content);
                    files.insert(id, content);
                }
                Source::Bytes(bytes) => hash.bytes(bytes),
                other => hash.bytes(&other.read()?),
            }
        }
        Ok(BuildCheck {
            stamp_path: stamp_path.to_path_buf(),
            new: Stamp {
                fingerprint: hash.finish(),
                image: None,
                files,
            },
            old,
        })
    }

    /// The image at `path`, if the last build made it from the same inputs and it is still
    /// the very file (or tree) that build published.
    pub fn reusable(&self, path: &Path, kind: ImageKind) -> Option<Image> {
        if self.old.fingerprint != self.new.fingerprint {
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

    /// Records `image`, published at its final path, as the output of these inputs.
    pub fn record(mut self, image: &Image) -> Result<(), Error> {
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
        self.new.image = Some((image.kind.name().to_owned(), id));
        let text = self.new.render();
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
/// reuses that image without writing anything.
pub fn build_or_reuse(
    request: &BuildRequest<'_>,
    name: &str,
    kind: ImageKind,
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), Error>,
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
    if kind == ImageKind::Directory {
        crate::directory::publish_tree(path, |temp| {
            write(temp)?;
            request.finish(&Image::new(temp, kind))
        })?;
    } else {
        image_runner_core::fs::write_atomic(path, |_, temp| {
            write(temp)?;
            request.finish(&Image::new(temp, kind))
        })?;
    }
    let image = Image::new(path, kind);
    check.record(&image)?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        first.record(&Image::new(&image, ImageKind::Fat)).unwrap();

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

        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&kernel, b"v2").unwrap();
        assert!(
            BuildCheck::new(&stamp, &staging, "fat")
                .unwrap()
                .reusable(&image, ImageKind::Fat)
                .is_none()
        );
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
            .record(&Image::new(&image, ImageKind::Iso))
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&kernel, b"same").unwrap();
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
            .record(&Image::new(&image, ImageKind::Iso))
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
            std::thread::sleep(std::time::Duration::from_millis(10));
            let mut f = std::fs::OpenOptions::new().write(true).open(image).unwrap();
            f.write_all(b"B").unwrap();
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
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(tree.join("EFI/BOOT/BOOTX64.EFI"), b"APP").unwrap();
        assert_ne!(image_identity(&tree, ImageKind::Directory).unwrap(), first);
    }
}
