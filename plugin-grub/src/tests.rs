//! Staging through a real [`Context`], with a stand-in GRUB (a module folder of empty files
//! and a `grub-mkimage` script), so these tests need no GRUB on the host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image_runner_core::{Bootloader, Context, Invocation, Source, Staging};

use super::*;

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// A package whose `image-runner.toml` is `metadata` plus a `grub` table pointing at the
    /// stand-in GRUB, with more `grub` keys from `grub` (", key = value" each).
    fn new(metadata: &str, grub: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fake_grub(root);
        std::fs::write(
            root.join("Cargo.toml"),
            "[package]\nname = \"k\"\nversion = \"0.1.0\"\n",
        )
        .unwrap();
        // Top-level keys first: `metadata` may open tables of its own.
        std::fs::write(
            root.join("image-runner.toml"),
            format!(
                "bootloader = \"grub\"\ngrub = {{ modules-dir = \"grub-lib\", mkimage = \"{}\" {grub} }}\n{metadata}\n",
                root.join("grub-mkimage").display()
            ),
        )
        .unwrap();
        std::fs::write(root.join("kernel.elf"), kernel(true, true)).unwrap();
        std::fs::write(root.join("mb1.elf"), kernel(true, false)).unwrap();
        Project { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn context(&self, kernel: &str) -> Result<Context, image_runner_core::Error> {
        let mut inv = Invocation::new(self.root().join(kernel));
        inv.manifest_dir = Some(self.root().to_path_buf());
        inv.env = BTreeMap::from([
            (
                "CARGO_TARGET_DIR".to_owned(),
                self.root().join("target").display().to_string(),
            ),
            ("HOME".to_owned(), self.root().display().to_string()),
        ]);
        Context::new(inv)
    }

    fn stage(&self) -> Result<Staging, image_runner_core::Error> {
        Grub.stage(&self.context("kernel.elf")?)
    }
}

/// A 32-bit ELF header with a multiboot1 and/or multiboot2 header at 1 KiB.
fn kernel(mb1: bool, mb2: bool) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 1;
    b[5] = 1;
    b[18] = 3;
    let words = |w: &[u32]| w.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    if mb1 {
        let h = words(&[0x1BAD_B002, 0, 0u32.wrapping_sub(0x1BAD_B002)]);
        b[1024..1024 + h.len()].copy_from_slice(&h);
    }
    if mb2 {
        let h = words(&[0xE852_50D6, 0, 16, 0u32.wrapping_sub(0xE852_50D6 + 16)]);
        b[1040..1040 + h.len()].copy_from_slice(&h);
    }
    b
}

/// Module folders with every file the core images here use, and a `grub-mkimage` that writes
/// its arguments as the image.
fn fake_grub(root: &Path) {
    for platform in ["i386-pc", "x86_64-efi"] {
        let dir = root.join("grub-lib").join(platform);
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "kernel.img",
            "moddep.lst",
            "cdboot.img",
            "diskboot.img",
            "lzma_decompress.img",
            "boot.img",
        ] {
            std::fs::write(dir.join(name), name).unwrap();
        }
        for module in [
            "biosdisk",
            "iso9660",
            "part_gpt",
            "part_msdos",
            "fat",
            "normal",
            "search",
            "serial",
            "terminal",
            "boot",
            "multiboot",
            "multiboot2",
            "linux",
            "chain",
            "echo",
            "efi_gop",
        ] {
            std::fs::write(dir.join(format!("{module}.mod")), b"").unwrap();
        }
    }
    let script = root.join("grub-mkimage");
    std::fs::write(
        &script,
        "#!/bin/sh\nfor a; do case $a in --output=*) out=${a#--output=};; esac; done\necho \"$@\" > \"$out\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn paths(staging: &Staging) -> Vec<&str> {
    staging.entries.keys().map(|p| p.as_str()).collect()
}

fn text(staging: &Staging, path: &str) -> String {
    let source = &staging.entries[&image_runner_core::ImagePath::new(path).unwrap()];
    String::from_utf8(source.read().unwrap()).unwrap()
}

fn file(staging: &Staging, path: &str) -> PathBuf {
    match &staging.entries[&image_runner_core::ImagePath::new(path).unwrap()] {
        Source::File(p) => p.clone(),
        other => panic!("{path} is {other:?}"),
    }
}

#[test]
fn a_bios_cd_gets_the_el_torito_core_image() {
    let project = Project::new("", "");
    let staging = project.stage().unwrap();
    assert_eq!(
        paths(&staging),
        [
            "boot/grub/grub.cfg",
            "boot/grub/i386-pc/boot.img",
            "boot/grub/i386-pc/eltorito.img",
            "boot/kernel"
        ]
    );
    assert_eq!(
        staging.hints.bios_cd_image.as_ref().map(|p| p.as_str()),
        Some("boot/grub/i386-pc/eltorito.img")
    );
    assert!(staging.hints.bios_cd_boot_info_table);
    assert_eq!(
        file(&staging, "boot/kernel"),
        project.root().join("kernel.elf")
    );
    let core = file(&staging, "boot/grub/i386-pc/eltorito.img");
    assert!(core.starts_with(project.root().join("target/image-runner/kernel/grub")));
    let args = std::fs::read_to_string(&core).unwrap();
    assert!(
        args.starts_with("--format=i386-pc-eltorito ")
            && args.ends_with(" biosdisk iso9660 normal search serial terminal boot multiboot2\n"),
        "{args}"
    );
    assert_eq!(
        text(&staging, "boot/grub/grub.cfg"),
        "# Written by cargo-image-runner.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
set default=0

menuentry kernel.elf {
\tmultiboot2 /boot/kernel
\tboot
}
"
    );
}

#[test]
fn uefi_gets_bootx64_and_no_bios_pieces() {
    let project = Project::new("boot = \"uefi\"\nprotocol = \"multiboot1\"", "");
    let staging = project.stage().unwrap();
    assert_eq!(
        paths(&staging),
        ["EFI/BOOT/BOOTX64.EFI", "boot/grub/grub.cfg", "boot/kernel"]
    );
    assert_eq!(staging.hints, image_runner_core::BootHints::default());
    let args = std::fs::read_to_string(file(&staging, "EFI/BOOT/BOOTX64.EFI")).unwrap();
    assert!(args.starts_with("--format=x86_64-efi "), "{args}");
    assert!(args.ends_with(" boot multiboot\n"), "{args}");
    assert!(text(&staging, "boot/grub/grub.cfg").contains("\tmultiboot /boot/kernel\n"));
}

#[test]
fn hybrid_disks_get_both_core_images() {
    let project = Project::new(
        "boot = \"hybrid\"\nformat = \"gpt\"",
        ", extra-modules = [\"echo\"]",
    );
    let staging = project.stage().unwrap();
    assert_eq!(
        paths(&staging),
        [
            "EFI/BOOT/BOOTX64.EFI",
            "boot/grub/grub.cfg",
            "boot/grub/i386-pc/boot.img",
            "boot/grub/i386-pc/core.img",
            "boot/kernel"
        ]
    );
    assert_eq!(staging.hints.bios_cd_image, None);
    let args = std::fs::read_to_string(file(&staging, "boot/grub/i386-pc/core.img")).unwrap();
    assert!(
        args.starts_with("--format=i386-pc ") && args.ends_with(" multiboot2 echo\n"),
        "{args}"
    );
}

#[test]
fn modules_and_entries_are_staged_once_each() {
    let project = Project::new(
        r#"format = "mbr"
cmdline = "console=ttyS0 quiet"
modules = [{ path = "initrd.img", cmdline = "rd" }, { path = "sub/initrd.img" }]

[[entries]]
title = "Multiboot 1"
kernel = "mb1.elf"
modules = [{ path = "initrd.img" }]

[[entries]]
title = "Same kernel"
kernel = "kernel.elf"
protocol = "multiboot1"
"#,
        "",
    );
    std::fs::write(project.root().join("initrd.img"), b"1").unwrap();
    std::fs::create_dir(project.root().join("sub")).unwrap();
    std::fs::write(project.root().join("sub/initrd.img"), b"2").unwrap();
    let staging = project.stage().unwrap();
    assert_eq!(
        paths(&staging),
        [
            "boot/entry-1/kernel",
            "boot/grub/grub.cfg",
            "boot/grub/i386-pc/boot.img",
            "boot/grub/i386-pc/core.img",
            "boot/kernel",
            "boot/modules/2/initrd.img",
            "boot/modules/initrd.img",
        ]
    );
    assert_eq!(
        file(&staging, "boot/modules/2/initrd.img"),
        project.root().join("sub/initrd.img")
    );
    let cfg = text(&staging, "boot/grub/grub.cfg");
    assert!(
        cfg.ends_with(
            "
menuentry kernel.elf {
\tmultiboot2 /boot/kernel console=ttyS0 quiet
\tmodule2 /boot/modules/initrd.img rd
\tmodule2 /boot/modules/2/initrd.img
\tboot
}

menuentry 'Multiboot 1' {
\tmultiboot /boot/entry-1/kernel
\tmodule /boot/modules/initrd.img
\tboot
}

menuentry 'Same kernel' {
\tmultiboot /boot/kernel
\tboot
}
"
        ),
        "{cfg}"
    );
    let core = std::fs::read_to_string(file(&staging, "boot/grub/i386-pc/core.img")).unwrap();
    assert!(core.ends_with(" boot multiboot multiboot2\n"), "{core}");
}

#[test]
fn a_template_is_expanded_with_grub_and_runner_variables() {
    let project = Project::new(
        "cmdline = \"a 'b'\"\nvariables = { WHO = \"{{EXECUTABLE_NAME}}\" }",
        ", config = \"my-grub.cfg\", timeout = 3",
    );
    std::fs::write(
        project.root().join("my-grub.cfg"),
        "# {{WHO}}\n{{CONSOLE}}set timeout={{TIMEOUT}}\nmenuentry x {\n\tmultiboot2 {{KERNEL}} {{CMDLINE}}\n}\n{{ENTRIES}}",
    )
    .unwrap();
    let staging = project.stage().unwrap();
    let cfg = text(&staging, "boot/grub/grub.cfg");
    assert!(
        cfg.starts_with(
            "# kernel.elf\nserial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\nset timeout=3\nmenuentry x {\n\tmultiboot2 /boot/kernel a ''\\''b'\\'''\n}\n\nmenuentry kernel.elf {\n"
        ),
        "{cfg}"
    );
    // Every loader is embedded, since the template may use any.
    let core = std::fs::read_to_string(file(&staging, "boot/grub/i386-pc/eltorito.img")).unwrap();
    assert!(core.ends_with(" multiboot multiboot2 linux\n"), "{core}");

    std::fs::write(project.root().join("my-grub.cfg"), "{{NOPE}}").unwrap();
    let err = project.stage().unwrap_err().to_string();
    assert!(
        err.contains("{{NOPE}}") && err.contains("grub.config"),
        "{err}"
    );
}

#[test]
fn what_grub_cannot_boot_is_refused_before_anything_is_built() {
    let cases = [
        (
            "format = \"fat\"",
            "kernel.elf",
            "has no place for BIOS boot code",
        ),
        ("boot = \"hybrid\"", "kernel.elf", "format is `fat`"),
        ("protocol = \"linux\"", "kernel.elf", "not a Linux bzImage"),
        (
            "protocol = \"multiboot1\"",
            "mb2.elf",
            "has no multiboot1 header",
        ),
        (
            "protocol = \"limine\"",
            "kernel.elf",
            "GRUB cannot boot the Limine protocol",
        ),
        (
            "",
            "plain.elf",
            "carries no multiboot2 or multiboot1 header",
        ),
        (
            "modules = [{ path = \"missing.img\" }]",
            "kernel.elf",
            "`modules[0].path = \"missing.img\"`",
        ),
        ("arch = \"aarch64\"", "kernel.elf", "x86_64 only"),
    ];
    for (metadata, kernel_name, expected) in cases {
        let project = Project::new(metadata, "");
        std::fs::write(project.root().join("mb2.elf"), kernel(false, true)).unwrap();
        std::fs::write(project.root().join("plain.elf"), kernel(false, false)).unwrap();
        let err = Grub
            .stage(&project.context(kernel_name).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{metadata}: {err}");
        assert!(
            !project.root().join("target/image-runner").exists(),
            "{metadata}: something was built"
        );
    }
}

#[test]
fn missing_grub_names_the_package() {
    let project = Project::new("", "");
    std::fs::remove_dir_all(project.root().join("grub-lib/i386-pc")).unwrap();
    let err = project.stage().unwrap_err().to_string();
    assert!(err.contains("grub-pc-bin"), "{err}");
    let project = Project::new("boot = \"uefi\"", "");
    std::fs::remove_dir_all(project.root().join("grub-lib/x86_64-efi")).unwrap();
    let err = project.stage().unwrap_err().to_string();
    assert!(err.contains("grub-efi-amd64-bin"), "{err}");
}
