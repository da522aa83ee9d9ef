//! Where firmware is looked for, in order: config paths, environment variables, QEMU firmware
//! descriptors, then the usual Debian/Fedora/Arch/Homebrew file locations.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use image_runner_core::{Arch, Context, Error};

use crate::descriptor::{self, Described};

/// Firmware ready to use: a matching code/vars pair, or one unified file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FirmwarePair {
    /// Code (read-only) and the variable-store template it was built with.
    Pflash {
        /// Firmware code.
        code: PathBuf,
        /// Variable store template (copied for each run).
        vars: PathBuf,
    },
    /// Code and variables in one file (`-bios`).
    Unified(PathBuf),
}

/// One place that was tried, for the error message when nothing fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Where the guess came from.
    pub origin: String,
    /// The files it needs.
    pub files: Vec<PathBuf>,
}

/// What to search with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Search {
    /// Architecture of the guest.
    pub arch: Arch,
    /// `ovmf.code` from config.
    pub code: Option<PathBuf>,
    /// `ovmf.vars` from config.
    pub vars: Option<PathBuf>,
    /// Environment (reads `OVMF_CODE`, `OVMF_VARS`, `OVMF_FD`, `HOME`, `XDG_CONFIG_HOME`).
    pub env: BTreeMap<String, String>,
    /// The firmware variables (`OVMF_CODE`, `OVMF_VARS`, `OVMF_FD`) whose value is not UTF-8:
    /// each one is an error naming it (the text-only environment above leaves them out).
    pub env_not_utf8: BTreeMap<String, OsString>,
    /// Directories holding QEMU firmware descriptors.
    pub descriptor_dirs: Vec<PathBuf>,
    /// Known file locations, as (code, vars) pairs; vars `None` for unified files.
    pub known: Vec<(PathBuf, Option<PathBuf>)>,
    /// Take a unified image from `known` before any pair (faster boots).
    pub prefer_unified: bool,
}

impl Search {
    /// The search for this run: config paths (relative to the package), the process
    /// environment and the system's usual places.
    pub fn from_context(ctx: &Context) -> Result<Search, Error> {
        let config: crate::OvmfConfig = ctx.section("ovmf")?;
        let mut search = Search::system(ctx.decisions.arch, ctx.env.clone())
            .with_env_not_utf8(ctx.env_not_utf8.clone());
        search.code = config.code.as_ref().map(|p| ctx.host_path(p));
        search.vars = config.vars.as_ref().map(|p| ctx.host_path(p));
        search.prefer_unified = config.unified;
        Ok(search)
    }

    /// A search of the system's usual places only.
    pub fn system(arch: Arch, env: BTreeMap<String, String>) -> Search {
        let mut descriptor_dirs = Vec::new();
        if let Some(config) = env
            .get("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| env.get("HOME").map(|h| Path::new(h).join(".config")))
        {
            descriptor_dirs.push(config.join("qemu/firmware"));
        }
        for prefix in [
            "/etc",
            "/usr/share",
            "/usr/local/share",
            "/opt/homebrew/share",
        ] {
            let dir = if prefix == "/etc" {
                PathBuf::from("/etc/qemu/firmware")
            } else {
                Path::new(prefix).join("qemu/firmware")
            };
            descriptor_dirs.push(dir);
        }
        Search {
            arch,
            code: None,
            vars: None,
            env,
            env_not_utf8: BTreeMap::new(),
            descriptor_dirs,
            known: known_locations(arch),
            prefer_unified: true,
        }
    }
}

/// The environment variables that name firmware files.
pub const FIRMWARE_VARS: [&str; 3] = ["OVMF_CODE", "OVMF_VARS", "OVMF_FD"];

impl Search {
    /// With the firmware variables among `vars`, the environment's variables whose value is not
    /// UTF-8 (a run's [`Context::env_not_utf8`]): each one found is an error naming it, never a
    /// variable that silently does not count.
    pub fn with_env_not_utf8(mut self, vars: impl IntoIterator<Item = (String, OsString)>) -> Self {
        self.env_not_utf8 = vars
            .into_iter()
            .filter(|(name, _)| FIRMWARE_VARS.contains(&name.as_str()))
            .collect();
        self
    }
}

fn pair(code: &str, vars: &str) -> (PathBuf, Option<PathBuf>) {
    (PathBuf::from(code), Some(PathBuf::from(vars)))
}

/// File locations of distribution packages, best first.
fn known_locations(arch: Arch) -> Vec<(PathBuf, Option<PathBuf>)> {
    let mut known = Vec::new();
    match arch {
        Arch::X86_64 => {
            known.push(pair(
                "/usr/share/OVMF/OVMF_CODE_4M.fd",
                "/usr/share/OVMF/OVMF_VARS_4M.fd",
            ));
            known.push(pair(
                "/usr/share/OVMF/OVMF_CODE.fd",
                "/usr/share/OVMF/OVMF_VARS.fd",
            ));
            known.push(pair(
                "/usr/share/edk2/ovmf/OVMF_CODE.fd",
                "/usr/share/edk2/ovmf/OVMF_VARS.fd",
            ));
            known.push(pair(
                "/usr/share/edk2/x64/OVMF_CODE.4m.fd",
                "/usr/share/edk2/x64/OVMF_VARS.4m.fd",
            ));
            known.push(pair(
                "/usr/share/edk2-ovmf/x64/OVMF_CODE.fd",
                "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd",
            ));
            for prefix in ["/opt/homebrew", "/usr/local"] {
                known.push((
                    PathBuf::from(format!("{prefix}/share/qemu/edk2-x86_64-code.fd")),
                    Some(PathBuf::from(format!(
                        "{prefix}/share/qemu/edk2-i386-vars.fd"
                    ))),
                ));
            }
            known.push((PathBuf::from("/usr/share/ovmf/OVMF.fd"), None));
            known.push((PathBuf::from("/usr/share/qemu/OVMF.fd"), None));
        }
        Arch::Aarch64 => {
            known.push(pair(
                "/usr/share/AAVMF/AAVMF_CODE.fd",
                "/usr/share/AAVMF/AAVMF_VARS.fd",
            ));
            known.push(pair(
                "/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw",
                "/usr/share/edk2/aarch64/vars-template-pflash.raw",
            ));
            for prefix in ["/opt/homebrew", "/usr/local"] {
                known.push((
                    PathBuf::from(format!("{prefix}/share/qemu/edk2-aarch64-code.fd")),
                    Some(PathBuf::from(format!(
                        "{prefix}/share/qemu/edk2-arm-vars.fd"
                    ))),
                ));
            }
        }
        Arch::Riscv64 => {
            known.push(pair(
                "/usr/share/qemu-efi-riscv64/RISCV_VIRT_CODE.fd",
                "/usr/share/qemu-efi-riscv64/RISCV_VIRT_VARS.fd",
            ));
            known.push(pair(
                "/usr/share/edk2/riscv/RISCV_VIRT_CODE.fd",
                "/usr/share/edk2/riscv/RISCV_VIRT_VARS.fd",
            ));
        }
        Arch::LoongArch64 => {
            known.push(pair(
                "/usr/share/edk2/loongarch64/QEMU_EFI.fd",
                "/usr/share/edk2/loongarch64/QEMU_VARS.fd",
            ));
        }
        _ => {}
    }
    known
}

/// Package names to suggest when nothing is found.
fn install_hint(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => {
            "install `ovmf` (Debian/Ubuntu), `edk2-ovmf` (Fedora/Arch) or QEMU from Homebrew"
        }
        Arch::Aarch64 => "install `qemu-efi-aarch64` (Debian/Ubuntu) or `edk2-aarch64` (Fedora)",
        Arch::Riscv64 => "install `qemu-efi-riscv64` (Debian 13+) or `edk2-riscv64` (Fedora)",
        _ => "install your distribution's edk2 firmware package",
    }
}

/// Finds firmware for `search.arch`, in the documented order. Config and environment paths
/// must exist when given; guesses are skipped when absent.
pub fn find(search: &Search) -> Result<FirmwarePair, Error> {
    if let Some(chosen) = find_explicit(search) {
        return chosen;
    }
    let mut tried = Vec::new();
    if search.prefer_unified
        && let Some(path) = search
            .known
            .iter()
            .find_map(|(code, vars)| (vars.is_none() && code.is_file()).then_some(code))
    {
        return Ok(FirmwarePair::Unified(path.clone()));
    }
    for (file, described) in descriptor::scan(&search.descriptor_dirs, search.arch.name()) {
        if descriptor::exists(&described) {
            return Ok(match described {
                Described::Pair { code, vars } => FirmwarePair::Pflash { code, vars },
                Described::Unified(path) => FirmwarePair::Unified(path),
            });
        }
        tried.push(file.display().to_string());
    }
    for (code, vars) in &search.known {
        match vars {
            Some(vars) if code.is_file() && vars.is_file() => {
                return Ok(FirmwarePair::Pflash {
                    code: code.clone(),
                    vars: vars.clone(),
                });
            }
            None if code.is_file() => return Ok(FirmwarePair::Unified(code.clone())),
            _ => tried.push(code.display().to_string()),
        }
    }
    Err(Error::plugin(
        "ovmf",
        format!(
            "no UEFI firmware for {} found; {}, or set `ovmf.code` and `ovmf.vars` (or OVMF_CODE/OVMF_VARS). Looked in: {}",
            search.arch,
            install_hint(search.arch),
            tried.join(", ")
        ),
    ))
}

/// The firmware the config (`ovmf.code`, `ovmf.vars`) or the environment (`OVMF_CODE`,
/// `OVMF_VARS`, `OVMF_FD`) names, `None` when neither names any. A setting that is wrong (a
/// path that is not a file, a variable store without its code, a variable that is not UTF-8)
/// is an error naming it: the user chose that firmware, and nothing else may stand in for it.
pub fn find_explicit(search: &Search) -> Option<Result<FirmwarePair, Error>> {
    if let Some(code) = &search.code {
        return Some(explicit(
            code,
            search.vars.as_deref(),
            "`ovmf.code`",
            "`ovmf.vars`",
        ));
    }
    if let Some(vars) = &search.vars {
        return Some(Err(without_code(vars, "`ovmf.vars`", "`ovmf.code`")));
    }
    if let Some((name, value)) = search.env_not_utf8.iter().next() {
        return Some(Err(Error::plugin(
            "ovmf",
            format!(
                "environment variable {name} is not valid UTF-8 (`{}`); set it to the path of a firmware file in UTF-8, or unset it",
                value.to_string_lossy()
            ),
        )));
    }
    let var = |name: &str| {
        search
            .env
            .get(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(code) = var("OVMF_CODE") {
        return Some(explicit(
            &code,
            var("OVMF_VARS").as_deref(),
            "OVMF_CODE",
            "OVMF_VARS",
        ));
    }
    if let Some(vars) = var("OVMF_VARS") {
        return Some(Err(without_code(&vars, "OVMF_VARS", "OVMF_CODE")));
    }
    var("OVMF_FD").map(|fd| explicit(&fd, None, "OVMF_FD", ""))
}

/// The error for a variable store (`vars`, set by `vars_key`) given without its code.
fn without_code(vars: &Path, vars_key: &str, code_key: &str) -> Error {
    Error::plugin(
        "ovmf",
        format!(
            "{vars_key} = `{}` is set, but {code_key} is not: a variable store is used only with the firmware code it was built with; set {code_key} too, or remove {vars_key}",
            vars.display()
        ),
    )
}

fn explicit(
    code: &Path,
    vars: Option<&Path>,
    code_key: &str,
    vars_key: &str,
) -> Result<FirmwarePair, Error> {
    // Firmware named explicitly is never replaced by other firmware, nor by the download.
    let unset = |key: &str| {
        if key.starts_with('`') {
            format!("remove {key}")
        } else {
            format!("unset {key}")
        }
    };
    if !code.is_file() {
        return Err(Error::plugin(
            "ovmf",
            format!(
                "{code_key} = `{}` is not a file; fix the path, or {} to have the firmware found (or downloaded)",
                code.display(),
                unset(code_key)
            ),
        ));
    }
    match vars {
        Some(vars) if vars.is_file() => Ok(FirmwarePair::Pflash {
            code: code.to_path_buf(),
            vars: vars.to_path_buf(),
        }),
        Some(vars) => Err(Error::plugin(
            "ovmf",
            format!(
                "{vars_key} = `{}` is not a file; fix the path, or {} and {} to have the firmware found (or downloaded)",
                vars.display(),
                unset(code_key),
                vars_key
            ),
        )),
        None => Ok(FirmwarePair::Unified(code.to_path_buf())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_search(arch: Arch) -> Search {
        Search {
            arch,
            code: None,
            vars: None,
            env: BTreeMap::new(),
            env_not_utf8: BTreeMap::new(),
            descriptor_dirs: Vec::new(),
            known: Vec::new(),
            prefer_unified: false,
        }
    }

    #[test]
    fn config_paths_win_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let code = dir.path().join("CODE.fd");
        let vars = dir.path().join("VARS.fd");
        std::fs::write(&code, b"c").unwrap();
        std::fs::write(&vars, b"v").unwrap();
        let mut search = empty_search(Arch::X86_64);
        search.code = Some(code.clone());
        search.vars = Some(vars.clone());
        search.env.insert("OVMF_CODE".into(), "/nonexistent".into());
        assert_eq!(
            find(&search).unwrap(),
            FirmwarePair::Pflash {
                code: code.clone(),
                vars
            }
        );
        search.vars = Some(dir.path().join("missing.fd"));
        let err = find(&search).unwrap_err().to_string();
        assert!(
            err.contains("ovmf.vars") && err.contains("missing.fd"),
            "{err}"
        );
    }

    #[test]
    fn environment_comes_before_descriptors_and_known_places() {
        let dir = tempfile::tempdir().unwrap();
        let fd = dir.path().join("OVMF.fd");
        std::fs::write(&fd, b"x").unwrap();
        let mut search = empty_search(Arch::X86_64);
        search
            .env
            .insert("OVMF_FD".into(), fd.display().to_string());
        search.known = vec![pair(
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
        )];
        assert_eq!(find(&search).unwrap(), FirmwarePair::Unified(fd));
    }

    #[test]
    fn descriptors_are_used_when_their_files_exist() {
        let dir = tempfile::tempdir().unwrap();
        let code = dir.path().join("C.fd");
        let vars = dir.path().join("V.fd");
        std::fs::write(&code, b"c").unwrap();
        std::fs::write(&vars, b"v").unwrap();
        let descriptors = dir.path().join("firmware");
        std::fs::create_dir(&descriptors).unwrap();
        let json = |c: &Path, v: &Path| {
            format!(
                r#"{{"interface-types":["uefi"],"mapping":{{"device":"flash","executable":{{"filename":"{}"}},"nvram-template":{{"filename":"{}"}}}},"targets":[{{"architecture":"x86_64"}}],"features":[]}}"#,
                c.display(),
                v.display()
            )
        };
        std::fs::write(
            descriptors.join("10-gone.json"),
            json(Path::new("/gone/C"), Path::new("/gone/V")),
        )
        .unwrap();
        std::fs::write(descriptors.join("20-here.json"), json(&code, &vars)).unwrap();
        let mut search = empty_search(Arch::X86_64);
        search.descriptor_dirs = vec![descriptors];
        assert_eq!(find(&search).unwrap(), FirmwarePair::Pflash { code, vars });
    }

    #[test]
    fn nothing_found_says_what_to_install_and_where_it_looked() {
        let mut search = empty_search(Arch::Aarch64);
        search.known = vec![pair("/nope/AAVMF_CODE.fd", "/nope/AAVMF_VARS.fd")];
        let err = find(&search).unwrap_err().to_string();
        assert!(
            err.contains("qemu-efi-aarch64") && err.contains("/nope/AAVMF_CODE.fd"),
            "{err}"
        );
    }

    /// Needs an OVMF package on the machine (`.ci/run` installs Debian's `ovmf`, which has
    /// both a unified image and code/VARS pairs).
    #[test]
    fn finds_the_system_firmware_here() {
        let mut search = Search::system(Arch::X86_64, BTreeMap::new());
        let found = find(&search).expect("install Debian's `ovmf` package for this test");
        assert!(matches!(found, FirmwarePair::Unified(_)), "{found:?}");
        search.prefer_unified = false;
        let found = find(&search).expect("install Debian's `ovmf` package for this test");
        assert!(matches!(found, FirmwarePair::Pflash { .. }), "{found:?}");
    }

    #[test]
    fn unified_images_win_only_when_preferred() {
        let dir = tempfile::tempdir().unwrap();
        let (code, vars, unified) = (
            dir.path().join("C.fd"),
            dir.path().join("V.fd"),
            dir.path().join("OVMF.fd"),
        );
        for f in [&code, &vars, &unified] {
            std::fs::write(f, b"x").unwrap();
        }
        let mut search = empty_search(Arch::X86_64);
        search.known = vec![(code.clone(), Some(vars.clone())), (unified.clone(), None)];
        assert_eq!(find(&search).unwrap(), FirmwarePair::Pflash { code, vars });
        search.prefer_unified = true;
        assert_eq!(find(&search).unwrap(), FirmwarePair::Unified(unified));
    }

    #[test]
    fn a_variable_store_without_its_code_and_a_variable_that_is_not_utf8_are_errors() {
        use std::os::unix::ffi::OsStringExt;
        let dir = tempfile::tempdir().unwrap();
        let vars = dir.path().join("VARS.fd");
        std::fs::write(&vars, b"v").unwrap();
        let mut search = empty_search(Arch::X86_64);
        search.known = vec![(vars.clone(), None)];
        search.vars = Some(vars.clone());
        let err = find(&search).unwrap_err().to_string();
        assert!(
            err.contains("`ovmf.vars`") && err.contains("`ovmf.code`"),
            "{err}"
        );
        search.vars = None;
        search
            .env
            .insert("OVMF_VARS".into(), vars.display().to_string());
        let err = find(&search).unwrap_err().to_string();
        assert!(
            err.contains("OVMF_VARS") && err.contains("OVMF_CODE"),
            "{err}"
        );
        search.env.clear();
        let odd = OsString::from_vec(b"/fw/caf\xe9.fd".to_vec());
        search.env_not_utf8.insert("OVMF_FD".into(), odd.clone());
        let err = find(&search).unwrap_err().to_string();
        assert!(err.contains("OVMF_FD") && err.contains("UTF-8"), "{err}");

        // Only the firmware variables count.
        let search = empty_search(Arch::X86_64).with_env_not_utf8([
            ("OVMF_CODE".to_owned(), odd.clone()),
            ("OTHER".to_owned(), odd.clone()),
        ]);
        assert_eq!(
            search.env_not_utf8.keys().collect::<Vec<_>>(),
            ["OVMF_CODE"]
        );
    }
}
