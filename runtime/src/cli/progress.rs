//! Progress on stderr while components load: a component not yet in the cache takes
//! from a fraction of a second (a small Rust app) to half a minute (a Python or
//! JavaScript app, which carries its interpreter) to compile, and a command that sits
//! silent that long looks hung.
//!
//! Nothing shows when no component is compiled (everything came from the cache, however
//! long reading it took) or when loading is quick. Past [`DELAY`] with a compilation
//! under way, a terminal gets a bar naming the files still loading; anything else (a log
//! file, a pipe, CI) gets a plain line every [`LINE_EVERY`], and a last line saying how
//! long it took, so a server's log explains a slow start.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::host::Loading;

/// How long loading may take before progress shows.
const DELAY: Duration = Duration::from_millis(500);
/// How often a plain line is written where there is no terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// The files named in a line at the most (then `+N`).
const NAMED: usize = 3;

/// Where progress goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Show {
    /// A bar on a terminal.
    Bar,
    /// Plain lines on a stream that is not a terminal.
    Lines,
}

impl Show {
    /// A bar when stderr is a terminal, else lines.
    pub(super) fn for_stderr() -> Self {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Show::Bar
        } else {
            Show::Lines
        }
    }
}

/// Whether a compilation has started since it was made.
type Compiling = Box<dyn Fn() -> bool + Send + Sync>;

/// Whether `host` has started a compilation since now.
fn compiling(host: &crate::host::Host) -> Compiling {
    let host = host.clone();
    let before = host.compilations();
    Box::new(move || host.compilations() > before)
}

/// The word for `n` components.
fn components(n: usize) -> &'static str {
    if n == 1 { "component" } else { "components" }
}

/// How far loading has got, shared with the task that shows it.
#[derive(Debug, Default)]
struct Seen {
    loaded: usize,
    total: usize,
    waiting_for: Vec<String>,
}

impl Seen {
    /// `3 of 13 components loaded; compiling defang.wasm, severity_score.wasm +2`.
    fn line(&self) -> String {
        let mut line = format!(
            "{} of {} {} loaded",
            self.loaded,
            self.total,
            components(self.total)
        );
        if !self.waiting_for.is_empty() {
            line.push_str("; compiling ");
            line.push_str(
                &self
                    .waiting_for
                    .iter()
                    .take(NAMED)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            if self.waiting_for.len() > NAMED {
                line.push_str(&format!(" +{}", self.waiting_for.len() - NAMED));
            }
        }
        line
    }
}

/// The progress of one directory's loading, from [`LoadProgress::start`] to
/// [`LoadProgress::finish`].
pub(super) struct LoadProgress {
    seen: Arc<Mutex<Seen>>,
    bar: ProgressBar,
    shown: Arc<std::sync::atomic::AtomicBool>,
    ticker: tokio::task::JoinHandle<()>,
    started: Instant,
    show: Show,
    out: Arc<Mutex<dyn Write + Send>>,
}

impl LoadProgress {
    /// Start showing the loading of the apps of `dir` by `host`, to stderr.
    pub(super) fn start(host: &crate::host::Host, dir: &Path) -> Self {
        let what = format!(
            "the apps of {}",
            super::for_terminal(&dir.display().to_string())
        );
        Self::start_to(
            what,
            compiling(host),
            Show::for_stderr(),
            DELAY,
            Arc::new(Mutex::new(std::io::stderr())),
        )
    }

    /// Start showing the loading of the component `file` by `host`, to stderr.
    pub(super) fn start_file(host: &crate::host::Host, file: &Path) -> Self {
        let what = format!("`{}`", super::for_terminal(&file.display().to_string()));
        Self::start_to(
            what,
            compiling(host),
            Show::for_stderr(),
            DELAY,
            Arc::new(Mutex::new(std::io::stderr())),
        )
    }

    /// Start showing the loading of `what` (fit for a terminal) after `delay`, once
    /// `compiling` says a compilation has started.
    fn start_to(
        what: String,
        compiling: Compiling,
        show: Show,
        delay: Duration,
        out: Arc<Mutex<dyn Write + Send>>,
    ) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(format!("loading {what}:"));
        let shown = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ticker = tokio::spawn({
            let (seen, bar, shown, out) = (
                Arc::clone(&seen),
                bar.clone(),
                Arc::clone(&shown),
                Arc::clone(&out),
            );
            async move {
                tokio::time::sleep(delay).await;
                while !compiling() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                shown.store(true, std::sync::atomic::Ordering::Relaxed);
                match show {
                    Show::Bar => {
                        bar.set_draw_target(ProgressDrawTarget::stderr());
                        bar.enable_steady_tick(Duration::from_millis(120));
                    }
                    Show::Lines => loop {
                        let line = seen.lock().unwrap_or_else(PoisonError::into_inner).line();
                        let _ = writeln!(
                            out.lock().unwrap_or_else(PoisonError::into_inner),
                            "wasp: loading {what} (components not in the cache are \
                             compiled once): {line}"
                        );
                        tokio::time::sleep(LINE_EVERY).await;
                    },
                }
            }
        });
        Self {
            seen,
            bar,
            shown,
            ticker,
            started: Instant::now(),
            show,
            out,
        }
    }

    /// Record how far loading has got.
    pub(super) fn update(&self, loading: &Loading<'_>) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.loaded = loading.loaded;
        seen.total = loading.total;
        seen.waiting_for = loading
            .waiting_for
            .iter()
            .map(|path| {
                let name = path.file_name().unwrap_or(path.as_os_str());
                super::for_terminal(&name.to_string_lossy()).into_owned()
            })
            .collect();
        if let Show::Bar = self.show {
            self.bar.set_message(seen.line());
        }
    }

    /// Stop showing progress; when it was shown, say how long loading took.
    pub(super) fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
        if self.shown.load(std::sync::atomic::Ordering::Relaxed) {
            let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = writeln!(
                out,
                "wasp: loaded {} {} in {:.1} s (compiled ones are cached for next time)",
                seen.total,
                components(seen.total),
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
                .into_owned()
        }
    }

    /// Progress in lines about "the apps of apps", shown after `delay` once `compiling`
    /// says so, and what it writes.
    fn lines(compiling: fn() -> bool, delay: Duration) -> (LoadProgress, Captured) {
        let out = Captured::default();
        let progress = LoadProgress::start_to(
            "the apps of apps".to_owned(),
            Box::new(compiling),
            Show::Lines,
            delay,
            Arc::new(Mutex::new(out.clone())),
        );
        (progress, out)
    }

    fn loading<'a>(loaded: usize, total: usize, waiting_for: &'a [PathBuf]) -> Loading<'a> {
        Loading {
            loaded,
            total,
            waiting_for: waiting_for.iter().map(PathBuf::as_path).collect(),
        }
    }

    #[tokio::test]
    async fn slow_loading_is_told_in_lines_naming_what_still_compiles_and_how_long_it_took() {
        let (progress, out) = lines(|| true, Duration::from_millis(20));
        let waiting: Vec<PathBuf> = ["a\x1b.wasm", "b.wasm", "c.wasm", "d.wasm", "e.wasm"]
            .iter()
            .map(|name| PathBuf::from("apps").join(name))
            .collect();
        progress.update(&loading(8, 13, &waiting));
        tokio::time::sleep(Duration::from_millis(200)).await;
        progress.update(&loading(13, 13, &[]));
        progress.finish();
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(
            lines[0],
            "wasp: loading the apps of apps (components not in the cache are compiled once): \
             8 of 13 components loaded; compiling a\\x1b.wasm, b.wasm, c.wasm +2"
        );
        assert!(
            lines[1].starts_with("wasp: loaded 13 components in 0."),
            "{text}"
        );
    }

    #[tokio::test]
    async fn slow_loading_from_the_cache_shows_nothing() {
        let (progress, out) = lines(|| false, Duration::from_millis(1));
        progress.update(&loading(0, 1, &[PathBuf::from("apps/a.wasm")]));
        tokio::time::sleep(Duration::from_millis(300)).await;
        progress.finish();
        assert_eq!(out.text(), "");
    }

    #[tokio::test]
    async fn quick_loading_shows_nothing() {
        let (progress, out) = lines(|| true, Duration::from_secs(60));
        progress.update(&loading(1, 1, &[]));
        progress.finish();
        assert_eq!(out.text(), "");
    }
}
