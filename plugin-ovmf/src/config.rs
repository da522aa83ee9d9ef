//! The `[ovmf]` config section.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

/// The most seconds `ovmf.timeout` and `ovmf.download-timeout` accept: a day. Larger values
/// would mean "never" in practice, and near `u64::MAX` they overflow the clock arithmetic of
/// the HTTP client.
pub const MAX_SECONDS: u64 = 86_400;

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
    /// before the attempt counts as stalled; also the span over which `low-speed-limit` is
    /// measured. 0 counts as 1; at most a day (86400).
    #[serde(deserialize_with = "timeout")]
    pub timeout: u64,
    /// Bytes per second a download must average over each `timeout` seconds; an attempt that
    /// gets less counts as stalled (and is retried), so a mirror that drips the archive out is
    /// given up on. 0 turns the rule off.
    pub low_speed_limit: u64,
    /// Seconds a whole download may take, retries included; 0 means no limit (then only
    /// `timeout` and `low-speed-limit` bound it). At most a day (86400).
    #[serde(deserialize_with = "download_timeout")]
    pub download_timeout: u64,
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
            low_speed_limit: 4096,
            download_timeout: 900,
            shell: None,
        }
    }
}

/// `ovmf.timeout`: seconds, at most [`MAX_SECONDS`].
fn timeout<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    seconds(deserializer, "timeout")
}

/// `ovmf.download-timeout`: seconds, at most [`MAX_SECONDS`].
fn download_timeout<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    seconds(deserializer, "download-timeout")
}

fn seconds<'de, D: Deserializer<'de>>(deserializer: D, key: &str) -> Result<u64, D::Error> {
    let value = u64::deserialize(deserializer)?;
    if value > MAX_SECONDS {
        return Err(serde::de::Error::custom(format!(
            "`ovmf.{key} = {value}` is too long: it takes seconds, at most {MAX_SECONDS} (a day)"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_beyond_a_day_are_refused_naming_the_key() {
        for key in ["timeout", "download-timeout"] {
            for huge in [u64::from(u32::MAX), i64::MAX as u64 - 5, MAX_SECONDS + 1] {
                let err = serde_json::from_str::<OvmfConfig>(&format!(r#"{{"{key}": {huge}}}"#))
                    .unwrap_err()
                    .to_string();
                assert!(
                    err.contains(&format!("`ovmf.{key} = {huge}`")) && err.contains("86400"),
                    "{err}"
                );
            }
            let config: OvmfConfig =
                serde_json::from_str(&format!(r#"{{"{key}": {MAX_SECONDS}}}"#)).unwrap();
            assert_eq!(config.timeout.max(config.download_timeout), MAX_SECONDS);
        }
        let err = serde_json::from_str::<OvmfConfig>(r#"{"timeout": -1}"#).unwrap_err();
        assert!(err.to_string().contains("-1"), "{err}");
    }
}
