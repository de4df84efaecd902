//! `metallb-speaker`: runs the ARP/NDP, BGP and BFD drivers from a static configuration
//! (`run`), checks such a file (`check`), and shows a running speaker's state (`show`).

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use metallb_api::duration::GoDuration;
use metallb_speaker::{
    config,
    runner::{self, RunOptions},
};
use serde_json::Value;
use tracing_subscriber::EnvFilter;

const DEFAULT_CONTROL: &str = "/run/metallb-speaker/speaker.sock";

#[derive(Parser, Debug)]
#[command(name = "metallb-speaker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Announce what a static configuration file says; SIGHUP re-reads it, SIGTERM leaves.
    Run {
        /// The configuration file (YAML).
        #[arg(long)]
        config: PathBuf,
        /// Unix socket for `metallb-speaker show`.
        #[arg(long, default_value = DEFAULT_CONTROL)]
        control: PathBuf,
        /// On SIGTERM, send the GRACEFUL_SHUTDOWN community and wait before withdrawing.
        #[arg(long)]
        graceful_shutdown: bool,
        /// How long routes stay announced with GRACEFUL_SHUTDOWN on SIGTERM.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        graceful_shutdown_delay: Duration,
        /// all, debug, info, warn, error or none.
        #[arg(long, default_value = "info")]
        log_level: String,
        /// Log lines as text or as JSON objects.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Check a configuration file and print what it resolves to.
    Check {
        /// The configuration file (YAML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the live state of a running speaker.
    Show {
        /// What to show.
        #[arg(value_enum)]
        what: Show,
        /// The running speaker's control socket.
        #[arg(long, default_value = DEFAULT_CONTROL)]
        control: PathBuf,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Show {
    Bgp,
    Bfd,
    L2,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    GoDuration(text.to_owned())
        .parse()
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            control,
            graceful_shutdown,
            graceful_shutdown_delay,
            log_level,
            log_format,
        } => {
            init_logging(&log_level, log_format);
            let options = RunOptions {
                config,
                control: Some(control),
                graceful_shutdown,
                graceful_shutdown_delay,
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")
                .and_then(|runtime| runtime.block_on(runner::run(options)))
        }
        Command::Check { config } => check(&config),
        Command::Show {
            what,
            control,
            json,
        } => show(what, &control, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("metallb-speaker: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str, format: LogFormat) {
    let level = match level {
        "all" => "trace",
        "none" => "off",
        other => other,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn check(path: &std::path::Path) -> anyhow::Result<()> {
    let plan = config::load(path)?;
    println!(
        "{}: valid: {} peers, {} prefixes, {} layer-2 addresses",
        path.display(),
        plan.peers.len(),
        config::prefixes(&plan).len(),
        plan.l2.len()
    );
    Ok(())
}

fn show(what: Show, control: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let request = match what {
        Show::Bgp => "bgp",
        Show::Bfd => "bfd",
        Show::L2 => "l2",
    };
    let mut stream = UnixStream::connect(control)
        .with_context(|| format!("connecting to the speaker at {}", control.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let value: Value = serde_json::from_str(&line).context("the speaker's answer is not JSON")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", table(&value));
    }
    Ok(())
}

/// A list of objects as a table of their plain fields; anything else as indented JSON.
fn table(value: &Value) -> String {
    let rows: Vec<&serde_json::Map<String, Value>> = match value {
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        _ => {
            return format!(
                "{}\n",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        }
    };
    let Some(first) = rows.first() else {
        return "(none)\n".to_owned();
    };
    let mut columns: Vec<&String> = first
        .keys()
        .filter(|k| !first[*k].is_object() && !first[*k].is_array())
        .collect();
    // The object's name (or address) first, then the rest in key order.
    columns.sort_by_key(|c| !matches!(c.as_str(), "name" | "peer" | "ip"));
    let cell = |row: &serde_json::Map<String, Value>, column: &str| match row.get(column) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| {
            rows.iter()
                .map(|r| cell(r, c).len())
                .max()
                .unwrap_or(0)
                .max(c.len())
        })
        .collect();
    let mut out = String::new();
    let line = |cells: Vec<String>| {
        let mut text = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        text.truncate(text.trim_end().len());
        text + "\n"
    };
    out.push_str(&line(columns.iter().map(|c| c.to_uppercase()).collect()));
    for row in &rows {
        out.push_str(&line(columns.iter().map(|c| cell(row, c)).collect()));
    }
    out
}
