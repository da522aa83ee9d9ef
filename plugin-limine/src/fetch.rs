//! Talking to the Limine git repository: listing its refs without cloning, fetching just the
//! one ref asked for into a scratch bare repository (shallow where the transport allows), and
//! writing a commit's files out without a work tree or `.git`.

use std::path::Path;

use git2::{
    AutotagOption, Direction, FetchOptions, ObjectType, Oid, ProxyOptions, Remote, Repository,
    TreeWalkMode,
};

use image_runner_core::CommandSpec;

use crate::error::LimineError;
use crate::version::LimineVersion;

/// The ways forward when the network fails.
const NETWORK_HINT: &str = "Check the URL and the network (a proxy is taken from HTTPS_PROXY or git's http.proxy). To work without the network, use --offline with a Limine already in the cache (`cargo-image-runner limine list`), or set `limine.path` to a directory holding the Limine binaries";

/// One ref the remote advertises, with the commit it points at (tags peeled when the remote
/// says what they peel to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteRef {
    /// Full name: `refs/heads/v8.x-binary`, `refs/tags/v8.2.0-binary`.
    pub name: String,
    /// The object the ref points at: a commit, or an annotated tag the remote did not peel.
    pub target: Oid,
}

/// The refs of a remote, read with one connection and no clone (`git ls-remote`).
#[derive(Debug, Clone, Default)]
pub(crate) struct RemoteRefs {
    refs: Vec<RemoteRef>,
}

impl RemoteRefs {
    /// Reads the ref advertisement of `url`.
    pub fn list(url: &str, action: &str) -> Result<RemoteRefs, LimineError> {
        if uses_git_program(url) {
            return RemoteRefs::list_with_git_program(url, action);
        }
        let mut remote = Remote::create_detached(url).map_err(|e| remote_error(url, action, &e))?;
        let connection = remote
            .connect_auth(Direction::Fetch, None, Some(proxy()))
            .map_err(|e| remote_error(url, action, &e))?;
        let heads = connection
            .list()
            .map_err(|e| remote_error(url, action, &e))?;
        let mut refs: Vec<RemoteRef> = Vec::new();
        for head in heads {
            let name = head.name();
            if let Some(tag) = name.strip_suffix("^{}") {
                // The peeled commit of an annotated tag replaces the tag object.
                if let Some(r) = refs.iter_mut().find(|r| r.name == tag) {
                    r.target = head.oid();
                }
                continue;
            }
            refs.push(RemoteRef {
                name: name.to_owned(),
                target: head.oid(),
            });
        }
        Ok(RemoteRefs { refs })
    }

    /// `git ls-remote URL`: the same advertisement, through the system's git.
    fn list_with_git_program(url: &str, action: &str) -> Result<RemoteRefs, LimineError> {
        let mut command = CommandSpec::new("git");
        command.args(["ls-remote", "--", url]);
        let output = run_git(&command, url, action)?;
        let mut refs: Vec<RemoteRef> = Vec::new();
        for line in output.lines() {
            let Some((oid, name)) = line.split_once('\t') else {
                continue;
            };
            let Ok(oid) = Oid::from_str(oid.trim()) else {
                continue;
            };
            if let Some(tag) = name.strip_suffix("^{}") {
                if let Some(r) = refs.iter_mut().find(|r| r.name == tag) {
                    r.target = oid;
                }
                continue;
            }
            refs.push(RemoteRef {
                name: name.to_owned(),
                target: oid,
            });
        }
        Ok(RemoteRefs { refs })
    }

    /// The branch `name`, if the remote has it.
    pub fn branch(&self, name: &str) -> Option<&RemoteRef> {
        self.find(&format!("refs/heads/{name}"))
    }

    /// The tag `name`, if the remote has it.
    pub fn tag(&self, name: &str) -> Option<&RemoteRef> {
        self.find(&format!("refs/tags/{name}"))
    }

    fn find(&self, full: &str) -> Option<&RemoteRef> {
        self.refs.iter().find(|r| r.name == full)
    }

    /// Branches and tags whose target starts with the hex `prefix`.
    pub fn pointing_at(&self, prefix: &str) -> Vec<&RemoteRef> {
        self.refs
            .iter()
            .filter(|r| r.target.to_string().starts_with(prefix))
            .collect()
    }

    /// Names of the binary-release branches (`vN.x-binary`), oldest first.
    pub fn binary_branches(&self) -> Vec<String> {
        self.binary("refs/heads/")
    }

    /// Names of the binary-release tags (`vN.M.K-binary`), oldest first.
    pub fn binary_tags(&self) -> Vec<String> {
        self.binary("refs/tags/")
    }

    fn binary(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .refs
            .iter()
            .filter_map(|r| r.name.strip_prefix(prefix))
            .filter(|n| n.ends_with("-binary"))
            .map(str::to_owned)
            .collect();
        names.sort_by(|a, b| {
            LimineVersion::from_ref_name(a)
                .cmp(&LimineVersion::from_ref_name(b))
                .then_with(|| a.cmp(b))
        });
        names
    }

    /// "; its binary releases are the branches ... and the tags ..." for a not-found message.
    pub fn describe_binary_releases(&self) -> String {
        let branches = self.binary_branches();
        let tags = self.binary_tags();
        if branches.is_empty() && tags.is_empty() {
            return "; it has no binary-release branches or tags (`*-binary`) at all: is it the Limine repository?".into();
        }
        const SHOWN_TAGS: usize = 8;
        let mut text = String::from("; its binary releases are");
        if !branches.is_empty() {
            text.push_str(" the branches ");
            text.push_str(&branches.join(", "));
        }
        if !tags.is_empty() {
            if !branches.is_empty() {
                text.push_str(" and");
            }
            let skipped = tags.len().saturating_sub(SHOWN_TAGS);
            text.push_str(" the tags ");
            if skipped > 0 {
                text.push_str(&format!("({skipped} older ones, then) "));
            }
            text.push_str(&tags[skipped..].join(", "));
        }
        text
    }
}

/// What to fetch into the scratch repository.
#[derive(Debug, Clone)]
pub(crate) enum Fetch<'a> {
    /// One branch.
    Branch(&'a str),
    /// One tag.
    Tag(&'a str),
    /// One commit by its id. When a branch or tag (full ref name) points at it, that ref is
    /// fetched instead: every server sends ref tips, while fetching an id needs the server to
    /// allow it, which `git daemon` and many mirrors do not by default.
    Commit(Oid, Option<String>),
    /// These branches with their whole history, to find an older commit by id.
    Branches(&'a [String]),
}

/// Fetches `what` from `url` into the bare repository `repo` and returns the commit it
/// stands for (for `Branches`, nothing: look the commit up afterwards).
pub(crate) fn fetch(
    repo: &Repository,
    url: &str,
    what: &Fetch<'_>,
    action: &str,
) -> Result<Option<Oid>, LimineError> {
    let refspecs: Vec<String> = match what {
        Fetch::Branch(b) => vec![format!("+refs/heads/{b}:refs/heads/{b}")],
        Fetch::Tag(t) => vec![format!("+refs/tags/{t}:refs/tags/{t}")],
        Fetch::Commit(_, Some(via)) => vec![format!("+{via}:refs/wanted/commit")],
        Fetch::Commit(oid, None) => vec![format!("+{oid}:refs/wanted/commit")],
        Fetch::Branches(names) => names
            .iter()
            .map(|b| format!("+refs/heads/{b}:refs/heads/{b}"))
            .collect(),
    };
    // Only the newest commit is needed, but libgit2's local transport refuses shallow fetches
    // ("shallow fetch is not supported by the local transport"), and finding an older commit
    // needs the history.
    let shallow = !is_local(url) && !matches!(what, Fetch::Branches(_));
    if uses_git_program(url) {
        let mut command = CommandSpec::new("git");
        command.arg("-C").arg(repo.path());
        command.args(["fetch", "--no-tags", "--quiet"]);
        if shallow {
            command.arg("--depth=1");
        }
        command.arg("--").arg(url).args(refspecs.iter().cloned());
        run_git(&command, url, action)?;
    } else {
        let mut options = FetchOptions::new();
        options
            .download_tags(AutotagOption::None)
            .proxy_options(proxy());
        if shallow {
            options.depth(1);
        }
        let mut remote = repo
            .remote_anonymous(url)
            .map_err(|e| remote_error(url, action, &e))?;
        remote
            .fetch(&refspecs, Some(&mut options), None)
            .map_err(|e| remote_error(url, action, &e))?;
    }
    let fetched = match what {
        Fetch::Branch(b) => Some(peel(repo, &format!("refs/heads/{b}"))?),
        Fetch::Tag(t) => Some(peel(repo, &format!("refs/tags/{t}"))?),
        Fetch::Commit(oid, via) => {
            let got = peel(repo, "refs/wanted/commit")?;
            if got != *oid && via.is_some() {
                // The ref moved since it was listed: ask for the id itself.
                return fetch(repo, url, &Fetch::Commit(*oid, None), action);
            }
            Some(got)
        }
        Fetch::Branches(_) => None,
    };
    Ok(fetched)
}

fn peel(repo: &Repository, name: &str) -> Result<Oid, LimineError> {
    repo.find_reference(name)
        .and_then(|r| r.peel_to_commit())
        .map(|c| c.id())
        .map_err(|e| LimineError::git(format!("read the fetched `{name}`"), e))
}

/// A file written out of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExtractedFile {
    /// Path relative to the checkout, `/`-separated.
    pub path: String,
    /// The git blob id (SHA-1 of the content as a git blob).
    pub blob: Oid,
    /// Size in bytes.
    pub size: u64,
}

/// Writes every file of `commit` under `dest` (which must not exist yet). Symlinks and
/// submodules are skipped; binary branches have neither.
pub(crate) fn extract(
    repo: &Repository,
    commit: Oid,
    dest: &Path,
) -> Result<Vec<ExtractedFile>, LimineError> {
    let tree = repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(|e| LimineError::git(format!("read the tree of commit {commit}"), e))?;
    // Collect first: the walk callback cannot return our errors.
    let mut blobs: Vec<(String, Oid, i32)> = Vec::new();
    let mut bad_name = None;
    tree.walk(TreeWalkMode::PreOrder, |root, entry| {
        let name = entry.name().unwrap_or("");
        if matches!(name, "" | "." | ".." | ".git") || name.contains(['/', '\\']) {
            bad_name = Some(format!(
                "{root}{}",
                String::from_utf8_lossy(entry.name_bytes())
            ));
            return git2::TreeWalkResult::Abort;
        }
        if entry.kind() == Some(ObjectType::Blob) && entry.filemode() != 0o120000 {
            blobs.push((format!("{root}{name}"), entry.id(), entry.filemode()));
        }
        git2::TreeWalkResult::Ok
    })
    .map_err(|e| LimineError::git(format!("walk the tree of commit {commit}"), e))?;
    if let Some(name) = bad_name {
        return Err(LimineError::Settings(format!(
            "commit {commit} holds a file named `{name}`, which cannot be written out safely"
        )));
    }
    std::fs::create_dir(dest).map_err(|e| LimineError::io("create the directory", dest, e))?;
    let mut files = Vec::with_capacity(blobs.len());
    for (path, id, mode) in blobs {
        let target = dest.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| LimineError::io("create the directory", parent, e))?;
        }
        let blob = repo
            .find_blob(id)
            .map_err(|e| LimineError::git(format!("read `{path}` of commit {commit}"), e))?;
        std::fs::write(&target, blob.content())
            .map_err(|e| LimineError::io("write", &target, e))?;
        set_executable(&target, mode == 0o100755)?;
        files.push(ExtractedFile {
            path,
            blob: id,
            size: blob.content().len() as u64,
        });
    }
    Ok(files)
}

#[cfg(unix)]
fn set_executable(path: &Path, executable: bool) -> Result<(), LimineError> {
    use std::os::unix::fs::PermissionsExt;
    if executable {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| LimineError::io("set the permissions of", path, e))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn set_executable(_path: &Path, _executable: bool) -> Result<(), LimineError> {
    Ok(())
}

/// A plain path or a `file://` URL: served by libgit2's local transport.
pub(crate) fn is_local(url: &str) -> bool {
    url.starts_with("file://") || (!url.contains("://") && !looks_like_scp(url))
}

/// `git@host:path` (ssh shorthand); a Windows drive (`C:\...`) is not one.
fn looks_like_scp(url: &str) -> bool {
    match url.split_once(':') {
        Some((host, _)) => host.len() > 1 && !host.contains(['/', '\\']),
        None => false,
    }
}

/// Network URLs go through the system's `git` unless this build has in-process TLS (the
/// `https` feature): the runner then links no OpenSSL (no build dependency, and ~1.5 ms less
/// start-up on every run), and git's own proxy, credential and SSH settings apply.
fn uses_git_program(url: &str) -> bool {
    !is_local(url) && !cfg!(feature = "https")
}

/// Runs a `git` command and returns its standard output; failures are told apart like
/// libgit2's.
fn run_git(command: &CommandSpec, url: &str, action: &str) -> Result<String, LimineError> {
    let output = command
        .to_command()
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| LimineError::Unreachable {
            url: url.to_owned(),
            action: action.to_owned(),
            message: format!("could not run `{}`: {e}", command.program),
            hint: "Install git (Debian/Ubuntu: `apt-get install git`), point `limine.git` at a local mirror (a path or file:// URL), or set `limine.path` to a directory holding the Limine binaries".into(),
        })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim_start_matches("fatal: ").trim())
        .collect::<Vec<_>>()
        .join("; ");
    let message = if message.is_empty() {
        format!("`{command}` failed ({})", output.status)
    } else {
        message
    };
    if message.contains("couldn't find remote ref") || message.contains("not our ref") {
        return Err(LimineError::BadRemote {
            url: url.to_owned(),
            action: action.to_owned(),
            message,
            hint: "Set `limine.version` to a branch or tag the repository has (`git ls-remote` lists them)".into(),
        });
    }
    Err(LimineError::Unreachable {
        url: url.to_owned(),
        action: action.to_owned(),
        message,
        hint: NETWORK_HINT.to_owned(),
    })
}

fn proxy() -> ProxyOptions<'static> {
    let mut proxy = ProxyOptions::new();
    proxy.auto();
    proxy
}

/// A failed conversation with the remote, told apart: unreachable (network, transport, no
/// repository there) or answering with something unusable.
pub(crate) fn remote_error(url: &str, action: &str, error: &git2::Error) -> LimineError {
    use git2::ErrorClass;
    let message = error.message().trim_end_matches('.').to_owned();
    let local = url.strip_prefix("file://").unwrap_or(url);
    if is_local(url) && !Path::new(local).exists() {
        // libgit2 reports a missing local path as an unsupported URL protocol.
        return LimineError::Unreachable {
            url: url.to_owned(),
            action: action.to_owned(),
            message: "there is no repository at that path".into(),
            hint: "Check `limine.git`. To work without it, use --offline with a Limine already in the cache (`cargo-image-runner limine list`), or set `limine.path` to a directory holding the Limine binaries".into(),
        };
    }
    if message.contains("cannot fetch a specific object") {
        return LimineError::BadRemote {
            url: url.to_owned(),
            action: action.to_owned(),
            message: "the server sends only branch and tag tips, and this commit is none of them".into(),
            hint: "Set `limine.version` to a branch or tag, or fetch from a clone of the Limine repository (a local path or file:// URL in `limine.git`)".into(),
        };
    }
    if message.contains("unsupported URL protocol") {
        return LimineError::Unreachable {
            url: url.to_owned(),
            action: action.to_owned(),
            message,
            hint: format!(
                "This build fetches from local paths and file:// URLs{}; point `limine.git` at one of those, or set `limine.path`",
                if cfg!(feature = "https") {
                    " and https://"
                } else {
                    ""
                }
            ),
        };
    }
    match error.class() {
        ErrorClass::Net
        | ErrorClass::Http
        | ErrorClass::Ssl
        | ErrorClass::Ssh
        | ErrorClass::Os
        | ErrorClass::Callback => LimineError::Unreachable {
            url: url.to_owned(),
            action: action.to_owned(),
            message,
            hint: NETWORK_HINT.to_owned(),
        },
        _ => LimineError::BadRemote {
            url: url.to_owned(),
            action: action.to_owned(),
            message,
            hint: "The repository there may be incomplete or damaged (a partial mirror lacks objects); point `limine.git` at the Limine repository or a complete mirror, or set `limine.path` to a directory holding the Limine binaries".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_urls_are_told_apart() {
        assert!(is_local("/srv/limine.git"));
        assert!(is_local("relative/limine.git"));
        assert!(is_local("file:///srv/limine.git"));
        assert!(is_local("C:\\mirrors\\limine.git"));
        assert!(!is_local("https://github.com/limine-bootloader/limine.git"));
        assert!(!is_local("git@github.com:limine-bootloader/limine.git"));
        assert!(!is_local("ssh://git@example.org/limine.git"));
    }

    #[cfg(not(feature = "https"))]
    #[test]
    fn network_urls_use_the_git_program_and_report_its_failure() {
        assert!(uses_git_program("https://example.invalid/limine.git"));
        assert!(!uses_git_program("/srv/limine.git"));
        // Nothing listens on this loopback port: git fails fast, and the error says what to do.
        let err = RemoteRefs::list("git://127.0.0.1:1/limine.git", "resolve `v8.x-binary`")
            .unwrap_err()
            .to_string();
        assert!(err.contains("git://127.0.0.1:1/limine.git"), "{err}");
        assert!(
            err.contains("--offline") && err.contains("limine.path"),
            "{err}"
        );
    }
}
