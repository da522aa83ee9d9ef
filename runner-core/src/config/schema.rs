//! The shared config keys: serde types only, no logic. Every key is kebab-case; unknown keys
//! are errors. Plugins declare their own sections (see [`super::Section`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::protocol::ProtocolChoice;

/// The shared keys of the configuration, as resolved from all sources. Plugin sections
/// (`[qemu]`, `[limine]`, ...) are kept apart, each read by its plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct Config {
    /// Bootloader plugin: `none` (built in), `limine`, `grub`, or another registered one.
    pub bootloader: String,
    /// Image format plugin: `auto`, `directory`, `fat`, `iso`, `gpt`, `mbr`, or another
    /// registered format.
    pub format: String,
    /// How the machine boots: `auto`, `bios`, `uefi` or `hybrid`.
    pub boot: BootChoice,
    /// Guest architecture: `auto` (from the kernel's machine type), `x86_64`, `aarch64`,
    /// `riscv64`, `loongarch64`.
    pub arch: String,
    /// Firmware plugin used for UEFI boots.
    pub firmware: String,
    /// Runner plugin.
    pub runner: String,
    /// Kernel command line (bootloaders and direct `-kernel` boots pass it on).
    pub cmdline: String,
    /// Boot protocol bootloaders use for the kernel: `auto` (from the kernel's headers),
    /// `limine`, `multiboot1`, `multiboot2`, `linux`, `efi-chainload`.
    pub protocol: ProtocolChoice,
    /// Modules loaded with the kernel (multiboot modules, a Linux initrd, Limine modules).
    pub modules: Vec<ModuleConfig>,
    /// More boot menu entries after the default one (the kernel).
    pub entries: Vec<EntryConfig>,
    /// Use only what is cached or installed; never touch the network (also `--offline` and
    /// `CARGO_NET_OFFLINE=true`).
    pub offline: bool,
    /// User template variables, usable as `{{NAME}}` in every other string value.
    pub variables: BTreeMap<String, String>,
    /// Extra files: image path ← host path.
    pub extra_files: BTreeMap<String, String>,
    /// Image options.
    pub image: ImageConfig,
    /// How the image is attached to the machine: `auto` (an ISO as a CD-ROM, anything else as
    /// a disk), `cdrom`, or `disk` (boot a hybrid ISO as a USB stick would). `qemu.attach`, where
    /// it used to live, still sets it.
    pub attach: Attach,
    /// Options that apply when the executable is a test.
    pub test: ModeConfig,
    /// Options that apply when the executable is not a test.
    pub run: ModeConfig,
    /// Plugin libraries to load: paths (relative to the file that names them), or tables
    /// `{ path = "...", replace = true }` for a plugin that replaces one of the same name.
    pub plugins: Vec<PluginEntry>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bootloader: "none".into(),
            format: "auto".into(),
            boot: BootChoice::Auto,
            arch: "auto".into(),
            firmware: "ovmf".into(),
            runner: "qemu".into(),
            cmdline: String::new(),
            protocol: ProtocolChoice::Auto,
            modules: Vec::new(),
            entries: Vec::new(),
            offline: false,
            variables: BTreeMap::new(),
            extra_files: BTreeMap::new(),
            image: ImageConfig::default(),
            attach: Attach::Auto,
            test: ModeConfig::test_defaults(),
            run: ModeConfig::default(),
            plugins: Vec::new(),
        }
    }
}

/// The names of the shared keys, for checks and hints.
pub const SHARED_KEYS: &[&str] = &[
    "bootloader",
    "format",
    "boot",
    "arch",
    "firmware",
    "runner",
    "cmdline",
    "protocol",
    "modules",
    "entries",
    "offline",
    "variables",
    "extra-files",
    "image",
    "attach",
    "test",
    "run",
    "plugins",
    "profile",
];

/// One entry of `plugins`: a library's path, or a table with the path and options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a path, or a table like `{ path = \"libfoo.so\", replace = true }`"
)]
#[non_exhaustive]
pub enum PluginEntry {
    /// The library's path.
    Path(String),
    /// The library's path and options.
    Table(PluginTable),
}

/// `{ path = "...", replace = true }` in `plugins`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct PluginTable {
    /// The library's path (relative to the file that names it).
    pub path: String,
    /// Its plugins replace plugins of the same kind and name (a built-in one, say) instead of
    /// being refused.
    #[serde(default)]
    pub replace: bool,
}

impl PluginEntry {
    /// The path as written.
    pub fn path(&self) -> &str {
        match self {
            PluginEntry::Path(path) => path,
            PluginEntry::Table(table) => &table.path,
        }
    }

    /// Whether its plugins replace plugins of the same name.
    pub fn replaces(&self) -> bool {
        matches!(self, PluginEntry::Table(t) if t.replace)
    }
}

/// The boot method asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootChoice {
    /// UEFI for an EFI application, BIOS otherwise.
    #[default]
    Auto,
    /// Legacy BIOS (SeaBIOS).
    Bios,
    /// UEFI firmware (OVMF and friends).
    Uefi,
    /// An image that boots on both.
    Hybrid,
}

/// A module loaded with a kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct ModuleConfig {
    /// Host path of the module (relative paths start at the package directory).
    pub path: String,
    /// The module's command line / string.
    #[serde(default)]
    pub cmdline: String,
}

/// A boot menu entry besides the default one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct EntryConfig {
    /// Menu title.
    pub title: String,
    /// Host path of the kernel this entry boots.
    pub kernel: String,
    /// Boot protocol (as the top-level `protocol`).
    #[serde(default)]
    pub protocol: ProtocolChoice,
    /// Kernel command line.
    #[serde(default)]
    pub cmdline: String,
    /// Modules.
    #[serde(default)]
    pub modules: Vec<ModuleConfig>,
}

/// Image options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct ImageConfig {
    /// Image size in bytes; computed from the content when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// FAT type (12, 16 or 32); chosen from the content size when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fat_type: Option<u8>,
    /// Volume label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// How the image is attached to the machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Attach {
    /// An ISO as a CD-ROM, anything else as a disk (config only: the decision is never `auto`).
    #[default]
    Auto,
    /// As a CD-ROM drive.
    Cdrom,
    /// As a hard disk.
    Disk,
}

/// Options of one run mode: `[test]` for test binaries, `[run]` for everything else. The mode
/// is chosen once (see `RunMode` in the decisions module).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct ModeConfig {
    /// QEMU exit status that means "passed" (`(value << 1) | 1` of the isa-debug-exit write).
    /// When `[run]` leaves it unset, runs use `[test]`'s.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "exit_status"
    )]
    pub success_exit_code: Option<i32>,
    /// Seconds before the run is stopped and counted as timed out; 0 means no limit.
    pub timeout: u64,
    /// Extra emulator arguments for this mode.
    pub args: Vec<String>,
    /// A regex: serial output matching it ends the run as passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_pattern: Option<String>,
    /// A regex: serial output matching it ends the run as failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_pattern: Option<String>,
    /// Text typed into the serial port when the output matches.
    pub send: Vec<SendRule>,
}

impl ModeConfig {
    /// `[test]`'s defaults: exit status 33 passes, 300 s limit.
    pub fn test_defaults() -> Self {
        ModeConfig {
            success_exit_code: Some(33),
            timeout: 300,
            ..ModeConfig::default()
        }
    }
}

/// "When the serial output matches `after`, type `text`." Rules fire once each, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct SendRule {
    /// A regex to wait for on the serial output.
    pub after: String,
    /// What to type.
    pub text: String,
}

/// A process exit status: 0 to 255 (what a process can report; `(value << 1) | 1` of an
/// isa-debug-exit write is taken modulo 256 by the system). Anything else could never match.
fn exit_status<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i32>, D::Error> {
    let value = i64::deserialize(deserializer)?;
    match i32::try_from(value) {
        Ok(status @ 0..=255) => Ok(Some(status)),
        _ => Err(serde::de::Error::custom(format!(
            "{value} is no exit status a process can have (0 to 255); with isa-debug-exit a write of v gives (v << 1) | 1, e.g. 33 for 0x10"
        ))),
    }
}

#[cfg(test)]
mod exit_status_tests {
    use super::*;

    /// Issue 18, item 22: 300 or -1 were taken and could never match.
    #[test]
    fn a_success_exit_code_is_an_exit_status() {
        let mode: ModeConfig = toml::from_str("success-exit-code = 33").unwrap();
        assert_eq!(mode.success_exit_code, Some(33));
        for bad in ["300", "-1", "256", "99999999999"] {
            let err = toml::from_str::<ModeConfig>(&format!("success-exit-code = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("no exit status a process can have (0 to 255)"),
                "{bad}: {err}"
            );
        }
    }
}
