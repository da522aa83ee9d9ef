//! Test executables that carry a kernel test table go through the test harness: libtest's
//! arguments, one boot for the selected tests, libtest's output and exit codes.

use std::path::Path;

use image_runner_core::{Context, Error, Pipeline, exit_code};
use image_runner_test_harness::{Request, TestCase, libtest, table};

/// libtest's arguments, or libtest's answer to bad ones (a message and exit code 101).
fn request(args: &[String]) -> Result<Request, i32> {
    Request::parse(args).map_err(|message| {
        eprintln!("error: {message}");
        libtest::FAILED_EXIT_CODE
    })
}

/// `--list` for an executable with a test table: the names, read from the file; nothing is
/// configured or booted. `None` when the executable has no table.
pub fn list(executable: &Path, args: &[String]) -> Result<Option<i32>, Error> {
    let Some(tests) = table::read(executable)? else {
        return Ok(None);
    };
    let request = match request(args) {
        Ok(request) => request,
        Err(code) => return Ok(Some(code)),
    };
    let selection = request.select(&tests);
    libtest::list(
        &mut std::io::stdout().lock(),
        &selection.listed(),
        request.format,
    );
    Ok(Some(exit_code::SUCCESS))
}

/// The test table of the kernel in `ctx`, when it is a test with one.
pub fn table_of(ctx: &Context) -> Result<Option<Vec<TestCase>>, Error> {
    if !ctx.decisions.mode.is_test {
        return Ok(None);
    }
    table::read(&ctx.kernel.path)
}

/// Runs the tests: libtest's exit code.
pub fn run(pipeline: &Pipeline<'_>, ctx: &Context, tests: &[TestCase]) -> Result<i32, Error> {
    match request(&ctx.args) {
        Ok(request) => image_runner_test_harness::session::run_with(
            pipeline,
            ctx,
            tests,
            &request,
            // Each boot's image is written under the same Ctrl-C handling as a plain run's.
            &mut |pipeline, ctx| {
                let _preparing = crate::interrupt::Preparing::install();
                pipeline.prepare(ctx)
            },
        ),
        Err(code) => Ok(code),
    }
}
