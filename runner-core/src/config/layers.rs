//! Config sources and how they stack: defaults < workspace metadata < package metadata <
//! `image-runner.toml` < profile < environment < command line, merged key by key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::{Table, Value};

use super::schema::Config;
use super::template::Variables;
use crate::error::Error;

/// Prefix of the environment variables that override config keys.
pub const ENV_PREFIX: &str = "CARGO_IMAGE_RUNNER_";

/// Environment variables with the prefix that are not config keys.
const ENV_RESERVED: &[&str] = &["PROFILE", "CACHE", "QEMU_ARGS"];

/// Which kind of source a layer is; the order of the variants is the precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum LayerKind {
    /// Built-in defaults.
    Default,
    /// `[workspace.metadata.image-runner]` of the workspace root manifest.
    WorkspaceMetadata,
    /// `[package.metadata.image-runner]` of the package manifest.
    PackageMetadata,
    /// `image-runner.toml` beside the package manifest.
    File,
    /// `CARGO_IMAGE_RUNNER_*` environment variables.
    Environment,
    /// Command-line flags.
    CommandLine,
}

/// One source of configuration values.
#[derive(Debug, Clone)]
pub struct Layer {
    /// What kind of source this is.
    pub kind: LayerKind,
    /// Human-readable name of the source, used in `config` output and errors.
    pub label: String,
    /// The keys this source sets (profiles removed).
    pub table: Table,
    /// Profiles this source defines.
    pub profiles: BTreeMap<String, Table>,
}

/// The configuration after all layers, profile and templates were applied.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Resolved {
    /// The typed configuration.
    pub config: Config,
    /// For each dotted key, the label of the source that set it last.
    pub origins: BTreeMap<String, String>,
    /// The merged table the config was read from (templates expanded).
    pub table: Table,
    /// The variables templates could use.
    pub variables: Variables,
}

/// The stack of config sources, lowest precedence first.
#[derive(Debug, Clone)]
pub struct ConfigLayers {
    layers: Vec<Layer>,
}

impl Default for ConfigLayers {
    fn default() -> Self {
        Self::new()
    }
}

/// Only for validation with spans: deserializing the whole manifest through these types makes
/// toml report errors inside the metadata table with their position in the file.
#[derive(Deserialize)]
#[allow(dead_code)]
struct ManifestDoc {
    #[serde(default)]
    package: Option<MetadataHolder>,
    #[serde(default)]
    workspace: Option<MetadataHolder>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct MetadataHolder {
    #[serde(default)]
    metadata: Option<MetadataDoc>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct MetadataDoc {
    #[serde(rename = "image-runner", default)]
    image_runner: Option<Config>,
}

impl ConfigLayers {
    /// A stack holding only the built-in defaults.
    pub fn new() -> Self {
        let table = Table::try_from(Config::default()).unwrap_or_default();
        ConfigLayers {
            layers: vec![Layer {
                kind: LayerKind::Default,
                label: "default".into(),
                table,
                profiles: BTreeMap::new(),
            }],
        }
    }

    /// The layers, lowest precedence first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    fn push(&mut self, layer: Layer) {
        let at = self
            .layers
            .iter()
            .position(|l| l.kind > layer.kind)
            .unwrap_or(self.layers.len());
        self.layers.insert(at, layer);
    }

    /// Reads `[workspace.metadata.image-runner]` or `[package.metadata.image-runner]` from a
    /// `Cargo.toml`. A manifest without that table adds nothing.
    pub fn add_manifest(&mut self, manifest: &Path, kind: LayerKind) -> Result<(), Error> {
        let text = std::fs::read_to_string(manifest).map_err(|e| Error::io("read", manifest, e))?;
        self.add_manifest_str(manifest, &text, kind)
    }

    /// Like [`ConfigLayers::add_manifest`] with the manifest's text already read.
    pub fn add_manifest_str(
        &mut self,
        manifest: &Path,
        text: &str,
        kind: LayerKind,
    ) -> Result<(), Error> {
        let section = match kind {
            LayerKind::WorkspaceMetadata => "workspace",
            LayerKind::PackageMetadata => "package",
            _ => {
                return Err(Error::Config(format!(
                    "{}: a manifest gives workspace or package metadata only",
                    manifest.display()
                )));
            }
        };
        let doc: Table = parse_text(manifest, text)?;
        let Some(table) = doc
            .get(section)
            .and_then(|v| v.get("metadata"))
            .and_then(|v| v.get("image-runner"))
        else {
            return Ok(());
        };
        let Value::Table(table) = table.clone() else {
            return Err(Error::Config(format!(
                "{}: `{section}.metadata.image-runner` must be a table",
                manifest.display()
            )));
        };
        toml::from_str::<ManifestDoc>(text).map_err(|e| spanned_error(manifest, text, &e))?;
        let label = format!("{} [{section}.metadata.image-runner]", manifest.display());
        self.push(split_profiles(kind, label, table));
        Ok(())
    }

    /// Reads an `image-runner.toml`; a missing file adds nothing.
    pub fn add_file(&mut self, path: &Path) -> Result<(), Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("read", path, e)),
        };
        self.add_file_str(path, &text)
    }

    /// Like [`ConfigLayers::add_file`] with the text already read.
    pub fn add_file_str(&mut self, path: &Path, text: &str) -> Result<(), Error> {
        let table: Table = parse_text(path, text)?;
        toml::from_str::<Config>(text).map_err(|e| spanned_error(path, text, &e))?;
        self.push(split_profiles(
            LayerKind::File,
            path.display().to_string(),
            table,
        ));
        Ok(())
    }

    /// Adds `CARGO_IMAGE_RUNNER_<SECTION>_<KEY>` variables: `CARGO_IMAGE_RUNNER_TEST_TIMEOUT=30`
    /// sets `test.timeout`. Values are read as TOML when they parse, as strings otherwise.
    pub fn add_env<I, K, V>(&mut self, vars: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let sections: Vec<String> = self.layers[0]
            .table
            .iter()
            .filter(|(_, v)| v.is_table())
            .map(|(k, _)| k.clone())
            .collect();
        let mut pairs: Vec<(String, String, String)> = Vec::new();
        for (name, value) in vars {
            let name = name.as_ref();
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if ENV_RESERVED.contains(&rest) || rest.is_empty() {
                continue;
            }
            let key = rest.to_ascii_lowercase().replace('_', "-");
            let dotted = sections
                .iter()
                .find_map(|s| {
                    key.strip_prefix(&format!("{s}-"))
                        .map(|k| format!("{s}.{k}"))
                })
                .unwrap_or(key);
            pairs.push((
                format!("environment variable {name}"),
                dotted,
                value.as_ref().to_owned(),
            ));
        }
        pairs.sort();
        self.add_pairs(LayerKind::Environment, pairs)
    }

    /// Adds `key=value` overrides from the command line (`--set test.timeout=30`).
    pub fn add_overrides(&mut self, overrides: &[String]) -> Result<(), Error> {
        let mut pairs = Vec::new();
        for item in overrides {
            let Some((key, value)) = item.split_once('=') else {
                return Err(Error::Config(format!(
                    "`--set {item}`: expected KEY=VALUE, for example `--set test.timeout=30`"
                )));
            };
            pairs.push((
                format!("`--set {item}`"),
                key.trim().to_owned(),
                value.to_owned(),
            ));
        }
        self.add_pairs(LayerKind::CommandLine, pairs)
    }

    /// Adds one `key = value` from a named source (e.g. `CARGO_NET_OFFLINE` → `offline`).
    pub fn add_setting(
        &mut self,
        kind: LayerKind,
        origin: &str,
        key: &str,
        value: &str,
    ) -> Result<(), Error> {
        self.add_pairs(
            kind,
            vec![(origin.to_owned(), key.to_owned(), value.to_owned())],
        )
    }

    fn add_pairs(
        &mut self,
        kind: LayerKind,
        pairs: Vec<(String, String, String)>,
    ) -> Result<(), Error> {
        for (origin, key, raw) in pairs {
            let value = parse_scalar(&raw);
            let mut one = Table::new();
            set_dotted(&mut one, &key, value.clone());
            if let Err(e) = Value::Table(one).try_into::<Config>() {
                return Err(Error::Config(format!(
                    "{origin}: key `{key}`: {}{}",
                    e.message(),
                    suggestion(e.message())
                )));
            }
            let mut table = Table::new();
            set_dotted(&mut table, &key, value);
            self.push(Layer {
                kind,
                label: origin,
                table,
                profiles: BTreeMap::new(),
            });
        }
        Ok(())
    }

    /// Every profile name defined by any layer.
    pub fn profile_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .layers
            .iter()
            .flat_map(|l| l.profiles.keys().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Merges all layers (with `profile` applied above the file layers), expands templates
    /// with `builtins` and the user's `variables`, and reads the typed config.
    pub fn resolve(&self, profile: Option<&str>, builtins: &Variables) -> Result<Resolved, Error> {
        let mut merged = Table::new();
        let mut origins = BTreeMap::new();
        let mut profile_found = profile.is_none();
        let split = self
            .layers
            .iter()
            .position(|l| l.kind >= LayerKind::Environment)
            .unwrap_or(self.layers.len());
        for layer in &self.layers[..split] {
            merge(&mut merged, &layer.table, &layer.label, "", &mut origins);
        }
        self.merge_profile(profile, &mut merged, &mut origins, &mut profile_found);
        for layer in &self.layers[split..] {
            merge(&mut merged, &layer.table, &layer.label, "", &mut origins);
        }
        if let (Some(name), false) = (profile, profile_found) {
            let names = self.profile_names();
            return Err(Error::Config(format!(
                "profile `{name}` is not defined; defined profiles: {}. Add `[package.metadata.image-runner.profile.{name}]` or pick another",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        }

        let mut variables = builtins.clone();
        if let Some(Value::Table(user)) = merged.get("variables") {
            for (name, value) in user {
                let Value::String(text) = value else { continue };
                let expanded = builtins.expand(text, &format!("variables.{name}"))?;
                variables.set(name.clone(), expanded);
            }
        }
        for (key, value) in merged.iter_mut() {
            if key != "variables" {
                variables.expand_value(value, key)?;
            }
        }
        let config: Config =
            Value::Table(merged.clone())
                .try_into()
                .map_err(|e: toml::de::Error| {
                    Error::Config(format!("merged config: {}", e.message()))
                })?;
        Ok(Resolved {
            config,
            origins,
            table: merged,
            variables,
        })
    }

    fn merge_profile(
        &self,
        profile: Option<&str>,
        merged: &mut Table,
        origins: &mut BTreeMap<String, String>,
        found: &mut bool,
    ) {
        let Some(name) = profile else { return };
        for layer in &self.layers {
            if let Some(table) = layer.profiles.get(name) {
                *found = true;
                let label = format!("{} (profile `{name}`)", layer.label);
                merge(merged, table, &label, "", origins);
            }
        }
    }
}

fn split_profiles(kind: LayerKind, label: String, mut table: Table) -> Layer {
    let mut profiles = BTreeMap::new();
    if let Some(Value::Table(defined)) = table.remove("profile") {
        for (name, value) in defined {
            if let Value::Table(mut t) = value {
                t.remove("profile");
                profiles.insert(name, t);
            }
        }
    }
    Layer {
        kind,
        label,
        table,
        profiles,
    }
}

/// Deep merge: tables merge key by key; anything else replaces.
fn merge(
    base: &mut Table,
    over: &Table,
    label: &str,
    prefix: &str,
    origins: &mut BTreeMap<String, String>,
) {
    for (key, value) in over {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (base.get_mut(key), value) {
            (Some(Value::Table(existing)), Value::Table(incoming)) => {
                merge(existing, incoming, label, &dotted, origins);
            }
            _ => {
                if let Value::Table(incoming) = value {
                    origins.retain(|k, _| !k.starts_with(&format!("{dotted}.")));
                    let mut fresh = Table::new();
                    merge(&mut fresh, incoming, label, &dotted, origins);
                    base.insert(key.clone(), Value::Table(fresh));
                    if incoming.is_empty() {
                        origins.insert(dotted, label.to_owned());
                    }
                } else {
                    origins.insert(dotted, label.to_owned());
                    base.insert(key.clone(), value.clone());
                }
            }
        }
    }
}

fn set_dotted(table: &mut Table, key: &str, value: Value) {
    let mut parts = key.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_owned(), value);
            return;
        }
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(next) = entry else { return };
        current = next;
    }
}

/// Reads a value given as text outside TOML (environment, `--set`): TOML if it parses as a
/// value, a plain string otherwise.
fn parse_scalar(raw: &str) -> Value {
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        Err(_) => Value::String(raw.to_owned()),
    }
}

fn parse_text(path: &Path, text: &str) -> Result<Table, Error> {
    toml::from_str::<Table>(text).map_err(|e| spanned_error(path, text, &e))
}

/// Formats a TOML error as `file:line:column: message`, the offending line with a caret, and a
/// "did you mean" hint for unknown keys.
fn spanned_error(path: &Path, text: &str, err: &toml::de::Error) -> Error {
    let message = err.message().trim_end();
    let Some(span) = err.span() else {
        return Error::Config(format!("{}: {message}", path.display()));
    };
    let (line, column) = line_column(text, span.start);
    let source_line = text.lines().nth(line - 1).unwrap_or("");
    let width = text[span.clone()]
        .lines()
        .next()
        .map_or(1, |l| l.chars().count().max(1));
    Error::Config(format!(
        "{}:{line}:{column}: {message}\n{line:>5} | {source_line}\n      | {}{}{}",
        path.display(),
        " ".repeat(column - 1),
        "^".repeat(width),
        suggestion(message)
    ))
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (and variants), the nearest
/// expected name as a hint.
fn suggestion(message: &str) -> String {
    if !message.starts_with("unknown field") && !message.starts_with("unknown variant") {
        return String::new();
    }
    let names: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let Some((unknown, expected)) = names.split_first() else {
        return String::new();
    };
    let best = expected
        .iter()
        .map(|candidate| (edit_distance(unknown, candidate), *candidate))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min();
    match best {
        Some((_, name)) => format!("\nhelp: did you mean `{name}`?"),
        None => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(layers: &ConfigLayers, profile: Option<&str>) -> Result<Resolved, Error> {
        let mut vars = Variables::new();
        vars.set("WORKSPACE_ROOT", "/ws");
        layers.resolve(profile, &vars)
    }

    const MANIFEST: &str = r#"
[package]
name = "kernel"

[package.metadata.image-runner]
boot = "uefi"
cmdline = "console=ttyS0"
variables = { DISK = "{{WORKSPACE_ROOT}}/disk.img" }

[package.metadata.image-runner.test]
timeout = 20

[package.metadata.image-runner.qemu]
args = ["-drive", "file={{DISK}}"]

[package.metadata.image-runner.profile.ci.test]
timeout = 99
"#;

    #[test]
    fn layers_merge_key_by_key_and_remember_their_origin() {
        let mut layers = ConfigLayers::new();
        layers
            .add_manifest_str(
                Path::new("/ws/Cargo.toml"),
                "[workspace.metadata.image-runner.qemu]\nmemory = \"1G\"\ncores = 2\n",
                LayerKind::WorkspaceMetadata,
            )
            .unwrap();
        layers
            .add_manifest_str(
                Path::new("/k/Cargo.toml"),
                MANIFEST,
                LayerKind::PackageMetadata,
            )
            .unwrap();
        layers
            .add_file_str(Path::new("/k/image-runner.toml"), "[qemu]\ncores = 4\n")
            .unwrap();
        layers
            .add_env([
                ("CARGO_IMAGE_RUNNER_TEST_SUCCESS_EXIT_CODE", "35"),
                ("HOME", "/root"),
            ])
            .unwrap();
        let r = resolve(&layers, None).unwrap();
        assert_eq!(r.config.qemu.memory, "1G");
        assert_eq!(r.config.qemu.cores, 4);
        assert_eq!(r.config.test.timeout, 20);
        assert_eq!(r.config.test.success_exit_code, 35);
        assert_eq!(r.config.boot, super::super::BootChoice::Uefi);
        assert_eq!(r.config.qemu.args, ["-drive", "file=/ws/disk.img"]);
        assert_eq!(
            r.origins["qemu.memory"],
            "/ws/Cargo.toml [workspace.metadata.image-runner]"
        );
        assert_eq!(r.origins["qemu.cores"], "/k/image-runner.toml");
        assert_eq!(
            r.origins["test.success-exit-code"],
            "environment variable CARGO_IMAGE_RUNNER_TEST_SUCCESS_EXIT_CODE"
        );
        assert_eq!(r.origins["qemu.gui"], "default");
    }

    #[test]
    fn profiles_sit_between_files_and_environment() {
        let mut layers = ConfigLayers::new();
        layers
            .add_manifest_str(
                Path::new("/k/Cargo.toml"),
                MANIFEST,
                LayerKind::PackageMetadata,
            )
            .unwrap();
        assert_eq!(
            resolve(&layers, Some("ci")).unwrap().config.test.timeout,
            99
        );
        layers.add_overrides(&["test.timeout=7".into()]).unwrap();
        let r = resolve(&layers, Some("ci")).unwrap();
        assert_eq!(r.config.test.timeout, 7);
        assert_eq!(r.origins["test.timeout"], "`--set test.timeout=7`");
        let err = resolve(&layers, Some("nope")).unwrap_err().to_string();
        assert!(err.contains("`nope`") && err.contains("ci"), "{err}");
    }

    #[test]
    fn unknown_key_names_file_line_column_and_suggests() {
        let text = "[package]\nname = \"k\"\n\n[package.metadata.image-runner.test]\ntimout = 5\n";
        let err = ConfigLayers::new()
            .add_manifest_str(Path::new("/k/Cargo.toml"), text, LayerKind::PackageMetadata)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/k/Cargo.toml:5:1: unknown field `timout`"),
            "{err}"
        );
        assert!(err.contains("did you mean `timeout`?"), "{err}");
    }

    #[test]
    fn wrong_type_names_file_line_column() {
        let err = ConfigLayers::new()
            .add_file_str(
                Path::new("/k/image-runner.toml"),
                "[qemu]\ncores = \"two\"\n",
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/k/image-runner.toml:2:9: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn bad_toml_names_file_line_column() {
        let err = ConfigLayers::new()
            .add_file_str(
                Path::new("/k/image-runner.toml"),
                "boot = \"uefi\"\nformat = \n",
            )
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/k/image-runner.toml:2:"), "{err}");
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        let err = ConfigLayers::new()
            .add_env([("CARGO_IMAGE_RUNNER_TEST_TIMOUT", "5")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CARGO_IMAGE_RUNNER_TEST_TIMOUT"), "{err}");
        assert!(err.contains("did you mean `timeout`"), "{err}");
        let err = ConfigLayers::new()
            .add_env([("CARGO_IMAGE_RUNNER_QEMU_CORES", "many")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CARGO_IMAGE_RUNNER_QEMU_CORES"), "{err}");
    }

    #[test]
    fn unknown_boot_value_is_suggested() {
        let err = ConfigLayers::new()
            .add_file_str(Path::new("f.toml"), "boot = \"uefl\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `uefi`?"), "{err}");
    }
}
