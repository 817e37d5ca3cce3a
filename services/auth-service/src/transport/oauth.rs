//! The RPCs behind the gateway's OAuth 2.0 endpoints that are not a login or a refresh:
//! token introspection (RFC 7662).

use wxauth_proto::v1::{IntrospectTokenRequest, IntrospectTokenResponse};

use super::{AuthApi, convert::timestamp};
use crate::{
    domain::{Bearer, CallContext, scope::Scopes},
    error::AuthError,
    tokens::Introspected,
};

impl AuthApi {
    pub(super) async fn introspect_token_rpc(
        &self,
        req: IntrospectTokenRequest,
        context: CallContext,
    ) -> Result<IntrospectTokenResponse, AuthError> {
        // The endpoint authenticated the client by name and key; the key was checked for
        // this call, so the name must be that key's.
        if !req.client_name.is_empty()
            && context.caller.as_deref() != Some(req.client_name.as_str())
        {
            return Err(AuthError::CallerUnauthenticated);
        }
        let token = Bearer::parse("token", req.token)?;
        let hint = Some(req.token_type_hint.as_str()).filter(|hint| !hint.is_empty());
        let iss = self.tokens.issuer().unwrap_or(wxauth_token::LEGACY_ISSUER);
        Ok(
            match self.tokens.introspect(&token, hint, &context).await? {
                Introspected::Inactive => IntrospectTokenResponse::default(),
                Introspected::Access(claims) => IntrospectTokenResponse {
                    active: true,
                    token_type: "access_token".into(),
                    scope: claims
                        .scope
                        .clone()
                        .unwrap_or_else(|| Scopes::default_grant().to_string()),
                    client_id: claims
                        .client_id
                        .clone()
                        .unwrap_or_else(|| claims.aud.clone()),
                    sub: claims.sub.clone(),
                    aud: claims.aud.clone(),
                    iss: claims.iss.clone(),
                    exp: timestamp(claims.exp),
                    iat: timestamp(claims.iat),
                    jti: claims.jti.clone(),
                    session_id: claims.sid.clone(),
                    openid: claims.openid.clone(),
                    unionid: claims.unionid.clone().unwrap_or_default(),
                    account_id: claims.acc.clone().unwrap_or_default(),
                },
                Introspected::Refresh(record) => IntrospectTokenResponse {
                    active: true,
                    token_type: "refresh_token".into(),
                    scope: Scopes::stored(record.scope.as_deref()).to_string(),
                    client_id: record.appid.clone(),
                    sub: record.user_id.to_string(),
                    aud: record.appid,
                    iss: iss.to_owned(),
                    exp: timestamp(record.presented.expires_at.secs()),
                    iat: None,
                    jti: String::new(),
                    session_id: record.family_id.to_string(),
                    openid: record.openid.unwrap_or_default(),
                    unionid: record.unionid.unwrap_or_default(),
                    account_id: record
                        .account_id
                        .map(|id| id.to_string())
                        .unwrap_or_default(),
                },
            },
        )
    }
}
