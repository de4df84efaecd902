//! `metallb-image`: writes the product image and the pause image as OCI image layout tars.
//!
//! ```text
//! metallb-image product --bin-dir target/debug --out metallb-rs.tar   # quay.io/metallb-rs/metallb-rs:<version>
//! metallb-image pause --binary PATH --out pause.tar                   # the nodes' sandbox image
//! metallb-image write --reference REF --binary PATH... [--entrypoint ARG...] --out FILE
//! ```
//!
//! Prints the reference and the manifest digest.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use metallb_image::Image;

/// The reference the operator's `DEFAULT_OPERAND_IMAGE` and `manifests/install` name.
const PRODUCT_REFERENCE: &str =
    concat!("quay.io/metallb-rs/metallb-rs:", env!("CARGO_PKG_VERSION"));
/// The sandbox image the local cluster's containerd pins, so it is never pulled.
pub const PAUSE_REFERENCE: &str = "localhost/metallb-rs/pause:1";
/// The product image's default user: the operator and controller pods say `runAsNonRoot`
/// without a uid; the speaker pod asks for root itself, for its capabilities.
const PRODUCT_USER: &str = "65532:65532";
/// The binaries of the product image.
const PRODUCT_BINARIES: [&str; 3] = ["metallb-operator", "metallb-controller", "metallb-speaker"];

#[derive(Debug, Parser)]
#[command(about = "Writes container images as OCI image layout tars")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The product image: metallb-operator, metallb-controller and metallb-speaker.
    Product {
        /// Directory holding the three binaries (e.g. target/debug).
        #[arg(long)]
        bin_dir: PathBuf,
        #[arg(long, default_value = PRODUCT_REFERENCE)]
        reference: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// The pause (sandbox) image: one program that waits for SIGTERM and reaps children.
    Pause {
        #[arg(long)]
        binary: PathBuf,
        #[arg(long, default_value = PAUSE_REFERENCE)]
        reference: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Any image of binaries.
    Write {
        #[arg(long)]
        reference: String,
        #[arg(long = "binary", required = true)]
        binaries: Vec<PathBuf>,
        /// The entrypoint's argv, e.g. `--entrypoint /usr/local/bin/tool --entrypoint -v`.
        #[arg(long = "entrypoint")]
        entrypoint: Vec<String>,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let mut user = None;
    let (reference, binaries, entrypoint, out) = match Cli::parse().command {
        Cmd::Product {
            bin_dir,
            reference,
            out,
        } => {
            let bins = PRODUCT_BINARIES.iter().map(|b| bin_dir.join(b)).collect();
            user = Some(PRODUCT_USER);
            (reference, bins, Vec::new(), out)
        }
        Cmd::Pause {
            binary,
            reference,
            out,
        } => {
            let name = binary
                .file_name()
                .context("the pause binary has no file name")?
                .to_string_lossy()
                .into_owned();
            let entry = vec![format!("/{}/{name}", metallb_image::BIN_DIR)];
            (reference, vec![binary], entry, out)
        }
        Cmd::Write {
            reference,
            binaries,
            entrypoint,
            out,
        } => (reference, binaries, entrypoint, out),
    };
    let mut image = Image::new(&reference);
    if !entrypoint.is_empty() {
        image = image.entrypoint(entrypoint);
    }
    if let Some(user) = user {
        image = image.user(user);
    }
    for binary in &binaries {
        image = image
            .binary(binary)
            .with_context(|| format!("adding {}", binary.display()))?;
    }
    let written = image
        .write(&out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("{reference} {}", written.manifest_digest);
    Ok(())
}
