//! libsystemd's sd-journal API, loaded at run time from `libsystemd.so.0`.
//!
//! The library is opened with `dlopen` the first time a `systemd` input starts, so the binary
//! neither links libsystemd nor needs its development files to build: only an agent that reads
//! the journal needs the library (Debian's `libsystemd0`, present on every systemd host and in
//! `debian:*-slim` images). Every call goes through [`Journal`], which owns one `sd_journal`
//! and must stay on the thread that opened it (sd-journal objects are not thread-safe).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::sync::OnceLock;

/// The library's file name (its ABI version 0).
pub const LIBRARY: &str = "libsystemd.so.0";

/// `SD_JOURNAL_LOCAL_ONLY`.
const SD_JOURNAL_LOCAL_ONLY: c_int = 1;

#[repr(C)]
struct SdJournal {
    _opaque: [u8; 0],
}

type J = *mut SdJournal;

/// The entry points used, resolved once.
struct Api {
    open: unsafe extern "C" fn(*mut J, c_int) -> c_int,
    open_directory: unsafe extern "C" fn(*mut J, *const c_char, c_int) -> c_int,
    close: unsafe extern "C" fn(J),
    get_fd: unsafe extern "C" fn(J) -> c_int,
    wait: unsafe extern "C" fn(J, u64) -> c_int,
    add_match: unsafe extern "C" fn(J, *const c_void, usize) -> c_int,
    add_conjunction: unsafe extern "C" fn(J) -> c_int,
    add_disjunction: unsafe extern "C" fn(J) -> c_int,
    seek_head: unsafe extern "C" fn(J) -> c_int,
    seek_tail: unsafe extern "C" fn(J) -> c_int,
    seek_cursor: unsafe extern "C" fn(J, *const c_char) -> c_int,
    seek_realtime_usec: unsafe extern "C" fn(J, u64) -> c_int,
    next: unsafe extern "C" fn(J) -> c_int,
    previous: unsafe extern "C" fn(J) -> c_int,
    get_realtime_usec: unsafe extern "C" fn(J, *mut u64) -> c_int,
    get_data: unsafe extern "C" fn(J, *const c_char, *mut *const c_void, *mut usize) -> c_int,
    enumerate_data: unsafe extern "C" fn(J, *mut *const c_void, *mut usize) -> c_int,
    restart_data: unsafe extern "C" fn(J),
    get_cursor: unsafe extern "C" fn(J, *mut *mut c_char) -> c_int,
    test_cursor: unsafe extern "C" fn(J, *const c_char) -> c_int,
}

fn dl_error() -> String {
    // SAFETY: dlerror returns a thread-local message or NULL.
    let p = unsafe { libc::dlerror() };
    if p.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: a NUL-terminated string owned by the loader.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl Api {
    fn load() -> Result<Api, String> {
        let name = CString::new(LIBRARY).map_err(|e| e.to_string())?;
        // SAFETY: dlopen with a valid C string; the handle is never closed (the API lives as
        // long as the process).
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!(
                "cannot load {LIBRARY} ({}): the systemd input reads the journal through \
                 libsystemd; install it (Debian/Ubuntu: apt-get install libsystemd0)",
                dl_error()
            ));
        }
        macro_rules! sym {
            ($name:literal, $ty:ty) => {{
                let cname = concat!($name, "\0");
                // SAFETY: a NUL-terminated symbol name on a valid handle.
                let p = unsafe { libc::dlsym(handle, cname.as_ptr().cast()) };
                if p.is_null() {
                    return Err(format!("{LIBRARY} has no {}: {}", $name, dl_error()));
                }
                // SAFETY: the symbol is the libsystemd function of that name, whose C
                // signature (sd-journal.h) is the field's type.
                unsafe { std::mem::transmute::<*mut c_void, $ty>(p) }
            }};
        }
        Ok(Api {
            open: sym!(
                "sd_journal_open",
                unsafe extern "C" fn(*mut J, c_int) -> c_int
            ),
            open_directory: sym!(
                "sd_journal_open_directory",
                unsafe extern "C" fn(*mut J, *const c_char, c_int) -> c_int
            ),
            close: sym!("sd_journal_close", unsafe extern "C" fn(J)),
            get_fd: sym!("sd_journal_get_fd", unsafe extern "C" fn(J) -> c_int),
            wait: sym!("sd_journal_wait", unsafe extern "C" fn(J, u64) -> c_int),
            add_match: sym!(
                "sd_journal_add_match",
                unsafe extern "C" fn(J, *const c_void, usize) -> c_int
            ),
            add_conjunction: sym!(
                "sd_journal_add_conjunction",
                unsafe extern "C" fn(J) -> c_int
            ),
            add_disjunction: sym!(
                "sd_journal_add_disjunction",
                unsafe extern "C" fn(J) -> c_int
            ),
            seek_head: sym!("sd_journal_seek_head", unsafe extern "C" fn(J) -> c_int),
            seek_tail: sym!("sd_journal_seek_tail", unsafe extern "C" fn(J) -> c_int),
            seek_cursor: sym!(
                "sd_journal_seek_cursor",
                unsafe extern "C" fn(J, *const c_char) -> c_int
            ),
            seek_realtime_usec: sym!(
                "sd_journal_seek_realtime_usec",
                unsafe extern "C" fn(J, u64) -> c_int
            ),
            next: sym!("sd_journal_next", unsafe extern "C" fn(J) -> c_int),
            previous: sym!("sd_journal_previous", unsafe extern "C" fn(J) -> c_int),
            get_realtime_usec: sym!(
                "sd_journal_get_realtime_usec",
                unsafe extern "C" fn(J, *mut u64) -> c_int
            ),
            get_data: sym!(
                "sd_journal_get_data",
                unsafe extern "C" fn(J, *const c_char, *mut *const c_void, *mut usize) -> c_int
            ),
            enumerate_data: sym!(
                "sd_journal_enumerate_data",
                unsafe extern "C" fn(J, *mut *const c_void, *mut usize) -> c_int
            ),
            restart_data: sym!("sd_journal_restart_data", unsafe extern "C" fn(J)),
            get_cursor: sym!(
                "sd_journal_get_cursor",
                unsafe extern "C" fn(J, *mut *mut c_char) -> c_int
            ),
            test_cursor: sym!(
                "sd_journal_test_cursor",
                unsafe extern "C" fn(J, *const c_char) -> c_int
            ),
        })
    }
}

fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(Api::load).as_ref().map_err(Clone::clone)
}

/// Whether libsystemd can be loaded (the error says how to install it).
pub fn available() -> Result<(), String> {
    api().map(|_| ())
}

/// A negative errno from sd-journal, as text.
pub fn errno_text(r: c_int) -> String {
    std::io::Error::from_raw_os_error(r.saturating_neg()).to_string()
}

fn check(r: c_int, what: &str) -> Result<c_int, String> {
    if r < 0 {
        Err(format!("{what}: {}", errno_text(r)))
    } else {
        Ok(r)
    }
}

/// One open journal (an `sd_journal *`). Not `Send`: it stays on the thread that opened it.
pub struct Journal {
    api: &'static Api,
    j: J,
}

impl Drop for Journal {
    fn drop(&mut self) {
        // SAFETY: `j` came from sd_journal_open* and is closed once.
        unsafe { (self.api.close)(self.j) }
    }
}

impl Journal {
    /// Open the journal files of `dir`, or the local journal (`SD_JOURNAL_LOCAL_ONLY`) when
    /// `None`, as Fluent Bit does.
    pub fn open(dir: Option<&Path>) -> Result<Journal, String> {
        let api = api()?;
        let mut j: J = std::ptr::null_mut();
        let r = match dir {
            Some(d) => {
                use std::os::unix::ffi::OsStrExt;
                let c = CString::new(d.as_os_str().as_bytes())
                    .map_err(|_| format!("path {} holds a NUL byte", d.display()))?;
                // SAFETY: valid out pointer and C string.
                unsafe { (api.open_directory)(&mut j, c.as_ptr(), 0) }
            }
            // SAFETY: valid out pointer.
            None => unsafe { (api.open)(&mut j, SD_JOURNAL_LOCAL_ONLY) },
        };
        check(r, "could not open the journal")?;
        if j.is_null() {
            return Err("could not open the journal".into());
        }
        let journal = Journal { api, j };
        // Sets up the inotify watches now, so files added from here on are seen.
        // SAFETY: valid journal.
        let fd = unsafe { (api.get_fd)(journal.j) };
        if fd < 0 {
            tracing::debug!("sd_journal_get_fd: {}", errno_text(fd));
        }
        Ok(journal)
    }

    /// `sd_journal_add_match` with `FIELD=value` bytes.
    pub fn add_match(&mut self, m: &[u8]) -> Result<(), String> {
        // SAFETY: pointer and length of a live slice.
        let r = unsafe { (self.api.add_match)(self.j, m.as_ptr().cast(), m.len()) };
        check(r, "sd_journal_add_match").map(|_| ())
    }

    /// `sd_journal_add_conjunction` (AND) or `sd_journal_add_disjunction` (OR).
    pub fn add_junction(&mut self, and: bool) -> Result<(), String> {
        // SAFETY: valid journal.
        let r = unsafe {
            if and {
                (self.api.add_conjunction)(self.j)
            } else {
                (self.api.add_disjunction)(self.j)
            }
        };
        check(r, "sd_journal_add_conjunction/disjunction").map(|_| ())
    }

    /// `sd_journal_seek_head`.
    pub fn seek_head(&mut self) -> Result<(), String> {
        // SAFETY: valid journal.
        check(
            unsafe { (self.api.seek_head)(self.j) },
            "sd_journal_seek_head",
        )
        .map(|_| ())
    }

    /// `sd_journal_seek_tail`.
    pub fn seek_tail(&mut self) -> Result<(), String> {
        // SAFETY: valid journal.
        check(
            unsafe { (self.api.seek_tail)(self.j) },
            "sd_journal_seek_tail",
        )
        .map(|_| ())
    }

    /// `sd_journal_seek_realtime_usec`.
    pub fn seek_realtime_usec(&mut self, usec: u64) -> Result<(), String> {
        // SAFETY: valid journal.
        let r = unsafe { (self.api.seek_realtime_usec)(self.j, usec) };
        check(r, "sd_journal_seek_realtime_usec").map(|_| ())
    }

    /// `sd_journal_seek_cursor`.
    pub fn seek_cursor(&mut self, cursor: &str) -> Result<(), String> {
        let c = CString::new(cursor).map_err(|_| "cursor holds a NUL byte".to_string())?;
        // SAFETY: valid journal and C string.
        let r = unsafe { (self.api.seek_cursor)(self.j, c.as_ptr()) };
        check(r, "sd_journal_seek_cursor").map(|_| ())
    }

    /// `sd_journal_test_cursor`: whether the current entry is the one of `cursor`.
    pub fn test_cursor(&mut self, cursor: &str) -> bool {
        let Ok(c) = CString::new(cursor) else {
            return false;
        };
        // SAFETY: valid journal and C string.
        unsafe { (self.api.test_cursor)(self.j, c.as_ptr()) > 0 }
    }

    /// `sd_journal_next`: 1 on a new entry, 0 at the end.
    pub fn next_entry(&mut self) -> Result<bool, String> {
        // SAFETY: valid journal.
        check(unsafe { (self.api.next)(self.j) }, "sd_journal_next").map(|r| r > 0)
    }

    /// `sd_journal_previous`.
    pub fn previous_entry(&mut self) -> Result<bool, String> {
        // SAFETY: valid journal.
        check(
            unsafe { (self.api.previous)(self.j) },
            "sd_journal_previous",
        )
        .map(|r| r > 0)
    }

    /// `sd_journal_wait` up to `usec` microseconds.
    pub fn wait(&mut self, usec: u64) -> Result<(), String> {
        // SAFETY: valid journal.
        check(unsafe { (self.api.wait)(self.j, usec) }, "sd_journal_wait").map(|_| ())
    }

    /// The current entry's `__REALTIME_TIMESTAMP` in microseconds.
    pub fn realtime_usec(&mut self) -> Result<u64, String> {
        let mut usec = 0u64;
        // SAFETY: valid journal and out pointer.
        let r = unsafe { (self.api.get_realtime_usec)(self.j, &mut usec) };
        check(r, "sd_journal_get_realtime_usec").map(|_| usec)
    }

    /// `sd_journal_restart_data`.
    pub fn restart_data(&mut self) {
        // SAFETY: valid journal.
        unsafe { (self.api.restart_data)(self.j) }
    }

    /// The current entry's `FIELD=value` bytes of `field` (`None` when absent or unreadable).
    pub fn data(&mut self, field: &CStr) -> Option<&[u8]> {
        let mut p: *const c_void = std::ptr::null();
        let mut len = 0usize;
        // SAFETY: valid journal, C string and out pointers.
        let r = unsafe { (self.api.get_data)(self.j, field.as_ptr(), &mut p, &mut len) };
        if r < 0 || p.is_null() {
            return None;
        }
        // SAFETY: libsystemd hands out `len` readable bytes, valid until the next call on
        // the journal; the borrow of `self` ends before that.
        Some(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
    }

    /// The next field of the current entry (`FIELD=value` bytes); `Ok(None)` after the last.
    pub fn enumerate_data(&mut self) -> Result<Option<&[u8]>, String> {
        let mut p: *const c_void = std::ptr::null();
        let mut len = 0usize;
        // SAFETY: valid journal and out pointers.
        let r = unsafe { (self.api.enumerate_data)(self.j, &mut p, &mut len) };
        check(r, "sd_journal_enumerate_data")?;
        if r == 0 || p.is_null() {
            return Ok(None);
        }
        // SAFETY: as in `data`.
        Ok(Some(unsafe {
            std::slice::from_raw_parts(p.cast::<u8>(), len)
        }))
    }

    /// The current entry's cursor.
    pub fn cursor(&mut self) -> Result<String, String> {
        let mut p: *mut c_char = std::ptr::null_mut();
        // SAFETY: valid journal and out pointer.
        let r = unsafe { (self.api.get_cursor)(self.j, &mut p) };
        check(r, "sd_journal_get_cursor")?;
        if p.is_null() {
            return Err("sd_journal_get_cursor returned nothing".into());
        }
        // SAFETY: a malloc'ed NUL-terminated string that the caller frees.
        let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        // SAFETY: allocated by libsystemd with malloc.
        unsafe { libc::free(p.cast()) };
        Ok(s)
    }
}
