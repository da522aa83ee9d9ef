//! The `qemu` config section (`[package.metadata.image-runner.qemu]`): serde types only, no
//! logic. Every key is kebab-case; unknown keys are errors. How the image is attached is the
//! shared key `attach` (`qemu.attach` still sets it), read from `ctx.decisions.attach`.

use image_runner_core::OldKey;
use serde::{Deserialize, Deserializer, Serialize};
use toml::Value;

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
    /// Guest memory, as QEMU's `-m` takes it (`"1G"`, `"512M"`); an integer is a number of
    /// megabytes, as cargo-image-runner 0.5 wrote it (`1024` is `"1024M"`).
    #[serde(deserialize_with = "memory")]
    pub memory: String,
    /// Number of virtual CPUs (at least 1).
    #[serde(deserialize_with = "cores")]
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
            // Enough for a distribution's kernel through GRUB on UEFI (GRUB runs out of memory
            // loading one at 256M); QEMU allocates guest memory lazily, so runs pay only for what
            // the guest touches.
            memory: "1G".into(),
            cores: 1,
            accel: "auto".into(),
            gui: false,
            serial: SerialMode::Stdio,
            gdb_port: None,
            args: Vec::new(),
            persist_writes: false,
            serial_log_limit: "64M".into(),
            stop_on_boot_failure: true,
        }
    }
}

/// `"1G"` as it is; an integer `n` as `"nM"`.
fn memory<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Memory;
    impl serde::de::Visitor<'_> for Memory {
        type Value = String;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a size as QEMU's -m takes it (\"1G\", \"512M\") or a number of megabytes")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            if valid_memory(v) {
                Ok(v.to_owned())
            } else {
                Err(E::custom(format!(
                    "`{v}` is no size QEMU's -m takes: give a number with an optional unit (\"1G\", \"512M\", \"1536\") or QEMU's own `size=...,slots=...,maxmem=...` form"
                )))
            }
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            if v == 0 {
                return Err(E::custom(
                    "0 megabytes of memory: give a size such as \"1G\" or a positive number of megabytes",
                ));
            }
            Ok(format!("{v}M"))
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(format!(
                    "{v} megabytes of memory: give a size such as \"1G\" or a positive number of megabytes"
                ))),
            }
        }
    }
    deserializer.deserialize_any(Memory)
}

/// At least one virtual CPU.
fn cores<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let value = i64::deserialize(deserializer)?;
    match u32::try_from(value) {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(serde::de::Error::custom(format!(
            "{value} virtual CPUs: give a number from 1"
        ))),
    }
}

/// What QEMU's `-m` takes: a positive number (a fraction too) with an optional unit (`K`, `M`,
/// `G`, `T`, any case, an optional `B`), or its `key=value,...` form, which QEMU checks.
fn valid_memory(v: &str) -> bool {
    if v.contains('=') {
        return true;
    }
    let digits = v.trim_end_matches(['B', 'b']);
    let digits = digits.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', 't', 'T']);
    let unit_len = v.len() - digits.len();
    unit_len <= 2
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|&b| b == b'.').count() <= 1
        && digits.bytes().any(|b| b != b'0' && b != b'.')
}

/// The keys of cargo-image-runner 0.5's `[runner.qemu]` that are spelled differently now (the
/// section itself is `[qemu]`): errors name the new spelling, `cargo-image-runner migrate`
/// rewrites them.
pub(crate) fn old_keys() -> Vec<OldKey> {
    let serial_hint = "`stdio`: terminal and serial.log, where 0.5's `mon:stdio` goes (the QEMU monitor is not on stdio); `file`: serial.log only; `none`";
    vec![
        OldKey::renamed("kvm", "accel")
            .hint("`kvm = true` is `accel = \"auto\"`: KVM where it works, else TCG; `kvm = false` is `accel = \"tcg\"`")
            .convert(|v| {
                v.as_bool()
                    .map(|kvm| Value::from(if kvm { "auto" } else { "tcg" }))
            }),
        OldKey::renamed("extra_args", "args"),
        OldKey::renamed("extra-args", "args"),
        OldKey::renamed("serial", "serial")
            .when(Value::is_table)
            .hint(serial_hint)
            .convert(|v| {
                match v.get("mode").map(Value::as_str) {
                    None | Some(Some("mon:stdio" | "stdio")) => Some("stdio"),
                    Some(Some("none")) => Some("none"),
                    _ => None,
                }
                .map(Value::from)
            }),
        OldKey::renamed("serial", "serial")
            .when(|v| v.as_str() == Some("mon:stdio"))
            .hint(serial_hint)
            .convert(|_| Some(Value::from("stdio"))),
        OldKey::renamed("memory", "memory")
            .when(Value::is_integer)
            .convert(|v| v.as_integer().map(|mb| Value::from(format!("{mb}M"))))
            .accepted(),
    ]
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
        assert_eq!(cfg.memory, "1G");
        let cfg: QemuConfig =
            toml::from_str("gdb-port = 0\nserial = \"file\"\nargs = [\"-s\"]").unwrap();
        assert_eq!(cfg.gdb_port, Some(0));
        assert_eq!(cfg.serial, SerialMode::File);
        assert_eq!(cfg.args, ["-s"]);
    }

    #[test]
    fn memory_as_an_integer_is_megabytes() {
        let cfg: QemuConfig = toml::from_str("memory = 2048").unwrap();
        assert_eq!(cfg.memory, "2048M");
        let mut table = toml::Table::new();
        table.insert("memory".into(), toml::Value::Integer(512));
        let cfg: QemuConfig = toml::Value::Table(table).try_into().unwrap();
        assert_eq!(cfg.memory, "512M");
        for bad in ["memory = -1", "memory = 0", "memory = 1.5", "memory = true"] {
            let err = toml::from_str::<QemuConfig>(bad).unwrap_err().to_string();
            assert!(err.contains("megabytes"), "{bad}: {err}");
        }
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

    /// Issue 18, item 22: such values reached QEMU, which refused them at start (exit 4
    /// instead of a config error).
    #[test]
    fn memory_and_cores_qemu_would_refuse_are_config_errors() {
        for good in [
            "1G",
            "512M",
            "512m",
            "1536",
            "1.5G",
            "2GB",
            "size=1G,slots=2,maxmem=4G",
        ] {
            let cfg: QemuConfig = toml::from_str(&format!("memory = {good:?}")).unwrap();
            assert_eq!(cfg.memory, good);
        }
        for bad in ["", "lots", "1X", "-1G", "0", "0M", "1..5G", "G", "1 G"] {
            let err = toml::from_str::<QemuConfig>(&format!("memory = {bad:?}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("no size QEMU's -m takes"), "{bad}: {err}");
        }
        assert_eq!(toml::from_str::<QemuConfig>("cores = 4").unwrap().cores, 4);
        for bad in ["0", "-2", "4294967296"] {
            let err = toml::from_str::<QemuConfig>(&format!("cores = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("virtual CPUs: give a number from 1"),
                "{bad}: {err}"
            );
        }
    }
}
