//! The SDK against a live server: `M365_SYNC_URL`, `M365_SYNC_TEST_EMAIL` and
//! `M365_SYNC_TEST_PASSWORD` (an admin) name it. The tests are ignored unless asked for
//! (`cargo test -- --include-ignored`, which `.ci/contract` runs with a server it starts), and
//! fail when asked for without a server: they never pass by doing nothing.

use m365_sync_sdk::{Client, Error, sign_in, types};

struct Server {
    url: String,
    email: String,
    password: String,
}

fn server() -> Server {
    let url = std::env::var("M365_SYNC_URL")
        .expect("these tests need a live server: set M365_SYNC_URL (see the module header)");
    Server {
        url,
        email: std::env::var("M365_SYNC_TEST_EMAIL").unwrap_or_else(|_| "admin@example.com".into()),
        password: std::env::var("M365_SYNC_TEST_PASSWORD").unwrap_or_default(),
    }
}

async fn admin(server: &Server) -> Client {
    sign_in(&server.url, &server.email, &server.password)
        .await
        .expect("the admin signs in")
}

fn unique(prefix: &str) -> String {
    format!("{prefix} {}", uuid::Uuid::new_v4())
}

#[tokio::test]
#[ignore = "needs a live server (M365_SYNC_URL); .ci/contract runs it"]
async fn signs_in_and_reads_the_caller() {
    let server = server();
    let api = admin(&server).await;

    let me = api.get_me().await.expect("GET /api/v1/me").into_inner();

    assert_eq!(me.email, server.email);
    assert_eq!(me.role, types::Role::Admin);
}

#[tokio::test]
#[ignore = "needs a live server (M365_SYNC_URL); .ci/contract runs it"]
async fn wrong_credentials_are_a_typed_problem() {
    let server = server();
    let api = Client::anonymous(&server.url).unwrap();
    let body = types::TokenRequest {
        email: server.email.clone(),
        password: "not the password".into(),
    };

    let err = api
        .create_token(&body)
        .await
        .expect_err("a wrong password is refused");

    let Error::ErrorResponse(problem) = err else {
        panic!("expected the service's problem, got {err:?}")
    };
    assert_eq!(problem.status().as_u16(), 401);
    assert_eq!(problem.code, "invalid_credentials");
}

#[tokio::test]
#[ignore = "needs a live server (M365_SYNC_URL); .ci/contract runs it"]
async fn organization_settings_are_inherited_by_its_users() {
    let server = server();
    let api = admin(&server).await;
    let org = api
        .create_organization(
            None,
            &types::CreateOrganization {
                name: unique("Rust SDK").parse().unwrap(),
            },
        )
        .await
        .expect("POST /api/v1/organizations")
        .into_inner();
    let user = api
        .create_user(
            &org.id,
            None,
            &types::CreateUser {
                email: format!("rust-{}@example.com", uuid::Uuid::new_v4())
                    .parse()
                    .unwrap(),
                password: "rust sdk password".parse().unwrap(),
                display_name: None,
                role: None,
            },
        )
        .await
        .expect("POST /api/v1/organizations/{id}/users")
        .into_inner();

    let patch = types::MicrosoftSettingsPatch {
        sync_interval_minutes: Some(std::num::NonZeroU64::new(45).unwrap()),
        ..Default::default()
    };
    api.update_organization_microsoft_settings(&org.id, None, &patch)
        .await
        .expect("PATCH organization settings");
    let seen = api
        .get_user_microsoft_settings(&user.id)
        .await
        .expect("GET user settings")
        .into_inner();

    assert_eq!(seen.sync_interval_minutes.value, 45);
    assert_eq!(
        seen.sync_interval_minutes.source,
        types::Source::Organization
    );
    api.delete_user(&user.id, None).await.expect("DELETE user");
    api.delete_organization(&org.id, None)
        .await
        .expect("DELETE organization");
}

#[tokio::test]
#[ignore = "needs a live server (M365_SYNC_URL); .ci/contract runs it"]
async fn a_stale_if_match_is_refused_with_412() {
    let server = server();
    let api = admin(&server).await;
    let created = api
        .create_organization(
            None,
            &types::CreateOrganization {
                name: unique("Rust etag").parse().unwrap(),
            },
        )
        .await
        .unwrap();
    let etag = created.headers()["etag"].to_str().unwrap().to_owned();
    let org = created.into_inner();
    assert_eq!(etag, format!("\"{}\"", org.version));
    let rename = |name: String| types::UpdateOrganization {
        name: Some(name.parse().unwrap()),
    };

    api.update_organization(&org.id, Some(&etag), &rename(unique("Rust renamed")))
        .await
        .expect("the current ETag matches");
    let err = api
        .update_organization(&org.id, Some(&etag), &rename(unique("Rust stale")))
        .await
        .expect_err("a stale ETag is refused");

    let Error::ErrorResponse(problem) = err else {
        panic!("expected the service's problem, got {err:?}")
    };
    assert_eq!(problem.status().as_u16(), 412);
    assert_eq!(problem.code, "precondition_failed");
    api.delete_organization(&org.id, None).await.unwrap();
}

#[tokio::test]
#[ignore = "needs a live server (M365_SYNC_URL); .ci/contract runs it"]
async fn organizations_come_a_page_at_a_time() {
    let server = server();
    let api = admin(&server).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let name = unique("Rust page").parse().unwrap();
        let org = api
            .create_organization(None, &types::CreateOrganization { name })
            .await
            .unwrap();
        ids.push(org.into_inner().id);
    }

    let limit = std::num::NonZeroU64::new(1);
    let first = api
        .list_organizations(None, limit)
        .await
        .unwrap()
        .into_inner();
    let cursor = first.next_cursor.clone().expect("there is a next page");
    let cursor = cursor.parse().unwrap();
    let second = api
        .list_organizations(Some(&cursor), limit)
        .await
        .unwrap()
        .into_inner();

    assert_eq!(first.items.len(), 1);
    assert_ne!(first.items[0].id, second.items[0].id);
    for id in &ids {
        api.delete_organization(id, None).await.unwrap();
    }
}

#[tokio::test]
#[ignore = "needs a live server (M365_SYNC_URL); .ci/contract runs it"]
async fn an_unknown_id_is_a_404_problem() {
    let server = server();
    let api = admin(&server).await;

    let err = api
        .get_organization(&uuid::Uuid::from_u128(
            0x0189_0000_0000_7000_8000_0000_0000_0000,
        ))
        .await
        .expect_err("no such organization");

    let Error::ErrorResponse(problem) = err else {
        panic!("expected the service's problem, got {err:?}")
    };
    assert_eq!(problem.status().as_u16(), 404);
    assert_eq!(problem.code, "not_found");
}

#[tokio::test]
#[ignore = "needs a live server (M365_SYNC_URL); .ci/contract runs it"]
async fn an_api_key_works_until_it_is_revoked() {
    let server = server();
    let api = admin(&server).await;
    let created = api
        .create_api_key(
            None,
            &types::CreateApiKey {
                name: unique("Rust SDK key").parse().unwrap(),
                expires_at: None,
                organization_id: None,
            },
        )
        .await
        .expect("POST /api/v1/api-keys")
        .into_inner();
    assert!(created.secret.starts_with(m365_sync_sdk::API_KEY_PREFIX));

    let with_key = Client::with_api_key(&server.url, &created.secret).unwrap();
    let page = with_key
        .list_organizations(None, None)
        .await
        .expect("an admin key lists organizations");
    assert_eq!(page.status().as_u16(), 200);

    api.delete_api_key(&created.id).await.expect("revoked");
    let Error::ErrorResponse(problem) = with_key.list_organizations(None, None).await.unwrap_err()
    else {
        panic!("expected a problem")
    };
    assert_eq!(problem.status().as_u16(), 401);
    assert_eq!(problem.code, "invalid_token");
}
