//! One `forward` input's connections: the accept loop and the per-connection protocol loop
//! (handshake, framing, appending, acks, limits and backpressure).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kb_core::input::InputContext;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::task::JoinSet;

use super::auth::Security;
use super::proto::{self, FrameScanner};
use super::Listener;
use crate::util::{self, Throttle};

/// What every connection of one input shares.
pub(super) struct Conns {
    pub(super) ctx: InputContext,
    pub(super) tag_prefix: String,
    pub(super) fixed_tag: Option<String>,
    pub(super) chunk_size: usize,
    pub(super) max_size: usize,
    pub(super) security: Option<Security>,
    pub(super) warn: Mutex<Throttle>,
}

impl Conns {
    fn warn(&self, peer: &str, reason: &str) {
        let allowed = self.warn.lock().unwrap_or_else(|e| e.into_inner()).allow();
        if let Some(n) = allowed {
            tracing::warn!(
                "closing connection from {peer}: {reason}{}",
                util::suppressed_note(n)
            );
        }
    }

    fn tag(&self, tag: &[u8]) -> String {
        if let Some(t) = &self.fixed_tag {
            return t.clone();
        }
        let tag = String::from_utf8_lossy(tag);
        if tag.is_empty() {
            return format!("{}{}", self.tag_prefix, self.ctx.tag());
        }
        format!("{}{tag}", self.tag_prefix)
    }

    /// Serve one connection until it ends; `Err` carries why it was closed.
    async fn serve<S>(&self, mut s: S) -> Result<(), String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let io = |e: std::io::Error| format!("connection error: {e}");
        let mut pending_auth = match &self.security {
            Some(sec) => {
                let (hs, helo) = sec.helo()?;
                s.write_all(&helo).await.map_err(io)?;
                Some(hs)
            }
            None => None,
        };
        let max_decompressed = self.max_size;
        let mut buf: Vec<u8> = Vec::new();
        let mut scanner = FrameScanner::new();
        let mut events = Vec::new();
        let mut reply = Vec::new();
        loop {
            let mut start = 0;
            loop {
                let rest = buf.get(start..).unwrap_or_default();
                let len = match scanner.scan(rest) {
                    Ok(Some(len)) => len,
                    Ok(None) => break,
                    Err(e) => return Err(format!("malformed frame: {e}")),
                };
                if len > self.max_size {
                    return Err(format!(
                        "frame of {len} bytes exceeds buffer_max_size ({})",
                        self.max_size
                    ));
                }
                let frame = rest.get(..len).unwrap_or_default();
                start += len;
                reply.clear();
                if let Some(hs) = &pending_auth {
                    let sec = self.security.as_ref().ok_or("no security")?;
                    let ping = proto::parse_ping(frame).map_err(|e| e.to_string());
                    let result = ping.and_then(|p| {
                        sec.check(hs, &p).map_err(|(r, pong)| {
                            reply = pong;
                            r
                        })
                    });
                    match result {
                        Ok(pong) => {
                            s.write_all(&pong).await.map_err(io)?;
                            pending_auth = None;
                        }
                        Err(reason) => {
                            if !reply.is_empty() {
                                let _ = s.write_all(&reply).await;
                                let _ = s.flush().await;
                            }
                            return Err(format!("authentication failed: {reason}"));
                        }
                    }
                    continue;
                }
                events.clear();
                let d = proto::decode_frame(frame, max_decompressed, &mut events)
                    .map_err(|e| format!("invalid frame: {e}"))?;
                let tag = self.tag(d.tag);
                self.ctx.append_tagged(&tag, &events, d.events);
                if let Some(chunk) = d.chunk {
                    let _ = rmp::encode::write_map_len(&mut reply, 1);
                    let _ = rmp::encode::write_str(&mut reply, "ack");
                    let _ = rmp::encode::write_str_len(&mut reply, chunk.len() as u32);
                    reply.extend_from_slice(chunk);
                    s.write_all(&reply).await.map_err(io)?;
                }
            }
            buf.drain(..start);
            if events.capacity() > self.chunk_size {
                events = Vec::new();
            }
            if scanner.scanned() > self.max_size || buf.len() > self.max_size {
                return Err(format!(
                    "frame exceeds buffer_max_size ({} bytes)",
                    self.max_size
                ));
            }
            if buf.is_empty() && buf.capacity() > self.chunk_size {
                buf = Vec::new();
            }
            // Backpressure: a paused input reads none of its sockets.
            self.ctx.ready().await;
            if self.ctx.is_stopping() {
                return Ok(());
            }
            let room = self.max_size.saturating_add(1).saturating_sub(buf.len());
            let want = self.chunk_size.min(room).max(1);
            buf.reserve(want);
            let n = (&mut s)
                .take(want as u64)
                .read_buf(&mut buf)
                .await
                .map_err(io)?;
            if n == 0 {
                if !buf.is_empty() {
                    return Err(format!(
                        "connection closed in the middle of a frame ({} bytes dropped)",
                        buf.len()
                    ));
                }
                return Ok(());
            }
        }
    }
}

/// A connection just accepted and its peer's name.
enum Accepted {
    Tcp(TcpStream, String),
    Unix(UnixStream, String),
}

impl Listener {
    pub(super) async fn run(self, conns: Arc<Conns>) {
        let ctx = conns.ctx.clone();
        let mut tasks = JoinSet::new();
        loop {
            ctx.ready().await;
            let accepted = tokio::select! {
                _ = ctx.stopped() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                r = self.accept() => r,
            };
            match accepted {
                Ok(Accepted::Tcp(s, peer)) => {
                    tasks.spawn(connection(conns.clone(), s, peer));
                }
                Ok(Accepted::Unix(s, peer)) => {
                    tasks.spawn(connection(conns.clone(), s, peer));
                }
                Err(e) => {
                    // Out of descriptors and the like: wait a little instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::select! {
                        _ = ctx.stopped() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
        // Connections see the stop themselves.
        while tasks.join_next().await.is_some() {}
        if let Listener::Unix(_, path) = &self {
            let _ = std::fs::remove_file(path);
        }
    }

    async fn accept(&self) -> std::io::Result<Accepted> {
        Ok(match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Accepted::Tcp(s, peer.to_string())
            }
            Listener::Unix(l, path) => {
                let (s, _) = l.accept().await?;
                Accepted::Unix(s, format!("unix://{}", path.display()))
            }
        })
    }
}

async fn connection<S>(conns: Arc<Conns>, s: S, peer: String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    tracing::debug!("new connection from {peer}");
    let ctx = conns.ctx.clone();
    tokio::select! {
        _ = ctx.stopped() => {}
        r = conns.serve(s) => if let Err(reason) = r {
            conns.warn(&peer, &reason);
        }
    }
}
