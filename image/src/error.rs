//! Errors of the image writer.

use std::path::PathBuf;

/// What went wrong while writing an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the image: {0}")]
    Write(std::io::Error),
    #[error("{path}: expected {expected} bytes, read {got} (did the file change while writing?)")]
    Short {
        path: String,
        expected: u64,
        got: u64,
    },
    #[error("path or link target longer than a ustar header holds: {0}")]
    NameTooLong(String),
    #[error("running ldd on {path}: {reason}")]
    Ldd { path: PathBuf, reason: String },
    #[error("objcopy --strip-debug {path}: {reason}")]
    Strip { path: PathBuf, reason: String },
    #[error("{0} is not a file name an image can hold")]
    BadName(PathBuf),
    #[error("{0} is not on this machine's PATH")]
    NoTool(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
