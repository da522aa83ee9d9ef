//! The `cargo-image-runner` command: parses the command line, builds the context, drives the
//! pipeline and turns the verdict into the process exit code. The binary is a thin `main`
//! over [`main_with_args`], so tests can build the very same program.

mod args;
mod interrupt;
mod kernel_tests;
pub mod migrate;
mod plugins;
mod show_config;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use image_runner_core::context::Project;
use image_runner_core::exit_code;
use image_runner_core::{CheckStatus, Error, Invocation, Pipeline, Verdict};

use args::{CleanArgs, Command, Common, ConfigArgs, RunArgs};

/// Runs the command with `args` (the first one is the program name) and returns its exit code.
///
/// A panic is a bug of the runner: it exits with [`exit_code::RUNNER_BUG`] after the panic
/// message and a note saying so, never with a code that reads as a verdict on the kernel
/// (libtest's 101 means "tests failed").
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    match std::panic::catch_unwind(move || {
        // A crash on demand, for the test of this very path (debug builds only).
        #[cfg(debug_assertions)]
        if std::env::var_os("CARGO_IMAGE_RUNNER_DEBUG_PANIC").is_some() {
            panic!("CARGO_IMAGE_RUNNER_DEBUG_PANIC is set");
        }
        main_with_env(args, std::env::vars_os())
    }) {
        Ok(code) => code,
        Err(_) => {
            eprintln!(
                "error: cargo-image-runner crashed: this is a bug in the runner, not a verdict on your kernel (exit code {}); please report it with the command you ran and the message above",
                exit_code::RUNNER_BUG
            );
            ExitCode::from(exit_code::RUNNER_BUG as u8)
        }
    }
}

/// Like [`main_with_args`], with the environment `env` instead of the process's (variables that
/// are not UTF-8 are fine: see [`Invocation::with_env`]). The current directory is still the
/// process's.
pub fn main_with_env(
    args: impl IntoIterator<Item = OsString>,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> ExitCode {
    let cli = match args::parse(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors exit 2 (like a runner error), `--help` and `--version` 0. Through
            // the print macros (captured in tests), coloured by clap on a terminal.
            let terminal = if e.use_stderr() {
                std::io::stderr().is_terminal()
            } else {
                std::io::stdout().is_terminal()
            };
            match (terminal, e.use_stderr()) {
                (true, _) => {
                    let _ = e.print();
                }
                (false, true) => eprint!("{}", e.render()),
                (false, false) => print!("{}", e.render()),
            }
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let env: Vec<(OsString, OsString)> = env.into_iter().collect();
    let result = match cli.command {
        None => run(&env, &cli.run, false),
        Some(Command::Run(run_args)) => run(&env, &run_args, false),
        Some(Command::Build(run_args)) => run(&env, &run_args, true),
        Some(Command::Config(config_args)) => show_config(&env, &config_args),
        Some(Command::Clean(clean_args)) => clean(&env, &clean_args),
        Some(Command::Doctor(common)) => doctor(&env, &common),
        Some(Command::Plugins(common)) => list_plugins(&env, &common),
        Some(Command::Migrate(migrate_args)) => migrate::run(
            &migrate_args,
            &invocation(&env, &migrate_args.common, None, &[], None),
        ),
        #[cfg(feature = "limine")]
        Some(Command::Limine(limine_args)) => limine(&env, &limine_args),
        #[cfg(feature = "ovmf")]
        Some(Command::Ovmf(ovmf_args)) => ovmf(&env, &ovmf_args),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_code::RUNNER_ERROR as u8)
        }
    }
}

fn invocation(
    env: &[(OsString, OsString)],
    common: &Common,
    executable: Option<&Path>,
    args: &[String],
    test: Option<bool>,
) -> Invocation {
    let mut inv = Invocation::with_env(
        executable.map(Path::to_path_buf).unwrap_or_default(),
        env.iter().cloned(),
    );
    inv.args = args.to_vec();
    inv.profile = common.profile.clone();
    inv.overrides = common.overrides.clone();
    if common.offline {
        inv.overrides.push("offline=true".into());
    }
    inv.manifest_dir = common.manifest_dir.clone();
    inv.verbose = common.verbose;
    inv.test = test;
    inv.plugins = common.plugins.clone();
    inv
}

fn run(env: &[(OsString, OsString)], run_args: &RunArgs, build_only: bool) -> Result<i32, Error> {
    // From the start: a signal while the image is written removes it and exits with 130.
    let preparing = interrupt::Preparing::install();
    let executable = run_args.executable.clone().unwrap_or_default();
    // Listing kernel tests reads the executable's test table: no config, no image, no boot.
    let plain = !build_only && !run_args.print_cmd && run_args.gdb.is_none();
    if plain
        && run_args.test_mode() != Some(false)
        && run_args.args.iter().any(|a| a == "--list")
        && let Some(code) = kernel_tests::list(&executable, &run_args.args)?
    {
        return Ok(code);
    }
    let mut inv = invocation(
        env,
        &run_args.common,
        Some(&executable),
        &run_args.args,
        run_args.test_mode(),
    );
    inv.runner_args.extend(run_args.runner_args.iter().cloned());
    if let Some(port) = run_args.gdb {
        inv.overrides
            .push(format!("qemu.gdb-port={}", port.unwrap_or(0)));
    }
    let registry = plugins::registry_for(&inv)?;
    let pipeline = Pipeline::new(&registry);
    let ctx = pipeline.context(inv)?;
    if ctx.verbose > 0 {
        eprintln!(
            "   Preparing {} ({}, {} boot, bootloader {}, {})",
            ctx.kernel.path.display(),
            ctx.decisions.arch,
            ctx.decisions.boot,
            ctx.config.bootloader,
            ctx.decisions.mode.name()
        );
    }
    if plain && let Some(tests) = kernel_tests::table_of(&ctx)? {
        drop(preparing);
        return kernel_tests::run(&pipeline, &ctx, &tests);
    }
    let media = pipeline.prepare(&ctx)?;
    if build_only {
        match (&media.image, &media.direct_kernel) {
            (Some(image), _) => println!("{}", image.path.display()),
            (None, Some(kernel)) => println!("{}", kernel.display()),
            (None, None) => {}
        }
        return Ok(exit_code::SUCCESS);
    }
    if run_args.print_cmd {
        println!("{}", pipeline.command(&media, &ctx)?);
        return Ok(exit_code::SUCCESS);
    }
    // The runner plugin handles signals from here on (it stops QEMU).
    drop(preparing);
    // Backtraces printed as `KTEST frame 0x...` lines are symbolized on stderr.
    let mut frames = image_runner_test_harness::symbolize::FrameLines::new(&ctx.kernel.path);
    let outcome = pipeline.run(&media, &ctx, &mut frames)?;
    let name = ctx
        .kernel
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match &outcome.verdict {
        Verdict::Success => {
            if ctx.verbose > 0 {
                eprintln!(
                    "      Passed {name} in {:.2} s",
                    outcome.duration.as_secs_f64()
                );
            }
        }
        verdict => {
            let evidence: Vec<String> = [
                outcome
                    .serial_log
                    .as_ref()
                    .map(|p| format!("serial log: {}", p.display())),
                outcome
                    .screenshot
                    .as_ref()
                    .map(|p| format!("screenshot: {}", p.display())),
            ]
            .into_iter()
            .flatten()
            .collect();
            let log = if evidence.is_empty() {
                String::new()
            } else {
                format!(" ({})", evidence.join("; "))
            };
            eprintln!("error: {name} {verdict}{log}");
        }
    }
    Ok(outcome.verdict.exit_code())
}

fn show_config(env: &[(OsString, OsString)], config_args: &ConfigArgs) -> Result<i32, Error> {
    let common = &config_args.common;
    match &config_args.executable {
        Some(executable) => {
            let inv = invocation(env, common, Some(executable), &[], None);
            let registry = plugins::registry_for(&inv)?;
            let ctx = Pipeline::new(&registry).context(inv)?;
            print!(
                "{}",
                show_config::render(&ctx.config, &ctx.sections, &ctx.origins)?
            );
            let d = &ctx.decisions;
            println!(
                "# kernel: {} ({}, {:?}); boot: {}; image: {}; attach: {:?}; protocol: {}; test: {}; output: {}",
                ctx.kernel.path.display(),
                d.arch,
                ctx.kernel.format,
                d.boot,
                d.image.as_ref().map_or_else(
                    || "none".to_owned(),
                    |p| format!("{} ({})", p.format, p.kind)
                ),
                d.attach,
                d.protocol()
                    .map_or_else(|_| "none fits".to_owned(), |p| p.to_string()),
                d.mode.is_test,
                ctx.output_dir.display()
            );
        }
        None => {
            let inv = invocation(env, common, None, &[], None);
            let project = Project::discover(&inv, None)?;
            let vars = show_config::placeholder_variables(&project);
            let resolved = image_runner_core::context::load_config(
                &inv,
                &project.manifest_dir,
                &project.workspace_root,
                &vars,
                &plugins::registry_for(&inv)?.sections(),
            )?;
            print!(
                "{}",
                show_config::render(&resolved.config, &resolved.sections, &resolved.origins)?
            );
        }
    }
    Ok(exit_code::SUCCESS)
}

/// `limine fetch|list|clean`: settings come from the project's config when there is one.
#[cfg(feature = "limine")]
fn limine(env: &[(OsString, OsString)], limine_args: &args::LimineArgs) -> Result<i32, Error> {
    use args::LimineAction;
    let _preparing = interrupt::Preparing::install();
    let inv = invocation(env, &limine_args.common, None, &[], None);
    let cache_dir = image_runner_core::context::cache_dir(&inv.env)?;
    let (config, limine, manifest_dir) = match Project::discover(&inv, None) {
        Ok(project) => {
            let vars = show_config::placeholder_variables(&project);
            let resolved = image_runner_core::context::load_config(
                &inv,
                &project.manifest_dir,
                &project.workspace_root,
                &vars,
                &plugins::registry_for(&inv)?.sections(),
            )?;
            let limine: image_runner_limine::LimineConfig =
                match resolved.sections.get("limine") {
                    Some(table) => toml::Value::Table(table.clone()).try_into().map_err(
                        |e: toml::de::Error| {
                            Error::Config(format!("section `limine`: {}", e.message()))
                        },
                    )?,
                    None => Default::default(),
                };
            (resolved.config, limine, project.manifest_dir)
        }
        Err(_) => (
            image_runner_core::Config::default(),
            image_runner_limine::LimineConfig::default(),
            std::env::current_dir().map_err(|e| Error::io("read the current directory", ".", e))?,
        ),
    };
    match &limine_args.action {
        LimineAction::Fetch { version } => {
            let mut settings = image_runner_limine::settings_from(
                &config,
                &limine,
                &manifest_dir,
                &cache_dir,
                &inv.env,
            );
            if let Some(version) = version {
                settings.version = version.clone();
            }
            // Ask the remote now, whatever the last resolution was, and hash every cached
            // file, whatever earlier checks found: a damaged entry is fetched again.
            settings.refresh = std::time::Duration::ZERO;
            settings.full_check = true;
            let files = image_runner_limine::acquire(&settings)?;
            for warning in &files.warnings {
                eprintln!("warning: {warning}");
            }
            println!("{files}");
        }
        LimineAction::List => {
            let cached = image_runner_limine::list_cached(&cache_dir);
            if cached.is_empty() {
                println!("no Limine in {}", cache_dir.join("limine").display());
            }
            for entry in cached {
                let version = entry
                    .version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "unknown version".into());
                let refs = if entry.refs.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", entry.refs.join(", "))
                };
                let problem = entry
                    .problem
                    .map(|p| format!("  (damaged: {p}; it will be fetched again)"))
                    .unwrap_or_default();
                println!(
                    "{}  {version}  {:.1} MiB{refs}{problem}",
                    entry.commit,
                    entry.size as f64 / f64::from(1 << 20)
                );
            }
        }
        LimineAction::Clean { keep } => {
            let report = image_runner_limine::clean_cache(&cache_dir, keep.as_deref())?;
            println!(
                "removed {} cached Limine version(s), kept {}, freed {:.1} MiB",
                report.removed.len(),
                report.kept.len(),
                report.freed as f64 / f64::from(1 << 20)
            );
        }
    }
    Ok(exit_code::SUCCESS)
}

/// `ovmf fetch|list`: settings come from the project's config when there is one.
#[cfg(feature = "ovmf")]
fn ovmf(env: &[(OsString, OsString)], ovmf_args: &args::OvmfArgs) -> Result<i32, Error> {
    use image_runner_core::Arch;
    use image_runner_ovmf::{ARCHES, Settings, cache};
    // A partial download is removed on a signal; there is no guest to name here.
    let _interrupt = interrupt::Preparing::install_saying(
        "while handling UEFI firmware (`cargo-image-runner ovmf`); anything half-downloaded or half-unpacked was removed",
    );
    let inv = invocation(env, &ovmf_args.common, None, &[], None);
    let cache_dir = image_runner_core::context::cache_dir(&inv.env)?;
    let sections = plugins::registry_for(&inv)?.sections();
    let resolved = match Project::discover(&inv, None) {
        Ok(project) => image_runner_core::context::load_config(
            &inv,
            &project.manifest_dir,
            &project.workspace_root,
            &show_config::placeholder_variables(&project),
            &sections,
        )?,
        // Outside a package there are no project files, but the environment
        // (`CARGO_IMAGE_RUNNER_OVMF_*`, `CARGO_NET_OFFLINE`) and the command line still apply.
        Err(_) => {
            let here = std::env::current_dir()
                .map_err(|e| Error::io("read the current directory", ".", e))?;
            let mut inv = inv.clone();
            inv.read_project_config = false;
            image_runner_core::context::load_config(
                &inv,
                &here,
                &here,
                &image_runner_core::config::Variables::new(),
                &sections,
            )?
        }
    };
    let config = match resolved.sections.get("ovmf") {
        Some(table) => {
            toml::Value::Table(table.clone())
                .try_into()
                .map_err(|e: toml::de::Error| {
                    Error::Config(format!("section `ovmf`: {}", e.message()))
                })?
        }
        None => Default::default(),
    };
    let offline = resolved.config.offline;
    let settings = Settings {
        config,
        cache_dir: cache_dir.clone(),
        offline,
        env: inv.env.clone(),
    };
    match &ovmf_args.action {
        args::OvmfAction::Fetch { arch } => {
            let arch = arch
                .as_deref()
                .map(|name| {
                    Arch::from_name(name)
                        .filter(|a| ARCHES.contains(a))
                        .ok_or_else(|| {
                            Error::Config(format!(
                                "`--arch {name}`: use x86_64, aarch64, riscv64 or loongarch64"
                            ))
                        })
                })
                .transpose()?;
            // Every file hashed: a damaged entry is fetched again.
            let entry = settings.fetch(arch, cache::Check::Full)?;
            println!("{} ({})", entry.tag, entry.dir.display());
            for arch in arch.map_or_else(|| ARCHES.to_vec(), |a| vec![a]) {
                let name = arch.name();
                match entry.arch(arch) {
                    Ok(files) => println!(
                        "{name:>12}  {} + {}{}",
                        files.code.display(),
                        files.vars.display(),
                        files
                            .shell
                            .map(|s| format!(", shell {}", s.display()))
                            .unwrap_or_default()
                    ),
                    // Only without `--arch`: with it, a missing architecture is an error.
                    Err(_) => println!("{name:>12}  none in this release"),
                }
            }
        }
        args::OvmfAction::List => {
            println!("installed:");
            for arch in ARCHES {
                let name = arch.name();
                let search = image_runner_ovmf::Search::system(arch, inv.env.clone())
                    .with_env_not_utf8(inv.env_not_utf8.clone());
                match image_runner_ovmf::find(&search) {
                    Ok(pair) => println!("{name:>12}  {}", image_runner_ovmf::describe(&pair)),
                    Err(_) => println!(
                        "{name:>12}  none ({})",
                        image_runner_ovmf::install_hint(arch)
                    ),
                }
            }
            let cache = cache::Cache::new(&cache_dir);
            println!("downloaded ({}):", cache.root().display());
            let listed = cache.list();
            if listed.is_empty() {
                println!("  none");
            }
            for (entry, problem) in listed {
                let size: u64 = entry.files.iter().map(|(_, size, _)| size).sum();
                let problem = problem
                    .map(|p| {
                        format!(
                            "  (damaged: {p}; the next run that needs it, or `ovmf fetch`, fetches it again)"
                        )
                    })
                    .unwrap_or_default();
                println!(
                    "  {}  sha256 {}  {:.1} MiB{problem}",
                    entry.tag,
                    entry.sha256,
                    size as f64 / f64::from(1 << 20)
                );
            }
        }
    }
    Ok(exit_code::SUCCESS)
}

/// `plugins`: the static plugins and the libraries the project's config and `--plugin` name.
fn list_plugins(env: &[(OsString, OsString)], common: &Common) -> Result<i32, Error> {
    let mut inv = invocation(env, common, None, &[], None);
    // Outside a package only `--plugin` libraries are loaded.
    inv.read_project_config = Project::discover(&inv, None).is_ok();
    print!("{}", plugins::list(&plugins::registry_for(&inv)?));
    Ok(exit_code::SUCCESS)
}

fn doctor(env: &[(OsString, OsString)], common: &Common) -> Result<i32, Error> {
    let inv = invocation(env, common, None, &[], None);
    let registry = match Project::discover(&inv, None) {
        Ok(_) => plugins::registry_for(&inv)?,
        Err(_) => {
            let mut inv = inv;
            inv.read_project_config = false;
            plugins::registry_for(&inv)?
        }
    };
    let mut missing = false;
    for check in registry.checks() {
        let tag = match check.status {
            CheckStatus::Ok => "ok",
            CheckStatus::Warn => "warn",
            _ => {
                missing = true;
                "missing"
            }
        };
        println!("{tag:>8}  {}: {}", check.subject, check.detail);
    }
    Ok(if missing {
        exit_code::RUNNER_ERROR
    } else {
        exit_code::SUCCESS
    })
}

fn clean(env: &[(OsString, OsString)], clean_args: &CleanArgs) -> Result<i32, Error> {
    let inv = invocation(
        env,
        &clean_args.common,
        clean_args.executable.as_deref(),
        &[],
        None,
    );
    let executable = clean_args
        .executable
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .map_err(|e| Error::io("resolve the path", ".", e))?;
    let project = Project::discover(&inv, executable.as_deref())?;
    let dir: PathBuf = match executable.as_deref() {
        Some(executable) => {
            image_runner_core::context::output_dir_for(&project.target_dir, executable)
        }
        None => project.target_dir.join("image-runner"),
    };
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => eprintln!("     Removed {}", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("     Nothing to clean: {} does not exist", dir.display())
        }
        Err(e) => return Err(Error::io("remove", &dir, e)),
    }
    Ok(exit_code::SUCCESS)
}
