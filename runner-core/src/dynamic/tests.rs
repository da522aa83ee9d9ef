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

/// The four plugins of this binary behind a header of a later minor version, with longer
/// descriptors; header and table in static data, as the host requires.
unsafe extern "C" fn newer_minor_entry(host: *const HostApi) -> *const Header {
    static TABLE: OnceLock<Shared<[Longer; 4]>> = OnceLock::new();
    static HEADER: OnceLock<Shared<Header>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        // SAFETY: the exported entry with the host's API.
        let real = unsafe { &*image_runner_plugin_entry(host) };
        assert_eq!(real.count, 4);
        Shared(std::array::from_fn(|i| {
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
        }))
    });
    &HEADER
        .get_or_init(|| {
            Shared(Header {
                magic: abi::MAGIC,
                abi_major: abi::ABI_MAJOR,
                abi_minor: abi::ABI_MINOR + 9,
                descriptor_size: std::mem::size_of::<Longer>() as u32,
                count: 4,
                descriptors: table.0.as_ptr().cast::<Descriptor>(),
            })
        })
        .0
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

// Hand-made libraries: a header and a table written word by word, as a library not made by
// `export_plugin!` (or a damaged one) could hand them over. Each lives in this test binary's
// static data, which is the loaded image of the "library" whose entry function is here.

/// A descriptor as plain words: any value, even ones a `Descriptor` cannot hold.
#[repr(C)]
#[derive(Clone, Copy)]
struct Words {
    kind: u32,
    name: abi::Str,
    version: abi::Str,
    instance: *const std::ffi::c_void,
    call: *const std::ffi::c_void,
    free: *const std::ffi::c_void,
}

const _: () = assert!(
    std::mem::size_of::<Words>() == std::mem::size_of::<Descriptor>()
        && std::mem::align_of::<Words>() == std::mem::align_of::<Descriptor>()
);

/// Made once, never changed.
struct Shared<T>(T);
// SAFETY: made once, never changed.
unsafe impl<T> Sync for Shared<T> {}
// SAFETY: as above.
unsafe impl<T> Send for Shared<T> {}

/// Answers every method with an empty message (`SECTION`: no section).
unsafe extern "C" fn answer_empty(
    _instance: *const std::ffi::c_void,
    _method: u32,
    _input: abi::Str,
    _host: *const abi::HostCall,
    out: *mut abi::Buf,
) -> u32 {
    static EMPTY: &[u8] = b"{\"version\": 1}";
    // SAFETY: the host passes its Buf.
    unsafe {
        out.write(abi::Buf {
            ptr: EMPTY.as_ptr().cast_mut(),
            len: EMPTY.len(),
            cap: 0,
        });
    }
    abi::status::OK
}

/// Frees nothing (`answer_empty` hands out static bytes).
unsafe extern "C" fn free_nothing(_buf: abi::Buf) {}

/// A well-formed descriptor of `kind` called `name` (static text).
fn words(kind: u32, name: &'static [u8]) -> Words {
    Words {
        kind,
        name: abi::Str::new(name),
        version: abi::Str::new(b"9.9.9"),
        instance: std::ptr::null(),
        call: answer_empty as *const std::ffi::c_void,
        free: free_nothing as *const std::ffi::c_void,
    }
}

/// What a host that believes a lying count reads after the real descriptors: a plugin whose
/// name lies at an address nothing is mapped at.
fn poison() -> Words {
    Words {
        kind: abi::kind::RUNNER,
        name: abi::Str {
            ptr: std::ptr::without_provenance(0x10),
            len: 4,
        },
        ..words(abi::kind::RUNNER, b"")
    }
}

/// An entry function returning a header (in static data) whose table is `$table` (an array
/// expression of `Words`, kept in static data too) and whose count is `$count`.
macro_rules! hand_made {
    ($entry:ident, $n:literal, $count:expr, $table:expr) => {
        unsafe extern "C" fn $entry(_host: *const HostApi) -> *const Header {
            static TABLE: OnceLock<Shared<[Words; $n]>> = OnceLock::new();
            static HEADER: OnceLock<Shared<Header>> = OnceLock::new();
            let table = TABLE.get_or_init(|| Shared($table));
            &HEADER
                .get_or_init(|| {
                    Shared(Header {
                        magic: abi::MAGIC,
                        abi_major: abi::ABI_MAJOR,
                        abi_minor: abi::ABI_MINOR,
                        descriptor_size: std::mem::size_of::<Words>() as u32,
                        count: $count,
                        descriptors: table.0.as_ptr().cast::<Descriptor>(),
                    })
                })
                .0
        }
    };
}

fn load_error(entry: abi::EntryFn, library: &str) -> String {
    let mut registry = Registry::new();
    match load_entry(&mut registry, entry, Path::new(library), false, "a test") {
        Ok(added) => panic!("{library} loaded: {added:?}"),
        Err(e) => e.to_string(),
    }
}

hand_made!(
    lying_count_entry,
    2,
    u32::MAX,
    [words(abi::kind::FORMAT, b"liar"), poison()]
);

#[test]
fn a_header_claiming_more_descriptors_than_the_image_holds_is_refused_unread() {
    let err = load_error(lying_count_entry, "/plugins/libliar.so");
    assert!(
        err.starts_with(&format!(
            "plugin library `/plugins/libliar.so`: its header claims 4294967295 plugin descriptors of {} bytes, more than the library's loaded image holds there (room for ",
            std::mem::size_of::<Descriptor>()
        )) && err.ends_with("); the library is damaged or not built with image-runner-core"),
        "{err}"
    );
}

hand_made!(
    poisoned_entry,
    2,
    2,
    [words(abi::kind::FORMAT, b"liar"), poison()]
);

#[test]
fn a_name_outside_the_librarys_image_is_refused_unread() {
    let err = load_error(poisoned_entry, "/plugins/libliar.so");
    assert_eq!(
        err,
        "plugin library `/plugins/libliar.so`: plugin 1's name (4 bytes) lies outside the library's loaded image; the library is damaged or not built with image-runner-core"
    );
}

/// Data, not code: a `call` pointing here must never be called.
static NOT_CODE: [u8; 64] = [0; 64];

hand_made!(call_into_data_entry, 1, 1, {
    let mut plugin = words(abi::kind::RUNNER, b"data-runner");
    plugin.call = NOT_CODE.as_ptr().cast();
    [plugin]
});

hand_made!(null_free_entry, 1, 1, {
    let mut plugin = words(abi::kind::RUNNER, b"data-runner");
    plugin.free = std::ptr::null();
    [plugin]
});

#[test]
fn functions_outside_the_librarys_code_are_refused_uncalled() {
    let err = load_error(call_into_data_entry, "/plugins/libdata.so");
    assert_eq!(
        err,
        "plugin library `/plugins/libdata.so`: runner `data-runner`'s call function lies outside the library's code; the library is damaged or not built with image-runner-core"
    );
    let err = load_error(null_free_entry, "/plugins/libdata.so");
    assert_eq!(
        err,
        "plugin library `/plugins/libdata.so`: runner `data-runner`'s free function lies outside the library's code; the library is damaged or not built with image-runner-core"
    );
}

unsafe extern "C" fn heap_header_entry(_host: *const HostApi) -> *const Header {
    static TABLE: OnceLock<Shared<[Words; 1]>> = OnceLock::new();
    let table = TABLE.get_or_init(|| Shared([words(abi::kind::RUNNER, b"heap")]));
    Box::leak(Box::new(Header {
        magic: abi::MAGIC,
        abi_major: abi::ABI_MAJOR,
        abi_minor: abi::ABI_MINOR,
        descriptor_size: std::mem::size_of::<Words>() as u32,
        count: 1,
        descriptors: table.0.as_ptr().cast::<Descriptor>(),
    }))
}

unsafe extern "C" fn heap_table_entry(_host: *const HostApi) -> *const Header {
    static HEADER: OnceLock<Shared<Header>> = OnceLock::new();
    &HEADER
        .get_or_init(|| {
            let table: &'static [Words] = Box::leak(Box::new([words(abi::kind::RUNNER, b"heap")]));
            Shared(Header {
                magic: abi::MAGIC,
                abi_major: abi::ABI_MAJOR,
                abi_minor: abi::ABI_MINOR,
                descriptor_size: std::mem::size_of::<Words>() as u32,
                count: 1,
                descriptors: table.as_ptr().cast::<Descriptor>(),
            })
        })
        .0
}

#[test]
fn a_header_or_table_outside_the_librarys_image_is_refused_unread() {
    let err = load_error(heap_header_entry, "/plugins/libheap.so");
    assert_eq!(
        err,
        "plugin library `/plugins/libheap.so`: its entry symbol returned a header that lies outside the library's loaded image; the library is damaged or not built with image-runner-core"
    );
    let err = load_error(heap_table_entry, "/plugins/libheap.so");
    assert_eq!(
        err,
        format!(
            "plugin library `/plugins/libheap.so`: its plugin descriptor table lies outside the library's loaded image; the library is damaged, or made by an older `export_plugin!` that kept the table elsewhere: rebuild it against image-runner-core {}",
            env!("CARGO_PKG_VERSION")
        )
    );
}

// Names: a plugin's name selects it in config and names its config section.

hand_made!(
    shared_key_entry,
    1,
    1,
    [words(abi::kind::RUNNER, b"variables")]
);
hand_made!(test_key_entry, 1, 1, [words(abi::kind::FORMAT, b"test")]);
hand_made!(empty_name_entry, 1, 1, [words(abi::kind::RUNNER, b"")]);
hand_made!(newline_entry, 1, 1, [words(abi::kind::RUNNER, b"a\nb")]);
hand_made!(
    escape_entry,
    1,
    1,
    [words(abi::kind::RUNNER, b"\x1b[31mred")]
);
hand_made!(
    long_name_entry,
    1,
    1,
    [words(abi::kind::RUNNER, &[b'x'; 65])]
);
hand_made!(other_kind_entry, 1, 1, [words(abi::kind::RUNNER, b"none")]);
hand_made!(
    same_library_entry,
    2,
    2,
    [
        words(abi::kind::FIRMWARE, b"twice"),
        words(abi::kind::RUNNER, b"twice")
    ]
);
hand_made!(
    good_names_entry,
    2,
    2,
    [
        words(abi::kind::FIRMWARE, b"my-firmware_2"),
        words(abi::kind::RUNNER, "r\u{e9}seau".as_bytes())
    ]
);

#[test]
fn names_that_are_shared_keys_or_another_kinds_are_refused() {
    let shared = crate::config::SHARED_KEYS.join(", ");
    for (entry, kind, name) in [
        (shared_key_entry as abi::EntryFn, "runner", "variables"),
        (test_key_entry, "format", "test"),
    ] {
        assert_eq!(
            load_error(entry, "/plugins/libnames.so"),
            format!(
                "plugin library `/plugins/libnames.so`: exports {kind} `{name}`, a name a plugin cannot have: `{name}` is a key of the shared config, and a plugin's config section is named after the plugin (the shared keys: {shared}, and 0.5's profiles, verbose); rename the plugin"
            )
        );
    }
    assert_eq!(
        load_error(other_kind_entry, "/plugins/libnames.so"),
        "plugin library `/plugins/libnames.so`: exports runner `none`, a name a plugin cannot have: the built-in bootloader is called `none`, and a plugin's config section is named after the plugin, so plugins of different kinds cannot share a name (`replace` replaces a plugin of the same kind only); rename the plugin"
    );
    assert_eq!(
        load_error(same_library_entry, "/plugins/libnames.so"),
        "plugin library `/plugins/libnames.so`: exports runner `twice`, a name a plugin cannot have: this library's firmware is called `twice`, and a plugin's config section is named after the plugin, so plugins of different kinds cannot share a name (`replace` replaces a plugin of the same kind only); rename the plugin"
    );
    // Nothing of a refused library joins the registry.
    let mut registry = Registry::new();
    let before = registry.plugins();
    assert!(
        load_entry(
            &mut registry,
            same_library_entry,
            Path::new("/plugins/libnames.so"),
            false,
            "a test"
        )
        .is_err()
    );
    assert_eq!(registry.plugins(), before);
}

#[test]
fn empty_names_and_names_with_control_characters_are_refused() {
    let rule = "a plugin's name selects it in config and names its config section, so it is 1 to 64 bytes without control characters (newlines, ESC, ...) or invisible formatting characters";
    for (entry, shown) in [
        (empty_name_entry as abi::EntryFn, "``"),
        (newline_entry, "`a\\nb`"),
        (escape_entry, "`\\u{1b}[31mred`"),
    ] {
        assert_eq!(
            load_error(entry, "/plugins/libnames.so"),
            format!(
                "plugin library `/plugins/libnames.so`: exports runner {shown}, a name a plugin cannot have: {rule}; rename the plugin"
            )
        );
    }
    let err = load_error(long_name_entry, "/plugins/libnames.so");
    assert!(
        err.contains(&format!(
            "`{}`, a name a plugin cannot have: {rule}",
            "x".repeat(65)
        )),
        "{err}"
    );
    let mut registry = Registry::new();
    let added = load_entry(
        &mut registry,
        good_names_entry,
        Path::new("/plugins/libgood.so"),
        false,
        "a test",
    )
    .unwrap();
    assert_eq!(
        added,
        [
            ("firmware", "my-firmware_2".to_owned()),
            ("runner", "r\u{e9}seau".to_owned())
        ]
    );
}

struct LongName;

impl Runner for LongName {
    fn name(&self) -> &str {
        "a-runner-whose-name-is-longer-than-sixty-four-bytes-which-no-config-key-needs"
    }

    fn command(&self, _media: &BootMedia, _ctx: &Context) -> Result<CommandSpec, Error> {
        Err(Error::plugin("long", "never called"))
    }

    fn run(
        &self,
        _media: &BootMedia,
        _ctx: &Context,
        _handler: &mut dyn SerialHandler,
    ) -> Result<Outcome, Error> {
        Err(Error::plugin("long", "never called"))
    }
}

#[test]
fn the_export_glue_keeps_what_the_host_reads_in_static_data() {
    // SAFETY: no host API.
    let header = unsafe { image_runner_plugin_entry(std::ptr::null()) };
    let image =
        super::image::LoadedImage::holding(image_runner_plugin_entry as *const std::ffi::c_void)
            .expect("this binary's image");
    // SAFETY: the header `export_plugin!` made.
    let made = unsafe { &*header };
    let size = std::mem::size_of::<Descriptor>();
    assert!(image.holds(header.cast(), std::mem::size_of::<Header>()));
    assert!(image.holds(made.descriptors.cast(), made.count as usize * size));
    for i in 0..made.count as usize {
        // SAFETY: `count` descriptors.
        let d = unsafe { &*made.descriptors.add(i) };
        assert!(image.holds(d.name.ptr, d.name.len) && image.holds(d.version.ptr, d.version.len));
    }
    // A name longer than a plugin name may be: no header, and a warning.
    static EXPORTED: super::export::Exported<1> = super::export::Exported::new();
    // SAFETY: no host API.
    let header = unsafe {
        super::export::entry(std::ptr::null(), &EXPORTED, "1.0.0", || {
            [super::export::runner(LongName)]
        })
    };
    assert!(header.is_null());
}
