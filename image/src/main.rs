//! `metallb-image`: writes the product image and the pause image as OCI image layout tars.
//!
//! ```text
//! metallb-image product --bin-dir target/debug --out metallb-rs.tar   # quay.io/metallb-rs/metallb-rs:<version>
//! metallb-image must-gather --gather PATH --out mg.tar                # for oc adm must-gather
//! metallb-image pause --binary PATH --out pause.tar                   # the nodes' sandbox image
//! metallb-image write --reference REF --binary PATH... [--entrypoint ARG...] --out FILE
//! ```
//!
//! Prints the reference and the manifest digest. The same archive serves a registry push
//! (`skopeo copy oci-archive:FILE docker://REF`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use metallb_image::{
    Image, MUST_GATHER_REFERENCE, PAUSE_REFERENCE, PRODUCT_BINARIES, PRODUCT_REFERENCE,
};

#[derive(Debug, Parser)]
#[command(about = "Writes container images as OCI image layout tars")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The product image: metallb-operator, metallb-controller, metallb-speaker and
    /// metallb-gather (also at /usr/bin/gather).
    Product {
        /// Directory holding the four binaries (e.g. target/debug).
        #[arg(long)]
        bin_dir: PathBuf,
        #[arg(long, default_value = PRODUCT_REFERENCE)]
        reference: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// The must-gather image for `oc adm must-gather --image=...`: metallb-gather as
    /// /usr/bin/gather, with the shell tools oc's pod runs (taken from this machine).
    MustGather {
        /// The metallb-gather executable.
        #[arg(long)]
        gather: PathBuf,
        #[arg(long, default_value = MUST_GATHER_REFERENCE)]
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
    let (reference, image, out) = match Cli::parse().command {
        Cmd::Product {
            bin_dir,
            reference,
            out,
        } => {
            let bins: Vec<_> = PRODUCT_BINARIES.iter().map(|b| bin_dir.join(b)).collect();
            let image = metallb_image::product(&reference, &bins)?;
            (reference, image, out)
        }
        Cmd::MustGather {
            gather,
            reference,
            out,
        } => {
            let tools = metallb_image::must_gather_tools()?;
            let image = metallb_image::must_gather(&reference, &gather, &tools)?;
            (reference, image, out)
        }
        Cmd::Pause {
            binary,
            reference,
            out,
        } => {
            let image = metallb_image::pause(&reference, &binary)?;
            (reference, image, out)
        }
        Cmd::Write {
            reference,
            binaries,
            entrypoint,
            out,
        } => {
            let mut image = Image::new(&reference);
            if !entrypoint.is_empty() {
                image = image.entrypoint(entrypoint);
            }
            for binary in &binaries {
                image = image.binary(binary)?;
            }
            (reference, image, out)
        }
    };
    let written = image
        .write(&out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("{reference} {}", written.manifest_digest);
    Ok(())
}
