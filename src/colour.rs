//! Colour on terminals only, and never when `NO_COLOR` is set (https://no-color.org).

use std::io::IsTerminal;

/// Whether stderr gets ANSI colours.
pub fn stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `text` in red when stderr takes colours.
pub fn red(text: &str) -> String {
    if stderr() {
        format!("\x1b[31m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}
