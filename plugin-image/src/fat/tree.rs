//! The staged files as a directory tree, after the checks a FAT volume needs on names.

use std::collections::{BTreeMap, HashMap};

use image_runner_core::{Error, ImagePath, Source, Staging};

use super::layout::Content;

/// A directory of the image; the root has the empty path.
#[derive(Debug, Default)]
pub(super) struct Dir<'a> {
    pub(super) path: String,
    pub(super) entries: BTreeMap<&'a str, Entry<'a>>,
}

#[derive(Debug)]
pub(super) enum Entry<'a> {
    Dir(Dir<'a>),
    File(File<'a>),
}

#[derive(Debug)]
pub(super) struct File<'a> {
    pub(super) path: &'a ImagePath,
    pub(super) source: &'a Source,
    pub(super) len: u64,
}

/// The largest file FAT can hold: sizes are 32-bit.
const MAX_FILE_SIZE: u64 = u32::MAX as u64;

/// Builds the tree, refusing names a FAT volume cannot hold and paths that FAT's case-insensitive
/// lookup would merge.
pub(super) fn build(staging: &Staging) -> Result<Dir<'_>, Error> {
    let mut root = Dir::default();
    // Upper-cased path → the path as staged, for every file and directory.
    let mut folded: HashMap<String, String> = HashMap::new();
    for (path, source) in &staging.entries {
        let parts: Vec<&str> = path.components().collect();
        for (i, part) in parts.iter().enumerate() {
            check_name(part).map_err(|reason| Error::BadImagePath {
                path: path.to_string(),
                reason,
            })?;
            let prefix = parts[..=i].join("/");
            // fatfs matches names by comparing `char::to_uppercase` of both, so the same
            // folding here catches every pair it would treat as one entry.
            let key = prefix.to_uppercase();
            match folded.get(&key) {
                Some(other) if *other != prefix => {
                    return Err(Error::BadImagePath {
                        path: format!("/{prefix}"),
                        reason: format!(
                            "`/{other}` is staged too, and FAT names ignore case, so both \
                             would be the same entry; rename one of them"
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    folded.insert(key, prefix);
                }
            }
        }
        let len = source.len()?;
        if len > MAX_FILE_SIZE {
            return Err(Error::BadImagePath {
                path: path.to_string(),
                reason: format!(
                    "it is {len} bytes, and a FAT file holds at most {MAX_FILE_SIZE} bytes"
                ),
            });
        }
        root.insert(&parts, File { path, source, len })?;
    }
    Ok(root)
}

impl<'a> Dir<'a> {
    /// Adds `file` at `parts` below this directory. [`Staging::add`] already refuses a path
    /// that is both a file and a directory, but its entries can be filled directly too.
    fn insert(&mut self, parts: &[&'a str], file: File<'a>) -> Result<(), Error> {
        match parts {
            [] => Ok(()),
            [name] => match self.entries.get(name) {
                Some(_) => Err(Error::StagingConflict {
                    path: file.path.to_string(),
                    other: join_path(&self.path, name),
                }),
                None => {
                    self.entries.insert(name, Entry::File(file));
                    Ok(())
                }
            },
            [name, rest @ ..] => {
                let path = join_path(&self.path, name);
                let entry = self.entries.entry(name).or_insert_with(|| {
                    Entry::Dir(Dir {
                        path: path.trim_start_matches('/').to_owned(),
                        entries: BTreeMap::new(),
                    })
                });
                match entry {
                    Entry::Dir(dir) => dir.insert(rest, file),
                    Entry::File(_) => Err(Error::StagingConflict {
                        path: file.path.to_string(),
                        other: path,
                    }),
                }
            }
        }
    }

    /// What the tree occupies: file sizes and directory entry counts (see [`Content`]). The root
    /// always counts a volume label entry, so that sizes do not depend on whether one is set.
    pub(super) fn content(&self) -> Content {
        let mut content = Content {
            root_entries: self.raw_entries() + 1,
            ..Content::default()
        };
        self.collect(&mut content);
        content
    }

    /// Raw 32-byte entries fatfs writes for this directory's children.
    fn raw_entries(&self) -> u64 {
        self.entries.keys().map(|name| raw_entries_for(name)).sum()
    }

    fn collect(&self, content: &mut Content) {
        for entry in self.entries.values() {
            match entry {
                Entry::File(file) => content.file_sizes.push(file.len),
                Entry::Dir(dir) => {
                    // fatfs writes `.` and `..` like any other name: one long-name entry and
                    // one short entry each (the long-name ones are removed afterwards, but the
                    // directory has grown to hold them by then).
                    content.subdir_entries.push(4 + dir.raw_entries());
                    dir.collect(content);
                }
            }
        }
    }
}

/// fatfs stores every name as long-name entries (13 UTF-16 units each) plus a short entry, even
/// names that would fit 8.3.
fn raw_entries_for(name: &str) -> u64 {
    1 + (name.encode_utf16().count() as u64).div_ceil(13)
}

fn join_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        format!("/{name}")
    } else {
        format!("/{parent}/{name}")
    }
}

/// Why `name` cannot be a FAT long name, if it cannot.
fn check_name(name: &str) -> Result<(), String> {
    const FORBIDDEN: &str = "\"*/:<>?\\|";
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(*c)) {
        return Err(format!(
            "`{c}` cannot be part of a FAT file name (none of {FORBIDDEN} can)"
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "control character U+{:04X} cannot be part of a FAT file name",
            u32::from(c)
        ));
    }
    let units = name.encode_utf16().count();
    if units > 255 {
        return Err(format!(
            "`{name}` is {units} UTF-16 code units long, and a FAT name holds at most 255"
        ));
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Err(format!(
            "`{name}` ends with a dot or a space, which FAT readers strip, so the file could not \
             be opened under this name"
        ));
    }
    // Limits of fatfs 0.3.6 rather than of FAT: it refuses characters outside the Basic
    // Multilingual Plane and counts its 255-character limit in UTF-8 bytes.
    if let Some(c) = name.chars().find(|c| u32::from(*c) > 0xFFFF) {
        return Err(format!(
            "`{c}` (U+{:X}) lies outside the Basic Multilingual Plane, which the FAT writer \
             (fatfs 0.3) cannot store",
            u32::from(c)
        ));
    }
    if name.len() > 255 {
        return Err(format!(
            "`{name}` is {} bytes long in UTF-8, and the FAT writer (fatfs 0.3) stores at most \
             255",
            name.len()
        ));
    }
    Ok(())
}
