//! Where a plugin library lies in memory: the loaded segments of the object whose code holds
//! its entry function, from the program headers the dynamic loader keeps for every loaded
//! object (`dl_iterate_phdr`). The host reads nothing through a library's header that these
//! segments do not hold: the header, the descriptor table, the names and the versions must lie
//! in readable segments, and `call` and `free` in executable ones. A library is never
//! unloaded, so what a segment holds stays there.
//!
//! Where the platform has no `dl_iterate_phdr` (macOS, Windows) the segments are unknown and
//! the header is trusted as it is; PLUGINS.md says so.

use std::ffi::c_void;

/// One loaded segment: `start..end` in this process, and what it may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    start: usize,
    end: usize,
    readable: bool,
    executable: bool,
}

/// The loaded image of one library.
#[derive(Debug, Clone)]
pub(crate) enum LoadedImage {
    /// Its loaded segments.
    Segments(Vec<Segment>),
    /// The platform does not say where libraries lie: nothing can be checked.
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    Unknown,
}

impl LoadedImage {
    /// The image of the loaded object whose code holds `code`; `None` when no loaded object's
    /// code holds it.
    pub(crate) fn holding(code: *const c_void) -> Option<LoadedImage> {
        holding(code as usize)
    }

    /// Whether `len` bytes at `at` lie in one readable segment (nothing to read always does).
    pub(crate) fn holds(&self, at: *const u8, len: usize) -> bool {
        if len == 0 {
            return true;
        }
        let at = at as usize;
        match self {
            LoadedImage::Unknown => true,
            LoadedImage::Segments(segments) => at.checked_add(len).is_some_and(|end| {
                segments
                    .iter()
                    .any(|s| s.readable && s.start <= at && end <= s.end)
            }),
        }
    }

    /// How many bytes lie from `at` to the end of the readable segment holding it (0 when none
    /// holds it).
    pub(crate) fn room(&self, at: *const u8) -> usize {
        let at = at as usize;
        match self {
            LoadedImage::Unknown => usize::MAX,
            LoadedImage::Segments(segments) => segments
                .iter()
                .filter(|s| s.readable && s.start <= at && at < s.end)
                .map(|s| s.end - at)
                .max()
                .unwrap_or(0),
        }
    }

    /// Whether `at` lies in an executable segment.
    pub(crate) fn is_code(&self, at: *const c_void) -> bool {
        let at = at as usize;
        match self {
            LoadedImage::Unknown => at != 0,
            LoadedImage::Segments(segments) => segments
                .iter()
                .any(|s| s.executable && s.start <= at && at < s.end),
        }
    }
}

#[cfg(target_os = "linux")]
fn holding(code: usize) -> Option<LoadedImage> {
    struct Search {
        code: usize,
        found: Option<Vec<Segment>>,
    }

    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `Search` below, alive for the whole iteration; `info` is the
        // loader's description of one loaded object, valid during this call.
        let (search, info) = unsafe { (&mut *data.cast::<Search>(), &*info) };
        let headers = if info.dlpi_phdr.is_null() {
            &[][..]
        } else {
            // SAFETY: the loader's program headers of this object, `dlpi_phnum` of them.
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let base = info.dlpi_addr as usize;
        let segments: Vec<Segment> = headers
            .iter()
            .filter(|h| h.p_type == libc::PT_LOAD)
            .map(|h| {
                let start = base.wrapping_add(h.p_vaddr as usize);
                Segment {
                    start,
                    end: start.saturating_add(h.p_memsz as usize),
                    readable: h.p_flags & libc::PF_R != 0,
                    executable: h.p_flags & libc::PF_X != 0,
                }
            })
            .collect();
        let code = search.code;
        if segments
            .iter()
            .any(|s| s.executable && s.start <= code && code < s.end)
        {
            search.found = Some(segments);
            return 1;
        }
        0
    }

    let mut search = Search { code, found: None };
    // SAFETY: `visit` only reads what the loader hands it and writes `search`.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&raw mut search).cast::<c_void>()) };
    search.found.map(LoadedImage::Segments)
}

#[cfg(not(target_os = "linux"))]
fn holding(_code: usize) -> Option<LoadedImage> {
    Some(LoadedImage::Unknown)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    static DATA: [u64; 4] = [1, 2, 3, 4];

    #[test]
    fn this_binarys_code_and_data_are_in_its_image_and_the_heap_is_not() {
        let image = LoadedImage::holding(holding as *const c_void).expect("this binary's image");
        let data = DATA.as_ptr().cast::<u8>();
        assert!(image.holds(data, 32));
        assert!(image.room(data) >= 32);
        assert!(image.is_code(holding as *const c_void));
        assert!(!image.is_code(data.cast()));
        let heap = Box::new([0u8; 64]);
        assert!(!image.holds(heap.as_ptr(), 1));
        assert_eq!(image.room(heap.as_ptr()), 0);
        assert!(image.holds(std::ptr::null(), 0));
        assert!(!image.holds(data, usize::MAX));
        assert!(LoadedImage::holding(heap.as_ptr().cast()).is_none());
    }
}
