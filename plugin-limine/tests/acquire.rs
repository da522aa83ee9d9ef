//! Getting Limine from a local repository shaped like the real one: by branch, tag and commit,
//! from the cache, offline, after the branch moved, with damaged cache entries, from several
//! processes at once, and from a local directory.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Fixture, read};
use image_runner_limine::{
    FilesSource, LimineError, LimineSettings, LimineVersion, acquire, clean_cache, list_cached,
};

fn version(text: &str) -> Option<LimineVersion> {
    LimineVersion::parse(text)
}

#[test]
fn a_branch_resolves_to_its_tip_on_the_remote() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let files = acquire(&fx.settings(&cache, "v8.x-binary")).unwrap();
    assert_eq!(files.source, FilesSource::Fetched);
    assert_eq!(files.commit, Some(fx.v8[2].to_string()));
    assert_eq!(files.dir, cache.join("limine").join(fx.v8[2].to_string()));
    assert_eq!(files.version, version("8.2.0"));
    assert_eq!(files.major(), Some(8));
    assert!(read(&files, "limine-bios.sys").contains("Limine 8.2.0"));
    assert!(files.dir.join(".complete").is_file());
    assert!(!files.dir.join(".git").exists());
    // Nothing but the entry, the remembered resolution and the lock is left behind.
    let mut names: Vec<String> = std::fs::read_dir(cache.join("limine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".lock-"))
        .collect();
    names.sort();
    assert_eq!(names, [fx.v8[2].to_string(), "refs".to_owned()]);

    let again = acquire(&fx.settings(&cache, "v8.x-binary")).unwrap();
    assert_eq!(again.source, FilesSource::Cache);
    assert_eq!(again.dir, files.dir);
}

#[test]
fn tags_annotated_and_lightweight() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let annotated = acquire(&fx.settings(&cache, "v8.1.0-binary")).unwrap();
    assert_eq!(annotated.commit, Some(fx.v8[1].to_string()));
    assert_eq!(annotated.version, version("8.1.0"));
    assert!(read(&annotated, "BOOTX64.EFI").contains("8.1.0"));

    // The lightweight tag points at the branch tip: one entry serves both names.
    let branch = acquire(&fx.settings(&cache, "v8.x-binary")).unwrap();
    let tag = acquire(&fx.settings(&cache, "v8.2.0-binary")).unwrap();
    assert_eq!(branch.source, FilesSource::Fetched);
    assert_eq!(tag.source, FilesSource::Cache);
    assert_eq!(tag.dir, branch.dir);
}

#[test]
fn full_and_abbreviated_commit_ids() {
    let fx = Fixture::new();
    // An older commit of a branch (not advertised by the remote).
    let old = fx.v8[0].to_string();
    let files = acquire(&fx.settings(&fx.cache("full"), &old)).unwrap();
    assert_eq!(files.commit.as_deref(), Some(old.as_str()));
    assert_eq!(files.version, version("8.0.0"));
    assert_eq!(files.source, FilesSource::Fetched);

    let short = &old[..7];
    let files = acquire(&fx.settings(&fx.cache("short"), short)).unwrap();
    assert_eq!(files.commit.as_deref(), Some(old.as_str()));
    assert!(read(&files, "limine-bios.sys").contains("8.0.0"));
    // Cached now: the prefix is answered from the cache, upper case too.
    let again = acquire(&fx.settings(&fx.cache("short"), &short.to_uppercase())).unwrap();
    assert_eq!(again.source, FilesSource::Cache);

    // The tip of a branch, abbreviated.
    let tip = fx.v9[0].to_string();
    let files = acquire(&fx.settings(&fx.cache("tip"), &tip[..10])).unwrap();
    assert_eq!(files.commit.as_deref(), Some(tip.as_str()));
    assert_eq!(files.major(), Some(9));
}

#[test]
fn cache_hits_never_touch_the_remote() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let commit = fx.v8[0].to_string();
    for v in [
        "v8.x-binary",
        "v8.1.0-binary",
        commit.as_str(),
        &commit[..8],
    ] {
        acquire(&fx.settings(&cache, v)).unwrap();
    }
    let _hidden = fx.hide();
    for v in [
        "v8.x-binary",
        "v8.1.0-binary",
        commit.as_str(),
        &commit[..8],
    ] {
        let files = acquire(&fx.settings(&cache, v)).unwrap();
        assert_eq!(files.source, FilesSource::Cache, "{v}");
        assert!(files.warnings.is_empty(), "{v}: {:?}", files.warnings);
    }
}

#[test]
fn a_moved_branch_is_fetched_once_the_refresh_interval_passed() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let first = acquire(&fx.settings(&cache, "v8.x-binary")).unwrap();
    let newer = fx.commit_release("v8.x-binary", "8.3.0");

    // Within the interval the remembered resolution stands.
    let within = acquire(&fx.settings(&cache, "v8.x-binary")).unwrap();
    assert_eq!(within.commit, first.commit);
    assert_eq!(within.source, FilesSource::Cache);

    let mut settings = fx.settings(&cache, "v8.x-binary");
    settings.refresh = Duration::ZERO;
    let moved = acquire(&settings).unwrap();
    assert_eq!(moved.commit, Some(newer.to_string()));
    assert_eq!(moved.source, FilesSource::Fetched);
    assert_eq!(moved.version, version("8.3.0"));

    // The new resolution is remembered; the old entry stays for whoever pinned it.
    let after = acquire(&fx.settings(&cache, "v8.x-binary")).unwrap();
    assert_eq!(after.commit, Some(newer.to_string()));
    assert!(first.dir.join(".complete").is_file());

    // Re-resolving to a commit already cached fetches nothing.
    let other = fx.cache("other");
    acquire(&fx.settings(&other, &fx.v8[2].to_string())).unwrap();
    acquire(&fx.settings(&other, &newer.to_string())).unwrap();
    let mut settings = fx.settings(&other, "v8.x-binary");
    settings.refresh = Duration::ZERO;
    assert_eq!(acquire(&settings).unwrap().source, FilesSource::Cache);
}

#[test]
fn an_unreachable_remote_falls_back_to_the_last_resolution_with_a_warning() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let first = acquire(&fx.settings(&cache, "v8.x-binary")).unwrap();
    let _hidden = fx.hide();
    let mut settings = fx.settings(&cache, "v8.x-binary");
    settings.refresh = Duration::ZERO;
    let files = acquire(&settings).unwrap();
    assert_eq!(files.commit, first.commit);
    assert_eq!(files.warnings.len(), 1, "{:?}", files.warnings);
    assert!(
        files.warnings[0].contains("could not check whether `v8.x-binary` moved"),
        "{:?}",
        files.warnings
    );

    // Without anything cached, the error names the URL and the ways out.
    let err = acquire(&fx.settings(&fx.cache("empty"), "v8.x-binary"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&fx.url()), "{err}");
    assert!(
        err.contains("--offline") && err.contains("limine.path"),
        "{err}"
    );
}

#[test]
fn a_remote_that_cannot_send_the_new_commit_falls_back_too() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let first = acquire(&fx.settings(&cache, "v8.x-binary")).unwrap();
    // The branch moves to a commit whose blob is missing: listing works, fetching fails.
    fx.commit_release("v8.x-binary", "8.3.0");
    let blob = common::release_files("8.3.0")[0].1.clone();
    let oid = git2::Oid::hash_object(git2::ObjectType::Blob, &blob)
        .unwrap()
        .to_string();
    std::fs::remove_file(fx.repo.join("objects").join(&oid[..2]).join(&oid[2..])).unwrap();

    let mut settings = fx.settings(&cache, "v8.x-binary");
    settings.refresh = Duration::ZERO;
    let files = acquire(&settings).unwrap();
    assert_eq!(files.commit, first.commit);
    assert_eq!(files.warnings.len(), 1, "{:?}", files.warnings);

    let err = acquire(&fx.settings(&fx.cache("fresh"), "v8.x-binary")).unwrap_err();
    assert!(matches!(err, LimineError::BadRemote { .. }), "{err:?}");
    assert!(err.to_string().contains("incomplete or damaged"), "{err}");
    assert!(list_cached(&fx.cache("fresh")).is_empty());
}

#[test]
fn offline_uses_the_cache_and_says_what_is_missing() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let mut offline = fx.settings(&cache, "v8.x-binary");
    offline.offline = true;
    let err = acquire(&offline).unwrap_err();
    assert!(matches!(err, LimineError::NotCached { .. }), "{err:?}");
    let text = err.to_string();
    for part in [
        "`v8.x-binary`",
        fx.url().as_str(),
        "never been resolved",
        "cargo-image-runner limine fetch",
        "limine.path",
    ] {
        assert!(text.contains(part), "missing {part:?} in: {text}");
    }
    assert!(!cache.join("limine").join("refs").exists());

    let online = acquire(&fx.settings(&cache, "v8.x-binary")).unwrap();
    let _hidden = fx.hide();
    // Offline, a branch is not re-resolved however old its resolution is.
    offline.refresh = Duration::ZERO;
    let files = acquire(&offline).unwrap();
    assert_eq!(files.commit, online.commit);
    assert!(files.warnings.is_empty());

    let mut tag = fx.settings(&cache, "v8.1.0-binary");
    tag.offline = true;
    let text = acquire(&tag).unwrap_err().to_string();
    assert!(text.contains("`v8.1.0-binary`"), "{text}");
    let mut commit = fx.settings(&cache, &fx.v9[0].to_string());
    commit.offline = true;
    let text = acquire(&commit).unwrap_err().to_string();
    assert!(text.contains(&fx.v9[0].to_string()), "{text}");
}

/// The cache entry of the `v8.x-binary` tip after a first fetch.
fn fetched(fx: &Fixture, cache: &Path) -> std::path::PathBuf {
    acquire(&fx.settings(cache, "v8.x-binary")).unwrap().dir
}

fn assert_refetched(fx: &Fixture, cache: &Path) {
    let files = acquire(&fx.settings(cache, "v8.x-binary")).unwrap();
    assert_eq!(files.source, FilesSource::Fetched);
    assert!(read(&files, "limine-bios.sys").contains("8.2.0"));
    assert_eq!(
        std::fs::read(files.dir.join("limine-uefi-cd.bin")).unwrap(),
        common::release_files("8.2.0")[2].1
    );
}

#[test]
fn a_truncated_file_is_detected_and_the_entry_fetched_again() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let dir = fetched(&fx, &cache);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("limine-uefi-cd.bin"))
        .unwrap();
    file.set_len(1000).unwrap();
    drop(file);
    assert_refetched(&fx, &cache);
}

#[test]
fn changed_content_of_the_same_size_is_detected() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let dir = fetched(&fx, &cache);
    let path = dir.join("limine-bios.sys");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    assert_refetched(&fx, &cache);
}

#[test]
fn damage_keeping_size_and_mtime_is_detected() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let dir = fetched(&fx, &cache);
    common::damage_keeping_size_and_mtime(&dir.join("limine-bios-cd.bin"));
    assert_refetched(&fx, &cache);
}

/// Once an entry was checked, its files are not hashed again while their identity (device,
/// inode, size, mtime, ctime) stays; damage that keeps size and mtime still changes the ctime.
#[test]
fn damage_keeping_size_and_mtime_is_detected_after_the_entry_was_verified() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let dir = fetched(&fx, &cache);
    // Files changed within the last second are not remembered as verified (a write in the
    // same tick of the file system's clock would leave their ctime as it was).
    std::thread::sleep(Duration::from_millis(1100));
    let again = acquire(&fx.settings(&cache, "v8.x-binary")).unwrap();
    assert_eq!(again.source, FilesSource::Cache);
    let verified = std::fs::read_to_string(dir.join(".verified")).unwrap();
    assert!(verified.contains(" limine-bios.sys\n"), "{verified}");
    common::damage_keeping_size_and_mtime(&dir.join("limine-bios.sys"));
    assert_refetched(&fx, &cache);

    // Offline, a damaged entry is refused, naming the file.
    let dir = fetched(&fx, &cache);
    common::damage_keeping_size_and_mtime(&dir.join("BOOTX64.EFI"));
    let mut offline = fx.settings(&cache, "v8.x-binary");
    offline.offline = true;
    let text = acquire(&offline).unwrap_err().to_string();
    assert!(
        text.contains("unusable") && text.contains("BOOTX64.EFI"),
        "{text}"
    );
}

/// `full_check` (what `cargo-image-runner limine fetch` asks for) hashes every file whatever
/// an earlier check remembered, so it repairs damage no file metadata shows (bit rot), here
/// simulated by a record that vouches for a damaged file.
#[cfg(unix)]
#[test]
fn a_full_check_repairs_damage_that_file_metadata_does_not_show() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let dir = fetched(&fx, &cache);
    std::thread::sleep(Duration::from_millis(1100));
    acquire(&fx.settings(&cache, "v8.x-binary")).unwrap();
    let record = dir.join(".verified");
    let before = std::fs::read_to_string(&record).unwrap();
    let path = dir.join("limine-bios.sys");
    common::damage_keeping_size_and_mtime(&path);
    // The record now describes the damaged file, as if the damage had left no trace.
    std::thread::sleep(Duration::from_millis(1100));
    let line = |text: &str| {
        text.lines()
            .find(|l| l.ends_with(" limine-bios.sys"))
            .unwrap()
            .to_owned()
    };
    let meta = std::fs::metadata(&path).unwrap();
    use std::os::unix::fs::MetadataExt;
    let forged = format!(
        "{} {} {} {} {} limine-bios.sys",
        meta.dev(),
        meta.ino(),
        meta.len(),
        i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
    );
    std::fs::write(&record, before.replace(&line(&before), &forged)).unwrap();
    let fooled = acquire(&fx.settings(&cache, "v8.x-binary")).unwrap();
    assert_eq!(fooled.source, FilesSource::Cache);
    let original = common::release_files("8.2.0")[0].1.clone();
    assert_ne!(std::fs::read(&path).unwrap(), original);

    let mut full = fx.settings(&cache, "v8.x-binary");
    full.full_check = true;
    let repaired = acquire(&full).unwrap();
    assert_eq!(repaired.source, FilesSource::Fetched);
    assert_eq!(std::fs::read(&path).unwrap(), original);
    assert!(
        repaired
            .warnings
            .iter()
            .any(|w| w.contains("damaged") && w.contains("limine-bios.sys")),
        "{:?}",
        repaired.warnings
    );
}

#[test]
fn a_missing_manifest_or_file_is_detected() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let dir = fetched(&fx, &cache);
    std::fs::remove_file(dir.join(".complete")).unwrap();
    assert_refetched(&fx, &cache);
    std::fs::remove_file(dir.join("BOOTX64.EFI")).unwrap();
    assert_refetched(&fx, &cache);
}

#[test]
fn a_damaged_entry_is_never_used_offline() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let dir = fetched(&fx, &cache);
    std::fs::write(dir.join("limine-bios-cd.bin"), b"short").unwrap();
    let mut offline = fx.settings(&cache, "v8.x-binary");
    offline.offline = true;
    let text = acquire(&offline).unwrap_err().to_string();
    assert!(text.contains("unusable"), "{text}");
    assert!(text.contains("limine-bios-cd.bin"), "{text}");
}

#[test]
fn scratch_directories_of_dead_fetches_are_removed() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    fetched(&fx, &cache);
    let root = cache.join("limine");
    let key = std::fs::read_dir(root.join("refs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    // What a process killed in the middle of a fetch leaves: a scratch dir with a half
    // checkout, and a half-published entry without a manifest.
    let stray = root.join(format!(".tmp-{key}-999999-0-0"));
    std::fs::create_dir_all(stray.join("files")).unwrap();
    std::fs::write(stray.join("files/limine-bios.sys"), b"half").unwrap();
    let newer = fx.commit_release("v8.x-binary", "8.3.0");
    let half = root.join(newer.to_string());
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("limine-bios.sys"), b"half").unwrap();

    let mut settings = fx.settings(&cache, "v8.x-binary");
    settings.refresh = Duration::ZERO;
    let files = acquire(&settings).unwrap();
    assert_eq!(files.commit, Some(newer.to_string()));
    assert_eq!(files.source, FilesSource::Fetched);
    assert!(read(&files, "limine-bios.sys").contains("8.3.0"));
    assert!(!stray.exists());
}

/// Runs as a child process of `eight_processes_fetch_once`, which starts it with `--ignored`;
/// on its own it has nothing to check, so it is not counted among the tests that run.
#[test]
#[ignore = "a child process of eight_processes_fetch_once, which runs it"]
fn concurrent_child() {
    let Ok(spec) = std::env::var("PLUGIN_LIMINE_TEST_CHILD") else {
        return;
    };
    let mut lines = spec.lines();
    let (cache, url, version, go) = (
        lines.next().unwrap(),
        lines.next().unwrap(),
        lines.next().unwrap(),
        lines.next().unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Path::new(go).exists() {
        assert!(Instant::now() < deadline, "never told to start");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut settings = LimineSettings::new(cache);
    settings.git = url.to_owned();
    settings.version = version.to_owned();
    let files = acquire(&settings).unwrap();
    println!(
        "CHILD-RESULT {:?} {} {}",
        files.source,
        files.commit.unwrap(),
        files.dir.display()
    );
}

#[test]
fn eight_processes_fetch_once() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let go = fx.dir.path().join("go");
    let spec = format!(
        "{}\n{}\nv8.x-binary\n{}\n",
        cache.display(),
        fx.url(),
        go.display()
    );
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "concurrent_child",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("PLUGIN_LIMINE_TEST_CHILD", &spec)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(&go, b"go").unwrap();
    let mut results = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("CHILD-RESULT ").map(|(_, r)| r))
            .unwrap_or_else(|| panic!("no result in: {stdout}"))
            .to_owned();
        results.push(line);
    }
    let fetched = results.iter().filter(|r| r.starts_with("Fetched ")).count();
    assert_eq!(fetched, 1, "{results:#?}");
    let expected = format!(
        "{} {}",
        fx.v8[2],
        cache.join("limine").join(fx.v8[2].to_string()).display()
    );
    for result in &results {
        assert!(result.ends_with(&expected), "{results:#?}");
    }
    assert_eq!(list_cached(&cache).len(), 1);
}

#[test]
fn a_local_directory_is_used_as_it_is() {
    let fx = Fixture::new();
    let dir = fx.dir.path().join("share-limine");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in common::release_files("0") {
        if name != "limine.c" {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    std::fs::write(
        dir.join("limine-bios.sys"),
        b"\x00stage\x00Limine 9.1.2 (x86-64, BIOS)\x00",
    )
    .unwrap();
    let mut settings = LimineSettings::new(fx.cache("unused"));
    settings.git = "/nonexistent".into();
    settings.path = Some(dir.clone());
    let files = acquire(&settings).unwrap();
    assert_eq!(files.source, FilesSource::Directory);
    assert_eq!(files.dir, dir);
    assert_eq!(files.commit, None);
    assert_eq!(files.version, version("9.1.2"));
    assert!(!fx.cache("unused").exists());
    assert_eq!(
        files.efi_loader(image_runner_core::Arch::Aarch64).unwrap(),
        dir.join("BOOTAA64.EFI")
    );
    let err = files
        .efi_loader(image_runner_core::Arch::LoongArch64)
        .unwrap_err()
        .to_string();
    assert!(err.contains("BOOTLOONGARCH64.EFI"), "{err}");

    std::fs::remove_file(dir.join("limine-bios-cd.bin")).unwrap();
    let err = acquire(&settings).unwrap_err().to_string();
    assert!(err.contains("limine-bios-cd.bin"), "{err}");
    assert!(err.contains(&dir.display().to_string()), "{err}");
    settings.path = Some(dir.join("nope"));
    let err = acquire(&settings).unwrap_err().to_string();
    assert!(err.contains("not a directory"), "{err}");
}

#[test]
fn file_urls_and_plain_paths_both_work() {
    let fx = Fixture::new();
    let mut by_url = fx.settings(&fx.cache("url"), "v9.x-binary");
    by_url.git = fx.file_url();
    let a = acquire(&by_url).unwrap();
    let b = acquire(&fx.settings(&fx.cache("path"), "v9.x-binary")).unwrap();
    assert_eq!(a.commit, Some(fx.v9[0].to_string()));
    assert_eq!(a.commit, b.commit);
    assert_eq!(read(&a, "BOOTX64.EFI"), read(&b, "BOOTX64.EFI"));
}

#[test]
fn an_unknown_version_lists_the_binary_releases() {
    let fx = Fixture::new();
    let err = acquire(&fx.settings(&fx.cache("c"), "v7.x-binary")).unwrap_err();
    assert!(matches!(err, LimineError::RefNotFound { .. }), "{err:?}");
    let text = err.to_string();
    for part in [
        "no branch or tag named `v7.x-binary`",
        "v8.x-binary, v9.x-binary",
        "v8.1.0-binary, v8.2.0-binary",
    ] {
        assert!(text.contains(part), "missing {part:?} in: {text}");
    }
    let text = acquire(&fx.settings(&fx.cache("c"), "0123abcd"))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("no commit of its binary-release branches starts with `0123abcd`"),
        "{text}"
    );
}

#[test]
fn a_source_branch_is_not_a_binary_release() {
    let fx = Fixture::new();
    let cache = fx.cache("c");
    let text = acquire(&fx.settings(&cache, "trunk"))
        .unwrap_err()
        .to_string();
    assert!(text.contains("lacks limine-bios.sys"), "{text}");
    assert!(text.contains("not a Limine binary release"), "{text}");
    assert!(list_cached(&cache).is_empty());
}

#[test]
fn list_and_clean_the_cache() {
    let fx = Fixture::new();
    let cache = fx.cache("cache");
    let tip = acquire(&fx.settings(&cache, "v8.x-binary")).unwrap();
    acquire(&fx.settings(&cache, "v8.1.0-binary")).unwrap();
    acquire(&fx.settings(&cache, "v9.x-binary")).unwrap();
    let list = list_cached(&cache);
    assert_eq!(list.len(), 3);
    assert_eq!(list[0].version, version("9.0.0"));
    assert_eq!(list[1].version, version("8.2.0"));
    assert!(list.iter().all(|c| c.problem.is_none()));
    assert_eq!(list[1].refs, [format!("v8.x-binary ({})", fx.url())]);
    assert!(list[1].size > 256 * 1024);

    let err = clean_cache(&cache, Some("v1.x-binary"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nothing was removed"), "{err}");
    assert_eq!(list_cached(&cache).len(), 3);

    let report = clean_cache(&cache, Some("v8.x-binary")).unwrap();
    assert_eq!(report.kept, [fx.v8[2].to_string()]);
    assert_eq!(report.removed.len(), 2);
    assert!(report.freed > 0);
    let list = list_cached(&cache);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].dir, tip.dir);
    // Removed commits' resolutions are forgotten, so offline says they are missing.
    let mut offline = fx.settings(&cache, "v9.x-binary");
    offline.offline = true;
    assert!(matches!(
        acquire(&offline),
        Err(LimineError::NotCached { .. })
    ));

    clean_cache(&cache, None).unwrap();
    assert!(list_cached(&cache).is_empty());
}

/// `git daemon` serving the fixture on a loopback port: a network transport (git://) without
/// TLS, so the shallow-fetch path runs as it does against https. The test holds the listening
/// socket itself (no "find a free port, close it, hope the daemon gets it" race) and hands
/// each connection to a `git daemon --inetd`, which serves it on its stdin and stdout.
struct Daemon {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// Starts serving; git must be installed (`scripts/install-deps` installs it).
    fn start(base: &Path) -> Daemon {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("the bound address").port();
        // The daemon itself, not the `git` wrapper.
        let exec_path = match Command::new("git").arg("--exec-path").output() {
            Ok(out) if out.status.success() => {
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            }
            other => panic!("`git --exec-path` failed (install git): {other:?}"),
        };
        let program = Path::new(&exec_path).join("git-daemon");
        let base = base.to_path_buf();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let acceptor = std::thread::spawn(move || {
            let mut children = Vec::new();
            for stream in listener.incoming() {
                if stopping.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let output = stream.try_clone().expect("clone the connection");
                let child = Command::new(&program)
                    .arg("--inetd")
                    .arg("--export-all")
                    .arg(format!("--base-path={}", base.display()))
                    .arg(&base)
                    .stdin(Stdio::from(std::os::fd::OwnedFd::from(stream)))
                    .stdout(Stdio::from(std::os::fd::OwnedFd::from(output)))
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start `git daemon --inetd` (install git)");
                children.push(child);
            }
            for mut child in children {
                let _ = child.kill();
                let _ = child.wait();
            }
        });
        Daemon {
            port,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn url(&self) -> String {
        format!("git://127.0.0.1:{}/limine.git", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        // Wakes the acceptor, which then sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

#[test]
fn a_network_transport_fetches_refs_tips_and_commits_at_tips() {
    let fx = Fixture::new();
    let daemon = Daemon::start(fx.dir.path());
    let settings = |cache: &str, version: &str| {
        let mut settings = fx.settings(&fx.cache(cache), version);
        settings.git = daemon.url();
        settings
    };
    let files = acquire(&settings("branch", "v8.x-binary")).unwrap();
    assert_eq!(files.source, FilesSource::Fetched);
    assert_eq!(files.commit, Some(fx.v8[2].to_string()));
    let files = acquire(&settings("tag", "v8.1.0-binary")).unwrap();
    assert_eq!(files.commit, Some(fx.v8[1].to_string()));

    // A commit id that is a tip is fetched through its ref: `git daemon`, like many
    // servers, refuses to send an arbitrary id.
    let tip = fx.v9[0].to_string();
    let files = acquire(&settings("tip", &tip)).unwrap();
    assert_eq!(files.commit.as_deref(), Some(tip.as_str()));
    assert_eq!(files.major(), Some(9));
    let files = acquire(&settings("short-tip", &tip[..8])).unwrap();
    assert_eq!(files.commit.as_deref(), Some(tip.as_str()));

    let old = fx.v8[0].to_string();
    if cfg!(feature = "https") {
        // libgit2 asks for ref tips only, which `git daemon` insists on.
        let err = acquire(&settings("old", &old)).unwrap_err().to_string();
        assert!(err.contains("sends only branch and tag tips"), "{err}");
    } else {
        // The system's git speaks protocol v2, in which the server sends any reachable commit.
        let files = acquire(&settings("old", &old)).unwrap();
        assert_eq!(files.commit.as_deref(), Some(old.as_str()));
    }
    let err = acquire(&settings("old-short", &old[..8]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("full 40-digit commit id"), "{err}");
}
