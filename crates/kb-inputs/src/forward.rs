//! `forward`: receives the Fluent Forward Protocol v1 over TCP or a Unix socket (Fluent Bit's
//! `in_forward`, Fluentd's `in_forward`), as sent by Fluentd, Fluent Bit's `forward` output,
//! fluent-logger libraries and Docker's `fluentd` log driver.
//!
//! Every mode is accepted (Message, Forward, PackedForward, CompressedPackedForward; see
//! [`proto`]); events keep their timestamps (EventTime to the nanosecond) and, for v2 entries,
//! their metadata. Records go out under the frame's tag, prefixed with `tag_prefix`. A frame
//! with the `chunk` option is acknowledged with `{"ack": chunk}` once its events were appended
//! to the engine. With `shared_key` (or `empty_shared_key`) every connection must pass the
//! secure-forward handshake first ([`auth`]), optionally with `security.users`.
//!
//! Each connection reads at most `buffer_chunk_size` bytes at a time and holds at most
//! `buffer_max_size` bytes of an unfinished frame. A malformed or oversized frame, or a failed
//! handshake, closes that connection only, with a warning (at most one a minute, counting the
//! others). While the input is paused (`Mem_Buf_Limit`), no socket is read.
//!
//! Tags: `tag_prefix` + the frame's tag; without `tag_prefix`, a `Tag` set on the input
//! replaces the frames' tags (as in Fluent Bit). Compressed entries may decompress to at most
//! `buffer_max_size` bytes.
//!
//! Differences from Fluent Bit: a non-map record or metadata makes the whole frame invalid
//! (the connection is closed, nothing of it is appended, where Fluent Bit keeps the entries
//! before it); Message mode also accepts float times; the handshake's `HELO` sends an empty
//! `auth` salt when no `security.users` are configured (as the protocol specification says);
//! TLS and the metrics and traces signals (`fluent_signal`) are not supported.

pub mod auth;
mod conn;
pub mod proto;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kb_config::{ConfigError, KeySpec, KeyType, PluginSpec, Props, SectionKind};
use kb_core::input::InputContext;
use kb_core::plugin::{Input, PluginError};
use kb_core::registry::{InputPlugin, ServiceContext};
use tokio::net::{TcpListener, UnixListener};

use crate::util::{self, Throttle};
use auth::Security;
use conn::Conns;

/// Fluent Bit's default `buffer_chunk_size`.
pub const DEFAULT_CHUNK_SIZE: usize = 1_024_000;
/// Fluent Bit's default `buffer_max_size`.
pub const DEFAULT_MAX_SIZE: usize = 6_144_000;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "listen",
        KeyType::Str,
        Some("0.0.0.0"),
        "address to listen on",
    ),
    KeySpec::new("port", KeyType::Int, Some("24224"), "TCP port to listen on"),
    KeySpec::new(
        "unix_path",
        KeyType::Str,
        None,
        "listen on this Unix socket instead of TCP",
    ),
    KeySpec::new(
        "unix_perm",
        KeyType::Str,
        None,
        "permissions of the Unix socket (octal, e.g. 0644)",
    ),
    KeySpec::new(
        "tag_prefix",
        KeyType::Str,
        None,
        "prefix incoming tags with this value",
    ),
    KeySpec::new(
        "buffer_chunk_size",
        KeyType::Size,
        Some("1024000"),
        "bytes read from a connection at a time",
    ),
    KeySpec::new(
        "buffer_max_size",
        KeyType::Size,
        Some("6144000"),
        "largest frame accepted; larger ones close the connection",
    ),
    KeySpec::new(
        "shared_key",
        KeyType::Str,
        None,
        "shared key for secure forward authentication",
    ),
    KeySpec::new(
        "empty_shared_key",
        KeyType::Bool,
        Some("false"),
        "use an empty string as the shared key",
    ),
    KeySpec::new(
        "self_hostname",
        KeyType::Str,
        Some("localhost"),
        "hostname sent in the secure forward handshake",
    ),
    KeySpec::new(
        "storage.pause_on_chunks_overlimit",
        KeyType::Bool,
        Some("off"),
        "with storage.type filesystem, stop reading while chunks wait on disk (storage.max_chunks_up reached)",
    ),
    KeySpec {
        multiple: true,
        ..KeySpec::new(
            "security.users",
            KeyType::Str,
            None,
            "'username password' pair accepted by the handshake (repeatable)",
        )
    },
];

/// The `forward` input plugin.
pub const PLUGIN: InputPlugin = InputPlugin {
    spec: PluginSpec {
        kind: SectionKind::Input,
        name: "forward",
        description: "Fluentd in-forward",
        keys: KEYS,
    },
    build,
};

fn build(props: &Props, _: &ServiceContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    Ok(Box::new(ForwardInput::from_props(props)?))
}

/// Where the input listens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    Tcp(String, u16),
    Unix(PathBuf, Option<u32>),
}

/// A configured `forward` input (nothing is bound before it runs).
#[derive(Debug, Clone)]
pub struct ForwardInput {
    address: Address,
    tag_prefix: String,
    /// The input's `Tag`, which replaces the frames' tags when `tag_prefix` is not set.
    fixed_tag: Option<String>,
    chunk_size: usize,
    max_size: usize,
    security: Option<Security>,
    /// `storage.pause_on_chunks_overlimit`.
    pause_on_overlimit: bool,
}

impl ForwardInput {
    /// Validate the properties of a `forward` section.
    pub fn from_props(props: &Props) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let port = util::port(props, 24224, &mut errors);
        let listen = props.str("listen").unwrap_or("0.0.0.0").trim().to_string();
        let perm = match props.str("unix_perm") {
            None => None,
            Some(s) => match u32::from_str_radix(s.trim(), 8) {
                Ok(p) if p <= 0o7777 => Some(p),
                _ => {
                    errors.push(props.error(
                        "unix_perm",
                        format!("'unix_perm' must be an octal mode such as 0644, got '{s}'"),
                    ));
                    None
                }
            },
        };
        let address = match props.str("unix_path") {
            Some(p) => Address::Unix(PathBuf::from(p), perm),
            None => Address::Tcp(listen, port),
        };
        let chunk_size = util::size(props, "buffer_chunk_size", DEFAULT_CHUNK_SIZE, &mut errors);
        let max_size = util::size(props, "buffer_max_size", DEFAULT_MAX_SIZE, &mut errors);
        if chunk_size == 0 {
            errors.push(props.error("buffer_chunk_size", "'buffer_chunk_size' must be > 0"));
        }
        if max_size < chunk_size {
            errors.push(props.error(
                "buffer_max_size",
                format!(
                    "'buffer_max_size' ({max_size}) must be at least 'buffer_chunk_size' \
                     ({chunk_size})"
                ),
            ));
        }
        let empty_key = props.bool("empty_shared_key").unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let shared_key = match (empty_key, props.str("shared_key")) {
            (Some(true), _) => Some(String::new()),
            (_, k) => k.map(str::to_string),
        };
        let mut users = Vec::new();
        for p in props.get_all("security.users") {
            let mut words = p.value.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(u), Some(pw), None) => users.push((u.to_string(), pw.to_string())),
                _ => errors.push(props.error(
                    "security.users",
                    "'security.users' must be 'username password'",
                )),
            }
        }
        if !users.is_empty() && shared_key.is_none() {
            errors.push(props.error(
                "security.users",
                "'security.users' needs 'shared_key' (or 'empty_shared_key on')",
            ));
        }
        let security = shared_key.map(|shared_key| Security {
            shared_key,
            self_hostname: props
                .str("self_hostname")
                .unwrap_or("localhost")
                .to_string(),
            users,
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        let tag_prefix = props.str("tag_prefix").unwrap_or_default();
        let pause_on_overlimit = props
            .bool("storage.pause_on_chunks_overlimit")
            .unwrap_or_else(|e| {
                errors.push(e);
                None
            })
            .unwrap_or(false);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ForwardInput {
            address,
            tag_prefix: tag_prefix.to_string(),
            fixed_tag: match tag_prefix {
                "" => props.str("tag").map(str::to_string),
                _ => None,
            },
            chunk_size,
            max_size,
            security,
            pause_on_overlimit,
        })
    }

    /// Bind the configured address (the input does this when it starts).
    pub async fn listen(&self) -> Result<Listener, PluginError> {
        match &self.address {
            Address::Tcp(host, port) => {
                Ok(Listener::Tcp(crate::util::bind_tcp(host, *port).await?))
            }
            Address::Unix(path, perm) => {
                let err = |e: std::io::Error| {
                    PluginError::new(format!(
                        "could not listen on unix://{}: {e}",
                        path.display()
                    ))
                };
                // A socket left by a previous run is replaced; any other file is an error.
                if let Ok(m) = std::fs::symlink_metadata(path) {
                    use std::os::unix::fs::FileTypeExt;
                    if m.file_type().is_socket() {
                        std::fs::remove_file(path).map_err(err)?;
                    }
                }
                let l = UnixListener::bind(path).map_err(err)?;
                if let Some(mode) = perm {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
                        .map_err(err)?;
                }
                tracing::info!("listening on unix://{}", path.display());
                Ok(Listener::Unix(l, path.clone()))
            }
        }
    }
}

/// A bound listening socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    /// The listener and its path (removed when the input stops).
    Unix(UnixListener, PathBuf),
}

#[async_trait]
impl Input for ForwardInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), PluginError> {
        let listener = self.listen().await?;
        let ForwardInput {
            tag_prefix,
            fixed_tag,
            chunk_size,
            max_size,
            security,
            pause_on_overlimit,
            ..
        } = *self;
        ctx.pause_on_chunks_overlimit(pause_on_overlimit);
        let conns = Arc::new(Conns {
            ctx,
            tag_prefix,
            fixed_tag,
            chunk_size,
            max_size,
            security,
            warn: Mutex::new(Throttle::per_minute()),
        });
        listener.run(conns).await;
        Ok(())
    }
}
