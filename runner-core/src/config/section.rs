//! Plugin-owned config sections. A plugin declares its section as a serde type in its own crate
//! ([`Section::of`]); the core hands it the table under the plugin's name
//! (`[package.metadata.image-runner.<name>]`), layered like every other key, and checks each
//! source against the type so mistakes are reported with file, line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Serialize};
use toml::de::{DeValue, Error as TomlError};
use toml::{Spanned, Table, Value};

type SpannedCheck = dyn for<'i> Fn(Spanned<DeValue<'i>>) -> Result<(), TomlError> + Send + Sync;
type ValueCheck = dyn Fn(Value) -> Result<(), TomlError> + Send + Sync;

/// The schema of one plugin's config section: how to check a table and what its defaults are.
#[derive(Clone)]
pub struct Section {
    defaults: Table,
    check_spanned: Arc<SpannedCheck>,
    check_value: Arc<ValueCheck>,
    moved: Vec<(String, String)>,
    variables: Vec<String>,
}

impl fmt::Debug for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section")
            .field("defaults", &self.defaults)
            .field("moved", &self.moved)
            .field("variables", &self.variables)
            .finish_non_exhaustive()
    }
}

impl Section {
    /// The section whose schema is `T`: its defaults are `T::default()`, and a table is valid
    /// when it deserializes into `T` (use `#[serde(default, deny_unknown_fields)]` so that
    /// every key is optional and typos are caught).
    pub fn of<T>() -> Section
    where
        T: DeserializeOwned + Serialize + Default + 'static,
    {
        Section {
            defaults: Table::try_from(T::default()).unwrap_or_default(),
            check_spanned: Arc::new(|value: Spanned<DeValue<'_>>| {
                T::deserialize(value.into_deserializer()).map(drop)
            }),
            check_value: Arc::new(|value: Value| value.try_into::<T>().map(drop)),
            moved: Vec::new(),
            variables: Vec::new(),
        }
    }

    /// A section checked by functions of the caller's (for plugins whose schema is not a Rust
    /// type, such as plugins loaded from libraries). `check` gets the section as a TOML table.
    pub fn custom(
        defaults: Table,
        check: impl Fn(&Table) -> Result<(), String> + Send + Sync + 'static,
    ) -> Section {
        let check = Arc::new(check);
        let spanned_check = Arc::clone(&check);
        Section {
            defaults,
            // An error without a position is reported at the section's table.
            check_spanned: Arc::new(move |value: Spanned<DeValue<'_>>| {
                let table = Table::deserialize(value.into_deserializer())?;
                spanned_check(&table).map_err(<TomlError as serde::de::Error>::custom)
            }),
            check_value: Arc::new(move |value: Value| {
                let table: Table = value.try_into()?;
                check(&table).map_err(<TomlError as serde::de::Error>::custom)
            }),
            moved: Vec::new(),
            variables: Vec::new(),
        }
    }

    /// Declares that `key` of this section now lives at the shared key `shared` (a key that
    /// moved to the core keeps working where users wrote it).
    pub fn with_moved_key(mut self, key: &str, shared: &str) -> Section {
        self.moved.push((key.to_owned(), shared.to_owned()));
        self
    }

    /// Declares the template variables the plugin defines itself, in the templates it expands
    /// (a bootloader's config template: `KERNEL`, `ENTRIES`, ...). A user `variables` entry of
    /// such a name is refused, naming the file it is set in: in those templates the plugin's
    /// value would silently win over the user's.
    pub fn with_variables<I, S>(mut self, names: I) -> Section
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.variables.extend(names.into_iter().map(Into::into));
        self
    }

    /// The template variables the plugin defines itself ([`Section::with_variables`]).
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// The section's defaults.
    pub fn defaults(&self) -> &Table {
        &self.defaults
    }

    /// Keys of this section that moved to shared keys: (section key, shared key).
    pub fn moved_keys(&self) -> &[(String, String)] {
        &self.moved
    }

    pub(crate) fn check_spanned(&self, value: Spanned<DeValue<'_>>) -> Result<(), TomlError> {
        (self.check_spanned)(value)
    }

    pub(crate) fn check_value(&self, value: Value) -> Result<(), TomlError> {
        (self.check_value)(value)
    }
}

/// Every registered plugin's section, by plugin name.
#[derive(Debug, Clone, Default)]
pub struct Sections {
    by_name: BTreeMap<String, Section>,
}

impl Sections {
    /// No sections.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the section of plugin `name`.
    pub fn insert(&mut self, name: impl Into<String>, section: Section) {
        self.by_name.insert(name.into(), section);
    }

    /// The section of plugin `name`.
    pub fn get(&self, name: &str) -> Option<&Section> {
        self.by_name.get(name)
    }

    /// Every (name, section), sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.by_name.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The section names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }
}
