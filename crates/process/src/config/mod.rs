//! Settings from a TOML file, below flags and environment variables.
//!
//! The file's keys are the binary's long flag names (`grpc-addr = "0.0.0.0:50051"`), so
//! `--help` documents the file too. Precedence: a flag on the command line, then its
//! environment variable, then the file, then the default. The file is folded into the
//! command line before clap parses it, so every setting is validated the same way wherever
//! it came from. Errors name the file, the line or the key, never a value: a config file
//! holds secrets.

use std::{ffi::OsString, path::PathBuf};

/// Why the config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("the config file {path} is not valid TOML (line {line})")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line of the error, from 1.
        line: usize,
    },
    /// A key is not a setting of this binary.
    #[error("the config file {path} has an unknown setting `{key}` (see --help for the names)")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A value is not a string, number, boolean or list of strings.
    #[error(
        "the config file {path} gives `{key}` a value that is not a string, number, boolean or list"
    )]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
}

/// The command line with the config file folded in: `args` (the real command line, program
/// name first), plus `--key=value` for each setting of the file that neither `args` nor the
/// environment gives. The file is `--config <path>` from `args`, else `$file_env`.
pub fn fold_file_into_args(
    command: &clap::Command,
    args: Vec<OsString>,
    file_env: &str,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Vec<OsString>, ConfigError> {
    let Some(path) = config_path(&args).or_else(|| env(file_env).map(PathBuf::from)) else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|err: toml::de::Error| ConfigError::Parse {
            path: path.clone(),
            line: err.span().map_or(1, |span| {
                text[..span.start.min(text.len())].lines().count().max(1)
            }),
        })?;

    let mut folded = args.clone();
    for (key, value) in table {
        let arg = command
            .get_arguments()
            .find(|arg| {
                key != "config"
                    && (arg.get_long() == Some(key.as_str())
                        || arg
                            .get_all_aliases()
                            .is_some_and(|aliases| aliases.contains(&key.as_str())))
            })
            .ok_or_else(|| ConfigError::UnknownKey {
                path: path.clone(),
                key: key.clone(),
            })?;
        let long = arg.get_long().unwrap_or(key.as_str()).to_owned();
        let given_on_command_line = args.iter().any(|given| {
            given.to_str().is_some_and(|given| {
                [key.as_str(), long.as_str()].iter().any(|name| {
                    given == format!("--{name}") || given.starts_with(&format!("--{name}="))
                })
            })
        });
        let given_in_environment = arg
            .get_env()
            .and_then(|name| name.to_str())
            .is_some_and(|name| env(name).is_some());
        if given_on_command_line || given_in_environment {
            continue;
        }
        let bad_value = || ConfigError::BadValue {
            path: path.clone(),
            key: key.clone(),
        };
        if let (toml::Value::Boolean(flag), clap::ArgAction::SetTrue) = (&value, arg.get_action()) {
            // A flag that takes no value: present when true, absent when false.
            if *flag {
                folded.push(OsString::from(format!("--{key}")));
            }
            continue;
        }
        let text = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Float(number) => number.to_string(),
            toml::Value::Boolean(flag) => flag.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned).ok_or_else(bad_value))
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            toml::Value::Datetime(_) | toml::Value::Table(_) => return Err(bad_value()),
        };
        folded.push(OsString::from(format!("--{key}={text}")));
    }
    Ok(folded)
}

/// A setting's environment variable that was renamed: the old name is still read, when the
/// new one is not set, and a note says so.
#[derive(Debug, Clone, Copy)]
pub struct Renamed {
    /// The name it had.
    pub old: &'static str,
    /// The name it has.
    pub new: &'static str,
}

/// `args` with `--flag=value` added for each renamed variable set under its old name only
/// (and the flag not given already), and the notes to print about them. Values are never in
/// the notes.
pub fn fold_renamed_env(
    command: &clap::Command,
    mut args: Vec<OsString>,
    renamed: &[Renamed],
    env: impl Fn(&str) -> Option<OsString>,
) -> (Vec<OsString>, Vec<String>) {
    let mut notes = Vec::new();
    for rename in renamed {
        let (Some(value), None) = (env(rename.old), env(rename.new)) else {
            continue;
        };
        let Some(long) = command
            .get_arguments()
            .find(|arg| arg.get_env().and_then(|name| name.to_str()) == Some(rename.new))
            .and_then(clap::Arg::get_long)
        else {
            continue;
        };
        let given = args.iter().any(|given| {
            given.to_str().is_some_and(|given| {
                given == format!("--{long}") || given.starts_with(&format!("--{long}="))
            })
        });
        if !given {
            let mut flag = OsString::from(format!("--{long}="));
            flag.push(value);
            args.push(flag);
        }
        notes.push(format!(
            "{} is now called {}; the old name is still read, rename it",
            rename.old, rename.new
        ));
    }
    (args, notes)
}

/// Parses a binary's settings from the real command line, environment and config file
/// (`--config`, else `$file_env`). A setting that is missing or malformed, in any of the
/// three, ends the process with exit code 64 and a message naming the environment variable a
/// person sets (and the flag); `--help` and `--version` print and exit 0.
pub fn parse<S: clap::Parser>(program: &str, file_env: &str) -> S {
    parse_renamed(program, file_env, &[])
}

/// [`parse`], reading the [`Renamed`] variables under their old names too.
pub fn parse_renamed<S: clap::Parser>(program: &str, file_env: &str, renamed: &[Renamed]) -> S {
    let command = S::command();
    let (args, notes) =
        fold_renamed_env(&command, std::env::args_os().collect(), renamed, |name| {
            std::env::var_os(name)
        });
    for note in notes {
        eprintln!("{program}: {note}");
    }
    let args = fold_file_into_args(&command, args, file_env, |name| std::env::var_os(name))
        .unwrap_or_else(|err| {
            eprintln!("{program}: invalid settings: {err}");
            std::process::exit(i32::from(crate::exit::CONFIG));
        });
    match command
        .clone()
        .try_get_matches_from(args)
        .and_then(|matches| S::from_arg_matches(&matches))
    {
        Ok(settings) => settings,
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            eprintln!("{program}: invalid settings: {}", explain(&command, &err));
            std::process::exit(i32::from(crate::exit::CONFIG));
        }
    }
}

/// clap's error, said in terms of the environment variables: which one is missing or
/// malformed, and what clap had to say about it.
pub fn explain(command: &clap::Command, err: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let named = |flag: &str| {
        let long = flag
            .trim_start_matches("--")
            .split([' ', '='])
            .next()
            .unwrap_or_default()
            .to_owned();
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(long.as_str()));
        match arg.and_then(clap::Arg::get_env) {
            Some(env) => format!("{} (or --{long})", env.to_string_lossy()),
            None => format!("--{long}"),
        }
    };
    let args: Vec<String> = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(flag)) => vec![named(flag)],
        Some(ContextValue::Strings(flags)) => flags.iter().map(|flag| named(flag)).collect(),
        _ => Vec::new(),
    };
    match (err.kind(), args.is_empty()) {
        (ErrorKind::MissingRequiredArgument, false) => {
            format!("{} must be set", args.join(", "))
        }
        (_, false) => {
            let detail = err.render().to_string();
            let first = detail
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            format!("{}: {first}", args.join(", "))
        }
        (_, true) => err
            .render()
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned(),
    }
}

/// Parses a limit that must be at least 1 (a timeout, a pool or concurrency limit, an
/// interval) into `T` (`NonZeroU64`, say). PostgreSQL and most HTTP clients read 0 as "no
/// limit"; here it is refused at start with a message saying so, rather than taken as the
/// smallest limit there is.
pub fn at_least_one<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    let text = text.trim();
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1 (0 does not turn this limit off)".into()),
        Ok(_) => text.parse().map_err(|_| "is too large".into()),
        Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            Err("is too large".into())
        }
        Err(_) => Err("must be a whole number, at least 1".into()),
    }
}

/// Parses a whole number that must be at least `MIN` (a lifetime, an interval that cannot
/// be shorter) into `T`, refusing smaller ones with a message that says so; the one rule
/// for every such setting, so none is silently raised to its minimum.
pub fn at_least<const MIN: u64, T: TryFrom<u64>>(text: &str) -> Result<T, String> {
    let text = text.trim();
    let value: u64 = match text.parse() {
        Ok(value) => value,
        Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            return Err("is too large".into());
        }
        Err(_) => return Err(format!("must be a whole number, at least {MIN}")),
    };
    if value < MIN {
        return Err(if value == 0 {
            format!("must be at least {MIN} (0 does not turn this off)")
        } else {
            format!("must be at least {MIN}")
        });
    }
    T::try_from(value).map_err(|_| "is too large".into())
}

fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().filter_map(|arg| arg.to_str());
    while let Some(arg) = iter.next() {
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// The long flags of `command` that an example settings file does not mention as a key
/// (`name =`, commented or not), so a test can keep the example complete.
pub fn missing_from_example(command: &clap::Command, example: &str) -> Vec<String> {
    let keys: Vec<&str> = example
        .lines()
        .filter_map(|line| {
            let line = line.trim_start_matches(['#', ' ']);
            let (key, _) = line.split_once('=')?;
            Some(key.trim())
        })
        .collect();
    command
        .get_arguments()
        .filter_map(clap::Arg::get_long)
        .filter(|long| !matches!(*long, "help" | "version" | "config"))
        .filter(|long| !keys.contains(long))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests;
