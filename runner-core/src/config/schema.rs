//! The config schema: serde types only, no logic. Every key is kebab-case; unknown keys are errors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole configuration, as resolved from all sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct Config {
    /// Bootloader plugin: `none` (built in), `limine`, `grub`, or a dynamic plugin's name.
    pub bootloader: String,
    /// Image format plugin: `auto`, `directory`, `fat`, or another registered format.
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
    pub protocol: String,
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
    /// QEMU options.
    pub qemu: QemuConfig,
    /// UEFI firmware options.
    pub ovmf: OvmfConfig,
    /// GRUB options.
    pub grub: GrubConfig,
    /// Limine options.
    pub limine: LimineConfig,
    /// Options that apply when the executable is a test.
    pub test: TestConfig,
    /// Options that apply when the executable is not a test.
    pub run: RunConfig,
    /// Named profiles, each a partial config applied with `--profile NAME`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub profile: BTreeMap<String, Config>,
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
            protocol: "auto".into(),
            modules: Vec::new(),
            entries: Vec::new(),
            offline: false,
            variables: BTreeMap::new(),
            extra_files: BTreeMap::new(),
            image: ImageConfig::default(),
            qemu: QemuConfig::default(),
            ovmf: OvmfConfig::default(),
            grub: GrubConfig::default(),
            limine: LimineConfig::default(),
            test: TestConfig::default(),
            run: RunConfig::default(),
            profile: BTreeMap::new(),
        }
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
    #[serde(default = "auto")]
    pub protocol: String,
    /// Kernel command line.
    #[serde(default)]
    pub cmdline: String,
    /// Modules.
    #[serde(default)]
    pub modules: Vec<ModuleConfig>,
}

fn auto() -> String {
    "auto".into()
}

/// GRUB options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct GrubConfig {
    /// Where GRUB's platform module folders are (`i386-pc`, `x86_64-efi`, ...);
    /// `/usr/lib/grub` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules_dir: Option<PathBuf>,
    /// The `grub-mkimage` program.
    pub mkimage: String,
    /// Seconds the menu waits.
    pub timeout: u32,
    /// A `grub.cfg` template (with `{{VARS}}`) instead of the generated one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// More GRUB modules to embed in the core images.
    pub extra_modules: Vec<String>,
}

impl Default for GrubConfig {
    fn default() -> Self {
        GrubConfig {
            modules_dir: None,
            mkimage: "grub-mkimage".into(),
            timeout: 0,
            config: None,
            extra_modules: Vec::new(),
        }
    }
}

/// Limine options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct LimineConfig {
    /// Git repository with Limine's binary branches (URL or local path).
    pub git: String,
    /// A binary branch (`v8.x-binary`), a tag (`v8.2.0-binary`) or a commit id.
    pub version: String,
    /// A local folder with the Limine binaries instead of git (e.g. `/usr/share/limine`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Minutes before a branch is asked again which commit it points at.
    pub refresh_minutes: u64,
    /// Seconds the menu waits.
    pub timeout: u32,
    /// A `limine.conf` template (with `{{VARS}}`) instead of the generated one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
}

impl Default for LimineConfig {
    fn default() -> Self {
        LimineConfig {
            git: "https://github.com/limine-bootloader/limine.git".into(),
            version: "v8.x-binary".into(),
            path: None,
            refresh_minutes: 60,
            timeout: 0,
            config: None,
        }
    }
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

/// QEMU options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct QemuConfig {
    /// QEMU program; `qemu-system-<arch>` when empty.
    pub binary: String,
    /// Machine type; `q35` on x86_64, `virt` elsewhere, when empty.
    pub machine: String,
    /// CPU model; when empty, `max` under TCG and `host` under KVM/HVF on ARM, QEMU's default
    /// elsewhere.
    pub cpu: String,
    /// Guest memory, as QEMU's `-m` takes it.
    pub memory: String,
    /// Number of virtual CPUs.
    pub cores: u32,
    /// Accelerator: `auto`, `kvm`, `tcg`, `hvf`, `whpx`, or a fallback list like `kvm,tcg`.
    pub accel: String,
    /// Open a window instead of running headless.
    pub gui: bool,
    /// Where the guest's serial port goes: `stdio` (terminal and log), `file` (log only), `none`.
    pub serial: SerialMode,
    /// Start halted with a gdb stub on this TCP port (0 = any free port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gdb_port: Option<u16>,
    /// How the image is attached: `auto` (an ISO as a CD-ROM, anything else as a disk),
    /// `cdrom` or `disk` (boot a hybrid ISO as a USB stick would).
    pub attach: Attach,
    /// Extra arguments for every run.
    pub args: Vec<String>,
}

/// How the runner attaches the image to the machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attach {
    /// An ISO as a CD-ROM, anything else as a disk.
    #[default]
    Auto,
    /// As a CD-ROM drive.
    Cdrom,
    /// As a hard disk.
    Disk,
}

impl Default for QemuConfig {
    fn default() -> Self {
        QemuConfig {
            binary: String::new(),
            machine: String::new(),
            cpu: String::new(),
            memory: "256M".into(),
            cores: 1,
            accel: "auto".into(),
            gui: false,
            serial: SerialMode::Stdio,
            gdb_port: None,
            attach: Attach::Auto,
            args: Vec::new(),
        }
    }
}

/// Where the guest's serial output goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SerialMode {
    /// Shown on the terminal and saved to `serial.log`.
    #[default]
    Stdio,
    /// Saved to `serial.log` only.
    File,
    /// Not connected.
    None,
}

/// UEFI firmware options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct OvmfConfig {
    /// Firmware code file (read-only pflash), or a unified image when `vars` is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<PathBuf>,
    /// Variable store template; copied for each run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vars: Option<PathBuf>,
    /// Prefer an installed unified image (`-bios OVMF.fd`, variables kept in memory for the
    /// run) over a code/VARS pair: about a quarter faster to boot under TCG.
    pub unified: bool,
    /// Start each run from the variable store the last passing run of the same setup left,
    /// instead of the empty template: skips the firmware's first-boot work.
    pub warm_vars: bool,
}

impl Default for OvmfConfig {
    fn default() -> Self {
        OvmfConfig {
            code: None,
            vars: None,
            unified: true,
            warm_vars: true,
        }
    }
}

/// Test-mode options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct TestConfig {
    /// QEMU exit status that means "passed" (`(value << 1) | 1` of the isa-debug-exit write);
    /// normal runs use it too.
    pub success_exit_code: i32,
    /// Seconds before a test run is stopped and counted as timed out.
    pub timeout: u64,
    /// Extra QEMU arguments for test runs.
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

impl Default for TestConfig {
    fn default() -> Self {
        TestConfig {
            success_exit_code: 33,
            timeout: 300,
            args: Vec::new(),
            success_pattern: None,
            failure_pattern: None,
            send: Vec::new(),
        }
    }
}

/// Options for normal (non-test) runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct RunConfig {
    /// Seconds before the run is stopped; 0 means no limit.
    pub timeout: u64,
    /// Extra QEMU arguments for normal runs.
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
