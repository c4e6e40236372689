//! `lua`: runs a Lua function on every record (Fluent Bit's `filter_lua`, `plugins/filter_lua/`),
//! on LuaJIT as Fluent Bit does, with the same keys and calling conventions.
//!
//! * The script comes from `code` (inline; it wins when both are set, chunk name
//!   `fluentbit.lua`) or from the file `script`, tried as given and then, when it does not exist
//!   and is relative, against the directory of the main configuration file. The factory loads and
//!   runs it and checks that `call` names a global function, so a missing file, a syntax error,
//!   an error in the script's top level or a missing function is a configuration error at the
//!   key's file:line (`--dry-run` included). The script's top level runs at that point, as in
//!   Fluent Bit's init.
//! * `function cb(tag, timestamp, record)` returns `code, timestamp, record`: -1 drops the
//!   record, 0 keeps it as it came, 1 takes the returned record and timestamp, 2 the returned
//!   record with the original timestamp; any other code keeps the record (logged as an error).
//!   The returned record may be an array of records: each becomes a record with the same
//!   timestamp and metadata (an empty array drops the record). A returned value that is neither
//!   a map nor an array of maps is an error and the record goes on unchanged.
//! * With five parameters, `function cb(tag, timestamp, group, metadata, record)` returns
//!   `code, timestamp, metadata, record` (Fluent Bit ≥ 4.0.4, detected with
//!   `debug.getinfo(f, "u").nparams` when the script is loaded): `metadata` is the record's
//!   metadata map, `group` an empty table (this pipeline has no OpenTelemetry groups). A returned
//!   metadata table replaces the record's metadata; with an array of records, an array of
//!   metadata of the same length pairs them one by one (an element that is not a map gives
//!   `{}`), a metadata map goes with every record, and anything else leaves each record the
//!   metadata it came with (Fluent Bit would write that value as the metadata).
//! * `timestamp` is a double (seconds), or `{sec=, nsec=}` with `time_as_table`; a double comes
//!   back truncated to nanoseconds as Fluent Bit's `flb_time_from_double` does.
//! * Conversions between msgpack and Lua are in [`convert`], with Fluent Bit's rules
//!   (`type_int_key`, `type_array_key`, `enable_flb_null`) and deterministic key order.
//! * `FLB_ENV` holds `HOSTNAME`.
//!
//! One Lua state per filter instance, behind a mutex: inputs calling the filter concurrently
//! take turns (Fluent Bit runs every filter in its one engine thread).
//!
//! Errors. A Lua runtime error, a value the filter cannot use or an unknown return code is
//! logged (at most one line per [`LOG_PERIOD`], with the number suppressed in between) and
//! counted in `fluentbit_filter_lua_errors_total{name}` (a kinesis-bit counter; Fluent Bit has
//! none), and the record goes on unchanged.
//!
//! Differences from Fluent Bit, deliberate:
//! * Fluent Bit returns the whole chunk untouched when one record fails (records before it lose
//!   their changes too); here only the failing record passes unchanged.
//! * `protected_mode off` makes Fluent Bit call the function unprotected, so a Lua error aborts
//!   the process; here the call is always protected (the key is accepted, the error is handled
//!   as in protected mode).
//! * `type_int_key`/`type_array_key` match keys exactly; Fluent Bit compares only the record
//!   key's length (`strncmp`), so a key that is a prefix of a listed name matches too.
//! * `FLB_ENV` lacks the configuration's own variables (`@SET`, YAML `env`), which do not
//!   reach plugin factories here.
//! * A double timestamp beyond 2106 saturates, a negative one becomes 0 (Fluent Bit's `int`
//!   cast breaks after 2038).

mod convert;

use std::ffi::{c_int, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kb_config::{ConfigError, KeySpec, KeyType, Location, PluginSpec, Props, SectionKind};
use kb_core::event::EventTime;
use kb_core::filter::{Filter, FilterCx, Verdict};
use kb_core::msgpack::{Cursor, Head};
use kb_core::record::{write_event_start, Record};
use kb_core::registry::{FilterPlugin, ServiceContext};
use mlua::ffi;
use mlua::{Function, Lua, LuaOptions, RegistryKey, StdLib, Table, Value};

use convert::{Conv, ConvBufs, Rule, RuleKind, Slots};

const KEYS: &[KeySpec] = &[
    KeySpec::new("script", KeyType::Str, None, "The path of lua script."),
    KeySpec::new(
        "code",
        KeyType::Str,
        None,
        "String that contains the Lua script source code",
    ),
    KeySpec::new(
        "call",
        KeyType::Str,
        None,
        "Lua function name that will be triggered to do filtering.",
    ),
    KeySpec::new(
        "type_int_key",
        KeyType::Str,
        None,
        "If these keys are matched, the fields are converted to integer. If more than one key, \
         delimit by space.",
    ),
    KeySpec::new(
        "type_array_key",
        KeyType::Str,
        None,
        "If these keys are matched, the fields are converted to array. If more than one key, \
         delimit by space.",
    ),
    KeySpec::new(
        "protected_mode",
        KeyType::Bool,
        Some("true"),
        "If enabled, Lua script will be executed in protected mode. It prevents to crash when \
         invalid Lua script is executed.",
    ),
    KeySpec::new(
        "time_as_table",
        KeyType::Bool,
        Some("false"),
        "If enabled, the timestamp is passed as a Lua table with keys \"sec\" for seconds since \
         epoch and \"nsec\" for nanoseconds.",
    ),
    KeySpec::new(
        "enable_flb_null",
        KeyType::Bool,
        Some("false"),
        "If enabled, null will be converted to flb_null in Lua. It is useful to prevent removing \
         key/value since nil is a special value to remove key value from map in Lua.",
    ),
];

/// The `lua` filter plugin.
pub const PLUGIN: FilterPlugin = FilterPlugin {
    spec: PluginSpec {
        kind: SectionKind::Filter,
        name: "lua",
        description: "Lua Scripting Filter",
        keys: KEYS,
    },
    build,
};

/// The counter of errors, per instance (`name`).
pub const ERRORS_COUNTER: &str = "fluentbit_filter_lua_errors_total";

/// At most one error line per period per instance.
pub const LOG_PERIOD: Duration = Duration::from_secs(10);

/// Chunk name of inline `code` (Fluent Bit's).
const CODE_CHUNK_NAME: &str = "fluentbit.lua";

fn build(props: &Props, svc: &ServiceContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    Ok(Box::new(LuaFilter::from_props(props, svc)?))
}

/// A configured `lua` filter.
pub struct LuaFilter {
    /// `filter:lua:<instance>`, the log component.
    component: String,
    errors: Arc<AtomicU64>,
    state: Mutex<State>,
}

/// Where the script came from.
#[derive(Debug, Clone)]
enum Source {
    Code,
    File(PathBuf),
}

/// Lets an error line through at most once per period; counts the others.
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.saturating_duration_since(t) < LOG_PERIOD => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// The Lua state and everything one call needs.
struct State {
    lua: Lua,
    call: CString,
    call_name: String,
    source: Source,
    /// 3 (`tag, timestamp, record`) or 5 (`tag, timestamp, group, metadata, record`).
    nargs: c_int,
    time_as_table: bool,
    rules: Vec<Rule>,
    map_mt: RegistryKey,
    array_mt: RegistryKey,
    bufs: ConvBufs,
    /// The returned record(s), as msgpack.
    out: Vec<u8>,
    /// The returned metadata (5-argument callbacks), as msgpack.
    meta: Vec<u8>,
    /// Errors of the last call, logged once the call is over.
    messages: Vec<String>,
    throttle: Throttle,
}

/// What the callback decided.
enum Outcome {
    /// Code 0 (or an unknown code, or an error): the record goes on as it came.
    Keep,
    /// Code -1.
    Drop,
    /// Codes 1 and 2: the records in `State::out`, with this time; the metadata in
    /// `State::meta` when `meta` is set.
    Modified { time: EventTime, meta: bool },
}

impl LuaFilter {
    /// Validate a `lua` section and load its script.
    pub fn from_props(props: &Props, svc: &ServiceContext) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut flag = |key: &str, default: bool| match props.bool(key) {
            Ok(v) => v.unwrap_or(default),
            Err(e) => {
                errors.push(e);
                default
            }
        };
        // protected_mode is accepted; calls are always protected (see the module docs).
        let _protected = flag("protected_mode", true);
        let time_as_table = flag("time_as_table", false);
        let enable_flb_null = flag("enable_flb_null", false);

        let mut rules = Vec::new();
        for (key, kind) in [
            ("type_int_key", RuleKind::Int),
            ("type_array_key", RuleKind::Array),
        ] {
            if let Some(v) = props.str(key) {
                rules.extend(v.split(' ').filter(|s| !s.is_empty()).map(|s| Rule {
                    key: s.as_bytes().to_vec(),
                    kind,
                }));
            }
        }

        let call = props.str("call").map(str::to_string);
        if call.is_none() {
            errors.push(props.error("call", "function name defined by 'call' is not set"));
        }
        let (source, text, key) = match (props.str("code"), props.str("script")) {
            (Some(code), _) => (Source::Code, Some(code.as_bytes().to_vec()), "code"),
            (None, Some(script)) => match read_script(props, script) {
                Ok((path, bytes)) => (Source::File(path), Some(bytes), "script"),
                Err(e) => {
                    errors.push(e);
                    (Source::Code, None, "script")
                }
            },
            (None, None) => {
                errors.push(props.error("script", "no script path defined"));
                (Source::Code, None, "script")
            }
        };
        let (Some(call), Some(text)) = (call, text) else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let state = State::new(&source, &text, &call, time_as_table, enable_flb_null, rules)
            .map_err(|(k, msg)| {
                vec![props.error(
                    match k {
                        ErrKey::Source => key,
                        ErrKey::Call => "call",
                    },
                    msg,
                )]
            })?;
        let errors = svc
            .metrics
            .counter(ERRORS_COUNTER, &[("name", props.instance.as_str())]);
        Ok(LuaFilter {
            component: format!("filter:lua:{}", props.instance),
            errors,
            state: Mutex::new(state),
        })
    }

    fn report(&self, throttle: &mut Throttle, msg: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = throttle.allow() {
            let span = tracing::error_span!("plugin", component = %self.component);
            let _g = span.enter();
            if n == 0 {
                tracing::error!("{msg}");
            } else {
                tracing::error!("{msg} ({n} similar messages suppressed)");
            }
        }
    }
}

/// Which key a load error belongs to.
enum ErrKey {
    Source,
    Call,
}

/// Resolve and read `script` as Fluent Bit does: as given, else (when it does not exist and is
/// relative) against the main configuration file's directory.
fn read_script(props: &Props, script: &str) -> Result<(PathBuf, Vec<u8>), ConfigError> {
    let given = Path::new(script);
    let mut path = given.to_path_buf();
    if let Err(e) = std::fs::metadata(given) {
        if e.kind() == std::io::ErrorKind::NotFound && given.is_relative() {
            if let Some(dir) = props.get("script").and_then(|p| conf_dir(&p.location)) {
                path = dir.join(given);
            }
        }
    }
    match std::fs::read(&path) {
        Ok(bytes) => Ok((path, bytes)),
        Err(e) => Err(props.error(
            "script",
            format!("cannot access script '{}': {e}", path.display()),
        )),
    }
}

/// The directory of the main configuration file behind `loc` (Fluent Bit's `conf_path`).
fn conf_dir(loc: &Location) -> Option<PathBuf> {
    let mut loc = loc;
    loop {
        match loc {
            Location::Classic {
                included_from: Some(parent),
                ..
            }
            | Location::Yaml {
                included_from: Some(parent),
                ..
            } => loc = parent,
            Location::Classic { file, .. } | Location::Yaml { file, .. } => {
                return file.parent().map(Path::to_path_buf)
            }
            _ => return None,
        }
    }
}

/// A Lua error message without mlua's traceback.
fn lua_message(e: &mlua::Error) -> String {
    let s = match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => return lua_message(cause),
        other => other.to_string(),
    };
    match s.find("\nstack traceback:") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

impl State {
    fn new(
        source: &Source,
        text: &[u8],
        call: &str,
        time_as_table: bool,
        enable_flb_null: bool,
        rules: Vec<Rule>,
    ) -> Result<State, (ErrKey, String)> {
        // SAFETY: every standard library, `ffi` and `debug` included, as Fluent Bit's
        // luaL_openlibs gives scripts.
        let lua = unsafe { Lua::unsafe_new_with(StdLib::ALL, LuaOptions::new()) };
        let internal = |e: mlua::Error| (ErrKey::Source, format!("cannot set up Lua: {e}"));
        let globals = lua.globals();
        let env = lua.create_table().map_err(internal)?;
        if let Some(h) = hostname() {
            env.raw_set("HOSTNAME", h).map_err(internal)?;
        }
        globals.raw_set("FLB_ENV", env).map_err(internal)?;
        if enable_flb_null {
            globals
                .raw_set(
                    "flb_null",
                    Value::LightUserData(mlua::LightUserData(std::ptr::null_mut())),
                )
                .map_err(internal)?;
        }
        let metatable = |t: i64| -> mlua::Result<RegistryKey> {
            let mt = lua.create_table()?;
            mt.raw_set("type", t)?;
            lua.create_registry_value(mt)
        };
        let map_mt = metatable(convert::TYPE_MAP).map_err(internal)?;
        let array_mt = metatable(convert::TYPE_ARRAY).map_err(internal)?;

        let (name, what) = match source {
            Source::Code => (CODE_CHUNK_NAME.to_string(), "error loading buffer"),
            Source::File(p) => (format!("@{}", p.display()), "error loading script"),
        };
        let chunk = lua
            .load(text)
            .set_name(name)
            .into_function()
            .map_err(|e| (ErrKey::Source, format!("{what}: {}", lua_message(&e))))?;
        chunk.call::<()>(()).map_err(|e| {
            (
                ErrKey::Source,
                format!("invalid lua content: {}", lua_message(&e)),
            )
        })?;
        let f = match globals.get::<Value>(call) {
            Ok(Value::Function(f)) => f,
            _ => return Err((ErrKey::Call, format!("function {call} is not found"))),
        };
        let nargs = callback_args(&lua, &f);
        let call_c = CString::new(call)
            .map_err(|_| (ErrKey::Call, format!("function {call} is not found")))?;
        drop(globals);
        Ok(State {
            lua,
            call: call_c,
            call_name: call.to_string(),
            source: source.clone(),
            nargs,
            time_as_table,
            rules,
            map_mt,
            array_mt,
            bufs: ConvBufs::default(),
            out: Vec::new(),
            meta: Vec::new(),
            messages: Vec::new(),
            throttle: Throttle {
                last: None,
                suppressed: 0,
            },
        })
    }

    /// Call the function on `record`; its results land in `out`/`meta`, its errors in
    /// `messages`.
    fn run(&mut self, record: &Record<'_>, tag: &str) -> Outcome {
        let State {
            lua,
            call,
            call_name,
            source,
            nargs,
            time_as_table,
            rules,
            map_mt,
            array_mt,
            bufs,
            out,
            meta,
            messages,
            ..
        } = self;
        let (nargs, time_as_table) = (*nargs, *time_as_table);
        // 3 arguments: code, timestamp, record; 5: code, timestamp, metadata, record.
        let nret = if nargs == 5 { 4 } else { 3 };
        let mut outcome = Outcome::Keep;
        let t_orig = record.time;
        out.clear();
        meta.clear();
        bufs.clear();
        let (map_ref, array_ref) = (map_mt.id(), array_mt.id());
        // SAFETY: the closure runs protected inside mlua's lock with `l` being the state; only
        // raw API calls that cannot raise (beyond memory errors and the `sec`/`nsec`
        // lookups, which the protection catches) run outside the inner lua_pcall.
        let r = unsafe {
            lua.exec_raw::<()>((), |l| {
                if ffi::lua_checkstack(l, 16) == 0 {
                    messages.push("Lua stack exhausted".to_string());
                    return;
                }
                let base = ffi::lua_gettop(l);
                ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, map_ref);
                ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, array_ref);
                ffi::lua_pushlstring(l, b"flb_null".as_ptr().cast(), 8);
                ffi::lua_rawget_(l, ffi::LUA_GLOBALSINDEX);
                ffi::lua_pushnil(l);
                let slots = Slots {
                    map_mt: base + 1,
                    array_mt: base + 2,
                    null: base + 3,
                    keep: base + 4,
                };
                let mut conv = Conv::new(l, slots, rules, bufs, record);

                // Arguments (the metadata and record tables also stay below the call, so they
                // outlive it).
                let meta_slot = base + 5;
                if nargs == 5 {
                    let m = record.metadata();
                    if let Err(e) = conv.push_value(&mut Cursor::new(m), 0) {
                        messages.push(format!("cannot pass the metadata to Lua: {e}"));
                        return;
                    }
                } else {
                    ffi::lua_pushnil(l);
                }
                let record_slot = base + 6;
                if let Err(e) = conv.push_record() {
                    messages.push(format!("cannot pass the record to Lua: {e}"));
                    return;
                }
                ffi::lua_getfield_(l, ffi::LUA_GLOBALSINDEX, call.as_ptr());
                ffi::lua_pushlstring(l, tag.as_ptr().cast(), tag.len());
                if time_as_table {
                    ffi::lua_createtable(l, 0, 2);
                    ffi::lua_pushlstring(l, b"sec".as_ptr().cast(), 3);
                    ffi::lua_pushinteger(l, t_orig.secs.into());
                    ffi::lua_rawset(l, -3);
                    ffi::lua_pushlstring(l, b"nsec".as_ptr().cast(), 4);
                    ffi::lua_pushinteger(l, t_orig.nanos.into());
                    ffi::lua_rawset(l, -3);
                } else {
                    ffi::lua_pushnumber(l, t_orig.as_f64());
                }
                if nargs == 5 {
                    ffi::lua_createtable(l, 0, 0);
                    ffi::lua_pushvalue(l, meta_slot);
                }
                ffi::lua_pushvalue(l, record_slot);
                let rc = ffi::lua_pcall(l, nargs, nret, 0);
                if rc != 0 {
                    let msg = match ffi::lua_type(l, -1) {
                        ffi::LUA_TSTRING | ffi::LUA_TNUMBER => {
                            let mut len = 0;
                            let p = ffi::lua_tolstring(l, -1, &mut len);
                            String::from_utf8_lossy(std::slice::from_raw_parts(p.cast(), len))
                                .into_owned()
                        }
                        t => format!(
                            "(error object is a {} value)",
                            std::ffi::CStr::from_ptr(ffi::lua_typename(l, t)).to_string_lossy()
                        ),
                    };
                    messages.push(format!("error code {rc}: {msg}"));
                    return;
                }
                let first = ffi::lua_gettop(l) - nret + 1;
                let (code_i, ts_i, rec_i) = (first, first + 1, first + nret - 1);
                let code = ffi::lua_tointeger_(l, code_i) as i32;

                // The timestamp, read for every code as Fluent Bit does.
                let mut t = t_orig;
                if time_as_table {
                    if ffi::lua_type(l, ts_i) == ffi::LUA_TTABLE {
                        ffi::lua_getfield_(l, ts_i, c"sec".as_ptr());
                        let secs = ffi::lua_tointeger_(l, -1);
                        ffi::lua_getfield_(l, ts_i, c"nsec".as_ptr());
                        let nanos = ffi::lua_tointeger_(l, -1);
                        ffi::lua_pop(l, 2);
                        // Fluent Bit writes both as uint32.
                        t = EventTime::new(secs as u32, nanos as u32);
                    } else {
                        messages.push("invalid lua timestamp type returned".to_string());
                    }
                } else if code == 1 {
                    t = time_from_double(ffi::lua_tonumber(l, ts_i));
                }
                match code {
                    -1 => outcome = Outcome::Drop,
                    1 | 2 => {
                        if code == 2 {
                            t = t_orig;
                        }
                        let mut has_meta = false;
                        if nargs == 5 && ffi::lua_type(l, first + 2) == ffi::LUA_TTABLE {
                            if let Err(e) = conv.pack(first + 2, meta, 0) {
                                messages.push(format!("cannot convert the returned metadata: {e}"));
                                return;
                            }
                            has_meta = true;
                        }
                        if let Err(e) = conv.pack(rec_i, out, 0) {
                            messages.push(format!("cannot convert the returned record: {e}"));
                            return;
                        }
                        if !valid_records(out) {
                            let script = match source {
                                Source::Code => "(inline code)".to_string(),
                                Source::File(p) => p.display().to_string(),
                            };
                            messages
                                .push(format!("invalid table returned at {call_name}(), {script}"));
                            return;
                        }
                        outcome = Outcome::Modified {
                            time: t,
                            meta: has_meta,
                        };
                    }
                    0 => {}
                    other => messages.push(format!(
                        "unexpected Lua script return code {other}, original record will be kept."
                    )),
                }
            })
        };
        if let Err(e) = r {
            messages.push(format!("Lua error: {}", lua_message(&e)));
            return Outcome::Keep;
        }
        outcome
    }
}

/// Whether `out` holds a map, or an array of maps.
fn valid_records(out: &[u8]) -> bool {
    let mut c = Cursor::new(out);
    match c.head() {
        Ok(Head::Map(_)) => true,
        Ok(Head::Array(n)) => (0..n).all(|_| {
            let is_map = matches!(Cursor::new(c.rest()).head(), Ok(Head::Map(_)));
            is_map && c.skip_value().is_ok()
        }),
        _ => false,
    }
}

/// `flb_time_from_double`: whole seconds and the fraction truncated to nanoseconds.
fn time_from_double(d: f64) -> EventTime {
    if d.is_nan() || d < 0.0 {
        return EventTime::default();
    }
    if d >= 4_294_967_296.0 {
        return EventTime::new(u32::MAX, 0);
    }
    let secs = d.trunc();
    let nanos = ((d - secs) * 1e9) as u32;
    EventTime::new(secs as u32, nanos.min(999_999_999))
}

/// Fluent Bit's `get_callback_args`: 5 when `debug.getinfo(f, "u").nparams` ≥ 5, else 3.
fn callback_args(lua: &Lua, f: &Function) -> c_int {
    let n = (|| -> mlua::Result<i64> {
        let debug: Table = lua.globals().get("debug")?;
        let getinfo: Function = debug.get("getinfo")?;
        let info: Table = getinfo.call((f.clone(), "u"))?;
        info.get::<Option<i64>>("nparams").map(|n| n.unwrap_or(0))
    })()
    .unwrap_or(0);
    if n >= 5 {
        5
    } else {
        3
    }
}

/// The elements of the array at the start of `data` (each a whole value).
fn array_items(data: &[u8]) -> Vec<&[u8]> {
    let mut c = Cursor::new(data);
    let Ok(Head::Array(n)) = c.head() else {
        return Vec::new();
    };
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        match c.skip_value() {
            Ok(v) => items.push(v),
            Err(_) => break,
        }
    }
    items
}

fn is_map(v: &[u8]) -> bool {
    matches!(Cursor::new(v).head(), Ok(Head::Map(_)))
}

impl Filter for LuaFilter {
    fn filter(&self, record: &mut Record<'_>, cx: &mut FilterCx<'_>) -> Verdict {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *guard;
        let outcome = st.run(record, cx.tag);
        let State {
            messages, throttle, ..
        } = st;
        for m in messages.drain(..) {
            self.report(throttle, &m);
        }
        let (time, has_meta) = match outcome {
            Outcome::Keep => return Verdict::Keep,
            Outcome::Drop => return Verdict::Drop,
            Outcome::Modified { time, meta } => (time, meta),
        };
        let single = is_map(&st.out);
        // The metadata of each output record: the returned one when it is a map (or, with an
        // array of records, an array of the same length), else the record's own.
        let returned_meta: Option<&[u8]> = has_meta.then_some(&st.meta[..]);
        if single {
            let meta = returned_meta.filter(|m| is_map(m));
            if record.replace_with_map(&st.out).is_err() {
                return Verdict::Keep;
            }
            record.time = time;
            if let Some(m) = meta {
                record.set_metadata(m);
            }
            record.mark_changed();
            return Verdict::Keep;
        }
        let items = array_items(&st.out);
        let metas: Option<Vec<&[u8]>> = returned_meta
            .filter(|m| !is_map(m))
            .map(array_items)
            .filter(|m| m.len() == items.len());
        let shared: &[u8] = match returned_meta {
            Some(m) if is_map(m) => m,
            _ => record.metadata(),
        };
        for (i, item) in items.iter().enumerate() {
            let meta: &[u8] = match &metas {
                Some(ms) if is_map(ms[i]) => ms[i],
                Some(_) => &[0x80],
                None => shared,
            };
            cx.emit(|buf| {
                write_event_start(buf, time);
                buf.extend_from_slice(meta);
                buf.extend_from_slice(item);
            });
        }
        Verdict::Replace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_truncate_to_nanoseconds() {
        assert_eq!(time_from_double(1.5), EventTime::new(1, 500_000_000));
        // 1700000000.123456789 is 1700000000.1234567165… as a double.
        assert_eq!(
            time_from_double(EventTime::new(1_700_000_000, 123_456_789).as_f64()),
            EventTime::new(1_700_000_000, 123_456_716)
        );
        assert_eq!(time_from_double(-1.0), EventTime::default());
        assert_eq!(time_from_double(f64::NAN), EventTime::default());
        assert_eq!(time_from_double(1e12), EventTime::new(u32::MAX, 0));
    }

    #[test]
    fn returned_records_must_be_maps() {
        assert!(valid_records(&[0x80]));
        assert!(valid_records(&[0x92, 0x80, 0x81, 0xa1, b'a', 0x01]));
        assert!(valid_records(&[0x90]));
        assert!(!valid_records(&[0x91, 0x01]));
        assert!(!valid_records(&[0xc0]));
        assert!(!valid_records(&[0xa1, b'x']));
    }
}
