//! The frozen C-ABI types a plugin library and the host share. Only these `#[repr(C)]` values
//! cross the boundary; everything richer crosses as a JSON message (see
//! [`super::messages`]).
//!
//! The library exports one symbol, [`ENTRY_SYMBOL`], of type [`EntryFn`]. The host calls it once
//! with its [`HostApi`] and gets a [`Header`]: the header's first 16 bytes (magic, ABI major,
//! ABI minor) never change in any version, so a host can always tell what it was given before
//! it reads anything else. The header then points at `count` [`Descriptor`]s, `descriptor_size`
//! bytes apart (a later minor version may make descriptors longer; a host reads the part it
//! knows). Each descriptor names one plugin: its kind, name and version, and the two functions
//! the host calls it through: [`CallFn`] (a method number and a JSON message in, a status and a
//! JSON message or an error text out) and [`FreeFn`] (frees what `call` returned).
//!
//! Where it all lies: the header, the descriptor table and every name and version text lie in
//! the library's own loaded image (its static data; `export_plugin!` keeps them there), and
//! `call` and `free` in its code. The host checks each against the library's loaded segments
//! before it reads it (see `host`), so a header that claims more than the library holds is an
//! error, not a read of memory that is not there.
//!
//! Versioning: a new minor version may add methods, host operations, message fields (always
//! optional) and descriptor fields at the end; a host accepts a library of any minor version
//! of its own major. Anything else is a new major version, which a host refuses.

use std::ffi::c_void;

/// The first bytes of every [`Header`].
pub const MAGIC: [u8; 8] = *b"IMGRPLUG";
/// The ABI's major version: a library of another major is refused.
pub const ABI_MAJOR: u32 = 1;
/// The ABI's minor version: hosts accept libraries of any minor version of their major.
pub const ABI_MINOR: u32 = 1;
/// The name of the entry symbol every plugin library exports.
pub const ENTRY_SYMBOL: &str = "image_runner_plugin_entry";
/// The longest plugin name, in bytes. A name selects its plugin in config and names its config
/// section; `export_plugin!` copies it into the library's static data.
pub const NAME_MAX: usize = 64;

/// The entry symbol's type: called once, with the host's callbacks; returns the library's
/// header, which must stay valid for as long as the library is loaded.
pub type EntryFn = unsafe extern "C" fn(host: *const HostApi) -> *const Header;

/// UTF-8 text or bytes borrowed for the duration of one call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Str {
    /// First byte (may dangle when `len` is 0).
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl Str {
    /// Borrows `bytes`.
    pub fn new(bytes: &[u8]) -> Str {
        Str {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// The bytes.
    ///
    /// # Safety
    /// `ptr` and `len` must describe readable memory that outlives `'a`.
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            &[]
        } else {
            // SAFETY: the caller promises the memory is valid for `'a`.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// Bytes a plugin allocated and hands to the host; the host gives them back through the
/// descriptor's [`FreeFn`].
#[repr(C)]
#[derive(Debug)]
pub struct Buf {
    /// First byte.
    pub ptr: *mut u8,
    /// Length in bytes.
    pub len: usize,
    /// Capacity of the allocation.
    pub cap: usize,
}

impl Buf {
    /// An empty buffer (nothing to free).
    pub const EMPTY: Buf = Buf {
        ptr: std::ptr::null_mut(),
        len: 0,
        cap: 0,
    };
}

/// Log levels of [`HostApi::log`].
pub mod level {
    /// Shown always.
    pub const WARN: u32 = 1;
    /// Shown with `-v`.
    pub const INFO: u32 = 2;
    /// Shown with `-vv`.
    pub const DEBUG: u32 = 3;
}

/// What the host gives the library at entry. The first three fields never change.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HostApi {
    /// `size_of::<HostApi>()` of the host (later minors may append fields).
    pub size: u32,
    /// The host's ABI major version.
    pub abi_major: u32,
    /// The host's ABI minor version.
    pub abi_minor: u32,
    /// Writes one log message (UTF-8) at a [`level`].
    pub log: unsafe extern "C" fn(level: u32, message: Str),
}

/// What the library returns from its entry symbol. The first three fields never change.
#[repr(C)]
#[derive(Debug)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// The ABI major version the library was built for.
    pub abi_major: u32,
    /// The ABI minor version the library was built for.
    pub abi_minor: u32,
    /// The distance in bytes between two descriptors (at least `size_of::<Descriptor>()` of
    /// the library's ABI version).
    pub descriptor_size: u32,
    /// How many plugins the library exports.
    pub count: u32,
    /// The first descriptor, in the library's loaded image (as the `count` after it are).
    pub descriptors: *const Descriptor,
}

// SAFETY: the header and what it points to are immutable once made.
unsafe impl Sync for Header {}
// SAFETY: as above.
unsafe impl Send for Header {}

/// Plugin kinds in [`Descriptor::kind`].
pub mod kind {
    /// A [`crate::Bootloader`].
    pub const BOOTLOADER: u32 = 1;
    /// An [`crate::ImageFormat`].
    pub const FORMAT: u32 = 2;
    /// A [`crate::Firmware`] provider.
    pub const FIRMWARE: u32 = 3;
    /// A [`crate::Runner`].
    pub const RUNNER: u32 = 4;
}

/// One plugin of a library.
#[repr(C)]
#[derive(Debug)]
pub struct Descriptor {
    /// A [`kind`] constant.
    pub kind: u32,
    /// The name config selects it by (UTF-8, 1 to [`NAME_MAX`] bytes, no control characters;
    /// in the library's loaded image).
    pub name: Str,
    /// The plugin's own version (UTF-8, e.g. `0.3.1`; in the library's loaded image).
    pub version: Str,
    /// Passed back to `call` unchanged.
    pub instance: *const c_void,
    /// Calls a method (see [`method`]).
    pub call: CallFn,
    /// Frees a buffer `call` returned.
    pub free: FreeFn,
}

/// Calls method `method` of the plugin `instance` with the JSON message `input`. Writes the
/// reply into `out`: on [`status::OK`] a JSON message, otherwise UTF-8 text saying what went
/// wrong. `host` serves the host operations ([`op`]) the method may need while it runs.
pub type CallFn = unsafe extern "C" fn(
    instance: *const c_void,
    method: u32,
    input: Str,
    host: *const HostCall,
    out: *mut Buf,
) -> u32;

/// Frees a [`Buf`] the library returned.
pub type FreeFn = unsafe extern "C" fn(buf: Buf);

/// Host operations available during one call. A plugin calls them from one thread at a time
/// (the host serializes overlapping calls, but a reply is only valid until the next operation
/// starts, whichever thread starts it).
#[repr(C)]
#[derive(Debug)]
pub struct HostCall {
    /// Passed back to `call` unchanged.
    pub ctx: *mut c_void,
    /// Runs host operation `op` ([`op`]) with the JSON message `input`; the reply (a JSON
    /// message on [`status::OK`], an error text otherwise) is written into `reply` and stays
    /// valid until the next operation or the end of the method call.
    pub call: unsafe extern "C" fn(ctx: *mut c_void, op: u32, input: Str, reply: *mut Str) -> u32,
}

/// Status codes of [`CallFn`] and [`HostCall::call`].
pub mod status {
    /// Done; the reply is a JSON message.
    pub const OK: u32 = 0;
    /// The plugin (or host) reported an error; the reply is its text.
    pub const ERROR: u32 = 1;
    /// The plugin panicked; the reply is the panic message.
    pub const PANIC: u32 = 2;
    /// The method (or operation) number is unknown to the other side.
    pub const UNKNOWN: u32 = 3;
    /// The input message could not be read; the reply says why.
    pub const BAD_MESSAGE: u32 = 4;
}

/// Method numbers of [`CallFn`].
pub mod method {
    /// Any kind: the config section's defaults (`SectionReply`), if the plugin has a section.
    pub const SECTION: u32 = 1;
    /// Any kind: checks a config section (`CheckSection` → `CheckSectionReply`).
    pub const CHECK_SECTION: u32 = 2;
    /// Any kind: host checks for `doctor` (`ChecksReply`).
    pub const CHECKS: u32 = 3;
    /// Format: the kind of image it makes (`KindReply`).
    pub const FORMAT_KIND: u32 = 10;
    /// Format: builds the image (`Build` → `ImageReply`; may use [`super::op::FINISH`]).
    pub const FORMAT_BUILD: u32 = 11;
    /// Bootloader: whether it stages an image (`WantsImage` → `WantsImageReply`).
    pub const BOOTLOADER_WANTS_IMAGE: u32 = 20;
    /// Bootloader: stages (`ContextMessage` → `StagedReply`).
    pub const BOOTLOADER_STAGE: u32 = 21;
    /// Bootloader: finishes a fresh image (`FinishImage` → `Empty`).
    pub const BOOTLOADER_FINISH_IMAGE: u32 = 22;
    /// Bootloader (ABI 1.1): whether staging needs a UEFI shell (`ContextMessage` →
    /// `WantsImageReply`, its `wants` the answer).
    pub const BOOTLOADER_WANTS_UEFI_SHELL: u32 = 23;
    /// Firmware: finds firmware (`ContextMessage` → `FirmwareReply`).
    pub const FIRMWARE_RESOLVE: u32 = 30;
    /// Firmware: after the run (`AfterRun` → `Empty`).
    pub const FIRMWARE_AFTER_RUN: u32 = 31;
    /// Firmware (ABI 1.1): the UEFI shell it can supply (`ContextMessage` → `ShellReply`).
    pub const FIRMWARE_UEFI_SHELL: u32 = 32;
    /// Runner: the command it would start (`RunMessage` → `CommandReply`).
    pub const RUNNER_COMMAND: u32 = 40;
    /// Runner: runs (`RunMessage` → `OutcomeReply`; uses [`super::op::SERIAL`]).
    pub const RUNNER_RUN: u32 = 41;
}

/// Host operation numbers of [`HostCall::call`].
pub mod op {
    /// During `FORMAT_BUILD`: runs the bootloader's finishing step on the fresh image
    /// (`ImageReply` → `Empty`).
    pub const FINISH: u32 = 1;
    /// During `RUNNER_RUN`: hands a chunk of serial output to the host's handler
    /// (`SerialChunk` → `SerialReply`).
    pub const SERIAL: u32 = 2;
}
