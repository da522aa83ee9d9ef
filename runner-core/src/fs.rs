//! File-system rules every plugin follows: outputs appear atomically (temp name, then rename).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Writes `path` through `write` on a temporary file in the same directory and renames it into
/// place only when `write` succeeded, so no reader ever sees a half-written file. The temporary
/// file is removed on failure.
pub fn write_atomic<T>(
    path: &Path,
    write: impl FnOnce(&mut File, &Path) -> Result<T, Error>,
) -> Result<T, Error> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create the directory", dir, e))?;
    let temp = temp_path(path);
    let result = File::create(&temp)
        .map_err(|e| Error::io("create", &temp, e))
        .and_then(|mut file| write(&mut file, &temp));
    match result {
        Ok(value) => {
            std::fs::rename(&temp, path).map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                Error::io("rename a finished file into", path, e)
            })?;
            Ok(value)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// A sibling name unique to this process: `.<name>.tmp-<pid>`.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Copies `from` to `to` atomically.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<(), Error> {
    write_atomic(to, |file, _| {
        let mut source = File::open(from).map_err(|e| Error::io("open", from, e))?;
        std::io::copy(&mut source, file).map_err(|e| Error::io("copy", from, e))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn failed_writes_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("image.fat");
        let err = write_atomic(&target, |file, _| {
            file.write_all(b"half").unwrap();
            Err::<(), _>(Error::plugin("test", "interrupted"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        write_atomic(&target, |file, _| {
            file.write_all(b"whole")
                .map_err(|e| Error::io("write", "x", e))
        })
        .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
