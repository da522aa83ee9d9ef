//! Command-line interface: the cargo runner form and the subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Builds a bootable image of a kernel and boots it in QEMU.
///
/// As a cargo runner (`runner = "cargo-image-runner"` in `.cargo/config.toml`), cargo calls
/// `cargo-image-runner <EXECUTABLE> [ARGS]...` for `cargo run` and `cargo test`.
#[derive(Debug, Parser)]
#[command(
    name = "cargo-image-runner",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Exit codes: 0 passed, 1 guest failure, 2 runner error, 3 timeout, 4 ended without a verdict (triple fault, killed, QEMU error), 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the image and boot it (what the runner form does).
    Run(RunArgs),
    /// Build the image and print its path.
    Build(RunArgs),
    /// Print the resolved config and which source set each value.
    Config(ConfigArgs),
    /// Remove the images and run files under `<target>/image-runner/`.
    Clean(CleanArgs),
    /// Check what the plugins need on this host (QEMU, firmware, accelerator, bootloaders).
    Doctor(Common),
    /// List every plugin: kind, name, version, and `static` or the library it was loaded from
    /// (the config's `plugins` and `--plugin`).
    Plugins(Common),
    /// Rewrite a configuration written for cargo-image-runner 0.5 in place (the package's and
    /// the workspace's `Cargo.toml` metadata, `image-runner.toml`), showing the diff.
    Migrate(MigrateArgs),
    /// Fetch Limine ahead of time (for offline work), list or clean the cached versions.
    #[cfg(feature = "limine")]
    Limine(LimineArgs),
    /// Download the pinned UEFI firmware release ahead of time, or list installed and cached
    /// firmware.
    #[cfg(feature = "ovmf")]
    Ovmf(OvmfArgs),
}

/// `ovmf` options.
#[cfg(feature = "ovmf")]
#[derive(Debug, Args, Clone)]
pub struct OvmfArgs {
    #[command(flatten)]
    pub common: Common,

    #[command(subcommand)]
    pub action: OvmfAction,
}

/// What to do with UEFI firmware.
#[cfg(feature = "ovmf")]
#[derive(Debug, Subcommand, Clone)]
pub enum OvmfAction {
    /// Download the release `[ovmf]` names (the pinned one by default) into the cache.
    Fetch {
        /// Check and print this architecture's files only (x86_64, aarch64, riscv64,
        /// loongarch64).
        #[arg(long, value_name = "ARCH")]
        arch: Option<String>,
    },
    /// Show the installed firmware per architecture and the downloaded releases.
    List,
}

/// `limine` options.
#[cfg(feature = "limine")]
#[derive(Debug, Args, Clone)]
pub struct LimineArgs {
    #[command(flatten)]
    pub common: Common,

    #[command(subcommand)]
    pub action: LimineAction,
}

/// What to do with the Limine cache.
#[cfg(feature = "limine")]
#[derive(Debug, Subcommand, Clone)]
pub enum LimineAction {
    /// Resolve `limine.version` on `limine.git` now and fetch it into the cache.
    Fetch {
        /// A branch, tag or commit instead of `limine.version`.
        #[arg(long)]
        version: Option<String>,
    },
    /// Show the cached Limine versions.
    List,
    /// Remove cached Limine versions.
    Clean {
        /// Keep this one: a commit id (or prefix) or a branch/tag name.
        #[arg(long, value_name = "REF")]
        keep: Option<String>,
    },
}

/// Options every subcommand shares.
#[derive(Debug, Args, Clone, Default)]
pub struct Common {
    /// Apply the named config profile (also `CARGO_IMAGE_RUNNER_PROFILE`).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,

    /// Override one config key, e.g. `--set test.timeout=30` (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,

    /// The package directory (default: `CARGO_MANIFEST_DIR`, else the nearest `Cargo.toml`).
    #[arg(long, global = true, value_name = "DIR")]
    pub manifest_dir: Option<PathBuf>,

    /// Use only cached or installed files; never touch the network (like `CARGO_NET_OFFLINE`).
    #[arg(long, global = true)]
    pub offline: bool,

    /// Say more (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Load a plugin library (a `cdylib` made with `export_plugin!`), besides those the config
    /// names in `plugins` (repeatable).
    #[arg(long = "plugin", global = true, value_name = "PATH")]
    pub plugins: Vec<PathBuf>,
}

/// The kernel and how to run it.
#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: Common,

    /// Treat the executable as a test (default: detected from its path).
    #[arg(long, conflicts_with = "no_test")]
    pub test: bool,

    /// Treat the executable as a normal program even if it looks like a test.
    #[arg(long)]
    pub no_test: bool,

    /// Print the QEMU command (shell-quoted) instead of running it.
    #[arg(long)]
    pub print_cmd: bool,

    /// Start halted with a gdb stub (`--gdb` for any free port, `--gdb=PORT`) and print how to
    /// attach.
    #[arg(long, value_name = "PORT", num_args = 0..=1, require_equals = true)]
    pub gdb: Option<Option<u16>>,

    /// The kernel executable cargo built.
    #[arg(value_name = "EXECUTABLE", required = true)]
    pub executable: Option<PathBuf>,

    /// Arguments after the executable (for tests, cargo's libtest arguments; not passed to
    /// QEMU). Everything after a `--` goes to QEMU, last on its command line.
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,

    /// The arguments after `--` (split off before parsing, see [`parse`]).
    #[arg(skip)]
    pub runner_args: Vec<String>,
}

impl RunArgs {
    /// The forced test mode, if any.
    pub fn test_mode(&self) -> Option<bool> {
        if self.test {
            Some(true)
        } else if self.no_test {
            Some(false)
        } else {
            None
        }
    }
}

/// `config` options.
#[derive(Debug, Args, Clone, Default)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub common: Common,

    /// The kernel executable (optional: adds the kernel-dependent decisions).
    #[arg(value_name = "EXECUTABLE")]
    pub executable: Option<PathBuf>,
}

/// `migrate` options.
#[derive(Debug, Args, Clone, Default)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub common: Common,

    /// Show the diff and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `clean` options.
#[derive(Debug, Args, Clone, Default)]
pub struct CleanArgs {
    #[command(flatten)]
    pub common: Common,

    /// Only clean this executable's run directory.
    #[arg(value_name = "EXECUTABLE")]
    pub executable: Option<PathBuf>,
}

/// Parses the process arguments; `cargo image-runner ...` (cargo's subcommand form) passes
/// `image-runner` as the first argument, which is dropped. Everything after the first `--` is
/// for QEMU; it is split off first, because the trailing-arguments mode would swallow the `--`.
/// The error is clap's (usage errors, and also `--help` and `--version`, which print and exit).
pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Cli, clap::Error> {
    let mut args: Vec<std::ffi::OsString> = args.into_iter().collect();
    if args.get(1).is_some_and(|a| a == "image-runner") {
        args.remove(1);
    }
    let runner_args: Vec<String> = match args.iter().position(|a| a == "--") {
        Some(at) => args
            .split_off(at)
            .into_iter()
            .skip(1)
            .map(|a| {
                a.into_string().map_err(|a| {
                    clap::Error::raw(
                        clap::error::ErrorKind::InvalidUtf8,
                        format!(
                            "the argument `{}` after `--` is not valid UTF-8; arguments for QEMU must be UTF-8 text\n",
                            a.to_string_lossy()
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    move_options_after_subcommand(&mut args);
    let mut cli = Cli::try_parse_from(args)?;
    match &mut cli.command {
        Some(Command::Run(run) | Command::Build(run)) => run.runner_args = runner_args,
        Some(_) => {}
        None => cli.run.runner_args = runner_args,
    }
    Ok(cli)
}

/// `cargo-image-runner -v build K`: options every subcommand shares, given before the
/// subcommand, are moved after it (`build -v K`). Without this, the runner form's positional
/// executable would take the subcommand's name as the kernel's path.
fn move_options_after_subcommand(args: &mut Vec<std::ffi::OsString>) {
    use clap::CommandFactory;
    let mut at = 1;
    while let Some(arg) = args.get(at).and_then(|a| a.to_str()) {
        let counted_verbose = arg.len() > 1
            && arg.starts_with('-')
            && !arg.starts_with("--")
            && arg[1..].bytes().all(|b| b == b'v');
        at += match arg {
            "--verbose" | "--offline" => 1,
            _ if counted_verbose => 1,
            "--profile" | "--set" | "--manifest-dir" => 2,
            _ if ["--profile=", "--set=", "--manifest-dir="]
                .iter()
                .any(|p| arg.starts_with(p)) =>
            {
                1
            }
            _ => break,
        };
    }
    if at == 1 || at >= args.len() {
        return;
    }
    let Some(word) = args[at].to_str() else {
        return;
    };
    let cli = Cli::command();
    let is_subcommand = word == "help"
        || cli
            .get_subcommands()
            .any(|c| c.get_name() == word || c.get_all_aliases().any(|a| a == word));
    if is_subcommand {
        let options: Vec<_> = args.drain(1..at).collect();
        args.splice(2..2, options);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Cli {
        super::parse(
            std::iter::once("cargo-image-runner")
                .chain(words.iter().copied())
                .map(Into::into),
        )
        .unwrap()
    }

    #[test]
    fn runner_form_keeps_libtest_arguments_away_from_our_flags() {
        let cli = parse(&[
            "/t/deps/k-0123456789abcdef",
            "--nocapture",
            "--test-threads",
            "1",
        ]);
        assert!(cli.command.is_none());
        assert_eq!(
            cli.run.executable.as_deref(),
            Some(std::path::Path::new("/t/deps/k-0123456789abcdef"))
        );
        assert_eq!(cli.run.args, ["--nocapture", "--test-threads", "1"]);
    }

    #[test]
    fn arguments_after_a_double_dash_are_for_qemu() {
        let cli = parse(&["/k", "guest", "--", "-d", "int"]);
        assert_eq!(cli.run.args, ["guest"]);
        assert_eq!(cli.run.runner_args, ["-d", "int"]);
        let cli = parse(&["run", "--gdb=1234", "/k", "--", "-s"]);
        let Some(Command::Run(run)) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.gdb, Some(Some(1234)));
        assert_eq!(run.runner_args, ["-s"]);
    }

    #[cfg(unix)]
    #[test]
    fn an_argument_for_qemu_that_is_not_utf8_is_an_error_not_a_lossy_copy() {
        use std::os::unix::ffi::OsStringExt;
        let args = ["cargo-image-runner", "/k", "--", "-x"]
            .map(std::ffi::OsString::from)
            .into_iter()
            .chain([std::ffi::OsString::from_vec(b"a\xffb".to_vec())]);
        let err = super::parse(args).unwrap_err().to_string();
        assert!(err.contains("after `--` is not valid UTF-8"), "{err}");
    }

    #[test]
    fn subcommands_and_options() {
        let cli = parse(&["build", "--profile", "ci", "--set", "boot=uefi", "/k"]);
        let Some(Command::Build(run)) = cli.command else {
            panic!("not build")
        };
        assert_eq!(run.common.profile.as_deref(), Some("ci"));
        assert_eq!(run.common.overrides, ["boot=uefi"]);
        let cli = parse(&["--print-cmd", "-v", "/k"]);
        assert!(cli.run.print_cmd);
        assert_eq!(cli.run.common.verbose, 1);
    }

    #[test]
    fn shared_options_may_come_before_the_subcommand() {
        let cli = parse(&["-v", "build", "/k"]);
        let Some(Command::Build(run)) = cli.command else {
            panic!("not build: {cli:?}")
        };
        assert_eq!(run.executable.as_deref(), Some(std::path::Path::new("/k")));
        assert_eq!(run.common.verbose, 1);

        let cli = parse(&[
            "--profile",
            "ci",
            "--set=boot=uefi",
            "-vv",
            "--offline",
            "--manifest-dir",
            "/p",
            "run",
            "--gdb",
            "/k",
            "--",
            "-s",
        ]);
        let Some(Command::Run(run)) = cli.command else {
            panic!("not run: {cli:?}")
        };
        assert_eq!(run.common.profile.as_deref(), Some("ci"));
        assert_eq!(run.common.overrides, ["boot=uefi"]);
        assert_eq!(run.common.verbose, 2);
        assert!(run.common.offline);
        assert_eq!(
            run.common.manifest_dir.as_deref(),
            Some(std::path::Path::new("/p"))
        );
        assert_eq!(run.executable.as_deref(), Some(std::path::Path::new("/k")));
        assert_eq!(run.gdb, Some(None));
        assert_eq!(run.runner_args, ["-s"]);

        let cli = parse(&["--set", "qemu.memory=1G", "config"]);
        let Some(Command::Config(config)) = cli.command else {
            panic!("not config: {cli:?}")
        };
        assert_eq!(config.common.overrides, ["qemu.memory=1G"]);

        let cli = parse(&["-v", "doctor"]);
        assert!(matches!(cli.command, Some(Command::Doctor(c)) if c.verbose == 1));

        let cli = parse(&["plugins", "--plugin", "a.so", "--plugin", "b/c.so"]);
        assert!(
            matches!(cli.command, Some(Command::Plugins(c)) if c.plugins == [PathBuf::from("a.so"), PathBuf::from("b/c.so")])
        );

        #[cfg(feature = "limine")]
        {
            let cli = parse(&["--offline", "limine", "fetch"]);
            let Some(Command::Limine(limine)) = cli.command else {
                panic!("not limine: {cli:?}")
            };
            assert!(limine.common.offline);
            assert!(matches!(limine.action, LimineAction::Fetch { .. }));
        }

        // The runner form is untouched: an executable, not a subcommand, follows the options.
        let cli = parse(&["-v", "/t/deps/build-0123456789abcdef", "--nocapture"]);
        assert!(cli.command.is_none());
        assert_eq!(cli.run.common.verbose, 1);
        assert_eq!(cli.run.args, ["--nocapture"]);
    }
}
