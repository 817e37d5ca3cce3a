//! What the settings may be refused for, and the choices that are not a value alone.

/// What the start does with the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Migrations {
    /// Apply them, then serve.
    Apply,
    /// Wait until they were applied (by a job), then serve.
    Skip,
    /// Apply them and exit.
    Only,
}

/// Why the settings were refused. Names the setting and the rule, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A setting is missing.
    #[error("{setting} is not set: {hint}")]
    Missing {
        /// The environment variable.
        setting: &'static str,
        /// How to set it.
        hint: &'static str,
    },
    /// Several settings are missing: each, on a line of its own.
    #[error("{} settings are missing:{}", .0.len(), .0.iter().map(|err| format!("\n  - {err}")).collect::<String>())]
    Several(Vec<SettingsError>),
    /// A setting is malformed.
    #[error("{setting} is malformed: {rule}")]
    Malformed {
        /// The environment variable.
        setting: &'static str,
        /// What it must look like.
        rule: String,
    },
}
