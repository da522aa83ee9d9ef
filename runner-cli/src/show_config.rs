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
    let width = lines
        .iter()
        .map(|(k, v)| k.len() + v.len() + 3)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in lines {
        let origin = origins
            .iter()
            .filter(|(k, _)| key == **k || key.starts_with(&format!("{k}.")))
            .max_by_key(|(k, _)| k.len())
            .map_or("default", |(_, o)| o.as_str());
        let line = format!("{key} = {value}");
        out.push_str(&format!("{line:width$}  # {origin}\n"));
    }
    Ok(out)
}

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
            .join("image-runner/<executable-stem>")
            .to_string_lossy(),
    );
    vars.set("IS_TEST", "false");
    vars.set("ARGS", "");
    vars
}
