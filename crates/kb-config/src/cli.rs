//! The Fluent Bit command line (spec §7): `-i/-F/-o` start sections, `-p/-m/-t` apply to the most
//! recent one, other options set service properties.
//!
//! clap parses the options, but it groups values per option; the left-to-right order that
//! `-p`/`-m`/`-t` depend on is rebuilt from `ArgMatches::indices_of`. clap never prints or exits
//! here: its help/version flags are disabled and errors are turned into [`CliError`].

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::model::{
    ConfigError, ConfigErrors, ConfigWarning, Location, Property, Section, SectionKind,
};

/// What the command line asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandLine {
    /// `-c FILE`.
    pub config_file: Option<PathBuf>,
    /// Sections from `-i`/`-F`/`-o` in command-line order, with their `-p`/`-m`/`-t` properties.
    pub sections: Vec<Section>,
    /// Service properties from `-f`, `-R`, `-b`, `-l`, `-H`, `-L`, `-P`, `-v`/`-vv`/`-q`.
    pub service: Vec<Property>,
    /// `-D`.
    pub dry_run: bool,
    /// `-h`. Options after it are not processed, so when a section precedes it the caller prints
    /// that plugin's help (see [`CommandLine::help_target`]), else the general usage.
    pub help: bool,
    /// `-V`.
    pub version: bool,
    /// `-w DIR`.
    pub workdir: Option<PathBuf>,
    /// Accepted-but-ignored options (`-s`).
    pub warnings: Vec<ConfigWarning>,
}

impl CommandLine {
    /// The section whose plugin help `-h` asks for (`-o NAME -h`), if any.
    pub fn help_target(&self) -> Option<&Section> {
        if self.help {
            self.sections.last()
        } else {
            None
        }
    }
}

/// Every problem found on a command line, each naming its argument
/// (`command line: -p foo: expected KEY=VALUE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub ConfigErrors);

impl CliError {
    fn one(arg: impl Into<String>, message: impl Into<String>) -> Self {
        CliError(ConfigErrors(vec![cli_error(arg, message)]))
    }
}

fn cli_error(arg: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(Location::CommandLine { arg: arg.into() }, message)
}

/// One option: clap id, short and long names, whether it takes a value, and whether
/// kinesis-bit implements it.
struct Opt {
    id: &'static str,
    short: Option<char>,
    long: &'static [&'static str],
    value: bool,
    supported: bool,
}

const fn opt(
    id: &'static str,
    short: Option<char>,
    long: &'static [&'static str],
    value: bool,
    supported: bool,
) -> Opt {
    Opt {
        id,
        short,
        long,
        value,
        supported,
    }
}

/// Fluent Bit's options (`src/fluent-bit.c`).
const OPTS: &[Opt] = &[
    opt("config", Some('c'), &["config"], true, true),
    opt("input", Some('i'), &["input"], true, true),
    opt("filter", Some('F'), &["filter"], true, true),
    opt("output", Some('o'), &["output"], true, true),
    opt("prop", Some('p'), &["prop"], true, true),
    opt("match", Some('m'), &["match"], true, true),
    opt("tag", Some('t'), &["tag"], true, true),
    opt("flush", Some('f'), &["flush"], true, true),
    opt("parser", Some('R'), &["parser"], true, true),
    opt("storage_path", Some('b'), &["storage_path"], true, true),
    opt("log_file", Some('l'), &["log_file"], true, true),
    opt("verbose", Some('v'), &["verbose"], false, true),
    opt("quiet", Some('q'), &["quiet"], false, true),
    opt("http", Some('H'), &["http", "http_server"], false, true),
    opt("http_listen", Some('L'), &["http_listen"], true, true),
    opt("http_port", Some('P'), &["port", "http_port"], true, true),
    opt("dry_run", Some('D'), &["dry-run"], false, true),
    opt("help", Some('h'), &["help"], false, true),
    opt("version", Some('V'), &["version"], false, true),
    opt("workdir", Some('w'), &["workdir"], true, true),
    opt(
        "coro_stack_size",
        Some('s'),
        &["coro_stack_size"],
        true,
        true,
    ),
    opt("daemon", Some('d'), &["daemon"], false, false),
    opt("plugin", Some('e'), &["plugin"], true, false),
    opt("custom", Some('C'), &["custom"], true, false),
    opt("sp_task", Some('T'), &["sp-task"], true, false),
    opt("hot_reload", Some('Y'), &["enable-hot-reload"], false, true),
    opt(
        "no_hot_reload_safety",
        Some('W'),
        &["disable-thread-safety-on-hot-reload"],
        false,
        false,
    ),
    opt(
        "chunk_trace",
        Some('Z'),
        &["enable-chunk-trace"],
        false,
        false,
    ),
    opt("trace", None, &["trace"], true, false),
    opt("trace_input", None, &["trace-input"], true, false),
    opt("trace_output", None, &["trace-output"], true, false),
    opt(
        "trace_output_property",
        None,
        &["trace-output-property"],
        true,
        false,
    ),
    opt("enable_fips", None, &["enable-fips"], false, false),
    opt("sosreport", Some('S'), &["sosreport"], false, false),
    opt("supervisor", None, &["supervisor"], false, false),
    opt("processor", Some('r'), &["processor"], true, false),
    opt("help_json", Some('J'), &["help-json"], false, false),
];

fn command() -> Command {
    let mut cmd = Command::new("kinesis-bit")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true);
    for o in OPTS {
        let mut arg = Arg::new(o.id).action(ArgAction::Append);
        if let Some(c) = o.short {
            arg = arg.short(c);
        }
        if let Some((first, rest)) = o.long.split_first() {
            arg = arg.long(*first);
            for alias in rest {
                arg = arg.alias(*alias);
            }
        }
        arg = if o.value {
            // Like getopt, an option's value is the next argument even if it starts with '-'.
            arg.num_args(1)
                .allow_hyphen_values(true)
                .value_name("VALUE")
        } else {
            // Zero-value "append" flags keep one index per occurrence (Count keeps only one).
            arg.num_args(0).default_missing_value("")
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

/// Parse `args` (the program name first, as `std::env::args_os()` gives it).
pub fn parse_command_line(
    args: impl IntoIterator<Item = OsString>,
) -> Result<CommandLine, CliError> {
    let args: Vec<OsString> = args.into_iter().collect();
    let matches = command()
        .try_get_matches_from(&args)
        .map_err(|e| from_clap(&e, &args))?;

    // Every occurrence of every option, in command-line order.
    let mut items: Vec<(usize, &Opt, String)> = Vec::new();
    for o in OPTS {
        items.extend(occurrences(&matches, o.id).map(|(i, v)| (i, o, v)));
    }
    items.sort_by_key(|(i, _, _)| *i);

    let mut cl = CommandLine::default();
    let mut errors = Vec::new();
    let mut verbosity: Option<(&str, &str)> = None; // (argument, level)
    let mut verbose_count = 0;
    for (_, o, value) in items {
        let short = o.short.map(String::from).unwrap_or_default();
        let arg = match o.short {
            Some(c) if o.value => format!("-{c} {value}"),
            Some(c) => format!("-{c}"),
            None => format!("--{}", o.long.first().copied().unwrap_or(o.id)),
        };
        if !o.supported {
            errors.push(cli_error(
                shown_name(o, &args),
                "option not supported by kinesis-bit",
            ));
            continue;
        }
        let location = Location::CommandLine { arg: arg.clone() };
        let prop = |key: &str, value: &str| Property {
            key: key.to_string(),
            value: value.to_string(),
            location: location.clone(),
        };
        match short.as_str() {
            "h" => {
                cl.help = true;
                break;
            }
            "V" => {
                cl.version = true;
                break;
            }
            "c" => cl.config_file = Some(PathBuf::from(value)),
            "w" => cl.workdir = Some(PathBuf::from(value)),
            "D" => cl.dry_run = true,
            "i" | "F" | "o" => {
                let kind = match short.as_str() {
                    "i" => SectionKind::Input,
                    "F" => SectionKind::Filter,
                    _ => SectionKind::Output,
                };
                let name = value.trim();
                if name.is_empty() {
                    errors.push(ConfigError::new(location.clone(), "empty plugin name"));
                }
                let mut s = Section::new(kind, location.clone());
                s.props.push(prop("name", name));
                cl.sections.push(s);
            }
            "p" | "m" | "t" => {
                let Some(section) = cl.sections.last_mut() else {
                    errors.push(ConfigError::new(
                        location.clone(),
                        format!("-{short} given before any -i, -F or -o"),
                    ));
                    continue;
                };
                let (key, val) = match short.as_str() {
                    "m" if section.kind == SectionKind::Input => {
                        errors.push(ConfigError::new(
                            location.clone(),
                            "-m applies to the last -F or -o, but the last section is an input",
                        ));
                        continue;
                    }
                    "m" => ("match".to_string(), value.as_str()),
                    "t" => ("tag".to_string(), value.as_str()),
                    _ => match value.split_once('=') {
                        Some((k, v)) if !k.trim().is_empty() => {
                            (k.trim().to_ascii_lowercase(), v.trim())
                        }
                        _ => {
                            errors.push(ConfigError::new(location.clone(), "expected KEY=VALUE"));
                            continue;
                        }
                    },
                };
                section.props.push(prop(&key, val));
            }
            "f" => cl.service.push(prop("flush", &value)),
            "R" => cl.service.push(prop("parsers_file", &value)),
            "b" => cl.service.push(prop("storage.path", &value)),
            "l" => cl.service.push(prop("log_file", &value)),
            "H" => cl.service.push(prop("http_server", "on")),
            "Y" => cl.service.push(prop("hot_reload", "on")),
            "L" => cl.service.push(prop("http_listen", &value)),
            "P" => cl.service.push(prop("http_port", &value)),
            "s" => cl.warnings.push(ConfigWarning {
                location: location.clone(),
                message: "option -s (coroutine stack size) is accepted and ignored".to_string(),
            }),
            // The last -q wins over earlier -v's; -v's after it count up from zero.
            "q" => {
                verbose_count = 0;
                verbosity = Some(("-q", "off"));
            }
            "v" => {
                verbose_count += 1;
                verbosity = Some(if verbose_count == 1 {
                    ("-v", "debug")
                } else {
                    ("-vv", "trace")
                });
            }
            _ => {}
        }
    }
    if let Some((arg, level)) = verbosity {
        cl.service.push(Property {
            key: "log_level".to_string(),
            value: level.to_string(),
            location: Location::CommandLine {
                arg: arg.to_string(),
            },
        });
    }
    if errors.is_empty() {
        Ok(cl)
    } else {
        Err(CliError(ConfigErrors(errors)))
    }
}

/// `(index, value)` of each occurrence of option `id` (flags get an empty value).
fn occurrences<'m>(m: &'m ArgMatches, id: &str) -> impl Iterator<Item = (usize, String)> + 'm {
    let indices = m.indices_of(id).into_iter().flatten();
    let values = m.get_many::<String>(id).into_iter().flatten().cloned();
    indices.zip(values)
}

/// The option as the user most likely wrote it: the long form when it appears in `args`.
fn shown_name(o: &Opt, args: &[OsString]) -> String {
    for long in o.long {
        let flag = format!("--{long}");
        let written = args.iter().skip(1).any(|a| {
            a.to_str()
                .is_some_and(|s| s == flag || s.starts_with(&format!("{flag}=")))
        });
        if written || o.short.is_none() {
            return flag;
        }
    }
    o.short.map(|c| format!("-{c}")).unwrap_or_default()
}

/// A clap parse error as a command-line error naming the offending argument.
fn from_clap(e: &clap::Error, args: &[OsString]) -> CliError {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    match e.kind() {
        ErrorKind::UnknownArgument if arg.starts_with('-') => CliError::one(arg, "unknown option"),
        ErrorKind::UnknownArgument => {
            let hint = stray_argument_hint(&arg, args);
            CliError::one(arg, format!("unexpected argument{hint}"))
        }
        ErrorKind::InvalidValue | ErrorKind::NoEquals => CliError::one(arg, "a value is required"),
        ErrorKind::InvalidUtf8 => CliError::one(arg, "argument is not valid UTF-8"),
        kind => CliError::one(arg, format!("invalid command line ({kind})")),
    }
}

/// Why a plain argument may be on the command line, when a likely reason shows. An unquoted
/// `-m *` reaches us as `-m file1 file2 …`: the option took the first file name and the next
/// one is left over; a lone configuration file name usually lacks its `-c`.
fn stray_argument_hint(arg: &str, args: &[OsString]) -> String {
    let is_path = |a: &OsString| std::path::Path::new(a).exists();
    let Some(i) = args
        .iter()
        .position(|a| a.to_str() == Some(arg))
        .filter(|_| is_path(&OsString::from(arg)))
    else {
        return String::new();
    };
    let takes_value = |o: &str| {
        OPTS.iter().any(|opt| {
            opt.value
                && (opt.short.is_some_and(|c| o == format!("-{c}"))
                    || opt.long.iter().any(|l| o == format!("--{l}")))
        })
    };
    let option = i
        .checked_sub(2)
        .and_then(|j| args[j].to_str())
        .filter(|o| takes_value(o) && is_path(&args[i - 1]));
    match option {
        Some(o) => format!(
            "; it looks like the shell expanded an unquoted pattern into file names: quote the pattern (e.g. {o} '*')"
        ),
        None if !args.iter().any(|a| a == "-c" || a == "--config") => {
            format!("; to read it as a configuration file, use -c {arg}")
        }
        None => String::new(),
    }
}

/// One line telling how to get the full usage (printed after command-line errors).
pub fn short_usage() -> String {
    "Usage: kinesis-bit [OPTION]\nTry 'kinesis-bit -h' for more information.\n".to_string()
}

/// The usage text printed by `-h`, without the plugin list (the caller appends it).
pub fn usage() -> String {
    const LINES: &[(&str, &str)] = &[
        (
            "-b  --storage_path=PATH",
            "specify a storage buffering path",
        ),
        (
            "-c  --config=FILE",
            "specify an optional configuration file",
        ),
        ("-D, --dry-run", "validate the configuration and exit"),
        (
            "-f, --flush=SECONDS",
            "flush timeout in seconds (default: 1)",
        ),
        ("-i, --input=INPUT", "set an input"),
        ("-F  --filter=FILTER", "set a filter"),
        (
            "-m, --match=MATCH",
            "set plugin match, same as '-p match=abc'",
        ),
        ("-o, --output=OUTPUT", "set an output"),
        ("-p, --prop=\"A=B\"", "set plugin configuration property"),
        ("-R, --parser=FILE", "specify a parser configuration file"),
        ("-l, --log_file=FILE", "write log info to a file"),
        ("-t, --tag=TAG", "set plugin tag, same as '-p tag=abc'"),
        (
            "-v, --verbose",
            "increase logging verbosity (default: info)",
        ),
        ("-w, --workdir", "set the working directory"),
        (
            "-Y, --enable-hot-reload",
            "reload the configuration on SIGHUP (Hot_Reload On)",
        ),
        ("-H, --http", "enable monitoring HTTP server"),
        ("-L, --http_listen", "set HTTP server listen address"),
        ("-P, --port", "set HTTP server TCP port (default: 2020)"),
        ("-s, --coro_stack_size", "accepted and ignored"),
        ("-q, --quiet", "quiet mode"),
        ("-V, --version", "show version number"),
        ("-h, --help", "print this help"),
    ];
    let mut out = String::from("Usage: kinesis-bit [OPTION]\n\nAvailable Options\n");
    for (opt, text) in LINES {
        // An option as wide as the column would run into its text.
        if opt.len() < 26 {
            out.push_str(&format!("  {opt:<26}{text}\n"));
        } else {
            out.push_str(&format!("  {opt}\n  {:26}{text}\n", ""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<CommandLine, CliError> {
        parse_command_line(
            std::iter::once("kinesis-bit")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn every_option_is_declared_once() {
        command().debug_assert();
    }

    #[test]
    fn a_shell_expanded_match_pattern_gets_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
        std::fs::write(&a, "").unwrap();
        std::fs::write(&b, "").unwrap();
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        let e = parse(&["-i", "cpu", "-o", "stdout", "-m", a, b])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("command line: {b}: unexpected argument; it looks like the shell expanded an unquoted pattern into file names: quote the pattern (e.g. -m '*')")
        );
        let e = parse(&["-i", "cpu", "-o", "stdout", "--match", a, b])
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("(e.g. --match '*')"), "{e}");
        let e = parse(&[a]).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("command line: {a}: unexpected argument; to read it as a configuration file, use -c {a}")
        );
        let e = parse(&["-i", "cpu", "no-such-file"])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "command line: no-such-file: unexpected argument");
    }

    #[test]
    fn usage_lists_hot_reload() {
        assert!(usage().contains(
            "  -Y, --enable-hot-reload   reload the configuration on SIGHUP (Hot_Reload On)\n"
        ));
    }

    #[test]
    fn long_form_named_in_unsupported_error() {
        let e = parse(&["--daemon"]).unwrap_err().to_string();
        assert_eq!(
            e,
            "command line: --daemon: option not supported by kinesis-bit"
        );
        let e = parse(&["-d"]).unwrap_err().to_string();
        assert_eq!(e, "command line: -d: option not supported by kinesis-bit");
    }
}
