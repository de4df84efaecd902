//! `metallb-operator`: runs the operator, or with `manifests` writes the plain install, with
//! `bundle` the OLM bundle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Parser;
use metallb_api::DEFAULT_NAMESPACE;
use metallb_operator::bundle::{self, BundleSettings};
use metallb_operator::cli::{Cli, Command};
use metallb_operator::install;
use metallb_operator::render::DEFAULT_OPERAND_IMAGE;
use tracing::error;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    metallb_runtime::install_crypto_provider();
    let cli = Cli::parse();
    cli.run.log.init();
    let result = match cli.command {
        Some(Command::Manifests { check, dir }) => manifests(check, dir),
        Some(Command::Bundle {
            check,
            version,
            image,
            dir,
        }) => bundle(check, BundleSettings { version, image }, dir),
        None => metallb_operator::run(cli.run).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

fn manifests(check: bool, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir =
        dir.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/install"));
    let files = install::files(DEFAULT_NAMESPACE, DEFAULT_OPERAND_IMAGE);
    let stale = install::sync(&dir, &files, !check)?;
    if check && !stale.is_empty() {
        return Err(anyhow!(
            "stale manifests in {}: {}; run `cargo run -p metallb-operator -- manifests`",
            dir.display(),
            stale.join(", ")
        ));
    }
    for name in stale {
        println!("wrote {name}");
    }
    Ok(())
}

fn bundle(check: bool, settings: BundleSettings, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = dir.unwrap_or_else(|| source.join("bundle"));
    let samples = bundle::read_samples(&source.join("manifests/samples"))?;
    let files = bundle::files(&settings, &samples)?;
    let stale = bundle::sync(&dir, &files, !check)?;
    if check && !stale.is_empty() {
        return Err(anyhow!(
            "stale bundle in {}: {}; run `cargo run -p metallb-operator -- bundle`",
            dir.display(),
            stale.join(", ")
        ));
    }
    for name in stale {
        println!("wrote {name}");
    }
    Ok(())
}
