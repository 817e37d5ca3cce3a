//! Environment variables that look like settings but name none. A typo in the TOML file is
//! refused (its keys are checked), but `WXAUTH_APP=...` in a deployment would otherwise be
//! ignored without a word, and the service would start without what was meant.

use crate::config::Renamed;

/// A variable that names no setting, and the known name closest to it, if one is close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stray {
    /// The variable as set.
    pub name: String,
    /// The setting it probably means.
    pub closest: Option<String>,
}

impl std::fmt::Display for Stray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.closest {
            Some(closest) => write!(
                f,
                "{} names no setting (did you mean {closest}?)",
                self.name
            ),
            None => write!(f, "{} names no setting", self.name),
        }
    }
}

/// The names among `vars` that start with one of `prefixes` and that no argument of
/// `command` reads (nor a renamed one, under its old name), in order; each with the closest
/// known name. Values are never looked at.
pub fn strays(
    command: &clap::Command,
    prefixes: &[&str],
    renamed: &[Renamed],
    vars: impl IntoIterator<Item = String>,
) -> Vec<Stray> {
    let known: Vec<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .filter_map(|env| env.to_str().map(str::to_owned))
        .chain(renamed.iter().map(|renamed| renamed.old.to_owned()))
        .collect();
    let mut found: Vec<Stray> = vars
        .into_iter()
        .filter(|name| prefixes.iter().any(|prefix| name.starts_with(prefix)))
        .filter(|name| !known.contains(name))
        .map(|name| {
            let closest = known
                .iter()
                .map(|known| (distance(&name, known), known))
                .filter(|(far, known)| *far <= (known.len() / 4).max(2))
                .min()
                .map(|(_, known)| known.clone());
            Stray { name, closest }
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// Reports each stray variable of this process's environment on stderr, before the settings
/// are parsed (so a typo is named even when a required setting is missing too): a warning,
/// or, when `strict_var` is set true (or `--strict-env` is given), the reason the start stops.
/// Returns false when it must stop.
pub fn report(
    program: &str,
    command: &clap::Command,
    prefixes: &[&str],
    renamed: &[Renamed],
    strict_var: &str,
) -> bool {
    let strict = std::env::var(strict_var).is_ok_and(|value| {
        matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    }) || std::env::args()
        .any(|arg| arg == "--strict-env" || arg == "--strict-env=true");
    let found = strays(
        command,
        prefixes,
        renamed,
        std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()),
    );
    for stray in &found {
        if strict {
            eprintln!("{program}: {stray}: refused ({strict_var} is set)");
        } else {
            eprintln!("{program}: {stray}: ignored");
        }
    }
    !strict || found.is_empty()
}

/// The edit distance between `a` and `b` (insertions, deletions, substitutions).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use clap::{Arg, Command};

    use super::*;

    fn command() -> Command {
        Command::new("svc")
            .arg(Arg::new("apps").long("apps").env("WXAUTH_APPS"))
            .arg(Arg::new("callers").long("callers").env("WXAUTH_CALLERS"))
            .arg(
                Arg::new("check")
                    .long("check")
                    .env("WXAUTH_APP_TOKEN_CHECK_MS"),
            )
    }

    #[test]
    fn a_typo_names_the_setting_it_means_and_known_names_pass() {
        let renamed = [Renamed {
            old: "WXAUTH_ACCESS_TOKEN_CHECK_MS",
            new: "WXAUTH_APP_TOKEN_CHECK_MS",
        }];
        let found = strays(
            &command(),
            &["WXAUTH_"],
            &renamed,
            [
                "WXAUTH_APP",
                "WXAUTH_APPS",
                "WXAUTH_CALERS",
                "WXAUTH_ACCESS_TOKEN_CHECK_MS",
                "WXAUTH_SOMETHING_ELSE_ENTIRELY",
                "PATH",
                "GATEWAY_APPS",
            ]
            .map(str::to_owned),
        );
        assert_eq!(
            found,
            [
                Stray {
                    name: "WXAUTH_APP".into(),
                    closest: Some("WXAUTH_APPS".into()),
                },
                Stray {
                    name: "WXAUTH_CALERS".into(),
                    closest: Some("WXAUTH_CALLERS".into()),
                },
                Stray {
                    name: "WXAUTH_SOMETHING_ELSE_ENTIRELY".into(),
                    closest: None,
                },
            ]
        );
        assert_eq!(
            found[0].to_string(),
            "WXAUTH_APP names no setting (did you mean WXAUTH_APPS?)"
        );
    }

    #[test]
    fn distances_count_single_edits() {
        assert_eq!(distance("abc", "abc"), 0);
        assert_eq!(distance("abc", "ab"), 1);
        assert_eq!(distance("abc", "abd"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
