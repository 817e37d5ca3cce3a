//! The OpenAPI 3 document of every route, generated from the handlers' annotations and the
//! view types, served at `/openapi.json`.

use axum::{Json, response::IntoResponse};
use utoipa::{
    Modify, OpenApi,
    openapi::{
        ContentBuilder, Ref, RefOr, ResponseBuilder,
        header::HeaderBuilder,
        schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, SchemaType, Type},
        security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    },
};

use crate::routes::{me, oauth, openid, ops, seed, tokens};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "wxauth gateway",
        description = "WeChat Mini Program login: the seed-compatible routes, the /v1 API, and an OAuth 2.0 / OpenID Connect surface. Every answer of the seed and /v1 routes is an envelope {code, msg, data} (code 10000 is success); the JWK Set, the discovery documents and the /oauth routes answer in their standards' shapes."
    ),
    paths(
        seed::get_session_key,
        seed::save_user,
        ops::healthz,
        tokens::login,
        tokens::refresh,
        tokens::logout,
        me::me,
        me::update_profile,
        me::bind_phone,
        me::delete_me,
        me::export_me,
        ops::jwks,
        openid::openid_configuration,
        openid::authorization_server,
        oauth::token,
        oauth::introspect,
        oauth::revoke,
        openid::userinfo,
        openapi_json,
    ),
    modifiers(&BearerAuth, &SignedRawData, &SomeProfileField, &LimitAnswers, &AnswerHeaders),
    tags(
        (name = "seed", description = "What the seed mini-program calls, unchanged"),
        (name = "v1", description = "The versioned API for new mini-programs"),
        (name = "operations", description = "For operators"),
        (name = "oauth", description = "OAuth 2.0 and OpenID Connect, for stock libraries"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` scheme the /v1 routes use.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// The answers of the limits every route but `/healthz` is under (`limits.rs`, `body.rs`):
/// 429 for a client with too many requests in flight, 503 for a gateway with too many, and
/// 408 for a body that does not arrive in time.
struct LimitAnswers;

impl Modify for LimitAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let answer = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                        .build(),
                )
                .build()
        };
        for (path, item) in &mut openapi.paths.paths {
            if path == crate::limits::HEALTH_PATH {
                continue;
            }
            let operations = [&mut item.get, &mut item.post, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                let has_body = operation.request_body.is_some();
                match responses.get_mut("429") {
                    Some(RefOr::T(limited)) => limited
                        .description
                        .push_str("; or this client has too many requests in flight"),
                    Some(RefOr::Ref(_)) => {}
                    None => {
                        responses.insert(
                            "429".into(),
                            answer(
                                "10006: this client has too many requests in flight (retry-after)",
                            )
                            .into(),
                        );
                    }
                }
                responses.entry("503".into()).or_insert_with(|| {
                    answer("10500: the gateway has too many requests in flight (retry-after)")
                        .into()
                });
                if has_body {
                    responses.entry("408".into()).or_insert_with(|| {
                        answer("10001: the body did not arrive in time after the headers").into()
                    });
                }
            }
        }
    }
}

/// The headers every answer carries (`lib.rs` sets them), `Retry-After` on answers that
/// pass (429, 503), and the challenge of a refused access token on the routes that take one.
struct AnswerHeaders;

impl Modify for AnswerHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let header = |description: &str| {
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some(description))
                .build()
        };
        let bearer_requirement = SecurityRequirement::new("bearer", Vec::<String>::new());
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.post, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                let bearer = operation
                    .security
                    .as_ref()
                    .is_some_and(|security| security.contains(&bearer_requirement));
                for (status, response) in &mut operation.responses.responses {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    response.headers.insert(
                        "Cache-Control".into(),
                        header("no-store: no cache may keep the answer (the JWK Set: public, max-age=300)"),
                    );
                    response
                        .headers
                        .insert("X-Content-Type-Options".into(), header("nosniff"));
                    if status == "429" || status == "503" {
                        response.headers.insert(
                            "Retry-After".into(),
                            header("seconds to wait before trying again"),
                        );
                    }
                    if bearer && status == "401" {
                        response.headers.insert(
                            "WWW-Authenticate".into(),
                            header(
                                "RFC 6750: Bearer realm=\"wxauth\" when no token was sent; with \
                                 error=\"invalid_token\" when it was refused, and \
                                 error_description=\"the access token expired\" when it expired",
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "the OpenAPI 3 document", body = Object)))]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// `POST /v1/me/profile` needs at least one of its fields, as a string.
struct SomeProfileField;

impl Modify for SomeProfileField {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(fields) = components.schemas.remove("ProfileBody") else {
            return;
        };
        let given = |field: &str| {
            ObjectBuilder::new()
                .property(field, ObjectBuilder::new().schema_type(Type::String))
                .required(field)
        };
        components.schemas.insert(
            "ProfileBody".into(),
            AllOfBuilder::new()
                .item(fields)
                .item(
                    AnyOfBuilder::new()
                        .description(Some("nickname, avatar_url or both"))
                        .item(given("nickname"))
                        .item(given("avatar_url")),
                )
                .into(),
        );
    }
}

/// What a field-by-field schema cannot say about `wxsmallusersave`: `rawData` and
/// `signature` come together, and only with `type=userinfo`; empty counts as absent.
struct SignedRawData;

impl Modify for SignedRawData {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(fields) = components.schemas.remove("SaveUserBody") else {
            return;
        };
        // JSON may send null for an absent field; a form cannot say null, only empty.
        for (name, absent) in [
            (
                "SaveUserBody",
                SchemaType::from_iter([Type::String, Type::Null]),
            ),
            ("SaveUserForm", SchemaType::Type(Type::String)),
        ] {
            let present = || {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
            };
            let absent = || {
                ObjectBuilder::new()
                    .schema_type(absent.clone())
                    .max_length(Some(0))
            };
            let signed = ObjectBuilder::new()
                .property("rawData", present())
                .property("signature", present())
                .property(
                    "type",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["userinfo"])),
                )
                .required("rawData")
                .required("signature");
            let unsigned = ObjectBuilder::new()
                .property("rawData", absent())
                .property("signature", absent());
            components.schemas.insert(
                name.into(),
                AllOfBuilder::new()
                    .item(fields.clone())
                    .item(
                        AnyOfBuilder::new()
                            .description(Some(
                                "rawData and signature together (type userinfo), or neither",
                            ))
                            .item(signed)
                            .item(unsigned),
                    )
                    .into(),
            );
        }
        let form = openapi
            .paths
            .paths
            .get_mut("/wxauth/wxsmallusersave")
            .and_then(|item| item.post.as_mut())
            .and_then(|post| post.request_body.as_mut())
            .and_then(|body| body.content.get_mut("application/x-www-form-urlencoded"));
        if let Some(form) = form {
            form.schema = Some(Ref::from_schema_name("SaveUserForm").into());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use utoipa::OpenApi as _;

    use super::ApiDoc;
    use crate::input;

    fn doc() -> Value {
        serde_json::to_value(ApiDoc::openapi()).unwrap()
    }

    /// The documented limits are the enforced ones.
    #[test]
    fn the_documented_rules_are_the_enforced_ones() {
        let doc = doc();
        let fields = &doc["components"]["schemas"]["SaveUserBody"]["allOf"][0];
        let max = |field: &str| fields["properties"][field]["maxLength"].as_u64().unwrap();
        assert_eq!(max("uuid"), input::MAX_TOKEN_CHARS as u64);
        assert_eq!(max("encryptedData"), input::MAX_ENCRYPTED_DATA_CHARS as u64);
        assert_eq!(max("iv"), input::MAX_IV_CHARS as u64);
        assert_eq!(max("rawData"), input::MAX_RAW_DATA_CHARS as u64);
        assert_eq!(max("signature"), input::MAX_SIGNATURE_CHARS as u64);
        let required: Vec<&str> = fields["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap())
            .collect();
        for name in ["appid", "uuid", "type", "encryptedData", "iv"] {
            assert!(required.contains(&name), "{name} is required: {required:?}");
        }
        assert_eq!(
            doc["components"]["schemas"]["RefreshBody"]["properties"]["refresh_token"]["maxLength"],
            input::MAX_TOKEN_CHARS
        );
        for schema in ["LoginBody", "SaveUserBody"] {
            let appid = if schema == "LoginBody" {
                &doc["components"]["schemas"][schema]["properties"]["appid"]
            } else {
                &fields["properties"]["appid"]
            };
            assert_eq!(appid["pattern"], "^wx[0-9a-f]{16}$", "{schema}");
            assert_eq!(appid["type"], "string", "{schema}: not nullable");
        }
        let form = &doc["paths"]["/wxauth/wxsmallusersave"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
            ["schema"]["$ref"];
        assert_eq!(form, "#/components/schemas/SaveUserForm");
    }

    /// Every operation documents the statuses its failures can have.
    #[test]
    fn body_routes_document_every_refusal() {
        let doc = doc();
        for (path, method) in [
            ("/v1/login", "post"),
            ("/v1/token/refresh", "post"),
            ("/v1/logout", "post"),
            ("/wxauth/wxsmallusersave", "post"),
        ] {
            let responses = &doc["paths"][path][method]["responses"];
            for status in ["400", "413", "415", "503"] {
                assert!(
                    responses.get(status).is_some(),
                    "{method} {path} does not document {status}"
                );
            }
            for status in ["429", "503"] {
                let declared = &responses[status]["headers"]["Retry-After"];
                assert!(
                    responses.get(status).is_none() || declared.is_object(),
                    "{method} {path} {status} does not declare Retry-After"
                );
            }
        }
    }
}
