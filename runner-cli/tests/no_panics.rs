//! Random command lines, environments (values that are not UTF-8 included), kernel files and
//! config text, fed to the very entry point the binary uses: the runner never panics, and ends
//! with one of the exit codes it documents (0 to 4, 130).
//!
//! Safety of the random runs: everything happens inside one temporary folder (the current
//! directory of this test process, the target and cache directories), offline, and with
//! `qemu.binary` naming a program that does not exist, so no emulator ever starts.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use cargo_image_runner::main_with_env;
use proptest::prelude::*;

struct Fixture {
    /// Keeps the folder alive for the whole process.
    _dir: tempfile::TempDir,
    root: PathBuf,
}

/// The temporary folder every case works in; it is also the process's current directory.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("image-runner-fuzz-")
            .tempdir()
            .expect("create a temporary folder");
        let root = dir.path().to_path_buf();
        std::fs::write(
            root.join("Cargo.toml"),
            "[package]\nname = \"kernel\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
        )
        .expect("write Cargo.toml");
        std::env::set_current_dir(&root).expect("enter the temporary folder");
        Fixture { _dir: dir, root }
    })
}

/// Kernel files of every kind the runner recognises, each with random bytes after its header.
fn kernel_bytes() -> impl Strategy<Value = Vec<u8>> {
    let mut elf64 = vec![0u8; 64];
    elf64[..6].copy_from_slice(b"\x7fELF\x02\x01");
    elf64[18] = 62;
    let mut elf32_multiboot = vec![0u8; 64];
    elf32_multiboot[..6].copy_from_slice(b"\x7fELF\x01\x01");
    elf32_multiboot[18] = 3;
    let (magic, flags) = (0x1bad_b002u32, 0u32);
    elf32_multiboot.extend(magic.to_le_bytes());
    elf32_multiboot.extend(flags.to_le_bytes());
    elf32_multiboot.extend(0u32.wrapping_sub(magic + flags).to_le_bytes());
    let mut aarch64 = elf64.clone();
    aarch64[18] = 183;
    let mut mbr = vec![0u8; 512];
    mbr[510..].copy_from_slice(&[0x55, 0xaa]);
    let header = prop_oneof![
        3 => Just(elf64),
        3 => Just(elf32_multiboot),
        1 => Just(aarch64),
        1 => Just(mbr),
        1 => Just(b"MZ".to_vec()),
        1 => Just(b"\x7fELF".to_vec()),
        1 => Just(Vec::new()),
    ];
    (header, proptest::collection::vec(any::<u8>(), 0..600)).prop_map(|(mut head, tail)| {
        head.extend(tail);
        head
    })
}

/// A TOML value: the kinds users write, and some they should not.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "\"uefi\"",
            "\"bios\"",
            "\"hybrid\"",
            "\"auto\"",
            "\"none\"",
            "\"limine\"",
            "\"grub\"",
            "\"fat\"",
            "\"gpt\"",
            "\"mbr\"",
            "\"iso\"",
            "\"directory\"",
            "\"disk\"",
            "\"cdrom\"",
            "\"multiboot1\"",
            "\"multiboot2\"",
            "\"tcg\"",
            "\"kvm\"",
            "\"1G\"",
            "\"0\"",
            "\"\"",
            "\"{{EXECUTABLE}}\"",
            "\"{{NOPE}}\"",
            "\"{{\"",
            "\"[(\"",
            "\"../../x\"",
            "\"/\"",
            "true",
            "false",
            "0",
            "-1",
            "1",
            "33",
            "255",
            "65536",
            "4294967296",
            "9223372036854775807",
            "-9223372036854775808",
            "1.5",
            "nan",
            "inf",
            "[]",
            "[\"-s\"]",
            "[1, 2]",
            "{}",
            "{ a = 1 }",
            "[{ after = \"x\", text = \"y\" }]",
            "1979-05-27",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}".prop_map(|s| format!("{s:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

/// A config key, dotted (section.key) or shared.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "boot",
            "bootloader",
            "format",
            "attach",
            "protocol",
            "arch",
            "firmware",
            "runner",
            "cmdline",
            "offline",
            "modules",
            "entries",
            "variables.A",
            "variables.EXECUTABLE",
            "extra-files.\"a/b\"",
            "extra-files.\"../x\"",
            "image.fat-type",
            "image.label",
            "test.timeout",
            "test.success-exit-code",
            "test.success-pattern",
            "test.failure-pattern",
            "test.send",
            "test.args",
            "run.timeout",
            "run.success-exit-code",
            "qemu.memory",
            "qemu.cores",
            "qemu.cpu",
            "qemu.accel",
            "qemu.serial",
            "qemu.gui",
            "qemu.gdb-port",
            "qemu.args",
            "qemu.attach",
            "qemu.persist-writes",
            "ovmf.unified",
            "ovmf.warm-vars",
            "ovmf.code",
            "limine.version",
            "limine.path",
            "grub.extra-modules",
            "profile.p.boot",
            "profile.p.test.timeout",
            "nosuch.key",
            "qemu.nosuch",
        ])
        .prop_map(str::to_owned),
        "[a-z.-]{1,12}",
    ]
}

/// Config text: lines that are valid on their own; or random `key = value` lines (dotted
/// keys), now and then a line of noise; or plain random text.
fn config_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        8 => (key(), toml_value()).prop_map(|(k, v)| format!("{k} = {v}\n")),
        1 => "\\PC{0,30}".prop_map(|s| format!("{s}\n")),
    ];
    // Lines that are valid on their own, so that many configs get past validation and the
    // image is built.
    let good = proptest::sample::subsequence(
        vec![
            "boot = \"uefi\"",
            "boot = \"bios\"",
            "bootloader = \"none\"",
            "bootloader = \"grub\"",
            "bootloader = \"limine\"",
            "format = \"fat\"",
            "format = \"gpt\"",
            "format = \"mbr\"",
            "format = \"iso\"",
            "format = \"directory\"",
            "attach = \"disk\"",
            "attach = \"cdrom\"",
            "protocol = \"multiboot2\"",
            "protocol = \"multiboot1\"",
            "cmdline = \"{{ARGS}} {{EXECUTABLE_NAME}}\"",
            "arch = \"aarch64\"",
            "extra-files.\"x/y.txt\" = \"Cargo.toml\"",
            "extra-files.\"boot/kernel\" = \"Cargo.toml\"",
            "image.fat-type = 32",
            "image.label = \"K\"",
            "test.timeout = 1",
            "test.success-pattern = \"ok\"",
            "qemu.persist-writes = true",
            "qemu.serial = \"none\"",
            "ovmf.unified = false",
            "grub.extra-modules = [\"echo\"]",
        ],
        0..6,
    );
    prop_oneof![
        4 => good.prop_map(|lines| lines.join("\n")),
        6 => proptest::collection::vec(line, 0..6).prop_map(|lines| lines.concat()),
        1 => "\\PC{0,200}",
    ]
}

/// Bytes that are not UTF-8 (a lone 0xFF in the middle).
fn not_utf8() -> impl Strategy<Value = OsString> {
    "[a-z/]{0,6}".prop_map(|s| {
        let mut bytes = s.into_bytes();
        bytes.insert(bytes.len() / 2, 0xff);
        OsString::from_vec(bytes)
    })
}

fn any_text_or_bytes() -> impl Strategy<Value = OsString> {
    prop_oneof![
        "\\PC{0,16}".prop_map(OsString::from),
        not_utf8(),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(OsString::from_vec),
    ]
}

/// One command-line word: the runner's own words, `--set` pairs, the kernel, or anything.
fn word(kernel: PathBuf) -> impl Strategy<Value = OsString> {
    prop_oneof![
        4 => proptest::sample::select(vec![
            "run", "build", "config", "clean", "doctor", "limine", "list", "image-runner",
            "--profile", "p", "--set", "--manifest-dir", ".", "--offline", "-v", "-vv",
            "--test", "--no-test", "--print-cmd", "--gdb", "--gdb=0", "--gdb=70000", "--",
            "--help", "-V", "--nocapture", "-s",
        ])
        .prop_map(OsString::from),
        2 => (key(), toml_value()).prop_map(|(k, v)| OsString::from(format!("--set={k}={v}"))),
        3 => Just(kernel.into_os_string()),
        1 => any_text_or_bytes(),
    ]
}

/// The environment: the safety settings, then random variables, some of them the runner's.
fn environment(root: &Path) -> impl Strategy<Value = Vec<(OsString, OsString)>> {
    let base: Vec<(OsString, OsString)> = vec![
        ("CARGO_TARGET_DIR".into(), root.join("target").into()),
        ("CARGO_IMAGE_RUNNER_CACHE".into(), root.join("cache").into()),
        ("CARGO_NET_OFFLINE".into(), "true".into()),
        // No emulator may start: the runner is told to use one that does not exist.
        (
            "CARGO_IMAGE_RUNNER_QEMU_BINARY".into(),
            root.join("no-such-qemu").into(),
        ),
        ("HOME".into(), root.join("home").into()),
    ];
    let mut odd_target = root.as_os_str().to_owned();
    odd_target.push(OsString::from_vec(b"/target-\xff".to_vec()));
    let name = prop_oneof![
        proptest::sample::select(vec![
            "CARGO_IMAGE_RUNNER_BOOT",
            "CARGO_IMAGE_RUNNER_FORMAT",
            "CARGO_IMAGE_RUNNER_BOOTLOADER",
            "CARGO_IMAGE_RUNNER_TEST_TIMEOUT",
            "CARGO_IMAGE_RUNNER_QEMU_MEMORY",
            "CARGO_IMAGE_RUNNER_QEMU_ARGS",
            "CARGO_IMAGE_RUNNER_PROFILE",
            "CARGO_IMAGE_RUNNER_NOSUCH",
            "CARGO_IMAGE_RUNNER_",
            "CARGO_MANIFEST_DIR",
            "PWD",
            "HOME",
            "XDG_CACHE_HOME",
            "OVMF_CODE",
            "SOURCE_DATE_EPOCH",
            "IMAGE_RUNNER_FUZZ",
        ])
        .prop_map(OsString::from),
        not_utf8(),
    ];
    let value = prop_oneof![
        toml_value().prop_map(OsString::from),
        any_text_or_bytes(),
        Just(root.as_os_str().to_owned()),
    ];
    let target = prop_oneof![Just(root.join("target").into_os_string()), Just(odd_target),];
    (proptest::collection::vec((name, value), 0..4), target).prop_map(move |(random, target)| {
        let mut env = base.clone();
        env.extend(random);
        env.push(("CARGO_TARGET_DIR".into(), target));
        env
    })
}

const DOCUMENTED: [u8; 6] = [0, 1, 2, 3, 4, 130];

fn assert_documented(code: ExitCode, what: &dyn std::fmt::Debug) {
    assert!(
        DOCUMENTED.iter().any(|&c| ExitCode::from(c) == code),
        "exit code {code:?} is not documented, for {what:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Random command lines and environments, with a random kernel file.
    #[test]
    fn random_command_lines_and_environments(
        kernel in kernel_bytes(),
        words in proptest::collection::vec(word(fixture().root.join("kernel-a")), 0..7),
        env in environment(&fixture().root),
    ) {
        let root = &fixture().root;
        std::fs::write(root.join("kernel-a"), &kernel).expect("write the kernel");
        let args: Vec<OsString> = std::iter::once(OsString::from("cargo-image-runner"))
            .chain(words.iter().cloned())
            .collect();
        let code = main_with_env(args.clone(), env.clone());
        assert_documented(code, &(args, env));
    }

    /// Random config files, read for `config`, `build`, `--print-cmd` and a run.
    #[test]
    fn random_config_text(
        kernel in kernel_bytes(),
        text in config_text(),
        action in proptest::sample::select(vec!["config", "build", "--print-cmd", "run"]),
        env in environment(&fixture().root),
    ) {
        let project = fixture().root.join("project-b");
        std::fs::create_dir_all(&project).expect("create the project");
        std::fs::write(
            project.join("Cargo.toml"),
            "[package]\nname = \"kernel\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
        )
        .expect("write Cargo.toml");
        std::fs::write(project.join("image-runner.toml"), &text).expect("write the config");
        let kernel_path = project.join("kernel-b");
        std::fs::write(&kernel_path, &kernel).expect("write the kernel");
        let mut args: Vec<OsString> = vec!["cargo-image-runner".into(), action.into()];
        if action == "--print-cmd" || action == "run" {
            args.push("--test".into());
        }
        args.push("--manifest-dir".into());
        args.push(project.clone().into());
        args.push(kernel_path.into());
        let code = main_with_env(args, env.clone());
        assert_documented(code, &(text, action, env));
    }
}
