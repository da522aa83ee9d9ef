//! Choosing the accelerator from evidence: what the user asked for, whether the CPU offers
//! hardware virtualisation, and whether `/dev/kvm` can be opened. "Can open /dev/kvm" alone is
//! not "KVM works" (nested VMs without vmx/svm crawl or fail), so `auto` wants both.

use std::fmt;
use std::path::Path;

use image_runner_core::Error;

/// A QEMU accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Accel {
    /// Linux KVM.
    Kvm,
    /// QEMU's portable software emulation.
    Tcg,
    /// macOS Hypervisor.framework.
    Hvf,
    /// Windows Hypervisor Platform.
    Whpx,
}

impl Accel {
    /// QEMU's name for it (`-accel NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
            Accel::Hvf => "hvf",
            Accel::Whpx => "whpx",
        }
    }

    fn parse(name: &str) -> Option<Accel> {
        match name.trim() {
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            "hvf" => Some(Accel::Hvf),
            "whpx" => Some(Accel::Whpx),
            _ => None,
        }
    }

    /// Whether it runs guest code on the host CPU (and so wants `-cpu host` on ARM).
    pub fn is_hardware(self) -> bool {
        self != Accel::Tcg
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the host offers, as far as it can be seen without starting QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostEvidence {
    /// `std::env::consts::OS`.
    pub os: &'static str,
    /// Host architecture (`std::env::consts::ARCH`), compared with the guest's.
    pub host_arch: &'static str,
    /// The CPU advertises vmx/svm (x86) or the kernel exposes KVM for ARM; `None` if unknown.
    pub cpu_virtualisation: Option<bool>,
    /// `/dev/kvm` exists and opens read-write.
    pub kvm_device: bool,
}

impl HostEvidence {
    /// Looks at this host.
    pub fn probe() -> HostEvidence {
        let os = std::env::consts::OS;
        let host_arch = std::env::consts::ARCH;
        let cpu_virtualisation = match (os, host_arch) {
            ("linux", "x86_64") => std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .map(|info| cpuinfo_has_virtualisation(&info)),
            // ARM CPUs do not advertise EL2 in cpuinfo; the kernel only creates /dev/kvm when
            // it booted at EL2, so the device is the evidence there.
            ("linux", _) => Some(Path::new("/dev/kvm").exists()),
            ("macos", _) => Some(sysctl_hv_support()),
            _ => None,
        };
        HostEvidence {
            os,
            host_arch,
            cpu_virtualisation,
            kvm_device: os == "linux"
                && std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/kvm")
                    .is_ok(),
        }
    }
}

fn cpuinfo_has_virtualisation(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

fn sysctl_hv_support() -> bool {
    std::process::Command::new("sysctl")
        .args(["-n", "kern.hv_support"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
        .unwrap_or(false)
}

/// The accelerators to try, in order, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccelPlan {
    /// First choice, then fallbacks used when QEMU fails at start with an accelerator error.
    pub order: Vec<Accel>,
    /// One line saying why.
    pub reason: String,
}

impl AccelPlan {
    /// The first choice.
    pub fn first(&self) -> Accel {
        self.order.first().copied().unwrap_or(Accel::Tcg)
    }
}

/// Decides what to try from `requested` (`auto`, one name, or a comma-separated fallback list)
/// for a guest of `guest_arch` (QEMU's name).
pub fn plan(requested: &str, guest_arch: &str, host: &HostEvidence) -> Result<AccelPlan, Error> {
    let requested = requested.trim();
    if requested != "auto" {
        let order = requested
            .split(',')
            .map(|name| {
                Accel::parse(name).ok_or_else(|| {
                    Error::plugin(
                        "qemu",
                        format!(
                            "`qemu.accel = \"{requested}\"`: `{}` is not an accelerator; use auto, kvm, tcg, hvf, whpx or a list like \"kvm,tcg\"",
                            name.trim()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(AccelPlan {
            order,
            reason: format!("`qemu.accel = \"{requested}\"`"),
        });
    }
    let same_arch =
        host.host_arch == guest_arch || (host.host_arch == "x86_64" && guest_arch == "i386");
    if !same_arch {
        return Ok(AccelPlan {
            order: vec![Accel::Tcg],
            reason: format!(
                "auto: the guest is {guest_arch} and the host {}, so only emulation can run it",
                host.host_arch
            ),
        });
    }
    let (hardware, hw_reason) = match host.os {
        "linux" => match (host.cpu_virtualisation, host.kvm_device) {
            (Some(true), true) => (Some(Accel::Kvm), "the CPU offers virtualisation and /dev/kvm opens read-write".to_owned()),
            (Some(false), true) => (None, "/dev/kvm opens but the CPU lists no vmx/svm (a nested VM where KVM fails or crawls)".to_owned()),
            (_, false) => (None, "/dev/kvm is missing or not writable (add yourself to the kvm group to use KVM)".to_owned()),
            (None, true) => (None, "could not read the CPU's flags".to_owned()),
        },
        "macos" if host.cpu_virtualisation == Some(true) => {
            (Some(Accel::Hvf), "kern.hv_support is 1".to_owned())
        }
        "windows" => (Some(Accel::Whpx), "Windows: trying the Windows Hypervisor Platform".to_owned()),
        os => (None, format!("no hardware accelerator known for {os}")),
    };
    Ok(match hardware {
        Some(accel) => AccelPlan {
            order: vec![accel, Accel::Tcg],
            reason: format!("auto: {accel}, because {hw_reason}; tcg if it fails at start"),
        },
        None => AccelPlan {
            order: vec![Accel::Tcg],
            reason: format!("auto: tcg, because {hw_reason}"),
        },
    })
}

/// Whether QEMU's failure output says the accelerator could not start (so the next one in the
/// plan is worth a try).
pub fn is_accel_failure(accel: Accel, stderr: &str) -> bool {
    let text = stderr.to_ascii_lowercase();
    let name = accel.name();
    text.contains(name)
        && [
            "fail",
            "error",
            "could not",
            "not supported",
            "unavailable",
            "permission denied",
        ]
        .iter()
        .any(|w| text.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(cpu: Option<bool>, kvm: bool) -> HostEvidence {
        HostEvidence {
            os: "linux",
            host_arch: "x86_64",
            cpu_virtualisation: cpu,
            kvm_device: kvm,
        }
    }

    #[test]
    fn auto_needs_both_cpu_flags_and_a_writable_device() {
        assert_eq!(
            plan("auto", "x86_64", &linux(Some(true), true))
                .unwrap()
                .order,
            [Accel::Kvm, Accel::Tcg]
        );
        let nested = plan("auto", "x86_64", &linux(Some(false), true)).unwrap();
        assert_eq!(nested.order, [Accel::Tcg]);
        assert!(nested.reason.contains("vmx/svm"), "{}", nested.reason);
        assert_eq!(
            plan("auto", "x86_64", &linux(Some(true), false))
                .unwrap()
                .order,
            [Accel::Tcg]
        );
    }

    #[test]
    fn foreign_guests_are_emulated() {
        let p = plan("auto", "aarch64", &linux(Some(true), true)).unwrap();
        assert_eq!(p.order, [Accel::Tcg]);
        assert!(p.reason.contains("aarch64"));
    }

    #[test]
    fn macos_and_windows() {
        let mac = HostEvidence {
            os: "macos",
            host_arch: "aarch64",
            cpu_virtualisation: Some(true),
            kvm_device: false,
        };
        assert_eq!(
            plan("auto", "aarch64", &mac).unwrap().order,
            [Accel::Hvf, Accel::Tcg]
        );
        let win = HostEvidence {
            os: "windows",
            host_arch: "x86_64",
            cpu_virtualisation: None,
            kvm_device: false,
        };
        assert_eq!(
            plan("auto", "x86_64", &win).unwrap().order,
            [Accel::Whpx, Accel::Tcg]
        );
    }

    #[test]
    fn explicit_lists_are_kept_and_bad_names_refused() {
        assert_eq!(
            plan("kvm, tcg", "x86_64", &linux(None, false))
                .unwrap()
                .order,
            [Accel::Kvm, Accel::Tcg]
        );
        assert_eq!(
            plan("tcg", "x86_64", &linux(Some(true), true))
                .unwrap()
                .order,
            [Accel::Tcg]
        );
        let err = plan("kvm,fast", "x86_64", &linux(None, false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`fast`"), "{err}");
    }

    #[test]
    fn cpuinfo_flags_are_read() {
        assert!(cpuinfo_has_virtualisation(
            "processor: 0\nflags\t: fpu vme vmx sse\n"
        ));
        assert!(!cpuinfo_has_virtualisation(
            "flags\t: fpu vme sse hypervisor\n"
        ));
    }

    #[test]
    fn kvm_start_failures_are_recognised() {
        assert!(is_accel_failure(
            Accel::Kvm,
            "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0\nkvm_buf_set_msrs: Assertion failed"
        ));
        assert!(is_accel_failure(
            Accel::Kvm,
            "Could not access KVM kernel module: Permission denied\nfailed to initialize kvm"
        ));
        assert!(!is_accel_failure(
            Accel::Kvm,
            "qemu-system-x86_64: -drive file=x: Could not open 'x'"
        ));
    }
}
