//! Where a run stands: the kernel, its project (manifest, workspace, target and output
//! directories), the resolved config, and the boot decisions every step shares.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Table;

use crate::config::{Config, ConfigLayers, LayerKind, Resolved, Sections, Variables};
use crate::decisions::Decisions;
use crate::error::Error;
use crate::kernel::Kernel;

mod workspace;

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
    /// The environment to read ([`process_env`] for the real thing): the variables whose name
    /// and value are UTF-8.
    pub env: BTreeMap<String, String>,
    /// Variables with a UTF-8 name whose value is not UTF-8. The paths cargo gives
    /// (`CARGO_MANIFEST_DIR`, `CARGO_TARGET_DIR`) are read from here too, byte for byte; the
    /// runner's own variables (`CARGO_IMAGE_RUNNER_*`) here are an error naming them; the rest
    /// are of no concern to the runner.
    pub env_not_utf8: BTreeMap<String, OsString>,
    /// Verbosity (`-v` count).
    pub verbose: u8,
    /// Read the project's config sources (`Cargo.toml` metadata, `image-runner.toml`).
    pub read_project_config: bool,
    /// Config given as TOML text (label for errors, text), layered above the project's files.
    pub config_text: Option<(String, String)>,
    /// Do not look for a `Cargo.toml`: the manifest directory is `manifest_dir` or the current
    /// directory as it is.
    pub no_manifest_needed: bool,
    /// Plugin libraries given on the command line (`--plugin`), loaded after those the config
    /// names (see [`crate::dynamic::load_requested`]).
    pub plugins: Vec<PathBuf>,
}

impl Invocation {
    /// An invocation for `executable` with the process environment, reading the project's
    /// config.
    pub fn new(executable: impl Into<PathBuf>) -> Self {
        Invocation::with_env(executable, std::env::vars_os())
    }

    /// An invocation for `executable` with the environment `vars` (name, value pairs as the
    /// operating system gives them; see [`split_env`]), reading the project's config.
    pub fn with_env(
        executable: impl Into<PathBuf>,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Self {
        let (env, env_not_utf8) = split_env(vars);
        Invocation {
            executable: executable.into(),
            env,
            env_not_utf8,
            read_project_config: true,
            ..Self::default()
        }
    }

    /// The path in environment variable `name`, byte for byte (also when it is not UTF-8).
    pub fn env_path(&self, name: &str) -> Option<PathBuf> {
        match self.env.get(name) {
            Some(value) => Some(PathBuf::from(value)),
            None => self.env_not_utf8.get(name).map(PathBuf::from),
        }
    }
}

/// The process environment as text: every variable whose name and value are UTF-8. Unlike
/// `std::env::vars()`, never panics; the others are left out.
pub fn process_env() -> BTreeMap<String, String> {
    split_env(std::env::vars_os()).0
}

/// Splits environment variables into those that are text and those with a UTF-8 name and a
/// value that is not; a name that is not UTF-8 is dropped (nothing the runner reads has one).
pub fn split_env(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> (BTreeMap<String, String>, BTreeMap<String, OsString>) {
    let mut text = BTreeMap::new();
    let mut not_text = BTreeMap::new();
    for (name, value) in vars {
        let Ok(name) = name.into_string() else {
            continue;
        };
        match value.into_string() {
            Ok(value) => {
                text.insert(name, value);
            }
            Err(value) => {
                not_text.insert(name, value);
            }
        }
    }
    (text, not_text)
}

/// Everything the pipeline steps share for one run: the kernel, the decisions made before
/// staging, the shared config keys, each plugin's own section, and where files go.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Context {
    /// The shared config keys, resolved.
    pub config: Config,
    /// Each plugin's config section (defaults included), by plugin name. Read yours with
    /// [`Context::section`].
    pub sections: BTreeMap<String, Table>,
    /// For each config key, the source that set it.
    pub origins: BTreeMap<String, String>,
    /// The template variables (built-in and the user's), for plugins that expand templates.
    pub variables: Variables,
    /// The kernel executable, inspected.
    pub kernel: Kernel,
    /// Boot kind, architecture, image format and kind, attachment, protocol and run mode.
    pub decisions: Decisions,
    /// Arguments after the executable (for tests, libtest's).
    pub args: Vec<String>,
    /// Arguments after `--` on the command line, for the runner.
    pub runner_args: Vec<String>,
    /// The package directory (holds `Cargo.toml`); relative config paths start here.
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
    /// Its variables whose value is not UTF-8 (left out of `env`): a plugin that reads a path
    /// from a variable refuses such a value by name rather than ignore it.
    pub env_not_utf8: BTreeMap<String, OsString>,
    /// Verbosity.
    pub verbose: u8,
    /// A UEFI shell (`shell.efi`) the firmware provider supplied, for a bootloader that starts
    /// a UEFI application with arguments through it. Set by [`crate::Pipeline::stage`] only
    /// when the bootloader asks for one ([`crate::Bootloader::wants_uefi_shell`]).
    pub uefi_shell: Option<PathBuf>,
}

impl Context {
    /// A context made in memory, for unit tests of plugins: `kernel` with `decisions`, default
    /// shared config, no plugin sections (add them with [`Context::with_section`]), and every
    /// directory under `dir`. No file is read.
    pub fn for_tests(kernel: Kernel, decisions: Decisions, dir: &Path) -> Context {
        Context {
            config: Config::default(),
            sections: BTreeMap::new(),
            origins: BTreeMap::new(),
            variables: Variables::new(),
            kernel,
            decisions,
            args: Vec::new(),
            runner_args: Vec::new(),
            manifest_dir: dir.to_path_buf(),
            workspace_root: dir.to_path_buf(),
            target_dir: dir.join("target"),
            output_dir: dir.join("target").join("image-runner").join("kernel"),
            cache_dir: dir.join("cache"),
            env: BTreeMap::new(),
            env_not_utf8: BTreeMap::new(),
            verbose: 0,
            uefi_shell: None,
        }
    }

    /// The same context with plugin `name`'s section set to `section` (serialized).
    pub fn with_section<T: serde::Serialize>(
        mut self,
        name: &str,
        section: &T,
    ) -> Result<Context, Error> {
        let table = Table::try_from(section)
            .map_err(|e| Error::Config(format!("section `{name}`: {e}")))?;
        self.sections.insert(name.to_owned(), table);
        Ok(self)
    }

    /// Plugin `name`'s section as its type `T`; `T::default()` when the config has none. An
    /// error names the section when the table does not fit `T` (the core checked it against
    /// the plugin's schema already, so this means `T` is not that schema).
    pub fn section<T: serde::de::DeserializeOwned + Default>(
        &self,
        name: &str,
    ) -> Result<T, Error> {
        match self.sections.get(name) {
            None => Ok(T::default()),
            Some(table) => {
                toml::Value::Table(table.clone())
                    .try_into()
                    .map_err(|e: toml::de::Error| {
                        Error::Config(format!("section `{name}`: {}", e.message()))
                    })
            }
        }
    }

    /// Whether the executable is a test binary.
    pub fn is_test(&self) -> bool {
        self.decisions.mode.is_test
    }

    /// The time limit of this run, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.decisions.mode.timeout
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
            None if inv.no_manifest_needed => std::env::current_dir()
                .map_err(|e| Error::io("read the current directory", ".", e))?,
            None => match inv.env_path("CARGO_MANIFEST_DIR") {
                Some(dir) => dir,
                None => find_manifest_dir(
                    &std::env::current_dir()
                        .map_err(|e| Error::io("read the current directory", ".", e))?,
                )?,
            },
        };
        let workspace_root = find_workspace_root(&manifest_dir);
        let target_dir = inv
            .env_path("CARGO_TARGET_DIR")
            .map(|d| absolute(&d))
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
    sections: &Sections,
) -> Result<Resolved, Error> {
    if let Some((name, value)) = inv
        .env_not_utf8
        .iter()
        .find(|(name, _)| name.starts_with("CARGO_IMAGE_RUNNER_"))
    {
        return Err(Error::Config(format!(
            "environment variable {name} is not valid UTF-8 (`{}`); set it to UTF-8 text or unset it",
            value.to_string_lossy()
        )));
    }
    let mut layers = ConfigLayers::new(sections);
    if inv.read_project_config {
        let package_manifest = manifest_dir.join("Cargo.toml");
        let root_manifest = workspace_root.join("Cargo.toml");
        if root_manifest.is_file() {
            layers.add_manifest(&root_manifest, LayerKind::WorkspaceMetadata)?;
        }
        if package_manifest.is_file() {
            layers.add_manifest(&package_manifest, LayerKind::PackageMetadata)?;
        }
        layers.add_file(&manifest_dir.join("image-runner.toml"))?;
    }
    if let Some((label, text)) = &inv.config_text {
        layers.add_file_str(Path::new(label), text)?;
    }
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

pub(crate) fn absolute(path: &Path) -> Result<PathBuf, Error> {
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

/// The workspace root by cargo's rules (see [`workspace`]): the package itself when no
/// workspace claims it.
fn find_workspace_root(manifest_dir: &Path) -> PathBuf {
    workspace::root_of(manifest_dir)
}

/// Cargo marks its target directory with a `CACHEDIR.TAG` file, and each `<triple>/` folder
/// in it too: the target directory is the nearest marked folder above the executable, or the
/// marked folder right above that one (`target/` for `target/<triple>/debug/kernel`).
fn find_target_dir(executable: &Path) -> Option<PathBuf> {
    let marked = |dir: &Path| dir.join("CACHEDIR.TAG").is_file();
    let nearest = executable.ancestors().skip(1).find(|dir| marked(dir))?;
    match nearest.parent() {
        Some(parent) if marked(parent) => Some(parent.to_path_buf()),
        _ => Some(nearest.to_path_buf()),
    }
}

/// The folder an executable's image and run files go to: `<target>/image-runner/` followed by
/// the executable's path inside the target directory (`debug/kernel`,
/// `x86_64-unknown-none/release/kernel`, `debug/deps/tests-0123456789abcdef`), so two
/// executables never share a folder (profiles, triples, test binaries of one name). An
/// executable outside the target directory gets `<file name>-<hash of its absolute path>`.
/// Every component is written by [`output_dir_name`]: never `.`, `..` or empty, never a
/// separator, so the folder always lies inside `<target>/image-runner/`.
pub fn output_dir_for(target_dir: &Path, executable: &Path) -> PathBuf {
    let root = target_dir.join("image-runner");
    if let Ok(relative) = executable.strip_prefix(target_dir)
        && relative.components().count() > 0
        && relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return relative
            .components()
            .fold(root, |dir, c| dir.join(output_dir_name(c.as_os_str())));
    }
    let name = executable
        .file_name()
        .map(output_dir_name)
        .unwrap_or_else(|| "kernel".into());
    let hash = xxhash_rust::xxh3::xxh3_64(executable.as_os_str().as_encoded_bytes());
    root.join(format!("{name}-{hash:016x}"))
}

/// One component of an output folder's path (see [`output_dir_for`]): the name as it is, with
/// every byte that is not part of valid UTF-8 written as `%XX` and `%` itself as `%25`, so two
/// names never share a folder and the folder's path stays text wherever the target
/// directory's is. A name that would step elsewhere is escaped too: `.` and `..` become `%2E`
/// and `%2E%2E`, the empty name `%00` (no real name escapes to these: `%` is always `%25`).
pub fn output_dir_name(stem: &OsStr) -> String {
    if stem.is_empty() {
        return "%00".into();
    }
    if stem.as_encoded_bytes().iter().all(|&b| b == b'.') {
        return "%2E".repeat(stem.len());
    }
    let mut name = String::new();
    for chunk in stem.as_encoded_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '%' => name.push_str("%25"),
                c => name.push(c),
            }
        }
        for byte in chunk.invalid() {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    name
}

/// Test binaries live in `deps/` and end in `-<16 hex digits>`.
pub(crate) fn looks_like_test_binary(executable: &Path) -> bool {
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
/// `~/.cache/cargo-image-runner`. Without a home (`HOME` unset or empty), a private folder in
/// the temporary directory, `cargo-image-runner-<uid>`, made with mode 0700 (one that belongs
/// to another user is refused: it could hold anything).
pub fn cache_dir(env: &BTreeMap<String, String>) -> Result<PathBuf, Error> {
    let set = |key: &str| env.get(key).filter(|v| !v.is_empty());
    if let Some(dir) = set("CARGO_IMAGE_RUNNER_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = set("XDG_CACHE_HOME") {
        return Ok(Path::new(dir).join("cargo-image-runner"));
    }
    if let Some(home) = set("HOME") {
        return Ok(Path::new(home).join(".cache").join("cargo-image-runner"));
    }
    let temp = set("TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    private_temp_cache(&temp)
}

#[cfg(unix)]
fn private_temp_cache(temp: &Path) -> Result<PathBuf, Error> {
    // SAFETY: getuid cannot fail and has no preconditions.
    let uid = unsafe { libc::getuid() };
    let dir = temp.join(format!("cargo-image-runner-{uid}"));
    private_dir(&dir, uid)?;
    Ok(dir)
}

#[cfg(not(unix))]
fn private_temp_cache(temp: &Path) -> Result<PathBuf, Error> {
    // The temporary directory is the user's own on these systems.
    Ok(temp.join("cargo-image-runner-cache"))
}

/// Makes `dir` a folder only `uid` can use: created with mode 0700, or, when it exists, a real
/// folder (not a link) owned by `uid`, its mode narrowed to 0700.
#[cfg(unix)]
fn private_dir(dir: &Path, uid: u32) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let advice = "set CARGO_IMAGE_RUNNER_CACHE (or HOME) to a folder of your own";
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("create the cache folder", dir, e)),
    }
    let meta =
        std::fs::symlink_metadata(dir).map_err(|e| Error::io("read the metadata of", dir, e))?;
    if !meta.is_dir() {
        return Err(Error::Config(format!(
            "the cache folder `{}` (used because HOME is not set) is not a folder but a link or file; {advice}",
            dir.display()
        )));
    }
    if meta.uid() != uid {
        return Err(Error::Config(format!(
            "the cache folder `{}` (used because HOME is not set) belongs to another user (uid {}), so its content cannot be trusted; {advice}",
            dir.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("make private", dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::{ImagePlan, RunMode};
    use crate::kernel::{Arch, KernelFormat};
    use crate::media::{BootKind, ImageKind};

    #[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(default)]
    struct Demo {
        level: u32,
    }

    #[test]
    fn a_context_is_made_in_memory_with_a_plugin_section() {
        let kernel = Kernel::described("/k/kernel", KernelFormat::Elf { bits: 64 }, Arch::X86_64);
        let decisions = Decisions::new(
            BootKind::Uefi,
            Arch::X86_64,
            Some(ImagePlan::new("fat", ImageKind::Fat)),
            RunMode::choose(&Config::default(), true),
        );
        let ctx = Context::for_tests(kernel, decisions, Path::new("/work"))
            .with_section("demo", &Demo { level: 3 })
            .unwrap();
        assert_eq!(ctx.section::<Demo>("demo").unwrap(), Demo { level: 3 });
        assert_eq!(ctx.section::<Demo>("absent").unwrap(), Demo::default());
        assert_eq!(ctx.decisions.attach, crate::config::Attach::Disk);
        assert!(ctx.is_test());
        assert_eq!(ctx.timeout(), Some(Duration::from_secs(300)));
        assert_eq!(ctx.host_path("a.txt"), Path::new("/work/a.txt"));
    }

    #[cfg(unix)]
    #[test]
    fn variables_that_are_not_utf8_are_set_apart_and_paths_read_byte_for_byte() {
        use std::os::unix::ffi::OsStringExt;
        let odd = |b: &[u8]| OsString::from_vec(b.to_vec());
        let inv = Invocation::with_env(
            "/k",
            [
                ("HOME".into(), "/home/u".into()),
                ("CARGO_TARGET_DIR".into(), odd(b"/t/\xff")),
                (odd(b"N\xff"), "v".into()),
                ("PWD".into(), odd(b"/p/\xfe")),
            ],
        );
        assert_eq!(inv.env.len(), 1);
        assert_eq!(inv.env["HOME"], "/home/u");
        assert_eq!(
            inv.env_not_utf8.keys().collect::<Vec<_>>(),
            ["CARGO_TARGET_DIR", "PWD"]
        );
        assert_eq!(
            inv.env_path("CARGO_TARGET_DIR"),
            Some(PathBuf::from(odd(b"/t/\xff")))
        );
        assert_eq!(inv.env_path("HOME"), Some(PathBuf::from("/home/u")));
        assert_eq!(inv.env_path("CARGO_MANIFEST_DIR"), None);
    }

    #[test]
    fn every_executable_gets_its_own_output_folder_inside_the_target_directory() {
        let target = Path::new("/p/target");
        let out = |exe: &str| output_dir_for(target, Path::new(exe));
        let root = target.join("image-runner");
        // Profiles, triples and test binaries of one name stay apart (issue: two `kernel`s of
        // debug and release booted each other's image).
        let folders = [
            out("/p/target/debug/kernel"),
            out("/p/target/release/kernel"),
            out("/p/target/x86_64-unknown-none/debug/kernel"),
            out("/p/target/debug/kernel.elf"),
            out("/p/target/debug/deps/kernel-0123456789abcdef"),
            out("/elsewhere/kernel"),
            out("/other/kernel"),
        ];
        assert_eq!(folders[0], root.join("debug/kernel"));
        assert_eq!(folders[2], root.join("x86_64-unknown-none/debug/kernel"));
        for (i, a) in folders.iter().enumerate() {
            assert!(a.starts_with(&root), "{}", a.display());
            for b in &folders[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Outside the target directory: the name and a hash of the whole path.
        let name = folders[5]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with("kernel-") && name.len() == "kernel-".len() + 16,
            "{name}"
        );
        // Names that would step out of the folder (a `...elf` has the stem `..`; a path with
        // `..` in it) never do.
        for exe in [
            "/p/target/debug/..",
            "/p/target/debug/../../x",
            "/p/target/..",
            "/p/target/debug/.",
            "/p/..",
        ] {
            let dir = out(exe);
            assert!(dir.starts_with(&root), "{exe} → {}", dir.display());
            assert!(
                dir.components().all(|c| matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::RootDir
                )),
                "{exe} → {}",
                dir.display()
            );
            assert_ne!(dir, root);
        }
        assert_eq!(out("/p/target/debug/...elf"), root.join("debug/...elf"));
        assert_eq!(output_dir_name(OsStr::new("..")), "%2E%2E");
        assert_eq!(output_dir_name(OsStr::new(".")), "%2E");
        assert_eq!(output_dir_name(OsStr::new("")), "%00");
    }

    #[test]
    fn the_target_directory_is_the_one_above_a_triple_folder() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let exe = target.join("x86_64-unknown-linux-gnu/debug/kernel");
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        std::fs::write(target.join("CACHEDIR.TAG"), "").unwrap();
        std::fs::write(target.join("x86_64-unknown-linux-gnu/CACHEDIR.TAG"), "").unwrap();
        assert_eq!(find_target_dir(&exe), Some(target.clone()));
        // A target directory inside another one's folder of its own (`<target>/tmp/inner`) is
        // its own.
        let inner = target.join("tmp/inner");
        let exe = inner.join("debug/kernel");
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        std::fs::write(inner.join("CACHEDIR.TAG"), "").unwrap();
        assert_eq!(find_target_dir(&exe), Some(inner));
    }

    #[test]
    fn output_folder_names_are_lossless() {
        assert_eq!(output_dir_name(OsStr::new("kernel")), "kernel");
        assert_eq!(output_dir_name(OsStr::new("k%FF é")), "k%25FF é");
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let ff = output_dir_name(OsStr::from_bytes(b"k\xff"));
            let fe = output_dir_name(OsStr::from_bytes(b"k\xfe"));
            assert_eq!(ff, "k%FF");
            assert_eq!(fe, "k%FE");
            assert_ne!(ff, output_dir_name(OsStr::new("k%FF")));
            assert_eq!(
                output_dir_name(OsStr::from_bytes(b"\xc3\xa9\xc3(%")),
                "é%C3(%25"
            );
        }
    }

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

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_cache_follows_the_variables_in_order() {
        assert_eq!(
            cache_dir(&env(&[("CARGO_IMAGE_RUNNER_CACHE", "/c"), ("HOME", "/h")])).unwrap(),
            Path::new("/c")
        );
        assert_eq!(
            cache_dir(&env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])).unwrap(),
            Path::new("/x/cargo-image-runner")
        );
        assert_eq!(
            cache_dir(&env(&[("HOME", "/h"), ("CARGO_IMAGE_RUNNER_CACHE", "")])).unwrap(),
            Path::new("/h/.cache/cargo-image-runner")
        );
    }

    #[cfg(unix)]
    #[test]
    fn without_a_home_the_cache_is_private_to_the_user() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let tmp = tempfile::tempdir().unwrap();
        let tmpdir = tmp.path().to_str().unwrap();
        let uid = unsafe { libc::getuid() };
        for vars in [
            vec![("TMPDIR", tmpdir)],
            vec![("TMPDIR", tmpdir), ("HOME", "")],
        ] {
            let dir = cache_dir(&env(&vars)).unwrap();
            assert_eq!(dir, tmp.path().join(format!("cargo-image-runner-{uid}")));
            let meta = std::fs::symlink_metadata(&dir).unwrap();
            assert!(meta.is_dir());
            assert_eq!(meta.mode() & 0o777, 0o700);
            assert_eq!(meta.uid(), uid);
        }
        // Too open (made by an older version, say): narrowed.
        let dir = tmp.path().join(format!("cargo-image-runner-{uid}"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        cache_dir(&env(&[("TMPDIR", tmpdir)])).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn a_cache_folder_of_another_user_or_a_link_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let uid = unsafe { libc::getuid() };
        let dir = tmp.path().join("cache");
        std::fs::create_dir(&dir).unwrap();
        // Ours, but checked as if we were someone else.
        let err = private_dir(&dir, uid.wrapping_add(1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&dir.display().to_string()) && err.contains("another user"),
            "{err}"
        );
        assert!(err.contains("CARGO_IMAGE_RUNNER_CACHE"), "{err}");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let err = private_dir(&link, uid).unwrap_err().to_string();
        assert!(err.contains("not a folder"), "{err}");
        private_dir(&dir, uid).unwrap();
    }
}
