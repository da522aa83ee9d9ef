//! ISO images read back by tools that share no code with the writer: xorriso/osirrox (El
//! Torito, system area, extraction), isoinfo (Rock Ridge and Joliet names) and sgdisk (GPT).
//! Also reproducibility and bad input, through the runner and the library. Needs `xorriso`,
//! `genisoimage` and `gdisk` (`scripts/install-deps`); fails without them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use image_runner_core::{BootKind, ImagePath, Source, Staging};
use image_runner_image::iso::{IsoOptions, write_iso};
use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::Project;
use image_runner_tests::runner_bin;
use image_runner_tests::tools::check;

/// Runs a checker that must succeed.
#[track_caller]
fn tool(program: &str, args: &[&str]) -> String {
    check(
        program,
        "xorriso, genisoimage and gdisk (scripts/install-deps)",
        args,
    )
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

fn el_torito_report(iso: &Path) -> String {
    tool(
        "xorriso",
        &[
            "-indev",
            arg(iso),
            "-report_el_torito",
            "plain",
            "-report_system_area",
            "plain",
        ],
    )
}

fn assert_gpt_clean(iso: &Path) {
    let text = tool("sgdisk", &["-v", arg(iso)]);
    assert!(text.contains("No problems found"), "{text}");
}

/// Extracts the whole tree with osirrox (Rock Ridge names) into `dir`.
fn extract(iso: &Path, dir: &Path) {
    tool("osirrox", &["-indev", arg(iso), "-extract", "/", arg(dir)]);
}

const LONG_NAME_BYTES: usize = 200;

fn long_name() -> String {
    format!("{}.conf", "n".repeat(LONG_NAME_BYTES - 5))
}

/// Files with names each namespace has to work on, and the BIOS fixture as boot image.
fn awkward_staging(dir: &Path) -> Staging {
    let mut staging = Staging::new();
    let mut add = |path: &str, bytes: &[u8]| {
        staging
            .add_file(path, Source::Bytes(bytes.to_vec()))
            .expect("stage a file");
    };
    add("boot/limine/limine.conf", b"timeout: 0\n");
    add("boot/Kernel.ELF", b"upper");
    add("boot/kernel.elf", b"lower");
    add(&format!("boot/{}", long_name()), b"long");
    add("docs/Unicode – ünïcødé 🦀.txt", "crab 🦀\n".as_bytes());
    add("docs/a.b.c.d", b"dots");
    add("docs/empty", b"");
    add(
        "EFI/BOOT/BOOTX64.EFI",
        &std::fs::read(kernels::path(Kernel::EfiApp, Variant::Pass)).expect("EFI app"),
    );
    let kernel = dir.join("kernel.bin");
    std::fs::write(
        &kernel,
        (0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .expect("write a kernel");
    staging
        .add_file("boot/kernel.bin", Source::File(kernel))
        .expect("stage the kernel");
    staging
        .add_file(
            "boot/bios-cd.bin",
            Source::File(kernels::path(Kernel::BiosCd, Variant::Pass)),
        )
        .expect("stage the boot image");
    staging.hints.bios_cd_image = Some(ImagePath::new("boot/bios-cd.bin").expect("path"));
    staging.hints.bios_cd_boot_info_table = true;
    staging
}

fn hybrid() -> IsoOptions {
    let mut options = IsoOptions::default();
    options.boot = Some(BootKind::Hybrid);
    options
}

#[test]
fn the_runner_iso_reads_back_with_independent_tools() {
    let project = Project::new(
        runner_bin!(),
        "format = \"iso\"\n[image]\nlabel = \"my_kernel\"\n",
    );
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    let run = project.run(["build".into(), kernel.clone().into_os_string()], &[]);
    run.assert_code(0);
    let iso = PathBuf::from(run.stdout.trim());

    let report = el_torito_report(&iso);
    assert!(report.contains("Volume id    : 'MY_KERNEL'"), "{report}");
    let uefi = report
        .lines()
        .find(|l| l.starts_with("El Torito boot img :   1  UEFI  y   none"))
        .unwrap_or_else(|| panic!("no UEFI entry:\n{report}"));
    assert!(
        !report.contains("BIOS  y"),
        "a UEFI boot has no BIOS entry:\n{report}"
    );
    assert!(uefi.contains("0x0000"), "{uefi}");
    assert!(
        report.contains("MBR partition      :   1   0x00  0xee            1"),
        "{report}"
    );
    assert!(
        report.contains("GPT partname local :   2  EFI System"),
        "{report}"
    );
    assert_gpt_clean(&iso);

    let listing = tool("isoinfo", &["-R", "-l", "-i", arg(&iso)]);
    assert!(listing.contains("BOOTX64.EFI"), "{listing}");
    let out = project.scratch().join("extracted");
    extract(&iso, &out);
    assert!(
        std::fs::read(out.join("EFI/BOOT/BOOTX64.EFI")).expect("extracted app")
            == std::fs::read(&kernel).expect("kernel"),
        "the extracted EFI app differs"
    );
}

#[test]
fn names_contents_and_boot_entries_survive_in_every_reader() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let staging = awkward_staging(dir.path());
    let iso = dir.path().join("awkward.iso");
    let info = write_iso(&iso, &staging, &hybrid()).expect("write the ISO");

    // Rock Ridge: every original name.
    let rock_ridge = tool("isoinfo", &["-R", "-l", "-i", arg(&iso)]);
    for name in [
        "Kernel.ELF",
        "kernel.elf",
        "limine.conf",
        "a.b.c.d",
        "Unicode – ünïcødé 🦀.txt",
        &long_name(),
    ] {
        assert!(
            rock_ridge.contains(name),
            "Rock Ridge lacks {name:?}:\n{rock_ridge}"
        );
    }
    // Joliet: case kept, names unique ignoring case (as Windows looks them up), within 64
    // UCS-2 characters: the long one shortened.
    let joliet = tool("isoinfo", &["-J", "-l", "-i", arg(&iso)]);
    for name in ["Kernel.ELF;1", "kernel_1.elf;1", "limine.conf", "a.b.c.d"] {
        assert!(joliet.contains(name), "Joliet lacks {name:?}:\n{joliet}");
    }
    assert!(!joliet.contains(&long_name()), "{joliet}");
    assert!(
        joliet.contains(&format!("{}.conf", "n".repeat(57))),
        "{joliet}"
    );
    // Plain ISO 9660: d-characters, unique after upper-casing.
    let plain = tool("isoinfo", &["-l", "-i", arg(&iso)]);
    for id in [
        "KERNEL.ELF;1",
        "KERNEL_1.ELF;1",
        "A_B_C.D;1",
        "LIMINE.CONF;1",
    ] {
        assert!(plain.contains(id), "ISO 9660 lacks {id}:\n{plain}");
    }

    // Exact contents back (the boot image with its boot info table patched in).
    let out = dir.path().join("out");
    extract(&iso, &out);
    for (path, source) in &staging.entries {
        let got = std::fs::read(out.join(path.as_str()))
            .unwrap_or_else(|e| panic!("{path} not extracted: {e}"));
        let mut want = source.read().expect("source");
        if Some(path) == staging.hints.bios_cd_image.as_ref() {
            assert_eq!(
                &got[8..12],
                &16u32.to_le_bytes(),
                "boot info table PVD block"
            );
            want[8..64].copy_from_slice(&got[8..64]);
        }
        assert!(got == want, "{path} differs after extraction");
    }

    let report = el_torito_report(&iso);
    let bios = info.bios_boot.expect("BIOS entry");
    let uefi = info.uefi_boot.expect("UEFI entry");
    assert!(
        report.contains(&format!(
            "El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4 {:>11}",
            bios.lba
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "UEFI  y   none  0x0000  0x00 {:>6}",
            uefi.load_sectors
        )),
        "{report}"
    );
    assert!(
        report.contains("El Torito img path :   1  /boot/bios-cd.bin"),
        "{report}"
    );
    assert!(
        report.contains("El Torito img opts :   1  boot-info-table"),
        "{report}"
    );
    assert_gpt_clean(&iso);
    let table = tool("sgdisk", &["-p", arg(&iso)]);
    assert!(
        table.contains("ISO9660") && table.contains("EF00"),
        "{table}"
    );
}

#[test]
fn the_same_input_gives_the_same_bytes_at_any_time() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let staging = awkward_staging(dir.path());
    let (a, b) = (dir.path().join("a.iso"), dir.path().join("b.iso"));
    write_iso(&a, &staging, &hybrid()).expect("first ISO");
    // Another modification time on the one source file that is ours to touch: a fixed day in
    // the past, so it differs whatever the file system clock's resolution.
    let kernel = dir.path().join("kernel.bin");
    let before = image_runner_test_support::mtime(&kernel);
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    image_runner_test_support::set_mtime(&kernel, past);
    assert_ne!(past, before);
    // And the second build a second later on the wall clock, so that a build time written
    // into the image would show (ISO directory records keep whole seconds).
    std::thread::sleep(Duration::from_secs(1));
    write_iso(&b, &staging, &hybrid()).expect("second ISO");
    assert!(
        std::fs::read(&a).expect("a") == std::fs::read(&b).expect("b"),
        "two builds of the same input differ"
    );

    // Two projects in other directories, built a second apart, through the runner.
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    let build = || {
        let project = Project::new(runner_bin!(), "format = \"iso\"\n");
        let run = project.run(["build".into(), kernel.clone().into_os_string()], &[]);
        run.assert_code(0);
        let bytes = std::fs::read(run.stdout.trim()).expect("read the ISO");
        (project, bytes)
    };
    let (_first, first) = build();
    std::thread::sleep(Duration::from_secs(1));
    let (_second, second) = build();
    assert!(
        first == second,
        "two runner builds of the same kernel differ"
    );
}

#[test]
fn bad_input_fails_naming_the_cause_and_leaves_nothing() {
    // An image size too small for the content: the runner says what is needed.
    let project = Project::new(runner_bin!(), "format = \"iso\"\n[image]\nsize = 65536\n");
    let kernel = kernels::path(Kernel::EfiApp, Variant::Pass);
    let run = project.run(["build".into(), kernel.clone().into_os_string()], &[]);
    run.assert_code(2)
        .assert_stderr_contains("`image.size = 65536`")
        .assert_stderr_contains("at least");
    let out = project.output_dir(&kernel);
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|n| n.to_string_lossy().contains("image.iso")),
        "left behind: {left:?}"
    );

    let dir = tempfile::tempdir().expect("temporary directory");
    let iso = dir.path().join("bad.iso");
    // A source that is gone.
    let mut staging = Staging::new();
    let missing = dir.path().join("gone.elf");
    staging
        .add_file("boot/kernel", Source::File(missing.clone()))
        .expect("stage");
    let err = write_iso(&iso, &staging, &IsoOptions::default())
        .expect_err("missing source")
        .to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
    // A name with a control character.
    let mut staging = Staging::new();
    staging
        .add_file("boot/bad\u{1b}name", Source::Bytes(vec![1]))
        .expect("stage");
    let err = write_iso(&iso, &staging, &IsoOptions::default())
        .expect_err("control character")
        .to_string();
    assert!(
        err.contains("/boot/bad\u{1b}name") && err.contains("control"),
        "{err}"
    );
    // BIOS boot asked for, but no boot image.
    let mut staging = Staging::new();
    staging
        .add_file("boot/kernel", Source::Bytes(vec![1]))
        .expect("stage");
    let mut bios = IsoOptions::default();
    bios.boot = Some(BootKind::Bios);
    let err = write_iso(&iso, &staging, &bios)
        .expect_err("no BIOS image")
        .to_string();
    assert!(err.contains("BIOS boot image"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("list").count(),
        0,
        "a failed ISO was left behind"
    );
}
