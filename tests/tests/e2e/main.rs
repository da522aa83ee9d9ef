//! The workspace's end-to-end tests, one module a subject: they build tiny kernels with gcc/ld,
//! write images, and boot them in real QEMU through the real runner program. One test binary
//! (one link) for all of them; `cargo test -p image-runner-tests --test e2e -- MODULE::` runs
//! one subject.

mod awkward_paths;
mod config_errors;
mod default_memory;
mod direct_boot;
mod disk_gpt;
mod disk_mbr;
mod doctor;
mod dynamic_plugins;
mod example_kernel;
mod grub_bios;
mod grub_uefi;
mod harness_verdicts;
mod incremental;
mod interrupted_build;
mod iso_boot;
mod iso_readers;
mod kernel_test_protocol;
mod kernel_tests;
mod kernel_tests_c;
mod kernels_boot_direct;
mod kernels_boot_other_arch;
mod library_boot;
mod limine_images;
mod limine_real;
mod migrate;
mod not_utf8;
mod old_spellings;
mod outside_plugin;
mod ovmf_download;
mod parallel_runs;
mod qemu_runner;
mod uefi_fat;
mod verdicts;
mod workspace;
