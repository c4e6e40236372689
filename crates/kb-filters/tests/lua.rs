//! The `lua` filter against Fluent Bit's documented behaviour (`pipeline/filters/lua.md` and
//! `plugins/filter_lua/`): the documentation's examples with their exact output, return codes,
//! record splitting, both timestamp forms, type conversions, `type_int_key`/`type_array_key`,
//! `flb_null`, metadata callbacks, errors in protected mode, and configuration errors with
//! their location.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kb_config::schema::{validate_section, FILTER_GENERIC_KEYS};
use kb_config::{Location, Property, Section, SectionKind};
use kb_core::event::{write_json_map, EventReader, EventTime};
use kb_core::filter::{FilterInstance, Standalone};
use kb_core::json::{write_json, JsonOptions, JsonStats};
use kb_core::metrics::Metrics;
use kb_core::record::write_event_start;
use kb_core::registry::ServiceContext;
use kb_core::tag::TagMatcher;
use kb_filters::lua::{ERRORS_COUNTER, PLUGIN};

/// The time of the input records: its nanoseconds do not survive a trip through a double.
const T0: EventTime = EventTime {
    secs: 1_700_000_000,
    nanos: 123_456_789,
};

/// A configuration file that does not exist (locations only).
const CONF: &str = "/nonexistent/kb-lua/fluent-bit.conf";

struct Lua {
    stage: Standalone,
    metrics: Arc<Metrics>,
}

fn section(conf: &Path, kv: &[(&str, &str)]) -> Section {
    let mut s = Section::new(SectionKind::Filter, Location::classic(conf, 1));
    for (i, (k, v)) in kv.iter().enumerate() {
        s.props.push(Property {
            key: k.to_string(),
            value: v.to_string(),
            location: Location::classic(conf, i + 2),
        });
    }
    s
}

/// Build the filter from `kv` as if they were lines 2.. of the classic file `conf`.
fn try_build_at(conf: &Path, kv: &[(&str, &str)]) -> Result<Lua, Vec<String>> {
    let s = section(conf, kv);
    let strs = |e: Vec<kb_config::ConfigError>| -> Vec<String> {
        e.iter().map(|e| e.to_string()).collect()
    };
    let props = validate_section(&PLUGIN.spec, FILTER_GENERIC_KEYS, &s, "lua.0").map_err(strs)?;
    let svc = ServiceContext::default();
    let metrics = svc.metrics.clone();
    let plugin = (PLUGIN.build)(&props, &svc).map_err(strs)?;
    let stage = Standalone::new(vec![FilterInstance {
        name: "lua.0".into(),
        matcher: TagMatcher::new(Some("*"), None).unwrap(),
        plugin,
    }]);
    Ok(Lua { stage, metrics })
}

fn build(kv: &[(&str, &str)]) -> Lua {
    match try_build_at(Path::new(CONF), kv) {
        Ok(l) => l,
        Err(e) => panic!("the filter does not build: {e:?}"),
    }
}

fn build_errors_at(conf: &Path, kv: &[(&str, &str)]) -> Vec<String> {
    match try_build_at(conf, kv) {
        Ok(_) => panic!("expected configuration errors for {kv:?}"),
        Err(e) => e,
    }
}

/// An event from JSON texts (key order kept).
fn event(time: EventTime, meta: &str, record: &str) -> Vec<u8> {
    let map = |s: &str| {
        let v: serde_json::Value = serde_json::from_str(s).expect("JSON in test");
        let mut b = Vec::new();
        write_json_map(&mut b, v.as_object().expect("an object"));
        b
    };
    let mut out = Vec::new();
    write_event_start(&mut out, time);
    out.extend_from_slice(&map(meta));
    out.extend_from_slice(&map(record));
    out
}

fn json(msgpack: &[u8]) -> String {
    let mut out = Vec::new();
    write_json(
        msgpack,
        &mut out,
        &JsonOptions::default(),
        &mut JsonStats::default(),
    )
    .expect("valid msgpack");
    String::from_utf8(out).unwrap()
}

/// `secs.nanos metadata record` per event.
fn show(events: &[u8]) -> Vec<String> {
    EventReader::new(events)
        .map(|e| {
            let e = e.expect("a well-formed event");
            format!(
                "{}.{:09} {} {}",
                e.time.secs,
                e.time.nanos,
                json(e.metadata),
                json(e.record)
            )
        })
        .collect()
}

impl Lua {
    fn run_events(&mut self, tag: &str, events: &[Vec<u8>]) -> Vec<u8> {
        let all: Vec<u8> = events.concat();
        let (out, n) = self.stage.run(tag, "test.0", &all, events.len());
        assert_eq!(n, EventReader::new(&out).count(), "event count");
        out
    }

    /// Filter records of time T0 and empty metadata; the output as `secs.nanos meta record`.
    fn run(&mut self, records: &[&str]) -> Vec<String> {
        let events: Vec<Vec<u8>> = records.iter().map(|r| event(T0, "{}", r)).collect();
        show(&self.run_events("test", &events))
    }

    /// Only the output records' JSON.
    fn records(&mut self, records: &[&str]) -> Vec<String> {
        self.run(records)
            .into_iter()
            .map(|l| l.splitn(3, ' ').nth(2).unwrap().to_string())
            .collect()
    }

    fn errors(&self) -> u64 {
        self.metrics
            .counter_value(ERRORS_COUNTER, &[("name", "lua.0")])
    }
}

fn code(call: &str, code: &str) -> Lua {
    build(&[("call", call), ("code", code)])
}

/// What the filter logs while `f` runs.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

fn capture<R>(f: impl FnOnce() -> R) -> (R, String) {
    let logs = Logs::default();
    let sub = tracing_subscriber::fmt().with_writer(logs.clone()).finish();
    let r = tracing::subscriber::with_default(sub, f);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    (r, text)
}

// ---------------------------------------------------------------------------------------------
// The documentation's examples

#[test]
fn docs_record_split() {
    // "Record split": cb_split returns record["x"], an array of records.
    let mut f = code(
        "cb_split",
        r#"
function cb_split(tag, timestamp, record)
    if record["x"] ~= nil then
        return 2, timestamp, record["x"]
    else
        return 2, timestamp, record
    end
end"#,
    );
    let t1 = EventTime::new(1_538_435_928, 310_583_591);
    let t2 = EventTime::new(1_538_435_928, 310_588_359);
    let t3 = EventTime::new(1_538_435_928, 310_589_790);
    let out = f.run_events(
        "stdin.0",
        &[
            event(
                t1,
                "{}",
                r#"{"x": [ {"a1":"aa", "z1":"zz"}, {"b1":"bb", "x1":"xx"}, {"c1":"cc"} ]}"#,
            ),
            event(
                t2,
                "{}",
                r#"{"x": [ {"a2":"aa", "z2":"zz"}, {"b2":"bb", "x2":"xx"}, {"c2":"cc"} ]}"#,
            ),
            event(
                t3,
                "{}",
                r#"{"a3":"aa", "z3":"zz", "b3":"bb", "x3":"xx", "c3":"cc"}"#,
            ),
        ],
    );
    // Fluent Bit prints these keys in LuaJIT's hash order ({"x1"=>"xx", "b1"=>"bb"}, ...),
    // which changes from run to run; here they keep the input's order.
    assert_eq!(
        show(&out),
        [
            r#"1538435928.310583591 {} {"a1":"aa","z1":"zz"}"#,
            r#"1538435928.310583591 {} {"b1":"bb","x1":"xx"}"#,
            r#"1538435928.310583591 {} {"c1":"cc"}"#,
            r#"1538435928.310588359 {} {"a2":"aa","z2":"zz"}"#,
            r#"1538435928.310588359 {} {"b2":"bb","x2":"xx"}"#,
            r#"1538435928.310588359 {} {"c2":"cc"}"#,
            r#"1538435928.310589790 {} {"a3":"aa","z3":"zz","b3":"bb","x3":"xx","c3":"cc"}"#,
        ]
    );
    assert_eq!(f.errors(), 0);
}

#[test]
fn docs_inline_code_classic_form() {
    // "Inline configuration", the fluent-bit.conf tab: the whole script on one line.
    let mut f = code(
        "append_tag",
        r#"function append_tag(tag, timestamp, record) new_record = record new_record["tag"] = tag return 1, timestamp, new_record end"#,
    );
    // Code 1 takes the returned double timestamp: its nanoseconds are what the double holds.
    assert_eq!(
        f.run(&[r#"{"rand_value":4805047635809401856}"#]),
        [r#"1700000000.123456716 {} {"rand_value":4805047635809401856,"tag":"test"}"#]
    );
}

#[test]
fn docs_response_code_filter() {
    // "Response code filtering": drop 1..399, keep the rest; returns 0,0,0 / -1,0,0.
    let mut f = code(
        "cb_response_code_filter",
        r#"
function cb_response_code_filter(tag, timestamp, record)
  response_code = record["response_code"]
  if (response_code == nil or response_code == '') then
    return 0,0,0
  elseif (response_code ~= 0 and response_code < 400) then
    return -1,0,0
  else
    return 0,0,0
  end
end"#,
    );
    assert_eq!(
        f.records(&[
            r#"{"response_code":200,"path":"/a"}"#,
            r#"{"response_code":404,"path":"/b"}"#,
            r#"{"response_code":0,"path":"/c"}"#,
            r#"{"response_code":"","path":"/d"}"#,
            r#"{"path":"/e"}"#,
            r#"{"response_code":399.5}"#,
        ]),
        [
            r#"{"response_code":404,"path":"/b"}"#,
            r#"{"response_code":0,"path":"/c"}"#,
            r#"{"response_code":"","path":"/d"}"#,
            r#"{"path":"/e"}"#,
        ]
    );
}

#[test]
fn docs_environment_variables_example() {
    // "Processing environment variables": os.getenv, gsub, return code 2.
    std::env::set_var(
        "KUBERNETES_SERVICE_HOST",
        "api.sandboxbsh-a.project.domain.com",
    );
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("filters.lua");
    std::fs::write(
        &script,
        r#"
-- Use a Lua function to create some additional entries based
-- on substrings from the kubernetes properties.
function set_landscape_deployment(tag, timestamp, record)
    local landscape = os.getenv("KUBERNETES_SERVICE_HOST")
    if landscape then
        landscape = landscape:gsub("^[^.]+.", "")
        landscape = landscape:gsub("-.*$", "")
        record["iot_landscape"] = landscape
    end
    -- 2 - replace existing record with this update
    return 2, timestamp, record
end
"#,
    )
    .unwrap();
    let conf = dir.path().join("fluent-bit.conf");
    let mut f = try_build_at(
        &conf,
        &[
            ("alias", "filter-iots-lua"),
            ("match", "iots_thread.*"),
            ("script", "filters.lua"),
            ("call", "set_landscape_deployment"),
        ],
    )
    .unwrap();
    let out = f.run_events("iots_thread.1", &[event(T0, "{}", r#"{"log":"up"}"#)]);
    assert_eq!(
        show(&out),
        [r#"1700000000.123456789 {} {"log":"up","iot_landscape":"sandboxbsh"}"#]
    );
}

#[test]
fn docs_metadata_callback_splits_with_metadata() {
    // "Multiple records with metadata": the five-argument prototype.
    let mut f = code(
        "cb_metadata",
        r#"
function cb_metadata(tag, ts, group, metadata, record)
    -- first record with its metadata
    m1 = {foo = "meta1"}
    r1 = {msg = "first log", old_record = record}

    -- second record with its metadata
    m2 = {foo = "meta2"}
    r2 = {msg = "second log", old_record = record}

    return 1, ts, {m1, m2}, {r1, r2}
end"#,
    );
    let t = EventTime::new(1_717_920_000, 500_000_000);
    let out = f.run_events("otel", &[event(t, r#"{"otlp":{}}"#, r#"{"a":1}"#)]);
    assert_eq!(
        show(&out),
        [
            r#"1717920000.500000000 {"foo":"meta1"} {"msg":"first log","old_record":{"a":1}}"#,
            r#"1717920000.500000000 {"foo":"meta2"} {"msg":"second log","old_record":{"a":1}}"#,
        ]
    );
}

#[test]
fn docs_metadata_callback_changes_severity() {
    // "OpenTelemetry example" (without OTLP groups: the group table is empty).
    let mut f = code(
        "cb_groups_and_metadata",
        r#"
function cb_groups_and_metadata(tag, timestamp, group, metadata, record)
  if group['resource'] ~= nil then
    record['service_name'] = group['resource']['attributes']['service.name']
  end
  record['group_is_empty'] = next(group) == nil
  if metadata['otlp']['severity_number'] then
    if metadata['otlp']['severity_number'] == 9 then
      metadata['otlp']['severity_number'] = 13
      metadata['otlp']['severity_text'] = 'WARN'
    end
  end
  return 1, timestamp, metadata, record
end"#,
    );
    let t = EventTime::new(1_717_920_000, 0);
    let out = f.run_events(
        "otel",
        &[event(
            t,
            r#"{"otlp":{"severity_number":9,"severity_text":"INFO"}}"#,
            r#"{"body":"User logged in successfully"}"#,
        )],
    );
    assert_eq!(
        show(&out),
        [
            r#"1717920000.000000000 {"otlp":{"severity_number":13,"severity_text":"WARN"}} {"body":"User logged in successfully","group_is_empty":true}"#
        ]
    );
}

#[test]
fn metadata_callback_edge_cases() {
    let mut f = code(
        "cb",
        r#"
function cb(tag, ts, group, metadata, record)
  if record.case == "keep" then metadata.x = 1 return 0, ts, metadata, record end
  if record.case == "not_a_table" then record.y = 1 return 2, ts, "m", record end
  if record.case == "short" then return 2, ts, {{a = 1}}, {{r = 1}, {r = 2}} end
  if record.case == "pairs" then return 2, ts, {{a = 1}, "no"}, {{r = 1}, {r = 2}} end
  if record.case == "one_for_all" then return 2, ts, {b = 2}, {{r = 1}, {r = 2}} end
  return 2, ts, metadata, record
end"#,
    );
    let ev = |case: &str| event(T0, r#"{"m":0}"#, &format!(r#"{{"case":"{case}"}}"#));
    let out = f.run_events(
        "t",
        &[
            ev("keep"),
            ev("not_a_table"),
            ev("short"),
            ev("pairs"),
            ev("one_for_all"),
        ],
    );
    assert_eq!(
        show(&out),
        [
            // Code 0: the event as it came, metadata included.
            r#"1700000000.123456789 {"m":0} {"case":"keep"}"#,
            // Metadata that is not a table: the record's own.
            r#"1700000000.123456789 {"m":0} {"case":"not_a_table","y":1}"#,
            // An array of metadata of another length than the records: the record's own.
            r#"1700000000.123456789 {"m":0} {"r":1}"#,
            r#"1700000000.123456789 {"m":0} {"r":2}"#,
            // Paired one by one; an element that is not a map gives {}.
            r#"1700000000.123456789 {"a":1} {"r":1}"#,
            r#"1700000000.123456789 {} {"r":2}"#,
            // One metadata map for every record.
            r#"1700000000.123456789 {"b":2} {"r":1}"#,
            r#"1700000000.123456789 {"b":2} {"r":2}"#,
        ]
    );
    assert_eq!(f.errors(), 0);
}

#[test]
fn fewer_than_five_parameters_is_the_classic_prototype() {
    // Fluent Bit looks at nparams: 4 parameters, or a vararg function, get 3 arguments.
    let mut f = code(
        "cb",
        "function cb(tag, ts, record, extra) record.extra = type(extra) return 2, ts, record end",
    );
    assert_eq!(f.records(&[r#"{}"#]), [r#"{"extra":"nil"}"#]);
    let mut f = code(
        "cb",
        "function cb(...) local a = {...} a[3].n = select('#', ...) return 2, a[2], a[3] end",
    );
    assert_eq!(f.records(&[r#"{}"#]), [r#"{"n":3}"#]);
}

// ---------------------------------------------------------------------------------------------
// Return codes, splitting, time

const CODES: &str = r#"
function cb(tag, ts, r)
  local c = r.code
  r.seen = true
  if c == 1 then return 1, 1600000000.25, r end
  if c == 2 then return 2, 1600000000.25, r end
  return c, ts, r
end"#;

#[test]
fn return_codes() {
    let mut f = code("cb", CODES);
    let (out, logs) = capture(|| {
        f.run(&[
            r#"{"code":-1}"#,
            r#"{"code":0}"#,
            r#"{"code":1}"#,
            r#"{"code":2}"#,
            r#"{"code":3}"#,
        ])
    });
    assert_eq!(
        out,
        [
            // 0: as it came, although the script changed the table.
            r#"1700000000.123456789 {} {"code":0}"#,
            // 1: the returned record and timestamp.
            r#"1600000000.250000000 {} {"code":1,"seen":true}"#,
            // 2: the returned record, the original timestamp.
            r#"1700000000.123456789 {} {"code":2,"seen":true}"#,
            // anything else: as it came, with an error.
            r#"1700000000.123456789 {} {"code":3}"#,
        ]
    );
    assert!(
        logs.contains("unexpected Lua script return code 3, original record will be kept."),
        "{logs}"
    );
    assert_eq!(f.errors(), 1);
    let m = f.stage.metrics(0);
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(m.records.load(Relaxed), 5);
    assert_eq!(m.drop_records.load(Relaxed), 1);
}

#[test]
fn code_zero_passes_the_event_bytes_through() {
    let mut f = code("cb", "function cb(t, ts, r) r.x = 1 return 0, ts, r end");
    let input = event(T0, r#"{"m":1}"#, r#"{"a":1.5,"b":"c"}"#);
    assert_eq!(f.run_events("t", std::slice::from_ref(&input)), input);
}

#[test]
fn arrays_of_records() {
    let mut f = code(
        "cb",
        r#"
function cb(tag, ts, r)
  if r.case == "two" then return 2, ts, {{a = 1}, {b = 2}} end
  if r.case == "none" then return 2, ts, r.list end
  if r.case == "empty_table" then return 2, ts, {} end
  if r.case == "not_maps" then return 2, ts, {1, 2} end
  if r.case == "string" then return 2, ts, "x" end
  return 2, ts, r
end"#,
    );
    let events = [
        event(T0, r#"{"k":"v"}"#, r#"{"case":"two"}"#),
        event(T0, "{}", r#"{"case":"none","list":[]}"#),
        event(T0, "{}", r#"{"case":"empty_table"}"#),
        event(T0, "{}", r#"{"case":"not_maps"}"#),
        event(T0, "{}", r#"{"case":"string"}"#),
    ];
    let (out, logs) = capture(|| f.run_events("t", &events));
    assert_eq!(
        show(&out),
        [
            // Each record of the array keeps the time and metadata.
            r#"1700000000.123456789 {"k":"v"} {"a":1}"#,
            r#"1700000000.123456789 {"k":"v"} {"b":2}"#,
            // An empty array: no record. A new empty table: an empty record.
            r#"1700000000.123456789 {} {}"#,
            // Not records: the record goes on unchanged.
            r#"1700000000.123456789 {} {"case":"not_maps"}"#,
            r#"1700000000.123456789 {} {"case":"string"}"#,
        ]
    );
    assert!(
        logs.contains("invalid table returned at cb(), (inline code)"),
        "{logs}"
    );
    assert_eq!(f.errors(), 2);
    use std::sync::atomic::Ordering::Relaxed;
    let m = f.stage.metrics(0);
    assert_eq!(m.add_records.load(Relaxed), 1);
    assert_eq!(m.drop_records.load(Relaxed), 1);
}

#[test]
fn timestamp_as_a_double() {
    let mut f = code(
        "cb",
        r#"
function cb(tag, ts, r)
  r.ts = ts
  r.type = type(ts)
  return 1, ts + 1.5, r
end"#,
    );
    assert_eq!(
        f.run(&[r#"{}"#]),
        // The double has no nanosecond precision; it is truncated, as flb_time_from_double.
        [r#"1700000001.623456716 {} {"ts":1700000000.123457,"type":"number"}"#]
    );
    // A timestamp that is not a number is 0, as lua_tonumber makes it.
    let mut f = code("cb", "function cb(t, ts, r) return 1, nil, r end");
    assert_eq!(f.run(&[r#"{"a":1}"#]), [r#"0.000000000 {} {"a":1}"#]);
}

#[test]
fn timestamp_as_a_table() {
    let mut f = build(&[
        ("call", "cb"),
        ("time_as_table", "on"),
        (
            "code",
            r#"
function cb(tag, ts, r)
  r.sec = ts.sec
  r.nsec = ts.nsec
  if r.bad then return 1, 12.5, r end
  if r.two then return 2, {sec = 1, nsec = 2}, r end
  return 1, {sec = ts.sec + 1, nsec = 5}, r
end"#,
        ),
    ]);
    let (out, logs) = capture(|| f.run(&[r#"{}"#, r#"{"bad":true}"#, r#"{"two":1}"#]));
    assert_eq!(
        out,
        [
            r#"1700000001.000000005 {} {"nsec":123456789,"sec":1700000000}"#,
            // Not a table: the original time, and an error.
            r#"1700000000.123456789 {} {"bad":true,"nsec":123456789,"sec":1700000000}"#,
            r#"1700000000.123456789 {} {"two":1,"nsec":123456789,"sec":1700000000}"#,
        ]
    );
    assert!(
        logs.contains("invalid lua timestamp type returned"),
        "{logs}"
    );
    assert_eq!(f.errors(), 1);
}

// ---------------------------------------------------------------------------------------------
// Conversions

#[test]
fn values_convert_as_in_fluent_bit() {
    let mut f = code(
        "cb",
        r#"
function cb(tag, ts, r)
  r.added = 1.0
  r.types = type(r.i) .. "," .. type(r.s) .. "," .. type(r.nested) .. "," .. type(r.t)
  return 2, ts, r
end"#,
    );
    assert_eq!(
        f.records(&[concat!(
            r#"{"i":42,"neg":-7,"big":9007199254740993,"f":2.5,"whole":2.0,"t":true,"fa":false,"#,
            r#""s":"héllo","nested":{"k":[1,"two",{"z":null}]},"em":{},"ea":[],"nul":null}"#
        )]),
        [concat!(
            // Integers stay integers (beyond 2^53 they lose precision, as in Fluent Bit); an
            // integral float comes back as an integer, as in Fluent Bit; nil removes the key.
            r#"{"i":42,"neg":-7,"big":9007199254740992,"f":2.5,"whole":2,"t":true,"fa":false,"#,
            r#""s":"h\u00e9llo","nested":{"k":[1,"two",{}]},"em":{},"ea":[],"#,
            r#""added":1,"types":"number,string,table,boolean"}"#
        )]
    );
}

#[test]
fn flb_null_keeps_nulls() {
    let mut f = build(&[
        ("call", "cb"),
        ("enable_flb_null", "true"),
        (
            "code",
            r#"
function cb(tag, ts, r)
  r.is_null = (r.nul == flb_null) and type(flb_null) == "userdata"
  r.made = flb_null
  return 2, ts, r
end"#,
        ),
    ]);
    assert_eq!(
        f.records(&[r#"{"nul":null,"n":{"z":null},"a":[null,1]}"#]),
        [r#"{"nul":null,"n":{"z":null},"a":[null,1],"is_null":true,"made":null}"#]
    );
}

#[test]
fn unsigned_integers_beyond_i64_become_doubles() {
    // Fluent Bit's (double)u64 → lua_Integer conversion wraps them to i64::MIN on x86-64.
    let mut f = code("cb", "function cb(t, ts, r) return 2, ts, r end");
    assert_eq!(
        f.records(&[r#"{"u":18446744073709551615,"m":-9223372036854775808}"#]),
        [r#"{"u":1.844674407370955e+19,"m":-9223372036854775808}"#]
    );
}

#[test]
fn tables_become_arrays_or_maps_by_fluent_bits_rules() {
    let mut f = code(
        "cb",
        r#"
function cb(tag, ts, r)
  r.seq = {10, 20, 30}
  r.mixed = {1, x = "y"}            -- table.maxn = 1: an array, "x" is lost
  r.holes = {[1] = "a", [3] = "c"}  -- holes are nil
  r.new_empty = {}                  -- no metatable: a map
  r.grown = r.arr                   -- came in as an array: stays one
  table.insert(r.grown, 3)
  r.cleared = r.obj                 -- came in as a map: stays one, even emptied
  r.cleared.k = nil
  r.arr = nil
  r.obj = nil
  return 2, ts, r
end"#,
    );
    assert_eq!(
        f.records(&[r#"{"arr":[1,2],"obj":{"k":"v"}}"#]),
        [concat!(
            r#"{"cleared":{},"grown":[1,2,3],"holes":["a",null,"c"],"mixed":[1],"#,
            r#""new_empty":{},"seq":[10,20,30]}"#
        )]
    );
}

#[test]
fn type_int_key_and_type_array_key() {
    let mut f = build(&[
        ("call", "cb"),
        ("type_int_key", "a  b"),
        ("type_array_key", "list m"),
        (
            "code",
            r#"
function cb(tag, ts, r)
  r.a = 3.7
  r.b = -2.5
  r.c = 3.7
  r.list = {}
  r.m = {x = 1}
  r.lst2 = {}
  r.inner = {a = 1.5, list = {}}
  return 2, ts, r
end"#,
        ),
    ]);
    assert_eq!(
        f.records(&[r#"{"a":1,"b":2,"c":3,"status":4.5}"#]),
        // Rules apply at every depth and match whole keys ("status" is not "stat...").
        [concat!(
            r#"{"a":3,"b":-2,"c":3.7,"status":4.5,"inner":{"a":1,"list":[]},"list":[],"#,
            r#""lst2":{},"m":[]}"#
        )]
    );
}

#[test]
fn key_order_is_deterministic() {
    let mut f = code(
        "cb",
        r#"
function cb(tag, ts, r)
  r.z = 1
  r.c = 2
  r.a = nil
  r.m.w = 3
  r.t = {b = 1, a = 2, [-1] = "neg", [true] = "yes"}
  return 2, ts, r
end"#,
    );
    // Input keys keep their order, added keys follow sorted; a table built in Lua is sorted
    // (numbers, strings, booleans). The output JSON of a map with non-string keys prints them
    // as strings.
    let want =
        r#"{"b":1,"m":{"y":1,"x":2,"w":3},"c":2,"t":{"-1":"neg","a":2,"b":1,"true":"yes"},"z":1}"#;
    for _ in 0..3 {
        assert_eq!(f.records(&[r#"{"b":1,"a":2,"m":{"y":1,"x":2}}"#]), [want]);
    }
}

#[test]
fn strings_are_binary_safe() {
    let mut f = code(
        "cb",
        "function cb(t, ts, r) r.copy = r.s .. r.b r.len = #r.s return 2, ts, r end",
    );
    // {"s": "\xff\xfe" (str, invalid UTF-8), "b": bin "\x00\x01"}
    let mut ev = Vec::new();
    write_event_start(&mut ev, T0);
    ev.push(0x80);
    ev.extend_from_slice(&[
        0x82, 0xa1, b's', 0xa2, 0xff, 0xfe, 0xa1, b'b', 0xc4, 2, 0, 1,
    ]);
    let out = f.run_events("t", &[ev]);
    let e = EventReader::new(&out).next().unwrap().unwrap();
    assert_eq!(
        e.record,
        [
            0x84, 0xa1, b's', 0xa2, 0xff, 0xfe, // kept as bytes
            0xa1, b'b', 0xa2, 0, 1, // bin comes back as str, as in Fluent Bit
            0xa4, b'c', b'o', b'p', b'y', 0xa4, 0xff, 0xfe, 0, 1, //
            0xa3, b'l', b'e', b'n', 0x02,
        ]
    );
}

#[test]
fn flb_env_has_the_hostname() {
    let mut f = code(
        "cb",
        "function cb(t, ts, r) r.host = FLB_ENV['HOSTNAME'] return 2, ts, r end",
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        f.records(&[r#"{}"#]),
        [format!(r#"{{"host":"{}"}}"#, host.trim())]
    );
}

#[test]
fn the_tag_is_the_first_argument() {
    let mut f = code(
        "cb",
        "function cb(tag, ts, r) r.tag = tag return 2, ts, r end",
    );
    let out = f.run_events("app.web", &[event(T0, "{}", r#"{"a":1}"#)]);
    assert_eq!(
        show(&out),
        [r#"1700000000.123456789 {} {"a":1,"tag":"app.web"}"#]
    );
}

#[test]
fn state_persists_between_records() {
    let mut f = code(
        "cb",
        "n = 0 function cb(t, ts, r) n = n + 1 r.n = n return 2, ts, r end",
    );
    assert_eq!(
        f.records(&[r#"{}"#, r#"{}"#, r#"{}"#]),
        [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]
    );
}

// ---------------------------------------------------------------------------------------------
// Errors at run time

const FAILS_ON_TWO: &str = r#"function cb(tag, ts, r)
  if r.x == 2 then
    error("boom")
  end
  r.ok = true
  return 2, ts, r
end"#;

#[test]
fn a_lua_error_passes_the_record_on_logs_and_counts() {
    let mut f = code("cb", FAILS_ON_TWO);
    let (out, logs) = capture(|| f.records(&[r#"{"x":1}"#, r#"{"x":2}"#, r#"{"x":3}"#]));
    assert_eq!(
        out,
        [r#"{"x":1,"ok":true}"#, r#"{"x":2}"#, r#"{"x":3,"ok":true}"#]
    );
    assert!(
        logs.contains(r#"error code 2: [string "fluentbit.lua"]:3: boom"#),
        "{logs}"
    );
    assert!(logs.contains("filter:lua:lua.0"), "{logs}");
    assert_eq!(f.errors(), 1);
}

#[test]
fn errors_are_rate_limited_but_all_counted() {
    let mut f = code("cb", FAILS_ON_TWO);
    let (out, logs) = capture(|| f.records(&[r#"{"x":2}"#; 5]));
    assert_eq!(out, [r#"{"x":2}"#; 5]);
    assert_eq!(logs.matches("boom").count(), 1, "{logs}");
    assert_eq!(f.errors(), 5);
}

#[test]
fn protected_mode_off_still_never_aborts() {
    // Fluent Bit calls the function unprotected and a Lua error aborts it; here it does not.
    let mut f = build(&[
        ("call", "cb"),
        ("protected_mode", "off"),
        ("code", FAILS_ON_TWO),
    ]);
    assert_eq!(f.records(&[r#"{"x":2}"#]), [r#"{"x":2}"#]);
    assert_eq!(f.errors(), 1);
}

#[test]
fn error_objects_that_are_not_strings() {
    let mut f = code("cb", "function cb(t, ts, r) error({}) end");
    let (out, logs) = capture(|| f.records(&[r#"{"a":1}"#]));
    assert_eq!(out, [r#"{"a":1}"#]);
    assert!(
        logs.contains("error code 2: (error object is a table value)"),
        "{logs}"
    );
}

#[test]
fn a_table_that_contains_itself_is_an_error_not_a_crash() {
    let mut f = code("cb", "function cb(t, ts, r) r.me = r return 2, ts, r end");
    let (out, logs) = capture(|| f.records(&[r#"{"a":1}"#]));
    assert_eq!(out, [r#"{"a":1}"#]);
    assert!(logs.contains("nested deeper than"), "{logs}");
    assert_eq!(f.errors(), 1);
}

#[test]
fn functions_and_userdata_become_null() {
    // Fluent Bit writes nothing for them, which corrupts the map.
    let mut f = code(
        "cb",
        "function cb(t, ts, r) r.f = print r.co = coroutine.create(print) return 2, ts, r end",
    );
    assert_eq!(
        f.records(&[r#"{"a":1}"#]),
        [r#"{"a":1,"co":null,"f":null}"#]
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// A temporary directory holding a (fake) configuration file and scripts.
fn conf_dir(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let mut f = std::fs::File::create(dir.path().join(name)).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
    let conf = dir.path().join("fluent-bit.conf");
    (dir, conf)
}

#[test]
fn a_relative_script_is_found_next_to_the_configuration() {
    let (_dir, conf) = conf_dir(&[(
        "rel.lua",
        "function cb(t, ts, r) r.from = 'file' return 2, ts, r end",
    )]);
    let mut f = try_build_at(&conf, &[("script", "rel.lua"), ("call", "cb")]).unwrap();
    assert_eq!(f.records(&[r#"{}"#]), [r#"{"from":"file"}"#]);
}

#[test]
fn an_absolute_script_path() {
    let (dir, _conf) = conf_dir(&[(
        "abs.lua",
        "#!/usr/bin/env luajit\nfunction cb(t, ts, r) r.from = 'abs' return 2, ts, r end",
    )]);
    let path = dir.path().join("abs.lua");
    let mut f = build(&[("script", path.to_str().unwrap()), ("call", "cb")]);
    assert_eq!(f.records(&[r#"{}"#]), [r#"{"from":"abs"}"#]);
}

#[test]
fn code_wins_over_script() {
    let mut f = build(&[
        ("script", "does-not-exist.lua"),
        (
            "code",
            "function cb(t, ts, r) r.from = 'code' return 2, ts, r end",
        ),
        ("call", "cb"),
    ]);
    assert_eq!(f.records(&[r#"{}"#]), [r#"{"from":"code"}"#]);
}

#[test]
fn a_missing_script_is_a_configuration_error_at_its_line() {
    let (dir, conf) = conf_dir(&[]);
    let e = build_errors_at(&conf, &[("call", "cb"), ("script", "missing.lua")]);
    assert_eq!(e.len(), 1, "{e:?}");
    let want = format!(
        "{}:3: [filter lua.0] cannot access script '{}'",
        conf.display(),
        dir.path().join("missing.lua").display()
    );
    assert!(e[0].starts_with(&want), "{e:?}");
}

#[test]
fn a_syntax_error_names_the_key_and_the_script_line() {
    let (dir, conf) = conf_dir(&[(
        "bad.lua",
        "-- a comment\nfunction cb(t, ts, r)\n  return 2 ts\nend\n",
    )]);
    let e = build_errors_at(&conf, &[("script", "bad.lua"), ("call", "cb")]);
    assert_eq!(e.len(), 1, "{e:?}");
    let script = dir.path().join("bad.lua");
    assert!(
        e[0].starts_with(&format!(
            "{}:2: [filter lua.0] error loading script: {}:3: ",
            conf.display(),
            script.display()
        )),
        "{e:?}"
    );
    // Inline code.
    let e = build_errors_at(
        Path::new(CONF),
        &[("call", "cb"), ("code", "function cb(\n")],
    );
    assert!(
        e[0].starts_with(&format!(
            "{CONF}:3: [filter lua.0] error loading buffer: [string \"fluentbit.lua\"]:"
        )),
        "{e:?}"
    );
}

#[test]
fn a_missing_function_is_an_error_at_the_call_key() {
    let e = build_errors_at(
        Path::new(CONF),
        &[("code", "function other() end x = 1"), ("call", "cb")],
    );
    assert_eq!(
        e,
        [format!("{CONF}:3: [filter lua.0] function cb is not found")]
    );
    // A global that is not a function is not a function.
    let e = build_errors_at(Path::new(CONF), &[("code", "cb = 1"), ("call", "cb")]);
    assert_eq!(
        e,
        [format!("{CONF}:3: [filter lua.0] function cb is not found")]
    );
}

#[test]
fn an_error_in_the_scripts_top_level_is_a_configuration_error() {
    let e = build_errors_at(
        Path::new(CONF),
        &[("call", "cb"), ("code", "function cb() end\nerror('no')")],
    );
    assert_eq!(
        e,
        [format!(
            "{CONF}:3: [filter lua.0] invalid lua content: [string \"fluentbit.lua\"]:2: no"
        )]
    );
}

#[test]
fn script_or_code_and_call_are_required() {
    let e = build_errors_at(Path::new(CONF), &[("call", "cb")]);
    assert_eq!(
        e,
        [format!("{CONF}:1: [filter lua.0] no script path defined")]
    );
    let e = build_errors_at(Path::new(CONF), &[("code", "function cb() end")]);
    assert_eq!(
        e,
        [format!(
            "{CONF}:1: [filter lua.0] function name defined by 'call' is not set"
        )]
    );
}

#[test]
fn boolean_keys_are_checked() {
    let e = build_errors_at(
        Path::new(CONF),
        &[
            ("call", "cb"),
            ("code", "function cb() end"),
            ("time_as_table", "maybe"),
        ],
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with(&format!("{CONF}:4:")), "{e:?}");
}
