//! Turning how QEMU ended into a verdict; a status is never taken for more than it says.

use std::time::Duration;

use image_runner_core::{RunMode, Verdict};

use crate::serial::Hit;

/// How the QEMU process ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ended {
    /// Exit status, when QEMU exited by itself.
    pub status: Option<i32>,
    /// Signal that killed QEMU, when one did and we did not send it.
    pub signal: Option<i32>,
    /// We stopped it at the time limit.
    pub timed_out: Option<Duration>,
    /// We stopped it because the user interrupted the runner.
    pub interrupted: bool,
    /// We stopped it because a serial pattern matched or the boot watch saw the bootloader or
    /// firmware give up.
    pub pattern: Option<Hit>,
    /// We stopped it because the serial handler ended the run with this verdict.
    pub handler: Option<Verdict>,
    /// Run time.
    pub duration: Duration,
    /// What QEMU wrote on stderr (without its notice of the runner's own stop).
    pub stderr: String,
    /// Whether the machine was seen running (QEMU's monitor answered and the machine was
    /// started); `None` when QEMU's monitor was not watched.
    pub started: Option<bool>,
    /// Why the machine shut down, from the monitor's `SHUTDOWN` event: `guest-shutdown` (it
    /// powered off), `guest-reset` (a reset or triple fault, an exit under `-no-reboot`),
    /// `host-signal`, ...; `None` when no such event was seen.
    pub shutdown: Option<String>,
    /// Where a picture of the display was saved before the runner stopped a failing run.
    pub screenshot: Option<std::path::PathBuf>,
}

impl Ended {
    /// QEMU's error line: the last line QEMU prefixed with its name (not a warning), else the
    /// last line saying "error", else the last line.
    pub fn error_line(&self) -> Option<&str> {
        self.qemu_error()
            .or_else(|| {
                self.lines()
                    .find(|l| l.to_ascii_lowercase().contains("error"))
            })
            .or_else(|| self.lines().next())
    }

    /// Non-empty stderr lines, last first.
    fn lines(&self) -> impl Iterator<Item = &str> {
        self.stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .rev()
    }

    /// The last line QEMU prefixed with its name that is not a warning.
    fn qemu_error(&self) -> Option<&str> {
        self.lines().find(|l| {
            (l.starts_with("qemu-system-") || l.starts_with("qemu:")) && !l.contains("warning:")
        })
    }
}

/// Judges a run in `mode`. Only the success code or the success pattern pass; outside tests
/// a clean power-off (status 0) passes too, unless a success pattern was asked for or QEMU's
/// monitor says the machine reset rather than powered off. A verdict the serial handler gave
/// is taken as it is.
pub fn judge(ended: &Ended, mode: &RunMode) -> Verdict {
    let success = mode.success_exit_code;
    if ended.interrupted {
        return Verdict::Interrupted;
    }
    if let Some(verdict) = &ended.handler {
        return verdict.clone();
    }
    match &ended.pattern {
        Some(Hit::Success(_)) => return Verdict::Success,
        Some(Hit::Failure(text)) => {
            return Verdict::GuestFailure {
                code: None,
                reason: format!("the serial output matched the failure pattern: {text:?}"),
            };
        }
        Some(Hit::BootFailure(reason)) => {
            return Verdict::Crashed {
                reason: reason.clone(),
            };
        }
        _ => {}
    }
    if let Some(after) = ended.timed_out {
        return Verdict::Timeout { after };
    }
    if let Some(signal) = ended.signal {
        return Verdict::Crashed {
            reason: format!("QEMU was killed by signal {signal}"),
        };
    }
    let Some(status) = ended.status else {
        return Verdict::Crashed {
            reason: "QEMU ended without an exit status".into(),
        };
    };
    if status == success {
        return Verdict::Success;
    }
    let never_started = ended.started == Some(false);
    let qemu_failed = |line: &str| Verdict::Crashed {
        reason: format!("QEMU failed: {line}"),
    };
    match status {
        0 => match ended.shutdown.as_deref() {
            Some("guest-reset") => Verdict::Crashed {
                reason: "the guest reset (a triple fault, or a reboot, which -no-reboot turns into an exit) without reporting a verdict".into(),
            },
            // A power-off, or the user closing QEMU (its window, or a `quit` on their own
            // monitor), ends a normal run.
            Some("guest-shutdown" | "host-ui" | "host-qmp-quit") | None if !mode.is_test => match &mode.success_pattern {
                Some(pattern) => Verdict::Crashed {
                    reason: format!(
                        "the guest powered off, but its serial output never matched `{}.success-pattern` ({pattern:?})",
                        mode.name()
                    ),
                },
                None => Verdict::Success,
            },
            Some("guest-shutdown") => Verdict::Crashed {
                reason: "QEMU exited with status 0, which is no test verdict: the guest powered off without reporting one".into(),
            },
            None => Verdict::Crashed {
                reason: "QEMU exited with status 0, which is no test verdict: the guest reset (a triple fault under -no-reboot) or powered off without reporting".into(),
            },
            Some(closed @ ("host-ui" | "host-qmp-quit")) => Verdict::Crashed {
                reason: format!("QEMU was closed ({closed}) before the guest reported a verdict"),
            },
            Some(other) => match ended.error_line() {
                Some(line) => qemu_failed(line),
                None => Verdict::Crashed {
                    reason: format!("QEMU stopped the machine ({other}) before it reported a verdict"),
                },
            },
        },
        s if never_started => match ended.error_line() {
            Some(line) => qemu_failed(line),
            None => Verdict::Crashed {
                reason: format!(
                    "QEMU exited with status {s} before the machine started, and said nothing on stderr"
                ),
            },
        },
        // A guest write of 0 to the exit port and QEMU's own failure both give status 1;
        // once the machine is known to run, it is the guest's unless QEMU says otherwise.
        1 if ended.started.is_none() || ended.qemu_error().is_some() => {
            match ended.error_line() {
                Some(line) => qemu_failed(line),
                None => Verdict::GuestFailure {
                    code: Some(0),
                    reason: "QEMU exited with status 1 and said nothing: the guest wrote 0x0 to the exit port, or QEMU failed silently".into(),
                },
            }
        }
        s if s % 2 == 1 => Verdict::GuestFailure {
            code: Some(s >> 1),
            reason: format!(
                "the guest wrote {:#x} to the exit port (QEMU status {s}, success is {success})",
                s >> 1
            ),
        },
        s => Verdict::GuestFailure {
            code: Some(s),
            reason: format!("QEMU exited with status {s} (success is {success})"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image_runner_core::Config;

    /// The run mode: a test or a normal run, with `success` as the success exit code.
    fn mode(is_test: bool, success: i32) -> RunMode {
        let mut mode = RunMode::choose(&Config::default(), is_test);
        mode.success_exit_code = success;
        mode
    }

    fn judge(ended: &Ended, is_test: bool, success: i32) -> Verdict {
        super::judge(ended, &mode(is_test, success))
    }

    fn exited(status: i32) -> Ended {
        Ended {
            status: Some(status),
            ..Ended::default()
        }
    }

    #[test]
    fn only_the_success_code_passes_a_test() {
        assert_eq!(judge(&exited(33), true, 33), Verdict::Success);
        assert!(matches!(
            judge(&exited(35), true, 33),
            Verdict::GuestFailure {
                code: Some(0x11),
                ..
            }
        ));
        assert!(matches!(
            judge(&exited(0), true, 33),
            Verdict::Crashed { .. }
        ));
        assert!(matches!(
            judge(&exited(2), true, 33),
            Verdict::GuestFailure { code: Some(2), .. }
        ));
        assert_eq!(judge(&exited(2), true, 2), Verdict::Success);
    }

    #[test]
    fn a_clean_power_off_passes_a_normal_run() {
        assert_eq!(judge(&exited(0), false, 33), Verdict::Success);
        assert!(matches!(
            judge(&exited(35), false, 33),
            Verdict::GuestFailure { .. }
        ));
    }

    #[test]
    fn qemu_errors_are_not_guest_failures() {
        let mut e = exited(1);
        e.stderr = "qemu-system-x86_64: -drive x: bad\n".into();
        assert!(matches!(judge(&e, true, 33), Verdict::Crashed { .. }));
        e.status = None;
        e.signal = Some(9);
        assert!(matches!(judge(&e, true, 33), Verdict::Crashed { .. }));
        e.timed_out = Some(Duration::from_secs(3));
        assert!(matches!(judge(&e, true, 33), Verdict::Timeout { .. }));
    }

    #[test]
    fn patterns_decide_before_anything_else_but_interruption() {
        let mut e = Ended {
            pattern: Some(Hit::Success("ok".into())),
            ..Ended::default()
        };
        assert_eq!(judge(&e, true, 33), Verdict::Success);
        e.pattern = Some(Hit::Failure("PANIC".into()));
        assert!(matches!(
            judge(&e, true, 33),
            Verdict::GuestFailure { code: None, .. }
        ));
        e.interrupted = true;
        assert_eq!(judge(&e, true, 33), Verdict::Interrupted);
    }

    #[test]
    fn the_handlers_verdict_is_taken_as_it_is() {
        let reason = "the handler saw a kernel panic".to_owned();
        let e = Ended {
            handler: Some(Verdict::Crashed {
                reason: reason.clone(),
            }),
            ..Ended::default()
        };
        // Even in a normal run, where no status was seen, and whatever the exit code says.
        assert_eq!(judge(&e, false, 33), Verdict::Crashed { reason });
        let e = Ended {
            handler: Some(Verdict::Success),
            status: Some(3),
            ..Ended::default()
        };
        assert_eq!(judge(&e, true, 33), Verdict::Success);
        let e = Ended {
            interrupted: true,
            ..e
        };
        assert_eq!(judge(&e, true, 33), Verdict::Interrupted);
    }

    fn ran(status: i32, shutdown: Option<&str>) -> Ended {
        Ended {
            status: Some(status),
            started: Some(true),
            shutdown: shutdown.map(str::to_owned),
            ..Ended::default()
        }
    }

    #[test]
    fn a_reset_is_no_clean_power_off() {
        let reset = ran(0, Some("guest-reset"));
        for is_test in [true, false] {
            let verdict = judge(&reset, is_test, 33);
            assert!(
                matches!(&verdict, Verdict::Crashed { reason } if reason.contains("the guest reset")),
                "{verdict:?}"
            );
        }
        let off = ran(0, Some("guest-shutdown"));
        assert_eq!(judge(&off, false, 33), Verdict::Success);
        let verdict = judge(&off, true, 33);
        assert!(
            matches!(&verdict, Verdict::Crashed { reason } if reason.contains("powered off without reporting")),
            "{verdict:?}"
        );
        // The user closed QEMU's window: the end of a normal run, no test verdict.
        let closed = ran(0, Some("host-ui"));
        assert_eq!(judge(&closed, false, 33), Verdict::Success);
        assert!(matches!(judge(&closed, true, 33), Verdict::Crashed { .. }));
        // Stopped from outside (someone else's SIGTERM): QEMU's own words.
        let mut outside = ran(0, Some("host-signal"));
        outside.stderr =
            "qemu-system-x86_64: terminating on signal 15 from pid 4242 (kill)\n".into();
        assert_eq!(
            judge(&outside, false, 33),
            Verdict::Crashed {
                reason:
                    "QEMU failed: qemu-system-x86_64: terminating on signal 15 from pid 4242 (kill)"
                        .into()
            }
        );
    }

    #[test]
    fn a_success_pattern_never_seen_is_no_pass_of_a_normal_run() {
        let mut run = mode(false, 33);
        run.success_pattern = Some("^all passed$".into());
        for ended in [ran(0, Some("guest-shutdown")), exited(0)] {
            let verdict = super::judge(&ended, &run);
            assert!(
                matches!(&verdict, Verdict::Crashed { reason } if reason.contains("`run.success-pattern`")),
                "{verdict:?}"
            );
        }
        // The success code still passes.
        assert_eq!(super::judge(&exited(33), &run), Verdict::Success);
    }

    #[test]
    fn status_1_is_the_guests_only_once_the_machine_ran() {
        // QEMU gave up before the machine started, silently.
        let mut e = exited(1);
        e.started = Some(false);
        let verdict = judge(&e, true, 33);
        assert_eq!(
            verdict,
            Verdict::Crashed {
                reason: "QEMU exited with status 1 before the machine started, and said nothing on stderr".into()
            }
        );
        // The machine ran: the guest wrote 0, even with warnings on stderr.
        let mut e = ran(1, None);
        e.stderr = "qemu-system-x86_64: warning: TCG doesn't support requested feature\n".into();
        assert!(matches!(
            judge(&e, true, 33),
            Verdict::GuestFailure { code: Some(0), .. }
        ));
        // Unknown: both are said.
        let verdict = judge(&exited(1), true, 33);
        assert!(
            matches!(&verdict, Verdict::GuestFailure { reason, .. } if reason.contains("or QEMU failed silently")),
            "{verdict:?}"
        );
    }

    #[test]
    fn qemus_error_line_is_quoted_not_its_last_line() {
        let mut e = exited(1);
        e.started = Some(false);
        e.stderr = "qemu-system-x86_64: warning: host doesn't support requested feature\nqemu-system-x86_64: unsupported machine type\nUse -machine help to list supported machines\n".into();
        assert_eq!(
            judge(&e, true, 33),
            Verdict::Crashed {
                reason: "QEMU failed: qemu-system-x86_64: unsupported machine type".into()
            }
        );
        e.stderr = "qemu: could not load PC BIOS 'x'\n".into();
        assert_eq!(e.error_line(), Some("qemu: could not load PC BIOS 'x'"));
        e.stderr = "something broke: Error 5\nsee the manual\n".into();
        assert_eq!(e.error_line(), Some("something broke: Error 5"));
        e.stderr = "a\nlast words\n\n".into();
        assert_eq!(e.error_line(), Some("last words"));
    }

    #[test]
    fn a_boot_failure_is_a_crash_with_its_own_words() {
        let e = Ended {
            pattern: Some(Hit::BootFailure("Limine gave up: PANIC: x".into())),
            ..Ended::default()
        };
        assert_eq!(
            judge(&e, false, 33),
            Verdict::Crashed {
                reason: "Limine gave up: PANIC: x".into()
            }
        );
    }
}
