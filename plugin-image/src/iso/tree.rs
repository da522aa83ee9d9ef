//! The directory tree of an ISO: nodes from the staging list, their ISO 9660 names (d-characters,
//! uppercase, unique per directory) and Joliet names, the orders both trees sort them in, and
//! the directory records (with Rock Ridge entries in the ISO 9660 tree).
//!
//! Trees deeper than ISO 9660's eight levels are written as they are, without Rock Ridge
//! directory relocation: Linux, libisofs and bootloaders read them.

use std::collections::{HashMap, HashSet};

use image_runner_core::{Error, ImagePath, Source, Staging};

use super::joliet;
use super::rock_ridge::{self as rr, S_IFDIR, S_IFREG};
use super::volume::{BLOCK, both16, both32};

/// The root directory's node.
pub(super) const ROOT: usize = 0;

/// Largest file written: ISO 9660 records sizes in 32 bits, and multi-extent files (level 3)
/// are not written.
pub(super) const MAX_FILE_SIZE: u64 = u32::MAX as u64;

/// Longest name Rock Ridge gives back (the POSIX `NAME_MAX` readers use).
const MAX_NAME_BYTES: usize = 255;

/// ISO 9660 level 2 limits: file name and extension together, and directory names.
const MAX_ISO_FILE: usize = 30;
const MAX_ISO_DIR: usize = 31;
/// When a name is too long, its extension keeps at most this many characters.
const MAX_ISO_EXTENSION: usize = 8;

#[derive(Debug)]
pub(super) struct Tree<'a> {
    /// All nodes; [`ROOT`] first, then in the order the staging list names them.
    pub(super) nodes: Vec<Node<'a>>,
    /// Directories in ISO 9660 path-table order (by level, then parent, then name).
    pub(super) iso_dirs: Vec<usize>,
    /// Directories in Joliet path-table order.
    pub(super) joliet_dirs: Vec<usize>,
}

#[derive(Debug)]
pub(super) struct Node<'a> {
    /// The original name (Rock Ridge NM); empty for the root.
    pub(super) name: &'a str,
    pub(super) parent: usize,
    /// The ISO 9660 identifier as recorded (files end in `;1`).
    pub(super) iso_id: Vec<u8>,
    /// The Joliet identifier as recorded (UCS-2 big-endian, files end in `;1`).
    pub(super) joliet_id: Vec<u8>,
    pub(super) kind: Kind<'a>,
}

#[derive(Debug)]
pub(super) enum Kind<'a> {
    Dir(Dir),
    File(File<'a>),
}

#[derive(Debug, Default)]
pub(super) struct Dir {
    /// Children in ISO 9660 record order.
    pub(super) iso_order: Vec<usize>,
    /// Children in Joliet record order.
    pub(super) joliet_order: Vec<usize>,
    pub(super) subdirs: u32,
}

#[derive(Debug)]
pub(super) struct File<'a> {
    pub(super) path: &'a ImagePath,
    pub(super) source: &'a Source,
    pub(super) len: u64,
    /// Permission bits for Rock Ridge: 0755 when the source file is executable, else 0644.
    pub(super) permissions: u32,
}

impl<'a> Tree<'a> {
    /// Builds the tree, refusing names no ISO reader could give back and files over 4 GiB.
    pub(super) fn build(staging: &'a Staging) -> Result<Self, Error> {
        let mut nodes = vec![Node {
            name: "",
            parent: ROOT,
            iso_id: vec![0],
            joliet_id: vec![0],
            kind: Kind::Dir(Dir::default()),
        }];
        let mut children: Vec<Vec<usize>> = vec![Vec::new()];
        let mut dirs: HashMap<(usize, &'a str), usize> = HashMap::new();
        for (path, source) in &staging.entries {
            let parts: Vec<&'a str> = path.components().collect();
            for part in &parts {
                check_name(part).map_err(|reason| Error::BadImagePath {
                    path: path.to_string(),
                    reason,
                })?;
            }
            let (file_name, dir_names) = parts.split_last().ok_or_else(|| Error::BadImagePath {
                path: path.to_string(),
                reason: "it is empty".into(),
            })?;
            let mut parent = ROOT;
            for name in dir_names {
                parent = match dirs.get(&(parent, *name)) {
                    Some(&dir) => dir,
                    None => {
                        let dir = nodes.len();
                        nodes.push(Node {
                            name,
                            parent,
                            iso_id: Vec::new(),
                            joliet_id: Vec::new(),
                            kind: Kind::Dir(Dir::default()),
                        });
                        children.push(Vec::new());
                        children[parent].push(dir);
                        dirs.insert((parent, *name), dir);
                        dir
                    }
                };
            }
            let (len, permissions) = measure(source)?;
            if len > MAX_FILE_SIZE {
                return Err(Error::BadImagePath {
                    path: path.to_string(),
                    reason: format!(
                        "it is {len} bytes, and an ISO 9660 file holds at most {MAX_FILE_SIZE} \
                         bytes here (files split into extents are not written); make it smaller \
                         or use another image format"
                    ),
                });
            }
            let file = nodes.len();
            nodes.push(Node {
                name: file_name,
                parent,
                iso_id: Vec::new(),
                joliet_id: Vec::new(),
                kind: Kind::File(File {
                    path,
                    source,
                    len,
                    permissions,
                }),
            });
            children.push(Vec::new());
            children[parent].push(file);
        }
        let mut tree = Tree {
            nodes,
            iso_dirs: Vec::new(),
            joliet_dirs: Vec::new(),
        };
        for (dir, kids) in children.iter().enumerate() {
            if !kids.is_empty() {
                tree.name_children(dir, kids);
            }
        }
        tree.iso_dirs = tree.breadth_first(|dir| &dir.iso_order);
        tree.joliet_dirs = tree.breadth_first(|dir| &dir.joliet_order);
        // Path tables number directories with 16 bits.
        if tree.iso_dirs.len() > usize::from(u16::MAX) {
            return Err(Error::plugin(
                "iso",
                format!(
                    "the staged files make {} directories, and an ISO 9660 path table numbers at \
                     most {}; stage fewer directories",
                    tree.iso_dirs.len(),
                    u16::MAX
                ),
            ));
        }
        Ok(tree)
    }

    /// Gives the children of `dir` their ISO 9660 and Joliet identifiers (unique in `dir`, the
    /// earlier original name keeping the plain form) and sorts them for both trees.
    fn name_children(&mut self, dir: usize, kids: &[usize]) {
        let mut by_name = kids.to_vec();
        by_name.sort_by(|&a, &b| self.nodes[a].name.cmp(self.nodes[b].name));
        let mut iso_used = HashSet::new();
        let mut joliet_used = HashSet::new();
        for &kid in &by_name {
            let is_dir = self.is_dir(kid);
            let name = self.nodes[kid].name;
            let iso = IsoName::new(name, is_dir);
            let (stem, extension) = (0..)
                .map(|n| iso.candidate(n))
                .find(|candidate| iso_used.insert(iso_clash_key(candidate)))
                .unwrap_or_default();
            let mut iso_id = stem;
            if !is_dir {
                iso_id.push(b'.');
                iso_id.extend_from_slice(&extension);
                iso_id.extend_from_slice(b";1");
            }
            let jname = joliet::Name::new(name, is_dir);
            let joliet_units = (0..)
                .map(|n| jname.candidate(n))
                .find(|candidate| joliet_used.insert(joliet::clash_key(candidate)))
                .unwrap_or_default();
            let node = &mut self.nodes[kid];
            node.iso_id = iso_id;
            node.joliet_id = joliet::record_id(&joliet_units, is_dir);
        }
        let mut iso_order = kids.to_vec();
        iso_order.sort_by(|&a, &b| {
            iso_sort_key(&self.nodes[a].iso_id).cmp(&iso_sort_key(&self.nodes[b].iso_id))
        });
        let mut joliet_order = kids.to_vec();
        joliet_order.sort_by(|&a, &b| {
            joliet_sort_key(&self.nodes[a].joliet_id).cmp(joliet_sort_key(&self.nodes[b].joliet_id))
        });
        let subdirs = kids.iter().filter(|&&k| self.is_dir(k)).count() as u32;
        if let Kind::Dir(d) = &mut self.nodes[dir].kind {
            *d = Dir {
                iso_order,
                joliet_order,
                subdirs,
            };
        }
    }

    /// Directories level by level, each level's in the order of their parents, siblings in
    /// the order `order` gives: the path-table order.
    fn breadth_first(&self, order: impl Fn(&Dir) -> &Vec<usize>) -> Vec<usize> {
        let mut out = vec![ROOT];
        let mut next = 0;
        while next < out.len() {
            if let Kind::Dir(dir) = &self.nodes[out[next]].kind {
                out.extend(order(dir).iter().copied().filter(|&k| self.is_dir(k)));
            }
            next += 1;
        }
        out
    }

    pub(super) fn is_dir(&self, node: usize) -> bool {
        matches!(self.nodes[node].kind, Kind::Dir(_))
    }

    pub(super) fn dir(&self, node: usize) -> Option<&Dir> {
        match &self.nodes[node].kind {
            Kind::Dir(dir) => Some(dir),
            Kind::File(_) => None,
        }
    }

    pub(super) fn file(&self, node: usize) -> Option<&File<'a>> {
        match &self.nodes[node].kind {
            Kind::File(file) => Some(file),
            Kind::Dir(_) => None,
        }
    }

    /// The node of a staged file.
    pub(super) fn find(&self, path: &ImagePath) -> Option<usize> {
        self.nodes
            .iter()
            .position(|node| matches!(&node.kind, Kind::File(f) if f.path == path))
    }

    /// Rock Ridge mode and link count.
    fn posix(&self, node: usize) -> (u32, u32) {
        match &self.nodes[node].kind {
            Kind::Dir(dir) => (S_IFDIR | 0o755, 2 + dir.subdirs),
            Kind::File(file) => (S_IFREG | file.permissions, 1),
        }
    }

    /// Whether a node's NM entries fit into its directory record.
    fn name_inline(&self, node: usize) -> bool {
        let n = &self.nodes[node];
        record_len(
            n.iso_id.len(),
            rr::PX_LEN + rr::TF_LEN + rr::nm_len(n.name.len()),
        ) <= 255
    }

    /// Places the Rock Ridge continuation areas: the ER entry, then the names too long for
    /// their directory records. No area crosses a block (readers load one block per area).
    pub(super) fn plan_continuations(&self) -> Continuations {
        let mut cursor = (0u32, 0u32);
        let mut place = |len: usize| {
            // Areas are at most 265 bytes.
            let len = len as u32;
            if cursor.1 + len > BLOCK as u32 {
                cursor = (cursor.0 + 1, 0);
            }
            let area = Area {
                block: cursor.0,
                offset: cursor.1,
                len,
            };
            cursor.1 += len;
            area
        };
        let er = place(rr::ER_LEN);
        let areas = (0..self.nodes.len())
            .map(|node| {
                (node != ROOT && !self.name_inline(node))
                    .then(|| place(rr::nm_len(self.nodes[node].name.len())))
            })
            .collect();
        Continuations {
            areas,
            er,
            blocks: cursor.0 + 1,
        }
    }

    /// The continuation blocks' content.
    pub(super) fn continuation_blocks(&self, plan: &Continuations) -> Vec<u8> {
        let mut out = vec![0u8; plan.blocks as usize * BLOCK];
        let mut put = |area: &Area, bytes: &[u8]| {
            let start = area.block as usize * BLOCK + area.offset as usize;
            out[start..start + bytes.len()].copy_from_slice(bytes);
        };
        let mut er = Vec::new();
        rr::er(&mut er);
        put(&plan.er, &er);
        for (node, area) in plan.areas.iter().enumerate() {
            if let Some(area) = area {
                let mut nm = Vec::new();
                rr::nm(&mut nm, self.nodes[node].name.as_bytes());
                put(area, &nm);
            }
        }
        out
    }

    /// The ISO 9660 directory `dir`, whole blocks, with Rock Ridge entries.
    pub(super) fn iso_directory(&self, dir: usize, at: &Addresses<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(d) = self.dir(dir) else {
            return out;
        };
        let parent = self.nodes[dir].parent;
        let mut su = Vec::new();
        if dir == ROOT {
            // SP must open the root's first record; ER is too long to sit beside it.
            rr::sp(&mut su);
            let er = &at.continuations.er;
            rr::ce(&mut su, at.continuation_base + er.block, er.offset, er.len);
        }
        let (mode, links) = self.posix(dir);
        rr::px(&mut su, mode, links);
        rr::tf(&mut su, at.date);
        append(&mut out, &record(at.iso[dir], true, &[0], &su, at.date));
        su.clear();
        let (mode, links) = self.posix(parent);
        rr::px(&mut su, mode, links);
        rr::tf(&mut su, at.date);
        append(&mut out, &record(at.iso[parent], true, &[1], &su, at.date));
        for &kid in &d.iso_order {
            su.clear();
            let (mode, links) = self.posix(kid);
            rr::px(&mut su, mode, links);
            rr::tf(&mut su, at.date);
            let node = &self.nodes[kid];
            match &at.continuations.areas[kid] {
                None => rr::nm(&mut su, node.name.as_bytes()),
                Some(area) => rr::ce(
                    &mut su,
                    at.continuation_base + area.block,
                    area.offset,
                    area.len,
                ),
            }
            let rec = record(at.iso[kid], self.is_dir(kid), &node.iso_id, &su, at.date);
            append(&mut out, &rec);
        }
        out.resize(out.len().next_multiple_of(BLOCK), 0);
        out
    }

    /// The Joliet directory `dir`, whole blocks.
    pub(super) fn joliet_directory(&self, dir: usize, at: &Addresses<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(d) = self.dir(dir) else {
            return out;
        };
        let parent = self.nodes[dir].parent;
        append(&mut out, &record(at.joliet[dir], true, &[0], &[], at.date));
        append(
            &mut out,
            &record(at.joliet[parent], true, &[1], &[], at.date),
        );
        for &kid in &d.joliet_order {
            let id = &self.nodes[kid].joliet_id;
            append(
                &mut out,
                &record(at.joliet[kid], self.is_dir(kid), id, &[], at.date),
            );
        }
        out.resize(out.len().next_multiple_of(BLOCK), 0);
        out
    }

    /// Directory identifiers and parent numbers in path-table order, for one tree.
    pub(super) fn path_entries(&self, joliet: bool) -> Vec<(&[u8], usize, u16)> {
        let order = if joliet {
            &self.joliet_dirs
        } else {
            &self.iso_dirs
        };
        let mut number = vec![0u16; self.nodes.len()];
        for (i, &dir) in order.iter().enumerate() {
            // At most 65535 directories (checked in `build`).
            number[dir] = (i + 1) as u16;
        }
        order
            .iter()
            .map(|&dir| {
                let node = &self.nodes[dir];
                let id: &[u8] = match (dir == ROOT, joliet) {
                    (true, _) => &[0],
                    (false, true) => &node.joliet_id,
                    (false, false) => &node.iso_id,
                };
                (id, dir, number[node.parent])
            })
            .collect()
    }
}

/// Where every node is, for writing directory records: per node, extent and length in each
/// tree (a file has the same in both), plus the Rock Ridge continuation areas.
#[derive(Debug)]
pub(super) struct Addresses<'c> {
    pub(super) iso: Vec<(u32, u32)>,
    pub(super) joliet: Vec<(u32, u32)>,
    pub(super) continuations: &'c Continuations,
    pub(super) continuation_base: u32,
    pub(super) date: [u8; 7],
}

/// The Rock Ridge continuation areas, blocks counted from the first continuation block.
#[derive(Debug)]
pub(super) struct Continuations {
    /// Per node: where its NM entries are, when not in its directory record.
    pub(super) areas: Vec<Option<Area>>,
    pub(super) er: Area,
    pub(super) blocks: u32,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Area {
    pub(super) block: u32,
    pub(super) offset: u32,
    pub(super) len: u32,
}

/// Length and permissions of a source; a missing file is an error naming it.
fn measure(source: &Source) -> Result<(u64, u32), Error> {
    match source {
        Source::File(path) => {
            let meta =
                std::fs::metadata(path).map_err(|e| Error::io("read the metadata of", path, e))?;
            if !meta.is_file() {
                return Err(Error::io(
                    "read",
                    path,
                    std::io::Error::other("it is not a regular file"),
                ));
            }
            Ok((meta.len(), permissions(&meta)))
        }
        other => Ok((other.len()?, 0o644)),
    }
}

#[cfg(unix)]
fn permissions(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

#[cfg(not(unix))]
fn permissions(_meta: &std::fs::Metadata) -> u32 {
    0o644
}

/// Refuses names that cannot be given back: control characters, more than 255 bytes.
fn check_name(name: &str) -> Result<(), String> {
    if name.chars().any(char::is_control) {
        return Err(format!(
            "its name `{}` has control characters, which ISO 9660, Joliet and Rock Ridge \
             readers do not accept; rename it",
            name.escape_debug()
        ));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "its name is {} bytes long, and Rock Ridge names are at most {MAX_NAME_BYTES} \
             bytes; shorten it",
            name.len()
        ));
    }
    Ok(())
}

/// A plain ISO 9660 name split for shortening: stem and extension in d-characters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IsoName {
    stem: Vec<u8>,
    extension: Vec<u8>,
    limit: usize,
}

impl IsoName {
    fn new(original: &str, is_dir: bool) -> Self {
        let split = original
            .rsplit_once('.')
            .filter(|(stem, _)| !is_dir && !stem.is_empty());
        let (stem, extension) = match split {
            Some((stem, extension)) => (d_characters(stem), d_characters(extension)),
            None => (d_characters(original), Vec::new()),
        };
        let mut name = IsoName {
            stem,
            extension,
            limit: MAX_ISO_DIR,
        };
        if !is_dir {
            if name.stem.len() + name.extension.len() > MAX_ISO_FILE {
                name.extension.truncate(MAX_ISO_EXTENSION);
            }
            name.limit = MAX_ISO_FILE - name.extension.len();
        }
        name
    }

    /// The `n`th candidate (0: the name shortened to fit) as (stem, extension).
    fn candidate(&self, n: u32) -> (Vec<u8>, Vec<u8>) {
        (numbered(&self.stem, self.limit, n), self.extension.clone())
    }
}

/// Uppercase letters, digits and `_`; everything else becomes `_`.
fn d_characters(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => c.to_ascii_uppercase() as u8,
            _ => b'_',
        })
        .collect()
}

/// What must differ between entries of one directory, as readers that drop `;1` and a
/// trailing `.` see them.
fn iso_clash_key((stem, extension): &(Vec<u8>, Vec<u8>)) -> Vec<u8> {
    let mut key = stem.clone();
    if !extension.is_empty() {
        key.push(b'.');
        key.extend_from_slice(extension);
    }
    key
}

/// ECMA-119 9.3 orders records by name, then extension, each padded with spaces; all
/// d-characters sort after the space, so that is plain byte order of the two parts.
fn iso_sort_key(id: &[u8]) -> (&[u8], &[u8]) {
    let id = id.strip_suffix(b";1").unwrap_or(id);
    match id.iter().position(|&b| b == b'.') {
        Some(dot) => (&id[..dot], &id[dot + 1..]),
        None => (id, &[]),
    }
}

/// Joliet records sort by their UCS-2 units, version left out.
fn joliet_sort_key(id: &[u8]) -> &[u8] {
    id.strip_suffix(&[0, b';', 0, b'1']).unwrap_or(id)
}

/// `stem`, cut to `limit`, and for `n > 0` with the suffix `_n` (still within `limit`).
pub(super) fn numbered<T: Copy + From<u8>>(stem: &[T], limit: usize, n: u32) -> Vec<T> {
    if n == 0 {
        return stem[..stem.len().min(limit)].to_vec();
    }
    let suffix = format!("_{n}");
    let keep = limit.saturating_sub(suffix.len()).min(stem.len());
    let mut out = stem[..keep].to_vec();
    out.extend(suffix.bytes().map(T::from));
    out
}

/// Length of a directory record with an identifier of `id_len` bytes and `su_len` bytes of
/// system use: the identifier is padded to an even end, and so is the whole record.
fn record_len(id_len: usize, su_len: usize) -> usize {
    33 + id_len + (1 - id_len % 2) + su_len + su_len % 2
}

/// One directory record (ECMA-119 9.1).
pub(super) fn record(
    (extent, len): (u32, u32),
    is_dir: bool,
    id: &[u8],
    su: &[u8],
    date: [u8; 7],
) -> Vec<u8> {
    let total = record_len(id.len(), su.len());
    let mut out = Vec::with_capacity(total);
    // At most 255: identifiers are at most 128 bytes, system use is sized to fit.
    out.push(total as u8);
    out.push(0);
    out.extend_from_slice(&both32(extent));
    out.extend_from_slice(&both32(len));
    out.extend_from_slice(&date);
    out.push(if is_dir { 2 } else { 0 });
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&both16(1));
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    if id.len().is_multiple_of(2) {
        out.push(0);
    }
    out.extend_from_slice(su);
    out.resize(total, 0);
    out
}

/// Appends a record to a directory; a record never crosses a block boundary.
fn append(dir: &mut Vec<u8>, record: &[u8]) {
    if dir.len() % BLOCK + record.len() > BLOCK {
        dir.resize(dir.len().next_multiple_of(BLOCK), 0);
    }
    dir.extend_from_slice(record);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staging(paths: &[&str]) -> Staging {
        let mut staging = Staging::new();
        for path in paths {
            staging
                .add_file(path, Source::Bytes(path.as_bytes().to_vec()))
                .unwrap();
        }
        staging
    }

    fn iso_ids(tree: &Tree<'_>, dir: usize) -> Vec<String> {
        tree.dir(dir)
            .unwrap()
            .iso_order
            .iter()
            .map(|&k| String::from_utf8_lossy(&tree.nodes[k].iso_id).into_owned())
            .collect()
    }

    #[test]
    fn iso_names_are_d_characters_and_unique() {
        let staging = staging(&[
            "boot/kernel.elf",
            "boot/Kernel.elf",
            "boot/kernel-elf",
            "boot/limine/limine.conf",
            "boot/archive.tar.gz",
            "boot/.hidden",
            "boot/README",
            "boot/v1.2/x",
            "boot/a_very_long_file_name_that_goes_on_and_on.config",
            "boot/a_very_long_file_name_that_goes_on_and_on_too.config",
        ]);
        let tree = Tree::build(&staging).unwrap();
        let boot = tree.dir(ROOT).unwrap().iso_order[0];
        assert_eq!(tree.nodes[boot].iso_id, b"BOOT");
        let ids = iso_ids(&tree, boot);
        assert_eq!(
            ids,
            [
                "ARCHIVE_TAR.GZ;1",
                "A_VERY_LONG_FILE_NAME_TH.CONFIG;1",
                "A_VERY_LONG_FILE_NAME__1.CONFIG;1",
                "KERNEL.ELF;1",
                "KERNEL_1.ELF;1",
                "KERNEL_ELF.;1",
                "LIMINE",
                "README.;1",
                "V1_2",
                "_HIDDEN.;1",
            ]
        );
        // `Kernel.elf` sorts before `kernel.elf` as an original name, so it keeps the plain form.
        let kernel = tree.nodes.iter().find(|n| n.name == "Kernel.elf").unwrap();
        assert_eq!(kernel.iso_id, b"KERNEL.ELF;1");
        for id in &ids {
            let (stem, ext) = iso_sort_key(id.as_bytes());
            assert!(stem.len() + ext.len() <= 30, "{id}");
        }
    }

    #[test]
    fn path_tables_go_level_by_level() {
        let staging = staging(&["b/z/f", "a/y/f", "a/x/f", "c"]);
        let tree = Tree::build(&staging).unwrap();
        let names: Vec<(&str, u16)> = tree
            .path_entries(false)
            .into_iter()
            .map(|(_, dir, parent)| (tree.nodes[dir].name, parent))
            .collect();
        assert_eq!(
            names,
            [("", 1), ("a", 1), ("b", 1), ("x", 2), ("y", 2), ("z", 3)]
        );
    }

    #[test]
    fn bad_names_are_refused_with_the_path() {
        for (path, needle) in [
            ("boot/tab\there", "control characters"),
            ("bell\u{7}/x", "control characters"),
            (&"n".repeat(256), "255 bytes"),
        ] {
            let staging = staging(&[path]);
            let err = Tree::build(&staging).unwrap_err().to_string();
            let shown = ImagePath::new(path).unwrap().to_string();
            assert!(err.contains(&shown) && err.contains(needle), "{err}");
        }
        let staging = staging(&[&"é".repeat(127)]);
        Tree::build(&staging).unwrap();
    }

    #[test]
    fn records_are_even_and_never_cross_blocks() {
        assert_eq!(record_len(1, 0), 34);
        assert_eq!(record_len(2, 0), 36);
        assert_eq!(record_len(1, 7), 42);
        let rec = record((5, 6), false, b"AB.;1", &[1, 2, 3], [0; 7]);
        assert_eq!(rec.len(), 42);
        assert_eq!((rec[0], rec[32], rec[33]), (42, 5, b'A'));
        let mut dir = vec![0u8; BLOCK - 10];
        append(&mut dir, &rec);
        assert_eq!(dir.len(), BLOCK + 42);
    }
}
