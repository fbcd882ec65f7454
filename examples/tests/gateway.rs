//! The gateway's printed walkthrough, step by step, with a real client against the
//! real servers (ephemeral ports).

use std::time::Duration;

use examples::{GatewayConfig, start};

fn token_from(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_printed_walkthrough_works() {
    let gw = start(GatewayConfig {
        api_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        issuer: "https://gateway.example.com".into(),
        audience: "api://orders".into(),
        admin_key: "adm".into(),
        client_id: "demo-client".into(),
        client_secret: "sec".into(),
        access_ttl: Duration::from_secs(900),
        audit_stdout: false,
    })
    .await
    .unwrap();
    let lines = gw.curl_lines();
    assert!(
        lines.contains(&gw.api_url)
            && lines.contains(&gw.admin_url)
            && lines.contains("-u demo-client:sec")
    );
    let (api, admin) = (&gw.api_url, &gw.admin_url);
    let http = reqwest::Client::new();
    let get_token = || async {
        let res = http
            .post(format!("{admin}/token"))
            .basic_auth("demo-client", Some("sec"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        token_from(&res.text().await.unwrap())
    };
    let orders = |t: String| {
        let http = http.clone();
        async move {
            http.get(format!("{api}/orders"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
        }
    };

    // 1–2: token, protected route
    let token = get_token().await;
    let res = orders(token.clone()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.text().await.unwrap(),
        "orders for demo-client (scope: orders:read)\n"
    );
    // health check needs no token; the admin-scope route needs orders:write
    assert_eq!(
        http.get(format!("{api}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = http
        .get(format!("{api}/orders/admin"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // 3–4: revoke, then 401
    let res = http
        .post(format!("{admin}/revoke"))
        .bearer_auth("adm")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = orders(token).await;
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("token revoked")
    );

    // 5: bad deploy, then rollback. A publish that would leave the issuer without a
    // signing key is refused unless it says so (keep_signing=false: verify-only).
    let token = get_token().await;
    let publish = |query: &'static str| {
        http.post(format!("{admin}/keysets?label=bad-deploy{query}"))
            .bearer_auth("adm")
            .header("content-type", "application/json")
            .body(gw.bad_deploy_jwks.clone())
            .send()
    };
    let res = publish("").await.unwrap();
    assert_eq!(res.status(), 409);
    let res = publish("&keep_signing=false").await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(orders(token.clone()).await.status(), 401);
    let res = http
        .post(format!("{admin}/keysets/rollback"))
        .bearer_auth("adm")
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), r#"{"version":1}"#);
    assert_eq!(orders(token).await.status(), 200);

    // 6: metrics (this test's process may not own the global recorder; the route answers)
    let res = http.get(format!("{admin}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("tokenlife_validations_total{outcome=\"ok\",keyset_version=\"1\"}"),
        "{text}"
    );
}
