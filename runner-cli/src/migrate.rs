//! `cargo-image-runner migrate`: rewrites a configuration written for cargo-image-runner 0.5 in
//! place. The old spellings are the ones the config checks report ([`respellings`]: the core's
//! table for the shared keys, each plugin's declarations for its section); the file is edited
//! with `toml_edit`, so everything else in it (comments, order, formatting, other tables) stays
//! as it was.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use image_runner_core::config::{ConfigLayers, LayerKind, Respelling, Sections, respellings};
use image_runner_core::context::Project;
use image_runner_core::{Error, exit_code};
use toml_edit::{DocumentMut, Item, Key, Value};

use crate::args::MigrateArgs;

/// The result of rewriting one file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The new text (equal to the old one when nothing was to be done).
    pub text: String,
    /// What the user should know: keys removed, values left alone and why.
    pub notes: Vec<String>,
}

/// Rewrites the old spellings in the image-runner tables at `roots` of `text` (each root a key
/// path: `["package", "metadata", "image-runner"]`, or `[]` for an `image-runner.toml`).
pub fn migrate_text(
    text: &str,
    roots: &[&[&str]],
    sections: &Sections,
) -> Result<Migration, String> {
    let plain: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| e.to_string())?;
    let mut notes = Vec::new();
    let mut changed = false;
    for root in roots {
        let Some(table) = lookup(&plain, root) else {
            continue;
        };
        let found = respellings(table, sections);
        if found.is_empty() {
            continue;
        }
        let label = if root.is_empty() {
            String::new()
        } else {
            format!("[{}] ", root.join("."))
        };
        let Some(item) = item_at(doc.as_item_mut(), root) else {
            continue;
        };
        let before = notes.len();
        changed |= rewrite(item, &found, &mut notes);
        notes.extend(defaults_that_changed(table));
        for note in &mut notes[before..] {
            note.insert_str(0, &label);
        }
    }
    let new_text = if changed {
        let new_text = doc.to_string();
        // Keys removed from the top leave the blank line that separated them from what follows.
        if text.starts_with(['\n', '\r']) {
            new_text
        } else {
            new_text.trim_start_matches(['\n', '\r']).to_owned()
        }
    } else {
        text.to_owned()
    };
    Ok(Migration {
        text: new_text,
        notes,
    })
}

fn lookup<'t>(table: &'t toml::Table, path: &[&str]) -> Option<&'t toml::Table> {
    match path.split_first() {
        None => Some(table),
        Some((first, rest)) => match table.get(*first)? {
            toml::Value::Table(inner) => lookup(inner, rest),
            _ => None,
        },
    }
}

/// 0.5 defaults that differ now, for a table written for 0.5: worth a note when the user did
/// not set them.
fn defaults_that_changed(table: &toml::Table) -> Vec<String> {
    let mut notes = Vec::new();
    let boot_set = table.get("boot").is_some();
    if !boot_set {
        notes.push("0.5 booted by UEFI when `[boot] type` was not set; now `boot = \"auto\"` boots EFI applications by UEFI and other kernels by BIOS: add `boot = \"uefi\"` to keep UEFI".to_owned());
    }
    let bootloader = match table.get("bootloader") {
        Some(toml::Value::Table(t)) => t.get("kind").and_then(toml::Value::as_str),
        Some(other) => other.as_str(),
        None => None,
    };
    let format_set = table.get("format").is_some()
        || matches!(table.get("image"), Some(toml::Value::Table(t)) if t.contains_key("format"));
    if bootloader.is_some_and(|b| b != "none") && !format_set {
        notes.push("0.5 wrote a `directory` image when `[image] format` was not set; now `format = \"auto\"` writes a FAT image for UEFI and an ISO for BIOS: add `format = \"directory\"` to keep the folder".to_owned());
    }
    notes
}

fn item_at<'a, S: AsRef<str>>(item: &'a mut Item, path: &[S]) -> Option<&'a mut Item> {
    match path.split_first() {
        None => Some(item),
        Some((key, rest)) => item_at(item.as_table_like_mut()?.get_mut(key.as_ref())?, rest),
    }
}

fn is_table_like(item: &Item) -> bool {
    item.as_table_like().is_some()
}

/// `new` is `old` moved into one of its own ancestors (`boot.type` → `boot`).
fn is_hoist(r: &Respelling) -> bool {
    r.new
        .as_ref()
        .is_some_and(|new| new.len() < r.old.len() && r.old.starts_with(new))
}

/// Applies `found` to the image-runner table `root`; true when anything changed.
fn rewrite(root: &mut Item, found: &[Respelling], notes: &mut Vec<String>) -> bool {
    // Tables move before the keys inside them and before keys moving into them; a key moves
    // up into its own parent's place only once the parent holds nothing else.
    let mut order: Vec<&Respelling> = found.iter().collect();
    order.sort_by_key(|r| {
        let is_table = !r.changed && r.value.as_ref().is_some_and(toml::Value::is_table);
        (is_hoist(r), r.old.len(), !is_table)
    });
    let mut moved: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    // Tables a key left, removed at the end if nothing else came to them.
    let mut left: Vec<Vec<String>> = Vec::new();
    let mut changed = false;
    for r in order {
        let old = translate(&r.old, &moved);
        if item_at(root, &old).is_none() {
            continue;
        }
        let Some(new) = &r.new else {
            take(root, &old, old.len());
            left.push(old[..old.len() - 1].to_vec());
            changed = true;
            notes.push(format!(
                "removed {} (nothing replaces it): {}",
                show(&r.old),
                r.hint
            ));
            continue;
        };
        let Some(value) = &r.value else {
            notes.push(format!("left {} alone: {}", show(&r.old), r.message()));
            continue;
        };
        if !fits(root, &old, new) {
            notes.push(format!(
                "left {} alone: {} is set already; merge the two by hand",
                show(&r.old),
                show(new)
            ));
            continue;
        }
        // The new item is made before the old one is taken, so a failure changes nothing.
        let replacement = match (r.changed, item_at(root, &old)) {
            (true, Some(item)) => match converted(value, item) {
                Some(item) => Some(item),
                None => {
                    notes.push(format!(
                        "left {} alone: {value} cannot be written in TOML here",
                        show(&r.old)
                    ));
                    continue;
                }
            },
            _ => None,
        };
        // A key moving up into its parent's place empties the tables in between at once, and
        // takes the place of the outermost one.
        let hoist = old.starts_with(new);
        let keep = if hoist {
            new.len()
        } else {
            left.push(old[..old.len() - 1].to_vec());
            old.len()
        };
        let same_table = old.len() == new.len() && old[..old.len() - 1] == new[..new.len() - 1];
        let index = if hoist {
            position_in_parent(root, &old[..new.len()])
        } else if same_table {
            position_in_parent(root, &old)
        } else {
            None
        };
        // Spacing written for an inline table does not fit a table, and the other way round.
        let keep_spacing = inline_parent(root, &old) == inline_parent(root, new);
        let Some((key, taken, comments)) = take(root, &old, keep) else {
            continue;
        };
        let old_kind = key_kind(&taken);
        let mut item = replacement.unwrap_or(taken);
        let mut new_key = Key::new(new.last().cloned().unwrap_or_default());
        if key_kind(&item) == old_kind && keep_spacing {
            new_key = new_key.with_leaf_decor(key.leaf_decor().clone());
        }
        if !keep_spacing && let Some(value) = item.as_value_mut() {
            value.decor_mut().clear();
        }
        if !comments.is_empty() && !key_kind(&item) {
            // The comments above a table that went away now sit above the key that replaced it.
            let prefix = new_key
                .leaf_decor()
                .prefix()
                .and_then(|p| p.as_str())
                .unwrap_or("")
                .to_owned();
            new_key
                .leaf_decor_mut()
                .set_prefix(format!("{comments}{prefix}"));
        }
        // A key renamed in its own table keeps its place there.
        match index {
            Some(index) if item_at(root, new).is_none() => {
                put_at(root, new, new_key, item, index);
            }
            _ => put(root, new, new_key, item),
        }
        moved.push((r.old.clone(), new.clone()));
        changed = true;
        if r.changed && !r.hint.is_empty() {
            let written = show(new);
            notes.push(format!(
                "rewrote {} as {} = {value}`: {}",
                show(&r.old),
                written.trim_end_matches('`'),
                r.hint
            ));
        }
    }
    left.sort_by_key(|path| std::cmp::Reverse(path.len()));
    for path in left {
        let emptied = item_at(root, &path)
            .and_then(|i| i.as_table_like())
            .is_some_and(|t| t.is_empty());
        if emptied
            && let Some((name, above)) = path.split_last()
            && let Some(parent) = item_at(root, above).and_then(Item::as_table_like_mut)
        {
            parent.remove(name);
        }
    }
    changed
}

/// Whether the key at `path` is (or would be) written in an inline table: its parent, or the
/// nearest ancestor that exists, is one.
fn inline_parent(root: &mut Item, path: &[String]) -> bool {
    (0..path.len())
        .rev()
        .find_map(|depth| item_at(root, &path[..depth]).map(|item| item.is_inline_table()))
        .unwrap_or(false)
}

/// The index of the key at `path` among its table's entries.
fn position_in_parent(root: &mut Item, path: &[String]) -> Option<usize> {
    let (last, parent) = path.split_last()?;
    item_at(root, parent)?
        .as_table_like()?
        .iter()
        .position(|(k, _)| k == last)
}

/// Inserts `item` under `key` in the existing table at `path`'s parent, as its `index`th entry.
fn put_at(root: &mut Item, path: &[String], key: Key, item: Item, index: usize) {
    let Some((_, parent)) = path.split_last() else {
        return;
    };
    match item_at(root, parent) {
        Some(Item::Table(table)) => {
            let after: Vec<String> = table
                .iter()
                .skip(index)
                .map(|(k, _)| k.to_owned())
                .collect();
            let rest: Vec<(Key, Item)> =
                after.iter().filter_map(|k| table.remove_entry(k)).collect();
            table.insert_formatted(&key, item);
            for (k, v) in rest {
                table.insert_formatted(&k, v);
            }
        }
        Some(Item::Value(Value::InlineTable(table))) => {
            let Ok(value) = item.into_value() else {
                return;
            };
            let after: Vec<String> = table
                .iter()
                .skip(index)
                .map(|(k, _)| k.to_owned())
                .collect();
            let rest: Vec<(Key, Value)> =
                after.iter().filter_map(|k| table.remove_entry(k)).collect();
            table.insert_formatted(&key, value);
            for (k, v) in rest {
                table.insert_formatted(&k, v);
            }
        }
        _ => {}
    }
}

/// Whether an item is written as a table header (a key's formatting fits only its own kind).
fn key_kind(item: &Item) -> bool {
    item.is_table()
}

/// `path` after the moves so far (a key inside a moved table moved with it).
fn translate(path: &[String], moved: &[(Vec<String>, Vec<String>)]) -> Vec<String> {
    moved
        .iter()
        .filter(|(old, _)| old.len() < path.len() && path.starts_with(old))
        .max_by_key(|(old, _)| old.len())
        .map_or_else(
            || path.to_vec(),
            |(old, new)| new.iter().chain(&path[old.len()..]).cloned().collect(),
        )
}

fn show(path: &[String]) -> String {
    match path.split_last() {
        Some((last, [])) => format!("`{last}`"),
        Some((last, parent)) => format!("`[{}] {last}`", parent.join(".")),
        None => "the table".to_owned(),
    }
}

/// Whether the item at `old` can be written at `new`: nothing is there, or the table there
/// holds nothing but the way to `old` (it empties when `old` leaves), or both are tables
/// whose keys do not collide.
fn fits(root: &mut Item, old: &[String], new: &[String]) -> bool {
    // Every table on the way that exists must be a table (`qemu = "x"` cannot take a key).
    let blocked = (1..new.len())
        .any(|depth| item_at(root, &new[..depth]).is_some_and(|item| !is_table_like(item)));
    if blocked {
        return false;
    }
    if old.starts_with(new) {
        return item_at(root, new).is_some_and(|there| only_holds(there, &old[new.len()..]));
    }
    let moving_keys: Option<Vec<String>> = item_at(root, old)
        .and_then(|i| i.as_table_like())
        .map(|t| t.iter().map(|(k, _)| k.to_owned()).collect());
    match (item_at(root, new), moving_keys) {
        (None, _) => true,
        (Some(there), Some(keys)) => there
            .as_table_like()
            .is_some_and(|t| keys.iter().all(|k| !t.contains_key(k))),
        (Some(_), None) => false,
    }
}

/// `item` is a chain of tables holding exactly `path` and nothing else.
fn only_holds(item: &Item, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return true;
    };
    let Some(table) = item.as_table_like() else {
        return false;
    };
    table.len() == 1
        && table
            .get(first)
            .is_some_and(|inner| rest.is_empty() || only_holds(inner, rest))
}

/// Removes the key at `path` (with its formatting), and the tables on the way deeper than
/// `keep` that it leaves empty; also returns the comment lines written above those tables.
fn take(root: &mut Item, path: &[String], keep: usize) -> Option<(Key, Item, String)> {
    let (last, parent_path) = path.split_last()?;
    let parent = item_at(root, parent_path)?.as_table_like_mut()?;
    let key = parent.key(last)?.clone();
    let item = parent.remove(last)?;
    let mut comments = String::new();
    for depth in (keep.max(1)..=parent_path.len()).rev() {
        let (name, above) = parent_path[..depth].split_last()?;
        let emptied = item_at(root, &parent_path[..depth])
            .and_then(|i| i.as_table_like())
            .is_some_and(|t| t.is_empty());
        if !emptied {
            break;
        }
        if let Some(Item::Table(table)) = item_at(root, above)?.as_table_like_mut()?.remove(name) {
            let prefix = table
                .decor()
                .prefix()
                .and_then(|p| p.as_str())
                .unwrap_or("");
            let lines: String = prefix
                .lines()
                .filter(|l| l.trim_start().starts_with('#'))
                .map(|l| format!("{}\n", l.trim_start()))
                .collect();
            comments.insert_str(0, &lines);
        }
    }
    Some((key, item, comments))
}

/// Writes `item` at `path` under `key`, creating the tables on the way; a table meeting a table
/// is merged into it key by key.
fn put(root: &mut Item, path: &[String], key: Key, item: Item) {
    let Some((_, parent_path)) = path.split_last() else {
        return;
    };
    let mut at = root;
    for name in parent_path {
        let inline = at.is_inline_table();
        let Some(table) = at.as_table_like_mut() else {
            return;
        };
        if !table.contains_key(name) {
            let fresh = if inline {
                Item::Value(Value::InlineTable(toml_edit::InlineTable::new()))
            } else {
                let mut t = toml_edit::Table::new();
                t.set_implicit(true);
                Item::Table(t)
            };
            table.insert(name, fresh);
        }
        let Some(next) = table.get_mut(name) else {
            return;
        };
        at = next;
    }
    if let Some(there) = at.as_table_like_mut().and_then(|t| t.get_mut(key.get()))
        && is_table_like(there)
        && is_table_like(&item)
    {
        let inline = there.is_inline_table();
        if let (Some(target), Some(source)) = (there.as_table_like_mut(), item.as_table_like()) {
            for (k, v) in source.iter() {
                if !target.contains_key(k) {
                    let v = if inline {
                        match v.clone().into_value() {
                            Ok(value) => Item::Value(value),
                            Err(_) => continue,
                        }
                    } else {
                        v.clone()
                    };
                    target.insert(k, v);
                }
            }
        }
        return;
    }
    match at {
        Item::Table(table) => {
            table.insert_formatted(&key, item);
        }
        Item::Value(Value::InlineTable(table)) => {
            if let Ok(value) = item.into_value() {
                table.insert_formatted(&key, value);
            }
        }
        _ => {}
    }
}

/// The new value as an item, keeping the old value's comments and spacing.
fn converted(value: &toml::Value, old: &Item) -> Option<Item> {
    let mut new: Value = value.to_string().parse().ok()?;
    if let Some(old) = old.as_value() {
        *new.decor_mut() = old.decor().clone();
    }
    Some(Item::Value(new))
}

/// Runs the `migrate` subcommand.
pub fn run(args: &MigrateArgs, inv: &image_runner_core::Invocation) -> Result<i32, Error> {
    let project = Project::discover(inv, None)?;
    let sections = crate::plugins::registry().sections();
    let package = project.manifest_dir.join("Cargo.toml");
    let workspace = project.workspace_root.join("Cargo.toml");
    const PACKAGE: &[&str] = &["package", "metadata", "image-runner"];
    const WORKSPACE: &[&str] = &["workspace", "metadata", "image-runner"];
    let mut files: Vec<(PathBuf, Vec<&[&str]>)> = Vec::new();
    if workspace != package && workspace.is_file() {
        files.push((workspace, vec![WORKSPACE]));
        files.push((package, vec![PACKAGE]));
    } else {
        files.push((package, vec![WORKSPACE, PACKAGE]));
    }
    files.push((project.manifest_dir.join("image-runner.toml"), vec![&[]]));

    let mut problems = 0;
    let mut rewritten = 0;
    for (path, roots) in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let migration = migrate_text(&text, &roots, &sections)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        if migration.text == text {
            continue;
        }
        rewritten += 1;
        print!(
            "{}",
            unified_diff(&text, &migration.text, &path.display().to_string())
        );
        for note in &migration.notes {
            eprintln!("note: {}: {note}", path.display());
        }
        if let Err(e) = check(&path, &migration.text, &roots, &sections) {
            problems += 1;
            eprintln!("error: after migrating, {e}");
        }
        if args.dry_run {
            eprintln!("   Would rewrite {} (--dry-run)", path.display());
        } else {
            write_keeping_permissions(&path, &migration.text)?;
            eprintln!("   Rewrote {}", path.display());
        }
    }
    if rewritten == 0 {
        eprintln!(
            "   Nothing to migrate: no cargo-image-runner 0.5 spellings in {}",
            project.manifest_dir.display()
        );
    }
    Ok(if problems == 0 {
        exit_code::SUCCESS
    } else {
        exit_code::RUNNER_ERROR
    })
}

/// Loads the migrated text as the runner would.
fn check(path: &Path, text: &str, roots: &[&[&str]], sections: &Sections) -> Result<(), Error> {
    let mut layers = ConfigLayers::new(sections);
    for root in roots {
        match root.first() {
            Some(&"workspace") => {
                layers.add_manifest_str(path, text, LayerKind::WorkspaceMetadata)?
            }
            Some(_) => layers.add_manifest_str(path, text, LayerKind::PackageMetadata)?,
            None => layers.add_file_str(path, text)?,
        }
    }
    Ok(())
}

/// Replaces `path` atomically (a symlink's target), with the permissions it had.
fn write_keeping_permissions(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    let target = std::fs::canonicalize(path).map_err(|e| Error::io("resolve", path, e))?;
    let permissions = std::fs::metadata(&target)
        .map_err(|e| Error::io("read the metadata of", &target, e))?
        .permissions();
    image_runner_core::fs::write_atomic(&target, |file, temp| {
        file.write_all(text.as_bytes())
            .and_then(|()| file.set_permissions(permissions))
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("write", temp, e))
    })
}

/// A unified diff of two texts, three lines of context, headed by `label`.
pub fn unified_diff(old: &str, new: &str, label: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = diff_lines(&a, &b);
    let mut out = format!("--- {label}\n+++ {label} (migrated)\n");
    const CONTEXT: usize = 3;
    let changes: Vec<usize> = (0..ops.len())
        .filter(|&i| !matches!(ops[i], Op::Same(..)))
        .collect();
    let mut i = 0;
    while i < changes.len() {
        let start = changes[i].saturating_sub(CONTEXT);
        let mut end = changes[i];
        while i < changes.len() && changes[i] <= end + 2 * CONTEXT {
            end = changes[i];
            i += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let (old_start, new_start) = hunk
            .iter()
            .map(|op| op.positions())
            .next()
            .unwrap_or((0, 0));
        let old_len = hunk
            .iter()
            .filter(|op| !matches!(op, Op::Added(..)))
            .count();
        let new_len = hunk
            .iter()
            .filter(|op| !matches!(op, Op::Removed(..)))
            .count();
        let _ = writeln!(
            out,
            "@@ -{},{old_len} +{},{new_len} @@",
            old_start + usize::from(old_len > 0),
            new_start + usize::from(new_len > 0)
        );
        for op in hunk {
            let _ = match op {
                Op::Same(i, _) => writeln!(out, " {}", a[*i]),
                Op::Removed(i, _) => writeln!(out, "-{}", a[*i]),
                Op::Added(_, j) => writeln!(out, "+{}", b[*j]),
            };
        }
    }
    out
}

/// One line of the edit script, with the number of old and new lines before it.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Line `a[i]` equals `b[j]`.
    Same(usize, usize),
    /// `a[i]` is gone (`j` new lines came before).
    Removed(usize, usize),
    /// `b[j]` is new (`i` old lines came before).
    Added(usize, usize),
}

impl Op {
    fn positions(&self) -> (usize, usize) {
        match *self {
            Op::Same(i, j) | Op::Removed(i, j) | Op::Added(i, j) => (i, j),
        }
    }
}

/// A shortest edit script by longest common subsequence, after the common head and tail.
fn diff_lines(a: &[&str], b: &[&str]) -> Vec<Op> {
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut ops: Vec<Op> = (0..head).map(|i| Op::Same(i, i)).collect();
    // lcs[i][j]: length of the LCS of ma[i..] and mb[j..].
    let width = mb.len() + 1;
    if ma.len().saturating_mul(mb.len()) <= 16_000_000 {
        let mut lcs = vec![0u32; (ma.len() + 1) * width];
        for i in (0..ma.len()).rev() {
            for j in (0..mb.len()).rev() {
                lcs[i * width + j] = if ma[i] == mb[j] {
                    lcs[(i + 1) * width + j + 1] + 1
                } else {
                    lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < ma.len() || j < mb.len() {
            if i < ma.len() && j < mb.len() && ma[i] == mb[j] {
                ops.push(Op::Same(head + i, head + j));
                i += 1;
                j += 1;
            } else if i < ma.len()
                && (j == mb.len() || lcs[(i + 1) * width + j] >= lcs[i * width + j + 1])
            {
                ops.push(Op::Removed(head + i, head + j));
                i += 1;
            } else {
                ops.push(Op::Added(head + i, head + j));
                j += 1;
            }
        }
    } else {
        ops.extend((0..ma.len()).map(|i| Op::Removed(head + i, head)));
        ops.extend((0..mb.len()).map(|j| Op::Added(head + ma.len(), head + j)));
    }
    let (ta, tb) = (a.len() - tail, b.len() - tail);
    ops.extend((0..tail).map(|k| Op::Same(ta + k, tb + k)));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGE: &[&str] = &["package", "metadata", "image-runner"];

    fn migrate(text: &str, roots: &[&[&str]]) -> Migration {
        migrate_text(text, roots, &crate::plugins::registry().sections()).unwrap()
    }

    #[test]
    fn inline_tables_and_dotted_keys() {
        let m = migrate(
            "boot = { type = \"uefi\" }\nrunner.qemu.kvm = false\nrunner.qemu.cores = 2\n",
            &[&[]],
        );
        assert_eq!(
            m.text,
            "boot = \"uefi\"\nqemu.accel = \"tcg\"\nqemu.cores = 2\n"
        );
    }

    #[test]
    fn a_key_set_both_ways_is_left_for_the_user() {
        let m = migrate(
            "[qemu]\ncores = 2\n\n[runner.qemu]\ncores = 4\nmemory = 1024\n",
            &[&[]],
        );
        assert_eq!(
            m.text,
            "[qemu]\ncores = 2\nmemory = \"1024M\"\n\n[runner.qemu]\ncores = 4\n"
        );
        assert!(
            m.notes
                .iter()
                .any(|n| n.contains("left `[runner] qemu` alone") && n.contains("by hand")),
            "{:?}",
            m.notes
        );
    }

    #[test]
    fn only_the_image_runner_tables_are_touched() {
        let text = "[package]\nname = \"k\"\n[package.metadata.other.boot]\ntype = \"uefi\"\n";
        assert_eq!(migrate(text, &[PACKAGE]).text, text);
        let text = "[package]\nname = \"k\"\n";
        let m = migrate(text, &[PACKAGE]);
        assert_eq!(m.text, text);
        assert!(m.notes.is_empty());
    }

    #[test]
    fn the_bootloader_config_file_joins_the_bootloader_section() {
        let m = migrate(
            "[bootloader]\nkind = \"grub\"\nconfig-file = \"grub.cfg\"\n\n[bootloader.grub]\nmodules = [\"echo\"]\n",
            &[&[]],
        );
        assert_eq!(
            m.text,
            "bootloader = \"grub\"\n\n[grub]\nextra-modules = [\"echo\"]\nconfig = \"grub.cfg\"\n"
        );
    }

    #[test]
    fn nothing_is_lost_when_the_new_place_is_taken_by_a_value() {
        let text = "qemu = \"x\"\n[run]\ngui = true\n";
        let m = migrate(text, &[&[]]);
        assert_eq!(m.text, text);
        assert!(
            m.notes.iter().any(|n| n.contains("left `[run] gui` alone")),
            "{:?}",
            m.notes
        );
    }

    /// Any mix of 0.5 keys, written as TOML tables, migrates to a file that loads, and a second
    /// migration changes nothing.
    #[test]
    fn every_mix_of_old_keys_migrates_to_a_config_that_loads() {
        let old: &[(&str, &str)] = &[
            ("boot.type", "\"uefi\""),
            ("bootloader.kind", "\"grub\""),
            ("bootloader.config-file", "\"grub.cfg\""),
            ("bootloader.grub.modules", "[\"echo\"]"),
            ("image.format", "\"iso\""),
            ("image.volume_label", "\"X\""),
            ("image.output", "\"x.iso\""),
            ("runner.kind", "\"qemu\""),
            ("runner.qemu.memory", "1024"),
            ("runner.qemu.kvm", "false"),
            ("runner.qemu.extra_args", "[\"-s\"]"),
            ("runner.qemu.serial.mode", "\"mon:stdio\""),
            ("test.extra-args", "[\"-s\"]"),
            ("test.timeout", "5"),
            ("run.gui", "true"),
            ("run.extra-args", "[]"),
            ("verbose", "true"),
            ("variables.X", "\"1\""),
            ("profiles.ci.runner.qemu.kvm", "true"),
            ("profiles.ci.boot.type", "\"bios\""),
        ];
        let sections = crate::plugins::registry().sections();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..1500 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let mut table = toml::Table::new();
            for (bit, (key, value)) in old.iter().enumerate() {
                if (seed >> (bit + 20)) & 1 == 1 {
                    let mut slot = &mut table;
                    let parts: Vec<&str> = key.split('.').collect();
                    for part in &parts[..parts.len() - 1] {
                        slot = slot
                            .entry(*part)
                            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                            .as_table_mut()
                            .unwrap();
                    }
                    let value: toml::Value =
                        format!("v = {value}").parse::<toml::Table>().unwrap()["v"].clone();
                    slot.insert(parts[parts.len() - 1].to_owned(), value);
                }
            }
            // Alternate between table headers and inline/dotted forms.
            let text = if round % 2 == 0 {
                toml::to_string(&table).unwrap()
            } else {
                table.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
            };
            let m = migrate_text(&text, &[&[]], &sections).unwrap();
            let mut layers = ConfigLayers::new(&sections);
            if let Err(e) = layers.add_file_str(Path::new("image-runner.toml"), &m.text) {
                panic!(
                    "{text}\n---- migrated to ----\n{}\n---- which fails: {e}",
                    m.text
                );
            }
            let again = migrate_text(&m.text, &[&[]], &sections).unwrap();
            assert_eq!(
                again.text, m.text,
                "a second migration changed:\n{}",
                m.text
            );
        }
    }

    #[test]
    fn unified_diff_of_a_change_in_the_middle() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\ni\nj\n";
        assert_eq!(
            unified_diff(old, new, "f"),
            "--- f\n+++ f (migrated)\n@@ -2,8 +2,9 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n i\n+j\n"
        );
        assert_eq!(
            unified_diff("a\n", "", "f"),
            "--- f\n+++ f (migrated)\n@@ -1,1 +0,0 @@\n-a\n"
        );
    }
}
