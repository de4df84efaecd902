//! A minimal ustar writer: regular files, directories and symbolic links with fixed owner,
//! mode and time, which is all an image layer and an OCI layout archive need.
//!
//! Entries are written as given; the caller orders them (parents before children) and keeps
//! every path within the 100 bytes of the ustar name field, which [`Tar`] checks.

use std::io::{self, Read, Write};

use crate::error::{Error, Result};

const BLOCK: usize = 512;

/// The kind of an entry and what it carries besides the header.
#[derive(Debug, Clone, Copy)]
enum Kind<'a> {
    File { size: u64 },
    Dir,
    Symlink { target: &'a str },
}

/// Writes tar entries to `W`; [`finish`](Tar::finish) writes the end-of-archive blocks.
#[derive(Debug)]
pub struct Tar<W: Write> {
    out: W,
}

impl<W: Write> Tar<W> {
    pub fn new(out: W) -> Tar<W> {
        Tar { out }
    }

    /// A directory; `path` without a trailing slash.
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<()> {
        self.header(&format!("{path}/"), mode, Kind::Dir)
    }

    /// A symbolic link at `path` pointing to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.header(path, 0o777, Kind::Symlink { target })
    }

    /// A regular file of exactly `size` bytes read from `data`.
    pub fn file(&mut self, path: &str, mode: u32, size: u64, data: impl Read) -> Result<()> {
        self.header(path, mode, Kind::File { size })?;
        let copied = io::copy(&mut data.take(size), &mut self.out).map_err(Error::Write)?;
        if copied != size {
            return Err(Error::Short {
                path: path.to_owned(),
                expected: size,
                got: copied,
            });
        }
        self.pad(size)
    }

    /// Writes the two zero blocks that end an archive and returns the writer.
    pub fn finish(mut self) -> Result<W> {
        self.out.write_all(&[0; 2 * BLOCK]).map_err(Error::Write)?;
        self.out.flush().map_err(Error::Write)?;
        Ok(self.out)
    }

    fn header(&mut self, path: &str, mode: u32, kind: Kind<'_>) -> Result<()> {
        let mut h = [0u8; BLOCK];
        put(&mut h[0..100], path.as_bytes(), path)?;
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0); // uid
        octal(&mut h[116..124], 0); // gid
        let (size, flag) = match kind {
            Kind::File { size } => (size, b'0'),
            Kind::Dir => (0, b'5'),
            Kind::Symlink { target } => {
                put(&mut h[157..257], target.as_bytes(), target)?;
                (0, b'2')
            }
        };
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], 0); // mtime: fixed, so the same inputs give the same digest
        h[156] = flag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        // The checksum is computed with its own field as spaces.
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        octal(&mut h[148..155], u64::from(sum));
        h[155] = b' ';
        self.out.write_all(&h).map_err(Error::Write)
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rest = (size % BLOCK as u64) as usize;
        if rest != 0 {
            self.out
                .write_all(&[0; BLOCK][..BLOCK - rest])
                .map_err(Error::Write)?;
        }
        Ok(())
    }
}

fn put(field: &mut [u8], value: &[u8], what: &str) -> Result<()> {
    if value.len() > field.len() {
        return Err(Error::NameTooLong(what.to_owned()));
    }
    field[..value.len()].copy_from_slice(value);
    Ok(())
}

/// Zero-padded octal with a terminating NUL, as ustar numeric fields are.
fn octal(field: &mut [u8], value: u64) {
    let last = field.len() - 1;
    let digits = format!("{value:0last$o}");
    field[..last].copy_from_slice(digits.as_bytes());
    field[last] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_block_aligned_with_valid_checksums() {
        let mut tar = Tar::new(Vec::new());
        tar.dir("usr", 0o755).unwrap();
        tar.file("usr/hello", 0o644, 5, &b"hello"[..]).unwrap();
        tar.symlink("hi", "usr/hello").unwrap();
        let bytes = tar.finish().unwrap();
        assert_eq!(bytes.len(), 512 * 4 + 1024);
        for header in [&bytes[0..512], &bytes[512..1024], &bytes[1536..2048]] {
            let stored = std::str::from_utf8(&header[148..154]).unwrap();
            let mut copy = header.to_vec();
            copy[148..156].fill(b' ');
            let sum: u32 = copy.iter().map(|&b| u32::from(b)).sum();
            assert_eq!(u32::from_str_radix(stored, 8).unwrap(), sum);
        }
        assert_eq!(&bytes[1024..1029], b"hello");
        assert_eq!(&bytes[0..4], b"usr/");
    }

    #[test]
    fn a_short_reader_is_an_error() {
        let mut tar = Tar::new(Vec::new());
        let err = tar.file("f", 0o644, 10, &b"abc"[..]).unwrap_err();
        assert!(matches!(err, Error::Short { got: 3, .. }), "{err}");
    }

    #[test]
    fn long_names_are_refused() {
        let mut tar = Tar::new(Vec::new());
        assert!(matches!(
            tar.dir(&"x".repeat(120), 0o755),
            Err(Error::NameTooLong(_))
        ));
    }
}
