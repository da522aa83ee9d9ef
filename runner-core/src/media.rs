//! The values that flow between pipeline steps and out of a run: [`Image`] → [`BootMedia`] (with
//! [`FirmwareFiles`]) → [`Outcome`] with its [`Verdict`]; and [`Check`] findings for `doctor`.
//! Plain data: this module depends on nothing else in the crate.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How the machine boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum BootKind {
    /// Legacy BIOS.
    Bios,
    /// UEFI firmware.
    Uefi,
    /// An image that boots on both; it is run under UEFI firmware.
    Hybrid,
}

impl BootKind {
    /// Whether running this boot kind needs UEFI firmware.
    pub fn needs_uefi_firmware(self) -> bool {
        matches!(self, BootKind::Uefi | BootKind::Hybrid)
    }

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            BootKind::Bios => "bios",
            BootKind::Uefi => "uefi",
            BootKind::Hybrid => "hybrid",
        }
    }
}

impl fmt::Display for BootKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of file (or directory) an image is; the runner attaches each kind differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ImageKind {
    /// A host directory, attached as a virtual FAT drive.
    Directory,
    /// A FAT file-system image (no partition table).
    Fat,
    /// An ISO 9660 image.
    Iso,
    /// A partitioned disk image (GPT or MBR).
    Disk,
}

impl ImageKind {
    /// A short name: `directory`, `fat`, `iso`, `disk`.
    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Directory => "directory",
            ImageKind::Fat => "fat",
            ImageKind::Iso => "iso",
            ImageKind::Disk => "disk",
        }
    }

    /// The kind called `name` (see [`ImageKind::name`]).
    pub fn from_name(name: &str) -> Option<ImageKind> {
        [
            ImageKind::Directory,
            ImageKind::Fat,
            ImageKind::Iso,
            ImageKind::Disk,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A built image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Image {
    /// Where the image is.
    pub path: PathBuf,
    /// What it is.
    pub kind: ImageKind,
    /// How a [`ImageKind::Disk`] image is stored, as QEMU names the format (`qcow2`, `vmdk`,
    /// `vhdx`, ...); `None` for a plain (raw) file.
    #[serde(default)]
    pub disk_format: Option<String>,
}

impl Image {
    /// A plain image at `path` of `kind`.
    pub fn new(path: impl Into<PathBuf>, kind: ImageKind) -> Self {
        Image {
            path: path.into(),
            kind,
            disk_format: None,
        }
    }

    /// The same image stored as `format` (QEMU's name for it: `qcow2`, `vmdk`, `vhdx`).
    pub fn with_disk_format(mut self, format: impl Into<String>) -> Self {
        self.disk_format = Some(format.into());
        self
    }
}

/// UEFI firmware files for one run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum FirmwareFiles {
    /// A code/variable-store pair for two pflash units; `vars` is this run's own copy.
    Pflash {
        /// Read-only firmware code.
        code: PathBuf,
        /// Writable variable store.
        vars: PathBuf,
    },
    /// A single unified firmware file passed with `-bios`.
    Unified(PathBuf),
}

/// Everything the runner boots: an image, a kernel for direct boot, or both, plus firmware.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct BootMedia {
    /// The built image, if any.
    pub image: Option<Image>,
    /// A kernel the runner hands to the machine directly (QEMU `-kernel`).
    pub direct_kernel: Option<PathBuf>,
    /// UEFI firmware, when the boot needs it.
    pub firmware: Option<FirmwareFiles>,
    /// How the machine boots.
    pub boot: BootKind,
}

impl BootMedia {
    /// Boot media with nothing attached yet.
    pub fn new(boot: BootKind) -> Self {
        BootMedia {
            image: None,
            direct_kernel: None,
            firmware: None,
            boot,
        }
    }
}

/// How a run ended, judged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Verdict {
    /// The guest reported success (or, outside tests, shut down normally).
    Success,
    /// The guest reported failure; `code` is the value it wrote, when it wrote one.
    GuestFailure {
        /// The value the guest wrote to the exit device.
        code: Option<i32>,
        /// One line saying why.
        reason: String,
    },
    /// The run was stopped at the time limit.
    Timeout {
        /// The limit.
        after: Duration,
    },
    /// The machine ended without a verdict: reset/triple fault, killed, or the emulator failed.
    Crashed {
        /// One line saying why.
        reason: String,
    },
    /// The user interrupted the run (Ctrl-C, SIGTERM).
    Interrupted,
}

/// Process exit codes of `cargo-image-runner` (documented in the README).
pub mod exit_code {
    /// The guest passed.
    pub const SUCCESS: i32 = 0;
    /// The guest reported failure.
    pub const GUEST_FAILURE: i32 = 1;
    /// The runner itself failed: config, missing file or tool, image build.
    pub const RUNNER_ERROR: i32 = 2;
    /// The run hit its time limit.
    pub const TIMEOUT: i32 = 3;
    /// The machine ended without a verdict (triple fault, killed, emulator error).
    pub const CRASHED: i32 = 4;
    /// Interrupted by the user (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: i32 = 130;
    /// The runner itself crashed (a bug): never a verdict on the kernel, and not libtest's 101
    /// for failed tests, so cargo's output cannot be mistaken for a failing test (70 is
    /// `EX_SOFTWARE`, "internal software error").
    pub const RUNNER_BUG: i32 = 70;
}

impl Verdict {
    /// The process exit code that reports this verdict to cargo.
    pub fn exit_code(&self) -> i32 {
        match self {
            Verdict::Success => exit_code::SUCCESS,
            Verdict::GuestFailure { .. } => exit_code::GUEST_FAILURE,
            Verdict::Timeout { .. } => exit_code::TIMEOUT,
            Verdict::Crashed { .. } => exit_code::CRASHED,
            Verdict::Interrupted => exit_code::INTERRUPTED,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Success => f.write_str("passed"),
            Verdict::GuestFailure { reason, .. } => write!(f, "failed: {reason}"),
            Verdict::Timeout { after } => write!(f, "timed out after {} s", after.as_secs_f64()),
            Verdict::Crashed { reason } => write!(f, "ended without a verdict: {reason}"),
            Verdict::Interrupted => f.write_str("interrupted"),
        }
    }
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Outcome {
    /// The judged result.
    pub verdict: Verdict,
    /// The emulator's raw exit status, when it exited by itself.
    pub status: Option<i32>,
    /// How long the run took.
    pub duration: Duration,
    /// Where the guest's serial output was saved, if it was.
    pub serial_log: Option<PathBuf>,
    /// A picture of the guest's display, saved when the runner stopped a failing test run
    /// (a time limit, a failure verdict), if it could take one.
    #[serde(default)]
    pub screenshot: Option<PathBuf>,
}

impl Outcome {
    /// An outcome with a verdict and nothing else known.
    pub fn new(verdict: Verdict, duration: Duration) -> Self {
        Outcome {
            verdict,
            status: None,
            duration,
            serial_log: None,
            screenshot: None,
        }
    }
}

/// One finding of `cargo-image-runner doctor`: is something a plugin needs on this host?
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Check {
    /// What was checked ("qemu-system-x86_64", "UEFI firmware for aarch64").
    pub subject: String,
    /// How it went.
    pub status: CheckStatus,
    /// What was found, or what to install.
    pub detail: String,
}

/// The result of a [`Check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum CheckStatus {
    /// Present and usable.
    Ok,
    /// Usable with a limitation, or needed only for some setups.
    Warn,
    /// Missing: some runs will fail until it is installed.
    Missing,
}

impl Check {
    /// A finding.
    pub fn new(subject: impl Into<String>, status: CheckStatus, detail: impl Into<String>) -> Self {
        Check {
            subject: subject.into(),
            status,
            detail: detail.into(),
        }
    }
}
