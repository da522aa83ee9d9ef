//! The JSON messages that carry rich values between the host and a plugin library. Each has a
//! `version` ([`MESSAGE_VERSION`] of the side that wrote it). Rules that keep built plugins
//! working: unknown fields are ignored; a field added later is optional (defaulted when
//! missing); a field is never removed or changes meaning within an ABI major version.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Table;

use crate::command::CommandSpec;
use crate::config::{Config, Variables};
use crate::context::Context;
use crate::decisions::Decisions;
use crate::kernel::Kernel;
use crate::media::{BootKind, BootMedia, Check, FirmwareFiles, Image, ImageKind, Outcome, Verdict};
use crate::staging::Staging;

/// The version written into every message by this build.
pub const MESSAGE_VERSION: u32 = 1;

fn version() -> u32 {
    MESSAGE_VERSION
}

/// A message with nothing but its version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Empty {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
}

impl Default for Empty {
    fn default() -> Self {
        Empty { version: version() }
    }
}

/// What a plugin sees of the [`Context`]: the decisions, the kernel, the shared config, its
/// own config section (no other plugin's), the directories and the environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContextMessage {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// The plugin's name (its section is `section`).
    #[serde(default)]
    pub plugin: String,
    /// The shared config keys (read leniently: keys this build does not know are dropped).
    #[serde(default)]
    pub config: serde_json::Value,
    /// The plugin's own section, when the config has one.
    #[serde(default)]
    pub section: Option<Table>,
    /// For each config key, the source that set it.
    #[serde(default)]
    pub origins: BTreeMap<String, String>,
    /// Template variables.
    #[serde(default)]
    pub variables: Variables,
    /// The kernel.
    pub kernel: Kernel,
    /// The decisions.
    pub decisions: Decisions,
    /// Arguments after the executable.
    #[serde(default)]
    pub args: Vec<String>,
    /// Arguments for the runner.
    #[serde(default)]
    pub runner_args: Vec<String>,
    /// The package directory.
    pub manifest_dir: PathBuf,
    /// The workspace root.
    pub workspace_root: PathBuf,
    /// Cargo's target directory.
    pub target_dir: PathBuf,
    /// This executable's output directory.
    pub output_dir: PathBuf,
    /// The user cache.
    pub cache_dir: PathBuf,
    /// The environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Verbosity.
    #[serde(default)]
    pub verbose: u8,
    /// The firmware's UEFI shell, when the bootloader asked for one.
    #[serde(default)]
    pub uefi_shell: Option<PathBuf>,
}

impl ContextMessage {
    /// What plugin `plugin` is given of `ctx`.
    pub fn new(ctx: &Context, plugin: &str) -> ContextMessage {
        ContextMessage {
            version: MESSAGE_VERSION,
            plugin: plugin.to_owned(),
            config: serde_json::to_value(&ctx.config).unwrap_or_default(),
            section: ctx.sections.get(plugin).cloned(),
            origins: ctx.origins.clone(),
            variables: ctx.variables.clone(),
            kernel: ctx.kernel.clone(),
            decisions: ctx.decisions.clone(),
            args: ctx.args.clone(),
            runner_args: ctx.runner_args.clone(),
            manifest_dir: ctx.manifest_dir.clone(),
            workspace_root: ctx.workspace_root.clone(),
            target_dir: ctx.target_dir.clone(),
            output_dir: ctx.output_dir.clone(),
            cache_dir: ctx.cache_dir.clone(),
            env: ctx.env.clone(),
            verbose: ctx.verbose,
            uefi_shell: ctx.uefi_shell.clone(),
        }
    }

    /// The context it describes, as the plugin's code reads it.
    pub fn into_context(self) -> Result<Context, String> {
        let config = lenient_config(self.config)?;
        let mut sections = BTreeMap::new();
        if let Some(section) = self.section {
            sections.insert(self.plugin, section);
        }
        Ok(Context {
            config,
            sections,
            origins: self.origins,
            variables: self.variables,
            kernel: self.kernel,
            decisions: self.decisions,
            args: self.args,
            runner_args: self.runner_args,
            manifest_dir: self.manifest_dir,
            workspace_root: self.workspace_root,
            target_dir: self.target_dir,
            output_dir: self.output_dir,
            cache_dir: self.cache_dir,
            env: self.env,
            // Values that are not UTF-8 do not travel as JSON text: a library plugin sees the
            // text environment only.
            env_not_utf8: BTreeMap::new(),
            verbose: self.verbose,
            uefi_shell: self.uefi_shell,
        })
    }
}

/// Reads the shared config a (possibly newer) host sent: a key this build does not know is
/// dropped rather than refused, since the host checked the config already.
fn lenient_config(mut value: serde_json::Value) -> Result<Config, String> {
    if value.is_null() {
        return Ok(Config::default());
    }
    for _ in 0..64 {
        match serde_json::from_value::<Config>(value.clone()) {
            Ok(config) => return Ok(config),
            Err(e) => {
                let text = e.to_string();
                let unknown = text
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split_once('`'))
                    .map(|(name, _)| name.to_owned());
                match unknown {
                    Some(name) if remove_key(&mut value, &name) => {}
                    _ => return Err(format!("the shared config could not be read: {text}")),
                }
            }
        }
    }
    Err("the shared config could not be read: too many unknown keys".into())
}

/// Removes every key `name` from the objects in `value`, except inside the free-form maps
/// (`variables`, `extra-files`); whether any was removed.
fn remove_key(value: &mut serde_json::Value, name: &str) -> bool {
    match value {
        serde_json::Value::Object(map) => {
            let mut removed = map.remove(name).is_some();
            for (key, inner) in map.iter_mut() {
                if key != "variables" && key != "extra-files" {
                    removed |= remove_key(inner, name);
                }
            }
            removed
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |removed, item| remove_key(item, name) | removed),
        _ => false,
    }
}

/// `SECTION`'s reply: the plugin's section defaults, or none when it has no section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SectionReply {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// The defaults; `None`: the plugin has no config section.
    #[serde(default)]
    pub defaults: Option<Table>,
}

/// `CHECK_SECTION`'s input: one source's table of the plugin's section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckSection {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// The table.
    #[serde(default)]
    pub table: Table,
}

/// `CHECK_SECTION`'s reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckSectionReply {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// What is wrong, if anything.
    #[serde(default)]
    pub error: Option<SectionError>,
}

/// A mistake in a plugin's section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SectionError {
    /// What is wrong (serde's words: "unknown field `x`, expected ...").
    pub message: String,
    /// The keys leading to the mistake inside the section (empty: the section itself).
    #[serde(default)]
    pub path: Vec<String>,
}

/// `CHECKS`'s reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChecksReply {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// The findings.
    #[serde(default)]
    pub checks: Vec<Check>,
}

/// `FORMAT_KIND`'s reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KindReply {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// What the format makes.
    pub kind: ImageKind,
}

/// `FORMAT_BUILD`'s input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Build {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// The run.
    pub ctx: ContextMessage,
    /// What goes into the image.
    pub staging: Staging,
}

/// An image: `FORMAT_BUILD`'s reply and the `FINISH` operation's input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageReply {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// The image.
    pub image: Image,
}

/// `BOOTLOADER_WANTS_IMAGE`'s input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WantsImage {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// The kernel.
    pub kernel: Kernel,
    /// How it boots.
    pub boot: BootKind,
}

/// `BOOTLOADER_WANTS_IMAGE`'s reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WantsImageReply {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// The answer.
    pub wants: bool,
}

/// `BOOTLOADER_STAGE`'s reply: the staging list, and a handle to the state the plugin keeps
/// for `finish_image`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StagedReply {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// The staging list.
    pub staging: Staging,
    /// Names the plugin's own state (0: none).
    #[serde(default)]
    pub handle: u64,
}

/// `BOOTLOADER_FINISH_IMAGE`'s input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinishImage {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// From `StagedReply`.
    #[serde(default)]
    pub handle: u64,
    /// The staging list.
    pub staging: Staging,
    /// The fresh image.
    pub image: Image,
    /// The run.
    pub ctx: ContextMessage,
}

/// `FIRMWARE_RESOLVE`'s reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FirmwareReply {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// The firmware.
    pub files: FirmwareFiles,
}

/// `FIRMWARE_UEFI_SHELL`'s reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShellReply {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// The shell, if the provider has one.
    #[serde(default)]
    pub shell: Option<PathBuf>,
}

/// `FIRMWARE_AFTER_RUN`'s input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AfterRun {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// The firmware of the run.
    pub files: FirmwareFiles,
    /// How it ended.
    pub outcome: Outcome,
    /// The run.
    pub ctx: ContextMessage,
}

/// `RUNNER_COMMAND`'s and `RUNNER_RUN`'s input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMessage {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// What to boot.
    pub media: BootMedia,
    /// The run.
    pub ctx: ContextMessage,
}

/// `RUNNER_COMMAND`'s reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandReply {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// The command.
    pub command: CommandSpec,
}

/// `RUNNER_RUN`'s reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutcomeReply {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// How the run ended.
    pub outcome: Outcome,
}

/// The `SERIAL` operation's input: output of the guest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SerialChunk {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// The bytes.
    #[serde(default)]
    pub bytes: Vec<u8>,
}

/// The `SERIAL` operation's reply: what the host's handler asked for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SerialReply {
    /// Message version.
    #[serde(default = "version")]
    pub version: u32,
    /// Bytes to type into the guest's serial port.
    #[serde(default)]
    pub input: Vec<u8>,
    /// End the run with this verdict.
    #[serde(default)]
    pub end: Option<Verdict>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_shared_keys_from_a_newer_host_are_dropped() {
        let mut value = serde_json::to_value(Config::default()).unwrap();
        value["from-the-future"] = serde_json::json!(3);
        value["test"]["later"] = serde_json::json!(true);
        value["variables"]["later"] = serde_json::json!("kept");
        let config = lenient_config(value).unwrap();
        assert_eq!(
            config.variables.get("later").map(String::as_str),
            Some("kept")
        );
        assert_eq!(config.test, Config::default().test);
        let err = lenient_config(serde_json::json!({ "boot": 3 })).unwrap_err();
        assert!(
            err.starts_with("the shared config could not be read"),
            "{err}"
        );
    }

    #[test]
    fn messages_ignore_unknown_fields_and_default_missing_ones() {
        let reply: SerialReply =
            serde_json::from_str(r#"{"version": 7, "input": [104], "added-later": 1}"#).unwrap();
        assert_eq!((reply.version, reply.input), (7, b"h".to_vec()));
        let reply: SectionReply = serde_json::from_str("{}").unwrap();
        assert_eq!(reply.version, MESSAGE_VERSION);
        assert!(reply.defaults.is_none());
    }
}
