//! A usable set of Limine binaries on disk (a verified cache entry or a local directory), and
//! the names of the files in it.

use std::fmt;
use std::path::{Path, PathBuf};

use image_runner_core::Arch;

use crate::error::LimineError;
use crate::version::LimineVersion;

/// Files every Limine binary release since 5.x has and every boot kind needs one of; a checkout
/// or directory without them is not used. Per-architecture EFI loaders are checked when a boot
/// asks for them ([`LimineFiles::efi_loader`]).
pub const REQUIRED_FILES: &[&str] = &[
    "limine-bios.sys",
    "limine-bios-cd.bin",
    "limine-uefi-cd.bin",
    "BOOTX64.EFI",
];

/// The removable-media EFI loader name for `arch` (`BOOTX64.EFI`, `BOOTAA64.EFI`, ...).
pub fn efi_loader_name(arch: Arch) -> Option<&'static str> {
    match arch {
        Arch::X86_64 => Some("BOOTX64.EFI"),
        Arch::Aarch64 => Some("BOOTAA64.EFI"),
        Arch::Riscv64 => Some("BOOTRISCV64.EFI"),
        Arch::LoongArch64 => Some("BOOTLOONGARCH64.EFI"),
        _ => None,
    }
}

/// Where a [`LimineFiles`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilesSource {
    /// This call fetched the commit and published it into the cache.
    Fetched,
    /// A verified cache entry was used (the ref may have been re-resolved on the network).
    Cache,
    /// `limine.path`: a local directory used as it is.
    Directory,
}

/// A directory of Limine binaries ready to stage.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimineFiles {
    /// The directory holding `limine-bios.sys`, `BOOTX64.EFI`, ...
    pub dir: PathBuf,
    /// The commit id of the checkout; `None` for a local directory.
    pub commit: Option<String>,
    /// The Limine version, when the files or the ref name tell it (see
    /// [`LimineVersion::from_dir`] and [`LimineVersion::from_ref_name`]; the files win).
    pub version: Option<LimineVersion>,
    /// How this call got the files.
    pub source: FilesSource,
    /// Things the user should hear about that did not stop the run (say, a branch that could
    /// not be re-resolved because the network was down, so an older resolution was used).
    pub warnings: Vec<String>,
}

impl LimineFiles {
    pub(crate) fn new(dir: PathBuf, source: FilesSource) -> Self {
        LimineFiles {
            dir,
            commit: None,
            version: None,
            source,
            warnings: Vec::new(),
        }
    }

    /// The Limine major version, which decides the config syntax.
    pub fn major(&self) -> Option<u32> {
        self.version.map(|v| v.major)
    }

    /// The path of file `name` (e.g. `limine-bios-cd.bin`) of this set; an error naming the
    /// directory and its origin when the file is not there.
    pub fn file(&self, name: &str) -> Result<PathBuf, LimineError> {
        let path = self.dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(LimineError::MissingFiles {
                origin: self.to_string(),
                missing: vec![name.to_owned()],
                hint: "this Limine release does not ship it; choose another `limine.version`, or a boot kind and architecture it supports".into(),
            })
        }
    }

    /// The EFI loader for `arch` (`BOOTAA64.EFI` for aarch64, ...).
    pub fn efi_loader(&self, arch: Arch) -> Result<PathBuf, LimineError> {
        let name = efi_loader_name(arch).ok_or_else(|| {
            LimineError::Settings(format!(
                "Limine has no EFI loader for the architecture {}",
                arch.name()
            ))
        })?;
        self.file(name)
    }
}

impl fmt::Display for LimineFiles {
    /// `Limine 8.2.0 (commit 1dbdf77f8221) in `/cache/limine/1dbd...``, for messages and `-v`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Limine")?;
        if let Some(version) = self.version {
            write!(f, " {version}")?;
        }
        if let Some(commit) = &self.commit {
            write!(f, " (commit {})", &commit[..commit.len().min(12)])?;
        }
        write!(f, " in `{}`", self.dir.display())
    }
}

/// Uses `dir` (`limine.path`) as it is: it must hold the [`REQUIRED_FILES`].
pub(crate) fn local_dir(dir: &Path) -> Result<LimineFiles, LimineError> {
    if !dir.is_dir() {
        return Err(LimineError::Settings(format!(
            "`limine.path` is `{}`, which is not a directory; point it at a directory holding the Limine binaries (limine-bios.sys, BOOTX64.EFI, ...), or remove it to fetch Limine with git",
            dir.display()
        )));
    }
    let missing = missing_files(dir, REQUIRED_FILES);
    if !missing.is_empty() {
        return Err(LimineError::MissingFiles {
            origin: format!("`{}` (limine.path)", dir.display()),
            missing,
            hint: "point `limine.path` at a directory holding the Limine binaries: a checkout of a `vN.x-binary` branch, or your distribution's share/limine".into(),
        });
    }
    let mut files = LimineFiles::new(dir.to_path_buf(), FilesSource::Directory);
    files.version = LimineVersion::from_dir(dir);
    Ok(files)
}

/// The names in `names` that are not regular files in `dir`.
pub(crate) fn missing_files(dir: &Path, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|name| !dir.join(name).is_file())
        .map(|name| (*name).to_owned())
        .collect()
}
