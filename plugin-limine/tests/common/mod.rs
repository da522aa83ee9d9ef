//! A local bare git repository laid out like Limine's: binary-release branches and tags whose
//! commits hold files with the real names and small, recognisable contents, plus a source
//! branch without binaries.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use git2::{Oid, Repository, Signature, Time};
use image_runner_limine::{LimineFiles, LimineSettings};
use tempfile::TempDir;

/// The fixture repository and a cache directory beside it.
pub struct Fixture {
    pub dir: TempDir,
    /// The bare repository.
    pub repo: PathBuf,
    /// `v8.x-binary` commits, oldest first.
    pub v8: Vec<Oid>,
    /// `v9.x-binary` commits.
    pub v9: Vec<Oid>,
    /// The `trunk` (source) commit.
    pub trunk: Oid,
}

impl Fixture {
    /// `v8.x-binary`: three commits (Limine 8.0.0, 8.1.0, 8.2.0), tags `v8.1.0-binary`
    /// (annotated, on the second) and `v8.2.0-binary` (lightweight, on the tip);
    /// `v9.x-binary`: one commit (9.0.0); `trunk`: sources only.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let repo_path = dir.path().join("limine.git");
        let repo = Repository::init_bare(&repo_path).unwrap();
        let mut fixture = Fixture {
            repo: repo_path,
            v8: Vec::new(),
            v9: Vec::new(),
            trunk: Oid::ZERO_SHA1,
            dir,
        };
        for version in ["8.0.0", "8.1.0", "8.2.0"] {
            let oid = fixture.commit_release("v8.x-binary", version);
            fixture.v8.push(oid);
        }
        let v9 = fixture.commit_release("v9.x-binary", "9.0.0");
        fixture.v9.push(v9);
        fixture.trunk = commit(
            &repo,
            "refs/heads/trunk",
            &[("README.md", b"Limine sources".to_vec())],
            "sources",
        );
        let sig = signature(0);
        let second = repo.find_object(fixture.v8[1], None).unwrap();
        repo.tag(
            "v8.1.0-binary",
            &second,
            &sig,
            "Binary release v8.1.0",
            false,
        )
        .unwrap();
        repo.reference("refs/tags/v8.2.0-binary", fixture.v8[2], false, "tag")
            .unwrap();
        fixture
    }

    /// Adds a release commit on `branch` and returns it.
    pub fn commit_release(&self, branch: &str, version: &str) -> Oid {
        let repo = Repository::open_bare(&self.repo).unwrap();
        commit(
            &repo,
            &format!("refs/heads/{branch}"),
            &release_files(version),
            &format!("Binary release v{version}"),
        )
    }

    /// The repository as a plain path.
    pub fn url(&self) -> String {
        self.repo.to_string_lossy().into_owned()
    }

    /// The repository as a `file://` URL.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.repo.display())
    }

    /// A fresh cache directory.
    pub fn cache(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Settings for this repository and `version` with the cache `cache`.
    pub fn settings(&self, cache: &Path, version: &str) -> LimineSettings {
        let mut settings = LimineSettings::new(cache);
        settings.git = self.url();
        settings.version = version.to_owned();
        settings
    }

    /// Moves the repository away (simulating an unreachable remote) until the guard drops.
    pub fn hide(&self) -> Hidden<'_> {
        let away = self.repo.with_extension("away");
        std::fs::rename(&self.repo, &away).unwrap();
        Hidden {
            fixture: self,
            away,
        }
    }
}

/// The remote is unreachable while this lives.
pub struct Hidden<'a> {
    fixture: &'a Fixture,
    away: PathBuf,
}

impl Drop for Hidden<'_> {
    fn drop(&mut self) {
        let _ = std::fs::rename(&self.away, &self.fixture.repo);
    }
}

/// The files of a binary release: real names, contents naming the version.
pub fn release_files(version: &str) -> Vec<(&'static str, Vec<u8>)> {
    let label = |name: &str| format!("{name} of Limine {version} (fixture)").into_bytes();
    // Long enough for an El Torito boot info table (bytes 8..64), like the real 24 KiB file.
    let mut bios_cd = label("LIMINE-BIOS-CD");
    bios_cd.resize(24 * 1024, 0xCD);
    let mut uefi_cd = label("LIMINE-UEFI-CD");
    // Large enough that fetching takes a moment, so concurrent runs overlap.
    uefi_cd.extend((0..256 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    vec![
        ("limine-bios.sys", label("LIMINE-BIOS-SYS")),
        ("limine-bios-cd.bin", bios_cd),
        ("limine-uefi-cd.bin", uefi_cd),
        ("limine-bios-pxe.bin", label("LIMINE-BIOS-PXE")),
        ("BOOTX64.EFI", label("BOOTX64")),
        ("BOOTIA32.EFI", label("BOOTIA32")),
        ("BOOTAA64.EFI", label("BOOTAA64")),
        ("BOOTRISCV64.EFI", label("BOOTRISCV64")),
        ("limine.h", label("LIMINE-H")),
        (
            "limine.c",
            format!("/* host tool (fixture) */\n#define LIMINE_VERSION \"{version}\"\n")
                .into_bytes(),
        ),
        (
            "limine-bios-hdd.h",
            hdd_header(&hdd_stages(version)).into_bytes(),
        ),
    ]
}

/// Size of the synthetic BIOS disk stages: what Limine 8.2.0's `limine-bios-hdd.h` holds
/// (a 512-byte stage 1 and a 41-sector stage 2).
pub const HDD_STAGES_LEN: usize = 21_503;

/// Synthetic BIOS disk stages for `version`: a stage 1 sector that starts with
/// `LIMINE-STAGE1 <version>` and ends in 0x55 0xAA, then a stage 2 whose every 512-byte sector
/// starts with `S2 <sector number>` (counting from 0) followed by a byte pattern, so that
/// tests can tell where each piece landed.
pub fn hdd_stages(version: &str) -> Vec<u8> {
    let mut bytes = vec![0u8; HDD_STAGES_LEN];
    let (stage1, stage2) = bytes.split_at_mut(512);
    let tag = format!("LIMINE-STAGE1 {version} (fixture)");
    stage1[..tag.len()].copy_from_slice(tag.as_bytes());
    for (i, b) in stage1.iter_mut().enumerate().skip(tag.len()) {
        *b = (i as u8).wrapping_mul(7) | 1;
    }
    stage1[510] = 0x55;
    stage1[511] = 0xAA;
    for (n, sector) in stage2.chunks_mut(512).enumerate() {
        for (i, b) in sector.iter_mut().enumerate() {
            *b = (i as u8) ^ (n as u8).wrapping_mul(31) ^ 0xA5;
        }
        let tag = format!("S2 {n:03}");
        let len = tag.len().min(sector.len());
        sector[..len].copy_from_slice(&tag.as_bytes()[..len]);
    }
    bytes
}

/// `bytes` as the C array of Limine's `limine-bios-hdd.h` (16 bytes a line).
pub fn hdd_header(bytes: &[u8]) -> String {
    let mut out = String::from("const uint8_t binary_limine_hdd_bin_data[] = {\n");
    for line in bytes.chunks(16) {
        let items: Vec<String> = line.iter().map(|b| format!("0x{b:02x}")).collect();
        out.push_str(&format!("    {},\n", items.join(", ")));
    }
    out.push_str("};\n");
    out
}

fn signature(n: i64) -> Signature<'static> {
    Signature::new(
        "Fixture",
        "fixture@example.invalid",
        &Time::new(1_700_000_000 + n, 0),
    )
    .unwrap()
}

/// Commits `files` (flat) on `refname`, on top of its current commit if any.
fn commit(repo: &Repository, refname: &str, files: &[(&str, Vec<u8>)], message: &str) -> Oid {
    let mut builder = repo.treebuilder(None).unwrap();
    for (name, bytes) in files {
        let blob = repo.blob(bytes).unwrap();
        builder.insert(name, blob, 0o100644).unwrap();
    }
    let tree = repo.find_tree(builder.write().unwrap()).unwrap();
    let parent = repo
        .find_reference(refname)
        .ok()
        .and_then(|r| r.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let sig = signature(parents.len() as i64);
    repo.commit(Some(refname), &sig, &sig, message, &tree, &parents)
        .unwrap()
}

/// The content of `name` in `files` as text.
pub fn read(files: &LimineFiles, name: &str) -> String {
    String::from_utf8_lossy(&std::fs::read(files.file(name).unwrap()).unwrap()).into_owned()
}

/// Changes one byte of `path` in place and puts its modification time back: damage that keeps
/// the size and mtime (what a stray write, a bad copy tool or a bit flip can leave).
pub fn damage_keeping_size_and_mtime(path: &Path) {
    let before = std::fs::metadata(path).unwrap();
    let mtime = before.modified().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(path, &bytes).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    let after = std::fs::metadata(path).unwrap();
    assert_eq!(after.len(), before.len());
    assert_eq!(after.modified().unwrap(), mtime);
}
