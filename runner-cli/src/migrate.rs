//! `cargo-image-runner migrate`: rewrites a configuration written for cargo-image-runner 0.5 in
//! place. The old spellings are the ones the config checks report ([`respellings`]: the core's
//! table for the shared keys, each plugin's declarations for its section); the file is edited
//! with `toml_edit`, so everything else in it (comments, order, formatting, other tables, line
//! endings) stays as it was. What it cannot rewrite (the new place is taken, a value the config
//! refuses) it leaves, with a note saying why, and fails. A file is replaced atomically, or
//! written in place when it has other hard links; a read-only file is refused.

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
    /// How many old spellings were left as they were (a note says why for each): the user has
    /// to fix them by hand, even when the text did not change.
    pub left: usize,
}

/// Rewrites the old spellings in the image-runner tables at `roots` of `text` (each root a key
/// path: `["package", "metadata", "image-runner"]`, or `[]` for an `image-runner.toml`). The
/// text's line endings are kept: a line that did not change keeps its own, a new line gets the
/// file's most common one.
pub fn migrate_text(
    text: &str,
    roots: &[&[&str]],
    sections: &Sections,
) -> Result<Migration, String> {
    if !text.contains("\r\n") {
        return migrate_lf(text, roots, sections);
    }
    let lf = text.replace("\r\n", "\n");
    let mut migration = migrate_lf(&lf, roots, sections)?;
    migration.text = if migration.text == lf {
        text.to_owned()
    } else {
        with_line_endings_of(text, &migration.text)
    };
    Ok(migration)
}

/// `new` (lines ended by `\n`) with the line endings of `old`: each line the same as one of
/// `old` keeps that line's ending, other lines get `old`'s most common ending.
fn with_line_endings_of(old: &str, new: &str) -> String {
    let split = |text: &str| -> Vec<(String, &'static str)> {
        text.split_inclusive('\n')
            .map(|line| {
                if let Some(body) = line.strip_suffix("\r\n") {
                    (body.to_owned(), "\r\n")
                } else if let Some(body) = line.strip_suffix('\n') {
                    (body.to_owned(), "\n")
                } else {
                    (line.to_owned(), "")
                }
            })
            .collect()
    };
    let (old_lines, new_lines) = (split(old), split(new));
    let crlf = old_lines.iter().filter(|(_, end)| *end == "\r\n").count();
    let lf = old_lines.iter().filter(|(_, end)| *end == "\n").count();
    let common = if crlf >= lf { "\r\n" } else { "\n" };
    let a: Vec<&str> = old_lines.iter().map(|(body, _)| body.as_str()).collect();
    let b: Vec<&str> = new_lines.iter().map(|(body, _)| body.as_str()).collect();
    let mut out = String::with_capacity(new.len() + new_lines.len());
    for op in diff_lines(&a, &b) {
        let (j, kept) = match op {
            Op::Same(i, j) => (j, Some(old_lines[i].1)),
            Op::Added(_, j) => (j, None),
            Op::Removed(..) => continue,
        };
        let (body, end) = &new_lines[j];
        out.push_str(body);
        if !end.is_empty() {
            out.push_str(kept.filter(|k| !k.is_empty()).unwrap_or(common));
        }
    }
    out
}

/// [`migrate_text`] for a text whose lines end in `\n`.
fn migrate_lf(text: &str, roots: &[&[&str]], sections: &Sections) -> Result<Migration, String> {
    let plain: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| e.to_string())?;
    let mut notes = Vec::new();
    let mut changed = false;
    let mut left = 0;
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
        let found = refused_as_they_are(table, found, sections, &mut notes);
        left += notes.len() - before;
        let (did, unresolved) = rewrite(item, &found, &mut notes);
        changed |= did;
        left += unresolved;
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
        left,
    })
}

/// `found` without the rewrites that would turn a value the config refuses into one it takes:
/// an old spelling that still works (`accepted`) has its value checked at the new place as it
/// is, and when the section refuses it there, the value is left for the user with a note
/// (`[runner.qemu] memory = -1` must not become `memory = "-1M"`).
fn refused_as_they_are(
    table: &toml::Table,
    found: Vec<Respelling>,
    sections: &Sections,
    notes: &mut Vec<String>,
) -> Vec<Respelling> {
    found
        .into_iter()
        .filter(|r| {
            let Some(new) = r.new.as_deref().filter(|_| r.changed && r.accepted) else {
                return true;
            };
            let (Some((key, parent)), Some(old)) = (new.split_last(), value_at(table, &r.old))
            else {
                return true;
            };
            let Some(name) = parent.last().filter(|name| sections.get(name).is_some()) else {
                return true;
            };
            match refusal(name, key, old, sections) {
                None => true,
                Some(why) => {
                    notes.push(format!(
                        "left {} alone: {old} is refused at {} as it is ({why}), and rewriting it would hide that; fix the value by hand",
                        show(&r.old),
                        show(new),
                    ));
                    false
                }
            }
        })
        .collect()
}

/// Why plugin section `section` refuses `key = value`, if it does.
fn refusal(section: &str, key: &str, value: &toml::Value, sections: &Sections) -> Option<String> {
    let mut inner = toml::Table::new();
    inner.insert(key.to_owned(), value.clone());
    let mut outer = toml::Table::new();
    outer.insert(section.to_owned(), toml::Value::Table(inner));
    let text = toml::to_string(&outer).ok()?;
    const LABEL: &str = "value";
    let err = ConfigLayers::new(sections)
        .add_file_str(Path::new(LABEL), &text)
        .err()?
        .to_string();
    // `value:2:10: message` on the first line, the source line and a caret after it.
    let first = err.lines().next().unwrap_or_default();
    let message = first
        .strip_prefix(LABEL)
        .and_then(|rest| {
            let mut parts = rest.splitn(4, ':');
            let (_, line, column, message) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            let numbers = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            (numbers(line) && numbers(column)).then(|| message.trim())
        })
        .unwrap_or(first);
    Some(message.to_owned())
}

/// The value at `path` in `table`.
fn value_at<'t>(table: &'t toml::Table, path: &[String]) -> Option<&'t toml::Value> {
    let (last, parent) = path.split_last()?;
    let mut at = table;
    for key in parent {
        at = at.get(key)?.as_table()?;
    }
    at.get(last)
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

/// Applies `found` to the image-runner table `root`: whether anything changed, and how many
/// old spellings were left as they were (each with a note saying why).
fn rewrite(root: &mut Item, found: &[Respelling], notes: &mut Vec<String>) -> (bool, usize) {
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
    let mut unresolved = 0;
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
            unresolved += 1;
            continue;
        };
        if let Err(misfit) = fits(root, &old, new) {
            notes.push(format!(
                "left {} alone: {}",
                show(&r.old),
                misfit.reason(new, value)
            ));
            unresolved += 1;
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
                    unresolved += 1;
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
    (changed, unresolved)
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

/// Why the item at `old` cannot be written at `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Misfit {
    /// The table at this path, on the way to `new`, is a value.
    Value(Vec<String>),
    /// `new` is an ancestor of `old` and also holds these keys (paths from `new`), which would
    /// go when `old` takes its place.
    Holds(Vec<String>),
    /// Both are tables, and both set these keys.
    Collide(Vec<String>),
    /// Something else is set at `new`.
    Taken,
}

impl Misfit {
    /// The reason, for a note about moving `value` to `new`.
    fn reason(&self, new: &[String], value: &toml::Value) -> String {
        let table = format!("`[{}]`", new.join("."));
        match self {
            Misfit::Value(path) => format!(
                "{} is set to a value, so it cannot hold {}; merge the two by hand",
                show(path),
                show(new)
            ),
            Misfit::Holds(keys) => {
                let keys = listed(keys);
                let shown = value.to_string();
                let written = match new.last() {
                    Some(last) if shown.len() <= 60 && !shown.contains('\n') => {
                        format!(" (`{last} = {shown}`)")
                    }
                    _ => String::new(),
                };
                format!(
                    "{table} also holds {keys}, which migrate does not know where to put, and {} becomes a value{written}; move or remove {keys}, then run migrate again",
                    show(new)
                )
            }
            Misfit::Collide(keys) => format!(
                "{table} is there already and both set {}; merge the two by hand",
                listed(keys)
            ),
            Misfit::Taken => format!("{} is set already; merge the two by hand", show(new)),
        }
    }
}

/// `` `a` ``, `` `a` and `b` ``, `` `a`, `b` and `c` ``.
fn listed(keys: &[String]) -> String {
    let quoted: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Whether the item at `old` can be written at `new`: nothing is there, or the table there
/// holds nothing but the way to `old` (it empties when `old` leaves), or both are tables
/// whose keys do not collide; if not, why not.
fn fits(root: &mut Item, old: &[String], new: &[String]) -> Result<(), Misfit> {
    // Every table on the way that exists must be a table (`qemu = "x"` cannot take a key).
    if let Some(depth) = (1..new.len())
        .find(|&depth| item_at(root, &new[..depth]).is_some_and(|item| !is_table_like(item)))
    {
        return Err(Misfit::Value(new[..depth].to_vec()));
    }
    if old.starts_with(new) {
        let Some(there) = item_at(root, new) else {
            return Err(Misfit::Taken);
        };
        let mut others = Vec::new();
        others_than(there, &old[new.len()..], &mut Vec::new(), &mut others);
        return if others.is_empty() {
            Ok(())
        } else {
            Err(Misfit::Holds(others))
        };
    }
    let moving_keys: Option<Vec<String>> = item_at(root, old)
        .and_then(|i| i.as_table_like())
        .map(|t| t.iter().map(|(k, _)| k.to_owned()).collect());
    match (item_at(root, new), moving_keys) {
        (None, _) => Ok(()),
        (Some(there), Some(keys)) => match there.as_table_like() {
            Some(t) => {
                let both: Vec<String> = keys.into_iter().filter(|k| t.contains_key(k)).collect();
                if both.is_empty() {
                    Ok(())
                } else {
                    Err(Misfit::Collide(both))
                }
            }
            None => Err(Misfit::Taken),
        },
        (Some(_), None) => Err(Misfit::Taken),
    }
}

/// The keys in the chain of tables `item` other than the way along `path` (as dotted paths
/// from `item`, `at` the way so far).
fn others_than(item: &Item, path: &[String], at: &mut Vec<String>, others: &mut Vec<String>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(table) = item.as_table_like() else {
        return;
    };
    for (key, inner) in table.iter() {
        if key == first {
            if !rest.is_empty() {
                at.push(key.to_owned());
                others_than(inner, rest, at, others);
                at.pop();
            }
        } else {
            others.push(
                at.iter()
                    .map(String::as_str)
                    .chain([key])
                    .collect::<Vec<_>>()
                    .join("."),
            );
        }
    }
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
    let mut touched = 0;
    let mut to_write: Vec<(PathBuf, String)> = Vec::new();
    for (path, roots) in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let migration = migrate_text(&text, &roots, &sections)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let changed = migration.text != text;
        if !changed && migration.left == 0 {
            continue;
        }
        touched += 1;
        if changed {
            print!(
                "{}",
                unified_diff(&text, &migration.text, &path.display().to_string())
            );
        }
        // The notes matter most when nothing could be rewritten: they say why.
        for note in &migration.notes {
            eprintln!("note: {}: {note}", path.display());
        }
        if migration.left > 0 {
            problems += 1;
            eprintln!(
                "error: {}: {} old {} left as {} (the notes above say why); fix {} by hand, then run `cargo-image-runner migrate` again",
                path.display(),
                migration.left,
                if migration.left == 1 {
                    "spelling is"
                } else {
                    "spellings are"
                },
                if migration.left == 1 {
                    "it was"
                } else {
                    "they were"
                },
                if migration.left == 1 { "it" } else { "them" },
            );
        }
        if !changed {
            continue;
        }
        if let Err(e) = check(&path, &migration.text, &roots, &sections) {
            problems += 1;
            eprintln!("error: after migrating, {e}");
        }
        to_write.push((path, migration.text));
    }
    if touched == 0 {
        eprintln!(
            "   Nothing to migrate: no cargo-image-runner 0.5 spellings in {}",
            project.manifest_dir.display()
        );
    }
    if args.dry_run {
        for (path, _) in &to_write {
            eprintln!("   Would rewrite {} (--dry-run)", path.display());
        }
    } else {
        // Every file is checked before any is written: a refusal leaves all of them as they were.
        let targets = to_write
            .iter()
            .map(|(path, _)| writable(path))
            .collect::<Result<Vec<_>, Error>>()?;
        for ((path, text), target) in to_write.iter().zip(targets) {
            write_to(&target, text)?;
            eprintln!("   Rewrote {}", path.display());
        }
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

/// The file `path` leads to (a symlink's target), after making sure it may be written: a
/// read-only file, or one this user cannot write, is refused (replacing it, which the
/// directory's permissions would allow, would ignore what its own say).
fn writable(path: &Path) -> Result<Writable, Error> {
    let target = std::fs::canonicalize(path).map_err(|e| Error::io("resolve", path, e))?;
    let meta =
        std::fs::metadata(&target).map_err(|e| Error::io("read the metadata of", &target, e))?;
    let refused = || {
        Error::Config(format!(
            "{} is read-only, and migrate does not replace read-only files; make it writable (`chmod u+w`) and run migrate again (`migrate --dry-run` shows the changes without writing)",
            path.display()
        ))
    };
    if meta.permissions().readonly() {
        return Err(refused());
    }
    match std::fs::OpenOptions::new().write(true).open(&target) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Err(refused()),
        Err(e) => return Err(Error::io("open", &target, e)),
        Ok(_) => {}
    }
    #[cfg(unix)]
    let links = std::os::unix::fs::MetadataExt::nlink(&meta);
    #[cfg(not(unix))]
    let links = 1;
    Ok(Writable {
        target,
        permissions: meta.permissions(),
        links,
    })
}

/// A file [`writable`] let through.
#[derive(Debug)]
struct Writable {
    target: PathBuf,
    permissions: std::fs::Permissions,
    links: u64,
}

/// Writes `text` to the file: atomically (a new file renamed over it, with the permissions it
/// had), or in place when it has other hard links, which a new file would split from it.
fn write_to(file: &Writable, text: &str) -> Result<(), Error> {
    use std::io::Write;
    let target = &file.target;
    if file.links > 1 {
        let mut open = std::fs::OpenOptions::new()
            .write(true)
            .open(target)
            .map_err(|e| Error::io("open", target, e))?;
        return open
            .write_all(text.as_bytes())
            .and_then(|()| open.set_len(text.len() as u64))
            .and_then(|()| open.sync_all())
            .map_err(|e| Error::io("write", target, e));
    }
    let permissions = file.permissions.clone();
    image_runner_core::fs::write_atomic(target, |out, temp| {
        out.write_all(text.as_bytes())
            .and_then(|()| out.set_permissions(permissions))
            .and_then(|()| out.sync_all())
            .map_err(|e| Error::io("write", temp, e))
    })
}

/// Replaces the file `path` leads to with `text`, as `migrate` does: refused when it is
/// read-only, in place when it has other hard links, atomically otherwise.
#[cfg(test)]
fn write_keeping_permissions(path: &Path, text: &str) -> Result<(), Error> {
    write_to(&writable(path)?, text)
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

    /// How many old spellings the migration left for the user.
    fn left_alone(m: &Migration) -> usize {
        let noted = m.notes.iter().filter(|n| n.starts_with("left ")).count();
        assert_eq!(m.left, noted, "{:?}", m.notes);
        noted
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
    fn a_table_that_holds_unknown_keys_besides_the_old_one_is_named_as_the_reason() {
        let text = "[boot]\ntype = \"uefi\"\nfoo = 1\n";
        let m = migrate(text, &[&[]]);
        assert_eq!(m.text, text);
        assert_eq!(
            m.notes,
            [
                "left `[boot] type` alone: `[boot]` also holds `foo`, which migrate does not know where to put, and `boot` becomes a value (`boot = \"uefi\"`); move or remove `foo`, then run migrate again"
            ],
        );
        assert_eq!(left_alone(&m), 1);
    }

    #[test]
    fn what_is_left_for_the_user_is_counted_when_nothing_changed() {
        let text = "[qemu]\ncores = 2\n\n[runner.qemu]\ncores = 4\n\n[profile.ci.test]\ntimeout = 5\n\n[profiles.ci.test]\ntimeout = 9\n";
        let m = migrate(text, &[&[]]);
        assert_eq!(m.text, text);
        assert_eq!(left_alone(&m), 2, "{:?}", m.notes);
        assert!(
            m.notes.contains(&"left `[runner] qemu` alone: `[qemu]` is there already and both set `cores`; merge the two by hand".to_owned()),
            "{:?}",
            m.notes
        );
        assert!(
            m.notes.contains(&"left `profiles` alone: `[profile]` is there already and both set `ci`; merge the two by hand".to_owned()),
            "{:?}",
            m.notes
        );
    }

    #[test]
    fn crlf_line_endings_are_kept() {
        let m = migrate(
            "# kept\r\n[runner.qemu]\r\nkvm = false\r\ncores = 2\r\n\r\n[test]\r\ntimeout = 5\r\n",
            &[&[]],
        );
        assert_eq!(
            m.text,
            "# kept\r\n[qemu]\r\naccel = \"tcg\"\r\ncores = 2\r\n\r\n[test]\r\ntimeout = 5\r\n"
        );
        // A file of mixed endings keeps each unchanged line's own; new lines take the most
        // common one.
        let m = migrate(
            "a = 1\n[runner.qemu]\r\nkvm = false\r\ncores = 2\r\n",
            &[&[]],
        );
        assert_eq!(m.text, "a = 1\n[qemu]\r\naccel = \"tcg\"\r\ncores = 2\r\n");
    }

    #[test]
    fn a_value_the_section_refuses_is_not_converted_into_one_it_takes() {
        let m = migrate("[runner.qemu]\nmemory = -1\ncores = 2\n", &[&[]]);
        assert_eq!(m.text, "[qemu]\nmemory = -1\ncores = 2\n");
        assert_eq!(left_alone(&m), 1);
        assert!(
            m.notes.iter().any(|n| n.starts_with(
                "left `[runner.qemu] memory` alone: -1 is refused at `[qemu] memory` as it is ("
            ) && n.contains("-1 megabytes of memory")
                && n.ends_with("), and rewriting it would hide that; fix the value by hand")),
            "{:?}",
            m.notes
        );
        // A valid one is rewritten as before.
        let m = migrate("[runner.qemu]\nmemory = 512\n", &[&[]]);
        assert_eq!(m.text, "[qemu]\nmemory = \"512M\"\n");
    }

    #[cfg(unix)]
    #[test]
    fn a_hard_linked_file_is_rewritten_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Cargo.toml");
        let other = dir.path().join("other-link.toml");
        std::fs::write(&file, "old\n").unwrap();
        std::fs::hard_link(&file, &other).unwrap();
        let inode = std::fs::metadata(&file).unwrap().ino();
        write_keeping_permissions(&file, "new, and longer\n").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new, and longer\n");
        assert_eq!(
            std::fs::read_to_string(&other).unwrap(),
            "new, and longer\n"
        );
        assert_eq!(std::fs::metadata(&file).unwrap().ino(), inode);
        assert_eq!(std::fs::metadata(&file).unwrap().nlink(), 2);
        write_keeping_permissions(&other, "short\n").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "short\n");
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_file_is_refused_and_left_as_it_was() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Cargo.toml");
        std::fs::write(&file, "old\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
        let err = write_keeping_permissions(&file, "new\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{} is read-only, and migrate does not replace read-only files; make it writable (`chmod u+w`) and run migrate again (`migrate --dry-run` shows the changes without writing)",
                file.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "old\n");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o444
        );
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
