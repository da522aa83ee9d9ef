//! QEMU firmware descriptors (`share/qemu/firmware/*.json`): the portable way distributions
//! say where their UEFI builds are.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "interface-types", default)]
    interface_types: Vec<String>,
    mapping: Mapping,
    #[serde(default)]
    targets: Vec<Target>,
    #[serde(default)]
    features: Vec<String>,
}

#[derive(Deserialize)]
struct Mapping {
    device: String,
    executable: Option<FileRef>,
    #[serde(rename = "nvram-template")]
    nvram_template: Option<FileRef>,
    filename: Option<String>,
}

#[derive(Deserialize)]
struct FileRef {
    filename: String,
    #[serde(default = "raw")]
    format: String,
}

fn raw() -> String {
    "raw".into()
}

#[derive(Deserialize)]
struct Target {
    architecture: String,
}

/// Firmware named by a descriptor: a code/vars pair or one memory-mapped file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Described {
    Pair { code: PathBuf, vars: PathBuf },
    Unified(PathBuf),
}

/// Features that make a build unsuitable for plain test boots: Secure Boot with enrolled keys
/// refuses unsigned kernels, and SMM builds need machine options we do not pass.
const UNSUITABLE: &[&str] = &["secure-boot", "enrolled-keys", "requires-smm"];

/// Reads the descriptors in `dirs` (sorted by file name, as QEMU orders them) and returns the
/// raw-format UEFI builds for `arch`, best first.
pub(crate) fn scan(dirs: &[PathBuf], arch: &str) -> Vec<(PathBuf, Described)> {
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort_by_key(|p| p.file_name().map(|n| n.to_os_string()));
    files
        .into_iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(&file).ok()?;
            let described = parse(&text, arch)?;
            Some((file, described))
        })
        .collect()
}

fn parse(text: &str, arch: &str) -> Option<Described> {
    let d: Descriptor = serde_json::from_str(text).ok()?;
    if !d.interface_types.iter().any(|t| t == "uefi")
        || !d.targets.iter().any(|t| t.architecture == arch)
        || d.features.iter().any(|f| UNSUITABLE.contains(&f.as_str()))
    {
        return None;
    }
    match d.mapping.device.as_str() {
        "flash" => {
            let code = d.mapping.executable?;
            let vars = d.mapping.nvram_template?;
            (code.format == "raw" && vars.format == "raw").then(|| Described::Pair {
                code: PathBuf::from(code.filename),
                vars: PathBuf::from(vars.filename),
            })
        }
        "memory" => Some(Described::Unified(PathBuf::from(d.mapping.filename?))),
        _ => None,
    }
}

/// Whether every file a descriptor names exists.
pub(crate) fn exists(described: &Described) -> bool {
    match described {
        Described::Pair { code, vars } => is_file(code) && is_file(vars),
        Described::Unified(path) => is_file(path),
    }
}

fn is_file(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = r#"{
        "interface-types": ["uefi"],
        "mapping": {"device": "flash",
            "executable": {"filename": "/fw/CODE.fd", "format": "raw"},
            "nvram-template": {"filename": "/fw/VARS.fd", "format": "raw"}},
        "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}],
        "features": ["acpi-s3", "amd-sev"]
    }"#;

    #[test]
    fn plain_flash_descriptors_give_a_pair() {
        assert_eq!(
            parse(PLAIN, "x86_64"),
            Some(Described::Pair {
                code: "/fw/CODE.fd".into(),
                vars: "/fw/VARS.fd".into()
            })
        );
        assert_eq!(parse(PLAIN, "aarch64"), None);
    }

    #[test]
    fn secure_boot_and_smm_builds_are_skipped() {
        let secure = PLAIN.replace("\"amd-sev\"", "\"secure-boot\"");
        assert_eq!(parse(&secure, "x86_64"), None);
        let smm = PLAIN.replace("\"amd-sev\"", "\"requires-smm\"");
        assert_eq!(parse(&smm, "x86_64"), None);
    }
}
