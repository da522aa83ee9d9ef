//! Which plugin libraries an invocation asks for. They must be loaded before the config is
//! checked (their sections belong to them), so `plugins` is read here from each config source
//! on its own, before the layered config exists: every source's list (and the selected
//! profile's) adds up, each path relative to the file that names it; then `--plugin` paths,
//! relative to the current directory. A file that is not valid TOML is skipped here: the config
//! check that follows reports it with its position.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::context::{Invocation, Project};
use crate::error::Error;
use crate::registry::Registry;

/// One plugin library to load.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginRequest {
    /// The library (absolute).
    pub path: PathBuf,
    /// Its plugins replace plugins of the same kind and name.
    pub replace: bool,
    /// Where it was named, for errors (`/p/Cargo.toml`, `--plugin`).
    pub named_in: String,
}

/// The plugin libraries `inv` asks for, in order, each once.
pub fn requested(inv: &Invocation) -> Result<Vec<PluginRequest>, Error> {
    let mut found = Vec::new();
    let profile = inv
        .profile
        .clone()
        .or_else(|| inv.env.get("CARGO_IMAGE_RUNNER_PROFILE").cloned())
        .filter(|p| !p.is_empty());
    let project = Project::discover(inv, None).ok();
    if let Some(project) = &project {
        if inv.read_project_config {
            let root = project.workspace_root.join("Cargo.toml");
            let package = project.manifest_dir.join("Cargo.toml");
            let file = project.manifest_dir.join("image-runner.toml");
            for (path, section) in [
                (&root, Some("workspace")),
                (&package, Some("package")),
                (&file, None),
            ] {
                let Ok(text) = std::fs::read_to_string(path) else {
                    continue;
                };
                let Ok(table) = text.parse::<Table>() else {
                    continue;
                };
                let table = match section {
                    Some(section) => table
                        .get(section)
                        .and_then(|v| v.get("metadata"))
                        .and_then(|v| v.get("image-runner"))
                        .and_then(Value::as_table)
                        .cloned(),
                    None => Some(table),
                };
                if let Some(table) = table {
                    let base = path.parent().unwrap_or(Path::new("."));
                    entries(&table, profile.as_deref(), base, path, &mut found)?;
                }
            }
        }
        if let Some((label, text)) = &inv.config_text
            && let Ok(table) = text.parse::<Table>()
        {
            entries(
                &table,
                profile.as_deref(),
                &project.manifest_dir,
                Path::new(label),
                &mut found,
            )?;
        }
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    for path in &inv.plugins {
        add(
            &mut found,
            PluginRequest {
                path: cwd.join(path),
                replace: false,
                named_in: "`--plugin`".into(),
            },
        );
    }
    Ok(found)
}

/// `plugins` of `table` and of its profile `profile`.
fn entries(
    table: &Table,
    profile: Option<&str>,
    base: &Path,
    file: &Path,
    found: &mut Vec<PluginRequest>,
) -> Result<(), Error> {
    let mut lists = vec![(table.get("plugins"), String::new())];
    if let Some(name) = profile {
        let list = table
            .get("profile")
            .and_then(|p| p.get(name))
            .and_then(|p| p.get("plugins"));
        lists.push((list, format!(" (profile `{name}`)")));
    }
    for (list, note) in lists {
        let Some(list) = list else {
            continue;
        };
        let Value::Array(items) = list else {
            return Err(Error::Config(format!(
                "{}: `plugins`{note} must be a list, like `plugins = [\"libfoo.so\"]`; fix it",
                file.display()
            )));
        };
        for item in items {
            let bad = || {
                Error::Config(format!(
                    "{}: the `plugins` entry `{item}`{note} is neither a path nor a table like `{{ path = \"libfoo.so\", replace = true }}`; fix it",
                    file.display()
                ))
            };
            let (path, replace) = match item {
                Value::String(path) => (path.as_str(), false),
                Value::Table(t) if t.keys().any(|k| k != "path" && k != "replace") => {
                    return Err(bad());
                }
                Value::Table(t) => match (t.get("path"), t.get("replace")) {
                    (Some(Value::String(path)), None) => (path.as_str(), false),
                    (Some(Value::String(path)), Some(Value::Boolean(replace))) => {
                        (path.as_str(), *replace)
                    }
                    _ => return Err(bad()),
                },
                _ => return Err(bad()),
            };
            add(
                found,
                PluginRequest {
                    path: base.join(path),
                    replace,
                    named_in: format!("`plugins` of {}{note}", file.display()),
                },
            );
        }
    }
    Ok(())
}

/// `path` with `.` and `..` components resolved as written (`a/b/../c` → `a/c`).
fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Adds `request` unless the same library is there already (then `replace` adds up).
fn add(found: &mut Vec<PluginRequest>, mut request: PluginRequest) {
    request.path = tidy(&request.path);
    let same = |a: &Path, b: &Path| {
        a == b
            || matches!(
                (std::fs::canonicalize(a), std::fs::canonicalize(b)),
                (Ok(x), Ok(y)) if x == y
            )
    };
    match found.iter_mut().find(|r| same(&r.path, &request.path)) {
        Some(known) => known.replace |= request.replace,
        None => found.push(request),
    }
}

/// Loads every library `inv` asks for ([`requested`]) into `registry`.
pub fn load_requested(registry: &mut Registry, inv: &Invocation) -> Result<(), Error> {
    let from_env = inv
        .env
        .get("CARGO_IMAGE_RUNNER_PLUGINS")
        .map(|_| "environment variable CARGO_IMAGE_RUNNER_PLUGINS");
    let from_set = inv
        .overrides
        .iter()
        .find(|o| o.split('=').next().map(str::trim) == Some("plugins"))
        .map(|_| "`--set plugins=...`");
    if let Some(source) = from_env.or(from_set) {
        return Err(Error::Config(format!(
            "{source}: plugin libraries are loaded before the config is read, so `plugins` is only read from config files and their profiles; use `--plugin PATH` on the command line"
        )));
    }
    for request in requested(inv)? {
        super::load_library(registry, &request.path, request.replace, &request.named_in)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_names_paths_relative_to_itself_and_the_lists_add_up() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "Cargo.toml",
            "[workspace]\nmembers = [\"k\"]\n[workspace.metadata.image-runner]\nplugins = [\"libs/a.so\"]\n",
        );
        write(
            "k/Cargo.toml",
            "[package]\nname = \"k\"\nversion = \"0.1.0\"\n[package.metadata.image-runner]\nplugins = [\"b.so\", \"../libs/a.so\"]\n[package.metadata.image-runner.profile.ci]\nplugins = [\"ci/d.so\"]\n",
        );
        write(
            "k/image-runner.toml",
            "plugins = [{ path = \"c.so\", replace = true }]\n",
        );
        let mut inv = Invocation::with_env("", std::iter::empty());
        inv.manifest_dir = Some(root.join("k"));
        inv.plugins = vec![root.join("e.so")];
        let found = |inv: &Invocation| -> Vec<(PathBuf, bool)> {
            requested(inv)
                .unwrap()
                .into_iter()
                .map(|r| (r.path, r.replace))
                .collect()
        };
        assert_eq!(
            found(&inv),
            [
                (root.join("libs/a.so"), false),
                (root.join("k/b.so"), false),
                (root.join("k/c.so"), true),
                (root.join("e.so"), false),
            ]
        );
        inv.profile = Some("ci".into());
        assert_eq!(found(&inv)[2], (root.join("k/ci/d.so"), false));
        assert_eq!(found(&inv).len(), 5);
        inv.read_project_config = false;
        assert_eq!(found(&inv), [(root.join("e.so"), false)]);
    }
}
