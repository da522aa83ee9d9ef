//! Where a run stands: the kernel, its project (manifest, workspace, target and output
//! directories), the resolved config, and the boot decisions every step shares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::command::shell_quote;
use crate::config::{BootChoice, Config, ConfigLayers, LayerKind, Resolved, Variables};
use crate::error::Error;
use crate::kernel::{Arch, Kernel};
use crate::plugin::BootKind;

/// What the user asked for: the executable cargo built and how the runner was called.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Invocation {
    /// The kernel executable.
    pub executable: PathBuf,
    /// Arguments after the executable (cargo passes libtest's arguments here for tests).
    pub args: Vec<String>,
    /// Arguments after a `--` that follows the executable: extra arguments for the runner
    /// (QEMU), last in order.
    pub runner_args: Vec<String>,
    /// `--profile`; `CARGO_IMAGE_RUNNER_PROFILE` is used when absent.
    pub profile: Option<String>,
    /// `--set KEY=VALUE` overrides.
    pub overrides: Vec<String>,
    /// Force test mode on or off; detected from the executable's path when absent.
    pub test: Option<bool>,
    /// The package directory; `CARGO_MANIFEST_DIR`, then the current directory upward, when absent.
    pub manifest_dir: Option<PathBuf>,
    /// The environment to read (`std::env::vars()` for the real thing).
    pub env: BTreeMap<String, String>,
    /// Verbosity (`-v` count).
    pub verbose: u8,
}

impl Invocation {
    /// An invocation for `executable` with the process environment.
    pub fn new(executable: impl Into<PathBuf>) -> Self {
        Invocation {
            executable: executable.into(),
            env: std::env::vars().collect(),
            ..Self::default()
        }
    }
}

/// Everything the pipeline steps share for one run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Context {
    /// The resolved configuration.
    pub config: Config,
    /// For each config key, the source that set it.
    pub origins: BTreeMap<String, String>,
    /// The template variables (built-in and the user's), for plugins that expand templates.
    pub variables: Variables,
    /// The kernel executable, inspected.
    pub kernel: Kernel,
    /// Guest architecture.
    pub arch: Arch,
    /// How the machine boots.
    pub boot: BootKind,
    /// Whether the executable is a test binary.
    pub is_test: bool,
    /// Arguments after the executable (for tests, libtest's).
    pub args: Vec<String>,
    /// Arguments after `--` on the command line, for the runner.
    pub runner_args: Vec<String>,
    /// The package directory (holds `Cargo.toml`).
    pub manifest_dir: PathBuf,
    /// The workspace root.
    pub workspace_root: PathBuf,
    /// Cargo's target directory.
    pub target_dir: PathBuf,
    /// This executable's own output directory: `<target>/image-runner/<executable stem>/`.
    pub output_dir: PathBuf,
    /// The user cache for fetched artifacts.
    pub cache_dir: PathBuf,
    /// The environment the run was started with.
    pub env: BTreeMap<String, String>,
    /// Verbosity.
    pub verbose: u8,
}

impl Context {
    /// Finds the project around the executable, loads every config source and decides arch,
    /// boot kind and test mode.
    pub fn new(inv: Invocation) -> Result<Context, Error> {
        let executable = absolute(&inv.executable)?;
        let kernel = Kernel::inspect(&executable)?;
        let project = Project::discover(&inv, Some(&executable))?;
        let Project {
            manifest_dir,
            workspace_root,
            target_dir,
        } = project;
        let stem = executable
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "kernel".into());
        let output_dir = target_dir.join("image-runner").join(&stem);
        let cache_dir = cache_dir(&inv.env);
        let is_test = inv
            .test
            .unwrap_or_else(|| looks_like_test_binary(&executable));

        let mut builtins = Variables::new();
        builtins.set("EXECUTABLE", executable.to_string_lossy());
        builtins.set(
            "EXECUTABLE_NAME",
            executable
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        builtins.set("WORKSPACE_ROOT", workspace_root.to_string_lossy());
        builtins.set("MANIFEST_DIR", manifest_dir.to_string_lossy());
        builtins.set("OUTPUT_DIR", output_dir.to_string_lossy());
        builtins.set("IS_TEST", if is_test { "true" } else { "false" });
        builtins.set(
            "ARGS",
            inv.args
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
        );

        let resolved = load_config(&inv, &manifest_dir, &workspace_root, &builtins)?;
        let config = resolved.config;
        let arch = match config.arch.as_str() {
            "auto" => kernel.arch,
            name => Arch::from_name(name).ok_or_else(|| {
                Error::Config(format!(
                    "`arch = \"{name}\"` (set by {}) is not a known architecture; use auto, x86_64, aarch64, riscv64 or loongarch64",
                    resolved.origins.get("arch").map_or("?", String::as_str)
                ))
            })?,
        };
        let boot = match config.boot {
            BootChoice::Auto if kernel.is_efi_app() => BootKind::Uefi,
            // A bare FAT volume has no boot code for BIOS; UEFI reads it directly.
            BootChoice::Auto if kernel.prebuilt_image() == Some(crate::plugin::ImageKind::Fat) => {
                BootKind::Uefi
            }
            BootChoice::Auto | BootChoice::Bios => BootKind::Bios,
            BootChoice::Uefi => BootKind::Uefi,
            BootChoice::Hybrid => BootKind::Hybrid,
        };
        Ok(Context {
            config,
            origins: resolved.origins,
            variables: resolved.variables,
            kernel,
            arch,
            boot,
            is_test,
            args: inv.args,
            runner_args: inv.runner_args,
            manifest_dir,
            workspace_root,
            target_dir,
            output_dir,
            cache_dir,
            env: inv.env,
            verbose: inv.verbose,
        })
    }

    /// The time limit of this run, if any.
    pub fn timeout(&self) -> Option<Duration> {
        let secs = if self.is_test {
            self.config.test.timeout
        } else {
            self.config.run.timeout
        };
        (secs > 0).then(|| Duration::from_secs(secs))
    }

    /// A host path from config, relative paths taken from the package directory.
    pub fn host_path(&self, path: impl AsRef<Path>) -> PathBuf {
        self.manifest_dir.join(path)
    }

    /// The host file that config key `key` names with `value`; an error that says which key,
    /// which path and where relative paths start when it is not a file.
    pub fn host_file(&self, key: &str, value: &str) -> Result<PathBuf, Error> {
        let host = self.host_path(value);
        if host.is_file() {
            Ok(host)
        } else {
            Err(Error::Config(format!(
                "`{key} = \"{value}\"`: `{}` is not a file; fix the path (relative paths start at `{}`)",
                host.display(),
                self.manifest_dir.display()
            )))
        }
    }
}

/// Where the package, its workspace and cargo's target directory are.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Project {
    /// The package directory (holds `Cargo.toml`).
    pub manifest_dir: PathBuf,
    /// The workspace root.
    pub workspace_root: PathBuf,
    /// Cargo's target directory.
    pub target_dir: PathBuf,
}

impl Project {
    /// Finds the project: `--manifest-dir`, else `CARGO_MANIFEST_DIR` (cargo sets it for
    /// runners), else the nearest `Cargo.toml` from the current directory up. The target
    /// directory is `CARGO_TARGET_DIR`, else the one holding the executable, else
    /// `<workspace>/target`. No cargo subprocess is started.
    pub fn discover(inv: &Invocation, executable: Option<&Path>) -> Result<Project, Error> {
        let manifest_dir = match &inv.manifest_dir {
            Some(dir) => absolute(dir)?,
            None => match inv.env.get("CARGO_MANIFEST_DIR") {
                Some(dir) => PathBuf::from(dir),
                None => find_manifest_dir(
                    &std::env::current_dir()
                        .map_err(|e| Error::io("read the current directory", ".", e))?,
                )?,
            },
        };
        let workspace_root = find_workspace_root(&manifest_dir);
        let target_dir = inv
            .env
            .get("CARGO_TARGET_DIR")
            .map(|d| absolute(Path::new(d)))
            .transpose()?
            .or_else(|| executable.and_then(find_target_dir))
            .unwrap_or_else(|| workspace_root.join("target"));
        Ok(Project {
            manifest_dir,
            workspace_root,
            target_dir,
        })
    }
}

/// Reads every config source for this project, in precedence order.
pub fn load_config(
    inv: &Invocation,
    manifest_dir: &Path,
    workspace_root: &Path,
    builtins: &Variables,
) -> Result<Resolved, Error> {
    let mut layers = ConfigLayers::new();
    let package_manifest = manifest_dir.join("Cargo.toml");
    let root_manifest = workspace_root.join("Cargo.toml");
    if root_manifest.is_file() {
        layers.add_manifest(&root_manifest, LayerKind::WorkspaceMetadata)?;
    }
    if package_manifest.is_file() {
        layers.add_manifest(&package_manifest, LayerKind::PackageMetadata)?;
    }
    layers.add_file(&manifest_dir.join("image-runner.toml"))?;
    if inv
        .env
        .get("CARGO_NET_OFFLINE")
        .is_some_and(|v| v == "true")
    {
        layers.add_setting(
            LayerKind::Environment,
            "environment variable CARGO_NET_OFFLINE",
            "offline",
            "true",
        )?;
    }
    layers.add_env(&inv.env)?;
    layers.add_overrides(&inv.overrides)?;
    let profile = inv
        .profile
        .clone()
        .or_else(|| inv.env.get("CARGO_IMAGE_RUNNER_PROFILE").cloned())
        .filter(|p| !p.is_empty());
    layers.resolve(profile.as_deref(), builtins)
}

fn absolute(path: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(path).map_err(|e| Error::io("resolve the path", path, e))
}

/// The nearest directory at or above `start` holding a `Cargo.toml`.
fn find_manifest_dir(start: &Path) -> Result<PathBuf, Error> {
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            Error::Config(format!(
                "no Cargo.toml in `{}` or above it; run from your kernel's package or pass --manifest-dir",
                start.display()
            ))
        })
}

/// The nearest manifest at or above the package with a `[workspace]` table, else the package.
fn find_workspace_root(manifest_dir: &Path) -> PathBuf {
    for dir in manifest_dir.ancestors() {
        let manifest = dir.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if let Ok(table) = text.parse::<toml::Table>()
            && table.contains_key("workspace")
        {
            return dir.to_path_buf();
        }
    }
    manifest_dir.to_path_buf()
}

/// Cargo marks its target directory with a `CACHEDIR.TAG` file.
fn find_target_dir(executable: &Path) -> Option<PathBuf> {
    executable
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
}

/// Test binaries live in `deps/` and end in `-<16 hex digits>`.
fn looks_like_test_binary(executable: &Path) -> bool {
    let in_deps = executable
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "deps");
    let hashed = executable
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit_once('-'))
        .is_some_and(|(_, hash)| hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()));
    in_deps && hashed
}

/// The user cache: `CARGO_IMAGE_RUNNER_CACHE`, else `$XDG_CACHE_HOME/cargo-image-runner`, else
/// `~/.cache/cargo-image-runner`.
pub fn cache_dir(env: &BTreeMap<String, String>) -> PathBuf {
    if let Some(dir) = env
        .get("CARGO_IMAGE_RUNNER_CACHE")
        .filter(|d| !d.is_empty())
    {
        return PathBuf::from(dir);
    }
    if let Some(dir) = env.get("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Path::new(dir).join("cargo-image-runner");
    }
    match env.get("HOME") {
        Some(home) => Path::new(home).join(".cache").join("cargo-image-runner"),
        None => std::env::temp_dir().join("cargo-image-runner-cache"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_binaries_are_recognised_by_path() {
        assert!(looks_like_test_binary(Path::new(
            "/t/debug/deps/kernel-0123456789abcdef"
        )));
        assert!(!looks_like_test_binary(Path::new("/t/debug/kernel")));
        assert!(!looks_like_test_binary(Path::new(
            "/t/debug/deps/kernel-xyz"
        )));
    }
}
