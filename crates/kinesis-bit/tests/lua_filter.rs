//! The `lua` filter in the binary: a classic configuration with a `[FILTER] Name lua` and a
//! script next to it, YAML inline `code`, the command line's `-F lua`, `--dry-run` finding a
//! missing function, and a Lua error logged in Fluent Bit's format while the record goes on.

use std::process::{Command, Output};
use std::time::Duration;

mod common;

use common::{run_with_stdin, stderr};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kinesis-bit"));
    c.env_remove("FLB_LOG_LEVEL");
    c
}

fn run(args: &[&str], input: &[u8]) -> Output {
    // Run from / so that a relative script can only be found next to the configuration.
    run_with_stdin(
        bin().current_dir("/").args(args),
        input,
        Duration::from_secs(20),
    )
}

const SCRIPT: &str = r#"
function cb(tag, timestamp, record)
  if record.level == "debug" then
    return -1, timestamp, record
  end
  if record.lines ~= nil then
    local out = {}
    for _, l in ipairs(record.lines) do
      out[#out + 1] = {line = l}
    end
    return 1, 1700000001.25, out
  end
  record.tag = tag
  record.n = record.n * 2
  return 1, 1700000000.5, record
end
"#;

const CONF: &str = "[SERVICE]
    Flush 0.2

[INPUT]
    Name stdin
    Tag  app.log

[FILTER]
    Name   lua
    Match  app.*
    script filters.lua
    call   cb
";

#[test]
fn classic_config_with_a_lua_script_to_stdout_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("filters.lua"), SCRIPT).unwrap();
    let conf = dir.path().join("fluent-bit.conf");
    std::fs::write(&conf, CONF).unwrap();
    let out = run(
        &[
            "-c",
            conf.to_str().unwrap(),
            "-o",
            "stdout",
            "-p",
            "format=json_lines",
            "-m",
            "*",
        ],
        concat!(
            r#"{"msg":"a","n":1}"#,
            "\n",
            r#"{"level":"debug","n":0}"#,
            "\n",
            r#"{"msg":"b","n":2.5,"meta":{"k":[]}}"#,
            "\n",
            r#"{"lines":["x","y"]}"#,
            "\n",
        )
        .as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    // Code 1 set the time (json_lines prints it as "date"); the debug record is dropped; 2.5*2
    // comes back as the integer 5, as in Fluent Bit; an array of records splits the record.
    assert_eq!(
        stdout,
        concat!(
            r#"{"date":1700000000.5,"msg":"a","n":2,"tag":"app.log"}"#,
            "\n",
            r#"{"date":1700000000.5,"msg":"b","n":5,"meta":{"k":[]},"tag":"app.log"}"#,
            "\n",
            r#"{"date":1700000001.25,"line":"x"}"#,
            "\n",
            r#"{"date":1700000001.25,"line":"y"}"#,
            "\n",
        )
    );
}

#[test]
fn yaml_inline_code_splits_records() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("fluent-bit.yaml");
    std::fs::write(
        &conf,
        r#"service:
  flush: 0.2
pipeline:
  inputs:
    - name: stdin
      tag: app
  filters:
    - name: lua
      match: '*'
      call: split
      code: |
        function split(tag, timestamp, record)
          local out = {}
          for word in string.gmatch(record.log, "%S+") do
            out[#out + 1] = {word = word, len = #word}
          end
          return 2, timestamp, out
        end
  outputs:
    - name: stdout
      match: '*'
      format: json_lines
      json_date_key: false
"#,
    )
    .unwrap();
    let out = run(
        &["-c", conf.to_str().unwrap()],
        b"{\"log\":\"hello lua world\"}\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"len\":5,\"word\":\"hello\"}\n{\"len\":3,\"word\":\"lua\"}\n{\"len\":5,\"word\":\"world\"}\n"
    );
}

#[test]
fn command_line_filter() {
    let out = run(
        &[
            "-i",
            "stdin",
            "-F",
            "lua",
            "-p",
            "code=function cb(t, ts, r) r.t = t return 2, ts, r end",
            "-p",
            "call=cb",
            "-m",
            "*",
            "-o",
            "stdout",
            "-p",
            "format=json_lines",
            "-p",
            "json_date_key=false",
            "-m",
            "*",
        ],
        b"{\"a\":1}\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"a\":1,\"t\":\"stdin.0\"}\n"
    );
}

#[test]
fn dry_run_reports_a_missing_function_and_a_missing_script_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("filters.lua"), SCRIPT).unwrap();
    let conf = dir.path().join("fluent-bit.conf");
    std::fs::write(&conf, CONF.replace("call   cb", "call   nope")).unwrap();
    let out = run(&["-c", conf.to_str().unwrap(), "--dry-run"], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "[error] [config] {}:12: [filter lua.0] function nope is not found",
            conf.display()
        )),
        "{}",
        stderr(&out)
    );

    std::fs::write(&conf, CONF.replace("filters.lua", "gone.lua")).unwrap();
    let out = run(&["-c", conf.to_str().unwrap(), "--dry-run"], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{}:11: [filter lua.0] cannot access script '{}'",
            conf.display(),
            dir.path().join("gone.lua").display()
        )),
        "{}",
        stderr(&out)
    );

    std::fs::write(&conf, CONF).unwrap();
    let out = run(&["-c", conf.to_str().unwrap(), "--dry-run"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_lua_error_is_logged_and_the_record_passes() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("filters.lua");
    std::fs::write(
        &script,
        "function cb(tag, timestamp, record)\n  if record.boom then error(\"boom\") end\n  record.ok = true\n  return 2, timestamp, record\nend\n",
    )
    .unwrap();
    let conf = dir.path().join("fluent-bit.conf");
    std::fs::write(&conf, CONF).unwrap();
    let out = run(
        &[
            "-c",
            conf.to_str().unwrap(),
            "-o",
            "stdout",
            "-p",
            "format=json_lines",
            "-p",
            "json_date_key=false",
            "-m",
            "*",
        ],
        b"{\"boom\":1}\n{\"n\":1}\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"boom\":1}\n{\"n\":1,\"ok\":true}\n"
    );
    assert!(
        stderr(&out).contains(&format!(
            "[error] [filter:lua:lua.0] error code 2: {}:2: boom",
            script.display()
        )),
        "{}",
        stderr(&out)
    );
}
