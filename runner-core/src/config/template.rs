//! Template variables (`{{NAME}}`) substituted in config strings in one deterministic pass.

use std::collections::BTreeMap;

use crate::error::Error;

/// The variables available to templates: built-ins plus the user's `variables` table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
