//! The guide's migrations from the other Rust token crates (docs/src/migrating.md
//! includes each half): `jwt-authorizer`, `tower-oauth2-resource-server` and
//! `actix-web-httpauth`. Each "before" is written the way that crate's documentation
//! writes it; each "after" is the same route behind tokenlife. All eight apps answer
//! the same four requests, and each answer is checked against the status a client of
//! that route relies on: 200 with the scope, 403 without it, 401 for a forged or an
//! expired token.
//!
//! `cargo run -p examples --example guide_peers`

use serde::Deserialize;
use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "api://orders";

/// The claims every route reads.
#[derive(Clone, Debug, Deserialize)]
struct User {
    sub: String,
    #[serde(default)]
    scope: String,
}

impl User {
    fn may_read_orders(&self) -> bool {
        self.scope.split(' ').any(|s| s == "orders:read")
    }
}

/// A `Validator` over the same public JWKS the "before" apps are given (in production
/// `RemoteKeys::issuer(url)` fetches and refreshes it: see the identity providers
/// chapter).
fn validator(jwks: &str) -> Result<Validator, Box<dyn std::error::Error>> {
    Ok(
        Validator::builder(KeysetStore::new(Keyset::from_public_jwks_json(jwks)?))
            .issuer(ISS)
            .audience(AUD)
            .build()?,
    )
}

mod from_jwt_authorizer {
    use super::{AUD, ISS, User};

    // ANCHOR: jwt_authorizer_before
    /// Before: `jwt-authorizer` (on axum 0.7). `from_oidc(issuer)` or `from_jwks_url(url)`
    /// in production; the claims check is a function answering 403 when false.
    use jwt_authorizer::{IntoLayer, JwtAuthorizer, JwtClaims, Validation};

    async fn orders(JwtClaims(user): JwtClaims<User>) -> String {
        format!("orders of {}\n", user.sub)
    }

    pub(crate) async fn before(
        jwks: &str,
    ) -> Result<axum07::Router, jwt_authorizer::error::InitError> {
        let auth = JwtAuthorizer::<User>::from_jwks_text(jwks)
            .validation(Validation::new().iss(&[ISS]).aud(&[AUD]))
            .check(User::may_read_orders)
            .build()
            .await?;
        Ok(axum07::Router::new()
            .route("/orders", axum07::routing::get(orders))
            .layer(auth.into_layer()))
    }
    // ANCHOR_END: jwt_authorizer_before
}

mod from_oauth2_resource_server {
    use super::{AUD, ISS};

    // ANCHOR: oauth2_before
    /// Before: `tower-oauth2-resource-server`. `TenantConfiguration::builder(issuer_url)`
    /// in production; the claims arrive as an extension, scopes are the handler's job.
    use axum::http::StatusCode;
    use axum::{Extension, Router, routing::get};
    use tower_oauth2_resource_server::server::OAuth2ResourceServer;
    use tower_oauth2_resource_server::tenant::TenantConfiguration;

    async fn orders(Extension(claims): Extension<serde_json::Value>) -> Result<String, StatusCode> {
        let scopes = claims["scope"].as_str().unwrap_or_default();
        if !scopes.split(' ').any(|s| s == "orders:read") {
            return Err(StatusCode::FORBIDDEN);
        }
        Ok(format!("orders of {}\n", claims["sub"]))
    }

    pub(crate) async fn before(jwks: &str) -> Result<Router, Box<dyn std::error::Error>> {
        let tenant = TenantConfiguration::static_builder(jwks)
            .identifier(ISS)
            .audiences(&[AUD])
            .build()?;
        let server = OAuth2ResourceServer::<serde_json::Value>::builder()
            .add_tenant(tenant)
            .build()
            .await?;
        Ok(Router::new()
            .route("/orders", get(orders))
            .layer(server.into_layer()))
    }
    // ANCHOR_END: oauth2_before
}

mod on_axum {
    use super::User;

    // ANCHOR: axum_after
    /// After, for both axum crates: the layer checks signature, `iss`, `aud`, `exp`, `nbf`
    /// and the scope (403 with an RFC 6750 `insufficient_scope` challenge); the handler
    /// takes the claims.
    use axum::{Router, routing::get};
    use tokenlife_core::Validator;
    use tokenlife_tower::{Claims, TokenLifeLayer};

    async fn orders(Claims(user): Claims<User>) -> String {
        format!("orders of {}\n", user.sub)
    }

    pub(crate) fn after(validator: Validator) -> Router {
        Router::new()
            .route("/orders", get(orders))
            .layer(TokenLifeLayer::new(validator).require_scope("orders:read"))
    }
    // ANCHOR_END: axum_after
}

mod from_httpauth {
    use super::{AUD, ISS, User};

    // ANCHOR: httpauth_before
    /// Before: `actix-web-httpauth`. The validator function decodes the token with
    /// `jsonwebtoken`, checks the scope and hands the claims on in the extensions.
    use actix_web::dev::ServiceRequest;
    use actix_web::{App, Error, HttpMessage, error, web};
    use actix_web_httpauth::extractors::AuthenticationError;
    use actix_web_httpauth::extractors::bearer::{BearerAuth, Config};
    use actix_web_httpauth::middleware::HttpAuthentication;

    async fn check(
        req: ServiceRequest,
        credentials: BearerAuth,
    ) -> Result<ServiceRequest, (Error, ServiceRequest)> {
        let key = req
            .app_data::<web::Data<jsonwebtoken::DecodingKey>>()
            .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        let user = match jsonwebtoken::decode::<User>(credentials.token(), key, &validation) {
            Ok(data) => data.claims,
            Err(_) => return Err((AuthenticationError::from(Config::default()).into(), req)),
        };
        if !user.may_read_orders() {
            return Err((error::ErrorForbidden("insufficient scope"), req));
        }
        req.extensions_mut().insert(user);
        Ok(req)
    }

    async fn orders(user: web::ReqData<User>) -> String {
        format!("orders of {}\n", user.sub)
    }

    pub(crate) fn before(
        key: jsonwebtoken::DecodingKey,
    ) -> App<
        impl actix_web::dev::ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
            Error = Error,
            InitError = (),
        >,
    > {
        App::new()
            .app_data(web::Data::new(key))
            .wrap(HttpAuthentication::bearer(check))
            .route("/orders", web::get().to(orders))
    }
    // ANCHOR_END: httpauth_before
}

mod on_actix {
    use super::User;

    // ANCHOR: actix_after
    /// After: the middleware does what the validator function did, plus the cache,
    /// revocation, keyset rollouts, metrics and audit.
    use actix_web::{App, web};
    use tokenlife_actix::{Claims, TokenLife};
    use tokenlife_core::Validator;

    async fn orders(Claims(user): Claims<User>) -> String {
        format!("orders of {}\n", user.sub)
    }

    pub(crate) fn after(
        validator: Validator,
    ) -> App<
        impl actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        App::new()
            .wrap(TokenLife::new(validator).require_scope("orders:read"))
            .route("/orders", web::get().to(orders))
    }
    // ANCHOR_END: actix_after
}

/// The four requests and the answer a client relies on for each.
fn requests(key: &tokenlife_core::Key) -> Vec<(&'static str, String, u16)> {
    let sign = |scope: &str, exp: u64| {
        testing::sign(
            key,
            &serde_json::json!({"iss": ISS, "aud": AUD, "sub": "alice", "scope": scope,
                "exp": exp}),
        )
    };
    vec![
        ("with the scope", sign("orders:read", 4_000_000_000), 200),
        ("without the scope", sign("profile", 4_000_000_000), 403),
        (
            "forged",
            format!("{}x", sign("orders:read", 4_000_000_000)),
            401,
        ),
        ("expired", sign("orders:read", 1_000_000_000), 401),
    ]
}

/// One request through any tower service (an axum 0.7 or 0.8 router): its status.
async fn status<S, B>(app: &mut S, token: &str) -> u16
where
    S: tower_service::Service<axum::http::Request<String>, Response = axum::http::Response<B>>,
    S::Error: std::fmt::Debug,
{
    std::future::poll_fn(|cx| app.poll_ready(cx))
        .await
        .expect("ready");
    let req = axum::http::Request::get("/orders")
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .expect("request");
    app.call(req).await.expect("answer").status().as_u16()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = testing::key("k1", Algorithm::ES256);
    let jwks = Keyset::new([testing::key("k1", Algorithm::ES256)])?.to_public_jwks();
    let requests = requests(&key);
    let mut failures = Vec::new();
    let mut check = |app: &str, got: Vec<u16>| {
        for ((what, _, want), got) in requests.iter().zip(&got) {
            if got != want {
                failures.push(format!("{app}: {what}: {got}, want {want}"));
            }
        }
        println!("{app:<42} {got:?}");
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let axum_apps = rt.block_on(async {
        let mut out = Vec::new();
        let mut app = from_jwt_authorizer::before(&jwks).await?;
        let mut got = Vec::new();
        for (_, token, _) in &requests {
            got.push(status(&mut app, token).await);
        }
        out.push(("before: jwt-authorizer", got));
        let mut app = from_oauth2_resource_server::before(&jwks).await?;
        let mut got = Vec::new();
        for (_, token, _) in &requests {
            got.push(status(&mut app, token).await);
        }
        out.push(("before: tower-oauth2-resource-server", got));
        let mut app = on_axum::after(validator(&jwks)?);
        let mut got = Vec::new();
        for (_, token, _) in &requests {
            got.push(status(&mut app, token).await);
        }
        out.push(("after: tokenlife-tower", got));
        Ok::<_, Box<dyn std::error::Error>>(out)
    })?;
    for (app, got) in axum_apps {
        check(app, got);
    }

    let jwk: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks)?;
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk.keys[0])?;
    let actix_apps = actix_web::rt::System::new().block_on(async {
        use actix_web::test;
        let mut out = Vec::new();
        let before = test::init_service(from_httpauth::before(decoding)).await;
        let after = test::init_service(on_actix::after(validator(&jwks)?)).await;
        for (name, which) in [
            ("before: actix-web-httpauth", 0),
            ("after: tokenlife-actix", 1),
        ] {
            let mut got = Vec::new();
            for (_, token, _) in &requests {
                let req = test::TestRequest::get()
                    .uri("/orders")
                    .insert_header(("authorization", format!("Bearer {token}")))
                    .to_request();
                let status = if which == 0 {
                    test::try_call_service(&before, req)
                        .await
                        .map(|res| res.status())
                } else {
                    test::try_call_service(&after, req)
                        .await
                        .map(|res| res.status())
                };
                got.push(match status {
                    Ok(status) => status.as_u16(),
                    Err(e) => e.as_response_error().status_code().as_u16(),
                });
            }
            out.push((name, got));
        }
        Ok::<_, Box<dyn std::error::Error>>(out)
    })?;
    for (app, got) in actix_apps {
        check(app, got);
    }

    if failures.is_empty() {
        println!("every app answers as a client relies on");
        Ok(())
    } else {
        Err(failures.join("\n").into())
    }
}
