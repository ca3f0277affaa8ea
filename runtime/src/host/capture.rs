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
    /// A whole line: its message and every field, each field counted with
    /// [`FIELD_OVERHEAD`].
    pub(crate) line_bytes: usize,
    pub(crate) fields: usize,
    pub(crate) value_bytes: usize,
}

/// What one kept field costs the host beyond its text: the two `String`s that hold
/// its name and value. Counted so that empty fields are not free: a million of them
/// cost ~48 MB while their text is 0 bytes.
pub(crate) const FIELD_OVERHEAD: usize = 2 * size_of::<String>();

/// Bytes kept of a field's name: a name, not a payload.
pub(crate) const MAX_FIELD_NAME_BYTES: usize = 256;

/// The marker that ends a cut message or field value.
const CUT: &str = " …[truncated]";

/// The log lines of one step run, capped in count and total bytes; one line (its
/// message and fields) is also capped in length, in fields and in bytes per field.
/// Lines below the step's level are neither kept nor counted.
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
        let full = self.lines.len() >= self.caps.lines || self.bytes >= self.caps.bytes;
        if full && !host {
            // Nothing of this line can be kept: do not spend time masking it.
            self.dropped_lines += 1;
            return;
        }
        // Fields past the per-line count are dropped before anything is done with
        // them; the rest are masked before they are cut, so that a cut never leaves
        // the start of a secret behind.
        let mut cut = false;
        let dropped_fields = fields.len().saturating_sub(self.caps.fields);
        fields.truncate(self.caps.fields);
        if !self.redactor.is_empty() {
            message = self.redactor.text(&message);
            for (key, value) in &mut fields {
                *key = self.redactor.text(key);
                *value = self.redactor.text(value);
            }
        }
        if truncate_utf8(&mut message, self.caps.line_bytes) {
            message.push_str(CUT);
            cut = true;
        }
        let mut size = message.len();
        let mut kept = 0;
        for (key, value) in &mut fields {
            if truncate_utf8(key, MAX_FIELD_NAME_BYTES) {
                key.push_str(CUT);
                cut = true;
            }
            if truncate_utf8(value, self.caps.value_bytes) {
                value.push_str(CUT);
                cut = true;
            }
            let field = key.len() + value.len() + FIELD_OVERHEAD;
            if size + field > self.caps.line_bytes {
                break;
            }
            size += field;
            kept += 1;
        }
        let dropped_fields = dropped_fields + (fields.len() - kept);
        fields.truncate(kept);
        if dropped_fields > 0 {
            // Say on the line itself what it lost; the note is the host's, not counted.
            fields.push(("wasp.fields_dropped".to_owned(), dropped_fields.to_string()));
            cut = true;
        }
        let full = self.bytes + size > self.caps.bytes;
        if full && !host {
            self.dropped_lines += 1;
            return;
        }
        if cut {
            self.truncated_lines += 1;
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
            fields: 8,
            value_bytes: 64,
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
            line_bytes: 128,
            fields: 8,
            value_bytes: 12,
        };
        let redactor = Arc::new(Redactor::new(["hunter2-secret".to_owned()]));
        let mut sink = LogSink::new(LogLevel::Info, caps, redactor);
        sink.push(
            LogLevel::Info,
            "key hunter2-secret".into(),
            vec![("k".into(), "xxxxxxxxxx hunter2-secret".into())],
        );
        assert_eq!(sink.lines[0].message, "key ***");
        assert_eq!(
            sink.lines[0].fields,
            [("k".to_owned(), "xxxxxxxxxx * …[truncated]".to_owned())]
        );
    }

    #[test]
    fn log_fields_count_against_the_caps_and_cuts_are_stated() {
        let caps = LogCaps {
            lines: 100,
            bytes: 1000,
            line_bytes: 200,
            fields: 4,
            value_bytes: 10,
        };
        let mut sink = LogSink::new(LogLevel::Info, caps, Arc::default());
        // Six empty fields: two past the count cap, and the four kept are not free.
        let empty = vec![(String::new(), String::new()); 6];
        sink.push(LogLevel::Info, "m".into(), empty);
        assert_eq!(sink.lines[0].fields.len(), 5);
        assert_eq!(
            sink.lines[0].fields[4],
            ("wasp.fields_dropped".to_owned(), "2".to_owned())
        );
        assert_eq!(sink.bytes, 1 + 4 * FIELD_OVERHEAD);
        // A long value is cut to its cap; fields past the line's bytes are dropped.
        let long = vec![("k".to_owned(), "v".repeat(1000)); 4];
        sink.push(LogLevel::Info, "m".into(), long);
        let line = &sink.lines[1];
        assert_eq!(line.fields[0].1, format!("{} …[truncated]", "v".repeat(10)));
        let kept = (200 - 1) / (1 + 10 + " …[truncated]".len() + FIELD_OVERHEAD);
        assert_eq!(line.fields.len(), kept + 1);
        assert_eq!(
            line.fields[kept],
            ("wasp.fields_dropped".to_owned(), (4 - kept).to_string())
        );
        assert_eq!(sink.truncated_lines, 2);
        // Once the total is spent, lines are dropped and counted.
        for _ in 0..10 {
            sink.push(
                LogLevel::Info,
                "m".into(),
                vec![(String::new(), "v".repeat(9)); 4],
            );
        }
        assert!(sink.bytes <= 1000, "{}", sink.bytes);
        assert!(sink.dropped_lines > 0);
    }
}
