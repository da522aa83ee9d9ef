//! UEFI firmware for cargo-image-runner: finds OVMF/AAVMF on the host, or downloads a pinned,
//! verified edk2 release into the user cache when none is installed, and gives each run its
//! own copy of the variable store, warmed by the last passing run of the same setup.

mod archive;
pub mod cache;
mod config;
mod descriptor;
mod discover;
pub mod download;
pub mod release;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image_runner_core::{
    Arch, Check, CheckStatus, Context, Error, Firmware, FirmwareFiles, Outcome, Registry, Section,
    Verdict,
};

pub use config::{OvmfConfig, Source};
pub use discover::{Candidate, FIRMWARE_VARS, FirmwarePair, Search, find, find_explicit};
pub use release::Release;

/// The architectures the downloaded releases cover.
pub const ARCHES: [Arch; 4] = [
    Arch::X86_64,
    Arch::Aarch64,
    Arch::Riscv64,
    Arch::LoongArch64,
];

/// Where a run's firmware comes from, for messages and `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The firmware files.
    pub pair: FirmwarePair,
    /// "installed", or the downloaded release and its folder.
    pub origin: String,
}

/// What the firmware search and the download need, outside a run too (`ovmf fetch`, `doctor`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `[ovmf]` section.
    pub config: OvmfConfig,
    /// The user cache (`<cache>/ovmf` holds the releases).
    pub cache_dir: PathBuf,
    /// Never download.
    pub offline: bool,
    /// The environment (firmware variables, `CARGO_NET_OFFLINE`).
    pub env: BTreeMap<String, String>,
}

impl Settings {
    /// The settings of a run.
    pub fn from_context(ctx: &Context) -> Result<Settings, Error> {
        Ok(Settings {
            config: ctx.section("ovmf")?,
            cache_dir: ctx.cache_dir.clone(),
            offline: ctx.config.offline,
            env: ctx.env.clone(),
        })
    }

    fn net(&self) -> cache::Net {
        let from_env = self
            .env
            .get("CARGO_NET_OFFLINE")
            .is_some_and(|v| v == "true" || v == "1");
        cache::Net {
            offline: self.offline || from_env,
            download: download::DownloadOptions {
                // The config checks both limits; a config made in code is clamped here.
                stall_timeout: seconds(self.config.timeout.clamp(1, config::MAX_SECONDS)),
                low_speed_limit: self.config.low_speed_limit,
                deadline: (self.config.download_timeout > 0)
                    .then(|| seconds(self.config.download_timeout.min(config::MAX_SECONDS))),
                ..Default::default()
            },
        }
    }

    /// The release to download.
    pub fn release(&self) -> Result<Release, Error> {
        Release::from_config(&self.config)
    }

    /// The release from the cache, downloaded first when missing or damaged. `arch`: the
    /// architecture whose files must be sound (all when `None`).
    pub fn fetch(&self, arch: Option<Arch>, how: cache::Check) -> Result<cache::Entry, Error> {
        cache::acquire(
            &cache::Cache::new(&self.cache_dir),
            &self.release()?,
            arch,
            how,
            &self.net(),
        )
    }
}

/// Finds the firmware for `arch` as `ovmf.source` says: installed firmware (config paths,
/// `OVMF_*` variables, QEMU's descriptors, the usual places), the downloaded release, or the
/// one then the other. `search` is the search of installed firmware. With `auto`, firmware the
/// config or the environment names explicitly is used or is an error: only when nothing is
/// named may the download stand in.
pub fn locate(settings: &Settings, search: &Search) -> Result<Located, Error> {
    let installed = || {
        find(search).map(|pair| Located {
            pair,
            origin: "installed".into(),
        })
    };
    let downloaded = || -> Result<Located, Error> {
        let entry = settings.fetch(Some(search.arch), cache::Check::Quick)?;
        let files = entry.arch(search.arch)?;
        Ok(Located {
            pair: FirmwarePair::Pflash {
                code: files.code,
                vars: files.vars,
            },
            origin: format!(
                "downloaded release {} in {}",
                entry.tag,
                entry.dir.display()
            ),
        })
    };
    match settings.config.source {
        Source::System => installed(),
        Source::Download => downloaded(),
        _ if find_explicit(search).is_some() => installed(),
        _ => match installed() {
            Ok(found) => Ok(found),
            Err(not_installed) => downloaded().map_err(|e| {
                Error::plugin(
                    "ovmf",
                    format!(
                        "{}\nand the download failed: {}",
                        strip_prefix(&not_installed),
                        strip_prefix(&e)
                    ),
                )
            }),
        },
    }
}

fn seconds(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

fn strip_prefix(e: &Error) -> String {
    let text = e.to_string();
    text.strip_prefix("ovmf: ").unwrap_or(&text).to_owned()
}

/// The `ovmf` firmware provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ovmf;

/// Adds this crate's plugins to `registry`.
pub fn register(registry: &mut Registry) {
    registry.add_firmware(Ovmf);
}

impl Firmware for Ovmf {
    fn name(&self) -> &str {
        "ovmf"
    }

    fn config_section(&self) -> Option<Section> {
        Some(Section::of::<OvmfConfig>())
    }

    fn resolve(&self, ctx: &Context) -> Result<FirmwareFiles, Error> {
        let search = Search::from_context(ctx)?;
        let found = locate(&Settings::from_context(ctx)?, &search)?;
        if ctx.verbose > 0 {
            eprintln!("    Firmware {} ({})", describe(&found.pair), found.origin);
        }
        match found.pair {
            FirmwarePair::Unified(path) => Ok(FirmwareFiles::Unified(path)),
            FirmwarePair::Pflash { code, vars } => {
                // A VARS file shared between runs collects boot entries that can break later,
                // different images: every run starts from its own copy, of the warmed store
                // when the last passing run had exactly this setup, else of the template.
                let copy = ctx.output_dir.join("uefi-vars.fd");
                let setup = setup_key(ctx, &code, &vars);
                let warm = warm_store(ctx);
                let template = match &setup {
                    Some(key) if warm.matches(key) => warm.file.clone(),
                    _ => vars,
                };
                image_runner_core::fs::copy_atomic(&template, &copy)?;
                // Remembered beside the copy, for `after_run`.
                let key_file = copy.with_extension("key");
                write_text(&key_file, setup.as_deref().unwrap_or(""))?;
                Ok(FirmwareFiles::Pflash { code, vars: copy })
            }
        }
    }

    fn uefi_shell(&self, ctx: &Context) -> Result<Option<PathBuf>, Error> {
        let settings = Settings::from_context(ctx)?;
        if let Some(shell) = &settings.config.shell {
            let path = ctx.host_path(shell);
            if !path.is_file() {
                return Err(Error::Config(format!(
                    "`ovmf.shell = \"{}\"`: `{}` is not a file; fix the path (relative paths start at `{}`)",
                    shell.display(),
                    path.display(),
                    ctx.manifest_dir.display()
                )));
            }
            return Ok(Some(path));
        }
        if settings.config.source == Source::System {
            return Ok(None);
        }
        // The downloaded release's shell runs on any UEFI firmware of its architecture.
        let entry = settings.fetch(Some(ctx.decisions.arch), cache::Check::Quick)?;
        Ok(entry.arch(ctx.decisions.arch)?.shell)
    }

    fn checks(&self) -> Vec<Check> {
        let env = image_runner_core::context::process_env();
        let cache_dir = image_runner_core::context::cache_dir(&env).ok();
        ARCHES
            .into_iter()
            .map(|arch| doctor_check(arch, &env, cache_dir.as_deref()))
            .collect()
    }

    fn after_run(
        &self,
        files: &FirmwareFiles,
        outcome: &Outcome,
        ctx: &Context,
    ) -> Result<(), Error> {
        let FirmwareFiles::Pflash { vars, .. } = files else {
            return Ok(());
        };
        if outcome.verdict != Verdict::Success || !warm_vars(ctx) {
            return Ok(());
        }
        match std::fs::read_to_string(vars.with_extension("key")) {
            Ok(key) if !key.is_empty() => warm_store(ctx).keep(vars, &key),
            _ => Ok(()),
        }
    }
}

fn write_text(path: &Path, text: &str) -> Result<(), Error> {
    image_runner_core::fs::write_atomic(path, |file, temp| {
        use std::io::Write;
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io("write", temp, e))
    })
}

/// What a warmed variable store is valid for: the same firmware files (path, size, time),
/// architecture, boot kind and image format. `None` when warming is off or a file is unreadable.
fn setup_key(ctx: &Context, code: &Path, template: &Path) -> Option<String> {
    if !warm_vars(ctx) {
        return None;
    }
    let stamp = |p: &Path| {
        let meta = std::fs::metadata(p).ok()?;
        let modified = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(format!(
            "{}:{}:{}",
            p.display(),
            meta.len(),
            modified.as_nanos()
        ))
    };
    Some(format!(
        "{}\n{}\n{}\n{}\n{}\n",
        stamp(code)?,
        stamp(template)?,
        ctx.decisions.arch,
        ctx.decisions.boot,
        ctx.decisions
            .image
            .as_ref()
            .map_or("none", |plan| plan.format.as_str())
    ))
}

/// `ovmf.warm-vars`; on when the section cannot be read (the core checked it already).
fn warm_vars(ctx: &Context) -> bool {
    ctx.section::<OvmfConfig>("ovmf")
        .map_or(true, |c| c.warm_vars)
}

fn warm_store(ctx: &Context) -> WarmVars {
    WarmVars {
        file: ctx.output_dir.join("uefi-vars.warm.fd"),
        key_file: ctx.output_dir.join("uefi-vars.warm.key"),
    }
}

/// A variable store kept from a passing run, with the setup key it is valid for.
struct WarmVars {
    file: PathBuf,
    key_file: PathBuf,
}

impl WarmVars {
    fn matches(&self, key: &str) -> bool {
        self.file.is_file() && std::fs::read_to_string(&self.key_file).is_ok_and(|k| k == key)
    }

    fn keep(&self, vars: &Path, key: &str) -> Result<(), Error> {
        // The key is written last: a crash in between leaves a store without a matching key,
        // which is simply not used.
        let _ = std::fs::remove_file(&self.key_file);
        image_runner_core::fs::copy_atomic(vars, &self.file)?;
        write_text(&self.key_file, key)
    }
}

/// One line for a firmware pair.
pub fn describe(pair: &FirmwarePair) -> String {
    match pair {
        FirmwarePair::Unified(path) => format!("{} (unified)", path.display()),
        FirmwarePair::Pflash { code, vars } => format!("{} + {}", code.display(), vars.display()),
    }
}

/// What to install for `arch` on the common systems.
pub fn install_hint(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => {
            "Debian/Ubuntu: apt install ovmf; Fedora: dnf install edk2-ovmf; Arch: pacman -S edk2-ovmf; macOS: brew install qemu"
        }
        Arch::Aarch64 => {
            "Debian/Ubuntu: apt install qemu-efi-aarch64; Fedora: dnf install edk2-aarch64; Arch: pacman -S edk2-aarch64; macOS: brew install qemu"
        }
        Arch::Riscv64 => {
            "Debian 13+/Ubuntu 24.04+: apt install qemu-efi-riscv64 (Debian 12 has none; the download covers it); Fedora: dnf install edk2-riscv64; Arch: none packaged (the download covers it); macOS: brew install qemu"
        }
        _ => {
            "Debian/Ubuntu: none packaged in Debian 12 (the download covers it); Fedora: dnf install edk2-loongarch64; Arch: none packaged (the download covers it); macOS: brew install qemu"
        }
    }
}

/// `doctor`'s finding for `arch` with the default settings: the installed firmware a run would
/// use, else the downloaded release, else what a run would download and what to install.
fn doctor_check(arch: Arch, env: &BTreeMap<String, String>, cache_dir: Option<&Path>) -> Check {
    let subject = format!("UEFI firmware for {arch}");
    // `doctor` has no run's context: the process's variables that are not UTF-8.
    let not_utf8 = std::env::vars_os().filter_map(|(name, value)| {
        let name = name.into_string().ok()?;
        value.to_str().is_none().then_some((name, value))
    });
    let search = Search::system(arch, env.clone()).with_env_not_utf8(not_utf8);
    // A wrong `OVMF_*` variable fails every run (none downloads instead): say so.
    if let Some(Err(e)) = find_explicit(&search) {
        return Check::new(subject, CheckStatus::Missing, strip_prefix(&e));
    }
    if let Ok(pair) = find(&search) {
        return Check::new(
            subject,
            CheckStatus::Ok,
            format!("{} (installed)", describe(&pair)),
        );
    }
    let pinned = Release::pinned();
    if let Some(dir) = cache_dir {
        let cache = cache::Cache::new(dir);
        if let Ok(entry) = cache.check(&pinned.sha256, Some(arch), cache::Check::Quick)
            && let Ok(files) = entry.arch(arch)
        {
            return Check::new(
                subject,
                CheckStatus::Ok,
                format!(
                    "{} + {} (downloaded release {})",
                    files.code.display(),
                    files.vars.display(),
                    entry.tag
                ),
            );
        }
    }
    Check::new(
        subject,
        CheckStatus::Warn,
        format!(
            "none installed; a UEFI run downloads {} ({}, sha256 {}) into {} on first use (`cargo-image-runner ovmf fetch` does it now). To use installed firmware instead: {}",
            pinned.tag,
            pinned.url,
            pinned.sha256,
            cache_dir.map_or_else(
                || "the user cache".into(),
                |d| d.join("ovmf").display().to_string()
            ),
            install_hint(arch)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_never_downloads_in_place_of_firmware_named_explicitly() {
        // A release the cache publishes offline from a placed archive: a download would work.
        let archive = archive::tests::tar_xz(&[
            ("r/x64/code.fd", b'0', b"code", ""),
            ("r/x64/vars.fd", b'0', b"vars", ""),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let config = OvmfConfig {
            url: Some("http://127.0.0.1:9/{tag}-bin.tar.xz".into()),
            sha256: Some(download::hex(&<sha2::Sha256 as sha2::Digest>::digest(
                &archive,
            ))),
            ..OvmfConfig::default()
        };
        let settings = Settings {
            config,
            cache_dir: dir.path().to_path_buf(),
            offline: true,
            env: BTreeMap::new(),
        };
        let cache = cache::Cache::new(dir.path());
        std::fs::create_dir_all(cache.root()).unwrap();
        std::fs::write(cache.placed_archive(&settings.release().unwrap()), &archive).unwrap();
        let mut search = Search {
            arch: Arch::X86_64,
            code: Some(PathBuf::from("/nonexistent/CODE.fd")),
            vars: None,
            env: BTreeMap::new(),
            env_not_utf8: BTreeMap::new(),
            descriptor_dirs: Vec::new(),
            known: Vec::new(),
            prefer_unified: false,
        };
        let err = locate(&settings, &search).unwrap_err().to_string();
        assert!(
            err.contains("`ovmf.code`") && err.contains("/nonexistent/CODE.fd"),
            "{err}"
        );
        assert!(!err.contains("the download failed"), "{err}");
        assert!(
            !cache
                .entry_dir(&settings.release().unwrap().sha256)
                .exists()
        );
        // Named nowhere: the download stands in.
        search.code = None;
        let found = locate(&settings, &search).unwrap();
        assert!(found.origin.starts_with("downloaded release"), "{found:?}");
    }

    #[test]
    fn limits_made_in_code_are_clamped_for_the_http_client() {
        let settings = Settings {
            config: OvmfConfig {
                timeout: u64::MAX,
                download_timeout: u64::MAX,
                ..OvmfConfig::default()
            },
            cache_dir: PathBuf::from("/nonexistent"),
            offline: false,
            env: BTreeMap::new(),
        };
        let net = settings.net();
        let day = std::time::Duration::from_secs(config::MAX_SECONDS);
        assert_eq!(net.download.stall_timeout, day);
        assert_eq!(net.download.deadline, Some(day));
        let settings = Settings {
            config: OvmfConfig {
                timeout: 0,
                download_timeout: 0,
                ..OvmfConfig::default()
            },
            ..settings
        };
        let net = settings.net();
        assert_eq!(
            net.download.stall_timeout,
            std::time::Duration::from_secs(1)
        );
        assert_eq!(net.download.deadline, None);
    }
}
