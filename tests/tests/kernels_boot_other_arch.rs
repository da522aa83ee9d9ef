//! Boots the aarch64 and riscv64 test kernels with plain QEMU, without the
//! runner: checks the fixtures themselves and the QEMU setup they need.
//! Needs `qemu-system-aarch64` with AAVMF (`qemu-system-arm`,
//! `qemu-efi-aarch64`) and `qemu-system-riscv64` (`qemu-system-misc`);
//! `scripts/install-deps` installs them. Fails without them.

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use image_runner_tests::kernels::{self, AARCH64_SEMIHOSTING_CONFIG, Kernel, Variant};

const AAVMF_CODE: &str = "/usr/share/AAVMF/AAVMF_CODE.fd";
const AAVMF_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.fd";
/// Generous: AAVMF takes ~1 s and OpenSBI ~0.1 s under TCG, but CI
/// machines can be slow.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How long a hanging kernel must stay alive after printing its line.
const HANG_GRACE: Duration = Duration::from_secs(1);

struct Run {
    /// `None` when the host killed QEMU.
    status: Option<ExitStatus>,
    timed_out: bool,
    stdout: String,
    stderr: String,
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

fn has_line(output: &str, line: &str) -> bool {
    output.lines().any(|l| l == line)
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

/// The QEMU command booting `variant` of `kernel`; files go into `scratch`.
fn qemu(kernel: Kernel, variant: Variant, scratch: &Path) -> Command {
    let image = kernels::path(kernel, variant);
    let mut qemu = Command::new(kernel.qemu_program());
    qemu.args(["-machine", "virt", "-m", "256M"]);
    match kernel {
        Kernel::EfiAppAa64 => {
            // The removable-media path on a vvfat disk, and a fresh VARS
            // copy per run (the firmware writes boot entries into it).
            let boot_dir = scratch.join("esp/EFI/BOOT");
            std::fs::create_dir_all(&boot_dir).expect("create the ESP tree");
            std::fs::copy(&image, boot_dir.join("BOOTAA64.EFI")).expect("copy the app");
            let vars = scratch.join("AAVMF_VARS.fd");
            std::fs::copy(AAVMF_VARS, &vars)
                .unwrap_or_else(|e| panic!("{AAVMF_VARS} (install qemu-efi-aarch64): {e}"));
            let escape = |p: &Path| p.display().to_string().replace(',', ",,");
            qemu.args(["-cpu", "max", "-drive"])
                .arg(format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={AAVMF_CODE}"
                ))
                .arg("-drive")
                .arg(format!(
                    "if=pflash,format=raw,unit=1,file={}",
                    escape(&vars)
                ))
                .arg("-drive")
                .arg(format!(
                    "if=none,id=esp,format=raw,file=fat:rw:{}",
                    escape(&scratch.join("esp"))
                ))
                .args(["-device", "virtio-blk-pci,drive=esp"])
                .args(["-semihosting-config", AARCH64_SEMIHOSTING_CONFIG])
                // Skips AAVMF's 5-second wait for a key before booting.
                .args(["-boot", "menu=on,splash-time=0"]);
        }
        Kernel::Riscv64 => {
            qemu.args(["-bios", "default", "-kernel"]).arg(&image);
        }
        other => panic!("{other:?} is booted by kernels_boot_direct.rs"),
    }
    qemu.args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .args(["-no-reboot", "-nic", "none"]);
    qemu
}

/// Boots `variant` of `kernel`. For [`Variant::Hang`], stops QEMU once the
/// kernel's line has been on stdout for [`HANG_GRACE`].
fn boot(kernel: Kernel, variant: Variant) -> Run {
    let scratch = tempfile::tempdir().expect("scratch directory");
    let program = kernel.qemu_program();
    let mut child = qemu(kernel, variant, scratch.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program} (run scripts/install-deps): {e}"));
    let (stdout, out_thread) = drain(child.stdout.take().expect("piped stdout"));
    let (stderr, err_thread) = drain(child.stderr.take().expect("piped stderr"));
    let text = |buf: &Arc<Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&buf.lock().expect("output buffer")).into_owned()
    };

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
    Run {
        status,
        timed_out,
        stdout: text(&stdout),
        stderr: text(&stderr),
    }
}

fn assert_boots(kernel: Kernel, variant: Variant) {
    let run = boot(kernel, variant);
    let marker = kernels::marker(kernel, variant);
    assert!(
        !run.timed_out,
        "QEMU did not finish within {TIMEOUT:?}:\n{run}"
    );
    assert!(has_line(&run.stdout, marker), "{marker:?} missing: {run}");
    match variant.qemu_exit_status() {
        Some(expected) => assert_eq!(run.status.and_then(|s| s.code()), Some(expected), "{run}"),
        None => assert!(run.status.is_none(), "QEMU exited by itself: {run}"),
    }
}

#[test]
fn efi_app_aa64_pass_exits_33() {
    assert_boots(Kernel::EfiAppAa64, Variant::Pass);
}

#[test]
fn efi_app_aa64_fail_exits_35() {
    assert_boots(Kernel::EfiAppAa64, Variant::Fail);
}

#[test]
fn efi_app_aa64_hang_prints_then_keeps_running() {
    assert_boots(Kernel::EfiAppAa64, Variant::Hang);
}

#[test]
fn riscv64_pass_exits_33() {
    assert_boots(Kernel::Riscv64, Variant::Pass);
}

#[test]
fn riscv64_fail_exits_35() {
    assert_boots(Kernel::Riscv64, Variant::Fail);
}

#[test]
fn riscv64_hang_prints_then_keeps_running() {
    assert_boots(Kernel::Riscv64, Variant::Hang);
}
