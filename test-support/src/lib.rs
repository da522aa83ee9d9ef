//! Helpers shared by the tests of this workspace's crates. A dev-dependency only: nothing the
//! tool ships depends on it.
//!
//! [`fake_tool`] writes a stand-in program (a fake `grub-mkimage`, a QEMU wrapper) that a test
//! then runs, without the "Text file busy" failures of the obvious `fs::write` + `chmod`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Writes `script` (starting with its `#!` line) as the executable file `path`, replacing any
/// file there atomically, in a way that cannot make a later exec of it fail with `ETXTBSY`.
///
/// Why not `fs::write` then `chmod`: test binaries run tests on several threads. If another
/// thread forks (to run any program) while this one holds the file open for writing, the child
/// inherits that descriptor until its own exec; an exec of the script in that window fails
/// with "Text file busy". Here the file is written by a separate `sh` process, so the test
/// process never holds a writable descriptor to it, and it is moved into place with `mv`
/// (a rename), so a program already running the old file is not disturbed either.
///
/// # Panics
/// When `sh` cannot be run or fails: a test helper, it fails the test with the reason.
#[track_caller]
pub fn fake_tool(path: &Path, script: &str) {
    assert!(
        script.starts_with("#!"),
        "a fake tool needs its interpreter line, `#!/bin/sh` say: {script:?}"
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"tmp="$1.new-$$" && cat > "$tmp" && chmod 755 "$tmp" && mv -f "$tmp" "$1""#)
        .arg("fake_tool")
        .arg(path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not run `sh` to write {}: {e}", path.display()));
    let mut stdin = child.stdin.take().expect("a piped stdin");
    stdin
        .write_all(script.as_bytes())
        .unwrap_or_else(|e| panic!("could not write {}: {e}", path.display()));
    drop(stdin);
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("could not wait for `sh` writing {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "writing the fake tool {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The modification time of `path`.
///
/// # Panics
/// When it cannot be read: a test helper, it fails the test with the reason.
#[track_caller]
pub fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("read the modification time of {}: {e}", path.display()))
}

/// Sets the modification time of `path` to `time` and checks that it took: tests force the
/// time a condition needs instead of sleeping until a coarse file-system clock moves.
///
/// # Panics
/// When the time cannot be set, or reads back different.
#[track_caller]
pub fn set_mtime(path: &Path, time: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(time))
        .unwrap_or_else(|e| panic!("set the modification time of {}: {e}", path.display()));
    assert_eq!(
        mtime(path),
        time,
        "the modification time of {} did not take",
        path.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fake_tool_runs_and_can_be_replaced_while_others_fork() {
        let dir = std::env::temp_dir().join(format!("fake-tool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        let tool = dir.join("tool");
        // Other threads fork all the time, as parallel tests do.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let forkers: Vec<_> = (0..4)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = Command::new("true").status();
                    }
                })
            })
            .collect();
        for round in 0..100 {
            fake_tool(&tool, &format!("#!/bin/sh\necho {round}\n"));
            let out = Command::new(&tool).output().expect("run the fake tool");
            assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{round}\n"));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for f in forkers {
            f.join().expect("a forking thread");
        }
        let left: Vec<_> = std::fs::read_dir(&dir)
            .expect("list the scratch folder")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("tool")],
            "no temporary files left"
        );
        std::fs::remove_dir_all(&dir).expect("remove the scratch folder");
    }

    /// Every test that writes a program and runs it goes through [`fake_tool`]: no other
    /// `.rs` file of the workspace makes a file executable, except the ones listed here with
    /// the reason.
    #[test]
    fn no_test_writes_an_executable_by_hand() {
        const ALLOWED: &[(&str, &str)] = &[(
            "plugin-limine/src/fetch.rs",
            "keeps the mode of files taken out of git; the runner never executes them",
        )];
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace root");
        let mut found = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir)
                .expect("list a workspace folder")
                .flatten()
            {
                let path = entry.path();
                let name = entry.file_name();
                if path.is_dir() {
                    if name != "target" && name != ".git" {
                        dirs.push(path);
                    }
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let relative = path.strip_prefix(root).expect("inside the workspace");
                if relative.starts_with("test-support")
                    || ALLOWED.iter().any(|(p, _)| relative == Path::new(p))
                {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if text.contains(concat!("from_mode(0o7", "55)"))
                    || text.contains(concat!("PermissionsExt::set", "_mode("))
                {
                    found.push(relative.display().to_string());
                }
            }
        }
        assert!(
            found.is_empty(),
            "these files make a file executable by hand; write stand-in programs with \
             image_runner_test_support::fake_tool instead (no \"Text file busy\" races): {found:?}"
        );
    }
}
