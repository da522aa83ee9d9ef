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
type ValueTest = dyn Fn(&Value) -> bool + Send + Sync;
type ValueConvert = dyn Fn(&Value) -> Option<Value> + Send + Sync;

/// The schema of one plugin's config section: how to check a table and what its defaults are.
#[derive(Clone)]
pub struct Section {
    defaults: Table,
    check_spanned: Arc<SpannedCheck>,
    check_value: Arc<ValueCheck>,
    moved: Vec<(String, String)>,
    variables: Vec<String>,
    old: Vec<OldKey>,
}

impl fmt::Debug for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section")
            .field("defaults", &self.defaults)
            .field("moved", &self.moved)
            .field("variables", &self.variables)
            .field("old", &self.old)
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
            old: Vec::new(),
        }
    }

    /// A section checked by functions of the caller's (for plugins whose schema is not a Rust
    /// type). `check` gets the section as a TOML table; its errors are reported at the section
    /// ([`Section::located`] reports them at the key they concern).
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
            old: Vec::new(),
        }
    }

    /// A section checked by a function that names where a mistake is: `check` gets the section
    /// as a TOML table and returns the error message and the keys leading to the mistake (empty:
    /// the section itself), which is then reported at that key of the source, with its file,
    /// line and column. Plugins loaded from libraries get their sections this way.
    pub fn located(
        defaults: Table,
        check: impl Fn(&Table) -> Result<(), (String, Vec<String>)> + Send + Sync + 'static,
    ) -> Section {
        let check = Arc::new(check);
        let spanned_check = Arc::clone(&check);
        Section {
            defaults,
            check_spanned: Arc::new(move |value: Spanned<DeValue<'_>>| {
                let table = Table::deserialize(value.clone().into_deserializer())?;
                match spanned_check(&table) {
                    Ok(()) => Ok(()),
                    Err((message, path)) => Err(error_at(value, &path, message)),
                }
            }),
            check_value: Arc::new(move |value: Value| {
                let table: Table = value.try_into()?;
                check(&table).map_err(|(message, path)| {
                    let message = if path.is_empty() {
                        message
                    } else {
                        format!("{message} (at `{}`)", path.join("."))
                    };
                    <TomlError as serde::de::Error>::custom(message)
                })
            }),
            moved: Vec::new(),
            variables: Vec::new(),
            old: Vec::new(),
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

    /// Declares a key of an older spelling of this section (for example one written for
    /// cargo-image-runner 0.5), so that a config using it gets an error naming the new
    /// spelling, and `cargo-image-runner migrate` rewrites it. The first declaration that
    /// matches a key wins.
    pub fn with_old_key(mut self, old: OldKey) -> Section {
        self.old.push(old);
        self
    }

    /// The section's defaults.
    pub fn defaults(&self) -> &Table {
        &self.defaults
    }

    /// Keys of this section that moved to shared keys: (section key, shared key).
    pub fn moved_keys(&self) -> &[(String, String)] {
        &self.moved
    }

    /// The old spellings this section declared (see [`Section::with_old_key`]).
    pub fn old_keys(&self) -> &[OldKey] {
        &self.old
    }

    pub(crate) fn check_spanned(&self, value: Spanned<DeValue<'_>>) -> Result<(), TomlError> {
        (self.check_spanned)(value)
    }

    pub(crate) fn check_value(&self, value: Value) -> Result<(), TomlError> {
        (self.check_value)(value)
    }
}

/// A TOML error carrying `message` at the key that `path` leads to inside `value` (at `value`
/// itself when the path is empty or not found).
fn error_at(value: Spanned<DeValue<'_>>, path: &[String], message: String) -> TomlError {
    let mut span = value.span();
    let mut current = &value;
    for key in path {
        let DeValue::Table(table) = current.get_ref() else {
            break;
        };
        let Some((k, inner)) = table.iter().find(|(k, _)| **k.get_ref() == **key) else {
            break;
        };
        span = k.span();
        current = inner;
    }
    // Deserializing a value at `span` with a visitor that refuses it gives an error at `span`.
    let at = Spanned::new(span, DeValue::String(std::borrow::Cow::Borrowed("")));
    match serde::de::Deserializer::deserialize_any(at.into_deserializer(), Refuse(message)) {
        Ok(()) => <TomlError as serde::de::Error>::custom("a config section check failed"),
        Err(e) => e,
    }
}

struct Refuse(String);

impl serde::de::Visitor<'_> for Refuse {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(self.0))
    }
}

/// An older spelling of a key of a plugin's section, and what it is now.
#[derive(Clone)]
pub struct OldKey {
    key: String,
    new: Option<String>,
    hint: String,
    accepted: bool,
    when: Option<Arc<ValueTest>>,
    convert: Option<Arc<ValueConvert>>,
}

impl fmt::Debug for OldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OldKey")
            .field("key", &self.key)
            .field("new", &self.new)
            .field("hint", &self.hint)
            .field("accepted", &self.accepted)
            .finish_non_exhaustive()
    }
}

impl OldKey {
    /// `old` is spelled `new` now (a key of the same section); the value stays as it is unless
    /// [`OldKey::convert`] says otherwise.
    pub fn renamed(old: &str, new: &str) -> OldKey {
        OldKey {
            key: old.to_owned(),
            new: Some(new.to_owned()),
            hint: String::new(),
            accepted: false,
            when: None,
            convert: None,
        }
    }

    /// `old` has no counterpart any more; `hint` says what to do instead.
    pub fn removed(old: &str, hint: &str) -> OldKey {
        OldKey {
            key: old.to_owned(),
            new: None,
            hint: hint.to_owned(),
            accepted: false,
            when: None,
            convert: None,
        }
    }

    /// A sentence shown with the new spelling (what the old values mean now).
    pub fn hint(mut self, hint: &str) -> OldKey {
        self.hint = hint.to_owned();
        self
    }

    /// Only values for which `test` holds are the old spelling (for a key whose name stayed
    /// and whose type changed, like a table that became a string).
    pub fn when(mut self, test: impl Fn(&Value) -> bool + Send + Sync + 'static) -> OldKey {
        self.when = Some(Arc::new(test));
        self
    }

    /// How an old value is written now; `None` when it cannot be converted (the user is then
    /// shown the hint only).
    pub fn convert(
        mut self,
        convert: impl Fn(&Value) -> Option<Value> + Send + Sync + 'static,
    ) -> OldKey {
        self.convert = Some(Arc::new(convert));
        self
    }

    /// The old spelling still works (the section's type accepts it): it is no error, and only
    /// `cargo-image-runner migrate` rewrites it.
    pub fn accepted(mut self) -> OldKey {
        self.accepted = true;
        self
    }

    /// The old key's name.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The new key's name in the same section, if there is one.
    pub fn new_key(&self) -> Option<&str> {
        self.new.as_deref()
    }

    /// What to tell the user besides the new spelling.
    pub fn hint_text(&self) -> &str {
        &self.hint
    }

    /// Whether the old spelling still works.
    pub fn is_accepted(&self) -> bool {
        self.accepted
    }

    /// Whether `value`, written at this key, is the old spelling.
    pub fn matches(&self, value: &Value) -> bool {
        self.when.as_ref().is_none_or(|test| test(value))
    }

    /// `value` as it is written now (unchanged without a conversion).
    pub fn converted(&self, value: &Value) -> Option<Value> {
        match &self.convert {
            Some(convert) => convert(value),
            None => Some(value.clone()),
        }
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
