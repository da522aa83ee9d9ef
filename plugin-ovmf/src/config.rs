//! The `[ovmf]` config section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
