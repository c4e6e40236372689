//! Variable substitution in configuration values: `${VAR}` and `${VAR:-default}`.
//!
//! Variables defined by the configuration itself (`@SET`, YAML `env`) win over the process
//! environment, as in Fluent Bit (`src/flb_env.c`). `${HOSTNAME}` is predefined from the kernel's
//! host name so it works even where the shell does not export `HOSTNAME`.

use std::collections::HashMap;
use std::fmt;

use crate::model::{ConfigWarning, Location, PipelineConfig, UnsetVariable};

/// How a variable that the configuration did not define is looked up (normally the process
/// environment; injectable so tests do not depend on it).
pub type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The variables visible to a configuration.
pub struct Env {
    /// `@SET` / YAML `env` variables plus the predefined `HOSTNAME`.
    vars: HashMap<String, String>,
    lookup: Lookup,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env").field("vars", &self.vars).finish()
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

impl Env {
    /// Variables backed by the process environment.
    pub fn new() -> Self {
        Env::with_lookup(Box::new(|name| std::env::var(name).ok()))
    }

    /// Variables backed by `lookup` instead of the process environment.
    pub fn with_lookup(lookup: Lookup) -> Self {
        let mut vars = HashMap::new();
        if let Some(h) = hostname() {
            vars.insert("HOSTNAME".to_string(), h);
        }
        Env { vars, lookup }
    }

    /// Variables backed by a fixed snapshot instead of the process environment.
    pub fn from_map(map: HashMap<String, String>) -> Self {
        Env::with_lookup(Box::new(move |name| map.get(name).cloned()))
    }

    /// Define a variable (`@SET`, YAML `env`); it wins over the process environment.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }

    /// The value of a variable: configuration-defined first, then the process environment.
    pub fn get(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned().or_else(|| (self.lookup)(name))
    }

    /// Replace every `${VAR}` / `${VAR:-default}` in `value`. A default applies when the variable
    /// is unset or empty; an unset variable without default becomes the empty string, a
    /// warning at `location` and an entry in `unset`. Substitution is one pass: substituted text
    /// is not scanned again, and a `${` without closing `}` is kept literally.
    pub fn substitute(
        &self,
        value: &str,
        location: &Location,
        warnings: &mut Vec<ConfigWarning>,
        unset: &mut Vec<UnsetVariable>,
    ) -> String {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                // Unterminated reference: Fluent Bit copies it as is.
                out.push_str(&rest[start..]);
                return out;
            };
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            match (self.get(name), default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    warnings.push(ConfigWarning {
                        location: location.clone(),
                        message: format!("[env] variable ${{{name}}} is used but not set"),
                    });
                    unset.push(UnsetVariable {
                        location: location.clone(),
                        name: name.to_string(),
                    });
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Substitute variables in every property value of `cfg`: warnings go to `cfg.warnings`,
    /// the unset variables to the section they were used in (`service_unset_variables` for the
    /// service), so an error about an emptied value can say why it is empty.
    pub fn substitute_config(&self, cfg: &mut PipelineConfig) {
        let mut warnings = Vec::new();
        for p in cfg.service.iter_mut() {
            if p.value.contains("${") {
                p.value = self.substitute(
                    &p.value,
                    &p.location,
                    &mut warnings,
                    &mut cfg.service_unset_variables,
                );
            }
        }
        for s in cfg.sections_mut() {
            for p in s.props.iter_mut() {
                if p.value.contains("${") {
                    p.value = self.substitute(
                        &p.value,
                        &p.location,
                        &mut warnings,
                        &mut s.unset_variables,
                    );
                }
            }
        }
        cfg.warnings.extend(warnings);
    }
}

/// The machine's host name, read without libc: the kernel's value, else `/etc/hostname`.
fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        let mut m = HashMap::new();
        m.insert("HOME".to_string(), "/home/x".to_string());
        m.insert("EMPTY".to_string(), String::new());
        m.insert("SHADOWED".to_string(), "process".to_string());
        let mut e = Env::from_map(m);
        e.set("SHADOWED", "set");
        e
    }

    fn sub(e: &Env, v: &str) -> (String, Vec<ConfigWarning>) {
        let mut w = Vec::new();
        let s = e.substitute(v, &Location::classic("a.conf", 3), &mut w, &mut Vec::new());
        (s, w)
    }

    #[test]
    fn plain_and_default() {
        let e = env();
        assert_eq!(sub(&e, "${HOME}/log").0, "/home/x/log");
        assert_eq!(sub(&e, "${NOPE:-dflt}").0, "dflt");
        assert_eq!(sub(&e, "${EMPTY:-dflt}").0, "dflt");
        assert_eq!(sub(&e, "${HOME:-dflt}").0, "/home/x");
        assert_eq!(sub(&e, "${EMPTY}").0, "");
        assert!(sub(&e, "${EMPTY}").1.is_empty());
    }

    #[test]
    fn set_wins_over_process() {
        assert_eq!(sub(&env(), "${SHADOWED}").0, "set");
    }

    #[test]
    fn unset_warns_with_location() {
        let (s, w) = sub(&env(), "a${NOPE}b");
        assert_eq!(s, "ab");
        assert_eq!(
            w[0].to_string(),
            "a.conf:3: [env] variable ${NOPE} is used but not set"
        );
    }

    #[test]
    fn one_pass_and_unterminated() {
        let mut e = env();
        e.set("A", "${HOME}");
        assert_eq!(sub(&e, "${A}").0, "${HOME}");
        assert_eq!(sub(&e, "x ${HOME").0, "x ${HOME");
        assert_eq!(sub(&e, "$HOME {x}").0, "$HOME {x}");
    }

    #[test]
    fn hostname_is_predefined() {
        let e = Env::from_map(HashMap::new());
        if hostname().is_some() {
            assert!(e.get("HOSTNAME").is_some());
        }
    }
}
