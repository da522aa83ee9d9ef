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
    /// Where firmware comes from: `auto` (installed firmware first, the pinned download when
    /// none is installed), `system` (installed only) or `download` (the download only).
    pub source: Source,
    /// Another `ovmf-prebuilt` release tag than the pinned one (needs `sha256`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// A mirror: the archive's URL, `{tag}` standing for the release tag (needs `sha256`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The sha256 of the archive `release`/`url` name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Seconds a download waits for the server (to connect, for each piece of the answer)
    /// before the attempt counts as stalled.
    pub timeout: u64,
    /// A UEFI shell (`shell.efi`) for starting a UEFI application with `cmdline` arguments;
    /// the downloaded release's shell when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<PathBuf>,
}

/// Where firmware comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Source {
    /// Installed firmware first; the pinned download when none is installed.
    #[default]
    Auto,
    /// Installed firmware only.
    System,
    /// The downloaded release only.
    Download,
}

impl Default for OvmfConfig {
    fn default() -> Self {
        OvmfConfig {
            code: None,
            vars: None,
            unified: true,
            warm_vars: true,
            source: Source::Auto,
            release: None,
            url: None,
            sha256: None,
            timeout: 30,
            shell: None,
        }
    }
}
