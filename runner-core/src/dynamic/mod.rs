//! Third-party plugins as dynamic libraries.
//!
//! - [`abi`]: the frozen `#[repr(C)]` types, the entry symbol and the version numbers.
//! - [`messages`]: the versioned JSON messages that carry rich values across.
//! - [`host`]: loading a library, checking it, and wrapping its plugins in the plugin traits.
//! - `image`: where a loaded library lies in memory, which bounds everything the host reads
//!   through its header.
//! - [`export`]: the plugin side, behind [`export_plugin!`](crate::export_plugin).
//! - `sources`: which libraries an invocation asks for (`plugins` in config, `--plugin`).
//!
//! Writing a plugin: implement [`crate::Bootloader`], [`crate::ImageFormat`],
//! [`crate::Firmware`] or [`crate::Runner`] as for a built-in, then
//! `image_runner_core::export_plugin!(format: MyFormat);` in a `cdylib` crate. See PLUGINS.md
//! at the repository root.

pub mod abi;
pub mod export;
pub mod host;
mod image;
pub mod messages;
mod sources;

pub use export::log;
pub use host::load_library;
pub use sources::{PluginRequest, load_requested, requested};

#[cfg(test)]
mod tests;
