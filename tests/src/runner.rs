//! Runs the real `cargo-image-runner` program on a kernel inside a throw-away project, with a
//! safety limit, and reports its exit code and output.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The runner binary built for this test run (`CARGO_BIN_EXE_*` of this package).
#[macro_export]
macro_rules! runner_bin {
    () => {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_image-runner-under-test"))
    };
}

/// A temporary package directory with its own `Cargo.toml` and target directory, so each test
/// has its own config and output files.
#[derive(Debug)]
pub struct Project {
    dir: tempfile::TempDir,
    runner: PathBuf,
    root: PathBuf,
}

/// What one runner call did.
#[derive(Debug)]
pub struct Run {
    /// Exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Everything on stdout (the guest's serial output goes here).
    pub stdout: String,
    /// Everything on stderr (runner messages, QEMU warnings).
    pub stderr: String,
    /// Wall-clock time of the call.
    pub elapsed: Duration,
}

impl Run {
    /// Panics with the whole output unless the exit code is `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code; output:\n{self}"
        );
        self
    }

    /// Panics with the whole output unless stdout has a line equal to `line`.
    #[track_caller]
    pub fn assert_serial_line(&self, line: &str) -> &Self {
        assert!(
            self.stdout
                .lines()
                .any(|l| l.trim_end_matches('\r') == line),
            "serial output lacks the line {line:?}; output:\n{self}"
        );
        self
    }

    /// Panics with the whole output unless stderr contains `text`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}; output:\n{self}"
        );
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?} after {:.2} s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// No single runner call in these tests may take longer than this.
const SAFETY_LIMIT: Duration = Duration::from_secs(180);

impl Project {
    /// A project whose `Cargo.toml` has `metadata` as its `[package.metadata.image-runner]`
    /// body (may be empty), written as in `image-runner.toml`: table headers like `[test]` are
    /// placed under the metadata table. `runner` is the binary from [`runner_bin!`].
    pub fn new(runner: PathBuf, metadata: &str) -> Project {
        Self::with_dir_name(runner, "project", metadata)
    }

    /// Like [`Project::new`] with the package in a directory called `name` (to test awkward
    /// paths).
    pub fn with_dir_name(runner: PathBuf, name: &str, metadata: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("image-runner-test-")
            .tempdir()
            .expect("create a temporary directory");
        let root = dir.path().join(name);
        std::fs::create_dir_all(&root).expect("create the package directory");
        let project = Project { dir, runner, root };
        let metadata: String = metadata
            .lines()
            .map(|line| match line.strip_prefix("[[") {
                Some(rest) => format!("[[package.metadata.image-runner.{rest}\n"),
                None => match line.strip_prefix('[') {
                    Some(rest) => format!("[package.metadata.image-runner.{rest}\n"),
                    None => format!("{line}\n"),
                },
            })
            .collect();
        project.write(
            "Cargo.toml",
            &format!(
                "[package]\nname = \"kernel\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[package.metadata.image-runner]\n{metadata}\n"
            ),
        );
        project
    }

    /// The package directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The temporary directory holding everything of this project (unique per test).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The target directory the runner writes to.
    pub fn target_dir(&self) -> PathBuf {
        self.root.join("target")
    }

    /// The folder the runner writes `executable`'s image and run files to (by the rule of
    /// `image_runner_core::context::output_dir_for`, whose own tests pin it down).
    pub fn output_dir(&self, executable: &Path) -> PathBuf {
        image_runner_core::context::output_dir_for(&self.target_dir(), executable)
    }

    /// Writes a file relative to the package directory.
    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directory");
        }
        std::fs::write(&path, text).expect("write project file");
        path
    }

    /// Copies a kernel into the project (at `relative`), as cargo would have built it there.
    pub fn add_kernel(&self, kernel: &Path, relative: &str) -> PathBuf {
        let to = self.root.join(relative);
        std::fs::create_dir_all(to.parent().expect("kernel path has a parent"))
            .expect("create kernel directory");
        std::fs::copy(kernel, &to).expect("copy kernel");
        to
    }

    /// Runs the runner with `args` from the package directory, with a clean environment as far
    /// as the runner's own variables go, plus `env`.
    pub fn run<I, S>(&self, args: I, env: &[(&str, &str)]) -> Run
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        run_with_limit(self.command(args, env))
    }

    /// Like [`Project::run`], with the variables named in `remove` taken out of the
    /// environment (this helper's own `CARGO_IMAGE_RUNNER_CACHE` too, if named).
    pub fn run_without_vars<I, S>(&self, args: I, env: &[(&str, &str)], remove: &[&str]) -> Run
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut command = self.command(args, env);
        for key in remove {
            command.env_remove(key);
        }
        run_with_limit(command)
    }

    /// Starts the runner with `args` and returns at once (for signal and debugger tests);
    /// stdout and stderr are piped.
    pub fn spawn<I, S>(&self, args: I, env: &[(&str, &str)]) -> std::process::Child
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.command(args, env).spawn().expect("start the runner")
    }

    fn command<I, S>(&self, args: I, env: &[(&str, &str)]) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut command = Command::new(&self.runner);
        command
            .args(args.into_iter().map(Into::into))
            .current_dir(&self.root)
            .env("CARGO_TARGET_DIR", self.target_dir())
            .env_remove("CARGO_MANIFEST_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy().to_ascii_uppercase();
            // The host's proxy settings would route the tests' loopback servers through it;
            // a test that is about proxies passes its own.
            // The developer's firmware choices (`OVMF_CODE`, …) are not the test's.
            if name.starts_with("CARGO_IMAGE_RUNNER_")
                || name.ends_with("_PROXY")
                || name.starts_with("OVMF_")
                || name.starts_with("AAVMF_")
            {
                command.env_remove(key);
            }
        }
        command.env("CARGO_IMAGE_RUNNER_CACHE", self.dir.path().join("cache"));
        // QEMU firmware descriptors in the user's config folder would take part in the
        // firmware search: the tests see only the system's.
        command.env("XDG_CONFIG_HOME", self.dir.path().join("config"));
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    /// The command [`Project::run`] would run, to change before running it with
    /// [`run_command`] (environment values or a current directory that are not UTF-8).
    pub fn command_for<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.command(args, &[])
    }

    /// Process IDs of QEMU processes whose command line mentions this project's directory.
    pub fn qemu_processes(&self) -> Vec<u32> {
        qemu_processes_mentioning(self.dir.path())
    }
}

fn run_with_limit(mut command: Command) -> Run {
    let start = Instant::now();
    let child = command.spawn().expect("start the runner");
    finish(child, start)
}

/// Runs a command from [`Project::command_for`] with the same safety limit as [`Project::run`].
pub fn run_command(command: Command) -> Run {
    run_with_limit(command)
}

/// Collects a runner started with [`Project::spawn`], with the same safety limit.
pub fn wait(child: std::process::Child) -> Run {
    finish(child, Instant::now())
}

fn finish(mut child: std::process::Child, start: Instant) -> Run {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the runner") {
            break status;
        }
        if start.elapsed() > SAFETY_LIMIT {
            // SIGTERM first: the runner stops QEMU on it; SIGKILL only if it does not exit.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            std::thread::sleep(Duration::from_secs(3));
            let _ = child.kill();
            let _ = child.wait();
            panic!("the runner did not finish within {SAFETY_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned(),
        elapsed,
    }
}

/// PIDs of `qemu-system-*` processes whose arguments contain `needle`, from `/proc`.
pub fn qemu_processes_mentioning(needle: &Path) -> Vec<u32> {
    let needle = needle.to_string_lossy().into_owned();
    // Without /proc no process could be seen, and every "no QEMU is left" check would pass.
    let entries = std::fs::read_dir("/proc").expect("read /proc to list QEMU processes");
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains("qemu-system") && text.contains(&needle)
        })
        .collect()
}
