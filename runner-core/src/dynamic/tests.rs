//! The ABI end to end inside one process: plugins of every kind exported with
//! `export_plugin!` from this test crate, loaded through their entry function (as `dlopen` would
//! hand it over) and called through the traits, the way the pipeline calls them.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::abi::{self, Descriptor, Header, HostApi};
use super::host::load_entry;
use crate::command::CommandSpec;
use crate::config::{Config, ConfigLayers, Section};
use crate::context::Context;
use crate::decisions::{Decisions, ImagePlan, RunMode};
use crate::error::Error;
use crate::kernel::{Arch, Kernel, KernelFormat};
use crate::media::{BootKind, BootMedia, FirmwareFiles, Image, ImageKind, Outcome, Verdict};
use crate::plugin::{Bootloader, BuildRequest, Firmware, ImageFormat, Runner, Staged};
use crate::registry::{Origin, Registry};
use crate::serial::{Control, SerialHandler};
use crate::staging::{ImagePath, Source, Staging};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct BootConfig {
    greeting: String,
}

struct TestBoot;

impl Bootloader for TestBoot {
    fn name(&self) -> &str {
        "test-boot"
    }

    fn wants_image(&self, _kernel: &Kernel, boot: BootKind) -> bool {
        boot == BootKind::Bios
    }

    fn wants_uefi_shell(&self, ctx: &Context) -> bool {
        ctx.args.iter().any(|a| a == "shell")
    }

    fn stage(&self, ctx: &Context) -> Result<Staged, Error> {
        let config: BootConfig = ctx.section("test-boot")?;
        let mut staging = Staging::new();
        staging.add(
            ImagePath::new("boot/greeting")?,
            Source::Bytes(config.greeting.into_bytes()),
        )?;
        Ok(Staged::new(staging).with_state(String::from("kept by the plugin")))
    }

    fn finish_image(&self, staged: &Staged, image: &Image, _ctx: &Context) -> Result<(), Error> {
        let state = staged.state::<String>().cloned().unwrap_or_default();
        let mut bytes =
            std::fs::read(&image.path).map_err(|e| Error::io("read", &image.path, e))?;
        bytes.extend_from_slice(format!(" finished ({state})").as_bytes());
        std::fs::write(&image.path, bytes).map_err(|e| Error::io("write", &image.path, e))
    }

    fn config_section(&self) -> Option<Section> {
        Some(Section::of::<BootConfig>())
    }
}

struct TestFormat;

impl ImageFormat for TestFormat {
    fn name(&self) -> &str {
        "test-format"
    }

    fn kind(&self) -> ImageKind {
        ImageKind::Fat
    }

    fn build(&self, request: &BuildRequest<'_>) -> Result<Image, Error> {
        let path = request.ctx.output_dir.join("test.img");
        std::fs::create_dir_all(&request.ctx.output_dir)
            .map_err(|e| Error::io("create", &request.ctx.output_dir, e))?;
        let names: Vec<String> = request
            .staging
            .entries
            .keys()
            .map(|p| p.to_string())
            .collect();
        std::fs::write(&path, names.join(",")).map_err(|e| Error::io("write", &path, e))?;
        let image = Image::new(path, ImageKind::Fat);
        request.finish(&image)?;
        Ok(image.with_disk_format("raw"))
    }
}

struct TestFirmware;

impl Firmware for TestFirmware {
    fn name(&self) -> &str {
        "test-firmware"
    }

    fn resolve(&self, ctx: &Context) -> Result<FirmwareFiles, Error> {
        Ok(FirmwareFiles::Unified(ctx.cache_dir.join("fw.fd")))
    }

    fn uefi_shell(&self, ctx: &Context) -> Result<Option<std::path::PathBuf>, Error> {
        Ok(Some(ctx.cache_dir.join("shell.efi")))
    }

    fn after_run(
        &self,
        _files: &FirmwareFiles,
        outcome: &Outcome,
        _ctx: &Context,
    ) -> Result<(), Error> {
        match outcome.verdict {
            Verdict::Success => Ok(()),
            _ => Err(Error::plugin("test-firmware", "saw a failed run")),
        }
    }
}

struct TestRunner;

impl Runner for TestRunner {
    fn name(&self) -> &str {
        "test-runner"
    }

    fn command(&self, media: &BootMedia, _ctx: &Context) -> Result<CommandSpec, Error> {
        let mut command = CommandSpec::new("true");
        command.arg(media.boot.name());
        Ok(command)
    }

    fn run(
        &self,
        _media: &BootMedia,
        _ctx: &Context,
        handler: &mut dyn SerialHandler,
    ) -> Result<Outcome, Error> {
        let mut control = Control::new();
        handler.output(b"name? ", &mut control);
        let typed = control.take_input();
        handler.output(&typed, &mut control);
        let verdict = control.take_verdict().unwrap_or(Verdict::Success);
        Ok(Outcome::new(verdict, Duration::from_millis(5)))
    }

    fn checks(&self) -> Vec<crate::media::Check> {
        panic!("checks of the test runner")
    }
}

crate::export_plugin!(
    bootloader: TestBoot,
    format: TestFormat,
    firmware: TestFirmware,
    runner: TestRunner
);

const LIBRARY: &str = "/plugins/libtest.so";

fn loaded() -> Registry {
    let mut registry = Registry::new();
    let added = load_entry(
        &mut registry,
        image_runner_plugin_entry,
        Path::new(LIBRARY),
        false,
        "a test",
    )
    .unwrap();
    assert_eq!(added.len(), 4);
    registry
}

fn context(dir: &Path) -> Context {
    let kernel = Kernel::described("/k/kernel", KernelFormat::Elf { bits: 32 }, Arch::X86_64);
    let decisions = Decisions::new(
        BootKind::Bios,
        Arch::X86_64,
        Some(ImagePlan::new("test-format", ImageKind::Fat)),
        RunMode::choose(&Config::default(), true),
    );
    Context::for_tests(kernel, decisions, dir)
        .with_section(
            "test-boot",
            &BootConfig {
                greeting: "hello".into(),
            },
        )
        .unwrap()
}

/// Records the serial output; answers the prompt and ends the run on the echo.
struct Handler(Vec<u8>);

impl SerialHandler for Handler {
    fn output(&mut self, bytes: &[u8], control: &mut Control) {
        self.0.extend_from_slice(bytes);
        if bytes == b"name? " {
            control.send("world");
        } else if bytes == b"world" {
            control.finish(Verdict::GuestFailure {
                code: Some(3),
                reason: "echoed".into(),
            });
        }
    }
}

#[test]
fn every_kind_works_through_the_abi() {
    let dir = tempfile::tempdir().unwrap();
    let registry = loaded();
    let ctx = context(dir.path());
    let listed: Vec<(&str, String, Origin)> = registry
        .plugins()
        .into_iter()
        .filter(|p| p.name.starts_with("test-"))
        .map(|p| {
            assert_eq!(p.version, env!("CARGO_PKG_VERSION"));
            (p.kind, p.name, p.origin)
        })
        .collect();
    let from = Origin::Library(LIBRARY.into());
    assert_eq!(
        listed,
        [
            ("bootloader", "test-boot".to_owned(), from.clone()),
            ("format", "test-format".to_owned(), from.clone()),
            ("firmware", "test-firmware".to_owned(), from.clone()),
            ("runner", "test-runner".to_owned(), from),
        ]
    );

    // Bootloader → format (whose build calls the bootloader's finish back through the host).
    let bootloader = registry.bootloader("test-boot").unwrap();
    assert!(bootloader.wants_image(&ctx.kernel, BootKind::Bios));
    assert!(!bootloader.wants_image(&ctx.kernel, BootKind::Uefi));
    assert!(!bootloader.wants_uefi_shell(&ctx));
    let mut with_shell = ctx.clone();
    with_shell.args = vec!["shell".into()];
    assert!(bootloader.wants_uefi_shell(&with_shell));
    let staged = bootloader.stage(&ctx).unwrap();
    let greeting = ImagePath::new("boot/greeting").unwrap();
    assert_eq!(
        staged.staging.entries.get(&greeting),
        Some(&Source::Bytes(b"hello".to_vec()))
    );
    let format = registry.format("test-format").unwrap();
    assert_eq!(format.kind(), ImageKind::Fat);
    let finish = |image: &Image| bootloader.finish_image(&staged, image, &ctx);
    let image = format
        .build(&BuildRequest::new(&staged.staging, &ctx).with_finish(&finish))
        .unwrap();
    assert_eq!(image.disk_format.as_deref(), Some("raw"));
    assert_eq!(
        std::fs::read_to_string(&image.path).unwrap(),
        "/boot/greeting finished (kept by the plugin)"
    );

    // Firmware, with the run's outcome afterwards.
    let firmware = registry.firmware("test-firmware").unwrap();
    let files = firmware.resolve(&ctx).unwrap();
    assert_eq!(files, FirmwareFiles::Unified(ctx.cache_dir.join("fw.fd")));
    assert_eq!(
        firmware.uefi_shell(&ctx).unwrap(),
        Some(ctx.cache_dir.join("shell.efi"))
    );
    let passed = Outcome::new(Verdict::Success, Duration::ZERO);
    firmware.after_run(&files, &passed, &ctx).unwrap();
    let failed = Outcome::new(Verdict::Interrupted, Duration::ZERO);
    assert_eq!(
        firmware
            .after_run(&files, &failed, &ctx)
            .unwrap_err()
            .to_string(),
        "test-firmware: saw a failed run"
    );

    // Runner: the serial output reaches the host's handler, which types and ends the run.
    let runner = registry.runner("test-runner").unwrap();
    let mut media = BootMedia::new(BootKind::Bios);
    media.image = Some(image);
    assert_eq!(
        runner.command(&media, &ctx).unwrap().to_string(),
        "true bios"
    );
    let mut handler = Handler(Vec::new());
    let outcome = runner.run(&media, &ctx, &mut handler).unwrap();
    assert_eq!(handler.0, b"name? world");
    assert_eq!(
        outcome.verdict,
        Verdict::GuestFailure {
            code: Some(3),
            reason: "echoed".into()
        }
    );

    // A panic in a plugin's call is an error (here a finding of `doctor`), never an abort.
    let checks = runner.checks();
    assert_eq!(checks.len(), 1);
    assert!(
        checks[0]
            .detail
            .contains("the plugin panicked in checks: checks of the test runner at "),
        "{checks:?}"
    );
}

#[test]
fn a_library_plugins_section_is_checked_with_positions() {
    let registry = loaded();
    let mut layers = ConfigLayers::new(&registry.sections());
    let err = layers
        .add_file_str(
            Path::new("image-runner.toml"),
            "bootloader = \"test-boot\"\n[test-boot]\ngreting = \"hi\"\n",
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "image-runner.toml:3:1: unknown field `greting`, expected `greeting`\n    3 | greting = \"hi\"\n      | ^^^^^^^"
        ),
        "{err}"
    );
    assert!(err.contains("did you mean `greeting`?"), "{err}");
    layers
        .add_file_str(Path::new("ok.toml"), "[test-boot]\ngreeting = \"hi\"\n")
        .unwrap();
    // Without positions (environment, `--set`), the key is named.
    let err = layers
        .add_overrides(&["test-boot.greting=hi".to_owned()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown field `greting`, expected `greeting` (at `greting`)"),
        "{err}"
    );
}

#[test]
fn a_second_library_with_the_same_names_is_refused_unless_it_replaces() {
    let mut registry = loaded();
    let err = load_entry(
        &mut registry,
        image_runner_plugin_entry,
        Path::new("/plugins/libother.so"),
        false,
        "`--plugin`",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "plugin library `/plugins/libother.so`: exports bootloader `test-boot`, which plugin library `/plugins/libtest.so` exports too; load only one of them, or give the later one `replace = true` (named in `--plugin`)"
    );
    load_entry(
        &mut registry,
        image_runner_plugin_entry,
        Path::new("/plugins/libother.so"),
        true,
        "`--plugin`",
    )
    .unwrap();
    assert!(
        registry
            .plugins()
            .iter()
            .filter(|p| p.name.starts_with("test-"))
            .all(|p| p.origin == Origin::Library("/plugins/libother.so".into()))
    );
}

/// The same plugins behind a header of a later minor version with longer descriptors.
#[repr(C)]
struct Longer {
    descriptor: Descriptor,
    added_later: [u64; 3],
}

struct NewerMinor {
    header: Header,
    _descriptors: Vec<Longer>,
}

// SAFETY: made once, never changed.
unsafe impl Sync for NewerMinor {}
// SAFETY: as above.
unsafe impl Send for NewerMinor {}

unsafe extern "C" fn newer_minor_entry(host: *const HostApi) -> *const Header {
    static MADE: OnceLock<NewerMinor> = OnceLock::new();
    let made = MADE.get_or_init(|| {
        // SAFETY: the exported entry with the host's API.
        let real = unsafe { &*image_runner_plugin_entry(host) };
        let descriptors: Vec<Longer> = (0..real.count as usize)
            .map(|i| {
                // SAFETY: `count` descriptors of this build's size.
                let d = unsafe { &*real.descriptors.add(i) };
                Longer {
                    descriptor: Descriptor {
                        kind: d.kind,
                        name: d.name,
                        version: d.version,
                        instance: d.instance,
                        call: d.call,
                        free: d.free,
                    },
                    added_later: [u64::MAX; 3],
                }
            })
            .collect();
        NewerMinor {
            header: Header {
                magic: abi::MAGIC,
                abi_major: abi::ABI_MAJOR,
                abi_minor: abi::ABI_MINOR + 9,
                descriptor_size: std::mem::size_of::<Longer>() as u32,
                count: descriptors.len() as u32,
                descriptors: descriptors.as_ptr().cast::<Descriptor>(),
            },
            _descriptors: descriptors,
        }
    });
    &made.header
}

#[test]
fn a_library_of_a_newer_minor_version_loads() {
    let mut registry = Registry::new();
    let added = load_entry(
        &mut registry,
        newer_minor_entry,
        Path::new("/plugins/libnewer.so"),
        false,
        "a test",
    )
    .unwrap();
    assert_eq!(
        added,
        [
            ("bootloader", "test-boot".to_owned()),
            ("format", "test-format".to_owned()),
            ("firmware", "test-firmware".to_owned()),
            ("runner", "test-runner".to_owned()),
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let files = registry
        .firmware("test-firmware")
        .unwrap()
        .resolve(&ctx)
        .unwrap();
    assert_eq!(files, FirmwareFiles::Unified(ctx.cache_dir.join("fw.fd")));
}

struct Broken(Header);
// SAFETY: made once, never changed.
unsafe impl Sync for Broken {}
// SAFETY: as above.
unsafe impl Send for Broken {}

unsafe extern "C" fn null_table_entry(_host: *const HostApi) -> *const Header {
    static BROKEN: Broken = Broken(Header {
        magic: abi::MAGIC,
        abi_major: abi::ABI_MAJOR,
        abi_minor: abi::ABI_MINOR,
        descriptor_size: std::mem::size_of::<Descriptor>() as u32,
        count: 2,
        descriptors: std::ptr::null(),
    });
    &BROKEN.0
}

unsafe extern "C" fn odd_stride_entry(_host: *const HostApi) -> *const Header {
    static BROKEN: Broken = Broken(Header {
        magic: abi::MAGIC,
        abi_major: abi::ABI_MAJOR,
        abi_minor: abi::ABI_MINOR,
        descriptor_size: std::mem::size_of::<Descriptor>() as u32 + 1,
        count: 0,
        descriptors: std::ptr::null(),
    });
    &BROKEN.0
}

#[test]
fn a_missing_or_misaligned_descriptor_table_is_refused_before_it_is_read() {
    for entry in [
        null_table_entry as unsafe extern "C" fn(*const HostApi) -> *const Header,
        odd_stride_entry,
    ] {
        let mut registry = Registry::new();
        let err = load_entry(
            &mut registry,
            entry,
            Path::new("/plugins/libbroken.so"),
            false,
            "a test",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`/plugins/libbroken.so`")
                && err.contains("descriptor table is missing or misaligned"),
            "{err}"
        );
    }
}
