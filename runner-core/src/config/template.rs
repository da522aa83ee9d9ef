//! Template variables (`{{NAME}}`) substituted in config strings in one deterministic pass.

use std::collections::BTreeMap;

use toml::Table;

use super::section::Sections;
use crate::error::Error;

/// The variables available to templates: built-ins plus the user's `variables` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Variables {
    values: BTreeMap<String, String>,
}

impl Variables {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one variable.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.values.insert(name.into(), value.into());
    }

    /// Looks one variable up.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// All variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Replaces every `{{NAME}}` in `text`. Substituted text is not scanned again, so a value
    /// containing `{{...}}` stays as it is. `key` names the config key in errors.
    pub fn expand(&self, text: &str, key: &str) -> Result<String, Error> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let name = after[..end].trim();
            match self.values.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    return Err(Error::UnknownVariable {
                        name: name.to_owned(),
                        key: key.to_owned(),
                        known: self.values.keys().cloned().collect::<Vec<_>>().join(", "),
                    });
                }
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Expands every string inside `value` (recursively through arrays and tables).
    pub fn expand_value(&self, value: &mut toml::Value, key: &str) -> Result<(), Error> {
        match value {
            toml::Value::String(s) => *s = self.expand(s, key)?,
            toml::Value::Array(items) => {
                for item in items {
                    self.expand_value(item, key)?;
                }
            }
            toml::Value::Table(table) => {
                for (k, v) in table.iter_mut() {
                    self.expand_value(v, &format!("{key}.{k}"))?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Refuses entries of the user's `variables` table (`user`) named like a variable the runner
/// defines: one of `builtins` (the user's value would replace the runner's everywhere) or one a
/// plugin section declares for its own templates ([`super::Section::with_variables`]; the
/// plugin's value would win there). `origins` (dotted key → source label) names the file.
pub(crate) fn check_user_variables(
    user: &Table,
    builtins: &Variables,
    sections: &Sections,
    origins: &BTreeMap<String, String>,
) -> Result<(), Error> {
    for name in user.keys() {
        let owners: Vec<&str> = sections
            .iter()
            .filter(|(_, section)| section.variables().iter().any(|v| v == name))
            .map(|(plugin, _)| plugin)
            .collect();
        let whose = if builtins.get(name).is_some() {
            "the runner's own, used in every config string and template".to_owned()
        } else if !owners.is_empty() {
            format!(
                "defined by the {} plugin{} for {} templates, where it would override yours",
                owners.join(" and "),
                if owners.len() > 1 { "s" } else { "" },
                if owners.len() > 1 { "their" } else { "its" },
            )
        } else {
            continue;
        };
        let key = format!("variables.{name}");
        let origin = origins.get(&key).map_or("the config", String::as_str);
        return Err(Error::Config(format!(
            "`{key}` (set in {origin}) takes the name of a built-in variable: `{{{{{name}}}}}` is {whose}. Rename yours (for example `MY_{name}`) and use that name where you meant your value"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        let mut v = Variables::new();
        v.set("A", "1");
        v.set("LOOP", "{{A}}");
        v
    }

    #[test]
    fn expands_known_variables_once() {
        let v = vars();
        assert_eq!(v.expand("x{{A}}y{{ A }}", "k").unwrap(), "x1y1");
        assert_eq!(v.expand("{{LOOP}}", "k").unwrap(), "{{A}}");
        assert_eq!(v.expand("open {{ only", "k").unwrap(), "open {{ only");
    }

    #[test]
    fn user_variables_named_like_built_in_ones_are_refused() {
        use crate::config::Section;
        let mut sections = Sections::new();
        for plugin in ["limine", "grub"] {
            sections.insert(
                plugin,
                Section::custom(Table::new(), |_| Ok(())).with_variables(["KERNEL"]),
            );
        }
        sections.insert(
            "other",
            Section::custom(Table::new(), |_| Ok(())).with_variables(vec!["ENTRIES".to_owned()]),
        );
        let origins = BTreeMap::from([
            ("variables.A".to_owned(), "/p/Cargo.toml".to_owned()),
            (
                "variables.KERNEL".to_owned(),
                "/p/image-runner.toml".to_owned(),
            ),
        ]);
        let user = |name: &str| Table::from_iter([(name.to_owned(), "x".into())]);
        let check = |name: &str| check_user_variables(&user(name), &vars(), &sections, &origins);
        let err = check("A").unwrap_err().to_string();
        assert!(
            err.contains("`variables.A` (set in /p/Cargo.toml)")
                && err.contains("`{{A}}` is the runner's own"),
            "{err}"
        );
        let err = check("KERNEL").unwrap_err().to_string();
        assert!(
            err.contains("`variables.KERNEL` (set in /p/image-runner.toml)")
                && err.contains("grub and limine plugins for their templates"),
            "{err}"
        );
        let err = check("ENTRIES").unwrap_err().to_string();
        assert!(err.contains("the other plugin for its templates"), "{err}");
        check("MINE").unwrap();
    }

    #[test]
    fn unknown_variables_name_the_key() {
        let err = vars()
            .expand("{{NOPE}}", "qemu.args")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("{{NOPE}}") && err.contains("qemu.args"),
            "{err}"
        );
    }
}
