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

/// Writes one line to stderr and ignores a failure: a closed stderr or a broken pipe (a log
/// forwarder that died, `2> >(head -c 100)`) must never panic the run, whose records still go
/// to stdout. Every human line goes through here (or through [`stderr_line!`](crate::stderr_line));
/// `clippy.toml` forbids `eprintln!`.
pub fn stderr_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// `eprintln!` that never panics: see [`stderr_line`].
#[macro_export]
macro_rules! stderr_line {
    ($($arg:tt)*) => {
        $crate::colour::stderr_line(format_args!($($arg)*))
    };
}
