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
            Ok(v.to_owned())
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
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<QemuConfig>("memroy = \"1G\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("memroy"), "{err}");
    }
}
