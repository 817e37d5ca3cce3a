use std::collections::HashMap;

use clap::{CommandFactory, Parser};

use super::*;

/// A binary's settings, as the real ones are declared.
#[derive(Debug, Parser)]
struct Settings {
    #[arg(long, env = "T_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, env = "T_ADDR", default_value = "127.0.0.1:1")]
    addr: String,
    #[arg(long, env = "T_APPS", default_value = "")]
    apps: String,
    #[arg(long, env = "T_TTL", default_value_t = 5)]
    ttl: u32,
    #[arg(long, env = "T_DEV", action = clap::ArgAction::SetTrue)]
    dev: bool,
    #[arg(long, env = "T_STRICT", action = clap::ArgAction::Set, default_value_t = true)]
    strict: bool,
}

#[test]
fn errors_name_the_environment_variable() {
    #[derive(Debug, Parser)]
    struct Required {
        #[arg(long, env = "T_DATABASE_URL")]
        database_url: String,
        #[arg(long, env = "T_TTL", default_value_t = 5)]
        ttl: u32,
    }
    let command = Required::command();
    let err = Required::try_parse_from(["bin"]).unwrap_err();
    assert_eq!(
        explain(&command, &err),
        "T_DATABASE_URL (or --database-url) must be set"
    );
    let err = Required::try_parse_from(["bin", "--database-url=x", "--ttl=soon"]).unwrap_err();
    let message = explain(&command, &err);
    assert!(message.starts_with("T_TTL (or --ttl): "), "{message}");
}

fn fold(file: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Vec<String>, ConfigError> {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wxauth-config-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("settings.toml");
    std::fs::write(&path, file).unwrap();
    let mut argv: Vec<OsString> = vec!["bin".into(), "--config".into(), path.into()];
    argv.extend(args.iter().map(OsString::from));
    let env: HashMap<String, OsString> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
        .collect();
    let folded = fold_file_into_args(&Settings::command(), argv, "T_CONFIG", |name| {
        env.get(name).cloned()
    });
    // Read once the fold returns: nothing of the test run is left behind.
    std::fs::remove_dir_all(&dir).unwrap();
    let folded = folded?;
    Ok(folded
        .into_iter()
        .map(|arg| arg.into_string().unwrap())
        .collect())
}

#[test]
fn the_file_fills_in_what_flags_and_environment_do_not_give() {
    let file = "addr = \"0.0.0.0:9\"\napps = [\"wx1:a\", \"wx2:b\"]\nttl = 60\ndev = true\nstrict = false\n";
    let folded = fold(file, &["--ttl", "7"], &[("T_ADDR", "10.0.0.1:1")]).unwrap();
    assert!(
        !folded.iter().any(|arg| arg.starts_with("--addr")),
        "the environment wins: {folded:?}"
    );
    assert!(
        !folded.iter().any(|arg| arg.starts_with("--ttl=")),
        "a flag wins: {folded:?}"
    );
    let settings = Settings::try_parse_from(&folded).unwrap();
    assert_eq!(settings.ttl, 7);
    assert_eq!(settings.apps, "wx1:a,wx2:b", "lists become comma-separated");
    assert!(
        settings.dev && !settings.strict,
        "booleans, with or without a value"
    );
}

#[test]
fn bad_files_are_named_without_echoing_values() {
    let cases = [
        ("unknown key", "colour = \"supersecret\"\n"),
        ("bad toml", "addr = \"supersecret\n"),
        ("table value", "[addr]\nx = \"supersecret\"\n"),
    ];
    for (case, file) in cases {
        let err = fold(file, &[], &[])
            .err()
            .unwrap_or_else(|| panic!("{case} accepted"));
        assert!(!err.to_string().contains("supersecret"), "{case}: {err}");
    }
    let err = fold("ttl = 1\n\nnot toml at all\n", &[], &[])
        .err()
        .unwrap();
    assert!(err.to_string().contains("line 3"), "{err}");
}

#[test]
fn a_renamed_variable_is_read_under_its_old_name_unless_the_new_one_is_set() {
    let command = Settings::command();
    let renamed = [Renamed {
        old: "T_OLD_ADDR",
        new: "T_ADDR",
    }];
    let env = |set: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            set.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| OsString::from(*value))
        }
    };
    let (args, notes) = fold_renamed_env(
        &command,
        vec!["test".into()],
        &renamed,
        env(&[("T_OLD_ADDR", "127.0.0.1:1")]),
    );
    assert_eq!(args, ["test", "--addr=127.0.0.1:1"]);
    assert_eq!(notes.len(), 1);
    assert!(notes[0].contains("T_ADDR") && !notes[0].contains("127.0.0.1"));
    let (args, notes) = fold_renamed_env(
        &command,
        vec!["test".into()],
        &renamed,
        env(&[("T_OLD_ADDR", "127.0.0.1:1"), ("T_ADDR", "127.0.0.1:2")]),
    );
    assert_eq!(args, ["test"], "the new name wins");
    assert!(notes.is_empty());
}

#[test]
fn a_minimum_is_refused_below_never_raised_to() {
    assert_eq!(at_least::<50, u64>("50"), Ok(50));
    assert_eq!(
        at_least::<50, u64>("49"),
        Err::<u64, _>("must be at least 50".into())
    );
    assert_eq!(
        at_least::<1, u32>("0"),
        Err::<u32, _>("must be at least 1 (0 does not turn this off)".into())
    );
    assert_eq!(
        at_least::<1, u32>("4294967296"),
        Err::<u32, _>("is too large".into())
    );
    assert!(at_least::<1, u32>("ten").is_err());
}

#[test]
fn a_limit_is_at_least_one_and_says_so() {
    use std::num::{NonZeroU32, NonZeroU64};
    assert_eq!(
        at_least_one::<NonZeroU64>(" 5000 ").ok(),
        NonZeroU64::new(5000)
    );
    assert_eq!(at_least_one::<NonZeroU32>("1"), Ok(NonZeroU32::MIN));
    let refused = |text| at_least_one::<NonZeroU32>(text).unwrap_err();
    assert!(refused("0").contains("does not turn this limit off"));
    assert!(refused("ten").contains("whole number"));
    assert!(refused("-1").contains("whole number"));
    assert!(refused("").contains("whole number"));
    assert_eq!(refused("4294967296"), "is too large");
    assert_eq!(refused("99999999999999999999999"), "is too large");
}
