//! The `qemu` config section (`[package.metadata.image-runner.qemu]`): serde types only, no
//! logic. Every key is kebab-case; unknown keys are errors. How the image is attached is the
//! shared key `attach` (`qemu.attach` still sets it), read from `ctx.decisions.attach`.

use serde::{Deserialize, Serialize};

/// QEMU options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct QemuConfig {
    /// QEMU program; `qemu-system-<arch>` when empty.
    pub binary: String,
    /// Machine type; `q35` on x86_64, `virt` elsewhere, when empty.
    pub machine: String,
    /// CPU model; when empty, `max` under TCG and `host` under KVM/HVF on ARM, QEMU's default
    /// elsewhere.
    pub cpu: String,
    /// Guest memory, as QEMU's `-m` takes it.
    pub memory: String,
    /// Number of virtual CPUs.
    pub cores: u32,
    /// Accelerator: `auto`, `kvm`, `tcg`, `hvf`, `whpx`, or a fallback list like `kvm,tcg`.
    pub accel: String,
    /// Open a window instead of running headless.
    pub gui: bool,
    /// Where the guest's serial port goes: `stdio` (terminal and log), `file` (log only), `none`.
    pub serial: SerialMode,
    /// Start halted with a gdb stub on this TCP port (0 = any free port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gdb_port: Option<u16>,
    /// Extra arguments for every run.
    pub args: Vec<String>,
    /// Let the guest's writes to its disk image reach the file. Off (the default), every run
    /// boots its own view of the image (QEMU `snapshot=on`): parallel runs of one image work
    /// and the image stays as built. On, runs of the same image take turns.
    pub persist_writes: bool,
}

impl Default for QemuConfig {
    fn default() -> Self {
        QemuConfig {
            binary: String::new(),
            machine: String::new(),
            cpu: String::new(),
            memory: "256M".into(),
            cores: 1,
            accel: "auto".into(),
            gui: false,
            serial: SerialMode::Stdio,
            gdb_port: None,
            args: Vec::new(),
            persist_writes: false,
        }
    }
}

/// Where the guest's serial output goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SerialMode {
    /// Shown on the terminal and saved to `serial.log`.
    #[default]
    Stdio,
    /// Saved to `serial.log` only.
    File,
    /// Not connected.
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_kebab_case_keys() {
        let cfg: QemuConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, QemuConfig::default());
        assert_eq!(cfg.memory, "256M");
        let cfg: QemuConfig =
            toml::from_str("gdb-port = 0\nserial = \"file\"\nargs = [\"-s\"]").unwrap();
        assert_eq!(cfg.gdb_port, Some(0));
        assert_eq!(cfg.serial, SerialMode::File);
        assert_eq!(cfg.args, ["-s"]);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<QemuConfig>("memroy = \"1G\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("memroy"), "{err}");
    }
}
