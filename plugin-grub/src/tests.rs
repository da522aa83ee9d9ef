//! Staging through a real [`Context`] (config files read and checked by the core, decisions
//! made by it), with a stand-in GRUB (a module folder of empty files and a `grub-mkimage`
//! script) and stand-in image formats, so these tests need no GRUB on the host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image_runner_core::{
    Arch, BootKind, BuildRequest, Config, Context, Decisions, ImageFormat, ImagePlan, Invocation,
    Kernel, Pipeline, Protocol, RunMode, Source, Staging,
};

use super::*;

/// An image format that only says what it makes: the decisions need it, staging never builds.
struct Format(&'static str, ImageKind);

impl ImageFormat for Format {
    fn name(&self) -> &str {
        self.0
    }

    fn kind(&self) -> ImageKind {
        self.1
    }

    fn build(&self, _request: &BuildRequest<'_>) -> Result<Image, Error> {
        Err(Error::plugin(self.0, "these tests build no image"))
    }
}

/// The `grub` bootloader and stand-ins for the formats it meets.
fn registry() -> Registry {
    let mut registry = Registry::new();
    register(&mut registry);
    for (name, kind) in [
        ("directory", ImageKind::Directory),
        ("fat", ImageKind::Fat),
        ("iso", ImageKind::Iso),
        ("gpt", ImageKind::Disk),
        ("mbr", ImageKind::Disk),
    ] {
        registry.add_format(Format(name, kind));
    }
    registry
}

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
        Pipeline::new(&registry()).context(inv)
    }

    fn stage(&self) -> Result<Staging, image_runner_core::Error> {
        self.staged().map(|staged| staged.staging)
    }

    fn staged(&self) -> Result<Staged, image_runner_core::Error> {
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

/// A 64-bit ELF header without multiboot headers: the core's `auto` rule picks the Limine
/// protocol for it.
fn elf64() -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[18] = 62;
    b
}

/// A bzImage without an EFI stub: neither ELF nor PE, with the setup header's `HdrS`.
fn bzimage() -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[0x1FE..0x200].copy_from_slice(&[0x55, 0xAA]);
    b[0x202..0x206].copy_from_slice(b"HdrS");
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
    image_runner_test_support::fake_tool(
        &root.join("grub-mkimage"),
        "#!/bin/sh\nfor a; do case $a in --output=*) out=${a#--output=};; esac; done\necho \"$@\" > \"$out\"\n",
    );
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
    // In the kernel's output folder (`kernel.elf` lies outside the target directory: its
    // name and a hash of its path).
    let folder = core
        .strip_prefix(project.root().join("target/image-runner"))
        .expect("in the target directory's image-runner folder");
    let mut parts = folder.iter().map(|p| p.to_string_lossy().into_owned());
    assert!(
        parts.next().is_some_and(|p| p.starts_with("kernel.elf-")),
        "{}",
        core.display()
    );
    assert_eq!(parts.next().as_deref(), Some("grub"), "{}", core.display());
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

/// A user's `grub.cfg` naming a file that is not staged (here the executable's own name, while
/// the kernel is staged at `/boot/kernel`) is refused before anything is built, with what is
/// staged; absolute and `($root)` paths of the loader commands are checked, `extra-files`
/// count as staged, paths on other devices or built from variables are left alone.
#[test]
fn template_paths_must_name_staged_files() {
    let project = Project::new(
        "extra-files = { \"boot/initrd.img\" = \"mb1.elf\" }",
        ", config = \"my-grub.cfg\"",
    );
    let cfg = project.root().join("my-grub.cfg");
    std::fs::write(
        &cfg,
        "set timeout=0\nmenuentry 'x' {\n\tmultiboot2 /boot/{{EXECUTABLE_NAME}} console=ttyS0\n\tmodule2 --nounzip /boot/initrd.img a\n\tboot\n}\n",
    )
    .unwrap();
    let err = project.stage().unwrap_err().to_string();
    for part in [
        "my-grub.cfg",
        "line 3: `multiboot2 /boot/kernel.elf console=ttyS0`: /boot/kernel.elf is not in the image",
        "The image holds: /boot/grub/grub.cfg, ",
        ", /boot/initrd.img, /boot/kernel.\n",
        "{{KERNEL}}",
    ] {
        assert!(err.contains(part), "`{part}` missing from: {err}");
    }

    std::fs::write(
        &cfg,
        "menuentry x {\n\tlinux {{KERNEL}}\n\tinitrd /boot/initrd.img '/boot/missing file'\n}\n",
    )
    .unwrap();
    let err = project.stage().unwrap_err().to_string();
    assert!(
        err.contains("line 3") && err.contains("/boot/missing file is not in the image"),
        "{err}"
    );

    // What boots: `($root)` and `(${root})` paths, quotes, `.` and `//`, case differences,
    // several commands on a line; other devices, variables and comments are not checked.
    std::fs::write(
        &cfg,
        "# multiboot /nothing\nmenuentry x { multiboot ($root)/boot/kernel; module /boot/INITRD.IMG 'a b' ; boot }\nmenuentry y {\n linux (${root})//boot/./kernel quiet\n initrd /boot/initrd.img newc:n:/x (hd1,gpt1)/elsewhere $prefix/x\n chainloader --force (hd0)+1\n}\nmultiboot2 '/boot/kernel' \\\n  /not-a-path-but-the-command-line\n",
    )
    .unwrap();
    project.stage().unwrap();
}

/// The names a `grub.cfg` template gets from the plugin cannot be taken by user variables (the
/// plugin's value would silently win in the template).
#[test]
fn user_variables_may_not_take_the_names_of_grub_template_variables() {
    for name in TEMPLATE_VARIABLES {
        let project = Project::new(&format!("variables = {{ {name} = \"mine\" }}"), "");
        let err = project.stage().unwrap_err().to_string();
        assert!(
            err.contains(&format!("`variables.{name}`"))
                && err.contains("image-runner.toml")
                && err.contains("grub plugin"),
            "{err}"
        );
    }
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
        // GRUB's own restriction, whether the protocol is asked for or picked by `auto`...
        (
            "protocol = \"limine\"",
            "elf64.elf",
            "GRUB cannot boot the Limine protocol; set `bootloader = \"limine\"`",
        ),
        ("", "elf64.elf", "GRUB cannot boot the Limine protocol"),
        (
            "[[entries]]\ntitle = \"x\"\nkernel = \"elf64.elf\"",
            "kernel.elf",
            "or set `entries[0].protocol`",
        ),
        // ... and the core's rule, which checks the kernel first.
        (
            "protocol = \"limine\"",
            "kernel.elf",
            "is not an ELF64 executable",
        ),
        ("", "plain.elf", "no boot protocol fits it"),
        (
            "[[entries]]\ntitle = \"x\"\nkernel = \"mb2.elf\"\nprotocol = \"multiboot1\"",
            "kernel.elf",
            "has no multiboot1 header, but `entries[0].protocol` asks for multiboot1",
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
        std::fs::write(project.root().join("elf64.elf"), elf64()).unwrap();
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

#[test]
fn a_bzimage_entry_boots_with_linux() {
    let project = Project::new(
        "[[entries]]\ntitle = \"Linux\"\nkernel = \"bzImage\"\ncmdline = \"console=ttyS0\"",
        "",
    );
    std::fs::write(project.root().join("bzImage"), bzimage()).unwrap();
    let staging = project.stage().unwrap();
    assert_eq!(
        file(&staging, "boot/entry-1/kernel"),
        project.root().join("bzImage")
    );
    assert!(
        text(&staging, "boot/grub/grub.cfg").ends_with(
            "\nmenuentry Linux {\n\tlinux /boot/entry-1/kernel console=ttyS0\n\tboot\n}\n"
        )
    );
    let core = std::fs::read_to_string(file(&staging, "boot/grub/i386-pc/eltorito.img")).unwrap();
    assert!(core.ends_with(" boot multiboot2 linux\n"), "{core}");
}

#[test]
fn the_grub_section_is_checked_by_the_core() {
    let project = Project::new("", ", modules-dirs = \"x\"");
    let err = project.context("kernel.elf").unwrap_err().to_string();
    assert!(
        err.contains("modules-dirs") && err.contains("image-runner.toml"),
        "{err}"
    );
}

#[test]
fn finish_image_gets_the_bios_boot_code_from_the_staged_state() {
    let project = Project::new("", "");
    let ctx = project.context("kernel.elf").unwrap();
    let staged = Grub.stage(&ctx).unwrap();
    let finish = staged.state::<Finish>().unwrap();
    assert_eq!(
        finish.bios,
        Some(BiosBoot {
            target: Target::I386PcEltorito,
            core_image: file(&staged.staging, "boot/grub/i386-pc/eltorito.img"),
            boot_img: project.root().join("grub-lib/i386-pc/boot.img"),
        })
    );
    // The image is not read before the staged core image is found not to fit it.
    let disk = Image::new(project.root().join("no-such.img"), ImageKind::Disk);
    let err = Grub
        .finish_image(&staged, &disk, &ctx)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the `iso` format wrote a disk image")
            && err.contains("(i386-pc-eltorito) does not fit"),
        "{err}"
    );
    // Without GRUB's state there is nothing to install: an error, not a guess.
    let err = Grub
        .finish_image(&Staged::new(Staging::new()), &disk, &ctx)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not staged by GRUB"), "{err}");
}

#[test]
fn a_uefi_boot_leaves_the_image_as_it_is() {
    let project = Project::new("boot = \"uefi\"", "");
    let ctx = project.context("kernel.elf").unwrap();
    let staged = Grub.stage(&ctx).unwrap();
    assert_eq!(staged.state::<Finish>(), Some(&Finish { bios: None }));
    let fat = Image::new(project.root().join("no-such.img"), ImageKind::Fat);
    Grub.finish_image(&staged, &fat, &ctx).unwrap();
}

/// A context made in memory: the multiboot2 kernel with `image` and `protocol` decided.
fn memory_context(
    dir: &Path,
    boot: BootKind,
    image: Option<ImagePlan>,
    protocol: Protocol,
) -> Context {
    fake_grub(dir);
    std::fs::write(dir.join("kernel.elf"), kernel(false, true)).unwrap();
    let decisions = Decisions::new(
        boot,
        Arch::X86_64,
        image,
        RunMode::choose(&Config::default(), true),
    )
    .with_protocol(protocol);
    let grub = GrubConfig {
        modules_dir: Some(dir.join("grub-lib")),
        mkimage: dir.join("grub-mkimage").display().to_string(),
        timeout: 7,
        ..GrubConfig::default()
    };
    Context::for_tests(
        Kernel::inspect(&dir.join("kernel.elf")).unwrap(),
        decisions,
        dir,
    )
    .with_section("grub", &grub)
    .unwrap()
}

#[test]
fn the_plan_follows_the_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let iso = || Some(ImagePlan::new("iso", ImageKind::Iso));
    let ctx = memory_context(dir.path(), BootKind::Bios, iso(), Protocol::Multiboot2);
    let plan = Plan::new(&ctx).unwrap();
    assert_eq!(plan.grub.timeout, 7);
    assert_eq!(plan.bios, Some(Target::I386PcEltorito));
    assert!(!plan.uefi);
    assert_eq!(plan.protocols(), [Protocol::Multiboot2]);
    let staging = Grub.stage(&ctx).unwrap().staging;
    assert!(text(&staging, "boot/grub/grub.cfg").contains("set timeout=7\n"));

    let disk = Some(ImagePlan::new("my-disk", ImageKind::Disk));
    let ctx = memory_context(dir.path(), BootKind::Hybrid, disk, Protocol::Multiboot1);
    let plan = Plan::new(&ctx).unwrap();
    assert_eq!(plan.bios, Some(Target::I386Pc));
    assert!(plan.uefi);
    assert_eq!(plan.protocols(), [Protocol::Multiboot1]);

    // UEFI alone needs no BIOS boot code, so any image will do.
    let dir_image = Some(ImagePlan::new("directory", ImageKind::Directory));
    let ctx = memory_context(dir.path(), BootKind::Uefi, dir_image, Protocol::Multiboot2);
    assert_eq!(Plan::new(&ctx).unwrap().bios, None);
}

#[test]
fn the_plan_refuses_what_grub_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let iso = || Some(ImagePlan::new("iso", ImageKind::Iso));
    let cases = [
        (
            BootKind::Bios,
            Some(ImagePlan::new("my-dir", ImageKind::Directory)),
            Protocol::Multiboot2,
            "the format is `my-dir`, which has no place for BIOS boot code",
        ),
        (
            BootKind::Hybrid,
            Some(ImagePlan::new("fat", ImageKind::Fat)),
            Protocol::Multiboot2,
            "GRUB boots hybrid machines",
        ),
        (
            BootKind::Uefi,
            None,
            Protocol::Multiboot2,
            "this run builds none; set `format`",
        ),
        (
            BootKind::Bios,
            iso(),
            Protocol::Limine,
            "GRUB cannot boot the Limine protocol",
        ),
        (
            BootKind::Hybrid,
            iso(),
            Protocol::EfiChainload,
            "GRUB starts only under UEFI, but `boot = \"hybrid\"`",
        ),
    ];
    for (boot, image, protocol, expected) in cases {
        let ctx = memory_context(dir.path(), boot, image, protocol);
        let err = Plan::new(&ctx).unwrap_err().to_string();
        assert!(err.contains(expected), "{boot} {protocol}: {err}");
    }
}
