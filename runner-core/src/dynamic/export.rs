//! The plugin side: [`export_plugin!`](crate::export_plugin) makes a library's entry symbol from
//! ordinary trait implementations; the functions here answer the host's calls. Every call runs
//! under `catch_unwind`, so a panic in a plugin becomes an error in the host, never an abort.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};
use toml::{Spanned, Table};

use super::abi::{self, Buf, Descriptor, Header, HostApi, HostCall, Str, method, op, status};
use super::messages::{self as msg, ContextMessage};
use crate::config::Section;
use crate::context::Context;
use crate::error::Error;
use crate::plugin::{Bootloader, BuildRequest, Firmware, ImageFormat, Runner, Staged};
use crate::serial::{Control, SerialHandler};

/// One plugin a library exports; made by [`bootloader()`], [`format()`], [`firmware()`] or
/// [`runner()`] inside [`export_plugin!`](crate::export_plugin).
pub enum Plugin {
    /// A bootloader.
    Bootloader(Box<dyn Bootloader>),
    /// An image format.
    Format(Box<dyn ImageFormat>),
    /// A firmware provider.
    Firmware(Box<dyn Firmware>),
    /// A runner.
    Runner(Box<dyn Runner>),
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, name) = self.kind_and_name();
        write!(f, "{kind} `{name}`")
    }
}

/// Exports a bootloader.
pub fn bootloader(plugin: impl Bootloader + 'static) -> Plugin {
    Plugin::Bootloader(Box::new(plugin))
}

/// Exports an image format.
pub fn format(plugin: impl ImageFormat + 'static) -> Plugin {
    Plugin::Format(Box::new(plugin))
}

/// Exports a firmware provider.
pub fn firmware(plugin: impl Firmware + 'static) -> Plugin {
    Plugin::Firmware(Box::new(plugin))
}

/// Exports a runner.
pub fn runner(plugin: impl Runner + 'static) -> Plugin {
    Plugin::Runner(Box::new(plugin))
}

impl Plugin {
    fn kind_and_name(&self) -> (u32, &str) {
        match self {
            Plugin::Bootloader(p) => (abi::kind::BOOTLOADER, p.name()),
            Plugin::Format(p) => (abi::kind::FORMAT, p.name()),
            Plugin::Firmware(p) => (abi::kind::FIRMWARE, p.name()),
            Plugin::Runner(p) => (abi::kind::RUNNER, p.name()),
        }
    }

    fn config_section(&self) -> Option<Section> {
        match self {
            Plugin::Bootloader(p) => p.config_section(),
            Plugin::Format(p) => p.config_section(),
            Plugin::Firmware(p) => p.config_section(),
            Plugin::Runner(p) => p.config_section(),
        }
    }

    fn checks(&self) -> Vec<crate::media::Check> {
        match self {
            Plugin::Bootloader(p) => p.checks(),
            Plugin::Format(p) => p.checks(),
            Plugin::Firmware(p) => p.checks(),
            Plugin::Runner(p) => p.checks(),
        }
    }
}

/// One plugin's name, copied into the library's static data.
#[derive(Debug, Clone, Copy)]
struct Name {
    bytes: [u8; abi::NAME_MAX],
    len: usize,
}

impl Name {
    fn new(name: &str) -> Name {
        let mut bytes = [0; abi::NAME_MAX];
        let len = name.len().min(abi::NAME_MAX);
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        Name { bytes, len }
    }
}

/// What a library exports: `N` plugins, made at its first entry call and kept for the life of
/// the process. It lives in a `static` of the library (made by
/// [`export_plugin!`](crate::export_plugin)), so the header, the descriptor table and the names
/// lie in the library's own loaded image, where the host checks they lie before it reads them
/// (the versions are the crate's version text, static data of the library too). Nothing in it
/// changes once made.
pub struct Exported<const N: usize> {
    plugins: OnceLock<[Plugin; N]>,
    names: OnceLock<[Name; N]>,
    descriptors: OnceLock<[Descriptor; N]>,
    header: OnceLock<Result<Header, String>>,
}

impl<const N: usize> std::fmt::Debug for Exported<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exported")
            .field("plugins", &self.plugins.get())
            .field("header", &self.header.get())
            .finish_non_exhaustive()
    }
}

// SAFETY: nothing in it changes after it is made; the plugins are `Send + Sync`.
unsafe impl<const N: usize> Sync for Exported<N> {}
// SAFETY: as above.
unsafe impl<const N: usize> Send for Exported<N> {}

impl<const N: usize> Default for Exported<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Exported<N> {
    /// Nothing made yet (for a `static`).
    pub const fn new() -> Self {
        Exported {
            plugins: OnceLock::new(),
            names: OnceLock::new(),
            descriptors: OnceLock::new(),
            header: OnceLock::new(),
        }
    }

    /// Makes the plugins and the header describing them, in place (each part in its own cell
    /// of this static, so what points at a part points into the library's static data).
    fn make(
        &'static self,
        make: impl FnOnce() -> [Plugin; N],
        version: &'static str,
    ) -> Result<Header, String> {
        let plugins = self.plugins.get_or_init(make);
        for plugin in plugins {
            let (_, name) = plugin.kind_and_name();
            if name.len() > abi::NAME_MAX {
                return Err(format!(
                    "{plugin:?}: the name is {} bytes long, longer than a plugin name may be ({} bytes); rename the plugin",
                    name.len(),
                    abi::NAME_MAX
                ));
            }
        }
        let names = self
            .names
            .get_or_init(|| std::array::from_fn(|i| Name::new(plugins[i].kind_and_name().1)));
        let descriptors = self.descriptors.get_or_init(|| {
            std::array::from_fn(|i| Descriptor {
                kind: plugins[i].kind_and_name().0,
                name: Str {
                    ptr: names[i].bytes.as_ptr(),
                    len: names[i].len,
                },
                version: Str::new(version.as_bytes()),
                instance: (&raw const plugins[i]).cast::<c_void>(),
                call: call_plugin,
                free: free_buf,
            })
        });
        Ok(Header {
            magic: abi::MAGIC,
            abi_major: abi::ABI_MAJOR,
            abi_minor: abi::ABI_MINOR,
            descriptor_size: std::mem::size_of::<Descriptor>() as u32,
            count: N as u32,
            descriptors: descriptors.as_ptr(),
        })
    }
}

/// Exports plugins from a `cdylib`: generates the library's entry symbol. Each argument is
/// `kind: value`, the kind one of `bootloader`, `format`, `firmware`, `runner`, the value an
/// implementation of that kind's trait. The plugins' version is the crate's version. What the
/// host reads (the header, the descriptors, the names) is kept in a `static` of the library.
///
/// ```ignore
/// image_runner_core::export_plugin!(format: Qcow2, format: Vmdk);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($($kind:ident : $plugin:expr),+ $(,)?) => {
        /// The entry symbol of this cargo-image-runner plugin library.
        ///
        /// # Safety
        /// Called by the host with a valid `HostApi` (or null).
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn image_runner_plugin_entry(
            host: *const $crate::dynamic::abi::HostApi,
        ) -> *const $crate::dynamic::abi::Header {
            const COUNT: usize = [$(::core::stringify!($kind)),+].len();
            static EXPORTED: $crate::dynamic::export::Exported<COUNT> =
                $crate::dynamic::export::Exported::new();
            // SAFETY: the host's promise, passed on.
            unsafe {
                $crate::dynamic::export::entry(host, &EXPORTED, env!("CARGO_PKG_VERSION"), || {
                    [$($crate::dynamic::export::$kind($plugin)),+]
                })
            }
        }
    };
}

static HOST: OnceLock<HostApi> = OnceLock::new();

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    static IN_CALL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` as a call from the host: a panic is caught, its message kept for the host.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_panic_hook();
    let outer = IN_CALL.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_CALL.with(|c| c.set(outer));
    result.map_err(|payload| {
        LAST_PANIC
            .with(|last| last.borrow_mut().take())
            .unwrap_or_else(|| panic_text(payload.as_ref()))
    })
}

/// The body of the generated entry symbol: remembers the host's callbacks, makes the exported
/// plugins once, and returns the header (null, after a warning, if making them panicked or a
/// name is too long). `exported` is a `static` of the library and `version` text of the
/// library's static data (a literal): the host refuses a header, table, name or version that
/// does not lie in the library's loaded image.
///
/// # Safety
/// `host` is null or points at a `HostApi` whose first three fields are readable, and all of
/// it when its `size` says so.
pub unsafe fn entry<const N: usize>(
    host: *const HostApi,
    exported: &'static Exported<N>,
    version: &'static str,
    make: impl FnOnce() -> [Plugin; N],
) -> *const Header {
    if !host.is_null() {
        // SAFETY: the first three fields of a HostApi are always there (caller's promise).
        let (size, major) = unsafe {
            (
                std::ptr::read(&raw const (*host).size),
                std::ptr::read(&raw const (*host).abi_major),
            )
        };
        if major == abi::ABI_MAJOR && size as usize >= std::mem::size_of::<HostApi>() {
            // SAFETY: the size says the whole struct is there.
            let _ = HOST.set(unsafe { std::ptr::read(host) });
        }
    }
    match guarded(|| exported.header.get_or_init(|| exported.make(make, version))) {
        Ok(Ok(header)) => header,
        Ok(Err(text)) => {
            log(abi::level::WARN, text);
            std::ptr::null()
        }
        Err(text) => {
            log(
                abi::level::WARN,
                &format!("making the plugins panicked: {text}"),
            );
            std::ptr::null()
        }
    }
}

/// Panics inside a host's call are caught and reported to the host as errors; the hook keeps
/// their message (with its location) for that report instead of printing it. Other panics go
/// to the hook that was there before.
fn install_panic_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CALL.with(Cell::get) {
                return previous(info);
            }
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let text = panic_text(info.payload());
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(format!("{text}{location}")));
        }));
    });
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Writes a log message through the host (`level` from [`abi::level`]); shown as the host's
/// verbosity allows. Before the host's first call (or under a host of another ABI major) the
/// message goes to stderr.
pub fn log(level: u32, message: &str) {
    match HOST.get() {
        // SAFETY: the host's callback takes any UTF-8 text for the duration of the call.
        Some(host) => unsafe { (host.log)(level, Str::new(message.as_bytes())) },
        None => eprintln!("{message}"),
    }
}

type Reply = Result<Vec<u8>, (u32, String)>;

unsafe extern "C" fn call_plugin(
    instance: *const c_void,
    method: u32,
    input: Str,
    host: *const HostCall,
    out: *mut Buf,
) -> u32 {
    let result = guarded(|| {
        // SAFETY: `instance` is the pointer this library put into the descriptor.
        let plugin = unsafe { &*instance.cast::<Plugin>() };
        // SAFETY: the host passes a valid message for the duration of the call.
        let input = unsafe { input.as_bytes() };
        dispatch(plugin, method, input, host)
    });
    let (code, bytes) = match result {
        Ok(Ok(bytes)) => (status::OK, bytes),
        Ok(Err((code, text))) => (code, text.into_bytes()),
        Err(text) => (status::PANIC, text.into_bytes()),
    };
    if !out.is_null() {
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        // SAFETY: `out` points at the host's Buf.
        unsafe {
            out.write(Buf {
                ptr: bytes.as_mut_ptr(),
                len: bytes.len(),
                cap: bytes.capacity(),
            });
        }
    }
    code
}

unsafe extern "C" fn free_buf(buf: Buf) {
    if !buf.ptr.is_null() {
        // SAFETY: made from a Vec<u8> by `call_plugin`, given back once.
        drop(unsafe { Vec::from_raw_parts(buf.ptr, buf.len, buf.cap) });
    }
}

fn read<T: DeserializeOwned>(input: &[u8]) -> Result<T, (u32, String)> {
    serde_json::from_slice(input).map_err(|e| {
        (
            status::BAD_MESSAGE,
            format!("the host's message could not be read: {e}"),
        )
    })
}

fn reply<T: Serialize>(value: &T) -> Reply {
    serde_json::to_vec(value).map_err(|e| {
        (
            status::ERROR,
            format!("the reply could not be written: {e}"),
        )
    })
}

fn failed(e: Error) -> (u32, String) {
    (status::ERROR, e.to_string())
}

fn context(message: ContextMessage) -> Result<Context, (u32, String)> {
    message.into_context().map_err(|e| (status::BAD_MESSAGE, e))
}

fn unknown(method: u32) -> (u32, String) {
    (
        status::UNKNOWN,
        format!("this plugin does not answer method {method}"),
    )
}

fn dispatch(plugin: &Plugin, method: u32, input: &[u8], host: *const HostCall) -> Reply {
    match method {
        method::SECTION => reply(&msg::SectionReply {
            defaults: plugin.config_section().map(|s| s.defaults().clone()),
            ..Default::default()
        }),
        method::CHECK_SECTION => {
            let request: msg::CheckSection = read(input)?;
            let error = plugin
                .config_section()
                .and_then(|section| check_section(&section, &request.table).err());
            reply(&msg::CheckSectionReply {
                error,
                ..Default::default()
            })
        }
        method::CHECKS => reply(&msg::ChecksReply {
            checks: plugin.checks(),
            ..Default::default()
        }),
        _ => match plugin {
            Plugin::Bootloader(p) => bootloader_call(&**p, method, input),
            Plugin::Format(p) => format_call(&**p, method, input, host),
            Plugin::Firmware(p) => firmware_call(&**p, method, input),
            Plugin::Runner(p) => runner_call(&**p, method, input, host),
        },
    }
}

/// Checks `table` against `section` as the host would with positions: the table is written
/// as TOML, read back with positions, and a mistake's position is turned into the keys that
/// lead to it, which the host finds in its own file.
fn check_section(section: &Section, table: &Table) -> Result<(), msg::SectionError> {
    let text = toml::to_string(table).map_err(|e| msg::SectionError {
        message: e.to_string(),
        path: Vec::new(),
    })?;
    let parsed = DeTable::parse(&text).map_err(|e| msg::SectionError {
        message: e.message().to_owned(),
        path: Vec::new(),
    })?;
    let root = Spanned::new(parsed.span(), DeValue::Table(parsed.into_inner()));
    match section.check_spanned(root.clone()) {
        Ok(()) => Ok(()),
        Err(e) => {
            let mut path = Vec::new();
            if let Some(span) = e.span() {
                path_at(&root, span.start, &mut path);
            }
            Err(msg::SectionError {
                message: e.message().trim_end().to_owned(),
                path,
            })
        }
    }
}

/// The keys leading to the innermost key or value at byte `at`.
fn path_at(value: &Spanned<DeValue<'_>>, at: usize, path: &mut Vec<String>) {
    let DeValue::Table(table) = value.get_ref() else {
        return;
    };
    for (key, inner) in table.iter() {
        if key.span().contains(&at) {
            path.push(key.get_ref().to_string());
            return;
        }
        if inner.span().contains(&at) {
            path.push(key.get_ref().to_string());
            path_at(inner, at, path);
            return;
        }
    }
}

/// Runs host operation `op` with `message`; the reply's bytes, or the host's error.
fn host_op<T: Serialize>(host: *const HostCall, op: u32, message: &T) -> Result<Vec<u8>, Error> {
    if host.is_null() {
        return Err(Error::FromLibrary(format!(
            "the host offered no operations for this call (operation {op})"
        )));
    }
    let input = serde_json::to_vec(message)
        .map_err(|e| Error::FromLibrary(format!("a message to the host: {e}")))?;
    let mut answer = Str::new(&[]);
    // SAFETY: `host` is the host's HostCall, valid for the duration of this method call; its
    // reply stays valid until the next operation, and is copied at once.
    let (code, bytes) = unsafe {
        let host = &*host;
        let code = (host.call)(host.ctx, op, Str::new(&input), &mut answer);
        (code, answer.as_bytes().to_vec())
    };
    if code == status::OK {
        Ok(bytes)
    } else {
        Err(Error::FromLibrary(
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    }
}

static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

fn staged_states() -> &'static Mutex<HashMap<u64, Staged>> {
    static STATES: OnceLock<Mutex<HashMap<u64, Staged>>> = OnceLock::new();
    STATES.get_or_init(Default::default)
}

fn bootloader_call(plugin: &dyn Bootloader, method: u32, input: &[u8]) -> Reply {
    match method {
        method::BOOTLOADER_WANTS_IMAGE => {
            let request: msg::WantsImage = read(input)?;
            reply(&msg::WantsImageReply {
                version: msg::MESSAGE_VERSION,
                wants: plugin.wants_image(&request.kernel, request.boot),
            })
        }
        method::BOOTLOADER_WANTS_UEFI_SHELL => {
            let ctx = context(read(input)?)?;
            reply(&msg::WantsImageReply {
                version: msg::MESSAGE_VERSION,
                wants: plugin.wants_uefi_shell(&ctx),
            })
        }
        method::BOOTLOADER_STAGE => {
            let ctx = context(read(input)?)?;
            let staged = plugin.stage(&ctx).map_err(failed)?;
            let staging = staged.staging.clone();
            let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
            staged_states()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(handle, staged);
            reply(&msg::StagedReply {
                version: msg::MESSAGE_VERSION,
                staging,
                handle,
            })
        }
        method::BOOTLOADER_FINISH_IMAGE => {
            let request: msg::FinishImage = read(input)?;
            let ctx = context(request.ctx)?;
            let kept = staged_states()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&request.handle);
            let staged = kept.unwrap_or_else(|| Staged::new(request.staging));
            plugin
                .finish_image(&staged, &request.image, &ctx)
                .map_err(failed)?;
            reply(&msg::Empty::default())
        }
        _ => Err(unknown(method)),
    }
}

fn format_call(
    plugin: &dyn ImageFormat,
    method: u32,
    input: &[u8],
    host: *const HostCall,
) -> Reply {
    match method {
        method::FORMAT_KIND => reply(&msg::KindReply {
            version: msg::MESSAGE_VERSION,
            kind: plugin.kind(),
        }),
        method::FORMAT_BUILD => {
            let request: msg::Build = read(input)?;
            let ctx = context(request.ctx)?;
            let finish = |image: &crate::media::Image| {
                host_op(
                    host,
                    op::FINISH,
                    &msg::ImageReply {
                        version: msg::MESSAGE_VERSION,
                        image: image.clone(),
                    },
                )
                .map(drop)
            };
            let build = BuildRequest::new(&request.staging, &ctx).with_finish(&finish);
            let image = plugin.build(&build).map_err(failed)?;
            reply(&msg::ImageReply {
                version: msg::MESSAGE_VERSION,
                image,
            })
        }
        _ => Err(unknown(method)),
    }
}

fn firmware_call(plugin: &dyn Firmware, method: u32, input: &[u8]) -> Reply {
    match method {
        method::FIRMWARE_UEFI_SHELL => {
            let ctx = context(read(input)?)?;
            let shell = plugin.uefi_shell(&ctx).map_err(failed)?;
            reply(&msg::ShellReply {
                version: msg::MESSAGE_VERSION,
                shell,
            })
        }
        method::FIRMWARE_RESOLVE => {
            let ctx = context(read(input)?)?;
            let files = plugin.resolve(&ctx).map_err(failed)?;
            reply(&msg::FirmwareReply {
                version: msg::MESSAGE_VERSION,
                files,
            })
        }
        method::FIRMWARE_AFTER_RUN => {
            let request: msg::AfterRun = read(input)?;
            let ctx = context(request.ctx)?;
            plugin
                .after_run(&request.files, &request.outcome, &ctx)
                .map_err(failed)?;
            reply(&msg::Empty::default())
        }
        _ => Err(unknown(method)),
    }
}

/// The host's serial handler, reached through the `SERIAL` operation.
struct HostSerial {
    host: *const HostCall,
}

// SAFETY: the HostCall is valid for the whole `run` call, and the host's side serializes
// operations; `output` takes `&mut self`, so one `HostSerial` makes one operation at a time and
// reads its reply before the next can start.
unsafe impl Send for HostSerial {}

impl SerialHandler for HostSerial {
    fn output(&mut self, bytes: &[u8], control: &mut Control) {
        let chunk = msg::SerialChunk {
            version: msg::MESSAGE_VERSION,
            bytes: bytes.to_vec(),
        };
        match host_op(self.host, op::SERIAL, &chunk).and_then(|b| {
            serde_json::from_slice::<msg::SerialReply>(&b)
                .map_err(|e| Error::FromLibrary(format!("the host's serial reply: {e}")))
        }) {
            Ok(answer) => {
                if !answer.input.is_empty() {
                    control.send(answer.input);
                }
                if let Some(verdict) = answer.end {
                    control.finish(verdict);
                }
            }
            Err(e) => log(abi::level::WARN, &format!("serial output lost: {e}")),
        }
    }
}

fn runner_call(plugin: &dyn Runner, method: u32, input: &[u8], host: *const HostCall) -> Reply {
    match method {
        method::RUNNER_COMMAND => {
            let request: msg::RunMessage = read(input)?;
            let ctx = context(request.ctx)?;
            let command = plugin.command(&request.media, &ctx).map_err(failed)?;
            reply(&msg::CommandReply {
                version: msg::MESSAGE_VERSION,
                command,
            })
        }
        method::RUNNER_RUN => {
            let request: msg::RunMessage = read(input)?;
            let ctx = context(request.ctx)?;
            let mut handler = HostSerial { host };
            let outcome = plugin
                .run(&request.media, &ctx, &mut handler)
                .map_err(failed)?;
            reply(&msg::OutcomeReply {
                version: msg::MESSAGE_VERSION,
                outcome,
            })
        }
        _ => Err(unknown(method)),
    }
}
