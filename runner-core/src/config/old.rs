//! Old spellings: the keys and environment variables of cargo-image-runner 0.5 (the crate this
//! project replaces) and what they are now. The shared keys' table is here; each plugin declares
//! its own section's old keys ([`super::Section::with_old_key`]), so the core names no built-in
//! plugin. The config checks turn every finding into an error that names the new spelling, and
//! `cargo-image-runner migrate` rewrites the findings in place.

use toml::{Table, Value};

use super::schema::Config;
use super::section::Sections;

/// The release whose spellings these are, as messages name it.
pub const OLD_RELEASE: &str = "cargo-image-runner 0.5";

/// One key in an older spelling, found in an image-runner table.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Respelling {
    /// Path of the old key from the image-runner table, e.g. `["runner", "qemu", "kvm"]`.
    pub old: Vec<String>,
    /// Where it lives now; `None` when nothing replaces it (see `hint`).
    pub new: Option<Vec<String>>,
    /// The value to write at `new`; `None` when the old value cannot be converted.
    pub value: Option<Value>,
    /// Whether `value` differs from the old value (a rewrite, not just a move).
    pub changed: bool,
    /// What else the user should know (what old values mean now, what to do instead).
    pub hint: String,
    /// The old spelling still works; only `migrate` rewrites it.
    pub accepted: bool,
    /// The old key is a plugin's section (a table that moves as a whole).
    pub section: bool,
}

impl Respelling {
    fn new(old: Vec<String>, new: Option<Vec<String>>, value: &Value) -> Respelling {
        Respelling {
            old,
            new,
            value: Some(value.clone()),
            changed: false,
            hint: String::new(),
            accepted: false,
            section: false,
        }
    }

    fn hint(mut self, hint: &str) -> Respelling {
        self.hint = hint.to_owned();
        self
    }

    /// One sentence: the old key, its new spelling (with the value when it is short), and the
    /// hint.
    pub fn message(&self) -> String {
        let moves_as_table = !self.changed && self.value.as_ref().is_some_and(Value::is_table);
        let old = if moves_as_table {
            format!("`[{}]`", self.old.join("."))
        } else {
            show_key(&self.old)
        };
        let what = match (&self.new, &self.value) {
            (None, _) => "nothing replaces it".to_owned(),
            (Some(new), _) if moves_as_table && self.section => {
                format!("the section is `[{}]` now", new.join("."))
            }
            (Some(new), _) if moves_as_table => format!("it is `[{}]` now", new.join(".")),
            (Some(new), Some(value)) => {
                let shown = value.to_string();
                if shown.len() <= 60 && !shown.contains('\n') {
                    format!("write `{} = {shown}`", plain_key(new))
                } else {
                    format!("write `{}`", plain_key(new))
                }
            }
            (Some(new), None) => format!("it is `{}` now", show_key(new)),
        };
        let hint = if self.hint.is_empty() {
            String::new()
        } else if self.new.is_none() {
            format!(": {}", self.hint)
        } else {
            format!(" ({})", self.hint)
        };
        format!("{old} is {OLD_RELEASE}'s spelling; {what}{hint}")
    }
}

/// `` `boot` ``, or `` `[image] label` `` for a key in a table.
fn show_key(path: &[String]) -> String {
    format!("`{}`", plain_key(path))
}

/// `boot`, or `[image] label` for a key in a table.
fn plain_key(path: &[String]) -> String {
    match path.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, parent)) => format!("[{}] {last}", parent.join(".")),
        None => String::new(),
    }
}

/// Every old spelling in `table` (an image-runner table: `[package.metadata.image-runner]`,
/// the workspace's, or an `image-runner.toml`), profiles included, outer keys before the keys
/// inside them.
pub fn respellings(table: &Table, sections: &Sections) -> Vec<Respelling> {
    let mut found = Vec::new();
    shared(table, &[], &[], sections, &mut found);
    found
}

fn path(prefix: &[String], keys: &[&str]) -> Vec<String> {
    prefix
        .iter()
        .cloned()
        .chain(keys.iter().map(|k| (*k).to_owned()))
        .collect()
}

/// The shared keys' old spellings, in `table` at `old` (written now at `new`).
fn shared(
    table: &Table,
    old: &[String],
    new: &[String],
    sections: &Sections,
    found: &mut Vec<Respelling>,
) {
    // 0.5's `[runner] kind` named the runner; `[run] gui` belongs to its section now.
    let runner = match table.get("runner") {
        Some(Value::Table(t)) => t.get("kind").and_then(Value::as_str),
        Some(other) => other.as_str(),
        None => None,
    }
    .map_or_else(|| Config::default().runner, str::to_owned);
    for (key, value) in table {
        match (key.as_str(), value) {
            ("boot", Value::Table(inner)) => {
                if let Some(kind) = inner.get("type") {
                    found.push(Respelling::new(
                        path(old, &["boot", "type"]),
                        Some(path(new, &["boot"])),
                        kind,
                    ));
                }
            }
            ("bootloader", Value::Table(inner)) => {
                let kind = inner.get("kind").and_then(Value::as_str);
                for (k, v) in inner {
                    match (k.as_str(), v) {
                        ("kind", _) => found.push(Respelling::new(
                            path(old, &["bootloader", "kind"]),
                            Some(path(new, &["bootloader"])),
                            v,
                        )),
                        ("config-file", _) => found.push(match kind {
                            Some(kind) if kind != "none" => Respelling::new(
                                path(old, &["bootloader", "config-file"]),
                                Some(path(new, &[kind, "config"])),
                                v,
                            ),
                            _ => Respelling::new(
                                path(old, &["bootloader", "config-file"]),
                                None,
                                v,
                            )
                            .hint(
                                "a bootloader's own config file is `config` in its section, e.g. `[limine] config = \"limine.conf\"`",
                            ),
                        }),
                        (name, Value::Table(section)) => moved_section(
                            section,
                            path(old, &["bootloader", name]),
                            path(new, &[name]),
                            sections,
                            found,
                        ),
                        _ => {}
                    }
                }
            }
            ("image", Value::Table(inner)) => {
                for (k, v) in inner {
                    match k.as_str() {
                        "format" => found.push(Respelling::new(
                            path(old, &["image", "format"]),
                            Some(path(new, &["format"])),
                            v,
                        )),
                        "output" => found.push(
                            Respelling::new(path(old, &["image", "output"]), None, v).hint(
                                "images are written to `<target>/image-runner/<executable>/`, and `cargo-image-runner build` prints the path",
                            ),
                        ),
                        "volume_label" | "volume-label" => found.push(Respelling::new(
                            path(old, &["image", k]),
                            Some(path(new, &["image", "label"])),
                            v,
                        )),
                        _ => {}
                    }
                }
            }
            ("runner", Value::Table(inner)) => {
                for (k, v) in inner {
                    match (k.as_str(), v) {
                        ("kind", _) => found.push(Respelling::new(
                            path(old, &["runner", "kind"]),
                            Some(path(new, &["runner"])),
                            v,
                        )),
                        (name, Value::Table(section)) => moved_section(
                            section,
                            path(old, &["runner", name]),
                            path(new, &[name]),
                            sections,
                            found,
                        ),
                        _ => {}
                    }
                }
            }
            (mode @ ("test" | "run"), Value::Table(inner)) => {
                for (k, v) in inner {
                    match k.as_str() {
                        "extra-args" | "extra_args" => found.push(Respelling::new(
                            path(old, &[mode, k]),
                            Some(path(new, &[mode, "args"])),
                            v,
                        )),
                        "gui" if mode == "run" => found.push(
                            Respelling::new(
                                path(old, &["run", "gui"]),
                                Some(path(new, &[&runner, "gui"])),
                                v,
                            )
                            .hint("the runner's setting now, for tests too"),
                        ),
                        _ => {}
                    }
                }
            }
            ("verbose", _) => found.push(
                Respelling::new(path(old, &["verbose"]), None, value)
                    .hint("pass `-v` (`-vv` for more) on the command line"),
            ),
            ("profiles", Value::Table(profiles)) => {
                found.push(Respelling::new(
                    path(old, &["profiles"]),
                    Some(path(new, &["profile"])),
                    value,
                ));
                for (name, profile) in profiles {
                    if let Value::Table(profile) = profile {
                        shared(
                            profile,
                            &path(old, &["profiles", name]),
                            &path(new, &["profile", name]),
                            sections,
                            found,
                        );
                    }
                }
            }
            ("profile", Value::Table(profiles)) => {
                for (name, profile) in profiles {
                    if let Value::Table(profile) = profile {
                        shared(
                            profile,
                            &path(old, &["profile", name]),
                            &path(new, &["profile", name]),
                            sections,
                            found,
                        );
                    }
                }
            }
            (name, Value::Table(inner)) => {
                if let Some(section) = sections.get(name) {
                    section_keys(
                        section,
                        inner,
                        &path(old, &[name]),
                        &path(new, &[name]),
                        found,
                    );
                }
            }
            _ => {}
        }
    }
}

/// A plugin's section written inside another table (`[runner.qemu]`, `[bootloader.limine]`):
/// the table moves, and the keys inside it are respelled by the plugin's own declarations.
fn moved_section(
    table: &Table,
    old: Vec<String>,
    new: Vec<String>,
    sections: &Sections,
    found: &mut Vec<Respelling>,
) {
    let mut moved = Respelling::new(old.clone(), Some(new.clone()), &Value::Table(table.clone()));
    moved.section = true;
    found.push(moved);
    if let Some(section) = new.last().and_then(|name| sections.get(name)) {
        section_keys(section, table, &old, &new, found);
    }
}

/// The old keys a plugin declared, in its section's `table`.
fn section_keys(
    section: &super::Section,
    table: &Table,
    old: &[String],
    new: &[String],
    found: &mut Vec<Respelling>,
) {
    for (key, value) in table {
        let Some(declared) = section
            .old_keys()
            .iter()
            .find(|o| o.key() == key && o.matches(value))
        else {
            continue;
        };
        let converted = declared.converted(value);
        found.push(Respelling {
            old: path(old, &[key]),
            new: declared.new_key().map(|n| path(new, &[n])),
            changed: converted.as_ref() != Some(value),
            value: converted,
            hint: declared.hint_text().to_owned(),
            accepted: declared.is_accepted(),
            section: false,
        });
    }
}

/// The 0.5 environment variables that are not config keys of the same name now, as the 0.5
/// key each one set.
const OLD_ENV: &[(&str, &[&str])] = &[
    ("BOOT_TYPE", &["boot", "type"]),
    ("KVM", &["runner", "qemu", "kvm"]),
    ("SERIAL_MODE", &["runner", "qemu", "serial", "mode"]),
    ("VERBOSE", &["verbose"]),
];

/// For a 0.5 environment variable `<prefix><rest>` set to `value`: the end of a message
/// "environment variable X is cargo-image-runner 0.5's ..." naming the new variable.
pub(crate) fn env_message(
    prefix: &str,
    rest: &str,
    value: &str,
    sections: &Sections,
) -> Option<String> {
    if let Some(name) = rest.strip_prefix("VAR_")
        && !name.is_empty()
        && sections.get("var").is_none()
    {
        return Some(format!(
            "name for the template variable `{name}`; use {prefix}VARIABLES_{name}={value}"
        ));
    }
    let (_, keys) = OLD_ENV.iter().find(|(old, _)| *old == rest)?;
    let old_value = match *keys {
        ["runner", "qemu", "kvm"] | ["verbose"] => Value::Boolean(matches!(
            value.to_ascii_lowercase().as_str(),
            "1" | "true" | "yes"
        )),
        ["boot", "type"] => Value::String(value.to_ascii_lowercase()),
        _ => Value::String(value.to_owned()),
    };
    let mut table = Table::new();
    let mut slot = &mut table;
    for (i, key) in keys.iter().enumerate() {
        if i + 1 == keys.len() {
            slot.insert((*key).to_owned(), old_value.clone());
        } else {
            slot = match slot
                .entry((*key).to_owned())
                .or_insert_with(|| Value::Table(Table::new()))
            {
                Value::Table(t) => t,
                _ => return None,
            };
        }
    }
    let old_name = show_key(&keys.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>());
    // The innermost finding says where the value goes now.
    let finding = respellings(&table, sections)
        .into_iter()
        .filter(|r| !r.section)
        .max_by_key(|r| r.old.len())?;
    let what = match (&finding.new, &finding.value) {
        (None, _) => finding.hint.clone(),
        (Some(new), Some(v)) => {
            let shown = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let hint = if finding.hint.is_empty() {
                String::new()
            } else {
                format!(" ({})", finding.hint)
            };
            format!("use {}={shown}{hint}", env_name(prefix, new))
        }
        (Some(new), None) => format!("use {} ({})", env_name(prefix, new), finding.hint),
    };
    Some(format!("name for {old_name}; {what}"))
}

/// `CARGO_IMAGE_RUNNER_QEMU_ACCEL` for `qemu.accel`.
fn env_name(prefix: &str, path: &[String]) -> String {
    format!(
        "{prefix}{}",
        path.join("_").to_ascii_uppercase().replace('-', "_")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(text: &str) -> Vec<Respelling> {
        respellings(&text.parse::<Table>().unwrap(), &Sections::new())
    }

    #[test]
    fn shared_keys_of_0_5_and_their_new_spelling() {
        let found = find(
            "verbose = true\n[boot]\ntype = \"uefi\"\n[image]\nformat = \"iso\"\nvolume_label = \"OS\"\n[test]\nextra-args = [\"-s\"]\n",
        );
        let messages: Vec<String> = found.iter().map(Respelling::message).collect();
        assert_eq!(
            messages,
            [
                "`[boot] type` is cargo-image-runner 0.5's spelling; write `boot = \"uefi\"`",
                "`[image] format` is cargo-image-runner 0.5's spelling; write `format = \"iso\"`",
                "`[image] volume_label` is cargo-image-runner 0.5's spelling; write `[image] label = \"OS\"`",
                "`[test] extra-args` is cargo-image-runner 0.5's spelling; write `[test] args = [\"-s\"]`",
                "`verbose` is cargo-image-runner 0.5's spelling; nothing replaces it: pass `-v` (`-vv` for more) on the command line",
            ]
        );
    }

    #[test]
    fn new_spellings_are_not_findings() {
        assert_eq!(
            find(
                "boot = \"uefi\"\nbootloader = \"limine\"\nrunner = \"qemu\"\nformat = \"iso\"\n[image]\nlabel = \"X\"\n[test]\nargs = []\n[profile.ci.test]\ntimeout = 3\n"
            ),
            []
        );
    }

    #[test]
    fn profiles_move_and_their_contents_are_respelled() {
        let found = find("[profiles.ci.boot]\ntype = \"bios\"\n");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].old, ["profiles"]);
        assert_eq!(found[0].new.as_deref(), Some(&["profile".to_owned()][..]));
        assert_eq!(found[1].old, ["profiles", "ci", "boot", "type"]);
        assert_eq!(
            found[1].message(),
            "`[profiles.ci.boot] type` is cargo-image-runner 0.5's spelling; write `[profile.ci] boot = \"bios\"`"
        );
    }

    #[test]
    fn the_config_file_goes_to_the_bootloader_named_by_kind() {
        let found = find("[bootloader]\nkind = \"grub\"\nconfig-file = \"grub.cfg\"\n");
        let config = found.iter().find(|r| r.old[1] == "config-file").unwrap();
        assert_eq!(
            config.message(),
            "`[bootloader] config-file` is cargo-image-runner 0.5's spelling; write `[grub] config = \"grub.cfg\"`"
        );
    }

    const P: &str = "CARGO_IMAGE_RUNNER_";

    #[test]
    fn environment_variables_of_0_5() {
        let sections = Sections::new();
        assert_eq!(
            env_message(P, "BOOT_TYPE", "UEFI", &sections).unwrap(),
            "name for `[boot] type`; use CARGO_IMAGE_RUNNER_BOOT=uefi"
        );
        assert_eq!(
            env_message(P, "VAR_X", "1", &sections).unwrap(),
            "name for the template variable `X`; use CARGO_IMAGE_RUNNER_VARIABLES_X=1"
        );
        assert!(env_message(P, "QEMU_MEMORY", "1024", &sections).is_none());
        assert!(env_message(P, "TEST_TIMEOUT", "5", &sections).is_none());
    }
}
