//! Bounded capture of what a guest writes: stdout/stderr and log lines.
//!
//! A guest that floods its output must neither exhaust host memory nor be trapped for
//! it (wasmtime's `MemoryOutputPipe` refuses writes once full, which fails the guest's
//! write). These sinks keep the first bytes up to a cap, count the rest, and always
//! accept the write: the flood costs the guest its CPU deadline, not the host its
//! memory, and the record says how much was dropped.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::trace::{LogLevel, LogLine, Redactor, truncate_utf8};

#[derive(Debug, Default)]
struct Buffer {
    kept: Vec<u8>,
    dropped: u64,
}

/// A stdout or stderr sink that keeps at most `cap` bytes. Cloning shares the buffer.
#[derive(Debug, Clone)]
pub(crate) struct BoundedPipe {
    cap: usize,
    buffer: Arc<Mutex<Buffer>>,
}

impl BoundedPipe {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            buffer: Arc::default(),
        }
    }

    // A std Mutex, not a Tokio one: nothing awaits while it is held, and a poisoned
    // buffer (a panic mid-append) still holds valid bytes.
    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, bytes: &[u8]) {
        let mut buffer = self.lock();
        let room = self.cap.saturating_sub(buffer.kept.len());
        let kept = bytes.len().min(room);
        buffer.kept.extend_from_slice(&bytes[..kept]);
        buffer.dropped += (bytes.len() - kept) as u64;
    }

    /// What was kept, as text (invalid UTF-8 replaced), and how many bytes were
    /// dropped.
    pub(crate) fn take(&self) -> (String, u64) {
        let mut buffer = self.lock();
        let kept = std::mem::take(&mut buffer.kept);
        (String::from_utf8_lossy(&kept).into_owned(), buffer.dropped)
    }
}

impl IsTerminal for BoundedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for BoundedPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for BoundedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready, and for large writes: the cap is applied in `write`.
        Ok(1 << 20)
    }
}

impl AsyncWrite for BoundedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The caps on what the `log` import records for one step run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogCaps {
    pub(crate) lines: usize,
    pub(crate) bytes: usize,
    pub(crate) line_bytes: usize,
}

/// The log lines of one step run, capped in count and total bytes; one line is also
/// capped in length. Lines below the step's level are neither kept nor counted.
#[derive(Debug)]
pub(crate) struct LogSink {
    level: LogLevel,
    caps: LogCaps,
    /// Masks the step's secrets in every line before it is cut to its cap, so that a
    /// cut never leaves the start of a secret behind.
    redactor: Arc<Redactor>,
    bytes: usize,
    pub(crate) lines: Vec<LogLine>,
    pub(crate) dropped_lines: u64,
    pub(crate) truncated_lines: u64,
}

impl LogSink {
    pub(crate) fn new(level: LogLevel, caps: LogCaps, redactor: Arc<Redactor>) -> Self {
        Self {
            level,
            caps,
            redactor,
            bytes: 0,
            lines: Vec::new(),
            dropped_lines: 0,
            truncated_lines: 0,
        }
    }

    pub(crate) fn enabled(&self, level: LogLevel) -> bool {
        level >= self.level
    }

    pub(crate) fn push(&mut self, level: LogLevel, message: String, fields: Vec<(String, String)>) {
        let ts = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
        self.push_line(ts, level, message, fields, false);
    }

    /// Record one of the host's own lines about the step (an HTTP request), stamped
    /// `ts` when it happened. These are few (bounded by the host) and are kept even when
    /// the app filled the caps with its own lines: an app cannot push them out.
    pub(crate) fn push_host(
        &mut self,
        ts: String,
        level: LogLevel,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        self.push_line(ts, level, message, fields, true);
    }

    fn push_line(
        &mut self,
        ts: String,
        level: LogLevel,
        mut message: String,
        mut fields: Vec<(String, String)>,
        host: bool,
    ) {
        if !self.enabled(level) {
            return;
        }
        if !self.redactor.is_empty() {
            message = self.redactor.text(&message);
            for (key, value) in &mut fields {
                *key = self.redactor.text(key);
                *value = self.redactor.text(value);
            }
        }
        if truncate_utf8(&mut message, self.caps.line_bytes) {
            message.push_str(" …[truncated]");
            self.truncated_lines += 1;
        }
        let size = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        let full = self.lines.len() >= self.caps.lines || self.bytes + size > self.caps.bytes;
        if full && !host {
            self.dropped_lines += 1;
            return;
        }
        self.bytes += size;
        self.lines.push(LogLine {
            ts,
            level,
            message,
            fields,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_keeps_the_head_and_counts_the_rest() {
        let pipe = BoundedPipe::new(4);
        pipe.append(b"abc");
        pipe.append(b"defg");
        assert_eq!(pipe.take(), ("abcd".to_owned(), 3));
    }

    #[test]
    fn log_sink_filters_by_level_and_caps_lines() {
        let caps = LogCaps {
            lines: 2,
            bytes: 1024,
            line_bytes: 5,
        };
        let mut sink = LogSink::new(LogLevel::Info, caps, Arc::default());
        sink.push(LogLevel::Debug, "hidden".into(), vec![]);
        sink.push(LogLevel::Info, "one".into(), vec![]);
        sink.push(LogLevel::Error, "a long line".into(), vec![]);
        sink.push(LogLevel::Warn, "three".into(), vec![]);
        let messages: Vec<&str> = sink.lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["one", "a lon …[truncated]"]);
        assert_eq!((sink.dropped_lines, sink.truncated_lines), (1, 1));
    }

    #[test]
    fn log_sink_masks_secrets_before_cutting_a_line() {
        let caps = LogCaps {
            lines: 10,
            bytes: 1024,
            line_bytes: 12,
        };
        let redactor = Arc::new(Redactor::new(["hunter2-secret".to_owned()]));
        let mut sink = LogSink::new(LogLevel::Info, caps, redactor);
        sink.push(
            LogLevel::Info,
            "key hunter2-secret".into(),
            vec![("k".into(), "hunter2-secret".into())],
        );
        assert_eq!(sink.lines[0].message, "key ***");
        assert_eq!(sink.lines[0].fields, [("k".to_owned(), "***".to_owned())]);
    }
}
