//! indicatif bars for [`Reporter`], on a terminal only.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Reporter, Silent};

pub(crate) struct Bars {
    bar: Mutex<Option<ProgressBar>>,
}

impl Reporter for Bars {
    fn start(&self, stage: &str, total: u64, bytes: bool) {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let template = if bytes {
            "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}"
        } else {
            "{prefix:>10} [{bar:30}] {pos}/{len}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(stage.to_owned());
        if let Some(old) = self.bar.lock().expect("not poisoned").replace(bar) {
            old.finish_and_clear();
        }
    }
    fn advance(&self, n: u64) {
        if let Some(b) = self.bar.lock().expect("not poisoned").as_ref() {
            b.inc(n);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.bar.lock().expect("not poisoned").take() {
            b.finish_and_clear();
        }
    }
}

/// Whether progress is shown: on an interactive terminal, not in CI, not with `--quiet`.
pub(crate) fn interactive(quiet: bool) -> bool {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    !quiet && !ci && std::io::stderr().is_terminal()
}

/// Bars on an interactive terminal; silence on a pipe, in CI, or with `--quiet`.
pub(crate) fn reporter(quiet: bool) -> std::sync::Arc<dyn Reporter> {
    if !interactive(quiet) {
        std::sync::Arc::new(Silent)
    } else {
        std::sync::Arc::new(Bars {
            bar: Mutex::new(None),
        })
    }
}

/// A spinner with a message on an interactive terminal; `None` elsewhere.
pub(crate) fn spinner(quiet: bool, message: &str) -> Option<indicatif::ProgressBar> {
    interactive(quiet).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_message(message.to_owned());
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    })
}
