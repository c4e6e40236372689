//! Shared by the test binaries: `kinesis_streams` settings from `-p KEY=VALUE` pairs, through
//! the key table and the output's own parser, as a configuration would reach them.

use kb_config::model::{Location, Property, Section, SectionKind};
use kb_config::schema::{validate_section, OUTPUT_GENERIC_KEYS};
use kb_kinesis::config::Settings;

/// The settings of `-m '*'` plus `props`, or every error message.
pub fn settings(props: &[(&str, &str)]) -> Result<Settings, Vec<String>> {
    let mut section = Section::new(SectionKind::Output, Location::Default);
    for (k, v) in [("match", "*")].iter().chain(props) {
        section.props.push(Property {
            key: (*k).into(),
            value: (*v).into(),
            location: Location::CommandLine {
                arg: format!("-p {k}={v}"),
            },
        });
    }
    let p = validate_section(
        &kb_kinesis::output::PLUGIN.spec,
        OUTPUT_GENERIC_KEYS,
        &section,
        "kinesis_streams.0",
    )
    .map_err(|e| e.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    kb_kinesis::config::parse(&p, false).map_err(|e| e.iter().map(|e| e.to_string()).collect())
}

/// The errors `props` give, one per line.
#[allow(dead_code)] // not every test binary checks errors
pub fn errors(props: &[(&str, &str)]) -> String {
    settings(props).expect_err("an error").join("\n")
}
