//! Limine for cargo-image-runner: gets the Limine binaries (a local directory, or a commit of
//! Limine's binary-release branches fetched with git into a verified cache), writes
//! `limine.conf` in the syntax of the Limine version in use, stages the kernel for BIOS, UEFI
//! or both, and installs the BIOS stages into finished images (the `limine` bootloader plugin).

mod acquire;
mod bootloader;
mod cache;
pub mod conf;
mod config;
mod error;
mod fetch;
mod files;
pub mod install;
pub mod stage;
mod stages;
mod version;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use acquire::acquire;
pub use bootloader::{Limine, settings, settings_from};
pub use cache::{CachedLimine, CleanReport, clean_cache, list_cached};
pub use conf::{LimineEntry, Module, Protocol, limine_name, render_conf, render_template};
pub use config::LimineConfig;
pub use error::LimineError;
pub use files::{FilesSource, LimineFiles, REQUIRED_FILES, efi_loader_name};
pub use stages::{BiosStages, HDD_STAGES_FILE};
pub use version::LimineVersion;

/// Adds the `limine` bootloader to `registry`.
pub fn register(registry: &mut image_runner_core::Registry) {
    registry.add_bootloader(Limine::new());
}

/// The Limine repository, which carries the binary-release branches and tags.
pub const DEFAULT_GIT_URL: &str = "https://github.com/limine-bootloader/limine.git";
/// The binary-release branch used when none is configured: the newest 8.x release.
pub const DEFAULT_VERSION: &str = "v8.x-binary";
/// How long a branch → commit resolution is trusted before the remote is asked again. Binary
/// branches move with releases (weeks apart), so an hour keeps runs off the network while a
/// new release still arrives the same day.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60 * 60);

/// Where Limine comes from and how the cache may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimineSettings {
    /// The git repository: an `https://` URL (needs the `https` feature), a `file://` URL or a
    /// local path.
    pub git: String,
    /// A branch (`v8.x-binary`), a tag (`v8.2.0-binary`), or a full or abbreviated commit id.
    pub version: String,
    /// A local directory holding the Limine binaries, used as it is instead of git (e.g.
    /// `/usr/share/limine`).
    pub path: Option<PathBuf>,
    /// Use only the cache; never touch the network.
    pub offline: bool,
    /// The user cache; Limine goes into its `limine/` folder.
    pub cache_dir: PathBuf,
    /// How long a resolved branch is used before it is resolved again on the remote (zero:
    /// every call). Tags and commits are never resolved again.
    pub refresh: Duration,
    /// Hash every file of a cache entry and compare it with the commit's git blob ids before
    /// using it, instead of trusting an earlier check of files whose metadata (device, inode,
    /// size, mtime, ctime) did not change since. `cargo-image-runner limine fetch` sets it, so
    /// it repairs any damaged entry; runs leave it off (a damaged entry is still fetched again
    /// whenever a write changed it).
    pub full_check: bool,
}

impl LimineSettings {
    /// The defaults ([`DEFAULT_GIT_URL`], [`DEFAULT_VERSION`], [`DEFAULT_REFRESH`], online,
    /// quick checks) with the cache in `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        LimineSettings {
            git: DEFAULT_GIT_URL.into(),
            version: DEFAULT_VERSION.into(),
            path: None,
            offline: false,
            cache_dir: cache_dir.into(),
            refresh: DEFAULT_REFRESH,
            full_check: false,
        }
    }
}

/// Whether the environment asks for offline work: `CARGO_NET_OFFLINE` set to `true` or `1`,
/// the variable that keeps cargo itself off the network (its `net.offline` setting).
pub fn offline_from_env(env: &BTreeMap<String, String>) -> bool {
    env.get("CARGO_NET_OFFLINE")
        .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_is_read_from_cargo_net_offline() {
        let env = |v: &str| BTreeMap::from([("CARGO_NET_OFFLINE".to_owned(), v.to_owned())]);
        assert!(offline_from_env(&env("true")));
        assert!(offline_from_env(&env("1")));
        assert!(!offline_from_env(&env("false")));
        assert!(!offline_from_env(&BTreeMap::new()));
    }
}
