//! Users: `/api/v1/organizations/{id}/users`, `/api/v1/users/{id}`, `/api/v1/me`.
//!
//! Calls go through the SDK, except a creation whose whole body is read (to prove no password
//! member is returned) and invalid bodies the SDK refuses to build.

use m365_sync::domain::Role;
use m365_sync_sdk::types;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, problem, spawn_app, spawn_app_with};

fn new_user(email: &str) -> types::CreateUser {
    types::CreateUser {
        email: email.parse().unwrap(),
        password: PASSWORD.parse().unwrap(),
        display_name: None,
        role: None,
    }
}

#[tokio::test]
async fn org_admin_creates_lists_updates_and_deletes_users_of_their_organization() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let org_admin = app.account(Role::OrgAdmin, Some(org)).await;

    let created = app
        .post(
            &format!("/api/v1/organizations/{org}/users"),
            &org_admin.token,
            json!({"email": "Ada@Example.com", "password": PASSWORD, "display_name": "Ada"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(
        created.body["email"], "ada@example.com",
        "e-mails are normalised"
    );
    assert_eq!(created.body["role"], "user", "role defaults to user");
    assert_eq!(created.body["organization_id"], org.to_string());
    assert!(created.body.get("password").is_none() && created.body.get("password_hash").is_none());
    let id: uuid::Uuid = created.body["id"].as_str().unwrap().parse().unwrap();
    let api = app.sdk(&org_admin.token);

    let list = api.list_users(&org, None, None).await.unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(list.items.len(), 2);

    let patch = types::UpdateUser {
        role: Some(types::Role::OrgAdmin),
        display_name: Some("Ada L.".parse().unwrap()),
        ..Default::default()
    };
    let updated = api.update_user(&id, None, &patch).await.unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    assert_eq!(updated.role, types::Role::OrgAdmin);
    assert_eq!(updated.display_name, "Ada L.");

    let deleted = api.delete_user(&id, None).await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    problem(api.get_user(&id).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn duplicate_emails_are_refused_with_409() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let api = app.sdk(&admin.token);
    let created = api
        .create_user(&org, None, &new_user("ada@example.com"))
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let duplicate = api
        .create_user(&org, None, &new_user("ADA@example.com"))
        .await;
    assert_eq!(problem(duplicate, StatusCode::CONFLICT).code, "email_taken");
}

#[tokio::test]
async fn users_change_their_own_password_but_not_their_role() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    let api = app.sdk(&user.token);

    let password = types::UpdateUser {
        password: Some("a brand new password".parse().unwrap()),
        current_password: Some(PASSWORD.parse().unwrap()),
        ..Default::default()
    };
    let changed = api.update_user(&user.id, None, &password).await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let token = app.token(&user.email, "a brand new password").await;
    let api = app.sdk(&token);
    let old = app
        .sdk_anonymous()
        .create_token(&types::TokenRequest {
            email: user.email.clone(),
            password: PASSWORD.to_owned(),
        })
        .await;
    problem(old, StatusCode::UNAUTHORIZED);

    let promote = types::UpdateUser {
        role: Some(types::Role::OrgAdmin),
        ..Default::default()
    };
    let promote = api.update_user(&user.id, None, &promote).await;
    assert_eq!(problem(promote, StatusCode::FORBIDDEN).code, "forbidden");
}

#[tokio::test]
async fn callers_cannot_delete_themselves_and_admins_cannot_demote_themselves() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let api = app.sdk(&admin.token);
    let response = api.delete_user(&admin.id, None).await;
    assert_eq!(
        problem(response, StatusCode::CONFLICT).code,
        "cannot_delete_self"
    );
    let org = app.organization(&admin, "Acme").await;
    let org_admin = app.account(Role::OrgAdmin, Some(org)).await;
    let demote = types::UpdateUser {
        role: Some(types::Role::User),
        ..Default::default()
    };
    let response = api.update_user(&admin.id, None, &demote).await;
    // An admin without organization cannot become a user.
    problem(response, StatusCode::UNPROCESSABLE_ENTITY);
    let rename = types::UpdateUser {
        display_name: Some("Me".parse().unwrap()),
        ..Default::default()
    };
    let response = app
        .sdk(&org_admin.token)
        .update_user(&org_admin.id, None, &rename)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn invalid_users_are_refused_with_every_offending_field() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    // A body the SDK refuses to build: the service must refuse it too.
    let response = app
        .post(
            &format!("/api/v1/organizations/{org}/users"),
            &admin.token,
            json!({"email": "nope", "password": "short"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.code(), "validation_failed");
    let pointers: Vec<&str> = response.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/email", "/password"]);
}

#[tokio::test]
async fn changing_ones_own_password_needs_the_current_one_and_revokes_every_token() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let user = app.account(Role::User, Some(org)).await;
    let path = format!("/api/v1/users/{}", user.id);

    let without = app
        .patch(
            &path,
            &user.token,
            json!({"password": "a brand new password"}),
        )
        .await;
    assert_eq!(
        without.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{without:?}"
    );
    assert_eq!(without.body["errors"][0]["pointer"], "/current_password");
    let wrong = app
        .patch(
            &path,
            &user.token,
            json!({"password": "a brand new password", "current_password": "a guessed password"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{wrong:?}");
    assert_eq!(wrong.code(), "wrong_current_password");
    app.token(&user.email, PASSWORD).await;

    let second_device = app.token(&user.email, PASSWORD).await;
    let changed = app
        .patch(
            &path,
            &user.token,
            json!({"password": "a brand new password", "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    for token in [&user.token, &second_device] {
        let response = problem(app.sdk(token).get_me().await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.code, "invalid_token",
            "tokens issued before are revoked"
        );
    }
    let fresh = app.token(&user.email, "a brand new password").await;
    assert_eq!(
        app.sdk(&fresh).get_me().await.unwrap().status(),
        StatusCode::OK
    );

    // An admin setting someone's password needs no current password, and revokes their tokens.
    let reset = app
        .patch(
            &path,
            &admin.token,
            json!({"password": "an admin chose this one"}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{reset:?}");
    problem(app.sdk(&fresh).get_me().await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_are_revoked_by_whoever_may_manage_the_user() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let other_org = app.organization(&admin, "Globex").await;
    let org_admin = app.account(Role::OrgAdmin, Some(org)).await;
    let user = app.account(Role::User, Some(org)).await;
    let colleague = app.account(Role::User, Some(org)).await;
    let outsider = app.account(Role::User, Some(other_org)).await;

    let response = app
        .sdk(&org_admin.token)
        .revoke_sessions(&user.id)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let revoked = problem(
        app.sdk(&user.token).get_me().await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(revoked.code, "invalid_token");
    let user_token = app.token(&user.email, PASSWORD).await;
    assert_eq!(
        app.sdk(&user_token).get_me().await.unwrap().status(),
        StatusCode::OK
    );

    // Who may not manage the target: 404 when they may not see them, 403 when they may.
    problem(
        app.sdk(&org_admin.token)
            .revoke_sessions(&outsider.id)
            .await,
        StatusCode::NOT_FOUND,
    );
    problem(
        app.sdk(&colleague.token).revoke_sessions(&user.id).await,
        StatusCode::NOT_FOUND,
    );
    problem(
        app.sdk(&user_token).revoke_sessions(&user.id).await,
        StatusCode::FORBIDDEN,
    );
    problem(
        app.sdk(&org_admin.token).revoke_sessions(&admin.id).await,
        StatusCode::NOT_FOUND,
    );
    for token in [&user_token, &outsider.token, &admin.token, &colleague.token] {
        assert_eq!(
            app.sdk(token).get_me().await.unwrap().status(),
            StatusCode::OK
        );
    }
    let response = app
        .sdk(&admin.token)
        .revoke_sessions(&org_admin.id)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    problem(
        app.sdk(&org_admin.token).get_me().await,
        StatusCode::UNAUTHORIZED,
    );
}

#[tokio::test]
async fn short_repeated_and_common_passwords_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    for (password, case) in [
        ("elevenchars", "shorter than 12 characters"),
        ("zzzzzzzzzzzzzzzz", "one character repeated"),
        ("Password1234", "a common password, whatever its case"),
        ("qwertyuiop123", "a common password"),
        ("123456789012", "a common password"),
    ] {
        let response = app
            .post(
                &format!("/api/v1/organizations/{org}/users"),
                &admin.token,
                json!({"email": "ada@example.com", "password": password}),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}: {response:?}"
        );
        assert_eq!(response.code(), "validation_failed", "{case}");
        assert_eq!(response.body["errors"][0]["pointer"], "/password", "{case}");
        let patch = app
            .patch(
                &format!("/api/v1/users/{}", admin.id),
                &admin.token,
                json!({"password": password, "current_password": PASSWORD}),
            )
            .await;
        assert_eq!(
            patch.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}: {patch:?}"
        );
    }
}

#[tokio::test]
async fn emails_are_normalised_and_look_alikes_of_an_existing_address_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let path = format!("/api/v1/organizations/{org}/users");
    let create = |email: &'static str| {
        app.post(
            &path,
            &admin.token,
            json!({"email": email, "password": PASSWORD}),
        )
    };
    let created = create("ＡＤＡ@Example.com").await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(
        created.body["email"], "ada@example.com",
        "NFKC and lower case"
    );
    // Signing in with another form of the same address works.
    app.token("Ａda@EXAMPLE.com", PASSWORD).await;

    for (email, case) in [
        ("аda@example.com", "a Cyrillic a"),
        ("adа@exаmple.com", "Cyrillic a in both parts"),
        ("αda@example.com", "a Greek alpha"),
        ("ada@ехample.com", "Cyrillic e and x"),
        ("ADA@EXAMPLE.COM", "the same address in capitals"),
    ] {
        let response = create(email).await;
        assert_eq!(
            response.status,
            StatusCode::CONFLICT,
            "{case}: {response:?}"
        );
        assert_eq!(response.code(), "email_taken", "{case}");
    }
    let bob = create("bob@example.com").await;
    assert_eq!(bob.status, StatusCode::CREATED);
    let rename = app
        .patch(
            &format!("/api/v1/users/{}", bob.body["id"].as_str().unwrap()),
            &admin.token,
            json!({"email": "аdа@example.com"}),
        )
        .await;
    assert_eq!(rename.status, StatusCode::CONFLICT, "{rename:?}");
    assert_eq!(rename.code(), "email_taken");
    let invisible = create("ad\u{200d}a@example.com").await;
    assert_eq!(
        invisible.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{invisible:?}"
    );
}

#[tokio::test]
async fn display_names_with_bidirectional_controls_or_zero_width_characters_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    for (name, case) in [
        ("Ada\u{202e}gnp.exe", "right-to-left override"),
        ("Ada\u{2066}Lovelace\u{2069}", "isolates"),
        ("A\u{200b}da", "zero-width space"),
        ("Ad\u{200d}a", "zero-width joiner"),
        ("\u{feff}Ada", "zero-width no-break space"),
        ("Ada\u{200f}", "right-to-left mark"),
    ] {
        let response = app
            .post(
                &format!("/api/v1/organizations/{org}/users"),
                &admin.token,
                json!({"email": "ada@example.com", "password": PASSWORD, "display_name": name}),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}: {response:?}"
        );
        assert_eq!(response.code(), "validation_failed", "{case}");
        assert_eq!(
            response.body["errors"][0]["pointer"], "/display_name",
            "{case}"
        );
        let patch = app
            .patch(
                &format!("/api/v1/users/{}", admin.id),
                &admin.token,
                json!({"display_name": name}),
            )
            .await;
        assert_eq!(
            patch.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}: {patch:?}"
        );
    }
    let fine = app
        .patch(
            &format!("/api/v1/users/{}", admin.id),
            &admin.token,
            json!({"display_name": "Ada Lovelace — محمد"}),
        )
        .await;
    assert_eq!(fine.status, StatusCode::OK, "{fine:?}");
}

async fn create_in(
    app: &TestApp,
    token: &str,
    org: uuid::Uuid,
    email: &str,
) -> crate::helpers::Response {
    app.post(
        &format!("/api/v1/organizations/{org}/users"),
        token,
        json!({"email": email, "password": PASSWORD}),
    )
    .await
}

#[tokio::test]
async fn org_admins_cannot_use_conflicts_to_list_other_organizations_addresses() {
    let app = spawn_app_with(|s| {
        s.login.email_probe_limit = 2;
        s.login.email_probe_window_seconds = 600;
    })
    .await;
    let admin = app.admin().await;
    let acme = app.organization(&admin, "Acme").await;
    let globex = app.organization(&admin, "Globex").await;
    let acme_admin = app.account(Role::OrgAdmin, Some(acme)).await;
    for email in ["ceo@globex.test", "cfo@globex.test"] {
        assert_eq!(
            create_in(&app, &admin.token, globex, email).await.status,
            StatusCode::CREATED
        );
    }
    let colleague = create_in(&app, &acme_admin.token, acme, "colleague@acme.test").await;
    assert_eq!(colleague.status, StatusCode::CREATED);

    // A conflict inside the caller's organization and one outside it answer alike.
    let inside = create_in(&app, &acme_admin.token, acme, "colleague@acme.test").await;
    let outside = create_in(&app, &acme_admin.token, acme, "ceo@globex.test").await;
    assert_eq!(outside.status, StatusCode::CONFLICT, "{outside:?}");
    assert_eq!(
        outside.body, inside.body,
        "nothing tells where the address is used"
    );
    // Renaming counts as well: the second conflict outside uses up the budget.
    let rename = app
        .patch(
            &format!("/api/v1/users/{}", colleague.body["id"].as_str().unwrap()),
            &acme_admin.token,
            json!({"email": "сfo@globex.test"}),
        )
        .await;
    assert_eq!(
        rename.status,
        StatusCode::CONFLICT,
        "a look-alike counts too: {rename:?}"
    );
    assert_eq!(rename.body, inside.body);

    // From now on the org admin may not try addresses, whether they are taken or not, so the
    // answer does not tell them apart.
    for email in ["cfo@globex.test", "fresh-address@acme.test"] {
        let response = create_in(&app, &acme_admin.token, acme, email).await;
        assert_eq!(
            response.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{email}: {response:?}"
        );
        assert_eq!(response.code(), "too_many_attempts");
        assert!(response.headers.contains_key("retry-after"));
    }
    // Conflicts inside their own organization never count, and admins are not limited.
    let admin_try = create_in(&app, &admin.token, acme, "ceo@globex.test").await;
    assert_eq!(admin_try.status, StatusCode::CONFLICT);
    let admin_fresh = create_in(&app, &admin.token, acme, "fresh-address@acme.test").await;
    assert_eq!(admin_fresh.status, StatusCode::CREATED);
}

#[tokio::test]
async fn conflicts_inside_the_callers_organization_are_not_counted_as_probes() {
    let app = spawn_app_with(|s| s.login.email_probe_limit = 1).await;
    let admin = app.admin().await;
    let acme = app.organization(&admin, "Acme").await;
    let acme_admin = app.account(Role::OrgAdmin, Some(acme)).await;
    assert_eq!(
        create_in(&app, &acme_admin.token, acme, "ada@acme.test")
            .await
            .status,
        StatusCode::CREATED
    );
    for _ in 0..3 {
        let response = create_in(&app, &acme_admin.token, acme, "ada@acme.test").await;
        assert_eq!(response.status, StatusCode::CONFLICT, "{response:?}");
        assert_eq!(response.code(), "email_taken");
    }
    assert_eq!(
        create_in(&app, &acme_admin.token, acme, "bob@acme.test")
            .await
            .status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn users_stored_before_skeletons_get_theirs_when_the_database_is_migrated() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let app = spawn_app().await;
    let admin = app.admin().await;
    let org = app.organization(&admin, "Acme").await;
    let created = create_in(&app, &admin.token, org, "olga@example.com").await;
    assert_eq!(created.status, StatusCode::CREATED);
    // As a row written before the migration that added skeletons.
    entity::users::Entity::update_many()
        .col_expr(
            entity::users::Column::EmailSkeleton,
            Expr::value(Option::<String>::None),
        )
        .filter(entity::users::Column::Email.eq("olga@example.com"))
        .exec(&app.db)
        .await
        .unwrap();
    m365_sync::db::migrate(&app.db).await.unwrap();
    let look_alike = create_in(&app, &admin.token, org, "оlgа@example.com").await;
    assert_eq!(look_alike.status, StatusCode::CONFLICT, "{look_alike:?}");
    assert_eq!(look_alike.code(), "email_taken");
}
