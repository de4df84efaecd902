//! The destination tree: every file goes through the [`Redactor`] on its way to disk, and a
//! piece that failed leaves `<path>.error` and a line in the summary instead of stopping the
//! collection.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::layout;
use crate::redact::Redactor;

/// Why the tree cannot be written at all.
#[derive(Debug, thiserror::Error)]
#[error("writing {path}: {source}")]
pub struct WriteError {
    /// The file or directory.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

/// Totals of a finished collection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Files written, error files included.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
    /// `<path>: <reason>` of every piece that could not be collected.
    pub errors: Vec<String>,
}

/// The tree being written.
#[derive(Debug)]
pub struct Output {
    root: PathBuf,
    redactor: Redactor,
    totals: Mutex<Totals>,
}

impl Output {
    /// Writes under `root` (created if missing), scrubbing with `redactor`.
    pub fn new(root: &Path, redactor: Redactor) -> Result<Output, WriteError> {
        std::fs::create_dir_all(root).map_err(|source| WriteError {
            path: root.to_owned(),
            source,
        })?;
        Ok(Output {
            root: root.to_owned(),
            redactor,
            totals: Mutex::new(Totals::default()),
        })
    }

    /// Writes `text`, scrubbed, at `relative`.
    pub fn text(&self, relative: &Path, text: &str) -> Result<(), WriteError> {
        let path = self.root.join(relative);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| WriteError {
                path: dir.to_owned(),
                source,
            })?;
        }
        let scrubbed = self.redactor.text(text);
        std::fs::write(&path, &scrubbed).map_err(|source| WriteError {
            path: path.clone(),
            source,
        })?;
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        totals.files += 1;
        totals.bytes += scrubbed.len() as u64;
        Ok(())
    }

    /// Writes `object`, redacted, as YAML at `relative`.
    pub fn object(&self, relative: &Path, object: &Value) -> Result<(), WriteError> {
        self.yaml(relative, &self.redactor.object(object))
    }

    /// Writes `items`, each redacted, as a `v1 List` in YAML at `relative`.
    pub fn list(&self, relative: &Path, items: &[Value]) -> Result<(), WriteError> {
        let items: Vec<Value> = items.iter().map(|i| self.redactor.object(i)).collect();
        self.yaml(
            relative,
            &json!({ "apiVersion": "v1", "kind": "List", "items": items }),
        )
    }

    fn yaml(&self, relative: &Path, value: &Value) -> Result<(), WriteError> {
        // A JSON value always serializes; keep the JSON text should the YAML writer refuse.
        let text = serde_saphyr::to_string(value).unwrap_or_else(|_| value.to_string());
        self.text(relative, &text)
    }

    /// Records that `relative` could not be collected: `<relative>.error` holds `reason`.
    pub fn error(&self, relative: &Path, reason: &str) -> Result<(), WriteError> {
        tracing::warn!(path = %relative.display(), reason, "not collected");
        self.text(&layout::error_file(relative), &format!("{reason}\n"))?;
        let line = self
            .redactor
            .text(&format!("{}: {reason}", relative.display()));
        self.totals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .errors
            .push(line);
        Ok(())
    }

    /// The totals so far.
    pub fn totals(&self) -> Totals {
        self.totals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
