//! Running QEMU: its own process group, a host-side time limit, Ctrl-C/SIGTERM forwarding,
//! serial output teed to the terminal and a (capped) log, watched for patterns and for a
//! bootloader or firmware that gives up, and streamed to the serial handler, which may type
//! into the serial port and end the run. On Unix QEMU's monitor (QMP, over an inherited
//! socket) starts the machine, says why it shut down, and reads the firmware's debug console
//! (x86 port 0x402, where SeaBIOS logs) from a ring buffer in QEMU. No QEMU process outlives
//! the runner: every way out (a panicking handler included) stops the whole group before QEMU
//! is reaped.

use std::any::Any;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
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

/// After a failure (a failure pattern, a bootloader giving up), output goes on being read for
/// at most this long, so that the rest of the line and the message after it are kept...
const DRAIN_MAX: Duration = Duration::from_millis(200);

/// ...and stops sooner once the line has ended and the output has been quiet this long.
const DRAIN_QUIET: Duration = Duration::from_millis(100);

/// What the supervising loop reacts to.
enum Event {
    /// QEMU exited; on Unix it is not reaped yet (the status comes from `Child::wait`).
    Exited(Option<ExitStatus>),
    /// The user interrupted the runner.
    Signal,
    /// The serial watch or the boot watch reached a verdict; `true` when the line it was found
    /// in has ended.
    Pattern(Hit, bool),
    /// Output arrived after a verdict; `true` when the verdict's line has ended.
    Output(bool),
    /// The serial handler ended the run with a verdict.
    Finish(Verdict),
    /// The serial handler panicked: the run stops, and the panic goes on once QEMU is reaped.
    HandlerPanicked,
    /// The serial handler set (or cleared) the time at which it ends the run, with what verdict.
    Deadline(Option<(Instant, Verdict)>),
}

/// A picture of the guest's display to save (QMP `screendump`, PNG); `done` hears whether it
/// was written.
pub(crate) struct Shot {
    pub path: PathBuf,
    pub done: Option<mpsc::Sender<bool>>,
}

/// How long a screenshot before stopping QEMU may take.
const SHOT_WAIT: Duration = Duration::from_secs(2);

/// How to run QEMU and what to do with its serial port.
pub(crate) struct Supervision<'a> {
    pub command: &'a CommandSpec,
    pub timeout: Option<Duration>,
    pub serial: &'a SerialWiring,
    /// Where the serial output is saved.
    pub log: &'a Path,
    /// The most bytes of serial output the log keeps (the first and the last half of it);
    /// `None` for no limit.
    pub log_limit: Option<u64>,
    /// Show the serial output on the terminal.
    pub echo: bool,
    /// Pass the terminal's input to the guest.
    pub interactive: bool,
    pub watch: Watch,
    /// Talk to QEMU's monitor (QMP) over an inherited socket: start the machine once the
    /// monitor is connected, and learn why it shut down (Unix only).
    pub monitor: bool,
    /// Attach a debug console on x86's port 0x402 (where SeaBIOS logs) and watch it for the
    /// firmware giving up (with the monitor only). It goes to a ring buffer inside QEMU, read
    /// through the monitor every 100 ms: the firmware writes a byte at a time, and a file,
    /// socket or pipe would cost a system call (or a wake-up of ours) per byte.
    pub firmware_console: bool,
    /// Gets the guest's serial output as it arrives; may type into the serial port and end
    /// the run.
    pub handler: &'a mut dyn SerialHandler,
    /// Where to save a picture of the display when the run is stopped for a time limit or a
    /// failure (with the monitor only).
    pub screenshot: Option<PathBuf>,
    /// Other open fds QEMU inherits under the same numbers (the gdb stub's listening socket).
    pub inherit: Vec<i32>,
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

/// The serial log as the runner writes it: at most `limit` bytes (the first half of it as it
/// comes, the last half kept in memory and written at the end after a note of what was left
/// out), and a failed write reported once.
struct LogWriter {
    file: File,
    path: PathBuf,
    limit: Option<u64>,
    /// Bytes written to the file so far.
    written: u64,
    /// The last bytes, once the first half of the limit is written.
    tail: VecDeque<u8>,
    /// Bytes dropped from the middle.
    omitted: u64,
    failed: bool,
}

impl LogWriter {
    fn new(file: File, path: &Path, limit: Option<u64>) -> LogWriter {
        LogWriter {
            file,
            path: path.to_path_buf(),
            limit,
            written: 0,
            tail: VecDeque::new(),
            omitted: 0,
            failed: false,
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        if self.failed {
            return;
        }
        match self.file.write_all(bytes) {
            Ok(()) => self.written += bytes.len() as u64,
            Err(e) => {
                self.failed = true;
                eprintln!(
                    "warning: cannot write the serial log {}: {e}; the rest of the serial output is not saved there",
                    self.path.display()
                );
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let Some(limit) = self.limit else {
            self.put(bytes);
            return;
        };
        let head = limit / 2;
        let room = usize::try_from(head.saturating_sub(self.written)).unwrap_or(usize::MAX);
        let (now, later) = bytes.split_at(room.min(bytes.len()));
        if !now.is_empty() {
            self.put(now);
        }
        if !later.is_empty() {
            let keep = usize::try_from(limit - head).unwrap_or(usize::MAX);
            self.tail.extend(later);
            if self.tail.len() > keep {
                let excess = self.tail.len() - keep;
                self.tail.drain(..excess);
                self.omitted += excess as u64;
            }
        }
    }

    /// Writes what was kept of the end.
    fn finish(mut self) {
        if self.omitted > 0 {
            let note = format!(
                "\n[cargo-image-runner: {} bytes of serial output left out here; serial.log keeps the first and the last {} bytes (`qemu.serial-log-limit`)]\n",
                self.omitted,
                self.limit.unwrap_or_default() / 2
            );
            self.put(note.as_bytes());
        }
        let tail: Vec<u8> = self.tail.drain(..).collect();
        if !tail.is_empty() {
            self.put(&tail);
        }
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
    log: Option<LogWriter>,
    watch: Option<Watch>,
    /// When the watch reached its verdict (output is reported for a while after it).
    verdict_at: Option<Instant>,
    handler: Option<HandlerLink<'h>>,
    stdin: SharedStdin,
    events: mpsc::Sender<Event>,
    /// Screenshots the handler asks for go to the monitor here...
    shots: Option<mpsc::Sender<Shot>>,
    /// ...or straight into the monitor's socket, at once: the guest goes on meanwhile, and a
    /// kernel that exits right after its report leaves no time for the monitor's next round.
    #[cfg(unix)]
    monitor: Option<std::os::unix::net::UnixStream>,
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
            log.write(bytes);
        }
        if let Some(watch) = &mut self.watch {
            let was_done = watch.is_done();
            for hit in watch.feed(bytes) {
                match hit {
                    Hit::Send(text) => type_into(&self.stdin, text.as_bytes()),
                    verdict => {
                        self.verdict_at = Some(Instant::now());
                        let _ = self
                            .events
                            .send(Event::Pattern(verdict, !watch.line_open()));
                    }
                }
            }
            if was_done
                && self
                    .verdict_at
                    .is_some_and(|at| at.elapsed() < DRAIN_MAX + DRAIN_QUIET)
            {
                let _ = self.events.send(Event::Output(!watch.line_open()));
            }
        }
        self.hand_over(bytes);
    }

    /// Writes the end of the log.
    fn finish(&mut self) {
        if let Some(log) = self.log.take() {
            log.finish();
        }
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
        if let Some(deadline) = link.control.take_deadline() {
            let _ = self.events.send(Event::Deadline(deadline));
        }
        for path in link.control.take_screenshots() {
            #[cfg(unix)]
            if let Some(mut socket) = self.monitor.as_ref() {
                // One write: pause the machine (when QEMU gets to it before the guest exits, the
                // picture is sure to be whole), save the display, go on. No answer is waited for.
                let line = format!(
                    "{{\"execute\": \"stop\", \"id\": \"shot-stop\"}}\n{{\"execute\": \"screendump\", \"arguments\": {}, \"id\": \"shot-now\"}}\n{{\"execute\": \"cont\", \"id\": \"shot-cont\"}}\n",
                    serde_json::json!({"filename": path.to_string_lossy(), "format": "png"})
                );
                let _ = socket.write_all(line.as_bytes());
                continue;
            }
            if let Some(shots) = &self.shots {
                let _ = shots.send(Shot { path, done: None });
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
    // The handler hears of the start (no bytes yet): a watchdog can run from the first moment.
    sink.hand_over(&[]);
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => sink.take(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    sink.finish();
    sink.panic
}

/// Follows a file QEMU writes, re-reading it every `interval`, until `finished` is set; then
/// reads the rest.
fn follow_file(
    path: &Path,
    finished: &AtomicBool,
    interval: Duration,
    mut each: impl FnMut(&[u8]),
) {
    let Ok(mut file) = File::open(path) else {
        return;
    };
    let mut buf = [0u8; 8192];
    loop {
        let last_round = finished.load(Ordering::Acquire);
        match file.read(&mut buf) {
            Ok(0) if last_round => break,
            Ok(0) => std::thread::sleep(interval),
            Ok(n) => each(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// Follows a log file QEMU writes (`-serial file:`) until `finished` is set, then reads the
/// rest; returns what the handler panicked with, if it did.
fn follow(
    path: &Path,
    mut sink: SerialSink<'_>,
    finished: &AtomicBool,
) -> Option<Box<dyn Any + Send>> {
    sink.hand_over(&[]);
    follow_file(path, finished, TAIL_INTERVAL, |bytes| sink.take(bytes));
    sink.panic
}

/// Whether `line` is QEMU's notice that process `pid` sent it a signal
/// (`qemu-system-x86_64: terminating on signal 15 from pid 1234 (name)`).
fn is_stop_notice(line: &str, pid: u32) -> bool {
    line.split_once(": terminating on signal ")
        .and_then(|(_, rest)| rest.split_once(" from pid "))
        .is_some_and(|(_, rest)| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>() == Ok(pid)
        })
}

/// Copies QEMU's stderr to ours and keeps it (it explains a failed start); QEMU's notice of
/// our own stop is left out of both.
fn tee_stderr(from: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut all = String::new();
        let us = std::process::id();
        let mut from = BufReader::new(from);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match from.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&raw);
            let line = text.trim_end_matches(['\n', '\r']);
            if is_stop_notice(line, us) {
                continue;
            }
            eprintln!("{line}");
            all.push_str(line);
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

/// QEMU's monitor (QMP), over a socket QEMU inherits (`fd=`), so that no socket path (with
/// its length limit and its clean-up) is needed; the firmware console is read through it.
#[cfg(unix)]
pub(crate) mod channels {
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, RawFd};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    /// A socket pair: our end, and QEMU's, which it inherits under the same fd number.
    pub(super) struct Channel {
        pub ours: UnixStream,
        theirs: Option<UnixStream>,
        fd: RawFd,
    }

    impl Channel {
        pub fn new() -> std::io::Result<Channel> {
            let (ours, theirs) = UnixStream::pair()?;
            let fd = theirs.as_raw_fd();
            Ok(Channel {
                ours,
                theirs: Some(theirs),
                fd,
            })
        }

        /// QEMU's end, by the number it has in QEMU too.
        pub fn fd(&self) -> RawFd {
            self.fd
        }

        /// Closes QEMU's end here once QEMU has its own copy, so that QEMU's exit ends our
        /// reads.
        pub fn close_theirs(&mut self) {
            self.theirs = None;
        }
    }

    /// Reads `stream` until its end, or, once `finished` is set, until nothing more comes;
    /// `each` gets what arrives, `tick` runs at least every 50 ms.
    fn read_all(
        mut stream: &UnixStream,
        finished: &AtomicBool,
        mut each: impl FnMut(&[u8]),
        mut tick: impl FnMut(),
    ) {
        if stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .is_err()
        {
            return;
        }
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => each(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if finished.load(Ordering::Acquire) {
                        break;
                    }
                }
                Err(_) => break,
            }
            tick();
        }
    }

    /// What the monitor said.
    #[derive(Debug, Default)]
    pub(super) struct MonitorReport {
        /// The monitor answered, and the machine was started (or was not ours to start).
        pub started: bool,
        /// The reason of the last `SHUTDOWN` event.
        pub shutdown: Option<String>,
    }

    /// Where the firmware console's output goes.
    pub(super) type Feed<'a> = &'a mut dyn FnMut(&[u8]);

    /// The firmware console's ring buffer (`-chardev ringbuf`), read through the monitor.
    pub(super) const FIRMWARE_RING: &str = "image-runner-fw";
    /// The id of the monitor socket's chardev.
    pub(super) const MONITOR: &str = "image-runner-qmp";
    /// What the ids of the runner's own QEMU objects start with: QEMU names the id when it
    /// refuses one.
    pub(crate) const ID_PREFIX: &str = "image-runner-";

    /// How often the firmware console's ring buffer is read.
    const FIRMWARE_POLL: Duration = Duration::from_millis(100);

    /// Talks QMP on `stream`: negotiates, starts the machine when `resume` (QEMU was started
    /// with `-S`, so that no event can come before we listen), keeps the reason of the
    /// `SHUTDOWN` event, and, when `firmware` is given, reads the firmware console's ring
    /// buffer every 100 ms into it. Returns once QEMU is gone.
    pub(super) fn converse(
        stream: &UnixStream,
        resume: bool,
        finished: &AtomicBool,
        mut firmware: Option<Feed<'_>>,
        shots: &std::sync::mpsc::Receiver<super::Shot>,
    ) -> MonitorReport {
        let mut report = MonitorReport::default();
        // Screenshots asked for and not answered yet, by request number.
        let waiting =
            std::cell::RefCell::new(Vec::<(u64, Option<std::sync::mpsc::Sender<bool>>)>::new());
        let mut next_shot = 0u64;
        let answer_shot = |id: Option<&str>, written: bool| {
            if let Some(n) = id
                .and_then(|id| id.strip_prefix("shot-"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                let mut waiting = waiting.borrow_mut();
                if let Some(at) = waiting.iter().position(|(k, _)| *k == n) {
                    let (_, done) = waiting.swap_remove(at);
                    if let Some(done) = done {
                        let _ = done.send(written);
                    }
                }
            }
        };
        let mut pending = Vec::new();
        let mut last_poll = Instant::now();
        let send = |command: &str| {
            let mut to: &UnixStream = stream;
            let _ = to.write_all(command.as_bytes());
        };
        let started = std::cell::Cell::new(false);
        let polls = firmware.is_some();
        let each = |bytes: &[u8]| {
            pending.extend_from_slice(bytes);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let Ok(message) = serde_json::from_slice::<serde_json::Value>(&line) else {
                    continue;
                };
                if message.get("QMP").is_some() {
                    send("{\"execute\": \"qmp_capabilities\", \"id\": \"caps\"}\n");
                } else if let Some(value) = message.get("return") {
                    match message.get("id").and_then(|id| id.as_str()) {
                        Some("caps") if resume => {
                            send("{\"execute\": \"cont\", \"id\": \"cont\"}\n");
                            // Counted as started from here: a guest that ends before QEMU's
                            // answer is flushed ran all the same.
                            started.set(true);
                        }
                        Some("caps" | "cont") => started.set(true),
                        Some("fw") => {
                            if let (Some(feed), Some(text)) = (firmware.as_mut(), value.as_str()) {
                                feed(text.as_bytes());
                            }
                        }
                        id => answer_shot(id, true),
                    }
                } else if message.get("error").is_some() {
                    answer_shot(message.get("id").and_then(|id| id.as_str()), false);
                } else if message.get("event").and_then(|e| e.as_str()) == Some("SHUTDOWN") {
                    report.shutdown = message
                        .pointer("/data/reason")
                        .and_then(|r| r.as_str())
                        .map(str::to_owned);
                }
            }
        };
        let tick = || {
            while let Ok(shot) = shots.try_recv() {
                let arguments = serde_json::json!({
                    "filename": shot.path.to_string_lossy(),
                    "format": "png",
                });
                send(&format!(
                    "{{\"execute\": \"screendump\", \"arguments\": {arguments}, \"id\": \"shot-{next_shot}\"}}\n"
                ));
                waiting.borrow_mut().push((next_shot, shot.done));
                next_shot += 1;
            }
            if polls && started.get() && last_poll.elapsed() >= FIRMWARE_POLL {
                last_poll = Instant::now();
                send(&format!(
                    "{{\"execute\": \"ringbuf-read\", \"arguments\": {{\"device\": \"{FIRMWARE_RING}\", \"size\": 65536, \"format\": \"utf8\"}}, \"id\": \"fw\"}}\n"
                ));
            }
        };
        read_all(stream, finished, each, tick);
        report.started = started.get();
        report
    }
}

/// Platform part: how QEMU is started in a group, watched, signalled and reaped.
#[cfg(unix)]
mod platform {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// Lets QEMU inherit `fds` (our sockets are opened close-on-exec).
    pub(super) fn inherit(command: &mut std::process::Command, fds: Vec<std::os::fd::RawFd>) {
        if fds.is_empty() {
            return;
        }
        // SAFETY: only fcntl, async-signal-safe, runs between fork and exec; the fds are
        // open in the parent when it forks (their owners outlive the spawn).
        unsafe {
            command.pre_exec(move || {
                for &fd in &fds {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }

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

    pub(super) fn inherit(_: &mut std::process::Command, _: Vec<i32>) {}

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

/// The monitor and the firmware console of one run, with the arguments that attach them.
#[derive(Default)]
struct Channels {
    #[cfg(unix)]
    monitor: Option<(channels::Channel, bool)>,
    /// The firmware console is attached (read through the monitor).
    #[cfg(unix)]
    firmware: bool,
}

impl Channels {
    /// Opens what `s` asks for and adds its arguments to `spec`.
    fn open(s: &Supervision<'_>, spec: &mut CommandSpec) -> Result<Channels, Error> {
        #[cfg(unix)]
        {
            let mut this = Channels::default();
            if s.monitor {
                this.monitor = Some(Self::monitor(spec)?);
                if s.firmware_console {
                    spec.args([
                        "-chardev".to_owned(),
                        format!("ringbuf,id={},size=65536", channels::FIRMWARE_RING),
                        "-device".to_owned(),
                        format!(
                            "isa-debugcon,iobase=0x402,chardev={}",
                            channels::FIRMWARE_RING
                        ),
                    ]);
                    this.firmware = true;
                }
            }
            Ok(this)
        }
        #[cfg(not(unix))]
        {
            let _ = (s, spec);
            Ok(Channels::default())
        }
    }

    #[cfg(unix)]
    fn monitor(spec: &mut CommandSpec) -> Result<(channels::Channel, bool), Error> {
        let channel = channels::Channel::new()
            .map_err(|e| Error::io("create a socket pair for", &spec.program, e))?;
        // Paused until the monitor listens, so that no event is lost; unless someone else (a
        // debugger) starts it.
        let resume = !spec.args.iter().any(|a| a == "-S");
        spec.args([
            "-chardev".to_owned(),
            format!("socket,id={},fd={}", channels::MONITOR, channel.fd()),
            "-mon".to_owned(),
            format!("chardev={},mode=control", channels::MONITOR),
        ]);
        if resume {
            spec.arg("-S");
        }
        Ok((channel, resume))
    }

    /// The fds QEMU inherits.
    fn fds(&self) -> Vec<i32> {
        #[cfg(unix)]
        {
            self.monitor.iter().map(|(c, _)| c.fd()).collect()
        }
        #[cfg(not(unix))]
        Vec::new()
    }

    /// Closes QEMU's ends here (it has its own now), so that its exit ends our reads.
    fn close_theirs(&mut self) {
        #[cfg(unix)]
        if let Some((channel, _)) = &mut self.monitor {
            channel.close_theirs();
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

    let mut spec = s.command.clone();
    let mut channels = match Channels::open(&s, &mut spec) {
        Ok(channels) => channels,
        Err(e) => {
            signals.stop();
            return Err(e);
        }
    };
    let mut command = spec.to_command();
    platform::prepare(&mut command);
    let mut fds = channels.fds();
    fds.extend(&s.inherit);
    platform::inherit(&mut command, fds);
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
        let file = match File::create(s.log) {
            Ok(file) => file,
            Err(e) => {
                signals.stop();
                return Err(Error::io("create", s.log, e));
            }
        };
        Some(LogWriter::new(file, s.log, s.log_limit))
    } else {
        if let SerialWiring::LogFile(path) = s.serial {
            // Exists before QEMU starts, so the follower can open it at once.
            if let Err(e) = File::create(path) {
                signals.stop();
                return Err(Error::io("create", path, e));
            }
        }
        None
    };

    let (shot_tx, shot_rx) = mpsc::channel::<Shot>();
    let start = Instant::now();
    let spawned = command.spawn();
    drop(command);
    channels.close_theirs();
    let mut child = match spawned {
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
        verdict_at: None,
        handler: Some(HandlerLink {
            handler: s.handler,
            control: Control::new(),
            can_type: serial_input,
            noted_no_input: false,
            finished: false,
        }),
        stdin: Arc::clone(&stdin),
        events: tx.clone(),
        shots: Some(shot_tx.clone()),
        #[cfg(unix)]
        monitor: channels
            .monitor
            .as_ref()
            .and_then(|(channel, _)| channel.ours.try_clone().ok()),
        panic: None,
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take().map(tee_stderr);
    let waiter = platform::watch_exit(&child, tx.clone());
    let finished = AtomicBool::new(false);

    // The readers borrow the handler, so they live in a scope that ends once QEMU is reaped
    // and its pipes are closed.
    let (ended, panic, monitor) = std::thread::scope(|scope| {
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
                        verdict_at: None,
                        handler: None,
                        stdin: Arc::clone(&stdin),
                        events: tx.clone(),
                        shots: None,
                        #[cfg(unix)]
                        monitor: None,
                        panic: None,
                    };
                    readers.push(scope.spawn(move || pump(out, plain_sink)));
                }
            }
        }
        #[cfg(unix)]
        let monitor = channels.monitor.as_ref().map(|(channel, resume)| {
            let finished = &finished;
            let resume = *resume;
            let events = tx.clone();
            let firmware = channels.firmware;
            scope.spawn(move || {
                let mut watch = crate::serial::BootWatch::new();
                let mut feed = |bytes: &[u8]| {
                    for hit in watch.feed(bytes) {
                        if let crate::serial::BootHit::GaveUp(reason) = hit {
                            let _ = events.send(Event::Pattern(Hit::BootFailure(reason), true));
                        }
                    }
                };
                let firmware: Option<channels::Feed<'_>> = firmware.then_some(&mut feed);
                channels::converse(&channel.ours, resume, finished, firmware, &shot_rx)
            })
        });
        drop(tx);
        #[cfg(not(unix))]
        drop(shot_rx);
        let shot = s.monitor.then_some(()).and(s.screenshot.as_deref());
        let ended = supervise(
            &rx,
            &mut child,
            start,
            s.timeout,
            shot.map(|p| (&shot_tx, p)),
        )
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
        #[cfg(unix)]
        let monitor = monitor.and_then(|m| m.join().ok());
        #[cfg(not(unix))]
        let monitor: Option<()> = None;
        (ended, panic, monitor)
    });
    if let Some(payload) = panic {
        std::panic::resume_unwind(payload);
    }
    let mut ended = ended?;
    ended.stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    #[cfg(unix)]
    if let Some(report) = monitor {
        ended.started = Some(report.started);
        ended.shutdown = report.shutdown;
    }
    #[cfg(not(unix))]
    let _ = monitor;
    Ok(ended)
}

/// Keeps reading for a moment after a failure verdict, so that the rest of its line and what
/// follows (a panic message) reach the terminal, the log and the handler: until the line has
/// ended and the output was quiet for [`DRAIN_QUIET`], at most [`DRAIN_MAX`]. Returns QEMU's
/// exit when it exited meanwhile, and whether the user interrupted.
fn drain(
    rx: &mpsc::Receiver<Event>,
    child: &mut Child,
    mut line_done: bool,
) -> (Option<Option<ExitStatus>>, bool) {
    let hard = Instant::now() + DRAIN_MAX;
    let mut last_output = Instant::now();
    loop {
        let deadline = if line_done {
            (last_output + DRAIN_QUIET).min(hard)
        } else {
            hard
        };
        match next_event(rx, child, Some(deadline)) {
            Some(Event::Output(done)) => {
                line_done |= done;
                last_output = Instant::now();
            }
            Some(Event::Exited(status)) => return (Some(status), false),
            Some(Event::Signal) => return (None, true),
            Some(_) => {}
            None => return (None, false),
        }
    }
}

/// Waits for QEMU's end, stops it when a verdict, the user or the time limit says so, and
/// reaps it.
fn supervise(
    rx: &mpsc::Receiver<Event>,
    child: &mut Child,
    start: Instant,
    timeout: Option<Duration>,
    shot: Option<(&mpsc::Sender<Shot>, &Path)>,
) -> std::io::Result<Ended> {
    // A limit too far away to be represented is no limit.
    let deadline = timeout.and_then(|t| start.checked_add(t));
    let mut ended = Ended::default();
    let mut exit_status = None;
    let mut exited = false;
    let mut handler_panicked = false;
    let mut handler_deadline: Option<(Instant, Verdict)> = None;
    let first = loop {
        let wake = match (deadline, handler_deadline.as_ref()) {
            (Some(d), Some((h, _))) => Some(d.min(*h)),
            (d, h) => d.or(h.map(|(at, _)| *at)),
        };
        match next_event(rx, child, wake) {
            // Only output after a verdict: not the first event of interest.
            Some(Event::Output(_)) => {}
            Some(Event::Deadline(new)) => handler_deadline = new,
            None => match handler_deadline.take() {
                Some((at, verdict)) if Instant::now() >= at => break Some(Event::Finish(verdict)),
                _ => break None,
            },
            other => break other,
        }
    };
    match first {
        Some(Event::Exited(status)) => {
            exit_status = status;
            exited = true;
        }
        Some(Event::Signal) => ended.interrupted = true,
        Some(Event::Pattern(hit, line_done)) => {
            if !matches!(hit, Hit::Success(_)) {
                let (exit, interrupted) = drain(rx, child, line_done);
                if let Some(status) = exit {
                    exit_status = status;
                    exited = true;
                }
                ended.interrupted = interrupted;
            }
            ended.pattern = Some(hit);
        }
        Some(Event::Output(_) | Event::Deadline(_)) => unreachable!("skipped above"),
        Some(Event::Finish(verdict)) => ended.handler = Some(verdict),
        Some(Event::HandlerPanicked) => handler_panicked = true,
        None => ended.timed_out = timeout,
    }
    let stopped_by_us = ended.interrupted
        || ended.pattern.is_some()
        || ended.handler.is_some()
        || handler_panicked
        || ended.timed_out.is_some();
    let failing = ended.timed_out.is_some()
        || matches!(&ended.pattern, Some(hit) if !matches!(hit, Hit::Success(_)))
        || matches!(&ended.handler, Some(v) if *v != Verdict::Success && *v != Verdict::Interrupted);
    if failing
        && !exited
        && let Some((shots, path)) = shot
    {
        // The display as it was when the run was judged, before QEMU is stopped.
        let (done, heard) = mpsc::channel();
        let asked = shots.send(Shot {
            path: path.to_path_buf(),
            done: Some(done),
        });
        if asked.is_ok() && heard.recv_timeout(SHOT_WAIT) == Ok(true) {
            ended.screenshot = Some(path.to_path_buf());
        }
    }
    if stopped_by_us && !exited {
        platform::stop_group(child, false);
        let grace_end = Instant::now() + GRACE;
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
            log_limit: None,
            echo: false,
            interactive: false,
            watch,
            monitor: false,
            firmware_console: false,
            handler,
            screenshot: None,
            inherit: Vec::new(),
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

    /// Sets a deadline on the first output it sees, then stays quiet.
    struct Watchdog(Option<Verdict>);

    impl SerialHandler for Watchdog {
        fn output(&mut self, _: &[u8], control: &mut Control) {
            if let Some(verdict) = self.0.take() {
                control.end_at(Instant::now() + Duration::from_millis(300), verdict);
            }
        }
    }

    #[test]
    fn the_handlers_deadline_ends_a_quiet_run() {
        let dir = tempfile::tempdir().unwrap();
        let verdict = Verdict::Timeout {
            after: Duration::from_millis(300),
        };
        let mut handler = Watchdog(Some(verdict.clone()));
        let started = Instant::now();
        let ended = supervise_test(
            &sh("echo started; exec sleep 30", &[]),
            &SerialWiring::Stdio,
            &dir.path().join("serial.log"),
            no_watch(),
            &mut handler,
        );
        assert_eq!(ended.handler, Some(verdict), "{ended:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
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
        assert_eq!(
            crate::judge(
                &ended,
                &image_runner_core::RunMode::choose(&Default::default(), true)
            ),
            failure
        );
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
    #[test]
    fn a_failure_match_lets_its_line_and_the_message_after_it_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serial.log");
        let watch = Watch::new(None, Some("PANIC"), &[], "test").unwrap();
        let capture = Capture::new();
        let mut handler = capture.clone();
        // The rest of the line comes 20 ms after the match, a second line 20 ms later; then
        // nothing for ever. (The drain waits for 100 ms of quiet, 200 ms at most: the gaps
        // leave room for a slow `sleep` start on a loaded machine.)
        let ended = supervise_test(
            &sh(
                "printf 'boot\\nPANIC at '; sleep 0.02; printf 'main.rs:3: out of memory\\n'; sleep 0.02; printf 'backtrace: 0x1234\\n'; exec sleep 30",
                &[],
            ),
            &SerialWiring::Stdio,
            &log,
            watch,
            &mut handler,
        );
        assert_eq!(ended.pattern, Some(Hit::Failure("PANIC".into())));
        assert!(ended.duration < Duration::from_secs(5), "{ended:?}");
        let expected = "boot\nPANIC at main.rs:3: out of memory\nbacktrace: 0x1234\n";
        assert_eq!(std::fs::read_to_string(&log).unwrap(), expected);
        assert_eq!(capture.text(), expected);
    }

    #[test]
    fn output_that_never_stops_is_cut_after_a_moment() {
        let dir = tempfile::tempdir().unwrap();
        let watch = Watch::new(None, Some("PANIC"), &[], "test").unwrap();
        let start = Instant::now();
        let ended = supervise_test(
            &sh("printf 'PANIC'; exec yes", &[]),
            &SerialWiring::Stdio,
            &dir.path().join("serial.log"),
            watch,
            &mut image_runner_core::serial::Ignore,
        );
        assert_eq!(ended.pattern, Some(Hit::Failure("PANIC".into())));
        assert!(start.elapsed() < Duration::from_secs(5), "{ended:?}");
    }

    #[test]
    fn a_limit_too_far_away_is_no_limit() {
        let dir = tempfile::tempdir().unwrap();
        let ended = run(Supervision {
            command: &sh("exit 33", &[]),
            timeout: Some(Duration::from_secs(i64::MAX as u64)),
            serial: &SerialWiring::Stdio,
            log: &dir.path().join("serial.log"),
            log_limit: None,
            echo: false,
            interactive: false,
            watch: no_watch(),
            monitor: false,
            firmware_console: false,
            handler: &mut image_runner_core::serial::Ignore,
            screenshot: None,
            inherit: Vec::new(),
        })
        .unwrap();
        assert_eq!(ended.status, Some(33));
        assert_eq!(ended.timed_out, None);
    }

    #[test]
    fn the_log_keeps_its_first_and_last_part() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serial.log");
        let ended = run(Supervision {
            command: &sh(
                "echo first; head -c 300000 /dev/zero | tr '\\0' x; echo; echo last",
                &[],
            ),
            timeout: Some(Duration::from_secs(20)),
            serial: &SerialWiring::Stdio,
            log: &log,
            log_limit: Some(64 * 1024),
            echo: false,
            interactive: false,
            watch: no_watch(),
            monitor: false,
            firmware_console: false,
            handler: &mut image_runner_core::serial::Ignore,
            screenshot: None,
            inherit: Vec::new(),
        })
        .unwrap();
        assert_eq!(ended.status, Some(0));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.len() <= 64 * 1024 + 200, "{} bytes", text.len());
        assert!(text.starts_with("first\nxxx"));
        assert!(text.ends_with("xxx\nlast\n"));
        let omitted = 6 + 300_001 + 5 - 64 * 1024;
        assert!(
            text.contains(&format!(
                "\n[cargo-image-runner: {omitted} bytes of serial output left out here; serial.log keeps the first and the last 32768 bytes (`qemu.serial-log-limit`)]\n"
            )),
            "{}",
            &text[32760..32768 + 200]
        );
        // Under the limit, the log is the output as it came.
        let mut small = LogWriter::new(File::create(&log).unwrap(), &log, Some(100));
        small.write(b"0123456789");
        small.finish();
        assert_eq!(std::fs::read(&log).unwrap(), b"0123456789");
    }

    #[test]
    fn a_log_that_cannot_be_written_stops_being_written() {
        let path = Path::new("/dev/full");
        let mut log = LogWriter::new(File::create(path).unwrap(), path, None);
        log.write(b"first");
        assert!(log.failed);
        log.write(b"second");
        log.finish();
    }

    #[test]
    fn qemus_notice_of_our_own_stop_is_recognised() {
        let line = "qemu-system-x86_64: terminating on signal 15 from pid 4242 (/bin/runner)";
        assert!(is_stop_notice(line, 4242));
        assert!(!is_stop_notice(line, 424));
        assert!(!is_stop_notice(line, 42421));
        assert!(is_stop_notice(
            "qemu-system-aarch64: terminating on signal 2 from pid 7",
            7
        ));
        assert!(!is_stop_notice("qemu-system-x86_64: -drive x: bad", 7));
    }
}
