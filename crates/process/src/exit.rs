//! The exit codes every binary stops with when it cannot start, from sysexits(3), so an
//! orchestrator or a script can tell a mistake in the settings from an outage.

use std::process::ExitCode;

/// A setting is missing or malformed (sysexits' EX_USAGE): fix the settings; retrying will
/// not help.
pub const CONFIG: u8 = 64;
/// Something a setting points at cannot be used now (sysexits' EX_UNAVAILABLE): a port in
/// use, a database that does not answer. Retrying may help.
pub const UNAVAILABLE: u8 = 69;

/// Why a start failed, as a binary's start-up error tells it.
pub trait StartFailure {
    /// Whether the settings are at fault (exit 64) rather than something they point at (69).
    fn is_settings(&self) -> bool;

    /// The exit code for it.
    fn exit_code(&self) -> ExitCode {
        ExitCode::from(if self.is_settings() {
            CONFIG
        } else {
            UNAVAILABLE
        })
    }
}
