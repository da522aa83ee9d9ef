//! The on-disk cache of fetched Limine commits: its layout, the manifest that proves an entry
//! complete, verification, atomic publishing, the remembered branch → commit resolutions, the
//! per-repository lock, and the `list`/`clean` operations behind the CLI.
//!
//! ```text
//! <cache_dir>/limine/
//!   <commit-id>/                  the commit's files (no .git) + `.complete`, the manifest,
//!                                 + `.verified`, the identities of files whose content checked out
//!   refs/<url-key>/url            the repository URL the key stands for
//!   refs/<url-key>/<ref name>     "commit <id>", "kind branch|tag", "resolved-at <unix s>"
//!   .lock-<url-key>               held while resolving/fetching/publishing from that URL
//!   .tmp-<url-key>-<pid>-<n>/     a fetch in progress (scratch repo + staged files)
//!   .trash-<pid>-<n>/             a damaged entry being removed
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use git2::{ObjectType, Oid};

use crate::error::LimineError;
use crate::fetch::ExtractedFile;
use crate::files::REQUIRED_FILES;
use crate::version::LimineVersion;

/// The manifest's name inside an entry. Written last: an entry without it is incomplete.
pub(crate) const MANIFEST: &str = ".complete";
const MANIFEST_FORMAT: &str = "cargo-image-runner limine cache 1";
/// The record of files whose content was hashed and matched the manifest, by file identity.
/// Only a cache (never a proof): a missing or unreadable one means "hash everything".
pub(crate) const VERIFIED: &str = ".verified";
const VERIFIED_FORMAT: &str = "cargo-image-runner limine verified 1";
/// A file whose status changed less than this long before it was checked is not remembered as
/// verified: file systems stamp ctime from a clock that ticks every few milliseconds, so a
/// write in the same tick as the check would leave its identity unchanged.
const RACY: Duration = Duration::from_secs(1);

/// The cache of one repository URL.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    /// `<cache_dir>/limine`.
    pub root: PathBuf,
    /// The repository URL.
    pub url: String,
    /// A short hash of the URL, naming its refs folder, lock and temp dirs.
    pub key: String,
    /// How hard entries are checked before they are used.
    pub check: Check,
}

/// What a remembered ref resolution says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefRecord {
    /// The commit id it resolved to.
    pub commit: String,
    /// Whether it is a tag (never re-resolved) or a branch.
    pub kind: RefKind,
    /// When it was resolved on the remote, in seconds since the Unix epoch.
    pub resolved_at: u64,
}

/// A branch moves; a tag is taken as fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefKind {
    Branch,
    Tag,
}

/// The contents of an entry's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub commit: String,
    pub url: String,
    /// The `limine.version` value that first fetched the commit.
    pub asked: String,
    pub version: Option<LimineVersion>,
    pub files: Vec<ManifestFile>,
}

/// One file of an entry as it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManifestFile {
    pub path: String,
    /// Git blob id of the content (what the commit's tree says it must be).
    pub blob: String,
    pub size: u64,
}

/// How hard to check an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Every file exists with its recorded size, and its content is hashed and compared with
    /// its git blob id unless an earlier check found it right and the file's identity (device,
    /// inode, size, mtime and ctime) is still the same. Any write changes the ctime, and the
    /// ctime cannot be set back, so damage that keeps size and mtime is still seen.
    Quick,
    /// Every file is hashed and compared with its git blob id, whatever earlier checks found
    /// (damage no metadata shows, such as bit rot, is found too).
    Full,
}

impl Cache {
    pub fn new(cache_dir: &Path, url: &str, check: Check) -> Cache {
        Cache {
            root: cache_dir.join("limine"),
            url: url.to_owned(),
            key: url_key(url),
            check,
        }
    }

    /// Where the entry of `commit` lives (whether or not it exists).
    pub fn entry_dir(&self, commit: &str) -> PathBuf {
        self.root.join(commit)
    }

    /// Takes the lock of this URL, waiting for whoever holds it.
    pub fn lock(&self) -> Result<File, LimineError> {
        let path = self.root.join(format!(".lock-{}", self.key));
        let file = open_lock_file(&path)?;
        file.lock().map_err(|e| LimineError::io("lock", &path, e))?;
        Ok(file)
    }

    /// A new, empty scratch directory for one fetch. Call with the lock held.
    pub fn temp_dir(&self) -> Result<PathBuf, LimineError> {
        let dir = self
            .root
            .join(format!(".tmp-{}-{}", self.key, unique_suffix()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| LimineError::io("create the directory", &dir, e))?;
        Ok(dir)
    }

    /// Removes scratch directories of this URL left by processes that died while fetching.
    /// Only the lock holder creates them, so with the lock held any that exist are stale.
    pub fn remove_stale_temps(&self) {
        let prefix = format!(".tmp-{}-", self.key);
        for dir in subdirs(&self.root) {
            let name = file_name(&dir);
            if name.starts_with(&prefix) || name.starts_with(".trash-") {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }

    /// The remembered resolution of `name` from this URL.
    pub fn read_ref(&self, name: &str) -> Option<RefRecord> {
        let text = std::fs::read_to_string(self.ref_path(name)).ok()?;
        parse_ref(&text)
    }

    /// Remembers that `name` resolved to `record.commit`.
    pub fn write_ref(&self, name: &str, record: &RefRecord) -> Result<(), LimineError> {
        let dir = self.root.join("refs").join(&self.key);
        write_file(&dir.join("url"), &format!("{}\n", self.url))?;
        let kind = match record.kind {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
        };
        let text = format!(
            "commit {}\nkind {kind}\nresolved-at {}\n",
            record.commit, record.resolved_at
        );
        write_file(&self.ref_path(name), &text)
    }

    fn ref_path(&self, name: &str) -> PathBuf {
        self.root
            .join("refs")
            .join(&self.key)
            .join(escape_ref_name(name))
    }

    /// Commit ids of the entries whose name starts with `prefix` (any URL: an entry is
    /// identified by its commit alone).
    pub fn entries_with_prefix(&self, prefix: &str) -> Vec<String> {
        let prefix = prefix.to_ascii_lowercase();
        let mut found: Vec<String> = subdirs(&self.root)
            .iter()
            .map(|d| file_name(d))
            .filter(|n| is_commit_id(n) && n.starts_with(&prefix))
            .collect();
        found.sort();
        found
    }

    /// Moves the staged checkout `staged` (with its manifest) into place as the entry of
    /// `commit`. If an entry appeared meanwhile (fetched from another URL), a sound one is kept
    /// and `staged` dropped; a damaged one is replaced.
    pub fn publish(&self, staged: &Path, commit: &str) -> Result<PathBuf, LimineError> {
        let target = self.entry_dir(commit);
        for _ in 0..2 {
            match std::fs::rename(staged, &target) {
                Ok(()) => return Ok(target),
                Err(_) if target.exists() => {
                    if verify(&target, Some(commit), self.check).is_ok() {
                        let _ = std::fs::remove_dir_all(staged);
                        return Ok(target);
                    }
                    discard(&self.root, &target)?;
                }
                Err(e) => {
                    return Err(LimineError::io("move the fetched files into", &target, e));
                }
            }
        }
        Err(LimineError::io(
            "move the fetched files into",
            &target,
            std::io::Error::other("another process keeps writing a damaged entry there"),
        ))
    }
}

/// A short, stable name for a URL: 16 hex digits of the SHA-1 of the URL without a trailing
/// `/` or `.git`, so `…/limine` and `…/limine.git/` share a cache.
pub(crate) fn url_key(url: &str) -> String {
    let trimmed = url.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    match Oid::hash_object(ObjectType::Blob, trimmed.as_bytes()) {
        Ok(oid) => oid.to_string()[..16].to_owned(),
        // Hashing bytes in memory does not fail; keep a usable (if less unique) name anyway.
        Err(_) => escape_ref_name(trimmed),
    }
}

/// Writes the manifest of the checkout in `dir`: the extracted files with their blob ids,
/// sizes and (for people reading it) the modification times they have now.
pub(crate) fn write_manifest(
    dir: &Path,
    commit: &str,
    url: &str,
    asked: &str,
    version: Option<LimineVersion>,
    files: &[ExtractedFile],
) -> Result<(), LimineError> {
    let mut text = format!(
        "{MANIFEST_FORMAT}\n# Written after every file below; an entry without this file is incomplete.\ncommit {commit}\nurl {url}\nref {asked}\nversion {}\n",
        version.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
    );
    for file in files {
        let path = dir.join(&file.path);
        let meta = std::fs::metadata(&path)
            .map_err(|e| LimineError::io("read the metadata of", &path, e))?;
        let mtime = mtime_ns(&meta).map_or_else(|| "-".to_owned(), |t| t.to_string());
        text.push_str(&format!(
            "file {} {} {mtime} {}\n",
            file.blob, file.size, file.path
        ));
    }
    write_file(&dir.join(MANIFEST), &text)
}

/// Checks the entry in `dir`; `Err` says what is wrong in words. Files whose content checked
/// out are remembered by identity in [`VERIFIED`] (when the entry is writable), so the next
/// quick check of unchanged files reads metadata only.
pub(crate) fn verify(dir: &Path, commit: Option<&str>, check: Check) -> Result<Manifest, String> {
    let text = match std::fs::read_to_string(dir.join(MANIFEST)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "it has no manifest ({MANIFEST}): a fetch was interrupted"
            ));
        }
        Err(e) => return Err(format!("its manifest cannot be read: {e}")),
    };
    let manifest = parse_manifest(&text).ok_or("its manifest is malformed")?;
    if let Some(commit) = commit
        && manifest.commit != commit
    {
        return Err(format!(
            "its manifest is for commit {}, not {commit}",
            manifest.commit
        ));
    }
    for required in REQUIRED_FILES {
        if !manifest.files.iter().any(|f| f.path == *required) {
            return Err(format!("its manifest does not list {required}"));
        }
    }
    let known = match check {
        Check::Quick => read_verified(dir),
        Check::Full => BTreeMap::new(),
    };
    let mut verified = BTreeMap::new();
    let now = SystemTime::now();
    for file in &manifest.files {
        let path = dir.join(&file.path);
        let meta = std::fs::metadata(&path).map_err(|_| format!("{} is missing", file.path))?;
        if !meta.is_file() {
            return Err(format!("{} is not a file", file.path));
        }
        if meta.len() != file.size {
            return Err(format!(
                "{} is {} bytes, the manifest says {}",
                file.path,
                meta.len(),
                file.size
            ));
        }
        // The identity is taken before hashing: a write during or after the hash changes it.
        let identity = Identity::of(&meta);
        if let Some(identity) = identity
            && known.get(&file.path) == Some(&identity)
        {
            verified.insert(file.path.clone(), identity);
            continue;
        }
        let actual = Oid::hash_file(ObjectType::Blob, &path)
            .map_err(|e| format!("{} cannot be read: {}", file.path, e.message()))?;
        if actual.to_string() != file.blob {
            return Err(format!(
                "the content of {} differs from the commit's (blob {actual}, expected {})",
                file.path, file.blob
            ));
        }
        if let Some(identity) = identity.filter(|i| !i.is_racy(now)) {
            verified.insert(file.path.clone(), identity);
        }
    }
    if verified != known {
        // Best effort: a read-only cache is checked by hashing every time.
        write_verified(dir, &verified);
    }
    Ok(manifest)
}

/// What tells one version of a file from another without reading it: device, inode, size,
/// and modification and status-change times in nanoseconds. The kernel sets the ctime on every
/// write and metadata change and offers no way to set it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Identity {
    /// `None` where the platform reports no inode and ctime: such files are always hashed.
    #[cfg(unix)]
    fn of(meta: &std::fs::Metadata) -> Option<Identity> {
        use std::os::unix::fs::MetadataExt;
        let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        Some(Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        })
    }

    #[cfg(not(unix))]
    fn of(_meta: &std::fs::Metadata) -> Option<Identity> {
        None
    }

    /// Whether the file changed so recently (or, by a skewed clock, in the future) that a
    /// further write could keep its ctime.
    fn is_racy(&self, now: SystemTime) -> bool {
        let now_ns = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
        self.ctime_ns >= now_ns - RACY.as_nanos() as i128
    }

    fn parse(line: &str) -> Option<(String, Identity)> {
        // The path goes last: it may hold spaces.
        let mut parts = line.splitn(6, ' ');
        let identity = Identity {
            dev: parts.next()?.parse().ok()?,
            ino: parts.next()?.parse().ok()?,
            size: parts.next()?.parse().ok()?,
            mtime_ns: parts.next()?.parse().ok()?,
            ctime_ns: parts.next()?.parse().ok()?,
        };
        Some((parts.next()?.to_owned(), identity))
    }
}

/// The identities [`VERIFIED`] records, by path; empty when it is missing or not ours.
fn read_verified(dir: &Path) -> BTreeMap<String, Identity> {
    let Ok(text) = std::fs::read_to_string(dir.join(VERIFIED)) else {
        return BTreeMap::new();
    };
    let mut lines = text.lines();
    if lines.next() != Some(VERIFIED_FORMAT) {
        return BTreeMap::new();
    }
    lines.filter_map(Identity::parse).collect()
}

/// Replaces [`VERIFIED`] with `verified` (atomically, under a name unique to this call, since
/// every process using the entry may do it at once); failures are ignored.
fn write_verified(dir: &Path, verified: &BTreeMap<String, Identity>) {
    let mut text = format!(
        "{VERIFIED_FORMAT}\n# dev ino size mtime-ns ctime-ns path of files whose content matched the manifest.\n"
    );
    for (path, i) in verified {
        text.push_str(&format!(
            "{} {} {} {} {} {path}\n",
            i.dev, i.ino, i.size, i.mtime_ns, i.ctime_ns
        ));
    }
    let temp = dir.join(format!("{VERIFIED}.tmp-{}", unique_suffix()));
    let written =
        std::fs::write(&temp, text).and_then(|()| std::fs::rename(&temp, dir.join(VERIFIED)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
}

/// Moves a damaged entry out of the way (atomically) and deletes it.
pub(crate) fn discard(root: &Path, dir: &Path) -> Result<(), LimineError> {
    let trash = root.join(format!(".trash-{}", unique_suffix()));
    match std::fs::rename(dir, &trash) {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&trash);
            Ok(())
        }
        // Someone else removed it first.
        Err(_) if !dir.exists() => Ok(()),
        Err(e) => Err(LimineError::io("remove the damaged cache entry", dir, e)),
    }
}

fn parse_manifest(text: &str) -> Option<Manifest> {
    let mut lines = text.lines();
    if lines.next()? != MANIFEST_FORMAT {
        return None;
    }
    let mut manifest = Manifest {
        commit: String::new(),
        url: String::new(),
        asked: String::new(),
        version: None,
        files: Vec::new(),
    };
    for line in lines {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once(' ')?;
        match key {
            "commit" => manifest.commit = value.to_owned(),
            "url" => manifest.url = value.to_owned(),
            "ref" => manifest.asked = value.to_owned(),
            "version" => manifest.version = LimineVersion::parse(value),
            "file" => {
                // The path goes last: it may hold spaces.
                let mut parts = value.splitn(4, ' ');
                let blob = parts.next()?.to_owned();
                let size = parts.next()?.parse().ok()?;
                // The modification time is for people reading the manifest.
                parts.next()?;
                let path = parts.next()?.to_owned();
                manifest.files.push(ManifestFile { path, blob, size });
            }
            _ => {}
        }
    }
    (!manifest.commit.is_empty()).then_some(manifest)
}

fn parse_ref(text: &str) -> Option<RefRecord> {
    let mut commit = None;
    let mut kind = None;
    let mut resolved_at = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("commit", v)) if is_commit_id(v) => commit = Some(v.to_owned()),
            Some(("kind", "branch")) => kind = Some(RefKind::Branch),
            Some(("kind", "tag")) => kind = Some(RefKind::Tag),
            Some(("resolved-at", v)) => resolved_at = v.parse().ok(),
            _ => {}
        }
    }
    Some(RefRecord {
        commit: commit?,
        kind: kind?,
        resolved_at: resolved_at?,
    })
}

/// A full SHA-1 (or SHA-256) commit id in lower-case hex.
pub(crate) fn is_commit_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A ref name as a single, safe file name: `[A-Za-z0-9._-]` kept, anything else `%XX`, and a
/// leading `.` escaped so no name is hidden or `..`.
fn escape_ref_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unescape_ref_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = name.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn mtime_ns(meta: &std::fs::Metadata) -> Option<u128> {
    meta.modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos())
}

/// `<pid>-<counter>`: unique among the processes sharing the cache.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{n}-{nanos}", std::process::id())
}

fn open_lock_file(path: &Path) -> Result<File, LimineError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| LimineError::io("create the directory", parent, e))?;
    }
    // Lock files are never deleted: deleting one while another process waits on it would let
    // a third process lock a new file of the same name at the same time.
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| LimineError::io("open the lock file", path, e))
}

fn write_file(path: &Path, text: &str) -> Result<(), LimineError> {
    image_runner_core::fs::write_atomic(path, |file, temp| {
        file.write_all(text.as_bytes())
            .map_err(|e| image_runner_core::Error::io("write", temp, e))
    })
    .map_err(|e| match e {
        image_runner_core::Error::Io {
            action,
            path,
            source,
        } => LimineError::Io {
            action,
            path,
            source,
        },
        other => LimineError::Settings(other.to_string()),
    })
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// One commit in the cache, for `cargo-image-runner limine list`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CachedLimine {
    /// The commit id.
    pub commit: String,
    /// Its directory.
    pub dir: PathBuf,
    /// The Limine version its files or ref name tell.
    pub version: Option<LimineVersion>,
    /// The repository it was first fetched from.
    pub url: Option<String>,
    /// Remembered branches/tags that resolved to it, as `name (url)`.
    pub refs: Vec<String>,
    /// Bytes on disk.
    pub size: u64,
    /// Why the entry cannot be used; `None` when it checks out (the quick check: sizes, and
    /// hashes of files not found right by an earlier check or changed since).
    pub problem: Option<String>,
}

/// Every commit in the cache under `cache_dir`, newest Limine version first.
pub fn list_cached(cache_dir: &Path) -> Vec<CachedLimine> {
    let root = cache_dir.join("limine");
    let refs = all_refs(&root);
    let mut list: Vec<CachedLimine> = subdirs(&root)
        .into_iter()
        .filter(|d| is_commit_id(&file_name(d)))
        .map(|dir| {
            let commit = file_name(&dir);
            let checked = verify(&dir, Some(&commit), Check::Quick);
            let (version, url, problem) = match checked {
                Ok(m) => (m.version, Some(m.url), None),
                Err(problem) => (None, None, Some(problem)),
            };
            CachedLimine {
                refs: refs
                    .iter()
                    .filter(|(_, _, record)| record.commit == commit)
                    .map(|(url, name, _)| format!("{name} ({url})"))
                    .collect(),
                size: dir_size(&dir),
                commit,
                dir,
                version,
                url,
                problem,
            }
        })
        .collect();
    list.sort_by(|a, b| {
        b.version
            .cmp(&a.version)
            .then_with(|| a.commit.cmp(&b.commit))
    });
    list
}

/// What [`clean_cache`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanReport {
    /// Commit ids removed.
    pub removed: Vec<String>,
    /// Commit ids kept.
    pub kept: Vec<String>,
    /// Bytes freed (entries and leftover scratch directories).
    pub freed: u64,
}

/// Empties the Limine cache under `cache_dir`, except the commits `keep` names: a commit id
/// (or a unique prefix) or a branch/tag name remembered for any URL. Remembered resolutions of
/// removed commits go too, and scratch directories of fetches that are not running. A `keep`
/// that matches nothing is an error, so a typo never empties the cache.
pub fn clean_cache(cache_dir: &Path, keep: Option<&str>) -> Result<CleanReport, LimineError> {
    let root = cache_dir.join("limine");
    let entries: Vec<String> = subdirs(&root)
        .iter()
        .map(|d| file_name(d))
        .filter(|n| is_commit_id(n))
        .collect();
    let refs = all_refs(&root);
    let kept: Vec<String> = match keep.map(str::trim).filter(|k| !k.is_empty()) {
        None => Vec::new(),
        Some(keep) => {
            let by_ref: Vec<String> = refs
                .iter()
                .filter(|(_, name, _)| name == keep)
                .map(|(_, _, r)| r.commit.clone())
                .collect();
            let lower = keep.to_ascii_lowercase();
            let kept: Vec<String> = entries
                .iter()
                .filter(|c| by_ref.contains(c) || (lower.len() >= 4 && c.starts_with(&lower)))
                .cloned()
                .collect();
            if kept.is_empty() {
                return Err(LimineError::Settings(format!(
                    "nothing in the Limine cache `{}` matches `{keep}` (a commit id, a unique prefix of one, or a cached branch/tag name); nothing was removed. `cargo-image-runner limine list` shows what is there",
                    root.display()
                )));
            }
            kept
        }
    };
    let mut report = CleanReport {
        kept: kept.clone(),
        ..CleanReport::default()
    };
    for commit in entries.iter().filter(|c| !kept.contains(c)) {
        let dir = root.join(commit);
        let size = dir_size(&dir);
        discard(&root, &dir)?;
        report.freed += size;
        report.removed.push(commit.clone());
    }
    for (url_dir, name, record) in refs_files(&root) {
        if report.removed.contains(&record.commit) {
            let _ = std::fs::remove_file(url_dir.join(escape_ref_name(&name)));
        }
    }
    // Scratch directories are only removed where no fetch runs: their URL's lock is free.
    for dir in subdirs(&root) {
        let name = file_name(&dir);
        let stale = if name.starts_with(".trash-") {
            true
        } else if let Some(rest) = name.strip_prefix(".tmp-") {
            let key = rest.split('-').next().unwrap_or_default();
            match open_lock_file(&root.join(format!(".lock-{key}"))) {
                Ok(lock) => lock.try_lock().is_ok(),
                Err(_) => false,
            }
        } else {
            false
        };
        if stale {
            report.freed += dir_size(&dir);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    report.removed.sort();
    Ok(report)
}

/// Every remembered resolution: (url, ref name, record).
fn all_refs(root: &Path) -> Vec<(String, String, RefRecord)> {
    refs_files(root)
        .into_iter()
        .map(|(dir, name, record)| {
            let url = std::fs::read_to_string(dir.join("url"))
                .map(|u| u.trim().to_owned())
                .unwrap_or_else(|_| "?".into());
            (url, name, record)
        })
        .collect()
}

/// Every remembered resolution: (its URL folder, ref name, record).
fn refs_files(root: &Path) -> Vec<(PathBuf, String, RefRecord)> {
    let mut out = Vec::new();
    for url_dir in subdirs(&root.join("refs")) {
        let Ok(entries) = std::fs::read_dir(&url_dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "url" || name.starts_with('.') {
                continue;
            }
            if let Some(record) = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|t| parse_ref(&t))
            {
                out.push((url_dir.clone(), unescape_ref_name(&name), record));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names_become_safe_file_names() {
        assert_eq!(escape_ref_name("v8.x-binary"), "v8.x-binary");
        assert_eq!(escape_ref_name("feature/x y"), "feature%2Fx%20y");
        assert_eq!(escape_ref_name(".."), "%2E.");
        for name in ["v8.x-binary", "feature/x y", "..", "ünï"] {
            assert_eq!(unescape_ref_name(&escape_ref_name(name)), name);
        }
    }

    #[test]
    fn url_keys_ignore_trailing_slash_and_dot_git() {
        let a = url_key("https://example.org/limine.git");
        assert_eq!(a.len(), 16);
        assert_eq!(a, url_key("https://example.org/limine/"));
        assert_ne!(a, url_key("https://example.org/other"));
    }

    #[test]
    fn manifests_round_trip() {
        let text = format!(
            "{MANIFEST_FORMAT}\n# comment\ncommit {c}\nurl /srv/l.git\nref v8.x-binary\nversion 8.2.0\nfile {b} 12 345 limine-bios.sys\nfile {b} 3 - dir/with space.txt\n",
            c = "a".repeat(40),
            b = "b".repeat(40)
        );
        let m = parse_manifest(&text).unwrap();
        assert_eq!(m.version, LimineVersion::parse("8.2.0"));
        assert_eq!(m.files.len(), 2);
        assert_eq!(m.files[0].size, 12);
        assert_eq!(m.files[1].path, "dir/with space.txt");
        assert!(parse_manifest("something else\n").is_none());
    }

    #[test]
    fn verified_records_round_trip_and_skip_racy_files() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: 4,
            ctime_ns: 5,
        };
        let verified = BTreeMap::from([("dir/with space.bin".to_owned(), identity)]);
        write_verified(dir.path(), &verified);
        assert_eq!(read_verified(dir.path()), verified);
        // Only the record is left, no temporary file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(dir.path().join(VERIFIED), "something else\n1 2 3 4 5 x\n").unwrap();
        assert!(read_verified(dir.path()).is_empty());

        let now = UNIX_EPOCH + Duration::from_secs(100);
        let at = |secs: i128| Identity {
            ctime_ns: secs * 1_000_000_000,
            ..identity
        };
        assert!(!at(98).is_racy(now));
        assert!(at(99).is_racy(now) && at(100).is_racy(now) && at(101).is_racy(now));
    }

    #[test]
    fn ref_records_parse() {
        let c = "c".repeat(40);
        let r = parse_ref(&format!("commit {c}\nkind tag\nresolved-at 17\n")).unwrap();
        assert_eq!(r.kind, RefKind::Tag);
        assert_eq!(r.resolved_at, 17);
        assert!(parse_ref("commit xyz\nkind tag\nresolved-at 1\n").is_none());
    }
}
