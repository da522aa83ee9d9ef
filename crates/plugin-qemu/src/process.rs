//! Running QEMU: its own process group, a host-side time limit, Ctrl-C/SIGTERM forwarding, and
//! the serial port teed to the terminal and a log file. No QEMU process outlives the runner.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use runner_core::{CommandSpec, Error};

use crate::verdict::Ended;

/// How long QEMU gets to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(2);

#[cfg(unix)]
enum Event {
    Exited,
    Signal,
}

fn spawn_error(spec: &CommandSpec, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::MissingTool {
            program: spec.program.clone(),
            hint: "install QEMU (Debian/Ubuntu: `apt-get install qemu-system-x86`, Fedora: `dnf install qemu-system-x86`, macOS: `brew install qemu`) or set `qemu.binary`".into(),
        }
    } else {
        Error::io("start", &spec.program, e)
    }
}

/// Copies QEMU's stdout (the guest's serial port) to our stdout and to the log.
fn tee_serial(mut from: impl Read + Send + 'static, mut log: File) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let stdout = std::io::stdout();
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let mut out = stdout.lock();
                    // A closed terminal must not stop the log.
                    let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
                    let _ = log.write_all(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    })
}

/// Copies QEMU's stderr to ours, remembering the last line (it explains a failed start).
fn tee_stderr(from: impl Read + Send + 'static) -> JoinHandle<Option<String>> {
    std::thread::spawn(move || {
        let mut last = None;
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            if !line.trim().is_empty() {
                last = Some(line);
            }
        }
        last
    })
}

/// Passes the user's typing on to the guest's serial port. Reads block, so this thread is left
/// to end with the process; it owns nothing that needs cleaning up.
fn forward_stdin(child: &mut Child) {
    if let Some(mut to) = child.stdin.take() {
        std::thread::spawn(move || {
            let mut from = std::io::stdin();
            let _ = std::io::copy(&mut from, &mut to);
        });
    }
}

/// Runs `spec` to its end and reports how it ended.
#[cfg(unix)]
pub(crate) fn run(
    spec: &CommandSpec,
    timeout: Option<Duration>,
    serial_log: &Path,
    interactive: bool,
) -> Result<Ended, Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    let log = File::create(serial_log).map_err(|e| Error::io("create", serial_log, e))?;
    let (tx, rx) = mpsc::channel();
    // Registered before the spawn so that a Ctrl-C at any moment reaches the loop below.
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::io("install signal handlers for", &spec.program, e))?;
    let signal_handle = signals.handle();
    let signal_tx = tx.clone();
    let signal_thread = std::thread::spawn(move || {
        for _ in signals.forever() {
            if signal_tx.send(Event::Signal).is_err() {
                break;
            }
        }
    });

    let mut command = spec.to_command();
    // Its own group, so that stopping the group also stops anything QEMU started; the
    // terminal's Ctrl-C therefore reaches only us, and we pass it on.
    command
        .process_group(0)
        .stdin(if interactive {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            signal_handle.close();
            let _ = signal_thread.join();
            return Err(spawn_error(spec, e));
        }
    };
    let pid = child.id() as libc::pid_t;
    if interactive {
        forward_stdin(&mut child);
    }
    let serial = child.stdout.take().map(|out| tee_serial(out, log));
    let stderr = child.stderr.take().map(tee_stderr);

    // Waits for the exit without reaping, so the PID (and group) stay ours until we call
    // `child.wait()`: no signal can reach a recycled PID.
    let waiter = std::thread::spawn(move || {
        loop {
            // SAFETY: `info` is a valid out-pointer; `pid` is our unreaped child.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let rc = unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if rc == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
            {
                let _ = tx.send(Event::Exited);
                break;
            }
        }
    });

    let kill_group = |signal: libc::c_int| {
        // SAFETY: plain syscall; the group leader is our unreaped child.
        unsafe { libc::killpg(pid, signal) };
    };
    let deadline = timeout.map(|t| start + t);
    let mut timed_out = None;
    let mut interrupted = false;
    let event = match deadline {
        Some(deadline) => rx.recv_timeout(deadline.saturating_duration_since(Instant::now())),
        None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
    };
    let must_stop = match event {
        Ok(Event::Exited) | Err(mpsc::RecvTimeoutError::Disconnected) => false,
        Ok(Event::Signal) => {
            interrupted = true;
            true
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            timed_out = timeout;
            true
        }
    };
    if must_stop {
        // Stop the whole group: TERM, then KILL if it lingers.
        kill_group(libc::SIGTERM);
        let grace_end = Instant::now() + GRACE;
        let exited = loop {
            match rx.recv_timeout(grace_end.saturating_duration_since(Instant::now())) {
                Ok(Event::Exited) => break true,
                Ok(Event::Signal) => continue,
                Err(_) => break false,
            }
        };
        if !exited {
            kill_group(libc::SIGKILL);
            while let Ok(event) = rx.recv() {
                if matches!(event, Event::Exited) {
                    break;
                }
            }
        }
    }
    // Anything QEMU left behind in its group goes too, before the leader is reaped.
    kill_group(libc::SIGKILL);
    let status = child
        .wait()
        .map_err(|e| Error::io("wait for", &spec.program, e))?;
    let duration = start.elapsed();
    let _ = waiter.join();
    signal_handle.close();
    let _ = signal_thread.join();
    if let Some(serial) = serial {
        let _ = serial.join();
    }
    let last_error = stderr.and_then(|t| t.join().ok().flatten());
    let stopped_by_us = timed_out.is_some() || interrupted;
    Ok(Ended {
        status: status.code(),
        signal: if stopped_by_us { None } else { status.signal() },
        timed_out,
        interrupted,
        duration,
        last_error,
    })
}

/// Runs `spec` to its end and reports how it ended (polling fallback for non-Unix hosts).
#[cfg(not(unix))]
pub(crate) fn run(
    spec: &CommandSpec,
    timeout: Option<Duration>,
    serial_log: &Path,
    interactive: bool,
) -> Result<Ended, Error> {
    let log = File::create(serial_log).map_err(|e| Error::io("create", serial_log, e))?;
    let mut command = spec.to_command();
    command
        .stdin(if interactive {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command.spawn().map_err(|e| spawn_error(spec, e))?;
    if interactive {
        forward_stdin(&mut child);
    }
    let serial = child.stdout.take().map(|out| tee_serial(out, log));
    let stderr = child.stderr.take().map(tee_stderr);
    let mut timed_out = None;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("wait for", &spec.program, e))?
        {
            break status;
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            timed_out = timeout;
            let _ = child.kill();
            break child
                .wait()
                .map_err(|e| Error::io("wait for", &spec.program, e))?;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if let Some(serial) = serial {
        let _ = serial.join();
    }
    let last_error = stderr.and_then(|t| t.join().ok().flatten());
    Ok(Ended {
        status: status.code(),
        signal: None,
        timed_out,
        interrupted: false,
        duration: start.elapsed(),
        last_error,
    })
}
