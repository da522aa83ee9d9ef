//! Reusing a built image when nothing it depends on changed. A stamp beside the output records
//! the fingerprint of the inputs; file contents are hashed only when their metadata changed, so
//! an unchanged no-op check costs a `stat` per file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image_runner_core::{BuildRequest, Error, Image, ImageKind, Source, Staging};
use image_runner_disk_layout::content_hash::Hasher;

/// What a stamp file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Stamp {
    fingerprint: String,
    image: Option<(PathBuf, String)>,
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
                (Some("image"), Some(kind), Some(p)) => {
                    stamp.image = Some((PathBuf::from(p), kind.to_owned()))
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
        if let Some((path, kind)) = &self.image {
            out.push_str(&format!("image\t{kind}\t{}\n", path.display()));
        }
        for (id, hash) in &self.files {
            out.push_str(&format!("file\t{hash}\t{id}\n"));
        }
        out
    }
}

fn kind_name(kind: ImageKind) -> &'static str {
    kind.name()
}

fn kind_from(name: &str) -> Option<ImageKind> {
    ImageKind::from_name(name)
}

fn identity(path: &Path) -> Result<String, Error> {
    image_runner_disk_layout::content_hash::file_identity(path)
        .map_err(|e| Error::io("read the metadata of", path, e))
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

    /// The image of the last build, if it was built from the same inputs and is still there.
    pub fn reusable(&self) -> Option<Image> {
        if self.old.fingerprint != self.new.fingerprint {
            return None;
        }
        let (path, kind) = self.old.image.as_ref()?;
        let kind = kind_from(kind)?;
        path.exists().then(|| Image::new(path.clone(), kind))
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

    /// Records `image` as the output of these inputs.
    pub fn record(mut self, image: &Image) -> Result<(), Error> {
        self.new.image = Some((image.path.clone(), kind_name(image.kind).to_owned()));
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
    if let Some(image) = check.reusable() {
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
        assert!(first.reusable().is_none());
        first.record(&Image::new(&image, ImageKind::Fat)).unwrap();

        let again = BuildCheck::new(&stamp, &staging, "fat").unwrap();
        assert_eq!(again.reusable(), Some(Image::new(&image, ImageKind::Fat)));
        assert!(
            BuildCheck::new(&stamp, &staging, "fat size=1")
                .unwrap()
                .reusable()
                .is_none()
        );

        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&kernel, b"v2").unwrap();
        assert!(
            BuildCheck::new(&stamp, &staging, "fat")
                .unwrap()
                .reusable()
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
                .reusable()
                .is_some()
        );
    }
}
