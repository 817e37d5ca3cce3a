//! A user's profile and phone, and what of a decrypted payload may change them: pure rules,
//! tested without a database.

use wxauth_wechat::crypto::{PhoneInfo, UserInfo};

/// The nickname WeChat returns since 2021 instead of the real one.
pub const PLACEHOLDER_NICKNAME: &str = "微信用户";

/// What is known of a user's profile; `None` where nothing real is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Nickname.
    pub nickname: Option<String>,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// 1 male, 2 female (0, unknown, and values WeChat does not use are never stored).
    pub gender: Option<i32>,
    /// Language, for example `zh_CN`.
    pub language: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Province.
    pub province: Option<String>,
    /// Country.
    pub country: Option<String>,
}

/// A phone number, as WeChat gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    /// With the country code, for example `+86 13800138000` (as WeChat writes it).
    pub number: String,
    /// Without the country code.
    pub pure_number: String,
    /// The country code, for example `86`, when WeChat gave one.
    pub country_code: Option<String>,
}

impl Phone {
    /// The number as a caller without the `pii` scope sees it: the middle of the national
    /// number starred (`138****8000`), in both forms. The country code stays: it says
    /// nothing of who the user is.
    pub fn masked(&self) -> Self {
        let pure_number = mask_digits(&self.pure_number);
        let number = if self.number.contains(&self.pure_number) {
            self.number.replacen(&self.pure_number, &pure_number, 1)
        } else {
            mask_digits(&self.number)
        };
        Self {
            number,
            pure_number,
            country_code: self.country_code.clone(),
        }
    }
}

/// `text` with all but its first three and last four characters starred; a short number
/// keeps less (its last two when it has five to seven characters, nothing below that), so a
/// mask never shows most of a number.
fn mask_digits(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let (head, tail) = match chars.len() {
        0..=4 => (0, 0),
        5..=7 => (0, 2),
        _ => (3, 4),
    };
    chars
        .iter()
        .enumerate()
        .map(|(at, c)| {
            if at < head || at >= chars.len() - tail {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// What WeChat's content check (`msgSecCheck`) said of a stored nickname.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicknameCheck {
    /// Nothing wrong.
    Passed,
    /// WeChat suggests a person look at it: stored, flagged for operators.
    Review,
    /// The check could not be made and the settings let the nickname through.
    Unchecked,
}

impl NicknameCheck {
    /// The name stored.
    pub fn name(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Review => "review",
            Self::Unchecked => "unchecked",
        }
    }

    /// The check of a stored name; `None` for one this release does not know.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Passed, Self::Review, Self::Unchecked]
            .into_iter()
            .find(|check| check.name() == name)
    }
}

/// What a login may write to a user. `None` (in the profile's fields too) means "keep what
/// is stored": nothing real is ever overwritten with nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// Written when WeChat gives one; never erased.
    pub unionid: Option<String>,
    /// Profile fields to write.
    pub profile: Profile,
    /// The phone, when this login brought one.
    pub phone: Option<Phone>,
}

/// The text worth keeping: trimmed, without NUL characters, `None` when nothing is left.
/// WeChat passes on whatever a user typed, and PostgreSQL's text cannot hold a NUL: kept,
/// one would make the whole login fail.
fn real(value: Option<String>) -> Option<String> {
    value
        .map(|text| text.replace('\0', "").trim().to_owned())
        .filter(|text| !text.is_empty())
}

impl UserUpdate {
    /// Only the unionid (a silent login).
    pub fn unionid(unionid: Option<String>) -> Self {
        Self {
            unionid: real(unionid),
            ..Self::default()
        }
    }

    /// The update a `wx.getUserInfo()` payload allows. WeChat's anonymous profile (the
    /// placeholder nickname with a grey avatar and gender 0) must not overwrite a real one,
    /// so its nickname, avatar and gender are dropped.
    pub fn from_user_info(info: UserInfo, session_unionid: Option<String>) -> Self {
        let anonymous = info.nick_name.as_deref().map(str::trim) == Some(PLACEHOLDER_NICKNAME);
        let keep_if_real = |value: Option<String>| if anonymous { None } else { real(value) };
        Self {
            unionid: real(info.union_id).or_else(|| real(session_unionid)),
            profile: Profile {
                nickname: keep_if_real(info.nick_name),
                avatar_url: keep_if_real(info.avatar_url),
                gender: info
                    .gender
                    .filter(|gender| !anonymous && matches!(gender, 1 | 2)),
                language: real(info.language),
                city: real(info.city),
                province: real(info.province),
                country: real(info.country),
            },
            phone: None,
        }
    }

    /// The update a legacy phone payload allows: the number, with its country code kept.
    pub fn from_phone(info: PhoneInfo, session_unionid: Option<String>) -> Self {
        let phone = match (
            real(Some(info.phone_number)),
            real(Some(info.pure_phone_number)),
        ) {
            (Some(number), Some(pure_number)) => Some(Phone {
                number,
                pure_number,
                country_code: real(Some(info.country_code)),
            }),
            _ => None,
        };
        Self {
            unionid: real(session_unionid),
            profile: Profile::default(),
            phone,
        }
    }
}

/// What the user filled in themselves (`UpdateProfile`): checked, at least one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilledProfile {
    /// 1 to 64 characters, no control characters.
    pub nickname: Option<String>,
    /// An https URL of printable ASCII, at most 1,024 bytes.
    pub avatar_url: Option<String>,
}

/// The longest nickname, in characters.
pub const MAX_NICKNAME_CHARS: usize = 64;
/// The longest avatar URL, in bytes.
pub const MAX_AVATAR_URL_BYTES: usize = 1024;

/// Why a filled-in profile is refused; each names the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidProfile {
    /// Neither field was sent.
    #[error("send nickname, avatar_url or both")]
    Empty,
    /// The nickname breaks its rule.
    #[error("nickname must be 1 to 64 characters without control characters")]
    Nickname,
    /// The avatar URL breaks its rule.
    #[error("avatar_url must be an https:// URL of printable ASCII, at most 1024 bytes")]
    AvatarUrl,
    /// The avatar URL is not on a host the app serves avatars from.
    #[error(
        "avatar_url must be on a host this mini-program keeps avatars on (WXAUTH_AVATAR_HOSTS): \
         upload the file chooseAvatar gave to the app's storage first and send that URL"
    )]
    AvatarHost,
}

/// The host of an `https://` URL that [`FilledProfile::parse`] accepted, lowercased, without
/// user info or port.
fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host_port.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Whether `url` is on one of `hosts`: a host matches itself, and an entry starting with a
/// dot (`.example.com`) matches every host under it. Without a list every https host is
/// accepted (a deployment that names none keeps its behaviour).
pub fn avatar_on_allowed_host(url: &str, hosts: Option<&[String]>) -> Result<(), InvalidProfile> {
    let Some(hosts) = hosts else {
        return Ok(());
    };
    let host = url_host(url).ok_or(InvalidProfile::AvatarHost)?;
    let allowed = hosts.iter().any(|entry| {
        if entry.starts_with('.') {
            host.ends_with(entry.as_str())
        } else {
            host == *entry
        }
    });
    if allowed {
        Ok(())
    } else {
        Err(InvalidProfile::AvatarHost)
    }
}

impl FilledProfile {
    /// Checks what the mini-program sent. The same rules are published in the REST
    /// contract as patterns, so they are exact, not "looks like a URL".
    pub fn parse(
        nickname: Option<String>,
        avatar_url: Option<String>,
    ) -> Result<Self, InvalidProfile> {
        if nickname.is_none() && avatar_url.is_none() {
            return Err(InvalidProfile::Empty);
        }
        if let Some(nickname) = &nickname {
            let chars = nickname.chars().count();
            if chars == 0 || chars > MAX_NICKNAME_CHARS || nickname.chars().any(char::is_control) {
                return Err(InvalidProfile::Nickname);
            }
        }
        if let Some(url) = &avatar_url {
            let rest = url.strip_prefix("https://").unwrap_or_default();
            let valid = url.len() <= MAX_AVATAR_URL_BYTES
                && !rest.is_empty()
                && !rest.starts_with('/')
                && rest.bytes().all(|b| b.is_ascii_graphic());
            if !valid {
                return Err(InvalidProfile::AvatarUrl);
            }
        }
        Ok(Self {
            nickname,
            avatar_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use wxauth_wechat::crypto::Watermark;

    use super::*;

    fn info(nick: &str, avatar: &str, gender: i32) -> UserInfo {
        UserInfo {
            open_id: "o1".into(),
            nick_name: Some(nick.into()),
            gender: Some(gender),
            language: Some("zh_CN".into()),
            city: Some(String::new()),
            province: Some(" ".into()),
            country: Some("CN".into()),
            avatar_url: Some(avatar.into()),
            union_id: None,
            watermark: Watermark {
                appid: "wx".into(),
                timestamp: 0,
            },
        }
    }

    #[test]
    fn a_real_profile_is_written_and_blank_fields_are_not() {
        let update = UserUpdate::from_user_info(info("Band", "https://a/1", 1), Some("u1".into()));
        assert_eq!(update.profile.nickname.as_deref(), Some("Band"));
        assert_eq!(update.profile.avatar_url.as_deref(), Some("https://a/1"));
        assert_eq!(update.profile.gender, Some(1));
        assert_eq!(update.unionid.as_deref(), Some("u1"));
        assert_eq!(update.profile.city, None);
        assert_eq!(update.profile.province, None);
        assert_eq!(update.profile.country.as_deref(), Some("CN"));
        assert_eq!(update.phone, None);
    }

    #[test]
    fn the_anonymous_placeholder_never_overwrites_a_profile() {
        let update =
            UserUpdate::from_user_info(info(PLACEHOLDER_NICKNAME, "https://grey", 0), None);
        assert_eq!(update.profile.nickname, None);
        assert_eq!(update.profile.avatar_url, None);
        assert_eq!(update.profile.gender, None);
        assert_eq!(update.profile.language.as_deref(), Some("zh_CN"));
    }

    #[test]
    fn the_payload_unionid_wins_over_the_sessions() {
        let mut payload = info("Band", "a", 1);
        payload.union_id = Some("from-data".into());
        let update = UserUpdate::from_user_info(payload, Some("from-session".into()));
        assert_eq!(update.unionid.as_deref(), Some("from-data"));
    }

    #[test]
    fn nuls_are_dropped_and_only_wechats_genders_are_kept() {
        let mut payload = info("a\0b\0", "https://a/\u{0}1", 1);
        payload.city = Some("\0".into());
        payload.language = Some(" \0zh_CN".into());
        let update = UserUpdate::from_user_info(payload, None);
        assert_eq!(update.profile.nickname.as_deref(), Some("ab"));
        assert_eq!(update.profile.gender, Some(1));
        for odd in [-1, 3, i32::MAX] {
            let update = UserUpdate::from_user_info(info("Band", "https://a/1", odd), None);
            assert_eq!(update.profile.gender, None, "gender {odd} is not WeChat's");
        }
        assert_eq!(update.profile.avatar_url.as_deref(), Some("https://a/1"));
        assert_eq!(update.profile.city, None);
        assert_eq!(update.profile.language.as_deref(), Some("zh_CN"));

        let phone = UserUpdate::from_phone(
            PhoneInfo {
                phone_number: "+86 138\u{0}00138000".into(),
                pure_phone_number: "\0".into(),
                country_code: "86\0".into(),
                watermark: Watermark {
                    appid: "wx".into(),
                    timestamp: 0,
                },
            },
            None,
        );
        assert_eq!(phone.phone, None, "a number with nothing left is no number");
    }

    #[test]
    fn a_phone_keeps_its_country_code_and_touches_no_profile_field() {
        let update = UserUpdate::from_phone(
            PhoneInfo {
                phone_number: "+852 61234567".into(),
                pure_phone_number: "61234567".into(),
                country_code: "852".into(),
                watermark: Watermark {
                    appid: "wx".into(),
                    timestamp: 0,
                },
            },
            None,
        );
        let phone = update.phone.unwrap();
        assert_eq!(phone.country_code.as_deref(), Some("852"));
        assert_eq!(phone.pure_number, "61234567");
        assert_eq!(update.profile, Profile::default());
    }

    #[test]
    fn masks_keep_the_ends_of_a_number_only() {
        let phone = |number: &str, pure: &str| Phone {
            number: number.into(),
            pure_number: pure.into(),
            country_code: Some("86".into()),
        };
        let masked = phone("+86 13800138000", "13800138000").masked();
        assert_eq!(masked.pure_number, "138****8000");
        assert_eq!(masked.number, "+86 138****8000");
        assert_eq!(masked.country_code.as_deref(), Some("86"));
        assert_eq!(
            phone("13800138000", "13800138000").masked().number,
            "138****8000"
        );
        assert_eq!(
            phone("+852 61234567", "61234567").masked().pure_number,
            "612*4567"
        );
        assert_eq!(phone("12345", "12345").masked().pure_number, "***45");
        assert_eq!(phone("1234", "1234").masked().pure_number, "****");
        // A number that does not contain its pure form is masked on its own.
        assert_eq!(
            phone("+86 138 0013 8000", "13800138000").masked().number,
            "+86**********8000"
        );
    }

    #[test]
    fn avatars_must_be_on_a_listed_host_when_the_app_lists_any() {
        let hosts = vec!["cdn.example.com".to_owned(), ".img.example.org".to_owned()];
        let check = |url: &str| avatar_on_allowed_host(url, Some(&hosts));
        assert_eq!(check("https://cdn.example.com/a.png"), Ok(()));
        assert_eq!(check("https://CDN.example.com:8443/a.png"), Ok(()));
        assert_eq!(check("https://a.img.example.org/x"), Ok(()));
        for bad in [
            "https://img.example.org/x",
            "https://evil.com/cdn.example.com",
            "https://cdn.example.com.evil.com/a",
            "https://cdn.example.com@evil.com/a",
            "https://xcdn.example.com/a",
            "https://evilimg.example.org/x",
        ] {
            assert_eq!(check(bad), Err(InvalidProfile::AvatarHost), "{bad}");
        }
        assert_eq!(avatar_on_allowed_host("https://any.host/a", None), Ok(()));
    }

    #[test]
    fn a_filled_in_profile_follows_its_published_rules() {
        let ok = |nick: Option<&str>, url: Option<&str>| {
            FilledProfile::parse(nick.map(str::to_owned), url.map(str::to_owned))
        };
        assert!(ok(Some("小明"), None).is_ok());
        assert!(ok(None, Some("https://thirdwx.qlogo.cn/mmopen/x/132")).is_ok());
        assert!(ok(Some(&"界".repeat(64)), Some("https://a")).is_ok());
        assert_eq!(ok(None, None), Err(InvalidProfile::Empty));
        for bad in [
            String::new(),
            "tab\there".into(),
            "x\u{85}".into(),
            "界".repeat(65),
        ] {
            assert_eq!(
                ok(Some(&bad), None),
                Err(InvalidProfile::Nickname),
                "{bad:?}"
            );
        }
        for bad in [
            "http://a/b".to_owned(),
            "https://".into(),
            "https:///path".into(),
            "https://a b".into(),
            "https://例子.cn/a".into(),
            format!("https://a/{}", "x".repeat(1015)),
        ] {
            assert_eq!(
                ok(None, Some(&bad)),
                Err(InvalidProfile::AvatarUrl),
                "{bad:?}"
            );
        }
        assert!(ok(None, Some(&format!("https://a/{}", "x".repeat(1014)))).is_ok());
    }
}
