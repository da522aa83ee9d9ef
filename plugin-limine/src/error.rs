//! What can go wrong while getting Limine or writing its config; every message names the URL,
//! ref or path involved and the next step.

use std::path::{Path, PathBuf};

/// An error of this crate. Converts into [`image_runner_core::Error`] for the pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimineError {
    /// The settings cannot be used as they are.
    #[error("{0}")]
    Settings(String),

    /// The remote could not be reached (network down, no such repository, no HTTPS support).
    #[error("could not reach `{url}` to {action}: {message}. {hint}")]
    Unreachable {
        /// The repository URL or path.
        url: String,
        /// What was being done, e.g. "resolve `v8.x-binary`".
        action: String,
        /// libgit2's message.
        message: String,
        /// The next step for the user.
        hint: String,
    },

    /// The remote answered, but what it sent cannot be used (missing objects, a damaged
    /// repository).
    #[error("could not {action} from `{url}`: {message}. {hint}")]
    BadRemote {
        /// The repository URL or path.
        url: String,
        /// What was being done.
        action: String,
        /// libgit2's message.
        message: String,
        /// The next step for the user.
        hint: String,
    },

    /// The remote has no branch or tag of that name, and it is no commit id either.
    #[error(
        "`{url}` has no branch or tag named `{version}`{found}. Set `limine.version` to a branch (`vN.x-binary`), a tag (`vN.M.K-binary`) or a commit id"
    )]
    RefNotFound {
        /// The repository URL or path.
        url: String,
        /// What was asked for.
        version: String,
        /// The binary-release refs the remote has, as a sentence fragment.
        found: String,
    },

    /// The needed files are not in the cache and fetching is not allowed.
    #[error(
        "{what}, and offline mode (`--offline` or CARGO_NET_OFFLINE) forbids fetching it. Fetch it once while online (`cargo-image-runner limine fetch`, or any run without --offline), or set `limine.path` to a directory holding the Limine binaries (such as /usr/share/limine)"
    )]
    NotCached {
        /// What is missing and where it was looked for.
        what: String,
    },

    /// A directory (a fetched commit or `limine.path`) lacks files Limine needs.
    #[error("{origin} lacks {}: {hint}", missing.join(", "))]
    MissingFiles {
        /// Which directory or commit, in words.
        origin: String,
        /// The missing file names.
        missing: Vec<String>,
        /// The next step.
        hint: String,
    },

    /// A git operation on the local scratch repository failed.
    #[error("git: could not {action}: {source}")]
    Git {
        /// What was being done.
        action: String,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },

    /// A file-system operation failed.
    #[error("could not {action} `{}`: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The entries cannot be written as a `limine.conf`.
    #[error("cannot write limine.conf: {0}")]
    Conf(String),
}

impl LimineError {
    /// An I/O error about `path`.
    pub(crate) fn io(action: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        LimineError::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A failed git operation on the scratch repository.
    pub(crate) fn git(action: impl Into<String>, source: git2::Error) -> Self {
        LimineError::Git {
            action: action.into(),
            source,
        }
    }
}

impl From<LimineError> for image_runner_core::Error {
    fn from(error: LimineError) -> Self {
        match error {
            LimineError::Io {
                action,
                path,
                source,
            } => image_runner_core::Error::Io {
                action,
                path,
                source,
            },
            other => image_runner_core::Error::plugin("limine", other.to_string()),
        }
    }
}
