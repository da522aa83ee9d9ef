//! `config` output: every resolved key as `key = value`, with the source that set it.

use std::collections::BTreeMap;

use image_runner_core::config::Variables;
use image_runner_core::context::Project;
use image_runner_core::{Config, Error};

/// Renders `config` and the plugin `sections` as dotted `key = value  # source` lines.
pub fn render(
    config: &Config,
    sections: &BTreeMap<String, toml::Table>,
    origins: &BTreeMap<String, String>,
) -> Result<String, Error> {
    let mut table = toml::Table::try_from(config)
        .map_err(|e| Error::Config(format!("could not render the config: {e}")))?;
    for (name, section) in sections {
        table.insert(name.clone(), toml::Value::Table(section.clone()));
    }
    let mut lines = Vec::new();
    flatten(&table, "", &mut lines);
    let lines: Vec<String> = lines
        .into_iter()
        .map(|(key, value)| format!("{key} = {value}"))
        .collect();
    // The sources line up after the longest ordinary line; a longer one (a long path, a
    // long list) keeps its source two spaces after it instead of widening every line.
    let width = lines
        .iter()
        .map(|l| l.chars().count())
        .filter(|&n| n <= ALIGN_AT_MOST)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for line in lines {
        let key = line.split(" = ").next().unwrap_or_default();
        let origin = origins
            .iter()
            .filter(|(k, _)| key == k.as_str() || key.starts_with(&format!("{k}.")))
            .max_by_key(|(k, _)| k.len())
            .map_or("default", |(_, o)| o.as_str());
        let pad = width.saturating_sub(line.chars().count());
        out.push_str(&line);
        out.extend(std::iter::repeat_n(' ', pad));
        out.push_str("  # ");
        out.push_str(origin);
        out.push('\n');
    }
    Ok(out)
}

/// Lines up to this many characters have their sources aligned.
const ALIGN_AT_MOST: usize = 72;

fn flatten(table: &toml::Table, prefix: &str, out: &mut Vec<(String, String)>) {
    for (key, value) in table {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) if !inner.is_empty() => flatten(inner, &dotted, out),
            other => out.push((dotted, other.to_string())),
        }
    }
}

/// Template variables for a `config` call without an executable: the executable-dependent
/// ones show as placeholders.
pub fn placeholder_variables(project: &Project) -> Variables {
    let mut vars = Variables::new();
    vars.set("EXECUTABLE", "<executable>");
    vars.set("EXECUTABLE_NAME", "<executable-name>");
    vars.set("WORKSPACE_ROOT", project.workspace_root.to_string_lossy());
    vars.set("MANIFEST_DIR", project.manifest_dir.to_string_lossy());
    vars.set(
        "OUTPUT_DIR",
        project
            .target_dir
            .join("image-runner/<executable's path in the target directory>")
            .to_string_lossy(),
    );
    vars.set("IS_TEST", "false");
    vars.set("ARGS", "");
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_very_long_value_neither_panics_nor_widens_the_other_lines() {
        let config = Config::default();
        let mut section = toml::Table::new();
        section.insert("long".into(), toml::Value::String("x".repeat(70_000)));
        section.insert("short".into(), toml::Value::Integer(1));
        let sections = BTreeMap::from([("zz".to_owned(), section)]);
        let origins = BTreeMap::from([("zz.long".to_owned(), "Cargo.toml".to_owned())]);
        let out = render(&config, &sections, &origins).expect("rendered");
        let long = out
            .lines()
            .find(|l| l.starts_with("zz.long = "))
            .expect("the long line");
        assert!(
            long.ends_with("\"  # Cargo.toml"),
            "{}",
            &long[long.len() - 40..]
        );
        let short = out
            .lines()
            .find(|l| l.starts_with("zz.short = "))
            .expect("the short line");
        assert!(
            short.len() < 100,
            "padded to the long value's width: {} chars",
            short.len()
        );
        assert!(short.ends_with("  # default"), "{short}");
    }
}
