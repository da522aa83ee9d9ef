//! Getting a verified set of Limine binaries for the settings: the cache when it can answer,
//! else one process resolves and fetches under a lock while the others wait and reuse.

use git2::{Oid, Repository};

use crate::LimineSettings;
use crate::cache::{self, Cache, Check, RefKind, RefRecord};
use crate::error::LimineError;
use crate::fetch::{self, Fetch, RemoteRefs};
use crate::files::{self, FilesSource, LimineFiles, REQUIRED_FILES};
use crate::version::LimineVersion;

/// What `limine.version` names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    /// A full commit id.
    Commit(String),
    /// 4–39 hex digits: an abbreviated commit id (or, rarely, a ref with such a name).
    Prefix(String),
    /// A branch or tag name.
    Ref(String),
}

impl Wanted {
    fn classify(version: &str) -> Wanted {
        let lower = version.to_ascii_lowercase();
        if cache::is_commit_id(&lower) {
            Wanted::Commit(lower)
        } else if (4..40).contains(&lower.len()) && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            Wanted::Prefix(lower)
        } else {
            Wanted::Ref(version.to_owned())
        }
    }
}

/// What the cache alone can say.
#[derive(Debug)]
enum Lookup {
    /// A sound entry that needs no network.
    Hit(LimineFiles),
    /// Nothing usable; the reason, for messages.
    Miss(String),
    /// A branch resolved longer ago than `refresh`: re-resolve it, but its entry (if sound)
    /// still serves when the network is down.
    Stale {
        record: RefRecord,
        usable: Option<LimineFiles>,
    },
}

/// Returns the Limine binaries the settings ask for:
///
/// - `path` set: that directory as it is (it must hold [`REQUIRED_FILES`]); no git, no cache.
/// - a full commit id cached and sound, a tag cached, or a branch resolved less than `refresh`
///   ago: the cache entry, without touching the network (and without the lock).
/// - otherwise, under the lock of the repository URL: look again (another process may have
///   just published it), list the remote's refs, fetch only the commit needed into a scratch
///   repository, write its files out, verify them, write the manifest, and rename the
///   directory into place. The branch → commit resolution is remembered.
/// - `offline`: only the cache; branches are not re-resolved, and anything missing is an
///   error that says what is missing and how to get it.
///
/// A commit id that is no branch or tag tip is fetched by its id (shallow over https). An
/// abbreviated one is looked up in the history of the binary branches, of local repositories
/// only: over the network that would download every branch's whole history.
///
/// If re-resolving a cached branch fails on the network, the commit it resolved to last time
/// is used and [`LimineFiles::warnings`] says so.
pub fn acquire(settings: &LimineSettings) -> Result<LimineFiles, LimineError> {
    if let Some(dir) = &settings.path {
        return files::local_dir(dir);
    }
    let url = settings.git.trim();
    let version = settings.version.trim();
    if url.is_empty() {
        return Err(LimineError::Settings(
            "`limine.git` is empty; set it to the Limine repository URL (or a local mirror), or set `limine.path` to a directory holding the Limine binaries".into(),
        ));
    }
    if version.is_empty() {
        return Err(LimineError::Settings(
            "`limine.version` is empty; set it to a binary-release branch (such as `v8.x-binary`), a tag (such as `v8.2.0-binary`) or a commit id".into(),
        ));
    }
    let check = if settings.full_check {
        Check::Full
    } else {
        Check::Quick
    };
    let cache = Cache::new(&settings.cache_dir, url, check);
    let wanted = Wanted::classify(version);

    // Sound entries are never modified in place and are published by rename, so reading
    // without the lock is safe; the lock only serialises the writers.
    let first = lookup(&cache, &wanted, version, settings)?;
    match first {
        Lookup::Hit(files) => return Ok(files),
        Lookup::Miss(reason) if settings.offline => {
            return Err(not_cached(&cache, version, &reason));
        }
        _ => {}
    }

    let _lock = cache.lock()?;
    let again = lookup(&cache, &wanted, version, settings)?;
    if let Lookup::Hit(files) = again {
        return Ok(files);
    }
    cache.remove_stale_temps();
    resolve_and_fetch(&cache, &wanted, version, again)
}

/// Answers from the cache alone.
fn lookup(
    cache: &Cache,
    wanted: &Wanted,
    version: &str,
    settings: &LimineSettings,
) -> Result<Lookup, LimineError> {
    let from_ref = |name: &str| -> Lookup {
        let Some(record) = cache.read_ref(name) else {
            return Lookup::Miss(format!("`{name}` has never been resolved from there"));
        };
        let entry = entry(cache, &record.commit, version, None);
        let age = cache::now_secs().saturating_sub(record.resolved_at);
        let fresh = record.kind == RefKind::Tag
            || settings.offline
            || u128::from(age) * 1000 < settings.refresh.as_millis();
        match entry {
            Ok(files) if fresh => Lookup::Hit(files),
            Err(problem) if fresh => Lookup::Miss(format!(
                "`{name}` resolved to commit {}, but its cache entry is unusable: {problem}",
                record.commit
            )),
            usable => Lookup::Stale {
                record,
                usable: usable.ok(),
            },
        }
    };
    Ok(match wanted {
        Wanted::Commit(commit) => match entry(cache, commit, version, None) {
            Ok(files) => Lookup::Hit(files),
            Err(problem) => Lookup::Miss(format!("commit {commit}: {problem}")),
        },
        Wanted::Prefix(prefix) => {
            let found = cache.entries_with_prefix(prefix);
            match found.as_slice() {
                [] => match from_ref(prefix) {
                    Lookup::Miss(_) => {
                        Lookup::Miss(format!("no cached commit starts with {prefix}"))
                    }
                    other => other,
                },
                [commit] => match entry(cache, commit, version, None) {
                    Ok(files) => Lookup::Hit(files),
                    Err(problem) => Lookup::Miss(format!("commit {commit}: {problem}")),
                },
                several => {
                    return Err(LimineError::Settings(format!(
                        "`limine.version = \"{version}\"` matches several cached commits ({}); give more digits of the commit id",
                        several.join(", ")
                    )));
                }
            }
        }
        Wanted::Ref(name) => from_ref(name),
    })
}

/// The cache entry of `commit`, if it exists and checks out; else why not.
fn entry(
    cache: &Cache,
    commit: &str,
    asked: &str,
    source: Option<FilesSource>,
) -> Result<LimineFiles, String> {
    let dir = cache.entry_dir(commit);
    if !dir.exists() {
        return Err("it is not in the cache".into());
    }
    let manifest = cache::verify(&dir, Some(commit), cache.check)?;
    let mut files = LimineFiles::new(dir, source.unwrap_or(FilesSource::Cache));
    files.commit = Some(commit.to_owned());
    files.version = manifest
        .version
        .or_else(|| LimineVersion::from_ref_name(asked));
    Ok(files)
}

/// What the remote says the version is.
enum Target {
    /// A branch or tag the remote advertises, and what it points at.
    Named(String, RefKind, Oid),
    /// A commit id, with a ref pointing at it if the remote has one, and the version that
    /// ref names.
    Commit(Oid, Option<String>, Option<LimineVersion>),
    /// A prefix that matches no advertised ref: search the binary branches' history.
    Search(String),
}

/// Resolves on the remote and gets the commit (see [`resolve_and_fetch_online`]); when the
/// remote fails (unreachable, or unable to send the commit) and a branch's earlier resolution
/// has a sound entry, that one is used with a warning. Runs under the lock.
fn resolve_and_fetch(
    cache: &Cache,
    wanted: &Wanted,
    version: &str,
    previous: Lookup,
) -> Result<LimineFiles, LimineError> {
    let fallback = match previous {
        Lookup::Stale {
            record,
            usable: Some(files),
        } => Some((record, files)),
        _ => None,
    };
    match (resolve_and_fetch_online(cache, wanted, version), fallback) {
        (
            Err(LimineError::Unreachable { message, .. } | LimineError::BadRemote { message, .. }),
            Some((record, mut files)),
        ) => {
            files.warnings.push(format!(
                "could not check whether `{version}` moved on `{}` ({message}); using commit {}, which it pointed at {} ago",
                cache.url,
                short(&record.commit),
                ago(cache::now_secs().saturating_sub(record.resolved_at))
            ));
            Ok(files)
        }
        (result, _) => result,
    }
}

/// Resolves on the remote, reuses a cache entry for the commit when there is a sound one, else
/// fetches it.
fn resolve_and_fetch_online(
    cache: &Cache,
    wanted: &Wanted,
    version: &str,
) -> Result<LimineFiles, LimineError> {
    let url = cache.url.as_str();
    let remote = RemoteRefs::list(url, &format!("resolve `{version}`"))?;
    let not_found = || LimineError::RefNotFound {
        url: url.to_owned(),
        version: version.to_owned(),
        found: remote.describe_binary_releases(),
    };
    let name = match wanted {
        Wanted::Ref(name) | Wanted::Prefix(name) => Some(name.as_str()),
        Wanted::Commit(_) => None,
    };
    let target = if let Some(r) = name.and_then(|n| remote.branch(n)) {
        Target::Named(version.to_owned(), RefKind::Branch, r.target)
    } else if let Some(r) = name.and_then(|n| remote.tag(n)) {
        Target::Named(version.to_owned(), RefKind::Tag, r.target)
    } else {
        match wanted {
            Wanted::Ref(_) => return Err(not_found()),
            Wanted::Commit(commit) => {
                let oid = parse_oid(commit)?;
                let (via, hint) = tip_of(&remote, commit);
                Target::Commit(oid, via, hint)
            }
            Wanted::Prefix(prefix) => {
                let mut tips: Vec<Oid> = remote
                    .pointing_at(prefix)
                    .iter()
                    .map(|r| r.target)
                    .collect();
                tips.sort();
                tips.dedup();
                match tips.as_slice() {
                    [oid] => {
                        let (via, hint) = tip_of(&remote, prefix);
                        Target::Commit(*oid, via, hint)
                    }
                    _ => Target::Search(prefix.clone()),
                }
            }
        }
    };

    let (files, record) = match target {
        Target::Named(name, kind, oid) => {
            // An annotated tag the remote did not peel names no cache entry: fetch and peel.
            let files = match entry(cache, &oid.to_string(), version, None) {
                Ok(files) => files,
                Err(_) => {
                    let what = match kind {
                        RefKind::Branch => Fetch::Branch(&name),
                        RefKind::Tag => Fetch::Tag(&name),
                    };
                    fetch_and_publish(cache, &what, version, None)?
                }
            };
            (files, Some((name, kind)))
        }
        Target::Commit(oid, via, hint) => {
            if let Ok(files) = entry(cache, &oid.to_string(), version, None) {
                (files, None)
            } else {
                // Fetching one id is cheap where the server allows it; a local repository
                // that does not can be searched instead.
                let files = match fetch_and_publish(cache, &Fetch::Commit(oid, via), version, hint)
                {
                    Ok(files) => files,
                    Err(
                        LimineError::Unreachable { .. }
                        | LimineError::BadRemote { .. }
                        | LimineError::Git { .. },
                    ) if fetch::is_local(&cache.url) => {
                        search_branches(cache, &remote, &oid.to_string(), version, hint)?
                    }
                    Err(other) => return Err(other),
                };
                (files, None)
            }
        }
        Target::Search(prefix) => (
            search_branches(cache, &remote, &prefix, version, None)?,
            None,
        ),
    };
    if let (Some((name, kind)), Some(commit)) = (record, &files.commit) {
        cache.write_ref(
            &name,
            &RefRecord {
                commit: commit.clone(),
                kind,
                resolved_at: cache::now_secs(),
            },
        )?;
    }
    Ok(files)
}

/// Fetches every binary-release branch of a local repository with its history and finds the
/// commit `prefix` names.
fn search_branches(
    cache: &Cache,
    remote: &RemoteRefs,
    prefix: &str,
    version: &str,
    hint: Option<LimineVersion>,
) -> Result<LimineFiles, LimineError> {
    // Over the network that would download the whole history of every binary branch (hundreds
    // of megabytes for Limine), so only local repositories are searched; a full commit id can
    // be fetched by itself.
    if !fetch::is_local(&cache.url) {
        return Err(LimineError::Settings(format!(
            "`limine.version = \"{version}\"` is not the tip of a branch or tag of `{}`, and an abbreviated commit id can only be looked up in the history of a local repository; give the full 40-digit commit id",
            cache.url
        )));
    }
    let branches = remote.binary_branches();
    let not_found = || LimineError::RefNotFound {
        url: cache.url.clone(),
        version: version.to_owned(),
        found: format!(
            " (no commit of its binary-release branches starts with `{prefix}` either){}",
            remote.describe_binary_releases()
        ),
    };
    if branches.is_empty() {
        return Err(not_found());
    }
    let search = Fetch::Branches(&branches);
    fetch_and_publish_with(cache, &search, version, hint, |repo| {
        match repo.find_commit_by_prefix(prefix) {
            Ok(commit) => Ok(commit.id()),
            Err(e) if e.code() == git2::ErrorCode::Ambiguous => {
                Err(LimineError::Settings(format!(
                    "`limine.version = \"{version}\"` is ambiguous in `{}`: several commits start with it; give more digits",
                    cache.url
                )))
            }
            Err(_) => Err(not_found()),
        }
    })
}

fn fetch_and_publish(
    cache: &Cache,
    what: &Fetch<'_>,
    version: &str,
    hint: Option<LimineVersion>,
) -> Result<LimineFiles, LimineError> {
    fetch_and_publish_with(cache, what, version, hint, |_| {
        Err(LimineError::Settings("the fetch named no commit".into()))
    })
}

/// Fetches `what` into a scratch repository, writes the commit's files out, checks them,
/// writes the manifest and publishes the entry. `find` names the commit when the fetch itself
/// does not (a history search).
fn fetch_and_publish_with(
    cache: &Cache,
    what: &Fetch<'_>,
    version: &str,
    hint: Option<LimineVersion>,
    find: impl FnOnce(&Repository) -> Result<Oid, LimineError>,
) -> Result<LimineFiles, LimineError> {
    let temp = cache.temp_dir()?;
    let result = (|| {
        let repo_dir = temp.join("repo.git");
        let repo = Repository::init_bare(&repo_dir)
            .map_err(|e| LimineError::git("create a scratch repository", e))?;
        let commit = match fetch::fetch(&repo, &cache.url, what, &format!("fetch `{version}`"))? {
            Some(commit) => commit,
            None => find(&repo)?,
        };
        let commit_id = commit.to_string();
        // Another name for the same commit (a tag on a branch's tip) may already be cached;
        // a damaged entry is replaced, and the user told.
        let damaged = match entry(cache, &commit_id, version, None) {
            Ok(files) => return Ok(files),
            Err(problem) if cache.entry_dir(&commit_id).exists() => Some(problem),
            Err(_) => None,
        };
        let staged = temp.join("files");
        let extracted = fetch::extract(&repo, commit, &staged)?;
        let missing = files::missing_files(&staged, REQUIRED_FILES);
        if !missing.is_empty() {
            return Err(LimineError::MissingFiles {
                origin: format!("commit {} (`{version}`) of `{}`", short(&commit_id), cache.url),
                missing,
                hint: "it is not a Limine binary release; those are the `vN.x-binary` branches and `vN.M.K-binary` tags".into(),
            });
        }
        let found_version = LimineVersion::from_dir(&staged)
            .or_else(|| LimineVersion::from_ref_name(version))
            .or(hint);
        cache::write_manifest(
            &staged,
            &commit_id,
            &cache.url,
            version,
            found_version,
            &extracted,
        )?;
        cache.publish(&staged, &commit_id)?;
        let mut files =
            entry(cache, &commit_id, version, Some(FilesSource::Fetched)).map_err(|problem| {
                LimineError::Settings(format!(
                    "the freshly fetched commit {commit_id} does not check out: {problem}"
                ))
            })?;
        if let Some(problem) = damaged {
            files.warnings.push(format!(
                "the cached Limine commit {} was damaged ({problem}); fetched it again",
                short(&commit_id)
            ));
        }
        Ok(files)
    })();
    let _ = std::fs::remove_dir_all(&temp);
    result
}

/// A ref pointing at the commit `prefix` names (a binary-release one preferred), and the
/// version a binary-release ref among them stands for.
fn tip_of(remote: &RemoteRefs, prefix: &str) -> (Option<String>, Option<LimineVersion>) {
    let refs = remote.pointing_at(prefix);
    let versioned = refs
        .iter()
        .find_map(|r| LimineVersion::from_ref_name(&r.name).map(|v| (r.name.clone(), v)));
    match versioned {
        Some((name, version)) => (Some(name), Some(version)),
        None => (refs.first().map(|r| r.name.clone()), None),
    }
}

fn parse_oid(commit: &str) -> Result<Oid, LimineError> {
    Oid::from_str(commit).map_err(|e| LimineError::git(format!("read the commit id `{commit}`"), e))
}

fn not_cached(cache: &Cache, version: &str, reason: &str) -> LimineError {
    LimineError::NotCached {
        what: format!(
            "Limine `{version}` from `{}` is not in the cache `{}` ({reason})",
            cache.url,
            cache.root.display()
        ),
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// "5 min", "3 h", "2 days".
fn ago(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_classified() {
        let full = "1dbdf77f82211c42969c7c5114377436fabc9187";
        assert_eq!(Wanted::classify(full), Wanted::Commit(full.into()));
        assert_eq!(
            Wanted::classify(&full.to_uppercase()),
            Wanted::Commit(full.into())
        );
        assert_eq!(
            Wanted::classify("1dbdf77"),
            Wanted::Prefix("1dbdf77".into())
        );
        assert_eq!(Wanted::classify("abc"), Wanted::Ref("abc".into()));
        assert_eq!(
            Wanted::classify("v8.x-binary"),
            Wanted::Ref("v8.x-binary".into())
        );
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(5), "5 s");
        assert_eq!(ago(600), "10 min");
        assert_eq!(ago(3 * 3600), "3 h");
        assert_eq!(ago(3 * 86_400), "3 days");
    }
}
