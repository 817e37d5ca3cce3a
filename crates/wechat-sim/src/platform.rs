//! WeChat's platform state beyond login codes: each app's access_tokens (stable_token
//! semantics), the codes of the `getPhoneNumber` button, and what tests count.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::crypto;

/// How long before its expiry WeChat hands out a new stable token (the old one keeps
/// working until it expires: the overlap).
pub(crate) const TOKEN_OVERLAP: Duration = Duration::from_secs(5 * 60);
/// The shortest gap between two `force_refresh` calls of one app.
pub(crate) const FORCE_REFRESH_GAP: Duration = Duration::from_secs(30);
/// How long a `getPhoneNumber` code is valid.
pub(crate) const PHONE_CODE_TTL: Duration = Duration::from_secs(5 * 60);

/// One issued access_token.
#[derive(Debug, Clone)]
pub(crate) struct IssuedToken {
    pub(crate) appid: String,
    pub(crate) valid_until: Instant,
}

/// Why WeChat refuses an access_token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRefusal {
    /// 41001: none was sent.
    Missing,
    /// 40001: not a token WeChat issued, or one it invalidated.
    Invalid,
    /// 42001: expired.
    Expired,
}

impl TokenRefusal {
    pub(crate) fn errcode(self) -> (i64, &'static str) {
        match self {
            Self::Missing => (41001, "access_token missing"),
            Self::Invalid => (
                40001,
                "invalid credential, access_token is invalid or not latest",
            ),
            Self::Expired => (42001, "access_token expired"),
        }
    }
}

/// A phone code, as WeChat remembers it.
#[derive(Debug, Clone)]
pub(crate) struct PhoneCode {
    pub(crate) appid: String,
    pub(crate) openid: String,
    pub(crate) phone_number: String,
    pub(crate) pure_phone_number: String,
    /// Sent as a number when it parses as one and the test asked for it (WeChat's own
    /// example), as a string otherwise (what WeChat sends in practice).
    pub(crate) country_code: serde_json::Value,
    pub(crate) minted: Instant,
    pub(crate) used: bool,
}

/// The platform state of the simulator.
#[derive(Debug)]
pub(crate) struct Platform {
    /// How long a new access_token lives.
    pub(crate) token_ttl: Duration,
    /// Every token still known, by its text.
    pub(crate) tokens: HashMap<String, IssuedToken>,
    /// The current (newest) token of each app.
    pub(crate) current: HashMap<String, String>,
    /// When each app last forced a refresh.
    pub(crate) last_forced: HashMap<String, Instant>,
    /// `stable_token` calls per app that were answered with a token.
    pub(crate) token_fetches: HashMap<String, u64>,
    /// New tokens issued per app: a fetch that got no new token was not needed.
    pub(crate) tokens_issued: HashMap<String, u64>,
    /// Calls refused because of their access_token (40001, 42001).
    pub(crate) token_refusals: u64,
    /// Phone codes by their text.
    pub(crate) phone_codes: HashMap<String, PhoneCode>,
}

impl Default for Platform {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(7200),
            tokens: HashMap::new(),
            current: HashMap::new(),
            last_forced: HashMap::new(),
            token_fetches: HashMap::new(),
            tokens_issued: HashMap::new(),
            token_refusals: 0,
            phone_codes: HashMap::new(),
        }
    }
}

impl Platform {
    /// `stable_token`: the current token while it has more than the overlap left, else a
    /// new one (the old keeps working until it expires). With `force`, always a new one, and
    /// the old one stops at once. Returns (token, remaining seconds), or an errcode.
    pub(crate) fn stable_token(
        &mut self,
        appid: &str,
        force: bool,
    ) -> Result<(String, u64), (i64, &'static str)> {
        let now = Instant::now();
        if force {
            if self
                .last_forced
                .get(appid)
                .is_some_and(|at| now.duration_since(*at) < FORCE_REFRESH_GAP)
            {
                return Err((45009, "reach max api daily quota limit"));
            }
            self.last_forced.insert(appid.to_owned(), now);
            if let Some(old) = self.current.remove(appid) {
                self.tokens.remove(&old);
            }
        }
        let reusable = self
            .current
            .get(appid)
            .and_then(|token| self.tokens.get(token).map(|issued| (token, issued)))
            .filter(|(_, issued)| issued.valid_until.saturating_duration_since(now) > TOKEN_OVERLAP)
            .map(|(token, issued)| (token.clone(), issued.valid_until));
        let (token, valid_until) = match reusable {
            Some(found) => found,
            None => {
                let token = format!("sim-at-{}", hex::encode(crypto::random_bytes::<24>()));
                let valid_until = now + self.token_ttl;
                self.tokens.insert(
                    token.clone(),
                    IssuedToken {
                        appid: appid.to_owned(),
                        valid_until,
                    },
                );
                self.current.insert(appid.to_owned(), token.clone());
                *self.tokens_issued.entry(appid.to_owned()).or_default() += 1;
                (token, valid_until)
            }
        };
        *self.token_fetches.entry(appid.to_owned()).or_default() += 1;
        Ok((token, valid_until.saturating_duration_since(now).as_secs()))
    }

    /// The app a token belongs to, if WeChat would take it now; counts refusals.
    pub(crate) fn check_token(&mut self, token: Option<&str>) -> Result<String, TokenRefusal> {
        let refusal = match token.filter(|token| !token.is_empty()) {
            None => TokenRefusal::Missing,
            Some(token) => match self.tokens.get(token) {
                None => TokenRefusal::Invalid,
                Some(issued) if issued.valid_until <= Instant::now() => TokenRefusal::Expired,
                Some(issued) => return Ok(issued.appid.clone()),
            },
        };
        self.token_refusals += 1;
        Err(refusal)
    }

    /// Test control: every token of the app expires now (42001 from now on).
    pub(crate) fn expire_tokens(&mut self, appid: &str) {
        let now = Instant::now();
        for issued in self
            .tokens
            .values_mut()
            .filter(|issued| issued.appid == appid)
        {
            issued.valid_until = now;
        }
    }

    /// Test control: every token of the app is invalidated (40001), as when someone else
    /// forced a refresh.
    pub(crate) fn invalidate_tokens(&mut self, appid: &str) {
        self.tokens.retain(|_, issued| issued.appid != appid);
        self.current.remove(appid);
    }

    /// Mints a `getPhoneNumber` code for a user.
    pub(crate) fn mint_phone_code(&mut self, code: PhoneCode) -> String {
        let now = Instant::now();
        self.phone_codes
            .retain(|_, code| now.duration_since(code.minted) <= PHONE_CODE_TTL);
        let text = hex::encode(crypto::random_bytes::<16>());
        self.phone_codes.insert(text.clone(), code);
        text
    }

    /// Uses a phone code up: the code's entry when it is valid for `appid` (and `openid`,
    /// when given), else WeChat's 40029.
    pub(crate) fn use_phone_code(
        &mut self,
        appid: &str,
        code: &str,
        openid: Option<&str>,
    ) -> Result<PhoneCode, (i64, &'static str)> {
        const INVALID: (i64, &str) = (40029, "invalid code");
        let entry = self.phone_codes.get_mut(code).ok_or(INVALID)?;
        if entry.appid != appid
            || entry.used
            || entry.minted.elapsed() > PHONE_CODE_TTL
            || openid.is_some_and(|openid| openid != entry.openid)
        {
            return Err(INVALID);
        }
        entry.used = true;
        Ok(entry.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// API.md: stable_token hands out the current token until five minutes before it
    /// expires; force_refresh makes a new one and ends the old, at most every 30 s.
    #[test]
    fn stable_tokens_behave_as_documented() {
        let mut platform = Platform::default();
        let (first, expires_in) = platform.stable_token("wxa", false).unwrap();
        assert!(expires_in > 7000);
        assert_eq!(platform.stable_token("wxa", false).unwrap().0, first);
        assert_eq!(platform.check_token(Some(&first)), Ok("wxa".to_owned()));

        let (forced, _) = platform.stable_token("wxa", true).unwrap();
        assert_ne!(forced, first);
        assert_eq!(
            platform.check_token(Some(&first)),
            Err(TokenRefusal::Invalid)
        );
        assert_eq!(
            platform.stable_token("wxa", true).unwrap_err().0,
            45009,
            "a second forced refresh within 30 s is refused"
        );

        // Inside the overlap a new token is handed out and the old one keeps working.
        let mut short = Platform {
            token_ttl: Duration::from_secs(200),
            ..Platform::default()
        };
        let (old, _) = short.stable_token("wxb", false).unwrap();
        let (new, _) = short.stable_token("wxb", false).unwrap();
        assert_ne!(old, new);
        assert!(short.check_token(Some(&old)).is_ok());
        assert_eq!(short.tokens_issued["wxb"], 2);

        short.expire_tokens("wxb");
        assert_eq!(short.check_token(Some(&new)), Err(TokenRefusal::Expired));
        assert_eq!(short.check_token(None), Err(TokenRefusal::Missing));
        assert_eq!(short.token_refusals, 2);
    }

    #[test]
    fn a_phone_code_works_once_for_its_app_and_user() {
        let mut platform = Platform::default();
        let code = platform.mint_phone_code(PhoneCode {
            appid: "wxa".into(),
            openid: "o1".into(),
            phone_number: "1".into(),
            pure_phone_number: "1".into(),
            country_code: "86".into(),
            minted: Instant::now(),
            used: false,
        });
        assert_eq!(
            platform.use_phone_code("wxb", &code, None).unwrap_err().0,
            40029
        );
        assert_eq!(
            platform
                .use_phone_code("wxa", &code, Some("o2"))
                .unwrap_err()
                .0,
            40029
        );
        assert!(platform.use_phone_code("wxa", &code, Some("o1")).is_ok());
        assert_eq!(
            platform.use_phone_code("wxa", &code, None).unwrap_err().0,
            40029
        );
        let stale = platform.mint_phone_code(PhoneCode {
            appid: "wxa".into(),
            openid: "o1".into(),
            phone_number: "1".into(),
            pure_phone_number: "1".into(),
            country_code: "86".into(),
            minted: Instant::now() - PHONE_CODE_TTL - Duration::from_secs(1),
            used: false,
        });
        assert_eq!(
            platform.use_phone_code("wxa", &stale, None).unwrap_err().0,
            40029
        );
    }
}
