//! Turning how QEMU ended into a verdict; a status is never taken for more than it says.

use std::time::Duration;

use runner_core::Verdict;

/// How the QEMU process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Exit status, when QEMU exited by itself.
    pub status: Option<i32>,
    /// Signal that killed QEMU, when one did and we did not send it.
    pub signal: Option<i32>,
    /// We stopped it at the time limit.
    pub timed_out: Option<Duration>,
    /// We stopped it because the user interrupted the runner.
    pub interrupted: bool,
    /// Run time.
    pub duration: Duration,
    /// The last line QEMU wrote on stderr, if any.
    pub last_error: Option<String>,
}

/// Judges a run. In test mode only `success` passes; outside tests a clean power-off (status 0)
/// passes too.
pub fn judge(ended: &Ended, is_test: bool, success: i32) -> Verdict {
    if ended.interrupted {
        return Verdict::Interrupted;
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
            reason: "QEMU exited with status 0, which is no test verdict: the guest reset (a triple fault under -no-reboot) or powered off without writing to the exit port".into(),
        },
        1 => match &ended.last_error {
            Some(line) => Verdict::Crashed {
                reason: format!("QEMU failed: {line}"),
            },
            None => Verdict::GuestFailure {
                code: Some(0),
                reason: format!("the guest wrote 0x0 to the exit port (QEMU status 1, success is {success})"),
            },
        },
        s if s % 2 == 1 => Verdict::GuestFailure {
            code: Some(s >> 1),
            reason: format!(
                "the guest wrote {:#x} to the exit port (QEMU status {s}, success is {success})",
                s >> 1
            ),
        },
        s => Verdict::Crashed {
            reason: format!("QEMU exited with status {s}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(status: i32) -> Ended {
        Ended {
            status: Some(status),
            signal: None,
            timed_out: None,
            interrupted: false,
            duration: Duration::ZERO,
            last_error: None,
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
            Verdict::Crashed { .. }
        ));
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
        e.last_error = Some("qemu-system-x86_64: -drive x: bad".into());
        assert!(matches!(judge(&e, true, 33), Verdict::Crashed { .. }));
        e.status = None;
        e.signal = Some(9);
        assert!(matches!(judge(&e, true, 33), Verdict::Crashed { .. }));
        e.timed_out = Some(Duration::from_secs(3));
        assert!(matches!(judge(&e, true, 33), Verdict::Timeout { .. }));
    }
}
