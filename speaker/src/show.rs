//! The client side of `metallb-speaker show`: asks a running speaker over its control socket
//! and prints the answer as a table or as JSON.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

/// Prints the answer to `request` of the speaker listening on `control`.
pub fn show(request: &str, control: &Path, json: bool) -> anyhow::Result<()> {
    let mut stream = UnixStream::connect(control)
        .with_context(|| format!("connecting to the speaker at {}", control.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let value: Value = serde_json::from_str(&line).context("the speaker's answer is not JSON")?;
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        anyhow::bail!("{error}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", table(&value));
    }
    Ok(())
}

/// A list of objects as a table of their plain fields, an explanation as its sentences, the
/// liveness view as its own state and a table of the other nodes; anything else as indented
/// JSON.
fn table(value: &Value) -> String {
    if let (Some(own), Some(nodes)) = (value.get("own"), value.get("nodes")) {
        let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
        let mut out = format!(
            "{}: {}, draining: {}, candidates counted by {}: {}\n",
            text(&value["node"]),
            text(own),
            text(&value["draining"]),
            text(&value["basis"]),
            value["candidates"]
                .as_array()
                .map(|c| c.iter().map(text).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        );
        out.push_str(&table(nodes));
        return out;
    }
    if let Some(lines) = value.get("explanation").and_then(Value::as_array) {
        let mut out = format!(
            "{} on {}:\n",
            value["service"].as_str().unwrap_or_default(),
            value["node"].as_str().unwrap_or_default()
        );
        for line in lines.iter().filter_map(Value::as_str) {
            out.push_str(&format!("  {line}\n"));
        }
        return out;
    }
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
