//! Boots a test kernel with a hand-written QEMU command, without the runner, to check the
//! fixtures themselves and the QEMU setup they need; judges the result by the kernel's line
//! and QEMU's exit status.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::kernels::{self, Kernel, Variant};

/// How long a hanging kernel must stay alive after printing its line.
const HANG_GRACE: Duration = Duration::from_secs(1);

/// How a fixture boot ended.
#[derive(Debug)]
pub struct FixtureRun {
    /// `None` when the test stopped QEMU (a hanging kernel, or the time limit).
    pub status: Option<ExitStatus>,
    /// QEMU was stopped at the time limit.
    pub timed_out: bool,
    /// The guest's serial output.
    pub stdout: String,
    /// QEMU's messages.
    pub stderr: String,
}

impl std::fmt::Display for FixtureRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "status: {:?}, timed out: {}",
            self.status, self.timed_out
        )?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

/// Collects everything a pipe yields, readable while the child still runs.
fn drain(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, thread::JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    let handle = thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("output buffer")
                .extend_from_slice(&chunk[..n]);
        }
    });
    (buf, handle)
}

fn text(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().expect("output buffer")).into_owned()
}

fn has_line(output: &str, line: &str) -> bool {
    output.lines().any(|l| l == line)
}

/// Runs `qemu` (stdio set here) for `variant` of `kernel`. A hanging kernel is stopped once its
/// line has been out for a second; anything still running at `timeout` is stopped too.
pub fn boot_fixture(
    mut qemu: Command,
    kernel: Kernel,
    variant: Variant,
    timeout: Duration,
) -> FixtureRun {
    let program = qemu.get_program().to_string_lossy().into_owned();
    let mut child = qemu
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program} (run scripts/install-deps): {e}"));
    let (stdout, out_thread) = drain(child.stdout.take().expect("piped stdout"));
    let (stderr, err_thread) = drain(child.stderr.take().expect("piped stderr"));
    let marker = kernels::marker(kernel, variant);
    let started = Instant::now();
    let mut marker_seen: Option<Instant> = None;
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().expect("waiting for QEMU") {
            break (Some(status), false);
        }
        if variant == Variant::Hang {
            if marker_seen.is_none() && has_line(&text(&stdout), marker) {
                marker_seen = Some(Instant::now());
            }
            if marker_seen.is_some_and(|t| t.elapsed() >= HANG_GRACE) {
                break (None, false);
            }
        }
        if started.elapsed() >= timeout {
            break (None, true);
        }
        thread::sleep(Duration::from_millis(10));
    };
    if status.is_none() {
        // QEMU has no children of its own here, so killing it is enough.
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = out_thread.join();
    let _ = err_thread.join();
    FixtureRun {
        status,
        timed_out,
        stdout: text(&stdout),
        stderr: text(&stderr),
    }
}

/// The fixture printed its line and ended as its variant says: the expected exit status, or
/// (hang) still running a second after the line.
#[track_caller]
pub fn assert_fixture(run: &FixtureRun, kernel: Kernel, variant: Variant) {
    let marker = kernels::marker(kernel, variant);
    assert!(!run.timed_out, "QEMU did not finish in time:\n{run}");
    assert!(has_line(&run.stdout, marker), "{marker:?} missing: {run}");
    match variant.qemu_exit_status() {
        Some(expected) => assert_eq!(run.status.and_then(|s| s.code()), Some(expected), "{run}"),
        None => assert!(run.status.is_none(), "QEMU exited by itself: {run}"),
    }
}
