//! File-system rules every plugin follows: outputs appear atomically (temp name, then rename),
//! and no temporary outlives the process that wrote it.
//!
//! Temporaries are named `.<name>.tmp-<pid>` beside their destination. While a process writes
//! one, it is listed here, so a signal handler can remove it before the process ends
//! ([`exit_removing_temporaries`]); one left by a process that was killed outright is removed
//! by the next build in that folder ([`remove_stale_temporaries`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::Error;

/// Temporaries this process is writing.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> MutexGuard<'static, Vec<PathBuf>> {
    PENDING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A temporary listed in the process-wide table of pending temporaries for as long as this value lives.
#[derive(Debug)]
pub struct PendingTemporary {
    path: PathBuf,
}

impl PendingTemporary {
    /// Lists `path` (a file or folder about to be written) for removal should the process be
    /// interrupted.
    pub fn register(path: &Path) -> PendingTemporary {
        pending().push(path.to_path_buf());
        PendingTemporary {
            path: path.to_path_buf(),
        }
    }

    /// Runs `publish` (typically the rename into place) so that it cannot interleave with
    /// [`exit_removing_temporaries`]: either it completes before the temporaries are removed,
    /// or it never starts.
    pub fn publish<T>(&self, publish: impl FnOnce() -> T) -> T {
        let _list = pending();
        publish()
    }
}

impl Drop for PendingTemporary {
    fn drop(&mut self) {
        let mut list = pending();
        if let Some(at) = list.iter().rposition(|p| *p == self.path) {
            list.swap_remove(at);
        }
    }
}

/// Removes every temporary this process is writing and ends the process with `code`. No
/// temporary is published after it starts. For signal handlers (the CLI calls it on SIGINT,
/// SIGTERM and SIGHUP while it builds); never returns.
pub fn exit_removing_temporaries(code: i32) -> ! {
    // The list stays locked until the process is gone, so no write publishes meanwhile.
    let list = pending();
    for path in list.iter() {
        remove_any(path);
    }
    std::process::exit(code)
}

fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            // A writer may still be adding files: move the tree out of its way first.
            let doomed = path.with_file_name(format!(
                "{}.removing",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            let target = if std::fs::rename(path, &doomed).is_ok() {
                doomed
            } else {
                path.to_path_buf()
            };
            let _ = std::fs::remove_dir_all(&target);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Removes the temporaries in `dir` (`.<name>.tmp-<pid>`, files or folders) whose process is
/// gone: what a build killed outright (SIGKILL, a power cut) left. Those of running processes,
/// including this one, are kept. Returns what was removed. Errors are ignored: this is
/// housekeeping.
pub fn remove_stale_temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temporary_owner) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let path = entry.path();
            remove_any(&path);
            removed.push(path);
        }
    }
    removed
}

/// The PID in a temporary's name `.<name>.tmp-<pid>` (or `.<name>.tmp-<pid>.removing`).
fn temporary_owner(name: &str) -> Option<u32> {
    let name = name.strip_suffix(".removing").unwrap_or(name);
    let rest = name.strip_prefix('.')?;
    let (stem, pid) = rest.rsplit_once(".tmp-")?;
    if stem.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` exists (a PID reused since counts as alive: the temporary is kept).
#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Without a way to ask, every owner is taken to be alive.
#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    true
}

/// Writes `path` through `write` on a temporary file in the same directory and renames it into
/// place only when `write` succeeded, so no reader ever sees a half-written file. The temporary
/// file is removed on failure, and on a signal when the process uses
/// [`exit_removing_temporaries`].
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
    let registered = PendingTemporary::register(&temp);
    let result = File::create(&temp)
        .map_err(|e| Error::io("create", &temp, e))
        .and_then(|mut file| write(&mut file, &temp));
    match result {
        Ok(value) => {
            registered
                .publish(|| std::fs::rename(&temp, path))
                .map_err(|e| {
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

    #[test]
    fn temporary_names_carry_their_owner() {
        assert_eq!(temporary_owner(".image.fat.tmp-42"), Some(42));
        assert_eq!(temporary_owner(".image.tmp-7.removing"), Some(7));
        assert_eq!(temporary_owner(".image.fat.tmp-"), None);
        assert_eq!(temporary_owner("image.fat.tmp-42"), None);
        assert_eq!(temporary_owner(".image.fat.tmp-4x"), None);
        assert_eq!(temporary_owner("..tmp-42"), None);
        let ours = temp_path(Path::new("/o/image.iso"));
        let name = ours.file_name().unwrap().to_str().unwrap();
        assert_eq!(temporary_owner(name), Some(std::process::id()));
    }

    #[test]
    fn stale_temporaries_of_dead_processes_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale_file = dir.path().join(format!(".image.fat.tmp-{dead}"));
        std::fs::write(&stale_file, b"half").unwrap();
        let stale_dir = dir.path().join(format!(".image.tmp-{dead}"));
        std::fs::create_dir_all(stale_dir.join("EFI/BOOT")).unwrap();
        let ours = temp_path(&dir.path().join("image.iso"));
        std::fs::write(&ours, b"being written").unwrap();
        let init = dir.path().join(".image.gpt.tmp-1");
        std::fs::write(&init, b"pid 1 is alive").unwrap();
        let plain = dir.path().join("image.fat");
        std::fs::write(&plain, b"published").unwrap();

        let mut removed = remove_stale_temporaries(dir.path());
        removed.sort();
        let mut expected = vec![stale_file.clone(), stale_dir.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(!stale_file.exists() && !stale_dir.exists());
        assert!(ours.exists() && init.exists() && plain.exists());
    }

    #[test]
    fn pending_temporaries_are_listed_while_written() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("listed.img");
        let temp = temp_path(&target);
        write_atomic(&target, |_, _| {
            assert!(pending().contains(&temp));
            Ok(())
        })
        .unwrap();
        assert!(!pending().contains(&temp));
    }
}
