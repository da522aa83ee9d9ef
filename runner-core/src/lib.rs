//! Core of cargo-image-runner: the plugin traits, the registry, the config model and the
//! pipeline that composes bootloader → image format → firmware → runner.

pub mod command;
pub mod config;
pub mod context;
pub mod error;
pub mod fingerprint;
pub mod fs;
pub mod incremental;
pub mod kernel;
pub mod none;
pub mod partition;
pub mod pipeline;
pub mod plugin;
pub mod registry;
pub mod staging;

pub use command::CommandSpec;
pub use config::Config;
pub use context::{Context, Invocation};
pub use error::{Error, Result};
pub use kernel::{Arch, Kernel, KernelFormat};
pub use pipeline::Pipeline;
pub use plugin::{
    BootKind, BootMedia, Bootloader, Check, CheckStatus, Firmware, FirmwareFiles, Image,
    ImageFormat, ImageKind, Outcome, Runner, Verdict,
};
pub use registry::Registry;
pub use staging::{BootHints, HostFiles, ImagePath, Source, Staging};
