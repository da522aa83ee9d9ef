//! End-to-end test support for cargo-image-runner.
//!
//! The build script assembles the tiny kernels in `tests/kernels/`; the [`kernels`] module
//! tells tests where they are and what they print, and [`runner`] runs the real runner program
//! on them inside throw-away projects.

pub mod fixture_boot;
pub mod kernels;
pub mod runner;
pub mod rust_ktest;
pub mod tools;
