//! `metallb-crdgen [DIR]`: writes one YAML file per metallb.io CRD into DIR (default
//! `manifests/crds` of the workspace) and removes stale `metallb.io_*.yaml` files there.
//! `metallb-crdgen --check [DIR]` writes nothing and fails when DIR differs.

use std::{collections::BTreeSet, fs, path::PathBuf, process::ExitCode};

use anyhow::Context;

fn main() -> anyhow::Result<ExitCode> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.iter().any(|a| a == "--check");
    args.retain(|a| a != "--check");
    let dir = match args.as_slice() {
        [] => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests/crds"),
        [dir] => PathBuf::from(dir),
        _ => anyhow::bail!("usage: metallb-crdgen [--check] [DIR]"),
    };

    let mut wanted = BTreeSet::new();
    let mut stale = Vec::new();
    for crd in metallb_api::crds::all()? {
        let name = metallb_api::crds::file_name(&crd);
        let path = dir.join(&name);
        let yaml = metallb_api::crds::to_yaml(&crd)?;
        if fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
            stale.push(name.clone());
            if !check {
                fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
            }
        }
        wanted.insert(name);
    }
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("metallb.io_") && !wanted.contains(&name) {
            stale.push(name.clone());
            if !check {
                fs::remove_file(dir.join(&name))?;
            }
        }
    }

    if check && !stale.is_empty() {
        eprintln!(
            "stale CRDs in {}: {}; run `cargo run -p metallb-crdgen`",
            dir.display(),
            stale.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    for name in &stale {
        println!("wrote {name}");
    }
    Ok(ExitCode::SUCCESS)
}
