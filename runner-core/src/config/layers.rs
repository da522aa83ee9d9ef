//! Config sources and how they stack: defaults < workspace metadata < package metadata <
//! `image-runner.toml` < profile < environment < command line, merged key by key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::de::{DeTable, DeValue};
use toml::{Spanned, Table, Value};

use super::old;
use super::schema::{Config, SHARED_KEYS};
use super::section::Sections;
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
    /// The shared keys, typed.
    pub config: Config,
    /// Each plugin's section (defaults included), by plugin name; its plugin reads it.
    pub sections: BTreeMap<String, Table>,
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
    sections: Sections,
}

impl Default for ConfigLayers {
    fn default() -> Self {
        Self::new(&Sections::new())
    }
}

impl ConfigLayers {
    /// A stack holding only the built-in defaults: the shared keys' and those of each plugin
    /// section in `sections` (the sections a source may set).
    pub fn new(sections: &Sections) -> Self {
        let mut table = Table::try_from(Config::default()).unwrap_or_default();
        for (name, section) in sections.iter() {
            table.insert(name.to_owned(), Value::Table(section.defaults().clone()));
        }
        ConfigLayers {
            sections: sections.clone(),
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
        // One parse, with positions; the plain table is read from it.
        let spanned = DeTable::parse(text).map_err(|e| spanned_error(manifest, text, &e, &[]))?;
        let Some(value) = spanned
            .get_ref()
            .get(section)
            .and_then(|v| v.get_ref().get("metadata"))
            .and_then(|v| v.get_ref().get("image-runner"))
        else {
            return Ok(());
        };
        if !value.get_ref().is_table() {
            return Err(Error::Config(format!(
                "{}: `{section}.metadata.image-runner` must be a table",
                manifest.display()
            )));
        }
        let mut table = plain_table(manifest, text, value)?;
        let checker = Checker::new(manifest, text, &self.sections);
        checker.old_spellings(&table, value)?;
        checker.check(value)?;
        move_keys(&mut table, &self.sections);
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
        let spanned = DeTable::parse(text).map_err(|e| spanned_error(path, text, &e, &[]))?;
        let span = spanned.span();
        let root = Spanned::new(span, DeValue::Table(spanned.into_inner()));
        let mut table = plain_table(path, text, &root)?;
        let checker = Checker::new(path, text, &self.sections);
        checker.old_spellings(&table, &root)?;
        checker.check(&root)?;
        move_keys(&mut table, &self.sections);
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
            if let Some(message) =
                old::env_message(ENV_PREFIX, rest, value.as_ref(), &self.sections)
            {
                return Err(Error::Config(format!(
                    "environment variable {name} is {}'s {message}",
                    old::OLD_RELEASE
                )));
            }
            // Template variable names are the user's own: kept as written.
            if let Some(variable) = rest.strip_prefix("VARIABLES_")
                && !variable.is_empty()
            {
                pairs.push((
                    format!("environment variable {name}"),
                    format!("variables.{variable}"),
                    value.as_ref().to_owned(),
                ));
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
            let mut table = Table::new();
            set_dotted(&mut table, &key, value.clone());
            if let Some(found) = old::respellings(&table, &self.sections)
                .into_iter()
                .filter(|r| !r.accepted)
                .max_by_key(|r| r.old.len())
            {
                return Err(Error::Config(format!("{origin}: {}", found.message())));
            }
            let typed = |value: Value| {
                let mut table = Table::new();
                set_dotted(&mut table, &key, value);
                move_keys(&mut table, &self.sections);
                check_table(&table, &self.sections).map(|()| table)
            };
            // A value that reads as a number or a boolean is still a string for a string key
            // (`--set cmdline=5`).
            let table = match typed(value.clone()) {
                Ok(table) => table,
                Err(message) => match value {
                    Value::String(_) => Err(message),
                    _ => typed(Value::String(raw.clone())).map_err(|_| message),
                }
                .map_err(|message| Error::Config(format!("{origin}: key `{key}`: {message}")))?,
            };
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
            // Only the plugins this config selects define template variables for this run.
            let selected: Vec<&str> = ["bootloader", "format", "firmware", "runner"]
                .iter()
                .filter_map(|key| merged.get(*key).and_then(Value::as_str))
                .collect();
            let mut in_use = Sections::new();
            for (name, section) in self.sections.iter() {
                if selected.contains(&name) {
                    in_use.insert(name, section.clone());
                }
            }
            super::template::check_user_variables(user, builtins, &in_use, &origins)?;
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
        let mut shared = merged.clone();
        let mut sections = BTreeMap::new();
        for (name, _) in self.sections.iter() {
            if let Some(Value::Table(table)) = shared.remove(name) {
                sections.insert(name.to_owned(), table);
            }
        }
        let config: Config = Value::Table(shared)
            .try_into()
            .map_err(|e: toml::de::Error| {
                Error::Config(format!("merged config: {}", e.message()))
            })?;
        Ok(Resolved {
            config,
            sections,
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

/// The plain table of a parsed (spanned) TOML table, without parsing the text again.
fn plain_table(path: &Path, text: &str, value: &Spanned<DeValue<'_>>) -> Result<Table, Error> {
    Table::deserialize(value.clone().into_deserializer())
        .map_err(|e| spanned_error(path, text, &e, &[]))
}

/// Checks one source's image-runner table, with positions: shared keys against [`Config`],
/// each plugin section against its plugin's schema, profiles likewise.
struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
    sections: &'a Sections,
}

impl<'a> Checker<'a> {
    fn new(path: &'a Path, text: &'a str, sections: &'a Sections) -> Self {
        Checker {
            path,
            text,
            sections,
        }
    }

    fn check(&self, value: &Spanned<DeValue<'_>>) -> Result<(), Error> {
        let DeValue::Table(table) = value.get_ref() else {
            return Err(self.at(value.span(), "the image-runner config must be a table", ""));
        };
        let mut shared = DeTable::new();
        for (key, item) in table.iter() {
            let name: &str = key.get_ref();
            if name == "profile" {
                let DeValue::Table(profiles) = item.get_ref() else {
                    return Err(self.at(
                        item.span(),
                        "`profile` must be a table of profiles, like `[profile.ci]`",
                        "",
                    ));
                };
                for (_, profile) in profiles.iter() {
                    self.check(profile)?;
                }
                continue;
            }
            if let Some(section) = self.sections.get(name) {
                let mut item = item.clone();
                let span = item.span();
                if let DeValue::Table(inner) = item.get_mut() {
                    let mut kept = DeTable::new();
                    for (k, v) in std::mem::take(inner) {
                        match section
                            .moved_keys()
                            .iter()
                            .find(|(from, _)| **from == **k.get_ref())
                        {
                            Some((_, to)) => {
                                shared.insert(Spanned::new(k.span(), to.clone().into()), v);
                            }
                            None => {
                                kept.insert(k, v);
                            }
                        }
                    }
                    *inner = kept;
                }
                section
                    .check_spanned(item)
                    .map_err(|e| self.error(&e, span, &[]))?;
                continue;
            }
            if !SHARED_KEYS.contains(&name) && item.get_ref().is_table() {
                return Err(self.unknown_section(key.span(), name));
            }
            shared.insert(key.clone(), item.clone());
        }
        let span = value.span();
        let names = self.sections.names();
        Config::deserialize(Spanned::new(span.clone(), DeValue::Table(shared)).into_deserializer())
            .map(drop)
            .map_err(|e| self.error(&e, span, &names))
    }

    /// Every key of `table` (the plain form of `value`) in an old spelling, as one error that
    /// locates each and names its new spelling.
    fn old_spellings(&self, table: &Table, value: &Spanned<DeValue<'_>>) -> Result<(), Error> {
        let found: Vec<old::Respelling> = old::respellings(table, self.sections)
            .into_iter()
            .filter(|r| !r.accepted)
            .collect();
        if found.is_empty() {
            return Ok(());
        }
        let mut located: Vec<(usize, String)> = found
            .iter()
            .map(|r| {
                let span = key_span(value, &r.old).unwrap_or_else(|| value.span());
                (span.start, self.at(span, &r.message(), "").to_string())
            })
            .collect();
        located.sort_by_key(|(start, _)| *start);
        let located: Vec<String> = located.into_iter().map(|(_, text)| text).collect();
        Err(Error::Config(format!(
            "{}\nhelp: `cargo-image-runner migrate` rewrites these in place (`cargo-image-runner migrate --dry-run` shows the changes first)",
            located.join("\n")
        )))
    }

    fn error(
        &self,
        err: &toml::de::Error,
        fallback: std::ops::Range<usize>,
        extra: &[&str],
    ) -> Error {
        let span = err.span().unwrap_or(fallback);
        let message = err.message().trim_end();
        self.at(span, message, &suggestion(message, extra))
    }

    fn unknown_section(&self, span: std::ops::Range<usize>, name: &str) -> Error {
        let names = self.sections.names();
        let mut candidates: Vec<&str> = SHARED_KEYS.to_vec();
        candidates.extend(&names);
        let hint = nearest(name, &candidates)
            .map(|n| format!("\nhelp: did you mean `{n}`?"))
            .unwrap_or_default();
        self.at(
            span,
            &format!(
                "`{name}` is neither a shared key nor the config section of a loaded plugin (plugins with a section: {}). A plugin's section is named after the plugin: load it (a cargo feature of cargo-image-runner, or a plugin library) or remove the table",
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            ),
            &hint,
        )
    }

    fn at(&self, span: std::ops::Range<usize>, message: &str, hint: &str) -> Error {
        located(self.path, self.text, span, message, hint)
    }
}

/// Where the key at `path` is written in `value`.
fn key_span(value: &Spanned<DeValue<'_>>, path: &[String]) -> Option<std::ops::Range<usize>> {
    let (first, rest) = path.split_first()?;
    let DeValue::Table(table) = value.get_ref() else {
        return None;
    };
    let (key, inner) = table.iter().find(|(k, _)| **k.get_ref() == **first)?;
    if rest.is_empty() {
        Some(key.span())
    } else {
        key_span(inner, rest)
    }
}

/// Moves keys of plugin sections that now live at shared keys (`qemu.attach` → `attach`), in a
/// table and its profiles. A value set at the shared key itself wins.
fn move_keys(table: &mut Table, sections: &Sections) {
    for (name, section) in sections.iter() {
        for (from, to) in section.moved_keys() {
            let moved = match table.get_mut(name) {
                Some(Value::Table(inner)) => inner.remove(from),
                _ => None,
            };
            if let Some(value) = moved {
                table.entry(to.clone()).or_insert(value);
            }
        }
    }
    if let Some(Value::Table(profiles)) = table.get_mut("profile") {
        for (_, profile) in profiles.iter_mut() {
            if let Value::Table(profile) = profile {
                move_keys(profile, sections);
            }
        }
    }
}

/// Checks a table from a source without positions (environment, `--set`): shared keys against
/// [`Config`], plugin sections against their schemas.
fn check_table(table: &Table, sections: &Sections) -> Result<(), String> {
    let mut shared = Table::new();
    for (key, value) in table {
        if let Some(section) = sections.get(key) {
            section
                .check_value(value.clone())
                .map_err(|e| format!("{}{}", e.message(), suggestion(e.message(), &[])))?;
        } else if !SHARED_KEYS.contains(&key.as_str()) && value.is_table() {
            let names = sections.names();
            return Err(format!(
                "`{key}` is neither a shared key nor the config section of a loaded plugin (plugins with a section: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ));
        } else {
            shared.insert(key.clone(), value.clone());
        }
    }
    let names = sections.names();
    Value::Table(shared)
        .try_into::<Config>()
        .map(drop)
        .map_err(|e| format!("{}{}", e.message(), suggestion(e.message(), &names)))
}

/// Formats a TOML error as `file:line:column: message`, the offending line with a caret, and a
/// "did you mean" hint for unknown keys.
fn spanned_error(path: &Path, text: &str, err: &toml::de::Error, extra: &[&str]) -> Error {
    let message = err.message().trim_end();
    let Some(span) = err.span() else {
        return Error::Config(format!("{}: {message}", path.display()));
    };
    located(path, text, span, message, &suggestion(message, extra))
}

/// `file:line:column: message`, the source line with a caret under `span`, and `hint`.
fn located(
    path: &Path,
    text: &str,
    span: std::ops::Range<usize>,
    message: &str,
    hint: &str,
) -> Error {
    let (line, column) = line_column(text, span.start);
    let source_line = text.lines().nth(line - 1).unwrap_or("");
    let width = text[span.clone()]
        .lines()
        .next()
        .map_or(1, |l| l.chars().count().max(1));
    Error::Config(format!(
        "{}:{line}:{column}: {message}\n{line:>5} | {source_line}\n      | {}{}{hint}",
        path.display(),
        " ".repeat(column - 1),
        "^".repeat(width),
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
/// expected name (or name in `extra`) as a hint.
fn suggestion(message: &str, extra: &[&str]) -> String {
    if !message.starts_with("unknown field") && !message.starts_with("unknown variant") {
        return String::new();
    }
    let names: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let Some((unknown, expected)) = names.split_first() else {
        return String::new();
    };
    let mut candidates = expected.to_vec();
    candidates.extend(extra);
    match nearest(unknown, &candidates) {
        Some(name) => format!("\nhelp: did you mean `{name}`?"),
        None => String::new(),
    }
}

/// The candidate closest to `unknown`, if it is close enough to be a likely typo.
fn nearest<'c>(unknown: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(unknown, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Section;
    use serde::Serialize;

    /// A plugin section as a plugin crate would declare it.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
    struct Emu {
        memory: String,
        cores: u32,
        gui: bool,
        args: Vec<String>,
    }

    impl Default for Emu {
        fn default() -> Self {
            Emu {
                memory: "256M".into(),
                cores: 1,
                gui: false,
                args: Vec::new(),
            }
        }
    }

    fn sections() -> Sections {
        let mut sections = Sections::new();
        sections.insert(
            "qemu",
            Section::of::<Emu>().with_moved_key("attach", "attach"),
        );
        sections
    }

    fn qemu(r: &Resolved) -> Emu {
        Value::Table(r.sections["qemu"].clone()).try_into().unwrap()
    }

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
        let mut layers = ConfigLayers::new(&sections());
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
        assert_eq!(qemu(&r).memory, "1G");
        assert_eq!(qemu(&r).cores, 4);
        assert_eq!(r.config.test.timeout, 20);
        assert_eq!(r.config.test.success_exit_code, Some(35));
        assert_eq!(r.config.boot, super::super::BootChoice::Uefi);
        assert_eq!(qemu(&r).args, ["-drive", "file=/ws/disk.img"]);
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
        let mut layers = ConfigLayers::new(&sections());
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
        let err = ConfigLayers::new(&sections())
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
        let err = ConfigLayers::new(&sections())
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
        let err = ConfigLayers::new(&sections())
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
        let err = ConfigLayers::new(&sections())
            .add_env([("CARGO_IMAGE_RUNNER_TEST_TIMOUT", "5")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CARGO_IMAGE_RUNNER_TEST_TIMOUT"), "{err}");
        assert!(err.contains("did you mean `timeout`"), "{err}");
        let err = ConfigLayers::new(&sections())
            .add_env([("CARGO_IMAGE_RUNNER_QEMU_CORES", "many")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CARGO_IMAGE_RUNNER_QEMU_CORES"), "{err}");
    }

    #[test]
    fn unknown_boot_value_is_suggested() {
        let err = ConfigLayers::new(&sections())
            .add_file_str(Path::new("f.toml"), "boot = \"uefl\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `uefi`?"), "{err}");
    }

    #[test]
    fn plugin_section_typo_names_file_line_column_and_suggests() {
        let text =
            "[package]\nname = \"k\"\n\n[package.metadata.image-runner.qemu]\nmemroy = \"1G\"\n";
        let err = ConfigLayers::new(&sections())
            .add_manifest_str(Path::new("/k/Cargo.toml"), text, LayerKind::PackageMetadata)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/k/Cargo.toml:5:1: unknown field `memroy`"),
            "{err}"
        );
        assert!(err.contains("did you mean `memory`?"), "{err}");
    }

    #[test]
    fn a_table_of_no_loaded_plugin_is_an_error_that_lists_the_plugins() {
        let text = "[qemuu]\nmemory = \"1G\"\n";
        let err = ConfigLayers::new(&sections())
            .add_file_str(Path::new("/k/image-runner.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/k/image-runner.toml:1:2: `qemuu` is neither"),
            "{err}"
        );
        assert!(err.contains("plugins with a section: qemu"), "{err}");
        assert!(err.contains("did you mean `qemu`?"), "{err}");
        let err = ConfigLayers::new(&sections())
            .add_overrides(&["limine.version=v9".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`limine` is neither"), "{err}");
    }

    #[test]
    fn a_moved_key_still_works_where_users_wrote_it() {
        let mut layers = ConfigLayers::new(&sections());
        layers
            .add_file_str(
                Path::new("/k/image-runner.toml"),
                "[qemu]\nattach = \"disk\"\n",
            )
            .unwrap();
        let r = resolve(&layers, None).unwrap();
        assert_eq!(r.config.attach, super::super::Attach::Disk);
        let err = ConfigLayers::new(&sections())
            .add_file_str(
                Path::new("/k/image-runner.toml"),
                "[qemu]\nattach = \"dsk\"\n",
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/k/image-runner.toml:2:10: unknown variant `dsk`"),
            "{err}"
        );
        layers.add_overrides(&["qemu.attach=cdrom".into()]).unwrap();
        assert_eq!(
            resolve(&layers, None).unwrap().config.attach,
            super::super::Attach::Cdrom
        );
    }

    #[test]
    fn profiles_are_checked_too() {
        let text = "[profile.ci.qemu]\ncors = 2\n";
        let err = ConfigLayers::new(&sections())
            .add_file_str(Path::new("/k/image-runner.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/k/image-runner.toml:2:1: unknown field `cors`"),
            "{err}"
        );
    }

    #[test]
    fn string_keys_take_values_that_read_as_numbers_or_booleans() {
        let mut layers = ConfigLayers::new(&sections());
        layers
            .add_overrides(&["cmdline=5".into(), "arch=true".into()])
            .unwrap();
        layers
            .add_env([("CARGO_IMAGE_RUNNER_QEMU_MEMORY", "1024")])
            .unwrap();
        let r = resolve(&layers, None).unwrap();
        assert_eq!(r.config.cmdline, "5");
        assert_eq!(r.config.arch, "true");
        assert_eq!(
            qemu(&r).memory,
            "1024",
            "a string key keeps the text as written"
        );
        // Numbers stay numbers where a number is wanted, and a wrong type is still an error.
        layers.add_overrides(&["test.timeout=7".into()]).unwrap();
        assert_eq!(resolve(&layers, None).unwrap().config.test.timeout, 7);
        let err = ConfigLayers::new(&sections())
            .add_overrides(&["test.timeout=soon".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`--set test.timeout=soon`: key `test.timeout`"),
            "{err}"
        );
    }

    #[test]
    fn old_spellings_are_errors_naming_the_new_one() {
        let mut sections = sections();
        sections.insert(
            "qemu",
            Section::of::<Emu>().with_old_key(
                crate::config::OldKey::renamed("kvm", "accel")
                    .hint("no KVM is `tcg`")
                    .convert(|v| v.as_bool().map(|_| Value::from("tcg"))),
            ),
        );
        let text = "[package]\nname = \"k\"\n\n[package.metadata.image-runner.runner.qemu]\ncores = 2\nkvm = false\n\n[package.metadata.image-runner.boot]\ntype = \"uefi\"\n";
        let err = ConfigLayers::new(&sections)
            .add_manifest_str(Path::new("/k/Cargo.toml"), text, LayerKind::PackageMetadata)
            .unwrap_err()
            .to_string();
        let expected = [
            "/k/Cargo.toml:4:39: `[runner.qemu]` is cargo-image-runner 0.5's spelling; the section is `[qemu]` now",
            "/k/Cargo.toml:6:1: `[runner.qemu] kvm` is cargo-image-runner 0.5's spelling; write `[qemu] accel = \"tcg\"` (no KVM is `tcg`)",
            "/k/Cargo.toml:9:1: `[boot] type` is cargo-image-runner 0.5's spelling; write `boot = \"uefi\"`",
            "help: `cargo-image-runner migrate` rewrites these in place",
        ];
        let mut from = 0;
        for line in expected {
            let at = err[from..]
                .find(line)
                .unwrap_or_else(|| panic!("{line:?} not in order in:\n{err}"));
            from += at + line.len();
        }
        let err = ConfigLayers::new(&sections)
            .add_env([("CARGO_IMAGE_RUNNER_KVM", "no")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "environment variable CARGO_IMAGE_RUNNER_KVM is cargo-image-runner 0.5's name for `[runner.qemu] kvm`; use CARGO_IMAGE_RUNNER_QEMU_ACCEL=tcg (no KVM is `tcg`)"
        );
    }
}
