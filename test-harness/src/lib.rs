//! Kernel tests under cargo-image-runner: a kernel's test executable carries a table of its
//! tests (the `kernel_tests` ELF section), reads which to run from its command line and reports
//! each on serial (`kernel-test/PROTOCOL.md`). This crate is the runner's side: it reads the
//! table ([`table`]), takes libtest's arguments ([`request`]), follows the serial lines
//! ([`protocol`]), boots once for all selected tests and again after a test that killed the
//! machine ([`session`]), prints libtest's output ([`libtest`]), turns backtrace addresses into
//! functions and lines ([`symbolize`]) and writes JUnit reports ([`junit`]).

pub mod junit;
pub mod libtest;
pub mod protocol;
pub mod request;
pub mod session;
pub mod symbolize;
pub mod table;

pub use request::Request;
pub use session::run;
pub use table::{TestCase, has_table};
