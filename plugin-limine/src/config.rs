//! The `[limine]` config section (`[package.metadata.image-runner.limine]`): where Limine comes
//! from and how its menu is written. Declared to the core through
//! [`image_runner_core::Bootloader::config_section`] and read with
//! `ctx.section::<LimineConfig>("limine")`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Limine options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct LimineConfig {
    /// Git repository with Limine's binary branches (URL or local path).
    pub git: String,
    /// A binary branch (`v8.x-binary`), a tag (`v8.2.0-binary`) or a commit id.
    pub version: String,
    /// A local folder with the Limine binaries instead of git (e.g. `/usr/share/limine`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Minutes before a branch is asked again which commit it points at.
    pub refresh_minutes: u64,
    /// Seconds the menu waits.
    pub timeout: u32,
    /// A `limine.conf` template (with `{{VARS}}`) instead of the generated one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
}

impl Default for LimineConfig {
    fn default() -> Self {
        LimineConfig {
            git: "https://github.com/limine-bootloader/limine.git".into(),
            version: "v8.x-binary".into(),
            path: None,
            refresh_minutes: 60,
            timeout: 0,
            config: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_crate_constants() {
        let cfg = LimineConfig::default();
        assert_eq!(cfg.git, crate::DEFAULT_GIT_URL);
        assert_eq!(cfg.version, crate::DEFAULT_VERSION);
        assert_eq!(
            std::time::Duration::from_secs(cfg.refresh_minutes * 60),
            crate::DEFAULT_REFRESH
        );
        assert_eq!(cfg.timeout, crate::conf::DEFAULT_TIMEOUT);
    }
}
