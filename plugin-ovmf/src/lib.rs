//! UEFI firmware for cargo-image-runner: finds OVMF/AAVMF on the host and gives each run its
//! own copy of the variable store, warmed by the last passing run of the same setup.

mod config;
mod descriptor;
mod discover;

use std::path::{Path, PathBuf};

use image_runner_core::{
    Check, CheckStatus, Context, Error, Firmware, FirmwareFiles, Outcome, Registry, Section,
    Verdict,
};

pub use config::OvmfConfig;
pub use discover::{Candidate, FirmwarePair, Search, find};

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
        let found = find(&search)?;
        match found {
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

    fn checks(&self) -> Vec<Check> {
        let env = image_runner_core::context::process_env();
        [
            (image_runner_core::Arch::X86_64, CheckStatus::Missing),
            (image_runner_core::Arch::Aarch64, CheckStatus::Warn),
        ]
        .into_iter()
        .map(|(arch, when_missing)| {
            let subject = format!("UEFI firmware for {arch}");
            match find(&Search::system(arch, env.clone())) {
                Ok(FirmwarePair::Unified(path)) => Check::new(
                    subject,
                    CheckStatus::Ok,
                    format!("{} (unified)", path.display()),
                ),
                Ok(FirmwarePair::Pflash { code, vars }) => Check::new(
                    subject,
                    CheckStatus::Ok,
                    format!("{} + {}", code.display(), vars.display()),
                ),
                Err(e) => Check::new(subject, when_missing, e.to_string()),
            }
        })
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
