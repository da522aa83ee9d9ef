//! Boots ISO images from the `iso` format in QEMU: UEFI as a CD and as a disk (through the
//! runner; the GPT side alone with raw QEMU), BIOS El Torito with the 16-bit boot image fixture,
//! and images past the 32 MiB the El Torito sector count can describe. Needs
//! `qemu-system-x86_64` and OVMF (`scripts/install-deps`); fails without them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use image_runner_core::{BootKind, ImagePath, Source, Staging};
use image_runner_image::iso::{IsoOptions, write_iso};
use image_runner_tests::kernels::{self, ISA_DEBUG_EXIT_DEVICE, Kernel, Variant};
use image_runner_tests::runner::Project;
use image_runner_tests::runner_bin;

const QEMU: &str = "qemu-system-x86_64";
const OVMF: &str = "/usr/share/ovmf/OVMF.fd";
/// OVMF boots take 3–8 s under TCG; leave room for slow machines.
const TIMEOUT: Duration = Duration::from_secs(120);

/// How a raw QEMU run ended.
struct Boot {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Boot {
    #[track_caller]
    fn assert_passed(&self, marker: &str) {
        assert!(
            self.status == Some(33)
                && self
                    .stdout
                    .lines()
                    .any(|l| l.trim_end_matches('\r') == marker),
            "expected status 33 and the line {marker:?}; status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

/// Boots `image` in QEMU on q35 with `attach` arguments, serial on stdout, the exit device,
/// and a time limit.
fn boot(attach: &[String]) -> Boot {
    let mut child = Command::new(QEMU)
        .args(["-machine", "q35", "-m", "256M", "-display", "none"])
        .args(["-serial", "stdio", "-monitor", "none", "-no-reboot"])
        .args(["-nic", "none", "-device", ISA_DEBUG_EXIT_DEVICE])
        .args(attach)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {QEMU} (install qemu-system-x86): {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for QEMU") {
            break status.code();
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    Boot {
        status,
        stdout: String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned(),
    }
}

fn drive(image: &Path, cdrom: bool) -> Vec<String> {
    // QEMU option values double their commas.
    let file = image.to_str().expect("UTF-8 path").replace(',', ",,");
    let media = if cdrom { "media=cdrom," } else { "" };
    vec!["-drive".into(), format!("{media}format=raw,file={file}")]
}

fn firmware() -> Vec<String> {
    assert!(
        Path::new(OVMF).is_file(),
        "{OVMF} is missing; install ovmf (scripts/install-deps)"
    );
    vec!["-bios".into(), OVMF.into()]
}

/// Builds the ISO for the EFI application with the runner's `build` command.
fn runner_iso(project: &Project) -> PathBuf {
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    let run = project.run(["build".into(), kernel.into_os_string()], &[]);
    run.assert_code(0);
    let path = PathBuf::from(run.stdout.trim());
    assert!(
        path.extension().is_some_and(|e| e == "iso") && path.is_file(),
        "{run}"
    );
    path
}

/// A staging list with the BIOS boot fixture as the El Torito BIOS image.
fn bios_staging(variant: Variant) -> Staging {
    let mut staging = Staging::new();
    staging
        .add_file(
            "boot/bios-cd.bin",
            Source::File(kernels::path(Kernel::BiosCd, variant)),
        )
        .expect("stage the boot image");
    staging
        .add_file("boot/readme.txt", Source::Bytes(b"hello\n".to_vec()))
        .expect("stage a file");
    staging.hints.bios_cd_image = Some(ImagePath::new("boot/bios-cd.bin").expect("image path"));
    staging.hints.bios_cd_boot_info_table = true;
    staging
}

fn options(boot: BootKind) -> IsoOptions {
    let mut options = IsoOptions::default();
    options.boot = Some(boot);
    options
}

/// A sparse file of `len` bytes (zeros) to make an image large.
fn filler(dir: &Path, len: u64) -> PathBuf {
    let path = dir.join("filler.bin");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(len))
        .expect("create the filler file");
    path
}

#[test]
fn uefi_iso_boots_as_a_cd_through_the_runner() {
    let project = Project::new(runner_bin!(), "format = \"iso\"\n");
    let run = project.run([kernels::path(Kernel::EfiApp, Variant::Pass)], &[]);
    run.assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiApp, Variant::Pass));
    let image = project
        .output_dir(&kernels::path(Kernel::EfiApp, Variant::Pass))
        .join("image.iso");
    assert!(image.is_file(), "{}", image.display());
}

#[test]
fn the_same_iso_boots_as_a_disk_under_ovmf() {
    let project = Project::new(
        runner_bin!(),
        "format = \"iso\"\n[qemu]\nattach = \"disk\"\n",
    );
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    let run = project.run(["--print-cmd".into(), kernel.clone().into_os_string()], &[]);
    run.assert_code(0);
    assert!(!run.stdout.contains("media=cdrom"), "{run}");
    project
        .run([kernel], &[])
        .assert_code(0)
        .assert_serial_line(kernels::marker(Kernel::EfiApp, Variant::Pass));

    // OVMF also reads El Torito from disks; with the boot record broken only the GPT's ESP
    // partition is left to boot from.
    let image = runner_iso(&project);
    let mut bytes = std::fs::read(&image).expect("read the ISO");
    assert_eq!(
        &bytes[17 * 2048 + 1..17 * 2048 + 6],
        b"CD001",
        "boot record at block 17"
    );
    bytes[17 * 2048 + 1..17 * 2048 + 6].fill(0);
    let gpt_only = project.scratch().join("gpt-only.iso");
    std::fs::write(&gpt_only, bytes).expect("write the copy");
    let mut attach = firmware();
    attach.extend(drive(&gpt_only, false));
    boot(&attach).assert_passed(kernels::marker(Kernel::EfiApp, Variant::Pass));
}

#[test]
fn bios_el_torito_boots_the_fixture_with_its_boot_info_table() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let image = dir.path().join("bios.iso");
    let info = write_iso(
        &image,
        &bios_staging(Variant::Pass),
        &options(BootKind::Bios),
    )
    .expect("write the ISO");
    assert!(info.uefi_boot.is_none());
    boot(&drive(&image, true)).assert_passed(kernels::marker(Kernel::BiosCd, Variant::Pass));

    // Without the table the fixture refuses to print and exits with the failure value.
    let mut staging = bios_staging(Variant::Pass);
    staging.hints.bios_cd_boot_info_table = false;
    write_iso(&image, &staging, &options(BootKind::Bios)).expect("write the ISO");
    let run = boot(&drive(&image, true));
    assert_eq!(run.status, Some(35), "{}", run.stdout);
}

#[test]
fn images_over_32_mib_boot_bios_and_uefi() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let image = dir.path().join("big.iso");
    let mut staging = bios_staging(Variant::Pass);
    staging
        .add_file(
            "EFI/BOOT/BOOTX64.EFI",
            Source::File(kernels::path(Kernel::EfiApp, Variant::Pass)),
        )
        .expect("stage the EFI app");
    // Inside the ESP too: an ESP over 32 MiB gets sector count 0 in the catalogue.
    staging
        .add_file("EFI/filler.bin", Source::File(filler(dir.path(), 36 << 20)))
        .expect("stage the filler");
    let info = write_iso(&image, &staging, &options(BootKind::Hybrid)).expect("write the ISO");
    assert!(info.size > 64 << 20, "{info:?}");
    let uefi = info.uefi_boot.expect("a UEFI entry");
    assert!(uefi.len > 32 << 20 && uefi.load_sectors == 0, "{uefi:?}");

    boot(&drive(&image, true)).assert_passed(kernels::marker(Kernel::BiosCd, Variant::Pass));
    let mut attach = firmware();
    attach.extend(drive(&image, true));
    boot(&attach).assert_passed(kernels::marker(Kernel::EfiApp, Variant::Pass));
}
