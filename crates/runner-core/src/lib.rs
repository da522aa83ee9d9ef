//! Core of cargo-image-runner: the plugin traits, the registry, the config model and the
//! pipeline that composes bootloader → image format → firmware → runner.

pub mod config;
pub mod error;
pub mod staging;

pub use error::{Error, Result};
pub use staging::{ImagePath, Source, Staging};
