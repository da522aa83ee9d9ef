//! The staging list: what goes into an image, as image path ← source, before any image is written.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::error::Error;

/// Where the bytes of one staged file come from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Source {
    /// A file on the host, read when the image is written.
    File(PathBuf),
    /// Bytes produced by a plugin (a generated config file, for example).
    Bytes(Vec<u8>),
}

impl Source {
    /// The length of the content in bytes (reads file metadata for [`Source::File`]).
    pub fn len(&self) -> Result<u64, Error> {
        match self {
            Source::File(path) => std::fs::metadata(path)
                .map(|m| m.len())
                .map_err(|e| Error::io("read the metadata of", path, e)),
            Source::Bytes(bytes) => Ok(bytes.len() as u64),
        }
    }

    /// Whether the content is empty.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Reads the whole content into memory.
    pub fn read(&self) -> Result<Vec<u8>, Error> {
        match self {
            Source::File(path) => std::fs::read(path).map_err(|e| Error::io("read", path, e)),
            Source::Bytes(bytes) => Ok(bytes.clone()),
        }
    }

    /// Opens the content as a reader.
    pub fn open(&self) -> Result<Box<dyn std::io::Read + '_>, Error> {
        match self {
            Source::File(path) => {
                let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
                Ok(Box::new(std::io::BufReader::new(file)))
            }
            Source::Bytes(bytes) => Ok(Box::new(bytes.as_slice())),
        }
    }
}

impl fmt::Display for Source {
    /// `` `/host/path` `` for a host file, `generated content (N bytes)` for bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "`{}`", path.display()),
            Source::Bytes(bytes) => write!(f, "generated content ({} bytes)", bytes.len()),
        }
    }
}

/// A normalised path inside an image: `/`-separated, relative to the image root, no `.` or `..`
/// components, never empty.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "String", try_from = "String")]
pub struct ImagePath(String);

impl From<ImagePath> for String {
    fn from(path: ImagePath) -> String {
        path.0
    }
}

impl TryFrom<String> for ImagePath {
    type Error = Error;

    fn try_from(raw: String) -> Result<Self, Error> {
        ImagePath::new(&raw)
    }
}

impl ImagePath {
    /// Normalises `raw` (leading `/` allowed, `\` not a separator) and refuses paths that leave
    /// the image root.
    pub fn new(raw: &str) -> Result<Self, Error> {
        let mut parts: Vec<&str> = Vec::new();
        for component in Path::new(raw).components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(part) => {
                    let part = part.to_str().ok_or_else(|| Error::BadImagePath {
                        path: raw.to_owned(),
                        reason: "it is not valid UTF-8".into(),
                    })?;
                    parts.push(part);
                }
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(Error::BadImagePath {
                            path: raw.to_owned(),
                            reason: "it leaves the image root through `..`".into(),
                        });
                    }
                }
                Component::Prefix(_) => {
                    return Err(Error::BadImagePath {
                        path: raw.to_owned(),
                        reason: "it has a drive prefix".into(),
                    });
                }
            }
        }
        if parts.is_empty() {
            return Err(Error::BadImagePath {
                path: raw.to_owned(),
                reason: "it names the image root, not a file".into(),
            });
        }
        Ok(ImagePath(parts.join("/")))
    }

    /// The path as a `/`-separated string without a leading `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path components.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

/// Host files a bootloader puts into the image, each once: a kernel named by two entries, or a
/// module shared by several, is staged a single time and every entry points at it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostFiles {
    by_image: BTreeMap<String, PathBuf>,
    by_host: BTreeMap<PathBuf, String>,
}

impl HostFiles {
    /// Nothing placed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Places `host` at image path `path` (no leading `/`) unless it is already placed;
    /// returns where it is.
    pub fn place_at(&mut self, host: PathBuf, path: &str) -> String {
        if let Some(known) = self.by_host.get(&host) {
            return known.clone();
        }
        self.by_image.insert(path.to_owned(), host.clone());
        self.by_host.insert(host, path.to_owned());
        path.to_owned()
    }

    /// Places `host` in folder `dir` under its own file name; a different file with the same
    /// name goes to `dir/2/name`, `dir/3/name`, and so on. Returns where it is.
    pub fn place_in(&mut self, host: PathBuf, dir: &str) -> String {
        if let Some(known) = self.by_host.get(&host) {
            return known.clone();
        }
        let name = host
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        let path = std::iter::once(format!("{dir}/{name}"))
            .chain((2..).map(|n| format!("{dir}/{n}/{name}")))
            .find(|p| !self.by_image.contains_key(p))
            .unwrap_or_default();
        self.place_at(host, &path)
    }

    /// Every placed file: image path (no leading `/`) and host path, sorted by image path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.by_image
            .iter()
            .map(|(image, host)| (image.as_str(), host.as_path()))
    }
}

/// What a bootloader tells image formats about booting: which staged files are boot images.
/// Formats that cannot use a hint ignore it (a FAT volume has no El Torito catalogue).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct BootHints {
    /// The staged file an ISO's El Torito BIOS entry boots (no emulation), e.g. Limine's
    /// `limine-bios-cd.bin` or GRUB's `eltorito.img`.
    pub bios_cd_image: Option<ImagePath>,
    /// Patch an El Torito boot info table into the BIOS boot image (GRUB and Limine want it).
    pub bios_cd_boot_info_table: bool,
    /// The staged FAT image an ISO's El Torito UEFI entry boots, e.g. Limine's
    /// `limine-uefi-cd.bin`. Without it, ISO formats build an ESP from the staged `EFI/` tree.
    pub uefi_cd_image: Option<ImagePath>,
}

/// Everything a bootloader put together for an image, plus how the kernel is to be started.
///
/// Entries are kept sorted by image path so that every format writes them in the same order
/// (reproducible images).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Staging {
    /// Files of the image, sorted by path.
    pub entries: BTreeMap<ImagePath, Source>,
    /// A kernel the runner boots directly (QEMU `-kernel`), with no image at all.
    pub direct_kernel: Option<PathBuf>,
    /// A ready image to boot as it is (no format step).
    pub prebuilt: Option<crate::media::Image>,
    /// Boot images among the entries.
    pub hints: BootHints,
}

impl Staging {
    /// An empty staging list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the paths a user's bootloader config names against the image: `named` gives
    /// (line, the text that names the path, the path); the image holds these entries plus
    /// `also` (the `extra-files` destinations the core adds after staging). A name that differs
    /// from a held one only in case counts as present (FAT and ISO 9660 readers may ignore
    /// case). `Ok(())`, or the problem lines (`  line N: `text`: why`) and every path the image
    /// holds (sorted, with a leading `/`), for the plugin's error.
    pub fn check_named_paths<'a>(
        &self,
        also: impl IntoIterator<Item = &'a str>,
        named: impl IntoIterator<Item = (usize, String, String)>,
    ) -> Result<(), (Vec<String>, Vec<String>)> {
        let mut held: Vec<String> = self
            .entries
            .keys()
            .map(|p| p.as_str().to_owned())
            .chain(
                also.into_iter()
                    .filter_map(|dest| ImagePath::new(dest).ok())
                    .map(|p| p.as_str().to_owned()),
            )
            .collect();
        held.sort();
        held.dedup();
        let mut problems = Vec::new();
        for (line, text, path) in named {
            let problem = match ImagePath::new(&path) {
                Ok(path) if held.iter().any(|h| h.eq_ignore_ascii_case(path.as_str())) => continue,
                Ok(path) => format!("{path} is not in the image"),
                Err(e) => e.to_string(),
            };
            problems.push(format!("  line {line}: `{text}`: {problem}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err((problems, held.iter().map(|p| format!("/{p}")).collect()))
        }
    }

    /// Adds one file. A path is staged once: adding it again from another source is an error
    /// naming both (the same source again changes nothing). A file and a directory may not
    /// share a path either: adding `a/b` when `a` is a file, or `a` when `a/b` exists, is an
    /// error.
    pub fn add(&mut self, path: ImagePath, source: Source) -> Result<(), Error> {
        if let Some(existing) = self.entries.get(&path) {
            if *existing == source {
                return Ok(());
            }
            return Err(Error::StagedTwice {
                path: path.to_string(),
                first: existing.to_string(),
                second: source.to_string(),
            });
        }
        let as_dir = format!("{}/", path.as_str());
        if let Some((other, _)) = self
            .entries
            .range(ImagePath(as_dir.clone())..)
            .next()
            .filter(|(p, _)| p.as_str().starts_with(&as_dir))
        {
            return Err(Error::StagingConflict {
                path: path.to_string(),
                other: other.to_string(),
            });
        }
        let mut prefix = String::new();
        for part in path.components().take(path.components().count() - 1) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.entries.contains_key(&ImagePath(prefix.clone())) {
                return Err(Error::StagingConflict {
                    path: path.to_string(),
                    other: format!("/{prefix}"),
                });
            }
        }
        self.entries.insert(path, source);
        Ok(())
    }

    /// Puts `source` at `path` whether or not something is staged there already, returning
    /// what it replaces: for a plugin that means to override its own entry. Paths shared by
    /// a file and a directory are refused as in [`Staging::add`].
    pub fn replace(&mut self, path: ImagePath, source: Source) -> Result<Option<Source>, Error> {
        let old = self.entries.remove(&path);
        match self.add(path.clone(), source) {
            Ok(()) => Ok(old),
            Err(e) => {
                if let Some(old) = old {
                    self.entries.insert(path, old);
                }
                Err(e)
            }
        }
    }

    /// Adds a file from a raw image path (see [`ImagePath::new`]).
    pub fn add_file(&mut self, path: &str, source: Source) -> Result<(), Error> {
        self.add(ImagePath::new(path)?, source)
    }

    /// The directories implied by the entries, parents before children, sorted.
    pub fn directories(&self) -> Vec<String> {
        let mut dirs = std::collections::BTreeSet::new();
        for path in self.entries.keys() {
            let parts: Vec<&str> = path.components().collect();
            for end in 1..parts.len() {
                dirs.insert(parts[..end].join("/"));
            }
        }
        dirs.into_iter().collect()
    }

    /// Total size of the entries' content in bytes.
    pub fn content_size(&self) -> Result<u64, Error> {
        self.entries.values().map(Source::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_paths_are_checked_against_staged_and_extra_files() {
        let mut staging = Staging::new();
        staging
            .add_file("boot/kernel", Source::Bytes(b"k".to_vec()))
            .unwrap();
        let named = |path: &str| vec![(3, format!("load {path}"), path.to_owned())];
        assert_eq!(staging.check_named_paths([], named("/boot/kernel")), Ok(()));
        assert_eq!(staging.check_named_paths([], named("/BOOT/Kernel")), Ok(()));
        assert_eq!(
            staging.check_named_paths(["/data/x"], named("/data/x")),
            Ok(())
        );
        let (problems, held) = staging
            .check_named_paths(["data/x"], named("/boot/other"))
            .unwrap_err();
        assert_eq!(
            problems,
            ["  line 3: `load /boot/other`: /boot/other is not in the image"]
        );
        assert_eq!(held, ["/boot/kernel", "/data/x"]);
    }

    #[test]
    fn image_paths_are_normalised() {
        assert_eq!(
            ImagePath::new("/boot//kernel").unwrap().as_str(),
            "boot/kernel"
        );
        assert_eq!(ImagePath::new("a/./b/../c").unwrap().as_str(), "a/c");
    }

    #[test]
    fn image_paths_that_escape_are_refused() {
        for bad in ["../x", "/a/../../x", "", "/", "a/.."] {
            let err = ImagePath::new(bad).unwrap_err().to_string();
            assert!(err.contains(bad) || bad.is_empty(), "{err}");
        }
    }

    #[test]
    fn host_files_are_placed_once_and_same_names_get_their_own_folder() {
        let mut files = HostFiles::new();
        assert_eq!(
            files.place_at("/k/kernel".into(), "boot/kernel"),
            "boot/kernel"
        );
        assert_eq!(
            files.place_in("/k/kernel".into(), "boot/modules"),
            "boot/kernel"
        );
        assert_eq!(
            files.place_in("/a/initrd".into(), "boot/modules"),
            "boot/modules/initrd"
        );
        assert_eq!(
            files.place_in("/b/initrd".into(), "boot/modules"),
            "boot/modules/2/initrd"
        );
        assert_eq!(
            files.place_in("/a/initrd".into(), "boot/modules"),
            "boot/modules/initrd"
        );
        assert_eq!(files.iter().count(), 3);
    }

    #[test]
    fn file_and_directory_cannot_share_a_path() {
        let mut staging = Staging::new();
        staging
            .add_file("boot/kernel", Source::Bytes(vec![1]))
            .unwrap();
        assert!(
            staging
                .add_file("boot/kernel/x", Source::Bytes(vec![]))
                .is_err()
        );
        assert!(staging.add_file("boot", Source::Bytes(vec![])).is_err());
        staging
            .add_file("boot/other", Source::Bytes(vec![2, 3]))
            .unwrap();
        assert_eq!(staging.directories(), vec!["boot".to_string()]);
        let err = staging
            .add_file("/boot/other", Source::File("/host/other".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/boot/other")
                && err.contains("generated content (2 bytes)")
                && err.contains("`/host/other`"),
            "{err}"
        );
        staging
            .add_file("boot/other", Source::Bytes(vec![2, 3]))
            .unwrap();
        assert_eq!(staging.entries.len(), 2);
        assert_eq!(staging.content_size().unwrap(), 3);
    }
}
