//! `gcupload man`: the man page. clap_mangen renders the name, synopsis, description and
//! options; the sections a man page reader looks for and clap does not know — the commands (as
//! one page: no `gcupload-doctor(1)` pages are shipped), examples kept as typed, exit status,
//! environment and files — are written here, from the same command and exit-status table that
//! `--help` uses.

use std::io::Write;

use super::cli;
use crate::error_reporting::ExitStatus;

pub fn render() -> std::io::Result<Vec<u8>> {
    let cmd = cli::command();
    // The after-help (examples, exit status) gets sections of its own below.
    let man = clap_mangen::Man::new(cmd.clone().after_help(clap::builder::Resettable::Reset));
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    commands(&mut page, &cmd)?;
    examples(&mut page)?;
    exit_status(&mut page)?;
    environment(&mut page, &cmd)?;
    files(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

fn commands(w: &mut dyn Write, cmd: &clap::Command) -> std::io::Result<()> {
    writeln!(w, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        writeln!(w, ".TP\n\\fBgcupload {}\\fR", text(sub.get_name()))?;
        writeln!(w, "{}", text(&about))?;
    }
    writeln!(
        w,
        ".PP\n\\fBgcupload \\fICOMMAND\\fB \\-\\-help\\fR lists the options of each command."
    )
}

fn examples(w: &mut dyn Write) -> std::io::Result<()> {
    // No fill, no adjusting: each example stays on its own line as typed.
    writeln!(w, ".SH EXAMPLES\n.nf")?;
    for line in cli::EXAMPLES.lines() {
        writeln!(w, "{}", text(line.trim_start()))?;
    }
    writeln!(w, ".fi")
}

fn exit_status(w: &mut dyn Write) -> std::io::Result<()> {
    writeln!(w, ".SH \"EXIT STATUS\"")?;
    for s in ExitStatus::ALL {
        writeln!(w, ".TP\n\\fB{}\\fR\n{}", s.code(), text(s.meaning()))?;
    }
    writeln!(
        w,
        ".PP\nWith several files, the status is that of the first file that failed; each file's record tells its own outcome."
    )
}

fn environment(w: &mut dyn Write, cmd: &clap::Command) -> std::io::Result<()> {
    writeln!(w, ".SH ENVIRONMENT")?;
    let mut seen: Vec<String> = Vec::new();
    let all = std::iter::once(cmd).chain(cmd.get_subcommands());
    for arg in all
        .flat_map(|c| c.get_arguments())
        .filter(|a| !a.is_hide_set())
    {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let env = env.to_string_lossy().into_owned();
        if seen.contains(&env) {
            continue;
        }
        writeln!(
            w,
            ".TP\n\\fB{}\\fR\nAs \\fB\\-\\-{}\\fR.",
            text(&env),
            text(long)
        )?;
        seen.push(env);
    }
    writeln!(
        w,
        ".PP\nA flag wins over its variable. An empty variable counts as unset. \\fB.env\\fR in the working directory may set these variables (and only these) when the environment does not."
    )
}

fn files(w: &mut dyn Write) -> std::io::Result<()> {
    writeln!(w, ".SH FILES")?;
    for (path, what) in [
        (
            "./.env",
            "settings for runs started in that directory (see ENVIRONMENT)",
        ),
        (
            "~/.local/state/gcupload/state.db",
            "the journal of uploads and the webhook outbox (\\-\\-state\\-dir, GCUPLOAD_STATE_DIR); read it with gcupload history",
        ),
    ] {
        writeln!(w, ".TP\n\\fI{}\\fR\n{}", text(path), what)?;
    }
    Ok(())
}

/// Text as roff reads it literally: backslashes and hyphens escaped, no line taken as a request.
fn text(s: &str) -> String {
    let escaped = s.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_the_sections_a_reader_looks_for_and_names_no_page_not_shipped() {
        let page = String::from_utf8(render().unwrap()).unwrap();
        for section in [
            ".SH EXAMPLES",
            ".SH \"EXIT STATUS\"",
            ".SH ENVIRONMENT",
            ".SH FILES",
        ] {
            assert!(page.contains(section), "{section} missing");
        }
        assert!(!page.contains("gcupload\\-doctor(1)") && !page.contains("gcupload-doctor(1)"));
        assert!(page.contains(".nf\n") && page.contains("GENESYS_CLIENT_ID"));
        for s in ExitStatus::ALL {
            assert!(page.contains(&format!(".TP\n\\fB{}\\fR", s.code())));
        }
    }
}
