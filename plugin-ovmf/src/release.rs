//! The prebuilt edk2 release this crate downloads when no firmware is installed: one pinned
//! archive of the rust-osdev `ovmf-prebuilt` project, named by its tag and identified by the
//! sha256 of the archive, or another one the config names with its own sha256.

use image_runner_core::{Arch, Error};

use crate::OvmfConfig;

/// The pinned release tag.
pub const PINNED_TAG: &str = "edk2-stable202605-r1";

/// The sha256 of the pinned release's `<tag>-bin.tar.xz`.
pub const PINNED_SHA256: &str = "8ae4d2d73161cc2335f5675d3b8b6edfa0642301679764a246940488ea3ce20d";

/// Where releases are downloaded from; `{tag}` is replaced by the release tag.
pub const DEFAULT_URL: &str =
    "https://github.com/rust-osdev/ovmf-prebuilt/releases/download/{tag}/{tag}-bin.tar.xz";

/// One release archive: where it is downloaded from and the sha256 it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The release tag (`edk2-stable202605-r1`).
    pub tag: String,
    /// The archive's URL, `{tag}` replaced.
    pub url: String,
    /// The archive's sha256, lowercase hex.
    pub sha256: String,
}

impl Release {
    /// The pinned release from its usual place.
    pub fn pinned() -> Release {
        Release {
            tag: PINNED_TAG.into(),
            url: DEFAULT_URL.replace("{tag}", PINNED_TAG),
            sha256: PINNED_SHA256.into(),
        }
    }

    /// The release `ovmf.release`, `ovmf.url` and `ovmf.sha256` name. Another release or
    /// another URL than the pinned one's needs its own sha256: nothing unverified is unpacked.
    pub fn from_config(config: &OvmfConfig) -> Result<Release, Error> {
        let tag = config
            .release
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or(PINNED_TAG);
        if !tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return Err(Error::Config(format!(
                "`ovmf.release = \"{tag}\"` is not a release tag (letters, digits, `-`, `.`, `_`); use a tag of the ovmf-prebuilt releases such as `{PINNED_TAG}`"
            )));
        }
        let template = config
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or(DEFAULT_URL);
        let url = template.replace("{tag}", tag);
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(Error::Config(format!(
                "`ovmf.url = \"{template}\"` is not an http:// or https:// URL; set it to a URL template such as `{DEFAULT_URL}`"
            )));
        }
        let sha256 = match config.sha256.as_deref().map(str::trim) {
            Some(sum) if !sum.is_empty() => {
                let sum = sum.to_ascii_lowercase();
                if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::Config(format!(
                        "`ovmf.sha256 = \"{sum}\"` is not a sha256 (64 hexadecimal digits)"
                    )));
                }
                sum
            }
            _ if tag == PINNED_TAG && template == DEFAULT_URL => PINNED_SHA256.into(),
            _ => {
                let which = if tag != PINNED_TAG {
                    format!("`ovmf.release = \"{tag}\"`")
                } else {
                    format!("`ovmf.url = \"{template}\"`")
                };
                return Err(Error::Config(format!(
                    "{which} needs `ovmf.sha256`, the sha256 of the archive it names (`{url}`), so that nothing unverified is unpacked; set `ovmf.sha256` (or CARGO_IMAGE_RUNNER_OVMF_SHA256), or remove it to use the pinned release {PINNED_TAG}"
                )));
            }
        };
        Ok(Release {
            tag: tag.to_owned(),
            url,
            sha256,
        })
    }

    /// The archive's file name, from the URL (`<tag>-bin.tar.xz` for the usual place).
    pub fn file_name(&self) -> String {
        self.url
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty() && !n.contains(['?', '#']))
            .map_or_else(|| format!("{}-bin.tar.xz", self.tag), str::to_owned)
    }
}

/// The archive's folder for `arch` (`x64`, `aarch64`, `riscv64`, `loongarch64`).
pub fn arch_dir(arch: Arch) -> Option<&'static str> {
    match arch {
        Arch::X86_64 => Some("x64"),
        Arch::Aarch64 => Some("aarch64"),
        Arch::Riscv64 => Some("riscv64"),
        Arch::LoongArch64 => Some("loongarch64"),
        _ => None,
    }
}

/// The size QEMU's `virt` board needs each pflash image of `arch` to have (the archive's
/// images are padded to it with zeros, as distributions ship them); `None` when any size works.
pub fn pflash_size(arch: Arch) -> Option<u64> {
    match arch {
        Arch::Aarch64 => Some(64 << 20),
        Arch::Riscv64 => Some(32 << 20),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_release_is_fetched_from_its_release_page() {
        let release = Release::from_config(&OvmfConfig::default()).unwrap();
        assert_eq!(release, Release::pinned());
        assert_eq!(
            release.url,
            "https://github.com/rust-osdev/ovmf-prebuilt/releases/download/edk2-stable202605-r1/edk2-stable202605-r1-bin.tar.xz"
        );
        assert_eq!(release.file_name(), "edk2-stable202605-r1-bin.tar.xz");
        assert_eq!(release.sha256.len(), 64);
    }

    #[test]
    fn another_release_or_mirror_needs_its_sha256() {
        let config = OvmfConfig {
            release: Some("edk2-stable202511-r2".into()),
            ..OvmfConfig::default()
        };
        let err = Release::from_config(&config).unwrap_err().to_string();
        assert!(
            err.contains("ovmf.release") && err.contains("ovmf.sha256"),
            "{err}"
        );
        let config = OvmfConfig {
            url: Some("http://mirror.example/{tag}.tar.xz".into()),
            ..OvmfConfig::default()
        };
        let err = Release::from_config(&config).unwrap_err().to_string();
        assert!(
            err.contains("ovmf.url") && err.contains("ovmf.sha256"),
            "{err}"
        );
        let sum = "AB".repeat(32);
        let config = OvmfConfig {
            url: Some("http://mirror.example/{tag}.tar.xz".into()),
            sha256: Some(sum),
            ..OvmfConfig::default()
        };
        let release = Release::from_config(&config).unwrap();
        assert_eq!(
            release.url,
            "http://mirror.example/edk2-stable202605-r1.tar.xz"
        );
        assert_eq!(release.sha256, "ab".repeat(32));
        let config = OvmfConfig {
            sha256: Some("123".into()),
            ..OvmfConfig::default()
        };
        let err = Release::from_config(&config).unwrap_err().to_string();
        assert!(err.contains("64 hexadecimal digits"), "{err}");
        let config = OvmfConfig {
            release: Some("../x".into()),
            ..OvmfConfig::default()
        };
        assert!(Release::from_config(&config).is_err());
    }
}
