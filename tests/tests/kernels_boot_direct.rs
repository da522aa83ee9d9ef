//! Boots the Multiboot test kernel with QEMU's own `-kernel` loader, without
//! the runner: checks the fixtures themselves and the QEMU setup they need.
//! Needs `qemu-system-x86_64` (`.ci/run` installs it); fails without it.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use image_runner_tests::kernels::{self, ISA_DEBUG_EXIT_DEVICE, Kernel, Variant};

const QEMU: &str = "qemu-system-x86_64";
/// Generous: the boot takes ~0.2 s under TCG, but CI machines can be slow.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long a hanging kernel must stay alive after printing its line.
const HANG_GRACE: Duration = Duration::from_secs(1);

struct Run {
    /// `None` when the host killed QEMU.
    status: Option<ExitStatus>,
    timed_out: bool,
    stdout: String,
    stderr: String,
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

fn has_line(output: &[u8], line: &str) -> bool {
    String::from_utf8_lossy(output).lines().any(|l| l == line)
}

/// Boots `variant` of the Multiboot kernel. With `hang_marker`, stops QEMU
/// once that line has been on stdout for [`HANG_GRACE`].
fn boot(variant: Variant, hang_marker: Option<&str>) -> Run {
    let kernel = kernels::path(Kernel::Multiboot, variant);
    let spawned = Command::new(QEMU)
        .args(["-machine", "q35", "-kernel"])
        .arg(&kernel)
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .args([
            "-no-reboot",
            "-nic",
            "none",
            "-device",
            ISA_DEBUG_EXIT_DEVICE,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => panic!("cannot start {QEMU} (install qemu-system-x86): {e}"),
    };
    let (stdout, out_thread) = drain(child.stdout.take().expect("piped stdout"));
    let (stderr, err_thread) = drain(child.stderr.take().expect("piped stderr"));

    let started = Instant::now();
    let mut marker_seen: Option<Instant> = None;
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().expect("waiting for QEMU") {
            break (Some(status), false);
        }
        if let Some(line) = hang_marker {
            if marker_seen.is_none() && has_line(&stdout.lock().expect("stdout"), line) {
                marker_seen = Some(Instant::now());
            }
            if marker_seen.is_some_and(|t| t.elapsed() >= HANG_GRACE) {
                break (None, false);
            }
        }
        if started.elapsed() >= TIMEOUT {
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

    let text = |buf: &Arc<Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&buf.lock().expect("output buffer")).into_owned()
    };
    Run {
        status,
        timed_out,
        stdout: text(&stdout),
        stderr: text(&stderr),
    }
}

impl std::fmt::Display for Run {
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

fn assert_exits_with(variant: Variant) {
    let run = boot(variant, None);
    assert!(
        !run.timed_out,
        "QEMU did not exit within {TIMEOUT:?}:\n{run}"
    );
    let expected = variant.qemu_exit_status().expect("variant that exits");
    assert_eq!(run.status.and_then(|s| s.code()), Some(expected), "{run}");
    let marker = kernels::marker(Kernel::Multiboot, variant);
    assert!(
        has_line(run.stdout.as_bytes(), marker),
        "{marker:?} missing: {run}"
    );
}

#[test]
fn multiboot_pass_exits_33() {
    assert_exits_with(Variant::Pass);
}

#[test]
fn multiboot_fail_exits_35() {
    assert_exits_with(Variant::Fail);
}

#[test]
fn multiboot_hang_prints_then_keeps_running() {
    let marker = kernels::marker(Kernel::Multiboot, Variant::Hang);
    let run = boot(Variant::Hang, Some(marker));
    assert!(
        !run.timed_out,
        "{marker:?} not printed within {TIMEOUT:?}:\n{run}"
    );
    assert!(run.status.is_none(), "QEMU exited by itself: {run}");
    assert!(has_line(run.stdout.as_bytes(), marker), "{run}");
}
