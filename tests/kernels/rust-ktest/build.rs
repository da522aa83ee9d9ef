//! Links the test kernels as freestanding ELF files with `linker.ld`: no C runtime, no libc, no
//! PIE. `-u pvh_start` pulls the boot code out of the library, which nothing else references.

fn main() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/linker.ld");
    println!("cargo::rerun-if-changed={script}");
    for arg in [
        &format!("-T{script}"),
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,-u,pvh_start",
    ] {
        println!("cargo::rustc-link-arg-tests={arg}");
    }
}
