//! The OpenAPI 3 document of every route, generated from the handlers' annotations and the
//! view types, served at `/openapi.json`.

use axum::{Json, response::IntoResponse};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{routes, v1};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "wxauth gateway",
        description = "WeChat Mini Program login: the seed-compatible routes and the /v1 API. Every answer except the JWK Set is an envelope {code, msg, data}; code 10000 is success."
    ),
    paths(
        routes::get_session_key,
        routes::save_user,
        routes::healthz,
        v1::login,
        v1::refresh,
        v1::logout,
        v1::me,
        v1::jwks,
        openapi_json,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "seed", description = "What the seed mini-program calls, unchanged"),
        (name = "v1", description = "The versioned API for new mini-programs"),
        (name = "operations", description = "For operators"),
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
    }
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "the OpenAPI 3 document", body = Object)))]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
