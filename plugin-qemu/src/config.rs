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
    /// The most serial output `serial.log` keeps, as bytes or with a `K`, `M` or `G` suffix
    /// (`"64M"`); beyond it the first and the last half are kept. `"0"`: no limit.
    pub serial_log_limit: String,
    /// End the run at once (exit 4) when the bootloader or the firmware gives up (a Limine
    /// panic, GRUB failing its entries, no bootable device, the UEFI shell started instead).
    pub stop_on_boot_failure: bool,
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
            serial_log_limit: "64M".into(),
            stop_on_boot_failure: true,
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

/// Reads a byte count written as `qemu.serial-log-limit` takes it: digits with an optional
/// `K`, `M`, `G` (powers of 1024, an `i`/`iB`/`B` after them allowed); 0 means no limit.
pub fn parse_limit(text: &str, key: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KI" | "KIB" => 10,
        "M" | "MB" | "MI" | "MIB" => 20,
        "G" | "GB" | "GI" | "GIB" => 30,
        _ => u32::MAX,
    };
    let value = number
        .parse::<u64>()
        .ok()
        .filter(|_| shift != u32::MAX)
        .and_then(|n| n.checked_mul(1u64 << shift.min(63)))
        .ok_or_else(|| {
            format!("`{key}` = {text:?} is not a size: write bytes or a number with K, M or G, like \"64M\" (\"0\" for no limit)")
        })?;
    Ok((value > 0).then_some(value))
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
    fn sizes() {
        assert_eq!(parse_limit("64M", "k"), Ok(Some(64 << 20)));
        assert_eq!(parse_limit("1 KiB", "k"), Ok(Some(1024)));
        assert_eq!(parse_limit("4096", "k"), Ok(Some(4096)));
        assert_eq!(parse_limit("0", "k"), Ok(None));
        for bad in ["", "M", "12X", "-1", "99999999999G"] {
            let err = parse_limit(bad, "qemu.serial-log-limit").unwrap_err();
            assert!(err.contains("`qemu.serial-log-limit`"), "{err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<QemuConfig>("memroy = \"1G\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("memroy"), "{err}");
    }
}
