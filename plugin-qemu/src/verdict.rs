//! Turning how QEMU ended into a verdict; a status is never taken for more than it says.

use std::time::Duration;

use image_runner_core::Verdict;

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
    /// We stopped it because a serial pattern matched.
    pub pattern: Option<Hit>,
    /// We stopped it because the serial handler ended the run with this verdict.
    pub handler: Option<Verdict>,
    /// Run time.
    pub duration: Duration,
    /// What QEMU wrote on stderr.
    pub stderr: String,
}

impl Ended {
    fn last_error(&self) -> Option<&str> {
        self.stderr.lines().rev().find(|l| !l.trim().is_empty())
    }
}

/// Judges a run. Only the success code or the success pattern pass; outside tests a clean
/// power-off (status 0) passes too. A verdict the serial handler gave is taken as it is.
pub fn judge(ended: &Ended, is_test: bool, success: i32) -> Verdict {
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
    match status {
        0 if !is_test => Verdict::Success,
        0 => Verdict::Crashed {
            reason: "QEMU exited with status 0, which is no test verdict: the guest reset (a triple fault under -no-reboot) or powered off without reporting".into(),
        },
        1 if ended.last_error().is_some() => Verdict::Crashed {
            reason: format!("QEMU failed: {}", ended.last_error().unwrap_or_default()),
        },
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
}
