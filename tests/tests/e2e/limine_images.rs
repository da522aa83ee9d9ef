//! `bootloader = "limine"` through the real runner (`build`) with a fixture repository of
//! synthetic Limine files (plugin-limine's test fixture: recognisable bytes, realistic sizes):
//! the image each format × boot kind × architecture gets, the `limine.conf` inside it, and the
//! BIOS stages installed into disks and ISOs, read back with sgdisk, sfdisk, mtools and
//! xorriso. Nothing boots here: synthetic Limine files cannot (see `limine_real.rs`). Needs
//! gdisk, fdisk, mtools and xorriso (`scripts/install-deps`); fails without them.

#[path = "../../../plugin-limine/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use common::Fixture;
use image_runner_tests::kernels::{self, Kernel, Variant};
use image_runner_tests::runner::{Project, Run};
use image_runner_tests::runner_bin;
use image_runner_tests::tools::check as tool;

/// A project booting with Limine from `fixture`, with `config` (top-level keys and tables;
/// the `[limine]` table comes last, `limine_config` goes into it).
fn limine_project(fixture: &Fixture, config: &str, limine_config: &str) -> Project {
    Project::new(
        runner_bin!(),
        &format!(
            "bootloader = \"limine\"\n{config}\n[limine]\ngit = \"{}\"\n{limine_config}",
            fixture.url()
        ),
    )
}

fn build(project: &Project, kernel: Kernel) -> Run {
    let exe = kernels::path(kernel, Variant::Pass);
    project.run(["build".as_ref(), exe.as_os_str()], &[])
}

/// Builds and returns the image path the runner printed.
fn built(project: &Project, kernel: Kernel, file_name: &str) -> PathBuf {
    let run = build(project, kernel);
    run.assert_code(0);
    let image = PathBuf::from(run.stdout.trim());
    assert!(image.ends_with(file_name), "{run}");
    image
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The fixture's stage 1 is in sector 0 with the halves of stage 2 where it says; returns
/// their byte offsets.
fn assert_stages(image: &Path) -> (u64, u64) {
    let bytes = std::fs::read(image).expect("read the image");
    let stages = common::hdd_stages("8.2.0");
    assert!(
        bytes.starts_with(b"LIMINE-STAGE1 8.2.0 (fixture)"),
        "no stage 1 in sector 0 of {}",
        image.display()
    );
    assert_eq!(bytes[510..512], [0x55, 0xAA]);
    let size_a = u16::from_le_bytes([bytes[0x1A4], bytes[0x1A5]]);
    let size_b = u16::from_le_bytes([bytes[0x1A6], bytes[0x1A7]]);
    assert_eq!((size_a, size_b), (21 * 512, 20 * 512));
    let (a, b) = (
        u64_at(&bytes, 0x1A8) as usize,
        u64_at(&bytes, 0x1B0) as usize,
    );
    let stage2 = &stages[512..];
    assert_eq!(bytes[a..a + 21 * 512], stage2[..21 * 512], "first half");
    assert_eq!(
        bytes[b..b + stage2.len() - 21 * 512],
        stage2[21 * 512..],
        "second half"
    );
    (a as u64, b as u64)
}

/// `sgdisk -v` is clean and the entry array holds `entries` entries.
fn assert_gpt(image: &Path, entries: u32) {
    let verify = tool("sgdisk", "gdisk", &["-v", arg(image)]);
    assert!(verify.contains("No problems found"), "{verify}");
    let print = tool("sgdisk", "gdisk", &["-p", arg(image)]);
    assert!(
        print.contains(&format!("Partition table holds up to {entries} entries")),
        "{print}"
    );
}

/// The names in `dir` of the FAT volume at byte `offset` of `image`.
fn fat_dir(image: &Path, offset: u64, dir: &str) -> String {
    tool(
        "mdir",
        "mtools",
        &["-i", &format!("{}@@{offset}", arg(image)), "-b", dir],
    )
}

/// Every path in the FAT volume at byte `offset` of `image`, one a line (`::/EFI/BOOT/...`).
fn fat_tree(image: &Path, offset: u64) -> String {
    tool(
        "mdir",
        "mtools",
        &[
            "-i",
            &format!("{}@@{offset}", arg(image)),
            "-/",
            "-b",
            "::/",
        ],
    )
}

fn fat_file(image: &Path, offset: u64, path: &str) -> String {
    tool(
        "mtype",
        "mtools",
        &["-i", &format!("{}@@{offset}", arg(image)), path],
    )
}

const ESP_GPT_BIOS: u64 = 2 << 20;
const ESP_GPT_UEFI: u64 = 1 << 20;
const FAT_MBR: u64 = 1 << 20;

#[test]
fn gpt_and_mbr_disks_get_the_bios_stages() {
    let fixture = Fixture::new();
    for boot in ["bios", "hybrid"] {
        let project = limine_project(
            &fixture,
            &format!("format = \"gpt\"\nboot = \"{boot}\""),
            "",
        );
        let image = built(&project, Kernel::Limine, "image-gpt.img");
        let (a, b) = assert_stages(&image);
        assert_eq!(a, 13 * 512, "first half at the end of the primary array");
        let len = std::fs::metadata(&image).expect("image size").len();
        assert_eq!(
            b,
            len - 33 * 512 + 12 * 512,
            "second half in the backup array"
        );
        assert_gpt(&image, 44);
        let files = fat_tree(&image, ESP_GPT_BIOS);
        for (path, present) in [
            ("::/boot/kernel", true),
            ("::/boot/limine/limine-bios.sys", true),
            ("::/boot/limine/limine.conf", true),
            ("::/EFI/BOOT/BOOTX64.EFI", boot == "hybrid"),
        ] {
            assert_eq!(files.lines().any(|l| l == path), present, "{path}: {files}");
        }

        let project = project_mbr(&fixture, boot);
        let image = built(&project, Kernel::Limine, "image-mbr.img");
        let (a, b) = assert_stages(&image);
        assert_eq!((a, b), (512, 512 + 21 * 512));
        let dump = tool("sfdisk", "fdisk", &["--dump", arg(&image)]);
        assert!(
            dump.contains("start=        2048") && dump.contains("bootable"),
            "{dump}"
        );
        assert!(fat_dir(&image, FAT_MBR, "::/boot/limine").contains("limine-bios.sys"));
    }
}

fn project_mbr(fixture: &Fixture, boot: &str) -> Project {
    limine_project(fixture, &format!("format = \"mbr\"\nboot = \"{boot}\""), "")
}

#[test]
fn uefi_disks_keep_their_tables_as_written() {
    let fixture = Fixture::new();
    let project = limine_project(&fixture, "format = \"gpt\"\nboot = \"uefi\"", "");
    let image = built(&project, Kernel::Limine, "image-gpt.img");
    let bytes = std::fs::read(&image).expect("read the image");
    assert!(bytes[..440].iter().all(|&b| b == 0), "no boot code");
    assert_gpt(&image, 128);
    let efi = fat_file(&image, ESP_GPT_UEFI, "::/EFI/BOOT/BOOTX64.EFI");
    assert!(
        efi.starts_with("BOOTX64 of Limine 8.2.0 (fixture)"),
        "{efi}"
    );
    let files = fat_dir(&image, ESP_GPT_UEFI, "::/boot/limine");
    assert!(
        files.contains("limine.conf") && !files.contains("limine-bios.sys"),
        "{files}"
    );
}

#[test]
fn iso_images_per_boot_kind() {
    let fixture = Fixture::new();
    for boot in ["bios", "uefi", "hybrid"] {
        let project = limine_project(
            &fixture,
            &format!("format = \"iso\"\nboot = \"{boot}\""),
            "",
        );
        let image = built(&project, Kernel::Limine, "image.iso");
        let report = tool(
            "xorriso",
            "xorriso",
            &["-indev", arg(&image), "-report_el_torito", "plain"],
        );
        let bios = boot != "uefi";
        let uefi = boot != "bios";
        assert_eq!(report.contains("BIOS  y   none"), bios, "{report}");
        assert_eq!(report.contains("UEFI  y   none"), uefi, "{report}");
        assert_eq!(report.contains("boot-info-table"), bios, "{report}");
        let extracted = project.scratch().join("extracted");
        tool(
            "osirrox",
            "xorriso",
            &["-indev", arg(&image), "-extract", "/", arg(&extracted)],
        );
        let exists = |p: &str| extracted.join(p).is_file();
        assert!(exists("boot/kernel") && exists("boot/limine/limine.conf"));
        assert_eq!(exists("boot/limine/limine-bios.sys"), bios);
        assert_eq!(exists("boot/limine/limine-bios-cd.bin"), bios);
        assert_eq!(exists("boot/limine/limine-uefi-cd.bin"), uefi);
        assert_eq!(exists("EFI/BOOT/BOOTX64.EFI"), uefi);
        if bios {
            // The boot info table was patched into the staged CD image (bytes 8..64).
            let cd = std::fs::read(extracted.join("boot/limine/limine-bios-cd.bin"))
                .expect("read the CD image");
            assert_eq!(
                u32::from_le_bytes(cd[8..12].try_into().expect("4")),
                16,
                "PVD"
            );
            assert_stages(&image);
            assert_gpt(&image, 44);
        } else {
            let bytes = std::fs::read(&image).expect("read the image");
            assert!(bytes[..440].iter().all(|&b| b == 0), "no boot code");
            assert_gpt(&image, 128);
        }
    }
}

#[test]
fn fat_and_directory_images_per_architecture() {
    let fixture = Fixture::new();
    for (kernel, loader, protocol) in [
        (Kernel::Limine, "BOOTX64.EFI", "limine"),
        (Kernel::EfiAppAa64, "BOOTAA64.EFI", "efi_chainload"),
        (Kernel::Riscv64, "BOOTRISCV64.EFI", "limine"),
    ] {
        for format in ["fat", "directory"] {
            // Any firmware file does for `build`, which only looks the firmware up.
            let project = limine_project(
                &fixture,
                &format!("format = \"{format}\"\nboot = \"uefi\"\n[ovmf]\ncode = \"fw.fd\""),
                "",
            );
            project.write("fw.fd", "firmware");
            let (file, conf, efi) = if format == "fat" {
                let image = built(&project, kernel, "image.fat");
                let listing = fat_dir(&image, 0, "::/EFI/BOOT");
                assert!(listing.contains(loader), "{listing}");
                (
                    image.clone(),
                    fat_file(&image, 0, "::/boot/limine/limine.conf"),
                    fat_file(&image, 0, &format!("::/EFI/BOOT/{loader}")),
                )
            } else {
                let dir = built(&project, kernel, "image");
                let read = |p: &str| std::fs::read_to_string(dir.join(p)).expect("a staged file");
                (
                    dir.clone(),
                    read("boot/limine/limine.conf"),
                    read(&format!("EFI/BOOT/{loader}")),
                )
            };
            let stem = loader.trim_end_matches(".EFI");
            assert!(
                efi.starts_with(&format!("{stem} of Limine 8.2.0")),
                "{}: {efi}",
                file.display()
            );
            assert!(
                conf.contains(&format!("    protocol: {protocol}\n")),
                "{conf}"
            );
        }
    }
}

#[test]
fn the_generated_config_is_in_the_image() {
    let fixture = Fixture::new();
    let project = limine_project(
        &fixture,
        "format = \"fat\"\nboot = \"uefi\"\nprotocol = \"multiboot2\"\ncmdline = \"console=ttyS0\"\n[[modules]]\npath = \"initrd.img\"\ncmdline = \"ramdisk\"",
        "timeout = 2\n",
    );
    project.write("initrd.img", "initrd");
    let image = built(&project, Kernel::Multiboot, "image.fat");
    assert_eq!(
        fat_file(&image, 0, "::/boot/limine/limine.conf"),
        "# Written by cargo-image-runner in the Limine 8.x syntax.
timeout: 2
serial: yes

/multiboot-pass.elf
    protocol: multiboot2
    kernel_path: boot():/boot/kernel
    cmdline: console=ttyS0
    module_path: boot():/boot/modules/initrd.img
    module_string: ramdisk
"
    );
    assert_eq!(fat_file(&image, 0, "::/boot/modules/initrd.img"), "initrd");
}

#[test]
fn bios_boots_need_a_partitioned_image() {
    let fixture = Fixture::new();
    for format in ["fat", "directory"] {
        for boot in ["bios", "hybrid"] {
            let project = limine_project(
                &fixture,
                &format!("format = \"{format}\"\nboot = \"{boot}\""),
                "",
            );
            build(&project, Kernel::Limine)
                .assert_code(2)
                .assert_stderr_contains(&format!("the format is `{format}`"))
                .assert_stderr_contains("no place for Limine's BIOS stages");
        }
    }
}

#[test]
fn a_directory_without_the_stages_file_boots_bios_from_cds_only() {
    let fixture = Fixture::new();
    let dir = fixture.dir.path().join("share-limine");
    std::fs::create_dir_all(&dir).expect("create a directory");
    for (name, bytes) in common::release_files("8.2.0") {
        if name != "limine-bios-hdd.h" {
            std::fs::write(dir.join(name), bytes).expect("write a file");
        }
    }
    let path = format!("path = \"{}\"\n", dir.display());
    let project = limine_project(&fixture, "format = \"gpt\"\nboot = \"bios\"", &path);
    build(&project, Kernel::Limine)
        .assert_code(2)
        .assert_stderr_contains("lacks limine-bios-hdd.h");
    let project = limine_project(&fixture, "format = \"iso\"\nboot = \"bios\"", &path);
    let run = build(&project, Kernel::Limine);
    run.assert_code(0)
        .assert_stderr_contains("warning: the ISO boots on BIOS as a CD only");
    let project = limine_project(
        &fixture,
        "format = \"iso\"\nboot = \"bios\"\n[qemu]\nattach = \"disk\"",
        &path,
    );
    build(&project, Kernel::Limine)
        .assert_code(2)
        .assert_stderr_contains("lacks limine-bios-hdd.h");
}

#[test]
fn limine_fetch_list_clean_and_offline_from_the_command_line() {
    let fixture = Fixture::new();
    let project = limine_project(&fixture, "", "");
    // Offline with nothing cached: a clear error, exit code 2.
    let offline = project.run(["limine", "fetch", "--offline"], &[]);
    offline
        .assert_code(2)
        .assert_stderr_contains("is not in the cache");
    let fetch = project.run(["limine", "fetch"], &[]);
    fetch.assert_code(0);
    assert!(fetch.stdout.contains("Limine 8.2.0 (commit "), "{fetch}");
    let list = project.run(["limine", "list"], &[]);
    list.assert_code(0);
    assert!(
        list.stdout.contains("8.2.0") && list.stdout.contains("v8.x-binary"),
        "{list}"
    );
    // Now offline works from the cache, also for a whole build.
    project
        .run(["limine", "fetch", "--offline"], &[])
        .assert_code(0);
    let exe = kernels::path(Kernel::Limine, Variant::Pass);
    project
        .run(
            ["build".as_ref(), "--offline".as_ref(), exe.as_os_str()],
            &[],
        )
        .assert_code(0);
    let clean = project.run(["limine", "clean"], &[]);
    clean.assert_code(0);
    assert!(
        clean.stdout.contains("removed 1 cached Limine version"),
        "{clean}"
    );
    let list = project.run(["limine", "list"], &[]);
    assert!(list.stdout.starts_with("no Limine in "), "{list}");
}

/// A cache entry damaged without a change of size or mtime is refused by a run (offline here,
/// so it cannot be fetched again) and repaired by `limine fetch`.
#[test]
fn limine_fetch_repairs_an_entry_damaged_without_a_change_of_size_or_mtime() {
    let fixture = Fixture::new();
    let project = limine_project(&fixture, "format = \"iso\"", "");
    let fetch = project.run(["limine", "fetch"], &[]);
    fetch.assert_code(0);
    let dir = fetch
        .stdout
        .trim()
        .rsplit_once(" in `")
        .map(|(_, dir)| PathBuf::from(dir.trim_end_matches('`')))
        .expect("the fetched directory");
    let file = dir.join("limine-bios-cd.bin");
    let original = std::fs::read(&file).expect("read the cached file");
    common::damage_keeping_size_and_mtime(&file);

    let exe = kernels::path(Kernel::Limine, Variant::Pass);
    project
        .run(
            ["build".as_ref(), "--offline".as_ref(), exe.as_os_str()],
            &[],
        )
        .assert_code(2)
        .assert_stderr_contains("unusable")
        .assert_stderr_contains("limine-bios-cd.bin");

    project
        .run(["limine", "fetch"], &[])
        .assert_code(0)
        .assert_stderr_contains("was damaged");
    assert_eq!(
        std::fs::read(&file).expect("read the repaired file"),
        original
    );
    project
        .run(
            ["build".as_ref(), "--offline".as_ref(), exe.as_os_str()],
            &[],
        )
        .assert_code(0);
}

/// A `limine.conf` template of a 0.5.0 user naming the kernel by the executable's name (the
/// kernel is staged at `/boot/kernel`) fails the build with what the image holds, instead of
/// hanging the boot; with `{{KERNEL}}` it builds.
#[test]
fn a_template_naming_a_file_the_image_lacks_fails_the_build() {
    let fixture = Fixture::new();
    let project = limine_project(
        &fixture,
        "format = \"iso\"\nboot = \"bios\"",
        "config = \"limine.conf\"\n",
    );
    project.write(
        "limine.conf",
        "timeout: 0\nserial: yes\n\n/Kernel\n    protocol: limine\n    kernel_path: boot():/boot/{{EXECUTABLE_NAME}}\n",
    );
    let run = build(&project, Kernel::Limine);
    run.assert_code(2)
        .assert_stderr_contains("line 6: `kernel_path: boot():/boot/limine-pass.elf`: /boot/limine-pass.elf is not in the image")
        .assert_stderr_contains("/boot/kernel, ")
        .assert_stderr_contains("{{KERNEL}}");
    assert!(run.stdout.is_empty(), "{run}");
    project.write(
        "limine.conf",
        "timeout: 0\nserial: yes\n\n/Kernel\n    protocol: limine\n    kernel_path: {{KERNEL}}\n",
    );
    build(&project, Kernel::Limine).assert_code(0);
}
