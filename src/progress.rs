//! Progress bars for long work (training steps, documents, windows), one style for all.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` items named `unit` (`steps`, `docs`, `windows`) with `message` on its left;
/// hidden when `show` is false (indicatif also hides it when stderr is not a terminal).
pub fn bar(show: bool, len: u64, unit: &str, message: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let template = format!("{{msg:>30}} [{{bar:30}}] {{pos}}/{{len}} {unit} · {{per_sec}} · eta {{eta}}");
    bar.set_style(ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "));
    bar.set_message(message.to_string());
    bar
}
