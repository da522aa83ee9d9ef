//! Running QEMU: its own process group, a host-side time limit, Ctrl-C/SIGTERM forwarding,
//! serial output teed to the terminal and a log and watched for patterns. No QEMU process
//! outlives the runner: every way out stops the whole group before QEMU is reaped.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use image_runner_core::{CommandSpec, Error};

use crate::command::SerialWiring;
use crate::serial::{Hit, Watch};
use crate::verdict::Ended;

/// How long QEMU gets to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(2);

/// How often a serial log written by QEMU itself is re-read.
const TAIL_INTERVAL: Duration = Duration::from_millis(10);

/// What the supervising loop reacts to.
enum Event {
    /// QEMU exited; on Unix it is not reaped yet (the status comes from `Child::wait`).
    Exited(Option<ExitStatus>),
    /// The user interrupted the runner.
    Signal,
    /// The serial watch reached a verdict.
    Pattern(Hit),
}

/// How to run QEMU and what to do with its serial port.
#[derive(Debug)]
pub(crate) struct Supervision<'a> {
    pub command: &'a CommandSpec,
    pub timeout: Option<Duration>,
    pub serial: &'a SerialWiring,
    /// Where the serial output is saved.
    pub log: &'a Path,
    /// Show the serial output on the terminal.
    pub echo: bool,
    /// Pass the terminal's input to the guest.
    pub interactive: bool,
    pub watch: Watch,
}

type SharedStdin = Arc<Mutex<Option<ChildStdin>>>;

fn spawn_error(spec: &CommandSpec, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::MissingTool {
            program: spec.program.clone(),
            hint: "install QEMU (Debian/Ubuntu: `apt-get install qemu-system-x86` (or -arm, -misc), Fedora: `dnf install qemu-system-x86`, macOS: `brew install qemu`) or set `qemu.binary`".into(),
        }
    } else {
        Error::io("start", &spec.program, e)
    }
}

/// Serial bytes go to the terminal (if echoing), the log (if we write it) and the watch.
struct SerialSink {
    echo: bool,
    log: Option<File>,
    watch: Watch,
    stdin: SharedStdin,
    events: mpsc::Sender<Event>,
}

impl SerialSink {
    fn take(&mut self, bytes: &[u8]) {
        if self.echo {
            let mut out = std::io::stdout().lock();
            // A closed terminal must not stop the log or the watch.
            let _ = out.write_all(bytes).and_then(|()| out.flush());
        }
        if let Some(log) = &mut self.log {
            let _ = log.write_all(bytes);
        }
        for hit in self.watch.feed(bytes) {
            match hit {
                Hit::Send(text) => {
                    if let Ok(mut guard) = self.stdin.lock()
                        && let Some(stdin) = guard.as_mut()
                    {
                        let _ = stdin
                            .write_all(text.as_bytes())
                            .and_then(|()| stdin.flush());
                    }
                }
                verdict => {
                    let _ = self.events.send(Event::Pattern(verdict));
                }
            }
        }
    }
}

/// Reads a pipe to its end into `sink`.
fn pump(mut from: impl Read + Send + 'static, mut sink: SerialSink) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => sink.take(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    })
}

/// Follows a log file QEMU writes (`-serial file:`) until `finished` is set, then reads the rest.
fn follow(path: PathBuf, mut sink: SerialSink, finished: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut file) = File::open(&path) else {
            return;
        };
        let mut buf = [0u8; 8192];
        loop {
            let last_round = finished.load(Ordering::Acquire);
            match file.read(&mut buf) {
                Ok(0) if last_round => break,
                Ok(0) => std::thread::sleep(TAIL_INTERVAL),
                Ok(n) => sink.take(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    })
}

/// Copies QEMU's stderr to ours and keeps it (it explains a failed start).
fn tee_stderr(from: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            all.push_str(&line);
            all.push('\n');
        }
        all
    })
}

/// Passes the user's typing on to the guest. Reading the terminal blocks, so this thread is
/// left to end with the process; it holds only a shared handle to QEMU's stdin.
fn forward_terminal(stdin: SharedStdin) {
    std::thread::spawn(move || {
        let mut from = std::io::stdin();
        let mut buf = [0u8; 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            let Ok(mut guard) = stdin.lock() else { break };
            let Some(to) = guard.as_mut() else { break };
            if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                break;
            }
        }
    });
}

/// Platform part: how QEMU is started in a group, watched, signalled and reaped.
#[cfg(unix)]
mod platform {
    use super::*;
    use std::os::unix::process::CommandExt;

    pub(super) fn prepare(command: &mut std::process::Command) {
        // Its own group, so that stopping the group also stops anything QEMU started. The
        // terminal's Ctrl-C then reaches only us, and we pass it on.
        command.process_group(0);
        // If the runner itself is killed (SIGKILL cannot be caught, so none of our clean-up
        // runs), the kernel kills QEMU with it: no QEMU outlives the runner, ever.
        #[cfg(target_os = "linux")]
        // SAFETY: between fork and exec only async-signal-safe calls are allowed; prctl and
        // getppid are plain system calls.
        unsafe {
            let parent = libc::getpid();
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // The runner may have died before prctl took effect.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other(
                        "the runner exited while QEMU started",
                    ));
                }
                Ok(())
            });
        }
    }

    pub(super) struct Signals {
        handle: signal_hook::iterator::Handle,
        thread: JoinHandle<()>,
    }

    /// Turns SIGINT/SIGTERM/SIGHUP into events for as long as QEMU runs.
    pub(super) fn watch_signals(events: mpsc::Sender<Event>) -> Result<Signals, Error> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| Error::io("install signal handlers for", "qemu", e))?;
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            for _ in signals.forever() {
                if events.send(Event::Signal).is_err() {
                    break;
                }
            }
        });
        Ok(Signals { handle, thread })
    }

    impl Signals {
        pub(super) fn stop(self) {
            self.handle.close();
            let _ = self.thread.join();
        }
    }

    /// Waits for the exit without reaping, so the PID and the group stay ours until `reap`:
    /// no signal can ever reach a recycled PID.
    pub(super) fn watch_exit(child: &Child, events: mpsc::Sender<Event>) -> Option<JoinHandle<()>> {
        let pid = child.id();
        Some(std::thread::spawn(move || {
            loop {
                // SAFETY: `info` is a valid out-pointer; `pid` is our own unreaped child.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                let rc = unsafe {
                    libc::waitid(
                        libc::P_PID,
                        pid as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOWAIT,
                    )
                };
                if rc == 0
                    || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
                {
                    let _ = events.send(Event::Exited(None));
                    break;
                }
            }
        }))
    }

    /// Signals QEMU's whole group; `force` is SIGKILL, else SIGTERM.
    pub(super) fn stop_group(child: &Child, force: bool) {
        let signal = if force { libc::SIGKILL } else { libc::SIGTERM };
        // SAFETY: plain syscall on the group led by our unreaped child.
        unsafe { libc::killpg(child.id() as libc::pid_t, signal) };
    }

    pub(super) fn reap(child: &mut Child, _: Option<ExitStatus>) -> std::io::Result<ExitStatus> {
        // Anything QEMU left behind in its group goes too, before the leader is reaped.
        stop_group(child, true);
        child.wait()
    }

    pub(super) fn signal_of(status: &ExitStatus) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        status.signal()
    }
}

/// Platform part for hosts without process groups and POSIX signals: the waiter owns nothing
/// but a PID, and stopping kills the process tree with the system's tool.
#[cfg(not(unix))]
mod platform {
    use super::*;

    pub(super) fn prepare(_: &mut std::process::Command) {}

    pub(super) struct Signals;

    pub(super) fn watch_signals(_: mpsc::Sender<Event>) -> Result<Signals, Error> {
        Ok(Signals)
    }

    impl Signals {
        pub(super) fn stop(self) {}
    }

    /// No waiter thread: the main loop notices the exit with `try_wait`.
    pub(super) fn watch_exit(_: &Child, _: mpsc::Sender<Event>) -> Option<JoinHandle<()>> {
        None
    }

    pub(super) fn stop_group(child: &Child, _force: bool) {
        let _ = std::process::Command::new("taskkill")
            .args(["/F", "/T", "/PID", &child.id().to_string()])
            .output();
    }

    pub(super) fn reap(child: &mut Child, _: Option<ExitStatus>) -> std::io::Result<ExitStatus> {
        child.wait()
    }

    pub(super) fn signal_of(_: &ExitStatus) -> Option<i32> {
        None
    }
}

/// Waits for the next event until `deadline`.
fn next_event(
    rx: &mpsc::Receiver<Event>,
    child: &mut Child,
    deadline: Option<Instant>,
) -> Option<Event> {
    // Without a waiter thread (non-Unix) the exit is noticed by polling.
    let poll = !cfg!(unix);
    loop {
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        let wait = if poll {
            wait.min(Duration::from_millis(5))
        } else {
            wait
        };
        match rx.recv_timeout(wait) {
            Ok(event) => return Some(event),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Some(Event::Exited(None)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if poll && let Ok(Some(status)) = child.try_wait() {
                    return Some(Event::Exited(Some(status)));
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return None;
                }
            }
        }
    }
}

/// Runs QEMU to its end and reports how it ended.
pub(crate) fn run(s: Supervision<'_>) -> Result<Ended, Error> {
    let (tx, rx) = mpsc::channel();
    // Installed before the spawn, so that a Ctrl-C at any moment reaches the loop below.
    let signals = platform::watch_signals(tx.clone())?;
    let needs_stdin = s.interactive || s.watch.is_active();

    let mut command = s.command.to_command();
    platform::prepare(&mut command);
    command
        .stdin(if needs_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let we_write_log = matches!(s.serial, SerialWiring::Stdio);
    let log = if we_write_log {
        Some(File::create(s.log).map_err(|e| Error::io("create", s.log, e))?)
    } else {
        if let SerialWiring::LogFile(path) = s.serial {
            // Exists before QEMU starts, so the follower can open it at once.
            File::create(path).map_err(|e| Error::io("create", path, e))?;
        }
        None
    };

    let start = Instant::now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            signals.stop();
            return Err(spawn_error(s.command, e));
        }
    };
    let stdin: SharedStdin = Arc::new(Mutex::new(child.stdin.take()));
    if s.interactive {
        forward_terminal(Arc::clone(&stdin));
    }
    let sink = SerialSink {
        echo: s.echo,
        log,
        watch: s.watch,
        stdin: Arc::clone(&stdin),
        events: tx.clone(),
    };
    let finished = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    let stdout = child.stdout.take();
    match (s.serial, stdout) {
        (SerialWiring::Stdio, Some(out)) => readers.push(pump(out, sink)),
        (other, out) => {
            if let SerialWiring::LogFile(path) = other {
                readers.push(follow(path.clone(), sink, Arc::clone(&finished)));
            }
            // QEMU's own stdout (the user's monitor, say) goes straight to the terminal.
            if let Some(out) = out {
                readers.push(pump(
                    out,
                    SerialSink {
                        echo: true,
                        log: None,
                        watch: Watch::new(None, None, &[], "run")?,
                        stdin: Arc::clone(&stdin),
                        events: tx.clone(),
                    },
                ));
            }
        }
    }
    let stderr = child.stderr.take().map(tee_stderr);
    let waiter = platform::watch_exit(&child, tx.clone());
    drop(tx);

    let deadline = s.timeout.map(|t| start + t);
    let mut ended = Ended::default();
    let mut exit_status = None;
    match next_event(&rx, &mut child, deadline) {
        Some(Event::Exited(status)) => exit_status = status,
        Some(Event::Signal) => ended.interrupted = true,
        Some(Event::Pattern(hit)) => ended.pattern = Some(hit),
        None => ended.timed_out = s.timeout,
    }
    let stopped_by_us = ended.interrupted || ended.pattern.is_some() || ended.timed_out.is_some();
    if stopped_by_us {
        platform::stop_group(&child, false);
        let grace_end = Instant::now() + GRACE;
        let mut exited = false;
        while let Some(event) = next_event(&rx, &mut child, Some(grace_end)) {
            if let Event::Exited(status) = event {
                exit_status = status;
                exited = true;
                break;
            }
        }
        if !exited {
            platform::stop_group(&child, true);
            while let Some(event) = next_event(&rx, &mut child, None) {
                if let Event::Exited(status) = event {
                    exit_status = status;
                    break;
                }
            }
        }
    }
    let status = match exit_status {
        Some(status) => status,
        None => platform::reap(&mut child, None)
            .map_err(|e| Error::io("wait for", &s.command.program, e))?,
    };
    ended.duration = start.elapsed();
    if let Some(waiter) = waiter {
        let _ = waiter.join();
    }
    signals.stop();
    // QEMU is gone: its pipes are closed, and a followed log has its last bytes.
    finished.store(true, Ordering::Release);
    if let Ok(mut guard) = stdin.lock() {
        guard.take();
    }
    for reader in readers {
        let _ = reader.join();
    }
    ended.stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if !stopped_by_us {
        ended.status = status.code();
        ended.signal = platform::signal_of(&status);
    }
    Ok(ended)
}
