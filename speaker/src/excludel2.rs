//! The layer-2 interface exclusion file the operator mounts from the `metallb-excludel2`
//! ConfigMap (`--excludel2-file`): MetalLB's `announcedInterfacesToExclude`, a list of regular
//! expressions matched against interface names. Read at start; a change takes effect when the
//! speaker restarts (as in MetalLB).

use std::path::Path;

use serde::Deserialize;

/// Why the file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ExcludeError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not the expected YAML.
    #[error("{path}: announcedInterfacesToExclude: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    #[serde(default)]
    announced_interfaces_to_exclude: Vec<String>,
}

/// The exclusion patterns of the file at `path`; every one is a valid regular expression.
pub fn load(path: &Path) -> Result<Vec<String>, ExcludeError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ExcludeError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&text).map_err(|reason| ExcludeError::Invalid {
        path: shown,
        reason,
    })
}

fn parse(text: &str) -> Result<Vec<String>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let file: File = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    for (i, pattern) in file.announced_interfaces_to_exclude.iter().enumerate() {
        regex::Regex::new(pattern).map_err(|e| format!("[{i}] {pattern:?}: {e}"))?;
    }
    Ok(file.announced_interfaces_to_exclude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metallbs_default_list_parses() {
        let text = r#"announcedInterfacesToExclude: ["^docker.*", "^cbr.*", "^lo$", "^veth.*"]"#;
        let patterns = parse(text).unwrap();
        assert_eq!(patterns.len(), 4);
        assert_eq!(patterns[2], "^lo$");
    }

    #[test]
    fn an_invalid_pattern_is_refused_with_its_position() {
        let error = parse(r#"announcedInterfacesToExclude: ["^eth0$", "("]"#).unwrap_err();
        assert!(error.starts_with("[1] \"(\""), "{error}");
    }

    #[test]
    fn an_empty_file_excludes_nothing_and_an_unknown_key_is_refused() {
        assert_eq!(parse("").unwrap(), Vec::<String>::new());
        assert!(parse("interfaces: [eth0]").is_err());
    }
}
