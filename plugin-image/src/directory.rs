//! The `directory` format: the staging list materialized as a host directory tree (QEMU can
//! attach it as a virtual FAT drive; handy for looking at what would go into an image).

use std::path::Path;

use image_runner_core::{BuildRequest, Error, Image, ImageFormat, ImageKind, Source, Staging};

/// Writes the staging list as a directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirectoryFormat;

impl ImageFormat for DirectoryFormat {
    fn name(&self) -> &str {
        "directory"
    }

    fn kind(&self) -> ImageKind {
        ImageKind::Directory
    }

    fn build(&self, request: &BuildRequest<'_>) -> Result<Image, Error> {
        let dir = request.ctx.output_dir.join("image");
        crate::reuse::build_or_reuse(
            request,
            "directory",
            ImageKind::Directory,
            &dir,
            |temp, _| fill_tree(request.staging, temp),
        )
    }
}

/// Writes the tree beside `dir` and swaps it in, so `dir` is always a whole tree: the old
/// one or the new one.
pub fn write_tree(staging: &Staging, dir: &Path) -> Result<(), Error> {
    publish_tree(dir, |temp| fill_tree(staging, temp))
}

/// Fills the empty folder `root` with the staging list.
pub fn fill_tree(staging: &Staging, root: &Path) -> Result<(), Error> {
    let temp = root;
    for sub in staging.directories() {
        let path = temp.join(&sub);
        std::fs::create_dir_all(&path).map_err(|e| Error::io("create", &path, e))?;
    }
    for (image_path, source) in &staging.entries {
        let to = temp.join(image_path.as_str());
        match source {
            Source::File(from) => {
                // A hard link costs nothing; fall back to a copy across file systems.
                if std::fs::hard_link(from, &to).is_err() {
                    std::fs::copy(from, &to).map_err(|e| Error::io("copy", from, e))?;
                }
            }
            Source::Bytes(bytes) => {
                std::fs::write(&to, bytes).map_err(|e| Error::io("write", &to, e))?;
            }
            other => {
                return Err(Error::plugin(
                    "directory",
                    format!("unsupported source for {image_path}: {other:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// Makes a fresh folder beside `dir`, lets `fill` write it, and swaps it in for `dir`; on
/// failure the half-written folder is removed and `dir` is left as it was. The fresh folder and
/// the old tree on its way out both have temporary names (`.<name>.tmp-<pid>`,
/// `.<name>.old.tmp-<pid>`), removed on a signal or, after a kill, by the next build.
pub fn publish_tree(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), Error>,
) -> Result<(), Error> {
    use image_runner_core::fs::{PendingTemporary, temp_path};
    let temp = temp_path(dir);
    let registered = PendingTemporary::register(&temp);
    let _ = std::fs::remove_dir_all(&temp);
    let result = std::fs::create_dir_all(&temp)
        .map_err(|e| Error::io("create", &temp, e))
        .and_then(|()| fill(&temp));
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&temp);
        return Err(e);
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let old = temp_path(&dir.with_file_name(format!("{name}.old")));
    let old_registered = PendingTemporary::register(&old);
    let _ = std::fs::remove_dir_all(&old);
    let published = registered.publish(|| {
        let moved_aside = dir.exists();
        if moved_aside {
            std::fs::rename(dir, &old).map_err(|e| Error::io("move aside", dir, e))?;
        }
        std::fs::rename(&temp, dir).map_err(|e| {
            if moved_aside {
                let _ = std::fs::rename(&old, dir);
            }
            Error::io("rename into place", dir, e)
        })
    });
    if let Err(e) = published {
        let _ = std::fs::remove_dir_all(&temp);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&old);
    drop(old_registered);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_holds_every_entry_and_replaces_the_old_one() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("kernel");
        std::fs::write(&src, b"ELF").unwrap();
        let mut staging = Staging::new();
        staging.add_file("boot/kernel", Source::File(src)).unwrap();
        staging
            .add_file(
                "boot/limine/limine.conf",
                Source::Bytes(b"timeout: 0\n".to_vec()),
            )
            .unwrap();
        let dir = tmp.path().join("image");
        std::fs::create_dir_all(dir.join("stale")).unwrap();
        write_tree(&staging, &dir).unwrap();
        assert_eq!(std::fs::read(dir.join("boot/kernel")).unwrap(), b"ELF");
        assert_eq!(
            std::fs::read(dir.join("boot/limine/limine.conf")).unwrap(),
            b"timeout: 0\n"
        );
        assert!(!dir.join("stale").exists());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
    }
}
