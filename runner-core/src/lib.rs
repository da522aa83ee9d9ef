//! The plugin API of cargo-image-runner: the plugin traits, the registry, the shared config keys
//! and their layering, plugin-owned config sections, the decisions made once before staging,
//! the pipeline that composes bootloader → image format → firmware → runner, and a builder for
//! booting a kernel from Rust code.
//!
//! It knows no built-in plugin but the `none` bootloader. Modules depend on each other in one
//! direction only: `media`, `error`, `kernel`, `staging`, `protocol`, `config` → `decisions` →
//! `context` → `serial`, `plugin` → `registry`, `none` → `pipeline` → `session`; `dynamic`
//! (plugin libraries: the ABI, the loader and `export_plugin!`) sits beside `pipeline`, above
//! `registry`.

pub mod command;
pub mod config;
pub mod context;
pub mod decisions;
pub mod dynamic;
pub mod error;
pub mod fs;
pub mod kernel;
pub mod media;
pub mod none;
pub mod pipeline;
pub mod plugin;
pub mod protocol;
pub mod registry;
pub mod serial;
pub mod session;
pub mod staging;

pub use command::CommandSpec;
pub use config::{Config, OldKey, Section};
pub use context::{Context, Invocation};
pub use decisions::{Decisions, ImagePlan, RunMode};
pub use error::{Error, Result};
pub use kernel::{Arch, Kernel, KernelFormat};
pub use media::{
    BootKind, BootMedia, Check, CheckStatus, FirmwareFiles, Image, ImageKind, Outcome, Verdict,
    exit_code,
};
pub use pipeline::Pipeline;
pub use plugin::{Bootloader, BuildRequest, Firmware, ImageFormat, Runner, Staged};
pub use protocol::{Protocol, ProtocolChoice};
pub use registry::{Origin, PluginInfo, Registry};
pub use serial::{Control, SerialHandler};
pub use session::{Builder, RunResult, Session};
pub use staging::{BootHints, HostFiles, ImagePath, Source, Staging};
