//! Running QEMU: its own process group, a host-side time limit, Ctrl-C/SIGTERM forwarding,
//! serial output teed to the terminal and a log, watched for patterns and streamed to the
//! serial handler, which may type into the serial port and end the run. No QEMU process
//! outlives the runner: every way out (a panicking handler included) stops the whole group
//! before QEMU is reaped.

use std::any::Any;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use image_runner_core::{CommandSpec, Control, Error, SerialHandler, Verdict};

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
    /// The serial handler ended the run with a verdict.
    Finish(Verdict),
    /// The serial handler panicked: the run stops, and the panic goes on once QEMU is reaped.
    HandlerPanicked,
}

/// How to run QEMU and what to do with its serial port.
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
    /// Gets the guest's serial output as it arrives; may type into the serial port and end
    /// the run.
    pub handler: &'a mut dyn SerialHandler,
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

/// Types `bytes` into QEMU's stdin (the serial port's input under `-serial stdio`), if it is
/// still open.
fn type_into(stdin: &SharedStdin, bytes: &[u8]) {
    if let Ok(mut guard) = stdin.lock()
        && let Some(stdin) = guard.as_mut()
    {
        let _ = stdin.write_all(bytes).and_then(|()| stdin.flush());
    }
}

/// The serial handler as a serial sink drives it.
struct HandlerLink<'h> {
    handler: &'h mut dyn SerialHandler,
    control: Control,
    /// QEMU's stdin is the serial port's input (`-serial stdio`). With `-serial file:` the
    /// user's own use of stdio (a monitor, say) has it, and the handler's input is dropped.
    can_type: bool,
    noted_no_input: bool,
    /// A verdict was passed on; later ones are too late.
    finished: bool,
}

/// Serial bytes go to the terminal (if echoing), the log (if we write it), the watch and the
/// handler.
struct SerialSink<'h> {
    echo: bool,
    log: Option<File>,
    watch: Option<Watch>,
    handler: Option<HandlerLink<'h>>,
    stdin: SharedStdin,
    events: mpsc::Sender<Event>,
    /// What the handler panicked with, to go on with once QEMU is stopped.
    panic: Option<Box<dyn Any + Send>>,
}

impl SerialSink<'_> {
    fn take(&mut self, bytes: &[u8]) {
        if self.echo {
            let mut out = std::io::stdout().lock();
            // A closed terminal must not stop the log or the watch.
            let _ = out.write_all(bytes).and_then(|()| out.flush());
        }
        if let Some(log) = &mut self.log {
            let _ = log.write_all(bytes);
        }
        for hit in self
            .watch
            .as_mut()
            .map(|w| w.feed(bytes))
            .unwrap_or_default()
        {
            match hit {
                Hit::Send(text) => type_into(&self.stdin, text.as_bytes()),
                verdict => {
                    let _ = self.events.send(Event::Pattern(verdict));
                }
            }
        }
        self.hand_over(bytes);
    }

    /// Gives `bytes` to the handler, types what it sends and passes its verdict on.
    fn hand_over(&mut self, bytes: &[u8]) {
        let Some(link) = self.handler.as_mut() else {
            return;
        };
        let HandlerLink {
            handler, control, ..
        } = link;
        if let Err(panic) =
            std::panic::catch_unwind(AssertUnwindSafe(|| handler.output(bytes, control)))
        {
            self.handler = None;
            self.panic = Some(panic);
            let _ = self.events.send(Event::HandlerPanicked);
            return;
        }
        let input = link.control.take_input();
        if !input.is_empty() {
            if link.can_type {
                type_into(&self.stdin, &input);
            } else if !link.noted_no_input {
                link.noted_no_input = true;
                eprintln!(
                    "note: the serial port is wired to a file because your QEMU arguments use stdio, so what the serial handler types cannot reach the guest"
                );
            }
        }
        if let Some(verdict) = link.control.take_verdict()
            && !link.finished
        {
            link.finished = true;
            let _ = self.events.send(Event::Finish(verdict));
        }
    }
}

/// Reads a pipe to its end into `sink`; returns what the handler panicked with, if it did.
fn pump(mut from: impl Read, mut sink: SerialSink<'_>) -> Option<Box<dyn Any + Send>> {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => sink.take(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    sink.panic
}

/// Follows a log file QEMU writes (`-serial file:`) until `finished` is set, then reads the
/// rest; returns what the handler panicked with, if it did.
fn follow(
    path: &Path,
    mut sink: SerialSink<'_>,
    finished: &AtomicBool,
) -> Option<Box<dyn Any + Send>> {
    let Ok(mut file) = File::open(path) else {
        return None;
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
    sink.panic
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

/// Runs QEMU to its end and reports how it ended. A panic of the handler goes on from here,
/// after QEMU is stopped and reaped.
pub(crate) fn run(s: Supervision<'_>) -> Result<Ended, Error> {
    let (tx, rx) = mpsc::channel();
    // Installed before the spawn, so that a Ctrl-C at any moment reaches the loop below.
    let signals = platform::watch_signals(tx.clone())?;
    // When the runner wires the serial port to stdio, QEMU's stdin is its input: always kept
    // open then, so that the handler can type in tests too.
    let serial_input = matches!(s.serial, SerialWiring::Stdio);
    let needs_stdin = s.interactive || s.watch.is_active() || serial_input;

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
    let serial_sink = SerialSink {
        echo: s.echo,
        log,
        watch: Some(s.watch),
        handler: Some(HandlerLink {
            handler: s.handler,
            control: Control::new(),
            can_type: serial_input,
            noted_no_input: false,
            finished: false,
        }),
        stdin: Arc::clone(&stdin),
        events: tx.clone(),
        panic: None,
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take().map(tee_stderr);
    let waiter = platform::watch_exit(&child, tx.clone());
    let finished = AtomicBool::new(false);

    // The readers borrow the handler, so they live in a scope that ends once QEMU is reaped
    // and its pipes are closed.
    let (ended, panic) = std::thread::scope(|scope| {
        let mut readers = Vec::new();
        match (s.serial, stdout) {
            (SerialWiring::Stdio, Some(out)) => {
                readers.push(scope.spawn(move || pump(out, serial_sink)));
            }
            (other, out) => {
                if let SerialWiring::LogFile(path) = other {
                    let finished = &finished;
                    readers.push(scope.spawn(move || follow(path, serial_sink, finished)));
                } else {
                    drop(serial_sink);
                }
                // QEMU's own stdout (the user's monitor, say) goes straight to the terminal.
                if let Some(out) = out {
                    let plain_sink = SerialSink {
                        echo: true,
                        log: None,
                        watch: None,
                        handler: None,
                        stdin: Arc::clone(&stdin),
                        events: tx.clone(),
                        panic: None,
                    };
                    readers.push(scope.spawn(move || pump(out, plain_sink)));
                }
            }
        }
        drop(tx);
        let ended = supervise(&rx, &mut child, start, s.timeout)
            .map_err(|e| Error::io("wait for", &s.command.program, e));
        if let Some(waiter) = waiter {
            let _ = waiter.join();
        }
        signals.stop();
        // QEMU is gone: its pipes are closed, and a followed log has its last bytes.
        finished.store(true, Ordering::Release);
        if let Ok(mut guard) = stdin.lock() {
            guard.take();
        }
        let mut panic = None;
        for reader in readers {
            if let Ok(Some(payload)) = reader.join() {
                panic.get_or_insert(payload);
            }
        }
        (ended, panic)
    });
    if let Some(payload) = panic {
        std::panic::resume_unwind(payload);
    }
    let mut ended = ended?;
    ended.stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    Ok(ended)
}

/// Waits for QEMU's end, stops it when a verdict, the user or the time limit says so, and
/// reaps it.
fn supervise(
    rx: &mpsc::Receiver<Event>,
    child: &mut Child,
    start: Instant,
    timeout: Option<Duration>,
) -> std::io::Result<Ended> {
    let deadline = timeout.map(|t| start + t);
    let mut ended = Ended::default();
    let mut exit_status = None;
    let mut handler_panicked = false;
    match next_event(rx, child, deadline) {
        Some(Event::Exited(status)) => exit_status = status,
        Some(Event::Signal) => ended.interrupted = true,
        Some(Event::Pattern(hit)) => ended.pattern = Some(hit),
        Some(Event::Finish(verdict)) => ended.handler = Some(verdict),
        Some(Event::HandlerPanicked) => handler_panicked = true,
        None => ended.timed_out = timeout,
    }
    let stopped_by_us = ended.interrupted
        || ended.pattern.is_some()
        || ended.handler.is_some()
        || handler_panicked
        || ended.timed_out.is_some();
    if stopped_by_us {
        platform::stop_group(child, false);
        let grace_end = Instant::now() + GRACE;
        let mut exited = false;
        while let Some(event) = next_event(rx, child, Some(grace_end)) {
            if let Event::Exited(status) = event {
                exit_status = status;
                exited = true;
                break;
            }
        }
        if !exited {
            platform::stop_group(child, true);
            while let Some(event) = next_event(rx, child, None) {
                if let Event::Exited(status) = event {
                    exit_status = status;
                    break;
                }
            }
        }
    }
    let status = match exit_status {
        Some(status) => status,
        None => platform::reap(child, None)?,
    };
    ended.duration = start.elapsed();
    if !stopped_by_us {
        ended.status = status.code();
        ended.signal = platform::signal_of(&status);
    }
    Ok(ended)
}

/// The supervision with `sh` standing in for QEMU: the handler path, the send rules and the
/// serial log, with the serial port wired as QEMU would wire it.
#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use image_runner_core::config::SendRule;
    use image_runner_core::serial::{AnswerOn, Capture, EndOn};

    /// `sh -c script args…`: a QEMU whose serial port is its stdio.
    fn sh(script: &str, args: &[&str]) -> CommandSpec {
        let mut command = CommandSpec::new("sh");
        command.args(["-c", script]).args(args.iter().copied());
        command
    }

    fn no_watch() -> Watch {
        Watch::new(None, None, &[], "test").unwrap()
    }

    /// Runs `command` as a test run (no terminal input) with a 20 s limit.
    fn supervise_test(
        command: &CommandSpec,
        serial: &SerialWiring,
        log: &Path,
        watch: Watch,
        handler: &mut dyn SerialHandler,
    ) -> Ended {
        run(Supervision {
            command,
            timeout: Some(Duration::from_secs(20)),
            serial,
            log,
            echo: false,
            interactive: false,
            watch,
            handler,
        })
        .unwrap()
    }

    const ASKS_NAME: &str =
        r#"printf 'name? '; read name; printf 'hello %s\n' "$name"; exec sleep 30"#;

    #[test]
    fn the_handler_types_and_ends_the_run_in_test_mode_without_send_rules() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serial.log");
        let capture = Capture::new();
        let mut handler = (
            capture.clone(),
            (
                AnswerOn::new("name? ", "world\n"),
                EndOn::new("hello world\n", Verdict::Success),
            ),
        );
        let start = Instant::now();
        let ended = supervise_test(
            &sh(ASKS_NAME, &[]),
            &SerialWiring::Stdio,
            &log,
            no_watch(),
            &mut handler,
        );
        assert!(start.elapsed() < Duration::from_secs(10), "{ended:?}");
        assert_eq!(ended.handler, Some(Verdict::Success), "{ended:?}");
        assert_eq!(ended.timed_out, None);
        assert_eq!(ended.status, None, "stopped by the runner, not exited");
        assert_eq!(capture.text(), "name? hello world\n");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "name? hello world\n"
        );
    }

    #[test]
    fn the_handlers_verdict_is_reported_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let failure = Verdict::GuestFailure {
            code: Some(7),
            reason: "the handler saw a panic".into(),
        };
        let mut handler = EndOn::new("PANIC", failure.clone());
        let ended = supervise_test(
            &sh("printf 'boot\\nPANIC\\n'; exec sleep 30", &[]),
            &SerialWiring::Stdio,
            &dir.path().join("serial.log"),
            no_watch(),
            &mut handler,
        );
        assert_eq!(ended.handler, Some(failure.clone()));
        assert_eq!(crate::judge(&ended, true, 33), failure);
    }

    #[test]
    fn send_rules_and_patterns_work_beside_the_handler() {
        let dir = tempfile::tempdir().unwrap();
        let rule: SendRule = toml::from_str("after = 'name\\? '\ntext = \"rules\\n\"").unwrap();
        let watch = Watch::new(Some("^hello rules$"), None, &[rule], "test").unwrap();
        let capture = Capture::new();
        let mut handler = capture.clone();
        let ended = supervise_test(
            &sh(ASKS_NAME, &[]),
            &SerialWiring::Stdio,
            &dir.path().join("serial.log"),
            watch,
            &mut handler,
        );
        assert_eq!(ended.pattern, Some(Hit::Success("hello rules".into())));
        assert_eq!(ended.handler, None);
        assert_eq!(capture.text(), "name? hello rules\n");
    }

    #[test]
    fn the_handler_reads_a_serial_log_qemu_writes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serial.log");
        let log_arg = log.to_str().unwrap();
        // The user's arguments took stdio (a monitor), so the serial port goes to the log file:
        // what the handler types cannot reach the guest there and must not go to QEMU's stdin
        // (open here for the watch's send rules).
        let watch = Watch::new(None, Some("never printed"), &[], "test").unwrap();
        let mut handler = (
            AnswerOn::new("booted", "typed\n"),
            EndOn::new("ready\n", Verdict::Success),
        );
        let ended = supervise_test(
            &sh(
                r#"printf 'booted\n' >> "$0"; timeout 1 head -c 6 >> "$0"; printf 'ready\n' >> "$0"; exec sleep 30"#,
                &[log_arg],
            ),
            &SerialWiring::LogFile(log.clone()),
            &log,
            watch,
            &mut handler,
        );
        assert_eq!(ended.handler, Some(Verdict::Success), "{ended:?}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "booted\nready\n");
    }

    struct Panics;

    impl SerialHandler for Panics {
        fn output(&mut self, _: &[u8], _: &mut Control) {
            panic!("handler bug");
        }
    }

    #[test]
    fn a_panicking_handler_stops_qemu_and_the_panic_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let start = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            supervise_test(
                &sh(
                    r#"echo $$ > "$0"; printf 'output'; exec sleep 30"#,
                    &[pid_file.to_str().unwrap()],
                ),
                &SerialWiring::Stdio,
                &dir.path().join("serial.log"),
                no_watch(),
                &mut Panics,
            )
        }));
        let payload = result.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"handler bug"));
        assert!(start.elapsed() < Duration::from_secs(10));
        let pid: libc::pid_t = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: signal 0 only asks whether the process exists.
        assert_eq!(unsafe { libc::kill(pid, 0) }, -1, "QEMU outlived the run");
    }
}
