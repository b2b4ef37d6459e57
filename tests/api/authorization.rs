//! The authorization rules, role by role, as one table of cases.

use m365_sync::domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn each_role_may_do_exactly_what_the_rules_say() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org_a = app.organization(&admin, "A").await;
    let org_b = app.organization(&admin, "B").await;
    let org_admin_a = app.account(Role::OrgAdmin, Some(org_a)).await;
    let org_admin_b = app.account(Role::OrgAdmin, Some(org_b)).await;
    let user_a = app.account(Role::User, Some(org_a)).await;
    let user_a2 = app.account(Role::User, Some(org_a)).await;
    let user_b = app.account(Role::User, Some(org_b)).await;
    // An admin who belongs to organization A.
    let admin_in_a = app.account(Role::Admin, Some(org_a)).await;

    let who = |name: &str| match name {
        "admin" => admin.token.clone(),
        "admin_in_a" => admin_in_a.token.clone(),
        "org_admin_a" => org_admin_a.token.clone(),
        "org_admin_b" => org_admin_b.token.clone(),
        "user_a" => user_a.token.clone(),
        "user_a2" => user_a2.token.clone(),
        "user_b" => user_b.token.clone(),
        other => panic!("unknown caller {other}"),
    };
    let global = "/api/v1/settings/microsoft".to_owned();
    let global_app = "/api/v1/settings/microsoft/application".to_owned();
    let org_a_path = format!("/api/v1/organizations/{org_a}");
    let org_a_settings = format!("/api/v1/organizations/{org_a}/settings/microsoft");
    let org_a_app = format!("/api/v1/organizations/{org_a}/settings/microsoft/application");
    let org_a_users = format!("/api/v1/organizations/{org_a}/users");
    let user_a_path = format!("/api/v1/users/{}", user_a.id);
    let user_a_settings = format!("/api/v1/users/{}/settings/microsoft", user_a.id);
    let interval = json!({"sync_interval_minutes": 12});
    let new_user = |role: &str| json!({"email": format!("{}@example.com", uuid::Uuid::new_v4()), "password": PASSWORD, "role": role});

    let admin_in_a_path = format!("/api/v1/users/{}", admin_in_a.id);
    let admin_in_a_data = [
        format!("{admin_in_a_path}/settings/microsoft"),
        format!("{admin_in_a_path}/calendar-events"),
        format!("{admin_in_a_path}/tasks"),
        format!("{admin_in_a_path}/microsoft/connection"),
        format!("{admin_in_a_path}/microsoft/sync/runs"),
        format!("{admin_in_a_path}/microsoft/conflicts"),
    ];

    // (caller, method, path, body, expected status)
    let mut cases: Vec<(&str, Method, String, Option<Value>, StatusCode)> = vec![
        // An admin in an organization: its org admin sees the account, not the data.
        (
            "org_admin_a",
            Method::GET,
            admin_in_a_path.clone(),
            None,
            StatusCode::OK,
        ),
        (
            "org_admin_a",
            Method::PATCH,
            admin_in_a_data[0].clone(),
            Some(interval.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            "org_admin_a",
            Method::POST,
            admin_in_a_data[1].clone(),
            Some(json!({"title": "Planted",
                        "start": {"date_time": "2027-01-01T09:00:00", "time_zone": "UTC"},
                        "end": {"date_time": "2027-01-01T10:00:00", "time_zone": "UTC"}})),
            StatusCode::FORBIDDEN,
        ),
        (
            "org_admin_a",
            Method::DELETE,
            admin_in_a_data[3].clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        // Global settings: admins only.
        ("admin", Method::GET, global.clone(), None, StatusCode::OK),
        (
            "org_admin_a",
            Method::GET,
            global.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "user_a",
            Method::GET,
            global.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "admin",
            Method::PATCH,
            global.clone(),
            Some(interval.clone()),
            StatusCode::OK,
        ),
        (
            "org_admin_a",
            Method::PATCH,
            global.clone(),
            Some(interval.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            "user_a",
            Method::PATCH,
            global.clone(),
            Some(interval.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            "org_admin_a",
            Method::GET,
            global_app.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "user_a",
            Method::PATCH,
            global_app.clone(),
            Some(json!({"tenant": "common"})),
            StatusCode::FORBIDDEN,
        ),
        // Organization settings: admins and that organization's admins; others' are 404.
        (
            "admin",
            Method::GET,
            org_a_settings.clone(),
            None,
            StatusCode::OK,
        ),
        (
            "org_admin_a",
            Method::GET,
            org_a_settings.clone(),
            None,
            StatusCode::OK,
        ),
        (
            "org_admin_a",
            Method::PATCH,
            org_a_settings.clone(),
            Some(interval.clone()),
            StatusCode::OK,
        ),
        (
            "org_admin_b",
            Method::GET,
            org_a_settings.clone(),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "org_admin_b",
            Method::PATCH,
            org_a_settings.clone(),
            Some(interval.clone()),
            StatusCode::NOT_FOUND,
        ),
        (
            "user_a",
            Method::GET,
            org_a_settings.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "user_a",
            Method::PATCH,
            org_a_settings.clone(),
            Some(interval.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            "user_b",
            Method::GET,
            org_a_settings.clone(),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "org_admin_a",
            Method::PATCH,
            org_a_app.clone(),
            Some(json!({"tenant": "organizations"})),
            StatusCode::OK,
        ),
        (
            "org_admin_b",
            Method::GET,
            org_a_app.clone(),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "user_a",
            Method::GET,
            org_a_app.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        // User settings: the user, their organization's admins, admins.
        (
            "user_a",
            Method::GET,
            user_a_settings.clone(),
            None,
            StatusCode::OK,
        ),
        (
            "user_a",
            Method::PATCH,
            user_a_settings.clone(),
            Some(interval.clone()),
            StatusCode::OK,
        ),
        (
            "org_admin_a",
            Method::PATCH,
            user_a_settings.clone(),
            Some(interval.clone()),
            StatusCode::OK,
        ),
        (
            "admin",
            Method::GET,
            user_a_settings.clone(),
            None,
            StatusCode::OK,
        ),
        (
            "user_a2",
            Method::GET,
            user_a_settings.clone(),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "user_a2",
            Method::PATCH,
            user_a_settings.clone(),
            Some(interval.clone()),
            StatusCode::NOT_FOUND,
        ),
        (
            "org_admin_b",
            Method::GET,
            user_a_settings.clone(),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "user_b",
            Method::PATCH,
            user_a_settings.clone(),
            Some(interval.clone()),
            StatusCode::NOT_FOUND,
        ),
        // Organizations.
        (
            "admin",
            Method::GET,
            "/api/v1/organizations".into(),
            None,
            StatusCode::OK,
        ),
        (
            "org_admin_a",
            Method::GET,
            "/api/v1/organizations".into(),
            None,
            StatusCode::OK,
        ),
        (
            "user_a",
            Method::GET,
            "/api/v1/organizations".into(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "org_admin_a",
            Method::POST,
            "/api/v1/organizations".into(),
            Some(json!({"name": "X"})),
            StatusCode::FORBIDDEN,
        ),
        (
            "user_a",
            Method::POST,
            "/api/v1/organizations".into(),
            Some(json!({"name": "Y"})),
            StatusCode::FORBIDDEN,
        ),
        (
            "org_admin_a",
            Method::GET,
            org_a_path.clone(),
            None,
            StatusCode::OK,
        ),
        (
            "org_admin_a",
            Method::PATCH,
            org_a_path.clone(),
            Some(json!({"name": "A2"})),
            StatusCode::OK,
        ),
        (
            "org_admin_b",
            Method::GET,
            org_a_path.clone(),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "user_a",
            Method::GET,
            org_a_path.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "user_b",
            Method::GET,
            org_a_path.clone(),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "org_admin_a",
            Method::DELETE,
            org_a_path.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "org_admin_b",
            Method::DELETE,
            org_a_path.clone(),
            None,
            StatusCode::NOT_FOUND,
        ),
        // Users.
        (
            "org_admin_a",
            Method::GET,
            org_a_users.clone(),
            None,
            StatusCode::OK,
        ),
        (
            "org_admin_b",
            Method::GET,
            org_a_users.clone(),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "user_a",
            Method::GET,
            org_a_users.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "org_admin_a",
            Method::POST,
            org_a_users.clone(),
            Some(new_user("user")),
            StatusCode::CREATED,
        ),
        (
            "org_admin_a",
            Method::POST,
            org_a_users.clone(),
            Some(new_user("org_admin")),
            StatusCode::CREATED,
        ),
        (
            "org_admin_a",
            Method::POST,
            org_a_users.clone(),
            Some(new_user("admin")),
            StatusCode::FORBIDDEN,
        ),
        (
            "org_admin_b",
            Method::POST,
            org_a_users.clone(),
            Some(new_user("user")),
            StatusCode::NOT_FOUND,
        ),
        (
            "user_a",
            Method::POST,
            org_a_users.clone(),
            Some(new_user("user")),
            StatusCode::FORBIDDEN,
        ),
        (
            "admin",
            Method::POST,
            org_a_users.clone(),
            Some(new_user("admin")),
            StatusCode::CREATED,
        ),
        (
            "user_a",
            Method::GET,
            user_a_path.clone(),
            None,
            StatusCode::OK,
        ),
        (
            "user_a2",
            Method::GET,
            user_a_path.clone(),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "org_admin_a",
            Method::GET,
            user_a_path.clone(),
            None,
            StatusCode::OK,
        ),
        (
            "org_admin_b",
            Method::GET,
            user_a_path.clone(),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "user_a",
            Method::PATCH,
            user_a_path.clone(),
            Some(json!({"role": "org_admin"})),
            StatusCode::FORBIDDEN,
        ),
        (
            "user_a",
            Method::PATCH,
            user_a_path.clone(),
            Some(json!({"display_name": "Me"})),
            StatusCode::OK,
        ),
        (
            "user_a2",
            Method::PATCH,
            user_a_path.clone(),
            Some(json!({"display_name": "You"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "org_admin_b",
            Method::PATCH,
            user_a_path.clone(),
            Some(json!({"display_name": "X"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "org_admin_a",
            Method::PATCH,
            user_a_path.clone(),
            Some(json!({"role": "admin"})),
            StatusCode::FORBIDDEN,
        ),
        (
            "org_admin_a",
            Method::PATCH,
            format!("/api/v1/users/{}", admin.id),
            Some(json!({"display_name": "X"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "user_a",
            Method::DELETE,
            format!("/api/v1/users/{}", user_a2.id),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "org_admin_b",
            Method::DELETE,
            format!("/api/v1/users/{}", user_a2.id),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "org_admin_a",
            Method::DELETE,
            format!("/api/v1/users/{}", user_a2.id),
            None,
            StatusCode::NO_CONTENT,
        ),
    ];

    let mut failures = Vec::new();
    for path in &admin_in_a_data {
        cases.push((
            "org_admin_a",
            Method::GET,
            path.clone(),
            None,
            StatusCode::FORBIDDEN,
        ));
        cases.push((
            "admin_in_a",
            Method::GET,
            path.clone(),
            None,
            StatusCode::OK,
        ));
        cases.push(("admin", Method::GET, path.clone(), None, StatusCode::OK));
        cases.push((
            "org_admin_b",
            Method::GET,
            path.clone(),
            None,
            StatusCode::NOT_FOUND,
        ));
    }
    for (caller, method, path, body, expected) in cases {
        let response = app
            .request(method.clone(), &path, Some(&who(caller)), body)
            .await;
        if response.status != expected {
            failures.push(format!(
                "{caller} {method} {path}: expected {expected}, got {} {}",
                response.status, response.body
            ));
        } else if !expected.is_success() {
            assert!(!response.code().is_empty());
        }
    }
    assert!(
        failures.is_empty(),
        "authorization cases failed:\n{}",
        failures.join("\n")
    );

    // An org admin's organization list holds only their organization.
    let list = app.get("/api/v1/organizations", &org_admin_b.token).await;
    let ids: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [org_b.to_string()]);
}
