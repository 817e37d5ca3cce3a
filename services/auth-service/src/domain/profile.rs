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
    /// 1 male, 2 female (0, unknown, is never stored).
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

fn real(value: Option<String>) -> Option<String> {
    value
        .map(|text| text.trim().to_owned())
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
                gender: info.gender.filter(|gender| !anonymous && *gender != 0),
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
}
