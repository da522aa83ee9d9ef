//! The `limine` bootloader plugin: gets Limine for the run's settings, stages the kernel with
//! Limine's files and `limine.conf`, and installs the BIOS stages into finished images.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use image_runner_core::config::Attach;
use image_runner_core::{
    Bootloader, Check, CheckStatus, Config, Context, Error, Image, ImageKind, Section, Staged,
};

use crate::files::{FilesSource, LimineFiles};
use crate::install::{self, Installed, TableKind};
use crate::stage::Plan;
use crate::stages::BiosStages;
use crate::{LimineConfig, LimineSettings, acquire, offline_from_env};

/// Boots kernels through Limine, fetched with git (or taken from `limine.path`).
#[derive(Debug, Default, Clone, Copy)]
#[non_exhaustive]
pub struct Limine;

/// What `stage` hands to `finish_image`: the plan and the Limine files it staged, so the BIOS
/// stages installed are those of the same commit even if the branch moved in between.
#[derive(Debug)]
struct StagedLimine {
    plan: Plan,
    files: LimineFiles,
}

impl Limine {
    /// The plugin.
    pub fn new() -> Self {
        Limine
    }

    /// The Limine files for `ctx`, acquired as its settings say (warnings printed, the choice
    /// reported with `-v`).
    pub fn files(&self, ctx: &Context) -> Result<LimineFiles, Error> {
        acquire_reported(&settings(ctx)?, ctx.verbose)
    }
}

/// Acquires Limine for `settings`, printing its warnings and, when `verbose`, where the files
/// came from.
fn acquire_reported(settings: &LimineSettings, verbose: u8) -> Result<LimineFiles, Error> {
    let files = acquire(settings)?;
    for warning in &files.warnings {
        eprintln!("warning: {warning}");
    }
    if verbose > 0 {
        let how = match files.source {
            FilesSource::Fetched => "fetched now",
            FilesSource::Cache => "cached",
            FilesSource::Directory => "limine.path",
        };
        eprintln!("     Using {files} ({how})");
    }
    Ok(files)
}

/// The acquisition settings `ctx` asks for: `[limine]` `git`, `version`, `path` (relative to
/// the package), `refresh-minutes`; offline from `offline` (`--offline`) or
/// `CARGO_NET_OFFLINE`; the user cache.
pub fn settings(ctx: &Context) -> Result<LimineSettings, Error> {
    let limine: LimineConfig = ctx.section("limine")?;
    Ok(settings_from(
        &ctx.config,
        &limine,
        &ctx.manifest_dir,
        &ctx.cache_dir,
        &ctx.env,
    ))
}

/// [`settings`] without a kernel at hand (for `cargo-image-runner limine fetch`): `limine` is
/// the `[limine]` section, `config` the shared keys (for `offline`); relative `limine.path`
/// values start at `manifest_dir`.
pub fn settings_from(
    config: &Config,
    limine: &LimineConfig,
    manifest_dir: &Path,
    cache_dir: &Path,
    env: &BTreeMap<String, String>,
) -> LimineSettings {
    let mut settings = LimineSettings::new(cache_dir);
    settings.git = limine.git.clone();
    settings.version = limine.version.clone();
    settings.path = limine.path.as_ref().map(|p| manifest_dir.join(p));
    settings.offline = config.offline || offline_from_env(env);
    settings.refresh = Duration::from_secs(limine.refresh_minutes.saturating_mul(60));
    settings
}

impl Bootloader for Limine {
    fn name(&self) -> &str {
        "limine"
    }

    fn config_section(&self) -> Option<Section> {
        Some(Section::of::<LimineConfig>().with_variables(crate::stage::TEMPLATE_VARIABLES))
    }

    fn stage(&self, ctx: &Context) -> Result<Staged, Error> {
        // Everything that can be refused without Limine is, before any network access.
        let limine: LimineConfig = ctx.section("limine")?;
        let plan = Plan::new(ctx)?;
        let settings = settings_from(
            &ctx.config,
            &limine,
            &ctx.manifest_dir,
            &ctx.cache_dir,
            &ctx.env,
        );
        let files = acquire_reported(&settings, ctx.verbose)?;
        let config = plan.config_text(ctx, &limine, files.major())?;
        let staging = plan.staging(&files, config.clone())?;
        if let Some(template) = &limine.config {
            plan.check_template_paths(&config, &staging, ctx, template)?;
        }
        Ok(Staged::new(staging).with_state(StagedLimine { plan, files }))
    }

    fn finish_image(&self, staged: &Staged, image: &Image, ctx: &Context) -> Result<(), Error> {
        let Some(StagedLimine { plan, files }) = staged.state::<StagedLimine>() else {
            return Err(Error::plugin(
                "limine",
                "asked to finish an image whose staging list Limine did not make (its plan and files are missing)",
            ));
        };
        if !plan.bios {
            return Ok(());
        }
        if !plan.needs_bios_install(image.kind) {
            return Err(Error::plugin(
                "limine",
                format!(
                    "the `{}` format made {}, which has no place for Limine's BIOS stages; set `format = \"iso\"` (or \"gpt\", \"mbr\"), or `boot = \"uefi\"`",
                    plan.format,
                    match image.kind {
                        ImageKind::Fat => "a bare FAT volume",
                        ImageKind::Directory => "a directory",
                        _ => "an image",
                    }
                ),
            ));
        }
        let stages = match BiosStages::load(files) {
            Ok(stages) => stages,
            // A CD boot does not need them; only booting the ISO as a disk does.
            Err(e) if image.kind == ImageKind::Iso && ctx.decisions.attach != Attach::Disk => {
                eprintln!("warning: the ISO boots on BIOS as a CD only: {e}");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let installed = install::install_file(&image.path, &stages)?;
        if ctx.verbose > 0 {
            eprintln!(
                "     Installed Limine's BIOS stages into {}: {}",
                image.path.display(),
                describe(&installed)
            );
        }
        Ok(())
    }

    fn checks(&self) -> Vec<Check> {
        if cfg!(feature = "https") {
            return vec![Check::new(
                "Limine",
                CheckStatus::Ok,
                "fetched with git (https in process, file:// or a local path) on first use and cached",
            )];
        }
        let git = std::process::Command::new("git")
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        vec![match git {
            Some(version) => Check::new(
                "Limine",
                CheckStatus::Ok,
                format!(
                    "fetched on first use through {version} and cached; `limine.path` uses a local copy instead"
                ),
            ),
            None => Check::new(
                "Limine",
                CheckStatus::Warn,
                "`git` not found: Limine can only come from local paths and file:// URLs (install git, or set `limine.path`)",
            ),
        }]
    }
}

/// "GPT (512-byte blocks), stage 2 at bytes 6656 and …, 44 partition entries left".
fn describe(installed: &Installed) -> String {
    let [a, b] = installed.stage2;
    let table = match installed.table {
        TableKind::Mbr => "MBR".to_owned(),
        TableKind::Gpt { block_size } => format!("GPT ({block_size}-byte blocks)"),
    };
    let mut text = format!(
        "{table}, stage 2 at bytes {} (+{}) and {} (+{})",
        a.offset, a.size, b.offset, b.size
    );
    if let Some((before, after)) = installed.gpt_entries {
        text.push_str(&format!(", {after} of {before} partition entries left"));
    }
    if installed.activated_first_partition {
        text.push_str(", partition 1 marked active");
    }
    text
}
