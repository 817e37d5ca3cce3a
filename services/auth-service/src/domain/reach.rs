//! What a caller may reach: the apps whose users it may name or see, and whether it sees
//! phone numbers in full. One wxauth may serve several businesses; a caller key of one must
//! not read or change the users of another.

use std::sync::Arc;

/// A caller's reach, from its entry in the settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// The apps it serves; `None`: every app (an entry that names none, as before).
    pub apps: Option<Arc<[String]>>,
    /// Whether it sees phone numbers in full (the `pii` scope); masked otherwise.
    pub pii: bool,
}

/// A call named or would return a user of an app out of the caller's reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfReach;

impl Reach {
    /// Every app, phone numbers in full: the service's own work (the purge).
    pub fn everything() -> Self {
        Self {
            apps: None,
            pii: true,
        }
    }

    /// Whether the users of `appid` are within reach.
    pub fn app(&self, appid: &str) -> Result<(), OutOfReach> {
        match &self.apps {
            Some(apps) if !apps.iter().any(|app| app == appid) => Err(OutOfReach),
            _ => Ok(()),
        }
    }

    /// Whether every app of `appids` is within reach.
    pub fn all<'a>(&self, mut appids: impl Iterator<Item = &'a str>) -> Result<(), OutOfReach> {
        if appids.all(|appid| self.app(appid).is_ok()) {
            Ok(())
        } else {
            Err(OutOfReach)
        }
    }

    /// The apps a search is kept to; `None`: all.
    pub fn apps(&self) -> Option<&[String]> {
        self.apps.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_without_apps_reaches_every_app_and_one_with_apps_only_those() {
        let all = Reach::default();
        assert_eq!(all.app("wx1"), Ok(()));
        assert!(!all.pii, "phone numbers are masked unless granted");
        let some = Reach {
            apps: Some(vec!["wx1".to_owned(), "wx2".to_owned()].into()),
            pii: false,
        };
        assert_eq!(some.app("wx2"), Ok(()));
        assert_eq!(some.app("wx3"), Err(OutOfReach));
        assert_eq!(some.all(["wx1", "wx2"].into_iter()), Ok(()));
        assert_eq!(some.all(["wx1", "wx3"].into_iter()), Err(OutOfReach));
        assert_eq!(some.apps(), Some(&["wx1".to_owned(), "wx2".to_owned()][..]));
    }
}
