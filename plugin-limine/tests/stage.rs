//! The `limine` bootloader's staging, through a real `Context` of a throw-away project (made by
//! the pipeline, with plugin-image's formats registered) and the fixture repository: the layout
//! per image format × boot kind × architecture, the generated and templated `limine.conf`, the
//! refusals, and the BIOS stage install into the image the pipeline builds.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::Fixture;
use image_runner_core::{
    Bootloader, Context, Image, ImageKind, Invocation, Pipeline, Registry, Source, Staged, Staging,
};
use image_runner_limine::Limine;

/// An ELF header (no program headers) for `machine` (62 x86_64, 183 aarch64, 243 riscv64,
/// 258 loongarch64), 64- or 32-bit, padded to 4 KiB, with `extra` copied in at byte 256.
fn elf(machine: u16, bits64: bool, extra: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = if bits64 { 2 } else { 1 };
    b[5] = 1;
    b[6] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes());
    b[18..20].copy_from_slice(&machine.to_le_bytes());
    b[256..256 + extra.len()].copy_from_slice(extra);
    b
}

/// A multiboot1 header followed (8-aligned) by a multiboot2 header with only the end tag.
fn multiboot_headers() -> Vec<u8> {
    let mut h = Vec::new();
    let magic1 = 0x1BAD_B002u32;
    for word in [magic1, 0, 0u32.wrapping_sub(magic1)] {
        h.extend_from_slice(&word.to_le_bytes());
    }
    h.extend_from_slice(&[0; 4]);
    let (magic2, len) = (0xE852_50D6u32, 24u32);
    let sum = 0u32.wrapping_sub(magic2).wrapping_sub(len);
    for word in [magic2, 0, len, sum, 0, 8] {
        h.extend_from_slice(&word.to_le_bytes());
    }
    h
}

/// A PE32+ UEFI application header for x86_64.
fn efi_app() -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[..2].copy_from_slice(b"MZ");
    b[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    b[0x80..0x84].copy_from_slice(b"PE\0\0");
    b[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
    let optional = 0x80 + 24;
    b[optional..optional + 2].copy_from_slice(&0x20bu16.to_le_bytes());
    b[optional + 68..optional + 70].copy_from_slice(&10u16.to_le_bytes());
    b
}

/// The kernels used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K {
    /// ELF64 x86_64 without multiboot headers: the Limine protocol.
    X86,
    /// ELF32 with multiboot1 and multiboot2 headers.
    Multiboot,
    Aarch64,
    /// ELF64 aarch64 with multiboot1 and multiboot2 headers.
    Aarch64Multiboot,
    Riscv64,
    LoongArch64,
    EfiApp,
}

impl K {
    fn bytes(self) -> Vec<u8> {
        match self {
            K::X86 => elf(62, true, b"limine kernel"),
            K::Multiboot => elf(3, false, &multiboot_headers()),
            K::Aarch64 => elf(183, true, b""),
            K::Aarch64Multiboot => elf(183, true, &multiboot_headers()),
            K::Riscv64 => elf(243, true, b""),
            K::LoongArch64 => elf(258, true, b""),
            K::EfiApp => efi_app(),
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            K::X86 => "kernel-x86_64",
            K::Multiboot => "kernel-mb.elf",
            K::Aarch64 => "kernel-aarch64",
            K::Aarch64Multiboot => "kernel-aarch64-mb",
            K::Riscv64 => "kernel-riscv64",
            K::LoongArch64 => "kernel-loongarch64",
            K::EfiApp => "app.efi",
        }
    }
}

/// A project directory with `metadata` under `[package.metadata.image-runner]` (table headers
/// like `[limine]` are nested under it); `limine.git` is the fixture (set on the command line).
struct Project {
    dir: tempfile::TempDir,
    cache: PathBuf,
    git: String,
}

impl Project {
    fn new(fixture: &Fixture, metadata: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from(
            "[package]\nname = \"kernel\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[package.metadata.image-runner]\nbootloader = \"limine\"\n",
        );
        for line in metadata.lines() {
            let line = match (line.strip_prefix("[["), line.strip_prefix('[')) {
                (Some(rest), _) => format!("[[package.metadata.image-runner.{rest}"),
                (None, Some(rest)) => format!("[package.metadata.image-runner.{rest}"),
                _ => line.to_owned(),
            };
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(dir.path().join("Cargo.toml"), text).unwrap();
        Project {
            dir,
            cache: fixture.cache("cache"),
            git: fixture.url(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.root().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn context(&self, kernel: K) -> Result<Context, image_runner_core::Error> {
        self.context_with(kernel, &[])
    }

    /// The context, with `--set` overrides `sets` after the fixture's `limine.git`.
    fn context_with(&self, kernel: K, sets: &[&str]) -> Result<Context, image_runner_core::Error> {
        let exe = self.write(
            &format!("target/debug/{}", kernel.file_name()),
            &kernel.bytes(),
        );
        let mut inv = Invocation::new(&exe);
        inv.manifest_dir = Some(self.root().to_path_buf());
        inv.test = Some(false);
        inv.overrides = vec![format!("limine.git={}", self.git)];
        inv.overrides.extend(sets.iter().map(|s| s.to_string()));
        inv.env = BTreeMap::from([(
            "CARGO_IMAGE_RUNNER_CACHE".to_owned(),
            self.cache.to_string_lossy().into_owned(),
        )]);
        Pipeline::new(&registry()).context(inv)
    }

    fn stage(&self, kernel: K) -> Result<Staging, image_runner_core::Error> {
        Limine::new()
            .stage(&self.context(kernel)?)
            .map(|staged| staged.staging)
    }
}

/// The `limine` bootloader and plugin-image's formats.
fn registry() -> Registry {
    let mut registry = Registry::new();
    image_runner_limine::register(&mut registry);
    image_runner_image::register(&mut registry);
    registry
}

fn paths(staging: &Staging) -> Vec<&str> {
    staging.entries.keys().map(|p| p.as_str()).collect()
}

fn text(staging: &Staging, path: &str) -> String {
    let source = staging
        .entries
        .iter()
        .find(|(p, _)| p.as_str() == path)
        .unwrap_or_else(|| panic!("{path} is not staged: {:?}", paths(staging)))
        .1;
    String::from_utf8(source.read().unwrap()).unwrap()
}

fn conf(staging: &Staging) -> String {
    text(staging, "boot/limine/limine.conf")
}

#[test]
fn layout_per_format_boot_and_architecture() {
    let fixture = Fixture::new();
    let archs = [
        (K::X86, "BOOTX64.EFI"),
        (K::Aarch64, "BOOTAA64.EFI"),
        (K::Riscv64, "BOOTRISCV64.EFI"),
    ];
    for format in ["fat", "gpt", "mbr", "iso", "directory", "auto"] {
        for boot in ["bios", "uefi", "hybrid"] {
            for (kernel, loader) in archs {
                let project = Project::new(
                    &fixture,
                    &format!("format = \"{format}\"\nboot = \"{boot}\"\n"),
                );
                let case = format!("{format} × {boot} × {kernel:?}");
                let result = project.stage(kernel);
                let bios = boot != "uefi";
                let uefi = boot != "bios";
                if bios && kernel != K::X86 {
                    let err = result.unwrap_err().to_string();
                    assert!(err.contains("BIOS exists on x86_64 only"), "{case}: {err}");
                    continue;
                }
                let effective = match format {
                    "auto" if boot == "bios" => "iso",
                    "auto" => "fat",
                    other => other,
                };
                if bios && matches!(effective, "fat" | "directory") {
                    let err = result.unwrap_err().to_string();
                    assert!(
                        err.contains(&format!("the format is `{effective}`"))
                            && err.contains("no place for Limine's BIOS stages"),
                        "{case}: {err}"
                    );
                    continue;
                }
                let staging = result.unwrap_or_else(|e| panic!("{case}: {e}"));
                let iso = effective == "iso";
                let mut expected = vec!["boot/kernel", "boot/limine/limine.conf"];
                if bios {
                    expected.push("boot/limine/limine-bios.sys");
                }
                if bios && iso {
                    expected.push("boot/limine/limine-bios-cd.bin");
                }
                if uefi && iso {
                    expected.push("boot/limine/limine-uefi-cd.bin");
                }
                let efi = format!("EFI/BOOT/{loader}");
                if uefi {
                    expected.push(&efi);
                }
                expected.sort();
                assert_eq!(paths(&staging), expected, "{case}");

                let hints = &staging.hints;
                assert_eq!(
                    hints.bios_cd_image.as_ref().map(|p| p.as_str()),
                    (bios && iso).then_some("boot/limine/limine-bios-cd.bin"),
                    "{case}"
                );
                assert_eq!(hints.bios_cd_boot_info_table, bios && iso, "{case}");
                assert_eq!(
                    hints.uefi_cd_image.as_ref().map(|p| p.as_str()),
                    (uefi && iso).then_some("boot/limine/limine-uefi-cd.bin"),
                    "{case}"
                );
                // The files are the fixture's of the branch tip, 8.2.0.
                if uefi {
                    assert!(text(&staging, &efi).contains("of Limine 8.2.0"), "{case}");
                }
                if bios {
                    assert!(
                        text(&staging, "boot/limine/limine-bios.sys").contains("8.2.0"),
                        "{case}"
                    );
                }
                let kernel_source = staging
                    .entries
                    .iter()
                    .find(|(p, _)| p.as_str() == "boot/kernel")
                    .unwrap()
                    .1;
                assert!(
                    matches!(kernel_source, Source::File(p) if p.ends_with(kernel.file_name())),
                    "{case}"
                );
            }
        }
    }
}

#[test]
fn a_loader_the_release_lacks_is_named_with_the_version() {
    let fixture = Fixture::new();
    let project = Project::new(&fixture, "boot = \"uefi\"\n");
    let err = project.stage(K::LoongArch64).unwrap_err().to_string();
    assert!(
        err.contains("BOOTLOONGARCH64.EFI") && err.contains("Limine 8.2.0"),
        "{err}"
    );
}

#[test]
fn generated_config_for_the_limine_protocol() {
    let fixture = Fixture::new();
    let project = Project::new(
        &fixture,
        "boot = \"uefi\"\ncmdline = \"console=ttyS0 quiet\"\n[limine]\ntimeout = 3\n",
    );
    let staging = project.stage(K::X86).unwrap();
    assert_eq!(
        conf(&staging),
        "# Written by cargo-image-runner in the Limine 8.x syntax.
timeout: 3
serial: yes

/kernel-x86_64
    protocol: limine
    kernel_path: boot():/boot/kernel
    cmdline: console=ttyS0 quiet
"
    );
}

#[test]
fn multiboot_kernels_get_multiboot2_with_modules_and_entries() {
    let fixture = Fixture::new();
    let project = Project::new(
        &fixture,
        "boot = \"bios\"
cmdline = \"root=/dev/ram\"
[[modules]]
path = \"initrd.img\"
cmdline = \"initrd arg\"
[[modules]]
path = \"extra/font.psf\"
[[entries]]
title = \"Second kernel\"
kernel = \"other.elf\"
cmdline = \"x=1\"
[[entries.modules]]
path = \"initrd.img\"
[[entries]]
title = \"Same kernel, as multiboot1\"
kernel = \"target/debug/kernel-mb.elf\"
protocol = \"multiboot1\"
",
    );
    project.write("initrd.img", b"ramdisk");
    project.write("extra/font.psf", b"font");
    project.write("other.elf", &K::X86.bytes());
    let staging = project.stage(K::Multiboot).unwrap();
    assert_eq!(
        paths(&staging),
        [
            "boot/entry-1/kernel",
            "boot/kernel",
            "boot/limine/limine-bios-cd.bin",
            "boot/limine/limine-bios.sys",
            "boot/limine/limine.conf",
            "boot/modules/font.psf",
            "boot/modules/initrd.img",
        ]
    );
    assert_eq!(
        conf(&staging),
        "# Written by cargo-image-runner in the Limine 8.x syntax.
timeout: 0
serial: yes

/kernel-mb.elf
    protocol: multiboot2
    kernel_path: boot():/boot/kernel
    cmdline: root=/dev/ram
    module_path: boot():/boot/modules/initrd.img
    module_string: initrd arg
    module_path: boot():/boot/modules/font.psf

/Second kernel
    protocol: limine
    kernel_path: boot():/boot/entry-1/kernel
    cmdline: x=1
    module_path: boot():/boot/modules/initrd.img

/Same kernel, as multiboot1
    protocol: multiboot1
    kernel_path: boot():/boot/kernel
"
    );
}

#[test]
fn later_majors_get_their_syntax() {
    let fixture = Fixture::new();
    let project = Project::new(
        &fixture,
        "boot = \"uefi\"\nprotocol = \"multiboot2\"\n[limine]\nversion = \"v9.x-binary\"\n",
    );
    let staging = project.stage(K::Multiboot).unwrap();
    let text = conf(&staging);
    assert!(text.starts_with("# Written by cargo-image-runner in the Limine 9.x syntax."));
    assert!(
        text.contains("    protocol: multiboot2\n    path: boot():/boot/kernel\n"),
        "{text}"
    );
    assert!(text_of_loader(&staging).contains("9.0.0"));
}

fn text_of_loader(staging: &Staging) -> String {
    text(staging, "EFI/BOOT/BOOTX64.EFI")
}

#[test]
fn efi_applications_are_chainloaded_under_uefi_only() {
    let fixture = Fixture::new();
    let project = Project::new(&fixture, "boot = \"uefi\"\n");
    let staging = project.stage(K::EfiApp).unwrap();
    assert!(
        conf(&staging).contains(
            "/app.efi\n    protocol: efi_chainload\n    image_path: boot():/boot/kernel\n"
        ),
        "{}",
        conf(&staging)
    );
    let project = Project::new(&fixture, "boot = \"bios\"\n");
    let err = project.stage(K::EfiApp).unwrap_err().to_string();
    assert!(err.contains("starts only under UEFI"), "{err}");
}

#[test]
fn protocol_mismatches_are_refused_before_fetching() {
    let fixture = Fixture::new();
    let cases = [
        (
            K::X86,
            "protocol = \"multiboot1\"\n",
            "has no multiboot1 header",
        ),
        (
            K::X86,
            "protocol = \"multiboot2\"\n",
            "has no multiboot2 header",
        ),
        (
            K::Multiboot,
            "protocol = \"limine\"\n",
            "is not an ELF64 executable",
        ),
        (K::X86, "protocol = \"linux\"\n", "is not a Linux bzImage"),
        // The core reads `protocol` (one list of spellings for every bootloader) and says
        // where the value is and which are accepted.
        (
            K::X86,
            "protocol = \"stivale2\"\n",
            "Cargo.toml:8:12: unknown variant `stivale2`, expected one of `auto`, `limine`",
        ),
        (
            K::Aarch64,
            "boot = \"uefi\"\nprotocol = \"multiboot2\"\n",
            "has no multiboot2 header",
        ),
    ];
    let _hidden = fixture.hide();
    for (kernel, metadata, expected) in cases {
        let project = Project::new(&fixture, metadata);
        let err = project.stage(kernel).unwrap_err().to_string();
        assert!(err.contains(expected), "{metadata}: {err}");
    }
}

#[test]
fn templates_get_the_runner_and_limine_variables() {
    let fixture = Fixture::new();
    let project = Project::new(
        &fixture,
        "boot = \"uefi\"\ncmdline = \"a b\"\n[variables]\nGREETING = \"hi from {{EXECUTABLE_NAME}}\"\n[limine]\nconfig = \"limine.conf.in\"\ntimeout = 5\n",
    );
    project.write(
        "limine.conf.in",
        b"# {{GREETING}}\ntimeout: {{TIMEOUT}}\n\n/Mine\n    protocol: {{PROTOCOL}}\n    {{PATH_KEY}}: {{KERNEL}}\n    cmdline: {{CMDLINE}}\n\n{{ENTRIES}}",
    );
    let staging = project.stage(K::X86).unwrap();
    assert_eq!(
        conf(&staging),
        "# hi from kernel-x86_64
timeout: 5

/Mine
    protocol: limine
    kernel_path: boot():/boot/kernel
    cmdline: a b

/kernel-x86_64
    protocol: limine
    kernel_path: boot():/boot/kernel
    cmdline: a b
"
    );
    project.write("limine.conf.in", b"{{NOPE}}");
    let err = project.stage(K::X86).unwrap_err().to_string();
    assert!(
        err.contains("{{NOPE}}") && err.contains("limine.config") && err.contains("ENTRIES"),
        "{err}"
    );
}

/// A user's `limine.conf` naming a file that is not staged (here the executable's own name,
/// while the kernel is staged at `/boot/kernel`) is refused before anything boots, with what is
/// staged; `boot():` and `boot(N):` paths of `path`, `kernel_path`, `image_path` and
/// `module_path` are checked, `extra-files` count as staged, other resources are left alone.
#[test]
fn template_paths_must_name_staged_files() {
    let fixture = Fixture::new();
    let project = Project::new(
        &fixture,
        "boot = \"uefi\"\nformat = \"iso\"\nextra-files = { \"boot/initrd.img\" = \"initrd.img\" }\n[limine]\nconfig = \"limine.conf.in\"\n",
    );
    project.write("initrd.img", b"initrd");
    project.write(
        "limine.conf.in",
        b"timeout: 0\n\n/Mine\n    protocol: limine\n    kernel_path: boot():/boot/{{EXECUTABLE_NAME}}\n",
    );
    let err = project.stage(K::X86).unwrap_err().to_string();
    for part in [
        "limine.conf.in",
        "line 5",
        "kernel_path: boot():/boot/kernel-x86_64",
        "/boot/kernel-x86_64 is not in the image",
        "/boot/kernel, ",
        "/boot/initrd.img",
        "/boot/limine/limine.conf",
        "{{KERNEL}}",
    ] {
        assert!(err.contains(part), "`{part}` missing from: {err}");
    }

    let missing_module = b"/Mine\n    protocol: limine\n    path: {{KERNEL}}\n    MODULE_PATH: boot(2):/boot/modules/initrd\n";
    project.write("limine.conf.in", missing_module);
    let err = project.stage(K::X86).unwrap_err().to_string();
    assert!(
        err.contains("line 4") && err.contains("/boot/modules/initrd is not in the image"),
        "{err}"
    );

    // What boots: macros expanded, keys in any case, `boot(N):`, hash suffixes, `.` and `//`,
    // case differences (FAT and ISO readers may ignore case), other resources unchecked.
    let good = format!(
        "${{K}}=boot():/boot/kernel\ntimeout: 0\n# kernel_path: boot():/nothing\n/Mine\n    protocol: limine\n    Kernel_Path: ${{K}}\n    module_path: boot(1)://boot/./initrd.img#{}\n    module_path: boot():/BOOT/INITRD.IMG\n    module_path: hdd(1:1):/elsewhere\n    module_path: ${{ARCH}}/unknown-macro\n/Other\n    protocol: efi_chainload\n    image_path: {{{{KERNEL}}}}\n",
        "ab".repeat(64)
    );
    project.write("limine.conf.in", good.as_bytes());
    project.stage(K::X86).unwrap();
}

/// The names a `limine.conf` template gets from the plugin cannot be taken by user variables
/// (the plugin's value would silently win in the template).
#[test]
fn user_variables_may_not_take_the_names_of_limine_template_variables() {
    let fixture = Fixture::new();
    for name in image_runner_limine::stage::TEMPLATE_VARIABLES {
        let project = Project::new(&fixture, &format!("[variables]\n{name} = \"mine\"\n"));
        let err = project.context(K::X86).unwrap_err().to_string();
        assert!(
            err.contains(&format!("`variables.{name}`"))
                && err.contains("Cargo.toml")
                && err.contains("limine plugin"),
            "{err}"
        );
    }
}

#[test]
fn a_local_directory_is_used_as_it_is() {
    let fixture = Fixture::new();
    let dir = fixture.dir.path().join("share-limine");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in common::release_files("9.1.0") {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let project = Project::new(
        &fixture,
        &format!(
            "boot = \"hybrid\"\nformat = \"gpt\"\n[limine]\npath = \"{}\"\n",
            dir.display()
        ),
    );
    let staging = project.stage(K::X86).unwrap();
    assert!(conf(&staging).contains("9.x syntax"));
    assert!(text(&staging, "boot/limine/limine-bios.sys").contains("9.1.0"));
}

#[test]
fn offline_without_a_cache_says_what_is_missing() {
    let fixture = Fixture::new();
    let project = Project::new(&fixture, "offline = true\nboot = \"uefi\"\n");
    let err = project.stage(K::X86).unwrap_err().to_string();
    assert!(
        err.contains("offline") && err.contains("v8.x-binary") && err.contains("not in the cache"),
        "{err}"
    );
}

#[test]
fn multiboot_kernels_are_refused_off_x86() {
    let fixture = Fixture::new();
    let _hidden = fixture.hide();
    // The core's auto rule picks multiboot2 for the kernel; Limine has it on x86 only.
    let project = Project::new(&fixture, "boot = \"uefi\"\n");
    let err = project.stage(K::Aarch64Multiboot).unwrap_err().to_string();
    assert!(
        err.contains("kernel-aarch64-mb")
            && err
                .contains("Limine boots multiboot kernels on x86 only, and the machine is aarch64"),
        "{err}"
    );
    // The same for an entry's kernel, named by its own path.
    let project = Project::new(
        &fixture,
        "boot = \"uefi\"\n[[entries]]\ntitle = \"mb\"\nkernel = \"mb.elf\"\n",
    );
    project.write("mb.elf", &K::Aarch64Multiboot.bytes());
    let err = project.stage(K::Aarch64).unwrap_err().to_string();
    assert!(
        err.contains("mb.elf") && err.contains("multiboot kernels on x86 only"),
        "{err}"
    );
    // An entry's protocol is checked against its own kernel, naming its key.
    let project = Project::new(
        &fixture,
        "boot = \"uefi\"\n[[entries]]\ntitle = \"x\"\nkernel = \"x.elf\"\nprotocol = \"multiboot2\"\n",
    );
    project.write("x.elf", &K::X86.bytes());
    let err = project.stage(K::X86).unwrap_err().to_string();
    assert!(
        err.contains("x.elf")
            && err.contains("has no multiboot2 header")
            && err.contains("`entries[0].protocol`"),
        "{err}"
    );
}

#[test]
fn a_run_without_an_image_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("kernel-x86_64");
    std::fs::write(&exe, K::X86.bytes()).unwrap();
    let kernel = image_runner_core::Kernel::inspect(&exe).unwrap();
    let decisions = image_runner_core::Decisions::new(
        image_runner_core::BootKind::Uefi,
        image_runner_core::Arch::X86_64,
        None,
        image_runner_core::RunMode::choose(&image_runner_core::Config::default(), false),
    )
    .with_protocol(image_runner_core::Protocol::Limine);
    let ctx = Context::for_tests(kernel, decisions, dir.path());
    let err = Limine::new().stage(&ctx).unwrap_err().to_string();
    assert!(
        err.contains("Limine boots the kernel from an image, but this run builds none")
            && err.contains("set `format`"),
        "{err}"
    );
}

/// The first 512 bytes of the image the pipeline builds for `kernel` in `project`.
fn boot_sector(project: &Project, kernel: K, sets: &[&str]) -> Vec<u8> {
    let ctx = project.context_with(kernel, sets).unwrap();
    let media = Pipeline::new(&registry()).prepare(&ctx).unwrap();
    let image = media.image.expect("an image");
    let bytes = std::fs::read(&image.path).unwrap();
    bytes[..512].to_vec()
}

#[test]
fn the_bios_stages_of_the_staged_release_go_into_the_built_image() {
    let fixture = Fixture::new();
    let stage1 = b"LIMINE-STAGE1 8.2.0 (fixture)";
    for (format, attach) in [("gpt", "auto"), ("mbr", "auto"), ("iso", "disk")] {
        let project = Project::new(
            &fixture,
            &format!("boot = \"bios\"\nformat = \"{format}\"\nattach = \"{attach}\"\n"),
        );
        let sector = boot_sector(&project, K::X86, &[]);
        assert_eq!(&sector[..stage1.len()], stage1, "{format}");
        assert_eq!(sector[510..], [0x55, 0xAA], "{format}");
    }
    // A UEFI-only boot installs nothing: the disk keeps its own (protective) MBR.
    let project = Project::new(&fixture, "boot = \"uefi\"\nformat = \"gpt\"\n");
    let ctx = project.context(K::X86).unwrap();
    let staged = Limine::new().stage(&ctx).unwrap();
    let image = ctx.output_dir.join("uefi.img");
    std::fs::create_dir_all(&ctx.output_dir).unwrap();
    std::fs::write(&image, vec![0u8; 4096]).unwrap();
    Limine::new()
        .finish_image(&staged, &Image::new(&image, ImageKind::Disk), &ctx)
        .unwrap();
    assert_eq!(std::fs::read(&image).unwrap(), vec![0u8; 4096]);
}

#[test]
fn an_iso_booted_as_a_cd_does_without_the_disk_stages() {
    let fixture = Fixture::new();
    let dir = fixture.dir.path().join("no-hdd-stages");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in common::release_files("8.2.0") {
        if name != image_runner_limine::HDD_STAGES_FILE {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let metadata = format!(
        "boot = \"bios\"\nformat = \"iso\"\n[limine]\npath = \"{}\"\n",
        dir.display()
    );
    let project = Project::new(&fixture, &metadata);
    // Attached as a CD (the default for an ISO): built, without the disk stages.
    let sector = boot_sector(&project, K::X86, &[]);
    assert!(!sector.starts_with(b"LIMINE-STAGE1"));
    // Attached as a disk, the missing stages are an error naming the file.
    let ctx = project.context_with(K::X86, &["attach=disk"]).unwrap();
    let err = Pipeline::new(&registry())
        .prepare(&ctx)
        .unwrap_err()
        .to_string();
    assert!(err.contains(image_runner_limine::HDD_STAGES_FILE), "{err}");
}

#[test]
fn finishing_needs_what_stage_handed_over() {
    let fixture = Fixture::new();
    let project = Project::new(&fixture, "boot = \"bios\"\nformat = \"gpt\"\n");
    let ctx = project.context(K::X86).unwrap();
    let image = Image::new(ctx.output_dir.join("none.img"), ImageKind::Disk);
    let err = Limine::new()
        .finish_image(&Staged::new(Staging::new()), &image, &ctx)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Limine did not make"), "{err}");
}
