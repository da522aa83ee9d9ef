//! The host side: loads a plugin library, checks its header (magic, then ABI major, before
//! anything else), and wraps each plugin it exports in a type that implements the plugin's
//! trait, so it joins the [`Registry`] like a built-in. A loaded library is never unloaded.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::Table;

use super::abi::{
    self, Buf, CallFn, Descriptor, EntryFn, FreeFn, Header, HostApi, HostCall, Str, method, op,
    status,
};
use super::image::LoadedImage;
use super::messages::{self as msg, ContextMessage};
use crate::command::CommandSpec;
use crate::config::{SHARED_KEYS, Section};
use crate::context::Context;
use crate::error::Error;
use crate::kernel::Kernel;
use crate::media::{
    BootKind, BootMedia, Check, CheckStatus, FirmwareFiles, Image, ImageKind, Outcome,
};
use crate::plugin::{Bootloader, BuildRequest, Firmware, ImageFormat, Runner, Staged};
use crate::registry::{Loaded, Origin, PluginInfo, Registry};
use crate::serial::{Control, SerialHandler};

/// Verbosity for plugins' log messages: warnings always, `info` from `-v`, `debug` from `-vv`.
static VERBOSE: AtomicU8 = AtomicU8::new(0);

unsafe extern "C" fn host_log(level: u32, message: Str) {
    // SAFETY: the plugin passes text valid for the duration of the call.
    let text = String::from_utf8_lossy(unsafe { message.as_bytes() });
    let shown = match level {
        abi::level::WARN => true,
        abi::level::INFO => VERBOSE.load(Ordering::Relaxed) >= 1,
        _ => VERBOSE.load(Ordering::Relaxed) >= 2,
    };
    if shown {
        let tag = if level == abi::level::WARN {
            "warning"
        } else {
            "plugin"
        };
        eprintln!("{tag}: {text}");
    }
}

static HOST_API: HostApi = HostApi {
    size: std::mem::size_of::<HostApi>() as u32,
    abi_major: abi::ABI_MAJOR,
    abi_minor: abi::ABI_MINOR,
    log: host_log,
};

/// The kind names used in messages, `plugins` output and the registry.
pub(crate) fn kind_name(kind: u32) -> Option<&'static str> {
    match kind {
        abi::kind::BOOTLOADER => Some("bootloader"),
        abi::kind::FORMAT => Some("format"),
        abi::kind::FIRMWARE => Some("firmware"),
        abi::kind::RUNNER => Some("runner"),
        _ => None,
    }
}

/// One plugin of a loaded library: what the host calls it through.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) library: PathBuf,
    pub(crate) kind: &'static str,
    pub(crate) name: String,
    pub(crate) version: String,
    /// The ABI minor version the library was built for (methods added later are not called).
    abi_minor: u32,
    instance: *const c_void,
    call: CallFn,
    free: FreeFn,
}

// SAFETY: the library is never unloaded, and the export glue makes every call safe from any
// thread (plugins are `Send + Sync`).
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

type HostOp<'a> = dyn FnMut(u32, &[u8]) -> Result<Vec<u8>, String> + 'a;

/// What a running call's host operations reach. Behind a lock: a plugin that breaks the
/// one-thread-at-a-time rule of [`HostCall`] waits instead of racing the host's state.
struct Ops<'a, 'b> {
    serve: &'a mut HostOp<'b>,
    reply: Vec<u8>,
}

unsafe extern "C" fn host_call(ctx: *mut c_void, op: u32, input: Str, reply: *mut Str) -> u32 {
    // SAFETY: `ctx` is the lock around the `Ops` of the call under way, alive until it ends.
    let lock = unsafe { &*ctx.cast::<std::sync::Mutex<Ops<'_, '_>>>() };
    let mut ops = lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // SAFETY: the plugin passes a message valid for the duration of the operation.
    let input = unsafe { input.as_bytes() };
    let result = catch_unwind(AssertUnwindSafe(|| (ops.serve)(op, input)));
    let (code, bytes) = match result {
        Ok(Ok(bytes)) => (status::OK, bytes),
        Ok(Err(text)) => (status::ERROR, text.into_bytes()),
        Err(_) => (
            status::PANIC,
            b"the host panicked while serving the plugin".to_vec(),
        ),
    };
    ops.reply = bytes;
    if !reply.is_null() {
        // SAFETY: `reply` points at the plugin's Str; the bytes live in `ops` until the next
        // operation or the end of the call.
        unsafe { reply.write(Str::new(&ops.reply)) };
    }
    code
}

fn no_ops(op: u32, _: &[u8]) -> Result<Vec<u8>, String> {
    Err(format!("operation {op} is not offered during this call"))
}

impl Handle {
    fn label(&self) -> String {
        format!(
            "{} `{}` (plugin library `{}`)",
            self.kind,
            self.name,
            self.library.display()
        )
    }

    /// Calls `method` with `input`, serving host operations with `serve`.
    fn call_with<I: Serialize, O: DeserializeOwned>(
        &self,
        method: u32,
        what: &str,
        input: &I,
        serve: &mut HostOp<'_>,
    ) -> Result<O, Error> {
        let input = serde_json::to_vec(input)
            .map_err(|e| Error::plugin(self.label(), format!("the message for {what}: {e}")))?;
        let ops = std::sync::Mutex::new(Ops {
            serve,
            reply: Vec::new(),
        });
        let host = HostCall {
            ctx: (&raw const ops).cast_mut().cast::<c_void>(),
            call: host_call,
        };
        let mut out = Buf::EMPTY;
        // SAFETY: `call` and `instance` come from the library's descriptor; the library stays
        // loaded; `input`, `host` and `out` live for the duration of the call.
        let code = unsafe { (self.call)(self.instance, method, Str::new(&input), &host, &mut out) };
        let bytes = if out.ptr.is_null() {
            Vec::new()
        } else {
            // SAFETY: the library returned `len` readable bytes; they are freed right after.
            let copied = unsafe {
                Str {
                    ptr: out.ptr,
                    len: out.len,
                }
                .as_bytes()
                .to_vec()
            };
            // SAFETY: given back once, to the library that allocated it.
            unsafe { (self.free)(out) };
            copied
        };
        let text = || String::from_utf8_lossy(&bytes).into_owned();
        match code {
            status::OK => serde_json::from_slice(&bytes).map_err(|e| {
                Error::plugin(
                    self.label(),
                    format!("its answer to {what} could not be read: {e}"),
                )
            }),
            status::ERROR => Err(Error::FromLibrary(text())),
            status::PANIC => Err(Error::plugin(
                self.label(),
                format!(
                    "the plugin panicked in {what}: {}; this is a bug in the plugin, report it to its author",
                    text()
                ),
            )),
            status::UNKNOWN => Err(Error::plugin(
                self.label(),
                format!("the plugin does not implement {what}; it may be built for another kind"),
            )),
            _ => Err(Error::plugin(
                self.label(),
                format!("{what} failed (status {code}): {}", text()),
            )),
        }
    }

    fn call<I: Serialize, O: DeserializeOwned>(
        &self,
        method: u32,
        what: &str,
        input: &I,
    ) -> Result<O, Error> {
        self.call_with(method, what, input, &mut no_ops)
    }

    fn ctx(&self, ctx: &Context) -> ContextMessage {
        VERBOSE.store(ctx.verbose, Ordering::Relaxed);
        ContextMessage::new(ctx, &self.name)
    }

    fn checks(&self) -> Vec<Check> {
        match self.call::<_, msg::ChecksReply>(method::CHECKS, "checks", &msg::Empty::default()) {
            Ok(reply) => reply.checks,
            Err(e) => vec![Check::new(
                format!("{} `{}`", self.kind, self.name),
                CheckStatus::Warn,
                e.to_string(),
            )],
        }
    }
}

/// The section of a library's plugin: defaults from the library; each source's table checked
/// by the library, its mistakes placed at the key it names.
fn section_of(handle: &Arc<Handle>) -> Result<Option<Section>, Error> {
    let reply: msg::SectionReply =
        handle.call(method::SECTION, "config_section", &msg::Empty::default())?;
    let Some(defaults) = reply.defaults else {
        return Ok(None);
    };
    let checker = Arc::clone(handle);
    Ok(Some(Section::located(defaults, move |table: &Table| {
        let request = msg::CheckSection {
            version: msg::MESSAGE_VERSION,
            table: table.clone(),
        };
        match checker.call::<_, msg::CheckSectionReply>(
            method::CHECK_SECTION,
            "the config section check",
            &request,
        ) {
            Ok(reply) => match reply.error {
                None => Ok(()),
                Some(e) => Err((e.message, e.path)),
            },
            Err(e) => Err((e.to_string(), Vec::new())),
        }
    })))
}

struct DynBootloader {
    handle: Arc<Handle>,
    section: Option<Section>,
}

impl Bootloader for DynBootloader {
    fn name(&self) -> &str {
        &self.handle.name
    }

    fn wants_image(&self, kernel: &Kernel, boot: BootKind) -> bool {
        let request = msg::WantsImage {
            version: msg::MESSAGE_VERSION,
            kernel: kernel.clone(),
            boot,
        };
        match self.handle.call::<_, msg::WantsImageReply>(
            method::BOOTLOADER_WANTS_IMAGE,
            "wants_image",
            &request,
        ) {
            Ok(reply) => reply.wants,
            Err(e) => {
                eprintln!("warning: {e}; assuming it stages an image");
                true
            }
        }
    }

    fn wants_uefi_shell(&self, ctx: &Context) -> bool {
        if self.handle.abi_minor < 1 {
            return false;
        }
        match self.handle.call::<_, msg::WantsImageReply>(
            method::BOOTLOADER_WANTS_UEFI_SHELL,
            "wants_uefi_shell",
            &self.handle.ctx(ctx),
        ) {
            Ok(reply) => reply.wants,
            Err(e) => {
                eprintln!("warning: {e}; assuming it needs no UEFI shell");
                false
            }
        }
    }

    fn stage(&self, ctx: &Context) -> Result<Staged, Error> {
        let reply: msg::StagedReply =
            self.handle
                .call(method::BOOTLOADER_STAGE, "stage", &self.handle.ctx(ctx))?;
        Ok(Staged::new(reply.staging).with_state(reply.handle))
    }

    fn finish_image(&self, staged: &Staged, image: &Image, ctx: &Context) -> Result<(), Error> {
        let request = msg::FinishImage {
            version: msg::MESSAGE_VERSION,
            handle: staged.state::<u64>().copied().unwrap_or(0),
            staging: staged.staging.clone(),
            image: image.clone(),
            ctx: self.handle.ctx(ctx),
        };
        self.handle
            .call::<_, msg::Empty>(method::BOOTLOADER_FINISH_IMAGE, "finish_image", &request)
            .map(drop)
    }

    fn config_section(&self) -> Option<Section> {
        self.section.clone()
    }

    fn checks(&self) -> Vec<Check> {
        self.handle.checks()
    }
}

struct DynFormat {
    handle: Arc<Handle>,
    section: Option<Section>,
    kind: ImageKind,
}

impl ImageFormat for DynFormat {
    fn name(&self) -> &str {
        &self.handle.name
    }

    fn kind(&self) -> ImageKind {
        self.kind
    }

    fn build(&self, request: &BuildRequest<'_>) -> Result<Image, Error> {
        let message = msg::Build {
            version: msg::MESSAGE_VERSION,
            ctx: self.handle.ctx(request.ctx),
            staging: request.staging.clone(),
        };
        let mut serve = |op: u32, input: &[u8]| -> Result<Vec<u8>, String> {
            if op != op::FINISH {
                return no_ops(op, input);
            }
            let image: msg::ImageReply = serde_json::from_slice(input)
                .map_err(|e| format!("the image to finish could not be read: {e}"))?;
            request.finish(&image.image).map_err(|e| e.to_string())?;
            serde_json::to_vec(&msg::Empty::default()).map_err(|e| e.to_string())
        };
        let reply: msg::ImageReply =
            self.handle
                .call_with(method::FORMAT_BUILD, "build", &message, &mut serve)?;
        Ok(reply.image)
    }

    fn config_section(&self) -> Option<Section> {
        self.section.clone()
    }

    fn checks(&self) -> Vec<Check> {
        self.handle.checks()
    }
}

struct DynFirmware {
    handle: Arc<Handle>,
    section: Option<Section>,
}

impl Firmware for DynFirmware {
    fn name(&self) -> &str {
        &self.handle.name
    }

    fn resolve(&self, ctx: &Context) -> Result<FirmwareFiles, Error> {
        let reply: msg::FirmwareReply =
            self.handle
                .call(method::FIRMWARE_RESOLVE, "resolve", &self.handle.ctx(ctx))?;
        Ok(reply.files)
    }

    fn uefi_shell(&self, ctx: &Context) -> Result<Option<std::path::PathBuf>, Error> {
        if self.handle.abi_minor < 1 {
            return Ok(None);
        }
        let reply: msg::ShellReply = self.handle.call(
            method::FIRMWARE_UEFI_SHELL,
            "uefi_shell",
            &self.handle.ctx(ctx),
        )?;
        Ok(reply.shell)
    }

    fn after_run(
        &self,
        files: &FirmwareFiles,
        outcome: &Outcome,
        ctx: &Context,
    ) -> Result<(), Error> {
        let request = msg::AfterRun {
            version: msg::MESSAGE_VERSION,
            files: files.clone(),
            outcome: outcome.clone(),
            ctx: self.handle.ctx(ctx),
        };
        self.handle
            .call::<_, msg::Empty>(method::FIRMWARE_AFTER_RUN, "after_run", &request)
            .map(drop)
    }

    fn config_section(&self) -> Option<Section> {
        self.section.clone()
    }

    fn checks(&self) -> Vec<Check> {
        self.handle.checks()
    }
}

struct DynRunner {
    handle: Arc<Handle>,
    section: Option<Section>,
}

impl Runner for DynRunner {
    fn name(&self) -> &str {
        &self.handle.name
    }

    fn command(&self, media: &BootMedia, ctx: &Context) -> Result<CommandSpec, Error> {
        let request = msg::RunMessage {
            version: msg::MESSAGE_VERSION,
            media: media.clone(),
            ctx: self.handle.ctx(ctx),
        };
        let reply: msg::CommandReply =
            self.handle
                .call(method::RUNNER_COMMAND, "command", &request)?;
        Ok(reply.command)
    }

    fn run(
        &self,
        media: &BootMedia,
        ctx: &Context,
        handler: &mut dyn SerialHandler,
    ) -> Result<Outcome, Error> {
        let request = msg::RunMessage {
            version: msg::MESSAGE_VERSION,
            media: media.clone(),
            ctx: self.handle.ctx(ctx),
        };
        let handler = std::sync::Mutex::new(handler);
        let mut serve = |op: u32, input: &[u8]| -> Result<Vec<u8>, String> {
            if op != op::SERIAL {
                return no_ops(op, input);
            }
            let chunk: msg::SerialChunk = serde_json::from_slice(input)
                .map_err(|e| format!("the serial output could not be read: {e}"))?;
            let mut control = Control::new();
            handler
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .output(&chunk.bytes, &mut control);
            serde_json::to_vec(&msg::SerialReply {
                version: msg::MESSAGE_VERSION,
                input: control.take_input(),
                end: control.take_verdict(),
            })
            .map_err(|e| e.to_string())
        };
        let reply: msg::OutcomeReply =
            self.handle
                .call_with(method::RUNNER_RUN, "run", &request, &mut serve)?;
        Ok(reply.outcome)
    }

    fn config_section(&self) -> Option<Section> {
        self.section.clone()
    }

    fn checks(&self) -> Vec<Check> {
        self.handle.checks()
    }
}

fn library_error(path: &Path, message: impl Into<String>) -> Error {
    Error::PluginLibrary {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Loads the plugin library at `path` (named by `named_in`, for errors) and adds each plugin it
/// exports to `registry`. A plugin whose kind and name the registry has already is an error
/// unless `replace` is set. Returns the (kind, name) pairs added.
pub fn load_library(
    registry: &mut Registry,
    path: &Path,
    replace: bool,
    named_in: &str,
) -> Result<Vec<(&'static str, String)>, Error> {
    let entry = open(path, named_in)?;
    load_entry(registry, entry, path, replace, named_in)
}

/// Like [`load_library`] with the library's entry function already found.
pub(crate) fn load_entry(
    registry: &mut Registry,
    entry: EntryFn,
    path: &Path,
    replace: bool,
    named_in: &str,
) -> Result<Vec<(&'static str, String)>, Error> {
    let handles = read_header(entry, path)?;
    for (index, handle) in handles.iter().enumerate() {
        if let Some(rule) = name_rule(handle, &handles[..index], registry) {
            return Err(library_error(
                path,
                format!(
                    "exports {} `{}`, a name a plugin cannot have: {rule}; rename the plugin",
                    handle.kind,
                    handle.name.escape_debug()
                ),
            ));
        }
    }
    let mut added = Vec::new();
    for handle in handles {
        let handle = Arc::new(handle);
        let section = section_of(&handle)?;
        let loaded = match handle.kind {
            "bootloader" => Loaded::Bootloader(Arc::new(DynBootloader {
                handle: Arc::clone(&handle),
                section,
            })),
            "format" => {
                let reply: msg::KindReply =
                    handle.call(method::FORMAT_KIND, "kind", &msg::Empty::default())?;
                Loaded::Format(Arc::new(DynFormat {
                    handle: Arc::clone(&handle),
                    section,
                    kind: reply.kind,
                }))
            }
            "firmware" => Loaded::Firmware(Arc::new(DynFirmware {
                handle: Arc::clone(&handle),
                section,
            })),
            _ => Loaded::Runner(Arc::new(DynRunner {
                handle: Arc::clone(&handle),
                section,
            })),
        };
        let info = PluginInfo {
            kind: handle.kind,
            name: handle.name.clone(),
            version: handle.version.clone(),
            origin: Origin::Library(path.to_path_buf()),
        };
        registry.add_loaded(loaded, info, replace, named_in)?;
        added.push((handle.kind, handle.name.clone()));
    }
    Ok(added)
}

/// Opens the library (never to close it) and finds its entry symbol.
fn open(path: &Path, named_in: &str) -> Result<EntryFn, Error> {
    let fix = format!("fix the path in {named_in}");
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(library_error(path, format!("no such file; {fix}")));
        }
        Err(e) => return Err(library_error(path, format!("cannot be read ({e}); {fix}"))),
        Ok(meta) if !meta.is_file() => {
            return Err(library_error(path, format!("is not a file; {fix}")));
        }
        Ok(_) => {}
    }
    let Some(text_path) = path.to_str() else {
        return Err(library_error(
            path,
            "its path is not valid UTF-8, which the library loader needs; move it to a UTF-8 path",
        ));
    };
    // SAFETY: loading runs the library's initialisers; the user named this library as a
    // plugin, which is the trust decision (plugins are only loaded from paths users list).
    let library = match unsafe { libloading::Library::new(text_path) } {
        Ok(library) => library,
        Err(e) => {
            return Err(library_error(
                path,
                format!(
                    "not a loadable library ({}); a plugin is a `cdylib` built for this system",
                    source_text(&e)
                ),
            ));
        }
    };
    // Never unloaded: plugins' code and data stay valid for the life of the process.
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    // SAFETY: the symbol's type is the ABI's entry type (checked by the header below).
    let entry = match unsafe { library.get::<EntryFn>(abi::ENTRY_SYMBOL) } {
        Ok(entry) => *entry,
        Err(_) => {
            return Err(library_error(
                path,
                format!(
                    "not a cargo-image-runner plugin: it has no `{}` symbol (a plugin library invokes `image_runner_core::export_plugin!`)",
                    abi::ENTRY_SYMBOL
                ),
            ));
        }
    };
    Ok(entry)
}

/// A [`Descriptor`] as plain words, read before anything in it is trusted: its functions may be
/// null or point anywhere until they are checked, which a `Descriptor` cannot hold.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawDescriptor {
    kind: u32,
    name: Str,
    version: Str,
    instance: *const c_void,
    call: *const c_void,
    free: *const c_void,
}

const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<RawDescriptor>() == size_of::<Descriptor>());
    assert!(align_of::<RawDescriptor>() == align_of::<Descriptor>());
    assert!(offset_of!(RawDescriptor, name) == offset_of!(Descriptor, name));
    assert!(offset_of!(RawDescriptor, version) == offset_of!(Descriptor, version));
    assert!(offset_of!(RawDescriptor, instance) == offset_of!(Descriptor, instance));
    assert!(offset_of!(RawDescriptor, call) == offset_of!(Descriptor, call));
    assert!(offset_of!(RawDescriptor, free) == offset_of!(Descriptor, free));
    assert!(size_of::<CallFn>() == size_of::<*const c_void>());
    assert!(size_of::<FreeFn>() == size_of::<*const c_void>());
};

/// The part of the header that never changes: magic, ABI major and minor.
const FIXED_HEADER: usize = 16;

/// Calls the entry and reads the header and descriptors it returns. Every read is bounded by
/// the library's loaded image ([`LoadedImage`]): the header, the descriptor table and each
/// name and version must lie in its readable segments, and `call` and `free` in its code,
/// before they are read or kept. What the bound cannot tell (that `call` and `free` are
/// functions of the ABI's types, and what `instance` is) is trusted.
fn read_header(entry: EntryFn, path: &Path) -> Result<Vec<Handle>, Error> {
    let damaged = |what: String| {
        library_error(
            path,
            format!("{what}; the library is damaged or not built with image-runner-core"),
        )
    };
    let Some(image) = LoadedImage::holding(entry as *const c_void) else {
        return Err(damaged(
            "its entry symbol lies in no loaded library's code".to_owned(),
        ));
    };
    // SAFETY: the entry gets the host's API, valid for the life of the process.
    let header = unsafe { entry(&HOST_API) };
    if header.is_null() {
        return Err(library_error(
            path,
            "its entry symbol returned no plugins (making them failed; see the warning above)",
        ));
    }
    let outside = || {
        damaged(
            "its entry symbol returned a header that lies outside the library's loaded image"
                .to_owned(),
        )
    };
    if !image.holds(header.cast::<u8>(), FIXED_HEADER) {
        return Err(outside());
    }
    // Magic first, then the major version, read field by field: nothing else is trusted
    // before both match.
    // SAFETY: every ABI version's header starts with these fields, and the library's image
    // holds them (checked above).
    let magic = unsafe { std::ptr::read_unaligned(&raw const (*header).magic) };
    if magic != abi::MAGIC {
        return Err(library_error(
            path,
            "its entry symbol did not return a cargo-image-runner plugin header (wrong magic bytes)",
        ));
    }
    // SAFETY: as above.
    let (major, minor) = unsafe {
        (
            std::ptr::read_unaligned(&raw const (*header).abi_major),
            std::ptr::read_unaligned(&raw const (*header).abi_minor),
        )
    };
    if major != abi::ABI_MAJOR {
        return Err(library_error(
            path,
            format!(
                "built for plugin ABI {major}.{minor}, but this cargo-image-runner loads plugin ABI {}.x (it speaks {}.{}); rebuild the plugin against image-runner-core {}",
                abi::ABI_MAJOR,
                abi::ABI_MAJOR,
                abi::ABI_MINOR,
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    if !image.holds(header.cast::<u8>(), std::mem::size_of::<Header>()) {
        return Err(outside());
    }
    if !header.is_aligned() {
        return Err(damaged(
            "its entry symbol returned a misaligned header".to_owned(),
        ));
    }
    // SAFETY: same major: the header is the one this build knows, aligned, in the library's
    // image; every bit pattern is a valid `Header`.
    let header: &Header = unsafe { &*header };
    let stride = header.descriptor_size as usize;
    if stride < std::mem::size_of::<Descriptor>() {
        return Err(library_error(
            path,
            format!(
                "its plugin descriptors are {stride} bytes, shorter than ABI {major}.0's; the library is damaged or not built with image-runner-core"
            ),
        ));
    }
    if !stride.is_multiple_of(std::mem::align_of::<Descriptor>())
        || (header.count > 0 && (header.descriptors.is_null() || !header.descriptors.is_aligned()))
    {
        return Err(library_error(
            path,
            "its plugin descriptor table is missing or misaligned; the library is damaged or not built with image-runner-core",
        ));
    }
    let table = header.descriptors.cast::<u8>();
    let count = header.count as usize;
    let fits = count
        .checked_mul(stride)
        .is_some_and(|size| image.holds(table, size));
    if !fits {
        let room = image.room(table);
        if room == 0 {
            return Err(library_error(
                path,
                format!(
                    "its plugin descriptor table lies outside the library's loaded image; the library is damaged, or made by an older `export_plugin!` that kept the table elsewhere: rebuild it against image-runner-core {}",
                    env!("CARGO_PKG_VERSION")
                ),
            ));
        }
        return Err(damaged(format!(
            "its header claims {count} plugin descriptors of {stride} bytes, more than the library's loaded image holds there (room for {})",
            room / stride
        )));
    }
    let mut handles = Vec::new();
    for index in 0..count {
        // SAFETY: the table's `count` descriptors, `stride` bytes apart, lie in the library's
        // image (checked above) and are aligned; every bit pattern is a valid `RawDescriptor`.
        let raw = unsafe { table.add(index * stride).cast::<RawDescriptor>().read() };
        let text = |what: &str, text: Str| {
            if image.holds(text.ptr, text.len) {
                // SAFETY: the library's image holds these bytes (checked just now), and a
                // library is never unloaded.
                Ok(unsafe { text.as_bytes() })
            } else {
                Err(damaged(format!(
                    "plugin {index}'s {what} ({} bytes) lies outside the library's loaded image",
                    text.len
                )))
            }
        };
        let (name, version) = (text("name", raw.name)?, text("version", raw.version)?);
        let (Ok(name), Ok(version)) = (std::str::from_utf8(name), std::str::from_utf8(version))
        else {
            return Err(library_error(
                path,
                format!("plugin {index}'s name or version is not UTF-8"),
            ));
        };
        let Some(kind) = kind_name(raw.kind) else {
            return Err(library_error(
                path,
                format!(
                    "plugin `{}` is of kind {}, which this cargo-image-runner does not know (1 bootloader, 2 format, 3 firmware, 4 runner)",
                    name.escape_debug(),
                    raw.kind
                ),
            ));
        };
        for (what, function) in [("call", raw.call), ("free", raw.free)] {
            if !image.is_code(function) {
                return Err(damaged(format!(
                    "{kind} `{}`'s {what} function lies outside the library's code",
                    name.escape_debug()
                )));
            }
        }
        handles.push(Handle {
            library: path.to_path_buf(),
            kind,
            name: name.to_owned(),
            version: version.to_owned(),
            abi_minor: minor,
            instance: raw.instance,
            // SAFETY: non-null and in the library's code (checked above); that it is a function
            // of this type is the one thing the host trusts the library for.
            call: unsafe { std::mem::transmute::<*const c_void, CallFn>(raw.call) },
            // SAFETY: as above.
            free: unsafe { std::mem::transmute::<*const c_void, FreeFn>(raw.free) },
        });
    }
    if handles.is_empty() {
        return Err(library_error(path, "it exports no plugins"));
    }
    Ok(handles)
}

/// Names a plugin cannot have besides the shared keys: top-level keys of
/// cargo-image-runner 0.5 that the config still treats as such (to name their new spelling).
const OLD_TOP_LEVEL_KEYS: &[&str] = &["profiles", "verbose"];

/// Characters that change how text looks without showing themselves: bidirectional controls,
/// zero-width characters, the byte order mark.
fn is_invisible_formatting(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
    )
}

/// The rule `handle`'s name breaks, if it breaks one. A plugin's name selects it in config
/// and names its config section (`[name]`), which is shared by every kind: it must be usable as
/// a key, must not be a shared key, and must not be the name of a plugin of another kind
/// (already in `registry`, or `earlier` in the same library).
fn name_rule(handle: &Handle, earlier: &[Handle], registry: &Registry) -> Option<String> {
    let name = handle.name.as_str();
    if name.is_empty()
        || name.len() > abi::NAME_MAX
        || name
            .chars()
            .any(|c| c.is_control() || is_invisible_formatting(c))
    {
        return Some(format!(
            "a plugin's name selects it in config and names its config section, so it is 1 to {} bytes without control characters (newlines, ESC, ...) or invisible formatting characters",
            abi::NAME_MAX
        ));
    }
    if SHARED_KEYS.contains(&name) || OLD_TOP_LEVEL_KEYS.contains(&name) {
        return Some(format!(
            "`{name}` is a key of the shared config, and a plugin's config section is named after the plugin (the shared keys: {}, and 0.5's {})",
            SHARED_KEYS.join(", "),
            OLD_TOP_LEVEL_KEYS.join(", ")
        ));
    }
    let holder = if let Some(other) = earlier
        .iter()
        .find(|h| h.name == name && h.kind != handle.kind)
    {
        format!("this library's {} is called `{name}`", other.kind)
    } else {
        let other = registry
            .plugins()
            .into_iter()
            .find(|p| p.name == name && p.kind != handle.kind)?;
        match other.origin {
            Origin::Library(library) => format!(
                "plugin library `{}`'s {} is called `{name}`",
                library.display(),
                other.kind
            ),
            _ => format!("the built-in {} is called `{name}`", other.kind),
        }
    };
    Some(format!(
        "{holder}, and a plugin's config section is named after the plugin, so plugins of different kinds cannot share a name (`replace` replaces a plugin of the same kind only)"
    ))
}

fn source_text(e: &libloading::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(source) => source.to_string(),
        None => e.to_string(),
    }
}
