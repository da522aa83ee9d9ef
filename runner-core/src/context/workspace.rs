//! Which workspace a package belongs to, by cargo's rules, without starting cargo (a
//! `cargo locate-project` costs about 0.1 s, and the runner starts many times an hour).
//!
//! Cargo's rules, as implemented here:
//! - a manifest with a `[workspace]` table is its own root;
//! - `package.workspace = "PATH"` names the root;
//! - otherwise the nearest ancestor manifest with a `[workspace]` table that does not exclude
//!   the package (`exclude` entries are path prefixes; an explicit `members` entry wins over
//!   them), or the nearest ancestor whose `package.workspace` points at a root;
//! - the package must then be a member of that workspace: the root package, a directory that
//!   a `members` glob names, or a path dependency (transitively, from the members) inside the
//!   root directory. Cargo refuses to build a package that is not; the runner then takes the
//!   package as its own workspace, so no other workspace's settings apply to it.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use toml::Table;

/// The workspace root directory of the package in `package_dir`.
///
/// A folder without a `Cargo.toml` (a library caller's current directory, say) is taken as
/// part of the nearest package above it, as cargo does for the directory it runs in.
pub(crate) fn root_of(package_dir: &Path) -> PathBuf {
    let Some(own) = read_manifest(package_dir) else {
        return package_dir
            .ancestors()
            .skip(1)
            .find(|dir| dir.join("Cargo.toml").is_file())
            .map_or_else(|| package_dir.to_path_buf(), root_of);
    };
    if own.contains_key("workspace") {
        return package_dir.to_path_buf();
    }
    let root = match pointer(&own) {
        Some(to) => Some(normalize(&package_dir.join(to))),
        None => search_ancestors(package_dir),
    };
    match root {
        Some(root) if is_member(&root, package_dir) => root,
        _ => package_dir.to_path_buf(),
    }
}

/// `package.workspace`, the path from a member to its root.
fn pointer(manifest: &Table) -> Option<&str> {
    manifest.get("package")?.get("workspace")?.as_str()
}

fn read_manifest(dir: &Path) -> Option<Table> {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .ok()?
        .parse()
        .ok()
}

fn workspace_table(manifest: &Table) -> Option<&Table> {
    manifest.get("workspace")?.as_table()
}

fn strings<'t>(table: &'t Table, key: &str) -> impl Iterator<Item = &'t str> {
    table
        .get(key)
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(toml::Value::as_str)
}

/// The nearest ancestor that claims the package: a root that does not exclude it, or a
/// member pointing at its root.
fn search_ancestors(package_dir: &Path) -> Option<PathBuf> {
    for dir in package_dir.ancestors().skip(1) {
        // Cargo never looks past the folder `cargo package` unpacks into.
        if dir.ends_with("target/package") {
            return None;
        }
        let Some(manifest) = read_manifest(dir) else {
            continue;
        };
        if let Some(workspace) = workspace_table(&manifest) {
            if !is_excluded(workspace, dir, package_dir) {
                return Some(dir.to_path_buf());
            }
        } else if let Some(to) = pointer(&manifest) {
            return Some(normalize(&dir.join(to)));
        }
    }
    None
}

/// Cargo's exclusion test: under an `exclude` entry and under no `members` entry (both taken
/// as plain path prefixes).
fn is_excluded(workspace: &Table, root: &Path, package_dir: &Path) -> bool {
    let manifest = package_dir.join("Cargo.toml");
    let under = |entry: &str| manifest.starts_with(root.join(entry));
    !strings(workspace, "members").any(under) && strings(workspace, "exclude").any(under)
}

/// Whether the workspace rooted at `root` has the package in `package_dir` as a member.
fn is_member(root: &Path, package_dir: &Path) -> bool {
    let root = &normalize(root);
    let package_dir = normalize(package_dir);
    if package_dir == *root {
        return true;
    }
    let Some(root_manifest) = read_manifest(root) else {
        return false;
    };
    let Some(workspace) = workspace_table(&root_manifest) else {
        return false;
    };
    if is_excluded(workspace, root, &package_dir) {
        return false;
    }
    let patterns: Vec<PathBuf> = strings(workspace, "members")
        .map(|m| normalize(&root.join(m)))
        .collect();
    if patterns.iter().any(|p| glob_matches(p, &package_dir)) {
        return true;
    }
    // Path dependencies of members inside the root are members too.
    let mut queue: Vec<PathBuf> = patterns.iter().flat_map(|p| glob_expand(p)).collect();
    if root_manifest.contains_key("package") {
        queue.push(root.to_path_buf());
    }
    let mut seen = BTreeSet::new();
    while let Some(dir) = queue.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let Some(manifest) = read_manifest(&dir) else {
            continue;
        };
        for dep in path_dependencies(&manifest, &dir, &root_manifest, root) {
            if !dep.starts_with(root) || is_excluded(workspace, root, &dep) {
                continue;
            }
            if dep == package_dir {
                return true;
            }
            queue.push(dep);
        }
    }
    false
}

/// The directories of a manifest's path dependencies of every kind and target, with
/// `workspace = true` entries taken from the root's `[workspace.dependencies]`.
fn path_dependencies(
    manifest: &Table,
    dir: &Path,
    root_manifest: &Table,
    root: &Path,
) -> Vec<PathBuf> {
    let inherited = root_manifest
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(toml::Value::as_table);
    let mut tables: Vec<&Table> = Vec::new();
    let kinds = [
        "dependencies",
        "dev-dependencies",
        "dev_dependencies",
        "build-dependencies",
        "build_dependencies",
    ];
    for kind in kinds {
        tables.extend(manifest.get(kind).and_then(toml::Value::as_table));
    }
    if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
        for target in targets.values() {
            for kind in kinds {
                tables.extend(target.get(kind).and_then(toml::Value::as_table));
            }
        }
    }
    let mut dirs = Vec::new();
    for (name, spec) in tables.into_iter().flatten() {
        let (base, spec) = if spec.get("workspace").and_then(toml::Value::as_bool) == Some(true) {
            let package = spec
                .get("package")
                .and_then(toml::Value::as_str)
                .unwrap_or(name);
            match inherited.and_then(|d| d.get(package).or_else(|| d.get(name))) {
                Some(spec) => (root, spec),
                None => continue,
            }
        } else {
            (dir, spec)
        };
        if let Some(path) = spec.get("path").and_then(toml::Value::as_str) {
            dirs.push(normalize(&base.join(path)));
        }
    }
    dirs
}

/// `path` with `.` and `..` resolved lexically (as cargo does for manifest paths).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether `path` matches the glob `pattern` component by component: `*`, `?` and `[...]`
/// within a component, `**` for any number of directories (the `glob` crate's rules, which
/// cargo uses for `members`).
fn glob_matches(pattern: &Path, path: &Path) -> bool {
    let pattern: Vec<String> = pattern
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let path: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    components_match(&pattern, &path)
}

fn components_match(pattern: &[String], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| components_match(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((name, path_rest)) => {
                wildcard(first.as_bytes(), name.as_bytes()) && components_match(rest, path_rest)
            }
            None => false,
        },
    }
}

/// One path component against one glob component.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| wildcard(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && wildcard(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().skip(1).position(|&b| b == b']').map(|i| i + 1) else {
                return name.first() == Some(&b'[') && wildcard(rest, &name[1..]);
            };
            let Some((&c, name_rest)) = name.split_first() else {
                return false;
            };
            let (negated, set) = match rest[..close].split_first() {
                Some((b'!', set)) => (true, set),
                _ => (false, &rest[..close]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negated && wildcard(&rest[close + 1..], name_rest)
        }
        Some((&b, rest)) => name.first() == Some(&b) && wildcard(rest, &name[1..]),
    }
}

fn has_wildcard(component: &str) -> bool {
    component.contains(['*', '?', '['])
}

/// The directories the glob `pattern` names on disk.
fn glob_expand(pattern: &Path) -> Vec<PathBuf> {
    let components: Vec<Component> = pattern.components().collect();
    let literal = components
        .iter()
        .take_while(|c| !has_wildcard(&c.as_os_str().to_string_lossy()))
        .count();
    let base: PathBuf = components[..literal].iter().collect();
    let rest: Vec<String> = components[literal..]
        .iter()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let mut found = Vec::new();
    expand_into(&base, &rest, &mut found);
    found
}

fn expand_into(dir: &Path, rest: &[String], found: &mut Vec<PathBuf>) {
    let Some((first, tail)) = rest.split_first() else {
        if dir.is_dir() {
            found.push(dir.to_path_buf());
        }
        return;
    };
    if !has_wildcard(first) {
        return expand_into(&dir.join(first), tail, found);
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subdirs: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    subdirs.sort();
    if first == "**" {
        expand_into(dir, tail, found);
        for (_, sub) in subdirs {
            expand_into(&sub, rest, found);
        }
        return;
    }
    for (name, sub) in subdirs {
        if wildcard(first.as_bytes(), name.as_bytes()) {
            expand_into(&sub, tail, found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_cargo_members() {
        let m = |p: &str, path: &str| glob_matches(Path::new(p), Path::new(path));
        assert!(m("/w/crates/*", "/w/crates/kernel"));
        assert!(!m("/w/crates/*", "/w/crates/a/kernel"));
        assert!(m("/w/**/k*", "/w/a/b/kernel"));
        assert!(m("/w/**/kernel", "/w/kernel"));
        assert!(m("/w/k?rnel", "/w/kernel"));
        assert!(m("/w/[jk]ernel", "/w/kernel"));
        assert!(!m("/w/[!k]ernel", "/w/kernel"));
        assert!(m("/w/[a-m]ernel", "/w/kernel"));
        assert!(!m("/w/kern", "/w/kernel"));
    }

    /// Writes `files` (path, text) under a fresh folder and returns it.
    fn layout(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    const PKG: &str = "[package]\nname = \"kernel\"\nversion = \"0.1.0\"\nedition = \"2021\"\n";

    fn package(name: &str, extra: &str) -> String {
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n{extra}")
    }

    /// What cargo itself says: the workspace root, or `None` when it refuses the package.
    fn cargo_says(package_dir: &Path) -> Option<PathBuf> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args([
                "locate-project",
                "--workspace",
                "--message-format",
                "plain",
                "--offline",
            ])
            .arg("--manifest-path")
            .arg(package_dir.join("Cargo.toml"))
            .output()
            .expect("run `cargo locate-project` (cargo runs these tests, so it is there)");
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8(out.stdout).ok()?;
        Some(Path::new(text.trim()).parent()?.to_path_buf())
    }

    /// Checks `root_of` against `expected` (relative to the layout, `None`: the package
    /// itself because cargo refuses it) and against cargo's own answer.
    #[track_caller]
    fn check(files: &[(&str, &str)], package: &str, expected: Option<&str>) {
        let dir = layout(files);
        let base = dir.path();
        let package_dir = base.join(package);
        let ours = root_of(&package_dir);
        let want = expected.map_or_else(|| package_dir.clone(), |e| normalize(&base.join(e)));
        assert_eq!(ours, want, "layout {files:?}, package {package}");
        if let Some(theirs) = cargo_says(&package_dir) {
            assert_eq!(
                ours, theirs,
                "cargo disagrees: layout {files:?}, package {package}"
            );
        } else {
            assert!(
                expected.is_none(),
                "cargo refuses a package we place in {expected:?}: {files:?}"
            );
        }
    }

    #[test]
    fn a_package_alone_is_its_own_root() {
        check(
            &[("k/Cargo.toml", PKG), ("k/src/main.rs", "")],
            "k",
            Some("k"),
        );
    }

    #[test]
    fn a_listed_member_belongs_to_the_parent_workspace() {
        let files = [
            ("Cargo.toml", "[workspace]\nmembers = [\"k\"]\n"),
            ("k/Cargo.toml", PKG),
            ("k/src/main.rs", ""),
        ];
        check(&files, "k", Some(""));
    }

    #[test]
    fn a_member_named_by_a_glob_belongs_to_the_parent_workspace() {
        let files = [
            ("Cargo.toml", "[workspace]\nmembers = [\"crates/*\"]\n"),
            ("crates/k/Cargo.toml", PKG),
            ("crates/k/src/main.rs", ""),
        ];
        check(&files, "crates/k", Some(""));
    }

    #[test]
    fn an_excluded_package_is_its_own_root() {
        let files = [
            (
                "Cargo.toml",
                "[workspace]\nmembers = [\"other\"]\nexclude = [\"k\"]\n",
            ),
            ("other/Cargo.toml", &package("other", "")),
            ("other/src/lib.rs", ""),
            ("k/Cargo.toml", PKG),
            ("k/src/main.rs", ""),
        ];
        check(&files, "k", Some("k"));
    }

    #[test]
    fn an_excluded_package_finds_the_workspace_above() {
        let files = [
            ("Cargo.toml", "[workspace]\nmembers = [\"mid/k\"]\n"),
            ("mid/Cargo.toml", "[workspace]\nexclude = [\"k\"]\n"),
            ("mid/k/Cargo.toml", PKG),
            ("mid/k/src/main.rs", ""),
        ];
        check(&files, "mid/k", Some(""));
    }

    #[test]
    fn a_package_the_parent_does_not_list_is_its_own_root() {
        // Cargo refuses to build it ("believes it's in a workspace when it's not"); the
        // parent's settings must not apply either way.
        let files = [
            ("Cargo.toml", "[workspace]\nmembers = [\"other\"]\n"),
            ("other/Cargo.toml", &package("other", "")),
            ("other/src/lib.rs", ""),
            ("k/Cargo.toml", PKG),
            ("k/src/main.rs", ""),
        ];
        check(&files, "k", None);
    }

    #[test]
    fn a_path_dependency_of_a_member_is_a_member() {
        let dep = package("app", "[dependencies]\nkernel = { path = \"../k\" }\n");
        let files = [
            ("Cargo.toml", "[workspace]\nmembers = [\"app\"]\n"),
            ("app/Cargo.toml", &dep),
            ("app/src/main.rs", ""),
            ("k/Cargo.toml", PKG),
            ("k/src/lib.rs", ""),
        ];
        check(&files, "k", Some(""));
        let inherited = package("app", "[dev-dependencies]\nkernel.workspace = true\n");
        let files = [
            (
                "Cargo.toml",
                "[workspace]\nmembers = [\"app\"]\n[workspace.dependencies]\nkernel = { path = \"k\" }\n",
            ),
            ("app/Cargo.toml", &inherited),
            ("app/src/main.rs", ""),
            ("k/Cargo.toml", PKG),
            ("k/src/lib.rs", ""),
        ];
        check(&files, "k", Some(""));
    }

    #[test]
    fn the_root_package_and_its_path_dependencies_are_members() {
        let root = package(
            "top",
            "[dependencies]\nkernel = { path = \"k\" }\n[workspace]\n",
        );
        let files = [
            ("Cargo.toml", root.as_str()),
            ("src/lib.rs", ""),
            ("k/Cargo.toml", PKG),
            ("k/src/lib.rs", ""),
        ];
        check(&files, "", Some(""));
        check(&files, "k", Some(""));
    }

    #[test]
    fn package_workspace_points_at_the_root() {
        let member = package("kernel", "workspace = \"../ws\"\n");
        let files = [
            ("ws/Cargo.toml", "[workspace]\nmembers = [\"../k\"]\n"),
            ("k/Cargo.toml", &member),
            ("k/src/main.rs", ""),
        ];
        check(&files, "k", Some("ws"));
    }

    #[test]
    fn a_folder_without_a_manifest_belongs_to_the_package_above() {
        let dir = layout(&[
            ("Cargo.toml", "[workspace]\nmembers = [\"k\"]\n"),
            ("k/Cargo.toml", PKG),
            ("k/src/main.rs", ""),
        ]);
        assert_eq!(root_of(&dir.path().join("k/src")), dir.path());
    }

    #[test]
    fn an_own_workspace_table_wins_over_the_parent() {
        let own = format!("{PKG}[workspace]\n");
        let files = [
            ("Cargo.toml", "[workspace]\nmembers = [\"k\"]\n"),
            ("k/Cargo.toml", &own),
            ("k/src/main.rs", ""),
        ];
        check(&files, "k", Some("k"));
    }
}
