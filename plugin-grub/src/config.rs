//! The `grub` config section (`[package.metadata.image-runner.grub]`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
