//! The GRUB installed on the host: the `grub-mkimage` program and the platform module folders,
//! with the packages that provide them when they are missing.

use std::path::{Path, PathBuf};

use image_runner_core::{Check, CheckStatus, Context, Error};

use crate::config::GrubConfig;

/// Where distributions put GRUB's platform folders (Debian, Ubuntu, Fedora, Arch alike).
pub const DEFAULT_MODULES_ROOT: &str = "/usr/lib/grub";
/// The default `grub.mkimage`.
pub const DEFAULT_MKIMAGE: &str = "grub-mkimage";
/// Fedora and openSUSE name the tools `grub2-*`; tried when the default name is not found.
const FALLBACK_MKIMAGE: &str = "grub2-mkimage";

/// A GRUB platform: a folder of modules and boot images for one firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Platform {
    /// Legacy BIOS (`i386-pc`).
    I386Pc,
    /// 64-bit x86 UEFI (`x86_64-efi`).
    X86_64Efi,
}

impl Platform {
    /// The folder name under the modules root, as GRUB names the platform.
    pub fn dir_name(self) -> &'static str {
        match self {
            Platform::I386Pc => "i386-pc",
            Platform::X86_64Efi => "x86_64-efi",
        }
    }

    /// The packages that install this platform's folder.
    pub fn packages(self) -> &'static str {
        match self {
            Platform::I386Pc => {
                "grub-pc-bin (Debian, Ubuntu), grub2-pc-modules (Fedora), grub (Arch)"
            }
            Platform::X86_64Efi => {
                "grub-efi-amd64-bin (Debian, Ubuntu), grub2-efi-x64-modules (Fedora), grub (Arch)"
            }
        }
    }
}

/// The packages that install `grub-mkimage`.
const MKIMAGE_PACKAGES: &str =
    "grub-common (Debian, Ubuntu), grub2-tools-minimal (Fedora), grub (Arch)";

/// What the config says about the host's GRUB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// `grub.mkimage`: a program name looked up in `PATH`, or a path.
    pub mkimage: String,
    /// The folder holding the platform folders.
    pub modules_root: PathBuf,
}

impl Host {
    /// The host GRUB as `ctx`'s `grub` section describes it (relative paths from the package).
    pub fn from_ctx(ctx: &Context) -> Result<Host, Error> {
        Ok(Host::from_config(&ctx.section::<GrubConfig>("grub")?, ctx))
    }

    /// The host GRUB as the `grub` section `grub` describes it (relative paths from `ctx`'s
    /// package).
    pub fn from_config(grub: &GrubConfig, ctx: &Context) -> Host {
        Host {
            mkimage: grub.mkimage.clone(),
            modules_root: grub
                .modules_dir
                .as_ref()
                .map_or_else(|| PathBuf::from(DEFAULT_MODULES_ROOT), |d| ctx.host_path(d)),
        }
    }

    /// The defaults, for `doctor` (which has no project).
    pub fn system() -> Host {
        Host {
            mkimage: DEFAULT_MKIMAGE.into(),
            modules_root: PathBuf::from(DEFAULT_MODULES_ROOT),
        }
    }

    /// The module folder of `platform`, checked to hold a GRUB kernel and module list.
    pub fn modules_dir(&self, platform: Platform) -> Result<PathBuf, Error> {
        let dir = self.modules_root.join(platform.dir_name());
        if dir.join("kernel.img").is_file() && dir.join("moddep.lst").is_file() {
            return Ok(dir);
        }
        Err(Error::MissingTool {
            program: dir.display().to_string(),
            hint: format!(
                "GRUB's {} modules are needed for this boot; install {}, or point `grub.modules-dir` at the folder holding `{}/`",
                platform.dir_name(),
                platform.packages(),
                platform.dir_name()
            ),
        })
    }

    /// The `grub-mkimage` program, resolved to a path.
    pub fn mkimage(&self) -> Result<PathBuf, Error> {
        if let Some(found) = find_program(&self.mkimage) {
            return Ok(found);
        }
        if self.mkimage == DEFAULT_MKIMAGE
            && let Some(found) = find_program(FALLBACK_MKIMAGE)
        {
            return Ok(found);
        }
        Err(Error::MissingTool {
            program: self.mkimage.clone(),
            hint: format!(
                "it builds GRUB's core images; install {MKIMAGE_PACKAGES}, or set `grub.mkimage` to its path"
            ),
        })
    }

    /// What `doctor` reports: the program and both platform folders. GRUB is needed only with
    /// `bootloader = "grub"`, so what is missing is a warning.
    pub fn checks(&self) -> Vec<Check> {
        let mut checks = vec![match self.mkimage() {
            Ok(path) => Check::new("grub-mkimage", CheckStatus::Ok, path.display().to_string()),
            Err(_) => Check::new(
                "grub-mkimage",
                CheckStatus::Warn,
                format!(
                    "not found; needed for `bootloader = \"grub\"`: install {MKIMAGE_PACKAGES}"
                ),
            ),
        }];
        for (platform, boots) in [(Platform::I386Pc, "BIOS"), (Platform::X86_64Efi, "UEFI")] {
            let subject = format!("GRUB {} modules", platform.dir_name());
            checks.push(match self.modules_dir(platform) {
                Ok(dir) => Check::new(subject, CheckStatus::Ok, dir.display().to_string()),
                Err(_) => Check::new(
                    subject,
                    CheckStatus::Warn,
                    format!(
                        "no {} folder in {}; needed for GRUB {boots} boots: install {}",
                        platform.dir_name(),
                        self.modules_root.display(),
                        platform.packages()
                    ),
                ),
            });
        }
        checks
    }
}

/// A program name looked up in `PATH` (or a path, taken as it is when it names a file).
fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = Path::new(program);
        return path.is_file().then(|| path.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| is_executable(candidate))
    })
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_pieces_name_their_packages() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host {
            mkimage: "no-such-grub-mkimage".into(),
            modules_root: dir.path().to_path_buf(),
        };
        let err = host.mkimage().unwrap_err();
        assert!(matches!(err, Error::MissingTool { .. }), "{err}");
        assert!(err.to_string().contains("grub-common"), "{err}");
        let err = host.modules_dir(Platform::I386Pc).unwrap_err().to_string();
        assert!(
            err.contains("grub-pc-bin") && err.contains("grub.modules-dir"),
            "{err}"
        );
        let err = host
            .modules_dir(Platform::X86_64Efi)
            .unwrap_err()
            .to_string();
        assert!(err.contains("grub-efi-amd64-bin"), "{err}");
        let checks = host.checks();
        assert_eq!(checks.len(), 3);
        assert!(checks.iter().all(|c| c.status == CheckStatus::Warn));
    }

    #[test]
    fn a_module_folder_needs_a_kernel_and_a_module_list() {
        let dir = tempfile::tempdir().unwrap();
        let platform = dir.path().join("i386-pc");
        std::fs::create_dir(&platform).unwrap();
        std::fs::write(platform.join("kernel.img"), b"").unwrap();
        let host = Host {
            mkimage: DEFAULT_MKIMAGE.into(),
            modules_root: dir.path().to_path_buf(),
        };
        assert!(host.modules_dir(Platform::I386Pc).is_err());
        std::fs::write(platform.join("moddep.lst"), b"").unwrap();
        assert_eq!(host.modules_dir(Platform::I386Pc).unwrap(), platform);
    }

    #[test]
    fn programs_are_found_by_path_or_name() {
        assert!(find_program("sh").is_some());
        assert_eq!(find_program("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert_eq!(find_program("/no/such/program"), None);
    }
}
