//! `bootloader = "limine"` with a real Limine binary release: the Limine-protocol and the
//! multiboot2 test kernels booted from a BIOS CD, BIOS GPT and MBR disks, the ISO attached as a
//! disk (BIOS, and hybrid under UEFI), a UEFI CD and a UEFI GPT disk; and the BIOS stage
//! install compared byte for byte with `limine bios-install` built from the release's
//! `limine.c`.
//!
//! No Limine binaries are reachable from CI, so every test here is ignored. Run them with a
//! repository holding a binary branch (a path or URL; `LIMINE_VERSION` picks the branch, tag or
//! commit, `v8.x-binary` by default):
//!
//! ```text
//! LIMINE_REPO=/path/to/limine.git cargo test -p image-runner-tests --test e2e -- limine_real:: --ignored
//! ```
//!
//! Needs QEMU, OVMF, gdisk and a C compiler (`cc`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use image_runner_core::{BootKind, ImagePath, Source, Staging};
use image_runner_image::disk::{DiskOptions, write_gpt_disk, write_mbr_disk};
use image_runner_image::iso::{IsoOptions, write_iso};
use image_runner_limine::{BiosStages, LimineFiles, LimineSettings};
use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::Project;
use image_runner_tests::runner_bin;

fn repo() -> String {
    std::env::var("LIMINE_REPO")
        .expect("LIMINE_REPO: a path or URL of a Limine repository with its binary branches")
}

fn version() -> String {
    std::env::var("LIMINE_VERSION").unwrap_or_else(|_| "v8.x-binary".into())
}

/// One cache for every test here, so the release is fetched once.
fn shared_cache() -> PathBuf {
    std::env::temp_dir().join("image-runner-limine-real-cache")
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Boots `kernel` (its passing variant) as a test with `config`; checks the marker line and
/// the exit code, and prints how long it took.
fn boots(name: &str, kernel: Kernel, config: &str) {
    let project = Project::new(
        runner_bin!(),
        &format!(
            "bootloader = \"limine\"\n{config}\n[test]\ntimeout = 90\n[limine]\ngit = {}\nversion = {}\n",
            toml_string(&repo()),
            toml_string(&version())
        ),
    );
    let exe = kernels::path(kernel, Variant::Pass);
    let cache = shared_cache();
    let run = project.run(
        ["--test".as_ref(), "-v".as_ref(), exe.as_os_str()],
        &[(
            "CARGO_IMAGE_RUNNER_CACHE",
            cache.to_str().expect("UTF-8 path"),
        )],
    );
    run.assert_code(0)
        .assert_serial_line(kernels::marker(kernel, Variant::Pass));
    println!(
        "limine_real {name}: {:?} passed in {:.2} s",
        kernels::marker(kernel, Variant::Pass),
        run.elapsed.as_secs_f64()
    );
}

macro_rules! boot_tests {
    ($($name:ident: $kernel:expr, $config:expr;)*) => {$(
        #[test]
        #[ignore = "needs a real Limine binary repository: set LIMINE_REPO"]
        fn $name() {
            boots(stringify!($name), $kernel, $config);
        }
    )*};
}

const MB2: &str = "protocol = \"multiboot2\"\n";

boot_tests! {
    limine_bios_cd: Kernel::Limine, "format = \"iso\"\nboot = \"bios\"";
    limine_bios_gpt: Kernel::Limine, "format = \"gpt\"\nboot = \"bios\"";
    limine_bios_mbr: Kernel::Limine, "format = \"mbr\"\nboot = \"bios\"";
    limine_bios_iso_as_disk: Kernel::Limine, "format = \"iso\"\nboot = \"bios\"\nattach = \"disk\"";
    limine_uefi_cd: Kernel::Limine, "format = \"iso\"\nboot = \"uefi\"";
    limine_uefi_gpt: Kernel::Limine, "format = \"gpt\"\nboot = \"uefi\"";
    limine_hybrid_iso_as_disk: Kernel::Limine, "format = \"iso\"\nboot = \"hybrid\"\nattach = \"disk\"";
    multiboot2_bios_cd: Kernel::Multiboot, &format!("{MB2}format = \"iso\"\nboot = \"bios\"");
    multiboot2_bios_gpt: Kernel::Multiboot, &format!("{MB2}format = \"gpt\"\nboot = \"bios\"");
    multiboot2_bios_mbr: Kernel::Multiboot, &format!("{MB2}format = \"mbr\"\nboot = \"bios\"");
    multiboot2_bios_iso_as_disk: Kernel::Multiboot, &format!("{MB2}format = \"iso\"\nboot = \"bios\"\nattach = \"disk\"");
    multiboot2_uefi_cd: Kernel::Multiboot, &format!("{MB2}format = \"iso\"\nboot = \"uefi\"");
    multiboot2_uefi_gpt: Kernel::Multiboot, &format!("{MB2}format = \"gpt\"\nboot = \"uefi\"");
    multiboot2_hybrid_iso_as_disk: Kernel::Multiboot, &format!("{MB2}format = \"iso\"\nboot = \"hybrid\"\nattach = \"disk\"");
}

/// The release, through plugin-limine's own acquisition.
fn release() -> LimineFiles {
    let mut settings = LimineSettings::new(shared_cache());
    settings.git = repo();
    settings.version = version();
    image_runner_limine::acquire(&settings).expect("fetch Limine from LIMINE_REPO")
}

/// Builds the release's host tool as its Makefile does (`cc ... -std=c99 limine.c`), in
/// `dir`, from copies of `limine.c` and the stages header it includes.
fn build_tool(files: &LimineFiles, dir: &Path) -> PathBuf {
    for name in ["limine.c", image_runner_limine::HDD_STAGES_FILE] {
        std::fs::copy(files.dir.join(name), dir.join(name)).expect("copy the tool's sources");
    }
    let tool = dir.join("limine");
    let status = Command::new("cc")
        .args(["-O2", "-pipe", "-std=c99", "limine.c", "-o"])
        .arg(&tool)
        .current_dir(dir)
        .status()
        .expect("run cc; install a C compiler");
    assert!(status.success(), "building limine.c failed");
    tool
}

fn staging() -> Staging {
    let mut staging = Staging::new();
    for (path, bytes) in [
        ("boot/kernel", vec![0x4B; 100_000]),
        ("boot/limine/limine.conf", b"timeout: 0\n".to_vec()),
        ("boot/limine/limine-bios-cd.bin", vec![0xCD; 4096]),
        ("EFI/BOOT/BOOTX64.EFI", b"BOOTX64".to_vec()),
    ] {
        staging
            .add_file(path, Source::Bytes(bytes))
            .expect("stage a file");
    }
    staging.hints.bios_cd_image =
        Some(ImagePath::new("boot/limine/limine-bios-cd.bin").expect("a path"));
    staging.hints.bios_cd_boot_info_table = true;
    staging
}

fn sgdisk(image: &Path, args: &[&str]) {
    let status = Command::new("sgdisk")
        .args(args)
        .arg(image)
        .output()
        .expect("run sgdisk; install gdisk");
    assert!(status.status.success(), "sgdisk {args:?}: {status:?}");
}

/// The images both installers get: `(name, image)`.
fn images(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut out = Vec::new();
    let disk = |boot| {
        let mut opts = DiskOptions::default();
        opts.boot = boot;
        opts
    };
    for (name, boot) in [
        ("gpt-bios", BootKind::Bios),
        ("gpt-hybrid", BootKind::Hybrid),
        ("gpt-uefi", BootKind::Uefi),
    ] {
        let path = dir.join(format!("{name}.img"));
        write_gpt_disk(&path, &staging(), &disk(boot)).expect("write a GPT disk");
        out.push((name, path));
    }
    for (name, boot) in [("mbr-bios", BootKind::Bios), ("mbr-uefi", BootKind::Uefi)] {
        let path = dir.join(format!("{name}.img"));
        write_mbr_disk(&path, &staging(), &disk(boot)).expect("write an MBR disk");
        out.push((name, path));
    }
    for (name, boot) in [
        ("iso-bios", BootKind::Bios),
        ("iso-hybrid", BootKind::Hybrid),
    ] {
        let path = dir.join(format!("{name}.iso"));
        let mut opts = IsoOptions::default();
        opts.boot = Some(boot);
        write_iso(&path, &staging(), &opts).expect("write an ISO");
        out.push((name, path));
    }
    // Disks sgdisk partitions: entries in slots 1 to 3, and one in slot 60 (which leaves no
    // room for stage 2 in the entry array).
    let path = dir.join("gpt-sgdisk.img");
    std::fs::write(&path, vec![0u8; 8 << 20]).expect("write a blank disk");
    sgdisk(
        &path,
        &["-o", "-n", "1:2048:+1M", "-n", "2:0:+1M", "-n", "3:0:+1M"],
    );
    out.push(("gpt-sgdisk", path));
    let path = dir.join("gpt-slot-60.img");
    std::fs::write(&path, vec![0u8; 8 << 20]).expect("write a blank disk");
    sgdisk(&path, &["-o", "-n", "60:2048:+1M"]);
    out.push(("gpt-slot-60 (refused)", path));
    // An MBR whose partition starts at LBA 1, and a bare FAT volume.
    let path = dir.join("mbr-lba1.img");
    let mut bytes = std::fs::read(dir.join("mbr-bios.img")).expect("read the MBR disk");
    bytes[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(&path, bytes).expect("write a disk");
    out.push(("mbr-lba1 (refused)", path));
    let path = dir.join("bare.fat");
    image_runner_image::fat::write_fat_file(&path, &staging(), &Default::default())
        .expect("write a FAT volume");
    out.push(("bare-fat (refused)", path));
    out
}

#[test]
#[ignore = "needs a real Limine binary repository: set LIMINE_REPO"]
fn bios_install_matches_limine_bios_install_byte_for_byte() {
    let files = release();
    println!("limine_real: comparing with {files}");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let tool = build_tool(&files, dir.path());
    let stages = BiosStages::load(&files).expect("read limine-bios-hdd.h");
    for (name, image) in images(dir.path()) {
        let theirs = image.with_extension("theirs");
        let ours = image.with_extension("ours");
        std::fs::copy(&image, &theirs).expect("copy the image");
        std::fs::copy(&image, &ours).expect("copy the image");
        let original = std::fs::read(&image).expect("read the image");

        let start = Instant::now();
        let output = Command::new(&tool)
            .arg("bios-install")
            .arg(&theirs)
            .output()
            .expect("run limine bios-install");
        let c_time = start.elapsed();
        let start = Instant::now();
        let result = image_runner_limine::install::install_file(&ours, &stages);
        let rust_time = start.elapsed();
        let theirs_bytes = std::fs::read(&theirs).expect("read back");
        let ours_bytes = std::fs::read(&ours).expect("read back");
        let c_said = String::from_utf8_lossy(&output.stderr);
        match (output.status.success(), &result) {
            (true, Ok(installed)) => {
                assert!(
                    theirs_bytes == ours_bytes,
                    "{name}: the images differ (first at byte {:?})\nlimine said:\n{c_said}",
                    theirs_bytes
                        .iter()
                        .zip(&ours_bytes)
                        .position(|(a, b)| a != b)
                );
                println!(
                    "limine_real {name}: identical ({:?}; C {:.1} ms, Rust {:.1} ms)",
                    installed,
                    c_time.as_secs_f64() * 1e3,
                    rust_time.as_secs_f64() * 1e3
                );
            }
            (false, Err(e)) => {
                assert!(
                    theirs_bytes == original,
                    "{name}: limine left changes behind"
                );
                assert!(
                    ours_bytes == original,
                    "{name}: a refusal changed the image"
                );
                println!(
                    "limine_real {name}: both refuse; limine: {:?}; ours: {e}",
                    c_said
                        .lines()
                        .find(|l| l.contains("error"))
                        .unwrap_or_default()
                );
            }
            (c_ok, _) => panic!(
                "{name}: limine bios-install {} but ours {:?}\nlimine said:\n{c_said}",
                if c_ok { "succeeded" } else { "failed" },
                result
            ),
        }
    }
}
